/*
 * ss_ops_data.c -- the storage site's operations on file data and write
 * sessions (ss_ops.h): SETATTR, READ, WRITE, COMMIT, ABORT, FALLOCATE,
 * LSEEK, COPY_RANGE, SYNC.
 */
#include "ss_ops_int.h"
#include "ss_place.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>

/* ---- helpers ----------------------------------------------------------------- */

static int check_time(struct ss_opctx *x, const struct lp_fs_time *t)
{
        if (t->nsec >= 1000000000u)
                return ss__fail(x, -EINVAL, "nanoseconds out of range");
        return 0;
}

static uint64_t pages_of(uint64_t size)
{
        return (size >> PAGE_SHIFT) + ((size & (PAGE - 1)) != 0);
}

/* A session's transaction failed: end the session, map the error. */
static int sess_failed(struct ss_opctx *x, struct ss_sess *s, int r, const char *what)
{
        uint64_t id = s->id;

        ss_sess_end(x->sess, s);
        if (r == DSM_ECONFLICT)
                return ss__fail(x, -EAGAIN, "session %016llx: %s lost a race with another commit to this file; "
                                "its staged data was discarded", (unsigned long long)id, what);
        if (r == DSM_ECORRUPT)
                return ss__fail(x, -EIO, "session %016llx: %s: damaged page in the log",
                                (unsigned long long)id, what);
        return ss__fail(x, r, "session %016llx: %s: %s; session ended", (unsigned long long)id, what,
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
int ss__sess_truncate(struct ss_opctx *x, struct ss_sess *s, const struct ss_inode *view, uint64_t size,
                      const struct ss_time *now)
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
        if (now) {
                s->has_mtime = s->has_ctime = true;
                s->mtime = s->ctime = *now;
        }
        return 0;
}

/* ---- setattr ------------------------------------------------------------------------ */

int ss__op_setattr(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, view;
        struct ss_sess *s;
        struct ss_mut m;
        struct ss_time now = ss__now_time(), ctime = now;
        uint32_t v = q->valid;
        bool meta = false, sized = false;
        bool set_at = v & (LP_FS_SET_ATIME | LP_FS_SET_ATIME_NOW);
        bool set_mt = v & (LP_FS_SET_MTIME | LP_FS_SET_MTIME_NOW);
        unsigned flags = 0;
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = ss__sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        if (v & LP_FS_SET_SIZE) {
                if (S_ISDIR(in.mode))
                        return ss__fail(x, -EISDIR, "cannot set the size of a directory");
                if (!S_ISREG(in.mode))
                        return ss__fail(x, -EINVAL, "cannot set the size of a non-regular file");
                if (q->size > SS_MAX_FILE_SIZE)
                        return ss__fail(x, -EFBIG, "size %llu too large", (unsigned long long)q->size);
        }
        /* ss_place.h [L4]: no update of a file whose data is not here. */
        if (!s && (r = ss_place_guard(x, &in, -EHOSTUNREACH, (v & LP_FS_SET_SIZE) ? "truncate" : "setattr")) < 0)
                return r;
        if (((v & LP_FS_SET_ATIME) && !(v & LP_FS_SET_ATIME_NOW) && check_time(x, &q->atime) < 0) ||
            ((v & LP_FS_SET_MTIME) && !(v & LP_FS_SET_MTIME_NOW) && check_time(x, &q->mtime) < 0) ||
            ((v & LP_FS_SET_CTIME) && check_time(x, &q->ctime) < 0))
                return -EINVAL;
        /* A client kernel with the writeback cache keeps the change time
         * it gave the file and sends it: keep that one, or its mount
         * would show another than every later reader. */
        if ((v & LP_FS_SET_CTIME) && (q->ctime.sec || q->ctime.nsec))
                ctime = (struct ss_time){ q->ctime.sec, q->ctime.nsec };
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
                ss__sess_view(s, &view);
                r = ss__sess_truncate(x, s, &view, q->size,
                                      (v & LP_FS_CLIENT_TIMES) ? NULL : &now);
                if (r < 0)
                        return r;
        } else if (v & LP_FS_SET_SIZE) {
                sized = true;
        }
        if (!meta && !sized)
                return ss__answer_inode(x, q->ino, s, a);   /* nothing, or the size in the session */
        in.ctime = ctime;
        ss_mut_init(x->ct, &m, NULL);
        if (sized) {
                struct dsm_txn *t;

                if (q->size != in.size) {
                        r = ss_mut_txn(x->ct, &m, &t);
                        if (r >= 0)
                                r = data_truncate(t, in.ino, in.size, q->size);
                        if (r < 0) {
                                ss_mut_abort(x->ct, &m);
                                return ss__fail(x, r == DSM_ECONFLICT ? -EAGAIN : r, "truncate: %s", strerror(-r));
                        }
                        in.size = q->size;
                }
                if (!(v & (LP_FS_SET_MTIME | LP_FS_SET_MTIME_NOW | LP_FS_CLIENT_TIMES)))
                        in.mtime = now;
        }
        ss_cs_put_inode(&m.cs, &in, flags);
        r = ss__commit(x, &m, NULL);
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
                s->ctime = ctime;
        }
        return ss__answer_inode(x, q->ino, s, a);
}

/* ---- data ----------------------------------------------------------------------------- */

static int regular(struct ss_opctx *x, const struct ss_inode *in)
{
        if (S_ISDIR(in->mode))
                return ss__fail(x, -EISDIR, "is a directory");
        if (!S_ISREG(in->mode))
                return ss__fail(x, -EINVAL, "not a regular file");
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
        struct ss_time now = ss__now_time();
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
        /* The access time a read sets is this copy's own: the vector (and
         * so the version the mounts keep their caches by) stays, and no
         * other copy pulls the row for it (docs/replication.md). */
        ss_cs_put_inode(&m.cs, in, SS_CS_KEEPVV);
        return ss__commit(x, &m, NULL);
}

int ss__op_read(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s;
        uint8_t *buf, page[PAGE];
        uint64_t n, done = 0;
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = ss__sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        r = regular(x, &in);
        if (r < 0)
                return r;
        if (!s && (r = ss_place_guard(x, &in, -EIO, "read")) < 0)
                return r;               /* never zeros: ss_place.h [L3] */
        ss__sess_view(s, &in);
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
        buf = ss__xalloc(x, n);
        if (!buf)
                return ss__fail(x, -ENOMEM, "out of memory");
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
                                return ss__damaged(x, q->ino, off >> PAGE_SHIFT, np);
                        if (r < 0)
                                return ss__fail(x, r, "reading pages at %llu: %s",
                                                (unsigned long long)(off >> PAGE_SHIFT), strerror(-r));
                        done += np << PAGE_SHIFT;
                        continue;
                }
                r = read_page(x, s, q->ino, off >> PAGE_SHIFT, page);
                if (r < 0) {
                        if (s)
                                return sess_failed(x, s, r, "read");
                        if (r == DSM_ECORRUPT)
                                return ss__damaged(x, q->ino, off >> PAGE_SHIFT, 1);
                        return ss__fail(x, r, "reading page %llu: %s", (unsigned long long)(off >> PAGE_SHIFT),
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
                return ss__fail(x, -EBADF, "no write session given");
        r = ss__sess_get(x, id, ino, ret);
        return r;
}

/* The session's inode (committed row) or -ESTALE if it went away. */
static int sess_inode(struct ss_opctx *x, struct ss_sess *s, struct ss_inode *in)
{
        int r = ss_db_inode_get(x->ct->db, s->ino, in);

        if (r == -ENOENT) {
                ss_sess_end(x->sess, s);
                return ss__fail(x, -ESTALE, "the session's file was removed");
        }
        if (r < 0)
                return ss__fail(x, r, "reading the inode: %s", ss_db_errmsg(x->ct->db));
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

int ss__op_write(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s;
        struct ss_time now = ss__now_time();
        int r = need_session(x, q, q->session, q->ino, &s);

        if (r < 0)
                return r;
        r = sess_inode(x, s, &in);
        if (r < 0)
                return r;
        ss__sess_view(s, &in);
        if (q->offset > SS_MAX_FILE_SIZE || q->datalen > SS_MAX_FILE_SIZE - q->offset)
                return ss__fail(x, -EFBIG, "write beyond the largest file size");
        if (q->datalen) {
                uint64_t first = q->offset >> PAGE_SHIFT, end = pages_of(q->offset + q->datalen);
                uint64_t had = 0;

                r = ss__space_ok(x, q->datalen);
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
                if (!(q->valid & LP_FS_CLIENT_TIMES)) {
                        s->has_mtime = s->has_ctime = true;
                        s->mtime = s->ctime = now;
                }
        }
        a->value = q->datalen;
        return ss__answer_inode(x, q->ino, s, a);
}

int ss__op_commit(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
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
                ss__sess_view(s, &nin);
                ss_mut_init(x->ct, &m, s->txn);
                s->txn = NULL;          /* consumed by the commit, whatever happens */
                ss_cs_put_inode(&m.cs, &nin, flags);
                r = ss_mut_commit(x->ct, &m, NULL);
                if (r < 0) {
                        ss_sess_end(x->sess, s);
                        if (r == DSM_ECONFLICT)
                                return ss__fail(x, -EAGAIN, "session %016llx lost a race with another commit to "
                                                "this file; its staged data was discarded", (unsigned long long)id);
                        return ss__fail(x, r, "session %016llx: commit failed: %s; session ended",
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
                        return ss__fail(x, r, "cannot continue the session: %s", strerror(-r));
                }
        }
        return ss__answer_inode(x, q->ino, s, a);
}

int ss__op_abort(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_sess *s = ss_sess_find(x->sess, q->session);

        (void)a;
        if (s && s->ct == x->ct && s->ino == q->ino)
                ss_sess_end(x->sess, s);
        return 0;
}

int ss__op_fallocate(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in, view;
        struct ss_sess *s;
        struct ss_mut m;
        struct dsm_txn *t;
        struct ss_time now = ss__now_time();
        uint32_t mode = q->flags;
        uint64_t end, newsize;
        bool data = false;
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = ss__sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        if (S_ISDIR(in.mode))
                return ss__fail(x, -EISDIR, "is a directory");
        if (!S_ISREG(in.mode))
                return ss__fail(x, -ENODEV, "not a regular file");
        if (!s && (r = ss_place_guard(x, &in, -EHOSTUNREACH, "fallocate")) < 0)
                return r;               /* ss_place.h [L3] */
        if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE && mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
            mode != FALLOC_FL_ZERO_RANGE && mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
                return ss__fail(x, -EOPNOTSUPP, "fallocate mode %#x not supported", mode);
        if (q->length == 0)
                return ss__fail(x, -EINVAL, "zero length");
        if (q->offset > SS_MAX_FILE_SIZE || q->length > SS_MAX_FILE_SIZE - q->offset)
                return ss__fail(x, -EFBIG, "range beyond the largest file size");
        view = in;
        ss__sess_view(s, &view);
        end = q->offset + q->length;
        newsize = view.size;
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > view.size)
                newsize = end;
        if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
                uint64_t need = q->length;

                if (need > SS_MAX_FILE_SIZE / 2)
                        need = SS_MAX_FILE_SIZE / 2;
                r = ss__space_ok(x, need);
                if (r < 0)
                        return r;
        }
        if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
                data = q->offset < view.size;
        if (!data && newsize == view.size)
                return ss__answer_inode(x, q->ino, s, a);   /* nothing to change */
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
                if ((data || newsize != view.size) && !(q->valid & LP_FS_CLIENT_TIMES)) {
                        s->has_mtime = s->has_ctime = true;
                        s->mtime = s->ctime = now;
                }
                return ss__answer_inode(x, q->ino, s, a);
        }
        ss_mut_init(x->ct, &m, NULL);
        if (data) {
                r = ss_mut_txn(x->ct, &m, &t);
                if (r >= 0)
                        r = data_zero(t, in.ino, q->offset, end < in.size ? end : in.size);
                if (r < 0) {
                        ss_mut_abort(x->ct, &m);
                        return ss__fail(x, r == DSM_ECONFLICT ? -EAGAIN : r, "fallocate: %s", strerror(-r));
                }
        }
        in.size = newsize;
        in.mtime = in.ctime = now;
        ss_cs_put_inode(&m.cs, &in, 0);
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        return ss__answer_inode(x, q->ino, NULL, a);
}

int ss__op_lseek(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode in;
        struct ss_sess *s;
        uint64_t page, res;
        int r = ss__get_inode(x, q->ino, &in);

        if (r < 0)
                return r;
        r = ss__sess_get(x, q->session, q->ino, &s);
        if (r < 0)
                return r;
        if (q->whence != SEEK_DATA && q->whence != SEEK_HOLE)
                return ss__fail(x, -EINVAL, "whence %u (only SEEK_DATA and SEEK_HOLE)", q->whence);
        r = regular(x, &in);
        if (r < 0)
                return r;
        if (!s && (r = ss_place_guard(x, &in, -EIO, "lseek")) < 0)
                return r;               /* its holes are not the file's: ss_place.h [L3] */
        ss__sess_view(s, &in);
        if (q->offset >= in.size)
                return ss__fail(x, -ENXIO, "offset at or beyond the end of the file");
        if (s && (s->data || s->has_size))
                r = dsm_txn_seek(s->txn, in.ino, q->offset >> PAGE_SHIFT,
                                 q->whence == SEEK_DATA ? DSM_SEEK_DATA : DSM_SEEK_HOLE, &page);
        else
                r = dsm_seek(x->ct->store, in.ino, q->offset >> PAGE_SHIFT,
                             q->whence == SEEK_DATA ? DSM_SEEK_DATA : DSM_SEEK_HOLE, &page);
        if (r == -ENXIO)
                return ss__fail(x, -ENXIO, "no data after the offset");
        if (r < 0)
                return ss__fail(x, r, "seek: %s", strerror(-r));
        res = page << PAGE_SHIFT;
        if (res < q->offset)
                res = q->offset;
        if (q->whence == SEEK_DATA && res >= in.size)
                return ss__fail(x, -ENXIO, "no data after the offset");
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

int ss__op_copy_range(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        struct ss_inode sin, din, dview;
        struct ss_sess *ss, *ds;
        struct src *c;
        struct ss_mut m;
        struct dsm_txn *t;
        struct ss_time now = ss__now_time();
        uint8_t tmp[PAGE];
        uint64_t n, done = 0, free_first = 0, free_n = 0;
        bool src_err = false;
        int r = ss__get_inode(x, q->ino, &sin);

        if (r < 0)
                return r;
        r = ss__get_inode(x, q->ino2, &din);
        if (r < 0)
                return r;
        r = ss__sess_get(x, q->session, q->ino, &ss);
        if (r < 0)
                return r;
        r = ss__sess_get(x, q->session2, q->ino2, &ds);
        if (r < 0)
                return r;
        x->ino = q->ino2;
        if (q->flags)
                return ss__fail(x, -EINVAL, "copy_range flags %#x", q->flags);
        r = regular(x, &sin);
        if (r >= 0)
                r = regular(x, &din);
        if (r >= 0 && !ss)
                r = ss_place_guard(x, &sin, -EIO, "copy_range (source)");      /* ss_place.h [L3] */
        if (r >= 0 && !ds)
                r = ss_place_guard(x, &din, -EHOSTUNREACH, "copy_range (destination)");
        if (r < 0)
                return r;
        ss__sess_view(ss, &sin);
        dview = din;
        ss__sess_view(ds, &dview);
        if (q->offset >= sin.size || q->length == 0) {
                a->value = 0;
                return ss__answer_inode(x, q->ino2, ds, a);
        }
        n = sin.size - q->offset;
        if (n > q->length)
                n = q->length;
        if (n > SS_COPY_MAX)
                n = SS_COPY_MAX;
        if (q->offset2 > SS_MAX_FILE_SIZE || n > SS_MAX_FILE_SIZE - q->offset2)
                return ss__fail(x, -EFBIG, "copy beyond the largest file size");
        if (q->ino == q->ino2 && q->offset < q->offset2 + n && q->offset2 < q->offset + n)
                return ss__fail(x, -EINVAL, "overlapping ranges in one file");
        r = ss__space_ok(x, n);
        if (r < 0)
                return r;
        c = ss__xalloc(x, sizeof(*c));
        if (!c)
                return ss__fail(x, -ENOMEM, "out of memory");
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
                        return ss__fail(x, -EAGAIN, "copy_range lost a race with a concurrent commit%s",
                                        src_err && ss ? "; the source session was ended" : "");
                if (r == DSM_ECORRUPT)
                        return ss__fail(x, -EIO, "copy_range: damaged page in the log");
                return ss__fail(x, r, "copy_range: %s", strerror(-r));
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
                if (!(q->valid & LP_FS_CLIENT_TIMES)) {
                        ds->has_mtime = ds->has_ctime = true;
                        ds->mtime = ds->ctime = now;
                }
                return ss__answer_inode(x, q->ino2, ds, a);
        }
        if (q->offset2 + n > din.size)
                din.size = q->offset2 + n;
        din.mtime = din.ctime = now;
        ss_cs_put_inode(&m.cs, &din, 0);
        r = ss__commit(x, &m, NULL);
        if (r < 0)
                return r;
        return ss__answer_inode(x, q->ino2, NULL, a);
}

int ss__op_sync(struct ss_opctx *x, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        (void)q;
        (void)a;
        x->sync = true;
        return 0;
}
