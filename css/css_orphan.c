/*
 * css_orphan.c -- the CSS's orphan decision: when a file that lost its last
 * name is freed (css.h "Orphans"; css.c invariant 5).
 *
 * Orphans reach the decision from three places: CSS_ORPHAN from the mount
 * that unlinked the file, the storage site's list at each registration
 * (css_orphans_fetch, SS_ORPHANS), and the open table, which reports an
 * orphan whose last open went away (css_otab.h).  Inside the reclaim
 * window they wait in css->dfg/dino and are decided by css_orphans_tick;
 * so does one the storage site refused to free because a write session
 * is open on it (EBUSY: a CREATE's open not recorded here yet).
 * Freeing is a FORGET_ORPHAN job to the holder of the file group; a
 * failure is logged and left to the next registration of that site.  At
 * most CSS_MAX_FORGETS of them run at once; the others wait on the same
 * list and take a slot as one ends (or at the next tick).  Without that
 * bound the end of the reclaim window started one job per orphan at once
 * (thousands after a busy first 30 s), filled CSS_MAX_JOBS, and opens were
 * refused with EAGAIN meanwhile.
 *
 * Threads: the loop thread, except css_orphan_work (threadpool, on the
 * job's copies only).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "css_int.h"
#include "css_json.h"

/* FORGET_ORPHAN <fg, ino> at the storage site that holds fg. */
static void work_forget(struct css_job *j)
{
        struct lp_fs_req rq = { .op = LP_FS_FORGET_ORPHAN, .fg = j->fg, .ino = j->ino };
        struct lp_fs_resp resp;

        j->status = css__ss_ask(j, &j->target, &rq, &resp);
        if (j->status == 0)
                lp_fs_resp_release(&resp);
}

/* Append <fg, ino> to the job's orphan list. */
static int job_orphan_add(struct css_job *j, uint32_t fg, uint64_t ino)
{
        uint32_t *f = realloc(j->ofg, (j->norph + 1) * sizeof(*f));
        uint64_t *i;

        if (!f)
                return -ENOMEM;
        j->ofg = f;
        i = realloc(j->oino, (j->norph + 1) * sizeof(*i));
        if (!i)
                return -ENOMEM;
        j->oino = i;
        j->ofg[j->norph] = fg;
        j->oino[j->norph++] = ino;
        return 0;
}

/* SS_ORPHANS of every file group the registered site holds (j->eps). */
static void work_orphans(struct css_job *j)
{
        for (size_t k = 0; k < j->neps; k++) {
                struct lp_fs_req rq = { .op = LP_FS_SS_ORPHANS, .fg = j->eps[k].fg, .length = CSS_ORPHANS_FETCH };
                struct lp_fs_resp resp;
                struct css_jval *v = NULL;

                j->status = css__ss_ask(j, &j->eps[k], &rq, &resp);
                if (j->status < 0)
                        return;
                if (!resp.text || css_json_parse(resp.text, strlen(resp.text), &v) < 0 || v->type != CSS_JARR) {
                        snprintf(j->msg, sizeof(j->msg), "fg %u: SS_ORPHANS at storage site %" PRIu64 ": the "
                                 "answer is not a JSON array", j->eps[k].fg, j->eps[k].site);
                        j->status = -EBADMSG;
                        css_json_free(v);
                        lp_fs_resp_release(&resp);
                        return;
                }
                for (size_t i = 0; i < v->n; i++) {
                        uint64_t ino;

                        if (css_json_uint(&v->items[i], UINT64_MAX, &ino) && ino &&
                            job_orphan_add(j, j->eps[k].fg, ino) < 0) {
                                j->status = -ENOMEM;
                                break;
                        }
                }
                css_json_free(v);
                lp_fs_resp_release(&resp);
                if (j->status < 0)
                        return;
        }
}

void css_orphan_work(struct css_job *j)
{
        if (j->kind == JOB_FORGET)
                work_forget(j);
        else
                work_orphans(j);
}

bool css_in_reclaim_window(const struct css *css)
{
        uint64_t ms = css->lease_ms > CSS_RECLAIM_MIN_MS ? css->lease_ms : CSS_RECLAIM_MIN_MS;

        return cm_now_us() - css->start_us < ms * 1000u;
}

/* Tell the storage site holding fg to free the orphan <fg, ino>. */
static int orphan_defer(struct css *css, uint32_t fg, uint64_t ino);
static void decide_deferred(struct css *css, size_t max);
static void forget_done(struct css_job *j);

void css_orphan_free(struct css *css, uint32_t fg, uint64_t ino)
{
        const struct css_site *s = css__primary(css, fg);
        struct css_job *j;

        if (css->closing)
                return;
        if (css->forgets >= CSS_MAX_FORGETS) {
                /* Decided again as a FORGET ends, or at the next tick. */
                if (orphan_defer(css, fg, ino) < 0)
                        css->orphans_failed++;
                return;
        }
        if (!s) {
                cm_log(LOG_NOTICE, "<%u,%" PRIu64 ">: orphan not freed: no registered storage site holds file "
                       "group %u (it reports the orphan again when it registers)", fg, ino, fg);
                css->orphans_failed++;
                return;
        }
        j = css__job_new(css, NULL, 0, JOB_FORGET);
        if (!j) {
                cm_log(LOG_WARNING, "<%u,%" PRIu64 ">: orphan not freed: out of memory", fg, ino);
                css->orphans_failed++;
                return;
        }
        j->fg = fg;
        j->ino = ino;
        css__ep_of(&j->target, s, fg);
        if (css__job_start(j))
                css->forgets++;
}

void css_orphan_freed_cb(void *arg, uint32_t fg, uint64_t ino)
{
        css_orphan_free(arg, fg, ino);
}

/* Keep <fg, ino> for css_orphans_tick to decide: 0, or -ENOSPC/-ENOMEM
 * (logged). */
static int orphan_defer(struct css *css, uint32_t fg, uint64_t ino)
{
        if (css->ndef == css->capdef) {
                size_t cap = css->capdef ? 2 * css->capdef : 64;
                uint32_t *f;
                uint64_t *i;

                if (cap > CSS_MAX_ORPHANS) {
                        cm_log(LOG_WARNING, "<%u,%" PRIu64 ">: too many orphans to decide later; it "
                               "stays until the storage site registers again", fg, ino);
                        return -ENOSPC;
                }
                f = realloc(css->dfg, cap * sizeof(*f));
                if (f)
                        css->dfg = f;
                i = f ? realloc(css->dino, cap * sizeof(*i)) : NULL;
                if (i)
                        css->dino = i;
                if (!f || !i) {
                        cm_log(LOG_WARNING, "<%u,%" PRIu64 ">: orphan not recorded: out of memory", fg, ino);
                        return -ENOMEM;
                }
                css->capdef = cap;
        }
        css->dfg[css->ndef] = fg;
        css->dino[css->ndef++] = ino;
        return 0;
}

/* <fg, ino> has no name left: free it once nobody holds it (css_otab.h),
 * and not before the reclaim window is over. */
void css_orphan_decide(struct css *css, uint32_t fg, uint64_t ino)
{
        int r;

        if (css_in_reclaim_window(css)) {
                (void)orphan_defer(css, fg, ino);
                return;
        }
        r = css_otab_orphan_add(css->otab, fg, ino);
        if (r == 1)
                css_orphan_free(css, fg, ino);
        else if (r < 0)
                cm_log(LOG_WARNING, "<%u,%" PRIu64 ">: orphan not recorded: %s; it stays until the storage "
                       "site registers again", fg, ino, strerror(-r));
}

static void after_forget(struct css_job *j)
{
        struct css *css = j->css;

        assert(css->forgets > 0);
        css->forgets--;
        forget_done(j);
        /* A slot is free: the next deferred orphan takes it (not after an
         * EBUSY, which went back on the list and waits for the tick). */
        if (j->status != -EBUSY && !css_in_reclaim_window(css))
                decide_deferred(css, 1);
}

static void forget_done(struct css_job *j)
{
        struct css *css = j->css;

        if (j->status == -EBUSY) {
                /* The storage site has a write session on it: an open whose
                 * CSS_OPENED (after a CREATE) has not arrived yet, or one of
                 * a client it has not aborted yet.  Decide again at the next
                 * tick: by then the open is recorded (the last close frees
                 * it) or the session is gone. */
                cm_log(LOG_DEBUG, "%s; deciding again", j->msg);
                if (orphan_defer(css, j->fg, j->ino) < 0)
                        css->orphans_failed++;
                return;
        }
        if (j->status < 0 && j->status != -ENOENT) {
                css->orphans_failed++;
                cm_log(LOG_WARNING, "<%u,%" PRIu64 ">: orphan not freed: %s (the storage site reports it "
                       "again when it registers)", j->fg, j->ino, j->msg);
                return;
        }
        css_sites_touch(css->sites, j->target.site, cm_now_us());
        css->orphans_freed++;
        cm_log(LOG_INFO, "<%u,%" PRIu64 ">: orphan freed at storage site %" PRIu64 " (no open left)", j->fg,
               j->ino, j->target.site);
}

static void after_orphans(struct css_job *j)
{
        if (j->status < 0) {
                cm_log(LOG_WARNING, "orphans of storage site %" PRIu64 ": %s", j->neps ? j->eps[0].site : 0,
                       j->msg);
                return;
        }
        if (j->norph)
                cm_log(LOG_INFO, "storage site %" PRIu64 " holds %zu orphan(s): each is freed once no "
                       "mount holds it open%s", j->eps[0].site, j->norph,
                       css_in_reclaim_window(j->css) ? " (after the reclaim window)" : "");
        for (size_t i = 0; i < j->norph; i++)
                css_orphan_decide(j->css, j->ofg[i], j->oino[i]);
}

/* A site registered: ask it which orphans it keeps. */
void css_orphans_fetch(struct css *css, uint64_t site)
{
        const struct css_site *s = css_sites_get(css->sites, site);
        struct css_job *j;

        if (!s || !s->nfgs || css->closing)
                return;
        j = css__job_new(css, NULL, 0, JOB_ORPHANS);
        if (j)
                j->eps = calloc(s->nfgs, sizeof(*j->eps));
        if (!j || !j->eps) {
                cm_log(LOG_WARNING, "orphans of storage site %" PRIu64 ": out of memory", site);
                if (j)
                        css__job_release(j);
                return;
        }
        for (size_t i = 0; i < s->nfgs; i++)
                css__ep_of(&j->eps[j->neps++], s, s->fgs[i]);
        css__job_start(j);
}

void css_orphans_tick(struct css *css)
{
        size_t n = css->ndef;

        if (css_in_reclaim_window(css))
                return;
        if (!css->reclaim_done) {
                css->reclaim_done = true;
                if (n)
                        cm_log(LOG_INFO, "reclaim window over: deciding %zu orphan(s)", n);
        }
        if (n)
                decide_deferred(css, CSS_MAX_FORGETS - css->forgets);
}

/* Decide up to max deferred orphans, oldest first (each may go back on the
 * list: still held, EBUSY, or no FORGET slot free). */
static void decide_deferred(struct css *css, size_t max)
{
        size_t n = css->ndef < max ? css->ndef : max;
        uint32_t fg;
        uint64_t ino;

        for (size_t i = 0; i < n && css->ndef > 0 && css->forgets < CSS_MAX_FORGETS; i++) {
                fg = css->dfg[0];
                ino = css->dino[0];
                css->ndef--;
                memmove(css->dfg, css->dfg + 1, css->ndef * sizeof(*css->dfg));
                memmove(css->dino, css->dino + 1, css->ndef * sizeof(*css->dino));
                css_orphan_decide(css, fg, ino);
        }
}

void css_orphan_after(struct css_job *j)
{
        if (j->kind == JOB_FORGET)
                after_forget(j);
        else
                after_orphans(j);
}
