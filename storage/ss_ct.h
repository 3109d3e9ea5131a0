/*
 * ss_ct.h -- one physical container of a file group: its segment log (a
 * dsmcore store, the source of truth) and its SQLite index, kept in step.
 *
 * Layout: DATA/fg-<id>/segments/ (dsm store; dsm object = inode number,
 * page = file page) and DATA/fg-<id>/meta.sqlite (ss_db.h).  Inode numbers
 * are (container << 40) | counter, counter from 2 (meta.next_ino); the
 * root directory is inode 1.
 *
 * Invariants (asserts and comments cite them as [C1] ...):
 *  [C1] Every metadata change is one changeset (ss_cs.h) carried as the
 *       payload of exactly one dsm commit, and reaches SQLite only through
 *       ss_cs_apply(): after the commit is appended (live) or when recovery
 *       hands it over (replay).  SQLite never holds a change the log lacks.
 *  [C2] meta.applied_seq is written in the same SQLite transaction as the
 *       rows of that commit, so SQLite is always "the log up to
 *       applied_seq".  On open, the log is replayed past it; commits at or
 *       below it are skipped.
 *  [C3] A checkpoint image (full checkpoints only) is written only when
 *       SQLite has applied exactly the commits up to the checkpoint's seq
 *       and has been made durable (WAL checkpointed after the log was
 *       flushed), so after any crash applied_seq >= the newest full
 *       checkpoint's seq, and the log alone (image + later commits)
 *       rebuilds SQLite.  A delta checkpoint carries no image: it holds the
 *       changesets of the commits it covers, which recovery hands over as
 *       commits [C1], so it needs nothing from SQLite and is written while
 *       the loop keeps serving the container (ss_ct_checkpoint_delta).  A
 *       compacted full checkpoint (ss_ct_checkpoint_compact) takes its
 *       image from the log (the previous chain), not from SQLite, so it too
 *       runs while the loop serves the container.
 *  [C4] If open finds SQLite ahead of the log (applied_seq > the log's
 *       last seq: a power loss kept SQLite pages the log lost), a gap in
 *       the commits it must replay, or an index that does not open (not a
 *       database, another schema), SQLite is thrown away and rebuilt from
 *       the log (ss_ct_open does it, logging why).
 *  [C5] ct->err is sticky: once a commit is in the log but could not be
 *       applied to SQLite, SQLite's disk failed under it (ss_db.h's error
 *       state: a failed write, fsync or WAL checkpoint), or the store
 *       failed, every mutation fails with it -- and the server answers
 *       every request of the container with it (ss_srv.c [S6]) -- until
 *       the container is reopened, which replays and repairs.
 *  [C6] Changesets are applied inside one open SQLite transaction (a
 *       batch), each in a savepoint; ss_ct_index_commit() commits the batch
 *       (the daemon does it before every log flush, before maintenance and
 *       at close).  Reads on the same connection see the batch.  A crash
 *       loses at most the batch, which [C2] replays from the log: SQLite
 *       costs one set of page writes per batch instead of one per change.
 *  [C7] While keeping is on (ss_ct_index_keep), a batch begun then keeps
 *       a copy of every changeset applied in it, with its seq, in order
 *       (kept_ok; a copy that cannot be made -- out of memory, past
 *       SS_CT_KEEP_MAX bytes -- makes the batch not kept, never a partial
 *       list).  ss_ct_index_restart() rolls such a batch back and applies
 *       the same changesets again, in one step on the loop thread, on a
 *       fresh SQLite snapshot: readers see the batch before and after,
 *       never between.  It does so only when a checkpoint has copied
 *       every frame committed (ss_db.h [W2]), so the batch's first write
 *       restarts the WAL.  A failure there rolls the batch back and
 *       enters [C5] (the log has every commit; reopening replays them):
 *       SQLite never holds part of the batch.
 *
 * State diagram of a container:
 *   absent --ss_ct_create--> open --ss_mut_commit fails [C5]--> failed
 *   open/failed --ss_ct_close--> closed --ss_ct_open--> open
 *   closed --ss_ct_rebuild--> closed (SQLite rebuilt from the segments)
 *
 * Ownership: struct ss_ct owns its store, its SQLite connection and its
 * folder path; the caller owns the struct from open/create to
 * ss_ct_close().  A struct ss_mut owns its changeset and, if it began it,
 * its transaction, until ss_mut_commit() or ss_mut_abort().
 *
 * Threads: a container is used by one thread at a time (the daemon's loop
 * thread; or a work-queue thread for ss_ct_sync, ss_ct_checkpoint,
 * ss_ct_clean, ss_ct_wal_checkpoint while the loop keeps its hands off the
 * container -- except ss_ct_sync, ss_ct_wal_checkpoint_passive, ss_ct_checkpoint_delta,
 * ss_ct_checkpoint_compact and ss_ct_clean_base, which touch only dsmcore
 * (and SQLite connections of their own) and may run concurrently with
 * anything).
 *
 * Errors: negative errno; DSM_ECONFLICT (-EAGAIN) from ss_mut_commit when
 * the transaction lost a race; -EEXIST (create: the container exists);
 * -ENOENT (open: no container); -EBADMSG (the log or a changeset cannot be
 * made sense of); -EIO (SQLite); store errors (dsm.h).
 */
#ifndef SS_CT_H
#define SS_CT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsm.h"
#include "ss_cs.h"
#include "ss_db.h"

#define SS_ROOT_INO 1u
#define SS_INO_SHIFT 40
#define SS_INO_COUNTER_MAX ((1ull << SS_INO_SHIFT) - 1)
#define SS_CONTAINER_MAX 255u           /* inode numbers fit in 48 bits */
#define SS_BLK_CACHE 4096u

/*
 * The change stream (docs/replication.md): after each live commit is
 * applied to SQLite (never during replay), the container calls its
 * listener with the commit's seq and one change per inode the commit
 * touched: its row put (gone false) or deleted (gone true, a deletion
 * record), vv the vector the row now has (vvlen 0: the row was not put,
 * only pages changed), and the page extents the commit changed of it
 * (first_page, npages; npages DSM_TO_END: freed to the end of the file),
 * in commit order.  Everything handed over is valid during the call only.
 * The listener runs on the committing (loop) thread, must not use the
 * container's mutations, and cannot fail the commit.  Out of memory loses
 * a notice (logged); the same changes are read back with ss_db_changes()
 * (lseq > a watermark; the last lseq is ct->seq).
 */
struct ss_ct_extent {
        uint64_t first_page;
        uint64_t npages;
};

struct ss_ct_change {
        uint64_t ino;
        bool gone;
        const uint8_t *vv;
        size_t vvlen;
        const struct ss_ct_extent *ext;
        size_t next;
};

typedef void (*ss_ct_listener_fn)(void *ctx, uint64_t seq, const struct ss_ct_change *changes, size_t n);

struct ss_ct_opts {
        uint32_t segment_size;          /* creation only; 0 = dsm default */
};

struct ss_blk {
        uint64_t ino;
        uint64_t pages;
        bool valid;
};

struct ss_ct {
        uint32_t fg;
        char *dir;                      /* DATA/fg-<id> */
        struct dsm_store *store;
        struct ss_db *db;
        uint64_t container;
        uint64_t next_ino;              /* counter part */
        uint64_t next_dirent;
        uint64_t ninodes;
        uint64_t seq;                   /* last commit applied (= applied_seq):
                                         * also the last lseq (ss_db.h) */
        int err;                        /* [C5] */
        bool batch_open;                /* a SQLite write transaction is open [C6] */
        bool keep;                      /* [C7]: batches begun now are kept */
        bool kept_ok;                   /* [C7]: kept holds the open batch's changesets */
        uint8_t *kept;                  /* [C7]: (seq u64, len u32, changeset) records */
        size_t kept_len, kept_cap;
        unsigned kept_n;
        ss_ct_listener_fn listener;     /* the change stream, or NULL */
        void *listener_ctx;

        /* recovery (only during open) */
        int img_state;
        struct ss_cs_image img;
        bool strict;                    /* a gap is an inconsistency [C4] */
        bool inconsistent;
        uint64_t gaps;

        struct ss_blk blk[SS_BLK_CACHE];        /* data pages per inode */
};

/* Cookies one mutation may choose (ss_mut_cookie): a rename with a
 * whiteout chooses two. */
#define SS_MUT_CLAIMS 4

/* One mutation being prepared: its changeset and, once data is touched,
 * a transaction (its own, or a write session's). */
struct ss_mut {
        struct ss_cs cs;
        struct dsm_txn *txn;
        bool own_txn;
        uint64_t next_ino;
        uint64_t next_dirent;
        int64_t d_inodes;
        struct ss_cs_claim claims[SS_MUT_CLAIMS];
        size_t nclaims;
};

/* Names of the container folders in data_dir, sorted (malloc'ed array).
 * Leftovers of an interrupted creation (.fg-N.tmp) or deletion
 * (.fg-N.drop) are removed. */
int ss_ct_list(const char *data_dir, uint32_t **ret_fgs, size_t *ret_n);

/*
 * Delete the (closed) container of fg in data_dir: its folder is renamed
 * to .fg-N.drop (atomic: from then on it is no container; durable before
 * the files go), then removed with everything in it.  What an interrupted
 * deletion left is removed too.  Returns 1 when a container was deleted,
 * 0 when there was none; -errno of rename/fsync, -ENOMEM.
 */
int ss_ct_destroy(const char *data_dir, uint32_t fg);

/* Open an existing container: recover the log, bring SQLite up to it
 * (rebuilding SQLite if [C4]), free orphans left over ("the SS frees
 * orphans at its start") if free_orphans. */
int ss_ct_open(const char *data_dir, uint32_t fg, bool free_orphans, struct ss_ct **ret_ct);

/* Create a container with its root directory (inode 1, mode 040755, uid
 * and gid 0) and a first full checkpoint (the base later ones are
 * compacted from), atomically (a temporary folder renamed into place once
 * both are flushed), and open it. */
int ss_ct_create(const char *data_dir, uint32_t fg, uint64_t container, const struct ss_ct_opts *o,
                 struct ss_ct **ret_ct);

/* Flush the log and close.  Accepts NULL.  No transaction may be open. */
void ss_ct_close(struct ss_ct *ct);

/*
 * Offline: throw meta.sqlite away and rebuild it from the segments alone.
 * The old file is kept as meta.sqlite.bak until the new one is complete,
 * and put back on failure.  *ret_rows (may be NULL) gets the inode count.
 */
int ss_ct_rebuild(const char *data_dir, uint32_t fg, uint64_t *ret_inodes);

/* ---- mutations (loop thread) ---- */

/* txn: a write session's transaction to commit with, or NULL (one is
 * begun when ss_mut_txn() is first called). */
void ss_mut_init(struct ss_ct *ct, struct ss_mut *m, struct dsm_txn *txn);
int ss_mut_txn(struct ss_ct *ct, struct ss_mut *m, struct dsm_txn **ret_txn);
/* Allocate an inode number / a dirent id from the container's pool,
 * (container << 40) | counter (recorded in the changeset); -ENOSPC when
 * the counter is exhausted. */
int ss_mut_alloc_ino(struct ss_ct *ct, struct ss_mut *m, uint64_t *ret_ino);
int ss_mut_alloc_dirent(struct ss_ct *ct, struct ss_mut *m, uint64_t *ret_id);
/* An id installed from another copy (an inode, a deletion record, a
 * directory entry): if it is from this container's pool, the pool moves
 * past it, so that a container made again at a site that held one before
 * (replicas remove, then add) never hands out an id twice. */
void ss_mut_saw_ino(struct ss_ct *ct, struct ss_mut *m, uint64_t ino);
void ss_mut_saw_dirent(struct ss_ct *ct, struct ss_mut *m, uint64_t id);
/* The READDIR cookie for entry except_id (0: a new one) named <parent,
 * name> (ss_cs_cookie), remembered so that the mutation's next choice
 * does not take it too.  -E2BIG after SS_MUT_CLAIMS choices, -EIO. */
int ss_mut_cookie(struct ss_ct *ct, struct ss_mut *m, uint64_t parent, const uint8_t *name, size_t namelen,
                  uint64_t except_id, uint64_t *ret_cookie);
/*
 * Identities in a mutation (docs/replication.md, "Identities").  Every
 * ss_cs_put_inode / ss_cs_del_inode into m->cs counts one update at this
 * site: the row's vector is incremented at the container id (m->cs.site,
 * which is the site id) by the builder, so a replay reproduces it.  An
 * installer of a copy pulled from another site puts the row with the
 * vector it was given and no increment, flag SS_CS_KEEPVV (in->vv,
 * in->vvlen: the peer's encoded vector), and deletes an inode with a
 * given deletion vector the same way: ss_cs_del_inode(&m->cs, ino, vv,
 * vvlen, SS_CS_KEEPVV), which also writes its deletion record.  A
 * deletion record with a given vector for an inode this copy never had is
 * written the same way (deleting a missing row is no error).
 */
/*
 * Commit: append the changeset with the transaction's pages, apply it to
 * SQLite [C1][C2].  The transaction is consumed in every case (also a
 * borrowed one).  *ret_seq (may be NULL) gets the commit's seq.
 */
int ss_mut_commit(struct ss_ct *ct, struct ss_mut *m, uint64_t *ret_seq);
/* Drop a mutation not committed (aborts its own transaction only). */
void ss_mut_abort(struct ss_ct *ct, struct ss_mut *m);

/* The store's sticky error (dsm.h), or 0: tells a failed transaction from
 * a failed store. */
int ss_ct_store_error(struct ss_ct *ct);

/* Pages of ino holding data (committed state), cached. */
int ss_ct_blocks(struct ss_ct *ct, uint64_t ino, uint64_t *ret_pages);

/* Set (fn non-NULL) or clear the change stream's listener (see above). */
void ss_ct_set_listener(struct ss_ct *ct, ss_ct_listener_fn fn, void *ctx);

/* Remove every orphan (nlink 0): its pages, xattrs and inode (leaving its
 * deletion record). */
int ss_ct_free_orphans(struct ss_ct *ct);

/* ---- maintenance (work-queue thread, container parked) ---- */

/* Commit the SQLite transaction that batches the changesets applied since
 * the last call [C6] (no disk flush: SQLite is an index of the log).  The
 * loop calls it before each log flush, before maintenance and at close. */
int ss_ct_index_commit(struct ss_ct *ct);
/*
 * [C7] Keeping the batch's changesets (loop thread).  on: commit the open
 * batch (ss_ct_index_commit) so that the next one is kept from its start,
 * and keep batches from now; off: stop, and free what was kept.  Returns
 * ss_ct_index_commit's result.
 */
#define SS_CT_KEEP_MAX (8u << 20)
int ss_ct_index_keep(struct ss_ct *ct, bool on);
/* Changesets the open batch kept (0 if it is not kept). */
unsigned ss_ct_index_kept(const struct ss_ct *ct);
/*
 * [C7] Restart SQLite's WAL without waiting (loop thread): if a
 * checkpoint has copied every frame committed (ss_db_wal_all_copied),
 * roll the open batch back and apply its kept changesets again on a fresh
 * snapshot, so that its first write (at the latest at the next
 * ss_ct_index_commit) restarts the WAL.  Returns 1 if the next write restarts the WAL (also
 * when no batch is open), 0 if not (frames left to copy, or the open
 * batch is not kept), -EIO (or ct->err) if the container is, or now is,
 * in its error state [C5].
 */
int ss_ct_index_restart(struct ss_ct *ct);
int ss_ct_sync(struct ss_ct *ct);
/* Flush the log, then copy what is left of SQLite's WAL into its file
 * (ss_db_wal_copy: the next write restarts the WAL). */
int ss_ct_wal_checkpoint(struct ss_ct *ct);
/* Checkpoint SQLite's WAL concurrently with the loop (any one work-queue
 * thread, container NOT parked; ss_db.h "WAL checkpoints"): passes of
 * snapshot, log flush, PASSIVE checkpoint, until a pass copied at most
 * SS_CT_WAL_LEFT frames (what the loop committed during the pass before:
 * about what is left) or after passes passes (at most SS_CT_WAL_PASSES);
 * *ret_copied the frames the last pass copied.  The loop thread must call
 * ss_db_wal_passive_end() afterwards. */
#define SS_CT_WAL_PASSES 8
#define SS_CT_WAL_LEFT 64u
int ss_ct_wal_checkpoint_passive(struct ss_ct *ct, unsigned passes, unsigned *ret_copied);
/* Flush, checkpoint the WAL, write a full dsm checkpoint [C3]. */
int ss_ct_checkpoint(struct ss_ct *ct);
/* Write a delta dsm checkpoint [C3] (any thread, concurrently with the
 * loop).  -ESTALE: a full one is needed first. */
int ss_ct_checkpoint_delta(struct ss_ct *ct);
/* Write a full dsm checkpoint built from the log alone (any thread,
 * concurrently with the loop): the chain's image and changesets are
 * applied to a private in-memory SQLite database, which is dumped as the
 * new image [C3].  Memory: that database (about the size of meta.sqlite).
 * -ESTALE: no chain to build from (use ss_ct_checkpoint). */
int ss_ct_checkpoint_compact(struct ss_ct *ct);
/* dsm_clean_base (any thread, concurrently with the loop). */
int ss_ct_clean_base(struct ss_ct *ct, unsigned max_live_pct, int *ret_n);
/* Should the next checkpoint be a full one (dsm_checkpoint_full_due)? */
bool ss_ct_checkpoint_full_due(struct ss_ct *ct);
/* Flush, checkpoint the WAL, run one cleaner pass; *ret_n segments reclaimed. */
int ss_ct_clean(struct ss_ct *ct, unsigned max_live_pct, int *ret_n);

#endif
