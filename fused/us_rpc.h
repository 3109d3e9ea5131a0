/*
 * us_rpc.h -- requests from the mount to the storage sites and the CSS:
 * one lp_fs_req out, one lp_fs_resp back, with reconnection, retries and a
 * deadline.
 *
 * Connections: every thread keeps its own authenticated lp_client
 * connections (one per peer address, at most US_RPC_CONNS_PER_THREAD, least
 * recently used closed first), made lazily on the first call and closed
 * when the thread exits (a pthread key destructor) or by
 * us_rpc_close_thread().  So no connection is ever shared between threads,
 * and a FUSE worker thread never waits for another one's request.
 *
 * A call has a deadline (CLOCK_MONOTONIC microseconds, cm_now_us()); it
 * never waits past it.  Until then:
 *   - a refused or failed connect (the peer is down or restarting), or a
 *     cached connection found closed before the request went out, is
 *     retried with exponential backoff (10 ms doubling to 1 s), calling
 *     target->resolve before each new connection so that a new address
 *     (port file, mount table) is picked up;
 *   - once the request is on the wire, a connection that breaks before the
 *     answer arrives is retried only if the request is safe to send twice
 *     (US_RESEND_ANY: reads, lookups, absolute setattr, writes of the same
 *     bytes at the same offset, ...); otherwise (US_RESEND_UNSENT: create,
 *     mkdir, unlink, rename, link, symlink, the final commit) the call
 *     fails with -EIO, since the request may or may not have been done;
 *   - a request whose answer does not come is not resent on the same
 *     connection.
 * Held off: an address that no connection reached during a whole call
 * (every connect attempt timed out: a network cut, a machine gone; a
 * refused connect, i.e. a daemon restarting, does not count) is held off
 * (logged once).  A later call to it makes one connection attempt (at most
 * US_RPC_CONNECT_MS) and, if that fails, fails at once with -EHOSTUNREACH
 * instead of trying until its deadline; a connection that succeeds ends
 * the hold-off.  So a cut-off site costs the first call the whole timeout
 * and the next ones a couple of seconds.
 * When the deadline passes the call fails with -ETIMEDOUT (logged, at most
 * once every 5 s per rpc, naming the peer and the last cause).  Answers
 * are the call's result, with two exceptions, both asked again with
 * backoff until the deadline: an "unavailable" answer (-EHOSTUNREACH: the
 * peer cannot serve it yet, e.g. a restarted CSS that does not know the
 * storage site again yet) to a US_RESEND_ANY request; and a "busy" answer
 * (-EAGAIN) from a target with busy_retry set (the CSS: too many requests
 * wait for storage sites; it refused before doing anything, so any
 * request may be sent again).  If the deadline passes meanwhile the call
 * fails with -ETIMEDOUT, the log naming the last answer.
 *
 * Cancellation: call->stop (may be NULL) is asked between attempts (a
 * connection attempt lasts at most US_RPC_CONNECT_MS) and every
 * US_RPC_SLICE_MS while waiting for an answer.  (Sending is not sliced: a
 * peer that stopped reading with a full socket buffer holds a large write
 * until the deadline.)  It returns 0 (go on), -EINTR (the
 * caller was interrupted: honoured only before the request went out) or
 * -ESHUTDOWN (the mount is going away: honoured at once; the call returns
 * -ESHUTDOWN).
 *
 * Identity: a struct us_rpc is one client of the cluster.  us_rpc_new()
 * draws a random client id (lp_client_id_new) that every connection names
 * in its handshake, whichever thread makes it and however often it
 * reconnects; the servers key this mount's write sessions and opens by it
 * and release them once it has had no connection for their lease
 * (docs/protocol.md, "Clients and leases").
 *
 * Ownership: us_rpc_call() fills *ret (decoded, owning its memory) only on
 * success; release it with lp_fs_resp_release().  The target and request
 * belong to the caller; the call only reads them, except that t->addr is
 * set to the address last tried (the one that answered, on success).
 *
 * Threads: us_rpc_call() from any thread; us_rpc_free() only when no other
 * thread uses the rpc any more (threads that used it may still exit later:
 * their connections are closed by the key destructor, which does not touch
 * the struct us_rpc).
 *
 * Errors of us_rpc_call(): the peer's status (negative errno; only when
 * the answer's status is not 0, *ret is then not filled), -ETIMEDOUT,
 * -EIO (outcome unknown, or the peer spoke nonsense, or it refused our key:
 * logged), -EINTR, -ESHUTDOWN, -ENOMEM, -EINVAL (request over a limit).
 */
#ifndef US_RPC_H
#define US_RPC_H

#include <stdbool.h>
#include <stdint.h>

#include "lp_fs.h"
#include "lp_key.h"
#include "us_mtab.h"

#define US_RPC_CONNS_PER_THREAD 8
#define US_RPC_HELD 16                  /* addresses held off at once */
#define US_RPC_SLICE_MS 200
/* One connection attempt (TCP + handshake) at most; then try again. */
#define US_RPC_CONNECT_MS 2000
#define US_RPC_BACKOFF_MIN_US 10000u
#define US_RPC_BACKOFF_MAX_US 1000000u

enum us_resend {
        US_RESEND_ANY = 0,      /* idempotent: resend after a broken connection */
        US_RESEND_UNSENT = 1,   /* resend only if it never went out; else -EIO */
};

struct us_target {
        const char *what;       /* for logs: "css", "storage site" */
        struct us_site addr;    /* where to connect (first attempt) */
        /*
         * May be NULL.  Called before every connection attempt after the
         * first (attempt >= 1) to get a fresh address into *addr; it must
         * not wait past deadline (the call's).  A
         * negative return is a transient failure (retried until the
         * deadline) except -ENOENT/-ESTALE, which end the call with that
         * error.
         */
        int (*resolve)(void *arg, uint32_t key, unsigned attempt, uint64_t deadline,
                       struct us_site *addr);
        void *resolve_arg;
        uint32_t resolve_key;
        /* -EAGAIN answers mean "busy, nothing done": ask again (the CSS).
         * -EREMCHG answers ("not the primary", nothing done) are always
         * asked again (through resolve when there is one). */
        bool busy_retry;
};

struct us_call {
        uint64_t deadline;
        int (*stop)(void *arg);
        void *stop_arg;
};

struct us_rpc;

/* key is copied; my_site is what we claim in handshakes.  Errors:
 * -ENOMEM, -EIO (no randomness for the client id), pthread errors. */
int us_rpc_new(const uint8_t key[LP_KEY_SIZE], uint64_t my_site, struct us_rpc **ret);
/* The client id drawn by us_rpc_new(). */
uint64_t us_rpc_client_id(const struct us_rpc *rpc);
void us_rpc_free(struct us_rpc *rpc);

int us_rpc_call(struct us_rpc *rpc, struct us_target *t, const struct us_call *call,
                const struct lp_fs_req *req, enum us_resend resend, struct lp_fs_resp *ret);

/* Close the calling thread's connections of this rpc. */
void us_rpc_close_thread(struct us_rpc *rpc);

/* Counters, for tests and the debug log. */
struct us_rpc_stats {
        uint64_t calls, connects, connect_failures, resends, timeouts;
        uint64_t busy;                  /* "busy" answers asked again */
        uint64_t moved;                 /* "not the primary" answers asked again elsewhere */
};
void us_rpc_stats(struct us_rpc *rpc, struct us_rpc_stats *ret);

#endif
