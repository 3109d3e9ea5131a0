/*
 * css.c -- see css.h.
 *
 * Invariants:
 *   (1) every request that decodes is answered exactly once, unless its
 *       connection closed first (then it is not answered at all);
 *   (2) a struct css_client lives while its connection is open or a job
 *       refers to it (refs); cl->conn is NULL once on_close has run;
 *   (3) at most one file group creation is in its stages at a time
 *       (css->fgc_busy); the others wait in css->fgq in arrival order;
 *   (4) css is freed only when closing, no connection is left (nclients),
 *       no job is on the threadpool (jobs) and the tick timer is closed:
 *       callbacks never see a freed struct css;
 *   (5) an orphan is freed (FORGET_ORPHAN sent to its storage site) only
 *       when the open table holds no open of it (css_otab.h) and the
 *       reclaim window is over (uptime >= max(lease, CSS_RECLAIM_MIN_MS)):
 *       mounts that survived a CSS restart have seen the new boot id in
 *       the mount table (they fetch it every 5 s) and re-announced their
 *       opens by then, or lost their lease.
 *
 * Jobs (struct css_job) go through the threadpool: the work function runs
 * css_ss calls on copies (no pointer into the loop's tables), the after
 * function runs on the loop and answers.  File group creation is in
 * css_fgc.c, orphans in css_orphan.c.
 */
#include "css.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "cm.h"
#include "css_int.h"
#include "css_json.h"
#include "css_lease.h"
#include "css_membd.h"
#include "css_mtab.h"
#include "css_otab.h"
#include "css_site.h"
#include "css_ss.h"
#include "lp_fs.h"

/* ---- helpers ----------------------------------------------------------------- */

int css_path_normalize(const char *in, char *out, size_t cap)
{
        size_t o = 0;
        const char *p = in;

        if (!in || in[0] != '/' || cap < 2)
                return -EINVAL;
        while (*p) {
                const char *s;
                size_t n;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                s = p;
                while (*p && *p != '/')
                        p++;
                n = (size_t)(p - s);
                if (n > LP_FS_NAME_MAX)
                        return -ENAMETOOLONG;
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return -EINVAL;
                if (o + 1 + n + 1 > cap || o + 1 + n > LP_FS_PATH_MAX - 1)
                        return -ENAMETOOLONG;
                out[o++] = '/';
                memcpy(out + o, s, n);
                o += n;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = 0;
        return 0;
}

bool css_fg_name_ok(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > CSS_FG_NAME_MAX || name[0] == '.' || name[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static int fg_of(const struct css_jval *v, uint32_t *ret)
{
        uint64_t x;

        if (v->type == CSS_JOBJ)
                v = css_json_get(v, "fg");
        if (!css_json_uint(v, UINT32_MAX, &x) || x == 0)
                return -EBADMSG;
        *ret = (uint32_t)x;
        return 0;
}

int css_parse_fgs(const char *text, uint32_t **ret)
{
        const struct css_jval *arr;
        struct css_jval *root;
        uint32_t *v = NULL;
        int r;

        *ret = NULL;
        if (!text || !*text)
                return 0;
        r = css_json_parse(text, strlen(text), &root);
        if (r < 0)
                return r;
        arr = root;
        if (root->type == CSS_JOBJ) {
                arr = css_json_get(root, "fgs");
                if (!arr)
                        arr = css_json_get(root, "file_groups");
        }
        if (!arr || arr->type != CSS_JARR) {
                r = -EBADMSG;
                goto out;
        }
        if (arr->n > CSS_MAX_SITE_FGS) {
                r = -ENOSPC;
                goto out;
        }
        if (arr->n) {
                v = calloc(arr->n, sizeof(*v));
                if (!v) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        for (size_t i = 0; i < arr->n; i++) {
                r = fg_of(&arr->items[i], &v[i]);
                if (r < 0) {
                        free(v);
                        goto out;
                }
        }
        *ret = v;
        r = (int)arr->n;
out:
        css_json_free(root);
        return r;
}

/* ---- pushes to registered storage sites ---------------------------------------- */

static void watch_add(struct css *css, struct css_client *cl)
{
        if (cl->watching)
                return;
        cl->watching = true;
        cl->wprev = css->watchers.wprev;
        cl->wnext = &css->watchers;
        css->watchers.wprev->wnext = cl;
        css->watchers.wprev = cl;
}

static void watch_del(struct css_client *cl)
{
        if (!cl->watching)
                return;
        cl->watching = false;
        cl->wprev->wnext = cl->wnext;
        cl->wnext->wprev = cl->wprev;
        cl->wnext = cl->wprev = NULL;
}

void css__mtab_changed(struct css *css)
{
        struct lp_fs_req note = { .op = LP_FS_CSS_NOTE_MTAB };
        uint8_t *buf = NULL;
        size_t len = 0;

        if ((css->watchers.wnext == &css->watchers && !css->nnw) || css->closing)
                return;
        note.length = ++css->mtab_notes;
        if (lp_fs_req_encode(&note, &buf, &len) < 0)
                return;         /* out of memory: the sites' next poll reads it */
        for (struct css_client *cl = css->watchers.wnext; cl != &css->watchers; cl = cl->wnext)
                if (cl->conn)
                        (void)lp_server_send(cl->conn, LP_MSG_FS_REQ, 0, 0, buf, len);
        css_watch_mtab(css, buf, len);  /* and to the mounts that watch (css_watch.c) */
        free(buf);
}

static void client_unref(struct css_client *cl)
{
        if (cl && --cl->refs == 0)
                free(cl);
}

/* Free a job and drop its client reference (taken by job_new). */
void css__job_release(struct css_job *j)
{
        client_unref(j->cl);
        free(j->ofg);
        free(j->oino);
        free(j->path);
        free(j->eps);
        free(j->mnts);
        free(j->want);
        free(j->homes);
        free(j);
}

static bool listed(const uint64_t *holders, size_t n, uint64_t site)
{
        for (size_t i = 0; i < n; i++)
                if (holders[i] == site)
                        return true;
        return n == 0;
}

/* May the choice of fg's primary be kept?  Not while holders are still
 * registering with a CSS that just started. */
static bool primary_settled(const struct css *css, const uint64_t *holders, size_t n)
{
        if (!css_in_reclaim_window(css))
                return true;
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!css_sites_get(css->sites, holders[i]))
                        return false;
        return true;
}

const struct css_site *css__primary(struct css *css, uint32_t fg)
{
        const struct css_mount *m = css_mtab_find(css->mtab, fg);
        const uint64_t *holders = m ? m->holders : NULL;
        size_t n = m ? m->nholders : 0;
        uint64_t kept = fg < css->nprim ? css->prim[fg] : 0;
        const struct css_site *s;

        if (kept) {
                s = css_sites_get(css->sites, kept);
                if (s && s->conn && css_site_holds(s, fg) && listed(holders, n, kept))
                        return s;
        }
        s = css_sites_primary(css->sites, fg, holders, n);
        if (!s || !s->conn || s->id == kept || !primary_settled(css, holders, n))
                return s;
        if (fg >= css->nprim) {
                size_t cap = (size_t)fg + 1 > css->nprim * 2 ? (size_t)fg + 1 : css->nprim * 2;
                uint64_t *v = realloc(css->prim, cap * sizeof(*v));

                if (!v)
                        return s;       /* not kept: chosen again next time */
                memset(v + css->nprim, 0, (cap - css->nprim) * sizeof(*v));
                css->prim = v;
                css->nprim = cap;
        }
        if (kept)
                cm_log(LOG_NOTICE, "file group %u: storage site %" PRIu64 " is its primary now "
                       "(site %" PRIu64 " was, and is no longer connected or a holder)", fg, s->id,
                       kept);
        css->prim[fg] = s->id;
        return s;
}

/* Choose again, now, the primary of every group whose primary is gone. */
static void primaries_update(struct css *css)
{
        for (size_t i = 0; i < css_mtab_count(css->mtab); i++)
                css__primary(css, css_mtab_at(css->mtab, i)->fg);
}

static void css_free(struct css *css)
{
        while (css->fgq_head) {
                struct css_job *j = css->fgq_head;

                css->fgq_head = j->next;
                css__job_release(j);
        }
        css_ss_pool_free(css->pool);
        css_otab_free(css->otab);
        css_leases_free(css->leases);
        free(css->dfg);
        free(css->prim);
        free(css->nw);
        free(css->dino);
        css_sites_free(css->sites);
        css_mtab_close(css->mtab);
        free(css);
}

/* Invariant (4). */
static void maybe_free(struct css *css)
{
        if (css->closing && css->nclients == 0 && css->jobs == 0 && !css->tick_open)
                css_free(css);
}

/* Answer a request (invariant 1).  message may be NULL. */
void css__reply(struct css_client *cl, uint64_t reqid, struct lp_fs_resp *resp)
{
        uint8_t *buf;
        size_t len;
        int r;

        if (!cl->conn)
                return;
        r = lp_fs_resp_encode(resp, &buf, &len);
        if (r < 0) {
                struct lp_fs_resp e = { .status = r == -EINVAL ? -EFBIG : r,
                                        .message = "the answer does not fit in a message" };

                cm_log(LOG_WARNING, "cannot encode an answer for %s: %s", cl->peer, strerror(-r));
                if (lp_fs_resp_encode(&e, &buf, &len) < 0)
                        return;
        }
        r = lp_server_reply(cl->conn, reqid, LP_MSG_FS_RESP, buf, len);
        if (r == -EMSGSIZE) {
                struct lp_fs_resp e = { .status = -EFBIG, .message = "the answer is over the frame limit" };

                free(buf);
                if (lp_fs_resp_encode(&e, &buf, &len) < 0)
                        return;
                r = lp_server_reply(cl->conn, reqid, LP_MSG_FS_RESP, buf, len);
        }
        if (r < 0)
                cm_log(LOG_DEBUG, "answer to %s not sent: %s", cl->peer, strerror(-r));
        free(buf);
}

void css__reply_err(struct css_client *cl, uint64_t reqid, int status, const char *fmt, ...)
{
        struct lp_fs_resp resp = { .status = status };
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        resp.message = msg;
        css__reply(cl, reqid, &resp);
}

static void reply_ok(struct css_client *cl, uint64_t reqid)
{
        struct lp_fs_resp resp = { .status = 0 };

        css__reply(cl, reqid, &resp);
}

void css__ep_of(struct ep *e, const struct css_site *s, uint32_t fg)
{
        e->fg = fg;
        e->site = s->id;
        snprintf(e->host, sizeof(e->host), "%s", s->host);
        e->port = s->port;
}

/* ---- jobs -------------------------------------------------------------------- */

/* A job leaves the threadpool for good. */
static void job_done(struct css_job *j)
{
        struct css *css = j->css;

        css->jobs--;
        if (j->cl)
                j->cl->jobs--;
        css__job_release(j);
        maybe_free(css);
}

static void after_work(uv_work_t *req, int status);
static void work(uv_work_t *req);

/* Put j on the threadpool.  On failure answer it, free it (clearing
 * fgc_busy for a creation) and return false. */
bool css__job_start(struct css_job *j)
{
        struct css *css = j->css;
        int r;

        css->jobs++;
        if (j->cl)
                j->cl->jobs++;
        j->req.data = j;
        r = uv_queue_work(css->loop, &j->req, work, after_work);
        if (r < 0) {
                if (j->cl)
                        css__reply_err(j->cl, j->reqid, -EIO, "cannot queue work: %s", uv_strerror(r));
                else
                        cm_log(LOG_WARNING, "cannot queue work: %s", uv_strerror(r));
                if (j->kind == JOB_FGC_RESOLVE || j->kind == JOB_FGC_CREATE)
                        css->fgc_busy = false;
                job_done(j);
                return false;
        }
        return true;
}

/* A job holds a reference on its client (if any: NULL for the CSS's own
 * work) from here to css__job_release(). */
struct css_job *css__job_new(struct css *css, struct css_client *cl, uint64_t reqid, enum job_kind kind)
{
        struct css_job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->css = css;
        j->cl = cl;
        j->reqid = reqid;
        j->kind = kind;
        if (cl)
                cl->refs++;
        return j;
}

/* Threadpool side: one call to a storage site.  0 with *resp, or < 0
 * (transport failure, j->msg says what). */
int css__ss_call(struct css_job *j, const struct ep *e, struct lp_fs_req *rq, struct lp_fs_resp *resp)
{
        char err[256];
        int r;

        r = css_ss_call(j->css->pool, e->site, e->host, e->port, rq, resp, err, sizeof(err));
        if (r < 0) {
                j->transport_failed = true;
                j->failed_site = e->site;
                snprintf(j->msg, sizeof(j->msg), "storage site %" PRIu64 " (%s:%u) unreachable for %s: %s",
                         e->site, e->host, e->port, lp_fs_op_name(rq->op), err);
                return -EHOSTUNREACH;
        }
        return 0;
}



int css__ss_ask(struct css_job *j, const struct ep *e, struct lp_fs_req *rq, struct lp_fs_resp *resp)
{
        int r = css__ss_call(j, e, rq, resp);

        if (r < 0)
                return r;
        if (resp->status >= 0)
                return 0;
        r = resp->status;
        snprintf(j->msg, sizeof(j->msg), "<%u,%" PRIu64 ">: %s at storage site %" PRIu64 ": %s%s%s", rq->fg,
                 rq->ino, lp_fs_op_name(rq->op), e->site, strerror(-r), resp->message ? ": " : "",
                 resp->message ? resp->message : "");
        lp_fs_resp_release(resp);
        return r;
}

/* Keep an answer's attributes in the job (the vector copied: resp's
 * points into the answer, lp_fs.h). */
static void keep_attr(struct css_job *j, const struct lp_fs_attr *a)
{
        j->attr = *a;
        j->attr.vvlen = a->vvlen <= sizeof(j->vv) ? a->vvlen : 0;
        if (j->attr.vvlen)
                memcpy(j->vv, a->vv, j->attr.vvlen);
        j->attr.vv = j->vv;
}

/* Does the copy at e of a regular file keep its data (copies policies: a
 * site outside the file's placement has the row only and must never be
 * taken for a current copy, storage/ss_place.h [L3])?  Anything but a
 * clear yes is no. */
static bool has_data_at(struct css_job *j, const struct ep *e, const struct lp_fs_attr *a)
{
        struct lp_fs_req rq = { .op = LP_FS_SS_FETCH, .fg = j->fg, .ino = j->ino, .flags = LP_FS_FETCH_VV };
        struct lp_fs_resp resp;
        bool yes;

        if (!S_ISREG(a->mode))
                return true;
        if (css__ss_ask(j, e, &rq, &resp) < 0)
                return false;
        yes = !(resp.value & LP_FS_FETCH_NODATA);
        lp_fs_resp_release(&resp);
        return yes;
}

/* Is the copy at e as new as the primary's (the same vector), with the
 * data?  Then its attributes are kept and the mount may read it there.
 * Any failure is a no, and not an error of the open (the primary
 * answered): j's message and transport state are left as they were. */
static bool copy_serves(struct css_job *j, const struct ep *e)
{
        struct lp_fs_req rq = { .op = LP_FS_GETATTR, .fg = j->fg, .ino = j->ino };
        struct lp_fs_resp resp;
        char msg[sizeof(j->msg)];
        bool failed = j->transport_failed, yes = false;

        memcpy(msg, j->msg, sizeof(msg));
        if (css__ss_ask(j, e, &rq, &resp) == 0) {
                if (resp.has_attr && j->attr.vvlen && resp.attr.vvlen == j->attr.vvlen &&
                    !memcmp(resp.attr.vv, j->vv, j->attr.vvlen) && has_data_at(j, e, &resp.attr)) {
                        keep_attr(j, &resp.attr);
                        yes = true;
                }
                lp_fs_resp_release(&resp);
        }
        j->transport_failed = failed;
        memcpy(j->msg, msg, sizeof(msg));
        return yes;
}

/* A read-only open from a site holding a copy: is that copy as new as the
 * primary's and does it keep the data?  Then the mount reads it there
 * (docs/replication.md, "Reads at a current local copy"). */
static void work_open_local(struct css_job *j)
{
        if (copy_serves(j, &j->local))
                j->use_local = true;
}

/* A read-only open while the primary is not the group's home (failover):
 * if the primary keeps no data of the file (copies policies), another
 * holder with the data at the primary's vector serves the reads
 * (docs/replication.md, "Copies policies"); none: the primary, whose reads
 * then fail with EIO (never zeros). */
static void work_open_placed(struct css_job *j)
{
        char msg[sizeof(j->msg)];
        bool failed = j->transport_failed, here;

        if (!S_ISREG(j->attr.mode))
                return;
        memcpy(msg, j->msg, sizeof(msg));
        here = has_data_at(j, &j->target, &j->attr);
        j->transport_failed = failed;
        memcpy(j->msg, msg, sizeof(msg));
        if (here)
                return;
        for (size_t i = 0; i < j->nalts; i++)
                if (copy_serves(j, &j->alts[i])) {
                        j->local = j->alts[i];
                        j->use_local = true;
                        return;
                }
}

static void work_open(struct css_job *j)
{
        struct lp_fs_req rq = { .op = LP_FS_GETATTR, .fg = j->fg, .ino = j->ino };
        struct lp_fs_resp resp;

        j->status = css__ss_ask(j, &j->target, &rq, &resp);
        if (j->status < 0)
                return;
        if (!resp.has_attr) {
                j->status = -EIO;
                snprintf(j->msg, sizeof(j->msg), "<%u,%" PRIu64 ">: storage site %" PRIu64
                         " answered GETATTR without attributes", j->fg, j->ino, j->target.site);
        } else {
                keep_attr(j, &resp.attr);
        }
        lp_fs_resp_release(&resp);
        if (j->status == 0 && j->has_local)
                work_open_local(j);
        if (j->status == 0 && !j->use_local && j->nalts)
                work_open_placed(j);
}




static void work(uv_work_t *req)
{
        struct css_job *j = req->data;

        switch (j->kind) {
        case JOB_OPEN:
                work_open(j);
                break;
        case JOB_FGC_RESOLVE:
        case JOB_FGC_CREATE:
                css_fgc_work(j);
                break;
        case JOB_FORGET:
        case JOB_ORPHANS:
                css_orphan_work(j);
                break;
        }
}

/* Record the open of <fg, ino> and answer it: the copy at e serves it;
 * attr (NULL: not asked for) its attributes there. */
static void reply_open(struct css_client *cl, uint64_t reqid, uint32_t fg, uint64_t ino, bool write,
                       const struct ep *e, const struct lp_fs_attr *attr)
{
        struct css *css = cl->css;
        struct lp_fs_resp resp = { 0 };
        const struct css_site *s = css_sites_get(css->sites, e->site);
        int r;

        if (!cl->conn)
                return;                 /* nobody to hold the open for */
        r = css_otab_open(css->otab, cl->site, cl->id, fg, ino, write);
        if (r < 0) {
                css__reply_err(cl, reqid, r, "<%u,%" PRIu64 ">: cannot record the open: %s", fg, ino,
                          r == -ENOSPC ? "open table full" : strerror(-r));
                return;
        }
        resp.site = e->site;
        resp.host = s ? s->host : e->host;
        resp.port = s ? s->port : e->port;
        resp.value = css->boot;
        if (attr) {
                resp.version = attr->version;
                resp.has_attr = true;
                resp.attr = *attr;
        }
        css__reply(cl, reqid, &resp);
}

static void after_open(struct css_job *j)
{
        struct lp_fs_resp resp = { .status = j->status };

        if (j->status < 0) {
                cm_log(j->transport_failed ? LOG_WARNING : LOG_DEBUG, "open <%u,%" PRIu64 "> for %s: %s",
                       j->fg, j->ino, j->cl->peer, j->msg);
                resp.message = j->msg;
                css__reply(j->cl, j->reqid, &resp);
                return;
        }
        css_sites_touch(j->css->sites, j->target.site, cm_now_us());
        if (j->use_local)
                j->target = j->local;
        reply_open(j->cl, j->reqid, j->fg, j->ino, j->write, &j->target, &j->attr);
}




static void after_work(uv_work_t *req, int status)
{
        struct css_job *j = req->data;
        struct css *css = j->css;

        if (status < 0 && !j->status) {
                j->status = status == UV_ECANCELED ? -ECANCELED : -EIO;
                snprintf(j->msg, sizeof(j->msg), "request cancelled");
        }
        /* The CSS's own background calls do not hold a site off: that is
         * for the clients' requests, which they would fail at once. */
        if (j->transport_failed && j->cl)
                css_sites_failed(css->sites, j->failed_site, cm_now_us());
        switch (j->kind) {
        case JOB_OPEN:
                after_open(j);
                break;
        case JOB_FGC_RESOLVE:
        case JOB_FGC_CREATE:
                if (css_fgc_after(j))
                        return;
                css->fgc_busy = false;
                break;
        case JOB_FORGET:
        case JOB_ORPHANS:
                css_orphan_after(j);
                break;
        }
        if ((j->kind == JOB_FGC_RESOLVE || j->kind == JOB_FGC_CREATE) && !css->closing)
                css_fgc_next(css);
        job_done(j);
}







/* ---- operations answered on the loop ------------------------------------------ */

static void op_register(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        uint64_t site = rq->site ? rq->site : cl->site;
        char host[CSS_HOST_MAX];
        unsigned char addr[sizeof(struct in6_addr)];
        const struct css_site *old;
        uint32_t *fgs = NULL;
        char list[256];
        size_t off = 0;
        int n, r;
        bool again;

        if (!site || !rq->port || rq->port > 65535) {
                css__reply_err(cl, reqid, -EINVAL, "CSS_REGISTER needs a site id and a port (got site %" PRIu64
                          ", port %u)", site, rq->port);
                return;
        }
        /* Where to reach the site: the address it names, or else the one it called from. */
        if (rq->host && *rq->host && strlen(rq->host) < sizeof(host) &&
            ((inet_pton(AF_INET, rq->host, addr) == 1 && strcmp(rq->host, "0.0.0.0") != 0) ||
             (inet_pton(AF_INET6, rq->host, addr) == 1 && strcmp(rq->host, "::") != 0))) {
                snprintf(host, sizeof(host), "%s", rq->host);
        } else if (rq->host && *rq->host && strcmp(rq->host, "0.0.0.0") != 0 && strcmp(rq->host, "::") != 0) {
                css__reply_err(cl, reqid, -EINVAL, "CSS_REGISTER of site %" PRIu64 ": host '%.64s' is not a numeric "
                          "address", site, rq->host);
                return;
        } else if (cl->addr[0]) {
                memcpy(host, cl->addr, sizeof(host));
        } else {
                css__reply_err(cl, reqid, -EINVAL, "CSS_REGISTER of site %" PRIu64 ": no host given and the "
                          "connection's address is unknown", site);
                return;
        }
        n = css_parse_fgs(rq->text, &fgs);
        if (n < 0) {
                css__reply_err(cl, reqid, n == -ENOSPC ? -EINVAL : n, "CSS_REGISTER of site %" PRIu64 ": %s",
                          site, n == -ENOSPC ? "too many file groups" :
                          n == -EBADMSG ? "the file group list is not a JSON array of file group ids" :
                          strerror(-n));
                return;
        }
        old = css_sites_get(css->sites, site);
        again = old != NULL;
        r = css_sites_register(css->sites, site, host, (uint16_t)rq->port, fgs, (size_t)n, cl->serial,
                               cm_now_us());
        if (r < 0) {
                free(fgs);
                css__reply_err(cl, reqid, r, "CSS_REGISTER of site %" PRIu64 ": %s", site,
                          r == -ENOSPC ? "the site table is full" : strerror(-r));
                return;
        }
        list[0] = 0;
        for (int i = 0; i < n && off < sizeof(list) - 16; i++)
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%u", i ? "," : "", fgs[i]);
        cm_log(LOG_INFO, "storage site %" PRIu64 " %sregistered from %s: serves %s:%u, file groups [%s]", site,
               again ? "re-" : "", cl->peer, host, (unsigned)rq->port, list);
        /* A container there makes the site a holder of its file group
         * (the root group on every site; a table from before holders). */
        for (int i = 0; i < n; i++) {
                if (!css_mtab_find(css->mtab, fgs[i]))
                        continue;
                r = css_mtab_add_holders(css->mtab, fgs[i], &site, 1);
                if (r > 0)
                        cm_log(LOG_INFO, "file group %u: storage site %" PRIu64 " holds a container: recorded as "
                               "a holder", fgs[i], site);
                else if (r < 0)
                        cm_log(LOG_WARNING, "file group %u: cannot record storage site %" PRIu64 " as a holder "
                               "in %s: %s", fgs[i], site, css_mtab_path(css->mtab),
                               r == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r));
        }
        free(fgs);
        reply_ok(cl, reqid);
        watch_add(css, cl);
        css__mtab_changed(css);         /* the primary of its groups may have changed */
        css_orphans_fetch(css, site);
}

/* CSS_FG_SET: a file group's sync_copies (docs/replication.md), from 1 to
 * its number of holders; on disk before the answer.  Holders learn it
 * with the mount table they read when told (css__mtab_changed). */
static void op_fg_set(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        struct lp_fs_resp resp = { .status = 0 };
        const struct css_mount *m;
        char name[CSS_FG_NAME_MAX + 1];
        int r;

        if (css__fg_name(cl, reqid, rq, name) < 0)
                return;
        m = css_mtab_find_name(css->mtab, name);
        if (!m) {
                css__reply_err(cl, reqid, -ENOENT, "no file group '%s'", name);
                return;
        }
        if (rq->length < 1 || rq->length > (m->nholders ? m->nholders : 1)) {
                css__reply_err(cl, reqid, -EINVAL, "file group '%s' has %zu copies: sync_copies must be from 1 "
                               "to %zu", name, m->nholders, m->nholders ? m->nholders : 1);
                return;
        }
        r = css_mtab_set_sync_copies(css->mtab, m->fg, (unsigned)rq->length);
        if (r < 0) {
                css__reply_err(cl, reqid, r, "recording sync_copies of '%s' in %s: %s", name,
                               css_mtab_path(css->mtab), r == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r));
                return;
        }
        cm_log(LOG_INFO, "file group %u '%s': sync_copies %u", m->fg, name, (unsigned)rq->length);
        css__mtab_changed(css);
        resp.value = m->fg;
        css__reply(cl, reqid, &resp);
}

static void op_mounttable(struct css_client *cl, uint64_t reqid)
{
        struct css *css = cl->css;
        size_t n = css_mtab_count(css->mtab);
        struct lp_fs_mount *v = calloc(n ? n : 1, sizeof(*v));
        struct lp_fs_resp resp = { .status = 0 };
        struct lp_fs_holder *h;
        size_t nh = 0, k = 0;

        for (size_t i = 0; i < n; i++)
                nh += css_mtab_at(css->mtab, i)->nholders + css_mtab_at(css->mtab, i)->nadding;
        h = calloc(nh ? nh : 1, sizeof(*h));
        if (!v || !h) {
                free(v);
                free(h);
                css__reply_err(cl, reqid, -ENOMEM, "out of memory");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const struct css_mount *m = css_mtab_at(css->mtab, i);
                const struct css_site *s = css__primary(css, m->fg);

                v[i].fg = m->fg;
                v[i].name = m->name;
                v[i].parent_fg = m->parent_fg;
                v[i].parent_ino = m->parent_ino;
                v[i].path = m->path;
                v[i].sync_copies = m->sync_copies;
                if (s) {
                        v[i].site = s->id;
                        v[i].host = s->host;
                        v[i].port = s->port;
                }
                /* every holder and every site being added, in site order;
                 * an unregistered one with port 0 */
                v[i].holders = &h[k];
                v[i].nholders = m->nholders + m->nadding;
                for (size_t x = 0, y = 0; x < m->nholders || y < m->nadding; k++) {
                        bool adding = x == m->nholders || (y < m->nadding && m->adding[y] < m->holders[x]);
                        uint64_t id = adding ? m->adding[y++] : m->holders[x++];
                        const struct css_site *hs = css_sites_get(css->sites, id);

                        h[k].site = id;
                        h[k].host = hs ? hs->host : "";
                        h[k].port = hs ? hs->port : 0;
                        h[k].adding = adding;
                }
        }
        resp.mounts = v;
        resp.nmounts = n;
        resp.value = css->boot;
        css__reply(cl, reqid, &resp);
        free(v);
        free(h);
}

/* Must an open ask storage sites (work_open): the primary's registration
 * link is down (is it there at all?), or a read-only open may be served by
 * the mount's own site's copy (work_open_local), or the primary is not the
 * group's home (work_open_placed)?  Otherwise the primary serves it,
 * whatever its copy holds. */
static bool open_needs_copies(struct css *css, const struct css_client *cl, const struct css_mount *m,
                              const struct css_site *s, const struct lp_fs_req *rq)
{
        if (!s->conn)
                return true;
        if ((rq->flags & O_ACCMODE) != O_RDONLY)
                return false;
        if (m->nholders && s->id != m->holders[0])
                return true;
        for (size_t i = 0; cl->site && cl->site != s->id && i < m->nholders; i++)
                if (m->holders[i] == cl->site) {
                        const struct css_site *ls = css_sites_get(css->sites, cl->site);

                        return ls && ls->conn && ls->port;
                }
        return false;
}

static void op_open(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        const struct css_mount *m = css_mtab_find(css->mtab, rq->fg);
        const struct css_site *s;
        struct css_job *j;

        if (!m) {
                css__reply_err(cl, reqid, -ENOENT, "<%u,%" PRIu64 ">: no file group %u in the mount table", rq->fg,
                          rq->ino, rq->fg);
                return;
        }
        if (!rq->ino) {
                css__reply_err(cl, reqid, -EINVAL, "<%u,0>: no inode 0", rq->fg);
                return;
        }
        s = css__primary(css, rq->fg);
        if (!s) {
                cm_log(LOG_NOTICE, "open <%u,%" PRIu64 "> for %s: no registered storage site holds file group %u",
                       rq->fg, rq->ino, cl->peer, rq->fg);
                css__reply_err(cl, reqid, -EHOSTUNREACH, "<%u,%" PRIu64 ">: no registered storage site holds file "
                          "group %u (%s)", rq->fg, rq->ino, rq->fg, m->path);
                return;
        }
        if (css_site_held_off(s, cm_now_us())) {
                css__reply_err(cl, reqid, -EHOSTUNREACH, "<%u,%" PRIu64 ">: storage site %" PRIu64 " (%s:%u) could not "
                          "be reached %" PRIu64 " ms ago; trying again after %u ms", rq->fg, rq->ino, s->id,
                          s->host, s->port, (cm_now_us() - s->fail_us) / 1000, CSS_SITE_HOLDOFF_MS);
                return;
        }
        /* Synchronization policy of the file group. */
        switch (m->policy) {
        case CSS_SYNC_SHARED:
                break;              /* readers and writers share the file, on every site */
        }
        if (!open_needs_copies(css, cl, m, s, rq)) {
                /* The primary serves it, and no copy is to be compared:
                 * answered here, without asking the storage site (whose
                 * OPEN, next, says whether the file is there). */
                struct ep e;

                css__ep_of(&e, s, rq->fg);
                reply_open(cl, reqid, rq->fg, rq->ino, (rq->flags & O_ACCMODE) != O_RDONLY, &e, NULL);
                return;
        }
        if (css->jobs >= CSS_MAX_JOBS || cl->jobs >= CSS_MAX_CLIENT_JOBS) {
                cm_log(LOG_WARNING, "open <%u,%" PRIu64 "> for %s refused: %u request(s) of this client and %u "
                       "in all wait for storage sites", rq->fg, rq->ino, cl->peer, (unsigned)cl->jobs,
                       (unsigned)css->jobs);
                css__reply_err(cl, reqid, -EAGAIN, "<%u,%" PRIu64 ">: too many requests waiting for storage sites",
                          rq->fg, rq->ino);
                return;
        }
        j = css__job_new(cl->css, cl, reqid, JOB_OPEN);
        if (!j) {
                css__reply_err(cl, reqid, -ENOMEM, "out of memory");
                return;
        }
        j->fg = rq->fg;
        j->ino = rq->ino;
        j->flags = rq->flags;
        j->write = (rq->flags & O_ACCMODE) != O_RDONLY;
        css__ep_of(&j->target, s, rq->fg);
        /* A read-only open from another holder than the primary: its own
         * copy is read if it is current (work_open_local). */
        if (!j->write && cl->site && cl->site != s->id) {
                const struct css_site *ls = css_sites_get(css->sites, cl->site);

                for (size_t i = 0; ls && ls->conn && ls->port && i < m->nholders; i++)
                        if (m->holders[i] == cl->site && !css_site_held_off(ls, cm_now_us())) {
                                css__ep_of(&j->local, ls, rq->fg);
                                j->has_local = true;
                        }
        }
        /* Failover (the primary is not the home, the lowest holder): the
         * other holders that may keep a file's data the primary lacks
         * (copies policies, work_open_placed). */
        for (size_t i = 0; !j->write && m->nholders && s->id != m->holders[0] && i < m->nholders &&
                           j->nalts < CSS_OPEN_ALTS; i++) {
                const struct css_site *hs = css_sites_get(css->sites, m->holders[i]);

                if (hs && hs->id != s->id && hs->id != cl->site && hs->conn && hs->port &&
                    !css_site_held_off(hs, cm_now_us()))
                        css__ep_of(&j->alts[j->nalts++], hs, rq->fg);
        }
        css__job_start(j);
}

static void op_close(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        bool write = (rq->flags & O_ACCMODE) != O_RDONLY;
        int r = css_otab_close(css->otab, cl->site, cl->id, rq->fg, rq->ino, write);

        if (r < 0) {
                /* Not an error for the mount: the CSS may have restarted since the open. */
                css->unmatched_closes++;
                cm_log(LOG_DEBUG, "close <%u,%" PRIu64 "> (%s) from %s matches no open", rq->fg, rq->ino,
                       write ? "write" : "read", cl->peer);
        }
        reply_ok(cl, reqid);
        if (r == 1)
                css_orphan_free(css, rq->fg, rq->ino);      /* the last close of an orphan */
}

/* An open the mount made without CSS_OPEN (the open of a create): record it. */
static void op_opened(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        bool write = (rq->flags & O_ACCMODE) != O_RDONLY;
        int r;

        if (!rq->fg || !rq->ino) {
                css__reply_err(cl, reqid, -EINVAL, "CSS_OPENED <%u,%" PRIu64 ">: no such file", rq->fg, rq->ino);
                return;
        }
        r = css_otab_open(css->otab, cl->site, cl->id, rq->fg, rq->ino, write);
        if (r < 0) {
                css__reply_err(cl, reqid, r, "<%u,%" PRIu64 ">: cannot record the open: %s", rq->fg, rq->ino,
                          r == -ENOSPC ? "open table full" : strerror(-r));
                return;
        }
        {
                struct lp_fs_resp resp = { .status = 0, .value = css->boot };

                css__reply(cl, reqid, &resp);
        }
}

/* A mount's UNLINK or RENAME took the last name of <fg, ino>. */
static void op_orphan(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        if (!rq->fg || !rq->ino) {
                css__reply_err(cl, reqid, -EINVAL, "CSS_ORPHAN <%u,%" PRIu64 ">: no such file", rq->fg, rq->ino);
                return;
        }
        reply_ok(cl, reqid);
        css_orphan_decide(cl->css, rq->fg, rq->ino);
}

static void op_status(struct css_client *cl, uint64_t reqid)
{
        struct css *css = cl->css;
        uint64_t now = cm_now_us();
        struct css_otab_stats os;
        struct css_jw w;
        char *text;
        struct lp_fs_resp resp = { .status = 0 };

        css_otab_stats(css->otab, &os);
        css_jw_init(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "site");
        css_jw_u64(&w, css->site);
        css_jw_key(&w, "listen");
        css_jw_str(&w, css->listen);
        css_jw_key(&w, "uptime_ms");
        css_jw_u64(&w, (now - css->start_us) / 1000);
        css_watch_status(css, &w);
        css_jw_key(&w, "mounttab");
        css_jw_str(&w, css_mtab_path(css->mtab));
        css_jw_key(&w, "storage_sites");
        css_jw_arr_begin(&w);
        for (size_t i = 0; i < css_sites_count(css->sites); i++) {
                const struct css_site *s = css_sites_at(css->sites, i);

                css_jw_obj_begin(&w);
                css_jw_key(&w, "site");
                css_jw_u64(&w, s->id);
                css_jw_key(&w, "host");
                css_jw_str(&w, s->host);
                css_jw_key(&w, "port");
                css_jw_u64(&w, s->port);
                css_jw_key(&w, "file_groups");
                css_jw_arr_begin(&w);
                for (size_t k = 0; k < s->nfgs; k++)
                        css_jw_u64(&w, s->fgs[k]);
                css_jw_arr_end(&w);
                css_jw_key(&w, "connected");
                css_jw_bool(&w, s->conn != 0);
                css_jw_key(&w, "registrations");
                css_jw_u64(&w, s->nregister);
                css_jw_key(&w, "last_contact_ms_ago");
                css_jw_u64(&w, (now - s->contact_us) / 1000);
                css_jw_key(&w, "last_failure_ms_ago");
                if (s->fail_us)
                        css_jw_u64(&w, (now - s->fail_us) / 1000);
                else
                        css_jw_null(&w);
                css_jw_key(&w, "held_off");
                css_jw_bool(&w, css_site_held_off(s, now));
                css_jw_obj_end(&w);
        }
        css_jw_arr_end(&w);
        css_jw_key(&w, "mounts");
        css_jw_arr_begin(&w);
        for (size_t i = 0; i < css_mtab_count(css->mtab); i++) {
                const struct css_mount *m = css_mtab_at(css->mtab, i);
                const struct css_site *s = css__primary(css, m->fg);

                css_jw_obj_begin(&w);
                css_jw_key(&w, "fg");
                css_jw_u64(&w, m->fg);
                css_jw_key(&w, "name");
                css_jw_str(&w, m->name);
                css_jw_key(&w, "path");
                css_jw_str(&w, m->path);
                css_jw_key(&w, "parent_fg");
                css_jw_u64(&w, m->parent_fg);
                css_jw_key(&w, "parent_ino");
                css_jw_u64(&w, m->parent_ino);
                css_jw_key(&w, "created");
                css_jw_i64(&w, m->ctime);
                css_jw_key(&w, "policy");
                css_jw_str(&w, "shared");
                css_jw_key(&w, "site");
                if (s)
                        css_jw_u64(&w, s->id);
                else
                        css_jw_null(&w);
                css_jw_obj_end(&w);
        }
        css_jw_arr_end(&w);
        css_jw_key(&w, "clients");
        css_jw_u64(&w, css->nclients);
        css_jw_key(&w, "open_files");
        css_jw_u64(&w, os.files);
        css_jw_key(&w, "opens");
        css_jw_obj_begin(&w);
        css_jw_key(&w, "readers");
        css_jw_u64(&w, os.readers);
        css_jw_key(&w, "writers");
        css_jw_u64(&w, os.writers);
        css_jw_key(&w, "records");
        css_jw_u64(&w, os.records);
        css_jw_obj_end(&w);
        css_jw_key(&w, "unmatched_closes");
        css_jw_u64(&w, css->unmatched_closes);
        {
                uint64_t known, connected;

                css_leases_count(css->leases, &known, &connected);
                css_jw_key(&w, "lease_ms");
                css_jw_u64(&w, css->lease_ms);
                css_jw_key(&w, "leased_clients");
                css_jw_u64(&w, known);
                css_jw_key(&w, "connected_clients");
                css_jw_u64(&w, connected);
                css_jw_key(&w, "clients_expired");
                css_jw_u64(&w, css->clients_expired);
        }
        css_jw_key(&w, "orphans");
        css_jw_obj_begin(&w);
        css_jw_key(&w, "held");
        css_jw_u64(&w, os.orphans);
        css_jw_key(&w, "deferred");
        css_jw_u64(&w, css->ndef);
        css_jw_key(&w, "freed");
        css_jw_u64(&w, css->orphans_freed);
        css_jw_key(&w, "not_freed");
        css_jw_u64(&w, css->orphans_failed);
        css_jw_obj_end(&w);
        css_jw_key(&w, "pending_requests");
        css_jw_u64(&w, css->jobs);
        css_jw_key(&w, "pending_fg_creates");
        css_jw_u64(&w, css->fgq_len + (css->fgc_busy ? 1u : 0u));
        css_jw_key(&w, "requests");
        css_jw_u64(&w, css->requests);
        css_jw_obj_end(&w);
        if (css_jw_finish(&w, &text) < 0) {
                css__reply_err(cl, reqid, -ENOMEM, "out of memory");
                return;
        }
        resp.text = text;
        css__reply(cl, reqid, &resp);
        free(text);
}

/* The membership operations, served by css_membd.c (docs/cluster.md, "Membership"). */
static void op_members(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct lp_fs_resp resp = { .status = 0 };
        char *text = NULL;

        if (!cl->css->membd) {
                css__reply_err(cl, reqid, -EOPNOTSUPP, "this CSS runs no membership service");
                return;
        }
        css_membd_serve(cl->css->membd, cl->site, rq, &resp, &text);
        css__reply(cl, reqid, &resp);
        free(text);
}

void css_set_membd(struct css *css, struct css_membd *d)
{
        css->membd = d;
}

/* ---- connections --------------------------------------------------------------- */

static void on_connect(struct lp_conn *conn, uint64_t peer_site)
{
        struct css *css = lp_server_get_data(lp_server_conn_server(conn));
        struct css_client *cl = calloc(1, sizeof(*cl));

        if (!cl) {
                cm_log(LOG_ERR, "out of memory for connection %s", lp_server_conn_peer(conn));
                lp_server_conn_close(conn);
                return;
        }
        cl->css = css;
        cl->conn = conn;
        cl->serial = ++css->next_serial;
        cl->site = peer_site;
        cl->id = lp_server_conn_client(conn);
        cl->refs = 1;
        if (cl->id) {
                int r = css_lease_connected(css->leases, cl->id);

                if (r < 0) {
                        cm_log(LOG_WARNING, "%s refused: %s", lp_server_conn_peer(conn),
                               r == -ENOSPC ? "too many clients" : strerror(-r));
                        free(cl);
                        lp_server_conn_close(conn);
                        return;
                }
                cl->leased = true;
        } else {
                cl->id = cl->serial;    /* known by this connection alone */
        }
        /* lp_server_conn_peer() names the address and the site the peer proved */
        snprintf(cl->peer, sizeof(cl->peer), "%s", lp_server_conn_peer(conn));
        {
                /* "1.2.3.4:port" or "[::1]:port" -> the address alone */
                const char *p = lp_server_conn_peer(conn);
                const char *end = p[0] == '[' ? strchr(p, ']') : strrchr(p, ':');

                if (p[0] == '[')
                        p++;
                if (end && end > p && (size_t)(end - p) < sizeof(cl->addr)) {
                        memcpy(cl->addr, p, (size_t)(end - p));
                        cl->addr[end - p] = 0;
                }
        }
        lp_server_conn_set_data(conn, cl);
        css->nclients++;
        cm_log(LOG_DEBUG, "connection from %s", cl->peer);
}

static void on_close(struct lp_conn *conn)
{
        struct css_client *cl = lp_server_conn_get_data(conn);
        struct css *css;
        uint64_t n;

        if (!cl)
                return;
        css = cl->css;
        if (cl->leased) {
                /* Its opens stay for the lease (tick_cb): a mount reconnects. */
                css_lease_disconnected(css->leases, cl->id, cm_now_us());
        } else {
                n = css_otab_drop_client(css->otab, cl->id, css_orphan_freed_cb, css);
                if (n)
                        cm_log(LOG_INFO, "%s went away with %" PRIu64 " open(s): released", cl->peer, n);
        }
        css_sites_conn_closed(css->sites, cl->serial);
        if (!css->closing)
                primaries_update(css);
        cl->conn = NULL;
        css_watch_closed(cl);
        if (cl->watching) {
                watch_del(cl);
                css__mtab_changed(css); /* a holder went away: another may be primary */
        }
        css->nclients--;
        client_unref(cl);
        maybe_free(css);
}

static void on_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid,
                     const void *payload, size_t len)
{
        struct css_client *cl = lp_server_conn_get_data(conn);
        struct lp_fs_req rq;
        int r;

        if (!cl)
                return;
        if (flags & LP_F_REPLY) {
                cm_log(LOG_DEBUG, "%s sent an answer (type %u) to nothing we asked", cl->peer, type);
                return;
        }
        cl->css->requests++;
        if (type != LP_MSG_FS_REQ) {
                lp_server_reply_status(conn, reqid, LP_STATUS_UNSUPPORTED, "the CSS serves filesystem requests only");
                return;
        }
        r = lp_fs_req_decode(payload, len, &rq);
        if (r < 0) {
                cm_log(LOG_NOTICE, "malformed request from %s: %s", cl->peer, strerror(-r));
                css__reply_err(cl, reqid, r == -ENOMEM ? -ENOMEM : -EBADMSG, "malformed request: %s", strerror(-r));
                return;
        }
        switch (rq.op) {
        case LP_FS_NOP:
                /* A keep-alive (storage sites send one every second or so). */
                css_sites_touch_conn(cl->css->sites, cl->serial, cm_now_us());
                reply_ok(cl, reqid);
                break;
        case LP_FS_CSS_REGISTER:
                op_register(cl, reqid, &rq);
                break;
        case LP_FS_CSS_MOUNTTABLE:
                op_mounttable(cl, reqid);
                break;
        case LP_FS_CSS_OPEN:
                op_open(cl, reqid, &rq);
                break;
        case LP_FS_CSS_CLOSE:
                op_close(cl, reqid, &rq);
                break;
        case LP_FS_CSS_OPENED:
                op_opened(cl, reqid, &rq);
                break;
        case LP_FS_CSS_ORPHAN:
                op_orphan(cl, reqid, &rq);
                break;
        case LP_FS_CSS_STATUS:
                op_status(cl, reqid);
                break;
        case LP_FS_CSS_FG_CREATE:
                css_fgc_op(cl, reqid, &rq);
                break;
        case LP_FS_CSS_FG_HOLDERS:
                css_holders_op(cl, reqid, &rq);
                break;
        case LP_FS_CSS_FG_SET:
                op_fg_set(cl, reqid, &rq);
                break;
        case LP_FS_CSS_HEARTBEAT:
        case LP_FS_CSS_PROBE:
        case LP_FS_CSS_EPOCH:
        case LP_FS_CSS_MEMBERS:
                op_members(cl, reqid, &rq);
                break;
        case LP_FS_CSS_WATCH:
                css_watch_op(cl, reqid, &rq);
                break;
        case LP_FS_SS_NOTE_COMMIT:
                css_watch_note(cl, &rq);        /* a notification: no answer */
                break;
        default:
                css__reply_err(cl, reqid, -EOPNOTSUPP, "operation %s (%u) is not served by the CSS",
                          lp_fs_op_name(rq.op), rq.op);
        }
        lp_fs_req_release(&rq);
}

static void on_log(struct lp_server *srv, int prio, const char *peer, const char *msg)
{
        (void)srv;                      /* may be called during shutdown: use nothing of ours */
        cm_log(prio, "%s: %s", peer, msg);
}

static const struct lp_server_callbacks css_cb = {
        .on_connect = on_connect,
        .on_frame = on_frame,
        .on_close = on_close,
        .log = on_log,
};

/* ---- leases -------------------------------------------------------------------- */

static void lease_expired(void *arg, uint64_t id)
{
        struct css *css = arg;
        uint64_t n = css_otab_drop_client(css->otab, id, css_orphan_freed_cb, css);

        css->clients_expired++;
        cm_log(n ? LOG_NOTICE : LOG_INFO, "client %016" PRIx64 " has had no connection for the lease (%u ms): "
               "released its %" PRIu64 " open(s)", id, css->lease_ms, n);
}

static void tick_cb(uv_timer_t *t)
{
        struct css *css = t->data;
        uint64_t now = cm_now_us();

        css_leases_expire(css->leases, now, (uint64_t)css->lease_ms * 1000u, lease_expired, css);
        css_orphans_tick(css);
}

static void tick_closed(uv_handle_t *h)
{
        struct css *css = h->data;

        css->tick_open = false;
        maybe_free(css);
}

/* ---- life cycle ------------------------------------------------------------------ */

int css_new(uv_loop_t *loop, const struct css_config *cfg, struct css **ret, char *err, size_t errcap)
{
        struct css *css;
        int r;

        if (!cfg || !cfg->state_dir || !cfg->site) {
                snprintf(err, errcap, "bad configuration");
                return -EINVAL;
        }
        css = calloc(1, sizeof(*css));
        if (!css) {
                snprintf(err, errcap, "out of memory");
                return -ENOMEM;
        }
        css->loop = loop;
        css->site = cfg->site;
        css->start_us = cm_now_us();
        css->watchers.wnext = css->watchers.wprev = &css->watchers;
        css->lease_ms = cfg->lease_ms ? cfg->lease_ms : CSS_LEASE_MS_DEFAULT;
        r = lp_client_id_new(&css->boot);       /* any random number will do */
        if (r < 0) {
                snprintf(err, errcap, "no randomness: %s", strerror(-r));
                free(css);
                return r;
        }
        r = css_mtab_open(cfg->state_dir, &css->mtab, err, errcap);
        if (r < 0)
                goto fail;
        r = css_sites_new(&css->sites);
        if (!r)
                r = css_otab_new(&css->otab);
        if (!r)
                r = css_leases_new(&css->leases);
        if (!r)
                r = css_ss_pool_new(cfg->key, cfg->site, cfg->ss_connect_ms ? cfg->ss_connect_ms : CSS_SS_CONNECT_MS,
                                    cfg->ss_call_ms ? cfg->ss_call_ms : CSS_SS_CALL_MS, &css->pool);
        if (!r)
                r = lp_server_new(loop, cfg->key, cfg->site, &css_cb, css, &css->srv);
        if (r < 0) {
                snprintf(err, errcap, "%s", strerror(-r));
                goto fail;
        }
        uv_timer_init(loop, &css->tick);
        css->tick.data = css;
        css->tick_open = true;
        {
                uint64_t every = css->lease_ms / 4 < 1000 ? css->lease_ms / 4 : 1000;

                uv_timer_start(&css->tick, tick_cb, every ? every : 1, every ? every : 1);
        }
        *ret = css;
        return 0;
fail:
        css_free(css);
        return r;
}

int css_listen(struct css *css, const char *host, uint16_t port, uint16_t *ret_port)
{
        uint16_t got = 0;
        int r = lp_server_listen(css->srv, host, port, &got);

        if (r < 0)
                return r;
        if (strchr(host, ':'))
                snprintf(css->listen, sizeof(css->listen), "[%s]:%u", host, got);
        else
                snprintf(css->listen, sizeof(css->listen), "%s:%u", host, got);
        if (ret_port)
                *ret_port = got;
        return 0;
}

void css_close(struct css *css)
{
        if (!css || css->closing)
                return;
        css->closing = true;
        lp_server_close(css->srv);
        css->srv = NULL;
        if (css->tick_open)
                uv_close((uv_handle_t *)&css->tick, tick_closed);
        maybe_free(css);
}
