/*
 * lp_server.c -- the server side of lp_conn.h, on one libuv loop.
 *
 * Connection states and the functions that move between them:
 *
 *   accepted --on_connection--> HELLO (ServerHello sent, timer armed)
 *   HELLO --handle_hello (good ClientHello)--> AUTHED (on_connect)
 *   HELLO --handle_hello (bad) / timeout / bad frame--> CLOSING
 *   AUTHED --peer EOF / bad frame / lp_server_conn_close /
 *            lp_server_close / output bound--> CLOSING
 *   CLOSING --on_conn_handle_closed (both handles)--> freed (on_close first
 *            if AUTHED was reached)
 *
 * Invariants:
 *   (1) conn_close() is the only way into CLOSING; it logs the cause once
 *       and closes both handles; nothing is delivered after it.
 *   (2) A conn is freed only in the close callback of its last handle
 *       (pending == 0); write requests are freed in their write callback,
 *       which libuv runs (with UV_ECANCELED if need be) before that.
 *   (3) The server is freed only when it is closing, its listener is
 *       closed and no connection remains (srv_maybe_free()).
 *   (4) Before AUTHED the decoder limit is LP_HS_MAX_FRAME, so an
 *       unauthenticated peer can make us allocate at most 1 KiB per frame.
 */
#include "lp_conn.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sodium.h>

#include "lp_hs_int.h"

enum listener_state { L_NONE, L_OPEN, L_CLOSING };

struct lp_server {
        uv_loop_t *loop;
        uint8_t key[LP_KEY_SIZE];
        uint64_t site_id;
        struct lp_server_callbacks cb;
        void *data;
        size_t max_frame;
        uint32_t hs_timeout_ms;
        size_t max_queued;
        unsigned max_conns;

        uv_tcp_t listener;
        enum listener_state lstate;
        bool closing;
        unsigned nconns;                /* conns not yet freed */
        struct lp_conn *conns;          /* doubly linked */

        uint64_t refused_log_ms;        /* last "too many connections" log */
        unsigned long refused;          /* refused since that log */
        /*
         * One read buffer for all connections: libuv fills it and calls
         * on_read, which consumes it entirely before returning, and the
         * loop is single-threaded.
         */
        uint8_t rbuf[64 * 1024];
};

struct lp_conn {
        struct lp_server *srv;
        struct lp_conn *prev, *next;
        uv_tcp_t tcp;
        uv_timer_t timer;
        int pending;                    /* handles not yet closed */
        bool authed;
        bool closing;
        struct lp_decoder *dec;
        uint8_t nonce[LP_NONCE_SIZE];
        uint64_t peer_site;
        uint64_t peer_client;           /* ClientHello client_id, 0 if none */
        size_t max_frame;
        size_t max_queued;
        void *data;
        char peer[96];
};

/* A queued write: the frame is copied behind the request. */
struct wreq {
        uv_write_t req;
        struct lp_conn *conn;
        size_t len;
        uint8_t data[];
};

static void srv_maybe_free(struct lp_server *srv)
{
        if (!srv->closing || srv->lstate != L_NONE || srv->nconns)
                return;
        assert(!srv->conns);    /* (3) */
        sodium_memzero(srv->key, sizeof(srv->key));
        free(srv);
}

static void srv_log(struct lp_server *srv, int prio, const char *peer, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void srv_log(struct lp_server *srv, int prio, const char *peer, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (!srv->cb.log)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        srv->cb.log(srv, prio, peer, msg);
}

/* ---- connection teardown ---- */

static void on_conn_handle_closed(uv_handle_t *h)
{
        struct lp_conn *conn = h->data;
        struct lp_server *srv = conn->srv;

        assert(conn->closing);  /* (1) */
        if (--conn->pending > 0)
                return;
        /* Invariant (2): last handle closed. */
        if (conn->authed && srv->cb.on_close)
                srv->cb.on_close(conn);
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                srv->conns = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        srv->nconns--;
        lp_decoder_free(conn->dec);
        free(conn);
        srv_maybe_free(srv);
}

/*
 * Invariant (1).  prio < 0: do not log (the caller did).  A NULL fmt with
 * prio >= 0 is not allowed.
 */
static void conn_close(struct lp_conn *conn, int prio, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void conn_close(struct lp_conn *conn, int prio, const char *fmt, ...)
{
        struct lp_server *srv = conn->srv;
        char msg[400];
        va_list ap;

        if (conn->closing)
                return;
        conn->closing = true;
        if (prio >= 0 && fmt) {
                va_start(ap, fmt);
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);
                srv_log(srv, prio, conn->peer, "connection closed: %s", msg);
        }
        uv_close((uv_handle_t *)&conn->timer, on_conn_handle_closed);
        uv_close((uv_handle_t *)&conn->tcp, on_conn_handle_closed);
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
        struct wreq *w = (struct wreq *)req;
        struct lp_conn *conn = w->conn;

        free(w);
        if (status < 0 && status != UV_ECANCELED)
                conn_close(conn, LOG_NOTICE, "write failed: %s", uv_strerror(status));
}

static int conn_write(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                      const void *payload, size_t len)
{
        size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);
        size_t total = LP_FRAME_HDR + len;
        struct wreq *w;
        uv_buf_t b;
        int r;

        if (conn->closing)
                return -ENOTCONN;
        if (queued && queued + total > conn->max_queued) {
                conn_close(conn, LOG_WARNING,
                           "peer does not read: %zu bytes queued, bound %zu",
                           queued + total, conn->max_queued);
                return -ENOBUFS;
        }
        w = malloc(sizeof(*w) + total);
        if (!w)
                return -ENOMEM;
        r = lp_frame_header_pack(w->data, type, flags, reqid, len);
        if (r < 0) {
                free(w);
                return r;
        }
        if (len)
                memcpy(w->data + LP_FRAME_HDR, payload, len);
        w->conn = conn;
        w->len = total;
        b = uv_buf_init((char *)w->data, (unsigned)total);
        r = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, on_write);
        if (r < 0) {
                free(w);
                conn_close(conn, LOG_NOTICE, "write failed: %s", uv_strerror(r));
                return r;
        }
        return 0;
}

/* Send a Status explaining the refusal (best effort), then close. */
static void conn_refuse(struct lp_conn *conn, enum lp_status code, const char *why)
{
        void *buf;
        size_t len;

        if (lp_status_pack(code, why, &buf, &len) == 0) {
                conn_write(conn, LP_MSG_STATUS, 0, 0, buf, len);
                free(buf);
        }
        conn_close(conn, LOG_WARNING, "%s", why);
}

/* ---- input ---- */

static void set_peer_site(struct lp_conn *conn)
{
        size_t n = strlen(conn->peer);

        if (conn->peer_client)
                snprintf(conn->peer + n, sizeof(conn->peer) - n, " site %llu client %016llx",
                         (unsigned long long)conn->peer_site,
                         (unsigned long long)conn->peer_client);
        else
                snprintf(conn->peer + n, sizeof(conn->peer) - n, " site %llu",
                         (unsigned long long)conn->peer_site);
}

/* The client gave up on the handshake and says why (e.g. our version). */
static void peer_refused(struct lp_conn *conn, const struct lp_frame *f)
{
        char *m = NULL;
        int code;

        if (lp_status_unpack(f->payload, f->len, &code, &m) < 0) {
                conn_close(conn, LOG_WARNING, "peer refused the handshake");
                return;
        }
        /* The text comes from the peer: no control characters in our log. */
        for (char *p = m; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        conn_close(conn, LOG_WARNING, "peer refused the handshake: %s: %.200s",
                   lp_status_name(code), m);
        free(m);
}

static void handle_hello(struct lp_conn *conn, const struct lp_frame *f)
{
        struct lp_server *srv = conn->srv;
        uint8_t expect[LP_MAC_SIZE];
        struct lp__hello h;
        char why[160];
        void *buf;
        size_t len;
        int r;

        if (f->type == LP_MSG_STATUS) {
                peer_refused(conn, f);
                return;
        }
        if (f->type != LP_MSG_CLIENT_HELLO) {
                snprintf(why, sizeof(why), "message type %u before authentication",
                         (unsigned)f->type);
                conn_refuse(conn, LP_STATUS_PROTOCOL, why);
                return;
        }
        r = lp__client_hello_unpack(f->payload, f->len, &h);
        if (r < 0) {
                conn_refuse(conn, LP_STATUS_BAD_MESSAGE, "malformed ClientHello");
                return;
        }
        if (h.version != LP_PROTO_VERSION) {
                snprintf(why, sizeof(why),
                         "protocol version mismatch: peer speaks %u, we speak %u",
                         (unsigned)h.version, LP_PROTO_VERSION);
                conn_refuse(conn, LP_STATUS_PROTOCOL, why);
                return;
        }
        lp__mac_client(srv->key, h.version, conn->nonce, h.nonce, srv->site_id,
                       h.site_id, expect);
        if (lp__mac_verify(expect, h.mac) < 0) {
                snprintf(why, sizeof(why),
                         "authentication failed for site %llu (bad MAC: wrong cluster key?)",
                         (unsigned long long)h.site_id);
                conn_refuse(conn, LP_STATUS_AUTH, why);
                return;
        }
        lp__mac_server(srv->key, h.version, h.nonce, conn->nonce, srv->site_id,
                       h.site_id, expect);
        r = lp__server_auth_pack(expect, &buf, &len);
        if (r < 0) {
                conn_close(conn, LOG_ERR, "cannot answer handshake: %s", strerror(-r));
                return;
        }
        r = conn_write(conn, LP_MSG_SERVER_AUTH, 0, 0, buf, len);
        free(buf);
        if (r < 0)
                return;
        /* Invariant (4): authenticated from here on. */
        uv_timer_stop(&conn->timer);
        lp_decoder_set_max(conn->dec, conn->max_frame);
        conn->authed = true;
        conn->peer_site = h.site_id;
        conn->peer_client = h.client_id;
        set_peer_site(conn);
        if (srv->cb.on_connect)
                srv->cb.on_connect(conn, conn->peer_site);
}

static void handle_frame(struct lp_conn *conn, const struct lp_frame *f)
{
        struct lp_server *srv = conn->srv;

        assert(!conn->closing);                                         /* (1) */
        assert(conn->authed || lp_decoder_get_max(conn->dec) == LP_HS_MAX_FRAME); /* (4) */
        if (!conn->authed) {
                handle_hello(conn, f);
                return;
        }
        if (f->type == LP_MSG_SERVER_HELLO || f->type == LP_MSG_CLIENT_HELLO ||
            f->type == LP_MSG_SERVER_AUTH) {
                conn_close(conn, LOG_WARNING,
                           "handshake message type %u after authentication",
                           (unsigned)f->type);
                return;
        }
        if (srv->cb.on_frame)
                srv->cb.on_frame(conn, f->type, f->flags, f->reqid, f->payload, f->len);
}

static const char *frame_error(int r)
{
        switch (r) {
        case -EMSGSIZE:
                return "frame larger than the limit";
        case -EBADMSG:
                return "malformed frame header (bad magic or type 0)";
        case -EPROTONOSUPPORT:
                return "unsupported frame format version";
        case -ENOMEM:
                return "out of memory for a frame";
        default:
                return "bad frame";
        }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
        struct lp_conn *conn = h->data;

        (void)hint;
        buf->base = (char *)conn->srv->rbuf;
        buf->len = sizeof(conn->srv->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        struct lp_conn *conn = s->data;
        const uint8_t *p = (const uint8_t *)buf->base;
        size_t left, used;
        struct lp_frame f;
        int r;

        if (conn->closing || nread == 0)
                return;
        if (nread < 0) {
                bool partial = lp_decoder_partial(conn->dec);
                const char *how = nread == UV_EOF ? "peer hung up" :
                                  nread == UV_ECONNRESET ? "peer reset the connection" : NULL;

                if (!how)
                        conn_close(conn, LOG_NOTICE, "read failed: %s%s",
                                   uv_strerror((int)nread),
                                   conn->authed ? "" : " before authentication");
                else
                        conn_close(conn, conn->authed && !partial ? LOG_DEBUG : LOG_NOTICE,
                                   "%s%s%s", how,
                                   conn->authed ? "" : " before authentication",
                                   partial ? " (in the middle of a frame)" : "");
                return;
        }
        left = (size_t)nread;
        while (left > 0 && !conn->closing) {
                r = lp_decoder_feed(conn->dec, p, left, &used, &f);
                if (r < 0) {
                        char limit[48] = "";

                        if (r == -EMSGSIZE)
                                snprintf(limit, sizeof(limit), " (limit %zu bytes)",
                                         lp_decoder_get_max(conn->dec));
                        conn_close(conn, LOG_WARNING, "%s%s%s", frame_error(r),
                                   conn->authed ? "" : " before authentication", limit);
                        return;
                }
                p += used;
                left -= used;
                if (r == 0)
                        break;
                handle_frame(conn, &f);
                lp_frame_clear(&f);
        }
}

static void on_hs_timeout(uv_timer_t *t)
{
        struct lp_conn *conn = t->data;

        conn_close(conn, LOG_NOTICE, "no handshake within %u ms",
                   (unsigned)conn->srv->hs_timeout_ms);
}

/* ---- accepting ---- */

static void on_tmp_closed(uv_handle_t *h)
{
        free(h);
}

/* Could not allocate a conn: accept into a bare handle and drop it, so
 * that the listener keeps going (libuv stops polling until we accept). */
static void drop_pending(struct lp_server *srv)
{
        uv_tcp_t *t = malloc(sizeof(*t));

        if (!t)
                return;
        if (uv_tcp_init(srv->loop, t) < 0) {
                free(t);
                return;
        }
        uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t);
        uv_close((uv_handle_t *)t, on_tmp_closed);
}

static void format_peer(struct lp_conn *conn)
{
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        char host[64];

        snprintf(conn->peer, sizeof(conn->peer), "?");
        if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) < 0)
                return;
        if (ss.ss_family == AF_INET) {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;

                uv_ip4_name(a, host, sizeof(host));
                snprintf(conn->peer, sizeof(conn->peer), "%s:%u", host,
                         (unsigned)ntohs(a->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

                uv_ip6_name(a, host, sizeof(host));
                snprintf(conn->peer, sizeof(conn->peer), "[%s]:%u", host,
                         (unsigned)ntohs(a->sin6_port));
        }
}

static void on_connection(uv_stream_t *l, int status)
{
        struct lp_server *srv = l->data;
        struct lp_conn *conn;
        struct lp__hello h;
        void *buf;
        size_t len;
        int r;

        if (status < 0) {
                srv_log(srv, LOG_ERR, "listener", "accept failed: %s", uv_strerror(status));
                return;
        }
        conn = calloc(1, sizeof(*conn));
        if (!conn || lp_decoder_new(LP_HS_MAX_FRAME, &conn->dec) < 0) {
                free(conn);
                srv_log(srv, LOG_ERR, "listener", "out of memory for a connection");
                drop_pending(srv);
                return;
        }
        conn->srv = srv;
        conn->max_frame = srv->max_frame;
        conn->max_queued = srv->max_queued;
        r = uv_tcp_init(srv->loop, &conn->tcp);
        if (r < 0) {
                lp_decoder_free(conn->dec);
                free(conn);
                srv_log(srv, LOG_ERR, "listener", "cannot accept: %s", uv_strerror(r));
                drop_pending(srv);
                return;
        }
        uv_timer_init(srv->loop, &conn->timer);  /* cannot fail */
        conn->tcp.data = conn;
        conn->timer.data = conn;
        conn->pending = 2;
        conn->next = srv->conns;
        if (srv->conns)
                srv->conns->prev = conn;
        srv->conns = conn;
        srv->nconns++;

        r = uv_accept(l, (uv_stream_t *)&conn->tcp);
        if (r < 0) {
                snprintf(conn->peer, sizeof(conn->peer), "?");
                conn_close(conn, LOG_NOTICE, "accept failed: %s", uv_strerror(r));
                return;
        }
        format_peer(conn);

        if (srv->nconns > srv->max_conns) {
                uint64_t now = uv_now(srv->loop);

                srv->refused++;
                if (!srv->refused_log_ms || now - srv->refused_log_ms >= 1000) {
                        srv_log(srv, LOG_WARNING, conn->peer,
                                "connection refused: limit of %u connections reached "
                                "(%lu refused since the last report)",
                                srv->max_conns, srv->refused);
                        srv->refused_log_ms = now;
                        srv->refused = 0;
                }
                conn_close(conn, -1, NULL);
                return;
        }

        uv_tcp_nodelay(&conn->tcp, 1);
        uv_tcp_keepalive(&conn->tcp, 1, 60);

        lp__random(conn->nonce, sizeof(conn->nonce));
        memset(&h, 0, sizeof(h));
        h.version = LP_PROTO_VERSION;
        h.site_id = srv->site_id;
        memcpy(h.nonce, conn->nonce, sizeof(h.nonce));
        r = lp__server_hello_pack(&h, &buf, &len);
        if (r < 0) {
                conn_close(conn, LOG_ERR, "cannot start handshake: %s", strerror(-r));
                return;
        }
        r = conn_write(conn, LP_MSG_SERVER_HELLO, 0, 0, buf, len);
        free(buf);
        if (r < 0)
                return;
        uv_timer_start(&conn->timer, on_hs_timeout, srv->hs_timeout_ms, 0);
        r = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
        if (r < 0)
                conn_close(conn, LOG_NOTICE, "cannot read: %s", uv_strerror(r));
}

/* ---- public: server ---- */

/*
 * libuv writes sockets with write(2), which raises SIGPIPE when the peer
 * has reset the connection; left at its default that kills the daemon.
 * A handler or SIG_IGN the program installed itself is left alone.
 */
static int ignore_sigpipe(void)
{
        struct sigaction old, ign;

        if (sigaction(SIGPIPE, NULL, &old) < 0)
                return -errno;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
                memset(&ign, 0, sizeof(ign));
                ign.sa_handler = SIG_IGN;
                sigemptyset(&ign.sa_mask);
                if (sigaction(SIGPIPE, &ign, NULL) < 0)
                        return -errno;
        }
        return 0;
}

int lp_server_new(uv_loop_t *loop, const uint8_t key[LP_KEY_SIZE], uint64_t site_id,
                  const struct lp_server_callbacks *cb, void *data,
                  struct lp_server **ret_srv)
{
        struct lp_server *srv;
        int r;

        if (!loop || !key || !ret_srv)
                return -EINVAL;
        r = lp__hs_init();
        if (r < 0)
                return r;
        r = ignore_sigpipe();
        if (r < 0)
                return r;
        srv = calloc(1, sizeof(*srv));
        if (!srv)
                return -ENOMEM;
        srv->loop = loop;
        memcpy(srv->key, key, LP_KEY_SIZE);
        srv->site_id = site_id;
        if (cb)
                srv->cb = *cb;
        srv->data = data;
        srv->max_frame = LP_MAX_FRAME;
        srv->hs_timeout_ms = LP_HANDSHAKE_TIMEOUT_MS;
        srv->max_queued = LP_MAX_QUEUED;
        srv->max_conns = LP_MAX_CONNS;
        *ret_srv = srv;
        return 0;
}

void *lp_server_get_data(const struct lp_server *srv)
{
        return srv->data;
}

int lp_server_set_max_frame(struct lp_server *srv, size_t max_frame)
{
        if (max_frame < 1 || max_frame > LP_FRAME_HARD_MAX)
                return -EINVAL;
        srv->max_frame = max_frame;
        if (srv->max_queued < LP_FRAME_HDR + max_frame)
                srv->max_queued = LP_FRAME_HDR + max_frame;
        return 0;
}

int lp_server_set_handshake_timeout(struct lp_server *srv, uint32_t ms)
{
        if (ms == 0)
                return -EINVAL;
        srv->hs_timeout_ms = ms;
        return 0;
}

int lp_server_set_max_queued(struct lp_server *srv, size_t bytes)
{
        if (bytes < LP_FRAME_HDR + srv->max_frame)
                return -EINVAL;
        srv->max_queued = bytes;
        return 0;
}

int lp_server_set_max_conns(struct lp_server *srv, unsigned n)
{
        if (n == 0)
                return -EINVAL;
        srv->max_conns = n;
        return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
        struct lp_server *srv = h->data;

        srv->lstate = L_NONE;
        srv_maybe_free(srv);
}

int lp_server_listen(struct lp_server *srv, const char *host, uint16_t port,
                     uint16_t *ret_port)
{
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        int r;

        if (!host)
                return -EINVAL;
        if (srv->lstate != L_NONE || srv->closing)
                return -EBUSY;
        memset(&ss, 0, sizeof(ss));
        if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) < 0 &&
            uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) < 0)
                return -EINVAL;
        r = uv_tcp_init(srv->loop, &srv->listener);
        if (r < 0)
                return r;
        srv->listener.data = srv;
        srv->lstate = L_OPEN;
        r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
        if (r < 0)
                goto fail;
        r = uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN, on_connection);
        if (r < 0)
                goto fail;
        r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
        if (r < 0)
                goto fail;
        if (ret_port)
                *ret_port = ntohs(ss.ss_family == AF_INET6 ?
                                  ((struct sockaddr_in6 *)&ss)->sin6_port :
                                  ((struct sockaddr_in *)&ss)->sin_port);
        return 0;

fail:
        srv->lstate = L_CLOSING;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
        return r;
}

void lp_server_close(struct lp_server *srv)
{
        struct lp_conn *conn;

        if (!srv || srv->closing)
                return;
        srv->closing = true;
        if (srv->lstate == L_OPEN) {
                srv->lstate = L_CLOSING;
                uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
        }
        for (conn = srv->conns; conn; conn = conn->next)
                conn_close(conn, LOG_DEBUG, "server shutting down");
        srv_maybe_free(srv);
}

/* ---- public: connections ---- */

int lp_server_send(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                   const void *payload, size_t len)
{
        if (type == LP_MSG_INVALID || type == LP_MSG_SERVER_HELLO ||
            type == LP_MSG_CLIENT_HELLO || type == LP_MSG_SERVER_AUTH)
                return -EINVAL;
        if (len && !payload)
                return -EINVAL;
        if (conn->closing || !conn->authed)
                return -ENOTCONN;
        if (len > conn->max_frame)
                return -EMSGSIZE;
        return conn_write(conn, type, flags, reqid, payload, len);
}

int lp_server_reply(struct lp_conn *conn, uint64_t reqid, uint16_t type,
                    const void *payload, size_t len)
{
        return lp_server_send(conn, type, LP_F_REPLY, reqid, payload, len);
}

int lp_server_reply_status(struct lp_conn *conn, uint64_t reqid, enum lp_status code,
                           const char *message)
{
        void *buf;
        size_t len;
        int r;

        r = lp_status_pack(code, message, &buf, &len);
        if (r < 0)
                return r;
        r = lp_server_reply(conn, reqid, LP_MSG_STATUS, buf, len);
        free(buf);
        return r;
}

void lp_server_conn_close(struct lp_conn *conn)
{
        conn_close(conn, LOG_DEBUG, "closed by this server");
}

void lp_server_conn_set_data(struct lp_conn *conn, void *data)
{
        conn->data = data;
}

void *lp_server_conn_get_data(const struct lp_conn *conn)
{
        return conn->data;
}

struct lp_server *lp_server_conn_server(const struct lp_conn *conn)
{
        return conn->srv;
}

uint64_t lp_server_conn_site(const struct lp_conn *conn)
{
        return conn->peer_site;
}

uint64_t lp_server_conn_client(const struct lp_conn *conn)
{
        return conn->peer_client;
}

const char *lp_server_conn_peer(const struct lp_conn *conn)
{
        return conn->peer;
}

size_t lp_server_conn_queued(const struct lp_conn *conn)
{
        if (conn->closing)
                return 0;
        return uv_stream_get_write_queue_size((const uv_stream_t *)&conn->tcp);
}

int lp_server_conn_set_max_frame(struct lp_conn *conn, size_t max_frame)
{
        if (max_frame < 1 || max_frame > LP_FRAME_HARD_MAX)
                return -EINVAL;
        conn->max_frame = max_frame;
        if (conn->max_queued < LP_FRAME_HDR + max_frame)
                conn->max_queued = LP_FRAME_HDR + max_frame;
        if (conn->authed)
                return lp_decoder_set_max(conn->dec, max_frame);
        return 0;
}
