/*
 * ss_reg.c -- see ss_reg.h.
 *
 * State, on the loop thread: `peer` (NULL until a CSS port is known),
 * `registered` (the CSS accepted our last CSS_REGISTER on this link),
 * `inflight` (a CSS_REGISTER or NOP call is out: at most one at a time),
 * `again` (the file groups changed while a registration was out).  One
 * timer, every poll_ms: NOP while registered, a retry of a refused
 * registration while up, a fresh look at the port file while down.
 */
#include "ss_reg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_peer.h"
#include "lp_status.h"
#include "ss_note.h"

struct ss_reg {
        uv_loop_t *loop;
        struct lp_peer *peer;
        uv_timer_t timer;
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        char css_host[64];
        uint16_t css_port;
        char *css_port_file;
        char *host;
        uint16_t port;
        uint32_t poll_ms, timeout_ms;
        void (*on_note)(void *ctx);
        void *ctx;
        char *fgs;
        bool registered, inflight, again, stopping, port_failing;
        uint64_t count, notes;
        unsigned missed;                /* NOPs in a row with no answer */
        /* commit notes (ss_note.h): sent from `check` once per loop turn */
        struct ss_note *queue;
        uv_check_t check;
        bool checking;
        unsigned handles;               /* handles still to close before the struct is freed */
        uint64_t sent_batches, sent_notes;
};

static void do_register(struct ss_reg *r);

/* Send what the note queue holds, while registered. */
static void on_check(uv_check_t *h)
{
        struct ss_reg *r = h->data;
        struct lp_fs_req q = { .op = LP_FS_SS_NOTE_COMMIT };
        uint8_t *batch = NULL, *buf = NULL;
        size_t blen = 0, len = 0, n = ss_note_count(r->queue);
        int e;

        uv_check_stop(&r->check);
        r->checking = false;
        if (r->stopping || !n || !r->registered || !r->peer || !lp_peer_is_up(r->peer))
                return;         /* kept (bounded) until the next registration */
        e = ss_note_take(r->queue, &batch, &blen);
        if (e < 0) {
                cm_log(LOG_WARNING, "cannot encode %zu commit notes: %s (kept)", n, strerror(-e));
                return;
        }
        q.site = r->site;
        q.blob = batch;
        q.bloblen = blen;
        e = lp_fs_req_encode(&q, &buf, &len);
        if (e >= 0)
                e = lp_peer_send(r->peer, LP_MSG_FS_REQ, 0, 0, buf, len);
        free(buf);
        free(batch);
        if (e < 0) {
                /* the mounts learn "everything of these groups" instead */
                ss_note_untake(r->queue);
                cm_log(LOG_NOTICE, "cannot send %zu commit notes to the CSS: %s (sent as group notes later)", n,
                       strerror(-e));
                return;
        }
        r->sent_batches++;
        r->sent_notes += n;
}

static void kick_notes(struct ss_reg *r)
{
        if (r->checking || r->stopping || !ss_note_count(r->queue))
                return;
        uv_check_start(&r->check, on_check);
        r->checking = true;
}

void ss_reg_commit(struct ss_reg *r, uint32_t fg, uint64_t client, const struct ss_ct_change *ch, size_t n)
{
        if (!r || r->stopping)
                return;
        ss_note_add(r->queue, fg, client, ch, n);
        if (r->registered)
                kick_notes(r);
}

void ss_reg_commit_stats(const struct ss_reg *r, uint64_t *ret_batches, uint64_t *ret_notes)
{
        *ret_batches = r->sent_batches;
        *ret_notes = r->sent_notes;
}

/* The answer's status: 0 or a negative errno. */
static int answer_status(int err, uint16_t type, const void *payload, size_t len)
{
        struct lp_fs_resp a;
        int st;

        if (err < 0)
                return err;
        if (type == LP_MSG_STATUS) {
                if (lp_status_unpack(payload, len, &st, NULL) < 0)
                        return -EPROTO;
                return lp_status_to_errno(st);
        }
        if (type != LP_MSG_FS_RESP || lp_fs_resp_decode(payload, len, &a) < 0)
                return -EPROTO;
        st = a.status;
        lp_fs_resp_release(&a);
        return st;
}

static void on_registered(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct ss_reg *r = arg;
        int st = answer_status(err, type, payload, len);

        r->inflight = false;
        if (r->stopping || err == -ECANCELED)
                return;
        if (st == 0) {
                r->registered = true;
                r->count++;
                cm_log(LOG_INFO, "registered with the CSS (site %llu at %s:%u, file groups %s)",
                       (unsigned long long)r->site, r->host, r->port, r->fgs);
                /* Notes may have been lost since the last registration (a
                 * broken link, a CSS restarted): tell the mounts to drop
                 * everything of our groups, then send what waits. */
                ss_note_lost(r->queue, 0);
                kick_notes(r);
                if (r->again)
                        do_register(r);
                return;
        }
        if (err == -ETIMEDOUT) {
                cm_log(LOG_NOTICE, "the CSS at %s did not answer our registration in %u ms; reconnecting",
                       lp_peer_addr(r->peer), r->timeout_ms);
                lp_peer_reconnect(r->peer);
                return;
        }
        /* a refusal (or a broken link: on_down follows or came first) */
        if (err == 0)
                cm_log(LOG_NOTICE, "the CSS at %s refused our registration: %s (retrying)", lp_peer_addr(r->peer),
                       strerror(-st));
}

static void do_register(struct ss_reg *r)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_REGISTER };
        uint8_t *buf = NULL;
        size_t len = 0;
        int e;

        r->again = false;
        if (r->inflight) {
                r->again = true;
                return;
        }
        q.site = r->site;
        q.host = r->host;
        q.port = r->port;
        q.text = r->fgs;
        e = lp_fs_req_encode(&q, &buf, &len);
        if (e >= 0)
                e = lp_peer_call(r->peer, LP_MSG_FS_REQ, buf, len, r->timeout_ms, on_registered, r);
        free(buf);
        if (e >= 0)
                r->inflight = true;
        else if (e != -ENOTCONN)
                cm_log(LOG_WARNING, "cannot send our registration to the CSS: %s", strerror(-e));
}

static void on_nop(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct ss_reg *r = arg;

        (void)type;
        (void)payload;
        (void)len;
        r->inflight = false;
        if (r->stopping || err == -ECANCELED)
                return;
        if (err == -ETIMEDOUT) {
                /* An answer of any kind (a CSS that does not know NOP says
                 * so) proves the link; silence does not.  Two in a row: one
                 * can be our own loop busy past the deadline while the
                 * answer waits in the socket (timers run before reads). */
                if (++r->missed < 2)
                        return;
                cm_log(LOG_NOTICE, "connection to the CSS at %s lost: no answer to %u calls of %u ms; "
                       "registering again", lp_peer_addr(r->peer), r->missed, r->timeout_ms);
                r->missed = 0;
                lp_peer_reconnect(r->peer);
                return;
        }
        r->missed = 0;
        if (err == 0 && r->again)
                do_register(r);
}

static void on_up(struct lp_peer *p, uint64_t site)
{
        struct ss_reg *r = lp_peer_data(p);

        (void)site;
        r->registered = false;
        r->missed = 0;
        do_register(r);
}

static void on_down(struct lp_peer *p, int err, const char *why)
{
        struct ss_reg *r = lp_peer_data(p);

        (void)err;
        r->registered = false;
        r->inflight = false;
        cm_log(LOG_NOTICE, "cannot register with the CSS at %s (retrying)", why);
}

static void on_push(struct lp_peer *p, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                    size_t len)
{
        struct ss_reg *r = lp_peer_data(p);
        struct lp_fs_req q;

        (void)flags;
        (void)reqid;
        if (type != LP_MSG_FS_REQ || lp_fs_req_decode(payload, len, &q) < 0)
                return;
        if (q.op == LP_FS_CSS_NOTE_MTAB) {
                r->notes++;
                if (r->on_note)
                        r->on_note(r->ctx);
        }
        lp_fs_req_release(&q);
}

static const struct lp_peer_callbacks peer_cb = { .on_up = on_up, .on_down = on_down, .on_push = on_push };

/* The CSS's port: the port file's, or the one given.  0 if unknown yet. */
static uint16_t css_port(struct ss_reg *r)
{
        uint16_t port = r->css_port;
        int e;

        if (!r->css_port_file)
                return port;
        e = cm_read_port_file(r->css_port_file, &port);
        if (e < 0) {
                if (!r->port_failing)
                        cm_log(LOG_NOTICE, "cannot read the CSS port from %s: %s (retrying)", r->css_port_file,
                               strerror(-e));
                r->port_failing = true;
                return 0;
        }
        r->port_failing = false;
        return port;
}

static void on_tick(uv_timer_t *t)
{
        struct ss_reg *r = t->data;
        uint16_t port;

        if (r->stopping)
                return;
        if (r->peer && lp_peer_is_up(r->peer)) {
                struct lp_fs_req nop = { .op = LP_FS_NOP };
                uint8_t *buf = NULL;
                size_t len = 0;

                if (r->inflight)
                        return;
                if (!r->registered) {
                        do_register(r);         /* refused before: try again */
                        return;
                }
                nop.site = r->site;
                if (lp_fs_req_encode(&nop, &buf, &len) >= 0 &&
                    lp_peer_call(r->peer, LP_MSG_FS_REQ, buf, len, r->timeout_ms, on_nop, r) >= 0)
                        r->inflight = true;
                free(buf);
                return;
        }
        /* down (or never up): the CSS may have come back elsewhere */
        port = css_port(r);
        if (!port)
                return;
        if (!r->peer) {
                struct lp_peer_opts po = { .host = r->css_host, .port = port, .key = r->key, .site_id = r->site,
                                           .connect_timeout_ms = r->timeout_ms };
                int e = lp_peer_new(r->loop, &po, &peer_cb, r, &r->peer);

                if (e < 0) {
                        cm_log(LOG_ERR, "cannot reach the CSS at %s:%u: %s", r->css_host, port, strerror(-e));
                        r->peer = NULL;
                }
                return;
        }
        (void)lp_peer_set_addr(r->peer, r->css_host, port);     /* a no-op when it did not move */
}

static void reg_free(struct ss_reg *r)
{
        lp_key_wipe(r->key, sizeof(r->key));
        ss_note_free(r->queue);
        free(r->fgs);
        free(r->css_port_file);
        free(r->host);
        free(r);
}

static void handle_closed(uv_handle_t *h)
{
        struct ss_reg *r = h->data;

        if (--r->handles == 0)
                reg_free(r);
}

int ss_reg_start(uv_loop_t *loop, const struct ss_reg_opts *o, const char *fgs_json, struct ss_reg **ret)
{
        struct ss_reg *r;

        if (!o->css_port_file && !o->css_port)
                return -EINVAL;
        if (o->css_host && strlen(o->css_host) >= sizeof(r->css_host))
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->loop = loop;
        memcpy(r->key, o->key, sizeof(r->key));
        r->site = o->site;
        snprintf(r->css_host, sizeof(r->css_host), "%s", o->css_host ? o->css_host : "127.0.0.1");
        r->css_port = o->css_port;
        r->port = o->port;
        r->poll_ms = o->poll_ms ? o->poll_ms : 1000;
        r->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
        r->on_note = o->on_note;
        r->ctx = o->ctx;
        r->fgs = strdup(fgs_json ? fgs_json : "[]");
        r->css_port_file = o->css_port_file ? strdup(o->css_port_file) : NULL;
        r->host = strdup(o->host ? o->host : "127.0.0.1");
        if (!r->fgs || !r->host || (o->css_port_file && !r->css_port_file) || ss_note_new(0, &r->queue) < 0) {
                reg_free(r);
                return -ENOMEM;
        }
        uv_timer_init(loop, &r->timer);
        r->timer.data = r;
        uv_check_init(loop, &r->check);
        r->check.data = r;
        r->handles = 2;
        uv_timer_start(&r->timer, on_tick, r->poll_ms, r->poll_ms);
        on_tick(&r->timer);             /* connect now, not a poll interval later */
        if (!r->peer && !r->port_failing && !r->css_port_file) {
                /* a port given but no link: the host did not parse */
                r->stopping = true;
                uv_close((uv_handle_t *)&r->timer, handle_closed);
                uv_close((uv_handle_t *)&r->check, handle_closed);
                return -EINVAL;
        }
        *ret = r;
        return 0;
}

void ss_reg_set_fgs(struct ss_reg *r, const char *fgs_json)
{
        char *n = strdup(fgs_json);

        if (!n)
                return;
        free(r->fgs);
        r->fgs = n;
        if (r->peer && lp_peer_is_up(r->peer))
                do_register(r);
}

uint64_t ss_reg_count(const struct ss_reg *r)
{
        return r->count;
}

uint64_t ss_reg_notes(const struct ss_reg *r)
{
        return r->notes;
}

void ss_reg_stop(struct ss_reg *r)
{
        if (!r || r->stopping)
                return;
        r->stopping = true;
        lp_peer_close(r->peer);         /* answers a call in flight: it sees stopping */
        r->peer = NULL;
        uv_close((uv_handle_t *)&r->timer, handle_closed);
        uv_close((uv_handle_t *)&r->check, handle_closed);
}
