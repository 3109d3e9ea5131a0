/*
 * ctl_start.c -- the programs of a dev cluster's sites: the state layout
 * (ctl_state_init), starting a site's daemons and its mount bound to the
 * site's address, waiting until every storage site registered, stopping
 * and unmounting with a report, and whose a mount is.  See ctl.h; the
 * commands that use them are in ctl_dev.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"
#include "ctl.h"

void ctl_remove_run_file(const struct ctl_state *st, enum ctl_prog_id p, const char *ext)
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
int ctl_state_init(const struct ctl_state *st)
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
bool ctl_site_fresh(const struct ctl_state *st)
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

void ctl_report_failure(const struct ctl_state *st, enum ctl_prog_id p, const char *how)
{
        char log[PATH_MAX];

        fprintf(stderr, "locusctl: %s %s\n", ctl_progs[p].bin, how);
        if (ctl_log_file(st, p, log, sizeof(log)) == 0) {
                fprintf(stderr, "locusctl: last lines of %s:\n", log);
                ctl_print_tail(stderr, log, CTL_LOG_TAIL);
        }
}

/* Unmount (lazily if busy) and say what happened. */
int ctl_unmount_dir(const char *dir)
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

void ctl_stop_prog(const struct ctl_state *st, enum ctl_prog_id p, pid_t pid, int timeout_ms)
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
                ctl_remove_run_file(st, p, "pid");
}

/* Stop what this invocation started, newest first. */
void ctl_undo(const struct ctl_state *st, struct ctl_started *s)
{
        for (int p = CTL_NPROGS - 1; p >= 0; p--) {
                if (!s->pid[p])
                        continue;
                if (p == CTL_MOUNT && s->mountdir && ctl_is_mounted(s->mountdir))
                        ctl_unmount_dir(s->mountdir);
                fprintf(stderr, "locusctl: stopping %s (pid %d), started by this command\n", ctl_progs[p].bin,
                        (int)s->pid[p]);
                ctl_stop_prog(st, (enum ctl_prog_id)p, s->pid[p], CTL_STOP_TIMEOUT_MS);
                s->pid[p] = 0;
        }
}

/*
 * Start daemon p (cssd or storaged) of site st->site (the cssd: site 1's,
 * unless st->own_cssd: then site st->site's, which reaches site 1's cssd
 * first: --seed) with its usual arguments, on its previous port if it had one, bound to
 * the site's address; create_root: the storaged creates the root file
 * group (the cluster's first start).  0 with *ret_pid and *ret_port, or
 * < 0 (reported).
 */
int ctl_start_daemon(const struct ctl_state *st, enum ctl_prog_id p, int timeout_s, bool create_root,
                        pid_t *ret_pid, uint16_t *ret_port)
{
        char bin[PATH_MAX], where[PATH_MAX + 64], key[PATH_MAX], dir[PATH_MAX], portf[PATH_MAX], pidf[PATH_MAX],
             cssportf[PATH_MAX], log[PATH_MAX], listen[CTL_ADDR_MAX + 16], css[CTL_ADDR_MAX + 16], info[128],
             how[256], rel[64], sitenum[16], seed[CTL_ADDR_MAX + 16] = "";
        unsigned k = p == CTL_CSSD && !st->own_cssd ? 1 : st->site;
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
        if (p == CTL_CSSD && k > 1) {
                struct ctl_state one;
                uint16_t sp;

                /* the CSS (site 1's cssd) is the other sites' seed: membership */
                ctl_state_at(st, 1, &one);
                one.own_cssd = false;
                if (ctl_read_port(&one, CTL_CSSD, &sp) == 0)
                        snprintf(seed, sizeof(seed), "%s:%u", ctl_site_addr(st, 1), sp);
        }
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
                if (seed[0]) {
                        argv[n++] = "--seed";
                        argv[n++] = seed;
                }
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
                ctl_report_failure(st, p, how);
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
int ctl_wait_root_served(const struct ctl_state *st, int timeout_s)
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
                        ctl_report_failure(st, CTL_STORAGED, "is not registered with the CSS");
                        ctl_report_failure(st, CTL_CSSD, "has no storage site for the root file group");
                        return -ETIMEDOUT;
                }
                nanosleep(&ts, NULL);
        }
}

int ctl_start_mount(const struct ctl_state *st, const char *dir, int timeout_s, pid_t *ret_pid)
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
                ctl_report_failure(st, CTL_MOUNT, how);
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
bool ctl_mount_is_ours(const struct ctl_state *st, const char *dir, const char *rec, bool *ret_locus,
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

