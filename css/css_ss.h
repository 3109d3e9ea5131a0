/*
 * css_ss.h -- the CSS as a client of storage sites: one blocking request
 * and its answer (LOOKUP, GETATTR, MKDIR, READDIR, RMDIR, SS_FG_CREATE),
 * over authenticated lp_client connections kept in a pool.
 *
 * The CSS's loop thread never calls this module: requests run on the libuv
 * threadpool (uv_queue_work), so that a slow or dead storage site cannot
 * stall the loop.  Each call is bounded: connecting by connect_ms, the
 * exchange by call_ms.
 *
 * Pool: a connection that answered goes back to the pool, keyed by <site,
 * host, port>, at most CSS_SS_IDLE_MAX idle connections in all (the oldest
 * is closed first).  A pooled connection may have been closed by the peer
 * meanwhile (a restarted storage site): if a call on a pooled connection
 * fails with a transport error, it is retried once on a fresh connection.
 * A call that timed out closes its connection (the late answer must not be
 * read as the answer to the next call).
 *
 * Ownership: the pool owns its connections; css_ss_call() hands the
 * decoded answer to the caller, who releases it with lp_fs_resp_release().
 *
 * Threads: any number of threads may call css_ss_call() at once (the pool
 * has a mutex; a connection is used by one thread at a time).
 * css_ss_pool_free() only when no call is running.
 *
 * Errors of css_ss_call(): a transport failure as a negative errno
 * (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -EKEYREJECTED, ...; from
 * lp_client_connect/lp_client_call), -EBADMSG (the answer does not parse),
 * -ENOMEM.  An answer with a non-zero status is a success of the call: look
 * at ret_resp->status.  err_text gets a description of a transport failure
 * (may be NULL).
 */
#ifndef CSS_SS_H
#define CSS_SS_H

#include <stddef.h>
#include <stdint.h>

#include "lp_conn.h"
#include "lp_fs.h"

#define CSS_SS_IDLE_MAX 16u
#define CSS_SS_CONNECT_MS 5000
#define CSS_SS_CALL_MS 15000

struct css_ss_pool;

int css_ss_pool_new(const uint8_t key[LP_KEY_SIZE], uint64_t my_site, int connect_ms, int call_ms,
                    struct css_ss_pool **ret);
void css_ss_pool_free(struct css_ss_pool *p);

int css_ss_call(struct css_ss_pool *p, uint64_t site, const char *host, uint16_t port,
                const struct lp_fs_req *req, struct lp_fs_resp *ret_resp, char *err_text,
                size_t err_cap);

#endif
