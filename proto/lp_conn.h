/*
 * lp_conn.h -- authenticated LocusFS connections: the server side on a
 * libuv loop (lp_server.c) and a blocking client (lp_client.c).
 *
 * One module, two implementation files: the two sides share the handshake
 * (lp_hs.c) and the guarantees below, but nothing else, and a daemon links
 * both (storaged serves and is a client of other sites).
 *
 * Handshake (every frame is an lp_frame.h frame; before it completes frames
 * are limited to LP_HS_MAX_FRAME = 1 KiB, reqid 0, flags 0):
 *
 *   server -> client  LP_MSG_SERVER_HELLO  ServerHello{version, server site,
 *                                          sn = 32 random bytes}
 *   client -> server  LP_MSG_CLIENT_HELLO  ClientHello{version, client site,
 *                                          cn = 32 random bytes, mac_c,
 *                                          [client_id]}
 *   server -> client  LP_MSG_SERVER_AUTH   ServerAuth{mac_s}
 *
 *   mac_c = HMAC-SHA-256(key, "locus-client" || u32 version || sn || cn
 *                             || u64 server site || u64 client site)
 *   mac_s = HMAC-SHA-256(key, "locus-server" || u32 version || cn || sn
 *                             || u64 server site || u64 client site)
 *   (integers little-endian; every field fixed-width, so the inputs cannot
 *   be re-cut; the labels keep one side's proof from being replayed as the
 *   other's; fresh nonces on both sides keep a recorded handshake from being
 *   replayed.)  MACs are compared in constant time (crypto_verify_32).
 *
 * Client identity: client_id (optional, u64) names one client across all
 * its connections and reconnections, where the site id cannot: every
 * mount of a site proves the same site (0).  A mount draws it at random
 * at start (LP_CLIENT_ID_BIT set, so it never equals a site id) and keeps
 * it until it exits; servers key the state a client holds (write
 * sessions, opens) by it and release that state once the client has had
 * no connection for a lease.  It is not part of the MACs: it is a name,
 * not a secret, and like every frame after the handshake it is only as
 * trustworthy as a holder of the cluster key.
 *
 * The server checks mac_c before it sends anything that depends on the key;
 * the client checks mac_s before lp_client_connect() returns.  A version
 * other than LP_PROTO_VERSION is answered with a Status{LOCUS_PROTOCOL}
 * frame and the connection is closed (by whichever side noticed); a wrong
 * mac_c is answered with Status{LOCUS_AUTH} and closed.  Before the
 * handshake completes, any other frame, a malformed or oversized frame, or
 * silence longer than the handshake timeout (default 10 s) closes the
 * connection.  After it, a malformed or oversized frame, or a handshake
 * message, closes the connection.  Each such failure affects that one
 * connection only.
 *
 * Message types 0 and the handshake's (LP_MSG_SERVER_HELLO,
 * LP_MSG_CLIENT_HELLO, LP_MSG_SERVER_AUTH) cannot be sent through this API
 * (-EINVAL); LP_MSG_STATUS and LP_MSG_USER_MIN.. can.
 *
 * Requests and replies: a reply carries LP_F_REPLY and the request's reqid.
 * Frames without LP_F_REPLY are requests or notifications in either
 * direction; their reqid is the sender's business (0 for "no reply wanted").
 *
 * ---- Server (libuv) ----
 *
 * Threads: everything runs on the loop's thread; every lp_server_* function
 * must be called from it (libuv handles are not thread-safe).
 *
 * Ownership and lifetime: the caller owns the uv loop; the server owns its
 * handles and connections.  A struct lp_conn is valid from on_connect until
 * on_close returns; on_close is called exactly once for every connection
 * that got on_connect (never for one that failed the handshake), from a
 * libuv close callback, after which the memory is freed.  Connections that
 * fail before on_connect are only reported through the log callback.
 * lp_server_close() starts shutdown; the struct lp_server is freed in the
 * last close callback (at once if it never had a handle), so run the loop
 * until it has no more handles.
 * Callbacks may call lp_server_conn_close() and lp_server_close(); no
 * further on_frame is delivered for a connection once it is closing.
 *
 * Signals: libuv writes sockets with write(2), which raises SIGPIPE when
 * the peer has gone; lp_server_new() therefore sets SIGPIPE to SIG_IGN if
 * it is still SIG_DFL (what every network daemon does; note that an ignored
 * signal stays ignored across exec, so reset it in children that need it).
 * A disposition the program chose itself is left alone.  The client never
 * raises SIGPIPE (it sends with MSG_NOSIGNAL) and changes no disposition.
 *
 * Logging: the server reports each connection's end exactly once through
 * cb->log with the peer address ("127.0.0.1:40312", plus " site N" once
 * authenticated) and the cause; failures at LOG_WARNING/LOG_NOTICE, normal
 * ends (peer hung up, lp_server_conn_close(), shutdown) at LOG_DEBUG.
 * A client that gives up during the handshake may say why with a Status
 * frame; that text is logged with control characters replaced.  Refused
 * connections (over max_conns, which counts connections still in the
 * handshake too) are logged at most once a second.
 *
 * Errors (negative errno): -EINVAL bad argument; -ENOMEM; libuv errors
 * (which are negative errno on Linux) from listen; lp_server_send:
 * -ENOTCONN (connection closing), -EMSGSIZE (payload over the connection's
 * frame limit), -ENOBUFS (the peer does not read: the queued output would
 * exceed the bound, and the connection is being closed).
 *
 * ---- Client (blocking) ----
 *
 * Threads: a struct lp_client is used by one thread at a time (typically
 * one thread per connection); there is no global state besides libsodium's
 * own initialisation, so different clients may be used concurrently.
 *
 * Every wait is bounded: a timeout returns -ETIMEDOUT (timeout_ms < 0
 * means no limit, 0 means do not wait).  A peer that closed gives
 * -ECONNRESET (or -EPIPE when noticed while sending); a malformed or
 * oversized frame from the peer gives -EBADMSG/-EPROTONOSUPPORT/-EMSGSIZE.
 * Those errors, and a send that timed out after part of a frame went out,
 * break the connection: every later call returns the same error (sticky);
 * the only thing left to do is lp_client_close().  A receive timeout does
 * not break it.  Name resolution (getaddrinfo) is not bounded by the
 * timeout; pass numeric addresses where that matters.
 *
 * lp_client_connect() errors besides the above: -EKEYREJECTED (the server
 * refused our proof, or the server's proof is wrong: not the same cluster
 * key), -EPROTONOSUPPORT (the server speaks another protocol version),
 * -EPROTO (the server reported a protocol error), connect(2) errors such as
 * -ECONNREFUSED, -EINVAL for a host that does not parse or resolve.
 */
#ifndef LP_CONN_H
#define LP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lp_frame.h"
#include "lp_key.h"
#include "lp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol version spoken in the handshake; both sides must agree. */
#define LP_PROTO_VERSION 1u

#define LP_HANDSHAKE_TIMEOUT_MS 10000u
/* Set in every client id a mount draws (see "Client identity" above). */
#define LP_CLIENT_ID_BIT (1ull << 63)
/* Default bound on output queued for one connection. */
#define LP_MAX_QUEUED ((size_t)4 * LP_MAX_FRAME)
#define LP_MAX_CONNS 4096u
/* Default time lp_client_send() may wait for the socket to take data. */
#define LP_CLIENT_SEND_TIMEOUT_MS 30000
/* Bound on frames lp_client_call() keeps aside for lp_client_recv(). */
#define LP_CLIENT_MAX_KEPT 1024u

struct lp_server;
struct lp_conn;
struct lp_client;

struct lp_server_callbacks {
        /* The peer proved the cluster key; the connection is usable. */
        void (*on_connect)(struct lp_conn *conn, uint64_t peer_site);
        /*
         * An authenticated frame.  payload (NULL when len == 0) is valid
         * until the callback returns.
         */
        void (*on_frame)(struct lp_conn *conn, uint16_t type, uint16_t flags,
                         uint64_t reqid, const void *payload, size_t len);
        /* Last call for conn; it is freed when this returns. */
        void (*on_close)(struct lp_conn *conn);
        /* prio is a syslog level; peer and msg are valid during the call. */
        void (*log)(struct lp_server *srv, int prio, const char *peer, const char *msg);
};

/*
 * Create a server speaking for site_id with the cluster key (copied).
 * cb is copied; any callback may be NULL.  data is returned by
 * lp_server_get_data().
 */
int lp_server_new(uv_loop_t *loop, const uint8_t key[LP_KEY_SIZE], uint64_t site_id,
                  const struct lp_server_callbacks *cb, void *data,
                  struct lp_server **ret_srv);
void *lp_server_get_data(const struct lp_server *srv);

/*
 * Settings; they apply to connections accepted afterwards.
 *   max_frame:          payload limit after the handshake,
 *                       1..LP_FRAME_HARD_MAX (default LP_MAX_FRAME);
 *   handshake_timeout:  ms, > 0 (default LP_HANDSHAKE_TIMEOUT_MS);
 *   max_queued:         bytes of output queued per connection before it is
 *                       closed, >= LP_FRAME_HDR + max_frame (default
 *                       LP_MAX_QUEUED);
 *   max_conns:          connections at once, > 0 (default LP_MAX_CONNS).
 * Return 0 or -EINVAL.
 */
int lp_server_set_max_frame(struct lp_server *srv, size_t max_frame);
int lp_server_set_handshake_timeout(struct lp_server *srv, uint32_t ms);
int lp_server_set_max_queued(struct lp_server *srv, size_t bytes);
int lp_server_set_max_conns(struct lp_server *srv, unsigned n);

/*
 * Listen on host (numeric IPv4 or IPv6 address) and port (0: any free
 * port).  *ret_port (may be NULL) gets the port bound.  Once per server
 * (-EBUSY after).
 */
int lp_server_listen(struct lp_server *srv, const char *host, uint16_t port,
                     uint16_t *ret_port);

/*
 * Stop listening and close every connection (on_close for authenticated
 * ones).  The server is freed in the last libuv close callback; do not use
 * srv after this call.
 */
void lp_server_close(struct lp_server *srv);

/*
 * Queue one frame for conn.  The payload is copied (the caller keeps its
 * buffer); the frame goes out in order after earlier ones.  See above for
 * errors; on -ENOBUFS the connection is being closed.
 */
int lp_server_send(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                   const void *payload, size_t len);
/* lp_server_send() with LP_F_REPLY. */
int lp_server_reply(struct lp_conn *conn, uint64_t reqid, uint16_t type,
                    const void *payload, size_t len);
/* Reply with a Status message (message may be NULL). */
int lp_server_reply_status(struct lp_conn *conn, uint64_t reqid, enum lp_status code,
                           const char *message);

/*
 * Close conn (queued output not yet written is dropped).  on_close follows
 * from the loop.  Safe to call more than once and from any callback.
 */
void lp_server_conn_close(struct lp_conn *conn);

void lp_server_conn_set_data(struct lp_conn *conn, void *data);
void *lp_server_conn_get_data(const struct lp_conn *conn);
struct lp_server *lp_server_conn_server(const struct lp_conn *conn);
uint64_t lp_server_conn_site(const struct lp_conn *conn);
/* The client id the peer named in its ClientHello, 0 if none. */
uint64_t lp_server_conn_client(const struct lp_conn *conn);
/* "addr:port" of the peer; valid as long as conn. */
const char *lp_server_conn_peer(const struct lp_conn *conn);
/* Bytes queued and not yet written. */
size_t lp_server_conn_queued(const struct lp_conn *conn);
/* Change this connection's frame limit (1..LP_FRAME_HARD_MAX), both ways. */
int lp_server_conn_set_max_frame(struct lp_conn *conn, size_t max_frame);

/*
 * Connect to host:port (numeric or resolvable), authenticate as site_id
 * with the cluster key (copied), all within timeout_ms (> 0).  On success
 * *ret_client is a ready connection.
 */
int lp_client_connect(const char *host, uint16_t port, const uint8_t key[LP_KEY_SIZE],
                      uint64_t site_id, int timeout_ms, struct lp_client **ret_client);

/*
 * The source address of every outgoing connection of this process: a
 * numeric IPv4 or IPv6 address that each new socket is bound to (port 0)
 * before it connects, so that a site's traffic leaves from the site's own
 * address.  NULL or "" clears it (the kernel chooses, as by default).
 * Call once at start, before any thread connects: it is read without a
 * lock.  -EINVAL: not a numeric address.  A connection to a host of the
 * other family then fails with -EAFNOSUPPORT.
 * lp_client_source(): the address set, or NULL.
 * lp_client_bind_source(): bind fd (a new socket of family) to it, for
 * connections made outside lp_client (a libuv loop: uv_tcp_bind before
 * uv_tcp_connect); 0 when none is set.
 */
int lp_client_set_source(const char *host);
const char *lp_client_source(void);
int lp_client_bind_source(int fd, int family);

/* The same, naming client_id in the ClientHello (0: none, as above). */
int lp_client_connect_as(const char *host, uint16_t port, const uint8_t key[LP_KEY_SIZE],
                         uint64_t site_id, uint64_t client_id, int timeout_ms,
                         struct lp_client **ret_client);

/* A fresh random client id (LP_CLIENT_ID_BIT set).  0 or -EIO (libsodium
 * cannot start). */
int lp_client_id_new(uint64_t *ret_id);

/* Close and free; NULL is fine. */
void lp_client_close(struct lp_client *c);

/* The server's site id, as it proved it in the handshake. */
uint64_t lp_client_peer_site(const struct lp_client *c);

/* A fresh request id from the same counter lp_client_call() uses (never 0). */
uint64_t lp_client_next_reqid(struct lp_client *c);

/*
 * Frame limit for both directions (1..LP_FRAME_HARD_MAX; default
 * LP_MAX_FRAME): a longer send is refused with -EMSGSIZE, a longer frame
 * from the peer breaks the connection.  Send timeout: how long
 * lp_client_send() waits for the socket (ms, > 0).  Return 0 or -EINVAL.
 */
int lp_client_set_max_frame(struct lp_client *c, size_t max_frame);
int lp_client_set_send_timeout(struct lp_client *c, int timeout_ms);

/*
 * Send one frame (payload may be NULL when len == 0), waiting at most the
 * send timeout for the socket.  Returns 0 or a negative errno.
 */
int lp_client_send(struct lp_client *c, uint16_t type, uint16_t flags, uint64_t reqid,
                   const void *payload, size_t len);

/*
 * Receive the next frame: frames kept aside by lp_client_call() first, in
 * arrival order, then from the socket.  *ret_payload is malloc'ed (NULL
 * when *ret_len == 0) and owned by the caller (free()).  Outputs are
 * written on success only.
 */
int lp_client_recv(struct lp_client *c, int timeout_ms, uint16_t *ret_type,
                   uint16_t *ret_flags, uint64_t *ret_reqid, void **ret_payload,
                   size_t *ret_len);

/*
 * Send a request (flags 0, a fresh reqid) and wait, at most timeout_ms for
 * the whole exchange, for the frame carrying LP_F_REPLY and that reqid.
 * Meanwhile:
 *  - frames without LP_F_REPLY (the server's own requests and
 *    notifications) are kept, up to LP_CLIENT_MAX_KEPT frames and
 *    2 * max_frame bytes, for lp_client_recv(); beyond that the connection
 *    breaks with -ENOBUFS;
 *  - replies with another reqid are dropped: they answer calls that timed
 *    out.  So do not mix lp_client_call() with replies you expect through
 *    lp_client_recv() on the same connection.
 * *ret_payload is malloc'ed (NULL when *ret_len == 0), owned by the caller.
 * A reply of type LP_MSG_STATUS carries an error; decode it with
 * lp_status_unpack().  On -ETIMEDOUT the connection stays usable (a late
 * reply will be dropped) unless the request itself timed out half-sent,
 * which breaks it.
 */
int lp_client_call(struct lp_client *c, uint16_t type, const void *payload, size_t len,
                   int timeout_ms, uint16_t *ret_type, void **ret_payload,
                   size_t *ret_len);

#ifdef __cplusplus
}
#endif

#endif
