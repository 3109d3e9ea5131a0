/*
 * dsm_faultio.h -- an in-memory, fault-injecting implementation of the
 * struct dsm_io seam, for tests only.
 *
 * It models a disk with a volatile write cache.  Every file has a durable
 * image and a volatile image.  pwrite/ftruncate change the volatile image
 * and are remembered as pending operations of that file; fdatasync makes
 * the file's volatile image durable.  Creating or unlinking a file changes
 * the volatile directory; syncdir makes the directory durable.
 *
 * Power loss (dsm_faultio_power_loss, or automatically through
 * dsm_faultio_crash_at) throws away everything not durable, except that,
 * to model a real disk, each pending write of a file may survive whole,
 * survive torn (a prefix cut at a 512-byte sector boundary), or vanish,
 * independently and in any order, chosen by the seeded generator.  After a
 * crash every call fails with -EIO until dsm_faultio_reboot(), which
 * invalidates every descriptor (the "machine" restarted) and leaves the
 * durable images as the files' contents.
 *
 * Faults: the Nth call (counted from the moment the fault is armed, 1 =
 * the next call) of one operation fails with a chosen errno, once or for
 * ever; a chosen pwrite is short (writes only a prefix and returns its
 * length).
 *
 * Paths are plain strings; directories exist once made by mkdir (the
 * parent of a file must exist).  Not thread-safe beyond a single internal
 * mutex around every call (enough for the store's own threads).
 */
#ifndef DSM_FAULTIO_H
#define DSM_FAULTIO_H

#include <stdbool.h>
#include <stdint.h>
#include "dsm.h"

enum dsm_fop {
        DSM_FOP_OPEN = 0,
        DSM_FOP_CLOSE,
        DSM_FOP_PREAD,
        DSM_FOP_PWRITE,
        DSM_FOP_FDATASYNC,
        DSM_FOP_FTRUNCATE,
        DSM_FOP_FSIZE,
        DSM_FOP_UNLINK,
        DSM_FOP_MKDIR,
        DSM_FOP_SYNCDIR,
        DSM_FOP_LISTDIR,
        DSM_FOP_COUNT
};

struct dsm_faultio;

/* The operations table; its ctx is a struct dsm_faultio *. */
extern const struct dsm_io dsm_faultio_ops;

struct dsm_faultio *dsm_faultio_new(uint64_t seed);
void dsm_faultio_free(struct dsm_faultio *f);

/* Fail the nth call of op (1 = the next one) with -err; if persist, that
 * call and every later call of op fail.  Replaces any fault armed on op. */
void dsm_faultio_fail(struct dsm_faultio *f, enum dsm_fop op, uint64_t nth, int err, bool persist);
/* Disarm every fault (crash state is not touched). */
void dsm_faultio_clear(struct dsm_faultio *f);

/* Make the nth pwrite (1 = next) write only `keep` bytes (less than asked)
 * and return keep. */
void dsm_faultio_short_write(struct dsm_faultio *f, uint64_t nth, size_t keep);

/* Lose power now (see above): torn = whether pending writes may survive
 * partially/out of order (false: all pending writes are simply lost). */
void dsm_faultio_power_loss(struct dsm_faultio *f, bool torn);

/* Lose power (torn) right before the nth call of op (1 = next) is carried
 * out; that call and all later ones return -EIO until reboot. */
void dsm_faultio_crash_at(struct dsm_faultio *f, enum dsm_fop op, uint64_t nth);
bool dsm_faultio_crashed(const struct dsm_faultio *f);
/* Restart the machine: clear crash state and faults, close every fd. */
void dsm_faultio_reboot(struct dsm_faultio *f);

/* How many calls of op were made since creation (failed ones included). */
uint64_t dsm_faultio_calls(const struct dsm_faultio *f, enum dsm_fop op);

/* Damage bytes [off, off+len) of a file in both images (xor with 0x5a).
 * Returns 0, -ENOENT, or -EINVAL if the range is past the end. */
int dsm_faultio_corrupt(struct dsm_faultio *f, const char *path, uint64_t off, size_t len);
/* Size of a file's volatile image; -ENOENT if there is none. */
int64_t dsm_faultio_size(struct dsm_faultio *f, const char *path);

#endif
