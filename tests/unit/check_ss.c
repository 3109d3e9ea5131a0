/*
 * check_ss.c -- the storage site (storage/): a real ss_srv on a libuv loop
 * in a thread of the test process, real lp_clients over TCP on 127.0.0.1
 * (port 0 only), every operation of docs/protocol.md and its errors,
 * write sessions, durability across restarts, replay and rebuild of the
 * SQLite index from the segments, large sparse files, limits; plus the
 * real locus-storaged binary (readiness, port/pid files, the lock,
 * registration with a fake CSS, SIGTERM, --rebuild).
 *
 * Errors are compared as they travel: the wire carries a status code
 * (lp_status.h), and expect_err() compares with what the expected errno
 * becomes after that trip (every errno an operation answers has its own
 * code); the storage site also names the exact errno at the start of the
 * answer's message, which expect_err() checks too.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "cm.h"
#include "dsm.h"
#include "dsm_faultio.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "ss_cs.h"
#include "ss_ct.h"
#include "ss_db.h"
#include "ss_srv.h"
#include "ss_vfs.h"
#include "testutil.h"
#include "tsrv.h"

/* Built with AddressSanitizer (gcc, or clang): LeakSanitizer is there. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif
#if TU_ASAN
#include <sanitizer/lsan_interface.h>
#endif


#define WAIT_MS 10000
#define ROOT 1u
#define GiB (1ull << 30)

/* snprintf for paths: a path that does not fit fails the test. */
__attribute__((format(printf, 3, 4)))
static void pathf(char *buf, size_t cap, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, cap, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= cap)
                ck_abort_msg("path too long: %s", buf);
}

static uint8_t KEY[LP_KEY_SIZE];

/* ---- the server under test ------------------------------------------------------------ */

static void opts_for(struct ss_opts *o, const char *data)
{
        tsrv_opts(o, data, KEY, 1);
}

static const char *data_dir(void)
{
        static char d[PATH_MAX];

        pathf(d, sizeof(d), "%s/data", tu_tmpdir());
        return d;
}

/* Start a server with options o (tsrv.h). */
static struct tsrv *tsrv_start_opts(const struct ss_opts *o)
{
        struct tsrv *t = NULL;
        int r = tsrv_new(o, &t);

        if (r < 0)
                ck_abort_msg("ss_srv_new failed: %s", strerror(-r));
        return t;
}

static struct tsrv *tsrv_start(void)
{
        struct ss_opts o;

        opts_for(&o, data_dir());
        return tsrv_start_opts(&o);
}

/* ---- clients ------------------------------------------------------------------------------ */

static struct lp_client *cl_connect(uint16_t port, uint64_t site)
{
        struct lp_client *c = NULL;
        int r = lp_client_connect("127.0.0.1", port, KEY, site, WAIT_MS, &c);

        if (r < 0)
                ck_abort_msg("connect to port %u: %s", port, strerror(-r));
        return c;
}

/* The last answer received (released by the next call). */
static struct lp_fs_resp A;
static bool A_live;

static struct lp_fs_req Q(uint32_t op)
{
        struct lp_fs_req q = { .op = op, .fg = 1 };

        q.cred.uid = 1000;
        q.cred.gid = 1000;
        q.cred.umask = 022;
        return q;
}

static int raw_call(struct lp_client *c, uint16_t type, const void *buf, size_t len)
{
        void *ans = NULL;
        size_t alen = 0;
        uint16_t rtype;
        int r;

        if (A_live) {
                lp_fs_resp_release(&A);
                A_live = false;
        }
        r = lp_client_call(c, type, buf, len, WAIT_MS, &rtype, &ans, &alen);
        if (r < 0)
                ck_abort_msg("call: %s", strerror(-r));
        if (rtype == LP_MSG_STATUS) {
                int code;

                CHECK(lp_status_unpack(ans, alen, &code, NULL) == 0);
                free(ans);
                memset(&A, 0, sizeof(A));
                A.status = lp_status_to_errno(code);
                return -1000 - code;    /* a Status frame: the caller checks */
        }
        CHECK_EQ(rtype, LP_MSG_FS_RESP);
        r = lp_fs_resp_decode(ans, alen, &A);
        free(ans);
        CHECK(r == 0);
        A_live = true;
        return A.status;
}

static int call(struct lp_client *c, const struct lp_fs_req *q)
{
        uint8_t *buf;
        size_t len;
        int r;

        CHECK(lp_fs_req_encode(q, &buf, &len) == 0);
        r = raw_call(c, LP_MSG_FS_REQ, buf, len);
        free(buf);
        return r;
}

/* What an errno looks like after a trip over the wire. */
static int wire(int err)
{
        return lp_status_to_errno(lp_errno_to_status(err));
}

#define EXPECT_ERR(expr, e) expect_err((expr), (e), __FILE__, __LINE__)

static void expect_err(int got, int want, const char *file, int line)
{
        const char *name = strerrorname_np(-want);

        if (got != wire(want))
                ck_abort_msg("%s:%d: got %d (%s), expected %s (wire %d); message: %s", file, line, got,
                             got < 0 ? strerrorname_np(-got) : "OK", name, wire(want),
                             A.message ? A.message : "(none)");
        if (!A.message || strncmp(A.message, name, strlen(name)) != 0 || A.message[strlen(name)] != ':')
                ck_abort_msg("%s:%d: error message '%s' does not name %s", file, line,
                             A.message ? A.message : "(none)", name);
}

#define OK(expr) \
        do { \
                int r_ = (expr); \
                if (r_ != 0) \
                        ck_abort_msg("%s:%d: %s failed: %d %s", __FILE__, __LINE__, #expr, r_, \
                                     A.message ? A.message : ""); \
        } while (0)

static struct lp_client *C;     /* the default client (site 100) */

static void set_name(struct lp_fs_req *q, const char *name)
{
        q->name = (const uint8_t *)name;
        q->namelen = strlen(name);
}

static int do_mkdir(uint64_t parent, const char *name, uint32_t mode, uint64_t *ino)
{
        struct lp_fs_req q = Q(LP_FS_MKDIR);
        int r;

        q.parent = parent;
        set_name(&q, name);
        q.mode = mode;
        r = call(C, &q);
        if (r == 0 && ino)
                *ino = A.attr.ino;
        return r;
}

static uint64_t mkdir_ok(uint64_t parent, const char *name)
{
        uint64_t ino = 0;

        OK(do_mkdir(parent, name, 0755, &ino));
        CHECK(S_ISDIR(A.attr.mode));
        return ino;
}

/* CREATE; *sess gets the session (0 if none). */
static int do_create(uint64_t parent, const char *name, uint32_t flags, uint32_t mode, uint64_t *ino,
                     uint64_t *sess)
{
        struct lp_fs_req q = Q(LP_FS_CREATE);
        int r;

        q.parent = parent;
        set_name(&q, name);
        q.flags = flags;
        q.mode = mode;
        r = call(C, &q);
        if (r == 0) {
                if (ino)
                        *ino = A.attr.ino;
                if (sess)
                        *sess = A.session;
        }
        return r;
}

static int do_write(struct lp_client *c, uint64_t ino, uint64_t sess, uint64_t off, const void *data, size_t len)
{
        struct lp_fs_req q = Q(LP_FS_WRITE);

        q.ino = ino;
        q.session = sess;
        q.offset = off;
        q.data = data;
        q.datalen = len;
        return call(c, &q);
}

static int do_commit(struct lp_client *c, uint64_t ino, uint64_t sess, uint32_t flags)
{
        struct lp_fs_req q = Q(LP_FS_COMMIT);

        q.ino = ino;
        q.session = sess;
        q.flags = flags;
        return call(c, &q);
}

static int do_read(struct lp_client *c, uint64_t ino, uint64_t sess, uint64_t off, uint64_t len)
{
        struct lp_fs_req q = Q(LP_FS_READ);

        q.ino = ino;
        q.session = sess;
        q.offset = off;
        q.length = len;
        return call(c, &q);
}

static int do_getattr(uint64_t ino, uint64_t sess)
{
        struct lp_fs_req q = Q(LP_FS_GETATTR);

        q.ino = ino;
        q.session = sess;
        return call(C, &q);
}

static int do_lookup(uint64_t parent, const char *name)
{
        struct lp_fs_req q = Q(LP_FS_LOOKUP);

        q.parent = parent;
        set_name(&q, name);
        return call(C, &q);
}

static uint64_t lookup_ino(uint64_t parent, const char *name)
{
        OK(do_lookup(parent, name));
        return A.attr.ino;
}

static int do_unlink(uint64_t parent, const char *name)
{
        struct lp_fs_req q = Q(LP_FS_UNLINK);

        q.parent = parent;
        set_name(&q, name);
        return call(C, &q);
}

static int do_rmdir(uint64_t parent, const char *name)
{
        struct lp_fs_req q = Q(LP_FS_RMDIR);

        q.parent = parent;
        set_name(&q, name);
        return call(C, &q);
}

static int do_rename(uint64_t parent, const char *name, uint64_t newparent, const char *newname, uint32_t flags)
{
        struct lp_fs_req q = Q(LP_FS_RENAME);

        q.parent = parent;
        set_name(&q, name);
        q.newparent = newparent;
        q.newname = (const uint8_t *)newname;
        q.newnamelen = strlen(newname);
        q.flags = flags;
        return call(C, &q);
}

static int do_setattr_size(uint64_t ino, uint64_t sess, uint64_t size)
{
        struct lp_fs_req q = Q(LP_FS_SETATTR);

        q.ino = ino;
        q.session = sess;
        q.valid = LP_FS_SET_SIZE;
        q.size = size;
        return call(C, &q);
}

static int do_fallocate(uint64_t ino, uint64_t sess, uint32_t mode, uint64_t off, uint64_t len)
{
        struct lp_fs_req q = Q(LP_FS_FALLOCATE);

        q.ino = ino;
        q.session = sess;
        q.flags = mode;
        q.offset = off;
        q.length = len;
        return call(C, &q);
}

static int do_lseek(uint64_t ino, uint64_t sess, uint64_t off, uint32_t whence)
{
        struct lp_fs_req q = Q(LP_FS_LSEEK);

        q.ino = ino;
        q.session = sess;
        q.offset = off;
        q.whence = whence;
        return call(C, &q);
}

/* A file with content, committed and closed. */
static uint64_t make_file(uint64_t parent, const char *name, const void *data, size_t len)
{
        uint64_t ino, sess;

        OK(do_create(parent, name, O_CREAT | O_WRONLY, 0644, &ino, &sess));
        CHECK(sess != 0);
        if (len)
                OK(do_write(C, ino, sess, 0, data, len));
        OK(do_commit(C, ino, sess, LP_FS_COMMIT_END));
        return ino;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
        for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                p[i] = (uint8_t)(seed >> 56);
        }
}

static bool all_zero(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

static void setup(void)
{
        char path[PATH_MAX];

        pathf(path, sizeof(path), "%s/key", tu_tmpdir());
        CHECK(lp_key_generate(path) == 0);
        CHECK(lp_key_load(path, KEY) == 0);
        cm_log_init("check_ss", getenv("SS_TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT, CM_LOG_STDERR);
        A_live = false;
}

/* ---- a snapshot of everything reachable, through the protocol ---------------------------------- */

struct sbuf {
        char *p;
        size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
                va_end(ap);
                CHECK(n >= 0);
                if (b->p && b->len + (size_t)n < b->cap) {
                        b->len += (size_t)n;
                        return;
                }
                b->cap = (b->cap + (size_t)n + 1) * 2;
                b->p = realloc(b->p, b->cap);
                CHECK(b->p);
        }
}

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001b3ull;
        return h;
}

static void dump_inode(struct sbuf *b, uint64_t ino, const char *path, int depth);

static void dump_dir(struct sbuf *b, uint64_t dir, const char *path, int depth)
{
        uint64_t cookie = 0;
        char names[256][256];
        uint64_t inos[256];
        size_t n = 0;

        for (;;) {
                struct lp_fs_req q = Q(LP_FS_READDIR);
                bool eof;

                q.ino = dir;
                q.offset = cookie;
                q.length = 7;
                OK(call(C, &q));
                for (size_t i = 0; i < A.nentries; i++) {
                        const struct lp_fs_dirent *e = &A.entries[i];

                        cookie = e->next;
                        if ((e->namelen == 1 && e->name[0] == '.') ||
                            (e->namelen == 2 && e->name[0] == '.' && e->name[1] == '.'))
                                continue;
                        CHECK(n < 256);
                        memcpy(names[n], e->name, e->namelen);
                        names[n][e->namelen] = 0;
                        inos[n++] = e->ino;
                }
                eof = A.eof;
                if (eof)
                        break;
        }
        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX];

                pathf(p, sizeof(p), "%s/%s", path, names[i]);
                dump_inode(b, inos[i], p, depth + 1);
        }
}

static void dump_inode(struct sbuf *b, uint64_t ino, const char *path, int depth)
{
        struct lp_fs_attr at;
        struct lp_fs_req q;
        uint64_t h = 0xcbf29ce484222325ull;

        CHECK(depth < 32);
        OK(do_getattr(ino, 0));
        at = A.attr;
        sb_printf(b, "%s ino=%llx mode=%o nlink=%u uid=%u gid=%u size=%llu blocks=%llu rdev=%llu "
                  "mtime=%lld.%u ctime=%lld.%u gen=%llu ver=%llu",
                  path, (unsigned long long)at.ino, at.mode, at.nlink, at.uid, at.gid, (unsigned long long)at.size,
                  (unsigned long long)at.blocks, (unsigned long long)at.rdev, (long long)at.mtime.sec,
                  at.mtime.nsec, (long long)at.ctime.sec, at.ctime.nsec, (unsigned long long)at.generation,
                  (unsigned long long)at.version);
        if (S_ISREG(at.mode)) {
                for (uint64_t off = 0; off < at.size && off < (64u << 20);) {
                        OK(do_read(C, ino, 0, off, 1u << 20));
                        CHECK(A.datalen > 0);
                        h = hash_bytes(h, A.data, A.datalen);
                        off += A.datalen;
                }
                sb_printf(b, " data=%016llx", (unsigned long long)h);
        } else if (S_ISLNK(at.mode)) {
                q = Q(LP_FS_READLINK);
                q.ino = ino;
                OK(call(C, &q));
                sb_printf(b, " target=%.*s", (int)A.datalen, (const char *)A.data);
        }
        q = Q(LP_FS_LISTXATTR);
        q.ino = ino;
        q.length = 65536;
        OK(call(C, &q));
        if (A.datalen) {
                char list[65536];
                size_t len = A.datalen;

                memcpy(list, A.data, len);
                for (size_t i = 0; i < len; i += strlen(list + i) + 1) {
                        q = Q(LP_FS_GETXATTR);
                        q.ino = ino;
                        set_name(&q, list + i);
                        q.length = 65536;
                        OK(call(C, &q));
                        sb_printf(b, " x:%s=%016llx", list + i,
                                  (unsigned long long)hash_bytes(0xcbf29ce484222325ull, A.data, A.datalen));
                }
        }
        sb_printf(b, "\n");
        if (S_ISDIR(at.mode))
                dump_dir(b, ino, path, depth);
}

static char *snapshot(void)
{
        struct sbuf b = { 0 };

        dump_inode(&b, ROOT, "", 0);
        return b.p;
}

/* The SQLite rows of a container, as an image (exact row equality). */
static int img_put(void *ctx, const void *buf, size_t len)
{
        struct sbuf *b = ctx;

        if (b->len + len >= b->cap) {
                b->cap = (b->len + len + 1) * 2;
                b->p = realloc(b->p, b->cap);
                CHECK(b->p);
        }
        memcpy(b->p + b->len, buf, len);
        b->len += len;
        return 0;
}

static struct sbuf db_image(uint32_t fg)
{
        char path[PATH_MAX];
        struct ss_db *db;
        struct sbuf b = { 0 };

        pathf(path, sizeof(path), "%s/fg-%u/meta.sqlite", data_dir(), fg);
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_cs_dump_image(db, img_put, &b) == 0);
        ss_db_close(db);
        return b;
}

static uint64_t db_meta(uint32_t fg, const char *key)
{
        char path[PATH_MAX];
        struct ss_db *db;
        uint64_t v = 0;

        pathf(path, sizeof(path), "%s/fg-%u/meta.sqlite", data_dir(), fg);
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_db_meta_get(db, key, &v) == 0);
        ss_db_close(db);
        return v;
}

static bool sb_equal(const struct sbuf *a, const struct sbuf *b)
{
        return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

/* A varied tree: dirs, files with data (one sparse, one > 4 GiB), a
 * symlink, hard links, xattrs, a fifo, a setgid dir. */
static void build_tree(void)
{
        uint8_t buf[20000];
        uint64_t d1, d2, f1, big, sess;
        struct lp_fs_req q;

        fill(buf, sizeof(buf), 1);
        d1 = mkdir_ok(ROOT, "d1");
        d2 = mkdir_ok(d1, "d2");
        f1 = make_file(d1, "f1", buf, sizeof(buf));
        (void)make_file(d2, "small", "hello", 5);
        (void)make_file(ROOT, "empty", NULL, 0);
        OK(do_create(ROOT, "big", O_CREAT | O_RDWR, 0600, &big, &sess));
        OK(do_write(C, big, sess, 5 * GiB + 123, buf, 9000));
        OK(do_write(C, big, sess, 4096, buf, 4096));
        OK(do_commit(C, big, sess, LP_FS_COMMIT_END));
        q = Q(LP_FS_SYMLINK);
        q.parent = d1;
        set_name(&q, "link");
        q.data = (const uint8_t *)"../big";
        q.datalen = 6;
        OK(call(C, &q));
        q = Q(LP_FS_LINK);
        q.ino = f1;
        q.newparent = d2;
        q.newname = (const uint8_t *)"f1-hard";
        q.newnamelen = 7;
        OK(call(C, &q));
        q = Q(LP_FS_SETXATTR);
        q.ino = f1;
        set_name(&q, "user.colour");
        q.data = (const uint8_t *)"blue";
        q.datalen = 4;
        OK(call(C, &q));
        q = Q(LP_FS_SETXATTR);
        q.ino = d2;
        set_name(&q, "user.locus.copies");
        q.data = (const uint8_t *)"2";
        q.datalen = 1;
        OK(call(C, &q));
        q = Q(LP_FS_MKNOD);
        q.parent = ROOT;
        set_name(&q, "fifo");
        q.mode = S_IFIFO | 0640;
        OK(call(C, &q));
        q = Q(LP_FS_MKDIR);
        q.parent = ROOT;
        set_name(&q, "sgid");
        q.mode = 02775;
        OK(call(C, &q));
        OK(do_rename(d1, "f1", ROOT, "f1-moved", 0));
        OK(do_unlink(d2, "small"));
        CHECK(A.orphan);
        q = Q(LP_FS_FORGET_ORPHAN);     /* as a mount does when nothing holds it open */
        q.ino = A.ino;
        OK(call(C, &q));
}

/* ---- tests: names and attributes ---------------------------------------------------------- */

START_TEST(t_root_and_lookup)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint64_t f;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(A.attr.ino, ROOT);
        CHECK_EQ(A.attr.mode, 040755);
        CHECK_EQ(A.attr.uid, 0);
        CHECK_EQ(A.attr.gid, 0);
        CHECK_EQ(A.attr.nlink, 2);
        CHECK(A.attr.generation != 0);
        CHECK_EQ(A.attr.version, 0);           /* the empty vector (docs/replication.md) */
        EXPECT_ERR(do_lookup(ROOT, "nothing"), -ENOENT);
        f = make_file(ROOT, "file", "x", 1);
        CHECK_EQ(f, (1ull << 40) | 2);  /* container 1, counter from 2 */
        EXPECT_ERR(do_lookup(f, "x"), -ENOTDIR);
        CHECK_EQ(lookup_ino(ROOT, "file"), f);
        CHECK_EQ(lookup_ino(ROOT, "."), ROOT);
        CHECK_EQ(lookup_ino(ROOT, ".."), ROOT);
        EXPECT_ERR(do_lookup(ROOT, "a/b"), -EINVAL);
        EXPECT_ERR(do_getattr(12345, 0), -ENOENT);
        /* a file group this site does not hold */
        q = Q(LP_FS_GETATTR);
        q.fg = 9;
        q.ino = ROOT;
        EXPECT_ERR(call(C, &q), -ESTALE);
        /* NOP */
        q = Q(LP_FS_NOP);
        OK(call(C, &q));
        /* statfs */
        q = Q(LP_FS_STATFS);
        OK(call(C, &q));
        CHECK(A.has_statfs);
        CHECK(A.statfs.blocks > 0 && A.statfs.bsize > 0 && A.statfs.bavail <= A.statfs.bfree);
        CHECK_EQ(A.statfs.namemax, 255);
        CHECK_EQ(A.statfs.files - A.statfs.ffree, 2);   /* root + file */
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_create_posix)
{
        struct tsrv *t;
        struct lp_fs_req q;
        struct lp_fs_attr root0, at;
        uint64_t d, sg, sub, f, sess;
        char longname[300];

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        OK(do_getattr(ROOT, 0));
        root0 = A.attr;
        /* ownership from cred, umask */
        q = Q(LP_FS_MKDIR);
        q.parent = ROOT;
        set_name(&q, "d");
        q.mode = 0777;
        q.cred.uid = 1234;
        q.cred.gid = 567;
        q.cred.umask = 027;
        OK(call(C, &q));
        d = A.attr.ino;
        CHECK_EQ(A.attr.mode, S_IFDIR | 0750);
        CHECK_EQ(A.attr.uid, 1234);
        CHECK_EQ(A.attr.gid, 567);
        CHECK_EQ(A.attr.nlink, 2);
        CHECK_EQ(A.attr.size, 4096);
        at = A.attr;
        CHECK(at.mtime.sec == at.ctime.sec && at.mtime.nsec == at.ctime.nsec);
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(A.attr.nlink, 3);
        CHECK(A.attr.mtime.sec > root0.mtime.sec ||
              (A.attr.mtime.sec == root0.mtime.sec && A.attr.mtime.nsec > root0.mtime.nsec));
        /* its entries changed: one update counted at this site */
        CHECK_EQ(A.attr.version, root0.version + 1);
        EXPECT_ERR(do_mkdir(ROOT, "d", 0755, NULL), -EEXIST);
        EXPECT_ERR(do_mkdir(ROOT, ".", 0755, NULL), -EINVAL);
        EXPECT_ERR(do_mkdir(ROOT, "..", 0755, NULL), -EINVAL);
        EXPECT_ERR(do_mkdir(12345, "x", 0755, NULL), -ENOENT);
        memset(longname, 'n', 255);
        longname[255] = 0;
        OK(do_mkdir(ROOT, longname, 0755, NULL));       /* 255 bytes: fine */
        /* setgid directory: group inherited, subdirectories inherit the bit */
        q = Q(LP_FS_MKDIR);
        q.parent = ROOT;
        set_name(&q, "sg");
        q.mode = 02775;
        q.cred.gid = 4242;
        q.cred.umask = 0;
        OK(call(C, &q));
        sg = A.attr.ino;
        CHECK_EQ(A.attr.mode, S_IFDIR | 02775);
        OK(do_mkdir(sg, "sub", 0755, &sub));
        CHECK_EQ(A.attr.gid, 4242);
        CHECK(A.attr.mode & S_ISGID);
        OK(do_create(sg, "file", O_CREAT | O_WRONLY, 0664, &f, &sess));
        CHECK_EQ(A.attr.gid, 4242);
        CHECK_EQ(A.attr.mode, S_IFREG | 0644);          /* umask 022, no setgid bit */
        CHECK(sess != 0);
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        /* CREATE on an existing file: O_EXCL refuses, else it opens */
        EXPECT_ERR(do_create(sg, "file", O_CREAT | O_EXCL | O_WRONLY, 0644, NULL, NULL), -EEXIST);
        OK(do_create(sg, "file", O_CREAT | O_RDONLY, 0644, NULL, &sess));
        CHECK_EQ(sess, 0);
        CHECK_EQ(A.attr.ino, f);
        EXPECT_ERR(do_create(ROOT, "d", O_CREAT | O_WRONLY, 0644, NULL, NULL), -EISDIR);
        EXPECT_ERR(do_create(ROOT, "..", O_CREAT | O_WRONLY, 0644, NULL, NULL), -EINVAL);
        /* mknod */
        q = Q(LP_FS_MKNOD);
        q.parent = ROOT;
        set_name(&q, "fifo");
        q.mode = S_IFIFO | 0666;
        OK(call(C, &q));
        CHECK_EQ(A.attr.mode, S_IFIFO | 0644);
        q = Q(LP_FS_MKNOD);
        q.parent = ROOT;
        set_name(&q, "chr");
        q.mode = S_IFCHR | 0600;
        q.rdev = 0x0501;
        OK(call(C, &q));
        CHECK_EQ(A.attr.rdev, 0x0501);
        CHECK_EQ(A.attr.mode, S_IFCHR | 0600);
        q = Q(LP_FS_MKNOD);
        q.parent = ROOT;
        set_name(&q, "plain");
        q.mode = 0644;
        OK(call(C, &q));
        CHECK(S_ISREG(A.attr.mode));
        q = Q(LP_FS_MKNOD);
        q.parent = ROOT;
        set_name(&q, "dir");
        q.mode = S_IFDIR | 0755;
        EXPECT_ERR(call(C, &q), -EINVAL);
        q.mode = S_IFLNK | 0777;
        EXPECT_ERR(call(C, &q), -EINVAL);
        /* open */
        q = Q(LP_FS_OPEN);
        q.ino = d;
        q.flags = O_WRONLY;
        EXPECT_ERR(call(C, &q), -EISDIR);
        q.flags = O_RDONLY | O_DIRECTORY;
        OK(call(C, &q));
        CHECK_EQ(A.session, 0);
        q.ino = 999999;
        EXPECT_ERR(call(C, &q), -ENOENT);
        (void)sub;
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_setattr)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint8_t buf[10000];
        uint64_t f, d, v0, sess;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        fill(buf, sizeof(buf), 7);
        f = make_file(ROOT, "f", buf, sizeof(buf));
        d = mkdir_ok(ROOT, "d");
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.size, 10000);
        CHECK_EQ(A.attr.blocks, 3 * 8);
        v0 = A.attr.version;
        /* shrink: the tail of the last page is zero afterwards */
        OK(do_setattr_size(f, 0, 5000));
        CHECK_EQ(A.attr.size, 5000);
        CHECK(A.attr.version > v0);
        CHECK_EQ(A.attr.blocks, 2 * 8);
        v0 = A.attr.version;
        OK(do_setattr_size(f, 0, 9000));
        OK(do_read(C, f, 0, 0, 20000));
        CHECK_EQ(A.datalen, 9000);
        CHECK(!memcmp(A.data, buf, 5000));
        CHECK(all_zero(A.data + 5000, 4000));
        /* mode, owner, times */
        q = Q(LP_FS_SETATTR);
        q.ino = f;
        q.valid = LP_FS_SET_MODE | LP_FS_SET_UID | LP_FS_SET_GID;
        q.mode = S_IFDIR | 04711;       /* the type bits are ignored */
        q.uid = 7;
        q.gid = 8;
        OK(call(C, &q));
        CHECK_EQ(A.attr.mode, S_IFREG | 04711);
        CHECK_EQ(A.attr.uid, 7);
        CHECK_EQ(A.attr.gid, 8);
        v0 = A.attr.version;
        q = Q(LP_FS_SETATTR);
        q.ino = f;
        q.valid = LP_FS_SET_ATIME | LP_FS_SET_MTIME;
        q.atime = (struct lp_fs_time){ 1000000, 5 };
        q.mtime = (struct lp_fs_time){ -12345, 999999999 };
        OK(call(C, &q));
        CHECK_EQ(A.attr.atime.sec, 1000000);
        CHECK_EQ(A.attr.atime.nsec, 5);
        CHECK_EQ(A.attr.mtime.sec, -12345);
        CHECK_EQ(A.attr.mtime.nsec, 999999999);
        CHECK(A.attr.ctime.sec > 1000000);
        CHECK_EQ(A.attr.version, v0 + 1);       /* every commit that changes the row counts */
        q.valid = LP_FS_SET_MTIME_NOW | LP_FS_SET_MTIME;
        OK(call(C, &q));
        CHECK(A.attr.mtime.sec > 1000000);
        q.valid = LP_FS_SET_MTIME;
        q.mtime.nsec = 1000000000u;     /* refused by the protocol decoder already */
        EXPECT_ERR(call(C, &q), -EBADMSG);
        EXPECT_ERR(do_setattr_size(d, 0, 0), -EISDIR);
        EXPECT_ERR(do_setattr_size(f, 0, (uint64_t)INT64_MAX + 1), -EFBIG);
        EXPECT_ERR(do_setattr_size(999999, 0, 0), -ENOENT);
        /* size inside a session: staged until commit */
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_WRONLY;
        OK(call(C, &q));
        sess = A.session;
        CHECK(sess);
        OK(do_setattr_size(f, sess, 100));
        CHECK_EQ(A.attr.size, 100);
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.size, 9000);
        /* an explicit mtime given inside the session survives the commit */
        q = Q(LP_FS_SETATTR);
        q.ino = f;
        q.session = sess;
        q.valid = LP_FS_SET_MTIME;
        q.mtime = (struct lp_fs_time){ 777, 7 };
        OK(call(C, &q));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        CHECK_EQ(A.attr.size, 100);
        CHECK_EQ(A.attr.mtime.sec, 777);
        CHECK_EQ(A.attr.mtime.nsec, 7);
        /* O_TRUNC truncates in the new session only */
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_WRONLY | O_TRUNC;
        OK(call(C, &q));
        sess = A.session;
        CHECK_EQ(A.attr.size, 0);
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.size, 100);
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        CHECK_EQ(A.attr.size, 0);
        CHECK_EQ(A.attr.blocks, 0);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_link_unlink_orphan)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint64_t f, d, f2;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        f = make_file(ROOT, "f", "orphan data", 11);
        d = mkdir_ok(ROOT, "d");
        q = Q(LP_FS_LINK);
        q.ino = f;
        q.newparent = d;
        q.newname = (const uint8_t *)"f2";
        q.newnamelen = 2;
        OK(call(C, &q));
        CHECK_EQ(A.attr.nlink, 2);
        EXPECT_ERR(call(C, &q), -EEXIST);
        q.ino = d;
        q.newname = (const uint8_t *)"dlink";
        q.newnamelen = 5;
        EXPECT_ERR(call(C, &q), -EPERM);
        q.ino = f;
        q.newparent = f;
        EXPECT_ERR(call(C, &q), -ENOTDIR);
        EXPECT_ERR(do_unlink(ROOT, "d"), -EISDIR);
        EXPECT_ERR(do_unlink(ROOT, "nothing"), -ENOENT);
        EXPECT_ERR(do_unlink(f, "x"), -ENOTDIR);
        OK(do_unlink(ROOT, "f"));
        CHECK_EQ(A.ino, f);
        CHECK(!A.orphan);
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.nlink, 1);
        OK(do_unlink(d, "f2"));
        CHECK_EQ(A.ino, f);
        CHECK(A.orphan);
        /* an orphan keeps its data until FORGET_ORPHAN */
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.nlink, 0);
        OK(do_read(C, f, 0, 0, 100));
        CHECK_EQ(A.datalen, 11);
        CHECK(!memcmp(A.data, "orphan data", 11));
        q = Q(LP_FS_LINK);      /* no name left: cannot be linked again */
        q.ino = f;
        q.newparent = ROOT;
        q.newname = (const uint8_t *)"back";
        q.newnamelen = 4;
        EXPECT_ERR(call(C, &q), -ENOENT);
        q = Q(LP_FS_FORGET_ORPHAN);
        q.ino = f;
        OK(call(C, &q));
        EXPECT_ERR(do_getattr(f, 0), -ENOENT);
        OK(call(C, &q));        /* idempotent */
        /* a linked file is not forgotten */
        f2 = make_file(ROOT, "kept", "k", 1);
        q.ino = f2;
        OK(call(C, &q));
        OK(do_getattr(f2, 0));
        /* an orphan left behind is freed at the next start */
        f2 = make_file(ROOT, "left", "left behind", 11);
        OK(do_unlink(ROOT, "left"));
        CHECK(A.orphan);
        OK(do_getattr(f2, 0));
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        EXPECT_ERR(do_getattr(f2, 0), -ENOENT);
        OK(do_read(C, lookup_ino(ROOT, "kept"), 0, 0, 10));
        CHECK_EQ(A.datalen, 1);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_rmdir)
{
        struct tsrv *t;
        uint64_t d;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        d = mkdir_ok(ROOT, "d");
        (void)mkdir_ok(d, "sub");
        (void)make_file(ROOT, "f", "x", 1);
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(A.attr.nlink, 3);
        OK(do_getattr(d, 0));
        CHECK_EQ(A.attr.nlink, 3);
        EXPECT_ERR(do_rmdir(ROOT, "d"), -ENOTEMPTY);
        EXPECT_ERR(do_rmdir(ROOT, "f"), -ENOTDIR);
        EXPECT_ERR(do_rmdir(ROOT, "none"), -ENOENT);
        EXPECT_ERR(do_rmdir(ROOT, "."), -EINVAL);
        EXPECT_ERR(do_rmdir(d, ".."), -ENOTEMPTY);
        OK(do_rmdir(d, "sub"));
        OK(do_getattr(d, 0));
        CHECK_EQ(A.attr.nlink, 2);
        OK(do_rmdir(ROOT, "d"));
        CHECK_EQ(A.ino, d);
        EXPECT_ERR(do_getattr(d, 0), -ENOENT);
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(A.attr.nlink, 2);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_rename)
{
        struct tsrv *t;
        uint64_t a, b, c, x, f, g, h1, e1, e2;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        a = mkdir_ok(ROOT, "a");
        b = mkdir_ok(a, "b");
        c = mkdir_ok(b, "c");
        x = mkdir_ok(ROOT, "x");
        f = make_file(ROOT, "f", "F", 1);
        g = make_file(ROOT, "g", "G", 1);
        /* plain renames */
        OK(do_rename(ROOT, "f", ROOT, "f2", 0));
        CHECK_EQ(lookup_ino(ROOT, "f2"), f);
        EXPECT_ERR(do_lookup(ROOT, "f"), -ENOENT);
        OK(do_rename(ROOT, "f2", x, "f", 0));
        CHECK_EQ(lookup_ino(x, "f"), f);
        OK(do_rename(x, "f", ROOT, "f", 0));
        /* replacing a file: the old one is reported as an orphan */
        OK(do_rename(ROOT, "g", ROOT, "f", 0));
        CHECK_EQ(A.ino, f);
        CHECK(A.orphan);
        CHECK_EQ(lookup_ino(ROOT, "f"), g);
        EXPECT_ERR(do_lookup(ROOT, "g"), -ENOENT);
        (void)make_file(ROOT, "g", "G2", 2);
        EXPECT_ERR(do_rename(ROOT, "g", ROOT, "f", LP_FS_RENAME_NOREPLACE), -EEXIST);
        EXPECT_ERR(do_rename(ROOT, "g", ROOT, "f", LP_FS_RENAME_NOREPLACE | LP_FS_RENAME_EXCHANGE), -EINVAL);
        EXPECT_ERR(do_rename(ROOT, "g", ROOT, "f", 1u << 5), -EINVAL);
        EXPECT_ERR(do_rename(ROOT, "g", ROOT, "..", 0), -EINVAL);
        EXPECT_ERR(do_rename(ROOT, "nothing", ROOT, "y", 0), -ENOENT);
        EXPECT_ERR(do_rename(ROOT, "g", 424242, "y", 0), -ENOENT);
        /* into its own subtree */
        EXPECT_ERR(do_rename(ROOT, "a", c, "a", 0), -EINVAL);
        EXPECT_ERR(do_rename(ROOT, "a", a, "self", 0), -EINVAL);
        /* directory rules */
        EXPECT_ERR(do_rename(ROOT, "a", ROOT, "f", 0), -ENOTDIR);
        EXPECT_ERR(do_rename(ROOT, "f", ROOT, "x", 0), -EISDIR);
        (void)make_file(x, "inside", "i", 1);
        EXPECT_ERR(do_rename(ROOT, "a", ROOT, "x", 0), -ENOTEMPTY);
        OK(do_unlink(x, "inside"));
        /* a directory over an empty one; '..' follows, link counts too */
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(A.attr.nlink, 4);      /* a, x */
        OK(do_rename(a, "b", ROOT, "x", 0));
        CHECK_EQ(A.ino, x);
        CHECK(!A.orphan);
        EXPECT_ERR(do_getattr(x, 0), -ENOENT);
        CHECK_EQ(lookup_ino(ROOT, "x"), b);
        CHECK_EQ(lookup_ino(b, ".."), ROOT);
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(A.attr.nlink, 4);      /* a, x (= b) */
        OK(do_getattr(a, 0));
        CHECK_EQ(A.attr.nlink, 2);
        /* exchange a file and a directory across directories */
        e1 = make_file(a, "e1", "E", 1);
        e2 = mkdir_ok(b, "e2");
        OK(do_getattr(b, 0));
        CHECK_EQ(A.attr.nlink, 4);      /* c, e2 */
        OK(do_rename(a, "e1", b, "e2", LP_FS_RENAME_EXCHANGE));
        CHECK_EQ(lookup_ino(a, "e1"), e2);
        CHECK_EQ(lookup_ino(b, "e2"), e1);
        CHECK_EQ(lookup_ino(e2, ".."), a);
        OK(do_getattr(a, 0));
        CHECK_EQ(A.attr.nlink, 3);
        OK(do_getattr(b, 0));
        CHECK_EQ(A.attr.nlink, 3);
        EXPECT_ERR(do_rename(a, "e1", b, "nothing", LP_FS_RENAME_EXCHANGE), -ENOENT);
        /* exchanging a directory into its own subtree */
        EXPECT_ERR(do_rename(ROOT, "x", c, "zz", LP_FS_RENAME_NOREPLACE), -EINVAL);
        (void)make_file(c, "cf", "c", 1);
        EXPECT_ERR(do_rename(ROOT, "x", c, "cf", LP_FS_RENAME_EXCHANGE), -EINVAL);
        /* hard links of one file: renaming one over the other does nothing */
        h1 = make_file(ROOT, "h1", "h", 1);
        {
                struct lp_fs_req q = Q(LP_FS_LINK);

                q.ino = h1;
                q.newparent = ROOT;
                q.newname = (const uint8_t *)"h2";
                q.newnamelen = 2;
                OK(call(C, &q));
        }
        OK(do_rename(ROOT, "h1", ROOT, "h2", 0));
        CHECK_EQ(lookup_ino(ROOT, "h1"), h1);
        CHECK_EQ(lookup_ino(ROOT, "h2"), h1);
        CHECK_EQ(A.attr.nlink, 2);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_symlink)
{
        struct tsrv *t;
        struct lp_fs_req q;
        char target[4097];
        uint64_t l, f;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        memset(target, 't', sizeof(target));
        q = Q(LP_FS_SYMLINK);
        q.parent = ROOT;
        set_name(&q, "l");
        q.data = (const uint8_t *)target;
        q.datalen = 4095;
        OK(call(C, &q));
        l = A.attr.ino;
        CHECK_EQ(A.attr.mode, S_IFLNK | 0777);
        CHECK_EQ(A.attr.size, 4095);
        CHECK_EQ(A.attr.uid, 1000);
        set_name(&q, "l2");
        q.datalen = 4096;
        EXPECT_ERR(call(C, &q), -ENAMETOOLONG);
        q.datalen = 0;
        EXPECT_ERR(call(C, &q), -ENOENT);
        q.datalen = 3;
        set_name(&q, "l");
        EXPECT_ERR(call(C, &q), -EEXIST);
        q = Q(LP_FS_READLINK);
        q.ino = l;
        OK(call(C, &q));
        CHECK_EQ(A.datalen, 4095);
        CHECK(!memcmp(A.data, target, 4095));
        f = make_file(ROOT, "f", "x", 1);
        q.ino = f;
        EXPECT_ERR(call(C, &q), -EINVAL);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* The cookie an entry named n gets in a directory without collisions. */
static uint64_t name_cookie(const char *n)
{
        return ss_cs_cookie_hash((const uint8_t *)n, strlen(n));
}

START_TEST(t_readdir)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint64_t d, cookie = 0, ino[12], at_change = 0, prev = 2;
        char seen[64][16];
        const char *before = NULL, *after = NULL;
        size_t nseen = 0;
        bool eof = false;
        int pages = 0;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        d = mkdir_ok(ROOT, "d");
        for (int i = 0; i < 10; i++) {
                char n[8];

                snprintf(n, sizeof(n), "e%d", i);
                ino[i] = make_file(d, n, "x", 1);
        }
        q = Q(LP_FS_READDIR);
        q.ino = d;
        q.length = 4;
        OK(call(C, &q));
        CHECK_EQ(A.nentries, 4);
        CHECK(A.entries[0].namelen == 1 && A.entries[0].name[0] == '.');
        CHECK_EQ(A.entries[0].next, 1);
        CHECK_EQ(A.entries[0].ino, d);
        CHECK(A.entries[1].namelen == 2 && !memcmp(A.entries[1].name, "..", 2));
        CHECK_EQ(A.entries[1].next, 2);
        CHECK_EQ(A.entries[1].ino, ROOT);
        CHECK_EQ(A.entries[2].type, DT_REG);
        CHECK(!A.eof);
        /* Entries come in cookie order, and an entry's cookie is its name's
         * hash (no collision among these names): the same on every copy,
         * whatever the order of creation (docs/protocol.md, READDIR). */
        {
                uint64_t lo = UINT64_MAX;
                int first = -1;

                for (int i = 0; i < 10; i++) {
                        char n[8];

                        snprintf(n, sizeof(n), "e%d", i);
                        if (name_cookie(n) < lo) {
                                lo = name_cookie(n);
                                first = i;
                        }
                }
                CHECK_EQ(A.entries[2].ino, ino[first]);
                CHECK_EQ(A.entries[2].next, lo);
        }
        /* page through, changing the directory between pages: cookies stay valid */
        while (!eof) {
                q = Q(LP_FS_READDIR);
                q.ino = d;
                q.offset = cookie;
                q.length = 3;
                q.flags = 1;            /* plus */
                OK(call(C, &q));
                CHECK(A.nentries <= 3);
                for (size_t i = 0; i < A.nentries; i++) {
                        CHECK(A.entries[i].has_attr);
                        CHECK_EQ(A.entries[i].attr.ino, A.entries[i].ino);
                        CHECK(nseen < 64);
                        snprintf(seen[nseen++], 16, "%.*s", (int)A.entries[i].namelen,
                                 (const char *)A.entries[i].name);
                        cookie = A.entries[i].next;
                        if (nseen > 2) {
                                CHECK(cookie > prev);
                                CHECK_EQ(cookie, name_cookie(seen[nseen - 1]));
                        }
                        prev = cookie;
                }
                eof = A.eof;
                if (++pages == 2) {
                        /* one entry already returned and one not yet */
                        at_change = cookie;
                        for (int i = 0; i < 10; i++) {
                                static char n[10][8];

                                snprintf(n[i], sizeof(n[i]), "e%d", i);
                                if (name_cookie(n[i]) <= at_change && !before)
                                        before = n[i];
                                if (name_cookie(n[i]) > at_change && !after)
                                        after = n[i];
                        }
                        CHECK(before && after);
                        OK(do_unlink(d, before));
                        (void)make_file(d, "new", "n", 1);
                        OK(do_unlink(d, after));
                }
        }
        /* '.', '..', each of e0..e9 but the one removed ahead once, and
         * 'new' if its cookie lies ahead of the place the listing was at */
        CHECK(!strcmp(seen[0], "."));
        CHECK(!strcmp(seen[1], ".."));
        CHECK_EQ(nseen, 2 + 9 + (name_cookie("new") > at_change ? 1 : 0));
        for (int i = 0; i < 10; i++) {
                char n[8];
                int times = 0;

                snprintf(n, sizeof(n), "e%d", i);
                for (size_t k = 2; k < nseen; k++)
                        times += !strcmp(seen[k], n);
                CHECK_EQ(times, strcmp(n, after) ? 1 : 0);
        }
        /* '..' still to come is not eof */
        q = Q(LP_FS_READDIR);
        q.ino = mkdir_ok(ROOT, "empty");
        q.length = 1;
        OK(call(C, &q));
        CHECK_EQ(A.nentries, 1);
        CHECK(!A.eof);
        q.offset = 1;
        OK(call(C, &q));
        CHECK_EQ(A.nentries, 1);
        CHECK(A.eof);
        /* bounded, and errors */
        q = Q(LP_FS_READDIR);
        q.ino = d;
        q.length = 1000000;
        OK(call(C, &q));
        CHECK(A.nentries <= LP_FS_MAX_ENTRIES);
        CHECK(A.eof);
        q.ino = ino[1];
        EXPECT_ERR(call(C, &q), -ENOTDIR);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_xattr)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint8_t *big;
        uint64_t f;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        f = make_file(ROOT, "f", "x", 1);
        q = Q(LP_FS_SETXATTR);
        q.ino = f;
        set_name(&q, "user.a");
        q.data = (const uint8_t *)"value-a";
        q.datalen = 7;
        OK(call(C, &q));
        q.flags = LP_FS_XATTR_CREATE;
        EXPECT_ERR(call(C, &q), -EEXIST);
        set_name(&q, "user.b");
        q.flags = LP_FS_XATTR_REPLACE;
        EXPECT_ERR(call(C, &q), -ENODATA);
        q.flags = LP_FS_XATTR_CREATE;
        q.data = (const uint8_t *)"";
        q.datalen = 0;
        OK(call(C, &q));                /* an empty value is a value */
        q.flags = 0x10;
        EXPECT_ERR(call(C, &q), -EINVAL);
        q.flags = 0;
        set_name(&q, "");
        EXPECT_ERR(call(C, &q), -ERANGE);
        q = Q(LP_FS_GETXATTR);
        q.ino = f;
        set_name(&q, "user.a");
        q.length = 0;
        OK(call(C, &q));
        CHECK_EQ(A.value, 7);
        q.length = 6;
        EXPECT_ERR(call(C, &q), -ERANGE);
        q.length = 100;
        OK(call(C, &q));
        CHECK(A.datalen == 7 && !memcmp(A.data, "value-a", 7));
        set_name(&q, "user.b");
        OK(call(C, &q));
        CHECK_EQ(A.datalen, 0);
        set_name(&q, "user.none");
        EXPECT_ERR(call(C, &q), -ENODATA);
        q = Q(LP_FS_LISTXATTR);
        q.ino = f;
        OK(call(C, &q));
        CHECK_EQ(A.value, 14);
        q.length = 13;
        EXPECT_ERR(call(C, &q), -ERANGE);
        q.length = 14;
        OK(call(C, &q));
        CHECK(A.datalen == 14 && !memcmp(A.data, "user.a\0user.b\0", 14));
        q = Q(LP_FS_REMOVEXATTR);
        q.ino = f;
        set_name(&q, "user.a");
        OK(call(C, &q));
        EXPECT_ERR(call(C, &q), -ENODATA);
        /* value limits: 64 KiB is the most; the inode's total is bounded */
        big = calloc(1, 65537);
        q = Q(LP_FS_SETXATTR);
        q.ino = f;
        set_name(&q, "user.big");
        q.data = big;
        q.datalen = 65537;
        EXPECT_ERR(call(C, &q), -E2BIG);
        q.datalen = 65536;
        OK(call(C, &q));
        for (int i = 0; i < 20; i++) {
                char n[32];
                int r;

                snprintf(n, sizeof(n), "user.big%d", i);
                set_name(&q, n);
                r = call(C, &q);
                if (r != 0) {
                        EXPECT_ERR(r, -ENOSPC);
                        CHECK(i >= 14);
                        break;
                }
                CHECK(i < 16);
        }
        free(big);
        /* xattrs of a missing inode */
        q = Q(LP_FS_GETXATTR);
        q.ino = 55555;
        set_name(&q, "user.a");
        EXPECT_ERR(call(C, &q), -ENOENT);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* ---- tests: data and sessions ------------------------------------------------------------ */

START_TEST(t_session_visibility)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint8_t buf[10000];
        uint64_t f, sess, v1, g;
        struct lp_client *c2;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        fill(buf, sizeof(buf), 3);
        OK(do_create(ROOT, "f", O_CREAT | O_WRONLY, 0644, &f, &sess));
        CHECK(sess != 0);
        v1 = A.version;
        CHECK_EQ(A.attr.size, 0);
        OK(do_write(C, f, sess, 0, buf, sizeof(buf)));
        CHECK_EQ(A.value, sizeof(buf));
        CHECK_EQ(A.attr.size, sizeof(buf));
        /* staged: invisible without the session, visible with it */
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.size, 0);
        OK(do_read(C, f, 0, 0, 100000));
        CHECK_EQ(A.datalen, 0);
        c2 = cl_connect(t->port, 200);
        OK(do_read(c2, f, 0, 0, 100000));
        CHECK_EQ(A.datalen, 0);
        OK(do_getattr(f, sess));
        CHECK_EQ(A.attr.size, sizeof(buf));
        OK(do_read(C, f, sess, 0, 100000));
        CHECK(A.datalen == sizeof(buf) && !memcmp(A.data, buf, sizeof(buf)));
        /* commit without END: visible to all, the session goes on */
        OK(do_commit(C, f, sess, 0));
        CHECK(A.version > v1);
        v1 = A.version;
        CHECK_EQ(A.attr.version, v1);
        OK(do_read(c2, f, 0, 0, 100000));
        CHECK(A.datalen == sizeof(buf) && !memcmp(A.data, buf, sizeof(buf)));
        /* more writes, then abort: the last commit stays */
        OK(do_write(C, f, sess, 5000, "XXXX", 4));
        OK(do_write(C, f, sess, 20000, "tail", 4));
        OK(do_getattr(f, sess));
        CHECK_EQ(A.attr.size, 20004);
        q = Q(LP_FS_ABORT);
        q.ino = f;
        q.session = sess;
        OK(call(C, &q));
        OK(do_read(c2, f, 0, 0, 100000));
        CHECK(A.datalen == sizeof(buf) && !memcmp(A.data, buf, sizeof(buf)));
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.version, v1);
        EXPECT_ERR(do_write(C, f, sess, 0, "y", 1), -ESTALE);
        EXPECT_ERR(do_commit(C, f, sess, 0), -ESTALE);
        EXPECT_ERR(do_getattr(f, sess), -ESTALE);
        OK(call(C, &q));                /* ABORT again: nothing to do */
        /* no session / someone else's session */
        EXPECT_ERR(do_write(C, f, 0, 0, "y", 1), -EBADF);
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_RDWR;
        OK(call(C, &q));
        sess = A.session;
        CHECK_EQ(A.version, v1);
        g = make_file(ROOT, "g", "g", 1);
        EXPECT_ERR(do_write(C, g, sess, 0, "y", 1), -EINVAL);
        EXPECT_ERR(do_write(C, f, sess, (uint64_t)INT64_MAX - 1, "yy", 2), -EFBIG);
        /* a read-only open has no session */
        q.flags = O_RDONLY;
        OK(call(C, &q));
        CHECK_EQ(A.session, 0);
        /* COMMIT with END ends it, data visible */
        OK(do_write(C, f, sess, 0, "Z", 1));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END | LP_FS_COMMIT_SYNC));
        CHECK(A.version > v1);
        EXPECT_ERR(do_write(C, f, sess, 0, "y", 1), -ESTALE);
        OK(do_read(c2, f, 0, 0, 1));
        CHECK(A.datalen == 1 && A.data[0] == 'Z');
        /* a commit with nothing staged changes nothing */
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_WRONLY;
        OK(call(C, &q));
        sess = A.session;
        v1 = A.version;
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        CHECK_EQ(A.version, v1);
        lp_client_close(c2);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* Inside a session WRITE answers keep the page count up to date without
 * recounting the file: pages that were data stay counted once, holes that
 * a write fills are added, and after a truncation or a punched hole the
 * count is taken again.  Checked against the count COMMIT takes. */
START_TEST(t_session_blocks)
{
        struct tsrv *t;
        uint8_t page[4096 * 4];
        uint64_t f, sess;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        fill(page, sizeof(page), 3);
        OK(do_create(ROOT, "blk", O_CREAT | O_WRONLY, 0644, &f, &sess));
        OK(do_write(C, f, sess, 0, page, 4 * 4096));            /* pages 0..3 */
        OK(do_write(C, f, sess, 10 * 4096, page, 4096));        /* page 10 */
        OK(do_commit(C, f, sess, 0));
        CHECK_EQ(A.attr.blocks, 5 * 8);
        OK(do_getattr(f, sess));
        CHECK_EQ(A.attr.blocks, 5 * 8);
        OK(do_write(C, f, sess, 4096 + 100, page, 200));        /* inside data page 1 */
        CHECK_EQ(A.attr.blocks, 5 * 8);
        OK(do_write(C, f, sess, 5 * 4096 + 7, page, 10));       /* a partial hole page 5 */
        CHECK_EQ(A.attr.blocks, 6 * 8);
        OK(do_write(C, f, sess, 3 * 4096, page, 4 * 4096));     /* 3 data, 4 hole, 5 data, 6 hole */
        CHECK_EQ(A.attr.blocks, 8 * 8);
        OK(do_write(C, f, sess, 9 * 4096 + 4000, page, 200));   /* straddles hole 9 and data 10 */
        CHECK_EQ(A.attr.blocks, 9 * 8);
        OK(do_write(C, f, sess, 20 * 4096, page, 1));           /* past the end */
        CHECK_EQ(A.attr.blocks, 10 * 8);
        OK(do_write(C, f, sess, 20 * 4096, page, 4096));        /* the same page again */
        CHECK_EQ(A.attr.blocks, 10 * 8);
        OK(do_fallocate(f, sess, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * 4096, 2 * 4096));
        CHECK_EQ(A.attr.blocks, 8 * 8);                         /* pages 4 and 5 freed */
        OK(do_write(C, f, sess, 4 * 4096, page, 4096));
        CHECK_EQ(A.attr.blocks, 9 * 8);
        OK(do_setattr_size(f, sess, 6 * 4096));                 /* pages 0..4 left */
        CHECK_EQ(A.attr.blocks, 5 * 8);
        OK(do_write(C, f, sess, 7 * 4096, page, 4096));
        CHECK_EQ(A.attr.blocks, 6 * 8);
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        CHECK_EQ(A.attr.blocks, 6 * 8);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_session_restart_estale)
{
        struct tsrv *t;
        uint64_t f, sess;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        f = make_file(ROOT, "f", "committed", 9);
        OK(do_create(ROOT, "f", O_CREAT | O_WRONLY, 0644, NULL, &sess));
        OK(do_write(C, f, sess, 0, "STAGED-DATA", 11));
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        EXPECT_ERR(do_write(C, f, sess, 0, "x", 1), -ESTALE);
        EXPECT_ERR(do_commit(C, f, sess, LP_FS_COMMIT_END), -ESTALE);
        OK(do_read(C, f, 0, 0, 100));
        CHECK(A.datalen == 9 && !memcmp(A.data, "committed", 9));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_conflict)
{
        struct tsrv *t;
        struct lp_fs_req q;
        struct lp_client *c2;
        uint64_t f, s1, s2;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        c2 = cl_connect(t->port, 200);
        f = make_file(ROOT, "f", "0123456789", 10);
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_WRONLY;
        OK(call(C, &q));
        s1 = A.session;
        OK(call(c2, &q));
        s2 = A.session;
        CHECK(s1 != s2);
        /* both partial writes read page 0; the second committer loses */
        OK(do_write(C, f, s1, 2, "AA", 2));
        OK(do_write(c2, f, s2, 5, "BB", 2));
        OK(do_commit(c2, f, s2, LP_FS_COMMIT_END));
        EXPECT_ERR(do_commit(C, f, s1, LP_FS_COMMIT_END), -EAGAIN);
        EXPECT_ERR(do_write(C, f, s1, 0, "x", 1), -ESTALE);
        OK(do_read(C, f, 0, 0, 100));
        CHECK(A.datalen == 10 && !memcmp(A.data, "01234BB789", 10));
        /* a conflict noticed by a write's read also ends the session */
        OK(call(C, &q));
        s1 = A.session;
        OK(call(c2, &q));
        s2 = A.session;
        OK(do_write(c2, f, s2, 0, "C", 1));
        OK(do_commit(c2, f, s2, LP_FS_COMMIT_END));
        EXPECT_ERR(do_write(C, f, s1, 1, "D", 1), -EAGAIN);
        EXPECT_ERR(do_commit(C, f, s1, 0), -ESTALE);
        /* whole-page writes never conflict: the later commit wins */
        {
                uint8_t p1[4096], p2[4096];

                memset(p1, '1', sizeof(p1));
                memset(p2, '2', sizeof(p2));
                OK(call(C, &q));
                s1 = A.session;
                OK(call(c2, &q));
                s2 = A.session;
                OK(do_write(C, f, s1, 0, p1, 4096));
                OK(do_write(c2, f, s2, 0, p2, 4096));
                OK(do_commit(C, f, s1, LP_FS_COMMIT_END));
                OK(do_commit(c2, f, s2, LP_FS_COMMIT_END));
                OK(do_read(C, f, 0, 0, 4096));
                CHECK(A.datalen == 4096 && !memcmp(A.data, p2, 4096));
        }
        lp_client_close(c2);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* A read updates atime as Linux's relatime does; a cookie past every entry
 * lists nothing. */
START_TEST(t_atime_and_cookie)
{
        struct tsrv *t;
        struct lp_fs_req q;
        struct lp_fs_time at;
        uint64_t f;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        f = make_file(ROOT, "a", "hello", 5);
        q = Q(LP_FS_SETATTR);
        q.ino = f;
        q.valid = LP_FS_SET_ATIME;
        q.atime = (struct lp_fs_time){ 1000000000, 0 };
        OK(call(C, &q));
        OK(do_read(C, f, 0, 0, 1));
        OK(do_getattr(f, 0));
        CHECK(A.attr.atime.sec > 1000000000);   /* older than mtime: updated */
        at = A.attr.atime;
        OK(do_read(C, f, 0, 0, 5));
        OK(do_getattr(f, 0));
        CHECK(A.attr.atime.sec == at.sec && A.attr.atime.nsec == at.nsec);  /* newer: left alone */
        q = Q(LP_FS_READDIR);
        q.ino = ROOT;
        q.offset = UINT64_MAX;
        OK(call(C, &q));
        CHECK_EQ(A.nentries, 0);
        CHECK(A.eof);
        q.offset = (uint64_t)INT64_MAX + 5;
        OK(call(C, &q));
        CHECK_EQ(A.nentries, 0);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_large_sparse)
{
        struct tsrv *t;
        uint8_t buf[9000];
        uint64_t f, sess, off = 5 * GiB + 100;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        fill(buf, sizeof(buf), 11);
        OK(do_create(ROOT, "big", O_CREAT | O_WRONLY, 0644, &f, &sess));
        OK(do_write(C, f, sess, off, buf, sizeof(buf)));
        OK(do_write(C, f, sess, 0, "head", 4));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        CHECK_EQ(A.attr.size, off + sizeof(buf));
        CHECK_EQ(A.attr.blocks, (1 + 3) * 8);   /* page 0 and three pages at 5 GiB */
        OK(do_read(C, f, 0, off, sizeof(buf)));
        CHECK(A.datalen == sizeof(buf) && !memcmp(A.data, buf, sizeof(buf)));
        OK(do_read(C, f, 0, 3 * GiB, 8192));
        CHECK(A.datalen == 8192 && all_zero(A.data, 8192));
        OK(do_read(C, f, 0, off - 100, 100));
        CHECK(A.datalen == 100 && all_zero(A.data, 100));
        /* SEEK_DATA / SEEK_HOLE */
        OK(do_lseek(f, 0, 0, SEEK_DATA));
        CHECK_EQ(A.value, 0);
        OK(do_lseek(f, 0, 0, SEEK_HOLE));
        CHECK_EQ(A.value, 4096);
        OK(do_lseek(f, 0, 4096, SEEK_DATA));
        CHECK_EQ(A.value, 5 * GiB);
        OK(do_lseek(f, 0, 5 * GiB + 5, SEEK_DATA));
        CHECK_EQ(A.value, 5 * GiB + 5);
        OK(do_lseek(f, 0, 5 * GiB, SEEK_HOLE));
        CHECK_EQ(A.value, off + sizeof(buf));   /* the implicit hole at the end */
        EXPECT_ERR(do_lseek(f, 0, off + sizeof(buf), SEEK_DATA), -ENXIO);
        EXPECT_ERR(do_lseek(f, 0, 0, SEEK_SET), -EINVAL);
        /* a session sees its staged pages among the committed ones */
        {
                struct lp_fs_req q = Q(LP_FS_OPEN);

                q.ino = f;
                q.flags = O_WRONLY;
                OK(call(C, &q));
                sess = A.session;
                OK(do_write(C, f, sess, 10, "x", 1));
                OK(do_lseek(f, sess, 0, SEEK_HOLE));
                CHECK_EQ(A.value, 4096);
                OK(do_lseek(f, sess, 4096, SEEK_DATA));
                CHECK_EQ(A.value, 5 * GiB);
                OK(do_lseek(f, sess, 4096, SEEK_HOLE));
                CHECK_EQ(A.value, 4096);
                q = Q(LP_FS_GETATTR);
                q.ino = f;
                q.session = sess;
                OK(call(C, &q));
                CHECK_EQ(A.attr.blocks, (1 + 3) * 8);   /* page 0 and three pages at 5 GiB */
                OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        }
        /* truncating past 4 GiB removes the far data; it survives a restart */
        OK(do_setattr_size(f, 0, 4 * GiB + 1));
        CHECK_EQ(A.attr.blocks, 8);
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.size, 4 * GiB + 1);
        OK(do_setattr_size(f, 0, off + sizeof(buf)));
        OK(do_read(C, f, 0, off, sizeof(buf)));
        CHECK(A.datalen == sizeof(buf) && all_zero(A.data, sizeof(buf)));
        OK(do_read(C, f, 0, 0, 11));
        CHECK(A.datalen == 11 && !memcmp(A.data, "head\0\0\0\0\0\0x", 11));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_fallocate)
{
        struct tsrv *t;
        uint8_t buf[5 * 4096];
        uint64_t f, v0, sess, d;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        memset(buf, 'a', sizeof(buf));
        f = make_file(ROOT, "f", buf, sizeof(buf));
        d = mkdir_ok(ROOT, "d");
        OK(do_getattr(f, 0));
        v0 = A.attr.version;
        CHECK_EQ(A.attr.blocks, 5 * 8);
        /* punch pages 1..3 and part of 0 and 4 */
        OK(do_fallocate(f, 0, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4000, 4 * 4096 + 200 - 4000));
        CHECK_EQ(A.attr.size, sizeof(buf));
        CHECK(A.attr.version > v0);
        CHECK_EQ(A.attr.blocks, 2 * 8);
        OK(do_read(C, f, 0, 0, sizeof(buf)));
        CHECK_EQ(A.datalen, sizeof(buf));
        for (size_t i = 0; i < sizeof(buf); i++)
                CHECK_EQ(A.data[i], (i >= 4000 && i < 4 * 4096 + 200) ? 0 : 'a');
        OK(do_lseek(f, 0, 4096, SEEK_DATA));
        CHECK_EQ(A.value, 4 * 4096);
        OK(do_lseek(f, 0, 100, SEEK_HOLE));
        CHECK_EQ(A.value, 4096);
        /* mode 0 extends, KEEP_SIZE does not */
        OK(do_fallocate(f, 0, 0, 0, 100000));
        CHECK_EQ(A.attr.size, 100000);
        OK(do_fallocate(f, 0, FALLOC_FL_KEEP_SIZE, 0, 200000));
        CHECK_EQ(A.attr.size, 100000);
        OK(do_read(C, f, 0, 90000, 100));
        CHECK(A.datalen == 100 && all_zero(A.data, 100));
        /* ZERO_RANGE (partial pages), with and without KEEP_SIZE */
        OK(do_fallocate(f, 0, FALLOC_FL_ZERO_RANGE, 10, 20));
        OK(do_read(C, f, 0, 0, 40));
        for (int i = 0; i < 40; i++)
                CHECK_EQ(A.data[i], (i >= 10 && i < 30) ? 0 : 'a');
        OK(do_fallocate(f, 0, FALLOC_FL_ZERO_RANGE, 99990, 20));
        CHECK_EQ(A.attr.size, 100010);
        OK(do_fallocate(f, 0, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 200000, 20));
        CHECK_EQ(A.attr.size, 100010);
        /* unsupported modes are refused, never ignored */
        EXPECT_ERR(do_fallocate(f, 0, FALLOC_FL_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
        EXPECT_ERR(do_fallocate(f, 0, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), -EOPNOTSUPP);
        EXPECT_ERR(do_fallocate(f, 0, FALLOC_FL_INSERT_RANGE, 0, 4096), -EOPNOTSUPP);
        EXPECT_ERR(do_fallocate(f, 0, 0, 0, 0), -EINVAL);
        EXPECT_ERR(do_fallocate(f, 0, 0, (uint64_t)INT64_MAX, 2), -EFBIG);
        EXPECT_ERR(do_fallocate(d, 0, 0, 0, 10), -EISDIR);
        /* in a session: staged until commit */
        {
                struct lp_fs_req q = Q(LP_FS_OPEN);

                q.ino = f;
                q.flags = O_WRONLY;
                OK(call(C, &q));
                sess = A.session;
        }
        OK(do_fallocate(f, sess, 0, 0, 300000));
        CHECK_EQ(A.attr.size, 300000);
        OK(do_fallocate(f, sess, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
        OK(do_getattr(f, 0));
        CHECK_EQ(A.attr.size, 100010);
        OK(do_read(C, f, 0, 0, 1));
        CHECK_EQ(A.data[0], 'a');
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        CHECK_EQ(A.attr.size, 300000);
        OK(do_read(C, f, 0, 0, 1));
        CHECK_EQ(A.data[0], 0);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_copy_range)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint8_t buf[10000], big[8192];
        uint64_t src, dst, dst2, sess, d;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        fill(buf, sizeof(buf), 5);
        fill(big, sizeof(big), 6);
        OK(do_create(ROOT, "src", O_CREAT | O_WRONLY, 0644, &src, &sess));
        OK(do_write(C, src, sess, 0, buf, sizeof(buf)));
        OK(do_write(C, src, sess, 1 << 20, big, sizeof(big)));
        OK(do_commit(C, src, sess, LP_FS_COMMIT_END));
        dst = make_file(ROOT, "dst", NULL, 0);
        d = mkdir_ok(ROOT, "d");
        /* whole file, no sessions: bytes equal, holes stay holes */
        q = Q(LP_FS_COPY_RANGE);
        q.ino = src;
        q.ino2 = dst;
        q.length = 10u << 20;
        OK(call(C, &q));
        CHECK_EQ(A.value, (1 << 20) + sizeof(big));
        CHECK_EQ(A.attr.size, (1 << 20) + sizeof(big));
        CHECK_EQ(A.attr.blocks, (3 + 2) * 8);
        OK(do_read(C, dst, 0, 0, sizeof(buf)));
        CHECK(!memcmp(A.data, buf, sizeof(buf)));
        OK(do_read(C, dst, 0, 1 << 20, sizeof(big)));
        CHECK(!memcmp(A.data, big, sizeof(big)));
        OK(do_lseek(dst, 0, 16384, SEEK_DATA));
        CHECK_EQ(A.value, 1 << 20);
        /* unaligned, into a session: staged until commit */
        dst2 = make_file(ROOT, "dst2", "0123456789", 10);
        q = Q(LP_FS_OPEN);
        q.ino = dst2;
        q.flags = O_WRONLY;
        OK(call(C, &q));
        sess = A.session;
        q = Q(LP_FS_COPY_RANGE);
        q.ino = src;
        q.offset = 3;
        q.ino2 = dst2;
        q.session2 = sess;
        q.offset2 = 5;
        q.length = 5000;
        OK(call(C, &q));
        CHECK_EQ(A.value, 5000);
        CHECK_EQ(A.attr.size, 5005);
        OK(do_getattr(dst2, 0));
        CHECK_EQ(A.attr.size, 10);
        OK(do_commit(C, dst2, sess, LP_FS_COMMIT_END));
        OK(do_read(C, dst2, 0, 0, 6000));
        CHECK_EQ(A.datalen, 5005);
        CHECK(!memcmp(A.data, "01234", 5));
        CHECK(!memcmp(A.data + 5, buf + 3, 5000));
        /* within one file: overlap refused, disjoint fine */
        q = Q(LP_FS_COPY_RANGE);
        q.ino = dst2;
        q.ino2 = dst2;
        q.offset = 0;
        q.offset2 = 100;
        q.length = 200;
        EXPECT_ERR(call(C, &q), -EINVAL);
        q.offset2 = 6000;
        OK(call(C, &q));
        CHECK_EQ(A.attr.size, 6200);
        /* beyond the source's end: nothing */
        q.offset = 7000;
        q.offset2 = 0;
        OK(call(C, &q));
        CHECK_EQ(A.value, 0);
        q = Q(LP_FS_COPY_RANGE);
        q.ino = src;
        q.ino2 = dst;
        q.length = 10;
        q.flags = 1;
        EXPECT_ERR(call(C, &q), -EINVAL);
        q.flags = 0;
        q.ino2 = d;
        EXPECT_ERR(call(C, &q), -EISDIR);
        q.ino2 = dst;
        q.session2 = 0x1234;
        EXPECT_ERR(call(C, &q), -ESTALE);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* A number from SS_STATUS, or 0 if the report left it out (a container
 * busy with maintenance reports no store figures). */
static uint64_t status_num_opt(const char *text, const char *key)
{
        char pat[64];
        const char *p;

        snprintf(pat, sizeof(pat), "\"%s\":", key);
        p = strstr(text, pat);
        return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

static uint64_t status_num(const char *text, const char *key)
{
        char pat[64];
        const char *p;

        snprintf(pat, sizeof(pat), "\"%s\":", key);
        p = strstr(text, pat);
        CHECK(p);
        return strtoull(p + strlen(pat), NULL, 10);
}

static uint64_t flushes(void)
{
        struct lp_fs_req q = Q(LP_FS_SS_STATUS);

        OK(call(C, &q));
        CHECK(A.text);
        return status_num(A.text, "flushes");
}

/* RENAME_WHITEOUT: the source moves over the target and its old name
 * becomes a whiteout (a character device 0/0 of the caller), in one
 * commit, which survives a restart. */
static void check_whiteout_rename(uint64_t src_ino)
{
        OK(do_lookup(ROOT, "wsrc"));
        CHECK(S_ISCHR(A.attr.mode));
        CHECK_EQ(A.attr.mode & 07777, 0);
        CHECK_EQ(A.attr.rdev, 0);
        CHECK_EQ(A.attr.nlink, 1);
        CHECK_EQ(A.attr.uid, 1000);
        CHECK(A.attr.ino != src_ino);
        CHECK_EQ(lookup_ino(ROOT, "wdst"), src_ino);
        CHECK_EQ(A.attr.nlink, 1);
}

START_TEST(t_rename_whiteout)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint64_t src, old_dst, seq;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        src = make_file(ROOT, "wsrc", "S", 1);
        old_dst = make_file(ROOT, "wdst", "D", 1);
        EXPECT_ERR(do_rename(ROOT, "wsrc", ROOT, "wdst", LP_FS_RENAME_WHITEOUT | LP_FS_RENAME_EXCHANGE),
                   -EINVAL);
        q = Q(LP_FS_SS_STATUS);
        OK(call(C, &q));
        seq = status_num(A.text, "seq");
        OK(do_rename(ROOT, "wsrc", ROOT, "wdst", LP_FS_RENAME_WHITEOUT));
        CHECK_EQ(A.ino, old_dst);
        CHECK(A.orphan);
        q = Q(LP_FS_SS_STATUS);
        OK(call(C, &q));
        CHECK_EQ(status_num(A.text, "seq"), seq + 1);           /* one commit */
        check_whiteout_rename(src);
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        check_whiteout_rename(src);
        OK(do_unlink(ROOT, "wsrc"));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_sync_durability)
{
        struct tsrv *t;
        struct ss_opts o;
        struct lp_fs_req q;
        uint64_t f, sess, n0, n1;
        uint64_t deadline;

        setup();
        opts_for(&o, data_dir());
        o.flush_interval_ms = 600000;   /* only sync requests flush */
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        OK(do_create(ROOT, "f", O_CREAT | O_WRONLY, 0644, &f, &sess));
        n0 = flushes();
        OK(do_write(C, f, sess, 0, "a", 1));
        OK(do_commit(C, f, sess, 0));
        CHECK_EQ(flushes(), n0);                /* appended, not flushed */
        OK(do_write(C, f, sess, 1, "b", 1));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_SYNC));
        n1 = flushes();
        CHECK(n1 > n0);                         /* flushed before the answer */
        q = Q(LP_FS_SYNC);
        OK(call(C, &q));                        /* nothing new: at once */
        CHECK_EQ(flushes(), n1);
        (void)mkdir_ok(ROOT, "d");
        OK(call(C, &q));
        CHECK(flushes() > n1);
        n1 = flushes();
        OK(do_write(C, f, sess, 2, "c", 1));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_DATASYNC | LP_FS_COMMIT_END));
        CHECK(flushes() > n1);
        lp_client_close(C);
        tsrv_stop(t);
        /* the default interval flushes by itself */
        opts_for(&o, data_dir());
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        n0 = flushes();
        (void)mkdir_ok(ROOT, "e");
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        while (flushes() == n0)
                CHECK(cm_now_us() < deadline);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

static unsigned sessions_open(struct lp_client *c)
{
        struct lp_fs_req q = Q(LP_FS_SS_STATUS);

        OK(call(c, &q));
        return (unsigned)status_num(A.text, "sessions");
}

/* Wait (bounded) until the server has no session open. */
static void wait_no_sessions(void)
{
        uint64_t deadline = cm_now_us() + WAIT_MS * 1000ull;

        while (sessions_open(C) != 0)
                CHECK(cm_now_us() < deadline);
}

START_TEST(t_session_limits)
{
        struct tsrv *t;
        struct ss_opts o;
        struct lp_fs_req q, ab;
        uint64_t f, first = 0, sess, deadline;
        struct lp_client *c7;

        setup();
        /* at most 1024 sessions */
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        f = make_file(ROOT, "f", "x", 1);
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_WRONLY;
        for (int i = 0; i < 1024; i++) {
                OK(call(C, &q));
                if (!first)
                        first = A.session;
        }
        CHECK_EQ(sessions_open(C), 1024);
        EXPECT_ERR(call(C, &q), -ENFILE);
        ab = Q(LP_FS_ABORT);
        ab.ino = f;
        ab.session = first;
        OK(call(C, &ab));
        OK(call(C, &q));
        EXPECT_ERR(call(C, &q), -ENFILE);
        lp_client_close(C);
        tsrv_stop(t);

        /* an idle session is aborted */
        opts_for(&o, data_dir());
        o.idle_timeout_ms = 1000;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        OK(call(C, &q));
        sess = A.session;
        CHECK_EQ(sessions_open(C), 1);
        wait_no_sessions();
        EXPECT_ERR(do_getattr(f, sess), -ESTALE);
        lp_client_close(C);
        tsrv_stop(t);

        /* the sessions of a client whose connections are all gone */
        opts_for(&o, data_dir());
        o.client_grace_ms = 300;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        c7 = cl_connect(t->port, 7);
        OK(call(c7, &q));
        sess = A.session;
        OK(call(C, &q));                /* site 100 keeps its own */
        CHECK_EQ(sessions_open(C), 2);
        lp_client_close(c7);
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        while (sessions_open(C) != 1)
                CHECK(cm_now_us() < deadline);
        EXPECT_ERR(do_getattr(f, sess), -ESTALE);
        lp_client_close(C);
        tsrv_stop(t);
        /* ... but not those of a client that reconnects in time: the
         * session outlives the grace time more than twice over */
        opts_for(&o, data_dir());
        o.client_grace_ms = 1000;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        c7 = cl_connect(t->port, 7);
        OK(call(c7, &q));
        sess = A.session;
        lp_client_close(c7);
        c7 = cl_connect(t->port, 7);
        deadline = cm_now_us() + 2500000;
        while (cm_now_us() < deadline)
                CHECK_EQ(sessions_open(C), 1);
        OK(do_write(c7, f, sess, 0, "y", 1));
        OK(do_commit(c7, f, sess, LP_FS_COMMIT_END));
        lp_client_close(c7);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_nospace)
{
        struct tsrv *t;
        struct ss_opts o;
        struct lp_fs_req q;
        uint64_t f, sess;

        setup();
        opts_for(&o, data_dir());
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        f = make_file(ROOT, "f", "x", 1);
        (void)mkdir_ok(ROOT, "d");
        OK(do_create(ROOT, "g", O_CREAT | O_WRONLY, 0644, NULL, &sess));
        lp_client_close(C);
        tsrv_stop(t);
        o.space_reserve = UINT64_MAX / 4;       /* more than any disk has */
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        q = Q(LP_FS_OPEN);
        q.ino = f;
        q.flags = O_WRONLY;
        OK(call(C, &q));
        sess = A.session;
        EXPECT_ERR(do_write(C, f, sess, 0, "y", 1), -ENOSPC);
        EXPECT_ERR(do_mkdir(ROOT, "e", 0755, NULL), -ENOSPC);
        EXPECT_ERR(do_fallocate(f, 0, 0, 0, 4096), -ENOSPC);
        /* deletions still work */
        OK(do_rmdir(ROOT, "d"));
        OK(do_unlink(ROOT, "f"));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* ---- tests: persistence ---------------------------------------------------------------------- */

START_TEST(t_restart_durability)
{
        struct tsrv *t;
        char *s1, *s2;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        build_tree();
        s1 = snapshot();
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        s2 = snapshot();
        if (strcmp(s1, s2))
                ck_abort_msg("after restart:\n%s\nbefore:\n%s", s2, s1);
        CHECK(strstr(s1, "/d1/link") && strstr(s1, "target=../big"));
        CHECK(strstr(s1, "x:user.colour="));
        CHECK(strstr(s1, "size=5368718243"));   /* 5 GiB + 123 + 9000 */
        free(s1);
        free(s2);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* ss_db's error state by itself: a failed WAL checkpoint fsync is kept,
 * named, never retried, refuses every call without touching the disk, and
 * close leaves the WAL alone; reopening reads what was committed. */
START_TEST(t_db_sticky_error)
{
        struct dsm_faultio *fi = dsm_faultio_new(3);
        struct ss_db *db;
        struct stat st;
        char path[PATH_MAX], wal[PATH_MAX];
        const char *cause = NULL;
        uint64_t v = 0, calls;

        setup();
        CHECK(fi);
        pathf(path, sizeof(path), "%s/t.sqlite", tu_tmpdir());
        pathf(wal, sizeof(wal), "%s-wal", path);
        ss_vfs_set_faults(&dsm_faultio_ops, fi);
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_db_begin(db) == 0);
        CHECK(ss_db_meta_put(db, "k", 42) == 0);
        CHECK(ss_db_commit(db) == 0);
        CHECK_EQ(ss_db_error(db, NULL), 0);
        dsm_faultio_fail(fi, DSM_FOP_FDATASYNC, 1, EIO, false);
        CHECK_EQ(ss_db_wal_checkpoint(db), -EIO);
        CHECK_EQ(ss_db_error(db, &cause), -EIO);
        CHECK(cause && strstr(cause, "fsync") && strstr(cause, "t.sqlite"));
        CHECK(strstr(ss_db_errmsg(db), "fsync"));
        calls = dsm_faultio_calls(fi, DSM_FOP_FDATASYNC) + dsm_faultio_calls(fi, DSM_FOP_PWRITE);
        CHECK_EQ(ss_db_wal_checkpoint(db), -EIO);
        CHECK_EQ(ss_db_meta_get(db, "k", &v), -EIO);
        CHECK_EQ(ss_db_begin(db), -EIO);
        CHECK_EQ(ss_db_meta_put(db, "k", 43), -EIO);
        ss_db_rollback(db);
        CHECK_EQ(dsm_faultio_calls(fi, DSM_FOP_FDATASYNC) + dsm_faultio_calls(fi, DSM_FOP_PWRITE), calls);
        ss_db_close(db);
        CHECK(stat(wal, &st) == 0 && st.st_size > 0);  /* close did not checkpoint */
        CHECK_EQ(dsm_faultio_calls(fi, DSM_FOP_FDATASYNC) + dsm_faultio_calls(fi, DSM_FOP_PWRITE), calls);
        ss_vfs_set_faults(NULL, NULL);
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_db_meta_get(db, "k", &v) == 0);
        CHECK_EQ(v, 42);
        ss_db_close(db);
        CHECK(stat(wal, &st) < 0);                      /* a clean close checkpoints it away */
        dsm_faultio_free(fi);
}
END_TEST

/* SQLite fault tests: a server whose SQLite calls ask injector fi, with a
 * file "before" holding data. */
static struct tsrv *fault_start(struct dsm_faultio *fi, uint8_t *data, size_t len)
{
        struct tsrv *t;

        setup();
        CHECK(fi);
        fill(data, len, 7);
        ss_vfs_set_faults(&dsm_faultio_ops, fi);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        (void)make_file(ROOT, "before", data, len);
        return t;
}

/* Restart t without faults; what was committed before the fault ("before"
 * and directory "d") is there, and the container works again. */
static void fault_restart_check(struct tsrv *t, struct dsm_faultio *fi, const uint8_t *data, size_t len)
{
        uint64_t f;

        lp_client_close(C);
        tsrv_stop(t);
        ss_vfs_set_faults(NULL, NULL);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        f = lookup_ino(ROOT, "before");
        OK(do_read(C, f, 0, 0, len));
        CHECK_EQ(A.datalen, len);
        CHECK(memcmp(A.data, data, len) == 0);
        OK(do_lookup(ROOT, "d"));
        CHECK(S_ISDIR(A.attr.mode));
        EXPECT_ERR(do_lookup(ROOT, "refused"), -ENOENT);
        (void)mkdir_ok(ROOT, "after-restart");
        lp_client_close(C);
        tsrv_stop(t);
        dsm_faultio_free(fi);
}

/* Issue #7 item 4: a failed SQLite fsync (here: in the WAL checkpoint) puts
 * the container into its sticky error state; it is never retried, every
 * later request answers EIO, and a restart recovers everything committed. */
/* A container stopped by a failed SQLite call: reads, mutations and jobs
 * all answer EIO, and SQLite's files are not touched again. */
static void check_stopped(struct dsm_faultio *fi)
{
        uint64_t nsync = dsm_faultio_calls(fi, DSM_FOP_FDATASYNC);
        uint64_t nwrite = dsm_faultio_calls(fi, DSM_FOP_PWRITE);
        struct lp_fs_req q;

        EXPECT_ERR(do_lookup(ROOT, "before"), -EIO);
        EXPECT_ERR(do_mkdir(ROOT, "refused", 0755, NULL), -EIO);
        EXPECT_ERR(do_getattr(ROOT, 0), -EIO);
        q = Q(LP_FS_SS_CHECKPOINT);
        EXPECT_ERR(call(C, &q), -EIO);
        q = Q(LP_FS_SYNC);
        EXPECT_ERR(call(C, &q), -EIO);
        CHECK_EQ(dsm_faultio_calls(fi, DSM_FOP_FDATASYNC), nsync);
        CHECK_EQ(dsm_faultio_calls(fi, DSM_FOP_PWRITE), nwrite);
}

START_TEST(t_sqlite_fsync_fault)
{
        struct dsm_faultio *fi = dsm_faultio_new(1);
        struct lp_fs_req q;
        uint8_t data[10000];
        struct tsrv *t = fault_start(fi, data, sizeof(data));

        q = Q(LP_FS_SS_CHECKPOINT);
        OK(call(C, &q));
        CHECK(dsm_faultio_calls(fi, DSM_FOP_FDATASYNC) > 0);   /* SQLite's syncs pass the seam */
        (void)mkdir_ok(ROOT, "d");
        q = Q(LP_FS_SYNC);                      /* the index's batch is committed */
        OK(call(C, &q));
        dsm_faultio_fail(fi, DSM_FOP_FDATASYNC, 1, EIO, false); /* the next SQLite fsync, once */
        q = Q(LP_FS_SS_CHECKPOINT);             /* its WAL checkpoint syncs */
        EXPECT_ERR(call(C, &q), -EIO);
        /* The fault was armed once: a retry would succeed, and must not
         * happen. */
        check_stopped(fi);
        fault_restart_check(t, fi, data, sizeof(data));
}
END_TEST

/* The same for a failed write of the WAL (at the commit of the index's
 * batch): the mutation is in the log, so the restart replays it. */
START_TEST(t_sqlite_write_fault)
{
        struct dsm_faultio *fi = dsm_faultio_new(2);
        struct lp_fs_req q;
        uint8_t data[5000];
        uint64_t nwrite;
        int r;
        struct tsrv *t = fault_start(fi, data, sizeof(data));

        q = Q(LP_FS_SYNC);
        OK(call(C, &q));
        CHECK(dsm_faultio_calls(fi, DSM_FOP_PWRITE) > 0);      /* SQLite's writes pass the seam */
        dsm_faultio_fail(fi, DSM_FOP_PWRITE, 1, EIO, false);    /* the next SQLite write, once */
        (void)mkdir_ok(ROOT, "d");              /* in the log; SQLite's batch is not written yet */
        q = Q(LP_FS_SYNC);
        r = call(C, &q);                        /* the log is flushed; the index commit fails */
        CHECK(r == 0 || r == wire(-EIO));
        nwrite = dsm_faultio_calls(fi, DSM_FOP_PWRITE);
        EXPECT_ERR(do_lookup(ROOT, "d"), -EIO);
        EXPECT_ERR(do_mkdir(ROOT, "refused", 0755, NULL), -EIO);
        q = Q(LP_FS_SS_CHECKPOINT);
        EXPECT_ERR(call(C, &q), -EIO);
        CHECK_EQ(dsm_faultio_calls(fi, DSM_FOP_PWRITE), nwrite);
        fault_restart_check(t, fi, data, sizeof(data));
}
END_TEST

/* Issue #7 item 8: ss_mut_commit consumes a borrowed transaction in every
 * case, also on its drop path (a container already stopped [C5], or a
 * changeset out of memory).  A session's COMMIT hands its transaction over
 * and forgets it, so a transaction the drop path skipped -- its staged
 * pages, its snapshot, its segment pins -- leaked for good.  Here the
 * container is stopped for real, by a failed SQLite write at the index's
 * batch commit; then sessions with staged pages commit into it.  Under
 * ASan LeakSanitizer must find nothing; otherwise the heap must not keep
 * the staged pages. */
#define DROP_ROUNDS 8u
#define DROP_PAGES 32u

static size_t heap_in_use(void)
{
#if TU_ASAN
        return 0;
#else
        struct mallinfo2 mi = mallinfo2();

        return mi.uordblks + mi.hblkhd;
#endif
}

START_TEST(t_commit_drop_frees_txn)
{
        struct dsm_faultio *fi = dsm_faultio_new(6);
        static uint8_t pages[DROP_PAGES * DSM_PAGE_SIZE];
        struct ss_inode in = { .ino = SS_ROOT_INO, .mode = S_IFDIR | 0755, .nlink = 2 };
        struct ss_ct *ct;
        struct ss_mut m;
        struct dsm_txn *txn;
        size_t heap0;

        setup();
        CHECK(fi);
        CHECK(mkdir(data_dir(), 0700) == 0);
        ss_vfs_set_faults(&dsm_faultio_ops, fi);
        CHECK(ss_ct_create(data_dir(), 1, 1, NULL, &ct) == 0);
        ss_mut_init(ct, &m, NULL);              /* opens the index's batch [C6] */
        ss_cs_put_inode(&m.cs, &in, 0);
        CHECK(ss_mut_commit(ct, &m, NULL) == 0);
        dsm_faultio_fail(fi, DSM_FOP_PWRITE, 1, EIO, false);    /* SQLite's next write */
        CHECK_EQ(ss_ct_index_commit(ct), -EIO);
        CHECK_EQ(ct->err, -EIO);                /* stopped [C5] */
        fill(pages, sizeof(pages), 8);
        heap0 = heap_in_use();
        for (unsigned i = 0; i < DROP_ROUNDS; i++) {
                CHECK(dsm_txn_begin(ct->store, &txn) == 0);
                for (unsigned p = 0; p < DROP_PAGES; p++)
                        CHECK(dsm_txn_write(txn, SS_ROOT_INO + 1 + i, p, 0, pages + (size_t)p * DSM_PAGE_SIZE,
                                            DSM_PAGE_SIZE) == 0);
                ss_mut_init(ct, &m, txn);       /* borrowed, as ss__op_commit does */
                ss_cs_put_inode(&m.cs, &in, 0);
                CHECK_EQ(ss_mut_commit(ct, &m, NULL), -EIO);
                CHECK(m.txn == NULL);
        }
        /* Without ASan: the staged pages (DROP_ROUNDS x 128 KiB) are gone. */
        CHECK(heap_in_use() < heap0 + (size_t)DROP_ROUNDS * DROP_PAGES * DSM_PAGE_SIZE / 4);
        ss_ct_close(ct);
        ss_vfs_set_faults(NULL, NULL);
        dsm_faultio_free(fi);
#if TU_ASAN
        CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}
END_TEST

/* ss_db's concurrent WAL checkpoint, step by step: commits go on while a
 * checkpoint holds its snapshot, the checkpoint copies only the frames
 * committed before the snapshot (ss_db.h [W1]), a later pass copies the
 * rest, and the next write then restarts the WAL.  A failed fsync of the
 * checkpoint leaves the connection alone until the loop thread collects it
 * (ss_db_wal_passive_end), which enters the sticky error state. */
START_TEST(t_db_wal_concurrent)
{
        struct dsm_faultio *fi = dsm_faultio_new(4);
        struct ss_db *db;
        char path[PATH_MAX];
        const char *cause = NULL;
        unsigned f0, f1, done = 0;
        uint64_t v = 0;

        setup();
        CHECK(fi);
        pathf(path, sizeof(path), "%s/t.sqlite", tu_tmpdir());
        ss_vfs_set_faults(&dsm_faultio_ops, fi);
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_db_begin(db) == 0);
        CHECK(ss_db_meta_put(db, "a", 1) == 0);
        CHECK(ss_db_commit(db) == 0);
        f0 = ss_db_wal_frames(db);
        CHECK(f0 > 0);
        CHECK_EQ(ss_db_wal_pin(db), 0);         /* a checkpoint job takes its snapshot */
        for (uint64_t i = 0; i < 50; i++) {     /* ... and the loop goes on committing */
                char k[16];

                snprintf(k, sizeof(k), "k%llu", (unsigned long long)i);
                CHECK(ss_db_begin(db) == 0);
                CHECK(ss_db_meta_put(db, k, i) == 0);
                CHECK(ss_db_commit(db) == 0);
        }
        CHECK(ss_db_meta_get(db, "k49", &v) == 0 && v == 49);
        f1 = ss_db_wal_frames(db);
        CHECK(f1 > f0);
        CHECK_EQ(ss_db_wal_passive(db, &done), 0);
        CHECK_EQ(done, f0);                     /* [W1]: not a frame past the snapshot */
        CHECK_EQ(ss_db_wal_passive_end(db), 0);
        CHECK_EQ(ss_db_wal_unckpt(db), f1 - f0);
        CHECK_EQ(ss_db_wal_pin(db), 0);
        CHECK_EQ(ss_db_wal_passive(db, &done), 0);
        CHECK_EQ(done, f1);
        CHECK_EQ(ss_db_wal_passive_end(db), 0);
        CHECK_EQ(ss_db_wal_unckpt(db), 0);
        CHECK(ss_db_begin(db) == 0);
        CHECK(ss_db_meta_put(db, "b", 2) == 0);
        CHECK(ss_db_commit(db) == 0);
        CHECK(ss_db_wal_frames(db) < f0 + 1 && ss_db_wal_frames(db) < f1);     /* restarted */
        CHECK(ss_db_wal_unckpt(db) > 0);

        /* A failed fsync of the concurrent checkpoint, once. */
        dsm_faultio_fail(fi, DSM_FOP_FDATASYNC, 1, EIO, false);
        CHECK_EQ(ss_db_wal_pin(db), 0);
        CHECK_EQ(ss_db_wal_passive(db, &done), -EIO);
        CHECK_EQ(ss_db_error(db, NULL), 0);     /* the loop's state, untouched until collected */
        CHECK_EQ(ss_db_wal_passive_end(db), -EIO);
        CHECK_EQ(ss_db_error(db, &cause), -EIO);
        CHECK(cause && strstr(cause, "passive") && strstr(cause, "fsync") && strstr(cause, "t.sqlite"));
        CHECK_EQ(ss_db_meta_get(db, "a", &v), -EIO);
        CHECK_EQ(ss_db_wal_checkpoint(db), -EIO);       /* never retried */
        ss_db_close(db);
        ss_vfs_set_faults(NULL, NULL);
        CHECK(ss_db_open(path, &db) == 0);      /* what was committed is there */
        CHECK(ss_db_meta_get(db, "b", &v) == 0 && v == 2);
        ss_db_close(db);
        dsm_faultio_free(fi);
}
END_TEST

/* A number from the status of container 1, once it is not parked (a
 * parked container's status leaves its statistics out). */
static uint64_t status_of(const char *key)
{
        uint64_t deadline = cm_now_us() + WAIT_MS * 1000ull;
        struct lp_fs_req q;

        for (;;) {
                q = Q(LP_FS_SS_STATUS);
                OK(call(C, &q));
                if (strstr(A.text, "\"busy\":false"))
                        return status_num_opt(A.text, key);
                CHECK(cm_now_us() < deadline);
        }
}

/* The container keeps answering while a reader holds an old snapshot of
 * meta.sqlite (as the daemon's own checkpoint connection holds one during
 * a pass): SQLite's WAL checkpoints run (every 8 frames) beside 300
 * mkdirs, nothing waits for the reader or fails, the reader still sees
 * its snapshot; once it is gone, the WAL restarts. */
START_TEST(t_wal_ckpt_concurrent)
{
        struct tsrv *t;
        struct ss_opts o;
        sqlite3 *rd = NULL;
        sqlite3_stmt *st = NULL;
        struct lp_fs_req q;
        char path[PATH_MAX];
        uint64_t frames, deadline;
        int64_t n0;

        setup();
        opts_for(&o, data_dir());
        o.wal_frames = 8;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        (void)mkdir_ok(ROOT, "d0");
        q = Q(LP_FS_SYNC);                      /* the index's batch is committed */
        OK(call(C, &q));
        pathf(path, sizeof(path), "%s/fg-1/meta.sqlite", data_dir());
        CHECK(sqlite3_open_v2(path, &rd, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
        CHECK(sqlite3_exec(rd, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
        CHECK(sqlite3_prepare_v2(rd, "SELECT count(*) FROM inodes", -1, &st, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(st) == SQLITE_ROW);  /* the snapshot is held from here */
        n0 = sqlite3_column_int64(st, 0);
        CHECK(n0 >= 2);
        sqlite3_reset(st);
        for (int i = 0; i < 300; i++) {
                char n[16];

                snprintf(n, sizeof(n), "f%d", i);
                (void)mkdir_ok(ROOT, n);
        }
        q = Q(LP_FS_SYNC);
        OK(call(C, &q));
        CHECK_EQ(status_of("error"), 0);
        frames = status_of("wal_frames");
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        CHECK_EQ(sqlite3_column_int64(st, 0), n0);      /* still its snapshot */
        sqlite3_reset(st);
        CHECK(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
        /* A WAL restart pass may hold the index's batch open across a SYNC
         * (ss_db.h [W2]: the log is flushed, the batch commits when the
         * pass ends), so the rows reach the database soon, not at once. */
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        for (;;) {
                int64_t n;

                CHECK(sqlite3_step(st) == SQLITE_ROW);
                n = sqlite3_column_int64(st, 0);
                sqlite3_reset(st);
                if (n == n0 + 300 || cm_now_us() >= deadline) {
                        CHECK_EQ(n, n0 + 300);
                        break;
                }
                usleep(20000);          /* polling a condition, bounded by the deadline */
                q = Q(LP_FS_SYNC);
                OK(call(C, &q));
        }
        sqlite3_finalize(st);
        sqlite3_close(rd);
        /* The next rounds copy everything and a write restarts the WAL. */
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        for (int i = 0; status_of("wal_frames") >= frames; i++) {
                char n[16];

                CHECK(cm_now_us() < deadline);
                snprintf(n, sizeof(n), "g%d", i);
                (void)mkdir_ok(ROOT, n);
        }
        OK(do_lookup(ROOT, "f299"));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* A failed fsync of the concurrent WAL checkpoint (here the one an idle
 * container gets: nothing else syncs SQLite in this test, no segment-log
 * checkpoint is due) stops the
 * container as a parked one does: every request answers EIO, nothing is
 * retried, and a restart replays the log. */
START_TEST(t_sqlite_wal_passive_fault)
{
        struct dsm_faultio *fi = dsm_faultio_new(5);
        struct lp_fs_req q;
        struct ss_opts o;
        uint8_t data[3000];
        uint64_t deadline;
        struct tsrv *t;

        setup();
        CHECK(fi);
        fill(data, sizeof(data), 7);
        ss_vfs_set_faults(&dsm_faultio_ops, fi);
        opts_for(&o, data_dir());
        o.ckpt_interval_ms = UINT32_MAX;        /* no segment-log checkpoint (parked, syncs SQLite) */
        o.sweep_ms = 1000;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        (void)make_file(ROOT, "before", data, sizeof(data));
        q = Q(LP_FS_SYNC);
        OK(call(C, &q));
        dsm_faultio_fail(fi, DSM_FOP_FDATASYNC, 1, EIO, false); /* the next SQLite fsync, once */
        (void)mkdir_ok(ROOT, "d");
        q = Q(LP_FS_SYNC);                      /* in the log, and the index's batch committed */
        OK(call(C, &q));
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        while (status_of("error") == 0)         /* the idle checkpoint fails */
                CHECK(cm_now_us() < deadline);
        CHECK(strstr(A.text, "\"index_error\":\"SQLite wal_checkpoint (passive) (fsync (injected)"));
        check_stopped(fi);
        fault_restart_check(t, fi, data, sizeof(data));
}
END_TEST

/* One mutation of ct putting n xattrs "<prefix><i>" (i from first) of
 * value vlen bytes of v on the root. */
static void put_xattrs(struct ss_ct *ct, const char *prefix, unsigned first, unsigned n, size_t vlen, uint8_t v)
{
        static uint8_t val[1024];
        struct ss_mut m;

        CHECK(vlen <= sizeof(val));
        memset(val, v, vlen);
        ss_mut_init(ct, &m, NULL);
        for (unsigned i = first; i < first + n; i++) {
                char k[32];

                snprintf(k, sizeof(k), "%s%06u", prefix, i);
                ss_cs_put_xattr(&m.cs, SS_ROOT_INO, (const uint8_t *)k, strlen(k), val, vlen);
        }
        CHECK_EQ(ss_mut_commit(ct, &m, NULL), 0);
}

/* The xattr "<prefix><i>" of the root: its length, its bytes all v. */
static void check_xattr(struct ss_ct *ct, const char *prefix, unsigned i, size_t vlen, uint8_t v)
{
        uint8_t buf[1024];
        size_t len = 0;
        char k[32];

        snprintf(k, sizeof(k), "%s%06u", prefix, i);
        CHECK_EQ(ss_db_xattr_get(ct->db, SS_ROOT_INO, (const uint8_t *)k, strlen(k), buf, sizeof(buf), &len), 0);
        CHECK_EQ(len, vlen);
        for (size_t j = 0; j < len; j++)
                CHECK_EQ(buf[j], v);
}

/* ss_ct.h [C7], step by step (issue #7 item 9): a batch kept from its
 * start is rolled back and applied again once a checkpoint has copied
 * every committed frame (not before), readers see it before and after,
 * its commit restarts SQLite's WAL (ss_db.h [W2]) without any wait, and a
 * reopen finds everything, SQLite at the log's last commit. */
START_TEST(t_ct_wal_restart)
{
        struct ss_ct *ct;
        unsigned frames, copied = 0;
        uint64_t seq, applied = 0;

        setup();
        CHECK(mkdir(data_dir(), 0700) == 0);
        CHECK(ss_ct_create(data_dir(), 1, 1, NULL, &ct) == 0);
        for (unsigned i = 0; i < 20; i++) {
                put_xattrs(ct, "a", i, 1, 100, 'a');
                CHECK_EQ(ss_ct_index_commit(ct), 0);    /* a WAL of 20 commits at least */
        }
        CHECK_EQ(ss_ct_index_keep(ct, true), 0);        /* commits the batch; keeps the next */
        for (unsigned i = 0; i < 10; i++)
                put_xattrs(ct, "b", i, 1, 100, 'b');
        CHECK_EQ(ss_ct_index_kept(ct), 10);
        CHECK_EQ(ss_ct_index_restart(ct), 0);           /* frames not copied yet: nothing done */
        CHECK_EQ(ss_ct_index_kept(ct), 10);
        CHECK_EQ(ss_ct_wal_checkpoint_passive(ct, 1, &copied), 0);
        CHECK_EQ(ss_db_wal_passive_end(ct->db), 0);
        CHECK(ss_db_wal_all_copied(ct->db));
        frames = ss_db_wal_frames(ct->db);
        CHECK(frames > 20);
        CHECK_EQ(ss_ct_index_restart(ct), 1);
        CHECK_EQ(ss_ct_index_kept(ct), 10);             /* the same batch, on a fresh snapshot */
        check_xattr(ct, "b", 9, 100, 'b');
        CHECK_EQ(ss_db_meta_get(ct->db, "applied_seq", &applied), 0);
        CHECK_EQ(applied, ct->seq);
        for (unsigned i = 0; i < 5; i++)
                put_xattrs(ct, "c", i, 1, 100, 'c');
        CHECK_EQ(ss_ct_index_kept(ct), 15);
        CHECK_EQ(ss_ct_index_commit(ct), 0);
        CHECK(ss_db_wal_frames(ct->db) < frames);       /* the WAL restarted */
        CHECK_EQ(ss_db_wal_unckpt(ct->db), ss_db_wal_frames(ct->db));
        CHECK_EQ(ss_ct_index_keep(ct, false), 0);
        put_xattrs(ct, "d", 0, 1, 100, 'd');
        CHECK_EQ(ss_ct_index_kept(ct), 0);              /* not kept any more */
        seq = ct->seq;
        ss_ct_close(ct);
        CHECK(ss_ct_open(data_dir(), 1, false, &ct) == 0);
        CHECK_EQ(ct->seq, seq);
        CHECK_EQ(ss_db_meta_get(ct->db, "applied_seq", &applied), 0);
        CHECK_EQ(applied, seq);
        check_xattr(ct, "a", 19, 100, 'a');
        check_xattr(ct, "b", 0, 100, 'b');
        check_xattr(ct, "c", 4, 100, 'c');
        check_xattr(ct, "d", 0, 100, 'd');
        ss_ct_close(ct);
}
END_TEST

/* [C7]'s fault path: SQLite fails while the batch is applied again (here
 * its first write: the batch is bigger than SQLite's page cache, so it
 * spills to the WAL, restarting it, during the apply).  The batch is
 * rolled back, never half applied, the container stops [C5] with SQLite
 * in its error state, and a reopen replays the batch from the log. */
#define SPILL_ROWS 36000u
#define SPILL_PER_COMMIT 1000u

START_TEST(t_ct_wal_restart_fault)
{
        struct dsm_faultio *fi = dsm_faultio_new(7);
        struct ss_ct *ct;
        unsigned copied = 0;
        uint64_t seq, applied = 0, v = 0;

        setup();
        CHECK(fi);
        CHECK(mkdir(data_dir(), 0700) == 0);
        ss_vfs_set_faults(&dsm_faultio_ops, fi);
        CHECK(ss_ct_create(data_dir(), 1, 1, NULL, &ct) == 0);
        /* About 22 MiB of rows: more leaf pages than the 16 MiB cache. */
        for (unsigned i = 0; i < SPILL_ROWS; i += SPILL_PER_COMMIT)
                put_xattrs(ct, "x", i, SPILL_PER_COMMIT, 600, 'x');
        CHECK_EQ(ss_ct_index_keep(ct, true), 0);
        /* The kept batch changes every row (small changesets, every page). */
        for (unsigned i = 0; i < SPILL_ROWS; i += SPILL_PER_COMMIT)
                put_xattrs(ct, "x", i, SPILL_PER_COMMIT, 8, 'y');
        CHECK_EQ(ss_ct_index_kept(ct), SPILL_ROWS / SPILL_PER_COMMIT);
        CHECK_EQ(ss_ct_wal_checkpoint_passive(ct, 1, &copied), 0);
        CHECK_EQ(ss_db_wal_passive_end(ct->db), 0);
        CHECK(ss_db_wal_all_copied(ct->db));
        seq = ct->seq;
        dsm_faultio_fail(fi, DSM_FOP_PWRITE, 1, EIO, false);    /* SQLite's next write */
        CHECK_EQ(ss_ct_index_restart(ct), -EIO);
        CHECK_EQ(ct->err, -EIO);
        CHECK(!ct->batch_open);                         /* rolled back, never half applied */
        CHECK_EQ(ss_db_error(ct->db, NULL), -EIO);
        CHECK_EQ(ss_db_meta_get(ct->db, "applied_seq", &v), -EIO);
        CHECK_EQ(ss_ct_index_commit(ct), 0);            /* nothing open */
        {
                struct ss_mut m;

                ss_mut_init(ct, &m, NULL);
                ss_cs_put_meta(&m.cs, "refused", 1);
                CHECK_EQ(ss_mut_commit(ct, &m, NULL), -EIO);
        }
        ss_ct_close(ct);
        ss_vfs_set_faults(NULL, NULL);
        CHECK(ss_ct_open(data_dir(), 1, false, &ct) == 0);
        CHECK_EQ(ct->seq, seq);
        CHECK_EQ(ss_db_meta_get(ct->db, "applied_seq", &applied), 0);
        CHECK_EQ(applied, seq);
        check_xattr(ct, "x", 0, 8, 'y');
        check_xattr(ct, "x", SPILL_ROWS - 1, 8, 'y');
        CHECK_EQ(ss_db_meta_get(ct->db, "refused", &v), -ENOENT);
        ss_ct_close(ct);
        dsm_faultio_free(fi);
}
END_TEST

/* Issue #7 item 9: SQLite's WAL stays below its limit (SS_WAL_LIMIT
 * rounds of wal_frames frames) under creates that never pause, and it
 * restarts without the container ever being parked for it (status
 * wal_restarts, wal_parked).  No segment-log checkpoint runs (those park
 * once, and commit the index's batch). */
START_TEST(t_wal_restart_unparked)
{
        struct tsrv *t;
        struct ss_opts o;
        struct stat st;
        char wal[PATH_MAX];
        uint64_t limit, deadline, wal_max = 0, n = 0;

        setup();
        opts_for(&o, data_dir());
        o.wal_frames = 1024;
        o.ckpt_bytes = UINT64_MAX;
        o.ckpt_interval_ms = UINT32_MAX;
        limit = (uint64_t)SS_WAL_LIMIT * o.wal_frames * (4096 + 24) + 32;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        pathf(wal, sizeof(wal), "%s/fg-1/meta.sqlite-wal", data_dir());
        deadline = cm_now_us() + 6 * WAIT_MS * 1000ull;
        while (status_of("wal_restarts") < 3) {
                for (int i = 0; i < 50; i++, n++) {
                        char name[24];
                        uint64_t ino;

                        snprintf(name, sizeof(name), "f%llu", (unsigned long long)n);
                        OK(do_create(ROOT, name, O_CREAT | O_EXCL | O_RDONLY, 0644, &ino, NULL));
                        if (stat(wal, &st) == 0 && (uint64_t)st.st_size > wal_max)
                                wal_max = (uint64_t)st.st_size;
                }
                CHECK(wal_max <= limit);
                CHECK(cm_now_us() < deadline);
        }
        CHECK_EQ(status_of("wal_parked"), 0);
        CHECK_EQ(status_of("error"), 0);
        OK(do_lookup(ROOT, "f0"));
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start_opts(&o);                /* and what was created is there */
        C = cl_connect(t->port, 100);
        for (uint64_t i = 0; i < n; i += 97) {
                char name[24];

                snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
                OK(do_lookup(ROOT, name));
        }
        OK(do_lookup(ROOT, "f0"));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
        char buf[65536];
        ssize_t n;
        int a = open(from, O_RDONLY | O_CLOEXEC), b;

        CHECK(a >= 0);
        b = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(b >= 0);
        while ((n = read(a, buf, sizeof(buf))) > 0)
                CHECK(write(b, buf, (size_t)n) == n);
        CHECK(n == 0);
        close(a);
        close(b);
}

static void copy_tree(const char *from, const char *to)
{
        DIR *d = opendir(from);
        struct dirent *e;

        CHECK(d);
        CHECK(mkdir(to, 0700) == 0 || errno == EEXIST);
        while ((e = readdir(d))) {
                char a[PATH_MAX], b[PATH_MAX];
                struct stat st;

                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                pathf(a, sizeof(a), "%s/%s", from, e->d_name);
                pathf(b, sizeof(b), "%s/%s", to, e->d_name);
                CHECK(lstat(a, &st) == 0);
                if (S_ISDIR(st.st_mode))
                        copy_tree(a, b);
                else
                        copy_file(a, b);
        }
        closedir(d);
}

static void rm_db(uint32_t fg)
{
        const char *sfx[] = { "", "-wal", "-shm" };

        for (int i = 0; i < 3; i++) {
                char p[PATH_MAX];

                pathf(p, sizeof(p), "%s/fg-%u/meta.sqlite%s", data_dir(), fg, sfx[i]);
                unlink(p);
        }
}

START_TEST(t_replay_and_rebuild)
{
        struct tsrv *t;
        struct sbuf i1, i2, i3;
        char *s1, *s2, *s_early, path[PATH_MAX], early[PATH_MAX];
        uint64_t applied_early, applied;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        (void)mkdir_ok(ROOT, "early");
        (void)make_file(ROOT, "early-file", "E", 1);
        lp_client_close(C);
        tsrv_stop(t);
        /* keep a copy of SQLite as it is now: it will be behind */
        pathf(path, sizeof(path), "%s/fg-1/meta.sqlite", data_dir());
        pathf(early, sizeof(early), "%s/early.sqlite", tu_tmpdir());
        copy_file(path, early);
        applied_early = db_meta(1, "applied_seq");

        t = tsrv_start();
        C = cl_connect(t->port, 100);
        build_tree();
        s1 = snapshot();
        lp_client_close(C);
        tsrv_stop(t);
        i1 = db_image(1);
        applied = db_meta(1, "applied_seq");
        CHECK(applied > applied_early);

        /* 1. offline rebuild from the segments alone */
        CHECK(ss_ct_rebuild(data_dir(), 1, NULL) == 0);
        i2 = db_image(1);
        CHECK(sb_equal(&i1, &i2));
        CHECK_EQ(db_meta(1, "applied_seq"), applied);
        pathf(path, sizeof(path), "%s/fg-1/meta.sqlite.bak", data_dir());
        CHECK(access(path, F_OK) != 0);         /* the backup is gone after success */

        /* 2. SQLite behind the log: the replay brings it up */
        pathf(path, sizeof(path), "%s/fg-1/meta.sqlite", data_dir());
        rm_db(1);
        copy_file(early, path);
        CHECK_EQ(db_meta(1, "applied_seq"), applied_early);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        s2 = snapshot();
        if (strcmp(s1, s2))
                ck_abort_msg("after replay:\n%s\nexpected:\n%s", s2, s1);
        free(s2);
        lp_client_close(C);
        tsrv_stop(t);
        i3 = db_image(1);
        CHECK(sb_equal(&i1, &i3));
        free(i2.p);
        free(i3.p);

        /* 3. SQLite deleted: rebuilt at start */
        rm_db(1);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        s2 = snapshot();
        CHECK(!strcmp(s1, s2));
        free(s2);
        lp_client_close(C);
        tsrv_stop(t);
        i3 = db_image(1);
        CHECK(sb_equal(&i1, &i3));
        free(i3.p);

        /* 4. SQLite ahead of the log (a power loss kept SQLite pages the log
         *    lost): the log wins, SQLite is rebuilt from it. */
        {
                char seg[PATH_MAX], segcopy[PATH_MAX];

                pathf(seg, sizeof(seg), "%s/fg-1/segments", data_dir());
                pathf(segcopy, sizeof(segcopy), "%s/segcopy", tu_tmpdir());
                copy_tree(seg, segcopy);
                t = tsrv_start();
                C = cl_connect(t->port, 100);
                s_early = snapshot();           /* the state the copy holds */
                (void)mkdir_ok(ROOT, "lost-dir");
                (void)make_file(ROOT, "lost-file", "L", 1);
                lp_client_close(C);
                tsrv_stop(t);
                tu_rmtree(seg);
                copy_tree(segcopy, seg);
                t = tsrv_start();
                C = cl_connect(t->port, 100);
                s2 = snapshot();
                if (strcmp(s_early, s2))
                        ck_abort_msg("after SQLite ahead:\n%s\nexpected:\n%s", s2, s_early);
                EXPECT_ERR(do_lookup(ROOT, "lost-dir"), -ENOENT);
                /* and it goes on working: new inode numbers are not reused */
                (void)mkdir_ok(ROOT, "after");
                free(s2);
                s2 = snapshot();
                lp_client_close(C);
                tsrv_stop(t);

                /* 5. an index that is not a database at all */
                pathf(path, sizeof(path), "%s/fg-1/meta.sqlite", data_dir());
                rm_db(1);
                {
                        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                        CHECK(fd >= 0);
                        CHECK(write(fd, "this is not SQLite, not at all.", 31) == 31);
                        close(fd);
                }
                t = tsrv_start();
                C = cl_connect(t->port, 100);
                free(s_early);
                s_early = snapshot();
                CHECK(!strcmp(s_early, s2));
                (void)lookup_ino(ROOT, "after");
                free(s2);
                free(s_early);
                lp_client_close(C);
                tsrv_stop(t);
        }
        free(i1.p);
        free(s1);
}
END_TEST

START_TEST(t_checkpoint_clean_rebuild)
{
        struct tsrv *t;
        struct ss_opts o;
        struct lp_fs_req q;
        struct sbuf i1, i2;
        uint8_t buf[65536];
        uint64_t f, sess, seq, reclaimed = 0;
        char *s1, *s2;

        setup();
        opts_for(&o, data_dir());
        o.segment_size = 256u << 10;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        build_tree();
        OK(do_create(ROOT, "churn", O_CREAT | O_WRONLY, 0644, &f, &sess));
        for (int round = 0; round < 3; round++) {
                fill(buf, sizeof(buf), (uint64_t)round);
                for (int i = 0; i < 16; i++)
                        OK(do_write(C, f, sess, (uint64_t)i * sizeof(buf), buf, sizeof(buf)));
                OK(do_commit(C, f, sess, 0));
        }
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        q = Q(LP_FS_SS_CHECKPOINT);
        OK(call(C, &q));
        q = Q(LP_FS_SS_STATUS);
        OK(call(C, &q));
        seq = status_num(A.text, "seq");
        CHECK_EQ(status_num(A.text, "checkpoint_seq"), seq);
        CHECK_EQ(status_num(A.text, "applied_seq"), seq);
        q = Q(LP_FS_SS_CLEAN);
        OK(call(C, &q));
        reclaimed = A.value;
        CHECK(reclaimed >= 1);                  /* two rounds of churn were dead */
        /* more work after the checkpoint: replayed on top of its image */
        (void)mkdir_ok(ROOT, "after-ckpt");
        OK(do_rename(ROOT, "empty", ROOT, "empty-renamed", 0));
        s1 = snapshot();
        q = Q(LP_FS_SS_CHECKPOINT);
        q.fg = 77;
        EXPECT_ERR(call(C, &q), -ESTALE);
        lp_client_close(C);
        tsrv_stop(t);
        i1 = db_image(1);
        /* the old commit records are gone: only image + later commits rebuild */
        CHECK(ss_ct_rebuild(data_dir(), 1, NULL) == 0);
        i2 = db_image(1);
        CHECK(sb_equal(&i1, &i2));
        free(i2.p);
        rm_db(1);
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        s2 = snapshot();
        if (strcmp(s1, s2))
                ck_abort_msg("after rebuild from checkpoint:\n%s\nexpected:\n%s", s2, s1);
        lp_client_close(C);
        tsrv_stop(t);
        i2 = db_image(1);
        CHECK(sb_equal(&i1, &i2));
        free(i1.p);
        free(i2.p);
        free(s1);
        free(s2);
}
END_TEST

START_TEST(t_background_maintenance)
{
        struct tsrv *t;
        struct ss_opts o;
        struct lp_fs_req q;
        uint8_t buf[32768], *want;
        uint64_t f, sess, ckpt;
        char *s1, *s2;
        const int rounds = 60;

        setup();
        opts_for(&o, data_dir());
        o.segment_size = 256u << 10;
        o.ckpt_bytes = 512u << 10;      /* checkpoints while we write */
        o.wal_frames = 64;
        o.sweep_ms = 10;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        want = calloc(1, (size_t)rounds * 4096 + sizeof(buf));
        OK(do_create(ROOT, "f", O_CREAT | O_WRONLY, 0644, &f, &sess));
        for (int i = 0; i < rounds; i++) {
                char n[16];

                fill(buf, sizeof(buf), (uint64_t)i + 100);
                OK(do_write(C, f, sess, (uint64_t)i * 4096, buf, sizeof(buf)));
                memcpy(want + (size_t)i * 4096, buf, sizeof(buf));
                OK(do_commit(C, f, sess, i % 7 == 0 ? LP_FS_COMMIT_SYNC : 0));
                snprintf(n, sizeof(n), "n%d", i);
                (void)make_file(ROOT, n, n, strlen(n));
                if (i % 3 == 0)
                        OK(do_unlink(ROOT, n));
        }
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        {
                uint64_t deadline = cm_now_us() + WAIT_MS * 1000ull;

                do {
                        q = Q(LP_FS_SS_STATUS);
                        OK(call(C, &q));
                        ckpt = status_num_opt(A.text, "checkpoint_seq");
                        CHECK(cm_now_us() < deadline);
                } while (ckpt == 0);            /* one runs by itself */
        }
        OK(do_read(C, f, 0, 0, (uint64_t)rounds * 4096 + sizeof(buf)));
        CHECK_EQ(A.datalen, (size_t)rounds * 4096 + sizeof(buf) - 4096);
        CHECK(!memcmp(A.data, want, A.datalen));
        s1 = snapshot();
        lp_client_close(C);
        tsrv_stop(t);
        CHECK(ss_ct_rebuild(data_dir(), 1, NULL) == 0);
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        s2 = snapshot();
        CHECK(!strcmp(s1, s2));
        free(s1);
        free(s2);
        free(want);
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/*
 * Issue #7 item 9: periodic checkpoints are deltas, and the full ones are
 * built from the log (the previous chain) on the work queue while the
 * container keeps being served.  With a tiny trigger, metadata churn
 * (creates, renames, unlinks, xattrs, data) runs through several full
 * checkpoints made that way and the cleaner reclaiming before them; then
 * SQLite thrown away and rebuilt from the segments alone must give the
 * same rows and the same tree.
 */
START_TEST(t_compacted_checkpoints)
{
        struct tsrv *t;
        struct ss_opts o;
        struct lp_fs_req q;
        struct sbuf i1, i2;
        uint8_t buf[16384];
        uint64_t f, sess, d, full = 0, deltas = 0, deadline;
        char *s1, *s2, n[32];
        int round = 0;

        setup();
        opts_for(&o, data_dir());
        o.segment_size = 256u << 10;
        o.ckpt_bytes = 16u << 10;
        o.sweep_ms = 5;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        d = mkdir_ok(ROOT, "churn");
        OK(do_create(ROOT, "data", O_CREAT | O_WRONLY, 0644, &f, &sess));
        deadline = cm_now_us() + 60 * 1000000ull;
        /* The first checkpoint is a parked full one (no chain yet); then
         * wait for two full ones built from the log. */
        while (full < 3 || deltas < 2) {
                CHECK(cm_now_us() < deadline);
                /* Bounded: at most 10 names in churn/, 40 r* in the root. */
                for (int i = 0; i < 10; i++) {
                        snprintf(n, sizeof(n), "f%d", i);
                        (void)make_file(d, n, n, strlen(n));
                }
                for (int i = 0; i < 10; i++) {
                        snprintf(n, sizeof(n), "f%d", i);
                        if (i == round % 10) {
                                char m[40];

                                snprintf(m, sizeof(m), "r%d", round % 40);
                                OK(do_rename(d, n, ROOT, m, 0));
                        } else if (i % 2) {
                                OK(do_unlink(d, n));
                        }
                }
                for (int i = 0; i < 10; i += 2)
                        if (i != round % 10) {
                                snprintf(n, sizeof(n), "f%d", i);
                                OK(do_unlink(d, n));
                        }
                fill(buf, sizeof(buf), (uint64_t)round);
                OK(do_write(C, f, sess, (uint64_t)(round % 8) * sizeof(buf), buf, sizeof(buf)));
                OK(do_commit(C, f, sess, 0));
                q = Q(LP_FS_SS_STATUS);
                OK(call(C, &q));
                full = status_num_opt(A.text, "checkpoints");
                deltas = status_num_opt(A.text, "delta_checkpoints");
                round++;
        }
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        (void)mkdir_ok(ROOT, "after");
        s1 = snapshot();
        lp_client_close(C);
        tsrv_stop(t);
        i1 = db_image(1);
        rm_db(1);
        CHECK(ss_ct_rebuild(data_dir(), 1, NULL) == 0);
        i2 = db_image(1);
        CHECK(sb_equal(&i1, &i2));
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        s2 = snapshot();
        if (strcmp(s1, s2))
                ck_abort_msg("after rebuild from a compacted chain:\n%s\nexpected:\n%s", s2, s1);
        lp_client_close(C);
        tsrv_stop(t);
        free(i1.p);
        free(i2.p);
        free(s1);
        free(s2);
}
END_TEST

/* ---- tests: protocol and administration ------------------------------------------------------ */

START_TEST(t_malformed_and_limits)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint8_t raw[300];
        size_t n = 0;
        uint64_t f, sess;
        uint8_t *data;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        /* garbage payload: EBADMSG, and the connection stays */
        EXPECT_ERR(raw_call(C, LP_MSG_FS_REQ, "\xff\xff\xff\xff", 4), -EBADMSG);
        /* a name of 256 bytes, built by hand (the encoder refuses it) */
        raw[n++] = 0x08;                        /* op */
        raw[n++] = LP_FS_LOOKUP;
        raw[n++] = 0x18;                        /* fg */
        raw[n++] = 1;
        raw[n++] = 0x28;                        /* parent */
        raw[n++] = 1;
        raw[n++] = 0xa2;                        /* name (field 20, bytes) */
        raw[n++] = 0x01;
        raw[n++] = 0x80;                        /* 256 */
        raw[n++] = 0x02;
        memset(raw + n, 'n', 256);
        n += 256;
        EXPECT_ERR(raw_call(C, LP_MSG_FS_REQ, raw, n), -ENAMETOOLONG);
        /* another message type: a Status frame */
        CHECK_EQ(raw_call(C, LP_MSG_USER_MIN + 40, "x", 1), -1000 - LP_STATUS_PROTOCOL);
        /* operations a storage site does not serve */
        q = Q(99);
        EXPECT_ERR(call(C, &q), -EOPNOTSUPP);
        q = Q(LP_FS_CSS_OPEN);
        EXPECT_ERR(call(C, &q), -EOPNOTSUPP);
        /* READ is bounded by LP_FS_DATA_MAX */
        data = malloc(LP_FS_DATA_MAX);
        fill(data, LP_FS_DATA_MAX, 9);
        OK(do_create(ROOT, "f", O_CREAT | O_WRONLY, 0644, &f, &sess));
        OK(do_write(C, f, sess, 0, data, LP_FS_DATA_MAX));
        OK(do_write(C, f, sess, LP_FS_DATA_MAX, data, 1000));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        OK(do_read(C, f, 0, 0, 64u << 20));
        CHECK_EQ(A.datalen, LP_FS_DATA_MAX);
        CHECK(!memcmp(A.data, data, LP_FS_DATA_MAX));
        OK(do_read(C, f, 0, 10, 0));
        CHECK_EQ(A.datalen, 0);
        free(data);
        OK(do_getattr(ROOT, 0));
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

START_TEST(t_admin)
{
        struct tsrv *t;
        struct lp_fs_req q;
        uint64_t f;

        setup();
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        q = Q(LP_FS_SS_STATUS);
        OK(call(C, &q));
        CHECK(A.text && strstr(A.text, "\"site\":1,") && strstr(A.text, "\"containers\":[{\"fg\":1,"));
        CHECK_EQ(A.site, 1);
        /* a new container */
        q = Q(LP_FS_SS_FG_CREATE);
        q.fg = 5;
        set_name(&q, "home");
        OK(call(C, &q));
        EXPECT_ERR(call(C, &q), -EEXIST);
        q.fg = 0;
        EXPECT_ERR(call(C, &q), -EINVAL);
        q = Q(LP_FS_GETATTR);
        q.fg = 5;
        q.ino = ROOT;
        OK(call(C, &q));
        CHECK_EQ(A.attr.mode, 040755);
        q = Q(LP_FS_CREATE);
        q.fg = 5;
        q.parent = ROOT;
        set_name(&q, "in-five");
        q.mode = 0644;
        q.flags = O_CREAT | O_RDONLY;
        OK(call(C, &q));
        f = A.attr.ino;
        CHECK_EQ(f, (1ull << 40) | 2);          /* its own inode pool */
        q = Q(LP_FS_SS_STATUS);
        OK(call(C, &q));
        CHECK(strstr(A.text, "{\"fg\":5,"));
        q = Q(LP_FS_SS_CHECKPOINT);
        q.fg = 5;
        OK(call(C, &q));
        q = Q(LP_FS_SS_CLEAN);
        q.fg = 5;
        OK(call(C, &q));
        lp_client_close(C);
        tsrv_stop(t);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        q = Q(LP_FS_LOOKUP);
        q.fg = 5;
        q.parent = ROOT;
        set_name(&q, "in-five");
        OK(call(C, &q));
        CHECK_EQ(A.attr.ino, f);
        EXPECT_ERR(do_lookup(ROOT, "in-five"), -ENOENT);        /* fg 1 is another tree */
        lp_client_close(C);
        tsrv_stop(t);
}
END_TEST

/* ---- the changeset format itself ------------------------------------------------------------ */

START_TEST(t_changeset_format)
{
        char path[PATH_MAX];
        struct ss_db *db, *db2;
        struct ss_inode in = { 0 }, out;
        struct ss_dirent de = { 0 }, d2;
        struct ss_cs cs;
        struct sbuf i1 = { 0 }, i2 = { 0 };
        struct ss_cs_image im;
        uint64_t v, seed = tu_seed("changeset");
        size_t len;
        uint8_t val[16];

        setup();
        pathf(path, sizeof(path), "%s/a.sqlite", tu_tmpdir());
        CHECK(ss_db_open(path, &db) == 0);
        in.ino = (1ull << 40) | 77;
        in.mode = S_IFLNK | 0777;
        in.nlink = 1;
        in.uid = 4000000000u;
        in.rdev = UINT64_MAX;
        in.size = 3;
        in.atime = (struct ss_time){ INT64_MIN + 1, 999999999 };
        in.mtime = (struct ss_time){ -1, 0 };
        in.ctime = (struct ss_time){ INT64_MAX, 1 };
        in.targetlen = 3;
        memcpy(in.target, "abc", 3);
        de = (struct ss_dirent){ .id = 9, .parent = 1, .ino = in.ino, .type = DT_LNK, .cookie = 1234,
                                 .namelen = 4 };
        memcpy(de.name, "name", 4);
        ss_cs_init(&cs);
        cs.site = 7;
        ss_cs_put_inode(&cs, &in, SS_CS_GSEQ);
        ss_cs_put_dirent(&cs, &de);
        ss_cs_put_xattr(&cs, in.ino, (const uint8_t *)"user.x", 6, "\0\1\2", 3);
        ss_cs_put_meta(&cs, "next_ino", 78);
        ss_cs_seal(&cs);
        CHECK(cs.err == 0);
        CHECK(ss_db_begin(db) == 0);
        CHECK(ss_cs_apply(db, 42, cs.p, cs.len) == 0);
        CHECK(ss_db_commit(db) == 0);
        CHECK(ss_db_inode_get(db, in.ino, &out) == 0);
        CHECK_EQ(out.version, 1);               /* {7: 1} */
        CHECK_EQ(out.lseq, 42);
        CHECK_EQ(out.generation, 42);
        CHECK_EQ(out.uid, 4000000000u);
        CHECK(out.rdev == UINT64_MAX);
        CHECK(out.atime.sec == INT64_MIN + 1 && out.atime.nsec == 999999999);
        CHECK(out.ctime.sec == INT64_MAX && out.mtime.sec == -1);
        CHECK(out.targetlen == 3 && !memcmp(out.target, "abc", 3));
        CHECK(ss_db_lookup(db, 1, (const uint8_t *)"name", 4, &d2) == 0);
        CHECK_EQ(d2.id, 9);
        CHECK(ss_db_xattr_get(db, in.ino, (const uint8_t *)"user.x", 6, val, sizeof(val), &len) == 0);
        CHECK(len == 3 && !memcmp(val, "\0\1\2", 3));
        CHECK(ss_db_meta_get(db, "applied_seq", &v) == 0 && v == 42);
        /* rows after the end mark are a caller bug */
        {
                struct ss_cs bad;

                ss_cs_init(&bad);
                ss_cs_seal(&bad);
                ss_cs_put_meta(&bad, "x", 1);
                CHECK(bad.err == -EINVAL);
                ss_cs_free(&bad);
        }
        /* every truncation of a changeset is refused as a whole, and so is
         * anything after its end */
        {
                uint8_t *longer = malloc(cs.len + 1);

                memcpy(longer, cs.p, cs.len);
                longer[cs.len] = 0;
                CHECK(ss_db_begin(db) == 0);
                CHECK(ss_cs_apply(db, 43, longer, cs.len + 1) == -EBADMSG);
                ss_db_rollback(db);
                free(longer);
        }
        for (size_t cut = 0; cut < cs.len; cut++) {
                CHECK(ss_db_begin(db) == 0);
                CHECK(ss_cs_apply(db, 43, cs.p, cut) == -EBADMSG);
                ss_db_rollback(db);
        }
        /* corrupt bytes never crash and never half-apply */
        for (int i = 0; i < 2000; i++) {
                uint8_t *p = malloc(cs.len);
                int r;

                memcpy(p, cs.p, cs.len);
                p[3 + tu_rand(&seed) % (cs.len - 3)] ^= (uint8_t)(1 + tu_rand(&seed) % 255);
                CHECK(ss_db_begin(db) == 0);
                r = ss_cs_apply(db, 44, p, cs.len);
                CHECK(r == 0 || r == -EBADMSG || r == -EEXIST || r == -EIO);
                ss_db_rollback(db);
                free(p);
        }
        ss_cs_free(&cs);
        /* deletes */
        ss_cs_init(&cs);
        ss_cs_del_xattr(&cs, in.ino, (const uint8_t *)"user.x", 6);
        ss_cs_del_dirent(&cs, 9);
        ss_cs_del_inode(&cs, in.ino, out.vv, out.vvlen, SS_CS_KEEPVV);
        ss_cs_seal(&cs);
        CHECK(ss_db_begin(db) == 0);
        CHECK(ss_cs_apply(db, 45, cs.p, cs.len) == 0);
        CHECK(ss_db_commit(db) == 0);
        CHECK(ss_db_inode_get(db, in.ino, &out) == -ENOENT);
        CHECK(ss_db_dirent_get(db, 9, &d2) == -ENOENT);
        ss_cs_free(&cs);
        /* an image, fed in pieces of every size, rebuilds the same rows */
        for (int i = 0; i < 300; i++) {
                in.ino = 1000 + (uint64_t)i;
                in.mode = S_IFREG | 0644;
                in.targetlen = 0;
                de.id = 100 + (uint64_t)i;
                de.ino = in.ino;
                de.namelen = (uint32_t)snprintf((char *)de.name, sizeof(de.name), "file-%d", i);
                ss_cs_init(&cs);
                cs.site = 3;
                de.cookie = 5000 + (uint64_t)i;
                ss_cs_put_inode(&cs, &in, 0);
                ss_cs_put_dirent(&cs, &de);
                if (i % 5 == 0) {
                        uint8_t big[3000];

                        fill(big, sizeof(big), (uint64_t)i);
                        ss_cs_put_xattr(&cs, in.ino, (const uint8_t *)"user.big", 8, big, sizeof(big));
                }
                ss_cs_seal(&cs);
                CHECK(ss_db_begin(db) == 0);
                CHECK(ss_cs_apply(db, 100 + (uint64_t)i, cs.p, cs.len) == 0);
                CHECK(ss_db_commit(db) == 0);
                ss_cs_free(&cs);
        }
        CHECK(ss_cs_dump_image(db, img_put, &i1) == 0);
        for (int round = 0; round < 4; round++) {
                size_t pos = 0;

                pathf(path, sizeof(path), "%s/b%d.sqlite", tu_tmpdir(), round);
                CHECK(ss_db_open(path, &db2) == 0);
                CHECK(ss_db_begin(db2) == 0);
                CHECK(ss_cs_image_begin(&im, db2, 399) == 0);
                while (pos < i1.len) {
                        size_t k = round == 0 ? 1 : 1 + tu_rand(&seed) % (round == 1 ? 7 : 70000);

                        if (k > i1.len - pos)
                                k = i1.len - pos;
                        CHECK(ss_cs_image_feed(&im, db2, i1.p + pos, k) == 0);
                        pos += k;
                }
                CHECK(ss_cs_image_finish(&im, db2) == 0);
                ss_cs_image_free(&im);
                CHECK(ss_db_commit(db2) == 0);
                i2.len = 0;
                CHECK(ss_cs_dump_image(db2, img_put, &i2) == 0);
                CHECK(sb_equal(&i1, &i2));
                CHECK(ss_db_meta_get(db2, "applied_seq", &v) == 0 && v == 399);
                ss_db_close(db2);
        }
        /* an image cut short is refused */
        pathf(path, sizeof(path), "%s/c.sqlite", tu_tmpdir());
        CHECK(ss_db_open(path, &db2) == 0);
        CHECK(ss_db_begin(db2) == 0);
        CHECK(ss_cs_image_begin(&im, db2, 1) == 0);
        CHECK(ss_cs_image_feed(&im, db2, i1.p, i1.len - 1) == 0);
        CHECK(ss_cs_image_finish(&im, db2) == -EBADMSG);
        ss_cs_image_free(&im);
        ss_db_rollback(db2);
        ss_db_close(db2);
        free(i1.p);
        free(i2.p);
        ss_db_close(db);
}
END_TEST

/*
 * Issue #8 (docs/replication.md, "Identities"): through the operations,
 * every commit counts one update at this site (the container id) on each
 * inode it changes, a directory's included when its entries change; the
 * attributes carry the vector and version = the sum of its counters; a
 * read's access-time update is the copy's own and counts nothing; entry
 * ids come from the container's pool and cookies from names (a renamed
 * entry gets its new name's); a freed orphan leaves a deletion record.
 */
static uint64_t attr_vv_at(const struct lp_fs_attr *a, uint32_t site)
{
        struct dsm_vv v;
        uint64_t c;

        dsm_vv_init(&v);
        CHECK(a->vvlen > 0);
        CHECK(dsm_vv_decode(&v, a->vv, a->vvlen) == (ssize_t)a->vvlen);
        CHECK_EQ(v.n, 1);
        c = dsm_vv_get(&v, site);
        dsm_vv_free(&v);
        CHECK_EQ(c, a->version);
        return c;
}

START_TEST(t_identities)
{
        struct tsrv *t;
        struct lp_fs_req q;
        struct ss_db *db;
        struct ss_dirent de;
        struct ss_inode *in = calloc(1, sizeof(*in));
        char path[PATH_MAX];
        uint64_t d, f, sess, site, vd, root_v, applied;
        uint8_t vv[SS_VV_MAX];
        size_t vl;

        setup();
        CHECK(in);
        t = tsrv_start();
        C = cl_connect(t->port, 100);
        OK(do_getattr(ROOT, 0));
        root_v = A.attr.version;
        d = mkdir_ok(ROOT, "d");
        site = (uint32_t)(d >> 40);
        CHECK(site > 0);
        OK(do_getattr(d, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 1);
        OK(do_getattr(ROOT, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), root_v + 1);
        OK(do_create(d, "f", O_CREAT | O_WRONLY, 0644, &f, &sess));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 1);
        OK(do_getattr(d, 0));
        vd = attr_vv_at(&A.attr, (uint32_t)site);
        CHECK_EQ(vd, 2);
        OK(do_write(C, f, sess, 0, "hello", 5));
        OK(do_commit(C, f, sess, LP_FS_COMMIT_END));
        OK(do_getattr(f, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 2);
        /* a chmod counts */
        q = Q(LP_FS_SETATTR);
        q.ino = f;
        q.valid = LP_FS_SET_MODE;
        q.mode = 0600;
        OK(call(C, &q));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 3);
        /* a read updates the access time (it is older than the change),
         * without counting */
        OK(do_read(C, f, 0, 0, 5));
        OK(do_getattr(f, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 3);
        /* readdirplus carries the vectors too */
        q = Q(LP_FS_READDIR);
        q.ino = d;
        q.flags = 1;
        OK(call(C, &q));
        CHECK_EQ(A.nentries, 3);
        CHECK(A.entries[2].has_attr && A.entries[2].ino == f);
        CHECK_EQ(attr_vv_at(&A.entries[2].attr, (uint32_t)site), 3);
        CHECK_EQ(A.entries[2].next, ss_cs_cookie_hash((const uint8_t *)"f", 1));
        /* rename: the entry keeps its id and gets the new name's cookie */
        OK(do_rename(d, "f", d, "g", 0));
        OK(do_getattr(d, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), vd + 1);
        OK(do_getattr(f, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 4);
        /* unlink, then free the orphan */
        OK(do_unlink(d, "g"));
        OK(do_getattr(f, 0));
        CHECK_EQ(attr_vv_at(&A.attr, (uint32_t)site), 5);
        q = Q(LP_FS_FORGET_ORPHAN);
        q.ino = f;
        OK(call(C, &q));
        lp_client_close(C);
        tsrv_stop(t);

        pathf(path, sizeof(path), "%s/fg-1/meta.sqlite", data_dir());
        CHECK(ss_db_open(path, &db) == 0);
        CHECK(ss_db_lookup(db, ROOT, (const uint8_t *)"d", 1, &de) == 0);
        CHECK_EQ(de.id >> 40, site);            /* from the container's pool */
        CHECK_EQ(de.cookie, ss_cs_cookie_hash((const uint8_t *)"d", 1));
        CHECK(ss_db_inode_get(db, f, in) == -ENOENT);
        CHECK(ss_db_gone_get(db, f, vv, &vl, NULL) == 0);
        {
                struct lp_fs_attr a = { .vv = vv, .vvlen = vl, .version = 6 };

                CHECK_EQ(attr_vv_at(&a, (uint32_t)site), 6);
        }
        /* the deletion is the last change of the stream */
        CHECK(ss_db_meta_get(db, "applied_seq", &applied) == 0);
        CHECK(ss_db_inode_get(db, d, in) == 0);
        CHECK(in->lseq < applied);
        ss_db_close(db);
        free(in);
}
END_TEST

/* ---- the real binary --------------------------------------------------------------------------- */

struct fakecss {
        pthread_t thr;
        uv_loop_t loop;
        uv_async_t stop;
        struct lp_server *srv;
        uint16_t port;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool ready;
        int registers;
        uint64_t reg_site;
        uint32_t reg_port;
        char reg_text[256];
        char reg_host[64];
};

static struct fakecss *FC;

static void fc_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                     size_t len)
{
        struct lp_fs_req q;
        struct lp_fs_resp a = { 0 };
        uint8_t *buf;
        size_t blen;
        bool close_it = false;

        if (type != LP_MSG_FS_REQ || lp_fs_req_decode(payload, len, &q) < 0)
                return;
        pthread_mutex_lock(&FC->mu);
        if (q.op == LP_FS_CSS_REGISTER) {
                FC->registers++;
                FC->reg_site = q.site;
                FC->reg_port = q.port;
                snprintf(FC->reg_text, sizeof(FC->reg_text), "%s", q.text ? q.text : "");
                snprintf(FC->reg_host, sizeof(FC->reg_host), "%s", q.host ? q.host : "");
                close_it = FC->registers == 1;  /* break the first connection */
        }
        pthread_cond_broadcast(&FC->cv);
        pthread_mutex_unlock(&FC->mu);
        lp_fs_req_release(&q);
        if (lp_fs_resp_encode(&a, &buf, &blen) == 0) {
                lp_server_reply(conn, reqid, LP_MSG_FS_RESP, buf, blen);
                free(buf);
        }
        if (close_it)
                lp_server_conn_close(conn);
}

static void fc_stop(uv_async_t *h)
{
        lp_server_close(FC->srv);
        uv_close((uv_handle_t *)h, NULL);
}

static void *fc_main(void *arg)
{
        struct lp_server_callbacks cb = { .on_frame = fc_frame };

        (void)arg;
        uv_loop_init(&FC->loop);
        CHECK(lp_server_new(&FC->loop, KEY, 999, &cb, NULL, &FC->srv) == 0);
        CHECK(lp_server_listen(FC->srv, "127.0.0.1", 0, &FC->port) == 0);
        uv_async_init(&FC->loop, &FC->stop, fc_stop);
        pthread_mutex_lock(&FC->mu);
        FC->ready = true;
        pthread_cond_broadcast(&FC->cv);
        pthread_mutex_unlock(&FC->mu);
        uv_run(&FC->loop, UV_RUN_DEFAULT);
        uv_loop_close(&FC->loop);
        return NULL;
}

static void fc_wait_registers(int n)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += WAIT_MS / 1000;
        pthread_mutex_lock(&FC->mu);
        while (FC->registers < n)
                if (pthread_cond_timedwait(&FC->cv, &FC->mu, &ts) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&FC->mu);
        CHECK(FC->registers >= n);
}

static void binary_path(char *buf, size_t cap)
{
        char exe[PATH_MAX], *p;
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

        CHECK(n > 0);
        exe[n] = 0;
        for (int i = 0; i < 3; i++) {   /* BUILD/tests/unit/check_ss -> BUILD */
                p = strrchr(exe, '/');
                CHECK(p);
                *p = 0;
        }
        pathf(buf, cap, "%s/storage/locus-storaged", exe);
        CHECK(access(buf, X_OK) == 0);
}

/* Start the binary; returns its pid; *ready gets the READY info. */
static pid_t spawn(char *const argv[], int *ready_fd_out)
{
        int p[2];
        pid_t pid;

        CHECK(pipe(p) == 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char fdarg[16];
                char *args[32];
                int n = 0;

                close(p[0]);
                snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
                for (; argv[n]; n++)
                        args[n] = argv[n];
                args[n++] = "--ready-fd";
                args[n++] = fdarg;
                args[n] = NULL;
                signal(SIGPIPE, SIG_DFL);
                if (!getenv("SS_TEST_VERBOSE")) {
                        int nul = open("/dev/null", O_WRONLY);

                        dup2(nul, 2);
                }
                execv(args[0], args);
                _exit(127);
        }
        close(p[1]);
        *ready_fd_out = p[0];
        return pid;
}

static int wait_exit(pid_t pid)
{
        int st;
        uint64_t deadline = cm_now_us() + 30000000ull;

        for (;;) {
                pid_t r = waitpid(pid, &st, WNOHANG);

                CHECK(r >= 0);
                if (r == pid)
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                if (cm_now_us() > deadline) {
                        kill(pid, SIGKILL);
                        ck_abort_msg("process %d did not exit", (int)pid);
                }
                poll(NULL, 0, 10);
        }
}

START_TEST(t_binary)
{
        char bin[PATH_MAX], keyf[PATH_MAX], portf[PATH_MAX], pidf[PATH_MAX], css[64], info[64], buf[64];
        pid_t pid, pid2;
        int rfd, rfd2;
        uint16_t port;
        struct lp_fs_req q;

        setup();
        binary_path(bin, sizeof(bin));
        pathf(keyf, sizeof(keyf), "%s/key", tu_tmpdir());
        pathf(portf, sizeof(portf), "%s/storaged.port", tu_tmpdir());
        pathf(pidf, sizeof(pidf), "%s/storaged.pid", tu_tmpdir());
        FC = calloc(1, sizeof(*FC));
        pthread_mutex_init(&FC->mu, NULL);
        pthread_cond_init(&FC->cv, NULL);
        CHECK(pthread_create(&FC->thr, NULL, fc_main, NULL) == 0);
        pthread_mutex_lock(&FC->mu);
        while (!FC->ready)
                pthread_cond_wait(&FC->cv, &FC->mu);
        pthread_mutex_unlock(&FC->mu);
        snprintf(css, sizeof(css), "127.0.0.1:%u", FC->port);
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--key", keyf, "--site", "1", "--create-root",
                                 "--port-file", portf, "--pid-file", pidf, "--css", css,
                                 "--flush-interval-ms", "2", "--log-level", "debug", NULL };

                pid = spawn(argv, &rfd);
        }
        CHECK(cm_wait_ready(rfd, WAIT_MS, info, sizeof(info)) == 0);
        close(rfd);
        CHECK(!strncmp(info, "port=", 5));
        port = (uint16_t)atoi(info + 5);
        CHECK(cm_read_file(portf, buf, sizeof(buf)) > 0);
        CHECK_EQ(atoi(buf), port);
        CHECK(cm_read_file(pidf, buf, sizeof(buf)) > 0);
        CHECK_EQ(atoi(buf), pid);
        /* registration, and again after the CSS dropped the connection */
        fc_wait_registers(2);
        CHECK_EQ(FC->reg_site, 1);
        CHECK_EQ(FC->reg_port, port);
        CHECK(!strcmp(FC->reg_text, "[1]"));
        CHECK(!strcmp(FC->reg_host, "127.0.0.1"));
        /* it serves; a new container re-registers with the new list */
        C = cl_connect(port, 100);
        (void)mkdir_ok(ROOT, "via-binary");
        q = Q(LP_FS_SS_FG_CREATE);
        q.fg = 3;
        OK(call(C, &q));
        fc_wait_registers(3);
        pthread_mutex_lock(&FC->mu);
        CHECK(!strcmp(FC->reg_text, "[1,3]"));
        pthread_mutex_unlock(&FC->mu);
        /* a second process on the same data directory is refused */
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--key", keyf, "--site", "1", "--create-root", NULL };

                pid2 = spawn(argv, &rfd2);
        }
        CHECK(cm_wait_ready(rfd2, WAIT_MS, info, sizeof(info)) == -EPIPE);
        close(rfd2);
        CHECK_EQ(wait_exit(pid2), 1);
        /* so is --rebuild while it runs */
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--rebuild", NULL };

                pid2 = spawn(argv, &rfd2);
                close(rfd2);
                CHECK_EQ(wait_exit(pid2), 1);
        }
        /* SIGTERM: a clean stop, exit 0, pid file removed */
        lp_client_close(C);
        CHECK(kill(pid, SIGTERM) == 0);
        CHECK_EQ(wait_exit(pid), 0);
        CHECK(access(pidf, F_OK) != 0);
        /* --rebuild offline */
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--rebuild", NULL };

                pid2 = spawn(argv, &rfd2);
                close(rfd2);
                CHECK_EQ(wait_exit(pid2), 0);
        }
        /* bad usage */
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--site", "300", NULL };

                pid2 = spawn(argv, &rfd2);
                close(rfd2);
                CHECK_EQ(wait_exit(pid2), 2);
        }
        /* and it starts again with everything there */
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--key", keyf, "--site", "1", "--create-root",
                                 "--listen", "127.0.0.1:0", NULL };

                pid = spawn(argv, &rfd);
        }
        CHECK(cm_wait_ready(rfd, WAIT_MS, info, sizeof(info)) == 0);
        close(rfd);
        port = (uint16_t)atoi(info + 5);
        C = cl_connect(port, 100);
        (void)lookup_ino(ROOT, "via-binary");
        q = Q(LP_FS_GETATTR);
        q.fg = 3;
        q.ino = ROOT;
        OK(call(C, &q));
        lp_client_close(C);
        CHECK(kill(pid, SIGINT) == 0);
        CHECK_EQ(wait_exit(pid), 0);
        uv_async_send(&FC->stop);
        pthread_join(FC->thr, NULL);
}
END_TEST

/* kill -9 of the real daemon: everything answered is there after a
 * restart (appended to the log before the answer), nothing staged is. */
START_TEST(t_kill9)
{
        char bin[PATH_MAX], keyf[PATH_MAX], info[64];
        uint8_t buf[50000];
        uint64_t f, g, sess, staged;
        char *s1, *s2;
        pid_t pid;
        int rfd;
        struct lp_fs_req q;

        setup();
        binary_path(bin, sizeof(bin));
        pathf(keyf, sizeof(keyf), "%s/key", tu_tmpdir());
        fill(buf, sizeof(buf), 42);
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--key", keyf, "--site", "1", "--create-root",
                                 "--flush-interval-ms", "60000", NULL };

                pid = spawn(argv, &rfd);
        }
        CHECK(cm_wait_ready(rfd, WAIT_MS, info, sizeof(info)) == 0);
        close(rfd);
        C = cl_connect((uint16_t)atoi(info + 5), 100);
        build_tree();
        OK(do_create(ROOT, "acked", O_CREAT | O_WRONLY, 0644, &f, &sess));
        OK(do_write(C, f, sess, 0, buf, sizeof(buf)));
        OK(do_commit(C, f, sess, 0));                   /* no SYNC: appended only */
        OK(do_write(C, f, sess, 100, "never committed", 15));
        OK(do_create(ROOT, "staged", O_CREAT | O_WRONLY, 0644, &staged, &g));
        OK(do_write(C, staged, g, 0, "staged only", 11));
        q = Q(LP_FS_SETXATTR);
        q.ino = f;
        set_name(&q, "user.k");
        q.data = (const uint8_t *)"v";
        q.datalen = 1;
        OK(call(C, &q));
        s1 = snapshot();
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK_EQ(wait_exit(pid), 128 + SIGKILL);
        lp_client_close(C);
        {
                char *argv[] = { bin, "--data", (char *)data_dir(), "--key", keyf, "--site", "1", "--create-root", NULL };

                pid = spawn(argv, &rfd);
        }
        CHECK(cm_wait_ready(rfd, WAIT_MS, info, sizeof(info)) == 0);
        close(rfd);
        C = cl_connect((uint16_t)atoi(info + 5), 100);
        s2 = snapshot();
        if (strcmp(s1, s2))
                ck_abort_msg("after kill -9:\n%s\nbefore:\n%s", s2, s1);
        OK(do_read(C, f, 0, 0, sizeof(buf)));
        CHECK(A.datalen == sizeof(buf) && !memcmp(A.data, buf, sizeof(buf)));
        OK(do_getattr(staged, 0));
        CHECK_EQ(A.attr.size, 0);
        EXPECT_ERR(do_write(C, f, sess, 0, "x", 1), -ESTALE);
        free(s1);
        free(s2);
        lp_client_close(C);
        CHECK(kill(pid, SIGTERM) == 0);
        CHECK_EQ(wait_exit(pid), 0);
}
END_TEST

/* kill -9 while SQLite's WAL restarts over and over without parking
 * (ss_ct.h [C7]: held batches, batches applied again, restarts): a child
 * process runs the storage server (wal_frames 256: a restart every ~350
 * creates) and creates files without pause, telling each answer through a
 * pipe; it is killed at a random answer, and every answered create must be
 * in the reopened container.  Three rounds on the same data. */
static void wal_kill9_child(int wfd, uint64_t first, const char *dir)
{
        struct ss_opts o;
        struct tsrv *t;

        opts_for(&o, dir);      /* not data_dir(): tu_tmpdir() is the parent's only */
        o.wal_frames = 16;
        o.ckpt_bytes = UINT64_MAX;
        o.ckpt_interval_ms = UINT32_MAX;
        t = tsrv_start_opts(&o);
        C = cl_connect(t->port, 100);
        for (uint64_t n = first;; n++) {
                char name[24];

                snprintf(name, sizeof(name), "k%llu", (unsigned long long)n);
                if (do_create(ROOT, name, O_CREAT | O_EXCL | O_RDONLY, 0644, NULL, NULL) != 0)
                        _exit(3);
                if (write(wfd, &n, sizeof(n)) != (ssize_t)sizeof(n))
                        _exit(4);
        }
}

START_TEST(t_wal_restart_kill9)
{
        uint64_t seed = tu_seed("wal_restart_kill9"), acked = 0;
        char dir[PATH_MAX];

        setup();
        pathf(dir, sizeof(dir), "%s", data_dir());
        for (int round = 0; round < 3; round++) {
                uint64_t target = acked + 1500 + tu_rand(&seed) % 3000, n;
                struct ss_ct *ct;
                struct ss_dirent d;
                int p[2];
                pid_t pid;

                CHECK(pipe(p) == 0);
                pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        close(p[0]);
                        wal_kill9_child(p[1], acked, dir);
                }
                close(p[1]);
                while (acked < target) {
                        CHECK(read(p[0], &n, sizeof(n)) == (ssize_t)sizeof(n));
                        acked = n + 1;
                }
                CHECK(kill(pid, SIGKILL) == 0);
                CHECK_EQ(wait_exit(pid), 128 + SIGKILL);
                while (read(p[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
                        acked = n + 1;          /* answers told before the kill */
                close(p[0]);
                CHECK_EQ(ss_ct_open(dir, 1, false, &ct), 0);
                for (uint64_t i = 0; i < acked; i++) {
                        char name[24];

                        snprintf(name, sizeof(name), "k%llu", (unsigned long long)i);
                        if (ss_db_lookup(ct->db, ROOT, (const uint8_t *)name, strlen(name), &d) != 0)
                                ck_abort_msg("round %d: %s answered but lost (%llu answered)", round, name,
                                             (unsigned long long)acked);
                }
                ss_ct_close(ct);
                /* The next round goes on from the first name not answered
                 * (it may exist: created, not told). */
                CHECK(ss_ct_open(dir, 1, false, &ct) == 0);
                for (;;) {
                        char name[24];

                        snprintf(name, sizeof(name), "k%llu", (unsigned long long)acked);
                        if (ss_db_lookup(ct->db, ROOT, (const uint8_t *)name, strlen(name), &d) != 0)
                                break;
                        acked++;
                }
                ss_ct_close(ct);
        }
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("ss");
        struct {
                const char *name;
                const TTest *fn;
                int timeout;
        } cases[] = {
                { "root_and_lookup", t_root_and_lookup, 60 },
                { "atime_and_cookie", t_atime_and_cookie, 60 },
                { "create_posix", t_create_posix, 60 },
                { "setattr", t_setattr, 60 },
                { "link_unlink_orphan", t_link_unlink_orphan, 60 },
                { "rmdir", t_rmdir, 60 },
                { "rename", t_rename, 60 },
                { "rename_whiteout", t_rename_whiteout, 60 },
                { "symlink", t_symlink, 60 },
                { "readdir", t_readdir, 60 },
                { "xattr", t_xattr, 60 },
                { "session_visibility", t_session_visibility, 60 },
                { "session_blocks", t_session_blocks, 60 },
                { "session_restart_estale", t_session_restart_estale, 60 },
                { "conflict", t_conflict, 60 },
                { "large_sparse", t_large_sparse, 120 },
                { "fallocate", t_fallocate, 60 },
                { "copy_range", t_copy_range, 60 },
                { "sync_durability", t_sync_durability, 60 },
                { "session_limits", t_session_limits, 120 },
                { "nospace", t_nospace, 60 },
                { "restart_durability", t_restart_durability, 120 },
                { "db_sticky_error", t_db_sticky_error, 60 },
                { "sqlite_fsync_fault", t_sqlite_fsync_fault, 60 },
                { "sqlite_write_fault", t_sqlite_write_fault, 60 },
                { "commit_drop_frees_txn", t_commit_drop_frees_txn, 60 },
                { "db_wal_concurrent", t_db_wal_concurrent, 60 },
                { "wal_ckpt_concurrent", t_wal_ckpt_concurrent, 60 },
                { "sqlite_wal_passive_fault", t_sqlite_wal_passive_fault, 60 },
                { "ct_wal_restart", t_ct_wal_restart, 60 },
                { "ct_wal_restart_fault", t_ct_wal_restart_fault, 180 },
                { "wal_restart_unparked", t_wal_restart_unparked, 180 },
                { "replay_and_rebuild", t_replay_and_rebuild, 180 },
                { "checkpoint_clean_rebuild", t_checkpoint_clean_rebuild, 180 },
                { "background_maintenance", t_background_maintenance, 180 },
                { "compacted_checkpoints", t_compacted_checkpoints, 180 },
                { "malformed_and_limits", t_malformed_and_limits, 60 },
                { "admin", t_admin, 60 },
                { "changeset_format", t_changeset_format, 120 },
                { "identities", t_identities, 60 },
                { "binary", t_binary, 120 },
                { "kill9", t_kill9, 120 },
                { "wal_restart_kill9", t_wal_restart_kill9, 180 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                TCase *tc = tcase_create(cases[i].name);

                tcase_add_test(tc, cases[i].fn);
                tcase_set_timeout(tc, cases[i].timeout);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
