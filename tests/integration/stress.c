/*
 * stress.c -- concurrent random operations on a real mount, to find what
 * kills locusfs-mount (use-after-free, double free, deadlock) rather than
 * to check content (model_test.c does that, single-threaded).
 *
 * usage:
 *   stress rwrace DIR [--iters N]
 *       one thread loops open(O_WRONLY) / pwrite 4 KiB / close on DIR/race
 *       while another preads it through one O_RDONLY descriptor (the last
 *       close of a write session racing a read that names it).  Exit 0 if
 *       every call succeeded.
 *   stress mixed DIR [--procs P] [--threads T] [--ops N] [--secs S] [--seed S]
 *       P processes of T threads each do N random operations (or stop
 *       after S seconds) on a small shared set of names in DIR, so that
 *       they collide: create, open/pwrite/pread/close, truncate, ftruncate,
 *       rename (also RENAME_NOREPLACE / RENAME_EXCHANGE), link, unlink,
 *       mkdir, rmdir, chmod/chown/utimensat, fchmod/fchown/futimens on open
 *       descriptors, O_APPEND writes, user.* xattrs, fsync, fallocate,
 *       writes through a shared mmap, readdir, stat.  Each thread keeps a
 *       few descriptors open across operations.  Errors that collisions
 *       explain (ENOENT, EEXIST, ENOTEMPTY, ...) are counted and fine; any
 *       other error is printed and makes the exit status 1; ENOTCONN (the
 *       mount died) stops the run at once.
 *
 * The seed is printed; counts of operations and errors at the end.
 * Exit: 0 ok, 1 an unexpected error, 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define NFILES 8
#define NDIRS 3
#define NFDS 4
#define MAXOFF (256u * 1024u)
#define MAXLEN (64u * 1024u)

static const char *g_dir;
static uint64_t g_seed;
static unsigned g_ops = 3000, g_secs = 90, g_threads = 3, g_procs = 4;
static uint64_t g_end_us;
static atomic_int g_dead;               /* the mount is gone: stop */
static atomic_ulong g_bad;              /* unexpected errors */

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- per-thread state ----------------------------------------------------------- */

enum { OP_CREATE, OP_WRITE, OP_READ, OP_TRUNCATE, OP_FTRUNCATE, OP_RENAME, OP_LINK,
       OP_UNLINK, OP_MKDIR, OP_RMDIR, OP_CHMOD, OP_FCHMOD, OP_CHOWN, OP_FCHOWN, OP_UTIMES,
       OP_FUTIMENS, OP_APPEND, OP_XATTR, OP_FSYNC, OP_FALLOCATE, OP_MMAP, OP_READDIR,
       OP_STAT, OP_HOLD, OP_FDWRITE, OP_FDREAD, OP_NKIND };
static const char *const op_names[OP_NKIND] = {
        "create", "write", "read", "truncate", "ftruncate", "rename", "link", "unlink", "mkdir",
        "rmdir", "chmod", "fchmod", "chown", "fchown", "utimes", "futimens", "append", "xattr",
        "fsync", "fallocate", "mmap", "readdir", "stat", "hold", "fdwrite", "fdread",
};

struct worker {
        pthread_t thr;
        unsigned id;
        uint64_t rng;
        int fd[NFDS];                   /* descriptors kept open, or -1 */
        unsigned long count[OP_NKIND];
        unsigned long errs;             /* expected errors */
        uint8_t *buf;
        sigjmp_buf bus;                 /* SIGBUS in an mmap write */
        volatile sig_atomic_t in_mmap;
};

static __thread struct worker *t_self;

static uint64_t rnd(struct worker *w)
{
        uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t below(struct worker *w, uint64_t n)
{
        return n ? rnd(w) % n : 0;
}

/* A random file path: DIR/fN or DIR/dM/fN. */
static void pick_file(struct worker *w, char *buf, size_t n)
{
        if (below(w, 3) == 0)
                snprintf(buf, n, "%s/d%u/f%u", g_dir, (unsigned)below(w, NDIRS),
                         (unsigned)below(w, NFILES / 2));
        else
                snprintf(buf, n, "%s/f%u", g_dir, (unsigned)below(w, NFILES));
}

static void pick_dir(struct worker *w, char *buf, size_t n)
{
        snprintf(buf, n, "%s/d%u", g_dir, (unsigned)below(w, NDIRS));
}

/* Errors a collision with another thread explains (a rename may put a
 * directory where a file was, and link(2) of a directory is EPERM). */
static bool expected(int op, int e)
{
        if (op == OP_LINK && e == EPERM)
                return true;
        switch (e) {
        case ENOENT:
        case EEXIST:
        case ENOTEMPTY:
        case ENOTDIR:
        case EISDIR:
        case ENODATA:
        case EINVAL:
        case EBUSY:
        case EMLINK:
        case ENOSPC:
        case ERANGE:
                return true;
        default:
                return false;
        }
}

/* Account for the result of one call (r < 0: errno is the error). */
static void check(struct worker *w, int op, long r, const char *what)
{
        int e = errno;

        if (r >= 0)
                return;
        if (e == ENOTCONN || e == ECONNABORTED) {
                if (!atomic_exchange(&g_dead, 1))
                        fprintf(stderr, "stress: %s (%s): %s: the mount is gone\n",
                                op_names[op], what, strerror(e));
                return;
        }
        if (expected(op, e)) {
                w->errs++;
                return;
        }
        atomic_fetch_add(&g_bad, 1);
        fprintf(stderr, "stress: thread %u: %s (%s): unexpected %s\n", w->id, op_names[op],
                what, strerror(e));
}

static void fill(struct worker *w, size_t n)
{
        uint64_t x = rnd(w);

        for (size_t i = 0; i < n; i += 8) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                memcpy(w->buf + i, &x, n - i < 8 ? n - i : 8);
        }
}

static int any_fd(struct worker *w)
{
        unsigned k = (unsigned)below(w, NFDS);

        for (unsigned i = 0; i < NFDS; i++) {
                int fd = w->fd[(k + i) % NFDS];

                if (fd >= 0)
                        return fd;
        }
        return -1;
}

static void on_bus(int sig)
{
        (void)sig;
        if (t_self && t_self->in_mmap)
                siglongjmp(t_self->bus, 1);
        signal(SIGBUS, SIG_DFL);
        raise(SIGBUS);
}

/* Write a few bytes through a shared mapping of fd's first page(s). */
static void mmap_write(struct worker *w, int fd)
{
        struct stat st;
        size_t len;
        uint8_t *p;
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || (fl & O_ACCMODE) != O_RDWR || fstat(fd, &st) < 0 || st.st_size <= 0)
                return;
        len = (size_t)st.st_size < 65536 ? (size_t)st.st_size : 65536;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                check(w, OP_MMAP, -1, "mmap");
                return;
        }
        if (sigsetjmp(w->bus, 1) == 0) {
                w->in_mmap = 1;
                for (size_t i = 0; i < len; i += 4096)
                        p[i] = (uint8_t)rnd(w);
                p[len - 1] ^= 1;
                w->in_mmap = 0;
                check(w, OP_MMAP, msync(p, len, below(w, 2) ? MS_SYNC : MS_ASYNC), "msync");
        } else {
                w->in_mmap = 0;         /* truncated under us: SIGBUS, as on any fs */
        }
        munmap(p, len);
}

static void step(struct worker *w)
{
        char a[512], b[512];
        int op = (int)below(w, OP_NKIND), fd, slot;
        long r;

        w->count[op]++;
        pick_file(w, a, sizeof(a));
        switch (op) {
        case OP_CREATE: {
                int fl = O_CREAT | O_WRONLY | O_CLOEXEC;
                uint64_t k = below(w, 4);

                fl |= k == 0 ? O_EXCL : k == 1 ? O_TRUNC : 0;
                fd = open(a, fl, 0644);
                check(w, op, fd, a);
                if (fd >= 0) {
                        size_t n = (size_t)below(w, 8192);

                        fill(w, n);
                        check(w, op, write(fd, w->buf, n), "write after create");
                        check(w, op, close(fd), "close after create");
                }
                break;
        }
        case OP_WRITE: {
                size_t off = (size_t)below(w, MAXOFF), n = 1 + (size_t)below(w, MAXLEN);

                fd = open(a, O_WRONLY | O_CLOEXEC);
                check(w, op, fd, a);
                if (fd < 0)
                        break;
                fill(w, n);
                check(w, op, pwrite(fd, w->buf, n, (off_t)off), "pwrite");
                if (below(w, 4) == 0)
                        check(w, op, fsync(fd), "fsync before close");
                check(w, op, close(fd), "close after write");
                break;
        }
        case OP_READ:
                fd = open(a, O_RDONLY | O_CLOEXEC);
                check(w, op, fd, a);
                if (fd < 0)
                        break;
                check(w, op, pread(fd, w->buf, 1 + below(w, MAXLEN), (off_t)below(w, MAXOFF)),
                      "pread");
                check(w, op, close(fd), "close after read");
                break;
        case OP_TRUNCATE:
                check(w, op, truncate(a, (off_t)below(w, MAXOFF)), a);
                break;
        case OP_FTRUNCATE:
                fd = any_fd(w);
                if (fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
                        check(w, op, ftruncate(fd, (off_t)below(w, MAXOFF)), "ftruncate");
                break;
        case OP_RENAME: {
                unsigned fl = 0;
                uint64_t k = below(w, 6);

                if (below(w, 5) == 0)
                        pick_dir(w, a, sizeof(a));
                pick_file(w, b, sizeof(b));
                fl = k == 0 ? RENAME_NOREPLACE : k == 1 ? RENAME_EXCHANGE : 0;
                check(w, op, renameat2(AT_FDCWD, a, AT_FDCWD, b, fl), a);
                break;
        }
        case OP_LINK:
                pick_file(w, b, sizeof(b));
                check(w, op, link(a, b), a);
                break;
        case OP_UNLINK:
                check(w, op, unlink(a), a);
                break;
        case OP_MKDIR:
                pick_dir(w, a, sizeof(a));
                check(w, op, mkdir(a, 0755), a);
                break;
        case OP_RMDIR:
                pick_dir(w, a, sizeof(a));
                check(w, op, rmdir(a), a);
                break;
        case OP_CHMOD:
                check(w, op, chmod(a, 0600 | (mode_t)below(w, 0100)), a);
                break;
        case OP_FCHMOD:
                fd = any_fd(w);
                if (fd >= 0)
                        check(w, op, fchmod(fd, 0600 | (mode_t)below(w, 0100)), "fchmod");
                break;
        case OP_CHOWN:
                check(w, op, chown(a, (uid_t)below(w, 2) * 1000, (gid_t)below(w, 2) * 1000), a);
                break;
        case OP_FCHOWN:
                fd = any_fd(w);
                if (fd >= 0)
                        check(w, op, fchown(fd, (uid_t)below(w, 2) * 1000,
                                            (gid_t)below(w, 2) * 1000), "fchown");
                break;
        case OP_UTIMES: {
                struct timespec ts[2] = { { (time_t)below(w, 2000000000), 0 },
                                          { 0, UTIME_NOW } };

                check(w, op, utimensat(AT_FDCWD, a, ts, 0), a);
                break;
        }
        case OP_FUTIMENS: {
                struct timespec ts[2] = { { 0, UTIME_OMIT },
                                          { (time_t)below(w, 2000000000), 5 } };

                fd = any_fd(w);
                if (fd >= 0)
                        check(w, op, futimens(fd, ts), "futimens");
                break;
        }
        case OP_APPEND: {
                size_t n = 1 + (size_t)below(w, 8192);

                fd = open(a, O_WRONLY | O_APPEND | O_CLOEXEC);
                check(w, op, fd, a);
                if (fd < 0)
                        break;
                fill(w, n);
                check(w, op, write(fd, w->buf, n), "append");
                if (below(w, 3) == 0)
                        check(w, op, fchmod(fd, 0644), "fchmod between appends");
                check(w, op, write(fd, w->buf, n), "append");
                check(w, op, close(fd), "close after append");
                break;
        }
        case OP_XATTR: {
                char name[32], val[64];
                uint64_t k = below(w, 4);

                snprintf(name, sizeof(name), "user.k%u", (unsigned)below(w, 4));
                if (k == 0) {
                        int n = snprintf(val, sizeof(val), "v%" PRIu64, rnd(w));

                        check(w, op, setxattr(a, name, val, (size_t)n, 0), a);
                } else if (k == 1) {
                        r = getxattr(a, name, val, sizeof(val));
                        check(w, op, r, a);
                } else if (k == 2) {
                        r = listxattr(a, (char *)w->buf, MAXLEN);
                        check(w, op, r, a);
                } else {
                        check(w, op, removexattr(a, name), a);
                }
                break;
        }
        case OP_FSYNC:
                fd = any_fd(w);
                if (fd >= 0)
                        check(w, op, below(w, 2) ? fsync(fd) : fdatasync(fd), "fsync");
                break;
        case OP_FALLOCATE: {
                static const int modes[] = { 0, FALLOC_FL_KEEP_SIZE,
                                             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE };

                fd = any_fd(w);
                if (fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY)
                        check(w, op, fallocate(fd, modes[below(w, 3)], (off_t)below(w, MAXOFF),
                                               1 + (off_t)below(w, MAXLEN)), "fallocate");
                break;
        }
        case OP_MMAP:
                fd = any_fd(w);
                if (fd >= 0)
                        mmap_write(w, fd);
                break;
        case OP_READDIR: {
                DIR *d;
                struct dirent *de;

                if (below(w, 2))
                        pick_dir(w, a, sizeof(a));
                else
                        snprintf(a, sizeof(a), "%s", g_dir);
                d = opendir(a);
                check(w, op, d ? 0 : -1, a);
                if (!d)
                        break;
                while ((de = readdir(d)))
                        ;
                closedir(d);
                break;
        }
        case OP_STAT: {
                struct stat st;

                fd = any_fd(w);
                if (fd >= 0 && below(w, 2))
                        check(w, op, fstat(fd, &st), "fstat");
                else
                        check(w, op, lstat(a, &st), a);
                break;
        }
        case OP_HOLD: {
                static const int modes[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_APPEND };

                slot = (int)below(w, NFDS);
                if (w->fd[slot] >= 0) {
                        check(w, op, close(w->fd[slot]), "close held");
                        w->fd[slot] = -1;
                } else {
                        w->fd[slot] = open(a, modes[below(w, 4)] | O_CLOEXEC);
                        check(w, op, w->fd[slot], a);
                }
                break;
        }
        case OP_FDWRITE: {
                size_t n = 1 + (size_t)below(w, MAXLEN);

                fd = any_fd(w);
                if (fd < 0 || (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY)
                        break;
                fill(w, n);
                check(w, op, pwrite(fd, w->buf, n, (off_t)below(w, MAXOFF)), "pwrite held");
                break;
        }
        case OP_FDREAD:
                fd = any_fd(w);
                if (fd < 0 || (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY)
                        break;
                check(w, op, pread(fd, w->buf, 1 + below(w, MAXLEN), (off_t)below(w, MAXOFF)),
                      "pread held");
                break;
        }
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;

        t_self = w;
        for (unsigned i = 0; i < g_ops && !atomic_load(&g_dead); i++) {
                if ((i & 63) == 0 && now_us() >= g_end_us)
                        break;
                step(w);
        }
        for (int k = 0; k < NFDS; k++) {
                if (w->fd[k] >= 0)
                        check(w, OP_HOLD, close(w->fd[k]), "final close");
                w->fd[k] = -1;
        }
        return NULL;
}

/* One process: g_threads workers.  Exit status as main's. */
static int run_proc(unsigned p)
{
        struct worker *w = calloc(g_threads, sizeof(*w));
        unsigned long count[OP_NKIND] = { 0 }, errs = 0, total = 0;
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_bus;
        sigaction(SIGBUS, &sa, NULL);
        if (!w)
                return 1;
        for (unsigned t = 0; t < g_threads; t++) {
                w[t].id = p * g_threads + t;
                w[t].rng = g_seed ^ ((uint64_t)(w[t].id + 1) * 0x2545f4914f6cdd1dULL);
                for (int k = 0; k < NFDS; k++)
                        w[t].fd[k] = -1;
                w[t].buf = malloc(MAXLEN + 8);
                if (!w[t].buf || pthread_create(&w[t].thr, NULL, worker_main, &w[t]) != 0) {
                        fprintf(stderr, "stress: cannot start a thread\n");
                        return 1;
                }
        }
        for (unsigned t = 0; t < g_threads; t++) {
                pthread_join(w[t].thr, NULL);
                for (int k = 0; k < OP_NKIND; k++) {
                        count[k] += w[t].count[k];
                        total += w[t].count[k];
                }
                errs += w[t].errs;
                free(w[t].buf);
        }
        printf("stress: process %u: %lu operations (%lu expected errors):", p, total, errs);
        for (int k = 0; k < OP_NKIND; k++)
                printf(" %s=%lu", op_names[k], count[k]);
        printf("\n");
        fflush(stdout);
        free(w);
        if (atomic_load(&g_dead))
                return 1;
        return atomic_load(&g_bad) ? 1 : 0;
}

static int mixed(void)
{
        pid_t pids[64];
        int rc = 0;

        for (unsigned d = 0; d < NDIRS; d++) {
                char a[512];

                snprintf(a, sizeof(a), "%s/d%u", g_dir, d);
                if (mkdir(a, 0755) < 0 && errno != EEXIST) {
                        fprintf(stderr, "stress: mkdir %s: %s\n", a, strerror(errno));
                        return 1;
                }
        }
        fflush(stdout);
        for (unsigned p = 0; p < g_procs; p++) {
                pids[p] = fork();
                if (pids[p] < 0) {
                        perror("stress: fork");
                        return 1;
                }
                if (pids[p] == 0)
                        _exit(run_proc(p));
        }
        for (unsigned p = 0; p < g_procs; p++) {
                int st;

                if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr, "stress: process %u failed (status %#x)\n", p, st);
                        rc = 1;
                }
        }
        return rc;
}

/* ---- rwrace --------------------------------------------------------------------- */

static atomic_int g_stop;

static void *race_reader(void *arg)
{
        char buf[4096];
        int fd = *(int *)arg;
        long n = 0;

        while (!atomic_load(&g_stop)) {
                if (pread(fd, buf, sizeof(buf), 0) < 0) {
                        fprintf(stderr, "stress: rwrace: pread after %ld: %s\n", n, strerror(errno));
                        atomic_store(&g_stop, 2);
                        break;
                }
                n++;
        }
        return NULL;
}

static int rwrace(unsigned iters)
{
        char path[512], buf[4096];
        pthread_t thr;
        int rfd, fd, rc = 0;

        snprintf(path, sizeof(path), "%s/race", g_dir);
        memset(buf, 'w', sizeof(buf));
        fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) || close(fd) < 0) {
                fprintf(stderr, "stress: rwrace: create %s: %s\n", path, strerror(errno));
                return 1;
        }
        rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) {
                fprintf(stderr, "stress: rwrace: open %s: %s\n", path, strerror(errno));
                return 1;
        }
        if (pthread_create(&thr, NULL, race_reader, &rfd) != 0)
                return 1;
        for (unsigned i = 0; i < iters && !atomic_load(&g_stop); i++) {
                buf[0] = (char)i;
                fd = open(path, O_WRONLY | O_CLOEXEC);
                if (fd < 0 || pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
                    close(fd) < 0) {
                        fprintf(stderr, "stress: rwrace: open/pwrite/close #%u: %s\n", i,
                                strerror(errno));
                        rc = 1;
                        break;
                }
        }
        if (!atomic_load(&g_stop))
                atomic_store(&g_stop, 1);
        pthread_join(thr, NULL);
        if (atomic_load(&g_stop) == 2)
                rc = 1;
        if (close(rfd) < 0)
                rc = 1;
        printf("stress: rwrace: %s\n", rc ? "FAILED" : "ok");
        return rc;
}

static void usage(void)
{
        fprintf(stderr, "usage: stress rwrace DIR [--iters N]\n"
                        "       stress mixed DIR [--procs P] [--threads T] [--ops N] [--secs S] "
                        "[--seed S]\n");
        exit(2);
}

static unsigned num(const char *s)
{
        char *end;
        unsigned long v = strtoul(s, &end, 0);

        if (*end || v == 0 || v > 1000000000ul)
                usage();
        return (unsigned)v;
}

int main(int argc, char **argv)
{
        unsigned iters = 2000;
        bool have_seed = false;
        char *end;

        if (argc < 3)
                usage();
        g_dir = argv[2];
        for (int i = 3; i < argc; i++) {
                if (i + 1 >= argc)
                        usage();
                if (!strcmp(argv[i], "--iters"))
                        iters = num(argv[++i]);
                else if (!strcmp(argv[i], "--procs"))
                        g_procs = num(argv[++i]);
                else if (!strcmp(argv[i], "--threads"))
                        g_threads = num(argv[++i]);
                else if (!strcmp(argv[i], "--ops"))
                        g_ops = num(argv[++i]);
                else if (!strcmp(argv[i], "--secs"))
                        g_secs = num(argv[++i]);
                else if (!strcmp(argv[i], "--seed")) {
                        g_seed = strtoull(argv[++i], &end, 0);
                        if (*end)
                                usage();
                        have_seed = true;
                } else {
                        usage();
                }
        }
        if (g_procs > 64 || g_threads > 64)
                usage();
        if (!have_seed)
                g_seed = now_us() ^ ((uint64_t)getpid() << 32);
        g_end_us = now_us() + (uint64_t)g_secs * 1000000u;
        if (!strcmp(argv[1], "rwrace"))
                return rwrace(iters);
        if (!strcmp(argv[1], "mixed")) {
                printf("stress: seed %" PRIu64 ", %u processes x %u threads x %u operations "
                       "(at most %u s)\n", g_seed, g_procs, g_threads, g_ops, g_secs);
                fflush(stdout);
                return mixed();
        }
        usage();
        return 2;
}
