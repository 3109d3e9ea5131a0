/*
 * ss_vfs.c -- see ss_vfs.h.
 *
 * A struct vfile is our sqlite3_file followed by the default VFS's own
 * file object (szOsFile bytes), to which every method forwards.  Only
 * xWrite, xSync and xTruncate do more: they consult the injector (when the
 * file has a shadow in it) and remember the cause of a failure.
 */
#include "ss_vfs.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

struct vfile {
        sqlite3_file base;
        sqlite3_file *real;             /* right after this struct */
        const struct dsm_io *io;        /* injector, or NULL */
        void *io_ctx;
        int shadow;                     /* descriptor in the injector */
        const char *path;               /* SQLite keeps it alive while open */
};

static sqlite3_vfs vfs;
static sqlite3_vfs *root;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int reg_err;
static pthread_mutex_t inj_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct dsm_io *inj_io;     /* under inj_lock */
static void *inj_ctx;
static _Thread_local char last_err[256];
static _Thread_local char taken_err[256];

static void note(const struct vfile *f, const char *what, int err)
{
        snprintf(last_err, sizeof(last_err), "%s of %s: %s", what, f->path ? f->path : "(temporary file)",
                 strerror(err));
}

const char *ss_vfs_take_error(void)
{
        if (!last_err[0])
                return NULL;
        memcpy(taken_err, last_err, sizeof(taken_err));
        last_err[0] = 0;
        return taken_err;
}

/* ---- file methods ------------------------------------------------------------- */

static struct vfile *vf(sqlite3_file *p)
{
        return (struct vfile *)p;
}

static int v_close(sqlite3_file *p)
{
        struct vfile *f = vf(p);
        int rc = f->real->pMethods->xClose(f->real);

        if (f->io)
                (void)f->io->close(f->io_ctx, f->shadow);
        return rc;
}

static int v_read(sqlite3_file *p, void *buf, int n, sqlite3_int64 off)
{
        return vf(p)->real->pMethods->xRead(vf(p)->real, buf, n, off);
}

enum ask { ASK_WRITE, ASK_TRUNCATE, ASK_SYNC };

/* The injector's verdict on one call of f: SQLITE_OK, or fail with code. */
static int injected(struct vfile *f, enum ask what, int code)
{
        static const char *const names[] = { "write (injected)", "truncate (injected)", "fsync (injected)" };
        ssize_t r;

        if (!f->io)
                return SQLITE_OK;
        if (what == ASK_WRITE)
                r = f->io->pwrite(f->io_ctx, f->shadow, "", 0, 0);
        else if (what == ASK_TRUNCATE)
                r = f->io->ftruncate(f->io_ctx, f->shadow, 0);
        else
                r = f->io->fdatasync(f->io_ctx, f->shadow);
        if (r >= 0)
                return SQLITE_OK;
        note(f, names[what], (int)-r);
        return code;
}

/* The default VFS's answer rc, its cause noted if it failed. */
static int forwarded(struct vfile *f, int rc, const char *what)
{
        if (rc != SQLITE_OK)
                note(f, what, errno ? errno : EIO);
        return rc;
}

static int v_write(sqlite3_file *p, const void *buf, int n, sqlite3_int64 off)
{
        struct vfile *f = vf(p);
        int rc = injected(f, ASK_WRITE, SQLITE_IOERR_WRITE);

        if (rc != SQLITE_OK)
                return rc;
        return forwarded(f, f->real->pMethods->xWrite(f->real, buf, n, off), "write");
}

static int v_truncate(sqlite3_file *p, sqlite3_int64 size)
{
        struct vfile *f = vf(p);
        int rc = injected(f, ASK_TRUNCATE, SQLITE_IOERR_TRUNCATE);

        if (rc != SQLITE_OK)
                return rc;
        return forwarded(f, f->real->pMethods->xTruncate(f->real, size), "truncate");
}

static int v_sync(sqlite3_file *p, int flags)
{
        struct vfile *f = vf(p);
        int rc = injected(f, ASK_SYNC, SQLITE_IOERR_FSYNC);

        if (rc != SQLITE_OK)
                return rc;
        return forwarded(f, f->real->pMethods->xSync(f->real, flags), "fsync");
}

static int v_size(sqlite3_file *p, sqlite3_int64 *ret)
{
        return vf(p)->real->pMethods->xFileSize(vf(p)->real, ret);
}

static int v_lock(sqlite3_file *p, int l)
{
        return vf(p)->real->pMethods->xLock(vf(p)->real, l);
}

static int v_unlock(sqlite3_file *p, int l)
{
        return vf(p)->real->pMethods->xUnlock(vf(p)->real, l);
}

static int v_reserved(sqlite3_file *p, int *ret)
{
        return vf(p)->real->pMethods->xCheckReservedLock(vf(p)->real, ret);
}

static int v_fcntl(sqlite3_file *p, int op, void *arg)
{
        return vf(p)->real->pMethods->xFileControl(vf(p)->real, op, arg);
}

static int v_sector(sqlite3_file *p)
{
        return vf(p)->real->pMethods->xSectorSize(vf(p)->real);
}

static int v_devchar(sqlite3_file *p)
{
        return vf(p)->real->pMethods->xDeviceCharacteristics(vf(p)->real);
}

static int v_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **ret)
{
        return vf(p)->real->pMethods->xShmMap(vf(p)->real, pg, pgsz, extend, ret);
}

static int v_shm_lock(sqlite3_file *p, int off, int n, int flags)
{
        return vf(p)->real->pMethods->xShmLock(vf(p)->real, off, n, flags);
}

static void v_shm_barrier(sqlite3_file *p)
{
        vf(p)->real->pMethods->xShmBarrier(vf(p)->real);
}

static int v_shm_unmap(sqlite3_file *p, int del)
{
        return vf(p)->real->pMethods->xShmUnmap(vf(p)->real, del);
}

static int v_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **ret)
{
        return vf(p)->real->pMethods->xFetch(vf(p)->real, off, amt, ret);
}

static int v_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
        return vf(p)->real->pMethods->xUnfetch(vf(p)->real, off, ptr);
}

static const sqlite3_io_methods methods = {
        .iVersion = 3,
        .xClose = v_close,
        .xRead = v_read,
        .xWrite = v_write,
        .xTruncate = v_truncate,
        .xSync = v_sync,
        .xFileSize = v_size,
        .xLock = v_lock,
        .xUnlock = v_unlock,
        .xCheckReservedLock = v_reserved,
        .xFileControl = v_fcntl,
        .xSectorSize = v_sector,
        .xDeviceCharacteristics = v_devchar,
        .xShmMap = v_shm_map,
        .xShmLock = v_shm_lock,
        .xShmBarrier = v_shm_barrier,
        .xShmUnmap = v_shm_unmap,
        .xFetch = v_fetch,
        .xUnfetch = v_unfetch,
};

/* ---- the VFS ------------------------------------------------------------------- */

static int v_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *p, int flags, int *ret_flags)
{
        struct vfile *f = vf(p);
        const struct dsm_io *io;
        void *io_ctx;
        int rc;

        (void)v;
        memset(f, 0, sizeof(*f));
        f->real = (sqlite3_file *)(f + 1);
        f->path = name;
        f->shadow = -1;
        pthread_mutex_lock(&inj_lock);
        io = inj_io;
        io_ctx = inj_ctx;
        pthread_mutex_unlock(&inj_lock);
        rc = root->xOpen(root, name, f->real, flags, ret_flags);
        if (rc != SQLITE_OK || !f->real->pMethods) {
                p->pMethods = NULL;
                return rc;
        }
        if (io && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL))) {
                /* The shadow only carries the injector's decisions; one
                 * name for all is fine (nothing is ever written to it). */
                int fd = io->open(io_ctx, "sqlite-shadow", O_RDWR | O_CREAT | O_CLOEXEC, 0600);

                if (fd < 0) {
                        f->real->pMethods->xClose(f->real);
                        p->pMethods = NULL;
                        return SQLITE_CANTOPEN;
                }
                f->io = io;
                f->io_ctx = io_ctx;
                f->shadow = fd;
        }
        p->pMethods = &methods;
        return SQLITE_OK;
}

static int v_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
        (void)v;
        return root->xDelete(root, name, sync_dir);
}

static int v_access(sqlite3_vfs *v, const char *name, int flags, int *ret)
{
        (void)v;
        return root->xAccess(root, name, flags, ret);
}

static int v_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
        (void)v;
        return root->xFullPathname(root, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *v, const char *name)
{
        (void)v;
        return root->xDlOpen(root, name);
}

static void v_dlerror(sqlite3_vfs *v, int n, char *msg)
{
        (void)v;
        root->xDlError(root, n, msg);
}

static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
        (void)v;
        return root->xDlSym(root, h, sym);
}

static void v_dlclose(sqlite3_vfs *v, void *h)
{
        (void)v;
        root->xDlClose(root, h);
}

static int v_random(sqlite3_vfs *v, int n, char *out)
{
        (void)v;
        return root->xRandomness(root, n, out);
}

static int v_sleep(sqlite3_vfs *v, int us)
{
        (void)v;
        return root->xSleep(root, us);
}

static int v_time(sqlite3_vfs *v, double *ret)
{
        (void)v;
        return root->xCurrentTime(root, ret);
}

static int v_lasterr(sqlite3_vfs *v, int n, char *msg)
{
        (void)v;
        return root->xGetLastError(root, n, msg);
}

static int v_time64(sqlite3_vfs *v, sqlite3_int64 *ret)
{
        (void)v;
        return root->xCurrentTimeInt64(root, ret);
}

static int v_set_syscall(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr fn)
{
        (void)v;
        return root->xSetSystemCall(root, name, fn);
}

static sqlite3_syscall_ptr v_get_syscall(sqlite3_vfs *v, const char *name)
{
        (void)v;
        return root->xGetSystemCall(root, name);
}

static const char *v_next_syscall(sqlite3_vfs *v, const char *name)
{
        (void)v;
        return root->xNextSystemCall(root, name);
}

static void do_register(void)
{
        root = sqlite3_vfs_find(NULL);
        if (!root || root->iVersion < 3) {
                reg_err = -EIO;
                return;
        }
        vfs = (sqlite3_vfs){
                .iVersion = 3,
                .szOsFile = (int)sizeof(struct vfile) + root->szOsFile,
                .mxPathname = root->mxPathname,
                .zName = SS_VFS_NAME,
                .xOpen = v_open,
                .xDelete = v_delete,
                .xAccess = v_access,
                .xFullPathname = v_fullpath,
                .xDlOpen = v_dlopen,
                .xDlError = v_dlerror,
                .xDlSym = v_dlsym,
                .xDlClose = v_dlclose,
                .xRandomness = v_random,
                .xSleep = v_sleep,
                .xCurrentTime = v_time,
                .xGetLastError = v_lasterr,
                .xCurrentTimeInt64 = v_time64,
                .xSetSystemCall = v_set_syscall,
                .xGetSystemCall = v_get_syscall,
                .xNextSystemCall = v_next_syscall,
        };
        if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK)
                reg_err = -EIO;
}

int ss_vfs_register(void)
{
        pthread_once(&once, do_register);
        return reg_err;
}

void ss_vfs_set_faults(const struct dsm_io *io, void *ctx)
{
        pthread_mutex_lock(&inj_lock);
        inj_io = io;
        inj_ctx = io ? ctx : NULL;
        pthread_mutex_unlock(&inj_lock);
}
