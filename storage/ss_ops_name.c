/*
 * ss_ops_name.c -- the storage site's operations on names and directories
 * (ss_ops.h): LOOKUP, GETATTR, MKDIR, MKNOD, SYMLINK, READLINK, OPEN,
 * CREATE, UNLINK, RMDIR, RENAME, LINK, READDIR, STATFS, FORGET_ORPHAN.
 */
#include "ss_ops_int.h"
#include "ss_place.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define MAX_DEPTH 4096u         /* bound on a walk up the tree */

/* ---- helpers ----------------------------------------------------------------- */

static uint32_t dtype(uint32_t mode)
{
        switch (mode & S_IFMT) {
        case S_IFREG: return DT_REG;
        case S_IFDIR: return DT_DIR;
        case S_IFLNK: return DT_LNK;
        case S_IFIFO: return DT_FIFO;
        case S_IFSOCK: return DT_SOCK;
        case S_IFCHR: return DT_CHR;
        case S_IFBLK: return DT_BLK;
        default: return DT_UNKNOWN;
        }
}

static int get_dir(struct ss_opctx *x, uint64_t ino, struct ss_inode *in)
{
        int r = ss__get_inode(x, ino, in);

        if (r < 0)
                return r;
        if (!S_ISDIR(in->mode))
                return ss__fail(x, -ENOTDIR, "not a directory");
        return 0;
}

/* A name: 1..255 bytes, no '/' or NUL; `creating` also refuses "." and "..". */
static int check_name(struct ss_opctx *x, const uint8_t *name, size_t len, bool creating)
{
        if (len == 0)
                return ss__fail(x, creating ? -EINVAL : -ENOENT, "empty name");
        if (len > SS_NAME_MAX)
                return ss__fail(x, -ENAMETOOLONG, "name longer than 255 bytes");
        if (memchr(name, '/', len) || memchr(name, 0, len))
                return ss__fail(x, -EINVAL, "name contains '/' or NUL");
        if (creating && ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')))
                return ss__fail(x, -EINVAL, "'.' and '..' cannot be made");
        return 0;
}

static bool is_dot(const uint8_t *name, size_t len)
{
        return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

static int lookup(struct ss_opctx *x, uint64_t parent, const uint8_t *name, size_t len, struct ss_dirent *d)
{
        int r = ss_db_lookup(x->ct->db, parent, name, len, d);

        if (r == -ENOENT)
                return ss__fail(x, r, "no entry '%.*s'", (int)len, (const char *)name);
        if (r < 0)
                return ss__fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        return 0;
}

/* ---- names --------------------------------------------------------------------------- */

int ss__op_lookup(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode dir;
        struct ss_dirent d;
        uint64_t ino;
        int r = get_dir(x, q->parent, &dir);

        if (r < 0)
                return r;
        r = check_name(x, q->name, q->namelen, false);
        if (r < 0)
                return r;
        if (q->namelen == 1 && q->name[0] == '.') {
                ino = dir.ino;
        } else if (q->namelen == 2 && q->name[0] == '.' && q->name[1] == '.') {
                r = ss_db_dir_entry(x->ct->db, dir.ino, &d);
                if (r >= 0)
                        ino = d.parent;
                else if (r == -ENOENT)
                        ino = dir.ino;  /* the root is its own parent */
                else
                        return ss__fail(x, r, "finding the parent: %s", ss_db_errmsg(x->ct->db));
        } else {
                r = lookup(x, q->parent, q->name, q->namelen, &d);
                if (r < 0)
                        return r;
                ino = d.ino;
        }
        return ss__answer_inode(x, ino, NULL, a);
}

int ss__op_getattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_sess *s;
        int r = ss__sess_get(x, q->session, q->ino, &s);

        if (r < 0)
                return r;
        return ss__answer_inode(x, q->ino, s, a);
}

/* The rows of a new inode in (mode, rdev, target set by the caller) named
 * <pin, name>, into m: its number, owner, links and times, its entry;
 * pin's times and links are updated, but pin is not put into m. */
static int add_node(struct ss_opctx *x, const struct lp_fs_req *q, struct ss_mut *m, struct ss_inode *pin,
                    const uint8_t *name, size_t namelen, struct ss_inode *in, struct ss_time now)
{
        struct ss_dirent d;
        bool isdir = S_ISDIR(in->mode);
        int r = ss_mut_alloc_ino(x->ct, m, &in->ino);

        if (r < 0)
                return ss__fail(x, r, "inode numbers of this container are exhausted");
        in->uid = q->cred.uid;
        in->gid = (pin->mode & S_ISGID) ? pin->gid : q->cred.gid;
        if (isdir && (pin->mode & S_ISGID))
                in->mode |= S_ISGID;
        in->nlink = isdir ? 2 : 1;
        in->atime = in->mtime = in->ctime = now;
        if (isdir)
                in->size = PAGE;
        memset(&d, 0, sizeof(d));
        r = ss_mut_alloc_dirent(x->ct, m, &d.id);
        if (r < 0)
                return ss__fail(x, r, "entry ids of this container are exhausted");
        r = ss_mut_cookie(x->ct, m, pin->ino, name, namelen, 0, &d.cookie);
        if (r < 0)
                return ss__fail(x, r, "choosing the entry's cookie: %s", ss_db_errmsg(x->ct->db));
        d.parent = pin->ino;
        d.ino = in->ino;
        d.type = dtype(in->mode);
        d.namelen = (uint32_t)namelen;
        memcpy(d.name, name, namelen);
        pin->mtime = pin->ctime = now;
        if (isdir)
                pin->nlink++;
        in->vvlen = 0;                  /* a new file: its first update */
        ss_cs_put_inode(&m->cs, in, SS_CS_GSEQ);
        ss_cs_put_dirent(&m->cs, &d);
        m->d_inodes++;
        return 0;
}

/* Common part of CREATE, MKNOD, MKDIR, SYMLINK: a new inode named
 * <parent, name>.  in is filled by the caller with mode/rdev/target. */
static int make_node(struct ss_opctx *x, const struct lp_fs_req *q, struct ss_inode *in, struct ss_mut *m,
                     struct ss_inode *pin)
{
        struct ss_dirent d;
        bool isdir = S_ISDIR(in->mode);
        int r;

        r = get_dir(x, q->parent, pin);
        if (r < 0)
                return r;
        r = check_name(x, q->name, q->namelen, true);
        if (r < 0)
                return r;
        r = ss_db_lookup(x->ct->db, q->parent, q->name, q->namelen, &d);
        if (r >= 0)
                return ss__fail(x, -EEXIST, "'%.*s' exists", (int)q->namelen, (const char *)q->name);
        if (r != -ENOENT)
                return ss__fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        if (pin->nlink == 0)
                return ss__fail(x, -ENOENT, "parent directory was removed");
        if (isdir && pin->nlink >= SS_LINK_MAX)
                return ss__fail(x, -EMLINK, "parent has %u links", pin->nlink);
        r = ss__space_ok(x, 0);
        if (r < 0)
                return r;
        ss_mut_init(x->ct, m, NULL);
        r = add_node(x, q, m, pin, q->name, q->namelen, in, ss__now_time());
        if (r >= 0)
                r = ss_place_inherit(x, m, pin->ino, in);       /* copies policies */
        if (r < 0) {
                ss_mut_abort(x->ct, m);
                return r;
        }
        ss_cs_put_inode(&m->cs, pin, 0);
        x->ino = in->ino;
        return 0;
}

static uint32_t perm_bits(const struct lp_fs_req *q)
{
        return q->mode & 07777 & ~q->cred.umask;
}

int ss__op_mkdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_mut m;
        int r;

        in.mode = S_IFDIR | perm_bits(q);
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        return ss__answer_inode(x, in.ino, NULL, a);
}

int ss__op_mknod(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_mut m;
        uint32_t type = q->mode & S_IFMT;
        int r;

        if (type == 0)
                type = S_IFREG;
        if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
                return ss__fail(x, -EINVAL, "mknod of type %o", type);
        in.mode = type | perm_bits(q);
        if (type == S_IFCHR || type == S_IFBLK)
                in.rdev = q->rdev;
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        return ss__answer_inode(x, in.ino, NULL, a);
}

int ss__op_symlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_mut m;
        int r;

        if (q->datalen == 0)
                return ss__fail(x, -ENOENT, "empty symlink target");
        if (q->datalen > SS_SYMLINK_MAX)
                return ss__fail(x, -ENAMETOOLONG, "symlink target of %zu bytes (at most %u)", q->datalen,
                                SS_SYMLINK_MAX);
        if (memchr(q->data, 0, q->datalen))
                return ss__fail(x, -EINVAL, "symlink target contains NUL");
        in.mode = S_IFLNK | 0777;
        in.size = q->datalen;
        in.targetlen = (uint32_t)q->datalen;
        memcpy(in.target, q->data, q->datalen);
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        return ss__answer_inode(x, in.ino, NULL, a);
}

int ss__op_readlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        uint8_t *buf;
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        if (!S_ISLNK(in.mode))
                return ss__fail(x, -EINVAL, "not a symlink");
        buf = ss__xalloc(x, in.targetlen);
        if (!buf)
                return ss__fail(x, -ENOMEM, "out of memory");
        memcpy(buf, in.target, in.targetlen);
        a->data = buf;
        a->datalen = in.targetlen;
        return 0;
}

/* Open a write session on a regular file (after CREATE/OPEN decided to). */
static int open_session(struct ss_opctx *x, const struct lp_fs_req *q, struct ss_inode *in, struct ss_sess **ret)
{
        struct ss_sess *s;
        int r = ss_place_guard(x, in, -EHOSTUNREACH, "write open");   /* ss_place.h [L3] */

        if (r < 0)
                return r;
        r = ss_sess_new(x->sess, x->ct, in->ino, x->client, &s);
        if (r == -ENFILE)
                return ss__fail(x, r, "%u write sessions open (the limit)", x->sess->max);
        if (r < 0)
                return ss__fail(x, r, "cannot begin a write session: %s", strerror(-r));
        if (q->flags & O_TRUNC) {
                struct ss_time now = ss__now_time();

                r = ss__sess_truncate(x, s, in, 0, (q->valid & LP_FS_CLIENT_TIMES) ? NULL : &now);
                if (r < 0)
                        return r;
                ss__sess_view(s, in);
        }
        *ret = s;
        return 0;
}

static bool writable(uint32_t flags)
{
        return (flags & O_ACCMODE) != O_RDONLY;
}

/* OPEN, and CREATE of an existing file. */
static int do_open(struct ss_opctx *x, const struct lp_fs_req *q, uint64_t ino, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s = NULL;
        int r = ss__get_inode(x, ino, &in);

        if (r < 0)
                return r;
        if (S_ISDIR(in.mode) && (writable(q->flags) || (q->flags & O_TRUNC)))
                return ss__fail(x, -EISDIR, "cannot open a directory for writing");
        a->version = in.version;
        if (S_ISREG(in.mode) && writable(q->flags)) {
                r = open_session(x, q, &in, &s);
                if (r < 0)
                        return r;
                a->session = s->id;
        }
        r = ss__to_attr(x, &in, s, &a->attr, NULL);
        if (r < 0)
                return r;
        a->has_attr = true;
        return 0;
}

int ss__op_open(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        return do_open(x, q, q->ino, a);
}

int ss__op_create(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_dirent d;
        struct ss_sess *s = NULL;
        struct ss_mut m;
        int r;

        r = get_dir(x, q->parent, &pin);
        if (r < 0)
                return r;
        r = check_name(x, q->name, q->namelen, true);
        if (r < 0)
                return r;
        r = ss_db_lookup(x->ct->db, q->parent, q->name, q->namelen, &d);
        if (r >= 0) {
                if (q->flags & O_EXCL)
                        return ss__fail(x, -EEXIST, "'%.*s' exists", (int)q->namelen, (const char *)q->name);
                if (d.type == DT_DIR)
                        return ss__fail(x, -EISDIR, "'%.*s' is a directory", (int)q->namelen, (const char *)q->name);
                return do_open(x, q, d.ino, a);
        }
        if (r != -ENOENT)
                return ss__fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        in.mode = S_IFREG | perm_bits(q);
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        r = ss__get_inode(x, in.ino, &in);
        if (r < 0)
                return r;
        a->version = in.version;
        if (writable(q->flags)) {
                r = open_session(x, q, &in, &s);
                if (r < 0)
                        return r;
                a->session = s->id;
        }
        r = ss__to_attr(x, &in, s, &a->attr, NULL);
        if (r < 0)
                return r;
        a->has_attr = true;
        return 0;
}

struct xdel {
        struct ss_cs *cs;
        uint64_t ino;
};

static int xattr_del_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xdel *xd = ctx;

        (void)value;
        (void)vlen;
        ss_cs_del_xattr(xd->cs, xd->ino, name, namelen);
        return xd->cs->err;
}

/* Rows that delete inode in with its xattrs, and its deletion record (its
 * pages: the caller). */
static int delete_inode_rows(struct ss_opctx *x, struct ss_mut *m, const struct ss_inode *in)
{
        struct xdel xd = { &m->cs, in->ino };
        int r = ss_db_xattr_each(x->ct->db, in->ino, xattr_del_cb, &xd);

        if (r < 0)
                return ss__fail(x, r, "listing xattrs: %s", ss_db_errmsg(x->ct->db));
        ss_cs_del_inode(&m->cs, in->ino, in->vv, in->vvlen, 0);
        m->d_inodes--;
        return 0;
}

/*
 * UNLINK (dir false) and RMDIR (dir true) of q->name in directory
 * q->parent.  UNLINK: not a directory; the inode loses a link (an
 * orphan when none is left, freed later: a->orphan).  RMDIR: an empty
 * directory other than the root; its inode goes with the name.  '.' and
 * '..' are refused as POSIX says for each (EISDIR; EINVAL and ENOTEMPTY).
 */
static int remove_entry(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a, bool dir)
{
        struct ss_inode pin, in;
        struct ss_dirent d;
        struct ss_mut m;
        struct ss_time now = ss__now_time();
        int r = get_dir(x, q->parent, &pin);

        if (r < 0)
                return r;
        r = check_name(x, q->name, q->namelen, false);
        if (r < 0)
                return r;
        if (!dir && is_dot(q->name, q->namelen))
                return ss__fail(x, -EISDIR, "cannot unlink '.' or '..'");
        if (dir && q->namelen == 1 && q->name[0] == '.')
                return ss__fail(x, -EINVAL, "cannot remove '.'");
        if (dir && q->namelen == 2 && q->name[0] == '.' && q->name[1] == '.')
                return ss__fail(x, -ENOTEMPTY, "cannot remove '..'");
        r = lookup(x, q->parent, q->name, q->namelen, &d);
        if (r < 0)
                return r;
        r = ss__get_inode(x, d.ino, &in);
        if (r < 0)
                return r;
        if (!dir && S_ISDIR(in.mode))
                return ss__fail(x, -EISDIR, "is a directory");
        if (dir) {
                if (!S_ISDIR(in.mode))
                        return ss__fail(x, -ENOTDIR, "not a directory");
                if (in.ino == SS_ROOT_INO)
                        return ss__fail(x, -EBUSY, "the root directory");
                r = ss_db_dir_empty(x->ct->db, in.ino);
                if (r < 0)
                        return ss__fail(x, r, "listing: %s", ss_db_errmsg(x->ct->db));
                if (!r)
                        return ss__fail(x, -ENOTEMPTY, "directory not empty");
        }
        ss_mut_init(x->ct, &m, NULL);
        ss_cs_del_dirent(&m.cs, d.id);
        if (dir) {
                r = delete_inode_rows(x, &m, &in);
                if (r < 0) {
                        ss_mut_abort(x->ct, &m);
                        return r;
                }
                pin.nlink = pin.nlink > 2 ? pin.nlink - 1 : 2;
        } else {
                in.nlink = in.nlink ? in.nlink - 1 : 0;
                in.ctime = now;
                ss_cs_put_inode(&m.cs, &in, 0);
        }
        pin.mtime = pin.ctime = now;
        ss_cs_put_inode(&m.cs, &pin, 0);
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        a->ino = in.ino;
        if (!dir)
                a->orphan = in.nlink == 0;
        return 0;
}

int ss__op_unlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        return remove_entry(x, q, a, false);
}

int ss__op_rmdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        return remove_entry(x, q, a, true);
}

/* Is directory anc the directory node or one of its ancestors? */
static int is_ancestor(struct ss_opctx *x, uint64_t anc, uint64_t node)
{
        for (unsigned depth = 0; depth < MAX_DEPTH; depth++) {
                struct ss_dirent d;
                int r;

                if (node == anc)
                        return 1;
                if (node == SS_ROOT_INO)
                        return 0;
                r = ss_db_dir_entry(x->ct->db, node, &d);
                if (r == -ENOENT)
                        return 0;
                if (r < 0)
                        return ss__fail(x, r, "walking up the tree: %s", ss_db_errmsg(x->ct->db));
                node = d.parent;
        }
        return ss__fail(x, -EIO, "directory tree deeper than %u levels (corrupt?)", MAX_DEPTH);
}

int ss__op_rename(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode *P, *NP, *S, *D;
        struct ss_inode *buf;
        struct ss_dirent sd, dd;
        struct ss_mut m;
        struct ss_time now = ss__now_time();
        bool have_dst, exch = q->flags & LP_FS_RENAME_EXCHANGE;
        bool whiteout = q->flags & LP_FS_RENAME_WHITEOUT;
        bool moved = q->parent != q->newparent;
        int r;

        if (q->flags & ~(LP_FS_RENAME_NOREPLACE | LP_FS_RENAME_EXCHANGE | LP_FS_RENAME_WHITEOUT))
                return ss__fail(x, -EINVAL, "unknown rename flags %#x", q->flags);
        if ((q->flags & (LP_FS_RENAME_NOREPLACE | LP_FS_RENAME_WHITEOUT)) && exch)
                return ss__fail(x, -EINVAL, "NOREPLACE or WHITEOUT with EXCHANGE");
        buf = ss__xalloc(x, 5 * sizeof(*buf));
        if (!buf)
                return ss__fail(x, -ENOMEM, "out of memory");
        P = &buf[0];
        S = &buf[2];
        D = &buf[3];
        r = get_dir(x, q->parent, P);
        if (r < 0)
                return r;
        NP = P;
        if (moved) {
                NP = &buf[1];
                r = get_dir(x, q->newparent, NP);
                if (r < 0)
                        return r;
        }
        r = check_name(x, q->name, q->namelen, false);
        if (r < 0)
                return r;
        if (is_dot(q->name, q->namelen))
                return ss__fail(x, -EINVAL, "cannot rename '.' or '..'");
        r = check_name(x, q->newname, q->newnamelen, true);
        if (r < 0)
                return r;
        r = lookup(x, q->parent, q->name, q->namelen, &sd);
        if (r < 0)
                return r;
        r = ss__get_inode(x, sd.ino, S);
        if (r < 0)
                return r;
        r = ss_db_lookup(x->ct->db, q->newparent, q->newname, q->newnamelen, &dd);
        if (r < 0 && r != -ENOENT)
                return ss__fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        have_dst = r >= 0;
        if (have_dst) {
                r = ss__get_inode(x, dd.ino, D);
                if (r < 0)
                        return r;
        }
        x->ino = S->ino;
        /* ss_place.h [L4]: no update of a file whose data is not here. */
        r = ss_place_guard(x, S, -EHOSTUNREACH, "rename");
        if (r >= 0 && exch && have_dst)
                r = ss_place_guard(x, D, -EHOSTUNREACH, "rename");
        if (r < 0)
                return r;
        if (exch) {
                if (!have_dst)
                        return ss__fail(x, -ENOENT, "no entry '%.*s' to exchange with", (int)q->newnamelen,
                                        (const char *)q->newname);
                if (sd.id == dd.id)
                        return 0;
                if (moved && S_ISDIR(S->mode)) {
                        r = is_ancestor(x, S->ino, NP->ino);
                        if (r < 0)
                                return r;
                        if (r)
                                return ss__fail(x, -EINVAL, "cannot move a directory into itself");
                }
                if (moved && S_ISDIR(D->mode)) {
                        r = is_ancestor(x, D->ino, P->ino);
                        if (r < 0)
                                return r;
                        if (r)
                                return ss__fail(x, -EINVAL, "cannot move a directory into itself");
                }
                if (moved && S_ISDIR(S->mode) != S_ISDIR(D->mode)) {
                        if (S_ISDIR(S->mode)) {
                                if (NP->nlink >= SS_LINK_MAX)
                                        return ss__fail(x, -EMLINK, "target directory has too many links");
                                P->nlink--;
                                NP->nlink++;
                        } else {
                                if (P->nlink >= SS_LINK_MAX)
                                        return ss__fail(x, -EMLINK, "source directory has too many links");
                                P->nlink++;
                                NP->nlink--;
                        }
                }
                ss_mut_init(x->ct, &m, NULL);
                sd.ino = D->ino;
                sd.type = dtype(D->mode);
                dd.ino = S->ino;
                dd.type = dtype(S->mode);
                ss_cs_put_dirent(&m.cs, &sd);
                ss_cs_put_dirent(&m.cs, &dd);
                S->ctime = D->ctime = now;
                ss_cs_put_inode(&m.cs, S, 0);
                if (D->ino != S->ino)
                        ss_cs_put_inode(&m.cs, D, 0);
        } else {
                if (have_dst) {
                        if (q->flags & LP_FS_RENAME_NOREPLACE)
                                return ss__fail(x, -EEXIST, "'%.*s' exists", (int)q->newnamelen,
                                                (const char *)q->newname);
                        if (dd.ino == sd.ino)
                                return 0;       /* the same file: nothing to do (POSIX) */
                        if (S_ISDIR(S->mode)) {
                                if (!S_ISDIR(D->mode))
                                        return ss__fail(x, -ENOTDIR, "cannot replace a non-directory with a directory");
                                r = ss_db_dir_empty(x->ct->db, D->ino);
                                if (r < 0)
                                        return ss__fail(x, r, "listing: %s", ss_db_errmsg(x->ct->db));
                                if (!r)
                                        return ss__fail(x, -ENOTEMPTY, "target directory not empty");
                        } else if (S_ISDIR(D->mode)) {
                                return ss__fail(x, -EISDIR, "cannot replace a directory with a non-directory");
                        }
                }
                if (moved && S_ISDIR(S->mode)) {
                        r = is_ancestor(x, S->ino, NP->ino);
                        if (r < 0)
                                return r;
                        if (r)
                                return ss__fail(x, -EINVAL, "cannot move a directory into itself");
                        if (NP->nlink >= SS_LINK_MAX && !(have_dst && S_ISDIR(D->mode)))
                                return ss__fail(x, -EMLINK, "target directory has too many links");
                }
                if (whiteout) {
                        r = ss__space_ok(x, 0);
                        if (r < 0)
                                return r;
                }
                ss_mut_init(x->ct, &m, NULL);
                if (have_dst) {
                        ss_cs_del_dirent(&m.cs, dd.id);
                        if (S_ISDIR(D->mode)) {
                                r = delete_inode_rows(x, &m, D);
                                if (r < 0) {
                                        ss_mut_abort(x->ct, &m);
                                        return r;
                                }
                                NP->nlink--;
                                a->ino = D->ino;
                        } else {
                                D->nlink = D->nlink ? D->nlink - 1 : 0;
                                D->ctime = now;
                                ss_cs_put_inode(&m.cs, D, 0);
                                a->ino = D->ino;
                                a->orphan = D->nlink == 0;
                        }
                }
                /* A renamed entry gets the new name's cookie (the one it
                 * replaces, if any: that row is deleted first), so that
                 * every copy lists it at the same place.  A listing that
                 * runs across the rename may show it twice or not at all
                 * (docs/protocol.md, READDIR). */
                r = 0;
                if (have_dst)
                        sd.cookie = dd.cookie;
                else
                        r = ss_mut_cookie(x->ct, &m, q->newparent, q->newname, q->newnamelen, sd.id,
                                          &sd.cookie);
                if (r < 0) {
                        ss_mut_abort(x->ct, &m);
                        return ss__fail(x, r, "choosing the entry's cookie: %s", ss_db_errmsg(x->ct->db));
                }
                sd.parent = q->newparent;
                sd.namelen = (uint32_t)q->newnamelen;
                memcpy(sd.name, q->newname, q->newnamelen);
                sd.name[q->newnamelen] = 0;
                ss_cs_put_dirent(&m.cs, &sd);
                if (moved && S_ISDIR(S->mode)) {
                        P->nlink--;
                        NP->nlink++;
                }
                S->ctime = now;
                ss_cs_put_inode(&m.cs, S, 0);
                if (whiteout) {
                        /* The old name now names a whiteout, as
                         * mknod(S_IFCHR, 0/0) would make it (overlayfs),
                         * in the same commit. */
                        struct ss_inode *W = &buf[4];

                        memset(W, 0, sizeof(*W));
                        W->mode = S_IFCHR;
                        r = add_node(x, q, &m, P, q->name, q->namelen, W, now);
                        if (r < 0) {
                                ss_mut_abort(x->ct, &m);
                                return r;
                        }
                }
        }
        P->mtime = P->ctime = now;
        ss_cs_put_inode(&m.cs, P, 0);
        if (moved) {
                NP->mtime = NP->ctime = now;
                ss_cs_put_inode(&m.cs, NP, 0);
        }
        return ss__commit(x, &m, NULL);
}

int ss__op_link(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, pin;
        struct ss_dirent d;
        struct ss_mut m;
        struct ss_time now = ss__now_time();
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        if (S_ISDIR(in.mode))
                return ss__fail(x, -EPERM, "hard links to directories are not allowed");
        if (in.nlink == 0)
                return ss__fail(x, -ENOENT, "the file has no name left");
        if (in.nlink >= SS_LINK_MAX)
                return ss__fail(x, -EMLINK, "%u links", in.nlink);
        r = ss_place_guard(x, &in, -EHOSTUNREACH, "link");    /* ss_place.h [L4] */
        if (r < 0)
                return r;
        r = get_dir(x, q->newparent, &pin);
        if (r < 0)
                return r;
        r = check_name(x, q->newname, q->newnamelen, true);
        if (r < 0)
                return r;
        r = ss_db_lookup(x->ct->db, q->newparent, q->newname, q->newnamelen, &d);
        if (r >= 0)
                return ss__fail(x, -EEXIST, "'%.*s' exists", (int)q->newnamelen, (const char *)q->newname);
        if (r != -ENOENT)
                return ss__fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        r = ss__space_ok(x, 0);
        if (r < 0)
                return r;
        ss_mut_init(x->ct, &m, NULL);
        memset(&d, 0, sizeof(d));
        r = ss_mut_alloc_dirent(x->ct, &m, &d.id);
        if (r >= 0)
                r = ss_mut_cookie(x->ct, &m, pin.ino, q->newname, q->newnamelen, 0, &d.cookie);
        if (r < 0) {
                ss_mut_abort(x->ct, &m);
                return ss__fail(x, r, "new entry: %s", r == -ENOSPC ? "entry ids of this container are exhausted"
                                                                    : ss_db_errmsg(x->ct->db));
        }
        d.parent = pin.ino;
        d.ino = in.ino;
        d.type = dtype(in.mode);
        d.namelen = (uint32_t)q->newnamelen;
        memcpy(d.name, q->newname, q->newnamelen);
        in.nlink++;
        in.ctime = now;
        pin.mtime = pin.ctime = now;
        ss_cs_put_dirent(&m.cs, &d);
        ss_cs_put_inode(&m.cs, &in, 0);
        ss_cs_put_inode(&m.cs, &pin, 0);
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        return ss__answer_inode(x, in.ino, NULL, a);
}

/* ---- readdir ------------------------------------------------------------------------ */

struct rd_ctx {
        struct ss_opctx *x;
        struct lp_fs_dirent *e;
        size_t n;
        uint8_t *names;
        size_t namepos;
        uint64_t last;                  /* cookie of the last entry listed */
};

static int rd_cb(void *ctx, const struct ss_dirent *d)
{
        struct rd_ctx *c = ctx;
        struct lp_fs_dirent *e = &c->e[c->n++];

        memcpy(c->names + c->namepos, d->name, d->namelen);
        e->name = c->names + c->namepos;
        e->namelen = d->namelen;
        c->namepos += d->namelen;
        e->ino = d->ino;
        e->type = d->type;
        e->next = d->cookie;
        c->last = d->cookie;
        return 0;
}

int ss__op_readdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode dir;
        struct ss_dirent pd;
        struct rd_ctx c = { .x = x };
        uint64_t max = q->length ? q->length : LP_FS_MAX_ENTRIES, after;
        int r = get_dir(x, q->ino, &dir);

        if (r < 0)
                return r;
        if (max > LP_FS_MAX_ENTRIES)
                max = LP_FS_MAX_ENTRIES;
        if (q->offset > (uint64_t)INT64_MAX) {
                /* No entry has such a cookie: past the end. */
                a->eof = true;
                return 0;
        }
        c.e = ss__xalloc(x, max * sizeof(*c.e));
        c.names = ss__xalloc(x, max * SS_NAME_MAX);
        if (!c.e || !c.names)
                return ss__fail(x, -ENOMEM, "out of memory");
        memset(c.e, 0, max * sizeof(*c.e));
        if (q->offset == 0) {
                c.e[c.n++] = (struct lp_fs_dirent){ .ino = dir.ino, .next = 1, .type = DT_DIR,
                                                    .name = (const uint8_t *)".", .namelen = 1 };
        }
        if (q->offset <= 1 && c.n < max) {
                uint64_t parent = dir.ino;

                r = ss_db_dir_entry(x->ct->db, dir.ino, &pd);
                if (r >= 0)
                        parent = pd.parent;
                else if (r != -ENOENT)
                        return ss__fail(x, r, "finding the parent: %s", ss_db_errmsg(x->ct->db));
                c.e[c.n++] = (struct lp_fs_dirent){ .ino = parent, .next = 2, .type = DT_DIR,
                                                    .name = (const uint8_t *)"..", .namelen = 2 };
        }
        /* Entries' cookies are >= SS_COOKIE_MIN (3): after 0, 1 or 2
         * (the start, '.', '..') come all of them. */
        after = q->offset;
        c.last = after;
        if (c.n < max) {
                r = ss_db_readdir(x->ct->db, dir.ino, after, (unsigned)(max - c.n), rd_cb, &c);
                if (r < 0)
                        return ss__fail(x, r, "reading the directory: %s", ss_db_errmsg(x->ct->db));
        }
        r = ss_db_readdir_more(x->ct->db, dir.ino, c.last);
        if (r < 0)
                return ss__fail(x, r, "reading the directory: %s", ss_db_errmsg(x->ct->db));
        /* Not at the end while '..' is still to come. */
        a->eof = !r && !(q->offset <= 1 && c.n < (q->offset == 0 ? 2u : 1u));
        if ((q->flags & 1) && c.n) {
                /* Room for every entry's vector, living with the answer
                 * (pages never written are never touched). */
                uint8_t *vvs = ss__xalloc(x, c.n * SS_VV_MAX);

                if (!vvs)
                        return ss__fail(x, -ENOMEM, "out of memory");
                for (size_t i = 0; i < c.n; i++) {
                        struct ss_inode in;

                        if (ss_db_inode_get(x->ct->db, c.e[i].ino, &in) < 0)
                                continue;
                        r = ss__to_attr(x, &in, NULL, &c.e[i].attr, vvs + i * SS_VV_MAX);
                        if (r < 0)
                                return r;
                        c.e[i].has_attr = true;
                }
        }
        a->entries = c.e;
        a->nentries = c.n;
        return 0;
}

/* ---- statfs ---------------------------------------------------------------------------- */

int ss__op_statfs(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct statvfs v;
        uint64_t ffree;

        (void)q;
        if (statvfs(x->data_dir, &v) < 0)
                return ss__fail(x, -errno, "statvfs %s: %s", x->data_dir, strerror(errno));
        ffree = SS_INO_COUNTER_MAX + 1 - x->ct->next_ino;
        a->has_statfs = true;
        a->statfs.bsize = (uint32_t)v.f_frsize;
        a->statfs.blocks = v.f_blocks;
        a->statfs.bfree = v.f_bfree;
        a->statfs.bavail = v.f_bavail;
        a->statfs.files = x->ct->ninodes + ffree;
        a->statfs.ffree = ffree;
        a->statfs.namemax = SS_NAME_MAX;
        return 0;
}

/* ---- orphans ---------------------------------------------------------------------- */

int ss__op_forget_orphan(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_mut m;
        struct dsm_txn *t;
        struct ss_sess *s, *next;
        int r = ss_db_inode_get(x->ct->db, q->ino, &in);

        (void)a;
        x->ino = q->ino;
        if (r == -ENOENT)
                return 0;               /* already gone: idempotent */
        if (r < 0)
                return ss__fail(x, r, "reading the inode: %s", ss_db_errmsg(x->ct->db));
        if (in.nlink > 0 || S_ISDIR(in.mode))
                return 0;               /* it has a name (again): not an orphan */
        /* A live write session is an open the CSS may not have recorded
         * yet: a CREATE opens the file here before the mount can send
         * CSS_OPENED, and an unlink in between makes it an orphan nobody
         * holds as far as the CSS knows.  Freeing it would take the
         * session, and the writes of a descriptor still open, with it: the
         * CSS decides again later (css_orphan.c).  Doomed sessions (client
         * gone, idle) are ended here. */
        for (s = x->sess->head; s; s = s->next)
                if (s->ct == x->ct && s->ino == q->ino && !s->doomed)
                        return ss__fail(x, -EBUSY, "forget orphan: write session %016llx is open on it",
                                        (unsigned long long)s->id);
        for (s = x->sess->head; s; s = next) {
                next = s->next;
                if (s->ct == x->ct && s->ino == q->ino)
                        ss_sess_end(x->sess, s);
        }
        ss_mut_init(x->ct, &m, NULL);
        r = ss_mut_txn(x->ct, &m, &t);
        if (r >= 0)
                r = dsm_txn_free(t, q->ino, 0, DSM_TO_END);
        if (r >= 0)
                r = delete_inode_rows(x, &m, &in);
        if (r < 0) {
                ss_mut_abort(x->ct, &m);
                return ss__fail(x, r, "forget orphan: %s", strerror(-r));
        }
        return ss__commit(x, &m, NULL);
}
