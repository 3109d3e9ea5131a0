/*
 * testutil.h -- small helpers shared by the Check runners.
 *
 * tu_tmpdir() makes a fresh private directory for the running test case
 * (Check runs each case in its own forked process) and removes it when that
 * process exits.  tu_rand() is a seeded xorshift generator so failures can
 * be replayed: every runner prints the seed it used.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stdint.h>

const char *tu_tmpdir(void);
/* Seed from $LOCUS_TEST_SEED if set, else from the clock; prints it. */
uint64_t tu_seed(const char *what);
uint64_t tu_rand(uint64_t *state);
/* Remove a directory tree; ignores errors. */
void tu_rmtree(const char *path);

struct Suite;
/* Run a suite the way every runner does (CK_ENV: fork mode, verbosity
 * and TAP output come from the environment meson sets) and return the
 * process exit status.  Takes ownership of the suite. */
int tu_run_suite(struct Suite *s);

/* Assertions with the expression and where it failed (the runner includes
 * check.h): CHECK(cond), and CHECK_EQ(a, b) comparing as long long. */
#define CHECK(c) \
        do { \
                if (!(c)) \
                        ck_abort_msg("%s:%d: check failed: %s", __FILE__, __LINE__, #c); \
        } while (0)
#define CHECK_EQ(a, b) \
        do { \
                long long a_ = (long long)(a), b_ = (long long)(b); \
                if (a_ != b_) \
                        ck_abort_msg("%s:%d: %s == %lld, expected %s == %lld", __FILE__, __LINE__, #a, a_, \
                                     #b, b_); \
        } while (0)

#endif
