/*
 * us_opt.h -- the command line of locusfs-mount.
 *
 *   locusfs-mount [SOURCE] MOUNTPOINT -o key=FILE,css=HOST:PORT[,css_port_file=F]
 *                 [,timeout=SEC][,entry_timeout=SEC][,attr_timeout=SEC][,site=N][,bind=ADDR]
 *                 [,writeback|nowriteback][,FUSE options] [-f] [-d] [-s]
 *                 [--ready-fd N] [--log-level L] [--syslog]
 *
 * Our own -o suboptions and long options are taken out; everything else
 * (the usual FUSE options, -f, -d, -s, -h, -V, max_threads=...) is left
 * for libfuse: us_opt_parse() runs fuse_parse_cmdline() itself and leaves
 * in cfg->args only what fuse_session_new() must see.  SOURCE is what
 * mount.fuse3 passes as the first argument ("locus" or anything else is
 * ignored; a HOST:PORT is taken as the CSS address when css= is absent).
 *
 * We add to the FUSE options: default_permissions (always: the kernel does
 * access checks and the set-user-ID clearing), allow_other (when
 * as_root), subtype=locusfs and fsname=SOURCE (so /proc/mounts says
 * "SOURCE MOUNTPOINT fuse.locusfs"); options given by the user come later
 * and win.
 *
 * Ownership: us_opt_parse() fills a struct us_config that owns its strings
 * and args; us_opt_free() releases them (also after a failed parse, and on
 * a zeroed struct).
 *
 * Threads: none of its own; fuse_opt is not thread-safe, call from main.
 *
 * Errors: -EINVAL with a one-line explanation in cfg->err (a usage error:
 * missing key=, bad number, unknown option for us, two mount points),
 * -ENOMEM.  Nothing is printed.
 */
#ifndef US_OPT_H
#define US_OPT_H

#include <stdbool.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#define US_HOST_MAX 256
#define US_DEFAULT_TIMEOUT_US (30u * 1000000ull)
/* timeout= is at least 1 ms and at most a day. */
#define US_MAX_TIMEOUT_US (86400ull * 1000000ull)
/* entry_timeout= and attr_timeout= by default (us_ops.h's timeouts). */
#define US_DEFAULT_CACHE_US 1000000ull

struct us_config {
        char *mountpoint;               /* as given (not resolved) */
        char *source;                   /* first of two non-options, or NULL */
        char *key_file;
        char css_host[US_HOST_MAX];     /* "" when neither css= nor a HOST:PORT source */
        uint16_t css_port;              /* 0: read css_port_file */
        char *css_port_file;
        uint64_t timeout_us;            /* per request, reconnects included */
        uint64_t entry_timeout_us;      /* the kernel's, while commit notes flow (us_watch.h) */
        uint64_t attr_timeout_us;
        uint64_t site;                  /* our site id in the handshake */
        char bind[64];                  /* source address of every connection; "": the kernel's choice */
        int ready_fd;                   /* -1: none */
        int log_level;                  /* syslog level */
        bool use_syslog;
        bool writeback;                 /* ask for the kernel's writeback cache (default) */
        /* from fuse_parse_cmdline() */
        bool foreground;
        bool debug;
        bool singlethread;
        bool show_help;
        bool show_version;
        bool clone_fd;
        unsigned max_threads;           /* 0: ours (US_DEFAULT_MAX_THREADS) */
        unsigned max_idle_threads;      /* UINT_MAX: libfuse's default */
        /* what is left for fuse_session_new() */
        struct fuse_args args;
        char err[256];
};

#define US_DEFAULT_MAX_THREADS 32u

/*
 * Parse argv (not modified).  as_root adds allow_other.  On success the
 * config is complete and checked, unless show_help/show_version is set (then
 * only those mean anything).  On failure cfg->err says why; call
 * us_opt_free() either way.
 */
int us_opt_parse(int argc, char **argv, bool as_root, struct us_config *cfg);
void us_opt_free(struct us_config *cfg);

/* Print the usage of our own options to stdout (libfuse prints its own). */
void us_opt_usage(const char *prog);

#endif
