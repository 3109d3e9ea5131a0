/*
 * check_us.c -- locusfs-mount's logic without a kernel mount: option
 * parsing, inode numbers and mount crossing, the RPC layer's retries and
 * deadlines against a real lp_server on 127.0.0.1 (port 0) run in a thread
 * of the test, and the core's write sessions, orphans, lookup counts and
 * xattr/EXDEV/ENAMETOOLONG rules against a fake storage site + CSS on that
 * same server.
 *
 * The fake server ("fake") runs a libuv loop in its own thread.  Each test
 * installs a handler that sees every decoded request on the loop thread and
 * answers it (at once or after a delay), keeps silent, or closes the
 * connection.  Every request and every answer is recorded with its time,
 * so tests can check the order of events across threads.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "testutil.h"
#include "us_core.h"
#include "us_dent.h"
#include "us_sa.h"
#include "us_mtab.h"
#include "us_opt.h"
#include "us_ops.h"
#include "us_rpc.h"
#include "us_sig.h"

#define WAIT_US (10u * 1000000u)        /* bound on any wait for an event */

static const uint8_t KEY[LP_KEY_SIZE] = {
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

/* ---- the fake server ---------------------------------------------------------- */

enum { ACT_REPLY, ACT_SILENT, ACT_CLOSE };

struct event {
        uint32_t op;
        uint64_t ino;
        uint64_t session;
        uint32_t flags;
        uint64_t t_recv;
        uint64_t t_reply;               /* 0: not answered (yet) */
        char name[64];
};

struct delayed {
        uv_timer_t timer;
        struct delayed *next;
        struct lp_conn *conn;
        uint64_t reqid;
        uint8_t *buf;
        size_t len;
        int ev;                         /* index in events */
        bool dead;
};

struct fake;
/* Fill resp (status etc.); return ACT_*; *delay_ms for a late answer. */
typedef int (*handler_fn)(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                          unsigned *delay_ms);

struct fake {
        pthread_t thr;
        uv_loop_t loop;
        uv_async_t stop;
        struct lp_server *srv;
        uint16_t port;                  /* 0: any */
        int listen_err;
        handler_fn handler;

        pthread_mutex_t mu;             /* everything below */
        pthread_cond_t cv;
        bool ready;
        int nconnect, nclose;
        int drop_conns;                 /* close this many new connections at once */
        struct event ev[4096];
        int nev;
        struct delayed *delayed;
        /* the fake filesystem (fs_handler) */
        uint64_t next_session;
        uint64_t sessions[64];          /* live session ids */
        int nsessions;
        uint64_t version;
        uint64_t size;
        unsigned commit_delay_ms;
        unsigned read_delay_ms, open_delay_ms;
        int close_next;                 /* close instead of answering this many */
        uint64_t mt_site;               /* CSS_MOUNTTABLE: fg 1's primary (0: site 1 here) */
        uint16_t mt_port;
        int getxattr_status;
};

static struct fake *F;

static uint64_t now_us(void)
{
        return cm_now_us();
}

static void cond_init(pthread_cond_t *cv)
{
        pthread_condattr_t a;

        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(cv, &a);
        pthread_condattr_destroy(&a);
}

static void f_wait(uint64_t deadline)
{
        struct timespec ts;

        ck_assert_msg(now_us() < deadline, "timed out waiting for the fake server");
        ts.tv_sec = (time_t)(deadline / 1000000u);
        ts.tv_nsec = (long)(deadline % 1000000u) * 1000;
        pthread_cond_timedwait(&F->cv, &F->mu, &ts);
}

static void on_connect(struct lp_conn *conn, uint64_t site)
{
        bool drop = false;

        (void)site;
        pthread_mutex_lock(&F->mu);
        F->nconnect++;
        if (F->drop_conns > 0) {
                F->drop_conns--;
                drop = true;
        }
        pthread_cond_broadcast(&F->cv);
        pthread_mutex_unlock(&F->mu);
        if (drop)
                lp_server_conn_close(conn);
}

static void on_close(struct lp_conn *conn)
{
        pthread_mutex_lock(&F->mu);
        F->nclose++;
        for (struct delayed *d = F->delayed; d; d = d->next)
                if (d->conn == conn)
                        d->dead = true;
        pthread_cond_broadcast(&F->cv);
        pthread_mutex_unlock(&F->mu);
}

static void delayed_closed(uv_handle_t *h)
{
        struct delayed *d = h->data;

        free(d->buf);
        free(d);
}

static void delayed_fire(uv_timer_t *t)
{
        struct delayed *d = t->data, **pp;

        pthread_mutex_lock(&F->mu);
        for (pp = &F->delayed; *pp; pp = &(*pp)->next) {
                if (*pp == d) {
                        *pp = d->next;
                        break;
                }
        }
        if (!d->dead) {
                F->ev[d->ev].t_reply = now_us();
                pthread_mutex_unlock(&F->mu);
                lp_server_reply(d->conn, d->reqid, LP_MSG_FS_RESP, d->buf, d->len);
                pthread_mutex_lock(&F->mu);
        }
        pthread_cond_broadcast(&F->cv);
        pthread_mutex_unlock(&F->mu);
        uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void on_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                     const void *payload, size_t len)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        unsigned delay = 0;
        uint8_t *buf = NULL;
        size_t blen = 0;
        int act, ev;

        (void)flags;
        ck_assert_int_eq(type, LP_MSG_FS_REQ);
        ck_assert_int_eq(lp_fs_req_decode(payload, len, &req), 0);
        pthread_mutex_lock(&F->mu);
        ck_assert_int_lt(F->nev, (int)(sizeof(F->ev) / sizeof(F->ev[0])));
        ev = F->nev++;
        F->ev[ev].op = req.op;
        F->ev[ev].ino = req.ino;
        F->ev[ev].session = req.session;
        F->ev[ev].flags = req.flags;
        F->ev[ev].t_recv = now_us();
        snprintf(F->ev[ev].name, sizeof(F->ev[ev].name), "%.*s", (int)req.namelen,
                 req.name ? (const char *)req.name : "");
        memset(&resp, 0, sizeof(resp));
        act = F->handler(F, &req, &resp, &delay);
        pthread_cond_broadcast(&F->cv);
        pthread_mutex_unlock(&F->mu);

        if (act == ACT_CLOSE) {
                lp_server_conn_close(conn);
        } else if (act == ACT_REPLY) {
                ck_assert_int_eq(lp_fs_resp_encode(&resp, &buf, &blen), 0);
                if (!delay) {
                        pthread_mutex_lock(&F->mu);
                        F->ev[ev].t_reply = now_us();
                        pthread_mutex_unlock(&F->mu);
                        lp_server_reply(conn, reqid, LP_MSG_FS_RESP, buf, blen);
                        free(buf);
                } else {
                        struct delayed *d = calloc(1, sizeof(*d));

                        ck_assert_ptr_nonnull(d);
                        d->conn = conn;
                        d->reqid = reqid;
                        d->buf = buf;
                        d->len = blen;
                        d->ev = ev;
                        d->timer.data = d;
                        uv_timer_init(&F->loop, &d->timer);
                        pthread_mutex_lock(&F->mu);
                        d->next = F->delayed;
                        F->delayed = d;
                        pthread_mutex_unlock(&F->mu);
                        uv_timer_start(&d->timer, delayed_fire, delay, 0);
                }
        }
        lp_fs_req_release(&req);
}

static const struct lp_server_callbacks fake_cb = {
        .on_connect = on_connect,
        .on_frame = on_frame,
        .on_close = on_close,
};

static void on_stop(uv_async_t *a)
{
        pthread_mutex_lock(&F->mu);
        for (struct delayed *d = F->delayed; d; d = d->next) {
                uv_timer_stop(&d->timer);
                uv_close((uv_handle_t *)&d->timer, delayed_closed);
        }
        F->delayed = NULL;
        pthread_mutex_unlock(&F->mu);
        if (F->srv)
                lp_server_close(F->srv);
        uv_close((uv_handle_t *)a, NULL);
}

static void *fake_main(void *arg)
{
        int r;

        (void)arg;
        uv_loop_init(&F->loop);
        uv_async_init(&F->loop, &F->stop, on_stop);
        r = lp_server_new(&F->loop, KEY, 77, &fake_cb, F, &F->srv);
        if (!r)
                r = lp_server_listen(F->srv, "127.0.0.1", F->port, &F->port);
        pthread_mutex_lock(&F->mu);
        F->listen_err = r;
        F->ready = true;
        pthread_cond_broadcast(&F->cv);
        pthread_mutex_unlock(&F->mu);
        uv_run(&F->loop, UV_RUN_DEFAULT);
        uv_loop_close(&F->loop);
        return NULL;
}

static void fake_start(handler_fn h, uint16_t port)
{
        uint64_t deadline = now_us() + WAIT_US;

        F = calloc(1, sizeof(*F));
        ck_assert_ptr_nonnull(F);
        pthread_mutex_init(&F->mu, NULL);
        cond_init(&F->cv);
        F->handler = h;
        F->port = port;
        F->version = 100;
        F->next_session = 1000;
        ck_assert_int_eq(pthread_create(&F->thr, NULL, fake_main, NULL), 0);
        pthread_mutex_lock(&F->mu);
        while (!F->ready)
                f_wait(deadline);
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(F->listen_err, 0);
}

static void fake_stop(void)
{
        uv_async_send(&F->stop);
        pthread_join(F->thr, NULL);
        pthread_mutex_destroy(&F->mu);
        pthread_cond_destroy(&F->cv);
        free(F);
        F = NULL;
}

static int count_op(uint32_t op)
{
        int n = 0;

        pthread_mutex_lock(&F->mu);
        for (int i = 0; i < F->nev; i++)
                n += F->ev[i].op == op;
        pthread_mutex_unlock(&F->mu);
        return n;
}

/* Index of the k-th (0-based) event of op, or -1. */
static int find_op(uint32_t op, int k)
{
        int r = -1;

        pthread_mutex_lock(&F->mu);
        for (int i = 0; i < F->nev; i++) {
                if (F->ev[i].op == op && k-- == 0) {
                        r = i;
                        break;
                }
        }
        pthread_mutex_unlock(&F->mu);
        return r;
}

static struct event get_ev(int i)
{
        struct event e;

        pthread_mutex_lock(&F->mu);
        e = F->ev[i];
        pthread_mutex_unlock(&F->mu);
        return e;
}

/* A port on which nothing listens (yet). */
static uint16_t free_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t sl = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
        close(fd);
        return ntohs(a.sin_port);
}

/* ---- handlers ---------------------------------------------------------------- */

static int h_ok(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                unsigned *delay)
{
        (void)f;
        (void)delay;
        resp->has_attr = true;
        resp->attr.ino = req->ino ? req->ino : 42;
        resp->attr.mode = S_IFREG | 0644;
        resp->attr.nlink = 1;
        return ACT_REPLY;
}

static int h_silent(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                    unsigned *delay)
{
        (void)f;
        (void)req;
        (void)resp;
        (void)delay;
        return ACT_SILENT;
}

/* Close the connection instead of answering the first close_next requests. */
static int h_close_then_ok(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                           unsigned *delay)
{
        if (f->close_next > 0) {
                f->close_next--;
                return ACT_CLOSE;
        }
        return h_ok(f, req, resp, delay);
}

/* "Unavailable" for the first close_next requests, then answers. */
static int h_unavailable_then_ok(struct fake *f, const struct lp_fs_req *req,
                                 struct lp_fs_resp *resp, unsigned *delay)
{
        if (f->close_next > 0) {
                f->close_next--;
                resp->status = -EHOSTUNREACH;
                return ACT_REPLY;
        }
        return h_ok(f, req, resp, delay);
}

static int h_enoent(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                    unsigned *delay)
{
        (void)f;
        (void)req;
        (void)delay;
        resp->status = -ENOENT;
        return ACT_REPLY;
}

/* ---- the fake filesystem ------------------------------------------------------- */

/*
 * fg 1: root (ino 1) holds "f" (ino 10, regular), "d" (ino 5, a directory
 * on which fg 2 is mounted) and "g" (ino 11, regular).  fg 2's root is a
 * directory.  Sessions: OPEN/CREATE with a writable mode start one; WRITE,
 * GETATTR, READ, COMMIT name it; an unknown one answers ESTALE.
 */
#define INO_F 10u
#define INO_G 11u
#define INO_D 5u

static bool sess_known(struct fake *f, uint64_t id)
{
        for (int i = 0; i < f->nsessions; i++)
                if (f->sessions[i] == id)
                        return true;
        return false;
}

static void sess_forget(struct fake *f, uint64_t id)
{
        for (int i = 0; i < f->nsessions; i++) {
                if (f->sessions[i] == id) {
                        f->sessions[i] = f->sessions[--f->nsessions];
                        return;
                }
        }
}

static uint64_t sess_start(struct fake *f)
{
        uint64_t id = ++f->next_session;

        ck_assert_int_lt(f->nsessions, 64);
        f->sessions[f->nsessions++] = id;
        return id;
}

static struct lp_fs_mount fs_mounts[2];

static void fs_attr(struct fake *f, uint32_t fg, uint64_t ino, struct lp_fs_attr *a)
{
        memset(a, 0, sizeof(*a));
        a->ino = ino;
        a->nlink = 1;
        a->generation = 7;
        a->version = f->version;
        if (ino == 1 || (fg == 1 && ino == INO_D)) {
                a->mode = S_IFDIR | 0755;
                a->nlink = 2;
        } else {
                a->mode = S_IFREG | 0644;
                a->size = f->size;
        }
}

static int fs_handler(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                      unsigned *delay)
{
        bool writable = (req->flags & O_ACCMODE) != O_RDONLY;

        if (f->close_next > 0) {
                f->close_next--;
                return ACT_CLOSE;
        }
        switch (req->op) {
        case LP_FS_CSS_MOUNTTABLE:
                fs_mounts[0] = (struct lp_fs_mount){ .fg = 1, .name = "root", .path = "/",
                                                     .site = f->mt_site ? f->mt_site : 1,
                                                     .host = "127.0.0.1",
                                                     .port = f->mt_port ? f->mt_port : f->port };
                fs_mounts[1] = (struct lp_fs_mount){ .fg = 2, .name = "home", .parent_fg = 1,
                                                     .parent_ino = INO_D, .path = "/d",
                                                     .site = 1, .host = "127.0.0.1",
                                                     .port = f->port };
                resp->mounts = fs_mounts;
                resp->nmounts = 2;
                return ACT_REPLY;
        case LP_FS_CSS_OPEN:
                resp->site = 1;
                resp->host = "127.0.0.1";
                resp->port = f->port;
                resp->version = f->version;
                return ACT_REPLY;
        case LP_FS_CSS_CLOSE:
        case LP_FS_CSS_OPENED:
        case LP_FS_CSS_ORPHAN:
        case LP_FS_FORGET_ORPHAN:
        case LP_FS_SYNC:
                return ACT_REPLY;
        case LP_FS_LOOKUP: {
                uint64_t ino = 0;

                if (req->namelen == 1 && req->name[0] == 'f')
                        ino = INO_F;
                else if (req->namelen == 1 && req->name[0] == 'g')
                        ino = INO_G;
                else if (req->namelen == 1 && req->name[0] == 'd')
                        ino = INO_D;
                if (!ino || req->fg != 1) {
                        resp->status = -ENOENT;
                        return ACT_REPLY;
                }
                resp->has_attr = true;
                fs_attr(f, req->fg, ino, &resp->attr);
                return ACT_REPLY;
        }
        case LP_FS_GETATTR:
        case LP_FS_SETATTR:
                if (req->session && !sess_known(f, req->session)) {
                        resp->status = -ESTALE;
                        return ACT_REPLY;
                }
                resp->has_attr = true;
                fs_attr(f, req->fg, req->ino, &resp->attr);
                return ACT_REPLY;
        case LP_FS_OPEN:
        case LP_FS_CREATE:
                resp->has_attr = true;
                fs_attr(f, req->fg, req->op == LP_FS_CREATE ? INO_G : req->ino, &resp->attr);
                resp->version = f->version;
                if (writable)
                        resp->session = sess_start(f);
                if (req->op == LP_FS_OPEN)
                        *delay = f->open_delay_ms;
                return ACT_REPLY;
        case LP_FS_WRITE:
                if (!sess_known(f, req->session)) {
                        resp->status = -ESTALE;
                        return ACT_REPLY;
                }
                resp->value = req->datalen;
                if (req->offset + req->datalen > f->size)
                        f->size = req->offset + req->datalen;
                return ACT_REPLY;
        case LP_FS_READ:
                if (req->session && !sess_known(f, req->session)) {
                        resp->status = -ESTALE;
                        return ACT_REPLY;
                }
                resp->data = (const uint8_t *)"hello";
                resp->datalen = req->length < 5 ? req->length : 5;
                *delay = f->read_delay_ms;
                return ACT_REPLY;
        case LP_FS_COMMIT:
                if (!sess_known(f, req->session)) {
                        resp->status = -ESTALE;
                        return ACT_REPLY;
                }
                f->version++;
                resp->version = f->version;
                if (req->flags & LP_FS_COMMIT_END)
                        sess_forget(f, req->session);
                *delay = f->commit_delay_ms;
                return ACT_REPLY;
        case LP_FS_ABORT:
                sess_forget(f, req->session);
                return ACT_REPLY;
        case LP_FS_UNLINK:
                resp->ino = INO_F;
                resp->orphan = true;
                return ACT_REPLY;
        case LP_FS_GETXATTR:
                if (f->getxattr_status) {
                        /* what the wire makes of ENODATA */
                        resp->status = f->getxattr_status;
                        return ACT_REPLY;
                }
                if (req->length == 0) {
                        resp->value = 10;
                        return ACT_REPLY;
                }
                resp->data = (const uint8_t *)"0123456789";
                resp->datalen = 10;
                return ACT_REPLY;
        case LP_FS_LISTXATTR:
                resp->data = (const uint8_t *)"user.a\0system.posix_acl_access\0user.bb";
                resp->datalen = 39;
                return ACT_REPLY;
        case LP_FS_READDIR: {
                static struct lp_fs_dirent ents[4];

                memset(ents, 0, sizeof(ents));
                ents[0] = (struct lp_fs_dirent){ .ino = 1, .next = 1, .type = 4,
                                                 .name = (const uint8_t *)".", .namelen = 1 };
                ents[1] = (struct lp_fs_dirent){ .ino = 1, .next = 2, .type = 4,
                                                 .name = (const uint8_t *)"..", .namelen = 2 };
                ents[2] = (struct lp_fs_dirent){ .ino = INO_D, .next = 3, .type = 4,
                                                 .name = (const uint8_t *)"d", .namelen = 1 };
                ents[3] = (struct lp_fs_dirent){ .ino = INO_F, .next = 4, .type = 8,
                                                 .name = (const uint8_t *)"f", .namelen = 1 };
                for (int i = 0; i < 4; i++) {
                        ents[i].has_attr = (req->flags & 1) != 0;
                        fs_attr(f, req->fg, ents[i].ino, &ents[i].attr);
                }
                resp->entries = ents;
                resp->nentries = 4;
                resp->eof = true;
                return ACT_REPLY;
        }
        default:
                resp->status = -EOPNOTSUPP;
                return ACT_REPLY;
        }
}

/* ---- core helpers -------------------------------------------------------------- */

static struct us_core *core_new(uint64_t timeout_us)
{
        struct us_core_opts o;
        struct us_core *core;
        struct us_ctx ctx;

        memset(&o, 0, sizeof(o));
        o.timeout_us = timeout_us;
        o.site = 9;
        snprintf(o.css_host, sizeof(o.css_host), "127.0.0.1");
        o.css_port = F->port;
        ck_assert_int_eq(us_core_new(&o, KEY, &core), 0);
        us_ctx_self(core, &ctx);
        ck_assert_int_eq(us_core_refresh_mtab(core, &ctx), 0);
        return core;
}

static struct us_ctx *ctx_of(struct us_core *core)
{
        static __thread struct us_ctx ctx;

        us_ctx_self(core, &ctx);
        return &ctx;
}

#define FINO_F (((uint64_t)1 << 48) | INO_F)

/* ---- options ------------------------------------------------------------------- */

static bool has_arg(const struct us_config *c, const char *needle)
{
        for (int i = 0; i < c->args.argc; i++)
                if (strstr(c->args.argv[i], needle))
                        return true;
        return false;
}

#define NARGS(a) ((int)(sizeof(a) / sizeof((a)[0])))

START_TEST(t_opt_full)
{
        char *a[] = { "locusfs-mount", "/mnt/x", "-o",
                        "key=/k,css=10.1.2.3:7000,timeout=2.5,site=3,ro", "-f", "--ready-fd",
                        "5", "--log-level=debug", "--syslog" };
        struct us_config c;

        ck_assert_int_eq(us_opt_parse(NARGS(a), a, false, &c), 0);
        ck_assert_str_eq(c.mountpoint, "/mnt/x");
        ck_assert_ptr_null(c.source);
        ck_assert_str_eq(c.key_file, "/k");
        ck_assert_str_eq(c.css_host, "10.1.2.3");
        ck_assert_uint_eq(c.css_port, 7000);
        ck_assert_uint_eq(c.timeout_us, 2500000);
        ck_assert_uint_eq(c.entry_timeout_us, US_DEFAULT_CACHE_US);
        ck_assert_uint_eq(c.site, 3);
        ck_assert(c.foreground);
        ck_assert_int_eq(c.ready_fd, 5);
        ck_assert_int_eq(c.log_level, LOG_DEBUG);
        ck_assert(c.use_syslog);
        ck_assert_uint_eq(c.max_threads, US_DEFAULT_MAX_THREADS);
        /* FUSE options: ours added, the user's kept, ours taken out */
        ck_assert(has_arg(&c, "default_permissions"));
        ck_assert(has_arg(&c, "subtype=locusfs"));
        ck_assert(has_arg(&c, "fsname=locusfs"));
        ck_assert(has_arg(&c, "ro"));
        ck_assert(!has_arg(&c, "allow_other"));
        ck_assert(!has_arg(&c, "key="));
        ck_assert(!has_arg(&c, "css="));
        ck_assert(!has_arg(&c, "timeout="));
        ck_assert(!has_arg(&c, "ready-fd"));
        us_opt_free(&c);
}
END_TEST

START_TEST(t_opt_defaults_and_source)
{
        char *a[] = { "locusfs-mount", "127.0.0.1:7001", "/mnt", "-okey=k" };
        char *b[] = { "locusfs-mount", "locus", "/mnt", "-o", "key=k,css_port_file=run/p",
                        "-d" };
        struct us_config c;

        ck_assert_int_eq(us_opt_parse(NARGS(a), a, true, &c), 0);
        ck_assert_str_eq(c.source, "127.0.0.1:7001");
        ck_assert_str_eq(c.mountpoint, "/mnt");
        ck_assert_str_eq(c.css_host, "127.0.0.1");
        ck_assert_uint_eq(c.css_port, 7001);
        ck_assert_uint_eq(c.timeout_us, US_DEFAULT_TIMEOUT_US);
        ck_assert_int_eq(c.ready_fd, -1);
        ck_assert_int_eq(c.log_level, LOG_INFO);
        ck_assert(!c.foreground);
        ck_assert(has_arg(&c, "allow_other"));          /* as root */
        ck_assert(has_arg(&c, "fsname=127.0.0.1:7001"));
        us_opt_free(&c);

        ck_assert_int_eq(us_opt_parse(NARGS(b), b, false, &c), 0);
        ck_assert_str_eq(c.css_host, "127.0.0.1");
        ck_assert_uint_eq(c.css_port, 0);
        ck_assert_str_eq(c.css_port_file, "run/p");
        ck_assert(c.debug);
        ck_assert(c.foreground);                        /* -d implies -f */
        ck_assert_int_eq(c.log_level, LOG_DEBUG);
        us_opt_free(&c);
}
END_TEST

/* The writeback cache is off unless writeback (the last one given wins),
 * and neither option reaches libfuse, which would refuse it. */
START_TEST(t_opt_writeback)
{
        char *a[] = { "locusfs-mount", "/mnt", "-okey=k,css=h:1" };
        char *e[] = { "locusfs-mount", "/mnt", "-okey=k,css=h:1,writeback,nowriteback" };
        char *b[] = { "locusfs-mount", "/mnt", "-okey=k,css=h:1,nowriteback" };
        char *d[] = { "locusfs-mount", "/mnt", "-okey=k,css=h:1,nowriteback", "-o", "writeback" };
        struct us_config c;

        ck_assert_int_eq(us_opt_parse(NARGS(a), a, false, &c), 0);
        ck_assert(!c.writeback);
        us_opt_free(&c);
        ck_assert_int_eq(us_opt_parse(NARGS(e), e, false, &c), 0);
        ck_assert(!c.writeback);
        ck_assert(!has_arg(&c, "nowriteback"));
        us_opt_free(&c);
        ck_assert_int_eq(us_opt_parse(NARGS(b), b, false, &c), 0);
        ck_assert(!c.writeback);
        ck_assert(!has_arg(&c, "writeback"));
        us_opt_free(&c);
        ck_assert_int_eq(us_opt_parse(NARGS(d), d, false, &c), 0);
        ck_assert(c.writeback);
        ck_assert(!has_arg(&c, "writeback"));
        us_opt_free(&c);
}
END_TEST

START_TEST(t_opt_errors)
{
        static const struct {
                const char *args[6];
                const char *err;
        } cases[] = {
                { { "/mnt", "-o", "css=h:1" }, "key=" },
                { { "/mnt", "-o", "key=k" }, "css=" },
                { { "-o", "key=k,css=h:1" }, "MOUNTPOINT" },
                { { "a", "b", "c", "-o", "key=k,css=h:1" }, "too many" },
                { { "/mnt", "-o", "key=k,css=h:1,timeout=0" }, "timeout" },
                { { "/mnt", "-o", "key=k,css=h:1,timeout=abc" }, "timeout" },
                { { "/mnt", "-o", "key=k,css=h:1,timeout=-1" }, "timeout" },
                { { "/mnt", "-o", "key=k,css=h:1,site=x" }, "site" },
                { { "/mnt", "-o", "key=k,css=h:1,entry_timeout=0" }, "entry_timeout" },
                { { "/mnt", "-o", "key=k,css=h:1,attr_timeout=x" }, "attr_timeout" },
                { { "/mnt", "-o", "key=k,css=nocolon" }, "css" },
                { { "/mnt", "-o", "key=k,css=h:0" }, "port 0" },
                { { "/mnt", "-o", "key=k,css=h:1", "--ready-fd", "x" }, "ready-fd" },
                { { "/mnt", "-o", "key=k,css=h:1", "--log-level", "loud" }, "log-level" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *argv[8] = { "locusfs-mount" };
                struct us_config c;
                int n = 1;

                for (int j = 0; j < 6 && cases[i].args[j]; j++)
                        argv[n++] = (char *)cases[i].args[j];
                ck_assert_int_eq(us_opt_parse(n, argv, false, &c), -EINVAL);
                ck_assert_msg(strstr(c.err, cases[i].err), "case %zu: \"%s\" lacks \"%s\"", i,
                              c.err, cases[i].err);
                us_opt_free(&c);
        }
}
END_TEST

START_TEST(t_opt_cache_timeouts)
{
        char *a[] = { "locusfs-mount", "/mnt", "-o", "key=k,css=h:1,entry_timeout=60,attr_timeout=0.5" };
        struct us_config c;

        ck_assert_int_eq(us_opt_parse(NARGS(a), a, false, &c), 0);
        ck_assert_uint_eq(c.entry_timeout_us, 60000000);
        ck_assert_uint_eq(c.attr_timeout_us, 500000);
        ck_assert(!has_arg(&c, "entry_timeout"));       /* ours: libfuse would refuse it */
        ck_assert(!has_arg(&c, "attr_timeout"));
        us_opt_free(&c);
}
END_TEST

/* us_dent (docs/coherence.md "Names"): what a note about a directory
 * invalidates. */
struct dent_seen {
        char names[8][16];
        int n;
};

static void dent_cb(void *ctx, uint64_t parent, const char *name, size_t len)
{
        struct dent_seen *s = ctx;

        ck_assert_uint_eq(strlen(name), len);
        ck_assert_int_lt(s->n, 8);
        snprintf(s->names[s->n++], sizeof(s->names[0]), "%llu/%s", (unsigned long long)parent, name);
}

static bool dent_has(const struct dent_seen *s, const char *what)
{
        for (int i = 0; i < s->n; i++)
                if (!strcmp(s->names[i], what))
                        return true;
        return false;
}

START_TEST(t_dent)
{
        struct us_dent *d;
        struct dent_seen seen = { 0 };
        uint64_t later = cm_now_us() + 60000000u;

        ck_assert_int_eq(us_dent_new(4, &d), 0);
        ck_assert(us_dent_add(d, 1, "a", 1, later));
        ck_assert(us_dent_add(d, 1, "a", 1, later));    /* the same name again: one entry */
        ck_assert(us_dent_add(d, 1, "b", 1, later));
        ck_assert(us_dent_add(d, 7, "a", 1, later));
        ck_assert_uint_eq(us_dent_count(d), 3);
        /* the names of one directory, and only those, once */
        ck_assert_uint_eq(us_dent_take(d, 1, dent_cb, &seen), 2);
        ck_assert(dent_has(&seen, "1/a") && dent_has(&seen, "1/b"));
        ck_assert_uint_eq(us_dent_take(d, 1, dent_cb, &seen), 0);
        ck_assert_uint_eq(us_dent_count(d), 1);
        /* full: entries whose time is over make room, live ones do not */
        ck_assert(us_dent_add(d, 2, "x", 1, later));
        ck_assert(us_dent_add(d, 2, "y", 1, 1));        /* over already */
        ck_assert(us_dent_add(d, 2, "z", 1, later));
        ck_assert_uint_eq(us_dent_count(d), 4);
        ck_assert(us_dent_add(d, 3, "new", 3, later));  /* pruned "y" */
        ck_assert(!us_dent_add(d, 3, "more", 4, later));
        seen.n = 0;
        ck_assert_uint_eq(us_dent_take_all(d, dent_cb, &seen), 4);
        ck_assert(dent_has(&seen, "7/a") && dent_has(&seen, "3/new") && !dent_has(&seen, "2/y"));
        ck_assert_uint_eq(us_dent_count(d), 0);
        us_dent_free(d);
}
END_TEST

START_TEST(t_opt_help)
{
        char *a[] = { "locusfs-mount", "-h" };
        struct us_config c;

        ck_assert_int_eq(us_opt_parse(NARGS(a), a, false, &c), 0);
        ck_assert(c.show_help);
        us_opt_free(&c);
}
END_TEST

/* ---- inode numbers and the mount table ---------------------------------------- */

START_TEST(t_ino_mapping)
{
        uint32_t fg;
        uint64_t ino, f;

        ck_assert_int_eq(us_ino_to_fuse(1, 1, &f), 0);
        ck_assert_uint_eq(f, 1);                        /* FUSE_ROOT_ID */
        ck_assert_int_eq(us_ino_from_fuse(1, &fg, &ino), 0);
        ck_assert_uint_eq(fg, 1);
        ck_assert_uint_eq(ino, 1);

        ck_assert_int_eq(us_ino_to_fuse(1, 10, &f), 0);
        ck_assert_uint_eq(f, ((uint64_t)1 << 48) | 10);
        ck_assert_int_eq(us_ino_to_fuse(2, 1, &f), 0);
        ck_assert_uint_eq(f, ((uint64_t)2 << 48) | 1);
        ck_assert_int_eq(us_ino_from_fuse(f, &fg, &ino), 0);
        ck_assert_uint_eq(fg, 2);
        ck_assert_uint_eq(ino, 1);
        /* container 1, counter 2: ino = 1 << 40 | 2 */
        ck_assert_int_eq(us_ino_to_fuse(7, ((uint64_t)1 << 40) | 2, &f), 0);
        ck_assert_int_eq(us_ino_from_fuse(f, &fg, &ino), 0);
        ck_assert_uint_eq(fg, 7);
        ck_assert_uint_eq(ino, ((uint64_t)1 << 40) | 2);

        ck_assert_int_eq(us_ino_to_fuse(0, 5, &f), -EOVERFLOW);
        ck_assert_int_eq(us_ino_to_fuse(0x10000, 5, &f), -EOVERFLOW);
        ck_assert_int_eq(us_ino_to_fuse(3, (uint64_t)1 << 48, &f), -EOVERFLOW);
        ck_assert_int_eq(us_ino_to_fuse(3, 0, &f), -EOVERFLOW);
        ck_assert_int_eq(us_ino_from_fuse(5, &fg, &ino), -ESTALE);      /* fg 0 */
        ck_assert_int_eq(us_ino_from_fuse(((uint64_t)1 << 48) | 1, &fg, &ino), -ESTALE);
        ck_assert_int_eq(us_ino_from_fuse((uint64_t)4 << 48, &fg, &ino), -ESTALE);
}
END_TEST

START_TEST(t_mtab)
{
        struct lp_fs_mount m[] = {
                { .fg = 3, .parent_fg = 1, .parent_ino = 50, .host = "h3", .port = 3, .site = 3 },
                { .fg = 1, .host = "h1", .port = 1, .site = 1 },
                { .fg = 2, .parent_fg = 1, .parent_ino = 40, .host = "h2", .port = 2, .site = 2 },
                { .fg = 4, .parent_fg = 2, .parent_ino = 9, .host = "", .port = 0 },
                { .fg = 2, .parent_fg = 1, .parent_ino = 41, .host = "dup", .port = 9 },
                { .fg = 5, .parent_fg = 1, .parent_ino = 40, .host = "h5", .port = 5 },
                { .fg = 0x10000, .parent_fg = 1, .parent_ino = 60, .host = "big", .port = 6 },
                { .fg = 6, .parent_fg = 6, .parent_ino = 2, .host = "self", .port = 6 },
        };
        struct us_mtab *mt;
        struct us_site s;
        uint32_t fg;
        uint64_t ino;

        ck_assert_int_eq(us_mtab_new(&mt), 0);
        ck_assert_int_eq(us_mtab_site(mt, 1, &s), -ENOENT);
        ck_assert_int_eq(us_mtab_set(mt, m, sizeof(m) / sizeof(m[0])), 0);
        ck_assert_uint_eq(us_mtab_count(mt), 5);        /* 1, 2, 3, 4, 5 */
        ck_assert_int_eq(us_mtab_site(mt, 2, &s), 0);
        ck_assert_str_eq(s.host, "h2");                 /* the first entry of fg 2 wins */
        ck_assert_uint_eq(s.port, 2);
        ck_assert_int_eq(us_mtab_site(mt, 4, &s), -EHOSTUNREACH);
        ck_assert_int_eq(us_mtab_site(mt, 6, &s), -ENOENT);

        ck_assert_int_eq(us_mtab_mounted_on(mt, 1, 40, &fg), 1);
        ck_assert_uint_eq(fg, 2);                       /* 5 on the same spot is dropped */
        ck_assert_int_eq(us_mtab_mounted_on(mt, 1, 50, &fg), 1);
        ck_assert_uint_eq(fg, 3);
        ck_assert_int_eq(us_mtab_mounted_on(mt, 2, 9, &fg), 1);
        ck_assert_uint_eq(fg, 4);
        ck_assert_int_eq(us_mtab_mounted_on(mt, 1, 41, &fg), 0);
        ck_assert_int_eq(us_mtab_mounted_on(mt, 1, 60, &fg), 0);
        ck_assert_int_eq(us_mtab_mounted_on(mt, 3, 40, &fg), 0);

        ck_assert_int_eq(us_mtab_mountpoint(mt, 3, &fg, &ino), 0);
        ck_assert_uint_eq(fg, 1);
        ck_assert_uint_eq(ino, 50);
        ck_assert_int_eq(us_mtab_mountpoint(mt, 1, &fg, &ino), -ENOENT);
        ck_assert(us_mtab_has_mounts_in(mt, 1));
        ck_assert(us_mtab_has_mounts_in(mt, 2));
        ck_assert(!us_mtab_has_mounts_in(mt, 3));

        /* a new table replaces the old one */
        ck_assert_int_eq(us_mtab_set(mt, m + 1, 1), 0);
        ck_assert_uint_eq(us_mtab_count(mt), 1);
        ck_assert_int_eq(us_mtab_mounted_on(mt, 1, 40, &fg), 0);
        us_mtab_free(mt);
}
END_TEST

/* ---- RPC: retries and deadlines ------------------------------------------------ */

static struct us_target target_of(uint16_t port)
{
        struct us_target t;

        memset(&t, 0, sizeof(t));
        t.what = "test";
        snprintf(t.addr.host, sizeof(t.addr.host), "127.0.0.1");
        t.addr.port = port;
        return t;
}

static int do_call(struct us_rpc *rpc, uint16_t port, uint32_t op, uint64_t timeout_us,
                   enum us_resend rs, uint64_t *ret_elapsed)
{
        struct us_target t = target_of(port);
        struct us_call call = { .deadline = now_us() + timeout_us };
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint64_t start = now_us();
        int r;

        memset(&req, 0, sizeof(req));
        req.op = op;
        req.fg = 1;
        req.ino = 42;
        r = us_rpc_call(rpc, &t, &call, &req, rs, &resp);
        if (ret_elapsed)
                *ret_elapsed = now_us() - start;
        if (r == 0) {
                ck_assert(resp.has_attr);
                ck_assert_uint_eq(resp.attr.ino, 42);
                lp_fs_resp_release(&resp);
        }
        return r;
}

START_TEST(t_rpc_basic_and_status)
{
        struct us_rpc *rpc;
        struct us_rpc_stats st;

        fake_start(h_ok, 0);
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(do_call(rpc, F->port, LP_FS_GETATTR, WAIT_US, US_RESEND_ANY,
                                         NULL), 0);
        us_rpc_stats(rpc, &st);
        ck_assert_uint_eq(st.connects, 1);              /* one cached connection */
        ck_assert_uint_eq(st.calls, 5);
        us_rpc_free(rpc);
        fake_stop();

        /* An error answer is the result: not retried. */
        fake_start(h_enoent, 0);
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_LOOKUP, WAIT_US, US_RESEND_ANY, NULL),
                         -ENOENT);
        ck_assert_int_eq(count_op(LP_FS_LOOKUP), 1);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

START_TEST(t_rpc_dropped_connections)
{
        struct us_rpc *rpc;
        struct us_rpc_stats st;

        fake_start(h_ok, 0);
        pthread_mutex_lock(&F->mu);
        F->drop_conns = 3;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_GETATTR, WAIT_US, US_RESEND_ANY, NULL), 0);
        us_rpc_stats(rpc, &st);
        ck_assert_uint_ge(st.connects, 4);
        ck_assert_int_eq(count_op(LP_FS_GETATTR), 1);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

START_TEST(t_rpc_silent_times_out)
{
        struct us_rpc *rpc;
        uint64_t el;

        fake_start(h_silent, 0);
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_GETATTR, 800000, US_RESEND_ANY, &el),
                         -ETIMEDOUT);
        ck_assert_uint_ge(el, 790000);
        ck_assert_uint_lt(el, 2000000);
        /* the request was sent once, not again on the same connection */
        ck_assert_int_eq(count_op(LP_FS_GETATTR), 1);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

struct late_start {
        uint16_t port;
        unsigned after_ms;
};

static void *late_start_main(void *arg)
{
        struct late_start *ls = arg;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ls->after_ms * 1000000 };

        nanosleep(&ts, NULL);
        fake_start(h_ok, ls->port);
        return NULL;
}

START_TEST(t_rpc_refused_then_up)
{
        struct late_start ls = { .port = free_port(), .after_ms = 400 };
        struct us_rpc *rpc;
        struct us_rpc_stats st;
        pthread_t thr;
        uint64_t el;

        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        /* nobody listens: refused until the deadline, then ETIMEDOUT */
        ck_assert_int_eq(do_call(rpc, ls.port, LP_FS_GETATTR, 500000, US_RESEND_ANY, &el),
                         -ETIMEDOUT);
        ck_assert_uint_ge(el, 490000);
        ck_assert_uint_lt(el, 1500000);
        us_rpc_stats(rpc, &st);
        ck_assert_uint_ge(st.connect_failures, 3);      /* it did retry */

        /* the server comes up while we retry: the call succeeds */
        ck_assert_int_eq(pthread_create(&thr, NULL, late_start_main, &ls), 0);
        ck_assert_int_eq(do_call(rpc, ls.port, LP_FS_GETATTR, WAIT_US, US_RESEND_ANY, &el), 0);
        ck_assert_uint_ge(el, 300000);
        pthread_join(thr, NULL);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

START_TEST(t_rpc_resend_rules)
{
        struct us_rpc *rpc;

        /* Connection lost after a create went out: EIO, not sent again. */
        fake_start(h_close_then_ok, 0);
        pthread_mutex_lock(&F->mu);
        F->close_next = 1;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_CREATE, WAIT_US, US_RESEND_UNSENT, NULL),
                         -EIO);
        ck_assert_int_eq(count_op(LP_FS_CREATE), 1);

        /* The same for an idempotent request: sent again until answered. */
        pthread_mutex_lock(&F->mu);
        F->close_next = 2;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_READ, WAIT_US, US_RESEND_ANY, NULL), 0);
        ck_assert_int_eq(count_op(LP_FS_READ), 3);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

/* A peer that cannot serve yet ("unavailable"): asked again until it can,
 * or until the deadline; a request that may not be sent twice is not. */
START_TEST(t_rpc_unavailable_retried)
{
        struct us_rpc *rpc;
        uint64_t el;

        fake_start(h_unavailable_then_ok, 0);
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        pthread_mutex_lock(&F->mu);
        F->close_next = 3;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_CSS_OPEN, WAIT_US, US_RESEND_ANY, NULL), 0);
        ck_assert_int_eq(count_op(LP_FS_CSS_OPEN), 4);

        pthread_mutex_lock(&F->mu);
        F->close_next = 1;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_MKDIR, WAIT_US, US_RESEND_UNSENT, NULL),
                         -EHOSTUNREACH);
        ck_assert_int_eq(count_op(LP_FS_MKDIR), 1);

        pthread_mutex_lock(&F->mu);
        F->close_next = 1000000;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(do_call(rpc, F->port, LP_FS_CSS_OPEN, 500000, US_RESEND_ANY, &el),
                         -ETIMEDOUT);
        ck_assert_uint_ge(el, 490000);
        ck_assert_uint_lt(el, 1500000);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

/* The peer closed a cached connection while it sat idle (a restart): the
 * next request, even one that may not be sent twice, goes out on a new
 * connection and succeeds. */
START_TEST(t_rpc_idle_connection_closed)
{
        struct us_rpc *rpc;
        struct us_rpc_stats st;
        uint16_t port;

        fake_start(h_ok, 0);
        port = F->port;
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        ck_assert_int_eq(do_call(rpc, port, LP_FS_GETATTR, WAIT_US, US_RESEND_ANY, NULL), 0);
        fake_stop();                    /* closes our connection from its side */
        fake_start(h_ok, port);
        ck_assert_int_eq(do_call(rpc, port, LP_FS_CREATE, WAIT_US, US_RESEND_UNSENT, NULL), 0);
        ck_assert_int_eq(count_op(LP_FS_CREATE), 1);
        us_rpc_stats(rpc, &st);
        ck_assert_uint_eq(st.connects, 2);
        us_rpc_free(rpc);
        fake_stop();
}
END_TEST

static uint64_t stop_at;

static int stop_fn(void *arg)
{
        (void)arg;
        return now_us() >= stop_at ? -EINTR : 0;
}

START_TEST(t_rpc_interrupted_while_retrying)
{
        struct us_target t = target_of(free_port());
        struct us_call call = { .deadline = now_us() + WAIT_US, .stop = stop_fn };
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_rpc *rpc;
        uint64_t start = now_us(), el;

        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);
        memset(&req, 0, sizeof(req));
        req.op = LP_FS_GETATTR;
        stop_at = start + 300000;
        ck_assert_int_eq(us_rpc_call(rpc, &t, &call, &req, US_RESEND_ANY, &resp), -EINTR);
        el = now_us() - start;
        ck_assert_uint_ge(el, 290000);
        ck_assert_uint_lt(el, 1500000);
        us_rpc_free(rpc);
}
END_TEST

/* ---- the core: names ------------------------------------------------------------ */

#define FINO_D2 (((uint64_t)2 << 48) | 1)      /* root of fg 2, mounted on "d" */

START_TEST(t_core_lookup_crossing_counts)
{
        struct us_core_stats st;
        struct us_entry e;
        struct us_core *core;
        char longname[300];
        struct us_dir d;
        int n;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);

        /* "d" is a mount point: the answer is the root of fg 2 */
        ck_assert_int_eq(us_core_lookup(core, ctx_of(core), 1, "d", &e), 0);
        ck_assert_uint_eq(e.fino, FINO_D2);
        ck_assert_uint_eq(e.st.st_ino, FINO_D2);
        ck_assert(S_ISDIR(e.st.st_mode));
        ck_assert_uint_eq(us_core_nlookup(core, FINO_D2), 1);
        n = find_op(LP_FS_GETATTR, 0);
        ck_assert_int_ge(n, 0);
        ck_assert_uint_eq(get_ev(n).ino, 1);

        /* lookup counts add up, forget takes them away, nodes go */
        ck_assert_int_eq(us_core_lookup(core, ctx_of(core), 1, "f", &e), 0);
        ck_assert_uint_eq(e.fino, FINO_F);
        ck_assert_uint_eq(e.generation, 7);
        ck_assert_int_eq(us_core_lookup(core, ctx_of(core), 1, "f", &e), 0);
        ck_assert_uint_eq(us_core_nlookup(core, FINO_F), 2);
        us_core_forget(core, FINO_F, 1);
        ck_assert_uint_eq(us_core_nlookup(core, FINO_F), 1);
        us_core_forget(core, FINO_F, 5);        /* more than counted: clamps */
        us_core_forget(core, FINO_D2, 1);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.nodes, 0);

        ck_assert_int_eq(us_core_lookup(core, ctx_of(core), 1, "nope", &e), -ENOENT);
        ck_assert_uint_eq(us_core_nlookup(core, 1), 0);

        /* answered without asking anyone */
        n = count_op(LP_FS_LOOKUP);
        memset(longname, 'x', 256);
        longname[256] = 0;
        ck_assert_int_eq(us_core_lookup(core, ctx_of(core), 1, longname, &e), -ENAMETOOLONG);
        ck_assert_int_eq(us_core_mkdir(core, ctx_of(core), 1, longname, 0755, &e),
                         -ENAMETOOLONG);
        ck_assert_int_eq(us_core_rename(core, ctx_of(core), 1, "f", FINO_D2, "x", 0), -EXDEV);
        ck_assert_int_eq(us_core_link(core, ctx_of(core), FINO_F, FINO_D2, "x", &e), -EXDEV);
        ck_assert_int_eq(us_core_rename(core, ctx_of(core), 1, "f", 1, "x", 8), -EINVAL);
        ck_assert_int_eq(us_core_rename(core, ctx_of(core), 1, "f", 1, "x", RENAME_WHITEOUT | RENAME_EXCHANGE),
                         -EINVAL);
        ck_assert_int_eq(count_op(LP_FS_LOOKUP), n);
        ck_assert_int_eq(count_op(LP_FS_RENAME), 0);
        ck_assert_int_eq(count_op(LP_FS_LINK), 0);
        ck_assert_int_eq(count_op(LP_FS_MKDIR), 0);

        /* removing a mount point: EBUSY */
        ck_assert_int_eq(us_core_rmdir(core, ctx_of(core), 1, "d"), -EBUSY);
        ck_assert_int_eq(us_core_rename(core, ctx_of(core), 1, "d", 1, "e", 0), -EBUSY);
        ck_assert_int_eq(count_op(LP_FS_RMDIR), 0);

        /* readdirplus: the mount point shows the mounted root */
        ck_assert_int_eq(us_core_readdir(core, ctx_of(core), 1, 0, 100, true, &d), 0);
        ck_assert_uint_eq(d.n, 4);
        ck_assert_str_eq(d.ents[0].name, ".");
        ck_assert(d.ents[0].dot);
        ck_assert_uint_eq(d.ents[0].fino, 1);
        ck_assert(d.ents[1].dot);
        ck_assert_str_eq(d.ents[2].name, "d");
        ck_assert_uint_eq(d.ents[2].fino, FINO_D2);
        ck_assert(d.ents[2].has_attr);
        ck_assert_uint_eq(d.ents[2].st.st_ino, FINO_D2);
        ck_assert_uint_eq(d.ents[3].fino, FINO_F);
        ck_assert(d.ents[3].has_attr);
        ck_assert_uint_eq(d.ents[3].next, 4);
        ck_assert(d.eof);
        us_dir_release(&d);
        /* readdir does not count lookups; us_ops counts what it hands out */
        ck_assert_uint_eq(us_core_nlookup(core, FINO_F), 0);

        us_core_free(core);
        fake_stop();
}
END_TEST

/* ---- the core: write sessions ------------------------------------------------------ */

static struct us_fh *open_f(struct us_core *core, int flags)
{
        struct us_fh *fh;
        bool keep;

        ck_assert_int_eq(us_core_open(core, ctx_of(core), FINO_F, flags, &fh, &keep), 0);
        return fh;
}

START_TEST(t_core_session_shared)
{
        struct us_fh *w1, *w2, *r1;
        struct us_core_stats st;
        struct lp_fs_resp resp;
        struct us_core *core;
        uint64_t sid;
        int i;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        w1 = open_f(core, O_WRONLY);
        w2 = open_f(core, O_RDWR);
        r1 = open_f(core, O_RDONLY);
        ck_assert_int_eq(count_op(LP_FS_CSS_OPEN), 3);
        ck_assert_int_eq(count_op(LP_FS_OPEN), 2);      /* w1 (session), r1; w2 joins */
        sid = us_core_session_of(core, FINO_F, NULL);
        ck_assert_uint_ne(sid, 0);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.sessions, 1);
        ck_assert_uint_eq(st.handles, 3);

        ck_assert_int_eq(us_core_write(core, ctx_of(core), w1, 0, "abc", 3), 3);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w2, 3, "def", 3), 3);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), r1, 0, "x", 1), -EBADF);
        for (i = 0; i < 2; i++)
                ck_assert_uint_eq(get_ev(find_op(LP_FS_WRITE, i)).session, sid);
        /* read-your-writes: a read-only handle reads through the session */
        ck_assert_int_eq(us_core_read(core, ctx_of(core), r1, 0, 100, &resp), 0);
        ck_assert_uint_eq(resp.datalen, 5);
        lp_fs_resp_release(&resp);
        ck_assert_uint_eq(get_ev(find_op(LP_FS_READ, 0)).session, sid);
        {
                struct stat sb;

                ck_assert_int_eq(us_core_getattr(core, ctx_of(core), FINO_F, NULL, &sb), 0);
                i = count_op(LP_FS_GETATTR);
                ck_assert_uint_eq(get_ev(find_op(LP_FS_GETATTR, i - 1)).session, sid);
        }

        /* fsync commits and keeps the session */
        ck_assert_int_eq(us_core_fsync(core, ctx_of(core), w2, false), 0);
        i = find_op(LP_FS_COMMIT, 0);
        ck_assert_int_ge(i, 0);
        ck_assert_uint_eq(get_ev(i).flags, LP_FS_COMMIT_SYNC);
        ck_assert_uint_eq(us_core_session_of(core, FINO_F, NULL), sid);
        ck_assert_int_eq(us_core_flush(core, ctx_of(core), w1), 0);

        /* setattr: mode and mtime in one request naming the session (the
         * storage site applies the mode at once and answers the session's
         * view), also without a handle (chmod(2) beside an open fd) */
        {
                struct stat in, out;

                memset(&in, 0, sizeof(in));
                in.st_mode = 0600;
                in.st_mtim.tv_sec = 12345;
                ck_assert_int_eq(us_core_setattr(core, ctx_of(core), FINO_F, w1, &in,
                                                 LP_FS_SET_MODE | LP_FS_SET_MTIME, &out), 0);
                ck_assert_int_eq(count_op(LP_FS_SETATTR), 1);
                ck_assert_uint_eq(get_ev(find_op(LP_FS_SETATTR, 0)).session, sid);
                ck_assert_int_eq(us_core_setattr(core, ctx_of(core), FINO_F, NULL, &in,
                                                 LP_FS_SET_MODE, &out), 0);
                ck_assert_uint_eq(get_ev(find_op(LP_FS_SETATTR, 1)).session, sid);
        }

        /* the first writable release does not commit, the last does */
        us_core_release(core, ctx_of(core), w1);
        ck_assert_int_eq(count_op(LP_FS_COMMIT), 1);
        us_core_release(core, ctx_of(core), w2);
        ck_assert_int_eq(count_op(LP_FS_COMMIT), 2);
        i = find_op(LP_FS_COMMIT, 1);
        ck_assert_uint_eq(get_ev(i).flags, LP_FS_COMMIT_END);
        ck_assert_uint_eq(get_ev(i).session, sid);
        ck_assert_uint_eq(us_core_session_of(core, FINO_F, NULL), 0);
        ck_assert_int_eq(count_op(LP_FS_CSS_CLOSE), 2);
        /* no session left: reads go without one */
        ck_assert_int_eq(us_core_read(core, ctx_of(core), r1, 0, 100, &resp), 0);
        lp_fs_resp_release(&resp);
        ck_assert_uint_eq(get_ev(find_op(LP_FS_READ, 1)).session, 0);
        us_core_release(core, ctx_of(core), r1);
        ck_assert_int_eq(count_op(LP_FS_CSS_CLOSE), 3);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.sessions, 0);
        ck_assert_uint_eq(st.handles, 0);
        ck_assert_uint_eq(st.nodes, 0);
        us_core_free(core);
        fake_stop();
}
END_TEST

struct releaser {
        struct us_core *core;
        struct us_fh *fh;
};

static void *release_main(void *arg)
{
        struct releaser *r = arg;
        struct us_ctx ctx;

        us_ctx_self(r->core, &ctx);
        us_core_release(r->core, &ctx, r->fh);
        us_rpc_close_thread(us_core_rpc(r->core));
        return NULL;
}

/* Start releasing fh in another thread (the commit is slow) and return
 * once its END commit is in flight. */
static pthread_t release_async(struct releaser *rel)
{
        uint64_t deadline = now_us() + WAIT_US;
        pthread_t thr;

        ck_assert_int_eq(pthread_create(&thr, NULL, release_main, rel), 0);
        for (;;) {
                bool committing = false;

                us_core_session_of(rel->core, FINO_F, &committing);
                if (committing && count_op(LP_FS_COMMIT) > 0)
                        break;
                ck_assert(now_us() < deadline);
                usleep(1000);
        }
        return thr;
}

START_TEST(t_core_commit_before_reopen)
{
        struct releaser rel;
        struct us_core *core;
        struct us_fh *fh;
        struct event c, o;
        struct stat sb;
        pthread_t thr;
        bool keep;

        fake_start(fs_handler, 0);
        pthread_mutex_lock(&F->mu);
        F->commit_delay_ms = 400;
        pthread_mutex_unlock(&F->mu);
        core = core_new(WAIT_US);

        /* close, then open at once: the open waits for the commit */
        rel.core = core;
        rel.fh = open_f(core, O_WRONLY);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), rel.fh, 0, "abc", 3), 3);
        thr = release_async(&rel);
        ck_assert_int_eq(us_core_open(core, ctx_of(core), FINO_F, O_RDONLY, &fh, &keep), 0);
        c = get_ev(find_op(LP_FS_COMMIT, 0));
        o = get_ev(find_op(LP_FS_CSS_OPEN, 1));
        ck_assert_uint_ne(c.t_reply, 0);
        ck_assert_uint_ge(o.t_recv, c.t_reply);
        o = get_ev(find_op(LP_FS_OPEN, 1));
        ck_assert_uint_ge(o.t_recv, c.t_reply);
        /* same version as the commit answered: the page cache may stay */
        ck_assert(keep);
        pthread_join(thr, NULL);
        us_core_release(core, ctx_of(core), fh);

        /* close, then stat: the getattr waits too */
        rel.fh = open_f(core, O_RDWR);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), rel.fh, 0, "abc", 3), 3);
        thr = release_async(&rel);
        ck_assert_int_eq(us_core_getattr(core, ctx_of(core), FINO_F, NULL, &sb), 0);
        c = get_ev(find_op(LP_FS_COMMIT, 1));
        o = get_ev(find_op(LP_FS_GETATTR, count_op(LP_FS_GETATTR) - 1));
        ck_assert_uint_ne(c.t_reply, 0);
        ck_assert_uint_ge(o.t_recv, c.t_reply);
        ck_assert_uint_eq(o.session, 0);
        pthread_join(thr, NULL);

        /* another mount's commit changes the version: the cache is dropped */
        pthread_mutex_lock(&F->mu);
        F->version += 5;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_core_open(core, ctx_of(core), FINO_F, O_RDONLY, &fh, &keep), 0);
        ck_assert(!keep);
        us_core_release(core, ctx_of(core), fh);
        us_core_free(core);
        fake_stop();
}
END_TEST

START_TEST(t_core_stale_session)
{
        struct us_fh *w1, *w2;
        struct lp_fs_resp resp;
        struct us_core *core;
        uint64_t sid1, sid2;
        int commits;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        w1 = open_f(core, O_WRONLY);
        sid1 = us_core_session_of(core, FINO_F, NULL);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w1, 0, "abc", 3), 3);

        /* the storage site restarts: its sessions are gone */
        pthread_mutex_lock(&F->mu);
        F->nsessions = 0;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w1, 3, "def", 3), -EIO);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w1, 3, "def", 3), -EIO);
        ck_assert_int_eq(us_core_flush(core, ctx_of(core), w1), -EIO);
        ck_assert_int_eq(us_core_fsync(core, ctx_of(core), w1, false), -EIO);
        ck_assert_int_eq(us_core_fallocate(core, ctx_of(core), w1, 0, 0, 10), -EIO);
        ck_assert_uint_eq(us_core_session_of(core, FINO_F, NULL), 0);
        /* reading goes on, without the session: the old content */
        ck_assert_int_eq(us_core_read(core, ctx_of(core), w1, 0, 10, &resp), 0);
        lp_fs_resp_release(&resp);
        ck_assert_uint_eq(get_ev(find_op(LP_FS_READ, 0)).session, 0);

        /* a new writable open starts a new session */
        w2 = open_f(core, O_WRONLY);
        sid2 = us_core_session_of(core, FINO_F, NULL);
        ck_assert_uint_ne(sid2, 0);
        ck_assert_uint_ne(sid2, sid1);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w2, 0, "new", 3), 3);
        ck_assert_int_eq(us_core_flush(core, ctx_of(core), w2), 0);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w1, 0, "old", 3), -EIO);

        commits = count_op(LP_FS_COMMIT);
        us_core_release(core, ctx_of(core), w1);        /* lost: nothing to commit */
        ck_assert_int_eq(count_op(LP_FS_COMMIT), commits);
        us_core_release(core, ctx_of(core), w2);
        ck_assert_int_eq(count_op(LP_FS_COMMIT), commits + 1);
        ck_assert_uint_eq(get_ev(find_op(LP_FS_COMMIT, commits)).session, sid2);
        us_core_free(core);
        fake_stop();
}
END_TEST

/*
 * The storage site of a write session dies and the CSS names another
 * primary (docs/replication.md, "Failover"): the session's staged writes
 * and truncate exist nowhere else, so its next write fails with EIO at
 * once (never sent to the new primary, never retried against the dead
 * address until the deadline), and so do flush and fsync; its release
 * commits nothing.  A broken connection while the site still serves the
 * group keeps the session.
 */
START_TEST(t_core_session_site_gone)
{
        struct us_core *core;
        struct us_fh *w;
        uint64_t sid;
        int commits, writes;

        fake_start(fs_handler, 0);
        /* The connection breaks, the site is still the primary: go on. */
        core = core_new(WAIT_US);
        w = open_f(core, O_WRONLY);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w, 0, "abc", 3), 3);
        pthread_mutex_lock(&F->mu);
        F->close_next = 1;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w, 3, "def", 3), 3);
        ck_assert_int_eq(us_core_flush(core, ctx_of(core), w), 0);
        us_core_release(core, ctx_of(core), w);
        us_core_free(core);

        /* Site 1 dies and the CSS names site 2, at another address. */
        core = core_new(WAIT_US);
        w = open_f(core, O_WRONLY);
        sid = us_core_session_of(core, FINO_F, NULL);
        ck_assert_uint_ne(sid, 0);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w, 0, "abc", 3), 3);
        pthread_mutex_lock(&F->mu);
        F->mt_site = 2;
        F->mt_port = free_port();
        F->close_next = 1;              /* the write in flight meets the crash */
        pthread_mutex_unlock(&F->mu);
        writes = count_op(LP_FS_WRITE);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w, 3, "def", 3), -EIO);
        /* sent once (the crash ate it), never again to the old site */
        ck_assert_int_eq(count_op(LP_FS_WRITE), writes + 1);
        ck_assert_uint_eq(us_core_session_of(core, FINO_F, NULL), 0);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w, 6, "ghi", 3), -EIO);
        ck_assert_int_eq(us_core_flush(core, ctx_of(core), w), -EIO);
        ck_assert_int_eq(us_core_fsync(core, ctx_of(core), w, false), -EIO);
        ck_assert_int_eq(count_op(LP_FS_WRITE), writes + 1);
        commits = count_op(LP_FS_COMMIT);
        us_core_release(core, ctx_of(core), w);        /* lost: nothing to commit */
        ck_assert_int_eq(count_op(LP_FS_COMMIT), commits);
        us_core_free(core);
        fake_stop();
}
END_TEST

START_TEST(t_core_orphans)
{
        struct us_core *core;
        struct us_entry e;
        struct us_fh *fh;
        int c, o;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);

        /* The mount never frees an orphan itself: it tells the CSS at once,
         * open here or not, and the CSS frees it after the last close
         * anywhere (another mount may hold it). */
        fh = open_f(core, O_RDONLY);
        ck_assert_int_eq(us_core_unlink(core, ctx_of(core), 1, "f"), 0);
        ck_assert_int_eq(count_op(LP_FS_CSS_ORPHAN), 1);
        ck_assert_uint_eq(get_ev(find_op(LP_FS_CSS_ORPHAN, 0)).ino, INO_F);
        us_core_release(core, ctx_of(core), fh);
        ck_assert_int_eq(count_op(LP_FS_CSS_ORPHAN), 1);
        ck_assert_int_eq(count_op(LP_FS_FORGET_ORPHAN), 0);

        /* written and unlinked: the final commit comes before the close
         * that lets the CSS free it */
        fh = open_f(core, O_WRONLY);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), fh, 0, "abc", 3), 3);
        ck_assert_int_eq(us_core_unlink(core, ctx_of(core), 1, "f"), 0);
        ck_assert_int_eq(count_op(LP_FS_CSS_ORPHAN), 2);
        us_core_release(core, ctx_of(core), fh);
        c = find_op(LP_FS_COMMIT, 0);
        o = find_op(LP_FS_CSS_CLOSE, 1);
        ck_assert_int_ge(c, 0);
        ck_assert_int_gt(o, c);

        /* nothing open: reported at once too */
        ck_assert_int_eq(us_core_lookup(core, ctx_of(core), 1, "f", &e), 0);
        ck_assert_int_eq(us_core_unlink(core, ctx_of(core), 1, "f"), 0);
        ck_assert_int_eq(count_op(LP_FS_CSS_ORPHAN), 3);
        ck_assert_int_eq(count_op(LP_FS_FORGET_ORPHAN), 0);
        us_core_forget(core, e.fino, 1);
        us_core_free(core);
        fake_stop();
}
END_TEST

START_TEST(t_core_create_joins)
{
        struct us_core_stats st;
        struct us_fh *a, *b;
        struct us_core *core;
        struct us_entry e;
        uint64_t sid;
        int i;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        ck_assert_int_eq(us_core_create(core, ctx_of(core), 1, "g", 0644, O_CREAT | O_WRONLY,
                                        &e, &a), 0);
        ck_assert_uint_eq(e.fino, ((uint64_t)1 << 48) | INO_G);
        ck_assert_uint_eq(us_core_nlookup(core, e.fino), 1);
        sid = us_core_session_of(core, e.fino, NULL);
        ck_assert_uint_ne(sid, 0);
        /* CREATE goes to the storage site; the CSS only records the open
         * (it must know every open to decide when an orphan is freed) */
        ck_assert_int_eq(count_op(LP_FS_CSS_OPEN), 0);
        ck_assert_int_eq(count_op(LP_FS_CSS_OPENED), 1);
        ck_assert_uint_eq(get_ev(find_op(LP_FS_CSS_OPENED, 0)).ino, INO_G);
        /* The kernel's per-write question about file capabilities is
         * answered here for a file this mount just created... */
        {
                char cap[32];
                size_t clen;

                ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), e.fino, "security.capability", cap,
                                                  sizeof(cap), &clen), -ENODATA);
                ck_assert_int_eq(count_op(LP_FS_GETXATTR), 0);
                /* ...until this mount sets that attribute itself (whatever
                 * the answer: it forgets before it asks). */
                (void)us_core_setxattr(core, ctx_of(core), e.fino, "security.capability", "c", 1, 0);
                (void)us_core_getxattr(core, ctx_of(core), e.fino, "security.capability", cap, sizeof(cap),
                                       &clen);
                ck_assert_int_eq(count_op(LP_FS_GETXATTR), 1);
        }

        /* the same file created again while this mount writes it: one session */
        ck_assert_int_eq(us_core_create(core, ctx_of(core), 1, "g", 0644,
                                        O_CREAT | O_RDWR | O_TRUNC, &e, &b), 0);
        ck_assert_uint_eq(us_core_nlookup(core, e.fino), 2);
        ck_assert_uint_eq(us_core_session_of(core, e.fino, NULL), sid);
        ck_assert_int_eq(count_op(LP_FS_ABORT), 1);
        i = find_op(LP_FS_SETATTR, 0);                  /* O_TRUNC in the session */
        ck_assert_int_ge(i, 0);
        ck_assert_uint_eq(get_ev(i).session, sid);

        us_core_release(core, ctx_of(core), a);
        us_core_release(core, ctx_of(core), b);
        ck_assert_int_eq(count_op(LP_FS_COMMIT), 1);
        ck_assert_int_eq(count_op(LP_FS_CSS_CLOSE), 2);        /* both opens were recorded */
        us_core_forget(core, e.fino, 2);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.nodes, 0);
        us_core_free(core);
        fake_stop();
}
END_TEST

/* Wait until the fake has seen n requests of op. */
static void wait_op(uint32_t op, int n)
{
        uint64_t deadline = now_us() + WAIT_US;

        pthread_mutex_lock(&F->mu);
        for (;;) {
                int k = 0;

                for (int i = 0; i < F->nev; i++)
                        k += F->ev[i].op == op;
                if (k >= n)
                        break;
                f_wait(deadline);
        }
        pthread_mutex_unlock(&F->mu);
}

/* snap_handler: fs_handler with snapshots.  A session sees the commits
 * that landed before it began.  Commits are END commits and changes sent
 * without a session; one of op snap_hold (LP_FS_COMMIT: END commits) has
 * its answer held until a CREATE arrives, and it lands right after that
 * CREATE began its session (as the storage site would run it next).  A
 * READ or WRITE in a session that began before a commit of its file
 * landed loses the race (EAGAIN), as dsm transactions do. */
static uint64_t snap_begin[256];       /* by session id % 256 (a test has a few) */
static uint64_t snap_land[4096];       /* by event; 0: not landed */
static uint32_t snap_hold;

static bool snap_commit(const struct event *e)
{
        return (e->op == LP_FS_COMMIT && (e->flags & LP_FS_COMMIT_END)) ||
               (e->op == LP_FS_SETATTR && !e->session);
}

static int snap_handler(struct fake *f, const struct lp_fs_req *req, struct lp_fs_resp *resp,
                        unsigned *delay)
{
        int act;

        if ((req->op == LP_FS_WRITE || req->op == LP_FS_READ) && sess_known(f, req->session)) {
                for (int i = 0; i < f->nev; i++) {
                        const struct event *e = &f->ev[i];

                        if (snap_commit(e) && e->ino == req->ino && snap_land[i] &&
                            snap_land[i] > snap_begin[req->session % 256]) {
                                sess_forget(f, req->session);
                                resp->status = -EAGAIN;
                                return ACT_REPLY;
                        }
                }
        }
        act = fs_handler(f, req, resp, delay);
        if (resp->session)
                snap_begin[resp->session % 256] = now_us();
        if (snap_commit(&f->ev[f->nev - 1])) {
                if (req->op == snap_hold)
                        *delay = 60000;         /* held: see LP_FS_CREATE */
                else
                        snap_land[f->nev - 1] = now_us();
        }
        if (req->op == LP_FS_CREATE)
                for (struct delayed *d = f->delayed; d; d = d->next)
                        if (snap_commit(&f->ev[d->ev]) && !snap_land[d->ev]) {
                                snap_land[d->ev] = now_us() + 1;
                                uv_timer_start(&d->timer, delayed_fire, 1, 0);
                        }
        return act;
}

/* A create of a file whose last close is still committing (END in flight)
 * reaches the storage site first: the session it begins there predates
 * that commit.  The mount must not make it the file's session (its first
 * write would fail with EAGAIN, as in the stress test): it waits for the
 * commit and opens a session that sees it. */
START_TEST(t_core_create_during_end_commit)
{
        struct releaser rel;
        struct us_fh *a, *b;
        struct us_core *core;
        struct us_entry e;
        uint64_t sid;
        pthread_t thr;

        memset(snap_begin, 0, sizeof(snap_begin));
        memset(snap_land, 0, sizeof(snap_land));
        snap_hold = LP_FS_COMMIT;
        fake_start(snap_handler, 0);
        core = core_new(WAIT_US);
        ck_assert_int_eq(us_core_create(core, ctx_of(core), 1, "g", 0644, O_CREAT | O_WRONLY, &e, &a), 0);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), a, 0, "abc", 3), 3);
        rel.core = core;
        rel.fh = a;
        ck_assert_int_eq(pthread_create(&thr, NULL, release_main, &rel), 0);
        wait_op(LP_FS_COMMIT, 1);               /* the END commit is in flight */

        ck_assert_int_eq(us_core_create(core, ctx_of(core), 1, "g", 0644, O_CREAT | O_WRONLY, &e, &b), 0);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), b, 0, "def", 3), 3);
        sid = us_core_session_of(core, e.fino, NULL);
        ck_assert_uint_ne(sid, 0);
        /* the CREATE's session was given back, the file's is a later one */
        ck_assert_uint_ne(sid, get_ev(find_op(LP_FS_CREATE, 1)).session);
        ck_assert_int_eq(count_op(LP_FS_ABORT), 1);
        pthread_join(thr, NULL);
        us_core_release(core, ctx_of(core), b);
        ck_assert_int_eq(get_ev(find_op(LP_FS_COMMIT, 1)).session, sid);
        us_core_free(core);
        fake_stop();
}
END_TEST

struct truncater {
        struct us_core *core;
        uint64_t fino;
        int r;
};

static void *truncate_main(void *arg)
{
        struct truncater *tr = arg;
        struct stat in, out;
        struct us_ctx ctx;

        memset(&in, 0, sizeof(in));
        us_ctx_self(tr->core, &ctx);
        tr->r = us_core_setattr(tr->core, &ctx, tr->fino, NULL, &in, LP_FS_SET_SIZE, &out);
        us_rpc_close_thread(us_core_rpc(tr->core));
        return NULL;
}

/* The same with truncate(2) of the file (no session here: the storage
 * site commits it at once) in flight when the CREATE begins its session. */
START_TEST(t_core_create_during_truncate)
{
        struct truncater tr;
        struct us_fh *a, *b;
        struct us_core *core;
        struct us_entry e;
        uint64_t sid;
        pthread_t thr;

        memset(snap_begin, 0, sizeof(snap_begin));
        memset(snap_land, 0, sizeof(snap_land));
        snap_hold = 0;
        fake_start(snap_handler, 0);
        core = core_new(WAIT_US);
        ck_assert_int_eq(us_core_create(core, ctx_of(core), 1, "g", 0644, O_CREAT | O_WRONLY, &e, &a), 0);
        us_core_release(core, ctx_of(core), a);
        pthread_mutex_lock(&F->mu);
        snap_hold = LP_FS_SETATTR;
        pthread_mutex_unlock(&F->mu);
        tr.core = core;
        tr.fino = e.fino;
        ck_assert_int_eq(pthread_create(&thr, NULL, truncate_main, &tr), 0);
        wait_op(LP_FS_SETATTR, 1);              /* the truncation is in flight */

        ck_assert_int_eq(us_core_create(core, ctx_of(core), 1, "g", 0644, O_CREAT | O_RDWR, &e, &b), 0);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), b, 0, "def", 3), 3);
        sid = us_core_session_of(core, e.fino, NULL);
        ck_assert_uint_ne(sid, get_ev(find_op(LP_FS_CREATE, 1)).session);
        pthread_join(thr, NULL);
        ck_assert_int_eq(tr.r, 0);
        us_core_release(core, ctx_of(core), b);
        us_core_free(core);
        fake_stop();
}
END_TEST

struct core_call {
        struct us_core *core;
        struct us_fh *fh;
        int flags;
        int r;
};

static void *read_main(void *arg)
{
        struct core_call *c = arg;
        struct lp_fs_resp resp;

        c->r = us_core_read(c->core, ctx_of(c->core), c->fh, 0, 5, &resp);
        if (c->r == 0)
                lp_fs_resp_release(&resp);
        us_rpc_close_thread(us_core_rpc(c->core));
        return NULL;
}

static void *open_g_main(void *arg)
{
        struct core_call *c = arg;
        bool keep;

        c->r = us_core_open(c->core, ctx_of(c->core), ((uint64_t)1 << 48) | INO_G, c->flags,
                            &c->fh, &keep);
        us_rpc_close_thread(us_core_rpc(c->core));
        return NULL;
}

/* Start us_core_open(c->flags) of g in a thread, the storage site
 * answering its OPEN after delay_ms; return once the OPEN is there. */
static pthread_t open_g_async(struct core_call *c, struct us_core *core, unsigned delay_ms)
{
        pthread_t thr;

        pthread_mutex_lock(&F->mu);
        F->open_delay_ms = delay_ms;
        pthread_mutex_unlock(&F->mu);
        c->core = core;
        ck_assert_int_eq(pthread_create(&thr, NULL, open_g_main, c), 0);
        wait_op(LP_FS_OPEN, 1);
        return thr;
}

/*
 * The last close of a writable handle while a read through a read-only
 * handle names the session: the release waits for the read, and the
 * read's end must not free the session under it (it used to: a
 * use-after-free, then a double free in the release).
 */
START_TEST(t_core_release_during_read)
{
        struct core_call c = { 0 };
        struct us_core_stats st;
        struct us_core *core;
        struct us_fh *w;
        pthread_t thr;
        struct event rd, cm;
        uint64_t sid;
        int i;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        w = open_f(core, O_WRONLY);
        c.core = core;
        c.fh = open_f(core, O_RDONLY);
        sid = us_core_session_of(core, FINO_F, NULL);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), w, 0, "abc", 3), 3);
        pthread_mutex_lock(&F->mu);
        F->read_delay_ms = 300;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(pthread_create(&thr, NULL, read_main, &c), 0);
        wait_op(LP_FS_READ, 1);
        us_core_release(core, ctx_of(core), w);
        pthread_join(thr, NULL);
        ck_assert_int_eq(c.r, 0);
        rd = get_ev(find_op(LP_FS_READ, 0));
        ck_assert_uint_eq(rd.session, sid);             /* read-your-writes */
        i = find_op(LP_FS_COMMIT, 0);
        ck_assert_int_ge(i, 0);
        cm = get_ev(i);
        ck_assert_uint_eq(cm.session, sid);
        ck_assert_uint_eq(cm.flags, LP_FS_COMMIT_END);
        ck_assert_uint_ge(cm.t_recv, rd.t_reply);       /* (4): after the read */
        ck_assert_int_eq(count_op(LP_FS_COMMIT), 1);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.sessions, 0);
        us_core_release(core, ctx_of(core), c.fh);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.nodes, 0);
        us_core_free(core);
        fake_stop();
}
END_TEST

/*
 * A create of a file whose writable open is starting a session here: the
 * create's wait for that open times out, and it starts a session of its
 * own.  When the open's answer comes, the open must join that live
 * session (and abort the one it got), not replace it: a replaced session
 * was never committed nor freed.
 */
START_TEST(t_core_create_during_open)
{
        struct core_call c = { 0 };
        struct us_core_stats st;
        struct us_core *core;
        struct us_ctx cctx;
        struct us_entry e;
        struct us_fh *b;
        pthread_t thr;
        uint64_t sid;
        int i;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        c.flags = O_WRONLY;
        thr = open_g_async(&c, core, 1000);
        us_ctx_self(core, &cctx);
        cctx.call.deadline = now_us() + 200000;
        ck_assert_int_eq(us_core_create(core, &cctx, 1, "g", 0644, O_CREAT | O_WRONLY, &e, &b), 0);
        sid = us_core_session_of(core, e.fino, NULL);
        ck_assert_uint_ne(sid, 0);
        pthread_join(thr, NULL);
        ck_assert_int_eq(c.r, 0);
        ck_assert_uint_eq(us_core_session_of(core, e.fino, NULL), sid);
        ck_assert_int_eq(count_op(LP_FS_ABORT), 1);     /* the open's own */
        ck_assert_int_eq(us_core_write(core, ctx_of(core), c.fh, 0, "ab", 2), 2);
        i = find_op(LP_FS_WRITE, 0);
        ck_assert_uint_eq(get_ev(i).session, sid);
        us_core_release(core, ctx_of(core), b);
        us_core_release(core, ctx_of(core), c.fh);
        ck_assert_int_eq(count_op(LP_FS_COMMIT), 1);
        i = find_op(LP_FS_COMMIT, 0);
        ck_assert_uint_eq(get_ev(i).session, sid);
        us_core_stats(core, &st);
        ck_assert_uint_eq(st.sessions, 0);
        pthread_mutex_lock(&F->mu);
        ck_assert_int_eq(F->nsessions, 0);              /* every one ended */
        pthread_mutex_unlock(&F->mu);
        us_core_forget(core, e.fino, 1);
        us_core_free(core);
        fake_stop();
}
END_TEST

/*
 * truncate(2) of a file while a writable open of it is starting a
 * session here: made beside that session, the truncation would conflict
 * with the session's snapshot (the storage site then fails its next
 * write with EAGAIN).  It waits for the open and goes through the session.
 */
START_TEST(t_core_change_waits_for_open)
{
        struct core_call c = { 0 };
        struct event op, sa;
        struct us_core *core;
        struct stat in, out;
        pthread_t thr;
        uint64_t sid;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        c.flags = O_RDWR;
        thr = open_g_async(&c, core, 300);
        memset(&in, 0, sizeof(in));
        in.st_size = 100;
        ck_assert_int_eq(us_core_setattr(core, ctx_of(core), ((uint64_t)1 << 48) | INO_G, NULL,
                                         &in, LP_FS_SET_SIZE, &out), 0);
        pthread_join(thr, NULL);
        ck_assert_int_eq(c.r, 0);
        sid = us_core_session_of(core, ((uint64_t)1 << 48) | INO_G, NULL);
        ck_assert_uint_ne(sid, 0);
        op = get_ev(find_op(LP_FS_OPEN, 0));
        sa = get_ev(find_op(LP_FS_SETATTR, 0));
        ck_assert_uint_eq(sa.session, sid);
        ck_assert_uint_ge(sa.t_recv, op.t_reply);
        us_core_release(core, ctx_of(core), c.fh);
        us_core_free(core);
        fake_stop();
}
END_TEST

START_TEST(t_core_destroy_commits)
{
        struct us_core *core;
        struct us_fh *fh;
        int i;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        fh = open_f(core, O_WRONLY);
        ck_assert_int_eq(us_core_write(core, ctx_of(core), fh, 0, "abc", 3), 3);
        us_core_destroy(core);          /* the kernel never released fh */
        i = find_op(LP_FS_COMMIT, 0);
        ck_assert_int_ge(i, 0);
        ck_assert_uint_eq(get_ev(i).flags, LP_FS_COMMIT_END);
        ck_assert_int_eq(count_op(LP_FS_CSS_CLOSE), 1);
        us_core_free(core);
        fake_stop();
}
END_TEST

START_TEST(t_core_xattr_rules)
{
        struct us_core *core;
        char buf[64], name[300];
        size_t len = 0;

        fake_start(fs_handler, 0);
        core = core_new(WAIT_US);
        ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), FINO_F, "user.a", NULL, 0, &len),
                         0);
        ck_assert_uint_eq(len, 10);
        ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), FINO_F, "user.a", buf, 4, &len),
                         -ERANGE);
        ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), FINO_F, "user.a", buf,
                                          sizeof(buf), &len), 0);
        ck_assert_uint_eq(len, 10);
        ck_assert(!memcmp(buf, "0123456789", 10));
        ck_assert_int_eq(us_core_listxattr(core, ctx_of(core), FINO_F, NULL, 0, &len), 0);
        ck_assert_uint_eq(len, 15);
        ck_assert_int_eq(us_core_listxattr(core, ctx_of(core), FINO_F, buf, 5, &len), -ERANGE);
        ck_assert_int_eq(us_core_listxattr(core, ctx_of(core), FINO_F, buf, sizeof(buf), &len),
                         0);
        ck_assert_uint_eq(len, 15);     /* system.* names are not shown */
        ck_assert(!memcmp(buf, "user.a\0user.bb", 15));
        /* system.* (POSIX ACLs) is refused as on a noacl filesystem */
        ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), FINO_F, "system.posix_acl_access",
                                          buf, sizeof(buf), &len), -EOPNOTSUPP);
        ck_assert_int_eq(us_core_setxattr(core, ctx_of(core), FINO_F, "system.posix_acl_access",
                                          "v", 1, 0), -EOPNOTSUPP);

        /* the storage site's errors come through as they are */
        pthread_mutex_lock(&F->mu);
        F->getxattr_status = -ENODATA;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), FINO_F, "user.zz", buf,
                                          sizeof(buf), &len), -ENODATA);
        pthread_mutex_lock(&F->mu);
        F->getxattr_status = -EIO;
        pthread_mutex_unlock(&F->mu);
        ck_assert_int_eq(us_core_getxattr(core, ctx_of(core), FINO_F, "user.a", buf,
                                          sizeof(buf), &len), -EIO);

        memset(name, 'n', sizeof(name) - 1);
        name[sizeof(name) - 1] = 0;
        ck_assert_int_eq(us_core_setxattr(core, ctx_of(core), FINO_F, name, "v", 1, 0), -ERANGE);
        {
                static char big[70000];

                ck_assert_int_eq(us_core_setxattr(core, ctx_of(core), FINO_F, "user.big", big,
                                                  sizeof(big), 0), -E2BIG);
        }
        ck_assert_int_eq(count_op(LP_FS_SETXATTR), 0);
        us_core_free(core);
        fake_stop();
}
END_TEST

/* The keeper refreshes the mount table and touches idle sessions. */
START_TEST(t_core_keeper)
{
        struct us_core_opts o;
        struct us_core *core;
        struct us_ctx ctx;
        struct us_fh *fh;
        uint64_t sid, deadline;
        int i;

        fake_start(fs_handler, 0);
        memset(&o, 0, sizeof(o));
        o.timeout_us = WAIT_US;
        snprintf(o.css_host, sizeof(o.css_host), "127.0.0.1");
        o.css_port = F->port;
        o.keeper = true;
        o.refresh_us = 100000;
        o.keepalive_us = 150000;
        ck_assert_int_eq(us_core_new(&o, KEY, &core), 0);
        us_ctx_self(core, &ctx);
        ck_assert_int_eq(us_core_refresh_mtab(core, &ctx), 0);
        ck_assert_int_eq(us_core_start(core), 0);
        fh = open_f(core, O_WRONLY);
        sid = us_core_session_of(core, FINO_F, NULL);

        deadline = now_us() + WAIT_US;
        for (;;) {
                int n = 0;

                for (i = 0; i < count_op(LP_FS_GETATTR); i++)
                        n += get_ev(find_op(LP_FS_GETATTR, i)).session == sid;
                if (n >= 2 && count_op(LP_FS_CSS_MOUNTTABLE) >= 4)
                        break;
                ck_assert(now_us() < deadline);
                usleep(20000);
        }
        us_core_release(core, ctx_of(core), fh);
        us_core_destroy(core);          /* stops the keeper */
        i = count_op(LP_FS_CSS_MOUNTTABLE);
        usleep(300000);
        ck_assert_int_eq(count_op(LP_FS_CSS_MOUNTTABLE), i);
        us_core_free(core);
        fake_stop();
}
END_TEST

static int h_fs_then_silent(struct fake *f, const struct lp_fs_req *req,
                            struct lp_fs_resp *resp, unsigned *delay)
{
        if (req->op == LP_FS_CSS_MOUNTTABLE)
                return fs_handler(f, req, resp, delay);
        return ACT_SILENT;
}

START_TEST(t_core_timeout)
{
        struct us_core *core;
        struct stat sb;
        uint64_t start, el;

        fake_start(h_fs_then_silent, 0);
        core = core_new(600000);
        start = now_us();
        ck_assert_int_eq(us_core_getattr(core, ctx_of(core), FINO_F, NULL, &sb), -ETIMEDOUT);
        el = now_us() - start;
        ck_assert_uint_ge(el, 590000);
        ck_assert_uint_lt(el, 2000000);
        us_core_free(core);
        fake_stop();
}
END_TEST

START_TEST(t_setattr_bits)
{
        ck_assert_uint_eq(us_setattr_bits(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_SIZE |
                                          FUSE_SET_ATTR_MTIME_NOW),
                          LP_FS_SET_MODE | LP_FS_SET_SIZE | LP_FS_SET_MTIME_NOW);
        ck_assert_uint_eq(us_setattr_bits(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                                          FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                                          FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_CTIME),
                          LP_FS_SET_UID | LP_FS_SET_GID | LP_FS_SET_ATIME | LP_FS_SET_MTIME |
                          LP_FS_SET_ATIME_NOW | LP_FS_SET_CTIME);
}
END_TEST

static int stop_shutdown_fn(void *arg)
{
        (void)arg;
        return now_us() >= stop_at ? -ESHUTDOWN : 0;
}

/* A peer that accepts TCP connections but never says a word (a stopped
 * daemon: the kernel completes the connection): ETIMEDOUT at the deadline,
 * and a shutdown is heard within one connection attempt. */
START_TEST(t_rpc_mute_peer)
{
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t sl = sizeof(a);
        struct us_call call;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        struct us_rpc *rpc;
        uint64_t start, el;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(listen(fd, 64), 0);    /* never accept()ed */
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
        t = target_of(ntohs(a.sin_port));
        memset(&req, 0, sizeof(req));
        req.op = LP_FS_GETATTR;
        ck_assert_int_eq(us_rpc_new(KEY, 9, &rpc), 0);

        start = now_us();
        memset(&call, 0, sizeof(call));
        call.deadline = start + 700000;
        ck_assert_int_eq(us_rpc_call(rpc, &t, &call, &req, US_RESEND_ANY, &resp), -ETIMEDOUT);
        el = now_us() - start;
        ck_assert_uint_ge(el, 690000);
        ck_assert_uint_lt(el, 1700000);

        start = now_us();
        call.deadline = start + WAIT_US;
        call.stop = stop_shutdown_fn;
        stop_at = start + 200000;
        ck_assert_int_eq(us_rpc_call(rpc, &t, &call, &req, US_RESEND_ANY, &resp), -ESHUTDOWN);
        el = now_us() - start;
        ck_assert_uint_lt(el, (US_RPC_CONNECT_MS + 1000) * 1000u);
        us_rpc_free(rpc);
        close(fd);
}
END_TEST

/* Statahead: read ahead only after repeated misses in one directory,
 * answer from a fresh listing, never answer what it lacks, and forget it
 * after the TTL or any change. */
START_TEST(t_statahead)
{
        struct us_sa *sa;
        struct lp_fs_attr a;
        struct lp_fs_dirent ents[3] = {
                { .ino = 9, .name = (const uint8_t *)".", .namelen = 1, .has_attr = true },
                { .ino = 10, .name = (const uint8_t *)"f1", .namelen = 2, .has_attr = true,
                  .attr = { .ino = 10, .size = 111 } },
                { .ino = 11, .name = (const uint8_t *)"f2", .namelen = 2, .has_attr = true,
                  .attr = { .ino = 11, .size = 222 } },
        };
        uint64_t t0 = 1000000000;

        ck_assert_int_eq(us_sa_new(&sa), 0);
        for (unsigned i = 1; i < US_SA_MISSES; i++)
                ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + i, &a), US_SA_MISS);
        /* A change in between starts the count again (a create or unlink
         * workload is not a scan). */
        us_sa_invalidate(sa);
        for (unsigned i = 1; i < US_SA_MISSES; i++)
                ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 + i, &a), US_SA_MISS);
        /* A miss in another directory starts the count again. */
        ck_assert_int_eq(us_sa_lookup(sa, 1, 8, (const uint8_t *)"x", 1, t0 + 10, &a), US_SA_MISS);
        for (unsigned i = 1; i < US_SA_MISSES; i++)
                ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 20 + i, &a), US_SA_MISS);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 30, &a), US_SA_FETCH);
        ck_assert_int_eq(us_sa_fetch_add(sa, ents, 3), 0);
        us_sa_fetch_end(sa, true);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f2", 2, t0 + 40, &a), US_SA_HIT);
        ck_assert_uint_eq(a.ino, 11);
        ck_assert_uint_eq(a.size, 222);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)".", 1, t0 + 41, &a), US_SA_MISS);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"nope", 4, t0 + 42, &a), US_SA_MISS);
        ck_assert_int_eq(us_sa_lookup(sa, 2, 9, (const uint8_t *)"f2", 2, t0 + 43, &a), US_SA_MISS);
        /* Past the TTL: no longer used. */
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f2", 2, t0 + 30 + US_SA_TTL_US, &a),
                         US_SA_MISS);
        /* A change drops a fresh listing, and one gathered across it. */
        for (unsigned i = 0; i < US_SA_MISSES - 1; i++)
                us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 * US_SA_TTL_US + i, &a);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 * US_SA_TTL_US + 9, &a),
                         US_SA_FETCH);
        ck_assert_int_eq(us_sa_fetch_add(sa, ents, 3), 0);
        us_sa_invalidate(sa);
        us_sa_fetch_end(sa, true);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 * US_SA_TTL_US + 10, &a),
                         US_SA_MISS);
        for (unsigned i = 0; i < US_SA_MISSES; i++)
                us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 * US_SA_TTL_US + 20 + i, &a);
        ck_assert_int_eq(us_sa_fetch_add(sa, ents, 3), 0);
        us_sa_fetch_end(sa, true);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 * US_SA_TTL_US + 30, &a),
                         US_SA_HIT);
        us_sa_invalidate(sa);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 9, (const uint8_t *)"f1", 2, t0 + 5 * US_SA_TTL_US + 31, &a),
                         US_SA_MISS);
        /* A failed read ahead leaves nothing behind. */
        for (unsigned i = 0; i < US_SA_MISSES + 1; i++)
                us_sa_lookup(sa, 1, 7, (const uint8_t *)"z", 1, t0 + 8 * US_SA_TTL_US + i, &a);
        us_sa_fetch_end(sa, false);
        ck_assert_int_eq(us_sa_lookup(sa, 1, 7, (const uint8_t *)"z", 1, t0 + 8 * US_SA_TTL_US + 50, &a),
                         US_SA_MISS);
        us_sa_free(sa);
}
END_TEST

/* us_sig.h: which pending signals make an INTERRUPT one for the caller.
 * Stop signals (Ctrl-Z) and ignored ones do not; a handled or a fatal one
 * does; blocked ones do not; a thread that is gone does. */
#define SB(s) (UINT64_C(1) << ((s) - 1))
START_TEST(t_sig_interrupting)
{
        sigset_t set, old;

        ck_assert(!us_sig_interrupting(0, 0, 0, 0));
        ck_assert(!us_sig_interrupting(SB(SIGTSTP), 0, 0, 0));
        ck_assert(!us_sig_interrupting(SB(SIGTSTP) | SB(SIGTTIN) | SB(SIGTTOU) | SB(SIGSTOP), 0, 0, 0));
        ck_assert(!us_sig_interrupting(SB(SIGCHLD) | SB(SIGWINCH) | SB(SIGCONT) | SB(SIGURG), 0, 0, 0));
        ck_assert(!us_sig_interrupting(SB(SIGINT), 0, SB(SIGINT), 0));             /* ignored */
        ck_assert(!us_sig_interrupting(SB(SIGINT), SB(SIGINT), 0, SB(SIGINT)));    /* blocked */
        ck_assert(us_sig_interrupting(SB(SIGINT), 0, 0, SB(SIGINT)));              /* a handler */
        ck_assert(us_sig_interrupting(SB(SIGTSTP), 0, 0, SB(SIGTSTP)));            /* ... of its own */
        ck_assert(us_sig_interrupting(SB(SIGCHLD), 0, 0, SB(SIGCHLD)));
        ck_assert(us_sig_interrupting(SB(SIGTERM), 0, 0, 0));                      /* fatal */
        ck_assert(us_sig_interrupting(SB(SIGKILL) | SB(SIGTSTP), 0, 0, 0));
        ck_assert(us_sig_interrupting(SB(SIGTSTP) | SB(SIGUSR1), 0, 0, SB(SIGUSR1)));

        /* Live, through /proc: nothing pending; a blocked pending signal. */
        ck_assert(!us_sig_interrupts(gettid()));
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        ck_assert(pthread_sigmask(SIG_BLOCK, &set, &old) == 0);
        ck_assert(raise(SIGUSR1) == 0);
        ck_assert(!us_sig_interrupts(gettid()));
        ck_assert(sigwaitinfo(&set, NULL) == SIGUSR1);
        ck_assert(pthread_sigmask(SIG_SETMASK, &old, NULL) == 0);
        ck_assert(us_sig_interrupts(INT32_MAX));                                  /* gone */
}
END_TEST

static Suite *us_suite(void)
{
        Suite *s = suite_create("us");
        TCase *tc;

        tc = tcase_create("options");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, t_opt_full);
        tcase_add_test(tc, t_opt_defaults_and_source);
        tcase_add_test(tc, t_opt_writeback);
        tcase_add_test(tc, t_opt_errors);
        tcase_add_test(tc, t_opt_help);
        suite_add_tcase(s, tc);

        tc = tcase_create("names");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, t_ino_mapping);
        tcase_add_test(tc, t_statahead);
        tcase_add_test(tc, t_mtab);
        suite_add_tcase(s, tc);

        tc = tcase_create("rpc");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_rpc_basic_and_status);
        tcase_add_test(tc, t_rpc_dropped_connections);
        tcase_add_test(tc, t_rpc_silent_times_out);
        tcase_add_test(tc, t_rpc_refused_then_up);
        tcase_add_test(tc, t_rpc_resend_rules);
        tcase_add_test(tc, t_rpc_unavailable_retried);
        tcase_add_test(tc, t_rpc_idle_connection_closed);
        tcase_add_test(tc, t_rpc_interrupted_while_retrying);
        tcase_add_test(tc, t_sig_interrupting);
        tcase_add_test(tc, t_rpc_mute_peer);
        suite_add_tcase(s, tc);

        tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_core_lookup_crossing_counts);
        tcase_add_test(tc, t_core_session_shared);
        tcase_add_test(tc, t_core_commit_before_reopen);
        tcase_add_test(tc, t_core_stale_session);
        tcase_add_test(tc, t_core_session_site_gone);
        tcase_add_test(tc, t_core_orphans);
        tcase_add_test(tc, t_core_create_joins);
        tcase_add_test(tc, t_core_create_during_end_commit);
        tcase_add_test(tc, t_core_create_during_truncate);
        tcase_add_test(tc, t_core_destroy_commits);
        tcase_add_test(tc, t_core_release_during_read);
        tcase_add_test(tc, t_core_create_during_open);
        tcase_add_test(tc, t_core_change_waits_for_open);
        tcase_add_test(tc, t_core_xattr_rules);
        tcase_add_test(tc, t_core_timeout);
        tcase_add_test(tc, t_core_keeper);
        tcase_add_test(tc, t_setattr_bits);
        tcase_add_test(tc, t_opt_cache_timeouts);
        tcase_add_test(tc, t_dent);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        cm_log_init("check_us", getenv("US_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERR,
                    CM_LOG_STDERR);
        return tu_run_suite(us_suite());
}
