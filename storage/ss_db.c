/*
 * ss_db.c -- see ss_db.h.
 *
 * Every statement is prepared once (lazily) and kept in db->st[]; a
 * statement is reset and its bindings cleared before it is returned by
 * stmt(), so no statement stays open across calls (which would hold a read
 * transaction and keep the WAL from being checkpointed).
 */
#include "ss_db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sqlite3.h>

#include "cm.h"
#include "ss_vfs.h"

enum {
        Q_META_GET,
        Q_META_PUT,
        Q_META_DEL,
        Q_INODE_GET,
        Q_INODE_PUT,
        Q_INODE_DEL,
        Q_INODE_COUNT,
        Q_GONE_PUT,
        Q_GONE_GET,
        Q_GONE_DEL,
        Q_CHANGES,
        Q_COOKIE_TAKEN,
        Q_EACH_GONE,
        Q_LOOKUP,
        Q_DIRENT_GET,
        Q_DIRENT_INS,
        Q_DIRENT_UPD,
        Q_DIRENT_DEL,
        Q_DIR_ENTRY,
        Q_DIR_EMPTY,
        Q_READDIR,
        Q_READDIR_MORE,
        Q_XATTR_GET,
        Q_XATTR_PUT,
        Q_XATTR_DEL,
        Q_XATTR_EACH,
        Q_ORPHANS,
        Q_EACH_INODE,
        Q_EACH_DIRENT,
        Q_EACH_XATTR,
        Q_EACH_META,
        Q_BEGIN,
        Q_COMMIT,
        Q_SAVEPOINT,
        Q_RELEASE,
        Q_ROLLBACK_TO,
        Q_COUNT_
};

#define INODE_COLS "ino, mode, nlink, uid, gid, rdev, size, atime_sec, atime_nsec, mtime_sec, " \
                   "mtime_nsec, ctime_sec, ctime_nsec, generation, version, target, vv, lseq"
#define DIRENT_COLS "id, parent, name, ino, type, cookie"

static const char *const sql[Q_COUNT_] = {
        [Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
        [Q_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [Q_META_DEL] = "DELETE FROM meta WHERE key = ?1",
        [Q_INODE_GET] = "SELECT " INODE_COLS " FROM inodes WHERE ino = ?1",
        [Q_INODE_PUT] = "INSERT OR REPLACE INTO inodes(" INODE_COLS ") VALUES "
                        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        [Q_INODE_DEL] = "DELETE FROM inodes WHERE ino = ?1",
        [Q_INODE_COUNT] = "SELECT count(*) FROM inodes",
        [Q_GONE_PUT] = "INSERT OR REPLACE INTO gone(ino, vv, lseq) VALUES (?1, ?2, ?3)",
        [Q_GONE_GET] = "SELECT vv, lseq FROM gone WHERE ino = ?1",
        [Q_GONE_DEL] = "DELETE FROM gone WHERE ino = ?1",
        [Q_CHANGES] = "SELECT ino, lseq, 0, vv FROM inodes WHERE lseq > ?1 "
                      "UNION ALL SELECT ino, lseq, 1, vv FROM gone WHERE lseq > ?1 "
                      "ORDER BY 2, 3, 1 LIMIT ?2",
        [Q_COOKIE_TAKEN] = "SELECT 1 FROM dirents WHERE parent = ?1 AND cookie = ?2 AND id <> ?3",
        [Q_EACH_GONE] = "SELECT ino, vv, lseq FROM gone ORDER BY ino",
        [Q_LOOKUP] = "SELECT " DIRENT_COLS " FROM dirents WHERE parent = ?1 AND name = ?2",
        [Q_DIRENT_GET] = "SELECT " DIRENT_COLS " FROM dirents WHERE id = ?1",
        /* Upsert by id; a clash on (parent, name) is an error, never a
         * silent replacement of another row. */
        [Q_DIRENT_INS] = "INSERT INTO dirents(" DIRENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [Q_DIRENT_UPD] = "UPDATE dirents SET parent = ?2, name = ?3, ino = ?4, type = ?5, cookie = ?6 "
                         "WHERE id = ?1",
        [Q_DIRENT_DEL] = "DELETE FROM dirents WHERE id = ?1",
        [Q_DIR_ENTRY] = "SELECT " DIRENT_COLS " FROM dirents WHERE ino = ?1 LIMIT 1",
        [Q_DIR_EMPTY] = "SELECT 1 FROM dirents WHERE parent = ?1 LIMIT 1",
        [Q_READDIR] = "SELECT " DIRENT_COLS " FROM dirents WHERE parent = ?1 AND cookie > ?2 "
                      "ORDER BY cookie LIMIT ?3",
        [Q_READDIR_MORE] = "SELECT 1 FROM dirents WHERE parent = ?1 AND cookie > ?2 LIMIT 1",
        [Q_XATTR_GET] = "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
        [Q_XATTR_PUT] = "INSERT INTO xattrs(ino, name, value) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT(ino, name) DO UPDATE SET value = excluded.value",
        [Q_XATTR_DEL] = "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
        [Q_XATTR_EACH] = "SELECT name, value FROM xattrs WHERE ino = ?1 ORDER BY name",
        [Q_ORPHANS] = "SELECT ino FROM inodes WHERE nlink = 0 ORDER BY ino LIMIT ?1",
        [Q_EACH_INODE] = "SELECT " INODE_COLS " FROM inodes ORDER BY ino",
        [Q_EACH_DIRENT] = "SELECT " DIRENT_COLS " FROM dirents ORDER BY id",
        [Q_EACH_XATTR] = "SELECT ino, name, value FROM xattrs ORDER BY ino, name",
        [Q_EACH_META] = "SELECT key, value FROM meta ORDER BY key",
        [Q_BEGIN] = "BEGIN IMMEDIATE",
        [Q_COMMIT] = "COMMIT",
        [Q_SAVEPOINT] = "SAVEPOINT cs",
        [Q_RELEASE] = "RELEASE cs",
        [Q_ROLLBACK_TO] = "ROLLBACK TO cs",
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS inodes("
        "  ino INTEGER PRIMARY KEY, mode INTEGER NOT NULL, nlink INTEGER NOT NULL,"
        "  uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL, size INTEGER NOT NULL,"
        "  atime_sec INTEGER NOT NULL, atime_nsec INTEGER NOT NULL,"
        "  mtime_sec INTEGER NOT NULL, mtime_nsec INTEGER NOT NULL,"
        "  ctime_sec INTEGER NOT NULL, ctime_nsec INTEGER NOT NULL,"
        "  generation INTEGER NOT NULL, version INTEGER NOT NULL, target BLOB,"
        "  vv BLOB NOT NULL, lseq INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS inodes_orphans ON inodes(nlink) WHERE nlink = 0;"
        "CREATE INDEX IF NOT EXISTS inodes_lseq ON inodes(lseq);"
        "CREATE TABLE IF NOT EXISTS gone("
        "  ino INTEGER PRIMARY KEY, vv BLOB NOT NULL, lseq INTEGER NOT NULL);"
        "CREATE INDEX IF NOT EXISTS gone_lseq ON gone(lseq);"
        "CREATE TABLE IF NOT EXISTS dirents("
        "  id INTEGER PRIMARY KEY, parent INTEGER NOT NULL, name BLOB NOT NULL,"
        "  ino INTEGER NOT NULL, type INTEGER NOT NULL, cookie INTEGER NOT NULL,"
        "  UNIQUE(parent, name), UNIQUE(parent, cookie));"
        "CREATE INDEX IF NOT EXISTS dirents_ino ON dirents(ino);"
        "CREATE TABLE IF NOT EXISTS xattrs("
        "  ino INTEGER NOT NULL, name BLOB NOT NULL, value BLOB NOT NULL,"
        "  PRIMARY KEY(ino, name)) WITHOUT ROWID;";

struct ss_db {
        sqlite3 *h;
        char *path;
        sqlite3_stmt *st[Q_COUNT_];
        unsigned wal_frames;
        uint64_t wal_restarts;          /* ss_db_wal_restarts() */
        int err;                        /* sticky: see ss_db.h, "Errors" */
        char cause[384];
        /* The concurrent WAL checkpoint (ss_db.h, "WAL checkpoints"): its
         * connections, used by the work-queue thread only, and what it
         * reports back; the loop thread reads these only after the job. */
        sqlite3 *ck, *pin;
        unsigned ck_backfilled;         /* loop thread: frames copied so far */
        unsigned ck_frames;             /* the job's report of it */
        bool ck_copied;                 /* ... valid: a pass of the job succeeded */
        int ck_err;
        char ck_cause[384];
};

/* Did the disk fail under SQLite (so that what SQLite caches may no longer
 * match what is on disk)?  Out of memory is not such a failure. */
static bool disk_failed(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_IOERR:
                return rc != SQLITE_IOERR_NOMEM;
        case SQLITE_FULL:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return true;
        default:
                return false;
        }
}

static int fail(struct ss_db *db, const char *what, int rc)
{
        const char *vfs_err = ss_vfs_take_error();

        cm_log(LOG_DEBUG, "%s: sqlite %s: %s (%d)%s%s", db->path, what, sqlite3_errmsg(db->h), rc,
               vfs_err ? ": " : "", vfs_err ? vfs_err : "");
        if (disk_failed(rc) && !db->err) {
                /* Never retried: after a failed write or fsync the kernel
                 * may have dropped the dirty pages, so neither SQLite's
                 * cache nor a later checkpoint can be trusted.  Nor may
                 * close checkpoint the WAL into the database file. */
                db->err = -EIO;
                snprintf(db->cause, sizeof(db->cause), "SQLite %s (%s)", what,
                         vfs_err ? vfs_err : sqlite3_errmsg(db->h));
                sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        }
        if (rc == SQLITE_NOMEM || rc == SQLITE_IOERR_NOMEM)
                return -ENOMEM;
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
                return -EEXIST;
        return -EIO;
}

static sqlite3_stmt *stmt(struct ss_db *db, int q)
{
        sqlite3_stmt *s = db->st[q];

        if (db->err)
                return NULL;
        if (!s) {
                int rc = sqlite3_prepare_v3(db->h, sql[q], -1, SQLITE_PREPARE_PERSISTENT, &db->st[q], NULL);

                if (rc != SQLITE_OK) {
                        fail(db, sql[q], rc);
                        return NULL;
                }
                return db->st[q];
        }
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return s;
}

static void done(sqlite3_stmt *s)
{
        if (s)
                sqlite3_reset(s);
}

/* Step s: 1 (a row to read), 0 (no more rows), or fail()'s error. */
static int next_row(struct ss_db *db, sqlite3_stmt *s, const char *what)
{
        int rc = sqlite3_step(s);

        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return fail(db, what, rc);
}

static int wal_hook(void *ctx, sqlite3 *h, const char *dbname, int frames)
{
        struct ss_db *db = ctx;

        (void)h;
        (void)dbname;
        if (frames > 0 && (unsigned)frames < db->wal_frames) {
                db->ck_backfilled = 0;  /* the WAL restarted */
                db->wal_restarts++;
        }
        db->wal_frames = frames > 0 ? (unsigned)frames : 0;
        return SQLITE_OK;
}

/* The first column of the first row of query q, prepared and finalized
 * here (for what runs before the statements of sql[] can): 1 and *ret, 0
 * if there is no row (*ret untouched), or -EIO. */
static int query_u64(struct ss_db *db, const char *q, uint64_t *ret)
{
        sqlite3_stmt *s = NULL;
        int rc = sqlite3_prepare_v2(db->h, q, -1, &s, NULL), r = -EIO;

        if (rc == SQLITE_OK) {
                rc = sqlite3_step(s);
                if (rc == SQLITE_ROW) {
                        *ret = (uint64_t)sqlite3_column_int64(s, 0);
                        r = 1;
                } else if (rc == SQLITE_DONE) {
                        r = 0;
                }
        }
        sqlite3_finalize(s);
        return r;
}

/* The schema version of an existing file: 1 and *ret, 0 for a file
 * without our meta table (new), or -EIO. */
static int schema_version(struct ss_db *db, uint64_t *ret)
{
        uint64_t one;
        int r = query_u64(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", &one);

        if (r > 0) {
                *ret = 0;               /* a meta table without a version: not ours */
                r = query_u64(db, "SELECT value FROM meta WHERE key = 'schema'", ret);
                if (r >= 0)
                        r = 1;
        }
        if (r < 0)
                cm_log(LOG_DEBUG, "%s: reading the schema: %s", db->path, sqlite3_errmsg(db->h));
        return r;
}

int ss_db_open(const char *path, struct ss_db **ret)
{
        struct ss_db *db = calloc(1, sizeof(*db));
        char *err = NULL;
        uint64_t v;
        int rc, r;

        if (!db)
                return -ENOMEM;
        db->path = strdup(path);
        if (!db->path) {
                free(db);
                return -ENOMEM;
        }
        r = ss_vfs_register();
        if (r < 0)
                goto fail;
        rc = sqlite3_open_v2(path, &db->h,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                     SQLITE_OPEN_EXRESCODE,
                             SS_VFS_NAME);
        if (rc != SQLITE_OK) {
                cm_log(LOG_DEBUG, "%s: sqlite open: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
                r = -EIO;
                goto fail;
        }
        sqlite3_busy_timeout(db->h, 0);
        /* Normal (not exclusive) locking: the daemon is the only process
         * using the file (its data directory is locked), but the WAL is
         * checkpointed by a second connection on a work-queue thread while
         * this one goes on committing, and connections share the WAL
         * through its -shm index.  journal_size_limit: when the WAL
         * restarts, its file is cut back to 64 MiB (what the daemon lets
         * it grow to by default, ss_srv.h, so normally never). */
        rc = sqlite3_exec(db->h,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=67108864;"
                          "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-16384;",
                          NULL, NULL, &err);
        if (rc == SQLITE_OK) {
                r = schema_version(db, &v);
                if (r < 0)
                        goto fail;
                if (r > 0 && v != SS_DB_SCHEMA) {
                        /* Not even the tables of this version are created
                         * in it: the caller rebuilds it (ss_ct.h [C4]). */
                        cm_log(LOG_DEBUG, "%s: schema version %llu, expected %d", path,
                               (unsigned long long)v, SS_DB_SCHEMA);
                        r = -EIO;
                        goto fail;
                }
                rc = sqlite3_exec(db->h, schema, NULL, NULL, &err);
        }
        if (rc != SQLITE_OK) {
                cm_log(LOG_DEBUG, "%s: sqlite setup: %s", path, err ? err : "?");
                sqlite3_free(err);
                r = -EIO;
                goto fail;
        }
        sqlite3_wal_autocheckpoint(db->h, 0);
        sqlite3_wal_hook(db->h, wal_hook, db);
        r = ss_db_meta_get(db, "schema", &v);
        if (r == -ENOENT)
                r = ss_db_meta_put(db, "schema", SS_DB_SCHEMA);
        else if (r >= 0 && v != SS_DB_SCHEMA) {
                cm_log(LOG_DEBUG, "%s: schema version %llu, expected %d", path, (unsigned long long)v,
                       SS_DB_SCHEMA);
                r = -EIO;
        }
        if (r < 0)
                goto fail;
        *ret = db;
        return 0;
fail:
        ss_db_close(db);
        return r;
}

void ss_db_close(struct ss_db *db)
{
        if (!db)
                return;
        for (int i = 0; i < Q_COUNT_; i++)
                sqlite3_finalize(db->st[i]);
        /* The helpers first, so that the main connection is the last one
         * and checkpoints the WAL (unless in the error state). */
        if (db->pin)
                sqlite3_close(db->pin);
        if (db->ck)
                sqlite3_close(db->ck);
        if (db->h)
                sqlite3_close(db->h);
        free(db->path);
        free(db);
}

const char *ss_db_errmsg(struct ss_db *db)
{
        if (db && db->err)
                return db->cause;
        return db && db->h ? sqlite3_errmsg(db->h) : "no database";
}

int ss_db_error(const struct ss_db *db, const char **ret_cause)
{
        if (db->err && ret_cause)
                *ret_cause = db->cause;
        return db->err;
}

static int run(struct ss_db *db, int q)
{
        sqlite3_stmt *s = stmt(db, q);
        int rc;

        if (!s)
                return -EIO;
        rc = sqlite3_step(s);
        done(s);
        if (rc != SQLITE_DONE)
                return fail(db, sql[q], rc);
        return 0;
}

int ss_db_begin(struct ss_db *db)
{
        return run(db, Q_BEGIN);
}

int ss_db_commit(struct ss_db *db)
{
        return run(db, Q_COMMIT);
}

int ss_db_savepoint(struct ss_db *db)
{
        return run(db, Q_SAVEPOINT);
}

int ss_db_release(struct ss_db *db)
{
        return run(db, Q_RELEASE);
}

void ss_db_rollback_to(struct ss_db *db)
{
        (void)run(db, Q_ROLLBACK_TO);
        (void)run(db, Q_RELEASE);
}

void ss_db_rollback(struct ss_db *db)
{
        /* Also in the error state: a rollback writes nothing in WAL mode,
         * it only drops the transaction's pages from the cache. */
        if (!sqlite3_get_autocommit(db->h))
                (void)sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

static int wal_checkpoint(struct ss_db *db, int mode)
{
        int rc, nlog = 0, nckpt = 0;

        if (db->err)
                return db->err;
        rc = sqlite3_wal_checkpoint_v2(db->h, NULL, mode, &nlog, &nckpt);
        if (rc != SQLITE_OK)
                return fail(db, "wal_checkpoint", rc);
        if (mode == SQLITE_CHECKPOINT_TRUNCATE) {
                if (db->wal_frames)
                        db->wal_restarts++;
                db->wal_frames = 0;
                db->ck_backfilled = 0;
        } else {
                db->ck_backfilled = nckpt > 0 ? (unsigned)nckpt : 0;
        }
        return 0;
}

int ss_db_wal_checkpoint(struct ss_db *db)
{
        return wal_checkpoint(db, SQLITE_CHECKPOINT_TRUNCATE);
}

int ss_db_wal_copy(struct ss_db *db)
{
        return wal_checkpoint(db, SQLITE_CHECKPOINT_PASSIVE);
}

unsigned ss_db_wal_frames(const struct ss_db *db)
{
        return db->wal_frames;
}

unsigned ss_db_wal_unckpt(const struct ss_db *db)
{
        return db->wal_frames >= db->ck_backfilled ? db->wal_frames - db->ck_backfilled : db->wal_frames;
}

uint64_t ss_db_wal_restarts(const struct ss_db *db)
{
        return db->wal_restarts;
}

bool ss_db_wal_all_copied(const struct ss_db *db)
{
        return !db->err && db->wal_frames > 0 && db->ck_backfilled == db->wal_frames;
}

/* Work-queue thread: record a failure of the concurrent checkpoint for
 * ss_db_wal_passive_end() (db->err belongs to the loop thread). */
static int ck_fail(struct ss_db *db, sqlite3 *h, const char *what, int rc)
{
        const char *vfs_err = ss_vfs_take_error();

        cm_log(LOG_DEBUG, "%s: sqlite %s: %s (%d)%s%s", db->path, what, h ? sqlite3_errmsg(h) : "out of memory",
               rc, vfs_err ? ": " : "", vfs_err ? vfs_err : "");
        db->ck_err = -EIO;
        snprintf(db->ck_cause, sizeof(db->ck_cause), "SQLite %s (%s)", what,
                 vfs_err ? vfs_err : h ? sqlite3_errmsg(h) : "out of memory");
        return -EIO;
}

static int ck_open(struct ss_db *db, sqlite3 **ret, const char *what)
{
        int rc;

        if (*ret)
                return 0;
        rc = sqlite3_open_v2(db->path, ret, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                             SS_VFS_NAME);
        if (rc == SQLITE_OK) {
                sqlite3_busy_timeout(*ret, 0);
                sqlite3_wal_autocheckpoint(*ret, 0);
                /* Never checkpoints on close: only the main connection
                 * does, and not in the error state. */
                sqlite3_db_config(*ret, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
                rc = sqlite3_exec(*ret, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
                (void)ck_fail(db, *ret, what, rc);
                sqlite3_close(*ret);
                *ret = NULL;
                return -EIO;
        }
        return 0;
}

int ss_db_wal_pin(struct ss_db *db)
{
        int rc;

        db->ck_err = 0;
        db->ck_copied = false;
        if (ck_open(db, &db->pin, "open (checkpoint snapshot)") < 0)
                return -EIO;
        /* A read transaction: its snapshot holds the checkpoint to the
         * frames committed before it [W1]. */
        rc = sqlite3_exec(db->pin, "BEGIN; SELECT count(*) FROM meta;", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                (void)sqlite3_exec(db->pin, "ROLLBACK", NULL, NULL, NULL);
                return ck_fail(db, db->pin, "read (checkpoint snapshot)", rc);
        }
        return 0;
}

void ss_db_wal_unpin(struct ss_db *db)
{
        if (db->pin && !sqlite3_get_autocommit(db->pin))
                (void)sqlite3_exec(db->pin, "ROLLBACK", NULL, NULL, NULL);
}

int ss_db_wal_passive(struct ss_db *db, unsigned *ret_backfilled)
{
        int rc, nlog = 0, nckpt = 0;

        if (ck_open(db, &db->ck, "open (checkpoint)") < 0)
                return -EIO;
        rc = sqlite3_wal_checkpoint_v2(db->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        ss_db_wal_unpin(db);
        /* SQLITE_BUSY: another checkpoint holds SQLite's checkpoint lock
         * (the daemon runs one at a time): nothing failed, try later.  Any
         * other failure is the disk's (sticky). */
        if ((rc & 0xff) == SQLITE_BUSY)
                return -EAGAIN;
        if (rc != SQLITE_OK)
                return ck_fail(db, db->ck, "wal_checkpoint (passive)", rc);
        db->ck_frames = nckpt > 0 ? (unsigned)nckpt : 0;
        db->ck_copied = true;
        if (ret_backfilled)
                *ret_backfilled = db->ck_frames;
        return 0;
}

int ss_db_wal_passive_end(struct ss_db *db)
{
        if (db->ck_err) {
                if (!db->err) {
                        db->err = db->ck_err;
                        memcpy(db->cause, db->ck_cause, sizeof(db->cause));
                        sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
                }
                db->ck_err = 0;
                return db->err;
        }
        if (db->ck_copied)
                db->ck_backfilled = db->ck_frames;
        db->ck_copied = false;
        return db->err;
}

/* ---- helpers -------------------------------------------------------------- */

static int bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n)
{
        /* A zero-length blob must still be a blob, not NULL. */
        return sqlite3_bind_blob64(s, i, n ? p : "", n, SQLITE_TRANSIENT);
}

static uint64_t col_u64(sqlite3_stmt *s, int i)
{
        return (uint64_t)sqlite3_column_int64(s, i);
}

static void row_inode(sqlite3_stmt *s, struct ss_inode *in)
{
        const void *t;
        int tl;

        in->ino = col_u64(s, 0);
        in->mode = (uint32_t)sqlite3_column_int64(s, 1);
        in->nlink = (uint32_t)sqlite3_column_int64(s, 2);
        in->uid = (uint32_t)sqlite3_column_int64(s, 3);
        in->gid = (uint32_t)sqlite3_column_int64(s, 4);
        in->rdev = col_u64(s, 5);
        in->size = col_u64(s, 6);
        in->atime.sec = sqlite3_column_int64(s, 7);
        in->atime.nsec = (uint32_t)sqlite3_column_int64(s, 8);
        in->mtime.sec = sqlite3_column_int64(s, 9);
        in->mtime.nsec = (uint32_t)sqlite3_column_int64(s, 10);
        in->ctime.sec = sqlite3_column_int64(s, 11);
        in->ctime.nsec = (uint32_t)sqlite3_column_int64(s, 12);
        in->generation = col_u64(s, 13);
        in->version = col_u64(s, 14);
        t = sqlite3_column_blob(s, 16);
        tl = sqlite3_column_bytes(s, 16);
        if (tl < 0 || tl > (int)SS_VV_MAX)
                tl = 0;
        in->vvlen = (uint32_t)tl;
        if (tl)
                memcpy(in->vv, t, (size_t)tl);
        in->lseq = col_u64(s, 17);
        t = sqlite3_column_blob(s, 15);
        tl = sqlite3_column_bytes(s, 15);
        if (tl < 0 || tl > (int)SS_SYMLINK_MAX)
                tl = 0;
        in->targetlen = (uint32_t)tl;
        if (tl)
                memcpy(in->target, t, (size_t)tl);
        in->target[tl] = 0;
}

static void row_dirent(sqlite3_stmt *s, struct ss_dirent *d)
{
        const void *n = sqlite3_column_blob(s, 2);
        int nl = sqlite3_column_bytes(s, 2);

        d->id = col_u64(s, 0);
        d->parent = col_u64(s, 1);
        if (nl < 0 || nl > (int)SS_NAME_MAX)
                nl = 0;
        d->namelen = (uint32_t)nl;
        if (nl)
                memcpy(d->name, n, (size_t)nl);
        d->name[nl] = 0;
        d->ino = col_u64(s, 3);
        d->type = (uint32_t)sqlite3_column_int64(s, 4);
        d->cookie = col_u64(s, 5);
}

/* ---- meta ---------------------------------------------------------------- */

int ss_db_meta_get(struct ss_db *db, const char *key, uint64_t *ret)
{
        sqlite3_stmt *s = stmt(db, Q_META_GET);
        int rc, r = -ENOENT;

        if (!s)
                return -EIO;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                *ret = col_u64(s, 0);
                r = 0;
        } else if (rc != SQLITE_DONE)
                r = fail(db, "meta get", rc);
        done(s);
        return r;
}

static int exec_done(struct ss_db *db, sqlite3_stmt *s, const char *what)
{
        int rc = sqlite3_step(s);

        done(s);
        return rc == SQLITE_DONE ? 0 : fail(db, what, rc);
}

/* Run statement q, a write, with ?1 = v. */
static int exec_u64(struct ss_db *db, int q, uint64_t v, const char *what)
{
        sqlite3_stmt *s = stmt(db, q);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)v);
        return exec_done(db, s, what);
}

int ss_db_meta_put(struct ss_db *db, const char *key, uint64_t value)
{
        sqlite3_stmt *s = stmt(db, Q_META_PUT);

        if (!s)
                return -EIO;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)value);
        return exec_done(db, s, "meta put");
}

int ss_db_meta_del(struct ss_db *db, const char *key)
{
        sqlite3_stmt *s = stmt(db, Q_META_DEL);

        if (!s)
                return -EIO;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
        return exec_done(db, s, "meta del");
}

/* ---- inodes -------------------------------------------------------------- */

int ss_db_inode_get(struct ss_db *db, uint64_t ino, struct ss_inode *ret)
{
        sqlite3_stmt *s = stmt(db, Q_INODE_GET);
        int rc, r = -ENOENT;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                row_inode(s, ret);
                r = 0;
        } else if (rc != SQLITE_DONE)
                r = fail(db, "inode get", rc);
        done(s);
        return r;
}

int ss_db_inode_put(struct ss_db *db, const struct ss_inode *in)
{
        sqlite3_stmt *s = stmt(db, Q_INODE_PUT);
        int r;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)in->ino);
        sqlite3_bind_int64(s, 2, in->mode);
        sqlite3_bind_int64(s, 3, in->nlink);
        sqlite3_bind_int64(s, 4, in->uid);
        sqlite3_bind_int64(s, 5, in->gid);
        sqlite3_bind_int64(s, 6, (sqlite3_int64)in->rdev);
        sqlite3_bind_int64(s, 7, (sqlite3_int64)in->size);
        sqlite3_bind_int64(s, 8, in->atime.sec);
        sqlite3_bind_int64(s, 9, in->atime.nsec);
        sqlite3_bind_int64(s, 10, in->mtime.sec);
        sqlite3_bind_int64(s, 11, in->mtime.nsec);
        sqlite3_bind_int64(s, 12, in->ctime.sec);
        sqlite3_bind_int64(s, 13, in->ctime.nsec);
        sqlite3_bind_int64(s, 14, (sqlite3_int64)in->generation);
        sqlite3_bind_int64(s, 15, (sqlite3_int64)in->version);
        if (in->targetlen)
                bind_blob(s, 16, in->target, in->targetlen);
        else
                sqlite3_bind_null(s, 16);
        if (in->vvlen)
                bind_blob(s, 17, in->vv, in->vvlen);
        else
                bind_blob(s, 17, "", 1);        /* the empty vector */
        sqlite3_bind_int64(s, 18, (sqlite3_int64)in->lseq);
        r = exec_done(db, s, "inode put");
        if (r < 0)
                return r;
        return exec_u64(db, Q_GONE_DEL, in->ino, "gone del");
}

int ss_db_inode_del(struct ss_db *db, uint64_t ino)
{
        return exec_u64(db, Q_INODE_DEL, ino, "inode del");
}

int ss_db_inode_count(struct ss_db *db, uint64_t *ret)
{
        sqlite3_stmt *s = stmt(db, Q_INODE_COUNT);
        int rc, r = 0;

        if (!s)
                return -EIO;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
                *ret = col_u64(s, 0);
        else
                r = fail(db, "inode count", rc);
        done(s);
        return r;
}

/* ---- deletion records and the change stream ------------------------------ */

int ss_db_gone_put(struct ss_db *db, uint64_t ino, const uint8_t *vv, size_t vvlen, uint64_t lseq)
{
        sqlite3_stmt *s = stmt(db, Q_GONE_PUT);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        if (vvlen)
                bind_blob(s, 2, vv, vvlen);
        else
                bind_blob(s, 2, "", 1);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)lseq);
        return exec_done(db, s, "gone put");
}

int ss_db_gone_get(struct ss_db *db, uint64_t ino, uint8_t *ret_vv, size_t *ret_vvlen, uint64_t *ret_lseq)
{
        sqlite3_stmt *s = stmt(db, Q_GONE_GET);
        int rc, r = -ENOENT;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                int n = sqlite3_column_bytes(s, 0);

                if (n < 0 || n > (int)SS_VV_MAX)
                        n = 0;
                if (n)
                        memcpy(ret_vv, sqlite3_column_blob(s, 0), (size_t)n);
                *ret_vvlen = (size_t)n;
                if (ret_lseq)
                        *ret_lseq = col_u64(s, 1);
                r = 0;
        } else if (rc != SQLITE_DONE) {
                r = fail(db, "gone get", rc);
        }
        done(s);
        return r;
}

int ss_db_changes(struct ss_db *db, uint64_t since, unsigned max,
                  int (*fn)(void *ctx, const struct ss_change *c), void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_CHANGES);
        struct ss_change c;
        int n = 0, r = 0;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)since);
        sqlite3_bind_int64(s, 2, max ? (sqlite3_int64)max : -1);
        while ((r = next_row(db, s, "changes")) > 0) {
                c.ino = col_u64(s, 0);
                c.lseq = col_u64(s, 1);
                c.gone = sqlite3_column_int(s, 2) != 0;
                c.vv = sqlite3_column_blob(s, 3);
                c.vvlen = (size_t)sqlite3_column_bytes(s, 3);
                r = fn(ctx, &c);
                if (r != 0)
                        break;
                n++;
        }
        done(s);
        return r < 0 ? r : n;
}

int ss_db_each_gone(struct ss_db *db,
                    int (*fn)(void *ctx, uint64_t ino, const uint8_t *vv, size_t vvlen, uint64_t lseq),
                    void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_EACH_GONE);
        int r = 0;

        if (!s)
                return -EIO;
        while ((r = next_row(db, s, "each gone")) > 0) {
                r = fn(ctx, col_u64(s, 0), sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1),
                       col_u64(s, 2));
                if (r != 0)
                        break;
        }
        done(s);
        return r < 0 ? r : 0;
}

/* ---- dirents ------------------------------------------------------------- */

static int dirent_one(struct ss_db *db, sqlite3_stmt *s, struct ss_dirent *ret, const char *what)
{
        int rc = sqlite3_step(s), r = -ENOENT;

        if (rc == SQLITE_ROW) {
                row_dirent(s, ret);
                r = 0;
        } else if (rc != SQLITE_DONE)
                r = fail(db, what, rc);
        done(s);
        return r;
}

int ss_db_lookup(struct ss_db *db, uint64_t parent, const uint8_t *name, size_t namelen,
                 struct ss_dirent *ret)
{
        sqlite3_stmt *s = stmt(db, Q_LOOKUP);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
        bind_blob(s, 2, name, namelen);
        return dirent_one(db, s, ret, "lookup");
}

int ss_db_dirent_get(struct ss_db *db, uint64_t id, struct ss_dirent *ret)
{
        sqlite3_stmt *s = stmt(db, Q_DIRENT_GET);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
        return dirent_one(db, s, ret, "dirent get");
}

static void bind_dirent(sqlite3_stmt *s, const struct ss_dirent *d)
{
        sqlite3_bind_int64(s, 1, (sqlite3_int64)d->id);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)d->parent);
        bind_blob(s, 3, d->name, d->namelen);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)d->ino);
        sqlite3_bind_int64(s, 5, d->type);
        sqlite3_bind_int64(s, 6, (sqlite3_int64)d->cookie);
}

int ss_db_dirent_put(struct ss_db *db, const struct ss_dirent *d)
{
        sqlite3_stmt *s = stmt(db, Q_DIRENT_UPD);
        int r;

        if (!s)
                return -EIO;
        bind_dirent(s, d);
        r = exec_done(db, s, "dirent update");
        if (r < 0 || sqlite3_changes(db->h) > 0)
                return r;
        s = stmt(db, Q_DIRENT_INS);
        if (!s)
                return -EIO;
        bind_dirent(s, d);
        return exec_done(db, s, "dirent insert");
}

int ss_db_dirent_del(struct ss_db *db, uint64_t id)
{
        return exec_u64(db, Q_DIRENT_DEL, id, "dirent del");
}

int ss_db_dir_entry(struct ss_db *db, uint64_t ino, struct ss_dirent *ret)
{
        sqlite3_stmt *s = stmt(db, Q_DIR_ENTRY);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        return dirent_one(db, s, ret, "dir entry");
}

static int exists(struct ss_db *db, sqlite3_stmt *s, const char *what)
{
        int r = next_row(db, s, what);

        done(s);
        return r;
}

int ss_db_dir_empty(struct ss_db *db, uint64_t ino)
{
        sqlite3_stmt *s = stmt(db, Q_DIR_EMPTY);
        int r;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        r = exists(db, s, "dir empty");
        return r < 0 ? r : !r;
}

int ss_db_cookie_taken(struct ss_db *db, uint64_t dir, uint64_t cookie, uint64_t except_id)
{
        sqlite3_stmt *s = stmt(db, Q_COOKIE_TAKEN);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)cookie);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)except_id);
        return exists(db, s, "cookie taken");
}

/* Call fn for each row of s, a query of dirents, until it returns
 * nonzero: the number of calls that returned 0, or a negative errno. */
static int dirent_rows(struct ss_db *db, sqlite3_stmt *s, int (*fn)(void *ctx, const struct ss_dirent *d),
                       void *ctx, const char *what)
{
        struct ss_dirent d;
        int n = 0, r = 0;

        while ((r = next_row(db, s, what)) > 0) {
                row_dirent(s, &d);
                r = fn(ctx, &d);
                if (r != 0)
                        break;
                n++;
        }
        done(s);
        return r < 0 ? r : n;
}

int ss_db_readdir(struct ss_db *db, uint64_t dir, uint64_t after, unsigned max,
                  int (*fn)(void *ctx, const struct ss_dirent *d), void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_READDIR);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
        sqlite3_bind_int64(s, 3, max);
        return dirent_rows(db, s, fn, ctx, "readdir");
}

int ss_db_readdir_more(struct ss_db *db, uint64_t dir, uint64_t after)
{
        sqlite3_stmt *s = stmt(db, Q_READDIR_MORE);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)dir);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
        return exists(db, s, "readdir more");
}

/* ---- xattrs -------------------------------------------------------------- */

int ss_db_xattr_get(struct ss_db *db, uint64_t ino, const uint8_t *name, size_t namelen,
                    void *buf, size_t cap, size_t *ret_len)
{
        sqlite3_stmt *s = stmt(db, Q_XATTR_GET);
        int rc, r = -ENOENT;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        bind_blob(s, 2, name, namelen);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
                const void *v = sqlite3_column_blob(s, 0);
                size_t n = (size_t)sqlite3_column_bytes(s, 0);

                if (cap && n)
                        memcpy(buf, v, n < cap ? n : cap);
                *ret_len = n;
                r = 0;
        } else if (rc != SQLITE_DONE)
                r = fail(db, "xattr get", rc);
        done(s);
        return r;
}

int ss_db_xattr_put(struct ss_db *db, uint64_t ino, const uint8_t *name, size_t namelen,
                    const void *value, size_t vlen)
{
        sqlite3_stmt *s = stmt(db, Q_XATTR_PUT);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        bind_blob(s, 2, name, namelen);
        bind_blob(s, 3, value, vlen);
        return exec_done(db, s, "xattr put");
}

int ss_db_xattr_del(struct ss_db *db, uint64_t ino, const uint8_t *name, size_t namelen)
{
        sqlite3_stmt *s = stmt(db, Q_XATTR_DEL);

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        bind_blob(s, 2, name, namelen);
        return exec_done(db, s, "xattr del");
}

int ss_db_xattr_each(struct ss_db *db, uint64_t ino,
                     int (*fn)(void *ctx, const uint8_t *name, size_t namelen,
                               const void *value, size_t vlen),
                     void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_XATTR_EACH);
        int r = 0;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
        while ((r = next_row(db, s, "xattr each")) > 0) {
                r = fn(ctx, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
                       sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
                if (r != 0)
                        break;
        }
        done(s);
        return r < 0 ? r : 0;
}

/* ---- orphans and dumps ------------------------------------------------------ */

int ss_db_orphans(struct ss_db *db, unsigned max, uint64_t *ret_inos, size_t *ret_n)
{
        sqlite3_stmt *s = stmt(db, Q_ORPHANS);
        size_t n = 0;
        int r = 0;

        if (!s)
                return -EIO;
        sqlite3_bind_int64(s, 1, max);
        while (n < max && (r = next_row(db, s, "orphans")) > 0)
                ret_inos[n++] = col_u64(s, 0);
        done(s);
        *ret_n = n;
        return r < 0 ? r : 0;
}

int ss_db_each_inode(struct ss_db *db, int (*fn)(void *ctx, const struct ss_inode *in), void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_EACH_INODE);
        struct ss_inode *in;
        int r = 0;

        if (!s)
                return -EIO;
        in = malloc(sizeof(*in));
        if (!in) {
                done(s);
                return -ENOMEM;
        }
        while ((r = next_row(db, s, "each inode")) > 0) {
                row_inode(s, in);
                r = fn(ctx, in);
                if (r != 0)
                        break;
        }
        done(s);
        free(in);
        return r < 0 ? r : 0;
}

int ss_db_each_dirent(struct ss_db *db, int (*fn)(void *ctx, const struct ss_dirent *d), void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_EACH_DIRENT);
        int r;

        if (!s)
                return -EIO;
        r = dirent_rows(db, s, fn, ctx, "each dirent");
        return r < 0 ? r : 0;
}

int ss_db_each_xattr(struct ss_db *db,
                     int (*fn)(void *ctx, uint64_t ino, const uint8_t *name, size_t namelen,
                               const void *value, size_t vlen),
                     void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_EACH_XATTR);
        int r = 0;

        if (!s)
                return -EIO;
        while ((r = next_row(db, s, "each xattr")) > 0) {
                r = fn(ctx, col_u64(s, 0), sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1),
                       sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2));
                if (r != 0)
                        break;
        }
        done(s);
        return r < 0 ? r : 0;
}

int ss_db_each_meta(struct ss_db *db, int (*fn)(void *ctx, const char *key, uint64_t value), void *ctx)
{
        sqlite3_stmt *s = stmt(db, Q_EACH_META);
        int r = 0;

        if (!s)
                return -EIO;
        while ((r = next_row(db, s, "each meta")) > 0) {
                r = fn(ctx, (const char *)sqlite3_column_text(s, 0), col_u64(s, 1));
                if (r != 0)
                        break;
        }
        done(s);
        return r < 0 ? r : 0;
}

int ss_db_clear(struct ss_db *db)
{
        char *err = NULL;
        int rc;

        if (db->err)
                return db->err;
        rc = sqlite3_exec(db->h, "DELETE FROM inodes; DELETE FROM gone; DELETE FROM dirents; DELETE FROM xattrs;"
                                     "DELETE FROM meta WHERE key <> 'schema';",
                              NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                cm_log(LOG_DEBUG, "%s: clear: %s", db->path, err ? err : "?");
                sqlite3_free(err);
                return fail(db, "clear", rc);
        }
        return 0;
}
