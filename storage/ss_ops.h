/*
 * ss_ops.h -- the filesystem operations a storage site serves
 * (docs/protocol.md, "using site -> storage site"): one handler per
 * operation, each turning a decoded request into an answer and, for a
 * mutation, one changeset committed through the container (ss_ct.h).
 *
 * Semantics the protocol leaves to the storage site, decided here:
 *  - Session views: a request naming a session sees its staged size and
 *    times, and its `blocks` and LSEEK answers are those of the
 *    transaction's view (dsm_txn_count_pages, dsm_txn_seek).  The page
 *    count is taken once per session and then kept up to date by WRITE
 *    from the pages the write turned from holes into data (a walk over
 *    every extent of the file per WRITE made a session quadratic); any
 *    other change to the session's pages (truncation, FALLOCATE,
 *    COPY_RANGE, COMMIT) makes it count again.  Committed pages of the
 *    same file that another client adds during the session show in the
 *    count only from then on.
 *  - A session whose transaction loses a race (DSM_ECONFLICT, on a partial
 *    write's read, a session read, or at COMMIT) is ended and the request
 *    answers -EAGAIN: its staged data is discarded, never committed half
 *    and never silently lost (the caller learns it, and a retry on the
 *    same id answers -ESTALE).  Any other failure of a session's
 *    transaction also ends the session.
 *  - SETATTR with a session: the size goes into the session (truncation in
 *    the transaction); mode/uid/gid/times are committed at once, and the
 *    times are also recorded as pending so that COMMIT does not overwrite
 *    them with older ones.
 *  - FALLOCATE mode 0 / KEEP_SIZE reserves nothing in a log-structured
 *    store: it checks that the space is free (-ENOSPC otherwise) and, for
 *    mode 0, extends the size; ZERO_RANGE and PUNCH_HOLE free whole pages
 *    and zero the partial ones (a hole stays a hole).
 *  - Space: operations that add data or metadata answer -ENOSPC when the
 *    data directory's file system has less than the configured reserve
 *    free, so the log never runs into a real ENOSPC (which would put the
 *    store into its sticky error state).  Deletions are always allowed.
 *  - Requests for a file group this site holds no container of answer
 *    -ESTALE (ss_srv.c).
 *  - Directories report size 4096 and 8 blocks; symlinks their target
 *    length and 0 blocks.
 *  - A READ (or an SS_FETCH with inline data) that meets pages the log
 *    refuses as damaged asks the replicator to repair the file from
 *    another copy (ss_pull.h [P5]) and answers -EHOSTUNREACH
 *    ("unavailable": the mount asks again until its deadline) while the
 *    repair is queued or running; -EIO when no other site holds the file
 *    group or the last repair failed.  The loop thread never waits for it.
 *  - Copies policies (ss_place.h): a site outside a regular file's
 *    placement keeps its row but no data: READ and LSEEK answer -EIO, a
 *    write (write open, truncation, FALLOCATE, COPY_RANGE's destination)
 *    asks the replicator to fetch the data first and answers
 *    -EHOSTUNREACH meanwhile ([L4]), -EIO when no copy with it answered.
 *  - COPY_RANGE copies at most SS_COPY_MAX bytes per request (a short
 *    count, as copy_file_range(2) allows); READ at most LP_FS_DATA_MAX.
 *
 * Ownership: the answer may point into memory the handler allocated; it
 * stays valid until ss_opctx_release().
 *
 * Threads: the loop thread only, and only while the container is not
 * parked for maintenance (ss_srv.c).
 *
 * Errors: the handler's return value is the answer's status (0 or
 * -errno as docs/protocol.md lists them); x->msg says why, for the log and
 * the answer's message.
 */
#ifndef SS_OPS_H
#define SS_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "lp_fs.h"
#include "ss_ct.h"
#include "ss_sess.h"

struct ss_pull;

#define SS_LINK_MAX 65000u
#define SS_MAX_FILE_SIZE ((uint64_t)INT64_MAX)
#define SS_COPY_MAX (64u << 20)
#define SS_XATTR_LIST_MAX (64u << 10)   /* names of one inode, NUL-separated */
#define SS_XATTR_TOTAL_MAX (1u << 20)   /* names + values of one inode */
#define SS_MEM_SLOTS 4

struct ss_opctx {
        /* in */
        struct ss_ct *ct;               /* the request's container */
        struct ss_sessions *sess;
        uint64_t client;                /* the peer's client id (ss_srv.h) */
        const char *data_dir;
        uint64_t space_reserve;         /* bytes that must stay free */
        struct ss_pull *pull;           /* repairs damaged pages (ss_pull.h [P5]); may be NULL */
        /* out */
        bool sync;                      /* answer once the log is flushed */
        uint64_t ino;                   /* the inode the error concerns (logs) */
        char msg[256];                  /* why it failed */
        void *mem[SS_MEM_SLOTS];        /* answer memory, freed by release */
        int nmem;
        uint8_t vv[SS_VV_MAX];          /* the vector of the answer's attr */
};

/* Run the file operation q->op (LOOKUP .. FORGET_ORPHAN) and fill a.
 * Returns a->status. */
int ss_op_run(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
void ss_opctx_release(struct ss_opctx *x);

/* Is op one of ours (a file operation on a container)? */
bool ss_op_is_file_op(uint32_t op);

/* Does q change a container (a name, an inode, an xattr, data, or opens a
 * write session)?  Only a group's primary takes those from mounts
 * (ss_srv_int.h [S9]); SS_INSTALL, the replicator's, is not one of them. */
bool ss_op_is_mutation(const struct lp_fs_req *q);

#endif
