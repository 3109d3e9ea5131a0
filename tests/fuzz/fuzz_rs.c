/*
 * fuzz_rs.c -- the replication codec (proto/lp_rs.c): the file states,
 * change lists and pull lists storage sites send each other
 * (docs/replication.md).  A peer is authenticated, but a bug or a damaged
 * frame must still never crash a storage site.
 *
 * Input: byte 0 picks the decoder (state, changes, pulls), the rest is
 * its input.  Checked: no crash, leak or sanitizer report; the only error
 * for bad input is -EBADMSG; what decodes re-encodes to bytes that decode
 * to the same thing and re-encode to the same bytes (the encoder is
 * canonical, the decoder may accept longer varints).
 */
#include <errno.h>
#include <string.h>

#include "cm_codec.h"
#include "fuzz.h"
#include "lp_rs.h"

static void state(const uint8_t *p, size_t n)
{
        struct lp_rs_state a, b;
        struct cm_wbuf w1, w2;
        int r = lp_rs_state_decode(p, n, &a);

        FZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0)
                return;
        FZ_CHECK(a.kind == LP_RS_INODE || a.kind == LP_RS_GONE);
        cm_wbuf_init(&w1);
        lp_rs_state_encode(&w1, &a);
        FZ_CHECK(!w1.err);
        FZ_CHECK(w1.len <= n);
        r = lp_rs_state_decode(w1.p, w1.len, &b);
        FZ_CHECK(r == 0);
        FZ_CHECK(b.kind == a.kind && b.ino == a.ino && b.vvlen == a.vvlen && !memcmp(b.vv, a.vv, a.vvlen));
        FZ_CHECK(b.nentries == a.nentries && b.nxattrs == a.nxattrs && b.nextents == a.nextents);
        FZ_CHECK(b.from == a.from && b.more == a.more);         /* pieces (version 2) */
        FZ_CHECK(b.has_data == a.has_data && b.datalen == a.datalen);
        cm_wbuf_init(&w2);
        lp_rs_state_encode(&w2, &b);
        FZ_CHECK(!w2.err && w2.len == w1.len && !memcmp(w1.p, w2.p, w1.len));
        cm_wbuf_free(&w1);
        cm_wbuf_free(&w2);
        lp_rs_state_free(&a);
        lp_rs_state_free(&b);
}

static void changes(const uint8_t *p, size_t n)
{
        struct cm_rd rd, rd2;
        struct cm_wbuf w;
        size_t cnt, cnt2;
        int r = lp_rs_changes_open(&rd, p, n, &cnt);

        FZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0)
                return;
        cm_wbuf_init(&w);
        lp_rs_changes_begin(&w, cnt);
        for (size_t i = 0; i < cnt; i++) {
                struct lp_rs_change c;

                r = lp_rs_change_next(&rd, &c);
                FZ_CHECK(r == 0 || r == -EBADMSG);
                if (r < 0) {
                        cm_wbuf_free(&w);
                        return;
                }
                lp_rs_change_put(&w, &c);
        }
        FZ_CHECK(!w.err);
        FZ_CHECK(lp_rs_changes_open(&rd2, w.p, w.len, &cnt2) == 0 && cnt2 == cnt);
        for (size_t i = 0; i < cnt; i++) {
                struct lp_rs_change c;

                FZ_CHECK(lp_rs_change_next(&rd2, &c) == 0);
        }
        FZ_CHECK(cm_rd_end(&rd2));
        cm_wbuf_free(&w);
}

static void pulls(const uint8_t *p, size_t n)
{
        uint64_t *inos = NULL, *again = NULL;
        size_t cnt, cnt2;
        struct cm_wbuf w;
        int r = lp_rs_pulls_decode(p, n, &inos, &cnt);

        FZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0) {
                FZ_CHECK(!inos);
                return;
        }
        cm_wbuf_init(&w);
        FZ_CHECK(lp_rs_pulls_encode(&w, inos, cnt) == 0);
        FZ_CHECK(lp_rs_pulls_decode(w.p, w.len, &again, &cnt2) == 0 && cnt2 == cnt);
        FZ_CHECK(!cnt || !memcmp(inos, again, cnt * sizeof(*inos)));
        cm_wbuf_free(&w);
        free(inos);
        free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        switch (data[0] % 3) {
        case 0:
                state(data + 1, size - 1);
                break;
        case 1:
                changes(data + 1, size - 1);
                break;
        default:
                pulls(data + 1, size - 1);
                break;
        }
        return 0;
}
