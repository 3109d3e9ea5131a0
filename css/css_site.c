/*
 * css_site.c -- see css_site.h.  A sorted array of entries, binary
 * searched by site id; file group sets are sorted arrays too.
 */
#include "css_site.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct css_sites {
        struct css_site *v;             /* sorted by id */
        size_t n, cap;
};

int css_sites_new(struct css_sites **ret)
{
        struct css_sites *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

void css_sites_free(struct css_sites *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                free(t->v[i].fgs);
        free(t->v);
        free(t);
}

/* Index of id, or where it would go (*found false). */
static size_t find(const struct css_sites *t, uint64_t id, bool *found)
{
        size_t lo = 0, hi = t->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (t->v[mid].id == id) {
                        *found = true;
                        return mid;
                }
                if (t->v[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

int css_sites_register(struct css_sites *t, uint64_t id, const char *host, uint16_t port,
                       const uint32_t *fgs, size_t nfgs, uint64_t conn, uint64_t now_us)
{
        struct css_site *s;
        uint32_t *set = NULL;
        size_t i, k = 0;
        bool found;

        if (!id || !port || !host || !*host || strlen(host) >= CSS_HOST_MAX)
                return -EINVAL;
        if (nfgs > CSS_MAX_SITE_FGS)
                return -ENOSPC;
        if (nfgs) {
                set = malloc(nfgs * sizeof(*set));
                if (!set)
                        return -ENOMEM;
                memcpy(set, fgs, nfgs * sizeof(*set));
                qsort(set, nfgs, sizeof(*set), cmp_u32);
                for (i = 0; i < nfgs; i++)
                        if (k == 0 || set[k - 1] != set[i])
                                set[k++] = set[i];
        }
        i = find(t, id, &found);
        if (!found) {
                if (t->n >= CSS_MAX_SITES) {
                        free(set);
                        return -ENOSPC;
                }
                if (t->n == t->cap) {
                        size_t cap = t->cap ? t->cap * 2 : 8;
                        struct css_site *v = realloc(t->v, cap * sizeof(*v));

                        if (!v) {
                                free(set);
                                return -ENOMEM;
                        }
                        t->v = v;
                        t->cap = cap;
                }
                memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
                t->n++;
                memset(&t->v[i], 0, sizeof(t->v[i]));
                t->v[i].id = id;
                t->v[i].first_us = now_us;
        }
        s = &t->v[i];
        free(s->fgs);
        s->fgs = set;
        s->nfgs = k;
        strcpy(s->host, host);
        s->port = port;
        s->registered_us = now_us;
        s->contact_us = now_us;
        s->nregister++;
        s->conn = conn;
        return 0;
}

int css_sites_add_fg(struct css_sites *t, uint64_t id, uint32_t fg)
{
        struct css_site *s;
        uint32_t *set;
        bool found;
        size_t i = find(t, id, &found), j;

        if (!found)
                return -ENOENT;
        s = &t->v[i];
        if (css_site_holds(s, fg))
                return 0;
        if (s->nfgs >= CSS_MAX_SITE_FGS)
                return -ENOSPC;
        set = realloc(s->fgs, (s->nfgs + 1) * sizeof(*set));
        if (!set)
                return -ENOMEM;
        for (j = s->nfgs; j > 0 && set[j - 1] > fg; j--)
                set[j] = set[j - 1];
        set[j] = fg;
        s->fgs = set;
        s->nfgs++;
        return 0;
}

void css_sites_touch(struct css_sites *t, uint64_t id, uint64_t now_us)
{
        bool found;
        size_t i = find(t, id, &found);

        if (found && now_us > t->v[i].contact_us)
                t->v[i].contact_us = now_us;
}

void css_sites_failed(struct css_sites *t, uint64_t id, uint64_t now_us)
{
        bool found;
        size_t i = find(t, id, &found);

        if (found)
                t->v[i].fail_us = now_us;
}

bool css_site_held_off(const struct css_site *s, uint64_t now_us)
{
        return s->fail_us && s->fail_us > s->contact_us && now_us - s->fail_us < CSS_SITE_HOLDOFF_MS * 1000ull;
}

void css_sites_touch_conn(struct css_sites *t, uint64_t conn, uint64_t now_us)
{
        for (size_t i = 0; i < t->n; i++)
                if (conn && t->v[i].conn == conn && now_us > t->v[i].contact_us)
                        t->v[i].contact_us = now_us;
}

void css_sites_conn_closed(struct css_sites *t, uint64_t conn)
{
        for (size_t i = 0; i < t->n; i++)
                if (conn && t->v[i].conn == conn)
                        t->v[i].conn = 0;
}

size_t css_sites_count(const struct css_sites *t)
{
        return t->n;
}

const struct css_site *css_sites_at(const struct css_sites *t, size_t i)
{
        return i < t->n ? &t->v[i] : NULL;
}

const struct css_site *css_sites_get(const struct css_sites *t, uint64_t id)
{
        bool found;
        size_t i = find(t, id, &found);

        return found ? &t->v[i] : NULL;
}

bool css_site_holds(const struct css_site *s, uint32_t fg)
{
        return s->nfgs && bsearch(&fg, s->fgs, s->nfgs, sizeof(*s->fgs), cmp_u32) != NULL;
}

const struct css_site *css_sites_holder(const struct css_sites *t, uint32_t fg)
{
        const struct css_site *best = NULL;

        for (size_t i = 0; i < t->n; i++) {
                const struct css_site *s = &t->v[i];

                if (!css_site_holds(s, fg))
                        continue;
                if (!best || (s->conn && !best->conn) ||
                    (!s->conn == !best->conn && s->contact_us > best->contact_us))
                        best = s;   /* ties keep the lower id: the array is in id order */
        }
        return best;
}

const struct css_site *css_sites_primary(const struct css_sites *t, uint32_t fg, const uint64_t *holders, size_t n)
{
        /* The array is in id order: the first connected holder is the lowest. */
        for (size_t i = 0; i < t->n; i++) {
                const struct css_site *s = &t->v[i];
                bool listed = n == 0;

                for (size_t k = 0; k < n && !listed; k++)
                        listed = holders[k] == s->id;
                if (listed && s->conn && css_site_holds(s, fg))
                        return s;
        }
        if (n == 0)
                return css_sites_holder(t, fg);
        /* No holder is connected: the one heard from last (a storage site
         * that reconnects slowly is still tried), never a non-holder. */
        {
                const struct css_site *best = NULL;

                for (size_t i = 0; i < t->n; i++) {
                        const struct css_site *s = &t->v[i];
                        bool listed = false;

                        for (size_t k = 0; k < n && !listed; k++)
                                listed = holders[k] == s->id;
                        if (listed && css_site_holds(s, fg) && (!best || s->contact_us > best->contact_us))
                                best = s;
                }
                return best;
        }
}
