/*
 * ss_main.c -- locus-storaged: command line, data-directory lock, pid and
 * port files, readiness, signals (see man/locus-storaged.8).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <uv.h>

#include "cm.h"
#include "cm_conf.h"
#include "lp_conn.h"
#include "lp_key.h"
#include "ss_ct.h"
#include "ss_srv.h"

static void usage(FILE *f)
{
        fprintf(f,
                "usage: locus-storaged [--config FILE] --data DIR --key FILE --site N [--listen HOST:PORT]\n"
                "                      [--bind ADDR] [--port-file F] [--pid-file F] [--ready-fd N]\n"
                "                      [--css HOST:PORT] [--css-port-file F] [--create-root]\n"
                "                      [--flush-interval-ms MS] [--segment-size BYTES] [--reserve BYTES]\n"
                "                      [--lease-ms MS] [--log-level L] [--syslog]\n"
                "       locus-storaged --data DIR --rebuild [--log-level L] [--syslog]\n"
                "With no option at all it reads " CM_CONF_DEFAULT "; options override the file.\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (!*s || *end || errno || v > max || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Take DIR/lock (flock, exclusive, not waiting).  Returns the fd. */
static int lock_data_dir(const char *dir)
{
        char path[PATH_MAX];
        int fd;

        if (snprintf(path, sizeof(path), "%s/lock", dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = errno == EWOULDBLOCK ? -EBUSY : -errno;

                close(fd);
                return r;
        }
        return fd;
}

static int rebuild(const char *dir)
{
        uint32_t *fgs = NULL;
        size_t n = 0;
        int r, failed = 0;

        r = ss_ct_list(dir, &fgs, &n);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: cannot list the data directory: %s", dir, strerror(-r));
                return 1;
        }
        if (n == 0)
                cm_log(LOG_NOTICE, "%s: no containers to rebuild", dir);
        for (size_t i = 0; i < n; i++) {
                uint64_t inodes = 0;

                r = ss_ct_rebuild(dir, fgs[i], &inodes);
                if (r < 0) {
                        cm_log(LOG_ERR, "%s/fg-%u: rebuild failed: %s (the previous index was kept)", dir, fgs[i],
                               strerror(-r));
                        failed = 1;
                } else {
                        cm_log(LOG_NOTICE, "%s/fg-%u: SQLite index rebuilt from the segments: %llu inode(s)", dir,
                               fgs[i], (unsigned long long)inodes);
                }
        }
        free(fgs);
        return failed;
}

struct sigs {
        uv_signal_t term, intr;
        struct ss_srv *srv;
};

static void on_signal(uv_signal_t *h, int signum)
{
        struct sigs *g = h->data;

        cm_log(LOG_INFO, "signal %d (%s): stopping", signum, strsignal(signum));
        ss_srv_stop(g->srv);
        uv_close((uv_handle_t *)&g->term, NULL);
        uv_close((uv_handle_t *)&g->intr, NULL);
}

int main(int argc, char **argv)
{
        enum {
                O_DATA = 256, O_KEY, O_SITE, O_LISTEN, O_PORT_FILE, O_PID_FILE, O_READY_FD, O_CSS,
                O_CSS_PORT_FILE, O_FLUSH, O_LOG_LEVEL, O_SYSLOG, O_REBUILD, O_SEGSIZE, O_RESERVE, O_LEASE, O_HELP,
                O_CONFIG, O_BIND, O_CREATE_ROOT,
        };
        static const struct option lopts[] = {
                { "data", required_argument, NULL, O_DATA },
                { "key", required_argument, NULL, O_KEY },
                { "site", required_argument, NULL, O_SITE },
                { "listen", required_argument, NULL, O_LISTEN },
                { "port-file", required_argument, NULL, O_PORT_FILE },
                { "pid-file", required_argument, NULL, O_PID_FILE },
                { "ready-fd", required_argument, NULL, O_READY_FD },
                { "css", required_argument, NULL, O_CSS },
                { "css-port-file", required_argument, NULL, O_CSS_PORT_FILE },
                { "flush-interval-ms", required_argument, NULL, O_FLUSH },
                { "lease-ms", required_argument, NULL, O_LEASE },
                { "segment-size", required_argument, NULL, O_SEGSIZE },
                { "reserve", required_argument, NULL, O_RESERVE },
                { "log-level", required_argument, NULL, O_LOG_LEVEL },
                { "syslog", no_argument, NULL, O_SYSLOG },
                { "rebuild", no_argument, NULL, O_REBUILD },
                { "help", no_argument, NULL, O_HELP },
                { "config", required_argument, NULL, O_CONFIG },
                { "bind", required_argument, NULL, O_BIND },
                { "create-root", no_argument, NULL, O_CREATE_ROOT },
                { NULL, 0, NULL, 0 },
        };
        const char *data = NULL, *keyfile = NULL, *port_file = NULL, *pid_file = NULL, *config = NULL;
        char listen_host[256] = "", css_host[256] = "", bind_addr[256] = "", cerr[PATH_MAX + 256];
        uint16_t listen_port = 0, css_port = 0;
        int level = LOG_INFO, ready_fd = -1, lockfd, r, c, exit_code = 0;
        bool use_syslog = false, do_rebuild = false, have_site = false;
        struct cm_conf conf;
        struct ss_opts o;
        struct ss_srv *srv = NULL;
        struct sigs g;
        uv_loop_t loop;
        uint64_t v;

        ss_opts_default(&o);
        o.create_root = false;
        /* The configuration file first; the command line then overrides it. */
        config = cm_conf_arg(argc, argv);
        if (config) {
                if (cm_conf_load(config, &conf, cerr, sizeof(cerr)) < 0) {
                        fprintf(stderr, "locus-storaged: %s\n", cerr);
                        return 2;
                }
                if (conf.data[0])
                        data = conf.data;
                if (conf.key[0])
                        keyfile = conf.key;
                if (conf.site) {
                        o.site = conf.site;
                        have_site = true;
                }
                if (conf.address[0]) {
                        snprintf(bind_addr, sizeof(bind_addr), "%s", conf.address);
                        snprintf(listen_host, sizeof(listen_host), "%s", conf.address);
                }
                listen_port = conf.storage_port;
                if (conf.css_port) {
                        snprintf(css_host, sizeof(css_host), "%s", conf.css_host);
                        css_port = conf.css_port;
                }
                if (conf.storage_lease_ms) {
                        o.client_grace_ms = conf.storage_lease_ms;
                        if (o.sweep_ms > o.client_grace_ms / 4)
                                o.sweep_ms = o.client_grace_ms / 4;
                }
        }
        while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
                switch (c) {
                case O_CONFIG:
                        break;          /* read above */
                case O_BIND:
                        if (strlen(optarg) >= sizeof(bind_addr)) {
                                fprintf(stderr, "locus-storaged: --bind %s: too long\n", optarg);
                                return 2;
                        }
                        snprintf(bind_addr, sizeof(bind_addr), "%s", optarg);
                        break;
                case O_CREATE_ROOT:
                        o.create_root = true;
                        break;
                case O_DATA:
                        data = optarg;
                        break;
                case O_KEY:
                        keyfile = optarg;
                        break;
                case O_SITE:
                        if (parse_u64(optarg, SS_CONTAINER_MAX, &v) < 0 || v == 0) {
                                fprintf(stderr, "locus-storaged: --site %s: must be 1..%u\n", optarg, SS_CONTAINER_MAX);
                                return 2;
                        }
                        o.site = v;
                        have_site = true;
                        break;
                case O_LISTEN:
                        if (cm_parse_hostport(optarg, listen_host, sizeof(listen_host), &listen_port) < 0) {
                                fprintf(stderr, "locus-storaged: --listen %s: expected HOST:PORT\n", optarg);
                                return 2;
                        }
                        break;
                case O_PORT_FILE:
                        port_file = optarg;
                        break;
                case O_PID_FILE:
                        pid_file = optarg;
                        break;
                case O_READY_FD:
                        if (parse_u64(optarg, INT_MAX, &v) < 0) {
                                fprintf(stderr, "locus-storaged: --ready-fd %s: not a descriptor\n", optarg);
                                return 2;
                        }
                        ready_fd = (int)v;
                        break;
                case O_CSS:
                        if (cm_parse_hostport(optarg, css_host, sizeof(css_host), &css_port) < 0) {
                                fprintf(stderr, "locus-storaged: --css %s: expected HOST:PORT\n", optarg);
                                return 2;
                        }
                        break;
                case O_CSS_PORT_FILE:
                        o.css_port_file = optarg;
                        break;
                case O_FLUSH:
                        if (parse_u64(optarg, 60000, &v) < 0) {
                                fprintf(stderr, "locus-storaged: --flush-interval-ms %s: 0..60000\n", optarg);
                                return 2;
                        }
                        o.flush_interval_ms = (uint32_t)v;
                        break;
                case O_LEASE:
                        if (parse_u64(optarg, 3600000, &v) < 0 || v < 100) {
                                fprintf(stderr, "locus-storaged: --lease-ms %s: 100..3600000\n", optarg);
                                return 2;
                        }
                        o.client_grace_ms = (uint32_t)v;
                        if (o.sweep_ms > o.client_grace_ms / 4)
                                o.sweep_ms = o.client_grace_ms / 4;
                        break;
                case O_SEGSIZE:
                        if (parse_u64(optarg, DSM_SEGMENT_SIZE_MAX, &v) < 0 || v < DSM_SEGMENT_SIZE_MIN) {
                                fprintf(stderr, "locus-storaged: --segment-size %s: %u..%u\n", optarg,
                                        DSM_SEGMENT_SIZE_MIN, DSM_SEGMENT_SIZE_MAX);
                                return 2;
                        }
                        o.segment_size = (uint32_t)v;
                        break;
                case O_RESERVE:
                        if (parse_u64(optarg, UINT64_MAX / 2, &v) < 0) {
                                fprintf(stderr, "locus-storaged: --reserve %s: a byte count\n", optarg);
                                return 2;
                        }
                        o.space_reserve = v;
                        break;
                case O_LOG_LEVEL:
                        level = cm_log_level_parse(optarg);
                        if (level < 0) {
                                fprintf(stderr, "locus-storaged: --log-level %s: unknown level\n", optarg);
                                return 2;
                        }
                        break;
                case O_SYSLOG:
                        use_syslog = true;
                        break;
                case O_REBUILD:
                        do_rebuild = true;
                        break;
                case O_HELP:
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc || !data || (!do_rebuild && (!keyfile || !have_site)) ||
            (css_host[0] && !css_port && !o.css_port_file)) {
                usage(stderr);
                return 2;
        }
        /* --bind defaults to the host of --listen, --listen's host to --bind. */
        if (!listen_host[0])
                snprintf(listen_host, sizeof(listen_host), "%s", bind_addr[0] ? bind_addr : "127.0.0.1");
        if (!bind_addr[0] && strcmp(listen_host, "0.0.0.0") != 0 && strcmp(listen_host, "::") != 0)
                snprintf(bind_addr, sizeof(bind_addr), "%s", listen_host);
        if (lp_client_set_source(bind_addr[0] ? bind_addr : NULL) < 0) {
                fprintf(stderr, "locus-storaged: --bind %s: not a numeric address\n", bind_addr);
                return 2;
        }
        cm_log_init("locus-storaged", level, use_syslog ? CM_LOG_SYSLOG : CM_LOG_STDERR);

        if (do_rebuild) {
                struct stat st;

                if (stat(data, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        cm_log(LOG_ERR, "%s: not a data directory", data);
                        return 1;
                }
        } else if (mkdir(data, 0700) < 0 && errno != EEXIST) {
                cm_log(LOG_ERR, "%s: cannot create the data directory: %s", data, strerror(errno));
                return 1;
        }
        lockfd = lock_data_dir(data);
        if (lockfd < 0) {
                cm_log(LOG_ERR, "%s: %s", data, lockfd == -EBUSY ? "in use by another process (DIR/lock is held)"
                                                                  : strerror(-lockfd));
                return 1;
        }
        if (do_rebuild) {
                r = rebuild(data);
                close(lockfd);
                return r;
        }
        r = lp_key_load(keyfile, o.key);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: %s", keyfile, lp_key_strerror(r));
                close(lockfd);
                return 1;
        }
        o.data_dir = data;
        o.listen_host = listen_host;
        o.listen_port = listen_port;
        /* --css HOST:PORT; with --css-port-file the port comes from the file
         * at every connection and --css gives only the host. */
        if (css_host[0])
                o.css_host = css_host;
        if (css_port && !o.css_port_file)
                o.css_port = css_port;
        /* Flushes of several containers, their maintenance and container
         * creation share the libuv work queue (default 4 threads). */
        setenv("UV_THREADPOOL_SIZE", "8", 0);
        if (uv_loop_init(&loop) < 0) {
                cm_log(LOG_ERR, "cannot initialise the event loop");
                close(lockfd);
                return 1;
        }
        r = ss_srv_new(&loop, &o, &srv);
        lp_key_wipe(o.key, sizeof(o.key));
        if (r < 0) {
                if (srv) {
                        uv_run(&loop, UV_RUN_DEFAULT);
                        ss_srv_free(srv);
                }
                uv_loop_close(&loop);
                close(lockfd);
                return 1;
        }
        g.srv = srv;
        uv_signal_init(&loop, &g.term);
        uv_signal_init(&loop, &g.intr);
        g.term.data = g.intr.data = &g;
        uv_signal_start(&g.term, on_signal, SIGTERM);
        uv_signal_start(&g.intr, on_signal, SIGINT);
        if (pid_file) {
                char buf[32];

                snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
                r = cm_write_file(pid_file, buf);
                if (r < 0)
                        cm_log(LOG_WARNING, "%s: cannot write the pid file: %s", pid_file, strerror(-r));
        }
        if (port_file) {
                char buf[32];

                snprintf(buf, sizeof(buf), "%u\n", ss_srv_port(srv));
                r = cm_write_file(port_file, buf);
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: cannot write the port file: %s", port_file, strerror(-r));
                        exit_code = 1;
                        ss_srv_stop(srv);
                        uv_close((uv_handle_t *)&g.term, NULL);
                        uv_close((uv_handle_t *)&g.intr, NULL);
                }
        }
        if (!exit_code) {
                char info[32];

                snprintf(info, sizeof(info), "port=%u", ss_srv_port(srv));
                cm_ready(ready_fd, info);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        if (ss_srv_error(srv) < 0) {
                cm_log(LOG_ERR, "a container failed while running: %s", strerror(-ss_srv_error(srv)));
                exit_code = 1;
        }
        ss_srv_free(srv);
        if (uv_loop_close(&loop) < 0)
                cm_log(LOG_DEBUG, "event loop closed with handles left");
        if (pid_file)
                unlink(pid_file);
        close(lockfd);
        return exit_code;
}
