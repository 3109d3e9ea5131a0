/* lp_rs.c -- the replication codec; see lp_rs.h. */
#include "lp_rs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const uint8_t H_CHANGES[3] = { 'L', 'X', 1 };
static const uint8_t H_PULLS[3] = { 'L', 'Q', 1 };
static const uint8_t H_STATE[3] = { 'L', 'S', 1 };
static const uint8_t H_PIECE[3] = { 'L', 'S', 2 };

static bool header(struct cm_rd *r, const uint8_t h[3])
{
        const uint8_t *p = cm_rd_bytes(r, 3);

        return p && !memcmp(p, h, 3);
}

void lp_rs_changes_begin(struct cm_wbuf *w, size_t n)
{
        cm_wbuf_bytes(w, H_CHANGES, 3);
        cm_wbuf_v(w, n);
}

void lp_rs_change_put(struct cm_wbuf *w, const struct lp_rs_change *c)
{
        cm_wbuf_v(w, c->ino);
        cm_wbuf_v(w, c->lseq);
        cm_wbuf_u8(w, c->gone ? 1 : 0);
        cm_wbuf_str(w, c->vv, c->vvlen);
}

int lp_rs_changes_open(struct cm_rd *r, const void *buf, size_t len, size_t *ret_n)
{
        cm_rd_init(r, buf, len);
        if (!header(r, H_CHANGES))
                return -EBADMSG;
        *ret_n = (size_t)cm_rd_vmax(r, LP_RS_MAX_ITEMS);
        return cm_rd_ok(r) ? 0 : -EBADMSG;
}

int lp_rs_change_next(struct cm_rd *r, struct lp_rs_change *c)
{
        uint8_t flags;

        c->ino = cm_rd_v(r);
        c->lseq = cm_rd_v(r);
        flags = cm_rd_u8(r);
        c->gone = flags & 1;
        c->vv = cm_rd_str(r, LP_RS_VV_MAX, &c->vvlen);
        if (!cm_rd_ok(r) || (flags & ~1u))
                return -EBADMSG;
        return 0;
}

int lp_rs_pulls_encode(struct cm_wbuf *w, const uint64_t *inos, size_t n)
{
        cm_wbuf_bytes(w, H_PULLS, 3);
        cm_wbuf_v(w, n);
        for (size_t i = 0; i < n; i++)
                cm_wbuf_v(w, inos[i]);
        return w->err;
}

int lp_rs_pulls_decode(const void *buf, size_t len, uint64_t **ret_inos, size_t *ret_n)
{
        struct cm_rd r;
        uint64_t *inos;
        size_t n;

        *ret_inos = NULL;
        *ret_n = 0;
        cm_rd_init(&r, buf, len);
        if (!header(&r, H_PULLS))
                return -EBADMSG;
        n = (size_t)cm_rd_vmax(&r, LP_RS_MAX_ITEMS);
        if (!cm_rd_ok(&r))
                return -EBADMSG;
        inos = calloc(n ? n : 1, sizeof(*inos));
        if (!inos)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                inos[i] = cm_rd_v(&r);
        if (!cm_rd_end(&r)) {
                free(inos);
                return -EBADMSG;
        }
        *ret_inos = inos;
        *ret_n = n;
        return 0;
}

static void put_time(struct cm_wbuf *w, struct lp_fs_time t)
{
        cm_wbuf_z(w, t.sec);
        cm_wbuf_v(w, t.nsec);
}

static struct lp_fs_time get_time(struct cm_rd *r)
{
        struct lp_fs_time t;

        t.sec = cm_rd_z(r);
        t.nsec = (uint32_t)cm_rd_vmax(r, 999999999u);
        return t;
}

bool lp_rs_state_complete(const struct lp_rs_state *st)
{
        return !st->from && !st->more;
}

static size_t vlen(uint64_t v)
{
        size_t n = 1;

        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}

size_t lp_rs_entry_size(const struct lp_rs_entry *e)
{
        return vlen(e->id) + vlen(e->cookie) + vlen(e->ino) + vlen(e->type) + vlen(e->namelen) + e->namelen;
}

void lp_rs_state_encode(struct cm_wbuf *w, const struct lp_rs_state *st)
{
        bool piece = st->kind == LP_RS_INODE && !lp_rs_state_complete(st);

        cm_wbuf_bytes(w, piece ? H_PIECE : H_STATE, 3);
        cm_wbuf_u8(w, (uint8_t)st->kind);
        cm_wbuf_v(w, st->ino);
        cm_wbuf_str(w, st->vv, st->vvlen);
        if (st->kind != LP_RS_INODE)
                return;
        cm_wbuf_v(w, st->mode);
        cm_wbuf_v(w, st->nlink);
        cm_wbuf_v(w, st->uid);
        cm_wbuf_v(w, st->gid);
        cm_wbuf_v(w, st->rdev);
        cm_wbuf_v(w, st->size);
        put_time(w, st->atime);
        put_time(w, st->mtime);
        put_time(w, st->ctime);
        cm_wbuf_v(w, st->generation);
        cm_wbuf_str(w, st->target, st->targetlen);
        cm_wbuf_v(w, st->nxattrs);
        for (size_t i = 0; i < st->nxattrs; i++) {
                cm_wbuf_str(w, st->xattrs[i].name, st->xattrs[i].namelen);
                cm_wbuf_str(w, st->xattrs[i].value, st->xattrs[i].vlen);
        }
        if (piece) {
                cm_wbuf_v(w, st->from);
                cm_wbuf_u8(w, st->more ? 1 : 0);
        }
        cm_wbuf_v(w, st->nentries);
        for (size_t i = 0; i < st->nentries; i++) {
                const struct lp_rs_entry *e = &st->entries[i];

                cm_wbuf_v(w, e->id);
                cm_wbuf_v(w, e->cookie);
                cm_wbuf_v(w, e->ino);
                cm_wbuf_v(w, e->type);
                cm_wbuf_str(w, e->name, e->namelen);
        }
        cm_wbuf_v(w, st->nextents);
        for (size_t i = 0; i < st->nextents; i++) {
                cm_wbuf_v(w, st->extents[i].page);
                cm_wbuf_v(w, st->extents[i].npages);
        }
        cm_wbuf_u8(w, st->has_data ? 1 : 0);
        if (st->has_data)
                cm_wbuf_str(w, st->data, st->datalen);
}

void lp_rs_state_free(struct lp_rs_state *st)
{
        free(st->xattrs);
        free(st->entries);
        free(st->extents);
        st->xattrs = NULL;
        st->entries = NULL;
        st->extents = NULL;
        st->nxattrs = st->nentries = st->nextents = 0;
}

static int alloc_n(void **p, size_t n, size_t size)
{
        *p = calloc(n ? n : 1, size);
        return *p ? 0 : -ENOMEM;
}

static int decode_inode(struct cm_rd *r, struct lp_rs_state *st, bool piece)
{
        uint8_t inl, more;
        int err;

        st->mode = (uint32_t)cm_rd_vmax(r, UINT32_MAX);
        st->nlink = (uint32_t)cm_rd_vmax(r, UINT32_MAX);
        st->uid = (uint32_t)cm_rd_vmax(r, UINT32_MAX);
        st->gid = (uint32_t)cm_rd_vmax(r, UINT32_MAX);
        st->rdev = cm_rd_v(r);
        st->size = cm_rd_vmax(r, INT64_MAX);
        st->atime = get_time(r);
        st->mtime = get_time(r);
        st->ctime = get_time(r);
        st->generation = cm_rd_v(r);
        st->target = cm_rd_str(r, LP_RS_TARGET_MAX, &st->targetlen);
        if (!cm_rd_ok(r))
                return -EBADMSG;

        st->nxattrs = (size_t)cm_rd_vmax(r, LP_RS_MAX_ITEMS);
        if (!cm_rd_ok(r))
                return -EBADMSG;
        if ((err = alloc_n((void **)&st->xattrs, st->nxattrs, sizeof(*st->xattrs))) < 0)
                return err;
        for (size_t i = 0; i < st->nxattrs; i++) {
                struct lp_rs_xattr *x = &st->xattrs[i];

                x->name = cm_rd_str(r, LP_RS_XNAME_MAX, &x->namelen);
                x->value = cm_rd_str(r, LP_RS_XVALUE_MAX, &x->vlen);
                if (!cm_rd_ok(r) || !x->namelen)
                        return -EBADMSG;
        }
        if (piece) {
                st->from = cm_rd_v(r);
                more = cm_rd_u8(r);
                /* Canonical: a complete state is version 1. */
                if (!cm_rd_ok(r) || more > 1 || (!st->from && !more) || !S_ISDIR(st->mode))
                        return -EBADMSG;
                st->more = more;
        }
        st->nentries = (size_t)cm_rd_vmax(r, LP_RS_MAX_ITEMS);
        if (!cm_rd_ok(r))
                return -EBADMSG;
        if ((err = alloc_n((void **)&st->entries, st->nentries, sizeof(*st->entries))) < 0)
                return err;
        for (size_t i = 0; i < st->nentries; i++) {
                struct lp_rs_entry *e = &st->entries[i];

                e->id = cm_rd_v(r);
                e->cookie = cm_rd_v(r);
                e->ino = cm_rd_v(r);
                e->type = (uint32_t)cm_rd_vmax(r, 255);
                e->name = cm_rd_str(r, LP_RS_NAME_MAX, &e->namelen);
                if (!cm_rd_ok(r) || !e->namelen || memchr(e->name, '/', e->namelen) ||
                    memchr(e->name, 0, e->namelen))
                        return -EBADMSG;
                /* A piece is a run of the cookie-ordered listing. */
                if (piece && e->cookie <= (i ? st->entries[i - 1].cookie : st->from))
                        return -EBADMSG;
        }
        st->nextents = (size_t)cm_rd_vmax(r, LP_RS_MAX_ITEMS);
        if (!cm_rd_ok(r))
                return -EBADMSG;
        if ((err = alloc_n((void **)&st->extents, st->nextents, sizeof(*st->extents))) < 0)
                return err;
        for (size_t i = 0; i < st->nextents; i++) {
                st->extents[i].page = cm_rd_v(r);
                st->extents[i].npages = cm_rd_v(r);
                if (st->extents[i].npages == 0 || st->extents[i].page + st->extents[i].npages <
                    st->extents[i].page)
                        return -EBADMSG;
        }
        inl = cm_rd_u8(r);
        if (inl > 1)
                return -EBADMSG;
        st->has_data = inl;
        if (inl)
                st->data = cm_rd_str(r, LP_RS_INLINE_MAX, &st->datalen);
        return cm_rd_end(r) ? 0 : -EBADMSG;
}

int lp_rs_state_decode(const void *buf, size_t len, struct lp_rs_state *st)
{
        struct cm_rd r;
        const uint8_t *h;
        uint8_t kind;
        bool piece;
        int err;

        memset(st, 0, sizeof(*st));
        cm_rd_init(&r, buf, len);
        h = cm_rd_bytes(&r, 3);
        if (!h || memcmp(h, H_STATE, 2) || (h[2] != H_STATE[2] && h[2] != H_PIECE[2]))
                return -EBADMSG;
        piece = h[2] == H_PIECE[2];
        kind = cm_rd_u8(&r);
        st->ino = cm_rd_v(&r);
        st->vv = cm_rd_str(&r, LP_RS_VV_MAX, &st->vvlen);
        if (!cm_rd_ok(&r) || (kind != LP_RS_INODE && kind != LP_RS_GONE) || !st->ino)
                return -EBADMSG;
        st->kind = kind;
        if (kind == LP_RS_GONE)
                return cm_rd_end(&r) && !piece ? 0 : -EBADMSG;
        err = decode_inode(&r, st, piece);
        if (err < 0)
                lp_rs_state_free(st);
        return err;
}
