/*
 * check_crash.c -- the randomized crash test of libdsm.
 *
 * Thousands of random transactions (whole and partial page writes, frees
 * of ranges and of whole objects, streamed and buffered data, with
 * checkpoints -- full, delta and compacted -- and cleaner passes mixed in)
 * run on the fault-injecting I/O layer, which loses power at a random
 * write, flush, directory sync or unlink, tearing and reordering whatever
 * was not flushed.  After each
 * crash the store is reopened and every page is compared with an
 * in-memory model: every committed transaction must be fully there, and
 * nothing of an uncommitted one.  The transaction whose commit was cut by
 * the crash is in doubt: it must be either wholly present or wholly
 * absent.  A third of the commits do not wait for the flush
 * (dsm_txn_commit_nosync): a power loss may take those back, but only as a
 * suffix -- the store must equal the model after commit k, where k is the
 * sequence number recovery reports and is no older than the last flush.
 * A second case mixes in crashes of the process alone (kill -9: the page
 * cache survives) and checks that a power loss after the restart keeps
 * everything acknowledged durable since (see run_crashes()).
 * The seed is printed; LOCUS_TEST_SEED replays a run.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm.h"
#include "dsm_faultio.h"
#include "testutil.h"

/* Epochs of the randomized crash test.  Under AddressSanitizer (CI runs
 * the unit tests a second time so) each epoch costs ten times as much;
 * that run is there for memory errors, the plain build for the coverage
 * of 250 epochs. */
#if defined(__SANITIZE_ADDRESS__)
#define CRASH_EPOCHS 60
#else
#define CRASH_EPOCHS 250
#endif

#define NOBJ 6
#define NPAGE 48

struct model {
        uint8_t data[NOBJ][NPAGE][DSM_PAGE_SIZE];
        bool present[NOBJ][NPAGE];
        uint64_t seq;
};

struct replay_ck {
        uint64_t last;
        uint64_t count;
        bool bad;
};

static int on_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct replay_ck *r = ctx;
        uint64_t v;

        if (kind != DSM_REPLAY_COMMIT)
                return 0;
        /* Payloads arrive in order, each naming its own sequence number. */
        if (len != sizeof(v) || seq <= r->last)
                r->bad = true;
        memcpy(&v, data, sizeof(v));
        if (v != seq)
                r->bad = true;
        r->last = seq;
        r->count++;
        return 0;
}

static void on_damage(void *ctx, const struct dsm_damage *d, const char *what)
{
        (void)ctx;
        if (getenv("LOCUS_CRASH_DEBUG"))
                fprintf(stderr, "#  damage seg %llu off %llu len %llu: %s\n", (unsigned long long)d->segno,
                        (unsigned long long)d->offset, (unsigned long long)d->length, what);
}

static void pattern(uint8_t *buf, size_t len, uint64_t *rs)
{
        uint64_t v = tu_rand(rs);

        for (size_t i = 0; i < len; i++) {
                if (i % 8 == 0)
                        v = v * 6364136223846793005ULL + 1442695040888963407ULL;
                buf[i] = (uint8_t)(v >> (8 * (i % 8)));
        }
}

/* Does the store hold exactly the model?  Returns false on the first
 * difference and says where in *why. */
static bool matches(struct dsm_store *s, const struct model *m, char *why, size_t whylen)
{
        static uint8_t buf[DSM_PAGE_SIZE], zero[DSM_PAGE_SIZE];

        for (int o = 0; o < NOBJ; o++)
                for (int p = 0; p < NPAGE; p++) {
                        int r = dsm_read(s, (uint64_t)o, (uint64_t)p, buf);

                        if (r < 0) {
                                snprintf(why, whylen, "read obj %d page %d: %d", o, p, r);
                                return false;
                        }
                        if (r != (int)m->present[o][p] && memcmp(buf, zero, DSM_PAGE_SIZE) != 0) {
                                snprintf(why, whylen, "obj %d page %d: presence %d, model %d", o, p, r,
                                         m->present[o][p]);
                                return false;
                        }
                        if (memcmp(buf, m->present[o][p] ? m->data[o][p] : zero, DSM_PAGE_SIZE) != 0) {
                                const uint8_t *w = m->present[o][p] ? m->data[o][p] : zero;
                                int first = 0, last = 0, nz = 0;

                                for (int i = 0; i < (int)DSM_PAGE_SIZE; i++)
                                        if (buf[i] != w[i]) {
                                                if (!last)
                                                        first = i;
                                                last = i + 1;
                                        }
                                for (int i = 0; i < (int)DSM_PAGE_SIZE; i++)
                                        nz += buf[i] != 0;
                                snprintf(why, whylen, "obj %d page %d: content differs in [%d,%d) (r=%d, %d nonzero, model present %d)",
                                         o, p, first, last, r, nz, m->present[o][p]);
                                return false;
                        }
                }
        return true;
}

/* One random transaction against the store and a pending model.  Returns
 * the commit's result, or the first error of an operation. */
static int random_txn(struct dsm_store *s, struct model *pend, uint64_t *rs, bool sync)
{
        static uint8_t buf[DSM_PAGE_SIZE];
        struct dsm_txn *t;
        int nops = 1 + (int)(tu_rand(rs) % 24), r;
        uint64_t seq;

        r = dsm_txn_begin(s, &t);
        if (r < 0)
                return r;
        for (int i = 0; i < nops; i++) {
                int o = (int)(tu_rand(rs) % NOBJ), p = (int)(tu_rand(rs) % NPAGE);
                unsigned op = (unsigned)(tu_rand(rs) % 20);

                if (op < 3) {
                        /* A long run of whole pages, streamed from our
                         * memory (dsm_txn_write_pages). */
                        static uint8_t run[32 * DSM_PAGE_SIZE];
                        int n = 16 + (int)(tu_rand(rs) % 17);

                        p = (int)(tu_rand(rs) % (NPAGE - 16));
                        if (p + n > NPAGE)
                                n = NPAGE - p;
                        pattern(run, (size_t)n * DSM_PAGE_SIZE, rs);
                        r = dsm_txn_write_pages(t, (uint64_t)o, (uint64_t)p, (uint64_t)n, run);
                        if (r < 0)
                                goto fail;
                        for (int k = 0; k < n; k++) {
                                memcpy(pend->data[o][p + k], run + (size_t)k * DSM_PAGE_SIZE, DSM_PAGE_SIZE);
                                pend->present[o][p + k] = true;
                        }
                } else if (op < 12) {
                        /* A run of whole pages. */
                        int n = 1 + (int)(tu_rand(rs) % 12);

                        for (int k = 0; k < n && p + k < NPAGE; k++) {
                                pattern(buf, DSM_PAGE_SIZE, rs);
                                if (getenv("LOCUS_CRASH_TRACE"))
                                        fprintf(stderr, "W %d %d\n", o, p + k);
                                r = dsm_txn_write(t, (uint64_t)o, (uint64_t)(p + k), 0, buf, DSM_PAGE_SIZE);
                                if (r < 0)
                                        goto fail;
                                memcpy(pend->data[o][p + k], buf, DSM_PAGE_SIZE);
                                pend->present[o][p + k] = true;
                        }
                } else if (op < 17) {
                        uint32_t off = (uint32_t)(tu_rand(rs) % DSM_PAGE_SIZE);
                        uint32_t len = 1 + (uint32_t)(tu_rand(rs) % (DSM_PAGE_SIZE - off));

                        pattern(buf, len, rs);
                        if (getenv("LOCUS_CRASH_TRACE"))
                                fprintf(stderr, "P %d %d %u %u\n", o, p, off, len);
                        r = dsm_txn_write(t, (uint64_t)o, (uint64_t)p, off, buf, len);
                        if (r < 0)
                                goto fail;
                        if (!pend->present[o][p])
                                memset(pend->data[o][p], 0, DSM_PAGE_SIZE);
                        memcpy(pend->data[o][p] + off, buf, len);
                        pend->present[o][p] = true;
                } else if (op < 19) {
                        int n = 1 + (int)(tu_rand(rs) % 10);

                        if (getenv("LOCUS_CRASH_TRACE"))
                                fprintf(stderr, "F %d %d %d\n", o, p, n);
                        r = dsm_txn_free(t, (uint64_t)o, (uint64_t)p, (uint64_t)n);
                        if (r < 0)
                                goto fail;
                        for (int k = p; k < p + n && k < NPAGE; k++)
                                pend->present[o][k] = false;
                } else {
                        if (getenv("LOCUS_CRASH_TRACE"))
                                fprintf(stderr, "E %d %d\n", o, p);
                        r = dsm_txn_free(t, (uint64_t)o, (uint64_t)p, DSM_TO_END);
                        if (r < 0)
                                goto fail;
                        for (int k = p; k < NPAGE; k++)
                                pend->present[o][k] = false;
                }
        }
        seq = pend->seq;
        if (getenv("LOCUS_CRASH_TRACE"))
                fprintf(stderr, "C %llu\n", (unsigned long long)seq);
        return sync ? dsm_txn_commit(t, &seq, sizeof(seq), NULL) : dsm_txn_commit_nosync(t, &seq, sizeof(seq), NULL);
fail:
        dsm_txn_abort(t);
        return r;
}

#define MAXHIST 8

/* dsm_checkpoint_compact: this test's stores carry no image of their own
 * (the payloads name their seq and nothing else), so the image is empty. */
static int compact_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        (void)ctx;
        (void)kind;
        (void)seq;
        (void)data;
        (void)len;
        return 0;
}

static int compact_image(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        (void)ctx;
        (void)seq;
        (void)cp;
        return 0;
}

/*
 * Run `epochs` epochs of random work, each ended by a crash, and check the
 * reopened store against the model.  An epoch ends in a power loss, or,
 * with probability process_pct percent, in a crash of the process only:
 * from a chosen write on every write fails (as if the process died there,
 * possibly in the middle of a write), the store is closed without a flush
 * and reopened from the same files, whose unflushed data survive (the
 * page cache outlives the process).  After a process crash recovery must
 * find every commit that returned, nosync ones included; they are durable
 * only once a later dsm_sync() or synchronous commit returns, and the
 * epochs that follow check exactly that across a power loss.
 */
static void run_crashes(const char *name, unsigned process_pct)
{
        /* durable: the state as of the last flush; hist: states after each
         * later (unflushed) commit; pending: the transaction under way. */
        static struct model durable, pending, hist[MAXHIST + 1];
        uint64_t seed = tu_seed(name), rs = seed;
        struct dsm_faultio *f = dsm_faultio_new(seed);
        struct replay_ck rc = { 0 };
        struct dsm_options o = { .io = &dsm_faultio_ops, .io_ctx = f, .segment_size = 256 << 10,
                                 .txn_buffer = 16 << 10, .replay = on_replay, .replay_ctx = &rc,
                                 .damage = on_damage };
        const enum dsm_fop crash_ops[] = { DSM_FOP_PWRITE, DSM_FOP_PWRITE, DSM_FOP_FDATASYNC,
                                           DSM_FOP_FDATASYNC, DSM_FOP_SYNCDIR, DSM_FOP_UNLINK };
        int crashes = 0, kills = 0, txns = 0, nosync = 0, syncs = 0, deltas = 0, rolled_back = 0, nhist = 0;
        int epochs = getenv("LOCUS_CRASH_EPOCHS") ? atoi(getenv("LOCUS_CRASH_EPOCHS")) : CRASH_EPOCHS;
        bool doubt = false, killed = false;
        char why[160];

        memset(&durable, 0, sizeof(durable));
        ck_assert_int_eq(dsm_format("/s", &o), 0);
        for (int epoch = 0; epoch < epochs; epoch++) {
                struct dsm_store *s = NULL;
                struct dsm_stats st;
                const struct model *want = NULL;

                memset(&rc, 0, sizeof(rc));
                ck_assert_msg(dsm_open("/s", &o, &s) == 0, "seed %llu epoch %d: open failed",
                              (unsigned long long)seed, epoch);
                ck_assert_msg(!rc.bad, "seed %llu: replay payloads out of order", (unsigned long long)seed);
                dsm_get_stats(s, &st);
                if (killed) {
                        /* Only the process died: every commit that returned
                         * is there, and the one cut short wholly or not at
                         * all.  None of the unflushed ones is durable yet. */
                        want = nhist ? &hist[nhist - 1] : &durable;
                        if (doubt && st.seq == pending.seq)
                                want = &pending;
                        ck_assert_msg(st.seq == want->seq, "seed %llu epoch %d: after a process crash "
                                      "recovered to seq %llu, last commit %llu", (unsigned long long)seed,
                                      epoch, (unsigned long long)st.seq, (unsigned long long)want->seq);
                        ck_assert_msg(matches(s, want, why, sizeof(why)), "seed %llu epoch %d: seq %llu: %s",
                                      (unsigned long long)seed, epoch, (unsigned long long)st.seq, why);
                        if (want == &pending) {
                                ck_assert_int_le(nhist, MAXHIST);
                                hist[nhist++] = pending;
                        }
                        doubt = false;
                        if (tu_rand(&rs) % 2 == 0) {
                                /* Sync at once, then lose power: what recovery
                                 * replayed must have been flushed by then. */
                                ck_assert_int_eq(dsm_sync(s), 0);
                                syncs++;
                                if (nhist)
                                        durable = hist[nhist - 1];
                                nhist = 0;
                                dsm_faultio_power_loss(f, true);
                                dsm_close(s);
                                dsm_faultio_reboot(f);
                                crashes++;
                                killed = false;
                                continue;
                        }
                } else {
                        /* Which state did recovery come back to?  It must be
                         * one we may lose our way back to, and match it
                         * exactly. */
                        if (st.seq == durable.seq)
                                want = &durable;
                        for (int i = 0; i < nhist; i++)
                                if (st.seq == hist[i].seq)
                                        want = &hist[i];
                        if (doubt && st.seq == pending.seq)
                                want = &pending;
                        ck_assert_msg(want != NULL, "seed %llu epoch %d: recovered to seq %llu, durable %llu, "
                                      "%d unflushed commits after it", (unsigned long long)seed, epoch,
                                      (unsigned long long)st.seq, (unsigned long long)durable.seq, nhist);
                        ck_assert_msg(matches(s, want, why, sizeof(why)), "seed %llu epoch %d: seq %llu: %s",
                                      (unsigned long long)seed, epoch, (unsigned long long)st.seq, why);
                        if (want != &pending && (nhist || doubt) &&
                            st.seq < (nhist ? hist[nhist - 1].seq : pending.seq))
                                rolled_back++;
                        durable = *want;
                        nhist = 0;
                }
                doubt = false;

                killed = tu_rand(&rs) % 100 < process_pct;
                if (killed) {
                        uint64_t nth = 1 + tu_rand(&rs) % 120;

                        /* Now and then the process dies inside a write. */
                        if (tu_rand(&rs) % 4 == 0) {
                                dsm_faultio_short_write(f, nth, (size_t)(1 + tu_rand(&rs) % 4000));
                                nth++;
                        }
                        dsm_faultio_fail(f, DSM_FOP_PWRITE, nth, EIO, true);
                } else {
                        dsm_faultio_crash_at(f, crash_ops[tu_rand(&rs) % 6], 1 + tu_rand(&rs) % 120);
                }
                for (;;) {
                        const struct model *last = nhist ? &hist[nhist - 1] : &durable;
                        /* Before a process crash, mostly unflushed commits:
                         * they are what recovery must flush. */
                        bool sync = (killed ? tu_rand(&rs) % 3 == 0 : tu_rand(&rs) % 3 != 0) ||
                                    nhist >= MAXHIST;
                        unsigned what = (unsigned)(tu_rand(&rs) % 40);
                        int r;

                        pending = *last;
                        pending.seq = last->seq + 1;
                        if (what == 0) {
                                r = dsm_checkpoint(s);
                        } else if (what == 5) {
                                /* A full checkpoint made from the chain. */
                                r = dsm_checkpoint_compact(s, compact_replay, compact_image, NULL);
                                if (r == -ESTALE)
                                        continue;       /* no chain yet: nothing written */
                        } else if (what == 3 || what == 4) {
                                /* Deltas, most of the time, as the storage
                                 * daemon writes them. */
                                r = dsm_checkpoint_delta(s);
                                deltas += r >= 0;
                                if (r == -ESTALE)
                                        continue;       /* no base yet: nothing written */
                        } else if (what == 1) {
                                r = dsm_clean(s, (unsigned)(tu_rand(&rs) % 80));
                        } else if (what == 2) {
                                r = dsm_sync(s);
                                syncs++;
                        } else {
                                r = random_txn(s, &pending, &rs, sync);
                                txns++;
                                if (r == -EIO)
                                        doubt = true;
                                if (r == 0 && sync) {
                                        durable = pending;
                                        nhist = 0;
                                } else if (r == 0) {
                                        hist[nhist++] = pending;
                                        nosync++;
                                }
                                if (r == 0)
                                        continue;
                        }
                        if (r >= 0) {
                                /* A checkpoint (full or delta), cleaner pass
                                 * or sync flushed everything. */
                                if (nhist)
                                        durable = hist[nhist - 1];
                                nhist = 0;
                                continue;
                        }
                        ck_assert_msg(r == -EIO && dsm_faultio_crashed(f) != killed,
                                      "seed %llu epoch %d: unexpected error %d", (unsigned long long)seed, epoch, r);
                        break;
                }
                dsm_close(s);
                dsm_faultio_reboot(f);
                if (killed)
                        kills++;
                else
                        crashes++;
        }
        fprintf(stderr, "# %s: %d power losses, %d process crashes, %d transactions (%d without flush), "
                "%d syncs, %d delta checkpoints, %d recoveries lost unflushed commits\n", name, crashes, kills, txns,
                nosync, syncs, deltas, rolled_back);
        ck_assert_int_ge(txns, 4 * epochs);     /* 1000 in 250 epochs */
        dsm_faultio_free(f);
}

START_TEST(test_random_crashes)
{
        run_crashes("crash", 0);
}
END_TEST

START_TEST(test_process_crash_then_power_loss)
{
        run_crashes("kill", 50);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("crash");
        TCase *tc = tcase_create("power-loss");

        tcase_set_timeout(tc, 900);
        tcase_add_test(tc, test_random_crashes);
        tcase_add_test(tc, test_process_crash_then_power_loss);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
