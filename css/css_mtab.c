/*
 * css_mtab.c -- see css_mtab.h.
 *
 * The whole table lives in memory (an array of record pointers in fg
 * order, at most CSS_MAX_FGS); SQLite is where it is made durable.  Every
 * change goes to SQLite first, in one transaction, and only then to memory,
 * so memory never shows what the disk does not have.
 *
 * Schema (version 4):
 *   meta(key TEXT PRIMARY KEY, value INTEGER)   schema = 4, next_fg
 *   mounts(fg INTEGER PRIMARY KEY, name TEXT UNIQUE, parent_fg, parent_ino,
 *          path TEXT UNIQUE, ctime, policy, holders TEXT, adding TEXT,
 *          sync_copies, UNIQUE(parent_fg, parent_ino))
 * holders: the site ids holding a complete container, ascending,
 * comma-separated ("" for none known); adding: the sites being added
 * (css_mtab_set_holder), the same format, never also in holders.
 * sync_copies: fsync is durable on this many copies (docs/replication.md).
 * Version 1 (no holders column), 2 (no adding column) and 3 (no
 * sync_copies column) are migrated on open: the columns are added, empty
 * (sync_copies 1), and the holders are learned again from the sites'
 * registrations (css_mtab_add_holders).
 */
#include "css_mtab.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define MTAB_SCHEMA 4

struct css_mtab {
        sqlite3 *db;
        char *file;
        struct css_mount **recs;        /* sorted by fg */
        size_t n, cap;
        uint32_t next_fg;               /* invariant (4) */
        char err[256];
};

static int db_fail(struct css_mtab *m, const char *what)
{
        snprintf(m->err, sizeof(m->err), "%s: %s", what, m->db ? sqlite3_errmsg(m->db) : "no database");
        return -EIO;
}

static int db_exec(struct css_mtab *m, const char *sql)
{
        char *msg = NULL;

        if (sqlite3_exec(m->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
                snprintf(m->err, sizeof(m->err), "%s", msg ? msg : sqlite3_errmsg(m->db));
                sqlite3_free(msg);
                return -EIO;
        }
        return 0;
}

static void rec_free(struct css_mount *r)
{
        if (!r)
                return;
        free(r->holders);
        free(r->adding);
        free(r->name);
        free(r->path);
        free(r);
}

/* Insert into memory, keeping fg order. */
static int mem_add(struct css_mtab *m, uint32_t fg, const char *name, uint32_t parent_fg,
                   uint64_t parent_ino, const char *path, int64_t ctime, int policy)
{
        struct css_mount *r;
        size_t i;

        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 16;
                struct css_mount **a = realloc(m->recs, cap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                m->recs = a;
                m->cap = cap;
        }
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->name = strdup(name);
        r->path = strdup(path);
        if (!r->name || !r->path) {
                rec_free(r);
                return -ENOMEM;
        }
        r->fg = fg;
        r->parent_fg = parent_fg;
        r->parent_ino = parent_ino;
        r->ctime = ctime;
        r->policy = (enum css_sync_policy)policy;
        r->sync_copies = 1;
        for (i = m->n; i > 0 && m->recs[i - 1]->fg > fg; i--)
                m->recs[i] = m->recs[i - 1];
        m->recs[i] = r;
        m->n++;
        return 0;
}

/* "1,3,7" into *v, *n (ascending, unique); -EBADMSG, -ENOMEM. */
static int sites_parse(uint64_t **v, size_t *n, const char *text)
{
        const char *p = text ? text : "";

        while (*p) {
                char *end;
                unsigned long long x;
                uint64_t *a;

                errno = 0;
                x = strtoull(p, &end, 10);
                if (errno || end == p || x == 0 || (*end && *end != ',') || *n >= CSS_MAX_HOLDERS ||
                    (*n && (*v)[*n - 1] >= x))
                        return -EBADMSG;
                a = realloc(*v, (*n + 1) * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                *v = a;
                (*v)[(*n)++] = x;
                p = *end ? end + 1 : end;
        }
        return 0;
}

static void holders_text(const uint64_t *h, size_t n, char *buf, size_t cap)
{
        size_t off = 0;

        buf[0] = 0;
        for (size_t i = 0; i < n && off < cap; i++)
                off += (size_t)snprintf(buf + off, cap - off, "%s%llu", i ? "," : "", (unsigned long long)h[i]);
}

static int meta_get(struct css_mtab *m, const char *key, int64_t *ret)
{
        sqlite3_stmt *st;
        int rc, r = -ENOENT;

        if (sqlite3_prepare_v2(m->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) != SQLITE_OK)
                return db_fail(m, "reading meta");
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int64(st, 0);
                r = 0;
        } else if (rc != SQLITE_DONE) {
                r = db_fail(m, "reading meta");
        }
        sqlite3_finalize(st);
        return r;
}

static int meta_set(struct css_mtab *m, const char *key, int64_t v)
{
        sqlite3_stmt *st;
        int r = 0;

        if (sqlite3_prepare_v2(m->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", -1, &st,
                               NULL) != SQLITE_OK)
                return db_fail(m, "writing meta");
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, v);
        if (sqlite3_step(st) != SQLITE_DONE)
                r = db_fail(m, "writing meta");
        sqlite3_finalize(st);
        return r;
}

static int db_insert(struct css_mtab *m, uint32_t fg, const char *name, uint32_t parent_fg,
                     uint64_t parent_ino, const char *path, int64_t ctime)
{
        sqlite3_stmt *st;
        int rc, r = 0;

        if (sqlite3_prepare_v2(m->db,
                               "INSERT INTO mounts(fg, name, parent_fg, parent_ino, path, ctime, policy) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
                               -1, &st, NULL) != SQLITE_OK)
                return db_fail(m, "recording a mount");
        sqlite3_bind_int64(st, 1, fg);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, parent_fg);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)parent_ino);
        sqlite3_bind_text(st, 5, path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, ctime);
        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT)
                r = -EEXIST;
        else if (rc != SQLITE_DONE)
                r = db_fail(m, "recording a mount");
        sqlite3_finalize(st);
        return r;
}

static int load(struct css_mtab *m)
{
        sqlite3_stmt *st;
        int64_t v;
        int rc, r;

        r = meta_get(m, "schema", &v);
        if (r < 0)
                return r;
        if (v == 1) {
                /* Version 1 had no holders: add the column (empty). */
                r = db_exec(m, "BEGIN IMMEDIATE; ALTER TABLE mounts ADD COLUMN holders TEXT NOT NULL DEFAULT '';"
                               "UPDATE meta SET value = 2 WHERE key = 'schema'; COMMIT;");
                if (r < 0) {
                        db_exec(m, "ROLLBACK");
                        return r;
                }
                v = 2;
        }
        if (v == 2) {
                /* Version 2 had no sites being added: add the column (empty). */
                r = db_exec(m, "BEGIN IMMEDIATE; ALTER TABLE mounts ADD COLUMN adding TEXT NOT NULL DEFAULT '';"
                               "UPDATE meta SET value = 3 WHERE key = 'schema'; COMMIT;");
                if (r < 0) {
                        db_exec(m, "ROLLBACK");
                        return r;
                }
                v = 3;
        }
        if (v == 3) {
                /* Version 3 had no sync_copies: every group had 1. */
                r = db_exec(m, "BEGIN IMMEDIATE; ALTER TABLE mounts ADD COLUMN sync_copies INTEGER NOT NULL "
                               "DEFAULT 1; UPDATE meta SET value = 4 WHERE key = 'schema'; COMMIT;");
                if (r < 0) {
                        db_exec(m, "ROLLBACK");
                        return r;
                }
                v = MTAB_SCHEMA;
        }
        if (v != MTAB_SCHEMA) {
                snprintf(m->err, sizeof(m->err), "schema version %lld, this program knows %d", (long long)v,
                         MTAB_SCHEMA);
                return -EBADMSG;
        }
        r = meta_get(m, "next_fg", &v);
        if (r < 0)
                return r == -ENOENT ? (snprintf(m->err, sizeof(m->err), "next_fg missing"), -EBADMSG) : r;
        if (v < 2 || v > UINT32_MAX) {
                snprintf(m->err, sizeof(m->err), "next_fg %lld out of range", (long long)v);
                return -EBADMSG;
        }
        m->next_fg = (uint32_t)v;
        if (sqlite3_prepare_v2(m->db,
                               "SELECT fg, name, parent_fg, parent_ino, path, ctime, policy, holders, adding, sync_copies "
                               "FROM mounts "
                               "ORDER BY fg",
                               -1, &st, NULL) != SQLITE_OK)
                return db_fail(m, "reading mounts");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t fg = sqlite3_column_int64(st, 0);
                const char *name = (const char *)sqlite3_column_text(st, 1);
                int64_t pfg = sqlite3_column_int64(st, 2);
                const char *path = (const char *)sqlite3_column_text(st, 4);

                if (fg < 1 || fg >= m->next_fg || pfg < 0 || pfg > UINT32_MAX || !name || !path ||
                    m->n >= CSS_MAX_FGS) {
                        snprintf(m->err, sizeof(m->err), "bad mount record for file group %lld",
                                 (long long)fg);
                        sqlite3_finalize(st);
                        return -EBADMSG;
                }
                r = mem_add(m, (uint32_t)fg, name, (uint32_t)pfg, (uint64_t)sqlite3_column_int64(st, 3),
                            path, sqlite3_column_int64(st, 5), sqlite3_column_int(st, 6));
                if (r == 0) {
                        struct css_mount *rec = (struct css_mount *)css_mtab_find(m, (uint32_t)fg);

                        r = sites_parse(&rec->holders, &rec->nholders, (const char *)sqlite3_column_text(st, 7));
                        if (r == 0)
                                r = sites_parse(&rec->adding, &rec->nadding,
                                                (const char *)sqlite3_column_text(st, 8));
                        if (r == -EBADMSG)
                                snprintf(m->err, sizeof(m->err), "bad holders of file group %lld",
                                         (long long)fg);
                }
                if (r == 0) {
                        int64_t sc = sqlite3_column_int64(st, 9);

                        if (sc < 1 || sc > CSS_MAX_HOLDERS) {
                                snprintf(m->err, sizeof(m->err), "bad sync_copies of file group %lld",
                                         (long long)fg);
                                r = -EBADMSG;
                        } else {
                                ((struct css_mount *)css_mtab_find(m, (uint32_t)fg))->sync_copies = (unsigned)sc;
                        }
                }
                if (r < 0) {
                        sqlite3_finalize(st);
                        return r;
                }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return db_fail(m, "reading mounts");
        if (!css_mtab_find(m, CSS_ROOT_FG) || strcmp(css_mtab_find(m, CSS_ROOT_FG)->path, "/") != 0) {
                snprintf(m->err, sizeof(m->err), "the root file group is missing");
                return -EBADMSG;            /* invariant (3) */
        }
        return 0;
}

/* Create the schema and the root record in a fresh database. */
static int init_db(struct css_mtab *m)
{
        int r;

        r = db_exec(m, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        r = db_exec(m,
                    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS mounts("
                    " fg INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL UNIQUE,"
                    " parent_fg INTEGER NOT NULL,"
                    " parent_ino INTEGER NOT NULL,"
                    " path TEXT NOT NULL UNIQUE,"
                    " ctime INTEGER NOT NULL,"
                    " policy INTEGER NOT NULL DEFAULT 0,"
                    " holders TEXT NOT NULL DEFAULT '',"
                    " adding TEXT NOT NULL DEFAULT '',"
                    " sync_copies INTEGER NOT NULL DEFAULT 1,"
                    " UNIQUE(parent_fg, parent_ino));");
        if (r == 0) {
                int64_t v;

                r = meta_get(m, "schema", &v);
                if (r == -ENOENT) {
                        r = meta_set(m, "schema", MTAB_SCHEMA);
                        if (!r)
                                r = meta_set(m, "next_fg", CSS_ROOT_FG + 1);
                        if (!r)
                                r = db_insert(m, CSS_ROOT_FG, "root", 0, 0, "/", (int64_t)time(NULL));
                }
        }
        if (r < 0) {
                db_exec(m, "ROLLBACK");
                return r;
        }
        return db_exec(m, "COMMIT");
}

int css_mtab_open(const char *dir, struct css_mtab **ret, char *errbuf, size_t errcap)
{
        struct css_mtab *m;
        size_t n;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        n = strlen(dir) + sizeof("/mounttab.sqlite");
        m->file = malloc(n);
        if (!m->file) {
                free(m);
                return -ENOMEM;
        }
        snprintf(m->file, n, "%s/mounttab.sqlite", dir);
        if (sqlite3_open_v2(m->file, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                r = db_fail(m, "open");
                goto fail;
        }
        sqlite3_busy_timeout(m->db, 5000);
        r = db_exec(m, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
        if (!r)
                r = init_db(m);
        if (!r)
                r = load(m);
        if (r < 0)
                goto fail;
        *ret = m;
        return 0;
fail:
        if (errbuf && errcap)
                snprintf(errbuf, errcap, "%s", m->err[0] ? m->err : strerror(-r));
        css_mtab_close(m);
        return r;
}

void css_mtab_close(struct css_mtab *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++)
                rec_free(m->recs[i]);
        free(m->recs);
        if (m->db)
                sqlite3_close(m->db);
        free(m->file);
        free(m);
}

size_t css_mtab_count(const struct css_mtab *m)
{
        return m->n;
}

const struct css_mount *css_mtab_at(const struct css_mtab *m, size_t i)
{
        return i < m->n ? m->recs[i] : NULL;
}

const struct css_mount *css_mtab_find(const struct css_mtab *m, uint32_t fg)
{
        size_t lo = 0, hi = m->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (m->recs[mid]->fg == fg)
                        return m->recs[mid];
                if (m->recs[mid]->fg < fg)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const struct css_mount *css_mtab_find_name(const struct css_mtab *m, const char *name)
{
        for (size_t i = 0; i < m->n; i++)
                if (!strcmp(m->recs[i]->name, name))
                        return m->recs[i];
        return NULL;
}

const struct css_mount *css_mtab_find_path(const struct css_mtab *m, const char *path)
{
        for (size_t i = 0; i < m->n; i++)
                if (!strcmp(m->recs[i]->path, path))
                        return m->recs[i];
        return NULL;
}

const struct css_mount *css_mtab_find_on(const struct css_mtab *m, uint32_t fg, uint64_t ino)
{
        for (size_t i = 0; i < m->n; i++)
                if (m->recs[i]->parent_fg == fg && m->recs[i]->parent_ino == ino && m->recs[i]->fg != CSS_ROOT_FG)
                        return m->recs[i];
        return NULL;
}

int css_mtab_reserve_fg(struct css_mtab *m, uint32_t *ret_fg)
{
        uint32_t fg = m->next_fg;
        int r;

        if (fg > CSS_FG_ID_MAX)
                return -ENOSPC;
        r = meta_set(m, "next_fg", (int64_t)fg + 1);
        if (r < 0)
                return r;
        m->next_fg = fg + 1;
        *ret_fg = fg;
        return 0;
}

int css_mtab_add(struct css_mtab *m, uint32_t fg, const char *name, uint32_t parent_fg,
                 uint64_t parent_ino, const char *path)
{
        int64_t now = (int64_t)time(NULL);
        int r;

        if (!name || !*name || !path || path[0] != '/' || fg < 1 || fg >= m->next_fg || parent_ino == 0)
                return -EINVAL;
        if (m->n >= CSS_MAX_FGS)
                return -ENOSPC;
        if (css_mtab_find(m, fg) || css_mtab_find_name(m, name) || css_mtab_find_path(m, path) ||
            css_mtab_find_on(m, parent_fg, parent_ino))
                return -EEXIST;             /* invariants (1), (2) */
        if (!css_mtab_find(m, parent_fg))
                return -EINVAL;
        r = db_insert(m, fg, name, parent_fg, parent_ino, path, now);
        if (r < 0)
                return r;
        /* On disk now; memory follows.  If memory fails, the next open
         * loads the record: report the failure, the mount is not lost. */
        return mem_add(m, fg, name, parent_fg, parent_ino, path, now, CSS_SYNC_SHARED);
}

int css_mtab_add_holders(struct css_mtab *m, uint32_t fg, const uint64_t *sites, size_t n)
{
        struct css_mount *r = (struct css_mount *)css_mtab_find(m, fg);
        uint64_t *merged;
        size_t k = 0, i = 0, j = 0;
        char text[CSS_MAX_HOLDERS * 21 + 1];
        sqlite3_stmt *st;
        int rc;

        if (!r)
                return -ENOENT;
        merged = malloc((r->nholders + n + 1) * sizeof(*merged));
        if (!merged)
                return -ENOMEM;
        /* r->holders is sorted; sites may not be: merge one at a time. */
        if (r->nholders)                /* r->holders may be NULL then */
                memcpy(merged, r->holders, r->nholders * sizeof(*merged));
        k = r->nholders;
        for (i = 0; i < n; i++) {
                bool have = sites[i] == 0;

                for (j = 0; j < r->nadding && !have; j++)
                        have = r->adding[j] == sites[i];        /* stays "being added" */
                for (j = 0; j < k && !have; j++)
                        have = merged[j] == sites[i];
                if (have)
                        continue;
                for (j = k; j > 0 && merged[j - 1] > sites[i]; j--)
                        merged[j] = merged[j - 1];
                merged[j] = sites[i];
                k++;
        }
        if (k == r->nholders) {
                free(merged);
                return 0;               /* nothing new */
        }
        if (k > CSS_MAX_HOLDERS) {
                free(merged);
                return -ENOSPC;
        }
        holders_text(merged, k, text, sizeof(text));
        if (sqlite3_prepare_v2(m->db, "UPDATE mounts SET holders = ?1 WHERE fg = ?2", -1, &st, NULL) != SQLITE_OK) {
                free(merged);
                return db_fail(m, "recording holders");
        }
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, fg);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                free(merged);
                return db_fail(m, "recording holders");
        }
        free(r->holders);
        r->holders = merged;
        r->nholders = k;
        return 1;
}

/* a (sorted) with x inserted or removed, into a new array; -ENOMEM. */
static int sites_edit(const uint64_t *a, size_t n, uint64_t x, bool add, uint64_t **ret, size_t *ret_n)
{
        uint64_t *v = malloc((n + 1) * sizeof(*v));
        size_t k = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (add && x && a[i] > x) {
                        v[k++] = x;
                        x = 0;
                }
                if (a[i] != x)
                        v[k++] = a[i];
        }
        if (add && x)
                v[k++] = x;
        *ret = v;
        *ret_n = k;
        return 0;
}

static bool sites_have(const uint64_t *a, size_t n, uint64_t x)
{
        for (size_t i = 0; i < n; i++)
                if (a[i] == x)
                        return true;
        return false;
}

enum css_holder_state css_mtab_holder_state(const struct css_mount *r, uint64_t site)
{
        if (sites_have(r->holders, r->nholders, site))
                return CSS_HOLDER_FULL;
        if (sites_have(r->adding, r->nadding, site))
                return CSS_HOLDER_ADDING;
        return CSS_HOLDER_NONE;
}

int css_mtab_set_holder(struct css_mtab *m, uint32_t fg, uint64_t site, enum css_holder_state to)
{
        struct css_mount *r = (struct css_mount *)css_mtab_find(m, fg);
        char htext[CSS_MAX_HOLDERS * 21 + 1], atext[CSS_MAX_HOLDERS * 21 + 1];
        uint64_t *h = NULL, *a = NULL;
        size_t nh, na;
        sqlite3_stmt *st;
        int rc, e;

        if (!r)
                return -ENOENT;
        if (site == 0 || (unsigned)to > CSS_HOLDER_FULL)
                return -EINVAL;
        if (css_mtab_holder_state(r, site) == to)
                return 0;
        if (to != CSS_HOLDER_NONE && r->nholders + r->nadding >= CSS_MAX_HOLDERS)
                return -ENOSPC;
        e = sites_edit(r->holders, r->nholders, site, to == CSS_HOLDER_FULL, &h, &nh);
        if (e == 0)
                e = sites_edit(r->adding, r->nadding, site, to == CSS_HOLDER_ADDING, &a, &na);
        if (e < 0) {
                free(h);
                free(a);
                return e;
        }
        holders_text(h, nh, htext, sizeof(htext));
        holders_text(a, na, atext, sizeof(atext));
        if (sqlite3_prepare_v2(m->db, "UPDATE mounts SET holders = ?1, adding = ?2 WHERE fg = ?3", -1, &st,
                               NULL) != SQLITE_OK) {
                free(h);
                free(a);
                return db_fail(m, "recording holders");
        }
        sqlite3_bind_text(st, 1, htext, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, atext, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, fg);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                free(h);
                free(a);
                return db_fail(m, "recording holders");
        }
        free(r->holders);
        free(r->adding);
        r->holders = h;
        r->nholders = nh;
        r->adding = a;
        r->nadding = na;
        return 1;
}

int css_mtab_set_sync_copies(struct css_mtab *m, uint32_t fg, unsigned n)
{
        struct css_mount *r = (struct css_mount *)css_mtab_find(m, fg);
        sqlite3_stmt *st;
        int rc;

        if (!r)
                return -ENOENT;
        if (n < 1 || n > CSS_MAX_HOLDERS)
                return -EINVAL;
        if (sqlite3_prepare_v2(m->db, "UPDATE mounts SET sync_copies = ?1 WHERE fg = ?2", -1, &st, NULL) != SQLITE_OK)
                return db_fail(m, "recording sync_copies");
        sqlite3_bind_int64(st, 1, n);
        sqlite3_bind_int64(st, 2, fg);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return db_fail(m, "recording sync_copies");
        r->sync_copies = n;
        return 0;
}

const char *css_mtab_errmsg(const struct css_mtab *m)
{
        return m->err;
}

const char *css_mtab_path(const struct css_mtab *m)
{
        return m->file;
}
