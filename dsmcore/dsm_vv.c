/*
 * dsm_vv.c -- version vectors: a map from site id to update counter.
 *
 * A vector is a sorted array of <site, counter> pairs; a site that is not
 * in the array counts 0.  The API is in dsm.h ("version vectors").
 *
 * Invariants (asserts cite them as VV1..VV3):
 *   VV1  e[0..n) is sorted by strictly increasing site.
 *   VV2  no stored entry has counter 0 (setting 0 removes the entry).
 *   VV3  n <= cap and n <= DSM_VV_MAX_SITES; e == NULL iff cap == 0.
 *
 * Encoding (common/cm_varint.h: LEB128 unsigned varints, at most 10 bytes each):
 *   count
 *   count times: site delta (site minus the previous site; the first is
 *                absolute), counter
 * Decoding refuses with -EBADMSG: truncated input, count > DSM_VV_MAX_SITES,
 * a delta of 0 after the first entry (unsorted or duplicate sites), a site
 * beyond UINT32_MAX, a counter of 0 (never produced, VV2), and a varint
 * longer than 10 bytes or beyond 64 bits.  Trailing bytes after the vector
 * are left alone: the return value says how much was consumed.
 *
 * Functions that can fail leave their output untouched when they do.
 * Not thread-safe: a vector belongs to its caller.
 */
#include "dsm.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cm_varint.h"


void dsm_vv_init(struct dsm_vv *v)
{
        v->e = NULL;
        v->n = 0;
        v->cap = 0;
}

void dsm_vv_free(struct dsm_vv *v)
{
        if (!v)
                return;
        free(v->e);
        dsm_vv_init(v);
}

/* Index of site in v, or -(insertion point) - 1 if absent. */
static int64_t vv_find(const struct dsm_vv *v, uint32_t site)
{
        uint32_t lo = 0, hi = v->n;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;

                if (v->e[mid].site == site)
                        return mid;
                if (v->e[mid].site < site)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -(int64_t)lo - 1;
}

/* Make room for at least want entries (want <= DSM_VV_MAX_SITES). */
static int vv_reserve(struct dsm_vv *v, uint32_t want)
{
        struct dsm_vv_entry *e;
        uint32_t cap;

        if (want <= v->cap)
                return 0;
        cap = v->cap ? v->cap : 4;
        while (cap < want)
                cap *= 2;
        if (cap > DSM_VV_MAX_SITES)
                cap = DSM_VV_MAX_SITES;
        e = realloc(v->e, (size_t)cap * sizeof(*e));
        if (!e)
                return -ENOMEM;
        v->e = e;
        v->cap = cap;
        return 0;
}

/* Insert <site, counter> at index i (the insertion point from vv_find). */
static int vv_insert(struct dsm_vv *v, uint32_t i, uint32_t site, uint64_t counter)
{
        int r;

        if (v->n >= DSM_VV_MAX_SITES)
                return -E2BIG;
        r = vv_reserve(v, v->n + 1);
        if (r < 0)
                return r;
        memmove(&v->e[i + 1], &v->e[i], (size_t)(v->n - i) * sizeof(v->e[0]));
        v->e[i].site = site;
        v->e[i].counter = counter;
        v->n++;
        return 0;
}

int dsm_vv_copy(struct dsm_vv *dst, const struct dsm_vv *src)
{
        struct dsm_vv_entry *e;

        if (dst == src)
                return 0;
        if (src->n > dst->cap) {
                e = malloc((size_t)src->n * sizeof(*e));
                if (!e)
                        return -ENOMEM;
                free(dst->e);
                dst->e = e;
                dst->cap = src->n;
        }
        if (src->n)
                memcpy(dst->e, src->e, (size_t)src->n * sizeof(*dst->e));
        dst->n = src->n;
        return 0;
}

uint64_t dsm_vv_get(const struct dsm_vv *v, uint32_t site)
{
        int64_t i = vv_find(v, site);

        return i >= 0 ? v->e[i].counter : 0;
}

int dsm_vv_increment(struct dsm_vv *v, uint32_t site)
{
        int64_t i = vv_find(v, site);

        if (i < 0)
                return vv_insert(v, (uint32_t)(-i - 1), site, 1);
        if (v->e[i].counter == UINT64_MAX)
                return -EOVERFLOW;
        v->e[i].counter++;
        return 0;
}

int dsm_vv_set(struct dsm_vv *v, uint32_t site, uint64_t counter)
{
        int64_t i = vv_find(v, site);

        if (i >= 0) {
                if (counter) {
                        v->e[i].counter = counter;
                } else {
                        /* VV2: a counter of 0 is an absent entry. */
                        memmove(&v->e[i], &v->e[i + 1],
                                (size_t)(v->n - i - 1) * sizeof(v->e[0]));
                        v->n--;
                }
                return 0;
        }
        if (!counter)
                return 0;
        return vv_insert(v, (uint32_t)(-i - 1), site, counter);
}

enum dsm_vv_order dsm_vv_compare(const struct dsm_vv *a, const struct dsm_vv *b)
{
        bool a_more = false, b_more = false;
        uint32_t i = 0, j = 0;

        while (i < a->n || j < b->n) {
                uint64_t ca, cb;

                if (j >= b->n || (i < a->n && a->e[i].site < b->e[j].site)) {
                        ca = a->e[i++].counter;
                        cb = 0;
                } else if (i >= a->n || b->e[j].site < a->e[i].site) {
                        ca = 0;
                        cb = b->e[j++].counter;
                } else {
                        ca = a->e[i++].counter;
                        cb = b->e[j++].counter;
                }
                if (ca > cb)
                        a_more = true;
                else if (cb > ca)
                        b_more = true;
                if (a_more && b_more)
                        return DSM_VV_CONCURRENT;
        }
        if (a_more)
                return DSM_VV_DOMINATES;
        if (b_more)
                return DSM_VV_DOMINATED;
        return DSM_VV_EQUAL;
}

int dsm_vv_merge(struct dsm_vv *dst, const struct dsm_vv *src)
{
        uint32_t i = 0, j = 0, u = 0;
        int64_t k;
        int r;

        if (dst == src)
                return 0;
        /* Size of the union of the two site sets. */
        while (i < dst->n || j < src->n) {
                if (j >= src->n || (i < dst->n && dst->e[i].site < src->e[j].site))
                        i++;
                else if (i >= dst->n || src->e[j].site < dst->e[i].site)
                        j++;
                else
                        i++, j++;
                u++;
        }
        if (u > DSM_VV_MAX_SITES)
                return -E2BIG;
        r = vv_reserve(dst, u);
        if (r < 0)
                return r;

        /* Merge from the back, in place: slot k is never ahead of i. */
        i = dst->n;
        j = src->n;
        k = (int64_t)u - 1;
        while (j > 0) {
                const struct dsm_vv_entry *s = &src->e[j - 1];

                if (i > 0 && dst->e[i - 1].site > s->site) {
                        dst->e[k--] = dst->e[--i];
                } else if (i > 0 && dst->e[i - 1].site == s->site) {
                        struct dsm_vv_entry d = dst->e[--i];

                        if (s->counter > d.counter)
                                d.counter = s->counter;
                        dst->e[k--] = d;
                        j--;
                } else {
                        dst->e[k--] = *s;
                        j--;
                }
        }
        assert(k == (int64_t)i - 1);    /* the rest of dst is in place */
        dst->n = u;
        return 0;
}

size_t dsm_vv_encoded_size(const struct dsm_vv *v)
{
        size_t size = cm_varint_size(v->n);
        uint32_t prev = 0;

        for (uint32_t i = 0; i < v->n; i++) {
                size += cm_varint_size(v->e[i].site - prev);
                size += cm_varint_size(v->e[i].counter);
                prev = v->e[i].site;
        }
        return size;
}

ssize_t dsm_vv_encode(const struct dsm_vv *v, void *buf, size_t cap)
{
        size_t need = dsm_vv_encoded_size(v);
        uint8_t *p = buf;
        uint32_t prev = 0;

        if (need > cap)
                return -ENOBUFS;
        p += cm_varint_put(p, v->n);
        for (uint32_t i = 0; i < v->n; i++) {
                assert(i == 0 || v->e[i].site > prev);          /* VV1 */
                p += cm_varint_put(p, v->e[i].site - prev);
                p += cm_varint_put(p, v->e[i].counter);
                prev = v->e[i].site;
        }
        assert((size_t)(p - (uint8_t *)buf) == need);
        return (ssize_t)need;
}

ssize_t dsm_vv_decode(struct dsm_vv *v, const void *buf, size_t len)
{
        const uint8_t *p = buf;
        struct dsm_vv_entry *e = NULL;
        uint64_t count, site = 0;
        size_t pos = 0;
        int r;

        r = cm_varint_get(p, len, &pos, &count);
        if (r < 0)
                return r;
        if (count > DSM_VV_MAX_SITES)
                return -EBADMSG;
        /* Every entry takes at least two bytes: refuse before allocating. */
        if (count > (len - pos) / 2)
                return -EBADMSG;
        if (count) {
                e = malloc((size_t)count * sizeof(*e));
                if (!e)
                        return -ENOMEM;
        }
        for (uint64_t i = 0; i < count; i++) {
                uint64_t delta, counter;

                r = cm_varint_get(p, len, &pos, &delta);
                if (r < 0)
                        goto fail;
                r = cm_varint_get(p, len, &pos, &counter);
                if (r < 0)
                        goto fail;
                r = -EBADMSG;
                if (i > 0 && delta == 0)
                        goto fail;      /* VV1: duplicate or unsorted */
                if (delta > UINT32_MAX || site + delta > UINT32_MAX)
                        goto fail;
                if (counter == 0)
                        goto fail;      /* VV2 */
                site += delta;
                e[i].site = (uint32_t)site;
                e[i].counter = counter;
        }
        free(v->e);
        v->e = e;
        v->n = (uint32_t)count;
        v->cap = (uint32_t)count;
        return (ssize_t)pos;

fail:
        free(e);
        return r;
}
