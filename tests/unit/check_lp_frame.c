/*
 * check_lp_frame.c -- libproto codecs without sockets: frame header layout,
 * encoder, incremental decoder, status codes and the Status message, and
 * the handshake messages and MAC construction.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lp_frame.h"
#include "lp_status.h"
#include "lp_hs_int.h"
#include "testutil.h"

/* ---- helpers ---- */

/*
 * Check's ck_assert_* records its location on every call (a write(2) in
 * fork mode); in hot loops use CHECK, which costs nothing unless it fails.
 */

static uint8_t *rand_bytes(uint64_t *rs, size_t len)
{
        uint8_t *p = malloc(len ? len : 1);

        CHECK(p != NULL);
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)tu_rand(rs);
        return p;
}

struct spec {
        uint16_t type, flags;
        uint64_t reqid;
        size_t len;
        uint8_t *payload;
};

/* Build n random frames and their concatenated encoding. */
static uint8_t *make_stream(uint64_t *rs, struct spec *sp, int n, size_t maxlen,
                            size_t *ret_len)
{
        uint8_t *stream = NULL;
        size_t total = 0;

        for (int i = 0; i < n; i++) {
                uint8_t *buf;
                size_t blen;

                sp[i].type = (uint16_t)(1 + tu_rand(rs) % 65535);
                sp[i].flags = (uint16_t)tu_rand(rs);
                sp[i].reqid = tu_rand(rs);
                switch (tu_rand(rs) % 4) {
                case 0:
                        sp[i].len = 0;
                        break;
                case 1:
                        sp[i].len = tu_rand(rs) % 32;
                        break;
                default:
                        sp[i].len = tu_rand(rs) % (maxlen + 1);
                }
                sp[i].payload = rand_bytes(rs, sp[i].len);
                ck_assert_int_eq(lp_frame_encode(sp[i].type, sp[i].flags, sp[i].reqid,
                                                 sp[i].payload, sp[i].len, LP_MAX_FRAME,
                                                 &buf, &blen), 0);
                ck_assert_uint_eq(blen, LP_FRAME_HDR + sp[i].len);
                stream = realloc(stream, total + blen);
                ck_assert_ptr_nonnull(stream);
                memcpy(stream + total, buf, blen);
                total += blen;
                free(buf);
        }
        *ret_len = total;
        return stream;
}

static void check_frame(const struct lp_frame *f, const struct spec *s)
{
        CHECK(f->type == s->type);
        CHECK(f->flags == s->flags);
        CHECK(f->reqid == s->reqid);
        CHECK(f->len == s->len);
        if (s->len == 0)
                CHECK(f->payload == NULL);
        else
                CHECK(memcmp(f->payload, s->payload, s->len) == 0);
}

/* Feed stream in chunks chosen by chunk(); check every frame. */
static void decode_stream(const uint8_t *stream, size_t total, const struct spec *sp, int n,
                          uint64_t *rs, size_t maxchunk)
{
        struct lp_decoder *d;
        size_t off = 0;
        int got = 0;

        CHECK(lp_decoder_new(0, &d) == 0);
        while (off < total) {
                size_t chunk = maxchunk == 1 ? 1 : 1 + tu_rand(rs) % maxchunk;
                const uint8_t *p;
                size_t left;

                if (chunk > total - off)
                        chunk = total - off;
                p = stream + off;
                left = chunk;
                for (;;) {
                        struct lp_frame f;
                        size_t used = 12345;
                        int r = lp_decoder_feed(d, p, left, &used, &f);

                        CHECK(r >= 0);
                        CHECK(used <= left);
                        p += used;
                        left -= used;
                        if (r == 0) {
                                CHECK(left == 0);
                                break;
                        }
                        CHECK(got < n);
                        check_frame(&f, &sp[got]);
                        lp_frame_clear(&f);
                        got++;
                        if (left == 0)
                                break;
                }
                off += chunk;
        }
        CHECK(got == n);
        ck_assert(!lp_decoder_partial(d));
        lp_decoder_free(d);
}

/* ---- frame header ---- */

START_TEST(t_header_layout)
{
        static const uint8_t want[LP_FRAME_HDR] = {
                0xA1, 0x56, 0x34, 0x12,                 /* mark, len 0x123456 */
                0x41, 0x00,                             /* type 0x0041 */
                0x01, 0x80,                             /* flags 0x8001 */
                0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* reqid */
        };
        uint8_t hdr[LP_FRAME_HDR];
        struct lp_frame f;

        ck_assert_int_eq(lp_frame_header_pack(hdr, 0x41, 0x8001, 0x0102030405060708ULL,
                                              0x123456), 0);
        ck_assert_int_eq(memcmp(hdr, want, sizeof(want)), 0);
        ck_assert_int_eq(lp_frame_header_unpack(hdr, LP_FRAME_HARD_MAX, &f), 0);
        ck_assert_uint_eq(f.type, 0x41);
        ck_assert_uint_eq(f.flags, 0x8001);
        ck_assert_uint_eq(f.reqid, 0x0102030405060708ULL);
        ck_assert_uint_eq(f.len, 0x123456);
        ck_assert_ptr_null(f.payload);

        /* Limits of the header itself. */
        ck_assert_int_eq(lp_frame_header_pack(hdr, 1, 0, 0, LP_FRAME_HARD_MAX), 0);
        ck_assert_int_eq(lp_frame_header_pack(hdr, 1, 0, 0, LP_FRAME_HARD_MAX + 1ul),
                         -EMSGSIZE);
        ck_assert_int_eq(lp_frame_header_pack(hdr, 0, 0, 0, 1), -EINVAL);
        ck_assert_int_eq(lp_frame_header_unpack(want, LP_FRAME_HARD_MAX + 1ul, &f), -EINVAL);
        ck_assert_int_eq(lp_frame_header_unpack(want, 0x123455, &f), -EMSGSIZE);
        ck_assert_int_eq(lp_frame_header_unpack(want, 0x123456, &f), 0);
        ck_assert_uint_le(LP_MAX_FRAME, LP_FRAME_HARD_MAX);
}
END_TEST

START_TEST(t_encode_limits)
{
        uint8_t payload[64] = { 0 };
        uint8_t *buf = NULL;
        size_t len = 0;

        ck_assert_int_eq(lp_frame_encode(5, 0, 1, payload, 64, 63, &buf, &len), -EMSGSIZE);
        ck_assert_int_eq(lp_frame_encode(5, 0, 1, payload, 64, LP_FRAME_HARD_MAX + 1ul,
                                         &buf, &len), -EINVAL);
        ck_assert_int_eq(lp_frame_encode(0, 0, 1, payload, 64, 64, &buf, &len), -EINVAL);
        ck_assert_int_eq(lp_frame_encode(5, 0, 1, NULL, 64, 64, &buf, &len), -EINVAL);
        ck_assert_ptr_null(buf);        /* ret_ params untouched on failure */
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(lp_frame_encode(5, 0, 1, NULL, 0, 64, &buf, &len), 0);
        ck_assert_uint_eq(len, LP_FRAME_HDR);
        free(buf);
        ck_assert_int_eq(lp_frame_encode(5, 0, 1, payload, 64, 64, &buf, &len), 0);
        ck_assert_uint_eq(len, LP_FRAME_HDR + 64);
        free(buf);
}
END_TEST

/* ---- decoder ---- */

START_TEST(t_roundtrip_random_chunks)
{
        uint64_t rs = tu_seed("roundtrip");
        struct spec sp[200];
        size_t total;
        uint8_t *stream = make_stream(&rs, sp, 200, 100000, &total);

        decode_stream(stream, total, sp, 200, &rs, total);      /* whole */
        decode_stream(stream, total, sp, 200, &rs, 7);          /* tiny pieces */
        decode_stream(stream, total, sp, 200, &rs, 70000);      /* big pieces */
        free(stream);
        for (int i = 0; i < 200; i++)
                free(sp[i].payload);
}
END_TEST

START_TEST(t_byte_by_byte)
{
        uint64_t rs = tu_seed("bytewise");
        struct spec sp[40];
        size_t total;
        uint8_t *stream = make_stream(&rs, sp, 40, 3000, &total);

        decode_stream(stream, total, sp, 40, &rs, 1);
        free(stream);
        for (int i = 0; i < 40; i++)
                free(sp[i].payload);
}
END_TEST

START_TEST(t_zero_length_frames)
{
        uint8_t stream[3 * LP_FRAME_HDR];
        struct lp_decoder *d;
        struct lp_frame f;
        size_t used, off = 0;

        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(lp_frame_header_pack(stream + i * LP_FRAME_HDR,
                                                      (uint16_t)(10 + i), 0, (uint64_t)i, 0), 0);
        ck_assert_int_eq(lp_decoder_new(16, &d), 0);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(lp_decoder_feed(d, stream + off, sizeof(stream) - off,
                                                 &used, &f), 1);
                ck_assert_uint_eq(used, LP_FRAME_HDR);
                ck_assert_uint_eq(f.type, 10 + i);
                ck_assert_uint_eq(f.len, 0);
                ck_assert_ptr_null(f.payload);
                off += used;
        }
        ck_assert_int_eq(lp_decoder_feed(d, stream, 0, &used, &f), 0);
        ck_assert_uint_eq(used, 0);
        lp_decoder_free(d);
}
END_TEST

START_TEST(t_oversized_rejected_at_header)
{
        uint8_t hdr[LP_FRAME_HDR];
        struct lp_decoder *d;
        struct lp_frame f;
        size_t used;

        /*
         * A header announcing 1 byte over the limit is refused as soon as
         * its 16th byte arrives: no payload byte is needed, so the decoder
         * cannot have allocated the payload.
         */
        ck_assert_int_eq(lp_decoder_new(1024, &d), 0);
        ck_assert_int_eq(lp_frame_header_pack(hdr, 7, 0, 1, 1025), 0);
        ck_assert_int_eq(lp_decoder_feed(d, hdr, LP_FRAME_HDR - 1, &used, &f), 0);
        ck_assert_uint_eq(used, LP_FRAME_HDR - 1);
        ck_assert_int_eq(lp_decoder_feed(d, hdr + LP_FRAME_HDR - 1, 1, &used, &f), -EMSGSIZE);
        /* Sticky. */
        ck_assert_int_eq(lp_decoder_feed(d, hdr, LP_FRAME_HDR, &used, &f), -EMSGSIZE);
        lp_decoder_free(d);

        /* The biggest length a header can carry, against the default limit. */
        ck_assert_int_eq(lp_decoder_new(0, &d), 0);
        ck_assert_uint_eq(lp_decoder_get_max(d), LP_MAX_FRAME);
        ck_assert_int_eq(lp_frame_header_pack(hdr, 7, 0, 1, LP_FRAME_HARD_MAX), 0);
        ck_assert_int_eq(lp_decoder_feed(d, hdr, LP_FRAME_HDR, &used, &f), -EMSGSIZE);
        lp_decoder_free(d);

        /* Exactly at the limit is fine (waits for the payload). */
        ck_assert_int_eq(lp_decoder_new(1024, &d), 0);
        ck_assert_int_eq(lp_frame_header_pack(hdr, 7, 0, 1, 1024), 0);
        ck_assert_int_eq(lp_decoder_feed(d, hdr, LP_FRAME_HDR, &used, &f), 0);
        ck_assert(lp_decoder_partial(d));
        /* A new limit applies from the next header on. */
        ck_assert_int_eq(lp_decoder_set_max(d, 10), 0);
        {
                uint8_t pl[1024] = { 1 };

                ck_assert_int_eq(lp_decoder_feed(d, pl, sizeof(pl), &used, &f), 1);
                ck_assert_uint_eq(f.len, 1024);
                lp_frame_clear(&f);
        }
        ck_assert_int_eq(lp_frame_header_pack(hdr, 7, 0, 1, 11), 0);
        ck_assert_int_eq(lp_decoder_feed(d, hdr, LP_FRAME_HDR, &used, &f), -EMSGSIZE);
        lp_decoder_free(d);
}
END_TEST

START_TEST(t_decoder_limits)
{
        struct lp_decoder *d = NULL;

        ck_assert_int_eq(lp_decoder_new(LP_FRAME_HARD_MAX + 1ul, &d), -EINVAL);
        ck_assert_ptr_null(d);
        ck_assert_int_eq(lp_decoder_new(LP_FRAME_HARD_MAX, &d), 0);
        ck_assert_int_eq(lp_decoder_set_max(d, 0), -EINVAL);
        ck_assert_int_eq(lp_decoder_set_max(d, LP_FRAME_HARD_MAX + 1ul), -EINVAL);
        ck_assert_uint_eq(lp_decoder_get_max(d), LP_FRAME_HARD_MAX);
        lp_decoder_free(d);
        lp_decoder_free(NULL);
        lp_frame_clear(NULL);
}
END_TEST

static int feed_header(const uint8_t hdr[LP_FRAME_HDR])
{
        struct lp_decoder *d;
        struct lp_frame f;
        size_t used;
        int r, r2;

        ck_assert_int_eq(lp_decoder_new(0, &d), 0);
        r = lp_decoder_feed(d, hdr, LP_FRAME_HDR, &used, &f);
        /* Sticky: the same error again, whatever comes next. */
        r2 = lp_decoder_feed(d, "x", 1, &used, &f);
        if (r < 0)
                ck_assert_int_eq(r2, r);
        lp_decoder_free(d);
        return r;
}

START_TEST(t_malformed_headers)
{
        uint8_t good[LP_FRAME_HDR], bad[LP_FRAME_HDR];
        const char *http = "GET / HTTP/1.1\r\n";

        ck_assert_int_eq(lp_frame_header_pack(good, 9, 0, 1, 0), 0);
        ck_assert_int_eq(feed_header(good), 1);

        memcpy(bad, good, sizeof(bad));
        bad[0] = 0x00;                          /* no magic */
        ck_assert_int_eq(feed_header(bad), -EBADMSG);
        bad[0] = 0xB1;                          /* wrong magic, right version */
        ck_assert_int_eq(feed_header(bad), -EBADMSG);
        bad[0] = 0xA2;                          /* right magic, future version */
        ck_assert_int_eq(feed_header(bad), -EPROTONOSUPPORT);
        bad[0] = 0xA0;                          /* right magic, version 0 */
        ck_assert_int_eq(feed_header(bad), -EPROTONOSUPPORT);

        memcpy(bad, good, sizeof(bad));
        bad[4] = bad[5] = 0;                    /* type 0 */
        ck_assert_int_eq(feed_header(bad), -EBADMSG);

        memcpy(bad, http, LP_FRAME_HDR);        /* a foreign protocol */
        ck_assert_int_eq(feed_header(bad), -EBADMSG);
}
END_TEST

/* ---- status codes ---- */

START_TEST(t_status_errno_mapping)
{
        static const struct { int err; enum lp_status st; } one_to_one[] = {
                { 0, LP_STATUS_OK }, { ENOENT, LP_STATUS_NOT_FOUND },
                { EEXIST, LP_STATUS_EXISTS }, { ENOTEMPTY, LP_STATUS_NOT_EMPTY },
                { ENAMETOOLONG, LP_STATUS_NAME_TOO_LONG }, { EISDIR, LP_STATUS_IS_DIR },
                { ENOTDIR, LP_STATUS_NOT_DIR }, { EINVAL, LP_STATUS_INVALID },
                { EACCES, LP_STATUS_ACCESS }, { EPERM, LP_STATUS_PERM },
                { EXDEV, LP_STATUS_CROSS_DEVICE }, { ENOSPC, LP_STATUS_NO_SPACE },
                { EIO, LP_STATUS_IO }, { ESTALE, LP_STATUS_STALE },
                { EAGAIN, LP_STATUS_CONFLICT }, { EHOSTUNREACH, LP_STATUS_UNAVAILABLE },
                { ETIMEDOUT, LP_STATUS_TIMEOUT }, { EFBIG, LP_STATUS_TOO_BIG },
                { EOPNOTSUPP, LP_STATUS_UNSUPPORTED }, { EBADMSG, LP_STATUS_BAD_MESSAGE },
                { EPROTO, LP_STATUS_PROTOCOL }, { EKEYREJECTED, LP_STATUS_AUTH },
                { ENODATA, LP_STATUS_NO_DATA }, { ERANGE, LP_STATUS_RANGE },
                { EMLINK, LP_STATUS_TOO_MANY_LINKS }, { ENXIO, LP_STATUS_NO_SUCH_OFFSET },
                { EBUSY, LP_STATUS_BUSY }, { ENFILE, LP_STATUS_TOO_MANY_OPEN },
                { EBADF, LP_STATUS_BAD_HANDLE }, { ENODEV, LP_STATUS_NO_DEVICE },
                { E2BIG, LP_STATUS_ARG_TOO_BIG }, { EREMCHG, LP_STATUS_NOT_PRIMARY },
        };
        size_t n = sizeof(one_to_one) / sizeof(one_to_one[0]);

        ck_assert_uint_eq(n, LP_STATUS_COUNT_);
        for (size_t i = 0; i < n; i++) {
                ck_assert_int_eq(lp_status_to_errno(one_to_one[i].st), -one_to_one[i].err);
                ck_assert_int_eq(lp_errno_to_status(one_to_one[i].err), one_to_one[i].st);
                ck_assert_int_eq(lp_errno_to_status(-one_to_one[i].err), one_to_one[i].st);
                ck_assert_str_ne(lp_status_name(one_to_one[i].st), "UNKNOWN");
        }
        /* Every status survives status -> errno -> status. */
        for (int s = 0; s < LP_STATUS_COUNT_; s++)
                ck_assert_int_eq(lp_errno_to_status(lp_status_to_errno(s)), s);
        /* One-way extras and unknowns. */
        ck_assert_int_eq(lp_errno_to_status(EDQUOT), LP_STATUS_NO_SPACE);
        ck_assert_int_eq(lp_errno_to_status(-EMSGSIZE), LP_STATUS_TOO_BIG);
        ck_assert_int_eq(lp_errno_to_status(ENOSYS), LP_STATUS_UNSUPPORTED);
        ck_assert_int_eq(lp_errno_to_status(ECONNREFUSED), LP_STATUS_UNAVAILABLE);
        ck_assert_int_eq(lp_errno_to_status(ENOTSUP), LP_STATUS_UNSUPPORTED);
        ck_assert_int_eq(lp_errno_to_status(EWOULDBLOCK), LP_STATUS_CONFLICT);
        ck_assert_int_eq(lp_errno_to_status(EDOM), LP_STATUS_IO);
        ck_assert_int_eq(lp_status_to_errno(999), -EIO);
        ck_assert_int_eq(lp_status_to_errno(-1), -EIO);
        ck_assert_str_eq(lp_status_name(999), "UNKNOWN");
        ck_assert_str_eq(lp_status_name(LP_STATUS_NOT_FOUND), "NOT_FOUND");
}
END_TEST

START_TEST(t_status_message)
{
        char longmsg[LP_STATUS_MSG_MAX + 10];
        char *msg = NULL;
        void *buf;
        size_t len;
        int code = -1;

        ck_assert_int_eq(lp_status_pack(LP_STATUS_NOT_FOUND, "no such file <3,17>", &buf,
                                        &len), 0);
        ck_assert_int_eq(lp_status_unpack(buf, len, &code, &msg), 0);
        ck_assert_int_eq(code, LP_STATUS_NOT_FOUND);
        ck_assert_str_eq(msg, "no such file <3,17>");
        free(msg);
        free(buf);

        ck_assert_int_eq(lp_status_pack(LP_STATUS_AUTH, NULL, &buf, &len), 0);
        ck_assert_int_eq(lp_status_unpack(buf, len, &code, &msg), 0);
        ck_assert_int_eq(code, LP_STATUS_AUTH);
        ck_assert_str_eq(msg, "");
        free(msg);
        free(buf);

        /* Long messages are cut, never in the middle of a UTF-8 character. */
        memset(longmsg, 'a', sizeof(longmsg));
        longmsg[LP_STATUS_MSG_MAX - 1] = (char)0xC3;    /* "é" across the cut */
        longmsg[LP_STATUS_MSG_MAX] = (char)0xA9;
        longmsg[sizeof(longmsg) - 1] = 0;
        ck_assert_int_eq(lp_status_pack(LP_STATUS_IO, longmsg, &buf, &len), 0);
        ck_assert_int_eq(lp_status_unpack(buf, len, &code, &msg), 0);
        ck_assert_uint_eq(strlen(msg), LP_STATUS_MSG_MAX - 1);
        free(msg);
        free(buf);

        ck_assert_int_eq(lp_status_pack((enum lp_status)LP_STATUS_COUNT_, NULL, &buf, &len),
                         -EINVAL);

        /* Empty payload: code absent = OK.  Unknown code from a newer peer. */
        ck_assert_int_eq(lp_status_unpack(NULL, 0, &code, NULL), 0);
        ck_assert_int_eq(code, LP_STATUS_OK);
        {
                const uint8_t newer[] = { 0x08, 0x63 };        /* code = 99 */
                const uint8_t junk[] = { 0xFF, 0xFF, 0xFF };

                ck_assert_int_eq(lp_status_unpack(newer, sizeof(newer), &code, NULL), 0);
                ck_assert_int_eq(code, 99);
                ck_assert_int_eq(lp_status_to_errno(code), -EIO);
                code = 1234;
                ck_assert_int_eq(lp_status_unpack(junk, sizeof(junk), &code, &msg), -EBADMSG);
                ck_assert_int_eq(code, 1234);
        }
}
END_TEST

/* ---- handshake messages (internal codec) ---- */

START_TEST(t_hello_codec)
{
        struct lp__hello h, g;
        uint8_t mac[LP_MAC_SIZE], got[LP_MAC_SIZE];
        void *buf;
        size_t len;

        ck_assert_int_eq(lp__hs_init(), 0);
        memset(&h, 0, sizeof(h));
        h.version = 7;
        h.site_id = 0x1122334455667788ULL;
        lp__random(h.nonce, sizeof(h.nonce));
        lp__random(h.mac, sizeof(h.mac));

        ck_assert_int_eq(lp__client_hello_pack(&h, &buf, &len), 0);
        ck_assert_int_le(len, LP_HS_MAX_FRAME);
        ck_assert_int_eq(lp__client_hello_unpack(buf, len, &g), 0);
        ck_assert_int_eq(memcmp(&g, &h, sizeof(h)), 0);
        free(buf);

        ck_assert_int_eq(lp__server_hello_pack(&h, &buf, &len), 0);
        memset(&g, 0, sizeof(g));
        ck_assert_int_eq(lp__server_hello_unpack(buf, len, &g), 0);
        ck_assert_uint_eq(g.version, 7);
        ck_assert_uint_eq(g.site_id, h.site_id);
        ck_assert_int_eq(memcmp(g.nonce, h.nonce, LP_NONCE_SIZE), 0);
        /* A ServerHello lacks the MAC a ClientHello needs. */
        ck_assert_int_eq(lp__client_hello_unpack(buf, len, &g), -EBADMSG);
        /* Truncated. */
        ck_assert_int_eq(lp__server_hello_unpack(buf, len - 5, &g), -EBADMSG);
        free(buf);

        lp__random(mac, sizeof(mac));
        ck_assert_int_eq(lp__server_auth_pack(mac, &buf, &len), 0);
        ck_assert_int_eq(lp__server_auth_unpack(buf, len, got), 0);
        ck_assert_int_eq(memcmp(got, mac, sizeof(mac)), 0);
        free(buf);
        /* Empty payload: no MAC. */
        ck_assert_int_eq(lp__server_auth_unpack(NULL, 0, got), -EBADMSG);
        {
                /* mac field (2) with 31 bytes */
                uint8_t short_mac[2 + 31] = { 0x0A, 31 };

                ck_assert_int_eq(lp__server_auth_unpack(short_mac, sizeof(short_mac), got),
                                 -EBADMSG);
        }
}
END_TEST

static void put_le(uint8_t *p, uint64_t v, int n)
{
        for (int i = 0; i < n; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

START_TEST(t_mac_construction)
{
        uint8_t key[LP_KEY_SIZE], sn[LP_NONCE_SIZE], cn[LP_NONCE_SIZE];
        uint8_t in[12 + 4 + 32 + 32 + 8 + 8];
        uint8_t want[LP_MAC_SIZE], got[LP_MAC_SIZE], other[LP_MAC_SIZE];

        ck_assert_int_eq(lp__hs_init(), 0);
        lp__random(key, sizeof(key));
        lp__random(sn, sizeof(sn));
        lp__random(cn, sizeof(cn));

        /* The documented input layout, computed independently. */
        memcpy(in, "locus-client", 12);
        put_le(in + 12, 1, 4);
        memcpy(in + 16, sn, 32);
        memcpy(in + 48, cn, 32);
        put_le(in + 80, 42, 8);
        put_le(in + 88, 7, 8);
        crypto_auth_hmacsha256(want, in, sizeof(in), key);
        lp__mac_client(key, 1, sn, cn, 42, 7, got);
        ck_assert_int_eq(memcmp(want, got, sizeof(got)), 0);
        ck_assert_int_eq(lp__mac_verify(want, got), 0);

        memcpy(in, "locus-server", 12);
        memcpy(in + 16, cn, 32);
        memcpy(in + 48, sn, 32);
        crypto_auth_hmacsha256(want, in, sizeof(in), key);
        lp__mac_server(key, 1, cn, sn, 42, 7, got);
        ck_assert_int_eq(memcmp(want, got, sizeof(got)), 0);

        /* Each input matters; the two directions differ. */
        lp__mac_client(key, 1, sn, cn, 42, 7, got);
        lp__mac_server(key, 1, sn, cn, 42, 7, other);
        ck_assert_int_ne(lp__mac_verify(got, other), 0);
        lp__mac_client(key, 2, sn, cn, 42, 7, other);
        ck_assert_int_ne(lp__mac_verify(got, other), 0);
        lp__mac_client(key, 1, cn, sn, 42, 7, other);
        ck_assert_int_ne(lp__mac_verify(got, other), 0);
        lp__mac_client(key, 1, sn, cn, 7, 42, other);
        ck_assert_int_ne(lp__mac_verify(got, other), 0);
        key[0] ^= 1;
        lp__mac_client(key, 1, sn, cn, 42, 7, other);
        ck_assert_int_ne(lp__mac_verify(got, other), 0);
}
END_TEST

static Suite *lp_frame_suite(void)
{
        Suite *s = suite_create("lp_frame");
        TCase *tc = tcase_create("frame");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_header_layout);
        tcase_add_test(tc, t_encode_limits);
        tcase_add_test(tc, t_roundtrip_random_chunks);
        tcase_add_test(tc, t_byte_by_byte);
        tcase_add_test(tc, t_zero_length_frames);
        tcase_add_test(tc, t_oversized_rejected_at_header);
        tcase_add_test(tc, t_decoder_limits);
        tcase_add_test(tc, t_malformed_headers);
        suite_add_tcase(s, tc);

        tc = tcase_create("status");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_status_errno_mapping);
        tcase_add_test(tc, t_status_message);
        suite_add_tcase(s, tc);

        tc = tcase_create("handshake_codec");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, t_hello_codec);
        tcase_add_test(tc, t_mac_construction);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(lp_frame_suite());
}
