/*
 * css_ss.c -- see css_ss.h.
 *
 * Invariants:
 *   (1) a connection is either in the idle list (owned by the pool, under
 *       mu) or held by exactly one calling thread;
 *   (2) the idle list is ordered newest first and holds at most
 *       CSS_SS_IDLE_MAX connections.
 */
#include "css_ss.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "css_site.h"

struct idle {
        struct idle *next;
        uint64_t site;
        char host[CSS_HOST_MAX];
        uint16_t port;
        struct lp_client *c;
};

struct css_ss_pool {
        pthread_mutex_t mu;
        uint8_t key[LP_KEY_SIZE];
        uint64_t my_site;
        int connect_ms, call_ms;
        struct idle *idle;              /* invariant (2) */
        unsigned nidle;
};

int css_ss_pool_new(const uint8_t key[LP_KEY_SIZE], uint64_t my_site, int connect_ms, int call_ms,
                    struct css_ss_pool **ret)
{
        struct css_ss_pool *p;

        if (connect_ms <= 0 || call_ms <= 0)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->mu, NULL);
        memcpy(p->key, key, LP_KEY_SIZE);
        p->my_site = my_site;
        p->connect_ms = connect_ms;
        p->call_ms = call_ms;
        *ret = p;
        return 0;
}

void css_ss_pool_free(struct css_ss_pool *p)
{
        if (!p)
                return;
        while (p->idle) {
                struct idle *i = p->idle;

                p->idle = i->next;
                lp_client_close(i->c);
                free(i);
        }
        pthread_mutex_destroy(&p->mu);
        lp_key_wipe(p->key, sizeof(p->key));
        free(p);
}

static struct lp_client *take(struct css_ss_pool *p, uint64_t site, const char *host, uint16_t port)
{
        struct lp_client *c = NULL;

        pthread_mutex_lock(&p->mu);
        for (struct idle **pp = &p->idle; *pp; pp = &(*pp)->next) {
                struct idle *i = *pp;

                if (i->site == site && i->port == port && !strcmp(i->host, host)) {
                        *pp = i->next;
                        p->nidle--;
                        c = i->c;
                        free(i);
                        break;
                }
        }
        pthread_mutex_unlock(&p->mu);
        return c;
}

static void give_back(struct css_ss_pool *p, uint64_t site, const char *host, uint16_t port,
                      struct lp_client *c)
{
        struct idle *i = calloc(1, sizeof(*i)), *drop = NULL;

        if (!i || strlen(host) >= sizeof(i->host)) {
                free(i);
                lp_client_close(c);
                return;
        }
        i->site = site;
        snprintf(i->host, sizeof(i->host), "%s", host);
        i->port = port;
        i->c = c;
        pthread_mutex_lock(&p->mu);
        i->next = p->idle;
        p->idle = i;
        if (++p->nidle > CSS_SS_IDLE_MAX) {
                struct idle **pp = &p->idle;

                while ((*pp)->next)
                        pp = &(*pp)->next;
                drop = *pp;
                *pp = NULL;
                p->nidle--;
        }
        pthread_mutex_unlock(&p->mu);
        if (drop) {
                lp_client_close(drop->c);
                free(drop);
        }
}

/* One exchange on c.  Returns 0 with *ret decoded, or a transport error. */
static int exchange(struct css_ss_pool *p, struct lp_client *c, const uint8_t *buf, size_t len,
                    struct lp_fs_resp *ret, char *err, size_t cap)
{
        uint16_t type = 0;
        void *payload = NULL;
        size_t plen = 0;
        int r;

        r = lp_client_call(c, LP_MSG_FS_REQ, buf, len, p->call_ms, &type, &payload, &plen);
        if (r < 0) {
                snprintf(err, cap, "%s", r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
                return r;
        }
        if (type == LP_MSG_STATUS) {
                int code = 0;
                char *msg = NULL;

                r = lp_status_unpack(payload, plen, &code, &msg);
                free(payload);
                if (r < 0) {
                        snprintf(err, cap, "a Status answer that does not parse");
                        return -EBADMSG;
                }
                /* A generic error answer: make it look like an FS answer. */
                memset(ret, 0, sizeof(*ret));
                ret->status = lp_status_to_errno(code);
                if (!ret->status)
                        ret->status = -EIO;
                snprintf(err, cap, "%s", msg);
                free(msg);
                return 0;
        }
        if (type != LP_MSG_FS_RESP) {
                free(payload);
                snprintf(err, cap, "an answer of unexpected type %u", type);
                return -EBADMSG;
        }
        r = lp_fs_resp_decode(payload, plen, ret);
        free(payload);
        if (r < 0)
                snprintf(err, cap, "an answer that does not parse");
        return r;
}

int css_ss_call(struct css_ss_pool *p, uint64_t site, const char *host, uint16_t port,
                const struct lp_fs_req *req, struct lp_fs_resp *ret_resp, char *err_text,
                size_t err_cap)
{
        char errbuf[256] = "";
        struct lp_client *c;
        uint8_t *buf;
        size_t len;
        bool pooled;
        int r;

        if (!err_text || !err_cap) {
                err_text = errbuf;
                err_cap = sizeof(errbuf);
        }
        err_text[0] = 0;
        r = lp_fs_req_encode(req, &buf, &len);
        if (r < 0) {
                snprintf(err_text, err_cap, "cannot encode the request: %s", strerror(-r));
                return r;
        }
        for (int attempt = 0; attempt < 2; attempt++) {
                struct lp_fs_resp resp;

                c = take(p, site, host, port);
                pooled = c != NULL;
                if (!c) {
                        r = lp_client_connect(host, port, p->key, p->my_site, p->connect_ms, &c);
                        if (r < 0) {
                                snprintf(err_text, err_cap, "cannot connect to %s:%u: %s", host, port,
                                         r == -ETIMEDOUT ? "timed out" : strerror(-r));
                                break;
                        }
                }
                r = exchange(p, c, buf, len, &resp, err_text, err_cap);
                if (r == 0) {
                        give_back(p, site, host, port, c);
                        *ret_resp = resp;
                        break;
                }
                lp_client_close(c);
                /* A pooled connection the peer dropped: try once afresh. */
                if (!pooled || r == -ETIMEDOUT || r == -EBADMSG || r == -ENOMEM)
                        break;
        }
        free(buf);
        return r;
}
