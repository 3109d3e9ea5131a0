/*
 * ctl_info.c -- locusctl status, fg create, fg list: what the state
 * directory says, what the kernel says, and what the daemons answer
 * (CSS_MOUNTTABLE, CSS_STATUS, SS_STATUS, CSS_FG_CREATE).  Every listing
 * prints a table for people, or with --json one JSON document on stdout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"
#include "css_json.h"
#include "ctl.h"

/* Embed a peer's JSON text: as JSON if it parses, else as a string. */
static void jw_embed(struct css_jw *w, const char *text)
{
        struct css_jval *v;

        if (text && css_json_parse(text, strlen(text), &v) == 0) {
                css_json_free(v);
                css_jw_raw(w, text);
        } else {
                css_jw_str(w, text);
        }
}

void ctl_print_json(struct css_jw *w)
{
        char *text;

        if (css_jw_finish(w, &text) < 0) {
                fprintf(stderr, "locusctl: out of memory\n");
                return;
        }
        printf("%s\n", text);
        free(text);
}

/* A JSON value as people read it: nested keys joined with '.', arrays of
 * plain values on one line. */
static void print_flat(const struct css_jval *v, const char *prefix, int depth)
{
        char key[512];

        if (depth > 16)
                return;
        switch (v->type) {
        case CSS_JOBJ:
                for (size_t i = 0; i < v->n; i++) {
                        snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", v->keys[i]);
                        print_flat(&v->items[i], key, depth + 1);
                }
                return;
        case CSS_JARR: {
                bool plain = true;

                for (size_t i = 0; i < v->n; i++)
                        if (v->items[i].type == CSS_JOBJ || v->items[i].type == CSS_JARR)
                                plain = false;
                if (!plain) {
                        for (size_t i = 0; i < v->n; i++) {
                                snprintf(key, sizeof(key), "%s[%zu]", prefix, i);
                                print_flat(&v->items[i], key, depth + 1);
                        }
                        return;
                }
                printf("  %-32s [", prefix);
                for (size_t i = 0; i < v->n; i++) {
                        const struct css_jval *x = &v->items[i];

                        if (i)
                                printf(", ");
                        if (x->type == CSS_JSTR)
                                printf("%s", x->str);
                        else if (x->type == CSS_JNUM && x->is_int)
                                printf("%" PRId64, x->i);
                        else if (x->type == CSS_JNUM)
                                printf("%g", x->num);
                        else if (x->type == CSS_JBOOL)
                                printf("%s", x->b ? "true" : "false");
                        else
                                printf("null");
                }
                printf("]\n");
                return;
        }
        case CSS_JSTR:
                printf("  %-32s %s\n", prefix, v->str);
                return;
        case CSS_JNUM:
                if (v->is_int)
                        printf("  %-32s %" PRId64 "\n", prefix, v->i);
                else
                        printf("  %-32s %g\n", prefix, v->num);
                return;
        case CSS_JBOOL:
                printf("  %-32s %s\n", prefix, v->b ? "true" : "false");
                return;
        case CSS_JNULL:
                printf("  %-32s -\n", prefix);
                return;
        }
}

/* The file groups of a CSS_MOUNTTABLE answer as a JSON array (status and
 * fg list print the same objects). */
static void jw_mounts(struct css_jw *w, const struct lp_fs_mount *mounts, size_t n)
{
        css_jw_arr_begin(w);
        for (size_t i = 0; i < n; i++) {
                const struct lp_fs_mount *m = &mounts[i];

                css_jw_obj_begin(w);
                css_jw_key(w, "fg");
                css_jw_u64(w, m->fg);
                css_jw_key(w, "name");
                css_jw_str(w, m->name);
                css_jw_key(w, "path");
                css_jw_str(w, m->path);
                css_jw_key(w, "parent_fg");
                css_jw_u64(w, m->parent_fg);
                css_jw_key(w, "parent_ino");
                css_jw_u64(w, m->parent_ino);
                css_jw_key(w, "site");
                if (m->site)
                        css_jw_u64(w, m->site);
                else
                        css_jw_null(w);
                css_jw_key(w, "host");
                css_jw_str(w, m->site ? m->host : NULL);
                css_jw_key(w, "port");
                if (m->site)
                        css_jw_u64(w, m->port);
                else
                        css_jw_null(w);
                /* site/host/port name the primary (docs/replication.md) */
                css_jw_key(w, "primary");
                if (m->site)
                        css_jw_u64(w, m->site);
                else
                        css_jw_null(w);
                css_jw_key(w, "holders");
                css_jw_arr_begin(w);
                for (size_t h = 0; h < m->nholders; h++) {
                        css_jw_obj_begin(w);
                        css_jw_key(w, "site");
                        css_jw_u64(w, m->holders[h].site);
                        css_jw_key(w, "host");
                        css_jw_str(w, m->holders[h].port ? m->holders[h].host : NULL);
                        css_jw_key(w, "port");
                        css_jw_u64(w, m->holders[h].port);
                        css_jw_key(w, "registered");
                        css_jw_bool(w, m->holders[h].port != 0);
                        css_jw_key(w, "adding");
                        css_jw_bool(w, m->holders[h].adding);
                        css_jw_obj_end(w);
                }
                css_jw_arr_end(w);
                css_jw_obj_end(w);
        }
        css_jw_arr_end(w);
}

/* "1*,2,3(down)": the holders of m, the primary starred, those not registered
 * and those being added (replicas add) marked. */
static void holders_text(const struct lp_fs_mount *m, char *buf, size_t cap)
{
        size_t off = 0;

        buf[0] = 0;
        if (m->nholders == 0)
                snprintf(buf, cap, "-");
        for (size_t h = 0; h < m->nholders && off < cap; h++)
                off += (size_t)snprintf(buf + off, cap - off, "%s%" PRIu64 "%s%s%s", h ? "," : "", m->holders[h].site,
                                        m->holders[h].site == m->site ? "*" : "",
                                        m->holders[h].port ? "" : "(down)",
                                        m->holders[h].adding ? "(adding)" : "");
}

/* ---- status ------------------------------------------------------------------- */

struct prog_state {
        pid_t pid;
        bool has_pid, alive, has_port;
        uint16_t port;
};

int ctl_cmd_status(int argc, char **argv)
{
        struct ctl_opts o;
        struct ctl_state st;
        static struct prog_state sps[CTL_MAX_SITES + 1][CTL_NPROGS];
        static char smp[CTL_MAX_SITES + 1][PATH_MAX + 16];
        static bool smounted[CTL_MAX_SITES + 1];
        struct prog_state *ps = sps[1];
        char mp[PATH_MAX] = "", file[PATH_MAX], mt_err[512] = "", cs_err[512] = "", ss_err[512] = "";
        struct lp_fs_resp mt = { 0 }, cs = { 0 }, ss = { 0 };
        bool have_mt = false, have_cs = false, have_ss = false, mounted = false, all_up = true;
        struct lp_fs_req rq = { 0 };
        int r;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_JSON, 0, &o) < 0)
                return 2;
        r = ctl_state_resolve(o.state, &st);
        if (r < 0 || !st.exists) {
                char hint[3 * PATH_MAX];

                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?); this makes one: %s\n",
                        r < 0 ? "(unknown)" : st.dir, r < 0 ? "locusctl dev up DIR --state PATH" :
                        ctl_hint(&st, "up", "DIR", hint, sizeof(hint)));
                return 1;
        }
        if (ctl_path(&st, "run/mountpoint", file, sizeof(file)) == 0 && cm_read_file(file, mp, sizeof(mp)) > 0)
                mounted = ctl_is_mounted(mp);
        /* Every site's programs (site 1's locus-cssd is the CSS; the others'
         * run the membership service); a site's mount is DIR/s<k>. */
        for (unsigned k = 1; k <= st.nsites; k++) {
                struct ctl_state at;

                ctl_state_cssd_at(&st, k, &at);
                for (int p = 0; p < CTL_NPROGS; p++) {
                        struct prog_state *x = &sps[k][p];

                        memset(x, 0, sizeof(*x));
                        x->has_pid = ctl_read_pid(&at, (enum ctl_prog_id)p, &x->pid) == 0;
                        x->alive = x->has_pid && ctl_alive(x->pid, ctl_progs[p].bin);
                        x->has_port = p != CTL_MOUNT && ctl_read_port(&at, (enum ctl_prog_id)p, &x->port) == 0;
                        if (!x->alive)
                                all_up = false;
                }
                if (st.nsites > 1) {
                        snprintf(smp[k], sizeof(smp[k]), "%s/s%u", mp[0] ? mp : "DIR", k);
                        smounted[k] = mp[0] && ctl_is_mounted(smp[k]);
                        if (!smounted[k])
                                all_up = false;
                }
        }
        if (st.nsites > 1)
                mounted = all_up;
        else if (!mounted)
                all_up = false;
        if (ps[CTL_CSSD].alive) {
                rq.op = LP_FS_CSS_MOUNTTABLE;
                have_mt = ctl_call(&st, CTL_CSSD, &rq, CTL_CALL_MS, &mt, mt_err, sizeof(mt_err)) == 0;
                if (have_mt && mt.status < 0) {
                        snprintf(mt_err, sizeof(mt_err), "locus-cssd: CSS_MOUNTTABLE: %s", strerror(-mt.status));
                        have_mt = false;
                        lp_fs_resp_release(&mt);
                }
                rq.op = LP_FS_CSS_STATUS;
                have_cs = ctl_call(&st, CTL_CSSD, &rq, CTL_CALL_MS, &cs, cs_err, sizeof(cs_err)) == 0;
                if (have_cs && (cs.status < 0 || !cs.text)) {
                        snprintf(cs_err, sizeof(cs_err), "locus-cssd: CSS_STATUS: %s",
                                 cs.status < 0 ? strerror(-cs.status) : "no report");
                        have_cs = false;
                        lp_fs_resp_release(&cs);
                }
        } else {
                snprintf(mt_err, sizeof(mt_err), "locus-cssd is not running");
        }
        if (ps[CTL_STORAGED].alive) {
                rq.op = LP_FS_SS_STATUS;
                have_ss = ctl_call(&st, CTL_STORAGED, &rq, CTL_CALL_MS, &ss, ss_err, sizeof(ss_err)) == 0;
                if (have_ss && (ss.status < 0 || !ss.text)) {
                        snprintf(ss_err, sizeof(ss_err), "locus-storaged: SS_STATUS: %s",
                                 ss.status < 0 ? strerror(-ss.status) : "no report");
                        have_ss = false;
                        lp_fs_resp_release(&ss);
                }
        } else {
                snprintf(ss_err, sizeof(ss_err), "locus-storaged is not running");
        }

        if (o.json) {
                struct css_jw w;

                css_jw_init(&w);
                css_jw_obj_begin(&w);
                css_jw_key(&w, "state");
                css_jw_str(&w, st.dir);
                css_jw_key(&w, "site");
                css_jw_u64(&w, CTL_SITE);
                css_jw_key(&w, "up");
                css_jw_bool(&w, all_up);
                css_jw_key(&w, "sites");
                css_jw_u64(&w, st.nsites);
                css_jw_key(&w, "programs");
                css_jw_arr_begin(&w);
                for (unsigned k = 1; k <= st.nsites; k++)
                for (int p = 0; p < CTL_NPROGS; p++) {
                        ps = sps[k];
                        css_jw_obj_begin(&w);
                        css_jw_key(&w, "site");
                        css_jw_u64(&w, k);
                        css_jw_key(&w, "address");
                        css_jw_str(&w, ctl_site_addr(&st, k));
                        if (p == CTL_MOUNT && st.nsites > 1) {
                                css_jw_key(&w, "dir");
                                css_jw_str(&w, smp[k]);
                                css_jw_key(&w, "mounted");
                                css_jw_bool(&w, smounted[k]);
                        }
                        css_jw_key(&w, "name");
                        css_jw_str(&w, ctl_progs[p].bin);
                        css_jw_key(&w, "pid");
                        if (ps[p].has_pid)
                                css_jw_u64(&w, (uint64_t)ps[p].pid);
                        else
                                css_jw_null(&w);
                        css_jw_key(&w, "running");
                        css_jw_bool(&w, ps[p].alive);
                        css_jw_key(&w, "port");
                        if (ps[p].has_port)
                                css_jw_u64(&w, ps[p].port);
                        else
                                css_jw_null(&w);
                        css_jw_obj_end(&w);
                }
                ps = sps[1];
                css_jw_arr_end(&w);
                css_jw_key(&w, "mount");
                css_jw_obj_begin(&w);
                css_jw_key(&w, "dir");
                css_jw_str(&w, mp[0] ? mp : NULL);
                css_jw_key(&w, "mounted");
                css_jw_bool(&w, mounted);
                css_jw_obj_end(&w);
                css_jw_key(&w, "file_groups");
                if (have_mt) {
                        jw_mounts(&w, mt.mounts, mt.nmounts);
                } else {
                        css_jw_null(&w);
                }
                css_jw_key(&w, "copies");
                if (have_mt)
                        ctl_copies_report(&st, &mt, &w, NULL);
                else
                        css_jw_null(&w);
                css_jw_key(&w, "css");
                if (have_cs)
                        jw_embed(&w, cs.text);
                else
                        css_jw_null(&w);
                css_jw_key(&w, "storage");
                if (have_ss)
                        jw_embed(&w, ss.text);
                else
                        css_jw_null(&w);
                css_jw_key(&w, "errors");
                css_jw_arr_begin(&w);
                if (!have_mt && mt_err[0])
                        css_jw_str(&w, mt_err);
                if (!have_cs && cs_err[0] && strcmp(cs_err, mt_err) != 0)
                        css_jw_str(&w, cs_err);
                if (!have_ss && ss_err[0])
                        css_jw_str(&w, ss_err);
                css_jw_arr_end(&w);
                css_jw_obj_end(&w);
                ctl_print_json(&w);
        } else {
                if (st.nsites > 1)
                        printf("LocusFS dev cluster in %s, %u sites: %s\n\n", st.dir, st.nsites,
                               all_up ? "up" : "NOT all up");
                else
                        printf("LocusFS dev cluster in %s, site %u: %s\n\n", st.dir, CTL_SITE,
                               all_up ? "up" : "NOT all up");
                if (st.nsites > 1)
                        printf("%-5s ", "SITE");
                printf("%-16s %-8s %-8s %s\n", "PROGRAM", "PID", "STATE", "ADDRESS");
                for (unsigned k = 1; k <= st.nsites; k++)
                for (int p = 0; p < CTL_NPROGS; p++) {
                        char pid[16] = "-", addr[PATH_MAX + 64] = "-";

                        ps = sps[k];
                        if (ps[p].has_pid)
                                snprintf(pid, sizeof(pid), "%d", (int)ps[p].pid);
                        if (p == CTL_MOUNT && st.nsites > 1)
                                snprintf(addr, sizeof(addr), "%s (%s)", smp[k], smounted[k] ? "mounted" : "NOT mounted");
                        else if (p == CTL_MOUNT && mp[0])
                                snprintf(addr, sizeof(addr), "%s (%s)", mp, mounted ? "mounted" : "NOT mounted");
                        else if (ps[p].has_port)
                                snprintf(addr, sizeof(addr), "%s:%u", ctl_site_addr(&st, k), ps[p].port);
                        if (st.nsites > 1)
                                printf("%-5u ", k);
                        printf("%-16s %-8s %-8s %s\n", ctl_progs[p].bin, pid, ps[p].alive ? "running" : "stopped",
                               addr);
                }
                ps = sps[1];
                printf("\nFILE GROUPS\n");
                if (have_mt) {
                        printf("%-5s %-16s %-24s %-8s %-22s %s\n", "FG", "NAME", "MOUNTED AT", "PRIMARY",
                               "STORAGE SITE", "HOLDERS (*primary)");
                        for (size_t i = 0; i < mt.nmounts; i++) {
                                const struct lp_fs_mount *m = &mt.mounts[i];
                                char site[24] = "-", addr[96] = "(no storage site registered)", hold[512];

                                if (m->site) {
                                        snprintf(site, sizeof(site), "%" PRIu64, m->site);
                                        snprintf(addr, sizeof(addr), "%s:%u", m->host ? m->host : "?", m->port);
                                }
                                holders_text(m, hold, sizeof(hold));
                                printf("%-5u %-16s %-24s %-8s %-22s %s\n", m->fg, m->name ? m->name : "?",
                                       m->path ? m->path : "?", site, addr, hold);
                        }
                } else {
                        printf("  (unknown: %s)\n", mt_err);
                }
                if (have_mt) {
                        printf("\nCOPIES\n");
                        ctl_copies_report(&st, &mt, NULL, stdout);
                }
                if (have_cs) {
                        struct css_jval *v;

                        printf("\nCURRENT SYNCHRONIZATION SITE (locus-cssd)\n");
                        if (css_json_parse(cs.text, strlen(cs.text), &v) == 0) {
                                const char *keys[] = { "listen", "uptime_ms", "clients", "open_files", "opens",
                                                       "unmatched_closes", "pending_requests", "commit_notes" };

                                for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                                        const struct css_jval *x = css_json_get(v, keys[k]);

                                        if (x)
                                                print_flat(x, keys[k], 0);
                                }
                                {
                                        const struct css_jval *a = css_json_get(v, "storage_sites");

                                        for (size_t i = 0; a && a->type == CSS_JARR && i < a->n; i++) {
                                                char key[64];

                                                snprintf(key, sizeof(key), "storage_sites[%zu]", i);
                                                print_flat(&a->items[i], key, 0);
                                        }
                                }
                                css_json_free(v);
                        } else {
                                printf("  %s\n", cs.text);
                        }
                } else if (cs_err[0] && strcmp(cs_err, mt_err) != 0) {
                        printf("\n  (CSS status unknown: %s)\n", cs_err);
                }
                printf("\nSTORAGE SITE %u (locus-storaged)\n", CTL_SITE);
                if (have_ss) {
                        struct css_jval *v;

                        if (css_json_parse(ss.text, strlen(ss.text), &v) == 0) {
                                print_flat(v, "", 0);
                                css_json_free(v);
                        } else {
                                printf("  %s\n", ss.text);
                        }
                } else {
                        printf("  (unknown: %s)\n", ss_err);
                }
        }
        if (have_mt)
                lp_fs_resp_release(&mt);
        if (have_cs)
                lp_fs_resp_release(&cs);
        if (have_ss)
                lp_fs_resp_release(&ss);
        return all_up ? 0 : 3;
}

/* ---- fg ------------------------------------------------------------------------- */

/* The cluster a command talks to: --config FILE (a site of a real
 * cluster), else the dev cluster's state directory. */
static int fg_list(const struct ctl_opts *o)
{
        struct ctl_state st;
        struct lp_fs_req rq = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp resp;
        char err[512];
        int r;

        r = ctl_state_of_opts(o, &st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s\n", r < 0 ? "(unknown)" : st.dir);
                return 1;
        }
        r = ctl_call(&st, CTL_CSSD, &rq, CTL_CALL_MS, &resp, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return 1;
        }
        if (resp.status < 0) {
                fprintf(stderr, "locusctl: locus-cssd: CSS_MOUNTTABLE: %s%s%s\n", strerror(-resp.status),
                        resp.message ? ": " : "", resp.message ? resp.message : "");
                lp_fs_resp_release(&resp);
                return 1;
        }
        if (o->json) {
                struct css_jw w;

                css_jw_init(&w);
                jw_mounts(&w, resp.mounts, resp.nmounts);
                ctl_print_json(&w);
        } else {
                printf("%-5s %-16s %-24s %-18s %-6s %-22s %s\n", "FG", "NAME", "MOUNTED AT", "ON <FG,INO>",
                       "SITE", "STORAGE SITE", "HOLDERS (*primary)");
                for (size_t i = 0; i < resp.nmounts; i++) {
                        const struct lp_fs_mount *m = &resp.mounts[i];
                        char on[40] = "-", site[24] = "-", addr[96] = "(no storage site registered)", hold[512];

                        if (m->parent_fg)
                                snprintf(on, sizeof(on), "<%u,%" PRIu64 ">", m->parent_fg, m->parent_ino);
                        if (m->site) {
                                snprintf(site, sizeof(site), "%" PRIu64, m->site);
                                snprintf(addr, sizeof(addr), "%s:%u", m->host ? m->host : "?", m->port);
                        }
                        holders_text(m, hold, sizeof(hold));
                        printf("%-5u %-16s %-24s %-18s %-6s %-22s %s\n", m->fg, m->name ? m->name : "?",
                               m->path ? m->path : "?", on, site, addr, hold);
                }
        }
        lp_fs_resp_release(&resp);
        return 0;
}

/*
 * If this state directory's cluster is mounted here, wait until the mount
 * shows the new file group at its mount point (the mount refreshes its
 * mount table every few seconds; until then the path is the plain
 * directory of the parent file group, and what is written there would be
 * hidden once the mount crosses into the new group).  The mount sends no
 * event we could wait on, so this polls stat() every 100 ms, bounded.
 */
static void wait_local_mount(const struct ctl_state *st, const char *path, uint64_t fg, int timeout_s)
{
        char file[PATH_MAX], mp[PATH_MAX], full[2 * PATH_MAX];
        uint64_t want = fg << 48 | 1, deadline = cm_now_us() + (uint64_t)timeout_s * 1000000u;
        bool said = false;
        struct stat sb;

        if (fg > 0xffff || st->remote || ctl_path(st, "run/mountpoint", file, sizeof(file)) < 0 ||
            cm_read_file(file, mp, sizeof(mp)) <= 0)
                return;
        /* several sites: DIR is the parent of their mounts; site 1's will do */
        if (st->nsites > 1 && strlen(mp) + 4 < sizeof(mp))
                strcat(mp, "/s1");
        if (!ctl_is_mounted(mp))
                return;
        snprintf(full, sizeof(full), "%s%s", mp, path);
        for (;;) {
                struct timespec ts = { 0, 100 * 1000 * 1000 };

                if (stat(full, &sb) == 0 && (uint64_t)sb.st_ino == want) {
                        if (said)
                                fprintf(stderr, "locusctl: %s shows file group %" PRIu64 " now\n", full, fg);
                        return;
                }
                if (cm_now_us() >= deadline) {
                        fprintf(stderr, "locusctl: note: the mount at %s does not show file group %" PRIu64
                                " at %s yet (it refreshes its mount table on its own)\n", mp, fg, full);
                        return;
                }
                if (!said) {
                        fprintf(stderr, "locusctl: waiting for the mount at %s to show it at %s\n", mp, full);
                        said = true;
                }
                nanosleep(&ts, NULL);
        }
}

static int fg_create(const struct ctl_opts *o)
{
        char *placement = NULL;
        struct ctl_state st;
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_CREATE };
        struct lp_fs_resp resp;
        char err[1024];
        mode_t um;
        int r;

        if (o->npos != 1 || !o->mount) {
                fprintf(stderr, "usage: locusctl fg create NAME --mount PATH [--copies N] [--sync-copies S] [--sites A,B,...] "
                        "[--state PATH] [--json] [--timeout SEC]\n");
                return 2;
        }
        /* Placement, for the CSS: {"copies": N, "sites": [a, b, ...]} */
        {
                struct css_jw w;
                char list[1024], *save = NULL, *tok, *end;
                unsigned nsites = 0;

                css_jw_init(&w);
                css_jw_obj_begin(&w);
                if (o->sites) {
                        if (strlen(o->sites) >= sizeof(list)) {
                                fprintf(stderr, "locusctl fg create: --sites: too long\n");
                                return 2;
                        }
                        snprintf(list, sizeof(list), "%s", o->sites);
                        css_jw_key(&w, "sites");
                        css_jw_arr_begin(&w);
                        for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                                unsigned long v;

                                errno = 0;
                                v = strtoul(tok, &end, 10);
                                if (errno || *end || !*tok || v == 0 || v > 65535) {
                                        fprintf(stderr, "locusctl fg create: --sites %s: site ids (1..65535) "
                                                "separated by ','\n", o->sites);
                                        css_jw_reset(&w);
                                        return 2;
                                }
                                css_jw_u64(&w, v);
                                nsites++;
                        }
                        css_jw_arr_end(&w);
                        if (o->copies && (unsigned)o->copies > nsites) {
                                fprintf(stderr, "locusctl fg create: --copies %d but only %u site(s) in --sites\n",
                                        o->copies, nsites);
                                css_jw_reset(&w);
                                return 2;
                        }
                }
                if (o->copies) {
                        css_jw_key(&w, "copies");
                        css_jw_u64(&w, (uint64_t)o->copies);
                }
                if (o->sync_copies) {
                        if (o->sync_copies > (o->copies ? o->copies : o->sites ? (int)nsites : 1)) {
                                fprintf(stderr, "locusctl fg create: --sync-copies %d is more than the "
                                        "group's copies\n", o->sync_copies);
                                css_jw_reset(&w);
                                return 2;
                        }
                        css_jw_key(&w, "sync_copies");
                        css_jw_u64(&w, (uint64_t)o->sync_copies);
                }
                css_jw_obj_end(&w);
                if (css_jw_finish(&w, &placement) < 0) {
                        fprintf(stderr, "locusctl: out of memory\n");
                        return 1;
                }
        }
        r = ctl_state_of_opts(o, &st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s\n", r < 0 ? "(unknown)" : st.dir);
                free(placement);
                return 1;
        }
        um = umask(0);
        umask(um);
        rq.name = (const uint8_t *)o->pos[0];
        rq.namelen = strlen(o->pos[0]);
        rq.path = o->mount;
        rq.cred.uid = (uint32_t)getuid();
        rq.cred.gid = (uint32_t)getgid();
        rq.cred.pid = (uint32_t)getpid();
        rq.cred.umask = (uint32_t)um;
        if (rq.namelen > LP_FS_NAME_MAX || strlen(o->mount) > LP_FS_PATH_MAX) {
                fprintf(stderr, "locusctl: file group '%.64s...': name or mount point too long\n", o->pos[0]);
                free(placement);
                return 1;
        }
        rq.text = placement;
        r = ctl_call(&st, CTL_CSSD, &rq, CTL_FG_CREATE_MS, &resp, err, sizeof(err));
        free(placement);
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return 1;
        }
        if (resp.status < 0) {
                fprintf(stderr, "locusctl: file group '%s' at %s not created: %s%s%s\n", o->pos[0], o->mount,
                        strerror(-resp.status), resp.message ? ": " : "", resp.message ? resp.message : "");
                lp_fs_resp_release(&resp);
                return 1;
        }
        if (o->json) {
                struct css_jw w;

                css_jw_init(&w);
                css_jw_obj_begin(&w);
                css_jw_key(&w, "fg");
                css_jw_u64(&w, resp.value);
                css_jw_key(&w, "name");
                css_jw_str(&w, o->pos[0]);
                css_jw_key(&w, "path");
                css_jw_str(&w, o->mount);
                css_jw_obj_end(&w);
                ctl_print_json(&w);
        } else {
                printf("file group %" PRIu64 " '%s' created, mounted at %s\n", resp.value, o->pos[0], o->mount);
        }
        wait_local_mount(&st, o->mount, resp.value, o->timeout_s);
        lp_fs_resp_release(&resp);
        return 0;
}

/* fg set NAME --sync-copies S: change a file group's sync_copies. */
static int fg_set(const struct ctl_opts *o)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_SET };
        struct lp_fs_resp resp;
        struct ctl_state st;
        char err[1024];
        int r;

        if (o->npos != 1 || !o->sync_copies) {
                fprintf(stderr, "usage: locusctl fg set NAME --sync-copies S [--state PATH | --config FILE]\n");
                return 2;
        }
        r = ctl_state_of_opts(o, &st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s\n", r < 0 ? "(unknown)" : st.dir);
                return 1;
        }
        rq.name = (const uint8_t *)o->pos[0];
        rq.namelen = strlen(o->pos[0]);
        rq.length = (uint64_t)o->sync_copies;
        r = ctl_call(&st, CTL_CSSD, &rq, CTL_FG_CREATE_MS, &resp, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return 1;
        }
        if (resp.status < 0) {
                fprintf(stderr, "locusctl: file group '%s': sync_copies not changed: %s%s%s\n", o->pos[0],
                        strerror(-resp.status), resp.message ? ": " : "", resp.message ? resp.message : "");
                lp_fs_resp_release(&resp);
                return 1;
        }
        printf("file group %" PRIu64 " '%s': sync_copies %d (its storage sites apply it within a second)\n",
               resp.value, o->pos[0], o->sync_copies);
        lp_fs_resp_release(&resp);
        return 0;
}

int ctl_cmd_fg(int argc, char **argv)
{
        struct ctl_opts o;

        if (argc >= 2 && !strcmp(argv[1], "set")) {
                if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_STATE | CTL_OPT_SYNC_COPIES | CTL_OPT_CONFIG, 1,
                                   &o) < 0)
                        return 2;
                return fg_set(&o);
        }

        if (argc >= 2 && !strcmp(argv[1], "list")) {
                if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_STATE | CTL_OPT_JSON | CTL_OPT_CONFIG, 0, &o) < 0)
                        return 2;
                return fg_list(&o);
        }
        if (argc >= 2 && !strcmp(argv[1], "create")) {
                if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_STATE | CTL_OPT_JSON | CTL_OPT_MOUNT | CTL_OPT_TIMEOUT |
                                   CTL_OPT_COPIES | CTL_OPT_SYNC_COPIES | CTL_OPT_SITES | CTL_OPT_CONFIG, 1,
                                   &o) < 0)
                        return 2;
                return fg_create(&o);
        }
        fprintf(stderr, "usage: locusctl fg create NAME --mount PATH [--copies N] [--sync-copies S] [--sites A,B,...]\n"
                        "                        [--state PATH | --config FILE] [--json] [--timeout SEC]\n"
                        "       locusctl fg list [--state PATH | --config FILE] [--json]\n"
                        "       locusctl fg set NAME --sync-copies S [--state PATH | --config FILE]\n");
        return 2;
}

