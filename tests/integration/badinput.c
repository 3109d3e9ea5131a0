/*
 * badinput.c -- feed a LocusFS daemon bad input on its port and check that
 * it stays up and keeps serving.
 *
 * usage: badinput --port P --key FILE [--kind storaged|cssd|any]
 *                 [--host 127.0.0.1] [--site N] [--quick]
 *
 * Connects to 127.0.0.1:P only (any other host is refused: these tests
 * never leave the machine).  Each case opens a fresh TCP connection and
 * sends one kind of bad input; afterwards a real client (lp_client_connect
 * with the cluster key in FILE) must still connect and get an answer to a
 * real request (storaged: GETATTR of the root of file group 1; cssd: the
 * mount table; any: whatever the daemon answers to SS_STATUS).
 *
 * Cases, before the handshake (frames without the key):
 *   garbage bytes; a truncated header; a truncated frame then close; a
 *   header announcing 16 MiB; a well-formed filesystem request (the daemon
 *   must not answer it with anything but a Status); a ClientHello that is
 *   not protobuf; a ClientHello with the wrong protocol version; a
 *   ClientHello with a wrong MAC (a fresh key from lp_key_generate); a
 *   silent connection (closed by the daemon's handshake timeout);
 *   many connections left half-open at once.
 * After a real handshake (frames with the key):
 *   garbage bytes; a truncated frame then close; an oversized frame; a
 *   request whose payload is not protobuf; an unknown operation; a frame of
 *   type 0; a handshake message; requests naming things that do not exist
 *   (file group, inode, write session) and absurd lengths.
 *
 * Output is TAP; exit 0 if the daemon answered the real request after
 * every case, 1 otherwise, 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "lp_conn.h"
#include "lp_frame.h"
#include "lp_fs.h"
#include "lp_key.h"
#include "lp_status.h"

#define NONCE 32
#define MAC 32
#define IO_MS 5000

enum kind { K_ANY, K_STORAGED, K_CSSD };

static const char *g_host = "127.0.0.1";
static uint16_t g_port;
static uint8_t g_key[LP_KEY_SIZE];
static uint64_t g_site = 4242;
static enum kind g_kind = K_ANY;
static int g_n, g_fail;

static void tap(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(int ok, const char *fmt, ...)
{
        va_list ap;

        g_n++;
        printf("%s %d - ", ok ? "ok" : "not ok", g_n);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        if (!ok)
                g_fail++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
        va_list ap;

        printf("#   ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
}

static int64_t now_ms(void)
{
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- raw sockets ---- */

static int raw_connect(void)
{
        struct sockaddr_in a;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons(g_port);
        inet_pton(AF_INET, g_host, &a.sin_addr);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                int e = -errno;

                close(fd);
                return e;
        }
        return fd;
}

static int send_all(int fd, const void *buf, size_t n)
{
        const uint8_t *p = buf;

        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Read exactly n bytes before the deadline; 0, -ETIMEDOUT, -ECONNRESET (EOF) or -errno. */
static int recv_exact(int fd, void *buf, size_t n, int64_t deadline)
{
        uint8_t *p = buf;

        while (n > 0) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - now_ms();
                ssize_t r;

                if (left <= 0)
                        return -ETIMEDOUT;
                if (poll(&pf, 1, (int)left) == 0)
                        return -ETIMEDOUT;
                r = recv(fd, p, n, 0);
                if (r < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        return -ECONNRESET;
                p += r;
                n -= (size_t)r;
        }
        return 0;
}

/* Read one frame (any size up to the hard maximum); payload malloc'ed. */
static int recv_frame(int fd, struct lp_frame *f, int64_t deadline)
{
        uint8_t hdr[LP_FRAME_HDR];
        int r = recv_exact(fd, hdr, sizeof(hdr), deadline);

        if (r < 0)
                return r;
        r = lp_frame_header_unpack(hdr, LP_FRAME_HARD_MAX, f);
        if (r < 0)
                return r;
        f->payload = NULL;
        if (f->len) {
                f->payload = malloc(f->len);
                if (!f->payload)
                        return -ENOMEM;
                r = recv_exact(fd, f->payload, f->len, deadline);
                if (r < 0) {
                        free(f->payload);
                        f->payload = NULL;
                        return r;
                }
        }
        return 0;
}

static int send_frame(int fd, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                      size_t len)
{
        uint8_t hdr[LP_FRAME_HDR];
        int r = lp_frame_header_pack(hdr, type, flags, reqid, len);

        if (r < 0)
                return r;
        r = send_all(fd, hdr, sizeof(hdr));
        if (r < 0 || len == 0)
                return r;
        return send_all(fd, payload, len);
}

/*
 * After bad input: read (and discard) whatever the daemon sends until it
 * closes the connection.  Returns 1 if it closed before the deadline, 0 if
 * it did not.  *leaked counts frames other than ServerHello/Status
 * received while unauthenticated (a daemon answering a request it should
 * not have).
 */
static int wait_closed(int fd, int64_t deadline, int authed, int *leaked)
{
        for (;;) {
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                int64_t left = deadline - now_ms();
                uint8_t buf[65536];
                ssize_t r;

                if (left <= 0)
                        return 0;
                if (poll(&pf, 1, (int)left) == 0)
                        return 0;
                r = recv(fd, buf, sizeof(buf), 0);
                if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                        return 1;
                if (r > 0 && !authed && leaked && r >= (ssize_t)LP_FRAME_HDR) {
                        struct lp_frame f;

                        /* best effort: look at frame headers at the start of a read */
                        if (lp_frame_header_unpack(buf, LP_FRAME_HARD_MAX, &f) == 0 &&
                            f.type != LP_MSG_SERVER_HELLO && f.type != LP_MSG_STATUS)
                                (*leaked)++;
                }
        }
}

/* ---- a minimal protobuf writer/reader for the handshake messages ---- */

static size_t pb_varint(uint8_t *p, uint64_t v)
{
        size_t n = 0;

        do {
                uint8_t b = v & 0x7f;

                v >>= 7;
                p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
        } while (v);
        return n;
}

static size_t pb_bytes(uint8_t *p, unsigned field, const uint8_t *b, size_t len)
{
        size_t n = pb_varint(p, (uint64_t)field << 3 | 2);

        n += pb_varint(p + n, len);
        memcpy(p + n, b, len);
        return n + len;
}

struct hello {
        uint32_t version;
        uint64_t site;
        uint8_t nonce[NONCE];
        int have_nonce;
};

static int pb_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
        uint64_t x = 0;

        for (int shift = 0; shift < 64; shift += 7) {
                if (*p >= end)
                        return -1;
                x |= (uint64_t)(**p & 0x7f) << shift;
                if (!(*(*p)++ & 0x80)) {
                        *v = x;
                        return 0;
                }
        }
        return -1;
}

static int parse_server_hello(const uint8_t *p, size_t len, struct hello *h)
{
        const uint8_t *end = p + len;

        memset(h, 0, sizeof(*h));
        while (p < end) {
                uint64_t key, v;

                if (pb_get_varint(&p, end, &key) < 0)
                        return -1;
                switch (key & 7) {
                case 0:
                        if (pb_get_varint(&p, end, &v) < 0)
                                return -1;
                        if (key >> 3 == 1)
                                h->version = (uint32_t)v;
                        else if (key >> 3 == 2)
                                h->site = v;
                        break;
                case 2:
                        if (pb_get_varint(&p, end, &v) < 0 || v > (uint64_t)(end - p))
                                return -1;
                        if (key >> 3 == 3 && v == NONCE) {
                                memcpy(h->nonce, p, NONCE);
                                h->have_nonce = 1;
                        }
                        p += v;
                        break;
                default:
                        return -1;
                }
        }
        return h->have_nonce ? 0 : -1;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
        for (int i = 0; i < n; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* ClientHello{version, site, cn, mac} with mac over (sn, cn) with key. */
static size_t client_hello(uint8_t *out, uint32_t version, const uint8_t key[LP_KEY_SIZE],
                           const struct hello *sh, const uint8_t cn[NONCE])
{
        uint8_t in[12 + 4 + 2 * NONCE + 8 + 8], mac[MAC];
        uint8_t *q = in;
        size_t n = 0;

        memcpy(q, "locus-client", 12);
        q += 12;
        put_le(q, version, 4);
        q += 4;
        memcpy(q, sh->nonce, NONCE);
        q += NONCE;
        memcpy(q, cn, NONCE);
        q += NONCE;
        put_le(q, sh->site, 8);
        q += 8;
        put_le(q, g_site, 8);
        crypto_auth_hmacsha256(mac, in, sizeof(in), key);

        n += pb_varint(out + n, 1 << 3 | 0);
        n += pb_varint(out + n, version);
        n += pb_varint(out + n, 2 << 3 | 0);
        n += pb_varint(out + n, g_site);
        n += pb_bytes(out + n, 3, cn, NONCE);
        n += pb_bytes(out + n, 4, mac, MAC);
        return n;
}

/*
 * Open a raw connection and run the handshake by hand with the given
 * version and key.  Returns the fd once ServerAuth arrived (authenticated),
 * or a negative errno: -EKEYREJECTED / -EPROTO when the daemon answered
 * with a Status, -ECONNRESET when it just closed.
 */
static int raw_handshake(uint32_t version, const uint8_t key[LP_KEY_SIZE])
{
        int64_t deadline = now_ms() + IO_MS;
        struct lp_frame f;
        struct hello sh;
        uint8_t cn[NONCE], msg[256];
        size_t n;
        int fd = raw_connect(), r;

        if (fd < 0)
                return fd;
        r = recv_frame(fd, &f, deadline);
        if (r < 0)
                goto fail;
        if (f.type != LP_MSG_SERVER_HELLO || parse_server_hello(f.payload, f.len, &sh) < 0) {
                free(f.payload);
                r = -EBADMSG;
                goto fail;
        }
        free(f.payload);
        randombytes_buf(cn, sizeof(cn));
        n = client_hello(msg, version, key, &sh, cn);
        r = send_frame(fd, LP_MSG_CLIENT_HELLO, 0, 0, msg, n);
        if (r < 0)
                goto fail;
        r = recv_frame(fd, &f, deadline);
        if (r < 0)
                goto fail;
        free(f.payload);
        if (f.type == LP_MSG_SERVER_AUTH)
                return fd;
        r = f.type == LP_MSG_STATUS ? -EPROTO : -EBADMSG;
fail:
        close(fd);
        return r;
}

/* ---- the real client: is the daemon still serving? ---- */

static int alive(const char *after)
{
        struct lp_client *c = NULL;
        struct lp_fs_req req;
        struct lp_fs_resp resp;
        uint8_t *buf = NULL;
        void *reply = NULL;
        size_t len = 0, rlen = 0;
        uint16_t type = 0;
        int r, ok = 0;
        int64_t t0 = now_ms();

        memset(&req, 0, sizeof(req));
        switch (g_kind) {
        case K_STORAGED:
                req.op = LP_FS_GETATTR;
                req.fg = 1;
                req.ino = LP_FS_ROOT_INO;
                break;
        case K_CSSD:
                req.op = LP_FS_CSS_MOUNTTABLE;
                break;
        case K_ANY:
                req.op = LP_FS_SS_STATUS;
                break;
        }
        r = lp_client_connect(g_host, g_port, g_key, g_site, IO_MS, &c);
        if (r < 0) {
                note("connect with the right key: %s", strerror(-r));
                goto out;
        }
        r = lp_fs_req_encode(&req, &buf, &len);
        if (r < 0) {
                note("encode: %s", strerror(-r));
                goto out;
        }
        r = lp_client_call(c, LP_MSG_FS_REQ, buf, len, IO_MS, &type, &reply, &rlen);
        if (r < 0) {
                note("request %s: %s", lp_fs_op_name(req.op), strerror(-r));
                goto out;
        }
        if (g_kind == K_ANY) {
                ok = 1;
                goto out;
        }
        if (type != LP_MSG_FS_RESP) {
                note("reply of type %u to %s", type, lp_fs_op_name(req.op));
                goto out;
        }
        r = lp_fs_resp_decode(reply, rlen, &resp);
        if (r < 0) {
                note("reply does not decode: %s", strerror(-r));
                goto out;
        }
        if (resp.status != 0)
                note("%s answered %s", lp_fs_op_name(req.op), strerror(-resp.status));
        else if (g_kind == K_STORAGED && !(resp.has_attr && (resp.attr.mode & 0170000) == 0040000))
                note("GETATTR of the root: not a directory (mode %#o)", resp.attr.mode);
        else if (g_kind == K_CSSD && resp.nmounts < 1)
                note("the mount table is empty");
        else
                ok = 1;
        lp_fs_resp_release(&resp);
out:
        free(buf);
        free(reply);
        lp_client_close(c);
        tap(ok, "daemon still serves after: %s (%lld ms)", after, (long long)(now_ms() - t0));
        return ok;
}

/* ---- cases ---- */

/* Connect, send bytes, expect the daemon to close the connection. */
static void case_raw(const char *what, const void *bytes, size_t n, int close_write, int expect_close)
{
        int fd = raw_connect(), leaked = 0, closed;

        if (fd < 0) {
                tap(0, "%s: connect: %s", what, strerror(-fd));
                return;
        }
        if (n)
                send_all(fd, bytes, n);
        if (close_write)
                shutdown(fd, SHUT_WR);
        closed = wait_closed(fd, now_ms() + IO_MS, 0, &leaked);
        if (expect_close)
                tap(closed, "%s: the daemon closes the connection", what);
        tap(leaked == 0, "%s: no answer but ServerHello/Status before the handshake", what);
        close(fd);
        alive(what);
}

static void pre_handshake_cases(void)
{
        uint8_t buf[8192], hdr[LP_FRAME_HDR], *req = NULL;
        size_t len = 0;
        struct lp_fs_req r;

        randombytes_buf(buf, sizeof(buf));
        buf[0] = 0x17;          /* never the LocusFS mark */
        case_raw("garbage bytes", buf, sizeof(buf), 0, 1);
        case_raw("HTTP request", "GET / HTTP/1.0\r\n\r\n", 18, 0, 1);

        lp_frame_header_pack(hdr, LP_MSG_CLIENT_HELLO, 0, 0, 100);
        case_raw("truncated header (7 bytes) then EOF", hdr, 7, 1, 1);
        memcpy(buf, hdr, sizeof(hdr));
        memset(buf + sizeof(hdr), 0x08, 10);
        case_raw("truncated ClientHello frame then EOF", buf, sizeof(hdr) + 10, 1, 1);

        lp_frame_header_pack(hdr, LP_MSG_CLIENT_HELLO, 0, 0, LP_FRAME_HARD_MAX);
        case_raw("header announcing 16 MiB before the handshake", hdr, sizeof(hdr), 0, 1);

        hdr[0] = (uint8_t)(LP_FRAME_MAGIC | 0x0f);
        case_raw("frame format version 15", hdr, sizeof(hdr), 0, 1);

        memset(&r, 0, sizeof(r));
        r.op = LP_FS_GETATTR;
        r.fg = 1;
        r.ino = LP_FS_ROOT_INO;
        lp_fs_req_encode(&r, &req, &len);
        lp_frame_header_pack(hdr, LP_MSG_FS_REQ, 0, 7, len);
        memcpy(buf, hdr, sizeof(hdr));
        memcpy(buf + sizeof(hdr), req, len);
        case_raw("well-formed GETATTR without the handshake", buf, sizeof(hdr) + len, 0, 1);
        free(req);

        memset(buf + sizeof(hdr), 0xff, 40);
        lp_frame_header_pack(buf, LP_MSG_CLIENT_HELLO, 0, 0, 40);
        case_raw("ClientHello that is not protobuf", buf, sizeof(hdr) + 40, 0, 1);

        lp_frame_header_pack(buf, LP_MSG_SERVER_AUTH, 0, 0, 0);
        case_raw("ServerAuth from the client", buf, sizeof(hdr), 0, 1);
}

static void handshake_cases(const char *tmpdir)
{
        uint8_t wrong[LP_KEY_SIZE];
        char path[4200];
        struct lp_client *c = NULL;
        int r, fd;

        /* A fresh key: the cluster's daemon must refuse it. */
        snprintf(path, sizeof(path), "%s/badinput-wrong.%d.key", tmpdir, (int)getpid());
        unlink(path);
        r = lp_key_generate(path);
        if (r == 0)
                r = lp_key_load(path, wrong);
        unlink(path);
        if (r < 0) {
                tap(0, "generate a wrong key in %s: %s", tmpdir, strerror(-r));
                return;
        }
        r = lp_client_connect(g_host, g_port, wrong, g_site, IO_MS, &c);
        if (r < 0)
                note("lp_client_connect with a wrong key: %s", strerror(-r));
        tap(r == -EKEYREJECTED, "handshake with a wrong key is refused (EKEYREJECTED)");
        if (r == 0)
                lp_client_close(c);
        alive("handshake with a wrong key");

        fd = raw_handshake(LP_PROTO_VERSION, wrong);
        tap(fd < 0, "raw handshake with a wrong MAC is refused (%s)",
            fd < 0 ? strerror(-fd) : "accepted!");
        if (fd >= 0)
                close(fd);
        alive("raw handshake with a wrong MAC");

        fd = raw_handshake(LP_PROTO_VERSION + 98, g_key);
        tap(fd < 0, "handshake with protocol version %u is refused (%s)", LP_PROTO_VERSION + 98,
            fd < 0 ? strerror(-fd) : "accepted!");
        if (fd >= 0)
                close(fd);
        alive("handshake with a wrong protocol version");

        fd = raw_handshake(LP_PROTO_VERSION, g_key);
        tap(fd >= 0, "a hand-made handshake with the right key is accepted%s%s",
            fd < 0 ? ": " : "", fd < 0 ? strerror(-fd) : "");
        if (fd >= 0)
                close(fd);
        lp_key_wipe(wrong, sizeof(wrong));
}

/* Authenticated raw connection, then send bytes; the daemon may answer or close. */
static void case_authed(const char *what, const void *bytes, size_t n, int close_write,
                        int expect_close)
{
        int fd = raw_handshake(LP_PROTO_VERSION, g_key), closed;

        if (fd < 0) {
                tap(0, "%s: handshake: %s", what, strerror(-fd));
                return;
        }
        send_all(fd, bytes, n);
        if (close_write)
                shutdown(fd, SHUT_WR);
        closed = wait_closed(fd, now_ms() + IO_MS, 1, NULL);
        if (expect_close)
                tap(closed, "%s (authenticated): the daemon closes the connection", what);
        close(fd);
        alive(what);
}

/* Authenticated request that must be answered (with an error) or the connection closed. */
static void case_request(const char *what, const struct lp_fs_req *req, int raw_op,
                         const void *raw, size_t rawlen)
{
        struct lp_client *c = NULL;
        uint8_t *buf = NULL;
        void *reply = NULL;
        size_t len = 0, rlen = 0;
        uint16_t type = 0;
        int r;

        r = lp_client_connect(g_host, g_port, g_key, g_site, IO_MS, &c);
        if (r < 0) {
                tap(0, "%s: connect: %s", what, strerror(-r));
                return;
        }
        if (raw_op) {
                r = lp_client_call(c, LP_MSG_FS_REQ, raw, rawlen, IO_MS, &type, &reply, &rlen);
        } else {
                r = lp_fs_req_encode(req, &buf, &len);
                if (r == 0)
                        r = lp_client_call(c, LP_MSG_FS_REQ, buf, len, IO_MS, &type, &reply,
                                           &rlen);
        }
        if (r == -ETIMEDOUT)
                note("%s: no answer within %d ms", what, IO_MS);
        else if (r < 0)
                note("%s: %s (connection closed: acceptable)", what, strerror(-r));
        else
                note("%s: answered with a frame of type %u, %zu bytes", what, type, rlen);
        tap(r != -ETIMEDOUT, "%s: answered or closed, not ignored", what);
        if (r == 0 && type == LP_MSG_FS_RESP) {
                struct lp_fs_resp resp;

                if (lp_fs_resp_decode(reply, rlen, &resp) == 0) {
                        for (size_t k = 0; k < resp.nentries && k < 5; k++)
                                note("%s: entry \"%.*s\" ino %#" PRIx64 " next cookie %" PRIu64,
                                     what, (int)resp.entries[k].namelen,
                                     (const char *)resp.entries[k].name, resp.entries[k].ino,
                                     resp.entries[k].next);
                        if (!raw_op && req->op == LP_FS_READDIR)
                                /* a cookie past the end may also be an empty, final batch */
                                tap(resp.status < 0 || (resp.nentries == 0 && resp.eof),
                                    "%s: an error or an empty last batch (%s, %zu entries)",
                                    what, resp.status < 0 ? strerror(-resp.status) : "success",
                                    resp.nentries);
                        else if (!raw_op)
                                tap(resp.status < 0, "%s: answered with an error (%s)", what,
                                    resp.status < 0 ? strerror(-resp.status) : "success!");
                        lp_fs_resp_release(&resp);
                }
        }
        free(buf);
        free(reply);
        lp_client_close(c);
        alive(what);
}

static void authed_cases(void)
{
        uint8_t buf[8192], hdr[LP_FRAME_HDR];
        struct lp_fs_req r;

        randombytes_buf(buf, sizeof(buf));
        buf[0] = 0x17;
        case_authed("garbage bytes", buf, sizeof(buf), 0, 1);

        lp_frame_header_pack(hdr, LP_MSG_FS_REQ, 0, 9, 4000);
        memcpy(buf, hdr, sizeof(hdr));
        case_authed("truncated request frame then EOF", buf, sizeof(hdr) + 100, 1, 1);

        lp_frame_header_pack(hdr, LP_MSG_FS_REQ, 0, 9, LP_FRAME_HARD_MAX);
        case_authed("header announcing 16 MiB (over the frame limit)", hdr, sizeof(hdr), 0, 1);

        lp_frame_header_pack(buf, LP_MSG_CLIENT_HELLO, 0, 0, 10);
        case_authed("a handshake message after the handshake", buf, sizeof(hdr) + 10, 0, 1);

        memset(buf, 0, sizeof(hdr));
        buf[0] = LP_FRAME_MARK;
        case_authed("a frame of type 0", buf, sizeof(hdr), 0, 1);

        /* Requests with the key that make no sense. */
        memset(buf, 0xff, 300);
        case_request("FS request whose payload is not protobuf", NULL, 1, buf, 300);
        case_request("FS request with an empty payload", NULL, 1, NULL, 0);

        memset(&r, 0, sizeof(r));
        r.op = 9999;
        case_request("unknown operation 9999", &r, 0, NULL, 0);

        memset(&r, 0, sizeof(r));
        r.op = g_kind == K_CSSD ? LP_FS_CSS_OPEN : LP_FS_GETATTR;
        r.fg = 987654;
        r.ino = 12345;
        case_request("a file group that does not exist", &r, 0, NULL, 0);

        if (g_kind == K_CSSD)
                return;
        memset(&r, 0, sizeof(r));
        r.op = LP_FS_GETATTR;
        r.fg = 1;
        r.ino = (1ULL << 40) | 999999;
        case_request("an inode that does not exist", &r, 0, NULL, 0);

        memset(&r, 0, sizeof(r));
        r.op = LP_FS_READ;
        r.fg = 1;
        r.ino = (1ULL << 40) | 999999;
        r.length = 1ULL << 40;
        case_request("READ of 1 TiB from a missing inode", &r, 0, NULL, 0);

        memset(&r, 0, sizeof(r));
        r.op = LP_FS_WRITE;
        r.fg = 1;
        r.ino = LP_FS_ROOT_INO;
        r.session = 0xdeadbeefcafeULL;
        r.offset = UINT64_MAX - 10;
        r.data = (const uint8_t *)"boom";
        r.datalen = 4;
        case_request("WRITE to the root directory with a made-up session", &r, 0, NULL, 0);

        memset(&r, 0, sizeof(r));
        r.op = LP_FS_COMMIT;
        r.fg = 1;
        r.ino = LP_FS_ROOT_INO;
        r.session = 0xdeadbeefcafeULL;
        r.flags = LP_FS_COMMIT_END;
        case_request("COMMIT of a made-up session", &r, 0, NULL, 0);

        memset(&r, 0, sizeof(r));
        r.op = LP_FS_READDIR;
        r.fg = 1;
        r.ino = LP_FS_ROOT_INO;
        r.offset = UINT64_MAX;
        r.length = UINT64_MAX;
        r.flags = 1;
        case_request("READDIR from an absurd cookie", &r, 0, NULL, 0);
}

static void many_connections(void)
{
        enum { N = 200 };
        int fds[N], opened = 0;

        for (int i = 0; i < N; i++) {
                fds[i] = raw_connect();
                if (fds[i] >= 0)
                        opened++;
        }
        tap(opened == N, "%d of %d half-open connections accepted", opened, N);
        alive("200 connections left in the handshake");
        for (int i = 0; i < N; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        alive("closing 200 half-open connections");
}

static void usage(void)
{
        fprintf(stderr, "usage: badinput --port P --key FILE [--kind storaged|cssd|any] "
                        "[--host 127.0.0.1] [--site N] [--quick]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        const char *keyfile = NULL, *tmpdir = getenv("TMPDIR");
        int quick = 0, silent, r;
        int64_t silent_t0;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
                        g_port = (uint16_t)atoi(argv[++i]);
                else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
                        keyfile = argv[++i];
                else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
                        g_host = argv[++i];
                else if (strcmp(argv[i], "--site") == 0 && i + 1 < argc)
                        g_site = strtoull(argv[++i], NULL, 0);
                else if (strcmp(argv[i], "--quick") == 0)
                        quick = 1;
                else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
                        i++;
                        if (strcmp(argv[i], "storaged") == 0)
                                g_kind = K_STORAGED;
                        else if (strcmp(argv[i], "cssd") == 0)
                                g_kind = K_CSSD;
                        else if (strcmp(argv[i], "any") == 0)
                                g_kind = K_ANY;
                        else
                                usage();
                } else
                        usage();
        }
        if (!keyfile || g_port == 0)
                usage();
        if (strcmp(g_host, "127.0.0.1") != 0) {
                fprintf(stderr, "badinput: only 127.0.0.1 is allowed, not %s\n", g_host);
                return 2;
        }
        if (!tmpdir || !*tmpdir)
                tmpdir = "/tmp";
        signal(SIGPIPE, SIG_IGN);
        alarm(300);
        if (sodium_init() < 0) {
                fprintf(stderr, "badinput: sodium_init failed\n");
                return 1;
        }
        r = lp_key_load(keyfile, g_key);
        if (r < 0) {
                fprintf(stderr, "badinput: %s: %s\n", keyfile, lp_key_strerror(r));
                return 1;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("# badinput against %s:%u (%s)\n", g_host, (unsigned)g_port,
               g_kind == K_STORAGED ? "storaged" : g_kind == K_CSSD ? "cssd" : "any");

        /* A silent connection, checked at the end (handshake timeout). */
        silent = quick ? -1 : raw_connect();
        silent_t0 = now_ms();

        alive("nothing (baseline)");
        pre_handshake_cases();
        handshake_cases(tmpdir);
        authed_cases();
        many_connections();

        if (silent >= 0) {
                int64_t deadline = silent_t0 + LP_HANDSHAKE_TIMEOUT_MS + 5000;
                int closed = wait_closed(silent, deadline, 0, NULL);

                tap(closed, "a silent connection is closed by the handshake timeout (after %lld ms)",
                    (long long)(now_ms() - silent_t0));
                close(silent);
                alive("a silent connection");
        }
        lp_key_wipe(g_key, sizeof(g_key));
        printf("1..%d\n", g_n);
        printf("# %d checks, %d failed\n", g_n, g_fail);
        return g_fail ? 1 : 0;
}
