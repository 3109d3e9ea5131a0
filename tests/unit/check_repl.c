/*
 * check_repl.c -- what storage sites serve each other to replicate
 * (storage/ss_repl.c, docs/replication.md): SS_CHANGES, SS_FETCH (and its
 * COMPARE form) and SS_INSTALL, between two real storage servers (site 1
 * and site 2, each on its own loop thread, real SQLite, real logs) on
 * 127.0.0.1.  The test plays the replicator's part by hand (what
 * storage/ss_pull.c does in the daemon), so each rule of ss_repl.c is
 * checked on its own: [R1] only a dominating state installs, [R2] the
 * vector travels unchanged, [R3] a directory's entries become the pulled
 * ones; deletions travel as deletion records; big files travel in
 * staged pieces and keep their holes; [R4] a repair rewrites the pages of
 * an equal copy only.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cm.h"
#include "cm_codec.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_rs.h"
#include "ss_place.h"
#include "ss_srv.h"
#include "testutil.h"
#include "tsrv.h"


#define WAIT_MS 10000
#define ROOT 1u
#define PAGE 4096u

static uint8_t KEY[LP_KEY_SIZE];
static uint32_t seg_size = 1u << 20;    /* of the servers a case starts (a big directory needs more) */

/* ---- two storage servers -------------------------------------------------------------- */

static struct tsrv *tsrv_start(uint64_t site)
{
        struct tsrv *t = NULL;
        struct ss_opts o;
        char data[PATH_MAX];
        int r;

        snprintf(data, sizeof(data), "%s/data%llu", tu_tmpdir(), (unsigned long long)site);
        tsrv_opts(&o, data, KEY, site);
        o.segment_size = seg_size;
        o.create_root = true;
        r = tsrv_new(&o, &t);
        if (r < 0)
                ck_abort_msg("ss_srv_new failed: %s", strerror(-r));
        return t;
}

static struct lp_client *cl_connect(uint16_t port)
{
        struct lp_client *c = NULL;
        int r = lp_client_connect("127.0.0.1", port, KEY, 9, WAIT_MS, &c);

        if (r < 0)
                ck_abort_msg("connect to port %u: %s", port, strerror(-r));
        CHECK(lp_client_set_max_frame(c, LP_FS_DATA_MAX + (1u << 16)) == 0);
        return c;
}

/* ---- calls ------------------------------------------------------------------------------------ */

static struct lp_fs_req Q(uint32_t op)
{
        struct lp_fs_req q = { .op = op, .fg = 1 };

        q.cred.uid = 1000;
        q.cred.gid = 1000;
        q.cred.umask = 022;
        return q;
}

/* Call; the answer must be a success (released by the caller). */
static struct lp_fs_resp ok(struct lp_client *c, const struct lp_fs_req *q)
{
        struct lp_fs_resp a;
        char *msg = NULL;
        int r = lp_fs_call(c, q, WAIT_MS, &a, &msg);

        if (r < 0)
                ck_abort_msg("%s: transport %s (%s)", lp_fs_op_name(q->op), strerror(-r), msg ? msg : "");
        if (a.status < 0)
                ck_abort_msg("%s: %s (%s)", lp_fs_op_name(q->op), strerror(-a.status),
                             a.message ? a.message : "");
        return a;
}

static int status_of(struct lp_client *c, const struct lp_fs_req *q)
{
        struct lp_fs_resp a;
        int r = lp_fs_call(c, q, WAIT_MS, &a, NULL);

        CHECK(r == 0);
        r = a.status;
        lp_fs_resp_release(&a);
        return r;
}

/* Attributes kept past their answer (the vector points into our copy). */
struct fa {
        struct lp_fs_attr a;
        uint8_t vv[LP_FS_VV_MAX];
};

static void keep(struct fa *f, const struct lp_fs_attr *a)
{
        CHECK(a->vvlen <= sizeof(f->vv));
        f->a = *a;
        if (a->vvlen)
                memcpy(f->vv, a->vv, a->vvlen);
        f->a.vv = f->vv;
}

static uint64_t lookup(struct lp_client *c, uint64_t dir, const char *name, struct fa *ret)
{
        struct lp_fs_req q = Q(LP_FS_LOOKUP);
        struct lp_fs_resp a;
        uint64_t ino;

        q.parent = dir;
        q.name = (const uint8_t *)name;
        q.namelen = strlen(name);
        a = ok(c, &q);
        ino = a.attr.ino;
        if (ret)
                keep(ret, &a.attr);
        lp_fs_resp_release(&a);
        return ino;
}

static uint64_t mkfile(struct lp_client *c, uint64_t dir, const char *name, const void *data, size_t len,
                       uint64_t off)
{
        struct lp_fs_req q = Q(LP_FS_CREATE);
        struct lp_fs_resp a;
        uint64_t ino, sess;

        q.parent = dir;
        q.name = (const uint8_t *)name;
        q.namelen = strlen(name);
        q.mode = S_IFREG | 0644;
        q.flags = 02 | 0100;            /* O_RDWR | O_CREAT */
        a = ok(c, &q);
        ino = a.attr.ino;
        sess = a.session;
        lp_fs_resp_release(&a);
        if (len) {
                q = Q(LP_FS_WRITE);
                q.ino = ino;
                q.session = sess;
                q.offset = off;
                q.data = data;
                q.datalen = len;
                a = ok(c, &q);
                lp_fs_resp_release(&a);
        }
        q = Q(LP_FS_COMMIT);
        q.ino = ino;
        q.session = sess;
        q.flags = LP_FS_COMMIT_END;
        a = ok(c, &q);
        lp_fs_resp_release(&a);
        return ino;
}

/* Write len bytes at off in a new session of ino, and commit. */
static void rewrite(struct lp_client *c, uint64_t ino, const void *data, size_t len, uint64_t off)
{
        struct lp_fs_req q = Q(LP_FS_OPEN);
        struct lp_fs_resp a;
        uint64_t sess;

        q.ino = ino;
        q.flags = 02;
        a = ok(c, &q);
        sess = a.session;
        lp_fs_resp_release(&a);
        q = Q(LP_FS_WRITE);
        q.ino = ino;
        q.session = sess;
        q.offset = off;
        q.data = data;
        q.datalen = len;
        a = ok(c, &q);
        lp_fs_resp_release(&a);
        q = Q(LP_FS_COMMIT);
        q.ino = ino;
        q.session = sess;
        q.flags = LP_FS_COMMIT_END;
        a = ok(c, &q);
        lp_fs_resp_release(&a);
}

static size_t readall(struct lp_client *c, uint64_t ino, uint64_t off, void *buf, size_t cap)
{
        struct lp_fs_req q = Q(LP_FS_READ);
        struct lp_fs_resp a;
        size_t n;

        q.ino = ino;
        q.offset = off;
        q.length = cap;
        a = ok(c, &q);
        n = a.datalen;
        memcpy(buf, a.data, n);
        lp_fs_resp_release(&a);
        return n;
}

static struct fa getattr(struct lp_client *c, uint64_t ino)
{
        struct lp_fs_req q = Q(LP_FS_GETATTR);
        struct lp_fs_resp a;
        struct fa at;

        q.ino = ino;
        a = ok(c, &q);
        keep(&at, &a.attr);
        lp_fs_resp_release(&a);
        return at;
}

/* ---- the replicator's part, by hand ------------------------------------------------------------ */

/* The piece of directory ino at src after cookie from (SS_FETCH PIECES),
 * decoded into *st. */
static struct lp_fs_resp fetch_piece(struct lp_client *src, uint64_t ino, uint64_t from, struct lp_rs_state *st)
{
        struct lp_fs_req q = Q(LP_FS_SS_FETCH);
        struct lp_fs_resp a;

        q.ino = ino;
        q.flags = LP_FS_FETCH_PIECES;
        q.offset = from;
        a = ok(src, &q);
        CHECK(lp_rs_state_decode(a.data, a.datalen, st) == 0);
        return a;
}

/* SS_INSTALL with a state (blob) at dst: its status. */
static int install_call(struct lp_client *dst, uint64_t ino, uint32_t flags, uint64_t session,
                        const uint8_t *blob, size_t len, uint64_t *ret_value)
{
        struct lp_fs_req q = Q(LP_FS_SS_INSTALL);
        struct lp_fs_resp a;
        char *m = NULL;
        int r;

        q.ino = ino;
        q.flags = flags;
        q.session = session;
        q.blob = blob;
        q.bloblen = len;
        CHECK(lp_fs_call(dst, &q, WAIT_MS, &a, &m) == 0);
        free(m);
        r = a.status;
        if (ret_value)
                *ret_value = r ? 0 : (flags & LP_FS_INSTALL_BEGIN) ? a.session : a.value;
        lp_fs_resp_release(&a);
        return r;
}

/* [R6] A directory in pieces: the first is a (answer) / first (decoded);
 * stage it and the next ones at dst, commit the last.  The value of the
 * commit, or -ESTALE when the directory changed between two pieces. */
static int pull_pieces(struct lp_client *src, struct lp_client *dst, const struct lp_fs_resp *a,
                       const struct lp_rs_state *first)
{
        uint64_t session, v, from;
        int r;

        CHECK(first->more && first->nentries > 0 && first->from == 0);
        CHECK_EQ(install_call(dst, first->ino, LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_ENTRIES, 0, a->data,
                              a->datalen, &session), 0);
        from = first->entries[first->nentries - 1].cookie;
        for (;;) {
                struct lp_rs_state st;
                struct lp_fs_resp b = fetch_piece(src, first->ino, from, &st);
                bool more = st.more;

                CHECK_EQ(st.from, from);
                if (st.nentries)
                        from = st.entries[st.nentries - 1].cookie;
                lp_rs_state_free(&st);
                r = install_call(dst, first->ino, more ? LP_FS_INSTALL_ENTRIES : LP_FS_INSTALL_COMMIT, session,
                                 b.data, b.datalen, &v);
                lp_fs_resp_release(&b);
                if (r < 0)
                        return r;
                if (!more)
                        return (int)v;
        }
}

/* Install one file from src into dst: 1 installed, 0 not (older, equal, concurrent). */
static int pull_one(struct lp_client *src, struct lp_client *dst, uint64_t ino)
{
        struct lp_fs_req q = Q(LP_FS_SS_FETCH);
        struct lp_fs_resp a, b;
        struct lp_rs_state st;
        uint64_t session = 0;
        int r;

        a = fetch_piece(src, ino, 0, &st);
        if (!lp_rs_state_complete(&st)) {
                r = pull_pieces(src, dst, &a, &st);
                CHECK(r >= 0);
                lp_rs_state_free(&st);
                lp_fs_resp_release(&a);
                return r;
        }
        if (st.kind == LP_RS_INODE && S_ISREG(st.mode) && !st.has_data) {
                q = Q(LP_FS_SS_INSTALL);
                q.ino = ino;
                q.flags = LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_TRUNC;
                b = ok(dst, &q);
                session = b.session;
                lp_fs_resp_release(&b);
                for (size_t i = 0; i < st.nextents; i++) {
                        uint64_t off = st.extents[i].page * PAGE, end = off + st.extents[i].npages * PAGE;

                        if (end > st.size)
                                end = st.size;
                        while (off < end) {
                                struct lp_fs_req rq = Q(LP_FS_READ), iq = Q(LP_FS_SS_INSTALL);
                                struct lp_fs_resp ra, ia;

                                rq.ino = ino;
                                rq.offset = off;
                                rq.length = end - off;
                                ra = ok(src, &rq);
                                CHECK(ra.datalen > 0);
                                iq.ino = ino;
                                iq.session = session;
                                iq.flags = LP_FS_INSTALL_DATA;
                                iq.offset = off;
                                iq.data = ra.data;
                                iq.datalen = ra.datalen;
                                ia = ok(dst, &iq);
                                lp_fs_resp_release(&ia);
                                off += ra.datalen;
                                lp_fs_resp_release(&ra);
                        }
                }
        }
        q = Q(LP_FS_SS_INSTALL);
        q.ino = ino;
        q.session = session;
        q.flags = LP_FS_INSTALL_COMMIT;
        q.blob = a.data;
        q.bloblen = a.datalen;
        b = ok(dst, &q);
        r = (int)b.value;
        lp_fs_resp_release(&b);
        lp_rs_state_free(&st);
        lp_fs_resp_release(&a);
        return r;
}

/* One full pass src -> dst from watermark *wm: returns files installed. */
static int sync_pass(struct lp_client *src, struct lp_client *dst, uint64_t *wm)
{
        struct lp_fs_req q = Q(LP_FS_SS_CHANGES);
        struct lp_fs_resp a, cmp;
        uint64_t *inos;
        size_t n;
        int installed = 0;

        for (;;) {
                q.offset = *wm;
                a = ok(src, &q);
                q.op = LP_FS_SS_FETCH;
                q.flags = LP_FS_FETCH_COMPARE;
                q.data = a.data;
                q.datalen = a.datalen;
                cmp = ok(dst, &q);
                CHECK(lp_rs_pulls_decode(cmp.data, cmp.datalen, &inos, &n) == 0);
                for (size_t i = 0; i < n; i++) {
                        int k = pull_one(src, dst, inos[i]);

                        if (getenv("REPL_DEBUG"))
                                fprintf(stderr, "pull %#llx -> %d\n", (unsigned long long)inos[i], k);
                        installed += k;
                }
                free(inos);
                lp_fs_resp_release(&cmp);
                *wm = a.value;
                if (a.eof) {
                        lp_fs_resp_release(&a);
                        return installed;
                }
                lp_fs_resp_release(&a);
                q = Q(LP_FS_SS_CHANGES);
        }
}

/* The listing of dir: names and cookies, "name@cookie\n" each. */
static void listing(struct lp_client *c, uint64_t dir, char *buf, size_t cap)
{
        struct lp_fs_req q = Q(LP_FS_READDIR);
        size_t len = 0;

        buf[0] = 0;
        q.ino = dir;
        q.length = 1000;
        for (;;) {
                struct lp_fs_resp a = ok(c, &q);
                bool eof = a.eof;

                for (size_t i = 0; i < a.nentries; i++) {
                        int k = snprintf(buf + len, cap - len, "%.*s@%llu\n", (int)a.entries[i].namelen,
                                         (const char *)a.entries[i].name, (unsigned long long)a.entries[i].next);

                        CHECK(k > 0 && (size_t)k < cap - len);
                        len += (size_t)k;
                        q.offset = a.entries[i].next;
                }
                lp_fs_resp_release(&a);
                if (eof)
                        return;
        }
}

static void same_attr(const struct fa *fa, const struct fa *fb)
{
        const struct lp_fs_attr *a = &fa->a, *b = &fb->a;

        CHECK_EQ(a->ino, b->ino);
        CHECK_EQ(a->size, b->size);
        CHECK_EQ(a->mode, b->mode);
        CHECK_EQ(a->nlink, b->nlink);
        CHECK_EQ(a->uid, b->uid);
        CHECK_EQ(a->gid, b->gid);
        CHECK_EQ(a->mtime.sec, b->mtime.sec);
        CHECK_EQ(a->mtime.nsec, b->mtime.nsec);
        CHECK_EQ(a->generation, b->generation);
        CHECK_EQ(a->version, b->version);
        CHECK(a->vvlen > 0);
        CHECK_EQ(a->vvlen, b->vvlen);
        CHECK(!memcmp(a->vv, b->vv, a->vvlen));
}

/* ---- cases ------------------------------------------------------------------------------------ */

START_TEST(t_repl_tree)
{
        struct tsrv *s1 = tsrv_start(1), *s2 = tsrv_start(2);
        struct lp_client *c1 = cl_connect(s1->port), *c2 = cl_connect(s2->port);
        struct lp_fs_req q;
        struct lp_fs_resp a;
        struct fa x1, x2;
        char l1[8192], l2[8192], buf[64];
        uint64_t f, d, wm = 0;

        f = mkfile(c1, ROOT, "f", "hello", 5, 0);
        q = Q(LP_FS_SETXATTR);
        q.ino = f;
        q.name = (const uint8_t *)"user.k";
        q.namelen = 6;
        q.data = (const uint8_t *)"v1";
        q.datalen = 2;
        a = ok(c1, &q);
        lp_fs_resp_release(&a);
        q = Q(LP_FS_MKDIR);
        q.parent = ROOT;
        q.name = (const uint8_t *)"d";
        q.namelen = 1;
        q.mode = 0755;
        a = ok(c1, &q);
        d = a.attr.ino;
        lp_fs_resp_release(&a);
        mkfile(c1, d, "inner", "x", 1, 0);
        q = Q(LP_FS_SYMLINK);
        q.parent = ROOT;
        q.name = (const uint8_t *)"l";
        q.namelen = 1;
        q.data = (const uint8_t *)"f";
        q.datalen = 1;
        a = ok(c1, &q);
        lp_fs_resp_release(&a);

        CHECK(sync_pass(c1, c2, &wm) >= 4);
        lookup(c1, ROOT, "f", &x1);
        lookup(c2, ROOT, "f", &x2);
        same_attr(&x1, &x2);            /* [R2]: same inode number, vector, version */
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), 5);
        CHECK(!memcmp(buf, "hello", 5));
        q = Q(LP_FS_GETXATTR);
        q.ino = f;
        q.name = (const uint8_t *)"user.k";
        q.namelen = 6;
        q.length = 64;
        a = ok(c2, &q);
        CHECK(a.datalen == 2 && !memcmp(a.data, "v1", 2));
        lp_fs_resp_release(&a);
        lookup(c2, d, "inner", &x2);
        x1 = getattr(c2, ROOT);
        x2 = getattr(c1, ROOT);
        same_attr(&x1, &x2);
        /* The same listing, with the same cookies, on both copies. */
        listing(c1, ROOT, l1, sizeof(l1));
        listing(c2, ROOT, l2, sizeof(l2));
        CHECK(strcmp(l1, l2) == 0);
        CHECK(strstr(l2, "f@") && strstr(l2, "d@") && strstr(l2, "l@"));
        /* Nothing left: a second pass installs nothing, and the copy's own
         * stream (its installs) is nothing new for the first. */
        CHECK_EQ(sync_pass(c1, c2, &wm), 0);
        wm = 0;
        CHECK_EQ(sync_pass(c2, c1, &wm), 0);

        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

START_TEST(t_repl_only_newer)
{
        struct tsrv *s1 = tsrv_start(1), *s2 = tsrv_start(2);
        struct lp_client *c1 = cl_connect(s1->port), *c2 = cl_connect(s2->port);
        struct lp_fs_req q;
        struct lp_fs_resp old, a;
        char buf[64];
        uint64_t f, wm = 0;

        f = mkfile(c1, ROOT, "f", "one", 3, 0);
        q = Q(LP_FS_SS_FETCH);
        q.ino = f;
        old = ok(c1, &q);               /* the state of version one */
        rewrite(c1, f, "two", 3, 0);
        CHECK(sync_pass(c1, c2, &wm) >= 1);
        /* [R1]: an older state does not install. */
        q = Q(LP_FS_SS_INSTALL);
        q.ino = f;
        q.flags = LP_FS_INSTALL_COMMIT;
        q.blob = old.data;
        q.bloblen = old.datalen;
        a = ok(c2, &q);
        CHECK_EQ(a.value, 0);
        lp_fs_resp_release(&a);
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), 3);
        CHECK(!memcmp(buf, "two", 3));
        /* ... nor does the same one twice. */
        CHECK_EQ(pull_one(c1, c2, f), 0);
        /* Concurrent changes (each copy written on its own): neither
         * installs over the other; both keep their data. */
        rewrite(c1, f, "AAA", 3, 0);
        rewrite(c2, f, "BBB", 3, 0);
        CHECK_EQ(pull_one(c1, c2, f), 0);
        CHECK_EQ(pull_one(c2, c1, f), 0);
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), 3);
        CHECK(!memcmp(buf, "BBB", 3));
        CHECK_EQ(readall(c1, f, 0, buf, sizeof(buf)), 3);
        CHECK(!memcmp(buf, "AAA", 3));
        q = Q(LP_FS_SS_CHANGES);
        q.offset = wm;
        a = ok(c1, &q);
        q = Q(LP_FS_SS_FETCH);
        q.flags = LP_FS_FETCH_COMPARE;
        q.data = a.data;
        q.datalen = a.datalen;
        {
                struct lp_fs_resp cmp = ok(c2, &q);

                CHECK_EQ(cmp.value, 0);         /* nothing to pull */
                lp_fs_resp_release(&cmp);
        }
        lp_fs_resp_release(&a);
        lp_fs_resp_release(&old);
        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

START_TEST(t_repl_delete_rename)
{
        struct tsrv *s1 = tsrv_start(1), *s2 = tsrv_start(2);
        struct lp_client *c1 = cl_connect(s1->port), *c2 = cl_connect(s2->port);
        struct lp_fs_req q;
        struct lp_fs_resp a;
        struct fa x;
        char l1[8192], l2[8192];
        uint64_t f, g, wm = 0;

        f = mkfile(c1, ROOT, "gone", "data", 4, 0);
        g = mkfile(c1, ROOT, "old", "keep", 4, 0);
        CHECK(sync_pass(c1, c2, &wm) >= 2);
        q = Q(LP_FS_UNLINK);
        q.parent = ROOT;
        q.name = (const uint8_t *)"gone";
        q.namelen = 4;
        a = ok(c1, &q);
        CHECK(a.orphan);
        lp_fs_resp_release(&a);
        q = Q(LP_FS_FORGET_ORPHAN);
        q.ino = f;
        a = ok(c1, &q);
        lp_fs_resp_release(&a);
        q = Q(LP_FS_RENAME);
        q.parent = ROOT;
        q.name = (const uint8_t *)"old";
        q.namelen = 3;
        q.newparent = ROOT;
        q.newname = (const uint8_t *)"new";
        q.newnamelen = 3;
        a = ok(c1, &q);
        lp_fs_resp_release(&a);
        CHECK(sync_pass(c1, c2, &wm) >= 2);
        /* The deletion travelled as a deletion record: the inode is gone,
         * and the copy's FETCH says so too. */
        q = Q(LP_FS_GETATTR);
        q.ino = f;
        CHECK(status_of(c2, &q) < 0);
        q = Q(LP_FS_SS_FETCH);
        q.ino = f;
        q.flags = LP_FS_FETCH_VV;
        a = ok(c2, &q);
        {
                struct lp_rs_state st;

                CHECK(lp_rs_state_decode(a.data, a.datalen, &st) == 0);
                CHECK_EQ(st.kind, LP_RS_GONE);
                lp_rs_state_free(&st);
        }
        lp_fs_resp_release(&a);
        CHECK_EQ(lookup(c2, ROOT, "new", &x), g);
        q = Q(LP_FS_LOOKUP);
        q.parent = ROOT;
        q.name = (const uint8_t *)"old";
        q.namelen = 3;
        CHECK(status_of(c2, &q) < 0);
        listing(c1, ROOT, l1, sizeof(l1));
        listing(c2, ROOT, l2, sizeof(l2));
        CHECK(strcmp(l1, l2) == 0);
        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

START_TEST(t_repl_big_sparse)
{
        struct tsrv *s1 = tsrv_start(1), *s2 = tsrv_start(2);
        struct lp_client *c1 = cl_connect(s1->port), *c2 = cl_connect(s2->port);
        size_t mib = 1u << 20;
        uint8_t *p = malloc(mib), *back = malloc(mib);
        struct lp_fs_req q;
        struct lp_fs_resp a;
        struct fa x1, x2;
        uint64_t f, wm = 0;

        CHECK(p && back);
        for (size_t i = 0; i < mib; i++)
                p[i] = (uint8_t)(i * 7 + 3);
        f = mkfile(c1, ROOT, "big", p, mib, 0);
        rewrite(c1, f, p, mib, 5 * mib);        /* a 4 MiB hole between */
        CHECK(sync_pass(c1, c2, &wm) >= 1);
        x1 = getattr(c1, f);
        x2 = getattr(c2, f);
        same_attr(&x1, &x2);
        CHECK_EQ(x2.a.size, 6 * mib);
        CHECK_EQ(x2.a.blocks, x1.a.blocks);         /* the hole stayed a hole */
        CHECK_EQ(readall(c2, f, 5 * mib, back, mib), mib);
        CHECK(!memcmp(back, p, mib));
        q = Q(LP_FS_LSEEK);
        q.ino = f;
        q.offset = 0;
        q.whence = 4;                            /* SEEK_HOLE */
        a = ok(c2, &q);
        CHECK_EQ(a.value, mib);
        lp_fs_resp_release(&a);
        free(p);
        free(back);
        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

START_TEST(t_repl_bad_input)
{
        struct tsrv *s2 = tsrv_start(2);
        struct lp_client *c2 = cl_connect(s2->port);
        static const uint8_t junk[] = "LS\x01\x01\xff\xff";
        struct lp_fs_req q = Q(LP_FS_SS_INSTALL);
        char buf[8];

        q.ino = 77;
        q.flags = LP_FS_INSTALL_COMMIT;
        q.blob = junk;
        q.bloblen = sizeof(junk) - 1;
        CHECK_EQ(status_of(c2, &q), -EBADMSG);
        q = Q(LP_FS_SS_FETCH);
        q.flags = LP_FS_FETCH_COMPARE;
        q.data = junk;
        q.datalen = sizeof(junk) - 1;
        CHECK_EQ(status_of(c2, &q), -EBADMSG);
        q = Q(LP_FS_SS_INSTALL);
        q.ino = 77;
        q.flags = LP_FS_INSTALL_DATA;
        q.data = (const uint8_t *)"x";
        q.datalen = 1;
        CHECK_EQ(status_of(c2, &q), -EINVAL);   /* data without a session */
        /* The server still serves. */
        CHECK_EQ(readall(c2, mkfile(c2, ROOT, "f", "ok", 2, 0), 0, buf, sizeof(buf)), 2);
        lp_client_close(c2);
        tsrv_stop(s2);
}
END_TEST

/* The state of ino at src with its inline data replaced by data (same
 * length), or (data NULL) without data; *ret is malloc'ed. */
static void forged_state(struct lp_client *src, uint64_t ino, const uint8_t *data, uint8_t **ret, size_t *ret_len)
{
        struct lp_fs_req q = Q(LP_FS_SS_FETCH);
        struct lp_fs_resp a;
        struct lp_rs_state st;
        struct cm_wbuf w;

        q.ino = ino;
        a = ok(src, &q);
        CHECK(lp_rs_state_decode(a.data, a.datalen, &st) == 0);
        CHECK(st.has_data);
        if (data)
                st.data = data;
        else
                st.has_data = false;
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK(!w.err);
        *ret = cm_wbuf_take(&w, ret_len);
        lp_rs_state_free(&st);
        lp_fs_resp_release(&a);
}

static int repair_call(struct lp_client *c, uint64_t ino, uint64_t session, const uint8_t *blob, size_t len)
{
        struct lp_fs_req q = Q(LP_FS_SS_INSTALL);

        q.ino = ino;
        q.session = session;
        q.flags = LP_FS_INSTALL_COMMIT | LP_FS_INSTALL_REPAIR;
        q.blob = blob;
        q.bloblen = len;
        return status_of(c, &q);
}

/* [R4]: a repair rewrites the pages of a copy with the same vector, and
 * only then; it moves no vector and adds nothing to the change stream. */
START_TEST(t_repl_repair)
{
        struct tsrv *s1 = tsrv_start(1), *s2 = tsrv_start(2);
        struct lp_client *c1 = cl_connect(s1->port), *c2 = cl_connect(s2->port);
        static uint8_t data[3 * PAGE + 100], other[sizeof(data)], buf[sizeof(data) + PAGE];
        struct lp_fs_req q;
        struct lp_fs_resp a;
        struct fa before, after;
        uint8_t *blob, *old;
        size_t len, oldlen;
        uint64_t f, wm = 0, seq2, session;

        for (size_t i = 0; i < sizeof(data); i++) {
                data[i] = (uint8_t)(i * 7 + 1);
                other[i] = (uint8_t)(i * 13 + 5);
        }
        f = mkfile(c1, ROOT, "f", data, sizeof(data), 0);
        CHECK(sync_pass(c1, c2, &wm) >= 1);
        /* (The first read sets the copy's own atime, a row change of its
         * stream: done before the stream's end is taken.) */
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), sizeof(data));
        before = getattr(c2, f);
        q = Q(LP_FS_SS_CHANGES);
        q.offset = 0;
        a = ok(c2, &q);
        seq2 = a.value;
        lp_fs_resp_release(&a);

        /* Equal vectors: every page is rewritten from the state (a forged
         * one with other bytes shows that the pages really come from it). */
        forged_state(c1, f, other, &blob, &len);
        CHECK_EQ(repair_call(c2, f, 0, blob, len), 0);
        free(blob);
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), sizeof(data));
        CHECK(!memcmp(buf, other, sizeof(other)));
        after = getattr(c2, f);
        CHECK_EQ(after.a.vvlen, before.a.vvlen);
        CHECK(!memcmp(after.vv, before.vv, before.a.vvlen));
        CHECK_EQ(after.a.version, before.a.version);
        CHECK_EQ(after.a.size, before.a.size);
        q = Q(LP_FS_SS_CHANGES);
        q.offset = seq2;
        a = ok(c2, &q);
        {
                struct cm_rd rd;
                size_t n;

                CHECK(lp_rs_changes_open(&rd, a.data, a.datalen, &n) == 0);
                CHECK_EQ(n, 0);         /* no update for the other sites */
        }
        lp_fs_resp_release(&a);

        /* The same through a session (big files' way): BEGIN|TRUNC, DATA,
         * then COMMIT|REPAIR with a state without data. */
        q = Q(LP_FS_SS_INSTALL);
        q.ino = f;
        q.flags = LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_TRUNC;
        a = ok(c2, &q);
        session = a.session;
        lp_fs_resp_release(&a);
        q = Q(LP_FS_SS_INSTALL);
        q.ino = f;
        q.session = session;
        q.flags = LP_FS_INSTALL_DATA;
        q.data = data;
        q.datalen = sizeof(data);
        a = ok(c2, &q);
        lp_fs_resp_release(&a);
        forged_state(c1, f, NULL, &blob, &len);
        CHECK_EQ(repair_call(c2, f, session, blob, len), 0);
        free(blob);
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), sizeof(data));
        CHECK(!memcmp(buf, data, sizeof(data)));

        /* A newer state is refused: a repair is never an update. */
        forged_state(c1, f, other, &old, &oldlen);      /* the current version */
        rewrite(c1, f, "two", 3, 0);
        forged_state(c1, f, other, &blob, &len);
        CHECK_EQ(repair_call(c2, f, 0, blob, len), -ESTALE);
        free(blob);
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), sizeof(data));
        CHECK(!memcmp(buf, data, sizeof(data)));
        /* ... and an older one too (c2 now has "two"). */
        CHECK(sync_pass(c1, c2, &wm) >= 1);
        CHECK_EQ(repair_call(c2, f, 0, old, oldlen), -ESTALE);
        free(old);
        CHECK_EQ(readall(c2, f, 0, buf, sizeof(buf)), sizeof(data));
        CHECK(!memcmp(buf, "two", 3) && !memcmp(buf + 3, data + 3, sizeof(data) - 3));
        /* Not a regular file: refused. */
        q = Q(LP_FS_SS_FETCH);
        q.ino = ROOT;
        a = ok(c1, &q);
        CHECK_EQ(repair_call(c2, ROOT, 0, a.data, a.datalen), -ESTALE);
        lp_fs_resp_release(&a);

        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

/* ---- push: a parked SS_CHANGES (storage/ss_srv.c [S8], ss_fw.h) ----------------------------- */

struct waiter {
        uint16_t port;
        uint64_t since;
        struct lp_fs_resp a;
        int r;
};

static void *changes_waiter(void *arg)
{
        struct waiter *w = arg;
        struct lp_client *c = cl_connect(w->port);
        struct lp_fs_req q = Q(LP_FS_SS_CHANGES);

        q.offset = w->since;
        q.size = WAIT_MS;               /* wait for a change */
        w->r = lp_fs_call(c, &q, 2 * WAIT_MS, &w->a, NULL);
        lp_client_close(c);
        return NULL;
}

/* The server's status shows n parked SS_CHANGES on file group 1. */
static bool watchers_are(struct lp_client *c, unsigned n)
{
        struct lp_fs_req q = Q(LP_FS_SS_STATUS);
        struct lp_fs_resp a = ok(c, &q);
        char want[32];
        bool yes;

        snprintf(want, sizeof(want), "\"watchers\":%u,", n);
        yes = a.text && strstr(a.text, want);
        lp_fs_resp_release(&a);
        return yes;
}

static size_t nchanges(const struct lp_fs_resp *a)
{
        struct cm_rd rd;
        size_t n;

        CHECK(lp_rs_changes_open(&rd, a->data, a->datalen, &n) == 0);
        return n;
}

START_TEST(t_repl_changes_wait)
{
        struct tsrv *s1 = tsrv_start(1);
        struct lp_client *c1 = cl_connect(s1->port);
        struct waiter w = { .port = s1->port };
        struct lp_fs_req q;
        struct lp_fs_resp a;
        pthread_t th;
        uint64_t seq, f;

        mkfile(c1, ROOT, "before", "x", 1, 0);
        q = Q(LP_FS_SS_CHANGES);
        a = ok(c1, &q);
        seq = a.value;
        CHECK(seq > 0);
        lp_fs_resp_release(&a);
        /* Nothing past seq: the request is parked, not answered. */
        w.since = seq;
        CHECK(pthread_create(&th, NULL, changes_waiter, &w) == 0);
        for (int i = 0; !watchers_are(c1, 1); i++) {
                CHECK(i < WAIT_MS);     /* the request never showed up parked */
                usleep(1000);
        }
        /* The next commit answers it, with that commit's change. */
        f = mkfile(c1, ROOT, "after", "y", 1, 0);
        CHECK(pthread_join(th, NULL) == 0);
        CHECK_EQ(w.r, 0);
        CHECK_EQ(w.a.status, 0);
        CHECK(nchanges(&w.a) >= 1);
        CHECK(w.a.value > seq);
        {
                struct cm_rd rd;
                struct lp_rs_change ch;
                size_t n;
                bool seen = false;

                CHECK(lp_rs_changes_open(&rd, w.a.data, w.a.datalen, &n) == 0);
                for (size_t i = 0; i < n; i++) {
                        CHECK(lp_rs_change_next(&rd, &ch) == 0);
                        seen |= ch.ino == f;
                }
                CHECK(seen);
        }
        lp_fs_resp_release(&w.a);
        CHECK(watchers_are(c1, 0));
        q = Q(LP_FS_SS_CHANGES);        /* the end of the stream (mkfile made several commits) */
        a = ok(c1, &q);
        seq = a.value;
        lp_fs_resp_release(&a);
        /* A wait that runs out is an empty answer at the current seq. */
        q = Q(LP_FS_SS_CHANGES);
        q.offset = seq;
        q.size = 20;
        a = ok(c1, &q);
        CHECK_EQ(nchanges(&a), 0);
        CHECK_EQ(a.value, seq);
        CHECK(a.eof);
        lp_fs_resp_release(&a);
        CHECK(watchers_are(c1, 0));
        /* A waiter parked at shutdown is answered, not dropped. */
        w.since = seq;
        CHECK(pthread_create(&th, NULL, changes_waiter, &w) == 0);
        for (int i = 0; !watchers_are(c1, 1); i++) {
                CHECK(i < WAIT_MS);
                usleep(1000);
        }
        lp_client_close(c1);
        tsrv_stop(s1);
        CHECK(pthread_join(th, NULL) == 0);
        CHECK(w.r < 0 || w.a.status == -EHOSTUNREACH);
        if (w.r == 0)
                lp_fs_resp_release(&w.a);
}
END_TEST

/* ---- copies policies (storage/ss_place.h) ------------------------------------------------------- */

static int setx(struct lp_client *c, uint64_t ino, const char *name, const char *value)
{
        struct lp_fs_req q = Q(LP_FS_SETXATTR);

        q.ino = ino;
        q.name = (const uint8_t *)name;
        q.namelen = strlen(name);
        q.data = (const uint8_t *)value;
        q.datalen = strlen(value);
        return status_of(c, &q);
}

/* The value of xattr name of ino as a string ("" if there is none). */
static void getx(struct lp_client *c, uint64_t ino, const char *name, char *buf, size_t cap)
{
        struct lp_fs_req q = Q(LP_FS_GETXATTR);
        struct lp_fs_resp a;

        q.ino = ino;
        q.name = (const uint8_t *)name;
        q.namelen = strlen(name);
        q.length = cap - 1;
        CHECK(lp_fs_call(c, &q, WAIT_MS, &a, NULL) == 0);
        buf[0] = 0;
        if (a.status == 0) {
                CHECK(a.datalen < cap);
                memcpy(buf, a.data, a.datalen);
                buf[a.datalen] = 0;
        } else {
                CHECK_EQ(a.status, -ENODATA);
        }
        lp_fs_resp_release(&a);
}

static uint64_t mkdir_at(struct lp_client *c, uint64_t dir, const char *name)
{
        struct lp_fs_req q = Q(LP_FS_MKDIR);
        struct lp_fs_resp a;
        uint64_t ino;

        q.parent = dir;
        q.name = (const uint8_t *)name;
        q.namelen = strlen(name);
        q.mode = 0755;
        a = ok(c, &q);
        ino = a.attr.ino;
        lp_fs_resp_release(&a);
        return ino;
}

/* SS_FETCH of ino at c: its LP_FS_FETCH_NODATA bit and its extents. */
static bool fetch_nodata(struct lp_client *c, uint64_t ino, size_t *ret_extents)
{
        struct lp_fs_req q = Q(LP_FS_SS_FETCH);
        struct lp_fs_resp a;
        struct lp_rs_state st;
        bool nodata;

        q.ino = ino;
        a = ok(c, &q);
        nodata = a.value & LP_FS_FETCH_NODATA;
        CHECK(lp_rs_state_decode(a.data, a.datalen, &st) == 0);
        *ret_extents = st.nextents + st.has_data;
        lp_rs_state_free(&st);
        lp_fs_resp_release(&a);
        return nodata;
}

START_TEST(t_place_resolve)
{
        const uint64_t hs[] = { 3, 1, 2 }, w37[] = { 7, 3 }, w1[] = { 1 }, w22[] = { 2, 2 };
        uint64_t out[8], s[8];
        unsigned n;
        size_t k;
        char text[SS_PLACE_TEXT_MAX];

        CHECK_EQ(ss_place_parse_copies("2", 1, &n), 0);
        CHECK_EQ(n, 2);
        CHECK_EQ(ss_place_parse_copies("3\n", 2, &n), 0);
        CHECK_EQ(n, 3);
        CHECK_EQ(ss_place_parse_copies("0", 1, &n), -EINVAL);
        CHECK_EQ(ss_place_parse_copies("65", 2, &n), -EINVAL);
        CHECK_EQ(ss_place_parse_copies("-1", 2, &n), -EINVAL);
        CHECK_EQ(ss_place_parse_copies("2x", 2, &n), -EINVAL);
        CHECK_EQ(ss_place_parse_copies("", 0, &n), -EINVAL);
        CHECK_EQ(ss_place_parse_sites("1,3", 3, s, 8, &k), 0);
        CHECK(k == 2 && s[0] == 1 && s[1] == 3);
        CHECK_EQ(ss_place_parse_sites("3,3,1", 5, s, 8, &k), 0);
        CHECK(k == 2 && s[0] == 3 && s[1] == 1);
        CHECK_EQ(ss_place_parse_sites("1,,3", 4, s, 8, &k), -EINVAL);
        CHECK_EQ(ss_place_parse_sites("0", 1, s, 8, &k), -EINVAL);
        CHECK_EQ(ss_place_parse_sites("1, 3", 4, s, 8, &k), -EINVAL);
        CHECK_EQ(ss_place_parse_sites("a", 1, s, 8, &k), -EINVAL);
        CHECK_EQ(ss_place_parse_sites("1,2,3", 5, s, 2, &k), -EINVAL);
        /* [L1] the home (1) first, then the wishes that are holders. */
        k = ss_place_resolve(hs, 3, 2, w37, 2, 10, out);
        CHECK(k == 2 && out[0] == 1 && out[1] == 3);
        k = ss_place_resolve(hs, 3, 1, w22, 2, 10, out);
        CHECK(k == 1 && out[0] == 1);
        k = ss_place_resolve(hs, 3, 2, w1, 1, 4, out);  /* the home listed: the rest by rotation */
        CHECK(k == 2 && out[0] == 1 && out[1] == 2);
        k = ss_place_resolve(hs, 3, 2, NULL, 0, 5, out);
        CHECK(k == 2 && out[0] == 1 && out[1] == 3);
        k = ss_place_resolve(hs, 3, 2, w22, 2, 5, out);
        CHECK(k == 2 && out[0] == 1 && out[1] == 2);
        k = ss_place_resolve(hs, 3, 5, NULL, 0, 5, out);        /* more than the holders: all */
        CHECK(k == 3 && out[0] == 1 && out[1] == 2 && out[2] == 3);
        ss_place_format(out, k, text, sizeof(text));
        CHECK(!strcmp(text, "1,2,3"));
}
END_TEST

/* A policy on a directory: checked when set, copied by a mkdir inside,
 * resolved and recorded on a file created below; a site outside a file's
 * placement installs its row without data and never serves data (READ EIO,
 * write open EHOSTUNREACH, SS_FETCH marked NODATA); placed again, it pulls
 * the data; placed elsewhere again, it drops it. */
START_TEST(t_place_policy)
{
        struct tsrv *s1 = tsrv_start(1), *s2 = tsrv_start(2);
        struct lp_client *c1 = cl_connect(s1->port), *c2 = cl_connect(s2->port);
        uint8_t data[3 * PAGE], back[3 * PAGE];
        struct lp_fs_req q;
        uint64_t d, e, f, g, wm = 0;
        size_t ext;
        char v[64];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 7 + 1);
        d = mkdir_at(c1, ROOT, "d");
        CHECK_EQ(setx(c1, d, "user.locus.copies", "abc"), -EINVAL);
        CHECK_EQ(setx(c1, d, "user.locus.copies", "0"), -EINVAL);
        CHECK_EQ(setx(c1, d, "user.locus.sites", "1,x"), -EINVAL);
        getx(c1, d, "user.locus.copies", v, sizeof(v));
        CHECK(!strcmp(v, ""));
        CHECK_EQ(setx(c1, d, "user.locus.copies", "1"), 0);
        CHECK_EQ(setx(c1, d, "user.locus.sites", "2,1"), 0);
        e = mkdir_at(c1, d, "e");
        getx(c1, e, "user.locus.copies", v, sizeof(v));
        CHECK(!strcmp(v, "1"));
        getx(c1, e, "user.locus.sites", v, sizeof(v));
        CHECK(!strcmp(v, "2,1"));
        f = mkfile(c1, e, "f", data, sizeof(data), 0);
        getx(c1, f, "user.locus.copies", v, sizeof(v));
        CHECK(!strcmp(v, "1"));
        getx(c1, f, "user.locus.sites", v, sizeof(v));
        CHECK(!strcmp(v, "1"));         /* the holders known here: site 1 alone */
        g = mkfile(c1, ROOT, "g", data, sizeof(data), 0);
        getx(c1, g, "user.locus.sites", v, sizeof(v));
        CHECK(!strcmp(v, ""));          /* no policy: data everywhere */

        CHECK(sync_pass(c1, c2, &wm) > 0);
        CHECK(!fetch_nodata(c1, f, &ext));
        CHECK(ext > 0);
        CHECK(fetch_nodata(c2, f, &ext));
        CHECK_EQ(ext, 0);
        CHECK(!fetch_nodata(c2, g, &ext));
        CHECK_EQ(readall(c2, g, 0, back, sizeof(back)), sizeof(data));
        CHECK(!memcmp(back, data, sizeof(data)));
        q = Q(LP_FS_READ);
        q.ino = f;
        q.length = sizeof(back);
        CHECK_EQ(status_of(c2, &q), -EIO);
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = 02;
        CHECK_EQ(status_of(c2, &q), -EHOSTUNREACH);
        q = Q(LP_FS_LSEEK);
        q.ino = f;
        q.whence = SEEK_HOLE;
        CHECK_EQ(status_of(c2, &q), -EIO);              /* its holes are not the file's */
        q = Q(LP_FS_FALLOCATE);
        q.ino = f;
        q.length = PAGE;
        CHECK_EQ(status_of(c2, &q), -EHOSTUNREACH);
        q = Q(LP_FS_SETATTR);
        q.ino = f;
        q.valid = LP_FS_SET_SIZE;
        CHECK_EQ(status_of(c2, &q), -EHOSTUNREACH);
        CHECK_EQ(getattr(c2, f).a.size, sizeof(data));  /* the row is there */

        /* Placed everywhere again: site 2 pulls the data. */
        q = Q(LP_FS_REMOVEXATTR);
        q.ino = f;
        q.name = (const uint8_t *)"user.locus.copies";
        q.namelen = strlen("user.locus.copies");
        CHECK_EQ(status_of(c1, &q), 0);
        getx(c1, f, "user.locus.sites", v, sizeof(v));
        CHECK(!strcmp(v, ""));
        CHECK(sync_pass(c1, c2, &wm) > 0);
        CHECK(!fetch_nodata(c2, f, &ext));
        CHECK_EQ(readall(c2, f, 0, back, sizeof(back)), sizeof(data));
        CHECK(!memcmp(back, data, sizeof(data)));

        /* One copy again: site 2 drops its pages. */
        CHECK_EQ(setx(c1, f, "user.locus.copies", "1"), 0);
        getx(c1, f, "user.locus.sites", v, sizeof(v));
        CHECK(!strcmp(v, "1"));
        CHECK(sync_pass(c1, c2, &wm) > 0);
        CHECK(fetch_nodata(c2, f, &ext));
        q = Q(LP_FS_READ);
        q.ino = f;
        q.length = sizeof(back);
        CHECK_EQ(status_of(c2, &q), -EIO);
        CHECK_EQ(readall(c1, f, 0, back, sizeof(back)), sizeof(data));
        CHECK(!memcmp(back, data, sizeof(data)));
        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

/* ---- [R6] a directory over one message ------------------------------------------------- */

#define BIG_N 70000
#define BIG_NAME "an-entry-name-long-enough-that-70000-of-them-pass-4-MiB-%06d"

static void link_to(struct lp_client *c, uint64_t ino, uint64_t dir, const char *name)
{
        struct lp_fs_req q = Q(LP_FS_LINK);
        struct lp_fs_resp a;

        q.ino = ino;
        q.newparent = dir;
        q.newname = (const uint8_t *)name;
        q.newnamelen = strlen(name);
        a = ok(c, &q);
        lp_fs_resp_release(&a);
}

static void unlink_in(struct lp_client *c, uint64_t dir, const char *name)
{
        struct lp_fs_req q = Q(LP_FS_UNLINK);
        struct lp_fs_resp a;

        q.parent = dir;
        q.name = (const uint8_t *)name;
        q.namelen = strlen(name);
        a = ok(c, &q);
        lp_fs_resp_release(&a);
}

/* Both listings of dir, equal, with n entries. */
static void same_listing(struct lp_client *c1, struct lp_client *c2, uint64_t dir, size_t n)
{
        size_t cap = 100u << 20;
        char *l1 = malloc(cap), *l2 = malloc(cap);
        size_t lines = 0;

        CHECK(l1 && l2);
        listing(c1, dir, l1, cap);
        listing(c2, dir, l2, cap);
        CHECK(strcmp(l1, l2) == 0);
        for (const char *p = l1; (p = strchr(p, '\n')); p++)
                lines++;
        CHECK_EQ(lines, n + 2);          /* and . and .. */
        free(l1);
        free(l2);
}

START_TEST(t_repl_big_dir)
{
        struct tsrv *s1, *s2;
        struct lp_client *c1, *c2;
        struct lp_fs_req q;
        struct lp_fs_resp a, b;
        struct lp_rs_state st, st2;
        struct fa x1, x2;
        char name[128];
        uint64_t f, g, d, wm = 0, session;

        seg_size = 64u << 20;           /* the install of 70,000 entries is one commit */
        s1 = tsrv_start(1);
        s2 = tsrv_start(2);
        c1 = cl_connect(s1->port);
        c2 = cl_connect(s2->port);
        d = mkdir_at(c1, ROOT, "big");
        f = mkfile(c1, ROOT, "f", "x", 1, 0);
        g = mkfile(c1, ROOT, "g", "y", 1, 0);
        for (int i = 0; i < BIG_N; i++) {              /* (at most 65000 links each) */
                snprintf(name, sizeof(name), BIG_NAME, i);
                link_to(c1, i % 2 ? g : f, d, name);
        }

        /* Its whole state does not fit one message: without pieces, EFBIG
         * (the old limit, still the answer to a peer that cannot take
         * pieces). */
        q = Q(LP_FS_SS_FETCH);
        q.ino = d;
        CHECK_EQ(status_of(c1, &q), -EFBIG);
        /* With pieces, the first holds what fits and says more follow. */
        a = fetch_piece(c1, d, 0, &st);
        CHECK(st.more && st.from == 0);
        CHECK(st.nentries > 1000 && st.nentries < BIG_N);
        CHECK(a.datalen <= LP_FS_DATA_MAX);

        /* A piece alone is never installed as the directory's state (its
         * missing entries would be deleted, [R3]). */
        CHECK_EQ(install_call(c2, d, LP_FS_INSTALL_COMMIT, 0, a.data, a.datalen, NULL), -EINVAL);
        CHECK_EQ(install_call(c2, d, LP_FS_INSTALL_ENTRIES, 0, a.data, a.datalen, NULL), -EINVAL);
        /* Pieces of two versions are not installed: the directory changes
         * at site 1 after the first piece was staged. */
        CHECK_EQ(install_call(c2, d, LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_ENTRIES, 0, a.data, a.datalen,
                              &session), 0);
        link_to(c1, f, d, "one-more");
        b = fetch_piece(c1, d, st.entries[st.nentries - 1].cookie, &st2);
        CHECK(!st2.more);
        CHECK(st2.vvlen != st.vvlen || memcmp(st2.vv, st.vv, st.vvlen));
        CHECK_EQ(install_call(c2, d, LP_FS_INSTALL_COMMIT, session, b.data, b.datalen, NULL), -ESTALE);
        lp_rs_state_free(&st2);
        lp_fs_resp_release(&b);
        /* A piece that does not start where the staged ones end. */
        CHECK_EQ(install_call(c2, d, LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_ENTRIES, 0, a.data, a.datalen,
                              &session), 0);
        b = fetch_piece(c1, d, st.entries[st.nentries - 2].cookie, &st2);
        CHECK_EQ(install_call(c2, d, LP_FS_INSTALL_COMMIT, session, b.data, b.datalen, NULL), -ESTALE);
        lp_rs_state_free(&st2);
        lp_fs_resp_release(&b);
        lp_rs_state_free(&st);
        lp_fs_resp_release(&a);
        q = Q(LP_FS_LOOKUP);
        q.parent = ROOT;
        q.name = (const uint8_t *)"big";
        q.namelen = 3;
        CHECK_EQ(status_of(c2, &q), -ENOENT);          /* nothing was installed */

        /* The replicator's pass converges: same entries, cookies, vector. */
        CHECK(sync_pass(c1, c2, &wm) >= 2);
        x1 = getattr(c1, d);
        x2 = getattr(c2, d);
        same_attr(&x1, &x2);
        same_listing(c1, c2, d, BIG_N + 1);

        /* Changes to the big directory travel too ([R3] against a big
         * local copy): some names go, some come. */
        for (int i = 0; i < BIG_N; i += 7001) {
                snprintf(name, sizeof(name), BIG_NAME, i);
                unlink_in(c1, d, name);
        }
        link_to(c1, f, d, "late");
        CHECK(sync_pass(c1, c2, &wm) >= 1);
        x1 = getattr(c1, d);
        x2 = getattr(c2, d);
        same_attr(&x1, &x2);
        same_listing(c1, c2, d, BIG_N + 2 - 10);
        CHECK_EQ(sync_pass(c1, c2, &wm), 0);

        lp_client_close(c1);
        lp_client_close(c2);
        tsrv_stop(s1);
        tsrv_stop(s2);
}
END_TEST

/* The codec of pieces (proto/lp_rs.h): a complete state stays version 1,
 * a piece is version 2, and what is not canonical does not decode. */
START_TEST(t_rs_pieces)
{
        struct lp_rs_entry e[2] = { { 10, 100, 5, 8, (const uint8_t *)"a", 1 },
                                    { 11, 200, 6, 8, (const uint8_t *)"b", 1 } };
        struct lp_rs_state st = { .kind = LP_RS_INODE, .ino = 9, .vv = (const uint8_t *)"\x00", .vvlen = 1,
                                  .mode = S_IFDIR | 0755, .nlink = 2, .entries = e, .nentries = 2 };
        struct lp_rs_state back;
        struct cm_wbuf w;
        uint8_t *pm;

        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK(w.len > 3 && w.p[2] == 1);
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), 0);
        CHECK(lp_rs_state_complete(&back) && back.nentries == 2);
        lp_rs_state_free(&back);
        cm_wbuf_free(&w);

        st.from = 50;
        st.more = true;
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK(w.p[2] == 2);
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), 0);
        CHECK(!lp_rs_state_complete(&back) && back.from == 50 && back.more && back.nentries == 2);
        CHECK(back.entries[1].cookie == 200 && back.entries[1].namelen == 1);
        lp_rs_state_free(&back);
        cm_wbuf_free(&w);

        /* Out of cookie order, or starting at or below `from`: not a run. */
        st.from = 100;
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), -EBADMSG);
        cm_wbuf_free(&w);
        e[1].cookie = 90;
        st.from = 50;
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), -EBADMSG);
        cm_wbuf_free(&w);
        e[1].cookie = 200;
        /* A piece of a regular file. */
        st.mode = S_IFREG | 0644;
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), -EBADMSG);
        cm_wbuf_free(&w);
        /* Version 2 saying "complete" (from 0, more 0) is not canonical. */
        st.mode = S_IFDIR | 0755;
        st.from = 0;
        st.more = true;
        cm_wbuf_init(&w);
        lp_rs_state_encode(&w, &st);
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), 0);
        lp_rs_state_free(&back);
        /* from 0, more 1, nentries 2, the first id: more -> 0 */
        pm = memmem(w.p, w.len, "\x00\x01\x02\x0a", 4);
        CHECK(pm);
        pm[1] = 0;
        CHECK_EQ(lp_rs_state_decode(w.p, w.len, &back), -EBADMSG);
        cm_wbuf_free(&w);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("repl");
        TCase *tc = tcase_create("repl");

        cm_log_init("check_repl", LOG_WARNING, CM_LOG_STDERR);
        memset(KEY, 0x5a, sizeof(KEY));
        tcase_add_test(tc, t_repl_tree);
        tcase_add_test(tc, t_repl_only_newer);
        tcase_add_test(tc, t_repl_delete_rename);
        tcase_add_test(tc, t_repl_big_sparse);
        tcase_add_test(tc, t_repl_bad_input);
        tcase_add_test(tc, t_repl_repair);
        tcase_add_test(tc, t_repl_changes_wait);
        tcase_add_test(tc, t_place_resolve);
        tcase_add_test(tc, t_place_policy);
        tcase_add_test(tc, t_repl_big_dir);
        tcase_add_test(tc, t_rs_pieces);
        suite_add_tcase(s, tc);
        return tu_run_suite(s);
}
