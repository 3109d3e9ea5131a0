/*
 * us_ops.c -- see us_ops.h.
 */
#include "us_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm.h"
#include "us_sig.h"
#include "us_watch.h"

/* The context of one FUSE request. */
struct opctx {
        struct us_ctx c;
        fuse_req_t req;
        struct us_fs *fs;
        uint64_t epoch;                 /* us_watch_epoch() when the request began */
};

static int op_stop(void *arg)
{
        struct opctx *o = arg;

        if (o->fs->se && fuse_session_exited(o->fs->se))
                return -ESHUTDOWN;
        /* A stop signal (Ctrl-Z) interrupts too: not for us (us_sig.h). */
        if (fuse_req_interrupted(o->req) && us_sig_interrupts((pid_t)o->c.cred.pid))
                return -EINTR;
        return 0;
}

static struct us_core *op_init(struct opctx *o, fuse_req_t req)
{
        const struct fuse_ctx *fc = fuse_req_ctx(req);

        /* No supplementary groups: the kernel makes every permission
         * decision (default_permissions), and the storage site needs only
         * the caller's uid, gid and umask.  fuse_req_getgroups() reads
         * /proc/PID/status, which cost a third of every request. */
        memset(&o->c.cred, 0, sizeof(o->c.cred));
        o->req = req;
        o->fs = fuse_req_userdata(req);
        o->epoch = us_watch_epoch(o->fs->watch);
        o->c.cred.uid = fc->uid;
        o->c.cred.gid = fc->gid;
        o->c.cred.pid = (uint32_t)fc->pid;
        o->c.cred.umask = fc->umask;
        us_ctx_deadline(o->fs->core, &o->c, op_stop, o);
        return o->fs->core;
}

static void reply_err(fuse_req_t req, int r)
{
        fuse_reply_err(req, r < 0 ? -r : r);
}

static struct us_fh *fh_of(const struct fuse_file_info *fi)
{
        return fi ? (struct us_fh *)(uintptr_t)fi->fh : NULL;
}

/* The entry parent/name -> e, with the timeouts us_watch.h chooses. */
static void entry_param(const struct opctx *o, uint64_t parent, const char *name, const struct us_entry *e,
                        struct fuse_entry_param *p)
{
        memset(p, 0, sizeof(*p));
        p->ino = e->fino;
        p->generation = e->generation;
        p->attr = e->st;
        p->attr_timeout = us_watch_attr_timeout(o->fs->watch, o->epoch);
        p->entry_timeout = us_watch_entry_timeout(o->fs->watch, o->epoch, parent, name);
}

/*
 * With the writeback cache the kernel never takes a regular file's size
 * from an answer of ours (it keeps its own, which its cached writes may
 * have moved), so a file another mount or site made longer would look as
 * long as it was when the kernel first learned of it.  A STORE
 * notification of the file's last byte raises the kernel's size to size
 * if it is below (it never lowers it: docs/mount.md).  The byte is read
 * from the storage site: the kernel may take the page it lands in as
 * complete.
 */
static void kernel_size_at_least(struct opctx *o, fuse_ino_t ino, uint64_t size)
{
        struct us_core *core = o->fs->core;
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT(1);
        struct lp_fs_resp resp;
        int r;

        if (size == 0 || size > (uint64_t)INT64_MAX)
                return;
        r = us_core_read_ino(core, &o->c, ino, size - 1, 1, &resp);
        if (r < 0) {
                cm_log(LOG_INFO, "<%llu>: cannot read the last byte of the file, the kernel "
                       "keeps its size: %s", (unsigned long long)ino, strerror(-r));
                return;
        }
        if (resp.datalen == 1) {
                bv.buf[0].mem = (void *)resp.data;
                r = fuse_lowlevel_notify_store(o->fs->se, ino, (off_t)size - 1, &bv, 0);
                if (r < 0 && r != -ENOENT)
                        cm_log(LOG_WARNING, "<%llu>: cannot give the kernel the file's new "
                               "size %llu: %s", (unsigned long long)ino,
                               (unsigned long long)size, strerror(-r));
        }
        lp_fs_resp_release(&resp);
}

/* An answer with st about ino that the kernel takes the size of (us_core.h
 * us_core_kernel_size). */
static void kernel_knows(struct opctx *o, fuse_ino_t ino, const struct stat *st, bool entry)
{
        if (o->fs->wb && S_ISREG(st->st_mode) && st->st_size >= 0)
                us_core_kernel_size(o->fs->core, ino, (uint64_t)st->st_size, entry);
}

/*
 * The file shrank elsewhere: nothing makes the kernel lower its size of a
 * cached inode (kernel_size_at_least), so make it forget the inode: drop
 * the name this mount last answered for it; once nobody uses the inode
 * (no open file, no other name) the kernel evicts it, and the next lookup
 * makes a new one with the size we answer.  Only from an open, whose
 * caller holds no directory lock (FUSE_OPEN of an existing file comes
 * after the lookup's locks are released); a getattr may come from a
 * link(2) holding the directory's lock, which the notification takes.
 * True if a name was dropped.
 */
static bool kernel_forget(struct opctx *o, fuse_ino_t ino)
{
        char name[LP_FS_NAME_MAX + 1];
        uint64_t parent;
        int r;

        if (us_core_name_of(o->fs->core, ino, &parent, name, sizeof(name)) < 0)
                return false;
        r = fuse_lowlevel_notify_inval_entry(o->fs->se, parent, name, strlen(name));
        if (r < 0 && r != -ENOENT)
                cm_log(LOG_WARNING, "<%llu>: cannot drop the name %s of a file that shrank "
                       "elsewhere: %s", (unsigned long long)ino, name, strerror(-r));
        return r == 0;
}

/* Reply with an entry whose lookup is counted already; undo if lost. */
static void reply_entry(struct opctx *o, uint64_t parent, const char *name, int r, const struct us_entry *e)
{
        struct fuse_entry_param p;

        if (r < 0) {
                reply_err(o->req, r);
                return;
        }
        kernel_knows(o, e->fino, &e->st, true);
        entry_param(o, parent, name, e, &p);
        if (fuse_reply_entry(o->req, &p) != 0)
                us_core_forget(o->fs->core, e->fino, 1);
}

uint32_t us_setattr_bits(int to_set)
{
        static const struct {
                int fuse;
                uint32_t lp;
        } map[] = {
                { FUSE_SET_ATTR_MODE, LP_FS_SET_MODE },
                { FUSE_SET_ATTR_UID, LP_FS_SET_UID },
                { FUSE_SET_ATTR_GID, LP_FS_SET_GID },
                { FUSE_SET_ATTR_SIZE, LP_FS_SET_SIZE },
                { FUSE_SET_ATTR_ATIME, LP_FS_SET_ATIME },
                { FUSE_SET_ATTR_MTIME, LP_FS_SET_MTIME },
                { FUSE_SET_ATTR_ATIME_NOW, LP_FS_SET_ATIME_NOW },
                { FUSE_SET_ATTR_MTIME_NOW, LP_FS_SET_MTIME_NOW },
                { FUSE_SET_ATTR_CTIME, LP_FS_SET_CTIME },
        };
        uint32_t v = 0;

        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
                if (to_set & map[i].fuse)
                        v |= map[i].lp;
        return v;
}

void us_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
        char buf[1024];
        size_t n;

        vsnprintf(buf, sizeof(buf), fmt, ap);
        n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        cm_log((int)level, "fuse: %s", buf);
}

/* ---- session ---- */

static void op_init_conn(void *userdata, struct fuse_conn_info *conn)
{
        struct us_fs *fs = userdata;
        unsigned want = FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_DONT_MASK | FUSE_CAP_PARALLEL_DIROPS |
                        FUSE_CAP_CACHE_SYMLINKS;

        conn->want |= want & conn->capable;
        conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_HANDLE_KILLPRIV |
                                  FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                                  FUSE_CAP_SPLICE_MOVE | FUSE_CAP_POSIX_LOCKS |
                                  FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_EXPORT_SUPPORT);
        fs->wb = fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
        us_core_set_writeback(fs->core, fs->wb);
        if (fs->wb) {
                conn->want |= FUSE_CAP_WRITEBACK_CACHE;
                /* With atomic O_TRUNC the kernel, after the OPEN that
                 * truncated, sets its own size to 0 again in the truncate
                 * of open(2) (ATTR_OPEN) without asking us: a truncate(2)
                 * of another process between the two is then lost to the
                 * kernel, which keeps its own size for good with the
                 * writeback cache (stress: the writer's mount saw 806
                 * bytes of a 193,499-byte file).  Without it that truncate
                 * is a SETATTR under the inode lock, into the write
                 * session the OPEN started. */
                conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
        } else if (fs->writeback) {
                cm_log(LOG_WARNING, "the kernel has no FUSE writeback cache: every write goes "
                       "to the storage site as it is made");
        }
        conn->max_write = US_MAX_WRITE;
        conn->max_readahead = US_MAX_READAHEAD;
        conn->time_gran = 1;
        cm_log(LOG_DEBUG, "FUSE protocol %u.%u, capable 0x%x, want 0x%x, writeback cache %s",
               conn->proto_major, conn->proto_minor, conn->capable, conn->want,
               fs->wb ? "on" : "off");
}

static void op_destroy(void *userdata)
{
        struct us_fs *fs = userdata;

        us_core_destroy(fs->core);
}

/* ---- names ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct us_entry e;
        int r = us_core_lookup(core, &o.c, parent, name, &e);

        if (r == 0 && o.fs->wb)
                us_core_note_name(core, e.fino, parent, name);
        reply_entry(&o, parent, name, r, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
        struct us_fs *fs = fuse_req_userdata(req);

        us_core_forget(fs->core, ino, nlookup);
        fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
        struct us_fs *fs = fuse_req_userdata(req);

        for (size_t i = 0; i < count; i++)
                us_core_forget(fs->core, forgets[i].ino, forgets[i].nlookup);
        fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct stat st;
        int r = us_core_getattr(core, &o.c, ino, fh_of(fi), &st);

        if (r < 0) {
                reply_err(req, r);
                return;
        }
        fuse_reply_attr(req, &st, us_watch_attr_timeout(o.fs->watch, o.epoch));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct stat st;
        int r;

        if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size < 0) {
                reply_err(req, -EINVAL);
                return;
        }
        r = us_core_setattr(core, &o.c, ino, fh_of(fi), attr, us_setattr_bits(to_set), &st);
        if (r < 0) {
                reply_err(req, r);
                return;
        }
        if (to_set & FUSE_SET_ATTR_SIZE)
                kernel_knows(&o, ino, &st, false);
        fuse_reply_attr(req, &st, us_watch_attr_timeout(o.fs->watch, o.epoch));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        char buf[LP_FS_PATH_MAX + 1];
        int r = us_core_readlink(core, &o.c, ino, buf, sizeof(buf));

        if (r < 0)
                reply_err(req, r);
        else
                fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct us_entry e;

        reply_entry(&o, parent, name, us_core_mknod(core, &o.c, parent, name, mode, rdev, &e), &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct us_entry e;

        reply_entry(&o, parent, name, us_core_mkdir(core, &o.c, parent, name, mode, &e), &e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct us_entry e;

        reply_entry(&o, parent, name, us_core_symlink(core, &o.c, link, parent, name, &e), &e);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct us_entry e;

        reply_entry(&o, newparent, newname, us_core_link(core, &o.c, ino, newparent, newname, &e), &e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        reply_err(req, us_core_unlink(core, &o.c, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        reply_err(req, us_core_rmdir(core, &o.c, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        reply_err(req, us_core_rename(core, &o.c, parent, name, newparent, newname, flags));
}

/* ---- files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct us_fh *fh;
        bool keep = false;
        uint64_t size;
        int r;

        r = us_core_open(core, &o.c, ino, fi->flags, &fh, &keep);
        if (r < 0) {
                reply_err(req, r);
                return;
        }
        /* Changed elsewhere since the kernel last saw it: its size too,
         * before the reply, so that the open(2) that returns sees it.  A
         * file that shrank: the kernel is made to forget its inode, and
         * ESTALE makes it look the name up again (once: the size is
         * known now) with a new inode, unless something else holds the
         * old one. */
        if (o.fs->wb && !(fi->flags & O_TRUNC) && us_fh_open_size(fh, &size)) {
                enum us_size_news news = us_core_open_size_news(core, fh, size);

                if (news == US_SIZE_GREW) {
                        kernel_size_at_least(&o, ino, size);
                        us_core_open_size_done(core, ino);
                } else if (news == US_SIZE_SHRANK && kernel_forget(&o, ino)) {
                        us_core_release(core, &o.c, fh);
                        reply_err(req, -ESTALE);
                        return;
                }
        }
        fi->fh = (uintptr_t)fh;
        fi->keep_cache = keep;
        fi->direct_io = (fi->flags & O_DIRECT) != 0;
        if (fuse_reply_open(req, fi) != 0)
                us_core_release(core, &o.c, fh);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct fuse_entry_param p;
        struct us_entry e;
        struct us_fh *fh;
        int r;

        r = us_core_create(core, &o.c, parent, name, mode, fi->flags, &e, &fh);
        if (r < 0) {
                reply_err(req, r);
                return;
        }
        if (o.fs->wb)
                us_core_note_name(core, e.fino, parent, name);
        kernel_knows(&o, e.fino, &e.st, true);
        entry_param(&o, parent, name, &e, &p);
        fi->fh = (uintptr_t)fh;
        fi->keep_cache = 0;
        fi->direct_io = (fi->flags & O_DIRECT) != 0;
        if (fuse_reply_create(req, &p, fi) != 0) {
                us_core_forget(core, e.fino, 1);
                us_core_release(core, &o.c, fh);
        }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct lp_fs_resp resp;
        int r;

        (void)ino;
        if (off < 0 || !fh_of(fi)) {
                reply_err(req, off < 0 ? -EINVAL : -EBADF);
                return;
        }
        r = us_core_read(core, &o.c, fh_of(fi), (uint64_t)off, size, &resp);
        if (r < 0) {
                reply_err(req, r);
                return;
        }
        fuse_reply_buf(req, (const char *)resp.data, resp.datalen);
        lp_fs_resp_release(&resp);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        ssize_t n;

        (void)ino;
        if (off < 0 || !fh_of(fi)) {
                reply_err(req, off < 0 ? -EINVAL : -EBADF);
                return;
        }
        n = us_core_write(core, &o.c, fh_of(fi), (uint64_t)off, buf, size);
        if (n < 0)
                reply_err(req, (int)n);
        else
                fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        (void)ino;
        reply_err(req, fh_of(fi) ? us_core_flush(core, &o.c, fh_of(fi)) : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        (void)ino;
        /* Not cut short by the unmount: the final commit is worth the wait
         * (bounded by the timeout). */
        o.c.call.stop = NULL;
        if (fh_of(fi))
                us_core_release(core, &o.c, fh_of(fi));
        fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        (void)ino;
        if (!fh_of(fi)) {
                reply_err(req, us_core_fsyncdir(core, &o.c, ino));
                return;
        }
        reply_err(req, us_core_fsync(core, &o.c, fh_of(fi), datasync != 0));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        (void)ino;
        if (offset < 0 || length <= 0 || !fh_of(fi)) {
                reply_err(req, fh_of(fi) ? -EINVAL : -EBADF);
                return;
        }
        reply_err(req, us_core_fallocate(core, &o.c, fh_of(fi), mode, (uint64_t)offset,
                                         (uint64_t)length));
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out,
                               off_t off_out, struct fuse_file_info *fi_out, size_t len,
                               int flags)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        ssize_t n;

        (void)ino_in;
        (void)ino_out;
        if (off_in < 0 || off_out < 0 || !fh_of(fi_in) || !fh_of(fi_out)) {
                reply_err(req, (off_in < 0 || off_out < 0) ? -EINVAL : -EBADF);
                return;
        }
        n = us_core_copy_range(core, &o.c, fh_of(fi_in), (uint64_t)off_in, fh_of(fi_out),
                               (uint64_t)off_out, len, (unsigned)flags);
        if (n < 0)
                reply_err(req, (int)n);
        else
                fuse_reply_write(req, (size_t)n);
}

/*
 * The kernel asks SEEK_DATA and SEEK_HOLE of us without writing its dirty
 * pages back first (it holds the inode's lock, so neither can we through
 * the file): an answer from the storage site alone would miss data
 * written through this mount and not yet sent, and call it a hole.  syncfs
 * on the mount point writes every dirty page of this mount back (without
 * the inode's lock); done only while this mount has a write session of
 * the file, the one case with dirty pages.
 */
static void kernel_writeback(struct us_fs *fs)
{
        int fd;

        if (!fs->mnt)
                return;
        fd = open(fs->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0)
                cm_log(LOG_WARNING, "%s: cannot write the cached pages back before SEEK_DATA or "
                       "SEEK_HOLE: %s", fs->mnt, strerror(errno));
        if (fd >= 0)
                close(fd);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        uint64_t pos;
        int r;

        if (off < 0 || !fh_of(fi)) {
                reply_err(req, off < 0 ? -ENXIO : -EBADF);
                return;
        }
        if (o.fs->wb && (whence == SEEK_DATA || whence == SEEK_HOLE) &&
            us_core_session_of(core, ino, NULL))
                kernel_writeback(o.fs);
        r = us_core_lseek(core, &o.c, fh_of(fi), (uint64_t)off, whence, &pos);
        if (r < 0)
                reply_err(req, r);
        else if (pos > (uint64_t)INT64_MAX)
                reply_err(req, -EOVERFLOW);
        else
                fuse_reply_lseek(req, (off_t)pos);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        (void)ino;
        fi->fh = 0;             /* stateless: readdir cookies are the SS's */
        fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        uint64_t *counted = NULL;
        size_t ncounted = 0, pos = 0;
        struct us_dir d;
        char *buf = NULL;
        int r;

        if (off < 0) {
                reply_err(req, -EINVAL);
                return;
        }
        /* Ask for about as many entries as fit (a plus entry takes ~150
         * bytes, a plain one ~32); extra ones are dropped. */
        r = us_core_readdir(core, &o.c, ino, (uint64_t)off, size / (plus ? 150 : 32) + 1, plus,
                            &d);
        if (r < 0) {
                reply_err(req, r);
                return;
        }
        buf = malloc(size ? size : 1);
        counted = calloc(d.n ? d.n : 1, sizeof(*counted));
        if (!buf || !counted) {
                reply_err(req, -ENOMEM);
                goto out;
        }
        for (size_t i = 0; i < d.n; i++) {
                const struct us_dirent *e = &d.ents[i];
                size_t need;

                if (e->next == 0) {
                        cm_log(LOG_WARNING, "readdir <%llu>: entry %s without a next cookie; "
                               "the listing stops there", (unsigned long long)ino, e->name);
                        break;
                }
                if (plus) {
                        struct fuse_entry_param p;

                        memset(&p, 0, sizeof(p));
                        p.attr = e->st;
                        if (!e->dot && e->has_attr) {
                                p.ino = e->fino;
                                p.generation = e->generation;
                                p.attr_timeout = us_watch_attr_timeout(o.fs->watch, o.epoch);
                                p.entry_timeout = us_watch_entry_timeout(o.fs->watch, o.epoch, ino,
                                                                         e->name);
                        }
                        need = fuse_add_direntry_plus(req, buf + pos, size - pos, e->name, &p,
                                                      (off_t)e->next);
                        if (need > size - pos)
                                break;
                        if (p.ino) {
                                /* Counted before the reply, taken back if lost. */
                                if (us_core_lookup_inc(core, e->fino, 1) < 0)
                                        break;
                                counted[ncounted++] = e->fino;
                                if (o.fs->wb)
                                        us_core_note_name(core, e->fino, ino, e->name);
                                kernel_knows(&o, e->fino, &e->st, true);
                        }
                } else {
                        need = fuse_add_direntry(req, buf + pos, size - pos, e->name, &e->st,
                                                 (off_t)e->next);
                        if (need > size - pos)
                                break;
                }
                pos += need;
        }
        if (fuse_reply_buf(req, buf, pos) != 0) {
                for (size_t i = 0; i < ncounted; i++)
                        us_core_forget(core, counted[i], 1);
        }
out:
        free(buf);
        free(counted);
        us_dir_release(&d);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
        (void)fi;
        do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
        (void)fi;
        do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        (void)ino;
        (void)fi;
        fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        (void)datasync;
        (void)fi;
        reply_err(req, us_core_fsyncdir(core, &o.c, ino));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        struct statvfs st;
        int r = us_core_statfs(core, &o.c, ino, &st);

        if (r < 0)
                reply_err(req, r);
        else
                fuse_reply_statfs(req, &st);
}

/* ---- extended attributes ---- */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        reply_err(req, us_core_setxattr(core, &o.c, ino, name, value, size, flags));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        char *buf = NULL;
        size_t len = 0;
        int r;

        if (size) {
                if (size > LP_FS_XATTR_VALUE_MAX)
                        size = LP_FS_XATTR_VALUE_MAX;
                buf = malloc(size);
                if (!buf) {
                        reply_err(req, -ENOMEM);
                        return;
                }
        }
        r = us_core_getxattr(core, &o.c, ino, name, buf, size, &len);
        if (r < 0)
                reply_err(req, r);
        else if (size == 0)
                fuse_reply_xattr(req, len);
        else
                fuse_reply_buf(req, buf, len);
        free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);
        char *buf = NULL;
        size_t len = 0;
        int r;

        if (size) {
                if (size > LP_FS_DATA_MAX)
                        size = LP_FS_DATA_MAX;
                buf = malloc(size);
                if (!buf) {
                        reply_err(req, -ENOMEM);
                        return;
                }
        }
        r = us_core_listxattr(core, &o.c, ino, buf, size, &len);
        if (r < 0)
                reply_err(req, r);
        else if (size == 0)
                fuse_reply_xattr(req, len);
        else
                fuse_reply_buf(req, buf, len);
        free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
        struct opctx o;
        struct us_core *core = op_init(&o, req);

        reply_err(req, us_core_removexattr(core, &o.c, ino, name));
}

const struct fuse_lowlevel_ops us_ops = {
        .init = op_init_conn,
        .destroy = op_destroy,
        .lookup = op_lookup,
        .forget = op_forget,
        .forget_multi = op_forget_multi,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .readlink = op_readlink,
        .mknod = op_mknod,
        .mkdir = op_mkdir,
        .unlink = op_unlink,
        .rmdir = op_rmdir,
        .symlink = op_symlink,
        .rename = op_rename,
        .link = op_link,
        .open = op_open,
        .read = op_read,
        .write = op_write,
        .flush = op_flush,
        .release = op_release,
        .fsync = op_fsync,
        .opendir = op_opendir,
        .readdir = op_readdir,
        .releasedir = op_releasedir,
        .fsyncdir = op_fsyncdir,
        .statfs = op_statfs,
        .setxattr = op_setxattr,
        .getxattr = op_getxattr,
        .listxattr = op_listxattr,
        .removexattr = op_removexattr,
        .create = op_create,
        .fallocate = op_fallocate,
        .readdirplus = op_readdirplus,
        .copy_file_range = op_copy_file_range,
        .lseek = op_lseek,
};
