/*
 * lp_note.h -- the coherence codec: commit notes, what a storage site tells
 * the CSS after each live commit and what the CSS forwards to the mounts
 * that watch (docs/coherence.md), so that they drop what they cache of the
 * files and directories that changed.
 *
 * ---- Format (version 1; integers are cm_codec.h varints) ----
 *
 *   batch = "LN" 0x01, v n, note{n}
 *   note  = v fg, v ino, v version, v client, u8 flags,
 *           v nextents, (v off, v len){nextents}
 *
 *   fg, ino   the file (ino 0 with LP_NOTE_GROUP)
 *   version   the version the file has after the commit (the sum of its
 *             vector's counters; 0 when the commit changed pages only or
 *             deleted the file)
 *   client    the client id of the mount whose request made the commit
 *             (lp_conn.h "Client identity"), 0 when none (a replicator's
 *             install, the storage site's own housekeeping): the CSS does
 *             not send a note back to the mount that made it
 *   flags     LP_NOTE_GONE: the inode was deleted (a deletion record);
 *             LP_NOTE_GROUP: everything of file group fg may have changed
 *             (notes were lost: a queue over its bound, a link that was
 *             down); ino, version and extents are 0 then, and fg 0
 *             stands for every file group
 *   extents   byte ranges of the file's data the commit changed (len 0:
 *             from off to the end of the file); none: the attributes (or
 *             a directory's entries) only.  A note with LP_NOTE_ALLDATA
 *             changed the data anywhere (too many extents to list).
 *
 * Anything else (a wrong header, unknown flags, more than LP_NOTE_MAX
 * notes or LP_NOTE_EXT_MAX extents in a note, a truncated or over-long
 * input) is -EBADMSG.
 *
 * On the wire a batch travels as the blob of an lp_fs_req: op
 * LP_FS_SS_NOTE_COMMIT (storage site -> CSS) or LP_FS_CSS_NOTE_INVAL (CSS
 * -> a watching mount), reqid 0, never answered (docs/protocol.md).
 *
 * Ownership: lp_note_encode appends to the caller's cm_wbuf; a decoded
 * batch owns its arrays (lp_note_batch_free), nothing points into the
 * input.  Threads: no shared state.
 */
#ifndef LP_NOTE_H
#define LP_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_codec.h"

#define LP_NOTE_MAX 16384u              /* notes in one batch */
#define LP_NOTE_EXT_MAX 64u             /* extents of one note */

#define LP_NOTE_GONE (1u << 0)
#define LP_NOTE_GROUP (1u << 1)
#define LP_NOTE_ALLDATA (1u << 2)
#define LP_NOTE_FLAGS (LP_NOTE_GONE | LP_NOTE_GROUP | LP_NOTE_ALLDATA)

struct lp_note_ext {
        uint64_t off;
        uint64_t len;                   /* 0: to the end of the file */
};

struct lp_note {
        uint32_t fg;
        uint64_t ino;
        uint64_t version;
        uint64_t client;
        uint32_t flags;
        const struct lp_note_ext *ext;
        size_t next;
};

struct lp_note_batch {
        struct lp_note *v;
        size_t n;
        struct lp_note_ext *ext;        /* every note's extents, in order */
};

/* Append a batch of n notes (n <= LP_NOTE_MAX, each next <=
 * LP_NOTE_EXT_MAX: -EINVAL).  0, or -ENOMEM (w's sticky error). */
int lp_note_encode(struct cm_wbuf *w, const struct lp_note *v, size_t n);
/* 0 and *ret (free it with lp_note_batch_free), -EBADMSG, -ENOMEM. */
int lp_note_decode(const void *buf, size_t len, struct lp_note_batch *ret);
void lp_note_batch_free(struct lp_note_batch *b);

#endif
