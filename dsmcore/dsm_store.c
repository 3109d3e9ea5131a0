/*
 * dsm_store.c -- formatting, opening (finding the segments and which store
 * they belong to), closing, seek, stats.
 *
 * dsm_open does step 1 of recovery: list seg-*.log, read every segment
 * header.  The newest sound header says which store this is
 * (store_identity); a segment of another store counts as a bad header.  A
 * bad header on the newest segment is a segment whose creation was torn:
 * it is removed.  A bad header elsewhere is damage: reported, the segment
 * skipped.  The rest of recovery (loading the newest checkpoint, replay,
 * flushing what was replayed) is dsm__recover(), in dsm_recover.c, which
 * describes every step.
 *
 * Writing checkpoints is in dsm_ckpt.c.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dsm_int.h"

/* ---- helpers --------------------------------------------------------------- */

void dsm__report(struct dsm_store *s, uint64_t segno, uint64_t off, uint64_t len, const char *what)
{
        struct dsm_damage d = { segno, off, len };

        if (s->opt.damage)
                s->opt.damage(s->opt.damage_ctx, &d, what);
}

static bool parse_segname(const char *name, uint64_t *segno)
{
        unsigned long long v;
        char tail[8];

        if (strlen(name) != 4 + 16 + 4 || strncmp(name, "seg-", 4) != 0)
                return false;
        if (sscanf(name, "seg-%16llx%7s", &v, tail) != 2 || strcmp(tail, ".log") != 0 || v == 0)
                return false;
        *segno = v;
        return true;
}

struct segnos {
        uint64_t *v;
        size_t n, cap;
};

static int collect_seg(void *arg, const char *name)
{
        struct segnos *l = arg;
        uint64_t segno;

        if (!parse_segname(name, &segno))
                return 0;
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                uint64_t *n = realloc(l->v, cap * sizeof(*n));

                if (!n)
                        return -ENOMEM;
                l->v = n;
                l->cap = cap;
        }
        l->v[l->n++] = segno;
        return 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static struct dsm_store *store_new(const char *dir, const struct dsm_options *opt)
{
        struct dsm_store *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->dir = strdup(dir);
        if (!s->dir) {
                free(s);
                return NULL;
        }
        if (opt)
                s->opt = *opt;
        s->io = s->opt.io ? s->opt.io : &dsm_posix_io;
        s->ioctx = s->opt.io_ctx;
        pthread_rwlock_init(&s->rw, NULL);
        pthread_mutex_init(&s->log_mtx, NULL);
        pthread_cond_init(&s->log_cond, NULL);
        pthread_mutex_init(&s->seg_mtx, NULL);
        pthread_mutex_init(&s->ckpt_mtx, NULL);
        dsm__emap_init(&s->index, dsm__seg_account, s);
        s->next_txn = 1;
        return s;
}

static void store_free(struct dsm_store *s)
{
        if (!s)
                return;
        dsm__emap_clear(&s->index, false);
        dsm__u64map_free(&s->freed);
        for (size_t i = 0; i < s->nsegs; i++)
                s->io->close(s->ioctx, s->segs[i].fd);
        free(s->segs);
        free(s->damaged);
        dsm__ckpt_reset(s);
        pthread_mutex_destroy(&s->ckpt_mtx);
        pthread_rwlock_destroy(&s->rw);
        pthread_mutex_destroy(&s->log_mtx);
        pthread_cond_destroy(&s->log_cond);
        pthread_mutex_destroy(&s->seg_mtx);
        free(s->dir);
        free(s);
}

static int list_segments(struct dsm_store *s, struct segnos *l)
{
        int r = s->io->listdir(s->ioctx, s->dir, collect_seg, l);

        if (r < 0)
                return r;
        if (l->n)
                qsort(l->v, l->n, sizeof(l->v[0]), cmp_u64);
        return 0;
}

/* A segment header that is sound by itself (the store it belongs to aside). */
static bool seg_hdr_valid(const uint8_t *h, uint64_t size, uint64_t segno)
{
        return size >= DSM__SEG_HDR_SIZE && !memcmp(h, DSM__SEG_MAGIC, 8) && dsm__get32(h + 60) == dsm__csum(h, 60) &&
               dsm__get32(h + 8) == DSM__FORMAT_VERSION && dsm__get32(h + 12) == DSM_PAGE_SIZE &&
               dsm__get32(h + 20) == DSM__SEG_HDR_SIZE && dsm__get64(h + 24) == segno &&
               dsm__get32(h + 16) >= DSM_SEGMENT_SIZE_MIN && dsm__get32(h + 16) <= DSM_SEGMENT_SIZE_MAX;
}

/*
 * Which store this is (store id, segment size): the one of the newest
 * segment whose header is sound.  Recovery trusts that header for the
 * checkpoint anyway; taking the identity from the oldest segment instead
 * let a stray segment of another store, once the cleaner had removed the
 * real oldest one, disown every real segment.  0 if no header is sound.
 */
static int store_identity(struct dsm_store *s, const struct segnos *l)
{
        for (size_t i = l->n; i-- > 0;) {
                char path[4096];
                uint8_t h[DSM__SEG_HDR_SIZE];
                uint64_t size = 0;
                int fd, r;

                r = dsm__seg_path(s, l->v[i], path, sizeof(path));
                if (r < 0)
                        return r;
                fd = s->io->open(s->ioctx, path, O_RDONLY, 0);
                if (fd < 0)
                        return fd;
                r = s->io->fsize(s->ioctx, fd, &size);
                if (r >= 0 && size >= DSM__SEG_HDR_SIZE)
                        r = dsm__pread_full(s, fd, h, sizeof(h), 0);
                s->io->close(s->ioctx, fd);
                if (r < 0 && r != -ENODATA)
                        return r;
                if (r >= 0 && seg_hdr_valid(h, size, l->v[i])) {
                        s->segsize = dsm__get32(h + 16);
                        s->store_id = dsm__get64(h + 32);
                        return 0;
                }
        }
        return 0;
}

/* ---- format ------------------------------------------------------------------ */

int dsm_format(const char *dir, const struct dsm_options *opt)
{
        uint32_t segsize = opt && opt->segment_size ? opt->segment_size : DSM_SEGMENT_SIZE_DEFAULT;
        struct segnos l = { 0 };
        struct dsm_store *s;
        int r;

        if (segsize < DSM_SEGMENT_SIZE_MIN || segsize > DSM_SEGMENT_SIZE_MAX || segsize % DSM_PAGE_SIZE)
                return -EINVAL;
        s = store_new(dir, opt);
        if (!s)
                return -ENOMEM;
        s->segsize = segsize;
        r = s->io->mkdir(s->ioctx, dir, 0700);
        if (r < 0 && r != -EEXIST)
                goto out;
        r = list_segments(s, &l);
        if (r < 0)
                goto out;
        if (l.n) {
                r = -EEXIST;
                goto out;
        }
        if (getrandom(&s->store_id, sizeof(s->store_id), GRND_NONBLOCK) != sizeof(s->store_id)) {
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                s->store_id = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
        }
        r = dsm__seg_create(s, 1, true);
out:
        free(l.v);
        store_free(s);
        return r;
}

/* ---- open / close ---------------------------------------------------------------- */

int dsm_open(const char *dir, const struct dsm_options *opt, struct dsm_store **ret)
{
        struct segnos l = { 0 };
        struct dsm_store *s;
        uint64_t newest_ckpt = 0, newest_seg = 0;
        uint32_t chunk;
        int r;

        s = store_new(dir, opt);
        if (!s)
                return -ENOMEM;
        r = list_segments(s, &l);
        if (r < 0)
                goto fail;
        if (!l.n) {
                r = -ENOENT;
                goto fail;
        }
        r = store_identity(s, &l);
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < l.n; i++) {
                char path[4096];
                uint8_t h[DSM__SEG_HDR_SIZE];
                bool newest = i + 1 == l.n, ok;
                uint64_t size = 0;
                int fd;

                r = dsm__seg_path(s, l.v[i], path, sizeof(path));
                if (r < 0)
                        goto fail;
                fd = s->io->open(s->ioctx, path, O_RDWR, 0);
                if (fd < 0) {
                        r = fd;
                        goto fail;
                }
                r = s->io->fsize(s->ioctx, fd, &size);
                if (r >= 0 && size >= DSM__SEG_HDR_SIZE)
                        r = dsm__pread_full(s, fd, h, sizeof(h), 0);
                if (r < 0 && r != -ENODATA) {
                        s->io->close(s->ioctx, fd);
                        goto fail;
                }
                ok = seg_hdr_valid(h, size, l.v[i]) && dsm__get32(h + 16) == s->segsize &&
                     dsm__get64(h + 32) == s->store_id;
                if (!ok) {
                        s->io->close(s->ioctx, fd);
                        if (newest && s->nsegs) {
                                /* Its creation was torn: it never held a record. */
                                dsm__report(s, l.v[i], 0, size, "torn segment creation: segment removed");
                                r = s->io->unlink(s->ioctx, path);
                                if (r >= 0)
                                        r = s->io->syncdir(s->ioctx, s->dir);
                                if (r < 0)
                                        goto fail;
                                continue;
                        }
                        dsm__report(s, l.v[i], 0, size, "bad segment header: segment skipped");
                        continue;
                }
                newest_ckpt = dsm__get64(h + 40);
                newest_seg = l.v[i];
                if (dsm__get64(h + 48) > s->next_txn)
                        s->next_txn = dsm__get64(h + 48);
                if (s->nsegs == s->segcap) {
                        size_t cap = s->segcap ? s->segcap * 2 : 16;
                        struct dsm__seg *n = realloc(s->segs, cap * sizeof(*n));

                        if (!n) {
                                s->io->close(s->ioctx, fd);
                                r = -ENOMEM;
                                goto fail;
                        }
                        s->segs = n;
                        s->segcap = cap;
                }
                s->segs[s->nsegs++] = (struct dsm__seg){ .segno = l.v[i], .fd = fd, .size = size };
        }
        if (!s->nsegs) {
                r = -EBADMSG;
                goto fail;
        }
        chunk = s->opt.txn_buffer ? s->opt.txn_buffer : (1u << 20);
        if (chunk > s->segsize / 4)
                chunk = s->segsize / 4;
        chunk &= ~(DSM_PAGE_SIZE - 1);
        if (chunk < DSM_PAGE_SIZE)
                chunk = DSM_PAGE_SIZE;
        s->chunk = chunk;

        s->ckpt_loc = newest_ckpt;
        (void)newest_seg;
        r = dsm__recover(s);
        if (r < 0)
                goto fail;
        free(l.v);
        *ret = s;
        return 0;
fail:
        if (r == -ECANCELED && s->cb_err)
                r = s->cb_err;
        free(l.v);
        store_free(s);
        return r;
}

void dsm_close(struct dsm_store *s)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->log_mtx);
        while (s->flushing)
                pthread_cond_wait(&s->log_cond, &s->log_mtx);
        pthread_mutex_unlock(&s->log_mtx);
        store_free(s);
}

/* ---- queries ------------------------------------------------------------------------ */

int dsm_seek(struct dsm_store *s, uint64_t obj, uint64_t page, int whence, uint64_t *ret)
{
        struct dsm__ext e;
        int r = dsm__error(s);

        if (r < 0)
                return r;
        if (whence != DSM_SEEK_DATA && whence != DSM_SEEK_HOLE)
                return -EINVAL;
        pthread_rwlock_rdlock(&s->rw);
        if (whence == DSM_SEEK_DATA) {
                if (dsm__emap_next(&s->index, obj, page, &e)) {
                        *ret = e.page > page ? e.page : page;
                        r = 0;
                } else {
                        r = -ENXIO;
                }
        } else {
                uint64_t pos = page;

                while (dsm__emap_next(&s->index, obj, pos, &e) && e.page <= pos)
                        pos = e.page + e.npages;
                *ret = pos;
                r = 0;
        }
        pthread_rwlock_unlock(&s->rw);
        return r;
}

int dsm_error(struct dsm_store *s)
{
        return dsm__error(s);
}

void dsm_get_stats(struct dsm_store *s, struct dsm_stats *st)
{
        memset(st, 0, sizeof(*st));
        pthread_rwlock_rdlock(&s->rw);
        st->seq = s->seq;
        st->index_extents = s->index.count;
        st->damaged_extents = s->damaged_extents;
        pthread_mutex_lock(&s->log_mtx);
        st->checkpoint_seq = s->ckpt_seq;
        st->checkpoints = s->ckpts_full;
        st->delta_checkpoints = s->ckpts_delta;
        st->checkpoint_chain = s->chain_len;
        st->checkpoint_hold_max_us = __atomic_load_n(&s->ckpt_hold_max, __ATOMIC_RELAXED);
        st->data_bytes_written = s->data_written;
        st->meta_bytes_written = s->meta_written;
        st->payload_bytes_written = s->payload_written;
        st->flushes = s->flushes;
        st->commits = s->commits;
        st->recovery_bytes = s->recovery_bytes;
        pthread_mutex_lock(&s->seg_mtx);
        st->segments = s->nsegs;
        st->segment_size = s->segsize;
        for (size_t i = 0; i < s->nsegs; i++) {
                st->log_bytes += s->segs[i].size;
                st->live_bytes += s->segs[i].live;
        }
        pthread_mutex_unlock(&s->seg_mtx);
        pthread_mutex_unlock(&s->log_mtx);
        pthread_rwlock_unlock(&s->rw);
}
