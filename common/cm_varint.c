/*
 * cm_varint.c -- see cm_varint.h.
 */
#include "cm_varint.h"

#include <errno.h>

size_t cm_varint_size(uint64_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

size_t cm_varint_put(uint8_t *p, uint64_t v)
{
        size_t n = 0;

        while (v >= 0x80) {
                p[n++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        p[n++] = (uint8_t)v;
        return n;
}

int cm_varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
        uint64_t v = 0;
        size_t i = *pos;

        for (unsigned shift = 0; shift < 7 * CM_VARINT_MAX; shift += 7) {
                uint8_t b;

                if (i >= len)
                        return -EBADMSG;        /* runs past the end */
                b = p[i++];
                if (shift == 63 && b > 1)
                        return -EBADMSG;        /* beyond 64 bits, or an 11th byte */
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *pos = i;
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}
