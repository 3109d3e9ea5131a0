/*
 * fdseq.c -- the system call sequences of tar, cp -p, cp -a and install
 * on one descriptor: writes, then attribute changes (fchmod, fchown,
 * futimens, ftruncate) on the same open file, or a new name for it
 * (link), then what the descriptor and a stat right after close(2) must
 * show.  Every attribute change on an open, written file, and every
 * answer naming it, must see and keep the data written before it.
 *
 * usage: fdseq DIR
 *   runs every sequence in DIR (files seq-*), printing one line each;
 *   exit 0 if all held, 1 at the first that did not (it says what), 2
 *   usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[4096];
static const char *g_seq = "";

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "fdseq: %s: FAILED: ", g_seq);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        exit(1);
}

#define CHECK(x) do { if ((x) < 0) fail("%s: %s", #x, strerror(errno)); } while (0)

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)((i * 31u + seed * 7u + (i >> 8)) ^ seed);
}

static void path_of(char *buf, size_t n, const char *name)
{
        snprintf(buf, n, "%s/seq-%s", g_dir, name);
}

static void write_all(int fd, const uint8_t *b, size_t n)
{
        ssize_t w = write(fd, b, n);

        if (w < 0)
                fail("write of %zu bytes: %s", n, strerror(errno));
        if ((size_t)w != n)
                fail("write of %zu bytes wrote %zd", n, w);
}

static void want_fsize(int fd, off_t size, const char *when)
{
        struct stat st;

        CHECK(fstat(fd, &st));
        if (st.st_size != size)
                fail("%s: fstat says %lld bytes, %lld written", when, (long long)st.st_size,
                     (long long)size);
}

static void want_size(const char *path, off_t size, const char *when)
{
        struct stat st;

        CHECK(stat(path, &st));
        if (st.st_size != size)
                fail("%s: stat says %lld bytes, want %lld", when, (long long)st.st_size,
                     (long long)size);
}

/* fd (readable) or path holds exactly want[0, n). */
static void want_content(int fd, const char *path, const uint8_t *want, size_t n,
                         const char *when)
{
        uint8_t *got = malloc(n + 1);
        size_t have = 0;
        int own = -1;

        if (!got)
                fail("out of memory");
        if (fd < 0) {
                own = fd = open(path, O_RDONLY | O_CLOEXEC);
                CHECK(fd);
        }
        for (;;) {
                ssize_t r = pread(fd, got + have, n + 1 - have, (off_t)have);

                if (r < 0)
                        fail("%s: pread: %s", when, strerror(errno));
                if (r == 0 || have + (size_t)r > n) {
                        have += (size_t)r;
                        break;
                }
                have += (size_t)r;
        }
        if (have != n)
                fail("%s: read %zu bytes, want %zu", when, have, n);
        for (size_t i = 0; i < n; i++)
                if (got[i] != want[i])
                        fail("%s: byte %zu differs (%#x, want %#x)", when, i, got[i], want[i]);
        if (own >= 0)
                CHECK(close(own));
        free(got);
}

/* close fd; a stat right after shows size n, and the file holds want[0, n). */
static void close_and_check(int fd, const char *path, const uint8_t *want, size_t n)
{
        CHECK(close(fd));
        want_size(path, (off_t)n, "stat right after close");
        want_content(-1, path, want, n, "content after close");
        printf("fdseq: ok: %s\n", g_seq);
}

/* write, then fchmod / fchown / futimens on the same O_RDWR descriptor:
 * fstat and pread there see the data (tar xf, cp -p). */
static void seq_write_then_attrs(void)
{
        uint8_t b[5000];
        char p[4200];
        struct timespec ts[2] = { { 1000000000, 0 }, { 1234567890, 5 } };
        int fd;

        g_seq = "write + fchmod/fchown/futimens, fstat/pread on the fd";
        path_of(p, sizeof(p), "attrs");
        pattern(b, sizeof(b), 1);
        fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        CHECK(fd);
        write_all(fd, b, sizeof(b));
        CHECK(fchmod(fd, 0644));
        want_fsize(fd, sizeof(b), "after fchmod");
        want_content(fd, NULL, b, sizeof(b), "pread after fchmod");
        CHECK(fchown(fd, getuid(), getgid()));
        want_fsize(fd, sizeof(b), "after fchown");
        CHECK(futimens(fd, ts));
        want_fsize(fd, sizeof(b), "after futimens");
        want_content(fd, NULL, b, sizeof(b), "pread after futimens");
        close_and_check(fd, p, b, sizeof(b));
}

/* O_APPEND: write 5000, fchmod, write 100 -> 5100 bytes, the first 5000 first. */
static void seq_append_fchmod(void)
{
        uint8_t b[5100];
        char p[4200];
        int fd;

        g_seq = "O_APPEND write 5000 + fchmod + write 100";
        path_of(p, sizeof(p), "append");
        pattern(b, sizeof(b), 2);
        fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
        CHECK(fd);
        write_all(fd, b, 5000);
        CHECK(fchmod(fd, 0640));
        write_all(fd, b + 5000, 100);
        want_fsize(fd, 5100, "before close");
        close_and_check(fd, p, b, sizeof(b));
}

/* Append to an existing file across an fchmod: neither append is lost. */
static void seq_append_existing(void)
{
        uint8_t b[3500];
        char p[4200];
        int fd;

        g_seq = "append to an existing file across fchmod";
        path_of(p, sizeof(p), "existing");
        pattern(b, sizeof(b), 3);
        fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        CHECK(fd);
        write_all(fd, b, 3000);
        CHECK(close(fd));
        fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
        CHECK(fd);
        write_all(fd, b + 3000, 200);
        CHECK(fchmod(fd, 0600));
        write_all(fd, b + 3200, 300);
        close_and_check(fd, p, b, sizeof(b));
}

/* install: write, fchown, fchmod, close; cp -p: write, futimens, fchown,
 * fchmod, close.  A stat right after close shows the full size, the mode
 * and the time set. */
static void seq_install_cp_p(void)
{
        uint8_t b[70000];
        char p[4200];
        struct timespec ts[2] = { { 1500000000, 0 }, { 1600000000, 123456789 } };
        struct stat st;
        int fd;

        g_seq = "install / cp -p: write + fchown + fchmod + futimens, stat after close";
        path_of(p, sizeof(p), "install");
        pattern(b, sizeof(b), 4);
        fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        CHECK(fd);
        write_all(fd, b, 40000);
        write_all(fd, b + 40000, sizeof(b) - 40000);
        CHECK(futimens(fd, ts));
        CHECK(fchown(fd, getuid(), getgid()));
        CHECK(fchmod(fd, 0755));
        CHECK(close(fd));
        CHECK(stat(p, &st));
        if (st.st_size != (off_t)sizeof(b))
                fail("stat right after close: %lld bytes, want %zu", (long long)st.st_size,
                     sizeof(b));
        if ((st.st_mode & 07777) != 0755)
                fail("mode %o, want 755", st.st_mode & 07777);
        if (st.st_mtim.tv_sec != ts[1].tv_sec || st.st_mtim.tv_nsec != ts[1].tv_nsec)
                fail("mtime %lld.%09ld, want %lld.%09ld", (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec, (long long)ts[1].tv_sec, ts[1].tv_nsec);
        want_content(-1, p, b, sizeof(b), "content");
        printf("fdseq: ok: %s\n", g_seq);
}

/* write, fchmod, ftruncate down, write at the new end: the descriptor
 * sees each step. */
static void seq_ftruncate(void)
{
        uint8_t b[8000];
        char p[4200];
        int fd;

        g_seq = "write + fchmod + ftruncate + write";
        path_of(p, sizeof(p), "ftruncate");
        pattern(b, sizeof(b), 5);
        fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
        CHECK(fd);
        write_all(fd, b, 8000);
        CHECK(fchmod(fd, 0600));
        CHECK(ftruncate(fd, 6000));
        want_fsize(fd, 6000, "after ftruncate");
        want_content(fd, NULL, b, 6000, "pread after ftruncate");
        CHECK(fchmod(fd, 0644));
        want_fsize(fd, 6000, "after the second fchmod");
        if (pwrite(fd, b + 6000, 2000, 6000) != 2000)
                fail("pwrite at 6000: %s", strerror(errno));
        close_and_check(fd, p, b, sizeof(b));
}

/* A new name for a file being written (link(2) answers its attributes,
 * as a lookup does) must not make the kernel forget the size written:
 * O_APPEND 5000, link, fstat, O_APPEND 100 -> 5100 bytes in order. */
static void seq_link_while_writing(void)
{
        uint8_t b[5100];
        char p[4200], p2[4200];
        int fd;

        g_seq = "O_APPEND write 5000 + link + fstat + write 100";
        path_of(p, sizeof(p), "linked");
        path_of(p2, sizeof(p2), "linked2");
        pattern(b, sizeof(b), 6);
        fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
        CHECK(fd);
        write_all(fd, b, 5000);
        CHECK(link(p, p2));
        want_fsize(fd, 5000, "after link");
        write_all(fd, b + 5000, 100);
        want_fsize(fd, 5100, "before close");
        close_and_check(fd, p, b, sizeof(b));
        want_size(p2, 5100, "stat of the second name");
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: fdseq DIR\n");
                return 2;
        }
        snprintf(g_dir, sizeof(g_dir), "%s", argv[1]);
        seq_write_then_attrs();
        seq_append_fchmod();
        seq_append_existing();
        seq_install_cp_p();
        seq_ftruncate();
        seq_link_while_writing();
        return 0;
}
