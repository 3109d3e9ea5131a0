/*
 * us_sa.h -- statahead: answering lookups from a directory listing.
 *
 * A cold `stat` of many names in one directory costs a round trip to the
 * storage site per name.  When lookups in one directory keep missing
 * (US_SA_MISSES misses within US_SA_WINDOW_US, with no change sent by this
 * mount in between), the mount reads the
 * directory with attributes (READDIRPLUS) in a few requests and answers the
 * following lookups in it from that listing -- the technique of Lustre's
 * statahead and of NFS clients warming their cache with READDIRPLUS.
 *
 * Coherence: a listing is used for at most US_SA_TTL_US after it was
 * fetched (the kernel's own entry and attribute timeout), and not at all
 * once this mount has sent any change (us_sa_invalidate(), called before
 * and after every request that is not read-only).  A name the listing
 * lacks is never answered from it (no negative answers): the caller asks
 * the storage site.
 *
 * Ownership: struct us_sa owns its listing; attributes handed out are
 * copies.  Threads: every function may be called from any thread (one
 * internal mutex).  Errors: -ENOMEM.
 */
#ifndef US_SA_H
#define US_SA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_fs.h"

#define US_SA_MISSES 4u
#define US_SA_WINDOW_US 1000000u
#define US_SA_TTL_US 1000000u
#define US_SA_MAX_ENTRIES 65536u

struct us_sa;

int us_sa_new(struct us_sa **ret);
void us_sa_free(struct us_sa *sa);

enum us_sa_answer {
        US_SA_HIT = 1,          /* *ret_attr is the name's attributes */
        US_SA_MISS = 0,         /* ask the storage site */
        US_SA_FETCH = 2,        /* ask the storage site; the caller should also
                                 * fetch the listing (us_sa_fetch_begin done) */
};

/* Look name up in <fg, dir>'s listing at time now_us. */
enum us_sa_answer us_sa_lookup(struct us_sa *sa, uint32_t fg, uint64_t dir, const uint8_t *name,
                               size_t namelen, uint64_t now_us, struct lp_fs_attr *ret_attr);

/* A listing being gathered by the caller after US_SA_FETCH; entries come
 * in one or more batches, then us_sa_fetch_end() publishes them (ok) or
 * drops them.  The listing counts from the moment of us_sa_lookup() that
 * said FETCH, and is dropped if anything was invalidated meanwhile. */
int us_sa_fetch_add(struct us_sa *sa, const struct lp_fs_dirent *e, size_t n);
void us_sa_fetch_end(struct us_sa *sa, bool ok);

/* This mount changed something: no listing taken before now may be used. */
void us_sa_invalidate(struct us_sa *sa);

/* The current generation: it changes with every us_sa_invalidate(), so a
 * cached answer dated with it is good only while it is unchanged. */
uint64_t us_sa_generation(struct us_sa *sa);

#endif
