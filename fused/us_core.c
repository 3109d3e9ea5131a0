/*
 * us_core.c -- see us_core.h.
 *
 * Invariants (core->mu protects every field named here):
 *   (1) a node is in the hash table while any of nlookup, refs, nopen,
 *       sess, committing, opening is non-zero, and is freed as soon as all
 *       are zero (node_maybe_free);
 *   (2) node->sess, when set, is a session that is neither lost (err == 0)
 *       nor ending, and is the only such session of that node: a session
 *       the storage site opens for a node that has one already is aborted
 *       and the handle joins the live one (sess_attach), never replaces it;
 *   (3) a session is in core->sessions and holds one node ref from
 *       sess_new() until it is freed.  Its lifetime is one count, refs: one
 *       for node->sess while attached, one per writable handle (fh->sess),
 *       one per request in flight (busy), and the last release's own while
 *       its END commit is in flight (it inherits the handle's).  Every one
 *       is dropped exactly once, by sess_put(), the only place that frees;
 *       so refs reaches zero once, and nothing touches the session after
 *       its own sess_put();
 *   (4) busy counts requests in flight that name the session; its END
 *       commit is sent only once busy == 0 (or the release's deadline
 *       passed) and after it is detached from the node (so no new request
 *       can name it);
 *   (5) node->committing > 0 exactly while an END commit of one of its
 *       sessions is in flight; node->opening while a request that starts
 *       a session is in flight; neither is ever held across a return to
 *       the kernel except by the release that owns it;
 *   (6) every struct us_fh is in core->fhs and holds one node ref and one
 *       nopen; a writable one holds one session ref and one of its
 *       handles (fh->sess) until release, even if the session is lost.
 *
 * Session states, and the functions that move them:
 *
 *   (none) --open/create: sess_attach--> ACTIVE (node->sess)
 *   ACTIVE --last writable release: sess_detach--> ENDING
 *   ENDING --COMMIT END answered, last sess_put--> freed
 *   ACTIVE --a request answers ESTALE: sess_lost--> LOST --last sess_put--> freed
 *
 * The mutex is never held during a request (us_rpc_call); waits are on
 * core->cv (CLOCK_MONOTONIC), with the caller's deadline except for (4),
 * whose waiters are requests that have deadlines of their own.
 */
#include "us_core.h"
#include "us_sa.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cm.h"

struct us_sess;

struct us_node {
        struct us_node *hnext;
        uint64_t fino;
        uint32_t fg;
        uint64_t ino;
        uint64_t nlookup;               /* the kernel's lookup count */
        unsigned refs;                  /* requests, handles, sessions holding it */
        unsigned nopen;                 /* open handles, and opens in progress */
        struct us_sess *sess;           /* (2) */
        unsigned committing;            /* (5) */
        bool opening;                   /* (5) */
        bool have_version;
        uint64_t version;               /* seen at the last open or commit here */
        uint64_t nocaps_until;          /* no security.capability until then (us) */
        /* The attributes a commit answered, good while the us_sa generation
         * is cattr_gen and for US_ATTR_TIMEOUT_US after cattr_at. */
        bool cattr_valid;
        struct lp_fs_attr cattr;
        uint64_t cattr_at, cattr_gen;
};

struct us_sess {
        struct us_sess *next, *prev;    /* core->sessions */
        struct us_node *node;           /* (3) */
        uint64_t id;
        struct us_site site;
        unsigned refs;                  /* lifetime (3) */
        unsigned handles;               /* writable handles (6) */
        unsigned busy;                  /* (4) */
        int err;                        /* 0, or -EIO once lost (sticky) */
        bool dirty;                     /* changes not committed yet */
        bool ending;
        uint64_t last_use;
};

struct us_fh {
        struct us_fh *next, *prev;      /* core->fhs (6) */
        struct us_node *node;
        int flags;
        bool writable;
        bool css_open;                  /* CSS_CLOSE at release */
        uint64_t css_boot;              /* the CSS instance that recorded the open */
        struct us_sess *sess;           /* writable handles (6) */
        struct us_site site;            /* where reads without a session go */
        int werr;                       /* first write error flush has not reported */
};

struct us_core {
        struct us_core_opts o;
        char *css_port_file;
        struct us_rpc *rpc;
        struct us_mtab *mtab;
        struct us_sa *sa;               /* statahead (us_sa.h) */

        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct us_node **ht;
        size_t htcap, nnodes;
        struct us_sess sessions;        /* list head */
        struct us_fh fhs;               /* list head */
        size_t nsess, nfh;

        pthread_mutex_t mtmu;           /* one mount-table refresh at a time */
        uint64_t mt_last_try;
        uint64_t css_boot;              /* the CSS's boot id, last seen (mu) */
        bool reannounce;                /* a new CSS: tell it our opens (mu) */

        pthread_mutex_t kmu;
        pthread_cond_t kcv;
        pthread_t keeper;
        bool keeper_running;
        bool keeper_stop;
        bool destroyed;
};

/* ---- small helpers ---------------------------------------------------------- */

static void cond_init(pthread_cond_t *cv)
{
        pthread_condattr_t a;

        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(cv, &a);
        pthread_condattr_destroy(&a);
}

/* Wait on cv until woken or the deadline; -ETIMEDOUT once it has passed. */
static int cv_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline)
{
        struct timespec ts;

        if (cm_now_us() >= deadline)
                return -ETIMEDOUT;
        ts.tv_sec = (time_t)(deadline / 1000000u);
        ts.tv_nsec = (long)(deadline % 1000000u) * 1000;
        pthread_cond_timedwait(cv, mu, &ts);
        return 0;
}

static int check_name(const char *name)
{
        size_t n = strlen(name);

        if (n == 0)
                return -ENOENT;
        if (n > LP_FS_NAME_MAX)
                return -ENAMETOOLONG;
        return 0;
}

static bool is_dots(const char *name)
{
        return !strcmp(name, ".") || !strcmp(name, "..");
}

static void req_init(struct lp_fs_req *req, const struct us_ctx *ctx, uint32_t op, uint32_t fg,
                     uint64_t ino)
{
        memset(req, 0, sizeof(*req));
        req->op = op;
        req->cred = ctx->cred;
        req->cred.groups = ctx->cred.ngroups ? ctx->groups : NULL;
        req->fg = fg;
        req->ino = ino;
}

static void req_name(struct lp_fs_req *req, const char *name)
{
        req->name = (const uint8_t *)name;
        req->namelen = strlen(name);
}

void us_attr_to_stat(const struct lp_fs_attr *a, uint64_t fino, struct stat *st)
{
        memset(st, 0, sizeof(*st));
        st->st_ino = fino;
        st->st_mode = a->mode;
        st->st_nlink = a->nlink;
        st->st_uid = a->uid;
        st->st_gid = a->gid;
        st->st_rdev = a->rdev;
        st->st_size = (off_t)a->size;
        st->st_blocks = (blkcnt_t)a->blocks;
        st->st_blksize = US_BLKSIZE;
        st->st_atim.tv_sec = a->atime.sec;
        st->st_atim.tv_nsec = a->atime.nsec;
        st->st_mtim.tv_sec = a->mtime.sec;
        st->st_mtim.tv_nsec = a->mtime.nsec;
        st->st_ctim.tv_sec = a->ctime.sec;
        st->st_ctim.tv_nsec = a->ctime.nsec;
}

/* ---- nodes (core->mu held) -------------------------------------------------- */

static size_t hash_ino(uint64_t fino, size_t cap)
{
        fino ^= fino >> 33;
        fino *= UINT64_C(0xff51afd7ed558ccd);
        fino ^= fino >> 33;
        return (size_t)(fino & (cap - 1));
}

static struct us_node *node_find(struct us_core *core, uint64_t fino)
{
        struct us_node *n;

        for (n = core->ht[hash_ino(fino, core->htcap)]; n; n = n->hnext)
                if (n->fino == fino)
                        return n;
        return NULL;
}

static void ht_grow(struct us_core *core)
{
        size_t cap = core->htcap * 2;
        struct us_node **ht = calloc(cap, sizeof(*ht));

        if (!ht)
                return;         /* longer chains, still correct */
        for (size_t i = 0; i < core->htcap; i++) {
                struct us_node *n = core->ht[i], *next;

                for (; n; n = next) {
                        size_t h = hash_ino(n->fino, cap);

                        next = n->hnext;
                        n->hnext = ht[h];
                        ht[h] = n;
                }
        }
        free(core->ht);
        core->ht = ht;
        core->htcap = cap;
}

/* The node of fino, created if needed, with one more ref. */
static struct us_node *node_get(struct us_core *core, uint64_t fino)
{
        struct us_node *n = node_find(core, fino);
        size_t h;

        if (!n) {
                uint32_t fg;
                uint64_t ino;

                if (us_ino_from_fuse(fino, &fg, &ino) < 0)
                        return NULL;
                n = calloc(1, sizeof(*n));
                if (!n)
                        return NULL;
                n->fino = fino;
                n->fg = fg;
                n->ino = ino;
                if (core->nnodes >= core->htcap * 2)
                        ht_grow(core);
                h = hash_ino(fino, core->htcap);
                n->hnext = core->ht[h];
                core->ht[h] = n;
                core->nnodes++;
        }
        n->refs++;
        return n;
}

static void node_maybe_free(struct us_core *core, struct us_node *n)
{
        struct us_node **pp;

        if (n->nlookup || n->refs || n->nopen || n->sess || n->committing || n->opening)
                return;
        for (pp = &core->ht[hash_ino(n->fino, core->htcap)]; *pp; pp = &(*pp)->hnext) {
                if (*pp == n) {
                        *pp = n->hnext;
                        break;
                }
        }
        core->nnodes--;
        free(n);
}

static void node_put(struct us_core *core, struct us_node *n)
{
        n->refs--;
        node_maybe_free(core, n);
}

/* Wait until no END commit of n is in flight (and, if also_opening, no
 * session is being started). */
static int node_wait(struct us_core *core, struct us_node *n, const struct us_ctx *ctx,
                     bool also_opening)
{
        while (n->committing || (also_opening && n->opening)) {
                if (cv_wait_until(&core->cv, &core->mu, ctx->call.deadline) < 0)
                        return -ETIMEDOUT;
        }
        return 0;
}

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
static void sess_put(struct us_core *core, struct us_sess *s)
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
        node_put(core, s->node);
        free(s);
}

/* fh (writable) becomes one of s's handles (6). */
static void sess_join(struct us_sess *s, struct us_fh *fh)
{
        s->refs++;
        s->handles++;
        fh->sess = s;
}

/* fh lets go of its session: the handle count drops, the ref passes to
 * the caller, who ends with sess_put(). */
static struct us_sess *sess_leave(struct us_fh *fh)
{
        struct us_sess *s = fh->sess;

        fh->sess = NULL;
        if (s)
                s->handles--;
        return s;
}

/* s is no longer the node's session (lost or ending); s stays valid while
 * the caller holds a ref of its own. */
static void sess_detach(struct us_core *core, struct us_sess *s)
{
        struct us_node *n = s->node;

        if (n->sess != s)
                return;
        n->sess = NULL;
        sess_put(core, s);
}

/*
 * fh (writable) takes part in n's write session: the live one if n has
 * one -- then the session id the storage site just opened for fh is not
 * needed, and *ret_extra says which to abort -- else a new one, id at
 * site.  1 if it joined, 0 if it started one, -ENOMEM.  (2)
 */
static int sess_attach(struct us_core *core, struct us_node *n, struct us_fh *fh, uint64_t id,
                       const struct us_site *site, uint64_t *ret_extra)
{
        struct us_sess *s = n->sess;

        *ret_extra = 0;
        if (s) {
                sess_join(s, fh);
                *ret_extra = id;
                return 1;
        }
        s = sess_new(core, n, id, site);
        if (!s) {
                *ret_extra = id;
                return -ENOMEM;
        }
        sess_join(s, fh);
        return 0;
}

static void sess_lost(struct us_core *core, struct us_sess *s, int why)
{
        struct us_node *n = s->node;

        if (s->err || s->ending)
                return;
        s->err = -EIO;
        cm_log(LOG_WARNING, "<%u,%llu> at site %llu (%s:%u): write session %llu is gone (%s): "
               "the storage site restarted or aborted it; the writes since the last commit "
               "are lost and the descriptors that made them now fail with EIO; the file "
               "keeps its last committed content", n->fg, (unsigned long long)n->ino,
               (unsigned long long)s->site.site, s->site.host, s->site.port,
               (unsigned long long)s->id, strerror(-why));
        pthread_cond_broadcast(&core->cv);
        sess_detach(core, s);
}

/* A request is about to name s (4). */
static void sess_use(struct us_sess *s)
{
        s->refs++;
        s->busy++;
        s->last_use = cm_now_us();
}

/* The request that named s is done with answer r; s may be freed. */
static void sess_unuse(struct us_core *core, struct us_sess *s, int r)
{
        s->busy--;
        if (r == -ESTALE)
                sess_lost(core, s, r);
        if (!s->busy)
                pthread_cond_broadcast(&core->cv);
        sess_put(core, s);
}

/* The session a read-like request through fh (may be NULL) on n names. */
static struct us_sess *sess_pick(struct us_node *n, struct us_fh *fh)
{
        if (fh && fh->sess && !fh->sess->err && !fh->sess->ending)
                return fh->sess;
        return n->sess;
}

/* ---- targets ------------------------------------------------------------------ */

static int css_addr(struct us_core *core, struct us_site *addr)
{
        memset(addr, 0, sizeof(*addr));
        snprintf(addr->host, sizeof(addr->host), "%s", core->o.css_host);
        addr->port = core->o.css_port;
        if (core->css_port_file) {
                char buf[32];
                char *end;
                long v;

                if (cm_read_file(core->css_port_file, buf, sizeof(buf)) > 0) {
                        v = strtol(buf, &end, 10);
                        if (!*end && v > 0 && v <= 65535)
                                addr->port = (uint16_t)v;
                }
        }
        return addr->port ? 0 : -EHOSTUNREACH;
}

static int resolve_css(void *arg, uint32_t key, unsigned attempt, uint64_t deadline,
                       struct us_site *addr)
{
        (void)key;
        (void)attempt;
        (void)deadline;
        return css_addr(arg, addr);
}

static void css_target(struct us_core *core, struct us_target *t)
{
        memset(t, 0, sizeof(*t));
        t->what = "css";
        css_addr(core, &t->addr);
        t->resolve = resolve_css;
        t->resolve_arg = core;
}

static int refresh_on_miss(struct us_core *core, uint64_t deadline);

static int resolve_fg(void *arg, uint32_t fg, unsigned attempt, uint64_t deadline,
                      struct us_site *addr)
{
        struct us_core *core = arg;
        int r;

        /* The site may have moved or registered meanwhile: after a second
         * failure, ask the CSS (rate-limited, and never past our deadline). */
        if (attempt >= 2)
                refresh_on_miss(core, deadline);
        r = us_mtab_site(core->mtab, fg, addr);
        if (r == -ENOENT)
                return -ESTALE;
        return r;
}

/* Target for requests about file group fg (its storage site per the mount
 * table).  -ESTALE when fg is gone from the table. */
static int fg_target(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                     struct us_target *t)
{
        int r;

        memset(t, 0, sizeof(*t));
        t->what = "storage";
        t->resolve = resolve_fg;
        t->resolve_arg = core;
        t->resolve_key = fg;
        r = us_mtab_site(core->mtab, fg, &t->addr);
        if (r == -ENOENT) {
                refresh_on_miss(core, ctx->call.deadline);
                r = us_mtab_site(core->mtab, fg, &t->addr);
        }
        if (r == -ENOENT) {
                cm_log(LOG_NOTICE, "file group %u is not in the mount table", fg);
                return -ESTALE;
        }
        /* -EHOSTUNREACH: known but not registered yet; resolve retries. */
        return 0;
}

static void site_target(const struct us_site *site, struct us_target *t)
{
        memset(t, 0, sizeof(*t));
        t->what = "storage";
        t->addr = *site;
}

/* Requests that change nothing a directory listing shows. */
static bool read_only(uint32_t op)
{
        switch (op) {
        case LP_FS_NOP:
        case LP_FS_LOOKUP:
        case LP_FS_GETATTR:
        case LP_FS_READDIR:
        case LP_FS_READLINK:
        case LP_FS_STATFS:
        case LP_FS_GETXATTR:
        case LP_FS_LISTXATTR:
        case LP_FS_READ:
        case LP_FS_LSEEK:
        case LP_FS_SS_STATUS:
        case LP_FS_CSS_MOUNTTABLE:
        case LP_FS_CSS_STATUS:
                return true;
        default:
                return false;
        }
}

static int call(struct us_core *core, const struct us_ctx *ctx, struct us_target *t,
                const struct lp_fs_req *req, enum us_resend rs, struct lp_fs_resp *resp)
{
        bool change = core->sa && !read_only(req->op);
        int r;

        /* A change makes every listing read ahead so far unusable: before
         * it goes out, and again once it is done (a listing fetched
         * meanwhile may predate it). */
        if (change)
                us_sa_invalidate(core->sa);
        r = us_rpc_call(core->rpc, t, &ctx->call, req, rs, resp);
        if (change)
                us_sa_invalidate(core->sa);
        return r;
}

static int call_fg(struct us_core *core, const struct us_ctx *ctx, const struct lp_fs_req *req,
                   enum us_resend rs, struct lp_fs_resp *resp)
{
        struct us_target t;
        int r = fg_target(core, ctx, req->fg, &t);

        if (r < 0)
                return r;
        return call(core, ctx, &t, req, rs, resp);
}

static bool same_site(const struct us_site *a, const struct us_site *b)
{
        return a->port == b->port && !strcmp(a->host, b->host);
}

/* Where requests through fh (no session) on n go: the file group's site,
 * unless the CSS named another one (a newer copy) when fh was opened. */
static int node_target(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                       struct us_fh *fh, struct us_target *t)
{
        int r = fg_target(core, ctx, n->fg, t);

        if (r < 0)
                return r;
        if (fh && fh->site.host[0] && fh->site.port && !same_site(&fh->site, &t->addr))
                site_target(&fh->site, t);
        return 0;
}

enum sess_need {
        SESS_OPTIONAL,          /* name the file's session if there is one */
        SESS_OWN,               /* the handle's own session, required */
};

/*
 * Send req about node n (through fh, may be NULL) naming the right
 * session: wait for a pending END commit, pick the session, mark it busy
 * for the duration.  An -ESTALE answer loses the session; an optional one
 * is then tried again without it, a required one gives -EIO.  req->session
 * says afterwards which session was named (0: none).
 */
static int call_sess(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
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
                r = node_wait(core, n, ctx, need == SESS_OPTIONAL && !read_only(req->op));
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
                        s = sess_pick(n, fh);
                }
                if (s) {
                        sess_use(s);
                        req->session = s->id;
                        site_target(&s->site, &t);
                }
                pthread_mutex_unlock(&core->mu);
                if (!s) {
                        req->session = 0;
                        r = node_target(core, ctx, n, fh, &t);
                        if (r < 0)
                                return r;
                }
                r = call(core, ctx, &t, req, rs, resp);
                if (!s)
                        return r;
                pthread_mutex_lock(&core->mu);
                if (r == 0 && !read_only(req->op))
                        s->dirty = true;        /* the next flush commits it */
                sess_unuse(core, s, r);
                pthread_mutex_unlock(&core->mu);
                if (r != -ESTALE)
                        return r;
                if (need == SESS_OWN || tries > 0)
                        return -EIO;
        }
}

/* ---- mount table ---------------------------------------------------------------- */

int us_core_refresh_mtab(struct us_core *core, struct us_ctx *ctx)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        css_target(core, &t);
        req_init(&req, ctx, LP_FS_CSS_MOUNTTABLE, 0, 0);
        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        if (resp.value) {
                /* A restarted CSS has an empty open table: the keeper tells
                 * it ours (reannounce_opens) within its reclaim window. */
                pthread_mutex_lock(&core->mu);
                if (core->css_boot && core->css_boot != resp.value)
                        core->reannounce = true;
                core->css_boot = resp.value;
                pthread_mutex_unlock(&core->mu);
        }
        r = us_mtab_set(core->mtab, resp.mounts, resp.nmounts);
        lp_fs_resp_release(&resp);
        return r;
}

static int refresh_on_miss(struct us_core *core, uint64_t deadline)
{
        struct us_ctx ctx;
        uint64_t now;
        int r = 0;

        /* A refresh in progress elsewhere will do; never wait for it (it may
         * take until its own deadline, past ours). */
        if (pthread_mutex_trylock(&core->mtmu) != 0)
                return 0;
        now = cm_now_us();
        if (core->mt_last_try && now - core->mt_last_try < US_MTAB_MISS_US)
                goto out;
        core->mt_last_try = now;
        us_ctx_self(core, &ctx);
        if (ctx.call.deadline > deadline)
                ctx.call.deadline = deadline;
        r = us_core_refresh_mtab(core, &ctx);
        if (r < 0)
                cm_log(LOG_DEBUG, "mount table refresh: %s", strerror(-r));
out:
        pthread_mutex_unlock(&core->mtmu);
        return r;
}

/* ---- life cycle ------------------------------------------------------------------ */

int us_core_new(const struct us_core_opts *o, const uint8_t key[LP_KEY_SIZE],
                struct us_core **ret)
{
        struct us_core *core = calloc(1, sizeof(*core));
        int r = -ENOMEM;

        if (!core)
                return -ENOMEM;
        core->o = *o;
        core->o.css_port_file = NULL;
        if (!core->o.refresh_us)
                core->o.refresh_us = US_MTAB_REFRESH_US;
        if (!core->o.keepalive_us)
                core->o.keepalive_us = US_SESSION_KEEPALIVE_US;
        pthread_mutex_init(&core->mu, NULL);
        cond_init(&core->cv);
        pthread_mutex_init(&core->mtmu, NULL);
        pthread_mutex_init(&core->kmu, NULL);
        cond_init(&core->kcv);
        core->sessions.next = core->sessions.prev = &core->sessions;
        core->fhs.next = core->fhs.prev = &core->fhs;
        core->htcap = 1024;
        core->ht = calloc(core->htcap, sizeof(*core->ht));
        if (!core->ht)
                goto fail;
        if (o->css_port_file) {
                core->css_port_file = strdup(o->css_port_file);
                if (!core->css_port_file)
                        goto fail;
        }
        r = us_mtab_new(&core->mtab);
        if (r < 0)
                goto fail;
        r = us_rpc_new(key, o->site, &core->rpc);
        if (r < 0)
                goto fail;
        r = us_sa_new(&core->sa);
        if (r < 0)
                goto fail;
        *ret = core;
        return 0;
fail:
        us_core_free(core);
        return r;
}

uint64_t us_core_timeout_us(const struct us_core *core)
{
        return core->o.timeout_us;
}

struct us_mtab *us_core_mtab(struct us_core *core)
{
        return core->mtab;
}

struct us_rpc *us_core_rpc(struct us_core *core)
{
        return core->rpc;
}

void us_ctx_deadline(struct us_core *core, struct us_ctx *ctx, int (*stop)(void *), void *arg)
{
        ctx->call.deadline = cm_now_us() + core->o.timeout_us;
        ctx->call.stop = stop;
        ctx->call.stop_arg = arg;
}

void us_ctx_self(struct us_core *core, struct us_ctx *ctx)
{
        memset(ctx, 0, sizeof(*ctx));
        ctx->cred.uid = (uint32_t)geteuid();
        ctx->cred.gid = (uint32_t)getegid();
        ctx->cred.pid = (uint32_t)getpid();
        us_ctx_deadline(core, ctx, NULL, NULL);
}

static int keeper_stop_fn(void *arg)
{
        struct us_core *core = arg;
        bool stop;

        pthread_mutex_lock(&core->kmu);
        stop = core->keeper_stop;
        pthread_mutex_unlock(&core->kmu);
        return stop ? -ESHUTDOWN : 0;
}

/* Touch sessions idle for a while, so the storage site keeps them. */
static void keep_sessions(struct us_core *core)
{
        uint64_t now = cm_now_us();
        struct us_sess *batch[64];
        size_t nb = 0;

        pthread_mutex_lock(&core->mu);
        for (struct us_sess *s = core->sessions.next; s != &core->sessions && nb < 64;
             s = s->next) {
                if (s->err || s->ending || now - s->last_use < core->o.keepalive_us)
                        continue;
                sess_use(s);
                batch[nb++] = s;
        }
        pthread_mutex_unlock(&core->mu);
        for (size_t i = 0; i < nb; i++) {
                struct us_sess *s = batch[i];
                struct lp_fs_resp resp;
                struct lp_fs_req req;
                struct us_target t;
                struct us_ctx ctx;
                int r;

                us_ctx_self(core, &ctx);
                ctx.call.stop = keeper_stop_fn;
                ctx.call.stop_arg = core;
                req_init(&req, &ctx, LP_FS_GETATTR, s->node->fg, s->node->ino);
                req.session = s->id;
                site_target(&s->site, &t);
                r = call(core, &ctx, &t, &req, US_RESEND_ANY, &resp);
                if (r == 0)
                        lp_fs_resp_release(&resp);
                pthread_mutex_lock(&core->mu);
                sess_unuse(core, s, r);
                pthread_mutex_unlock(&core->mu);
        }
}

/* Tell a restarted CSS every open it did not record (CSS_OPENED).  An
 * open released meanwhile may be announced after its close: the CSS then
 * counts it until this mount's lease ends, which keeps an orphan too long,
 * never frees one too early. */
static void reannounce_opens(struct us_core *core)
{
        struct { uint32_t fg; uint64_t ino; int flags; } batch[64];
        size_t nb, total = 0;
        uint64_t boot;

        do {
                nb = 0;
                pthread_mutex_lock(&core->mu);
                core->reannounce = false;
                boot = core->css_boot;
                for (struct us_fh *fh = core->fhs.next; fh != &core->fhs && nb < 64; fh = fh->next) {
                        if (!fh->css_open || fh->css_boot == boot)
                                continue;
                        fh->css_boot = boot;
                        batch[nb].fg = fh->node->fg;
                        batch[nb].ino = fh->node->ino;
                        batch[nb++].flags = fh->flags;
                }
                pthread_mutex_unlock(&core->mu);
                for (size_t i = 0; i < nb; i++) {
                        struct lp_fs_resp resp;
                        struct lp_fs_req req;
                        struct us_target t;
                        struct us_ctx ctx;

                        us_ctx_self(core, &ctx);
                        ctx.call.stop = keeper_stop_fn;
                        ctx.call.stop_arg = core;
                        css_target(core, &t);
                        req_init(&req, &ctx, LP_FS_CSS_OPENED, batch[i].fg, batch[i].ino);
                        req.flags = (uint32_t)batch[i].flags;
                        if (call(core, &ctx, &t, &req, US_RESEND_ANY, &resp) == 0)
                                lp_fs_resp_release(&resp);
                        else
                                cm_log(LOG_WARNING, "<%u,%llu>: could not tell the restarted CSS this open",
                                       batch[i].fg, (unsigned long long)batch[i].ino);
                }
                total += nb;
        } while (nb == 64);
        if (total)
                cm_log(LOG_INFO, "the CSS restarted: told it %zu open(s) of this mount", total);
}

static void *keeper_main(void *arg)
{
        struct us_core *core = arg;
        uint64_t next = cm_now_us() + core->o.refresh_us;

        for (;;) {
                struct us_ctx ctx;
                int r;

                pthread_mutex_lock(&core->kmu);
                while (!core->keeper_stop && cm_now_us() < next)
                        cv_wait_until(&core->kcv, &core->kmu, next);
                if (core->keeper_stop) {
                        pthread_mutex_unlock(&core->kmu);
                        break;
                }
                pthread_mutex_unlock(&core->kmu);
                next = cm_now_us() + core->o.refresh_us;

                us_ctx_self(core, &ctx);
                ctx.call.stop = keeper_stop_fn;
                ctx.call.stop_arg = core;
                pthread_mutex_lock(&core->mtmu);
                core->mt_last_try = cm_now_us();
                r = us_core_refresh_mtab(core, &ctx);
                pthread_mutex_unlock(&core->mtmu);
                if (r < 0 && r != -ESHUTDOWN)
                        cm_log(LOG_DEBUG, "mount table refresh: %s", strerror(-r));
                pthread_mutex_lock(&core->mu);
                r = core->reannounce;
                pthread_mutex_unlock(&core->mu);
                if (r)
                        reannounce_opens(core);
                keep_sessions(core);
        }
        us_rpc_close_thread(core->rpc);
        return NULL;
}

int us_core_start(struct us_core *core)
{
        int r;

        if (!core->o.keeper || core->keeper_running)
                return 0;
        r = -pthread_create(&core->keeper, NULL, keeper_main, core);
        if (r < 0)
                return r;
        core->keeper_running = true;
        return 0;
}

static void keeper_join(struct us_core *core)
{
        if (!core->keeper_running)
                return;
        pthread_mutex_lock(&core->kmu);
        core->keeper_stop = true;
        pthread_cond_broadcast(&core->kcv);
        pthread_mutex_unlock(&core->kmu);
        pthread_join(core->keeper, NULL);
        core->keeper_running = false;
}

void us_core_destroy(struct us_core *core)
{
        struct us_ctx ctx;

        if (!core || core->destroyed)
                return;
        core->destroyed = true;
        keeper_join(core);
        /* Handles the kernel never released (lazy unmount, or the kernel
         * went away): release them as if it had, which commits their
         * sessions; everything within one timeout. */
        us_ctx_self(core, &ctx);
        for (;;) {
                struct us_fh *fh;

                pthread_mutex_lock(&core->mu);
                fh = core->fhs.next != &core->fhs ? core->fhs.next : NULL;
                pthread_mutex_unlock(&core->mu);
                if (!fh)
                        break;
                us_core_release(core, &ctx, fh);
        }
        us_rpc_close_thread(core->rpc);
}

void us_core_free(struct us_core *core)
{
        if (!core)
                return;
        us_core_destroy(core);
        if (core->ht) {
                for (size_t i = 0; i < core->htcap; i++) {
                        struct us_node *n = core->ht[i], *next;

                        for (; n; n = next) {
                                next = n->hnext;
                                free(n);
                        }
                }
        }
        free(core->ht);
        us_rpc_free(core->rpc);
        us_mtab_free(core->mtab);
        us_sa_free(core->sa);
        free(core->css_port_file);
        pthread_mutex_destroy(&core->mu);
        pthread_cond_destroy(&core->cv);
        pthread_mutex_destroy(&core->mtmu);
        pthread_mutex_destroy(&core->kmu);
        pthread_cond_destroy(&core->kcv);
        free(core);
}

void us_core_stats(struct us_core *core, struct us_core_stats *ret)
{
        pthread_mutex_lock(&core->mu);
        ret->nodes = core->nnodes;
        ret->sessions = core->nsess;
        ret->handles = core->nfh;
        pthread_mutex_unlock(&core->mu);
}

uint64_t us_core_session_of(struct us_core *core, uint64_t fino, bool *ret_committing)
{
        struct us_node *n;
        uint64_t id = 0;

        pthread_mutex_lock(&core->mu);
        n = node_find(core, fino);
        if (n && n->sess)
                id = n->sess->id;
        if (ret_committing)
                *ret_committing = n && n->committing;
        pthread_mutex_unlock(&core->mu);
        return id;
}

/* ---- lookup counts ------------------------------------------------------------------ */

int us_core_lookup_inc(struct us_core *core, uint64_t fino, uint64_t n)
{
        struct us_node *node;

        pthread_mutex_lock(&core->mu);
        node = node_get(core, fino);
        if (node) {
                node->nlookup += n;
                node_put(core, node);
        }
        pthread_mutex_unlock(&core->mu);
        return node ? 0 : -ENOMEM;
}

void us_core_forget(struct us_core *core, uint64_t fino, uint64_t n)
{
        struct us_node *node;

        pthread_mutex_lock(&core->mu);
        node = node_find(core, fino);
        if (node) {
                node->nlookup = n >= node->nlookup ? 0 : node->nlookup - n;
                node_maybe_free(core, node);
        }
        pthread_mutex_unlock(&core->mu);
}

uint64_t us_core_nlookup(struct us_core *core, uint64_t fino)
{
        struct us_node *node;
        uint64_t n = 0;

        pthread_mutex_lock(&core->mu);
        node = node_find(core, fino);
        if (node)
                n = node->nlookup;
        pthread_mutex_unlock(&core->mu);
        return n;
}

/* A held node for fino (refs + 1), or an error. */
static int hold(struct us_core *core, uint64_t fino, struct us_node **ret)
{
        uint32_t fg;
        uint64_t ino;
        int r = us_ino_from_fuse(fino, &fg, &ino);

        if (r < 0)
                return r;
        pthread_mutex_lock(&core->mu);
        *ret = node_get(core, fino);
        pthread_mutex_unlock(&core->mu);
        return *ret ? 0 : -ENOMEM;
}

static void unhold(struct us_core *core, struct us_node *n)
{
        pthread_mutex_lock(&core->mu);
        node_put(core, n);
        pthread_mutex_unlock(&core->mu);
}

/* ---- entries ------------------------------------------------------------------------- */

/* This mount has a write session of fino, or its END commit in flight. */
static bool writing_here(struct us_core *core, uint64_t fino)
{
        struct us_node *n;
        bool r;

        pthread_mutex_lock(&core->mu);
        n = node_find(core, fino);
        r = n && (n->sess || n->committing);
        pthread_mutex_unlock(&core->mu);
        return r;
}

/*
 * Fill *ret for the inode fg/attr names, crossing into a file group mounted
 * on it, and count one lookup.
 */
static int make_entry(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                      const struct lp_fs_attr *attr, struct us_entry *ret)
{
        struct lp_fs_attr a = *attr;
        struct lp_fs_resp resp;
        bool have_resp = false;
        uint32_t fg2;
        int r;

        if (S_ISDIR(a.mode) && us_mtab_mounted_on(core->mtab, fg, a.ino, &fg2) == 1) {
                struct lp_fs_req req;

                req_init(&req, ctx, LP_FS_GETATTR, fg2, LP_FS_ROOT_INO);
                r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
                if (r < 0)
                        return r;
                if (!resp.has_attr) {
                        lp_fs_resp_release(&resp);
                        return -EIO;
                }
                have_resp = true;
                a = resp.attr;
                a.ino = LP_FS_ROOT_INO;
                fg = fg2;
        }
        r = us_ino_to_fuse(fg, a.ino, &ret->fino);
        if (r == 0) {
                ret->generation = a.generation;
                us_attr_to_stat(&a, ret->fino, &ret->st);
                /* The answer is the last commit's; the kernel takes it as
                 * the file's attributes, so for a file this mount writes
                 * (its size, where O_APPEND writes go) it must be the
                 * session's view instead.  If that fails, the answer as it
                 * is: no worse than before. */
                if (S_ISREG(a.mode) && writing_here(core, ret->fino)) {
                        struct us_ctx gctx = *ctx;

                        (void)us_core_getattr(core, &gctx, ret->fino, NULL, &ret->st);
                }
                r = us_core_lookup_inc(core, ret->fino, 1);
        } else {
                cm_log(LOG_WARNING, "<%u,%llu>: inode number does not fit in 48 bits", fg,
                       (unsigned long long)a.ino);
        }
        if (have_resp)
                lp_fs_resp_release(&resp);
        return r;
}

/* An entry from an answer that must carry attributes. */
static int entry_from(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                      struct lp_fs_resp *resp, struct us_entry *ret)
{
        int r;

        if (!resp->has_attr || !resp->attr.ino) {
                cm_log(LOG_WARNING, "file group %u: answer without attributes", fg);
                return -EIO;
        }
        r = make_entry(core, ctx, fg, &resp->attr, ret);
        return r;
}

/* Statahead (us_sa.h): read directory <fg, dir> with attributes, a batch
 * per request, into the listing being gathered.  Failures only mean no
 * listing: every lookup then simply asks. */
static void read_ahead(struct us_core *core, const struct us_ctx *ctx, uint32_t fg, uint64_t dir)
{
        uint64_t cookie = 0;
        size_t total = 0;
        bool ok = false;

        for (;;) {
                struct lp_fs_resp resp;
                struct lp_fs_req req;
                int r;

                req_init(&req, ctx, LP_FS_READDIR, fg, dir);
                req.offset = cookie;
                req.length = LP_FS_MAX_ENTRIES;
                req.flags = 1;  /* with attributes */
                r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
                if (r < 0)
                        break;
                r = us_sa_fetch_add(core->sa, resp.entries, resp.nentries);
                total += resp.nentries;
                if (resp.nentries)
                        cookie = resp.entries[resp.nentries - 1].next;
                if (r < 0 || resp.eof || !resp.nentries || total >= US_SA_MAX_ENTRIES) {
                        ok = r >= 0;
                        lp_fs_resp_release(&resp);
                        break;
                }
                lp_fs_resp_release(&resp);
        }
        us_sa_fetch_end(core->sa, ok);
}

int us_core_lookup(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                   struct us_entry *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = check_name(name);
        if (r < 0)
                return r;
        r = us_ino_from_fuse(parent, &fg, &ino);
        if (r < 0)
                return r;
        if (!strcmp(name, "..") && ino == LP_FS_ROOT_INO && fg != US_ROOT_FG) {
                uint32_t pfg;
                uint64_t pino;

                /* The parent of a mounted root is the mount point's parent. */
                if (us_mtab_mountpoint(core->mtab, fg, &pfg, &pino) == 0) {
                        fg = pfg;
                        ino = pino;
                }
        }
        if (strcmp(name, ".") && strcmp(name, "..")) {
                struct lp_fs_attr a;
                enum us_sa_answer sa = us_sa_lookup(core->sa, fg, ino, (const uint8_t *)name, strlen(name),
                                                    cm_now_us(), &a);

                if (sa == US_SA_FETCH) {
                        read_ahead(core, ctx, fg, ino);
                        sa = us_sa_lookup(core->sa, fg, ino, (const uint8_t *)name, strlen(name), cm_now_us(),
                                          &a);
                }
                if (sa == US_SA_HIT && a.ino)
                        return make_entry(core, ctx, fg, &a, ret);
        }
        req_init(&req, ctx, LP_FS_LOOKUP, fg, 0);
        req.parent = ino;
        req_name(&req, name);
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        r = entry_from(core, ctx, fg, &resp, ret);
        lp_fs_resp_release(&resp);
        return r;
}

/* ---- attributes ----------------------------------------------------------------------- */

int us_core_getattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, struct us_fh *fh,
                    struct stat *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_node *n;
        int r;

        r = hold(core, fino, &n);
        if (r < 0)
                return r;
        pthread_mutex_lock(&core->mu);
        if (n->cattr_valid && !n->committing && n->cattr_gen == us_sa_generation(core->sa) &&
            cm_now_us() - n->cattr_at < US_ATTR_TIMEOUT_US) {
                /* What the last commit answered, and nothing changed since
                 * through this mount: the kernel's own caching rule. */
                us_attr_to_stat(&n->cattr, fino, ret);
                node_put(core, n);
                pthread_mutex_unlock(&core->mu);
                return 0;
        }
        pthread_mutex_unlock(&core->mu);
        req_init(&req, ctx, LP_FS_GETATTR, n->fg, n->ino);
        r = call_sess(core, ctx, n, fh, SESS_OPTIONAL, &req, US_RESEND_ANY, &resp);
        if (r == 0) {
                if (resp.has_attr)
                        us_attr_to_stat(&resp.attr, fino, ret);
                else
                        r = -EIO;
                lp_fs_resp_release(&resp);
        }
        unhold(core, n);
        return r;
}

int us_core_setattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, struct us_fh *fh,
                    const struct stat *in, uint32_t to_set, struct stat *ret)
{
        enum sess_need need = SESS_OPTIONAL;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_node *n;
        int r;

        if (!to_set)    /* nothing we know how to set: answer the attributes */
                return us_core_getattr(core, ctx, fino, fh, ret);
        r = hold(core, fino, &n);
        if (r < 0)
                return r;
        /*
         * Every change names this mount's session of the file when there is
         * one.  The storage site applies owner and mode at once all the
         * same, and puts size and times into the session, so that its
         * commit does not undo them (cp -p sets mtime after its writes and
         * before close); and its answer is the session's view: the size of
         * the writes staged so far.  The kernel takes that answer as the
         * file's attributes (fstat, the end an O_APPEND write goes to, how
         * far a read may go), so an answer without the session would make
         * a file just written look empty (fchmod after write: tar, cp -p,
         * install).
         */
        if ((to_set & LP_FS_SET_SIZE) && fh && fh->writable)
                need = SESS_OWN;
        req_init(&req, ctx, LP_FS_SETATTR, n->fg, n->ino);
        req.valid = to_set;
        req.mode = in->st_mode & 07777;
        req.uid = in->st_uid;
        req.gid = in->st_gid;
        req.size = (uint64_t)in->st_size;
        req.atime.sec = in->st_atim.tv_sec;
        req.atime.nsec = (uint32_t)in->st_atim.tv_nsec;
        req.mtime.sec = in->st_mtim.tv_sec;
        req.mtime.nsec = (uint32_t)in->st_mtim.tv_nsec;
        r = call_sess(core, ctx, n, fh, need, &req, US_RESEND_ANY, &resp);
        if (r == 0) {
                if (resp.has_attr) {
                        us_attr_to_stat(&resp.attr, fino, ret);
                        lp_fs_resp_release(&resp);
                } else {
                        lp_fs_resp_release(&resp);
                        r = us_core_getattr(core, ctx, fino, fh, ret);
                }
        }
        unhold(core, n);
        return r;
}

int us_core_readlink(struct us_core *core, struct us_ctx *ctx, uint64_t fino, char *buf,
                     size_t cap)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        req_init(&req, ctx, LP_FS_READLINK, fg, ino);
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        if (resp.datalen == 0 || resp.datalen >= cap || memchr(resp.data, 0, resp.datalen)) {
                r = -EIO;
        } else {
                memcpy(buf, resp.data, resp.datalen);
                buf[resp.datalen] = 0;
        }
        lp_fs_resp_release(&resp);
        return r;
}

/* ---- making names ----------------------------------------------------------------------- */

static int make_name(struct us_core *core, struct us_ctx *ctx, struct lp_fs_req *req,
                     struct us_entry *ret)
{
        struct lp_fs_resp resp;
        int r;

        r = call_fg(core, ctx, req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        r = entry_from(core, ctx, req->fg, &resp, ret);
        lp_fs_resp_release(&resp);
        return r;
}

static int parent_req(struct us_ctx *ctx, uint32_t op, uint64_t parent, const char *name,
                      struct lp_fs_req *req)
{
        uint32_t fg;
        uint64_t ino;
        int r = check_name(name);

        if (r < 0)
                return r;
        r = us_ino_from_fuse(parent, &fg, &ino);
        if (r < 0)
                return r;
        req_init(req, ctx, op, fg, 0);
        req->parent = ino;
        req_name(req, name);
        return 0;
}

/*
 * The kernel asks for "security.capability" before every write(2) to a
 * file (to clear file capabilities), a round trip each time.  A mount
 * remembers that a file has none -- because it just created it, or the
 * storage site said so -- for the kernel's own attribute timeout, and
 * forgets it when it sets or removes that attribute itself.  Caller holds
 * core->mu.
 */
#define CAPS_NAME "security.capability"
#define CAPS_TTL_US ((uint64_t)(US_ATTR_TIMEOUT_US))

static void caps_absent(struct us_node *n)
{
        n->nocaps_until = cm_now_us() + CAPS_TTL_US;
}

/* This mount sets or removes the attribute: ask the storage site again. */
static void caps_forget(struct us_core *core, uint64_t fino)
{
        struct us_node *n;

        pthread_mutex_lock(&core->mu);
        n = node_find(core, fino);
        if (n)
                n->nocaps_until = 0;
        pthread_mutex_unlock(&core->mu);
}

int us_core_mknod(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                  uint32_t mode, uint64_t rdev, struct us_entry *ret)
{
        struct lp_fs_req req;
        int r;

        switch (mode & S_IFMT) {
        case S_IFREG:
        case S_IFIFO:
        case S_IFSOCK:
        case S_IFCHR:
        case S_IFBLK:
                break;
        default:
                return -EINVAL;
        }
        r = parent_req(ctx, LP_FS_MKNOD, parent, name, &req);
        if (r < 0)
                return r;
        req.mode = mode;
        req.rdev = rdev;
        return make_name(core, ctx, &req, ret);
}

int us_core_mkdir(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                  uint32_t mode, struct us_entry *ret)
{
        struct lp_fs_req req;
        int r = parent_req(ctx, LP_FS_MKDIR, parent, name, &req);

        if (r < 0)
                return r;
        req.mode = (mode & 07777) | S_IFDIR;
        return make_name(core, ctx, &req, ret);
}

int us_core_symlink(struct us_core *core, struct us_ctx *ctx, const char *target,
                    uint64_t parent, const char *name, struct us_entry *ret)
{
        struct lp_fs_req req;
        size_t tl = strlen(target);
        int r;

        if (tl == 0)
                return -ENOENT;
        if (tl >= LP_FS_PATH_MAX)
                return -ENAMETOOLONG;
        r = parent_req(ctx, LP_FS_SYMLINK, parent, name, &req);
        if (r < 0)
                return r;
        req.data = (const uint8_t *)target;
        req.datalen = tl;
        return make_name(core, ctx, &req, ret);
}

int us_core_link(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t newparent,
                 const char *newname, struct us_entry *ret)
{
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = parent_req(ctx, LP_FS_LINK, newparent, newname, &req);
        if (r < 0)
                return r;
        if (req.fg != fg)
                return -EXDEV;
        req.ino = ino;
        req.newparent = req.parent;
        req.parent = 0;
        req.newname = req.name;
        req.newnamelen = req.namelen;
        req.name = NULL;
        req.namelen = 0;
        return make_name(core, ctx, &req, ret);
}

/* ---- removing names ----------------------------------------------------------------------- */

/* The answer said ino lost its last name.  Whether anyone still holds it
 * open, here or in another mount, only the CSS knows (its open table): it
 * frees the file at the last close anywhere. */
static void orphaned(struct us_core *core, struct us_ctx *ctx, uint32_t fg, uint64_t ino)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        css_target(core, &t);
        req_init(&req, ctx, LP_FS_CSS_ORPHAN, fg, ino);
        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        else
                cm_log(LOG_WARNING, "<%u,%llu>: telling the CSS the file has no name left: %s (it frees "
                       "it when the storage site registers again)", fg, (unsigned long long)ino,
                       strerror(-r));
}

/* 1 if name in <fg, dir> is a directory on which a file group is mounted. */
static int is_mountpoint(struct us_core *core, struct us_ctx *ctx, uint32_t fg, uint64_t dir,
                         const char *name)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg2;
        int r;

        if (!us_mtab_has_mounts_in(core->mtab, fg))
                return 0;
        req_init(&req, ctx, LP_FS_LOOKUP, fg, 0);
        req.parent = dir;
        req_name(&req, name);
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = resp.has_attr && S_ISDIR(resp.attr.mode) &&
            us_mtab_mounted_on(core->mtab, fg, resp.attr.ino, &fg2) == 1;
        lp_fs_resp_release(&resp);
        return r;
}

static int remove_name(struct us_core *core, struct us_ctx *ctx, uint32_t op, uint64_t parent,
                       const char *name)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        int r;

        r = parent_req(ctx, op, parent, name, &req);
        if (r < 0)
                return r;
        r = is_mountpoint(core, ctx, req.fg, req.parent, name);
        if (r < 0)
                return r;
        if (r > 0)
                return -EBUSY;
        r = call_fg(core, ctx, &req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        if (resp.orphan && resp.ino)
                orphaned(core, ctx, req.fg, resp.ino);
        lp_fs_resp_release(&resp);
        return 0;
}

int us_core_unlink(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name)
{
        return remove_name(core, ctx, LP_FS_UNLINK, parent, name);
}

int us_core_rmdir(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name)
{
        return remove_name(core, ctx, LP_FS_RMDIR, parent, name);
}

int us_core_rename(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                   uint64_t newparent, const char *newname, unsigned flags)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t nfg;
        uint64_t nino;
        int r;

        if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
                return -EINVAL;
        if ((flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)) && (flags & RENAME_EXCHANGE))
                return -EINVAL;
        r = check_name(newname);
        if (r < 0)
                return r;
        r = parent_req(ctx, LP_FS_RENAME, parent, name, &req);
        if (r < 0)
                return r;
        r = us_ino_from_fuse(newparent, &nfg, &nino);
        if (r < 0)
                return r;
        if (nfg != req.fg)
                return -EXDEV;
        if (is_dots(name) || is_dots(newname))
                return -EINVAL;
        r = is_mountpoint(core, ctx, req.fg, req.parent, name);
        if (r == 0)
                r = is_mountpoint(core, ctx, nfg, nino, newname);
        if (r < 0)
                return r;
        if (r > 0)
                return -EBUSY;
        req.newparent = nino;
        req.newname = (const uint8_t *)newname;
        req.newnamelen = strlen(newname);
        req.flags = ((flags & RENAME_NOREPLACE) ? LP_FS_RENAME_NOREPLACE : 0) |
                    ((flags & RENAME_EXCHANGE) ? LP_FS_RENAME_EXCHANGE : 0) |
                    ((flags & RENAME_WHITEOUT) ? LP_FS_RENAME_WHITEOUT : 0);
        r = call_fg(core, ctx, &req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        if (resp.orphan && resp.ino)
                orphaned(core, ctx, req.fg, resp.ino);
        lp_fs_resp_release(&resp);
        return 0;
}

/* ---- open, create, release -------------------------------------------------------------- */

uint64_t us_fh_fino(const struct us_fh *fh)
{
        return fh->node->fino;
}

static bool writable_flags(int flags)
{
        return (flags & O_ACCMODE) != O_RDONLY;
}

/* A new handle on fino holding a node ref and one nopen; mu held. */
static int fh_new(struct us_core *core, uint64_t fino, int flags, struct us_fh **ret)
{
        struct us_fh *fh;

        if (core->nfh >= US_MAX_FH)
                return -ENFILE;
        fh = calloc(1, sizeof(*fh));
        if (!fh)
                return -ENOMEM;
        fh->node = node_get(core, fino);
        if (!fh->node) {
                free(fh);
                return -ENOMEM;
        }
        fh->node->nopen++;
        fh->flags = flags;
        fh->writable = writable_flags(flags);
        fh->next = &core->fhs;
        fh->prev = core->fhs.prev;
        core->fhs.prev->next = fh;
        core->fhs.prev = fh;
        core->nfh++;
        *ret = fh;
        return 0;
}

static void css_close(struct us_core *core, struct us_ctx *ctx, struct us_node *n, int flags)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        css_target(core, &t);
        req_init(&req, ctx, LP_FS_CSS_CLOSE, n->fg, n->ino);
        req.flags = (uint32_t)flags;
        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        else
                cm_log(LOG_INFO, "<%u,%llu>: close at the CSS: %s", n->fg,
                       (unsigned long long)n->ino, strerror(-r));
}

/* Remember the version seen; say whether the kernel may keep its cache. */
static bool note_version(struct us_node *n, uint64_t version)
{
        bool keep = n->have_version && n->version == version;

        n->have_version = true;
        n->version = version;
        return keep;
}

/* Abort session id of <fg, ino> at t's site: the storage site opened it
 * for a handle that joined another one (sess_attach).  Best effort: the
 * storage site aborts idle sessions by itself. */
static void sess_abort(struct us_core *core, const struct us_ctx *ctx, struct us_target *t,
                       uint32_t fg, uint64_t ino, uint64_t id)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;

        req_init(&req, ctx, LP_FS_ABORT, fg, ino);
        req.session = id;
        if (call(core, ctx, t, &req, US_RESEND_ANY, &resp) == 0)
                lp_fs_resp_release(&resp);
}

/* Truncate through session s (fh's, joined) for an O_TRUNC open. */
static int trunc_in_session(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        int r;

        req_init(&req, ctx, LP_FS_SETATTR, fh->node->fg, fh->node->ino);
        req.valid = LP_FS_SET_SIZE;
        req.size = 0;
        r = call_sess(core, ctx, fh->node, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

int us_core_open(struct us_core *core, struct us_ctx *ctx, uint64_t fino, int flags,
                 struct us_fh **ret_fh, bool *ret_keep_cache)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        struct us_fh *fh = NULL;
        struct us_node *n;
        uint32_t fg;
        uint64_t ino, version = 0;
        bool writable = writable_flags(flags), keep;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        if (!writable)
                flags &= ~O_TRUNC;
        flags &= ~(O_CREAT | O_EXCL | O_NOCTTY);

        pthread_mutex_lock(&core->mu);
        r = fh_new(core, fino, flags, &fh);
        if (r == 0)
                r = node_wait(core, fh->node, ctx, writable);
        pthread_mutex_unlock(&core->mu);
        if (r < 0)
                goto fail;
        n = fh->node;

        /* The CSS records the open and names the site with the newest copy. */
        css_target(core, &t);
        req_init(&req, ctx, LP_FS_CSS_OPEN, fg, ino);
        req.flags = (uint32_t)flags;
        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                goto fail;
        pthread_mutex_lock(&core->mu);         /* reannounce_opens reads them */
        fh->css_open = true;
        fh->css_boot = resp.value;
        pthread_mutex_unlock(&core->mu);
        if (resp.host && *resp.host && resp.port && resp.port <= 65535 &&
            strlen(resp.host) < sizeof(fh->site.host)) {
                fh->site.site = resp.site;
                strcpy(fh->site.host, resp.host);
                fh->site.port = (uint16_t)resp.port;
        }
        lp_fs_resp_release(&resp);

        for (;;) {
                struct us_sess *s;
                uint64_t extra = 0;
                bool joined = false;

                pthread_mutex_lock(&core->mu);
                r = node_wait(core, n, ctx, writable);
                if (r < 0) {
                        pthread_mutex_unlock(&core->mu);
                        goto fail;
                }
                if (writable && n->sess) {
                        /* Join this mount's session of the file. */
                        s = n->sess;
                        sess_join(s, fh);
                        pthread_mutex_unlock(&core->mu);
                        req_init(&req, ctx, LP_FS_GETATTR, fg, ino);
                        r = call_sess(core, ctx, n, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
                        if (r == 0) {
                                version = resp.has_attr ? resp.attr.version : 0;
                                lp_fs_resp_release(&resp);
                                if (flags & O_TRUNC)
                                        r = trunc_in_session(core, ctx, fh);
                        }
                        if (r == -EIO) {
                                /* Lost meanwhile: let go of it, start a new one. */
                                pthread_mutex_lock(&core->mu);
                                if (s->err) {
                                        sess_put(core, sess_leave(fh));
                                        pthread_mutex_unlock(&core->mu);
                                        continue;
                                }
                                pthread_mutex_unlock(&core->mu);
                        }
                        if (r < 0)
                                goto fail;
                        break;
                }
                if (writable)
                        n->opening = true;
                pthread_mutex_unlock(&core->mu);

                req_init(&req, ctx, LP_FS_OPEN, fg, ino);
                req.flags = (uint32_t)flags;
                r = node_target(core, ctx, n, fh, &t);
                if (r == 0)
                        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
                pthread_mutex_lock(&core->mu);
                if (writable) {
                        n->opening = false;
                        pthread_cond_broadcast(&core->cv);
                }
                if (r == 0) {
                        version = resp.version ? resp.version
                                               : (resp.has_attr ? resp.attr.version : 0);
                        if (writable && !resp.session) {
                                cm_log(LOG_ERR, "<%u,%llu> at site %llu: a writable open "
                                       "answered without a session", fg,
                                       (unsigned long long)ino,
                                       (unsigned long long)t.addr.site);
                                r = -EIO;
                        } else if (writable) {
                                /* A create of the same file may have
                                 * started one meanwhile (2). */
                                r = sess_attach(core, n, fh, resp.session, &t.addr, &extra);
                                joined = r == 1;
                                if (r > 0)
                                        r = 0;
                        }
                        lp_fs_resp_release(&resp);
                }
                pthread_mutex_unlock(&core->mu);
                if (extra)
                        sess_abort(core, ctx, &t, fg, ino, extra);
                if (r == 0 && joined && (flags & O_TRUNC))
                        r = trunc_in_session(core, ctx, fh);
                if (r < 0)
                        goto fail;
                break;
        }
        pthread_mutex_lock(&core->mu);
        keep = note_version(n, version);
        pthread_mutex_unlock(&core->mu);
        *ret_fh = fh;
        *ret_keep_cache = keep;
        return 0;
fail:
        if (fh) {
                /* Undo with a deadline of its own: ours may be what failed. */
                struct us_ctx rctx = *ctx;

                us_ctx_deadline(core, &rctx, NULL, NULL);
                us_core_release(core, &rctx, fh);
        }
        return r;
}

int us_core_create(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                   uint32_t mode, int flags, struct us_entry *ret_entry, struct us_fh **ret_fh)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        struct us_fh *fh = NULL;
        struct us_node *n;
        uint64_t fino, extra = 0;
        bool writable = writable_flags(flags), trunc = false;
        int r;

        r = parent_req(ctx, LP_FS_CREATE, parent, name, &req);
        if (r < 0)
                return r;
        req.mode = (mode & ~(uint32_t)S_IFMT) | S_IFREG;
        req.flags = (uint32_t)flags;
        r = fg_target(core, ctx, req.fg, &t);
        if (r < 0)
                return r;
        r = call(core, ctx, &t, &req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        if (!resp.has_attr || !resp.attr.ino || (writable && !resp.session)) {
                cm_log(LOG_ERR, "file group %u at site %llu: create answered without %s",
                       req.fg, (unsigned long long)t.addr.site,
                       resp.has_attr ? "a session" : "attributes");
                r = -EIO;
                goto out;
        }
        r = us_ino_to_fuse(req.fg, resp.attr.ino, &fino);
        if (r < 0)
                goto out;

        pthread_mutex_lock(&core->mu);
        r = fh_new(core, fino, flags & ~(O_CREAT | O_EXCL | O_NOCTTY), &fh);
        if (r < 0) {
                pthread_mutex_unlock(&core->mu);
                goto out;
        }
        n = fh->node;
        n->nlookup++;                   /* the entry we answer */
        fh->site = t.addr;
        /* An END commit of this file still in flight (create of a file this
         * mount just closed): let it land first.  A timeout here is not
         * fatal: our session is independent of it, and an open that starts
         * one meanwhile joins ours or we join its (2). */
        (void)node_wait(core, n, ctx, true);
        if (writable) {
                /* The file may exist and this mount write it already: one
                 * session per file, so join that one. */
                r = sess_attach(core, n, fh, resp.session, &t.addr, &extra);
                trunc = r == 1 && (flags & O_TRUNC);
                if (r > 0)
                        r = 0;
        }
        note_version(n, resp.version ? resp.version : resp.attr.version);
        if (!extra)
                caps_absent(n);         /* a new file has no extended attributes */
        pthread_mutex_unlock(&core->mu);

        if (extra)
                sess_abort(core, ctx, &t, req.fg, resp.attr.ino, extra);
        if (r == 0 && trunc)
                r = trunc_in_session(core, ctx, fh);
        if (r == 0) {
                /* The CSS records every open (the orphan decision needs
                 * them): this one was made by the storage site. */
                struct lp_fs_resp oresp;
                struct lp_fs_req oreq;
                struct us_target ct;

                css_target(core, &ct);
                req_init(&oreq, ctx, LP_FS_CSS_OPENED, req.fg, resp.attr.ino);
                oreq.flags = (uint32_t)flags;
                /* Sent again after a lost answer: counted twice at worst,
                 * which keeps an orphan until this mount ends, never
                 * frees one early.  A failure does not undo the create. */
                if (call(core, ctx, &ct, &oreq, US_RESEND_ANY, &oresp) == 0) {
                        pthread_mutex_lock(&core->mu);
                        fh->css_open = true;
                        fh->css_boot = oresp.value;
                        pthread_mutex_unlock(&core->mu);
                        lp_fs_resp_release(&oresp);
                } else {
                        cm_log(LOG_WARNING, "<%u,%llu>: the CSS did not record the open of a create; "
                               "if it loses its last name while open it may be freed early",
                               req.fg, (unsigned long long)resp.attr.ino);
                }
        }
        if (r < 0) {
                struct us_ctx rctx = *ctx;

                us_ctx_deadline(core, &rctx, NULL, NULL);
                us_core_forget(core, fino, 1);
                us_core_release(core, &rctx, fh);
                goto out;
        }
        ret_entry->fino = fino;
        ret_entry->generation = resp.attr.generation;
        us_attr_to_stat(&resp.attr, fino, &ret_entry->st);
        *ret_fh = fh;
out:
        lp_fs_resp_release(&resp);
        return r;
}

void us_core_release(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh)
{
        struct us_node *n = fh->node;
        struct us_sess *s;
        struct us_site site = { 0 };
        uint64_t id = 0;
        bool commit = false;

        pthread_mutex_lock(&core->mu);
        fh->prev->next = fh->next;
        fh->next->prev = fh->prev;
        core->nfh--;
        /* The handle's session ref is ours now (3). */
        s = sess_leave(fh);
        if (s && s->handles == 0 && !s->err && !s->ending) {
                /* Last writable handle: the session ends.  (4), (5)  This
                 * release keeps the ref until the END commit is answered:
                 * a request that finishes meanwhile cannot free it. */
                sess_detach(core, s);
                s->ending = true;
                n->committing++;
                /* Requests still using the session finish first; each is
                 * bounded by its own deadline, and so is this wait (never
                 * stuck behind a lost one).  An ending session is never
                 * lost (sess_lost), so it is committed either way. */
                while (s->busy) {
                        if (cv_wait_until(&core->cv, &core->mu, ctx->call.deadline) < 0) {
                                cm_log(LOG_WARNING, "<%u,%llu>: %u request(s) still use the write "
                                       "session at its last close; committing anyway", n->fg,
                                       (unsigned long long)n->ino, s->busy);
                                break;
                        }
                }
                commit = true;
                id = s->id;
                site = s->site;
        } else if (s) {
                sess_put(core, s);
                s = NULL;
        }
        pthread_mutex_unlock(&core->mu);

        if (commit) {
                struct lp_fs_resp resp;
                struct lp_fs_req req;
                struct us_target t;
                uint64_t version = 0;
                int r;

                req_init(&req, ctx, LP_FS_COMMIT, n->fg, n->ino);
                req.session = id;
                req.flags = LP_FS_COMMIT_END;
                site_target(&site, &t);
                /* Sent once: after END the session is gone, so a resend could
                 * not tell a done commit from a lost session. */
                r = call(core, ctx, &t, &req, US_RESEND_UNSENT, &resp);
                if (r == 0) {
                        version = resp.version ? resp.version
                                               : (resp.has_attr ? resp.attr.version : 0);
                        lp_fs_resp_release(&resp);
                } else {
                        cm_log(LOG_ERR, "<%u,%llu> at site %llu (%s:%u): commit at last close "
                               "failed: %s; the file keeps its previous content%s", n->fg,
                               (unsigned long long)n->ino, (unsigned long long)site.site,
                               site.host, site.port, strerror(-r),
                               r == -ESTALE ? " (the storage site lost the session)" : "");
                }
                pthread_mutex_lock(&core->mu);
                n->committing--;
                if (r == 0)
                        note_version(n, version);
                else
                        n->have_version = false;
                sess_put(core, s);
                pthread_cond_broadcast(&core->cv);
                pthread_mutex_unlock(&core->mu);
        }
        if (fh->css_open)
                css_close(core, ctx, n, fh->flags);

        pthread_mutex_lock(&core->mu);
        n->nopen--;
        node_put(core, n);
        pthread_mutex_unlock(&core->mu);
        free(fh);
}

/* ---- data ------------------------------------------------------------------------------- */

int us_core_read(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, uint64_t off,
                 size_t size, struct lp_fs_resp *ret)
{
        struct us_node *n = fh->node;
        struct lp_fs_req req;
        int r;

        if (size > LP_FS_DATA_MAX)
                size = LP_FS_DATA_MAX;
        req_init(&req, ctx, LP_FS_READ, n->fg, n->ino);
        req.offset = off;
        req.length = size;
        r = call_sess(core, ctx, n, fh, SESS_OPTIONAL, &req, US_RESEND_ANY, ret);
        if (r == 0 && ret->datalen > size) {
                lp_fs_resp_release(ret);
                r = -EIO;
        }
        return r;
}

static void note_werr(struct us_core *core, struct us_fh *fh, int r)
{
        pthread_mutex_lock(&core->mu);
        if (!fh->werr)
                fh->werr = r;
        pthread_mutex_unlock(&core->mu);
}

ssize_t us_core_write(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, uint64_t off,
                      const void *buf, size_t size)
{
        struct us_node *n = fh->node;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        ssize_t done;
        int r;

        if (!fh->writable)
                return -EBADF;
        if (size > LP_FS_DATA_MAX)
                size = LP_FS_DATA_MAX;
        req_init(&req, ctx, LP_FS_WRITE, n->fg, n->ino);
        req.offset = off;
        req.data = buf;
        req.datalen = size;
        r = call_sess(core, ctx, n, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
        if (r < 0) {
                if (r != -EIO)
                        note_werr(core, fh, r);
                return r;
        }
        done = resp.value > size ? -EIO : (ssize_t)resp.value;
        lp_fs_resp_release(&resp);
        return done;
}

/* Commit session s of node n (no flush to disk, session kept).  Caller
 * does not hold core->mu. */
static int sess_commit(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                       struct us_sess *s, uint32_t flags)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        req_init(&req, ctx, LP_FS_COMMIT, n->fg, n->ino);
        req.session = s->id;
        req.flags = flags;
        site_target(&s->site, &t);
        /* Without END a commit may be sent twice: the second finds nothing
         * new to commit. */
        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        pthread_mutex_lock(&core->mu);
        if (r < 0)
                s->dirty = true;        /* before sess_unuse, which may free s */
        sess_unuse(core, s, r);
        if (r == 0) {
                note_version(n, resp.version ? resp.version : (resp.has_attr ? resp.attr.version : 0));
                /* The kernel asks for the attributes right after a close
                 * (a write made it drop them): this answer has them. */
                if (resp.has_attr && resp.attr.ino == n->ino) {
                        n->cattr = resp.attr;
                        n->cattr_at = cm_now_us();
                        n->cattr_gen = us_sa_generation(core->sa);
                        n->cattr_valid = true;
                }
        }
        pthread_mutex_unlock(&core->mu);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r == -ESTALE ? -EIO : r;
}

/*
 * close(2) of a writable descriptor commits what the file's session holds
 * before it returns: "the last close commits" must hold when close()
 * reports success, even if the storage site dies right after (the kernel
 * sends RELEASE, where the session ends, only after close() returned).
 */
int us_core_flush(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh)
{
        struct us_sess *s = NULL;
        int r;

        pthread_mutex_lock(&core->mu);
        if (fh->writable && (!fh->sess || fh->sess->err)) {
                r = -EIO;
        } else {
                r = fh->werr;
                fh->werr = 0;
                if (r == 0 && fh->writable && fh->sess->dirty && !fh->sess->ending) {
                        s = fh->sess;
                        sess_use(s);
                        s->dirty = false;
                }
        }
        pthread_mutex_unlock(&core->mu);
        if (!s)
                return r;
        return sess_commit(core, ctx, fh->node, s, 0);
}

int us_core_fsync(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, bool datasync)
{
        struct us_node *n = fh->node;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_sess *s;
        int r;

        pthread_mutex_lock(&core->mu);
        r = node_wait(core, n, ctx, false);
        if (r < 0) {
                pthread_mutex_unlock(&core->mu);
                return r;
        }
        /* A read-only descriptor commits the writes this mount made through
         * others: fsync(2) flushes the file, not the descriptor. */
        s = fh->writable ? fh->sess : n->sess;
        if (s && s->err) {
                pthread_mutex_unlock(&core->mu);
                return -EIO;
        }
        if (s) {
                sess_use(s);
                s->dirty = false;
        }
        pthread_mutex_unlock(&core->mu);

        if (s)
                return sess_commit(core, ctx, n, s,
                                   LP_FS_COMMIT_SYNC | (datasync ? LP_FS_COMMIT_DATASYNC : 0));
        /* Nothing staged here: make what is committed durable (an earlier
         * close's commit is in the log, maybe not yet on disk). */
        req_init(&req, ctx, LP_FS_SYNC, n->fg, 0);
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

int us_core_fallocate(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, int mode,
                      uint64_t off, uint64_t len)
{
        struct us_node *n = fh->node;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        int r;

        switch (mode) {
        case 0:
        case FALLOC_FL_KEEP_SIZE:
        case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
        case FALLOC_FL_ZERO_RANGE:
        case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
                break;
        default:
                return -EOPNOTSUPP;
        }
        if (!fh->writable)
                return -EBADF;
        req_init(&req, ctx, LP_FS_FALLOCATE, n->fg, n->ino);
        req.flags = (uint32_t)mode;
        req.offset = off;
        req.length = len;
        r = call_sess(core, ctx, n, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        else if (r != -EIO)
                note_werr(core, fh, r);
        return r;
}

ssize_t us_core_copy_range(struct us_core *core, struct us_ctx *ctx, struct us_fh *in,
                           uint64_t off_in, struct us_fh *out, uint64_t off_out, size_t len,
                           unsigned flags)
{
        struct us_node *ni = in->node, *no = out->node;
        struct us_sess *si, *so;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        struct us_site src;
        ssize_t done;
        int r;

        if (flags)
                return -EINVAL;
        if (!out->writable)
                return -EBADF;
        if (ni->fg != no->fg)
                return -EXDEV;
        if (len > LP_FS_DATA_MAX)
                len = LP_FS_DATA_MAX;   /* a short copy: the caller loops */

        pthread_mutex_lock(&core->mu);
        r = node_wait(core, ni, ctx, false);
        if (r < 0) {
                pthread_mutex_unlock(&core->mu);
                return r;
        }
        so = out->sess;
        if (!so || so->err) {
                pthread_mutex_unlock(&core->mu);
                return -EIO;
        }
        si = sess_pick(ni, in);
        if (si)
                src = si->site;
        else if (in->site.host[0])
                src = in->site;
        else
                src = so->site;         /* same file group: its storage site */
        if (!same_site(&src, &so->site)) {
                pthread_mutex_unlock(&core->mu);
                return -EXDEV;          /* the kernel copies by read and write */
        }
        sess_use(so);
        if (si) {
                sess_use(si);
                si->last_use = so->last_use;
        }
        pthread_mutex_unlock(&core->mu);

        req_init(&req, ctx, LP_FS_COPY_RANGE, ni->fg, ni->ino);
        req.offset = off_in;
        req.session = si ? si->id : 0;
        req.ino2 = no->ino;
        req.session2 = so->id;
        req.offset2 = off_out;
        req.length = len;
        site_target(&so->site, &t);
        r = call(core, ctx, &t, &req, US_RESEND_ANY, &resp);

        pthread_mutex_lock(&core->mu);
        if (r == 0)
                so->dirty = true;       /* the next close commits the copy */
        /* -ESTALE: the site restarted, and both sessions live there. */
        sess_unuse(core, so, r);
        if (si)
                sess_unuse(core, si, r);
        pthread_mutex_unlock(&core->mu);
        if (r == -ESTALE)
                return -EIO;
        if (r < 0) {
                if (r != -EIO)
                        note_werr(core, out, r);
                return r;
        }
        done = resp.value > len ? -EIO : (ssize_t)resp.value;
        lp_fs_resp_release(&resp);
        return done;
}

int us_core_lseek(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, uint64_t off,
                  int whence, uint64_t *ret_off)
{
        struct us_node *n = fh->node;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        int r;

        if (whence != SEEK_DATA && whence != SEEK_HOLE)
                return -EINVAL;
        req_init(&req, ctx, LP_FS_LSEEK, n->fg, n->ino);
        req.offset = off;
        req.whence = (uint32_t)whence;
        r = call_sess(core, ctx, n, fh, SESS_OPTIONAL, &req, US_RESEND_ANY, &resp);
        if (r == 0) {
                *ret_off = resp.value;
                lp_fs_resp_release(&resp);
                return 0;
        }
        return r;
}

/* ---- directories ---------------------------------------------------------------------- */

void us_dir_release(struct us_dir *d)
{
        free(d->ents);
        free(d->names);
        memset(d, 0, sizeof(*d));
}

int us_core_readdir(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t cookie,
                    size_t max_entries, bool plus, struct us_dir *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_dir d;
        uint32_t fg;
        uint64_t ino;
        size_t namebytes = 0, pos = 0;
        int r;

        memset(&d, 0, sizeof(d));
        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        if (max_entries == 0)
                max_entries = 1;
        if (max_entries > LP_FS_MAX_ENTRIES)
                max_entries = LP_FS_MAX_ENTRIES;
        req_init(&req, ctx, LP_FS_READDIR, fg, ino);
        req.offset = cookie;
        req.length = max_entries;
        req.flags = plus ? 1u : 0u;
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;

        for (size_t i = 0; i < resp.nentries; i++)
                namebytes += resp.entries[i].namelen + 1;
        d.ents = calloc(resp.nentries ? resp.nentries : 1, sizeof(*d.ents));
        d.names = malloc(namebytes ? namebytes : 1);
        if (!d.ents || !d.names) {
                r = -ENOMEM;
                goto fail;
        }
        d.eof = resp.eof;
        for (size_t i = 0; i < resp.nentries; i++) {
                const struct lp_fs_dirent *e = &resp.entries[i];
                struct us_dirent *o = &d.ents[d.n];
                uint32_t efg = fg, fg2;
                uint64_t eino = e->ino;

                if (e->namelen == 0 || memchr(e->name, '/', e->namelen) ||
                    memchr(e->name, 0, e->namelen)) {
                        cm_log(LOG_WARNING, "<%u,%llu>: directory entry with a bad name "
                               "left out", fg, (unsigned long long)ino);
                        continue;
                }
                memcpy(d.names + pos, e->name, e->namelen);
                d.names[pos + e->namelen] = 0;
                o->name = d.names + pos;
                pos += e->namelen + 1;
                o->next = e->next;
                o->type = e->type;
                o->dot = is_dots(o->name);
                if (!strcmp(o->name, ".")) {
                        o->fino = fino;
                } else if (!strcmp(o->name, "..") && ino == LP_FS_ROOT_INO) {
                        uint32_t pfg;
                        uint64_t pino;

                        /* The root of a mounted group: its parent is the mount
                         * point's side; the kernel only shows this number. */
                        if (fg == US_ROOT_FG || us_mtab_mountpoint(core->mtab, fg, &pfg,
                                                                   &pino) < 0)
                                o->fino = fino;
                        else if (us_ino_to_fuse(pfg, pino, &o->fino) < 0)
                                o->fino = fino;
                } else {
                        if (e->type == DT_DIR &&
                            us_mtab_mounted_on(core->mtab, fg, eino, &fg2) == 1) {
                                efg = fg2;
                                eino = LP_FS_ROOT_INO;
                        }
                        if (us_ino_to_fuse(efg, eino, &o->fino) < 0) {
                                cm_log(LOG_WARNING, "<%u,%llu>: entry %s: inode number does "
                                       "not fit in 48 bits; left out", fg,
                                       (unsigned long long)ino, o->name);
                                continue;
                        }
                }
                if (plus && !o->dot) {
                        if (efg != fg) {
                                struct lp_fs_resp aresp;
                                struct lp_fs_req areq;

                                req_init(&areq, ctx, LP_FS_GETATTR, efg, LP_FS_ROOT_INO);
                                if (call_fg(core, ctx, &areq, US_RESEND_ANY, &aresp) == 0) {
                                        if (aresp.has_attr) {
                                                o->has_attr = true;
                                                o->generation = aresp.attr.generation;
                                                us_attr_to_stat(&aresp.attr, o->fino, &o->st);
                                        }
                                        lp_fs_resp_release(&aresp);
                                }
                        } else if (e->has_attr) {
                                o->has_attr = true;
                                o->generation = e->attr.generation;
                                us_attr_to_stat(&e->attr, o->fino, &o->st);
                        }
                }
                if (!o->has_attr) {
                        o->st.st_ino = o->fino;
                        o->st.st_mode = (mode_t)DTTOIF(o->type);
                }
                d.n++;
        }
        lp_fs_resp_release(&resp);
        *ret = d;
        return 0;
fail:
        lp_fs_resp_release(&resp);
        us_dir_release(&d);
        return r;
}

int us_core_fsyncdir(struct us_core *core, struct us_ctx *ctx, uint64_t fino)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r = us_ino_from_fuse(fino, &fg, &ino);

        if (r < 0)
                return r;
        req_init(&req, ctx, LP_FS_SYNC, fg, 0);
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

int us_core_statfs(struct us_core *core, struct us_ctx *ctx, uint64_t fino, struct statvfs *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r = us_ino_from_fuse(fino ? fino : US_FUSE_ROOT, &fg, &ino);

        if (r < 0)
                return r;
        req_init(&req, ctx, LP_FS_STATFS, fg, 0);
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        memset(ret, 0, sizeof(*ret));
        if (resp.has_statfs) {
                ret->f_bsize = resp.statfs.bsize ? resp.statfs.bsize : US_BLKSIZE;
                ret->f_frsize = ret->f_bsize;
                ret->f_blocks = resp.statfs.blocks;
                ret->f_bfree = resp.statfs.bfree;
                ret->f_bavail = resp.statfs.bavail;
                ret->f_files = resp.statfs.files;
                ret->f_ffree = resp.statfs.ffree;
                ret->f_favail = resp.statfs.ffree;
                ret->f_namemax = resp.statfs.namemax ? resp.statfs.namemax : LP_FS_NAME_MAX;
        } else {
                ret->f_bsize = ret->f_frsize = US_BLKSIZE;
                ret->f_namemax = LP_FS_NAME_MAX;
        }
        lp_fs_resp_release(&resp);
        return 0;
}

/* ---- extended attributes -------------------------------------------------------------- */

/*
 * Names we serve.  "system." names carry kernel semantics (POSIX ACLs:
 * system.posix_acl_access must change the mode with it) that a plain store
 * of values would get wrong, so they are refused as on a filesystem
 * mounted noacl: EOPNOTSUPP, and programs such as cp -p fall back to
 * chmod.
 */
static int xattr_name(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > LP_FS_NAME_MAX)
                return -ERANGE;
        if (!strncmp(name, "system.", 7))
                return -EOPNOTSUPP;
        return 0;
}

/* Drop "system." names (stored before this rule, or by another client)
 * from a NUL-separated list, in place; the new length. */
static size_t xattr_filter(uint8_t *list, size_t len)
{
        size_t in = 0, out = 0;

        while (in < len) {
                uint8_t *z = memchr(list + in, 0, len - in);
                size_t l = z ? (size_t)(z - (list + in)) + 1 : len - in;

                if (!(l >= 7 && !memcmp(list + in, "system.", 7))) {
                        memmove(list + out, list + in, l);
                        out += l;
                }
                in += l;
        }
        return out;
}

/* The whole list of names (NUL-separated) into *ret. */
static int xattr_list(struct us_core *core, struct us_ctx *ctx, uint32_t fg, uint64_t ino,
                      struct lp_fs_resp *ret)
{
        struct lp_fs_req req;

        req_init(&req, ctx, LP_FS_LISTXATTR, fg, ino);
        req.length = LP_FS_DATA_MAX;
        return call_fg(core, ctx, &req, US_RESEND_ANY, ret);
}

int us_core_setxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                     const void *value, size_t size, int flags)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = xattr_name(name);
        if (r < 0)
                return r;
        if (size > LP_FS_XATTR_VALUE_MAX)
                return -E2BIG;
        if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
                return -EINVAL;
        if (!strcmp(name, CAPS_NAME))
                caps_forget(core, fino);
        req_init(&req, ctx, LP_FS_SETXATTR, fg, ino);
        req_name(&req, name);
        req.data = value;
        req.datalen = size;
        req.flags = ((flags & XATTR_CREATE) ? LP_FS_XATTR_CREATE : 0) |
                    ((flags & XATTR_REPLACE) ? LP_FS_XATTR_REPLACE : 0);
        /* Setting a value twice is the same as once, unless CREATE makes
         * the second one fail. */
        r = call_fg(core, ctx, &req, (flags & XATTR_CREATE) ? US_RESEND_UNSENT : US_RESEND_ANY,
                    &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

int us_core_getxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                     void *buf, size_t size, size_t *ret_len)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_node *n;
        bool caps;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = xattr_name(name);
        if (r < 0)
                return r;
        caps = !strcmp(name, CAPS_NAME);
        if (caps) {
                bool absent;

                pthread_mutex_lock(&core->mu);
                n = node_find(core, fino);
                absent = n && n->nocaps_until > cm_now_us();
                pthread_mutex_unlock(&core->mu);
                if (absent)
                        return -ENODATA;
        }
        req_init(&req, ctx, LP_FS_GETXATTR, fg, ino);
        req_name(&req, name);
        /* Ask for the whole value and check the size here, so that ERANGE
         * does not depend on the wire. */
        req.length = size ? LP_FS_XATTR_VALUE_MAX : 0;
        r = call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == -ENODATA && caps) {
                pthread_mutex_lock(&core->mu);
                n = node_find(core, fino);
                if (n)
                        caps_absent(n);
                pthread_mutex_unlock(&core->mu);
        }
        if (r < 0)
                return r;
        if (size == 0) {
                *ret_len = resp.datalen ? resp.datalen : resp.value;
        } else if (resp.datalen > size) {
                r = -ERANGE;
        } else {
                memcpy(buf, resp.data, resp.datalen);
                *ret_len = resp.datalen;
        }
        lp_fs_resp_release(&resp);
        return r;
}

int us_core_listxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, void *buf,
                      size_t size, size_t *ret_len)
{
        struct lp_fs_resp resp;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = xattr_list(core, ctx, fg, ino, &resp);
        if (r < 0)
                return r;
        /* resp.data is the decoded message's own memory. */
        resp.datalen = xattr_filter((uint8_t *)resp.data, resp.datalen);
        if (size == 0) {
                *ret_len = resp.datalen;
        } else if (resp.datalen > size) {
                r = -ERANGE;
        } else {
                memcpy(buf, resp.data, resp.datalen);
                *ret_len = resp.datalen;
        }
        lp_fs_resp_release(&resp);
        return r;
}

int us_core_removexattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino,
                        const char *name)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = xattr_name(name);
        if (r < 0)
                return r;
        if (!strcmp(name, CAPS_NAME))
                caps_forget(core, fino);
        req_init(&req, ctx, LP_FS_REMOVEXATTR, fg, ino);
        req_name(&req, name);
        /* A resend after a lost answer would say ENODATA for a removal that
         * happened: send once. */
        r = call_fg(core, ctx, &req, US_RESEND_UNSENT, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}
