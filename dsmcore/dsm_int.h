/*
 * dsm_int.h -- libdsm internals shared by its .c files.  Nothing here is
 * part of the public interface (dsm.h).
 *
 * The store in one paragraph: the log is a sequence of segment files
 * seg-<segno>.log; a log address ("loc") is segno << 32 | byte offset.
 * Records are appended at the tail (dsm_log.c).  The page index
 * (struct dsm__emap, dsm_emap.c) maps <obj, page> ranges to the loc of
 * their data and the sequence number of the commit that wrote them.
 * Transactions (dsm_txn.c) stage pages in a buffer, stream them to the log
 * as DATA records when it fills, and commit with one COMMIT record.
 * Opening lives in dsm_store.c, recovery in dsm_recover.c, checkpoints in
 * dsm_ckpt.c, the cleaner in dsm_clean.c.
 *
 * Invariants (asserts cite them as [I1] ...):
 *  [I1] Extents of one object in an emap never overlap.
 *  [I2] The extent data of an index entry lies inside one record, so the
 *       loc of page p of extent e is e.loc + (p - e.page) * DSM_PAGE_SIZE.
 *  [I3] COMMIT records appear in the log in increasing seq order; a
 *       commit's seq is assigned under the exclusive index lock, and its
 *       record is appended before that lock is released.
 *  [I4] seg.live counts the page bytes of index entries in that segment;
 *       seg.pins counts page bytes staged there by open transactions.  The
 *       cleaner deletes only segments wholly before the newest checkpoint
 *       with pins == 0, after the relocation of their live data is durable.
 *  [I5] Every segment before the tail segment is fully flushed before the
 *       first byte is appended to a newer one; so only the last segment can
 *       have a torn tail.  `durable` never runs ahead of what was flushed,
 *       across a restart too: recovery flushes what it replayed before
 *       setting durable to the tail.
 *  [I6] Once s->err is set it is never cleared: every entry point returns it.
 *  [I7] The checkpoint chain: the newest checkpoint is a full one or a
 *       delta whose END names the previous one (prev), down to a full one
 *       (the base).  A delta holds, for every index range that changed
 *       since the previous checkpoint (s->dirty), that range cleared and
 *       its extents, and the payloads of every commit since it (s->pay).
 *       Its snapshot (seq, replay_from) is taken under rw exclusively;
 *       its records are written after, interleaved with later commits,
 *       which recovery replays from replay_from on.  Every record of the
 *       chain lies at or after chain_first (the base's first record), and
 *       the cleaner touches only segments before it.
 *
 * Lock order: s->ckpt_mtx (one checkpoint or cleaner pass at a time) ->
 * s->rw (index) -> s->log_mtx (tail, flush) -> s->seg_mtx (segment table).  Reads hold rw shared while they pread, so the cleaner
 * (rw exclusive) never closes a segment under a reader.
 */
#ifndef DSM_INT_H
#define DSM_INT_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <xxhash.h>

#include "dsm.h"

/* ---- on-disk format (see man/locusfs-segments.5) ---------------------- */

#define DSM__SEG_MAGIC "LOCUSSEG"
#define DSM__FORMAT_VERSION 1
#define DSM__SEG_HDR_SIZE 64
#define DSM__REC_MAGIC 0x4c52u          /* "RL" little-endian */
#define DSM__REC_HDR_SIZE 32

enum dsm__rec_type {
        DSM__REC_DATA = 1,              /* staged pages of an open transaction */
        DSM__REC_COMMIT = 2,            /* a commit: frees, refs, inline pages, payload */
        DSM__REC_RELOC = 3,             /* pages moved by the cleaner */
        DSM__REC_CKPT_INDEX = 4,        /* a chunk of the page index */
        DSM__REC_CKPT_META = 5,         /* a chunk of the caller's metadata image */
        DSM__REC_CKPT_END = 6,          /* closes a checkpoint */
        DSM__REC_CKPT_CLEAR = 7,        /* (delta) index ranges to clear first */
        DSM__REC_CKPT_COMMITS = 8,      /* (delta) payloads of the commits it covers */
};

/* CKPT_END kinds (the field is absent in stores written before deltas). */
#define DSM__CKPT_FULL 0u
#define DSM__CKPT_DELTA 1u

#define DSM__LOC(segno, off) (((uint64_t)(segno) << 32) | (uint64_t)(off))
#define DSM__LOC_SEG(loc) ((loc) >> 32)
#define DSM__LOC_OFF(loc) ((loc) & 0xffffffffu)

static inline uint32_t dsm__align8(uint32_t n) { return (n + 7u) & ~7u; }
static inline uint32_t dsm__csum(const void *p, size_t n) { return (uint32_t)XXH3_64bits(p, n); }

static inline void dsm__put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static inline void dsm__put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static inline void dsm__put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static inline uint16_t dsm__get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t dsm__get32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t dsm__get64(const uint8_t *p)
{
        return (uint64_t)dsm__get32(p) | (uint64_t)dsm__get32(p + 4) << 32;
}

/* A growable byte buffer for encoding record bodies. */
struct dsm__buf {
        uint8_t *p;
        size_t len;
        size_t cap;
        int err;                        /* sticky -ENOMEM */
};

void dsm__buf_reserve(struct dsm__buf *b, size_t more);
void dsm__buf_put(struct dsm__buf *b, const void *src, size_t n);
void dsm__buf_varint(struct dsm__buf *b, uint64_t v);
void dsm__buf_u32(struct dsm__buf *b, uint32_t v);
void dsm__buf_free(struct dsm__buf *b);

/* A bounds-checked reader over a record body.  err is set (and every later
 * get returns 0) on truncation or a malformed varint. */
struct dsm__rd {
        const uint8_t *p;
        size_t len;
        size_t pos;
        bool err;
};

uint64_t dsm__rd_varint(struct dsm__rd *r);
uint32_t dsm__rd_u32(struct dsm__rd *r);
const uint8_t *dsm__rd_bytes(struct dsm__rd *r, size_t n);

/* ---- extent map (dsm_emap.c) ------------------------------------------ */

#define DSM__F_DAMAGED 0x1u             /* data failed its checksum: refuse */
#define DSM__F_BUF 0x2u                 /* (write sets) loc is a buffer slot */

struct dsm__ext {
        uint64_t obj;
        uint64_t page;
        uint64_t loc;
        uint64_t seq;
        uint32_t npages;
        uint32_t flags;
};

/* Called with +pages when pages enter the map and -pages when they leave
 * it (overwritten or freed), with the loc of the first of them. */
typedef void (*dsm__account_fn)(void *ctx, const struct dsm__ext *e, uint64_t loc, int64_t pages);

struct dsm__leaf;

struct dsm__emap {
        struct dsm__leaf **leaves;
        size_t nleaves;
        size_t cap;
        size_t count;
        dsm__account_fn account;
        void *ctx;
};

struct dsm__pos {
        size_t li;
        uint32_t ei;
};

void dsm__emap_init(struct dsm__emap *m, dsm__account_fn account, void *ctx);
/* Free everything; with account set, first report every extent as leaving. */
void dsm__emap_clear(struct dsm__emap *m, bool account);
/* The extent containing <obj, page>, or NULL.  Valid until the next change. */
const struct dsm__ext *dsm__emap_find(const struct dsm__emap *m, uint64_t obj, uint64_t page);
/* The first extent of obj that ends after page (it may contain page).
 * Returns true and copies it to *ret, or false. */
bool dsm__emap_next(const struct dsm__emap *m, uint64_t obj, uint64_t page, struct dsm__ext *ret);
/* Insert e, replacing whatever overlapped it.  0 or -ENOMEM. */
int dsm__emap_insert(struct dsm__emap *m, const struct dsm__ext *e);
/* Remove pages [first, first + npages) of obj (npages may be DSM_TO_END). */
int dsm__emap_remove(struct dsm__emap *m, uint64_t obj, uint64_t first, uint64_t npages);
/* In-order iteration: for (p = first; get(p); advance(p)). */
struct dsm__pos dsm__emap_first(const struct dsm__emap *m);
struct dsm__ext *dsm__emap_get(const struct dsm__emap *m, struct dsm__pos p);
struct dsm__pos dsm__emap_advance(const struct dsm__emap *m, struct dsm__pos p);

/* A small open-addressing map from u64 to u64 (object -> seq of its last
 * free).  Key 0 is allowed. */
struct dsm__u64map {
        uint64_t *keys;
        uint64_t *vals;
        uint8_t *used;
        size_t cap;
        size_t n;
};

int dsm__u64map_put(struct dsm__u64map *m, uint64_t key, uint64_t val);
bool dsm__u64map_get(const struct dsm__u64map *m, uint64_t key, uint64_t *ret);
void dsm__u64map_free(struct dsm__u64map *m);

/* ---- the store ---------------------------------------------------------- */

struct dsm__seg {
        uint64_t segno;
        int fd;
        uint64_t size;                  /* bytes in use (end of last record) */
        uint64_t live;                  /* [I4] */
        uint64_t pins;                  /* [I4] */
};

struct dsm__damaged {
        uint64_t start;                 /* loc */
        uint64_t end;
};

struct dsm_store {
        char *dir;
        struct dsm_options opt;
        const struct dsm_io *io;
        void *ioctx;
        uint32_t segsize;
        uint32_t chunk;                 /* largest data record a txn writes */
        uint64_t store_id;

        /* checkpoints: written under ckpt_mtx and log_mtx, read under either */
        pthread_mutex_t ckpt_mtx;
        uint64_t ckpt_loc;              /* END record of the newest checkpoint, 0 none */
        uint64_t ckpt_first;            /* first record of that checkpoint */
        uint64_t ckpt_seq;
        uint64_t chain_first;           /* first record of the chain's base [I7] */
        uint64_t chain_len;             /* deltas since the base */
        uint64_t chain_bytes;           /* bytes of those deltas */
        uint64_t full_bytes;            /* bytes of the base */
        uint64_t ckpts_full, ckpts_delta;       /* written since open */
        uint64_t ckpt_hold_max;         /* longest stretch commits waited, us (atomic) */

        /* index: guarded by rw */
        pthread_rwlock_t rw;
        struct dsm__emap index;
        struct dsm__u64map freed;       /* obj -> seq of its last free */
        uint64_t seq;                   /* last commit */
        /* what changed since the newest checkpoint [I7], guarded by rw */
        struct dsm_extent *dirty;       /* index ranges whose mapping changed */
        size_t ndirty, capdirty;
        struct dsm__buf pay;            /* commit payloads: v seq, v len, bytes */
        bool track;                     /* record changes (not while loading) */
        bool need_full;                 /* dirty/pay incomplete: no delta possible */
        struct dsm__damaged *damaged;   /* damaged log ranges (recovery) */
        size_t ndamaged;
        uint64_t damaged_extents;

        /* log tail: guarded by log_mtx */
        pthread_mutex_t log_mtx;
        pthread_cond_t log_cond;
        uint64_t tail;                  /* loc where the next record goes */
        uint64_t durable;               /* everything before this loc is flushed */
        bool flushing;
        uint64_t next_txn;
        uint64_t active_txns;
        uint64_t flushes, commits;
        uint64_t data_written, meta_written, payload_written;
        uint64_t recovery_bytes;

        /* segment table: guarded by seg_mtx, sorted by segno */
        pthread_mutex_t seg_mtx;
        struct dsm__seg *segs;
        size_t nsegs, segcap;

        int err;                        /* [I6], written under log_mtx */
        int cb_err;                     /* a replay callback's error (recovery) */
};

/* dsm_log.c */
int dsm__seg_path(const struct dsm_store *s, uint64_t segno, char *buf, size_t len);
int dsm__seg_create(struct dsm_store *s, uint64_t segno, bool durable);
struct dsm__seg *dsm__seg_find(struct dsm_store *s, uint64_t segno);
void dsm__seg_account(void *ctx, const struct dsm__ext *e, uint64_t loc, int64_t pages);
void dsm__seg_pin(void *ctx, const struct dsm__ext *e, uint64_t loc, int64_t pages);
int dsm__seg_hdr_encode(const struct dsm_store *s, uint64_t segno, uint8_t *hdr);
int dsm__log_append(struct dsm_store *s, uint8_t type, uint64_t txn,
                    const void *meta, uint32_t mlen, uint32_t payload,
                    const struct iovec *iov, int iovcnt, uint64_t datalen, size_t room,
                    uint64_t *ret_loc, uint64_t *ret_end);
int dsm__log_sync(struct dsm_store *s, uint64_t upto);
int dsm__log_switch(struct dsm_store *s, bool durable);
int dsm__log_publish(struct dsm_store *s, uint64_t *ret_upto);
int dsm__pread_full(struct dsm_store *s, int fd, void *buf, size_t len, uint64_t off);
int dsm__read_loc(struct dsm_store *s, uint64_t loc, void *buf, size_t len);
int dsm__error(struct dsm_store *s);
void dsm__set_error(struct dsm_store *s, int err);
static inline uint32_t dsm__max_record(const struct dsm_store *s)
{
        return s->segsize - DSM__SEG_HDR_SIZE;
}

/* dsm_ckpt.c */
int dsm__checkpoint_locked(struct dsm_store *s);
void dsm__ckpt_dirty(struct dsm_store *s, uint64_t obj, uint64_t page, uint64_t npages);
void dsm__ckpt_payload(struct dsm_store *s, uint64_t seq, const void *meta, size_t len);
void dsm__ckpt_reset(struct dsm_store *s);
uint64_t dsm__now_us(void);
void dsm__held(struct dsm_store *s, uint64_t t0);

/* dsm_store.c */
/* Tell opt.damage about damage at <segno, off, len>. */
void dsm__report(struct dsm_store *s, uint64_t segno, uint64_t off, uint64_t len, const char *what);
int dsm__page_read_locked(struct dsm_store *s, const struct dsm__ext *e, uint64_t page, void *buf);

/* dsm_recover.c */
/* Recovery after dsm_open found the segments: s->segs holds the open
 * segments with sound headers, s->ckpt_loc the newest checkpoint (0:
 * none), s->chunk is set.  Loads the checkpoint, replays what follows,
 * flags lost pages, flushes what was replayed, and sets tail and durable.
 * -ECANCELED: the replay callback failed (s->cb_err). */
int dsm__recover(struct dsm_store *s);
int dsm__chain_read(struct dsm_store *s, dsm_replay_fn fn, void *ctx, uint64_t *ret_seq);
int dsm__apply_reloc(struct dsm_store *s, uint64_t obj, uint64_t page, uint64_t n, uint64_t seq,
                      uint64_t loc, bool bad);

#endif
