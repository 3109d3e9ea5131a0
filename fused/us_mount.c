/*
 * us_mount.c -- see us_mount.h.
 */
#include "us_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_key.h"
#include "us_core.h"
#include "us_opt.h"
#include "us_ops.h"
#include "us_watch.h"

#define PROG "locusfs-mount"

/* An absolute version of path (which may not exist yet), malloc'ed. */
static char *absolute(const char *path)
{
        char cwd[PATH_MAX];
        char *r;

        if (path[0] == '/')
                return strdup(path);
        if (!getcwd(cwd, sizeof(cwd)))
                return NULL;
        if (asprintf(&r, "%s/%s", cwd, path) < 0)
                return NULL;
        return r;
}
/*
 * Reads ahead by 1 MiB instead of the 128 KiB a FUSE mount gets: FUSE's
 * init can only lower the readahead of the mount's device, not raise it,
 * and sequential reads of a network filesystem are latency-bound at 128 KiB
 * a request.  The device is found in /proc/self/mountinfo (a stat of the
 * mount point would ask this very process, which does not serve yet).
 * Best effort: it needs root, and nothing depends on it.
 */
#define US_READAHEAD_KB "1024"

static void set_readahead(const char *mnt)
{
        char line[4096], dev[32] = "", path[PATH_MAX];
        FILE *f = fopen("/proc/self/mountinfo", "re");
        int fd;

        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char majmin[32], mp[PATH_MAX], *o = mp;

                if (sscanf(line, "%*s %*s %31s %*s %4095s", majmin, mp) != 2)
                        continue;
                /* mountinfo escapes space, tab, newline and backslash as \ooo */
                for (char *i = mp; *i; i++, o++) {
                        if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] && i[3]) {
                                *o = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
                                i += 3;
                        } else {
                                *o = *i;
                        }
                }
                *o = 0;
                if (!strcmp(mp, mnt))
                        snprintf(dev, sizeof(dev), "%s", majmin);       /* the last one wins */
        }
        fclose(f);
        if (!dev[0])
                return;
        snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, US_READAHEAD_KB, strlen(US_READAHEAD_KB)) < 0)
                cm_log(LOG_DEBUG, "%s: cannot set readahead (%s): %s", mnt, path, strerror(errno));
        if (fd >= 0)
                close(fd);
}


int us_main(int argc, char **argv)
{
        struct us_config cfg;
        struct us_core_opts co;
        struct us_fs fs = { 0 };
        struct fuse_session *se = NULL;
        struct fuse_loop_config *lc = NULL;
        uint8_t key[LP_KEY_SIZE];
        char *mnt = NULL, *portfile = NULL;
        struct us_ctx ctx;
        int r, status = US_EXIT_FAIL;
        bool mounted = false, handlers = false;

        r = us_opt_parse(argc, argv, geteuid() == 0, &cfg);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", PROG, cfg.err[0] ? cfg.err : strerror(-r));
                fprintf(stderr, "Try '%s --help'.\n", PROG);
                us_opt_free(&cfg);
                return US_EXIT_USAGE;
        }
        if (cfg.show_help) {
                us_opt_usage(PROG);
                printf("FUSE options:\n");
                fuse_cmdline_help();
                fuse_lowlevel_help();
                us_opt_free(&cfg);
                return US_EXIT_OK;
        }
        if (cfg.show_version) {
                printf("%s (LocusFS) 0.1.0\nFUSE library version %s\n", PROG,
                       fuse_pkgversion());
                fuse_lowlevel_version();
                us_opt_free(&cfg);
                return US_EXIT_OK;
        }

        cm_log_init(PROG, cfg.log_level, cfg.use_syslog ? CM_LOG_SYSLOG : CM_LOG_STDERR);
        fuse_set_log_func(us_fuse_log);
        /* bind=: every connection leaves from the site's address (checked by us_opt_parse). */
        if (cfg.bind[0] && lp_client_set_source(cfg.bind) < 0) {
                cm_log(LOG_ERR, "bind=%s: not a numeric address", cfg.bind);
                status = US_EXIT_USAGE;
                goto out;
        }
        if (cfg.ready_fd >= 0 && fcntl(cfg.ready_fd, F_GETFD) < 0) {
                cm_log(LOG_ERR, "--ready-fd %d: %s", cfg.ready_fd, strerror(errno));
                status = US_EXIT_USAGE;
                goto out;
        }
        if (cfg.ready_fd >= 0)
                fcntl(cfg.ready_fd, F_SETFD, FD_CLOEXEC);

        r = lp_key_load(cfg.key_file, key);
        if (r < 0) {
                cm_log(LOG_ERR, "key=%s: %s", cfg.key_file, lp_key_strerror(r));
                goto out;
        }
        mnt = realpath(cfg.mountpoint, NULL);
        if (!mnt) {
                cm_log(LOG_ERR, "mount point %s: %s", cfg.mountpoint, strerror(errno));
                goto out;
        }
        if (cfg.css_port_file) {
                /* Daemonizing moves us to /: keep the file findable. */
                portfile = absolute(cfg.css_port_file);
                if (!portfile) {
                        cm_log(LOG_ERR, "css_port_file=%s: %s", cfg.css_port_file,
                               strerror(errno));
                        goto out;
                }
        }

        memset(&co, 0, sizeof(co));
        co.timeout_us = cfg.timeout_us;
        co.site = cfg.site;
        snprintf(co.css_host, sizeof(co.css_host), "%s", cfg.css_host);
        co.css_port = cfg.css_port;
        co.css_port_file = portfile;
        co.keeper = true;
        r = us_core_new(&co, key, &fs.core);
        if (r >= 0) {
                struct us_watch_opts wo = { .entry_timeout = (double)cfg.entry_timeout_us / 1e6,
                                            .attr_timeout = (double)cfg.attr_timeout_us / 1e6,
                                            .entry_default = US_ENTRY_TIMEOUT,
                                            .attr_default = US_ATTR_TIMEOUT,
                                            .site = cfg.site };

                r = us_watch_new(fs.core, key, &wo, &fs.watch);
        }
        lp_key_wipe(key, sizeof(key));
        if (r < 0) {
                cm_log(LOG_ERR, "%s", strerror(-r));
                goto out;
        }

        /* The mount table first: without it there is nothing to mount, and
         * failing here leaves no half-made mount behind.  The keeper thread
         * starts later, after the fork of daemonizing. */
        us_ctx_self(fs.core, &ctx);
        r = us_core_refresh_mtab(fs.core, &ctx);
        if (r < 0) {
                if (portfile)
                        cm_log(LOG_ERR, "cannot get the mount table from the CSS at %s "
                               "(port from %s): %s", cfg.css_host, portfile, strerror(-r));
                else
                        cm_log(LOG_ERR, "cannot get the mount table from the CSS at %s:%u: %s",
                               cfg.css_host, cfg.css_port, strerror(-r));
                goto out;
        }
        {
                struct us_site root;

                if (us_mtab_site(us_core_mtab(fs.core), US_ROOT_FG, &root) == -ENOENT) {
                        cm_log(LOG_ERR, "the CSS's mount table has no root file group (1)");
                        goto out;
                }
        }

        fs.writeback = cfg.writeback;
        fs.mnt = mnt;
        se = fuse_session_new(&cfg.args, &us_ops, sizeof(us_ops), &fs);
        if (!se)
                goto out;       /* libfuse said why */
        fs.se = se;
        if (fuse_set_signal_handlers(se) != 0)
                goto out;
        handlers = true;
        if (fuse_session_mount(se, mnt) != 0)
                goto out;
        mounted = true;
        set_readahead(mnt);
        if (portfile)
                cm_log(LOG_INFO, "mounted on %s (CSS %s, port from %s; timeout %.1f s; client %016llx)",
                       mnt, cfg.css_host, portfile, (double)cfg.timeout_us / 1e6,
                       (unsigned long long)us_rpc_client_id(us_core_rpc(fs.core)));
        else
                cm_log(LOG_INFO, "mounted on %s (CSS %s:%u; timeout %.1f s; client %016llx)", mnt,
                       cfg.css_host, cfg.css_port, (double)cfg.timeout_us / 1e6,
                       (unsigned long long)us_rpc_client_id(us_core_rpc(fs.core)));

        if (!cfg.foreground) {
                if (fuse_daemonize(0) != 0)
                        goto out;
                /* stderr is /dev/null now */
                if (!cfg.use_syslog)
                        cm_log_init(PROG, cfg.log_level, CM_LOG_SYSLOG);
        }
        /* The keeper thread (mount table refresh, session keepalive). */
        r = us_core_start(fs.core);
        if (r >= 0)
                r = us_watch_start(fs.watch, se);       /* commit notes (docs/coherence.md) */
        if (r < 0) {
                cm_log(LOG_ERR, "cannot start: %s", strerror(-r));
                goto out;
        }
        cm_ready(cfg.ready_fd, "mounted");
        cfg.ready_fd = -1;

        if (cfg.singlethread) {
                r = fuse_session_loop(se);
        } else {
                lc = fuse_loop_cfg_create();
                if (!lc)
                        goto out;
                fuse_loop_cfg_set_clone_fd(lc, cfg.clone_fd);
                if (cfg.max_idle_threads != UINT_MAX)
                        fuse_loop_cfg_set_idle_threads(lc, cfg.max_idle_threads);
                fuse_loop_cfg_set_max_threads(lc, cfg.max_threads);
                r = fuse_session_loop_mt(se, lc);
        }
        /* A signal ends the loop with its number; that is a clean end. */
        status = r < 0 ? US_EXIT_FAIL : US_EXIT_OK;
        if (r < 0)
                cm_log(LOG_ERR, "session loop: %s", strerror(-r));
        else
                cm_log(LOG_INFO, "unmounting %s", mnt);
out:
        us_watch_stop(fs.watch);        /* no new notification after this */
        if (mounted)
                fuse_session_unmount(se);
        us_watch_join(fs.watch);        /* before the session goes */
        if (handlers)
                fuse_remove_signal_handlers(se);
        if (se)
                fuse_session_destroy(se);       /* destroy callback: final commits */
        if (lc)
                fuse_loop_cfg_destroy(lc);
        us_watch_free(fs.watch);
        us_core_free(fs.core);
        if (cfg.ready_fd >= 0)
                close(cfg.ready_fd);            /* no READY: the parent sees EOF */
        free(mnt);
        free(portfile);
        us_opt_free(&cfg);
        return status;
}
