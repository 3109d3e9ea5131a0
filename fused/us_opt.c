/*
 * us_opt.c -- see us_opt.h.
 *
 * Two passes over argv: fuse_opt_parse() with our templates takes out our
 * options and the non-option arguments (SOURCE, MOUNTPOINT) and keeps the
 * rest; then fuse_parse_cmdline() takes -f, -d, -s, -h, -V, clone_fd,
 * max_threads, max_idle_threads and leaves the mount and session options
 * for fuse_session_new().
 */
#include "us_opt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <fuse_opt.h>
#include <arpa/inet.h>

#include "cm.h"

/* What fuse_opt_parse() collects: strings as given, checked afterwards. */
struct raw {
        char *key;
        char *css;
        char *css_port_file;
        char *timeout;
        char *entry_timeout;
        char *attr_timeout;
        char *site;
        char *bind;
        char *ready_fd;
        char *log_level;
        int use_syslog;
        int writeback;                  /* the last of writeback / nowriteback */
        char *nonopt[2];
        int nnonopt;
        int too_many;
        int nomem;
};

#define RAW(t, f) { t, offsetof(struct raw, f), 1 }

static const struct fuse_opt us_opts[] = {
        RAW("key=%s", key),
        RAW("css=%s", css),
        RAW("css_port_file=%s", css_port_file),
        RAW("timeout=%s", timeout),
        RAW("entry_timeout=%s", entry_timeout),
        RAW("attr_timeout=%s", attr_timeout),
        RAW("site=%s", site),
        RAW("bind=%s", bind),
        RAW("--ready-fd %s", ready_fd),
        RAW("--ready-fd=%s", ready_fd),
        RAW("--log-level %s", log_level),
        RAW("--log-level=%s", log_level),
        RAW("--syslog", use_syslog),
        { "writeback", offsetof(struct raw, writeback), 1 },
        { "nowriteback", offsetof(struct raw, writeback), 0 },
        FUSE_OPT_END
};

static int proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
        struct raw *r = data;

        (void)outargs;
        if (key != FUSE_OPT_KEY_NONOPT)
                return 1;       /* not ours: keep it for libfuse */
        if (r->nnonopt >= 2) {
                r->too_many = 1;
                return 0;
        }
        r->nonopt[r->nnonopt] = strdup(arg);
        if (!r->nonopt[r->nnonopt]) {
                r->nomem = 1;
                return -1;
        }
        r->nnonopt++;
        return 0;
}

static void raw_free(struct raw *r)
{
        free(r->key);
        free(r->css);
        free(r->css_port_file);
        free(r->timeout);
        free(r->entry_timeout);
        free(r->attr_timeout);
        free(r->site);
        free(r->bind);
        free(r->ready_fd);
        free(r->log_level);
        free(r->nonopt[0]);
        free(r->nonopt[1]);
}

static int fail(struct us_config *cfg, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int fail(struct us_config *cfg, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(cfg->err, sizeof(cfg->err), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        if (!s || !*s || *s == '-' || *s == '+')
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return false;
        *ret = v;
        return true;
}

/* Seconds, possibly fractional ("0.5"), into microseconds. */
static bool parse_seconds(const char *s, uint64_t *ret_us)
{
        char *end;
        double v;

        if (!s || !*s)
                return false;
        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || !isfinite(v) || v * 1e6 < 1000.0 ||
            v * 1e6 > (double)US_MAX_TIMEOUT_US)
                return false;
        *ret_us = (uint64_t)(v * 1e6);
        return true;
}

static bool any_arg_has(int argc, char **argv, const char *needle)
{
        for (int i = 1; i < argc; i++)
                if (argv[i] && strstr(argv[i], needle))
                        return true;
        return false;
}

/* "-o subtype=locusfs,fsname=SOURCE,default_permissions[,allow_other]". */
static int add_fuse_defaults(struct us_config *cfg, bool as_root)
{
        char *o = NULL;
        char *arg = NULL;
        int r = -ENOMEM;

        if (fuse_opt_add_opt(&o, "subtype=locusfs") < 0)
                goto out;
        if (fuse_opt_add_opt(&o, "fsname=") < 0)
                goto out;
        /* fuse_opt_add_opt_escaped() would add a comma; append by hand. */
        {
                const char *src = cfg->source ? cfg->source : "locusfs";
                size_t n = strlen(o), m = 0;
                char *tmp = malloc(n + 2 * strlen(src) + 1);

                if (!tmp)
                        goto out;
                memcpy(tmp, o, n);
                for (const char *p = src; *p; p++) {
                        if (*p == ',' || *p == '\\')
                                tmp[n + m++] = '\\';
                        tmp[n + m++] = *p;
                }
                tmp[n + m] = 0;
                free(o);
                o = tmp;
        }
        if (fuse_opt_add_opt(&o, "default_permissions") < 0)
                goto out;
        if (as_root && fuse_opt_add_opt(&o, "allow_other") < 0)
                goto out;
        if (asprintf(&arg, "-o%s", o) < 0) {
                arg = NULL;
                goto out;
        }
        if (fuse_opt_insert_arg(&cfg->args, 1, arg) < 0)
                goto out;
        r = 0;
out:
        free(o);
        free(arg);
        return r;
}

int us_opt_parse(int argc, char **argv, bool as_root, struct us_config *cfg)
{
        struct fuse_cmdline_opts fo;
        struct raw raw;
        int r;

        memset(cfg, 0, sizeof(*cfg));
        memset(&raw, 0, sizeof(raw));
        memset(&fo, 0, sizeof(fo));
        raw.writeback = 0;              /* off unless writeback (docs/mount.md) */
        cfg->ready_fd = -1;
        cfg->log_level = LOG_INFO;
        cfg->timeout_us = US_DEFAULT_TIMEOUT_US;
        cfg->entry_timeout_us = US_DEFAULT_CACHE_US;
        cfg->attr_timeout_us = US_DEFAULT_CACHE_US;
        cfg->max_idle_threads = UINT_MAX;

        /* Our own copy of argv, so that argv itself is never modified. */
        for (int i = 0; i < argc; i++) {
                if (fuse_opt_add_arg(&cfg->args, argv[i]) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        if (argc < 1 && fuse_opt_add_arg(&cfg->args, "locusfs-mount") < 0) {
                r = -ENOMEM;
                goto out;
        }

        if (fuse_opt_parse(&cfg->args, &raw, us_opts, proc) < 0) {
                r = raw.nomem ? -ENOMEM : fail(cfg, "cannot parse the options");
                goto out;
        }
        if (raw.too_many) {
                r = fail(cfg, "too many arguments: expected [SOURCE] MOUNTPOINT");
                goto out;
        }
        if (raw.nnonopt == 2) {
                cfg->source = raw.nonopt[0];
                cfg->mountpoint = raw.nonopt[1];
                raw.nonopt[0] = raw.nonopt[1] = NULL;
        } else if (raw.nnonopt == 1) {
                cfg->mountpoint = raw.nonopt[0];
                raw.nonopt[0] = NULL;
        }

        r = add_fuse_defaults(cfg, as_root);
        if (r < 0)
                goto out;
        if (fuse_parse_cmdline(&cfg->args, &fo) != 0) {
                r = fail(cfg, "bad FUSE options (see the message above)");
                goto out;
        }
        free(fo.mountpoint);    /* none: we took the non-options */
        cfg->foreground = fo.foreground;
        cfg->debug = fo.debug;
        cfg->singlethread = fo.singlethread;
        cfg->show_help = fo.show_help;
        cfg->show_version = fo.show_version;
        cfg->clone_fd = fo.clone_fd;
        cfg->max_idle_threads = fo.max_idle_threads;
        cfg->max_threads = any_arg_has(argc, argv, "max_threads=") ? fo.max_threads
                                                                    : US_DEFAULT_MAX_THREADS;
        if (cfg->show_help || cfg->show_version) {
                r = 0;
                goto out;
        }

        if (!cfg->mountpoint) {
                r = fail(cfg, "missing MOUNTPOINT");
                goto out;
        }
        if (!raw.key) {
                r = fail(cfg, "missing -o key=FILE (the cluster key)");
                goto out;
        }
        cfg->key_file = raw.key;
        raw.key = NULL;

        if (raw.css) {
                if (cm_parse_hostport(raw.css, cfg->css_host, sizeof(cfg->css_host),
                                      &cfg->css_port) < 0) {
                        r = fail(cfg, "bad css=%s: expected HOST:PORT", raw.css);
                        goto out;
                }
        } else if (cfg->source &&
                   cm_parse_hostport(cfg->source, cfg->css_host, sizeof(cfg->css_host),
                                     &cfg->css_port) == 0) {
                /* "mount -t fuse.locusfs HOST:PORT /mnt" */
        } else {
                cfg->css_host[0] = 0;
                cfg->css_port = 0;
        }
        if (raw.css_port_file) {
                if (!*raw.css_port_file) {
                        r = fail(cfg, "empty css_port_file=");
                        goto out;
                }
                cfg->css_port_file = raw.css_port_file;
                raw.css_port_file = NULL;
                if (!cfg->css_host[0])
                        snprintf(cfg->css_host, sizeof(cfg->css_host), "127.0.0.1");
        }
        if (!cfg->css_host[0]) {
                r = fail(cfg, "missing -o css=HOST:PORT (or css_port_file=FILE)");
                goto out;
        }
        if (!cfg->css_port && !cfg->css_port_file) {
                r = fail(cfg, "css=%s: port 0 needs css_port_file=FILE", raw.css);
                goto out;
        }

        if (raw.timeout && !parse_seconds(raw.timeout, &cfg->timeout_us)) {
                r = fail(cfg, "bad timeout=%s: seconds, from 0.001 to 86400", raw.timeout);
                goto out;
        }
        if (raw.entry_timeout && !parse_seconds(raw.entry_timeout, &cfg->entry_timeout_us)) {
                r = fail(cfg, "bad entry_timeout=%s: seconds, from 0.001 to 86400", raw.entry_timeout);
                goto out;
        }
        if (raw.attr_timeout && !parse_seconds(raw.attr_timeout, &cfg->attr_timeout_us)) {
                r = fail(cfg, "bad attr_timeout=%s: seconds, from 0.001 to 86400", raw.attr_timeout);
                goto out;
        }
        if (raw.bind) {
                unsigned char a[sizeof(struct in6_addr)];

                if (strlen(raw.bind) >= sizeof(cfg->bind) || (inet_pton(AF_INET, raw.bind, a) != 1 &&
                                                             inet_pton(AF_INET6, raw.bind, a) != 1)) {
                        r = fail(cfg, "bad bind=%s: a numeric IPv4 or IPv6 address", raw.bind);
                        goto out;
                }
                snprintf(cfg->bind, sizeof(cfg->bind), "%s", raw.bind);
        }
        if (raw.site && !parse_u64(raw.site, UINT64_MAX, &cfg->site)) {
                r = fail(cfg, "bad site=%s: a site number", raw.site);
                goto out;
        }
        if (raw.ready_fd) {
                uint64_t v;

                if (!parse_u64(raw.ready_fd, INT_MAX, &v)) {
                        r = fail(cfg, "bad --ready-fd %s: a descriptor number", raw.ready_fd);
                        goto out;
                }
                cfg->ready_fd = (int)v;
        }
        if (raw.log_level) {
                int lvl = cm_log_level_parse(raw.log_level);

                if (lvl < 0) {
                        r = fail(cfg, "bad --log-level %s: err, warning, notice, info or debug",
                                 raw.log_level);
                        goto out;
                }
                cfg->log_level = lvl;
        } else if (cfg->debug) {
                cfg->log_level = LOG_DEBUG;
        }
        cfg->use_syslog = raw.use_syslog;
        cfg->writeback = raw.writeback != 0;
        r = 0;
out:
        raw_free(&raw);
        return r;
}

void us_opt_free(struct us_config *cfg)
{
        free(cfg->mountpoint);
        free(cfg->source);
        free(cfg->key_file);
        free(cfg->css_port_file);
        fuse_opt_free_args(&cfg->args);
        cfg->mountpoint = cfg->source = cfg->key_file = cfg->css_port_file = NULL;
}

void us_opt_usage(const char *prog)
{
        printf("usage: %s [SOURCE] MOUNTPOINT -o key=FILE,css=HOST:PORT[,OPTIONS] [-f] [-d]\n"
               "\n"
               "LocusFS options:\n"
               "    -o key=FILE            the cluster key (required)\n"
               "    -o css=HOST:PORT       the current synchronization site\n"
               "    -o css_port_file=FILE  read the CSS port from FILE at every connection\n"
               "    -o timeout=SEC         how long a request waits for an unreachable\n"
               "                           daemon before it fails with ETIMEDOUT (30)\n"
               "    -o entry_timeout=SEC   how long the kernel may keep names (1); beyond\n"
               "                           1 s only while the CSS's commit notes flow\n"
               "    -o attr_timeout=SEC    the same for attributes (1)\n"
               "    -o site=N              our site number in the handshake (0)\n"
               "    -o bind=ADDR           the source address of every connection (the site's)\n"
               "    -o writeback           the kernel caches writes and sends them at\n"
               "                           writeback, fsync and close\n"
               "    -o nowriteback         every write(2) goes to the storage site at once\n"
               "                           (the default)\n"
               "    --ready-fd N           write \"READY mounted\" to descriptor N once mounted\n"
               "    --log-level L          err, warning, notice, info (default), debug\n"
               "    --syslog               log to syslog (the default without -f)\n"
               "\n", prog);
}
