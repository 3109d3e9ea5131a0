/*
 * check_faultio.c -- unit tests of the fault-injecting in-memory I/O layer
 * (dsmcore/dsm_faultio.c): every operation and its errors, durability
 * across power loss (synced data survives, unsynced data, creates and
 * unlinks without syncdir do not), torn power loss (only prefix-per-write
 * states, synced bytes intact, deterministic per seed), injected failures
 * (once and for ever), short writes, crash_at, reboot and corrupt.
 */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_faultio.h"
#include "testutil.h"

static const struct dsm_io *io = &dsm_faultio_ops;

/* One test's world: an I/O layer and a directory made in it. */
struct fx {
        struct dsm_faultio *f;
        uint64_t rng;
        char dir[1024];
        char path[4][1100];
};

/* Set up with a given seed (silent: for loops of many trials). */
static void fx_setup(struct fx *x, uint64_t seed)
{
        x->rng = seed;
        x->f = dsm_faultio_new(seed);
        ck_assert_ptr_nonnull(x->f);
        ck_assert_int_lt(snprintf(x->dir, sizeof(x->dir), "%s/store", tu_tmpdir()),
                         (int)sizeof(x->dir));
        ck_assert_int_eq(io->mkdir(x->f, x->dir, 0755), 0);
        for (int i = 0; i < 4; i++)
                snprintf(x->path[i], sizeof(x->path[i]), "%s/f%d", x->dir, i);
}

static void fx_init(struct fx *x, const char *what)
{
        fx_setup(x, tu_seed(what));
}

static void fx_done(struct fx *x)
{
        dsm_faultio_free(x->f);
}

/* A non-zero byte that identifies (write id, file offset): two ids less
 * than 255 apart never give the same byte at the same offset (131 is prime
 * to 255). */
static uint8_t pat(unsigned id, uint64_t off)
{
        return (uint8_t)(1 + (id * 131 + off * 7 + (off >> 8)) % 255);
}

static void fill(uint8_t *buf, size_t len, unsigned id, uint64_t off)
{
        for (size_t i = 0; i < len; i++)
                buf[i] = pat(id, off + i);
}

static void write_pat(struct dsm_faultio *f, int fd, unsigned id, uint64_t off, size_t len)
{
        uint8_t *buf = malloc(len ? len : 1);

        ck_assert_ptr_nonnull(buf);
        fill(buf, len, id, off);
        ck_assert_int_eq(io->pwrite(f, fd, buf, len, off), (ssize_t)len);
        free(buf);
}

/* Read a whole file (opened read-only) into a malloc'ed buffer. */
static uint8_t *read_file(struct dsm_faultio *f, const char *path, uint64_t *ret_size)
{
        uint64_t size;
        uint8_t *buf;
        int fd;

        fd = io->open(f, path, O_RDONLY, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->fsize(f, fd, &size), 0);
        ck_assert_int_eq(dsm_faultio_size(f, path), (int64_t)size);
        buf = malloc(size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(io->pread(f, fd, buf, size + 1, 0), (ssize_t)size);
        ck_assert_int_eq(io->close(f, fd), 0);
        *ret_size = size;
        return buf;
}

static void assert_pat(const uint8_t *buf, unsigned id, uint64_t off, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (buf[i] != pat(id, off + i))
                        ck_abort_msg("byte %llu: %u, want %u (write %u)",
                                     (unsigned long long)(off + i), buf[i],
                                     pat(id, off + i), id);
}

static void assert_zero(const uint8_t *buf, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (buf[i])
                        ck_abort_msg("byte %zu is %u, want 0", i, buf[i]);
}

/* Create path with len bytes of pattern id, synced and its dir synced. */
static void make_durable(struct fx *x, const char *path, unsigned id, size_t len)
{
        int fd = io->open(x->f, path, O_RDWR | O_CREAT | O_EXCL, 0644);

        ck_assert_int_ge(fd, 0);
        write_pat(x->f, fd, id, 0, len);
        ck_assert_int_eq(io->fdatasync(x->f, fd), 0);
        ck_assert_int_eq(io->syncdir(x->f, x->dir), 0);
        ck_assert_int_eq(io->close(x->f, fd), 0);
}

static void crash_and_reboot(struct fx *x, bool torn)
{
        dsm_faultio_power_loss(x->f, torn);
        ck_assert(dsm_faultio_crashed(x->f));
        dsm_faultio_reboot(x->f);
        ck_assert(!dsm_faultio_crashed(x->f));
}

/* ---- plain I/O -------------------------------------------------------- */

START_TEST(test_read_write_size)
{
        struct fx x;
        uint8_t buf[20000], *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio rw");
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDWR, 0), -ENOENT);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), -ENOENT);
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->fsize(x.f, fd, &size), 0);
        ck_assert_uint_eq(size, 0);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 10, 0), 0);

        write_pat(x.f, fd, 1, 0, 100);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 100);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 100, 0), 100);
        assert_pat(buf, 1, 0, 100);
        /* Short read at the end, 0 past it. */
        ck_assert_int_eq(io->pread(x.f, fd, buf, 100, 60), 40);
        assert_pat(buf, 1, 60, 40);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 10, 100), 0);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 10, 5000), 0);
        /* A zero-length write changes nothing. */
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 0, 500), 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 100);

        /* A write past the end leaves a hole of zeros. */
        write_pat(x.f, fd, 2, 10000, 3000);
        ck_assert_int_eq(io->fsize(x.f, fd, &size), 0);
        ck_assert_uint_eq(size, 13000);
        memset(buf, 0xff, sizeof(buf));
        ck_assert_int_eq(io->pread(x.f, fd, buf, sizeof(buf), 0), 13000);
        assert_pat(buf, 1, 0, 100);
        assert_zero(buf + 100, 9900);
        assert_pat(buf + 10000, 2, 10000, 3000);

        /* Overwrite in the middle. */
        write_pat(x.f, fd, 3, 50, 100);
        ck_assert_int_eq(io->close(x.f, fd), 0);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 13000);
        assert_pat(img, 1, 0, 50);
        assert_pat(img + 50, 3, 50, 100);
        assert_zero(img + 150, 9850);
        free(img);

        /* A closed fd is gone. */
        ck_assert_int_eq(io->close(x.f, fd), -EBADF);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 1, 0), -EBADF);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 1, 0), -EBADF);
        ck_assert_int_eq(io->fsize(x.f, fd, &size), -EBADF);
        ck_assert_int_eq(io->fdatasync(x.f, fd), -EBADF);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 0), -EBADF);
        ck_assert_int_eq(io->close(x.f, -1), -EBADF);
        ck_assert_int_eq(io->close(x.f, 1000000), -EBADF);
        ck_assert_ptr_null(dsm_faultio_ops.advise_seq);
        fx_done(&x);
}
END_TEST

START_TEST(test_open_flags)
{
        struct fx x;
        uint8_t buf[64];
        uint64_t size;
        int fd, ro, wo;

        fx_init(&x, "faultio open");
        make_durable(&x, x.path[0], 1, 64);

        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDWR | O_CREAT | O_EXCL, 0644), -EEXIST);
        /* O_CREAT without O_EXCL opens the existing file, untouched. */
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 64, 0), 64);
        assert_pat(buf, 1, 0, 64);

        /* Read-only and write-only descriptors. */
        ro = io->open(x.f, x.path[0], O_RDONLY, 0);
        wo = io->open(x.f, x.path[0], O_WRONLY, 0);
        ck_assert_int_ge(ro, 0);
        ck_assert_int_ge(wo, 0);
        ck_assert_int_ne(ro, fd);
        ck_assert_int_ne(ro, wo);
        ck_assert_int_eq(io->pwrite(x.f, ro, buf, 1, 0), -EBADF);
        ck_assert_int_eq(io->ftruncate(x.f, ro, 0), -EINVAL);
        ck_assert_int_eq(io->pread(x.f, wo, buf, 1, 0), -EBADF);
        ck_assert_int_eq(io->pwrite(x.f, wo, "A", 1, 0), 1);
        /* Every descriptor sees the same file. */
        ck_assert_int_eq(io->pread(x.f, ro, buf, 1, 0), 1);
        ck_assert_uint_eq(buf[0], 'A');
        ck_assert_int_eq(io->fsize(x.f, ro, &size), 0);
        ck_assert_uint_eq(size, 64);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_ACCMODE, 0), -EINVAL);

        /* O_TRUNC empties the file. */
        ck_assert_int_ge(io->close(x.f, wo), 0);
        wo = io->open(x.f, x.path[0], O_WRONLY | O_TRUNC, 0);
        ck_assert_int_ge(wo, 0);
        ck_assert_int_eq(io->fsize(x.f, ro, &size), 0);
        ck_assert_uint_eq(size, 0);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 64, 0), 0);

        /* Paths: a directory, a missing parent, a file as parent. */
        ck_assert_int_eq(io->open(x.f, x.dir, O_RDONLY, 0), -EISDIR);
        snprintf((char *)buf, sizeof(buf), "/nonexistent-%d/x", 7);
        ck_assert_int_eq(io->open(x.f, (char *)buf, O_RDWR | O_CREAT, 0644), -ENOENT);
        {
                char p[PATH_MAX + 16];

                snprintf(p, sizeof(p), "%s/sub", x.path[0]);
                ck_assert_int_eq(io->open(x.f, p, O_RDWR | O_CREAT, 0644), -ENOTDIR);
                ck_assert_int_eq(io->open(x.f, "", O_RDONLY, 0), -ENOENT);
                memset(p, 'a', PATH_MAX + 10);
                p[PATH_MAX + 10] = '\0';
                ck_assert_int_eq(io->open(x.f, p, O_RDWR | O_CREAT, 0644), -ENAMETOOLONG);
                /* Spellings of the same path reach the same file. */
                snprintf(p, sizeof(p), "%s//./f0", x.dir);
                ck_assert_int_eq(io->pwrite(x.f, fd, "xyz", 3, 0), 3);
                ck_assert_int_eq(dsm_faultio_size(x.f, p), 3);
                snprintf(p, sizeof(p), "%s/", x.path[0]);
                ck_assert_int_eq(dsm_faultio_size(x.f, p), 3);
        }
        /* Relative names live in ".". */
        wo = io->open(x.f, "rel", O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(wo, 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, "./rel"), 0);
        fx_done(&x);
}
END_TEST

START_TEST(test_ftruncate)
{
        struct fx x;
        uint8_t buf[8192];
        uint64_t size;
        int fd;

        fx_init(&x, "faultio ftruncate");
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        write_pat(x.f, fd, 1, 0, 4096);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);    /* the old bytes are durable */

        /* Shrink, then grow again: the cut bytes come back as zeros. */
        ck_assert_int_eq(io->ftruncate(x.f, fd, 1000), 0);
        ck_assert_int_eq(io->fsize(x.f, fd, &size), 0);
        ck_assert_uint_eq(size, 1000);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 8192), 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 8192);
        ck_assert_int_eq(io->pread(x.f, fd, buf, sizeof(buf), 0), 8192);
        assert_pat(buf, 1, 0, 1000);
        assert_zero(buf + 1000, 8192 - 1000);

        /* The same holds for the durable image once synced: the old
         * durable bytes past 1000 are gone. */
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);
        ck_assert_int_eq(io->syncdir(x.f, x.dir), 0);
        crash_and_reboot(&x, false);
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->pread(x.f, fd, buf, sizeof(buf), 0), 8192);
        assert_pat(buf, 1, 0, 1000);
        assert_zero(buf + 1000, 8192 - 1000);

        /* Growing by ftruncate alone, and to 0. */
        ck_assert_int_eq(io->ftruncate(x.f, fd, 100000), 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 100000);
        ck_assert_int_eq(io->pread(x.f, fd, buf, 100, 99950), 50);
        assert_zero(buf, 50);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 0), 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 0);
        ck_assert_int_eq(io->ftruncate(x.f, fd, UINT64_MAX), -EFBIG);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 10, UINT64_MAX - 5), -EFBIG);
        fx_done(&x);
}
END_TEST

struct names {
        char got[16][64];
        int n;
        int stop_at;                    /* return -ECANCELED at this call */
        struct dsm_faultio *f;
        const char *dir;
};

static int name_cb(void *arg, const char *name)
{
        struct names *nm = arg;
        char p[PATH_MAX];
        int fd;

        if (nm->n == nm->stop_at)
                return -ECANCELED;
        ck_assert_int_lt(nm->n, 16);
        snprintf(nm->got[nm->n++], sizeof(nm->got[0]), "%s", name);
        /* Calling back into the layer from the callback must not deadlock. */
        snprintf(p, sizeof(p), "%s/%s", nm->dir, name);
        fd = io->open(nm->f, p, O_RDONLY, 0);
        if (fd >= 0)
                ck_assert_int_eq(io->close(nm->f, fd), 0);
        else
                ck_assert_int_eq(fd, -EISDIR);
        return 0;
}

START_TEST(test_dirs)
{
        struct fx x;
        struct names nm = { .stop_at = -1 };
        char sub[PATH_MAX + 8], other[PATH_MAX + 8];
        int fd;

        fx_init(&x, "faultio dirs");
        nm.f = x.f;
        nm.dir = x.dir;
        ck_assert_int_eq(io->mkdir(x.f, x.dir, 0755), -EEXIST);
        snprintf(sub, sizeof(sub), "%s/sub", x.dir);
        snprintf(other, sizeof(other), "%s/sub/inner", x.dir);
        ck_assert_int_eq(io->mkdir(x.f, sub, 0755), 0);
        /* Files in this dir (created out of order) and one in a subdir. */
        make_durable(&x, x.path[2], 2, 10);
        make_durable(&x, x.path[0], 0, 10);
        fd = io->open(x.f, x.path[1], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->close(x.f, fd), 0);
        fd = io->open(x.f, other, O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->close(x.f, fd), 0);
        ck_assert_int_eq(io->unlink(x.f, x.path[2]), 0);

        ck_assert_int_eq(io->listdir(x.f, x.dir, name_cb, &nm), 0);
        ck_assert_int_eq(nm.n, 3);
        ck_assert_str_eq(nm.got[0], "f0");
        ck_assert_str_eq(nm.got[1], "f1");
        ck_assert_str_eq(nm.got[2], "sub");

        /* The callback's error stops the listing and is returned. */
        nm.n = 0;
        nm.stop_at = 1;
        ck_assert_int_eq(io->listdir(x.f, x.dir, name_cb, &nm), -ECANCELED);
        ck_assert_int_eq(nm.n, 1);

        /* Errors of the path operations. */
        ck_assert_int_eq(io->mkdir(x.f, x.path[0], 0755), -EEXIST);
        snprintf(other, sizeof(other), "%s/d", x.path[0]);
        ck_assert_int_eq(io->mkdir(x.f, other, 0755), -ENOTDIR);
        ck_assert_int_eq(io->listdir(x.f, other, name_cb, &nm), -ENOENT);
        ck_assert_int_eq(io->listdir(x.f, x.path[0], name_cb, &nm), -ENOTDIR);
        ck_assert_int_eq(io->syncdir(x.f, other), -ENOENT);
        ck_assert_int_eq(io->syncdir(x.f, x.path[0]), -ENOTDIR);
        ck_assert_int_eq(io->unlink(x.f, x.path[2]), -ENOENT);
        ck_assert_int_eq(io->unlink(x.f, x.path[3]), -ENOENT);
        ck_assert_int_eq(io->unlink(x.f, sub), -EISDIR);
        ck_assert_int_eq(io->unlink(x.f, other), -ENOTDIR);
        ck_assert_int_eq(io->mkdir(x.f, "/", 0755), -EEXIST);

        /* An empty directory lists nothing. */
        snprintf(other, sizeof(other), "%s/empty", x.dir);
        ck_assert_int_eq(io->mkdir(x.f, other, 0755), 0);
        nm.n = 0;
        nm.stop_at = -1;
        ck_assert_int_eq(io->listdir(x.f, other, name_cb, &nm), 0);
        ck_assert_int_eq(nm.n, 0);
        fx_done(&x);
}
END_TEST

START_TEST(test_calls_counted)
{
        struct fx x;
        uint64_t size;
        uint8_t b = 0;
        int fd;

        fx_init(&x, "faultio calls");
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_MKDIR), 1);
        for (int op = 0; op < DSM_FOP_COUNT; op++)
                if (op != DSM_FOP_MKDIR)
                        ck_assert_uint_eq(dsm_faultio_calls(x.f, op), 0);
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        io->open(x.f, x.path[1], O_RDWR, 0);                    /* fails */
        io->pwrite(x.f, fd, &b, 1, 0);
        io->pwrite(x.f, fd, &b, 1, 1);
        io->pread(x.f, fd, &b, 1, 0);
        io->fdatasync(x.f, fd);
        io->ftruncate(x.f, fd, 1);
        io->fsize(x.f, fd, &size);
        io->syncdir(x.f, x.dir);
        io->unlink(x.f, x.path[1]);                             /* fails */
        io->close(x.f, fd);
        io->close(x.f, fd);                                     /* fails */
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_OPEN), 2);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_PWRITE), 2);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_PREAD), 1);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_FDATASYNC), 1);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_FTRUNCATE), 1);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_FSIZE), 1);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_SYNCDIR), 1);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_UNLINK), 1);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_CLOSE), 2);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_LISTDIR), 0);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_COUNT), 0);
        fx_done(&x);
}
END_TEST

/* ---- durability --------------------------------------------------------- */

START_TEST(test_synced_survives)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio synced");
        make_durable(&x, x.path[0], 1, 5000);
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        ck_assert_int_ge(fd, 0);
        /* Unsynced: overwrite part, extend, shrink. */
        write_pat(x.f, fd, 2, 100, 1000);
        write_pat(x.f, fd, 2, 5000, 3000);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 7000), 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 7000);

        /* A power loss makes every call fail until reboot. */
        dsm_faultio_power_loss(x.f, false);
        ck_assert(dsm_faultio_crashed(x.f));
        ck_assert_int_eq(io->fdatasync(x.f, fd), -EIO);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -EIO);
        dsm_faultio_reboot(x.f);
        ck_assert(!dsm_faultio_crashed(x.f));
        ck_assert_int_eq(io->pread(x.f, fd, &size, 1, 0), -EBADF);

        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 5000);
        assert_pat(img, 1, 0, 5000);
        free(img);

        /* And again after a sync of the new state. */
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        write_pat(x.f, fd, 3, 4000, 2000);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);
        write_pat(x.f, fd, 4, 0, 6000);                 /* lost */
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 6000);
        assert_pat(img, 1, 0, 4000);
        assert_pat(img + 4000, 3, 4000, 2000);
        free(img);
        fx_done(&x);
}
END_TEST

START_TEST(test_unsynced_lost)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio unsynced");
        /* The entry is durable, the data never synced. */
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(io->syncdir(x.f, x.dir), 0);
        write_pat(x.f, fd, 1, 0, 3000);
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 0);
        free(img);

        /* A pending ftruncate is lost too: the durable size stays. */
        make_durable(&x, x.path[1], 2, 8192);
        fd = io->open(x.f, x.path[1], O_RDWR, 0);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 100), 0);
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[1], &size);
        ck_assert_uint_eq(size, 8192);
        assert_pat(img, 2, 0, 8192);
        free(img);

        /* ... and kept once synced. */
        fd = io->open(x.f, x.path[1], O_RDWR, 0);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 100), 0);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);
        crash_and_reboot(&x, false);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[1]), 100);

        /* O_TRUNC is a pending truncate as well. */
        make_durable(&x, x.path[2], 3, 700);
        fd = io->open(x.f, x.path[2], O_RDWR | O_TRUNC, 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[2]), 0);
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[2], &size);
        ck_assert_uint_eq(size, 700);
        assert_pat(img, 3, 0, 700);
        free(img);
        fx_done(&x);
}
END_TEST

START_TEST(test_create_needs_syncdir)
{
        struct fx x;
        struct names nm = { .stop_at = -1 };
        int fd;

        fx_init(&x, "faultio create");
        nm.f = x.f;
        nm.dir = x.dir;
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        write_pat(x.f, fd, 1, 0, 100);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);   /* data, not the entry */
        crash_and_reboot(&x, false);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -ENOENT);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), -ENOENT);
        ck_assert_int_eq(io->listdir(x.f, x.dir, name_cb, &nm), 0);
        ck_assert_int_eq(nm.n, 0);

        /* A syncdir of another directory does not help. */
        {
                char sub[PATH_MAX + 8];

                snprintf(sub, sizeof(sub), "%s/sub", x.dir);
                ck_assert_int_eq(io->mkdir(x.f, sub, 0755), 0);
                fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(io->syncdir(x.f, sub), 0);
                crash_and_reboot(&x, false);
                ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -ENOENT);
                /* The directory itself was durable at once. */
                ck_assert_int_eq(io->syncdir(x.f, sub), 0);
                ck_assert_int_eq(io->mkdir(x.f, sub, 0755), -EEXIST);
        }

        /* With the syncdir it stays, with its synced data. */
        make_durable(&x, x.path[0], 2, 100);
        crash_and_reboot(&x, true);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 100);
        nm.n = 0;
        ck_assert_int_eq(io->listdir(x.f, x.dir, name_cb, &nm), 0);
        ck_assert_int_eq(nm.n, 2);
        ck_assert_str_eq(nm.got[0], "f0");
        fx_done(&x);
}
END_TEST

START_TEST(test_unlink_needs_syncdir)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio unlink");
        make_durable(&x, x.path[0], 1, 3000);
        ck_assert_int_eq(io->unlink(x.f, x.path[0]), 0);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -ENOENT);
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 3000);
        assert_pat(img, 1, 0, 3000);
        free(img);

        /* Unlinked and re-created under the same name, nothing synced:
         * the old file comes back. */
        ck_assert_int_eq(io->unlink(x.f, x.path[0]), 0);
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT | O_EXCL, 0644);
        ck_assert_int_ge(fd, 0);
        write_pat(x.f, fd, 2, 0, 10);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 10);
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 3000);
        assert_pat(img, 1, 0, 3000);
        free(img);

        /* An open fd keeps an unlinked file usable. */
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        ck_assert_int_eq(io->unlink(x.f, x.path[0]), 0);
        write_pat(x.f, fd, 3, 0, 10);
        ck_assert_int_eq(io->fsize(x.f, fd, &size), 0);
        ck_assert_uint_eq(size, 3000);

        /* With the syncdir the unlink stays. */
        ck_assert_int_eq(io->syncdir(x.f, x.dir), 0);
        ck_assert_int_eq(io->close(x.f, fd), 0);
        crash_and_reboot(&x, false);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -ENOENT);
        fx_done(&x);
}
END_TEST

START_TEST(test_reboot_without_crash)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd, fd2;

        fx_init(&x, "faultio reboot");
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        write_pat(x.f, fd, 1, 0, 100);
        /* A restart without power loss: descriptors die, files stay as
         * they are (and a later power loss still loses the unsynced). */
        dsm_faultio_reboot(x.f);
        ck_assert_int_eq(io->pwrite(x.f, fd, "x", 1, 0), -EBADF);
        ck_assert_int_eq(io->close(x.f, fd), -EBADF);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 100);
        assert_pat(img, 1, 0, 100);
        free(img);
        /* Old numbers never come back to life. */
        fd2 = io->open(x.f, x.path[0], O_RDWR, 0);
        ck_assert_int_ge(fd2, 0);
        ck_assert_int_ne(fd2, fd);
        ck_assert_int_eq(io->close(x.f, fd), -EBADF);
        ck_assert_int_eq(io->close(x.f, fd2), 0);
        crash_and_reboot(&x, false);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), -ENOENT);
        fx_done(&x);
}
END_TEST

START_TEST(test_stale_fd)
{
        struct fx x;
        uint8_t buf[16];
        uint64_t size;
        int fds[8], nfd;

        fx_init(&x, "faultio stale");
        make_durable(&x, x.path[0], 1, 16);
        for (int i = 0; i < 8; i++) {
                fds[i] = io->open(x.f, x.path[0], O_RDWR, 0);
                ck_assert_int_ge(fds[i], 0);
        }
        crash_and_reboot(&x, true);
        /* New descriptors do not reuse the old numbers. */
        for (int i = 0; i < 8; i++) {
                nfd = io->open(x.f, x.path[0], O_RDWR, 0);
                ck_assert_int_ge(nfd, 0);
                for (int j = 0; j < 8; j++)
                        ck_assert_int_ne(nfd, fds[j]);
        }
        for (int i = 0; i < 8; i++) {
                ck_assert_int_eq(io->pread(x.f, fds[i], buf, 16, 0), -EBADF);
                ck_assert_int_eq(io->pwrite(x.f, fds[i], buf, 16, 0), -EBADF);
                ck_assert_int_eq(io->fdatasync(x.f, fds[i]), -EBADF);
                ck_assert_int_eq(io->ftruncate(x.f, fds[i], 0), -EBADF);
                ck_assert_int_eq(io->fsize(x.f, fds[i], &size), -EBADF);
                ck_assert_int_eq(io->close(x.f, fds[i]), -EBADF);
        }
        fx_done(&x);
}
END_TEST

START_TEST(test_fd_limit)
{
        struct fx x;
        int fd, first = -1;

        fx_init(&x, "faultio fd limit");
        make_durable(&x, x.path[0], 1, 10);
        for (;;) {
                fd = io->open(x.f, x.path[0], O_RDONLY, 0);
                if (fd < 0)
                        break;
                if (first < 0)
                        first = fd;
        }
        ck_assert_int_eq(fd, -EMFILE);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_OPEN), 4096 + 1 + 1);
        /* A closed slot is handed out again. */
        ck_assert_int_eq(io->close(x.f, first), 0);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), first);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -EMFILE);
        fx_done(&x);
}
END_TEST

START_TEST(test_corrupt)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio corrupt");
        make_durable(&x, x.path[0], 1, 4096);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], 100, 10), 0);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 4096);
        assert_pat(img, 1, 0, 100);
        for (int i = 100; i < 110; i++)
                ck_assert_uint_eq(img[i], pat(1, i) ^ 0x5a);
        assert_pat(img + 110, 1, 110, 4096 - 110);
        free(img);

        /* Both images: the damage survives a power loss. */
        crash_and_reboot(&x, true);
        img = read_file(x.f, x.path[0], &size);
        for (int i = 100; i < 110; i++)
                ck_assert_uint_eq(img[i], pat(1, i) ^ 0x5a);
        assert_pat(img + 110, 1, 110, 4096 - 110);
        free(img);

        /* On unsynced bytes past the durable size, a sync keeps it. */
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        write_pat(x.f, fd, 2, 6000, 100);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], 5000, 1050), 0);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);
        crash_and_reboot(&x, false);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 6100);
        for (int i = 5000; i < 6000; i++)
                ck_assert_uint_eq(img[i], 0x5a);
        for (int i = 6000; i < 6050; i++)
                ck_assert_uint_eq(img[i], pat(2, i) ^ 0x5a);
        assert_pat(img + 6050, 2, 6050, 50);
        free(img);

        /* Twice is undone; errors. */
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], 100, 10), 0);
        img = read_file(x.f, x.path[0], &size);
        assert_pat(img, 1, 0, 1000);
        free(img);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], 6000, 101), -EINVAL);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], 6101, 1), -EINVAL);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], UINT64_MAX, 2), -EINVAL);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[0], 6100, 0), 0);
        ck_assert_int_eq(dsm_faultio_corrupt(x.f, x.path[1], 0, 1), -ENOENT);
        fx_done(&x);
}
END_TEST

/* ---- torn power loss ---------------------------------------------------- */

struct torn_stats {
        unsigned whole, torn, vanished, reordered;
};

/*
 * A durable prefix, then appends at increasing offsets with gaps, no sync;
 * a torn power loss.  Every write must come out as a prefix of itself cut
 * at a 512-byte boundary (whole and nothing included), the rest zeros; the
 * durable prefix intact; the size between the durable and volatile sizes.
 */
static void torn_trial(uint64_t seed, uint64_t *rng, struct torn_stats *st)
{
        struct fx x;
        uint64_t off[8], len[8], dlen, vsize, size, end;
        unsigned nw;
        uint8_t *img;
        bool seen_lost = false;
        int fd;

        fx_setup(&x, seed);
        dlen = tu_rand(rng) % 3000;
        make_durable(&x, x.path[0], 100, dlen);
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        nw = 1 + (unsigned)(tu_rand(rng) % 8);
        end = dlen;
        for (unsigned i = 0; i < nw; i++) {
                off[i] = end + tu_rand(rng) % 700;
                len[i] = 1 + tu_rand(rng) % 3000;
                write_pat(x.f, fd, i, off[i], len[i]);
                end = off[i] + len[i];
        }
        vsize = (uint64_t)dsm_faultio_size(x.f, x.path[0]);
        ck_assert_uint_eq(vsize, end);
        crash_and_reboot(&x, true);

        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_ge(size, dlen);
        ck_assert_uint_le(size, vsize);
        assert_pat(img, 100, 0, dlen);
        for (unsigned i = 0; i < nw; i++) {
                uint64_t gap_start = i ? off[i - 1] + len[i - 1] : dlen;
                uint64_t k = 0;

                /* Gaps between writes stay zero. */
                for (uint64_t b = gap_start; b < off[i] && b < size; b++)
                        ck_assert_uint_eq(img[b], 0);
                while (k < len[i] && off[i] + k < size && img[off[i] + k] == pat(i, off[i] + k))
                        k++;
                for (uint64_t b = off[i] + k; b < off[i] + len[i] && b < size; b++)
                        if (img[b])
                                ck_abort_msg("write %u [%llu,+%llu): byte %llu past its "
                                             "surviving prefix %llu is %u", i,
                                             (unsigned long long)off[i],
                                             (unsigned long long)len[i],
                                             (unsigned long long)b,
                                             (unsigned long long)k, img[b]);
                if (k == len[i]) {
                        st->whole++;
                        if (seen_lost)
                                st->reordered++;        /* an earlier one did not */
                } else if (k == 0) {
                        st->vanished++;
                        seen_lost = true;
                } else {
                        /* A tear lies on a sector boundary. */
                        ck_assert_uint_eq((off[i] + k) % 512, 0);
                        st->torn++;
                        seen_lost = true;
                }
        }
        /* The size ends where some surviving write ends. */
        if (size > dlen) {
                bool found = false;

                for (unsigned i = 0; i < nw; i++)
                        found |= size > off[i] && size <= off[i] + len[i] &&
                                 (size == off[i] + len[i] || size % 512 == 0);
                ck_assert(found);
                ck_assert_uint_ne(img[size - 1], 0);
        }
        free(img);
        fx_done(&x);
}

START_TEST(test_torn_prefixes)
{
        uint64_t rng = tu_seed("faultio torn prefixes");
        struct torn_stats st = { 0 };

        for (int t = 0; t < 300; t++)
                torn_trial(tu_rand(&rng), &rng, &st);
        /* All outcomes occur (with overwhelming probability, per seed). */
        ck_assert_uint_gt(st.whole, 0);
        ck_assert_uint_gt(st.torn, 0);
        ck_assert_uint_gt(st.vanished, 0);
        ck_assert_uint_gt(st.reordered, 0);
}
END_TEST

/* Overwrites of synced data: untouched synced bytes survive; an
 * overwritten range holds old bytes or a sector-cut prefix of new ones. */
START_TEST(test_torn_overwrite)
{
        uint64_t rng = tu_seed("faultio torn overwrite");
        unsigned kept_new = 0, kept_old = 0;

        for (int t = 0; t < 200; t++) {
                struct fx x;
                uint64_t size, a = 1 + tu_rand(&rng) % 4000;
                uint64_t n = 1 + tu_rand(&rng) % 3000, k = 0;
                uint8_t *img;
                int fd;

                fx_setup(&x, tu_rand(&rng));
                make_durable(&x, x.path[0], 1, 8192);
                fd = io->open(x.f, x.path[0], O_RDWR, 0);
                write_pat(x.f, fd, 2, a, n);
                crash_and_reboot(&x, true);
                img = read_file(x.f, x.path[0], &size);
                ck_assert_uint_eq(size, 8192);
                assert_pat(img, 1, 0, a);
                assert_pat(img + a + n, 1, a + n, 8192 - a - n);
                /* Patterns 1 and 2 differ at every offset (see pat()). */
                while (k < n && img[a + k] == pat(2, a + k))
                        k++;
                for (uint64_t b = a + k; b < a + n; b++)
                        ck_assert_uint_eq(img[b], pat(1, b));
                if (k == n)
                        kept_new++;
                else if (k == 0)
                        kept_old++;
                else
                        ck_assert_uint_eq((a + k) % 512, 0);
                free(img);
                fx_done(&x);
        }
        ck_assert_uint_gt(kept_new, 0);
        ck_assert_uint_gt(kept_old, 0);
}
END_TEST

/* A pending ftruncate survives a torn power loss or not; either way the
 * synced bytes that remain are intact. */
START_TEST(test_torn_truncate)
{
        uint64_t rng = tu_seed("faultio torn truncate");
        unsigned cut = 0, kept = 0;

        for (int t = 0; t < 100; t++) {
                struct fx x;
                uint64_t size;
                uint8_t *img;
                int fd;

                fx_setup(&x, tu_rand(&rng));
                make_durable(&x, x.path[0], 1, 8192);
                fd = io->open(x.f, x.path[0], O_RDWR, 0);
                ck_assert_int_eq(io->ftruncate(x.f, fd, 1000), 0);
                crash_and_reboot(&x, true);
                img = read_file(x.f, x.path[0], &size);
                if (size == 1000)
                        cut++;
                else if (size == 8192)
                        kept++;
                else
                        ck_abort_msg("size %llu", (unsigned long long)size);
                assert_pat(img, 1, 0, size);
                free(img);
                fx_done(&x);
        }
        ck_assert_uint_gt(cut, 0);
        ck_assert_uint_gt(kept, 0);
}
END_TEST

/* The same seed and the same calls give the same post-crash state. */
static uint8_t *torn_run(uint64_t seed, const char *dir, uint64_t *ret_size)
{
        struct dsm_faultio *f = dsm_faultio_new(seed);
        char path[PATH_MAX + 8];
        uint8_t *img;
        int fd;

        snprintf(path, sizeof(path), "%s/f", dir);
        ck_assert_int_eq(io->mkdir(f, dir, 0755), 0);
        fd = io->open(f, path, O_RDWR | O_CREAT, 0644);
        ck_assert_int_eq(io->syncdir(f, dir), 0);
        for (unsigned i = 0; i < 32; i++)
                write_pat(f, fd, i, (uint64_t)i * 1000, 1500);
        ck_assert_int_eq(io->ftruncate(f, fd, 20000), 0);
        dsm_faultio_power_loss(f, true);
        dsm_faultio_reboot(f);
        img = read_file(f, path, ret_size);
        dsm_faultio_free(f);
        return img;
}

START_TEST(test_torn_deterministic)
{
        uint64_t rng = tu_seed("faultio torn determinism");
        const char *dir = tu_tmpdir();
        uint64_t s1, s2, s3, seed = tu_rand(&rng);
        uint8_t *a = torn_run(seed, dir, &s1);
        uint8_t *b = torn_run(seed, dir, &s2);
        uint8_t *c = torn_run(seed + 1, dir, &s3);
        bool differs = s1 != s3 || memcmp(a, c, s1) != 0;

        ck_assert_uint_eq(s1, s2);
        ck_assert_mem_eq(a, b, s1);
        /* Another seed (almost surely) another outcome: 32 writes. */
        if (!differs) {
                free(c);
                c = torn_run(seed + 2, dir, &s3);
                differs = s1 != s3 || memcmp(a, c, s1) != 0;
        }
        ck_assert(differs);
        free(a);
        free(b);
        free(c);
}
END_TEST

START_TEST(test_untorn_loses_all_pending)
{
        uint64_t rng = tu_seed("faultio untorn");

        for (int t = 0; t < 50; t++) {
                struct fx x;
                uint64_t size;
                uint8_t *img;
                int fd;

                fx_setup(&x, tu_rand(&rng));
                make_durable(&x, x.path[0], 1, 1024);
                fd = io->open(x.f, x.path[0], O_RDWR, 0);
                for (unsigned i = 0; i < 10; i++)
                        write_pat(x.f, fd, 2 + i, i * 512, 2048);
                crash_and_reboot(&x, false);
                img = read_file(x.f, x.path[0], &size);
                ck_assert_uint_eq(size, 1024);
                assert_pat(img, 1, 0, 1024);
                free(img);
                fx_done(&x);
        }
}
END_TEST

/* ---- injected faults ---------------------------------------------------- */

START_TEST(test_fail_once)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio fail once");
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        write_pat(x.f, fd, 1, 0, 100);
        write_pat(x.f, fd, 1, 100, 100);
        /* Counted from now: the 2nd pwrite from here fails, once. */
        dsm_faultio_fail(x.f, DSM_FOP_PWRITE, 2, EIO, false);
        write_pat(x.f, fd, 1, 200, 100);
        ck_assert_int_eq(io->pwrite(x.f, fd, "zz", 2, 300), -EIO);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 300);       /* not applied */
        write_pat(x.f, fd, 1, 300, 100);
        write_pat(x.f, fd, 1, 400, 100);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 500);
        assert_pat(img, 1, 0, 500);
        free(img);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_PWRITE), 6);

        /* Other operations are not touched by a pwrite fault. */
        dsm_faultio_fail(x.f, DSM_FOP_PWRITE, 1, ENOSPC, false);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);
        ck_assert_int_eq(io->pwrite(x.f, fd, "a", 1, 0), -ENOSPC);
        ck_assert_int_eq(io->pwrite(x.f, fd, "a", 1, 0), 1);

        /* Re-arming replaces; clear disarms. */
        dsm_faultio_fail(x.f, DSM_FOP_PWRITE, 1, ENOSPC, false);
        dsm_faultio_fail(x.f, DSM_FOP_PWRITE, 2, EROFS, false);
        ck_assert_int_eq(io->pwrite(x.f, fd, "a", 1, 0), 1);
        ck_assert_int_eq(io->pwrite(x.f, fd, "a", 1, 0), -EROFS);
        dsm_faultio_fail(x.f, DSM_FOP_PWRITE, 1, EIO, true);
        dsm_faultio_clear(x.f);
        ck_assert_int_eq(io->pwrite(x.f, fd, "a", 1, 0), 1);
        ck_assert(!dsm_faultio_crashed(x.f));
        fx_done(&x);
}
END_TEST

static int nop_cb(void *arg, const char *name)
{
        (*(int *)arg)++;
        return 0;
}

/* Call op once on a prepared world; returns its result. */
static int call_op(struct fx *x, enum dsm_fop op, int fd)
{
        char p[PATH_MAX + 8];
        uint64_t size;
        uint8_t b = 'q';
        int n = 0, r;

        switch (op) {
        case DSM_FOP_OPEN:
                r = io->open(x->f, x->path[0], O_RDWR, 0);
                if (r >= 0)
                        io->close(x->f, r);
                return r < 0 ? r : 0;
        case DSM_FOP_CLOSE:
                r = io->open(x->f, x->path[0], O_RDWR, 0);
                ck_assert_int_ge(r, 0);
                return io->close(x->f, r);
        case DSM_FOP_PREAD:
                return (int)io->pread(x->f, fd, &b, 1, 0);
        case DSM_FOP_PWRITE:
                return (int)io->pwrite(x->f, fd, &b, 1, 0);
        case DSM_FOP_FDATASYNC:
                return io->fdatasync(x->f, fd);
        case DSM_FOP_FTRUNCATE:
                return io->ftruncate(x->f, fd, 10);
        case DSM_FOP_FSIZE:
                return io->fsize(x->f, fd, &size);
        case DSM_FOP_UNLINK:
                r = io->open(x->f, x->path[1], O_RDWR | O_CREAT, 0644);
                if (r >= 0)
                        io->close(x->f, r);
                return io->unlink(x->f, x->path[1]);
        case DSM_FOP_MKDIR:
                snprintf(p, sizeof(p), "%s/d%llu", x->dir,
                         (unsigned long long)tu_rand(&x->rng));
                return io->mkdir(x->f, p, 0755);
        case DSM_FOP_SYNCDIR:
                return io->syncdir(x->f, x->dir);
        case DSM_FOP_LISTDIR:
                r = io->listdir(x->f, x->dir, nop_cb, &n);
                if (r == 0)
                        ck_assert_int_gt(n, 0);
                return r;
        default:
                ck_abort_msg("bad op %d", op);
        }
        return 0;
}

START_TEST(test_fail_every_op)
{
        struct fx x;
        int fd;

        fx_init(&x, "faultio fail ops");
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_ge(fd, 0);
        write_pat(x.f, fd, 1, 0, 10);
        for (int op = 0; op < DSM_FOP_COUNT; op++) {
                uint64_t before = dsm_faultio_calls(x.f, op);

                /* Once: fails, then works. */
                dsm_faultio_fail(x.f, op, 1, EACCES, false);
                ck_assert_msg(call_op(&x, op, fd) == -EACCES, "op %d once", op);
                ck_assert_msg(call_op(&x, op, fd) >= 0, "op %d after once", op);
                /* For ever, from the 2nd call on. */
                dsm_faultio_fail(x.f, op, 2, ENOSPC, true);
                ck_assert_msg(call_op(&x, op, fd) >= 0, "op %d before", op);
                for (int i = 0; i < 5; i++)
                        ck_assert_msg(call_op(&x, op, fd) == -ENOSPC, "op %d for ever", op);
                dsm_faultio_clear(x.f);
                ck_assert_msg(call_op(&x, op, fd) >= 0, "op %d cleared", op);
                ck_assert_uint_ge(dsm_faultio_calls(x.f, op), before + 9);
        }
        /* A persistent fault also goes away on reboot. */
        dsm_faultio_fail(x.f, DSM_FOP_OPEN, 1, EIO, true);
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDWR, 0), -EIO);
        dsm_faultio_reboot(x.f);
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        ck_assert_int_ge(fd, 0);
        /* A failed fdatasync does not make the data durable. */
        ck_assert_int_eq(io->syncdir(x.f, x.dir), 0);
        write_pat(x.f, fd, 9, 0, 100);
        dsm_faultio_fail(x.f, DSM_FOP_FDATASYNC, 1, EIO, false);
        ck_assert_int_eq(io->fdatasync(x.f, fd), -EIO);
        crash_and_reboot(&x, false);
        ck_assert_int_ge(dsm_faultio_size(x.f, x.path[0]), 0);
        ck_assert_int_lt(dsm_faultio_size(x.f, x.path[0]), 100);
        fx_done(&x);
}
END_TEST

START_TEST(test_short_write)
{
        struct fx x;
        uint8_t buf[1000], *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio short");
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        fill(buf, sizeof(buf), 1, 0);
        dsm_faultio_short_write(x.f, 1, 100);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 1000, 0), 100);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 100);
        /* Once only: the caller's retry of the rest goes through. */
        ck_assert_int_eq(io->pwrite(x.f, fd, buf + 100, 900, 100), 900);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 1000);
        assert_pat(img, 1, 0, 1000);
        free(img);

        /* The 2nd pwrite from now. */
        dsm_faultio_short_write(x.f, 2, 10);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 50, 2000), 50);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 50, 3000), 10);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 3010);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 50, 4000), 50);

        /* keep >= len: the write is whole. */
        dsm_faultio_short_write(x.f, 1, 500);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 20, 0), 20);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 800, 0), 800);

        /* Cleared before it fires. */
        dsm_faultio_short_write(x.f, 1, 1);
        dsm_faultio_clear(x.f);
        ck_assert_int_eq(io->pwrite(x.f, fd, buf, 800, 0), 800);
        fx_done(&x);
}
END_TEST

START_TEST(test_crash_at)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd, n = 0;

        fx_init(&x, "faultio crash_at");
        fd = io->open(x.f, x.path[0], O_RDWR | O_CREAT, 0644);
        ck_assert_int_eq(io->syncdir(x.f, x.dir), 0);
        dsm_faultio_crash_at(x.f, DSM_FOP_FDATASYNC, 2);
        write_pat(x.f, fd, 1, 0, 2048);
        ck_assert_int_eq(io->fdatasync(x.f, fd), 0);    /* 1st: fine */
        write_pat(x.f, fd, 2, 2048, 4096);
        ck_assert(!dsm_faultio_crashed(x.f));
        ck_assert_int_eq(io->fdatasync(x.f, fd), -EIO); /* 2nd: power lost */
        ck_assert(dsm_faultio_crashed(x.f));

        /* Everything fails now, including on valid-looking arguments. */
        ck_assert_int_eq(io->open(x.f, x.path[0], O_RDONLY, 0), -EIO);
        ck_assert_int_eq(io->pread(x.f, fd, &size, 1, 0), -EIO);
        ck_assert_int_eq(io->pwrite(x.f, fd, "a", 1, 0), -EIO);
        ck_assert_int_eq(io->fdatasync(x.f, fd), -EIO);
        ck_assert_int_eq(io->ftruncate(x.f, fd, 0), -EIO);
        ck_assert_int_eq(io->fsize(x.f, fd, &size), -EIO);
        ck_assert_int_eq(io->unlink(x.f, x.path[0]), -EIO);
        ck_assert_int_eq(io->mkdir(x.f, x.path[1], 0755), -EIO);
        ck_assert_int_eq(io->syncdir(x.f, x.dir), -EIO);
        ck_assert_int_eq(io->listdir(x.f, x.dir, nop_cb, &n), -EIO);
        ck_assert_int_eq(n, 0);
        ck_assert_int_eq(io->close(x.f, fd), -EIO);
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_FDATASYNC), 3);

        dsm_faultio_reboot(x.f);
        ck_assert(!dsm_faultio_crashed(x.f));
        ck_assert_int_eq(io->close(x.f, fd), -EBADF);
        /* The synced part is intact; the rest (torn) within the bounds. */
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_ge(size, 2048);
        ck_assert_uint_le(size, 2048 + 4096);
        ck_assert_uint_eq(size % 512, 0);
        assert_pat(img, 1, 0, 2048);
        free(img);
        fx_done(&x);
}
END_TEST

START_TEST(test_crash_at_write)
{
        struct fx x;
        uint8_t *img;
        uint64_t size;
        int fd;

        fx_init(&x, "faultio crash_at pwrite");
        make_durable(&x, x.path[0], 1, 1000);
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        /* Power is lost before the write is carried out: it never lands. */
        dsm_faultio_crash_at(x.f, DSM_FOP_PWRITE, 1);
        ck_assert_int_eq(io->pwrite(x.f, fd, "abc", 3, 0), -EIO);
        ck_assert(dsm_faultio_crashed(x.f));
        dsm_faultio_reboot(x.f);
        img = read_file(x.f, x.path[0], &size);
        ck_assert_uint_eq(size, 1000);
        assert_pat(img, 1, 0, 1000);
        free(img);

        /* Not reached: no crash; a reboot disarms it. */
        dsm_faultio_crash_at(x.f, DSM_FOP_UNLINK, 1);
        fd = io->open(x.f, x.path[0], O_RDWR, 0);
        ck_assert_int_eq(io->pwrite(x.f, fd, "abc", 3, 0), 3);
        ck_assert(!dsm_faultio_crashed(x.f));
        dsm_faultio_reboot(x.f);
        ck_assert_int_eq(io->unlink(x.f, x.path[0]), 0);
        ck_assert(!dsm_faultio_crashed(x.f));

        /* crash_at on open, counted from the moment it is armed. */
        io->open(x.f, x.path[1], O_RDWR | O_CREAT, 0644);
        dsm_faultio_crash_at(x.f, DSM_FOP_OPEN, 2);
        ck_assert_int_ge(io->open(x.f, x.path[1], O_RDWR, 0), 0);
        ck_assert_int_eq(io->open(x.f, x.path[1], O_RDWR, 0), -EIO);
        ck_assert(dsm_faultio_crashed(x.f));
        /* The crash was not a reboot: faults stay cleared only by one. */
        dsm_faultio_clear(x.f);
        ck_assert(dsm_faultio_crashed(x.f));
        dsm_faultio_reboot(x.f);
        /* Neither the create nor the unlink was synced to the dir. */
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[1]), -ENOENT);
        ck_assert_int_eq(dsm_faultio_size(x.f, x.path[0]), 1000);
        fx_done(&x);
}
END_TEST

/* Concurrent callers: the mutex keeps the state consistent. */
struct thr_arg {
        struct dsm_faultio *f;
        char path[PATH_MAX + 8];
        unsigned id;
};

static void *thr_main(void *p)
{
        struct thr_arg *a = p;
        int fd = io->open(a->f, a->path, O_RDWR | O_CREAT, 0644);

        ck_assert_int_ge(fd, 0);
        for (unsigned i = 0; i < 200; i++) {
                write_pat(a->f, fd, a->id, (uint64_t)i * 100, 100);
                if (i % 20 == 0)
                        ck_assert_int_eq(io->fdatasync(a->f, fd), 0);
        }
        ck_assert_int_eq(io->fdatasync(a->f, fd), 0);
        ck_assert_int_eq(io->close(a->f, fd), 0);
        return NULL;
}

START_TEST(test_threads)
{
        struct fx x;
        struct thr_arg a[4];
        pthread_t t[4];

        fx_init(&x, "faultio threads");
        for (unsigned i = 0; i < 4; i++) {
                a[i].f = x.f;
                a[i].id = i + 1;
                snprintf(a[i].path, sizeof(a[i].path), "%s", x.path[i]);
                ck_assert_int_eq(pthread_create(&t[i], NULL, thr_main, &a[i]), 0);
        }
        for (unsigned i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        ck_assert_int_eq(io->syncdir(x.f, x.dir), 0);
        crash_and_reboot(&x, true);
        for (unsigned i = 0; i < 4; i++) {
                uint64_t size;
                uint8_t *img = read_file(x.f, x.path[i], &size);

                ck_assert_uint_eq(size, 20000);
                assert_pat(img, i + 1, 0, 20000);
                free(img);
        }
        ck_assert_uint_eq(dsm_faultio_calls(x.f, DSM_FOP_PWRITE), 800);
        fx_done(&x);
}
END_TEST

static Suite *faultio_suite(void)
{
        Suite *s = suite_create("faultio");
        TCase *tc;

        tc = tcase_create("io");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_read_write_size);
        tcase_add_test(tc, test_open_flags);
        tcase_add_test(tc, test_ftruncate);
        tcase_add_test(tc, test_dirs);
        tcase_add_test(tc, test_calls_counted);
        tcase_add_test(tc, test_threads);
        suite_add_tcase(s, tc);

        tc = tcase_create("durability");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_synced_survives);
        tcase_add_test(tc, test_unsynced_lost);
        tcase_add_test(tc, test_create_needs_syncdir);
        tcase_add_test(tc, test_unlink_needs_syncdir);
        tcase_add_test(tc, test_reboot_without_crash);
        tcase_add_test(tc, test_stale_fd);
        tcase_add_test(tc, test_fd_limit);
        tcase_add_test(tc, test_corrupt);
        suite_add_tcase(s, tc);

        tc = tcase_create("torn");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_torn_prefixes);
        tcase_add_test(tc, test_torn_overwrite);
        tcase_add_test(tc, test_torn_truncate);
        tcase_add_test(tc, test_torn_deterministic);
        tcase_add_test(tc, test_untorn_loses_all_pending);
        suite_add_tcase(s, tc);

        tc = tcase_create("faults");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_fail_once);
        tcase_add_test(tc, test_fail_every_op);
        tcase_add_test(tc, test_short_write);
        tcase_add_test(tc, test_crash_at);
        tcase_add_test(tc, test_crash_at_write);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(faultio_suite());
}
