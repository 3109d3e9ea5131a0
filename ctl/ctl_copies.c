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
 * Exit status: 0 when every holder answered and all copies are the same
 * (vector, size, type, data), 1 otherwise, 2 for a usage error.
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
};

static void hex(const uint8_t *p, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
        out[2 * n] = 0;
}

/* <fg, ino> of PATH, resolved at the primaries. */
static int resolve(const struct lp_fs_resp *mt, const uint8_t key[LP_KEY_SIZE], const char *path, uint32_t *ret_fg,
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
                r = ctl_call_at(m->host, (uint16_t)m->port, key, NULL, &q, &a, err, cap);
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

static void read_copy(const struct lp_fs_holder *h, const uint8_t key[LP_KEY_SIZE], uint32_t fg, uint64_t ino,
                      struct copy *cp)
{
        struct lp_fs_req q = { .op = LP_FS_SS_FETCH, .fg = fg, .ino = ino, .flags = LP_FS_FETCH_VV };
        struct lp_fs_resp a;
        struct lp_client *c = NULL;
        struct lp_rs_state v;
        int r;

        cp->site = h->site;
        if (!h->port) {
                snprintf(cp->err, sizeof(cp->err), "not registered with the CSS");
                return;
        }
        r = ctl_call_at(h->host, (uint16_t)h->port, key, &c, &q, &a, cp->err, sizeof(cp->err));
        if (r < 0)
                return;
        if (a.status < 0 || lp_rs_state_decode(a.data, a.datalen, &v) < 0) {
                snprintf(cp->err, sizeof(cp->err), "%s", a.status < 0 ? strerror(-a.status) : "a malformed state");
                lp_fs_resp_release(&a);
                lp_client_close(c);
                return;
        }
        hex(v.vv, v.vvlen, cp->vv);
        cp->gone = v.kind == LP_RS_GONE;
        cp->mode = v.mode;
        cp->size = v.size;
        lp_rs_state_free(&v);
        lp_fs_resp_release(&a);
        if (!cp->gone && S_ISREG(cp->mode)) {
                crypto_generichash_state hs;
                uint8_t out[HASH_BYTES];
                uint64_t off = 0;

                crypto_generichash_init(&hs, NULL, 0, sizeof(out));
                while (off < cp->size) {
                        struct lp_fs_req rq = { .op = LP_FS_READ, .fg = fg, .ino = ino, .offset = off,
                                                .length = LP_FS_DATA_MAX };

                        r = ctl_call_at(h->host, (uint16_t)h->port, key, &c, &rq, &a, cp->err, sizeof(cp->err));
                        if (r < 0)
                                return;
                        if (a.status < 0 || !a.datalen) {
                                snprintf(cp->err, sizeof(cp->err), "read at %" PRIu64 ": %s", off,
                                         a.status < 0 ? strerror(-a.status) : "shorter than its size");
                                lp_fs_resp_release(&a);
                                lp_client_close(c);
                                return;
                        }
                        crypto_generichash_update(&hs, a.data, a.datalen);
                        off += a.datalen;
                        lp_fs_resp_release(&a);
                }
                crypto_generichash_final(&hs, out, sizeof(out));
                hex(out, sizeof(out), cp->hash);
        }
        lp_client_close(c);
        cp->ok = true;
}

int ctl_cmd_copies(int argc, char **argv)
{
        struct ctl_opts o;
        struct ctl_state st;
        struct lp_fs_req q = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp mt;
        const struct lp_fs_mount *m = NULL;
        uint8_t key[LP_KEY_SIZE];
        struct copy *cps = NULL;
        char err[512] = "";
        uint32_t fg = 0;
        uint64_t ino = 0;
        bool same = true;
        int r;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_JSON, 1, &o) < 0)
                return 2;
        if (o.npos != 1 || o.pos[0][0] != '/') {
                fprintf(stderr, "locusctl: copies takes one path in the LocusFS name space, from its root "
                        "(e.g. /home/a/file)\n");
                return 2;
        }
        r = ctl_state_resolve(o.state, &st);
        if (r >= 0 && st.exists)
                r = ctl_read_sites(&st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?)\n", r < 0 ? "(unknown)" : st.dir);
                return 1;
        }
        if (ctl_load_key(&st, key, err, sizeof(err)) < 0 || sodium_init() < 0) {
                fprintf(stderr, "locusctl: %s\n", err[0] ? err : "libsodium does not start");
                return 1;
        }
        r = ctl_call(&st, CTL_CSSD, &q, CTL_CALL_MS, &mt, err, sizeof(err));
        if (r < 0 || mt.status < 0) {
                fprintf(stderr, "locusctl: %s\n", r < 0 ? err : strerror(-mt.status));
                if (r >= 0)
                        lp_fs_resp_release(&mt);
                lp_key_wipe(key, sizeof(key));
                return 1;
        }
        r = resolve(&mt, key, o.pos[0], &fg, &ino, err, sizeof(err));
        for (size_t i = 0; r >= 0 && i < mt.nmounts; i++)
                if (mt.mounts[i].fg == fg)
                        m = &mt.mounts[i];
        if (r >= 0 && (!m || !(cps = calloc(m->nholders ? m->nholders : 1, sizeof(*cps))))) {
                snprintf(err, sizeof(err), "%s", m ? "out of memory" : "its file group is not in the mount table");
                r = -ENOMEM;
        }
        if (r < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                lp_fs_resp_release(&mt);
                lp_key_wipe(key, sizeof(key));
                return 1;
        }
        for (size_t i = 0; i < m->nholders; i++) {
                read_copy(&m->holders[i], key, fg, ino, &cps[i]);
                if (!cps[i].ok || (i && (!cps[0].ok || strcmp(cps[i].vv, cps[0].vv) ||
                                         strcmp(cps[i].hash, cps[0].hash) || cps[i].size != cps[0].size ||
                                         cps[i].mode != cps[0].mode || cps[i].gone != cps[0].gone)))
                        same = false;
        }
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
                                printf("  site %" PRIu64 ": vv %s, %" PRIu64 " bytes%s%s\n", cps[i].site, cps[i].vv,
                                       cps[i].size, cps[i].hash[0] ? ", blake2b " : "", cps[i].hash);
                }
                printf("%s\n", same ? "all copies are the same" : "the copies differ");
        }
        free(cps);
        lp_fs_resp_release(&mt);
        lp_key_wipe(key, sizeof(key));
        return same ? 0 : 1;
}
