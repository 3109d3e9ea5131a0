/*
 * model_test.c -- random file operations on a real mount, checked against
 * an in-memory model of every file.
 *
 * usage: model_test DIR [--ops N] [--seed S] [--max-size BYTES] [--quiet]
 *
 * In a fresh private directory DIR/model.<pid>, a handful of names (NNAMES)
 * hold up to as many files.  Each step picks one operation:
 *
 *   pwrite at a random offset (inside the file, at EOF or past it: holes),
 *   pread of a random range, compared byte for byte (short at EOF),
 *   ftruncate down or up, an O_APPEND write through a second descriptor,
 *   rename from one name to another (replacing what was there), close and
 *   reopen (sometimes with O_TRUNC), fsync, stat/fstat size checks, a full
 *   read of one file, unlink and re-create, and attribute changes on an
 *   open descriptor (fchmod, fchown, futimens on the O_RDWR or the
 *   O_APPEND one) after which that descriptor must still show the size
 *   of everything written so far (and a later O_APPEND write must land
 *   at its end).
 *
 * At the end every descriptor is closed, every file is reopened and read
 * in full, and the directory listing must match the model's names.
 *
 * Default 100000 operations; file sizes stay below --max-size (default
 * 4 MiB) so the run stays short.  The seed (default: from the clock) is
 * printed at the start and on failure, with the failing operation and the
 * ones before it; `--seed S` replays a run exactly.  Exit 0 if the file
 * system agreed with the model throughout, 1 on the first disagreement or
 * unexpected error, 2 on a usage error.  The private directory is removed
 * on success and left for inspection on failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NNAMES 6
#define HIST 40

struct mfile {
        uint8_t *data;
        size_t size, cap;
        int fd;                 /* O_RDWR descriptor, or -1 */
        int afd;                /* O_WRONLY|O_APPEND descriptor, or -1 */
        unsigned serial;        /* which file this is (for messages) */
};

static struct mfile *g_names[NNAMES];
static uint64_t g_seed, g_rng;
static uint64_t g_op;
static size_t g_max = 4u << 20;
static char g_hist[HIST][160];
static char g_dir[PATH_MAX];
static unsigned g_serial;
static uint8_t *g_buf, *g_back;
static unsigned long g_count[16];

static uint64_t rnd(void)
{
        /* splitmix64 */
        uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
        return n ? rnd() % n : 0;
}

static void fill(uint8_t *b, size_t n)
{
        uint64_t x = rnd() | 1;

        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b[i] = (uint8_t)(x >> 24);
        }
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
        va_list ap;
        char *h = g_hist[g_op % HIST];
        int n = snprintf(h, sizeof(g_hist[0]), "op %" PRIu64 ": ", g_op);

        va_start(ap, fmt);
        vsnprintf(h + n, sizeof(g_hist[0]) - (size_t)n, fmt, ap);
        va_end(ap);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
        va_list ap;
        uint64_t first = g_op >= HIST - 1 ? g_op - (HIST - 1) : 0;

        fflush(stdout);
        fprintf(stderr, "model_test: FAILED at operation %" PRIu64 " (seed %" PRIu64 "): ",
                g_op, g_seed);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nmodel_test: the last operations:\n");
        for (uint64_t i = first; i <= g_op; i++)
                fprintf(stderr, "  %s\n", g_hist[i % HIST]);
        fprintf(stderr, "model_test: files left in %s\n", g_dir);
        fprintf(stderr, "model_test: replay with --seed %" PRIu64 " --ops %" PRIu64 "\n",
                g_seed, g_op + 1);
        exit(1);
}

static void on_alarm(int sig)
{
        static const char msg[] = "model_test: overall timeout (a request hangs?)\n";

        (void)sig;
        (void)!write(2, msg, sizeof(msg) - 1);
        _exit(1);
}

static void name_of(int i, char *buf, size_t n)
{
        snprintf(buf, n, "n%d", i);
}

static void reserve(struct mfile *f, size_t n)
{
        if (n <= f->cap)
                return;
        f->cap = n + (n >> 1) + 4096;
        if (f->cap > g_max + 4096)
                f->cap = g_max + 4096;
        if (f->cap < n)
                f->cap = n;
        f->data = realloc(f->data, f->cap);
        if (!f->data) {
                perror("realloc");
                exit(1);
        }
}

static void model_resize(struct mfile *f, size_t n)
{
        if (n > f->size) {
                reserve(f, n);
                memset(f->data + f->size, 0, n - f->size);
        }
        f->size = n;
}

static void model_write(struct mfile *f, size_t off, const uint8_t *buf, size_t n)
{
        if (off + n > f->size)
                model_resize(f, off + n);
        memcpy(f->data + off, buf, n);
}

static void close_fds(struct mfile *f)
{
        if (f->fd >= 0 && close(f->fd) < 0)
                fail("close of file #%u: %s", f->serial, strerror(errno));
        if (f->afd >= 0 && close(f->afd) < 0)
                fail("close of the O_APPEND descriptor of file #%u: %s", f->serial,
                     strerror(errno));
        f->fd = f->afd = -1;
}

static void drop(int i)
{
        struct mfile *f = g_names[i];

        if (!f)
                return;
        close_fds(f);
        free(f->data);
        free(f);
        g_names[i] = NULL;
}

static void ensure_fd(int i)
{
        struct mfile *f = g_names[i];
        char name[16];

        if (f->fd >= 0)
                return;
        name_of(i, name, sizeof(name));
        f->fd = open(name, O_RDWR | O_CLOEXEC);
        if (f->fd < 0)
                fail("open %s (file #%u) O_RDWR: %s", name, f->serial, strerror(errno));
}

static void create(int i)
{
        struct mfile *f = calloc(1, sizeof(*f));
        char name[16];

        name_of(i, name, sizeof(name));
        f->serial = ++g_serial;
        f->afd = -1;
        f->fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f->fd < 0)
                fail("create %s: %s", name, strerror(errno));
        g_names[i] = f;
}

/* pread [off, off+n) and compare with the model; n may run past EOF. */
static void check_range(int i, size_t off, size_t n, const char *what)
{
        struct mfile *f = g_names[i];
        size_t want = off >= f->size ? 0 : (f->size - off < n ? f->size - off : n);
        size_t got = 0;

        while (got < n) {
                ssize_t r = pread(f->fd, g_back + got, n - got, (off_t)(off + got));

                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        fail("%s: pread n%d (file #%u) [%zu, +%zu): %s", what, i, f->serial, off,
                             n, strerror(errno));
                }
                if (r == 0)
                        break;
                got += (size_t)r;
        }
        if (got != want)
                fail("%s: pread n%d (file #%u) [%zu, +%zu) returned %zu bytes, the model has %zu"
                     " (model size %zu)", what, i, f->serial, off, n, got, want, f->size);
        for (size_t k = 0; k < want; k++) {
                if (g_back[k] != f->data[off + k]) {
                        size_t end = k;

                        while (end < want && g_back[end] != f->data[off + end])
                                end++;
                        fail("%s: n%d (file #%u) differs at offset %zu (got %#x, model %#x; "
                             "%zu bytes differ from there; model size %zu)", what, i, f->serial,
                             off + k, g_back[k], f->data[off + k], end - k, f->size);
                }
        }
}

static void check_size(int i, const char *what)
{
        struct mfile *f = g_names[i];
        struct stat st;
        char name[16];

        name_of(i, name, sizeof(name));
        if (f->fd >= 0) {
                if (fstat(f->fd, &st) < 0)
                        fail("%s: fstat n%d: %s", what, i, strerror(errno));
                if ((size_t)st.st_size != f->size)
                        fail("%s: fstat n%d (file #%u) size %lld, model %zu", what, i, f->serial,
                             (long long)st.st_size, f->size);
        }
        if (stat(name, &st) < 0)
                fail("%s: stat n%d: %s", what, i, strerror(errno));
        if ((size_t)st.st_size != f->size)
                fail("%s: stat n%d (file #%u) size %lld, model %zu", what, i, f->serial,
                     (long long)st.st_size, f->size);
}

static int pick_existing(void)
{
        int start = (int)below(NNAMES);

        for (int k = 0; k < NNAMES; k++) {
                int i = (start + k) % NNAMES;

                if (g_names[i])
                        return i;
        }
        return -1;
}

static size_t pick_len(void)
{
        uint64_t r = below(100);

        if (r < 60)
                return 1 + (size_t)below(4096);
        if (r < 90)
                return 1 + (size_t)below(32768);
        return 1 + (size_t)below(262144);
}

enum { OP_WRITE, OP_READ, OP_TRUNC, OP_APPEND, OP_RENAME, OP_REOPEN, OP_FSYNC,
       OP_STAT, OP_FULL, OP_FCHMOD, OP_FCHOWN, OP_FUTIMENS, OP_UNLINK, OP_NKIND };
static const char *const op_names[OP_NKIND] = {
        "pwrite", "pread", "ftruncate", "append", "rename", "reopen", "fsync",
        "stat", "fullread", "fchmod", "fchown", "futimens", "unlink",
};

static void step(void)
{
        uint64_t r = below(1000);
        int kind, i;
        struct mfile *f;

        if (r < 270)
                kind = OP_WRITE;
        else if (r < 500)
                kind = OP_READ;
        else if (r < 570)
                kind = OP_TRUNC;
        else if (r < 670)
                kind = OP_APPEND;
        else if (r < 710)
                kind = OP_RENAME;
        else if (r < 780)
                kind = OP_REOPEN;
        else if (r < 820)
                kind = OP_FSYNC;
        else if (r < 880)
                kind = OP_STAT;
        else if (r < 883)
                kind = OP_FULL;
        else if (r < 913)
                kind = OP_FCHMOD;
        else if (r < 943)
                kind = OP_FCHOWN;
        else if (r < 968)
                kind = OP_FUTIMENS;
        else
                kind = OP_UNLINK;

        i = pick_existing();
        if (i < 0 || (kind == OP_UNLINK && below(2) == 0)) {
                /* an empty name: create a file there */
                int j = (int)below(NNAMES);

                if (!g_names[j]) {
                        note("create n%d", j);
                        create(j);
                        g_count[OP_NKIND]++;
                        return;
                }
                if (i < 0)
                        i = j;
        }
        f = g_names[i];
        g_count[kind]++;

        switch (kind) {
        case OP_WRITE: {
                size_t limit = f->size + 65536 + (below(4) == 0 ? (1u << 20) : 0);
                size_t off, n;

                if (limit > g_max)
                        limit = g_max;
                off = (size_t)below(limit);
                n = pick_len();
                if (off + n > g_max)
                        n = g_max - off;
                if (n == 0) {
                        n = 1;
                        off = g_max - 1;
                }
                ensure_fd(i);
                fill(g_buf, n);
                note("pwrite n%d (file #%u) [%zu, +%zu) size %zu", i, f->serial, off, n, f->size);
                for (size_t done = 0; done < n;) {
                        ssize_t w = pwrite(f->fd, g_buf + done, n - done, (off_t)(off + done));

                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                fail("pwrite n%d [%zu, +%zu): %s", i, off, n,
                                     w < 0 ? strerror(errno) : "wrote 0");
                        done += (size_t)w;
                }
                model_write(f, off, g_buf, n);
                break;
        }
        case OP_READ: {
                size_t off = (size_t)below(f->size + 8192);
                size_t n = pick_len();

                ensure_fd(i);
                note("pread n%d (file #%u) [%zu, +%zu) size %zu", i, f->serial, off, n, f->size);
                check_range(i, off, n, "read");
                break;
        }
        case OP_TRUNC: {
                size_t n = below(2) ? (size_t)below(f->size + 1) : (size_t)below(g_max + 1);

                ensure_fd(i);
                note("ftruncate n%d (file #%u) %zu -> %zu", i, f->serial, f->size, n);
                if (ftruncate(f->fd, (off_t)n) < 0)
                        fail("ftruncate n%d to %zu: %s", i, n, strerror(errno));
                model_resize(f, n);
                break;
        }
        case OP_APPEND: {
                size_t n = 1 + (size_t)below(8192);
                char name[16];
                off_t pos;

                if (f->size + n > g_max) {
                        note("append n%d skipped (size %zu)", i, f->size);
                        break;
                }
                if (f->afd < 0) {
                        name_of(i, name, sizeof(name));
                        f->afd = open(name, O_WRONLY | O_APPEND | O_CLOEXEC);
                        if (f->afd < 0)
                                fail("open n%d O_APPEND: %s", i, strerror(errno));
                }
                fill(g_buf, n);
                note("append n%d (file #%u) %zu bytes at %zu", i, f->serial, n, f->size);
                for (size_t done = 0; done < n;) {
                        ssize_t w = write(f->afd, g_buf + done, n - done);

                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                fail("append n%d: %s", i, w < 0 ? strerror(errno) : "wrote 0");
                        done += (size_t)w;
                }
                model_write(f, f->size, g_buf, n);
                pos = lseek(f->afd, 0, SEEK_CUR);
                if (pos != (off_t)f->size)
                        fail("after an O_APPEND write to n%d the offset is %lld, model size %zu",
                             i, (long long)pos, f->size);
                break;
        }
        case OP_RENAME: {
                int j = (int)below(NNAMES - 1);
                char a[16], b[16];

                if (j >= i)
                        j++;
                name_of(i, a, sizeof(a));
                name_of(j, b, sizeof(b));
                note("rename n%d (file #%u) -> n%d (%s)", i, f->serial, j,
                     g_names[j] ? "replacing" : "free");
                /* Descriptors stay open on the moved file; the replaced file's close first. */
                if (g_names[j])
                        close_fds(g_names[j]);
                if (rename(a, b) < 0)
                        fail("rename %s -> %s: %s", a, b, strerror(errno));
                drop(j);
                g_names[j] = f;
                g_names[i] = NULL;
                i = j;
                if (below(4) == 0)
                        check_size(i, "after rename");
                break;
        }
        case OP_REOPEN: {
                char name[16];
                int trunc = below(10) == 0;

                note("reopen n%d (file #%u)%s size %zu", i, f->serial, trunc ? " O_TRUNC" : "",
                     f->size);
                close_fds(f);
                name_of(i, name, sizeof(name));
                f->fd = open(name, O_RDWR | O_CLOEXEC | (trunc ? O_TRUNC : 0));
                if (f->fd < 0)
                        fail("reopen %s: %s", name, strerror(errno));
                if (trunc)
                        model_resize(f, 0);
                check_size(i, "after reopen");
                break;
        }
        case OP_FSYNC:
                ensure_fd(i);
                note("fsync n%d (file #%u)", i, f->serial);
                if (fsync(f->fd) < 0)
                        fail("fsync n%d: %s", i, strerror(errno));
                break;
        case OP_STAT:
                note("stat n%d (file #%u) size %zu", i, f->serial, f->size);
                check_size(i, "stat");
                break;
        case OP_FULL:
                ensure_fd(i);
                note("full read n%d (file #%u) size %zu", i, f->serial, f->size);
                check_size(i, "full read");
                check_range(i, 0, f->size + 1, "full read");
                break;
        case OP_FCHMOD:
        case OP_FCHOWN:
        case OP_FUTIMENS: {
                /* On the O_APPEND descriptor when there is one, half the time. */
                int use_afd = f->afd >= 0 && below(2);
                int fd;
                mode_t mode = 0600 | (mode_t)below(0100);
                uid_t uid = (uid_t)below(2) * 1000;
                gid_t gid = (gid_t)below(2) * 1000;
                struct timespec ts[2] = { { 0, UTIME_OMIT },
                                          { (time_t)(1000000000 + below(1000000000)),
                                            (long)below(1000000000) } };
                struct stat st;
                int rc;

                if (!use_afd)
                        ensure_fd(i);
                fd = use_afd ? f->afd : f->fd;
                note("%s n%d (file #%u) on the %s descriptor, size %zu", op_names[kind], i,
                     f->serial, use_afd ? "O_APPEND" : "O_RDWR", f->size);
                if (kind == OP_FCHMOD)
                        rc = fchmod(fd, mode);
                else if (kind == OP_FCHOWN)
                        rc = fchown(fd, uid, gid);
                else
                        rc = futimens(fd, ts);
                if (rc < 0)
                        fail("%s n%d: %s", op_names[kind], i, strerror(errno));
                if (fstat(fd, &st) < 0)
                        fail("fstat n%d after %s: %s", i, op_names[kind], strerror(errno));
                if ((size_t)st.st_size != f->size)
                        fail("after %s, fstat n%d (file #%u) size %lld, model %zu", op_names[kind],
                             i, f->serial, (long long)st.st_size, f->size);
                if (kind == OP_FCHMOD && (st.st_mode & 07777) != mode)
                        fail("after fchmod n%d: mode %o, set %o", i, st.st_mode & 07777, mode);
                if (kind == OP_FCHOWN && (st.st_uid != uid || st.st_gid != gid))
                        fail("after fchown n%d: owner %u:%u, set %u:%u", i, st.st_uid, st.st_gid,
                             uid, gid);
                if (kind == OP_FUTIMENS && (st.st_mtim.tv_sec != ts[1].tv_sec ||
                                            st.st_mtim.tv_nsec != ts[1].tv_nsec))
                        fail("after futimens n%d: mtime %lld.%09ld, set %lld.%09ld", i,
                             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                             (long long)ts[1].tv_sec, ts[1].tv_nsec);
                if (!use_afd && below(2))
                        check_range(i, 0, f->size + 1, op_names[kind]);
                break;
        }
        case OP_UNLINK: {
                char name[16];

                name_of(i, name, sizeof(name));
                note("unlink n%d (file #%u)", i, f->serial);
                close_fds(f);
                if (unlink(name) < 0)
                        fail("unlink %s: %s", name, strerror(errno));
                drop(i);
                if (below(2)) {
                        note("unlink n%d and create it again", i);
                        create(i);
                }
                break;
        }
        }
}

static void final_check(void)
{
        DIR *d;
        struct dirent *de;
        int listed[NNAMES] = { 0 };

        for (int i = 0; i < NNAMES; i++) {
                if (!g_names[i])
                        continue;
                close_fds(g_names[i]);
        }
        for (int i = 0; i < NNAMES; i++) {
                if (!g_names[i])
                        continue;
                note("final check n%d (file #%u) size %zu", i, g_names[i]->serial,
                     g_names[i]->size);
                ensure_fd(i);
                check_size(i, "final");
                check_range(i, 0, g_names[i]->size + 1, "final");
                close_fds(g_names[i]);
        }
        d = opendir(".");
        if (!d)
                fail("opendir: %s", strerror(errno));
        while ((de = readdir(d))) {
                int i;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (de->d_name[0] != 'n' || (i = atoi(de->d_name + 1)) < 0 || i >= NNAMES ||
                    !g_names[i])
                        fail("final listing: unexpected entry \"%s\"", de->d_name);
                listed[i]++;
        }
        closedir(d);
        for (int i = 0; i < NNAMES; i++)
                if (g_names[i] && listed[i] != 1)
                        fail("final listing: n%d listed %d times", i, listed[i]);
}

static void usage(void)
{
        fprintf(stderr, "usage: model_test DIR [--ops N] [--seed S] [--max-size BYTES] [--quiet]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        const char *dir = NULL;
        uint64_t ops = 100000;
        int have_seed = 0, quiet = 0;
        struct timespec t0, t1;
        char *end;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
                        ops = strtoull(argv[++i], &end, 0);
                        if (*end)
                                usage();
                } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
                        g_seed = strtoull(argv[++i], &end, 0);
                        if (*end)
                                usage();
                        have_seed = 1;
                } else if (strcmp(argv[i], "--max-size") == 0 && i + 1 < argc) {
                        g_max = strtoull(argv[++i], &end, 0);
                        if (*end || g_max < 65536)
                                usage();
                } else if (strcmp(argv[i], "--quiet") == 0) {
                        quiet = 1;
                } else if (argv[i][0] == '-' || dir) {
                        usage();
                } else {
                        dir = argv[i];
                }
        }
        if (!dir)
                usage();
        if (!have_seed) {
                clock_gettime(CLOCK_REALTIME, &t0);
                g_seed = ((uint64_t)t0.tv_sec * 1000000007ULL) ^ (uint64_t)t0.tv_nsec ^
                         ((uint64_t)getpid() << 32);
        }
        g_rng = g_seed;
        printf("model_test: seed %" PRIu64 ", %" PRIu64 " operations, files up to %zu bytes\n",
               g_seed, ops, g_max);
        fflush(stdout);
        signal(SIGALRM, on_alarm);
        alarm(1800);

        g_buf = malloc(g_max + 262144);
        g_back = malloc(g_max + 262144);
        if (!g_buf || !g_back) {
                perror("malloc");
                return 1;
        }
        snprintf(g_dir, sizeof(g_dir), "%s/model.%d", dir, (int)getpid());
        if (mkdir(g_dir, 0755) < 0 || chdir(g_dir) < 0) {
                fprintf(stderr, "model_test: cannot make %s: %s\n", g_dir, strerror(errno));
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (g_op = 0; g_op < ops; g_op++) {
                step();
                if (!quiet && g_op > 0 && g_op % 20000 == 0) {
                        printf("model_test: %" PRIu64 " operations done\n", g_op);
                        fflush(stdout);
                }
        }
        final_check();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("model_test: OK, %" PRIu64 " operations in %.1f s (seed %" PRIu64 ")\n", ops,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
               g_seed);
        printf("model_test: counts:");
        for (int k = 0; k < OP_NKIND; k++)
                printf(" %s=%lu", op_names[k], g_count[k]);
        printf(" create=%lu\n", g_count[OP_NKIND]);

        for (int i = 0; i < NNAMES; i++) {
                char name[16];

                if (!g_names[i])
                        continue;
                name_of(i, name, sizeof(name));
                unlink(name);
                drop(i);
        }
        if (chdir("..") == 0)
                rmdir(g_dir);
        free(g_buf);
        free(g_back);
        return 0;
}
