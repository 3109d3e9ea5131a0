/*
 * check_note.c -- commit notes (issue #10, docs/coherence.md): the wire
 * codec (proto/lp_note.h) and the storage site's queue that coalesces and
 * bounds them (storage/ss_note.h).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cm.h"
#include "cm_codec.h"
#include "dsm.h"
#include "lp_note.h"
#include "ss_note.h"
#include "testutil.h"


static uint8_t *encode(const struct lp_note *v, size_t n, size_t *ret_len)
{
        struct cm_wbuf w;

        cm_wbuf_init(&w);
        CHECK(lp_note_encode(&w, v, n) == 0);
        return cm_wbuf_take(&w, ret_len);
}

START_TEST(t_codec)
{
        struct lp_note_ext e1[] = { { 0, 4096 }, { 8192, 0 } };
        struct lp_note v[] = {
                { 1, 0x10000000002ull, 7, 0x8000000000000001ull, 0, e1, 2 },
                { 3, 5, 0, 0, LP_NOTE_GONE, NULL, 0 },
                { 0, 0, 0, 0, LP_NOTE_GROUP, NULL, 0 },
        };
        struct lp_note_batch b;
        size_t len;
        uint8_t *buf = encode(v, 3, &len);

        CHECK(lp_note_decode(buf, len, &b) == 0);
        CHECK_EQ(b.n, 3);
        CHECK_EQ(b.v[0].fg, 1);
        CHECK_EQ(b.v[0].ino, 0x10000000002ull);
        CHECK_EQ(b.v[0].version, 7);
        CHECK(b.v[0].client == 0x8000000000000001ull);
        CHECK_EQ(b.v[0].next, 2);
        CHECK_EQ(b.v[0].ext[0].len, 4096);
        CHECK_EQ(b.v[0].ext[1].off, 8192);
        CHECK_EQ(b.v[0].ext[1].len, 0);
        CHECK_EQ(b.v[1].flags, LP_NOTE_GONE);
        CHECK(b.v[1].ext == NULL);
        CHECK_EQ(b.v[2].flags, LP_NOTE_GROUP);
        lp_note_batch_free(&b);

        /* every cut of the input is malformed, never a crash */
        for (size_t cut = 0; cut < len; cut++)
                CHECK(lp_note_decode(buf, cut, &b) == -EBADMSG);
        /* an unknown flag, a bad header */
        {
                uint8_t *bad = encode(&v[2], 1, &len);

                bad[len - 2] = 0x40;    /* flags of the only note (then nextents 0) */
                CHECK(lp_note_decode(bad, len, &b) == -EBADMSG);
                bad[len - 2] = LP_NOTE_GROUP;
                CHECK(lp_note_decode(bad, len, &b) == 0);
                lp_note_batch_free(&b);
                bad[0] = 'X';
                CHECK(lp_note_decode(bad, len, &b) == -EBADMSG);
                free(bad);
        }
        free(buf);
        /* limits refused when encoding */
        {
                struct cm_wbuf w;
                struct lp_note big = { 1, 2, 0, 0, 0, e1, LP_NOTE_EXT_MAX + 1 };

                cm_wbuf_init(&w);
                CHECK(lp_note_encode(&w, &big, 1) == -EINVAL);
                cm_wbuf_free(&w);
        }
}
END_TEST

static struct lp_note_batch take(struct ss_note *q)
{
        struct lp_note_batch b;
        uint8_t *buf;
        size_t len;

        CHECK(ss_note_take(q, &buf, &len) == 0);
        CHECK(lp_note_decode(buf, len, &b) == 0);
        free(buf);
        return b;
}

/* An encoded vector of one counter at site 1. */
static size_t vv1(uint8_t *out, uint64_t counter)
{
        struct dsm_vv v;
        ssize_t n;

        dsm_vv_init(&v);
        CHECK(dsm_vv_set(&v, 1, counter) == 0);
        n = dsm_vv_encode(&v, out, 64);
        CHECK(n > 0);
        dsm_vv_free(&v);
        return (size_t)n;
}

START_TEST(t_coalesce)
{
        struct ss_note *q;
        uint8_t vv[64];
        struct ss_ct_extent x1 = { 0, 2 }, x2 = { 2, 1 }, x3 = { 10, DSM_TO_END };
        struct ss_ct_change c = { 5, false, vv, 0, &x1, 1 };
        struct lp_note_batch b;

        CHECK(ss_note_new(0, &q) == 0);
        c.vvlen = vv1(vv, 3);
        ss_note_add(q, 1, 0xA, &c, 1);
        /* the same inode by the same client: one note, extents joined */
        c.vvlen = vv1(vv, 4);
        c.ext = &x2;
        ss_note_add(q, 1, 0xA, &c, 1);
        c.ext = &x3;
        ss_note_add(q, 1, 0xA, &c, 1);
        /* by another client: a note of its own */
        c.ext = NULL;
        c.next = 0;
        ss_note_add(q, 1, 0xB, &c, 1);
        CHECK_EQ(ss_note_count(q), 2);
        b = take(q);
        CHECK_EQ(ss_note_count(q), 0);
        CHECK_EQ(b.n, 2);
        CHECK_EQ(b.v[0].client, 0xA);
        CHECK_EQ(b.v[0].ino, 5);
        CHECK_EQ(b.v[0].version, 4);
        CHECK_EQ(b.v[0].next, 2);
        CHECK_EQ(b.v[0].ext[0].off, 0);
        CHECK_EQ(b.v[0].ext[0].len, 3 * DSM_PAGE_SIZE);        /* pages 0-1 and 2 */
        CHECK_EQ(b.v[0].ext[1].off, 10 * DSM_PAGE_SIZE);
        CHECK_EQ(b.v[0].ext[1].len, 0);                         /* to the end */
        CHECK_EQ(b.v[1].client, 0xB);
        CHECK_EQ(b.v[1].next, 0);
        lp_note_batch_free(&b);

        /* more extents than a note lists: "all data" */
        for (uint64_t p = 0; p < 2 * LP_NOTE_EXT_MAX; p++) {
                struct ss_ct_extent x = { 2 * p, 1 };
                struct ss_ct_change d = { 6, false, NULL, 0, &x, 1 };

                ss_note_add(q, 1, 0, &d, 1);
        }
        b = take(q);
        CHECK_EQ(b.n, 1);
        CHECK(b.v[0].flags & LP_NOTE_ALLDATA);
        CHECK_EQ(b.v[0].next, 0);
        lp_note_batch_free(&b);

        /* a deletion */
        c.gone = true;
        ss_note_add(q, 2, 0, &c, 1);
        b = take(q);
        CHECK(b.v[0].flags & LP_NOTE_GONE);
        lp_note_batch_free(&b);
        ss_note_free(q);
}
END_TEST

static bool has_group(const struct lp_note_batch *b, uint32_t fg)
{
        for (size_t i = 0; i < b->n; i++)
                if ((b->v[i].flags & LP_NOTE_GROUP) && b->v[i].fg == fg)
                        return true;
        return false;
}

START_TEST(t_bound)
{
        struct ss_note *q;
        struct lp_note_batch b;
        struct ss_ct_change c = { 0 };
        struct ss_note_stats st;

        CHECK(ss_note_new(8, &q) == 0);
        c.ino = 100;
        ss_note_add(q, 2, 0, &c, 1);
        for (uint64_t i = 0; i < 8; i++) {
                c.ino = i + 1;
                ss_note_add(q, 1, 0, &c, 1);
        }
        /* over the bound: one group note per group, nothing else */
        CHECK_EQ(ss_note_count(q), 2);
        c.ino = 50;
        ss_note_add(q, 1, 0, &c, 1);    /* covered by group 1's note */
        CHECK_EQ(ss_note_count(q), 2);
        ss_note_stats(q, &st);
        CHECK_EQ(st.overflows, 1);
        b = take(q);
        CHECK_EQ(b.n, 2);
        CHECK(has_group(&b, 1) && has_group(&b, 2));
        lp_note_batch_free(&b);

        /* a batch that could not be sent comes back as group notes */
        c.ino = 7;
        ss_note_add(q, 3, 0, &c, 1);
        b = take(q);
        CHECK_EQ(b.n, 1);
        lp_note_batch_free(&b);
        CHECK_EQ(ss_note_count(q), 0);
        ss_note_untake(q);
        b = take(q);
        CHECK_EQ(b.n, 1);
        CHECK(has_group(&b, 3));
        lp_note_batch_free(&b);

        /* every group: fg 0 covers everything until taken */
        ss_note_lost(q, 0);
        ss_note_add(q, 4, 0, &c, 1);
        b = take(q);
        CHECK_EQ(b.n, 1);
        CHECK(has_group(&b, 0));
        lp_note_batch_free(&b);
        ss_note_untake(q);
        CHECK_EQ(ss_note_count(q), 1);
        ss_note_free(q);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("note");
        struct {
                const char *name;
                const TTest *fn;
        } cases[] = {
                { "codec", t_codec },
                { "coalesce", t_coalesce },
                { "bound", t_bound },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                TCase *tc = tcase_create(cases[i].name);

                tcase_add_test(tc, cases[i].fn);
                tcase_set_timeout(tc, 60);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        cm_log_init("check_note", LOG_WARNING, CM_LOG_STDERR);
        return tu_run_suite(suite());
}
