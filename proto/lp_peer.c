/*
 * lp_peer.c -- the asynchronous peer client (lp_peer.h).
 *
 * A peer owns two timers and at most one current link (a struct link: one
 * TCP handle, one connection attempt).  A link that is given up is
 * detached (link->p = NULL) and closes on its own; its callbacks then do
 * nothing but free it.  So the peer never waits for a link to close, and a
 * callback that finds its link detached returns at once.
 *
 *   timer   connect + handshake timeout of the current attempt, or the
 *           backoff before the next one (p->waiting says which);
 *   ctimer  the earliest deadline among the calls in flight.
 *
 * Invariants: p->up implies p->link is in L_UP; calls are in flight only
 * while p->up (a break answers every one of them); p->outage is set from
 * the first failure after start or after a link was up, until the next up.
 */
#include "lp_peer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "lp_conn.h"
#include "lp_frame.h"
#include "lp_hs_int.h"
#include "lp_status.h"

enum link_state { L_CONNECTING, L_HELLO, L_AUTH, L_UP };

struct link {
        uv_tcp_t tcp;
        uv_connect_t creq;
        struct lp_peer *p;              /* NULL once detached */
        struct lp_decoder *dec;
        enum link_state state;
        uint8_t cn[LP_NONCE_SIZE], sn[LP_NONCE_SIZE];
        uint64_t server_site;
        size_t queued;
};

struct wreq {
        uv_write_t req;
        struct link *l;
        size_t len;
        uint8_t buf[];
};

struct call {
        struct call *next, *prev;
        uint64_t reqid;
        uint64_t deadline;              /* uv_now() ms */
        lp_peer_reply_fn fn;
        void *arg;
};

struct lp_peer {
        uv_loop_t *loop;
        struct lp_peer_callbacks cb;
        void *data;
        uint8_t key[LP_KEY_SIZE];
        uint64_t site_id, client_id;
        char host[64];
        uint16_t port;
        char addr[80];                  /* "host:port" */
        struct sockaddr_storage dst;
        bool has_src;
        struct sockaddr_storage src;
        size_t max_frame, max_queued;
        uint32_t connect_ms, backoff_min, backoff_max, backoff;

        struct link *link;
        bool up, outage, waiting, closing;
        uint64_t server_site;
        uv_timer_t timer, ctimer;
        int open_handles;
        struct call calls;              /* list head */
        uint64_t next_reqid;
        struct lp_peer_stats st;
};

static void attempt(struct lp_peer *p);
static void on_timer(uv_timer_t *t);
static void on_ctimer(uv_timer_t *t);

/* ---- addresses ---- */

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
        memset(ss, 0, sizeof(*ss));
        if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
                return 0;
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
                return 0;
        return -EINVAL;
}

static int set_addr(struct lp_peer *p, const char *host, uint16_t port)
{
        struct sockaddr_storage ss;

        if (!host || !port || strlen(host) >= sizeof(p->host) || parse_addr(host, port, &ss) < 0)
                return -EINVAL;
        if (p->has_src && ss.ss_family != p->src.ss_family)
                return -EINVAL;
        p->dst = ss;
        snprintf(p->host, sizeof(p->host), "%s", host);
        p->port = port;
        snprintf(p->addr, sizeof(p->addr), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
        return 0;
}

/* ---- calls ---- */

/* Answer every call in flight with err (the list is taken first: an
 * answer may start new calls, which fail or join a new list). */
static void fail_calls(struct lp_peer *p, int err)
{
        struct call head = p->calls;

        if (p->calls.next == &p->calls)
                return;
        head.next->prev = &head;
        head.prev->next = &head;
        p->calls.next = p->calls.prev = &p->calls;
        while (head.next != &head) {
                struct call *c = head.next;

                c->prev->next = c->next;
                c->next->prev = c->prev;
                c->fn(c->arg, err, 0, NULL, 0);
                free(c);
        }
}

static void arm_ctimer(struct lp_peer *p)
{
        uint64_t first = UINT64_MAX, now = uv_now(p->loop);

        if (p->closing)
                return;
        for (struct call *c = p->calls.next; c != &p->calls; c = c->next)
                if (c->deadline < first)
                        first = c->deadline;
        if (first == UINT64_MAX)
                uv_timer_stop(&p->ctimer);
        else
                uv_timer_start(&p->ctimer, on_ctimer, first > now ? first - now : 0, 0);
}

static void on_ctimer(uv_timer_t *t)
{
        struct lp_peer *p = t->data;
        uint64_t now = uv_now(p->loop);
        struct call head = { .next = &head, .prev = &head };

        /* take the expired ones first: an answer may add or end calls */
        for (struct call *c = p->calls.next, *n; c != &p->calls; c = n) {
                n = c->next;
                if (c->deadline > now)
                        continue;
                c->prev->next = c->next;
                c->next->prev = c->prev;
                c->prev = head.prev;
                c->next = &head;
                head.prev->next = c;
                head.prev = c;
        }
        while (head.next != &head) {
                struct call *c = head.next;

                c->prev->next = c->next;
                c->next->prev = c->prev;
                p->st.timeouts++;
                c->fn(c->arg, -ETIMEDOUT, 0, NULL, 0);
                free(c);
        }
        arm_ctimer(p);
}

/* ---- links ---- */

static void link_closed(uv_handle_t *h)
{
        struct link *l = h->data;

        lp_decoder_free(l->dec);
        free(l);
}

/* Give up l: it closes on its own from now on. */
static void link_detach(struct link *l)
{
        l->p = NULL;
        if (!uv_is_closing((uv_handle_t *)&l->tcp))
                uv_close((uv_handle_t *)&l->tcp, link_closed);
}

static void start_backoff(struct lp_peer *p)
{
        p->waiting = true;
        uv_timer_start(&p->timer, on_timer, p->backoff, 0);
        p->backoff = p->backoff * 2 > p->backoff_max ? p->backoff_max : p->backoff * 2;
}

/*
 * The current link failed (err < 0): detach it, answer its calls, report
 * the outage once, and try again after the backoff.
 */
static void link_fail(struct lp_peer *p, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void link_fail(struct lp_peer *p, int err, const char *fmt, ...)
{
        char why[256], msg[400];
        bool report = !p->outage;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        snprintf(msg, sizeof(msg), "%s: %s", p->addr, why);
        if (p->link) {
                link_detach(p->link);
                p->link = NULL;
        }
        p->up = false;
        p->outage = true;
        uv_timer_stop(&p->timer);
        start_backoff(p);
        fail_calls(p, err);
        if (report && !p->closing && p->cb.on_down)
                p->cb.on_down(p, err, msg);
}

static void on_write(uv_write_t *req, int status)
{
        struct wreq *w = (struct wreq *)req;
        struct link *l = w->l;
        size_t len = w->len;

        free(w);
        if (!l->p)
                return;
        l->queued -= len;
        if (status < 0)
                link_fail(l->p, status, "write: %s", uv_strerror(status));
}

static int link_write(struct link *l, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                      size_t len, size_t max)
{
        struct lp_peer *p = l->p;
        struct wreq *w;
        uv_buf_t b;
        int r;

        if (len > max)
                return -EMSGSIZE;
        if (l->queued + LP_FRAME_HDR + len > p->max_queued) {
                link_fail(p, -ENOBUFS, "the server does not read: %zu bytes queued", l->queued);
                return -ENOBUFS;
        }
        w = malloc(sizeof(*w) + LP_FRAME_HDR + len);
        if (!w)
                return -ENOMEM;
        r = lp_frame_header_pack(w->buf, type, flags, reqid, len);
        if (r < 0) {
                free(w);
                return r;
        }
        if (len)
                memcpy(w->buf + LP_FRAME_HDR, payload, len);
        w->l = l;
        w->len = LP_FRAME_HDR + len;
        b = uv_buf_init((char *)w->buf, (unsigned)w->len);
        r = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_write);
        if (r < 0) {
                free(w);
                link_fail(p, r, "write: %s", uv_strerror(r));
                return r;
        }
        l->queued += w->len;
        return 0;
}

static int hs_status(const struct lp_frame *f, char *why, size_t cap)
{
        char *msg = NULL;
        int code;

        if (lp_status_unpack(f->payload, f->len, &code, &msg) < 0 || code == LP_STATUS_OK) {
                free(msg);
                snprintf(why, cap, "handshake: a malformed status");
                return -EPROTO;
        }
        snprintf(why, cap, "handshake refused: %s%s%s", lp_status_name(code), msg && *msg ? ": " : "",
                 msg ? msg : "");
        free(msg);
        return lp_status_to_errno(code);
}

/* Handshake, client side (lp_conn.h).  0, or < 0 with why. */
static int hs_frame(struct link *l, const struct lp_frame *f, char *why, size_t cap)
{
        struct lp_peer *p = l->p;
        struct lp__hello sh, ch;
        uint8_t mac[LP_MAC_SIZE], expect[LP_MAC_SIZE];
        void *buf;
        size_t len;
        int r;

        if (f->type == LP_MSG_STATUS)
                return hs_status(f, why, cap);
        if (l->state == L_HELLO) {
                if (f->type != LP_MSG_SERVER_HELLO || lp__server_hello_unpack(f->payload, f->len, &sh) < 0) {
                        snprintf(why, cap, "handshake: expected the server's hello");
                        return -EPROTO;
                }
                if (sh.version != LP_PROTO_VERSION) {
                        snprintf(why, cap, "protocol version mismatch: server speaks %u, we %u",
                                 (unsigned)sh.version, LP_PROTO_VERSION);
                        return -EPROTONOSUPPORT;
                }
                memcpy(l->sn, sh.nonce, sizeof(l->sn));
                l->server_site = sh.site_id;
                memset(&ch, 0, sizeof(ch));
                ch.version = LP_PROTO_VERSION;
                ch.site_id = p->site_id;
                ch.client_id = p->client_id;
                lp__random(l->cn, sizeof(l->cn));
                memcpy(ch.nonce, l->cn, sizeof(ch.nonce));
                lp__mac_client(p->key, ch.version, l->sn, l->cn, l->server_site, p->site_id, ch.mac);
                r = lp__client_hello_pack(&ch, &buf, &len);
                if (r < 0) {
                        snprintf(why, cap, "out of memory");
                        return r;
                }
                r = link_write(l, LP_MSG_CLIENT_HELLO, 0, 0, buf, len, LP_HS_MAX_FRAME);
                free(buf);
                if (r < 0) {
                        snprintf(why, cap, "sending the hello: %s", strerror(-r));
                        return r;
                }
                l->state = L_AUTH;
                return 0;
        }
        if (f->type != LP_MSG_SERVER_AUTH || lp__server_auth_unpack(f->payload, f->len, mac) < 0) {
                snprintf(why, cap, "handshake: expected the server's proof");
                return -EPROTO;
        }
        lp__mac_server(p->key, LP_PROTO_VERSION, l->cn, l->sn, l->server_site, p->site_id, expect);
        if (lp__mac_verify(expect, mac) < 0) {
                snprintf(why, cap, "the server's proof is wrong (not the same cluster key)");
                return -EKEYREJECTED;
        }
        return 1;
}

static void link_up(struct link *l)
{
        struct lp_peer *p = l->p;

        l->state = L_UP;
        (void)lp_decoder_set_max(l->dec, p->max_frame);
        uv_timer_stop(&p->timer);
        p->waiting = false;
        p->up = true;
        p->outage = false;
        p->backoff = p->backoff_min;
        p->server_site = l->server_site;
        p->st.ups++;
        if (p->cb.on_up)
                p->cb.on_up(p, l->server_site);
}

static struct call *find_call(struct lp_peer *p, uint64_t reqid)
{
        for (struct call *c = p->calls.next; c != &p->calls; c = c->next)
                if (c->reqid == reqid)
                        return c;
        return NULL;
}

static void up_frame(struct link *l, const struct lp_frame *f)
{
        struct lp_peer *p = l->p;
        struct call *c;

        if (f->type < LP_MSG_USER_MIN && f->type != LP_MSG_STATUS) {
                link_fail(p, -EPROTO, "a handshake message (type %u) after the handshake", f->type);
                return;
        }
        if (!(f->flags & LP_F_REPLY)) {
                p->st.pushes++;
                if (p->cb.on_push)
                        p->cb.on_push(p, f->type, f->flags, f->reqid, f->payload, f->len);
                return;
        }
        c = find_call(p, f->reqid);
        if (!c) {
                p->st.late_replies++;
                return;
        }
        c->prev->next = c->next;
        c->next->prev = c->prev;
        p->st.replies++;
        c->fn(c->arg, 0, f->type, f->payload, f->len);
        free(c);
        arm_ctimer(p);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
        (void)h;
        if (hint > 65536)
                hint = 65536;
        buf->base = malloc(hint);
        buf->len = buf->base ? hint : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
        struct link *l = s->data;
        const uint8_t *at = (const uint8_t *)buf->base;
        size_t left = nread > 0 ? (size_t)nread : 0;

        if (!l->p) {
                free(buf->base);
                return;
        }
        if (nread < 0) {
                free(buf->base);
                if (nread == UV_EOF)
                        link_fail(l->p, -ECONNRESET, "closed by the server%s",
                                  l->state == L_UP ? "" : " during the handshake");
                else
                        link_fail(l->p, (int)nread, "read: %s", uv_strerror((int)nread));
                return;
        }
        while (left && l->p) {
                struct lp_frame f = { 0 };
                size_t used = 0;
                int r = lp_decoder_feed(l->dec, at, left, &used, &f);

                if (r < 0) {
                        link_fail(l->p, r, "a malformed frame from the server: %s", strerror(-r));
                        break;
                }
                at += used;
                left -= used;
                if (r == 0)
                        break;
                if (l->state == L_UP) {
                        up_frame(l, &f);
                } else {
                        char why[256] = "";
                        int h = hs_frame(l, &f, why, sizeof(why));

                        if (h < 0 && l->p)      /* (a failed write already broke it) */
                                link_fail(l->p, h, "%s", why);
                        else if (h > 0)
                                link_up(l);
                }
                lp_frame_clear(&f);
        }
        free(buf->base);
}

static void on_connected(uv_connect_t *req, int status)
{
        struct link *l = req->data;

        if (!l->p)
                return;
        if (status < 0) {
                link_fail(l->p, status, "connect: %s", uv_strerror(status));
                return;
        }
        l->state = L_HELLO;
        status = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
        if (status < 0)
                link_fail(l->p, status, "read: %s", uv_strerror(status));
}

/* Start a connection attempt. */
static void attempt(struct lp_peer *p)
{
        struct link *l = calloc(1, sizeof(*l));
        int r;

        p->waiting = false;
        p->st.attempts++;
        if (!l || lp_decoder_new(LP_HS_MAX_FRAME, &l->dec) < 0) {
                if (l)
                        free(l);
                link_fail(p, -ENOMEM, "out of memory");
                return;
        }
        r = uv_tcp_init_ex(p->loop, &l->tcp, p->dst.ss_family);
        if (r < 0) {
                lp_decoder_free(l->dec);
                free(l);
                link_fail(p, r, "socket: %s", uv_strerror(r));
                return;
        }
        l->tcp.data = l;
        l->creq.data = l;
        l->p = p;
        p->link = l;
        uv_timer_start(&p->timer, on_timer, p->connect_ms, 0);
        (void)uv_tcp_nodelay(&l->tcp, 1);
        if (p->has_src) {
                r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&p->src, 0);
                if (r < 0) {
                        link_fail(p, r, "bind to the source address: %s", uv_strerror(r));
                        return;
                }
        }
        r = uv_tcp_connect(&l->creq, &l->tcp, (const struct sockaddr *)&p->dst, on_connected);
        if (r < 0)
                link_fail(p, r, "connect: %s", uv_strerror(r));
}

static void on_timer(uv_timer_t *t)
{
        struct lp_peer *p = t->data;

        if (p->closing)
                return;
        if (p->waiting) {
                attempt(p);
                return;
        }
        if (p->link && p->link->state != L_UP)
                link_fail(p, -ETIMEDOUT, "no %s within %u ms",
                          p->link->state == L_CONNECTING ? "connection" : "handshake", p->connect_ms);
}

/* ---- public ---- */

int lp_peer_new(uv_loop_t *loop, const struct lp_peer_opts *o, const struct lp_peer_callbacks *cb, void *data,
                struct lp_peer **ret)
{
        struct lp_peer *p;
        const char *src;
        int r;

        if (!loop || !o || !o->key || !ret)
                return -EINVAL;
        r = lp__hs_init();
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->loop = loop;
        if (cb)
                p->cb = *cb;
        p->data = data;
        memcpy(p->key, o->key, LP_KEY_SIZE);
        p->site_id = o->site_id;
        p->client_id = o->client_id;
        src = o->source ? o->source : lp_client_source();
        if (src && *src) {
                if (parse_addr(src, 0, &p->src) < 0) {
                        free(p);
                        return -EINVAL;
                }
                p->has_src = true;
        }
        if (set_addr(p, o->host, o->port) < 0) {
                free(p);
                return -EINVAL;
        }
        p->max_frame = o->max_frame ? o->max_frame : LP_MAX_FRAME;
        if (p->max_frame > LP_FRAME_HARD_MAX) {
                free(p);
                return -EINVAL;
        }
        p->max_queued = o->max_queued ? o->max_queued : 4 * (p->max_frame + LP_FRAME_HDR);
        p->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : LP_PEER_CONNECT_MS;
        p->backoff_min = o->backoff_min_ms ? o->backoff_min_ms : LP_PEER_BACKOFF_MIN_MS;
        p->backoff_max = o->backoff_max_ms ? o->backoff_max_ms : LP_PEER_BACKOFF_MAX_MS;
        if (p->backoff_max < p->backoff_min)
                p->backoff_max = p->backoff_min;
        p->backoff = p->backoff_min;
        p->calls.next = p->calls.prev = &p->calls;
        p->next_reqid = 1;
        uv_timer_init(loop, &p->timer);
        uv_timer_init(loop, &p->ctimer);
        p->timer.data = p;
        p->ctimer.data = p;
        p->open_handles = 2;
        *ret = p;
        attempt(p);
        return 0;
}

void *lp_peer_data(const struct lp_peer *p)
{
        return p->data;
}

bool lp_peer_is_up(const struct lp_peer *p)
{
        return p->up;
}

uint64_t lp_peer_site(const struct lp_peer *p)
{
        return p->server_site;
}

const char *lp_peer_addr(const struct lp_peer *p)
{
        return p->addr;
}

void lp_peer_stats(const struct lp_peer *p, struct lp_peer_stats *ret)
{
        *ret = p->st;
}

int lp_peer_call(struct lp_peer *p, uint16_t type, const void *payload, size_t len, uint32_t timeout_ms,
                 lp_peer_reply_fn fn, void *arg)
{
        struct call *c;
        int r;

        if (!fn || type < LP_MSG_USER_MIN || p->closing)
                return p->closing ? -ECANCELED : -EINVAL;
        if (!p->up)
                return -ENOTCONN;
        if (len > p->max_frame)
                return -EMSGSIZE;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->reqid = p->next_reqid++;
        c->deadline = uv_now(p->loop) + timeout_ms;
        c->fn = fn;
        c->arg = arg;
        r = link_write(p->link, type, 0, c->reqid, payload, len, p->max_frame);
        if (r < 0) {
                free(c);
                return r;       /* -ENOBUFS broke the link; its calls are answered */
        }
        c->prev = p->calls.prev;
        c->next = &p->calls;
        p->calls.prev->next = c;
        p->calls.prev = c;
        p->st.calls++;
        arm_ctimer(p);
        return 0;
}

int lp_peer_send(struct lp_peer *p, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                 size_t len)
{
        if (p->closing)
                return -ECANCELED;
        if (type < LP_MSG_USER_MIN && type != LP_MSG_STATUS)
                return -EINVAL;
        if (!p->up)
                return -ENOTCONN;
        return link_write(p->link, type, flags, reqid, payload, len, p->max_frame);
}

/* Break the current link on purpose and try again at once. */
static void restart(struct lp_peer *p, const char *why)
{
        bool was_up = p->up;

        if (p->link) {
                link_detach(p->link);
                p->link = NULL;
        }
        p->up = false;
        uv_timer_stop(&p->timer);
        p->backoff = p->backoff_min;
        fail_calls(p, -ECONNRESET);
        if (p->closing)
                return;
        if (was_up && !p->outage) {
                p->outage = true;
                if (p->cb.on_down) {
                        char msg[200];

                        snprintf(msg, sizeof(msg), "%s: %s", p->addr, why);
                        p->cb.on_down(p, -ECONNRESET, msg);
                        if (p->closing)
                                return;
                }
        }
        attempt(p);
}

int lp_peer_set_addr(struct lp_peer *p, const char *host, uint16_t port)
{
        char old[80];
        int r;

        if (p->closing)
                return -ECANCELED;
        snprintf(old, sizeof(old), "%s", p->addr);
        r = set_addr(p, host, port);
        if (r < 0)
                return r;
        if (strcmp(old, p->addr) != 0 || !p->up)
                restart(p, "the server's address changed");
        return 0;
}

void lp_peer_reconnect(struct lp_peer *p)
{
        if (!p->closing)
                restart(p, "reconnecting");
}

static void timer_closed(uv_handle_t *h)
{
        struct lp_peer *p = h->data;

        if (--p->open_handles == 0)
                free(p);
}

void lp_peer_close(struct lp_peer *p)
{
        if (!p || p->closing)
                return;
        p->closing = true;
        if (p->link) {
                link_detach(p->link);
                p->link = NULL;
        }
        p->up = false;
        fail_calls(p, -ECANCELED);
        uv_close((uv_handle_t *)&p->timer, timer_closed);
        uv_close((uv_handle_t *)&p->ctimer, timer_closed);
}
