/* ss_pull.c -- the replicator; see ss_pull.h. */
#include "ss_pull.h"
#include "ss_place.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_rs.h"

#define MAX_PEERS 64u
#define MAX_LINKS 4096u
#define MAX_WORKERS 512u                /* link threads */
#define HOST_MAX 64u

/* One <fg, peer>: what status shows, the watermark [P1][P2], and the
 * thread that pulls it [P6]. */
struct link {
        struct ss_pull *p;
        uint32_t fg;
        uint64_t site;
        pthread_t th;
        bool started;
        bool failing;                   /* log an outage once */
        unsigned sync_copies;           /* the group's, from the mount table [P5] */
        bool loaded;                    /* wm read from its file */
        bool active;                    /* in the latest mount table */
        uint64_t wm;
        uint64_t saved_wm, saved_us;    /* the last wm written to its file, when [P2] */
        uint64_t peer_seq;              /* the peer's seq at its last answer */
        uint64_t pulled;                /* files installed */
        uint64_t contact_us;
        bool current;                   /* a pass reached the end of the peer's stream [P4] */
        unsigned gen;                   /* bumped by ss_pull_forget_fg [P8] */
        bool listed;                    /* a holder in the latest mount table (any port) */
        bool gone;                      /* was listed, then was not [P7] */
        int err;
        char msg[256];
};

/* Where a peer site listens (from the mount table). */
struct peer {
        uint64_t site;
        char host[HOST_MAX];
        uint16_t port;
};

/* [P9] A file to repair. */
enum { R_FREE, R_QUEUED, R_RUNNING, R_FAILED };
struct repair {
        int state;
        uint32_t fg;
        uint64_t ino, first, last;      /* damaged pages reported (for the log) */
        uint64_t retry_us;              /* R_FAILED: tried again from then on */
        bool materialize;               /* [P10]: the data fetched, not repaired */
};

struct ss_pull {
        struct ss_pull_opts o;
        char *data_dir, *self_host, *css_host, *css_port_file;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool stop;
        pthread_t mgr;
        bool mgr_started;
        struct peer *peers[MAX_PEERS];
        size_t npeers;
        struct link links[MAX_LINKS];
        size_t nlinks;
        size_t nworkers;
        struct sc {
                uint32_t fg;
                unsigned copies;
        } sc[MAX_LINKS], sc_old[MAX_LINKS];     /* [P5]: sync_copies of the groups held here */
        size_t nsc, nsc_old;
        struct hl {
                uint32_t fg;
                size_t n;
                uint64_t *sites;        /* ascending, sites being added left out */
                uint64_t primary;       /* the table's primary (0: none registered) */
        } *hl;                          /* the holders of the groups held here (copies policies) */
        size_t nhl;
        bool css_failing;
        bool kick;                      /* ss_pull_kick: read the mount table now (mu) */
        bool told_current;              /* on_current was called [P4] */
        uint64_t start_us;
        struct repair repairs[SS_PULL_REPAIRS]; /* [P9] */
        pthread_cond_t rcv;             /* a repair was queued, or stop */
        pthread_t rth;
        bool rth_started;
        uint64_t repaired, repair_failed;
};

/* [P4]: call on_current once, when every active link reachable is current
 * (or none is listed), or after the catch-up time.  Caller holds mu and
 * has read the mount table at least once. */
static void maybe_current(struct ss_pull *p)
{
        bool all = true;

        if (p->told_current || p->stop)
                return;
        for (size_t i = 0; i < p->nlinks; i++)
                if (p->links[i].active && !p->links[i].current && !p->links[i].err)
                        all = false;
        if (!all && cm_now_us() - p->start_us < (uint64_t)SS_PULL_CATCHUP_MS * 1000)
                return;
        if (!all)
                cm_log(LOG_WARNING, "replication: not caught up with every holder after %u s; serving anyway",
                       SS_PULL_CATCHUP_MS / 1000);
        p->told_current = true;
        if (p->o.on_current)
                p->o.on_current(p->o.ctx);
}

/* Wait up to ms or until stop.  Caller holds mu. */
static void wait_locked(struct ss_pull *p, uint32_t ms)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        if (!p->stop)
                pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

static bool stopping(struct ss_pull *p)
{
        bool s;

        pthread_mutex_lock(&p->mu);
        s = p->stop;
        pthread_mutex_unlock(&p->mu);
        return s;
}

static void pause_ms(struct ss_pull *p, uint32_t ms)
{
        pthread_mutex_lock(&p->mu);
        wait_locked(p, ms);
        pthread_mutex_unlock(&p->mu);
}

/* ---- watermarks [P2] --------------------------------------------------------------- */

static void wm_path(struct ss_pull *p, uint32_t fg, uint64_t site, char *buf, size_t cap)
{
        snprintf(buf, cap, "%s/fg-%u/pull-%" PRIu64, p->data_dir, fg, site);
}

static uint64_t wm_load(struct ss_pull *p, uint32_t fg, uint64_t site)
{
        char path[4096], buf[32], *end;
        unsigned long long v;

        wm_path(p, fg, site, path, sizeof(path));
        if (cm_read_file(path, buf, sizeof(buf)) < 0)
                return 0;
        errno = 0;
        v = strtoull(buf, &end, 10);
        return errno || *end ? 0 : v;
}

static void wm_save(struct ss_pull *p, uint32_t fg, uint64_t site, uint64_t wm)
{
        char path[4096], buf[32];
        int r;

        wm_path(p, fg, site, path, sizeof(path));
        snprintf(buf, sizeof(buf), "%" PRIu64 "\n", wm);
        r = cm_write_file(path, buf);
        if (r < 0)
                cm_log(LOG_WARNING, "fg %u: cannot keep the watermark of site %" PRIu64 " in %s: %s "
                       "(the next start compares more files)", fg, site, path, strerror(-r));
}

/* The link of <fg, site>, created if new.  Caller holds mu. */
static struct link *link_get(struct ss_pull *p, uint32_t fg, uint64_t site)
{
        struct link *l;

        for (size_t i = 0; i < p->nlinks; i++)
                if (p->links[i].fg == fg && p->links[i].site == site)
                        return &p->links[i];
        if (p->nlinks == MAX_LINKS)
                return NULL;
        l = &p->links[p->nlinks++];
        memset(l, 0, sizeof(*l));
        l->p = p;
        l->fg = fg;
        l->site = site;
        return l;
}

static void link_error(struct ss_pull *p, uint32_t fg, uint64_t site, int err, const char *msg)
{
        struct link *l;

        pthread_mutex_lock(&p->mu);
        l = link_get(p, fg, site);
        if (l) {
                l->err = err;
                maybe_current(p);               /* an unreachable holder is not waited for */
                snprintf(l->msg, sizeof(l->msg), "%s", msg ? msg : strerror(-err));
        }
        pthread_mutex_unlock(&p->mu);
}

/* ---- calls ----------------------------------------------------------------------------- */

static int connect_to(struct ss_pull *p, const char *host, uint16_t port, struct lp_client **ret)
{
        int r = lp_client_connect(host, port, p->o.key, p->o.site, (int)p->o.timeout_ms, ret);

        if (r >= 0)
                (void)lp_client_set_max_frame(*ret, LP_FS_DATA_MAX + (1u << 16));
        return r;
}

/* A call whose answer must be a success: 0 with *a (release it), or the
 * error, with a message in msg. */
static int call(struct ss_pull *p, struct lp_client *c, const struct lp_fs_req *q, struct lp_fs_resp *a,
                char *msg, size_t cap)
{
        char *m = NULL;
        int r = lp_fs_call(c, q, (int)p->o.timeout_ms, a, &m);

        if (r < 0) {
                snprintf(msg, cap, "%s: %s%s%s", lp_fs_op_name(q->op), strerror(-r), m ? ": " : "", m ? m : "");
                free(m);
                return r;
        }
        if (a->status < 0) {
                r = a->status;
                snprintf(msg, cap, "%s: %s%s%s", lp_fs_op_name(q->op), strerror(-r), a->message ? ": " : "",
                         a->message ? a->message : "");
                lp_fs_resp_release(a);
                return r;
        }
        return 0;
}

/* ---- pulling one file --------------------------------------------------------------- */

struct conns {
        struct lp_client *peer, *local;
};

static int install_state(struct ss_pull *p, struct conns *cx, uint32_t fg, uint64_t ino, uint64_t session,
                         const uint8_t *blob, size_t bloblen, char *msg, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = ino, .session = session,
                               .flags = LP_FS_INSTALL_COMMIT, .blob = blob, .bloblen = bloblen };
        struct lp_fs_resp a;
        int r = call(p, cx->local, &q, &a, msg, cap);

        if (r < 0)
                return r;
        r = (int)a.value;
        lp_fs_resp_release(&a);
        return r;
}

/* Stage the pages of a big file in a local install session [P3]. */
static int stage_big(struct ss_pull *p, struct conns *cx, uint32_t fg, const struct lp_rs_state *st,
                     uint64_t *ret_session, char *msg, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = st->ino,
                               .flags = LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_TRUNC };
        struct lp_fs_resp a;
        uint64_t session;
        int r = call(p, cx->local, &q, &a, msg, cap);

        if (r < 0)
                return r;
        session = a.session;
        lp_fs_resp_release(&a);
        *ret_session = session;
        for (size_t i = 0; i < st->nextents; i++) {
                uint64_t off = st->extents[i].page * 4096, end = off + st->extents[i].npages * 4096;

                if (end > st->size)
                        end = st->size;
                while (off < end) {
                        struct lp_fs_req rq = { .op = LP_FS_READ, .fg = fg, .ino = st->ino, .offset = off,
                                                .length = end - off < LP_FS_DATA_MAX ? end - off : LP_FS_DATA_MAX };
                        struct lp_fs_resp ra, ia;
                        struct lp_fs_req iq = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = st->ino,
                                                .session = session, .flags = LP_FS_INSTALL_DATA, .offset = off };

                        r = call(p, cx->peer, &rq, &ra, msg, cap);
                        if (r < 0)
                                return r;
                        if (!ra.datalen) {              /* shrunk meanwhile: [P3] catches it */
                                lp_fs_resp_release(&ra);
                                break;
                        }
                        iq.data = ra.data;
                        iq.datalen = ra.datalen;
                        r = call(p, cx->local, &iq, &ia, msg, cap);
                        off += ra.datalen;
                        lp_fs_resp_release(&ra);
                        if (r < 0)
                                return r;
                        lp_fs_resp_release(&ia);
                }
        }
        return 0;
}

/* Has the peer's copy of ino moved past vv since it was fetched? [P3] */
static int changed_since(struct ss_pull *p, struct conns *cx, uint32_t fg, const struct lp_rs_state *st,
                         char *msg, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = st->ino, .flags = LP_FS_FETCH_VV };
        struct lp_fs_resp a;
        struct lp_rs_state now;
        int r = call(p, cx->peer, &q, &a, msg, cap);

        if (r < 0)
                return r;
        r = lp_rs_state_decode(a.data, a.datalen, &now);
        if (r >= 0) {
                r = now.kind != st->kind || now.vvlen != st->vvlen || memcmp(now.vv, st->vv, st->vvlen);
                lp_rs_state_free(&now);
        } else {
                snprintf(msg, cap, "ss_fetch: a malformed state");
        }
        lp_fs_resp_release(&a);
        return r;
}

static void abort_session(struct ss_pull *p, struct conns *cx, uint32_t fg, uint64_t ino, uint64_t session)
{
        struct lp_fs_req q = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = ino, .session = session,
                               .flags = LP_FS_INSTALL_ABORT };
        struct lp_fs_resp a;
        char m[64];

        if (call(p, cx->local, &q, &a, m, sizeof(m)) >= 0)
                lp_fs_resp_release(&a);
}

/* [P3] for a directory too big for one message (ss_repl.c [R6]): first
 * (the answer a, decoded) is the first piece of its state.  Stage it and
 * the next ones in a local install session, then COMMIT the last: 1
 * installed, 0 not needed, -ESTALE if the directory changed at the peer
 * between two pieces (pull it again), or an error. */
static int pull_dir(struct ss_pull *p, struct conns *cx, uint32_t fg, const struct lp_rs_state *first,
                    const struct lp_fs_resp *a, char *msg, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = first->ino, .blob = a->data,
                               .bloblen = a->datalen, .flags = LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_ENTRIES };
        struct lp_fs_resp b, ia;
        uint64_t session, from = first->entries[first->nentries - 1].cookie;
        int r = call(p, cx->local, &q, &b, msg, cap);

        if (r < 0)
                return r;
        session = b.session;
        lp_fs_resp_release(&b);
        for (;;) {
                struct lp_fs_req fq = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = first->ino,
                                        .flags = LP_FS_FETCH_PIECES, .offset = from };
                struct lp_rs_state st;
                bool more;

                r = call(p, cx->peer, &fq, &b, msg, cap);
                if (r < 0)
                        break;
                r = lp_rs_state_decode(b.data, b.datalen, &st);
                if (r < 0) {
                        snprintf(msg, cap, "ss_fetch of %#" PRIx64 ": a malformed piece", first->ino);
                        lp_fs_resp_release(&b);
                        break;
                }
                /* One version: every piece carries the vector of the first
                 * (the last one read is the check at the end). */
                if (st.kind != LP_RS_INODE || !S_ISDIR(st.mode) || st.from != from ||
                    st.vvlen != first->vvlen || memcmp(st.vv, first->vv, st.vvlen)) {
                        lp_rs_state_free(&st);
                        lp_fs_resp_release(&b);
                        r = -ESTALE;
                        break;
                }
                more = st.more;
                if (st.nentries)
                        from = st.entries[st.nentries - 1].cookie;
                lp_rs_state_free(&st);
                if (!more) {
                        r = install_state(p, cx, fg, first->ino, session, b.data, b.datalen, msg, cap);
                        lp_fs_resp_release(&b);
                        return r;       /* the commit ended the session */
                }
                q = (struct lp_fs_req){ .op = LP_FS_SS_INSTALL, .fg = fg, .ino = first->ino, .session = session,
                                        .flags = LP_FS_INSTALL_ENTRIES, .blob = b.data, .bloblen = b.datalen };
                r = call(p, cx->local, &q, &ia, msg, cap);
                lp_fs_resp_release(&b);
                if (r < 0)
                        return r;       /* a failed staging ended the session */
                lp_fs_resp_release(&ia);
        }
        abort_session(p, cx, fg, first->ino, session);
        return r;
}

/* Pull one file: 1 installed, 0 not needed, or an error. */
static int pull_one(struct ss_pull *p, struct conns *cx, uint32_t fg, uint64_t peer, uint64_t ino, char *msg,
                    size_t cap)
{
        for (int attempt = 0; attempt < SS_PULL_RETRIES; attempt++) {
                struct lp_fs_req q = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = ino, .flags = LP_FS_FETCH_PIECES };
                struct lp_fs_resp a;
                struct lp_rs_state st;
                uint64_t session = 0;
                bool here;
                int r = call(p, cx->peer, &q, &a, msg, cap);

                if (r == -ENOENT)
                        return 0;       /* neither a row nor a deletion record: nothing to pull */
                if (r < 0)
                        return r;
                r = lp_rs_state_decode(a.data, a.datalen, &st);
                if (r < 0) {
                        snprintf(msg, cap, "ss_fetch of %#" PRIx64 ": a malformed state", ino);
                        lp_fs_resp_release(&a);
                        return r;
                }
                here = ss_place_state_here(&st, p->o.site);
                if (here && (a.value & LP_FS_FETCH_NODATA)) {
                        /* ss_place.h [L3]: the data is placed here, but
                         * not at this peer: the copies that keep it bring
                         * this version (their links). */
                        cm_log(LOG_DEBUG, "fg %u ino %#" PRIx64 ": site %" PRIu64 " keeps no data of it; "
                               "pulled from a copy that does", fg, ino, peer);
                        lp_rs_state_free(&st);
                        lp_fs_resp_release(&a);
                        return 0;
                }
                if (st.kind == LP_RS_INODE && !lp_rs_state_complete(&st)) {
                        /* A big directory, in pieces [R6]; the server never
                         * answers a first piece without entries. */
                        r = st.nentries && !st.from ? pull_dir(p, cx, fg, &st, &a, msg, cap) : -EBADMSG;
                        if (r == -EBADMSG)
                                snprintf(msg, cap, "ss_fetch of %#" PRIx64 ": a first piece that is not one", ino);
                        lp_rs_state_free(&st);
                        lp_fs_resp_release(&a);
                        if (r == -ESTALE)
                                continue;
                        return r;
                }
                if (here && st.kind == LP_RS_INODE && S_ISREG(st.mode) && !st.has_data) {
                        r = stage_big(p, cx, fg, &st, &session, msg, cap);
                        if (r >= 0) {
                                r = changed_since(p, cx, fg, &st, msg, cap);
                                if (r == 1) {
                                        struct lp_fs_req ab = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = ino,
                                                                .session = session, .flags = LP_FS_INSTALL_ABORT };
                                        struct lp_fs_resp aa;
                                        char m2[64];

                                        if (call(p, cx->local, &ab, &aa, m2, sizeof(m2)) >= 0)
                                                lp_fs_resp_release(&aa);
                                        lp_rs_state_free(&st);
                                        lp_fs_resp_release(&a);
                                        continue;
                                }
                        }
                        if (r < 0) {
                                lp_rs_state_free(&st);
                                lp_fs_resp_release(&a);
                                return r;
                        }
                }
                r = install_state(p, cx, fg, ino, session, a.data, a.datalen, msg, cap);
                lp_rs_state_free(&st);
                lp_fs_resp_release(&a);
                return r;
        }
        snprintf(msg, cap, "file %#" PRIx64 " kept changing while it was pulled; trying again later", ino);
        return -EAGAIN;
}

/* ---- one pass over <fg, peer> ---------------------------------------------------------- */

/* [P5]: make this site's installs durable before the watermark moves
 * (the next SS_CHANGES tells the peer they are). */
static int sync_local(struct ss_pull *p, struct conns *cx, uint32_t fg, char *msg, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SYNC, .fg = fg, .ino = 1 };
        struct lp_fs_resp a;
        int r = call(p, cx->local, &q, &a, msg, cap);

        if (r >= 0)
                lp_fs_resp_release(&a);
        return r;
}

/* 1 if there was something to do, 0 if not, or an error (msg says why).
 * Asks the peer to wait up to wait_ms for a change [P6].  *ret_gather:
 * the pass pulled changes, reached the end of the peer's stream, and the
 * group's fsync does not wait for this copy [P10]. */
static int pass(struct ss_pull *p, struct link *l, struct conns *cx, uint32_t wait_ms, bool *ret_gather,
                char *msg, size_t cap)
{
        uint32_t fg = l->fg;
        struct lp_fs_req q = { .op = LP_FS_SS_CHANGES, .fg = fg, .length = SS_PULL_CHANGES, .size = wait_ms };
        struct lp_fs_req cq = { .op = LP_FS_SS_FETCH, .fg = fg, .flags = LP_FS_FETCH_COMPARE, .site = l->site };
        struct lp_fs_resp a, ca;
        uint64_t *inos = NULL, wm, pulled = 0;
        unsigned gen, copies;
        bool eof;
        size_t n, npull = 0;
        struct cm_rd rd;
        int r;

        pthread_mutex_lock(&p->mu);
        if (!l->loaded) {
                l->wm = wm_load(p, fg, l->site);
                l->saved_wm = l->wm;
                l->loaded = true;
        }
        wm = l->wm;
        gen = l->gen;
        copies = l->sync_copies;
        pthread_mutex_unlock(&p->mu);
        q.offset = wm;
        r = call(p, cx->peer, &q, &a, msg, cap);
        if (r < 0)
                return r;
        if (a.eof && a.value < wm) {
                /* [P7] The peer's stream ends below our watermark: its
                 * container is a new one (replicas remove, then add).
                 * Start again from its beginning. */
                cm_log(LOG_NOTICE, "fg %u: site %" PRIu64 "'s changes end at %" PRIu64 ", below the %" PRIu64
                       " pulled from it: a new copy there; pulling it from the start", fg, l->site, a.value, wm);
                lp_fs_resp_release(&a);
                pthread_mutex_lock(&p->mu);
                l->wm = 0;
                l->saved_wm = 0;
                l->current = false;
                pthread_mutex_unlock(&p->mu);
                wm_save(p, fg, l->site, 0);
                return 1;
        }
        r = lp_rs_changes_open(&rd, a.data, a.datalen, &n);
        if (r < 0) {
                snprintf(msg, cap, "ss_changes: a malformed change list");
                lp_fs_resp_release(&a);
                return r;
        }
        if (n) {
                cq.data = a.data;
                cq.datalen = a.datalen;
                r = call(p, cx->local, &cq, &ca, msg, cap);
                if (r >= 0) {
                        r = lp_rs_pulls_decode(ca.data, ca.datalen, &inos, &npull);
                        lp_fs_resp_release(&ca);
                        if (r < 0)
                                snprintf(msg, cap, "ss_fetch compare: a malformed pull list");
                }
                for (size_t i = 0; r >= 0 && i < npull && !stopping(p); i++) {
                        r = pull_one(p, cx, fg, l->site, inos[i], msg, cap);
                        if (r > 0)
                                pulled++;
                }
                free(inos);
                if (r >= 0 && copies > 1)
                        r = sync_local(p, cx, fg, msg, cap);
        }
        if (r >= 0 && stopping(p))
                r = -ECANCELED;
        pthread_mutex_lock(&p->mu);
        if (l->gen != gen) {                    /* [P8] the container went meanwhile */
                pthread_mutex_unlock(&p->mu);
                lp_fs_resp_release(&a);
                return 1;
        }
        l->contact_us = cm_now_us();
        l->pulled += pulled;
        if (r >= 0) {                           /* [P1] */
                uint64_t now = cm_now_us();

                l->peer_seq = a.eof ? a.value : l->peer_seq > a.value ? l->peer_seq : a.value;
                if (a.value != l->wm)
                        l->wm = a.value;
                /* [P2] kept at most every SS_PULL_WM_SAVE_MS (and when the
                 * worker ends): writing the file after every pass cost a
                 * secondary more CPU than its installs under a stream of
                 * small commits; a file that lags only makes a restart
                 * compare again what it had installed ([R1]: nothing). */
                wm = 0;
                if (l->wm != l->saved_wm && now - l->saved_us >= (uint64_t)SS_PULL_WM_SAVE_MS * 1000) {
                        wm = l->wm;
                        l->saved_wm = wm;
                        l->saved_us = now;
                }
                l->err = 0;
                l->msg[0] = 0;
                if (a.eof)
                        l->current = true;
                maybe_current(p);
        }
        pthread_mutex_unlock(&p->mu);
        if (r >= 0 && wm)
                wm_save(p, fg, l->site, wm);
        eof = a.eof;            /* release clears a */
        lp_fs_resp_release(&a);
        if (r < 0)
                return r;
        *ret_gather = n > 0 && eof && copies <= 1;
        return n > 0 || !eof;
}

/* Caller holds mu. */
static struct peer *peer_get(struct ss_pull *p, uint64_t site)
{
        for (size_t i = 0; i < p->npeers; i++)
                if (p->peers[i]->site == site)
                        return p->peers[i];
        return NULL;
}

/* [P6] One thread per <fg, peer>: its long poll never holds back another
 * group's changes. */
static void *link_main(void *arg)
{
        struct link *l = arg;
        struct ss_pull *p = l->p;
        struct conns cx = { 0 };
        uint32_t backoff = 0;
        uint32_t wait_ms = p->o.wait_ms < p->o.timeout_ms / 2 ? p->o.wait_ms : p->o.timeout_ms / 2;
        bool gather = false;
        char msg[256];

        while (!stopping(p)) {
                char host[HOST_MAX];
                uint16_t port = 0;
                bool active;
                struct peer *pe;
                int r = 0;

                pthread_mutex_lock(&p->mu);
                pe = peer_get(p, l->site);
                active = l->active && pe;
                if (active) {
                        snprintf(host, sizeof(host), "%s", pe->host);
                        port = pe->port;
                }
                pthread_mutex_unlock(&p->mu);
                if (!active) {
                        lp_client_close(cx.peer);
                        lp_client_close(cx.local);
                        cx.peer = cx.local = NULL;
                        pause_ms(p, p->o.refresh_ms);
                        continue;
                }
                if (!cx.local)
                        r = connect_to(p, p->self_host, p->o.self_port, &cx.local);
                if (r >= 0 && !cx.peer)
                        r = connect_to(p, host, port, &cx.peer);
                if (r < 0)
                        snprintf(msg, sizeof(msg), "cannot connect to %s: %s", cx.local ? "the peer" :
                                 "this site's own server", strerror(-r));
                else {
                        uint64_t t0 = cm_now_us();

                        gather = false;
                        r = pass(p, l, &cx, wait_ms, &gather, msg, sizeof(msg));
                        /* An empty answer that did not wait (a peer that
                         * cannot park it): do not spin. */
                        if (r == 0 && cm_now_us() - t0 < (uint64_t)wait_ms * 100u)
                                pause_ms(p, p->o.poll_ms);
                }
                if (r == -ECANCELED)
                        break;
                if (r < 0) {
                        link_error(p, l->fg, l->site, r, msg);
                        if (!l->failing)
                                cm_log(LOG_NOTICE, "fg %u: pulling from site %" PRIu64 " (%s:%u): %s",
                                       l->fg, l->site, host, port, msg);
                        l->failing = true;
                        /* Start over on fresh connections after a pause. */
                        lp_client_close(cx.peer);
                        lp_client_close(cx.local);
                        cx.peer = cx.local = NULL;
                        backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 100;
                        pause_ms(p, backoff);
                        continue;
                }
                if (l->failing) {
                        cm_log(LOG_INFO, "fg %u: pulling from site %" PRIu64 " (%s:%u) works again", l->fg,
                               l->site, host, port);
                        l->failing = false;
                }
                backoff = 0;
                /* No pause: an idle pass waited at the peer (SS_CHANGES with
                 * a wait) and returns at its next commit.  But after one that
                 * pulled the last changes, let the next ones gather [P10]. */
                if (gather && p->o.gather_ms)
                        pause_ms(p, p->o.gather_ms);
        }
        /* [P2] keep what the last passes reached (not after a forget_fg:
         * the folder is a new container's) */
        {
                uint64_t wm = 0;

                pthread_mutex_lock(&p->mu);
                if (l->loaded && l->wm != l->saved_wm) {
                        wm = l->wm;
                        l->saved_wm = wm;
                }
                pthread_mutex_unlock(&p->mu);
                if (wm)
                        wm_save(p, l->fg, l->site, wm);
        }
        lp_client_close(cx.peer);
        lp_client_close(cx.local);
        return NULL;
}

/* ---- the manager: who holds what ------------------------------------------------------ */


static void hl_free(struct ss_pull *p)
{
        for (size_t i = 0; i < p->nhl; i++)
                free(p->hl[i].sites);
        free(p->hl);
        p->hl = NULL;
        p->nhl = 0;
}

static int cmp_site(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* Keep m's complete holders for ss_pull_holders (caller holds mu; out of
 * memory: the group is left out, and creates place on this site). */
static void keep_holders(struct ss_pull *p, const struct lp_fs_mount *m)
{
        struct hl *nh = realloc(p->hl, (p->nhl + 1) * sizeof(*p->hl));
        uint64_t *s;
        size_t n = 0;

        if (!nh)
                return;
        p->hl = nh;
        s = malloc((m->nholders ? m->nholders : 1) * sizeof(*s));
        if (!s)
                return;
        for (size_t j = 0; j < m->nholders; j++)
                if (!m->holders[j].adding)
                        s[n++] = m->holders[j].site;
        qsort(s, n, sizeof(*s), cmp_site);
        p->hl[p->nhl++] = (struct hl){ m->fg, n, s, m->site };
}

/* Take the mount table in (caller holds mu); new links are returned to
 * be started outside the lock. */
static void take_table(struct ss_pull *p, const struct lp_fs_resp *mt, struct link **fresh, size_t *nfresh)
{
        hl_free(p);
        for (size_t i = 0; i < p->nlinks; i++)
                p->links[i].active = p->links[i].listed = false;
        memcpy(p->sc_old, p->sc, p->nsc * sizeof(p->sc[0]));
        p->nsc_old = p->nsc;
        p->nsc = 0;
        for (size_t i = 0; i < mt->nmounts; i++) {
                const struct lp_fs_mount *m = &mt->mounts[i];
                bool mine = false;

                for (size_t j = 0; j < m->nholders; j++)
                        if (m->holders[j].site == p->o.site)
                                mine = true;
                if (!mine)
                        continue;
                keep_holders(p, m);
                if (p->nsc < MAX_LINKS) {
                        unsigned was = 1;

                        for (size_t k = 0; k < p->nsc_old; k++)
                                if (p->sc_old[k].fg == m->fg)
                                        was = p->sc_old[k].copies;
                        if (m->sync_copies != was)
                                cm_log(LOG_INFO, "fg %u: sync_copies %u (fsync waits for %u other holder(s))",
                                       m->fg, m->sync_copies, m->sync_copies - 1);
                        p->sc[p->nsc].fg = m->fg;
                        p->sc[p->nsc++].copies = m->sync_copies;
                }
                for (size_t j = 0; j < m->nholders; j++) {
                        const struct lp_fs_holder *h = &m->holders[j];
                        struct peer *pe;
                        struct link *l;

                        /* A site being added (replicas add) is never pulled from. */
                        if (h->site == p->o.site || h->adding)
                                continue;
                        l = link_get(p, m->fg, h->site);
                        if (!l)
                                continue;
                        l->listed = true;
                        if (l->gone) {
                                /* [P7] It was removed and is back: a new container. */
                                l->gone = false;
                                l->gen++;
                                l->loaded = true;
                                l->wm = 0;
                                l->saved_wm = 0;
                                l->current = false;
                                wm_save(p, m->fg, h->site, 0);
                        }
                        if (!h->port || !h->host || strlen(h->host) >= HOST_MAX)
                                continue;
                        l->active = true;
                        l->sync_copies = m->sync_copies;
                        if (!l->started && p->nworkers + *nfresh < MAX_WORKERS)
                                fresh[(*nfresh)++] = l;
                        pe = peer_get(p, h->site);
                        if (!pe && p->npeers < MAX_PEERS && (pe = calloc(1, sizeof(*pe)))) {
                                pe->site = h->site;
                                p->peers[p->npeers++] = pe;
                        }
                        if (pe) {
                                snprintf(pe->host, sizeof(pe->host), "%s", h->host);
                                pe->port = (uint16_t)h->port;
                        }
                }
        }
        for (size_t i = 0; i < p->nlinks; i++)
                if (!p->links[i].listed && p->links[i].loaded)
                        p->links[i].gone = true;
}

static void *mgr_main(void *arg)
{
        struct ss_pull *p = arg;
        struct lp_client *css = NULL;

        while (!stopping(p)) {
                struct lp_fs_req q = { .op = LP_FS_CSS_MOUNTTABLE };
                struct lp_fs_resp mt;
                struct link *fresh[MAX_WORKERS];
                size_t nfresh = 0;
                char msg[256];
                uint16_t port = p->o.css_port;
                int r = 0;

                if (p->css_port_file)
                        r = cm_read_port_file(p->css_port_file, &port);
                if (r >= 0 && !css)
                        r = connect_to(p, p->css_host ? p->css_host : "127.0.0.1", port, &css);
                if (r >= 0)
                        r = call(p, css, &q, &mt, msg, sizeof(msg));
                else
                        snprintf(msg, sizeof(msg), "cannot reach the CSS: %s", strerror(-r));
                if (r < 0) {
                        if (!p->css_failing)
                                cm_log(LOG_NOTICE, "replication: cannot read the mount table: %s", msg);
                        p->css_failing = true;
                        lp_client_close(css);
                        css = NULL;
                } else {
                        p->css_failing = false;
                        pthread_mutex_lock(&p->mu);
                        take_table(p, &mt, fresh, &nfresh);
                        maybe_current(p);
                        pthread_mutex_unlock(&p->mu);
                        lp_fs_resp_release(&mt);
                        for (size_t i = 0; i < nfresh; i++) {
                                int e = pthread_create(&fresh[i]->th, NULL, link_main, fresh[i]);

                                pthread_mutex_lock(&p->mu);
                                if (e == 0) {
                                        fresh[i]->started = true;
                                        p->nworkers++;
                                }
                                pthread_mutex_unlock(&p->mu);
                                if (e)
                                        cm_log(LOG_ERR, "replication: cannot start the thread for fg %u, "
                                               "site %" PRIu64, fresh[i]->fg, fresh[i]->site);
                        }
                }
                if (!p->told_current && p->css_failing) {
                        pthread_mutex_lock(&p->mu);
                        maybe_current(p);       /* the catch-up time still runs out */
                        pthread_mutex_unlock(&p->mu);
                }
                /* Until caught up, look again soon (a holder that registers
                 * meanwhile is pulled from at once); a kick ends the wait. */
                pthread_mutex_lock(&p->mu);
                if (!p->kick)
                        wait_locked(p, p->told_current ? p->o.refresh_ms : 100);
                p->kick = false;
                pthread_mutex_unlock(&p->mu);
        }
        lp_client_close(css);
        return NULL;
}

/* ---- repair of damaged pages [P9] ------------------------------------------------------ */

struct holder {
        uint64_t site;
        char host[HOST_MAX];
        uint16_t port;
};

/* The state of ino on c with only its vector (SS_FETCH VV) into *ret
 * (release a). */
static int fetch_vv(struct ss_pull *p, struct lp_client *c, uint32_t fg, uint64_t ino, struct lp_fs_resp *a,
                    struct lp_rs_state *ret, char *msg, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = ino, .flags = LP_FS_FETCH_VV };
        int r = call(p, c, &q, a, msg, cap);

        if (r < 0)
                return r;
        r = lp_rs_state_decode(a->data, a->datalen, ret);
        if (r < 0) {
                snprintf(msg, cap, "ss_fetch of %#" PRIx64 ": a malformed state", ino);
                lp_fs_resp_release(a);
        }
        return r;
}

static void drop_session(struct ss_pull *p, struct conns *cx, uint32_t fg, uint64_t ino, uint64_t session)
{
        struct lp_fs_req q = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = ino, .session = session,
                               .flags = LP_FS_INSTALL_ABORT };
        struct lp_fs_resp a;
        char m[64];

        if (session && call(p, cx->local, &q, &a, m, sizeof(m)) >= 0)
                lp_fs_resp_release(&a);
}

/* Repair ino from the peer of cx: 0 done (*ret_size: the file's size), or
 * an error (msg says why). */
static int repair_from(struct ss_pull *p, struct conns *cx, uint32_t fg, uint64_t ino, bool materialize,
                       uint64_t *ret_size, char *msg, size_t cap)
{
        struct lp_fs_resp la;
        struct lp_rs_state mine;
        int r = fetch_vv(p, cx->local, fg, ino, &la, &mine, msg, cap);

        if (r < 0)
                return r;
        for (int attempt = 0; attempt < SS_PULL_RETRIES; attempt++) {
                struct lp_fs_req q = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = ino };
                struct lp_fs_req iq = { .op = LP_FS_SS_INSTALL, .fg = fg, .ino = ino,
                                        .flags = LP_FS_INSTALL_COMMIT | (materialize ? LP_FS_INSTALL_MATERIALIZE :
                                                                         LP_FS_INSTALL_REPAIR) };
                struct lp_fs_resp a, ia;
                struct lp_rs_state st;
                uint64_t session = 0;

                r = call(p, cx->peer, &q, &a, msg, cap);
                if (r < 0)
                        break;
                r = lp_rs_state_decode(a.data, a.datalen, &st);
                if (r < 0) {
                        snprintf(msg, cap, "ss_fetch of %#" PRIx64 ": a malformed state", ino);
                        lp_fs_resp_release(&a);
                        break;
                }
                if (st.kind != mine.kind || st.vvlen != mine.vvlen || memcmp(st.vv, mine.vv, st.vvlen)) {
                        snprintf(msg, cap, "its copy is another version");
                        r = -ESTALE;
                } else if (a.value & LP_FS_FETCH_NODATA) {
                        /* ss_place.h [L3]: its pages are not the file's
                         * (none are kept there); never repair from it. */
                        snprintf(msg, cap, "it keeps no data of it (placed elsewhere)");
                        r = -ENODATA;
                } else if (st.kind == LP_RS_INODE && S_ISREG(st.mode) && !st.has_data) {
                        r = stage_big(p, cx, fg, &st, &session, msg, cap);
                        if (r >= 0)
                                r = changed_since(p, cx, fg, &st, msg, cap);
                        if (r == 1) {           /* [P3]: it changed meanwhile; the next attempt says how */
                                drop_session(p, cx, fg, ino, session);
                                lp_rs_state_free(&st);
                                lp_fs_resp_release(&a);
                                continue;
                        }
                }
                if (r >= 0) {
                        iq.session = session;
                        iq.blob = a.data;
                        iq.bloblen = a.datalen;
                        r = call(p, cx->local, &iq, &ia, msg, cap);
                        if (r >= 0)
                                lp_fs_resp_release(&ia);
                } else {
                        drop_session(p, cx, fg, ino, session);
                }
                lp_rs_state_free(&st);
                lp_fs_resp_release(&a);
                break;
        }
        if (r > 0) {
                snprintf(msg, cap, "its copy kept changing while it was read");
                r = -EAGAIN;
        }
        *ret_size = mine.size;
        lp_rs_state_free(&mine);
        lp_fs_resp_release(&la);
        return r;
}

/* Try every holder in turn: 0 with *ret_from, or the last error. */
static int repair_one(struct ss_pull *p, const struct repair *j, const struct holder *hs, size_t nh,
                      const struct holder **ret_from, uint64_t *ret_size, char *msg, size_t cap)
{
        struct conns cx = { 0 };
        size_t off = 0;
        int r = connect_to(p, p->self_host, p->o.self_port, &cx.local);

        if (r < 0) {
                snprintf(msg, cap, "cannot connect to this site's own server: %s", strerror(-r));
                return r;
        }
        msg[0] = 0;
        r = -ENOENT;
        for (size_t i = 0; i < nh && !stopping(p); i++) {
                char m[200];

                r = connect_to(p, hs[i].host, hs[i].port, &cx.peer);
                if (r >= 0) {
                        r = repair_from(p, &cx, j->fg, j->ino, j->materialize, ret_size, m, sizeof(m));
                        lp_client_close(cx.peer);
                        cx.peer = NULL;
                } else {
                        snprintf(m, sizeof(m), "cannot connect: %s", strerror(-r));
                }
                if (r >= 0) {
                        *ret_from = &hs[i];
                        break;
                }
                if (off < cap)
                        off += (size_t)snprintf(msg + off, cap - off, "%ssite %" PRIu64 ": %s", off ? "; " : "",
                                                hs[i].site, m);
        }
        if (nh == 0)
                snprintf(msg, cap, "no other site holds the file group");
        lp_client_close(cx.local);
        return r;
}

static void *repair_main(void *arg)
{
        struct ss_pull *p = arg;

        pthread_mutex_lock(&p->mu);
        while (!p->stop) {
                struct holder hs[MAX_PEERS];
                const struct holder *from = NULL;
                struct repair *j = NULL, job;
                size_t nh = 0;
                uint64_t size = 0;
                char msg[512];
                int r;

                for (size_t i = 0; i < SS_PULL_REPAIRS && !j; i++)
                        if (p->repairs[i].state == R_QUEUED)
                                j = &p->repairs[i];
                if (!j) {
                        pthread_cond_wait(&p->rcv, &p->mu);
                        continue;
                }
                j->state = R_RUNNING;
                for (size_t i = 0; i < p->nlinks && nh < MAX_PEERS; i++) {
                        const struct link *l = &p->links[i];
                        const struct peer *pe = peer_get(p, l->site);

                        if (l->fg != j->fg || !l->active || !pe)
                                continue;
                        hs[nh].site = pe->site;
                        snprintf(hs[nh].host, sizeof(hs[nh].host), "%s", pe->host);
                        hs[nh].port = pe->port;
                        nh++;
                }
                job = *j;
                pthread_mutex_unlock(&p->mu);
                r = repair_one(p, &job, hs, nh, &from, &size, msg, sizeof(msg));
                pthread_mutex_lock(&p->mu);
                job = *j;               /* (its range may have grown meanwhile) */
                if (r >= 0 && job.materialize) {
                        cm_log(LOG_NOTICE, "fg %u ino %#" PRIx64 ": its data (%" PRIu64 " pages) fetched from site "
                               "%" PRIu64 " (%s:%u) for a write here, where it was not placed: this site keeps "
                               "an extra copy from now on", job.fg, job.ino, (size + 4095) / 4096, from->site,
                               from->host, from->port);
                        j->state = R_FREE;
                } else if (r < 0 && job.materialize) {
                        cm_log(LOG_ERR, "fg %u ino %#" PRIx64 ": its data cannot be fetched from a copy that "
                               "keeps it (%s); writes of it here fail with EIO for %u s", job.fg, job.ino, msg,
                               SS_PULL_REPAIR_RETRY_MS / 1000);
                        j->state = R_FAILED;
                        j->retry_us = cm_now_us() + (uint64_t)SS_PULL_REPAIR_RETRY_MS * 1000;
                } else if (r >= 0) {
                        cm_log(LOG_NOTICE, "fg %u ino %#" PRIx64 ": damaged pages %" PRIu64 "..%" PRIu64
                               " repaired from site %" PRIu64 " (%s:%u): all %" PRIu64 " pages of the file "
                               "rewritten from its copy there (same version vector)", job.fg, job.ino,
                               job.first, job.last, from->site, from->host, from->port,
                               (size + 4095) / 4096);
                        p->repaired++;
                        j->state = R_FREE;
                } else {
                        cm_log(LOG_ERR, "fg %u ino %#" PRIx64 ": damaged pages %" PRIu64 "..%" PRIu64
                               " cannot be repaired from another copy (%s); reads of it fail with EIO for "
                               "%u s, then it is tried again", job.fg, job.ino, job.first, job.last, msg,
                               SS_PULL_REPAIR_RETRY_MS / 1000);
                        p->repair_failed++;
                        j->state = R_FAILED;
                        j->retry_us = cm_now_us() + (uint64_t)SS_PULL_REPAIR_RETRY_MS * 1000;
                }
        }
        pthread_mutex_unlock(&p->mu);
        return NULL;
}

static int queue_job(struct ss_pull *p, uint32_t fg, uint64_t ino, uint64_t first, uint64_t last,
                     bool materialize)
{
        struct repair *j = NULL, *fr = NULL;
        bool holder = false;
        int r = 0;

        if (!p)
                return -ENOENT;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < SS_PULL_REPAIRS; i++) {
                struct repair *k = &p->repairs[i];

                if (k->state == R_FAILED && cm_now_us() >= k->retry_us)
                        k->state = R_FREE;
                if (k->state != R_FREE && k->fg == fg && k->ino == ino)
                        j = k;
                else if (k->state == R_FREE && !fr)
                        fr = k;
        }
        for (size_t i = 0; i < p->nlinks; i++)
                if (p->links[i].fg == fg && p->links[i].active)
                        holder = true;
        if (j && j->state == R_FAILED) {
                r = -EIO;
        } else if (j) {
                j->first = first < j->first ? first : j->first;
                j->last = last > j->last ? last : j->last;
        } else if (!holder || p->stop) {
                r = -ENOENT;
        } else if (!fr) {
                r = -EBUSY;
        } else {
                *fr = (struct repair){ R_QUEUED, fg, ino, first, last, 0, materialize };
                if (materialize)
                        cm_log(LOG_NOTICE, "fg %u ino %#" PRIx64 ": a write here, where its data is not "
                               "placed; fetching the data from a copy that keeps it", fg, ino);
                else
                        cm_log(LOG_WARNING, "fg %u ino %#" PRIx64 ": pages %" PRIu64 "..%" PRIu64 " are damaged "
                               "in this site's log (those a read met); repairing the file from another copy",
                               fg, ino, first, last);
                pthread_cond_signal(&p->rcv);
        }
        pthread_mutex_unlock(&p->mu);
        return r;
}

int ss_pull_repair(struct ss_pull *p, uint32_t fg, uint64_t ino, uint64_t first, uint64_t npages)
{
        return queue_job(p, fg, ino, first, npages ? first + npages - 1 : first, false);
}

int ss_pull_materialize(struct ss_pull *p, uint32_t fg, uint64_t ino)
{
        return queue_job(p, fg, ino, 0, 0, true);
}

/* ---- life ------------------------------------------------------------------------------- */

static char *dup_opt(const char *s, bool *oom)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int ss_pull_start(const struct ss_pull_opts *o, struct ss_pull **ret)
{
        struct ss_pull *p;
        bool oom = false;
        pthread_condattr_t ca;
        int r;

        *ret = NULL;
        if (!o->data_dir || !o->self_host || !o->self_port || (!o->css_port && !o->css_port_file))
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->o = *o;
        p->data_dir = dup_opt(o->data_dir, &oom);
        p->self_host = dup_opt(o->self_host, &oom);
        p->css_host = dup_opt(o->css_host, &oom);
        p->css_port_file = dup_opt(o->css_port_file, &oom);
        if (!p->o.refresh_ms)
                p->o.refresh_ms = 1000;
        if (!p->o.poll_ms)
                p->o.poll_ms = 50;
        if (!p->o.gather_ms)
                p->o.gather_ms = SS_PULL_GATHER_MS;
        else if (p->o.gather_ms == UINT32_MAX)
                p->o.gather_ms = 0;
        if (!p->o.wait_ms)
                p->o.wait_ms = 500;
        if (!p->o.timeout_ms)
                p->o.timeout_ms = 10000;
        p->start_us = cm_now_us();
        pthread_mutex_init(&p->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->cv, &ca);
        pthread_cond_init(&p->rcv, &ca);
        pthread_condattr_destroy(&ca);
        if (oom) {
                ss_pull_stop(p);
                return -ENOMEM;
        }
        r = pthread_create(&p->mgr, NULL, mgr_main, p);
        if (r) {
                ss_pull_stop(p);
                return -r;
        }
        p->mgr_started = true;
        r = pthread_create(&p->rth, NULL, repair_main, p);
        if (r) {
                ss_pull_stop(p);
                return -r;
        }
        p->rth_started = true;
        *ret = p;
        return 0;
}

void ss_pull_forget_fg(struct ss_pull *p, uint32_t fg)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->nlinks; i++) {
                struct link *l = &p->links[i];

                if (l->fg != fg)
                        continue;
                l->gen++;
                l->loaded = false;      /* read again from the (new) container's folder */
                l->wm = 0;
                l->saved_wm = 0;
                l->current = false;
                l->pulled = 0;
        }
        pthread_mutex_unlock(&p->mu);
}

void ss_pull_signal(struct ss_pull *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_broadcast(&p->cv);
        pthread_cond_broadcast(&p->rcv);
        pthread_mutex_unlock(&p->mu);
}

void ss_pull_kick(struct ss_pull *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->mu);
        p->kick = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
}

void ss_pull_stop(struct ss_pull *p)
{
        if (!p)
                return;
        ss_pull_signal(p);
        if (p->mgr_started)
                pthread_join(p->mgr, NULL);
        if (p->rth_started)
                pthread_join(p->rth, NULL);
        for (size_t i = 0; i < p->nlinks; i++)
                if (p->links[i].started)
                        pthread_join(p->links[i].th, NULL);
        for (size_t i = 0; i < p->npeers; i++)
                free(p->peers[i]);
        hl_free(p);
        pthread_cond_destroy(&p->cv);
        pthread_cond_destroy(&p->rcv);
        pthread_mutex_destroy(&p->mu);
        free(p->data_dir);
        free(p->self_host);
        free(p->css_host);
        free(p->css_port_file);
        free(p);
}

unsigned ss_pull_sync_copies(struct ss_pull *p, uint32_t fg)
{
        unsigned n = 1;

        if (!p)
                return 1;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->nsc; i++)
                if (p->sc[i].fg == fg && p->sc[i].copies > n)
                        n = p->sc[i].copies;
        pthread_mutex_unlock(&p->mu);
        return n;
}

int ss_pull_primary(struct ss_pull *p, uint32_t fg, uint64_t *ret_site)
{
        int r = -ENOENT;

        if (!p)
                return -ENOENT;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->nhl; i++)
                if (p->hl[i].fg == fg) {
                        *ret_site = p->hl[i].primary;
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&p->mu);
        return r;
}

size_t ss_pull_holders(struct ss_pull *p, uint32_t fg, uint64_t *out, size_t cap)
{
        size_t n = 0;

        if (!p)
                return 0;
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->nhl; i++)
                if (p->hl[i].fg == fg) {
                        n = p->hl[i].n < cap ? p->hl[i].n : cap;
                        memcpy(out, p->hl[i].sites, n * sizeof(*out));
                        break;
                }
        pthread_mutex_unlock(&p->mu);
        return n;
}

static void json_text(FILE *m, const char *s)
{
        fputc('"', m);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fprintf(m, "\\%c", *s);
                else if ((unsigned char)*s < 0x20)
                        fprintf(m, "\\u%04x", (unsigned char)*s);
                else
                        fputc(*s, m);
        }
        fputc('"', m);
}

void ss_pull_status_json(struct ss_pull *p, FILE *m)
{
        uint64_t now = cm_now_us();

        fputc('[', m);
        if (p) {
                pthread_mutex_lock(&p->mu);
                for (size_t i = 0, k = 0; i < p->nlinks; i++) {
                        const struct link *l = &p->links[i];

                        if (!l->active)
                                continue;
                        fprintf(m, "%s{\"fg\":%u,\"site\":%" PRIu64 ",\"current\":%s,\"watermark\":%" PRIu64
                                ",\"peer_seq\":%" PRIu64 ",\"pulled\":%" PRIu64 ",\"contact_ms_ago\":%" PRId64
                                ",\"error\":", k++ ? "," : "", l->fg, l->site, l->current ? "true" : "false", l->wm, l->peer_seq, l->pulled,
                                l->contact_us ? (int64_t)((now - l->contact_us) / 1000) : -1);
                        if (l->err)
                                json_text(m, l->msg);
                        else
                                fputs("null", m);
                        fputc('}', m);
                }
                pthread_mutex_unlock(&p->mu);
        }
        fputc(']', m);
}
