/*
 * css_holders.c -- CSS_FG_HOLDERS: where the copies of a file group live
 * (locusctl replicas add|remove; docs/replication.md, "Adding and removing
 * copies").  Answered on the loop thread, from the mount table alone: the
 * tool does the storage-site work (SS_FG_CREATE, waiting for the pull,
 * SS_FG_DROP) between its calls.
 *
 * The states of a site for a file group (css_mtab.h): none -> adding
 * (LP_FS_HOLDER_ADDING) -> holder (LP_FS_HOLDER_FULL) -> none
 * (LP_FS_HOLDER_REMOVE; also adding -> none).  Every request names the
 * state it wants, so a rerun after an interruption repeats it harmlessly
 * (value 0: nothing changed).  Rules:
 *   - a site being added is listed in the mount table with `adding`: its
 *     replicator pulls, but it is never the primary, never pulled from,
 *     and its registration does not make it a holder (css_mtab_add_holders);
 *   - only a site being added becomes a holder (its copy was made);
 *   - the last holder is never removed (-EBUSY), whatever is being added;
 *   - nor one that would leave fewer holders than the group's sync_copies
 *     (-EBUSY): every fsync would wait for a copy that no longer exists
 *     and fail (docs/replication.md, "sync_copies").  Sites being added do
 *     not count: their copies are not complete.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "css_int.h"

static const char *state_name(enum css_holder_state s)
{
        return s == CSS_HOLDER_FULL ? "a holder" : s == CSS_HOLDER_ADDING ? "being added" : "not a holder";
}

void css_holders_op(struct css_client *cl, uint64_t reqid, const struct lp_fs_req *rq)
{
        struct css *css = cl->css;
        const struct css_mount *m = css_mtab_find(css->mtab, rq->fg);
        struct lp_fs_resp resp = { .status = 0 };
        enum css_holder_state now, to;
        int r;

        if (!m) {
                css__reply_err(cl, reqid, -ENOENT, "no file group %u in the mount table", rq->fg);
                return;
        }
        if (!rq->site || rq->flags < LP_FS_HOLDER_ADDING || rq->flags > LP_FS_HOLDER_REMOVE) {
                css__reply_err(cl, reqid, -EINVAL, "CSS_FG_HOLDERS needs a site id and a state (got site %" PRIu64
                               ", state %u)", rq->site, rq->flags);
                return;
        }
        to = rq->flags == LP_FS_HOLDER_ADDING ? CSS_HOLDER_ADDING :
             rq->flags == LP_FS_HOLDER_FULL ? CSS_HOLDER_FULL : CSS_HOLDER_NONE;
        now = css_mtab_holder_state(m, rq->site);
        if (now == to || (to == CSS_HOLDER_ADDING && now == CSS_HOLDER_FULL)) {
                resp.value = 0;         /* done already (a rerun) */
                css__reply(cl, reqid, &resp);
                return;
        }
        if (to == CSS_HOLDER_ADDING && !css_sites_get(css->sites, rq->site)) {
                css__reply_err(cl, reqid, -EHOSTUNREACH, "storage site %" PRIu64 " is not registered with the CSS: "
                               "no copy of file group %u '%s' can be made there now", rq->site, m->fg, m->name);
                return;
        }
        if (to == CSS_HOLDER_FULL && now != CSS_HOLDER_ADDING) {
                css__reply_err(cl, reqid, -EINVAL, "storage site %" PRIu64 " is %s of file group %u '%s': only a "
                               "site being added becomes a holder", rq->site, state_name(now), m->fg, m->name);
                return;
        }
        if (to == CSS_HOLDER_NONE && now == CSS_HOLDER_FULL && m->nholders <= 1) {
                css__reply_err(cl, reqid, -EBUSY, "storage site %" PRIu64 " holds the last complete copy of file "
                               "group %u '%s': add another copy first", rq->site, m->fg, m->name);
                return;
        }
        if (to == CSS_HOLDER_NONE && now == CSS_HOLDER_FULL && m->nholders - 1 < m->sync_copies) {
                css__reply_err(cl, reqid, -EBUSY, "file group %u '%s' has sync_copies %u: removing storage site %"
                               PRIu64 " would leave %zu complete cop%s, and every fsync would wait for a copy that "
                               "no longer exists; lower it first (locusctl fg set %s --sync-copies %zu) or add "
                               "another copy", m->fg, m->name, m->sync_copies, rq->site, m->nholders - 1,
                               m->nholders - 1 == 1 ? "y" : "ies", m->name, m->nholders - 1);
                return;
        }
        r = css_mtab_set_holder(css->mtab, m->fg, rq->site, to);
        if (r < 0) {
                cm_log(LOG_ERR, "file group %u: storage site %" PRIu64 " could not be recorded as %s in %s: %s",
                       rq->fg, rq->site, state_name(to), css_mtab_path(css->mtab),
                       r == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r));
                css__reply_err(cl, reqid, r, "file group %u: cannot record storage site %" PRIu64 " as %s in %s: %s",
                               rq->fg, rq->site, state_name(to), css_mtab_path(css->mtab),
                               r == -EIO ? css_mtab_errmsg(css->mtab) : strerror(-r));
                return;
        }
        if (to == CSS_HOLDER_FULL) {
                int e = css_sites_add_fg(css->sites, rq->site, rq->fg);

                if (e < 0 && e != -ENOENT)
                        cm_log(LOG_WARNING, "file group %u: cannot note that storage site %" PRIu64 " holds it: %s "
                               "(it will when the site registers again)", rq->fg, rq->site, strerror(-e));
        }
        cm_log(LOG_INFO, "file group %u '%s': storage site %" PRIu64 " was %s, is now %s (for %s)", rq->fg,
               m->name, rq->site, state_name(now), state_name(to), cl->peer);
        css__mtab_changed(css);
        resp.value = 1;
        css__reply(cl, reqid, &resp);
}
