/*
 * lp_client.c -- the blocking client side of lp_conn.h.
 *
 * The socket is non-blocking; every wait is a poll() with the time left
 * until a deadline (CLOCK_MONOTONIC, microseconds).
 *
 * Invariants:
 *   (1) err != 0 means the byte stream can no longer be trusted (peer gone,
 *       bad frame, partial frame sent); every call but lp_client_recv() of
 *       kept frames returns err.
 *   (2) rbuf[rpos..rlen) holds bytes received but not yet fed to the
 *       decoder; the decoder may hold a partial frame across calls, so a
 *       receive timeout loses nothing.
 *   (3) kept frames are non-reply frames that arrived during
 *       lp_client_call(), in arrival order, bounded by LP_CLIENT_MAX_KEPT
 *       frames and 2 * max_frame bytes.
 */
#include "lp_conn.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lp_hs_int.h"

#define NO_DEADLINE UINT64_MAX

/*
 * The process-wide source address of outgoing connections (lp_conn.h,
 * lp_client_set_source): set once at start, before any thread connects,
 * then only read.  family AF_UNSPEC: none (the kernel chooses).
 */
static struct sockaddr_storage src_addr;
static socklen_t src_len;
static char src_text[64];

struct kept {
        struct kept *next;
        struct lp_frame f;
};

struct lp_client {
        int fd;
        int err;                        /* invariant (1) */
        uint64_t peer_site;
        uint64_t last_reqid;
        size_t max_frame;
        int send_timeout_ms;
        struct lp_decoder *dec;
        struct kept *kept_head, **kept_tail;
        unsigned nkept;
        size_t kept_bytes;
        size_t rpos, rlen;              /* invariant (2) */
        uint8_t rbuf[64 * 1024];
};

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t deadline_after(int timeout_ms)
{
        if (timeout_ms < 0)
                return NO_DEADLINE;
        return now_us() + (uint64_t)timeout_ms * 1000u;
}

/* Wait until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        struct pollfd p = { .fd = fd, .events = events };
        int ms, r;

        for (;;) {
                if (deadline == NO_DEADLINE) {
                        ms = -1;
                } else {
                        uint64_t now = now_us();
                        uint64_t left;

                        if (now >= deadline)
                                ms = 0;
                        else {
                                left = (deadline - now + 999) / 1000;
                                ms = left > INT_MAX ? INT_MAX : (int)left;
                        }
                }
                r = poll(&p, 1, ms);
                if (r > 0)
                        return 0;
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r == 0 && ms == 0)
                        return -ETIMEDOUT;
                /* EINTR, or woke early: recompute the time left. */
                if (r == 0 && deadline != NO_DEADLINE && now_us() >= deadline)
                        return -ETIMEDOUT;
        }
}

static int broken(struct lp_client *c, int r)
{
        if (!c->err)
                c->err = r;
        return c->err;
}

/* ---- sending ---- */

static int send_frame(struct lp_client *c, uint16_t type, uint16_t flags, uint64_t reqid,
                      const void *payload, size_t len, uint64_t deadline)
{
        uint8_t hdr[LP_FRAME_HDR];
        size_t sent = 0, total;
        int r;

        if (c->err)
                return c->err;
        if (len && !payload)
                return -EINVAL;
        if (len > c->max_frame)
                return -EMSGSIZE;
        r = lp_frame_header_pack(hdr, type, flags, reqid, len);
        if (r < 0)
                return r;
        total = LP_FRAME_HDR + len;
        while (sent < total) {
                struct iovec iov[2];
                struct msghdr msg;
                int n = 0;
                ssize_t w;

                memset(&msg, 0, sizeof(msg));
                if (sent < LP_FRAME_HDR) {
                        iov[n].iov_base = hdr + sent;
                        iov[n].iov_len = LP_FRAME_HDR - sent;
                        n++;
                        if (len) {
                                iov[n].iov_base = (void *)payload;
                                iov[n].iov_len = len;
                                n++;
                        }
                } else {
                        iov[n].iov_base = (uint8_t *)payload + (sent - LP_FRAME_HDR);
                        iov[n].iov_len = total - sent;
                        n++;
                }
                msg.msg_iov = iov;
                msg.msg_iovlen = (size_t)n;
                w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
                if (w >= 0) {
                        sent += (size_t)w;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return broken(c, -errno);
                r = wait_fd(c->fd, POLLOUT, deadline);
                if (r < 0) {
                        /* Half a frame on the wire cannot be taken back. */
                        if (sent)
                                return broken(c, r);
                        return r;
                }
        }
        return 0;
}

/* ---- receiving ---- */

static int read_frame(struct lp_client *c, uint64_t deadline, struct lp_frame *ret)
{
        size_t used;
        ssize_t n;
        int r;

        if (c->err)
                return c->err;
        for (;;) {
                if (c->rpos < c->rlen) {
                        r = lp_decoder_feed(c->dec, c->rbuf + c->rpos, c->rlen - c->rpos,
                                            &used, ret);
                        if (r < 0)
                                return broken(c, r);
                        c->rpos += used;
                        if (r == 1)
                                return 0;
                }
                c->rpos = c->rlen = 0;
                n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
                if (n > 0) {
                        c->rlen = (size_t)n;
                        continue;
                }
                if (n == 0)
                        return broken(c, -ECONNRESET);
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return broken(c, -errno);
                r = wait_fd(c->fd, POLLIN, deadline);
                if (r < 0)
                        return r;       /* a timeout does not break anything */
        }
}

static int keep(struct lp_client *c, struct lp_frame *f)
{
        struct kept *k;

        if (c->nkept >= LP_CLIENT_MAX_KEPT || c->kept_bytes + f->len > 2 * c->max_frame)
                return -ENOBUFS;
        k = malloc(sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->next = NULL;
        k->f = *f;
        *c->kept_tail = k;
        c->kept_tail = &k->next;
        c->nkept++;
        c->kept_bytes += f->len;
        memset(f, 0, sizeof(*f));
        return 0;
}

static bool unkeep(struct lp_client *c, struct lp_frame *ret)
{
        struct kept *k = c->kept_head;

        if (!k)
                return false;
        c->kept_head = k->next;
        if (!c->kept_head)
                c->kept_tail = &c->kept_head;
        c->nkept--;
        c->kept_bytes -= k->f.len;
        *ret = k->f;
        free(k);
        return true;
}

/* ---- connecting ---- */

int lp_client_set_source(const char *host)
{
        struct sockaddr_in *a4 = (struct sockaddr_in *)&src_addr;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&src_addr;

        if (!host || !*host) {
                memset(&src_addr, 0, sizeof(src_addr));
                src_len = 0;
                src_text[0] = 0;
                return 0;
        }
        if (strlen(host) >= sizeof(src_text))
                return -EINVAL;
        memset(&src_addr, 0, sizeof(src_addr));
        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
                a4->sin_family = AF_INET;
                src_len = sizeof(*a4);
        } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
                a6->sin6_family = AF_INET6;
                src_len = sizeof(*a6);
        } else {
                src_len = 0;
                src_text[0] = 0;
                return -EINVAL;
        }
        snprintf(src_text, sizeof(src_text), "%s", host);
        return 0;
}

const char *lp_client_source(void)
{
        return src_len ? src_text : NULL;
}

int lp_client_bind_source(int fd, int family)
{
        if (!src_len)
                return 0;
        if (family != src_addr.ss_family)
                return -EAFNOSUPPORT;
        if (bind(fd, (const struct sockaddr *)&src_addr, src_len) < 0)
                return -errno;
        return 0;
}

static int tcp_connect(const char *host, uint16_t port, uint64_t deadline, int *ret_fd)
{
        struct addrinfo hints, *res = NULL, *ai;
        char portstr[8];
        int r, fd = -1, one = 1;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
        r = getaddrinfo(host, portstr, &hints, &res);
        switch (r) {
        case 0:
                break;
        case EAI_SYSTEM:
                return -errno;
        case EAI_MEMORY:
                return -ENOMEM;
        case EAI_AGAIN:
                return -EAGAIN;
        default:
                return -EINVAL;
        }

        r = -EHOSTUNREACH;
        for (ai = res; ai; ai = ai->ai_next) {
                socklen_t sl = sizeof(int);
                int soerr = 0;

                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            ai->ai_protocol);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                /* The site's own address, never the kernel's choice
                 * (lp_client_set_source): a packet filter between two
                 * addresses must cut exactly those two sites apart. */
                r = lp_client_bind_source(fd, ai->ai_family);
                if (r < 0)
                        goto next;
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                        break;
                if (errno != EINPROGRESS) {
                        r = -errno;
                        goto next;
                }
                r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        goto next;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
                        r = -errno;
                        goto next;
                }
                if (soerr == 0)
                        break;
                r = -soerr;
next:
                close(fd);
                fd = -1;
                if (r == -ETIMEDOUT)
                        break;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return r;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        *ret_fd = fd;
        return 0;
}

/* The error a Status frame stands for during the handshake. */
static int handshake_status(const struct lp_frame *f)
{
        int code;

        if (lp_status_unpack(f->payload, f->len, &code, NULL) < 0)
                return -EPROTO;
        if (code == LP_STATUS_OK)
                return -EPROTO;
        return lp_status_to_errno(code);
}

static void send_status(struct lp_client *c, enum lp_status code, const char *msg,
                        uint64_t deadline)
{
        void *buf;
        size_t len;

        if (lp_status_pack(code, msg, &buf, &len) < 0)
                return;
        send_frame(c, LP_MSG_STATUS, 0, 0, buf, len, deadline);
        free(buf);
}

static int handshake(struct lp_client *c, const uint8_t key[LP_KEY_SIZE], uint64_t site_id,
                     uint64_t client_id, uint64_t deadline)
{
        uint8_t expect[LP_MAC_SIZE], mac_s[LP_MAC_SIZE];
        struct lp__hello sh, ch;
        struct lp_frame f = { 0 };
        char why[96];
        void *buf;
        size_t len;
        int r;

        r = read_frame(c, deadline, &f);
        if (r < 0)
                return r;
        if (f.type == LP_MSG_STATUS) {
                r = handshake_status(&f);
                goto out;
        }
        r = -EPROTO;
        if (f.type != LP_MSG_SERVER_HELLO)
                goto out;
        r = lp__server_hello_unpack(f.payload, f.len, &sh);
        if (r < 0)
                goto out;
        if (sh.version != LP_PROTO_VERSION) {
                snprintf(why, sizeof(why),
                         "protocol version mismatch: server speaks %u, client %u",
                         (unsigned)sh.version, LP_PROTO_VERSION);
                send_status(c, LP_STATUS_PROTOCOL, why, deadline);
                r = -EPROTONOSUPPORT;
                goto out;
        }
        lp_frame_clear(&f);

        memset(&ch, 0, sizeof(ch));
        ch.version = LP_PROTO_VERSION;
        ch.site_id = site_id;
        ch.client_id = client_id;
        lp__random(ch.nonce, sizeof(ch.nonce));
        lp__mac_client(key, ch.version, sh.nonce, ch.nonce, sh.site_id, site_id, ch.mac);
        r = lp__client_hello_pack(&ch, &buf, &len);
        if (r < 0)
                return r;
        r = send_frame(c, LP_MSG_CLIENT_HELLO, 0, 0, buf, len, deadline);
        free(buf);
        if (r < 0)
                return r;

        r = read_frame(c, deadline, &f);
        if (r < 0)
                return r;
        if (f.type == LP_MSG_STATUS) {
                r = handshake_status(&f);
                goto out;
        }
        r = -EPROTO;
        if (f.type != LP_MSG_SERVER_AUTH)
                goto out;
        r = lp__server_auth_unpack(f.payload, f.len, mac_s);
        if (r < 0)
                goto out;
        lp__mac_server(key, ch.version, ch.nonce, sh.nonce, sh.site_id, site_id, expect);
        r = -EKEYREJECTED;
        if (lp__mac_verify(expect, mac_s) < 0)
                goto out;
        c->peer_site = sh.site_id;
        r = 0;
out:
        lp_frame_clear(&f);
        return r;
}

/* ---- public ---- */

int lp_client_connect(const char *host, uint16_t port, const uint8_t key[LP_KEY_SIZE],
                      uint64_t site_id, int timeout_ms, struct lp_client **ret_client)
{
        return lp_client_connect_as(host, port, key, site_id, 0, timeout_ms, ret_client);
}

int lp_client_connect_as(const char *host, uint16_t port, const uint8_t key[LP_KEY_SIZE],
                         uint64_t site_id, uint64_t client_id, int timeout_ms,
                         struct lp_client **ret_client)
{
        uint64_t deadline;
        struct lp_client *c;
        int r;

        if (!host || !key || !ret_client || timeout_ms <= 0)
                return -EINVAL;
        r = lp__hs_init();
        if (r < 0)
                return r;
        deadline = deadline_after(timeout_ms);
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = -1;
        c->max_frame = LP_MAX_FRAME;
        c->send_timeout_ms = LP_CLIENT_SEND_TIMEOUT_MS;
        c->kept_tail = &c->kept_head;
        r = lp_decoder_new(LP_HS_MAX_FRAME, &c->dec);
        if (r < 0)
                goto fail;
        r = tcp_connect(host, port, deadline, &c->fd);
        if (r < 0)
                goto fail;
        r = handshake(c, key, site_id, client_id, deadline);
        if (r < 0)
                goto fail;
        lp_decoder_set_max(c->dec, c->max_frame);
        *ret_client = c;
        return 0;

fail:
        lp_client_close(c);
        return r;
}

int lp_client_id_new(uint64_t *ret_id)
{
        uint64_t id;
        int r = lp__hs_init();

        if (r < 0)
                return r;
        lp__random(&id, sizeof(id));
        *ret_id = id | LP_CLIENT_ID_BIT;
        return 0;
}

void lp_client_close(struct lp_client *c)
{
        struct lp_frame f;

        if (!c)
                return;
        if (c->fd >= 0)
                close(c->fd);
        while (unkeep(c, &f))
                lp_frame_clear(&f);
        lp_decoder_free(c->dec);
        free(c);
}

uint64_t lp_client_peer_site(const struct lp_client *c)
{
        return c->peer_site;
}

uint64_t lp_client_next_reqid(struct lp_client *c)
{
        if (++c->last_reqid == 0)
                ++c->last_reqid;
        return c->last_reqid;
}

int lp_client_set_max_frame(struct lp_client *c, size_t max_frame)
{
        int r;

        if (max_frame < 1 || max_frame > LP_FRAME_HARD_MAX)
                return -EINVAL;
        r = lp_decoder_set_max(c->dec, max_frame);
        if (r < 0)
                return r;
        c->max_frame = max_frame;
        return 0;
}

int lp_client_set_send_timeout(struct lp_client *c, int timeout_ms)
{
        if (timeout_ms <= 0)
                return -EINVAL;
        c->send_timeout_ms = timeout_ms;
        return 0;
}

static int check_user_type(uint16_t type)
{
        if (type == LP_MSG_INVALID || type == LP_MSG_SERVER_HELLO ||
            type == LP_MSG_CLIENT_HELLO || type == LP_MSG_SERVER_AUTH)
                return -EINVAL;
        return 0;
}

int lp_client_send(struct lp_client *c, uint16_t type, uint16_t flags, uint64_t reqid,
                   const void *payload, size_t len)
{
        int r = check_user_type(type);

        if (r < 0)
                return r;
        return send_frame(c, type, flags, reqid, payload, len,
                          deadline_after(c->send_timeout_ms));
}

int lp_client_recv(struct lp_client *c, int timeout_ms, uint16_t *ret_type,
                   uint16_t *ret_flags, uint64_t *ret_reqid, void **ret_payload,
                   size_t *ret_len)
{
        struct lp_frame f;
        int r;

        if (!unkeep(c, &f)) {
                r = read_frame(c, deadline_after(timeout_ms), &f);
                if (r < 0)
                        return r;
        }
        if (ret_type)
                *ret_type = f.type;
        if (ret_flags)
                *ret_flags = f.flags;
        if (ret_reqid)
                *ret_reqid = f.reqid;
        if (ret_len)
                *ret_len = f.len;
        if (ret_payload)
                *ret_payload = f.payload;
        else
                free(f.payload);
        return 0;
}

int lp_client_call(struct lp_client *c, uint16_t type, const void *payload, size_t len,
                   int timeout_ms, uint16_t *ret_type, void **ret_payload,
                   size_t *ret_len)
{
        uint64_t deadline = deadline_after(timeout_ms);
        struct lp_frame f;
        uint64_t reqid;
        int r;

        r = check_user_type(type);
        if (r < 0)
                return r;
        if (c->err)
                return c->err;
        reqid = lp_client_next_reqid(c);
        r = send_frame(c, type, 0, reqid, payload, len, deadline);
        if (r < 0)
                return r;
        for (;;) {
                r = read_frame(c, deadline, &f);
                if (r < 0)
                        return r;
                if (f.flags & LP_F_REPLY) {
                        if (f.reqid == reqid)
                                break;
                        lp_frame_clear(&f);     /* answers a call that timed out */
                        continue;
                }
                r = keep(c, &f);
                if (r < 0) {
                        lp_frame_clear(&f);
                        return broken(c, r);
                }
        }
        if (ret_type)
                *ret_type = f.type;
        if (ret_len)
                *ret_len = f.len;
        if (ret_payload)
                *ret_payload = f.payload;
        else
                free(f.payload);
        return 0;
}
