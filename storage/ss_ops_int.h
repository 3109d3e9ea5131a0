/*
 * ss_ops_int.h -- internal to storage/: what the pieces of the storage
 * site's operations (ss_ops.h is their interface) share.  Only they
 * include it:
 *   ss_ops.c        the helpers every handler uses, and the dispatch;
 *   ss_ops_name.c   names and directories (and OPEN, CREATE);
 *   ss_ops_data.c   file data and write sessions (and SETATTR);
 *   ss_ops_xattr.c  extended attributes.
 *
 * Every mutation follows one pattern: read what it needs from SQLite (the
 * loop thread is the only writer, so nothing changes underneath), check
 * every precondition, build the new row images into an ss_mut's
 * changeset (and touch pages through its transaction), then
 * ss_mut_commit().  Nothing is changed before all checks passed, so an
 * error answer means nothing happened.
 */
#ifndef SS_OPS_INT_H
#define SS_OPS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_fs.h"
#include "ss_ct.h"
#include "ss_ops.h"
#include "ss_sess.h"

#define PAGE DSM_PAGE_SIZE
#define PAGE_SHIFT DSM_PAGE_SHIFT

/* ---- ss_ops.c ---- */

/* Helpers.  ss__fail: set x->msg, return r.  ss__xalloc: answer memory,
 * freed by ss_opctx_release() (NULL when out of memory or slots).
 * ss__sess_view: in as session s (may be NULL) sees it.  ss__to_attr:
 * attributes of in (already a session view if s), its vector copied into
 * vvbuf (SS_VV_MAX bytes living as long as the answer; NULL: x->vv, for
 * the answer's attr); ss__answer_inode: into a->attr.  ss__sess_get: session id of <ct, ino>, id 0 means none (*ret
 * NULL).  ss__commit: ss_mut_commit, errors mapped and explained. */
__attribute__((format(printf, 3, 4)))
int ss__fail(struct ss_opctx *x, int r, const char *fmt, ...);
void *ss__xalloc(struct ss_opctx *x, size_t n);
struct ss_time ss__now_time(void);
int ss__get_inode(struct ss_opctx *x, uint64_t ino, struct ss_inode *in);
int ss__space_ok(struct ss_opctx *x, uint64_t need);
void ss__sess_view(const struct ss_sess *s, struct ss_inode *in);
int ss__to_attr(struct ss_opctx *x, const struct ss_inode *in, struct ss_sess *s,
                struct lp_fs_attr *a, uint8_t *vvbuf);
int ss__answer_inode(struct ss_opctx *x, uint64_t ino, struct ss_sess *s, struct lp_fs_resp *a);
int ss__sess_get(struct ss_opctx *x, uint64_t id, uint64_t ino, struct ss_sess **ret);
int ss__commit(struct ss_opctx *x, struct ss_mut *m, uint64_t *ret_seq);
/* Pages [first, first + n) of ino were refused as damaged (DSM_ECORRUPT):
 * ask for a repair (ss_ops.h) and return the answer's status,
 * -EHOSTUNREACH or -EIO, with x->msg set. */
int ss__damaged(struct ss_opctx *x, uint64_t ino, uint64_t first, uint64_t n);

/* ---- ss_ops_name.c ---- */

int ss__op_lookup(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_getattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_mkdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_mknod(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_symlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_readlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_open(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_create(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_unlink(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_rmdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_rename(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_link(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_readdir(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_statfs(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_forget_orphan(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);

/* ---- ss_ops_data.c ---- */

/* Truncate inside a session (view: its view of the inode); ends the
 * session if its transaction fails. */
/* now NULL: no mtime/ctime stamp (LP_FS_CLIENT_TIMES). */
int ss__sess_truncate(struct ss_opctx *x, struct ss_sess *s, const struct ss_inode *view, uint64_t size,
                      const struct ss_time *now);
int ss__op_setattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_read(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_write(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_commit(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_abort(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_fallocate(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_lseek(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_copy_range(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_sync(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);

/* ---- ss_ops_xattr.c ---- */

int ss__op_getxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_setxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_listxattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_removexattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);

/* ---- ss_repl.c (replication: docs/replication.md) ---- */

int ss__op_changes(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_fetch(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);
int ss__op_install(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a);

#endif
