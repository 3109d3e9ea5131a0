/*
 * us_core.c -- see us_core.h.  The core object: small helpers, nodes and
 * lookup counts, where requests go and how they are sent, the mount table,
 * life cycle and the keeper thread.  Structs and invariants: us_core_int.h.
 */
#include "us_core_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm.h"

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
int us__cv_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline)
{
        struct timespec ts;

        if (cm_now_us() >= deadline)
                return -ETIMEDOUT;
        ts.tv_sec = (time_t)(deadline / 1000000u);
        ts.tv_nsec = (long)(deadline % 1000000u) * 1000;
        pthread_cond_timedwait(cv, mu, &ts);
        return 0;
}

void us__req_init(struct lp_fs_req *req, const struct us_ctx *ctx, uint32_t op, uint32_t fg,
                  uint64_t ino)
{
        memset(req, 0, sizeof(*req));
        req->op = op;
        req->cred = ctx->cred;
        req->cred.groups = ctx->cred.ngroups ? ctx->groups : NULL;
        req->fg = fg;
        req->ino = ino;
}

void us__req_name(struct lp_fs_req *req, const char *name)
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

struct us_node *us__node_find(struct us_core *core, uint64_t fino)
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
struct us_node *us__node_get(struct us_core *core, uint64_t fino)
{
        struct us_node *n = us__node_find(core, fino);
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

        if (n->nlookup || n->refs || n->nopen || n->sess || n->committing || n->opening ||
            n->sizing)
                return;
        for (pp = &core->ht[hash_ino(n->fino, core->htcap)]; *pp; pp = &(*pp)->hnext) {
                if (*pp == n) {
                        *pp = n->hnext;
                        break;
                }
        }
        core->nnodes--;
        free(n->lname);
        free(n);
}

void us__node_put(struct us_core *core, struct us_node *n)
{
        n->refs--;
        node_maybe_free(core, n);
}

/* Wait until no END commit of n is in flight (and, if also_opening, no
 * session is being started). */
int us__node_wait(struct us_core *core, struct us_node *n, const struct us_ctx *ctx,
                  bool also_opening)
{
        while (n->committing || n->changing || (also_opening && (n->opening || n->sizing))) {
                if (us__cv_wait_until(&core->cv, &core->mu, ctx->call.deadline) < 0)
                        return -ETIMEDOUT;
        }
        return 0;
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

void us__css_target(struct us_core *core, struct us_target *t)
{
        memset(t, 0, sizeof(*t));
        t->what = "css";
        css_addr(core, &t->addr);
        t->resolve = resolve_css;
        t->resolve_arg = core;
        t->busy_retry = true;           /* its EAGAIN: too many requests waiting */
}

static int refresh_on_miss(struct us_core *core, uint64_t deadline);

static int resolve_fg(void *arg, uint32_t fg, unsigned attempt, uint64_t deadline,
                      struct us_site *addr)
{
        struct us_core *core = arg;
        int r;

        /* The primary may have changed (docs/replication.md: a mount that
         * loses its connection to the primary fetches the mount table at
         * once), or the site moved or registered meanwhile: after the first
         * failure, ask the CSS (rate-limited, and never past our deadline). */
        if (attempt >= 1)
                refresh_on_miss(core, deadline);
        r = us_mtab_site(core->mtab, fg, addr);
        if (r == -ENOENT)
                return -ESTALE;
        return r;
}

/* Target for requests about file group fg (its storage site per the mount
 * table).  -ESTALE when fg is gone from the table. */
int us__fg_target(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
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

void us__site_target(const struct us_site *site, struct us_target *t)
{
        memset(t, 0, sizeof(*t));
        t->what = "storage";
        t->addr = *site;
}

/*
 * A write session lives at one storage site: its staged pages and its
 * truncate are there and nowhere else, so its requests never go anywhere
 * else.  After a failed attempt (a broken or refused connection) ask the
 * mount table whether that site still serves the group: if the group's
 * primary is now another site, or the same site at another address (it
 * restarted), the session cannot be continued anywhere: -ESTALE, which
 * loses it (us_sess.c) and fails the session's writes, flush and fsync
 * with EIO at once instead of retrying a dead address until the deadline.
 * An unanswered refresh (no CSS) or a group without a registered primary
 * keeps trying the session's site.
 */
static int resolve_sess(void *arg, uint32_t fg, unsigned attempt, uint64_t deadline,
                        struct us_site *addr)
{
        struct us_core *core = arg;
        struct us_site now;
        int r;

        (void)attempt;
        refresh_on_miss(core, deadline);
        r = us_mtab_site(core->mtab, fg, &now);
        if (r == -ENOENT)
                return -ESTALE;
        if (r < 0)
                return 0;
        if (now.site != addr->site || !us__same_site(&now, addr)) {
                cm_log(LOG_NOTICE, "file group %u: the write session's storage site %llu "
                       "(%s:%u) no longer serves it (the primary is site %llu at %s:%u): "
                       "the session is lost", fg, (unsigned long long)addr->site, addr->host,
                       addr->port, (unsigned long long)now.site, now.host, now.port);
                return -ESTALE;
        }
        return 0;
}

void us__sess_target(struct us_core *core, uint32_t fg, const struct us_site *site,
                     struct us_target *t)
{
        us__site_target(site, t);
        t->resolve = resolve_sess;
        t->resolve_arg = core;
        t->resolve_key = fg;
}

/* Requests that change nothing a directory listing shows. */
bool us__read_only(uint32_t op)
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

int us__call(struct us_core *core, const struct us_ctx *ctx, struct us_target *t,
             const struct lp_fs_req *req, enum us_resend rs, struct lp_fs_resp *resp)
{
        bool change = core->sa && !us__read_only(req->op);
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

int us__call_fg(struct us_core *core, const struct us_ctx *ctx, const struct lp_fs_req *req,
                enum us_resend rs, struct lp_fs_resp *resp)
{
        struct us_target t;
        int r = us__fg_target(core, ctx, req->fg, &t);

        if (r < 0)
                return r;
        return us__call(core, ctx, &t, req, rs, resp);
}

bool us__same_site(const struct us_site *a, const struct us_site *b)
{
        return a->port == b->port && !strcmp(a->host, b->host);
}

/* Where requests through fh (no session) on n go: the file group's site,
 * unless the CSS named another one (a newer copy) when fh was opened. */
int us__node_target(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                    struct us_fh *fh, struct us_target *t)
{
        int r = us__fg_target(core, ctx, n->fg, t);

        if (r < 0)
                return r;
        if (fh && fh->site.host[0] && fh->site.port && !us__same_site(&fh->site, &t->addr))
                us__site_target(&fh->site, t);
        return 0;
}
/* ---- mount table ---------------------------------------------------------------- */

int us_core_refresh_mtab(struct us_core *core, struct us_ctx *ctx)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        us__css_target(core, &t);
        us__req_init(&req, ctx, LP_FS_CSS_MOUNTTABLE, 0, 0);
        r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
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
                us__sess_use(s);
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
                us__req_init(&req, &ctx, LP_FS_GETATTR, s->node->fg, s->node->ino);
                req.session = s->id;
                us__sess_target(core, s->node->fg, &s->site, &t);
                r = us__call(core, &ctx, &t, &req, US_RESEND_ANY, &resp);
                if (r == 0)
                        lp_fs_resp_release(&resp);
                pthread_mutex_lock(&core->mu);
                us__sess_unuse(core, s, r);
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
                        us__css_target(core, &t);
                        us__req_init(&req, &ctx, LP_FS_CSS_OPENED, batch[i].fg, batch[i].ino);
                        req.flags = (uint32_t)batch[i].flags;
                        if (us__call(core, &ctx, &t, &req, US_RESEND_ANY, &resp) == 0)
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
                        us__cv_wait_until(&core->kcv, &core->kmu, next);
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
                                free(n->lname);
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

void us_core_set_writeback(struct us_core *core, bool on)
{
        core->writeback = on;
}

uint64_t us_core_session_of(struct us_core *core, uint64_t fino, bool *ret_committing)
{
        struct us_node *n;
        uint64_t id = 0;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
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
        node = us__node_get(core, fino);
        if (node) {
                node->nlookup += n;
                us__node_put(core, node);
        }
        pthread_mutex_unlock(&core->mu);
        return node ? 0 : -ENOMEM;
}

void us_core_forget(struct us_core *core, uint64_t fino, uint64_t n)
{
        struct us_node *node;

        pthread_mutex_lock(&core->mu);
        node = us__node_find(core, fino);
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
        node = us__node_find(core, fino);
        if (node)
                n = node->nlookup;
        pthread_mutex_unlock(&core->mu);
        return n;
}

/* ---- coherence (us_watch.h) ---------------------------------------------------- */

int us_core_css_addr(struct us_core *core, struct us_site *ret)
{
        return css_addr(core, ret);
}

bool us_core_note(struct us_core *core, uint64_t fino)
{
        struct us_node *n;
        bool known;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        if (n) {
                n->cattr_valid = false;
                n->nocaps_until = 0;    /* another mount may have set security.capability */
        }
        known = fino == US_FUSE_ROOT || (n && n->nlookup > 0);
        pthread_mutex_unlock(&core->mu);
        return known;
}

void us_core_note_batch(struct us_core *core)
{
        us_sa_invalidate(core->sa);
}

int us_core_known(struct us_core *core, uint32_t fg, uint64_t **ret, size_t *ret_n)
{
        uint64_t *v;
        size_t n = 0;

        pthread_mutex_lock(&core->mu);
        v = malloc((core->nnodes + 1) * sizeof(*v));
        if (!v) {
                pthread_mutex_unlock(&core->mu);
                return -ENOMEM;
        }
        for (size_t i = 0; i < core->htcap; i++)
                for (struct us_node *nd = core->ht[i]; nd; nd = nd->hnext) {
                        if (nd->nlookup == 0 && nd->fino != US_FUSE_ROOT)
                                continue;
                        if (fg && nd->fg != fg)
                                continue;
                        nd->cattr_valid = false;
                        nd->nocaps_until = 0;
                        v[n++] = nd->fino;
                }
        pthread_mutex_unlock(&core->mu);
        *ret = v;
        *ret_n = n;
        return 0;
}
