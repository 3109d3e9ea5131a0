/*
 * ss_db.h -- the SQLite index of one physical container (meta.sqlite).
 *
 * SQLite here is an INDEX of the container's segment log, never the source
 * of truth: every row reaches it through ss_cs_apply() (a live commit or a
 * replayed one), so it can be thrown away and rebuilt from the segments
 * (ss_ct_rebuild).  This module owns the schema, the connection and its
 * prepared statements, and offers row-level reads and writes; it knows
 * nothing about the log.
 *
 * Schema (version 2; created by ss_db_open when the file is new; a file
 * of another version does not open (-EIO), and ss_ct_open rebuilds it
 * from the log, ss_ct.h [C4]):
 *
 *   meta(key TEXT PRIMARY KEY, value INTEGER)       WITHOUT ROWID
 *        applied_seq  last log commit applied (written by ss_cs_apply only)
 *        fg, container, next_ino, next_dirent, inodes, schema
 *   inodes(ino INTEGER PRIMARY KEY, mode, nlink, uid, gid, rdev, size,
 *          atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec,
 *          ctime_nsec, generation, version, target BLOB, vv BLOB, lseq)
 *        target: the symlink target (NULL for other types).  An inode with
 *        nlink = 0 is an orphan (partial index inodes_orphans).
 *        vv: the row's version vector (dsm_vv_encode; an empty vector is
 *        the one byte 0x00), version: the sum of its counters (ss_cs.h
 *        computes both).  lseq: the local seq of the commit that last put
 *        the row (this container's change stream; index inodes_lseq).
 *   gone(ino INTEGER PRIMARY KEY, vv BLOB, lseq)
 *        deletion records: an inode row deleted, with the vector of its
 *        deletion and the local seq of that commit (index gone_lseq).  An
 *        ino is in inodes or in gone, never in both: putting an inode
 *        row removes its deletion record.
 *   dirents(id INTEGER PRIMARY KEY, parent, name BLOB, ino, type, cookie,
 *           UNIQUE(parent, name), UNIQUE(parent, cookie))
 *        id: from the container's pool (container << 40 | meta.next_dirent;
 *        rows written by schema 1 keep their small ids).  cookie: the
 *        READDIR cookie, in [SS_COOKIE_MIN, SS_COOKIE_END), chosen from
 *        the name when the row is made (ss_cs.h) and replicated with it;
 *        READDIR lists a directory in cookie order (the UNIQUE index).
 *        Index (ino) to find the one name of a directory (its parent).
 *   xattrs(ino, name BLOB, value BLOB, PRIMARY KEY(ino, name)) WITHOUT ROWID
 *
 * Settings: journal_mode=WAL, synchronous=NORMAL (a commit writes the WAL
 * but does not fsync it), normal (shared) locking, journal_size_limit
 * 64 MiB, automatic WAL checkpoints off: the storage daemon checkpoints the
 * WAL itself from its work queue, after the log is flushed, so the loop
 * thread never waits for a disk flush and SQLite never becomes durable
 * ahead of the log it indexes.
 *
 * WAL checkpoints.  Two kinds:
 *  - ss_db_wal_checkpoint (TRUNCATE) and ss_db_wal_copy (PASSIVE) on the
 *    main connection, idle (container parked): copy every frame; the first
 *    empties the WAL, after the second the next write restarts it.
 *  - the concurrent one (ss_db_wal_pin, ss_db_wal_passive): a PASSIVE
 *    checkpoint through a second connection of its own, on a work-queue
 *    thread, while the loop thread keeps committing on the main one (WAL
 *    readers and the writer never wait for a checkpointer).  It cannot
 *    empty the WAL; SQLite restarts the WAL from its start when a write
 *    transaction begins after a checkpoint copied every frame.
 *  [W1] A concurrent checkpoint copies only frames committed before its
 *       snapshot (a read transaction on a third connection, taken before
 *       the caller flushes the log, which holds SQLite's checkpointer
 *       back at that frame), so it never makes durable an index row whose
 *       log commit may not be.
 *  [W2] SQLite restarts the WAL (writes the next frame at its start, and
 *       cuts the file back to journal_size_limit at that commit) only in
 *       a write transaction whose read snapshot was taken while every
 *       committed frame was copied (wal.c: walTryBeginRead takes read
 *       lock 0 only if nBackfill == mxFrame; walRestartLog, at the first
 *       frame a transaction writes, restarts only under read lock 0 and
 *       only if it gets every other read lock, i.e. no other connection
 *       reads from the WAL).  A transaction that began before the last
 *       frames were copied never restarts it: ss_ct.h [C7] begins the
 *       batch again (ss_db_wal_all_copied says when).
 *
 * Ownership: struct ss_db owns the connection.  Rows returned through
 * structs are copies (names and targets are copied into the caller's
 * struct); pointers handed to callbacks are valid during the call only.
 *
 * Threads: one thread at a time (the storage daemon's loop thread, or a
 * work-queue thread while the container is parked; see ss_srv.c), except
 * ss_db_wal_pin, ss_db_wal_passive and ss_db_wal_unpin, which one
 * work-queue thread may call while another thread uses the rest.
 *
 * Errors: negative errno: -ENOENT (no such row), -EIO (SQLite failed; the
 * SQLite message is logged at LOG_DEBUG and kept for ss_db_errmsg()),
 * -ENOMEM, -EEXIST (a unique constraint, i.e. a caller bug or a corrupt
 * changeset).
 *
 * Sticky error (as SQLite's own pager and dsmcore's store): once SQLite
 * reports that the disk failed under it (SQLITE_IOERR but for NOMEM,
 * SQLITE_FULL, SQLITE_CORRUPT, SQLITE_NOTADB: a failed write, fsync,
 * truncate or WAL checkpoint), the connection is in its error state for
 * good: every later call but ss_db_rollback() and ss_db_close() fails with
 * -EIO without touching the disk (a failed fsync is never retried: the
 * kernel may have dropped the dirty pages), close does not checkpoint the
 * WAL, and ss_db_error() / ss_db_errmsg() say which call failed on which
 * file.  Only closing and reopening (which replays the segment log,
 * ss_ct.h [C2]) leaves it.  The files are opened through the ss_vfs.h shim,
 * the fault seam the tests use to fail those calls.
 */
#ifndef SS_DB_H
#define SS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SS_DB_SCHEMA 2
/* Bytes of an encoded version vector (dsm_vv_encode) an inode row holds:
 * at least 42 sites with any counters (12 bytes each at most), about 128
 * with counters below 2^14.  A vector that does not fit is -E2BIG. */
#define SS_VV_MAX 512u
/* READDIR cookies of entries: [SS_COOKIE_MIN, SS_COOKIE_END); 0, 1 and 2
 * are the start, '.' and '..'. */
#define SS_COOKIE_MIN 3ull
#define SS_COOKIE_END (1ull << 62)
#define SS_NAME_MAX 255u
#define SS_SYMLINK_MAX 4095u
#define SS_XATTR_NAME_MAX 255u
#define SS_XATTR_VALUE_MAX (64u << 10)
#define SS_META_KEY_MAX 32u

struct ss_time {
        int64_t sec;
        uint32_t nsec;
};

struct ss_inode {
        uint64_t ino;
        uint32_t mode;
        uint32_t nlink;
        uint32_t uid;
        uint32_t gid;
        uint64_t rdev;
        uint64_t size;
        struct ss_time atime, mtime, ctime;
        uint64_t generation;
        uint64_t version;               /* sum of vv's counters */
        uint64_t lseq;                  /* read only: set by ss_cs_apply */
        uint32_t vvlen;                 /* bytes in vv; 0 reads as empty */
        uint8_t vv[SS_VV_MAX];          /* encoded dsm_vv */
        uint32_t targetlen;             /* symlinks: bytes in target */
        uint8_t target[SS_SYMLINK_MAX + 1];
};

struct ss_dirent {
        uint64_t id;
        uint64_t parent;
        uint64_t ino;
        uint32_t type;                  /* DT_* */
        uint64_t cookie;                /* READDIR cookie, see the schema */
        uint32_t namelen;
        uint8_t name[SS_NAME_MAX + 1];  /* NUL-terminated for logs */
};

/* One entry of the change stream read back (ss_db_changes): an inode row
 * (gone false) or a deletion record (gone true).  vv points into the
 * statement's row: valid during the callback only. */
struct ss_change {
        uint64_t ino;
        uint64_t lseq;
        bool gone;
        const uint8_t *vv;
        size_t vvlen;
};

struct ss_db;

/* Open (creating the file and schema if needed).  -EIO if the file is not
 * a database of our schema. */
int ss_db_open(const char *path, struct ss_db **ret_db);
/* Close; the last close checkpoints the WAL into the database file.
 * Accepts NULL. */
void ss_db_close(struct ss_db *db);
/* The last SQLite message; in the error state, its cause instead. */
const char *ss_db_errmsg(struct ss_db *db);
/* 0, or -EIO in the error state, with *ret_cause (may be NULL) set to a
 * text naming the call and the file, valid until ss_db_close(). */
int ss_db_error(const struct ss_db *db, const char **ret_cause);

/* Transactions (BEGIN IMMEDIATE / COMMIT / ROLLBACK). */
int ss_db_begin(struct ss_db *db);
int ss_db_commit(struct ss_db *db);
/* A savepoint inside the open transaction (one changeset of a batch):
 * released, or rolled back to and released. */
int ss_db_savepoint(struct ss_db *db);
int ss_db_release(struct ss_db *db);
void ss_db_rollback_to(struct ss_db *db);
/* Roll the open transaction back, if any (also in the error state). */
void ss_db_rollback(struct ss_db *db);

/* Copy the WAL into the database file and truncate it (fsyncs both):
 * afterwards everything committed so far is durable.  Work-queue thread,
 * container parked (nothing else uses the connection meanwhile). */
int ss_db_wal_checkpoint(struct ss_db *db);
/* Copy every WAL frame into the database file (fsyncs both) without
 * emptying the WAL: the next write transaction restarts it from its start.
 * Same thread rule as ss_db_wal_checkpoint; costs only the frames no
 * concurrent checkpoint has copied yet. */
int ss_db_wal_copy(struct ss_db *db);
/* Frames in the WAL after the last commit (for scheduling). */
unsigned ss_db_wal_frames(const struct ss_db *db);
/* Of those, frames no checkpoint has copied yet (loop thread). */
unsigned ss_db_wal_unckpt(const struct ss_db *db);
/* Has a checkpoint copied every frame committed (and the WAL holds any)?
 * Then a write transaction begun now, while nothing else reads the WAL,
 * restarts the WAL from its start [W2].  Loop thread, after
 * ss_db_wal_passive_end(). */
bool ss_db_wal_all_copied(const struct ss_db *db);
/* How often the WAL restarted from its start (or was emptied) since open,
 * as seen at this connection's commits (statistics, tests). */
uint64_t ss_db_wal_restarts(const struct ss_db *db);

/* The concurrent checkpoint (see "WAL checkpoints" above): one job at a
 * time, on a work-queue thread, while the loop thread goes on using the
 * connection.  ss_db_wal_pin() takes the snapshot [W1] (the caller then
 * flushes the log), ss_db_wal_passive() copies the WAL frames of that
 * snapshot into the database file (fsyncing the WAL, then the file) and
 * drops the snapshot, *ret_backfilled (may be NULL) the number of WAL
 * frames copied so far, counted from the WAL's start (it drops when the
 * WAL has restarted); ss_db_wal_unpin() drops the
 * snapshot without a checkpoint.  They touch neither the connection nor
 * the error state: a failure (-EIO, any SQLite error: the disk's) is kept
 * for ss_db_wal_passive_end(), which the loop thread calls after the job:
 * it enters the error state then, and returns it (0 or -EIO). */
int ss_db_wal_pin(struct ss_db *db);
int ss_db_wal_passive(struct ss_db *db, unsigned *ret_backfilled);
void ss_db_wal_unpin(struct ss_db *db);
int ss_db_wal_passive_end(struct ss_db *db);

/* meta */
int ss_db_meta_get(struct ss_db *db, const char *key, uint64_t *ret);
int ss_db_meta_put(struct ss_db *db, const char *key, uint64_t value);
int ss_db_meta_del(struct ss_db *db, const char *key);

/* inodes */
int ss_db_inode_get(struct ss_db *db, uint64_t ino, struct ss_inode *ret);
/* Upsert the row with in->lseq as is (ss_cs_apply sets it), and drop a
 * deletion record of in->ino. */
int ss_db_inode_put(struct ss_db *db, const struct ss_inode *in);
int ss_db_inode_del(struct ss_db *db, uint64_t ino);
int ss_db_inode_count(struct ss_db *db, uint64_t *ret);

/* Deletion records.  put: upsert gone(ino, vv, lseq); get: *ret_vv gets at
 * most SS_VV_MAX bytes (the buffer must hold them), -ENOENT if none. */
int ss_db_gone_put(struct ss_db *db, uint64_t ino, const uint8_t *vv, size_t vvlen, uint64_t lseq);
int ss_db_gone_get(struct ss_db *db, uint64_t ino, uint8_t *ret_vv, size_t *ret_vvlen, uint64_t *ret_lseq);

/*
 * The change stream read back: the inode rows and deletion records with
 * lseq > since, in lseq order (an inode row before a deletion record of
 * the same lseq; rows of one lseq by ino), at most max (0: no limit).
 * fn returns < 0 to stop with that error, 1 to stop early.  Returns the
 * number of changes delivered, or an error.  A row changed again after a
 * reader passed it shows up again, at its new lseq: a reader that keeps
 * the lseq of the last change it consumed (its watermark) and asks again
 * from there misses nothing.  The last lseq there is: the container's
 * seq (meta applied_seq, ss_ct seq).
 */
int ss_db_changes(struct ss_db *db, uint64_t since, unsigned max,
                  int (*fn)(void *ctx, const struct ss_change *c), void *ctx);

/* dirents */
int ss_db_lookup(struct ss_db *db, uint64_t parent, const uint8_t *name, size_t namelen,
                 struct ss_dirent *ret);
int ss_db_dirent_get(struct ss_db *db, uint64_t id, struct ss_dirent *ret);
int ss_db_dirent_put(struct ss_db *db, const struct ss_dirent *d);
int ss_db_dirent_del(struct ss_db *db, uint64_t id);
/* The entry naming directory ino (directories have exactly one name);
 * -ENOENT for a root or a removed directory. */
int ss_db_dir_entry(struct ss_db *db, uint64_t ino, struct ss_dirent *ret);
/* 1 if directory ino has no entries, 0 if it has. */
int ss_db_dir_empty(struct ss_db *db, uint64_t ino);
/* Is cookie taken by an entry of dir other than the one with id
 * except_id?  1 yes, 0 no. */
int ss_db_cookie_taken(struct ss_db *db, uint64_t dir, uint64_t cookie, uint64_t except_id);
/* Entries of dir with cookie > after in cookie order, at most max; fn
 * returns < 0 to stop with that error, 1 to stop early.  Returns the
 * number of entries delivered, or an error. */
int ss_db_readdir(struct ss_db *db, uint64_t dir, uint64_t after, unsigned max,
                  int (*fn)(void *ctx, const struct ss_dirent *d), void *ctx);
/* Is there any entry of dir with cookie > after?  1 yes, 0 no. */
int ss_db_readdir_more(struct ss_db *db, uint64_t dir, uint64_t after);

/* xattrs.  get copies at most cap bytes into buf and returns the full
 * length (so cap 0 asks for the size). */
int ss_db_xattr_get(struct ss_db *db, uint64_t ino, const uint8_t *name, size_t namelen,
                    void *buf, size_t cap, size_t *ret_len);
int ss_db_xattr_put(struct ss_db *db, uint64_t ino, const uint8_t *name, size_t namelen,
                    const void *value, size_t vlen);
int ss_db_xattr_del(struct ss_db *db, uint64_t ino, const uint8_t *name, size_t namelen);
/* Every xattr of ino, in name order. */
int ss_db_xattr_each(struct ss_db *db, uint64_t ino,
                     int (*fn)(void *ctx, const uint8_t *name, size_t namelen,
                               const void *value, size_t vlen),
                     void *ctx);

/* Orphans: inodes with nlink = 0, at most max, in ino order. */
int ss_db_orphans(struct ss_db *db, unsigned max, uint64_t *ret_inos, size_t *ret_n);

/* Full dumps in primary-key order (checkpoint images, tests). */
int ss_db_each_inode(struct ss_db *db, int (*fn)(void *ctx, const struct ss_inode *in), void *ctx);
int ss_db_each_dirent(struct ss_db *db, int (*fn)(void *ctx, const struct ss_dirent *d), void *ctx);
int ss_db_each_gone(struct ss_db *db,
                    int (*fn)(void *ctx, uint64_t ino, const uint8_t *vv, size_t vvlen, uint64_t lseq),
                    void *ctx);
int ss_db_each_xattr(struct ss_db *db,
                     int (*fn)(void *ctx, uint64_t ino, const uint8_t *name, size_t namelen,
                               const void *value, size_t vlen),
                     void *ctx);
int ss_db_each_meta(struct ss_db *db, int (*fn)(void *ctx, const char *key, uint64_t value),
                    void *ctx);
/* Remove every row of every table (loading a checkpoint image). */
int ss_db_clear(struct ss_db *db);

#endif
