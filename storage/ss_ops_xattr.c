/*
 * ss_ops_xattr.c -- the storage site's extended attributes (ss_ops.h):
 * GETXATTR, SETXATTR, LISTXATTR, REMOVEXATTR.
 */
#include "ss_ops_int.h"
#include "ss_place.h"

#include <errno.h>
#include <string.h>

/* ---- xattrs -------------------------------------------------------------------------- */

static int check_xname(struct ss_opctx *x, const struct lp_fs_req *q)
{
        if (q->namelen == 0 || q->namelen > SS_XATTR_NAME_MAX)
                return ss__fail(x, -ERANGE, "xattr name of %zu bytes", q->namelen);
        if (memchr(q->name, 0, q->namelen))
                return ss__fail(x, -EINVAL, "xattr name contains NUL");
        return 0;
}

int ss__op_getxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        uint8_t *buf;
        size_t len;
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = check_xname(x, q);
        if (r < 0)
                return r;
        buf = ss__xalloc(x, SS_XATTR_VALUE_MAX);
        if (!buf)
                return ss__fail(x, -ENOMEM, "out of memory");
        r = ss_db_xattr_get(x->ct->db, q->ino, q->name, q->namelen, buf, SS_XATTR_VALUE_MAX, &len);
        if (r == -ENOENT)
                return ss__fail(x, -ENODATA, "no xattr '%.*s'", (int)q->namelen, (const char *)q->name);
        if (r < 0)
                return ss__fail(x, r, "reading xattr: %s", ss_db_errmsg(x->ct->db));
        if (q->length == 0) {
                a->value = len;
                return 0;
        }
        if (q->length < len)
                return ss__fail(x, -ERANGE, "value of %zu bytes, buffer of %llu", len, (unsigned long long)q->length);
        a->data = buf;
        a->datalen = len;
        return 0;
}

struct xsum {
        const uint8_t *skip;
        size_t skiplen;
        uint64_t total, names;
        bool found;
};

static int xsum_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xsum *s = ctx;

        (void)value;
        if (namelen == s->skiplen && !memcmp(name, s->skip, namelen)) {
                s->found = true;
                return 0;
        }
        s->total += namelen + vlen;
        s->names += namelen + 1;
        return 0;
}

int ss__op_setxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct xsum sum;
        struct ss_mut m;
        int kind, r = ss__get_inode(x, q->ino, &in);

        (void)a;
        if (r < 0)
                return r;
        r = check_xname(x, q);
        if (r < 0)
                return r;
        r = ss_place_guard(x, &in, -EHOSTUNREACH, "setxattr");        /* ss_place.h [L4] */
        if (r < 0)
                return r;
        if (q->flags & ~(LP_FS_XATTR_CREATE | LP_FS_XATTR_REPLACE))
                return ss__fail(x, -EINVAL, "unknown setxattr flags %#x", q->flags);
        if (q->datalen > SS_XATTR_VALUE_MAX)
                return ss__fail(x, -E2BIG, "xattr value of %zu bytes (at most %u)", q->datalen, SS_XATTR_VALUE_MAX);
        sum = (struct xsum){ .skip = q->name, .skiplen = q->namelen };
        r = ss_db_xattr_each(x->ct->db, q->ino, xsum_cb, &sum);
        if (r < 0)
                return ss__fail(x, r, "listing xattrs: %s", ss_db_errmsg(x->ct->db));
        if ((q->flags & LP_FS_XATTR_CREATE) && sum.found)
                return ss__fail(x, -EEXIST, "xattr '%.*s' exists", (int)q->namelen, (const char *)q->name);
        if ((q->flags & LP_FS_XATTR_REPLACE) && !sum.found)
                return ss__fail(x, -ENODATA, "no xattr '%.*s'", (int)q->namelen, (const char *)q->name);
        if (sum.total + q->namelen + q->datalen > SS_XATTR_TOTAL_MAX ||
            sum.names + q->namelen + 1 > SS_XATTR_LIST_MAX)
                return ss__fail(x, -ENOSPC, "the inode's xattrs would exceed %u bytes (names %u)",
                                SS_XATTR_TOTAL_MAX, SS_XATTR_LIST_MAX);
        r = ss__space_ok(x, q->datalen);
        if (r < 0)
                return r;
        ss_mut_init(x->ct, &m, NULL);
        /* Copies policies (ss_place.h): checked; a file's placement is
         * resolved again. */
        kind = ss_place_name(q->name, q->namelen);
        r = kind ? ss_place_set(x, &m, &in, kind, q->data, q->datalen, false) : 0;
        if (r < 0) {
                ss_mut_abort(x->ct, &m);
                return r;
        }
        if (r == 0)
                ss_cs_put_xattr(&m.cs, q->ino, q->name, q->namelen, q->data, q->datalen);
        in.ctime = ss__now_time();
        ss_cs_put_inode(&m.cs, &in, 0);
        return ss__commit(x, &m, NULL);
}

struct xlist {
        uint8_t *buf;
        size_t len;
};

static int xlist_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xlist *l = ctx;

        (void)value;
        (void)vlen;
        if (l->len + namelen + 1 > SS_XATTR_LIST_MAX)
                return -E2BIG;
        memcpy(l->buf + l->len, name, namelen);
        l->buf[l->len + namelen] = 0;
        l->len += namelen + 1;
        return 0;
}

int ss__op_listxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct xlist l = { 0 };
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        l.buf = ss__xalloc(x, SS_XATTR_LIST_MAX);
        if (!l.buf)
                return ss__fail(x, -ENOMEM, "out of memory");
        r = ss_db_xattr_each(x->ct->db, q->ino, xlist_cb, &l);
        if (r < 0)
                return ss__fail(x, r == -E2BIG ? -E2BIG : r, "listing xattrs");
        if (q->length == 0) {
                a->value = l.len;
                return 0;
        }
        if (q->length < l.len)
                return ss__fail(x, -ERANGE, "list of %zu bytes, buffer of %llu", l.len, (unsigned long long)q->length);
        a->data = l.buf;
        a->datalen = l.len;
        return 0;
}

int ss__op_removexattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_mut m;
        size_t len;
        int kind, r = ss__get_inode(x, q->ino, &in);

        (void)a;
        if (r < 0)
                return r;
        r = check_xname(x, q);
        if (r < 0)
                return r;
        r = ss_db_xattr_get(x->ct->db, q->ino, q->name, q->namelen, NULL, 0, &len);
        if (r == -ENOENT)
                return ss__fail(x, -ENODATA, "no xattr '%.*s'", (int)q->namelen, (const char *)q->name);
        if (r < 0)
                return ss__fail(x, r, "reading xattr: %s", ss_db_errmsg(x->ct->db));
        r = ss_place_guard(x, &in, -EHOSTUNREACH, "removexattr");     /* ss_place.h [L4] */
        if (r < 0)
                return r;
        ss_mut_init(x->ct, &m, NULL);
        kind = ss_place_name(q->name, q->namelen);
        r = kind ? ss_place_set(x, &m, &in, kind, NULL, 0, true) : 0;
        if (r < 0) {
                ss_mut_abort(x->ct, &m);
                return r;
        }
        if (r == 0)
                ss_cs_del_xattr(&m.cs, q->ino, q->name, q->namelen);
        in.ctime = ss__now_time();
        ss_cs_put_inode(&m.cs, &in, 0);
        return ss__commit(x, &m, NULL);
}
