/*
 * ss_place.h -- copies policies (docs/replication.md, "Copies policies"):
 * where a regular file's DATA lives among the holders of its file group.
 *
 * Every holder keeps every inode row, directory and xattr; a policy only
 * restricts which holders keep a regular file's pages.  A policy is two
 * extended attributes:
 *   user.locus.copies  decimal N, 1 <= N <= SS_PLACE_MAX
 *   user.locus.sites   site ids, comma-separated ("1,3"), at most
 *                      SS_PLACE_MAX of them, each >= 1 (alone, without
 *                      copies: the home and the sites listed)
 * On a directory they are the policy of what is created inside (a mkdir
 * copies them: inheritance by copy, like default ACLs).  On a regular file
 * they are its resolved placement: copies = N and sites = the sites that
 * keep its data, in ascending order.  A regular file without
 * user.locus.sites keeps its data at every holder (no policy: the group
 * default).
 *
 * Rules:
 *  [L1] The group's HOME is its lowest-id holder; it keeps every file's
 *       data (the primary copy).  A placement of N is the home, then the
 *       first listed wishes that are holders, then holders by rotation from
 *       the inode number; N above the holders: every holder.
 *  [L2] A site keeps a regular file's data iff the file has no
 *       user.locus.sites or lists the site.  The rule is read from the
 *       file's replicated xattrs at each version, so it survives a rebuild
 *       of the index from the log; an install of a version that does not
 *       list this site keeps no pages (ss_repl.c), one that lists it brings
 *       them all (an install replaces every page).
 *  [L3] A site without a file's data never serves it: READ answers EIO,
 *       write opens and truncation EHOSTUNREACH, SS_FETCH marks its answer
 *       LP_FS_FETCH_NODATA (so the CSS never takes it for a current copy).
 *  [L4] A write (open for writing, truncation, fallocate) or any other
 *       update of the file's row (setattr, xattrs, rename, link; not
 *       unlink, whose deletion record every copy pulls) at such a site (an
 *       interim primary while the home is down) first fetches the data, so
 *       that it never makes a version the placed copies cannot pull: ss_place_guard queues the file with the replicator
 *       (ss_pull_materialize) and answers EHOSTUNREACH ("ask again"); the
 *       replicator takes the pages from a holder with the data at the same
 *       vector and installs them with SS_INSTALL MATERIALIZE (ss_repl.c
 *       [R5]), which also adds this site to the file's user.locus.sites:
 *       it keeps an extra copy from then on.  No such holder: EIO.
 *  [L5] A placement is resolved at the primary (a create, a policy set on
 *       a file); a primary that is not the home (failover) adds itself:
 *       the file it creates or re-places has its data there too, so it can
 *       be written at once and pulled from there.
 *
 * Threads: the parsers and the resolver are pure; ss_place_here,
 * ss_place_guard and ss_place_inherit run on the loop thread (they read the
 * container's index).  Errors: -EINVAL (a malformed value), SQLite's (-EIO,
 * -ENOMEM).
 */
#ifndef SS_PLACE_H
#define SS_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ss_ct.h"

#define SS_PLACE_COPIES "user.locus.copies"
#define SS_PLACE_SITES "user.locus.sites"
#define SS_PLACE_MAX 64u                /* copies, and sites listed */
#define SS_PLACE_TEXT_MAX (SS_PLACE_MAX * 21u)

struct ss_opctx;
struct ss_mut;
struct ss_inode;

/* Is name one of the two policy xattrs?  1 copies, 2 sites, 0 neither. */
int ss_place_name(const uint8_t *name, size_t namelen);
/* user.locus.copies: a decimal N in [1, SS_PLACE_MAX] (no sign, no
 * spaces; a trailing NUL or newline is accepted).  -EINVAL. */
int ss_place_parse_copies(const void *v, size_t len, unsigned *ret);
/* user.locus.sites: ids >= 1 separated by commas, at most cap of them
 * (duplicates dropped, order kept).  -EINVAL. */
int ss_place_parse_sites(const void *v, size_t len, uint64_t *out, size_t cap, size_t *ret_n);
/* [L1] Resolve a placement of n copies over holders (any order, nh >= 1)
 * for ino, preferring want (in order).  out (at least nh entries) gets the
 * sites, ascending; returns how many (< n when there are fewer holders). */
size_t ss_place_resolve(const uint64_t *holders, size_t nh, unsigned n, const uint64_t *want, size_t nwant,
                        uint64_t ino, uint64_t *out);
/* "1,3" into buf (cap >= SS_PLACE_TEXT_MAX); returns the length. */
size_t ss_place_format(const uint64_t *sites, size_t n, char *buf, size_t cap);

/* [L2] Does site keep the data of ino (a regular file) in ct?  1 yes, 0 no
 * (then where, if not NULL, gets the file's sites list as text), or an
 * error. */
int ss_place_here(struct ss_ct *ct, uint64_t ino, uint64_t site, char *where, size_t cap);
/* [L2] Does a pulled state list site in its user.locus.sites (true also
 * without one, and for other kinds than a regular file)? */
struct lp_rs_state;
bool ss_place_state_here(const struct lp_rs_state *st, uint64_t site);
/* [L3] For an operation on in's data at this site: 0 if the data is here
 * (or in is not a regular file), else err with x->msg saying where the data
 * is, logged (what: the operation).  err -EHOSTUNREACH (a write) also asks
 * for the data [L4]: -EHOSTUNREACH while it is fetched, -EIO once fetching
 * it failed (for SS_PULL_REPAIR_RETRY_MS). */
int ss_place_guard(struct ss_opctx *x, const struct ss_inode *in, int err, const char *what);

/* [L4] Into m: this site added to in's user.locus.sites and in put as an
 * update (its vector moves here).  0 or an error (x->msg set). */
int ss_place_add_here(struct ss_opctx *x, struct ss_mut *m, struct ss_inode *in);

/* Inheritance at creation (ss_ops_name.c): the policy that applies in
 * directory dir (its own xattrs, else its nearest ancestor's, up to the
 * group root) is put into m for the new inode in: a directory gets the
 * policy's xattrs as they are; a regular file its resolved placement
 * (holders: the group's, ascending; none known: this site alone).  Other
 * types and no policy: nothing.  0 or an error (x->msg set). */
int ss_place_inherit(struct ss_opctx *x, struct ss_mut *m, uint64_t dir, const struct ss_inode *in);
/* setxattr/removexattr of a policy xattr (kind: ss_place_name) on in: the
 * value is checked (-EINVAL, logged); on a regular file the placement is
 * resolved again and both xattrs put into m (remove: both removed: the
 * file's data goes back to every holder).  Returns 1 if it put the rows
 * itself (the caller then puts only the inode row), 0 if the caller
 * stores the xattr as usual, or an error. */
int ss_place_set(struct ss_opctx *x, struct ss_mut *m, const struct ss_inode *in, int kind, const void *v,
                 size_t len, bool remove);

#endif
