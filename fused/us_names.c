/*
 * us_names.c -- the using site's names and directories (us_core.h
 * "names", "directories"): lookup (with statahead), readlink, making and
 * removing names (orphans go to the CSS), readdir, fsyncdir, statfs.
 * Invariants: us_core_int.h.
 */
#include "us_core_int.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm.h"

/* ---- small helpers ----------------------------------------------------------------------- */

static int check_name(const char *name)
{
        size_t n = strlen(name);

        if (n == 0)
                return -ENOENT;
        if (n > LP_FS_NAME_MAX)
                return -ENAMETOOLONG;
        return 0;
}

static bool is_dots(const char *name)
{
        return !strcmp(name, ".") || !strcmp(name, "..");
}

/* ---- entries ------------------------------------------------------------------------- */

/* This mount has a write session of fino, or its END commit in flight. */
static bool writing_here(struct us_core *core, uint64_t fino)
{
        struct us_node *n;
        bool r;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        r = n && (n->sess || n->committing);
        pthread_mutex_unlock(&core->mu);
        return r;
}

/* The attributes of the root of file group fg, mounted on a directory
 * (what the kernel must see there, for lookup and readdirplus alike).  0
 * and *ret (owning its memory), or an error; -EIO: an answer without
 * attributes. */
static int mounted_root(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                        struct lp_fs_resp *ret)
{
        struct lp_fs_req req;
        int r;

        us__req_init(&req, ctx, LP_FS_GETATTR, fg, LP_FS_ROOT_INO);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, ret);
        if (r < 0)
                return r;
        if (!ret->has_attr) {
                lp_fs_resp_release(ret);
                return -EIO;
        }
        return 0;
}

/*
 * Fill *ret for the inode fg/attr names, crossing into a file group mounted
 * on it, and count one lookup.
 */
static int make_entry(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                      const struct lp_fs_attr *attr, struct us_entry *ret)
{
        struct lp_fs_attr a = *attr;
        struct lp_fs_resp resp;
        bool have_resp = false;
        uint32_t fg2;
        int r;

        if (S_ISDIR(a.mode) && us_mtab_mounted_on(core->mtab, fg, a.ino, &fg2) == 1) {
                r = mounted_root(core, ctx, fg2, &resp);
                if (r < 0)
                        return r;
                have_resp = true;
                a = resp.attr;
                a.ino = LP_FS_ROOT_INO;
                fg = fg2;
        }
        r = us_ino_to_fuse(fg, a.ino, &ret->fino);
        if (r == 0) {
                ret->generation = a.generation;
                us_attr_to_stat(&a, ret->fino, &ret->st);
                /* The answer is the last commit's; the kernel takes it as
                 * the file's attributes, so for a file this mount writes
                 * (its size, where O_APPEND writes go) it must be the
                 * session's view instead.  If that fails, the answer as it
                 * is: no worse than before. */
                if (S_ISREG(a.mode) && writing_here(core, ret->fino)) {
                        struct us_ctx gctx = *ctx;

                        (void)us_core_getattr(core, &gctx, ret->fino, NULL, &ret->st);
                }
                r = us_core_lookup_inc(core, ret->fino, 1);
        } else {
                cm_log(LOG_WARNING, "<%u,%llu>: inode number does not fit in 48 bits", fg,
                       (unsigned long long)a.ino);
        }
        if (have_resp)
                lp_fs_resp_release(&resp);
        return r;
}

/* An entry from an answer that must carry attributes. */
static int entry_from(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                      struct lp_fs_resp *resp, struct us_entry *ret)
{
        int r;

        if (!resp->has_attr || !resp->attr.ino) {
                cm_log(LOG_WARNING, "file group %u: answer without attributes", fg);
                return -EIO;
        }
        r = make_entry(core, ctx, fg, &resp->attr, ret);
        return r;
}

/* Statahead (us_sa.h): read directory <fg, dir> with attributes, a batch
 * per request, into the listing being gathered.  Failures only mean no
 * listing: every lookup then simply asks. */
static void read_ahead(struct us_core *core, const struct us_ctx *ctx, uint32_t fg, uint64_t dir)
{
        uint64_t cookie = 0;
        size_t total = 0;
        bool ok = false;

        for (;;) {
                struct lp_fs_resp resp;
                struct lp_fs_req req;
                int r;

                us__req_init(&req, ctx, LP_FS_READDIR, fg, dir);
                req.offset = cookie;
                req.length = LP_FS_MAX_ENTRIES;
                req.flags = 1;  /* with attributes */
                r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
                if (r < 0)
                        break;
                r = us_sa_fetch_add(core->sa, resp.entries, resp.nentries);
                total += resp.nentries;
                if (resp.nentries)
                        cookie = resp.entries[resp.nentries - 1].next;
                if (r < 0 || resp.eof || !resp.nentries || total >= US_SA_MAX_ENTRIES) {
                        ok = r >= 0;
                        lp_fs_resp_release(&resp);
                        break;
                }
                lp_fs_resp_release(&resp);
        }
        us_sa_fetch_end(core->sa, ok);
}

int us_core_lookup(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                   struct us_entry *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = check_name(name);
        if (r < 0)
                return r;
        r = us_ino_from_fuse(parent, &fg, &ino);
        if (r < 0)
                return r;
        if (!strcmp(name, "..") && ino == LP_FS_ROOT_INO && fg != US_ROOT_FG) {
                uint32_t pfg;
                uint64_t pino;

                /* The parent of a mounted root is the mount point's parent. */
                if (us_mtab_mountpoint(core->mtab, fg, &pfg, &pino) == 0) {
                        fg = pfg;
                        ino = pino;
                }
        }
        if (strcmp(name, ".") && strcmp(name, "..")) {
                struct lp_fs_attr a;
                enum us_sa_answer sa = us_sa_lookup(core->sa, fg, ino, (const uint8_t *)name, strlen(name),
                                                    cm_now_us(), &a);

                if (sa == US_SA_FETCH) {
                        read_ahead(core, ctx, fg, ino);
                        sa = us_sa_lookup(core->sa, fg, ino, (const uint8_t *)name, strlen(name), cm_now_us(),
                                          &a);
                }
                if (sa == US_SA_HIT && a.ino)
                        return make_entry(core, ctx, fg, &a, ret);
        }
        us__req_init(&req, ctx, LP_FS_LOOKUP, fg, 0);
        req.parent = ino;
        us__req_name(&req, name);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        r = entry_from(core, ctx, fg, &resp, ret);
        lp_fs_resp_release(&resp);
        return r;
}

int us_core_readlink(struct us_core *core, struct us_ctx *ctx, uint64_t fino, char *buf,
                     size_t cap)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        us__req_init(&req, ctx, LP_FS_READLINK, fg, ino);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        if (resp.datalen == 0 || resp.datalen >= cap || memchr(resp.data, 0, resp.datalen)) {
                r = -EIO;
        } else {
                memcpy(buf, resp.data, resp.datalen);
                buf[resp.datalen] = 0;
        }
        lp_fs_resp_release(&resp);
        return r;
}

/* ---- making names ----------------------------------------------------------------------- */

static int make_name(struct us_core *core, struct us_ctx *ctx, struct lp_fs_req *req,
                     struct us_entry *ret)
{
        struct lp_fs_resp resp;
        int r;

        r = us__call_fg(core, ctx, req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        r = entry_from(core, ctx, req->fg, &resp, ret);
        lp_fs_resp_release(&resp);
        return r;
}

int us__parent_req(struct us_ctx *ctx, uint32_t op, uint64_t parent, const char *name,
                   struct lp_fs_req *req)
{
        uint32_t fg;
        uint64_t ino;
        int r = check_name(name);

        if (r < 0)
                return r;
        r = us_ino_from_fuse(parent, &fg, &ino);
        if (r < 0)
                return r;
        us__req_init(req, ctx, op, fg, 0);
        req->parent = ino;
        us__req_name(req, name);
        return 0;
}

int us_core_mknod(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                  uint32_t mode, uint64_t rdev, struct us_entry *ret)
{
        struct lp_fs_req req;
        int r;

        switch (mode & S_IFMT) {
        case S_IFREG:
        case S_IFIFO:
        case S_IFSOCK:
        case S_IFCHR:
        case S_IFBLK:
                break;
        default:
                return -EINVAL;
        }
        r = us__parent_req(ctx, LP_FS_MKNOD, parent, name, &req);
        if (r < 0)
                return r;
        req.mode = mode;
        req.rdev = rdev;
        return make_name(core, ctx, &req, ret);
}

int us_core_mkdir(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                  uint32_t mode, struct us_entry *ret)
{
        struct lp_fs_req req;
        int r = us__parent_req(ctx, LP_FS_MKDIR, parent, name, &req);

        if (r < 0)
                return r;
        req.mode = (mode & 07777) | S_IFDIR;
        return make_name(core, ctx, &req, ret);
}

int us_core_symlink(struct us_core *core, struct us_ctx *ctx, const char *target,
                    uint64_t parent, const char *name, struct us_entry *ret)
{
        struct lp_fs_req req;
        size_t tl = strlen(target);
        int r;

        if (tl == 0)
                return -ENOENT;
        if (tl >= LP_FS_PATH_MAX)
                return -ENAMETOOLONG;
        r = us__parent_req(ctx, LP_FS_SYMLINK, parent, name, &req);
        if (r < 0)
                return r;
        req.data = (const uint8_t *)target;
        req.datalen = tl;
        return make_name(core, ctx, &req, ret);
}

int us_core_link(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t newparent,
                 const char *newname, struct us_entry *ret)
{
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = us__parent_req(ctx, LP_FS_LINK, newparent, newname, &req);
        if (r < 0)
                return r;
        if (req.fg != fg)
                return -EXDEV;
        req.ino = ino;
        req.newparent = req.parent;
        req.parent = 0;
        req.newname = req.name;
        req.newnamelen = req.namelen;
        req.name = NULL;
        req.namelen = 0;
        return make_name(core, ctx, &req, ret);
}

/* ---- removing names ----------------------------------------------------------------------- */

/* The answer said ino lost its last name.  Whether anyone still holds it
 * open, here or in another mount, only the CSS knows (its open table): it
 * frees the file at the last close anywhere. */
static void orphaned(struct us_core *core, struct us_ctx *ctx, uint32_t fg, uint64_t ino)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_target t;
        int r;

        us__css_target(core, &t);
        us__req_init(&req, ctx, LP_FS_CSS_ORPHAN, fg, ino);
        r = us__call(core, ctx, &t, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        else
                cm_log(LOG_WARNING, "<%u,%llu>: telling the CSS the file has no name left: %s (it frees "
                       "it when the storage site registers again)", fg, (unsigned long long)ino,
                       strerror(-r));
}

/* 1 if name in <fg, dir> is a directory on which a file group is mounted. */
static int is_mountpoint(struct us_core *core, struct us_ctx *ctx, uint32_t fg, uint64_t dir,
                         const char *name)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg2;
        int r;

        if (!us_mtab_has_mounts_in(core->mtab, fg))
                return 0;
        us__req_init(&req, ctx, LP_FS_LOOKUP, fg, 0);
        req.parent = dir;
        us__req_name(&req, name);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = resp.has_attr && S_ISDIR(resp.attr.mode) &&
            us_mtab_mounted_on(core->mtab, fg, resp.attr.ino, &fg2) == 1;
        lp_fs_resp_release(&resp);
        return r;
}

static int remove_name(struct us_core *core, struct us_ctx *ctx, uint32_t op, uint64_t parent,
                       const char *name)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        int r;

        r = us__parent_req(ctx, op, parent, name, &req);
        if (r < 0)
                return r;
        r = is_mountpoint(core, ctx, req.fg, req.parent, name);
        if (r < 0)
                return r;
        if (r > 0)
                return -EBUSY;
        r = us__call_fg(core, ctx, &req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        if (resp.orphan && resp.ino)
                orphaned(core, ctx, req.fg, resp.ino);
        lp_fs_resp_release(&resp);
        return 0;
}

int us_core_unlink(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name)
{
        return remove_name(core, ctx, LP_FS_UNLINK, parent, name);
}

int us_core_rmdir(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name)
{
        return remove_name(core, ctx, LP_FS_RMDIR, parent, name);
}

int us_core_rename(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                   uint64_t newparent, const char *newname, unsigned flags)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t nfg;
        uint64_t nino;
        int r;

        if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
                return -EINVAL;
        if ((flags & (RENAME_NOREPLACE | RENAME_WHITEOUT)) && (flags & RENAME_EXCHANGE))
                return -EINVAL;
        r = check_name(newname);
        if (r < 0)
                return r;
        r = us__parent_req(ctx, LP_FS_RENAME, parent, name, &req);
        if (r < 0)
                return r;
        r = us_ino_from_fuse(newparent, &nfg, &nino);
        if (r < 0)
                return r;
        if (nfg != req.fg)
                return -EXDEV;
        if (is_dots(name) || is_dots(newname))
                return -EINVAL;
        r = is_mountpoint(core, ctx, req.fg, req.parent, name);
        if (r == 0)
                r = is_mountpoint(core, ctx, nfg, nino, newname);
        if (r < 0)
                return r;
        if (r > 0)
                return -EBUSY;
        req.newparent = nino;
        req.newname = (const uint8_t *)newname;
        req.newnamelen = strlen(newname);
        req.flags = ((flags & RENAME_NOREPLACE) ? LP_FS_RENAME_NOREPLACE : 0) |
                    ((flags & RENAME_EXCHANGE) ? LP_FS_RENAME_EXCHANGE : 0) |
                    ((flags & RENAME_WHITEOUT) ? LP_FS_RENAME_WHITEOUT : 0);
        r = us__call_fg(core, ctx, &req, US_RESEND_UNSENT, &resp);
        if (r < 0)
                return r;
        if (resp.orphan && resp.ino)
                orphaned(core, ctx, req.fg, resp.ino);
        lp_fs_resp_release(&resp);
        return 0;
}

/* ---- directories ---------------------------------------------------------------------- */

void us_dir_release(struct us_dir *d)
{
        free(d->ents);
        free(d->names);
        memset(d, 0, sizeof(*d));
}

int us_core_readdir(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t cookie,
                    size_t max_entries, bool plus, struct us_dir *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_dir d;
        uint32_t fg;
        uint64_t ino;
        size_t namebytes = 0, pos = 0;
        int r;

        memset(&d, 0, sizeof(d));
        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        if (max_entries == 0)
                max_entries = 1;
        if (max_entries > LP_FS_MAX_ENTRIES)
                max_entries = LP_FS_MAX_ENTRIES;
        us__req_init(&req, ctx, LP_FS_READDIR, fg, ino);
        req.offset = cookie;
        req.length = max_entries;
        req.flags = plus ? 1u : 0u;
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;

        for (size_t i = 0; i < resp.nentries; i++)
                namebytes += resp.entries[i].namelen + 1;
        d.ents = calloc(resp.nentries ? resp.nentries : 1, sizeof(*d.ents));
        d.names = malloc(namebytes ? namebytes : 1);
        if (!d.ents || !d.names) {
                r = -ENOMEM;
                goto fail;
        }
        d.eof = resp.eof;
        for (size_t i = 0; i < resp.nentries; i++) {
                const struct lp_fs_dirent *e = &resp.entries[i];
                struct us_dirent *o = &d.ents[d.n];
                uint32_t efg = fg, fg2;
                uint64_t eino = e->ino;

                if (e->namelen == 0 || memchr(e->name, '/', e->namelen) ||
                    memchr(e->name, 0, e->namelen)) {
                        cm_log(LOG_WARNING, "<%u,%llu>: directory entry with a bad name "
                               "left out", fg, (unsigned long long)ino);
                        continue;
                }
                memcpy(d.names + pos, e->name, e->namelen);
                d.names[pos + e->namelen] = 0;
                o->name = d.names + pos;
                pos += e->namelen + 1;
                o->next = e->next;
                o->type = e->type;
                o->dot = is_dots(o->name);
                if (!strcmp(o->name, ".")) {
                        o->fino = fino;
                } else if (!strcmp(o->name, "..") && ino == LP_FS_ROOT_INO) {
                        uint32_t pfg;
                        uint64_t pino;

                        /* The root of a mounted group: its parent is the mount
                         * point's side; the kernel only shows this number. */
                        if (fg == US_ROOT_FG || us_mtab_mountpoint(core->mtab, fg, &pfg,
                                                                   &pino) < 0)
                                o->fino = fino;
                        else if (us_ino_to_fuse(pfg, pino, &o->fino) < 0)
                                o->fino = fino;
                } else {
                        if (e->type == DT_DIR &&
                            us_mtab_mounted_on(core->mtab, fg, eino, &fg2) == 1) {
                                efg = fg2;
                                eino = LP_FS_ROOT_INO;
                        }
                        if (us_ino_to_fuse(efg, eino, &o->fino) < 0) {
                                cm_log(LOG_WARNING, "<%u,%llu>: entry %s: inode number does "
                                       "not fit in 48 bits; left out", fg,
                                       (unsigned long long)ino, o->name);
                                continue;
                        }
                }
                if (plus && !o->dot) {
                        if (efg != fg) {
                                struct lp_fs_resp aresp;

                                if (mounted_root(core, ctx, efg, &aresp) == 0) {
                                        o->has_attr = true;
                                        o->generation = aresp.attr.generation;
                                        us_attr_to_stat(&aresp.attr, o->fino, &o->st);
                                        lp_fs_resp_release(&aresp);
                                }
                        } else if (e->has_attr) {
                                o->has_attr = true;
                                o->generation = e->attr.generation;
                                us_attr_to_stat(&e->attr, o->fino, &o->st);
                        }
                }
                if (!o->has_attr) {
                        o->st.st_ino = o->fino;
                        o->st.st_mode = (mode_t)DTTOIF(o->type);
                }
                d.n++;
        }
        lp_fs_resp_release(&resp);
        *ret = d;
        return 0;
fail:
        lp_fs_resp_release(&resp);
        us_dir_release(&d);
        return r;
}

int us_core_fsyncdir(struct us_core *core, struct us_ctx *ctx, uint64_t fino)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r = us_ino_from_fuse(fino, &fg, &ino);

        if (r < 0)
                return r;
        us__req_init(&req, ctx, LP_FS_SYNC, fg, 0);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

int us_core_statfs(struct us_core *core, struct us_ctx *ctx, uint64_t fino, struct statvfs *ret)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r = us_ino_from_fuse(fino ? fino : US_FUSE_ROOT, &fg, &ino);

        if (r < 0)
                return r;
        us__req_init(&req, ctx, LP_FS_STATFS, fg, 0);
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r < 0)
                return r;
        memset(ret, 0, sizeof(*ret));
        if (resp.has_statfs) {
                ret->f_bsize = resp.statfs.bsize ? resp.statfs.bsize : US_BLKSIZE;
                ret->f_frsize = ret->f_bsize;
                ret->f_blocks = resp.statfs.blocks;
                ret->f_bfree = resp.statfs.bfree;
                ret->f_bavail = resp.statfs.bavail;
                ret->f_files = resp.statfs.files;
                ret->f_ffree = resp.statfs.ffree;
                ret->f_favail = resp.statfs.ffree;
                ret->f_namemax = resp.statfs.namemax ? resp.statfs.namemax : LP_FS_NAME_MAX;
        } else {
                ret->f_bsize = ret->f_frsize = US_BLKSIZE;
                ret->f_namemax = LP_FS_NAME_MAX;
        }
        lp_fs_resp_release(&resp);
        return 0;
}
