/*
 * ss_ops.c -- see ss_ops.h.  The helpers every handler uses (answers,
 * inodes, attributes, sessions, commit) and the dispatch of a request to
 * its handler; the handlers are in ss_ops_name.c, ss_ops_data.c and
 * ss_ops_xattr.c.  The pattern every mutation follows: ss_ops_int.h.
 */
#include "ss_ops_int.h"
#include "ss_pull.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "cm.h"

/* ---- helpers ----------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
int ss__fail(struct ss_opctx *x, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
        va_end(ap);
        return r;
}

void *ss__xalloc(struct ss_opctx *x, size_t n)
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

struct ss_time ss__now_time(void)
{
        struct timespec ts = cm_wall();

        return (struct ss_time){ ts.tv_sec, (uint32_t)ts.tv_nsec };
}

int ss__get_inode(struct ss_opctx *x, uint64_t ino, struct ss_inode *in)
{
        int r = ss_db_inode_get(x->ct->db, ino, in);

        x->ino = ino;
        if (r == -ENOENT)
                return ss__fail(x, r, "no such inode");
        if (r < 0)
                return ss__fail(x, r, "reading the inode: %s", ss_db_errmsg(x->ct->db));
        return 0;
}

int ss__space_ok(struct ss_opctx *x, uint64_t need)
{
        struct statvfs v;
        uint64_t avail;

        if (statvfs(x->data_dir, &v) < 0)
                return ss__fail(x, -errno, "statvfs %s: %s", x->data_dir, strerror(errno));
        avail = (uint64_t)v.f_bavail * v.f_frsize;
        if (avail < x->space_reserve || avail - x->space_reserve < need)
                return ss__fail(x, -ENOSPC, "data directory has %llu bytes free (reserve %llu)",
                                (unsigned long long)avail, (unsigned long long)x->space_reserve);
        return 0;
}

void ss__sess_view(const struct ss_sess *s, struct ss_inode *in)
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

/* Attributes of in (already a session view if s). */
int ss__to_attr(struct ss_opctx *x, const struct ss_inode *in, struct ss_sess *s,
                struct lp_fs_attr *a, uint8_t *vvbuf)
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
        if (in->vvlen) {
                /* The answer is encoded after the handler returns: the
                 * vector is copied where it lives as long as the answer. */
                if (!vvbuf)
                        vvbuf = x->vv;
                memcpy(vvbuf, in->vv, in->vvlen);
                a->vv = vvbuf;
                a->vvlen = in->vvlen;
        }
        if (S_ISDIR(in->mode)) {
                pages = 1;
        } else if (S_ISREG(in->mode)) {
                if (s && (s->data || s->has_size)) {
                        if (!s->pages_valid) {
                                int r = dsm_txn_count_pages(s->txn, in->ino, &s->pages);

                                if (r < 0)
                                        return ss__fail(x, r, "counting staged pages: %s", strerror(-r));
                                s->pages_valid = true;
                        }
                        pages = s->pages;
                } else {
                        int r = ss_ct_blocks(x->ct, in->ino, &pages);

                        if (r < 0)
                                return ss__fail(x, r, "counting data pages: %s", strerror(-r));
                }
        }
        a->blocks = pages * (PAGE / 512);
        return 0;
}

int ss__answer_inode(struct ss_opctx *x, uint64_t ino, struct ss_sess *s, struct lp_fs_resp *a)
{
        struct ss_inode in;
        int r = ss__get_inode(x, ino, &in);

        if (r < 0)
                return r;
        ss__sess_view(s, &in);
        r = ss__to_attr(x, &in, s, &a->attr, NULL);
        if (r < 0)
                return r;
        a->has_attr = true;
        a->version = in.version;
        return 0;
}

/* ---- sessions --------------------------------------------------------------------- */

/* Find session id for <ct, ino>; id 0 means none (ret NULL). */
int ss__sess_get(struct ss_opctx *x, uint64_t id, uint64_t ino, struct ss_sess **ret)
{
        struct ss_sess *s;

        *ret = NULL;
        if (!id)
                return 0;
        s = ss_sess_find(x->sess, id);
        x->ino = ino;
        if (!s)
                return ss__fail(x, -ESTALE, "session %016llx unknown (ended, or from before a restart)",
                                (unsigned long long)id);
        if (s->ct != x->ct || s->ino != ino)
                return ss__fail(x, -EINVAL, "session %016llx belongs to another file", (unsigned long long)id);
        s->last_used_us = cm_now_us();
        *ret = s;
        return 0;
}

/* ---- commit ----------------------------------------------------------------------- */

int ss__commit(struct ss_opctx *x, struct ss_mut *m, uint64_t *ret_seq)
{
        int r = ss_mut_commit(x->ct, m, ret_seq);

        if (r == DSM_ECONFLICT)
                return ss__fail(x, -EAGAIN, "commit lost a race with a concurrent commit to the same file");
        if (r < 0)
                return ss__fail(x, r, "commit failed: %s", strerror(-r));
        return 0;
}

int ss__damaged(struct ss_opctx *x, uint64_t ino, uint64_t first, uint64_t n)
{
        int r = ss_pull_repair(x->pull, x->ct->fg, ino, first, n);

        x->ino = ino;
        if (r >= 0 || r == -EBUSY)
                return ss__fail(x, -EHOSTUNREACH, "pages %llu..%llu are damaged in this site's log; %s",
                                (unsigned long long)first, (unsigned long long)(first + n - 1),
                                r >= 0 ? "the file is being repaired from another copy: ask again" :
                                "too many repairs are queued: ask again");
        return ss__fail(x, -EIO, "pages %llu..%llu are damaged in this site's log, and %s",
                        (unsigned long long)first, (unsigned long long)(first + n - 1),
                        r == -ENOENT ? "no other site holds a copy" :
                        "the last repair from another copy failed (see this site's log)");
}

/* ---- dispatch -------------------------------------------------------------------------- */

typedef int (*op_fn)(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);

static op_fn op_table(uint32_t op)
{
        switch (op) {
        case LP_FS_LOOKUP: return ss__op_lookup;
        case LP_FS_GETATTR: return ss__op_getattr;
        case LP_FS_SETATTR: return ss__op_setattr;
        case LP_FS_READDIR: return ss__op_readdir;
        case LP_FS_MKDIR: return ss__op_mkdir;
        case LP_FS_MKNOD: return ss__op_mknod;
        case LP_FS_CREATE: return ss__op_create;
        case LP_FS_UNLINK: return ss__op_unlink;
        case LP_FS_RMDIR: return ss__op_rmdir;
        case LP_FS_RENAME: return ss__op_rename;
        case LP_FS_LINK: return ss__op_link;
        case LP_FS_SYMLINK: return ss__op_symlink;
        case LP_FS_READLINK: return ss__op_readlink;
        case LP_FS_STATFS: return ss__op_statfs;
        case LP_FS_GETXATTR: return ss__op_getxattr;
        case LP_FS_SETXATTR: return ss__op_setxattr;
        case LP_FS_LISTXATTR: return ss__op_listxattr;
        case LP_FS_REMOVEXATTR: return ss__op_removexattr;
        case LP_FS_OPEN: return ss__op_open;
        case LP_FS_READ: return ss__op_read;
        case LP_FS_WRITE: return ss__op_write;
        case LP_FS_COMMIT: return ss__op_commit;
        case LP_FS_ABORT: return ss__op_abort;
        case LP_FS_FALLOCATE: return ss__op_fallocate;
        case LP_FS_LSEEK: return ss__op_lseek;
        case LP_FS_COPY_RANGE: return ss__op_copy_range;
        case LP_FS_SYNC: return ss__op_sync;
        case LP_FS_FORGET_ORPHAN: return ss__op_forget_orphan;
        case LP_FS_SS_CHANGES: return ss__op_changes;
        case LP_FS_SS_FETCH: return ss__op_fetch;
        case LP_FS_SS_INSTALL: return ss__op_install;
        default: return NULL;
        }
}

bool ss_op_is_file_op(uint32_t op)
{
        return op_table(op) != NULL;
}

bool ss_op_is_mutation(const struct lp_fs_req *q)
{
        switch (q->op) {
        case LP_FS_SETATTR:
        case LP_FS_MKDIR:
        case LP_FS_MKNOD:
        case LP_FS_CREATE:
        case LP_FS_UNLINK:
        case LP_FS_RMDIR:
        case LP_FS_RENAME:
        case LP_FS_LINK:
        case LP_FS_SYMLINK:
        case LP_FS_SETXATTR:
        case LP_FS_REMOVEXATTR:
        case LP_FS_WRITE:
        case LP_FS_COMMIT:
        case LP_FS_FALLOCATE:
        case LP_FS_COPY_RANGE:
                return true;
        case LP_FS_OPEN:
                return (q->flags & O_ACCMODE) != O_RDONLY || (q->flags & O_TRUNC);
        default:
                return false;
        }
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
                r = ss__fail(x, -EOPNOTSUPP, "operation %u is not served by a storage site", q->op);
        else if (x->ct->err && q->op != LP_FS_ABORT)
                r = ss__fail(x, x->ct->err, "the container is in an error state: %s (restart the storage "
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
