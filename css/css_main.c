/*
 * css_main.c -- locus-cssd, the current synchronization site daemon: the
 * command line (docs/cluster.md), the state directory and its lock, the
 * pid and port files, readiness, and signals around one libuv loop running
 * the CSS (css.h) and the membership service (css_membd.h: heartbeats with
 * the cssds of the other sites, epochs).
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 when it cannot start (the log
 * says why), 2 for a bad command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "cm.h"
#include "cm_conf.h"
#include "css.h"
#include "css_membd.h"
#include "lp_conn.h"
#include "lp_key.h"

struct opts {
        const char *state;
        const char *key;
        uint64_t site;
        const char *listen;
        const char *bind;
        struct cm_conf conf;
        char listen_buf[CM_CONF_HOST_MAX + 16];
        const char *port_file;
        const char *pid_file;
        int ready_fd;
        int log_level;
        bool syslog;
        uint32_t lease_ms;
        const char *seed;               /* HOST:PORT of a cssd to reach first */
        char seed_buf[CM_CONF_HOST_MAX + 16];
        struct css_memb_cfg memb;
};

/* Threads for calls to storage sites (libuv's threadpool; libuv's default
 * is 4, and a storage site that does not answer holds one until its
 * timeout).  UV_THREADPOOL_SIZE in the environment wins. */
#define CSS_THREADS "16"

static struct css *the_css;
static struct css_membd *the_membd;
static uv_signal_t sig_term, sig_int;

static void usage(FILE *f)
{
        fprintf(f,
                "usage: locus-cssd [--config FILE] --state DIR --key FILE --site N [--listen HOST:PORT]\n"
                "                  [--bind ADDR] [--port-file F] [--pid-file F] [--ready-fd N]\n"
                "                  [--lease-ms MS] [--seed HOST:PORT] [--heartbeat-ms MS] [--suspect-ms MS]\n"
                "                  [--poll-ms MS] [--log-level L] [--syslog]\n"
                "With no option at all it reads " CM_CONF_DEFAULT "; options override the file.\n"
                "The current synchronization site of a LocusFS cluster; see locus-cssd(8).\n");
}

static int parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
        static const struct option lo[] = {
                { "state", required_argument, NULL, 's' },
                { "key", required_argument, NULL, 'k' },
                { "site", required_argument, NULL, 'S' },
                { "listen", required_argument, NULL, 'l' },
                { "port-file", required_argument, NULL, 'P' },
                { "pid-file", required_argument, NULL, 'p' },
                { "ready-fd", required_argument, NULL, 'r' },
                { "log-level", required_argument, NULL, 'L' },
                { "syslog", no_argument, NULL, 'y' },
                { "lease-ms", required_argument, NULL, 'e' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "config", required_argument, NULL, 'c' },
                { "bind", required_argument, NULL, 'b' },
                { "seed", required_argument, NULL, 'd' },
                { "heartbeat-ms", required_argument, NULL, 'H' },
                { "suspect-ms", required_argument, NULL, 'U' },
                { "poll-ms", required_argument, NULL, 'O' },
                { 0 },
        };
        const char *config = NULL;
        char err[PATH_MAX + 256];
        int c;
        uint64_t v;

        memset(o, 0, sizeof(*o));
        o->ready_fd = -1;
        o->log_level = LOG_INFO;
        o->listen = NULL;
        /* The configuration file first; the command line then overrides it. */
        config = cm_conf_arg(argc, argv);
        if (config) {
                struct cm_conf *f = &o->conf;

                if (cm_conf_load(config, f, err, sizeof(err)) < 0) {
                        fprintf(stderr, "locus-cssd: %s\n", err);
                        return -EINVAL;
                }
                if (f->css_state[0])
                        o->state = f->css_state;
                if (f->key[0])
                        o->key = f->key;
                o->site = f->site;
                if (f->address[0])
                        o->bind = f->address;
                o->lease_ms = f->css_lease_ms;
                o->memb.heartbeat_ms = f->css_heartbeat_ms;
                o->memb.suspect_ms = f->css_suspect_ms;
                o->memb.poll_ms = f->css_poll_ms;
                if (f->css_host[0] && f->css_port) {
                        /* the cluster's CSS is this site's first peer */
                        snprintf(o->seed_buf, sizeof(o->seed_buf), strchr(f->css_host, ':') ? "[%s]:%u" : "%s:%u",
                                 f->css_host, f->css_port);
                        o->seed = o->seed_buf;
                }
                if (f->address[0] || f->css_listen_port) {
                        snprintf(o->listen_buf, sizeof(o->listen_buf), strchr(f->address, ':') ? "[%s]:%u" : "%s:%u",
                                 f->address[0] ? f->address : "127.0.0.1", f->css_listen_port);
                        o->listen = o->listen_buf;
                }
        }
        while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
                switch (c) {
                case 'c': break;        /* read above */
                case 'b': o->bind = optarg; break;
                case 's': o->state = optarg; break;
                case 'k': o->key = optarg; break;
                case 'S':
                        if (parse_u64(optarg, &o->site) < 0 || !o->site) {
                                fprintf(stderr, "locus-cssd: --site %s: a site id is a number > 0\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'l': o->listen = optarg; break;
                case 'P': o->port_file = optarg; break;
                case 'p': o->pid_file = optarg; break;
                case 'r':
                        if (parse_u64(optarg, &v) < 0 || v > INT_MAX) {
                                fprintf(stderr, "locus-cssd: --ready-fd %s: not a descriptor number\n", optarg);
                                return -EINVAL;
                        }
                        o->ready_fd = (int)v;
                        break;
                case 'L':
                        o->log_level = cm_log_level_parse(optarg);
                        if (o->log_level < 0) {
                                fprintf(stderr, "locus-cssd: --log-level %s: use err, warning, notice, info "
                                        "or debug\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'y': o->syslog = true; break;
                case 'e':
                        if (parse_u64(optarg, &v) < 0 || v < 100 || v > 3600000) {
                                fprintf(stderr, "locus-cssd: --lease-ms %s: 100..3600000\n", optarg);
                                return -EINVAL;
                        }
                        o->lease_ms = (uint32_t)v;
                        break;
                case 'd': o->seed = optarg; break;
                case 'H':
                case 'U':
                case 'O': {
                        uint64_t min = c == 'U' ? 30 : 10, max = c == 'U' ? 600000 : 60000;

                        if (parse_u64(optarg, &v) < 0 || v < min || v > max) {
                                fprintf(stderr, "locus-cssd: --%s %s: %" PRIu64 "..%" PRIu64 "\n",
                                        c == 'H' ? "heartbeat-ms" : c == 'U' ? "suspect-ms" : "poll-ms", optarg, min, max);
                                return -EINVAL;
                        }
                        if (c == 'H')
                                o->memb.heartbeat_ms = (uint32_t)v;
                        else if (c == 'U')
                                o->memb.suspect_ms = (uint32_t)v;
                        else
                                o->memb.poll_ms = (uint32_t)v;
                        break;
                }
                case 'h': usage(stdout); exit(0);
                case 'V': printf("locus-cssd (LocusFS) 0.1.0\n"); exit(0);
                default: usage(stderr); return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "locus-cssd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (!o->state || !o->key || !o->site) {
                fprintf(stderr, "locus-cssd: --state, --key and --site are required\n");
                usage(stderr);
                return -EINVAL;
        }
        /* --listen defaults to --bind:0, --bind to the host of --listen. */
        if (!o->listen) {
                snprintf(o->listen_buf, sizeof(o->listen_buf), o->bind && strchr(o->bind, ':') ? "[%s]:0" : "%s:0",
                         o->bind ? o->bind : "127.0.0.1");
                o->listen = o->listen_buf;
        }
        return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
        cm_log(LOG_INFO, "%s: shutting down", strsignal(signum));
        css_set_membd(the_css, NULL);
        css_membd_close(the_membd);
        the_membd = NULL;
        css_close(the_css);
        the_css = NULL;
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_int, NULL);
        (void)s;
}

int main(int argc, char **argv)
{
        uint8_t key[LP_KEY_SIZE], key2[LP_KEY_SIZE];
        struct css_config cfg;
        char host[64], lockpath[PATH_MAX], err[512], num[32];
        uint16_t port, got;
        uv_loop_t loop;
        int lockfd, r;
        struct opts o;

        if (parse_args(argc, argv, &o) < 0)
                return 2;
        cm_log_init("locus-cssd", o.log_level, o.syslog ? CM_LOG_SYSLOG : CM_LOG_STDERR);
        if (o.ready_fd >= 0 && fcntl(o.ready_fd, F_SETFD, FD_CLOEXEC) < 0) {
                cm_log(LOG_ERR, "--ready-fd %d: %s", o.ready_fd, strerror(errno));
                return 1;
        }
        if (cm_parse_hostport(o.listen, host, sizeof(host), &port) < 0) {
                cm_log(LOG_ERR, "--listen %s: expected HOST:PORT with a numeric address", o.listen);
                return 2;
        }
        /* Every outgoing connection (to storage sites) leaves from the
         * site's address, so that a packet filter between two addresses
         * cuts exactly those two sites apart. */
        if (!o.bind && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
                o.bind = host;
        if (lp_client_set_source(o.bind) < 0) {
                cm_log(LOG_ERR, "--bind %s: not a numeric address", o.bind);
                return 2;
        }
        r = lp_key_load(o.key, key);
        if (r < 0) {
                cm_log(LOG_ERR, "cluster key %s: %s", o.key, lp_key_strerror(r));
                return 1;
        }
        r = cm_mkdir_p(o.state, 0700);
        if (r < 0) {
                cm_log(LOG_ERR, "state directory %s: %s", o.state, strerror(-r));
                return 1;
        }
        /* One locus-cssd per state directory. */
        if (snprintf(lockpath, sizeof(lockpath), "%s/lock", o.state) >= (int)sizeof(lockpath)) {
                cm_log(LOG_ERR, "state directory %s: path too long", o.state);
                return 1;
        }
        lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lockfd < 0) {
                cm_log(LOG_ERR, "%s: %s", lockpath, strerror(errno));
                return 1;
        }
        if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
                cm_log(LOG_ERR, "%s: %s", lockpath,
                       errno == EWOULDBLOCK ? "another locus-cssd uses this state directory" : strerror(errno));
                return 1;
        }

        setenv("UV_THREADPOOL_SIZE", CSS_THREADS, 0);
        r = uv_loop_init(&loop);
        if (r < 0) {
                cm_log(LOG_ERR, "cannot start the event loop: %s", uv_strerror(r));
                return 1;
        }
        memset(&cfg, 0, sizeof(cfg));
        cfg.state_dir = o.state;
        memcpy(cfg.key, key, sizeof(key));
        memcpy(key2, key, sizeof(key));        /* for the membership service, once we listen */
        cfg.site = o.site;
        cfg.lease_ms = o.lease_ms;
        lp_key_wipe(key, sizeof(key));
        r = css_new(&loop, &cfg, &the_css, err, sizeof(err));
        lp_key_wipe(cfg.key, sizeof(cfg.key));
        if (r < 0) {
                cm_log(LOG_ERR, "mount table in %s: %s", o.state, err);
                return 1;
        }
        r = css_listen(the_css, host, port, &got);
        if (r < 0) {
                cm_log(LOG_ERR, "cannot listen on %s: %s", o.listen, strerror(-r));
                return 1;
        }
        snprintf(num, sizeof(num), "%u\n", got);
        if (o.port_file && (r = cm_write_file(o.port_file, num)) < 0) {
                cm_log(LOG_ERR, "port file %s: %s", o.port_file, strerror(-r));
                return 1;
        }
        {
                struct css_membd_config mc;
                char seed_host[64];
                uint16_t seed_port = 0;

                memset(&mc, 0, sizeof(mc));
                if (o.seed && (cm_parse_hostport(o.seed, seed_host, sizeof(seed_host), &seed_port) < 0 ||
                               !seed_port)) {
                        cm_log(LOG_ERR, "--seed %s: expected HOST:PORT with a numeric address", o.seed);
                        return 2;
                }
                mc.state_dir = o.state;
                memcpy(mc.key, key2, sizeof(key2));
                mc.site = o.site;
                /* what the other cssds dial: the bound address when we listen on all of them */
                mc.host = o.bind && (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) ? o.bind : host;
                mc.port = got;
                mc.seed_host = o.seed ? seed_host : NULL;
                mc.seed_port = seed_port;
                mc.memb = o.memb;
                r = css_membd_new(&loop, &mc, &the_membd, err, sizeof(err));
                lp_key_wipe(mc.key, sizeof(mc.key));
                lp_key_wipe(key2, sizeof(key2));
                if (r < 0) {
                        cm_log(LOG_ERR, "membership in %s: %s", o.state, err);
                        return 1;
                }
                css_set_membd(the_css, the_membd);
        }
        snprintf(num, sizeof(num), "%d\n", (int)getpid());
        if (o.pid_file && (r = cm_write_file(o.pid_file, num)) < 0) {
                cm_log(LOG_ERR, "pid file %s: %s", o.pid_file, strerror(-r));
                return 1;
        }
        uv_signal_init(&loop, &sig_term);
        uv_signal_init(&loop, &sig_int);
        uv_signal_start(&sig_term, on_signal, SIGTERM);
        uv_signal_start(&sig_int, on_signal, SIGINT);
        cm_log(LOG_INFO, "site %" PRIu64 " listening on %s:%u, state %s%s%s", o.site, host, got, o.state,
               o.seed ? ", seed " : "", o.seed ? o.seed : "");
        snprintf(num, sizeof(num), "port=%u", got);
        cm_ready(o.ready_fd, num);

        uv_run(&loop, UV_RUN_DEFAULT);

        r = uv_loop_close(&loop);
        if (r < 0)
                cm_log(LOG_WARNING, "event loop closed with handles left: %s", uv_strerror(r));
        if (o.pid_file) {
                char buf[32];

                /* Remove the pid file if it is still ours. */
                if (cm_read_file(o.pid_file, buf, sizeof(buf)) > 0 && atoi(buf) == (int)getpid())
                        unlink(o.pid_file);
        }
        cm_log(LOG_INFO, "stopped");
        return 0;
}
