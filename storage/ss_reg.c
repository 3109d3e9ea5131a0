/*
 * ss_reg.c -- see ss_reg.h.
 */
#include "ss_reg.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u

struct ss_reg {
        pthread_t thr;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool stop;
        char *fgs;                      /* guarded by mu */
        uint64_t fgs_gen;               /* bumps on every ss_reg_set_fgs */
        uint64_t count;                 /* guarded by mu */
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        char *css_host;
        uint16_t css_port;
        char *css_port_file;
        char *host;
        uint16_t port;
        uint32_t poll_ms;
        uint32_t timeout_ms;
};

/* Wait up to ms, or until stop or a new fgs list.  Caller holds mu. */
static void wait_ms(struct ss_reg *r, uint32_t ms, uint64_t gen)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        while (!r->stop && r->fgs_gen == gen)
                if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
                        break;
}

static int target(struct ss_reg *r, char *host, size_t cap, uint16_t *port)
{
        snprintf(host, cap, "%s", r->css_host ? r->css_host : "127.0.0.1");
        if (r->css_port_file)
                return cm_read_port_file(r->css_port_file, port);
        *port = r->css_port;
        return 0;
}

/* One request/answer with the CSS.  Returns the answer's status or a
 * transport error. */
static int call(struct ss_reg *r, struct lp_client *c, const struct lp_fs_req *q)
{
        struct lp_fs_resp a;
        int ret = lp_fs_call(c, q, (int)r->timeout_ms, &a, NULL);

        if (ret < 0)
                return ret;
        ret = a.status;
        lp_fs_resp_release(&a);
        return ret;
}

static int do_register(struct ss_reg *r, struct lp_client *c, uint64_t *gen)
{
        struct lp_fs_req q = { 0 };
        char *fgs;
        int ret;

        pthread_mutex_lock(&r->mu);
        fgs = strdup(r->fgs);
        *gen = r->fgs_gen;
        pthread_mutex_unlock(&r->mu);
        if (!fgs)
                return -ENOMEM;
        q.op = LP_FS_CSS_REGISTER;
        q.site = r->site;
        q.host = r->host;
        q.port = r->port;
        q.text = fgs;
        ret = call(r, c, &q);
        if (ret >= 0) {
                cm_log(LOG_INFO, "registered with the CSS (site %llu at %s:%u, file groups %s)",
                       (unsigned long long)r->site, r->host, r->port, fgs);
                pthread_mutex_lock(&r->mu);
                r->count++;
                pthread_mutex_unlock(&r->mu);
        }
        free(fgs);
        return ret;
}

static void *reg_main(void *arg)
{
        struct ss_reg *r = arg;
        uint32_t backoff = BACKOFF_MIN_MS;
        bool quiet = false;

        pthread_mutex_lock(&r->mu);
        while (!r->stop) {
                struct lp_client *c = NULL;
                char host[256];
                uint16_t port = 0;
                uint64_t gen = r->fgs_gen;
                int ret;

                pthread_mutex_unlock(&r->mu);
                ret = target(r, host, sizeof(host), &port);
                if (ret >= 0)
                        ret = lp_client_connect(host, port, r->key, r->site, (int)r->timeout_ms, &c);
                if (ret >= 0)
                        ret = do_register(r, c, &gen);
                if (ret < 0) {
                        if (port == 0)
                                cm_log(quiet ? LOG_DEBUG : LOG_NOTICE, "cannot read the CSS port from %s: %s "
                                       "(retrying)", r->css_port_file, strerror(-ret));
                        else
                                cm_log(quiet ? LOG_DEBUG : LOG_NOTICE, "cannot register with the CSS at %s:%u: %s "
                                       "(retrying)", host, port, strerror(-ret));
                        quiet = true;
                        lp_client_close(c);
                        pthread_mutex_lock(&r->mu);
                        wait_ms(r, backoff, r->fgs_gen);
                        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                        continue;
                }
                quiet = false;
                backoff = BACKOFF_MIN_MS;
                /* Registered: poll until the connection breaks. */
                for (;;) {
                        struct lp_fs_req nop = { .op = LP_FS_NOP, .site = r->site };

                        pthread_mutex_lock(&r->mu);
                        wait_ms(r, r->poll_ms, gen);
                        if (r->stop)
                                break;
                        if (r->fgs_gen != gen) {
                                pthread_mutex_unlock(&r->mu);
                                ret = do_register(r, c, &gen);
                        } else {
                                pthread_mutex_unlock(&r->mu);
                                ret = call(r, c, &nop);
                                /* A CSS that does not know NOP still answers. */
                                if (ret == -EOPNOTSUPP || ret == -EINVAL)
                                        ret = 0;
                        }
                        if (ret < 0) {
                                cm_log(LOG_NOTICE, "connection to the CSS at %s:%u lost: %s; registering again",
                                       host, port, strerror(-ret));
                                pthread_mutex_lock(&r->mu);
                                break;
                        }
                }
                pthread_mutex_unlock(&r->mu);
                lp_client_close(c);
                pthread_mutex_lock(&r->mu);
        }
        pthread_mutex_unlock(&r->mu);
        return NULL;
}

static void reg_free(struct ss_reg *r)
{
        lp_key_wipe(r->key, sizeof(r->key));
        free(r->fgs);
        free(r->css_host);
        free(r->css_port_file);
        free(r->host);
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
}

int ss_reg_start(const struct ss_reg_opts *o, const char *fgs_json, struct ss_reg **ret)
{
        pthread_condattr_t ca;
        struct ss_reg *r;
        int e;

        if (!o->css_port_file && !o->css_port)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        pthread_mutex_init(&r->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->cv, &ca);
        pthread_condattr_destroy(&ca);
        memcpy(r->key, o->key, sizeof(r->key));
        r->site = o->site;
        r->css_port = o->css_port;
        r->port = o->port;
        r->poll_ms = o->poll_ms ? o->poll_ms : 1000;
        r->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
        r->fgs = strdup(fgs_json ? fgs_json : "[]");
        r->css_host = o->css_host ? strdup(o->css_host) : NULL;
        r->css_port_file = o->css_port_file ? strdup(o->css_port_file) : NULL;
        r->host = strdup(o->host ? o->host : "127.0.0.1");
        if (!r->fgs || !r->host || (o->css_host && !r->css_host) || (o->css_port_file && !r->css_port_file)) {
                reg_free(r);
                return -ENOMEM;
        }
        e = pthread_create(&r->thr, NULL, reg_main, r);
        if (e) {
                reg_free(r);
                return -e;
        }
        *ret = r;
        return 0;
}

void ss_reg_set_fgs(struct ss_reg *r, const char *fgs_json)
{
        char *n = strdup(fgs_json);

        if (!n)
                return;
        pthread_mutex_lock(&r->mu);
        free(r->fgs);
        r->fgs = n;
        r->fgs_gen++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
}

uint64_t ss_reg_count(struct ss_reg *r)
{
        uint64_t n;

        pthread_mutex_lock(&r->mu);
        n = r->count;
        pthread_mutex_unlock(&r->mu);
        return n;
}

void ss_reg_stop(struct ss_reg *r)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thr, NULL);
        reg_free(r);
}
