/*
 * lp_note.c -- see lp_note.h.
 */
#include "lp_note.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t header[3] = { 'L', 'N', 0x01 };

int lp_note_encode(struct cm_wbuf *w, const struct lp_note *v, size_t n)
{
        if (n > LP_NOTE_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (v[i].next > LP_NOTE_EXT_MAX || (v[i].flags & ~LP_NOTE_FLAGS))
                        return -EINVAL;
        cm_wbuf_bytes(w, header, sizeof(header));
        cm_wbuf_v(w, n);
        for (size_t i = 0; i < n; i++) {
                cm_wbuf_v(w, v[i].fg);
                cm_wbuf_v(w, v[i].ino);
                cm_wbuf_v(w, v[i].version);
                cm_wbuf_v(w, v[i].client);
                cm_wbuf_u8(w, (uint8_t)v[i].flags);
                cm_wbuf_v(w, v[i].next);
                for (size_t k = 0; k < v[i].next; k++) {
                        cm_wbuf_v(w, v[i].ext[k].off);
                        cm_wbuf_v(w, v[i].ext[k].len);
                }
        }
        return w->err;
}

void lp_note_batch_free(struct lp_note_batch *b)
{
        if (!b)
                return;
        free(b->v);
        free(b->ext);
        memset(b, 0, sizeof(*b));
}

int lp_note_decode(const void *buf, size_t len, struct lp_note_batch *ret)
{
        struct lp_note_batch b = { 0 };
        struct cm_rd r;
        const uint8_t *h;
        size_t n, next = 0, cap = 0;

        cm_rd_init(&r, buf, len);
        h = cm_rd_bytes(&r, sizeof(header));
        if (!h || memcmp(h, header, sizeof(header)) != 0)
                return -EBADMSG;
        n = (size_t)cm_rd_vmax(&r, LP_NOTE_MAX);
        if (!cm_rd_ok(&r))
                return -EBADMSG;
        /* Every note takes at least 6 bytes: a count beyond that is a lie. */
        if (n > (len - r.pos) / 6)
                return -EBADMSG;
        b.v = calloc(n ? n : 1, sizeof(*b.v));
        if (!b.v)
                return -ENOMEM;
        b.n = n;
        for (size_t i = 0; i < n; i++) {
                struct lp_note *o = &b.v[i];
                size_t ne;

                o->fg = (uint32_t)cm_rd_vmax(&r, UINT32_MAX);
                o->ino = cm_rd_v(&r);
                o->version = cm_rd_v(&r);
                o->client = cm_rd_v(&r);
                o->flags = cm_rd_u8(&r);
                ne = (size_t)cm_rd_vmax(&r, LP_NOTE_EXT_MAX);
                if (!cm_rd_ok(&r) || (o->flags & ~LP_NOTE_FLAGS))
                        goto bad;
                if (next + ne > cap) {
                        size_t c = cap ? cap * 2 : 16;
                        struct lp_note_ext *e;

                        while (c < next + ne)
                                c *= 2;
                        e = realloc(b.ext, c * sizeof(*e));
                        if (!e) {
                                lp_note_batch_free(&b);
                                return -ENOMEM;
                        }
                        b.ext = e;
                        cap = c;
                }
                for (size_t k = 0; k < ne; k++) {
                        b.ext[next + k].off = cm_rd_v(&r);
                        b.ext[next + k].len = cm_rd_v(&r);
                }
                o->next = ne;
                o->ext = (const struct lp_note_ext *)(uintptr_t)next;   /* an index until the end */
                next += ne;
        }
        if (!cm_rd_ok(&r) || !cm_rd_end(&r))
                goto bad;
        for (size_t i = 0; i < n; i++)
                b.v[i].ext = b.v[i].next ? b.ext + (uintptr_t)b.v[i].ext : NULL;
        *ret = b;
        return 0;
bad:
        lp_note_batch_free(&b);
        return -EBADMSG;
}
