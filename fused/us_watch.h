/*
 * us_watch.h -- coherence in the mount (docs/coherence.md): one thread
 * holds a watch connection to the CSS (LP_FS_CSS_WATCH) and applies the
 * commit notes the CSS pushes (LP_FS_CSS_NOTE_INVAL, proto/lp_note.h) to
 * the kernel's caches, and the kernel's entry and attribute timeouts are
 * chosen here.
 *
 * A note about <fg, ino> (made by another mount: the CSS spares us our
 * own) invalidates, if the kernel may know the inode: the changed byte
 * ranges of its page cache (fuse_lowlevel_notify_inval_inode; attributes
 * only when no data changed; the whole cache for LP_NOTE_ALLDATA) and its
 * attributes; and every name this mount handed the kernel under it, if it
 * is a directory (us_dent.h, fuse_lowlevel_notify_inval_entry).  A group
 * note invalidates every inode and name of the group (fg 0: of every
 * group).  A mount table note (LP_FS_CSS_NOTE_MTAB: a group created, a
 * primary changed) makes the mount read the table at once and drop every
 * name it handed out (a name may have become a mount point).  The mount's
 * own caches go first (us_core_note: attributes a commit answered;
 * statahead listings), the kernel's after.  ENOENT from the kernel (not
 * cached) is ignored.
 *
 * Timeouts: the kernel gets the long ones (entry_timeout=, attr_timeout=)
 * only while the watch is up and no note was applied since the request
 * began (an epoch taken before the request, us_watch_epoch, compared when
 * the answer is made; a name is recorded before the comparison, so a note
 * applied afterwards finds it, and the kernel's own lock on the directory
 * orders the invalidation after the answer); otherwise at most the
 * defaults (US_ENTRY_TIMEOUT, US_ATTR_TIMEOUT), which need no note.
 *
 * Reconnection: when the connection breaks (no answer to a NOP within
 * US_WATCH_NOP_MS after US_WATCH_IDLE_MS of silence; the CSS restarted or
 * was cut off) the watch is down (short timeouts); it connects again with
 * backoff (100 ms doubling to 2 s), watches, and then invalidates
 * everything the kernel caches (it may have missed notes) before it is up.
 *
 * Deadlocks: notifications are made from the watch thread only, never
 * with a lock of the core or of us_dent held (a notification may wait for
 * a kernel lock that a request handler holds while it needs those).
 *
 * Ownership: struct us_watch is the caller's (us_mount.c), created before
 * the session and freed after us_watch_stop(); the key is copied.  Every
 * function accepts a NULL watch (no coherence: default timeouts).
 *
 * Threads: us_watch_start/stop from the main thread; the rest from any
 * thread.  Errors: -ENOMEM, pthread errors.
 */
#ifndef US_WATCH_H
#define US_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#include "lp_key.h"
#include "us_core.h"

#define US_WATCH_IDLE_MS 2000
#define US_WATCH_NOP_MS 3000
#define US_WATCH_CONNECT_MS 2000
#define US_WATCH_STOP_MS 1000
#define US_WATCH_SLICE_MS 250            /* the thread looks at its stop flag this often */

struct us_watch_opts {
        double entry_timeout;           /* seconds, while notes flow */
        double attr_timeout;
        double entry_default;           /* otherwise (at most these) */
        double attr_default;
        uint64_t site;                  /* ours, in the handshake */
};

struct us_watch;

int us_watch_new(struct us_core *core, const uint8_t key[LP_KEY_SIZE], const struct us_watch_opts *o,
                 struct us_watch **ret);
/* Start the thread, notifying through se. */
int us_watch_start(struct us_watch *w, struct fuse_session *se);
/* Stop the thread: no notification starts after this returns.  It is
 * joined within about US_WATCH_SLICE_MS, unless it is in a call to the CSS
 * or waits in the kernel for a lock that an unanswered request holds (the
 * session loop has ended): then, after US_WATCH_STOP_MS, it is left to
 * us_watch_join(), which the caller calls after fuse_session_unmount()
 * (the unmount aborts those requests) and before fuse_session_destroy(). */
void us_watch_stop(struct us_watch *w);
void us_watch_join(struct us_watch *w);
void us_watch_free(struct us_watch *w);

/* Before a request whose answer names an entry or attributes. */
uint64_t us_watch_epoch(struct us_watch *w);
/* The attribute timeout for an answer to a request begun at epoch. */
double us_watch_attr_timeout(struct us_watch *w, uint64_t epoch);
/* The entry timeout for parent/name answered to a request begun at epoch
 * (recorded while the watch is up, whatever the timeout, for the notes). */
double us_watch_entry_timeout(struct us_watch *w, uint64_t epoch, uint64_t parent, const char *name);

struct us_watch_stats {
        bool up;
        uint64_t connects;              /* watches accepted */
        uint64_t batches, notes;        /* received */
        uint64_t known;                 /* notes about inodes the kernel may cache */
        uint64_t inval_inode, inval_entry;      /* notifications made */
        uint64_t mtabs;                 /* mount table notes */
};
void us_watch_stats(struct us_watch *w, struct us_watch_stats *ret);

#endif
