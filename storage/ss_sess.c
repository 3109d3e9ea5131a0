/*
 * ss_sess.c -- see ss_sess.h.
 */
#include "ss_sess.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"

static unsigned bucket_of(uint64_t id)
{
        return (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 40) % SS_SESS_BUCKETS;
}

void ss_sessions_init(struct ss_sessions *t, unsigned max)
{
        uint32_t boot = 0;

        memset(t, 0, sizeof(*t));
        if (getrandom(&boot, sizeof(boot), 0) != (ssize_t)sizeof(boot)) {
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                boot = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ ((uint32_t)getpid() << 16);
        }
        if (!boot)
                boot = 1;
        t->boot = boot;
        t->max = max ? max : SS_SESS_MAX_DEFAULT;
}

struct ss_sess *ss_sess_find(struct ss_sessions *t, uint64_t id)
{
        struct ss_sess *s;

        if ((uint32_t)(id >> 32) != t->boot)
                return NULL;
        for (s = t->bucket[bucket_of(id)]; s; s = s->hnext)
                if (s->id == id)
                        return s->doomed ? NULL : s;
        return NULL;
}

int ss_sess_new(struct ss_sessions *t, struct ss_ct *ct, uint64_t ino, uint64_t client, struct ss_sess **ret)
{
        struct ss_sess *s;
        uint64_t id;
        unsigned b;
        int r;

        if (t->n >= t->max)
                return -ENFILE;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        r = dsm_txn_begin(ct->store, &s->txn);
        if (r < 0) {
                free(s);
                return r;
        }
        do {
                if (++t->counter == 0)
                        t->counter = 1;
                id = (uint64_t)t->boot << 32 | t->counter;
        } while (ss_sess_find(t, id));
        s->id = id;
        s->ct = ct;
        s->ino = ino;
        s->client = client;
        s->last_used_us = cm_now_us();
        b = bucket_of(id);
        s->hnext = t->bucket[b];
        t->bucket[b] = s;
        s->prev = t->tail;
        if (t->tail)
                t->tail->next = s;
        else
                t->head = s;
        t->tail = s;
        t->n++;
        *ret = s;
        return 0;
}

void ss_sess_end(struct ss_sessions *t, struct ss_sess *s)
{
        struct ss_sess **pp = &t->bucket[bucket_of(s->id)];

        while (*pp && *pp != s)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = s->hnext;
        if (s->prev)
                s->prev->next = s->next;
        else
                t->head = s->next;
        if (s->next)
                s->next->prev = s->prev;
        else
                t->tail = s->prev;
        t->n--;
        dsm_txn_abort(s->txn);
        if (s->ext_free)
                s->ext_free(s->ext);
        free(s);
}

void ss_sess_reset(struct ss_sess *s)
{
        s->has_size = s->has_atime = s->has_mtime = s->has_ctime = false;
        s->data = false;
        s->pages_valid = false;
}

void ss_sessions_clear(struct ss_sessions *t)
{
        while (t->head)
                ss_sess_end(t, t->head);
}

unsigned ss_sessions_end_ct(struct ss_sessions *t, const struct ss_ct *ct)
{
        unsigned n = 0;

        for (struct ss_sess *s = t->head, *next; s; s = next) {
                next = s->next;
                if (s->ct == ct) {
                        ss_sess_end(t, s);
                        n++;
                }
        }
        return n;
}
