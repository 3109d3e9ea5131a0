/*
 * ctl_state.c -- where a dev cluster keeps its things, where the programs
 * are, and requests to its daemons.  See ctl.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm.h"
#include "ctl.h"
#include "lp_conn.h"

const struct ctl_prog ctl_progs[CTL_NPROGS] = {
        [CTL_CSSD] = { "locus-cssd", "css", "cssd" },
        [CTL_STORAGED] = { "locus-storaged", "storage", "storaged" },
        [CTL_MOUNT] = { "locusfs-mount", "fused", "mount" },
};

int ctl_state_resolve(const char *opt, struct ctl_state *ret)
{
        const char *env = getenv("LOCUS_STATE_DIR");
        char buf[PATH_MAX];
        int n;

        memset(ret, 0, sizeof(*ret));
        if (opt && *opt)
                n = snprintf(buf, sizeof(buf), "%s", opt);
        else if (env && *env)
                n = snprintf(buf, sizeof(buf), "%s", env);
        else if (geteuid() == 0)
                n = snprintf(buf, sizeof(buf), "/var/lib/locusfs/dev");
        else {
                const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

                if (xdg && *xdg == '/')
                        n = snprintf(buf, sizeof(buf), "%s/locusfs/dev", xdg);
                else if (home && *home)
                        n = snprintf(buf, sizeof(buf), "%s/.local/state/locusfs/dev", home);
                else
                        return -ENOENT;
        }
        if (n < 0 || (size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        if (ctl_abspath(buf, ret->dir, sizeof(ret->dir)) < 0)
                return -ENAMETOOLONG;
        ret->exists = access(ret->dir, F_OK) == 0;
        return ctl_read_sites(ret);
}

int ctl_state_of_opts(const struct ctl_opts *o, struct ctl_state *st)
{
        if (o->config)
                return ctl_state_from_config(o->config, st) < 0 ? -EINVAL : 0;
        return ctl_state_resolve(o->state, st);
}

int ctl_read_sites(struct ctl_state *st)
{
        char file[PATH_MAX], buf[CTL_MAX_SITES * CTL_ADDR_MAX + 64], *save = NULL, *line;
        unsigned n = 0;
        int r;

        st->nsites = 1;
        st->site = 1;
        memset(st->addrs, 0, sizeof(st->addrs));
        snprintf(st->addrs[0], sizeof(st->addrs[0]), "127.0.0.1");
        if (ctl_path(st, "sites", file, sizeof(file)) < 0)
                return -ENAMETOOLONG;
        r = cm_read_file(file, buf, sizeof(buf));
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (n >= CTL_MAX_SITES || !*line || strlen(line) >= CTL_ADDR_MAX)
                        return -EBADMSG;
                snprintf(st->addrs[n++], CTL_ADDR_MAX, "%s", line);
        }
        if (n == 0)
                return -EBADMSG;
        st->nsites = n;
        /* locusctl speaks as site 1 (CTL_SITE): from site 1's address, so a
         * cut between the sites (dev partition) puts it on site 1's side
         * whatever the addresses are (docs/cluster.md) */
        if (lp_client_set_source(st->addrs[0]) < 0)
                return -EBADMSG;
        return 0;
}

void ctl_state_at(const struct ctl_state *st, unsigned k, struct ctl_state *ret)
{
        if (ret != st)
                *ret = *st;
        ret->site = k >= 1 && k <= st->nsites ? k : 1;
}

void ctl_state_cssd_at(const struct ctl_state *st, unsigned k, struct ctl_state *ret)
{
        ctl_state_at(st, k, ret);
        ret->own_cssd = true;
}

const char *ctl_site_addr(const struct ctl_state *st, unsigned k)
{
        return st->addrs[k >= 1 && k <= st->nsites ? k - 1 : 0];
}

int ctl_path(const struct ctl_state *st, const char *rel, char *buf, size_t cap)
{
        int n = snprintf(buf, cap, "%s/%s", st->dir, rel);

        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* The CSS of a cluster of several sites is site 1's (ctl.h); each site
 * runs a locus-cssd of its own too (own_cssd). */
static unsigned site_of(const struct ctl_state *st, enum ctl_prog_id p)
{
        return p == CTL_CSSD && !st->own_cssd ? 1 : st->site;
}

int ctl_run_file(const struct ctl_state *st, enum ctl_prog_id p, const char *ext, char *buf, size_t cap)
{
        int n = st->nsites > 1 ? snprintf(buf, cap, "%s/site%u/run/%s.%s", st->dir, site_of(st, p),
                                          ctl_progs[p].tag, ext)
                               : snprintf(buf, cap, "%s/run/%s.%s", st->dir, ctl_progs[p].tag, ext);

        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ctl_log_file(const struct ctl_state *st, enum ctl_prog_id p, char *buf, size_t cap)
{
        int n = st->nsites > 1 ? snprintf(buf, cap, "%s/site%u/log/%s.log", st->dir, site_of(st, p),
                                          ctl_progs[p].tag)
                               : snprintf(buf, cap, "%s/log/%s.log", st->dir, ctl_progs[p].tag);

        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int read_num(const char *file, unsigned long max, unsigned long *ret)
{
        char buf[32], *end;
        unsigned long v;
        int r = cm_read_file(file, buf, sizeof(buf));

        if (r < 0)
                return r;
        errno = 0;
        v = strtoul(buf, &end, 10);
        if (!buf[0] || *end || errno || v == 0 || v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int ctl_read_pid(const struct ctl_state *st, enum ctl_prog_id p, pid_t *ret)
{
        char file[PATH_MAX];
        unsigned long v;
        int r = ctl_run_file(st, p, "pid", file, sizeof(file));

        if (r < 0)
                return r;
        r = read_num(file, (unsigned long)INT32_MAX, &v);
        if (r == 0)
                *ret = (pid_t)v;
        return r;
}

int ctl_read_port(const struct ctl_state *st, enum ctl_prog_id p, uint16_t *ret)
{
        char file[PATH_MAX];
        unsigned long v;
        int r = ctl_run_file(st, p, "port", file, sizeof(file));

        if (r < 0)
                return r;
        r = read_num(file, 65535, &v);
        if (r == 0)
                *ret = (uint16_t)v;
        return r;
}

static bool try_bin(const char *dir, const char *sub, const char *bin, char *buf, size_t cap)
{
        int n = sub ? snprintf(buf, cap, "%s/%s/%s", dir, sub, bin) : snprintf(buf, cap, "%s/%s", dir, bin);

        return n > 0 && (size_t)n < cap && access(buf, X_OK) == 0;
}

int ctl_find_bin(enum ctl_prog_id p, char *buf, size_t cap, char *where, size_t wcap)
{
        const char *bin = ctl_progs[p].bin;
        const char *env = getenv("LOCUS_BIN_DIR");
        const char *path = getenv("PATH");
        char self[PATH_MAX];
        ssize_t n;

        if (env && *env) {
                if (try_bin(env, NULL, bin, buf, cap))
                        return 0;
                snprintf(where, wcap, "$LOCUS_BIN_DIR (%s)", env);
                return -ENOENT;         /* an explicit choice is not second-guessed */
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                char *slash;

                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        /* the meson build tree: build/ctl/locusctl -> build/css/locus-cssd */
                        char up[PATH_MAX + 4];

                        snprintf(up, sizeof(up), "%s/..", self);
                        if (try_bin(up, ctl_progs[p].subdir, bin, buf, cap))
                                return 0;
                        /* installed side by side, or PREFIX/bin/locusctl and
                         * PREFIX/sbin/locus-cssd (scripts/install.sh) */
                        if (try_bin(self, NULL, bin, buf, cap) || try_bin(up, "sbin", bin, buf, cap))
                                return 0;
                }
        }
        while (path && *path) {
                const char *colon = strchr(path, ':');
                size_t len = colon ? (size_t)(colon - path) : strlen(path);
                char dir[PATH_MAX];

                if (len > 0 && len < sizeof(dir)) {
                        memcpy(dir, path, len);
                        dir[len] = 0;
                        if (try_bin(dir, NULL, bin, buf, cap))
                                return 0;
                }
                path = colon ? colon + 1 : NULL;
        }
        snprintf(where, wcap, "%s/../%s/, %s/, %s/../sbin/ and $PATH", n > 0 ? self : "?", ctl_progs[p].subdir,
                 n > 0 ? self : "?", n > 0 ? self : "?");
        return -ENOENT;
}

int ctl_mount_source(const struct ctl_state *st, char *buf, size_t cap)
{
        int n = snprintf(buf, cap, "%s%s", CTL_SOURCE_PREFIX, st->dir);

        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Append s to buf (cap > 0) at *len; what does not fit is cut off. */
static void cat_at(char *buf, size_t cap, size_t *len, const char *s)
{
        while (*s && *len + 1 < cap)
                buf[(*len)++] = *s++;
        buf[*len] = 0;
}

/* Append s to buf at *len, in single quotes if the shell needs them. */
static void append_shq(char *buf, size_t cap, size_t *len, const char *s)
{
        bool plain = *s != 0;

        for (const char *p = s; *p && plain; p++)
                plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%=,", *p);
        if (plain) {
                cat_at(buf, cap, len, s);
                return;
        }
        cat_at(buf, cap, len, "'");
        for (const char *p = s; *p; p++) {
                char c[2] = { *p, 0 };

                cat_at(buf, cap, len, *p == '\'' ? "'\\''" : c);
        }
        cat_at(buf, cap, len, "'");
}

const char *ctl_hint(const struct ctl_state *st, const char *verb, const char *dir, char *buf, size_t cap)
{
        char file[PATH_MAX], rec[PATH_MAX];
        size_t len = 0;

        if (!cap)
                return buf;
        buf[0] = 0;
        if (!dir && ctl_path(st, "run/mountpoint", file, sizeof(file)) == 0 &&
            cm_read_file(file, rec, sizeof(rec)) > 0)
                dir = rec;
        cat_at(buf, cap, &len, "locusctl dev ");
        cat_at(buf, cap, &len, verb);
        cat_at(buf, cap, &len, " ");
        if (dir)
                append_shq(buf, cap, &len, dir);
        else
                cat_at(buf, cap, &len, "DIR");
        cat_at(buf, cap, &len, " --state ");
        append_shq(buf, cap, &len, st->dir);
        return buf;
}

int ctl_call(const struct ctl_state *st, enum ctl_prog_id p, const struct lp_fs_req *rq, int timeout_ms,
             struct lp_fs_resp *resp, char *err, size_t cap)
{
        char keyfile[PATH_MAX];
        uint16_t port;
        int r;

        if (st->remote) {
                if (p != CTL_CSSD) {
                        snprintf(err, cap, "%s: only the CSS is asked with --config", ctl_progs[p].bin);
                        return -EOPNOTSUPP;
                }
                return ctl_call_at(ctl_progs[p].bin, st->css_host, st->css_port, st->key, rq, timeout_ms, resp, err,
                                   cap);
        }
        r = ctl_read_port(st, p, &port);
        if (r < 0) {
                snprintf(err, cap, "%s: no port known (%s/run/%s.port: %s); is it running?", ctl_progs[p].bin,
                         st->dir, ctl_progs[p].tag, r == -EBADMSG ? "not a port number" : strerror(-r));
                return r;
        }
        r = ctl_path(st, "cluster.key", keyfile, sizeof(keyfile));
        if (r < 0) {
                snprintf(err, cap, "%s: path too long", st->dir);
                return r;
        }
        return ctl_call_at(ctl_progs[p].bin, ctl_site_addr(st, site_of(st, p)), port, keyfile, rq, timeout_ms, resp,
                           err, cap);
}

int ctl_load_key(const struct ctl_state *st, uint8_t key[LP_KEY_SIZE], char *err, size_t cap)
{
        char keyfile[PATH_MAX];
        int r = 0;

        if (st->remote)
                snprintf(keyfile, sizeof(keyfile), "%s", st->key);
        else
                r = ctl_path(st, "cluster.key", keyfile, sizeof(keyfile));
        if (r == 0)
                r = lp_key_load(keyfile, key);
        if (r < 0)
                snprintf(err, cap, "cluster key %s: %s", keyfile, lp_key_strerror(r));
        return r;
}

int ctl_call_at(const char *what, const char *host, uint16_t port, const char *keyfile, const struct lp_fs_req *rq,
                int timeout_ms, struct lp_fs_resp *resp, char *err, size_t cap)
{
        uint8_t key[LP_KEY_SIZE];
        struct lp_client *c = NULL;
        char *msg = NULL;
        int r;

        r = lp_key_load(keyfile, key);
        if (r < 0) {
                snprintf(err, cap, "cluster key %s: %s", keyfile, lp_key_strerror(r));
                return r;
        }
        r = lp_client_connect(host, port, key, CTL_SITE, CTL_CALL_MS, &c);
        lp_key_wipe(key, sizeof(key));
        if (r < 0) {
                snprintf(err, cap, "%s at %s:%u: %s", what, host, port,
                         r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
                return r;
        }
        r = lp_fs_call(c, rq, timeout_ms, resp, &msg);
        if (r < 0)
                snprintf(err, cap, "%s at %s:%u: %s: %s%s%s", what, host, port, lp_fs_op_name(rq->op),
                         r == -ETIMEDOUT ? "no answer in time" : r == -EBADMSG || r == -EPROTO ?
                         "an answer that does not parse" : strerror(-r), msg && *msg ? ": " : "", msg ? msg : "");
        free(msg);
        lp_client_close(c);
        return r;
}

int ctl_parse_opts(int argc, char **argv, unsigned mask, int maxpos, struct ctl_opts *o)
{
        static const struct option lo[] = {
                { "state", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "sites", required_argument, NULL, 'n' },
                { "timeout", required_argument, NULL, 't' },
                { "mount", required_argument, NULL, 'm' },
                { "rebuild", no_argument, NULL, 'B' },
                { "recursive", no_argument, NULL, 'r' },
                { "force", no_argument, NULL, 'f' },
                { "addrs", required_argument, NULL, 'a' },
                { "copies", required_argument, NULL, 'c' },
                { "sync-copies", required_argument, NULL, 'y' },
                { "tree", no_argument, NULL, 'T' },
                { "config", required_argument, NULL, 'C' },
                { "dir", required_argument, NULL, 'D' },
                { "addr", required_argument, NULL, 'A' },
                { "id", required_argument, NULL, 'I' },
                { "key", required_argument, NULL, 'K' },
                { "css-port", required_argument, NULL, 'P' },
                { "storage-port", required_argument, NULL, 'Q' },
                { "site", required_argument, NULL, 'V' },
                { 0 },
        };
        static const unsigned bit[128] = {
                ['s'] = CTL_OPT_STATE, ['j'] = CTL_OPT_JSON, ['n'] = CTL_OPT_SITES,
                ['t'] = CTL_OPT_TIMEOUT, ['m'] = CTL_OPT_MOUNT, ['B'] = CTL_OPT_REBUILD,
                ['r'] = CTL_OPT_RECURSIVE,
                ['f'] = CTL_OPT_FORCE, ['a'] = CTL_OPT_ADDRS, ['c'] = CTL_OPT_COPIES, ['y'] = CTL_OPT_SYNC_COPIES,
                ['T'] = CTL_OPT_TREE,
                ['C'] = CTL_OPT_CONFIG, ['D'] = CTL_OPT_SITE, ['A'] = CTL_OPT_SITE, ['I'] = CTL_OPT_SITE,
                ['K'] = CTL_OPT_SITE, ['P'] = CTL_OPT_SITE, ['Q'] = CTL_OPT_SITE, ['V'] = CTL_OPT_VIEW,
        };
        int c, idx;
        char *end;
        long v;

        memset(o, 0, sizeof(*o));
        o->timeout_s = CTL_DEFAULT_TIMEOUT_S;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":r", lo, &idx)) != -1) {
                if (c == '?' || c == ':' || c >= 128 || !(bit[c] & mask)) {
                        const char *what = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

                        fprintf(stderr, "locusctl %s: %s: %s\n", argv[0], what,
                                c == ':' ? "needs a value" : "not an option of this command");
                        return -EINVAL;
                }
                switch (c) {
                case 's': o->state = optarg; break;
                case 'j': o->json = true; break;
                case 'm': o->mount = optarg; break;
                case 'B': o->rebuild = true; break;
                case 'r': o->recursive = true; break;
                case 'f': o->force = true; break;
                case 'T': o->tree = true; break;
                case 'n': o->sites = optarg; break;
                case 'a': o->addrs = optarg; break;
                case 'C': o->config = optarg; break;
                case 'D': o->dir = optarg; break;
                case 'A': o->addr = optarg; break;
                case 'K': o->key = optarg; break;
                case 'V':
                case 'I':
                case 'P':
                case 'Q':
                        errno = 0;
                        v = strtol(optarg, &end, 10);
                        if (errno || *end || !*optarg || v < (c == 'I' || c == 'V' ? 1 : 0) || v > 65535) {
                                fprintf(stderr, "locusctl %s: %s %s: a number from %d to 65535\n", argv[0],
                                        argv[optind - 1], optarg, c == 'I' || c == 'V' ? 1 : 0);
                                return -EINVAL;
                        }
                        if (c == 'V')
                                o->view_site = (int)v;
                        else if (c == 'I')
                                o->id = (int)v;
                        else if (c == 'P')
                                o->css_port = (int)v;
                        else
                                o->storage_port = (int)v;
                        break;
                case 'c':
                case 'y':
                case 't':
                        errno = 0;
                        v = strtol(optarg, &end, 10);
                        if (errno || *end || !*optarg || v < 1 || v > 3600) {
                                fprintf(stderr, "locusctl %s: --%s %s: a number from 1 to 3600\n", argv[0],
                                        c == 'c' ? "copies" : c == 'y' ? "sync-copies" : "timeout", optarg);
                                return -EINVAL;
                        }
                        if (c == 'c')
                                o->copies = (int)v;
                        else if (c == 'y')
                                o->sync_copies = (int)v;
                        else
                                o->timeout_s = (int)v;
                        break;
                }
        }
        for (int i = optind; i < argc; i++) {
                if (o->npos >= maxpos || o->npos >= CTL_MAX_POS) {
                        fprintf(stderr, "locusctl %s: unexpected argument '%s'\n", argv[0], argv[i]);
                        return -EINVAL;
                }
                o->pos[o->npos++] = argv[i];
        }
        return 0;
}
