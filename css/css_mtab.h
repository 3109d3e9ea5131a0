/*
 * css_mtab.h -- the mount table of a current synchronization site: which
 * file group is mounted on which directory, persisted in
 * DIR/mounttab.sqlite.
 *
 * A mount record says: file group `fg` (its name, its synchronization
 * policy) is mounted on directory <parent_fg, parent_ino>, which is `path`
 * from the root of the name space.  The root file group (CSS_ROOT_FG = 1)
 * is mounted at "/" with parent <0, 0>; it always exists (created with the
 * table).  File group ids are handed out by css_mtab_reserve_fg(), which
 * makes the new high-water mark durable before it returns, so an id is
 * never given out twice, even if the process dies before the mount is
 * recorded.
 *
 * Invariants (checked by css_mtab_add, enforced again by SQLite UNIQUE
 * constraints):
 *   (1) fg ids, names and paths are unique;
 *   (2) at most one file group is mounted on a directory <parent_fg, parent_ino>;
 *   (3) the record of CSS_ROOT_FG exists, at "/", parent <0, 0>;
 *   (4) every recorded fg is below the next fg id (meta.next_fg).
 *
 * Durability: css_mtab_add() and css_mtab_reserve_fg() return once the
 * change is on disk (WAL, synchronous=FULL): reply only after they return.
 *
 * Ownership and lifetime: the table owns its records; a pointer from
 * css_mtab_at()/css_mtab_find*() stays valid until css_mtab_close() (records
 * are never removed or moved).
 *
 * Threads: one thread at a time (the CSS calls it from its loop thread).
 *
 * Errors (negative errno): -ENOMEM; -EIO for an SQLite failure (the text is
 * in css_mtab_errmsg()); -EEXIST (invariants 1/2 would break); -EINVAL (bad
 * argument: empty name, relative path, fg out of range); -ENOSPC (over
 * CSS_MAX_FGS file groups); -EBADMSG (the file holds a table this version
 * does not understand); open: errors of mkdir/open.
 */
#ifndef CSS_MTAB_H
#define CSS_MTAB_H

#include <stdint.h>
#include <stddef.h>

#define CSS_ROOT_FG 1u
/* Most file groups one CSS knows (one CSS_MOUNTTABLE answer carries them all). */
#define CSS_MAX_FGS 4096u
/* Highest file group id: a mount names a file to the kernel as fg << 48 | ino
 * (docs/protocol.md), so ids fit in 16 bits. */
#define CSS_FG_ID_MAX 0xffffu
/* Sites holding one file group. */
#define CSS_MAX_HOLDERS 256u

/* Synchronization policies of a file group (how CSS_OPEN treats
 * concurrent opens).  Only one so far. */
enum css_sync_policy {
        CSS_SYNC_SHARED = 0,            /* any number of readers and writers, every site */
};

struct css_mount {
        uint32_t fg;
        char *name;
        uint32_t parent_fg;
        uint64_t parent_ino;
        char *path;
        int64_t ctime;                  /* wall clock, seconds since the epoch */
        enum css_sync_policy policy;
        uint64_t *holders;              /* sites holding a complete container, ascending (docs/replication.md) */
        size_t nholders;
        uint64_t *adding;               /* sites being added (replicas add): pulling, never served; ascending */
        size_t nadding;
        unsigned sync_copies;           /* fsync durable on this many copies, >= 1 */
};

/* Where a site stands with a file group (docs/replication.md, "Adding and
 * removing copies"). */
enum css_holder_state {
        CSS_HOLDER_NONE = 0,            /* holds no copy the CSS knows of */
        CSS_HOLDER_ADDING = 1,          /* its copy is being made: it pulls, nobody reads it */
        CSS_HOLDER_FULL = 2,            /* a holder: may be primary, is pulled from */
};

struct css_mtab;

/* Open (creating if needed) dir/mounttab.sqlite; dir must exist.  On
 * failure errbuf (may be NULL) gets the cause in words. */
int css_mtab_open(const char *dir, struct css_mtab **ret, char *errbuf, size_t errcap);
/* NULL is fine. */
void css_mtab_close(struct css_mtab *m);

size_t css_mtab_count(const struct css_mtab *m);
/* Records in fg order; i < count. */
const struct css_mount *css_mtab_at(const struct css_mtab *m, size_t i);
const struct css_mount *css_mtab_find(const struct css_mtab *m, uint32_t fg);
const struct css_mount *css_mtab_find_name(const struct css_mtab *m, const char *name);
const struct css_mount *css_mtab_find_path(const struct css_mtab *m, const char *path);
/* The file group mounted on directory <fg, ino>, or NULL. */
const struct css_mount *css_mtab_find_on(const struct css_mtab *m, uint32_t fg, uint64_t ino);

/* Hand out the next file group id (durable before return); -ENOSPC after
 * CSS_FG_ID_MAX. */
int css_mtab_reserve_fg(struct css_mtab *m, uint32_t *ret_fg);
/* Record a mount (durable before return).  fg must have been reserved. */
int css_mtab_add(struct css_mtab *m, uint32_t fg, const char *name, uint32_t parent_fg,
                 uint64_t parent_ino, const char *path);

/*
 * Add sites (any order; 0, those already there and those being added are
 * skipped: a site being added becomes a holder only through
 * css_mtab_set_holder) to the holders of fg (durable before return).  Returns 1 when something was
 * added, 0 when nothing was new; -ENOENT (no such fg), -ENOSPC (over
 * CSS_MAX_HOLDERS), -EIO.  The record's holders array is replaced: a
 * pointer to the old one is invalid afterwards.
 */
int css_mtab_add_holders(struct css_mtab *m, uint32_t fg, const uint64_t *sites, size_t n);
/* Set fg's sync_copies (1..CSS_MAX_HOLDERS), on disk before it returns.
 * -ENOENT, -EINVAL, -EIO. */
int css_mtab_set_sync_copies(struct css_mtab *m, uint32_t fg, unsigned n);

/* Where site stands with the file group of r. */
enum css_holder_state css_mtab_holder_state(const struct css_mount *r, uint64_t site);
/*
 * Move site to state `to` for fg: it leaves the list it was in (holders or
 * adding) and joins the other one (none for CSS_HOLDER_NONE), in one
 * durable update.  Returns 1 when something changed, 0 when the site was
 * in that state already; -ENOENT (no such fg), -EINVAL (site 0, bad
 * state), -ENOSPC (over CSS_MAX_HOLDERS), -ENOMEM, -EIO.  The record's
 * arrays are replaced (pointers to the old ones are invalid).  Policy (the
 * last holder is never removed) is the caller's.
 */
int css_mtab_set_holder(struct css_mtab *m, uint32_t fg, uint64_t site, enum css_holder_state to);

/* The last SQLite error, for the log ("" if none).  Valid until the next call. */
const char *css_mtab_errmsg(const struct css_mtab *m);
/* The database file's path. */
const char *css_mtab_path(const struct css_mtab *m);

#endif
