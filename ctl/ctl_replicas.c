/*
 * ctl_replicas.c -- locusctl replicas add|remove FG|PATH SITE: change where
 * the copies of a file group live (docs/replication.md, "Adding and
 * removing copies").
 *
 * add:    CSS_FG_HOLDERS ADDING (the site is listed as being added: its
 *         replicator pulls, nobody reads its copy), SS_FG_CREATE at the
 *         site (EEXIST: made by an earlier run), wait until its watermark
 *         of every holder has reached that holder's seq (a progress bar on
 *         a terminal, lines otherwise), then CSS_FG_HOLDERS FULL.
 * remove: CSS_FG_HOLDERS REMOVE (refused for the last holder; from then
 *         on the site is neither primary nor pulled from), then SS_FG_DROP
 *         at the site (its container closed, its folder renamed away and
 *         removed).
 * Every step names the state it wants, so a run interrupted anywhere
 * (locusctl or the site's storaged killed) is finished by running the same
 * command again.  Exit 0 done, 1 failed (what to do is said), 2 usage.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"
#include "css_json.h"
#include "ctl.h"
#include "lp_conn.h"

#define REPLICAS_TIMEOUT_S 600
#define POLL_MS 100

struct job {
        struct ctl_state st;
        uint8_t key[LP_KEY_SIZE];
        uint32_t fg;
        uint64_t site;
        char name[80];
        uint64_t deadline;
        bool tty;
        char err[1024];
};

static void pause_ms(unsigned ms)
{
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

static bool parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!*s || !isdigit((unsigned char)*s))
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v == 0)
                return false;
        *ret = v;
        return true;
}

static int mounttable(struct job *j, struct lp_fs_resp *mt)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_MOUNTTABLE };
        int r = ctl_call(&j->st, CTL_CSSD, &q, CTL_CALL_MS, mt, j->err, sizeof(j->err));

        if (r >= 0 && mt->status < 0) {
                snprintf(j->err, sizeof(j->err), "locus-cssd: CSS_MOUNTTABLE: %s", strerror(-mt->status));
                r = mt->status;
                lp_fs_resp_release(mt);
        }
        return r;
}

static const struct lp_fs_mount *mount_of(const struct lp_fs_resp *mt, uint32_t fg)
{
        for (size_t i = 0; i < mt->nmounts; i++)
                if (mt->mounts[i].fg == fg)
                        return &mt->mounts[i];
        return NULL;
}

static const struct lp_fs_holder *holder_of(const struct lp_fs_mount *m, uint64_t site)
{
        for (size_t i = 0; m && i < m->nholders; i++)
                if (m->holders[i].site == site)
                        return &m->holders[i];
        return NULL;
}

/* FG|PATH: a file group id, a name, a mount point or any path in it. */
static int find_fg(struct job *j, const char *what)
{
        struct lp_fs_resp mt;
        uint64_t id, ino;
        uint32_t fg = 0;
        int r = mounttable(j, &mt);

        if (r < 0)
                return r;
        if (parse_u64(what, &id)) {
                fg = id <= UINT32_MAX && mount_of(&mt, (uint32_t)id) ? (uint32_t)id : 0;
        } else if (what[0] == '/') {
                char path[LP_FS_PATH_MAX + 1];
                size_t n = strlen(what);

                snprintf(path, sizeof(path), "%s", what);
                while (n > 1 && path[n - 1] == '/')
                        path[--n] = 0;
                for (size_t i = 0; i < mt.nmounts && !fg; i++)
                        if (!strcmp(mt.mounts[i].path, path))
                                fg = mt.mounts[i].fg;
                if (!fg) {
                        r = ctl_resolve(&mt, j->key, path, &fg, &ino, j->err, sizeof(j->err));
                        if (r < 0) {
                                lp_fs_resp_release(&mt);
                                return r;
                        }
                }
        } else {
                for (size_t i = 0; i < mt.nmounts && !fg; i++)
                        if (!strcmp(mt.mounts[i].name, what))
                                fg = mt.mounts[i].fg;
        }
        if (!fg) {
                snprintf(j->err, sizeof(j->err), "no file group '%s' (give its id, its name, or a path in it "
                         "from the root of the name space)", what);
                lp_fs_resp_release(&mt);
                return -ENOENT;
        }
        j->fg = fg;
        snprintf(j->name, sizeof(j->name), "%s", mount_of(&mt, fg)->name);
        lp_fs_resp_release(&mt);
        return 0;
}

static int set_holder(struct job *j, uint32_t state, uint64_t *ret_changed)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_FG_HOLDERS, .fg = j->fg, .site = j->site, .flags = state };
        struct lp_fs_resp a;
        int r = ctl_call(&j->st, CTL_CSSD, &q, CTL_CALL_MS, &a, j->err, sizeof(j->err));

        if (r < 0)
                return r;
        r = a.status;
        if (r < 0)
                snprintf(j->err, sizeof(j->err), "locus-cssd: %s", a.message ? a.message : strerror(-r));
        else if (ret_changed)
                *ret_changed = a.value;
        lp_fs_resp_release(&a);
        return r;
}

/* One request to the site's storaged, whose address the mount table or,
 * for a site no longer listed, CSS_STATUS gives.  -EAGAIN: not reachable
 * now (err says why). */
static int site_call(struct job *j, struct lp_fs_req *q, struct lp_fs_resp *a)
{
        char host[64] = "";
        uint16_t port = 0;
        struct lp_fs_req sq = { .op = LP_FS_CSS_STATUS };
        struct lp_fs_resp sa;
        struct css_jval *js = NULL;
        int r = ctl_call(&j->st, CTL_CSSD, &sq, CTL_CALL_MS, &sa, j->err, sizeof(j->err));

        if (r < 0)
                return r;
        if (sa.status >= 0 && sa.text && css_json_parse(sa.text, strlen(sa.text), &js) >= 0) {
                const struct css_jval *v = css_json_get(js, "storage_sites");

                for (size_t i = 0; v && v->type == CSS_JARR && i < v->n; i++) {
                        const struct css_jval *h = css_json_get(&v->items[i], "host");
                        uint64_t id, p;

                        if (css_json_uint(css_json_get(&v->items[i], "site"), UINT64_MAX, &id) && id == j->site &&
                            h && h->type == CSS_JSTR && strlen(h->str) < sizeof(host) &&
                            css_json_uint(css_json_get(&v->items[i], "port"), 65535, &p)) {
                                snprintf(host, sizeof(host), "%s", h->str);
                                port = (uint16_t)p;
                        }
                }
        }
        css_json_free(js);
        lp_fs_resp_release(&sa);
        if (!port) {
                snprintf(j->err, sizeof(j->err), "storage site %" PRIu64 " is not registered with the CSS now",
                         j->site);
                return -EAGAIN;
        }
        r = ctl_call_conn(host, port, j->key, NULL, q, a, j->err, sizeof(j->err));
        return r < 0 ? -EAGAIN : 0;
}

/* The progress line: a bar on a terminal, else a line when it moved. */
static void progress(struct job *j, uint64_t done, uint64_t total, uint64_t files, const char *note, bool force)
{
        static uint64_t last_us, last_done = UINT64_MAX;
        uint64_t now = cm_now_us();
        unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 0;

        if (j->tty) {
                char bar[31];

                for (unsigned i = 0; i < 30; i++)
                        bar[i] = i < pct * 30 / 100 ? '#' : '.';
                bar[30] = 0;
                printf("\r[%s] %3u%%  %" PRIu64 "/%" PRIu64 " changes, %" PRIu64 " files pulled%s%s\033[K", bar,
                       pct, done, total, files, note ? "  " : "", note ? note : "");
                fflush(stdout);
                return;
        }
        if (!force && (done == last_done || now - last_us < 1000000))
                return;
        last_us = now;
        last_done = done;
        printf("site %" PRIu64 ": %" PRIu64 "/%" PRIu64 " changes (%u%%), %" PRIu64 " files pulled%s%s\n", j->site,
               done, total, pct, files, note ? "; " : "", note ? note : "");
        fflush(stdout);
}

/*
 * One look at the new copy: 1 when its watermark of every holder that
 * answers has reached that holder's seq (and the primary answered), 0 not
 * yet, < 0 the CSS cannot be asked.
 */
static int copy_current(struct job *j, uint64_t *ret_done, uint64_t *ret_total, uint64_t *ret_files,
                        char *note, size_t ncap)
{
        struct lp_fs_resp mt;
        const struct lp_fs_mount *m;
        const struct lp_fs_holder *me;
        struct css_jval *mine = NULL;
        uint64_t done = 0, total = 0, files = 0;
        bool all = true, primary = false;
        int r = mounttable(j, &mt);

        if (r < 0)
                return r;
        note[0] = 0;
        m = mount_of(&mt, j->fg);
        me = holder_of(m, j->site);
        if (!m || !me) {
                snprintf(j->err, sizeof(j->err), "file group %u no longer lists site %" PRIu64 " (was it removed "
                         "meanwhile?)", j->fg, j->site);
                lp_fs_resp_release(&mt);
                return -ENOENT;
        }
        if (!me->port || ctl_ss_report(j->key, me->site, me->host, (uint16_t)me->port, &mine, note, ncap) < 0) {
                if (!me->port)
                        snprintf(note, ncap, "site %" PRIu64 " is not registered with the CSS now", j->site);
                lp_fs_resp_release(&mt);
                return 0;
        }
        for (size_t i = 0; i < m->nholders; i++) {
                const struct lp_fs_holder *h = &m->holders[i];
                struct css_jval *theirs = NULL;
                uint64_t seq = 0, wm = 0, pulled = 0;
                const char *lerr = NULL;
                char why[256];

                if (h->site == j->site || h->adding)
                        continue;
                if (!h->port || ctl_ss_report(j->key, h->site, h->host, (uint16_t)h->port, &theirs, why,
                                              sizeof(why)) < 0 || !ctl_report_seq(theirs, j->fg, &seq)) {
                        css_json_free(theirs);
                        continue;       /* a holder that does not answer is left out, as in sync */
                }
                if (h->site == m->site)
                        primary = true;
                if (!ctl_report_link(mine, j->fg, h->site, &wm, &lerr, &pulled))
                        wm = 0;
                if (lerr)
                        snprintf(note, ncap, "from site %" PRIu64 ": %s", h->site, lerr);
                done += wm < seq ? wm : seq;
                total += seq;
                files += pulled;
                if (wm < seq)
                        all = false;
                css_json_free(theirs);
        }
        css_json_free(mine);
        lp_fs_resp_release(&mt);
        *ret_done = done;
        *ret_total = total;
        *ret_files = files;
        if (!primary && !note[0])
                snprintf(note, ncap, "waiting for the primary of file group %u to answer", j->fg);
        return all && primary;
}

static int do_add(struct job *j)
{
        struct lp_fs_req cq = { .op = LP_FS_SS_FG_CREATE, .fg = j->fg, .name = (const uint8_t *)j->name,
                                .namelen = strlen(j->name) };
        struct lp_fs_resp a;
        uint64_t changed = 0, done = 0, total = 0, files = 0;
        char note[384] = "";
        bool made = false;
        int r;

        r = set_holder(j, LP_FS_HOLDER_ADDING, &changed);
        if (r < 0)
                return r;
        /* The container: made now, or by an earlier run. */
        while (!made) {
                r = site_call(j, &cq, &a);
                if (r == 0) {
                        r = a.status;
                        lp_fs_resp_release(&a);
                        if (r == 0 || r == -EEXIST) {
                                made = true;
                                break;
                        }
                        snprintf(j->err, sizeof(j->err), "storage site %" PRIu64 ": SS_FG_CREATE of file group %u: "
                                 "%s", j->site, j->fg, strerror(-r));
                        if (r != -EAGAIN && r != -EBUSY)
                                return r;
                } else if (r != -EAGAIN) {
                        return r;
                }
                if (cm_now_us() >= j->deadline)
                        return -ETIMEDOUT;
                progress(j, 0, 0, 0, j->err, false);
                pause_ms(POLL_MS);
        }
        for (;;) {
                r = copy_current(j, &done, &total, &files, note, sizeof(note));
                if (r < 0)
                        return r;
                progress(j, done, total, files, note[0] ? note : NULL, r > 0);
                if (r > 0)
                        break;
                if (cm_now_us() >= j->deadline) {
                        snprintf(j->err, sizeof(j->err), "the copy at site %" PRIu64 " is not current yet (%" PRIu64
                                 " of %" PRIu64 " changes)%s%s", j->site, done, total, note[0] ? ": " : "", note);
                        return -ETIMEDOUT;
                }
                pause_ms(POLL_MS);
        }
        if (j->tty)
                putchar('\n');
        r = set_holder(j, LP_FS_HOLDER_FULL, &changed);
        if (r < 0)
                return r;
        printf("site %" PRIu64 " holds a copy of file group %u '%s'\n", j->site, j->fg, j->name);
        return 0;
}

static int do_remove(struct job *j)
{
        struct lp_fs_req dq = { .op = LP_FS_SS_FG_DROP, .fg = j->fg };
        struct lp_fs_resp a;
        uint64_t changed = 0;
        int r;

        r = set_holder(j, LP_FS_HOLDER_REMOVE, &changed);
        if (r < 0)
                return r;
        for (;;) {
                r = site_call(j, &dq, &a);
                if (r == 0) {
                        r = a.status;
                        lp_fs_resp_release(&a);
                        if (r == 0)
                                break;
                        snprintf(j->err, sizeof(j->err), "storage site %" PRIu64 ": SS_FG_DROP of file group %u: %s",
                                 j->site, j->fg, strerror(-r));
                        if (r != -EBUSY)
                                return r;
                } else if (r != -EAGAIN) {
                        return r;
                }
                if (cm_now_us() >= j->deadline)
                        return -ETIMEDOUT;
                pause_ms(POLL_MS);
        }
        printf("site %" PRIu64 " no longer holds a copy of file group %u '%s'\n", j->site, j->fg, j->name);
        return 0;
}

int ctl_cmd_replicas(int argc, char **argv)
{
        struct ctl_opts o;
        struct job j = { .tty = isatty(STDOUT_FILENO) };
        bool add;
        int r;

        if (argc > 1 && !strcmp(argv[1], "set"))
                return ctl_replicas_set(argc, argv);
        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_CONFIG | CTL_OPT_TIMEOUT, 3, &o) < 0)
                return 2;
        if (o.npos != 3 || (strcmp(o.pos[0], "add") && strcmp(o.pos[0], "remove")) ||
            !parse_u64(o.pos[2], &j.site)) {
                fprintf(stderr, "usage: locusctl replicas add|remove FG|PATH SITE [--state S] [--timeout SEC]\n");
                return 2;
        }
        add = !strcmp(o.pos[0], "add");
        r = ctl_state_of_opts(&o, &j.st);
        if (r < 0 || !j.st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?)\n", r < 0 ? "(unknown)" : j.st.dir);
                return 1;
        }
        if (ctl_load_key(&j.st, j.key, j.err, sizeof(j.err)) < 0) {
                fprintf(stderr, "locusctl: %s\n", j.err);
                return 1;
        }
        j.deadline = cm_now_us() + (uint64_t)(o.timeout_s > 0 ? o.timeout_s : REPLICAS_TIMEOUT_S) * 1000000u;
        r = find_fg(&j, o.pos[1]);
        if (r >= 0)
                r = add ? do_add(&j) : do_remove(&j);
        lp_key_wipe(j.key, sizeof(j.key));
        if (r < 0) {
                if (j.tty && add)
                        putchar('\n');
                fprintf(stderr, "locusctl: replicas %s %s %" PRIu64 ": %s%s\n", o.pos[0], o.pos[1], j.site,
                        j.err[0] ? j.err : strerror(-r),
                        r == -EBUSY || r == -EINVAL || r == -ENOENT ? "" :
                        " (run the same command again to finish)");
                return 1;
        }
        return 0;
}
