/*
 * us_watch.c -- see us_watch.h.
 *
 * State: `up` and `epoch` are atomics read by request handlers; `stop`,
 * the stats and the backoff wait are under mu.  The epoch moves before
 * every batch is applied and whenever the watch goes down or up, so an
 * answer built across any of those gets the short timeouts.
 */
#include "us_watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_note.h"
#include "us_dent.h"
#include "us_mtab.h"
#include "us_ops.h"

struct us_watch {
        struct us_core *core;
        struct fuse_session *se;
        struct us_dent *dent;
        struct us_watch_opts o;
        uint8_t key[LP_KEY_SIZE];
        uint64_t client;
        atomic_bool up;
        atomic_bool quiet;              /* stopping: no more notifications */
        atomic_uint_fast64_t epoch;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        pthread_t thread;
        bool running, stop;
        struct us_watch_stats st;       /* up is the atomic's */
};

int us_watch_new(struct us_core *core, const uint8_t key[LP_KEY_SIZE], const struct us_watch_opts *o,
                 struct us_watch **ret)
{
        struct us_watch *w = calloc(1, sizeof(*w));
        pthread_condattr_t ca;
        int r;

        if (!w)
                return -ENOMEM;
        r = us_dent_new(0, &w->dent);
        if (r < 0) {
                free(w);
                return r;
        }
        w->core = core;
        w->o = *o;
        memcpy(w->key, key, sizeof(w->key));
        w->client = us_rpc_client_id(us_core_rpc(core));
        atomic_init(&w->up, false);
        atomic_init(&w->quiet, false);
        atomic_init(&w->epoch, 1);
        pthread_mutex_init(&w->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cv, &ca);
        pthread_condattr_destroy(&ca);
        *ret = w;
        return 0;
}

void us_watch_free(struct us_watch *w)
{
        if (!w)
                return;
        us_watch_join(w);
        us_dent_free(w->dent);
        lp_key_wipe(w->key, sizeof(w->key));
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
}

/* ---- timeouts (request handlers) ---------------------------------------------------- */

uint64_t us_watch_epoch(struct us_watch *w)
{
        return w ? atomic_load(&w->epoch) : 0;
}

static double shorter(double a, double b)
{
        return a < b ? a : b;
}

static bool trusted(struct us_watch *w, uint64_t epoch)
{
        return atomic_load(&w->up) && atomic_load(&w->epoch) == epoch;
}

double us_watch_attr_timeout(struct us_watch *w, uint64_t epoch)
{
        if (!w)
                return US_ATTR_TIMEOUT;
        if (trusted(w, epoch))
                return w->o.attr_timeout;
        return shorter(w->o.attr_timeout, w->o.attr_default);
}

double us_watch_entry_timeout(struct us_watch *w, uint64_t epoch, uint64_t parent, const char *name)
{
        double lim;

        if (!w)
                return US_ENTRY_TIMEOUT;
        lim = shorter(w->o.entry_timeout, w->o.entry_default);
        if (!atomic_load(&w->up))
                return lim;
        /* Record first, then compare (us_watch.h "Timeouts"); short
         * timeouts too, so that a note drops those names at once. */
        if (!us_dent_add(w->dent, parent, name, strlen(name),
                         cm_now_us() + (uint64_t)(w->o.entry_timeout * 1e6) + 1000000u))
                return lim;
        return trusted(w, epoch) ? w->o.entry_timeout : lim;
}

void us_watch_stats(struct us_watch *w, struct us_watch_stats *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (!w)
                return;
        pthread_mutex_lock(&w->mu);
        *ret = w->st;
        pthread_mutex_unlock(&w->mu);
        ret->up = atomic_load(&w->up);
}

/* ---- applying notes (the watch thread) ------------------------------------------------ */

static void count(struct us_watch *w, uint64_t *field, uint64_t n)
{
        pthread_mutex_lock(&w->mu);
        *field += n;
        pthread_mutex_unlock(&w->mu);
}

static void inval_inode(struct us_watch *w, uint64_t fino, off_t off, off_t len)
{
        int r;

        if (atomic_load(&w->quiet))
                return;
        r = fuse_lowlevel_notify_inval_inode(w->se, fino, off, len);

        if (r < 0 && r != -ENOENT)
                cm_log(LOG_DEBUG, "invalidating inode %#llx: %s", (unsigned long long)fino, strerror(-r));
        count(w, &w->st.inval_inode, 1);
}

static void inval_name(void *ctx, uint64_t parent, const char *name, size_t len)
{
        struct us_watch *w = ctx;
        int r;

        if (atomic_load(&w->quiet))
                return;
        r = fuse_lowlevel_notify_inval_entry(w->se, parent, name, len);

        if (r < 0 && r != -ENOENT)
                cm_log(LOG_DEBUG, "invalidating %s in %#llx: %s", name, (unsigned long long)parent,
                       strerror(-r));
        count(w, &w->st.inval_entry, 1);
}

/* Everything the kernel may cache of fg (0: of every group). */
static void inval_group(struct us_watch *w, uint32_t fg)
{
        uint64_t *v = NULL;
        size_t n = 0;

        if (us_core_known(w->core, fg, &v, &n) < 0) {
                cm_log(LOG_WARNING, "no memory to list the cached inodes: invalidating names only");
                n = 0;
        }
        /* Names first (their directories' lists), then the inodes. */
        if (!fg)
                us_dent_take_all(w->dent, inval_name, w);
        for (size_t i = 0; i < n; i++) {
                if (fg)
                        us_dent_take(w->dent, v[i], inval_name, w);
                inval_inode(w, v[i], 0, 0);
        }
        free(v);
}

static void apply(struct us_watch *w, const struct lp_note *o)
{
        uint64_t fino;

        if (o->flags & LP_NOTE_GROUP) {
                cm_log(LOG_DEBUG, "commit note: everything of %s%u may have changed", o->fg ? "file group " : "",
                       o->fg);
                inval_group(w, o->fg);
                return;
        }
        if (us_ino_to_fuse(o->fg, o->ino, &fino) < 0)
                return;
        cm_log(LOG_DEBUG, "commit note: <%u,%#llx> version %llu%s%s, %zu extents, by client %016llx", o->fg,
               (unsigned long long)o->ino, (unsigned long long)o->version, o->flags & LP_NOTE_GONE ? ", gone" : "",
               o->flags & LP_NOTE_ALLDATA ? ", all data" : "", o->next, (unsigned long long)o->client);
        /* a directory's names (none for a file) */
        us_dent_take(w->dent, fino, inval_name, w);
        if (!us_core_note(w->core, fino))
                return;
        count(w, &w->st.known, 1);
        if (o->flags & LP_NOTE_ALLDATA) {
                inval_inode(w, fino, 0, 0);
                return;
        }
        if (!o->next) {
                inval_inode(w, fino, -1, 0);    /* attributes only */
                return;
        }
        for (size_t k = 0; k < o->next; k++) {
                if (o->ext[k].off > INT64_MAX || o->ext[k].len > INT64_MAX) {
                        inval_inode(w, fino, 0, 0);
                        return;
                }
                inval_inode(w, fino, (off_t)o->ext[k].off, (off_t)o->ext[k].len);
        }
}

static void apply_batch(struct us_watch *w, const struct lp_fs_req *q)
{
        struct lp_note_batch b;
        int r = lp_note_decode(q->blob, q->bloblen, &b);

        if (r < 0) {
                /* we cannot know what changed: as if we had missed notes */
                cm_log(LOG_WARNING, "malformed commit notes from the CSS: %s; invalidating everything",
                       strerror(-r));
                atomic_fetch_add(&w->epoch, 1);
                us_core_note_batch(w->core);
                inval_group(w, 0);
                return;
        }
        atomic_fetch_add(&w->epoch, 1);
        us_core_note_batch(w->core);
        for (size_t i = 0; i < b.n; i++)
                apply(w, &b.v[i]);
        pthread_mutex_lock(&w->mu);
        w->st.batches++;
        w->st.notes += b.n;
        pthread_mutex_unlock(&w->mu);
        lp_note_batch_free(&b);
}

/* The mount table changed (a group created, mounted, moved): read it now,
 * then drop the names the kernel keeps long (a mount point may be one). */
static void mtab_changed(struct us_watch *w)
{
        struct us_ctx ctx;
        int r;

        us_ctx_self(w->core, &ctx);
        r = us_core_refresh_mtab(w->core, &ctx);
        if (r < 0)
                cm_log(LOG_NOTICE, "the CSS says the mount table changed, but reading it failed: %s "
                       "(read again at the next refresh)", strerror(-r));
        atomic_fetch_add(&w->epoch, 1);
        us_core_note_batch(w->core);
        us_dent_take_all(w->dent, inval_name, w);
        count(w, &w->st.mtabs, 1);
}

/* ---- the connection ------------------------------------------------------------------- */

static bool stopping(struct us_watch *w)
{
        bool s;

        pthread_mutex_lock(&w->mu);
        s = w->stop;
        pthread_mutex_unlock(&w->mu);
        return s;
}

/* Wait ms or until stopped; true when stopped. */
static bool pause_ms(struct us_watch *w, unsigned ms)
{
        uint64_t until = cm_now_us() + (uint64_t)ms * 1000u;
        bool s;

        pthread_mutex_lock(&w->mu);
        while (!w->stop && cm_now_us() < until) {
                struct timespec ts = { (time_t)(until / 1000000u), (long)(until % 1000000u) * 1000 };

                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        s = w->stop;
        pthread_mutex_unlock(&w->mu);
        return s;
}

/* One request on c, answered with status 0: 0 or an error. */
static int call(struct lp_client *c, uint32_t op, int timeout_ms)
{
        struct lp_fs_req q = { .op = op };
        struct lp_fs_resp a;
        int r = lp_fs_call(c, &q, timeout_ms, &a, NULL);

        if (r < 0)
                return r;
        r = a.status;
        lp_fs_resp_release(&a);
        return r;
}

/* Serve one watch connection until it breaks or we stop. */
static void serve(struct us_watch *w, struct lp_client *c)
{
        uint64_t quiet_since = cm_now_us();

        while (!stopping(w)) {
                uint16_t type, flags;
                uint64_t reqid;
                void *payload = NULL;
                size_t len = 0;
                struct lp_fs_req q;
                int r = lp_client_recv(c, US_WATCH_SLICE_MS, &type, &flags, &reqid, &payload, &len);

                if (r == -ETIMEDOUT) {
                        if (cm_now_us() - quiet_since < (uint64_t)US_WATCH_IDLE_MS * 1000u)
                                continue;
                        r = call(c, LP_FS_NOP, US_WATCH_NOP_MS);
                        if (r < 0 && r != -EOPNOTSUPP) {
                                cm_log(LOG_NOTICE, "the CSS did not answer on the watch connection: %s; "
                                       "watching again", strerror(-r));
                                return;
                        }
                        quiet_since = cm_now_us();
                        continue;
                }
                if (r < 0) {
                        cm_log(LOG_NOTICE, "the watch connection to the CSS broke: %s; watching again",
                               strerror(-r));
                        return;
                }
                quiet_since = cm_now_us();
                if (type == LP_MSG_FS_REQ && !(flags & LP_F_REPLY) && lp_fs_req_decode(payload, len, &q) >= 0) {
                        if (q.op == LP_FS_CSS_NOTE_INVAL)
                                apply_batch(w, &q);
                        else if (q.op == LP_FS_CSS_NOTE_MTAB)
                                mtab_changed(w);
                        lp_fs_req_release(&q);
                }
                free(payload);
        }
}

static void *thread_main(void *arg)
{
        struct us_watch *w = arg;
        unsigned backoff = 100;
        bool failing = false;

        while (!stopping(w)) {
                struct us_site css;
                struct lp_client *c = NULL;
                int r = us_core_css_addr(w->core, &css);

                if (r >= 0)
                        r = lp_client_connect_as(css.host, css.port, w->key, w->o.site, w->client,
                                                 US_WATCH_CONNECT_MS, &c);
                if (r >= 0)
                        r = call(c, LP_FS_CSS_WATCH, US_WATCH_NOP_MS);
                if (r < 0) {
                        if (!failing)
                                cm_log(LOG_NOTICE, "cannot watch the CSS at %s:%u for commit notes: %s "
                                       "(retrying; caches short meanwhile)", css.host, css.port, strerror(-r));
                        failing = true;
                        lp_client_close(c);
                        if (pause_ms(w, backoff))
                                break;
                        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
                        continue;
                }
                /* Watching: notes from now on.  Those missed before: drop
                 * everything, then trust the long timeouts. */
                atomic_fetch_add(&w->epoch, 1);
                us_core_note_batch(w->core);
                inval_group(w, 0);
                atomic_fetch_add(&w->epoch, 1);
                atomic_store(&w->up, true);
                count(w, &w->st.connects, 1);
                cm_log(failing ? LOG_NOTICE : LOG_INFO, "watching the CSS at %s:%u for commit notes", css.host,
                       css.port);
                failing = false;
                backoff = 100;
                serve(w, c);
                atomic_store(&w->up, false);
                atomic_fetch_add(&w->epoch, 1);
                lp_client_close(c);
        }
        return NULL;
}

int us_watch_start(struct us_watch *w, struct fuse_session *se)
{
        int r;

        if (!w)
                return 0;
        w->se = se;
        w->stop = false;
        r = pthread_create(&w->thread, NULL, thread_main, w);
        if (r)
                return -r;
        w->running = true;
        return 0;
}

static void signal_stop(struct us_watch *w)
{
        atomic_store(&w->quiet, true);
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
}

/* The thread has been joined. */
static void joined(struct us_watch *w)
{
        w->running = false;
        atomic_store(&w->up, false);
        cm_log(LOG_INFO, "commit notes: %llu received in %llu batches, %llu about cached inodes; "
               "%llu inode and %llu name invalidations",
               (unsigned long long)w->st.notes, (unsigned long long)w->st.batches,
               (unsigned long long)w->st.known, (unsigned long long)w->st.inval_inode,
               (unsigned long long)w->st.inval_entry);
}

void us_watch_stop(struct us_watch *w)
{
        struct timespec until;

        if (!w || !w->running)
                return;
        signal_stop(w);
        /* A notification may wait for a directory's lock that a request
         * holds, which nobody answers any more (the session loop ended):
         * then the thread returns only once the unmount has aborted the
         * connection, and us_watch_join() waits for it there. */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(US_WATCH_STOP_MS % 1000) * 1000000L;
        until.tv_sec += US_WATCH_STOP_MS / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        if (pthread_timedjoin_np(w->thread, NULL, &until) != 0) {
                cm_log(LOG_DEBUG, "the watch thread has not ended within %d ms (a call to the CSS, or a "
                       "notification the kernel holds): joining it after the unmount", US_WATCH_STOP_MS);
                return;
        }
        joined(w);
}

void us_watch_join(struct us_watch *w)
{
        if (!w || !w->running)
                return;
        signal_stop(w);
        pthread_join(w->thread, NULL);
        joined(w);
}
