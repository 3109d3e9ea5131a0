/* cm_codec.c -- see cm_codec.h. */
#include "cm_codec.h"
#include "cm_varint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cm_wbuf_init(struct cm_wbuf *w)
{
        memset(w, 0, sizeof(*w));
}

void cm_wbuf_free(struct cm_wbuf *w)
{
        free(w->p);
        memset(w, 0, sizeof(*w));
}

uint8_t *cm_wbuf_take(struct cm_wbuf *w, size_t *ret_len)
{
        uint8_t *p = w->p;

        *ret_len = w->len;
        memset(w, 0, sizeof(*w));
        return p;
}

static bool grow(struct cm_wbuf *w, size_t n)
{
        size_t cap;
        uint8_t *p;

        if (w->err)
                return false;
        if (w->len + n <= w->cap)
                return true;
        cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) {
                if (cap > SIZE_MAX / 2) {
                        w->err = -ENOMEM;
                        return false;
                }
                cap *= 2;
        }
        p = realloc(w->p, cap);
        if (!p) {
                w->err = -ENOMEM;
                return false;
        }
        w->p = p;
        w->cap = cap;
        return true;
}

void cm_wbuf_bytes(struct cm_wbuf *w, const void *p, size_t n)
{
        if (!n || !grow(w, n))
                return;
        memcpy(w->p + w->len, p, n);
        w->len += n;
}

void cm_wbuf_u8(struct cm_wbuf *w, uint8_t b)
{
        cm_wbuf_bytes(w, &b, 1);
}

void cm_wbuf_v(struct cm_wbuf *w, uint64_t v)
{
        uint8_t b[CM_VARINT_MAX];

        cm_wbuf_bytes(w, b, cm_varint_put(b, v));
}

void cm_wbuf_z(struct cm_wbuf *w, int64_t v)
{
        cm_wbuf_v(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void cm_wbuf_str(struct cm_wbuf *w, const void *p, size_t n)
{
        cm_wbuf_v(w, n);
        cm_wbuf_bytes(w, p, n);
}

void cm_rd_init(struct cm_rd *r, const void *p, size_t len)
{
        r->p = p;
        r->len = p ? len : 0;
        r->pos = 0;
        r->bad = false;
}

bool cm_rd_ok(const struct cm_rd *r)
{
        return !r->bad;
}

bool cm_rd_end(const struct cm_rd *r)
{
        return !r->bad && r->pos == r->len;
}

uint8_t cm_rd_u8(struct cm_rd *r)
{
        if (r->bad || r->pos >= r->len) {
                r->bad = true;
                return 0;
        }
        return r->p[r->pos++];
}

uint64_t cm_rd_v(struct cm_rd *r)
{
        uint64_t v = 0;

        if (r->bad || cm_varint_get(r->p, r->len, &r->pos, &v) < 0) {
                r->bad = true;
                return 0;
        }
        return v;
}

uint64_t cm_rd_vmax(struct cm_rd *r, uint64_t max)
{
        uint64_t v = cm_rd_v(r);

        if (v > max) {
                r->bad = true;
                return 0;
        }
        return v;
}

int64_t cm_rd_z(struct cm_rd *r)
{
        uint64_t v = cm_rd_v(r);

        return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

const uint8_t *cm_rd_bytes(struct cm_rd *r, size_t n)
{
        const uint8_t *p;

        if (r->bad || n > r->len - r->pos) {
                r->bad = true;
                return NULL;
        }
        if (!n)
                return (const uint8_t *)"";     /* never r->p + 0: r->p may be NULL */
        p = r->p + r->pos;
        r->pos += n;
        return p;
}

const uint8_t *cm_rd_str(struct cm_rd *r, size_t max, size_t *ret_n)
{
        uint64_t n = cm_rd_vmax(r, max);
        const uint8_t *p = r->bad ? NULL : cm_rd_bytes(r, (size_t)n);

        *ret_n = p ? (size_t)n : 0;
        return p;
}
