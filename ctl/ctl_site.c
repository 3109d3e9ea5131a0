/*
 * ctl_site.c -- locusctl site init / site join: the configuration of one
 * site of a real cluster (docs/cluster.md, "Three machines"), and the
 * view of such a cluster that --config gives the other commands.
 *
 * A site's files, all under one folder (--dir, default /etc/locusfs for
 * the configuration and /var/lib/locusfs for the state):
 *   site.conf        read by locus-storaged and locus-cssd (cm_conf.h)
 *   cluster.key      the cluster key (0400)
 *   cluster.json     site join: the site and mount tables it received
 *   data/, css/      the storage site's data, the CSS's state
 *
 * site init makes a new cluster: a new key, site 1's site.conf (this site
 * runs the CSS), and the root file group (locus-storaged --create-root,
 * started until it is ready, then stopped).  site join ADDR --key FILE
 * makes another site of the cluster whose CSS is at ADDR: it asks that CSS
 * for its site and mount tables (which proves the key), takes the next
 * free site id, and writes its site.conf; its locus-storaged registers
 * with the CSS when it starts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm.h"
#include "cm_conf.h"
#include "css_json.h"
#include "ctl.h"
#include "lp_conn.h"

#define SITE_CSS_PORT 7700
#define SITE_STORAGE_PORT 7701

int ctl_state_from_config(const char *file, struct ctl_state *st)
{
        struct cm_conf c;
        char err[PATH_MAX + 256];
        int r = cm_conf_load(file, &c, err, sizeof(err));

        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return r;
        }
        if (!c.css_port || !c.key[0]) {
                fprintf(stderr, "locusctl: %s: needs [css] address and [site] key to reach the cluster\n", file);
                return -EINVAL;
        }
        memset(st, 0, sizeof(*st));
        snprintf(st->dir, sizeof(st->dir), "%s", file);
        st->exists = true;
        st->nsites = 1;
        st->site = c.site ? (unsigned)c.site : 1;
        snprintf(st->addrs[0], sizeof(st->addrs[0]), "%s", c.address[0] ? c.address : "127.0.0.1");
        st->remote = true;
        snprintf(st->css_host, sizeof(st->css_host), "%s", c.css_host);
        st->css_port = c.css_port;
        snprintf(st->key, sizeof(st->key), "%s", c.key);
        /* requests leave from the site's address, like its daemons' */
        if (c.address[0] && lp_client_set_source(c.address) < 0) {
                fprintf(stderr, "locusctl: %s: [site] address %s is not a numeric address\n", file, c.address);
                return -EINVAL;
        }
        return 0;
}

/* The folders of a site: configuration (conf) and state (var). */
struct site_paths {
        char conf[PATH_MAX], var[PATH_MAX];
        char file[PATH_MAX + 16], key[PATH_MAX + 16], data[PATH_MAX + 16], css[PATH_MAX + 16], tables[PATH_MAX + 16];
};

static int site_paths(const struct ctl_opts *o, struct site_paths *p)
{
        int r;

        if (o->dir) {
                r = ctl_abspath(o->dir, p->conf, sizeof(p->conf));
                if (r < 0)
                        return r;
                memcpy(p->var, p->conf, sizeof(p->var));
        } else {
                snprintf(p->conf, sizeof(p->conf), "/etc/locusfs");
                snprintf(p->var, sizeof(p->var), "/var/lib/locusfs");
        }
        if (strlen(p->conf) + 16 > sizeof(p->conf) || strlen(p->var) + 16 > sizeof(p->var))
                return -ENAMETOOLONG;
        snprintf(p->file, sizeof(p->file), "%s/site.conf", p->conf);
        snprintf(p->key, sizeof(p->key), "%s/cluster.key", p->conf);
        snprintf(p->tables, sizeof(p->tables), "%s/cluster.json", p->conf);
        snprintf(p->data, sizeof(p->data), "%s/data", p->var);
        snprintf(p->css, sizeof(p->css), "%s/css", p->var);
        return 0;
}

/* css_host:css_port: the cluster's CSS; own_css_port: where this site's
 * locus-cssd listens (the CSS itself at init; at join, a cssd that runs
 * the membership service, docs/cluster.md "Membership"). */
static int write_conf(const struct site_paths *p, unsigned id, const char *addr, const char *css_host,
                      unsigned css_port, bool runs_css, unsigned own_css_port, unsigned storage_port)
{
        char text[6 * PATH_MAX], css[PATH_MAX + 256];
        int n;

        snprintf(css, sizeof(css), "%sstate = %s\nport = %u\n",
                 runs_css ? "" : "; this site's locus-cssd runs the membership service; the CSS of every\n"
                                 "; file group is the one at [css] address (docs/cluster.md)\n",
                 p->css, own_css_port);
        n = snprintf(text, sizeof(text),
                     "; LocusFS site %u (written by locusctl site %s); see docs/cluster.md\n"
                     "[site]\n"
                     "id = %u\n"
                     "address = %s\n"
                     "key = %s\n"
                     "\n"
                     "[css]\n"
                     "address = %s%s%s:%u\n"
                     "%s"
                     "\n"
                     "[storage]\n"
                     "data = %s\n"
                     "port = %u\n",
                     id, runs_css ? "init" : "join", id, addr, p->key, strchr(css_host, ':') ? "[" : "", css_host,
                     strchr(css_host, ':') ? "]" : "", css_port, css, p->data, storage_port);
        if (n < 0 || (size_t)n >= sizeof(text))
                return -ENAMETOOLONG;
        return cm_write_file(p->file, text);
}

static bool numeric_addr(const char *a)
{
        unsigned char buf[16];

        return a && strlen(a) < CTL_ADDR_MAX && (inet_pton(AF_INET, a, buf) == 1 || inet_pton(AF_INET6, a, buf) == 1);
}

/* site init: a new cluster whose first site is this one. */
static int site_init(const struct ctl_opts *o)
{
        struct site_paths p;
        char bin[PATH_MAX], where[PATH_MAX + 64], log[PATH_MAX + 16], info[64], how[256], conf_arg[PATH_MAX + 16];
        unsigned css_port = o->css_port ? (unsigned)o->css_port : SITE_CSS_PORT;
        unsigned ss_port = o->storage_port ? (unsigned)o->storage_port : SITE_STORAGE_PORT;
        pid_t pid;
        int r;

        if (!numeric_addr(o->addr)) {
                fprintf(stderr, "usage: locusctl site init --addr ADDR [--dir DIR] [--css-port P] [--storage-port P]\n"
                                "(ADDR: this site's numeric address, which every other site can reach)\n");
                return 2;
        }
        if (o->id && o->id != 1) {
                fprintf(stderr, "locusctl site init: the first site of a cluster is site 1\n");
                return 2;
        }
        if (site_paths(o, &p) < 0) {
                fprintf(stderr, "locusctl: --dir %s: path too long\n", o->dir);
                return 1;
        }
        if (access(p.file, F_OK) == 0 || access(p.key, F_OK) == 0) {
                fprintf(stderr, "locusctl: %s already holds a site (%s or %s exists); nothing was done\n", p.conf,
                        p.file, p.key);
                return 1;
        }
        if ((r = cm_mkdir_p(p.conf, 0755)) < 0 || (r = cm_mkdir_p(p.data, 0700)) < 0 || (r = cm_mkdir_p(p.css, 0700)) < 0) {
                fprintf(stderr, "locusctl: cannot create the site's folders under %s: %s\n", p.var, strerror(-r));
                return 1;
        }
        r = lp_key_generate(p.key);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot create the cluster key %s: %s\n", p.key, lp_key_strerror(r));
                return 1;
        }
        r = write_conf(&p, 1, o->addr, o->addr, css_port, true, css_port, ss_port);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot write %s: %s\n", p.file, strerror(-r));
                return 1;
        }
        printf("new cluster: key %s, site 1 at %s (CSS port %u, storage port %u), configuration %s\n", p.key,
               o->addr, css_port, ss_port, p.file);
        /* The root file group, once for the cluster: storaged --create-root
         * until it is ready (the container exists then), then stopped. */
        r = ctl_find_bin(CTL_STORAGED, bin, sizeof(bin), where, sizeof(where));
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot find locus-storaged (looked in %s); set LOCUS_BIN_DIR\n", where);
                return 1;
        }
        snprintf(log, sizeof(log), "%s/init.log", p.var);
        snprintf(conf_arg, sizeof(conf_arg), "%s", p.file);
        {
                char listen[CTL_ADDR_MAX + 8];
                char *argv[] = { "locus-storaged", "--config", conf_arg, "--listen", listen, "--create-root",
                                 "--ready-fd", "3", NULL };

                /* any port: the configured one may be taken by the real daemon already */
                snprintf(listen, sizeof(listen), strchr(o->addr, ':') ? "[%s]:0" : "%s:0", o->addr);
                r = ctl_spawn(bin, argv, log, CTL_DEFAULT_TIMEOUT_S * 1000, &pid, info, sizeof(info), how,
                              sizeof(how));
                if (r < 0) {
                        fprintf(stderr, "locusctl: the root file group was not created: locus-storaged %s\n", how);
                        ctl_print_tail(stderr, log, CTL_LOG_TAIL);
                        return 1;
                }
                ctl_stop(pid, ctl_progs[CTL_STORAGED].bin, CTL_STOP_TIMEOUT_MS, NULL);
        }
        printf("created the root file group in %s\n", p.data);
        printf("next: start the daemons (systemctl enable --now locus-cssd locus-storaged, or\n"
               "  locus-cssd --config %s & locus-storaged --config %s &),\n"
               "then on every other machine: locusctl site join %s:%u --key FILE --addr ITS-ADDRESS\n",
               p.file, p.file, o->addr, css_port);
        return 0;
}

/* The highest site id the CSS knows (registered, or holding a container). */
static uint64_t highest_site(const struct lp_fs_resp *mt, const struct css_jval *status)
{
        const struct css_jval *a = status ? css_json_get(status, "storage_sites") : NULL;
        uint64_t max = 0, id;

        for (size_t i = 0; a && a->type == CSS_JARR && i < a->n; i++)
                if (css_json_uint(css_json_get(&a->items[i], "site"), UINT64_MAX, &id) && id > max)
                        max = id;
        for (size_t i = 0; i < mt->nmounts; i++) {
                if (mt->mounts[i].site > max)
                        max = mt->mounts[i].site;
                for (size_t h = 0; h < mt->mounts[i].nholders; h++)
                        if (mt->mounts[i].holders[h].site > max)
                                max = mt->mounts[i].holders[h].site;
        }
        return max;
}

/* site join ADDR:PORT --key FILE --addr ADDR: another site of that cluster. */
static int site_join(const struct ctl_opts *o)
{
        struct lp_fs_req rq = { 0 };
        struct lp_fs_resp mt = { 0 }, cs = { 0 };
        struct css_jval *status = NULL;
        struct site_paths p;
        char host[CTL_ADDR_MAX], err[1024], *tables = NULL;
        unsigned ss_port = o->storage_port ? (unsigned)o->storage_port : SITE_STORAGE_PORT;
        uint16_t port;
        uint64_t id;
        int r, ret = 1;

        if (o->npos != 1 || !o->key || !numeric_addr(o->addr) ||
            cm_parse_hostport(o->pos[0], host, sizeof(host), &port) < 0 || !port) {
                fprintf(stderr, "usage: locusctl site join CSS-HOST:PORT --key FILE --addr ADDR [--dir DIR] [--id N]\n"
                                "                          [--css-port P] [--storage-port P]\n"
                                "(the CSS of the cluster, its key, and this site's numeric address)\n");
                return 2;
        }
        if (site_paths(o, &p) < 0) {
                fprintf(stderr, "locusctl: --dir %s: path too long\n", o->dir);
                return 1;
        }
        if (access(p.file, F_OK) == 0) {
                fprintf(stderr, "locusctl: %s exists: this folder holds a site already; nothing was done\n", p.file);
                return 1;
        }
        /* Talk to the CSS from this site's address, with the key given. */
        if (lp_client_set_source(o->addr) < 0) {
                fprintf(stderr, "locusctl: --addr %s: not a numeric address\n", o->addr);
                return 2;
        }
        rq.op = LP_FS_CSS_MOUNTTABLE;
        r = ctl_call_at("locus-cssd", host, port, o->key, &rq, CTL_CALL_MS, &mt, err, sizeof(err));
        if (r == 0 && mt.status < 0)
                snprintf(err, sizeof(err), "CSS_MOUNTTABLE: %s", strerror(-(r = mt.status)));
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot join the cluster at %s: %s\n", o->pos[0], err);
                goto out;
        }
        rq.op = LP_FS_CSS_STATUS;
        r = ctl_call_at("locus-cssd", host, port, o->key, &rq, CTL_CALL_MS, &cs, err, sizeof(err));
        if (r < 0 || cs.status < 0 || !cs.text || css_json_parse(cs.text, strlen(cs.text), &status) < 0) {
                fprintf(stderr, "locusctl: cannot join the cluster at %s: CSS_STATUS: %s\n", o->pos[0],
                        r < 0 ? err : cs.status < 0 ? strerror(-cs.status) : "no report that parses");
                goto out;
        }
        id = o->id ? (uint64_t)o->id : highest_site(&mt, status) + 1;
        {
                const struct css_jval *a = css_json_get(status, "storage_sites");
                uint64_t x;

                for (size_t i = 0; o->id && a && a->type == CSS_JARR && i < a->n; i++)
                        if (css_json_uint(css_json_get(&a->items[i], "site"), UINT64_MAX, &x) && x == id) {
                                fprintf(stderr, "locusctl: site %" PRIu64 " is registered with the CSS already; "
                                        "choose another --id\n", id);
                                goto out;
                        }
        }
        if (id > 65535) {
                fprintf(stderr, "locusctl: no site id left\n");
                goto out;
        }
        /* The tables it received: kept beside the configuration. */
        {
                struct css_jw w;

                css_jw_init(&w);
                css_jw_obj_begin(&w);
                css_jw_key(&w, "css");
                css_jw_str(&w, o->pos[0]);
                css_jw_key(&w, "site");
                css_jw_u64(&w, id);
                css_jw_key(&w, "sites");
                {
                        const struct css_jval *a = css_json_get(status, "storage_sites");

                        css_jw_arr_begin(&w);
                        for (size_t i = 0; a && a->type == CSS_JARR && i < a->n; i++) {
                                const struct css_jval *h = css_json_get(&a->items[i], "host");
                                uint64_t sid = 0, sport = 0;

                                css_json_uint(css_json_get(&a->items[i], "site"), UINT64_MAX, &sid);
                                css_json_uint(css_json_get(&a->items[i], "port"), 65535, &sport);
                                css_jw_obj_begin(&w);
                                css_jw_key(&w, "site");
                                css_jw_u64(&w, sid);
                                css_jw_key(&w, "host");
                                css_jw_str(&w, h && h->type == CSS_JSTR ? h->str : NULL);
                                css_jw_key(&w, "port");
                                css_jw_u64(&w, sport);
                                css_jw_obj_end(&w);
                        }
                        css_jw_arr_end(&w);
                }
                css_jw_key(&w, "file_groups");
                css_jw_arr_begin(&w);
                for (size_t i = 0; i < mt.nmounts; i++) {
                        css_jw_obj_begin(&w);
                        css_jw_key(&w, "fg");
                        css_jw_u64(&w, mt.mounts[i].fg);
                        css_jw_key(&w, "name");
                        css_jw_str(&w, mt.mounts[i].name);
                        css_jw_key(&w, "path");
                        css_jw_str(&w, mt.mounts[i].path);
                        css_jw_key(&w, "holders");
                        css_jw_arr_begin(&w);
                        for (size_t h = 0; h < mt.mounts[i].nholders; h++)
                                css_jw_u64(&w, mt.mounts[i].holders[h].site);
                        css_jw_arr_end(&w);
                        css_jw_obj_end(&w);
                }
                css_jw_arr_end(&w);
                css_jw_obj_end(&w);
                if (css_jw_finish(&w, &tables) < 0) {
                        fprintf(stderr, "locusctl: out of memory\n");
                        goto out;
                }
        }
        if ((r = cm_mkdir_p(p.conf, 0755)) < 0 || (r = cm_mkdir_p(p.data, 0700)) < 0) {
                fprintf(stderr, "locusctl: cannot create the site's folders under %s: %s\n", p.var, strerror(-r));
                goto out;
        }
        /* The key: a copy, mode 0400 like the one site init made. */
        {
                uint8_t key[LP_KEY_SIZE];
                char hex[2 * LP_KEY_SIZE + 2];
                int fd;

                r = lp_key_load(o->key, key);
                if (r < 0) {
                        fprintf(stderr, "locusctl: %s: %s\n", o->key, lp_key_strerror(r));
                        goto out;
                }
                for (size_t i = 0; i < LP_KEY_SIZE; i++)
                        snprintf(hex + 2 * i, 3, "%02x", key[i]);
                hex[2 * LP_KEY_SIZE] = '\n';
                hex[2 * LP_KEY_SIZE + 1] = 0;
                lp_key_wipe(key, sizeof(key));
                fd = open(p.key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
                if (fd < 0 || write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) || fsync(fd) < 0) {
                        r = -errno;
                        fprintf(stderr, "locusctl: cannot write the cluster key %s: %s\n", p.key, strerror(-r));
                        if (fd >= 0)
                                close(fd);
                        lp_key_wipe(hex, sizeof(hex));
                        goto out;
                }
                close(fd);
                lp_key_wipe(hex, sizeof(hex));
        }
        r = cm_write_file(p.tables, tables);
        if (r == 0)
                r = write_conf(&p, (unsigned)id, o->addr, host, port, false,
                               o->css_port ? (unsigned)o->css_port : SITE_CSS_PORT, ss_port);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot write %s: %s\n", p.file, strerror(-r));
                goto out;
        }
        printf("joined the cluster at %s as site %" PRIu64 " (%s): configuration %s, the site and mount tables "
               "in %s\n", o->pos[0], id, o->addr, p.file, p.tables);
        printf("next: start the storage site (systemctl enable --now locus-storaged, or locus-storaged --config %s);\n"
               "it registers with the CSS, and file groups can be placed on it: locusctl fg create NAME --mount PATH "
               "--sites %" PRIu64 " --config %s\n", p.file, id, p.file);
        ret = 0;
out:
        free(tables);
        css_json_free(status);
        if (mt.lp__priv || mt.mounts)
                lp_fs_resp_release(&mt);
        if (cs.lp__priv || cs.text)
                lp_fs_resp_release(&cs);
        return ret;
}

int ctl_cmd_site(int argc, char **argv)
{
        struct ctl_opts o;

        if (argc >= 2 && !strcmp(argv[1], "init")) {
                if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_SITE, 0, &o) < 0)
                        return 2;
                return site_init(&o);
        }
        if (argc >= 2 && !strcmp(argv[1], "join")) {
                if (ctl_parse_opts(argc - 1, argv + 1, CTL_OPT_SITE, 1, &o) < 0)
                        return 2;
                return site_join(&o);
        }
        fprintf(stderr, "usage: locusctl site init --addr ADDR [--dir DIR] [--css-port P] [--storage-port P]\n"
                        "       locusctl site join CSS-HOST:PORT --key FILE --addr ADDR [--dir DIR] [--id N]\n"
                        "                          [--css-port P] [--storage-port P]\n");
        return 2;
}
