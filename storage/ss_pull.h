/*
 * ss_pull.h -- the replicator of a storage site (docs/replication.md,
 * "Propagation"): it keeps this site's containers in step with the other
 * holders of their file groups by pulling what they changed.
 *
 * A manager thread reads the mount table from the CSS every refresh
 * interval and, for every file group this site holds or is being added to
 * (replicas add), learns the other holders, where they listen, and the
 * group's sync_copies (a holder marked `adding` is never pulled from: its
 * copy is not complete).  One worker thread per <file group, peer site>
 * [P6] then loops:
 *   SS_CHANGES(peer, since = watermark, wait)  what the peer changed
 *                                        (the peer holds the request until
 *                                        it has a change, or wait_ms),
 *   SS_FETCH COMPARE (here)              which of those we must pull,
 *   SS_FETCH / READ (peer)               each such file's state and data,
 *   SS_INSTALL (here)                    one local commit per file,
 * then moves the watermark to where the peer's answer ends.  Installs go
 * through this site's own server like any request (the loop thread owns
 * the containers), so the replicator touches no container itself.
 *
 * [P1] The watermark of <fg, peer> moves only after every change it
 *      covers was installed or found not to need it: after a crash or an
 *      error the same changes are asked for again (installs are
 *      idempotent: a state not newer than ours is a no-op, ss_repl.c [R1]).
 * [P2] Watermarks are kept in DATA/fg-<id>/pull-<site> (written with a
 *      rename; not fsynced: a lost one only makes the next pass compare
 *      more files).  They are not commits, so keeping them never changes
 *      the change stream other sites read.  The file is written at most
 *      every SS_PULL_WM_SAVE_MS and when the worker ends, not after every
 *      pass (a create-per-pass stream made the rename cost more than the
 *      installs); after a crash the lag is compared again, harmlessly.
 * [P3] A big file's pages are read from the peer in pieces; afterwards its
 *      vector is asked again, and a file that changed meanwhile is pulled
 *      again (at most SS_PULL_RETRIES times in a pass), so an install never
 *      mixes two versions.  A directory whose state does not fit one
 *      message comes in pieces (ss_repl.c [R6]), staged in a local install
 *      session and committed with the last; a piece whose vector is not the
 *      first's means the directory changed: the pull starts over the same
 *      way.
 *
 * [P7] A peer that left the holders of a group and is listed again
 *      (replicas remove, then add) holds a new container: the watermark
 *      goes back to 0 and the peer is read from the start.  The same when
 *      its stream ends below the watermark (SS_CHANGES at eof with a seq
 *      < watermark), which also catches it across a restart of this
 *      daemon while the peer's new stream is still shorter.
 * [P8] Watermarks belong to this site's container: when it is deleted or
 *      made again (replicas remove, add), the links of its group forget
 *      theirs (ss_pull_forget_fg) and a new container starts from 0.
 * [P4] Catching up before serving as a primary: on_current(ctx) is called
 *      once, from a replicator thread, when every other holder listed in
 *      the mount table that is reachable has been pulled from up to what
 *      it had (a pass that reached the end of its stream), or at once if
 *      none is listed, or after SS_PULL_CATCHUP_MS in any case.  The
 *      storage daemon registers with the CSS only then, so a site that
 *      was away does not become the primary of a file group (the lowest
 *      registered holder) with copies older than the other holders'.
 *
 * [P9] Repair of damaged pages (docs/replication.md, "Repair"): a read
 *      that meets pages the log refuses calls ss_pull_repair() (any
 *      thread; it never waits on the network).  One repair thread takes
 *      the queued files one at a time and, for each other holder of the
 *      file group in turn, compares the holder's vector of the file with
 *      ours (SS_FETCH VV both sides); only a holder whose vector EQUALS
 *      ours is used: its state and data are fetched (inline, or staged
 *      piece by piece in a TRUNC install session and checked as in [P3])
 *      and installed with SS_INSTALL REPAIR, which rewrites every page
 *      of the file and checks the equality again on the loop thread
 *      (ss_repl.c [R4]).  The outcome is logged: NOTICE with <fg, ino>,
 *      the damaged pages and the site they came from, or ERR with why no
 *      copy served.  A file whose repair failed is not tried again for
 *      SS_PULL_REPAIR_RETRY_MS (reads of it answer EIO meanwhile).
 * [P5] sync_copies (docs/replication.md): when the group's sync_copies is
 *      over 1, a pass that installed anything asks this site's own server
 *      for SYNC of the container before it moves the watermark, so the
 *      next SS_CHANGES (since = the new watermark), which the peer counts
 *      as this site's acknowledgement, says "durable here".
 * [P6] Push, not polling: each <fg, peer> has its own thread and
 *      connections, so one group's parked SS_CHANGES never delays
 *      another's changes; a change reaches the worker as soon as the peer
 *      commits it.
 * [P10] Gathering: a pass pulls a changed directory whole (its state),
 *      so a stream of creates in one directory, pulled one commit per
 *      pass, cost each secondary a fetch and a compare of the whole
 *      directory per create (quadratic; profiled: the secondaries spent
 *      as much CPU as the primary).  After a pass that pulled changes and
 *      reached the end of the peer's stream, the worker waits gather_ms
 *      before it asks again, so that the next pass finds the commits made
 *      meanwhile and pulls such a directory once for all of them.  Not
 *      when the group's sync_copies is over 1 (an fsync waits for the
 *      pull), nor while a backlog is read (the stream did not end).
 *
 * Status (ss_pull_status_json, part of SS_STATUS): per <fg, peer>: the
 * watermark, the peer's last seq we know of, files pulled, the last error.
 *
 * Ownership: options are copied.  Threads: ss_pull_start/stop from one
 * thread; ss_pull_status_json from any.  Errors: -ENOMEM, -EINVAL,
 * pthread errors.
 */
#ifndef SS_PULL_H
#define SS_PULL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lp_key.h"

#define SS_PULL_RETRIES 3
#define SS_PULL_CHANGES 512u            /* changes asked for at once */
#define SS_PULL_WM_SAVE_MS 1000u        /* a link's watermark file is written at most this often [P2] */
#define SS_PULL_GATHER_MS 25u           /* [P10] */
#define SS_PULL_CATCHUP_MS 60000u       /* [P4] */
#define SS_PULL_REPAIRS 64u             /* [P9] files queued or failed at once */
#define SS_PULL_REPAIR_RETRY_MS 10000u  /* [P9] */

struct ss_pull_opts {
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        const char *data_dir;
        const char *self_host;          /* this site's storage server */
        uint16_t self_port;
        const char *css_host;           /* NULL: 127.0.0.1 (with a port file) */
        uint16_t css_port;
        const char *css_port_file;      /* read at every refresh; NULL: css_port */
        uint32_t refresh_ms;            /* mount table; 0 = 1000 */
        uint32_t poll_ms;               /* pause after an empty answer that did not wait; 0 = 50 */
        uint32_t wait_ms;               /* SS_CHANGES wait [P6]; 0 = 500; at most timeout_ms / 2 */
        uint32_t timeout_ms;            /* per call; 0 = 10000 */
        uint32_t gather_ms;             /* [P10]; 0 = SS_PULL_GATHER_MS, UINT32_MAX = none */
        void (*on_current)(void *ctx);  /* [P4]; may be NULL */
        void *ctx;
};

struct ss_pull;

int ss_pull_start(const struct ss_pull_opts *o, struct ss_pull **ret);
/* Ask the threads to stop, without waiting (they finish their current
 * call, bounded by timeout_ms).  Once it returns, on_current is never
 * called.  Accepts NULL. */
void ss_pull_signal(struct ss_pull *p);
/* Read the CSS's mount table now (the CSS said it changed: ss_reg.h), and
 * wake the workers waiting between passes or retries.  Any thread; NULL
 * is fine. */
void ss_pull_kick(struct ss_pull *p);
/* [P8] This site's container of fg was deleted or created (SS_FG_DROP,
 * SS_FG_CREATE): its watermarks, kept in the container's folder, are
 * read again from there (none in a new one), and a pass that was running
 * keeps nothing of what it did.  Any thread; accepts NULL. */
void ss_pull_forget_fg(struct ss_pull *p, uint32_t fg);
/* Stop, wait for the threads, free.  Accepts NULL.  Not from a thread
 * whose work a pending call waits for (the storage daemon's loop thread
 * while its server runs): the call would wait its whole timeout. */
void ss_pull_stop(struct ss_pull *p);
/* [P9] Ask for the repair of ino of file group fg, whose pages [first,
 * first + npages) were refused as damaged.  Returns 0 if a repair is
 * queued or under way (ask again later: the file reads well once it is
 * done), -ENOENT if no other holder of fg is known, -EIO if the last
 * repair of the file failed less than SS_PULL_REPAIR_RETRY_MS ago,
 * -EBUSY if SS_PULL_REPAIRS files are queued already.  Any thread; it
 * takes the replicator's lock only.  p NULL: -ENOENT. */
int ss_pull_repair(struct ss_pull *p, uint32_t fg, uint64_t ino, uint64_t first, uint64_t npages);
/* [P10] Copies policies (ss_place.h [L4]): a write at this site of ino of
 * fg, whose data is not placed here: fetch the data from a holder that
 * keeps it at the same vector (the repair thread, as [P9], installing with
 * SS_INSTALL MATERIALIZE).  Returns as ss_pull_repair: 0 queued or under
 * way, -ENOENT no other holder known, -EIO the last attempt failed less
 * than SS_PULL_REPAIR_RETRY_MS ago, -EBUSY the queue is full.  Any thread;
 * p NULL: -ENOENT. */
int ss_pull_materialize(struct ss_pull *p, uint32_t fg, uint64_t ino);
/* The sync_copies of file group fg in the latest mount table (1 if it
 * is not known, or p is NULL).  Any thread. */
unsigned ss_pull_sync_copies(struct ss_pull *p, uint32_t fg);
/* The holders of file group fg in the latest mount table (sites being
 * added left out), ascending, at most cap into out; returns how many (0
 * if fg is not known, or p is NULL).  Any thread. */
size_t ss_pull_holders(struct ss_pull *p, uint32_t fg, uint64_t *out, size_t cap);
/* The primary the last mount table names for fg, a group held here (0:
 * none registered); -ENOENT before the first table, or fg not in it, or p
 * NULL.  Any thread. */
int ss_pull_primary(struct ss_pull *p, uint32_t fg, uint64_t *ret_site);
/* A JSON array, one object per <fg, peer>. */
void ss_pull_status_json(struct ss_pull *p, FILE *m);

#endif
