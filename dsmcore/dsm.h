/*
 * dsm.h -- libdsm, the LocusFS page store: transactions on pages over a
 * linear-segment log.
 *
 * A store is a directory of fixed-size segment files.  Pages (DSM_PAGE_SIZE
 * bytes) are addressed by <obj, page>: an object number chosen by the caller
 * (LocusFS uses inode numbers) and a page index within it.  A page that was
 * never written, or was freed, reads as zeros (a hole).
 *
 * Everything durable is in the segments: page data, commit records carrying
 * an opaque metadata payload from the caller, and checkpoints of the page
 * index together with a caller-supplied metadata image.  Opening a store
 * rebuilds the page index from the segments alone (from the newest
 * checkpoint on) and hands the caller every metadata payload it needs to
 * rebuild its own state.  The on-disk format is in man/locusfs-segments.5.
 *
 * Errors: every int function returns >= 0 on success and a negative errno
 * on failure.  Besides the usual ones:
 *   DSM_ECONFLICT  the transaction lost an optimistic-concurrency race (a
 *                  page it read was changed by a commit after it began); it
 *                  has been aborted and may be restarted.  Nothing else
 *                  returns this code.
 *   DSM_ECORRUPT   the page lies in a damaged part of the log (checksum
 *                  mismatch); its data is refused, never returned.
 *   -EIO, -ENOSPC  ... from the I/O layer.  After any failed write or flush
 *                  the store is in a sticky error state: every later call
 *                  that touches it returns that first error until the store
 *                  is closed and opened again (which runs recovery).
 *
 * Threads: a store may be used from any number of threads at once.  A
 * transaction belongs to the thread that uses it (no two threads may use
 * one transaction at once).  Commits from several threads share one flush
 * (group commit).
 */
#ifndef DSM_H
#define DSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSM_PAGE_SHIFT 12
#define DSM_PAGE_SIZE (1u << DSM_PAGE_SHIFT)

#define DSM_ECONFLICT (-EAGAIN)
#define DSM_ECORRUPT (-EBADMSG)

/* npages value meaning "from first_page to the end of the object". */
#define DSM_TO_END UINT64_MAX

/* Default and bounds for the segment size chosen at format time. */
#define DSM_SEGMENT_SIZE_DEFAULT (64u << 20)
#define DSM_SEGMENT_SIZE_MIN (256u << 10)
#define DSM_SEGMENT_SIZE_MAX (1u << 30)

struct dsm_store;
struct dsm_txn;
struct dsm_ckpt;

/*
 * The I/O seam.  Every byte the store reads or writes goes through these
 * operations, so that tests can inject faults (see dsm_faultio.h).  The
 * default table (dsm_posix_io) calls the system.  Each returns >= 0 or a
 * negative errno; pread/pwrite return the byte count, which may be short.
 * Paths are absolute or relative to the working directory.
 */
struct dsm_io {
        int (*open)(void *ctx, const char *path, int flags, mode_t mode);
        int (*close)(void *ctx, int fd);
        ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t off);
        ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, uint64_t off);
        int (*fdatasync)(void *ctx, int fd);
        int (*ftruncate)(void *ctx, int fd, uint64_t len);
        int (*fsize)(void *ctx, int fd, uint64_t *ret_size);
        int (*unlink)(void *ctx, const char *path);
        int (*mkdir)(void *ctx, const char *path, mode_t mode);
        /* Make the directory's entries (creates, unlinks) durable. */
        int (*syncdir)(void *ctx, const char *path);
        /* Call fn for every entry name in the directory (no "." or ".."). */
        int (*listdir)(void *ctx, const char *path,
                       int (*fn)(void *arg, const char *name), void *arg);
        /* Optional hint that fd will be read sequentially; may be NULL. */
        void (*advise_seq)(void *ctx, int fd);
        /* Optional: start reading [off, off+len) of fd in the background,
         * without waiting for it; may be NULL. */
        void (*prefetch)(void *ctx, int fd, uint64_t off, uint64_t len);
};

extern const struct dsm_io dsm_posix_io;

/* What recovery hands to the caller, in log order. */
enum dsm_replay_kind {
        /* A chunk of the metadata image of the checkpoint recovery starts
         * from (several calls for a large image, in order; seq is the
         * checkpoint's sequence number: it reflects every commit <= seq). */
        DSM_REPLAY_CHECKPOINT_META = 1,
        /* The metadata payload of one commit made after that checkpoint. */
        DSM_REPLAY_COMMIT = 2,
};

/* Return < 0 to stop recovery: dsm_open() then fails with that very error
 * (whatever it is, it is never taken for damage in the log).  data is
 * valid during the call. */
typedef int (*dsm_replay_fn)(void *ctx, enum dsm_replay_kind kind, uint64_t seq,
                             const void *data, size_t len);

/* Called by dsm_checkpoint() to write the caller's metadata image, with
 * dsm_ckpt_put() as many times as needed.  It must reflect exactly the
 * commits with sequence number <= seq (no commit runs meanwhile). */
typedef int (*dsm_ckpt_meta_fn)(void *ctx, uint64_t seq, struct dsm_ckpt *cp);

/* A damaged region found by recovery or a read. */
struct dsm_damage {
        uint64_t segno;
        uint64_t offset;
        uint64_t length;
};

typedef void (*dsm_damage_fn)(void *ctx, const struct dsm_damage *d, const char *what);

struct dsm_options {
        uint32_t segment_size;          /* dsm_format only; 0 = default */
        const struct dsm_io *io;        /* NULL = dsm_posix_io */
        void *io_ctx;
        /* Staged page data a transaction keeps in memory before it streams
         * it to the log (0 = 1 MiB).  Bounds a write session's memory. */
        uint32_t txn_buffer;
        dsm_replay_fn replay;           /* may be NULL */
        void *replay_ctx;
        dsm_ckpt_meta_fn ckpt_meta;     /* may be NULL: empty image */
        void *ckpt_ctx;
        dsm_damage_fn damage;           /* may be NULL */
        void *damage_ctx;
};

/* One changed range of pages: <obj, page .. page+npages-1>; npages may be
 * DSM_TO_END for a free to the end of the object. */
struct dsm_extent {
        uint64_t obj;
        uint64_t page;
        uint64_t npages;
};

/* The result of a commit.  changes is malloc'ed: release with
 * dsm_commit_release(). */
struct dsm_commit {
        uint64_t seq;
        struct dsm_extent *changes;
        size_t nchanges;
};

struct dsm_stats {
        uint64_t seq;                   /* last committed sequence number */
        uint64_t segments;              /* segment files in the store */
        uint64_t segment_size;
        uint64_t log_bytes;             /* bytes in all segment files */
        uint64_t live_bytes;            /* page data still referenced */
        uint64_t data_bytes_written;    /* page data appended since open */
        uint64_t meta_bytes_written;    /* log metadata appended since open: record
                                         * headers, descriptors, checkpoints */
        uint64_t payload_bytes_written; /* caller payloads appended since open */
        uint64_t index_extents;
        uint64_t flushes;               /* fdatasync calls since open */
        uint64_t commits;               /* commits since open */
        uint64_t damaged_extents;
        uint64_t recovery_bytes;        /* bytes read by the last recovery */
        uint64_t checkpoint_seq;        /* seq of the newest checkpoint */
        uint64_t checkpoints;           /* full checkpoints written since open */
        uint64_t delta_checkpoints;     /* delta checkpoints written since open */
        uint64_t checkpoint_chain;      /* deltas on top of the newest full one */
        uint64_t checkpoint_hold_max_us;        /* longest time a checkpoint or a
                                                 * cleaner pass held commits back,
                                                 * since open */
};

/* ---- store ---------------------------------------------------------- */

/* Create an empty store in dir (created if missing; must hold no segments).
 * Returns 0, -EEXIST if dir already holds a store, -EINVAL for a bad size. */
int dsm_format(const char *dir, const struct dsm_options *opt);

/* Open and recover a store: rebuild the page index from the newest
 * checkpoint and the log after it, cut a torn tail, report damage (through
 * opt->damage), and hand the caller the checkpoint image and every later
 * commit payload (through opt->replay) before returning.  What recovery
 * replayed is flushed before dsm_open() returns: after a crash of the
 * process alone it may have reached only the page cache, and it counts as
 * durable from then on.  opt is copied.
 * Returns 0 and *ret_store, -ENOENT if there is no store, -EBADMSG if the
 * segments cannot be made sense of, or an I/O error. */
int dsm_open(const char *dir, const struct dsm_options *opt, struct dsm_store **ret_store);

/* Wait for outstanding flushes and release everything.  Accepts NULL.
 * No transaction may be open. */
void dsm_close(struct dsm_store *s);

/* Read the latest committed version of a page into buf (DSM_PAGE_SIZE
 * bytes).  Returns 1 if the page holds data, 0 for a hole (buf zeroed),
 * DSM_ECORRUPT, or an I/O error. */
int dsm_read(struct dsm_store *s, uint64_t obj, uint64_t page, void *buf);

/* Read npages pages from page into buf (npages * DSM_PAGE_SIZE bytes), the
 * latest committed versions: holes come back zeroed, and each run of pages
 * that lie together in the log is read with one read.  Returns 0,
 * DSM_ECORRUPT (some page is damaged: buf is then undefined), or an I/O
 * error. */
int dsm_read_pages(struct dsm_store *s, uint64_t obj, uint64_t page, uint64_t npages, void *buf);

/* Find the first page >= page of obj that holds data (DSM_SEEK_DATA) or is
 * a hole (DSM_SEEK_HOLE), in the latest committed state.  Returns 0 and
 * *ret_page, or -ENXIO if there is no data at or after page (SEEK_DATA).
 * Every object has an implicit hole after its last page. */
#define DSM_SEEK_DATA 3
#define DSM_SEEK_HOLE 4
int dsm_seek(struct dsm_store *s, uint64_t obj, uint64_t page, int whence, uint64_t *ret_page);

/* Write a full checkpoint: the page index and the caller's metadata image
 * (from opt->ckpt_meta), so that recovery reads only what comes after it.
 * Waits for running commits and holds new ones back meanwhile.  It starts
 * a new checkpoint chain (see dsm_checkpoint_delta). */
int dsm_checkpoint(struct dsm_store *s);

/* Write a delta checkpoint on top of the newest one: the index ranges
 * changed since it and the payloads of the commits made since it (handed
 * to opt->replay as DSM_REPLAY_COMMIT by recovery); no call to
 * opt->ckpt_meta.  Holds commits back only while it takes its snapshot
 * (a copy of the changed index ranges); they run while it writes and
 * flushes.  Returns 0 (also when nothing changed), -ESTALE if a delta is
 * not possible (no checkpoint yet, or the changes could not be tracked:
 * write a full one), or an I/O error. */
int dsm_checkpoint_delta(struct dsm_store *s);

/* Write a full checkpoint without the caller's live state and without
 * holding commits back (beyond a snapshot: a copy of the index): the
 * newest chain's image and payloads are read back from the log and handed
 * to replay() (DSM_REPLAY_CHECKPOINT_META chunks, then DSM_REPLAY_COMMIT,
 * exactly as recovery would), then image(ctx, seq, cp) must write, with
 * dsm_ckpt_put(), the image those make: every commit <= seq, the newest
 * checkpoint's seq.  Commits made meanwhile are carried as payloads.  The
 * result is a new base (the cleaner may reclaim before it).  Both
 * callbacks run on the calling thread; their errors are returned as is.
 * -ESTALE if there is no checkpoint to compact (write one with
 * dsm_checkpoint), or an I/O error. */
int dsm_checkpoint_compact(struct dsm_store *s, dsm_replay_fn replay, dsm_ckpt_meta_fn image, void *ctx);

/* Should the next checkpoint be a full one?  True when a delta is not
 * possible, or the chain is long (64 deltas) or big (its deltas hold more
 * bytes than the full checkpoint they build on, or a segment if more). */
bool dsm_checkpoint_full_due(struct dsm_store *s);

/* Append caller metadata to the checkpoint being written (only inside the
 * ckpt_meta callback). */
int dsm_ckpt_put(struct dsm_ckpt *cp, const void *buf, size_t len);

/* One pass of the cleaner: reclaim segments that hold no live pages, and
 * move the live pages out of segments whose live share is at most
 * max_live_pct percent, then reclaim those too.  Only segments wholly
 * before the newest full checkpoint are touched; a full checkpoint is
 * written first if that lets more be reclaimed (commits or deltas since
 * the last one).  Returns the number of segments reclaimed. */
int dsm_clean(struct dsm_store *s, unsigned max_live_pct);

/* The same, but it writes no checkpoint: only segments before the newest
 * full checkpoint are considered.  For callers that write their own
 * (dsm_checkpoint_compact) and keep committing meanwhile. */
int dsm_clean_base(struct dsm_store *s, unsigned max_live_pct);

void dsm_get_stats(struct dsm_store *s, struct dsm_stats *ret);

/* The store's sticky error (see the top of this file), or 0 if it has
 * none. */
int dsm_error(struct dsm_store *s);

/* ---- transactions ---------------------------------------------------- */

/* Begin a transaction whose snapshot is the latest commit.  Returns 0 and
 * *ret_txn, -ENOMEM, or the store's sticky error. */
int dsm_txn_begin(struct dsm_store *s, struct dsm_txn **ret_txn);

/* Read a page as of the snapshot, including this transaction's own writes.
 * Returns 1 (data) or 0 (hole, buf zeroed), DSM_ECONFLICT if the page was
 * changed by a commit after the snapshot (the transaction is then doomed:
 * commit will return DSM_ECONFLICT), DSM_ECORRUPT or an I/O error. */
int dsm_txn_read(struct dsm_txn *t, uint64_t obj, uint64_t page, void *buf);

/* Write len bytes at byte offset off within a page (off + len <=
 * DSM_PAGE_SIZE).  A partial write reads the old page first (and so joins
 * the read set); a whole-page write does not.  Staged data beyond the
 * transaction buffer is streamed to the log.  Errors poison the
 * transaction: commit then refuses with the same error. */
int dsm_txn_write(struct dsm_txn *t, uint64_t obj, uint64_t page, uint32_t off,
                  const void *buf, uint32_t len);

/* dsm_seek() as this transaction sees the object: its staged pages, its
 * frees, and otherwise the latest committed state.  Same returns. */
int dsm_txn_seek(struct dsm_txn *t, uint64_t obj, uint64_t page, int whence, uint64_t *ret_page);

/* How many pages of obj hold data as this transaction sees it. */
int dsm_txn_count_pages(struct dsm_txn *t, uint64_t obj, uint64_t *ret_pages);

/* Write npages whole pages from data (npages * DSM_PAGE_SIZE bytes).  The
 * same as a dsm_txn_write() per page, but a large run (>= 64 KiB) goes to
 * the log straight from the caller's memory, without being copied into
 * the transaction buffer.  data is not used after the call returns. */
int dsm_txn_write_pages(struct dsm_txn *t, uint64_t obj, uint64_t page, uint64_t npages, const void *data);

/* Free npages pages from first_page (DSM_TO_END: to the end of the object). */
int dsm_txn_free(struct dsm_txn *t, uint64_t obj, uint64_t first_page, uint64_t npages);

/* Commit: validate the read set (first committer wins), append the commit
 * record with meta (may be NULL/0, at most 16 MiB), make it visible to all
 * at once, and return once it is durable.  The transaction is freed in
 * every case.  Returns 0 and fills *ret (may be NULL), DSM_ECONFLICT,
 * the poisoning error, or the store's sticky error. */
int dsm_txn_commit(struct dsm_txn *t, const void *meta, size_t metalen, struct dsm_commit *ret);

/* Like dsm_txn_commit(), but returns as soon as the commit is appended
 * and visible, without waiting for the flush.  It then survives a crash of
 * the process (the data is in the kernel's page cache) but not yet a power
 * loss: it is durable once dsm_sync() or any later dsm_txn_commit() has
 * returned.  Commits are durable in order: a power loss keeps a prefix. */
int dsm_txn_commit_nosync(struct dsm_txn *t, const void *meta, size_t metalen, struct dsm_commit *ret);

/* Flush everything appended so far (group commit applies).  Returns 0 or
 * the store's sticky error. */
int dsm_sync(struct dsm_store *s);

/* Abandon a transaction: nothing it did becomes visible.  Accepts NULL. */
void dsm_txn_abort(struct dsm_txn *t);

void dsm_commit_release(struct dsm_commit *c);

/* ---- version vectors -------------------------------------------------- */

/*
 * A version vector maps site ids to update counters.  Entries are kept
 * sorted by site; absent sites count 0.  The struct owns its array.
 */
struct dsm_vv_entry {
        uint32_t site;
        uint64_t counter;
};

struct dsm_vv {
        struct dsm_vv_entry *e;
        uint32_t n;
        uint32_t cap;
};

enum dsm_vv_order {
        DSM_VV_EQUAL = 0,
        DSM_VV_DOMINATES = 1,   /* a has seen everything b has, and more */
        DSM_VV_DOMINATED = 2,   /* b has seen everything a has, and more */
        DSM_VV_CONCURRENT = 3,  /* each has seen updates the other has not */
};

#define DSM_VV_MAX_SITES 4096

void dsm_vv_init(struct dsm_vv *v);
void dsm_vv_free(struct dsm_vv *v);
int dsm_vv_copy(struct dsm_vv *dst, const struct dsm_vv *src);
uint64_t dsm_vv_get(const struct dsm_vv *v, uint32_t site);
/* Count one more update by site.  Returns 0, -ENOMEM, -E2BIG (too many
 * sites) or -EOVERFLOW. */
int dsm_vv_increment(struct dsm_vv *v, uint32_t site);
int dsm_vv_set(struct dsm_vv *v, uint32_t site, uint64_t counter);
enum dsm_vv_order dsm_vv_compare(const struct dsm_vv *a, const struct dsm_vv *b);
/* dst := element-wise maximum of dst and src. */
int dsm_vv_merge(struct dsm_vv *dst, const struct dsm_vv *src);
/* Encode into buf (at most cap bytes).  Returns the encoded length, or
 * -ENOBUFS if cap is too small (dsm_vv_encoded_size() tells the need). */
ssize_t dsm_vv_encode(const struct dsm_vv *v, void *buf, size_t cap);
size_t dsm_vv_encoded_size(const struct dsm_vv *v);
/* Decode; v must be initialised (its old contents are replaced).  Returns
 * the number of bytes consumed or -EBADMSG for malformed input (unsorted or
 * duplicate sites, truncation, too many sites). */
ssize_t dsm_vv_decode(struct dsm_vv *v, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
