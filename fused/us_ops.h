/*
 * us_ops.h -- the FUSE low-level operations of locusfs-mount: each one
 * turns a kernel request into a us_core call and the result into exactly
 * one reply (none for forget), with the caller's credentials and a
 * deadline of now + timeout.
 *
 * Lookup counts: every reply that hands the kernel an inode (lookup,
 * mknod, mkdir, symlink, link, create, each readdirplus entry but "." and
 * "..") counts one lookup before the reply goes out; if the reply cannot
 * be delivered (the request was interrupted meanwhile) the count is taken
 * back, as fuse_lowlevel.h requires.  A create or open whose reply is not
 * delivered is released at once.
 *
 * Capabilities asked for in init: max_write and max_readahead 1 MiB,
 * atomic O_TRUNC without the writeback cache (the storage site truncates
 * inside the new write session; with it, the truncate of open(2) is a
 * SETATTR into the session the OPEN started, see op_init_conn), no umask applied by the kernel (the storage site applies
 * cred.umask), parallel directory operations, symlink caching, and the
 * writeback cache unless the mount says nowriteback (docs/mount.md
 * "Writeback cache"): the kernel then keeps written pages and sends them
 * in large WRITEs at writeback, fsync and close; it keeps the size and
 * mtime of a regular file itself and takes neither from our answers
 * (only a truncate's), so an open that finds the file changed by another
 * mount or site tells it the new size (us_core_open_size_news(): a STORE
 * notification of the file's last byte raises it; a file that shrank is
 * forgotten: INVAL_ENTRY of its name, ESTALE once); O_APPEND is the
 * kernel's (the storage site writes at the offset it is given, always);
 * it may read through a write-only handle (allowed: reads never check the
 * handle's mode); it asks SEEK_DATA/SEEK_HOLE without writing back first
 * (op_lseek runs syncfs while this mount writes the file).  Never: FUSE_CAP_HANDLE_KILLPRIV (the kernel clears set-user-ID bits itself
 * through SETATTR), splice (the data is copied into protobuf messages
 * anyway), remote POSIX/BSD locks (locks stay local to this mount, as the
 * kernel does when these are missing), export support.
 *
 * Ownership: struct us_fs belongs to the caller (us_mount.c); it must
 * outlive the session.  fi->fh of files holds a struct us_fh * from
 * us_core; directories have fh 0.
 *
 * Threads: the handlers run on libfuse's worker threads, concurrently.
 */
#ifndef US_OPS_H
#define US_OPS_H

#include <stdarg.h>
#include <stdbool.h>

#include <fuse_lowlevel.h>

#include "us_core.h"

struct us_watch;

/* The userdata of the FUSE session. */
struct us_fs {
        struct us_core *core;
        struct fuse_session *se;        /* set once the session exists */
        struct us_watch *watch;         /* commit notes and timeouts (us_watch.h); may be NULL */
        const char *mnt;                /* the mount point, absolute (us_mount.c) */
        bool writeback;                 /* ask for the writeback cache (before init) */
        bool wb;                        /* the kernel gave it (set by init) */
};

extern const struct fuse_lowlevel_ops us_ops;

/* Entry and attribute timeouts given to the kernel, in seconds, by
 * default, and whenever commit notes do not flow (us_watch.h: longer ones
 * with entry_timeout=, attr_timeout=). */
#define US_ENTRY_TIMEOUT 1.0
#define US_ATTR_TIMEOUT 1.0
#define US_MAX_WRITE (1u << 20)
#define US_MAX_READAHEAD (1u << 20)

/* libfuse's log, through cm_log (fuse_set_log_func). */
void us_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

/* FUSE_SET_ATTR_* bits -> LP_FS_SET_* bits (unknown bits dropped). */
uint32_t us_setattr_bits(int to_set);

#endif
