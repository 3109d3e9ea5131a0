/*
 * cm_varint.h -- the one LEB128 codec of LocusFS: unsigned 64-bit
 * integers, 7 bits a byte, least significant group first, the high bit of
 * each byte but the last set.  The segment log's page index (dsmcore
 * dsm_emap.c), version vectors (dsm_vv.c) and the storage site's
 * changesets (storage/ss_cs.c) all use it, so the three formats agree on
 * what a varint is.
 *
 * Encoding writes the shortest form (1..CM_VARINT_MAX bytes).  Decoding
 * accepts at most CM_VARINT_MAX bytes and values up to UINT64_MAX (the
 * tenth byte may only be 0 or 1); longer runs and values beyond 64 bits
 * are malformed.  Non-shortest forms (a trailing 0x80 0x00) are accepted,
 * as every decoder accepted them before.
 *
 * Ownership: the caller's buffers.  Threads: no state.  Errors: -EBADMSG.
 */
#ifndef CM_VARINT_H
#define CM_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define CM_VARINT_MAX 10

/* Bytes the encoding of v takes (1..CM_VARINT_MAX). */
size_t cm_varint_size(uint64_t v);

/* Encode v at p (room for CM_VARINT_MAX bytes); returns the bytes written. */
size_t cm_varint_put(uint8_t *p, uint64_t v);

/* Decode the varint at p[*pos..len): 0, *ret and *pos past it; -EBADMSG
 * if it is malformed or runs past len (then *pos and *ret are untouched:
 * a caller reading a stream in pieces tells "incomplete" from "malformed"
 * by whether CM_VARINT_MAX bytes were there). */
int cm_varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret);

#endif
