/* ss_fw.c -- the followers of a container's change stream; see ss_fw.h. */
#include "ss_fw.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct ss_fw_ent {
        struct ss_fw_ent *next;
        uint64_t seq;                   /* watchers: since; copy waits: the seq to reach */
        uint64_t deadline_us;
        unsigned need;
        void *tag;
};

void ss_fw_init(struct ss_fw *w)
{
        memset(w, 0, sizeof(*w));
}

static void add(struct ss_fw_ent **head, struct ss_fw_ent **tail, struct ss_fw_ent *e)
{
        e->next = NULL;
        if (*tail)
                (*tail)->next = e;
        else
                *head = e;
        *tail = e;
}

/* Detach the entries for which leave(e) holds, in order, into *out.  The
 * callbacks run only after every list is consistent again, so that they
 * may call into this module [F1]. */
static unsigned take(struct ss_fw_ent **head, struct ss_fw_ent **tail, bool (*leave)(const struct ss_fw_ent *,
                     const void *), const void *arg, struct ss_fw_ent **out)
{
        struct ss_fw_ent **pp = head, *e, *last = NULL, **ot = out;
        unsigned n = 0;

        while (*ot)
                ot = &(*ot)->next;
        while ((e = *pp)) {
                if (leave(e, arg)) {
                        *pp = e->next;
                        e->next = NULL;
                        *ot = e;
                        ot = &e->next;
                        n++;
                } else {
                        last = e;
                        pp = &e->next;
                }
        }
        *tail = last;
        return n;
}

static void hand_back(struct ss_fw_ent *e, int err, ss_fw_fn fn, void *ctx)
{
        while (e) {
                struct ss_fw_ent *n = e->next;
                void *tag = e->tag;

                free(e);
                fn(ctx, tag, err);
                e = n;
        }
}

static bool always(const struct ss_fw_ent *e, const void *arg)
{
        (void)e;
        (void)arg;
        return true;
}

void ss_fw_clear(struct ss_fw *w, int err, ss_fw_fn watch_fn, ss_fw_fn copy_fn, void *ctx)
{
        struct ss_fw_ent *ow = NULL, *oc = NULL;

        take(&w->watch_head, &w->watch_tail, always, NULL, &ow);
        take(&w->copy_head, &w->copy_tail, always, NULL, &oc);
        w->nwatch = w->ncopy = 0;
        hand_back(ow, err, watch_fn, ctx);
        hand_back(oc, err, copy_fn, ctx);
}

static struct ss_fw_ent *ent_new(uint64_t seq, uint64_t deadline_us, unsigned need, void *tag)
{
        struct ss_fw_ent *e = calloc(1, sizeof(*e));

        if (e) {
                e->seq = seq;
                e->deadline_us = deadline_us;
                e->need = need;
                e->tag = tag;
        }
        return e;
}

int ss_fw_watch(struct ss_fw *w, uint64_t since, uint64_t deadline_us, void *tag)
{
        struct ss_fw_ent *e;

        if (w->nwatch >= SS_FW_MAX)
                return -ENOSPC;
        e = ent_new(since, deadline_us, 0, tag);
        if (!e)
                return -ENOMEM;
        add(&w->watch_head, &w->watch_tail, e);
        w->nwatch++;
        return 0;
}

static bool watch_done(const struct ss_fw_ent *e, const void *arg)
{
        return e->seq < *(const uint64_t *)arg;
}

void ss_fw_committed(struct ss_fw *w, uint64_t seq, ss_fw_fn fn, void *ctx)
{
        struct ss_fw_ent *out = NULL;

        w->nwatch -= take(&w->watch_head, &w->watch_tail, watch_done, &seq, &out);
        hand_back(out, 0, fn, ctx);
}

unsigned ss_fw_count(const struct ss_fw *w, uint64_t seq)
{
        unsigned n = 0;

        for (unsigned i = 0; i < w->npos; i++)
                n += w->pos[i].pos >= seq;
        return n;
}

static bool copies_done(const struct ss_fw_ent *e, const void *arg)
{
        return ss_fw_count(arg, e->seq) >= e->need;
}

void ss_fw_ack(struct ss_fw *w, uint64_t site, uint64_t pos, uint64_t now_us, ss_fw_fn fn, void *ctx)
{
        struct ss_fw_ent *out = NULL;
        unsigned i, oldest = 0;

        for (i = 0; i < w->npos && w->pos[i].site != site; i++)
                if (w->pos[i].at_us < w->pos[oldest].at_us)
                        oldest = i;
        if (i == w->npos) {
                if (w->npos < SS_FW_SITES)
                        w->npos++;
                else
                        i = oldest;
                w->pos[i].site = site;
                w->pos[i].pos = 0;
        }
        if (pos > w->pos[i].pos)
                w->pos[i].pos = pos;
        w->pos[i].at_us = now_us;
        w->ncopy -= take(&w->copy_head, &w->copy_tail, copies_done, w, &out);
        hand_back(out, 0, fn, ctx);
}

int ss_fw_wait_copies(struct ss_fw *w, uint64_t seq, unsigned need, uint64_t deadline_us, void *tag)
{
        struct ss_fw_ent *e;

        if (ss_fw_count(w, seq) >= need)
                return 1;
        if (w->ncopy >= SS_FW_MAX)
                return -ENOSPC;
        e = ent_new(seq, deadline_us, need, tag);
        if (!e)
                return -ENOMEM;
        add(&w->copy_head, &w->copy_tail, e);
        w->ncopy++;
        return 0;
}

static bool expired(const struct ss_fw_ent *e, const void *arg)
{
        return e->deadline_us <= *(const uint64_t *)arg;
}

void ss_fw_expire(struct ss_fw *w, uint64_t now_us, ss_fw_fn watch_fn, ss_fw_fn copy_fn, void *ctx)
{
        struct ss_fw_ent *ow = NULL, *oc = NULL;

        w->nwatch -= take(&w->watch_head, &w->watch_tail, expired, &now_us, &ow);
        w->ncopy -= take(&w->copy_head, &w->copy_tail, expired, &now_us, &oc);
        hand_back(ow, -ETIMEDOUT, watch_fn, ctx);
        hand_back(oc, -ETIMEDOUT, copy_fn, ctx);
}

uint64_t ss_fw_next_deadline(const struct ss_fw *w)
{
        uint64_t d = 0;

        for (const struct ss_fw_ent *e = w->watch_head; e; e = e->next)
                if (!d || e->deadline_us < d)
                        d = e->deadline_us;
        for (const struct ss_fw_ent *e = w->copy_head; e; e = e->next)
                if (!d || e->deadline_us < d)
                        d = e->deadline_us;
        return d;
}
