/*
 * check_lp_conn.c -- authenticated connections over real TCP on 127.0.0.1
 * (port 0 only): a real lp_server on a libuv loop in a thread of the test
 * process, real lp_clients, and raw sockets that play misbehaving peers.
 * After every misbehaviour a good client must still be served, and the
 * server must have logged the bad connection exactly once.  Also: the key
 * file.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
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

#include "lp_conn.h"
#include "lp_hs_int.h"
#include "testutil.h"


#define SERVER_SITE 42
#define WAIT_MS 10000           /* upper bound on any wait for an event */

/* Request types the test server understands. */
enum {
        T_ECHO = LP_MSG_USER_MIN,       /* reply with the same payload */
        T_SILENT,                       /* never answered */
        T_NOTIFY,                       /* notification, stale reply, then reply */
        T_CLOSE,                        /* server closes the connection */
        T_STATUS,                       /* Status{NOT_FOUND, "nope"} */
        T_NOTE,                         /* the notification T_NOTIFY sends */
};

/* ---- the test server ---- */

struct logline {
        int prio;
        char peer[128];
        char msg[512];
};

struct tsrv {
        pthread_t thr;
        uv_loop_t loop;
        uv_async_t stop;
        struct lp_server *srv;
        uint8_t key[LP_KEY_SIZE];
        uint16_t port;
        int listen_err;
        /* settings, applied before listen */
        uint32_t hs_timeout_ms;
        size_t max_frame;
        size_t max_queued;
        unsigned max_conns;

        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool ready;
        int nconnect, nclose, nframes;
        int errors;                     /* checks that failed on the loop thread */
        uint64_t last_site;
        uint64_t last_client;
        struct logline logs[512];
        int nlogs;
};

static struct tsrv *TS;

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void ts_signal(void)
{
        pthread_cond_broadcast(&TS->cv);
        pthread_mutex_unlock(&TS->mu);
}

static void on_log(struct lp_server *srv, int prio, const char *peer, const char *msg)
{
        pthread_mutex_lock(&TS->mu);
        if (TS->nlogs < (int)(sizeof(TS->logs) / sizeof(TS->logs[0]))) {
                struct logline *l = &TS->logs[TS->nlogs++];

                l->prio = prio;
                snprintf(l->peer, sizeof(l->peer), "%s", peer);
                snprintf(l->msg, sizeof(l->msg), "%s", msg);
        }
        if (getenv("LP_TEST_VERBOSE"))
                fprintf(stderr, "# log <%d> %s: %s\n", prio, peer, msg);
        ts_signal();
}

static void on_connect(struct lp_conn *conn, uint64_t site)
{
        lp_server_conn_set_data(conn, (void *)(uintptr_t)(site + 1000));
        pthread_mutex_lock(&TS->mu);
        TS->nconnect++;
        TS->last_site = site;
        TS->last_client = lp_server_conn_client(conn);
        if (lp_server_conn_site(conn) != site)
                TS->errors++;
        ts_signal();
}

static void on_close(struct lp_conn *conn)
{
        pthread_mutex_lock(&TS->mu);
        TS->nclose++;
        if ((uintptr_t)lp_server_conn_get_data(conn) != lp_server_conn_site(conn) + 1000)
                TS->errors++;
        ts_signal();
}

static void on_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                     const void *payload, size_t len)
{
        int r = 0;

        pthread_mutex_lock(&TS->mu);
        TS->nframes++;
        if ((uintptr_t)lp_server_conn_get_data(conn) != lp_server_conn_site(conn) + 1000 ||
            lp_server_conn_server(conn) != TS->srv)
                TS->errors++;
        pthread_mutex_unlock(&TS->mu);

        switch (type) {
        case T_ECHO:
                r = lp_server_reply(conn, reqid, T_ECHO, payload, len);
                /* -ENOBUFS is how a peer that does not read is cut off. */
                if (r == -ENOBUFS || r == -ENOTCONN)
                        r = 0;
                break;
        case T_SILENT:
                break;
        case T_NOTIFY:
                r = lp_server_send(conn, T_NOTE, 0, 0, "note", 4);
                if (!r)
                        r = lp_server_reply(conn, reqid + 1000, T_ECHO, "stale", 5);
                if (!r)
                        r = lp_server_reply(conn, reqid, T_ECHO, payload, len);
                break;
        case T_CLOSE:
                lp_server_conn_close(conn);
                lp_server_conn_close(conn);     /* twice is fine */
                break;
        case T_STATUS:
                r = lp_server_reply_status(conn, reqid, LP_STATUS_NOT_FOUND, "nope");
                break;
        default:
                r = lp_server_reply_status(conn, reqid, LP_STATUS_UNSUPPORTED, NULL);
        }
        if (r < 0) {
                pthread_mutex_lock(&TS->mu);
                TS->errors++;
                pthread_mutex_unlock(&TS->mu);
        }
}

static const struct lp_server_callbacks test_cb = {
        .on_connect = on_connect,
        .on_frame = on_frame,
        .on_close = on_close,
        .log = on_log,
};

static void on_stop(uv_async_t *a)
{
        lp_server_close(TS->srv);
        uv_close((uv_handle_t *)a, NULL);
}

static void *server_main(void *arg)
{
        int r;

        (void)arg;
        CHECK(uv_loop_init(&TS->loop) == 0);
        CHECK(uv_async_init(&TS->loop, &TS->stop, on_stop) == 0);
        r = lp_server_new(&TS->loop, TS->key, SERVER_SITE, &test_cb, TS, &TS->srv);
        if (!r && TS->max_frame)
                r = lp_server_set_max_frame(TS->srv, TS->max_frame);
        if (!r && TS->max_queued)
                r = lp_server_set_max_queued(TS->srv, TS->max_queued);
        if (!r && TS->max_conns)
                r = lp_server_set_max_conns(TS->srv, TS->max_conns);
        if (!r && TS->hs_timeout_ms)
                r = lp_server_set_handshake_timeout(TS->srv, TS->hs_timeout_ms);
        if (!r)
                r = lp_server_listen(TS->srv, "127.0.0.1", 0, &TS->port);
        pthread_mutex_lock(&TS->mu);
        TS->listen_err = r;
        TS->ready = true;
        ts_signal();
        if (r < 0)
                return NULL;
        uv_run(&TS->loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&TS->loop) == 0);      /* every handle closed */
        return NULL;
}

static void cond_init(pthread_cond_t *cv)
{
        pthread_condattr_t a;

        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(cv, &a);
        pthread_condattr_destroy(&a);
}

/* Wait on TS->cv (mutex held) until the deadline; false on timeout. */
static bool ts_wait(uint64_t deadline_ms)
{
        struct timespec ts;

        if (now_ms() >= deadline_ms)
                return false;
        ts.tv_sec = (time_t)(deadline_ms / 1000);
        ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000;
        pthread_cond_timedwait(&TS->cv, &TS->mu, &ts);
        return true;
}

static void ts_start_full(uint32_t hs_timeout_ms, size_t max_frame, size_t max_queued,
                          unsigned max_conns, const uint8_t *key)
{
        uint64_t deadline = now_ms() + WAIT_MS;

        TS = calloc(1, sizeof(*TS));
        ck_assert_ptr_nonnull(TS);
        pthread_mutex_init(&TS->mu, NULL);
        cond_init(&TS->cv);
        if (key)
                memcpy(TS->key, key, LP_KEY_SIZE);
        else {
                ck_assert_int_eq(lp__hs_init(), 0);
                lp__random(TS->key, sizeof(TS->key));
        }
        TS->hs_timeout_ms = hs_timeout_ms;
        TS->max_frame = max_frame;
        TS->max_queued = max_queued;
        TS->max_conns = max_conns;
        ck_assert_int_eq(pthread_create(&TS->thr, NULL, server_main, NULL), 0);
        pthread_mutex_lock(&TS->mu);
        while (!TS->ready)
                ck_assert(ts_wait(deadline));
        pthread_mutex_unlock(&TS->mu);
        ck_assert_int_eq(TS->listen_err, 0);
        ck_assert_uint_ne(TS->port, 0);
}

static void ts_start_with(uint32_t hs_timeout_ms, size_t max_frame, size_t max_queued,
                          const uint8_t *key)
{
        ts_start_full(hs_timeout_ms, max_frame, max_queued, 0, key);
}

static void ts_start(void)
{
        ts_start_with(0, 0, 0, NULL);
}

static int ts_get(const int *counter)
{
        int v;

        pthread_mutex_lock(&TS->mu);
        v = *counter;
        pthread_mutex_unlock(&TS->mu);
        return v;
}

static void ts_stop(void)
{
        uv_async_send(&TS->stop);
        pthread_join(TS->thr, NULL);
        ck_assert_int_eq(TS->errors, 0);
        /* Every authenticated connection got its on_close. */
        ck_assert_int_eq(TS->nclose, TS->nconnect);
        pthread_cond_destroy(&TS->cv);
        pthread_mutex_destroy(&TS->mu);
        free(TS);
        TS = NULL;
}

/* Does log line l concern peer (exact address, maybe followed by " site N")? */
static bool log_matches(const struct logline *l, const char *peer, const char *text)
{
        if (peer) {
                size_t n = strlen(peer);

                if (strncmp(l->peer, peer, n) != 0 || (l->peer[n] && l->peer[n] != ' '))
                        return false;
        }
        return !text || strstr(l->msg, text) || strstr(l->peer, text);
}

static int count_logs(const char *peer, const char *text)
{
        int n = 0;

        pthread_mutex_lock(&TS->mu);
        for (int i = 0; i < TS->nlogs; i++)
                n += log_matches(&TS->logs[i], peer, text);
        pthread_mutex_unlock(&TS->mu);
        return n;
}

static void dump_logs(void)
{
        pthread_mutex_lock(&TS->mu);
        for (int i = 0; i < TS->nlogs; i++)
                fprintf(stderr, "# log <%d> %s: %s\n", TS->logs[i].prio, TS->logs[i].peer,
                        TS->logs[i].msg);
        pthread_mutex_unlock(&TS->mu);
}

/* Wait until a log line about peer containing text appears. */
static void wait_log(const char *peer, const char *text)
{
        uint64_t deadline = now_ms() + WAIT_MS;
        bool found = false;

        pthread_mutex_lock(&TS->mu);
        for (;;) {
                for (int i = 0; i < TS->nlogs && !found; i++)
                        found = log_matches(&TS->logs[i], peer, text);
                if (found || !ts_wait(deadline))
                        break;
        }
        pthread_mutex_unlock(&TS->mu);
        if (!found)
                dump_logs();
        ck_assert_msg(found, "no log line for %s containing \"%s\"", peer ? peer : "*", text);
}

static void wait_count(int *counter, int want)
{
        uint64_t deadline = now_ms() + WAIT_MS;

        pthread_mutex_lock(&TS->mu);
        while (*counter < want && ts_wait(deadline))
                ;
        pthread_mutex_unlock(&TS->mu);
        ck_assert_int_ge(*counter, want);
}

/* ---- clients ---- */

static void echo_call(struct lp_client *c, const void *p, size_t len, int timeout_ms)
{
        uint16_t type = 0;
        void *resp = NULL;
        size_t rlen = 0;
        int r = lp_client_call(c, T_ECHO, p, len, timeout_ms, &type, &resp, &rlen);

        if (r < 0)
                ck_abort_msg("echo of %zu bytes: %s", len, strerror(-r));
        CHECK(type == T_ECHO);
        CHECK(rlen == len);
        CHECK(len == 0 ? resp == NULL : memcmp(resp, p, len) == 0);
        free(resp);
}

/* The property every misbehaviour test ends with. */
static void good_client_works(uint64_t site)
{
        struct lp_client *c = NULL;
        int before;

        pthread_mutex_lock(&TS->mu);
        before = TS->nconnect;
        pthread_mutex_unlock(&TS->mu);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, site, WAIT_MS, &c), 0);
        ck_assert_uint_eq(lp_client_peer_site(c), SERVER_SITE);
        echo_call(c, "ping", 4, WAIT_MS);
        echo_call(c, NULL, 0, WAIT_MS);
        lp_client_close(c);
        wait_count(&TS->nconnect, before + 1);
}

/* ---- raw peers ---- */

static int raw_connect(uint16_t port, char *ret_addr, size_t addrlen)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
        socklen_t sl = sizeof(a);
        int fd;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (ret_addr) {
                ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
                snprintf(ret_addr, addrlen, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
        }
        return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

                ck_assert_int_gt(n, 0);
                p += n;
                len -= (size_t)n;
        }
}

static void raw_send_frame(int fd, uint16_t type, uint16_t flags, uint64_t reqid,
                           const void *payload, size_t len)
{
        uint8_t hdr[LP_FRAME_HDR];

        ck_assert_int_eq(lp_frame_header_pack(hdr, type, flags, reqid, len), 0);
        raw_send(fd, hdr, sizeof(hdr));
        if (len)
                raw_send(fd, payload, len);
}

/* Read exactly len bytes; 0, or -ECONNRESET at EOF, or -errno. */
static int raw_read_exact(int fd, void *buf, size_t len)
{
        uint8_t *p = buf;

        while (len) {
                ssize_t n = recv(fd, p, len, 0);

                if (n == 0)
                        return -ECONNRESET;
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int raw_read_frame(int fd, struct lp_frame *f)
{
        uint8_t hdr[LP_FRAME_HDR];
        int r = raw_read_exact(fd, hdr, sizeof(hdr));

        if (r < 0)
                return r;
        r = lp_frame_header_unpack(hdr, LP_FRAME_HARD_MAX, f);
        if (r < 0)
                return r;
        f->payload = f->len ? malloc(f->len) : NULL;
        r = raw_read_exact(fd, f->payload, f->len);
        if (r < 0)
                lp_frame_clear(f);
        return r;
}

/* The server closed fd (after whatever it still had to say). */
static void raw_expect_closed(int fd)
{
        uint64_t deadline = now_ms() + WAIT_MS;
        char buf[4096];

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);

                if (n == 0 || (n < 0 && errno == ECONNRESET))
                        return;
                ck_assert_msg(n > 0 || errno == EAGAIN || errno == EINTR,
                              "recv: %s", strerror(errno));
                ck_assert_msg(now_ms() < deadline, "server did not close the connection");
        }
}

static void raw_expect_hello(int fd, struct lp__hello *ret)
{
        struct lp_frame f;

        ck_assert_int_eq(raw_read_frame(fd, &f), 0);
        ck_assert_uint_eq(f.type, LP_MSG_SERVER_HELLO);
        ck_assert_uint_le(f.len, LP_HS_MAX_FRAME);
        ck_assert_int_eq(lp__server_hello_unpack(f.payload, f.len, ret), 0);
        ck_assert_uint_eq(ret->version, LP_PROTO_VERSION);
        ck_assert_uint_eq(ret->site_id, SERVER_SITE);
        lp_frame_clear(&f);
}

static void raw_expect_status(int fd, enum lp_status want)
{
        struct lp_frame f;
        char *msg = NULL;
        int code = -1;

        ck_assert_int_eq(raw_read_frame(fd, &f), 0);
        ck_assert_uint_eq(f.type, LP_MSG_STATUS);
        ck_assert_int_eq(lp_status_unpack(f.payload, f.len, &code, &msg), 0);
        ck_assert_msg(code == (int)want, "status %s (%s), wanted %s", lp_status_name(code),
                      msg, lp_status_name(want));
        free(msg);
        lp_frame_clear(&f);
}

/* Play a client's handshake by hand (version and key of our choosing). */
static void raw_client_hello(int fd, const uint8_t *key, uint32_t version, uint64_t site)
{
        struct lp__hello sh, ch;
        void *buf;
        size_t len;

        raw_expect_hello(fd, &sh);
        memset(&ch, 0, sizeof(ch));
        ch.version = version;
        ch.site_id = site;
        lp__random(ch.nonce, sizeof(ch.nonce));
        lp__mac_client(key, version, sh.nonce, ch.nonce, sh.site_id, site, ch.mac);
        ck_assert_int_eq(lp__client_hello_pack(&ch, &buf, &len), 0);
        raw_send_frame(fd, LP_MSG_CLIENT_HELLO, 0, 0, buf, len);
        free(buf);
}

static int raw_auth(uint64_t site, char *addr, size_t addrlen)
{
        int fd = raw_connect(TS->port, addr, addrlen);
        struct lp_frame f;

        raw_client_hello(fd, TS->key, LP_PROTO_VERSION, site);
        ck_assert_int_eq(raw_read_frame(fd, &f), 0);
        ck_assert_uint_eq(f.type, LP_MSG_SERVER_AUTH);
        lp_frame_clear(&f);
        return fd;
}

/* ---- tests: the good path ---- */

START_TEST(t_handshake_and_echo)
{
        uint64_t rs = tu_seed("echo");
        struct lp_client *c = NULL;
        static uint8_t buf[70000];
        uint64_t ids[200];

        ts_start();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 7, WAIT_MS, &c), 0);
        ck_assert_ptr_nonnull(c);
        ck_assert_uint_eq(lp_client_peer_site(c), SERVER_SITE);
        wait_count(&TS->nconnect, 1);
        ck_assert_uint_eq(TS->last_site, 7);

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t)tu_rand(&rs);
        for (int i = 0; i < 2000; i++) {
                size_t len = i % 3 == 0 ? tu_rand(&rs) % 64 : tu_rand(&rs) % sizeof(buf);

                echo_call(c, buf, len, WAIT_MS);
        }

        /* Pipelined by hand: many requests out, then the replies in order. */
        for (int i = 0; i < 200; i++) {
                ids[i] = lp_client_next_reqid(c);
                CHECK(lp_client_send(c, T_ECHO, 0x0100, ids[i], buf + i, 100 + i) == 0);
        }
        for (int i = 0; i < 200; i++) {
                uint16_t type, flags;
                uint64_t reqid;
                void *p;
                size_t len;

                CHECK(lp_client_recv(c, WAIT_MS, &type, &flags, &reqid, &p, &len) == 0);
                CHECK(type == T_ECHO && flags == LP_F_REPLY && reqid == ids[i]);
                CHECK(len == 100u + (unsigned)i && memcmp(p, buf + i, len) == 0);
                free(p);
        }
        /* Handshake types are not for applications. */
        ck_assert_int_eq(lp_client_send(c, LP_MSG_CLIENT_HELLO, 0, 1, NULL, 0), -EINVAL);
        ck_assert_int_eq(lp_client_send(c, 0, 0, 1, NULL, 0), -EINVAL);
        lp_client_close(c);
        wait_count(&TS->nclose, 1);
        /* A normal end is logged once, at debug level. */
        ck_assert_int_eq(count_logs(NULL, "site 7"), 1);
        ck_assert_int_eq(count_logs(NULL, "peer hung up"), 1);
        ts_stop();
}
END_TEST

/* A client id named in the ClientHello reaches the server, the same on
 * every connection that names it; a client that names none gives 0. */
START_TEST(t_client_id)
{
        struct lp_client *c = NULL, *d = NULL;
        uint64_t id, id2;

        ck_assert_int_eq(lp_client_id_new(&id), 0);
        ck_assert_int_eq(lp_client_id_new(&id2), 0);
        CHECK(id & LP_CLIENT_ID_BIT);
        CHECK(id != id2);               /* 2^-63 chance of a false failure */
        ts_start();
        ck_assert_int_eq(lp_client_connect_as("127.0.0.1", TS->port, TS->key, 0, id, WAIT_MS, &c), 0);
        wait_count(&TS->nconnect, 1);
        ck_assert_uint_eq(TS->last_site, 0);
        ck_assert_uint_eq(TS->last_client, id);
        echo_call(c, "x", 1, WAIT_MS);
        ck_assert_int_eq(lp_client_connect_as("127.0.0.1", TS->port, TS->key, 0, id, WAIT_MS, &d), 0);
        wait_count(&TS->nconnect, 2);
        ck_assert_uint_eq(TS->last_client, id);
        lp_client_close(d);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 5, WAIT_MS, &d), 0);
        wait_count(&TS->nconnect, 3);
        ck_assert_uint_eq(TS->last_site, 5);
        ck_assert_uint_eq(TS->last_client, 0);
        lp_client_close(d);
        lp_client_close(c);
        wait_count(&TS->nclose, 3);
        /* The log names the client. */
        {
                char want[40];

                snprintf(want, sizeof(want), "client %016llx", (unsigned long long)id);
                ck_assert_int_eq(count_logs(NULL, want), 2);
        }
        ts_stop();
}
END_TEST

START_TEST(t_large_frames)
{
        struct lp_client *c = NULL;
        size_t sizes[] = { LP_MAX_FRAME, LP_MAX_FRAME - 1, 4u << 20, LP_MAX_FRAME };
        uint8_t *big = malloc(LP_MAX_FRAME + 1);

        ck_assert_ptr_nonnull(big);
        for (size_t i = 0; i < LP_MAX_FRAME + 1; i++)
                big[i] = (uint8_t)(i * 7 + (i >> 13));
        ts_start();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 8, WAIT_MS, &c), 0);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
                echo_call(c, big, sizes[i], 60000);
        /* One byte over is refused locally; the connection stays usable. */
        ck_assert_int_eq(lp_client_call(c, T_ECHO, big, LP_MAX_FRAME + 1, WAIT_MS, NULL, NULL,
                                        NULL), -EMSGSIZE);
        echo_call(c, big, 1000, WAIT_MS);
        lp_client_close(c);
        free(big);
        ts_stop();
}
END_TEST

/* One thread per connection, as fused and the CLI use clients. */
static void *worker(void *arg)
{
        uint64_t site = (uintptr_t)arg;
        struct lp_client *c;
        char msg[64];

        if (lp_client_connect("127.0.0.1", TS->port, TS->key, site, WAIT_MS, &c) < 0)
                return (void *)1;
        for (int i = 0; i < 300; i++) {
                uint16_t type;
                void *p = NULL;
                size_t len;
                int n = snprintf(msg, sizeof(msg), "site %llu call %d",
                                 (unsigned long long)site, i);

                if (lp_client_call(c, T_ECHO, msg, (size_t)n, WAIT_MS, &type, &p, &len) < 0 ||
                    len != (size_t)n || memcmp(p, msg, len) != 0) {
                        free(p);
                        lp_client_close(c);
                        return (void *)2;
                }
                free(p);
        }
        lp_client_close(c);
        return NULL;
}

START_TEST(t_concurrent_clients)
{
        ts_start();
        {
                pthread_t th[4];

                for (int i = 0; i < 4; i++)
                        ck_assert_int_eq(pthread_create(&th[i], NULL, worker,
                                                        (void *)(uintptr_t)(100 + i)), 0);
                for (int i = 0; i < 4; i++) {
                        void *ret;

                        pthread_join(th[i], &ret);
                        ck_assert_ptr_null(ret);
                }
        }
        wait_count(&TS->nclose, 4);
        ck_assert_int_eq(ts_get(&TS->nconnect), 4);
        ts_stop();
}
END_TEST

START_TEST(t_notifications_and_status)
{
        struct lp_client *c = NULL;
        uint16_t type, flags;
        uint64_t reqid;
        void *p = NULL;
        size_t len;
        char *msg = NULL;
        int code;

        ts_start();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 9, WAIT_MS, &c), 0);
        /* The notification is kept for recv, the stale reply dropped. */
        ck_assert_int_eq(lp_client_call(c, T_NOTIFY, "abc", 3, WAIT_MS, &type, &p, &len), 0);
        ck_assert_uint_eq(type, T_ECHO);
        ck_assert_uint_eq(len, 3);
        ck_assert_int_eq(memcmp(p, "abc", 3), 0);
        free(p);
        ck_assert_int_eq(lp_client_recv(c, WAIT_MS, &type, &flags, &reqid, &p, &len), 0);
        ck_assert_uint_eq(type, T_NOTE);
        ck_assert_uint_eq(flags, 0);
        ck_assert_uint_eq(len, 4);
        ck_assert_int_eq(memcmp(p, "note", 4), 0);
        free(p);
        /* Nothing else is pending: the stale reply was dropped. */
        ck_assert_int_eq(lp_client_recv(c, 0, &type, &flags, &reqid, &p, &len), -ETIMEDOUT);

        ck_assert_int_eq(lp_client_call(c, T_STATUS, NULL, 0, WAIT_MS, &type, &p, &len), 0);
        ck_assert_uint_eq(type, LP_MSG_STATUS);
        ck_assert_int_eq(lp_status_unpack(p, len, &code, &msg), 0);
        ck_assert_int_eq(code, LP_STATUS_NOT_FOUND);
        ck_assert_int_eq(lp_status_to_errno(code), -ENOENT);
        ck_assert_str_eq(msg, "nope");
        free(msg);
        free(p);
        lp_client_close(c);
        ts_stop();
}
END_TEST

/* ---- tests: timeouts and closed peers on the client side ---- */

START_TEST(t_call_timeout)
{
        struct lp_client *c = NULL;
        uint16_t type;
        void *p = (void *)1;
        size_t len;
        uint64_t t0;

        ts_start();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 10, WAIT_MS, &c), 0);
        t0 = now_ms();
        ck_assert_int_eq(lp_client_call(c, T_SILENT, "x", 1, 200, &type, &p, &len), -ETIMEDOUT);
        ck_assert_uint_ge(now_ms() - t0, 190);
        ck_assert_ptr_eq(p, (void *)1);         /* untouched on failure */
        /* Still usable. */
        echo_call(c, "after", 5, WAIT_MS);
        t0 = now_ms();
        ck_assert_int_eq(lp_client_recv(c, 150, &type, NULL, NULL, &p, &len), -ETIMEDOUT);
        ck_assert_uint_ge(now_ms() - t0, 140);
        ck_assert_int_eq(lp_client_recv(c, 0, &type, NULL, NULL, &p, &len), -ETIMEDOUT);
        echo_call(c, "again", 5, WAIT_MS);
        lp_client_close(c);
        ts_stop();
}
END_TEST

START_TEST(t_peer_closes)
{
        struct lp_client *c = NULL;
        uint16_t type;
        void *p;
        size_t len;

        ts_start();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 11, WAIT_MS, &c), 0);
        ck_assert_int_eq(lp_client_call(c, T_CLOSE, NULL, 0, WAIT_MS, &type, &p, &len),
                         -ECONNRESET);
        /* Sticky, immediate. */
        ck_assert_int_eq(lp_client_call(c, T_ECHO, "x", 1, WAIT_MS, &type, &p, &len),
                         -ECONNRESET);
        ck_assert_int_eq(lp_client_recv(c, WAIT_MS, &type, NULL, NULL, &p, &len), -ECONNRESET);
        ck_assert_int_eq(lp_client_send(c, T_ECHO, 0, 1, "x", 1), -ECONNRESET);
        lp_client_close(c);
        wait_count(&TS->nclose, 1);
        ck_assert_int_eq(count_logs(NULL, "closed by this server"), 1);
        good_client_works(1);
        ts_stop();
}
END_TEST

START_TEST(t_server_shutdown)
{
        struct lp_client *c = NULL;
        uint16_t type;
        void *p;
        size_t len;

        ts_start();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 12, WAIT_MS, &c), 0);
        echo_call(c, "x", 1, WAIT_MS);
        uv_async_send(&TS->stop);
        pthread_join(TS->thr, NULL);
        ck_assert_int_eq(TS->nclose, 1);
        ck_assert_int_eq(lp_client_recv(c, WAIT_MS, &type, NULL, NULL, &p, &len), -ECONNRESET);
        lp_client_close(c);
        ck_assert_int_eq(count_logs(NULL, "server shutting down"), 1);
        ck_assert_int_eq(TS->errors, 0);
        pthread_cond_destroy(&TS->cv);
        pthread_mutex_destroy(&TS->mu);
        free(TS);
        TS = NULL;
}
END_TEST

/* A peer that accepts TCP but never speaks. */
static int silent_listener(uint16_t *ret_port)
{
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t sl = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(listen(fd, 8), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

START_TEST(t_connect_errors)
{
        uint8_t key[LP_KEY_SIZE] = { 1 };
        struct lp_client *c = NULL;
        uint16_t port;
        uint64_t t0;
        int lfd = silent_listener(&port);

        t0 = now_ms();
        ck_assert_int_eq(lp_client_connect("127.0.0.1", port, key, 1, 300, &c), -ETIMEDOUT);
        ck_assert_uint_ge(now_ms() - t0, 290);
        ck_assert_ptr_null(c);
        close(lfd);
        /* Nobody listens there any more. */
        ck_assert_int_eq(lp_client_connect("127.0.0.1", port, key, 1, WAIT_MS, &c),
                         -ECONNREFUSED);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", port, key, 1, 0, &c), -EINVAL);
        ck_assert_ptr_null(c);
}
END_TEST

/* ---- tests: misbehaving peers against the server ---- */

START_TEST(t_wrong_key)
{
        uint8_t bad[LP_KEY_SIZE];
        struct lp_client *c = NULL;

        ts_start();
        memcpy(bad, TS->key, sizeof(bad));
        bad[5] ^= 0x40;
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, bad, 13, WAIT_MS, &c),
                         -EKEYREJECTED);
        ck_assert_ptr_null(c);
        wait_log(NULL, "authentication failed for site 13");
        good_client_works(1);
        ck_assert_int_eq(count_logs(NULL, "site 13"), 1);
        ck_assert_int_eq(ts_get(&TS->nconnect), 1);      /* only the good one */
        ts_stop();
}
END_TEST

START_TEST(t_garbage)
{
        const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        struct lp__hello sh;
        char addr[64];
        int fd;

        ts_start();
        fd = raw_connect(TS->port, addr, sizeof(addr));
        raw_expect_hello(fd, &sh);
        raw_send(fd, http, strlen(http));
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "malformed frame header");
        good_client_works(1);
        ck_assert_int_eq(count_logs(addr, NULL), 1);

        /* Garbage after authentication. */
        fd = raw_auth(14, addr, sizeof(addr));
        raw_send(fd, http, strlen(http));
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "malformed frame header");
        wait_count(&TS->nclose, 2);
        good_client_works(2);
        ck_assert_int_eq(count_logs(addr, NULL), 1);
        ck_assert_int_eq(count_logs(NULL, "site 14"), 1);
        ts_stop();
}
END_TEST

START_TEST(t_truncated_frame)
{
        struct lp__hello sh;
        uint8_t hdr[LP_FRAME_HDR];
        char addr[64];
        int fd;

        ts_start();
        ck_assert_int_eq(lp_frame_header_pack(hdr, LP_MSG_CLIENT_HELLO, 0, 0, 100), 0);
        fd = raw_connect(TS->port, addr, sizeof(addr));
        /* Read the ServerHello first, so that close() sends a FIN, not a
         * reset (the reset case is logged as such). */
        raw_expect_hello(fd, &sh);
        raw_send(fd, hdr, 10);
        close(fd);
        wait_log(addr, "peer hung up before authentication (in the middle of a frame)");
        good_client_works(1);
        ck_assert_int_eq(count_logs(addr, NULL), 1);

        /* Header complete, payload short, then close -- after auth. */
        fd = raw_auth(15, addr, sizeof(addr));
        ck_assert_int_eq(lp_frame_header_pack(hdr, T_ECHO, 0, 1, 1000), 0);
        raw_send(fd, hdr, sizeof(hdr));
        raw_send(fd, "partial", 7);
        close(fd);
        wait_log(addr, "peer hung up (in the middle of a frame)");
        wait_count(&TS->nclose, 2);
        good_client_works(2);
        ck_assert_int_eq(count_logs(addr, NULL), 1);
        ts_stop();
}
END_TEST

START_TEST(t_oversized_frame)
{
        uint8_t hdr[LP_FRAME_HDR];
        struct lp_client *c = NULL;
        struct lp__hello sh;
        char addr[64];
        uint8_t *big;
        int fd;

        ts_start_with(0, 64 * 1024, 0, NULL);
        /* Before authentication the limit is 1 KiB. */
        fd = raw_connect(TS->port, addr, sizeof(addr));
        raw_expect_hello(fd, &sh);
        ck_assert_int_eq(lp_frame_header_pack(hdr, LP_MSG_CLIENT_HELLO, 0, 0,
                                              LP_HS_MAX_FRAME + 1), 0);
        raw_send(fd, hdr, sizeof(hdr));
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "frame larger than the limit before authentication");
        good_client_works(1);
        ck_assert_int_eq(count_logs(addr, NULL), 1);

        /* After: the server's 64 KiB limit; a header claiming 16 MiB. */
        fd = raw_auth(16, addr, sizeof(addr));
        ck_assert_int_eq(lp_frame_header_pack(hdr, T_ECHO, 0, 1, LP_FRAME_HARD_MAX), 0);
        raw_send(fd, hdr, sizeof(hdr));
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "frame larger than the limit (limit 65536 bytes)");
        good_client_works(2);
        ck_assert_int_eq(count_logs(addr, NULL), 1);

        /* A client whose own limit is larger: the server hangs up on it. */
        big = calloc(1, 64 * 1024 + 1);
        ck_assert_ptr_nonnull(big);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 17, WAIT_MS, &c), 0);
        echo_call(c, big, 64 * 1024, WAIT_MS);
        {
                int r = lp_client_call(c, T_ECHO, big, 64 * 1024 + 1, WAIT_MS, NULL, NULL, NULL);

                ck_assert_msg(r == -ECONNRESET || r == -EPIPE, "got %d", r);
        }
        lp_client_close(c);
        free(big);
        wait_log(NULL, "site 17");
        good_client_works(3);
        ck_assert_int_eq(count_logs(NULL, "site 17"), 1);
        ck_assert_int_eq(count_logs(NULL, "frame larger than the limit (limit 65536"), 2);
        ts_stop();
}
END_TEST

START_TEST(t_frame_before_auth)
{
        char addr[64];
        struct lp__hello sh;
        int fd;

        ts_start();
        fd = raw_connect(TS->port, addr, sizeof(addr));
        raw_expect_hello(fd, &sh);
        raw_send_frame(fd, T_ECHO, 0, 1, "hello", 5);
        raw_expect_status(fd, LP_STATUS_PROTOCOL);
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "message type 64 before authentication");
        ck_assert_int_eq(ts_get(&TS->nframes), 0);       /* never reached the application */

        /* A client that gives up (as ours does on a version it does not
         * speak) says why; the server logs it, sanitised. */
        {
                void *buf;
                size_t len;

                fd = raw_connect(TS->port, addr, sizeof(addr));
                raw_expect_hello(fd, &sh);
                ck_assert_int_eq(lp_status_pack(LP_STATUS_PROTOCOL, "no\nthanks", &buf, &len),
                                 0);
                raw_send_frame(fd, LP_MSG_STATUS, 0, 0, buf, len);
                free(buf);
                raw_expect_closed(fd);
                close(fd);
                wait_log(addr, "peer refused the handshake: PROTOCOL: no?thanks");
        }

        /* A handshake message after authentication. */
        fd = raw_auth(18, addr, sizeof(addr));
        raw_send_frame(fd, LP_MSG_SERVER_HELLO, 0, 0, NULL, 0);
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "handshake message type 1 after authentication");
        good_client_works(1);
        ck_assert_int_eq(count_logs(addr, NULL), 1);
        ck_assert_int_eq(ts_get(&TS->nframes), 2);       /* only the good client's */
        ts_stop();
}
END_TEST

START_TEST(t_version_mismatch_at_server)
{
        char addr[64];
        int fd;

        ts_start();
        fd = raw_connect(TS->port, addr, sizeof(addr));
        raw_client_hello(fd, TS->key, LP_PROTO_VERSION + 1, 19);
        raw_expect_status(fd, LP_STATUS_PROTOCOL);
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "protocol version mismatch");
        good_client_works(1);
        ck_assert_int_eq(count_logs(addr, NULL), 1);

        /* A right version but a wrong MAC, by hand: AUTH. */
        {
                uint8_t bad[LP_KEY_SIZE] = { 0 };

                fd = raw_connect(TS->port, addr, sizeof(addr));
                raw_client_hello(fd, bad, LP_PROTO_VERSION, 20);
                raw_expect_status(fd, LP_STATUS_AUTH);
                raw_expect_closed(fd);
                close(fd);
                wait_log(addr, "authentication failed");
        }
        ts_stop();
}
END_TEST

START_TEST(t_silent_peer)
{
        struct lp__hello sh;
        char addr[64];
        uint64_t t0;
        int fd;

        ts_start_with(300, 0, 0, NULL);
        t0 = now_ms();
        fd = raw_connect(TS->port, addr, sizeof(addr));
        raw_expect_hello(fd, &sh);
        raw_expect_closed(fd);
        ck_assert_uint_ge(now_ms() - t0, 250);
        close(fd);
        wait_log(addr, "no handshake within 300 ms");
        good_client_works(1);
        ck_assert_int_eq(count_logs(addr, NULL), 1);

        /* Half a ClientHello and then silence. */
        fd = raw_connect(TS->port, addr, sizeof(addr));
        raw_expect_hello(fd, &sh);
        raw_send(fd, "\xA1\x40", 2);
        raw_expect_closed(fd);
        close(fd);
        wait_log(addr, "no handshake within 300 ms");
        /* The handshake deadline is gone once authenticated. */
        {
                struct lp_client *c = NULL;
                uint16_t type;
                void *p;
                size_t len;

                ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 21,
                                                   WAIT_MS, &c), 0);
                /* Wait for the server's timer to have passed, without sleep():
                 * a call that is never answered, longer than the timeout. */
                ck_assert_int_eq(lp_client_call(c, T_SILENT, NULL, 0, 600, &type, &p, &len),
                                 -ETIMEDOUT);
                echo_call(c, "still here", 10, WAIT_MS);
                lp_client_close(c);
        }
        ts_stop();
}
END_TEST

START_TEST(t_peer_not_reading)
{
        static uint8_t chunk[64 * 1024];
        struct lp_client *c = NULL;
        int r = 0, i;

        ts_start_with(0, 128 * 1024, 256 * 1024, NULL);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 22, WAIT_MS, &c), 0);
        ck_assert_int_eq(lp_client_set_send_timeout(c, WAIT_MS), 0);
        /* Requests out, replies never read: the server must cut us off. */
        for (i = 0; i < 20000; i++) {
                r = lp_client_send(c, T_ECHO, 0, (uint64_t)i + 1, chunk, sizeof(chunk));
                if (r < 0)
                        break;
        }
        ck_assert_msg(r == -EPIPE || r == -ECONNRESET, "send %d: %d", i, r);
        lp_client_close(c);
        wait_log(NULL, "peer does not read");
        wait_count(&TS->nclose, 1);
        good_client_works(1);
        ck_assert_int_eq(count_logs(NULL, "site 22"), 1);
        ts_stop();
}
END_TEST

START_TEST(t_peer_gone_while_writing)
{
        static uint8_t chunk[256 * 1024];
        char addr[64];
        int fd;

        /* The server is still writing replies when the peer is gone: a write
         * to a reset socket must not kill the process (SIGPIPE). */
        ts_start();
        for (int round = 0; round < 5; round++) {
                fd = raw_auth(25, addr, sizeof(addr));
                for (int i = 0; i < 16; i++)
                        raw_send_frame(fd, T_ECHO, 0, (uint64_t)i + 1, chunk, sizeof(chunk));
                close(fd);              /* unread replies: this sends a reset */
                wait_log(addr, "connection closed");
        }
        wait_count(&TS->nclose, 5);
        good_client_works(1);
        ts_stop();
}
END_TEST

/* ---- a fake server, for the client's side of the handshake ---- */

enum fake_mode { FAKE_NEW_VERSION, FAKE_BAD_PROOF };

struct fake {
        int lfd;
        enum fake_mode mode;
        int got_status;                 /* the Status the client sent, or -1 */
};

static void *fake_server(void *arg)
{
        struct fake *fk = arg;
        struct lp__hello sh, ch;
        struct lp_frame f;
        uint8_t mac[LP_MAC_SIZE];
        void *buf;
        size_t len;
        int fd = accept(fk->lfd, NULL, NULL);

        fk->got_status = -1;
        if (fd < 0)
                return NULL;
        memset(&sh, 0, sizeof(sh));
        sh.version = fk->mode == FAKE_NEW_VERSION ? LP_PROTO_VERSION + 1 : LP_PROTO_VERSION;
        sh.site_id = 99;
        lp__random(sh.nonce, sizeof(sh.nonce));
        if (lp__server_hello_pack(&sh, &buf, &len) == 0) {
                uint8_t hdr[LP_FRAME_HDR];

                lp_frame_header_pack(hdr, LP_MSG_SERVER_HELLO, 0, 0, len);
                send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL);
                send(fd, buf, len, MSG_NOSIGNAL);
                free(buf);
        }
        if (raw_read_frame(fd, &f) == 0) {
                if (f.type == LP_MSG_STATUS)
                        lp_status_unpack(f.payload, f.len, &fk->got_status, NULL);
                if (f.type == LP_MSG_CLIENT_HELLO &&
                    lp__client_hello_unpack(f.payload, f.len, &ch) == 0) {
                        /* An impostor without the key: a proof that cannot be right. */
                        lp__random(mac, sizeof(mac));
                        if (lp__server_auth_pack(mac, &buf, &len) == 0) {
                                uint8_t hdr[LP_FRAME_HDR];

                                lp_frame_header_pack(hdr, LP_MSG_SERVER_AUTH, 0, 0, len);
                                send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL);
                                send(fd, buf, len, MSG_NOSIGNAL);
                                free(buf);
                        }
                }
                lp_frame_clear(&f);
        }
        /* Wait for the client to hang up. */
        {
                char b[256];

                while (recv(fd, b, sizeof(b), 0) > 0)
                        ;
        }
        close(fd);
        return NULL;
}

START_TEST(t_client_side_refusals)
{
        uint8_t key[LP_KEY_SIZE] = { 3 };
        struct lp_client *c = NULL;
        struct fake fk;
        pthread_t th;
        uint16_t port;

        ck_assert_int_eq(lp__hs_init(), 0);
        fk.lfd = silent_listener(&port);
        fk.mode = FAKE_NEW_VERSION;
        ck_assert_int_eq(pthread_create(&th, NULL, fake_server, &fk), 0);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", port, key, 1, WAIT_MS, &c),
                         -EPROTONOSUPPORT);
        pthread_join(th, NULL);
        ck_assert_int_eq(fk.got_status, LP_STATUS_PROTOCOL);

        fk.mode = FAKE_BAD_PROOF;
        ck_assert_int_eq(pthread_create(&th, NULL, fake_server, &fk), 0);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", port, key, 1, WAIT_MS, &c),
                         -EKEYREJECTED);
        pthread_join(th, NULL);
        ck_assert_ptr_null(c);
        close(fk.lfd);
}
END_TEST

/* ---- server API edges, on a loop of our own ---- */

START_TEST(t_server_api)
{
        uv_loop_t loop;
        struct lp_server *srv = NULL;
        uint8_t key[LP_KEY_SIZE] = { 0 };
        uint16_t port = 0;

        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(lp_server_new(&loop, key, 1, NULL, NULL, &srv), 0);
        ck_assert_ptr_null(lp_server_get_data(srv));
        ck_assert_int_eq(lp_server_set_max_frame(srv, 0), -EINVAL);
        ck_assert_int_eq(lp_server_set_max_frame(srv, LP_FRAME_HARD_MAX + 1ul), -EINVAL);
        ck_assert_int_eq(lp_server_set_max_frame(srv, 4096), 0);
        ck_assert_int_eq(lp_server_set_max_queued(srv, 100), -EINVAL);
        ck_assert_int_eq(lp_server_set_max_queued(srv, 8192), 0);
        ck_assert_int_eq(lp_server_set_handshake_timeout(srv, 0), -EINVAL);
        ck_assert_int_eq(lp_server_set_max_conns(srv, 0), -EINVAL);
        ck_assert_int_eq(lp_server_listen(srv, "not an address", 0, &port), -EINVAL);
        ck_assert_int_eq(lp_server_listen(srv, "127.0.0.1", 0, &port), 0);
        ck_assert_uint_ne(port, 0);
        ck_assert_int_eq(lp_server_listen(srv, "127.0.0.1", 0, &port), -EBUSY);
        lp_server_close(srv);
        ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
        ck_assert_int_eq(uv_loop_close(&loop), 0);

        /* Closing a server that never listened frees it at once. */
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(lp_server_new(&loop, key, 1, NULL, NULL, &srv), 0);
        lp_server_close(srv);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(t_max_conns)
{
        struct lp_client *a = NULL, *b = NULL;

        ts_start_full(0, 0, 0, 1, NULL);
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 23, WAIT_MS, &a), 0);
        /* One too many: accepted and dropped at once. */
        ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, TS->key, 24, WAIT_MS, &b),
                         -ECONNRESET);
        ck_assert_ptr_null(b);
        wait_log(NULL, "connection refused");
        echo_call(a, "a", 1, WAIT_MS);
        lp_client_close(a);
        wait_count(&TS->nclose, 1);
        good_client_works(1);
        ck_assert_int_eq(count_logs(NULL, "connection refused"), 1);
        ts_stop();
}
END_TEST

/* ---- key files ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
        int fd;

        unlink(path);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
}

START_TEST(t_key_generate_load)
{
        char p1[512], p2[512];
        uint8_t k1[LP_KEY_SIZE], k2[LP_KEY_SIZE], k3[LP_KEY_SIZE];
        char text[LP_KEY_FILE_SIZE + 8];
        struct stat st;
        int fd;
        ssize_t n;

        snprintf(p1, sizeof(p1), "%s/cluster.key", tu_tmpdir());
        snprintf(p2, sizeof(p2), "%s/other.key", tu_tmpdir());
        ck_assert_int_eq(lp_key_generate(p1), 0);
        ck_assert_int_eq(lp_key_generate(p1), -EEXIST);
        ck_assert_int_eq(lp_key_generate(p2), 0);
        ck_assert_int_eq(stat(p1, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0400);
        ck_assert_int_eq(st.st_size, LP_KEY_FILE_SIZE);
        fd = open(p1, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        n = read(fd, text, sizeof(text));
        close(fd);
        ck_assert_int_eq(n, LP_KEY_FILE_SIZE);
        for (int i = 0; i < 64; i++)
                ck_assert(strchr("0123456789abcdef", text[i]) != NULL);
        ck_assert_int_eq(text[64], '\n');

        ck_assert_int_eq(lp_key_load(p1, k1), 0);
        ck_assert_int_eq(lp_key_load(p2, k2), 0);
        ck_assert_int_ne(memcmp(k1, k2, sizeof(k1)), 0);
        for (int i = 0; i < LP_KEY_SIZE; i++) {
                unsigned v;

                ck_assert_int_eq(sscanf(text + 2 * i, "%2x", &v), 1);
                ck_assert_uint_eq(k1[i], v);
        }

        /* The keys work: a server and a client loading the same file agree. */
        ts_start_with(0, 0, 0, k1);
        {
                struct lp_client *c = NULL;

                ck_assert_int_eq(lp_key_load(p1, k3), 0);
                ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, k3, 30, WAIT_MS, &c),
                                 0);
                echo_call(c, "k", 1, WAIT_MS);
                lp_client_close(c);
                ck_assert_int_eq(lp_client_connect("127.0.0.1", TS->port, k2, 31, WAIT_MS, &c),
                                 -EKEYREJECTED);
        }
        ts_stop();
        lp_key_wipe(k1, sizeof(k1));
        for (int i = 0; i < LP_KEY_SIZE; i++)
                ck_assert_uint_eq(k1[i], 0);
}
END_TEST

START_TEST(t_key_permissions)
{
        static const mode_t refused[] = { 0440, 0404, 0640, 0604, 0644, 0620, 0602, 0610, 0601 };
        static const mode_t accepted[] = { 0400, 0600, 0700 };
        const char *hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        uint8_t key[LP_KEY_SIZE], sentinel[LP_KEY_SIZE];
        char path[512];

        snprintf(path, sizeof(path), "%s/k", tu_tmpdir());
        for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                write_file(path, hex, refused[i]);
                memset(key, 0x5A, sizeof(key));
                memset(sentinel, 0x5A, sizeof(sentinel));
                ck_assert_int_eq(lp_key_load(path, key), -EPERM);
                ck_assert_int_eq(memcmp(key, sentinel, sizeof(key)), 0);
        }
        ck_assert_ptr_nonnull(strstr(lp_key_strerror(-EPERM), "group or others"));
        for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
                write_file(path, hex, accepted[i]);
                ck_assert_int_eq(lp_key_load(path, key), 0);
                ck_assert_uint_eq(key[0], 0x00);
                ck_assert_uint_eq(key[1], 0x11);
                ck_assert_uint_eq(key[31], 0xFF);
        }
}
END_TEST

START_TEST(t_key_format)
{
        static const char *bad[] = {
                "",
                "\n",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef\n",   /* 63 */
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",    /* no \n */
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0\n", /* 65 */
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg\n",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddee f\n",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef\r\n",
                "0x112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        };
        uint8_t key[LP_KEY_SIZE];
        char path[512];

        snprintf(path, sizeof(path), "%s/k", tu_tmpdir());
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                write_file(path, bad[i], 0400);
                ck_assert_msg(lp_key_load(path, key) == -EBADMSG, "case %zu accepted", i);
        }
        ck_assert_ptr_nonnull(strstr(lp_key_strerror(-EBADMSG), "64 hexadecimal digits"));

        snprintf(path, sizeof(path), "%s/missing", tu_tmpdir());
        ck_assert_int_eq(lp_key_load(path, key), -ENOENT);
        ck_assert_int_eq(lp_key_load(tu_tmpdir(), key), -EINVAL);      /* a directory */
        snprintf(path, sizeof(path), "%s/no/such/dir/key", tu_tmpdir());
        ck_assert_int_eq(lp_key_generate(path), -ENOENT);
}
END_TEST

static Suite *lp_conn_suite(void)
{
        Suite *s = suite_create("lp_conn");
        TCase *tc;

        tc = tcase_create("good");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, t_handshake_and_echo);
        tcase_add_test(tc, t_client_id);
        tcase_add_test(tc, t_large_frames);
        tcase_add_test(tc, t_concurrent_clients);
        tcase_add_test(tc, t_notifications_and_status);
        suite_add_tcase(s, tc);

        tc = tcase_create("client_waits");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_call_timeout);
        tcase_add_test(tc, t_peer_closes);
        tcase_add_test(tc, t_server_shutdown);
        tcase_add_test(tc, t_connect_errors);
        tcase_add_test(tc, t_client_side_refusals);
        suite_add_tcase(s, tc);

        tc = tcase_create("bad_peers");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_wrong_key);
        tcase_add_test(tc, t_garbage);
        tcase_add_test(tc, t_truncated_frame);
        tcase_add_test(tc, t_oversized_frame);
        tcase_add_test(tc, t_frame_before_auth);
        tcase_add_test(tc, t_version_mismatch_at_server);
        tcase_add_test(tc, t_silent_peer);
        tcase_add_test(tc, t_peer_not_reading);
        tcase_add_test(tc, t_peer_gone_while_writing);
        tcase_add_test(tc, t_max_conns);
        suite_add_tcase(s, tc);

        tc = tcase_create("server_api");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_server_api);
        suite_add_tcase(s, tc);

        tc = tcase_create("key");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_key_generate_load);
        tcase_add_test(tc, t_key_permissions);
        tcase_add_test(tc, t_key_format);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(lp_conn_suite());
}
