/*
 * lp_rs.h -- the replication codec: what storage sites exchange to keep
 * the copies of a file group in step (docs/replication.md): change lists
 * (a container's change stream read back from its index), file states (one
 * file's inode row, version vector, xattrs, directory entries, data
 * extents and, for small files, the data itself) and pull lists.
 *
 * ---- Formats (version 1; integers are cm_codec.h varints) ----
 *
 *   changes = "LX" 0x01, v n, change{n}
 *   change  = v ino, v lseq, u8 flags (bit 0: a deletion record), str vv
 *   pulls   = "LQ" 0x01, v n, v ino{n}
 *   state   = "LS" 0x01, u8 kind (1 inode, 2 deletion record), v ino, str vv,
 *             then for an inode:
 *               v mode, v nlink, v uid, v gid, v rdev, v size,
 *               z atime.sec, v atime.nsec, z mtime.sec, v mtime.nsec,
 *               z ctime.sec, v ctime.nsec, v generation, str target,
 *               v nxattrs, (str name, str value){nxattrs},
 *               v nentries, (v id, v cookie, v ino, v type, str name){nentries},
 *               v nextents, (v first_page, v npages){nextents},
 *               u8 inline (1: the file's data follows), [str data]
 *   piece   = "LS" 0x02, then as a state of kind 1, with
 *               v from, u8 more
 *             just before v nentries.
 *
 * A piece (version 2) is a directory's state whose entries are only some
 * of its entries: those with a cookie above `from`, in cookie order (each
 * cookie above the one before), and, when `more` is 1, entries with
 * higher cookies follow in further pieces.  Storage sites send a
 * directory whose state does not fit one message in pieces
 * (docs/replication.md, "Big directories"); every piece carries the whole
 * row, vector and xattrs.  A state with every entry (from 0, more 0) is
 * always written as version 1, so version 2 with from 0 and more 0, a
 * piece of anything but a directory, or entries out of order are
 * -EBADMSG.  lp_rs_state_complete() tells the two apart.
 *
 * Anything else (a wrong header, a value out of range, a truncated or
 * over-long input) is -EBADMSG.  Inline data covers bytes [0, datalen)
 * of the file; pages of it that are all zeros are holes.
 *
 * Ownership: encoders append to the caller's cm_wbuf; a decoded state
 * points into the input (which must outlive it) and owns only its arrays
 * (lp_rs_state_free).  Threads: no shared state.
 */
#ifndef LP_RS_H
#define LP_RS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_codec.h"
#include "lp_fs.h"

#define LP_RS_VV_MAX LP_FS_VV_MAX       /* bytes of an encoded version vector */
#define LP_RS_NAME_MAX LP_FS_NAME_MAX
#define LP_RS_TARGET_MAX 4095u          /* bytes of a symlink target */
#define LP_RS_XNAME_MAX 255u            /* bytes of an xattr name */
#define LP_RS_XVALUE_MAX (64u << 10)    /* bytes of an xattr value */
#define LP_RS_MAX_ITEMS (1u << 20)      /* entries, extents, xattrs, changes */
#define LP_RS_INLINE_MAX (1u << 20)     /* files up to this size travel inline */

enum lp_rs_kind {
        LP_RS_INODE = 1,
        LP_RS_GONE = 2,
};

struct lp_rs_change {
        uint64_t ino;
        uint64_t lseq;
        bool gone;
        const uint8_t *vv;
        size_t vvlen;
};

struct lp_rs_xattr {
        const uint8_t *name;
        size_t namelen;
        const uint8_t *value;
        size_t vlen;
};

struct lp_rs_entry {
        uint64_t id;
        uint64_t cookie;
        uint64_t ino;
        uint32_t type;
        const uint8_t *name;
        size_t namelen;
};

struct lp_rs_extent {
        uint64_t page;
        uint64_t npages;
};

struct lp_rs_state {
        enum lp_rs_kind kind;
        uint64_t ino;
        const uint8_t *vv;
        size_t vvlen;
        /* kind INODE: the inode row (times as on the wire) */
        uint32_t mode, nlink, uid, gid;
        uint64_t rdev, size, generation;
        struct lp_fs_time atime, mtime, ctime;
        const uint8_t *target;          /* symlinks */
        size_t targetlen;
        struct lp_rs_xattr *xattrs;
        size_t nxattrs;
        struct lp_rs_entry *entries;
        size_t nentries;
        uint64_t from;                  /* a piece: entries with cookies above this */
        bool more;                      /* a piece: more entries follow */
        struct lp_rs_extent *extents;
        size_t nextents;
        bool has_data;
        const uint8_t *data;
        size_t datalen;
};

/* Change lists: begin with the count, then put each change. */
void lp_rs_changes_begin(struct cm_wbuf *w, size_t n);
void lp_rs_change_put(struct cm_wbuf *w, const struct lp_rs_change *c);
/* Decoding: begin (reads the header and count), then next() n times. */
int lp_rs_changes_open(struct cm_rd *r, const void *buf, size_t len, size_t *ret_n);
int lp_rs_change_next(struct cm_rd *r, struct lp_rs_change *c);

/* Pull lists. */
int lp_rs_pulls_encode(struct cm_wbuf *w, const uint64_t *inos, size_t n);
/* *ret_inos is malloc'ed (free it). */
int lp_rs_pulls_decode(const void *buf, size_t len, uint64_t **ret_inos, size_t *ret_n);

/* File states.  Encoding: the caller fills st (arrays and pointers it
 * owns). */
void lp_rs_state_encode(struct cm_wbuf *w, const struct lp_rs_state *st);
int lp_rs_state_decode(const void *buf, size_t len, struct lp_rs_state *st);
void lp_rs_state_free(struct lp_rs_state *st);
/* Does st hold every entry (not a piece: from 0, more false)? */
bool lp_rs_state_complete(const struct lp_rs_state *st);
/* Bytes entry e takes in an encoded state (to cut pieces to a size). */
size_t lp_rs_entry_size(const struct lp_rs_entry *e);

#endif
