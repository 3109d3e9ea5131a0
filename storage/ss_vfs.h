/*
 * ss_vfs.h -- the SQLite VFS every container index is opened through
 * (SS_VFS_NAME): a thin shim over SQLite's default VFS.
 *
 * What it adds:
 *  - A fault seam under SQLite: tests hand it a struct dsm_io (in practice
 *    dsmcore's dsm_faultio_ops with its struct dsm_faultio), and from then
 *    on every xWrite, xSync and xTruncate of a main database or WAL file
 *    opened through the shim first asks that injector: the shim makes the
 *    same call (pwrite of 0 bytes, fdatasync, ftruncate to 0) on a shadow
 *    file it opened in the injector, and when the injector fails it, the
 *    SQLite call fails (SQLITE_IOERR_WRITE / _FSYNC / _TRUNCATE) without
 *    touching the real file.  So dsm_faultio_fail(f, DSM_FOP_FDATASYNC, n,
 *    EIO, persist) fails the nth SQLite sync, once or for ever, exactly as
 *    it fails the nth sync of a dsmcore store.  Otherwise (and always in
 *    production) every call goes straight to the default VFS, data and
 *    all.
 *  - The cause of the last failed write/sync/truncate on this thread, as
 *    text naming the file (ss_vfs_take_error()), so that the daemon's one
 *    log line about a failed index says which file and which call.
 *
 * Ownership: the VFS is registered once per process and never
 * unregistered.  The injector is borrowed: it must outlive every database
 * opened while it was set.  Files opened before ss_vfs_set_faults() keep
 * the setting they were opened with.
 *
 * Threads: any; registration is once-only, the injector is read under a
 * mutex at open, the injector itself must be thread-safe
 * (dsm_faultio is), the last-error text is per thread.
 *
 * Errors: ss_vfs_register: -ENOMEM, -EIO (SQLite refused the VFS).
 */
#ifndef SS_VFS_H
#define SS_VFS_H

#include "dsm.h"

#define SS_VFS_NAME "locus"

/* Register the shim (idempotent). */
int ss_vfs_register(void);

/* Tests: consult io/ctx before every write, sync and truncate of a database
 * or WAL file opened from now on.  NULL io: no injector. */
void ss_vfs_set_faults(const struct dsm_io *io, void *ctx);

/* Text describing the last write/sync/truncate that failed on this thread
 * ("fsync of /d/fg-1/meta.sqlite-wal: Input/output error"), or NULL; the
 * text is cleared by the call and valid until the thread's next call. */
const char *ss_vfs_take_error(void);

#endif
