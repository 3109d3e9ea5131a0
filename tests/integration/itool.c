/*
 * itool.c -- small workers and checkers for the integration shell tests
 * (crash_*.sh, restart.sh, rebuild.sh).  Everything it writes on the mount
 * is self-describing, so a checker can tell a complete version of a file
 * from a mix of two or from garbage without keeping copies.
 *
 * File content "generation g of NAME" (gen_fill): a 32-byte header
 *   "LOCUSGEN" | u64 LE gen | u64 LE size | u64 LE hash(basename)
 * followed by pseudo-random bytes seeded by (hash, gen).  The writer picks
 * its size from (hash, gen) between --min and --max; checkers trust the
 * size in the header and require the file to have exactly that length.
 *
 * usage:
 *   itool mkfiles DIR PREFIX COUNT [--min N] [--max N]
 *       create DIR/PREFIX0000.. with generation 0, each fsync'ed and closed
 *   itool verify DIR PREFIX COUNT [--min N] [--max N]
 *       every DIR/PREFIX#### holds exactly generation 0
 *   itool writer DIR LOG NAME... [--create PREFIX] [--min N] [--max N] [--chunk N]
 *                [--stop-file PATH]
 *       until SIGTERM/SIGINT: rewrite each DIR/NAME with the next generation
 *       (open O_TRUNC or ftruncate, write in chunks, fsync every third
 *       time, close), then create one new file DIR/PREFIX#### (generation =
 *       its number).  LOG (on a local disk) gets one line per event:
 *         B NAME GEN        about to open NAME for generation GEN
 *         O NAME GEN        close() of GEN returned 0 (committed)
 *         F NAME GEN CALL ERRNO   a call failed; the descriptor was closed
 *       A stop request is honoured between files only, so the writer never
 *       closes (= commits) a half-written file on purpose.
 *       --stop-file PATH: when PATH exists after the first chunk of a file
 *       was written and more remain, the writer removes it and stops itself
 *       (SIGSTOP) with the file open, half written (its write session
 *       open); it goes on where it was at SIGCONT.
 *   itool verify-writer DIR LOG NAME... [--create PREFIX] [--min N] [--max N]
 *       for each NAME: its content is a complete generation between the
 *       last one whose close returned 0 (0 if none) and the last one begun;
 *       for each created file: complete and right if its close returned 0,
 *       else absent, empty or complete; no other names in DIR but those.
 *   itool reader FILE STATUS
 *       until SIGTERM: open, read all, check it is one complete generation,
 *       close; writes the count of good reads to STATUS (local disk) after
 *       each; on SIGTERM prints "reads=N errors=E longest_ms=M" and exits
 *       0 if there was no error.
 *   itool watch-read FILE TEXT SECONDS READY
 *       open FILE once and keep it open; read it from offset 0 (pread),
 *       create READY after the first read, and again every 20 ms until
 *       the content is exactly TEXT: prints "seen ms=N" (since the first
 *       read) and exits 0; after SECONDS prints what it last read and
 *       exits 1.  A reader holding the file open sees another mount's
 *       commit only once its kernel page cache is invalidated.
 *   itool timed-read FILE
 *       open + read + close once; prints "result=OK|<ERRNO NAME> ms=N";
 *       exit 0 on success, 1 on failure.
 *   itool setxattr PATH NAME VALUE / itool rmxattr PATH NAME
 *       lsetxattr / lremovexattr (no setfattr needed on the test machine)
 *   itool getxattr PATH NAME
 *       prints the value; exit 3 if there is none
 *   itool treesum DIR [--no-ino] [--no-ctime]
 *       one line per inode under DIR, sorted by path: type, mode, owner,
 *       size, links, inode number, mtime, ctime (ns), a hash of the content
 *       or the symlink target, and every xattr with a hash of its value.
 *
 * Exit status: 0 success, 1 a check failed or an unexpected error, 2 usage.
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
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define HDR 32

static volatile sig_atomic_t g_stop;
static size_t g_min = 65536, g_max = 1u << 20, g_chunk = 65536;
static const char *g_stop_file;         /* writer --stop-file */

static void on_stop(int sig)
{
        (void)sig;
        g_stop = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "itool: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        exit(1);
}

static int64_t now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *errname(int e)
{
        switch (e) {
        case 0: return "OK";
        case EIO: return "EIO";
        case ENOENT: return "ENOENT";
        case ETIMEDOUT: return "ETIMEDOUT";
        case ENOTCONN: return "ENOTCONN";
        case ESTALE: return "ESTALE";
        case EAGAIN: return "EAGAIN";
        case EINTR: return "EINTR";
        case ECONNREFUSED: return "ECONNREFUSED";
        case EHOSTUNREACH: return "EHOSTUNREACH";
        case ENOSPC: return "ENOSPC";
        case EACCES: return "EACCES";
        case EBADMSG: return "EBADMSG";
        default: return strerror(e);
        }
}

/* ---- content ---- */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
        const uint8_t *b = p;

        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

static uint64_t name_hash(const char *path)
{
        const char *base = strrchr(path, '/');

        base = base ? base + 1 : path;
        return hash_bytes(0xcbf29ce484222325ULL, base, strlen(base));
}

static uint64_t mix(uint64_t z)
{
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static size_t gen_size(uint64_t nh, uint64_t gen)
{
        size_t span = g_max > g_min ? g_max - g_min : 0;

        return g_min + (span ? (size_t)(mix(nh ^ (gen * 0x9e3779b97f4a7c15ULL)) % (span + 1)) : 0);
}

static void put64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

/* Generation gen of a file whose basename hashes to nh; buf holds gen_size bytes. */
static void gen_fill(uint8_t *buf, size_t size, uint64_t nh, uint64_t gen)
{
        uint64_t s = nh ^ (gen + 1) * 0xd1b54a32d192ed03ULL;

        memcpy(buf, "LOCUSGEN", 8);
        put64(buf + 8, gen);
        put64(buf + 16, size);
        put64(buf + 24, nh);
        for (size_t i = HDR; i < size; i += 8) {
                uint64_t v = mix(s += 0x9e3779b97f4a7c15ULL);

                for (size_t k = 0; k < 8 && i + k < size; k++)
                        buf[i + k] = (uint8_t)(v >> (8 * k));
        }
}

/*
 * What does buf (len bytes, the whole file) hold?  Returns the generation
 * (>= 0) if it is exactly one complete generation of that name, -1 if it is
 * empty, -2 otherwise (why in *why).
 */
static long long classify(const uint8_t *buf, size_t len, const char *path, char *why,
                          size_t whylen)
{
        static uint8_t *ref;
        static size_t refcap;
        uint64_t nh = name_hash(path), gen, size;

        if (len == 0)
                return -1;
        if (len < HDR || memcmp(buf, "LOCUSGEN", 8) != 0) {
                snprintf(why, whylen, "%zu bytes without a generation header", len);
                return -2;
        }
        gen = get64(buf + 8);
        size = get64(buf + 16);
        if (get64(buf + 24) != nh) {
                snprintf(why, whylen, "header of another file (generation %" PRIu64 ")", gen);
                return -2;
        }
        /* The header's size (not --min/--max) is what a reader checks. */
        if (size != len) {
                snprintf(why, whylen,
                         "generation %" PRIu64 " of %" PRIu64 " bytes, but the file has %zu "
                         "(cut short or extended: a mix)", gen, size, len);
                return -2;
        }
        if (refcap < len) {
                free(ref);
                refcap = len;
                ref = malloc(refcap);
                if (!ref)
                        die("out of memory");
        }
        gen_fill(ref, len, nh, gen);
        for (size_t i = 0; i < len; i++) {
                if (buf[i] != ref[i]) {
                        size_t end = i;

                        while (end < len && buf[end] != ref[end])
                                end++;
                        snprintf(why, whylen,
                                 "generation %" PRIu64 " header but bytes [%zu, %zu) differ "
                                 "(a mix or garbage)", gen, i, end);
                        return -2;
                }
        }
        return (long long)gen;
}

/* Read a whole file; *ret_len; returns 0 or -errno (ENOENT if absent). */
static int slurp(const char *path, uint8_t **ret, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t cap = 1 << 16, len = 0;
        uint8_t *buf;

        if (fd < 0)
                return -errno;
        buf = malloc(cap);
        if (!buf)
                die("out of memory");
        for (;;) {
                ssize_t r;

                if (len == cap) {
                        cap *= 2;
                        buf = realloc(buf, cap);
                        if (!buf)
                                die("out of memory");
                }
                r = read(fd, buf + len, cap - len);
                if (r < 0) {
                        int e = -errno;

                        if (errno == EINTR)
                                continue;
                        free(buf);
                        close(fd);
                        return e;
                }
                if (r == 0)
                        break;
                len += (size_t)r;
        }
        if (close(fd) < 0) {
                int e = -errno;

                free(buf);
                return e;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

static int write_gen(const char *path, uint64_t gen, int flags_mode, const char **ret_call)
{
        size_t size = gen_size(name_hash(path), gen);
        uint8_t *buf = malloc(size);
        int fd, e = 0;

        if (!buf)
                die("out of memory");
        gen_fill(buf, size, name_hash(path), gen);
        *ret_call = "open";
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (flags_mode == 1 ? 0 : O_TRUNC), 0644);
        if (fd < 0) {
                e = errno;
                goto out;
        }
        if (flags_mode == 1) {
                *ret_call = "ftruncate";
                if (ftruncate(fd, 0) < 0) {
                        e = errno;
                        close(fd);
                        goto out;
                }
        }
        *ret_call = "write";
        for (size_t off = 0; off < size;) {
                size_t n = size - off < g_chunk ? size - off : g_chunk;
                ssize_t w = write(fd, buf + off, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        e = w < 0 ? errno : EIO;
                        close(fd);
                        goto out;
                }
                off += (size_t)w;
                if (g_stop_file && off < size && unlink(g_stop_file) == 0)
                        raise(SIGSTOP);         /* half written, still open */
        }
        if (flags_mode == 2) {
                *ret_call = "fsync";
                if (fsync(fd) < 0) {
                        e = errno;
                        close(fd);
                        goto out;
                }
        }
        *ret_call = "close";
        if (close(fd) < 0)
                e = errno;
out:
        free(buf);
        return e;
}

/* ---- subcommands ---- */

static int cmd_mkfiles(const char *dir, const char *prefix, long count)
{
        char path[PATH_MAX];
        const char *call;

        for (long i = 0; i < count; i++) {
                int e;

                snprintf(path, sizeof(path), "%s/%s%04ld", dir, prefix, i);
                e = write_gen(path, 0, 2, &call);
                if (e)
                        die("mkfiles %s: %s: %s", path, call, strerror(e));
        }
        return 0;
}

static int cmd_verify(const char *dir, const char *prefix, long count)
{
        char path[PATH_MAX], why[256];
        int bad = 0;

        for (long i = 0; i < count; i++) {
                uint8_t *buf = NULL;
                size_t len = 0;
                long long g;
                int r;

                snprintf(path, sizeof(path), "%s/%s%04ld", dir, prefix, i);
                r = slurp(path, &buf, &len);
                if (r < 0) {
                        fprintf(stderr, "verify: %s: %s\n", path, strerror(-r));
                        bad++;
                        continue;
                }
                why[0] = 0;
                g = classify(buf, len, path, why, sizeof(why));
                if (g != 0) {
                        fprintf(stderr, "verify: %s: %s\n", path,
                                g == -1 ? "empty" : g > 0 ? "a later generation" : why);
                        bad++;
                }
                free(buf);
        }
        printf("verify: %ld files, %d wrong\n", count, bad);
        return bad ? 1 : 0;
}

static int g_logfd = -1;

static void logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logline(const char *fmt, ...)
{
        char line[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n > sizeof(line) - 2)
                n = (int)sizeof(line) - 2;
        line[n++] = '\n';
        if (write(g_logfd, line, (size_t)n) != n)
                die("writing the log: %s", strerror(errno));
}

static int cmd_writer(const char *dir, const char *log, char **names, int nnames,
                      const char *create)
{
        uint64_t *gen = calloc((size_t)nnames + 1, sizeof(uint64_t));
        uint64_t created = 0, ok = 0, failed = 0;
        char path[PATH_MAX];
        struct timespec pause = { 0, 100 * 1000000 };

        sigset_t stopsigs;

        g_logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (g_logfd < 0)
                die("%s: %s", log, strerror(errno));
        signal(SIGTERM, on_stop);
        signal(SIGINT, on_stop);
        /*
         * A stop request is taken between files only: blocked while a file
         * is written, so that it never interrupts a write or the close
         * (EINTR) and the writer never abandons a file half-way.
         */
        sigemptyset(&stopsigs);
        sigaddset(&stopsigs, SIGTERM);
        sigaddset(&stopsigs, SIGINT);
        sigprocmask(SIG_BLOCK, &stopsigs, NULL);
        while (!g_stop) {
                sigprocmask(SIG_UNBLOCK, &stopsigs, NULL);     /* deliver a pending stop */
                sigprocmask(SIG_BLOCK, &stopsigs, NULL);
                if (g_stop)
                        break;
                for (int i = 0; i < nnames && !g_stop; i++) {
                        const char *call;
                        int e;

                        gen[i]++;
                        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                        logline("B %s %" PRIu64, names[i], gen[i]);
                        e = write_gen(path, gen[i], (int)(gen[i] % 3), &call);
                        if (e) {
                                logline("F %s %" PRIu64 " %s %s", names[i], gen[i], call,
                                        errname(e));
                                failed++;
                                nanosleep(&pause, NULL);        /* pace retries */
                        } else {
                                logline("O %s %" PRIu64, names[i], gen[i]);
                                ok++;
                        }
                }
                if (create && !g_stop) {
                        char name[128];
                        const char *call;
                        int e;

                        snprintf(name, sizeof(name), "%s%04" PRIu64, create, created);
                        snprintf(path, sizeof(path), "%s/%s", dir, name);
                        logline("B %s %" PRIu64, name, created);
                        e = write_gen(path, created, (int)(created % 3 == 1 ? 0 : created % 3),
                                      &call);
                        if (e) {
                                logline("F %s %" PRIu64 " %s %s", name, created, call,
                                        errname(e));
                                failed++;
                                nanosleep(&pause, NULL);
                        } else {
                                logline("O %s %" PRIu64, name, created);
                                ok++;
                        }
                        created++;
                }
        }
        printf("writer: %" PRIu64 " commits, %" PRIu64 " failures, %" PRIu64 " files created\n",
               ok, failed, created);
        free(gen);
        close(g_logfd);
        return 0;
}

struct wstate {
        char name[256];
        long long last_ok;      /* -1: none */
        long long max_begun;    /* -1: none */
        int fails;
};

static struct wstate *find_state(struct wstate *s, int n, const char *name)
{
        for (int i = 0; i < n; i++)
                if (strcmp(s[i].name, name) == 0)
                        return &s[i];
        return NULL;
}

static int cmd_verify_writer(const char *dir, const char *log, char **names, int nnames,
                             const char *create)
{
        FILE *f = fopen(log, "r");
        int cap = nnames + 1024, n = 0, bad = 0;
        struct wstate *s = calloc((size_t)cap, sizeof(*s));
        char line[512], name[256], path[PATH_MAX + 256], why[256];
        DIR *d;
        struct dirent *de;

        if (!f)
                die("%s: %s", log, strerror(errno));
        for (int i = 0; i < nnames; i++) {
                snprintf(s[n].name, sizeof(s[n].name), "%s", names[i]);
                s[n].last_ok = 0;       /* made by mkfiles */
                s[n].max_begun = 0;
                n++;
        }
        while (fgets(line, sizeof(line), f)) {
                char kind;
                unsigned long long g;
                struct wstate *w;

                if (sscanf(line, "%c %255s %llu", &kind, name, &g) != 3)
                        continue;
                w = find_state(s, n, name);
                if (!w) {
                        if (n == cap) {
                                cap *= 2;
                                s = realloc(s, (size_t)cap * sizeof(*s));
                                if (!s)
                                        die("out of memory");
                        }
                        w = &s[n++];
                        memset(w, 0, sizeof(*w));
                        snprintf(w->name, sizeof(w->name), "%s", name);
                        w->last_ok = -1;
                        w->max_begun = -1;
                }
                if (kind == 'B' && (long long)g > w->max_begun)
                        w->max_begun = (long long)g;
                else if (kind == 'O')
                        w->last_ok = (long long)g;
                else if (kind == 'F')
                        w->fails++;
        }
        fclose(f);

        for (int i = 0; i < n; i++) {
                uint8_t *buf = NULL;
                size_t len = 0;
                long long g;
                int r, created = i >= nnames;

                snprintf(path, sizeof(path), "%s/%s", dir, s[i].name);
                r = slurp(path, &buf, &len);
                if (r == -ENOENT && created && s[i].last_ok < 0)
                        continue;       /* its create never happened: fine */
                if (r < 0) {
                        fprintf(stderr, "verify-writer: %s: %s\n", path, strerror(-r));
                        bad++;
                        continue;
                }
                why[0] = 0;
                g = classify(buf, len, path, why, sizeof(why));
                free(buf);
                if (g == -1 && created && s[i].last_ok < 0)
                        continue;       /* created, never committed: empty is right */
                if (g < 0) {
                        fprintf(stderr, "verify-writer: %s: %s (last committed generation %lld, "
                                "last begun %lld)\n", path, g == -1 ? "empty" : why,
                                s[i].last_ok, s[i].max_begun);
                        bad++;
                        continue;
                }
                if (created ? (s[i].last_ok >= 0 && g != s[i].last_ok) || g != s[i].max_begun
                            : g < s[i].last_ok || g > s[i].max_begun) {
                        fprintf(stderr, "verify-writer: %s: holds generation %lld, expected "
                                "%lld%s%lld\n", path, g, s[i].last_ok < 0 ? s[i].max_begun :
                                s[i].last_ok, created ? " = " : "..", s[i].max_begun);
                        bad++;
                }
        }
        /* Nothing else may be visible. */
        d = opendir(dir);
        if (!d)
                die("opendir %s: %s", dir, strerror(errno));
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (!find_state(s, n, de->d_name)) {
                        fprintf(stderr, "verify-writer: unexpected name %s/%s\n", dir, de->d_name);
                        bad++;
                }
        }
        closedir(d);
        {
                int fails = 0;

                for (int i = 0; i < n; i++)
                        fails += s[i].fails;
                printf("verify-writer: %d files (%d rewritten, %d created), %d wrong; the writer "
                       "saw %d failed generations\n", n, nnames, n - nnames, bad, fails);
        }
        (void)create;
        free(s);
        return bad ? 1 : 0;
}

static int cmd_reader(const char *file, const char *status)
{
        uint64_t reads = 0, errors = 0;
        int64_t longest = 0;
        int sfd = open(status, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        struct timespec pause = { 0, 100 * 1000000 };
        char why[256];

        if (sfd < 0)
                die("%s: %s", status, strerror(errno));
        signal(SIGTERM, on_stop);
        signal(SIGINT, on_stop);
        while (!g_stop) {
                uint8_t *buf = NULL;
                size_t len = 0;
                int64_t t0 = now_ms(), dt;
                int r = slurp(file, &buf, &len);
                char line[64];
                int n;

                dt = now_ms() - t0;
                if (dt > longest)
                        longest = dt;
                if (r < 0) {
                        if (r == -EINTR && g_stop)
                                break;
                        if (++errors <= 20)
                                fprintf(stderr, "reader: %s: %s after %lld ms\n", file,
                                        errname(-r), (long long)dt);
                        nanosleep(&pause, NULL);        /* pace a failing loop */
                        continue;
                }
                why[0] = 0;
                if (classify(buf, len, file, why, sizeof(why)) < 0) {
                        if (++errors <= 20)
                                fprintf(stderr, "reader: %s: %s\n", file, len ? why : "empty");
                        nanosleep(&pause, NULL);
                } else {
                        reads++;
                }
                free(buf);
                n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n", reads, errors);
                if (pwrite(sfd, line, (size_t)n, 0) != n || ftruncate(sfd, n) < 0)
                        die("%s: %s", status, strerror(errno));
        }
        printf("reads=%" PRIu64 " errors=%" PRIu64 " longest_ms=%lld\n", reads, errors,
               (long long)longest);
        close(sfd);
        return errors ? 1 : 0;
}

static int cmd_watch_read(const char *file, const char *text, long seconds, const char *ready)
{
        char buf[4096];
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        int64_t t0 = now_ms(), deadline = t0 + seconds * 1000;
        struct timespec pause = { 0, 20 * 1000000 };
        size_t want = strlen(text);
        ssize_t n = 0;

        if (fd < 0)
                die("open %s: %s", file, strerror(errno));
        for (int first = 1;; first = 0) {
                n = pread(fd, buf, sizeof(buf), 0);
                if (n < 0)
                        die("read %s: %s", file, strerror(errno));
                if (first) {
                        int rfd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

                        if (rfd < 0)
                                die("%s: %s", ready, strerror(errno));
                        close(rfd);
                }
                if ((size_t)n == want && memcmp(buf, text, want) == 0) {
                        printf("seen ms=%lld\n", (long long)(now_ms() - t0));
                        close(fd);
                        return 0;
                }
                if (now_ms() > deadline)
                        break;
                nanosleep(&pause, NULL);
        }
        printf("not seen in %ld s: read %zd bytes '%.*s'\n", seconds, n, (int)(n > 64 ? 64 : n), buf);
        close(fd);
        return 1;
}

static int cmd_timed_read(const char *file)
{
        uint8_t *buf = NULL;
        size_t len = 0;
        int64_t t0 = now_ms();
        int r = slurp(file, &buf, &len);

        printf("result=%s ms=%lld\n", errname(r < 0 ? -r : 0), (long long)(now_ms() - t0));
        free(buf);
        return r < 0 ? 1 : 0;
}

/* ---- treesum ---- */

static int g_no_ino, g_no_ctime;
static char **g_lines;
static size_t g_nlines, g_caplines;

static void add_line(char *s)
{
        if (g_nlines == g_caplines) {
                g_caplines = g_caplines ? 2 * g_caplines : 256;
                g_lines = realloc(g_lines, g_caplines * sizeof(*g_lines));
                if (!g_lines)
                        die("out of memory");
        }
        g_lines[g_nlines++] = s;
}

static int cmp_line(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void tree_walk(const char *root, const char *rel)
{
        char path[PATH_MAX], xl[65536], content[96], xa[8192], *line;
        struct stat st;
        ssize_t nx;
        size_t xalen = 0;
        uint8_t *buf;
        size_t len;

        snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
        if (lstat(path, &st) < 0)
                die("lstat %s: %s", path, strerror(errno));
        content[0] = 0;
        if (S_ISREG(st.st_mode)) {
                int r = slurp(path, &buf, &len);

                if (r < 0)
                        die("read %s: %s", path, strerror(-r));
                snprintf(content, sizeof(content), "data:%016" PRIx64 ":%zu",
                         hash_bytes(0xcbf29ce484222325ULL, buf, len), len);
                free(buf);
        } else if (S_ISLNK(st.st_mode)) {
                char t[PATH_MAX + 1];
                ssize_t n = readlink(path, t, sizeof(t) - 1);

                if (n < 0)
                        die("readlink %s: %s", path, strerror(errno));
                snprintf(content, sizeof(content), "link:%016" PRIx64 ":%zd",
                         hash_bytes(0xcbf29ce484222325ULL, t, (size_t)n), n);
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
                snprintf(content, sizeof(content), "dev:%u,%u", major(st.st_rdev),
                         minor(st.st_rdev));
        }
        xa[0] = 0;
        nx = llistxattr(path, xl, sizeof(xl));
        if (nx < 0 && errno != ENOTSUP)
                die("listxattr %s: %s", path, strerror(errno));
        if (nx > 0) {
                char *names[1024];
                int k = 0;

                for (ssize_t off = 0; off < nx && k < 1024; off += (ssize_t)strlen(xl + off) + 1)
                        names[k++] = xl + off;
                qsort(names, (size_t)k, sizeof(names[0]), cmp_line);
                for (int i = 0; i < k; i++) {
                        static char val[65536];
                        ssize_t vl = lgetxattr(path, names[i], val, sizeof(val));

                        if (vl < 0)
                                die("getxattr %s %s: %s", path, names[i], strerror(errno));
                        xalen += (size_t)snprintf(xa + xalen, sizeof(xa) - xalen,
                                                  " %s=%016" PRIx64 ":%zd", names[i],
                                                  hash_bytes(0xcbf29ce484222325ULL, val,
                                                             (size_t)vl), vl);
                        if (xalen >= sizeof(xa))
                                die("too many xattrs on %s", path);
                }
        }
        if (asprintf(&line, "%s\t%07o\t%u:%u\tsize=%lld\tnlink=%lu\tino=%llu\tmtime=%lld.%09ld"
                     "\tctime=%lld.%09ld\t%s\txattr:%s",
                     *rel ? rel : ".", (unsigned)st.st_mode, (unsigned)st.st_uid,
                     (unsigned)st.st_gid, S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size,
                     (unsigned long)st.st_nlink,
                     g_no_ino ? 0ULL : (unsigned long long)st.st_ino,
                     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                     g_no_ctime ? 0LL : (long long)st.st_ctim.tv_sec,
                     g_no_ctime ? 0L : st.st_ctim.tv_nsec, content, xa) < 0)
                die("out of memory");
        add_line(line);
        if (S_ISDIR(st.st_mode)) {
                DIR *d = opendir(path);
                struct dirent *de;

                if (!d)
                        die("opendir %s: %s", path, strerror(errno));
                while ((de = readdir(d))) {
                        char sub[PATH_MAX];

                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
                        tree_walk(root, sub);
                }
                closedir(d);
        }
}

static int cmd_treesum(const char *dir)
{
        tree_walk(dir, "");
        qsort(g_lines, g_nlines, sizeof(*g_lines), cmp_line);
        for (size_t i = 0; i < g_nlines; i++) {
                printf("%s\n", g_lines[i]);
                free(g_lines[i]);
        }
        free(g_lines);
        return 0;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: itool mkfiles DIR PREFIX COUNT [--min N] [--max N]\n"
                "       itool verify DIR PREFIX COUNT [--min N] [--max N]\n"
                "       itool writer DIR LOG NAME... [--create PREFIX] [--min N] [--max N] [--chunk N]\n"
                "                    [--stop-file PATH]\n"
                "       itool verify-writer DIR LOG NAME... [--create PREFIX] [--min N] [--max N]\n"
                "       itool reader FILE STATUS\n"
                "       itool watch-read FILE TEXT SECONDS READY\n"
                "       itool timed-read FILE\n"
                "       itool setxattr PATH NAME VALUE\n"
                "       itool getxattr PATH NAME\n"
                "       itool rmxattr PATH NAME\n"
                "       itool treesum DIR [--no-ino] [--no-ctime]\n"
                "       itool bigwrite FILE MIB\n"
                "       itool bigcheck FILE MIB\n");
        exit(2);
}

/* bigwrite FILE MIB: write MIB MiB in 1 MiB writes through one descriptor
 * (one write session), each MiB filled with a pattern naming its index,
 * then close (the commit).  bigcheck reads it back and checks every MiB. */
static void big_fill(uint8_t *buf, uint64_t mib)
{
        for (size_t i = 0; i < (1u << 20); i += 8) {
                uint64_t v = (mib << 32) ^ (i * 0x9E3779B97F4A7C15ULL);

                memcpy(buf + i, &v, 8);
        }
}

static int cmd_bigwrite(const char *path, uint64_t mibs)
{
        static uint8_t buf[1u << 20];
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd < 0)
                die("open %s: %s", path, strerror(errno));
        for (uint64_t m = 0; m < mibs; m++) {
                big_fill(buf, m);
                if (pwrite(fd, buf, sizeof(buf), (off_t)(m << 20)) != (ssize_t)sizeof(buf))
                        die("write %s at MiB %llu: %s", path, (unsigned long long)m, strerror(errno));
        }
        if (close(fd) < 0)
                die("close %s (the commit): %s", path, strerror(errno));
        return 0;
}

static int cmd_bigcheck(const char *path, uint64_t mibs)
{
        static uint8_t buf[1u << 20], want[1u << 20];
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                die("open %s: %s", path, strerror(errno));
        for (uint64_t m = 0; m < mibs; m++) {
                ssize_t n = pread(fd, buf, sizeof(buf), (off_t)(m << 20));

                big_fill(want, m);
                if (n != (ssize_t)sizeof(buf) || memcmp(buf, want, sizeof(buf)) != 0)
                        die("%s: MiB %llu is not what was written (read %zd)", path, (unsigned long long)m, n);
        }
        close(fd);
        printf("bigcheck: %llu MiB right\n", (unsigned long long)mibs);
        return 0;
}

int main(int argc, char **argv)
{
        char *pos[256];
        const char *create = NULL;
        int npos = 0;

        if (argc < 2)
                usage();
        for (int i = 2; i < argc; i++) {
                if (strcmp(argv[i], "--min") == 0 && i + 1 < argc)
                        g_min = strtoull(argv[++i], NULL, 0);
                else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
                        g_max = strtoull(argv[++i], NULL, 0);
                else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc)
                        g_chunk = strtoull(argv[++i], NULL, 0);
                else if (strcmp(argv[i], "--create") == 0 && i + 1 < argc)
                        create = argv[++i];
                else if (strcmp(argv[i], "--stop-file") == 0 && i + 1 < argc)
                        g_stop_file = argv[++i];
                else if (strcmp(argv[i], "--no-ino") == 0)
                        g_no_ino = 1;
                else if (strcmp(argv[i], "--no-ctime") == 0)
                        g_no_ctime = 1;
                else if (argv[i][0] == '-' && argv[i][1] == '-')
                        usage();
                else if (npos < 256)
                        pos[npos++] = argv[i];
                else
                        usage();
        }
        if (g_min < HDR)
                g_min = HDR;
        if (g_max < g_min)
                g_max = g_min;
        if (g_chunk == 0)
                g_chunk = 65536;
        setvbuf(stdout, NULL, _IOLBF, 0);

        if (strcmp(argv[1], "mkfiles") == 0 && npos == 3)
                return cmd_mkfiles(pos[0], pos[1], atol(pos[2]));
        if (strcmp(argv[1], "verify") == 0 && npos == 3)
                return cmd_verify(pos[0], pos[1], atol(pos[2]));
        if (strcmp(argv[1], "writer") == 0 && npos >= 2)
                return cmd_writer(pos[0], pos[1], pos + 2, npos - 2, create);
        if (strcmp(argv[1], "verify-writer") == 0 && npos >= 2)
                return cmd_verify_writer(pos[0], pos[1], pos + 2, npos - 2, create);
        if (strcmp(argv[1], "reader") == 0 && npos == 2)
                return cmd_reader(pos[0], pos[1]);
        if (strcmp(argv[1], "watch-read") == 0 && npos == 4)
                return cmd_watch_read(pos[0], pos[1], atol(pos[2]), pos[3]);
        if (strcmp(argv[1], "timed-read") == 0 && npos == 1)
                return cmd_timed_read(pos[0]);
        if (strcmp(argv[1], "setxattr") == 0 && npos == 3) {
                if (lsetxattr(pos[0], pos[1], pos[2], strlen(pos[2]), 0) < 0)
                        die("setxattr %s %s: %s", pos[0], pos[1], strerror(errno));
                return 0;
        }
        if (strcmp(argv[1], "getxattr") == 0 && npos == 2) {
                char v[4096];
                ssize_t n = lgetxattr(pos[0], pos[1], v, sizeof(v));

                if (n < 0 && errno == ENODATA)
                        return 3;
                if (n < 0)
                        die("getxattr %s %s: %s", pos[0], pos[1], strerror(errno));
                printf("%.*s\n", (int)n, v);
                return 0;
        }
        if (strcmp(argv[1], "rmxattr") == 0 && npos == 2) {
                if (lremovexattr(pos[0], pos[1]) < 0)
                        die("removexattr %s %s: %s", pos[0], pos[1], strerror(errno));
                return 0;
        }
        if (strcmp(argv[1], "treesum") == 0 && npos == 1)
                return cmd_treesum(pos[0]);
        if (strcmp(argv[1], "bigwrite") == 0 && npos == 2)
                return cmd_bigwrite(pos[0], strtoull(pos[1], NULL, 0));
        if (strcmp(argv[1], "bigcheck") == 0 && npos == 2)
                return cmd_bigcheck(pos[0], strtoull(pos[1], NULL, 0));
        usage();
}
