/*
 * fuzz_changeset.c -- the changeset and checkpoint-image decoders of the
 * storage site (storage/ss_cs.c) applied to a real SQLite index.
 *
 * Input: byte 0 seeds the sizes of the image chunks; the rest is a
 * changeset ("LC" 2 rows... 0, or format 1).  It is applied twice, each time inside a
 * transaction that is rolled back afterwards (so every input starts from
 * the same empty database): once with ss_cs_apply(), once as a checkpoint
 * image (the same bytes with the "LI" header) fed to the image loader in
 * chunks of fuzzer-chosen sizes.  The two decoders share the row format, so
 * they must agree.
 *
 * Checked: no crash, leak or sanitizer report; the only errors are the
 * documented ones for bad input (-EBADMSG, -EEXIST for a row that breaks a
 * unique constraint); both paths accept or refuse the same input with the
 * same error; when they accept it they leave the same rows behind (compared
 * through ss_cs_dump_image), and that dump loads back to the same rows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cm.h"
#include "fuzz.h"
#include "ss_cs.h"
#include "ss_db.h"

static struct ss_db *db;
static char dir[] = "/tmp/locus-fuzz-cs-XXXXXX";

struct dump {
        uint8_t *p;
        size_t len;
};

static int put(void *ctx, const void *buf, size_t len)
{
        struct dump *d = ctx;
        uint8_t *n = realloc(d->p, d->len + len);

        FZ_CHECK(n);
        memcpy(n + d->len, buf, len);
        d->p = n;
        d->len += len;
        return 0;
}

static void cleanup(void)
{
        char path[128];

        ss_db_close(db);
        snprintf(path, sizeof(path), "%s/meta.sqlite", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/meta.sqlite-wal", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/meta.sqlite-shm", dir);
        unlink(path);
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        char path[128];

        (void)argc;
        (void)argv;
        cm_log_init("fuzz_changeset", LOG_ERR, CM_LOG_STDERR);
        FZ_CHECK(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/meta.sqlite", dir);
        FZ_CHECK(ss_db_open(path, &db) == 0);
        atexit(cleanup);
        return 0;
}

static bool bad_input(int r)
{
        return r == -EBADMSG || r == -EEXIST;
}

/* Load an image in chunks; returns the loader's verdict, dumps on success. */
static int load_image(const uint8_t *p, size_t len, uint32_t rnd, uint64_t seq, struct dump *out)
{
        struct ss_cs_image im;
        int r;

        FZ_CHECK(ss_db_begin(db) == 0);
        r = ss_cs_image_begin(&im, db, seq);
        FZ_CHECK(r == 0);
        while (r >= 0 && len > 0) {
                size_t n;

                n = fz_piece(&rnd, len, 3, 300);
                r = ss_cs_image_feed(&im, db, p, n);
                p += n;
                len -= n;
        }
        if (r >= 0)
                r = ss_cs_image_finish(&im, db);
        if (r >= 0 && out)
                FZ_CHECK(ss_cs_dump_image(db, put, out) == 0);
        ss_cs_image_free(&im);
        ss_db_rollback(db);
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dump da = { 0 }, db_ = { 0 }, dc = { 0 };
        uint8_t *img;
        uint32_t rnd;
        int ra, rb;

        if (size < 1)
                return 0;
        rnd = fz_seed(data[0]);
        data++;
        size--;

        /* 1. as a changeset */
        FZ_CHECK(ss_db_begin(db) == 0);
        ra = ss_cs_apply(db, 42, data, size);
        if (ra >= 0)
                FZ_CHECK(ss_cs_dump_image(db, put, &da) == 0);
        ss_db_rollback(db);
        FZ_CHECK(ra == 0 || bad_input(ra));

        /* 2. the same rows as an image, in chunks */
        img = malloc(size ? size : 1);
        FZ_CHECK(img);
        if (size)
                memcpy(img, data, size);
        if (size >= 2 && img[0] == 'L' && img[1] == 'C')
                img[1] = 'I';
        rb = load_image(img, size, rnd, 42, &db_);
        FZ_CHECK(rb == 0 || bad_input(rb));
        FZ_CHECK(ra == rb || (size >= 2 && data[0] == 'L' && data[1] == 'I'));
        if (ra == 0 && rb == 0) {
                FZ_CHECK(da.len == db_.len && !memcmp(da.p, db_.p, da.len));
                /* 3. the dump loads back to itself */
                FZ_CHECK(load_image(da.p, da.len, rnd, 42, &dc) == 0);
                FZ_CHECK(dc.len == da.len && !memcmp(dc.p, da.p, da.len));
        }
        free(img);
        free(da.p);
        free(db_.p);
        free(dc.p);
        return 0;
}
