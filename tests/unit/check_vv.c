/*
 * check_vv.c -- unit tests of the version vectors (dsmcore/dsm_vv.c):
 * get/set/increment and their limits, copy, compare in all four outcomes,
 * merge, the encoding (known bytes, round trips of random vectors, buffer
 * sizes) and every kind of malformed input the decoder must refuse.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.h"
#include "testutil.h"

#define ENC_MAX (10 + DSM_VV_MAX_SITES * 15)

/* Build a vector from (site, counter) pairs; ends at counter 0. */
static void vv_of(struct dsm_vv *v, const uint64_t *pairs)
{
        dsm_vv_init(v);
        for (size_t i = 0; pairs[2 * i + 1]; i++)
                ck_assert_int_eq(dsm_vv_set(v, (uint32_t)pairs[2 * i], pairs[2 * i + 1]), 0);
}

/* The structural invariants: sorted strictly, no zero counters, in bounds. */
static void vv_check_invariants(const struct dsm_vv *v)
{
        ck_assert_uint_le(v->n, v->cap);
        ck_assert_uint_le(v->n, DSM_VV_MAX_SITES);
        for (uint32_t i = 0; i < v->n; i++) {
                ck_assert_uint_ne(v->e[i].counter, 0);
                if (i)
                        ck_assert_uint_gt(v->e[i].site, v->e[i - 1].site);
        }
}

static void vv_assert_same(const struct dsm_vv *a, const struct dsm_vv *b)
{
        ck_assert_uint_eq(a->n, b->n);
        for (uint32_t i = 0; i < a->n; i++) {
                ck_assert_uint_eq(a->e[i].site, b->e[i].site);
                ck_assert_uint_eq(a->e[i].counter, b->e[i].counter);
        }
}

/* A random vector: up to maxn entries over sites [0, site_range). */
static void vv_random(struct dsm_vv *v, uint64_t *rng, uint32_t maxn, uint64_t site_range)
{
        uint32_t n = (uint32_t)(tu_rand(rng) % (maxn + 1));

        dsm_vv_init(v);
        for (uint32_t i = 0; i < n; i++) {
                uint32_t site = (uint32_t)(tu_rand(rng) % site_range);
                uint64_t c = tu_rand(rng);

                /* Counters of every magnitude, so varints of every length. */
                c >>= tu_rand(rng) % 64;
                if (!c)
                        c = 1;
                ck_assert_int_eq(dsm_vv_set(v, site, c), 0);
        }
        vv_check_invariants(v);
}

/* ---- basic ------------------------------------------------------------ */

START_TEST(test_init_get_free)
{
        struct dsm_vv v;

        dsm_vv_init(&v);
        ck_assert_uint_eq(v.n, 0);
        ck_assert_ptr_null(v.e);
        ck_assert_uint_eq(dsm_vv_get(&v, 0), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, UINT32_MAX), 0);
        ck_assert_int_eq(dsm_vv_set(&v, 7, 3), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 7), 3);
        dsm_vv_free(&v);
        ck_assert_uint_eq(v.n, 0);
        ck_assert_ptr_null(v.e);
        dsm_vv_free(&v);        /* twice is harmless */
        dsm_vv_free(NULL);
}
END_TEST

START_TEST(test_set)
{
        struct dsm_vv v;

        dsm_vv_init(&v);
        ck_assert_int_eq(dsm_vv_set(&v, 5, 7), 0);
        ck_assert_int_eq(dsm_vv_set(&v, 2, 3), 0);
        ck_assert_int_eq(dsm_vv_set(&v, 9, 1), 0);
        ck_assert_int_eq(dsm_vv_set(&v, UINT32_MAX, UINT64_MAX), 0);
        ck_assert_int_eq(dsm_vv_set(&v, 0, 4), 0);
        vv_check_invariants(&v);
        ck_assert_uint_eq(v.n, 5);
        ck_assert_uint_eq(v.e[0].site, 0);
        ck_assert_uint_eq(v.e[1].site, 2);
        ck_assert_uint_eq(v.e[2].site, 5);
        ck_assert_uint_eq(v.e[3].site, 9);
        ck_assert_uint_eq(v.e[4].site, UINT32_MAX);
        ck_assert_uint_eq(dsm_vv_get(&v, 5), 7);
        ck_assert_uint_eq(dsm_vv_get(&v, UINT32_MAX), UINT64_MAX);
        ck_assert_uint_eq(dsm_vv_get(&v, 3), 0);

        /* Update in place, also downwards (set is not a max). */
        ck_assert_int_eq(dsm_vv_set(&v, 5, 100), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 5), 100);
        ck_assert_int_eq(dsm_vv_set(&v, 5, 1), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 5), 1);
        ck_assert_uint_eq(v.n, 5);

        /* 0 removes; removing an absent site is a no-op. */
        ck_assert_int_eq(dsm_vv_set(&v, 5, 0), 0);
        ck_assert_uint_eq(v.n, 4);
        ck_assert_uint_eq(dsm_vv_get(&v, 5), 0);
        ck_assert_int_eq(dsm_vv_set(&v, 5, 0), 0);
        ck_assert_int_eq(dsm_vv_set(&v, 1234, 0), 0);
        ck_assert_uint_eq(v.n, 4);
        ck_assert_int_eq(dsm_vv_set(&v, 0, 0), 0);
        ck_assert_int_eq(dsm_vv_set(&v, UINT32_MAX, 0), 0);
        ck_assert_uint_eq(v.n, 2);
        ck_assert_uint_eq(v.e[0].site, 2);
        ck_assert_uint_eq(v.e[1].site, 9);
        vv_check_invariants(&v);
        dsm_vv_free(&v);
}
END_TEST

START_TEST(test_increment)
{
        struct dsm_vv v;

        dsm_vv_init(&v);
        ck_assert_int_eq(dsm_vv_increment(&v, 10), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 10), 1);
        ck_assert_int_eq(dsm_vv_increment(&v, 10), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 10), 2);
        ck_assert_int_eq(dsm_vv_increment(&v, 3), 0);
        ck_assert_int_eq(dsm_vv_increment(&v, 20), 0);
        ck_assert_uint_eq(v.n, 3);
        ck_assert_uint_eq(v.e[0].site, 3);
        ck_assert_uint_eq(v.e[2].site, 20);
        vv_check_invariants(&v);

        ck_assert_int_eq(dsm_vv_set(&v, 3, UINT64_MAX - 1), 0);
        ck_assert_int_eq(dsm_vv_increment(&v, 3), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 3), UINT64_MAX);
        ck_assert_int_eq(dsm_vv_increment(&v, 3), -EOVERFLOW);
        ck_assert_uint_eq(dsm_vv_get(&v, 3), UINT64_MAX);
        ck_assert_uint_eq(v.n, 3);
        dsm_vv_free(&v);
}
END_TEST

START_TEST(test_max_sites)
{
        struct dsm_vv v;

        dsm_vv_init(&v);
        for (uint32_t i = 0; i < DSM_VV_MAX_SITES; i++)
                ck_assert_int_eq(dsm_vv_set(&v, i * 2, i + 1), 0);
        ck_assert_uint_eq(v.n, DSM_VV_MAX_SITES);
        vv_check_invariants(&v);

        /* A new site is refused, by both set and increment; v unchanged. */
        ck_assert_int_eq(dsm_vv_set(&v, 1, 1), -E2BIG);
        ck_assert_int_eq(dsm_vv_increment(&v, 3), -E2BIG);
        ck_assert_int_eq(dsm_vv_increment(&v, UINT32_MAX), -E2BIG);
        ck_assert_uint_eq(v.n, DSM_VV_MAX_SITES);
        ck_assert_uint_eq(dsm_vv_get(&v, 1), 0);

        /* Existing sites can still change. */
        ck_assert_int_eq(dsm_vv_increment(&v, 0), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 0), 2);
        ck_assert_int_eq(dsm_vv_set(&v, 2, 99), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 2), 99);

        /* Removing one makes room for one. */
        ck_assert_int_eq(dsm_vv_set(&v, 4, 0), 0);
        ck_assert_int_eq(dsm_vv_increment(&v, 1), 0);
        ck_assert_uint_eq(dsm_vv_get(&v, 1), 1);
        ck_assert_int_eq(dsm_vv_set(&v, 5, 1), -E2BIG);
        vv_check_invariants(&v);
        dsm_vv_free(&v);
}
END_TEST

START_TEST(test_copy)
{
        static const uint64_t pa[] = { 1, 5, 4, 2, 900, 7, 0, 0 };
        static const uint64_t pb[] = { 3, 3, 0, 0 };
        struct dsm_vv a, b, c;

        vv_of(&a, pa);
        dsm_vv_init(&c);

        /* Into an empty vector, then independent of the source. */
        ck_assert_int_eq(dsm_vv_copy(&c, &a), 0);
        vv_assert_same(&c, &a);
        ck_assert_ptr_ne(c.e, a.e);
        ck_assert_int_eq(dsm_vv_increment(&a, 1), 0);
        ck_assert_uint_eq(dsm_vv_get(&c, 1), 5);
        ck_assert_uint_eq(dsm_vv_get(&a, 1), 6);

        /* Over a vector with other contents (smaller and larger). */
        vv_of(&b, pb);
        ck_assert_int_eq(dsm_vv_copy(&b, &a), 0);
        vv_assert_same(&b, &a);
        ck_assert_uint_eq(dsm_vv_get(&b, 3), 0);
        ck_assert_int_eq(dsm_vv_set(&c, 3, 3), 0);
        ck_assert_int_eq(dsm_vv_copy(&c, &a), 0);
        vv_assert_same(&c, &a);

        /* Self-copy is a no-op; copying an empty vector empties. */
        ck_assert_int_eq(dsm_vv_copy(&a, &a), 0);
        vv_assert_same(&c, &a);
        dsm_vv_free(&b);
        ck_assert_int_eq(dsm_vv_copy(&c, &b), 0);
        ck_assert_uint_eq(c.n, 0);
        ck_assert_uint_eq(dsm_vv_get(&c, 1), 0);
        dsm_vv_free(&a);
        dsm_vv_free(&c);
}
END_TEST

/* ---- order: compare and merge ------------------------------------------ */

START_TEST(test_compare_outcomes)
{
        static const uint64_t p_a[] = { 1, 2, 2, 3, 0, 0 };
        static const uint64_t p_more[] = { 1, 2, 2, 4, 0, 0 };          /* bigger counter */
        static const uint64_t p_extra[] = { 1, 2, 2, 3, 7, 1, 0, 0 };   /* extra site */
        static const uint64_t p_conc1[] = { 1, 3, 2, 3, 0, 0 };         /* bigger at 1 */
        static const uint64_t p_conc2[] = { 1, 2, 2, 3, 9, 1, 0, 0 };   /* site 9 only */
        struct dsm_vv e1, e2, a, a2, more, extra, c1, c2;

        dsm_vv_init(&e1);
        dsm_vv_init(&e2);
        vv_of(&a, p_a);
        vv_of(&a2, p_a);
        vv_of(&more, p_more);
        vv_of(&extra, p_extra);
        vv_of(&c1, p_conc1);
        vv_of(&c2, p_conc2);

        ck_assert_int_eq(dsm_vv_compare(&e1, &e2), DSM_VV_EQUAL);
        ck_assert_int_eq(dsm_vv_compare(&a, &a), DSM_VV_EQUAL);
        ck_assert_int_eq(dsm_vv_compare(&a, &a2), DSM_VV_EQUAL);

        ck_assert_int_eq(dsm_vv_compare(&a, &e1), DSM_VV_DOMINATES);
        ck_assert_int_eq(dsm_vv_compare(&e1, &a), DSM_VV_DOMINATED);
        ck_assert_int_eq(dsm_vv_compare(&more, &a), DSM_VV_DOMINATES);
        ck_assert_int_eq(dsm_vv_compare(&a, &more), DSM_VV_DOMINATED);
        ck_assert_int_eq(dsm_vv_compare(&extra, &a), DSM_VV_DOMINATES);
        ck_assert_int_eq(dsm_vv_compare(&a, &extra), DSM_VV_DOMINATED);

        ck_assert_int_eq(dsm_vv_compare(&c1, &c2), DSM_VV_CONCURRENT);
        ck_assert_int_eq(dsm_vv_compare(&c2, &c1), DSM_VV_CONCURRENT);
        ck_assert_int_eq(dsm_vv_compare(&more, &extra), DSM_VV_CONCURRENT);
        ck_assert_int_eq(dsm_vv_compare(&extra, &more), DSM_VV_CONCURRENT);

        /* Disjoint site sets are concurrent. */
        dsm_vv_set(&e1, 100, 1);
        dsm_vv_set(&e2, 200, 1);
        ck_assert_int_eq(dsm_vv_compare(&e1, &e2), DSM_VV_CONCURRENT);

        dsm_vv_free(&e1);
        dsm_vv_free(&e2);
        dsm_vv_free(&a);
        dsm_vv_free(&a2);
        dsm_vv_free(&more);
        dsm_vv_free(&extra);
        dsm_vv_free(&c1);
        dsm_vv_free(&c2);
}
END_TEST

START_TEST(test_merge)
{
        static const uint64_t pa[] = { 1, 5, 3, 1, 8, 2, 0, 0 };
        static const uint64_t pb[] = { 0, 9, 3, 4, 8, 1, 10, 6, 0, 0 };
        struct dsm_vv a, b, a0, e;

        vv_of(&a, pa);
        vv_of(&a0, pa);
        vv_of(&b, pb);
        dsm_vv_init(&e);

        ck_assert_int_eq(dsm_vv_merge(&a, &b), 0);
        vv_check_invariants(&a);
        ck_assert_uint_eq(a.n, 5);
        ck_assert_uint_eq(dsm_vv_get(&a, 0), 9);
        ck_assert_uint_eq(dsm_vv_get(&a, 1), 5);
        ck_assert_uint_eq(dsm_vv_get(&a, 3), 4);
        ck_assert_uint_eq(dsm_vv_get(&a, 8), 2);
        ck_assert_uint_eq(dsm_vv_get(&a, 10), 6);
        ck_assert_int_eq(dsm_vv_compare(&a, &a0), DSM_VV_DOMINATES);
        ck_assert_int_eq(dsm_vv_compare(&a, &b), DSM_VV_DOMINATES);

        /* Merging what is already included changes nothing. */
        ck_assert_int_eq(dsm_vv_copy(&a0, &a), 0);
        ck_assert_int_eq(dsm_vv_merge(&a, &b), 0);
        vv_assert_same(&a, &a0);
        ck_assert_int_eq(dsm_vv_merge(&a, &e), 0);
        vv_assert_same(&a, &a0);
        ck_assert_int_eq(dsm_vv_merge(&a, &a), 0);
        vv_assert_same(&a, &a0);

        /* Into an empty vector: a copy. */
        ck_assert_int_eq(dsm_vv_merge(&e, &b), 0);
        vv_assert_same(&e, &b);

        dsm_vv_free(&a);
        dsm_vv_free(&a0);
        dsm_vv_free(&b);
        dsm_vv_free(&e);
}
END_TEST

START_TEST(test_merge_too_many)
{
        struct dsm_vv a, b, a0;

        dsm_vv_init(&a);
        dsm_vv_init(&b);
        for (uint32_t i = 0; i < DSM_VV_MAX_SITES; i++) {
                ck_assert_int_eq(dsm_vv_set(&a, 2 * i, 1), 0);
                ck_assert_int_eq(dsm_vv_set(&b, 2 * i, 2), 0);
        }
        /* Same site set: fits, and takes the maxima. */
        ck_assert_int_eq(dsm_vv_merge(&a, &b), 0);
        ck_assert_uint_eq(a.n, DSM_VV_MAX_SITES);
        ck_assert_int_eq(dsm_vv_compare(&a, &b), DSM_VV_EQUAL);

        /* One site more in the union: refused, dst unchanged. */
        dsm_vv_init(&a0);
        ck_assert_int_eq(dsm_vv_set(&b, 2, 0), 0);
        ck_assert_int_eq(dsm_vv_set(&b, 1, 5), 0);
        ck_assert_int_eq(dsm_vv_set(&a, 0, 7), 0);
        ck_assert_int_eq(dsm_vv_copy(&a0, &a), 0);
        ck_assert_int_eq(dsm_vv_merge(&a, &b), -E2BIG);
        vv_assert_same(&a, &a0);
        dsm_vv_free(&a);
        dsm_vv_free(&b);
        dsm_vv_free(&a0);
}
END_TEST

/* compare and merge against a per-site reference on random vectors. */
START_TEST(test_order_random)
{
        uint64_t rng = tu_seed("vv order");

        for (int iter = 0; iter < 2000; iter++) {
                struct dsm_vv a, b, m;
                bool a_more = false, b_more = false;
                enum dsm_vv_order want;
                uint64_t range = 1 + tu_rand(&rng) % 12;

                vv_random(&a, &rng, 8, range);
                vv_random(&b, &rng, 8, range);
                /* Small counters so that equal ones are frequent. */
                for (uint32_t i = 0; i < a.n; i++)
                        a.e[i].counter = 1 + a.e[i].counter % 3;
                for (uint32_t i = 0; i < b.n; i++)
                        b.e[i].counter = 1 + b.e[i].counter % 3;
                if (tu_rand(&rng) % 4 == 0)
                        ck_assert_int_eq(dsm_vv_copy(&b, &a), 0);

                for (uint32_t s = 0; s < range; s++) {
                        uint64_t ca = dsm_vv_get(&a, s), cb = dsm_vv_get(&b, s);

                        a_more |= ca > cb;
                        b_more |= cb > ca;
                }
                want = a_more ? (b_more ? DSM_VV_CONCURRENT : DSM_VV_DOMINATES)
                              : (b_more ? DSM_VV_DOMINATED : DSM_VV_EQUAL);
                ck_assert_int_eq(dsm_vv_compare(&a, &b), want);
                /* The mirror image. */
                ck_assert_int_eq(dsm_vv_compare(&b, &a),
                                 want == DSM_VV_DOMINATES ? DSM_VV_DOMINATED :
                                 want == DSM_VV_DOMINATED ? DSM_VV_DOMINATES : want);

                dsm_vv_init(&m);
                ck_assert_int_eq(dsm_vv_copy(&m, &a), 0);
                ck_assert_int_eq(dsm_vv_merge(&m, &b), 0);
                vv_check_invariants(&m);
                for (uint32_t s = 0; s < range; s++) {
                        uint64_t ca = dsm_vv_get(&a, s), cb = dsm_vv_get(&b, s);

                        ck_assert_uint_eq(dsm_vv_get(&m, s), ca > cb ? ca : cb);
                }
                ck_assert_int_ne(dsm_vv_compare(&m, &a), DSM_VV_DOMINATED);
                ck_assert_int_ne(dsm_vv_compare(&m, &a), DSM_VV_CONCURRENT);
                ck_assert_int_ne(dsm_vv_compare(&m, &b), DSM_VV_DOMINATED);
                ck_assert_int_ne(dsm_vv_compare(&m, &b), DSM_VV_CONCURRENT);
                dsm_vv_free(&a);
                dsm_vv_free(&b);
                dsm_vv_free(&m);
        }
}
END_TEST

/* ---- encoding ---------------------------------------------------------- */

static void check_encoding(const struct dsm_vv *v, const uint8_t *want, size_t wlen)
{
        uint8_t buf[64];
        struct dsm_vv d;

        memset(buf, 0xee, sizeof(buf));
        ck_assert_uint_eq(dsm_vv_encoded_size(v), wlen);
        ck_assert_int_eq(dsm_vv_encode(v, buf, sizeof(buf)), (ssize_t)wlen);
        ck_assert_mem_eq(buf, want, wlen);
        ck_assert_uint_eq(buf[wlen], 0xee);     /* nothing past the end */

        dsm_vv_init(&d);
        ck_assert_int_eq(dsm_vv_decode(&d, want, wlen), (ssize_t)wlen);
        vv_assert_same(&d, v);
        dsm_vv_free(&d);
}

START_TEST(test_encode_known)
{
        static const uint8_t w_empty[] = { 0x00 };
        static const uint8_t w_two[] = { 0x02, 0x03, 0x01, 0x7f, 0xac, 0x02 };
        static const uint8_t w_two128[] = { 0x02, 0x03, 0x01, 0x80, 0x01, 0xac, 0x02 };
        static const uint8_t w_max[] = {
                0x02,
                0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                0xff, 0xff, 0xff, 0xff, 0x0f, 0x01,
        };
        struct dsm_vv v;

        dsm_vv_init(&v);
        check_encoding(&v, w_empty, sizeof(w_empty));

        /* site 3 = 1, site 130 = 300: delta 127 fits one byte. */
        dsm_vv_set(&v, 3, 1);
        dsm_vv_set(&v, 130, 300);
        check_encoding(&v, w_two, sizeof(w_two));
        dsm_vv_free(&v);

        /* site 131: delta 128 needs two bytes. */
        dsm_vv_set(&v, 3, 1);
        dsm_vv_set(&v, 131, 300);
        check_encoding(&v, w_two128, sizeof(w_two128));
        dsm_vv_free(&v);

        /* Extremes: site 0 with UINT64_MAX, site UINT32_MAX. */
        dsm_vv_set(&v, 0, UINT64_MAX);
        dsm_vv_set(&v, UINT32_MAX, 1);
        check_encoding(&v, w_max, sizeof(w_max));
        dsm_vv_free(&v);
}
END_TEST

START_TEST(test_encode_nobufs)
{
        uint64_t rng = tu_seed("vv nobufs");
        struct dsm_vv v;
        uint8_t *buf = malloc(ENC_MAX + 1);
        size_t need;

        ck_assert_ptr_nonnull(buf);
        vv_random(&v, &rng, 40, UINT32_MAX + 1ull);
        dsm_vv_set(&v, 77, UINT64_MAX);
        need = dsm_vv_encoded_size(&v);
        for (size_t cap = 0; cap < need; cap++) {
                memset(buf, 0xee, need + 1);
                ck_assert_int_eq(dsm_vv_encode(&v, buf, cap), -ENOBUFS);
                /* A refused encode writes nothing. */
                for (size_t i = 0; i <= need; i++)
                        ck_assert_uint_eq(buf[i], 0xee);
        }
        ck_assert_int_eq(dsm_vv_encode(&v, NULL, 0), -ENOBUFS);
        ck_assert_int_eq(dsm_vv_encode(&v, buf, need), (ssize_t)need);
        ck_assert_int_eq(dsm_vv_encode(&v, buf, ENC_MAX), (ssize_t)need);
        dsm_vv_free(&v);
        free(buf);
}
END_TEST

START_TEST(test_roundtrip_random)
{
        uint64_t rng = tu_seed("vv roundtrip");
        uint8_t *buf = malloc(ENC_MAX + 8);

        ck_assert_ptr_nonnull(buf);
        for (int iter = 0; iter < 500; iter++) {
                struct dsm_vv v, d;
                uint64_t range = iter % 2 ? UINT32_MAX + 1ull : 1 + tu_rand(&rng) % 1000;
                ssize_t len;

                vv_random(&v, &rng, iter % 50 == 0 ? 3000 : 60, range);
                len = dsm_vv_encode(&v, buf, ENC_MAX);
                ck_assert_int_eq(len, (ssize_t)dsm_vv_encoded_size(&v));

                /* Decode into a vector holding something else: replaced. */
                dsm_vv_init(&d);
                dsm_vv_set(&d, 12345, 6);
                dsm_vv_set(&d, 1, 1);
                /* Trailing bytes are not consumed. */
                buf[len] = 0x01;
                buf[len + 1] = 0x02;
                ck_assert_int_eq(dsm_vv_decode(&d, buf, (size_t)len + 2), len);
                vv_check_invariants(&d);
                vv_assert_same(&d, &v);
                ck_assert_int_eq(dsm_vv_compare(&d, &v), DSM_VV_EQUAL);
                dsm_vv_free(&v);
                dsm_vv_free(&d);
        }
        free(buf);
}
END_TEST

START_TEST(test_roundtrip_full)
{
        struct dsm_vv v, d;
        uint8_t *buf = malloc(ENC_MAX);
        ssize_t len;

        ck_assert_ptr_nonnull(buf);
        dsm_vv_init(&v);
        dsm_vv_init(&d);
        /* The largest vector: every delta and counter at its widest. */
        for (uint32_t i = 0; i < DSM_VV_MAX_SITES - 1; i++)
                ck_assert_int_eq(dsm_vv_set(&v, i * (UINT32_MAX / DSM_VV_MAX_SITES),
                                            UINT64_MAX - i), 0);
        ck_assert_int_eq(dsm_vv_set(&v, UINT32_MAX, 1), 0);
        ck_assert_uint_eq(v.n, DSM_VV_MAX_SITES);
        ck_assert_int_eq(dsm_vv_set(&v, UINT32_MAX - 1, 1), -E2BIG);
        len = dsm_vv_encode(&v, buf, ENC_MAX);
        ck_assert_int_gt(len, 0);
        ck_assert_int_eq(dsm_vv_decode(&d, buf, (size_t)len), len);
        vv_assert_same(&d, &v);
        dsm_vv_free(&v);
        dsm_vv_free(&d);
        free(buf);
}
END_TEST

/* ---- malformed input ---------------------------------------------------- */

/* Decoding bad must fail with -EBADMSG and leave v as it was. */
static void expect_badmsg(const uint8_t *bad, size_t len)
{
        struct dsm_vv v, v0;

        dsm_vv_init(&v);
        dsm_vv_init(&v0);
        dsm_vv_set(&v, 4, 44);
        dsm_vv_set(&v, 8, 88);
        dsm_vv_copy(&v0, &v);
        ck_assert_int_eq(dsm_vv_decode(&v, bad, len), -EBADMSG);
        vv_assert_same(&v, &v0);
        dsm_vv_free(&v);
        dsm_vv_free(&v0);
}

START_TEST(test_decode_truncated)
{
        uint64_t rng = tu_seed("vv truncated");
        uint8_t buf[4096];

        for (int iter = 0; iter < 50; iter++) {
                struct dsm_vv v;
                ssize_t len;

                vv_random(&v, &rng, 20, UINT32_MAX + 1ull);
                len = dsm_vv_encode(&v, buf, sizeof(buf));
                ck_assert_int_gt(len, 0);
                /* Every proper prefix is refused (the empty input too). */
                for (ssize_t cut = 0; cut < len; cut++)
                        expect_badmsg(buf, (size_t)cut);
                dsm_vv_free(&v);
        }
        expect_badmsg(NULL, 0);
}
END_TEST

START_TEST(test_decode_too_many)
{
        uint8_t *buf = malloc(4 + 2 * (DSM_VV_MAX_SITES + 1));
        uint8_t *p = buf;
        struct dsm_vv v;

        ck_assert_ptr_nonnull(buf);
        /* count 4097 (0x81 0x20), then 4097 valid entries: refused. */
        *p++ = 0x81;
        *p++ = 0x20;
        for (int i = 0; i <= DSM_VV_MAX_SITES; i++) {
                *p++ = 0x01;
                *p++ = 0x01;
        }
        expect_badmsg(buf, (size_t)(p - buf));
        /* A huge count with no entries behind it. */
        {
                static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };

                expect_badmsg(huge, sizeof(huge));
        }
        /* count 4096 with the same entries (first one absolute, site 1): fine. */
        buf[0] = 0x80;
        buf[1] = 0x20;
        dsm_vv_init(&v);
        ck_assert_int_eq(dsm_vv_decode(&v, buf, 2 + 2 * DSM_VV_MAX_SITES),
                         2 + 2 * DSM_VV_MAX_SITES);
        ck_assert_uint_eq(v.n, DSM_VV_MAX_SITES);
        ck_assert_uint_eq(v.e[DSM_VV_MAX_SITES - 1].site, DSM_VV_MAX_SITES);
        dsm_vv_free(&v);
        free(buf);
}
END_TEST

START_TEST(test_decode_bad_sites)
{
        /* A site delta of 0 after the first entry: a duplicate site. */
        static const uint8_t dup[] = { 0x02, 0x05, 0x01, 0x00, 0x01 };
        static const uint8_t dup3[] = { 0x03, 0x05, 0x01, 0x02, 0x01, 0x00, 0x07 };
        /* A site past UINT32_MAX, absolute or by the sum of deltas. */
        static const uint8_t big1[] = { 0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01 };
        static const uint8_t big2[] = { 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x01, 0x01 };
        /* A counter of 0 (never encoded: 0 means absent). */
        static const uint8_t zero[] = { 0x01, 0x05, 0x00 };
        /* The first delta may be 0: site 0. */
        static const uint8_t site0[] = { 0x02, 0x00, 0x01, 0x01, 0x02 };
        struct dsm_vv v;

        expect_badmsg(dup, sizeof(dup));
        expect_badmsg(dup3, sizeof(dup3));
        expect_badmsg(big1, sizeof(big1));
        expect_badmsg(big2, sizeof(big2));
        expect_badmsg(zero, sizeof(zero));

        dsm_vv_init(&v);
        ck_assert_int_eq(dsm_vv_decode(&v, site0, sizeof(site0)), sizeof(site0));
        ck_assert_uint_eq(v.n, 2);
        ck_assert_uint_eq(dsm_vv_get(&v, 0), 1);
        ck_assert_uint_eq(dsm_vv_get(&v, 1), 2);
        /* The largest site: UINT32_MAX exactly. */
        {
                static const uint8_t maxsite[] = { 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x03 };

                ck_assert_int_eq(dsm_vv_decode(&v, maxsite, sizeof(maxsite)), sizeof(maxsite));
                ck_assert_uint_eq(v.n, 1);
                ck_assert_uint_eq(dsm_vv_get(&v, UINT32_MAX), 3);
        }
        dsm_vv_free(&v);
}
END_TEST

START_TEST(test_decode_varint_overflow)
{
        /* 11-byte varints (count, delta, counter). */
        static const uint8_t long_count[] = {
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        };
        static const uint8_t long_delta[] = {
                0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
                0x01,
        };
        static const uint8_t long_counter[] = {
                0x01, 0x01, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                0x00,
        };
        /* 10 bytes but more than 64 bits: the last byte may only be 0 or 1. */
        static const uint8_t wide_counter[] = {
                0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        };
        static const uint8_t wide_count[] = {
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        };
        /* The widest legal counter: UINT64_MAX in 10 bytes. */
        static const uint8_t max_counter[] = {
                0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        };
        struct dsm_vv v;

        expect_badmsg(long_count, sizeof(long_count));
        expect_badmsg(long_delta, sizeof(long_delta));
        expect_badmsg(long_counter, sizeof(long_counter));
        expect_badmsg(wide_counter, sizeof(wide_counter));
        expect_badmsg(wide_count, sizeof(wide_count));
        /* A varint whose continuation runs off the end. */
        expect_badmsg((const uint8_t[]){ 0x01, 0x01, 0x80 }, 3);

        dsm_vv_init(&v);
        ck_assert_int_eq(dsm_vv_decode(&v, max_counter, sizeof(max_counter)),
                         sizeof(max_counter));
        ck_assert_uint_eq(dsm_vv_get(&v, 1), UINT64_MAX);
        dsm_vv_free(&v);
}
END_TEST

/* Random bytes: never a crash; a success yields a well-formed vector. */
START_TEST(test_decode_garbage)
{
        uint64_t rng = tu_seed("vv garbage");
        uint8_t buf[64];

        for (int iter = 0; iter < 20000; iter++) {
                size_t len = (size_t)(tu_rand(&rng) % sizeof(buf));
                struct dsm_vv v;
                ssize_t r;

                for (size_t i = 0; i < len; i++)
                        buf[i] = (uint8_t)tu_rand(&rng);
                /* Small counts so that some inputs decode. */
                if (len && iter % 2)
                        buf[0] &= 0x07;
                dsm_vv_init(&v);
                r = dsm_vv_decode(&v, buf, len);
                if (r < 0) {
                        ck_assert_int_eq(r, -EBADMSG);
                        ck_assert_uint_eq(v.n, 0);
                } else {
                        ck_assert_int_le(r, (ssize_t)len);
                        vv_check_invariants(&v);
                        ck_assert_uint_le(dsm_vv_encoded_size(&v), (size_t)r);
                }
                dsm_vv_free(&v);
        }
}
END_TEST

static Suite *vv_suite(void)
{
        Suite *s = suite_create("vv");
        TCase *tc;

        tc = tcase_create("basic");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_init_get_free);
        tcase_add_test(tc, test_set);
        tcase_add_test(tc, test_increment);
        tcase_add_test(tc, test_max_sites);
        tcase_add_test(tc, test_copy);
        suite_add_tcase(s, tc);

        tc = tcase_create("order");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_compare_outcomes);
        tcase_add_test(tc, test_merge);
        tcase_add_test(tc, test_merge_too_many);
        tcase_add_test(tc, test_order_random);
        suite_add_tcase(s, tc);

        tc = tcase_create("codec");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_encode_known);
        tcase_add_test(tc, test_encode_nobufs);
        tcase_add_test(tc, test_roundtrip_random);
        tcase_add_test(tc, test_roundtrip_full);
        suite_add_tcase(s, tc);

        tc = tcase_create("malformed");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_decode_truncated);
        tcase_add_test(tc, test_decode_too_many);
        tcase_add_test(tc, test_decode_bad_sites);
        tcase_add_test(tc, test_decode_varint_overflow);
        tcase_add_test(tc, test_decode_garbage);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(vv_suite());
}
