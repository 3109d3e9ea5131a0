/*
 * ss_cs.c -- see ss_cs.h (the format is documented there).
 */
#include "ss_cs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cm_varint.h"
#include "dsm.h"

#define CS_VERSION 2u
#define CS_VERSION_OLD 1u               /* read only */
#define IMG_PIECE (64u << 10)
#define ROW_MAX (SS_XATTR_VALUE_MAX + 2 * SS_NAME_MAX + 64)

/* ---- encoding --------------------------------------------------------------- */

static void reserve(struct ss_cs *cs, size_t more)
{
        size_t cap;
        uint8_t *n;

        if (cs->err || cs->len + more <= cs->cap)
                return;
        cap = cs->cap ? cs->cap : 256;
        while (cap < cs->len + more)
                cap *= 2;
        n = realloc(cs->p, cap);
        if (!n) {
                cs->err = -ENOMEM;
                return;
        }
        cs->p = n;
        cs->cap = cap;
}

static void put_bytes(struct ss_cs *cs, const void *p, size_t n)
{
        reserve(cs, n);
        if (cs->err)
                return;
        if (n)
                memcpy(cs->p + cs->len, p, n);
        cs->len += n;
}

static void put_v(struct ss_cs *cs, uint64_t v)
{
        uint8_t b[CM_VARINT_MAX];

        put_bytes(cs, b, cm_varint_put(b, v));
}

static void put_z(struct ss_cs *cs, int64_t v)
{
        put_v(cs, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void put_str(struct ss_cs *cs, const void *p, size_t n)
{
        put_v(cs, n);
        put_bytes(cs, p, n);
}

/*
 * A row is written body first into the tail of the buffer, then moved up
 * to make room for its length: rows are small, so the move is cheap and
 * the encoders stay one-pass.
 */
static size_t row_begin(struct ss_cs *cs, unsigned tag)
{
        size_t start = cs->len;
        uint8_t t = (uint8_t)tag;

        if (cs->sealed && !cs->err)
                cs->err = -EINVAL;      /* a caller bug: rows after the end */

        put_bytes(cs, &t, 1);
        return start;
}

static void row_end(struct ss_cs *cs, size_t start)
{
        size_t body = cs->len - start;
        uint8_t b[CM_VARINT_MAX];
        size_t lv = cm_varint_put(b, body);

        reserve(cs, lv);
        if (cs->err)
                return;
        memmove(cs->p + start + lv, cs->p + start, body);
        memcpy(cs->p + start, b, lv);
        cs->len += lv;
        cs->nrows++;
}

void ss_cs_init(struct ss_cs *cs)
{
        static const uint8_t hdr[3] = { 'L', 'C', CS_VERSION };

        memset(cs, 0, sizeof(*cs));
        put_bytes(cs, hdr, sizeof(hdr));
}

void ss_cs_seal(struct ss_cs *cs)
{
        static const uint8_t end = 0;

        if (cs->sealed)
                return;
        put_bytes(cs, &end, 1);
        cs->sealed = true;
}

void ss_cs_free(struct ss_cs *cs)
{
        free(cs->p);
        memset(cs, 0, sizeof(*cs));
}

/* The vector a row carries: in (vvlen 0: empty) as is (SS_CS_KEEPVV), or
 * incremented at the builder's site.  Returns the length in out. */
static size_t row_vv(struct ss_cs *cs, const uint8_t *vv, size_t vvlen, unsigned flags, uint8_t *out)
{
        struct dsm_vv v;
        ssize_t n;
        int r;

        if (flags & SS_CS_KEEPVV) {
                if (vvlen == 0 || vvlen > SS_VV_MAX) {
                        out[0] = 0;
                        if (vvlen > SS_VV_MAX && !cs->err)
                                cs->err = -E2BIG;
                        return 1;
                }
                memcpy(out, vv, vvlen);
                return vvlen;
        }
        if (cs->site == 0) {
                if (!cs->err)
                        cs->err = -EINVAL;      /* a caller bug: no site to count at */
                out[0] = 0;
                return 1;
        }
        dsm_vv_init(&v);
        r = 0;
        if (vvlen && dsm_vv_decode(&v, vv, vvlen) != (ssize_t)vvlen)
                r = -EBADMSG;
        if (r >= 0)
                r = dsm_vv_increment(&v, cs->site);
        n = r < 0 ? r : dsm_vv_encode(&v, out, SS_VV_MAX);
        dsm_vv_free(&v);
        if (n < 0) {
                if (!cs->err)
                        cs->err = n == -ENOBUFS ? -E2BIG : (int)n;
                out[0] = 0;
                return 1;
        }
        return (size_t)n;
}

static void enc_inode(struct ss_cs *cs, const struct ss_inode *in, unsigned flags, uint64_t lseq)
{
        uint8_t vv[SS_VV_MAX];
        size_t vl = row_vv(cs, in->vv, in->vvlen, flags, vv);
        size_t st = row_begin(cs, SS_CS_INODE | (flags & SS_CS_GSEQ));

        put_v(cs, in->ino);
        put_v(cs, in->mode);
        put_v(cs, in->nlink);
        put_v(cs, in->uid);
        put_v(cs, in->gid);
        put_v(cs, in->rdev);
        put_v(cs, in->size);
        put_z(cs, in->atime.sec);
        put_v(cs, in->atime.nsec);
        put_z(cs, in->mtime.sec);
        put_v(cs, in->mtime.nsec);
        put_z(cs, in->ctime.sec);
        put_v(cs, in->ctime.nsec);
        put_v(cs, in->generation);
        put_str(cs, vv, vl);
        put_v(cs, lseq);
        put_str(cs, in->target, in->targetlen);
        row_end(cs, st);
}

void ss_cs_put_inode(struct ss_cs *cs, const struct ss_inode *in, unsigned flags)
{
        enc_inode(cs, in, flags, 0);
}

static void enc_gone(struct ss_cs *cs, uint64_t ino, const uint8_t *vv, size_t vvlen, unsigned flags,
                     uint64_t lseq)
{
        uint8_t out[SS_VV_MAX];
        size_t vl = row_vv(cs, vv, vvlen, flags, out);
        size_t st = row_begin(cs, SS_CS_INODE | SS_CS_DEL);

        put_v(cs, ino);
        put_str(cs, out, vl);
        put_v(cs, lseq);
        row_end(cs, st);
}

void ss_cs_del_inode(struct ss_cs *cs, uint64_t ino, const uint8_t *vv, size_t vvlen, unsigned flags)
{
        enc_gone(cs, ino, vv, vvlen, flags, 0);
}

void ss_cs_put_dirent(struct ss_cs *cs, const struct ss_dirent *d)
{
        size_t st = row_begin(cs, SS_CS_DIRENT);

        put_v(cs, d->id);
        put_v(cs, d->parent);
        put_v(cs, d->ino);
        put_v(cs, d->type);
        put_v(cs, d->cookie);
        put_str(cs, d->name, d->namelen);
        row_end(cs, st);
}

void ss_cs_del_dirent(struct ss_cs *cs, uint64_t id)
{
        size_t st = row_begin(cs, SS_CS_DIRENT | SS_CS_DEL);

        put_v(cs, id);
        row_end(cs, st);
}

void ss_cs_put_xattr(struct ss_cs *cs, uint64_t ino, const uint8_t *name, size_t namelen,
                     const void *value, size_t vlen)
{
        size_t st = row_begin(cs, SS_CS_XATTR);

        put_v(cs, ino);
        put_str(cs, name, namelen);
        put_str(cs, value, vlen);
        row_end(cs, st);
}

void ss_cs_del_xattr(struct ss_cs *cs, uint64_t ino, const uint8_t *name, size_t namelen)
{
        size_t st = row_begin(cs, SS_CS_XATTR | SS_CS_DEL);

        put_v(cs, ino);
        put_str(cs, name, namelen);
        row_end(cs, st);
}

void ss_cs_put_meta(struct ss_cs *cs, const char *key, uint64_t value)
{
        size_t st = row_begin(cs, SS_CS_META);

        put_str(cs, key, strlen(key));
        put_v(cs, value);
        row_end(cs, st);
}

/* ---- decoding ----------------------------------------------------------------- */

struct rd {
        const uint8_t *p;
        size_t len, pos;
        bool err;
};

static uint64_t get_v(struct rd *r)
{
        uint64_t v;

        if (r->err || cm_varint_get(r->p, r->len, &r->pos, &v) < 0) {
                r->err = true;
                return 0;
        }
        return v;
}

static int64_t get_z(struct rd *r)
{
        uint64_t v = get_v(r);

        return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static uint32_t get_u32(struct rd *r)
{
        uint64_t v = get_v(r);

        if (v > UINT32_MAX)
                r->err = true;
        return (uint32_t)v;
}

static const uint8_t *get_str(struct rd *r, size_t max, size_t *ret_n)
{
        uint64_t n = get_v(r);
        const uint8_t *p;

        if (r->err || n > max || n > r->len - r->pos) {
                r->err = true;
                *ret_n = 0;
                return NULL;
        }
        p = r->p + r->pos;
        r->pos += n;
        *ret_n = (size_t)n;
        return p;
}

static uint32_t get_nsec(struct rd *r)
{
        uint32_t v = get_u32(r);

        if (v >= 1000000000u)
                r->err = true;
        return v;
}

/* A vector's bytes: a valid encoding, whole. */
static const uint8_t *get_vv(struct rd *r, size_t *ret_n)
{
        const uint8_t *p = get_str(r, SS_VV_MAX, ret_n);
        struct dsm_vv v;

        if (r->err)
                return NULL;
        dsm_vv_init(&v);
        if (*ret_n == 0 || dsm_vv_decode(&v, p, *ret_n) != (ssize_t)*ret_n)
                r->err = true;
        dsm_vv_free(&v);
        return p;
}

int ss_cs_vv_sum(const uint8_t *vv, size_t vvlen, uint64_t *ret)
{
        struct dsm_vv v;
        uint64_t sum = 0;

        dsm_vv_init(&v);
        if (vvlen && dsm_vv_decode(&v, vv, vvlen) != (ssize_t)vvlen) {
                dsm_vv_free(&v);
                return -EBADMSG;
        }
        for (uint32_t i = 0; i < v.n; i++)
                sum = v.e[i].counter > UINT64_MAX - sum ? UINT64_MAX : sum + v.e[i].counter;
        dsm_vv_free(&v);
        *ret = sum;
        return 0;
}

/* An inode put body after its tag, as format version ver wrote it. */
static int dec_inode(struct rd *r, unsigned ver, unsigned tag, uint64_t seq, struct ss_inode *in)
{
        const uint8_t *t, *vv = NULL;
        size_t tl, vl = 0;

        in->ino = get_v(r);
        in->mode = get_u32(r);
        in->nlink = get_u32(r);
        in->uid = get_u32(r);
        in->gid = get_u32(r);
        in->rdev = get_v(r);
        in->size = get_v(r);
        in->atime.sec = get_z(r);
        in->atime.nsec = get_nsec(r);
        in->mtime.sec = get_z(r);
        in->mtime.nsec = get_nsec(r);
        in->ctime.sec = get_z(r);
        in->ctime.nsec = get_nsec(r);
        in->generation = get_v(r);
        in->lseq = 0;
        if (ver == CS_VERSION_OLD) {
                (void)get_v(r);         /* version: now the sum of the vector */
        } else {
                vv = get_vv(r, &vl);
                in->lseq = get_v(r);
        }
        t = get_str(r, SS_SYMLINK_MAX, &tl);
        if (r->err || r->pos != r->len || in->size > INT64_MAX)
                return -EBADMSG;
        in->targetlen = (uint32_t)tl;
        if (tl)
                memcpy(in->target, t, tl);
        in->target[tl] = 0;
        /* Format 1 had no vectors: its rows read as the empty one. */
        in->vvlen = vl ? (uint32_t)vl : 1;
        if (vl)
                memcpy(in->vv, vv, vl);
        else
                in->vv[0] = 0;
        if (ss_cs_vv_sum(in->vv, in->vvlen, &in->version) < 0)
                return -EBADMSG;
        if (!in->lseq)
                in->lseq = seq;
        if (tag & SS_CS_GSEQ)
                in->generation = seq;
        return 0;
}

/* An inode del body (a deletion record) after its tag. */
static int dec_gone(struct rd *r, unsigned ver, uint64_t seq, uint64_t *ino, const uint8_t **vv, size_t *vl,
                    uint64_t *lseq)
{
        static const uint8_t empty = 0;

        *ino = get_v(r);
        *vv = &empty;
        *vl = 1;
        *lseq = 0;
        if (ver != CS_VERSION_OLD) {
                *vv = get_vv(r, vl);
                *lseq = get_v(r);
        }
        if (r->err || r->pos != r->len)
                return -EBADMSG;
        if (!*lseq)
                *lseq = seq;
        return 0;
}

uint64_t ss_cs_cookie_hash(const uint8_t *name, size_t namelen)
{
        return SS_COOKIE_MIN + XXH3_64bits(name, namelen) % (SS_COOKIE_END - SS_COOKIE_MIN);
}

int ss_cs_cookie(struct ss_db *db, uint64_t parent, const uint8_t *name, size_t namelen, uint64_t except_id,
                 const struct ss_cs_claim *claimed, size_t nclaimed, uint64_t *ret)
{
        uint64_t c = ss_cs_cookie_hash(name, namelen);

        for (;;) {
                bool mine = false;
                int r;

                for (size_t i = 0; i < nclaimed; i++)
                        if (claimed[i].parent == parent && claimed[i].cookie == c)
                                mine = true;
                if (!mine) {
                        r = ss_db_cookie_taken(db, parent, c, except_id);
                        if (r < 0)
                                return r;
                        if (!r) {
                                *ret = c;
                                return 0;
                        }
                }
                c = c + 1 < SS_COOKIE_END ? c + 1 : SS_COOKIE_MIN;
        }
}

/* Apply one row body (tag + fields) of format version ver. */
static int apply_row(struct ss_db *db, uint64_t seq, unsigned ver, const uint8_t *body, size_t len)
{
        struct rd r = { body, len, 1, false };
        unsigned tag;
        int ret;

        if (len < 1)
                return -EBADMSG;
        tag = body[0];
        if (ver == CS_VERSION_OLD && (tag & ~(unsigned)(SS_CS_VSEQ_OLD | SS_CS_GSEQ)) == SS_CS_INODE)
                tag &= ~(unsigned)SS_CS_VSEQ_OLD;       /* version := seq: gone with the vectors */
        switch (tag) {
        case SS_CS_INODE:
        case SS_CS_INODE | SS_CS_GSEQ: {
                struct ss_inode *in = malloc(sizeof(*in));

                if (!in)
                        return -ENOMEM;
                ret = dec_inode(&r, ver, tag, seq, in);
                if (ret >= 0)
                        ret = ss_db_inode_put(db, in);
                free(in);
                return ret;
        }
        case SS_CS_INODE | SS_CS_DEL: {
                uint64_t ino, lseq;
                const uint8_t *vv;
                size_t vl;

                ret = dec_gone(&r, ver, seq, &ino, &vv, &vl, &lseq);
                if (ret >= 0)
                        ret = ss_db_inode_del(db, ino);
                if (ret >= 0)
                        ret = ss_db_gone_put(db, ino, vv, vl, lseq);
                return ret;
        }
        case SS_CS_DIRENT: {
                struct ss_dirent d;
                const uint8_t *n;
                size_t nl;

                d.id = get_v(&r);
                d.parent = get_v(&r);
                d.ino = get_v(&r);
                d.type = get_u32(&r);
                d.cookie = ver == CS_VERSION_OLD ? 0 : get_v(&r);
                n = get_str(&r, SS_NAME_MAX, &nl);
                if (r.err || r.pos != r.len || nl == 0)
                        return -EBADMSG;
                if (ver != CS_VERSION_OLD && (d.cookie < SS_COOKIE_MIN || d.cookie >= SS_COOKIE_END))
                        return -EBADMSG;
                memcpy(d.name, n, nl);
                d.name[nl] = 0;
                d.namelen = (uint32_t)nl;
                if (ver == CS_VERSION_OLD) {
                        /* Format 1 had no cookies: chosen from the name as a
                         * new entry's would be, so every replay of the
                         * same log picks the same. */
                        ret = ss_cs_cookie(db, d.parent, d.name, nl, d.id, NULL, 0, &d.cookie);
                        if (ret < 0)
                                return ret;
                }
                return ss_db_dirent_put(db, &d);
        }
        case SS_CS_DIRENT | SS_CS_DEL: {
                uint64_t id = get_v(&r);

                if (r.err || r.pos != r.len)
                        return -EBADMSG;
                return ss_db_dirent_del(db, id);
        }
        case SS_CS_XATTR: {
                const uint8_t *n, *v;
                size_t nl, vl;
                uint64_t ino = get_v(&r);

                n = get_str(&r, SS_XATTR_NAME_MAX, &nl);
                v = get_str(&r, SS_XATTR_VALUE_MAX, &vl);
                if (r.err || r.pos != r.len || nl == 0)
                        return -EBADMSG;
                return ss_db_xattr_put(db, ino, n, nl, v, vl);
        }
        case SS_CS_XATTR | SS_CS_DEL: {
                const uint8_t *n;
                size_t nl;
                uint64_t ino = get_v(&r);

                n = get_str(&r, SS_XATTR_NAME_MAX, &nl);
                if (r.err || r.pos != r.len || nl == 0)
                        return -EBADMSG;
                return ss_db_xattr_del(db, ino, n, nl);
        }
        case SS_CS_META:
        case SS_CS_META | SS_CS_DEL: {
                char key[SS_META_KEY_MAX + 1];
                const uint8_t *k;
                size_t kl;
                uint64_t v = 0;

                k = get_str(&r, SS_META_KEY_MAX, &kl);
                if (!(tag & SS_CS_DEL))
                        v = get_v(&r);
                if (r.err || r.pos != r.len || kl == 0 || memchr(k, 0, kl))
                        return -EBADMSG;
                memcpy(key, k, kl);
                key[kl] = 0;
                if (!strcmp(key, "applied_seq") || !strcmp(key, "schema"))
                        return -EBADMSG;
                if (tag & SS_CS_DEL)
                        return ss_db_meta_del(db, key);
                return ss_db_meta_put(db, key, v);
        }
        default:
                return -EBADMSG;
        }
}

/* Split the rows of p[0..len) and apply the complete ones; *ret_used says
 * how many bytes they took (the rest is an incomplete row).  *ended is set
 * at the end mark, which must be the last byte. */
static int apply_rows(struct ss_db *db, uint64_t seq, unsigned ver, const uint8_t *p, size_t len,
                      size_t *ret_used, uint64_t *nrows, bool *ended)
{
        size_t pos = 0;

        while (pos < len) {
                if (*ended)
                        return -EBADMSG;        /* bytes after the end mark */
                if (p[pos] == 0) {
                        *ended = true;
                        pos++;
                        continue;
                }
                {
                struct rd r = { p + pos, len - pos, 0, false };
                uint64_t body = get_v(&r);
                int ret;

                if (r.err) {
                        /* A truncated length prefix: incomplete unless it
                         * is already longer than any varint. */
                        if (len - pos >= CM_VARINT_MAX)
                                return -EBADMSG;
                        break;
                }
                if (body == 0 || body > ROW_MAX)
                        return -EBADMSG;
                if (body > len - pos - r.pos)
                        break;
                ret = apply_row(db, seq, ver, p + pos + r.pos, (size_t)body);
                if (ret < 0)
                        return ret;
                pos += r.pos + (size_t)body;
                if (nrows)
                        (*nrows)++;
                }
        }
        *ret_used = pos;
        return 0;
}

int ss_cs_apply(struct ss_db *db, uint64_t seq, const void *buf, size_t len)
{
        const uint8_t *p = buf;
        bool ended = false;
        size_t used;
        int r;

        if (len < 4 || p[0] != 'L' || p[1] != 'C' || (p[2] != CS_VERSION && p[2] != CS_VERSION_OLD))
                return -EBADMSG;
        r = apply_rows(db, seq, p[2], p + 3, len - 3, &used, NULL, &ended);
        if (r < 0)
                return r;
        if (used != len - 3 || !ended)
                return -EBADMSG;        /* a truncated row, or no end mark */
        return ss_db_meta_put(db, "applied_seq", seq);
}

int ss_cs_each_inode(const void *buf, size_t len,
                     int (*fn)(void *ctx, uint64_t ino, bool gone, const uint8_t *vv, size_t vvlen), void *ctx)
{
        const uint8_t *p = buf;
        struct ss_inode *in = NULL;
        size_t pos = 3;
        int ret = 0;

        if (len < 4 || p[0] != 'L' || p[1] != 'C' || (p[2] != CS_VERSION && p[2] != CS_VERSION_OLD))
                return -EBADMSG;
        while (ret >= 0 && pos < len && p[pos] != 0) {
                struct rd r = { p + pos, len - pos, 0, false };
                uint64_t body = get_v(&r);
                struct rd b;
                unsigned tag;

                if (r.err || body == 0 || body > len - pos - r.pos) {
                        ret = -EBADMSG;
                        break;
                }
                b = (struct rd){ p + pos + r.pos, (size_t)body, 1, false };
                tag = b.p[0];
                if (p[2] == CS_VERSION_OLD && (tag & SS_CS_DEL) == 0 && (tag & 0x07) == SS_CS_INODE)
                        tag &= ~(unsigned)SS_CS_VSEQ_OLD;
                if (tag == SS_CS_INODE || tag == (SS_CS_INODE | SS_CS_GSEQ)) {
                        if (!in && !(in = malloc(sizeof(*in)))) {
                                ret = -ENOMEM;
                                break;
                        }
                        ret = dec_inode(&b, p[2], tag, 1, in);
                        if (ret >= 0)
                                ret = fn(ctx, in->ino, false, in->vv, in->vvlen);
                } else if (tag == (SS_CS_INODE | SS_CS_DEL)) {
                        uint64_t ino, lseq;
                        const uint8_t *vv;
                        size_t vl;

                        ret = dec_gone(&b, p[2], 1, &ino, &vv, &vl, &lseq);
                        if (ret >= 0)
                                ret = fn(ctx, ino, true, vv, vl);
                }
                pos += r.pos + (size_t)body;
        }
        free(in);
        return ret < 0 ? ret : 0;
}

/* ---- images ------------------------------------------------------------------ */

struct dump {
        struct ss_cs cs;
        int (*put)(void *ctx, const void *buf, size_t len);
        void *ctx;
};

static int dump_flush(struct dump *d, bool all)
{
        int r;

        if (d->cs.err)
                return d->cs.err;
        if (!all && d->cs.len < IMG_PIECE)
                return 0;
        if (!d->cs.len)
                return 0;
        r = d->put(d->ctx, d->cs.p, d->cs.len);
        d->cs.len = 0;
        return r;
}

static int dump_inode(void *ctx, const struct ss_inode *in)
{
        struct dump *d = ctx;

        enc_inode(&d->cs, in, SS_CS_KEEPVV, in->lseq);
        return dump_flush(d, false);
}

static int dump_gone(void *ctx, uint64_t ino, const uint8_t *vv, size_t vvlen, uint64_t lseq)
{
        struct dump *d = ctx;

        enc_gone(&d->cs, ino, vv, vvlen, SS_CS_KEEPVV, lseq);
        return dump_flush(d, false);
}

static int dump_dirent(void *ctx, const struct ss_dirent *de)
{
        struct dump *d = ctx;

        ss_cs_put_dirent(&d->cs, de);
        return dump_flush(d, false);
}

static int dump_xattr(void *ctx, uint64_t ino, const uint8_t *name, size_t namelen, const void *value,
                      size_t vlen)
{
        struct dump *d = ctx;

        ss_cs_put_xattr(&d->cs, ino, name, namelen, value, vlen);
        return dump_flush(d, false);
}

static int dump_meta(void *ctx, const char *key, uint64_t value)
{
        struct dump *d = ctx;

        if (!strcmp(key, "applied_seq") || !strcmp(key, "schema"))
                return 0;
        ss_cs_put_meta(&d->cs, key, value);
        return dump_flush(d, false);
}

int ss_cs_dump_image(struct ss_db *db, int (*put)(void *ctx, const void *buf, size_t len), void *ctx)
{
        static const uint8_t hdr[3] = { 'L', 'I', CS_VERSION };
        struct dump d = { .put = put, .ctx = ctx };
        int r;

        put_bytes(&d.cs, hdr, sizeof(hdr));
        r = ss_db_each_meta(db, dump_meta, &d);
        if (r >= 0)
                r = ss_db_each_inode(db, dump_inode, &d);
        if (r >= 0)
                r = ss_db_each_gone(db, dump_gone, &d);
        if (r >= 0)
                r = ss_db_each_dirent(db, dump_dirent, &d);
        if (r >= 0)
                r = ss_db_each_xattr(db, dump_xattr, &d);
        if (r >= 0) {
                ss_cs_seal(&d.cs);
                r = dump_flush(&d, true);
        }
        ss_cs_free(&d.cs);
        return r;
}

int ss_cs_image_begin(struct ss_cs_image *im, struct ss_db *db, uint64_t seq)
{
        memset(im, 0, sizeof(*im));
        im->seq = seq;
        return ss_db_clear(db);
}

static int carry(struct ss_cs_image *im, const uint8_t *p, size_t n)
{
        if (im->len + n > im->cap) {
                size_t cap = im->cap ? im->cap : 4096;
                uint8_t *b;

                while (cap < im->len + n)
                        cap *= 2;
                b = realloc(im->buf, cap);
                if (!b)
                        return -ENOMEM;
                im->buf = b;
                im->cap = cap;
        }
        memcpy(im->buf + im->len, p, n);
        im->len += n;
        return 0;
}

int ss_cs_image_feed(struct ss_cs_image *im, struct ss_db *db, const void *chunk, size_t len)
{
        const uint8_t *p = chunk;
        size_t used;
        int r;

        /* Complete the row carried over from the last chunk first, a
         * little at a time, so that a huge chunk is not copied whole. */
        while (im->len > 0 || !im->header) {
                size_t take = len < 4096 ? len : 4096;

                if (take == 0)
                        return 0;
                r = carry(im, p, take);
                if (r < 0)
                        return r;
                p += take;
                len -= take;
                if (!im->header) {
                        if (im->len < 3)
                                continue;
                        if (im->buf[0] != 'L' || im->buf[1] != 'I' ||
                            (im->buf[2] != CS_VERSION && im->buf[2] != CS_VERSION_OLD))
                                return -EBADMSG;
                        im->ver = im->buf[2];
                        memmove(im->buf, im->buf + 3, im->len - 3);
                        im->len -= 3;
                        im->header = true;
                }
                r = apply_rows(db, im->seq, im->ver, im->buf, im->len, &used, &im->rows, &im->ended);
                if (r < 0)
                        return r;
                if (used > 0) {
                        /* Whatever follows the carried rows is in p: put
                         * the unconsumed tail back in front of it. */
                        size_t rest = im->len - used;

                        if (rest <= take) {
                                p -= rest;
                                len += rest;
                                im->len = 0;
                        } else {
                                memmove(im->buf, im->buf + used, rest);
                                im->len = rest;
                        }
                }
        }
        r = apply_rows(db, im->seq, im->ver, p, len, &used, &im->rows, &im->ended);
        if (r < 0)
                return r;
        return carry(im, p + used, len - used);
}

int ss_cs_image_finish(struct ss_cs_image *im, struct ss_db *db)
{
        if (!im->header || !im->ended || im->len != 0)
                return -EBADMSG;
        return ss_db_meta_put(db, "applied_seq", im->seq);
}

void ss_cs_image_free(struct ss_cs_image *im)
{
        free(im->buf);
        memset(im, 0, sizeof(*im));
}
