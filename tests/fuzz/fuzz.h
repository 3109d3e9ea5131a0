/*
 * fuzz.h -- shared by the libFuzzer targets in tests/fuzz/ (docs/testing.md).
 *
 * Each target is one fuzz_<name>.c defining LLVMFuzzerTestOneInput(); it is
 * linked with -fsanitize=fuzzer (libFuzzer supplies main()) in the build that
 * scripts/fuzz.sh configures with clang, ASan and UBSan.  A target must not
 * crash, leak or trip a sanitizer on any input, and checks the properties
 * its decoder promises with FZ_CHECK, which aborts (libFuzzer then saves the
 * input as a crash).
 *
 * Threads: a target runs in libFuzzer's one thread.
 */
#ifndef LOCUS_FUZZ_H
#define LOCUS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CHECK(cond)                                                           \
        do {                                                                     \
                if (!(cond)) {                                                   \
                        fprintf(stderr, "%s:%d: fuzz check failed: %s\n",        \
                                __FILE__, __LINE__, #cond);                      \
                        abort();                                                 \
                }                                                                \
        } while (0)

/* Consume the input from the front, a byte or a little-endian word at a
 * time; past the end every read gives 0. */
struct fz_in {
        const uint8_t *p;
        size_t len;
};

static inline uint8_t fz_u8(struct fz_in *in)
{
        uint8_t v;

        if (!in->len)
                return 0;
        v = in->p[0];
        in->p++;
        in->len--;
        return v;
}

static inline uint32_t fz_u32(struct fz_in *in)
{
        uint32_t v = 0;

        for (int i = 0; i < 4; i++)
                v |= (uint32_t)fz_u8(in) << (8 * i);
        return v;
}

/* Pieces of a stream: the generator is seeded from an input byte, so that
 * an input always cuts its stream the same way.  fz_piece() gives the size
 * of the next piece with `left` bytes to go: all of them one time in
 * `whole`, else 1..max bytes. */
static inline uint32_t fz_seed(uint8_t b)
{
        return b * 2654435761u + 1;
}

static inline size_t fz_piece(uint32_t *rnd, size_t left, unsigned whole, size_t max)
{
        size_t n;

        *rnd = *rnd * 1103515245u + 12345u;
        n = (*rnd >> 16) % whole == 0 ? left : 1 + (*rnd >> 8) % max;
        return n < left ? n : left;
}

#endif
