/*
 * ctl_dev.c -- locusctl dev up / dev down / fsck --rebuild: a one-site
 * cluster kept in a state directory (docs/cluster.md), its programs run in
 * the background by us.
 *
 * dev up is idempotent: a program whose pid file names a live process of
 * that program is left alone; the mount counts as running only if DIR is
 * a fuse.locusfs mount point too.  So after a crash (kill -9 of a daemon
 * or of the mount) `dev up` starts just what is missing, on the ports in
 * run/<name>.port, so that the others reconnect to the same address.
 *
 * Whose mount is it: the mount dev up makes has the source "locusfs:STATE"
 * (ctl_mount_source), and STATE/run/mountpoint records where it is.  dev
 * down acts on DIR only if it is that record and not a LocusFS mount whose
 * source names another state directory; dev up refuses another cluster's
 * mount and a non-empty directory (unless --force).  Every refusal comes
 * before anything is created, unmounted, started or stopped
 * (docs/cluster.md, "Which mount is whose").
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"
#include "ctl.h"

#define FUSE_SUPER_MAGIC 0x65735546

/* What this invocation started, to stop it again if a later step fails. */
struct started {
        pid_t pid[CTL_NPROGS];
        const char *mountdir;
};

static void remove_run_file(const struct ctl_state *st, enum ctl_prog_id p, const char *ext)
{
        char file[PATH_MAX];

        if (ctl_run_file(st, p, ext, file, sizeof(file)) == 0)
                unlink(file);
}

static int write_num(const struct ctl_state *st, enum ctl_prog_id p, const char *ext, long v)
{
        char file[PATH_MAX], num[32];
        int r = ctl_run_file(st, p, ext, file, sizeof(file));

        snprintf(num, sizeof(num), "%ld\n", v);
        if (r == 0)
                r = cm_write_file(file, num);
        if (r < 0)
                fprintf(stderr, "locusctl: %s: %s\n", file, strerror(-r));
        return r;
}

/*
 * Create the state directory's layout and the cluster key (first use).  A
 * cluster of several sites gets STATE/site<k>/{data,run,log} for every
 * site, site1/css for the one locus-cssd, and STATE/sites (its addresses).
 */
static int state_init(const struct ctl_state *st)
{
        static const char *dirs[] = { "", "site1/data", "site1/css", "run", "log" };
        char path[PATH_MAX], rel[64];
        int r;

        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
                r = ctl_path(st, dirs[i], path, sizeof(path));
                if (r == 0)
                        r = cm_mkdir_p(path, 0700);
                if (r < 0) {
                        fprintf(stderr, "locusctl: cannot create %s: %s\n", path, strerror(-r));
                        return r;
                }
        }
        for (unsigned k = 1; st->nsites > 1 && k <= st->nsites; k++) {
                static const char *sub[] = { "data", "run", "log" };

                for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
                        snprintf(rel, sizeof(rel), "site%u/%s", k, sub[i]);
                        r = ctl_path(st, rel, path, sizeof(path));
                        if (r == 0)
                                r = cm_mkdir_p(path, 0700);
                        if (r < 0) {
                                fprintf(stderr, "locusctl: cannot create %s: %s\n", path, strerror(-r));
                                return r;
                        }
                }
        }
        if (st->nsites > 1 && ctl_path(st, "sites", path, sizeof(path)) == 0 && access(path, F_OK) < 0) {
                char text[CTL_MAX_SITES * CTL_ADDR_MAX + 1];
                size_t off = 0;

                for (unsigned k = 1; k <= st->nsites; k++)
                        off += (size_t)snprintf(text + off, sizeof(text) - off, "%s\n", ctl_site_addr(st, k));
                r = cm_write_file(path, text);
                if (r < 0) {
                        fprintf(stderr, "locusctl: cannot write %s: %s\n", path, strerror(-r));
                        return r;
                }
        }
        r = ctl_path(st, "cluster.key", path, sizeof(path));
        if (r == 0 && access(path, F_OK) < 0) {
                r = lp_key_generate(path);
                if (r < 0) {
                        fprintf(stderr, "locusctl: cannot create the cluster key %s: %s\n", path,
                                lp_key_strerror(r));
                        return r;
                }
                printf("created cluster key %s\n", path);
        }
        return r;
}

/* Does site st->site's data directory hold no container yet (its first start)? */
static bool site_fresh(const struct ctl_state *st)
{
        char rel[64], path[PATH_MAX];
        struct dirent *e;
        bool fresh = true;
        DIR *d;

        snprintf(rel, sizeof(rel), "site%u/data", st->site);
        if (ctl_path(st, rel, path, sizeof(path)) < 0 || !(d = opendir(path)))
                return true;
        while (fresh && (e = readdir(d)))
                fresh = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "lock");
        closedir(d);
        return fresh;
}

static void report_failure(const struct ctl_state *st, enum ctl_prog_id p, const char *how)
{
        char log[PATH_MAX];

        fprintf(stderr, "locusctl: %s %s\n", ctl_progs[p].bin, how);
        if (ctl_log_file(st, p, log, sizeof(log)) == 0) {
                fprintf(stderr, "locusctl: last lines of %s:\n", log);
                ctl_print_tail(stderr, log, CTL_LOG_TAIL);
        }
}

/* Unmount (lazily if busy) and say what happened. */
static int unmount_dir(const char *dir)
{
        char err[512];
        bool lazy;
        int r = ctl_unmount(dir, true, &lazy, err, sizeof(err));

        if (r < 0) {
                fprintf(stderr, "locusctl: cannot unmount %s: %s\n", dir, err[0] ? err : strerror(-r));
                return r;
        }
        if (lazy)
                printf("%s was busy: detached lazily (fusermount3 -u -z); it goes away when the last "
                       "process using it lets go\n", dir);
        else
                printf("unmounted %s\n", dir);
        return 0;
}

static void stop_prog(const struct ctl_state *st, enum ctl_prog_id p, pid_t pid, int timeout_ms)
{
        bool killed = false;
        int r = ctl_stop(pid, ctl_progs[p].bin, timeout_ms, &killed);

        if (r < 0)
                fprintf(stderr, "locusctl: %s (pid %d) did not end even after SIGKILL\n", ctl_progs[p].bin,
                        (int)pid);
        else if (killed)
                printf("%s (pid %d) did not stop within %d s of SIGTERM: killed with SIGKILL\n",
                       ctl_progs[p].bin, (int)pid, timeout_ms / 1000);
        else
                printf("stopped %s (pid %d)\n", ctl_progs[p].bin, (int)pid);
        if (r == 0)
                remove_run_file(st, p, "pid");
}

/* Stop what this invocation started, newest first. */
static void undo(const struct ctl_state *st, struct started *s)
{
        for (int p = CTL_NPROGS - 1; p >= 0; p--) {
                if (!s->pid[p])
                        continue;
                if (p == CTL_MOUNT && s->mountdir && ctl_is_mounted(s->mountdir))
                        unmount_dir(s->mountdir);
                fprintf(stderr, "locusctl: stopping %s (pid %d), started by this command\n", ctl_progs[p].bin,
                        (int)s->pid[p]);
                stop_prog(st, (enum ctl_prog_id)p, s->pid[p], CTL_STOP_TIMEOUT_MS);
                s->pid[p] = 0;
        }
}

/*
 * Start daemon p (cssd or storaged) of site st->site (the cssd: site 1's)
 * with its usual arguments, on its previous port if it had one, bound to
 * the site's address; create_root: the storaged creates the root file
 * group (the cluster's first start).  0 with *ret_pid and *ret_port, or
 * < 0 (reported).
 */
static int start_daemon(const struct ctl_state *st, enum ctl_prog_id p, int timeout_s, bool create_root,
                        pid_t *ret_pid, uint16_t *ret_port)
{
        char bin[PATH_MAX], where[PATH_MAX + 64], key[PATH_MAX], dir[PATH_MAX], portf[PATH_MAX], pidf[PATH_MAX],
             cssportf[PATH_MAX], log[PATH_MAX], listen[CTL_ADDR_MAX + 16], css[CTL_ADDR_MAX + 16], info[128],
             how[256], rel[64], sitenum[16];
        unsigned k = p == CTL_CSSD ? 1 : st->site;
        const char *addr = ctl_site_addr(st, k);
        bool multi = st->nsites > 1;
        uint16_t old = 0;
        bool reuse;
        int r;

        r = ctl_find_bin(p, bin, sizeof(bin), where, sizeof(where));
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot find %s (looked in %s); set LOCUS_BIN_DIR\n", ctl_progs[p].bin,
                        where);
                return r;
        }
        snprintf(rel, sizeof(rel), "site%u/%s", k, p == CTL_CSSD ? "css" : "data");
        snprintf(sitenum, sizeof(sitenum), "%u", k);
        if (ctl_path(st, "cluster.key", key, sizeof(key)) < 0 ||
            ctl_path(st, rel, dir, sizeof(dir)) < 0 ||
            ctl_run_file(st, p, "port", portf, sizeof(portf)) < 0 ||
            ctl_run_file(st, p, "pid", pidf, sizeof(pidf)) < 0 ||
            ctl_run_file(st, CTL_CSSD, "port", cssportf, sizeof(cssportf)) < 0 ||
            ctl_log_file(st, p, log, sizeof(log)) < 0) {
                fprintf(stderr, "locusctl: state directory path %s is too long\n", st->dir);
                return -ENAMETOOLONG;
        }
        snprintf(css, sizeof(css), "%s:0", ctl_site_addr(st, 1));
        reuse = ctl_read_port(st, p, &old) == 0;
        for (;;) {
                char *argv[32];
                int n = 0;

                snprintf(listen, sizeof(listen), "%s:%u", addr, reuse ? old : 0);
                argv[n++] = (char *)ctl_progs[p].bin;
                argv[n++] = p == CTL_CSSD ? "--state" : "--data";
                argv[n++] = dir;
                argv[n++] = "--key";
                argv[n++] = key;
                argv[n++] = "--site";
                argv[n++] = sitenum;
                argv[n++] = "--listen";
                argv[n++] = listen;
                if (multi) {
                        argv[n++] = "--bind";
                        argv[n++] = (char *)addr;
                }
                argv[n++] = "--port-file";
                argv[n++] = portf;
                argv[n++] = "--pid-file";
                argv[n++] = pidf;
                argv[n++] = "--ready-fd";
                argv[n++] = "3";
                if (p == CTL_STORAGED) {
                        if (multi) {
                                argv[n++] = "--css";    /* the host; the port is in the file */
                                argv[n++] = css;
                        }
                        argv[n++] = "--css-port-file";
                        argv[n++] = cssportf;
                        if (create_root)
                                argv[n++] = "--create-root";
                }
                argv[n] = NULL;
                r = ctl_spawn(bin, argv, log, timeout_s * 1000, ret_pid, info, sizeof(info), how, sizeof(how));
                if (r == 0)
                        break;
                if (reuse && r == -EPIPE) {
                        /* Most likely its old port is taken now: peers find the new one in run/. */
                        fprintf(stderr, "locusctl: %s did not start on its previous port %u (%s); "
                                "trying a new port (see %s)\n", ctl_progs[p].bin, old, how, log);
                        reuse = false;
                        continue;
                }
                report_failure(st, p, how);
                return r;
        }
        if (sscanf(info, "port=%hu", ret_port) != 1) {
                fprintf(stderr, "locusctl: %s said 'READY %s', expected 'READY port=N'\n", ctl_progs[p].bin, info);
                ctl_stop(*ret_pid, ctl_progs[p].bin, CTL_STOP_TIMEOUT_MS, NULL);
                return -EBADMSG;
        }
        /* The daemon writes both files itself; writing them again costs nothing
         * and keeps run/ right whatever it did. */
        write_num(st, p, "pid", *ret_pid);
        write_num(st, p, "port", *ret_port);
        if (multi)
                printf("site %u: started %s (pid %d, %s:%u, log %s)\n", k, ctl_progs[p].bin, (int)*ret_pid, addr,
                       *ret_port, log);
        else
                printf("started %s (pid %d, %s:%u, log %s)\n", ctl_progs[p].bin, (int)*ret_pid, addr, *ret_port,
                       log);
        return 0;
}

/*
 * Wait until the CSS names a storage site for the root file group (the
 * storage site registered): before that, opens fail with EHOSTUNREACH.
 * There is no event to wait on from here, so this polls the CSS every
 * 50 ms, bounded by timeout_s.
 */
static int wait_root_served(const struct ctl_state *st, int timeout_s)
{
        uint64_t deadline = cm_now_us() + (uint64_t)timeout_s * 1000000u;
        char err[512] = "";

        for (;;) {
                struct lp_fs_req rq = { .op = LP_FS_CSS_MOUNTTABLE };
                struct lp_fs_resp resp;
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                bool served = false;

                if (ctl_call(st, CTL_CSSD, &rq, CTL_CALL_MS, &resp, err, sizeof(err)) == 0) {
                        for (size_t i = 0; i < resp.nmounts; i++) {
                                const struct lp_fs_mount *m = &resp.mounts[i];
                                unsigned up = 0;

                                if (m->fg != 1 || !m->site)
                                        continue;
                                /* every site of the cluster holds the root group */
                                for (size_t h = 0; h < m->nholders; h++)
                                        up += m->holders[h].port != 0;
                                served = st->nsites == 1 || up >= st->nsites;
                        }
                        if (resp.status < 0)
                                snprintf(err, sizeof(err), "CSS_MOUNTTABLE: %s", strerror(-resp.status));
                        lp_fs_resp_release(&resp);
                }
                if (served)
                        return 0;
                if (cm_now_us() >= deadline) {
                        fprintf(stderr, "locusctl: %s did not register with locus-cssd within %d s%s%s\n",
                                st->nsites > 1 ? "not every site's locus-storaged" : "locus-storaged", timeout_s,
                                err[0] ? ": " : "", err);
                        report_failure(st, CTL_STORAGED, "is not registered with the CSS");
                        report_failure(st, CTL_CSSD, "has no storage site for the root file group");
                        return -ETIMEDOUT;
                }
                nanosleep(&ts, NULL);
        }
}

static int start_mount(const struct ctl_state *st, const char *dir, int timeout_s, pid_t *ret_pid)
{
        char bin[PATH_MAX], where[PATH_MAX + 64], key[PATH_MAX], cssportf[PATH_MAX], log[PATH_MAX], how[256],
             info[128], opts[3 * PATH_MAX + 64], mp[PATH_MAX], source[PATH_MAX + 16];
        uint16_t cssport;
        char *argv[12];
        int r, n = 0;

        r = ctl_find_bin(CTL_MOUNT, bin, sizeof(bin), where, sizeof(where));
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot find locusfs-mount (looked in %s); set LOCUS_BIN_DIR\n", where);
                return r;
        }
        r = ctl_read_port(st, CTL_CSSD, &cssport);
        if (r < 0) {
                fprintf(stderr, "locusctl: no port for locus-cssd in %s/run/cssd.port: %s\n", st->dir,
                        strerror(-r));
                return r;
        }
        if (ctl_path(st, "cluster.key", key, sizeof(key)) < 0 ||
            ctl_run_file(st, CTL_CSSD, "port", cssportf, sizeof(cssportf)) < 0 ||
            ctl_log_file(st, CTL_MOUNT, log, sizeof(log)) < 0 || ctl_path(st, "run/mountpoint", mp, sizeof(mp)) < 0 ||
            ctl_mount_source(st, source, sizeof(source)) < 0)
                return -ENAMETOOLONG;
        if (st->nsites > 1)
                snprintf(opts, sizeof(opts), "key=%s,css=%s:%u,css_port_file=%s,bind=%s,site=%u", key,
                         ctl_site_addr(st, 1), cssport, cssportf, ctl_site_addr(st, st->site), st->site);
        else
                snprintf(opts, sizeof(opts), "key=%s,css=%s:%u,css_port_file=%s", key, ctl_site_addr(st, 1),
                         cssport, cssportf);
        argv[n++] = (char *)ctl_progs[CTL_MOUNT].bin;
        argv[n++] = source;             /* the fsname: which cluster this is */
        argv[n++] = (char *)dir;
        argv[n++] = "-f";
        argv[n++] = "-o";
        argv[n++] = opts;
        argv[n++] = "--ready-fd";
        argv[n++] = "3";
        argv[n] = NULL;
        r = ctl_spawn(bin, argv, log, timeout_s * 1000, ret_pid, info, sizeof(info), how, sizeof(how));
        if (r < 0) {
                report_failure(st, CTL_MOUNT, how);
                return r;
        }
        write_num(st, CTL_MOUNT, "pid", *ret_pid);
        if (st->nsites == 1) {
                /* several sites: dev up records DIR, the parent of the sites' mounts */
                r = cm_write_file(mp, dir);
                if (r < 0)
                        fprintf(stderr, "locusctl: %s: %s\n", mp, strerror(-r));
                printf("started locusfs-mount (pid %d, log %s)\n", (int)*ret_pid, log);
        } else {
                printf("site %u: started locusfs-mount on %s (pid %d, log %s)\n", st->site, dir, (int)*ret_pid,
                       log);
        }
        return 0;
}

/*
 * Is the LocusFS mount at dir (absolute) this cluster's?  Yes when its
 * source is ours ("locusfs:STATE"); no when it names another state
 * directory (ret_other->dir gets it, else ""); a source of another form
 * (a mount made by hand) is ours only if dir is where this cluster was
 * mounted (rec).  Not a LocusFS mount at all: *ret_locus false, and
 * nothing to own.
 */
static bool mount_is_ours(const struct ctl_state *st, const char *dir, const char *rec, bool *ret_locus,
                          struct ctl_state *ret_other)
{
        const size_t pl = strlen(CTL_SOURCE_PREFIX);
        char src[PATH_MAX + 16], ours[PATH_MAX + 16];
        bool any, locus;

        memset(ret_other, 0, sizeof(*ret_other));
        ctl_mount_info(dir, &any, &locus, src, sizeof(src));
        *ret_locus = locus;
        if (!locus)
                return true;
        if (ctl_mount_source(st, ours, sizeof(ours)) == 0 && !strcmp(src, ours))
                return true;
        if (!strncmp(src, CTL_SOURCE_PREFIX, pl) && src[pl] == '/' && strlen(src + pl) < sizeof(ret_other->dir)) {
                memcpy(ret_other->dir, src + pl, strlen(src + pl) + 1);
                ret_other->exists = true;
                return false;
        }
        return rec && !strcmp(rec, dir);
}

/*
 * Does directory dir hold anything?  0 when empty; 1 (one entry) or 2
 * (more) with the first name in name; < 0 when it cannot be listed.
 */
static int first_entry(const char *dir, char *name, size_t cap)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        int n = 0;

        if (!d)
                return -errno;
        errno = 0;
        while (n < 2 && (e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                if (n++ == 0)
                        snprintf(name, cap, "%s", e->d_name);
        }
        n = n == 0 && errno ? -errno : n;
        closedir(d);
        return n;
}

/* ---- clusters of several sites ----------------------------------------------------- */

/*
 * How many sites and where: --sites N and --addrs A,B,... for a new
 * cluster (default one site; site k at 127.0.0.k), what STATE/sites says
 * for an existing one (the options, if given, must agree).  0, or an exit
 * status (reported).
 */
static int choose_sites(const struct ctl_opts *o, struct ctl_state *st)
{
        char key[PATH_MAX], list[CTL_MAX_SITES * CTL_ADDR_MAX];
        bool made = ctl_path(st, "cluster.key", key, sizeof(key)) == 0 && access(key, F_OK) == 0;
        char addrs[CTL_MAX_SITES][CTL_ADDR_MAX];
        unsigned n = 0, given = 0;
        char *end;

        if (o->sites) {
                unsigned long v;

                errno = 0;
                v = strtoul(o->sites, &end, 10);
                if (errno || *end || !*o->sites || v < 1 || v > CTL_MAX_SITES) {
                        fprintf(stderr, "locusctl dev up: --sites %s: a number from 1 to %u\n", o->sites,
                                CTL_MAX_SITES);
                        return 2;
                }
                given = (unsigned)v;
        }
        if (o->addrs) {
                char *save = NULL, *a;

                if (strlen(o->addrs) >= sizeof(list)) {
                        fprintf(stderr, "locusctl dev up: --addrs: too long\n");
                        return 2;
                }
                snprintf(list, sizeof(list), "%s", o->addrs);
                for (a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
                        unsigned char bin[16];

                        if (n >= CTL_MAX_SITES || strlen(a) >= CTL_ADDR_MAX || inet_pton(AF_INET, a, bin) != 1) {
                                fprintf(stderr, "locusctl dev up: --addrs: '%s' is not a numeric IPv4 address (at "
                                        "most %u)\n", a, CTL_MAX_SITES);
                                return 2;
                        }
                        for (unsigned i = 0; i < n; i++)
                                if (!strcmp(addrs[i], a)) {
                                        fprintf(stderr, "locusctl dev up: --addrs: %s is given twice\n", a);
                                        return 2;
                                }
                        snprintf(addrs[n++], CTL_ADDR_MAX, "%s", a);
                }
                if (given && given != n) {
                        fprintf(stderr, "locusctl dev up: --sites %u but %u address(es) in --addrs\n", given, n);
                        return 2;
                }
                given = n;
        }
        if (made) {
                /* an existing cluster: it keeps what it was made with */
                if (given && given != st->nsites) {
                        fprintf(stderr, "locusctl: the dev cluster in %s has %u site(s); it cannot be restarted "
                                "with %u (omit --sites, or use another --state)\n", st->dir, st->nsites, given);
                        return 1;
                }
                for (unsigned i = 0; o->addrs && i < n; i++)
                        if (strcmp(addrs[i], st->addrs[i]) != 0) {
                                fprintf(stderr, "locusctl: the dev cluster in %s has site %u at %s, not %s (its "
                                        "addresses are in %s/sites)\n", st->dir, i + 1, st->addrs[i], addrs[i],
                                        st->dir);
                                return 1;
                        }
                return 0;
        }
        st->nsites = given ? given : 1;
        for (unsigned k = 1; k <= st->nsites; k++) {
                if (o->addrs)
                        snprintf(st->addrs[k - 1], CTL_ADDR_MAX, "%s", addrs[k - 1]);
                else
                        snprintf(st->addrs[k - 1], CTL_ADDR_MAX, "127.0.0.%u", k);
        }
        return 0;
}

/* DIR/s<k> */
static int site_mountdir(const char *dir, unsigned k, char *buf, size_t cap)
{
        size_t len = strlen(dir);
        char tail[16];
        int n = snprintf(tail, sizeof(tail), "/s%u", k);

        if (n < 0 || len + (size_t)n >= cap)
                return -ENAMETOOLONG;
        memcpy(buf, dir, len);
        memcpy(buf + len, tail, (size_t)n + 1);
        return 0;
}

static bool prog_alive(const struct ctl_state *st, enum ctl_prog_id p, pid_t *ret_pid)
{
        return ctl_read_pid(st, p, ret_pid) == 0 && ctl_alive(*ret_pid, ctl_progs[p].bin);
}

/* What dev_up_sites started, per site, to stop it again on failure. */
struct started_sites {
        pid_t pid[CTL_MAX_SITES + 1][CTL_NPROGS];
        char mountdir[CTL_MAX_SITES + 1][PATH_MAX];
};

static void undo_sites(const struct ctl_state *st, struct started_sites *s)
{
        for (unsigned k = st->nsites; k >= 1; k--) {
                struct ctl_state at;
                struct started one;

                ctl_state_at(st, k, &at);
                memset(&one, 0, sizeof(one));
                memcpy(one.pid, s->pid[k], sizeof(one.pid));
                one.mountdir = s->mountdir[k][0] ? s->mountdir[k] : NULL;
                undo(&at, &one);
        }
}

/*
 * dev up of a cluster of several sites: site 1's locus-cssd (the CSS of
 * every file group in this phase), a locus-storaged per site, a mount per
 * site at DIR/s<k>; each program bound to its site's address.  As with
 * one site, what runs already is left alone, and what this command
 * started is stopped again if a later step fails.
 */
static int dev_up_sites(const struct ctl_opts *o, struct ctl_state *st)
{
        static struct started_sites s;
        char dir[PATH_MAX], mp[PATH_MAX], file[PATH_MAX], hint[3 * PATH_MAX], rec[PATH_MAX] = "";
        struct ctl_state at, other;
        struct statfs sf;
        bool locus;
        pid_t pid;
        uint16_t port;
        int r;

        memset(&s, 0, sizeof(s));
        r = ctl_abspath(o->pos[0], dir, sizeof(dir));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s: %s\n", o->pos[0], strerror(-r));
                return 1;
        }
        if (ctl_path(st, "run/mountpoint", file, sizeof(file)) == 0 && cm_read_file(file, rec, sizeof(rec)) < 0)
                rec[0] = 0;
        if (rec[0] && strcmp(rec, dir) != 0) {
                for (unsigned k = 1; k <= st->nsites; k++) {
                        ctl_state_at(st, k, &at);
                        if (prog_alive(&at, CTL_MOUNT, &pid)) {
                                fprintf(stderr, "locusctl: the cluster in %s is mounted under %s already; stop it "
                                        "first: %s\n", st->dir, rec, ctl_hint(st, "down", rec, hint, sizeof(hint)));
                                return 1;
                        }
                }
        }
        /* Every refusal before anything is made: another cluster's mounts. */
        for (unsigned k = 1; k <= st->nsites; k++) {
                if (site_mountdir(dir, k, mp, sizeof(mp)) < 0) {
                        fprintf(stderr, "locusctl: %s: path too long\n", dir);
                        return 1;
                }
                if (!mount_is_ours(st, mp, NULL, &locus, &other) && locus) {
                        fprintf(stderr, "locusctl: %s is a LocusFS mount that the state directory %s did not "
                                "make%s%s; nothing was done\n", mp, st->dir, other.exists ? " (its cluster is in " : "",
                                other.exists ? other.dir : "");
                        if (other.exists)
                                fprintf(stderr, ")\n");
                        return 1;
                }
        }
        if (!st->exists)
                printf("new dev cluster of %u sites in %s\n", st->nsites, st->dir);
        r = state_init(st);
        if (r < 0)
                return 1;
        st->exists = true;
        r = cm_mkdir_p(dir, 0755);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot create %s: %s\n", dir, strerror(-r));
                return 1;
        }
        r = cm_write_file(file, dir);
        if (r < 0) {
                fprintf(stderr, "locusctl: %s: %s\n", file, strerror(-r));
                return 1;
        }
        /* The CSS: site 1's (docs/cluster.md, "Phase 1: one CSS"). */
        ctl_state_at(st, 1, &at);
        if (prog_alive(&at, CTL_CSSD, &pid)) {
                printf("site 1: locus-cssd is running (pid %d)\n", (int)pid);
        } else {
                r = start_daemon(&at, CTL_CSSD, o->timeout_s, false, &s.pid[1][CTL_CSSD], &port);
                if (r < 0)
                        goto fail;
        }
        for (unsigned k = 1; k <= st->nsites; k++) {
                ctl_state_at(st, k, &at);
                if (prog_alive(&at, CTL_STORAGED, &pid)) {
                        printf("site %u: locus-storaged is running (pid %d)\n", k, (int)pid);
                        continue;
                }
                r = start_daemon(&at, CTL_STORAGED, o->timeout_s, site_fresh(&at), &s.pid[k][CTL_STORAGED], &port);
                if (r < 0)
                        goto fail;
        }
        r = wait_root_served(st, o->timeout_s);
        if (r < 0)
                goto fail;
        for (unsigned k = 1; k <= st->nsites; k++) {
                bool alive, mounted;

                ctl_state_at(st, k, &at);
                site_mountdir(dir, k, mp, sizeof(mp));
                alive = prog_alive(&at, CTL_MOUNT, &pid);
                mounted = ctl_is_mounted(mp);
                if (alive && mounted) {
                        printf("site %u: %s is mounted (locusfs-mount pid %d)\n", k, mp, (int)pid);
                        continue;
                }
                if (alive) {
                        printf("site %u: locusfs-mount (pid %d) runs but %s is not its mount point: stopping it\n",
                               k, (int)pid, mp);
                        stop_prog(&at, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                }
                if (mounted) {
                        printf("site %u: %s: the mount's process is gone: cleaning the stale mount point\n", k, mp);
                        r = unmount_dir(mp);
                        if (r < 0)
                                goto fail;
                }
                r = cm_mkdir_p(mp, 0755);
                if (r < 0) {
                        fprintf(stderr, "locusctl: cannot create the mount point %s: %s\n", mp, strerror(-r));
                        goto fail;
                }
                r = start_mount(&at, mp, o->timeout_s, &s.pid[k][CTL_MOUNT]);
                if (r < 0)
                        goto fail;
                snprintf(s.mountdir[k], sizeof(s.mountdir[k]), "%s", mp);
                r = !ctl_is_mounted(mp) ? -EIO : statfs(mp, &sf) < 0 ? -errno : sf.f_type != FUSE_SUPER_MAGIC ? -EIO : 0;
                if (r < 0) {
                        fprintf(stderr, "locusctl: %s is not a usable LocusFS mount: %s\n", mp, strerror(-r));
                        report_failure(&at, CTL_MOUNT, "is not serving the mount");
                        goto fail;
                }
        }
        printf("dev cluster of %u sites in %s is up: mounts %s/s1 .. %s/s%u\n", st->nsites, st->dir, dir, dir,
               st->nsites);
        return 0;
fail:
        undo_sites(st, &s);
        return 1;
}

/* dev down of a cluster of several sites: every mount, every storaged, the cssd. */
static int dev_down_sites(const struct ctl_opts *o, const struct ctl_state *st, const char *dir, const char *rec)
{
        char mp[PATH_MAX], file[PATH_MAX], hint[3 * PATH_MAX];
        struct ctl_state at, other;
        bool any = false, locus;
        pid_t pid;
        int ret = 0;

        if (!rec[0] || strcmp(rec, dir) != 0) {
                if (rec[0])
                        fprintf(stderr, "locusctl: %s is not where the dev cluster in %s is mounted (%s/s1 .. "
                                "s%u); nothing was done\nlocusctl: to stop it: %s\n", dir, st->dir, rec, st->nsites,
                                ctl_hint(st, "down", rec, hint, sizeof(hint)));
                else
                        fprintf(stderr, "locusctl: the dev cluster in %s is not mounted under %s (no record in "
                                "%s/run/mountpoint); nothing was done\n", st->dir, dir, st->dir);
                return 1;
        }
        for (unsigned k = st->nsites; k >= 1; k--) {
                ctl_state_at(st, k, &at);
                if (site_mountdir(dir, k, mp, sizeof(mp)) == 0 && mount_is_ours(st, mp, mp, &locus, &other) &&
                    locus) {
                        any = true;
                        if (unmount_dir(mp) < 0)
                                ret = 1;
                }
                if (prog_alive(&at, CTL_MOUNT, &pid)) {
                        any = true;
                        if (ctl_wait_gone(pid, o->timeout_s * 1000) == 0) {
                                printf("site %u: locusfs-mount (pid %d) ended\n", k, (int)pid);
                                remove_run_file(&at, CTL_MOUNT, "pid");
                        } else {
                                stop_prog(&at, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                        }
                } else {
                        remove_run_file(&at, CTL_MOUNT, "pid");
                }
        }
        for (unsigned k = st->nsites; k >= 1; k--) {
                ctl_state_at(st, k, &at);
                if (prog_alive(&at, CTL_STORAGED, &pid)) {
                        any = true;
                        stop_prog(&at, CTL_STORAGED, pid, CTL_STOP_TIMEOUT_MS);
                        if (ctl_alive(pid, ctl_progs[CTL_STORAGED].bin))
                                ret = 1;
                } else {
                        remove_run_file(&at, CTL_STORAGED, "pid");
                }
        }
        ctl_state_at(st, 1, &at);
        if (prog_alive(&at, CTL_CSSD, &pid)) {
                any = true;
                stop_prog(&at, CTL_CSSD, pid, CTL_STOP_TIMEOUT_MS);
                if (ctl_alive(pid, ctl_progs[CTL_CSSD].bin))
                        ret = 1;
        } else {
                remove_run_file(&at, CTL_CSSD, "pid");
        }
        if (ret == 0 && ctl_path(st, "run/mountpoint", file, sizeof(file)) == 0)
                unlink(file);
        if (!any)
                printf("nothing was running for %s\n", st->dir);
        else if (ret == 0)
                printf("dev cluster of %u sites in %s is down; its data stays (%s brings it back)\n", st->nsites,
                       st->dir, ctl_hint(st, "up", dir, hint, sizeof(hint)));
        return ret;
}

static int dev_up(const struct ctl_opts *o)
{
        struct ctl_state st;
        struct started s;
        char dir[PATH_MAX], rec[PATH_MAX] = "", file[PATH_MAX], hint[3 * PATH_MAX], name[256];
        struct ctl_state other;
        struct stat sb;
        struct statfs sf;
        bool locus;
        pid_t pid;
        uint16_t port;
        int r;

        memset(&s, 0, sizeof(s));
        if (o->npos != 1) {
                fprintf(stderr, "usage: locusctl dev up DIR [--state PATH] [--sites N] [--addrs A,B,...] "
                        "[--timeout SEC] [--force]\n");
                return 2;
        }
        r = ctl_state_resolve(o->state, &st);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot tell where the state directory is: %s (use --state)\n",
                        strerror(-r));
                return 1;
        }
        r = choose_sites(o, &st);
        if (r != 0)
                return r;
        if (strchr(st.dir, ',')) {
                fprintf(stderr, "locusctl: state directory %s: a ',' in the path cannot be passed in the "
                        "mount options; choose another --state\n", st.dir);
                return 1;
        }
        if (st.nsites > 1)
                return dev_up_sites(o, &st);
        r = ctl_abspath(o->pos[0], dir, sizeof(dir));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s: %s\n", o->pos[0], strerror(-r));
                return 1;
        }
        /* Mounted elsewhere already?  (Before anything is made.) */
        if (ctl_path(&st, "run/mountpoint", file, sizeof(file)) == 0 && cm_read_file(file, rec, sizeof(rec)) < 0)
                rec[0] = 0;
        if (rec[0] && strcmp(rec, dir) != 0 && ctl_read_pid(&st, CTL_MOUNT, &pid) == 0 &&
            ctl_alive(pid, ctl_progs[CTL_MOUNT].bin) && ctl_is_mounted(rec)) {
                fprintf(stderr, "locusctl: the cluster in %s is mounted at %s already (locusfs-mount pid %d); "
                        "stop it first: %s\n", st.dir, rec, (int)pid, ctl_hint(&st, "down", rec, hint, sizeof(hint)));
                return 1;
        }
        /* Another cluster's mount? */
        if (!mount_is_ours(&st, dir, rec[0] ? rec : NULL, &locus, &other)) {
                if (other.exists)
                        fprintf(stderr, "locusctl: %s is the mount of the dev cluster in %s; nothing was done\n"
                                "locusctl: to unmount it and stop that cluster: %s\n", dir, other.dir,
                                ctl_hint(&other, "down", dir, hint, sizeof(hint)));
                else
                        fprintf(stderr, "locusctl: %s is a LocusFS mount that the state directory %s did not "
                                "make; nothing was done\n", dir, st.dir);
                return 1;
        }
        /* The mount point: a directory (made if missing), or a mount (checked
         * below, from mountinfo only: a mount point is not looked at while
         * its daemons may be down, it would not answer). */
        if (ctl_is_mounted(dir)) {
                /* nothing to check here */
        } else if (stat(dir, &sb) < 0 && errno == ENOENT) {
                r = cm_mkdir_p(dir, 0755);
                if (r < 0) {
                        fprintf(stderr, "locusctl: cannot create the mount point %s: %s\n", dir, strerror(-r));
                        return 1;
                }
                printf("created mount point %s\n", dir);
        } else if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
                fprintf(stderr, "locusctl: mount point %s is not a directory\n", dir);
                return 1;
        } else if (!o->force && (r = first_entry(dir, name, sizeof(name))) != 0) {
                if (r > 0)
                        fprintf(stderr, "locusctl: mount point %s is not empty (it holds '%s'%s): the mount would "
                                "hide its files until the unmount; empty it, choose another directory, or pass "
                                "--force to mount over them\n", dir, name, r > 1 ? " and more" : "");
                else
                        fprintf(stderr, "locusctl: mount point %s: cannot list it: %s (--force mounts without "
                                "looking)\n", dir, strerror(-r));
                return 1;
        }

        if (!st.exists)
                printf("new dev cluster in %s\n", st.dir);
        r = state_init(&st);
        if (r < 0)
                return 1;

        for (enum ctl_prog_id p = CTL_CSSD; p <= CTL_STORAGED; p++) {
                if (ctl_read_pid(&st, p, &pid) == 0 && ctl_alive(pid, ctl_progs[p].bin)) {
                        if (ctl_read_port(&st, p, &port) == 0)
                                printf("%s is running (pid %d, %s:%u)\n", ctl_progs[p].bin, (int)pid,
                                       ctl_site_addr(&st, 1), port);
                        else
                                printf("%s is running (pid %d)\n", ctl_progs[p].bin, (int)pid);
                        continue;
                }
                r = start_daemon(&st, p, o->timeout_s, p == CTL_STORAGED && site_fresh(&st), &s.pid[p], &port);
                if (r < 0)
                        goto fail;
        }
        r = wait_root_served(&st, o->timeout_s);
        if (r < 0)
                goto fail;

        /* The mount: running means the process is there and DIR is its mount point. */
        {
                bool alive = ctl_read_pid(&st, CTL_MOUNT, &pid) == 0 && ctl_alive(pid, ctl_progs[CTL_MOUNT].bin);
                bool mounted = ctl_is_mounted(dir);

                if (alive && mounted) {
                        printf("%s is mounted (locusfs-mount pid %d)\n", dir, (int)pid);
                        return 0;
                }
                if (alive) {
                        printf("locusfs-mount (pid %d) runs but %s is not its mount point: stopping it\n", (int)pid,
                               dir);
                        stop_prog(&st, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                }
                if (mounted) {
                        /* A LocusFS mount whose process is gone: clean the mount point. */
                        if (statfs(dir, &sf) == 0) {
                                fprintf(stderr, "locusctl: %s is a LocusFS mount that this state directory did "
                                        "not start (no live pid in %s/run/mount.pid); unmount it first\n", dir,
                                        st.dir);
                                r = -EBUSY;
                                goto fail;
                        }
                        printf("%s: the mount's process is gone (%s): cleaning the stale mount point\n", dir,
                               strerror(errno));
                        r = unmount_dir(dir);
                        if (r < 0)
                                goto fail;
                }
        }
        if (stat(dir, &sb) < 0) {
                r = -errno;
                fprintf(stderr, "locusctl: mount point %s: %s\n", dir, strerror(-r));
                goto fail;
        }
        r = start_mount(&st, dir, o->timeout_s, &s.pid[CTL_MOUNT]);
        if (r < 0)
                goto fail;
        s.mountdir = dir;
        /* Usable: the kernel has it, and a request goes through to the storage site. */
        if (!ctl_is_mounted(dir)) {
                fprintf(stderr, "locusctl: locusfs-mount said READY but %s is not a fuse.locusfs mount point\n", dir);
                report_failure(&st, CTL_MOUNT, "is not serving the mount");
                r = -EIO;
                goto fail;
        }
        r = statfs(dir, &sf) < 0 ? -errno : sf.f_type != FUSE_SUPER_MAGIC ? -EIO : 0;
        if (r < 0) {
                fprintf(stderr, "locusctl: %s is mounted but not usable: statfs: %s\n", dir,
                        r == -EIO ? "not a FUSE file system" : strerror(-r));
                report_failure(&st, CTL_MOUNT, "does not answer");
                goto fail;
        }
        printf("%s is mounted (locusfs-mount pid %d, state %s)\n", dir, (int)s.pid[CTL_MOUNT], st.dir);
        return 0;
fail:
        undo(&st, &s);
        return 1;
}

static int dev_down(const struct ctl_opts *o)
{
        struct ctl_state st;
        char dir[PATH_MAX], rec[PATH_MAX] = "", file[PATH_MAX], hint[3 * PATH_MAX];
        struct ctl_state other;
        bool any = false, locus, ours;
        pid_t pid;
        int r, ret = 0;

        if (o->npos != 1) {
                fprintf(stderr, "usage: locusctl dev down DIR [--state PATH] [--timeout SEC]\n");
                return 2;
        }
        r = ctl_state_resolve(o->state, &st);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot tell where the state directory is: %s (use --state)\n",
                        strerror(-r));
                return 1;
        }
        r = ctl_abspath(o->pos[0], dir, sizeof(dir));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s: %s\n", o->pos[0], strerror(-r));
                return 1;
        }
        if (ctl_path(&st, "run/mountpoint", file, sizeof(file)) == 0)
                cm_read_file(file, rec, sizeof(rec));
        if (st.exists && st.nsites > 1)
                return dev_down_sites(o, &st, dir, rec);
        ours = mount_is_ours(&st, dir, rec[0] ? rec : NULL, &locus, &other);
        if (!st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?)\n", st.dir);
                if (other.exists)
                        fprintf(stderr, "locusctl: %s is the mount of the dev cluster in %s: %s\n", dir,
                                other.dir, ctl_hint(&other, "down", dir, hint, sizeof(hint)));
                return 1;
        }
        /*
         * DIR must be this cluster's mount: the one on record, and not a
         * mount of another cluster.  Anything else (a typo, another
         * cluster's mount) is refused before anything is touched: going on
         * would unmount someone else's mount, wait for our mount process to
         * end (it does not: its mount is elsewhere) and then stop our
         * cluster all the same.
         */
        if ((rec[0] && strcmp(rec, dir) != 0) || !ours) {
                if (rec[0])
                        fprintf(stderr, "locusctl: %s is not the mount of the dev cluster in %s, which is "
                                "mounted at %s; nothing was done\n", dir, st.dir, rec);
                else
                        fprintf(stderr, "locusctl: %s is not the mount of the dev cluster in %s; nothing was "
                                "done\n", dir, st.dir);
                if (other.exists)
                        fprintf(stderr, "locusctl: %s is the mount of the dev cluster in %s: %s\n", dir,
                                other.dir, ctl_hint(&other, "down", dir, hint, sizeof(hint)));
                else if (locus)
                        fprintf(stderr, "locusctl: %s is a LocusFS mount that this state directory did not make\n",
                                dir);
                if (rec[0])
                        fprintf(stderr, "locusctl: to stop the cluster in %s: %s\n", st.dir,
                                ctl_hint(&st, "down", rec, hint, sizeof(hint)));
                return 1;
        }

        /* 1. the mount: unmounting ends locusfs-mount by itself */
        if (locus) {
                any = true;
                if (unmount_dir(dir) < 0)
                        ret = 1;
        }
        if (ctl_read_pid(&st, CTL_MOUNT, &pid) == 0 && ctl_alive(pid, ctl_progs[CTL_MOUNT].bin)) {
                any = true;
                if (ctl_wait_gone(pid, o->timeout_s * 1000) == 0) {
                        printf("locusfs-mount (pid %d) ended\n", (int)pid);
                        remove_run_file(&st, CTL_MOUNT, "pid");
                } else {
                        printf("locusfs-mount (pid %d) still runs %d s after the unmount (it serves a lazily "
                               "detached mount, or hangs): stopping it; processes still using the mount get "
                               "errors\n", (int)pid, o->timeout_s);
                        stop_prog(&st, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                }
        } else {
                remove_run_file(&st, CTL_MOUNT, "pid");
        }
        /* 2. the daemons, storage first (it flushes; the CSS keeps nothing unsaved) */
        for (int p = CTL_STORAGED; p >= CTL_CSSD; p--) {
                if (ctl_read_pid(&st, (enum ctl_prog_id)p, &pid) == 0 && ctl_alive(pid, ctl_progs[p].bin)) {
                        any = true;
                        stop_prog(&st, (enum ctl_prog_id)p, pid, o->timeout_s * 1000 < CTL_STOP_TIMEOUT_MS ?
                                  o->timeout_s * 1000 : CTL_STOP_TIMEOUT_MS);
                        if (ctl_alive(pid, ctl_progs[p].bin))
                                ret = 1;
                } else {
                        remove_run_file(&st, (enum ctl_prog_id)p, "pid");
                }
        }
        if (ctl_path(&st, "run/mountpoint", file, sizeof(file)) == 0 && ret == 0)
                unlink(file);
        if (!any)
                printf("nothing was running for %s\n", st.dir);
        else if (ret == 0)
                printf("dev cluster in %s is down; its data stays (%s brings it back)\n", st.dir,
                       ctl_hint(&st, "up", dir, hint, sizeof(hint)));
        return ret;
}

int ctl_cmd_dev(int argc, char **argv)
{
        struct ctl_opts o;

        if (argc < 2 || (strcmp(argv[1], "up") != 0 && strcmp(argv[1], "down") != 0)) {
                fprintf(stderr, "usage: locusctl dev up DIR [--state PATH] [--sites N] [--addrs A,B,...] "
                                "[--timeout SEC] [--force]\n"
                                "       locusctl dev down DIR [--state PATH] [--timeout SEC]\n");
                return 2;
        }
        if (!strcmp(argv[1], "up")) {
                if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_STATE | CTL_OPT_SITES | CTL_OPT_ADDRS | CTL_OPT_TIMEOUT |
                                   CTL_OPT_FORCE, 1, &o) < 0)
                        return 2;
                return dev_up(&o);
        }
        if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_STATE | CTL_OPT_TIMEOUT, 1, &o) < 0)
                return 2;
        return dev_down(&o);
}

/* ---- fsck --rebuild ------------------------------------------------------------ */

int ctl_cmd_fsck(int argc, char **argv)
{
        struct ctl_opts o;
        struct ctl_state st;
        char bin[PATH_MAX], where[PATH_MAX + 64], data[PATH_MAX], log[PATH_MAX], hint[3 * PATH_MAX];
        bool was_running;
        pid_t pid = 0, child;
        uint16_t port;
        int r, status;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_REBUILD | CTL_OPT_TIMEOUT, 0, &o) < 0)
                return 2;
        if (!o.rebuild) {
                fprintf(stderr, "usage: locusctl fsck --rebuild [--state PATH] [--timeout SEC]\n"
                                "(rebuilding the metadata index from the segments is the check this version does)\n");
                return 2;
        }
        r = ctl_state_resolve(o.state, &st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s\n", r < 0 ? "(unknown)" : st.dir);
                return 1;
        }
        r = ctl_find_bin(CTL_STORAGED, bin, sizeof(bin), where, sizeof(where));
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot find locus-storaged (looked in %s); set LOCUS_BIN_DIR\n", where);
                return 1;
        }
        if (ctl_path(&st, "site1/data", data, sizeof(data)) < 0 || ctl_log_file(&st, CTL_STORAGED, log, sizeof(log)) < 0)
                return 1;
        was_running = ctl_read_pid(&st, CTL_STORAGED, &pid) == 0 && ctl_alive(pid, ctl_progs[CTL_STORAGED].bin);
        if (was_running) {
                bool killed;

                fprintf(stderr, "locusctl: stopping locus-storaged (pid %d)\n", (int)pid);
                r = ctl_stop(pid, ctl_progs[CTL_STORAGED].bin, CTL_STOP_TIMEOUT_MS, &killed);
                if (r < 0) {
                        fprintf(stderr, "locusctl: locus-storaged (pid %d) does not stop; nothing rebuilt\n", (int)pid);
                        return 1;
                }
                if (killed)
                        fprintf(stderr, "locusctl: locus-storaged did not stop within %d s of SIGTERM: killed "
                                "with SIGKILL (the rebuild replays its log)\n", CTL_STOP_TIMEOUT_MS / 1000);
                remove_run_file(&st, CTL_STORAGED, "pid");
        }
        fprintf(stderr, "locusctl: rebuilding the metadata of %s from its segments: %s --data %s --rebuild\n",
                data, bin, data);
        fflush(NULL);
        child = fork();
        if (child < 0) {
                fprintf(stderr, "locusctl: fork: %s\n", strerror(errno));
                return 1;
        }
        if (child == 0) {
                int nul = open("/dev/null", O_RDONLY);

                if (nul < 0 || dup2(nul, 0) < 0 || dup2(2, 1) < 0)
                        _exit(127);
                ctl_close_from(3);
                signal(SIGPIPE, SIG_DFL);
                execl(bin, "locus-storaged", "--data", data, "--rebuild", (char *)NULL);
                fprintf(stderr, "locusctl: cannot execute %s: %s\n", bin, strerror(errno));
                _exit(127);
        }
        while (waitpid(child, &status, 0) < 0) {
                if (errno != EINTR) {
                        fprintf(stderr, "locusctl: waiting for the rebuild: %s\n", strerror(errno));
                        return 1;
                }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (WIFEXITED(status))
                        fprintf(stderr, "locusctl: the rebuild of %s failed (locus-storaged exited with status %d, "
                                "its messages are above)\n", data, WEXITSTATUS(status));
                else
                        fprintf(stderr, "locusctl: the rebuild of %s failed (locus-storaged killed by signal %d)\n",
                                data, WTERMSIG(status));
                fprintf(stderr, "locusctl: locus-storaged is left stopped; this starts it again: %s\n",
                        ctl_hint(&st, "up", NULL, hint, sizeof(hint)));
                return 1;
        }
        fprintf(stderr, "locusctl: rebuild of %s done\n", data);
        if (!was_running) {
                fprintf(stderr, "locusctl: locus-storaged was not running, so it is left stopped "
                        "(this starts it: %s)\n", ctl_hint(&st, "up", NULL, hint, sizeof(hint)));
                return 0;
        }
        r = start_daemon(&st, CTL_STORAGED, o.timeout_s, false, &pid, &port);
        if (r < 0)
                return 1;
        fprintf(stderr, "locusctl: locus-storaged serves again (pid %d, %s:%u)\n", (int)pid,
                ctl_site_addr(&st, st.site), port);
        return 0;
}
