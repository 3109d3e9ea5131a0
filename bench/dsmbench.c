/*
 * dsmbench.c -- the libdsm benchmark: what a commit, a log byte and a
 * recovery cost, each beside a plain-file reference measured in the same
 * run, in the same directory.
 *
 * Usage: dsmbench [--quick] DIR
 *
 * DIR is a scratch directory (bench/dsmbench.sh makes and removes one); every
 * store and reference file lives in it and is removed when its phase ends.
 * Every figure is one key=value line on stdout; progress and errors go to
 * stderr.  Exit status: 0 when every phase ran (whatever the targets say),
 * 1 on any error.
 *
 * Phases (sizes in brackets are --quick):
 *
 *  seq       1 GiB [128 MiB] as sequential 1 MiB commits: one
 *            dsm_txn_write_pages of 256 pages (the call the storage daemon
 *            makes for a 1 MiB write), then dsm_txn_commit (durable on
 *            return).
 *            Reference: a plain file written with one 1 MiB pwrite plus
 *            fdatasync per MiB.  The two take turns every 4 MiB (ABBA), so
 *            a slow spell of a shared disk hits both alike; each side's
 *            figure is its total MiB over the sum of its own turns.  ->
 *            seq_commit_mib_s, seq_raw_mib_s, seq_ratio; meta_ratio_1m from
 *            dsm_get_stats of that store.
 *  rand4k    1, 4 and 16 committer threads for 5 s [1.5 s] each, on a fresh
 *            store each time; a commit is one whole page at page = random %
 *            262144 (a 1 GiB space) of obj = thread id.  A run also stops
 *            after 1 GiB [256 MiB] of page data, to bound the disk used.
 *            Reference: one thread doing 4 KiB pwrite at a random page of a
 *            sparse 1 GiB file plus fdatasync (each write allocates a block,
 *            as each commit extends the log), for the same 5 s [1.5 s] in
 *            all, in three slices, one before each store run.  ->
 *            rand4k_commits_s_N, rand4k_raw_fsyncs_s,
 *            rand4k_flushes_per_commit_N (dsm_stats flushes / commits:
 *            group commit); meta_ratio_4k_1page from the 1-thread run.
 *  meta4k    1024 [256] commits of 16 random whole pages each, one thread:
 *            -> meta_ratio_4k.
 *  recovery  a 4 GiB [512 MiB] store of sequential 1 MiB commits and no
 *            checkpoint, closed, then the reference: a plain file of the
 *            store's size (the sum of its segment files).  Four cold reads
 *            (sync; echo 3 > /proc/sys/vm/drop_caches before each) in ABBA
 *            order: dsm_open (full replay, every checksum verified; the
 *            replay callback counts the commits), the plain file read with
 *            4 MiB reads under the POSIX_FADV_SEQUENTIAL hint libdsm gives
 *            its segments, the plain file again, dsm_open again; each side
 *            keeps its faster read, so that a slow spell of a shared disk
 *            does not decide the ratio.  Then open, dsm_checkpoint, close,
 *            drop caches, dsm_open timed again.  -> recovery_mib_s,
 *            recovery_raw_mib_s, recovery_ratio, restart_ms,
 *            restart_recovery_bytes, recovery_cache=cold|warm (warm: the
 *            cache could not be dropped).
 *
 * Also printed, for information: mode, recovery_build_mib_s (1 MiB commits
 * while building that store), recovery_store_mib, recovery_bytes
 * (dsm_stats after the full replay).
 *
 * Ratios of log metadata are deltas of dsm_get_stats counters over the
 * phase: meta_bytes_written / data_bytes_written.  Targets (printed as
 * target_<name>=pass|fail, then targets_ok and targets_passed): seq_ratio
 * >= 0.9, meta_ratio_4k <= 1/160, meta_ratio_1m <= 1/1000, recovery_ratio
 * >= 0.8, restart_ms < 1000.
 *
 * Before anything is written, the free space of DIR's filesystem must be
 * at least twice the most this run keeps on disk at once.  Memory is
 * bounded: one 1 MiB data buffer, a 4 MiB read buffer, one page per thread,
 * plus what libdsm itself allocates.  Times are CLOCK_MONOTONIC.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "dsm.h"

#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)
#define EXTENT_PAGES (MIB / DSM_PAGE_SIZE)      /* 256 pages per 1 MiB commit */
#define RAND_PAGES 262144u                      /* 1 GiB object space */
#define META4K_PAGES 16u
#define READ_CHUNK (4 * MIB)
#define MAX_THREADS 16
#define SEQ_SLICE_MIB 4                         /* store/plain-file turns in seq */
#define RAND_RAW_SLICES 3                       /* one before each store run */

struct config {
        bool quick;
        const char *dir;
        uint64_t seq_bytes;
        uint64_t rand_us;
        uint64_t rand_max_commits;      /* per run, all threads together */
        uint32_t meta4k_txns;
        uint64_t rec_bytes;
};

struct results {
        double seq_commit_mib_s, seq_raw_mib_s;
        double meta_1m, meta_4k, meta_4k_1page;
        double rand_commits_s[3], rand_flushes_per_commit[3], rand_raw_fsyncs_s;
        bool cache_cold;
        double rec_mib_s, rec_raw_mib_s, restart_ms;
};

static const unsigned rand_threads[3] = { 1, 4, 16 };

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double secs(uint64_t us)
{
        return us ? (double)us / 1e6 : 1e-6;
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        fputs("dsmbench: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

/* One figure on stdout, flushed at once so a later failure keeps it. */
static void emit(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(const char *key, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        printf("%s=", key);
        vprintf(fmt, ap);
        putchar('\n');
        va_end(ap);
        fflush(stdout);
}

/* A ratio as a plain decimal with 3 significant digits (0.00391, not
 * 3.91e-03), and its inverse as an integer under key_inv. */
static void emit_ratio(const char *key, double x)
{
        char inv[128];
        int decimals = 2;

        for (double y = x; y > 0 && y < 1 && decimals < 15; y *= 10)
                decimals++;
        emit(key, "%.*f", decimals, x);
        snprintf(inv, sizeof(inv), "%s_inv", key);
        if (x > 0)
                emit(inv, "%.0f", 1.0 / x);
        else
                emit(inv, "inf");
}

/* xorshift64*: cheap, per-thread, good enough to pick pages. */
static uint64_t rng_next(uint64_t *st)
{
        uint64_t x = *st;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *st = x;
        return x * 0x2545F4914F6CDD1DULL;
}

static void fill_random(void *buf, size_t len, uint64_t seed)
{
        uint64_t st = seed | 1, *p = buf;

        for (size_t i = 0; i < len / 8; i++)
                p[i] = rng_next(&st);
}

/* Make each page of buf distinct from the last time it was written, so no
 * filesystem could deduplicate or compress it away. */
static void stamp_pages(uint8_t *buf, size_t len, uint64_t stamp)
{
        for (size_t off = 0; off < len; off += DSM_PAGE_SIZE)
                memcpy(buf + off, &stamp, sizeof(stamp));
}

static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
        int n = snprintf(buf, len, "%s/%s", dir, name);

        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Remove a store directory (flat: segment files only) or a plain file.
 * A missing path is not an error. */
static int remove_path(const char *path)
{
        struct dirent *de;
        DIR *d;
        int r = 0;

        if (unlink(path) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -errno;
        d = opendir(path);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                char p[PATH_MAX];

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                r = path_join(p, sizeof(p), path, de->d_name);
                if (r >= 0 && unlink(p) < 0)
                        r = -errno;
                if (r < 0)
                        break;
        }
        closedir(d);
        if (r >= 0 && rmdir(path) < 0)
                r = -errno;
        return r;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
        const uint8_t *p = buf;

        while (len) {
                ssize_t n = pwrite(fd, p, len, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ENOSPC;
                p += n;
                off += (uint64_t)n;
                len -= (size_t)n;
        }
        return 0;
}

static bool cache_warned;

/* Write dirty pages back, then drop the page cache.  Returns true if the
 * cache was dropped; otherwise says why on stderr (once). */
static bool drop_caches(void)
{
        int fd, e = 0;

        sync();
        fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
                e = errno;
        } else {
                ssize_t n = write(fd, "3\n", 2);

                e = n < 0 ? errno : n != 2 ? EIO : 0;
                close(fd);
        }
        if (e && !cache_warned) {
                progress("cannot drop the page cache (/proc/sys/vm/drop_caches: %s): recovery figures are warm-cache",
                         strerror(e));
                cache_warned = true;
        }
        return !e;
}

/* Open a fresh store in dir (removing what was there). */
static int store_fresh(const char *dir, const struct dsm_options *opt, struct dsm_store **ret)
{
        int r = remove_path(dir);

        if (r < 0)
                return r;
        r = dsm_format(dir, NULL);
        if (r < 0)
                return r;
        return dsm_open(dir, opt, ret);
}

/* ---- sequential 1 MiB commits -------------------------------------------- */

/* Commit MiB first .. first + n - 1 of obj 1 (pages from first * 256 on),
 * one 1 MiB transaction each.  Adds the time taken to *us. */
static int commit_extents(struct dsm_store *s, uint8_t *buf, uint64_t first, uint64_t n, uint64_t *us)
{
        uint64_t t0 = now_us();

        for (uint64_t i = first; i < first + n; i++) {
                struct dsm_txn *t;
                int r;

                stamp_pages(buf, MIB, i);
                r = dsm_txn_begin(s, &t);
                if (r < 0)
                        return r;
                r = dsm_txn_write_pages(t, 1, i * EXTENT_PAGES, EXTENT_PAGES, buf);
                if (r < 0) {
                        dsm_txn_abort(t);
                        return r;
                }
                r = dsm_txn_commit(t, NULL, 0, NULL);
                if (r < 0)
                        return r;
        }
        *us += now_us() - t0;
        return 0;
}

/* Reference: MiB first .. first + n - 1 of a plain file, one 1 MiB pwrite
 * + fdatasync each.  Adds the time taken to *us. */
static int raw_extents(int fd, uint8_t *buf, uint64_t first, uint64_t n, uint64_t *us)
{
        uint64_t t0 = now_us();

        for (uint64_t i = first; i < first + n; i++) {
                int r;

                stamp_pages(buf, MIB, i);
                r = write_full(fd, buf, MIB, i * MIB);
                if (r >= 0 && fdatasync(fd) < 0)
                        r = -errno;
                if (r < 0)
                        return r;
        }
        *us += now_us() - t0;
        return 0;
}

/*
 * The store and the plain file take turns every SEQ_SLICE_MIB (ABBA
 * order), so that a slow spell of a shared disk hits both alike.
 */
static int bench_seq(const struct config *c, uint8_t *buf, struct results *res)
{
        char store[PATH_MAX], file[PATH_MAX];
        struct dsm_stats st0, st1;
        struct dsm_store *s = NULL;
        uint64_t raw_us = 0, us = 0, total = c->seq_bytes / MIB, done = 0;
        int fd, r;

        if (path_join(store, sizeof(store), c->dir, "seq.store") < 0 ||
            path_join(file, sizeof(file), c->dir, "seq.raw") < 0)
                return -ENAMETOOLONG;
        progress("seq: %" PRIu64 " MiB as 1 MiB commits, and as 1 MiB pwrite + fdatasync to a plain file",
                 total);
        r = store_fresh(store, NULL, &s);
        if (r < 0)
                return r;
        fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                dsm_close(s);
                return r;
        }
        dsm_get_stats(s, &st0);
        for (unsigned round = 0; r >= 0 && done < total; round++) {
                uint64_t n = total - done < SEQ_SLICE_MIB ? total - done : SEQ_SLICE_MIB;

                if (round % 2 == 0) {
                        r = raw_extents(fd, buf, done, n, &raw_us);
                        if (r >= 0)
                                r = commit_extents(s, buf, done, n, &us);
                } else {
                        r = commit_extents(s, buf, done, n, &us);
                        if (r >= 0)
                                r = raw_extents(fd, buf, done, n, &raw_us);
                }
                done += n;
        }
        dsm_get_stats(s, &st1);
        dsm_close(s);
        close(fd);
        if (r >= 0)
                r = remove_path(file);
        if (r >= 0)
                r = remove_path(store);
        if (r < 0)
                return r;
        res->seq_commit_mib_s = (double)total / secs(us);
        res->seq_raw_mib_s = (double)total / secs(raw_us);
        res->meta_1m = (double)(st1.meta_bytes_written - st0.meta_bytes_written) /
                       (double)(st1.data_bytes_written - st0.data_bytes_written);
        emit("seq_commit_mib_s", "%.1f", res->seq_commit_mib_s);
        emit("seq_raw_mib_s", "%.1f", res->seq_raw_mib_s);
        emit("seq_ratio", "%.3f", res->seq_commit_mib_s / res->seq_raw_mib_s);
        emit_ratio("meta_ratio_1m", res->meta_1m);
        return 0;
}

/* ---- random 4 KiB commits ------------------------------------------------ */

struct rand_run {
        struct dsm_store *s;
        pthread_mutex_t mtx;
        pthread_cond_t cond;
        bool go;                        /* under mtx: start committing */
        uint64_t deadline;              /* CLOCK_MONOTONIC us, set before go */
        uint64_t max_commits;
        uint64_t total;                 /* commits claimed, atomic */
        int err;                        /* first error, atomic */
};

struct rand_worker {
        struct rand_run *run;
        pthread_t thread;
        unsigned id;
        uint64_t commits;
};

static void rand_fail(struct rand_run *run, int r)
{
        int zero = 0;

        __atomic_compare_exchange_n(&run->err, &zero, r, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static void *rand_worker_main(void *arg)
{
        struct rand_worker *w = arg;
        struct rand_run *run = w->run;
        uint64_t st = 0x9E3779B97F4A7C15ULL * (w->id + 1);
        uint64_t page[DSM_PAGE_SIZE / 8];

        fill_random(page, sizeof(page), st);
        pthread_mutex_lock(&run->mtx);
        while (!run->go)
                pthread_cond_wait(&run->cond, &run->mtx);
        pthread_mutex_unlock(&run->mtx);
        while (!__atomic_load_n(&run->err, __ATOMIC_RELAXED) && now_us() < run->deadline &&
               __atomic_fetch_add(&run->total, 1, __ATOMIC_RELAXED) < run->max_commits) {
                struct dsm_txn *t;
                int r;

                page[0] = w->commits;
                r = dsm_txn_begin(run->s, &t);
                if (r >= 0) {
                        r = dsm_txn_write(t, w->id, rng_next(&st) % RAND_PAGES, 0, page, DSM_PAGE_SIZE);
                        if (r >= 0)
                                r = dsm_txn_commit(t, NULL, 0, NULL);
                        else
                                dsm_txn_abort(t);
                }
                if (r < 0) {
                        rand_fail(run, r);
                        break;
                }
                w->commits++;
        }
        return NULL;
}

/* nthreads committers on a fresh store in dir for c->rand_us.  Fills the
 * commit rate and the deltas of the store's counters. */
static int rand_commits(const struct config *c, const char *dir, unsigned nthreads, double *ret_rate,
                        struct dsm_stats *ret_delta)
{
        struct rand_worker w[MAX_THREADS];
        struct rand_run run = { .max_commits = c->rand_max_commits };
        struct dsm_stats st0, st1;
        uint64_t t0, us, total = 0;
        unsigned started;
        int r;

        assert(nthreads <= MAX_THREADS);
        r = store_fresh(dir, NULL, &run.s);
        if (r < 0)
                return r;
        pthread_mutex_init(&run.mtx, NULL);
        pthread_cond_init(&run.cond, NULL);
        dsm_get_stats(run.s, &st0);
        for (started = 0; started < nthreads; started++) {
                w[started] = (struct rand_worker){ .run = &run, .id = started };
                r = -pthread_create(&w[started].thread, NULL, rand_worker_main, &w[started]);
                if (r < 0) {
                        rand_fail(&run, r);     /* the started ones stop at once */
                        break;
                }
        }
        pthread_mutex_lock(&run.mtx);
        t0 = now_us();
        run.deadline = t0 + c->rand_us;
        run.go = true;
        pthread_cond_broadcast(&run.cond);
        pthread_mutex_unlock(&run.mtx);
        for (unsigned i = 0; i < started; i++) {
                pthread_join(w[i].thread, NULL);
                total += w[i].commits;
        }
        us = now_us() - t0;
        pthread_cond_destroy(&run.cond);
        pthread_mutex_destroy(&run.mtx);
        dsm_get_stats(run.s, &st1);
        dsm_close(run.s);
        if (run.err < 0)
                return run.err;
        *ret_rate = (double)total / secs(us);
        memset(ret_delta, 0, sizeof(*ret_delta));
        ret_delta->commits = st1.commits - st0.commits;
        ret_delta->flushes = st1.flushes - st0.flushes;
        ret_delta->data_bytes_written = st1.data_bytes_written - st0.data_bytes_written;
        ret_delta->meta_bytes_written = st1.meta_bytes_written - st0.meta_bytes_written;
        return remove_path(dir);
}

/* Reference: one thread, 4 KiB pwrite at a random page of a sparse 1 GiB
 * file + fdatasync, taken in slices between the store runs. */
struct raw_rand {
        int fd;
        uint64_t rng;
        uint64_t page[DSM_PAGE_SIZE / 8];
        uint64_t n;                     /* writes so far */
        uint64_t us;                    /* time they took */
};

static int raw_rand_slice(struct raw_rand *rr, uint64_t dur_us, uint64_t max)
{
        uint64_t t0 = now_us();
        int r = 0;

        while (r >= 0 && now_us() - t0 < dur_us && rr->n < max) {
                rr->page[0] = rr->n;
                r = write_full(rr->fd, rr->page, DSM_PAGE_SIZE, (rng_next(&rr->rng) % RAND_PAGES) * DSM_PAGE_SIZE);
                if (r >= 0 && fdatasync(rr->fd) < 0)
                        r = -errno;
                rr->n++;
        }
        rr->us += now_us() - t0;
        return r;
}

/*
 * The plain-file reference runs for c->rand_us in all, in RAND_RAW_SLICES
 * slices: one before each store run, so a slow spell of a shared disk
 * shows in both.
 */
static int bench_rand(const struct config *c, struct results *res)
{
        char store[PATH_MAX], file[PATH_MAX], key[64];
        struct raw_rand rr = { .rng = 0x243F6A8885A308D3ULL };
        int r = 0;

        if (path_join(store, sizeof(store), c->dir, "rand.store") < 0 ||
            path_join(file, sizeof(file), c->dir, "rand.raw") < 0)
                return -ENAMETOOLONG;
        fill_random(rr.page, sizeof(rr.page), rr.rng);
        rr.fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (rr.fd < 0)
                return -errno;
        if (ftruncate(rr.fd, (off_t)RAND_PAGES * DSM_PAGE_SIZE) < 0)
                r = -errno;
        for (unsigned i = 0; r >= 0 && i < 3; i++) {
                struct dsm_stats d;

                progress("rand4k: plain file, 4 KiB pwrite + fdatasync, %.1f s", secs(c->rand_us / RAND_RAW_SLICES));
                r = raw_rand_slice(&rr, c->rand_us / RAND_RAW_SLICES, c->rand_max_commits);
                if (r < 0)
                        break;
                progress("rand4k: store, %u committer thread(s), %.1f s", rand_threads[i], secs(c->rand_us));
                r = rand_commits(c, store, rand_threads[i], &res->rand_commits_s[i], &d);
                if (r < 0)
                        break;
                res->rand_flushes_per_commit[i] = d.commits ? (double)d.flushes / (double)d.commits : 0;
                snprintf(key, sizeof(key), "rand4k_commits_s_%u", rand_threads[i]);
                emit(key, "%.0f", res->rand_commits_s[i]);
                snprintf(key, sizeof(key), "rand4k_flushes_per_commit_%u", rand_threads[i]);
                emit(key, "%.3f", res->rand_flushes_per_commit[i]);
                if (rand_threads[i] == 1) {
                        res->meta_4k_1page = (double)d.meta_bytes_written / (double)d.data_bytes_written;
                        emit_ratio("meta_ratio_4k_1page", res->meta_4k_1page);
                }
        }
        close(rr.fd);
        if (r >= 0)
                r = remove_path(file);
        if (r < 0)
                return r;
        res->rand_raw_fsyncs_s = (double)rr.n / secs(rr.us);
        emit("rand4k_raw_fsyncs_s", "%.0f", res->rand_raw_fsyncs_s);
        return 0;
}

/* ---- log metadata of 16-page commits ---------------------------------------- */

static int bench_meta4k(const struct config *c, struct results *res)
{
        char store[PATH_MAX];
        uint64_t st = 0xB7E151628AED2A6BULL, page[DSM_PAGE_SIZE / 8];
        struct dsm_stats st0, st1;
        struct dsm_store *s;
        int r;

        if (path_join(store, sizeof(store), c->dir, "meta4k.store") < 0)
                return -ENAMETOOLONG;
        progress("meta4k: store, %u commits of %u random pages", c->meta4k_txns, META4K_PAGES);
        fill_random(page, sizeof(page), st);
        r = store_fresh(store, NULL, &s);
        if (r < 0)
                return r;
        dsm_get_stats(s, &st0);
        for (uint32_t i = 0; r >= 0 && i < c->meta4k_txns; i++) {
                struct dsm_txn *t;

                r = dsm_txn_begin(s, &t);
                if (r < 0)
                        break;
                for (uint32_t j = 0; r >= 0 && j < META4K_PAGES; j++) {
                        page[0] = (uint64_t)i << 8 | j;
                        r = dsm_txn_write(t, 0, rng_next(&st) % RAND_PAGES, 0, page, DSM_PAGE_SIZE);
                }
                if (r >= 0)
                        r = dsm_txn_commit(t, NULL, 0, NULL);
                else
                        dsm_txn_abort(t);
        }
        dsm_get_stats(s, &st1);
        dsm_close(s);
        if (r < 0)
                return r;
        res->meta_4k = (double)(st1.meta_bytes_written - st0.meta_bytes_written) /
                       (double)(st1.data_bytes_written - st0.data_bytes_written);
        emit_ratio("meta_ratio_4k", res->meta_4k);
        return remove_path(store);
}

/* ---- recovery ----------------------------------------------------------------- */

struct replay_count {
        uint64_t commits;
        uint64_t ckpt_chunks;
};

static int count_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct replay_count *rc = ctx;

        if (kind == DSM_REPLAY_COMMIT)
                rc->commits++;
        else
                rc->ckpt_chunks++;
        return 0;
}

/* The reference file of the recovery phase: nbytes of the same data,
 * written untimed and flushed. */
static int raw_file_write(const char *path, uint8_t *buf, uint64_t nbytes)
{
        int fd, r = 0;

        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        for (uint64_t off = 0; r >= 0 && off < nbytes; off += MIB) {
                stamp_pages(buf, MIB, off);
                r = write_full(fd, buf, nbytes - off < MIB ? (size_t)(nbytes - off) : MIB, off);
        }
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

/* Reference: read the file sequentially with 4 MiB reads.  Fills *ret_us
 * with the time taken. */
static int raw_file_read(const char *path, uint64_t nbytes, uint64_t *ret_us)
{
        uint64_t t0, off = 0;
        uint8_t *rbuf;
        int fd, r = 0;

        rbuf = malloc(READ_CHUNK);
        if (!rbuf)
                return -ENOMEM;
        t0 = now_us();
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                r = -errno;
        else
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        while (r >= 0 && off < nbytes) {
                ssize_t n = pread(fd, rbuf, READ_CHUNK, (off_t)off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (n == 0)
                        r = -EIO;       /* shorter than we wrote it */
                else
                        off += (uint64_t)n;
        }
        if (r >= 0)
                *ret_us = now_us() - t0;
        if (fd >= 0)
                close(fd);
        free(rbuf);
        return r;
}

/* dsm_open timed, then a check that it replayed want_commits commits and
 * ends at seq want_seq with no damage.  Fills *ret_us and *ret_st. */
static int timed_open(const char *store, uint64_t want_commits, uint64_t want_seq, uint64_t *ret_us,
                      struct dsm_stats *ret_st)
{
        struct replay_count rc = { 0 };
        struct dsm_options opt = { .replay = count_replay, .replay_ctx = &rc };
        struct dsm_store *s;
        uint64_t t0 = now_us(), us;
        int r;

        r = dsm_open(store, &opt, &s);
        us = now_us() - t0;
        if (r < 0)
                return r;
        dsm_get_stats(s, ret_st);
        dsm_close(s);
        if (rc.commits != want_commits || ret_st->seq != want_seq || ret_st->damaged_extents) {
                progress("recovery: %s: replayed %" PRIu64 " commits to seq %" PRIu64 " with %" PRIu64
                         " damaged extents, expected %" PRIu64 " commits to seq %" PRIu64 " and none",
                         store, rc.commits, ret_st->seq, ret_st->damaged_extents, want_commits, want_seq);
                return -EBADMSG;
        }
        *ret_us = us;
        return 0;
}

/*
 * Build the store and, right after it, the reference file of the same size.
 * Then two rounds of cold reads in ABBA order (dsm_open, plain file; plain
 * file, dsm_open), each side keeping its faster round: a shared disk's slow
 * spells then hit both alike.  Then open, checkpoint, close, and the timed
 * restart.
 */
static int bench_recovery(const struct config *c, uint8_t *buf, struct results *res)
{
        char store[PATH_MAX], file[PATH_MAX];
        struct dsm_store *s = NULL;
        struct dsm_stats st, rec_st = { 0 };
        uint64_t us = 0, size, ncommits = c->rec_bytes / MIB, best = UINT64_MAX, raw_best = UINT64_MAX;
        bool cold = true;
        int r;

        if (path_join(store, sizeof(store), c->dir, "recovery.store") < 0 ||
            path_join(file, sizeof(file), c->dir, "recovery.raw") < 0)
                return -ENAMETOOLONG;
        progress("recovery: building a %" PRIu64 " MiB store of 1 MiB commits", ncommits);
        r = store_fresh(store, NULL, &s);
        if (r < 0)
                return r;
        r = commit_extents(s, buf, 0, ncommits, &us);
        dsm_get_stats(s, &st);
        dsm_close(s);
        s = NULL;
        if (r < 0)
                return r;
        size = st.log_bytes;
        emit("recovery_build_mib_s", "%.1f", (double)ncommits / secs(us));
        emit("recovery_store_mib", "%.1f", (double)size / MIB);
        progress("recovery: writing the %.1f MiB plain reference file", (double)size / MIB);
        r = raw_file_write(file, buf, size);
        if (r < 0)
                return r;

        for (int i = 0; i < 4; i++) {
                bool is_store = i == 0 || i == 3;

                progress("recovery: cold read %d of 4: %s", i + 1,
                         is_store ? "dsm_open, full replay" : "plain file, 4 MiB reads");
                cold &= drop_caches();
                if (is_store) {
                        r = timed_open(store, ncommits, ncommits, &us, &st);
                        if (r >= 0 && us < best) {
                                best = us;
                                rec_st = st;
                        }
                } else {
                        r = raw_file_read(file, size, &us);
                        if (r >= 0 && us < raw_best)
                                raw_best = us;
                }
                if (r < 0)
                        return r;
        }
        r = remove_path(file);
        if (r < 0)
                return r;
        res->cache_cold = cold;
        res->rec_mib_s = (double)size / MIB / secs(best);
        res->rec_raw_mib_s = (double)size / MIB / secs(raw_best);
        emit("recovery_cache", "%s", cold ? "cold" : "warm");
        emit("recovery_mib_s", "%.1f", res->rec_mib_s);
        emit("recovery_raw_mib_s", "%.1f", res->rec_raw_mib_s);
        emit("recovery_ratio", "%.3f", res->rec_mib_s / res->rec_raw_mib_s);
        emit("recovery_bytes", "%" PRIu64, rec_st.recovery_bytes);

        progress("recovery: dsm_checkpoint, then a cold dsm_open");
        r = dsm_open(store, NULL, &s);
        if (r < 0)
                return r;
        r = dsm_checkpoint(s);
        dsm_close(s);
        if (r < 0)
                return r;
        drop_caches();
        r = timed_open(store, 0, ncommits, &us, &st);
        if (r < 0)
                return r;
        res->restart_ms = (double)us / 1000.0;
        emit("restart_ms", "%.1f", res->restart_ms);
        emit("restart_recovery_bytes", "%" PRIu64, st.recovery_bytes);
        return remove_path(store);
}

/* ---- main --------------------------------------------------------------------- */

static void emit_targets(const struct results *res)
{
        const struct {
                const char *name;
                bool ok;
        } t[] = {
                { "seq_ratio", res->seq_commit_mib_s / res->seq_raw_mib_s >= 0.9 },
                { "meta_ratio_4k", res->meta_4k <= 1.0 / 160 },
                { "meta_ratio_1m", res->meta_1m <= 1.0 / 1000 },
                { "recovery_ratio", res->rec_mib_s / res->rec_raw_mib_s >= 0.8 },
                { "restart_ms", res->restart_ms < 1000 },
        };
        unsigned n = sizeof(t) / sizeof(t[0]), passed = 0;
        char key[64];

        for (unsigned i = 0; i < n; i++) {
                snprintf(key, sizeof(key), "target_%s", t[i].name);
                emit(key, "%s", t[i].ok ? "pass" : "fail");
                passed += t[i].ok;
        }
        emit("targets_ok", "%s", passed == n ? "yes" : "no");
        emit("targets_passed", "%u/%u", passed, n);
}

/* The most this run keeps on disk at once: the biggest phase. */
static uint64_t disk_needed(const struct config *c)
{
        uint64_t seq = 2 * c->seq_bytes;
        uint64_t rand = c->rand_max_commits * (DSM_PAGE_SIZE + 128) + c->rand_max_commits * DSM_PAGE_SIZE;
        uint64_t meta = (uint64_t)c->meta4k_txns * META4K_PAGES * (DSM_PAGE_SIZE + 64);
        uint64_t rec = 2 * c->rec_bytes;
        uint64_t need = seq > rand ? seq : rand;

        need = need > meta ? need : meta;
        need = need > rec ? need : rec;
        return need + DSM_SEGMENT_SIZE_DEFAULT;        /* a partly filled segment, headers */
}

static int check_space(const struct config *c)
{
        uint64_t need = disk_needed(c), avail;
        struct statvfs sv;

        if (statvfs(c->dir, &sv) < 0) {
                int r = -errno;

                progress("statvfs %s: %s", c->dir, strerror(-r));
                return r;
        }
        avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (avail < 2 * need) {
                progress("not enough free space in %s: %" PRIu64 " MiB free, need %" PRIu64
                         " MiB (twice the %" PRIu64 " MiB this run keeps on disk at once)",
                         c->dir, avail / MIB, 2 * need / MIB, need / MIB);
                return -ENOSPC;
        }
        return 0;
}

static void usage(FILE *f)
{
        fputs("usage: dsmbench [--quick] DIR\n"
              "Benchmark libdsm in the scratch directory DIR; figures as key=value on stdout.\n",
              f);
}

int main(int argc, char **argv)
{
        struct config c = {
                .seq_bytes = GIB,
                .rand_us = 5000000,
                .rand_max_commits = GIB / DSM_PAGE_SIZE,
                .meta4k_txns = 1024,
                .rec_bytes = 4 * GIB,
        };
        struct results res = { 0 };
        struct stat sb;
        uint8_t *buf = NULL;
        const char *phase = "setup";
        int r;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--quick")) {
                        c.quick = true;
                } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                        usage(stdout);
                        return 0;
                } else if (argv[i][0] == '-' || c.dir) {
                        usage(stderr);
                        return 1;
                } else {
                        c.dir = argv[i];
                }
        }
        if (!c.dir) {
                usage(stderr);
                return 1;
        }
        if (c.quick) {
                c.seq_bytes = 128 * MIB;
                c.rand_us = 1500000;
                c.rand_max_commits = 256 * MIB / DSM_PAGE_SIZE;
                c.meta4k_txns = 256;
                c.rec_bytes = 512 * MIB;
        }
        if (stat(c.dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
                progress("%s: not a directory", c.dir);
                return 1;
        }
        if (check_space(&c) < 0)
                return 1;       /* said why */
        buf = malloc(MIB);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        fill_random(buf, MIB, 0x6A09E667F3BCC908ULL);
        emit("mode", "%s", c.quick ? "quick" : "full");

        phase = "seq";
        r = bench_seq(&c, buf, &res);
        if (r < 0)
                goto out;
        phase = "rand4k";
        r = bench_rand(&c, &res);
        if (r < 0)
                goto out;
        phase = "meta4k";
        r = bench_meta4k(&c, &res);
        if (r < 0)
                goto out;
        phase = "recovery";
        r = bench_recovery(&c, buf, &res);
        if (r < 0)
                goto out;
        emit_targets(&res);
out:
        free(buf);
        if (r < 0) {
                progress("%s phase failed in %s: %s", phase, c.dir, strerror(-r));
                return 1;
        }
        return 0;
}
