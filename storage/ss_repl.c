/*
 * ss_repl.c -- what a storage site serves to the other holders of a file
 * group so that they keep their copies in step (docs/replication.md):
 *
 *   SS_CHANGES  the change stream read back from the index (ss_db_changes)
 *   SS_FETCH    one file's state (ss_rs.h), with its data inline when small;
 *               with SS_FETCH_COMPARE, which of a peer's changes this copy
 *               must pull (the peer's vector dominates ours)
 *   SS_INSTALL  install a pulled state as one local commit, keeping its
 *               version vector (BEGIN/DATA stage big files' pages in a
 *               session first)
 *
 * Rules an install follows:
 *  [R1] It installs only a state whose vector dominates the local one (the
 *       inode row's, or the deletion record's); equal or older is a no-op
 *       (answered value 0), concurrent is a conflict: logged, kept, not
 *       installed (reconciliation is issue #9).  It runs on the loop thread
 *       like every mutation, so the check and the commit see one state.
 *  [R2] The vector is installed as it is, never incremented: an install is
 *       not an update, so the copy it came from sees it as equal.
 *  [R3] A directory's entries become exactly the state's: local entries
 *       missing from it or different are deleted first, then new and
 *       changed ones are put, in one changeset, so names never clash.
 *  [R4] A repair (LP_FS_INSTALL_REPAIR, docs/replication.md "Repair of
 *       damaged pages") installs only the pages of a regular file whose
 *       local vector and size EQUAL the state's: the same version, so the
 *       same bytes.  Every page of the file is replaced (freed, then the
 *       state's inline data or the pages staged in a session begun with
 *       TRUNC, as the repairer does); the
 *       inode row is not put, so the repair is no update: no vector
 *       moves and the change stream other sites read shows nothing.  Any
 *       other state (older, newer, concurrent, another size or type, a
 *       deletion record) is refused with -ESTALE and nothing changes.
 *  [R5] A materialization (LP_FS_INSTALL_MATERIALIZE, ss_place.h [L4]) is
 *       a repair at a site outside the file's placement: the same checks,
 *       the pages written, and this site added to the file's
 *       user.locus.sites in the same commit, which is an update (the
 *       vector moves at this site): from then on the site keeps the data,
 *       and the other copies learn it with the next pull.
 *  [R6] A directory whose state does not fit one message travels in
 *       pieces (lp_rs.h; docs/replication.md "Big directories"):
 *       SS_FETCH with LP_FS_FETCH_PIECES answers the entries after the
 *       cookie `offset`, as many as fit, with the row, vector and xattrs;
 *       the puller stages each piece but the last in an install session
 *       (SS_INSTALL ENTRIES) and sends the last with COMMIT.  The install
 *       takes place only if the pieces are one run of the listing (each
 *       starts where the one before ended, the first at the start, the last
 *       has nothing after it) and all carry the same vector: one version
 *       of the directory, whose entries then go in as one state, [R1]-[R3]
 *       as for any other (-ESTALE otherwise, nothing changes).  A piece is
 *       never installed as a whole state (-EINVAL): its missing entries
 *       would be deleted by [R3].  At most SS_REPL_STAGE_MAX bytes of
 *       pieces per session (-EFBIG).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cm.h"
#include "cm_codec.h"
#include "ss_ops_int.h"
#include "lp_rs.h"
#include "ss_place.h"

#define CHANGES_MAX 1024u
#define SS_REPL_STAGE_MAX (256u << 20)  /* [R6] bytes of pieces staged per session */
#define PIECE_SLACK 64u                 /* from, more, nentries and the frame's fields */

/* ---- SS_CHANGES ------------------------------------------------------------------ */

struct ch_ctx {
        struct cm_wbuf w;
        unsigned n, max;
        uint64_t last;
        bool more;
};

static int ch_cb(void *ctx, const struct ss_change *c)
{
        struct ch_ctx *k = ctx;
        struct lp_rs_change rc = { c->ino, c->lseq, c->gone, c->vv, c->vvlen };

        /* Never cut a commit's changes in two: the reader's watermark is
         * an lseq, and it resumes after it. */
        if (k->n >= k->max && c->lseq != k->last) {
                k->more = true;
                return 1;
        }
        lp_rs_change_put(&k->w, &rc);
        k->n++;
        k->last = c->lseq;
        return k->w.err;
}

static int count_cb(void *ctx, const struct ss_change *c)
{
        (void)c;
        ++*(uint64_t *)ctx;
        return 0;
}

int ss__op_changes(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ch_ctx k = { .max = q->length && q->length < CHANGES_MAX ? (unsigned)q->length : CHANGES_MAX };
        struct cm_wbuf out;
        uint8_t *body;
        size_t len;
        int r;

        if (q->flags & LP_FS_CHANGES_COUNT) {
                uint64_t n = 0;

                r = ss_db_changes(x->ct->db, q->offset, 0, count_cb, &n);
                if (r < 0)
                        return ss__fail(x, r, "reading the change stream: %s", ss_db_errmsg(x->ct->db));
                a->value = n;
                a->eof = true;
                return 0;
        }
        cm_wbuf_init(&k.w);
        r = ss_db_changes(x->ct->db, q->offset, 0, ch_cb, &k);
        if (r < 0) {
                cm_wbuf_free(&k.w);
                return ss__fail(x, r, "reading the change stream: %s", ss_db_errmsg(x->ct->db));
        }
        cm_wbuf_init(&out);
        lp_rs_changes_begin(&out, k.n);
        cm_wbuf_bytes(&out, k.w.p, k.w.len);
        cm_wbuf_free(&k.w);
        if (out.err || out.len > LP_FS_DATA_MAX) {
                cm_wbuf_free(&out);
                return ss__fail(x, -ENOMEM, "the change list does not fit an answer");
        }
        body = cm_wbuf_take(&out, &len);
        if (!body || !(a->data = ss__xalloc(x, len))) {
                free(body);
                return ss__fail(x, -ENOMEM, "out of memory");
        }
        memcpy((uint8_t *)a->data, body, len);
        free(body);
        a->datalen = len;
        a->eof = !k.more;
        /* Where the reader resumes: everything up to here is listed. */
        a->value = k.more ? k.last : x->ct->seq;
        return 0;
}

/* ---- local version of a file ------------------------------------------------------ */

/* The local vector of ino: 1 (inode row), 2 (deletion record), 0 (neither). */
static int local_vv(struct ss_opctx *x, uint64_t ino, struct ss_inode *in, uint8_t *vv, size_t *vvlen)
{
        uint64_t lseq;
        int r = ss_db_inode_get(x->ct->db, ino, in);

        if (r == 0) {
                memcpy(vv, in->vv, in->vvlen);
                *vvlen = in->vvlen;
                return 1;
        }
        if (r != -ENOENT)
                return ss__fail(x, r, "reading inode %#llx: %s", (unsigned long long)ino,
                                ss_db_errmsg(x->ct->db));
        r = ss_db_gone_get(x->ct->db, ino, vv, vvlen, &lseq);
        if (r == 0)
                return 2;
        if (r != -ENOENT)
                return ss__fail(x, r, "reading the deletion record of %#llx: %s", (unsigned long long)ino,
                                ss_db_errmsg(x->ct->db));
        *vvlen = 0;
        return 0;
}

/* Order of vector a against b (encoded); -EBADMSG if one does not decode. */
static int vv_order(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
        struct dsm_vv va, vb;
        int r;

        dsm_vv_init(&va);
        dsm_vv_init(&vb);
        if ((alen && dsm_vv_decode(&va, a, alen) < 0) || (blen && dsm_vv_decode(&vb, b, blen) < 0))
                r = -EBADMSG;
        else
                r = (int)dsm_vv_compare(&va, &vb);
        dsm_vv_free(&va);
        dsm_vv_free(&vb);
        return r;
}

/* The inode row <-> the wire's state. */
static void row_to_state(const struct ss_inode *in, struct lp_rs_state *st)
{
        st->mode = in->mode;
        st->nlink = in->nlink;
        st->uid = in->uid;
        st->gid = in->gid;
        st->rdev = in->rdev;
        st->size = in->size;
        st->generation = in->generation;
        st->atime = (struct lp_fs_time){ in->atime.sec, in->atime.nsec };
        st->mtime = (struct lp_fs_time){ in->mtime.sec, in->mtime.nsec };
        st->ctime = (struct lp_fs_time){ in->ctime.sec, in->ctime.nsec };
        st->target = in->target;
        st->targetlen = in->targetlen;
}

static int state_to_row(struct ss_opctx *x, const struct lp_rs_state *st, struct ss_inode *in)
{
        if (st->targetlen > SS_SYMLINK_MAX || st->vvlen > SS_VV_MAX)
                return ss__fail(x, -EBADMSG, "the pulled state of %#llx is out of range",
                                (unsigned long long)st->ino);
        memset(in, 0, sizeof(*in));
        in->ino = st->ino;
        in->mode = st->mode;
        in->nlink = st->nlink;
        in->uid = st->uid;
        in->gid = st->gid;
        in->rdev = st->rdev;
        in->size = st->size;
        in->generation = st->generation;
        in->atime = (struct ss_time){ st->atime.sec, st->atime.nsec };
        in->mtime = (struct ss_time){ st->mtime.sec, st->mtime.nsec };
        in->ctime = (struct ss_time){ st->ctime.sec, st->ctime.nsec };
        memcpy(in->target, st->target, st->targetlen);
        in->target[st->targetlen] = 0;
        in->targetlen = (uint32_t)st->targetlen;
        memcpy(in->vv, st->vv, st->vvlen);
        in->vvlen = (uint32_t)st->vvlen;
        return 0;
}

/* ---- SS_FETCH --------------------------------------------------------------------- */

struct st_build {
        struct lp_rs_state *st;
        size_t cap;
        struct ss_dirent *ents;         /* names point into these */
        uint8_t **xbufs;
        size_t nx, xcap;
        size_t budget, used;            /* [R6] bytes of entries a piece may take; 0: no limit */
        bool more;                      /* [R6] entries were left out */
        int err;
};

static int fx_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct st_build *b = ctx;
        struct lp_rs_state *st = b->st;
        uint8_t *copy;

        if (st->nxattrs == b->xcap) {
                size_t ncap = b->xcap ? 2 * b->xcap : 16;
                void *p = realloc(st->xattrs, ncap * sizeof(*st->xattrs));
                void *q = p ? realloc(b->xbufs, ncap * sizeof(*b->xbufs)) : NULL;

                if (p)
                        st->xattrs = p;
                if (!p || !q)
                        return -ENOMEM;
                b->xbufs = q;
                b->xcap = ncap;
        }
        copy = malloc(namelen + vlen + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, name, namelen);
        if (vlen)
                memcpy(copy + namelen, value, vlen);
        b->xbufs[b->nx++] = copy;
        st->xattrs[st->nxattrs++] = (struct lp_rs_xattr){ copy, namelen, copy + namelen, vlen };
        return 0;
}

static int fe_cb(void *ctx, const struct ss_dirent *d)
{
        struct st_build *b = ctx;

        if (b->budget) {
                struct lp_rs_entry e = { d->id, d->cookie, d->ino, d->type, d->name, d->namelen };
                size_t n = lp_rs_entry_size(&e);

                if (b->used + n > b->budget) {
                        b->more = true;
                        return 1;
                }
                b->used += n;
        }
        if (b->st->nentries == b->cap) {
                size_t ncap = b->cap ? 2 * b->cap : 64;
                void *p = realloc(b->ents, ncap * sizeof(*b->ents));

                if (!p)
                        return -ENOMEM;
                b->ents = p;
                b->cap = ncap;
        }
        b->ents[b->st->nentries++] = *d;
        return 0;
}

static void st_build_free(struct st_build *b)
{
        for (size_t i = 0; i < b->nx; i++)
                free(b->xbufs[i]);
        free(b->xbufs);
        free(b->ents);
        lp_rs_state_free(b->st);
}

static int fetch_extents(struct ss_opctx *x, struct lp_rs_state *st)
{
        uint64_t pages = (st->size + PAGE - 1) >> PAGE_SHIFT, p = 0, cap = 0;

        while (p < pages) {
                uint64_t d, h;
                int r = dsm_seek(x->ct->store, st->ino, p, DSM_SEEK_DATA, &d);

                if (r == -ENXIO || (r == 0 && d >= pages))
                        break;
                if (r < 0)
                        return ss__fail(x, r, "finding data of %#llx: %s", (unsigned long long)st->ino,
                                        strerror(-r));
                r = dsm_seek(x->ct->store, st->ino, d, DSM_SEEK_HOLE, &h);
                if (r < 0)
                        return ss__fail(x, r, "finding holes of %#llx: %s", (unsigned long long)st->ino,
                                        strerror(-r));
                if (h > pages)
                        h = pages;
                if (st->nextents == cap) {
                        void *np;

                        if (cap >= LP_RS_MAX_ITEMS)
                                return ss__fail(x, -EFBIG, "file %#llx has over %u extents",
                                                (unsigned long long)st->ino, LP_RS_MAX_ITEMS);
                        cap = cap ? 2 * cap : 16;
                        np = realloc(st->extents, cap * sizeof(*st->extents));
                        if (!np)
                                return ss__fail(x, -ENOMEM, "out of memory");
                        st->extents = np;
                }
                st->extents[st->nextents++] = (struct lp_rs_extent){ d, h - d };
                p = h;
        }
        return 0;
}

/* [R6] The bytes of entries a piece of directory st (row and xattrs
 * filled in) may carry after cookie `from`. */
static int piece_budget(struct ss_opctx *x, struct lp_rs_state *st, uint64_t from, struct st_build *b)
{
        struct cm_wbuf w;
        size_t base;
        int err;

        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, st);
        base = w.len;
        err = w.err;
        cm_wbuf_free(&w);
        if (err)
                return ss__fail(x, err, "out of memory");
        if (base + PIECE_SLACK >= LP_FS_DATA_MAX)
                return ss__fail(x, -EFBIG, "the xattrs of directory %#llx leave no room for its entries "
                                "in a message", (unsigned long long)st->ino);
        st->from = from;
        b->budget = LP_FS_DATA_MAX - base - PIECE_SLACK;
        return 0;
}

static int fetch_compare(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode *in = ss__xalloc(x, sizeof(*in));
        uint8_t vv[SS_VV_MAX];
        uint64_t *pull = NULL;
        size_t n, npull = 0, vvlen;
        struct cm_rd rd;
        struct cm_wbuf w;
        int r;

        if (!in)
                return ss__fail(x, -ENOMEM, "out of memory");
        r = lp_rs_changes_open(&rd, q->data, q->datalen, &n);
        if (r < 0)
                return ss__fail(x, r, "malformed change list");
        if (n && !(pull = calloc(n, sizeof(*pull))))
                return ss__fail(x, -ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                struct lp_rs_change c;
                int have;

                r = lp_rs_change_next(&rd, &c);
                if (r < 0) {
                        free(pull);
                        return ss__fail(x, r, "malformed change list");
                }
                have = local_vv(x, c.ino, in, vv, &vvlen);
                if (have < 0) {
                        free(pull);
                        return have;
                }
                r = vv_order(c.vv, c.vvlen, vv, vvlen);
                if (r == DSM_VV_DOMINATES || (!have && !c.gone))
                        pull[npull++] = c.ino;
                else if (r == DSM_VV_CONCURRENT)
                        cm_log(LOG_WARNING, "fg %u ino %#llx: the copy at site %llu and ours were changed "
                               "concurrently; keeping ours (conflicts are reconciled after a partition)",
                               x->ct->fg, (unsigned long long)c.ino, (unsigned long long)q->site);
                else if (r < 0) {
                        free(pull);
                        return ss__fail(x, r, "malformed version vector for %#llx", (unsigned long long)c.ino);
                }
        }
        cm_wbuf_init(&w);
        lp_rs_pulls_encode(&w, pull, npull);
        free(pull);
        if (w.err || !(a->data = ss__xalloc(x, w.len))) {
                cm_wbuf_free(&w);
                return ss__fail(x, -ENOMEM, "out of memory");
        }
        memcpy((uint8_t *)a->data, w.p, w.len);
        a->datalen = w.len;
        a->value = npull;
        cm_wbuf_free(&w);
        return 0;
}

int ss__op_fetch(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode *in = ss__xalloc(x, sizeof(*in));
        struct lp_rs_state st = { 0 };
        struct st_build b = { .st = &st };
        uint8_t vv[SS_VV_MAX], *data = NULL;
        size_t vvlen;
        struct cm_wbuf w;
        bool nodata = false;
        int have, r = 0;

        if (q->flags & LP_FS_FETCH_COMPARE)
                return fetch_compare(x, q, a);
        if (!in)
                return ss__fail(x, -ENOMEM, "out of memory");
        have = local_vv(x, q->ino, in, vv, &vvlen);
        if (have < 0)
                return have;
        if (!have)
                return ss__fail(x, -ENOENT, "no inode %#llx and no deletion record of it",
                                (unsigned long long)q->ino);
        st.kind = have == 1 ? LP_RS_INODE : LP_RS_GONE;
        st.ino = q->ino;
        st.vv = vv;
        st.vvlen = vvlen;
        if (st.kind == LP_RS_INODE)
                row_to_state(in, &st);
        if (st.kind == LP_RS_INODE && S_ISREG(st.mode)) {
                /* ss_place.h [L3]: say so when the data is not here. */
                r = ss_place_here(x->ct, q->ino, x->ct->container, NULL, 0);
                if (r < 0)
                        return ss__fail(x, r, "reading the placement of %#llx: %s", (unsigned long long)q->ino,
                                        ss_db_errmsg(x->ct->db));
                nodata = r == 0;
                a->value = nodata ? LP_FS_FETCH_NODATA : 0;
                r = 0;
        }
        if (st.kind == LP_RS_INODE && !(q->flags & LP_FS_FETCH_VV)) {
                r = ss_db_xattr_each(x->ct->db, q->ino, fx_cb, &b);
                if (r >= 0 && S_ISDIR(st.mode) && (q->flags & LP_FS_FETCH_PIECES))
                        r = piece_budget(x, &st, q->offset, &b);
                if (r >= 0 && S_ISDIR(st.mode))
                        r = ss_db_readdir(x->ct->db, q->ino, st.from, UINT_MAX, fe_cb, &b);
                if (r < 0) {
                        r = ss__fail(x, r, "reading the state of %#llx: %s", (unsigned long long)q->ino,
                                     ss_db_errmsg(x->ct->db));
                        goto out;
                }
                r = 0;          /* (a count) */
                st.more = b.more;
                if (b.more && !st.nentries) {
                        r = ss__fail(x, -EFBIG, "the xattrs of directory %#llx leave no room for its "
                                     "entries in a message", (unsigned long long)q->ino);
                        goto out;
                }
                if (st.nentries) {
                        st.entries = calloc(st.nentries, sizeof(*st.entries));
                        if (!st.entries) {
                                r = ss__fail(x, -ENOMEM, "out of memory");
                                goto out;
                        }
                        for (size_t i = 0; i < st.nentries; i++)
                                st.entries[i] = (struct lp_rs_entry){ b.ents[i].id, b.ents[i].cookie,
                                        b.ents[i].ino, b.ents[i].type, b.ents[i].name, b.ents[i].namelen };
                }
                if (S_ISREG(st.mode) && !nodata) {
                        r = fetch_extents(x, &st);
                        if (r < 0)
                                goto out;
                        if (st.size <= LP_RS_INLINE_MAX) {
                                uint64_t np = (st.size + PAGE - 1) >> PAGE_SHIFT;

                                data = malloc(np ? np * PAGE : 1);
                                if (!data) {
                                        r = ss__fail(x, -ENOMEM, "out of memory");
                                        goto out;
                                }
                                r = np ? dsm_read_pages(x->ct->store, q->ino, 0, np, data) : 0;
                                if (r == DSM_ECORRUPT) {
                                        r = ss__damaged(x, q->ino, 0, np);
                                        goto out;
                                }
                                if (r < 0) {
                                        r = ss__fail(x, r, "reading %#llx: %s", (unsigned long long)q->ino,
                                                     strerror(-r));
                                        goto out;
                                }
                                st.has_data = true;
                                st.data = data;
                                st.datalen = st.size;
                        }
                }
        }
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        if (w.err || w.len > LP_FS_DATA_MAX) {
                r = ss__fail(x, w.err ? w.err : -EFBIG, "the state of %#llx is %zu bytes, over the %u a "
                             "message carries", (unsigned long long)q->ino, w.len, LP_FS_DATA_MAX);
        } else if (!(a->data = ss__xalloc(x, w.len))) {
                r = ss__fail(x, -ENOMEM, "out of memory");
        } else {
                memcpy((uint8_t *)a->data, w.p, w.len);
                a->datalen = w.len;
        }
        cm_wbuf_free(&w);
out:
        free(data);
        st_build_free(&b);
        return r;
}

/* ---- SS_INSTALL --------------------------------------------------------------------- */

static bool zero_page(const uint8_t *p)
{
        static const uint8_t z[PAGE];

        return !memcmp(p, z, PAGE);
}

/* Stage bytes [off, off + len) of data (off page-aligned) as whole pages,
 * skipping pages of zeros (they stay holes: the transaction freed the
 * file first). */
static int stage_pages(struct ss_opctx *x, struct dsm_txn *t, uint64_t ino, uint64_t off,
                       const uint8_t *data, size_t len)
{
        uint8_t last[PAGE];

        if (off & (PAGE - 1))
                return ss__fail(x, -EINVAL, "install data at offset %llu, not a page boundary",
                                (unsigned long long)off);
        for (size_t done = 0; done < len; done += PAGE) {
                const uint8_t *p = data + done;
                int r;

                if (len - done < PAGE) {
                        memset(last, 0, sizeof(last));
                        memcpy(last, p, len - done);
                        p = last;
                }
                if (zero_page(p))
                        continue;
                r = dsm_txn_write_pages(t, ino, (off + done) >> PAGE_SHIFT, 1, p);
                if (r < 0)
                        return ss__fail(x, r, "staging page %llu of %#llx: %s",
                                        (unsigned long long)((off + done) >> PAGE_SHIFT),
                                        (unsigned long long)ino, strerror(-r));
        }
        return 0;
}

struct xcol {
        struct ss_cs *cs;
        uint64_t ino;
        const struct lp_rs_state *st;
};

static int xdel_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xcol *k = ctx;

        (void)value;
        (void)vlen;
        for (size_t i = 0; k->st && i < k->st->nxattrs; i++)
                if (k->st->xattrs[i].namelen == namelen && !memcmp(k->st->xattrs[i].name, name, namelen))
                        return 0;
        ss_cs_del_xattr(k->cs, k->ino, name, namelen);
        return k->cs->err;
}

struct byid {
        uint64_t id;
        size_t i;                       /* index in the state's entries */
};

struct dcol {
        struct ss_cs *cs;
        const struct lp_rs_state *st;
        bool *keep;                     /* per state entry: the local row is the same */
        struct byid *ids;               /* the state's entries by id (a directory may hold many) */
};

static int byid_cmp(const void *a, const void *b)
{
        uint64_t x = ((const struct byid *)a)->id, y = ((const struct byid *)b)->id;

        return x < y ? -1 : x > y;
}

static bool same_entry(const struct lp_rs_entry *e, const struct ss_dirent *d)
{
        return e->id == d->id && e->ino == d->ino && e->type == d->type && e->cookie == d->cookie &&
               e->namelen == d->namelen && !memcmp(e->name, d->name, d->namelen);
}

static int ddel_cb(void *ctx, const struct ss_dirent *d)
{
        struct dcol *k = ctx;
        struct byid key = { d->id, 0 };
        const struct byid *f = bsearch(&key, k->ids, k->st->nentries, sizeof(*k->ids), byid_cmp);

        if (f && same_entry(&k->st->entries[f->i], d)) {
                k->keep[f->i] = true;
                return 0;
        }
        ss_cs_del_dirent(k->cs, d->id);         /* [R3]: deletes first */
        return k->cs->err;
}

static int install_entries(struct ss_opctx *x, struct ss_mut *m, const struct lp_rs_state *st)
{
        size_t n = st->nentries ? st->nentries : 1;
        struct dcol k = { &m->cs, st, calloc(n, sizeof(bool)), calloc(n, sizeof(struct byid)) };
        struct ss_dirent d;
        int r;

        if (!k.keep || !k.ids) {
                free(k.keep);
                free(k.ids);
                return ss__fail(x, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < st->nentries; i++)
                k.ids[i] = (struct byid){ st->entries[i].id, i };
        qsort(k.ids, st->nentries, sizeof(*k.ids), byid_cmp);
        r = ss_db_readdir(x->ct->db, st->ino, 0, UINT_MAX, ddel_cb, &k);
        free(k.ids);
        if (r < 0) {
                free(k.keep);
                return ss__fail(x, r, "reading entries of %#llx: %s", (unsigned long long)st->ino,
                                ss_db_errmsg(x->ct->db));
        }
        for (size_t i = 0; i < st->nentries; i++) {
                const struct lp_rs_entry *e = &st->entries[i];

                if (k.keep[i])
                        continue;
                memset(&d, 0, sizeof(d));
                d.id = e->id;
                d.parent = st->ino;
                d.ino = e->ino;
                d.type = e->type;
                d.cookie = e->cookie;
                d.namelen = (uint32_t)e->namelen;
                memcpy(d.name, e->name, e->namelen);
                ss_cs_put_dirent(&m->cs, &d);
                ss_mut_saw_dirent(x->ct, m, d.id);
                ss_mut_saw_ino(x->ct, m, d.ino);
        }
        free(k.keep);
        return m->cs.err;
}

static int install(struct ss_opctx *x, const struct lp_rs_state *st, struct ss_sess *s, struct lp_fs_resp *a)
{
        struct ss_inode *cur = ss__xalloc(x, sizeof(*cur));
        struct ss_inode *in;
        uint8_t vv[SS_VV_MAX];
        size_t vvlen;
        struct ss_mut m;
        struct dsm_txn *t;
        struct xcol xc;
        bool here;
        int have, ord, r;

        if (!cur)
                return ss__fail(x, -ENOMEM, "out of memory");
        have = local_vv(x, st->ino, cur, vv, &vvlen);
        if (have < 0)
                return have;
        ord = vv_order(st->vv, st->vvlen, vv, vvlen);
        if (ord < 0)
                return ss__fail(x, ord, "malformed version vector");
        if (have && ord != DSM_VV_DOMINATES) {          /* [R1] */
                if (ord == DSM_VV_CONCURRENT)
                        cm_log(LOG_WARNING, "fg %u ino %#llx: a pulled copy and ours were changed "
                               "concurrently; keeping ours (conflicts are reconciled after a partition)",
                               x->ct->fg, (unsigned long long)st->ino);
                a->value = 0;
                return 0;
        }
        if (st->kind == LP_RS_INODE && have == 1 && (cur->mode & S_IFMT) != (st->mode & S_IFMT))
                return ss__fail(x, -EINVAL, "ino %#llx changes type in a pull", (unsigned long long)st->ino);
        ss_mut_init(x->ct, &m, s ? s->txn : NULL);
        if (s)
                s->txn = NULL;          /* consumed by the commit, whatever happens */
        xc = (struct xcol){ &m.cs, st->ino, st->kind == LP_RS_INODE ? st : NULL };
        if (have == 1) {
                r = ss_db_xattr_each(x->ct->db, st->ino, xdel_cb, &xc);
                if (r < 0) {
                        r = ss__fail(x, r, "reading xattrs of %#llx", (unsigned long long)st->ino);
                        goto fail;
                }
        }
        if (st->kind == LP_RS_GONE) {
                if (have == 1) {
                        r = ss_mut_txn(x->ct, &m, &t);
                        if (r >= 0)
                                r = dsm_txn_free(t, st->ino, 0, DSM_TO_END);
                        if (r < 0) {
                                r = ss__fail(x, r, "freeing the pages of %#llx: %s",
                                             (unsigned long long)st->ino, strerror(-r));
                                goto fail;
                        }
                        m.d_inodes--;
                }
                /* Deletes the row (if any) and writes the record [R2]. */
                ss_cs_del_inode(&m.cs, st->ino, st->vv, st->vvlen, SS_CS_KEEPVV);
                ss_mut_saw_ino(x->ct, &m, st->ino);
        } else {
                in = ss__xalloc(x, sizeof(*in));
                if (!in) {
                        r = ss__fail(x, -ENOMEM, "out of memory");
                        goto fail;
                }
                r = state_to_row(x, st, in);
                if (r < 0)
                        goto fail;
                if (have != 1)
                        m.d_inodes++;
                /* ss_place.h [L2]: a version placed elsewhere keeps no
                 * pages here (those staged in s are freed too). */
                here = ss_place_state_here(st, x->ct->container);
                if (S_ISREG(in->mode) && (st->has_data || !s || !here)) {
                        r = ss_mut_txn(x->ct, &m, &t);
                        if (r >= 0 && (have == 1 || !here))
                                r = dsm_txn_free(t, st->ino, 0, DSM_TO_END);
                        if (r < 0) {
                                r = ss__fail(x, r, "replacing the pages of %#llx: %s",
                                             (unsigned long long)st->ino, strerror(-r));
                                goto fail;
                        }
                        if (here && st->has_data &&
                            (r = stage_pages(x, t, st->ino, 0, st->data, st->datalen)) < 0)
                                goto fail;
                }
                for (size_t i = 0; i < st->nxattrs; i++)
                        ss_cs_put_xattr(&m.cs, st->ino, st->xattrs[i].name, st->xattrs[i].namelen,
                                        st->xattrs[i].value, st->xattrs[i].vlen);
                if (S_ISDIR(in->mode) && (r = install_entries(x, &m, st)) < 0)
                        goto fail;
                ss_cs_put_inode(&m.cs, in, SS_CS_KEEPVV);       /* [R2] */
                ss_mut_saw_ino(x->ct, &m, in->ino);
        }
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        a->value = 1;
        return 0;
fail:
        ss_mut_abort(x->ct, &m);
        return r;
}

/* [R4]: rewrite the pages of ino from st (inline data) or s (staged);
 * [R5] with materialize. */
static int repair(struct ss_opctx *x, const struct lp_rs_state *st, struct ss_sess *s, bool materialize,
                  struct lp_fs_resp *a)
{
        struct ss_inode *cur = ss__xalloc(x, sizeof(*cur));
        uint8_t vv[SS_VV_MAX];
        size_t vvlen;
        struct ss_mut m;
        struct dsm_txn *t;
        int have, ord, r;

        if (!cur)
                return ss__fail(x, -ENOMEM, "out of memory");
        have = local_vv(x, st->ino, cur, vv, &vvlen);
        if (have < 0)
                return have;
        if (have != 1 || st->kind != LP_RS_INODE || !S_ISREG(cur->mode) || !S_ISREG(st->mode))
                return ss__fail(x, -ESTALE, "repair of %#llx: not a regular file on both copies",
                                (unsigned long long)st->ino);
        ord = vv_order(st->vv, st->vvlen, vv, vvlen);
        if (ord < 0)
                return ss__fail(x, ord, "malformed version vector");
        if (ord != DSM_VV_EQUAL || st->size != cur->size)
                return ss__fail(x, -ESTALE, "repair of %#llx: the other copy is not the same version "
                                "(a repair never installs an older or newer one)", (unsigned long long)st->ino);
        if (!st->has_data && !s)
                return ss__fail(x, -EINVAL, "repair of %#llx without data", (unsigned long long)st->ino);
        if (materialize) {
                r = ss_place_here(x->ct, st->ino, x->ct->container, NULL, 0);
                if (r < 0)
                        return ss__fail(x, r, "reading the placement: %s", ss_db_errmsg(x->ct->db));
                if (r) {
                        a->value = 0;   /* the data is here already */
                        return 0;
                }
        }
        ss_mut_init(x->ct, &m, s ? s->txn : NULL);
        if (s)
                s->txn = NULL;          /* consumed by the commit, whatever happens */
        r = ss_mut_txn(x->ct, &m, &t);
        if (r >= 0 && st->has_data)
                r = dsm_txn_free(t, st->ino, 0, DSM_TO_END);
        if (r < 0) {
                r = ss__fail(x, r, "replacing the pages of %#llx: %s", (unsigned long long)st->ino,
                             strerror(-r));
                goto fail;
        }
        if (st->has_data && (r = stage_pages(x, t, st->ino, 0, st->data, st->datalen)) < 0)
                goto fail;
        if (materialize && (r = ss_place_add_here(x, &m, cur)) < 0)
                goto fail;
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        a->value = 1;
        return 0;
fail:
        ss_mut_abort(x->ct, &m);
        return r;
}

/* ---- [R6] a directory in pieces ------------------------------------------------------- */

struct dstage {
        uint8_t **blobs;                /* copies of the staged pieces; the states point into them */
        struct lp_rs_state *pieces;
        size_t n, cap;
        size_t nentries;
        uint64_t bytes;
};

static void dstage_free(void *p)
{
        struct dstage *d = p;

        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                lp_rs_state_free(&d->pieces[i]);
                free(d->blobs[i]);
        }
        free(d->pieces);
        free(d->blobs);
        free(d);
}

/* The cookie after which the piece following st starts. */
static uint64_t piece_end(const struct lp_rs_state *st)
{
        return st->nentries ? st->entries[st->nentries - 1].cookie : st->from;
}

/* Does st go on where the staged pieces end, from the same version? */
static int piece_follows(struct ss_opctx *x, const struct dstage *d, const struct lp_rs_state *st)
{
        const struct lp_rs_state *first = d->n ? &d->pieces[0] : NULL;
        uint64_t end = d->n ? piece_end(&d->pieces[d->n - 1]) : 0;

        if (st->kind != LP_RS_INODE || !S_ISDIR(st->mode))
                return ss__fail(x, -ESTALE, "%#llx is no longer a directory at the site it is pulled "
                                "from", (unsigned long long)st->ino);
        if (st->from != end)
                return ss__fail(x, -ESTALE, "the piece of directory %#llx starts after cookie %llu, the "
                                "staged ones end at %llu", (unsigned long long)st->ino,
                                (unsigned long long)st->from, (unsigned long long)end);
        if (first && (first->vvlen != st->vvlen || memcmp(first->vv, st->vv, st->vvlen)))
                return ss__fail(x, -ESTALE, "directory %#llx changed between the pieces of its state",
                                (unsigned long long)st->ino);
        return 0;
}

/* SS_INSTALL ENTRIES: stage the piece in q->blob (more must follow). */
static int stage_piece(struct ss_opctx *x, const struct lp_fs_req *q, struct ss_sess *s)
{
        struct dstage *d = s->ext;
        struct lp_rs_state st;
        uint8_t *copy;
        int r;

        if (s->ext_free && s->ext_free != dstage_free)
                return ss__fail(x, -EINVAL, "session %#llx stages something else",
                                (unsigned long long)s->id);
        if (!d) {
                if (!(d = calloc(1, sizeof(*d))))
                        return ss__fail(x, -ENOMEM, "out of memory");
                s->ext = d;
                s->ext_free = dstage_free;
        }
        if (d->bytes + q->bloblen > SS_REPL_STAGE_MAX)
                return ss__fail(x, -EFBIG, "the pieces of directory %#llx are over %u bytes",
                                (unsigned long long)q->ino, SS_REPL_STAGE_MAX);
        if (!(copy = malloc(q->bloblen ? q->bloblen : 1)))
                return ss__fail(x, -ENOMEM, "out of memory");
        if (q->bloblen)
                memcpy(copy, q->blob, q->bloblen);
        r = lp_rs_state_decode(copy, q->bloblen, &st);
        if (r < 0) {
                free(copy);
                return ss__fail(x, r, "malformed piece of a directory");
        }
        if (st.ino != q->ino)
                r = ss__fail(x, -EINVAL, "the piece names inode %#llx, the request %#llx",
                             (unsigned long long)st.ino, (unsigned long long)q->ino);
        else if (!st.more)
                r = ss__fail(x, -EINVAL, "the last piece of directory %#llx goes with the commit",
                             (unsigned long long)q->ino);
        else
                r = piece_follows(x, d, &st);
        if (r >= 0 && d->n == d->cap) {
                size_t ncap = d->cap ? 2 * d->cap : 8;
                void *np = realloc(d->pieces, ncap * sizeof(*d->pieces));
                void *nb = np ? realloc(d->blobs, ncap * sizeof(*d->blobs)) : NULL;

                if (np)
                        d->pieces = np;
                if (nb) {
                        d->blobs = nb;
                        d->cap = ncap;
                } else {
                        r = ss__fail(x, -ENOMEM, "out of memory");
                }
        }
        if (r < 0) {
                lp_rs_state_free(&st);
                free(copy);
                return r;
        }
        d->pieces[d->n] = st;
        d->blobs[d->n++] = copy;
        d->nentries += st.nentries;
        d->bytes += q->bloblen;
        return 0;
}

/* COMMIT of the last piece, last, after the staged ones: the whole state
 * into *ret (its entries array is malloc'ed: free it; the rest points into
 * last and the staged pieces). */
static int whole_state(struct ss_opctx *x, const struct dstage *d, const struct lp_rs_state *last,
                       struct lp_rs_state *ret)
{
        struct lp_rs_entry *all;
        size_t n = 0;
        int r = piece_follows(x, d, last);

        if (r < 0)
                return r;
        if (last->more)
                return ss__fail(x, -EINVAL, "the commit of directory %#llx names more pieces",
                                (unsigned long long)last->ino);
        all = malloc((d->nentries + last->nentries + 1) * sizeof(*all));
        if (!all)
                return ss__fail(x, -ENOMEM, "out of memory");
        for (size_t i = 0; i < d->n; i++) {
                memcpy(all + n, d->pieces[i].entries, d->pieces[i].nentries * sizeof(*all));
                n += d->pieces[i].nentries;
        }
        if (last->nentries)
                memcpy(all + n, last->entries, last->nentries * sizeof(*all));
        n += last->nentries;
        *ret = *last;
        ret->entries = all;
        ret->nentries = n;
        ret->from = 0;
        ret->more = false;
        return 0;
}

int ss__op_install(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct lp_rs_state st;
        struct ss_sess *s = NULL;
        struct dstage *d;
        int r;

        if (q->flags & LP_FS_INSTALL_BEGIN) {
                r = ss_sess_new(x->sess, x->ct, q->ino, x->client, &s);
                if (r < 0)
                        return ss__fail(x, r, "cannot open an install session: %s", strerror(-r));
                if (q->flags & LP_FS_INSTALL_TRUNC) {
                        r = dsm_txn_free(s->txn, q->ino, 0, DSM_TO_END);
                        if (r < 0) {
                                ss_sess_end(x->sess, s);
                                return ss__fail(x, r, "freeing the pages of %#llx: %s",
                                                (unsigned long long)q->ino, strerror(-r));
                        }
                }
                a->session = s->id;
        } else if (q->session) {
                r = ss__sess_get(x, q->session, q->ino, &s);
                if (r < 0)
                        return r;
        }
        if (q->flags & LP_FS_INSTALL_ABORT) {
                if (s)
                        ss_sess_end(x->sess, s);
                return 0;
        }
        if (q->flags & LP_FS_INSTALL_DATA) {
                if (!s)
                        return ss__fail(x, -EINVAL, "install data without a session");
                r = ss__space_ok(x, q->datalen);
                if (r >= 0)
                        r = stage_pages(x, s->txn, q->ino, q->offset, q->data, q->datalen);
                if (r < 0) {
                        ss_sess_end(x->sess, s);
                        return r;
                }
                s->data = true;
        }
        if (q->flags & LP_FS_INSTALL_ENTRIES) {
                if (!s || (q->flags & LP_FS_INSTALL_COMMIT))
                        r = ss__fail(x, -EINVAL, "install entries %s", s ? "with a commit" : "without a session");
                else
                        r = stage_piece(x, q, s);
                if (r < 0) {
                        if (s)
                                ss_sess_end(x->sess, s);
                        return r;
                }
        }
        if (!(q->flags & LP_FS_INSTALL_COMMIT))
                return 0;
        r = lp_rs_state_decode(q->blob, q->bloblen, &st);
        if (r < 0) {
                if (s)
                        ss_sess_end(x->sess, s);
                return ss__fail(x, r, "malformed file state");
        }
        d = s && s->ext_free == dstage_free ? s->ext : NULL;
        if (st.ino != q->ino) {
                r = ss__fail(x, -EINVAL, "the state names inode %#llx, the request %#llx",
                             (unsigned long long)st.ino, (unsigned long long)q->ino);
        } else if (!d && st.kind == LP_RS_INODE && !lp_rs_state_complete(&st)) {
                r = ss__fail(x, -EINVAL, "a piece of directory %#llx without the pieces before it",
                             (unsigned long long)q->ino);       /* [R6] */
        } else if (st.kind == LP_RS_INODE && (r = ss__space_ok(x, 4096 + (d ? d->bytes : 0))) < 0) {
                ;
        } else if (q->flags & (LP_FS_INSTALL_REPAIR | LP_FS_INSTALL_MATERIALIZE)) {
                r = repair(x, &st, s, q->flags & LP_FS_INSTALL_MATERIALIZE, a);
        } else if (d) {
                struct lp_rs_state whole;

                r = whole_state(x, d, &st, &whole);
                if (r >= 0) {
                        r = install(x, &whole, NULL, a);
                        free(whole.entries);
                }
        } else {
                r = install(x, &st, s, a);
        }
        if (s)
                ss_sess_end(x->sess, s);
        lp_rs_state_free(&st);
        return r;
}
