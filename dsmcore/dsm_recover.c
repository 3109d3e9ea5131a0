/*
 * dsm_recover.c -- recovery: what dsm_open does once the segments are open
 * (dsm__recover), and reading the checkpoint chain back (dsm__chain_read).
 *
 * Recovery (dsm_open, then dsm__recover):
 *   1. (dsm_open, in dsm_store.c) list seg-*.log, read every segment
 *      header.  The newest sound header says which store this is
 *      (store_identity); a segment of another store counts as a bad
 *      header.  A bad header on the newest segment is a segment whose
 *      creation was torn: it is removed.  A bad header elsewhere is
 *      damage: reported, the segment skipped.
 *   2. the newest header names the newest complete checkpoint (its END
 *      record).  Its index and metadata image are loaded (load_checkpoint).
 *   3. every record after the END record is replayed in log order
 *      (replay_segment): COMMIT records update the index and hand their
 *      payload to the caller, RELOC records move pages the cleaner moved.
 *      Every checksum is verified.  In the newest segment the first bad
 *      record starts the torn tail, which is cut off ([I5]: nothing before
 *      it can be torn).  In older segments a bad record is damage: it is
 *      reported with segment and offset, the pages it held are marked
 *      damaged (reads refuse them), and the scan resynchronises on the next
 *      valid record header.
 *   4. index entries whose segment no longer exists (a relocation cut off
 *      with a damaged tail after the cleaner reclaimed the old segment) are
 *      marked damaged and reported (flag_lost).
 *   5. every segment replayed is flushed (flush_replayed): after a crash
 *      of the process alone its records may have reached only the page
 *      cache, and from now on the store treats them as durable.
 *
 *   In step 2 the newest checkpoint may be a delta: load_checkpoint follows
 *   the chain back to its full base and applies base and deltas in order
 *   [I7]; replay then starts at the newest one's replay_from.
 *
 * Writing checkpoints is in dsm_ckpt.c.
 *
 * Threads: dsm__recover runs inside dsm_open, before anyone else can see
 * the store; dsm__chain_read runs under ckpt_mtx (dsm_ckpt.c).  The read
 * window (struct win) has a reader thread of its own, joined before the
 * window is freed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dsm_int.h"

/* Recovery's read window (below).  A build may shrink it and KEEP_MAX: the
 * fuzz build does, so that its small stores cross windows. */
#ifndef DSM__WINDOW
#define DSM__WINDOW (8u << 20)
#endif
#define WINDOW DSM__WINDOW

/* ---- reading records ----------------------------------------------------------- */

/*
 * The recovery reader.  A window holds bytes [off, off + len) of one
 * segment file at buf.  While recovery checksums and indexes one window, a
 * reader thread reads the next one into a spare buffer, so reading and
 * checking overlap.  Both buffers keep KEEP_MAX bytes of room in front of
 * the data, where the tail of the previous window (a record that straddled
 * its end) is copied, so nothing is read twice.
 */
#ifndef DSM__KEEP_MAX
#define DSM__KEEP_MAX (2u << 20)
#endif
#define KEEP_MAX DSM__KEEP_MAX

struct win {
        struct dsm_store *s;
        int fd;
        uint64_t fsize;
        uint8_t *buf;                   /* the window's data, inside cmem */
        uint64_t off;
        size_t len;
        uint8_t *cmem;                  /* KEEP_MAX + ccap bytes */
        size_t ccap;
        /* the reader thread and its one outstanding request */
        pthread_t th;
        bool started;
        pthread_mutex_t mtx;
        pthread_cond_t cond;
        bool pending;                   /* a request is queued or running */
        bool done;                      /* ... and has finished */
        bool quit;
        int pfd;
        uint64_t poff;
        size_t plen;
        int perr;
        uint8_t *pmem;                  /* KEEP_MAX + WINDOW bytes */
        bool quiet;                     /* not recovery: no recovery_bytes */
};

static void *win_reader(void *arg)
{
        struct win *w = arg;

        pthread_mutex_lock(&w->mtx);
        for (;;) {
                while (!w->quit && (!w->pending || w->done))
                        pthread_cond_wait(&w->cond, &w->mtx);
                if (w->quit)
                        break;
                pthread_mutex_unlock(&w->mtx);
                int r = dsm__pread_full(w->s, w->pfd, w->pmem + KEEP_MAX, w->plen, w->poff);
                pthread_mutex_lock(&w->mtx);
                w->perr = r;
                w->done = true;
                pthread_cond_broadcast(&w->cond);
        }
        pthread_mutex_unlock(&w->mtx);
        return NULL;
}

static void win_init(struct win *w, struct dsm_store *s)
{
        memset(w, 0, sizeof(*w));
        w->s = s;
        pthread_mutex_init(&w->mtx, NULL);
        pthread_cond_init(&w->cond, NULL);
}

/* Wait for the outstanding read, if any; returns with none pending. */
static void win_drain(struct win *w)
{
        if (!w->started)
                return;
        pthread_mutex_lock(&w->mtx);
        while (w->pending && !w->done)
                pthread_cond_wait(&w->cond, &w->mtx);
        w->pending = false;
        pthread_mutex_unlock(&w->mtx);
}

static void win_free(struct win *w)
{
        if (w->started) {
                win_drain(w);
                pthread_mutex_lock(&w->mtx);
                w->quit = true;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->mtx);
                pthread_join(w->th, NULL);
        }
        pthread_mutex_destroy(&w->mtx);
        pthread_cond_destroy(&w->cond);
        free(w->cmem);
        free(w->pmem);
}

/* Start reading the window after the current one, if the file has more. */
static void win_prefetch(struct win *w)
{
        uint64_t next = w->off + w->len;

        if (next >= w->fsize)
                return;
        if (!w->pmem) {
                w->pmem = malloc(KEEP_MAX + WINDOW);
                if (!w->pmem)
                        return;         /* reads simply will not overlap */
        }
        if (!w->started) {
                if (pthread_create(&w->th, NULL, win_reader, w) != 0)
                        return;
                w->started = true;
        }
        pthread_mutex_lock(&w->mtx);
        w->pfd = w->fd;
        w->poff = next;
        w->plen = (size_t)(w->fsize - next < WINDOW ? w->fsize - next : WINDOW);
        w->pending = true;
        w->done = false;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mtx);
}

/* Point the window at another file (or the same one afresh). */
static void win_reset(struct win *w, int fd, uint64_t fsize)
{
        win_drain(w);
        w->fd = fd;
        w->fsize = fsize;
        w->off = 0;
        w->len = 0;
}

/* Bytes [off, off + n) of the window's file; -ENODATA past its end. */
static int win_get(struct win *w, uint64_t off, size_t n, const uint8_t **ret)
{
        size_t want, keep = 0, koff = 0;
        int r;

        if (off + n > w->fsize)
                return -ENODATA;
        if (off >= w->off && off + n <= w->off + w->len) {
                *ret = w->buf + (off - w->off);
                return 0;
        }
        if (off >= w->off && off < w->off + w->len) {
                keep = (size_t)(w->off + w->len - off);
                koff = (size_t)(off - w->off);
        }
        /* The read ahead, if it is what comes next and what we need fits. */
        if (w->started && w->pending) {
                bool usable;

                win_drain(w);
                usable = w->perr >= 0 && w->pfd == w->fd && w->poff == w->off + w->len &&
                         keep <= KEEP_MAX && off + keep == w->poff && off + n <= w->poff + w->plen;
                if (usable) {
                        uint8_t *nb = w->pmem + KEEP_MAX - keep, *old = w->cmem;

                        /* Swap: our buffer (at least WINDOW) becomes the spare. */
                        memcpy(nb, w->buf + koff, keep);
                        w->cmem = w->pmem;
                        w->pmem = old;
                        w->ccap = WINDOW;
                        w->buf = nb;
                        w->off = off;
                        w->len = keep + w->plen;
                        if (!w->quiet)
                                w->s->recovery_bytes += w->plen;
                        win_prefetch(w);
                        *ret = w->buf;
                        return 0;
                }
        }
        /* Read it ourselves. */
        want = n > WINDOW ? n : WINDOW;
        if (want > w->fsize - off)
                want = (size_t)(w->fsize - off);
        if (keep) {
                /* Move the kept tail to the front of the data area. */
                size_t from = (size_t)(w->buf - w->cmem) + koff;

                memmove(w->cmem + KEEP_MAX, w->cmem + from, keep);
        }
        if (want > w->ccap || !w->cmem) {
                uint8_t *p = realloc(w->cmem, KEEP_MAX + (want > WINDOW ? want : WINDOW));

                if (!p)
                        return -ENOMEM;
                w->cmem = p;
                w->ccap = want > WINDOW ? want : WINDOW;
        }
        w->buf = w->cmem + KEEP_MAX;
        r = dsm__pread_full(w->s, w->fd, w->buf + keep, want - keep, off + keep);
        if (r < 0) {
                w->len = 0;
                return r == -ENODATA ? -EIO : r;
        }
        if (!w->quiet)
                w->s->recovery_bytes += want - keep;
        w->off = off;
        w->len = want;
        win_prefetch(w);
        *ret = w->buf;
        return 0;
}

struct rec {
        uint8_t type;
        uint32_t len;
        uint32_t mlen;
        uint64_t txn;
        const uint8_t *meta;
        const uint8_t *data;
        uint64_t datalen;
        uint64_t data_loc;
};

static bool header_ok(const struct dsm_store *s, const uint8_t *h)
{
        uint32_t len = dsm__get32(h + 4), mlen = dsm__get32(h + 8), head;
        uint64_t datalen;

        if (dsm__get16(h) != DSM__REC_MAGIC || dsm__get32(h + 28) != dsm__csum(h, 28))
                return false;
        if (len < DSM__REC_HDR_SIZE || len % 8 || len > dsm__max_record(s) || mlen > len - DSM__REC_HDR_SIZE)
                return false;
        head = DSM__REC_HDR_SIZE + dsm__align8(mlen);
        if (head > len)
                return false;
        datalen = len - head;
        switch (h[2]) {
        case DSM__REC_DATA:
        case DSM__REC_COMMIT:
        case DSM__REC_RELOC:
                return datalen % DSM_PAGE_SIZE == 0;
        case DSM__REC_CKPT_INDEX:
        case DSM__REC_CKPT_META:
        case DSM__REC_CKPT_END:
        case DSM__REC_CKPT_CLEAR:
        case DSM__REC_CKPT_COMMITS:
                return datalen == 0;
        default:
                return false;
        }
}

/* Read and verify the record at off (header and body checksums).
 * Returns 0, -EBADMSG (bad record), -ENODATA (runs past the end) or an
 * I/O error. */
static int read_record(struct win *w, uint64_t segno, uint64_t off, struct rec *rc)
{
        const uint8_t *h, *p;
        int r;

        r = win_get(w, off, DSM__REC_HDR_SIZE, &h);
        if (r < 0)
                return r;
        if (!header_ok(w->s, h))
                return -EBADMSG;
        rc->type = h[2];
        rc->len = dsm__get32(h + 4);
        rc->mlen = dsm__get32(h + 8);
        rc->txn = dsm__get64(h + 16);
        r = win_get(w, off, rc->len, &p);
        if (r < 0)
                return r;
        rc->meta = p + DSM__REC_HDR_SIZE;
        if (dsm__get32(p + 12) != dsm__csum(rc->meta, rc->mlen))
                return -EBADMSG;
        rc->data = rc->meta + dsm__align8(rc->mlen);
        rc->datalen = rc->len - DSM__REC_HDR_SIZE - dsm__align8(rc->mlen);
        rc->data_loc = DSM__LOC(segno, off + DSM__REC_HDR_SIZE + dsm__align8(rc->mlen));
        return 0;
}

/* ---- applying records -------------------------------------------------------------- */

static bool loc_damaged(const struct dsm_store *s, uint64_t loc, uint64_t len)
{
        struct dsm__seg *g;

        for (size_t i = 0; i < s->ndamaged; i++)
                if (loc < s->damaged[i].end && loc + len > s->damaged[i].start)
                        return true;
        g = dsm__seg_find((struct dsm_store *)s, DSM__LOC_SEG(loc));
        return !g;
}

static int add_damaged(struct dsm_store *s, uint64_t start, uint64_t end)
{
        struct dsm__damaged *n = realloc(s->damaged, (s->ndamaged + 1) * sizeof(*n));

        if (!n)
                return -ENOMEM;
        s->damaged = n;
        s->damaged[s->ndamaged++] = (struct dsm__damaged){ start, end };
        return 0;
}

static int insert_ext(struct dsm_store *s, struct dsm__ext *e)
{
        if (e->flags & DSM__F_DAMAGED)
                s->damaged_extents++;
        return dsm__emap_insert(&s->index, e);
}

/* Move the pages of <obj, page .. page+n> that still carry version seq to
 * new data at loc (a RELOC record). */
int dsm__apply_reloc(struct dsm_store *s, uint64_t obj, uint64_t page, uint64_t n, uint64_t seq,
                       uint64_t loc, bool bad)
{
        uint64_t pos = page, end = page + n;
        struct dsm__ext e;
        int r;

        while (pos < end && dsm__emap_next(&s->index, obj, pos, &e) && e.page < end) {
                uint64_t a = e.page > pos ? e.page : pos;
                uint64_t b = e.page + e.npages < end ? e.page + e.npages : end;

                if (e.seq == seq) {
                        struct dsm__ext ne = { .obj = obj, .page = a, .npages = (uint32_t)(b - a),
                                               .loc = loc + (a - page) * DSM_PAGE_SIZE, .seq = seq,
                                               .flags = bad ? DSM__F_DAMAGED : 0 };

                        r = insert_ext(s, &ne);
                        if (r < 0)
                                return r;
                }
                pos = b;
        }
        return 0;
}

/* Data descriptors of DATA/COMMIT/RELOC records: obj, page, npages,
 * [seq for RELOC], checksum.  Verifies each run's data; bad runs are
 * flagged in *ret_bad. */
struct run {
        uint64_t obj, page, npages, seq;
        uint64_t loc;
        bool bad;
};

static int parse_runs(struct dsm__rd *rd, const struct rec *rc, bool with_seq, struct run **ret, size_t *ret_n,
                      bool *ret_anybad)
{
        uint64_t n = dsm__rd_varint(rd), off = 0;
        struct run *v;

        *ret_anybad = false;
        if (rd->err || n > rc->datalen / DSM_PAGE_SIZE + 1)
                return -EBADMSG;
        v = calloc(n ? n : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (uint64_t i = 0; i < n; i++) {
                v[i].obj = dsm__rd_varint(rd);
                v[i].page = dsm__rd_varint(rd);
                v[i].npages = dsm__rd_varint(rd);
                if (with_seq)
                        v[i].seq = dsm__rd_varint(rd);
                uint32_t cs = dsm__rd_u32(rd);

                if (rd->err || v[i].npages == 0 || v[i].npages > rc->datalen / DSM_PAGE_SIZE ||
                    off + v[i].npages * DSM_PAGE_SIZE > rc->datalen || v[i].page + v[i].npages < v[i].page) {
                        free(v);
                        return -EBADMSG;
                }
                v[i].loc = rc->data_loc + off;
                v[i].bad = dsm__csum(rc->data + off, v[i].npages * DSM_PAGE_SIZE) != cs;
                if (v[i].bad)
                        *ret_anybad = true;
                off += v[i].npages * DSM_PAGE_SIZE;
        }
        if (off != rc->datalen) {
                free(v);
                return -EBADMSG;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

struct freeop {
        uint64_t obj, first, n;
};

struct refop {
        uint64_t obj, page, n, loc;
};

/* Apply one COMMIT record.  `last`: the record is in the newest segment, so
 * any bad data means a torn tail (-EBADMSG, nothing applied). */
static int apply_commit(struct dsm_store *s, const struct rec *rc, bool last, uint64_t segno, uint64_t off)
{
        struct dsm__rd rd = { rc->meta, rc->mlen, 0, false };
        struct freeop *fr = NULL;
        struct refop *rf = NULL;
        struct run *runs = NULL;
        size_t nruns = 0;
        uint64_t seq, nfree, nref, metalen;
        const uint8_t *meta;
        bool anybad;
        int r = -EBADMSG;

        seq = dsm__rd_varint(&rd);
        nfree = dsm__rd_varint(&rd);
        if (rd.err || nfree > rc->mlen)
                return -EBADMSG;
        fr = calloc(nfree ? nfree : 1, sizeof(*fr));
        if (!fr)
                return -ENOMEM;
        for (uint64_t i = 0; i < nfree; i++) {
                fr[i].obj = dsm__rd_varint(&rd);
                fr[i].first = dsm__rd_varint(&rd);
                fr[i].n = dsm__rd_varint(&rd);
                if (!fr[i].n)
                        fr[i].n = DSM_TO_END;
        }
        nref = dsm__rd_varint(&rd);
        if (rd.err || nref > rc->mlen)
                goto out;
        rf = calloc(nref ? nref : 1, sizeof(*rf));
        if (!rf) {
                r = -ENOMEM;
                goto out;
        }
        for (uint64_t i = 0; i < nref; i++) {
                rf[i].obj = dsm__rd_varint(&rd);
                rf[i].page = dsm__rd_varint(&rd);
                rf[i].n = dsm__rd_varint(&rd);
                rf[i].loc = dsm__rd_varint(&rd);
                if (rf[i].n == 0 || rf[i].n > UINT32_MAX || rf[i].loc >= DSM__LOC(segno, off))
                        rd.err = true;
        }
        if (rd.err)
                goto out;
        r = parse_runs(&rd, rc, false, &runs, &nruns, &anybad);
        if (r < 0)
                goto out;
        r = -EBADMSG;
        metalen = dsm__rd_varint(&rd);
        meta = dsm__rd_bytes(&rd, metalen);
        if (rd.err || rd.pos != rd.len)
                goto out;
        if (anybad && last)
                goto out;       /* torn: the commit never completed */
        if (anybad)
                dsm__report(s, segno, off, rc->len, "commit record data checksum mismatch: pages refused");
        if (seq <= s->seq) {
                /* Already in the checkpoint we started from. */
                r = 0;
                goto out;
        }
        r = 0;
        for (uint64_t i = 0; r >= 0 && i < nfree; i++) {
                r = dsm__emap_remove(&s->index, fr[i].obj, fr[i].first, fr[i].n);
        }
        for (uint64_t i = 0; r >= 0 && i < nref; i++) {
                struct dsm__ext e = { .obj = rf[i].obj, .page = rf[i].page, .npages = (uint32_t)rf[i].n,
                                      .loc = rf[i].loc, .seq = seq };

                if (loc_damaged(s, rf[i].loc, rf[i].n * DSM_PAGE_SIZE))
                        e.flags |= DSM__F_DAMAGED;
                r = insert_ext(s, &e);
        }
        for (size_t i = 0; r >= 0 && i < nruns; i++) {
                struct dsm__ext e = { .obj = runs[i].obj, .page = runs[i].page,
                                      .npages = (uint32_t)runs[i].npages, .loc = runs[i].loc, .seq = seq,
                                      .flags = runs[i].bad ? DSM__F_DAMAGED : 0 };

                r = insert_ext(s, &e);
        }
        if (r < 0)
                goto out;
        s->seq = seq;
        dsm__ckpt_payload(s, seq, meta, metalen);       /* for the next delta [I7] */
        if (s->opt.replay) {
                r = s->opt.replay(s->opt.replay_ctx, DSM_REPLAY_COMMIT, seq, meta, metalen);
                if (r < 0) {
                        /* Carried past the damage handling, as is. */
                        s->cb_err = r;
                        r = -ECANCELED;
                }
        }
out:
        free(fr);
        free(rf);
        free(runs);
        return r;
}

static int apply_record(struct dsm_store *s, const struct rec *rc, bool last, uint64_t segno, uint64_t off)
{
        struct dsm__rd rd = { rc->meta, rc->mlen, 0, false };
        struct run *runs = NULL;
        size_t nruns = 0;
        bool anybad;
        int r = 0;

        if (rc->txn >= s->next_txn)
                s->next_txn = rc->txn + 1;
        switch (rc->type) {
        case DSM__REC_COMMIT:
                return apply_commit(s, rc, last, segno, off);
        case DSM__REC_DATA:
        case DSM__REC_RELOC:
                r = parse_runs(&rd, rc, rc->type == DSM__REC_RELOC, &runs, &nruns, &anybad);
                if (r < 0)
                        return r;
                if (rd.pos != rd.len) {
                        free(runs);
                        return -EBADMSG;
                }
                if (anybad && last) {
                        free(runs);
                        return -EBADMSG;
                }
                for (size_t i = 0; r >= 0 && i < nruns; i++) {
                        if (runs[i].bad) {
                                dsm__report(s, segno, DSM__LOC_OFF(runs[i].loc), runs[i].npages * DSM_PAGE_SIZE,
                                       "page data checksum mismatch: pages refused");
                                if (rc->type == DSM__REC_DATA)
                                        r = add_damaged(s, runs[i].loc, runs[i].loc + runs[i].npages * DSM_PAGE_SIZE);
                        }
                        if (rc->type == DSM__REC_RELOC)
                                r = dsm__apply_reloc(s, runs[i].obj, runs[i].page, runs[i].npages, runs[i].seq,
                                                runs[i].loc, runs[i].bad);
                }
                free(runs);
                return r;
        default:
                return 0;       /* checkpoint records: only read from the END record */
        }
}

/* Scan forward from off for the next valid record header (8-byte steps). */
static uint64_t resync(struct win *w, uint64_t off)
{
        for (off += 8; off + DSM__REC_HDR_SIZE <= w->fsize; off += 8) {
                const uint8_t *h;

                if (win_get(w, off, DSM__REC_HDR_SIZE, &h) < 0)
                        break;
                if (header_ok(w->s, h) && off + dsm__get32(h + 4) <= w->fsize)
                        return off;
        }
        return w->fsize;
}

static int replay_segment(struct dsm_store *s, struct dsm__seg *g, uint64_t start, bool last, struct win *w)
{
        uint64_t off = start, fsize;
        int r;

        r = s->io->fsize(s->ioctx, g->fd, &fsize);
        if (r < 0)
                return r;
        win_reset(w, g->fd, fsize);
        if (s->io->advise_seq)
                s->io->advise_seq(s->ioctx, g->fd);
        while (off + DSM__REC_HDR_SIZE <= w->fsize) {
                struct rec rc;

                r = read_record(w, g->segno, off, &rc);
                if (r >= 0) {
                        r = apply_record(s, &rc, last, g->segno, off);
                        if (r >= 0) {
                                off += rc.len;
                                continue;
                        }
                }
                if (r != -EBADMSG && r != -ENODATA)
                        return r;
                if (last)
                        break;  /* torn tail: cut below */
                uint64_t next = resync(w, off);

                dsm__report(s, g->segno, off, next - off, "damaged records: their pages are refused");
                r = add_damaged(s, DSM__LOC(g->segno, off), DSM__LOC(g->segno, next));
                if (r < 0)
                        return r;
                off = next;
        }
        if (last && off < w->fsize) {
                if (off + DSM__REC_HDR_SIZE <= w->fsize || off != w->fsize)
                        dsm__report(s, g->segno, off, w->fsize - off, "torn tail cut off");
                /* Flushed with the rest of what was replayed (dsm_open). */
                r = s->io->ftruncate(s->ioctx, g->fd, off);
                if (r < 0)
                        return r;
        }
        g->size = last ? off : w->fsize;
        return 0;
}

/* An index entry whose segment is gone has no data left: the cleaner
 * reclaimed the segment after relocating its pages, and recovery then cut
 * the relocation off with a damaged tail.  Mark such pages damaged, so that
 * reads refuse them (DSM_ECORRUPT) rather than fail as if the disk did,
 * and report them. */
static void flag_lost(struct dsm_store *s)
{
        for (struct dsm__pos p = dsm__emap_first(&s->index); dsm__emap_get(&s->index, p);
             p = dsm__emap_advance(&s->index, p)) {
                struct dsm__ext *e = dsm__emap_get(&s->index, p);

                if ((e->flags & DSM__F_DAMAGED) || dsm__seg_find(s, DSM__LOC_SEG(e->loc)))
                        continue;
                e->flags |= DSM__F_DAMAGED;
                s->damaged_extents++;
                dsm__report(s, DSM__LOC_SEG(e->loc), DSM__LOC_OFF(e->loc), (uint64_t)e->npages * DSM_PAGE_SIZE,
                       "pages of a segment that no longer exists: refused");
        }
}

/* ---- checkpoints ----------------------------------------------------------- */

/* A parsed CKPT_END record. */
struct ckend {
        uint64_t loc, len;
        uint64_t seq, next_txn, first, nindex;
        uint64_t kind, prev, replay_from, image_seq;
};

/* Point the window at segment segno (or the first one after it, if
 * `after`).  seg_mtx guards the table: the chain is also read while
 * commits append (dsm_checkpoint_compact). */
static int win_at(struct dsm_store *s, struct win *w, uint64_t segno, bool after, uint64_t *ret_segno)
{
        struct dsm__seg *g = NULL;
        uint64_t fsize;
        int fd, r;

        pthread_mutex_lock(&s->seg_mtx);
        if (!after)
                g = dsm__seg_find(s, segno);
        else
                for (size_t i = 0; i < s->nsegs && !g; i++)
                        if (s->segs[i].segno > segno)
                                g = &s->segs[i];
        fd = g ? g->fd : -1;
        segno = g ? g->segno : 0;
        pthread_mutex_unlock(&s->seg_mtx);
        if (fd < 0)
                return -EBADMSG;
        if (w->fd != fd || *ret_segno != segno) {
                r = s->io->fsize(s->ioctx, fd, &fsize);
                if (r < 0)
                        return r;
                win_reset(w, fd, fsize);
        }
        *ret_segno = segno;
        return 0;
}

static int read_end(struct dsm_store *s, struct win *w, uint64_t loc, struct ckend *ce)
{
        uint64_t segno = 0;
        struct dsm__rd rd;
        struct rec rc;
        int r;

        r = win_at(s, w, DSM__LOC_SEG(loc), false, &segno);
        if (r < 0)
                return r;
        r = read_record(w, segno, DSM__LOC_OFF(loc), &rc);
        if (r < 0 || rc.type != DSM__REC_CKPT_END)
                return r == -EIO || r == -ENOMEM ? r : -EBADMSG;
        rd = (struct dsm__rd){ rc.meta, rc.mlen, 0, false };
        memset(ce, 0, sizeof(*ce));
        ce->loc = loc;
        ce->len = rc.len;
        ce->seq = dsm__rd_varint(&rd);
        ce->next_txn = dsm__rd_varint(&rd);
        ce->first = dsm__rd_varint(&rd);
        ce->nindex = dsm__rd_varint(&rd);
        (void)dsm__rd_varint(&rd);
        ce->image_seq = ce->seq;
        if (!rd.err && rd.pos < rd.len) {
                /* Written since delta checkpoints exist. */
                ce->kind = dsm__rd_varint(&rd);
                ce->prev = dsm__rd_varint(&rd);
                ce->replay_from = dsm__rd_varint(&rd);
                ce->image_seq = dsm__rd_varint(&rd);
        }
        if (rd.err || ce->first > loc || ce->kind > DSM__CKPT_DELTA || ce->image_seq > ce->seq ||
            (ce->kind == DSM__CKPT_DELTA && (!ce->prev || ce->prev >= ce->first)) ||
            (ce->replay_from && ce->replay_from > loc))
                return -EBADMSG;
        return 0;
}

/* Read the chain ending at the END record at loc, newest first. */
static int read_chain(struct dsm_store *s, struct win *w, uint64_t loc, struct ckend **ret, size_t *ret_n)
{
        struct ckend *chain = NULL;
        size_t n = 0, cap = 0;
        int r;

        for (;;) {
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 8;
                        struct ckend *v = realloc(chain, nc * sizeof(*v));

                        if (!v) {
                                free(chain);
                                return -ENOMEM;
                        }
                        chain = v;
                        cap = nc;
                }
                r = read_end(s, w, loc, &chain[n]);
                if (r < 0) {
                        free(chain);
                        return r;
                }
                if (chain[n++].kind == DSM__CKPT_FULL)
                        break;
                loc = chain[n - 1].prev;
        }
        *ret = chain;
        *ret_n = n;
        return 0;
}

/* How one checkpoint of a chain is read. */
struct chain_rd {
        bool index;                     /* apply its index records to s->index */
        dsm_replay_fn fn;               /* gets its image and payloads, may be NULL */
        void *ctx;
        uint64_t seq;                   /* last seq handed over */
        int cb_err;
};

/* Read the records of one checkpoint of the chain, from its first record
 * to its END, skipping the records of other kinds written meanwhile. */
static int load_one(struct dsm_store *s, struct win *w, const struct ckend *ce, struct chain_rd *cr)
{
        uint64_t loc, loaded = 0, segno = 0;
        int r;

        if (ce->kind == DSM__CKPT_FULL)
                cr->seq = ce->image_seq;
        for (loc = ce->first; loc < ce->loc;) {
                struct dsm__rd rd;
                struct rec rc;

                r = win_at(s, w, DSM__LOC_SEG(loc), false, &segno);
                if (r < 0)
                        return r;
                if (DSM__LOC_OFF(loc) + DSM__REC_HDR_SIZE > w->fsize) {
                        r = win_at(s, w, segno, true, &segno);          /* next segment */
                        if (r < 0)
                                return r;
                        loc = DSM__LOC(segno, DSM__SEG_HDR_SIZE);
                        continue;
                }
                r = read_record(w, segno, DSM__LOC_OFF(loc), &rc);
                if (r < 0)
                        return r == -EIO || r == -ENOMEM ? r : -EBADMSG;
                rd = (struct dsm__rd){ rc.meta, rc.mlen, 0, false };
                if (rc.type == DSM__REC_CKPT_INDEX && cr->index) {
                        uint32_t n = dsm__rd_u32(&rd);

                        for (uint32_t i = 0; i < n && !rd.err; i++) {
                                struct dsm__ext e;

                                e.obj = dsm__rd_varint(&rd);
                                e.page = dsm__rd_varint(&rd);
                                e.npages = (uint32_t)dsm__rd_varint(&rd);
                                e.loc = dsm__rd_varint(&rd);
                                e.seq = dsm__rd_varint(&rd);
                                e.flags = (uint32_t)dsm__rd_varint(&rd) & DSM__F_DAMAGED;
                                /* A checkpoint reflects the commits up to
                                 * its seq: a later version would make every
                                 * transaction reading the page conflict. */
                                if (rd.err || e.npages == 0 || e.seq > ce->seq)
                                        return -EBADMSG;
                                r = insert_ext(s, &e);
                                if (r < 0)
                                        return r;
                                loaded++;
                        }
                } else if (rc.type == DSM__REC_CKPT_CLEAR && cr->index) {
                        uint32_t n = dsm__rd_u32(&rd);

                        for (uint32_t i = 0; i < n && !rd.err; i++) {
                                uint64_t obj = dsm__rd_varint(&rd), page = dsm__rd_varint(&rd);
                                uint64_t np = dsm__rd_varint(&rd);

                                if (rd.err || np == 0)
                                        return -EBADMSG;
                                r = dsm__emap_remove(&s->index, obj, page, np);
                                if (r < 0)
                                        return r;
                        }
                } else if (rc.type == DSM__REC_CKPT_META && cr->fn) {
                        r = cr->fn(cr->ctx, DSM_REPLAY_CHECKPOINT_META, ce->image_seq, rc.meta, rc.mlen);
                        if (r < 0) {
                                cr->cb_err = r;
                                return -ECANCELED;
                        }
                } else if (rc.type == DSM__REC_CKPT_COMMITS) {
                        uint32_t n = dsm__rd_u32(&rd);

                        for (uint32_t i = 0; i < n && !rd.err; i++) {
                                uint64_t seq = dsm__rd_varint(&rd), len = dsm__rd_varint(&rd);
                                const uint8_t *p = dsm__rd_bytes(&rd, len);

                                if (rd.err || seq <= cr->seq || seq > ce->seq)
                                        return -EBADMSG;
                                cr->seq = seq;
                                if (!cr->fn)
                                        continue;
                                r = cr->fn(cr->ctx, DSM_REPLAY_COMMIT, seq, p, len);
                                if (r < 0) {
                                        cr->cb_err = r;
                                        return -ECANCELED;
                                }
                        }
                }
                if (rd.err)
                        return -EBADMSG;
                loc += rc.len;
        }
        if (cr->index && loaded != ce->nindex)
                return -EBADMSG;
        cr->seq = ce->seq;
        return 0;
}

/* Load the newest checkpoint chain [I7]: walk from the newest END back to
 * its full base, then apply them base first. */
static int load_checkpoint(struct dsm_store *s, struct win *w, uint64_t *ret_replay_from)
{
        struct chain_rd cr = { .index = true, .fn = s->opt.replay, .ctx = s->opt.replay_ctx };
        struct ckend *chain = NULL;
        size_t n = 0;
        int r;

        r = read_chain(s, w, s->ckpt_loc, &chain, &n);
        if (r < 0)
                goto bad;
        s->track = false;               /* the chain is a checkpoint already */
        for (size_t i = n; i-- > 0;) {
                r = load_one(s, w, &chain[i], &cr);
                if (r < 0)
                        goto bad;
                if (chain[i].next_txn > s->next_txn)
                        s->next_txn = chain[i].next_txn;
        }
        s->seq = cr.seq;
        s->ckpt_seq = chain[0].seq;
        s->ckpt_first = chain[0].first;
        s->chain_first = chain[n - 1].first;
        s->chain_len = n - 1;
        s->full_bytes = chain[n - 1].loc + chain[n - 1].len - chain[n - 1].first;
        for (size_t i = 0; i + 1 < n; i++)
                s->chain_bytes += chain[i].loc + chain[i].len - chain[i].first;
        *ret_replay_from = chain[0].replay_from ? chain[0].replay_from : chain[0].loc + chain[0].len;
        r = 0;
        goto out;
bad:
        if (r == -ECANCELED)
                s->cb_err = cr.cb_err;
        if (r == -EBADMSG)
                dsm__report(s, DSM__LOC_SEG(s->ckpt_loc), DSM__LOC_OFF(s->ckpt_loc), 0,
                       "checkpoint unreadable: the store cannot be recovered from it");
out:
        free(chain);
        return r;
}

/* Hand the newest chain's image and payloads to fn, as recovery would.
 * Caller holds ckpt_mtx (the chain stays put). */
int dsm__chain_read(struct dsm_store *s, dsm_replay_fn fn, void *ctx, uint64_t *ret_seq)
{
        struct chain_rd cr = { .index = false, .fn = fn, .ctx = ctx };
        struct ckend *chain = NULL;
        struct win w;
        size_t n = 0;
        int r;

        win_init(&w, s);
        w.quiet = true;
        r = read_chain(s, &w, s->ckpt_loc, &chain, &n);
        for (size_t i = n; r >= 0 && i-- > 0;)
                r = load_one(s, &w, &chain[i], &cr);
        if (r == -ECANCELED)
                r = cr.cb_err;
        if (r >= 0)
                *ret_seq = cr.seq;
        free(chain);
        win_free(&w);
        return r;
}

/* ---- recovery ------------------------------------------------------------------------ */

/*
 * After a crash of the process alone (kill -9), the records recovery just
 * replayed may be in the kernel's page cache only: appended, maybe handed
 * out as commits, never flushed.  From now on they count as durable (a
 * later dsm_sync() finds nothing to flush, and a segment switch flushes
 * only what was appended since), so flush them before the store takes its
 * first commit.  Segments before the one replay started in were flushed
 * before the checkpoint recovery started from was published [I5].
 */
static int flush_replayed(struct dsm_store *s, uint64_t from_segno)
{
        for (size_t i = 0; i < s->nsegs; i++) {
                int r;

                if (s->segs[i].segno < from_segno)
                        continue;
                r = s->io->fdatasync(s->ioctx, s->segs[i].fd);
                s->flushes++;
                if (r < 0)
                        return r;
        }
        return 0;
}

int dsm__recover(struct dsm_store *s)
{
        struct win w;
        uint64_t replay_from = 0;
        int r;

        win_init(&w, s);
        if (s->ckpt_loc) {
                r = load_checkpoint(s, &w, &replay_from);
                if (r < 0)
                        goto out;
        } else {
                replay_from = DSM__LOC(s->segs[0].segno, DSM__SEG_HDR_SIZE);
        }
        /* What is replayed from here on goes into the next delta [I7]; with
         * no checkpoint yet there is none to build on. */
        s->track = true;
        s->need_full = !s->ckpt_loc;
        for (size_t i = 0; i < s->nsegs; i++) {
                struct dsm__seg *g = &s->segs[i];
                uint64_t start;

                if (g->segno < DSM__LOC_SEG(replay_from))
                        continue;
                start = g->segno == DSM__LOC_SEG(replay_from) ? DSM__LOC_OFF(replay_from) : DSM__SEG_HDR_SIZE;
                r = replay_segment(s, g, start, i + 1 == s->nsegs, &w);
                if (r < 0)
                        goto out;
        }
        flag_lost(s);
        r = flush_replayed(s, DSM__LOC_SEG(replay_from));
        if (r < 0)
                goto out;
        s->tail = DSM__LOC(s->segs[s->nsegs - 1].segno, s->segs[s->nsegs - 1].size);
        s->durable = s->tail;   /* true now: see flush_replayed() */
        r = 0;
out:
        win_free(&w);
        return r;
}
