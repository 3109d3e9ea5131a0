/*
 * us_sess.c -- write sessions of the using site (us_core.h, "Write
 * sessions"): their lifetime, the requests that name one, their commits.
 * Invariants (1)-(6), which the comments cite: us_core_int.h.
 *
 * Session states, and the functions that move them:
 *
 *   (none) --open/create: us__sess_attach--> ACTIVE (node->sess)
 *   ACTIVE --last writable release: us__sess_detach--> ENDING
 *   ENDING --COMMIT END answered, last us__sess_put--> freed
 *   ACTIVE --a request answers ESTALE: sess_lost--> LOST --last us__sess_put--> freed
 */
#include "us_core_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cm.h"

/* ---- sessions (core->mu held) ----------------------------------------------- */

/* A new session of n, attached as node->sess (2) and held by that (3). */
static struct us_sess *sess_new(struct us_core *core, struct us_node *n, uint64_t id,
                                const struct us_site *site)
{
        struct us_sess *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->node = n;
        n->refs++;
        s->id = id;
        s->site = *site;
        s->refs = 1;                    /* node->sess */
        s->last_use = cm_now_us();
        s->next = &core->sessions;
        s->prev = core->sessions.prev;
        core->sessions.prev->next = s;
        core->sessions.prev = s;
        core->nsess++;
        n->sess = s;
        return s;
}

/* Drop one ref (3); the last one frees s.  s is not to be touched after. */
void us__sess_put(struct us_core *core, struct us_sess *s)
{
        if (s->refs == 0) {
                cm_log(LOG_CRIT, "write session %llu: reference count underflow",
                       (unsigned long long)s->id);
                abort();
        }
        if (--s->refs)
                return;
        s->prev->next = s->next;
        s->next->prev = s->prev;
        core->nsess--;
        us__node_put(core, s->node);
        free(s);
}

void us__node_cache_stale(struct us_node *n)
{
        n->have_version = false;
        n->cache_bad = true;            /* a later commit does not make it good */
}

/* A commit of n's data this mount made landed (us_core_int.h (5)). */
void us__note_commit(struct us_core *core, struct us_node *n)
{
        n->chg_seq = ++core->chg_seq;
}

/* fh (writable) becomes one of s's handles (6). */
void us__sess_join(struct us_sess *s, struct us_fh *fh)
{
        s->refs++;
        s->handles++;
        fh->sess = s;
}

/* fh lets go of its session: the handle count drops, the ref passes to
 * the caller, who ends with us__sess_put(). */
struct us_sess *us__sess_leave(struct us_fh *fh)
{
        struct us_sess *s = fh->sess;

        fh->sess = NULL;
        if (s)
                s->handles--;
        return s;
}

/* s is no longer the node's session (lost or ending); s stays valid while
 * the caller holds a ref of its own. */
void us__sess_detach(struct us_core *core, struct us_sess *s)
{
        struct us_node *n = s->node;

        if (n->sess != s)
                return;
        n->sess = NULL;
        us__sess_put(core, s);
}

/*
 * fh (writable) takes part in n's write session: the live one if n has
 * one -- then the session id the storage site just opened for fh is not
 * needed, and *ret_extra says which to abort -- else a new one, id at
 * site.  1 if it joined, 0 if it started one, -ENOMEM.  (2)
 */
int us__sess_attach(struct us_core *core, struct us_node *n, struct us_fh *fh, uint64_t id,
                    const struct us_site *site, uint64_t *ret_extra)
{
        struct us_sess *s = n->sess;

        *ret_extra = 0;
        if (s) {
                us__sess_join(s, fh);
                *ret_extra = id;
                return 1;
        }
        s = sess_new(core, n, id, site);
        if (!s) {
                *ret_extra = id;
                return -ENOMEM;
        }
        us__sess_join(s, fh);
        return 0;
}

static void sess_lost(struct us_core *core, struct us_sess *s, int why)
{
        struct us_node *n = s->node;

        if (s->err || s->ending)
                return;
        s->err = -EIO;
        us__node_cache_stale(n);
        cm_log(LOG_WARNING, "<%u,%llu> at site %llu (%s:%u): write session %llu is gone (%s): "
               "the storage site restarted or aborted it; the writes since the last commit "
               "are lost and the descriptors that made them now fail with EIO; the file "
               "keeps its last committed content", n->fg, (unsigned long long)n->ino,
               (unsigned long long)s->site.site, s->site.host, s->site.port,
               (unsigned long long)s->id, strerror(-why));
        pthread_cond_broadcast(&core->cv);
        us__sess_detach(core, s);
}

/* A request is about to name s (4). */
void us__sess_use(struct us_sess *s)
{
        s->refs++;
        s->busy++;
        s->last_use = cm_now_us();
}

/* The request that named s is done with answer r; s may be freed. */
void us__sess_unuse(struct us_core *core, struct us_sess *s, int r)
{
        s->busy--;
        if (r == -ESTALE)
                sess_lost(core, s, r);
        if (!s->busy)
                pthread_cond_broadcast(&core->cv);
        us__sess_put(core, s);
}

/* The session a read-like request through fh (may be NULL) on n names. */
struct us_sess *us__sess_pick(struct us_node *n, struct us_fh *fh)
{
        if (fh && fh->sess && !fh->sess->err && !fh->sess->ending)
                return fh->sess;
        return n->sess;
}

/* Remember the version seen; say whether the kernel may keep its cache. */
bool us__note_version(struct us_node *n, uint64_t version)
{
        bool keep = n->have_version && n->version == version && !n->cache_bad;

        n->have_version = true;
        n->version = version;
        return keep;
}

/* ---- requests naming a session, commits (core->mu not held) ------------------ */

/*
 * Send req about node n (through fh, may be NULL) naming the right
 * session: wait for a pending END commit, pick the session, mark it busy
 * for the duration.  An -ESTALE answer loses the session; an optional one
 * is then tried again without it, a required one gives -EIO.  req->session
 * says afterwards which session was named (0: none).
 */
int us__call_sess(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                  struct us_fh *fh, enum sess_need need, struct lp_fs_req *req,
                  enum us_resend rs, struct lp_fs_resp *resp)
{
        for (int tries = 0;; tries++) {
                struct us_target t;
                struct us_sess *s;
                int r;

                pthread_mutex_lock(&core->mu);
                /* A change waits for a session being started, and goes
                 * through it: made beside it, it would conflict with the
                 * session's snapshot, whose next write would then fail. */
                r = us__node_wait(core, n, ctx, need == SESS_OPTIONAL && !us__read_only(req->op));
                if (r < 0) {
                        pthread_mutex_unlock(&core->mu);
                        return r;
                }
                if (need == SESS_OWN) {
                        s = fh ? fh->sess : NULL;
                        if (!s) {
                                pthread_mutex_unlock(&core->mu);
                                return -EBADF;
                        }
                        if (s->err) {
                                pthread_mutex_unlock(&core->mu);
                                return -EIO;
                        }
                } else {
                        s = us__sess_pick(n, fh);
                }
                if (s) {
                        us__sess_use(s);
                        req->session = s->id;
                        us__sess_target(core, n->fg, &s->site, &t);
                } else if (!us__read_only(req->op)) {
                        n->changing++;          /* (5) */
                }
                pthread_mutex_unlock(&core->mu);
                if (!s) {
                        req->session = 0;
                        r = us__node_target(core, ctx, n, fh, &t);
                        if (r == 0)
                                r = us__call(core, ctx, &t, req, rs, resp);
                        if (!us__read_only(req->op)) {
                                /* Committed by the storage site at once
                                 * (or maybe, after an error): a session
                                 * begun before it must not be attached. */
                                pthread_mutex_lock(&core->mu);
                                n->changing--;
                                us__note_commit(core, n);
                                pthread_cond_broadcast(&core->cv);
                                pthread_mutex_unlock(&core->mu);
                        }
                        return r;
                }
                r = us__call(core, ctx, &t, req, rs, resp);
                pthread_mutex_lock(&core->mu);
                if (r == 0 && !us__read_only(req->op))
                        s->dirty = true;        /* the next flush commits it */
                us__sess_unuse(core, s, r);
                pthread_mutex_unlock(&core->mu);
                if (r != -ESTALE)
                        return r;
                if (need == SESS_OWN || tries > 0)
                        return -EIO;
        }
}

/* Abort session id of <fg, ino> at t's site: the storage site opened it
 * for a handle that joined another one (us__sess_attach).  Best effort: the
 * storage site aborts idle sessions by itself. */
void us__sess_abort(struct us_core *core, const struct us_ctx *ctx, struct us_target *t,
                    uint32_t fg, uint64_t ino, uint64_t id)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;

        us__req_init(&req, ctx, LP_FS_ABORT, fg, ino);
        req.session = id;
        if (us__call(core, ctx, t, &req, US_RESEND_ANY, &resp) == 0)
                lp_fs_resp_release(&resp);
}

/* Commit session s of node n (no flush to disk, session kept).  Caller
 * does not hold core->mu. */
int us__sess_commit(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                    struct us_sess *s, uint32_t flags)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        us__req_init(&req, ctx, LP_FS_COMMIT, n->fg, n->ino);
        req.session = s->id;
        req.flags = flags;
        us__sess_target(core, n->fg, &s->site, &t);
        /* Without END a commit may be sent twice: the second finds nothing
         * new to commit. */
        r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        pthread_mutex_lock(&core->mu);
        if (r < 0) {
                s->dirty = true;        /* before us__sess_unuse, which may free s */
                us__node_cache_stale(n);
        }
        us__sess_unuse(core, s, r);
        us__note_commit(core, n);               /* (5) */
        if (r == 0) {
                us__note_version(n, resp.version ? resp.version : (resp.has_attr ? resp.attr.version : 0));
                /* The kernel asks for the attributes right after a close
                 * (a write made it drop them): this answer has them. */
                if (resp.has_attr && resp.attr.ino == n->ino) {
                        n->cattr = resp.attr;
                        n->cattr_at = cm_now_us();
                        n->cattr_gen = us_sa_generation(core->sa);
                        n->cattr_valid = true;
                        n->has_ksize = true;    /* us_core_size_news */
                        n->ksize = resp.attr.size;
                }
        }
        pthread_mutex_unlock(&core->mu);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r == -ESTALE ? -EIO : r;
}
