/*
 * ctl_copies.c -- locusctl copies PATH: every copy of one file, as each
 * holder of its file group has it (docs/replication.md).
 *
 * PATH is a path in the LocusFS name space ("/a/b/f", from the root of the
 * cluster, crossing file group mounts as the mount table says).  It is
 * looked up name by name at the primary of each file group (what a mount
 * sees); then every holder of the file's group is asked directly for its
 * copy: its version vector (SS_FETCH) and, for a regular file, its data
 * (READ, hashed with BLAKE2b), so a test or an operator can see that the
 * copies are byte-identical with equal vectors.  A holder that does not
 * answer is listed with its error.
 *
 * With --tree, PATH is a directory: every holder walks it on its own copy
 * (READDIR at that holder, never crossing into another file group) and
 * lists each file under it with its vector, size and hash; the listings
 * must be the same, and the lines only one holder has are printed (a file
 * missing on one copy, a deletion not propagated, a different version).
 *
 * Copies policies (docs/replication.md, "Copies policies"): a holder
 * outside a regular file's placement keeps its row but no data (its
 * SS_FETCH answer says LP_FS_FETCH_NODATA): it is listed with "data":
 * false, and its data is neither read nor compared.  The DATA copies are
 * the holders with the data at the primary's vector and bytes; they are
 * counted against the file's user.locus.copies (read at the primary;
 * none: every holder).
 *
 * Exit status: 0 when every holder answered, all copies are the same
 * (vector, size, type, and data where it is kept) and the file has as
 * many data copies as it asks for (at most the number of holders), 1
 * otherwise, 2 for a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cm.h"
#include "css_json.h"
#include "ctl.h"
#include "lp_conn.h"
#include "lp_rs.h"

bool ctl_child_path(const char *path, const struct lp_fs_dirent *e, char *buf, size_t cap)
{
        if ((e->namelen == 1 && e->name[0] == '.') || (e->namelen == 2 && e->name[0] == '.' && e->name[1] == '.'))
                return false;
        snprintf(buf, cap, "%s/%.*s", strcmp(path, "/") ? path : "", (int)e->namelen, (const char *)e->name);
        return true;
}

#define HASH_BYTES 16u

struct copy {
        uint64_t site;
        bool ok;
        char err[320];
        bool gone;
        uint32_t mode;
        uint64_t size, version;
        char vv[2 * LP_FS_VV_MAX + 1];  /* hex */
        char hash[2 * HASH_BYTES + 1];  /* hex, regular files */
        bool nodata;                    /* a regular file whose data is placed elsewhere */
};

static void hex(const uint8_t *p, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
        out[2 * n] = 0;
}

int ctl_resolve(const struct lp_fs_resp *mt, const uint8_t key[LP_KEY_SIZE], const char *path, uint32_t *ret_fg,
                uint64_t *ret_ino, char *err, size_t cap)
{
        uint32_t fg = 1;
        uint64_t ino = LP_FS_ROOT_INO;
        char *copy = strdup(path), *save = NULL, *name;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        for (name = strtok_r(copy, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
                const struct lp_fs_mount *m = NULL;
                struct lp_fs_req q = { .op = LP_FS_LOOKUP };
                struct lp_fs_resp a;

                for (size_t i = 0; i < mt->nmounts; i++)
                        if (mt->mounts[i].fg == fg)
                                m = &mt->mounts[i];
                if (!m || !m->port) {
                        snprintf(err, cap, "file group %u has no primary storage site now", fg);
                        r = -EHOSTUNREACH;
                        break;
                }
                q.fg = fg;
                q.parent = ino;
                q.name = (const uint8_t *)name;
                q.namelen = strlen(name);
                r = ctl_call_conn(m->host, (uint16_t)m->port, key, NULL, &q, &a, err, cap);
                if (r < 0)
                        break;
                if (a.status < 0) {
                        r = a.status;
                        snprintf(err, cap, "%s: '%s': %s", path, name, strerror(-r));
                        lp_fs_resp_release(&a);
                        break;
                }
                ino = a.attr.ino;
                lp_fs_resp_release(&a);
                /* A file group mounted on this directory: go on in its root. */
                for (size_t i = 0; i < mt->nmounts; i++)
                        if (mt->mounts[i].parent_fg == fg && mt->mounts[i].parent_ino == ino &&
                            mt->mounts[i].fg != fg) {
                                fg = mt->mounts[i].fg;
                                ino = LP_FS_ROOT_INO;
                                break;
                        }
        }
        free(copy);
        *ret_fg = fg;
        *ret_ino = ino;
        return r;
}

int ctl_copy_vv(const struct lp_fs_holder *h, const uint8_t key[LP_KEY_SIZE], struct lp_client **cpp, uint32_t fg,
                uint64_t ino, char *vv, bool *ret_gone, uint32_t *ret_mode, uint64_t *ret_size, bool *ret_nodata,
                char *err, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = ino, .flags = LP_FS_FETCH_VV };
        struct lp_fs_resp a;
        struct lp_rs_state v;
        int r;

        if (!h->port) {
                snprintf(err, cap, "not registered with the CSS");
                return -EHOSTUNREACH;
        }
        r = ctl_call_conn(h->host, (uint16_t)h->port, key, cpp, &q, &a, err, cap);
        if (r < 0)
                return r;
        if (a.status < 0 || lp_rs_state_decode(a.data, a.datalen, &v) < 0) {
                r = a.status < 0 ? a.status : -EBADMSG;
                snprintf(err, cap, "%s", a.status < 0 ? strerror(-a.status) : "a malformed state");
                lp_fs_resp_release(&a);
                return r;
        }
        hex(v.vv, v.vvlen, vv);
        *ret_nodata = a.value & LP_FS_FETCH_NODATA;
        *ret_gone = v.kind == LP_RS_GONE;
        *ret_mode = v.mode;
        *ret_size = v.size;
        lp_rs_state_free(&v);
        lp_fs_resp_release(&a);
        return 0;
}

/* One copy at holder h over *cp (a connection kept between calls). */
static void read_copy_on(const struct lp_fs_holder *h, const uint8_t key[LP_KEY_SIZE], struct lp_client **cpp,
                         uint32_t fg, uint64_t ino, struct copy *cp)
{
        struct lp_fs_resp a;
        int r;

        cp->site = h->site;
        r = ctl_copy_vv(h, key, cpp, fg, ino, cp->vv, &cp->gone, &cp->mode, &cp->size, &cp->nodata, cp->err,
                        sizeof(cp->err));
        if (r < 0)
                return;
        if (!cp->gone && S_ISREG(cp->mode) && !cp->nodata) {
                crypto_generichash_state hs;
                uint8_t out[HASH_BYTES];
                uint64_t off = 0;

                crypto_generichash_init(&hs, NULL, 0, sizeof(out));
                while (off < cp->size) {
                        struct lp_fs_req rq = { .op = LP_FS_READ, .fg = fg, .ino = ino, .offset = off,
                                                .length = LP_FS_DATA_MAX };

                        r = ctl_call_conn(h->host, (uint16_t)h->port, key, cpp, &rq, &a, cp->err, sizeof(cp->err));
                        if (r < 0)
                                return;
                        if (a.status < 0 || !a.datalen) {
                                snprintf(cp->err, sizeof(cp->err), "read at %" PRIu64 ": %s", off,
                                         a.status < 0 ? strerror(-a.status) : "shorter than its size");
                                lp_fs_resp_release(&a);
                                return;
                        }
                        crypto_generichash_update(&hs, a.data, a.datalen);
                        off += a.datalen;
                        lp_fs_resp_release(&a);
                }
                crypto_generichash_final(&hs, out, sizeof(out));
                hex(out, sizeof(out), cp->hash);
        }
        cp->ok = true;
}

/* How many data copies the file asks for: its user.locus.copies, read at
 * the primary; without one (or unreadable), every holder. */
static unsigned copies_wanted(const struct lp_fs_mount *m, const uint8_t key[LP_KEY_SIZE], uint32_t fg,
                              uint64_t ino)
{
        static const char name[] = "user.locus.copies";
        struct lp_fs_req q = { .op = LP_FS_GETXATTR, .fg = fg, .ino = ino, .name = (const uint8_t *)name,
                               .namelen = sizeof(name) - 1, .length = 32 };
        struct lp_client *c = NULL;
        struct lp_fs_resp a;
        unsigned n = (unsigned)m->nholders;
        char err[256], v[33];

        if (!m->port || ctl_call_conn(m->host, (uint16_t)m->port, key, &c, &q, &a, err, sizeof(err)) < 0) {
                lp_client_close(c);
                return n;
        }
        if (a.status == 0 && a.datalen && a.datalen < sizeof(v)) {
                memcpy(v, a.data, a.datalen);
                v[a.datalen] = 0;
                n = (unsigned)strtoul(v, NULL, 10);
        }
        lp_fs_resp_release(&a);
        lp_client_close(c);
        return n ? n : (unsigned)m->nholders;
}

static void read_copy(const struct lp_fs_holder *h, const uint8_t key[LP_KEY_SIZE], uint32_t fg, uint64_t ino,
                      struct copy *cp)
{
        struct lp_client *c = NULL;

        read_copy_on(h, key, &c, fg, ino, cp);
        lp_client_close(c);
}

/* ---- --tree: every file under a directory, as one holder has it ------------------------- */

struct tree {
        const struct lp_fs_holder *h;
        const uint8_t *key;
        struct lp_client *c;
        uint32_t fg;
        FILE *out;                      /* "path\tkind vv size" lines */
        FILE *data;                     /* "path\thash\tsite" of the files whose data it keeps */
        size_t files;
        char err[320];
};

static int walk(struct tree *t, uint64_t dir, const char *path, int depth)
{
        struct lp_fs_req q = { .op = LP_FS_READDIR, .fg = t->fg, .ino = dir, .length = 512 };

        if (depth > 256) {
                snprintf(t->err, sizeof(t->err), "%s: deeper than 256 levels", path);
                return -ELOOP;
        }
        for (;;) {
                struct lp_fs_resp a;
                bool eof;
                int r = ctl_call_conn(t->h->host, (uint16_t)t->h->port, t->key, &t->c, &q, &a, t->err,
                                    sizeof(t->err));

                if (r < 0)
                        return r;
                if (a.status < 0) {
                        snprintf(t->err, sizeof(t->err), "readdir %s: %s", path, strerror(-a.status));
                        r = a.status;
                        lp_fs_resp_release(&a);
                        return r;
                }
                eof = a.eof || !a.nentries;
                for (size_t i = 0; i < a.nentries; i++) {
                        const struct lp_fs_dirent *e = &a.entries[i];
                        char sub[4096];
                        struct copy cp = { 0 };

                        q.offset = e->next;
                        if (!ctl_child_path(path, e, sub, sizeof(sub)))
                                continue;
                        read_copy_on(t->h, t->key, &t->c, t->fg, e->ino, &cp);
                        if (!cp.ok) {
                                fprintf(t->out, "%s\tunreadable: %s\n", sub, cp.err);
                                continue;
                        }
                        t->files++;
                        fprintf(t->out, "%s\t%s %o vv=%s size=%" PRIu64 "\n", sub, cp.gone ? "deleted" : "live",
                                cp.mode, cp.vv, S_ISDIR(cp.mode) ? 0 : cp.size);
                        if (cp.hash[0])
                                fprintf(t->data, "%s\t%s\t%" PRIu64 "\n", sub, cp.hash, t->h->site);
                        if (!cp.gone && S_ISDIR(cp.mode)) {
                                r = walk(t, e->ino, sub, depth + 1);
                                if (r < 0) {
                                        lp_fs_resp_release(&a);
                                        return r;
                                }
                        }
                }
                lp_fs_resp_release(&a);
                if (eof)
                        return 0;
        }
}

static int cmp_line(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted lines of text (modified in place). */
static char **lines_of(char *text, size_t *ret_n)
{
        size_t n = 0, cap = 64;
        char **v = malloc(cap * sizeof(*v)), *save = NULL;

        for (char *l = strtok_r(text, "\n", &save); v && l; l = strtok_r(NULL, "\n", &save)) {
                if (n == cap) {
                        char **nv = realloc(v, 2 * cap * sizeof(*v));

                        if (!nv) {
                                free(v);
                                return NULL;
                        }
                        v = nv;
                        cap *= 2;
                }
                v[n++] = l;
        }
        if (v)
                qsort(v, n, sizeof(*v), cmp_line);
        *ret_n = n;
        return v;
}

/* The data of each file, from every holder that keeps it ("path\thash\tsite"
 * lines): the same everywhere?  Prints those that are not; true if any. */
static bool data_differs(char *data)
{
        size_t n = 0, shown = 0;
        char **l = data ? lines_of(data, &n) : NULL;
        bool differ = false;

        for (size_t i = 1; l && i < n; i++) {
                const char *a = l[i - 1], *b = l[i], *ta = strchr(a, '\t'), *tb = strchr(b, '\t');

                if (!ta || !tb || ta - a != tb - b || strncmp(a, b, (size_t)(ta - a)))
                        continue;               /* another file */
                if (!strncmp(ta, tb, 1 + 2 * HASH_BYTES))
                        continue;
                differ = true;
                if (shown++ < 20)
                        printf("data differs: %s / %s\n", a, b);
        }
        free(l);
        return differ;
}

/* Compare the trees of every holder: 0 same, 1 different, -1 a holder failed. */
static int tree_cmd(const struct lp_fs_mount *m, const uint8_t key[LP_KEY_SIZE], uint64_t dir, const char *path)
{
        char **text = calloc(m->nholders ? m->nholders : 1, sizeof(*text));
        size_t *files = calloc(m->nholders ? m->nholders : 1, sizeof(*files));
        char *data = NULL;
        size_t datalen = 0;
        FILE *df = open_memstream(&data, &datalen);
        int rc = 0, base = -1;

        if (!text || !files || !df) {
                free(text);
                free(files);
                if (df)
                        fclose(df);
                free(data);
                return -1;
        }
        for (size_t i = 0; i < m->nholders; i++) {
                struct tree t = { .h = &m->holders[i], .key = key, .fg = m->fg, .data = df };
                size_t len = 0;
                int r;

                if (!t.h->port) {
                        printf("site %" PRIu64 ": not registered with the CSS\n", t.h->site);
                        rc = -1;
                        continue;
                }
                t.out = open_memstream(&text[i], &len);
                r = t.out ? walk(&t, dir, path, 0) : -ENOMEM;
                if (t.out)
                        fclose(t.out);
                lp_client_close(t.c);
                files[i] = t.files;
                if (r < 0) {
                        printf("site %" PRIu64 ": %s\n", t.h->site, t.err[0] ? t.err : strerror(-r));
                        free(text[i]);
                        text[i] = NULL;
                        rc = -1;
                } else if (base < 0) {
                        base = (int)i;
                }
        }
        for (size_t i = 0; base >= 0 && i < m->nholders; i++) {
                size_t na, nb, ia = 0, ib = 0, shown = 0;
                char **la, **lb;
                char *ta, *tb;

                if ((int)i == base || !text[i])
                        continue;
                ta = strdup(text[base]);
                tb = strdup(text[i]);
                la = ta ? lines_of(ta, &na) : NULL;
                lb = tb ? lines_of(tb, &nb) : NULL;
                if (!la || !lb) {
                        rc = -1;
                } else {
                        while (ia < na || ib < nb) {
                                int c = ia == na ? 1 : ib == nb ? -1 : strcmp(la[ia], lb[ib]);

                                if (c == 0) {
                                        ia++;
                                        ib++;
                                        continue;
                                }
                                if (rc == 0)
                                        rc = 1;
                                if (shown++ < 20)
                                        printf("site %" PRIu64 " only: %s\n", c < 0 ? m->holders[base].site :
                                               m->holders[i].site, c < 0 ? la[ia] : lb[ib]);
                                if (c < 0)
                                        ia++;
                                else
                                        ib++;
                        }
                }
                free(la);
                free(lb);
                free(ta);
                free(tb);
        }
        fclose(df);
        if (data_differs(data) && rc == 0)
                rc = 1;
        free(data);
        for (size_t i = 0; i < m->nholders; i++) {
                if (text[i])
                        printf("site %" PRIu64 ": %zu files under %s\n", m->holders[i].site, files[i], path);
                free(text[i]);
        }
        printf("%s\n", rc == 0 ? "all copies are the same" : rc > 0 ? "the copies differ" :
               "some copies could not be read");
        free(text);
        free(files);
        return rc;
}

int ctl_locate(const struct ctl_opts *o, const char *path, uint8_t key[LP_KEY_SIZE], struct lp_fs_resp *ret_mt,
               const struct lp_fs_mount **ret_m, uint64_t *ret_ino)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_MOUNTTABLE };
        struct ctl_state st;
        char err[512] = "";
        uint32_t fg = 0;
        int r = ctl_state_of_opts(o, &st);

        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?)\n", r < 0 ? "(unknown)" : st.dir);
                return r < 0 ? r : -ENOENT;
        }
        r = ctl_load_key(&st, key, err, sizeof(err));
        if (r >= 0)
                r = ctl_call(&st, CTL_CSSD, &q, CTL_CALL_MS, ret_mt, err, sizeof(err));
        if (r >= 0 && ret_mt->status < 0) {
                r = ret_mt->status;
                snprintf(err, sizeof(err), "CSS_MOUNTTABLE: %s", strerror(-r));
                lp_fs_resp_release(ret_mt);
        } else if (r >= 0) {
                r = ctl_resolve(ret_mt, key, path, &fg, ret_ino, err, sizeof(err));
                *ret_m = NULL;
                for (size_t i = 0; r >= 0 && i < ret_mt->nmounts; i++)
                        if (ret_mt->mounts[i].fg == fg)
                                *ret_m = &ret_mt->mounts[i];
                if (r >= 0 && !*ret_m) {
                        snprintf(err, sizeof(err), "its file group %u is not in the mount table", fg);
                        r = -ENOENT;
                }
                if (r < 0)
                        lp_fs_resp_release(ret_mt);
        }
        if (r < 0) {
                fprintf(stderr, "locusctl: %s: %s\n", path, err);
                lp_key_wipe(key, LP_KEY_SIZE);
        }
        return r;
}

int ctl_cmd_copies(int argc, char **argv)
{
        struct ctl_opts o;
        struct lp_fs_resp mt;
        const struct lp_fs_mount *m = NULL;
        uint8_t key[LP_KEY_SIZE];
        struct copy *cps = NULL;
        char err[512] = "";
        uint32_t fg = 0;
        uint64_t ino = 0;
        const struct copy *prim = NULL;
        unsigned ndata = 0, wanted;
        bool same = true, isreg;
        int r = 0;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_CONFIG | CTL_OPT_JSON | CTL_OPT_TREE, 1, &o) < 0)
                return 2;
        if (o.npos != 1 || o.pos[0][0] != '/') {
                fprintf(stderr, "locusctl: copies takes one path in the LocusFS name space, from its root "
                        "(e.g. /home/a/file)\n");
                return 2;
        }
        if (sodium_init() < 0) {
                fprintf(stderr, "locusctl: libsodium does not start\n");
                return 1;
        }
        if (ctl_locate(&o, o.pos[0], key, &mt, &m, &ino) < 0)
                return 1;
        fg = m->fg;
        if (!(cps = calloc(m->nholders ? m->nholders : 1, sizeof(*cps)))) {
                snprintf(err, sizeof(err), "out of memory");
                r = -ENOMEM;
        }
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                lp_fs_resp_release(&mt);
                lp_key_wipe(key, sizeof(key));
                return 1;
        }
        if (o.tree) {
                r = tree_cmd(m, key, ino, o.pos[0]);
                free(cps);
                lp_fs_resp_release(&mt);
                lp_key_wipe(key, sizeof(key));
                return r == 0 ? 0 : 1;
        }
        for (size_t i = 0; i < m->nholders; i++) {
                read_copy(&m->holders[i], key, fg, ino, &cps[i]);
                if (!cps[i].ok || (i && (!cps[0].ok || strcmp(cps[i].vv, cps[0].vv) ||
                                         cps[i].size != cps[0].size || cps[i].mode != cps[0].mode ||
                                         cps[i].gone != cps[0].gone)))
                        same = false;
        }
        /* Data: the primary's, kept by how many holders (the others'
         * differing hashes make the copies differ). */
        for (size_t i = 0; i < m->nholders; i++)
                if (m->holders[i].site == m->site)
                        prim = &cps[i];
        for (size_t i = 0; i < m->nholders; i++) {
                if (!cps[i].ok || cps[i].nodata || cps[i].gone || !S_ISREG(cps[i].mode))
                        continue;
                if (prim && prim->ok && !strcmp(cps[i].vv, prim->vv) && !strcmp(cps[i].hash, prim->hash))
                        ndata++;
                else
                        same = false;
        }
        wanted = copies_wanted(m, key, fg, ino);
        if (wanted > m->nholders)
                wanted = (unsigned)m->nholders;
        isreg = prim && prim->ok && !prim->gone && S_ISREG(prim->mode);
        if (isreg && ndata < wanted)
                same = false;
        if (o.json) {
                struct css_jw w;
                char *text = NULL;

                css_jw_init(&w);
                css_jw_obj_begin(&w);
                css_jw_key(&w, "path");
                css_jw_str(&w, o.pos[0]);
                css_jw_key(&w, "fg");
                css_jw_u64(&w, fg);
                css_jw_key(&w, "ino");
                css_jw_u64(&w, ino);
                css_jw_key(&w, "same");
                css_jw_bool(&w, same);
                if (isreg) {
                        css_jw_key(&w, "copies_wanted");
                        css_jw_u64(&w, wanted);
                        css_jw_key(&w, "data_copies");
                        css_jw_u64(&w, ndata);
                        css_jw_key(&w, "data_sites");
                        css_jw_arr_begin(&w);
                        for (size_t i = 0; i < m->nholders; i++)
                                if (cps[i].ok && !cps[i].nodata)
                                        css_jw_u64(&w, cps[i].site);
                        css_jw_arr_end(&w);
                }
                css_jw_key(&w, "copies");
                css_jw_arr_begin(&w);
                for (size_t i = 0; i < m->nholders; i++) {
                        css_jw_obj_begin(&w);
                        css_jw_key(&w, "site");
                        css_jw_u64(&w, cps[i].site);
                        css_jw_key(&w, "ok");
                        css_jw_bool(&w, cps[i].ok);
                        if (cps[i].ok) {
                                css_jw_key(&w, "deleted");
                                css_jw_bool(&w, cps[i].gone);
                                css_jw_key(&w, "vv");
                                css_jw_str(&w, cps[i].vv);
                                css_jw_key(&w, "size");
                                css_jw_u64(&w, cps[i].size);
                                css_jw_key(&w, "data");
                                css_jw_bool(&w, !cps[i].nodata);
                                css_jw_key(&w, "hash");
                                css_jw_str(&w, cps[i].hash[0] ? cps[i].hash : NULL);
                        } else {
                                css_jw_key(&w, "error");
                                css_jw_str(&w, cps[i].err);
                        }
                        css_jw_obj_end(&w);
                }
                css_jw_arr_end(&w);
                css_jw_obj_end(&w);
                if (css_jw_finish(&w, &text) == 0) {
                        printf("%s\n", text);
                        free(text);
                }
        } else {
                printf("%s: file group %u, inode %#" PRIx64 "\n", o.pos[0], fg, ino);
                for (size_t i = 0; i < m->nholders; i++) {
                        if (!cps[i].ok)
                                printf("  site %" PRIu64 ": %s\n", cps[i].site, cps[i].err);
                        else if (cps[i].gone)
                                printf("  site %" PRIu64 ": deleted, vv %s\n", cps[i].site, cps[i].vv);
                        else
                                printf("  site %" PRIu64 ": vv %s, %" PRIu64 " bytes%s%s%s\n", cps[i].site, cps[i].vv,
                                       cps[i].size, cps[i].hash[0] ? ", blake2b " : "", cps[i].hash,
                                       cps[i].nodata ? ", no data here (placed elsewhere)" : "");
                }
                if (isreg)
                        printf("data copies: %u of %u\n", ndata, wanted);
                printf("%s\n", same ? "all copies are the same" : "the copies differ");
        }
        free(cps);
        lp_fs_resp_release(&mt);
        lp_key_wipe(key, sizeof(key));
        return same ? 0 : 1;
}
