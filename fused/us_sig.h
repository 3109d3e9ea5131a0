/*
 * us_sig.h -- does an interrupted FUSE request's caller want to be
 * interrupted?
 *
 * The kernel sends FUSE an INTERRUPT for any signal that reaches a task
 * waiting for the mount, stop signals included: Ctrl-Z (SIGTSTP) of a
 * `cp` waiting for a storage site that is down would make its read fail
 * with EINTR after SIGCONT, which no program expects of a stop.  So the
 * mount honours an INTERRUPT (answers EINTR) only when a signal pending for
 * the caller is one it takes: one it has a handler for, or one whose
 * default action ends it (SIGKILL, and what the kernel turned into it).
 * Stop signals, signals it ignores and signals ignored by default
 * (SIGCHLD, SIGCONT, SIGURG, SIGWINCH) are not an interruption: the call
 * goes on (bounded by the mount's timeout as always).  docs/mount.md,
 * "Interrupts".
 *
 * Threads: no state; any thread.  Errors: none (see each function).
 */
#ifndef US_SIG_H
#define US_SIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The masks of /proc/TID/status (bit n-1 = signal n): is any signal of
 * pend (SigPnd | ShdPnd), not blocked (blk), one the task takes? */
bool us_sig_interrupting(uint64_t pend, uint64_t blk, uint64_t ign, uint64_t cgt);

/* For thread tid (the caller of a FUSE request, fuse_ctx.pid): true if
 * us_sig_interrupting() says so of its pending signals, or if its status
 * cannot be read (it is gone or going: nobody waits for the answer). */
bool us_sig_interrupts(pid_t tid);

#endif
