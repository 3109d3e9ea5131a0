/*
 * check_store.c -- libdsm's store: transactions, visibility, conflicts,
 * streaming, recovery, checkpoints, the cleaner, damage and I/O faults.
 * Normal cases run on real files in a private directory; fault cases run
 * on the fault-injecting in-memory layer (dsm_faultio).
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsm.h"
#include "dsm_faultio.h"
#include "testutil.h"

static char dir[4096];

static void fill(uint8_t *buf, uint64_t obj, uint64_t page, uint32_t tag)
{
        for (uint32_t i = 0; i < DSM_PAGE_SIZE; i += 4) {
                uint32_t v = (uint32_t)(obj * 1000003u + page * 7919u + tag * 31u + i);
                memcpy(buf + i, &v, 4);
        }
}

static void setup_dir(void)
{
        snprintf(dir, sizeof(dir), "%s/store", tu_tmpdir());
}

static struct dsm_store *open_store(const struct dsm_options *o)
{
        struct dsm_store *s = NULL;

        ck_assert_int_eq(dsm_open(dir, o, &s), 0);
        return s;
}

static void put_page(struct dsm_store *s, uint64_t obj, uint64_t page, uint32_t tag)
{
        struct dsm_txn *t;
        uint8_t buf[DSM_PAGE_SIZE];

        fill(buf, obj, page, tag);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_write(t, obj, page, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
}

static void expect_page(struct dsm_store *s, uint64_t obj, uint64_t page, uint32_t tag)
{
        uint8_t want[DSM_PAGE_SIZE], got[DSM_PAGE_SIZE];

        fill(want, obj, page, tag);
        ck_assert_int_eq(dsm_read(s, obj, page, got), 1);
        ck_assert_msg(memcmp(want, got, DSM_PAGE_SIZE) == 0, "obj %lu page %lu differs", obj, page);
}

static void expect_hole(struct dsm_store *s, uint64_t obj, uint64_t page)
{
        uint8_t got[DSM_PAGE_SIZE], zero[DSM_PAGE_SIZE] = { 0 };

        memset(got, 0xaa, sizeof(got));
        ck_assert_int_eq(dsm_read(s, obj, page, got), 0);
        ck_assert(memcmp(got, zero, DSM_PAGE_SIZE) == 0);
}

/* ---- format / open ------------------------------------------------------- */

START_TEST(test_format_and_open_errors)
{
        struct dsm_store *s = NULL;
        struct dsm_options o = { .segment_size = 1000 };

        setup_dir();
        ck_assert_int_eq(dsm_open(dir, NULL, &s), -ENOENT);
        ck_assert_int_eq(dsm_format(dir, &o), -EINVAL);
        o.segment_size = DSM_SEGMENT_SIZE_MAX + DSM_PAGE_SIZE;
        ck_assert_int_eq(dsm_format(dir, &o), -EINVAL);
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        ck_assert_int_eq(dsm_format(dir, NULL), -EEXIST);
        s = open_store(NULL);
        expect_hole(s, 1, 0);
        dsm_close(s);
        dsm_close(NULL);
        dsm_txn_abort(NULL);
}
END_TEST

/* ---- transactions ------------------------------------------------------------ */

START_TEST(test_commit_read_reopen)
{
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_commit c;
        uint8_t buf[DSM_PAGE_SIZE];
        struct dsm_stats st;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        for (uint64_t p = 0; p < 10; p++) {
                fill(buf, 7, p, 1);
                ck_assert_int_eq(dsm_txn_write(t, 7, p, 0, buf, DSM_PAGE_SIZE), 0);
        }
        fill(buf, 9, 1000, 1);
        ck_assert_int_eq(dsm_txn_write(t, 9, 1000, 0, buf, DSM_PAGE_SIZE), 0);
        /* A transaction sees its own writes; nobody else does yet. */
        ck_assert_int_eq(dsm_txn_read(t, 7, 3, buf), 1);
        expect_hole(s, 7, 3);
        ck_assert_int_eq(dsm_txn_commit(t, "meta", 4, &c), 0);
        ck_assert_uint_eq(c.seq, 1);
        ck_assert_uint_eq(c.nchanges, 2);
        ck_assert_uint_eq(c.changes[0].obj, 7);
        ck_assert_uint_eq(c.changes[0].page, 0);
        ck_assert_uint_eq(c.changes[0].npages, 10);
        ck_assert_uint_eq(c.changes[1].obj, 9);
        ck_assert_uint_eq(c.changes[1].page, 1000);
        dsm_commit_release(&c);
        for (uint64_t p = 0; p < 10; p++)
                expect_page(s, 7, p, 1);
        expect_page(s, 9, 1000, 1);
        expect_hole(s, 9, 999);
        dsm_close(s);

        s = open_store(NULL);
        for (uint64_t p = 0; p < 10; p++)
                expect_page(s, 7, p, 1);
        expect_page(s, 9, 1000, 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.seq, 1);
        /* The next commit continues the sequence. */
        put_page(s, 1, 1, 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.seq, 2);
        dsm_close(s);
}
END_TEST

START_TEST(test_partial_writes_and_abort)
{
        struct dsm_store *s;
        struct dsm_txn *t;
        uint8_t buf[DSM_PAGE_SIZE], want[DSM_PAGE_SIZE];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        put_page(s, 1, 0, 5);
        /* A partial write keeps the rest of the old page. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_write(t, 1, 0, 100, "hello", 5), 0);
        ck_assert_int_eq(dsm_txn_write(t, 1, 1, 4000, "tail", 4), 0);
        ck_assert_int_eq(dsm_txn_write(t, 1, 0, 4090, "x", 7), -EINVAL);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        fill(want, 1, 0, 5);
        memcpy(want + 100, "hello", 5);
        ck_assert_int_eq(dsm_read(s, 1, 0, buf), 1);
        ck_assert(memcmp(buf, want, DSM_PAGE_SIZE) == 0);
        memset(want, 0, sizeof(want));
        memcpy(want + 4000, "tail", 4);
        ck_assert_int_eq(dsm_read(s, 1, 1, buf), 1);
        ck_assert(memcmp(buf, want, DSM_PAGE_SIZE) == 0);

        /* A partial write after the transaction's own free starts from a
         * hole, not from the old page. */
        put_page(s, 4, 0, 1);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_free(t, 4, 0, DSM_TO_END), 0);
        ck_assert_int_eq(dsm_txn_read(t, 4, 0, buf), 0);
        ck_assert_int_eq(dsm_txn_write(t, 4, 0, 8, "new", 3), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        memset(want, 0, sizeof(want));
        memcpy(want + 8, "new", 3);
        ck_assert_int_eq(dsm_read(s, 4, 0, buf), 1);
        ck_assert(memcmp(buf, want, DSM_PAGE_SIZE) == 0);

        /* Abort: nothing becomes visible, now or after reopen. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        fill(buf, 1, 0, 6);
        ck_assert_int_eq(dsm_txn_write(t, 1, 0, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_write(t, 1, 50, 0, buf, DSM_PAGE_SIZE), 0);
        dsm_txn_abort(t);
        expect_hole(s, 1, 50);
        dsm_close(s);
        s = open_store(NULL);
        expect_hole(s, 1, 50);
        ck_assert_int_eq(dsm_read(s, 1, 0, buf), 1);
        fill(want, 1, 0, 5);
        memcpy(want + 100, "hello", 5);
        ck_assert(memcmp(buf, want, DSM_PAGE_SIZE) == 0);
        dsm_close(s);
}
END_TEST

START_TEST(test_conflicts)
{
        struct dsm_store *s;
        struct dsm_txn *a, *b, *c;
        uint8_t buf[DSM_PAGE_SIZE];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        put_page(s, 1, 0, 1);
        put_page(s, 2, 0, 1);

        /* a reads page 0, b overwrites it and commits first: a loses. */
        ck_assert_int_eq(dsm_txn_begin(s, &a), 0);
        ck_assert_int_eq(dsm_txn_read(s ? a : NULL, 1, 0, buf), 1);
        ck_assert_int_eq(dsm_txn_begin(s, &b), 0);
        fill(buf, 1, 0, 2);
        ck_assert_int_eq(dsm_txn_write(b, 1, 0, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(b, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_txn_write(a, 3, 0, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(a, NULL, 0, NULL), DSM_ECONFLICT);
        expect_page(s, 1, 0, 2);
        expect_hole(s, 3, 0);

        /* Reading a page changed after the snapshot conflicts at once. */
        ck_assert_int_eq(dsm_txn_begin(s, &a), 0);
        put_page(s, 2, 0, 3);
        ck_assert_int_eq(dsm_txn_read(a, 2, 0, buf), DSM_ECONFLICT);
        ck_assert_int_eq(dsm_txn_commit(a, NULL, 0, NULL), DSM_ECONFLICT);

        /* A partial write reads, so it conflicts too. */
        ck_assert_int_eq(dsm_txn_begin(s, &a), 0);
        ck_assert_int_eq(dsm_txn_write(a, 2, 0, 10, "x", 1), 0);
        put_page(s, 2, 0, 4);
        ck_assert_int_eq(dsm_txn_commit(a, NULL, 0, NULL), DSM_ECONFLICT);
        expect_page(s, 2, 0, 4);

        /* Blind whole-page writes do not conflict: last committer wins. */
        ck_assert_int_eq(dsm_txn_begin(s, &a), 0);
        ck_assert_int_eq(dsm_txn_begin(s, &b), 0);
        fill(buf, 5, 0, 1);
        ck_assert_int_eq(dsm_txn_write(a, 5, 0, 0, buf, DSM_PAGE_SIZE), 0);
        fill(buf, 5, 0, 2);
        ck_assert_int_eq(dsm_txn_write(b, 5, 0, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(a, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_txn_commit(b, NULL, 0, NULL), 0);
        expect_page(s, 5, 0, 2);

        /* A hole read, then the object freed by someone else: conflict. */
        ck_assert_int_eq(dsm_txn_begin(s, &a), 0);
        ck_assert_int_eq(dsm_txn_read(a, 5, 7, buf), 0);
        ck_assert_int_eq(dsm_txn_begin(s, &c), 0);
        ck_assert_int_eq(dsm_txn_free(c, 5, 0, DSM_TO_END), 0);
        ck_assert_int_eq(dsm_txn_commit(c, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_txn_commit(a, NULL, 0, NULL), DSM_ECONFLICT);
        expect_hole(s, 5, 0);

        /* Disjoint readers and writers both commit. */
        ck_assert_int_eq(dsm_txn_begin(s, &a), 0);
        ck_assert_int_eq(dsm_txn_begin(s, &b), 0);
        ck_assert_int_eq(dsm_txn_read(a, 1, 0, buf), 1);
        ck_assert_int_eq(dsm_txn_read(b, 2, 0, buf), 1);
        ck_assert_int_eq(dsm_txn_write(a, 1, 1, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_write(b, 2, 1, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(a, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_txn_commit(b, NULL, 0, NULL), 0);
        dsm_close(s);
}
END_TEST

START_TEST(test_free_and_seek)
{
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_commit c;
        uint64_t pos;
        uint8_t buf[DSM_PAGE_SIZE];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        for (uint64_t p = 0; p < 20; p++) {
                if (p >= 5 && p < 10)
                        continue;
                fill(buf, 3, p, 1);
                ck_assert_int_eq(dsm_txn_write(t, 3, p, 0, buf, DSM_PAGE_SIZE), 0);
        }
        fill(buf, 3, 1u << 20, 1);     /* beyond 4 GiB */
        ck_assert_int_eq(dsm_txn_write(t, 3, 1u << 20, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_seek(s, 3, 0, DSM_SEEK_DATA, &pos), 0);
        ck_assert_uint_eq(pos, 0);
        ck_assert_int_eq(dsm_seek(s, 3, 0, DSM_SEEK_HOLE, &pos), 0);
        ck_assert_uint_eq(pos, 5);
        ck_assert_int_eq(dsm_seek(s, 3, 5, DSM_SEEK_DATA, &pos), 0);
        ck_assert_uint_eq(pos, 10);
        ck_assert_int_eq(dsm_seek(s, 3, 10, DSM_SEEK_HOLE, &pos), 0);
        ck_assert_uint_eq(pos, 20);
        ck_assert_int_eq(dsm_seek(s, 3, 21, DSM_SEEK_DATA, &pos), 0);
        ck_assert_uint_eq(pos, 1u << 20);
        ck_assert_int_eq(dsm_seek(s, 3, (1u << 20) + 1, DSM_SEEK_DATA, &pos), -ENXIO);
        ck_assert_int_eq(dsm_seek(s, 3, 0, 99, &pos), -EINVAL);
        /* A range read crosses data, holes and extents of other commits. */
        {
                static uint8_t big[24 * DSM_PAGE_SIZE];
                uint8_t want[DSM_PAGE_SIZE], zero[DSM_PAGE_SIZE] = { 0 };

                memset(big, 0xee, sizeof(big));
                ck_assert_int_eq(dsm_read_pages(s, 3, 0, 24, big), 0);
                for (uint64_t p = 0; p < 24; p++) {
                        fill(want, 3, p, 1);
                        ck_assert(memcmp(big + p * DSM_PAGE_SIZE, (p >= 5 && p < 10) || p >= 20 ? zero : want,
                                         DSM_PAGE_SIZE) == 0);
                }
                ck_assert_int_eq(dsm_read_pages(s, 3, 1u << 20, 1, big), 0);
                fill(want, 3, 1u << 20, 1);
                ck_assert(memcmp(big, want, DSM_PAGE_SIZE) == 0);
        }

        /* Free a middle range and everything from page 15 on; in the same
         * transaction, write page 17 again after the free. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_free(t, 3, 2, 2), 0);
        ck_assert_int_eq(dsm_txn_free(t, 3, 15, DSM_TO_END), 0);
        fill(buf, 3, 17, 9);
        ck_assert_int_eq(dsm_txn_write(t, 3, 17, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, &c), 0);
        ck_assert_uint_eq(c.nchanges, 3);
        ck_assert_uint_eq(c.changes[1].npages, DSM_TO_END);
        dsm_commit_release(&c);
        for (int round = 0; round < 2; round++) {
                expect_page(s, 3, 1, 1);
                expect_hole(s, 3, 2);
                expect_hole(s, 3, 3);
                expect_page(s, 3, 4, 1);
                expect_page(s, 3, 14, 1);
                expect_hole(s, 3, 16);
                expect_page(s, 3, 17, 9);
                expect_hole(s, 3, 18);
                expect_hole(s, 3, 1u << 20);
                dsm_close(s);
                s = open_store(NULL);
        }
        dsm_close(s);
}
END_TEST

/* A write session much bigger than the transaction buffer streams to the
 * log before commit, stays invisible until commit, and reads back. */
START_TEST(test_streaming_large_txn)
{
        struct dsm_options o = { .txn_buffer = 64 << 10, .segment_size = 1 << 20 };
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_stats st;
        uint8_t buf[DSM_PAGE_SIZE];
        const uint64_t n = 2048;        /* 8 MiB over 1 MiB segments */

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        for (uint64_t p = 0; p < n; p++) {
                fill(buf, 42, p, 1);
                ck_assert_int_eq(dsm_txn_write(t, 42, p, 0, buf, DSM_PAGE_SIZE), 0);
        }
        /* A long run straight from our memory replaces staged pages. */
        {
                static uint8_t run[64 * DSM_PAGE_SIZE];

                for (uint64_t i = 0; i < 64; i++)
                        fill(run + i * DSM_PAGE_SIZE, 42, n - 64 + i, 3);
                ck_assert_int_eq(dsm_txn_write_pages(t, 42, n - 64, 64, run), 0);
                memset(run, 0, sizeof(run));    /* not used after the call */
                ck_assert_int_eq(dsm_txn_read(t, 42, n - 1, buf), 1);
                fill(run, 42, n - 1, 3);
                ck_assert(memcmp(buf, run, DSM_PAGE_SIZE) == 0);
        }
        /* Overwrite some streamed pages and some buffered ones. */
        for (uint64_t p = 0; p < n; p += 97) {
                fill(buf, 42, p, 2);
                ck_assert_int_eq(dsm_txn_write(t, 42, p, 0, buf, DSM_PAGE_SIZE), 0);
        }
        ck_assert_int_eq(dsm_txn_read(t, 42, 5, buf), 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_ge(st.data_bytes_written, (n - 16) * DSM_PAGE_SIZE);
        ck_assert_uint_eq(st.seq, 0);
        expect_hole(s, 42, 5);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        for (int round = 0; round < 2; round++) {
                for (uint64_t p = 0; p < n; p++)
                        expect_page(s, 42, p, p % 97 == 0 ? 2 : p >= n - 64 ? 3 : 1);
                dsm_close(s);
                s = open_store(&o);
        }
        dsm_get_stats(s, &st);
        ck_assert_uint_gt(st.segments, 8);
        dsm_close(s);
}
END_TEST

struct replay_log {
        int ckpt_calls;
        uint64_t ckpt_seq;
        char ckpt[64];
        size_t ckpt_len;
        uint64_t seqs[64];
        char metas[64][16];
        int n;
};

static int on_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct replay_log *l = ctx;

        if (kind == DSM_REPLAY_CHECKPOINT_META) {
                l->ckpt_calls++;
                l->ckpt_seq = seq;
                ck_assert_uint_le(l->ckpt_len + len, sizeof(l->ckpt));
                memcpy(l->ckpt + l->ckpt_len, data, len);
                l->ckpt_len += len;
                return 0;
        }
        ck_assert_int_lt(l->n, 64);
        ck_assert_uint_lt(len, 16);
        l->seqs[l->n] = seq;
        memcpy(l->metas[l->n], data, len);
        l->metas[l->n][len] = 0;
        l->n++;
        return 0;
}

static int on_ckpt(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        char img[32];

        (void)ctx;
        snprintf(img, sizeof(img), "image@%llu", (unsigned long long)seq);
        return dsm_ckpt_put(cp, img, strlen(img));
}

START_TEST(test_replay_and_checkpoint)
{
        struct replay_log l = { 0 };
        struct dsm_options o = { .replay = on_replay, .replay_ctx = &l, .ckpt_meta = on_ckpt };
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_stats st, st2;
        char m[16];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        for (int i = 0; i < 5; i++) {
                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                snprintf(m, sizeof(m), "c%d", i);
                ck_assert_int_eq(dsm_txn_commit(t, m, strlen(m), NULL), 0);
        }
        dsm_close(s);
        s = open_store(&o);
        ck_assert_int_eq(l.ckpt_calls, 0);
        ck_assert_int_eq(l.n, 5);
        for (int i = 0; i < 5; i++) {
                snprintf(m, sizeof(m), "c%d", i);
                ck_assert_str_eq(l.metas[i], m);
                ck_assert_uint_eq(l.seqs[i], (uint64_t)i + 1);
        }
        /* Lots of data, then a checkpoint, then two more commits. */
        for (uint64_t p = 0; p < 512; p++)
                put_page(s, 8, p, 1);
        ck_assert_int_eq(dsm_checkpoint(s), 0);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_commit(t, "after1", 6, NULL), 0);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_commit(t, "after2", 6, NULL), 0);
        dsm_get_stats(s, &st);
        dsm_close(s);

        memset(&l, 0, sizeof(l));
        s = open_store(&o);
        ck_assert_int_eq(l.ckpt_calls, 1);
        ck_assert_uint_eq(l.ckpt_seq, 5 + 512);
        l.ckpt[l.ckpt_len] = 0;
        ck_assert_str_eq(l.ckpt, "image@517");
        ck_assert_int_eq(l.n, 2);
        ck_assert_str_eq(l.metas[0], "after1");
        ck_assert_str_eq(l.metas[1], "after2");
        for (uint64_t p = 0; p < 512; p++)
                expect_page(s, 8, p, 1);
        dsm_get_stats(s, &st2);
        ck_assert_uint_eq(st2.seq, st.seq);
        ck_assert_uint_eq(st2.checkpoint_seq, 517);
        /* Recovery read the checkpoint and what followed, not 2 MiB of pages. */
        ck_assert_uint_lt(st2.recovery_bytes, 256 << 10);
        dsm_close(s);
}
END_TEST

static int failing_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        int *calls = ctx;

        (void)kind; (void)seq; (void)data; (void)len;
        return ++*calls == 2 ? -EBADMSG : 0;
}

/* A replay callback's error stops recovery with that error, and is never
 * taken for damage: nothing of the log is cut. */
START_TEST(test_replay_callback_error)
{
        int calls = 0;
        struct dsm_options o = { .replay = failing_replay, .replay_ctx = &calls };
        struct dsm_store *s;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        for (uint64_t p = 0; p < 4; p++)
                put_page(s, 1, p, 1);
        dsm_close(s);
        ck_assert_int_eq(dsm_open(dir, &o, &s), -EBADMSG);
        s = open_store(NULL);
        for (uint64_t p = 0; p < 4; p++)
                expect_page(s, 1, p, 1);
        ck_assert_int_eq(dsm_error(s), 0);
        dsm_close(s);
}
END_TEST

START_TEST(test_cleaner_gives_space_back)
{
        struct dsm_options o = { .segment_size = 1 << 20, .txn_buffer = 64 << 10 };
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_stats before, after;
        uint8_t buf[DSM_PAGE_SIZE];
        int r;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        /* 8 MiB of object 1, 4 MiB of object 2 written in between. */
        for (uint64_t p = 0; p < 3072; p++) {
                uint64_t obj = p % 3 == 2 ? 2 : 1;

                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                fill(buf, obj, p, 1);
                ck_assert_int_eq(dsm_txn_write(t, obj, p, 0, buf, DSM_PAGE_SIZE), 0);
                ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        }
        /* Delete object 1 and overwrite half of object 2. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_free(t, 1, 0, DSM_TO_END), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        for (uint64_t p = 2; p < 3072; p += 6) {
                fill(buf, 2, p, 2);
                ck_assert_int_eq(dsm_txn_write(t, 2, p, 0, buf, DSM_PAGE_SIZE), 0);
        }
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        dsm_get_stats(s, &before);
        r = dsm_clean(s, 60);
        ck_assert_int_gt(r, 0);
        dsm_get_stats(s, &after);
        ck_assert_uint_lt(after.log_bytes, before.log_bytes / 2);
        ck_assert_uint_lt(after.segments, before.segments);
        ck_assert_uint_eq(after.live_bytes, 1024 * DSM_PAGE_SIZE);
        for (int round = 0; round < 2; round++) {
                for (uint64_t p = 0; p < 3072; p++) {
                        if (p % 3 != 2)
                                expect_hole(s, 1, p);
                        else
                                expect_page(s, 2, p, (p - 2) % 6 == 0 ? 2 : 1);
                }
                dsm_close(s);
                s = open_store(&o);
        }
        /* A second pass finds nothing more to do, and data stays intact. */
        ck_assert_int_ge(dsm_clean(s, 60), 0);
        expect_page(s, 2, 5, 1);
        ck_assert_int_eq(dsm_clean(s, 0), 0);
        dsm_close(s);
}
END_TEST

static void *committer(void *arg)
{
        struct dsm_store *s = arg;
        uint8_t buf[DSM_PAGE_SIZE];

        for (int i = 0; i < 50; i++) {
                struct dsm_txn *t;
                uint64_t obj = (uint64_t)pthread_self() % 100000;

                fill(buf, obj, (uint64_t)i, 1);
                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                ck_assert_int_eq(dsm_txn_write(t, obj, (uint64_t)i, 0, buf, DSM_PAGE_SIZE), 0);
                ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        }
        return NULL;
}

START_TEST(test_group_commit)
{
        struct dsm_store *s;
        struct dsm_stats st;
        pthread_t th[8];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        for (int i = 0; i < 8; i++)
                pthread_create(&th[i], NULL, committer, s);
        for (int i = 0; i < 8; i++)
                pthread_join(th[i], NULL);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.commits, 400);
        ck_assert_uint_eq(st.seq, 400);
        /* Concurrent committers shared flushes. */
        ck_assert_uint_lt(st.flushes, st.commits);
        dsm_close(s);
}
END_TEST

START_TEST(test_meta_ratio)
{
        struct dsm_store *s;
        struct dsm_stats st;
        uint64_t rs = 12345;
        uint8_t buf[DSM_PAGE_SIZE];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, NULL), 0);
        s = open_store(NULL);
        for (int i = 0; i < 200; i++) {
                struct dsm_txn *t;

                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                for (int j = 0; j < 16; j++) {
                        uint64_t p = tu_rand(&rs) % (1u << 20);

                        fill(buf, 77, p, 1);
                        ck_assert_int_eq(dsm_txn_write(t, 77, p, 0, buf, DSM_PAGE_SIZE), 0);
                }
                ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
        }
        dsm_get_stats(s, &st);
        ck_assert_uint_le(st.meta_bytes_written * 160, st.data_bytes_written);
        dsm_close(s);
}
END_TEST

/* dsm_txn_seek and dsm_txn_count_pages against a model of what the
 * transaction sees: committed pages, minus its frees, plus its writes. */
START_TEST(test_txn_seek_view)
{
        enum { N = 64 };
        uint64_t rs = tu_seed("txn seek");
        struct dsm_options o = { .txn_buffer = 16 << 10 };
        uint8_t buf[DSM_PAGE_SIZE];
        static uint8_t run[32 * DSM_PAGE_SIZE];
        struct dsm_store *s;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        for (int round = 0; round < 40; round++) {
                bool model[N + 8] = { 0 };
                struct dsm_txn *t;

                /* A committed baseline. */
                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                ck_assert_int_eq(dsm_txn_free(t, 9, 0, DSM_TO_END), 0);
                for (int p = 0; p < N; p++)
                        if (tu_rand(&rs) % 2) {
                                model[p] = true;
                                ck_assert_int_eq(dsm_txn_write(t, 9, (uint64_t)p, 0, buf, DSM_PAGE_SIZE), 0);
                        }
                ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), 0);
                /* Random staged writes and frees, checked after each. */
                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                for (int step = 0; step < 12; step++) {
                        int p = (int)(tu_rand(&rs) % N), n = 1 + (int)(tu_rand(&rs) % 20), op = (int)(tu_rand(&rs) % 5);
                        uint64_t count = 0, want = 0, got;

                        if (p + n > N)
                                n = N - p;
                        if (op == 0) {
                                ck_assert_int_eq(dsm_txn_free(t, 9, (uint64_t)p, DSM_TO_END), 0);
                                for (int k = p; k < N + 8; k++)
                                        model[k] = false;
                        } else if (op == 1) {
                                ck_assert_int_eq(dsm_txn_free(t, 9, (uint64_t)p, (uint64_t)n), 0);
                                for (int k = p; k < p + n; k++)
                                        model[k] = false;
                        } else if (op == 2 && n >= 16) {
                                ck_assert_int_eq(dsm_txn_write_pages(t, 9, (uint64_t)p, (uint64_t)n, run), 0);
                                for (int k = p; k < p + n; k++)
                                        model[k] = true;
                        } else {
                                for (int k = p; k < p + n && k < p + 3; k++) {
                                        ck_assert_int_eq(dsm_txn_write(t, 9, (uint64_t)k, 0, buf, DSM_PAGE_SIZE), 0);
                                        model[k] = true;
                                }
                        }
                        for (int q = 0; q < N + 4; q++) {
                                int d = q, h = q;

                                while (d < N + 8 && !model[d])
                                        d++;
                                while (h < N + 8 && model[h])
                                        h++;
                                if (d >= N + 8)
                                        ck_assert_int_eq(dsm_txn_seek(t, 9, (uint64_t)q, DSM_SEEK_DATA, &got), -ENXIO);
                                else {
                                        ck_assert_int_eq(dsm_txn_seek(t, 9, (uint64_t)q, DSM_SEEK_DATA, &got), 0);
                                        ck_assert_msg(got == (uint64_t)d, "round %d step %d: data from %d: %lu, want %d",
                                                      round, step, q, got, d);
                                }
                                ck_assert_int_eq(dsm_txn_seek(t, 9, (uint64_t)q, DSM_SEEK_HOLE, &got), 0);
                                ck_assert_msg(got == (uint64_t)h, "round %d step %d: hole from %d: %lu, want %d",
                                              round, step, q, got, h);
                        }
                        for (int k = 0; k < N + 8; k++)
                                want += model[k];
                        ck_assert_int_eq(dsm_txn_count_pages(t, 9, &count), 0);
                        ck_assert_uint_eq(count, want);
                }
                dsm_txn_abort(t);
        }
        dsm_close(s);
}
END_TEST

/* ---- damage and faults ---------------------------------------------------------- */

struct damage_log {
        int n;
        uint64_t segno[16], off[16];
        char what[16][96];
};

static void on_damage(void *ctx, const struct dsm_damage *d, const char *what)
{
        struct damage_log *l = ctx;

        if (l->n < 16) {
                l->segno[l->n] = d->segno;
                l->off[l->n] = d->offset;
                snprintf(l->what[l->n], sizeof(l->what[0]), "%s", what);
        }
        l->n++;
}

static char seg_name(char *buf, size_t len, uint64_t segno)
{
        snprintf(buf, len, "%s/seg-%016llx.log", dir, (unsigned long long)segno);
        return 0;
}

START_TEST(test_torn_tail_is_cut)
{
        struct damage_log dl = { 0 };
        struct dsm_options o = { .damage = on_damage, .damage_ctx = &dl };
        struct dsm_store *s;
        char path[4200];
        int fd;
        struct stat stb;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        for (uint64_t p = 0; p < 5; p++)
                put_page(s, 1, p, 1);
        dsm_close(s);
        /* Half a record of garbage at the end, as a crash mid-write leaves. */
        seg_name(path, sizeof(path), 1);
        ck_assert_int_eq(stat(path, &stb), 0);
        fd = open(path, O_WRONLY | O_APPEND);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "\x52\x4c\x02\x00garbage-garbage-garbage", 27), 27);
        close(fd);
        s = open_store(&o);
        ck_assert_int_eq(dl.n, 1);
        ck_assert_str_eq(dl.what[0], "torn tail cut off");
        ck_assert_uint_eq(dl.off[0], (uint64_t)stb.st_size);
        for (uint64_t p = 0; p < 5; p++)
                expect_page(s, 1, p, 1);
        put_page(s, 1, 9, 1);
        dsm_close(s);
        dl.n = 0;
        s = open_store(&o);
        ck_assert_int_eq(dl.n, 0);
        expect_page(s, 1, 9, 1);
        dsm_close(s);
}
END_TEST

START_TEST(test_mid_log_damage_is_refused)
{
        struct damage_log dl = { 0 };
        struct dsm_options o = { .damage = on_damage, .damage_ctx = &dl, .segment_size = 256 << 10 };
        struct dsm_store *s;
        uint8_t buf[DSM_PAGE_SIZE];
        char path[4200];
        int fd;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        for (uint64_t p = 0; p < 200; p++)      /* several segments */
                put_page(s, 1, p, 1);
        dsm_close(s);
        /* Flip bytes inside the page data of the first record of segment 1. */
        seg_name(path, sizeof(path), 1);
        fd = open(path, O_RDWR);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pwrite(fd, "XXXX", 4, 64 + 32 + 40 + 100), 4);
        close(fd);
        s = open_store(&o);
        ck_assert_int_ge(dl.n, 1);
        ck_assert_uint_eq(dl.segno[0], 1);
        ck_assert_uint_eq(dl.off[0], 64);
        ck_assert_int_eq(dsm_read(s, 1, 0, buf), DSM_ECORRUPT);
        {
                static uint8_t two[2 * DSM_PAGE_SIZE];

                ck_assert_int_eq(dsm_read_pages(s, 1, 0, 2, two), DSM_ECORRUPT);
                ck_assert_int_eq(dsm_read_pages(s, 1, 1, 2, two), 0);
        }
        for (uint64_t p = 1; p < 200; p++)
                expect_page(s, 1, p, 1);
        /* Rewriting the page heals it. */
        put_page(s, 1, 0, 2);
        expect_page(s, 1, 0, 2);
        dsm_close(s);
}
END_TEST

static struct dsm_faultio *fio;

static struct dsm_options fault_opts(void)
{
        struct dsm_options o = { .io = &dsm_faultio_ops, .segment_size = 256 << 10 };

        fio = dsm_faultio_new(7);
        o.io_ctx = fio;
        snprintf(dir, sizeof(dir), "/store");
        return o;
}

START_TEST(test_write_error_is_sticky)
{
        struct dsm_options o = fault_opts();
        struct dsm_store *s;
        struct dsm_txn *t;
        uint8_t buf[DSM_PAGE_SIZE];

        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        put_page(s, 1, 0, 1);
        dsm_faultio_fail(fio, DSM_FOP_PWRITE, 1, EIO, false);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        fill(buf, 1, 1, 1);
        ck_assert_int_eq(dsm_txn_write(t, 1, 1, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), -EIO);
        /* The fault was once only, but the store stays failed until reopen. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), -EIO);
        ck_assert_int_eq(dsm_error(s), -EIO);
        ck_assert_int_eq(dsm_read(s, 1, 0, buf), -EIO);
        ck_assert_int_eq(dsm_checkpoint(s), -EIO);
        dsm_close(s);
        s = open_store(&o);
        expect_page(s, 1, 0, 1);
        expect_hole(s, 1, 1);
        put_page(s, 1, 1, 1);
        expect_page(s, 1, 1, 1);
        dsm_close(s);
        dsm_faultio_free(fio);
}
END_TEST

START_TEST(test_flush_error_and_enospc)
{
        struct dsm_options o = fault_opts();
        struct dsm_store *s;
        struct dsm_txn *t;
        uint8_t buf[DSM_PAGE_SIZE];

        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        put_page(s, 1, 0, 1);
        dsm_faultio_fail(fio, DSM_FOP_FDATASYNC, 1, EIO, false);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        fill(buf, 1, 1, 1);
        ck_assert_int_eq(dsm_txn_write(t, 1, 1, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), -EIO);
        ck_assert_int_eq(dsm_txn_begin(s, &t), -EIO);
        dsm_close(s);

        s = open_store(&o);
        expect_page(s, 1, 0, 1);
        dsm_faultio_fail(fio, DSM_FOP_PWRITE, 1, ENOSPC, true);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_write(t, 1, 2, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, NULL, 0, NULL), -ENOSPC);
        dsm_close(s);
        dsm_faultio_clear(fio);
        s = open_store(&o);
        expect_page(s, 1, 0, 1);
        expect_hole(s, 1, 2);
        dsm_close(s);
        dsm_faultio_free(fio);
}
END_TEST

START_TEST(test_short_write_completes)
{
        struct dsm_options o = fault_opts();
        struct dsm_store *s;

        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        dsm_faultio_short_write(fio, 1, 100);
        dsm_faultio_short_write(fio, 2, 10);
        put_page(s, 1, 0, 1);
        put_page(s, 1, 1, 1);
        expect_page(s, 1, 0, 1);
        dsm_close(s);
        s = open_store(&o);
        expect_page(s, 1, 0, 1);
        expect_page(s, 1, 1, 1);
        dsm_close(s);
        dsm_faultio_free(fio);
}
END_TEST

START_TEST(test_power_loss_keeps_committed)
{
        struct dsm_options o = fault_opts();
        struct dsm_store *s;
        struct dsm_txn *t;
        uint8_t buf[DSM_PAGE_SIZE];

        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        for (uint64_t p = 0; p < 100; p++)
                put_page(s, 1, p, 1);
        /* A transaction that streamed data but never committed. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        for (uint64_t p = 0; p < 600; p++) {
                fill(buf, 1, p, 2);
                ck_assert_int_eq(dsm_txn_write(t, 1, p, 0, buf, DSM_PAGE_SIZE), 0);
        }
        dsm_faultio_power_loss(fio, true);
        dsm_txn_abort(t);
        dsm_close(s);
        dsm_faultio_reboot(fio);
        s = open_store(&o);
        for (uint64_t p = 0; p < 100; p++)
                expect_page(s, 1, p, 1);
        expect_hole(s, 1, 100);
        dsm_close(s);
        dsm_faultio_free(fio);
}
END_TEST

START_TEST(test_nosync_commit)
{
        struct dsm_options o = fault_opts();
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_stats st;
        uint8_t buf[DSM_PAGE_SIZE];
        uint64_t flushes;

        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        put_page(s, 1, 0, 1);
        dsm_get_stats(s, &st);
        flushes = st.flushes;
        /* Visible at once, without a flush. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        fill(buf, 1, 1, 1);
        ck_assert_int_eq(dsm_txn_write(t, 1, 1, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit_nosync(t, NULL, 0, NULL), 0);
        expect_page(s, 1, 1, 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.flushes, flushes);
        /* A crash of the process keeps it (the volatile image survives). */
        dsm_close(s);
        s = open_store(&o);
        expect_page(s, 1, 1, 1);
        /* A power loss before dsm_sync takes it back... */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        fill(buf, 1, 2, 1);
        ck_assert_int_eq(dsm_txn_write(t, 1, 2, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit_nosync(t, NULL, 0, NULL), 0);
        dsm_faultio_power_loss(fio, false);
        dsm_close(s);
        dsm_faultio_reboot(fio);
        s = open_store(&o);
        expect_hole(s, 1, 2);
        /* ...but not after it. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_write(t, 1, 2, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit_nosync(t, NULL, 0, NULL), 0);
        ck_assert_int_eq(dsm_sync(s), 0);
        dsm_faultio_power_loss(fio, false);
        dsm_close(s);
        dsm_faultio_reboot(fio);
        s = open_store(&o);
        expect_page(s, 1, 2, 1);
        expect_page(s, 1, 0, 1);
        dsm_close(s);
        dsm_faultio_free(fio);
}
END_TEST

/* Commit page (obj, page) with tag and payload m. */
static void put_page_meta(struct dsm_store *s, uint64_t obj, uint64_t page, uint32_t tag, const char *m)
{
        struct dsm_txn *t;
        uint8_t buf[DSM_PAGE_SIZE];

        fill(buf, obj, page, tag);
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_write(t, obj, page, 0, buf, DSM_PAGE_SIZE), 0);
        ck_assert_int_eq(dsm_txn_commit(t, m, strlen(m), NULL), 0);
}

/*
 * Delta checkpoints (issue #7 item 9): a full checkpoint, then deltas that
 * hold only what changed -- overwritten, freed and new pages, and the
 * payloads of the commits they cover -- then commits after the last one.
 * Recovery follows the chain back to the full one, hands over its image,
 * then every later payload exactly once and in order, and reads the chain
 * rather than the log.  The cleaner starts a new chain.
 */
START_TEST(test_delta_checkpoints)
{
        struct replay_log l = { 0 };
        struct dsm_options o = { .replay = on_replay, .replay_ctx = &l, .ckpt_meta = on_ckpt };
        struct dsm_store *s;
        struct dsm_txn *t;
        struct dsm_stats st;
        uint64_t full_seq, meta0;
        char m[16];

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        /* No base yet: a delta is refused. */
        put_page(s, 1, 0, 1);
        ck_assert_int_eq(dsm_checkpoint_delta(s), -ESTALE);
        ck_assert(dsm_checkpoint_full_due(s));
        for (uint64_t p = 1; p < 300; p++)
                put_page(s, 1, p, 1);
        ck_assert_int_eq(dsm_checkpoint(s), 0);
        full_seq = 300;
        ck_assert(!dsm_checkpoint_full_due(s));
        /* Nothing changed: nothing written. */
        dsm_get_stats(s, &st);
        meta0 = st.meta_bytes_written;
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.meta_bytes_written, meta0);
        ck_assert_uint_eq(st.delta_checkpoints, 0);

        /* First delta: overwrites, a free, a new object. */
        put_page_meta(s, 1, 5, 2, "d1a");
        put_page_meta(s, 2, 0, 1, "d1b");
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_free(t, 1, 100, 50), 0);
        ck_assert_int_eq(dsm_txn_commit(t, "d1c", 3, NULL), 0);
        dsm_get_stats(s, &st);
        meta0 = st.meta_bytes_written;
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        dsm_get_stats(s, &st);
        /* It holds a few ranges and three payloads, not 300 extents. */
        ck_assert_uint_lt(st.meta_bytes_written - meta0, 600);
        /* Second delta: a free to the end, a rewrite inside the freed range. */
        ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
        ck_assert_int_eq(dsm_txn_free(t, 1, 250, DSM_TO_END), 0);
        ck_assert_int_eq(dsm_txn_commit(t, "d2a", 3, NULL), 0);
        put_page_meta(s, 1, 120, 3, "d2b");
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        /* After the chain, in the log only. */
        put_page_meta(s, 3, 7, 1, "log1");
        put_page_meta(s, 1, 5, 4, "log2");
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.checkpoints, 1);
        ck_assert_uint_eq(st.delta_checkpoints, 2);
        ck_assert_uint_eq(st.checkpoint_chain, 2);
        ck_assert_uint_eq(st.checkpoint_seq, full_seq + 5);
        dsm_close(s);

        memset(&l, 0, sizeof(l));
        s = open_store(&o);
        ck_assert_int_eq(l.ckpt_calls, 1);
        ck_assert_uint_eq(l.ckpt_seq, full_seq);
        l.ckpt[l.ckpt_len] = 0;
        ck_assert_str_eq(l.ckpt, "image@300");
        {
                const char *want[] = { "d1a", "d1b", "d1c", "d2a", "d2b", "log1", "log2" };

                ck_assert_int_eq(l.n, 7);
                for (int i = 0; i < 7; i++) {
                        ck_assert_uint_eq(l.seqs[i], full_seq + 1 + (uint64_t)i);
                        ck_assert_str_eq(l.metas[i], want[i]);
                }
        }
        for (uint64_t p = 0; p < 250; p++) {
                if (p >= 100 && p < 150 && p != 120)
                        expect_hole(s, 1, p);
                else
                        expect_page(s, 1, p, p == 5 ? 4 : p == 120 ? 3 : 1);
        }
        for (uint64_t p = 250; p < 310; p++)
                expect_hole(s, 1, p);
        expect_page(s, 2, 0, 1);
        expect_page(s, 3, 7, 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.seq, full_seq + 7);
        ck_assert_uint_eq(st.checkpoint_seq, full_seq + 5);
        ck_assert_uint_eq(st.checkpoint_chain, 2);
        /* Recovery read the chain and the two commits after it, not the
         * 1.2 MiB of pages before the full checkpoint. */
        ck_assert_uint_lt(st.recovery_bytes, 256 << 10);

        /* A delta after recovery covers the commits it replayed. */
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        dsm_close(s);
        memset(&l, 0, sizeof(l));
        s = open_store(&o);
        ck_assert_int_eq(l.n, 7);
        ck_assert_str_eq(l.metas[6], "log2");
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.checkpoint_seq, full_seq + 7);
        ck_assert_uint_eq(st.checkpoint_chain, 3);
        expect_page(s, 1, 5, 4);
        expect_page(s, 3, 7, 1);

        /* The cleaner writes a new full checkpoint (a new base) first. */
        ck_assert_int_ge(dsm_clean(s, 50), 0);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.checkpoints, 1);
        ck_assert_uint_eq(st.checkpoint_chain, 0);
        snprintf(m, sizeof(m), "after");
        put_page_meta(s, 4, 0, 1, m);
        dsm_close(s);
        memset(&l, 0, sizeof(l));
        s = open_store(&o);
        ck_assert_int_eq(l.ckpt_calls, 1);
        ck_assert_uint_eq(l.ckpt_seq, full_seq + 7);
        ck_assert_int_eq(l.n, 1);
        ck_assert_str_eq(l.metas[0], "after");
        expect_page(s, 1, 120, 3);
        expect_hole(s, 1, 130);
        expect_page(s, 4, 0, 1);
        dsm_close(s);
}
END_TEST

/* dsm_checkpoint_compact callbacks: the "image" is the text of the old
 * image followed by "+payload" for each later commit. */
struct compact_img {
        char text[256];
        size_t len;
        uint64_t last;
};

static int compact_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct compact_img *c = ctx;

        ck_assert_uint_lt(c->len + len + 1, sizeof(c->text));
        if (kind == DSM_REPLAY_COMMIT) {
                ck_assert_uint_gt(seq, c->last);
                c->text[c->len++] = '+';
        }
        c->last = seq;
        memcpy(c->text + c->len, data, len);
        c->len += len;
        return 0;
}

static int compact_image(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        struct compact_img *c = ctx;

        ck_assert_uint_eq(seq, c->last);
        return dsm_ckpt_put(cp, c->text, c->len);
}

/* A full checkpoint made from the chain alone, with a commit landing
 * between its image and its snapshot: the image is the chain's, the new
 * commit travels as a payload; the result is a new base. */
START_TEST(test_compact_checkpoint)
{
        struct replay_log l = { 0 };
        struct compact_img c = { 0 };
        struct dsm_options o = { .replay = on_replay, .replay_ctx = &l, .ckpt_meta = on_ckpt };
        struct dsm_store *s;
        struct dsm_stats st;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        ck_assert_int_eq(dsm_checkpoint_compact(s, compact_replay, compact_image, &c), -ESTALE);
        put_page_meta(s, 1, 0, 1, "a");
        ck_assert_int_eq(dsm_checkpoint(s), 0);                 /* image@1 */
        put_page_meta(s, 1, 1, 1, "b");
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        put_page_meta(s, 1, 0, 2, "c");
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        put_page_meta(s, 2, 0, 1, "d");                         /* after the chain */
        ck_assert_int_eq(dsm_checkpoint_compact(s, compact_replay, compact_image, &c), 0);
        c.text[c.len] = 0;
        ck_assert_str_eq(c.text, "image@1+b+c");
        ck_assert_uint_eq(c.last, 3);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.checkpoint_chain, 0);
        ck_assert_uint_eq(st.checkpoint_seq, 4);
        put_page_meta(s, 2, 1, 1, "e");
        dsm_close(s);

        memset(&l, 0, sizeof(l));
        s = open_store(&o);
        ck_assert_int_eq(l.ckpt_calls, 1);
        ck_assert_uint_eq(l.ckpt_seq, 3);
        l.ckpt[l.ckpt_len] = 0;
        ck_assert_str_eq(l.ckpt, "image@1+b+c");
        ck_assert_int_eq(l.n, 2);
        ck_assert_uint_eq(l.seqs[0], 4);
        ck_assert_str_eq(l.metas[0], "d");
        ck_assert_uint_eq(l.seqs[1], 5);
        ck_assert_str_eq(l.metas[1], "e");
        expect_page(s, 1, 0, 2);
        expect_page(s, 1, 1, 1);
        expect_page(s, 2, 0, 1);
        expect_page(s, 2, 1, 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.checkpoint_chain, 0);
        /* Deltas build on it. */
        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.checkpoint_chain, 1);
        dsm_close(s);
}
END_TEST

struct delta_writer {
        struct dsm_store *s;
        int n;
        volatile bool done;
};

static void *delta_committer(void *arg)
{
        struct delta_writer *w = arg;
        char m[16];

        for (int i = 0; i < w->n; i++) {
                struct dsm_txn *t;
                uint8_t buf[DSM_PAGE_SIZE];

                /* Without waiting for flushes, so that commits land while a
                 * delta is being written. */
                snprintf(m, sizeof(m), "%d", i);
                fill(buf, 5, (uint64_t)(i % 97), (uint32_t)i);
                ck_assert_int_eq(dsm_txn_begin(w->s, &t), 0);
                ck_assert_int_eq(dsm_txn_write(t, 5, (uint64_t)(i % 97), 0, buf, DSM_PAGE_SIZE), 0);
                ck_assert_int_eq(dsm_txn_commit_nosync(t, m, strlen(m), NULL), 0);
        }
        w->done = true;
        return NULL;
}

struct seq_check {
        uint64_t last;
        uint64_t commits;
        bool bad;
};

static int on_replay_seq(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct seq_check *c = ctx;

        (void)data;
        (void)len;
        if (kind == DSM_REPLAY_CHECKPOINT_META) {
                c->last = seq;
                return 0;
        }
        if (seq != c->last + 1)
                c->bad = true;
        c->last = seq;
        c->commits++;
        return 0;
}

static int seq_image(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        struct seq_check *c = ctx;

        ck_assert_uint_eq(seq, c->last);
        return dsm_ckpt_put(cp, "i", 1);
}

/* Deltas and compacted full checkpoints (with cleaner passes) written
 * while another thread commits: the commits appended while one is being
 * written lie after its snapshot and are replayed; the pages the cleaner
 * moves or frees stay readable. */
START_TEST(test_delta_while_committing)
{
        struct seq_check c = { 0 };
        struct dsm_options o = { .replay = on_replay_seq, .replay_ctx = &c, .ckpt_meta = on_ckpt,
                                 .segment_size = 256 << 10 };
        struct delta_writer w = { .n = 3000 };
        struct dsm_store *s;
        struct dsm_stats st;
        pthread_t th;

        setup_dir();
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        put_page(s, 5, 0, 0);
        ck_assert_int_eq(dsm_checkpoint(s), 0);
        w.s = s;
        ck_assert_int_eq(pthread_create(&th, NULL, delta_committer, &w), 0);
        for (int i = 0; !w.done || i < 4; i++) {
                if (i % 4 == 3) {
                        /* An image that says nothing but its seq; the
                         * payloads after it are contiguous from there. */
                        struct seq_check ci = { 0 };

                        ck_assert_int_eq(dsm_checkpoint_compact(s, on_replay_seq, seq_image, &ci), 0);
                        ck_assert(!ci.bad);
                        /* ... and the cleaner behind the new base. */
                        ck_assert_int_ge(dsm_clean_base(s, 50), 0);
                } else {
                        ck_assert_int_eq(dsm_checkpoint_delta(s), 0);
                }
        }
        pthread_join(th, NULL);
        ck_assert_int_eq(dsm_sync(s), 0);
        dsm_get_stats(s, &st);
        ck_assert_uint_gt(st.delta_checkpoints, 1);
        ck_assert_uint_gt(st.checkpoints, 1);
        dsm_close(s);
        s = open_store(&o);
        ck_assert(!c.bad);
        ck_assert_uint_eq(c.last, (uint64_t)w.n + 1);
        for (int p = 0; p < 97; p++) {
                int last = w.n - 1 - ((w.n - 1 - p) % 97);

                expect_page(s, 5, (uint64_t)p, (uint32_t)last);
        }
        dsm_close(s);
}
END_TEST

/* Commit pages [first, first + n) of obj with tag, without waiting for the
 * flush. */
static void put_pages_nosync(struct dsm_store *s, uint64_t obj, uint64_t first, uint64_t n, uint32_t tag)
{
        uint8_t buf[DSM_PAGE_SIZE];

        for (uint64_t p = first; p < first + n; p++) {
                struct dsm_txn *t;

                fill(buf, obj, p, tag);
                ck_assert_int_eq(dsm_txn_begin(s, &t), 0);
                ck_assert_int_eq(dsm_txn_write(t, obj, p, 0, buf, DSM_PAGE_SIZE), 0);
                ck_assert_int_eq(dsm_txn_commit_nosync(t, NULL, 0, NULL), 0);
        }
}

/* Kill the process (the page cache survives), then start it again. */
static struct dsm_store *process_restart(struct dsm_store *s, const struct dsm_options *o)
{
        dsm_close(s);
        dsm_faultio_reboot(fio);
        return open_store(o);
}

/* ... and the machine loses power (whatever was not flushed is lost). */
static struct dsm_store *power_cycle(struct dsm_store *s, const struct dsm_options *o)
{
        dsm_faultio_power_loss(fio, true);
        dsm_close(s);
        dsm_faultio_reboot(fio);
        return open_store(o);
}

/*
 * Issue #7 item 3: recovery replays commits that reached only the page
 * cache.  Once a later dsm_sync() or synchronous commit has returned they
 * are durable, so a power loss must not take them back -- neither when the
 * next flush is of the same segment nor when the log moved on to a new
 * segment meanwhile.
 */
START_TEST(test_process_crash_then_power_loss)
{
        struct damage_log dl = { 0 };
        struct dsm_options o = fault_opts();
        struct dsm_store *s;
        struct dsm_stats st;
        uint64_t before, rec, n2;

        o.damage = on_damage;
        o.damage_ctx = &dl;
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        put_page(s, 1, 0, 1);
        put_pages_nosync(s, 1, 1, 10, 1);
        s = process_restart(s, &o);
        for (uint64_t p = 0; p < 11; p++)
                expect_page(s, 1, p, 1);
        /* dsm_sync() promises that everything before it is durable. */
        ck_assert_int_eq(dsm_sync(s), 0);
        s = power_cycle(s, &o);
        for (uint64_t p = 0; p < 11; p++)
                expect_page(s, 1, p, 1);
        ck_assert_int_eq(dl.n, 0);

        dsm_close(s);

        /* Recovery ends with the tail segment so full that the first
         * commit after it goes to a new segment: the old one must still be
         * flushed before that commit returns [I5]. */
        snprintf(dir, sizeof(dir), "/store2");
        ck_assert_int_eq(dsm_format(dir, &o), 0);
        s = open_store(&o);
        dsm_get_stats(s, &st);
        before = st.log_bytes;
        put_pages_nosync(s, 2, 0, 1, 1);
        dsm_get_stats(s, &st);
        rec = st.log_bytes - before;
        for (n2 = 1; st.segment_size - st.log_bytes >= rec; n2++) {
                put_pages_nosync(s, 2, n2, 1, 1);
                dsm_get_stats(s, &st);
        }
        ck_assert_uint_eq(st.segments, 1);
        s = process_restart(s, &o);
        put_page(s, 3, 0, 1);
        dsm_get_stats(s, &st);
        ck_assert_uint_eq(st.segments, 2);
        s = power_cycle(s, &o);
        for (uint64_t p = 0; p < n2; p++)
                expect_page(s, 2, p, 1);
        expect_page(s, 3, 0, 1);
        ck_assert_int_eq(dl.n, 0);
        dsm_close(s);
        dsm_faultio_free(fio);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("txn");
        TCase *rc = tcase_create("recovery");
        TCase *fc = tcase_create("faults");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_format_and_open_errors);
        tcase_add_test(tc, test_commit_read_reopen);
        tcase_add_test(tc, test_partial_writes_and_abort);
        tcase_add_test(tc, test_conflicts);
        tcase_add_test(tc, test_free_and_seek);
        tcase_add_test(tc, test_streaming_large_txn);
        tcase_add_test(tc, test_group_commit);
        tcase_add_test(tc, test_meta_ratio);
        tcase_add_test(tc, test_txn_seek_view);
        suite_add_tcase(s, tc);
        tcase_set_timeout(rc, 120);
        tcase_add_test(rc, test_replay_and_checkpoint);
        tcase_add_test(rc, test_delta_checkpoints);
        tcase_add_test(rc, test_delta_while_committing);
        tcase_add_test(rc, test_compact_checkpoint);
        tcase_add_test(rc, test_replay_callback_error);
        tcase_add_test(rc, test_cleaner_gives_space_back);
        tcase_add_test(rc, test_torn_tail_is_cut);
        tcase_add_test(rc, test_mid_log_damage_is_refused);
        suite_add_tcase(s, rc);
        tcase_set_timeout(fc, 120);
        tcase_add_test(fc, test_write_error_is_sticky);
        tcase_add_test(fc, test_flush_error_and_enospc);
        tcase_add_test(fc, test_short_write_completes);
        tcase_add_test(fc, test_power_loss_keeps_committed);
        tcase_add_test(fc, test_nosync_commit);
        tcase_add_test(fc, test_process_crash_then_power_loss);
        suite_add_tcase(s, fc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
