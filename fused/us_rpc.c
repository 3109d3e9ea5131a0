/*
 * us_rpc.c -- see us_rpc.h.
 *
 * One attempt of a call:
 *
 *   resolve --> connect --> drain --> send --> wait for the reply --> decode
 *      |           |          |         |            |
 *      |        fails:     closed:   fails:       broken: ANY    -> backoff, again
 *      |        backoff    again     backoff              UNSENT -> -EIO
 *      +-- -ENOENT/-ESTALE: end                   deadline: -ETIMEDOUT
 *
 * "drain" reads, without waiting, whatever a cached connection has
 * received since its last call (late answers to calls that timed out, or
 * the end of stream of a peer that went away), so that a connection whose
 * peer closed it is found out before the request goes out, and the request
 * counts as unsent.  lp_client_send()/lp_client_recv() are used instead of
 * lp_client_call() because the resend rule needs to know whether the
 * request left us: lp_client_send() returns an error only when the frame
 * did not go out whole, and then the peer cannot have acted on it.
 *
 * Invariants:
 *   (1) a struct conn with c != NULL is authenticated and was, at its last
 *       use, not broken; a broken one is closed at once.
 *   (2) a thread's struct tls belongs to that thread only.
 */
#include "us_rpc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm.h"
#include "lp_conn.h"

struct conn {
        char host[US_HOST_MAX];
        uint16_t port;
        struct lp_client *c;            /* (1) */
        uint64_t last_use;
};

struct tls {
        struct conn conns[US_RPC_CONNS_PER_THREAD];
};

/* An address no connection reached for a whole call (every connect
 * attempt timed out: a cut network, a dead machine): held off. */
struct held {
        char host[US_HOST_MAX];
        uint16_t port;
};

struct us_rpc {
        uint8_t key[LP_KEY_SIZE];
        uint64_t my_site;
        uint64_t client_id;             /* named in every handshake */
        pthread_key_t tkey;
        pthread_mutex_t mu;             /* stats, log rate limit, held */
        struct us_rpc_stats st;
        uint64_t last_timeout_log;
        unsigned suppressed;
        struct held held[US_RPC_HELD];  /* port 0: a free slot */
        unsigned held_next;             /* the slot taken next when all are used */
};

/* ---- held-off addresses ---- */

static struct held *held_find(struct us_rpc *rpc, const char *host, uint16_t port)
{
        for (unsigned i = 0; i < US_RPC_HELD; i++)
                if (rpc->held[i].port == port && !strcmp(rpc->held[i].host, host))
                        return &rpc->held[i];
        return NULL;
}

static bool held_off(struct us_rpc *rpc, const char *host, uint16_t port)
{
        bool yes;

        pthread_mutex_lock(&rpc->mu);
        yes = held_find(rpc, host, port) != NULL;
        pthread_mutex_unlock(&rpc->mu);
        return yes;
}

/* hold: the address was out of reach for a whole call; else it answered. */
static void held_set(struct us_rpc *rpc, const struct us_target *t, const struct us_site *a, bool hold)
{
        struct held *h;
        bool changed = false;

        pthread_mutex_lock(&rpc->mu);
        h = held_find(rpc, a->host, a->port);
        if (hold && !h) {
                h = &rpc->held[rpc->held_next++ % US_RPC_HELD];
                snprintf(h->host, sizeof(h->host), "%s", a->host);
                h->port = a->port;
                changed = true;
        } else if (!hold && h) {
                h->port = 0;
                h->host[0] = 0;
                changed = true;
        }
        pthread_mutex_unlock(&rpc->mu);
        if (!changed)
                return;
        if (hold)
                cm_log(LOG_WARNING, "%s site %llu (%s:%u): no connection for a whole call: held off; "
                       "calls to it now fail with EHOSTUNREACH after one connection attempt, until one "
                       "connects", t->what ? t->what : "peer", (unsigned long long)a->site, a->host, a->port);
        else
                cm_log(LOG_NOTICE, "%s site %llu (%s:%u): reachable again", t->what ? t->what : "peer",
                       (unsigned long long)a->site, a->host, a->port);
}

static void tls_free(void *p)
{
        struct tls *t = p;

        if (!t)
                return;
        for (int i = 0; i < US_RPC_CONNS_PER_THREAD; i++)
                lp_client_close(t->conns[i].c);
        free(t);
}

int us_rpc_new(const uint8_t key[LP_KEY_SIZE], uint64_t my_site, struct us_rpc **ret)
{
        struct us_rpc *rpc = calloc(1, sizeof(*rpc));
        int r;

        if (!rpc)
                return -ENOMEM;
        r = pthread_key_create(&rpc->tkey, tls_free);
        if (r) {
                free(rpc);
                return -r;
        }
        r = lp_client_id_new(&rpc->client_id);
        if (r < 0) {
                pthread_key_delete(rpc->tkey);
                free(rpc);
                return r;
        }
        memcpy(rpc->key, key, LP_KEY_SIZE);
        rpc->my_site = my_site;
        pthread_mutex_init(&rpc->mu, NULL);
        *ret = rpc;
        return 0;
}

void us_rpc_close_thread(struct us_rpc *rpc)
{
        struct tls *t = pthread_getspecific(rpc->tkey);

        if (!t)
                return;
        pthread_setspecific(rpc->tkey, NULL);
        tls_free(t);
}

void us_rpc_free(struct us_rpc *rpc)
{
        if (!rpc)
                return;
        us_rpc_close_thread(rpc);
        pthread_key_delete(rpc->tkey);
        pthread_mutex_destroy(&rpc->mu);
        lp_key_wipe(rpc->key, sizeof(rpc->key));
        free(rpc);
}

uint64_t us_rpc_client_id(const struct us_rpc *rpc)
{
        return rpc->client_id;
}

void us_rpc_stats(struct us_rpc *rpc, struct us_rpc_stats *ret)
{
        pthread_mutex_lock(&rpc->mu);
        *ret = rpc->st;
        pthread_mutex_unlock(&rpc->mu);
}

#define STAT(rpc, field)                        \
        do {                                    \
                pthread_mutex_lock(&(rpc)->mu); \
                (rpc)->st.field++;              \
                pthread_mutex_unlock(&(rpc)->mu); \
        } while (0)

static struct tls *tls_get(struct us_rpc *rpc)
{
        struct tls *t = pthread_getspecific(rpc->tkey);

        if (t)
                return t;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        if (pthread_setspecific(rpc->tkey, t)) {
                free(t);
                return NULL;
        }
        return t;
}

/* The slot for host:port: the cached one, or a free or least recently
 * used slot (closed). */
static struct conn *conn_slot(struct tls *t, const char *host, uint16_t port)
{
        struct conn *lru = &t->conns[0];

        for (int i = 0; i < US_RPC_CONNS_PER_THREAD; i++) {
                struct conn *k = &t->conns[i];

                if (k->c && k->port == port && !strcmp(k->host, host))
                        return k;
        }
        for (int i = 0; i < US_RPC_CONNS_PER_THREAD; i++) {
                struct conn *k = &t->conns[i];

                if (!k->c)
                        return k;
                if (k->last_use < lru->last_use)
                        lru = k;
        }
        lp_client_close(lru->c);
        lru->c = NULL;
        return lru;
}

static void conn_drop(struct conn *k)
{
        lp_client_close(k->c);
        k->c = NULL;
}

static int ms_left(uint64_t deadline, uint64_t now)
{
        uint64_t ms;

        if (now >= deadline)
                return 0;
        ms = (deadline - now + 999) / 1000;
        return ms > INT_MAX ? INT_MAX : (int)ms;
}

static int ask_stop(const struct us_call *call)
{
        return call->stop ? call->stop(call->stop_arg) : 0;
}

/* Errors of connect/send/recv after which trying again may help. */
static bool transient(int r)
{
        switch (r) {
        case -ECONNREFUSED:
        case -ECONNRESET:
        case -ECONNABORTED:
        case -EPIPE:
        case -ETIMEDOUT:
        case -EHOSTUNREACH:
        case -EHOSTDOWN:
        case -ENETUNREACH:
        case -ENETDOWN:
        case -ENOTCONN:
        case -EAGAIN:
        case -EADDRNOTAVAIL:
        case -ENOBUFS:
        case -EINTR:
                return true;
        default:
                return false;
        }
}

/* Sleep until min(now + us, deadline), waking every slice to ask stop. */
static int backoff_sleep(const struct us_call *call, uint64_t us)
{
        uint64_t until = cm_now_us() + us;

        if (until > call->deadline)
                until = call->deadline;
        for (;;) {
                uint64_t now = cm_now_us();
                uint64_t step;
                struct timespec ts;
                int s = ask_stop(call);

                if (s < 0)
                        return s;
                if (now >= until)
                        return 0;
                step = until - now;
                if (step > (uint64_t)US_RPC_SLICE_MS * 1000u)
                        step = (uint64_t)US_RPC_SLICE_MS * 1000u;
                ts.tv_sec = (time_t)(step / 1000000u);
                ts.tv_nsec = (long)(step % 1000000u) * 1000;
                nanosleep(&ts, NULL);
        }
}

static void log_timeout(struct us_rpc *rpc, const struct us_target *t, const struct us_site *a,
                        const struct lp_fs_req *req, uint64_t waited_us, int last)
{
        uint64_t now = cm_now_us();
        unsigned suppressed = 0;
        bool say = false;

        pthread_mutex_lock(&rpc->mu);
        rpc->st.timeouts++;
        if (!rpc->last_timeout_log || now - rpc->last_timeout_log >= 5000000u) {
                say = true;
                suppressed = rpc->suppressed;
                rpc->suppressed = 0;
                rpc->last_timeout_log = now;
        } else {
                rpc->suppressed++;
        }
        pthread_mutex_unlock(&rpc->mu);
        if (!say)
                return;
        char more[48] = "";

        if (suppressed)
                snprintf(more, sizeof(more), " (%u more like it suppressed)", suppressed);
        cm_log(LOG_WARNING, "%s site %llu (%s:%u): %s <%u,%llu>: no answer within %.1f s (%s); "
               "failing with ETIMEDOUT%s", t->what ? t->what : "peer",
               (unsigned long long)a->site, a->host[0] ? a->host : "?", a->port,
               lp_fs_op_name(req->op), req->fg, (unsigned long long)req->ino,
               (double)waited_us / 1e6, last ? strerror(-last) : "no answer", more);
}

/* Wait for the reply to reqid.  0 and the frame, or an error. */
static int wait_reply(struct lp_client *c, uint64_t reqid, const struct us_call *call,
                      uint16_t *ret_type, void **ret_payload, size_t *ret_len)
{
        for (;;) {
                uint64_t now = cm_now_us();
                uint16_t type, flags;
                uint64_t rid;
                void *payload;
                size_t len;
                int ms, r;

                if (ask_stop(call) == -ESHUTDOWN)
                        return -ESHUTDOWN;
                ms = ms_left(call->deadline, now);
                if (ms == 0)
                        return -ETIMEDOUT;
                if (ms > US_RPC_SLICE_MS)
                        ms = US_RPC_SLICE_MS;
                r = lp_client_recv(c, ms, &type, &flags, &rid, &payload, &len);
                if (r == -ETIMEDOUT)
                        continue;       /* the loop checks the deadline */
                if (r < 0)
                        return r;
                if ((flags & LP_F_REPLY) && rid == reqid) {
                        *ret_type = type;
                        *ret_payload = payload;
                        *ret_len = len;
                        return 0;
                }
                free(payload);  /* a late answer, or a notification: not ours */
        }
}

/* Read what a cached connection has received meanwhile; 0 if it is still
 * good, else the error that broke it. */
static int drain(struct lp_client *c)
{
        for (;;) {
                void *payload;
                int r = lp_client_recv(c, 0, NULL, NULL, NULL, &payload, NULL);

                if (r == -ETIMEDOUT)
                        return 0;
                if (r < 0)
                        return r;
                free(payload);
        }
}

static int decode_answer(uint16_t type, const void *payload, size_t len, struct lp_fs_resp *ret)
{
        int r;

        if (type == LP_MSG_STATUS) {
                int code;

                r = lp_status_unpack(payload, len, &code, NULL);
                if (r < 0)
                        return -EIO;
                r = lp_status_to_errno(code);
                return r ? r : -EIO;    /* a bare OK status is no answer */
        }
        if (type != LP_MSG_FS_RESP)
                return -EIO;
        r = lp_fs_resp_decode(payload, len, ret);
        if (r < 0)
                return -EIO;
        if (ret->status) {
                r = ret->status;
                lp_fs_resp_release(ret);
                return r;
        }
        return 0;
}

int us_rpc_call(struct us_rpc *rpc, struct us_target *t, const struct us_call *call,
                const struct lp_fs_req *req, enum us_resend resend, struct lp_fs_resp *ret)
{
        uint64_t start = cm_now_us(), backoff = US_RPC_BACKOFF_MIN_US;
        struct us_site addr = t->addr;
        struct tls *tls = tls_get(rpc);
        uint8_t *buf = NULL;
        size_t len = 0;
        unsigned attempt = 0, unreached = 0;    /* connects to addr that timed out */
        bool connected = false, held_tried = false;
        int r, last = 0;

        if (!tls)
                return -ENOMEM;
        r = lp_fs_req_encode(req, &buf, &len);
        if (r < 0)
                return r;
        STAT(rpc, calls);

        for (;; attempt++) {
                struct conn *k;
                uint16_t type;
                void *payload = NULL;
                size_t plen = 0;
                uint64_t reqid, now;
                int s;

                if (attempt > 0) {
                        r = backoff_sleep(call, backoff);
                        if (r < 0)
                                goto out;
                        backoff = backoff * 2 > US_RPC_BACKOFF_MAX_US ? US_RPC_BACKOFF_MAX_US
                                                                     : backoff * 2;
                }
                s = ask_stop(call);
                if (s < 0) {
                        r = s;
                        goto out;
                }
                now = cm_now_us();
                if (now >= call->deadline) {
                        log_timeout(rpc, t, &addr, req, now - start, last);
                        if (!connected && unreached && last == -ETIMEDOUT && addr.port)
                                held_set(rpc, t, &addr, true);
                        r = -ETIMEDOUT;
                        goto out;
                }
                if (attempt > 0 && t->resolve) {
                        r = t->resolve(t->resolve_arg, t->resolve_key, attempt,
                                       call->deadline, &addr);
                        if (r == -ENOENT || r == -ESTALE)
                                goto out;
                        if (r < 0) {
                                last = r;
                                if (held_tried && held_off(rpc, addr.host, addr.port)) {
                                        /* held off, and where else to go is not
                                         * known either (the CSS cut off too) */
                                        r = -EHOSTUNREACH;
                                        goto out;
                                }
                                continue;
                        }
                }
                if (!addr.host[0] || !addr.port) {
                        last = -EHOSTUNREACH;
                        if (!t->resolve) {
                                r = -EHOSTUNREACH;
                                goto out;
                        }
                        continue;
                }

                k = conn_slot(tls, addr.host, addr.port);
                if (k->c && held_off(rpc, addr.host, addr.port)) {
                        /* Connected before the site was held off (a
                         * connection made since would have ended that):
                         * across a cut it would swallow the request and
                         * the call would wait its whole timeout for an
                         * answer.  Prove the path with a new connection. */
                        conn_drop(k);
                }
                if (k->c) {
                        r = drain(k->c);
                        if (r < 0) {
                                /* The peer closed it while it sat idle (normal
                                 * after a restart): connect again at once. */
                                conn_drop(k);
                                last = r;
                        }
                }
                if (!k->c && held_tried && held_off(rpc, addr.host, addr.port)) {
                        /* Held off and its one attempt of this call failed:
                         * fail now instead of trying until the deadline
                         * (a cut-off site would cost every call the whole
                         * timeout; docs/mount.md). */
                        cm_log(LOG_DEBUG, "%s site %llu (%s:%u): %s: held off, EHOSTUNREACH",
                               t->what ? t->what : "peer", (unsigned long long)addr.site, addr.host,
                               addr.port, lp_fs_op_name(req->op));
                        r = -EHOSTUNREACH;
                        goto out;
                }
                if (!k->c) {
                        int ms = ms_left(call->deadline, now);

                        /* lp_client_connect() cannot be asked to stop: bound
                         * one attempt (a peer that accepts but does not
                         * answer, e.g. stopped) so that stop is heard. */
                        if (ms > US_RPC_CONNECT_MS)
                                ms = US_RPC_CONNECT_MS;
                        STAT(rpc, connects);
                        r = lp_client_connect_as(addr.host, addr.port, rpc->key, rpc->my_site,
                                                 rpc->client_id, ms > 0 ? ms : 1, &k->c);
                        if (r < 0) {
                                k->c = NULL;
                                STAT(rpc, connect_failures);
                                cm_log(LOG_DEBUG, "%s site %llu (%s:%u): connect: %s",
                                       t->what ? t->what : "peer",
                                       (unsigned long long)addr.site, addr.host, addr.port,
                                       strerror(-r));
                                last = r;
                                if (r == -ETIMEDOUT)
                                        unreached++;
                                held_tried = true;
                                if (transient(r))
                                        continue;
                                cm_log(LOG_ERR, "%s site %llu (%s:%u): cannot connect: %s%s",
                                       t->what ? t->what : "peer",
                                       (unsigned long long)addr.site, addr.host, addr.port,
                                       strerror(-r),
                                       r == -EKEYREJECTED ? " (not the same cluster key)" : "");
                                r = -EIO;
                                goto out;
                        }
                        snprintf(k->host, sizeof(k->host), "%s", addr.host);
                        k->port = addr.port;
                        held_set(rpc, t, &addr, false);
                }
                connected = true;
                k->last_use = cm_now_us();

                reqid = lp_client_next_reqid(k->c);
                {
                        int ms = ms_left(call->deadline, cm_now_us());

                        lp_client_set_send_timeout(k->c, ms > 0 ? ms : 1);
                }
                r = lp_client_send(k->c, LP_MSG_FS_REQ, 0, reqid, buf, len);
                if (r < 0) {
                        /* Not sent whole: the peer cannot have acted on it. */
                        conn_drop(k);
                        last = r;
                        if (r == -EMSGSIZE) {
                                r = -EINVAL;
                                goto out;
                        }
                        continue;
                }
                r = wait_reply(k->c, reqid, call, &type, &payload, &plen);
                if (r == -ETIMEDOUT) {
                        /* The connection stays: a late answer is dropped by
                         * the next call's drain.  No answer for the whole
                         * call: the site is held off too (a cut swallows
                         * requests on connections made before it); the
                         * next call proves the path with a new connection
                         * (a live site accepts it, which ends that). */
                        log_timeout(rpc, t, &addr, req, cm_now_us() - start, 0);
                        if (addr.port)
                                held_set(rpc, t, &addr, true);
                        goto out;
                }
                if (r == -ESHUTDOWN)
                        goto out;
                if (r < 0) {
                        conn_drop(k);
                        last = r;
                        if (resend == US_RESEND_UNSENT) {
                                cm_log(LOG_WARNING, "%s site %llu (%s:%u): %s <%u,%llu>: "
                                       "connection lost after the request went out (%s); "
                                       "it may or may not have been done: EIO",
                                       t->what ? t->what : "peer",
                                       (unsigned long long)addr.site, addr.host, addr.port,
                                       lp_fs_op_name(req->op), req->fg,
                                       (unsigned long long)req->ino, strerror(-r));
                                r = -EIO;
                                goto out;
                        }
                        STAT(rpc, resends);
                        continue;
                }
                r = decode_answer(type, payload, plen, ret);
                free(payload);
                if (r == -EHOSTUNREACH && resend == US_RESEND_ANY) {
                        /* "Unavailable": the peer cannot serve it yet (the CSS
                         * before the storage site registered again after a
                         * restart).  Nothing was done: ask again. */
                        last = r;
                        continue;
                }
                if (r == -EREMCHG) {
                        /* "Not the primary" (storage/ss_srv_int.h [S9]): the
                         * site refused before doing anything, whatever the
                         * resend mode; the next attempt's resolve asks the
                         * CSS for the mount table (docs/replication.md).
                         * Without a resolve (a site the CSS named) the same
                         * site is asked again: its own table is behind the
                         * CSS's for a moment. */
                        STAT(rpc, moved);
                        cm_log(LOG_INFO, "%s site %llu (%s:%u): %s: not the primary any more: asking "
                               "the CSS for the mount table", t->what ? t->what : "peer",
                               (unsigned long long)addr.site, addr.host, addr.port, lp_fs_op_name(req->op));
                        last = r;
                        continue;
                }
                if (r == -EAGAIN && t->busy_retry) {
                        /* "Busy": the CSS has too many requests waiting for
                         * storage sites and refused this one before doing
                         * anything.  Ask again after the backoff. */
                        STAT(rpc, busy);
                        last = r;
                        continue;
                }
                if (r == -EIO)
                        cm_log(LOG_DEBUG, "%s site %llu (%s:%u): %s: bad or error answer",
                               t->what ? t->what : "peer", (unsigned long long)addr.site,
                               addr.host, addr.port, lp_fs_op_name(req->op));
                goto out;
        }
out:
        t->addr = addr;
        free(buf);
        return r;
}
