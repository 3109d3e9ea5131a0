/*
 * ctl_sites.c -- locusctl sites: the sites of a cluster, their storage
 * sites as the CSS knows them (CSS_STATUS), and the membership view of a
 * site's locus-cssd (CSS_MEMBERS, docs/cluster.md "Membership"): which
 * sites it holds up, suspect or down, its epoch and members.  `--site K`
 * asks site K's own cssd, from site K's address (so that it answers from
 * its side of a dev partition).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "css_json.h"
#include "ctl.h"
#include "lp_conn.h"

/* Site k's membership view (its cssd's CSS_MEMBERS; the CSS's with
 * --config), parsed into *ret (css_json_free).  0, or < 0 with err. */
static int members_of(const struct ctl_state *st, unsigned k, struct css_jval **ret, char *err, size_t cap)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_MEMBERS };
        struct lp_fs_resp resp;
        struct ctl_state at;
        int r;

        if (st->remote)
                at = *st;
        else
                ctl_state_cssd_at(st, k, &at);
        r = ctl_call(&at, CTL_CSSD, &rq, CTL_CALL_MS, &resp, err, cap);
        if (r < 0)
                return r;
        r = resp.status;
        if (r < 0)
                snprintf(err, cap, "locus-cssd of site %u: CSS_MEMBERS: %s%s%s", k, strerror(-r),
                         resp.message ? ": " : "", resp.message ? resp.message : "");
        else if (!resp.text || css_json_parse(resp.text, strlen(resp.text), ret) < 0)
                r = -EBADMSG;
        if (r == -EBADMSG)
                snprintf(err, cap, "locus-cssd of site %u: CSS_MEMBERS: no view that parses", k);
        lp_fs_resp_release(&resp);
        return r;
}

/* The entry of site id in a view's "sites", or NULL. */
static const struct css_jval *view_site(const struct css_jval *mv, uint64_t id)
{
        const struct css_jval *a = mv ? css_json_get(mv, "sites") : NULL;

        for (size_t i = 0; a && a->type == CSS_JARR && i < a->n; i++) {
                uint64_t x;

                if (css_json_uint(css_json_get(&a->items[i], "site"), UINT64_MAX, &x) && x == id)
                        return &a->items[i];
        }
        return NULL;
}

/* "up", "suspect", "down" as the view holds site id; NULL: not known to it. */
static const char *member_state(const struct css_jval *mv, uint64_t id)
{
        const struct css_jval *s = view_site(mv, id), *x = s ? css_json_get(s, "state") : NULL;

        return x && x->type == CSS_JSTR ? x->str : NULL;
}

/* Copy a parsed value into a writer. */
static void jw_value(struct css_jw *w, const struct css_jval *v)
{
        switch (v->type) {
        case CSS_JNULL: css_jw_null(w); break;
        case CSS_JBOOL: css_jw_bool(w, v->b); break;
        case CSS_JNUM:
                if (v->is_int)
                        css_jw_i64(w, v->i);
                else
                        css_jw_null(w);     /* views carry integers only */
                break;
        case CSS_JSTR: css_jw_str(w, v->str); break;
        case CSS_JARR:
                css_jw_arr_begin(w);
                for (size_t i = 0; i < v->n; i++)
                        jw_value(w, &v->items[i]);
                css_jw_arr_end(w);
                break;
        case CSS_JOBJ:
                css_jw_obj_begin(w);
                for (size_t i = 0; i < v->n; i++) {
                        css_jw_key(w, v->keys[i]);
                        jw_value(w, &v->items[i]);
                }
                css_jw_obj_end(w);
                break;
        }
}

static void set_text(const struct css_jval *a, char *buf, size_t cap)
{
        size_t off = 0;

        buf[0] = 0;
        for (size_t i = 0; a && a->type == CSS_JARR && i < a->n && off < cap; i++)
                off += (size_t)snprintf(buf + off, cap - off, "%s%" PRId64, i ? "," : "", a->items[i].i);
}

/* "membership seen by site K: epoch E, members {..} (for T s)" */
static void print_view_line(const struct css_jval *mv)
{
        uint64_t site = 0, epoch = 0, age = 0, max = 0;
        char members[512];
        bool aged;

        css_json_uint(css_json_get(mv, "site"), UINT64_MAX, &site);
        css_json_uint(css_json_get(mv, "epoch"), UINT64_MAX, &epoch);
        css_json_uint(css_json_get(mv, "max_epoch"), UINT64_MAX, &max);
        aged = css_json_uint(css_json_get(mv, "epoch_age_ms"), UINT64_MAX, &age);
        set_text(css_json_get(mv, "members"), members, sizeof(members));
        if (aged)
                printf("membership seen by site %" PRIu64 ": epoch %" PRIu64 ", members {%s} (for %" PRIu64 ".%01" PRIu64
                       " s; highest epoch seen %" PRIu64 ")\n", site, epoch, members, age / 1000, age % 1000 / 100, max);
        else
                printf("membership seen by site %" PRIu64 ": no epoch agreed yet (highest seen %" PRIu64 ")\n", site,
                       max);
}

/* locusctl sites --site K: site K's own view. */
static int sites_view(const struct ctl_opts *o, const struct ctl_state *st, unsigned k)
{
        struct css_jval *mv;
        const struct css_jval *a;
        char err[512];
        int r;

        if (st->remote) {
                fprintf(stderr, "locusctl: --site asks a site of a dev cluster (--state); with --config "
                        "the CSS's view is shown without it\n");
                return 2;
        }
        if (k < 1 || k > st->nsites) {
                fprintf(stderr, "locusctl: --site %u: the dev cluster in %s has sites 1..%u\n", k, st->dir,
                        st->nsites);
                return 2;
        }
        /* ask from site k's own address: its side of a partition */
        if (lp_client_set_source(ctl_site_addr(st, k)) < 0) {
                fprintf(stderr, "locusctl: site %u's address %s is not numeric\n", k, ctl_site_addr(st, k));
                return 1;
        }
        r = members_of(st, k, &mv, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return 1;
        }
        if (o->json) {
                struct css_jw w;

                css_jw_init(&w);
                jw_value(&w, mv);
                ctl_print_json(&w);
                css_json_free(mv);
                return 0;
        }
        print_view_line(mv);
        printf("%-5s %-22s %-8s %-7s %s\n", "SITE", "ADDRESS", "STATE", "MEMBER", "LAST HEARD");
        a = css_json_get(mv, "sites");
        for (size_t i = 0; a && a->type == CSS_JARR && i < a->n; i++) {
                const struct css_jval *s = &a->items[i], *h = css_json_get(s, "host"), *x;
                uint64_t id = 0, port = 0, ms = 0;
                char addr[96], heard[32] = "never";

                css_json_uint(css_json_get(s, "site"), UINT64_MAX, &id);
                css_json_uint(css_json_get(s, "port"), 65535, &port);
                snprintf(addr, sizeof(addr), "%s:%" PRIu64, h && h->type == CSS_JSTR ? h->str : "?", port);
                x = css_json_get(s, "self");
                if (x && x->type == CSS_JBOOL && x->b)
                        snprintf(heard, sizeof(heard), "(this site)");
                else if (css_json_uint(css_json_get(s, "last_heard_ms_ago"), UINT64_MAX, &ms))
                        snprintf(heard, sizeof(heard), "%" PRIu64 ".%03" PRIu64 " s ago", ms / 1000, ms % 1000);
                x = css_json_get(s, "member");
                printf("%-5" PRIu64 " %-22s %-8s %-7s %s\n", id, addr, member_state(mv, id) ? member_state(mv, id) : "?",
                       x && x->type == CSS_JBOOL && x->b ? "yes" : "no", heard);
        }
        css_json_free(mv);
        return 0;
}

/* ---- sites ----------------------------------------------------------------------- */

/*
 * locusctl sites: the sites of the cluster as the CSS knows them
 * (CSS_STATUS's storage_sites), joined with the dev cluster's own list
 * (STATE/sites), so that a site that never registered is listed too, as
 * down.  State "up": its storage site's connection to the CSS is up.
 * Membership: the view of site 1's cssd (the CSS's), or of the CSS with
 * --config: each site up / suspect / down, the epoch and its members.
 */
static int sites_storage(const struct ctl_opts *o, struct ctl_state *st)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_STATUS };
        struct lp_fs_resp cs;
        struct css_jval *v = NULL;
        const struct css_jval *arr = NULL;
        char err[512];
        uint64_t ids[CTL_MAX_SITES + CSS_JSON_DEPTH];
        size_t nids = 0;
        struct css_jw w;
        struct css_jval *mv = NULL;
        char merr[512] = "";
        int r;

        if (st->remote)
                st->nsites = 0;         /* only what the CSS knows */
        r = ctl_call(st, CTL_CSSD, &rq, CTL_CALL_MS, &cs, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return 1;
        }
        if (cs.status < 0 || !cs.text || css_json_parse(cs.text, strlen(cs.text), &v) < 0) {
                fprintf(stderr, "locusctl: locus-cssd: CSS_STATUS: %s\n",
                        cs.status < 0 ? strerror(-cs.status) : "no report that parses");
                lp_fs_resp_release(&cs);
                return 1;
        }
        arr = css_json_get(v, "storage_sites");
        if (arr && arr->type != CSS_JARR)
                arr = NULL;
        /* The ids: the dev cluster's sites, then any other the CSS knows. */
        for (unsigned k = 1; k <= st->nsites; k++)
                ids[nids++] = k;
        for (size_t i = 0; arr && i < arr->n && nids < sizeof(ids) / sizeof(ids[0]); i++) {
                uint64_t id = 0;
                bool have = false;

                if (!css_json_uint(css_json_get(&arr->items[i], "site"), UINT64_MAX, &id))
                        continue;
                for (size_t k = 0; k < nids && !have; k++)
                        have = ids[k] == id;
                if (!have)
                        ids[nids++] = id;
        }
        /* The membership view of site 1's cssd (the CSS's with --config). */
        if (members_of(st, 1, &mv, merr, sizeof(merr)) < 0)
                mv = NULL;
        if (o->json) {
                css_jw_init(&w);
                css_jw_obj_begin(&w);
                css_jw_key(&w, "membership");
                if (mv)
                        jw_value(&w, mv);
                else
                        css_jw_null(&w);
                css_jw_key(&w, "sites");
                css_jw_arr_begin(&w);
        } else {
                if (mv)
                        print_view_line(mv);
                else
                        printf("membership: %s\n", merr);
                printf("%-5s %-22s %-6s %-10s %-14s %s\n", "SITE", "ADDRESS", "STATE", "MEMBERSHIP", "LAST CONTACT",
                       "FILE GROUPS");
        }
        for (size_t k = 0; k < nids; k++) {
                const struct css_jval *s = NULL, *fgs = NULL, *x;
                char addr[96], contact[32] = "never", list[512] = "-";
                uint64_t ms = 0, port = 0;
                bool up = false, seen = false;
                size_t off = 0;

                for (size_t i = 0; arr && i < arr->n && !s; i++) {
                        uint64_t id;

                        if (css_json_uint(css_json_get(&arr->items[i], "site"), UINT64_MAX, &id) && id == ids[k])
                                s = &arr->items[i];
                }
                if (s) {
                        x = css_json_get(s, "connected");
                        up = x && x->type == CSS_JBOOL && x->b;
                        seen = css_json_uint(css_json_get(s, "last_contact_ms_ago"), UINT64_MAX, &ms);
                        css_json_uint(css_json_get(s, "port"), 65535, &port);
                        fgs = css_json_get(s, "file_groups");
                        if (fgs && fgs->type != CSS_JARR)
                                fgs = NULL;
                }
                x = s ? css_json_get(s, "host") : NULL;
                if (x && x->type == CSS_JSTR)
                        snprintf(addr, sizeof(addr), "%s:%" PRIu64, x->str, port);
                else
                        snprintf(addr, sizeof(addr), "%s", ids[k] <= st->nsites ? ctl_site_addr(st, (unsigned)ids[k])
                                                                                : "?");
                if (seen)
                        snprintf(contact, sizeof(contact), "%" PRIu64 ".%03" PRIu64 " s ago", ms / 1000, ms % 1000);
                for (size_t i = 0; fgs && i < fgs->n && off < sizeof(list); i++)
                        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%" PRId64, i ? "," : "",
                                                fgs->items[i].i);
                if (o->json) {
                        css_jw_obj_begin(&w);
                        css_jw_key(&w, "site");
                        css_jw_u64(&w, ids[k]);
                        css_jw_key(&w, "address");
                        css_jw_str(&w, x && x->type == CSS_JSTR ? x->str :
                                       ids[k] <= st->nsites ? ctl_site_addr(st, (unsigned)ids[k]) : NULL);
                        css_jw_key(&w, "port");
                        if (s)
                                css_jw_u64(&w, port);
                        else
                                css_jw_null(&w);
                        css_jw_key(&w, "state");
                        css_jw_str(&w, up ? "up" : "down");
                        css_jw_key(&w, "registered");
                        css_jw_bool(&w, s != NULL);
                        css_jw_key(&w, "last_contact_ms_ago");
                        if (seen)
                                css_jw_u64(&w, ms);
                        else
                                css_jw_null(&w);
                        css_jw_key(&w, "file_groups");
                        css_jw_arr_begin(&w);
                        for (size_t i = 0; fgs && i < fgs->n; i++)
                                css_jw_i64(&w, fgs->items[i].i);
                        css_jw_arr_end(&w);
                        css_jw_key(&w, "membership");
                        css_jw_str(&w, member_state(mv, ids[k]));
                        css_jw_obj_end(&w);
                } else {
                        printf("%-5" PRIu64 " %-22s %-6s %-10s %-14s %s\n", ids[k], addr, up ? "up" : "down",
                               member_state(mv, ids[k]) ? member_state(mv, ids[k]) : "?", contact, list);
                }
        }
        if (o->json) {
                css_jw_arr_end(&w);
                css_jw_obj_end(&w);
                ctl_print_json(&w);
        }
        css_json_free(mv);
        css_json_free(v);
        lp_fs_resp_release(&cs);
        return 0;
}

int ctl_cmd_sites(int argc, char **argv)
{
        struct ctl_opts o;
        struct ctl_state st;
        int r;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_JSON | CTL_OPT_CONFIG | CTL_OPT_VIEW, 0, &o) < 0)
                return 2;
        r = ctl_state_of_opts(&o, &st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s\n", r < 0 ? "(unknown)" : st.dir);
                return 1;
        }
        if (o.view_site)
                return sites_view(&o, &st, (unsigned)o.view_site);
        return sites_storage(&o, &st);
}
