/*
 * fuzz_segment.c -- the segment record parser and recovery of the page
 * store (dsmcore/dsm_store.c, dsm_recover.c) over arbitrary segment contents.
 *
 * The input is the store: byte 0 is flags, the rest is cut into segment
 * files at every occurrence of the segment magic "LOCUSSEG" (a segment file
 * begins with it), so a seed is simply the concatenation of the segment
 * files of a real store (gen_corpus.c).  Each file is named after the
 * segment number in its header (or its position, when that is unusable)
 * and lives on the in-memory I/O layer (dsm_faultio), so nothing touches
 * the disk.  Flag bit 0 first recomputes every checksum the harness can
 * find (segment header, record header, record metadata), so that mutated
 * records get past the checksums and into the parsers behind them.
 *
 * Checked: dsm_open() succeeds, or fails with -EBADMSG after reporting the
 * damage (never a crash, a hang, an I/O error or a wrong error code); every
 * page reads back as data, a hole or DSM_ECORRUPT, the same through
 * dsm_read(), dsm_read_pages() and dsm_txn_read(); the recovered store
 * takes a new commit, a checkpoint and a cleaner pass, and opens again
 * with that commit's page intact; and through all that every other page
 * reads as it did right after recovery (a damaged page stays refused, the
 * data of the others does not change).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "dsm_faultio.h"
#include "dsm_int.h"
#include "fuzz.h"

#define DIR "/s"
#define MAXSEG 8

static unsigned long damage_reports;
static volatile uint8_t sink;

static void on_damage(void *ctx, const struct dsm_damage *d, const char *what)
{
        (void)ctx;
        (void)d;
        FZ_CHECK(what && *what);
        damage_reports++;
}

static int on_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        const volatile uint8_t *p = data;

        (void)ctx;
        (void)seq;
        FZ_CHECK(kind == DSM_REPLAY_CHECKPOINT_META || kind == DSM_REPLAY_COMMIT);
        FZ_CHECK(data || !len);
        for (size_t i = 0; i < len; i++)
                sink ^= p[i];
        return 0;
}

/* Recompute the checksums of everything that looks like a header. */
static void fix_checksums(uint8_t *p, size_t len)
{
        size_t off = DSM__SEG_HDR_SIZE;

        if (len < DSM__SEG_HDR_SIZE)
                return;
        dsm__put32(p + 60, dsm__csum(p, 60));
        while (off + DSM__REC_HDR_SIZE <= len) {
                uint8_t *h = p + off;
                uint32_t rlen = dsm__get32(h + 4), mlen = dsm__get32(h + 8);

                if (dsm__get16(h) != DSM__REC_MAGIC) {
                        off += 8;
                        continue;
                }
                if (mlen <= len - off - DSM__REC_HDR_SIZE)
                        dsm__put32(h + 12, dsm__csum(h + DSM__REC_HDR_SIZE, mlen));
                dsm__put32(h + 28, dsm__csum(h, 28));
                off += rlen >= DSM__REC_HDR_SIZE && rlen % 8 == 0 && rlen <= len - off ? rlen : 8;
        }
}

static int write_file(struct dsm_faultio *f, const char *path, const uint8_t *p, size_t len)
{
        int fd = dsm_faultio_ops.open(f, path, O_RDWR | O_CREAT | O_EXCL, 0600);
        size_t done = 0;

        if (fd < 0)
                return fd;
        while (done < len) {
                ssize_t n = dsm_faultio_ops.pwrite(f, fd, p + done, len - done, done);

                FZ_CHECK(n > 0);
                done += (size_t)n;
        }
        FZ_CHECK(dsm_faultio_ops.fdatasync(f, fd) == 0);
        return dsm_faultio_ops.close(f, fd);
}

/* What every page of objects 0..7, pages 0..15 read as: the return code
 * and a hash of the data. */
#define NOBJ 8
#define NPAGE 16
struct view {
        int r[NOBJ][NPAGE];
        uint64_t h[NOBJ][NPAGE];
};

static void read_all(struct dsm_store *s, struct view *v)
{
        static uint8_t buf[DSM_PAGE_SIZE], many[NPAGE * DSM_PAGE_SIZE];

        for (uint64_t obj = 0; obj < NOBJ; obj++) {
                uint64_t pg;
                int r;

                bool anybad = false;

                for (uint64_t page = 0; page < NPAGE; page++) {
                        r = dsm_read(s, obj, page, buf);
                        FZ_CHECK(r == 0 || r == 1 || r == DSM_ECORRUPT);
                        v->r[obj][page] = r;
                        v->h[obj][page] = r >= 0 ? XXH3_64bits(buf, sizeof(buf)) : 0;
                        anybad |= r == DSM_ECORRUPT;
                }
                /* The other read paths agree with dsm_read(). */
                r = dsm_read_pages(s, obj, 0, NPAGE, many);
                FZ_CHECK(r == (anybad ? DSM_ECORRUPT : 0));
                for (uint64_t page = 0; r == 0 && page < NPAGE; page++)
                        FZ_CHECK(XXH3_64bits(many + page * DSM_PAGE_SIZE, DSM_PAGE_SIZE) == v->h[obj][page]);
                for (uint64_t page = 0; page < NPAGE; page++) {
                        struct dsm_txn *t;

                        FZ_CHECK(dsm_txn_begin(s, &t) == 0);
                        r = dsm_txn_read(t, obj, page, buf);
                        FZ_CHECK(r == v->r[obj][page]);
                        FZ_CHECK(r < 0 || XXH3_64bits(buf, sizeof(buf)) == v->h[obj][page]);
                        dsm_txn_abort(t);
                }
                r = dsm_seek(s, obj, 0, DSM_SEEK_DATA, &pg);
                FZ_CHECK(r == 0 || r == -ENXIO);
                if (r == 0) {
                        r = dsm_read(s, obj, pg, buf);
                        FZ_CHECK(r == 1 || r == DSM_ECORRUPT);
                }
                r = dsm_seek(s, obj, 0, DSM_SEEK_HOLE, &pg);
                FZ_CHECK(r == 0);
        }
}

/* Nothing but <3, 5> changed: damaged pages stay refused, data stays. */
static void same_view(const struct view *a, const struct view *b)
{
        for (int obj = 0; obj < NOBJ; obj++)
                for (int page = 0; page < NPAGE; page++) {
                        if (obj == 3 && page == 5)
                                continue;
                        FZ_CHECK(a->r[obj][page] == b->r[obj][page]);
                        FZ_CHECK(a->h[obj][page] == b->h[obj][page]);
                }
}

static bool seg_used(const uint64_t *used, size_t n, uint64_t segno)
{
        for (size_t j = 0; j < n; j++)
                if (used[j] == segno)
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dsm_options opt = { .io = &dsm_faultio_ops, .replay = on_replay, .damage = on_damage };
        struct dsm_faultio *f;
        struct dsm_store *s = NULL;
        uint8_t *copy, page[DSM_PAGE_SIZE], back[DSM_PAGE_SIZE];
        size_t cut[MAXSEG + 1], ncut = 0, nseg;
        uint64_t used[MAXSEG];
        static struct view v0, v1;
        bool fix;
        int r;

        if (size < 1)
                return 0;
        fix = data[0] & 1;
        copy = malloc(size);
        FZ_CHECK(copy);
        memcpy(copy, data + 1, size - 1);
        size--;

        /* Segment boundaries: the start, and every magic after it. */
        cut[ncut++] = 0;
        for (size_t i = 1; i + 8 <= size && ncut < MAXSEG; i++)
                if (!memcmp(copy + i, DSM__SEG_MAGIC, 8))
                        cut[ncut++] = i;
        cut[ncut] = size;
        nseg = size ? ncut : 0;

        f = dsm_faultio_new(1);
        FZ_CHECK(f);
        opt.io_ctx = f;
        FZ_CHECK(dsm_faultio_ops.mkdir(f, DIR, 0700) == 0);
        for (size_t i = 0; i < nseg; i++) {
                uint8_t *p = copy + cut[i];
                size_t len = cut[i + 1] - cut[i];
                uint64_t segno = len >= 32 ? dsm__get64(p + 24) : 0;
                char path[64];

                if (segno == 0 || segno > 0xffffffffu || seg_used(used, i, segno))
                        segno = 1000 + i;
                while (seg_used(used, i, segno))
                        segno++;
                used[i] = segno;
                if (fix)
                        fix_checksums(p, len);
                snprintf(path, sizeof(path), DIR "/seg-%016" PRIx64 ".log", segno);
                FZ_CHECK(write_file(f, path, p, len) == 0);
        }

        damage_reports = 0;
        r = dsm_open(DIR, &opt, &s);
        if (r < 0) {
                FZ_CHECK(r == -EBADMSG || (r == -ENOENT && nseg == 0));
                FZ_CHECK(r != -EBADMSG || damage_reports > 0);
                goto out;
        }
        FZ_CHECK(dsm_error(s) == 0);
        read_all(s, &v0);

        /* The recovered store must go on working. */
        {
                struct dsm_txn *t;
                struct dsm_stats st;

                memset(page, 0xa5, sizeof(page));
                FZ_CHECK(dsm_txn_begin(s, &t) == 0);
                FZ_CHECK(dsm_txn_write(t, 3, 5, 0, page, DSM_PAGE_SIZE) == 0);
                r = dsm_txn_commit(t, "fuzz", 4, NULL);
                FZ_CHECK(r == 0);
                FZ_CHECK(dsm_checkpoint(s) == 0);
                r = dsm_clean(s, 50);
                FZ_CHECK(r >= 0);
                dsm_get_stats(s, &st);
                read_all(s, &v1);
                same_view(&v0, &v1);
                FZ_CHECK(dsm_read(s, 3, 5, back) == 1 && !memcmp(page, back, sizeof(page)));
                dsm_close(s);
                s = NULL;
        }
        r = dsm_open(DIR, &opt, &s);
        FZ_CHECK(r == 0);
        FZ_CHECK(dsm_read(s, 3, 5, back) == 1 && !memcmp(page, back, sizeof(page)));
        read_all(s, &v1);
        same_view(&v0, &v1);
out:
        dsm_close(s);
        dsm_faultio_free(f);
        free(copy);
        return 0;
}
