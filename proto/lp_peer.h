/*
 * lp_peer.h -- the asynchronous peer client: one authenticated link from a
 * daemon's libuv loop to another daemon's lp_server, kept up by itself,
 * with calls answered through callbacks and the server's own frames
 * (pushes) delivered as they come.  It is what a daemon uses to talk to a
 * peer without a thread per connection (lp_conn.h's lp_client blocks its
 * caller; the mount and locusctl keep using it).
 *
 * The link: lp_peer_new() starts connecting at once (a non-blocking
 * connect bound to the source address, then the handshake of lp_conn.h,
 * both within connect_timeout_ms).  When the link is up, on_up says so with
 * the site the server proved; when it breaks (the peer closed, a malformed
 * or oversized frame, a write that cannot be queued, a connect or
 * handshake that failed or timed out), every call in flight is answered
 * with the error, on_down says why, and the link is tried again after a
 * backoff that doubles from backoff_min_ms to backoff_max_ms (reset once
 * a link came up).  on_down is called once per outage: for the break of an
 * up link, or for the first failed attempt after start or after a break;
 * later failures of the same outage are counted (lp_peer_stats) but not
 * reported again.
 *
 * Calls: lp_peer_call() sends a request (flags 0, a fresh reqid) and
 * answers it exactly once through its callback, never from inside
 * lp_peer_call(): with 0 and the reply (type, payload: LP_MSG_STATUS
 * carries an error, decode it with lp_status_unpack()), or with
 * -ETIMEDOUT (no reply within timeout_ms; a late reply is dropped),
 * -ECONNRESET / the link's error (the link broke first), or -ECANCELED
 * (lp_peer_close()).  A call made while the link is not up fails at once
 * with -ENOTCONN (the caller decides whether to wait for on_up); a
 * payload over the frame limit with -EMSGSIZE.
 *
 * Pushes: a frame from the server without LP_F_REPLY (a notification or
 * the server's own request) goes to on_push; lp_peer_send() sends any
 * frame (a reply to such a request, or a notification of ours).
 *
 * Threads: everything on the loop's thread; every function must be called
 * from it.  Callbacks may call any lp_peer function, lp_peer_close()
 * included (no callback follows for that peer but the answers of its
 * calls, with -ECANCELED, from inside lp_peer_close()).
 *
 * Ownership: the caller owns the loop; the peer owns its handles.  After
 * lp_peer_close() the struct is freed once its handles have closed (the
 * loop must run until then).  Payloads passed to callbacks are valid
 * during the call only.
 *
 * Errors (negative errno): -EINVAL (bad option: host or source not a
 * numeric address, port 0), -ENOMEM, -ENOTCONN, -EMSGSIZE, -ENOBUFS (the
 * server does not read: queued output over the bound; the link breaks),
 * and as answers the errors above plus lp_conn.h's handshake errors
 * (-EKEYREJECTED, -EPROTONOSUPPORT, -EPROTO) and connect(2)'s
 * (-ECONNREFUSED, ...).
 */
#ifndef LP_PEER_H
#define LP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lp_key.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_PEER_CONNECT_MS 5000u
#define LP_PEER_BACKOFF_MIN_MS 100u
#define LP_PEER_BACKOFF_MAX_MS 5000u

struct lp_peer;

struct lp_peer_opts {
        const char *host;               /* the server: numeric IPv4 or IPv6 address */
        uint16_t port;
        const uint8_t *key;             /* LP_KEY_SIZE bytes, copied */
        uint64_t site_id;               /* the site we prove */
        uint64_t client_id;             /* 0: none (lp_conn.h "Client identity") */
        const char *source;             /* bind to this address; NULL: lp_client_source() */
        size_t max_frame;               /* 0: LP_MAX_FRAME */
        size_t max_queued;              /* 0: 4 * max_frame + header */
        uint32_t connect_timeout_ms;    /* 0: LP_PEER_CONNECT_MS */
        uint32_t backoff_min_ms;        /* 0: LP_PEER_BACKOFF_MIN_MS */
        uint32_t backoff_max_ms;        /* 0: LP_PEER_BACKOFF_MAX_MS */
};

struct lp_peer_callbacks {
        void (*on_up)(struct lp_peer *p, uint64_t peer_site);
        /* err < 0; why says what happened, with the address */
        void (*on_down)(struct lp_peer *p, int err, const char *why);
        void (*on_push)(struct lp_peer *p, uint16_t type, uint16_t flags, uint64_t reqid,
                        const void *payload, size_t len);
};

/* The answer of a call: err 0 with the reply, or < 0 (type 0, no payload). */
typedef void (*lp_peer_reply_fn)(void *arg, int err, uint16_t type, const void *payload, size_t len);

struct lp_peer_stats {
        uint64_t ups;                   /* links that came up */
        uint64_t attempts;              /* connects started */
        uint64_t calls, replies, timeouts;
        uint64_t pushes;
        uint64_t late_replies;          /* dropped: their call had ended */
};

int lp_peer_new(uv_loop_t *loop, const struct lp_peer_opts *o, const struct lp_peer_callbacks *cb,
                void *data, struct lp_peer **ret);
void *lp_peer_data(const struct lp_peer *p);
bool lp_peer_is_up(const struct lp_peer *p);
/* The site the server proved (0 before the first link came up). */
uint64_t lp_peer_site(const struct lp_peer *p);
/* "host:port" of the server. */
const char *lp_peer_addr(const struct lp_peer *p);
void lp_peer_stats(const struct lp_peer *p, struct lp_peer_stats *ret);

int lp_peer_call(struct lp_peer *p, uint16_t type, const void *payload, size_t len, uint32_t timeout_ms,
                 lp_peer_reply_fn fn, void *arg);
int lp_peer_send(struct lp_peer *p, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                 size_t len);

/*
 * Point the link at another address (a server that moved: a restarted
 * daemon on a new port).  The current link, if any, is closed (its calls
 * answered with -ECONNRESET) and a new one is tried at once.  -EINVAL.
 */
int lp_peer_set_addr(struct lp_peer *p, const char *host, uint16_t port);

/* Break the link now and try again at once (e.g. the server is known to
 * be back); calls in flight are answered with -ECONNRESET. */
void lp_peer_reconnect(struct lp_peer *p);

void lp_peer_close(struct lp_peer *p);

#ifdef __cplusplus
}
#endif

#endif
