/*
 * cohlat.c -- the coherence delay (docs/coherence.md): N times, a writer
 * rewrites FILE_A through one mount (open, pwrite 16 bytes, close = the
 * commit) while a reader holds FILE_B (the same file through another
 * mount) open and reads it every 50 us; the delay is from close() returning
 * on A to the reader seeing the new bytes on B.  Without the commit note
 * the reader would see them only when its page cache goes (never, while it
 * holds the file open).  The reference, measured in the same run: the
 * commit itself (close() on A).
 *
 * usage: cohlat FILE_A FILE_B N
 * stdout: key=value lines (microseconds).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC 16

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what, const char *path)
{
        fprintf(stderr, "cohlat: %s %s: %s\n", what, path, strerror(errno));
        exit(1);
}

static int cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static void rec(char *buf, long i)
{
        char tmp[32];

        snprintf(tmp, sizeof(tmp), "seq %011ld\n", i % 100000000000L);
        memcpy(buf, tmp, REC);
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
        size_t k = (size_t)(p * (double)(n - 1) + 0.5);

        return v[k < n ? k : n - 1];
}

int main(int argc, char **argv)
{
        const char *fa, *fb;
        long n;
        uint64_t *lat, *commit;
        int rfd, wfd;
        char want[REC], got[REC];
        struct timespec pause = { 0, 50 * 1000 };

        if (argc != 4 || (n = atol(argv[3])) < 1) {
                fprintf(stderr, "usage: cohlat FILE_A FILE_B N\n");
                return 2;
        }
        fa = argv[1];
        fb = argv[2];
        lat = calloc((size_t)n, sizeof(*lat));
        commit = calloc((size_t)n, sizeof(*commit));
        if (!lat || !commit)
                return 1;
        rec(want, 0);
        wfd = open(fa, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (wfd < 0 || pwrite(wfd, want, REC, 0) != REC || close(wfd) < 0)
                die("write", fa);
        rfd = open(fb, O_RDONLY | O_CLOEXEC);
        if (rfd < 0)
                die("open", fb);
        /* the reader's first view: retry until the first version shows */
        for (uint64_t until = now_us() + 10000000u;;) {
                if (pread(rfd, got, REC, 0) == REC && !memcmp(got, want, REC))
                        break;
                if (now_us() > until) {
                        fprintf(stderr, "cohlat: %s never showed the first version\n", fb);
                        return 1;
                }
                nanosleep(&pause, NULL);
        }
        for (long i = 1; i <= n; i++) {
                uint64_t t0, t1, t2;

                rec(want, i);
                t0 = now_us();
                wfd = open(fa, O_WRONLY | O_CLOEXEC);
                if (wfd < 0 || pwrite(wfd, want, REC, 0) != REC)
                        die("write", fa);
                if (close(wfd) < 0)
                        die("close (the commit)", fa);
                t1 = now_us();
                for (;;) {
                        if (pread(rfd, got, REC, 0) == REC && !memcmp(got, want, REC))
                                break;
                        if (now_us() - t1 > 10000000u) {
                                fprintf(stderr, "cohlat: commit %ld not seen through %s in 10 s\n", i, fb);
                                return 1;
                        }
                        nanosleep(&pause, NULL);
                }
                t2 = now_us();
                commit[i - 1] = t1 - t0;
                lat[i - 1] = t2 - t1;
        }
        qsort(lat, (size_t)n, sizeof(*lat), cmp);
        qsort(commit, (size_t)n, sizeof(*commit), cmp);
        printf("commits=%ld\n", n);
        printf("inval_median_us=%" PRIu64 "\ninval_p99_us=%" PRIu64 "\ninval_max_us=%" PRIu64 "\n",
               pct(lat, (size_t)n, 0.5), pct(lat, (size_t)n, 0.99), lat[n - 1]);
        printf("commit_median_us=%" PRIu64 "\ncommit_p99_us=%" PRIu64 "\n", pct(commit, (size_t)n, 0.5),
               pct(commit, (size_t)n, 0.99));
        printf("ratio_inval_to_commit_median=%.2f\n",
               (double)pct(lat, (size_t)n, 0.5) / (double)(pct(commit, (size_t)n, 0.5) ? pct(commit, (size_t)n, 0.5) : 1));
        close(rfd);
        free(lat);
        free(commit);
        return 0;
}
