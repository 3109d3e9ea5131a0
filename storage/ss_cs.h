/*
 * ss_cs.h -- changesets: every metadata mutation of a container, as row
 * images, in a compact byte format that travels as the payload of the
 * container's dsm commit; and checkpoint images (every row) in the same
 * row format.
 *
 * One function, ss_cs_apply(), applies a changeset to SQLite, both for a
 * live commit and when recovery replays the log (DSM_REPLAY_COMMIT); one
 * loader (struct ss_cs_image) applies a checkpoint image
 * (DSM_REPLAY_CHECKPOINT_META chunks).  So SQLite is always exactly what
 * the log says.
 *
 * ---- Format (version 2; version 1 is still read) ----
 *
 * All integers are unsigned LEB128 varints ("v"); times' seconds are
 * zigzag-encoded first ("z"); byte strings are a v length then the bytes.
 *
 *   changeset = "LC" 0x02 row* 0x00
 *   image     = "LI" 0x02 row* 0x00     (cut into chunks at any byte)
 *   row       = v bodylen, body         (bodylen = bytes of body, >= 1)
 *   0x00      the end mark (a row of length 0): nothing may follow it, and
 *             without it the changeset or image is incomplete
 *   body      = u8 tag, fields
 *   tag       = table | flags
 *       table (bits 0-2): 1 inode, 2 dirent, 3 xattr, 4 meta
 *       0x08 DEL      delete the row named by the key fields
 *       0x20 GSEQ     (inode put) generation := the applying commit's seq
 *
 *   inode put   v ino, v mode, v nlink, v uid, v gid, v rdev, v size,
 *               z atime.sec, v atime.nsec, z mtime.sec, v mtime.nsec,
 *               z ctime.sec, v ctime.nsec, v generation, bytes vv,
 *               v lseq, bytes target (symlinks; empty otherwise)
 *   inode del   v ino, bytes vv, v lseq         (a deletion record)
 *   dirent put  v id, v parent, v ino, v type, v cookie, bytes name
 *   dirent del  v id
 *   xattr put   v ino, bytes name, bytes value
 *   xattr del   v ino, bytes name
 *   meta put    bytes key, v value
 *   meta del    bytes key
 *
 * vv is the row's whole version vector (dsm_vv_encode, at most SS_VV_MAX
 * bytes, a valid encoding consumed exactly; the empty vector is 0x00).
 * The builder computes it: ss_cs_put_inode() and ss_cs_del_inode() write
 * the vector they are given incremented at the builder's site (cs->site,
 * the container id, set by ss_mut_init), or as given with SS_CS_KEEPVV (an
 * install of a copy pulled from another site, and images); so a replay
 * produces exactly the row of the live apply.  The inode's `version` is
 * not in the row: the apply sets it to the sum of the vector's counters.
 * lseq 0 means "the applying commit's seq" (changesets always write 0:
 * lseq is local to this container, never replicated); images carry each
 * row's lseq.  An inode del deletes the inode row and writes the deletion
 * record gone(ino, vv, lseq) (ss_db.h).  cookie is the entry's READDIR
 * cookie in [SS_COOKIE_MIN, SS_COOKIE_END), chosen by the builder
 * (ss_cs_cookie) and replicated with the row.
 *
 * Version 1 (read only, for logs written before): an inode put has
 * `v version` in place of `bytes vv, v lseq` and may carry the flag 0x10
 * VSEQ (version := the commit's seq); both are ignored, the row reads with
 * the empty vector (version 0).  An inode del is `v ino`: its deletion
 * record has the empty vector.  A dirent put has no cookie: the apply
 * chooses it from the name (ss_cs_cookie, against the rows already
 * applied, so every replay of the same log chooses the same).  Dirent ids
 * are kept as they are.
 *
 * A put replaces the whole row (an upsert by primary key).  Rows apply in
 * order.  Unknown tags, out-of-range fields (names over 255 bytes, targets
 * over 4095, values over 64 KiB, vectors over SS_VV_MAX or malformed,
 * cookies out of range, nsec >= 1e9), trailing bytes in a body, a
 * truncated row, a missing end mark or bytes after it make the whole
 * changeset -EBADMSG (the caller rolls its SQLite transaction back).  The
 * meta key "applied_seq" is never in a changeset: ss_cs_apply() writes it.
 *
 * GSEQ exists because a commit learns its sequence number only from
 * dsm_txn_commit(), after its payload is written: the row says "the seq of
 * the commit that carries me", and replay, which knows the seq, produces
 * the same row as the live apply did.  (The generation is replicated as
 * the value the origin's apply gave it: a copy installs it as given.)
 *
 * Ownership: a builder owns its buffer (ss_cs_free).  Threads: no state;
 * one thread per builder / loader / database.  Errors: -ENOMEM, -EBADMSG,
 * -EIO and -EEXIST from SQLite (ss_db.h); builders: -E2BIG (a vector
 * over SS_VV_MAX), -EINVAL (a caller bug: no site, rows after the end).
 */
#ifndef SS_CS_H
#define SS_CS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ss_db.h"

enum ss_cs_table {
        SS_CS_INODE = 1,
        SS_CS_DIRENT = 2,
        SS_CS_XATTR = 3,
        SS_CS_META = 4,
};

#define SS_CS_DEL 0x08u
#define SS_CS_VSEQ_OLD 0x10u            /* format 1 only: read and ignored */
#define SS_CS_GSEQ 0x20u
/* Builder flag, never encoded: write the vector as given (no increment). */
#define SS_CS_KEEPVV 0x100u

/* A changeset being built. */
struct ss_cs {
        uint8_t *p;
        size_t len;
        size_t cap;
        uint32_t nrows;
        uint32_t site;                  /* where vectors count (ss_mut_init) */
        bool sealed;
        int err;                        /* sticky: -ENOMEM, -E2BIG, -EINVAL */
};

/* A cookie a mutation has chosen but not yet applied (ss_cs_cookie). */
struct ss_cs_claim {
        uint64_t parent;
        uint64_t cookie;
};

/* Start an empty changeset (just the header). */
void ss_cs_init(struct ss_cs *cs);
/* Append the end mark; no row may be added after it.  Idempotent. */
void ss_cs_seal(struct ss_cs *cs);
void ss_cs_free(struct ss_cs *cs);
/* flags: SS_CS_GSEQ, SS_CS_KEEPVV.  The row carries in->vv incremented at
 * cs->site (or as is with SS_CS_KEEPVV); in is not changed, so putting the
 * same struct twice in one changeset counts one update.  in->version and
 * in->lseq are not written (the apply sets them). */
void ss_cs_put_inode(struct ss_cs *cs, const struct ss_inode *in, unsigned flags);
/* Delete inode ino and write its deletion record, whose vector is vv
 * (vvlen bytes; 0: empty) incremented at cs->site, or vv as is with
 * SS_CS_KEEPVV (flags). */
void ss_cs_del_inode(struct ss_cs *cs, uint64_t ino, const uint8_t *vv, size_t vvlen, unsigned flags);
void ss_cs_put_dirent(struct ss_cs *cs, const struct ss_dirent *d);
void ss_cs_del_dirent(struct ss_cs *cs, uint64_t id);
void ss_cs_put_xattr(struct ss_cs *cs, uint64_t ino, const uint8_t *name, size_t namelen,
                     const void *value, size_t vlen);
void ss_cs_del_xattr(struct ss_cs *cs, uint64_t ino, const uint8_t *name, size_t namelen);
void ss_cs_put_meta(struct ss_cs *cs, const char *key, uint64_t value);

/* The sum of the counters of an encoded vector (vvlen 0: empty), or
 * -EBADMSG. */
int ss_cs_vv_sum(const uint8_t *vv, size_t vvlen, uint64_t *ret);

/*
 * READDIR cookies.  ss_cs_cookie_hash: XXH3-64 of the name mapped into
 * [SS_COOKIE_MIN, SS_COOKIE_END).  ss_cs_cookie: the cookie a new (or
 * renamed) entry <parent, name> gets: the hash, probing upward (wrapping
 * to SS_COOKIE_MIN) past cookies of parent taken in db by entries other
 * than except_id and past the claimed ones (chosen by the same mutation,
 * not applied yet).  -EIO from SQLite.
 */
uint64_t ss_cs_cookie_hash(const uint8_t *name, size_t namelen);
int ss_cs_cookie(struct ss_db *db, uint64_t parent, const uint8_t *name, size_t namelen, uint64_t except_id,
                 const struct ss_cs_claim *claimed, size_t nclaimed, uint64_t *ret);

/*
 * Walk the inode rows of a sealed changeset (format 1 or 2): fn(ctx, ino,
 * gone, vv, vvlen) for each inode put (gone false) and inode del (gone
 * true), in order, vv the vector the row carries (pointing into buf or a
 * scratch copy: valid during the call).  fn < 0 stops with that error.
 * -EBADMSG for a malformed changeset (the rows before it were reported).
 */
int ss_cs_each_inode(const void *buf, size_t len,
                     int (*fn)(void *ctx, uint64_t ino, bool gone, const uint8_t *vv, size_t vvlen), void *ctx);

/*
 * Apply a sealed changeset buf (len bytes) as the commit numbered seq, and set
 * meta.applied_seq = seq.  Runs inside the caller's SQLite transaction
 * (ss_db_begin/commit), so that a failure can be rolled back as a whole.
 */
int ss_cs_apply(struct ss_db *db, uint64_t seq, const void *buf, size_t len);

/*
 * Dump every row of db (except meta.applied_seq and meta.schema) as an
 * image, handing it to put() in pieces of at most 64 KiB.  Inode rows and
 * deletion records keep their vectors and lseq.
 */
int ss_cs_dump_image(struct ss_db *db, int (*put)(void *ctx, const void *buf, size_t len), void *ctx);

/*
 * Loading an image that arrives in chunks: begin (which clears every
 * table), feed chunks in order, finish (sets applied_seq = seq).  All
 * inside the caller's SQLite transaction.
 */
struct ss_cs_image {
        uint64_t seq;
        unsigned ver;                   /* the image's format version */
        uint8_t *buf;                   /* an incomplete row carried over */
        size_t len, cap;
        bool header;                    /* header seen */
        bool ended;                     /* end mark seen */
        uint64_t rows;
};

int ss_cs_image_begin(struct ss_cs_image *im, struct ss_db *db, uint64_t seq);
int ss_cs_image_feed(struct ss_cs_image *im, struct ss_db *db, const void *chunk, size_t len);
int ss_cs_image_finish(struct ss_cs_image *im, struct ss_db *db);
void ss_cs_image_free(struct ss_cs_image *im);

#endif
