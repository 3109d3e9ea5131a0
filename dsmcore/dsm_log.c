/*
 * dsm_log.c -- the segment log: segment files, appending records at the
 * tail, group commit, and reading back.
 *
 * States of the tail (edges name the function):
 *
 *   APPENDING --dsm__log_append (record does not fit)--> SWITCHING
 *   SWITCHING --dsm__log_switch: flush old, create new--> APPENDING
 *   any --failed write or flush: dsm__set_error--> FAILED (sticky, [I6])
 *
 * Group commit (dsm__log_sync): a committer that finds its record not yet
 * durable either waits for the flush in progress or, if none is, becomes
 * the leader: it notes the tail, drops the mutex, calls fdatasync on the
 * tail segment, and on success advances `durable` to the noted tail and
 * wakes every waiter.  Many commits thus share one flush.  [I5] lets the
 * leader flush only the tail segment.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "dsm_int.h"

int dsm__error(struct dsm_store *s)
{
        return __atomic_load_n(&s->err, __ATOMIC_ACQUIRE);
}

/* Caller holds log_mtx. */
void dsm__set_error(struct dsm_store *s, int err)
{
        if (!s->err && err < 0)
                __atomic_store_n(&s->err, err, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&s->log_cond);
}

int dsm__seg_path(const struct dsm_store *s, uint64_t segno, char *buf, size_t len)
{
        int n = snprintf(buf, len, "%s/seg-%016llx.log", s->dir, (unsigned long long)segno);

        return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Binary search; caller holds seg_mtx. */
struct dsm__seg *dsm__seg_find(struct dsm_store *s, uint64_t segno)
{
        size_t lo = 0, hi = s->nsegs;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;

                if (s->segs[mid].segno == segno)
                        return &s->segs[mid];
                if (s->segs[mid].segno < segno)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static void seg_adjust(struct dsm_store *s, uint64_t loc, int64_t pages, bool pin)
{
        struct dsm__seg *g;

        pthread_mutex_lock(&s->seg_mtx);
        g = dsm__seg_find(s, DSM__LOC_SEG(loc));
        if (g) {
                uint64_t *c = pin ? &g->pins : &g->live;
                int64_t bytes = pages * (int64_t)DSM_PAGE_SIZE;

                assert(bytes >= 0 || *c >= (uint64_t)-bytes);  /* [I4] */
                *c += (uint64_t)bytes;
        }
        pthread_mutex_unlock(&s->seg_mtx);
}

/* emap accounting hook of the page index: live bytes per segment [I4]. */
void dsm__seg_account(void *ctx, const struct dsm__ext *e, uint64_t loc, int64_t pages)
{
        struct dsm_store *s = ctx;

        seg_adjust(s, loc, pages, false);
        /* The mapping of these pages changed: the next delta holds them [I7]. */
        dsm__ckpt_dirty(s, e->obj, e->page + (loc - e->loc) / DSM_PAGE_SIZE,
                        (uint64_t)(pages < 0 ? -pages : pages));
}

/* emap accounting hook of write sets: staged bytes pin their segment. */
void dsm__seg_pin(void *ctx, const struct dsm__ext *e, uint64_t loc, int64_t pages)
{
        if (!(e->flags & DSM__F_BUF))
                seg_adjust(ctx, loc, pages, true);
}

int dsm__seg_hdr_encode(const struct dsm_store *s, uint64_t segno, uint8_t *h)
{
        memset(h, 0, DSM__SEG_HDR_SIZE);
        memcpy(h, DSM__SEG_MAGIC, 8);
        dsm__put32(h + 8, DSM__FORMAT_VERSION);
        dsm__put32(h + 12, DSM_PAGE_SIZE);
        dsm__put32(h + 16, s->segsize);
        dsm__put32(h + 20, DSM__SEG_HDR_SIZE);
        dsm__put64(h + 24, segno);
        dsm__put64(h + 32, s->store_id);
        dsm__put64(h + 40, s->ckpt_loc);
        dsm__put64(h + 48, s->next_txn);
        dsm__put32(h + 60, dsm__csum(h, 60));
        return 0;
}

static int write_full(struct dsm_store *s, int fd, const void *buf, size_t len, uint64_t off)
{
        const uint8_t *p = buf;

        while (len) {
                ssize_t n = s->io->pwrite(s->ioctx, fd, p, len, off);

                if (n < 0)
                        return (int)n;
                if (n == 0)
                        return -ENOSPC;
                p += n;
                off += (uint64_t)n;
                len -= (size_t)n;
        }
        return 0;
}

int dsm__pread_full(struct dsm_store *s, int fd, void *buf, size_t len, uint64_t off)
{
        uint8_t *p = buf;

        while (len) {
                ssize_t n = s->io->pread(s->ioctx, fd, p, len, off);

                if (n < 0)
                        return (int)n;
                if (n == 0)
                        return -ENODATA;        /* past the end */
                p += n;
                off += (uint64_t)n;
                len -= (size_t)n;
        }
        return 0;
}

/* Create segment file segno with its header and add it to the table.
 * Caller holds log_mtx (or is alone, at format/open).  The directory entry
 * is always made durable.  The header is flushed now only if `durable`:
 * otherwise it becomes durable with the first flush of the segment, and a
 * crash before that leaves a newest segment with a bad header, which
 * recovery removes as a torn creation (it held nothing acknowledged).  A
 * segment whose header publishes a new checkpoint must be durable before
 * anything relies on that checkpoint [I4]. */
int dsm__seg_create(struct dsm_store *s, uint64_t segno, bool durable)
{
        char path[4096];
        uint8_t hdr[DSM__SEG_HDR_SIZE];
        int fd, r;

        r = dsm__seg_path(s, segno, path, sizeof(path));
        if (r < 0)
                return r;
        fd = s->io->open(s->ioctx, path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
                return fd;
        dsm__seg_hdr_encode(s, segno, hdr);
        r = write_full(s, fd, hdr, sizeof(hdr), 0);
        if (r >= 0 && durable) {
                r = s->io->fdatasync(s->ioctx, fd);
                s->flushes++;
        }
        if (r >= 0)
                r = s->io->syncdir(s->ioctx, s->dir);
        if (r < 0)
                goto fail;

        pthread_mutex_lock(&s->seg_mtx);
        if (s->nsegs == s->segcap) {
                size_t cap = s->segcap ? s->segcap * 2 : 16;
                struct dsm__seg *n = realloc(s->segs, cap * sizeof(*n));

                if (!n) {
                        pthread_mutex_unlock(&s->seg_mtx);
                        r = -ENOMEM;
                        goto fail;
                }
                s->segs = n;
                s->segcap = cap;
        }
        assert(s->nsegs == 0 || s->segs[s->nsegs - 1].segno < segno);
        s->segs[s->nsegs++] = (struct dsm__seg){ .segno = segno, .fd = fd, .size = DSM__SEG_HDR_SIZE };
        pthread_mutex_unlock(&s->seg_mtx);
        return 0;
fail:
        s->io->close(s->ioctx, fd);
        return r;
}

static int tail_fd(struct dsm_store *s)
{
        struct dsm__seg *g;
        int fd;

        pthread_mutex_lock(&s->seg_mtx);
        g = dsm__seg_find(s, DSM__LOC_SEG(s->tail));
        fd = g ? g->fd : -EIO;
        pthread_mutex_unlock(&s->seg_mtx);
        return fd;
}

/* Flush the tail segment and start the next one.  Caller holds log_mtx.
 * The new segment's header records the newest checkpoint; `durable` as for
 * dsm__seg_create. */
int dsm__log_switch(struct dsm_store *s, bool durable)
{
        uint64_t segno;
        int fd, r;

        /* Let a running flush finish first: it flushes this segment. */
        while (s->flushing)
                pthread_cond_wait(&s->log_cond, &s->log_mtx);
        if (s->err)
                return s->err;
        /* Only now: while we waited, another appender (a DATA spill under
         * the shared index lock, or a commit while a delta checkpoint is
         * written) may have switched already. */
        segno = DSM__LOC_SEG(s->tail) + 1;
        fd = tail_fd(s);
        if (fd < 0)
                return fd;
        if (s->durable < s->tail) {
                r = s->io->fdatasync(s->ioctx, fd);
                s->flushes++;
                if (r < 0) {
                        dsm__set_error(s, r);
                        return r;
                }
                s->durable = s->tail;   /* [I5] */
        }
        /* A file recovery skipped for its bad header may hold this number
         * (several damaged segments at the end of the log): never write
         * over it, take the next free number. */
        while ((r = dsm__seg_create(s, segno, durable)) == -EEXIST)
                segno++;
        if (r < 0) {
                dsm__set_error(s, r);
                return r;
        }
        s->tail = DSM__LOC(segno, DSM__SEG_HDR_SIZE);
        /* Without a flushed header, nothing in the new segment is durable
         * yet: the next sync must flush it. */
        s->durable = durable ? s->tail : DSM__LOC(segno, 0);
        pthread_cond_broadcast(&s->log_cond);
        return 0;
}

/*
 * Name the newest checkpoint (s->ckpt_loc) in the tail segment's header,
 * rewritten in place (64 bytes inside the first sector: it lands whole or
 * not at all), without a switch to a new segment and without a flush under
 * log_mtx.  Until the tail segment is flushed next, recovery may still see
 * the header naming the previous checkpoint, which stays valid.  Caller
 * holds log_mtx; *ret_upto gets what the caller must then dsm__log_sync()
 * for the header to be durable.
 */
int dsm__log_publish(struct dsm_store *s, uint64_t *ret_upto)
{
        uint8_t hdr[DSM__SEG_HDR_SIZE];
        uint64_t segno;
        int fd, r;

        /* A flush already under way may have started before our write:
         * let it finish, so that the next one covers the header. */
        while (s->flushing)
                pthread_cond_wait(&s->log_cond, &s->log_mtx);
        if (s->err)
                return s->err;
        segno = DSM__LOC_SEG(s->tail);
        fd = tail_fd(s);
        if (fd < 0)
                return fd;
        dsm__seg_hdr_encode(s, segno, hdr);
        r = write_full(s, fd, hdr, sizeof(hdr), 0);
        if (r < 0) {
                dsm__set_error(s, r);
                return r;
        }
        /* Nothing in this segment counts as flushed until it is again. */
        if (s->durable > DSM__LOC(segno, 0))
                s->durable = DSM__LOC(segno, 0);
        *ret_upto = s->tail;
        return 0;
}

int dsm__log_append(struct dsm_store *s, uint8_t type, uint64_t txn,
                    const void *meta, uint32_t mlen, uint32_t payload,
                    const struct iovec *iov, int iovcnt, uint64_t datalen, size_t room,
                    uint64_t *ret_loc, uint64_t *ret_end)
{
        uint32_t head = DSM__REC_HDR_SIZE + dsm__align8(mlen);
        uint64_t len = head + datalen, off, loc;
        uint8_t small[4096], *h;
        struct dsm__seg *g;
        int fd, r;

        assert(datalen % 8 == 0);
        if (len > dsm__max_record(s))
                return -EFBIG;
        h = head <= sizeof(small) ? small : malloc(head);
        if (!h)
                return -ENOMEM;
        memset(h, 0, DSM__REC_HDR_SIZE);
        dsm__put16(h, DSM__REC_MAGIC);
        h[2] = type;
        dsm__put32(h + 4, (uint32_t)len);
        dsm__put32(h + 8, mlen);
        dsm__put32(h + 12, dsm__csum(meta, mlen));
        dsm__put64(h + 16, txn);
        dsm__put32(h + 28, dsm__csum(h, 28));
        if (mlen)
                memcpy(h + DSM__REC_HDR_SIZE, meta, mlen);
        memset(h + DSM__REC_HDR_SIZE + mlen, 0, head - DSM__REC_HDR_SIZE - mlen);

        pthread_mutex_lock(&s->log_mtx);
        r = s->err;
        if (r < 0)
                goto out;
        if (DSM__LOC_OFF(s->tail) + len > s->segsize) {
                r = dsm__log_switch(s, false);
                if (r < 0)
                        goto out;
        }
        loc = s->tail;
        off = DSM__LOC_OFF(loc);
        fd = tail_fd(s);
        if (fd >= 0 && iovcnt > 0 && head <= room) {
                /* The caller left room before its data: one write for the
                 * header and the first run. */
                uint8_t *p = (uint8_t *)iov[0].iov_base - head;

                memcpy(p, h, head);
                r = write_full(s, fd, p, head + iov[0].iov_len, off);
                off += head + iov[0].iov_len;
                iov++;
                iovcnt--;
        } else {
                r = fd < 0 ? fd : write_full(s, fd, h, head, off);
                off += head;
        }
        for (int i = 0; r >= 0 && i < iovcnt; i++) {
                r = write_full(s, fd, iov[i].iov_base, iov[i].iov_len, off);
                off += iov[i].iov_len;
        }
        if (r < 0) {
                dsm__set_error(s, r);
                goto out;
        }
        s->tail = loc + len;
        pthread_mutex_lock(&s->seg_mtx);
        g = dsm__seg_find(s, DSM__LOC_SEG(loc));
        if (g)
                g->size = DSM__LOC_OFF(s->tail);
        pthread_mutex_unlock(&s->seg_mtx);
        s->data_written += datalen;
        s->payload_written += payload;
        s->meta_written += head - payload;
        *ret_loc = loc;
        if (ret_end)
                *ret_end = loc + len;
        r = 0;
out:
        pthread_mutex_unlock(&s->log_mtx);
        if (h != small)
                free(h);
        return r;
}

int dsm__log_sync(struct dsm_store *s, uint64_t upto)
{
        int r;

        pthread_mutex_lock(&s->log_mtx);
        while (!s->err && s->durable < upto) {
                uint64_t target;
                int fd;

                if (s->flushing) {
                        pthread_cond_wait(&s->log_cond, &s->log_mtx);
                        continue;
                }
                s->flushing = true;
                target = s->tail;
                fd = tail_fd(s);
                pthread_mutex_unlock(&s->log_mtx);
                r = fd < 0 ? fd : s->io->fdatasync(s->ioctx, fd);
                pthread_mutex_lock(&s->log_mtx);
                s->flushing = false;
                s->flushes++;
                if (r < 0)
                        dsm__set_error(s, r);
                else if (target > s->durable)
                        s->durable = target;
                pthread_cond_broadcast(&s->log_cond);
        }
        r = s->err;
        pthread_mutex_unlock(&s->log_mtx);
        return r;
}

/* Read len bytes at a log address.  Caller holds rw (shared or exclusive),
 * so the segment cannot be removed meanwhile [I4]. */
int dsm__read_loc(struct dsm_store *s, uint64_t loc, void *buf, size_t len)
{
        struct dsm__seg *g;
        int fd, r;

        pthread_mutex_lock(&s->seg_mtx);
        g = dsm__seg_find(s, DSM__LOC_SEG(loc));
        fd = g ? g->fd : -1;
        pthread_mutex_unlock(&s->seg_mtx);
        if (fd < 0)
                return -EIO;
        r = dsm__pread_full(s, fd, buf, len, DSM__LOC_OFF(loc));
        return r == -ENODATA ? -EIO : r;
}
