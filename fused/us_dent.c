/*
 * us_dent.c -- see us_dent.h.
 *
 * Two chained hash tables over the same entries: by <parent, name> (to
 * find a name added again) and by parent (each bucket chain holds the
 * entries of the parents hashing there; taking a directory walks its
 * bucket).  Both have cap buckets, cap a power of two >= max / 4.
 */
#include "us_dent.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cm.h"

struct ent {
        struct ent *nnext;              /* by name */
        struct ent *pnext, **pprev;     /* by parent (doubly linked: removal by name) */
        uint64_t parent;
        uint64_t until;
        size_t len;
        char name[];
};

struct us_dent {
        pthread_mutex_t mu;
        struct ent **byname, **byparent;
        size_t cap, n, max;
        uint64_t pruned_at;             /* full tables are pruned at most once a second */
};

static uint64_t mix(uint64_t h)
{
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        return h;
}

static size_t hname(const struct us_dent *d, uint64_t parent, const char *name, size_t len)
{
        uint64_t h = mix(parent) ^ 0xcbf29ce484222325ull;

        for (size_t i = 0; i < len; i++)
                h = (h ^ (uint8_t)name[i]) * 0x100000001b3ull;
        return (size_t)(mix(h) & (d->cap - 1));
}

static size_t hparent(const struct us_dent *d, uint64_t parent)
{
        return (size_t)(mix(parent) & (d->cap - 1));
}

int us_dent_new(size_t max, struct us_dent **ret)
{
        struct us_dent *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->max = max ? max : US_DENT_MAX;
        for (d->cap = 64; d->cap < d->max / 4; d->cap *= 2)
                ;
        d->byname = calloc(d->cap, sizeof(*d->byname));
        d->byparent = calloc(d->cap, sizeof(*d->byparent));
        if (!d->byname || !d->byparent) {
                free(d->byname);
                free(d->byparent);
                free(d);
                return -ENOMEM;
        }
        pthread_mutex_init(&d->mu, NULL);
        *ret = d;
        return 0;
}

/* Unlink e from the name table (mu held). */
static void unlink_name(struct us_dent *d, struct ent *e)
{
        struct ent **pp = &d->byname[hname(d, e->parent, e->name, e->len)];

        while (*pp != e)
                pp = &(*pp)->nnext;
        *pp = e->nnext;
}

static void unlink_parent(struct ent *e)
{
        *e->pprev = e->pnext;
        if (e->pnext)
                e->pnext->pprev = e->pprev;
}

void us_dent_free(struct us_dent *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->cap; i++)
                while (d->byparent[i]) {
                        struct ent *e = d->byparent[i];

                        unlink_parent(e);
                        free(e);
                }
        free(d->byname);
        free(d->byparent);
        pthread_mutex_destroy(&d->mu);
        free(d);
}

/* Drop every entry whose time is over (mu held). */
static void prune(struct us_dent *d, uint64_t now)
{
        for (size_t i = 0; i < d->cap; i++) {
                struct ent *e = d->byparent[i], *next;

                for (; e; e = next) {
                        next = e->pnext;
                        if (e->until > now)
                                continue;
                        unlink_parent(e);
                        unlink_name(d, e);
                        free(e);
                        d->n--;
                }
        }
}

bool us_dent_add(struct us_dent *d, uint64_t parent, const char *name, size_t len, uint64_t until_us)
{
        size_t h;
        struct ent *e;

        pthread_mutex_lock(&d->mu);
        h = hname(d, parent, name, len);
        for (e = d->byname[h]; e; e = e->nnext)
                if (e->parent == parent && e->len == len && !memcmp(e->name, name, len)) {
                        if (e->until < until_us)
                                e->until = until_us;
                        pthread_mutex_unlock(&d->mu);
                        return true;
                }
        if (d->n >= d->max) {
                uint64_t now = cm_now_us();

                if (now - d->pruned_at >= 1000000u) {
                        prune(d, now);
                        d->pruned_at = now;
                }
        }
        e = d->n < d->max ? malloc(sizeof(*e) + len + 1) : NULL;
        if (!e) {
                pthread_mutex_unlock(&d->mu);
                return false;
        }
        e->parent = parent;
        e->until = until_us;
        e->len = len;
        memcpy(e->name, name, len);
        e->name[len] = 0;
        e->nnext = d->byname[h];
        d->byname[h] = e;
        h = hparent(d, parent);
        e->pnext = d->byparent[h];
        if (e->pnext)
                e->pnext->pprev = &e->pnext;
        e->pprev = &d->byparent[h];
        d->byparent[h] = e;
        d->n++;
        pthread_mutex_unlock(&d->mu);
        return true;
}

/* Detach the entries of parent (all: every entry) onto a list (mu held). */
static struct ent *detach(struct us_dent *d, uint64_t parent, bool all)
{
        struct ent *out = NULL;
        size_t lo = all ? 0 : hparent(d, parent), hi = all ? d->cap : lo + 1;

        for (size_t i = lo; i < hi; i++) {
                struct ent *e = d->byparent[i], *next;

                for (; e; e = next) {
                        next = e->pnext;
                        if (!all && e->parent != parent)
                                continue;
                        unlink_parent(e);
                        unlink_name(d, e);
                        d->n--;
                        e->pnext = out;
                        out = e;
                }
        }
        return out;
}

static size_t call_each(struct ent *l, us_dent_fn fn, void *ctx)
{
        size_t n = 0;

        while (l) {
                struct ent *e = l;

                l = e->pnext;
                fn(ctx, e->parent, e->name, e->len);
                free(e);
                n++;
        }
        return n;
}

size_t us_dent_take(struct us_dent *d, uint64_t parent, us_dent_fn fn, void *ctx)
{
        struct ent *l;

        pthread_mutex_lock(&d->mu);
        l = detach(d, parent, false);
        pthread_mutex_unlock(&d->mu);
        return call_each(l, fn, ctx);
}

size_t us_dent_take_all(struct us_dent *d, us_dent_fn fn, void *ctx)
{
        struct ent *l;

        pthread_mutex_lock(&d->mu);
        l = detach(d, 0, true);
        pthread_mutex_unlock(&d->mu);
        return call_each(l, fn, ctx);
}

size_t us_dent_count(struct us_dent *d)
{
        size_t n;

        pthread_mutex_lock(&d->mu);
        n = d->n;
        pthread_mutex_unlock(&d->mu);
        return n;
}
