/*
 * fsbench.c -- the workloads of bench/fsbench.sh, one per invocation, each
 * printing one figure on stdout (nothing else) so the script can compare
 * two mounts measured the same way.
 *
 * usage:
 *   fsbench seqwrite FILE MIB     write MIB MiB in 1 MiB blocks, fsync, close;
 *                                 prints MiB/s (the fsync and close included)
 *   fsbench seqread FILE          read FILE to the end in 1 MiB blocks;
 *                                 prints MiB/s
 *   fsbench create DIR N SIZE     create DIR/f0..f(N-1), SIZE bytes each
 *                                 (open O_CREAT|O_EXCL, write, close);
 *                                 prints files/s
 *   fsbench stat DIR N SIZE       stat each of them (checks the size); prints stats/s
 *   fsbench unlink DIR N          unlink each of them; prints unlinks/s
 *
 * The data is pseudo-random (not zeros, which a file system could store
 * as holes).  Any error is fatal: message on stderr, exit 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1u << 20)

static double now_s(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const char *path)
{
        fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(errno));
        exit(1);
}

static void fill(uint8_t *b, size_t n, uint64_t seed)
{
        uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;

        for (size_t i = 0; i + 8 <= n; i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(b + i, &x, 8);
        }
}

static void write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        die("write", path);
                p += w;
                n -= (size_t)w;
        }
}

static int seqwrite(const char *path, long mib)
{
        uint8_t *buf = malloc(BLOCK);
        double t0;
        int fd;

        if (!buf)
                return 1;
        fill(buf, BLOCK, 1);
        t0 = now_s();
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                die("open", path);
        for (long i = 0; i < mib; i++) {
                buf[0] = (uint8_t)i;    /* every block differs */
                write_all(fd, buf, BLOCK, path);
        }
        if (fsync(fd) < 0)
                die("fsync", path);
        if (close(fd) < 0)
                die("close", path);
        printf("%.1f\n", (double)mib / (now_s() - t0));
        free(buf);
        return 0;
}

static int seqread(const char *path)
{
        uint8_t *buf = malloc(BLOCK);
        uint64_t total = 0;
        double t0;
        int fd;

        if (!buf)
                return 1;
        t0 = now_s();
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die("open", path);
        for (;;) {
                ssize_t r = read(fd, buf, BLOCK);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        die("read", path);
                if (r == 0)
                        break;
                total += (uint64_t)r;
        }
        close(fd);
        printf("%.1f\n", (double)total / (1 << 20) / (now_s() - t0));
        free(buf);
        return 0;
}

static int many(const char *op, const char *dir, long n, size_t size)
{
        uint8_t *buf = malloc(size ? size : 1);
        char path[4200];
        struct stat st;
        double t0;

        if (!buf)
                return 1;
        fill(buf, size, 2);
        t0 = now_s();
        for (long i = 0; i < n; i++) {
                snprintf(path, sizeof(path), "%s/f%ld", dir, i);
                if (strcmp(op, "create") == 0) {
                        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

                        if (fd < 0)
                                die("create", path);
                        write_all(fd, buf, size, path);
                        if (close(fd) < 0)
                                die("close", path);
                } else if (strcmp(op, "stat") == 0) {
                        if (stat(path, &st) < 0)
                                die("stat", path);
                        if ((size_t)st.st_size != size) {
                                fprintf(stderr, "fsbench: %s: size %lld, wanted %zu\n", path,
                                        (long long)st.st_size, size);
                                return 1;
                        }
                } else if (unlink(path) < 0) {
                        die("unlink", path);
                }
        }
        printf("%.1f\n", (double)n / (now_s() - t0));
        free(buf);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 4 && strcmp(argv[1], "seqwrite") == 0)
                return seqwrite(argv[2], atol(argv[3]));
        if (argc == 3 && strcmp(argv[1], "seqread") == 0)
                return seqread(argv[2]);
        if (argc == 5 && strcmp(argv[1], "create") == 0)
                return many("create", argv[2], atol(argv[3]), (size_t)atol(argv[4]));
        if (argc == 5 && strcmp(argv[1], "stat") == 0)
                return many("stat", argv[2], atol(argv[3]), (size_t)atol(argv[4]));
        if (argc == 4 && strcmp(argv[1], "unlink") == 0)
                return many("unlink", argv[2], atol(argv[3]), 0);
        fprintf(stderr, "usage: fsbench seqwrite FILE MIB | seqread FILE | create DIR N SIZE |"
                        " stat DIR N SIZE | unlink DIR N\n");
        return 2;
}
