/*
 * fuzz_frame.c -- the frame decoder (proto/lp_frame.c) over an arbitrary
 * byte stream, fed in pieces of arbitrary sizes.
 *
 * Input: byte 0 picks the payload limit (the handshake's 1 KiB, a tiny one,
 * 4 KiB, 64 KiB: small enough that a frame's allocation does not slow the
 * fuzzer down; the limit check is the same code for any value), byte 1
 * seeds the sizes of the pieces, the rest is the stream.
 *
 * Checked: the decoder never consumes more than it is given; every frame it
 * returns is within the limit, owns a payload exactly when len > 0, and
 * re-encodes (lp_frame_encode) to exactly the bytes it was cut from; an
 * error is one of the documented ones, is what lp_frame_header_unpack()
 * says about the header it stopped at, and is sticky; at the end the decoder
 * reports a partial frame exactly when bytes of one are pending.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "lp_frame.h"
#include "lp_hs_int.h"

static size_t pick_max(uint8_t b)
{
        switch (b & 3) {
        case 0: return LP_HS_MAX_FRAME;
        case 1: return 1 + (b >> 2);            /* 1..64 */
        case 2: return 4096;
        default: return 65536;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct lp_decoder *d;
        struct lp_frame f;
        size_t max, pos = 0, start = 0, used;
        uint32_t rnd;
        int r, err = 0;

        if (size < 2)
                return 0;
        max = pick_max(data[0]);
        rnd = fz_seed(data[1]);
        data += 2;
        size -= 2;
        FZ_CHECK(lp_decoder_new(max, &d) == 0);
        FZ_CHECK(lp_decoder_get_max(d) == max);

        while (pos < size && !err) {
                size_t n, off = 0;

                n = fz_piece(&rnd, size - pos, 4, 40);
                while (off < n) {
                        memset(&f, 0, sizeof(f));
                        r = lp_decoder_feed(d, data + pos + off, n - off, &used, &f);
                        if (r < 0) {
                                err = r;
                                break;
                        }
                        FZ_CHECK(used <= n - off);
                        off += used;
                        if (r == 0) {
                                FZ_CHECK(off == n);
                                break;
                        }
                        FZ_CHECK(r == 1);
                        /* The frame is data[start .. pos + off). */
                        {
                                size_t flen = pos + off - start;
                                uint8_t *buf;
                                size_t blen;

                                FZ_CHECK(f.len <= max);
                                FZ_CHECK(flen == LP_FRAME_HDR + f.len);
                                FZ_CHECK((f.payload != NULL) == (f.len != 0));
                                FZ_CHECK(f.type != LP_MSG_INVALID);
                                FZ_CHECK(lp_frame_encode(f.type, f.flags, f.reqid, f.payload, f.len,
                                                         max, &buf, &blen) == 0);
                                FZ_CHECK(blen == flen && memcmp(buf, data + start, flen) == 0);
                                free(buf);
                        }
                        lp_frame_clear(&f);
                        start = pos + off;
                }
                pos += n;
        }

        if (size >= LP_FRAME_HDR) {
                struct lp_frame h1, h2;
                int r1 = lp_frame_header_unpack(data, LP_FRAME_HARD_MAX, &h1);
                int r2 = lp_frame_header_unpack(data, max, &h2);

                /* A tighter limit only adds -EMSGSIZE. */
                FZ_CHECK(r1 == r2 || (r1 == 0 && r2 == -EMSGSIZE && h1.len > max));
                FZ_CHECK(lp_frame_header_unpack(data, (size_t)LP_FRAME_HARD_MAX + 1, &h1) == -EINVAL);
        }
        if (err) {
                struct lp_frame h;

                FZ_CHECK(err == -EBADMSG || err == -EPROTONOSUPPORT || err == -EMSGSIZE);
                /* It stopped at the header that starts at `start`. */
                FZ_CHECK(size - start >= LP_FRAME_HDR);
                FZ_CHECK(lp_frame_header_unpack(data + start, max, &h) == err);
                FZ_CHECK(lp_decoder_feed(d, data, size, &used, &f) == err);
        } else {
                FZ_CHECK(!!lp_decoder_partial(d) == (start < size));
        }
        lp_decoder_free(d);
        return 0;
}
