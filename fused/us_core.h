/*
 * us_core.h -- the using site's filesystem: every operation the kernel asks
 * of locusfs-mount, in terms of <fg, ino>, write sessions and requests to
 * the storage sites and the CSS, without anything FUSE-specific in the
 * interface (us_ops.c turns FUSE requests into these calls and the results
 * into replies), so that tests can drive it without a kernel mount.
 *
 * State kept here:
 *  - the mount table (us_mtab), fetched from the CSS at start, every
 *    US_MTAB_REFRESH_US by the keeper thread, and when a file group is
 *    unknown (at most every US_MTAB_MISS_US);
 *  - a node per FUSE inode the kernel knows (lookup count, as
 *    fuse_lowlevel.h defines it) or that is in use here (open handles,
 *    requests in flight, a write session);
 *  - at most one write session per node, shared by every writable handle
 *    of this mount on that file;
 *  - an open handle (struct us_fh) per open(2)/create of the kernel.
 *
 * Write sessions (docs/protocol.md "Write sessions"):
 *  - the first writable open of a file starts one (OPEN/CREATE with a
 *    writable mode); later writable opens join it, and so does a writable
 *    open or create whose storage site opened a second one meanwhile (that
 *    one is aborted); reads, getattr and every setattr of that file in this
 *    mount name it (read-your-writes: the kernel takes the attributes
 *    answered as the file's), and an entry answered for it (lookup, link)
 *    carries the attributes that gives;
 *  - fsync commits it with COMMIT_SYNC and keeps it;
 *  - the last release of a writable handle commits it with COMMIT_END.
 *    From the moment that release starts until the commit is answered, the
 *    node is "committing": open, getattr, setattr, read and lseek of that
 *    file wait for it (bounded by their deadline), so that nothing in this
 *    mount sees the old version after close(2) returned.  A request that
 *    was handled before the release started still finds the session and
 *    reads through it, which gives the same content.  A change sent
 *    without a session (truncate of a file nobody here writes) is waited
 *    for the same way.  A session begun by the storage site before such a
 *    commit landed (a CREATE racing it) is never made the file's: the
 *    create opens a new one (its reads and writes would fail with EAGAIN);
 *  - a session the storage site no longer knows (-ESTALE: it restarted
 *    and lost the staged pages) is "lost": every later write, fsync, flush
 *    and fallocate of the handles that used it fail with EIO; the file
 *    keeps its last committed content; reads go on without it; a new
 *    writable open starts a new session;
 *  - the keeper thread touches (GETATTR with the session) sessions idle
 *    for US_SESSION_KEEPALIVE_US, so that the storage site's 10-minute idle
 *    abort never hits a descriptor that is merely quiet, and so that the
 *    keeper holds a connection to every storage site where this mount has
 *    a session: the site keeps a client's sessions while it has any
 *    connection, and aborts them one lease (default 30 s) after its last
 *    one closed (worker threads, and their connections, may come and go).
 *    Hence US_SESSION_KEEPALIVE_US is well below the default lease.
 *
 * Orphans: an unlink/rmdir/rename answering orphan=true is reported to the
 * CSS (CSS_ORPHAN), which frees the file at the last close anywhere in the
 * cluster (every open of this mount is recorded there: CSS_OPEN, or
 * CSS_OPENED after a create).
 *
 * Page cache: us_core_open() says keep_cache only when the version the
 * storage site reports is the one this mount saw at the file's previous
 * open or commit here (the kernel dropped the node, and its pages, when it
 * forgot the inode).
 *
 * Deadlines: every call takes a struct us_ctx with the caller's identity
 * and a deadline (now + timeout for a FUSE request, see us_ctx_init()); a
 * request that cannot be answered by then fails with ETIMEDOUT (us_rpc.h
 * says which requests are retried).
 *
 * Ownership: the core owns nodes, sessions and handles.  A struct us_fh
 * returned by open/create stays valid until us_core_release() (or
 * us_core_destroy()).  struct lp_fs_resp results given to the caller
 * (read, readdir, readlink) are the caller's to release.
 *
 * Threads: every function may be called from any thread, concurrently
 * (one mutex for nodes and sessions, never held during a request); the
 * keeper thread is started by us_core_start() and stopped by
 * us_core_destroy().
 *
 * Errors: negative errno, as FUSE should see it (see each function and
 * docs/protocol.md); -ETIMEDOUT when a daemon could not be reached in time;
 * -EIO for a lost write session and for requests whose outcome is unknown.
 */
#ifndef US_CORE_H
#define US_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "lp_fs.h"
#include "lp_key.h"
#include "us_mtab.h"
#include "us_rpc.h"

/* The kernel's entry and attribute timeout (us_ops.h: US_ATTR_TIMEOUT, in
 * seconds): what this mount remembers on its own lasts no longer. */
#define US_ATTR_TIMEOUT_US 1000000u
#define US_MTAB_REFRESH_US (5u * 1000000u)
#define US_MTAB_MISS_US (500u * 1000u)
#define US_SESSION_KEEPALIVE_US (10u * 1000000u)
#define US_MAX_FH (1u << 20)            /* open handles at once: ENFILE beyond */
#define US_BLKSIZE 4096u                /* st_blksize */

struct us_core_opts {
        uint64_t timeout_us;
        uint64_t site;                  /* ours, in handshakes */
        char css_host[US_HOST_MAX];
        uint16_t css_port;              /* used when css_port_file is unreadable */
        const char *css_port_file;      /* may be NULL; the core keeps a copy */
        bool keeper;                    /* run the keeper thread */
        uint64_t refresh_us;            /* 0: US_MTAB_REFRESH_US */
        uint64_t keepalive_us;          /* 0: US_SESSION_KEEPALIVE_US */
};

/* Who asks, and until when.  Fill cred (groups are optional), then
 * us_ctx_deadline(). */
struct us_ctx {
        struct lp_fs_cred cred;
        uint32_t groups[LP_FS_MAX_GROUPS];
        struct us_call call;
};

struct us_core;
struct us_fh;

/* An answer naming an inode: FUSE inode number and attributes. */
struct us_entry {
        uint64_t fino;
        uint64_t generation;
        struct stat st;
};

int us_core_new(const struct us_core_opts *o, const uint8_t key[LP_KEY_SIZE],
                struct us_core **ret);
/* Start the keeper thread (if o->keeper): mount table refresh every
 * US_MTAB_REFRESH_US, session keepalive.  Fetch the first table with
 * us_core_refresh_mtab() before. */
int us_core_start(struct us_core *core);
/* Commit every session still open, close what is open at the CSS, forget
 * pending orphans (all within one timeout), stop the keeper.  Idempotent. */
void us_core_destroy(struct us_core *core);
void us_core_free(struct us_core *core);

/* The kernel's writeback cache is on: it keeps the mtime and ctime of
 * regular files and sends them (SETATTR), so WRITEs ask the storage site
 * to leave them.  Set once, from FUSE init, before any request. */
void us_core_set_writeback(struct us_core *core, bool on);
/* ctx for the mount itself (our uid/gid, umask 0), deadline now + timeout. */
void us_ctx_self(struct us_core *core, struct us_ctx *ctx);
/* Set ctx's deadline to now + timeout and its stop callback. */
void us_ctx_deadline(struct us_core *core, struct us_ctx *ctx, int (*stop)(void *), void *arg);
uint64_t us_core_timeout_us(const struct us_core *core);
struct us_mtab *us_core_mtab(struct us_core *core);
struct us_rpc *us_core_rpc(struct us_core *core);
int us_core_refresh_mtab(struct us_core *core, struct us_ctx *ctx);

/* attributes -> struct stat (st_ino = fino) */
void us_attr_to_stat(const struct lp_fs_attr *a, uint64_t fino, struct stat *st);

/* ---- names (each successful entry-returning call counts one lookup) ---- */

int us_core_lookup(struct us_core *core, struct us_ctx *ctx, uint64_t parent,
                   const char *name, struct us_entry *ret);
/* Lookup counts: add n (readdirplus), or drop n (forget, or undoing a reply
 * the kernel never got). */
int us_core_lookup_inc(struct us_core *core, uint64_t fino, uint64_t n);
void us_core_forget(struct us_core *core, uint64_t fino, uint64_t n);
/* The kernel's lookup count of fino (0 when unknown); for tests. */
uint64_t us_core_nlookup(struct us_core *core, uint64_t fino);

int us_core_getattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino,
                    struct us_fh *fh, struct stat *ret);
/* to_set: LP_FS_SET_* bits; mode/uid/gid/size/times from *in. */
int us_core_setattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino,
                    struct us_fh *fh, const struct stat *in, uint32_t to_set, struct stat *ret);
/* *ret (NUL-terminated in buf, cap bytes) */
int us_core_readlink(struct us_core *core, struct us_ctx *ctx, uint64_t fino, char *buf,
                     size_t cap);
int us_core_mknod(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                  uint32_t mode, uint64_t rdev, struct us_entry *ret);
int us_core_mkdir(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                  uint32_t mode, struct us_entry *ret);
int us_core_symlink(struct us_core *core, struct us_ctx *ctx, const char *target,
                    uint64_t parent, const char *name, struct us_entry *ret);
int us_core_link(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t newparent,
                 const char *newname, struct us_entry *ret);
int us_core_unlink(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name);
int us_core_rmdir(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT (renameat2:
 * the old name becomes a whiteout, atomically; overlayfs needs it of an
 * upper layer); others, or EXCHANGE with another, EINVAL. */
int us_core_rename(struct us_core *core, struct us_ctx *ctx, uint64_t parent, const char *name,
                   uint64_t newparent, const char *newname, unsigned flags);

/* ---- files ---- */

int us_core_open(struct us_core *core, struct us_ctx *ctx, uint64_t fino, int flags,
                 struct us_fh **ret_fh, bool *ret_keep_cache);
int us_core_create(struct us_core *core, struct us_ctx *ctx, uint64_t parent,
                   const char *name, uint32_t mode, int flags, struct us_entry *ret_entry,
                   struct us_fh **ret_fh);
/* Data in ret->data/ret->datalen (short at end of file); release ret. */
int us_core_read(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, uint64_t off,
                 size_t size, struct lp_fs_resp *ret);
/* The same without a handle: through this mount's session of fino if
 * it has one, else the committed file. */
int us_core_read_ino(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t off,
                     size_t size, struct lp_fs_resp *ret);
/* Bytes written, or an error. */
ssize_t us_core_write(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh,
                      uint64_t off, const void *buf, size_t size);
/* Errors of earlier writes through fh (reported once), EIO for a lost
 * session. */
int us_core_flush(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh);
int us_core_fsync(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, bool datasync);
/* Ends fh (always, even on error; the error is only logged). */
void us_core_release(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh);
int us_core_fallocate(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, int mode,
                      uint64_t off, uint64_t len);
ssize_t us_core_copy_range(struct us_core *core, struct us_ctx *ctx, struct us_fh *in,
                           uint64_t off_in, struct us_fh *out, uint64_t off_out, size_t len,
                           unsigned flags);
int us_core_lseek(struct us_core *core, struct us_ctx *ctx, struct us_fh *fh, uint64_t off,
                  int whence, uint64_t *ret_off);
/* The FUSE inode number fh was opened on. */
uint64_t us_fh_fino(const struct us_fh *fh);
/* The size of the committed version the open of fh was answered with,
 * when no write session of this mount had the file (then this mount's
 * kernel holds no write of its own that the size could miss); false
 * otherwise, and for a create.  Valid until us_core_release(). */
bool us_fh_open_size(const struct us_fh *fh, uint64_t *ret);
/*
 * For a kernel that keeps its own size of regular files (the writeback
 * cache, us_ops.h), the size this mount believes it has: set from an
 * answer that the kernel takes the size of (a truncate, an entry for an
 * inode the kernel does not hold yet: entry and the only lookup counted)
 * with us_core_kernel_size(), from this mount's commits, and from the
 * opens that compare it: us_core_open_size_news() is given the size of
 * the committed version an open found (us_fh_open_size(): no write
 * session of this mount had the file, so the kernel holds no write of its
 * own) and says whether the file grew (or no size is known) or shrank
 * since, i.e. was changed elsewhere; it remembers size.  US_SIZE_SAME
 * (and nothing remembered) once a write session of this mount other than
 * the one this open of fh started exists or is being started.
 */
enum us_size_news { US_SIZE_SAME, US_SIZE_GREW, US_SIZE_SHRANK };
void us_core_kernel_size(struct us_core *core, uint64_t fino, uint64_t size, bool entry);
enum us_size_news us_core_open_size_news(struct us_core *core, struct us_fh *fh, uint64_t size);
/* After US_SIZE_GREW, writable opens of fino wait until this is called
 * (the caller stores into the kernel's cache meanwhile). */
void us_core_open_size_done(struct us_core *core, uint64_t fino);
/* Remember that fino was answered as name in directory parent (lookup,
 * create, readdirplus), and give it back: 0, or -ENOENT (none known, or
 * longer than cap - 1). */
void us_core_note_name(struct us_core *core, uint64_t fino, uint64_t parent, const char *name);
int us_core_name_of(struct us_core *core, uint64_t fino, uint64_t *ret_parent, char *buf,
                    size_t cap);

/* ---- directories ---- */

/* One directory entry as the kernel should see it: mount crossings
 * applied (a directory on which a file group is mounted is that group's
 * root, with its attributes for readdirplus).  name points into the
 * answer and lives as long as the struct us_dir. */
struct us_dirent {
        uint64_t fino;
        uint64_t next;                  /* cookie of the entry after this one */
        uint32_t type;                  /* DT_* */
        const char *name;               /* NUL-terminated */
        bool dot;                       /* "." or "..": no lookup count */
        bool has_attr;                  /* readdirplus: st and generation */
        uint64_t generation;
        struct stat st;
};

struct us_dir {
        struct us_dirent *ents;
        size_t n;
        bool eof;
        char *names;                    /* storage of the names */
};

/* One READDIR answer of at most max_entries entries from cookie (0 = the
 * start).  Release ret with us_dir_release(). */
int us_core_readdir(struct us_core *core, struct us_ctx *ctx, uint64_t fino, uint64_t cookie,
                    size_t max_entries, bool plus, struct us_dir *ret);
void us_dir_release(struct us_dir *d);
int us_core_fsyncdir(struct us_core *core, struct us_ctx *ctx, uint64_t fino);
int us_core_statfs(struct us_core *core, struct us_ctx *ctx, uint64_t fino, struct statvfs *ret);

/* ---- extended attributes ---- */

int us_core_setxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                     const void *value, size_t size, int flags);
/* size 0: *ret_len = the value's size.  Else the value into buf (ERANGE if
 * it is longer than size). */
int us_core_getxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                     void *buf, size_t size, size_t *ret_len);
int us_core_listxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, void *buf,
                      size_t size, size_t *ret_len);
int us_core_removexattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino,
                        const char *name);

/* ---- coherence (us_watch.h, docs/coherence.md) ---- */

/* Where the CSS listens now (its port file read again): 0, -EHOSTUNREACH. */
int us_core_css_addr(struct us_core *core, struct us_site *ret);
/* A commit note about fino arrived: forget the attributes a commit of ours
 * answered for it and that it has no security.capability; true when the
 * kernel may cache it (its lookup count is not 0, or the root). */
bool us_core_note(struct us_core *core, uint64_t fino);
/* A batch of notes arrived: no statahead listing taken before may be used. */
void us_core_note_batch(struct us_core *core);
/* The inodes the kernel may cache of file group fg (0: every group),
 * malloc'ed into *ret (free it), with their cached attributes forgotten.
 * -ENOMEM. */
int us_core_known(struct us_core *core, uint32_t fg, uint64_t **ret, size_t *ret_n);

/* Observations for tests. */
struct us_core_stats {
        size_t nodes, sessions, handles;
};
void us_core_stats(struct us_core *core, struct us_core_stats *ret);
/* The session id fino's node holds (0 if none) and whether it commits. */
uint64_t us_core_session_of(struct us_core *core, uint64_t fino, bool *ret_committing);

#endif
