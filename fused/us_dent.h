/*
 * us_dent.h -- the names this mount handed to the kernel while it watched
 * for commit notes (docs/coherence.md): <parent, name>, so that a note about
 * directory `parent` can invalidate each cached name under it
 * (fuse_lowlevel_notify_inval_entry needs the name; the storage site's
 * notes carry none).
 *
 * An entry is kept until its time is over (the kernel revalidates the
 * name then, and a new answer adds it again) or until it is taken.  At
 * most `max` entries: when full, us_dent_add() prunes entries whose time
 * is over (at most once a second: a pass looks at every entry) and
 * otherwise refuses (false), and the caller gives the kernel the short
 * default timeout instead, which needs no invalidation.
 *
 * Taking: us_dent_take() detaches the names of one directory (or of every
 * directory) under the lock and calls fn for each after releasing it:
 * fn may block in the kernel (a notification waits for the directory's
 * lock, which a FUSE request handler may hold while it calls
 * us_dent_add()).
 *
 * Ownership: the table copies names.  Threads: any thread (one mutex).
 * Errors: us_dent_new: -ENOMEM.
 */
#ifndef US_DENT_H
#define US_DENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define US_DENT_MAX (1u << 18)

struct us_dent;

int us_dent_new(size_t max, struct us_dent **ret);
void us_dent_free(struct us_dent *d);

/* The kernel holds parent/name until until_us (CLOCK_MONOTONIC, cm_now_us). */
bool us_dent_add(struct us_dent *d, uint64_t parent, const char *name, size_t len, uint64_t until_us);

typedef void (*us_dent_fn)(void *ctx, uint64_t parent, const char *name, size_t len);
/* Forget the names under parent and call fn for each (after unlocking);
 * the number of names. */
size_t us_dent_take(struct us_dent *d, uint64_t parent, us_dent_fn fn, void *ctx);
/* The same for every directory. */
size_t us_dent_take_all(struct us_dent *d, us_dent_fn fn, void *ctx);
size_t us_dent_count(struct us_dent *d);

#endif
