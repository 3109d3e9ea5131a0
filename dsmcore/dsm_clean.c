/*
 * dsm_clean.c -- the cleaner: gives back the space of superseded and freed
 * pages.
 *
 * Only segments wholly before the first record of the newest full
 * checkpoint (the base of the chain, [I7]) are touched: recovery never
 * replays them, so the only thing in them that
 * matters is page data the index still points at (seg.live, [I4]).  A
 * segment with no live bytes is deleted.  A segment whose live share is
 * small has its live extents copied to the tail as RELOC records (each
 * names the version it moves, so replay applies it only if that version
 * is still current); once those are durable the segment is deleted.  A
 * crash in between leaves both copies, and recovery picks the RELOC.
 * Segments pinned by open transactions, and segments holding damaged
 * data (kept as evidence), are left alone.
 */
#include <stdlib.h>

#include "dsm_int.h"

struct victim {
        uint64_t segno;
        bool relocate;
        int fd;                         /* once out of the table */
};

static bool is_victim(const struct victim *v, size_t n, uint64_t segno, bool *relocate)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].segno == segno) {
                        *relocate = v[i].relocate;
                        return true;
                }
        return false;
}

struct reloc_batch {
        struct dsm__buf desc;
        uint8_t *data;
        size_t datalen;
        struct dsm__ext *ext;
        size_t n;
};

static int flush_batch(struct dsm_store *s, struct reloc_batch *b, uint64_t *end)
{
        struct dsm__buf meta = { 0 };
        struct iovec iov = { b->data, b->datalen };
        uint64_t loc = 0, data0;
        int r;

        if (!b->n)
                return 0;
        dsm__buf_varint(&meta, b->n);
        dsm__buf_put(&meta, b->desc.p, b->desc.len);
        r = meta.err ? meta.err : b->desc.err;
        if (r >= 0)
                r = dsm__log_append(s, DSM__REC_RELOC, 0, meta.p, (uint32_t)meta.len, 0, &iov, 1, b->datalen, 0,
                                    &loc, end);
        data0 = loc + DSM__REC_HDR_SIZE + dsm__align8((uint32_t)meta.len);
        for (size_t i = 0; r >= 0 && i < b->n; i++)
                r = dsm__apply_reloc(s, b->ext[i].obj, b->ext[i].page, b->ext[i].npages, b->ext[i].seq,
                                     data0 + b->ext[i].loc, false);
        dsm__buf_free(&meta);
        b->desc.len = 0;
        b->datalen = 0;
        b->n = 0;
        return r;
}

/* Copy every live extent of the relocated victims to the tail. */
static int relocate(struct dsm_store *s, const struct victim *v, size_t nv, uint64_t *end)
{
        struct reloc_batch b = { 0 };
        struct dsm__ext *todo = NULL;
        size_t ntodo = 0, cap = 0, maxpages = s->chunk / DSM_PAGE_SIZE;
        int r = 0;

        for (struct dsm__pos p = dsm__emap_first(&s->index); dsm__emap_get(&s->index, p);
             p = dsm__emap_advance(&s->index, p)) {
                const struct dsm__ext *e = dsm__emap_get(&s->index, p);
                bool rel;

                if (!is_victim(v, nv, DSM__LOC_SEG(e->loc), &rel) || !rel)
                        continue;
                /* Split big extents so each piece fits one record. */
                for (uint64_t done = 0; done < e->npages; done += maxpages) {
                        struct dsm__ext piece = *e;

                        piece.page += done;
                        piece.loc += done * DSM_PAGE_SIZE;
                        piece.npages = (uint32_t)(e->npages - done < maxpages ? e->npages - done : maxpages);
                        if (ntodo == cap) {
                                size_t ncap = cap ? cap * 2 : 64;
                                struct dsm__ext *n = realloc(todo, ncap * sizeof(*n));

                                if (!n) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                todo = n;
                                cap = ncap;
                        }
                        todo[ntodo++] = piece;
                }
        }
        b.data = malloc(s->chunk);
        b.ext = malloc(maxpages * sizeof(*b.ext));
        if (!b.data || !b.ext) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < ntodo; i++) {
                struct dsm__ext *e = &todo[i];
                size_t len = (size_t)e->npages * DSM_PAGE_SIZE;

                if (b.datalen + len > s->chunk || b.desc.len + 64 > s->chunk / 4) {
                        r = flush_batch(s, &b, end);
                        if (r < 0)
                                goto out;
                }
                r = dsm__read_loc(s, e->loc, b.data + b.datalen, len);
                if (r < 0)
                        goto out;
                dsm__buf_varint(&b.desc, e->obj);
                dsm__buf_varint(&b.desc, e->page);
                dsm__buf_varint(&b.desc, e->npages);
                dsm__buf_varint(&b.desc, e->seq);
                dsm__buf_u32(&b.desc, dsm__csum(b.data + b.datalen, len));
                b.ext[b.n] = *e;
                b.ext[b.n].loc = b.datalen;
                b.n++;
                b.datalen += len;
        }
        r = flush_batch(s, &b, end);
out:
        dsm__buf_free(&b.desc);
        free(b.data);
        free(b.ext);
        free(todo);
        return r;
}

/* Take out of v every segment that holds a page the index marks damaged
 * (its checksum failed, in this run's recovery or in an earlier one: the
 * mark survives checkpoints, the damaged ranges of has_damage() do not).
 * Moving such a page would give it a fresh checksum: the damage would then
 * read back as good data.  Returns the new count. */
static size_t keep_damaged(const struct dsm_store *s, struct victim *v, size_t nv)
{
        for (struct dsm__pos p = dsm__emap_first(&s->index); nv && dsm__emap_get(&s->index, p);
             p = dsm__emap_advance(&s->index, p)) {
                const struct dsm__ext *e = dsm__emap_get(&s->index, p);

                if (!(e->flags & DSM__F_DAMAGED))
                        continue;
                for (size_t i = 0; i < nv; i++)
                        if (v[i].segno == DSM__LOC_SEG(e->loc)) {
                                v[i] = v[--nv];
                                break;
                        }
        }
        return nv;
}

static bool has_damage(const struct dsm_store *s, uint64_t segno)
{
        for (size_t i = 0; i < s->ndamaged; i++)
                if (DSM__LOC_SEG(s->damaged[i].start) <= segno && DSM__LOC_SEG(s->damaged[i].end - 1) >= segno)
                        return true;
        return false;
}

static int clean(struct dsm_store *s, unsigned max_live_pct, bool ckpt)
{
        struct victim *v = NULL;
        size_t nv = 0;
        uint64_t base, end = 0, t0 = 0;
        int r, reclaimed = 0;
        bool locked = false;

        if (max_live_pct > 100)
                return -EINVAL;
        pthread_mutex_lock(&s->ckpt_mtx);
        pthread_rwlock_wrlock(&s->rw);
        t0 = dsm__now_us();
        locked = true;
        r = dsm__error(s);
        if (r < 0)
                goto out;
        if (ckpt && (!s->ckpt_loc || s->seq != s->ckpt_seq || s->chain_len)) {
                /* A new base lets everything before it go [I7]. */
                r = dsm__checkpoint_locked(s);
                if (r < 0)
                        goto out;
        }
        if (!s->ckpt_loc)
                goto out;               /* r = 0: nothing may go */
        base = DSM__LOC_SEG(s->chain_first);

        pthread_mutex_lock(&s->seg_mtx);
        v = calloc(s->nsegs ? s->nsegs : 1, sizeof(*v));
        if (!v) {
                pthread_mutex_unlock(&s->seg_mtx);
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < s->nsegs; i++) {
                const struct dsm__seg *g = &s->segs[i];
                uint64_t room = s->segsize - DSM__SEG_HDR_SIZE;

                if (g->segno >= base || g->pins || has_damage(s, g->segno))
                        continue;
                if (g->live == 0)
                        v[nv++] = (struct victim){ g->segno, false, -1 };
                else if (g->live * 100 <= (uint64_t)max_live_pct * room)
                        v[nv++] = (struct victim){ g->segno, true, -1 };
        }
        pthread_mutex_unlock(&s->seg_mtx);
        nv = keep_damaged(s, v, nv);
        for (size_t i = 0; i < nv; i++)
                if (v[i].relocate) {
                        r = relocate(s, v, nv, &end);
                        if (r >= 0 && end)
                                r = dsm__log_sync(s, end);
                        break;
                }
        if (r < 0)
                goto out;

        /* Out of the table under the lock: no reader can reach them now. */
        for (size_t i = 0; i < nv; i++) {
                struct dsm__seg *g;

                pthread_mutex_lock(&s->seg_mtx);
                g = dsm__seg_find(s, v[i].segno);
                assert(g && g->live == 0 && g->pins == 0);      /* [I4] */
                v[i].fd = g->fd;
                memmove(g, g + 1, (size_t)((s->segs + s->nsegs) - (g + 1)) * sizeof(*g));
                s->nsegs--;
                pthread_mutex_unlock(&s->seg_mtx);
        }
        /* Closing and unlinking them (and the directory flush) need no lock:
         * commits run meanwhile.  A crash before the unlink leaves a
         * segment recovery reads but never replays (it lies before the
         * base), and the next pass removes it. */
        dsm__held(s, t0);
        pthread_rwlock_unlock(&s->rw);
        locked = false;
        for (size_t i = 0; i < nv; i++) {
                char path[4096];

                s->io->close(s->ioctx, v[i].fd);
                r = dsm__seg_path(s, v[i].segno, path, sizeof(path));
                if (r >= 0)
                        r = s->io->unlink(s->ioctx, path);
                if (r < 0) {
                        pthread_mutex_lock(&s->log_mtx);
                        dsm__set_error(s, r);
                        pthread_mutex_unlock(&s->log_mtx);
                        for (size_t k = i + 1; k < nv; k++)
                                s->io->close(s->ioctx, v[k].fd);
                        goto out;
                }
                reclaimed++;
        }
        if (reclaimed) {
                r = s->io->syncdir(s->ioctx, s->dir);
                if (r < 0) {
                        pthread_mutex_lock(&s->log_mtx);
                        dsm__set_error(s, r);
                        pthread_mutex_unlock(&s->log_mtx);
                        goto out;
                }
        }
        r = reclaimed;
out:
        free(v);
        if (locked) {
                dsm__held(s, t0);
                pthread_rwlock_unlock(&s->rw);
        }
        pthread_mutex_unlock(&s->ckpt_mtx);
        return r;
}

int dsm_clean(struct dsm_store *s, unsigned max_live_pct)
{
        return clean(s, max_live_pct, true);
}

int dsm_clean_base(struct dsm_store *s, unsigned max_live_pct)
{
        return clean(s, max_live_pct, false);
}
