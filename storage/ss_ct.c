/*
 * ss_ct.c -- see ss_ct.h (invariants [C1]..[C6] are listed there): opening,
 * creating, recovering, rebuilding and closing a container, and its
 * maintenance (flushes, checkpoints, the cleaner).  Mutations and the
 * change stream are in ss_ct_mut.c.
 */
#include "ss_ct.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"

enum { IMG_NONE, IMG_LOADING, IMG_SKIP, IMG_DONE };

/* ---- paths and files --------------------------------------------------------- */

static char *path_join(const char *a, const char *b)
{
        char *p;

        if (asprintf(&p, "%s/%s", a, b) < 0)
                return NULL;
        return p;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        remove(p);
        return 0;
}

static void rmtree(const char *path)
{
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int sync_dir(const char *path)
{
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

static const char *const db_suffixes[] = { "", "-wal", "-shm" };

/* Rename meta.sqlite{,-wal,-shm} to <to>{,-wal,-shm}; missing files are fine. */
static int move_db(const char *dir, const char *from, const char *to)
{
        for (size_t i = 0; i < sizeof(db_suffixes) / sizeof(db_suffixes[0]); i++) {
                char a[PATH_MAX], b[PATH_MAX];

                if (snprintf(a, sizeof(a), "%s/%s%s", dir, from, db_suffixes[i]) >= (int)sizeof(a) ||
                    snprintf(b, sizeof(b), "%s/%s%s", dir, to, db_suffixes[i]) >= (int)sizeof(b))
                        return -ENAMETOOLONG;
                if (rename(a, b) < 0 && errno != ENOENT)
                        return -errno;
        }
        return 0;
}

static void remove_db(const char *dir, const char *name)
{
        for (size_t i = 0; i < sizeof(db_suffixes) / sizeof(db_suffixes[0]); i++) {
                char a[PATH_MAX];

                if (snprintf(a, sizeof(a), "%s/%s%s", dir, name, db_suffixes[i]) < (int)sizeof(a))
                        unlink(a);
        }
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

/* "fg-<decimal u32>" without leading zeros. */
static bool parse_fg(const char *name, const char *prefix, const char *suffix, uint32_t *ret)
{
        size_t pl = strlen(prefix), sl = strlen(suffix), nl = strlen(name);
        uint64_t v = 0;

        if (nl <= pl + sl || strncmp(name, prefix, pl) || strcmp(name + nl - sl, suffix))
                return false;
        if (name[pl] == '0')
                return false;
        for (size_t i = pl; i < nl - sl; i++) {
                if (name[i] < '0' || name[i] > '9')
                        return false;
                v = v * 10 + (uint64_t)(name[i] - '0');
                if (v > UINT32_MAX)
                        return false;
        }
        *ret = (uint32_t)v;
        return v > 0;
}

int ss_ct_list(const char *data_dir, uint32_t **ret_fgs, size_t *ret_n)
{
        uint32_t *v = NULL, fg;
        size_t n = 0, cap = 0;
        struct dirent *e;
        DIR *d = opendir(data_dir);

        if (!d)
                return -errno;
        while ((e = readdir(d))) {
                if (parse_fg(e->d_name, ".fg-", ".tmp", &fg) || parse_fg(e->d_name, ".fg-", ".drop", &fg)) {
                        char *p = path_join(data_dir, e->d_name);

                        if (p) {
                                cm_log(LOG_NOTICE, "%s: removing an interrupted container %s", p,
                                       strstr(e->d_name, ".tmp") ? "creation" : "deletion");
                                rmtree(p);
                                free(p);
                        }
                        continue;
                }
                if (!parse_fg(e->d_name, "fg-", "", &fg))
                        continue;
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 8;
                        uint32_t *nv = realloc(v, nc * sizeof(*nv));

                        if (!nv) {
                                free(v);
                                closedir(d);
                                return -ENOMEM;
                        }
                        v = nv;
                        cap = nc;
                }
                v[n++] = fg;
        }
        closedir(d);
        if (n)
                qsort(v, n, sizeof(*v), cmp_u32);
        *ret_fgs = v;
        *ret_n = n;
        return 0;
}

/* ---- recovery callbacks ----------------------------------------------------------- */

/* dsm_open() reads -EBADMSG and -ENODATA from a callback as "this record is
 * damaged" and may cut the log there; our own failures must never look like
 * that, so they travel as -EPROTO. */
static int cb_err(int r)
{
        return (r == -EBADMSG || r == -ENODATA) ? -EPROTO : r;
}

static int ct_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct ss_ct *ct = ctx;
        int r;

        if (kind == DSM_REPLAY_CHECKPOINT_META) {
                if (ct->img_state == IMG_NONE) {
                        if (seq > ct->seq) {
                                r = ss_cs_image_begin(&ct->img, ct->db, seq);
                                if (r < 0)
                                        return cb_err(r);
                                ct->img_state = IMG_LOADING;
                        } else {
                                ct->img_state = IMG_SKIP;
                        }
                }
                if (ct->img_state != IMG_LOADING)
                        return 0;
                r = ss_cs_image_feed(&ct->img, ct->db, data, len);
                if (r < 0)
                        cm_log(LOG_ERR, "%s: checkpoint image (seq %llu) unreadable: %s", ct->dir,
                               (unsigned long long)seq, strerror(-r));
                return cb_err(r);
        }
        if (ct->img_state == IMG_LOADING) {
                r = ss_cs_image_finish(&ct->img, ct->db);
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: checkpoint image (seq %llu) incomplete", ct->dir,
                               (unsigned long long)ct->img.seq);
                        return cb_err(r);
                }
                ct->seq = ct->img.seq;
                ct->img_state = IMG_DONE;
                ss_cs_image_free(&ct->img);
        }
        if (seq <= ct->seq)
                return 0;               /* already in SQLite [C2] */
        if (seq != ct->seq + 1) {
                if (ct->strict) {
                        ct->inconsistent = true;
                        return -ESTALE;
                }
                cm_log(LOG_ERR, "%s: commits %llu..%llu are missing from the log (damaged): their "
                       "metadata changes are lost", ct->dir, (unsigned long long)ct->seq + 1,
                       (unsigned long long)seq - 1);
                ct->gaps++;
        }
        r = ss_cs_apply(ct->db, seq, data, len);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: commit %llu: changeset cannot be applied: %s (%s)", ct->dir,
                       (unsigned long long)seq, strerror(-r), ss_db_errmsg(ct->db));
                return cb_err(r);
        }
        ct->seq = seq;
        return 0;
}

static int ckpt_put(void *ctx, const void *buf, size_t len)
{
        return dsm_ckpt_put(ctx, buf, len);
}

/* [C3]: called by dsm_checkpoint() (also from dsm_clean()) with the index
 * locked: no commit runs, and the loop keeps off this container. */
static int ct_ckpt_meta(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        struct ss_ct *ct = ctx;
        int r;

        if (ct->seq != seq) {
                cm_log(LOG_ERR, "%s: checkpoint at seq %llu but SQLite is at %llu: refused", ct->dir,
                       (unsigned long long)seq, (unsigned long long)ct->seq);
                return -EIO;
        }
        r = ss_db_wal_checkpoint(ct->db);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: SQLite WAL checkpoint failed: %s", ct->dir, ss_db_errmsg(ct->db));
                return r;
        }
        r = ss_cs_dump_image(ct->db, ckpt_put, cp);
        if (r < 0)
                cm_log(LOG_ERR, "%s: checkpoint image failed: %s", ct->dir, strerror(-r));
        return r;
}

static void ct_damage(void *ctx, const struct dsm_damage *d, const char *what)
{
        struct ss_ct *ct = ctx;

        cm_log(LOG_ERR, "%s: segment %llu offset %llu length %llu: %s", ct->dir, (unsigned long long)d->segno,
               (unsigned long long)d->offset, (unsigned long long)d->length, what);
}

/* ---- open / close ------------------------------------------------------------------ */

static void ct_free(struct ss_ct *ct)
{
        if (!ct)
                return;
        dsm_close(ct->store);
        ss_db_close(ct->db);
        ss_cs_image_free(&ct->img);
        free(ct->kept);
        free(ct->dir);
        free(ct);
}

static int load_counters(struct ss_ct *ct)
{
        uint64_t fg = 0;
        int r;

        r = ss_db_meta_get(ct->db, "fg", &fg);
        if (r == -ENOENT && ct->seq == 0)
                return 0;               /* a new store: the root commit sets them */
        if (r >= 0)
                r = ss_db_meta_get(ct->db, "container", &ct->container);
        if (r >= 0)
                r = ss_db_meta_get(ct->db, "next_ino", &ct->next_ino);
        if (r >= 0)
                r = ss_db_meta_get(ct->db, "next_dirent", &ct->next_dirent);
        if (r >= 0)
                r = ss_db_meta_get(ct->db, "inodes", &ct->ninodes);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: container metadata incomplete: %s", ct->dir, strerror(-r));
                return r == -ENOENT ? -EBADMSG : r;
        }
        if (fg != ct->fg) {
                cm_log(LOG_ERR, "%s: holds file group %llu, not %u", ct->dir, (unsigned long long)fg, ct->fg);
                return -EBADMSG;
        }
        return 0;
}

/* Open the container in folder dir.  strict: a gap or SQLite ahead of the
 * log is reported as -ESTALE (the caller rebuilds) [C4]. */
static int open_at(const char *dir, uint32_t fg, bool strict, struct ss_ct **ret)
{
        struct dsm_options o = { 0 };
        struct dsm_stats st;
        struct ss_ct *ct;
        char *segdir = NULL, *dbpath = NULL;
        bool in_txn = false;
        int r;

        ct = calloc(1, sizeof(*ct));
        if (!ct)
                return -ENOMEM;
        ct->fg = fg;
        ct->strict = strict;
        ct->dir = strdup(dir);
        segdir = path_join(dir, "segments");
        dbpath = path_join(dir, "meta.sqlite");
        if (!ct->dir || !segdir || !dbpath) {
                r = -ENOMEM;
                goto fail;
        }
        if (access(segdir, F_OK) < 0) {
                r = -errno;
                goto fail;
        }
        r = ss_db_open(dbpath, &ct->db);
        if (r < 0) {
                cm_log(strict ? LOG_WARNING : LOG_ERR, "%s: cannot open the SQLite index: %s", dbpath,
                       strerror(-r));
                /* An index that does not open is rebuilt like one that is
                 * out of step [C4]; only the log is precious. */
                if (strict && r != -ENOMEM)
                        ct->inconsistent = true;
                goto fail;
        }
        r = ss_db_meta_get(ct->db, "applied_seq", &ct->seq);
        if (r == -ENOENT)
                r = 0;
        if (r < 0)
                goto fail;
        /* One SQLite transaction for the whole replay. */
        r = ss_db_begin(ct->db);
        if (r < 0)
                goto fail;
        in_txn = true;
        o.replay = ct_replay;
        o.replay_ctx = ct;
        o.ckpt_meta = ct_ckpt_meta;
        o.ckpt_ctx = ct;
        o.damage = ct_damage;
        o.damage_ctx = ct;
        r = dsm_open(segdir, &o, &ct->store);
        if (r < 0) {
                if (!ct->inconsistent)
                        cm_log(LOG_ERR, "%s: cannot recover the segment log: %s", segdir, strerror(-r));
                goto fail;
        }
        if (ct->img_state == IMG_LOADING) {
                r = ss_cs_image_finish(&ct->img, ct->db);
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: checkpoint image incomplete", dir);
                        goto fail;
                }
                ct->seq = ct->img.seq;
                ct->img_state = IMG_DONE;
                ss_cs_image_free(&ct->img);
        }
        dsm_get_stats(ct->store, &st);
        if (ct->seq != st.seq) {
                if (strict) {
                        ct->inconsistent = true;
                        r = -ESTALE;
                } else {
                        cm_log(LOG_ERR, "%s: the log ends at commit %llu but its replay reached %llu", dir,
                               (unsigned long long)st.seq, (unsigned long long)ct->seq);
                        r = -EBADMSG;
                }
                goto fail;
        }
        r = ss_db_commit(ct->db);
        in_txn = false;
        if (r < 0)
                goto fail;
        r = load_counters(ct);
        if (r < 0) {
                if (strict)
                        ct->inconsistent = true;        /* [C4]: rebuild, the log has them */
                goto fail;
        }
        ct->strict = false;
        free(segdir);
        free(dbpath);
        *ret = ct;
        return 0;
fail:
        if (ct->inconsistent)
                r = -ESTALE;
        if (in_txn)
                ss_db_rollback(ct->db);
        free(segdir);
        free(dbpath);
        ct_free(ct);
        return r;
}

static char *ct_dir(const char *data_dir, uint32_t fg)
{
        char *p;

        if (asprintf(&p, "%s/fg-%u", data_dir, fg) < 0)
                return NULL;
        return p;
}

/* Open, rebuilding SQLite from the log if it does not match it [C4]. */
static int open_repair(const char *dir, uint32_t fg, struct ss_ct **ret)
{
        int r = open_at(dir, fg, true, ret);

        if (r != -ESTALE)
                return r;
        cm_log(LOG_WARNING, "%s: SQLite index unusable or not matching the segment log (ahead of it, or "
               "commits missing): rebuilding it from the log", dir);
        remove_db(dir, "meta.sqlite.stale");
        r = move_db(dir, "meta.sqlite", "meta.sqlite.stale");
        if (r < 0)
                return r;
        r = open_at(dir, fg, false, ret);
        if (r < 0) {
                remove_db(dir, "meta.sqlite");
                (void)move_db(dir, "meta.sqlite.stale", "meta.sqlite");
                return r;
        }
        remove_db(dir, "meta.sqlite.stale");
        cm_log(LOG_NOTICE, "%s: SQLite index rebuilt from the log (commit %llu)", dir,
               (unsigned long long)(*ret)->seq);
        return 0;
}

int ss_ct_open(const char *data_dir, uint32_t fg, bool free_orphans, struct ss_ct **ret)
{
        struct ss_ct *ct;
        char *dir = ct_dir(data_dir, fg);
        int r;

        if (!dir)
                return -ENOMEM;
        r = open_repair(dir, fg, &ct);
        free(dir);
        if (r < 0)
                return r;
        if (ct->seq == 0) {
                cm_log(LOG_ERR, "%s: container has no root directory (never initialised)", ct->dir);
                ct_free(ct);
                return -EBADMSG;
        }
        if (free_orphans) {
                r = ss_ct_free_orphans(ct);
                if (r < 0) {
                        ss_ct_close(ct);
                        return r;
                }
        }
        *ret = ct;
        return 0;
}

void ss_ct_close(struct ss_ct *ct)
{
        if (!ct)
                return;
        if (ct->db)
                (void)ss_ct_index_commit(ct);
        if (ct->store) {
                int r = dsm_sync(ct->store);

                if (r < 0)
                        cm_log(LOG_ERR, "%s: final flush of the log failed: %s", ct->dir, strerror(-r));
        }
        ct_free(ct);
}

int ss_ct_destroy(const char *data_dir, uint32_t fg)
{
        char *final = ct_dir(data_dir, fg), *drop = NULL;
        bool had;
        int r = 0;

        if (!final || asprintf(&drop, "%s/.fg-%u.drop", data_dir, fg) < 0) {
                free(final);
                return -ENOMEM;
        }
        had = access(final, F_OK) == 0;
        if (had && rename(final, drop) < 0)
                r = -errno;
        if (r >= 0 && had)
                r = sync_dir(data_dir);         /* the container is gone for good before its files go */
        if (r >= 0)
                rmtree(drop);                   /* also what an interrupted deletion left */
        free(drop);
        free(final);
        return r < 0 ? r : had;
}

int ss_ct_create(const char *data_dir, uint32_t fg, uint64_t container, const struct ss_ct_opts *o,
                 struct ss_ct **ret)
{
        struct dsm_options dopt = { 0 };
        struct ss_ct *ct = NULL;
        struct ss_inode *root = NULL;
        struct ss_mut m;
        struct timespec now = cm_wall();
        char *final = ct_dir(data_dir, fg), *tmp = NULL, *seg = NULL;
        int r;

        if (!final)
                return -ENOMEM;
        if (container == 0 || container > SS_CONTAINER_MAX || fg == 0) {
                r = -EINVAL;
                goto out;
        }
        if (access(final, F_OK) == 0) {
                r = -EEXIST;
                goto out;
        }
        if (asprintf(&tmp, "%s/.fg-%u.tmp", data_dir, fg) < 0) {
                tmp = NULL;
                r = -ENOMEM;
                goto out;
        }
        rmtree(tmp);
        if (mkdir(tmp, 0700) < 0) {
                r = -errno;
                goto out;
        }
        seg = path_join(tmp, "segments");
        if (!seg) {
                r = -ENOMEM;
                goto out;
        }
        dopt.segment_size = o ? o->segment_size : 0;
        r = dsm_format(seg, &dopt);
        if (r < 0)
                goto out;
        r = open_at(tmp, fg, true, &ct);
        if (r < 0)
                goto out;
        root = calloc(1, sizeof(*root));
        if (!root) {
                r = -ENOMEM;
                goto out;
        }
        root->ino = SS_ROOT_INO;
        root->mode = 040755;
        root->nlink = 2;
        root->size = 4096;
        root->atime = root->mtime = root->ctime = (struct ss_time){ now.tv_sec, (uint32_t)now.tv_nsec };
        ct->container = container;     /* the site the root's vector counts at */
        ss_mut_init(ct, &m, NULL);
        ss_cs_put_meta(&m.cs, "fg", fg);
        ss_cs_put_meta(&m.cs, "container", container);
        /* The root starts with the empty vector on every site that creates
         * a container of the group, so that the copies start equal
         * (docs/replication.md): its first change anywhere dominates. */
        ss_cs_put_inode(&m.cs, root, SS_CS_GSEQ | SS_CS_KEEPVV);
        m.next_ino = 2;
        m.next_dirent = 1;
        m.d_inodes = 1;
        r = ss_mut_commit(ct, &m, NULL);
        /* A first full checkpoint while the image is one row: later full
         * ones are compacted from the chain on it, without parking the
         * container (ss_ct_checkpoint_compact). */
        if (r >= 0)
                r = ss_ct_index_commit(ct);
        if (r >= 0)
                r = ss_ct_checkpoint(ct);
        if (r < 0)
                goto out;
        ss_ct_close(ct);
        ct = NULL;
        if (rename(tmp, final) < 0) {
                r = -errno;
                goto out;
        }
        r = sync_dir(data_dir);
        if (r < 0)
                goto out;
        r = ss_ct_open(data_dir, fg, false, ret);
out:
        if (r < 0 && tmp)
                rmtree(tmp);
        ct_free(ct);
        free(root);
        free(seg);
        free(tmp);
        free(final);
        return r;
}

int ss_ct_rebuild(const char *data_dir, uint32_t fg, uint64_t *ret_inodes)
{
        struct ss_ct *ct = NULL;
        struct ss_inode *root = NULL;
        char *dir = ct_dir(data_dir, fg), *seg = NULL;
        int r;

        if (!dir)
                return -ENOMEM;
        seg = path_join(dir, "segments");
        if (!seg) {
                r = -ENOMEM;
                goto out;
        }
        if (access(seg, F_OK) < 0) {
                r = -errno;
                goto out;
        }
        remove_db(dir, "meta.sqlite.bak");
        r = move_db(dir, "meta.sqlite", "meta.sqlite.bak");
        if (r < 0)
                goto out;
        r = open_at(dir, fg, false, &ct);
        if (r >= 0 && ct->seq == 0)
                r = -EBADMSG;
        if (r >= 0) {
                root = malloc(sizeof(*root));
                r = root ? ss_db_inode_get(ct->db, SS_ROOT_INO, root) : -ENOMEM;
                if (r == -ENOENT) {
                        cm_log(LOG_ERR, "%s: rebuilt index has no root directory", dir);
                        r = -EBADMSG;
                }
        }
        if (r >= 0 && ret_inodes)
                r = ss_db_inode_count(ct->db, ret_inodes);
        if (r >= 0 && ct->gaps)
                cm_log(LOG_ERR, "%s: rebuilt with %llu gap(s) in the log: see above", dir,
                       (unsigned long long)ct->gaps);
        ss_ct_close(ct);
        ct = NULL;
        if (r < 0) {
                remove_db(dir, "meta.sqlite");
                (void)move_db(dir, "meta.sqlite.bak", "meta.sqlite");
                goto out;
        }
        remove_db(dir, "meta.sqlite.bak");
out:
        free(root);
        free(seg);
        free(dir);
        return r;
}

/* ---- maintenance ----------------------------------------------------------------------- */

int ss_ct_sync(struct ss_ct *ct)
{
        return dsm_sync(ct->store);
}

int ss_ct_wal_checkpoint(struct ss_ct *ct)
{
        int r = dsm_sync(ct->store);

        if (r < 0)
                return r;
        return ss_db_wal_copy(ct->db);
}

int ss_ct_wal_checkpoint_passive(struct ss_ct *ct, unsigned passes, unsigned *ret_copied)
{
        unsigned done = 0, prev = 0, copied = 0;
        int r = 0;

        /* Each pass copies what the loop committed before it; the next one
         * copies what came in meanwhile, fewer frames each time (a pass
         * costs its frames and two fsyncs). */
        if (passes > SS_CT_WAL_PASSES)
                passes = SS_CT_WAL_PASSES;
        for (unsigned pass = 0; pass < passes; pass++) {
                r = ss_db_wal_pin(ct->db);
                if (r < 0)
                        break;
                r = dsm_sync(ct->store);        /* ss_db.h [W1] */
                if (r < 0) {
                        ss_db_wal_unpin(ct->db);
                        break;
                }
                r = ss_db_wal_passive(ct->db, &done);
                if (r < 0)
                        break;
                copied = done >= prev ? done - prev : done;     /* the WAL restarted */
                prev = done;
                if (copied <= SS_CT_WAL_LEFT)
                        break;
        }
        if (r >= 0 && ret_copied)
                *ret_copied = copied;
        return r;
}

int ss_ct_checkpoint(struct ss_ct *ct)
{
        int r = dsm_sync(ct->store);

        if (r < 0)
                return r;
        return dsm_checkpoint(ct->store);
}

int ss_ct_checkpoint_delta(struct ss_ct *ct)
{
        return dsm_checkpoint_delta(ct->store);
}

/*
 * A full checkpoint built from the log alone [C3]: the chain's image and
 * changesets are applied to a private in-memory SQLite database on this
 * (work-queue) thread, and that database is dumped as the new image.  The
 * container's own SQLite connection is not touched, so the loop keeps
 * serving it meanwhile.
 */
struct compact {
        const char *dir;
        struct ss_db *db;
        struct ss_cs_image img;
        bool loading;
};

static int compact_finish_image(struct compact *c)
{
        int r;

        if (!c->loading)
                return 0;
        c->loading = false;
        r = ss_cs_image_finish(&c->img, c->db);
        if (r < 0)
                cm_log(LOG_ERR, "%s: compaction: checkpoint image (seq %llu) incomplete", c->dir,
                       (unsigned long long)c->img.seq);
        return r;
}

static int compact_replay(void *ctx, enum dsm_replay_kind kind, uint64_t seq, const void *data, size_t len)
{
        struct compact *c = ctx;
        int r;

        if (kind == DSM_REPLAY_CHECKPOINT_META) {
                if (!c->loading) {
                        r = ss_cs_image_begin(&c->img, c->db, seq);
                        if (r < 0)
                                return r;
                        c->loading = true;
                }
                return ss_cs_image_feed(&c->img, c->db, data, len);
        }
        r = compact_finish_image(c);
        if (r >= 0)
                r = ss_cs_apply(c->db, seq, data, len);
        if (r < 0)
                cm_log(LOG_ERR, "%s: compaction: commit %llu cannot be applied: %s", c->dir,
                       (unsigned long long)seq, strerror(-r));
        return r;
}

static int compact_image(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        struct compact *c = ctx;
        int r;

        (void)seq;
        r = compact_finish_image(c);
        if (r >= 0)
                r = ss_db_commit(c->db);
        if (r >= 0)
                r = ss_cs_dump_image(c->db, ckpt_put, cp);
        return r;
}

int ss_ct_checkpoint_compact(struct ss_ct *ct)
{
        struct compact c = { .dir = ct->dir };
        int r;

        r = ss_db_open(":memory:", &c.db);
        if (r >= 0)
                r = ss_db_begin(c.db);
        if (r >= 0)
                r = dsm_checkpoint_compact(ct->store, compact_replay, compact_image, &c);
        if (r < 0 && r != -ESTALE)
                cm_log(LOG_ERR, "%s: full checkpoint from the log failed: %s", ct->dir, strerror(-r));
        ss_cs_image_free(&c.img);
        ss_db_close(c.db);
        return r;
}

int ss_ct_clean_base(struct ss_ct *ct, unsigned max_live_pct, int *ret_n)
{
        int r = dsm_clean_base(ct->store, max_live_pct);

        if (r < 0)
                return r;
        *ret_n = r;
        return 0;
}

bool ss_ct_checkpoint_full_due(struct ss_ct *ct)
{
        return dsm_checkpoint_full_due(ct->store);
}

int ss_ct_clean(struct ss_ct *ct, unsigned max_live_pct, int *ret_n)
{
        int r = dsm_sync(ct->store);

        if (r < 0)
                return r;
        r = dsm_clean(ct->store, max_live_pct);
        if (r < 0)
                return r;
        *ret_n = r;
        return 0;
}
