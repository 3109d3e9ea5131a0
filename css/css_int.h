/*
 * css_int.h -- internal to css/: the structs of the CSS (css.c) and the job
 * helpers css_orphan.c and css_fgc.c use.  Nothing outside css/ includes it.
 *
 * Ownership, threads and invariants: css.c's header comment.  A job
 * (struct css_job) runs its work function on the libuv threadpool with
 * copies only (no pointer into the loop's tables), its after function on
 * the loop; a job with a client (cl) holds a reference on it, the CSS's
 * own background jobs (JOB_FORGET, JOB_ORPHANS) have none.
 */
#ifndef CSS_INT_H
#define CSS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "css.h"
#include "css_lease.h"
#include "css_mtab.h"
#include "css_otab.h"
#include "css_site.h"
#include "css_ss.h"
#include "lp_fs.h"

struct css_client {
        struct css *css;
        struct lp_conn *conn;           /* NULL once closed (invariant 2) */
        uint64_t serial;
        uint64_t site;
        uint64_t id;                    /* open-table client: its client id, else serial */
        bool leased;                    /* id is a client id (css_lease.h) */
        char peer[128];                  /* "addr:port site N", for messages */
        char addr[CSS_HOST_MAX];        /* the peer's numeric address */
        unsigned refs;
        unsigned jobs;
        /* a registered storage site's connection: told of mount table
         * changes (css__mtab_changed); on css->watchers while conn is set */
        struct css_client *wnext, *wprev;
        bool watching;
        bool note_watch;                /* a mount watching commit notes: in css->nw (css_watch.c) */
};

enum job_kind {
        JOB_OPEN,
        JOB_FGC_RESOLVE,
        JOB_FGC_CREATE,
        JOB_FORGET,                     /* FORGET_ORPHAN at the holder; no client */
        JOB_ORPHANS,                    /* SS_ORPHANS of a site that registered; no client */
};

/* A storage site's address, copied for a job. */
struct ep {
        uint32_t fg;
        uint64_t site;
        char host[CSS_HOST_MAX];
        uint16_t port;
};

/* A mount, copied for a job. */
struct mnt {
        uint32_t fg, parent_fg;
        uint64_t parent_ino;
};

#define CSS_OPEN_ALTS 8                 /* holders tried for a read the primary has no data of */

struct css_job {
        uv_work_t req;
        struct css *css;
        struct css_client *cl;
        struct css_job *next;           /* fg creation queue */
        enum job_kind kind;
        uint64_t reqid;
        /* results */
        int status;
        char msg[LP_FS_PATH_MAX + 512];      /* a path and what went wrong with it */
        /* JOB_OPEN */
        struct ep target;
        uint32_t fg;
        uint64_t ino;
        uint32_t flags;
        bool write;
        bool transport_failed;
        uint64_t failed_site;           /* the site that could not be reached */
        struct lp_fs_attr attr;
        uint8_t vv[LP_FS_VV_MAX];       /* attr's vector, kept (attr.vv points here) */
        bool has_local;                 /* a read-only open from a holder: its copy, if current */
        bool use_local;
        struct ep local;
        struct ep alts[CSS_OPEN_ALTS];  /* failover: other holders that may keep the data (css.c) */
        size_t nalts;
        /* file group creation */
        char name[CSS_FG_NAME_MAX + 1];
        char *path;
        uint32_t uid, gid, umask;
        struct ep *eps;                 /* holders of every fg, snapshot */
        size_t neps;
        struct mnt *mnts;               /* mounts, snapshot */
        size_t nmnts;
        uint32_t mp_fg;                 /* the mount point directory <mp_fg, mp_ino> */
        uint64_t mp_ino;
        uint64_t mp_parent;             /* its parent, for undoing the mkdir */
        char mp_last[LP_FS_NAME_MAX + 1];
        bool made_dir;
        uint32_t newfg;
        /* the sites asked for (CSS_FG_CREATE's text: "sites", "copies"),
         * and the holders chosen from them (or from the registered sites) */
        uint64_t *want;
        size_t nwant;
        unsigned copies;                /* 0: as many as want, else 1 */
        unsigned sync_copies;           /* "sync_copies"; 0: 1 */
        struct ep *homes;
        size_t nhomes;
        /* JOB_ORPHANS: the orphans found, <fg, ino> pairs */
        uint32_t *ofg;
        uint64_t *oino;
        size_t norph;
};

struct css {
        uv_loop_t *loop;
        struct lp_server *srv;
        struct css_mtab *mtab;
        struct css_sites *sites;
        struct css_otab *otab;
        struct css_leases *leases;
        struct css_ss_pool *pool;
        uint32_t lease_ms;
        uv_timer_t tick;                /* lease expiry, reclaim window */
        bool tick_open;                 /* invariant (4) */
        /* Orphans learned during the reclaim window (start + lease), when
         * mounts may not have re-announced their opens yet, and those the
         * storage site refused to free (EBUSY): decided at the next tick
         * after the window. */
        uint32_t *dfg;
        uint64_t *dino;
        size_t ndef, capdef;
        unsigned forgets;               /* FORGET jobs in flight, <= CSS_MAX_FORGETS */
        bool reclaim_done;              /* the window's end was logged */
        uint64_t orphans_freed, orphans_failed, clients_expired;
        uint64_t site;
        uint64_t boot;                  /* random per start: mounts re-announce on a change */
        uint64_t next_serial;
        uint64_t start_us;
        char listen[96];
        bool closing;
        unsigned nclients;              /* invariant (4) */
        unsigned jobs;
        bool fgc_busy;                  /* invariant (3) */
        struct css_job *fgq_head, *fgq_tail;
        unsigned fgq_len;
        uint64_t unmatched_closes;
        uint64_t requests;
        struct css_client watchers;     /* list head (wnext/wprev) */
        uint64_t mtab_notes;            /* LP_FS_CSS_NOTE_MTAB rounds sent */
        /* The primary chosen for each file group (index fg, 0: none yet),
         * kept while it stays connected (css__primary). */
        uint64_t *prim;
        size_t nprim;
        struct css_membd *membd;        /* the membership service (css_set_membd), or NULL */
        /* mounts watching commit notes (css_watch.c) */
        struct css_client **nw;
        size_t nnw, capnw;
        uint64_t notes_in, notes_out;
};

#define CSS_WATCH_MAX 4096u

/* css_watch.c: coherence (docs/coherence.md).  css_watch_op: CSS_WATCH;
 * css_watch_note: SS_NOTE_COMMIT of a registered storage site (never
 * answered); css_watch_closed: cl's connection closed (before it is
 * freed). */
void css_watch_op(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq);
void css_watch_note(struct css_client *cl, const struct lp_fs_req *rq);
void css_watch_closed(struct css_client *cl);
/* css_watch.c: the mount table changed: the frame of LP_FS_CSS_NOTE_MTAB
 * (buf, len) to every watching mount too [W5]. */
void css_watch_mtab(struct css *css, const void *buf, size_t len);
/* css_watch.c: "commit_notes": {watchers, received, forwarded} into the
 * status object being written. */
struct css_jw;
void css_watch_status(struct css *css, struct css_jw *w);

/*
 * css.c: the mount table, or who serves a file group (a site registered
 * or went away), changed: push LP_FS_CSS_NOTE_MTAB to every registered
 * storage site, so its replicator reads the table at once instead of at
 * its next poll, and to every mount that watches commit notes
 * (css_watch.c [W5]).  Loop thread; never fails (a site that cannot take it
 * reads the table at its next poll all the same).
 */
void css__mtab_changed(struct css *css);

/* css.c: jobs.  css__job_new: NULL on ENOMEM; css__job_start: on failure the
 * job is answered (if it has a client), freed, and false returned. */
struct css_job *css__job_new(struct css *css, struct css_client *cl, uint64_t reqid, enum job_kind kind);
bool css__job_start(struct css_job *j);
void css__job_release(struct css_job *j);
/* Threadpool side: one call to a storage site.  0 with *resp, or
 * -EHOSTUNREACH (transport failure, j->msg says what). */
int css__ss_call(struct css_job *j, const struct ep *e, struct lp_fs_req *rq, struct lp_fs_resp *resp);
/* css__ss_call, and an error answer becomes the result (negative errno)
 * with j->msg naming the file, the operation, the site and the cause; *resp
 * is filled (to release) only when 0 is returned. */
int css__ss_ask(struct css_job *j, const struct ep *e, struct lp_fs_req *rq, struct lp_fs_resp *resp);
void css__ep_of(struct ep *e, const struct css_site *s, uint32_t fg);
/* The primary of fg, or NULL when no registered site holds it
 * (docs/replication.md, "Placement and the primary copy"; loop thread).
 * Sticky: the holder chosen stays the primary while its registering
 * connection is up and it is a holder; only then is the next one chosen
 * (css_sites_primary over the holders in the mount table: the lowest
 * connected).  A holder that registers later, a lower id included, does
 * not take the role over from a live primary.  Until every holder has
 * registered with this CSS instance, within its reclaim window (a
 * restarted CSS), nothing is kept: the sites are still registering. */
const struct css_site *css__primary(struct css *css, uint32_t fg);

/* css.c: answer a request (css.c invariant 1); message may be NULL. */
void css__reply(struct css_client *cl, uint64_t reqid, struct lp_fs_resp *resp);
void css__reply_err(struct css_client *cl, uint64_t reqid, int status, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* css_fgc.c: file group creation.  css_fgc_op: CSS_FG_CREATE (queued
 * behind a running creation); css_fgc_work: the threadpool side of
 * JOB_FGC_RESOLVE/JOB_FGC_CREATE; css_fgc_after: their loop side, true
 * when j went on to its next stage (it is no longer the caller's), false
 * when the caller finishes it (clears fgc_busy, css_fgc_next, job done);
 * css_fgc_next: start the next waiting creation. */
void css_fgc_op(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq);
/* The file group name of rq (1..CSS_FG_NAME_MAX bytes) into name; else
 * answers the request (EINVAL) and returns -EINVAL. */
int css__fg_name(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq, char name[CSS_FG_NAME_MAX + 1]);
void css_fgc_work(struct css_job *j);
bool css_fgc_after(struct css_job *j);
void css_fgc_next(struct css *css);

/* css_holders.c: CSS_FG_HOLDERS (replicas add|remove), on the loop. */
void css_holders_op(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq);

/* css_orphan.c: the orphan decision (css.h "Orphans", css.c invariant 5). */
bool css_in_reclaim_window(const struct css *css);
/* Tell the storage site holding fg to free <fg, ino> (a JOB_FORGET). */
void css_orphan_free(struct css *css, uint32_t fg, uint64_t ino);
/* css_otab_drop_client's callback (arg: the struct css). */
void css_orphan_freed_cb(void *arg, uint32_t fg, uint64_t ino);
/* <fg, ino> has no name left: free it once nobody holds it, not before the
 * reclaim window is over. */
void css_orphan_decide(struct css *css, uint32_t fg, uint64_t ino);
/* A storage site registered: ask it for its orphans (a JOB_ORPHANS). */
void css_orphans_fetch(struct css *css, uint64_t site);
/* From the tick: decide the orphans deferred by the reclaim window. */
void css_orphans_tick(struct css *css);
/* Work (threadpool) and after (loop) functions of JOB_FORGET, JOB_ORPHANS. */
void css_orphan_work(struct css_job *j);
void css_orphan_after(struct css_job *j);

#endif
