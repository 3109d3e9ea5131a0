/*
 * us_mtab.c -- see us_mtab.h.
 *
 * Invariants:
 *   (1) ents[0..n) is sorted by fg, fgs unique, every fg in 1..US_FG_MAX.
 *   (2) mp[0..nmp) indexes the entries that are mounted somewhere (every
 *       entry but the root file group's), sorted by <parent_fg, parent_ino>,
 *       keys unique.
 */
#include "us_mtab.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cm.h"

struct ent {
        size_t pos;             /* index in the CSS's answer */
        uint32_t fg;
        uint32_t parent_fg;
        uint64_t parent_ino;
        struct us_site site;
};

struct us_mtab {
        pthread_mutex_t mu;
        struct ent *ents;       /* (1) */
        size_t n;
        size_t *mp;             /* (2) */
        size_t nmp;
        uint64_t set_at;
};

int us_ino_to_fuse(uint32_t fg, uint64_t ino, uint64_t *ret_fino)
{
        if (fg == 0 || fg > US_FG_MAX || ino == 0 || ino > US_INO_MASK)
                return -EOVERFLOW;
        if (fg == US_ROOT_FG && ino == LP_FS_ROOT_INO)
                *ret_fino = US_FUSE_ROOT;
        else
                *ret_fino = (uint64_t)fg << US_FG_SHIFT | ino;
        return 0;
}

int us_ino_from_fuse(uint64_t fino, uint32_t *ret_fg, uint64_t *ret_ino)
{
        uint32_t fg = (uint32_t)(fino >> US_FG_SHIFT);
        uint64_t ino = fino & US_INO_MASK;

        if (fino == US_FUSE_ROOT) {
                *ret_fg = US_ROOT_FG;
                *ret_ino = LP_FS_ROOT_INO;
                return 0;
        }
        /* fg 0 is not a file group; <1, 1> is only ever FUSE_ROOT_ID. */
        if (fg == 0 || ino == 0 || (fg == US_ROOT_FG && ino == LP_FS_ROOT_INO))
                return -ESTALE;
        *ret_fg = fg;
        *ret_ino = ino;
        return 0;
}

int us_mtab_new(struct us_mtab **ret)
{
        struct us_mtab *mt = calloc(1, sizeof(*mt));

        if (!mt)
                return -ENOMEM;
        pthread_mutex_init(&mt->mu, NULL);
        *ret = mt;
        return 0;
}

void us_mtab_free(struct us_mtab *mt)
{
        if (!mt)
                return;
        pthread_mutex_destroy(&mt->mu);
        free(mt->ents);
        free(mt->mp);
        free(mt);
}

/* Order by fg, then by position in the CSS's answer (so the first wins). */
static int cmp_fg(const void *a, const void *b)
{
        const struct ent *x = a, *y = b;

        if (x->fg != y->fg)
                return x->fg < y->fg ? -1 : 1;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_mp_key(const struct ent *x, const struct ent *y)
{
        if (x->parent_fg != y->parent_fg)
                return x->parent_fg < y->parent_fg ? -1 : 1;
        if (x->parent_ino != y->parent_ino)
                return x->parent_ino < y->parent_ino ? -1 : 1;
        return 0;
}

/* Order mount points by <parent_fg, parent_ino>, then by position. */
static int cmp_mp(const void *a, const void *b, void *arg)
{
        const struct ent *ents = arg;
        const struct ent *x = &ents[*(const size_t *)a], *y = &ents[*(const size_t *)b];
        int c = cmp_mp_key(x, y);

        if (c)
                return c;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int us_mtab_set(struct us_mtab *mt, const struct lp_fs_mount *m, size_t n)
{
        struct ent *ents = calloc(n ? n : 1, sizeof(*ents));
        size_t *mp = calloc(n ? n : 1, sizeof(*mp));
        size_t k = 0, nmp = 0, j;

        if (!ents || !mp) {
                free(ents);
                free(mp);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct ent *e = &ents[k];

                if (m[i].fg == 0 || m[i].fg > US_FG_MAX) {
                        cm_log(LOG_WARNING, "mount table: file group %u cannot be mounted "
                               "(ids 1..%u only); left out", m[i].fg, US_FG_MAX);
                        continue;
                }
                if (m[i].fg != US_ROOT_FG &&
                    (m[i].parent_fg == m[i].fg || m[i].parent_fg == 0 ||
                     m[i].parent_ino == 0)) {
                        cm_log(LOG_WARNING, "mount table: file group %u has no valid mount "
                               "point <%u,%llu>; left out", m[i].fg, m[i].parent_fg,
                               (unsigned long long)m[i].parent_ino);
                        continue;
                }
                e->pos = i;
                e->fg = m[i].fg;
                e->parent_fg = m[i].fg == US_ROOT_FG ? 0 : m[i].parent_fg;
                e->parent_ino = m[i].fg == US_ROOT_FG ? 0 : m[i].parent_ino;
                e->site.site = m[i].site;
                e->site.port = m[i].port <= 65535 ? (uint16_t)m[i].port : 0;
                if (m[i].host && strlen(m[i].host) < sizeof(e->site.host))
                        strcpy(e->site.host, m[i].host);
                k++;
        }
        qsort(ents, k, sizeof(*ents), cmp_fg);
        j = 0;
        for (size_t i = 0; i < k; i++) {
                if (j > 0 && ents[j - 1].fg == ents[i].fg) {
                        cm_log(LOG_WARNING, "mount table: file group %u listed twice; "
                               "the first entry wins", ents[i].fg);
                        continue;
                }
                ents[j++] = ents[i];
        }
        k = j;
        for (size_t i = 0; i < k; i++)
                if (ents[i].fg != US_ROOT_FG)
                        mp[nmp++] = i;
        qsort_r(mp, nmp, sizeof(*mp), cmp_mp, ents);
        j = 0;
        for (size_t i = 0; i < nmp; i++) {
                if (j > 0 && cmp_mp_key(&ents[mp[j - 1]], &ents[mp[i]]) == 0) {
                        cm_log(LOG_WARNING, "mount table: file groups %u and %u are both "
                               "mounted on <%u,%llu>; %u is left out", ents[mp[j - 1]].fg,
                               ents[mp[i]].fg, ents[mp[i]].parent_fg,
                               (unsigned long long)ents[mp[i]].parent_ino, ents[mp[i]].fg);
                        continue;
                }
                mp[j++] = mp[i];
        }
        nmp = j;

        pthread_mutex_lock(&mt->mu);
        free(mt->ents);
        free(mt->mp);
        mt->ents = ents;
        mt->n = k;
        mt->mp = mp;
        mt->nmp = nmp;
        mt->set_at = cm_now_us();
        pthread_mutex_unlock(&mt->mu);
        return 0;
}

/* mu held */
static const struct ent *find_fg(const struct us_mtab *mt, uint32_t fg)
{
        size_t lo = 0, hi = mt->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (mt->ents[mid].fg == fg)
                        return &mt->ents[mid];
                if (mt->ents[mid].fg < fg)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* mu held: first index in mp whose key is >= <fg, ino>. */
static size_t mp_lower(const struct us_mtab *mt, uint32_t fg, uint64_t ino)
{
        struct ent key = { .parent_fg = fg, .parent_ino = ino };
        size_t lo = 0, hi = mt->nmp;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cmp_mp_key(&mt->ents[mt->mp[mid]], &key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

int us_mtab_site(struct us_mtab *mt, uint32_t fg, struct us_site *ret)
{
        const struct ent *e;
        int r = -ENOENT;

        pthread_mutex_lock(&mt->mu);
        e = find_fg(mt, fg);
        if (e) {
                *ret = e->site;
                r = e->site.host[0] && e->site.port ? 0 : -EHOSTUNREACH;
        }
        pthread_mutex_unlock(&mt->mu);
        return r;
}

int us_mtab_mounted_on(struct us_mtab *mt, uint32_t fg, uint64_t ino, uint32_t *ret_fg)
{
        size_t i;
        int r = 0;

        pthread_mutex_lock(&mt->mu);
        i = mp_lower(mt, fg, ino);
        if (i < mt->nmp) {
                const struct ent *e = &mt->ents[mt->mp[i]];

                if (e->parent_fg == fg && e->parent_ino == ino) {
                        *ret_fg = e->fg;
                        r = 1;
                }
        }
        pthread_mutex_unlock(&mt->mu);
        return r;
}

int us_mtab_mountpoint(struct us_mtab *mt, uint32_t fg, uint32_t *ret_pfg, uint64_t *ret_pino)
{
        const struct ent *e;
        int r = -ENOENT;

        pthread_mutex_lock(&mt->mu);
        e = find_fg(mt, fg);
        if (e && e->fg != US_ROOT_FG) {
                *ret_pfg = e->parent_fg;
                *ret_pino = e->parent_ino;
                r = 0;
        }
        pthread_mutex_unlock(&mt->mu);
        return r;
}

bool us_mtab_has_mounts_in(struct us_mtab *mt, uint32_t fg)
{
        bool r = false;
        size_t i;

        pthread_mutex_lock(&mt->mu);
        i = mp_lower(mt, fg, 0);
        if (i < mt->nmp && mt->ents[mt->mp[i]].parent_fg == fg)
                r = true;
        pthread_mutex_unlock(&mt->mu);
        return r;
}

size_t us_mtab_count(struct us_mtab *mt)
{
        size_t n;

        pthread_mutex_lock(&mt->mu);
        n = mt->n;
        pthread_mutex_unlock(&mt->mu);
        return n;
}

uint64_t us_mtab_set_at(struct us_mtab *mt)
{
        uint64_t t;

        pthread_mutex_lock(&mt->mu);
        t = mt->set_at;
        pthread_mutex_unlock(&mt->mu);
        return t;
}
