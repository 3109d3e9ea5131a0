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
 * ---- Format (version 1) ----
 *
 * All integers are unsigned LEB128 varints ("v"); times' seconds are
 * zigzag-encoded first ("z"); byte strings are a v length then the bytes.
 *
 *   changeset = "LC" 0x01 row* 0x00
 *   image     = "LI" 0x01 row* 0x00     (cut into chunks at any byte)
 *   row       = v bodylen, body         (bodylen = bytes of body, >= 1)
 *   0x00      the end mark (a row of length 0): nothing may follow it, and
 *             without it the changeset or image is incomplete
 *   body      = u8 tag, fields
 *   tag       = table | flags
 *       table (bits 0-2): 1 inode, 2 dirent, 3 xattr, 4 meta
 *       0x08 DEL      delete the row named by the key fields
 *       0x10 VSEQ     (inode put) version := the applying commit's seq
 *       0x20 GSEQ     (inode put) generation := the applying commit's seq
 *
 *   inode put   v ino, v mode, v nlink, v uid, v gid, v rdev, v size,
 *               z atime.sec, v atime.nsec, z mtime.sec, v mtime.nsec,
 *               z ctime.sec, v ctime.nsec, v generation, v version,
 *               bytes target (symlinks; empty otherwise)
 *   inode del   v ino
 *   dirent put  v id, v parent, v ino, v type, bytes name
 *   dirent del  v id
 *   xattr put   v ino, bytes name, bytes value
 *   xattr del   v ino, bytes name
 *   meta put    bytes key, v value
 *   meta del    bytes key
 *
 * A put replaces the whole row (an upsert by primary key).  Rows apply in
 * order.  Unknown tags, out-of-range fields (names over 255 bytes, targets
 * over 4095, values over 64 KiB, nsec >= 1e9), trailing bytes in a body,
 * a truncated row, a missing end mark or bytes after it make the whole
 * changeset -EBADMSG (the caller rolls its SQLite transaction back).  The meta key
 * "applied_seq" is never in a changeset: ss_cs_apply() writes it.
 *
 * VSEQ/GSEQ exist because a commit learns its sequence number only from
 * dsm_txn_commit(), after its payload is written: the row says "the seq of
 * the commit that carries me", and replay, which knows the seq, produces
 * the same row as the live apply did.
 *
 * Ownership: a builder owns its buffer (ss_cs_free).  Threads: no state;
 * one thread per builder / loader / database.  Errors: -ENOMEM, -EBADMSG,
 * -EIO and -EEXIST from SQLite (ss_db.h).
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
#define SS_CS_VSEQ 0x10u
#define SS_CS_GSEQ 0x20u

/* A changeset being built. */
struct ss_cs {
        uint8_t *p;
        size_t len;
        size_t cap;
        uint32_t nrows;
        bool sealed;
        int err;                        /* sticky -ENOMEM */
};

/* Start an empty changeset (just the header). */
void ss_cs_init(struct ss_cs *cs);
/* Append the end mark; no row may be added after it.  Idempotent. */
void ss_cs_seal(struct ss_cs *cs);
void ss_cs_free(struct ss_cs *cs);
/* flags: SS_CS_VSEQ, SS_CS_GSEQ. */
void ss_cs_put_inode(struct ss_cs *cs, const struct ss_inode *in, unsigned flags);
void ss_cs_del_inode(struct ss_cs *cs, uint64_t ino);
void ss_cs_put_dirent(struct ss_cs *cs, const struct ss_dirent *d);
void ss_cs_del_dirent(struct ss_cs *cs, uint64_t id);
void ss_cs_put_xattr(struct ss_cs *cs, uint64_t ino, const uint8_t *name, size_t namelen,
                     const void *value, size_t vlen);
void ss_cs_del_xattr(struct ss_cs *cs, uint64_t ino, const uint8_t *name, size_t namelen);
void ss_cs_put_meta(struct ss_cs *cs, const char *key, uint64_t value);

/*
 * Apply a sealed changeset buf (len bytes) as the commit numbered seq, and set
 * meta.applied_seq = seq.  Runs inside the caller's SQLite transaction
 * (ss_db_begin/commit), so that a failure can be rolled back as a whole.
 */
int ss_cs_apply(struct ss_db *db, uint64_t seq, const void *buf, size_t len);

/*
 * Dump every row of db (except meta.applied_seq and meta.schema) as an
 * image, handing it to put() in pieces of at most 64 KiB.
 */
int ss_cs_dump_image(struct ss_db *db, int (*put)(void *ctx, const void *buf, size_t len), void *ctx);

/*
 * Loading an image that arrives in chunks: begin (which clears every
 * table), feed chunks in order, finish (sets applied_seq = seq).  All
 * inside the caller's SQLite transaction.
 */
struct ss_cs_image {
        uint64_t seq;
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
