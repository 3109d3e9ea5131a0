/*
 * ss_note.h -- the storage site's queue of commit notes (docs/coherence.md):
 * the change stream of every container (ss_ct.h "The change stream")
 * turned into lp_note.h notes, coalesced until the registration link
 * (ss_reg.h) sends them to the CSS as one batch per loop turn.
 *
 * Coalescing: the changes of one inode by one client (the mount whose
 * request committed, 0 for none) that wait in the queue are one note: the
 * extents add up (beyond LP_NOTE_EXT_MAX the note says "all data"), the
 * version is the last one, GONE is the last commit's.  Changes by two
 * clients stay two notes, so that the CSS can spare each mount its own.
 *
 * Bound: at most max notes (and SS_NOTE_BYTES of extents) wait.  A change
 * that does not fit turns the whole queue into one LP_NOTE_GROUP note per
 * file group in it ("everything of group G may have changed"), and later
 * changes of such a group are covered by it until the queue is taken: a
 * create storm costs the mounts a wider invalidation, never a lost one.
 * ss_note_lost() queues such a note directly (a batch that could not be
 * sent).
 *
 * Ownership: the queue owns its memory; ss_note_take() hands a malloc'ed
 * batch to the caller.  Threads: one thread (the storage loop's).
 * Errors: -ENOMEM (a change that cannot be queued is turned into its
 * group's note, which needs no memory beyond a fixed array; only when that
 * is full as well is the change lost, and logged).
 */
#ifndef SS_NOTE_H
#define SS_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ss_ct.h"

#define SS_NOTE_MAX 4096u               /* notes waiting, default */
#define SS_NOTE_BYTES (1u << 20)        /* bytes of extents waiting */
#define SS_NOTE_GROUPS 256u             /* group notes waiting */

struct ss_note;

/* max 0: SS_NOTE_MAX (at most LP_NOTE_MAX). */
int ss_note_new(size_t max, struct ss_note **ret);
void ss_note_free(struct ss_note *q);

/* The changes of one live commit of file group fg, made for client. */
void ss_note_add(struct ss_note *q, uint32_t fg, uint64_t client, const struct ss_ct_change *ch, size_t n);
/* Everything of fg (0: of every group) may have changed: one group note. */
void ss_note_lost(struct ss_note *q, uint32_t fg);
/* Notes waiting (group notes included). */
size_t ss_note_count(const struct ss_note *q);

/* Encode what waits as one batch (lp_note.h), malloc'ed into *ret_buf,
 * and empty the queue; the file groups it named are remembered until the
 * next take, for ss_note_untake().  -ENOMEM (the queue is kept). */
int ss_note_take(struct ss_note *q, uint8_t **ret_buf, size_t *ret_len);
/* The batch last taken was not sent: a group note for each of its groups. */
void ss_note_untake(struct ss_note *q);

/* Counters: notes queued, coalesced into one waiting, and group notes
 * made by overflow. */
struct ss_note_stats {
        uint64_t added, merged, overflows, taken;
};
void ss_note_stats(const struct ss_note *q, struct ss_note_stats *ret);

#endif
