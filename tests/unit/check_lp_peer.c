/*
 * check_lp_peer.c -- the asynchronous peer client (proto/lp_peer.h) against
 * real lp_servers over real TCP on 127.0.0.0/8, everything on one libuv loop
 * of the test process: calls and replies, server pushes, timeouts and late
 * replies, a server that dies and comes back (one on_down per outage, the
 * link back by itself), a wrong key, refused and garbage-speaking servers,
 * close with calls in flight, the source address, moving to another server.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "lp_conn.h"
#include "lp_peer.h"
#include "testutil.h"


#define WAIT_MS 10000

enum {
        T_ECHO = LP_MSG_USER_MIN,       /* reply with the same payload */
        T_SILENT,                       /* never answered */
        T_LATE,                         /* answered 300 ms later */
        T_PUSH,                         /* a push (T_NOTE), then the reply */
        T_CLOSE,                        /* the server closes the connection */
        T_NOTE,
};

static uv_loop_t loop;
static uint8_t key[LP_KEY_SIZE], other_key[LP_KEY_SIZE];

/* ---- a server on the loop ---- */

struct srv {
        struct lp_server *s;
        uint16_t port;
        int nconnect;
        char last_peer[128];
};

struct late {
        uv_timer_t t;
        struct lp_conn *conn;
        uint64_t reqid;
};

static void late_closed(uv_handle_t *h)
{
        free(h->data);
}

static void late_fire(uv_timer_t *t)
{
        struct late *l = t->data;

        lp_server_reply(l->conn, l->reqid, T_LATE, "late", 4);
        uv_close((uv_handle_t *)&l->t, late_closed);
}

static void srv_connect(struct lp_conn *conn, uint64_t site)
{
        struct srv *sv = lp_server_get_data(lp_server_conn_server(conn));

        (void)site;
        sv->nconnect++;
        snprintf(sv->last_peer, sizeof(sv->last_peer), "%s", lp_server_conn_peer(conn));
}

static void srv_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                      size_t len)
{
        (void)flags;
        switch (type) {
        case T_ECHO:
                lp_server_reply(conn, reqid, T_ECHO, payload, len);
                break;
        case T_LATE: {
                struct late *l = calloc(1, sizeof(*l));

                l->conn = conn;
                l->reqid = reqid;
                uv_timer_init(&loop, &l->t);
                l->t.data = l;
                uv_timer_start(&l->t, late_fire, 300, 0);
                break;
        }
        case T_PUSH:
                lp_server_send(conn, T_NOTE, 0, 0, "note", 4);
                lp_server_reply(conn, reqid, T_PUSH, NULL, 0);
                break;
        case T_CLOSE:
                lp_server_conn_close(conn);
                break;
        default:
                break;
        }
}

static struct srv *srv_start(const uint8_t *k, uint64_t site, const char *host, uint16_t port)
{
        struct lp_server_callbacks cb = { .on_connect = srv_connect, .on_frame = srv_frame };
        struct srv *sv = calloc(1, sizeof(*sv));

        CHECK(sv);
        CHECK(lp_server_new(&loop, k, site, &cb, sv, &sv->s) == 0);
        CHECK(lp_server_listen(sv->s, host, port, &sv->port) == 0);
        return sv;
}

static void srv_stop(struct srv *sv)
{
        lp_server_close(sv->s);
        free(sv);
}

/* ---- the peer's side ---- */

struct obs {
        int ups, downs, pushes;
        int last_err;
        char why[512];
        uint64_t up_site;
        uint16_t push_type;
};

static void on_up(struct lp_peer *p, uint64_t site)
{
        struct obs *o = lp_peer_data(p);

        o->ups++;
        o->up_site = site;
}

static void on_down(struct lp_peer *p, int err, const char *why)
{
        struct obs *o = lp_peer_data(p);

        o->downs++;
        o->last_err = err;
        snprintf(o->why, sizeof(o->why), "%s", why);
}

static void on_push(struct lp_peer *p, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                    size_t len)
{
        struct obs *o = lp_peer_data(p);

        (void)flags;
        (void)reqid;
        (void)payload;
        (void)len;
        o->pushes++;
        o->push_type = type;
}

static const struct lp_peer_callbacks pcb = { .on_up = on_up, .on_down = on_down, .on_push = on_push };

struct answer {
        int n;                          /* answers received: must end at 1 */
        int err;
        uint16_t type;
        char data[64];
};

static void on_reply(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct answer *a = arg;

        a->n++;
        a->err = err;
        a->type = type;
        snprintf(a->data, sizeof(a->data), "%.*s", (int)len, payload ? (const char *)payload : "");
}

static struct lp_peer *peer_new(const char *host, uint16_t port, const uint8_t *k, const char *source,
                                struct obs *o)
{
        struct lp_peer_opts po = { .host = host, .port = port, .key = k, .site_id = 7, .source = source,
                                   .connect_timeout_ms = 2000, .backoff_min_ms = 20, .backoff_max_ms = 200 };
        struct lp_peer *p = NULL;

        CHECK(lp_peer_new(&loop, &po, &pcb, o, &p) == 0);
        return p;
}

/* ---- driving the loop ---- */

static void tick(uv_timer_t *t)
{
        (void)t;
}

/* Run the loop until *flag >= want or WAIT_MS pass; true if reached. */
static bool run_until(const int *flag, int want)
{
        uv_timer_t t;
        uint64_t end;

        uv_timer_init(&loop, &t);
        uv_timer_start(&t, tick, 10, 10);
        uv_update_time(&loop);
        end = uv_now(&loop) + WAIT_MS;
        while (*flag < want && uv_now(&loop) < end)
                uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        return *flag >= want;
}

/* Run the loop for ms. */
static void run_for(uint64_t ms)
{
        int never = 0;
        uv_timer_t t;
        uint64_t end;

        uv_timer_init(&loop, &t);
        uv_timer_start(&t, tick, 10, 10);
        uv_update_time(&loop);
        end = uv_now(&loop) + ms;
        while (!never && uv_now(&loop) < end)
                uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* Close everything and check the loop is left with no handle. */
static void finish(void)
{
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&loop) == 0);
}

static void setup(void)
{
        CHECK(uv_loop_init(&loop) == 0);
        memset(key, 0x5a, sizeof(key));
        memset(other_key, 0xa5, sizeof(other_key));
}

/* ---- cases ---- */

START_TEST(test_call_push)
{
        struct srv *sv;
        struct obs o = { 0 };
        struct answer a = { 0 }, b = { 0 };
        struct lp_peer_stats st;
        struct lp_peer *p;

        setup();
        sv = srv_start(key, 42, "127.0.0.1", 0);
        p = peer_new("127.0.0.1", sv->port, key, NULL, &o);
        CHECK(!lp_peer_is_up(p));
        CHECK(lp_peer_call(p, T_ECHO, "x", 1, 1000, on_reply, &a) == -ENOTCONN);
        CHECK(run_until(&o.ups, 1));
        CHECK(o.up_site == 42 && lp_peer_site(p) == 42 && lp_peer_is_up(p));
        CHECK(lp_peer_call(p, T_ECHO, "hello", 5, 1000, on_reply, &a) == 0);
        CHECK(a.n == 0);                /* never from inside the call */
        CHECK(run_until(&a.n, 1));
        CHECK(a.err == 0 && a.type == T_ECHO && !strcmp(a.data, "hello"));
        CHECK(lp_peer_call(p, T_PUSH, NULL, 0, 1000, on_reply, &b) == 0);
        CHECK(run_until(&b.n, 1));
        CHECK(b.err == 0 && o.pushes == 1 && o.push_type == T_NOTE);
        CHECK(lp_peer_send(p, T_NOTE, 0, 0, "n", 1) == 0);
        CHECK(lp_peer_call(p, 3 /* a handshake type */, NULL, 0, 1000, on_reply, &b) == -EINVAL);
        lp_peer_stats(p, &st);
        CHECK(st.ups == 1 && st.calls == 2 && st.replies == 2 && st.pushes == 1);
        CHECK(o.downs == 0 && a.n == 1 && b.n == 1);
        lp_peer_close(p);
        srv_stop(sv);
        finish();
}
END_TEST

START_TEST(test_timeout_late)
{
        struct srv *sv;
        struct obs o = { 0 };
        struct answer a = { 0 }, b = { 0 }, c = { 0 };
        struct lp_peer_stats st;
        struct lp_peer *p;

        setup();
        sv = srv_start(key, 42, "127.0.0.1", 0);
        p = peer_new("127.0.0.1", sv->port, key, NULL, &o);
        CHECK(run_until(&o.ups, 1));
        CHECK(lp_peer_call(p, T_SILENT, NULL, 0, 100, on_reply, &a) == 0);
        CHECK(lp_peer_call(p, T_LATE, NULL, 0, 100, on_reply, &b) == 0);
        CHECK(lp_peer_call(p, T_ECHO, "ok", 2, 5000, on_reply, &c) == 0);
        CHECK(run_until(&b.n, 1));
        CHECK(a.n == 1 && a.err == -ETIMEDOUT);
        CHECK(b.err == -ETIMEDOUT && c.n == 1 && c.err == 0);
        run_for(500);                   /* the late reply arrives and is dropped */
        lp_peer_stats(p, &st);
        CHECK(st.late_replies == 1 && st.timeouts == 2);
        CHECK(a.n == 1 && b.n == 1 && c.n == 1);
        CHECK(lp_peer_is_up(p) && o.downs == 0);        /* a timeout does not break the link */
        lp_peer_close(p);
        srv_stop(sv);
        finish();
}
END_TEST

START_TEST(test_server_gone_and_back)
{
        struct srv *sv;
        struct obs o = { 0 };
        struct answer a = { 0 }, b = { 0 }, c = { 0 };
        struct lp_peer_stats st;
        struct lp_peer *p;
        uint16_t port;

        setup();
        sv = srv_start(key, 42, "127.0.0.1", 0);
        port = sv->port;
        p = peer_new("127.0.0.1", port, key, NULL, &o);
        CHECK(run_until(&o.ups, 1));
        CHECK(lp_peer_call(p, T_SILENT, NULL, 0, 60000, on_reply, &a) == 0);
        run_for(50);
        srv_stop(sv);                   /* dies with a call in flight */
        CHECK(run_until(&a.n, 1));
        CHECK(a.err == -ECONNRESET);
        CHECK(o.downs == 1 && o.last_err == -ECONNRESET && strstr(o.why, "127.0.0.1:"));
        CHECK(!lp_peer_is_up(p));
        CHECK(lp_peer_call(p, T_ECHO, NULL, 0, 1000, on_reply, &b) == -ENOTCONN);
        run_for(600);                   /* refused again and again: one outage */
        lp_peer_stats(p, &st);
        CHECK(st.attempts >= 3);
        CHECK(o.downs == 1);
        sv = srv_start(key, 42, "127.0.0.1", port);     /* back on the same port */
        CHECK(run_until(&o.ups, 2));
        CHECK(lp_peer_call(p, T_ECHO, "again", 5, 1000, on_reply, &c) == 0);
        CHECK(run_until(&c.n, 1));
        CHECK(c.err == 0 && !strcmp(c.data, "again"));
        /* the server closes this connection: a new outage, reported */
        CHECK(lp_peer_call(p, T_CLOSE, NULL, 0, 5000, on_reply, &b) == 0);
        CHECK(run_until(&o.downs, 2));
        CHECK(run_until(&o.ups, 3));
        CHECK(b.n == 1 && b.err == -ECONNRESET);
        lp_peer_close(p);
        srv_stop(sv);
        finish();
}
END_TEST

START_TEST(test_wrong_key)
{
        struct srv *sv;
        struct obs o = { 0 };
        struct lp_peer_stats st;
        struct lp_peer *p;

        setup();
        sv = srv_start(other_key, 42, "127.0.0.1", 0);
        p = peer_new("127.0.0.1", sv->port, key, NULL, &o);
        CHECK(run_until(&o.downs, 1));
        CHECK(o.last_err == -EKEYREJECTED);
        CHECK(strstr(o.why, "AUTH") || strstr(o.why, "key"));
        run_for(300);
        lp_peer_stats(p, &st);
        CHECK(st.attempts >= 2 && st.ups == 0 && o.ups == 0 && o.downs == 1);
        lp_peer_close(p);
        srv_stop(sv);
        finish();
}
END_TEST

START_TEST(test_refused)
{
        struct obs o = { 0 };
        struct lp_peer *p;
        uint16_t port;

        setup();
        {
                /* a port nobody listens on: bind one, note it, close it */
                struct srv *sv = srv_start(key, 42, "127.0.0.1", 0);

                port = sv->port;
                srv_stop(sv);
                uv_run(&loop, UV_RUN_NOWAIT);
        }
        p = peer_new("127.0.0.1", port, key, NULL, &o);
        CHECK(run_until(&o.downs, 1));
        CHECK(o.last_err == -ECONNREFUSED && strstr(o.why, "connect"));
        lp_peer_close(p);
        finish();
}
END_TEST

/* A server that answers the connection with garbage. */
static void garbage_conn(uv_stream_t *l, int status)
{
        uv_tcp_t *c = malloc(sizeof(*c));
        static char junk[64];
        uv_buf_t b = uv_buf_init(junk, sizeof(junk));

        CHECK(status == 0);
        memset(junk, 'Z', sizeof(junk));
        uv_tcp_init(&loop, c);
        CHECK(uv_accept(l, (uv_stream_t *)c) == 0);
        CHECK(uv_try_write((uv_stream_t *)c, &b, 1) == (int)sizeof(junk));
        c->data = NULL;
        l->data = c;
}

static void free_handle(uv_handle_t *h)
{
        free(h);
}

START_TEST(test_garbage)
{
        struct obs o = { 0 };
        struct sockaddr_in sa;
        struct lp_peer *p;
        uv_tcp_t lst;
        int nl = sizeof(sa);

        setup();
        uv_tcp_init(&loop, &lst);
        lst.data = NULL;
        uv_ip4_addr("127.0.0.1", 0, &sa);
        CHECK(uv_tcp_bind(&lst, (struct sockaddr *)&sa, 0) == 0);
        CHECK(uv_listen((uv_stream_t *)&lst, 4, garbage_conn) == 0);
        CHECK(uv_tcp_getsockname(&lst, (struct sockaddr *)&sa, &nl) == 0);
        p = peer_new("127.0.0.1", ntohs(sa.sin_port), key, NULL, &o);
        CHECK(run_until(&o.downs, 1));
        CHECK(o.last_err == -EBADMSG && strstr(o.why, "malformed"));
        lp_peer_close(p);
        if (lst.data)
                uv_close((uv_handle_t *)lst.data, free_handle);
        uv_close((uv_handle_t *)&lst, NULL);
        finish();
}
END_TEST

static void close_from_reply(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct answer *a = arg;

        (void)type;
        (void)payload;
        (void)len;
        a->n++;
        a->err = err;
}

START_TEST(test_close_with_calls)
{
        struct srv *sv;
        struct obs o = { 0 };
        struct answer a[8];
        struct lp_peer *p;

        setup();
        memset(a, 0, sizeof(a));
        sv = srv_start(key, 42, "127.0.0.1", 0);
        p = peer_new("127.0.0.1", sv->port, key, NULL, &o);
        CHECK(run_until(&o.ups, 1));
        for (int i = 0; i < 8; i++)
                CHECK(lp_peer_call(p, T_SILENT, NULL, 0, 60000, close_from_reply, &a[i]) == 0);
        run_for(50);
        lp_peer_close(p);
        for (int i = 0; i < 8; i++)
                CHECK(a[i].n == 1 && a[i].err == -ECANCELED);
        CHECK(o.downs == 0);            /* no callback but the answers after close */
        srv_stop(sv);
        finish();                       /* every handle closed: the loop closes */
}
END_TEST

START_TEST(test_source_and_move)
{
        struct srv *s1, *s2;
        struct obs o = { 0 };
        struct answer a = { 0 };
        struct lp_peer *p;
        struct lp_peer_opts bad = { .host = "localhost", .port = 1, .key = key };

        setup();
        CHECK(lp_peer_new(&loop, &bad, &pcb, &o, &p) == -EINVAL);      /* numeric addresses only */
        s1 = srv_start(key, 42, "127.0.0.1", 0);
        s2 = srv_start(key, 43, "127.0.0.1", 0);
        p = peer_new("127.0.0.1", s1->port, key, "127.0.0.2", &o);
        CHECK(run_until(&o.ups, 1));
        CHECK(!strncmp(s1->last_peer, "127.0.0.2:", 10));       /* bound to the source */
        CHECK(lp_peer_set_addr(p, "127.0.0.1", s2->port) == 0);
        CHECK(run_until(&o.ups, 2));
        CHECK(o.up_site == 43 && o.downs == 1 && !strncmp(s2->last_peer, "127.0.0.2:", 10));
        CHECK(lp_peer_call(p, T_ECHO, "two", 3, 1000, on_reply, &a) == 0);
        CHECK(run_until(&a.n, 1));
        CHECK(a.err == 0 && !strcmp(a.data, "two"));
        CHECK(lp_peer_set_addr(p, "not an address", 1) == -EINVAL);
        lp_peer_close(p);
        srv_stop(s1);
        srv_stop(s2);
        finish();
}
END_TEST

START_TEST(test_frame_limit)
{
        struct srv *sv;
        struct obs o = { 0 };
        struct answer a = { 0 };
        struct lp_peer *p = NULL;
        struct lp_peer_opts po = { .host = "127.0.0.1", .key = key, .site_id = 7, .max_frame = 1024 };
        static char big[2048];

        setup();
        sv = srv_start(key, 42, "127.0.0.1", 0);
        po.port = sv->port;
        CHECK(lp_peer_new(&loop, &po, &pcb, &o, &p) == 0);
        CHECK(run_until(&o.ups, 1));
        CHECK(lp_peer_call(p, T_ECHO, big, sizeof(big), 1000, on_reply, &a) == -EMSGSIZE);
        CHECK(lp_peer_call(p, T_ECHO, big, 1000, 1000, on_reply, &a) == 0);
        CHECK(run_until(&a.n, 1));
        CHECK(a.err == 0);
        lp_peer_close(p);
        srv_stop(sv);
        finish();
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("lp_peer");
        TCase *tc = tcase_create("peer");

        tcase_add_test(tc, test_call_push);
        tcase_add_test(tc, test_timeout_late);
        tcase_add_test(tc, test_server_gone_and_back);
        tcase_add_test(tc, test_wrong_key);
        tcase_add_test(tc, test_refused);
        tcase_add_test(tc, test_garbage);
        tcase_add_test(tc, test_close_with_calls);
        tcase_add_test(tc, test_source_and_move);
        tcase_add_test(tc, test_frame_limit);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
