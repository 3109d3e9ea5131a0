/*
 * ss_srv.c -- see ss_srv.h.
 *
 * Per container (struct ss_fg), the loop keeps:
 *
 *   flushing   idle --commit--> timer armed --timer / sync waiter--> running
 *              running --flush_done--> idle, or running again if more was
 *              committed and someone waits, or timer armed if more was
 *              committed.
 *              A sync waiter joins wait_next if anything was committed
 *              since the running flush started (it needs the next flush),
 *              else wait_run (the running flush covers it), else it is
 *              answered at once (nothing unflushed).
 *   parking    open --start_maint--> parked (busy) --maint_done--> open,
 *              then the parked requests run in arrival order.
 *
 * Invariants:
 *  [S1] While f->busy, the loop calls nothing on f->ct (requests park,
 *       doomed sessions of it wait), except dsm_sync from a flush job.
 *  [S2] f->flush_seq is ct->seq when the last flush started; a flush
 *       started at flush_seq makes every commit <= flush_seq durable.
 *  [S3] Every request is answered exactly once (or dropped when its
 *       connection has closed): directly, from wait_run/wait_next after a
 *       flush, from maint_wait after a job, or after being parked.
 *  [S4] A struct ss_conn lives while the connection is open or any
 *       pending answer or parked request refers to it (refs).
 *  [S5] Shutdown (finish) runs only when no job is in flight (works == 0),
 *       so no work-queue thread touches a container being closed.
 *  [S6] A container in its sticky error state (ct->err, or its SQLite
 *       index in ss_db.h's error state, which fg_check() turns into
 *       ct->err) answers every file request and job with that error, logged
 *       once (fg_failed), until the daemon is restarted and recovery
 *       replays the log.
 *  [S7] At most one SQLite WAL checkpoint per container at a time: the
 *       concurrent one (wal_running; the container is served meanwhile) or
 *       a parked job's (busy); a parked job asked for while the concurrent
 *       one runs parks the container at once and is queued when it ends
 *       (maint_deferred), since two checkpoints of one file exclude each
 *       other (SQLITE_BUSY).
 *  [S8] Followers (ss_fw.h): an SS_CHANGES with a wait (q->size ms, at
 *       most SS_CHANGES_WAIT_MAX_MS) that finds nothing past its since is
 *       parked in f->fw and run again after the next commit of the
 *       container (run_op notices ct->seq moved) or when its wait runs
 *       out (fw_timer), then answered like any SS_CHANGES.  Every
 *       SS_CHANGES records its since as the asking site's position.  A
 *       sync answer (COMMIT with SYNC, SYNC) of a file group whose
 *       sync_copies (from the mount table, ss_pull_sync_copies) is N > 1
 *       is answered once the local flush covers it AND N-1 other sites
 *       have positions >= the container's seq at its commit (a sync
 *       asked by this site's own replicator waits for the flush only);
 *       or, after
 *       SS_SYNC_COPIES_WAIT_MS, with EIO (docs/replication.md,
 *       "sync_copies").
 */
#include "ss_srv.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "ss_ct.h"
#include "ss_fw.h"
#include "ss_ops.h"
#include "ss_pull.h"
#include "ss_reg.h"
#include "ss_sess.h"

/* A client: a mount (its handshake client id) or a daemon (its site id). */
struct ss_client {
        struct ss_client *next;
        uint64_t id;                    /* client id, or site id if it named none */
        uint64_t site;
        unsigned nconns;
        uint64_t gone_us;               /* when nconns dropped to 0 */
};

struct ss_conn {
        struct lp_conn *lc;             /* NULL once closed */
        struct ss_client *cl;
        uint64_t site;
        uint64_t client;                /* cl->id */
        unsigned refs;                  /* [S4] */
};

/* An answer that waits for a flush or a maintenance job. */
struct pending {
        struct pending *next;
        struct ss_conn *c;
        uint64_t reqid;
        uint8_t *buf;                   /* the answer if all goes well (NULL: built later) */
        size_t len;
        uint64_t copies_seq;            /* [S8]: durable here, then on copies_need other holders */
        unsigned copies_need;
};

struct plist {
        struct pending *head, *tail;
};

struct parked {
        struct parked *next;
        struct ss_conn *c;
        uint64_t reqid;
        struct lp_fs_req q;
        size_t bytes;
};

enum maint_kind { M_WAL = 1, M_CKPT, M_ADMIN_CKPT, M_ADMIN_CLEAN };

struct ss_fg {
        struct ss_srv *srv;
        struct ss_ct *ct;
        uint32_t fg;
        /* flushing */
        uv_timer_t flush_timer;
        bool timer_armed;
        uv_work_t flush_work;
        bool flush_running;
        int flush_result;
        uint64_t flush_seq;             /* [S2] */
        struct plist wait_run, wait_next;
        /* maintenance */
        uv_work_t maint_work;
        bool busy;                      /* [S1] */
        enum maint_kind maint_kind;
        int maint_result;
        int maint_n;
        uint64_t maint_us;              /* parked since */
        struct pending *maint_wait;
        struct parked *park_head, *park_tail;
        size_t park_n, park_bytes;
        /* a delta checkpoint: runs without parking (ss_ct.h [C3]) */
        uv_work_t delta_work;
        bool delta_running;
        bool delta_full;                /* ... a compacted full one, then the cleaner */
        bool force_parked;              /* no chain to compact: the next full one parks */
        int delta_result;
        int delta_n;
        uint64_t delta_mark;
        /* SQLite's WAL checkpoint: runs without parking (ss_db.h) */
        uv_work_t wal_work;
        bool wal_running;
        bool maint_deferred;            /* busy, its job queued when wal_work ends */
        int wal_result;
        unsigned wal_copied;            /* by its last pass */
        uint64_t wal_tick_seq;          /* ct->seq at the last tick */
        uint64_t ckpt_mark;             /* log bytes written at the last checkpoint */
        uint64_t ckpt_seq;
        uint64_t ckpt_us;
        bool err_logged;
        /* followers of the change stream [S8] */
        struct ss_fw fw;
        uv_timer_t fw_timer;
        unsigned closing;               /* SS_FG_DROP: timers still to close before f is freed */
};

struct create_job {
        uv_work_t w;
        struct ss_srv *s;
        struct ss_conn *c;
        uint64_t reqid;
        uint32_t fg;
        char name[LP_FS_NAME_MAX + 1];
        struct ss_ct *ct;
        int r;
};

struct ss_srv {
        uv_loop_t *loop;
        struct ss_opts o;
        char *data_dir, *listen_host, *css_host, *css_port_file;
        struct lp_server *lp;
        uint16_t port;
        struct ss_fg **fgs;
        size_t nfgs;
        uint32_t creating[SS_MAX_FGS];
        size_t ncreating;
        uint32_t dropped[SS_MAX_FGS];   /* containers deleted since start (SS_FG_DROP) */
        size_t ndropped;
        struct ss_sessions sess;
        struct ss_client *clients;
        uv_timer_t tick;
        uv_async_t async;
        bool handles;                   /* tick and async initialised */
        struct ss_reg *reg;
        struct ss_pull *pull;           /* the replicator (ss_pull.h) */
        uv_async_t reg_async;           /* the replicator caught up: register */
        bool reg_handle;                /* reg_async initialised */
        unsigned works;                 /* [S5] */
        bool stopping, finished;
        int err;
};

static void handle_req(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q);
static void note_dropped(struct ss_srv *s, uint32_t fg, bool dropped);
static void maybe_finish(struct ss_srv *s);

/* ---- connections and answers ------------------------------------------------------- */

static void conn_unref(struct ss_conn *c)
{
        if (--c->refs == 0)
                free(c);
}

static const char *errname(int err)
{
        const char *n = strerrorname_np(err < 0 ? -err : err);

        return n ? n : "E?";
}

static void send_buf(struct ss_conn *c, uint64_t reqid, const uint8_t *buf, size_t len)
{
        int r;

        if (!c->lc)
                return;         /* the connection went away: nobody to tell */
        r = lp_server_reply(c->lc, reqid, LP_MSG_FS_RESP, buf, len);
        if (r < 0 && r != -ENOTCONN)
                cm_log(LOG_WARNING, "answer to site %llu (%s) not sent: %s", (unsigned long long)c->site,
                       lp_server_conn_peer(c->lc), strerror(-r));
}

static int encode(const struct lp_fs_resp *a, uint8_t **buf, size_t *len)
{
        int r = lp_fs_resp_encode(a, buf, len);

        if (r < 0) {
                struct lp_fs_resp e = { .status = -EIO, .message = "EIO: answer could not be encoded" };

                cm_log(LOG_ERR, "encoding an answer failed: %s", strerror(-r));
                r = lp_fs_resp_encode(&e, buf, len);
        }
        return r;
}

static void send_resp(struct ss_conn *c, uint64_t reqid, const struct lp_fs_resp *a)
{
        uint8_t *buf;
        size_t len;

        if (!c->lc)
                return;
        if (encode(a, &buf, &len) < 0)
                return;
        send_buf(c, reqid, buf, len);
        free(buf);
}

static void send_status(struct ss_conn *c, uint64_t reqid, int status, const char *why)
{
        struct lp_fs_resp a = { .status = status };
        char msg[300];

        if (status < 0) {
                snprintf(msg, sizeof(msg), "%s: %s", errname(status), why ? why : strerror(-status));
                a.message = msg;
        }
        send_resp(c, reqid, &a);
}

static struct pending *pending_new(struct ss_conn *c, uint64_t reqid, uint8_t *buf, size_t len)
{
        struct pending *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->c = c;
        c->refs++;
        p->reqid = reqid;
        p->buf = buf;
        p->len = len;
        return p;
}

/* Answer p: its buffer if status is 0, else the error; then free it. */
static void pending_done(struct pending *p, int status, const char *why)
{
        if (status < 0 || !p->buf)
                send_status(p->c, p->reqid, status, why);
        else
                send_buf(p->c, p->reqid, p->buf, p->len);
        conn_unref(p->c);
        free(p->buf);
        free(p);
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

static void plist_done(struct plist *l, int status, const char *why)
{
        struct pending *p = l->head, *n;

        l->head = l->tail = NULL;
        for (; p; p = n) {
                n = p->next;
                pending_done(p, status, why);
        }
}

/* ---- lookups ------------------------------------------------------------------------ */

static struct ss_fg *find_fg(struct ss_srv *s, uint32_t fg)
{
        for (size_t i = 0; i < s->nfgs; i++)
                if (s->fgs[i]->fg == fg)
                        return s->fgs[i];
        return NULL;
}

static struct ss_fg *fg_of_ct(struct ss_srv *s, const struct ss_ct *ct)
{
        for (size_t i = 0; i < s->nfgs; i++)
                if (s->fgs[i]->ct == ct)
                        return s->fgs[i];
        return NULL;
}

static char *fgs_json(struct ss_srv *s)
{
        size_t cap = 16 + s->nfgs * 12, n = 0;
        char *j = malloc(cap);

        if (!j)
                return NULL;
        j[n++] = '[';
        for (size_t i = 0; i < s->nfgs; i++)
                n += (size_t)snprintf(j + n, cap - n, "%s%u", i ? "," : "", s->fgs[i]->fg);
        j[n++] = ']';
        j[n] = 0;
        return j;
}

static void fgs_changed(struct ss_srv *s)
{
        char *j;

        if (!s->reg)
                return;
        j = fgs_json(s);
        if (j)
                ss_reg_set_fgs(s->reg, j);
        free(j);
}

/* ---- flushing ----------------------------------------------------------------------- */

static void flush_work_cb(uv_work_t *w)
{
        struct ss_fg *f = w->data;

        f->flush_result = ss_ct_sync(f->ct);
}

static void fg_failed(struct ss_fg *f, int r, const char *what)
{
        if (!f->ct->err)
                f->ct->err = r;
        if (!f->srv->err)
                f->srv->err = r;
        if (!f->err_logged)
                cm_log(LOG_ERR, "fg %u (%s): %s failed: %s; the container refuses requests until the storage "
                       "site is restarted", f->fg, f->ct->dir, what, strerror(-r));
        f->err_logged = true;
}

/* [S6]: the error state of f, entering it if its SQLite index failed. */
static int fg_check(struct ss_fg *f)
{
        const char *cause;

        if (!f->ct->err && ss_db_error(f->ct->db, &cause) < 0)
                fg_failed(f, -EIO, cause);
        return f->ct->err;
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
         * the log by at most one flush interval. */
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
                plist_done(&f->wait_run, -EIO, "the flush could not be started");
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
static void fg_dirty(struct ss_fg *f)
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
                fg_failed(f, r, "flushing the log");
                plist_done(&f->wait_run, r, "flushing the log failed");
                plist_done(&f->wait_next, r, "flushing the log failed");
        } else {
                plist_durable(f, &f->wait_run);
        }
        if (s->stopping) {
                plist_done(&f->wait_next, -EIO, "shutting down");
                maybe_finish(s);
                return;
        }
        if (f->ct->seq > f->flush_seq && !f->ct->err) {
                if (f->wait_next.head)
                        start_flush(f);
                else
                        fg_dirty(f);
        }
}

/* p must be answered once everything committed so far is durable. */
static void add_sync_waiter(struct ss_fg *f, struct pending *p)
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

/* ---- maintenance --------------------------------------------------------------------- */

static uint64_t log_written(struct ss_ct *ct)
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
                handle_req(s, p->c, p->reqid, &p->q);
                conn_unref(p->c);
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
                        fg_failed(f, se, maint_name(f->maint_kind));
                else if (fg_check(f) >= 0)
                        cm_log(LOG_ERR, "fg %u (%s): %s failed: %s", f->fg, f->ct->dir,
                               maint_name(f->maint_kind), strerror(-r));
        } else {
                if (f->maint_kind != M_WAL && f->maint_kind != M_ADMIN_CLEAN) {
                        f->ckpt_mark = log_written(f->ct);
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

                        send_resp(p->c, p->reqid, &a);
                        conn_unref(p->c);
                        free(p->buf);
                        free(p);
                } else {
                        pending_done(p, r, maint_name(f->maint_kind));
                }
        }
        if (s->stopping) {
                maybe_finish(s);
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

static int start_maint(struct ss_fg *f, enum maint_kind kind, struct pending *waiter)
{
        int r;

        if (fg_check(f) < 0)
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

static void wal_work_cb(uv_work_t *w)
{
        struct ss_fg *f = w->data;

        f->wal_copied = 0;
        f->wal_result = ss_ct_wal_checkpoint_passive(f->ct, &f->wal_copied);
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
        if (r < 0 && r != -EAGAIN) {
                int se = ss_ct_store_error(f->ct);

                if (se < 0)
                        fg_failed(f, se, maint_name(M_WAL));
                else if (fg_check(f) >= 0)
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
                                pending_done(f->maint_wait, -EIO, "cannot start the job");
                                f->maint_wait = NULL;
                        }
                        unpark(f);
                }
                return;
        }
        if (s->stopping) {
                maybe_finish(s);
                return;
        }
        /* Once the WAL holds SS_WAL_LIMIT rounds, the frames committed
         * while the passes ran are copied with the container parked (that
         * copy, the log's flush and three small fsyncs: a few ms on an idle
         * disk), so that the next write restarts the WAL from its start:
         * commits that never pause would keep it growing. */
        if (r >= 0 && f->wal_copied <= SS_CT_WAL_LEFT && ss_db_wal_unckpt(f->ct->db) > 0 &&
            ss_db_wal_frames(f->ct->db) >= (uint64_t)s->o.wal_frames * SS_WAL_LIMIT)
                (void)start_maint(f, M_WAL, NULL);
}

/* SQLite's WAL checkpoint [S7]: concurrent passes, on the work queue,
 * when wal_frames frames were committed since the last one, or (idle) when
 * the container had no commit since the last tick and frames are left to
 * copy, so that the next write restarts the WAL; parked at once only when
 * the WAL has grown past twice SS_WAL_LIMIT rounds (the passes never
 * caught up with the commits). */
static void maybe_wal(struct ss_fg *f, bool idle)
{
        struct ss_srv *s = f->srv;
        unsigned left;
        int r;

        if (f->wal_running || f->busy || s->stopping || f->ct->err)
                return;
        left = ss_db_wal_unckpt(f->ct->db);
        if (left < s->o.wal_frames && !(idle && left > 0))
                return;
        if (ss_db_wal_frames(f->ct->db) >= (uint64_t)s->o.wal_frames * SS_WAL_LIMIT * 2) {
                (void)start_maint(f, M_WAL, NULL);
                return;
        }
        f->wal_work.data = f;
        r = uv_queue_work(s->loop, &f->wal_work, wal_work_cb, wal_after_cb);
        if (r < 0) {
                cm_log(LOG_ERR, "fg %u: cannot queue %s: %s", f->fg, maint_name(M_WAL), uv_strerror(r));
                return;
        }
        f->wal_running = true;
        s->works++;
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
                        fg_failed(f, se, "delta checkpoint");
                else
                        cm_log(LOG_ERR, "fg %u (%s): delta checkpoint failed: %s", f->fg, f->ct->dir,
                               strerror(-r));
        }
        if (s->stopping)
                maybe_finish(s);
}

/* A delta checkpoint, or (full) a full checkpoint built from the log and
 * a cleaner pass, on the work queue; the container keeps being served (no
 * parking: they touch only dsmcore, which holds commits back just for its
 * snapshots, and a private SQLite database). */
static void start_delta(struct ss_fg *f, bool full)
{
        int r;

        f->delta_full = full;
        f->delta_mark = log_written(f->ct);
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

static void maybe_maint(struct ss_fg *f, uint64_t now)
{
        struct ss_opts *o = &f->srv->o;

        if (f->busy || f->delta_running || f->srv->stopping || f->ct->err)
                return;
        if (log_written(f->ct) - f->ckpt_mark >= o->ckpt_bytes ||
            (f->ct->seq > f->ckpt_seq && now - f->ckpt_us >= (uint64_t)o->ckpt_interval_ms * 1000u)) {
                struct dsm_stats st;

                dsm_get_stats(f->ct->store, &st);
                if (f->force_parked || st.checkpoint_seq == 0) {
                        /* No chain to build a full one from: read SQLite,
                         * parked (once in a container's life, normally). */
                        if (start_maint(f, M_CKPT, NULL) >= 0)
                                f->force_parked = false;
                } else {
                        start_delta(f, ss_ct_checkpoint_full_due(f->ct));
                }
        } else {
                maybe_wal(f, f->ct->seq == f->wal_tick_seq);
        }
        f->wal_tick_seq = f->ct->seq;
}

/* ---- requests ----------------------------------------------------------------------- */

static int log_level_of(int err)
{
        switch (-err) {
        case EIO:
        case ENOMEM:
        case EPROTO:
        case EBADMSG:
                return LOG_ERR;
        case EAGAIN:
        case ENOSPC:
        case ENFILE:
                return LOG_WARNING;
        case ESTALE:
                return LOG_INFO;
        default:
                return LOG_DEBUG;
        }
}

static void watch_cb(void *ctx, void *tag, int err);

static void run_op(struct ss_srv *s, struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        struct ss_opctx x = { 0 };
        struct lp_fs_resp a;
        uint64_t seq0 = f->ct->seq;
        uint8_t *buf = NULL;
        size_t len = 0;
        char msg[320];
        int r;

        assert(!f->busy);       /* [S1] */
        x.ct = f->ct;
        x.sess = &s->sess;
        x.client = c->client;
        x.data_dir = s->data_dir;
        x.space_reserve = s->o.space_reserve;
        x.pull = s->pull;               /* repairs of damaged pages (ss_pull.h [P9]) */
        r = ss_op_run(&x, q, &a);
        (void)fg_check(f);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "%s: %s", errname(r), x.msg[0] ? x.msg : strerror(-r));
                a.message = msg;
                cm_log(log_level_of(r), "fg %u ino %#llx: %s from site %llu: %s", f->fg,
                       (unsigned long long)x.ino, lp_fs_op_name(q->op), (unsigned long long)c->site, msg);
        }
        r = encode(&a, &buf, &len);
        ss_opctx_release(&x);
        if (f->ct->seq != seq0)
                fg_dirty(f);
        if (r >= 0) {
                if (x.sync && a.status == 0) {
                        struct pending *p = pending_new(c, reqid, buf, len);
                        /* This site's own replicator (ss_pull.h [P5]: this
                         * site's id and no client id; a mount of this site
                         * names a client id) needs only the local flush: its
                         * SYNC is what makes an install count as a copy. */
                        unsigned copies = c->client == s->o.site ? 1 : ss_pull_sync_copies(s->pull, f->fg);

                        if (p && copies > 1) {
                                p->copies_seq = f->ct->seq;
                                p->copies_need = copies - 1;
                        }
                        if (p)
                                add_sync_waiter(f, p);
                        else {
                                free(buf);
                                send_status(c, reqid, -ENOMEM, "out of memory");
                        }
                } else {
                        send_buf(c, reqid, buf, len);
                        free(buf);
                }
        }
        lp_fs_req_release(q);
        if (f->ct->seq != seq0)
                ss_fw_committed(&f->fw, f->ct->seq, watch_cb, f);       /* [S8] */
        maybe_wal(f, false);
}

static void park(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        size_t bytes = sizeof(struct parked) + q->datalen + q->namelen + q->newnamelen + 512;
        struct parked *p;

        if (f->park_n >= SS_PARK_MAX || f->park_bytes + bytes > SS_PARK_BYTES ||
            !(p = calloc(1, sizeof(*p)))) {
                cm_log(LOG_WARNING, "fg %u: %s from site %llu refused: %zu requests wait for maintenance",
                       f->fg, lp_fs_op_name(q->op), (unsigned long long)c->site, f->park_n);
                send_status(c, reqid, -EAGAIN, "the container is busy with maintenance; retry");
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
static void watch_cb(void *ctx, void *tag, int err)
{
        struct ss_fg *f = ctx;
        struct parked *p = tag;

        if (err == -EHOSTUNREACH) {
                send_status(p->c, p->reqid, err, "the storage site is shutting down");
                lp_fs_req_release(&p->q);
        } else if (f->busy) {
                park(f, p->c, p->reqid, &p->q);
        } else {
                p->q.size = 0;          /* answered as it is now */
                run_op(f->srv, f, p->c, p->reqid, &p->q);
        }
        conn_unref(p->c);
        free(p);
}

/* A sync answer leaves its copy wait. */
static void copy_cb(void *ctx, void *tag, int err)
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
                pending_done(p, -EIO, why);
        } else {
                pending_done(p, err, err ? "shutting down" : NULL);
        }
}

static void durable(struct ss_fg *f, struct pending *p)
{
        int r;

        if (!p->copies_need) {
                pending_done(p, 0, NULL);
                return;
        }
        r = ss_fw_wait_copies(&f->fw, p->copies_seq, p->copies_need,
                              cm_now_us() + (uint64_t)SS_SYNC_COPIES_WAIT_MS * 1000u, p);
        if (r == 1)
                pending_done(p, 0, NULL);
        else if (r < 0)
                pending_done(p, r, "too many answers wait for copies");
        else
                fw_arm(f);
}

static void fw_timer_cb(uv_timer_t *t)
{
        struct ss_fg *f = t->data;

        ss_fw_expire(&f->fw, cm_now_us(), watch_cb, copy_cb, f);
        fw_arm(f);
}

/* SS_CHANGES [S8]: record the asker's position; park it if it waits and
 * there is nothing past its since.  true if it was taken over. */
static bool changes_follow(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        uint64_t now = cm_now_us(), wait = q->size < SS_CHANGES_WAIT_MAX_MS ? q->size : SS_CHANGES_WAIT_MAX_MS;
        struct parked *p;

        if (c->site)
                ss_fw_ack(&f->fw, c->site, q->offset, now, copy_cb, f);
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

static void json_str(FILE *m, const char *v)
{
        fputc('"', m);
        for (; *v; v++) {
                unsigned char ch = (unsigned char)*v;

                if (ch == '"' || ch == '\\')
                        fprintf(m, "\\%c", ch);
                else if (ch < 0x20)
                        fprintf(m, "\\u%04x", ch);
                else
                        fputc(ch, m);
        }
        fputc('"', m);
}

static void op_status(struct ss_srv *s, struct ss_conn *c, uint64_t reqid)
{
        struct lp_fs_resp a = { 0 };
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);

        if (!m) {
                send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        fprintf(m, "{\"site\":%llu,\"port\":%u,\"data\":", (unsigned long long)s->o.site, s->port);
        json_str(m, s->data_dir);
        fprintf(m, ",\"sessions\":%u,\"max_sessions\":%u,\"registrations\":%llu,\"containers\":[",
                s->sess.n, s->sess.max, (unsigned long long)(s->reg ? ss_reg_count(s->reg) : 0));
        for (size_t i = 0; i < s->nfgs; i++) {
                struct ss_fg *f = s->fgs[i];
                struct dsm_stats st;
                const char *cause;
                unsigned ns = 0;

                for (struct ss_sess *x = s->sess.head; x; x = x->next)
                        ns += x->ct == f->ct;
                fprintf(m, "%s{\"fg\":%u,\"dir\":", i ? "," : "", f->fg);
                json_str(m, f->ct->dir);
                fprintf(m, ",\"container\":%llu,\"busy\":%s,\"error\":%d,\"sessions\":%u,\"parked\":%zu,"
                        "\"watchers\":%u,\"copy_waits\":%u",
                        (unsigned long long)f->ct->container, f->busy ? "true" : "false", f->ct->err, ns,
                        f->park_n, f->fw.nwatch, f->fw.ncopy);
                if (f->ct->err && ss_db_error(f->ct->db, &cause) < 0) {
                        fputs(",\"index_error\":", m);
                        json_str(m, cause);
                }
                if (!f->busy) {
                        /* [S1]: dsm_get_stats waits for the index lock a job holds. */
                        dsm_get_stats(f->ct->store, &st);
                        fprintf(m, ",\"seq\":%llu,\"applied_seq\":%llu,\"inodes\":%llu,\"next_ino\":%llu,"
                                "\"checkpoint_seq\":%llu,\"segments\":%llu,\"segment_size\":%llu,"
                                "\"log_bytes\":%llu,\"live_bytes\":%llu,\"data_bytes_written\":%llu,"
                                "\"meta_bytes_written\":%llu,\"payload_bytes_written\":%llu,"
                                "\"index_extents\":%llu,\"commits\":%llu,\"flushes\":%llu,"
                                "\"damaged_extents\":%llu,\"recovery_bytes\":%llu,\"wal_frames\":%u,"
                                "\"checkpoints\":%llu,\"delta_checkpoints\":%llu,\"checkpoint_chain\":%llu,"
                                "\"checkpoint_hold_max_us\":%llu",
                                (unsigned long long)st.seq, (unsigned long long)f->ct->seq,
                                (unsigned long long)f->ct->ninodes, (unsigned long long)f->ct->next_ino,
                                (unsigned long long)st.checkpoint_seq, (unsigned long long)st.segments,
                                (unsigned long long)st.segment_size, (unsigned long long)st.log_bytes,
                                (unsigned long long)st.live_bytes, (unsigned long long)st.data_bytes_written,
                                (unsigned long long)st.meta_bytes_written,
                                (unsigned long long)st.payload_bytes_written,
                                (unsigned long long)st.index_extents, (unsigned long long)st.commits,
                                (unsigned long long)st.flushes, (unsigned long long)st.damaged_extents,
                                (unsigned long long)st.recovery_bytes, ss_db_wal_frames(f->ct->db),
                                (unsigned long long)st.checkpoints, (unsigned long long)st.delta_checkpoints,
                                (unsigned long long)st.checkpoint_chain,
                                (unsigned long long)st.checkpoint_hold_max_us);
                }
                fputc('}', m);
        }
        fputs("],\"pulls\":", m);
        ss_pull_status_json(s->pull, m);
        fputc('}', m);
        if (fclose(m) != 0 || !text) {
                free(text);
                send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        a.site = s->o.site;
        a.text = text;
        send_resp(c, reqid, &a);
        free(text);
}

/* SS_ORPHANS: the container's orphans (nlink 0), at most q->length (1..SS_ORPHANS_MAX),
 * as a JSON array of inode numbers; eof when that is all of them. */
static void op_orphans(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        unsigned max = q->length && q->length < SS_ORPHANS_MAX ? (unsigned)q->length : SS_ORPHANS_MAX;
        struct lp_fs_resp a = { 0 };
        uint64_t *inos = calloc(max + 1, sizeof(*inos));
        char *text = NULL;
        size_t n = 0, len = 0;
        FILE *m;
        int r;

        if (!inos) {
                send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        r = ss_db_orphans(f->ct->db, max + 1, inos, &n);
        if (r < 0) {
                free(inos);
                send_status(c, reqid, r, "listing the orphans failed");
                return;
        }
        m = open_memstream(&text, &len);
        if (!m) {
                free(inos);
                send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        fputc('[', m);
        for (size_t i = 0; i < n && i < max; i++)
                fprintf(m, "%s%llu", i ? "," : "", (unsigned long long)inos[i]);
        fputc(']', m);
        free(inos);
        if (fclose(m) != 0 || !text) {
                free(text);
                send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        a.text = text;
        a.eof = n <= max;
        send_resp(c, reqid, &a);
        free(text);
}

static void create_work_cb(uv_work_t *w)
{
        struct create_job *j = w->data;
        struct ss_ct_opts co = { .segment_size = j->s->o.segment_size };

        j->r = ss_ct_create(j->s->data_dir, j->fg, j->s->o.site, &co, &j->ct);
}

static int add_fg(struct ss_srv *s, struct ss_ct *ct);

static void create_after_cb(uv_work_t *w, int status)
{
        struct create_job *j = w->data;
        struct ss_srv *s = j->s;
        int r = status < 0 ? -EIO : j->r;

        s->works--;
        for (size_t i = 0; i < s->ncreating; i++)
                if (s->creating[i] == j->fg) {
                        s->creating[i] = s->creating[--s->ncreating];
                        break;
                }
        if (r >= 0) {
                r = add_fg(s, j->ct);
                if (r < 0)
                        ss_ct_close(j->ct);
        }
        if (r < 0) {
                cm_log(LOG_ERR, "creating the container of file group %u '%s' in %s failed: %s", j->fg, j->name,
                       s->data_dir, strerror(-r));
                send_status(j->c, j->reqid, r, "creating the container failed");
        } else {
                cm_log(LOG_INFO, "created the container of file group %u '%s'", j->fg, j->name);
                note_dropped(s, j->fg, false);
                ss_pull_forget_fg(s->pull, j->fg);
                send_status(j->c, j->reqid, 0, NULL);
                fgs_changed(s);
        }
        conn_unref(j->c);
        free(j);
        maybe_finish(s);
}

static void op_fg_create(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        struct create_job *j;
        int r;

        if (q->fg == 0) {
                send_status(c, reqid, -EINVAL, "file group id 0");
                return;
        }
        if (find_fg(s, q->fg)) {
                send_status(c, reqid, -EEXIST, "this site holds that file group already");
                return;
        }
        for (size_t i = 0; i < s->ncreating; i++)
                if (s->creating[i] == q->fg) {
                        send_status(c, reqid, -EEXIST, "that file group is being created");
                        return;
                }
        if (s->nfgs + s->ncreating >= SS_MAX_FGS) {
                send_status(c, reqid, -ENOSPC, "this site holds the most file groups it can");
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        j->s = s;
        j->c = c;
        c->refs++;
        j->reqid = reqid;
        j->fg = q->fg;
        for (size_t i = 0; i < q->namelen && i < LP_FS_NAME_MAX; i++)   /* for logs only */
                j->name[i] = (q->name[i] >= 0x20 && q->name[i] < 0x7f) ? (char)q->name[i] : '?';
        j->w.data = j;
        r = uv_queue_work(s->loop, &j->w, create_work_cb, create_after_cb);
        if (r < 0) {
                conn_unref(c);
                free(j);
                send_status(c, reqid, -EIO, "cannot queue the creation");
                return;
        }
        s->creating[s->ncreating++] = q->fg;
        s->works++;
}

static bool was_dropped(const struct ss_srv *s, uint32_t fg)
{
        for (size_t i = 0; i < s->ndropped; i++)
                if (s->dropped[i] == fg)
                        return true;
        return false;
}

static void note_dropped(struct ss_srv *s, uint32_t fg, bool dropped)
{
        for (size_t i = 0; i < s->ndropped; i++)
                if (s->dropped[i] == fg) {
                        if (!dropped)
                                s->dropped[i] = s->dropped[--s->ndropped];
                        return;
                }
        if (dropped && s->ndropped < SS_MAX_FGS)
                s->dropped[s->ndropped++] = fg;
}

/* Both timers of a dropped container are closed; the second frees it. */
static void fg_free_cb(uv_handle_t *h)
{
        struct ss_fg *f = h->data;

        if (--f->closing == 0)
                free(f);
}

/*
 * SS_FG_DROP: delete this site's container of fg (locusctl replicas
 * remove, once the CSS no longer lists this site as a holder: nothing
 * reads this copy any more).  Its sessions are aborted, it is closed and
 * forgotten, then its folder is renamed away and removed (ss_ct_destroy);
 * the CSS learns the new list at the next registration.  Idempotent: with
 * no container (dropped already, or the deletion was interrupted) it only
 * removes what is left and answers 0; `value` is 1 when a container was
 * deleted.  -EBUSY while a flush or maintenance job runs on it (the tool
 * tries again).
 */
static void op_fg_drop(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        struct lp_fs_resp a = { .status = 0 };
        struct ss_fg *f = find_fg(s, q->fg);
        unsigned nsess = 0;
        int r;

        if (q->fg == 0) {
                send_status(c, reqid, -EINVAL, "file group id 0");
                return;
        }
        if (s->stopping) {
                send_status(c, reqid, -EHOSTUNREACH, "the storage site is shutting down");
                return;
        }
        for (size_t i = 0; i < s->ncreating; i++)
                if (s->creating[i] == q->fg) {
                        send_status(c, reqid, -EBUSY, "that file group is being created");
                        return;
                }
        if (f && (f->busy || f->flush_running || f->delta_running || f->wal_running || f->park_head)) {
                send_status(c, reqid, -EBUSY, "the container is busy (a flush or maintenance job); try again");
                return;
        }
        if (f) {
                size_t i = 0;

                nsess = ss_sessions_end_ct(&s->sess, f->ct);
                plist_done(&f->wait_run, -ESTALE, "the container was deleted");
                plist_done(&f->wait_next, -ESTALE, "the container was deleted");
                /* Its parked SS_CHANGES and fsyncs waiting for copies [S8]
                 * end now: they point at f, which goes below. */
                ss_fw_clear(&f->fw, -EHOSTUNREACH, watch_cb, copy_cb, f);
                uv_timer_stop(&f->fw_timer);
                uv_timer_stop(&f->flush_timer);
                f->timer_armed = false;
                while (s->fgs[i] != f)
                        i++;
                memmove(&s->fgs[i], &s->fgs[i + 1], (s->nfgs - i - 1) * sizeof(*s->fgs));
                s->nfgs--;
                ss_ct_close(f->ct);
                f->ct = NULL;
                f->closing = 2;
                uv_close((uv_handle_t *)&f->fw_timer, fg_free_cb);
                uv_close((uv_handle_t *)&f->flush_timer, fg_free_cb);   /* the second frees f */
                fgs_changed(s);
        }
        if (f)
                note_dropped(s, q->fg, true);
        ss_pull_forget_fg(s->pull, q->fg);     /* its watermarks went with it (ss_pull.h [P8]) */
        r = ss_ct_destroy(s->data_dir, q->fg);
        if (r < 0) {
                cm_log(LOG_ERR, "fg %u: deleting the container's folder in %s failed: %s", q->fg, s->data_dir,
                       strerror(-r));
                send_status(c, reqid, r, "deleting the container's folder failed");
                return;
        }
        if (f || r > 0)
                cm_log(LOG_INFO, "deleted the container of file group %u (for site %llu; %u session(s) aborted)",
                       q->fg, (unsigned long long)c->site, nsess);
        a.value = f || r > 0;
        send_resp(c, reqid, &a);
}

/* The container a request names, ready to serve it.  Answers the request
 * itself and returns NULL when this site holds no such container or the
 * container is in its error state [C5]; parks the request (taking over q)
 * and returns FG_PARKED while the container is busy. */
#define FG_PARKED ((struct ss_fg *)-1)
static struct ss_fg *ready_fg(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        struct ss_fg *f = find_fg(s, q->fg);

        if (!f && was_dropped(s, q->fg)) {
                /* "Unavailable", not "stale": the copy moved (replicas
                 * remove), nothing was done, and a mount asks the CSS for
                 * the current primary and again (docs/replication.md). */
                send_status(c, reqid, -EHOSTUNREACH, "this site's copy of that file group was removed: ask the "
                            "CSS for its holders");
                return NULL;
        }
        if (!f) {
                char why[96];

                snprintf(why, sizeof(why), "this site holds no container of file group %u", q->fg);
                cm_log(LOG_INFO, "fg %u: %s from site %llu: %s", q->fg, lp_fs_op_name(q->op),
                       (unsigned long long)c->site, why);
                send_status(c, reqid, -ESTALE, why);
                return NULL;
        }
        if (f->busy) {
                park(f, c, reqid, q);
                return FG_PARKED;
        }
        if (fg_check(f) < 0) {
                send_status(c, reqid, f->ct->err, "the container is in an error state (see the "
                            "storage site's log); restart the storage site to recover it");
                return NULL;
        }
        return f;
}

/* Handle one decoded request; takes over q. */
static void handle_req(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        struct ss_fg *f = NULL;

        switch (q->op) {
        case LP_FS_NOP:
                send_status(c, reqid, 0, NULL);
                break;
        case LP_FS_SS_STATUS:
                op_status(s, c, reqid);
                break;
        case LP_FS_SS_FG_CREATE:
                op_fg_create(s, c, reqid, q);
                break;
        case LP_FS_SS_FG_DROP:
                op_fg_drop(s, c, reqid, q);
                break;
        case LP_FS_SS_ORPHANS:
                f = ready_fg(s, c, reqid, q);
                if (f == FG_PARKED)
                        return;
                if (f)
                        op_orphans(f, c, reqid, q);
                break;
        case LP_FS_SS_CHECKPOINT:
        case LP_FS_SS_CLEAN:
                f = ready_fg(s, c, reqid, q);
                if (f == FG_PARKED)
                        return;
                if (f) {
                        struct pending *p = pending_new(c, reqid, NULL, 0);

                        if (!p)
                                send_status(c, reqid, -ENOMEM, "out of memory");
                        else if (start_maint(f, q->op == LP_FS_SS_CHECKPOINT ? M_ADMIN_CKPT : M_ADMIN_CLEAN, p) < 0)
                                pending_done(p, -EIO, "cannot start the job");
                }
                break;
        default:
                if (!ss_op_is_file_op(q->op)) {
                        send_status(c, reqid, -EOPNOTSUPP, "operation not served by a storage site");
                        break;
                }
                f = ready_fg(s, c, reqid, q);
                if (f == FG_PARKED)
                        return;
                if (!f)
                        break;
                if (q->op == LP_FS_SS_CHANGES && changes_follow(f, c, reqid, q))
                        return;
                run_op(s, f, c, reqid, q);
                return;
        }
        lp_fs_req_release(q);
}

/* ---- lp_server callbacks ------------------------------------------------------------- */

static void on_connect(struct lp_conn *conn, uint64_t site)
{
        struct ss_srv *s = lp_server_get_data(lp_server_conn_server(conn));
        struct ss_conn *c = calloc(1, sizeof(*c));
        uint64_t id = lp_server_conn_client(conn) ? lp_server_conn_client(conn) : site;
        struct ss_client *cl;

        if (!c) {
                cm_log(LOG_ERR, "out of memory accepting site %llu", (unsigned long long)site);
                lp_server_conn_close(conn);
                return;
        }
        for (cl = s->clients; cl && cl->id != id; cl = cl->next)
                ;
        if (!cl) {
                cl = calloc(1, sizeof(*cl));
                if (!cl) {
                        free(c);
                        lp_server_conn_close(conn);
                        return;
                }
                cl->id = id;
                cl->site = site;
                cl->next = s->clients;
                s->clients = cl;
        }
        cl->nconns++;
        c->lc = conn;
        c->cl = cl;
        c->site = site;
        c->client = id;
        c->refs = 1;
        lp_server_conn_set_data(conn, c);
        cm_log(LOG_DEBUG, "site %llu connected from %s", (unsigned long long)site, lp_server_conn_peer(conn));
}

static void on_close(struct lp_conn *conn)
{
        struct ss_conn *c = lp_server_conn_get_data(conn);

        if (!c)
                return;
        c->lc = NULL;
        if (c->cl && --c->cl->nconns == 0)
                c->cl->gone_us = cm_now_us();
        conn_unref(c);
}

static void on_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                     size_t len)
{
        struct ss_srv *s = lp_server_get_data(lp_server_conn_server(conn));
        struct ss_conn *c = lp_server_conn_get_data(conn);
        struct lp_fs_req q;
        int r;

        if (!c || (flags & LP_F_REPLY))
                return;         /* we send no requests: a stray reply */
        if (type != LP_MSG_FS_REQ) {
                cm_log(LOG_WARNING, "site %llu (%s) sent message type %u: refused", (unsigned long long)c->site,
                       lp_server_conn_peer(conn), type);
                lp_server_reply_status(conn, reqid, LP_STATUS_PROTOCOL, "a storage site serves LP_MSG_FS_REQ");
                return;
        }
        r = lp_fs_req_decode(payload, len, &q);
        if (r < 0) {
                cm_log(r == -ENAMETOOLONG ? LOG_DEBUG : LOG_WARNING, "site %llu (%s): malformed request: %s",
                       (unsigned long long)c->site, lp_server_conn_peer(conn), strerror(-r));
                send_status(c, reqid, r == -ENAMETOOLONG ? r : (r == -ENOMEM ? r : -EBADMSG),
                            r == -ENAMETOOLONG ? "a name is longer than 255 bytes" : "request does not parse");
                return;
        }
        if (s->stopping) {
                send_status(c, reqid, -EHOSTUNREACH, "the storage site is shutting down");
                lp_fs_req_release(&q);
                return;
        }
        handle_req(s, c, reqid, &q);
}

static void on_log(struct lp_server *srv, int prio, const char *peer, const char *msg)
{
        (void)srv;
        cm_log(prio, "%s: %s", peer, msg);
}

/* ---- timers --------------------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
        struct ss_srv *s = t->data;
        uint64_t now = cm_now_us();
        struct ss_client **pp = &s->clients;
        struct ss_sess *x, *next;

        /* Clients that have had no connection for the lease. */
        while (*pp) {
                struct ss_client *cl = *pp;
                unsigned n = 0;

                if (cl->nconns || now - cl->gone_us < (uint64_t)s->o.client_grace_ms * 1000u) {
                        pp = &cl->next;
                        continue;
                }
                for (x = s->sess.head; x; x = x->next)
                        if (x->client == cl->id && !x->doomed) {
                                x->doomed = true;
                                n++;
                        }
                if (n)
                        cm_log(LOG_NOTICE, "client %016llx (site %llu) has had no connection for the lease "
                               "(%u ms): aborting its %u write session(s), nothing of them committed",
                               (unsigned long long)cl->id, (unsigned long long)cl->site, s->o.client_grace_ms,
                               n);
                *pp = cl->next;
                free(cl);
        }
        for (x = s->sess.head; x; x = next) {
                struct ss_fg *f = fg_of_ct(s, x->ct);

                next = x->next;
                if (!x->doomed && now - x->last_used_us >= (uint64_t)s->o.idle_timeout_ms * 1000u) {
                        cm_log(LOG_NOTICE, "fg %u ino %#llx: write session %016llx of client %016llx unused for "
                               "%u ms: aborted", f ? f->fg : 0, (unsigned long long)x->ino, (unsigned long long)x->id,
                               (unsigned long long)x->client, s->o.idle_timeout_ms);
                        x->doomed = true;
                }
                if (x->doomed && (!f || !f->busy))
                        ss_sess_end(&s->sess, x);
        }
        for (size_t i = 0; i < s->nfgs; i++)
                maybe_maint(s->fgs[i], now);
}

static void async_cb(uv_async_t *a)
{
        ss_srv_stop(a->data);
}

/* ---- life cycle ------------------------------------------------------------------------- */

void ss_opts_default(struct ss_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->listen_host = "127.0.0.1";
        o->create_root = true;
        o->flush_interval_ms = 5;
        o->idle_timeout_ms = 600000;
        o->client_grace_ms = SS_LEASE_MS_DEFAULT;
        o->sweep_ms = 1000;
        o->max_sessions = 1024;
        o->ckpt_bytes = 64ull << 20;
        o->ckpt_interval_ms = 300000;
        o->wal_frames = 4096;
        o->clean_live_pct = 50;
        o->space_reserve = 64ull << 20;
        o->css_poll_ms = 1000;
}

static int add_fg(struct ss_srv *s, struct ss_ct *ct)
{
        struct ss_fg **v, *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        v = realloc(s->fgs, (s->nfgs + 1) * sizeof(*v));
        if (!v) {
                free(f);
                return -ENOMEM;
        }
        s->fgs = v;
        f->srv = s;
        f->ct = ct;
        f->fg = ct->fg;
        f->flush_seq = ct->seq;
        f->ckpt_mark = log_written(ct);
        f->ckpt_seq = ct->seq;
        f->ckpt_us = cm_now_us();
        uv_timer_init(s->loop, &f->flush_timer);
        f->flush_timer.data = f;
        ss_fw_init(&f->fw);
        uv_timer_init(s->loop, &f->fw_timer);
        f->fw_timer.data = f;
        /* keep them sorted by fg id */
        {
                size_t i = s->nfgs;

                while (i > 0 && s->fgs[i - 1]->fg > f->fg) {
                        s->fgs[i] = s->fgs[i - 1];
                        i--;
                }
                s->fgs[i] = f;
        }
        s->nfgs++;
        return 0;
}

static void drop_parked(struct ss_fg *f)
{
        while (f->park_head) {
                struct parked *p = f->park_head;

                f->park_head = p->next;
                send_status(p->c, p->reqid, -EHOSTUNREACH, "the storage site is shutting down");
                lp_fs_req_release(&p->q);
                conn_unref(p->c);
                free(p);
        }
        f->park_tail = NULL;
        f->park_n = 0;
        f->park_bytes = 0;
}

static void maybe_finish(struct ss_srv *s)
{
        if (!s->stopping || s->finished || s->works > 0)
                return;
        s->finished = true;
        for (size_t i = 0; i < s->nfgs; i++)
                assert(!s->fgs[i]->busy && !s->fgs[i]->flush_running);  /* [S5] */
        ss_sessions_clear(&s->sess);
        for (size_t i = 0; i < s->nfgs; i++) {
                struct ss_fg *f = s->fgs[i];

                drop_parked(f);
                plist_done(&f->wait_run, -EHOSTUNREACH, "shutting down");
                plist_done(&f->wait_next, -EHOSTUNREACH, "shutting down");
                ss_fw_clear(&f->fw, -EHOSTUNREACH, watch_cb, copy_cb, f);
                if (f->ct->err && !s->err)
                        s->err = f->ct->err;
                ss_ct_close(f->ct);
                f->ct = NULL;
                uv_close((uv_handle_t *)&f->flush_timer, NULL);
                uv_close((uv_handle_t *)&f->fw_timer, NULL);
        }
        if (s->handles) {
                uv_close((uv_handle_t *)&s->tick, NULL);
                uv_close((uv_handle_t *)&s->async, NULL);
        }
        if (s->reg_handle) {
                /* ss_srv_stop signalled the replicator: it sends no more
                 * (ss_pull.h); its threads are joined in ss_srv_free, when
                 * no call of theirs can wait for this loop. */
                uv_close((uv_handle_t *)&s->reg_async, NULL);
                s->reg_handle = false;
        }
        ss_reg_stop(s->reg);
        s->reg = NULL;
        cm_log(LOG_INFO, "storage site %llu stopped", (unsigned long long)s->o.site);
}

void ss_srv_stop(struct ss_srv *s)
{
        if (s->stopping)
                return;
        s->stopping = true;
        cm_log(LOG_INFO, "storage site %llu shutting down", (unsigned long long)s->o.site);
        ss_pull_signal(s->pull);
        if (s->lp) {
                lp_server_close(s->lp);
                s->lp = NULL;
        }
        if (s->handles)
                uv_timer_stop(&s->tick);
        for (size_t i = 0; i < s->nfgs; i++) {
                uv_timer_stop(&s->fgs[i]->flush_timer);
                uv_timer_stop(&s->fgs[i]->fw_timer);
                s->fgs[i]->timer_armed = false;
        }
        maybe_finish(s);
}

void ss_srv_stop_async(struct ss_srv *s)
{
        uv_async_send(&s->async);
}

int ss_srv_error(const struct ss_srv *s)
{
        return s->err;
}

uint16_t ss_srv_port(const struct ss_srv *s)
{
        return s->port;
}

void ss_srv_free(struct ss_srv *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->nfgs; i++) {
                ss_ct_close(s->fgs[i]->ct);
                free(s->fgs[i]);
        }
        free(s->fgs);
        while (s->clients) {
                struct ss_client *cl = s->clients;

                s->clients = cl->next;
                free(cl);
        }
        ss_reg_stop(s->reg);
        ss_pull_stop(s->pull);
        free(s->data_dir);
        free(s->listen_host);
        free(s->css_host);
        free(s->css_port_file);
        lp_key_wipe(s->o.key, sizeof(s->o.key));
        free(s);
}

/* Register with the CSS (ss_reg.h), from now on. */
static void start_reg(struct ss_srv *s)
{
        struct ss_reg_opts ro = { .site = s->o.site, .css_host = s->css_host, .css_port = s->o.css_port,
                                  .css_port_file = s->css_port_file, .host = s->listen_host,
                                  .port = s->port, .poll_ms = s->o.css_poll_ms };
        char *j;
        int r;

        if (s->reg || s->stopping)
                return;
        j = fgs_json(s);
        /* ro.host is what we listen on; for a wildcard address (0.0.0.0,
         * ::) the CSS takes the address we call from. */
        memcpy(ro.key, s->o.key, sizeof(ro.key));
        r = j ? ss_reg_start(&ro, j, &s->reg) : -ENOMEM;
        lp_key_wipe(ro.key, sizeof(ro.key));
        free(j);
        if (r < 0) {
                cm_log(LOG_ERR, "cannot start registering with the CSS: %s; stopping", strerror(-r));
                if (!s->err)
                        s->err = r;
                ss_srv_stop(s);
        }
}

static void reg_async_cb(uv_async_t *a)
{
        start_reg(a->data);
}

/* From a replicator thread [P4]. */
static void pull_current(void *ctx)
{
        struct ss_srv *s = ctx;

        uv_async_send(&s->reg_async);
}

/* The replicator: it learns the other holders from the CSS's mount table
 * and installs through this server (ss_pull.h). */
static int start_pull(struct ss_srv *s)
{
        struct ss_pull_opts po = { .site = s->o.site, .data_dir = s->data_dir, .self_host = s->listen_host,
                                   .self_port = s->port, .css_host = s->css_host, .css_port = s->o.css_port,
                                   .css_port_file = s->css_port_file, .on_current = pull_current, .ctx = s };
        int r;

        /* A wildcard listen address is reached on loopback. */
        if (!strcmp(s->listen_host, "0.0.0.0"))
                po.self_host = "127.0.0.1";
        else if (!strcmp(s->listen_host, "::"))
                po.self_host = "::1";
        memcpy(po.key, s->o.key, sizeof(po.key));
        r = ss_pull_start(&po, &s->pull);
        lp_key_wipe(po.key, sizeof(po.key));
        return r;
}

static char *dup_or_null(const char *p, bool *oom)
{
        char *d;

        if (!p)
                return NULL;
        d = strdup(p);
        if (!d)
                *oom = true;
        return d;
}

int ss_srv_new(uv_loop_t *loop, const struct ss_opts *o, struct ss_srv **ret)
{
        struct lp_server_callbacks cb = { .on_connect = on_connect, .on_frame = on_frame,
                                          .on_close = on_close, .log = on_log };
        struct ss_srv *s;
        uint32_t *fgs = NULL;
        size_t n = 0;
        bool oom = false;
        int r;

        *ret = NULL;
        if (!o->data_dir || o->site == 0 || o->site > SS_CONTAINER_MAX) {
                cm_log(LOG_ERR, "site id %llu: must be 1..%u (it names this site's inode pool)",
                       (unsigned long long)o->site, SS_CONTAINER_MAX);
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->o = *o;
        s->data_dir = dup_or_null(o->data_dir, &oom);
        s->listen_host = dup_or_null(o->listen_host ? o->listen_host : "127.0.0.1", &oom);
        s->css_host = dup_or_null(o->css_host, &oom);
        s->css_port_file = dup_or_null(o->css_port_file, &oom);
        if (oom) {
                r = -ENOMEM;
                goto fail;
        }
        s->o.data_dir = s->data_dir;
        s->o.listen_host = s->listen_host;
        s->o.css_host = s->css_host;
        s->o.css_port_file = s->css_port_file;
        ss_sessions_init(&s->sess, o->max_sessions);

        if (mkdir(s->data_dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                cm_log(LOG_ERR, "%s: cannot create the data directory: %s", s->data_dir, strerror(-r));
                goto fail;
        }
        r = ss_ct_list(s->data_dir, &fgs, &n);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: cannot list the data directory: %s", s->data_dir, strerror(-r));
                goto fail;
        }
        if (n == 0 && !o->create_root) {
                cm_log(LOG_NOTICE, "%s: no container yet: this site holds no file group until one is created "
                       "here (the root group: --create-root, given by locusctl when the cluster is made)",
                       s->data_dir);
        } else if (n == 0) {
                struct ss_ct_opts co = { .segment_size = o->segment_size };
                struct ss_ct *ct;

                cm_log(LOG_INFO, "%s: first start: creating the root file group (1)", s->data_dir);
                r = ss_ct_create(s->data_dir, 1, o->site, &co, &ct);
                if (r >= 0) {
                        r = add_fg(s, ct);
                        if (r < 0)
                                ss_ct_close(ct);
                }
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: cannot create file group 1: %s", s->data_dir, strerror(-r));
                        goto fail;
                }
        }
        if (n > SS_MAX_FGS) {
                cm_log(LOG_ERR, "%s: %zu containers, at most %u are supported", s->data_dir, n, SS_MAX_FGS);
                r = -EMFILE;
                goto fail;
        }
        for (size_t i = 0; i < n; i++) {
                struct ss_ct *ct;

                /* With a CSS, orphans wait for its decision (it asks for them
                 * when we register: SS_ORPHANS): a mount that outlived our
                 * restart may still hold them open. */
                r = ss_ct_open(s->data_dir, fgs[i], !(o->css_port || o->css_port_file), &ct);
                if (r >= 0) {
                        r = add_fg(s, ct);
                        if (r < 0)
                                ss_ct_close(ct);
                }
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: cannot open the container of file group %u: %s", s->data_dir, fgs[i],
                               strerror(-r));
                        goto fail;
                }
                cm_log(LOG_INFO, "fg %u: open at commit %llu, %llu inode(s)", fgs[i],
                       (unsigned long long)ct->seq, (unsigned long long)ct->ninodes);
        }
        free(fgs);
        fgs = NULL;

        r = lp_server_new(loop, o->key, o->site, &cb, s, &s->lp);
        if (r < 0)
                goto fail;
        r = lp_server_listen(s->lp, s->listen_host, o->listen_port, &s->port);
        if (r < 0) {
                cm_log(LOG_ERR, "cannot listen on %s:%u: %s", s->listen_host, o->listen_port, strerror(-r));
                lp_server_close(s->lp);
                s->lp = NULL;
                goto fail;
        }
        uv_timer_init(loop, &s->tick);
        s->tick.data = s;
        uv_async_init(loop, &s->async, async_cb);
        s->async.data = s;
        s->handles = true;
        uv_timer_start(&s->tick, tick_cb, o->sweep_ms, o->sweep_ms);
        if (o->css_port || o->css_port_file) {
                /* Register once the replicator has caught up with the other
                 * holders (ss_pull.h [P4]): start_reg() runs from reg_async. */
                uv_async_init(loop, &s->reg_async, reg_async_cb);
                s->reg_async.data = s;
                s->reg_handle = true;
                r = start_pull(s);
                if (r < 0) {
                        cm_log(LOG_ERR, "cannot start the replicator: %s", strerror(-r));
                        *ret = s;
                        ss_srv_stop(s);
                        return r;
                }
        }
        cm_log(LOG_INFO, "storage site %llu listening on %s:%u, %zu file group(s)", (unsigned long long)o->site,
               s->listen_host, s->port, s->nfgs);
        *ret = s;
        return 0;
fail:
        free(fgs);
        for (size_t i = 0; i < s->nfgs; i++) {
                ss_ct_close(s->fgs[i]->ct);
                s->fgs[i]->ct = NULL;
                uv_close((uv_handle_t *)&s->fgs[i]->flush_timer, NULL);
                uv_close((uv_handle_t *)&s->fgs[i]->fw_timer, NULL);
        }
        /* The flush timers must be closed by the loop: hand the server to
         * the caller, stopped, if any exist. */
        if (s->nfgs) {
                s->stopping = s->finished = true;
                *ret = s;
                return r;
        }
        ss_srv_free(s);
        return r;
}
