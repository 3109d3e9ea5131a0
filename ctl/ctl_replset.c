/*
 * ctl_replset.c -- locusctl replicas set PATH N [-r] [--sites A,B,...]
 * [--state S | --config F] [--timeout SEC]: change the copies of what
 * exists (docs/replication.md, "Copies policies").
 *
 * PATH is a path of the LocusFS name space (from its root).  The copies
 * policy is set at the primary of PATH's file group, as extended
 * attributes: user.locus.copies = N, then (with --sites) user.locus.sites.
 * On a directory that is its policy (inherited by what is created inside
 * afterwards); on a regular file the storage site resolves a new placement
 * (storage/ss_place.h).  With -r, every directory and regular file below
 * PATH in the same file group gets the same (READDIR at the primary, never
 * crossing into another file group).
 *
 * Then it waits until every regular file it set has its data copies: the
 * holders whose copy has the primary's vector and keeps the data (SS_FETCH
 * VV at each holder, LP_FS_FETCH_NODATA) number min(N, holders) or more
 * (a site that stood in for the home keeps an extra copy, ss_place.h
 * [L4], [L5]); a holder left out has dropped its pages with the install
 * of that version.  A
 * progress bar on a terminal (files done of the total), else a line a
 * second.  Exit 0 when they match, 1 after --timeout (the files still
 * pending are listed), 2 for a usage error.
 *
 * Interrupted and rerun: setting the same policy again is harmless (the
 * placement resolves to the same sites), so a rerun finishes the job.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm.h"
#include "ctl.h"
#include "lp_conn.h"

#define SET_TIMEOUT_S 300
#define MAX_DEPTH 256

struct rs {
        const struct lp_fs_mount *m;
        const uint8_t *key;
        struct lp_client *c;            /* to the primary */
        const char *copies, *sites;     /* the values set */
        bool recursive, tty;
        uint64_t *files;                /* regular files set: to wait for */
        size_t nfiles, cap, dirs;
        char err[512];
};

static int call_primary(struct rs *s, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        int r;

        if (!s->m->port) {
                snprintf(s->err, sizeof(s->err), "the file group's primary (site %" PRIu64 ") is not registered",
                         s->m->site);
                return -EHOSTUNREACH;
        }
        r = ctl_call_conn(s->m->host, (uint16_t)s->m->port, s->key, &s->c, q, a, s->err, sizeof(s->err));
        if (r < 0)
                return r;
        if (a->status < 0) {
                r = a->status;
                snprintf(s->err, sizeof(s->err), "%s: %s%s%s", lp_fs_op_name(q->op), strerror(-r),
                         a->message ? ": " : "", a->message ? a->message : "");
                lp_fs_resp_release(a);
                return r;
        }
        return 0;
}

static int setx(struct rs *s, uint64_t ino, const char *name, const char *value, const char *path)
{
        struct lp_fs_req q = { .op = LP_FS_SETXATTR, .fg = s->m->fg, .ino = ino, .name = (const uint8_t *)name,
                               .namelen = strlen(name), .data = (const uint8_t *)value, .datalen = strlen(value) };
        struct lp_fs_resp a;
        size_t len;
        int r = call_primary(s, &q, &a);

        if (r < 0) {
                len = strlen(s->err);
                snprintf(s->err + len, sizeof(s->err) - len, " (%s, %s)", path, name);
                return r;
        }
        lp_fs_resp_release(&a);
        return 0;
}

/* Set the policy on ino (mode) and, with -r, below it. */
static int set_one(struct rs *s, uint64_t ino, uint32_t mode, const char *path, int depth)
{
        struct lp_fs_req q = { .op = LP_FS_READDIR, .fg = s->m->fg, .ino = ino, .length = 512 };
        int r;

        if (!S_ISDIR(mode) && !S_ISREG(mode))
                return 0;
        /* copies first: on a file it resolves with its present sites as
         * wishes; then the sites asked for, resolved with the new N. */
        r = setx(s, ino, "user.locus.copies", s->copies, path);
        if (r >= 0 && s->sites)
                r = setx(s, ino, "user.locus.sites", s->sites, path);
        if (r < 0)
                return r;
        if (S_ISREG(mode)) {
                if (s->nfiles == s->cap) {
                        size_t ncap = s->cap ? 2 * s->cap : 256;
                        uint64_t *nf = realloc(s->files, ncap * sizeof(*nf));

                        if (!nf) {
                                snprintf(s->err, sizeof(s->err), "out of memory");
                                return -ENOMEM;
                        }
                        s->files = nf;
                        s->cap = ncap;
                }
                s->files[s->nfiles++] = ino;
                return 0;
        }
        s->dirs++;
        if (!s->recursive)
                return 0;
        if (depth > MAX_DEPTH) {
                snprintf(s->err, sizeof(s->err), "%s: deeper than %d levels", path, MAX_DEPTH);
                return -ELOOP;
        }
        for (;;) {
                struct lp_fs_resp a;
                bool eof;

                r = call_primary(s, &q, &a);
                if (r < 0)
                        return r;
                eof = a.eof || !a.nentries;
                for (size_t i = 0; r >= 0 && i < a.nentries; i++) {
                        const struct lp_fs_dirent *e = &a.entries[i];
                        char sub[4096];

                        q.offset = e->next;
                        if (!ctl_child_path(path, e, sub, sizeof(sub)))
                                continue;
                        r = set_one(s, e->ino, e->type == DT_DIR ? S_IFDIR : e->type == DT_REG ? S_IFREG : 0, sub,
                                    depth + 1);
                }
                lp_fs_resp_release(&a);
                if (r < 0)
                        return r;
                if (eof)
                        return 0;
        }
}

/* Are the data copies of ino as asked?  1 yes, 0 not yet (why in note). */
static int file_done(struct rs *s, struct lp_client **cs, uint64_t ino, unsigned want, char *note, size_t cap)
{
        char pvv[2 * LP_FS_VV_MAX + 1], vv[2 * LP_FS_VV_MAX + 1], err[320];
        unsigned ndata = 0;
        uint32_t mode;
        uint64_t size;
        bool gone, nodata;
        const struct lp_fs_holder *prim = NULL;

        for (size_t i = 0; i < s->m->nholders; i++)
                if (s->m->holders[i].site == s->m->site)
                        prim = &s->m->holders[i];
        if (!prim || ctl_copy_vv(prim, s->key, &cs[prim - s->m->holders], s->m->fg, ino, pvv, &gone, &mode, &size,
                                 &nodata, err, sizeof(err)) < 0) {
                snprintf(note, cap, "the primary: %s", prim ? err : "not a holder");
                return 0;
        }
        if (gone)
                return 1;               /* deleted meanwhile: nothing to wait for */
        for (size_t i = 0; i < s->m->nholders; i++) {
                const struct lp_fs_holder *h = &s->m->holders[i];

                if (h->adding)
                        continue;
                if (ctl_copy_vv(h, s->key, &cs[i], s->m->fg, ino, vv, &gone, &mode, &size, &nodata, err,
                                sizeof(err)) < 0) {
                        snprintf(note, cap, "site %" PRIu64 ": %s", h->site, err);
                        return 0;
                }
                if (strcmp(vv, pvv)) {
                        snprintf(note, cap, "site %" PRIu64 " has not pulled inode %#" PRIx64 " yet", h->site, ino);
                        return 0;
                }
                ndata += !nodata;
        }
        if (ndata < want) {
                snprintf(note, cap, "inode %#" PRIx64 ": %u data copies, %u asked for", ino, ndata, want);
                return 0;
        }
        return 1;
}

static void progress(struct rs *s, size_t done, const char *note, bool force)
{
        static uint64_t last_us;
        uint64_t now = cm_now_us();
        unsigned pct = s->nfiles ? (unsigned)(done * 100 / s->nfiles) : 100;

        if (s->tty) {
                char bar[31];

                for (unsigned i = 0; i < 30; i++)
                        bar[i] = i < pct * 30 / 100 ? '#' : '.';
                bar[30] = 0;
                printf("\r[%s] %3u%%  %zu/%zu files placed%s%s\033[K", bar, pct, done, s->nfiles,
                       note ? "  " : "", note ? note : "");
                fflush(stdout);
                return;
        }
        if (!force && now - last_us < 1000000)
                return;
        last_us = now;
        printf("%zu/%zu files placed (%u%%)%s%s\n", done, s->nfiles, pct, note ? "; " : "", note ? note : "");
        fflush(stdout);
}

/* Wait until every file is placed, or the deadline.  0 or -ETIMEDOUT. */
static int wait_placed(struct rs *s, unsigned n, uint64_t deadline)
{
        struct lp_client **cs = calloc(s->m->nholders ? s->m->nholders : 1, sizeof(*cs));
        unsigned want = 0;
        size_t done = 0;
        char note[400] = "";
        int r = 0;

        if (!cs)
                return -ENOMEM;
        for (size_t i = 0; i < s->m->nholders; i++)
                want += !s->m->holders[i].adding;
        if (n < want)
                want = n;
        while (done < s->nfiles) {
                /* Files are checked in order: one not placed yet is
                 * looked at again on the next round. */
                note[0] = 0;
                while (done < s->nfiles && file_done(s, cs, s->files[done], want, note, sizeof(note)) == 1)
                        done++;
                if (done == s->nfiles)
                        break;
                progress(s, done, note[0] ? note : NULL, false);
                if (cm_now_us() >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                usleep(100 * 1000);
        }
        progress(s, done, r < 0 ? note : NULL, true);
        if (s->tty)
                putchar('\n');
        if (r < 0)
                snprintf(s->err, sizeof(s->err), "%zu of %zu files not placed yet (%s)", s->nfiles - done, s->nfiles,
                         note);
        for (size_t i = 0; i < s->m->nholders; i++)
                lp_client_close(cs[i]);
        free(cs);
        return r;
}

int ctl_replicas_set(int argc, char **argv)
{
        struct ctl_opts o;
        struct lp_fs_req q;
        struct lp_fs_resp mt, a;
        struct rs s = { .tty = isatty(STDOUT_FILENO) };
        uint8_t key[LP_KEY_SIZE];
        uint64_t ino = 0, deadline;
        char *end;
        unsigned long n;
        int r;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_CONFIG | CTL_OPT_TIMEOUT | CTL_OPT_SITES |
                           CTL_OPT_RECURSIVE, 3, &o) < 0)
                return 2;
        n = o.npos == 3 ? strtoul(o.pos[2], &end, 10) : 0;
        if (o.npos != 3 || o.pos[1][0] != '/' || !*o.pos[2] || *end || n < 1 || n > 64 ||
            (o.sites && (!*o.sites || strspn(o.sites, "0123456789,") != strlen(o.sites)))) {
                fprintf(stderr, "usage: locusctl replicas set PATH N [-r] [--sites A,B,...] [--state S] "
                        "[--timeout SEC]\n  (PATH from the root of the name space, N from 1 to 64)\n");
                return 2;
        }
        s.copies = o.pos[2];
        s.sites = o.sites;
        s.recursive = o.recursive;
        deadline = cm_now_us() + (uint64_t)(o.timeout_s > 0 && o.timeout_s != CTL_DEFAULT_TIMEOUT_S ?
                                            o.timeout_s : SET_TIMEOUT_S) * 1000000u;
        s.key = key;
        if (ctl_locate(&o, o.pos[1], key, &mt, &s.m, &ino) < 0)
                return 1;
        q = (struct lp_fs_req){ .op = LP_FS_GETATTR, .fg = s.m->fg, .ino = ino };
        r = call_primary(&s, &q, &a);
        if (r >= 0) {
                uint32_t mode = a.attr.mode;

                lp_fs_resp_release(&a);
                r = set_one(&s, ino, mode, o.pos[1], 0);
                if (r >= 0 && !S_ISDIR(mode) && !S_ISREG(mode)) {
                        snprintf(s.err, sizeof(s.err), "%s is neither a directory nor a regular file", o.pos[1]);
                        r = -EINVAL;
                }
        }
        if (r >= 0) {
                printf("policy set on %zu director%s and %zu file%s; waiting for the data copies\n", s.dirs,
                       s.dirs == 1 ? "y" : "ies", s.nfiles, s.nfiles == 1 ? "" : "s");
                fflush(stdout);
                lp_client_close(s.c);
                s.c = NULL;
                r = wait_placed(&s, (unsigned)n, deadline);
        }
        lp_client_close(s.c);
        free(s.files);
        lp_fs_resp_release(&mt);
        lp_key_wipe(key, sizeof(key));
        if (r < 0) {
                fprintf(stderr, "locusctl: replicas set %s %s: %s%s\n", o.pos[1], o.pos[2],
                        s.err[0] ? s.err : strerror(-r),
                        r == -EINVAL || r == -ENOENT ? "" : " (run the same command again to finish)");
                return 1;
        }
        return 0;
}
