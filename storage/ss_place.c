/*
 * ss_place.c -- copies policies: parsing, placement resolution, the
 * no-data guard and inheritance (ss_place.h).
 */
#include "ss_place.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cm.h"
#include "lp_rs.h"
#include "ss_ops_int.h"
#include "ss_pull.h"

#define MAX_DEPTH 4096u         /* bound on a walk up the tree */

int ss_place_name(const uint8_t *name, size_t namelen)
{
        if (namelen == sizeof(SS_PLACE_COPIES) - 1 && !memcmp(name, SS_PLACE_COPIES, namelen))
                return 1;
        if (namelen == sizeof(SS_PLACE_SITES) - 1 && !memcmp(name, SS_PLACE_SITES, namelen))
                return 2;
        return 0;
}

/* The value without one trailing NUL or newline (setfattr -v "2" sends no
 * NUL; some tools do). */
static size_t trim(const uint8_t *p, size_t len)
{
        if (len && (p[len - 1] == 0 || p[len - 1] == '\n'))
                len--;
        return len;
}

/* A decimal number at p[*i..len), no sign; -EINVAL if none or over max. */
static int number(const uint8_t *p, size_t len, size_t *i, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;
        size_t start = *i;

        while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
                v = v * 10 + (uint64_t)(p[*i] - '0');
                if (v > max)
                        return -EINVAL;
                ++*i;
        }
        if (*i == start)
                return -EINVAL;
        *ret = v;
        return 0;
}

int ss_place_parse_copies(const void *v, size_t len, unsigned *ret)
{
        const uint8_t *p = v;
        uint64_t n;
        size_t i = 0;

        len = trim(p, len);
        if (number(p, len, &i, SS_PLACE_MAX, &n) < 0 || i != len || n == 0)
                return -EINVAL;
        *ret = (unsigned)n;
        return 0;
}

int ss_place_parse_sites(const void *v, size_t len, uint64_t *out, size_t cap, size_t *ret_n)
{
        const uint8_t *p = v;
        size_t i = 0, n = 0;

        len = trim(p, len);
        if (len == 0)
                return -EINVAL;
        for (;;) {
                uint64_t s;
                bool dup = false;

                if (number(p, len, &i, UINT32_MAX, &s) < 0 || s == 0)
                        return -EINVAL;
                for (size_t k = 0; k < n; k++)
                        dup |= out[k] == s;
                if (!dup) {
                        if (n == cap)
                                return -EINVAL;
                        out[n++] = s;
                }
                if (i == len)
                        break;
                if (p[i++] != ',')
                        return -EINVAL;
        }
        *ret_n = n;
        return 0;
}

static bool listed(const uint64_t *s, size_t n, uint64_t site)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] == site)
                        return true;
        return false;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

size_t ss_place_resolve(const uint64_t *holders, size_t nh, unsigned n, const uint64_t *want, size_t nwant,
                        uint64_t ino, uint64_t *out)
{
        uint64_t rest[SS_PLACE_MAX];
        size_t k = 0, nrest = 0;

        if (nh == 0 || n == 0)
                return 0;
        if (nh > SS_PLACE_MAX)
                nh = SS_PLACE_MAX;
        /* [L1] the home: the lowest holder. */
        out[k] = holders[0];
        for (size_t i = 1; i < nh; i++)
                if (holders[i] < out[k])
                        out[k] = holders[i];
        k++;
        for (size_t i = 0; i < nwant && k < n; i++)
                if (listed(holders, nh, want[i]) && !listed(out, k, want[i]))
                        out[k++] = want[i];
        for (size_t i = 0; i < nh; i++)
                if (!listed(out, k, holders[i]))
                        rest[nrest++] = holders[i];
        qsort(rest, nrest, sizeof(rest[0]), cmp_u64);
        for (size_t i = 0; i < nrest && k < n; i++)
                out[k++] = rest[(ino + i) % nrest];
        qsort(out, k, sizeof(out[0]), cmp_u64);
        return k;
}

size_t ss_place_format(const uint64_t *sites, size_t n, char *buf, size_t cap)
{
        size_t len = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n && len < cap; i++) {
                int w = snprintf(buf + len, cap - len, "%s%llu", i ? "," : "", (unsigned long long)sites[i]);

                if (w < 0 || (size_t)w >= cap - len)
                        break;
                len += (size_t)w;
        }
        return len;
}

int ss_place_here(struct ss_ct *ct, uint64_t ino, uint64_t site, char *where, size_t cap)
{
        uint8_t v[SS_PLACE_TEXT_MAX];
        uint64_t s[SS_PLACE_MAX];
        size_t len, n;
        int r = ss_db_xattr_get(ct->db, ino, (const uint8_t *)SS_PLACE_SITES, sizeof(SS_PLACE_SITES) - 1, v,
                                sizeof(v), &len);

        if (r == -ENOENT)
                return 1;               /* no placement: every holder */
        if (r < 0)
                return r;
        /* Checked when it was set; a value that does not parse (it can
         * only come from a damaged index) keeps the data. */
        if (len > sizeof(v) || ss_place_parse_sites(v, len, s, SS_PLACE_MAX, &n) < 0)
                return 1;
        if (listed(s, n, site))
                return 1;
        if (where)
                ss_place_format(s, n, where, cap);
        return 0;
}

bool ss_place_state_here(const struct lp_rs_state *st, uint64_t site)
{
        uint64_t s[SS_PLACE_MAX];
        size_t n;

        if (st->kind != LP_RS_INODE || !S_ISREG(st->mode))
                return true;
        for (size_t i = 0; i < st->nxattrs; i++)
                if (ss_place_name(st->xattrs[i].name, st->xattrs[i].namelen) == 2)
                        return ss_place_parse_sites(st->xattrs[i].value, st->xattrs[i].vlen, s, SS_PLACE_MAX,
                                                    &n) < 0 || listed(s, n, site);
        return true;
}

int ss_place_guard(struct ss_opctx *x, const struct ss_inode *in, int err, const char *what)
{
        char where[SS_PLACE_TEXT_MAX];
        int r;

        if (!S_ISREG(in->mode))
                return 0;
        r = ss_place_here(x->ct, in->ino, x->ct->container, where, sizeof(where));
        if (r < 0)
                return ss__fail(x, r, "reading the placement: %s", ss_db_errmsg(x->ct->db));
        if (r)
                return 0;
        if (err == -EHOSTUNREACH) {
                /* [L4] a write: fetch the data first. */
                r = ss_pull_materialize(x->pull, x->ct->fg, in->ino);
                if (r == -EIO) {
                        ss__fail(x, -EIO, "%s: fg %u ino %#llx has no data at site %llu (its data is on sites %s) "
                                 "and no copy with it could be reached to fetch it from", what, x->ct->fg,
                                 (unsigned long long)in->ino, (unsigned long long)x->ct->container, where);
                        cm_log(LOG_WARNING, "%s", x->msg);
                        return -EIO;
                }
                if (r == 0)
                        return ss__fail(x, err, "%s: fg %u ino %#llx: fetching its data from a copy on sites %s "
                                        "first; ask again", what, x->ct->fg, (unsigned long long)in->ino, where);
        }
        ss__fail(x, err, "%s: fg %u ino %#llx has no data at site %llu (its data is on sites %s)", what,
                 x->ct->fg, (unsigned long long)in->ino, (unsigned long long)x->ct->container, where);
        cm_log(LOG_WARNING, "%s", x->msg);
        return err;
}

int ss_place_add_here(struct ss_opctx *x, struct ss_mut *m, struct ss_inode *in)
{
        uint8_t v[SS_PLACE_TEXT_MAX];
        uint64_t s[SS_PLACE_MAX + 1];
        char text[SS_PLACE_TEXT_MAX + 24];
        size_t len, n = 0;
        int r = ss_db_xattr_get(x->ct->db, in->ino, (const uint8_t *)SS_PLACE_SITES, sizeof(SS_PLACE_SITES) - 1, v,
                                sizeof(v), &len);

        if (r < 0 && r != -ENOENT)
                return ss__fail(x, r, "reading the placement: %s", ss_db_errmsg(x->ct->db));
        if (r == 0 && (len > sizeof(v) || ss_place_parse_sites(v, len, s, SS_PLACE_MAX, &n) < 0))
                n = 0;
        if (!listed(s, n, x->ct->container))
                s[n++] = x->ct->container;
        qsort(s, n, sizeof(s[0]), cmp_u64);
        len = ss_place_format(s, n, text, sizeof(text));
        ss_cs_put_xattr(&m->cs, in->ino, (const uint8_t *)SS_PLACE_SITES, sizeof(SS_PLACE_SITES) - 1, text, len);
        in->ctime = ss__now_time();
        ss_cs_put_inode(&m->cs, in, 0);
        return m->cs.err;
}

/* The group's holders, ascending (this site alone if none is known). */
static size_t holders_of(struct ss_opctx *x, uint64_t *out)
{
        size_t n = ss_pull_holders(x->pull, x->ct->fg, out, SS_PLACE_MAX);

        if (n == 0) {
                out[0] = x->ct->container;
                n = 1;
        }
        return n;
}

struct policy {
        bool has_copies, has_sites;
        uint8_t copies[SS_PLACE_TEXT_MAX], sites[SS_PLACE_TEXT_MAX];
        size_t ncopies, nsites;
};

/* The policy xattrs of ino: 1 if it has one, 0 if not, or an error. */
static int policy_of(struct ss_opctx *x, uint64_t ino, struct policy *p)
{
        int r;

        memset(p, 0, sizeof(*p));
        r = ss_db_xattr_get(x->ct->db, ino, (const uint8_t *)SS_PLACE_COPIES, sizeof(SS_PLACE_COPIES) - 1,
                            p->copies, sizeof(p->copies), &p->ncopies);
        if (r < 0 && r != -ENOENT)
                return r;
        p->has_copies = r == 0 && p->ncopies <= sizeof(p->copies);
        r = ss_db_xattr_get(x->ct->db, ino, (const uint8_t *)SS_PLACE_SITES, sizeof(SS_PLACE_SITES) - 1,
                            p->sites, sizeof(p->sites), &p->nsites);
        if (r < 0 && r != -ENOENT)
                return r;
        p->has_sites = r == 0 && p->nsites <= sizeof(p->sites);
        return p->has_copies || p->has_sites;
}

/* Resolve and put a regular file's placement: n copies (0: the home and
 * the wishes), wishes want. */
static void put_placement(struct ss_opctx *x, struct ss_mut *m, uint64_t ino, unsigned n, const uint64_t *want,
                          size_t nwant)
{
        uint64_t hs[SS_PLACE_MAX], out[SS_PLACE_MAX];
        size_t nh = holders_of(x, hs), k;
        char text[SS_PLACE_TEXT_MAX];
        int len;

        if (n == 0) {
                /* Sites without copies: the home and the sites listed. */
                uint64_t home = hs[0];

                for (size_t i = 1; i < nh; i++)
                        home = hs[i] < home ? hs[i] : home;
                n = (unsigned)nwant + !listed(want, nwant, home);
        }
        k = ss_place_resolve(hs, nh, n, want, nwant, ino, out);
        if (!listed(out, k, x->ct->container) && k < SS_PLACE_MAX) {
                /* [L5] resolved here, at the primary, which is not the
                 * home (failover): it keeps an extra copy, as a write
                 * here would make it ([L4]). */
                out[k++] = x->ct->container;
                qsort(out, k, sizeof(out[0]), cmp_u64);
        }
        if (k < n)
                cm_log(LOG_NOTICE, "fg %u ino %#llx: %u copies asked for, the file group has %zu holder(s): "
                       "the data is placed on all of them", x->ct->fg, (unsigned long long)ino, n, nh);
        len = snprintf(text, sizeof(text), "%u", n);
        ss_cs_put_xattr(&m->cs, ino, (const uint8_t *)SS_PLACE_COPIES, sizeof(SS_PLACE_COPIES) - 1, text,
                        (size_t)len);
        len = (int)ss_place_format(out, k, text, sizeof(text));
        ss_cs_put_xattr(&m->cs, ino, (const uint8_t *)SS_PLACE_SITES, sizeof(SS_PLACE_SITES) - 1, text,
                        (size_t)len);
}

/* The numbers of a policy read from the index (values were checked when
 * set; one that does not parse counts as absent). */
static void policy_numbers(const struct policy *p, unsigned *n, uint64_t *want, size_t *nwant)
{
        *n = 0;
        *nwant = 0;
        if (p->has_copies && ss_place_parse_copies(p->copies, p->ncopies, n) < 0)
                *n = 0;
        if (p->has_sites && ss_place_parse_sites(p->sites, p->nsites, want, SS_PLACE_MAX, nwant) < 0)
                *nwant = 0;
}

int ss_place_inherit(struct ss_opctx *x, struct ss_mut *m, uint64_t dir, const struct ss_inode *in)
{
        struct policy *p = ss__xalloc(x, sizeof(*p));
        uint64_t want[SS_PLACE_MAX];
        size_t nwant;
        unsigned n;
        int r = 0;

        if (!S_ISDIR(in->mode) && !S_ISREG(in->mode))
                return 0;
        if (!p)
                return ss__fail(x, -ENOMEM, "out of memory");
        for (unsigned depth = 0; depth < MAX_DEPTH; depth++) {
                struct ss_dirent d;

                r = policy_of(x, dir, p);
                if (r != 0)
                        break;
                r = ss_db_dir_entry(x->ct->db, dir, &d);
                if (r == -ENOENT) {
                        r = 0;          /* the group root: no policy */
                        break;
                }
                if (r < 0)
                        break;
                dir = d.parent;
        }
        if (r < 0)
                return ss__fail(x, r, "reading the copies policy: %s", ss_db_errmsg(x->ct->db));
        if (r == 0)
                return 0;
        if (S_ISDIR(in->mode)) {
                if (p->has_copies)
                        ss_cs_put_xattr(&m->cs, in->ino, (const uint8_t *)SS_PLACE_COPIES,
                                        sizeof(SS_PLACE_COPIES) - 1, p->copies, p->ncopies);
                if (p->has_sites)
                        ss_cs_put_xattr(&m->cs, in->ino, (const uint8_t *)SS_PLACE_SITES,
                                        sizeof(SS_PLACE_SITES) - 1, p->sites, p->nsites);
                return m->cs.err;
        }
        policy_numbers(p, &n, want, &nwant);
        put_placement(x, m, in->ino, n, want, nwant);
        return m->cs.err;
}

int ss_place_set(struct ss_opctx *x, struct ss_mut *m, const struct ss_inode *in, int kind, const void *v,
                 size_t len, bool remove)
{
        struct policy *p;
        uint64_t want[SS_PLACE_MAX];
        size_t nwant = 0;
        unsigned n = 0;
        int r;

        if (!remove) {
                r = kind == 1 ? ss_place_parse_copies(v, len, &n)
                              : ss_place_parse_sites(v, len, want, SS_PLACE_MAX, &nwant);
                if (r < 0) {
                        ss__fail(x, -EINVAL, "fg %u ino %#llx: %s = '%.*s': expected %s", x->ct->fg,
                                 (unsigned long long)in->ino, kind == 1 ? SS_PLACE_COPIES : SS_PLACE_SITES,
                                 (int)(len > 64 ? 64 : len), (const char *)v,
                                 kind == 1 ? "a number of copies from 1 to 64"
                                           : "site ids separated by commas, e.g. 1,3");
                        cm_log(LOG_WARNING, "setxattr refused: %s", x->msg);
                        return -EINVAL;
                }
        }
        if (S_ISDIR(in->mode))
                return 0;
        if (!S_ISREG(in->mode))
                return ss__fail(x, -EINVAL, "a copies policy applies to directories and regular files only");
        if (remove) {
                ss_cs_del_xattr(&m->cs, in->ino, (const uint8_t *)SS_PLACE_COPIES, sizeof(SS_PLACE_COPIES) - 1);
                ss_cs_del_xattr(&m->cs, in->ino, (const uint8_t *)SS_PLACE_SITES, sizeof(SS_PLACE_SITES) - 1);
                return 1;
        }
        /* A regular file: resolve again; the other half comes from its
         * current placement (its sites as wishes keep it where it is). */
        p = ss__xalloc(x, sizeof(*p));
        if (!p)
                return ss__fail(x, -ENOMEM, "out of memory");
        r = policy_of(x, in->ino, p);
        if (r < 0)
                return ss__fail(x, r, "reading the placement: %s", ss_db_errmsg(x->ct->db));
        if (kind == 1) {
                unsigned old;

                policy_numbers(p, &old, want, &nwant);
        } else {
                uint64_t unused[SS_PLACE_MAX];
                size_t nun;

                policy_numbers(p, &n, unused, &nun);
        }
        put_placement(x, m, in->ino, n, want, nwant);
        return m->cs.err < 0 ? m->cs.err : 1;
}
