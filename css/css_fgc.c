/*
 * css_fgc.c -- file group creation (CSS_FG_CREATE), see css.h.
 *
 * A creation is two jobs: FGC_RESOLVE (walk the path from the root group
 * at the storage sites, create the last directory, check it is empty),
 * then, once the loop has reserved an fg id, FGC_CREATE (SS_FG_CREATE at
 * every chosen site; on failure remove the directory it made).  The loop
 * then records the mount and its holders.  Creations run one at a time
 * (css.c invariant 3): the others wait in css->fgq, in arrival order.
 *
 * Placement (CSS_FG_CREATE's text, {"copies": N, "sites": [...]}): the N
 * lowest of the sites given, each registered and connected; without
 * sites, the N (default 1) lowest connected sites (docs/cluster.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "css_int.h"
#include "css_json.h"
#include "css_mtab.h"
#include "css_site.h"
#include "lp_fs.h"

static const struct ep *job_ep(const struct css_job *j, uint32_t fg)
{
        for (size_t i = 0; i < j->neps; i++)
                if (j->eps[i].fg == fg)
                        return &j->eps[i];
        return NULL;
}

static const struct mnt *job_mount_on(const struct css_job *j, uint32_t fg, uint64_t ino)
{
        for (size_t i = 0; i < j->nmnts; i++)
                if (j->mnts[i].parent_fg == fg && j->mnts[i].parent_ino == ino && j->mnts[i].fg != 1)
                        return &j->mnts[i];
        return NULL;
}

/* Is directory <fg, ino> empty (nothing but "." and "..")?  0 yes,
 * -ENOTEMPTY, or another error with j->msg set. */
static int dir_empty(struct css_job *j, const struct ep *e, uint32_t fg, uint64_t ino)
{
        uint64_t cookie = 0;

        for (int round = 0; round < 64; round++) {
                struct lp_fs_req rq = { .op = LP_FS_READDIR, .fg = fg, .ino = ino, .offset = cookie,
                                        .length = 8 };
                struct lp_fs_resp resp;
                int r = css__ss_call(j, e, &rq, &resp);
                bool eof;

                if (r < 0)
                        return r;
                if (resp.status < 0) {
                        r = resp.status;
                        snprintf(j->msg, sizeof(j->msg), "%s: READDIR at storage site %" PRIu64 ": %s",
                                 j->path, e->site, strerror(-r));
                        lp_fs_resp_release(&resp);
                        return r;
                }
                for (size_t i = 0; i < resp.nentries; i++) {
                        const struct lp_fs_dirent *d = &resp.entries[i];

                        if ((d->namelen == 1 && d->name[0] == '.') ||
                            (d->namelen == 2 && d->name[0] == '.' && d->name[1] == '.')) {
                                cookie = d->next;
                                continue;
                        }
                        snprintf(j->msg, sizeof(j->msg), "%s is not empty (it holds '%.*s'): a file group "
                                 "is mounted on an empty directory", j->path, (int)d->namelen, d->name);
                        lp_fs_resp_release(&resp);
                        return -ENOTEMPTY;
                }
                eof = resp.eof || resp.nentries == 0;
                lp_fs_resp_release(&resp);
                if (eof)
                        return 0;
        }
        snprintf(j->msg, sizeof(j->msg), "%s: READDIR at storage site %" PRIu64 " does not come to an end",
                 j->path, e->site);
        return -EIO;
}

static void work_fgc_resolve(struct css_job *j)
{
        uint32_t cur_fg = 1;
        uint64_t cur_ino = LP_FS_ROOT_INO;
        const char *p = j->path;
        char prefix[LP_FS_PATH_MAX + 1] = "";
        size_t plen = 0;

        while (*p == '/')
                p++;
        for (;;) {
                const char *s = p;
                size_t n;
                bool last;
                const struct ep *e = job_ep(j, cur_fg);
                struct lp_fs_req rq = { .op = LP_FS_LOOKUP, .fg = cur_fg, .parent = cur_ino };
                struct lp_fs_resp resp;
                int r;

                while (*p && *p != '/')
                        p++;
                n = (size_t)(p - s);
                while (*p == '/')
                        p++;
                last = *p == 0;
                memcpy(prefix + plen, "/", 1);
                memcpy(prefix + plen + 1, s, n);
                plen += 1 + n;
                prefix[plen] = 0;
                if (!e) {
                        j->status = -EHOSTUNREACH;
                        snprintf(j->msg, sizeof(j->msg), "%s: no registered storage site holds file group %u",
                                 prefix, cur_fg);
                        return;
                }
                rq.name = (const uint8_t *)s;
                rq.namelen = n;
                r = css__ss_call(j, e, &rq, &resp);
                if (r < 0) {
                        j->status = r;
                        return;
                }
                r = resp.status;
                if (r == -ENOENT && last) {
                        lp_fs_resp_release(&resp);
                        rq.op = LP_FS_MKDIR;
                        rq.mode = S_IFDIR | 0755;
                        rq.cred.uid = j->uid;
                        rq.cred.gid = j->gid;
                        rq.cred.umask = j->umask;
                        r = css__ss_call(j, e, &rq, &resp);
                        if (r < 0) {
                                j->status = r;
                                return;
                        }
                        r = resp.status;
                        if (r == 0 && resp.has_attr) {
                                j->made_dir = true;
                        } else {
                                if (r == 0)
                                        r = -EIO;
                                j->status = r;
                                snprintf(j->msg, sizeof(j->msg), "%s: MKDIR in <%u,%" PRIu64 "> at storage "
                                         "site %" PRIu64 ": %s", prefix, cur_fg, cur_ino, e->site,
                                         strerror(-r));
                                lp_fs_resp_release(&resp);
                                return;
                        }
                } else if (r < 0 || !resp.has_attr) {
                        if (r == 0)
                                r = -EIO;
                        j->status = r;
                        snprintf(j->msg, sizeof(j->msg), "%s: %s%s", prefix,
                                 r == -ENOENT ? "no such directory" : strerror(-r),
                                 r == -ENOENT ? " (only the last component is created)" : "");
                        lp_fs_resp_release(&resp);
                        return;
                }
                if (!S_ISDIR(resp.attr.mode)) {
                        j->status = -ENOTDIR;
                        snprintf(j->msg, sizeof(j->msg), "%s is not a directory", prefix);
                        lp_fs_resp_release(&resp);
                        return;
                }
                if (last) {
                        const struct mnt *m = job_mount_on(j, cur_fg, resp.attr.ino);

                        j->mp_fg = cur_fg;
                        j->mp_ino = resp.attr.ino;
                        j->mp_parent = cur_ino;
                        memcpy(j->mp_last, s, n);
                        j->mp_last[n] = 0;
                        j->target = *e;
                        lp_fs_resp_release(&resp);
                        if (m) {
                                j->status = -EEXIST;
                                snprintf(j->msg, sizeof(j->msg), "%s is already the mount point of file group %u",
                                         prefix, m->fg);
                                return;
                        }
                        j->status = j->made_dir ? 0 : dir_empty(j, e, cur_fg, j->mp_ino);
                        return;
                }
                {
                        const struct mnt *m = job_mount_on(j, cur_fg, resp.attr.ino);

                        if (m) {
                                cur_fg = m->fg;
                                cur_ino = LP_FS_ROOT_INO;
                        } else {
                                cur_ino = resp.attr.ino;
                        }
                }
                lp_fs_resp_release(&resp);
        }
}

static void work_fgc_create(struct css_job *j)
{
        struct lp_fs_req rq = { .op = LP_FS_SS_FG_CREATE, .fg = j->newfg };
        struct lp_fs_resp resp;
        int r = 0;

        rq.name = (const uint8_t *)j->name;
        rq.namelen = strlen(j->name);
        /* A container at every chosen site.  If one fails, the mount is not
         * recorded: the containers made so far stay unused under an id
         * that is never handed out again (docs/cluster.md). */
        for (size_t i = 0; i < j->nhomes && r == 0; i++) {
                const struct ep *e = &j->homes[i];

                r = css__ss_call(j, e, &rq, &resp);
                if (r == 0) {
                        r = resp.status;
                        if (r < 0)
                                snprintf(j->msg, sizeof(j->msg), "SS_FG_CREATE of file group %u '%s' at storage "
                                         "site %" PRIu64 ": %s%s%s", j->newfg, j->name, e->site, strerror(-r),
                                         resp.message ? ": " : "", resp.message ? resp.message : "");
                        lp_fs_resp_release(&resp);
                }
        }
        j->status = r;
        if (r < 0 && j->made_dir) {
                /* Undo our mkdir, so that a retry starts from the same state. */
                struct lp_fs_req rm = { .op = LP_FS_RMDIR, .fg = j->mp_fg, .parent = j->mp_parent };
                char keep[sizeof(j->msg)];

                memcpy(keep, j->msg, sizeof(keep));
                rm.name = (const uint8_t *)j->mp_last;
                rm.namelen = strlen(j->mp_last);
                if (css__ss_call(j, &j->target, &rm, &resp) == 0)
                        lp_fs_resp_release(&resp);
                memcpy(j->msg, keep, sizeof(keep));
        }
}

static void fgc_fail(struct css_job *j)
{
        cm_log(j->transport_failed ? LOG_WARNING : LOG_NOTICE, "file group '%s' at %s (for %s) not created: %s",
               j->name, j->path, j->cl->peer, j->msg);
        css__reply_err(j->cl, j->reqid, j->status, "%s", j->msg);
}

/* Loop side after FGC_RESOLVE: reserve the id and start FGC_CREATE.
 * Returns true if j is no longer the caller's (it went on, or it failed to
 * and was answered and freed); false: the caller finishes it. */
static bool after_fgc_resolve(struct css_job *j)
{
        struct css *css = j->css;
        int r;

        if (j->status < 0) {
                fgc_fail(j);
                return false;
        }
        if (css->closing || !j->cl->conn) {
                cm_log(LOG_NOTICE, "file group '%s' at %s not created: %s", j->name, j->path,
                       css->closing ? "shutting down" : "the requester went away");
                return false;
        }
        r = css_mtab_reserve_fg(css->mtab, &j->newfg);
        if (r < 0) {
                j->status = r;
                snprintf(j->msg, sizeof(j->msg), "cannot reserve a file group id in %s: %s",
                         css_mtab_path(css->mtab), r == -EIO ? css_mtab_errmsg(css->mtab) :
                         r == -ENOSPC ? "every id up to 65535 has been given out" : strerror(-r));
                cm_log(LOG_ERR, "%s", j->msg);
                css__reply_err(j->cl, j->reqid, r, "%s", j->msg);
                return false;
        }
        css->jobs--;                    /* job_start counts it again */
        j->cl->jobs--;
        j->kind = JOB_FGC_CREATE;
        if (!css__job_start(j))
                css_fgc_next(css);
        return true;
}

static void after_fgc_create(struct css_job *j)
{
        struct css *css = j->css;
        struct lp_fs_resp resp = { .status = 0 };
        int r;

        if (j->status < 0) {
                fgc_fail(j);
                return;
        }
        /* The container exists now: record the mount even if we are shutting down. */
        r = css_mtab_add(css->mtab, j->newfg, j->name, j->mp_fg, j->mp_ino, j->path);
        if (r < 0) {
                snprintf(j->msg, sizeof(j->msg), "file group %u '%s' was created at storage site %" PRIu64
                         " but its mount on %s could not be recorded in %s: %s", j->newfg, j->name,
                         j->target.site, j->path, css_mtab_path(css->mtab),
                         r == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r));
                cm_log(LOG_ERR, "%s", j->msg);
                css__reply_err(j->cl, j->reqid, r, "%s", j->msg);
                return;
        }
        {
                uint64_t ids[CSS_MAX_HOLDERS];
                char list[256];
                size_t off = 0;

                list[0] = 0;
                for (size_t i = 0; i < j->nhomes; i++) {
                        ids[i] = j->homes[i].site;
                        if (off < sizeof(list))
                                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%" PRIu64, i ? "," : "",
                                                        ids[i]);
                        r = css_sites_add_fg(css->sites, ids[i], j->newfg);
                        if (r < 0)
                                cm_log(LOG_WARNING, "file group %u: cannot note that storage site %" PRIu64
                                       " holds it: %s (it will when the site registers again)", j->newfg, ids[i],
                                       strerror(-r));
                        css_sites_touch(css->sites, ids[i], cm_now_us());
                }
                r = css_mtab_add_holders(css->mtab, j->newfg, ids, j->nhomes);
                if (j->sync_copies > 1) {
                        int r2 = css_mtab_set_sync_copies(css->mtab, j->newfg, j->sync_copies);

                        if (r2 < 0) {
                                snprintf(j->msg, sizeof(j->msg), "file group %u '%s' was created but its "
                                         "sync_copies %u could not be recorded in %s: %s (it has 1; set it "
                                         "again)", j->newfg, j->name, j->sync_copies, css_mtab_path(css->mtab),
                                         r2 == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r2));
                                cm_log(LOG_ERR, "%s", j->msg);
                                css__reply_err(j->cl, j->reqid, r2, "%s", j->msg);
                                return;
                        }
                }
                if (r < 0)
                        cm_log(LOG_ERR, "file group %u: its holders (sites %s) could not be recorded in %s: %s "
                               "(they are learned again when the sites register)", j->newfg, list,
                               css_mtab_path(css->mtab), r == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r));
                css__mtab_changed(css);
                cm_log(LOG_INFO, "file group %u '%s' created at storage site(s) %s, mounted at %s "
                       "(directory <%u,%" PRIu64 ">%s)", j->newfg, j->name, list, j->path, j->mp_fg,
                       j->mp_ino, j->made_dir ? ", created" : "");
        }
        resp.value = j->newfg;
        css__reply(j->cl, j->reqid, &resp);
}

/*
 * Where the new file group's containers go: the sites asked for (each
 * must be registered), the lowest `copies` of them; else the `copies`
 * (default 1) lowest registered sites whose connection is up.  On failure
 * j is answered (the caller drops it) and < 0 returned.
 */
static int choose_homes(struct css_job *j)
{
        struct css *css = j->css;
        size_t n = css_sites_count(css->sites), want = j->copies ? j->copies : j->nwant ? j->nwant : 1;

        j->homes = calloc(want, sizeof(*j->homes));
        if (!j->homes) {
                css__reply_err(j->cl, j->reqid, -ENOMEM, "out of memory");
                return -ENOMEM;
        }
        if (j->nwant) {
                /* want is sorted and unique (op_fg_create) */
                for (size_t i = 0; i < j->nwant && j->nhomes < want; i++) {
                        const struct css_site *s = css_sites_get(css->sites, j->want[i]);

                        if (!s || !s->conn) {
                                css__reply_err(j->cl, j->reqid, -EHOSTUNREACH, "storage site %" PRIu64 " is %s: "
                                          "file group '%s' not created", j->want[i],
                                          s ? "not connected to the CSS now" : "not registered with the CSS",
                                          j->name);
                                return -EHOSTUNREACH;
                        }
                        css__ep_of(&j->homes[j->nhomes++], s, 0);
                }
                return 0;
        }
        for (size_t i = 0; i < n && j->nhomes < want; i++) {
                const struct css_site *s = css_sites_at(css->sites, i);

                if (s->conn)
                        css__ep_of(&j->homes[j->nhomes++], s, 0);
        }
        if (j->nhomes < want) {
                css__reply_err(j->cl, j->reqid, -EHOSTUNREACH, "file group '%s' needs %zu copies but only %zu storage "
                          "site(s) are registered and connected", j->name, want, j->nhomes);
                return -EHOSTUNREACH;
        }
        return 0;
}

/* Snapshot what the threadpool needs and start the first stage. */
static void fgc_start(struct css_job *j)
{
        struct css *css = j->css;
        size_t n = css_mtab_count(css->mtab);
        const struct css_mount *existing;

        /* The tables may have changed while j waited: check again. */
        if ((existing = css_mtab_find_name(css->mtab, j->name))) {
                css__reply_err(j->cl, j->reqid, -EEXIST, "file group name '%s' is taken (file group %u at %s)",
                          j->name, existing->fg, existing->path);
                goto drop;
        }
        if ((existing = css_mtab_find_path(css->mtab, j->path))) {
                css__reply_err(j->cl, j->reqid, -EEXIST, "%s is already the mount point of file group %u '%s'",
                          j->path, existing->fg, existing->name);
                goto drop;
        }
        if (css_mtab_count(css->mtab) >= CSS_MAX_FGS) {
                css__reply_err(j->cl, j->reqid, -ENOSPC, "the mount table is full (%u file groups)", CSS_MAX_FGS);
                goto drop;
        }
        if (!css__primary(css, 1)) {
                css__reply_err(j->cl, j->reqid, -EHOSTUNREACH,
                          "no registered storage site holds the root file group: is locus-storaged running?");
                goto drop;
        }
        if (choose_homes(j) < 0)
                goto drop;
        j->eps = calloc(n, sizeof(*j->eps));
        j->mnts = calloc(n, sizeof(*j->mnts));
        if (!j->eps || !j->mnts) {
                css__reply_err(j->cl, j->reqid, -ENOMEM, "out of memory");
                goto drop;
        }
        for (size_t i = 0; i < n; i++) {
                const struct css_mount *m = css_mtab_at(css->mtab, i);
                const struct css_site *s = css__primary(css, m->fg);

                j->mnts[j->nmnts++] = (struct mnt){ .fg = m->fg, .parent_fg = m->parent_fg,
                                                    .parent_ino = m->parent_ino };
                if (s)
                        css__ep_of(&j->eps[j->neps++], s, m->fg);
        }
        css->fgc_busy = true;
        css__job_start(j);               /* on failure, fgc_busy is clear again */
        return;
drop:
        css__job_release(j);
}

/* Start the next waiting creation whose requester is still there. */
void css_fgc_next(struct css *css)
{
        while (!css->fgc_busy && css->fgq_head) {
                struct css_job *j = css->fgq_head;

                css->fgq_head = j->next;
                if (!css->fgq_head)
                        css->fgq_tail = NULL;
                css->fgq_len--;
                j->next = NULL;
                if (!j->cl->conn) {
                        css__job_release(j);
                        continue;
                }
                fgc_start(j);
        }
}

/*
 * CSS_FG_CREATE's text (optional): {"copies": N, "sites": [a, b, ...],
 * "sync_copies": S} (S at most the number of copies).  Fills j->want
 * (sorted, unique), j->copies and j->sync_copies.  -EINVAL, -ENOMEM.
 */
static int fgc_placement(struct css_job *j, const char *text)
{
        struct css_jval *v = NULL;
        const struct css_jval *c, *sites;
        uint64_t x;
        int r = -EINVAL;

        if (!text || !*text)
                return 0;
        if (css_json_parse(text, strlen(text), &v) < 0 || v->type != CSS_JOBJ)
                goto out;
        c = css_json_get(v, "sync_copies");
        if (c) {
                if (!css_json_uint(c, CSS_MAX_HOLDERS, &x) || x == 0)
                        goto out;
                j->sync_copies = (unsigned)x;
        }
        c = css_json_get(v, "copies");
        sites = css_json_get(v, "sites");
        if (c) {
                if (!css_json_uint(c, CSS_MAX_HOLDERS, &x) || x == 0)
                        goto out;
                j->copies = (unsigned)x;
        }
        if (sites) {
                if (sites->type != CSS_JARR || sites->n == 0 || sites->n > CSS_MAX_HOLDERS)
                        goto out;
                j->want = calloc(sites->n, sizeof(*j->want));
                if (!j->want) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < sites->n; i++) {
                        size_t k;

                        if (!css_json_uint(&sites->items[i], UINT64_MAX, &x) || x == 0)
                                goto out;
                        for (k = j->nwant; k > 0 && j->want[k - 1] > x; k--)
                                j->want[k] = j->want[k - 1];
                        if (k > 0 && j->want[k - 1] == x)
                                goto out;       /* a site named twice */
                        j->want[k] = x;
                        j->nwant++;
                }
                if (j->copies > j->nwant)
                        goto out;
        }
        /* More copies to wait for than the group has: no fsync could ever
         * succeed. */
        if (j->sync_copies > (j->copies ? j->copies : j->nwant ? j->nwant : 1))
                goto out;
        r = 0;
out:
        css_json_free(v);
        return r;
}

int css__fg_name(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq, char name[CSS_FG_NAME_MAX + 1])
{
        if (!rq->name || rq->namelen == 0 || rq->namelen > CSS_FG_NAME_MAX) {
                css__reply_err(cl, reqid, -EINVAL, "a file group name is 1 to %u characters", CSS_FG_NAME_MAX);
                return -EINVAL;
        }
        memcpy(name, rq->name, rq->namelen);
        name[rq->namelen] = 0;
        return 0;
}

void css_fgc_op(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        char path[LP_FS_PATH_MAX + 1];
        char name[CSS_FG_NAME_MAX + 1];
        struct css_job *j;
        int r;

        if (css__fg_name(cl, reqid, rq, name) < 0)
                return;
        if (strlen(name) != rq->namelen || !css_fg_name_ok(name)) {
                css__reply_err(cl, reqid, -EINVAL, "bad file group name '%s': use letters, digits, '.', '_' and '-', "
                          "not first '.' or '-'", name);
                return;
        }
        r = rq->path ? css_path_normalize(rq->path, path, sizeof(path)) : -EINVAL;
        if (r < 0) {
                css__reply_err(cl, reqid, r, "bad mount point '%s': an absolute path without '.' or '..' is needed",
                          rq->path ? rq->path : "");
                return;
        }
        if (!strcmp(path, "/")) {
                css__reply_err(cl, reqid, -EEXIST, "/ is the mount point of the root file group");
                return;
        }
        if (css->fgq_len >= CSS_MAX_FG_QUEUE || css->jobs >= CSS_MAX_JOBS) {
                css__reply_err(cl, reqid, -EAGAIN, "too many file group creations waiting; try again");
                return;
        }
        j = css__job_new(cl->css, cl, reqid, JOB_FGC_RESOLVE);
        if (j && !(j->path = strdup(path))) {
                css__job_release(j);
                j = NULL;
        }
        if (!j) {
                css__reply_err(cl, reqid, -ENOMEM, "out of memory");
                return;
        }
        snprintf(j->name, sizeof(j->name), "%s", name);
        r = fgc_placement(j, rq->text);
        if (r < 0) {
                css__reply_err(cl, reqid, r, "file group '%s': %s", name, r == -ENOMEM ? "out of memory" :
                          "bad placement: expected {\"copies\": N, \"sites\": [site ids], \"sync_copies\": S} with "
                          "S at most N, N from 1 to the "
                          "number of sites given");
                css__job_release(j);
                return;
        }
        j->uid = rq->cred.uid;
        j->gid = rq->cred.gid;
        j->umask = rq->cred.umask & 0777;
        if (css->fgc_busy) {
                if (css->fgq_tail)
                        css->fgq_tail->next = j;
                else
                        css->fgq_head = j;
                css->fgq_tail = j;
                css->fgq_len++;
                return;
        }
        fgc_start(j);
}

void css_fgc_work(struct css_job *j)
{
        if (j->kind == JOB_FGC_RESOLVE)
                work_fgc_resolve(j);
        else
                work_fgc_create(j);
}

bool css_fgc_after(struct css_job *j)
{
        if (j->kind == JOB_FGC_RESOLVE)
                return after_fgc_resolve(j);
        after_fgc_create(j);
        return false;
}
