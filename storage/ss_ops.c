/*
 * ss_ops.c -- see ss_ops.h.
 *
 * Every mutation follows one pattern: read what it needs from SQLite (the
 * loop thread is the only writer, so nothing changes underneath), check
 * every precondition, build the new row images into an ss_mut's
 * changeset (and touch pages through its transaction), then
 * ss_mut_commit().  Nothing is changed before all checks passed, so an
 * error answer means nothing happened.
 */
#include "ss_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "cm.h"

#define PAGE DSM_PAGE_SIZE
#define PAGE_SHIFT DSM_PAGE_SHIFT
#define MAX_DEPTH 4096u         /* bound on a walk up the tree */


/* ---- helpers ----------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int fail(struct ss_opctx *x, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
        va_end(ap);
        return r;
}

static void *xalloc(struct ss_opctx *x, size_t n)
{
        void *p;

        if (x->nmem == SS_MEM_SLOTS)
                return NULL;
        p = malloc(n ? n : 1);
        if (p)
                x->mem[x->nmem++] = p;
        return p;
}

void ss_opctx_release(struct ss_opctx *x)
{
        for (int i = 0; i < x->nmem; i++)
                free(x->mem[i]);
        x->nmem = 0;
}

static struct ss_time now_time(void)
{
        struct timespec ts = cm_wall();

        return (struct ss_time){ ts.tv_sec, (uint32_t)ts.tv_nsec };
}

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

static int get_inode(struct ss_opctx *x, uint64_t ino, struct ss_inode *in)
{
        int r = ss_db_inode_get(x->ct->db, ino, in);

        x->ino = ino;
        if (r == -ENOENT)
                return fail(x, r, "no such inode");
        if (r < 0)
                return fail(x, r, "reading the inode: %s", ss_db_errmsg(x->ct->db));
        return 0;
}

static int get_dir(struct ss_opctx *x, uint64_t ino, struct ss_inode *in)
{
        int r = get_inode(x, ino, in);

        if (r < 0)
                return r;
        if (!S_ISDIR(in->mode))
                return fail(x, -ENOTDIR, "not a directory");
        return 0;
}

/* A name: 1..255 bytes, no '/' or NUL; `creating` also refuses "." and "..". */
static int check_name(struct ss_opctx *x, const uint8_t *name, size_t len, bool creating)
{
        if (len == 0)
                return fail(x, creating ? -EINVAL : -ENOENT, "empty name");
        if (len > SS_NAME_MAX)
                return fail(x, -ENAMETOOLONG, "name longer than 255 bytes");
        if (memchr(name, '/', len) || memchr(name, 0, len))
                return fail(x, -EINVAL, "name contains '/' or NUL");
        if (creating && ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')))
                return fail(x, -EINVAL, "'.' and '..' cannot be made");
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
                return fail(x, r, "no entry '%.*s'", (int)len, (const char *)name);
        if (r < 0)
                return fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        return 0;
}

static int check_time(struct ss_opctx *x, const struct lp_fs_time *t)
{
        if (t->nsec >= 1000000000u)
                return fail(x, -EINVAL, "nanoseconds out of range");
        return 0;
}

static int space_ok(struct ss_opctx *x, uint64_t need)
{
        struct statvfs v;
        uint64_t avail;

        if (statvfs(x->data_dir, &v) < 0)
                return fail(x, -errno, "statvfs %s: %s", x->data_dir, strerror(errno));
        avail = (uint64_t)v.f_bavail * v.f_frsize;
        if (avail < x->space_reserve || avail - x->space_reserve < need)
                return fail(x, -ENOSPC, "data directory has %llu bytes free (reserve %llu)",
                            (unsigned long long)avail, (unsigned long long)x->space_reserve);
        return 0;
}

static void sess_view(const struct ss_sess *s, struct ss_inode *in)
{
        if (!s)
                return;
        if (s->has_size)
                in->size = s->size;
        if (s->has_atime)
                in->atime = s->atime;
        if (s->has_mtime)
                in->mtime = s->mtime;
        if (s->has_ctime)
                in->ctime = s->ctime;
}

static uint64_t pages_of(uint64_t size)
{
        return (size >> PAGE_SHIFT) + ((size & (PAGE - 1)) != 0);
}

/* Attributes of in (already a session view if s). */
static int to_attr(struct ss_opctx *x, const struct ss_inode *in, struct ss_sess *s,
                   struct lp_fs_attr *a)
{
        uint64_t pages = 0;

        memset(a, 0, sizeof(*a));
        a->ino = in->ino;
        a->size = in->size;
        a->mode = in->mode;
        a->nlink = in->nlink;
        a->uid = in->uid;
        a->gid = in->gid;
        a->rdev = in->rdev;
        a->atime = (struct lp_fs_time){ in->atime.sec, in->atime.nsec };
        a->mtime = (struct lp_fs_time){ in->mtime.sec, in->mtime.nsec };
        a->ctime = (struct lp_fs_time){ in->ctime.sec, in->ctime.nsec };
        a->generation = in->generation;
        a->version = in->version;
        if (S_ISDIR(in->mode)) {
                pages = 1;
        } else if (S_ISREG(in->mode)) {
                if (s && (s->data || s->has_size)) {
                        if (!s->pages_valid) {
                                int r = dsm_txn_count_pages(s->txn, in->ino, &s->pages);

                                if (r < 0)
                                        return fail(x, r, "counting staged pages: %s", strerror(-r));
                                s->pages_valid = true;
                        }
                        pages = s->pages;
                } else {
                        int r = ss_ct_blocks(x->ct, in->ino, &pages);

                        if (r < 0)
                                return fail(x, r, "counting data pages: %s", strerror(-r));
                }
        }
        a->blocks = pages * (PAGE / 512);
        return 0;
}

static int answer_inode(struct ss_opctx *x, uint64_t ino, struct ss_sess *s, struct lp_fs_resp *a)
{
        struct ss_inode in;
        int r = get_inode(x, ino, &in);

        if (r < 0)
                return r;
        sess_view(s, &in);
        r = to_attr(x, &in, s, &a->attr);
        if (r < 0)
                return r;
        a->has_attr = true;
        a->version = in.version;
        return 0;
}

/* ---- sessions --------------------------------------------------------------------- */

/* Find session id for <ct, ino>; id 0 means none (ret NULL). */
static int sess_get(struct ss_opctx *x, uint64_t id, uint64_t ino, struct ss_sess **ret)
{
        struct ss_sess *s;

        *ret = NULL;
        if (!id)
                return 0;
        s = ss_sess_find(x->sess, id);
        x->ino = ino;
        if (!s)
                return fail(x, -ESTALE, "session %016llx unknown (ended, or from before a restart)",
                            (unsigned long long)id);
        if (s->ct != x->ct || s->ino != ino)
                return fail(x, -EINVAL, "session %016llx belongs to another file", (unsigned long long)id);
        s->last_used_us = cm_now_us();
        *ret = s;
        return 0;
}

/* A session's transaction failed: end the session, map the error. */
static int sess_failed(struct ss_opctx *x, struct ss_sess *s, int r, const char *what)
{
        uint64_t id = s->id;

        ss_sess_end(x->sess, s);
        if (r == DSM_ECONFLICT)
                return fail(x, -EAGAIN, "session %016llx: %s lost a race with another commit to this file; "
                            "its staged data was discarded", (unsigned long long)id, what);
        if (r == DSM_ECORRUPT)
                return fail(x, -EIO, "session %016llx: %s: damaged page in the log",
                            (unsigned long long)id, what);
        return fail(x, r, "session %016llx: %s: %s; session ended", (unsigned long long)id, what,
                    strerror(-r));
}

/* ---- data helpers (on one transaction) ------------------------------------------------ */

/* Read page `page` of ino as seen by session s (or committed). */
static int read_page(struct ss_opctx *x, struct ss_sess *s, uint64_t ino, uint64_t page, void *buf)
{
        if (s)
                return dsm_txn_read(s->txn, ino, page, buf);
        return dsm_read(x->ct->store, ino, page, buf);
}

static int data_write(struct dsm_txn *t, uint64_t ino, uint64_t off, const uint8_t *buf, size_t len)
{
        while (len) {
                uint32_t po = (uint32_t)(off & (PAGE - 1));
                uint32_t n = PAGE - po < len ? PAGE - po : (uint32_t)len;
                int r;

                if (po == 0 && len >= PAGE) {
                        /* Whole pages in one call: a big run streams to the
                         * log from the request without another copy. */
                        uint64_t np = len >> PAGE_SHIFT;

                        r = dsm_txn_write_pages(t, ino, off >> PAGE_SHIFT, np, buf);
                        if (r < 0)
                                return r;
                        off += np << PAGE_SHIFT;
                        buf += np << PAGE_SHIFT;
                        len -= np << PAGE_SHIFT;
                        continue;
                }
                r = dsm_txn_write(t, ino, off >> PAGE_SHIFT, po, buf, n);
                if (r < 0)
                        return r;
                off += n;
                buf += n;
                len -= n;
        }
        return 0;
}

/* Zero [off, off+len) inside one page, unless the page is a hole. */
static int zero_partial(struct dsm_txn *t, uint64_t ino, uint64_t page, uint32_t off, uint32_t len)
{
        uint8_t buf[PAGE];
        int r = dsm_txn_read(t, ino, page, buf);

        if (r <= 0)
                return r;
        memset(buf + off, 0, len);
        return dsm_txn_write(t, ino, page, 0, buf, PAGE);
}

/* Make [from, to) read as zeros: free whole pages, zero partial ones. */
static int data_zero(struct dsm_txn *t, uint64_t ino, uint64_t from, uint64_t to)
{
        uint64_t first, last;
        int r;

        if (from >= to)
                return 0;
        if (from >> PAGE_SHIFT == (to - 1) >> PAGE_SHIFT) {
                uint32_t po = (uint32_t)(from & (PAGE - 1));

                if (po == 0 && (to & (PAGE - 1)) == 0)
                        return dsm_txn_free(t, ino, from >> PAGE_SHIFT, 1);
                return zero_partial(t, ino, from >> PAGE_SHIFT, po, (uint32_t)(to - from));
        }
        first = pages_of(from);
        last = to >> PAGE_SHIFT;
        if (from & (PAGE - 1)) {
                r = zero_partial(t, ino, from >> PAGE_SHIFT, (uint32_t)(from & (PAGE - 1)),
                                 PAGE - (uint32_t)(from & (PAGE - 1)));
                if (r < 0)
                        return r;
        }
        if (last > first) {
                r = dsm_txn_free(t, ino, first, last - first);
                if (r < 0)
                        return r;
        }
        if (to & (PAGE - 1))
                return zero_partial(t, ino, last, 0, (uint32_t)(to & (PAGE - 1)));
        return 0;
}

/* Truncate the data of ino from oldsize to newsize. */
static int data_truncate(struct dsm_txn *t, uint64_t ino, uint64_t oldsize, uint64_t newsize)
{
        int r;

        if (newsize >= oldsize)
                return 0;       /* no data beyond oldsize: the new part reads as zeros */
        r = dsm_txn_free(t, ino, pages_of(newsize), DSM_TO_END);
        if (r < 0)
                return r;
        if (newsize & (PAGE - 1))
                r = zero_partial(t, ino, newsize >> PAGE_SHIFT, (uint32_t)(newsize & (PAGE - 1)),
                                 PAGE - (uint32_t)(newsize & (PAGE - 1)));
        return r;
}

/* Truncate inside a session; view is the session's view of the inode. */
static int sess_truncate(struct ss_opctx *x, struct ss_sess *s, const struct ss_inode *view, uint64_t size,
                         struct ss_time now)
{
        int r = data_truncate(s->txn, s->ino, view->size, size);

        if (r < 0)
                return sess_failed(x, s, r, "truncate");
        s->has_size = true;
        s->size = size;
        if (size < view->size) {
                s->data = true;         /* pages were freed or zeroed */
                s->pages_valid = false;
        }
        s->has_mtime = s->has_ctime = true;
        s->mtime = s->ctime = now;
        return 0;
}

static int commit(struct ss_opctx *x, struct ss_mut *m, uint64_t *ret_seq)
{
        int r = ss_mut_commit(x->ct, m, ret_seq);

        if (r == DSM_ECONFLICT)
                return fail(x, -EAGAIN, "commit lost a race with a concurrent commit to the same file");
        if (r < 0)
                return fail(x, r, "commit failed: %s", strerror(-r));
        return 0;
}

/* ---- names --------------------------------------------------------------------------- */

static int op_lookup(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
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
                        return fail(x, r, "finding the parent: %s", ss_db_errmsg(x->ct->db));
        } else {
                r = lookup(x, q->parent, q->name, q->namelen, &d);
                if (r < 0)
                        return r;
                ino = d.ino;
        }
        return answer_inode(x, ino, NULL, a);
}

static int op_getattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_sess *s;
        int r = sess_get(x, q->session, q->ino, &s);

        if (r < 0)
                return r;
        return answer_inode(x, q->ino, s, a);
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
                return fail(x, r, "inode numbers of this container are exhausted");
        in->uid = q->cred.uid;
        in->gid = (pin->mode & S_ISGID) ? pin->gid : q->cred.gid;
        if (isdir && (pin->mode & S_ISGID))
                in->mode |= S_ISGID;
        in->nlink = isdir ? 2 : 1;
        in->atime = in->mtime = in->ctime = now;
        if (isdir)
                in->size = PAGE;
        memset(&d, 0, sizeof(d));
        d.id = ss_mut_alloc_dirent(x->ct, m);
        d.parent = pin->ino;
        d.ino = in->ino;
        d.type = dtype(in->mode);
        d.namelen = (uint32_t)namelen;
        memcpy(d.name, name, namelen);
        pin->mtime = pin->ctime = now;
        if (isdir)
                pin->nlink++;
        ss_cs_put_inode(&m->cs, in, SS_CS_VSEQ | SS_CS_GSEQ);
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
                return fail(x, -EEXIST, "'%.*s' exists", (int)q->namelen, (const char *)q->name);
        if (r != -ENOENT)
                return fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        if (pin->nlink == 0)
                return fail(x, -ENOENT, "parent directory was removed");
        if (isdir && pin->nlink >= SS_LINK_MAX)
                return fail(x, -EMLINK, "parent has %u links", pin->nlink);
        r = space_ok(x, 0);
        if (r < 0)
                return r;
        ss_mut_init(x->ct, m, NULL);
        r = add_node(x, q, m, pin, q->name, q->namelen, in, now_time());
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

static int op_mkdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_mut m;
        int r;

        in.mode = S_IFDIR | perm_bits(q);
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        return answer_inode(x, in.ino, NULL, a);
}

static int op_mknod(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_mut m;
        uint32_t type = q->mode & S_IFMT;
        int r;

        if (type == 0)
                type = S_IFREG;
        if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
                return fail(x, -EINVAL, "mknod of type %o", type);
        in.mode = type | perm_bits(q);
        if (type == S_IFCHR || type == S_IFBLK)
                in.rdev = q->rdev;
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        return answer_inode(x, in.ino, NULL, a);
}

static int op_symlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in = { 0 }, pin;
        struct ss_mut m;
        int r;

        if (q->datalen == 0)
                return fail(x, -ENOENT, "empty symlink target");
        if (q->datalen > SS_SYMLINK_MAX)
                return fail(x, -ENAMETOOLONG, "symlink target of %zu bytes (at most %u)", q->datalen,
                            SS_SYMLINK_MAX);
        if (memchr(q->data, 0, q->datalen))
                return fail(x, -EINVAL, "symlink target contains NUL");
        in.mode = S_IFLNK | 0777;
        in.size = q->datalen;
        in.targetlen = (uint32_t)q->datalen;
        memcpy(in.target, q->data, q->datalen);
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        return answer_inode(x, in.ino, NULL, a);
}

static int op_readlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        uint8_t *buf;
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        if (!S_ISLNK(in.mode))
                return fail(x, -EINVAL, "not a symlink");
        buf = xalloc(x, in.targetlen);
        if (!buf)
                return fail(x, -ENOMEM, "out of memory");
        memcpy(buf, in.target, in.targetlen);
        a->data = buf;
        a->datalen = in.targetlen;
        return 0;
}

/* Open a write session on a regular file (after CREATE/OPEN decided to). */
static int open_session(struct ss_opctx *x, const struct lp_fs_req *q, struct ss_inode *in, struct ss_sess **ret)
{
        struct ss_sess *s;
        int r = ss_sess_new(x->sess, x->ct, in->ino, x->client, &s);

        if (r == -ENFILE)
                return fail(x, r, "%u write sessions open (the limit)", x->sess->max);
        if (r < 0)
                return fail(x, r, "cannot begin a write session: %s", strerror(-r));
        if (q->flags & O_TRUNC) {
                r = sess_truncate(x, s, in, 0, now_time());
                if (r < 0)
                        return r;
                sess_view(s, in);
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
        int r = get_inode(x, ino, &in);

        if (r < 0)
                return r;
        if (S_ISDIR(in.mode) && (writable(q->flags) || (q->flags & O_TRUNC)))
                return fail(x, -EISDIR, "cannot open a directory for writing");
        a->version = in.version;
        if (S_ISREG(in.mode) && writable(q->flags)) {
                r = open_session(x, q, &in, &s);
                if (r < 0)
                        return r;
                a->session = s->id;
        }
        r = to_attr(x, &in, s, &a->attr);
        if (r < 0)
                return r;
        a->has_attr = true;
        return 0;
}

static int op_open(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        return do_open(x, q, q->ino, a);
}

static int op_create(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
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
                        return fail(x, -EEXIST, "'%.*s' exists", (int)q->namelen, (const char *)q->name);
                if (d.type == DT_DIR)
                        return fail(x, -EISDIR, "'%.*s' is a directory", (int)q->namelen, (const char *)q->name);
                return do_open(x, q, d.ino, a);
        }
        if (r != -ENOENT)
                return fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        in.mode = S_IFREG | perm_bits(q);
        r = make_node(x, q, &in, &m, &pin);
        if (r < 0)
                return r;
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        r = get_inode(x, in.ino, &in);
        if (r < 0)
                return r;
        a->version = in.version;
        if (writable(q->flags)) {
                r = open_session(x, q, &in, &s);
                if (r < 0)
                        return r;
                a->session = s->id;
        }
        r = to_attr(x, &in, s, &a->attr);
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

/* Rows that delete inode ino with its xattrs (its pages: the caller). */
static int delete_inode_rows(struct ss_opctx *x, struct ss_mut *m, uint64_t ino)
{
        struct xdel xd = { &m->cs, ino };
        int r = ss_db_xattr_each(x->ct->db, ino, xattr_del_cb, &xd);

        if (r < 0)
                return fail(x, r, "listing xattrs: %s", ss_db_errmsg(x->ct->db));
        ss_cs_del_inode(&m->cs, ino);
        m->d_inodes--;
        return 0;
}

static int op_unlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode pin, in;
        struct ss_dirent d;
        struct ss_mut m;
        struct ss_time now = now_time();
        int r = get_dir(x, q->parent, &pin);

        if (r < 0)
                return r;
        r = check_name(x, q->name, q->namelen, false);
        if (r < 0)
                return r;
        if (is_dot(q->name, q->namelen))
                return fail(x, -EISDIR, "cannot unlink '.' or '..'");
        r = lookup(x, q->parent, q->name, q->namelen, &d);
        if (r < 0)
                return r;
        r = get_inode(x, d.ino, &in);
        if (r < 0)
                return r;
        if (S_ISDIR(in.mode))
                return fail(x, -EISDIR, "is a directory");
        ss_mut_init(x->ct, &m, NULL);
        in.nlink = in.nlink ? in.nlink - 1 : 0;
        in.ctime = now;
        pin.mtime = pin.ctime = now;
        ss_cs_del_dirent(&m.cs, d.id);
        ss_cs_put_inode(&m.cs, &in, 0);
        ss_cs_put_inode(&m.cs, &pin, 0);
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        a->ino = in.ino;
        a->orphan = in.nlink == 0;
        return 0;
}

static int op_rmdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode pin, in;
        struct ss_dirent d;
        struct ss_mut m;
        struct ss_time now = now_time();
        int r = get_dir(x, q->parent, &pin);

        if (r < 0)
                return r;
        r = check_name(x, q->name, q->namelen, false);
        if (r < 0)
                return r;
        if (q->namelen == 1 && q->name[0] == '.')
                return fail(x, -EINVAL, "cannot remove '.'");
        if (q->namelen == 2 && q->name[0] == '.' && q->name[1] == '.')
                return fail(x, -ENOTEMPTY, "cannot remove '..'");
        r = lookup(x, q->parent, q->name, q->namelen, &d);
        if (r < 0)
                return r;
        r = get_inode(x, d.ino, &in);
        if (r < 0)
                return r;
        if (!S_ISDIR(in.mode))
                return fail(x, -ENOTDIR, "not a directory");
        if (in.ino == SS_ROOT_INO)
                return fail(x, -EBUSY, "the root directory");
        r = ss_db_dir_empty(x->ct->db, in.ino);
        if (r < 0)
                return fail(x, r, "listing: %s", ss_db_errmsg(x->ct->db));
        if (!r)
                return fail(x, -ENOTEMPTY, "directory not empty");
        ss_mut_init(x->ct, &m, NULL);
        ss_cs_del_dirent(&m.cs, d.id);
        r = delete_inode_rows(x, &m, in.ino);
        if (r < 0) {
                ss_mut_abort(x->ct, &m);
                return r;
        }
        pin.nlink = pin.nlink > 2 ? pin.nlink - 1 : 2;
        pin.mtime = pin.ctime = now;
        ss_cs_put_inode(&m.cs, &pin, 0);
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        a->ino = in.ino;
        return 0;
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
                        return fail(x, r, "walking up the tree: %s", ss_db_errmsg(x->ct->db));
                node = d.parent;
        }
        return fail(x, -EIO, "directory tree deeper than %u levels (corrupt?)", MAX_DEPTH);
}

static int op_rename(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode *P, *NP, *S, *D;
        struct ss_inode *buf;
        struct ss_dirent sd, dd;
        struct ss_mut m;
        struct ss_time now = now_time();
        bool have_dst, exch = q->flags & LP_FS_RENAME_EXCHANGE;
        bool whiteout = q->flags & LP_FS_RENAME_WHITEOUT;
        bool moved = q->parent != q->newparent;
        int r;

        if (q->flags & ~(LP_FS_RENAME_NOREPLACE | LP_FS_RENAME_EXCHANGE | LP_FS_RENAME_WHITEOUT))
                return fail(x, -EINVAL, "unknown rename flags %#x", q->flags);
        if ((q->flags & (LP_FS_RENAME_NOREPLACE | LP_FS_RENAME_WHITEOUT)) && exch)
                return fail(x, -EINVAL, "NOREPLACE or WHITEOUT with EXCHANGE");
        buf = xalloc(x, 5 * sizeof(*buf));
        if (!buf)
                return fail(x, -ENOMEM, "out of memory");
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
                return fail(x, -EINVAL, "cannot rename '.' or '..'");
        r = check_name(x, q->newname, q->newnamelen, true);
        if (r < 0)
                return r;
        r = lookup(x, q->parent, q->name, q->namelen, &sd);
        if (r < 0)
                return r;
        r = get_inode(x, sd.ino, S);
        if (r < 0)
                return r;
        r = ss_db_lookup(x->ct->db, q->newparent, q->newname, q->newnamelen, &dd);
        if (r < 0 && r != -ENOENT)
                return fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        have_dst = r >= 0;
        if (have_dst) {
                r = get_inode(x, dd.ino, D);
                if (r < 0)
                        return r;
        }
        x->ino = S->ino;
        if (exch) {
                if (!have_dst)
                        return fail(x, -ENOENT, "no entry '%.*s' to exchange with", (int)q->newnamelen,
                                    (const char *)q->newname);
                if (sd.id == dd.id)
                        return 0;
                if (moved && S_ISDIR(S->mode)) {
                        r = is_ancestor(x, S->ino, NP->ino);
                        if (r < 0)
                                return r;
                        if (r)
                                return fail(x, -EINVAL, "cannot move a directory into itself");
                }
                if (moved && S_ISDIR(D->mode)) {
                        r = is_ancestor(x, D->ino, P->ino);
                        if (r < 0)
                                return r;
                        if (r)
                                return fail(x, -EINVAL, "cannot move a directory into itself");
                }
                if (moved && S_ISDIR(S->mode) != S_ISDIR(D->mode)) {
                        if (S_ISDIR(S->mode)) {
                                if (NP->nlink >= SS_LINK_MAX)
                                        return fail(x, -EMLINK, "target directory has too many links");
                                P->nlink--;
                                NP->nlink++;
                        } else {
                                if (P->nlink >= SS_LINK_MAX)
                                        return fail(x, -EMLINK, "source directory has too many links");
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
                                return fail(x, -EEXIST, "'%.*s' exists", (int)q->newnamelen,
                                            (const char *)q->newname);
                        if (dd.ino == sd.ino)
                                return 0;       /* the same file: nothing to do (POSIX) */
                        if (S_ISDIR(S->mode)) {
                                if (!S_ISDIR(D->mode))
                                        return fail(x, -ENOTDIR, "cannot replace a non-directory with a directory");
                                r = ss_db_dir_empty(x->ct->db, D->ino);
                                if (r < 0)
                                        return fail(x, r, "listing: %s", ss_db_errmsg(x->ct->db));
                                if (!r)
                                        return fail(x, -ENOTEMPTY, "target directory not empty");
                        } else if (S_ISDIR(D->mode)) {
                                return fail(x, -EISDIR, "cannot replace a directory with a non-directory");
                        }
                }
                if (moved && S_ISDIR(S->mode)) {
                        r = is_ancestor(x, S->ino, NP->ino);
                        if (r < 0)
                                return r;
                        if (r)
                                return fail(x, -EINVAL, "cannot move a directory into itself");
                        if (NP->nlink >= SS_LINK_MAX && !(have_dst && S_ISDIR(D->mode)))
                                return fail(x, -EMLINK, "target directory has too many links");
                }
                if (whiteout) {
                        r = space_ok(x, 0);
                        if (r < 0)
                                return r;
                }
                ss_mut_init(x->ct, &m, NULL);
                if (have_dst) {
                        ss_cs_del_dirent(&m.cs, dd.id);
                        if (S_ISDIR(D->mode)) {
                                r = delete_inode_rows(x, &m, D->ino);
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
        return commit(x, &m, NULL);
}

static int op_link(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, pin;
        struct ss_dirent d;
        struct ss_mut m;
        struct ss_time now = now_time();
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        if (S_ISDIR(in.mode))
                return fail(x, -EPERM, "hard links to directories are not allowed");
        if (in.nlink == 0)
                return fail(x, -ENOENT, "the file has no name left");
        if (in.nlink >= SS_LINK_MAX)
                return fail(x, -EMLINK, "%u links", in.nlink);
        r = get_dir(x, q->newparent, &pin);
        if (r < 0)
                return r;
        r = check_name(x, q->newname, q->newnamelen, true);
        if (r < 0)
                return r;
        r = ss_db_lookup(x->ct->db, q->newparent, q->newname, q->newnamelen, &d);
        if (r >= 0)
                return fail(x, -EEXIST, "'%.*s' exists", (int)q->newnamelen, (const char *)q->newname);
        if (r != -ENOENT)
                return fail(x, r, "lookup: %s", ss_db_errmsg(x->ct->db));
        r = space_ok(x, 0);
        if (r < 0)
                return r;
        ss_mut_init(x->ct, &m, NULL);
        memset(&d, 0, sizeof(d));
        d.id = ss_mut_alloc_dirent(x->ct, &m);
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
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        return answer_inode(x, in.ino, NULL, a);
}

/* ---- readdir ------------------------------------------------------------------------ */

struct rd_ctx {
        struct ss_opctx *x;
        struct lp_fs_dirent *e;
        size_t n;
        uint8_t *names;
        size_t namepos;
        uint64_t last_id;
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
        e->next = d->id + 2;
        c->last_id = d->id;
        return 0;
}

static int op_readdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
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
        c.e = xalloc(x, max * sizeof(*c.e));
        c.names = xalloc(x, max * SS_NAME_MAX);
        if (!c.e || !c.names)
                return fail(x, -ENOMEM, "out of memory");
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
                        return fail(x, r, "finding the parent: %s", ss_db_errmsg(x->ct->db));
                c.e[c.n++] = (struct lp_fs_dirent){ .ino = parent, .next = 2, .type = DT_DIR,
                                                    .name = (const uint8_t *)"..", .namelen = 2 };
        }
        after = q->offset >= 2 ? q->offset - 2 : 0;
        c.last_id = after;
        if (c.n < max) {
                r = ss_db_readdir(x->ct->db, dir.ino, after, (unsigned)(max - c.n), rd_cb, &c);
                if (r < 0)
                        return fail(x, r, "reading the directory: %s", ss_db_errmsg(x->ct->db));
        }
        r = ss_db_readdir_more(x->ct->db, dir.ino, c.last_id);
        if (r < 0)
                return fail(x, r, "reading the directory: %s", ss_db_errmsg(x->ct->db));
        /* Not at the end while '..' is still to come. */
        a->eof = !r && !(q->offset <= 1 && c.n < (q->offset == 0 ? 2u : 1u));
        if (q->flags & 1) {
                for (size_t i = 0; i < c.n; i++) {
                        struct ss_inode in;

                        if (ss_db_inode_get(x->ct->db, c.e[i].ino, &in) < 0)
                                continue;
                        r = to_attr(x, &in, NULL, &c.e[i].attr);
                        if (r < 0)
                                return r;
                        c.e[i].has_attr = true;
                }
        }
        a->entries = c.e;
        a->nentries = c.n;
        return 0;
}

/* ---- setattr ------------------------------------------------------------------------ */

static int op_setattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, view;
        struct ss_sess *s;
        struct ss_mut m;
        struct ss_time now = now_time();
        uint32_t v = q->valid;
        bool meta = false, sized = false;
        bool set_at = v & (LP_FS_SET_ATIME | LP_FS_SET_ATIME_NOW);
        bool set_mt = v & (LP_FS_SET_MTIME | LP_FS_SET_MTIME_NOW);
        unsigned flags = 0;
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        if (v & LP_FS_SET_SIZE) {
                if (S_ISDIR(in.mode))
                        return fail(x, -EISDIR, "cannot set the size of a directory");
                if (!S_ISREG(in.mode))
                        return fail(x, -EINVAL, "cannot set the size of a non-regular file");
                if (q->size > SS_MAX_FILE_SIZE)
                        return fail(x, -EFBIG, "size %llu too large", (unsigned long long)q->size);
        }
        if (((v & LP_FS_SET_ATIME) && !(v & LP_FS_SET_ATIME_NOW) && check_time(x, &q->atime) < 0) ||
            ((v & LP_FS_SET_MTIME) && !(v & LP_FS_SET_MTIME_NOW) && check_time(x, &q->mtime) < 0))
                return -EINVAL;
        if (v & LP_FS_SET_MODE) {
                in.mode = (in.mode & S_IFMT) | (q->mode & 07777);
                meta = true;
        }
        if (v & LP_FS_SET_UID) {
                in.uid = q->uid;
                meta = true;
        }
        if (v & LP_FS_SET_GID) {
                in.gid = q->gid;
                meta = true;
        }
        if (set_at) {
                in.atime = (v & LP_FS_SET_ATIME_NOW) ? now : (struct ss_time){ q->atime.sec, q->atime.nsec };
                meta = true;
        }
        if (set_mt) {
                in.mtime = (v & LP_FS_SET_MTIME_NOW) ? now : (struct ss_time){ q->mtime.sec, q->mtime.nsec };
                meta = true;
        }
        if (v & LP_FS_SET_CTIME)
                meta = true;
        if ((v & LP_FS_SET_SIZE) && s) {
                view = in;
                sess_view(s, &view);
                r = sess_truncate(x, s, &view, q->size, now);
                if (r < 0)
                        return r;
        } else if (v & LP_FS_SET_SIZE) {
                sized = true;
        }
        if (!meta && !sized)
                return answer_inode(x, q->ino, s, a);   /* nothing, or the size in the session */
        in.ctime = now;
        ss_mut_init(x->ct, &m, NULL);
        if (sized) {
                struct dsm_txn *t;

                if (q->size != in.size) {
                        r = ss_mut_txn(x->ct, &m, &t);
                        if (r >= 0)
                                r = data_truncate(t, in.ino, in.size, q->size);
                        if (r < 0) {
                                ss_mut_abort(x->ct, &m);
                                return fail(x, r == DSM_ECONFLICT ? -EAGAIN : r, "truncate: %s", strerror(-r));
                        }
                        flags |= SS_CS_VSEQ;
                        in.size = q->size;
                }
                if (!(v & (LP_FS_SET_MTIME | LP_FS_SET_MTIME_NOW)))
                        in.mtime = now;
        }
        ss_cs_put_inode(&m.cs, &in, flags);
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        if (s) {
                /* The times given are pending in the session too, so that
                 * its COMMIT does not put older ones back (a truncation in
                 * it set the pending mtime to now: a given one wins). */
                if (set_at) {
                        s->has_atime = true;
                        s->atime = in.atime;
                }
                if (set_mt) {
                        s->has_mtime = true;
                        s->mtime = in.mtime;
                }
                s->has_ctime = true;
                s->ctime = now;
        }
        return answer_inode(x, q->ino, s, a);
}

/* ---- xattrs -------------------------------------------------------------------------- */

static int check_xname(struct ss_opctx *x, const struct lp_fs_req *q)
{
        if (q->namelen == 0 || q->namelen > SS_XATTR_NAME_MAX)
                return fail(x, -ERANGE, "xattr name of %zu bytes", q->namelen);
        if (memchr(q->name, 0, q->namelen))
                return fail(x, -EINVAL, "xattr name contains NUL");
        return 0;
}

static int op_getxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        uint8_t *buf;
        size_t len;
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = check_xname(x, q);
        if (r < 0)
                return r;
        buf = xalloc(x, SS_XATTR_VALUE_MAX);
        if (!buf)
                return fail(x, -ENOMEM, "out of memory");
        r = ss_db_xattr_get(x->ct->db, q->ino, q->name, q->namelen, buf, SS_XATTR_VALUE_MAX, &len);
        if (r == -ENOENT)
                return fail(x, -ENODATA, "no xattr '%.*s'", (int)q->namelen, (const char *)q->name);
        if (r < 0)
                return fail(x, r, "reading xattr: %s", ss_db_errmsg(x->ct->db));
        if (q->length == 0) {
                a->value = len;
                return 0;
        }
        if (q->length < len)
                return fail(x, -ERANGE, "value of %zu bytes, buffer of %llu", len, (unsigned long long)q->length);
        a->data = buf;
        a->datalen = len;
        return 0;
}

struct xsum {
        const uint8_t *skip;
        size_t skiplen;
        uint64_t total, names;
        bool found;
};

static int xsum_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xsum *s = ctx;

        (void)value;
        if (namelen == s->skiplen && !memcmp(name, s->skip, namelen)) {
                s->found = true;
                return 0;
        }
        s->total += namelen + vlen;
        s->names += namelen + 1;
        return 0;
}

static int op_setxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct xsum sum;
        struct ss_mut m;
        int r = get_inode(x, q->ino, &in);

        (void)a;
        if (r < 0)
                return r;
        r = check_xname(x, q);
        if (r < 0)
                return r;
        if (q->flags & ~(LP_FS_XATTR_CREATE | LP_FS_XATTR_REPLACE))
                return fail(x, -EINVAL, "unknown setxattr flags %#x", q->flags);
        if (q->datalen > SS_XATTR_VALUE_MAX)
                return fail(x, -E2BIG, "xattr value of %zu bytes (at most %u)", q->datalen, SS_XATTR_VALUE_MAX);
        sum = (struct xsum){ .skip = q->name, .skiplen = q->namelen };
        r = ss_db_xattr_each(x->ct->db, q->ino, xsum_cb, &sum);
        if (r < 0)
                return fail(x, r, "listing xattrs: %s", ss_db_errmsg(x->ct->db));
        if ((q->flags & LP_FS_XATTR_CREATE) && sum.found)
                return fail(x, -EEXIST, "xattr '%.*s' exists", (int)q->namelen, (const char *)q->name);
        if ((q->flags & LP_FS_XATTR_REPLACE) && !sum.found)
                return fail(x, -ENODATA, "no xattr '%.*s'", (int)q->namelen, (const char *)q->name);
        if (sum.total + q->namelen + q->datalen > SS_XATTR_TOTAL_MAX ||
            sum.names + q->namelen + 1 > SS_XATTR_LIST_MAX)
                return fail(x, -ENOSPC, "the inode's xattrs would exceed %u bytes (names %u)",
                            SS_XATTR_TOTAL_MAX, SS_XATTR_LIST_MAX);
        r = space_ok(x, q->datalen);
        if (r < 0)
                return r;
        ss_mut_init(x->ct, &m, NULL);
        ss_cs_put_xattr(&m.cs, q->ino, q->name, q->namelen, q->data, q->datalen);
        in.ctime = now_time();
        ss_cs_put_inode(&m.cs, &in, 0);
        return commit(x, &m, NULL);
}

struct xlist {
        uint8_t *buf;
        size_t len;
};

static int xlist_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xlist *l = ctx;

        (void)value;
        (void)vlen;
        if (l->len + namelen + 1 > SS_XATTR_LIST_MAX)
                return -E2BIG;
        memcpy(l->buf + l->len, name, namelen);
        l->buf[l->len + namelen] = 0;
        l->len += namelen + 1;
        return 0;
}

static int op_listxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct xlist l = { 0 };
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        l.buf = xalloc(x, SS_XATTR_LIST_MAX);
        if (!l.buf)
                return fail(x, -ENOMEM, "out of memory");
        r = ss_db_xattr_each(x->ct->db, q->ino, xlist_cb, &l);
        if (r < 0)
                return fail(x, r == -E2BIG ? -E2BIG : r, "listing xattrs");
        if (q->length == 0) {
                a->value = l.len;
                return 0;
        }
        if (q->length < l.len)
                return fail(x, -ERANGE, "list of %zu bytes, buffer of %llu", l.len, (unsigned long long)q->length);
        a->data = l.buf;
        a->datalen = l.len;
        return 0;
}

static int op_removexattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_mut m;
        size_t len;
        int r = get_inode(x, q->ino, &in);

        (void)a;
        if (r < 0)
                return r;
        r = check_xname(x, q);
        if (r < 0)
                return r;
        r = ss_db_xattr_get(x->ct->db, q->ino, q->name, q->namelen, NULL, 0, &len);
        if (r == -ENOENT)
                return fail(x, -ENODATA, "no xattr '%.*s'", (int)q->namelen, (const char *)q->name);
        if (r < 0)
                return fail(x, r, "reading xattr: %s", ss_db_errmsg(x->ct->db));
        ss_mut_init(x->ct, &m, NULL);
        ss_cs_del_xattr(&m.cs, q->ino, q->name, q->namelen);
        in.ctime = now_time();
        ss_cs_put_inode(&m.cs, &in, 0);
        return commit(x, &m, NULL);
}

/* ---- statfs ---------------------------------------------------------------------------- */

static int op_statfs(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct statvfs v;
        uint64_t ffree;

        (void)q;
        if (statvfs(x->data_dir, &v) < 0)
                return fail(x, -errno, "statvfs %s: %s", x->data_dir, strerror(errno));
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

/* ---- data ----------------------------------------------------------------------------- */

static int regular(struct ss_opctx *x, const struct ss_inode *in)
{
        if (S_ISDIR(in->mode))
                return fail(x, -EISDIR, "is a directory");
        if (!S_ISREG(in->mode))
                return fail(x, -EINVAL, "not a regular file");
        return 0;
}

static int time_before_eq(struct ss_time a, struct ss_time b)
{
        return a.sec < b.sec || (a.sec == b.sec && a.nsec <= b.nsec);
}

/*
 * A read updates the access time the way Linux's default (relatime) does:
 * when it is not later than the modification or change time, or is a day
 * old.  So a file read over and over costs one update, not one per read.
 * Inside a write session the new time is pending in the session.
 */
static int touch_atime(struct ss_opctx *x, struct ss_inode *in, struct ss_sess *s)
{
        struct ss_time now = now_time();
        struct ss_mut m;

        if (!time_before_eq(in->atime, in->mtime) && !time_before_eq(in->atime, in->ctime) &&
            now.sec - in->atime.sec < 24 * 3600)
                return 0;
        if (s) {
                s->has_atime = true;
                s->atime = now;
                return 0;
        }
        in->atime = now;
        ss_mut_init(x->ct, &m, NULL);
        ss_cs_put_inode(&m.cs, in, 0);
        return commit(x, &m, NULL);
}

static int op_read(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s;
        uint8_t *buf, page[PAGE];
        uint64_t n, done = 0;
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        r = regular(x, &in);
        if (r < 0)
                return r;
        sess_view(s, &in);
        if (q->offset >= in.size || q->length == 0) {
                a->data = (const uint8_t *)"";
                a->datalen = 0;
                return 0;
        }
        n = in.size - q->offset;
        if (n > q->length)
                n = q->length;
        if (n > LP_FS_DATA_MAX)
                n = LP_FS_DATA_MAX;
        buf = xalloc(x, n);
        if (!buf)
                return fail(x, -ENOMEM, "out of memory");
        while (done < n) {
                uint64_t off = q->offset + done;
                uint32_t po = (uint32_t)(off & (PAGE - 1));
                uint64_t k = PAGE - po < n - done ? PAGE - po : n - done;

                if (!s && po == 0 && n - done >= PAGE) {
                        /* Whole pages of the committed file: straight into
                         * the answer, one read per run in the log. */
                        uint64_t np = (n - done) >> PAGE_SHIFT;

                        r = dsm_read_pages(x->ct->store, q->ino, off >> PAGE_SHIFT, np, buf + done);
                        if (r == DSM_ECORRUPT)
                                return fail(x, -EIO, "pages %llu..%llu include damaged ones in the log",
                                            (unsigned long long)(off >> PAGE_SHIFT),
                                            (unsigned long long)((off >> PAGE_SHIFT) + np - 1));
                        if (r < 0)
                                return fail(x, r, "reading pages at %llu: %s",
                                            (unsigned long long)(off >> PAGE_SHIFT), strerror(-r));
                        done += np << PAGE_SHIFT;
                        continue;
                }
                r = read_page(x, s, q->ino, off >> PAGE_SHIFT, page);
                if (r < 0) {
                        if (s)
                                return sess_failed(x, s, r, "read");
                        if (r == DSM_ECORRUPT)
                                return fail(x, -EIO, "page %llu is damaged in the log",
                                            (unsigned long long)(off >> PAGE_SHIFT));
                        return fail(x, r, "reading page %llu: %s", (unsigned long long)(off >> PAGE_SHIFT),
                                    strerror(-r));
                }
                memcpy(buf + done, page + po, k);
                done += k;
        }
        a->data = buf;
        a->datalen = n;
        return touch_atime(x, &in, s);
}

static int need_session(struct ss_opctx *x, const struct lp_fs_req *q, uint64_t id, uint64_t ino,
                        struct ss_sess **ret)
{
        int r;

        (void)q;
        if (!id)
                return fail(x, -EBADF, "no write session given");
        r = sess_get(x, id, ino, ret);
        return r;
}

/* The session's inode (committed row) or -ESTALE if it went away. */
static int sess_inode(struct ss_opctx *x, struct ss_sess *s, struct ss_inode *in)
{
        int r = ss_db_inode_get(x->ct->db, s->ino, in);

        if (r == -ENOENT) {
                ss_sess_end(x->sess, s);
                return fail(x, -ESTALE, "the session's file was removed");
        }
        if (r < 0)
                return fail(x, r, "reading the inode: %s", ss_db_errmsg(x->ct->db));
        return 0;
}

/* How many of pages [first, end) of ino hold data as t sees them: one
 * lookup per data page and per run of holes, never a walk over the whole
 * file. */
static int range_pages(struct dsm_txn *t, uint64_t ino, uint64_t first, uint64_t end, uint64_t *ret)
{
        uint64_t n = 0, p = first, d;

        while (p < end) {
                int r = dsm_txn_seek(t, ino, p, DSM_SEEK_DATA, &d);

                if (r == -ENXIO)
                        break;
                if (r < 0)
                        return r;
                if (d >= end)
                        break;
                if (d == p)
                        n++;
                p = d == p ? p + 1 : d;
        }
        *ret = n;
        return 0;
}

static int op_write(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s;
        struct ss_time now = now_time();
        int r = need_session(x, q, q->session, q->ino, &s);

        if (r < 0)
                return r;
        r = sess_inode(x, s, &in);
        if (r < 0)
                return r;
        sess_view(s, &in);
        if (q->offset > SS_MAX_FILE_SIZE || q->datalen > SS_MAX_FILE_SIZE - q->offset)
                return fail(x, -EFBIG, "write beyond the largest file size");
        if (q->datalen) {
                uint64_t first = q->offset >> PAGE_SHIFT, end = pages_of(q->offset + q->datalen);
                uint64_t had = 0;

                r = space_ok(x, q->datalen);
                if (r < 0)
                        return r;
                /* Every page written holds data afterwards: the session's
                 * count grows by the holes among them. */
                if (s->pages_valid) {
                        r = range_pages(s->txn, s->ino, first, end, &had);
                        if (r < 0)
                                return sess_failed(x, s, r, "write");
                }
                r = data_write(s->txn, s->ino, q->offset, q->data, q->datalen);
                if (r < 0)
                        return sess_failed(x, s, r, "write");
                s->pages += (end - first) - had;
                s->data = true;
                if (q->offset + q->datalen > in.size) {
                        s->has_size = true;
                        s->size = q->offset + q->datalen;
                }
                s->has_mtime = s->has_ctime = true;
                s->mtime = s->ctime = now;
        }
        a->value = q->datalen;
        return answer_inode(x, q->ino, s, a);
}

static int op_commit(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, nin;
        struct ss_sess *s;
        struct ss_mut m;
        bool changes;
        int r = need_session(x, q, q->session, q->ino, &s);

        if (r < 0)
                return r;
        r = sess_inode(x, s, &in);
        if (r < 0)
                return r;
        changes = s->data || s->has_size || s->has_atime || s->has_mtime || s->has_ctime;
        if (changes) {
                unsigned flags = 0;
                uint64_t id = s->id;

                nin = in;
                sess_view(s, &nin);
                if (s->data || nin.size != in.size)
                        flags |= SS_CS_VSEQ;
                ss_mut_init(x->ct, &m, s->txn);
                s->txn = NULL;          /* consumed by the commit, whatever happens */
                ss_cs_put_inode(&m.cs, &nin, flags);
                r = ss_mut_commit(x->ct, &m, NULL);
                if (r < 0) {
                        ss_sess_end(x->sess, s);
                        if (r == DSM_ECONFLICT)
                                return fail(x, -EAGAIN, "session %016llx lost a race with another commit to "
                                            "this file; its staged data was discarded", (unsigned long long)id);
                        return fail(x, r, "session %016llx: commit failed: %s; session ended",
                                    (unsigned long long)id, strerror(-r));
                }
                ss_sess_reset(s);
        } else {
                /* Nothing staged: a fresh snapshot costs nothing. */
                dsm_txn_abort(s->txn);
                s->txn = NULL;
        }
        if (q->flags & (LP_FS_COMMIT_SYNC | LP_FS_COMMIT_DATASYNC))
                x->sync = true;
        if (q->flags & LP_FS_COMMIT_END) {
                ss_sess_end(x->sess, s);
                s = NULL;
        } else {
                r = dsm_txn_begin(x->ct->store, &s->txn);
                if (r < 0) {
                        ss_sess_end(x->sess, s);
                        return fail(x, r, "cannot continue the session: %s", strerror(-r));
                }
        }
        return answer_inode(x, q->ino, s, a);
}

static int op_abort(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_sess *s = ss_sess_find(x->sess, q->session);

        (void)a;
        if (s && s->ct == x->ct && s->ino == q->ino)
                ss_sess_end(x->sess, s);
        return 0;
}

static int op_fallocate(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, view;
        struct ss_sess *s;
        struct ss_mut m;
        struct dsm_txn *t;
        struct ss_time now = now_time();
        uint32_t mode = q->flags;
        uint64_t end, newsize;
        bool data = false;
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        if (S_ISDIR(in.mode))
                return fail(x, -EISDIR, "is a directory");
        if (!S_ISREG(in.mode))
                return fail(x, -ENODEV, "not a regular file");
        if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE && mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
            mode != FALLOC_FL_ZERO_RANGE && mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
                return fail(x, -EOPNOTSUPP, "fallocate mode %#x not supported", mode);
        if (q->length == 0)
                return fail(x, -EINVAL, "zero length");
        if (q->offset > SS_MAX_FILE_SIZE || q->length > SS_MAX_FILE_SIZE - q->offset)
                return fail(x, -EFBIG, "range beyond the largest file size");
        view = in;
        sess_view(s, &view);
        end = q->offset + q->length;
        newsize = view.size;
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > view.size)
                newsize = end;
        if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
                uint64_t need = q->length;

                if (need > SS_MAX_FILE_SIZE / 2)
                        need = SS_MAX_FILE_SIZE / 2;
                r = space_ok(x, need);
                if (r < 0)
                        return r;
        }
        if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
                data = q->offset < view.size;
        if (!data && newsize == view.size)
                return answer_inode(x, q->ino, s, a);   /* nothing to change */
        if (s) {
                if (data) {
                        r = data_zero(s->txn, s->ino, q->offset, end < view.size ? end : view.size);
                        if (r < 0)
                                return sess_failed(x, s, r, "fallocate");
                        s->data = true;
                        s->pages_valid = false;
                }
                if (newsize != view.size) {
                        s->has_size = true;
                        s->size = newsize;
                }
                if (data || newsize != view.size) {
                        s->has_mtime = s->has_ctime = true;
                        s->mtime = s->ctime = now;
                }
                return answer_inode(x, q->ino, s, a);
        }
        ss_mut_init(x->ct, &m, NULL);
        if (data) {
                r = ss_mut_txn(x->ct, &m, &t);
                if (r >= 0)
                        r = data_zero(t, in.ino, q->offset, end < in.size ? end : in.size);
                if (r < 0) {
                        ss_mut_abort(x->ct, &m);
                        return fail(x, r == DSM_ECONFLICT ? -EAGAIN : r, "fallocate: %s", strerror(-r));
                }
        }
        in.size = newsize;
        in.mtime = in.ctime = now;
        ss_cs_put_inode(&m.cs, &in, SS_CS_VSEQ);
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        return answer_inode(x, q->ino, NULL, a);
}

static int op_lseek(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s;
        uint64_t page, res;
        int r = get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        if (q->whence != SEEK_DATA && q->whence != SEEK_HOLE)
                return fail(x, -EINVAL, "whence %u (only SEEK_DATA and SEEK_HOLE)", q->whence);
        r = regular(x, &in);
        if (r < 0)
                return r;
        sess_view(s, &in);
        if (q->offset >= in.size)
                return fail(x, -ENXIO, "offset at or beyond the end of the file");
        if (s && (s->data || s->has_size))
                r = dsm_txn_seek(s->txn, in.ino, q->offset >> PAGE_SHIFT,
                                 q->whence == SEEK_DATA ? DSM_SEEK_DATA : DSM_SEEK_HOLE, &page);
        else
                r = dsm_seek(x->ct->store, in.ino, q->offset >> PAGE_SHIFT,
                             q->whence == SEEK_DATA ? DSM_SEEK_DATA : DSM_SEEK_HOLE, &page);
        if (r == -ENXIO)
                return fail(x, -ENXIO, "no data after the offset");
        if (r < 0)
                return fail(x, r, "seek: %s", strerror(-r));
        res = page << PAGE_SHIFT;
        if (res < q->offset)
                res = q->offset;
        if (q->whence == SEEK_DATA && res >= in.size)
                return fail(x, -ENXIO, "no data after the offset");
        if (res > in.size)
                res = in.size;
        a->value = res;
        return 0;
}

/* Read len bytes at off of the source (up to 2 pages) into buf; *hole
 * says every page read was a hole. */
struct src {
        struct ss_opctx *x;
        struct ss_sess *s;
        uint64_t ino;
        uint64_t cached[2];
        int have[2];                    /* -1 none, 0 hole, 1 data */
        uint8_t page[2][PAGE];
};

static int src_page(struct src *c, uint64_t page, const uint8_t **ret, bool *hole)
{
        int i = (int)(page & 1), r;

        if (c->have[i] < 0 || c->cached[i] != page) {
                r = read_page(c->x, c->s, c->ino, page, c->page[i]);
                if (r < 0)
                        return r;
                c->have[i] = r;
                c->cached[i] = page;
        }
        *ret = c->page[i];
        if (c->have[i])
                *hole = false;
        return 0;
}

static int src_read(struct src *c, uint64_t off, uint32_t len, uint8_t *buf, bool *hole)
{
        *hole = true;
        while (len) {
                uint32_t po = (uint32_t)(off & (PAGE - 1)), k = PAGE - po < len ? PAGE - po : len;
                const uint8_t *p;
                int r = src_page(c, off >> PAGE_SHIFT, &p, hole);

                if (r < 0)
                        return r;
                memcpy(buf, p + po, k);
                buf += k;
                off += k;
                len -= k;
        }
        return 0;
}

static int op_copy_range(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode sin, din, dview;
        struct ss_sess *ss, *ds;
        struct src *c;
        struct ss_mut m;
        struct dsm_txn *t;
        struct ss_time now = now_time();
        uint8_t tmp[PAGE];
        uint64_t n, done = 0, free_first = 0, free_n = 0;
        bool src_err = false;
        int r = get_inode(x, q->ino, &sin);

        if (r < 0)
                return r;
        r = get_inode(x, q->ino2, &din);
        if (r < 0)
                return r;
        r = sess_get(x, q->session, q->ino, &ss);
        if (r < 0)
                return r;
        r = sess_get(x, q->session2, q->ino2, &ds);
        if (r < 0)
                return r;
        x->ino = q->ino2;
        if (q->flags)
                return fail(x, -EINVAL, "copy_range flags %#x", q->flags);
        r = regular(x, &sin);
        if (r >= 0)
                r = regular(x, &din);
        if (r < 0)
                return r;
        sess_view(ss, &sin);
        dview = din;
        sess_view(ds, &dview);
        if (q->offset >= sin.size || q->length == 0) {
                a->value = 0;
                return answer_inode(x, q->ino2, ds, a);
        }
        n = sin.size - q->offset;
        if (n > q->length)
                n = q->length;
        if (n > SS_COPY_MAX)
                n = SS_COPY_MAX;
        if (q->offset2 > SS_MAX_FILE_SIZE || n > SS_MAX_FILE_SIZE - q->offset2)
                return fail(x, -EFBIG, "copy beyond the largest file size");
        if (q->ino == q->ino2 && q->offset < q->offset2 + n && q->offset2 < q->offset + n)
                return fail(x, -EINVAL, "overlapping ranges in one file");
        r = space_ok(x, n);
        if (r < 0)
                return r;
        c = xalloc(x, sizeof(*c));
        if (!c)
                return fail(x, -ENOMEM, "out of memory");
        c->x = x;
        c->s = ss;
        c->ino = q->ino;
        c->have[0] = c->have[1] = -1;
        ss_mut_init(x->ct, &m, ds ? ds->txn : NULL);
        r = ss_mut_txn(x->ct, &m, &t);
        while (r >= 0 && done < n) {
                uint64_t dpos = q->offset2 + done;
                uint32_t po = (uint32_t)(dpos & (PAGE - 1));
                uint32_t k = PAGE - po < n - done ? PAGE - po : (uint32_t)(n - done);
                bool hole;

                r = src_read(c, q->offset + done, k, tmp, &hole);
                if (r < 0) {
                        src_err = true;
                        break;
                }
                if (hole && po == 0 && k == PAGE) {
                        /* Keep holes holes: free, in runs. */
                        if (free_n && free_first + free_n == dpos >> PAGE_SHIFT) {
                                free_n++;
                        } else {
                                if (free_n)
                                        r = dsm_txn_free(t, q->ino2, free_first, free_n);
                                free_first = dpos >> PAGE_SHIFT;
                                free_n = 1;
                        }
                } else {
                        r = dsm_txn_write(t, q->ino2, dpos >> PAGE_SHIFT, po, tmp, k);
                }
                done += k;
        }
        if (r >= 0 && free_n)
                r = dsm_txn_free(t, q->ino2, free_first, free_n);
        if (r < 0) {
                /* A failed copy may have staged part of itself: the
                 * destination session ends (nothing half-done is ever
                 * committed), and so does a source session whose
                 * transaction the failure doomed. */
                if (ds)
                        m.txn = NULL;
                ss_mut_abort(x->ct, &m);
                if (src_err && ss && ss != ds)
                        ss_sess_end(x->sess, ss);
                if (ds)
                        return sess_failed(x, ds, r, "copy_range");
                if (r == DSM_ECONFLICT)
                        return fail(x, -EAGAIN, "copy_range lost a race with a concurrent commit%s",
                                    src_err && ss ? "; the source session was ended" : "");
                if (r == DSM_ECORRUPT)
                        return fail(x, -EIO, "copy_range: damaged page in the log");
                return fail(x, r, "copy_range: %s", strerror(-r));
        }
        a->value = n;
        if (ds) {
                m.txn = NULL;           /* the session keeps it */
                ss_mut_abort(x->ct, &m);
                ds->data = true;
                ds->pages_valid = false;
                if (q->offset2 + n > dview.size) {
                        ds->has_size = true;
                        ds->size = q->offset2 + n;
                }
                ds->has_mtime = ds->has_ctime = true;
                ds->mtime = ds->ctime = now;
                return answer_inode(x, q->ino2, ds, a);
        }
        if (q->offset2 + n > din.size)
                din.size = q->offset2 + n;
        din.mtime = din.ctime = now;
        ss_cs_put_inode(&m.cs, &din, SS_CS_VSEQ);
        r = commit(x, &m, NULL);
        if (r < 0)
                return r;
        return answer_inode(x, q->ino2, NULL, a);
}

static int op_forget_orphan(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
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
                return fail(x, r, "reading the inode: %s", ss_db_errmsg(x->ct->db));
        if (in.nlink > 0 || S_ISDIR(in.mode))
                return 0;               /* it has a name (again): not an orphan */
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
                r = delete_inode_rows(x, &m, q->ino);
        if (r < 0) {
                ss_mut_abort(x->ct, &m);
                return fail(x, r, "forget orphan: %s", strerror(-r));
        }
        return commit(x, &m, NULL);
}

static int op_sync(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        (void)q;
        (void)a;
        x->sync = true;
        return 0;
}

/* ---- dispatch -------------------------------------------------------------------------- */

typedef int (*op_fn)(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);

static op_fn op_table(uint32_t op)
{
        switch (op) {
        case LP_FS_LOOKUP: return op_lookup;
        case LP_FS_GETATTR: return op_getattr;
        case LP_FS_SETATTR: return op_setattr;
        case LP_FS_READDIR: return op_readdir;
        case LP_FS_MKDIR: return op_mkdir;
        case LP_FS_MKNOD: return op_mknod;
        case LP_FS_CREATE: return op_create;
        case LP_FS_UNLINK: return op_unlink;
        case LP_FS_RMDIR: return op_rmdir;
        case LP_FS_RENAME: return op_rename;
        case LP_FS_LINK: return op_link;
        case LP_FS_SYMLINK: return op_symlink;
        case LP_FS_READLINK: return op_readlink;
        case LP_FS_STATFS: return op_statfs;
        case LP_FS_GETXATTR: return op_getxattr;
        case LP_FS_SETXATTR: return op_setxattr;
        case LP_FS_LISTXATTR: return op_listxattr;
        case LP_FS_REMOVEXATTR: return op_removexattr;
        case LP_FS_OPEN: return op_open;
        case LP_FS_READ: return op_read;
        case LP_FS_WRITE: return op_write;
        case LP_FS_COMMIT: return op_commit;
        case LP_FS_ABORT: return op_abort;
        case LP_FS_FALLOCATE: return op_fallocate;
        case LP_FS_LSEEK: return op_lseek;
        case LP_FS_COPY_RANGE: return op_copy_range;
        case LP_FS_SYNC: return op_sync;
        case LP_FS_FORGET_ORPHAN: return op_forget_orphan;
        default: return NULL;
        }
}

bool ss_op_is_file_op(uint32_t op)
{
        return op_table(op) != NULL;
}

int ss_op_run(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        op_fn fn = op_table(q->op);
        int r;

        memset(a, 0, sizeof(*a));
        x->msg[0] = 0;
        x->sync = false;
        x->ino = q->ino;
        if (!fn)
                r = fail(x, -EOPNOTSUPP, "operation %u is not served by a storage site", q->op);
        else if (x->ct->err && q->op != LP_FS_ABORT)
                r = fail(x, x->ct->err, "the container is in an error state: %s (restart the storage "
                         "site to recover)", strerror(-x->ct->err));
        else
                r = fn(x, q, a);
        if (r < 0) {
                memset(a, 0, sizeof(*a));
                x->sync = false;
        }
        a->status = r;
        return r;
}
