/*
 * ss_srv_maint.c -- maintenance of the storage server (ss_srv_int.h):
 * parking a container's requests while a job holds it [S1], checkpoints,
 * the cleaner, delta checkpoints and SQLite WAL checkpoints on the work
 * queue [S7].  Loop thread, except the *_work_cb functions.
 */
#include "ss_srv_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"

void ss__srv_park(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        size_t bytes = sizeof(struct parked) + q->datalen + q->namelen + q->newnamelen + 512;
        struct parked *p;

        if (f->park_n >= SS_PARK_MAX || f->park_bytes + bytes > SS_PARK_BYTES ||
            !(p = calloc(1, sizeof(*p)))) {
                cm_log(LOG_WARNING, "fg %u: %s from site %llu refused: %zu requests wait for maintenance",
                       f->fg, lp_fs_op_name(q->op), (unsigned long long)c->site, f->park_n);
                ss__srv_send_status(c, reqid, -EAGAIN, "the container is busy with maintenance; retry");
                lp_fs_req_release(q);
                return;
        }
        p->c = c;
        c->refs++;
        p->reqid = reqid;
        p->q = *q;              /* takes over the decoded request */
        p->bytes = bytes;
        if (f->park_tail)
                f->park_tail->next = p;
        else
                f->park_head = p;
        f->park_tail = p;
        f->park_n++;
        f->park_bytes += bytes;
}

void ss__srv_drop_parked(struct ss_fg *f)
{
        while (f->park_head) {
                struct parked *p = f->park_head;

                f->park_head = p->next;
                ss__srv_send_status(p->c, p->reqid, -EHOSTUNREACH, "the storage site is shutting down");
                lp_fs_req_release(&p->q);
                ss__srv_conn_unref(p->c);
                free(p);
        }
        f->park_tail = NULL;
        f->park_n = 0;
        f->park_bytes = 0;
}

/* ---- maintenance --------------------------------------------------------------------- */

uint64_t ss__srv_log_written(struct ss_ct *ct)
{
        struct dsm_stats st;

        dsm_get_stats(ct->store, &st);
        return st.data_bytes_written + st.meta_bytes_written + st.payload_bytes_written;
}

static const char *maint_name(enum maint_kind k)
{
        switch (k) {
        case M_WAL: return "SQLite WAL checkpoint";
        case M_CKPT: return "checkpoint and cleaning";
        case M_ADMIN_CKPT: return "checkpoint";
        case M_ADMIN_CLEAN: return "cleaning";
        }
        return "maintenance";
}

static void maint_work_cb(uv_work_t *w)
{
        struct ss_fg *f = w->data;
        struct ss_ct *ct = f->ct;
        unsigned pct = f->srv->o.clean_live_pct;
        int r = 0;

        f->maint_n = 0;
        switch (f->maint_kind) {
        case M_WAL:
                r = ss_ct_wal_checkpoint(ct);
                break;
        case M_CKPT:
                r = ss_ct_checkpoint(ct);
                if (r >= 0)
                        r = ss_ct_clean(ct, pct, &f->maint_n);
                break;
        case M_ADMIN_CKPT:
                r = ss_ct_checkpoint(ct);
                break;
        case M_ADMIN_CLEAN:
                r = ss_ct_clean(ct, pct, &f->maint_n);
                break;
        }
        f->maint_result = r;
}

static void unpark(struct ss_fg *f)
{
        struct ss_srv *s = f->srv;

        while (!f->busy && f->park_head && !s->stopping) {
                struct parked *p = f->park_head;

                f->park_head = p->next;
                if (!f->park_head)
                        f->park_tail = NULL;
                f->park_n--;
                f->park_bytes -= p->bytes;
                ss__srv_handle_req(s, p->c, p->reqid, &p->q);
                ss__srv_conn_unref(p->c);
                free(p);
        }
}

static void maint_after_cb(uv_work_t *w, int status)
{
        struct ss_fg *f = w->data;
        struct ss_srv *s = f->srv;
        int r = status < 0 ? -EIO : f->maint_result;

        s->works--;
        f->busy = false;
        if (r < 0) {
                int se = ss_ct_store_error(f->ct);

                if (se < 0)
                        ss__srv_fg_failed(f, se, maint_name(f->maint_kind));
                else if (ss__srv_fg_check(f) >= 0)
                        cm_log(LOG_ERR, "fg %u (%s): %s failed: %s", f->fg, f->ct->dir,
                               maint_name(f->maint_kind), strerror(-r));
        } else {
                if (f->maint_kind != M_WAL && f->maint_kind != M_ADMIN_CLEAN) {
                        f->ckpt_mark = ss__srv_log_written(f->ct);
                        f->ckpt_seq = f->ct->seq;
                        f->ckpt_us = cm_now_us();
                }
                cm_log(LOG_DEBUG, "fg %u: %s done (%d segment(s) reclaimed, parked %llu us)", f->fg,
                       maint_name(f->maint_kind), f->maint_n, (unsigned long long)(cm_now_us() - f->maint_us));
        }
        if (f->maint_wait) {
                struct pending *p = f->maint_wait;

                f->maint_wait = NULL;
                if (r >= 0) {
                        struct lp_fs_resp a = { .value = (uint64_t)f->maint_n };

                        ss__srv_send_resp(p->c, p->reqid, &a);
                        ss__srv_conn_unref(p->c);
                        free(p->buf);
                        free(p);
                } else {
                        ss__srv_pending_done(p, r, maint_name(f->maint_kind));
                }
        }
        if (s->stopping) {
                ss__srv_maybe_finish(s);
                return;
        }
        unpark(f);
}

static int queue_maint(struct ss_fg *f)
{
        int r = uv_queue_work(f->srv->loop, &f->maint_work, maint_work_cb, maint_after_cb);

        if (r < 0) {
                f->busy = false;
                f->maint_wait = NULL;
                cm_log(LOG_ERR, "fg %u: cannot queue %s: %s", f->fg, maint_name(f->maint_kind), uv_strerror(r));
                return -EIO;
        }
        f->srv->works++;
        return 0;
}

int ss__srv_start_maint(struct ss_fg *f, enum maint_kind kind, struct pending *waiter)
{
        int r;

        if (ss__srv_fg_check(f) < 0)
                return f->ct->err;      /* [S6]: never retried */
        r = ss_ct_index_commit(f->ct);  /* maintenance works on a committed index */
        if (r < 0)
                return r;
        f->busy = true;
        f->maint_us = cm_now_us();
        f->maint_kind = kind;
        f->maint_wait = waiter;
        f->maint_work.data = f;
        if (f->wal_running) {
                /* Parked from now; the job waits for the concurrent WAL
                 * checkpoint (two checkpoints of one SQLite file exclude
                 * each other): wal_after_cb queues it. */
                f->maint_deferred = true;
                return 0;
        }
        return queue_maint(f);
}

static void wal_after_cb(uv_work_t *w, int status);

/* Should the WAL restart (ss_srv.h: at SS_WAL_LIMIT / 2 rounds), and is
 * no restart arranged (one is until the next commit of the index, which
 * restarts the WAL, or copies frames past what was copied)? */
static bool restart_due(struct ss_fg *f)
{
        uint64_t at = (uint64_t)f->srv->o.wal_frames * (SS_WAL_LIMIT / 2);

        if (f->wal_restart_armed && !ss_db_wal_all_copied(f->ct->db))
                f->wal_restart_armed = false;
        return !f->ct->err && ss_db_wal_frames(f->ct->db) >= at && !f->wal_restart_armed;
}

static void wal_work_cb(uv_work_t *w)
{
        struct ss_fg *f = w->data;

        f->wal_copied = 0;
        /* A restart pass is one pass: nothing reaches SQLite's WAL while
         * it runs (the batch is held [S7]), so one copies everything. */
        f->wal_result = ss_ct_wal_checkpoint_passive(f->ct, f->wal_hold ? 1 : SS_CT_WAL_PASSES, &f->wal_copied);
}

static int queue_wal(struct ss_fg *f)
{
        struct ss_srv *s = f->srv;
        int r;

        f->wal_work.data = f;
        r = uv_queue_work(s->loop, &f->wal_work, wal_work_cb, wal_after_cb);
        if (r < 0) {
                cm_log(LOG_ERR, "fg %u: cannot queue %s: %s", f->fg, maint_name(M_WAL), uv_strerror(r));
                return -EIO;
        }
        f->wal_running = true;
        s->works++;
        return 0;
}

/* The restart pass [S7]: commit the open batch, keep the next one (held
 * open across the pass), and copy what the WAL holds in one pass. */
static void start_wal_restart(struct ss_fg *f)
{
        if (ss_ct_index_keep(f->ct, true) < 0) {
                ss_ct_index_keep(f->ct, false);
                (void)ss__srv_fg_check(f);
                return;
        }
        f->wal_hold = true;
        if (queue_wal(f) < 0) {
                f->wal_hold = false;
                ss_ct_index_keep(f->ct, false);
        }
}

/* The restart pass ended (r: its result): if it copied every frame, the
 * held batch is applied again on a fresh snapshot and its first write
 * restarts the WAL (ss_ct.h [C7]). */
static void end_wal_restart(struct ss_fg *f, int r)
{
        uint64_t t0 = cm_now_us();
        unsigned n = ss_ct_index_kept(f->ct);

        f->wal_hold = false;
        if (r >= 0 && !f->ct->err) {
                r = ss_ct_index_restart(f->ct);
                if (r > 0) {
                        f->wal_restart_armed = true;
                        cm_log(LOG_DEBUG, "fg %u: SQLite WAL of %u frame(s) restarts without parking (%u "
                               "changeset(s) applied again in %llu us)", f->fg, ss_db_wal_frames(f->ct->db), n,
                               (unsigned long long)(cm_now_us() - t0));
                } else if (r == 0) {
                        cm_log(LOG_DEBUG, "fg %u: SQLite WAL not restarted (%u of %u frame(s) left)", f->fg,
                               ss_db_wal_unckpt(f->ct->db), ss_db_wal_frames(f->ct->db));
                } else {
                        (void)ss__srv_fg_check(f);      /* [S6]; ss_ct logged the cause */
                }
        }
        ss_ct_index_keep(f->ct, false);
}

static void wal_after_cb(uv_work_t *w, int status)
{
        struct ss_fg *f = w->data;
        struct ss_srv *s = f->srv;
        int r = status < 0 ? -EIO : f->wal_result;

        s->works--;
        f->wal_running = false;
        /* The checkpoint's own failure enters SQLite's error state here
         * (fg_check logs it once); the log's is the store's. */
        (void)ss_db_wal_passive_end(f->ct->db);
        if (f->wal_hold)
                end_wal_restart(f, r);
        if (r < 0 && r != -EAGAIN) {
                int se = ss_ct_store_error(f->ct);

                if (se < 0)
                        ss__srv_fg_failed(f, se, maint_name(M_WAL));
                else if (ss__srv_fg_check(f) >= 0)
                        cm_log(LOG_ERR, "fg %u (%s): %s failed: %s", f->fg, f->ct->dir, maint_name(M_WAL),
                               strerror(-r));
        } else {
                cm_log(LOG_DEBUG, "fg %u: concurrent SQLite WAL checkpoint done (last pass %u frame(s), "
                       "%u of %u left)", f->fg, f->wal_copied, ss_db_wal_unckpt(f->ct->db),
                       ss_db_wal_frames(f->ct->db));
        }
        if (f->maint_deferred) {
                f->maint_deferred = false;
                if (queue_maint(f) < 0) {
                        if (f->maint_wait) {
                                ss__srv_pending_done(f->maint_wait, -EIO, "cannot start the job");
                                f->maint_wait = NULL;
                        }
                        unpark(f);
                }
                return;
        }
        if (s->stopping) {
                ss__srv_maybe_finish(s);
                return;
        }
        /* Once the WAL holds SS_WAL_LIMIT / 2 rounds, a restart pass
         * copies the frames committed while the passes ran (whether they
         * caught up or ran out: on a slow disk each pass copies what was
         * committed during the one before), with the batch held so that it
         * can begin again on a fresh snapshot [S7]: commits that never
         * pause would keep the WAL growing. */
        if (r >= 0 && restart_due(f))
                start_wal_restart(f);
}

/* SQLite's WAL checkpoint [S7]: concurrent passes, on the work queue,
 * when wal_frames frames were committed since the last one, or (idle) when
 * the container had no commit since the last tick and frames are left to
 * copy, so that the next write restarts the WAL, or when the WAL holds
 * SS_WAL_LIMIT / 2 rounds and no restart is arranged (they end in a
 * restart pass, or are one at once if few frames are left); parked at once only when the WAL has grown past twice
 * SS_WAL_LIMIT rounds (restarts failed or the passes never caught up). */
void ss__srv_maybe_wal(struct ss_fg *f, bool idle)
{
        struct ss_srv *s = f->srv;
        uint64_t limit = (uint64_t)s->o.wal_frames * SS_WAL_LIMIT;
        unsigned left;

        if (f->wal_running || f->busy || s->stopping || f->ct->err)
                return;
        left = ss_db_wal_unckpt(f->ct->db);
        if (left < s->o.wal_frames && !(idle && left > 0) && !restart_due(f))
                return;
        if (ss_db_wal_frames(f->ct->db) >= limit * 2) {
                if (ss__srv_start_maint(f, M_WAL, NULL) >= 0)
                        f->wal_parked++;
                return;
        }
        if (restart_due(f) && left <= SS_CT_WAL_LEFT * 4) {
                start_wal_restart(f);   /* a short tail: the restart pass at once */
                return;
        }
        (void)queue_wal(f);
}

static void delta_work_cb(uv_work_t *w)
{
        struct ss_fg *f = w->data;

        f->delta_n = 0;
        if (!f->delta_full) {
                f->delta_result = ss_ct_checkpoint_delta(f->ct);
                return;
        }
        f->delta_result = ss_ct_checkpoint_compact(f->ct);
        if (f->delta_result >= 0)
                f->delta_result = ss_ct_clean_base(f->ct, f->srv->o.clean_live_pct, &f->delta_n);
}

static void delta_after_cb(uv_work_t *w, int status)
{
        struct ss_fg *f = w->data;
        struct ss_srv *s = f->srv;
        int r = status < 0 ? -EIO : f->delta_result;

        s->works--;
        f->delta_running = false;
        if (r >= 0) {
                f->ckpt_mark = f->delta_mark;
                f->ckpt_us = cm_now_us();
                cm_log(LOG_DEBUG, "fg %u: %s done (%d segment(s) reclaimed)", f->fg,
                       f->delta_full ? "full checkpoint from the log and cleaning" : "delta checkpoint",
                       f->delta_n);
        } else if (r == -ESTALE) {
                cm_log(LOG_DEBUG, "fg %u: no chain to build on: the next checkpoint is a full one", f->fg);
                f->force_parked = true;
        } else {
                int se = ss_ct_store_error(f->ct);

                if (se < 0)
                        ss__srv_fg_failed(f, se, "delta checkpoint");
                else
                        cm_log(LOG_ERR, "fg %u (%s): delta checkpoint failed: %s", f->fg, f->ct->dir,
                               strerror(-r));
        }
        if (s->stopping)
                ss__srv_maybe_finish(s);
}

/* A delta checkpoint, or (full) a full checkpoint built from the log and
 * a cleaner pass, on the work queue; the container keeps being served (no
 * parking: they touch only dsmcore, which holds commits back just for its
 * snapshots, and a private SQLite database). */
static void start_delta(struct ss_fg *f, bool full)
{
        int r;

        f->delta_full = full;
        f->delta_mark = ss__srv_log_written(f->ct);
        f->ckpt_seq = f->ct->seq;
        f->delta_work.data = f;
        r = uv_queue_work(f->srv->loop, &f->delta_work, delta_work_cb, delta_after_cb);
        if (r < 0) {
                cm_log(LOG_ERR, "fg %u: cannot queue a delta checkpoint: %s", f->fg, uv_strerror(r));
                return;
        }
        f->delta_running = true;
        f->srv->works++;
}

void ss__srv_maybe_maint(struct ss_fg *f, uint64_t now)
{
        struct ss_opts *o = &f->srv->o;

        if (f->busy || f->delta_running || f->srv->stopping || f->ct->err)
                return;
        if (ss__srv_log_written(f->ct) - f->ckpt_mark >= o->ckpt_bytes ||
            (f->ct->seq > f->ckpt_seq && now - f->ckpt_us >= (uint64_t)o->ckpt_interval_ms * 1000u)) {
                struct dsm_stats st;

                dsm_get_stats(f->ct->store, &st);
                if (f->force_parked || st.checkpoint_seq == 0) {
                        /* No chain to build a full one from: read SQLite,
                         * parked (once in a container's life, normally). */
                        if (ss__srv_start_maint(f, M_CKPT, NULL) >= 0)
                                f->force_parked = false;
                } else {
                        start_delta(f, ss_ct_checkpoint_full_due(f->ct));
                }
        } else {
                ss__srv_maybe_wal(f, f->ct->seq == f->wal_tick_seq);
        }
        f->wal_tick_seq = f->ct->seq;
}
