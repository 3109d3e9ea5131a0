/*
 * ss_srv.h -- the storage site server: one single-threaded libuv loop that
 * serves the filesystem protocol (docs/protocol.md) for every container in
 * the data directory, flushes the logs in the background, runs
 * checkpoints and the cleaner, expires write sessions, and registers with
 * the CSS (ss_reg.h).
 *
 * Durability (docs/protocol.md, "Durability"): every mutation is appended
 * to the container's log (dsm_txn_commit_nosync) and applied to SQLite
 * before its answer, so it survives the crash of any process at once.  A
 * flush (dsm_sync) runs on the libuv work queue within flush_interval_ms
 * of a commit.  COMMIT with SYNC/DATASYNC and SYNC are answered only after
 * a flush that started after their commit completed.  The loop thread
 * never waits for a disk flush, with two exceptions inherited from
 * dsmcore: a commit that fills a segment flushes it before the next one
 * begins (once per segment), and shutdown.
 *
 * Maintenance: checkpoints, the cleaner and SQLite WAL checkpoints run on
 * the work queue.  A periodic checkpoint is a delta (dsm_checkpoint_delta:
 * it needs nothing from SQLite, ss_ct.h [C3]), or, when
 * dsm_checkpoint_full_due says so, a full one compacted from the chain
 * (ss_ct_checkpoint_compact) followed by the cleaner (dsm_clean_base); both
 * run while the container keeps being served.  SQLite's WAL is
 * checkpointed through a connection of its own while the container keeps
 * being served (ss_db.h "WAL checkpoints"), when wal_frames frames were
 * committed since the last one, or when the container had no commit for a
 * sweep and frames are left (so that the next write restarts the WAL).
 * Under commits that never pause, the WAL restarts only in a batch begun
 * after every frame was copied: once it holds SS_WAL_LIMIT / 2 times
 * wal_frames frames, a last pass runs with the index's batch held open,
 * and the batch is then applied again on a fresh snapshot (a few hundred
 * us to a few ms on the loop thread; ss_ct.h [C7]), so the WAL stays below
 * SS_WAL_LIMIT times wal_frames frames (64 MiB, SQLite's
 * journal_size_limit, by default); only past twice that (restarts
 * failing) is it copied parked.  A full checkpoint from SQLite
 * (dsm_checkpoint after a WAL checkpoint: the first one of a container,
 * and SS_CHECKPOINT), SS_CLEAN and that parked copy hold dsmcore's index
 * lock or use the SQLite connection, so while one runs the container is
 * *parked*: its requests wait in order in a bounded queue (-EAGAIN beyond
 * SS_PARK_MAX requests or SS_PARK_BYTES bytes) and run when it ends; other
 * containers are served meanwhile.  Triggers: at least ckpt_bytes of log
 * written since the last checkpoint, or ckpt_interval_ms with commits
 * since; SS_CHECKPOINT and SS_CLEAN.
 *
 * Sessions: at most max_sessions (ss_sess.h); a session unused for
 * idle_timeout_ms is aborted.  A session belongs to the client that opened
 * it: a mount, known by the client id it names in the handshake (lp_conn.h,
 * one per mount process, kept across its reconnections), or a daemon or
 * tool, known by its site id.  When every connection of a client has been
 * closed for client_grace_ms (the lease), its sessions are aborted
 * (nothing staged is committed).  Checked every sweep_ms.
 *
 * Orphans (inodes with no name left): without a CSS they are freed at
 * start.  With one, they are kept across restarts: the CSS asks for them
 * (SS_ORPHANS) when this site registers and frees each (FORGET_ORPHAN)
 * once no mount holds it open (css.h).
 *
 * Ownership: the caller owns the loop; ss_srv_new() copies the options.
 * After ss_srv_stop() the caller runs the loop until it returns, then
 * calls ss_srv_free().
 *
 * Threads: everything on the loop thread, except ss_srv_stop_async() (any
 * thread; not from a signal handler: use uv_signal for signals).
 *
 * On failure of ss_srv_new() *ret may still be set, to a server that is
 * already stopping (libuv handles must be closed by the loop): run the
 * loop until it returns, then ss_srv_free() it.
 *
 * Errors: ss_srv_new: -EINVAL (bad option, e.g. a site id outside
 * 1..255, which names the inode pool of this site's containers), errors of
 * opening or creating containers (ss_ct.h), of listening (lp_conn.h), of
 * starting the registration thread.
 */
#ifndef SS_SRV_H
#define SS_SRV_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "lp_key.h"

#define SS_MAX_FGS 256u
#define SS_PARK_MAX 65536u
#define SS_PARK_BYTES ((size_t)512 << 20)
#define SS_WAL_LIMIT 4u
#define SS_LEASE_MS_DEFAULT 30000u
#define SS_ORPHANS_MAX 4096u
/* Longest wait of a parked SS_CHANGES (its q->size, ms; [S8] in ss_srv_int.h). */
#define SS_CHANGES_WAIT_MAX_MS 30000u
/* How long a sync answer waits for sync_copies - 1 other holders before it
 * fails with EIO (docs/replication.md, "sync_copies"). */
#define SS_SYNC_COPIES_WAIT_MS 10000u

struct ss_opts {
        const char *data_dir;
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        const char *listen_host;        /* default 127.0.0.1 */
        uint16_t listen_port;           /* 0: any */
        uint32_t flush_interval_ms;     /* default 5 */
        uint32_t idle_timeout_ms;       /* default 600000 */
        uint32_t client_grace_ms;       /* the lease; default SS_LEASE_MS_DEFAULT */
        uint32_t sweep_ms;              /* default 1000 */
        unsigned max_sessions;          /* default 1024 */
        uint64_t ckpt_bytes;            /* default 64 MiB */
        uint32_t ckpt_interval_ms;      /* default 300000 */
        unsigned wal_frames;            /* default 4096 */
        unsigned clean_live_pct;        /* default 50 */
        uint64_t space_reserve;         /* default 64 MiB */
        uint32_t segment_size;          /* new containers; 0: dsmcore default */
        /* CSS registration (none if both are unset) */
        const char *css_host;
        uint16_t css_port;
        const char *css_port_file;
        uint32_t css_poll_ms;           /* default 1000 */
        /* Create the root file group (1) when the data directory holds no
         * container.  Default true here (in-process users); locus-storaged
         * sets it only with --create-root: the root group is created once
         * for the cluster (dev up, site init), not by every storaged. */
        bool create_root;
};

struct ss_srv;

/* Defaults for everything but data_dir, key and site. */
void ss_opts_default(struct ss_opts *o);

/*
 * Open (or create: file group 1 on first start, if o->create_root) every container of
 * o->data_dir, free leftover orphans if there is no CSS, listen, start
 * registering.  Blocks
 * while containers are recovered.
 */
int ss_srv_new(uv_loop_t *loop, const struct ss_opts *o, struct ss_srv **ret);
uint16_t ss_srv_port(const struct ss_srv *s);
/* Begin a clean shutdown (loop thread): stop accepting, abort sessions,
 * flush and close every container.  The loop returns when it is done. */
void ss_srv_stop(struct ss_srv *s);
/* The same from another thread. */
void ss_srv_stop_async(struct ss_srv *s);
/* 0, or the first error that made a container fail (for the exit code). */
int ss_srv_error(const struct ss_srv *s);
/* Free after the loop returned.  Accepts NULL. */
void ss_srv_free(struct ss_srv *s);

#endif
