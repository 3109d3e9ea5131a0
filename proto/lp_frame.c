/*
 * lp_frame.c -- frame header codec and the incremental decoder.
 *
 * Decoder invariants:
 *   (1) hlen < LP_FRAME_HDR while the header is incomplete; then cur holds
 *       the parsed header and have counts payload bytes received.
 *   (2) cur.payload is allocated only after the header passed every check,
 *       with exactly cur.len bytes (never for len == 0).
 *   (3) err != 0 means the stream is broken; every later feed returns err.
 */
#include "lp_frame.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lp_decoder {
        size_t max;
        int err;
        uint8_t hdr[LP_FRAME_HDR];
        size_t hlen;            /* header bytes received */
        struct lp_frame cur;    /* valid once hlen == LP_FRAME_HDR */
        size_t have;            /* payload bytes received */
};

static void put_le16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static void put_le64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t get_le64(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

int lp_frame_header_pack(uint8_t hdr[LP_FRAME_HDR], uint16_t type, uint16_t flags,
                         uint64_t reqid, size_t len)
{
        if (len > LP_FRAME_HARD_MAX)
                return -EMSGSIZE;
        if (type == LP_MSG_INVALID)
                return -EINVAL;
        hdr[0] = LP_FRAME_MARK;
        hdr[1] = (uint8_t)len;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)(len >> 16);
        put_le16(hdr + 4, type);
        put_le16(hdr + 6, flags);
        put_le64(hdr + 8, reqid);
        return 0;
}

int lp_frame_header_unpack(const uint8_t hdr[LP_FRAME_HDR], size_t max,
                           struct lp_frame *ret)
{
        uint32_t len;
        uint16_t type;

        if (max > LP_FRAME_HARD_MAX)
                return -EINVAL;
        if ((hdr[0] & 0xF0u) != LP_FRAME_MAGIC)
                return -EBADMSG;
        if ((hdr[0] & 0x0Fu) != LP_FRAME_VERSION)
                return -EPROTONOSUPPORT;
        len = (uint32_t)hdr[1] | ((uint32_t)hdr[2] << 8) | ((uint32_t)hdr[3] << 16);
        type = get_le16(hdr + 4);
        if (type == LP_MSG_INVALID)
                return -EBADMSG;
        if (len > max)
                return -EMSGSIZE;
        ret->type = type;
        ret->flags = get_le16(hdr + 6);
        ret->reqid = get_le64(hdr + 8);
        ret->len = len;
        ret->payload = NULL;
        return 0;
}

int lp_frame_encode(uint16_t type, uint16_t flags, uint64_t reqid,
                    const void *payload, size_t len, size_t max,
                    uint8_t **ret_buf, size_t *ret_len)
{
        uint8_t *buf;
        int r;

        if (max > LP_FRAME_HARD_MAX || (len && !payload))
                return -EINVAL;
        if (len > max)
                return -EMSGSIZE;
        buf = malloc(LP_FRAME_HDR + len);
        if (!buf)
                return -ENOMEM;
        r = lp_frame_header_pack(buf, type, flags, reqid, len);
        if (r < 0) {
                free(buf);
                return r;
        }
        if (len)
                memcpy(buf + LP_FRAME_HDR, payload, len);
        *ret_buf = buf;
        *ret_len = LP_FRAME_HDR + len;
        return 0;
}

void lp_frame_clear(struct lp_frame *f)
{
        if (!f)
                return;
        free(f->payload);
        memset(f, 0, sizeof(*f));
}

static int check_max(size_t max)
{
        return max >= 1 && max <= LP_FRAME_HARD_MAX ? 0 : -EINVAL;
}

int lp_decoder_new(size_t max, struct lp_decoder **ret_dec)
{
        struct lp_decoder *d;

        if (max == 0)
                max = LP_MAX_FRAME;
        if (check_max(max) < 0)
                return -EINVAL;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->max = max;
        *ret_dec = d;
        return 0;
}

void lp_decoder_free(struct lp_decoder *d)
{
        if (!d)
                return;
        free(d->cur.payload);
        free(d);
}

int lp_decoder_set_max(struct lp_decoder *d, size_t max)
{
        if (check_max(max) < 0)
                return -EINVAL;
        d->max = max;
        return 0;
}

size_t lp_decoder_get_max(const struct lp_decoder *d)
{
        return d->max;
}

int lp_decoder_partial(const struct lp_decoder *d)
{
        return d->hlen > 0;
}

int lp_decoder_feed(struct lp_decoder *d, const void *buf, size_t len,
                    size_t *ret_used, struct lp_frame *ret_frame)
{
        const uint8_t *p = buf;
        size_t used = 0, n;
        int r;

        if (d->err)
                return d->err;

        for (;;) {
                if (d->hlen < LP_FRAME_HDR) {
                        n = LP_FRAME_HDR - d->hlen;
                        if (n > len - used)
                                n = len - used;
                        if (n)
                                memcpy(d->hdr + d->hlen, p + used, n);
                        d->hlen += n;
                        used += n;
                        if (d->hlen < LP_FRAME_HDR)
                                break;  /* need more header bytes */
                        /* Invariant (2): check before allocating. */
                        r = lp_frame_header_unpack(d->hdr, d->max, &d->cur);
                        if (r < 0) {
                                d->err = r;
                                return r;
                        }
                        d->have = 0;
                        if (d->cur.len) {
                                d->cur.payload = malloc(d->cur.len);
                                if (!d->cur.payload) {
                                        d->err = -ENOMEM;
                                        return -ENOMEM;
                                }
                        }
                }

                assert(d->hlen == LP_FRAME_HDR);
                n = d->cur.len - d->have;
                if (n > len - used)
                        n = len - used;
                if (n) {
                        memcpy(d->cur.payload + d->have, p + used, n);
                        d->have += n;
                        used += n;
                }
                if (d->have < d->cur.len)
                        break;  /* need more payload bytes */

                *ret_frame = d->cur;
                memset(&d->cur, 0, sizeof(d->cur));
                d->hlen = 0;
                d->have = 0;
                *ret_used = used;
                return 1;
        }

        assert(used == len);
        *ret_used = used;
        return 0;
}
