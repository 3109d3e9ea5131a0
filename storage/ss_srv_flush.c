/*
 * ss_srv_flush.c -- durability of the storage server (ss_srv_int.h): log
 * flushes on the work queue and the answers that wait for them [S2] [S3],
 * followers of the change stream (parked SS_CHANGES) and sync answers that
 * wait for copies at other sites [S8].  Loop thread, except flush_work_cb.
 */
#include "ss_srv_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"

/* ---- flushing ----------------------------------------------------------------------- */

static void flush_work_cb(uv_work_t *w)
{
        struct ss_fg *f = w->data;

        f->flush_result = ss_ct_sync(f->ct);
}

static void plist_add(struct plist *l, struct pending *p)
{
        p->next = NULL;
        if (l->tail)
                l->tail->next = p;
        else
                l->head = p;
        l->tail = p;
}

static void plist_append(struct plist *to, struct plist *from)
{
        if (!from->head)
                return;
        if (to->tail)
                to->tail->next = from->head;
        else
                to->head = from->head;
        to->tail = from->tail;
        from->head = from->tail = NULL;
}

static void flush_after_cb(uv_work_t *w, int status);
static void durable(struct ss_fg *f, struct pending *p);

/* Every answer of l is durable here: on to its copies [S8]. */
static void plist_durable(struct ss_fg *f, struct plist *l)
{
        struct pending *p = l->head, *n;

        l->head = l->tail = NULL;
        for (; p; p = n) {
                n = p->next;
                durable(f, p);
        }
}

static void start_flush(struct ss_fg *f)
{
        int r;

        assert(!f->flush_running);
        /* The index's batch [C6] first: it is cheap, and then SQLite lags
         * the log by at most one flush interval -- or one WAL restart pass,
         * which keeps the batch open [S7]. */
        if (!f->wal_hold)
                (void)ss_ct_index_commit(f->ct);
        f->flush_running = true;
        f->flush_seq = f->ct->seq;
        plist_append(&f->wait_run, &f->wait_next);
        if (f->timer_armed) {
                uv_timer_stop(&f->flush_timer);
                f->timer_armed = false;
        }
        f->flush_work.data = f;
        r = uv_queue_work(f->srv->loop, &f->flush_work, flush_work_cb, flush_after_cb);
        if (r < 0) {
                f->flush_running = false;
                cm_log(LOG_ERR, "fg %u: cannot queue a flush: %s", f->fg, uv_strerror(r));
                ss__srv_plist_done(&f->wait_run, -EIO, "the flush could not be started");
                return;
        }
        f->srv->works++;
}

static void flush_timer_cb(uv_timer_t *t)
{
        struct ss_fg *f = t->data;

        f->timer_armed = false;
        if (!f->flush_running && f->ct->seq > f->flush_seq && !f->srv->stopping)
                start_flush(f);
}

/* Something was committed: flush within the interval. */
void ss__srv_fg_dirty(struct ss_fg *f)
{
        if (f->flush_running || f->timer_armed || f->srv->stopping)
                return;
        f->timer_armed = true;
        uv_timer_start(&f->flush_timer, flush_timer_cb, f->srv->o.flush_interval_ms, 0);
}

static void flush_after_cb(uv_work_t *w, int status)
{
        struct ss_fg *f = w->data;
        struct ss_srv *s = f->srv;
        int r = status < 0 ? -EIO : f->flush_result;

        s->works--;
        f->flush_running = false;
        if (r < 0) {
                ss__srv_fg_failed(f, r, "flushing the log");
                ss__srv_plist_done(&f->wait_run, r, "flushing the log failed");
                ss__srv_plist_done(&f->wait_next, r, "flushing the log failed");
        } else {
                plist_durable(f, &f->wait_run);
        }
        if (s->stopping) {
                ss__srv_plist_done(&f->wait_next, -EIO, "shutting down");
                ss__srv_maybe_finish(s);
                return;
        }
        if (f->ct->seq > f->flush_seq && !f->ct->err) {
                if (f->wait_next.head)
                        start_flush(f);
                else
                        ss__srv_fg_dirty(f);
        }
}

/* p must be answered once everything committed so far is durable. */
void ss__srv_add_sync_waiter(struct ss_fg *f, struct pending *p)
{
        if (f->ct->seq > f->flush_seq) {
                plist_add(&f->wait_next, p);
                if (!f->flush_running)
                        start_flush(f);
        } else if (f->flush_running) {
                plist_add(&f->wait_run, p);
        } else {
                durable(f, p);
        }
}

/* ---- followers [S8] ------------------------------------------------------------------- */

static void fw_timer_cb(uv_timer_t *t);

/* Arm fw_timer for the earliest deadline of f's followers. */
static void fw_arm(struct ss_fg *f)
{
        uint64_t d = ss_fw_next_deadline(&f->fw), now = cm_now_us();

        if (!d || f->srv->finished) {
                uv_timer_stop(&f->fw_timer);
                return;
        }
        uv_timer_start(&f->fw_timer, fw_timer_cb, d > now ? (d - now + 999) / 1000 : 0, 0);
}

/* A parked SS_CHANGES leaves: run it now (or park it behind maintenance). */
void ss__srv_watch_cb(void *ctx, void *tag, int err)
{
        struct ss_fg *f = ctx;
        struct parked *p = tag;

        if (err == -EHOSTUNREACH) {
                ss__srv_send_status(p->c, p->reqid, err, "the storage site is shutting down");
                lp_fs_req_release(&p->q);
        } else if (f->busy) {
                ss__srv_park(f, p->c, p->reqid, &p->q);
        } else {
                p->q.size = 0;          /* answered as it is now */
                ss__srv_run_op(f->srv, f, p->c, p->reqid, &p->q);
        }
        ss__srv_conn_unref(p->c);
        free(p);
}

/* A sync answer leaves its copy wait. */
void ss__srv_copy_cb(void *ctx, void *tag, int err)
{
        struct ss_fg *f = ctx;
        struct pending *p = tag;
        char why[200];

        if (err == -ETIMEDOUT) {
                snprintf(why, sizeof(why), "fg %u: committed and durable at site %llu, but only %u of the %u "
                         "other copies sync_copies asks for confirmed it within %u ms", f->fg,
                         (unsigned long long)f->srv->o.site, ss_fw_count(&f->fw, p->copies_seq), p->copies_need,
                         SS_SYNC_COPIES_WAIT_MS);
                cm_log(LOG_WARNING, "%s", why);
                ss__srv_pending_done(p, -EIO, why);
        } else {
                ss__srv_pending_done(p, err, err ? "shutting down" : NULL);
        }
}

static void durable(struct ss_fg *f, struct pending *p)
{
        int r;

        if (!p->copies_need) {
                ss__srv_pending_done(p, 0, NULL);
                return;
        }
        r = ss_fw_wait_copies(&f->fw, p->copies_seq, p->copies_need,
                              cm_now_us() + (uint64_t)SS_SYNC_COPIES_WAIT_MS * 1000u, p);
        if (r == 1)
                ss__srv_pending_done(p, 0, NULL);
        else if (r < 0)
                ss__srv_pending_done(p, r, "too many answers wait for copies");
        else
                fw_arm(f);
}

static void fw_timer_cb(uv_timer_t *t)
{
        struct ss_fg *f = t->data;

        ss_fw_expire(&f->fw, cm_now_us(), ss__srv_watch_cb, ss__srv_copy_cb, f);
        fw_arm(f);
}

/* SS_CHANGES [S8]: record the asker's position; park it if it waits and
 * there is nothing past its since.  true if it was taken over. */
bool ss__srv_changes_follow(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        uint64_t now = cm_now_us(), wait = q->size < SS_CHANGES_WAIT_MAX_MS ? q->size : SS_CHANGES_WAIT_MAX_MS;
        struct parked *p;

        if (c->site)
                ss_fw_ack(&f->fw, c->site, q->offset, now, ss__srv_copy_cb, f);
        if (!wait || q->offset < f->ct->seq || f->srv->stopping || !(p = calloc(1, sizeof(*p))))
                return false;
        p->c = c;
        p->reqid = reqid;
        p->q = *q;
        if (ss_fw_watch(&f->fw, q->offset, now + wait * 1000u, p) < 0) {
                free(p);
                return false;   /* answered at once */
        }
        c->refs++;
        fw_arm(f);
        return true;
}
