/*
 * fuzz_note.c -- the coherence codec (proto/lp_note.c): the commit notes a
 * storage site sends the CSS and the CSS forwards to every watching mount
 * (docs/coherence.md).  A peer is authenticated, but a bug or a damaged
 * frame must still never crash the CSS or a mount.
 *
 * Input: a batch.  Checked: no crash, leak or sanitizer report; the only
 * errors are -EBADMSG (and -ENOMEM); a decoded batch keeps its limits,
 * every extent pointer is readable; it re-encodes to bytes that decode to
 * the same notes and re-encode to the same bytes.
 */
#include <errno.h>
#include <string.h>

#include "cm_codec.h"
#include "fuzz.h"
#include "lp_note.h"

static void same(const struct lp_note_batch *a, const struct lp_note_batch *b)
{
        FZ_CHECK(a->n == b->n);
        for (size_t i = 0; i < a->n; i++) {
                const struct lp_note *x = &a->v[i], *y = &b->v[i];

                FZ_CHECK(x->fg == y->fg && x->ino == y->ino && x->version == y->version);
                FZ_CHECK(x->client == y->client && x->flags == y->flags && x->next == y->next);
                FZ_CHECK(!x->next || !memcmp(x->ext, y->ext, x->next * sizeof(*x->ext)));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct lp_note_batch a, b;
        struct cm_wbuf w1, w2;
        int r = lp_note_decode(data, size, &a);

        FZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
        if (r < 0)
                return 0;
        FZ_CHECK(a.n <= LP_NOTE_MAX);
        for (size_t i = 0; i < a.n; i++) {
                FZ_CHECK(a.v[i].next <= LP_NOTE_EXT_MAX);
                FZ_CHECK(!(a.v[i].flags & ~LP_NOTE_FLAGS));
                FZ_CHECK((a.v[i].next == 0) == (a.v[i].ext == NULL));
                for (size_t k = 0; k < a.v[i].next; k++)
                        FZ_CHECK(a.v[i].ext[k].off == a.v[i].ext[k].off);       /* readable */
        }
        cm_wbuf_init(&w1);
        FZ_CHECK(lp_note_encode(&w1, a.v, a.n) == 0);
        FZ_CHECK(w1.len <= size);
        FZ_CHECK(lp_note_decode(w1.p, w1.len, &b) == 0);
        same(&a, &b);
        cm_wbuf_init(&w2);
        FZ_CHECK(lp_note_encode(&w2, b.v, b.n) == 0);
        FZ_CHECK(w2.len == w1.len && !memcmp(w1.p, w2.p, w1.len));
        cm_wbuf_free(&w1);
        cm_wbuf_free(&w2);
        lp_note_batch_free(&a);
        lp_note_batch_free(&b);
        return 0;
}
