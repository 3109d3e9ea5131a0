/*
 * css_watch.c -- coherence at the CSS (docs/coherence.md): mounts that
 * watch (LP_FS_CSS_WATCH), and the commit notes of the registered storage
 * sites (LP_FS_SS_NOTE_COMMIT) forwarded to them (LP_FS_CSS_NOTE_INVAL).
 *
 * Rules:
 *  [W1] A note is forwarded to every watching mount except the one whose
 *       commit it is (the note's client = the watcher's client id): that
 *       mount's kernel cache holds what it wrote.
 *  [W2] A note of a storage site that is not the file group's primary (an
 *       install at a secondary copy) goes only to the mounts of that site
 *       (the watcher's handshake site): those may read at their site's own
 *       copy (docs/replication.md "Reads at a current local copy"), whose
 *       install is the moment the new version is there; every other mount
 *       reads at the primary and learnt of the commit from its note.
 *       Group notes (LP_NOTE_GROUP) go to everyone.
 *  [W3] Only a registered storage site's connection may send notes (its
 *       registration made it a mount table watcher, css.c); others are
 *       ignored (logged at debug level).
 *  [W4] Bounded: at most CSS_WATCH_MAX watchers (a further CSS_WATCH is
 *       refused with ENOSPC); a mount that does not read its notes has its
 *       connection closed by lp_server's output bound (-ENOBUFS), and
 *       invalidates everything when it watches again.
 *  [W5] A change of the mount table (css__mtab_changed: a group created,
 *       a primary or holder changed) goes to the watching mounts too, as
 *       LP_FS_CSS_NOTE_MTAB: a mount reads the table at once (instead of
 *       at its next 5 s refresh) and drops the names it cached, so a new
 *       mount point is crossed at once on every mount.
 *
 * Threads: the loop thread.  Ownership: css->nw holds the watchers'
 * clients without a reference: css_watch_closed() removes a client before
 * it can be freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "cm_codec.h"
#include "css_int.h"
#include "css_json.h"
#include "lp_frame.h"
#include "lp_note.h"

void css_watch_op(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        struct lp_fs_resp resp = { .status = 0 };

        (void)rq;
        if (!cl->note_watch) {
                if (css->nnw == CSS_WATCH_MAX) {
                        css__reply_err(cl, reqid, -ENOSPC, "too many mounts watch already (%u)", CSS_WATCH_MAX);
                        return;
                }
                if (css->nnw == css->capnw) {
                        size_t cap = css->capnw ? css->capnw * 2 : 16;
                        struct css_client **v = realloc(css->nw, cap * sizeof(*v));

                        if (!v) {
                                css__reply_err(cl, reqid, -ENOMEM, "out of memory");
                                return;
                        }
                        css->nw = v;
                        css->capnw = cap;
                }
                css->nw[css->nnw++] = cl;
                cl->note_watch = true;
                cm_log(LOG_DEBUG, "%s watches the commit notes", cl->peer);
        }
        resp.value = css->boot;
        css__reply(cl, reqid, &resp);
}

void css_watch_mtab(struct css *css, const void *buf, size_t len)
{
        for (size_t i = 0; i < css->nnw; i++)
                if (css->nw[i]->conn)
                        (void)lp_server_send(css->nw[i]->conn, LP_MSG_FS_REQ, 0, 0, buf, len);
}

void css_watch_status(struct css *css, struct css_jw *w)
{
        css_jw_key(w, "commit_notes");
        css_jw_obj_begin(w);
        css_jw_key(w, "watchers");
        css_jw_u64(w, css->nnw);
        css_jw_key(w, "received");
        css_jw_u64(w, css->notes_in);
        css_jw_key(w, "forwarded");
        css_jw_u64(w, css->notes_out);
        css_jw_obj_end(w);
}

void css_watch_closed(struct css_client *cl)
{
        struct css *css = cl->css;

        if (!cl->note_watch)
                return;
        cl->note_watch = false;
        for (size_t i = 0; i < css->nnw; i++)
                if (css->nw[i] == cl) {
                        css->nw[i] = css->nw[--css->nnw];
                        break;
                }
}

/* [W1] [W2]: does watcher w get note o of site `from`? */
static bool wants(struct css *css, const struct css_client *w, const struct lp_note *o, uint64_t from)
{
        const struct css_site *p;

        if (o->client && o->client == w->id)
                return false;
        if (o->flags & LP_NOTE_GROUP || w->site == from)
                return true;
        p = css__primary(css, o->fg);
        return !p || p->id == from;
}

static void send_to(struct css_client *w, const struct lp_note *v, size_t n, uint64_t from)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_NOTE_INVAL };
        struct cm_wbuf b;
        uint8_t *buf = NULL;
        size_t len = 0;
        int r;

        cm_wbuf_init(&b);
        r = lp_note_encode(&b, v, n);
        if (r >= 0) {
                q.site = from;
                q.blob = b.p;
                q.bloblen = b.len;
                r = lp_fs_req_encode(&q, &buf, &len);
        }
        if (r >= 0)
                r = lp_server_send(w->conn, LP_MSG_FS_REQ, 0, 0, buf, len);
        if (r < 0) {
                /* It cannot be told: it must watch again, and invalidate
                 * everything then (docs/coherence.md). */
                cm_log(LOG_NOTICE, "cannot send %zu commit notes to %s: %s; closing its watch", n, w->peer,
                       strerror(-r));
                lp_server_conn_close(w->conn);
        } else {
                w->css->notes_out += n;
        }
        free(buf);
        cm_wbuf_free(&b);
}

void css_watch_note(struct css_client *cl, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        struct lp_note_batch b;
        struct lp_note *sel;
        int r;

        if (!cl->watching || !cl->site) {
                cm_log(LOG_DEBUG, "%s sent commit notes but is no registered storage site: ignored", cl->peer);
                return;
        }
        r = lp_note_decode(rq->blob, rq->bloblen, &b);
        if (r < 0) {
                cm_log(LOG_NOTICE, "malformed commit notes from %s: %s", cl->peer, strerror(-r));
                return;
        }
        css->notes_in += b.n;
        sel = calloc(b.n ? b.n : 1, sizeof(*sel));
        if (!sel) {
                cm_log(LOG_WARNING, "out of memory for %zu commit notes from %s: dropped", b.n, cl->peer);
                lp_note_batch_free(&b);
                return;
        }
        /* The list can shrink under us (a send that fails closes the
         * connection, but on_close comes later, from the loop). */
        for (size_t i = 0; i < css->nnw; i++) {
                struct css_client *w = css->nw[i];
                size_t n = 0;

                if (!w->conn)
                        continue;
                for (size_t k = 0; k < b.n; k++)
                        if (wants(css, w, &b.v[k], cl->site))
                                sel[n++] = b.v[k];
                if (n)
                        send_to(w, sel, n, cl->site);
        }
        free(sel);
        lp_note_batch_free(&b);
}
