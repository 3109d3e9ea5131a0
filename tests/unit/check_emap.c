/*
 * check_emap.c -- the extent map behind the page index, against a model
 * that keeps one entry per page.
 */
#include <check.h>
#include <stdlib.h>

#include "dsm_int.h"
#include "testutil.h"

#define NOBJ 4
#define NPAGE 3000

struct model {
        uint64_t loc[NOBJ][NPAGE];      /* 0 = absent */
        uint64_t seq[NOBJ][NPAGE];
        int64_t live;                   /* pages, from the accounting hook */
};

static void account(void *ctx, const struct dsm__ext *e, uint64_t loc, int64_t pages)
{
        struct model *m = ctx;

        (void)e;
        (void)loc;
        m->live += pages;
}

static void check_against(struct dsm__emap *m, struct model *md)
{
        int64_t present = 0;
        uint64_t lastobj = 0, lastend = 0;
        bool first = true;

        for (uint64_t o = 0; o < NOBJ; o++)
                for (uint64_t p = 0; p < NPAGE; p++) {
                        const struct dsm__ext *e = dsm__emap_find(m, o, p);

                        if (!md->loc[o][p]) {
                                ck_assert_msg(e == NULL, "obj %lu page %lu should be absent", o, p);
                                continue;
                        }
                        present++;
                        ck_assert_msg(e != NULL, "obj %lu page %lu missing", o, p);
                        ck_assert_uint_eq(e->loc + (p - e->page) * DSM_PAGE_SIZE, md->loc[o][p]);
                        ck_assert_uint_eq(e->seq, md->seq[o][p]);
                }
        ck_assert_int_eq(md->live, present);
        /* In order and without overlap [I1]. */
        for (struct dsm__pos p = dsm__emap_first(m); dsm__emap_get(m, p); p = dsm__emap_advance(m, p)) {
                const struct dsm__ext *e = dsm__emap_get(m, p);

                ck_assert(e->npages > 0);
                if (!first && e->obj == lastobj)
                        ck_assert_uint_ge(e->page, lastend);
                if (!first)
                        ck_assert_uint_ge(e->obj, lastobj);
                first = false;
                lastobj = e->obj;
                lastend = e->page + e->npages;
        }
}

START_TEST(test_random_against_model)
{
        uint64_t seed = tu_seed("emap"), st = seed;
        struct model *md = calloc(1, sizeof(*md));
        struct dsm__emap m;
        uint64_t nextloc = 1;

        dsm__emap_init(&m, account, md);
        for (int step = 0; step < 20000; step++) {
                uint64_t o = tu_rand(&st) % NOBJ, p = tu_rand(&st) % NPAGE;
                uint64_t n = 1 + tu_rand(&st) % (tu_rand(&st) % 4 == 0 ? 300 : 8);
                int op = (int)(tu_rand(&st) % 10);

                if (p + n > NPAGE)
                        n = NPAGE - p;
                if (op < 7) {
                        struct dsm__ext e = { .obj = o, .page = p, .npages = (uint32_t)n,
                                              .loc = nextloc * DSM_PAGE_SIZE * 1024, .seq = (uint64_t)step + 1 };

                        ck_assert_int_eq(dsm__emap_insert(&m, &e), 0);
                        for (uint64_t i = 0; i < n; i++) {
                                md->loc[o][p + i] = e.loc + i * DSM_PAGE_SIZE;
                                md->seq[o][p + i] = e.seq;
                        }
                        nextloc++;
                } else if (op < 9) {
                        ck_assert_int_eq(dsm__emap_remove(&m, o, p, n), 0);
                        for (uint64_t i = 0; i < n; i++)
                                md->loc[o][p + i] = 0;
                } else {
                        ck_assert_int_eq(dsm__emap_remove(&m, o, p, DSM_TO_END), 0);
                        for (uint64_t i = p; i < NPAGE; i++)
                                md->loc[o][i] = 0;
                }
                if (step % 2000 == 0)
                        check_against(&m, md);
        }
        check_against(&m, md);
        dsm__emap_clear(&m, true);
        ck_assert_int_eq(md->live, 0);
        free(md);
}
END_TEST

START_TEST(test_next_and_boundaries)
{
        struct dsm__emap m;
        struct dsm__ext e;

        dsm__emap_init(&m, NULL, NULL);
        ck_assert(!dsm__emap_next(&m, 1, 0, &e));
        ck_assert_ptr_null(dsm__emap_find(&m, 1, 0));
        ck_assert_int_eq(dsm__emap_insert(&m, &(struct dsm__ext){ .obj = 1, .page = 10, .npages = 5, .loc = 4096 }), 0);
        ck_assert_int_eq(dsm__emap_insert(&m, &(struct dsm__ext){ .obj = 1, .page = UINT64_MAX - 3, .npages = 3, .loc = 8192 }), 0);
        ck_assert_int_eq(dsm__emap_insert(&m, &(struct dsm__ext){ .obj = 0, .page = 0, .npages = 1, .loc = 1 << 20 }), 0);
        ck_assert(dsm__emap_next(&m, 1, 0, &e));
        ck_assert_uint_eq(e.page, 10);
        ck_assert(dsm__emap_next(&m, 1, 12, &e));
        ck_assert_uint_eq(e.page, 10);
        ck_assert(dsm__emap_next(&m, 1, 15, &e));
        ck_assert_uint_eq(e.page, UINT64_MAX - 3);
        ck_assert(!dsm__emap_next(&m, 2, 0, &e));
        ck_assert_ptr_nonnull(dsm__emap_find(&m, 1, UINT64_MAX - 1));
        /* Split in the middle, then free to the end. */
        ck_assert_int_eq(dsm__emap_remove(&m, 1, 12, 1), 0);
        ck_assert_ptr_nonnull(dsm__emap_find(&m, 1, 11));
        ck_assert_ptr_null(dsm__emap_find(&m, 1, 12));
        ck_assert_uint_eq(dsm__emap_find(&m, 1, 13)->loc, 4096 + 3 * DSM_PAGE_SIZE);
        ck_assert_int_eq(dsm__emap_remove(&m, 1, 11, DSM_TO_END), 0);
        ck_assert_ptr_nonnull(dsm__emap_find(&m, 1, 10));
        ck_assert_ptr_null(dsm__emap_find(&m, 1, 11));
        ck_assert_ptr_null(dsm__emap_find(&m, 1, UINT64_MAX - 1));
        ck_assert_ptr_nonnull(dsm__emap_find(&m, 0, 0));
        ck_assert_uint_eq(m.count, 2);
        dsm__emap_clear(&m, false);
}
END_TEST

START_TEST(test_sorted_load_is_dense)
{
        struct dsm__emap m;

        dsm__emap_init(&m, NULL, NULL);
        for (uint64_t i = 0; i < 100000; i++)
                ck_assert_int_eq(dsm__emap_insert(&m, &(struct dsm__ext){ .obj = i / 1000, .page = (i % 1000) * 2,
                                                                           .npages = 1, .loc = i }), 0);
        ck_assert_uint_eq(m.count, 100000);
        /* Appending in key order fills leaves completely. */
        ck_assert_uint_le(m.nleaves, 100000 / 128 + 2);
        dsm__emap_clear(&m, false);
}
END_TEST

START_TEST(test_varint_reader)
{
        struct dsm__buf b = { 0 };
        struct dsm__rd r;
        uint8_t over[11];

        dsm__buf_varint(&b, 0);
        dsm__buf_varint(&b, 127);
        dsm__buf_varint(&b, 128);
        dsm__buf_varint(&b, UINT64_MAX);
        dsm__buf_u32(&b, 0xdeadbeef);
        r = (struct dsm__rd){ b.p, b.len, 0, false };
        ck_assert_uint_eq(dsm__rd_varint(&r), 0);
        ck_assert_uint_eq(dsm__rd_varint(&r), 127);
        ck_assert_uint_eq(dsm__rd_varint(&r), 128);
        ck_assert_uint_eq(dsm__rd_varint(&r), UINT64_MAX);
        ck_assert_uint_eq(dsm__rd_u32(&r), 0xdeadbeef);
        ck_assert(!r.err);
        dsm__rd_varint(&r);
        ck_assert(r.err);               /* truncated */
        memset(over, 0xff, sizeof(over));
        r = (struct dsm__rd){ over, sizeof(over), 0, false };
        dsm__rd_varint(&r);
        ck_assert(r.err);               /* longer than 64 bits */
        dsm__buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("emap");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_random_against_model);
        tcase_add_test(tc, test_next_and_boundaries);
        tcase_add_test(tc, test_sorted_load_is_dense);
        tcase_add_test(tc, test_varint_reader);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
