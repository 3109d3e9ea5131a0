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

#endif
