/*
 * us_file.c -- the using site's operations on files (us_core.h "files"):
 * attributes, open, create, release, read, write, flush, fsync,
 * fallocate, copy_range, lseek.  Invariants: us_core_int.h.
 */
#include "us_core_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm.h"

/* ---- held nodes -------------------------------------------------------------------------- */

/* A held node for fino (refs + 1), or an error. */
static int hold(struct us_core *core, uint64_t fino, struct us_node **ret)
{
        uint32_t fg;
        uint64_t ino;
        int r = us_ino_from_fuse(fino, &fg, &ino);

        if (r < 0)
                return r;
        pthread_mutex_lock(&core->mu);
        *ret = us__node_get(core, fino);
        pthread_mutex_unlock(&core->mu);
        return *ret ? 0 : -ENOMEM;
}

static void unhold(struct us_core *core, struct us_node *n)
{
        pthread_mutex_lock(&core->mu);
        us__node_put(core, n);
        pthread_mutex_unlock(&core->mu);
}

/* ---- attributes ----------------------------------------------------------------------- */

void us_core_kernel_size(struct us_core *core, uint64_t fino, uint64_t size, bool entry)
{
        struct us_node *n;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        if (n && !(entry && n->nlookup > 1)) {
                n->has_ksize = true;
                n->ksize = size;
        }
        pthread_mutex_unlock(&core->mu);
}

enum us_size_news us_core_open_size_news(struct us_core *core, struct us_fh *fh, uint64_t size)
{
        enum us_size_news news = US_SIZE_SAME;
        struct us_node *n = fh->node;

        pthread_mutex_lock(&core->mu);
        /* No write session but the one this open started, if any. */
        if ((!n->sess || (n->sess == fh->sess && n->sess->handles == 1)) && !n->opening) {
                if (n->cache_bad)
                        news = US_SIZE_SHRANK;  /* any size: the kernel's may be larger */
                else if (!n->has_ksize || size > n->ksize)
                        news = US_SIZE_GREW;
                else if (size < n->ksize)
                        news = US_SIZE_SHRANK;
                n->cache_bad = false;
                n->has_ksize = true;
                n->ksize = size;
                if (news == US_SIZE_GREW)
                        n->sizing++;            /* (7) */
        }
        pthread_mutex_unlock(&core->mu);
        return news;
}

void us_core_open_size_done(struct us_core *core, uint64_t fino)
{
        struct us_node *n;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        if (n && n->sizing) {
                n->sizing--;
                pthread_cond_broadcast(&core->cv);
        }
        pthread_mutex_unlock(&core->mu);
}

void us_core_note_name(struct us_core *core, uint64_t fino, uint64_t parent, const char *name)
{
        struct us_node *n;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        if (n && (n->lparent != parent || !n->lname || strcmp(n->lname, name))) {
                char *copy = strdup(name);

                if (copy) {
                        free(n->lname);
                        n->lname = copy;
                        n->lparent = parent;
                }
        }
        pthread_mutex_unlock(&core->mu);
}

int us_core_name_of(struct us_core *core, uint64_t fino, uint64_t *ret_parent, char *buf,
                    size_t cap)
{
        struct us_node *n;
        int r = -ENOENT;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        if (n && n->lname && strlen(n->lname) < cap) {
                strcpy(buf, n->lname);
                *ret_parent = n->lparent;
                r = 0;
        }
        pthread_mutex_unlock(&core->mu);
        return r;
}

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
                us__node_put(core, n);
                pthread_mutex_unlock(&core->mu);
                return 0;
        }
        pthread_mutex_unlock(&core->mu);
        us__req_init(&req, ctx, LP_FS_GETATTR, n->fg, n->ino);
        r = us__call_sess(core, ctx, n, fh, SESS_OPTIONAL, &req, US_RESEND_ANY, &resp);
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
        us__req_init(&req, ctx, LP_FS_SETATTR, n->fg, n->ino);
        req.valid = to_set | (core->writeback ? LP_FS_CLIENT_TIMES : 0);
        req.mode = in->st_mode & 07777;
        req.uid = in->st_uid;
        req.gid = in->st_gid;
        req.size = (uint64_t)in->st_size;
        req.atime.sec = in->st_atim.tv_sec;
        req.atime.nsec = (uint32_t)in->st_atim.tv_nsec;
        req.mtime.sec = in->st_mtim.tv_sec;
        req.mtime.nsec = (uint32_t)in->st_mtim.tv_nsec;
        if (to_set & LP_FS_SET_CTIME) {
                req.ctime.sec = in->st_ctim.tv_sec;
                req.ctime.nsec = (uint32_t)in->st_ctim.tv_nsec;
        }
        r = us__call_sess(core, ctx, n, fh, need, &req, US_RESEND_ANY, &resp);
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

/* ---- open, create, release -------------------------------------------------------------- */

uint64_t us_fh_fino(const struct us_fh *fh)
{
        return fh->node->fino;
}

bool us_fh_open_size(const struct us_fh *fh, uint64_t *ret)
{
        if (!fh->has_osize)
                return false;
        *ret = fh->osize;
        return true;
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
        fh->node = us__node_get(core, fino);
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

        us__css_target(core, &t);
        us__req_init(&req, ctx, LP_FS_CSS_CLOSE, n->fg, n->ino);
        req.flags = (uint32_t)flags;
        r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        else
                cm_log(LOG_INFO, "<%u,%llu>: close at the CSS: %s", n->fg,
                       (unsigned long long)n->ino, strerror(-r));
}

/* Truncate through session s (fh's, joined) for an O_TRUNC open. */
static int trunc_in_session(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        int r;

        us__req_init(&req, ctx, LP_FS_SETATTR, fh->node->fg, fh->node->ino);
        req.valid = LP_FS_SET_SIZE | (core->writeback ? LP_FS_CLIENT_TIMES : 0);
        req.size = 0;
        r = us__call_sess(core, ctx, fh->node, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

/*
 * OPEN fh's file at the storage site: a writable fh joins the node's
 * session, or the one the site opens becomes it (2).  The caller set
 * n->opening (writable, under mu) and does not hold mu; it is cleared
 * here.  *ret_version: the file's version the answer named.
 */
static int open_at_site(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, int flags,
                        uint64_t *ret_version)
{
        struct us_node *n = fh->node;
        bool writable = writable_flags(flags), joined = false;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        uint64_t extra = 0;
        int r;

        us__req_init(&req, ctx, LP_FS_OPEN, n->fg, n->ino);
        req.flags = (uint32_t)flags;
        if (core->writeback)
                req.valid = LP_FS_CLIENT_TIMES;
        r = us__node_target(core, ctx, n, fh, &t);
        if (r == 0)
                r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        pthread_mutex_lock(&core->mu);
        if (writable) {
                n->opening = false;
                pthread_cond_broadcast(&core->cv);
        }
        if (r == 0) {
                *ret_version = resp.version ? resp.version : (resp.has_attr ? resp.attr.version : 0);
                /* The committed size, unless this mount's session (its
                 * writes, and the kernel's) may say more. */
                fh->has_osize = resp.has_attr && !n->sess;
                fh->osize = resp.attr.size;
                if (writable && !resp.session) {
                        cm_log(LOG_ERR, "<%u,%llu> at site %llu: a writable open answered without a "
                               "session", n->fg, (unsigned long long)n->ino,
                               (unsigned long long)t.addr.site);
                        r = -EIO;
                } else if (writable) {
                        /* A create of the same file may have started one
                         * meanwhile (2). */
                        r = us__sess_attach(core, n, fh, resp.session, &t.addr, &extra);
                        joined = r == 1;
                        if (r > 0)
                                r = 0;
                }
                lp_fs_resp_release(&resp);
        }
        pthread_mutex_unlock(&core->mu);
        if (extra)
                us__sess_abort(core, ctx, &t, n->fg, n->ino, extra);
        if (r == 0 && joined && (flags & O_TRUNC))
                r = trunc_in_session(core, ctx, fh);
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
                r = us__node_wait(core, fh->node, ctx, writable);
        pthread_mutex_unlock(&core->mu);
        if (r < 0)
                goto fail;
        n = fh->node;

        /* The CSS records the open and names the site with the newest copy. */
        us__css_target(core, &t);
        us__req_init(&req, ctx, LP_FS_CSS_OPEN, fg, ino);
        req.flags = (uint32_t)flags;
        r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
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

                pthread_mutex_lock(&core->mu);
                r = us__node_wait(core, n, ctx, writable);
                if (r < 0) {
                        pthread_mutex_unlock(&core->mu);
                        goto fail;
                }
                if (writable && n->sess) {
                        /* Join this mount's session of the file. */
                        s = n->sess;
                        us__sess_join(s, fh);
                        pthread_mutex_unlock(&core->mu);
                        us__req_init(&req, ctx, LP_FS_GETATTR, fg, ino);
                        r = us__call_sess(core, ctx, n, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
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
                                        us__sess_put(core, us__sess_leave(fh));
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
                r = open_at_site(core, ctx, fh, flags, &version);
                if (r < 0)
                        goto fail;
                break;
        }
        pthread_mutex_lock(&core->mu);
        keep = us__note_version(n, version);
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
        uint64_t fino, extra = 0, chg_seq, version;
        bool writable = writable_flags(flags), trunc = false, fresh, reopen = false;
        int r, w;

        r = us__parent_req(ctx, LP_FS_CREATE, parent, name, &req);
        if (r < 0)
                return r;
        req.mode = (mode & ~(uint32_t)S_IFMT) | S_IFREG;
        req.flags = (uint32_t)flags;
        if (core->writeback)
                req.valid = LP_FS_CLIENT_TIMES;
        r = us__fg_target(core, ctx, req.fg, &t);
        if (r < 0)
                return r;
        pthread_mutex_lock(&core->mu);
        chg_seq = core->chg_seq;                /* (5) */
        pthread_mutex_unlock(&core->mu);
        r = us__call(core, ctx, &t, &req, US_RESEND_UNSENT, &resp);
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
        fresh = us__node_find(core, fino) == NULL;
        r = fh_new(core, fino, flags & ~(O_CREAT | O_EXCL | O_NOCTTY), &fh);
        if (r < 0) {
                pthread_mutex_unlock(&core->mu);
                goto out;
        }
        n = fh->node;
        n->nlookup++;                   /* the entry we answer */
        fh->site = t.addr;
        version = resp.version ? resp.version : resp.attr.version;
        /* A commit of this file in flight or answered since the CREATE was
         * sent (the END commit of a file this mount just closed, a
         * truncate without a session) may have landed after the storage
         * site began our session: its snapshot is then older than that
         * commit, and its first read or write would lose the race
         * (EAGAIN).  Let the commit land, then open a session that sees
         * it (5).  A node this create made has no record: any commit
         * counts.  A session start in flight is no reason to fail: it
         * joins ours or we join its (2). */
        w = us__node_wait(core, n, ctx, true);
        if (writable) {
                if (n->sess) {
                        /* The file exists and this mount writes it
                         * already: one session per file, join that one. */
                        r = us__sess_attach(core, n, fh, resp.session, &t.addr, &extra);
                        trunc = r == 1 && (flags & O_TRUNC);
                        if (r > 0)
                                r = 0;
                } else if (w < 0 && (n->committing || n->changing)) {
                        /* As an open would: the commit did not land in time. */
                        r = w;
                        extra = resp.session;
                } else if (fresh ? core->chg_seq != chg_seq : n->chg_seq > chg_seq) {
                        reopen = true;
                        extra = resp.session;
                        n->opening = true;      /* open_at_site clears it */
                } else {
                        r = us__sess_attach(core, n, fh, resp.session, &t.addr, &extra);
                        if (r > 0)
                                r = 0;
                }
        }
        if (!reopen)
                us__note_version(n, version);
        if (!extra)
                us__caps_absent(n);         /* a new file has no extended attributes */
        pthread_mutex_unlock(&core->mu);

        if (reopen) {
                /* Our session stays open until the new one is: a live
                 * session keeps the storage site from freeing the file
                 * as an orphan before CSS_OPENED below (docs/protocol.md). */
                r = open_at_site(core, ctx, fh, flags & ~(O_CREAT | O_EXCL | O_NOCTTY), &version);
                if (r == 0) {
                        pthread_mutex_lock(&core->mu);
                        us__note_version(n, version);
                        pthread_mutex_unlock(&core->mu);
                }
        }
        if (extra)
                us__sess_abort(core, ctx, &t, req.fg, resp.attr.ino, extra);
        if (r == 0 && trunc)
                r = trunc_in_session(core, ctx, fh);
        if (r == 0) {
                /* The CSS records every open (the orphan decision needs
                 * them): this one was made by the storage site. */
                struct lp_fs_resp oresp;
                struct lp_fs_req oreq;
                struct us_target ct;

                us__css_target(core, &ct);
                us__req_init(&oreq, ctx, LP_FS_CSS_OPENED, req.fg, resp.attr.ino);
                oreq.flags = (uint32_t)flags;
                /* Sent again after a lost answer: counted twice at worst,
                 * which keeps an orphan until this mount ends, never
                 * frees one early.  A failure does not undo the create. */
                if (us__call(core, ctx, &ct, &oreq, US_RESEND_ANY, &oresp) == 0) {
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
        s = us__sess_leave(fh);
        if (s && s->handles == 0 && !s->err && !s->ending) {
                /* Last writable handle: the session ends.  (4), (5)  This
                 * release keeps the ref until the END commit is answered:
                 * a request that finishes meanwhile cannot free it. */
                us__sess_detach(core, s);
                s->ending = true;
                n->committing++;
                /* Requests still using the session finish first; each is
                 * bounded by its own deadline, and so is this wait (never
                 * stuck behind a lost one).  An ending session is never
                 * lost (sess_lost), so it is committed either way. */
                while (s->busy) {
                        if (us__cv_wait_until(&core->cv, &core->mu, ctx->call.deadline) < 0) {
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
                us__sess_put(core, s);
                s = NULL;
        }
        pthread_mutex_unlock(&core->mu);

        if (commit) {
                struct lp_fs_resp resp;
                struct lp_fs_req req;
                struct us_target t;
                uint64_t version = 0;
                int r;

                us__req_init(&req, ctx, LP_FS_COMMIT, n->fg, n->ino);
                req.session = id;
                req.flags = LP_FS_COMMIT_END;
                us__sess_target(core, n->fg, &site, &t);
                /* Sent once: after END the session is gone, so a resend could
                 * not tell a done commit from a lost session. */
                r = us__call(core, ctx, &t, &req, US_RESEND_UNSENT, &resp);
                if (r == 0) {
                        version = resp.version ? resp.version
                                               : (resp.has_attr ? resp.attr.version : 0);
                        pthread_mutex_lock(&core->mu);
                        n->has_ksize = resp.has_attr && resp.attr.ino == n->ino;
                        n->ksize = resp.attr.size;
                        pthread_mutex_unlock(&core->mu);
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
                us__note_commit(core, n);
                if (r == 0)
                        us__note_version(n, version);
                else
                        us__node_cache_stale(n);
                us__sess_put(core, s);
                pthread_cond_broadcast(&core->cv);
                pthread_mutex_unlock(&core->mu);
        }
        if (fh->css_open)
                css_close(core, ctx, n, fh->flags);

        pthread_mutex_lock(&core->mu);
        n->nopen--;
        us__node_put(core, n);
        pthread_mutex_unlock(&core->mu);
        free(fh);
}

/* ---- data ------------------------------------------------------------------------------- */

/* READ of n through fh (may be NULL), naming the session there is. */
static int read_node(struct us_core *core, struct us_ctx *ctx, struct us_node *n,
                     struct us_fh *fh, uint64_t off, size_t size, struct lp_fs_resp *ret)
{
        struct lp_fs_req req;
        int r;

        if (size > LP_FS_DATA_MAX)
                size = LP_FS_DATA_MAX;
        us__req_init(&req, ctx, LP_FS_READ, n->fg, n->ino);
        req.offset = off;
        req.length = size;
        r = us__call_sess(core, ctx, n, fh, SESS_OPTIONAL, &req, US_RESEND_ANY, ret);
        if (r == 0 && ret->datalen > size) {
                lp_fs_resp_release(ret);
                r = -EIO;
        }
        return r;
}

int us_core_read(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, uint64_t off,
                 size_t size, struct lp_fs_resp *ret)
{
        return read_node(core, ctx, fh->node, fh, off, size, ret);
}

int us_core_read_ino(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t off,
                     size_t size, struct lp_fs_resp *ret)
{
        struct us_node *n;
        int r = hold(core, fino, &n);

        if (r < 0)
                return r;
        r = read_node(core, ctx, n, NULL, off, size, ret);
        unhold(core, n);
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
        us__req_init(&req, ctx, LP_FS_WRITE, n->fg, n->ino);
        if (core->writeback)
                req.valid = LP_FS_CLIENT_TIMES;
        req.offset = off;
        req.data = buf;
        req.datalen = size;
        r = us__call_sess(core, ctx, n, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
        if (r < 0) {
                /* With the writeback cache nobody waits for this answer
                 * but the kernel, which reports it at the next fsync or
                 * close of any descriptor of the file. */
                cm_log(LOG_WARNING, "<%u,%llu>: write of %zu bytes at %llu failed: %s", n->fg,
                       (unsigned long long)n->ino, size, (unsigned long long)off, strerror(-r));
                pthread_mutex_lock(&core->mu);
                us__node_cache_stale(n);
                pthread_mutex_unlock(&core->mu);
                if (r != -EIO)
                        note_werr(core, fh, r);
                return r;
        }
        done = resp.value > size ? -EIO : (ssize_t)resp.value;
        lp_fs_resp_release(&resp);
        return done;
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
                        us__sess_use(s);
                        s->dirty = false;
                }
        }
        pthread_mutex_unlock(&core->mu);
        if (!s)
                return r;
        return us__sess_commit(core, ctx, fh->node, s, 0);
}

int us_core_fsync(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, bool datasync)
{
        struct us_node *n = fh->node;
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_sess *s;
        int r;

        pthread_mutex_lock(&core->mu);
        r = us__node_wait(core, n, ctx, false);
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
                us__sess_use(s);
                s->dirty = false;
        }
        pthread_mutex_unlock(&core->mu);

        if (s)
                return us__sess_commit(core, ctx, n, s,
                                       LP_FS_COMMIT_SYNC | (datasync ? LP_FS_COMMIT_DATASYNC : 0));
        /* Nothing staged here: make what is committed durable (an earlier
         * close's commit is in the log, maybe not yet on disk). */
        us__req_init(&req, ctx, LP_FS_SYNC, n->fg, 0);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
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
        us__req_init(&req, ctx, LP_FS_FALLOCATE, n->fg, n->ino);
        req.flags = (uint32_t)mode;
        if (core->writeback)
                req.valid = LP_FS_CLIENT_TIMES;
        req.offset = off;
        req.length = len;
        r = us__call_sess(core, ctx, n, fh, SESS_OWN, &req, US_RESEND_ANY, &resp);
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
        r = us__node_wait(core, ni, ctx, false);
        if (r < 0) {
                pthread_mutex_unlock(&core->mu);
                return r;
        }
        so = out->sess;
        if (!so || so->err) {
                pthread_mutex_unlock(&core->mu);
                return -EIO;
        }
        si = us__sess_pick(ni, in);
        if (si)
                src = si->site;
        else if (in->site.host[0])
                src = in->site;
        else
                src = so->site;         /* same file group: its storage site */
        if (!us__same_site(&src, &so->site)) {
                pthread_mutex_unlock(&core->mu);
                return -EXDEV;          /* the kernel copies by read and write */
        }
        us__sess_use(so);
        if (si) {
                us__sess_use(si);
                si->last_use = so->last_use;
        }
        pthread_mutex_unlock(&core->mu);

        us__req_init(&req, ctx, LP_FS_COPY_RANGE, ni->fg, ni->ino);
        req.offset = off_in;
        req.session = si ? si->id : 0;
        req.ino2 = no->ino;
        req.session2 = so->id;
        req.offset2 = off_out;
        req.length = len;
        if (core->writeback)
                req.valid = LP_FS_CLIENT_TIMES;
        us__sess_target(core, no->fg, &so->site, &t);
        r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);

        pthread_mutex_lock(&core->mu);
        if (r == 0)
                so->dirty = true;       /* the next close commits the copy */
        /* -ESTALE: the site restarted, and both sessions live there. */
        us__sess_unuse(core, so, r);
        if (si)
                us__sess_unuse(core, si, r);
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
        us__req_init(&req, ctx, LP_FS_LSEEK, n->fg, n->ino);
        req.offset = off;
        req.whence = (uint32_t)whence;
        r = us__call_sess(core, ctx, n, fh, SESS_OPTIONAL, &req, US_RESEND_ANY, &resp);
        if (r == 0) {
                *ret_off = resp.value;
                lp_fs_resp_release(&resp);
                return 0;
        }
        return r;
}
