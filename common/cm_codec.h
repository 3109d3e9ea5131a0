/*
 * cm_codec.h -- a growable byte buffer and a bounded reader for compact
 * binary encodings: unsigned LEB128 varints ("v", cm_varint.h), zigzag varints for
 * signed values ("z"), and byte strings (a v length, then the bytes).
 *
 * The writer keeps a sticky error (-ENOMEM): callers append freely and
 * check once at the end.  The reader keeps a sticky "malformed" flag:
 * reading past the end, a varint longer than 64 bits, or a string longer
 * than the caller's limit sets it, and every later read returns 0 / NULL;
 * callers check cm_rd_ok() once at the end.
 *
 * Ownership: a cm_wbuf owns its memory (cm_wbuf_free, or cm_wbuf_take to
 * keep it); a cm_rd borrows the bytes it reads, and strings it returns
 * point into them.  Threads: no shared state.
 */
#ifndef CM_CODEC_H
#define CM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_wbuf {
        uint8_t *p;
        size_t len, cap;
        int err;                        /* sticky -ENOMEM */
};

void cm_wbuf_init(struct cm_wbuf *w);
void cm_wbuf_free(struct cm_wbuf *w);
/* Hand the bytes over to the caller (who frees them); the buffer is
 * empty afterwards. */
uint8_t *cm_wbuf_take(struct cm_wbuf *w, size_t *ret_len);
void cm_wbuf_bytes(struct cm_wbuf *w, const void *p, size_t n);
void cm_wbuf_u8(struct cm_wbuf *w, uint8_t b);
void cm_wbuf_v(struct cm_wbuf *w, uint64_t v);
void cm_wbuf_z(struct cm_wbuf *w, int64_t v);
/* A byte string: v length, then the bytes. */
void cm_wbuf_str(struct cm_wbuf *w, const void *p, size_t n);

struct cm_rd {
        const uint8_t *p;
        size_t len, pos;
        bool bad;
};

void cm_rd_init(struct cm_rd *r, const void *p, size_t len);
bool cm_rd_ok(const struct cm_rd *r);
bool cm_rd_end(const struct cm_rd *r);     /* every byte consumed */
uint8_t cm_rd_u8(struct cm_rd *r);
uint64_t cm_rd_v(struct cm_rd *r);
/* A v that must fit max (inclusive); larger marks the input malformed. */
uint64_t cm_rd_vmax(struct cm_rd *r, uint64_t max);
int64_t cm_rd_z(struct cm_rd *r);
/* A byte string of at most max bytes: a pointer into the input (NULL if
 * malformed; a valid pointer for an empty string) and its length. */
const uint8_t *cm_rd_str(struct cm_rd *r, size_t max, size_t *ret_n);
/* n raw bytes. */
const uint8_t *cm_rd_bytes(struct cm_rd *r, size_t n);

#endif
