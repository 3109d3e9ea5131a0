/*
 * dsm_ckpt.c -- writing checkpoints: full ones and deltas [I7].
 *
 * Full (dsm__checkpoint_locked, with commits held back by the exclusive
 * index lock): the whole index as CKPT_INDEX records, the caller's image as
 * CKPT_META records, an END record (kind FULL) naming the first of them.
 * It becomes the base of a new chain.
 *
 * Delta (dsm_checkpoint_delta): under the exclusive lock, only long enough
 * to take a snapshot -- the last seq, the tail (replay_from), the list of
 * index ranges changed since the newest checkpoint (s->dirty), the commit
 * payloads since it (s->pay) and a copy of the extents inside those ranges
 * -- then, with commits running again, CKPT_CLEAR records (the ranges),
 * CKPT_INDEX records (the copied extents), CKPT_COMMITS records (the
 * payloads) and an END record (kind DELTA) naming the previous checkpoint.
 * Commits appended meanwhile lie after replay_from, so recovery replays
 * them; the snapshot reflects exactly the commits <= its seq.
 *
 * Compacted full (dsm_checkpoint_compact), with commits running: the
 * caller rebuilds its image from the chain's own image and payloads (read
 * back from the log, dsm__chain_read) and writes it as CKPT_META records;
 * that image reflects the chain's seq B.  Then, as for a delta, a short
 * snapshot under the exclusive lock -- seq S, replay_from, a copy of the
 * whole index, the payloads since B -- and the index (CKPT_INDEX), those
 * payloads (CKPT_COMMITS) and an END record (kind FULL, image_seq B) are
 * written with commits running again.  It is a new base.
 *
 * All end the same way: flush the END record, then, under log_mtx, make
 * it the newest checkpoint and rewrite the tail segment's header to name
 * it (dsm__log_publish), then flush that.  Until the header is durable
 * recovery uses the previous chain.
 *
 * Tracking: the index's accounting hook (dsm__seg_account) reports every
 * range whose mapping changes to dsm__ckpt_dirty(); commit() and recovery
 * hand every payload to dsm__ckpt_payload().  Both run under rw held
 * exclusively.  If either cannot keep up (out of memory, more than
 * DIRTY_MAX ranges or PAY_MAX bytes), need_full is set: the next
 * checkpoint must be a full one.
 */
#include <stdlib.h>
#include <time.h>

#include "dsm_int.h"

#define DIRTY_MAX (4u << 20)            /* ranges (32 bytes each) */
#define PAY_MAX (256u << 20)            /* payload bytes */
#define CHAIN_MAX 64u                   /* deltas on one base */

struct dsm_ckpt {
        struct dsm_store *s;
        struct dsm__buf buf;
        uint64_t first;
        uint64_t total;
        uint64_t bytes;                 /* record bytes appended */
        int err;
};

/* ---- holding commits back -------------------------------------------------------- */

uint64_t dsm__now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A checkpoint or cleaner pass held commits back (rw exclusively, or
 * log_mtx) from t0 to now: keep the longest such stretch for dsm_stats. */
void dsm__held(struct dsm_store *s, uint64_t t0)
{
        uint64_t d = dsm__now_us() - t0, cur = __atomic_load_n(&s->ckpt_hold_max, __ATOMIC_RELAXED);

        while (d > cur && !__atomic_compare_exchange_n(&s->ckpt_hold_max, &cur, d, false, __ATOMIC_RELAXED,
                                                        __ATOMIC_RELAXED))
                ;
}

/* ---- tracking (rw held exclusively) ---------------------------------------- */

void dsm__ckpt_dirty(struct dsm_store *s, uint64_t obj, uint64_t page, uint64_t npages)
{
        struct dsm_extent *last = s->ndirty ? &s->dirty[s->ndirty - 1] : NULL;

        if (!s->track || s->need_full)
                return;
        if (last && last->obj == obj && page >= last->page && page <= last->page + last->npages) {
                if (page + npages > last->page + last->npages)
                        last->npages = page + npages - last->page;
                return;
        }
        if (s->ndirty == s->capdirty) {
                size_t cap = s->capdirty ? s->capdirty * 2 : 256;
                struct dsm_extent *n = cap > DIRTY_MAX ? NULL : realloc(s->dirty, cap * sizeof(*n));

                if (!n) {
                        s->need_full = true;
                        return;
                }
                s->dirty = n;
                s->capdirty = cap;
        }
        s->dirty[s->ndirty++] = (struct dsm_extent){ obj, page, npages };
}

void dsm__ckpt_payload(struct dsm_store *s, uint64_t seq, const void *meta, size_t len)
{
        if (!s->track || s->need_full)
                return;
        dsm__buf_varint(&s->pay, seq);
        dsm__buf_varint(&s->pay, len);
        dsm__buf_put(&s->pay, meta, len);
        if (s->pay.err || s->pay.len > PAY_MAX)
                s->need_full = true;
}

/* Forget what changed: a full checkpoint covers it all. */
void dsm__ckpt_reset(struct dsm_store *s)
{
        free(s->dirty);
        s->dirty = NULL;
        s->ndirty = s->capdirty = 0;
        dsm__buf_free(&s->pay);
        s->need_full = false;
}

/* ---- common ---------------------------------------------------------------------- */

static int ckpt_append(struct dsm_ckpt *cp, uint8_t type, const struct dsm__buf *b)
{
        uint64_t loc, end;
        int r;

        r = dsm__log_append(cp->s, type, 0, b->p, (uint32_t)b->len, 0, NULL, 0, 0, 0, &loc, &end);
        if (r < 0)
                return r;
        if (!cp->first)
                cp->first = loc;
        cp->bytes += end - loc;
        return 0;
}

static int ckpt_flush_meta(struct dsm_ckpt *cp)
{
        int r;

        if (!cp->buf.len)
                return 0;
        r = ckpt_append(cp, DSM__REC_CKPT_META, &cp->buf);
        if (r < 0)
                return r;
        cp->total += cp->buf.len;
        cp->buf.len = 0;
        return 0;
}

int dsm_ckpt_put(struct dsm_ckpt *cp, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        while (len && !cp->err) {
                size_t room = cp->s->chunk - cp->buf.len, n = len < room ? len : room;

                dsm__buf_put(&cp->buf, p, n);
                cp->err = cp->buf.err;
                p += n;
                len -= n;
                if (!cp->err && cp->buf.len == cp->s->chunk)
                        cp->err = ckpt_flush_meta(cp);
        }
        return cp->err;
}

/* Index entries as CKPT_INDEX records, chunk by chunk. */
static int put_index(struct dsm_ckpt *cp, const struct dsm__ext *v, size_t n)
{
        struct dsm__buf b = { 0 };
        uint32_t k = 0;
        int r = 0;

        dsm__buf_u32(&b, 0);
        for (size_t i = 0; i < n && r >= 0; i++) {
                dsm__buf_varint(&b, v[i].obj);
                dsm__buf_varint(&b, v[i].page);
                dsm__buf_varint(&b, v[i].npages);
                dsm__buf_varint(&b, v[i].loc);
                dsm__buf_varint(&b, v[i].seq);
                dsm__buf_varint(&b, v[i].flags & DSM__F_DAMAGED);
                k++;
                r = b.err;
                if (r >= 0 && (b.len + 64 >= cp->s->chunk || i + 1 == n)) {
                        dsm__put32(b.p, k);
                        r = ckpt_append(cp, DSM__REC_CKPT_INDEX, &b);
                        b.len = 4;
                        k = 0;
                }
        }
        dsm__buf_free(&b);
        return r;
}

/*
 * Write the END record, flush it, and make it the newest checkpoint: a new
 * segment whose header names it.  kind/prev/replay_from as in
 * man/locusfs-segments.5 (replay_from 0: right after END).
 */
static int put_end(struct dsm_ckpt *cp, uint64_t seq, uint64_t next_txn, uint64_t nindex, unsigned kind,
                   uint64_t prev, uint64_t replay_from, uint64_t image_seq)
{
        struct dsm_store *s = cp->s;
        struct dsm__buf b = { 0 };
        uint64_t loc, end, t0;
        int r = 0;

        if (!cp->first) {
                /* An empty checkpoint: END is its own first record.  Make
                 * sure it cannot land in a new segment after we named it. */
                pthread_mutex_lock(&s->log_mtx);
                if (DSM__LOC_OFF(s->tail) + DSM__REC_HDR_SIZE + 128 > s->segsize)
                        r = dsm__log_switch(s, false);
                cp->first = s->tail;
                pthread_mutex_unlock(&s->log_mtx);
                if (r < 0)
                        return r;
        }
        dsm__buf_varint(&b, seq);
        dsm__buf_varint(&b, next_txn);
        dsm__buf_varint(&b, cp->first);
        dsm__buf_varint(&b, nindex);
        dsm__buf_varint(&b, cp->total);
        dsm__buf_varint(&b, kind);
        dsm__buf_varint(&b, prev);
        dsm__buf_varint(&b, replay_from);
        dsm__buf_varint(&b, image_seq);
        r = b.err;
        if (r >= 0)
                r = dsm__log_append(s, DSM__REC_CKPT_END, 0, b.p, (uint32_t)b.len, 0, NULL, 0, 0, 0, &loc, &end);
        dsm__buf_free(&b);
        if (r < 0)
                return r;
        cp->bytes += end - loc;
        r = dsm__log_sync(s, end);
        if (r < 0)
                return r;
        pthread_mutex_lock(&s->log_mtx);
        t0 = dsm__now_us();
        s->ckpt_loc = loc;
        s->ckpt_first = cp->first;
        s->ckpt_seq = seq;
        if (kind == DSM__CKPT_FULL) {
                s->chain_first = cp->first;
                s->chain_len = 0;
                s->chain_bytes = 0;
                s->full_bytes = cp->bytes;
                s->ckpts_full++;
        } else {
                s->chain_len++;
                s->chain_bytes += cp->bytes;
                s->ckpts_delta++;
        }
        r = dsm__log_publish(s, &end);  /* the tail's header names it */
        dsm__held(s, t0);
        pthread_mutex_unlock(&s->log_mtx);
        if (r >= 0)
                r = dsm__log_sync(s, end);
        return r;
}

/* ---- full ------------------------------------------------------------------------- */

/* The caller's image through fn, as CKPT_META records. */
static int put_image(struct dsm_ckpt *cp, dsm_ckpt_meta_fn fn, void *ctx, uint64_t seq)
{
        int r = fn(ctx, seq, cp);

        if (r >= 0)
                r = cp->err;
        if (r >= 0)
                r = ckpt_flush_meta(cp);
        return r;
}

/* A copy of the whole index.  rw held. */
static int copy_index(struct dsm_store *s, struct dsm__ext **ret, size_t *ret_n)
{
        struct dsm__ext *v = NULL;
        size_t n = 0;

        if (s->index.count) {
                v = malloc(s->index.count * sizeof(*v));
                if (!v)
                        return -ENOMEM;
        }
        for (struct dsm__pos p = dsm__emap_first(&s->index); dsm__emap_get(&s->index, p);
             p = dsm__emap_advance(&s->index, p))
                v[n++] = *dsm__emap_get(&s->index, p);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Caller holds ckpt_mtx and rw exclusively. */
int dsm__checkpoint_locked(struct dsm_store *s)
{
        struct dsm_ckpt cp = { .s = s };
        struct dsm__ext *v = NULL;
        size_t n = 0;
        uint64_t next_txn;
        int r = dsm__error(s);

        if (r < 0)
                return r;
        r = copy_index(s, &v, &n);
        if (r < 0)
                return r;
        r = put_index(&cp, v, n);
        free(v);
        if (r >= 0 && s->opt.ckpt_meta)
                r = put_image(&cp, s->opt.ckpt_meta, s->opt.ckpt_ctx, s->seq);
        if (r < 0)
                goto out;
        pthread_mutex_lock(&s->log_mtx);
        next_txn = s->next_txn;
        pthread_mutex_unlock(&s->log_mtx);
        r = put_end(&cp, s->seq, next_txn, n, DSM__CKPT_FULL, 0, 0, s->seq);
        if (r >= 0)
                dsm__ckpt_reset(s);
out:
        dsm__buf_free(&cp.buf);
        return r;
}

int dsm_checkpoint(struct dsm_store *s)
{
        uint64_t t0;
        int r;

        pthread_mutex_lock(&s->ckpt_mtx);
        pthread_rwlock_wrlock(&s->rw);
        t0 = dsm__now_us();
        r = dsm__checkpoint_locked(s);
        dsm__held(s, t0);
        pthread_rwlock_unlock(&s->rw);
        pthread_mutex_unlock(&s->ckpt_mtx);
        return r;
}

/* ---- delta ------------------------------------------------------------------------ */

static int cmp_range(const void *a, const void *b)
{
        const struct dsm_extent *x = a, *y = b;

        if (x->obj != y->obj)
                return x->obj < y->obj ? -1 : 1;
        return x->page < y->page ? -1 : x->page > y->page;
}

/* Sort the ranges and merge the ones that overlap or touch. */
static size_t merge_ranges(struct dsm_extent *v, size_t n)
{
        size_t k = 0;

        if (!n)
                return 0;
        qsort(v, n, sizeof(*v), cmp_range);
        for (size_t i = 1; i < n; i++) {
                struct dsm_extent *l = &v[k];

                if (v[i].obj == l->obj && v[i].page <= l->page + l->npages) {
                        if (v[i].page + v[i].npages > l->page + l->npages)
                                l->npages = v[i].page + v[i].npages - l->page;
                } else {
                        v[++k] = v[i];
                }
        }
        return k + 1;
}

/* The index extents inside the ranges, cut to them.  rw held. */
static int copy_ranges(struct dsm_store *s, const struct dsm_extent *rg, size_t nrg, struct dsm__ext **ret,
                       size_t *ret_n)
{
        struct dsm__ext *v = NULL, e;
        size_t n = 0, cap = 0;

        for (size_t i = 0; i < nrg; i++) {
                uint64_t pos = rg[i].page, end = rg[i].page + rg[i].npages;

                while (pos < end && dsm__emap_next(&s->index, rg[i].obj, pos, &e) && e.page < end) {
                        uint64_t a = e.page > pos ? e.page : pos;
                        uint64_t b = e.page + e.npages < end ? e.page + e.npages : end;

                        if (n == cap) {
                                size_t nc = cap ? cap * 2 : 256;
                                struct dsm__ext *nv = realloc(v, nc * sizeof(*nv));

                                if (!nv) {
                                        free(v);
                                        return -ENOMEM;
                                }
                                v = nv;
                                cap = nc;
                        }
                        e.loc += (a - e.page) * DSM_PAGE_SIZE;
                        e.page = a;
                        e.npages = (uint32_t)(b - a);
                        v[n++] = e;
                        pos = b;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static int put_clear(struct dsm_ckpt *cp, const struct dsm_extent *rg, size_t n)
{
        struct dsm__buf b = { 0 };
        uint32_t k = 0;
        int r = 0;

        dsm__buf_u32(&b, 0);
        for (size_t i = 0; i < n && r >= 0; i++) {
                dsm__buf_varint(&b, rg[i].obj);
                dsm__buf_varint(&b, rg[i].page);
                dsm__buf_varint(&b, rg[i].npages);
                k++;
                r = b.err;
                if (r >= 0 && (b.len + 32 >= cp->s->chunk || i + 1 == n)) {
                        dsm__put32(b.p, k);
                        r = ckpt_append(cp, DSM__REC_CKPT_CLEAR, &b);
                        b.len = 4;
                        k = 0;
                }
        }
        dsm__buf_free(&b);
        return r;
}

/* The payload list (v seq, v len, bytes)* as CKPT_COMMITS records: whole
 * entries, as many as fit a chunk (a bigger one goes alone). */
static int put_commits(struct dsm_ckpt *cp, const struct dsm__buf *pay)
{
        struct dsm__rd rd = { pay->p, pay->len, 0, false };
        struct dsm__buf b = { 0 };
        uint32_t k = 0;
        int r = 0;

        dsm__buf_u32(&b, 0);
        while (rd.pos < rd.len && r >= 0) {
                size_t start = rd.pos;
                uint64_t len;

                (void)dsm__rd_varint(&rd);
                len = dsm__rd_varint(&rd);
                if (!dsm__rd_bytes(&rd, len) || rd.err) {
                        r = -EINVAL;
                        break;
                }
                if (k && b.len + (rd.pos - start) > cp->s->chunk) {
                        dsm__put32(b.p, k);
                        r = ckpt_append(cp, DSM__REC_CKPT_COMMITS, &b);
                        b.len = 4;
                        k = 0;
                }
                dsm__buf_put(&b, pay->p + start, rd.pos - start);
                k++;
                if (r >= 0)
                        r = b.err;
        }
        if (r >= 0 && k) {
                dsm__put32(b.p, k);
                r = ckpt_append(cp, DSM__REC_CKPT_COMMITS, &b);
        }
        dsm__buf_free(&b);
        return r;
}

bool dsm_checkpoint_full_due(struct dsm_store *s)
{
        bool due;

        pthread_rwlock_rdlock(&s->rw);
        pthread_mutex_lock(&s->log_mtx);
        due = !s->ckpt_loc || s->need_full || s->chain_len >= CHAIN_MAX ||
              s->chain_bytes >= (s->full_bytes > s->segsize ? s->full_bytes : s->segsize);
        pthread_mutex_unlock(&s->log_mtx);
        pthread_rwlock_unlock(&s->rw);
        return due;
}

int dsm_checkpoint_delta(struct dsm_store *s)
{
        struct dsm_ckpt cp = { .s = s };
        struct dsm_extent *rg = NULL;
        struct dsm__buf pay = { 0 };
        struct dsm__ext *ext = NULL;
        size_t nrg = 0, next = 0;
        uint64_t seq = 0, next_txn = 0, replay_from = 0, prev = 0, t0;
        bool snap = false;
        int r;

        pthread_mutex_lock(&s->ckpt_mtx);
        pthread_rwlock_wrlock(&s->rw);
        t0 = dsm__now_us();
        r = dsm__error(s);
        if (r < 0)
                goto unlock;
        if (!s->ckpt_loc || s->need_full) {
                r = -ESTALE;
                goto unlock;
        }
        seq = s->seq;
        if (seq == s->ckpt_seq)
                goto unlock;            /* nothing changed */
        /* The snapshot [I7]. */
        snap = true;
        rg = s->dirty;
        nrg = s->ndirty;
        pay = s->pay;
        s->dirty = NULL;
        s->ndirty = s->capdirty = 0;
        s->pay = (struct dsm__buf){ 0 };
        nrg = merge_ranges(rg, nrg);
        r = copy_ranges(s, rg, nrg, &ext, &next);
        pthread_mutex_lock(&s->log_mtx);
        replay_from = s->tail;
        next_txn = s->next_txn;
        prev = s->ckpt_loc;
        pthread_mutex_unlock(&s->log_mtx);
        if (r < 0)
                s->need_full = true;
unlock:
        dsm__held(s, t0);
        pthread_rwlock_unlock(&s->rw);
        if (r < 0 || !snap)
                goto out;

        r = put_clear(&cp, rg, nrg);
        if (r >= 0)
                r = put_index(&cp, ext, next);
        if (r >= 0)
                r = put_commits(&cp, &pay);
        if (r >= 0)
                r = put_end(&cp, seq, next_txn, next, DSM__CKPT_DELTA, prev, replay_from, seq);
        if (r < 0) {
                /* What it held is in no checkpoint now. */
                pthread_rwlock_wrlock(&s->rw);
                s->need_full = true;
                pthread_rwlock_unlock(&s->rw);
        }
out:
        pthread_mutex_unlock(&s->ckpt_mtx);
        free(rg);
        free(ext);
        dsm__buf_free(&pay);
        return r;
}

/* ---- compacted full --------------------------------------------------------------- */

int dsm_checkpoint_compact(struct dsm_store *s, dsm_replay_fn replay, dsm_ckpt_meta_fn image, void *ctx)
{
        struct dsm_ckpt cp = { .s = s };
        struct dsm__buf pay = { 0 };
        struct dsm__ext *v = NULL;
        uint64_t B = 0, seq = 0, next_txn = 0, replay_from = 0, t0;
        size_t n = 0;
        bool snap = false;
        int r;

        pthread_mutex_lock(&s->ckpt_mtx);
        r = dsm__error(s);
        if (r < 0)
                goto out;
        pthread_rwlock_rdlock(&s->rw);
        if (!s->ckpt_loc || s->need_full)
                r = -ESTALE;
        pthread_rwlock_unlock(&s->rw);
        if (r < 0)
                goto out;
        /* The image, as of the chain's seq B, built by the caller from the
         * chain alone: no lock held, commits run. */
        r = dsm__chain_read(s, replay, ctx, &B);
        if (r >= 0)
                r = put_image(&cp, image, ctx, B);
        if (r < 0)
                goto out;

        /* The snapshot [I7]. */
        pthread_rwlock_wrlock(&s->rw);
        t0 = dsm__now_us();
        r = dsm__error(s);
        if (r >= 0 && s->need_full)
                r = -ESTALE;            /* the payloads since B are incomplete */
        if (r >= 0)
                r = copy_index(s, &v, &n);
        if (r >= 0) {
                snap = true;
                seq = s->seq;
                pay = s->pay;
                s->pay = (struct dsm__buf){ 0 };
                free(s->dirty);
                s->dirty = NULL;
                s->ndirty = s->capdirty = 0;
                pthread_mutex_lock(&s->log_mtx);
                replay_from = s->tail;
                next_txn = s->next_txn;
                pthread_mutex_unlock(&s->log_mtx);
        }
        dsm__held(s, t0);
        pthread_rwlock_unlock(&s->rw);
        if (r < 0)
                goto out;

        r = put_index(&cp, v, n);
        if (r >= 0)
                r = put_commits(&cp, &pay);
        if (r >= 0)
                r = put_end(&cp, seq, next_txn, n, DSM__CKPT_FULL, 0, replay_from, B);
out:
        if (r < 0 && snap) {
                /* What it took is in no checkpoint now. */
                pthread_rwlock_wrlock(&s->rw);
                s->need_full = true;
                pthread_rwlock_unlock(&s->rw);
        }
        pthread_mutex_unlock(&s->ckpt_mtx);
        free(v);
        dsm__buf_free(&pay);
        dsm__buf_free(&cp.buf);
        return r;
}
