/*
 * us_mtab.h -- FUSE inode numbers and the mount table as the mount sees it.
 *
 * Inode numbers: a file is <fg, ino> (docs/protocol.md); the kernel knows
 * it as one 64-bit FUSE inode number fg << 48 | ino, except that <1, 1>
 * (the root of the root file group) is FUSE_ROOT_ID (1).  ino fits in 48
 * bits and fg in 16 (a file group id above 65535 cannot be mounted: such
 * entries are left out of the table, with a warning).  The mapping is
 * arithmetic, so nothing needs to be remembered to translate back.
 *
 * Mount table: a copy of the CSS's CSS_MOUNTTABLE answer: for each file
 * group, where it is mounted (<parent_fg, parent_ino>; the root file group
 * has parent_ino 0) and which storage site holds it.  "Crossing" a mount:
 * a directory <fg, X> on which fg' is mounted is shown as the root of fg'.
 * The table is replaced as a whole by us_mtab_set(); queries copy out what
 * they return.  Entries that make no sense (fg 0, fg mounted on itself, a
 * second fg on the same directory, a repeated fg) are dropped with a
 * warning; the first one wins.
 *
 * Ownership: the table owns copies of everything; callers own what the
 * queries copy out.
 *
 * Threads: every us_mtab_* function may be called from any thread (one
 * mutex; queries are binary searches).
 *
 * Errors: -ENOMEM; -ENOENT (fg unknown), -EOVERFLOW (cannot be mapped),
 * -ESTALE (a FUSE inode number we never handed out).
 */
#ifndef US_MTAB_H
#define US_MTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_fs.h"
#include "us_opt.h"

#define US_FG_SHIFT 48
#define US_INO_MASK ((UINT64_C(1) << US_FG_SHIFT) - 1)
#define US_FG_MAX 0xffffu
#define US_ROOT_FG 1u
#define US_FUSE_ROOT 1u

/* <fg, ino> -> FUSE inode number.  -EOVERFLOW if fg or ino do not fit. */
int us_ino_to_fuse(uint32_t fg, uint64_t ino, uint64_t *ret_fino);
/* FUSE inode number -> <fg, ino>.  -ESTALE for numbers never handed out. */
int us_ino_from_fuse(uint64_t fino, uint32_t *ret_fg, uint64_t *ret_ino);

/* Where a storage site (or the CSS) listens. */
struct us_site {
        uint64_t site;
        char host[US_HOST_MAX];
        uint16_t port;
};

struct us_mtab;

int us_mtab_new(struct us_mtab **ret);
void us_mtab_free(struct us_mtab *mt);

/* Replace the table with the n entries of a CSS answer. */
int us_mtab_set(struct us_mtab *mt, const struct lp_fs_mount *m, size_t n);

/* The storage site holding fg.  -ENOENT if fg is not in the table; a
 * known fg whose site has not registered yet (no host or port 0) gives
 * -EHOSTUNREACH. */
int us_mtab_site(struct us_mtab *mt, uint32_t fg, struct us_site *ret);
/* The file group mounted on directory <fg, ino>: 1 and *ret_fg, or 0. */
int us_mtab_mounted_on(struct us_mtab *mt, uint32_t fg, uint64_t ino, uint32_t *ret_fg);
/* Where fg is mounted: 0 and <*ret_pfg, *ret_pino>, or -ENOENT (also for
 * the root file group, which is mounted nowhere). */
int us_mtab_mountpoint(struct us_mtab *mt, uint32_t fg, uint32_t *ret_pfg,
                       uint64_t *ret_pino);
/* True if some file group is mounted on a directory of fg. */
bool us_mtab_has_mounts_in(struct us_mtab *mt, uint32_t fg);
/* Number of file groups in the table, and when it was last set
 * (cm_now_us(); 0 = never). */
size_t us_mtab_count(struct us_mtab *mt);
uint64_t us_mtab_set_at(struct us_mtab *mt);

#endif
