/*
 * ctl_net.c -- `locusctl dev partition DIR SPEC` and `locusctl dev heal DIR`:
 * network partitions of a dev cluster of several sites, for people trying
 * the partition and merge behaviour out (issue #9).  The tests cut sites
 * apart the same way (tests/integration/lib.sh net_cut).
 *
 * A partition is a packet filter: an nftables table of the cluster's own,
 * `inet locusfs_dev_<hash of the state directory>`, whose output hook drops
 * every packet from an address of one group to an address of another (on
 * loopback every packet passes the output hook once, so that cuts both
 * directions).  Each site's daemons and mount bind every socket to the
 * site's address, so the rules cut exactly those sites apart.  The table is
 * replaced as a whole, atomically (one `nft -f -` transaction): a second
 * `dev partition` replaces the first, `dev heal` and `dev down` delete it.
 * The spec in effect is kept in STATE/partition, which `dev heal` removes.
 *
 * SPEC: groups of site ids separated by '/', ids within a group by ','
 * ("1,2/3"); every site of the cluster in exactly one group, at least two
 * groups.  nft needs CAP_NET_ADMIN (root): a refusal is reported as nft
 * words it, nothing else is changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm.h"
#include "ctl.h"

#define NET_SPEC_MAX 256
#define NET_ERR_MAX 1024

/* The nftables table of the cluster in st: its name depends on nothing but
 * the state directory, so every locusctl of that cluster finds it. */
static void table_name(const struct ctl_state *st, char *buf, size_t cap)
{
        uint32_t h = 2166136261u;       /* FNV-1a: a name, not a checksum */

        for (const char *p = st->dir; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(buf, cap, "locusfs_dev_%08x", h);
}

/*
 * Parse SPEC into group[k] = the group of site k (1-based; 0 = not named)
 * for a cluster of nsites sites.  Returns the number of groups, or -1 with
 * the reason in err.
 */
static int parse_spec(const char *spec, unsigned nsites, unsigned group[CTL_MAX_SITES + 1], char *err, size_t cap)
{
        unsigned g = 1, named = 0;
        const char *p = spec;

        memset(group, 0, sizeof(group[0]) * (CTL_MAX_SITES + 1));
        for (;;) {
                char *end;
                unsigned long k;

                if (*p < '0' || *p > '9') {
                        snprintf(err, cap, "expected a site id at \"%s\"", p);
                        return -1;
                }
                errno = 0;
                k = strtoul(p, &end, 10);
                if (errno || k < 1 || k > nsites) {
                        snprintf(err, cap, "no site %.*s in this cluster (sites 1 to %u)", (int)(end - p), p,
                                 nsites);
                        return -1;
                }
                if (group[k]) {
                        snprintf(err, cap, "site %lu is named twice", k);
                        return -1;
                }
                group[k] = g;
                named++;
                p = end;
                if (*p == ',') {
                        p++;
                } else if (*p == '/') {
                        p++;
                        g++;
                } else if (*p == 0) {
                        break;
                } else {
                        snprintf(err, cap, "unexpected '%c' (groups are separated by '/', sites by ',')", *p);
                        return -1;
                }
        }
        if (g < 2) {
                snprintf(err, cap, "one group is no partition: name at least two, e.g. 1,2/3");
                return -1;
        }
        for (unsigned k = 1; k <= nsites; k++)
                if (!group[k]) {
                        snprintf(err, cap, "site %u is in no group (every site of the %u must be named once)", k,
                                 nsites);
                        return -1;
                }
        (void)named;
        return (int)g;
}

/*
 * Run `nft -f -` with script on its standard input.  0, or -1 with nft's
 * own words (or why it could not run) in err.
 */
static int run_nft(const char *script, char *err, size_t cap)
{
        int in[2], out[2], status;
        size_t len = strlen(script), got = 0;
        pid_t pid;

        if (pipe2(in, O_CLOEXEC) < 0)
                goto fail_errno;
        if (pipe2(out, O_CLOEXEC) < 0) {
                close(in[0]);
                close(in[1]);
                goto fail_errno;
        }
        pid = fork();
        if (pid < 0) {
                close(in[0]);
                close(in[1]);
                close(out[0]);
                close(out[1]);
                goto fail_errno;
        }
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(out[1], 1);
                dup2(out[1], 2);
                execlp("nft", "nft", "-f", "-", (char *)NULL);
                dprintf(2, "cannot run nft: %s (package nftables, scripts/deps.sh)", strerror(errno));
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        {
                void (*old)(int) = signal(SIGPIPE, SIG_IGN);

                for (size_t off = 0; off < len;) {
                        ssize_t n = write(in[1], script + off, len - off);

                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                break;          /* nft ended early: its status says why */
                        off += (size_t)n;
                }
                signal(SIGPIPE, old);
        }
        close(in[1]);
        err[0] = 0;
        for (;;) {
                ssize_t n = read(out[0], err + got, cap - 1 - got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
                if (got == cap - 1)
                        break;
        }
        err[got] = 0;
        close(out[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        while (got && (err[got - 1] == '\n' || err[got - 1] == ' '))
                err[--got] = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (!got)
                snprintf(err, cap, "nft failed (%s %d)", WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;

fail_errno:
        snprintf(err, cap, "cannot run nft: %s", strerror(errno));
        return -1;
}

/* Delete the cluster's table if it is there.  0, or -1 with err. */
static int delete_table(const struct ctl_state *st, char *err, size_t cap)
{
        char table[64], script[256];

        table_name(st, table, sizeof(table));
        /* "add table" first: deleting a table that is not there is an error */
        snprintf(script, sizeof(script), "add table inet %s\ndelete table inet %s\n", table, table);
        return run_nft(script, err, cap);
}

/* The address list of group g, as nft set elements: "127.0.0.1, 127.0.0.2". */
static void group_addrs(const struct ctl_state *st, const unsigned *group, unsigned g, char *buf, size_t cap)
{
        size_t len = 0;

        buf[0] = 0;
        for (unsigned k = 1; k <= st->nsites; k++)
                if (group[k] == g && len < cap)
                        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "",
                                                st->addrs[k - 1]);
}

/* DIR must be where this cluster of several sites is mounted. */
static int check_cluster(const struct ctl_opts *o, const char *verb, struct ctl_state *st)
{
        char dir[PATH_MAX], rec[PATH_MAX] = "", file[PATH_MAX];
        int r;

        r = ctl_state_resolve(o->state, st);
        if (r < 0) {
                fprintf(stderr, "locusctl: cannot tell where the state directory is: %s (use --state)\n",
                        strerror(-r));
                return -1;
        }
        if (!st->exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?)\n", st->dir);
                return -1;
        }
        if (st->nsites < 2) {
                fprintf(stderr, "locusctl: the dev cluster in %s has one site: there is nothing to %s "
                        "(dev up DIR --sites N makes several)\n", st->dir, verb);
                return -1;
        }
        r = ctl_abspath(o->pos[0], dir, sizeof(dir));
        if (r < 0) {
                fprintf(stderr, "locusctl: %s: %s\n", o->pos[0], strerror(-r));
                return -1;
        }
        if (ctl_path(st, "run/mountpoint", file, sizeof(file)) == 0)
                cm_read_file(file, rec, sizeof(rec));
        if (strcmp(rec, dir) != 0) {
                fprintf(stderr, "locusctl: %s is not where the dev cluster in %s is mounted; nothing was "
                        "done\n", dir, st->dir);
                if (rec[0])
                        fprintf(stderr, "locusctl: (it is mounted at %s)\n", rec);
                return -1;
        }
        return 0;
}

static int dev_partition(const struct ctl_opts *o)
{
        unsigned group[CTL_MAX_SITES + 1];
        char err[NET_ERR_MAX], table[64], file[PATH_MAX];
        char *script = NULL;
        size_t slen = 0;
        FILE *s;
        struct ctl_state st;
        int ngroups;

        if (o->npos != 2) {
                fprintf(stderr, "usage: locusctl dev partition DIR SPEC [--state PATH]   (SPEC: e.g. 1,2/3)\n");
                return 2;
        }
        if (check_cluster(o, "partition", &st) < 0)
                return 1;
        if (strlen(o->pos[1]) >= NET_SPEC_MAX) {
                fprintf(stderr, "locusctl: partition spec too long\n");
                return 2;
        }
        ngroups = parse_spec(o->pos[1], st.nsites, group, err, sizeof(err));
        if (ngroups < 0) {
                fprintf(stderr, "locusctl: bad partition %s: %s\n", o->pos[1], err);
                return 2;
        }
        table_name(&st, table, sizeof(table));
        s = open_memstream(&script, &slen);
        if (!s) {
                fprintf(stderr, "locusctl: out of memory\n");
                return 1;
        }
        /* one transaction: the old table (if any) goes, the new one comes */
        fprintf(s, "add table inet %s\ndelete table inet %s\n", table, table);
        fprintf(s, "table inet %s {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n",
                table);
        for (int a = 1; a <= ngroups; a++)
                for (int b = 1; b <= ngroups; b++) {
                        char from[CTL_MAX_SITES * (CTL_ADDR_MAX + 2)], to[CTL_MAX_SITES * (CTL_ADDR_MAX + 2)];

                        if (a == b)
                                continue;
                        group_addrs(&st, group, (unsigned)a, from, sizeof(from));
                        group_addrs(&st, group, (unsigned)b, to, sizeof(to));
                        fprintf(s, "\t\tip saddr { %s } ip daddr { %s } drop\n", from, to);
                }
        fprintf(s, "\t}\n}\n");
        if (fclose(s) != 0 || !script) {
                free(script);
                fprintf(stderr, "locusctl: out of memory\n");
                return 1;
        }
        if (run_nft(script, err, sizeof(err)) < 0) {
                fprintf(stderr, "locusctl: the packet filter refused the partition: %s\n"
                        "locusctl: (dev partition needs root, CAP_NET_ADMIN, and nftables); nothing was changed\n",
                        err);
                free(script);
                return 1;
        }
        free(script);
        if (ctl_path(&st, "partition", file, sizeof(file)) == 0 && cm_write_file(file, o->pos[1]) < 0)
                fprintf(stderr, "locusctl: note: cannot record the partition in %s: %s\n", file,
                        strerror(errno));
        printf("dev cluster in %s is partitioned: %s (nftables table inet %s); `locusctl dev heal %s%s%s` "
               "joins it again\n", st.dir, o->pos[1], table, o->pos[0], o->state ? " --state " : "",
               o->state ? o->state : "");
        return 0;
}

int ctl_net_heal(const struct ctl_state *st, bool quiet)
{
        char err[NET_ERR_MAX], file[PATH_MAX], rec[NET_SPEC_MAX] = "";
        bool had;

        if (ctl_path(st, "partition", file, sizeof(file)) < 0)
                return -ENAMETOOLONG;
        had = cm_read_file(file, rec, sizeof(rec)) >= 0;
        if (!had && quiet)
                return 0;       /* dev down: nothing was cut, nft need not be there */
        if (delete_table(st, err, sizeof(err)) < 0) {
                fprintf(stderr, "locusctl: cannot remove the partition's packet filter: %s\n", err);
                return -EPERM;
        }
        unlink(file);
        if (!quiet)
                printf(had ? "dev cluster in %s is whole again (partition %s removed)\n" :
                       "dev cluster in %s was not partitioned%s\n", st->dir, rec);
        return 0;
}

static int dev_heal(const struct ctl_opts *o)
{
        struct ctl_state st;

        if (o->npos != 1) {
                fprintf(stderr, "usage: locusctl dev heal DIR [--state PATH]\n");
                return 2;
        }
        if (check_cluster(o, "heal", &st) < 0)
                return 1;
        return ctl_net_heal(&st, false) < 0 ? 1 : 0;
}

int ctl_cmd_dev_net(int argc, char **argv)
{
        struct ctl_opts o;
        bool part = !strcmp(argv[0], "partition");

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE, part ? 2 : 1, &o) < 0)
                return 2;
        return part ? dev_partition(&o) : dev_heal(&o);
}
