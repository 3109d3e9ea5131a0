/*
 * check_ss_ident.c -- identities that survive replication (issue #8,
 * docs/replication.md "Identities" and "The change stream"), on a real
 * container (storage/ss_ct.c: a dsmcore segment log and its SQLite index)
 * in a private temporary directory: version vectors counted by the
 * builder and reproduced by replay, lseq and deletion records, the change
 * stream read back (ss_db_changes) and pushed (ss_ct_set_listener),
 * installs with a given vector (SS_CS_KEEPVV), READDIR cookies chosen
 * from names with probing, and a store written in the previous format
 * (changesets and checkpoint image version 1, SQLite schema 1) opened and
 * carried on.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "cm.h"
#include "dsm.h"
#include "ss_cs.h"
#include "ss_ct.h"
#include "ss_db.h"
#include "testutil.h"


#define FG 1u
#define CT 3u                           /* the container (= site) id */
#define INO(n) ((uint64_t)CT << SS_INO_SHIFT | (n))

static char data[PATH_MAX / 2];

static void setup(void)
{
        cm_log_init("check_ss_ident", LOG_WARNING, CM_LOG_STDERR);
        snprintf(data, sizeof(data), "%s/data", tu_tmpdir());
        CHECK(mkdir(data, 0700) == 0);
}

/* An encoded vector from (site, counter) pairs, n of them. */
static size_t vv_make(uint8_t *out, const uint32_t *sites, const uint64_t *counters, size_t n)
{
        struct dsm_vv v;
        ssize_t len;

        dsm_vv_init(&v);
        for (size_t i = 0; i < n; i++)
                CHECK(dsm_vv_set(&v, sites[i], counters[i]) == 0);
        len = dsm_vv_encode(&v, out, SS_VV_MAX);
        CHECK(len > 0);
        dsm_vv_free(&v);
        return (size_t)len;
}

/* vv (len bytes) is exactly {site: counter} (counter 0: the empty one). */
static bool vv_is(const uint8_t *vv, size_t len, uint32_t site, uint64_t counter)
{
        uint8_t want[SS_VV_MAX];
        size_t n = counter ? vv_make(want, &site, &counter, 1) : vv_make(want, NULL, NULL, 0);

        return len == n && !memcmp(vv, want, n);
}

/* ---- the change stream's listener ---- */

struct heard {
        uint64_t seq;
        size_t n;
        struct {
                uint64_t ino;
                bool gone;
                uint8_t vv[SS_VV_MAX];
                size_t vvlen;
                struct ss_ct_extent ext[8];
                size_t next;
        } c[8];
        int calls;
};

static void listener(void *ctx, uint64_t seq, const struct ss_ct_change *changes, size_t n)
{
        struct heard *h = ctx;

        CHECK(n <= 8);
        h->calls++;
        h->seq = seq;
        h->n = n;
        for (size_t i = 0; i < n; i++) {
                h->c[i].ino = changes[i].ino;
                h->c[i].gone = changes[i].gone;
                h->c[i].vvlen = changes[i].vvlen;
                CHECK(changes[i].vvlen <= SS_VV_MAX);
                if (changes[i].vvlen)
                        memcpy(h->c[i].vv, changes[i].vv, changes[i].vvlen);
                CHECK(changes[i].next <= 8);
                h->c[i].next = changes[i].next;
                for (size_t k = 0; k < changes[i].next; k++)
                        h->c[i].ext[k] = changes[i].ext[k];
        }
}

static int heard_find(const struct heard *h, uint64_t ino)
{
        for (size_t i = 0; i < h->n; i++)
                if (h->c[i].ino == ino)
                        return (int)i;
        return -1;
}

/* ---- the change stream read back ---- */

struct seen {
        size_t n;
        uint64_t ino[64], lseq[64];
        bool gone[64];
        uint8_t vv[64][SS_VV_MAX];
        size_t vvlen[64];
};

static int seen_cb(void *ctx, const struct ss_change *c)
{
        struct seen *s = ctx;

        CHECK(s->n < 64);
        s->ino[s->n] = c->ino;
        s->lseq[s->n] = c->lseq;
        s->gone[s->n] = c->gone;
        CHECK(c->vvlen <= SS_VV_MAX);
        memcpy(s->vv[s->n], c->vv, c->vvlen);
        s->vvlen[s->n] = c->vvlen;
        s->n++;
        return 0;
}

struct sbuf {
        uint8_t *p;
        size_t len;
};

static int img_put(void *ctx, const void *buf, size_t len)
{
        struct sbuf *b = ctx;

        b->p = realloc(b->p, b->len + len);
        CHECK(b->p);
        memcpy(b->p + b->len, buf, len);
        b->len += len;
        return 0;
}

static struct sbuf image_of(struct ss_ct *ct)
{
        struct sbuf b = { 0 };

        CHECK(ss_ct_index_commit(ct) == 0);
        CHECK(ss_cs_dump_image(ct->db, img_put, &b) == 0);
        return b;
}

static bool sb_equal(const struct sbuf *a, const struct sbuf *b)
{
        return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

/* Close ct; the log alone must give the same rows: replayed into the
 * index by a reopen, and rebuilt from scratch (after a full checkpoint, if
 * ckpt, whose image then holds them). */
static void check_log_reproduces(struct ss_ct *ct, bool ckpt)
{
        struct sbuf i1 = image_of(ct), i2;
        uint64_t seq = ct->seq;

        ss_ct_close(ct);
        CHECK(ss_ct_open(data, FG, false, &ct) == 0);
        CHECK_EQ(ct->seq, seq);
        i2 = image_of(ct);
        CHECK(sb_equal(&i1, &i2));
        free(i2.p);
        if (ckpt)
                CHECK(ss_ct_checkpoint(ct) == 0);
        ss_ct_close(ct);
        CHECK(ss_ct_rebuild(data, FG, NULL) == 0);
        CHECK(ss_ct_open(data, FG, false, &ct) == 0);
        i2 = image_of(ct);
        CHECK(sb_equal(&i1, &i2));
        ss_ct_close(ct);
        free(i1.p);
        free(i2.p);
}

/* A new entry <parent, name> for inode in (a fresh one: vvlen 0). */
static void add_entry(struct ss_ct *ct, struct ss_mut *m, uint64_t parent, const char *name, struct ss_inode *in)
{
        struct ss_dirent d = { 0 };

        CHECK(ss_mut_alloc_ino(ct, m, &in->ino) == 0);
        CHECK(ss_mut_alloc_dirent(ct, m, &d.id) == 0);
        CHECK(d.id >> SS_INO_SHIFT == CT);      /* from the container's pool */
        d.parent = parent;
        d.ino = in->ino;
        d.type = S_ISDIR(in->mode) ? DT_DIR : DT_REG;
        d.namelen = (uint32_t)strlen(name);
        memcpy(d.name, name, d.namelen);
        CHECK(ss_mut_cookie(ct, m, parent, d.name, d.namelen, 0, &d.cookie) == 0);
        in->vvlen = 0;
        ss_cs_put_inode(&m->cs, in, SS_CS_GSEQ);
        ss_cs_put_dirent(&m->cs, &d);
        m->d_inodes++;
}

/*
 * Every commit counts one update at this site on each inode row it puts
 * (the builder computes the vector, the changeset carries it, so replay and
 * a rebuild from the log reproduce the rows); lseq is the local seq of the
 * row's last put; deleting a row leaves a deletion record with the vector
 * incremented; the change stream reads them back in lseq order, and the
 * listener hears each commit with its page extents.
 */
START_TEST(t_vectors_and_stream)
{
        struct ss_ct *ct;
        struct ss_mut m;
        struct ss_inode *f = calloc(1, sizeof(*f)), *root = calloc(1, sizeof(*root)), *g = calloc(1, sizeof(*g));
        struct heard h = { 0 };
        struct seen s = { 0 };
        struct dsm_txn *t;
        uint8_t page[DSM_PAGE_SIZE];
        uint64_t seq_create, seq_write, seq_unlink, seq_free;
        int k;

        setup();
        CHECK(f && root && g);
        CHECK(ss_ct_create(data, FG, CT, NULL, &ct) == 0);
        CHECK(ss_db_inode_get(ct->db, SS_ROOT_INO, root) == 0);
        CHECK(vv_is(root->vv, root->vvlen, CT, 0));     /* empty: every copy of a group starts equal */
        CHECK_EQ(root->version, 0);
        ss_ct_set_listener(ct, listener, &h);

        /* create f in the root */
        f->mode = S_IFREG | 0644;
        f->nlink = 1;
        ss_mut_init(ct, &m, NULL);
        add_entry(ct, &m, SS_ROOT_INO, "f", f);
        root->mtime.sec = 5;
        ss_cs_put_inode(&m.cs, root, 0);
        CHECK(ss_mut_commit(ct, &m, &seq_create) == 0);
        CHECK(ss_db_inode_get(ct->db, f->ino, f) == 0);
        CHECK(vv_is(f->vv, f->vvlen, CT, 1));
        CHECK_EQ(f->version, 1);
        CHECK_EQ(f->lseq, seq_create);
        CHECK_EQ(f->generation, seq_create);
        CHECK(ss_db_inode_get(ct->db, SS_ROOT_INO, root) == 0);
        CHECK(vv_is(root->vv, root->vvlen, CT, 1));
        CHECK_EQ(root->version, 1);
        CHECK_EQ(h.calls, 1);
        CHECK_EQ(h.seq, seq_create);
        CHECK_EQ(h.n, 2);
        k = heard_find(&h, f->ino);
        CHECK(k >= 0 && !h.c[k].gone && vv_is(h.c[k].vv, h.c[k].vvlen, CT, 1) && h.c[k].next == 0);
        k = heard_find(&h, SS_ROOT_INO);
        CHECK(k >= 0 && !h.c[k].gone && vv_is(h.c[k].vv, h.c[k].vvlen, CT, 1));

        /* write pages 0..2 and 7 of f; the same struct put twice counts once */
        memset(page, 'x', sizeof(page));
        ss_mut_init(ct, &m, NULL);
        CHECK(ss_mut_txn(ct, &m, &t) == 0);
        for (uint64_t p = 0; p < 3; p++)
                CHECK(dsm_txn_write(t, f->ino, p, 0, page, sizeof(page)) == 0);
        CHECK(dsm_txn_write(t, f->ino, 7, 0, page, 100) == 0);
        f->size = 7 * DSM_PAGE_SIZE + 100;
        ss_cs_put_inode(&m.cs, f, 0);
        ss_cs_put_inode(&m.cs, f, 0);
        CHECK(ss_mut_commit(ct, &m, &seq_write) == 0);
        CHECK(ss_db_inode_get(ct->db, f->ino, f) == 0);
        CHECK(vv_is(f->vv, f->vvlen, CT, 2));
        CHECK_EQ(f->version, 2);
        CHECK_EQ(f->lseq, seq_write);
        CHECK_EQ(h.calls, 2);
        CHECK_EQ(h.n, 1);
        CHECK_EQ(h.c[0].ino, f->ino);
        CHECK(vv_is(h.c[0].vv, h.c[0].vvlen, CT, 2));
        {
                uint64_t pages = 0;

                for (size_t i = 0; i < h.c[0].next; i++) {
                        if (h.c[0].ext[i].first_page == 7)
                                CHECK_EQ(h.c[0].ext[i].npages, 1);
                        else
                                CHECK(h.c[0].ext[i].first_page + h.c[0].ext[i].npages <= 3);
                        pages += h.c[0].ext[i].npages;
                }
                CHECK_EQ(pages, 4);
        }

        /* g: an install of a copy pulled from site 9, its vector as given */
        {
                uint32_t sites[2] = { CT, 9 };
                uint64_t cnt[2] = { 1, 5 };

                g->ino = INO(77);
                g->mode = S_IFREG | 0600;
                g->nlink = 1;
                g->generation = 1234;
                g->vvlen = (uint32_t)vv_make(g->vv, sites, cnt, 2);
                ss_mut_init(ct, &m, NULL);
                ss_cs_put_inode(&m.cs, g, SS_CS_KEEPVV);
                m.d_inodes++;
                CHECK(ss_mut_commit(ct, &m, NULL) == 0);
                CHECK(ss_db_inode_get(ct->db, g->ino, g) == 0);
                CHECK(g->vvlen == (uint32_t)vv_make(page, sites, cnt, 2) && !memcmp(g->vv, page, g->vvlen));
                CHECK_EQ(g->version, 6);
                CHECK_EQ(g->generation, 1234);
                /* and its deletion as pulled: the given vector, no increment */
                cnt[1] = 6;
                g->vvlen = (uint32_t)vv_make(g->vv, sites, cnt, 2);
                ss_mut_init(ct, &m, NULL);
                ss_cs_del_inode(&m.cs, g->ino, g->vv, g->vvlen, SS_CS_KEEPVV);
                m.d_inodes--;
                CHECK(ss_mut_commit(ct, &m, NULL) == 0);
                CHECK(ss_db_inode_get(ct->db, g->ino, root) == -ENOENT);
                {
                        uint8_t vv[SS_VV_MAX];
                        size_t vl;

                        CHECK(ss_db_gone_get(ct->db, g->ino, vv, &vl, NULL) == 0);
                        CHECK(vl == g->vvlen && !memcmp(vv, g->vv, vl));
                }
                CHECK_EQ(h.n, 1);
                CHECK(h.c[0].ino == g->ino && h.c[0].gone);
        }

        /* unlink f (an orphan), then the orphans are freed: deletion record */
        CHECK(ss_db_inode_get(ct->db, SS_ROOT_INO, root) == 0);
        {
                struct ss_dirent d;

                CHECK(ss_db_lookup(ct->db, SS_ROOT_INO, (const uint8_t *)"f", 1, &d) == 0);
                CHECK_EQ(d.cookie, ss_cs_cookie_hash((const uint8_t *)"f", 1));
                ss_mut_init(ct, &m, NULL);
                ss_cs_del_dirent(&m.cs, d.id);
        }
        f->nlink = 0;
        ss_cs_put_inode(&m.cs, f, 0);
        ss_cs_put_inode(&m.cs, root, 0);
        CHECK(ss_mut_commit(ct, &m, &seq_unlink) == 0);
        CHECK(ss_ct_free_orphans(ct) == 0);
        seq_free = ct->seq;
        CHECK(seq_free == seq_unlink + 1);
        CHECK(ss_db_inode_get(ct->db, f->ino, f) == -ENOENT);
        {
                uint8_t vv[SS_VV_MAX];
                size_t vl;
                uint64_t lseq;

                CHECK(ss_db_gone_get(ct->db, f->ino, vv, &vl, &lseq) == 0);
                CHECK(vv_is(vv, vl, CT, 4));    /* create, write, unlink, free */
                CHECK_EQ(lseq, seq_free);
        }
        CHECK_EQ(h.seq, seq_free);
        CHECK_EQ(h.n, 1);
        CHECK(h.c[0].ino == f->ino && h.c[0].gone && vv_is(h.c[0].vv, h.c[0].vvlen, CT, 4));
        CHECK(h.c[0].next == 1 && h.c[0].ext[0].first_page == 0 && h.c[0].ext[0].npages == DSM_TO_END);

        /* the stream read back: rows and records past a watermark, in lseq order */
        CHECK_EQ(ss_db_changes(ct->db, 0, 0, seen_cb, &s), 3);
        CHECK(s.ino[0] == INO(77) && s.gone[0]);
        CHECK(s.ino[1] == SS_ROOT_INO && !s.gone[1] && s.lseq[1] == seq_unlink);
        CHECK(vv_is(s.vv[1], s.vvlen[1], CT, 2));      /* f created, f unlinked (made with the empty vector) */
        CHECK(s.ino[2] == f->ino && s.gone[2] && s.lseq[2] == seq_free);
        memset(&s, 0, sizeof(s));
        CHECK_EQ(ss_db_changes(ct->db, seq_unlink, 0, seen_cb, &s), 1);
        CHECK(s.ino[0] == f->ino && s.gone[0]);
        memset(&s, 0, sizeof(s));
        CHECK_EQ(ss_db_changes(ct->db, 0, 2, seen_cb, &s), 2);
        memset(&s, 0, sizeof(s));
        CHECK_EQ(ss_db_changes(ct->db, seq_free, 0, seen_cb, &s), 0);

        CHECK_EQ(h.calls, 6);                   /* one per commit */
        /* the log alone gives the same rows (a full checkpoint's image
         * keeps vectors, lseq and deletion records too) */
        check_log_reproduces(ct, false);
        CHECK(ss_ct_open(data, FG, false, &ct) == 0);
        check_log_reproduces(ct, true);
        free(f);
        free(g);
        free(root);
}
END_TEST

/* A vector over SS_VV_MAX is a clear error of the builder, and a commit
 * without a site to count at is a caller bug. */
START_TEST(t_vector_limits)
{
        struct ss_inode *in = calloc(1, sizeof(*in));
        struct ss_cs cs;
        uint32_t sites[64];
        uint64_t cnt[64];

        setup();
        CHECK(in);
        for (int i = 0; i < 64; i++) {
                sites[i] = 1000u * (uint32_t)i + 1;
                cnt[i] = UINT64_MAX - 1;
        }
        /* 42 sites fit with any counters */
        in->ino = 5;
        in->vvlen = (uint32_t)vv_make(in->vv, sites, cnt, 42);
        ss_cs_init(&cs);
        cs.site = 1;
        ss_cs_put_inode(&cs, in, 0);
        CHECK_EQ(cs.err, 0);
        ss_cs_free(&cs);
        /* one more does not */
        {
                struct dsm_vv v;
                uint8_t big[4096];
                ssize_t n;

                dsm_vv_init(&v);
                for (int i = 0; i < 64; i++)
                        CHECK(dsm_vv_set(&v, sites[i], cnt[i]) == 0);
                n = dsm_vv_encode(&v, big, sizeof(big));
                CHECK(n > (ssize_t)SS_VV_MAX);
                dsm_vv_free(&v);
                ss_cs_init(&cs);
                cs.site = 1;
                ss_cs_del_inode(&cs, 5, big, (size_t)n, 0);
                CHECK_EQ(cs.err, -E2BIG);
                ss_cs_free(&cs);
        }
        ss_cs_init(&cs);
        in->vvlen = 0;
        ss_cs_put_inode(&cs, in, 0);    /* no site */
        CHECK_EQ(cs.err, -EINVAL);
        ss_cs_free(&cs);
        free(in);
}
END_TEST

/* Cookies: the name's hash, probing upward past entries of the same
 * directory and past the mutation's own choices, wrapping at the end. */
START_TEST(t_cookie_probe)
{
        char path[PATH_MAX];
        struct ss_db *db;
        struct ss_dirent d = { 0 };
        struct ss_cs_claim cl[2];
        uint64_t h = ss_cs_cookie_hash((const uint8_t *)"name", 4), c;

        setup();
        CHECK(h >= SS_COOKIE_MIN && h < SS_COOKIE_END);
        CHECK(h != ss_cs_cookie_hash((const uint8_t *)"namf", 4));
        snprintf(path, sizeof(path), "%s/x.sqlite", tu_tmpdir());
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_cs_cookie(db, 1, (const uint8_t *)"name", 4, 0, NULL, 0, &c) == 0);
        CHECK_EQ(c, h);
        /* another name of dir 1 holds h: the next one up */
        d = (struct ss_dirent){ .id = 10, .parent = 1, .ino = 5, .type = DT_REG, .cookie = h, .namelen = 5 };
        memcpy(d.name, "other", 5);
        CHECK(ss_db_dirent_put(db, &d) == 0);
        CHECK(ss_cs_cookie(db, 1, (const uint8_t *)"name", 4, 0, NULL, 0, &c) == 0);
        CHECK_EQ(c, h + 1);
        /* ... unless that entry is the one being renamed */
        CHECK(ss_cs_cookie(db, 1, (const uint8_t *)"name", 4, 10, NULL, 0, &c) == 0);
        CHECK_EQ(c, h);
        /* other directories do not count */
        CHECK(ss_cs_cookie(db, 2, (const uint8_t *)"name", 4, 0, NULL, 0, &c) == 0);
        CHECK_EQ(c, h);
        /* nor do claims of other directories; claims of this one do */
        cl[0] = (struct ss_cs_claim){ 2, h + 1 };
        cl[1] = (struct ss_cs_claim){ 1, h + 1 };
        CHECK(ss_cs_cookie(db, 1, (const uint8_t *)"name", 4, 0, cl, 1, &c) == 0);
        CHECK_EQ(c, h + 1);
        CHECK(ss_cs_cookie(db, 1, (const uint8_t *)"name", 4, 0, cl, 2, &c) == 0);
        CHECK_EQ(c, h + 2);
        /* two rows of one directory can never share a cookie */
        d.id = 11;
        d.namelen = 6;
        memcpy(d.name, "other2", 6);
        CHECK_EQ(ss_db_dirent_put(db, &d), -EEXIST);
        ss_db_close(db);
}
END_TEST

/* ---- a store of the previous format (changesets, image version 1) ---- */

struct v1 {
        uint8_t p[8192];
        size_t len;
        uint8_t row[1024];
        size_t rlen;
};

static void v1_byte(uint8_t *p, size_t *len, uint8_t b)
{
        p[(*len)++] = b;
}

static void v1_v(uint8_t *p, size_t *len, uint64_t v)
{
        do {
                uint8_t b = v & 0x7f;

                v >>= 7;
                v1_byte(p, len, (uint8_t)(b | (v ? 0x80 : 0)));
        } while (v);
}

static void v1_str(uint8_t *p, size_t *len, const void *s, size_t n)
{
        v1_v(p, len, n);
        memcpy(p + *len, s, n);
        *len += n;
}

static void v1_begin(struct v1 *b, unsigned tag)
{
        b->rlen = 0;
        v1_byte(b->row, &b->rlen, (uint8_t)tag);
}

static void v1_end(struct v1 *b)
{
        v1_v(b->p, &b->len, b->rlen);
        memcpy(b->p + b->len, b->row, b->rlen);
        b->len += b->rlen;
}

static void v1_init(struct v1 *b, char kind)
{
        b->len = 0;
        v1_byte(b->p, &b->len, 'L');
        v1_byte(b->p, &b->len, (uint8_t)kind);
        v1_byte(b->p, &b->len, 1);
}

static void v1_meta(struct v1 *b, const char *key, uint64_t v)
{
        v1_begin(b, SS_CS_META);
        v1_str(b->row, &b->rlen, key, strlen(key));
        v1_v(b->row, &b->rlen, v);
        v1_end(b);
}

/* An inode row as version 1 wrote it (with its `version`). */
static void v1_inode(struct v1 *b, unsigned flags, uint64_t ino, uint32_t mode, uint32_t nlink, uint64_t size,
                     uint64_t gen, uint64_t version)
{
        v1_begin(b, SS_CS_INODE | flags);
        v1_v(b->row, &b->rlen, ino);
        v1_v(b->row, &b->rlen, mode);
        v1_v(b->row, &b->rlen, nlink);
        v1_v(b->row, &b->rlen, 0);              /* uid */
        v1_v(b->row, &b->rlen, 0);              /* gid */
        v1_v(b->row, &b->rlen, 0);              /* rdev */
        v1_v(b->row, &b->rlen, size);
        for (int i = 0; i < 3; i++) {
                v1_v(b->row, &b->rlen, 2 * 1700000000ull);     /* zigzag sec */
                v1_v(b->row, &b->rlen, 7);
        }
        v1_v(b->row, &b->rlen, gen);
        v1_v(b->row, &b->rlen, version);
        v1_str(b->row, &b->rlen, "", 0);
        v1_end(b);
}

static void v1_dirent(struct v1 *b, uint64_t id, uint64_t parent, uint64_t ino, uint32_t type, const char *name)
{
        v1_begin(b, SS_CS_DIRENT);
        v1_v(b->row, &b->rlen, id);
        v1_v(b->row, &b->rlen, parent);
        v1_v(b->row, &b->rlen, ino);
        v1_v(b->row, &b->rlen, type);
        v1_str(b->row, &b->rlen, name, strlen(name));
        v1_end(b);
}

static void v1_seal(struct v1 *b)
{
        v1_byte(b->p, &b->len, 0);
}

#define OLD_F ((1ull << SS_INO_SHIFT) | 2)
#define OLD_D ((1ull << SS_INO_SHIFT) | 3)
#define OLD_G ((1ull << SS_INO_SHIFT) | 4)

/* The rows after commit 2 of the old store (also its checkpoint image). */
static void old_rows_2(struct v1 *b, bool image)
{
        if (image) {
                v1_meta(b, "fg", FG);
                v1_meta(b, "container", 1);
        }
        v1_inode(b, image ? 0 : 0x10 | SS_CS_GSEQ, OLD_F, S_IFREG | 0644, 1, 5, 2, 2);
        v1_dirent(b, 1, SS_ROOT_INO, OLD_F, DT_REG, "alpha");
        v1_inode(b, image ? 0 : 0x10 | SS_CS_GSEQ, OLD_D, S_IFDIR | 0755, 2, 4096, 2, 2);
        v1_dirent(b, 2, SS_ROOT_INO, OLD_D, DT_DIR, "beta");
        v1_inode(b, image ? 0 : 0x10 | SS_CS_GSEQ, OLD_G, S_IFREG | 0600, 1, 0, 2, 2);
        v1_dirent(b, 3, SS_ROOT_INO, OLD_G, DT_REG, "gamma");
        v1_inode(b, 0, SS_ROOT_INO, S_IFDIR | 0755, 3, 4096, 1, 1);
        v1_meta(b, "next_ino", 5);
        v1_meta(b, "next_dirent", 4);
        v1_meta(b, "inodes", 4);
}

static int old_ckpt(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        struct v1 *b = ctx;

        CHECK_EQ(seq, 2);
        v1_init(b, 'I');
        old_rows_2(b, true);
        v1_seal(b);
        return dsm_ckpt_put(cp, b->p, b->len);
}

static void old_commit(struct dsm_store *s, struct v1 *b, uint64_t data_ino, uint64_t seq)
{
        struct dsm_txn *t;
        struct dsm_commit c;

        CHECK(dsm_txn_begin(s, &t) == 0);
        if (data_ino)
                CHECK(dsm_txn_write(t, data_ino, 0, 0, "hello", 5) == 0);
        CHECK(dsm_txn_commit(t, b->p, b->len, &c) == 0);
        CHECK_EQ(c.seq, seq);
        dsm_commit_release(&c);
}

/*
 * Build, by hand, a container as the previous version left it: commits 1
 * (the root) and 2 (three files) in changeset format 1, a full checkpoint
 * at 2 with an image in format 1, commit 3 (a rename, an unlink with its
 * inode row deleted), and a meta.sqlite of schema 1.
 */
static void make_old_store(void)
{
        char seg[PATH_MAX], db[PATH_MAX];
        struct dsm_options o = { 0 };
        struct dsm_store *s;
        static struct v1 b, img;
        sqlite3 *h;

        snprintf(seg, sizeof(seg), "%s/fg-%u", data, FG);
        CHECK(mkdir(seg, 0700) == 0);
        snprintf(seg, sizeof(seg), "%s/fg-%u/segments", data, FG);
        CHECK(dsm_format(seg, NULL) == 0);
        o.ckpt_meta = old_ckpt;
        o.ckpt_ctx = &img;
        CHECK(dsm_open(seg, &o, &s) == 0);
        v1_init(&b, 'C');
        v1_meta(&b, "fg", FG);
        v1_meta(&b, "container", 1);
        v1_inode(&b, 0x10 | SS_CS_GSEQ, SS_ROOT_INO, S_IFDIR | 0755, 2, 4096, 0, 0);
        v1_meta(&b, "next_ino", 2);
        v1_meta(&b, "next_dirent", 1);
        v1_meta(&b, "inodes", 1);
        v1_seal(&b);
        old_commit(s, &b, 0, 1);
        v1_init(&b, 'C');
        old_rows_2(&b, false);
        v1_seal(&b);
        old_commit(s, &b, OLD_F, 2);
        CHECK(dsm_checkpoint(s) == 0);
        v1_init(&b, 'C');
        v1_dirent(&b, 1, SS_ROOT_INO, OLD_F, DT_REG, "delta");  /* rename alpha -> delta */
        v1_begin(&b, SS_CS_DIRENT | SS_CS_DEL);
        v1_v(b.row, &b.rlen, 3);
        v1_end(&b);
        v1_begin(&b, SS_CS_INODE | SS_CS_DEL);                  /* gamma gone */
        v1_v(b.row, &b.rlen, OLD_G);
        v1_end(&b);
        v1_meta(&b, "inodes", 3);
        v1_seal(&b);
        old_commit(s, &b, 0, 3);
        dsm_close(s);
        /* the index as schema 1 left it (in step with the log) */
        snprintf(db, sizeof(db), "%s/fg-%u/meta.sqlite", data, FG);
        CHECK(sqlite3_open(db, &h) == SQLITE_OK);
        CHECK(sqlite3_exec(h,
                           "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
                           "CREATE TABLE inodes(ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL, nlink INTEGER NOT NULL,"
                           " uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL, size INTEGER NOT NULL,"
                           " atime_sec INTEGER NOT NULL, atime_nsec INTEGER NOT NULL,"
                           " mtime_sec INTEGER NOT NULL, mtime_nsec INTEGER NOT NULL,"
                           " ctime_sec INTEGER NOT NULL, ctime_nsec INTEGER NOT NULL,"
                           " generation INTEGER NOT NULL, version INTEGER NOT NULL, target BLOB);"
                           "CREATE TABLE dirents(id INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name BLOB NOT NULL,"
                           " ino INTEGER NOT NULL, type INTEGER NOT NULL, UNIQUE(parent, name));"
                           "CREATE TABLE xattrs(ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
                           " PRIMARY KEY(ino, name)) WITHOUT ROWID;"
                           "INSERT INTO meta VALUES ('schema', 1), ('applied_seq', 3), ('fg', 1), ('container', 1),"
                           " ('next_ino', 5), ('next_dirent', 4), ('inodes', 3);",
                           NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(h);
}

static uint64_t schema_of(void)
{
        char db[PATH_MAX];
        sqlite3 *h;
        sqlite3_stmt *st;
        uint64_t v = 0;

        snprintf(db, sizeof(db), "%s/fg-%u/meta.sqlite", data, FG);
        CHECK(sqlite3_open(db, &h) == SQLITE_OK);
        CHECK(sqlite3_prepare_v2(h, "SELECT value FROM meta WHERE key = 'schema'", -1, &st, NULL) == SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(h);
        return v;
}

START_TEST(t_old_store)
{
        struct ss_ct *ct;
        struct ss_inode *in = calloc(1, sizeof(*in));
        struct ss_dirent d;
        struct ss_mut m;
        struct seen s = { 0 };
        uint8_t vv[SS_VV_MAX], page[DSM_PAGE_SIZE];
        size_t vl;
        uint64_t lseq;

        setup();
        CHECK(in);
        make_old_store();
        CHECK_EQ(schema_of(), 1);
        /* schema 1 does not open: the index is rebuilt from the log [C4] */
        CHECK(ss_ct_open(data, FG, false, &ct) == 0);
        CHECK_EQ(schema_of(), SS_DB_SCHEMA);
        CHECK_EQ(ct->seq, 3);
        CHECK_EQ(ct->container, 1);
        /* rows of format 1: the empty vector, version 0 */
        CHECK(ss_db_inode_get(ct->db, OLD_F, in) == 0);
        CHECK(vv_is(in->vv, in->vvlen, 0, 0));
        CHECK_EQ(in->version, 0);
        CHECK_EQ(in->size, 5);
        CHECK_EQ(in->generation, 2);
        CHECK_EQ(in->lseq, 2);                  /* from the image at seq 2 */
        CHECK(dsm_read(ct->store, OLD_F, 0, page) == 1 && !memcmp(page, "hello", 5));
        /* the deletion in commit 3: a record with the empty vector */
        CHECK(ss_db_inode_get(ct->db, OLD_G, in) == -ENOENT);
        CHECK(ss_db_gone_get(ct->db, OLD_G, vv, &vl, &lseq) == 0);
        CHECK(vv_is(vv, vl, 0, 0));
        CHECK_EQ(lseq, 3);
        /* entries keep their ids; their cookies come from their names */
        CHECK(ss_db_lookup(ct->db, SS_ROOT_INO, (const uint8_t *)"delta", 5, &d) == 0);
        CHECK_EQ(d.id, 1);
        CHECK_EQ(d.cookie, ss_cs_cookie_hash((const uint8_t *)"delta", 5));
        CHECK(ss_db_lookup(ct->db, SS_ROOT_INO, (const uint8_t *)"beta", 4, &d) == 0);
        CHECK_EQ(d.id, 2);
        CHECK_EQ(d.cookie, ss_cs_cookie_hash((const uint8_t *)"beta", 4));
        CHECK(ss_db_lookup(ct->db, SS_ROOT_INO, (const uint8_t *)"gamma", 5, &d) == -ENOENT);
        CHECK_EQ(ss_db_changes(ct->db, 2, 0, seen_cb, &s), 1);
        CHECK(s.ino[0] == OLD_G && s.gone[0]);
        /* and it carries on in format 2: a new entry from the pool, counted */
        memset(in, 0, sizeof(*in));
        in->mode = S_IFREG | 0644;
        in->nlink = 1;
        ss_mut_init(ct, &m, NULL);
        CHECK(ss_mut_alloc_ino(ct, &m, &in->ino) == 0);
        CHECK_EQ(in->ino, (1ull << SS_INO_SHIFT) | 5);
        memset(&d, 0, sizeof(d));
        CHECK(ss_mut_alloc_dirent(ct, &m, &d.id) == 0);
        CHECK_EQ(d.id, (1ull << SS_INO_SHIFT) | 4);
        d.parent = SS_ROOT_INO;
        d.ino = in->ino;
        d.type = DT_REG;
        d.namelen = 3;
        memcpy(d.name, "eps", 3);
        CHECK(ss_mut_cookie(ct, &m, SS_ROOT_INO, d.name, 3, 0, &d.cookie) == 0);
        ss_cs_put_inode(&m.cs, in, SS_CS_GSEQ);
        ss_cs_put_dirent(&m.cs, &d);
        m.d_inodes++;
        CHECK(ss_db_inode_get(ct->db, SS_ROOT_INO, in) == 0);
        ss_cs_put_inode(&m.cs, in, 0);
        CHECK(ss_mut_commit(ct, &m, NULL) == 0);
        CHECK(ss_db_inode_get(ct->db, SS_ROOT_INO, in) == 0);
        CHECK(vv_is(in->vv, in->vvlen, 1, 1));
        CHECK_EQ(in->version, 1);
        CHECK(ss_db_inode_get(ct->db, (1ull << SS_INO_SHIFT) | 5, in) == 0);
        CHECK(vv_is(in->vv, in->vvlen, 1, 1));
        /* a log of both formats replays, and rebuilds, to the same rows */
        check_log_reproduces(ct, false);
        free(in);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("ss_ident");
        struct {
                const char *name;
                const TTest *fn;
        } cases[] = {
                { "vectors_and_stream", t_vectors_and_stream },
                { "vector_limits", t_vector_limits },
                { "cookie_probe", t_cookie_probe },
                { "old_store", t_old_store },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                TCase *tc = tcase_create(cases[i].name);

                tcase_add_test(tc, cases[i].fn);
                tcase_set_timeout(tc, 60);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
