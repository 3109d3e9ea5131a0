/*
 * fuzz_handshake.c -- the server's handshake state machine and
 * authenticated connection (proto/lp_server.c, lp_hs.c, lp_frame.c) fed
 * arbitrary bytes by a peer over a real TCP connection on 127.0.0.1.
 *
 * One lp_server on a libuv loop lives for the whole run.  Each input is one
 * connection: the harness connects, waits for the ServerHello, optionally
 * authenticates properly (computing the ClientHello's MAC with the cluster
 * key, so that the fuzzer reaches the authenticated state too), sends the
 * rest of the input in pieces of fuzzer-chosen sizes, half-closes, and runs
 * the loop until the server has ended the connection.
 *
 * With byte 0 bit 1 set the roles turn: the harness plays a hostile server
 * (a thread on its own listening socket) and the input is what it sends to
 * lp_client_connect() (proto/lp_client.c), optionally after a correct
 * ServerHello / ServerAuth exchange; the client then makes one call and
 * receives until the connection breaks.
 *
 * Input: byte 0: bit 0 = authenticate first, bit 1 = fuzz the client;
 * byte 1 seeds the piece sizes; the rest is the byte stream.
 *
 * Checked: nothing crashes, leaks or trips a sanitizer; a connection that
 * authenticated gets on_close exactly once, one that did not never gets
 * on_connect; every connection ends once the peer has sent everything and
 * hung up (a server that waited for more would hang here, which libFuzzer
 * reports as a timeout).  The client fails only with its documented errors
 * (connect also the errno of a Status the server refused with) and never
 * waits for its timeout when the peer has hung up.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "lp_conn.h"
#include "lp_hs_int.h"

static uv_loop_t loop;
static struct lp_server *srv;
static uint16_t port;
static const uint8_t key[LP_KEY_SIZE] = "locus-fuzz-cluster-key-32-bytes";
static unsigned long ends, connects, closes, frames;
static int lfd = -1;            /* the hostile server's listening socket */
static uint16_t cport;
static char caddr[INET_ADDRSTRLEN];
static uint32_t nconn;          /* connections made, for next_addr() */

/*
 * A fresh loopback address (127.<net>.x.y) for each connection.  The side
 * that closes first keeps its end in TIME_WAIT for a minute; at hundreds
 * of connections a second, between the same two addresses, that used up
 * every ephemeral port (connect: EADDRNOTAVAIL).  All of 127.0.0.0/8 is
 * loopback.
 */
static struct in_addr next_addr(uint8_t net)
{
        uint32_t n = nconn++ % (250u * 250u);

        return (struct in_addr){ htonl(127u << 24 | (uint32_t)net << 16 | (n / 250 + 1) << 8 | (n % 250 + 1)) };
}

static void on_connect(struct lp_conn *conn, uint64_t site)
{
        (void)conn;
        FZ_CHECK(site == 7);
        connects++;
}

static void on_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                     const void *payload, size_t len)
{
        FZ_CHECK(type != LP_MSG_INVALID && type != LP_MSG_SERVER_HELLO &&
                 type != LP_MSG_CLIENT_HELLO && type != LP_MSG_SERVER_AUTH);
        FZ_CHECK(len <= 4096);
        FZ_CHECK((payload != NULL) == (len != 0));
        frames++;
        /* Answer requests the way a daemon would: echo, or a Status. */
        if (!(flags & LP_F_REPLY) && reqid) {
                if (type == LP_MSG_STATUS)
                        lp_server_reply_status(conn, reqid, LP_STATUS_PROTOCOL, "no");
                else
                        lp_server_reply(conn, reqid, type, payload, len);
        }
}

static void on_close(struct lp_conn *conn)
{
        (void)conn;
        closes++;
}

static void on_log(struct lp_server *s, int prio, const char *peer, const char *msg)
{
        (void)s;
        (void)prio;
        (void)peer;
        if (!strncmp(msg, "connection closed:", 18))
                ends++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        static const struct lp_server_callbacks cb = {
                .on_connect = on_connect, .on_frame = on_frame, .on_close = on_close, .log = on_log,
        };

        (void)argc;
        (void)argv;
        FZ_CHECK(uv_loop_init(&loop) == 0);
        FZ_CHECK(lp_server_new(&loop, key, 1, &cb, NULL, &srv) == 0);
        FZ_CHECK(lp_server_set_max_frame(srv, 4096) == 0);
        FZ_CHECK(lp_server_listen(srv, "127.0.0.1", 0, &port) == 0);
        return 0;
}

/* The hostile server listens on a fresh address for each connection. */
static void hostile_listen(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = next_addr(2) };
        socklen_t alen = sizeof(a);

        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FZ_CHECK(lfd >= 0);
        FZ_CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
        FZ_CHECK(listen(lfd, 4) == 0);
        FZ_CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
        cport = ntohs(a.sin_port);
        FZ_CHECK(inet_ntop(AF_INET, &a.sin_addr, caddr, sizeof(caddr)));
}

/* Read and drop what the server sent; return the ServerHello when
 * `want` and it is complete (1), 0 if not yet. */
static int drain(int fd, struct lp_decoder *dec, struct lp__hello *ret_hello)
{
        uint8_t buf[4096];
        struct lp_frame f;
        size_t used;
        ssize_t n;
        int got = 0;

        while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
                size_t off = 0;

                while (dec && off < (size_t)n) {
                        int r = lp_decoder_feed(dec, buf + off, (size_t)n - off, &used, &f);

                        FZ_CHECK(r >= 0);       /* the server frames correctly */
                        off += used;
                        if (r == 0)
                                break;
                        if (ret_hello && !got && f.type == LP_MSG_SERVER_HELLO) {
                                FZ_CHECK(lp__server_hello_unpack(f.payload, f.len, ret_hello) == 0);
                                got = 1;
                        }
                        lp_frame_clear(&f);
                }
        }
        return got;
}

/* Send all of buf, letting the server read meanwhile. */
static void send_all(int fd, const uint8_t *p, size_t len, struct lp_decoder *dec)
{
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EPIPE || errno == ECONNRESET)
                                return;         /* the server closed on us */
                        FZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
                        uv_run(&loop, UV_RUN_NOWAIT);
                        drain(fd, dec, NULL);
                        continue;
                }
                p += n;
                len -= (size_t)n;
        }
}

/* ---- the client side ---- */

struct peer {
        const uint8_t *data;
        size_t size;
        bool auth;
        uint32_t rnd;
};

static void send_frame_fd(int fd, uint16_t type, const void *p, size_t n)
{
        uint8_t *frame;
        size_t flen;

        FZ_CHECK(lp_frame_encode(type, 0, 0, p, n, LP_HS_MAX_FRAME, &frame, &flen) == 0);
        (void)!send(fd, frame, flen, MSG_NOSIGNAL);
        free(frame);
}

/* Read one frame (blocking); 0 at EOF or on a bad stream. */
static int recv_frame_fd(int fd, struct lp_decoder *dec, struct lp_frame *f)
{
        uint8_t b;
        size_t used;

        /* A byte at a time: nothing after the frame is consumed. */
        while (recv(fd, &b, 1, 0) == 1) {
                int r = lp_decoder_feed(dec, &b, 1, &used, f);

                if (r != 0)
                        return r > 0;
        }
        return 0;
}

static void *hostile_server(void *arg)
{
        struct peer *p = arg;
        const uint8_t *data = p->data;
        size_t size = p->size;
        uint32_t rnd = p->rnd;
        struct linger lg = { 1, 0 };
        uint8_t sink_buf[4096];
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        FZ_CHECK(fd >= 0);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
        if (p->auth) {
                struct lp__hello sh = { .version = LP_PROTO_VERSION, .site_id = 1 }, ch;
                struct lp_decoder *dec;
                struct lp_frame f = { 0 };
                uint8_t mac[LP_MAC_SIZE];
                void *buf;
                size_t len;

                memset(sh.nonce, 0x33, sizeof(sh.nonce));
                FZ_CHECK(lp__server_hello_pack(&sh, &buf, &len) == 0);
                send_frame_fd(fd, LP_MSG_SERVER_HELLO, buf, len);
                free(buf);
                FZ_CHECK(lp_decoder_new(LP_HS_MAX_FRAME, &dec) == 0);
                FZ_CHECK(recv_frame_fd(fd, dec, &f) == 1 && f.type == LP_MSG_CLIENT_HELLO);
                FZ_CHECK(lp__client_hello_unpack(f.payload, f.len, &ch) == 0);
                lp__mac_client(key, ch.version, sh.nonce, ch.nonce, 1, ch.site_id, mac);
                FZ_CHECK(lp__mac_verify(mac, ch.mac) == 0);
                lp__mac_server(key, ch.version, ch.nonce, sh.nonce, 1, ch.site_id, mac);
                FZ_CHECK(lp__server_auth_pack(mac, &buf, &len) == 0);
                send_frame_fd(fd, LP_MSG_SERVER_AUTH, buf, len);
                free(buf);
                lp_frame_clear(&f);
                lp_decoder_free(dec);
        }
        while (size > 0) {
                size_t n;

                n = fz_piece(&rnd, size, 4, 64);
                if (send(fd, data, n, MSG_NOSIGNAL) < 0)
                        break;          /* the client gave up on us */
                data += n;
                size -= n;
        }
        shutdown(fd, SHUT_WR);
        while (recv(fd, sink_buf, sizeof(sink_buf), 0) > 0)
                ;
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        return NULL;
}

/* The client's waits: far beyond libFuzzer's -timeout (scripts/fuzz.sh), so
 * that a client that waits instead of seeing the hang-up is a reported hang. */
#define WAIT_MS 600000

static bool client_error(int r)
{
        return r == -ECONNRESET || r == -EPIPE || r == -EBADMSG || r == -EPROTONOSUPPORT ||
               r == -EMSGSIZE || r == -EKEYREJECTED || r == -EPROTO || r == -ENOBUFS ||
               r == -EACCES || r == -EIO || r == -EPERM;
}

static void fuzz_client(const uint8_t *data, size_t size, bool auth, uint32_t rnd)
{
        struct peer p = { data, size, auth, rnd };
        struct lp_client *c = NULL;
        pthread_t th;
        int r;

        hostile_listen();
        FZ_CHECK(pthread_create(&th, NULL, hostile_server, &p) == 0);
        r = lp_client_connect(caddr, cport, key, 7, WAIT_MS, &c);
        if (r < 0) {
                /* Besides its own errors, connect passes on the errno of a
                 * Status the server refused with, whatever it is.  (Its
                 * timeout is far beyond libFuzzer's -timeout, so waiting
                 * for it, when the server has hung up, is reported as a
                 * hang.) */
                FZ_CHECK(r < 0);
        } else {
                uint16_t type, flags;
                uint64_t reqid;
                void *payload;
                size_t len;

                FZ_CHECK(lp_client_peer_site(c) == 1);
                r = lp_client_call(c, LP_MSG_USER_MIN, "ping", 4, WAIT_MS, &type, &payload, &len);
                if (r == 0)
                        free(payload);
                else
                        FZ_CHECK(client_error(r));
                while ((r = lp_client_recv(c, WAIT_MS, &type, &flags, &reqid, &payload, &len)) == 0) {
                        FZ_CHECK((payload != NULL) == (len != 0));
                        FZ_CHECK(len <= LP_MAX_FRAME);
                        free(payload);
                }
                FZ_CHECK(client_error(r));
                lp_client_close(c);
        }
        FZ_CHECK(pthread_join(th, NULL) == 0);
        close(lfd);
        lfd = -1;
}

/* ---- the server side ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct linger lg = { 1, 0 };
        unsigned long ends0 = ends, connects0 = connects, closes0 = closes;
        struct lp_decoder *dec;
        struct lp__hello sh;
        bool auth;
        uint32_t rnd;
        int fd;

        if (size < 2)
                return 0;
        auth = data[0] & 1;
        rnd = fz_seed(data[1]);
        if (data[0] & 2) {
                fuzz_client(data + 2, size - 2, auth, rnd);
                return 0;
        }
        data += 2;
        size -= 2;

        FZ_CHECK(lp_decoder_new(LP_FRAME_HARD_MAX, &dec) == 0);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FZ_CHECK(fd >= 0);
        {
                struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = next_addr(1) };

                FZ_CHECK(bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0);
        }
        FZ_CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));

        /* The server speaks first. */
        while (!drain(fd, dec, &sh))
                uv_run(&loop, UV_RUN_ONCE);
        FZ_CHECK(sh.version == LP_PROTO_VERSION && sh.site_id == 1);

        if (auth) {
                struct lp__hello ch = { .version = LP_PROTO_VERSION, .site_id = 7 };
                uint8_t *frame;
                void *buf;
                size_t len, flen;

                memset(ch.nonce, 0x5a, sizeof(ch.nonce));
                lp__mac_client(key, ch.version, sh.nonce, ch.nonce, 1, 7, ch.mac);
                FZ_CHECK(lp__client_hello_pack(&ch, &buf, &len) == 0);
                FZ_CHECK(lp_frame_encode(LP_MSG_CLIENT_HELLO, 0, 0, buf, len, LP_HS_MAX_FRAME,
                                         &frame, &flen) == 0);
                send_all(fd, frame, flen, dec);
                free(buf);
                free(frame);
                while (connects == connects0)
                        uv_run(&loop, UV_RUN_ONCE);
        }

        while (size > 0) {
                size_t n;

                n = fz_piece(&rnd, size, 4, 64);
                send_all(fd, data, n, dec);
                uv_run(&loop, UV_RUN_NOWAIT);
                drain(fd, dec, NULL);
                data += n;
                size -= n;
        }

        /* Hang up; the server must end the connection. */
        shutdown(fd, SHUT_WR);
        while (ends == ends0 || closes - closes0 != connects - connects0) {
                uv_run(&loop, UV_RUN_ONCE);
                drain(fd, NULL, NULL);
        }
        FZ_CHECK(ends == ends0 + 1);
        FZ_CHECK(connects - connects0 == (auth ? 1u : 0u));
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        lp_decoder_free(dec);
        return 0;
}
