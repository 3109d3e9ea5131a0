/* testutil.c -- see testutil.h. */
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>

#include <check.h>

static char tu_dir[PATH_MAX];
static pid_t tu_owner;

static int tu_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st; (void)flag; (void)ftw;
        remove(p);
        return 0;
}

void tu_rmtree(const char *path)
{
        nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void tu_cleanup(void)
{
        if (tu_dir[0] && getpid() == tu_owner)
                tu_rmtree(tu_dir);
}

const char *tu_tmpdir(void)
{
        const char *base = getenv("TMPDIR");

        if (tu_dir[0] && getpid() == tu_owner)
                return tu_dir;
        snprintf(tu_dir, sizeof(tu_dir), "%s/locus-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tu_dir)) {
                perror("mkdtemp");
                abort();
        }
        tu_owner = getpid();
        atexit(tu_cleanup);
        return tu_dir;
}

uint64_t tu_seed(const char *what)
{
        const char *e = getenv("LOCUS_TEST_SEED");
        uint64_t seed;

        if (e && *e)
                seed = strtoull(e, NULL, 0);
        else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        }
        if (!seed)
                seed = 1;
        fprintf(stderr, "# %s: seed %llu (replay with LOCUS_TEST_SEED=%llu)\n", what,
                (unsigned long long)seed, (unsigned long long)seed);
        return seed;
}

uint64_t tu_rand(uint64_t *s)
{
        uint64_t x = *s;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *s = x;
        return x * 0x2545F4914F6CDD1DULL;
}

int tu_run_suite(Suite *s)
{
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
