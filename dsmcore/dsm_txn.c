/*
 * dsm_txn.c -- transactions: snapshot reads, staged writes, optimistic
 * validation and commit.
 *
 * A transaction sees the store as of its snapshot (the last commit when it
 * began) plus its own writes.  Its write set (t->ws) is an emap whose
 * entries are either runs in the staging buffer (DSM__F_BUF, loc = byte
 * offset in the buffer)
 * or runs already streamed to the log as DATA records (loc = log address;
 * they pin their segment against the cleaner [I4]).  Whole-page writes go
 * straight to the buffer; partial writes read the old page first.  When
 * the buffer is full its valid slots are streamed out (spill), so a write
 * session of any size uses bounded memory: the buffer plus one write-set
 * entry per streamed run.
 *
 * Reads of committed pages are checked against the snapshot: a page whose
 * newest version is younger than the snapshot, or an object freed after
 * it, dooms the transaction (DSM_ECONFLICT) -- it would fail validation
 * anyway.  Every page read joins the read set; commit re-checks the read
 * set under the exclusive index lock: first committer wins.
 *
 * Commit appends one COMMIT record: the frees, references to streamed
 * runs, the still-buffered pages inline, and the caller's payload.  The
 * same order (frees, then refs, then inline pages) is used here to update
 * the index and by recovery to replay it, so the two always agree.
 */
#include <stdlib.h>

#include "dsm_int.h"

struct rrange {
        uint64_t obj;
        uint64_t first;
        uint64_t n;
};

struct slot {
        uint64_t obj;
        uint64_t page;
        bool valid;
};

/* Room kept before the first slot, where the log writes a record's header
 * so that header and data go out in one write. */
#define TXN_PREFIX 4096u

struct dsm_txn {
        struct dsm_store *s;
        uint64_t id;
        uint64_t snap;
        int err;                        /* poisoned: commit refuses */
        struct dsm__emap ws;
        uint8_t *mem;                   /* TXN_PREFIX bytes, then the slots */
        uint8_t *buf;                   /* mem + TXN_PREFIX */
        struct slot *slots;
        uint32_t nslots;
        uint32_t capslots;              /* allocated, grows up to maxslots */
        uint32_t maxslots;
        struct rrange *reads;
        size_t nreads, capreads;
        struct dsm_extent *frees;
        size_t nfrees, capfrees;
};

int dsm_txn_begin(struct dsm_store *s, struct dsm_txn **ret)
{
        struct dsm_txn *t;
        int r = dsm__error(s);

        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->s = s;
        t->maxslots = s->chunk / DSM_PAGE_SIZE;
        dsm__emap_init(&t->ws, dsm__seg_pin, s);
        pthread_rwlock_rdlock(&s->rw);
        t->snap = s->seq;
        pthread_mutex_lock(&s->log_mtx);
        t->id = s->next_txn++;
        s->active_txns++;
        pthread_mutex_unlock(&s->log_mtx);
        pthread_rwlock_unlock(&s->rw);
        *ret = t;
        return 0;
}

static void txn_free(struct dsm_txn *t)
{
        struct dsm_store *s = t->s;

        dsm__emap_clear(&t->ws, true);
        pthread_mutex_lock(&s->log_mtx);
        s->active_txns--;
        pthread_mutex_unlock(&s->log_mtx);
        free(t->mem);
        free(t->slots);
        free(t->reads);
        free(t->frees);
        free(t);
}

void dsm_txn_abort(struct dsm_txn *t)
{
        if (t)
                txn_free(t);
}

static int poison(struct dsm_txn *t, int r)
{
        if (r < 0 && !t->err)
                t->err = r;
        return r;
}

static int add_read(struct dsm_txn *t, uint64_t obj, uint64_t page)
{
        struct rrange *last = t->nreads ? &t->reads[t->nreads - 1] : NULL;

        if (last && last->obj == obj && last->first + last->n == page) {
                last->n++;
                return 0;
        }
        if (last && last->obj == obj && page >= last->first && page < last->first + last->n)
                return 0;
        if (t->nreads == t->capreads) {
                size_t cap = t->capreads ? t->capreads * 2 : 16;
                struct rrange *n = realloc(t->reads, cap * sizeof(*n));

                if (!n)
                        return -ENOMEM;
                t->reads = n;
                t->capreads = cap;
        }
        t->reads[t->nreads++] = (struct rrange){ obj, page, 1 };
        return 0;
}

/* Caller holds rw (shared or exclusive). */
int dsm__page_read_locked(struct dsm_store *s, const struct dsm__ext *e, uint64_t page, void *buf)
{
        if (e->flags & DSM__F_DAMAGED)
                return DSM_ECORRUPT;
        return dsm__read_loc(s, e->loc + (page - e->page) * DSM_PAGE_SIZE, buf, DSM_PAGE_SIZE);
}

int dsm_read(struct dsm_store *s, uint64_t obj, uint64_t page, void *buf)
{
        const struct dsm__ext *e;
        int r = dsm__error(s);

        if (r < 0)
                return r;
        pthread_rwlock_rdlock(&s->rw);
        e = dsm__emap_find(&s->index, obj, page);
        if (!e) {
                memset(buf, 0, DSM_PAGE_SIZE);
                r = 0;
        } else {
                r = dsm__page_read_locked(s, e, page, buf);
                if (r == 0)
                        r = 1;
        }
        pthread_rwlock_unlock(&s->rw);
        return r;
}

/* Did this transaction free the page (after its last write to it)? */
static bool freed_here(const struct dsm_txn *t, uint64_t obj, uint64_t page)
{
        for (size_t i = 0; i < t->nfrees; i++) {
                const struct dsm_extent *f = &t->frees[i];

                if (f->obj == obj && page >= f->page && (f->npages == DSM_TO_END || page - f->page < f->npages))
                        return true;
        }
        return false;
}

int dsm_read_pages(struct dsm_store *s, uint64_t obj, uint64_t page, uint64_t npages, void *buf)
{
        uint8_t *out = buf;
        uint64_t pos = page, end = page + npages;
        struct dsm__ext e;
        int r = dsm__error(s);

        if (r < 0)
                return r;
        if (end < page)
                return -EINVAL;
        pthread_rwlock_rdlock(&s->rw);
        while (pos < end) {
                uint64_t a, b;

                if (!dsm__emap_next(&s->index, obj, pos, &e) || e.page >= end) {
                        memset(out + (pos - page) * DSM_PAGE_SIZE, 0, (end - pos) * DSM_PAGE_SIZE);
                        break;
                }
                a = e.page > pos ? e.page : pos;
                b = e.page + e.npages < end ? e.page + e.npages : end;
                if (a > pos)
                        memset(out + (pos - page) * DSM_PAGE_SIZE, 0, (a - pos) * DSM_PAGE_SIZE);
                if (e.flags & DSM__F_DAMAGED) {
                        r = DSM_ECORRUPT;
                        break;
                }
                /* [I2]: the pages of one extent lie together in the log. */
                r = dsm__read_loc(s, e.loc + (a - e.page) * DSM_PAGE_SIZE, out + (a - page) * DSM_PAGE_SIZE,
                                  (b - a) * DSM_PAGE_SIZE);
                if (r < 0)
                        break;
                pos = b;
        }
        pthread_rwlock_unlock(&s->rw);
        return r < 0 ? r : 0;
}

int dsm_txn_read(struct dsm_txn *t, uint64_t obj, uint64_t page, void *buf)
{
        struct dsm_store *s = t->s;
        const struct dsm__ext *e;
        uint64_t fseq;
        int r;

        if (t->err)
                return t->err;
        e = dsm__emap_find(&t->ws, obj, page);
        if (e && (e->flags & DSM__F_BUF)) {
                memcpy(buf, t->buf + e->loc + (page - e->page) * DSM_PAGE_SIZE, DSM_PAGE_SIZE);
                return 1;
        }
        if (!e && freed_here(t, obj, page)) {
                /* Its own free wins over the snapshot; a later write would
                 * have put the page back in the write set. */
                memset(buf, 0, DSM_PAGE_SIZE);
                return 0;
        }
        pthread_rwlock_rdlock(&s->rw);
        if (e) {
                r = dsm__read_loc(s, e->loc + (page - e->page) * DSM_PAGE_SIZE, buf, DSM_PAGE_SIZE);
                pthread_rwlock_unlock(&s->rw);
                return r < 0 ? poison(t, r) : 1;
        }
        e = dsm__emap_find(&s->index, obj, page);
        if (e && e->seq > t->snap)
                r = DSM_ECONFLICT;
        else if (!e && dsm__u64map_get(&s->freed, obj, &fseq) && fseq > t->snap)
                r = DSM_ECONFLICT;
        else if (!e) {
                memset(buf, 0, DSM_PAGE_SIZE);
                r = 0;
        } else {
                r = dsm__page_read_locked(s, e, page, buf);
                if (r == 0)
                        r = 1;
        }
        pthread_rwlock_unlock(&s->rw);
        if (r < 0)
                return poison(t, r);
        if (add_read(t, obj, page) < 0)
                return poison(t, -ENOMEM);
        return r;
}

/* Bytes before the first run we may overwrite: the prefix, and slots that
 * hold nothing valid (every slot before the first run is such). */
static size_t room_before(const struct dsm_txn *t, const struct iovec *iov, int iovcnt)
{
        return iovcnt ? (size_t)((const uint8_t *)iov[0].iov_base - t->mem) : 0;
}

/* Make slot number `slot` usable; the buffer grows by doubling, so a small
 * transaction does not pay for a full one. */
static int grow_slots(struct dsm_txn *t, uint32_t slot)
{
        uint32_t cap = t->capslots ? t->capslots : 4;
        uint8_t *mem;
        struct slot *sl;

        if (slot < t->capslots)
                return 0;
        while (cap <= slot)
                cap *= 2;
        if (cap > t->maxslots)
                cap = t->maxslots;
        mem = realloc(t->mem, TXN_PREFIX + (size_t)cap * DSM_PAGE_SIZE);
        if (!mem)
                return -ENOMEM;
        t->mem = mem;
        t->buf = mem + TXN_PREFIX;
        sl = realloc(t->slots, cap * sizeof(*sl));
        if (!sl)
                return -ENOMEM;
        t->slots = sl;
        t->capslots = cap;
        return 0;
}

/*
 * Describe the valid buffered slots as runs of consecutive pages.  Appends
 * the descriptors (obj, page, npages, checksum) to b, fills iov with the
 * memory to write (adjacent runs merged), and returns the number of runs.
 * ret_ext (if not NULL, room for nslots) receives each run as an extent
 * whose loc is its byte offset within the record's data.
 */
static size_t describe_runs(struct dsm_txn *t, struct dsm__buf *b, struct iovec *iov,
                            int *ret_iovcnt, uint64_t *ret_datalen, struct dsm__ext *ret_ext)
{
        size_t nruns = 0;
        uint64_t off = 0;
        int iovcnt = 0;

        for (uint32_t i = 0; i < t->nslots;) {
                uint32_t j = i + 1;
                uint8_t *p;

                if (!t->slots[i].valid) {
                        i++;
                        continue;
                }
                while (j < t->nslots && t->slots[j].valid && t->slots[j].obj == t->slots[i].obj &&
                       t->slots[j].page == t->slots[i].page + (j - i))
                        j++;
                p = t->buf + (size_t)i * DSM_PAGE_SIZE;
                dsm__buf_varint(b, t->slots[i].obj);
                dsm__buf_varint(b, t->slots[i].page);
                dsm__buf_varint(b, j - i);
                dsm__buf_u32(b, dsm__csum(p, (size_t)(j - i) * DSM_PAGE_SIZE));
                if (iovcnt && (uint8_t *)iov[iovcnt - 1].iov_base + iov[iovcnt - 1].iov_len == p)
                        iov[iovcnt - 1].iov_len += (size_t)(j - i) * DSM_PAGE_SIZE;
                else
                        iov[iovcnt++] = (struct iovec){ p, (size_t)(j - i) * DSM_PAGE_SIZE };
                if (ret_ext)
                        ret_ext[nruns] = (struct dsm__ext){ .obj = t->slots[i].obj,
                                                            .page = t->slots[i].page,
                                                            .npages = j - i, .loc = off };
                off += (uint64_t)(j - i) * DSM_PAGE_SIZE;
                nruns++;
                i = j;
        }
        *ret_iovcnt = iovcnt;
        *ret_datalen = off;
        return nruns;
}

static uint32_t count_runs(const struct dsm_txn *t)
{
        uint32_t n = 0;

        for (uint32_t i = 0; i < t->nslots; i++)
                if (t->slots[i].valid &&
                    (i == 0 || !t->slots[i - 1].valid || t->slots[i - 1].obj != t->slots[i].obj ||
                     t->slots[i - 1].page + 1 != t->slots[i].page))
                        n++;
        return n;
}

/* Stream the buffered pages to the log as a DATA record.  Caller holds rw
 * (any mode) iff `locked`. */
static int spill(struct dsm_txn *t, bool locked)
{
        struct dsm_store *s = t->s;
        struct dsm__buf b = { 0 };
        struct iovec *iov;
        struct dsm__ext *runs;
        uint64_t datalen, loc, data0;
        size_t nruns;
        int iovcnt, r;

        iov = malloc(t->nslots * sizeof(*iov) + t->nslots * sizeof(*runs));
        if (!iov)
                return -ENOMEM;
        runs = (struct dsm__ext *)(iov + t->nslots);
        dsm__buf_varint(&b, count_runs(t));
        nruns = describe_runs(t, &b, iov, &iovcnt, &datalen, runs);
        r = b.err;
        if (r < 0)
                goto out;
        if (!locked)
                pthread_rwlock_rdlock(&s->rw);  /* the cleaner must see our pins */
        r = dsm__log_append(s, DSM__REC_DATA, t->id, b.p, (uint32_t)b.len, 0, iov, iovcnt,
                            datalen, room_before(t, iov, iovcnt), &loc, NULL);
        data0 = loc + DSM__REC_HDR_SIZE + dsm__align8((uint32_t)b.len);
        for (size_t i = 0; r >= 0 && i < nruns; i++) {
                runs[i].loc += data0;
                r = dsm__emap_insert(&t->ws, &runs[i]);
        }
        if (!locked)
                pthread_rwlock_unlock(&s->rw);
        t->nslots = 0;
out:
        dsm__buf_free(&b);
        free(iov);
        return r;
}

int dsm_txn_write(struct dsm_txn *t, uint64_t obj, uint64_t page, uint32_t off,
                  const void *data, uint32_t len)
{
        const struct dsm__ext *e;
        struct dsm__ext *pe;
        uint32_t slot;
        uint8_t *p;
        int r;

        if (t->err)
                return t->err;
        if (off > DSM_PAGE_SIZE || len > DSM_PAGE_SIZE - off)
                return -EINVAL;
        if (len == 0)
                return 0;
        e = dsm__emap_find(&t->ws, obj, page);
        if (e && (e->flags & DSM__F_BUF)) {
                memcpy(t->buf + e->loc + (page - e->page) * DSM_PAGE_SIZE + off, data, len);
                return 0;
        }
        if (t->nslots == t->maxslots) {
                r = spill(t, false);
                if (r < 0)
                        return poison(t, r);
        }
        slot = t->nslots;
        r = grow_slots(t, slot);
        if (r < 0)
                return poison(t, r);
        p = t->buf + (size_t)slot * DSM_PAGE_SIZE;
        if (len < DSM_PAGE_SIZE) {
                r = dsm_txn_read(t, obj, page, p);
                if (r < 0)
                        return poison(t, r);
        }
        memcpy(p + off, data, len);
        /* A page that follows its predecessor in both the file and the
         * buffer extends the predecessor's run: sequential writes keep one
         * write-set entry per run, not per page. */
        pe = (!e && page > 0) ? (struct dsm__ext *)dsm__emap_find(&t->ws, obj, page - 1) : NULL;
        if (pe && (pe->flags & DSM__F_BUF) && pe->page + pe->npages == page &&
            pe->loc + (uint64_t)pe->npages * DSM_PAGE_SIZE == (uint64_t)slot * DSM_PAGE_SIZE) {
                pe->npages++;
        } else {
                r = dsm__emap_insert(&t->ws, &(struct dsm__ext){ .obj = obj, .page = page, .npages = 1,
                                                                  .loc = (uint64_t)slot * DSM_PAGE_SIZE,
                                                                  .flags = DSM__F_BUF });
                if (r < 0)
                        return poison(t, r);
        }
        t->slots[slot] = (struct slot){ obj, page, true };
        t->nslots++;
        return 0;
}

static void invalidate_slots(struct dsm_txn *t, uint64_t obj, uint64_t first, uint64_t last)
{
        for (uint32_t i = 0; i < t->nslots; i++)
                if (t->slots[i].valid && t->slots[i].obj == obj && t->slots[i].page >= first &&
                    t->slots[i].page < last)
                        t->slots[i].valid = false;
}

#define DIRECT_MIN (64u << 10)

int dsm_txn_write_pages(struct dsm_txn *t, uint64_t obj, uint64_t page, uint64_t npages, const void *data)
{
        struct dsm_store *s = t->s;
        const uint8_t *p = data;
        uint64_t maxrun = t->maxslots;
        int r;

        if (t->err)
                return t->err;
        if (page + npages < page)
                return -EINVAL;
        if (npages * DSM_PAGE_SIZE < DIRECT_MIN) {
                for (uint64_t i = 0; i < npages; i++) {
                        r = dsm_txn_write(t, obj, page + i, 0, p + i * DSM_PAGE_SIZE, DSM_PAGE_SIZE);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        /* Stream it: one DATA record per chunk, written from `data`. */
        while (npages) {
                uint64_t n = npages < maxrun ? npages : maxrun, loc, data0;
                struct dsm__buf b = { 0 };
                struct iovec iov = { (void *)p, n * DSM_PAGE_SIZE };

                dsm__buf_varint(&b, 1);
                dsm__buf_varint(&b, obj);
                dsm__buf_varint(&b, page);
                dsm__buf_varint(&b, n);
                dsm__buf_u32(&b, dsm__csum(p, n * DSM_PAGE_SIZE));
                r = b.err;
                if (r < 0) {
                        dsm__buf_free(&b);
                        return poison(t, r);
                }
                invalidate_slots(t, obj, page, page + n);
                pthread_rwlock_rdlock(&s->rw);  /* the cleaner must see our pins */
                r = dsm__log_append(s, DSM__REC_DATA, t->id, b.p, (uint32_t)b.len, 0, &iov, 1,
                                    iov.iov_len, 0, &loc, NULL);
                data0 = loc + DSM__REC_HDR_SIZE + dsm__align8((uint32_t)b.len);
                if (r >= 0)
                        r = dsm__emap_insert(&t->ws, &(struct dsm__ext){ .obj = obj, .page = page,
                                                                          .npages = (uint32_t)n,
                                                                          .loc = data0 });
                pthread_rwlock_unlock(&s->rw);
                dsm__buf_free(&b);
                if (r < 0)
                        return poison(t, r);
                p += n * DSM_PAGE_SIZE;
                page += n;
                npages -= n;
        }
        return 0;
}

int dsm_txn_free(struct dsm_txn *t, uint64_t obj, uint64_t first, uint64_t npages)
{
        uint64_t last = (npages == DSM_TO_END || first + npages < first) ? UINT64_MAX : first + npages;
        int r;

        if (t->err)
                return t->err;
        if (npages == 0)
                return 0;
        r = dsm__emap_remove(&t->ws, obj, first, npages);
        if (r < 0)
                return poison(t, r);
        invalidate_slots(t, obj, first, last);
        if (t->nfrees == t->capfrees) {
                size_t cap = t->capfrees ? t->capfrees * 2 : 8;
                struct dsm_extent *n = realloc(t->frees, cap * sizeof(*n));

                if (!n)
                        return poison(t, -ENOMEM);
                t->frees = n;
                t->capfrees = cap;
        }
        t->frees[t->nfrees++] = (struct dsm_extent){ obj, first, npages == DSM_TO_END ? DSM_TO_END : last - first };
        return 0;
}

/* ---- the transaction's view of holes and data -------------------------- */

#define NOWHERE UINT64_MAX

static uint64_t free_end(const struct dsm_extent *f)
{
        return f->npages == DSM_TO_END || f->page + f->npages < f->page ? NOWHERE : f->page + f->npages;
}

/* The end of the freed stretch that contains page (0 if none does). */
static uint64_t freed_until(const struct dsm_txn *t, uint64_t obj, uint64_t page)
{
        uint64_t end = 0;
        bool grew = true;

        while (grew) {
                grew = false;
                for (size_t i = 0; i < t->nfrees; i++) {
                        const struct dsm_extent *f = &t->frees[i];
                        uint64_t at = end ? end : page;

                        if (f->obj == obj && f->page <= at && at < free_end(f) && free_end(f) > end) {
                                end = free_end(f);
                                grew = end != NOWHERE;
                        }
                }
        }
        return end;
}

/* The first page after `page` where a freed stretch starts. */
static uint64_t next_free_start(const struct dsm_txn *t, uint64_t obj, uint64_t page)
{
        uint64_t best = NOWHERE;

        for (size_t i = 0; i < t->nfrees; i++)
                if (t->frees[i].obj == obj && t->frees[i].page > page && t->frees[i].page < best)
                        best = t->frees[i].page;
        return best;
}

int dsm_txn_seek(struct dsm_txn *t, uint64_t obj, uint64_t page, int whence, uint64_t *ret)
{
        struct dsm_store *s = t->s;
        struct dsm__ext e;

        if (t->err)
                return t->err;
        if (whence != DSM_SEEK_DATA && whence != DSM_SEEK_HOLE)
                return -EINVAL;
        pthread_rwlock_rdlock(&s->rw);
        for (;;) {
                uint64_t w = NOWHERE, c = NOWHERE, f;

                if (whence == DSM_SEEK_DATA) {
                        if (dsm__emap_next(&t->ws, obj, page, &e))
                                w = e.page > page ? e.page : page;
                        if (dsm__emap_next(&s->index, obj, page, &e))
                                c = e.page > page ? e.page : page;
                        f = c < w ? freed_until(t, obj, c) : 0;
                        if (f) {
                                /* Committed data we freed: look past it. */
                                if (w < f || f == NOWHERE) {
                                        c = NOWHERE;
                                } else {
                                        page = f;
                                        continue;
                                }
                        }
                        *ret = w < c ? w : c;
                        pthread_rwlock_unlock(&s->rw);
                        return *ret == NOWHERE ? -ENXIO : 0;
                }
                /* SEEK_HOLE: walk over data until a page is none. */
                if (dsm__emap_next(&t->ws, obj, page, &e) && e.page <= page) {
                        page = e.page + e.npages;
                        continue;
                }
                if (freed_until(t, obj, page) ||
                    !(dsm__emap_next(&s->index, obj, page, &e) && e.page <= page)) {
                        *ret = page;
                        pthread_rwlock_unlock(&s->rw);
                        return 0;
                }
                f = next_free_start(t, obj, page);
                page = e.page + e.npages < f ? e.page + e.npages : f;
        }
}

int dsm_txn_count_pages(struct dsm_txn *t, uint64_t obj, uint64_t *ret)
{
        uint64_t n = 0, p = 0, d, h;
        int r;

        for (;;) {
                r = dsm_txn_seek(t, obj, p, DSM_SEEK_DATA, &d);
                if (r == -ENXIO)
                        break;
                if (r < 0)
                        return r;
                r = dsm_txn_seek(t, obj, d, DSM_SEEK_HOLE, &h);
                if (r < 0)
                        return r;
                n += h - d;
                p = h;
        }
        *ret = n;
        return 0;
}

/* Caller holds rw exclusively. */
static int validate(struct dsm_txn *t)
{
        struct dsm_store *s = t->s;

        for (size_t i = 0; i < t->nreads; i++) {
                const struct rrange *rr = &t->reads[i];
                uint64_t fseq, page = rr->first;
                struct dsm__ext e;

                if (dsm__u64map_get(&s->freed, rr->obj, &fseq) && fseq > t->snap)
                        return DSM_ECONFLICT;
                while (page < rr->first + rr->n && dsm__emap_next(&s->index, rr->obj, page, &e) &&
                       e.page < rr->first + rr->n) {
                        if (e.seq > t->snap)
                                return DSM_ECONFLICT;
                        page = e.page + e.npages;
                }
        }
        return 0;
}

/* The changes a commit made, for the caller to publish. */
static int collect_changes(struct dsm_txn *t, struct dsm_commit *c)
{
        size_t cap = t->nfrees + t->ws.count, n = 0;
        struct dsm_extent *x;

        x = malloc((cap ? cap : 1) * sizeof(*x));
        if (!x)
                return -ENOMEM;
        for (size_t i = 0; i < t->nfrees; i++)
                x[n++] = t->frees[i];
        for (struct dsm__pos p = dsm__emap_first(&t->ws); dsm__emap_get(&t->ws, p);
             p = dsm__emap_advance(&t->ws, p)) {
                const struct dsm__ext *e = dsm__emap_get(&t->ws, p);
                struct dsm_extent *last = n > t->nfrees ? &x[n - 1] : NULL;

                if (last && last->obj == e->obj && last->page + last->npages == e->page)
                        last->npages += e->npages;
                else
                        x[n++] = (struct dsm_extent){ e->obj, e->page, e->npages };
        }
        c->changes = x;
        c->nchanges = n;
        return 0;
}

static void purge_freed(struct dsm_store *s)
{
        /* Only commits and aborts race with this, and both hold rw
         * exclusively or are not looking at `freed`; with no transaction
         * open no snapshot can be older than any entry. */
        if (s->freed.n > 0 && s->active_txns == 0)
                dsm__u64map_free(&s->freed);
}

static int commit(struct dsm_txn *t, const void *meta, size_t metalen, struct dsm_commit *ret, bool sync)
{
        struct dsm_store *s = t->s;
        struct dsm__buf b = { 0 };
        struct iovec *iov = NULL;
        struct dsm__ext *runs = NULL;
        uint64_t seq, loc, end, datalen, data0;
        size_t nrefs = 0, nruns;
        int iovcnt, r;

        if (ret)
                memset(ret, 0, sizeof(*ret));
        if (t->err) {
                r = t->err;
                goto out_free;
        }
        if (metalen > (16u << 20) || metalen > dsm__max_record(s) / 2) {
                r = -E2BIG;
                goto out_free;
        }
        pthread_rwlock_wrlock(&s->rw);
        r = dsm__error(s);
        if (r < 0)
                goto out_unlock;
        r = validate(t);
        if (r < 0)
                goto out_unlock;
        seq = s->seq + 1;

        for (;;) {
                struct dsm__pos p;
                uint64_t need;

                dsm__buf_free(&b);
                dsm__buf_varint(&b, seq);
                dsm__buf_varint(&b, t->nfrees);
                for (size_t i = 0; i < t->nfrees; i++) {
                        dsm__buf_varint(&b, t->frees[i].obj);
                        dsm__buf_varint(&b, t->frees[i].page);
                        dsm__buf_varint(&b, t->frees[i].npages == DSM_TO_END ? 0 : t->frees[i].npages);
                }
                nrefs = 0;
                for (p = dsm__emap_first(&t->ws); dsm__emap_get(&t->ws, p); p = dsm__emap_advance(&t->ws, p))
                        if (!(dsm__emap_get(&t->ws, p)->flags & DSM__F_BUF))
                                nrefs++;
                dsm__buf_varint(&b, nrefs);
                for (p = dsm__emap_first(&t->ws); dsm__emap_get(&t->ws, p); p = dsm__emap_advance(&t->ws, p)) {
                        const struct dsm__ext *e = dsm__emap_get(&t->ws, p);

                        if (e->flags & DSM__F_BUF)
                                continue;
                        dsm__buf_varint(&b, e->obj);
                        dsm__buf_varint(&b, e->page);
                        dsm__buf_varint(&b, e->npages);
                        dsm__buf_varint(&b, e->loc);
                }
                need = DSM__REC_HDR_SIZE + b.len + metalen + 64 +
                       (uint64_t)count_runs(t) * 30 + (uint64_t)t->nslots * DSM_PAGE_SIZE;
                if (need <= dsm__max_record(s) || t->nslots == 0)
                        break;
                /* Too big for one record: stream the pages out first. */
                r = spill(t, true);
                if (r < 0)
                        goto out_unlock;
        }
        free(iov);
        iov = malloc((t->nslots + 1) * (sizeof(*iov) + sizeof(*runs)));
        if (!iov) {
                r = -ENOMEM;
                goto out_unlock;
        }
        runs = (struct dsm__ext *)(iov + t->nslots + 1);
        dsm__buf_varint(&b, count_runs(t));
        nruns = describe_runs(t, &b, iov, &iovcnt, &datalen, runs);
        dsm__buf_varint(&b, metalen);
        dsm__buf_put(&b, meta, metalen);
        r = b.err;
        if (r < 0)
                goto out_unlock;
        r = dsm__log_append(s, DSM__REC_COMMIT, t->id, b.p, (uint32_t)b.len, (uint32_t)metalen,
                            iov, iovcnt, datalen, room_before(t, iov, iovcnt), &loc, &end);
        if (r < 0)
                goto out_unlock;

        /* Visible from here on, all at once (we hold rw exclusively) [I3]. */
        s->seq = seq;
        dsm__ckpt_payload(s, seq, meta, metalen);       /* for the next delta [I7] */
        data0 = loc + DSM__REC_HDR_SIZE + dsm__align8((uint32_t)b.len);
        for (size_t i = 0; r >= 0 && i < t->nfrees; i++) {
                r = dsm__emap_remove(&s->index, t->frees[i].obj, t->frees[i].page, t->frees[i].npages);
                if (r >= 0)
                        r = dsm__u64map_put(&s->freed, t->frees[i].obj, seq);
        }
        for (struct dsm__pos p = dsm__emap_first(&t->ws); r >= 0 && dsm__emap_get(&t->ws, p);
             p = dsm__emap_advance(&t->ws, p)) {
                struct dsm__ext e = *dsm__emap_get(&t->ws, p);

                if (e.flags & DSM__F_BUF)
                        continue;
                e.seq = seq;
                r = dsm__emap_insert(&s->index, &e);
        }
        for (size_t i = 0; r >= 0 && i < nruns; i++) {
                runs[i].loc += data0;
                runs[i].seq = seq;
                r = dsm__emap_insert(&s->index, &runs[i]);
        }
        if (r >= 0 && ret) {
                ret->seq = seq;
                r = collect_changes(t, ret);
        }
        pthread_mutex_lock(&s->log_mtx);
        s->commits++;
        if (r < 0)
                dsm__set_error(s, r);   /* the index no longer matches the log */
        pthread_mutex_unlock(&s->log_mtx);
        dsm__emap_clear(&t->ws, true);
        pthread_mutex_lock(&s->log_mtx);
        s->active_txns--;
        t->s = NULL;
        pthread_mutex_unlock(&s->log_mtx);
        purge_freed(s);
        pthread_rwlock_unlock(&s->rw);
        if (r >= 0 && sync)
                r = dsm__log_sync(s, end);
        if (r < 0 && ret)
                dsm_commit_release(ret);
        free(iov);
        dsm__buf_free(&b);
        free(t->mem);
        free(t->slots);
        free(t->reads);
        free(t->frees);
        free(t);
        return r;

out_unlock:
        pthread_rwlock_unlock(&s->rw);
out_free:
        free(iov);
        dsm__buf_free(&b);
        txn_free(t);
        return r;
}

int dsm_txn_commit(struct dsm_txn *t, const void *meta, size_t metalen, struct dsm_commit *ret)
{
        return commit(t, meta, metalen, ret, true);
}

int dsm_txn_commit_nosync(struct dsm_txn *t, const void *meta, size_t metalen, struct dsm_commit *ret)
{
        return commit(t, meta, metalen, ret, false);
}

int dsm_sync(struct dsm_store *s)
{
        uint64_t upto;
        int r = dsm__error(s);

        if (r < 0)
                return r;
        pthread_mutex_lock(&s->log_mtx);
        upto = s->tail;
        pthread_mutex_unlock(&s->log_mtx);
        return dsm__log_sync(s, upto);
}

void dsm_commit_release(struct dsm_commit *c)
{
        if (!c)
                return;
        free(c->changes);
        c->changes = NULL;
        c->nchanges = 0;
}
