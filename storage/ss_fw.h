/*
 * ss_fw.h -- the followers of one container's change stream
 * (docs/replication.md, "Push" and "sync_copies"): what the storage server
 * keeps per container for the other holders that pull from it.
 *
 *   watchers   SS_CHANGES requests with a wait that found nothing past
 *              their `since`: answered at the next commit of the container
 *              (ss_fw_committed) or when their wait runs out (ss_fw_expire).
 *   positions  per peer site, the highest `since` it asked SS_CHANGES for:
 *              a holder asks for changes past S only once it has installed,
 *              durably when the group's sync_copies > 1, everything up to
 *              S (ss_pull.h [P1], [P5]); so its position is an
 *              acknowledgement.
 *   copy waits answers (fsync) that must wait until `need` peer sites have
 *              positions >= their seq (ss_fw_ack), or fail at their
 *              deadline (ss_fw_expire).
 *
 * The module only keeps lists: each entry carries an opaque tag (the
 * server's parked request or pending answer), handed back exactly once,
 * through a callback or ss_fw_clear, and then forgotten [F1].  Entries are
 * kept in arrival order, so waiters are answered in that order.
 *
 * Limits: at most SS_FW_MAX watchers and SS_FW_MAX copy waits per
 * container (-ENOSPC beyond), SS_FW_SITES peer positions (the oldest
 * position is replaced beyond).
 *
 * Ownership: the caller owns the struct and the tags.  Threads: the
 * storage server's loop thread only.  Errors: -ENOSPC, -ENOMEM.
 */
#ifndef SS_FW_H
#define SS_FW_H

#include <stdint.h>

#define SS_FW_MAX 1024u
#define SS_FW_SITES 64u

struct ss_fw_ent;

struct ss_fw {
        struct ss_fw_ent *watch_head, *watch_tail;
        struct ss_fw_ent *copy_head, *copy_tail;
        unsigned nwatch, ncopy;
        struct {
                uint64_t site, pos, at_us;
        } pos[SS_FW_SITES];
        unsigned npos;
};

/* Called with an entry's tag when it leaves: err 0 (its event came), or
 * -ETIMEDOUT (its deadline passed). */
typedef void (*ss_fw_fn)(void *ctx, void *tag, int err);

void ss_fw_init(struct ss_fw *w);
/* Hand every tag back (watchers' to watch_fn, copy waits' to copy_fn,
 * with err) and empty the lists. */
void ss_fw_clear(struct ss_fw *w, int err, ss_fw_fn watch_fn, ss_fw_fn copy_fn, void *ctx);

/* A watcher of changes past since, until deadline_us (CLOCK_MONOTONIC). */
int ss_fw_watch(struct ss_fw *w, uint64_t since, uint64_t deadline_us, void *tag);
/* The container's seq is now seq: every watcher with since < seq leaves. */
void ss_fw_committed(struct ss_fw *w, uint64_t seq, ss_fw_fn fn, void *ctx);

/* Peer site `site` asked for changes past pos: record it (positions only
 * grow), then every copy wait it satisfies leaves. */
void ss_fw_ack(struct ss_fw *w, uint64_t site, uint64_t pos, uint64_t now_us, ss_fw_fn fn, void *ctx);
/* How many peer sites have positions >= seq. */
unsigned ss_fw_count(const struct ss_fw *w, uint64_t seq);
/* A copy wait: tag leaves once `need` peer sites reached seq.  Returns 1
 * (satisfied now; not kept: the caller answers), 0 (kept), or an error. */
int ss_fw_wait_copies(struct ss_fw *w, uint64_t seq, unsigned need, uint64_t deadline_us, void *tag);

/* Entries whose deadline is <= now leave with -ETIMEDOUT (watchers
 * through watch_fn, copy waits through copy_fn). */
void ss_fw_expire(struct ss_fw *w, uint64_t now_us, ss_fw_fn watch_fn, ss_fw_fn copy_fn, void *ctx);
/* The earliest deadline kept, or 0 if none. */
uint64_t ss_fw_next_deadline(const struct ss_fw *w);

#endif
