/*
 * ss_srv_int.h -- internal to the storage server (ss_srv.h): the structs
 * its four files share and the functions they call across.  Nothing but
 * ss_srv*.c includes it.
 *
 *   ss_srv.c        connections and answers, dispatch of requests, the
 *                   sweep (tick), the server's life cycle
 *   ss_srv_flush.c  durability: flushes, sync waiters, followers of the
 *                   change stream and copy waits [S2] [S8]
 *   ss_srv_maint.c  parking and maintenance: parked jobs, checkpoints,
 *                   deltas, SQLite WAL rounds [S1] [S7]
 *   ss_srv_fg.c     file-group lifecycle: lookups, SS_FG_CREATE,
 *                   SS_FG_DROP, SS_STATUS, SS_ORPHANS, adding a container
 *
 * Threads: everything on the loop thread, except the *_work_cb functions,
 * which run on the libuv work queue and touch only their own container
 * (f->ct, [S1], [S5]).
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
 *       other (SQLITE_BUSY).  During a restart pass (wal_hold: one
 *       concurrent pass with the index's batch kept, ss_ct.h [C7]) the
 *       flushes do not commit the batch, so the pass copies every frame
 *       committed and the batch, applied again on a fresh snapshot when
 *       the pass ends, restarts the WAL; anything else that commits the
 *       batch meanwhile (a parked job) only makes this restart not happen.
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
 *  [S9] Only the primary changes a file group (docs/replication.md, "Not
 *       the primary"): a mutation (ss_op_is_mutation) of a group whose
 *       last mount table (ss_pull_primary) names another site as its
 *       primary is refused with -EREMCHG before anything is done, so a
 *       mount with a stale table (a failover it has not heard of yet)
 *       asks the CSS again instead of making this copy diverge.  Before
 *       the first table, or with no registered primary, or without a
 *       CSS (no replicator), mutations are taken as before.
 */
#ifndef SS_SRV_INT_H
#define SS_SRV_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lp_fs.h"
#include "ss_ct.h"
#include "ss_fw.h"
#include "ss_srv.h"
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
        bool wal_hold;                  /* the restart pass [S7]: the batch is kept, not committed */
        bool wal_restart_armed;         /* one was arranged: the next commit restarts the WAL */
        uint64_t wal_parked;            /* parked WAL copies (SS_STATUS) */
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
        uint64_t cur_client;            /* the client of the request being run (commit notes) */
        struct ss_pull *pull;           /* the replicator (ss_pull.h) */
        uv_async_t reg_async;           /* the replicator caught up: register */
        bool reg_handle;                /* reg_async initialised */
        unsigned works;                 /* [S5] */
        bool stopping, finished;
        int err;
};

/* ss_srv.c: answers.  ss__srv_send_status: status 0, or the error with
 * why (NULL: strerror) as its message.  ss__srv_pending_done: p's buffer
 * if status is 0, else the error; frees p.  ss__srv_plist_done: the same
 * for every answer of l.  Each drops the connection reference it held. */
void ss__srv_conn_unref(struct ss_conn *c);
void ss__srv_send_resp(struct ss_conn *c, uint64_t reqid, const struct lp_fs_resp *a);
void ss__srv_send_status(struct ss_conn *c, uint64_t reqid, int status, const char *why);
void ss__srv_pending_done(struct pending *p, int status, const char *why);
void ss__srv_plist_done(struct plist *l, int status, const char *why);
/* ss_srv.c: the error state [S6].  ss__srv_fg_failed enters it (logged
 * once); ss__srv_fg_check returns ct->err, entering the state first if the
 * SQLite index failed. */
void ss__srv_fg_failed(struct ss_fg *f, int r, const char *what);
int ss__srv_fg_check(struct ss_fg *f);
/* ss_srv.c: requests.  Both take over q.  ss__srv_run_op: f is not busy
 * [S1]. */
void ss__srv_handle_req(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q);
void ss__srv_run_op(struct ss_srv *s, struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q);
/* ss_srv.c: the end of a shutdown, once no job is in flight [S5]. */
void ss__srv_maybe_finish(struct ss_srv *s);

/* ss_srv_flush.c: ss__srv_fg_dirty: something was committed, flush within
 * the interval.  ss__srv_add_sync_waiter: p is answered once everything
 * committed so far is durable (and on its copies [S8]).
 * ss__srv_watch_cb, ss__srv_copy_cb: the ss_fw.h callbacks of a parked
 * SS_CHANGES and of a copy wait (ctx is the ss_fg).
 * ss__srv_changes_follow: SS_CHANGES [S8]; true if it took over q. */
void ss__srv_fg_dirty(struct ss_fg *f);
void ss__srv_add_sync_waiter(struct ss_fg *f, struct pending *p);
void ss__srv_watch_cb(void *ctx, void *tag, int err);
void ss__srv_copy_cb(void *ctx, void *tag, int err);
bool ss__srv_changes_follow(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q);

/* ss_srv_maint.c: ss__srv_park: queue a request of a busy container
 * (takes over q; -EAGAIN answered past SS_PARK_MAX / SS_PARK_BYTES).
 * ss__srv_drop_parked: answer every parked request EHOSTUNREACH
 * (shutdown).  ss__srv_log_written: log bytes written so far.
 * ss__srv_start_maint: park f and run a job (waiter, may be NULL, is
 * answered when it ends); negative errno if it could not start.
 * ss__srv_maybe_wal, ss__srv_maybe_maint: start what is due [S7]. */
void ss__srv_park(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q);
void ss__srv_drop_parked(struct ss_fg *f);
uint64_t ss__srv_log_written(struct ss_ct *ct);
int ss__srv_start_maint(struct ss_fg *f, enum maint_kind kind, struct pending *waiter);
void ss__srv_maybe_wal(struct ss_fg *f, bool idle);
void ss__srv_maybe_maint(struct ss_fg *f, uint64_t now);

/* ss_srv_fg.c: ss__srv_find_fg: the container of fg, or NULL.
 * ss__srv_was_dropped: fg's container was deleted since start.
 * ss__srv_fgs_json: the ids held, a JSON array (malloc'd; NULL on ENOMEM).
 * ss__srv_add_fg: serve ct from now on (0, or -ENOMEM: ct stays the
 * caller's).  The ss__srv_op_* functions answer their request. */
struct ss_fg *ss__srv_find_fg(struct ss_srv *s, uint32_t fg);
bool ss__srv_was_dropped(const struct ss_srv *s, uint32_t fg);
char *ss__srv_fgs_json(struct ss_srv *s);
int ss__srv_add_fg(struct ss_srv *s, struct ss_ct *ct);
void ss__srv_op_status(struct ss_srv *s, struct ss_conn *c, uint64_t reqid);
void ss__srv_op_orphans(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q);
void ss__srv_op_fg_create(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q);
void ss__srv_op_fg_drop(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q);

#endif
