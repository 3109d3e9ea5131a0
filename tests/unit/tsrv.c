/* tsrv.c -- see tsrv.h. */
#include "tsrv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *tsrv_main(void *arg)
{
        struct tsrv *t = arg;
        int r;

        uv_loop_init(&t->loop);
        r = ss_srv_new(&t->loop, &t->o, &t->s);
        pthread_mutex_lock(&t->mu);
        t->err = r;
        if (r >= 0)
                t->port = ss_srv_port(t->s);
        t->ready = true;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        uv_run(&t->loop, UV_RUN_DEFAULT);
        ss_srv_free(t->s);
        uv_loop_close(&t->loop);
        return NULL;
}

void tsrv_opts(struct ss_opts *o, const char *data_dir, const uint8_t key[LP_KEY_SIZE], uint64_t site)
{
        ss_opts_default(o);
        o->data_dir = data_dir;
        memcpy(o->key, key, sizeof(o->key));
        o->site = site;
        o->sweep_ms = 50;
        o->segment_size = 1u << 20;
        o->space_reserve = 0;
}

int tsrv_new(const struct ss_opts *o, struct tsrv **ret)
{
        struct tsrv *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        if (strlen(o->data_dir) >= sizeof(t->data)) {
                free(t);
                return -ENAMETOOLONG;
        }
        t->o = *o;
        snprintf(t->data, sizeof(t->data), "%s", o->data_dir);
        t->o.data_dir = t->data;
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        r = pthread_create(&t->thr, NULL, tsrv_main, t);
        if (r != 0) {
                free(t);
                return -r;
        }
        pthread_mutex_lock(&t->mu);
        while (!t->ready)
                pthread_cond_wait(&t->cv, &t->mu);
        pthread_mutex_unlock(&t->mu);
        if (t->err < 0) {
                /* A server that failed half-way is stopping: its loop
                 * returns once its handles are closed (ss_srv.h). */
                r = t->err;
                pthread_join(t->thr, NULL);
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

void tsrv_stop(struct tsrv *t)
{
        ss_srv_stop_async(t->s);
        pthread_join(t->thr, NULL);
        free(t);
}
