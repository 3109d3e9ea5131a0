/*
 * css_lease.h -- the CSS's table of clients that name a client id in the
 * handshake (mounts, lp_conn.h "Client identity"): how many connections
 * each has, and since when it has had none.  A client with no connection
 * for the lease is expired: the CSS then releases its opens (css_otab.h).
 * A client that reconnects in time keeps everything.
 *
 * Limits: CSS_MAX_CLIENTS clients (-ENOSPC beyond).
 * Threads: one thread at a time (the CSS loop thread).
 * Errors: -ENOMEM, -ENOSPC.
 */
#ifndef CSS_LEASE_H
#define CSS_LEASE_H

#include <stdint.h>

#define CSS_MAX_CLIENTS 65536u

struct css_leases;

int css_leases_new(struct css_leases **ret);
void css_leases_free(struct css_leases *t);

/* A connection of client id opened. */
int css_lease_connected(struct css_leases *t, uint64_t id);
/* A connection of client id closed at now (us); unknown ids are ignored. */
void css_lease_disconnected(struct css_leases *t, uint64_t id, uint64_t now);
/* Remove every client without a connection since before now - lease_us,
 * calling expired for each (it may not call back into t). */
void css_leases_expire(struct css_leases *t, uint64_t now, uint64_t lease_us,
                       void (*expired)(void *arg, uint64_t id), void *arg);
/* Clients known, and of those with a live connection. */
void css_leases_count(const struct css_leases *t, uint64_t *ret_known, uint64_t *ret_connected);

#endif
