/*
 * css_otab.h -- the open table of a CSS: which using site has which file
 * open, and how (readers, writers), from CSS_OPEN until CSS_CLOSE.
 *
 * A record is keyed by <client site, fg, ino, connection>: the client site
 * is the site the mount proved in the handshake, the connection is the
 * CSS's serial number for the connection the open came on.  Counting per
 * connection lets the CSS release everything a mount had open when its
 * connection goes away (a killed mount leaks nothing); counting per site
 * is what the synchronization policy looks at (css_otab_get aggregates).
 *
 * A close is matched to a record of the same connection first; if there
 * is none (the mount reconnected since it opened the file), to a record of
 * the same site and file on another connection; else it is unmatched
 * (-ENOENT), which the CSS counts and otherwise ignores.
 *
 * Limits: CSS_MAX_OPENS records in all, CSS_MAX_CONN_OPENS per connection,
 * and at most UINT32_MAX opens of each kind in one record (-ENOSPC beyond).
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
#define CSS_MAX_CONN_OPENS (1u << 16)

struct css_otab;

struct css_otab_stats {
        uint64_t records;               /* <site, fg, ino, connection> records */
        uint64_t files;                 /* distinct <fg, ino> */
        uint64_t readers, writers;      /* sum of the counts */
};

int css_otab_new(struct css_otab **ret);
void css_otab_free(struct css_otab *t);

int css_otab_open(struct css_otab *t, uint64_t site, uint64_t conn, uint32_t fg, uint64_t ino,
                  bool write);
int css_otab_close(struct css_otab *t, uint64_t site, uint64_t conn, uint32_t fg, uint64_t ino,
                   bool write);
/* Release everything opened on conn; returns how many opens that was. */
uint64_t css_otab_drop_conn(struct css_otab *t, uint64_t conn);
/* Opens of <fg, ino> by site (site 0: by every site), summed over connections. */
void css_otab_get(const struct css_otab *t, uint64_t site, uint32_t fg, uint64_t ino,
                  uint32_t *ret_readers, uint32_t *ret_writers);
void css_otab_stats(const struct css_otab *t, struct css_otab_stats *ret);

#endif
