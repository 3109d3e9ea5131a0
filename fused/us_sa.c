/*
 * us_sa.c -- see us_sa.h.
 *
 * One listing at a time: the directory most recently read ahead, as an
 * open-addressing hash of names.  A generation counter, bumped by
 * us_sa_invalidate(), dates every listing; a listing is used only while
 * its generation is the current one and it is younger than the TTL.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "us_sa.h"

struct sa_ent {
        uint8_t *name;          /* NULL: empty slot */
        size_t namelen;
        struct lp_fs_attr attr;
};

struct us_sa {
        pthread_mutex_t mu;
        uint64_t gen;
        /* the published listing */
        uint32_t fg;
        uint64_t dir;
        uint64_t gen_of;
        uint64_t fetched_us;
        struct sa_ent *tab;
        size_t cap, n;
        bool valid;
        /* the one being gathered */
        bool fetching;
        uint32_t ffg;
        uint64_t fdir, fgen, fstart;
        struct sa_ent *ftab;
        size_t fcap, fn;
        /* misses, for the one directory being looked up in */
        uint32_t mfg;
        uint64_t mdir, mstart;
        unsigned misses;
};

static uint64_t hash(const uint8_t *p, size_t n)
{
        uint64_t h = 1469598103934665603ULL;

        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 1099511628211ULL;
        return h;
}

static void tab_free(struct sa_ent *t, size_t cap)
{
        for (size_t i = 0; t && i < cap; i++)
                free(t[i].name);
        free(t);
}

int us_sa_new(struct us_sa **ret)
{
        struct us_sa *sa = calloc(1, sizeof(*sa));

        if (!sa)
                return -ENOMEM;
        pthread_mutex_init(&sa->mu, NULL);
        sa->gen = 1;
        *ret = sa;
        return 0;
}

void us_sa_free(struct us_sa *sa)
{
        if (!sa)
                return;
        tab_free(sa->tab, sa->cap);
        tab_free(sa->ftab, sa->fcap);
        pthread_mutex_destroy(&sa->mu);
        free(sa);
}

static struct sa_ent *find(struct sa_ent *t, size_t cap, const uint8_t *name, size_t len)
{
        size_t i;

        if (!cap)
                return NULL;
        for (i = hash(name, len) & (cap - 1); t[i].name; i = (i + 1) & (cap - 1))
                if (t[i].namelen == len && !memcmp(t[i].name, name, len))
                        return &t[i];
        return &t[i];
}

enum us_sa_answer us_sa_lookup(struct us_sa *sa, uint32_t fg, uint64_t dir, const uint8_t *name,
                               size_t namelen, uint64_t now, struct lp_fs_attr *ret)
{
        enum us_sa_answer a = US_SA_MISS;

        pthread_mutex_lock(&sa->mu);
        if (sa->valid && sa->fg == fg && sa->dir == dir && sa->gen_of == sa->gen &&
            now - sa->fetched_us < US_SA_TTL_US) {
                struct sa_ent *e = find(sa->tab, sa->cap, name, namelen);

                if (e && e->name) {
                        *ret = e->attr;
                        pthread_mutex_unlock(&sa->mu);
                        return US_SA_HIT;
                }
                /* Not in a fresh listing: ask, but do not read ahead again. */
                pthread_mutex_unlock(&sa->mu);
                return US_SA_MISS;
        }
        if (sa->mfg != fg || sa->mdir != dir || now - sa->mstart >= US_SA_WINDOW_US) {
                sa->mfg = fg;
                sa->mdir = dir;
                sa->mstart = now;
                sa->misses = 0;
        }
        if (++sa->misses >= US_SA_MISSES && !sa->fetching) {
                sa->fetching = true;
                sa->ffg = fg;
                sa->fdir = dir;
                sa->fgen = sa->gen;
                sa->fstart = now;
                sa->fn = 0;
                sa->misses = 0;
                a = US_SA_FETCH;
        }
        pthread_mutex_unlock(&sa->mu);
        return a;
}

static int grow(struct us_sa *sa, size_t need)
{
        size_t cap = sa->fcap ? sa->fcap : 64;
        struct sa_ent *t;

        if (need * 2 <= sa->fcap)
                return 0;
        while (need * 2 > cap)
                cap *= 2;
        t = calloc(cap, sizeof(*t));
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < sa->fcap; i++)
                if (sa->ftab[i].name)
                        *find(t, cap, sa->ftab[i].name, sa->ftab[i].namelen) = sa->ftab[i];
        free(sa->ftab);
        sa->ftab = t;
        sa->fcap = cap;
        return 0;
}

int us_sa_fetch_add(struct us_sa *sa, const struct lp_fs_dirent *e, size_t n)
{
        int r = 0;

        pthread_mutex_lock(&sa->mu);
        for (size_t i = 0; i < n && r == 0; i++) {
                struct sa_ent *slot;

                if (!e[i].has_attr || sa->fn >= US_SA_MAX_ENTRIES ||
                    (e[i].namelen == 1 && e[i].name[0] == '.') ||
                    (e[i].namelen == 2 && e[i].name[0] == '.' && e[i].name[1] == '.'))
                        continue;
                r = grow(sa, sa->fn + 1);
                if (r < 0)
                        break;
                slot = find(sa->ftab, sa->fcap, e[i].name, e[i].namelen);
                if (slot->name) {
                        slot->attr = e[i].attr;
                        continue;
                }
                slot->name = malloc(e[i].namelen ? e[i].namelen : 1);
                if (!slot->name) {
                        r = -ENOMEM;
                        break;
                }
                memcpy(slot->name, e[i].name, e[i].namelen);
                slot->namelen = e[i].namelen;
                slot->attr = e[i].attr;
                sa->fn++;
        }
        pthread_mutex_unlock(&sa->mu);
        return r;
}

void us_sa_fetch_end(struct us_sa *sa, bool ok)
{
        struct sa_ent *old = NULL;
        size_t oldcap = 0;

        pthread_mutex_lock(&sa->mu);
        if (ok && sa->fgen == sa->gen) {
                old = sa->tab;
                oldcap = sa->cap;
                sa->tab = sa->ftab;
                sa->cap = sa->fcap;
                sa->n = sa->fn;
                sa->fg = sa->ffg;
                sa->dir = sa->fdir;
                sa->gen_of = sa->fgen;
                sa->fetched_us = sa->fstart;
                sa->valid = true;
        } else {
                old = sa->ftab;
                oldcap = sa->fcap;
        }
        sa->ftab = NULL;
        sa->fcap = sa->fn = 0;
        sa->fetching = false;
        pthread_mutex_unlock(&sa->mu);
        tab_free(old, oldcap);
}

void us_sa_invalidate(struct us_sa *sa)
{
        pthread_mutex_lock(&sa->mu);
        sa->gen++;
        /* Lookups interleaved with changes (creating, unlinking, copying a
         * tree) are not a scan of a directory: reading ahead there would
         * fetch listings the next change throws away. */
        sa->misses = 0;
        pthread_mutex_unlock(&sa->mu);
}

uint64_t us_sa_generation(struct us_sa *sa)
{
        uint64_t g;

        pthread_mutex_lock(&sa->mu);
        g = sa->gen;
        pthread_mutex_unlock(&sa->mu);
        return g;
}
