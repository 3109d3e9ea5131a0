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
                struct ctl_started one;

                ctl_state_cssd_at(st, k, &at);
                memset(&one, 0, sizeof(one));
                memcpy(one.pid, s->pid[k], sizeof(one.pid));
                one.mountdir = s->mountdir[k][0] ? s->mountdir[k] : NULL;
                ctl_undo(&at, &one);
        }
}

/*
 * dev up of a cluster of several sites: site 1's locus-cssd (the CSS of
 * every file group in this phase), then a locus-cssd on every other site
 * (the membership service only, seeded with site 1's), a locus-storaged per site, a mount per
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
                if (!ctl_mount_is_ours(st, mp, NULL, &locus, &other) && locus) {
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
        r = ctl_state_init(st);
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
                r = ctl_start_daemon(&at, CTL_CSSD, o->timeout_s, false, &s.pid[1][CTL_CSSD], &port);
                if (r < 0)
                        goto fail;
        }
        /* Every other site's cssd: membership (docs/cluster.md, "Membership"). */
        for (unsigned k = 2; k <= st->nsites; k++) {
                ctl_state_cssd_at(st, k, &at);
                if (prog_alive(&at, CTL_CSSD, &pid)) {
                        printf("site %u: locus-cssd is running (pid %d)\n", k, (int)pid);
                        continue;
                }
                r = ctl_start_daemon(&at, CTL_CSSD, o->timeout_s, false, &s.pid[k][CTL_CSSD], &port);
                if (r < 0)
                        goto fail;
        }
        for (unsigned k = 1; k <= st->nsites; k++) {
                ctl_state_at(st, k, &at);
                if (prog_alive(&at, CTL_STORAGED, &pid)) {
                        printf("site %u: locus-storaged is running (pid %d)\n", k, (int)pid);
                        continue;
                }
                r = ctl_start_daemon(&at, CTL_STORAGED, o->timeout_s, ctl_site_fresh(&at), &s.pid[k][CTL_STORAGED], &port);
                if (r < 0)
                        goto fail;
        }
        r = ctl_wait_root_served(st, o->timeout_s);
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
                        ctl_stop_prog(&at, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                }
                if (mounted) {
                        printf("site %u: %s: the mount's process is gone: cleaning the stale mount point\n", k, mp);
                        r = ctl_unmount_dir(mp);
                        if (r < 0)
                                goto fail;
                }
                r = cm_mkdir_p(mp, 0755);
                if (r < 0) {
                        fprintf(stderr, "locusctl: cannot create the mount point %s: %s\n", mp, strerror(-r));
                        goto fail;
                }
                r = ctl_start_mount(&at, mp, o->timeout_s, &s.pid[k][CTL_MOUNT]);
                if (r < 0)
                        goto fail;
                snprintf(s.mountdir[k], sizeof(s.mountdir[k]), "%s", mp);
                r = !ctl_is_mounted(mp) ? -EIO : statfs(mp, &sf) < 0 ? -errno : sf.f_type != FUSE_SUPER_MAGIC ? -EIO : 0;
                if (r < 0) {
                        fprintf(stderr, "locusctl: %s is not a usable LocusFS mount: %s\n", mp, strerror(-r));
                        ctl_report_failure(&at, CTL_MOUNT, "is not serving the mount");
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

/* dev down of a cluster of several sites: every mount, every storaged, the
 * cssds (site 1's, the CSS, last). */
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
                if (site_mountdir(dir, k, mp, sizeof(mp)) == 0 && ctl_mount_is_ours(st, mp, mp, &locus, &other) &&
                    locus) {
                        any = true;
                        if (ctl_unmount_dir(mp) < 0)
                                ret = 1;
                }
                if (prog_alive(&at, CTL_MOUNT, &pid)) {
                        any = true;
                        if (ctl_wait_gone(pid, o->timeout_s * 1000) == 0) {
                                printf("site %u: locusfs-mount (pid %d) ended\n", k, (int)pid);
                                ctl_remove_run_file(&at, CTL_MOUNT, "pid");
                        } else {
                                ctl_stop_prog(&at, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                        }
                } else {
                        ctl_remove_run_file(&at, CTL_MOUNT, "pid");
                }
        }
        for (unsigned k = st->nsites; k >= 1; k--) {
                ctl_state_at(st, k, &at);
                if (prog_alive(&at, CTL_STORAGED, &pid)) {
                        any = true;
                        ctl_stop_prog(&at, CTL_STORAGED, pid, CTL_STOP_TIMEOUT_MS);
                        if (ctl_alive(pid, ctl_progs[CTL_STORAGED].bin))
                                ret = 1;
                } else {
                        ctl_remove_run_file(&at, CTL_STORAGED, "pid");
                }
        }
        for (unsigned k = st->nsites; k >= 1; k--) {
                ctl_state_cssd_at(st, k, &at);
                if (prog_alive(&at, CTL_CSSD, &pid)) {
                        any = true;
                        ctl_stop_prog(&at, CTL_CSSD, pid, CTL_STOP_TIMEOUT_MS);
                        if (ctl_alive(pid, ctl_progs[CTL_CSSD].bin))
                                ret = 1;
                } else {
                        ctl_remove_run_file(&at, CTL_CSSD, "pid");
                }
        }
        /* a dev partition in effect would cut the next dev up apart */
        if (ctl_net_heal(st, true) < 0)
                ret = 1;
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
        struct ctl_started s;
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
        if (!ctl_mount_is_ours(&st, dir, rec[0] ? rec : NULL, &locus, &other)) {
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
        r = ctl_state_init(&st);
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
                r = ctl_start_daemon(&st, p, o->timeout_s, p == CTL_STORAGED && ctl_site_fresh(&st), &s.pid[p], &port);
                if (r < 0)
                        goto fail;
        }
        r = ctl_wait_root_served(&st, o->timeout_s);
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
                        ctl_stop_prog(&st, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
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
                        r = ctl_unmount_dir(dir);
                        if (r < 0)
                                goto fail;
                }
        }
        if (stat(dir, &sb) < 0) {
                r = -errno;
                fprintf(stderr, "locusctl: mount point %s: %s\n", dir, strerror(-r));
                goto fail;
        }
        r = ctl_start_mount(&st, dir, o->timeout_s, &s.pid[CTL_MOUNT]);
        if (r < 0)
                goto fail;
        s.mountdir = dir;
        /* Usable: the kernel has it, and a request goes through to the storage site. */
        if (!ctl_is_mounted(dir)) {
                fprintf(stderr, "locusctl: locusfs-mount said READY but %s is not a fuse.locusfs mount point\n", dir);
                ctl_report_failure(&st, CTL_MOUNT, "is not serving the mount");
                r = -EIO;
                goto fail;
        }
        r = statfs(dir, &sf) < 0 ? -errno : sf.f_type != FUSE_SUPER_MAGIC ? -EIO : 0;
        if (r < 0) {
                fprintf(stderr, "locusctl: %s is mounted but not usable: statfs: %s\n", dir,
                        r == -EIO ? "not a FUSE file system" : strerror(-r));
                ctl_report_failure(&st, CTL_MOUNT, "does not answer");
                goto fail;
        }
        printf("%s is mounted (locusfs-mount pid %d, state %s)\n", dir, (int)s.pid[CTL_MOUNT], st.dir);
        return 0;
fail:
        ctl_undo(&st, &s);
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
        ours = ctl_mount_is_ours(&st, dir, rec[0] ? rec : NULL, &locus, &other);
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
                if (ctl_unmount_dir(dir) < 0)
                        ret = 1;
        }
        if (ctl_read_pid(&st, CTL_MOUNT, &pid) == 0 && ctl_alive(pid, ctl_progs[CTL_MOUNT].bin)) {
                any = true;
                if (ctl_wait_gone(pid, o->timeout_s * 1000) == 0) {
                        printf("locusfs-mount (pid %d) ended\n", (int)pid);
                        ctl_remove_run_file(&st, CTL_MOUNT, "pid");
                } else {
                        printf("locusfs-mount (pid %d) still runs %d s after the unmount (it serves a lazily "
                               "detached mount, or hangs): stopping it; processes still using the mount get "
                               "errors\n", (int)pid, o->timeout_s);
                        ctl_stop_prog(&st, CTL_MOUNT, pid, CTL_STOP_TIMEOUT_MS);
                }
        } else {
                ctl_remove_run_file(&st, CTL_MOUNT, "pid");
        }
        /* 2. the daemons, storage first (it flushes; the CSS keeps nothing unsaved) */
        for (int p = CTL_STORAGED; p >= CTL_CSSD; p--) {
                if (ctl_read_pid(&st, (enum ctl_prog_id)p, &pid) == 0 && ctl_alive(pid, ctl_progs[p].bin)) {
                        any = true;
                        ctl_stop_prog(&st, (enum ctl_prog_id)p, pid, o->timeout_s * 1000 < CTL_STOP_TIMEOUT_MS ?
                                  o->timeout_s * 1000 : CTL_STOP_TIMEOUT_MS);
                        if (ctl_alive(pid, ctl_progs[p].bin))
                                ret = 1;
                } else {
                        ctl_remove_run_file(&st, (enum ctl_prog_id)p, "pid");
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

        if (argc >= 2 && (!strcmp(argv[1], "partition") || !strcmp(argv[1], "heal")))
                return ctl_cmd_dev_net(argc - 1, argv + 1);
        if (argc < 2 || (strcmp(argv[1], "up") != 0 && strcmp(argv[1], "down") != 0)) {
                fprintf(stderr, "usage: locusctl dev up DIR [--state PATH] [--sites N] [--addrs A,B,...] "
                                "[--timeout SEC] [--force]\n"
                                "       locusctl dev down DIR [--state PATH] [--timeout SEC]\n"
                                "       locusctl dev partition DIR SPEC [--state PATH]   (SPEC: e.g. 1,2/3)\n"
                                "       locusctl dev heal DIR [--state PATH]\n");
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
                ctl_remove_run_file(&st, CTL_STORAGED, "pid");
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
        r = ctl_start_daemon(&st, CTL_STORAGED, o.timeout_s, false, &pid, &port);
        if (r < 0)
                return 1;
        fprintf(stderr, "locusctl: locus-storaged serves again (pid %d, %s:%u)\n", (int)pid,
                ctl_site_addr(&st, st.site), port);
        return 0;
}
