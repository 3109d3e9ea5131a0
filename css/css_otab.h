/*
 * css_otab.h -- the open table of a CSS: which client has which file open,
 * and how (readers, writers), from CSS_OPEN (or CSS_OPENED after a create)
 * until CSS_CLOSE; and the orphan set: files that lost their last name
 * while someone held them open.
 *
 * A record is keyed by <site, client, fg, ino>: the site is the one the
 * peer proved in the handshake, the client is the peer's client id (a
 * mount names one in the handshake and keeps it across reconnections;
 * css.c uses the connection's serial for peers that name none).  Counting
 * per client lets the CSS release everything a mount had open once its
 * lease ran out (css_otab_drop_client), and keeps a mount's opens across
 * its reconnections; counting per site is what the synchronization policy
 * looks at (css_otab_get aggregates).  A close is matched to the record of
 * the same client and file, else it is unmatched (-ENOENT), which the CSS
 * counts and otherwise ignores (it may have restarted since the open).
 *
 * Orphans (docs/protocol.md, "Orphans"): css_otab_orphan_add() is told a
 * file has no name left.  If nobody holds it open it answers 1: free it
 * now.  Else the file is remembered, and the close or client drop that
 * removes its last record reports it (css_otab_close returns 1,
 * css_otab_drop_client calls freed): the caller then tells the storage
 * site to free it.  Each orphan is reported once.
 *
 * Limits: CSS_MAX_OPENS records in all, CSS_MAX_CLIENT_OPENS per client,
 * CSS_MAX_ORPHANS orphans held open, and at most UINT32_MAX opens of each
 * kind in one record (-ENOSPC beyond).
 *
 * Threads: one thread at a time (the CSS loop thread).
 * Errors: -ENOMEM, -ENOSPC, -ENOENT (close without an open).
 */
#ifndef CSS_OTAB_H
#define CSS_OTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSS_MAX_OPENS (1u << 20)
#define CSS_MAX_CLIENT_OPENS (1u << 16)
#define CSS_MAX_ORPHANS (1u << 20)
#define CSS_ORPHAN_BUCKETS 1024u

struct css_otab;

struct css_otab_stats {
        uint64_t records;               /* <site, client, fg, ino> records */
        uint64_t clients;               /* clients holding a record */
        uint64_t orphans;               /* orphans waiting for their last close */
        uint64_t files;                 /* distinct <fg, ino> */
        uint64_t readers, writers;      /* sum of the counts */
};

int css_otab_new(struct css_otab **ret);
void css_otab_free(struct css_otab *t);

int css_otab_open(struct css_otab *t, uint64_t site, uint64_t client, uint32_t fg, uint64_t ino,
                  bool write);
/* 0, 1 (that was the last open anywhere of an orphan: free it), -ENOENT. */
int css_otab_close(struct css_otab *t, uint64_t site, uint64_t client, uint32_t fg, uint64_t ino,
                   bool write);
/* Release everything client had open; returns how many opens that was.
 * freed (may be NULL) is called for each orphan nobody holds any more. */
uint64_t css_otab_drop_client(struct css_otab *t, uint64_t client,
                              void (*freed)(void *arg, uint32_t fg, uint64_t ino), void *arg);
/* <fg, ino> has no name left: 1 (nobody holds it: free it now), 0 (kept
 * until its last close), -ENOMEM, -ENOSPC. */
int css_otab_orphan_add(struct css_otab *t, uint32_t fg, uint64_t ino);
bool css_otab_is_orphan(struct css_otab *t, uint32_t fg, uint64_t ino);
/* Opens of <fg, ino> by site (site 0: by every site), summed over connections. */
void css_otab_get(const struct css_otab *t, uint64_t site, uint32_t fg, uint64_t ino,
                  uint32_t *ret_readers, uint32_t *ret_writers);
void css_otab_stats(const struct css_otab *t, struct css_otab_stats *ret);

#endif
