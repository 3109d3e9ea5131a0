/*
 * dsm_emap.c -- the extent map behind the page index and the transaction
 * write sets, plus the small encoding helpers every record uses.
 *
 * An emap is an ordered set of extents keyed by <obj, first page>.  It is a
 * two-level structure: a sorted array of leaves, each a sorted array of up
 * to EMAP_LEAF extents.  Lookups binary-search the leaf array by each
 * leaf's first key, then the leaf.  Inserting into a full leaf splits it;
 * a leaf that becomes empty is removed.  This is a B-tree of height two:
 * for the stores LocusFS runs (millions of extents) every operation costs
 * two binary searches and a memmove of at most one leaf plus, on a split,
 * of the leaf-pointer array.
 *
 * [I1] (no overlap within an object) is kept by insert, which removes the
 * range it covers first; remove trims or splits the extents at its edges,
 * shifting their loc by whole pages [I2].
 */
#include <stdlib.h>

#include "cm_varint.h"
#include "dsm_int.h"

#define EMAP_LEAF 128

struct dsm__leaf {
        uint32_t n;
        struct dsm__ext e[EMAP_LEAF];
};

/* ---- encoding helpers ---------------------------------------------------- */

void dsm__buf_reserve(struct dsm__buf *b, size_t more)
{
        size_t need, cap;
        uint8_t *p;

        if (b->err)
                return;
        need = b->len + more;
        if (need <= b->cap)
                return;
        cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
                b->err = -ENOMEM;
                return;
        }
        b->p = p;
        b->cap = cap;
}

void dsm__buf_put(struct dsm__buf *b, const void *src, size_t n)
{
        dsm__buf_reserve(b, n);
        if (b->err || !n)
                return;
        memcpy(b->p + b->len, src, n);
        b->len += n;
}

void dsm__buf_varint(struct dsm__buf *b, uint64_t v)
{
        dsm__buf_reserve(b, CM_VARINT_MAX);
        if (b->err)
                return;
        b->len += cm_varint_put(b->p + b->len, v);
}

void dsm__buf_u32(struct dsm__buf *b, uint32_t v)
{
        dsm__buf_reserve(b, 4);
        if (b->err)
                return;
        dsm__put32(b->p + b->len, v);
        b->len += 4;
}

void dsm__buf_free(struct dsm__buf *b)
{
        free(b->p);
        memset(b, 0, sizeof(*b));
}

uint64_t dsm__rd_varint(struct dsm__rd *r)
{
        uint64_t v;

        if (r->err || cm_varint_get(r->p, r->len, &r->pos, &v) < 0) {
                r->err = true;
                return 0;
        }
        return v;
}

uint32_t dsm__rd_u32(struct dsm__rd *r)
{
        const uint8_t *p = dsm__rd_bytes(r, 4);

        return p ? dsm__get32(p) : 0;
}

const uint8_t *dsm__rd_bytes(struct dsm__rd *r, size_t n)
{
        const uint8_t *p;

        if (r->err || n > r->len - r->pos) {
                r->err = true;
                return NULL;
        }
        p = r->p + r->pos;
        r->pos += n;
        return p;
}

/* ---- extent map ---------------------------------------------------------- */

static inline int key_cmp(uint64_t o1, uint64_t p1, uint64_t o2, uint64_t p2)
{
        if (o1 != o2)
                return o1 < o2 ? -1 : 1;
        if (p1 != p2)
                return p1 < p2 ? -1 : 1;
        return 0;
}

static inline uint64_t ext_end(const struct dsm__ext *e)
{
        return e->page + e->npages;
}

void dsm__emap_init(struct dsm__emap *m, dsm__account_fn account, void *ctx)
{
        memset(m, 0, sizeof(*m));
        m->account = account;
        m->ctx = ctx;
}

void dsm__emap_clear(struct dsm__emap *m, bool account)
{
        for (size_t i = 0; i < m->nleaves; i++) {
                struct dsm__leaf *l = m->leaves[i];

                if (account && m->account)
                        for (uint32_t j = 0; j < l->n; j++)
                                m->account(m->ctx, &l->e[j], l->e[j].loc, -(int64_t)l->e[j].npages);
                free(l);
        }
        free(m->leaves);
        m->leaves = NULL;
        m->nleaves = m->cap = m->count = 0;
}

/* The position of the first extent whose key is > <obj, page>; normalised
 * so that ei < leaves[li]->n unless it is the end of the map. */
static struct dsm__pos upper_bound(const struct dsm__emap *m, uint64_t obj, uint64_t page)
{
        struct dsm__pos p = { 0, 0 };
        size_t lo = 0, hi = m->nleaves;
        const struct dsm__leaf *l;
        uint32_t a, b;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                const struct dsm__ext *f = &m->leaves[mid]->e[0];

                if (key_cmp(f->obj, f->page, obj, page) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0)
                return p;
        l = m->leaves[lo - 1];
        a = 0;
        b = l->n;
        while (a < b) {
                uint32_t mid = (a + b) / 2;

                if (key_cmp(l->e[mid].obj, l->e[mid].page, obj, page) <= 0)
                        a = mid + 1;
                else
                        b = mid;
        }
        p.li = lo - 1;
        p.ei = a;
        if (p.ei == l->n && p.li + 1 < m->nleaves) {
                p.li++;
                p.ei = 0;
        }
        return p;
}

static struct dsm__ext *at(const struct dsm__emap *m, struct dsm__pos p)
{
        if (p.li >= m->nleaves || p.ei >= m->leaves[p.li]->n)
                return NULL;
        return &m->leaves[p.li]->e[p.ei];
}

static bool prev_pos(const struct dsm__emap *m, struct dsm__pos p, struct dsm__pos *ret)
{
        if (p.ei > 0) {
                ret->li = p.li;
                ret->ei = p.ei - 1;
                return true;
        }
        if (p.li == 0)
                return false;
        ret->li = p.li - 1;
        ret->ei = m->leaves[p.li - 1]->n - 1;
        return true;
}

struct dsm__pos dsm__emap_first(const struct dsm__emap *m)
{
        struct dsm__pos p = { 0, 0 };

        (void)m;
        return p;
}

struct dsm__ext *dsm__emap_get(const struct dsm__emap *m, struct dsm__pos p)
{
        return at(m, p);
}

struct dsm__pos dsm__emap_advance(const struct dsm__emap *m, struct dsm__pos p)
{
        p.ei++;
        if (p.li < m->nleaves && p.ei >= m->leaves[p.li]->n && p.li + 1 < m->nleaves) {
                p.li++;
                p.ei = 0;
        }
        return p;
}

const struct dsm__ext *dsm__emap_find(const struct dsm__emap *m, uint64_t obj, uint64_t page)
{
        struct dsm__pos p = upper_bound(m, obj, page), q;
        const struct dsm__ext *e;

        if (!prev_pos(m, p, &q))
                return NULL;
        e = at(m, q);
        if (e->obj == obj && e->page <= page && page < ext_end(e))
                return e;
        return NULL;
}

bool dsm__emap_next(const struct dsm__emap *m, uint64_t obj, uint64_t page, struct dsm__ext *ret)
{
        struct dsm__pos p = upper_bound(m, obj, page), q;
        const struct dsm__ext *e;

        if (prev_pos(m, p, &q)) {
                e = at(m, q);
                if (e->obj == obj && page < ext_end(e)) {
                        *ret = *e;
                        return true;
                }
        }
        e = at(m, p);
        if (e && e->obj == obj) {
                *ret = *e;
                return true;
        }
        return false;
}

static void delete_at(struct dsm__emap *m, struct dsm__pos *p)
{
        struct dsm__leaf *l = m->leaves[p->li];

        memmove(&l->e[p->ei], &l->e[p->ei + 1], (l->n - p->ei - 1) * sizeof(l->e[0]));
        l->n--;
        m->count--;
        if (l->n == 0) {
                free(l);
                memmove(&m->leaves[p->li], &m->leaves[p->li + 1],
                        (m->nleaves - p->li - 1) * sizeof(m->leaves[0]));
                m->nleaves--;
                p->ei = 0;
        } else if (p->ei == l->n && p->li + 1 < m->nleaves) {
                p->li++;
                p->ei = 0;
        }
}

static int insert_at(struct dsm__emap *m, struct dsm__pos p, const struct dsm__ext *e)
{
        struct dsm__leaf *l;

        if (m->nleaves == 0) {
                if (!m->cap) {
                        m->leaves = malloc(4 * sizeof(m->leaves[0]));
                        if (!m->leaves)
                                return -ENOMEM;
                        m->cap = 4;
                }
                l = malloc(sizeof(*l));
                if (!l)
                        return -ENOMEM;
                l->n = 0;
                m->leaves[0] = l;
                m->nleaves = 1;
                p.li = 0;
                p.ei = 0;
        }
        /* Prefer the end of the previous leaf to the start of this one:
         * appending in key order then fills leaves completely. */
        if (p.ei == 0 && p.li > 0 && m->leaves[p.li - 1]->n < EMAP_LEAF) {
                p.li--;
                p.ei = m->leaves[p.li]->n;
        }
        l = m->leaves[p.li];
        if (l->n == EMAP_LEAF) {
                struct dsm__leaf *r = malloc(sizeof(*r));
                uint32_t half = EMAP_LEAF / 2;

                if (!r)
                        return -ENOMEM;
                if (m->nleaves == m->cap) {
                        size_t cap = m->cap * 2;
                        struct dsm__leaf **nl = realloc(m->leaves, cap * sizeof(nl[0]));

                        if (!nl) {
                                free(r);
                                return -ENOMEM;
                        }
                        m->leaves = nl;
                        m->cap = cap;
                }
                /* Appending at the very end: split unevenly, so that
                 * sorted loads leave full leaves behind. */
                if (p.ei == EMAP_LEAF && p.li + 1 == m->nleaves)
                        half = EMAP_LEAF;
                r->n = l->n - half;
                memcpy(r->e, &l->e[half], r->n * sizeof(l->e[0]));
                l->n = half;
                memmove(&m->leaves[p.li + 2], &m->leaves[p.li + 1],
                        (m->nleaves - p.li - 1) * sizeof(m->leaves[0]));
                m->leaves[p.li + 1] = r;
                m->nleaves++;
                if (p.ei >= half) {
                        p.li++;
                        p.ei -= half;
                        l = r;
                }
        }
        memmove(&l->e[p.ei + 1], &l->e[p.ei], (l->n - p.ei) * sizeof(l->e[0]));
        l->e[p.ei] = *e;
        l->n++;
        m->count++;
        return 0;
}

int dsm__emap_remove(struct dsm__emap *m, uint64_t obj, uint64_t first, uint64_t npages)
{
        uint64_t last = (npages == DSM_TO_END || first + npages < first) ? UINT64_MAX : first + npages;
        struct dsm__pos p = upper_bound(m, obj, first), q;
        struct dsm__ext *e;

        if (npages == 0)
                return 0;
        /* The extent starting before `first` may stick into the range. */
        if (prev_pos(m, p, &q)) {
                e = at(m, q);
                if (e->obj == obj && e->page == first) {
                        p = q;          /* the loop below handles it */
                } else if (e->obj == obj && ext_end(e) > first) {
                        uint64_t cut = first - e->page;

                        if (ext_end(e) > last) {
                                struct dsm__ext right = *e;
                                uint64_t skip = last - e->page;
                                int r;

                                right.page = last;
                                right.loc = e->loc + skip * DSM_PAGE_SIZE;
                                right.npages = (uint32_t)(e->npages - skip);
                                if (m->account)
                                        m->account(m->ctx, e, e->loc + cut * DSM_PAGE_SIZE,
                                                   -(int64_t)(last - first));
                                e->npages = (uint32_t)cut;
                                r = insert_at(m, p, &right);
                                if (r < 0)
                                        return r;
                                return 0;
                        }
                        if (m->account)
                                m->account(m->ctx, e, e->loc + cut * DSM_PAGE_SIZE,
                                           -(int64_t)(e->npages - cut));
                        e->npages = (uint32_t)cut;
                }
        }
        while ((e = at(m, p)) && e->obj == obj && e->page < last) {
                if (ext_end(e) <= last) {
                        if (m->account)
                                m->account(m->ctx, e, e->loc, -(int64_t)e->npages);
                        delete_at(m, &p);
                        continue;
                }
                uint64_t skip = last - e->page;

                if (m->account)
                        m->account(m->ctx, e, e->loc, -(int64_t)skip);
                e->page = last;
                e->loc += skip * DSM_PAGE_SIZE;
                e->npages -= (uint32_t)skip;
                break;
        }
        return 0;
}

int dsm__emap_insert(struct dsm__emap *m, const struct dsm__ext *e)
{
        int r;

        assert(e->npages > 0);
        r = dsm__emap_remove(m, e->obj, e->page, e->npages);
        if (r < 0)
                return r;
        r = insert_at(m, upper_bound(m, e->obj, e->page), e);
        if (r < 0)
                return r;
        if (m->account)
                m->account(m->ctx, e, e->loc, (int64_t)e->npages);
        return 0;
}

/* ---- u64 map -------------------------------------------------------------- */

static size_t u64_slot(uint64_t key, size_t cap)
{
        return (size_t)(key * 0x9E3779B97F4A7C15ULL >> 7) & (cap - 1);
}

int dsm__u64map_put(struct dsm__u64map *m, uint64_t key, uint64_t val)
{
        size_t i;

        if ((m->n + 1) * 2 > m->cap) {
                struct dsm__u64map nm = { 0 };

                nm.cap = m->cap ? m->cap * 2 : 64;
                nm.keys = calloc(nm.cap, sizeof(uint64_t));
                nm.vals = calloc(nm.cap, sizeof(uint64_t));
                nm.used = calloc(nm.cap, 1);
                if (!nm.keys || !nm.vals || !nm.used) {
                        dsm__u64map_free(&nm);
                        return -ENOMEM;
                }
                for (size_t j = 0; j < m->cap; j++)
                        if (m->used[j])
                                dsm__u64map_put(&nm, m->keys[j], m->vals[j]);
                dsm__u64map_free(m);
                *m = nm;
        }
        for (i = u64_slot(key, m->cap); m->used[i]; i = (i + 1) & (m->cap - 1))
                if (m->keys[i] == key) {
                        m->vals[i] = val;
                        return 0;
                }
        m->used[i] = 1;
        m->keys[i] = key;
        m->vals[i] = val;
        m->n++;
        return 0;
}

bool dsm__u64map_get(const struct dsm__u64map *m, uint64_t key, uint64_t *ret)
{
        if (!m->cap)
                return false;
        for (size_t i = u64_slot(key, m->cap); m->used[i]; i = (i + 1) & (m->cap - 1))
                if (m->keys[i] == key) {
                        *ret = m->vals[i];
                        return true;
                }
        return false;
}

void dsm__u64map_free(struct dsm__u64map *m)
{
        free(m->keys);
        free(m->vals);
        free(m->used);
        memset(m, 0, sizeof(*m));
}
