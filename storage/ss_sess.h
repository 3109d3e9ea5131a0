/*
 * ss_sess.h -- write sessions: a dsm transaction holding one file's staged
 * pages, plus its pending attribute changes, named by a session id.
 *
 * A session id is boot << 32 | counter: boot is a random 32-bit number
 * drawn when the table is created (once per daemon start), counter counts
 * sessions opened since.  An id from an earlier boot is simply unknown:
 * ss_sess_find() returns NULL and the caller answers -ESTALE.
 *
 * Pending attributes: size (set by WRITE past the end, truncation,
 * FALLOCATE, COPY_RANGE), atime/mtime/ctime; `data` says pages changed
 * (the version bumps at commit).  COMMIT applies them in one changeset with
 * the transaction (ss_ops.c, ss_ops_data.c).
 *
 * Ownership: the table owns its sessions; a session owns its transaction
 * (NULL between a commit and the next begin) and its ext.  The container pointer is
 * borrowed: containers outlive every session.
 *
 * Threads: the daemon's loop thread only.
 *
 * Errors: ss_sess_new: -ENFILE (max sessions open), -ENOMEM, store errors
 * from dsm_txn_begin().
 */
#ifndef SS_SESS_H
#define SS_SESS_H

#include <stdbool.h>
#include <stdint.h>

#include "ss_ct.h"

#define SS_SESS_MAX_DEFAULT 1024u
#define SS_SESS_BUCKETS 1024u

struct ss_sess {
        uint64_t id;
        struct ss_ct *ct;
        uint64_t ino;
        uint64_t client;                /* client that opened it (ss_srv.h) */
        struct dsm_txn *txn;
        bool has_size, has_atime, has_mtime, has_ctime;
        uint64_t size;
        struct ss_time atime, mtime, ctime;
        bool data;                      /* pages staged or freed */
        bool pages_valid;               /* pages is known (ss_ops.c, ss_ops_data.c) */
        uint64_t pages;                 /* data pages as txn sees them */
        uint64_t last_used_us;          /* cm_now_us() */
        bool doomed;                    /* to be aborted at the next sweep */
        /* What an install session stages besides pages (ss_repl.c [R6]: a
         * directory's entries pulled in pieces); owned, freed by
         * ext_free(ext) when the session ends.  NULL for others. */
        void *ext;
        void (*ext_free)(void *ext);
        struct ss_sess *hnext;          /* hash chain */
        struct ss_sess *prev, *next;    /* every session, oldest first */
};

struct ss_sessions {
        uint32_t boot;
        uint32_t counter;
        unsigned n;
        unsigned max;
        struct ss_sess *head, *tail;
        struct ss_sess *bucket[SS_SESS_BUCKETS];
};

/* max 0 = SS_SESS_MAX_DEFAULT. */
void ss_sessions_init(struct ss_sessions *t, unsigned max);
/* End every session (aborting its transaction). */
void ss_sessions_clear(struct ss_sessions *t);
/* End every session on ct (before ct is closed for good); how many. */
unsigned ss_sessions_end_ct(struct ss_sessions *t, const struct ss_ct *ct);

/* Open a session on <ct, ino> for client, with a fresh transaction. */
int ss_sess_new(struct ss_sessions *t, struct ss_ct *ct, uint64_t ino, uint64_t client,
                struct ss_sess **ret);
/* The session with this id, or NULL (unknown, ended, or another boot). */
struct ss_sess *ss_sess_find(struct ss_sessions *t, uint64_t id);
/* End a session: abort its transaction, forget it, free it. */
void ss_sess_end(struct ss_sessions *t, struct ss_sess *s);
/* Forget the pending attributes (after a commit). */
void ss_sess_reset(struct ss_sess *s);

#endif
