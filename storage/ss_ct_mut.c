/*
 * ss_ct_mut.c -- the mutation side of a container (ss_ct.h): ss_mut_*
 * (building a changeset, allocating inode and dirent ids, committing it to
 * the log and then to SQLite [C1] [C2] [C6]), the index's batch (its
 * commit, and applying it again to restart SQLite's WAL [C7]), the change
 * stream told to the listener after each commit, block counts and freeing
 * orphans.
 * Opening, recovery and maintenance are in ss_ct.c.
 */
#include "ss_ct.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"

#define ORPHAN_BATCH 256u

/* ---- mutations ------------------------------------------------------------------------ */

void ss_mut_init(struct ss_ct *ct, struct ss_mut *m, struct dsm_txn *txn)
{
        memset(m, 0, sizeof(*m));
        ss_cs_init(&m->cs);
        m->cs.site = (uint32_t)ct->container;
        m->txn = txn;
        m->next_ino = ct->next_ino;
        m->next_dirent = ct->next_dirent;
}

int ss_mut_txn(struct ss_ct *ct, struct ss_mut *m, struct dsm_txn **ret)
{
        int r;

        if (!m->txn) {
                if (ct->err)
                        return ct->err;
                r = dsm_txn_begin(ct->store, &m->txn);
                if (r < 0)
                        return r;
                m->own_txn = true;
        }
        *ret = m->txn;
        return 0;
}

int ss_mut_alloc_ino(struct ss_ct *ct, struct ss_mut *m, uint64_t *ret)
{
        if (m->next_ino > SS_INO_COUNTER_MAX)
                return -ENOSPC;
        *ret = ct->container << SS_INO_SHIFT | m->next_ino;
        m->next_ino++;
        return 0;
}

int ss_mut_alloc_dirent(struct ss_ct *ct, struct ss_mut *m, uint64_t *ret)
{
        if (m->next_dirent > SS_INO_COUNTER_MAX)
                return -ENOSPC;
        *ret = ct->container << SS_INO_SHIFT | m->next_dirent;
        m->next_dirent++;
        return 0;
}

void ss_mut_saw_ino(struct ss_ct *ct, struct ss_mut *m, uint64_t ino)
{
        uint64_t counter = ino & (((uint64_t)1 << SS_INO_SHIFT) - 1);

        if (ino >> SS_INO_SHIFT == ct->container && counter >= m->next_ino)
                m->next_ino = counter + 1;
}

void ss_mut_saw_dirent(struct ss_ct *ct, struct ss_mut *m, uint64_t id)
{
        uint64_t counter = id & (((uint64_t)1 << SS_INO_SHIFT) - 1);

        if (id >> SS_INO_SHIFT == ct->container && counter >= m->next_dirent)
                m->next_dirent = counter + 1;
}

int ss_mut_cookie(struct ss_ct *ct, struct ss_mut *m, uint64_t parent, const uint8_t *name, size_t namelen,
                  uint64_t except_id, uint64_t *ret)
{
        int r;

        if (m->nclaims == SS_MUT_CLAIMS)
                return -E2BIG;          /* a caller bug: see SS_MUT_CLAIMS */
        r = ss_cs_cookie(ct->db, parent, name, namelen, except_id, m->claims, m->nclaims, ret);
        if (r < 0)
                return r;
        m->claims[m->nclaims++] = (struct ss_cs_claim){ parent, *ret };
        return 0;
}

void ss_ct_set_listener(struct ss_ct *ct, ss_ct_listener_fn fn, void *ctx)
{
        ct->listener = fn;
        ct->listener_ctx = ctx;
}

void ss_mut_abort(struct ss_ct *ct, struct ss_mut *m)
{
        (void)ct;
        if (m->own_txn)
                dsm_txn_abort(m->txn);
        m->txn = NULL;
        ss_cs_free(&m->cs);
}

static unsigned blk_slot(uint64_t ino)
{
        return (unsigned)((ino * 0x9E3779B97F4A7C15ull) >> 52) % SS_BLK_CACHE;
}

int ss_ct_store_error(struct ss_ct *ct)
{
        struct dsm_txn *t;
        int r = dsm_txn_begin(ct->store, &t);

        if (r < 0)
                return r == -ENOMEM ? 0 : r;
        dsm_txn_abort(t);
        return 0;
}

/* ---- the change stream ---------------------------------------------------------------- */

struct chg_list {
        struct ss_ct_change *v;
        uint8_t (*vv)[SS_VV_MAX];
        size_t n, cap;
        int err;
};

static struct ss_ct_change *chg_find(struct chg_list *l, uint64_t ino)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].ino == ino)
                        return &l->v[i];
        return NULL;
}

static struct ss_ct_change *chg_add(struct chg_list *l, uint64_t ino)
{
        struct ss_ct_change *c = chg_find(l, ino);

        if (c)
                return c;
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                struct ss_ct_change *v = realloc(l->v, cap * sizeof(*v));
                uint8_t(*vv)[SS_VV_MAX];

                if (v)
                        l->v = v;
                vv = v ? realloc(l->vv, cap * sizeof(*vv)) : NULL;
                if (!vv) {
                        l->err = -ENOMEM;
                        return NULL;
                }
                l->vv = vv;
                l->cap = cap;
        }
        c = &l->v[l->n++];
        memset(c, 0, sizeof(*c));
        c->ino = ino;
        return c;
}

static int chg_row(void *ctx, uint64_t ino, bool gone, const uint8_t *vv, size_t vvlen)
{
        struct chg_list *l = ctx;
        struct ss_ct_change *c = chg_add(l, ino);

        if (!c)
                return l->err;
        /* The last row of an inode in the changeset is what it became. */
        c->gone = gone;
        c->vvlen = vvlen;
        memcpy(l->vv[c - l->v], vv, vvlen);
        return 0;
}

/* After a live commit was applied [C1]: hand the listener (seq, [(ino,
 * gone, vv, extents)]).  The listener is told, never asked: a failure here
 * (out of memory) loses the notice, not the commit, and is logged; the
 * change stream read back from SQLite (ss_db_changes) still has it. */
static void tell_listener(struct ss_ct *ct, struct ss_mut *m, const struct dsm_commit *dc)
{
        struct chg_list l = { 0 };
        struct ss_ct_extent *ext = NULL;
        size_t k = 0;
        int r = ss_cs_each_inode(m->cs.p, m->cs.len, chg_row, &l);

        /* Pages of an inode whose row the commit did not put: listed too,
         * with no vector (vvlen 0). */
        for (size_t i = 0; r >= 0 && i < dc->nchanges; i++)
                if (!chg_add(&l, dc->changes[i].obj))
                        r = l.err;
        if (r >= 0 && dc->nchanges) {
                ext = malloc(dc->nchanges * sizeof(*ext));
                if (!ext)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < l.n; i++) {
                struct ss_ct_change *c = &l.v[i];

                c->vv = c->vvlen ? l.vv[i] : NULL;
                c->ext = ext + k;
                for (size_t j = 0; j < dc->nchanges; j++) {
                        if (dc->changes[j].obj != c->ino)
                                continue;
                        ext[k++] = (struct ss_ct_extent){ dc->changes[j].page, dc->changes[j].npages };
                        c->next++;
                }
                if (!c->next)
                        c->ext = NULL;
        }
        if (r >= 0)
                ct->listener(ct->listener_ctx, dc->seq, l.v, l.n);
        else
                cm_log(LOG_ERR, "%s: commit %llu: the change stream's listener was not told (%s)", ct->dir,
                       (unsigned long long)dc->seq, strerror(-r));
        free(ext);
        free(l.v);
        free(l.vv);
}

/* ---- the index's batch [C6] [C7] ------------------------------------------------------ */

#define KEPT_HDR 12u    /* seq (u64), length (u32) */

static void kept_drop(struct ss_ct *ct)
{
        free(ct->kept);
        ct->kept = NULL;
        ct->kept_len = ct->kept_cap = 0;
        ct->kept_n = 0;
        ct->kept_ok = false;
}

/* A changeset applied in the open batch: copied if the batch is kept.  A
 * copy that cannot be made leaves the batch not kept (never a list with a
 * hole). */
static void kept_add(struct ss_ct *ct, uint64_t seq, const uint8_t *p, size_t len)
{
        size_t need = ct->kept_len + KEPT_HDR + len;
        uint32_t l32 = (uint32_t)len;

        if (!ct->kept_ok)
                return;
        if (len > UINT32_MAX || need > SS_CT_KEEP_MAX) {
                kept_drop(ct);
                return;
        }
        if (need > ct->kept_cap) {
                size_t cap = ct->kept_cap ? ct->kept_cap : 64u << 10;
                uint8_t *k;

                while (cap < need)
                        cap *= 2;
                k = realloc(ct->kept, cap);
                if (!k) {
                        kept_drop(ct);
                        return;
                }
                ct->kept = k;
                ct->kept_cap = cap;
        }
        memcpy(ct->kept + ct->kept_len, &seq, sizeof(seq));
        memcpy(ct->kept + ct->kept_len + sizeof(seq), &l32, sizeof(l32));
        memcpy(ct->kept + ct->kept_len + KEPT_HDR, p, len);
        ct->kept_len = need;
        ct->kept_n++;
}

int ss_ct_index_commit(struct ss_ct *ct)
{
        int r;

        if (!ct->batch_open)
                return 0;
        ct->batch_open = false;
        ct->kept_len = 0;
        ct->kept_n = 0;
        ct->kept_ok = false;
        if (ct->kept_cap > SS_CT_KEEP_MAX / 4)
                kept_drop(ct);  /* a big batch does not pin its memory */
        r = ss_db_commit(ct->db);
        if (r < 0) {
                ss_db_rollback(ct->db);
                cm_log(LOG_ERR, "%s: SQLite refused to commit the index (%s); the container refuses "
                       "changes until it is reopened (replay repairs it)", ct->dir, ss_db_errmsg(ct->db));
                if (!ct->err)
                        ct->err = -EIO;
        }
        return r;
}

int ss_ct_index_keep(struct ss_ct *ct, bool on)
{
        if (!on) {
                ct->keep = false;
                kept_drop(ct);
                return 0;
        }
        ct->keep = true;
        return ss_ct_index_commit(ct);
}

unsigned ss_ct_index_kept(const struct ss_ct *ct)
{
        return ct->batch_open && ct->kept_ok ? ct->kept_n : 0;
}

int ss_ct_index_restart(struct ss_ct *ct)
{
        size_t off = 0;
        int r;

        if (ct->err)
                return ct->err;
        if (!ss_db_wal_all_copied(ct->db))
                return 0;
        if (!ct->batch_open)
                return 1;       /* the next batch begins on a fresh snapshot */
        if (!ct->kept_ok)
                return 0;
        /* [C7]: one step, nothing runs between: readers see the batch
         * before and after.  The new transaction's snapshot is taken with
         * every frame copied, so its first write restarts the WAL [W2]. */
        ss_db_rollback(ct->db);
        ct->batch_open = false;
        r = ss_db_begin(ct->db);
        ct->batch_open = r >= 0;
        while (r >= 0 && off < ct->kept_len) {
                uint64_t seq;
                uint32_t len;

                memcpy(&seq, ct->kept + off, sizeof(seq));
                memcpy(&len, ct->kept + off + sizeof(seq), sizeof(len));
                r = ss_cs_apply(ct->db, seq, ct->kept + off + KEPT_HDR, len);
                off += KEPT_HDR + len;
        }
        if (r < 0) {
                ss_db_rollback(ct->db);
                ct->batch_open = false;
                cm_log(LOG_ERR, "%s: applying the index's batch again (to restart SQLite's WAL) failed: %s "
                       "(%s); the container refuses changes until it is reopened (replay repairs it)",
                       ct->dir, strerror(-r), ss_db_errmsg(ct->db));
                ct->err = -EIO;
                return -EIO;
        }
        return 1;
}

/* ---- committing a mutation ------------------------------------------------------------ */

int ss_mut_commit(struct ss_ct *ct, struct ss_mut *m, uint64_t *ret_seq)
{
        struct dsm_commit c = { 0 };
        int r;

        if (ct->err) {
                r = ct->err;
                goto drop;
        }
        if (m->next_ino != ct->next_ino)
                ss_cs_put_meta(&m->cs, "next_ino", m->next_ino);
        if (m->next_dirent != ct->next_dirent)
                ss_cs_put_meta(&m->cs, "next_dirent", m->next_dirent);
        if (m->d_inodes)
                ss_cs_put_meta(&m->cs, "inodes", (uint64_t)((int64_t)ct->ninodes + m->d_inodes));
        ss_cs_seal(&m->cs);
        if (m->cs.err) {
                r = m->cs.err;
                goto drop;
        }
        if (!m->txn) {
                r = dsm_txn_begin(ct->store, &m->txn);
                if (r < 0)
                        goto store_failed;
                m->own_txn = true;
        }
        assert(m->cs.sealed);
        r = dsm_txn_commit_nosync(m->txn, m->cs.p, m->cs.len, &c);
        m->txn = NULL;
        if (r == DSM_ECONFLICT)
                goto out;
        if (r < 0)
                goto store_failed;
        /* [C1][C2]: the commit is in the log; now the index, inside the
         * open batch [C6], in a savepoint so that a changeset SQLite
         * refuses takes nothing else with it. */
        r = 0;
        if (!ct->batch_open) {
                r = ss_db_begin(ct->db);
                ct->batch_open = r >= 0;
                ct->kept_ok = ct->keep;         /* [C7] */
        }
        if (r >= 0)
                r = ss_db_savepoint(ct->db);
        if (r >= 0) {
                r = ss_cs_apply(ct->db, c.seq, m->cs.p, m->cs.len);
                if (r >= 0)
                        r = ss_db_release(ct->db);
                else
                        ss_db_rollback_to(ct->db);
        }
        if (r >= 0)
                kept_add(ct, c.seq, m->cs.p, m->cs.len);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: commit %llu is in the log but SQLite refused it: %s (%s); the "
                       "container refuses changes until it is reopened (replay repairs it)",
                       ct->dir, (unsigned long long)c.seq, strerror(-r), ss_db_errmsg(ct->db));
                ct->err = -EIO;
                r = -EIO;
                goto out;
        }
        ct->seq = c.seq;
        ct->next_ino = m->next_ino;
        ct->next_dirent = m->next_dirent;
        ct->ninodes = (uint64_t)((int64_t)ct->ninodes + m->d_inodes);
        for (size_t i = 0; i < c.nchanges; i++) {
                struct ss_blk *b = &ct->blk[blk_slot(c.changes[i].obj)];

                if (b->ino == c.changes[i].obj)
                        b->valid = false;
        }
        if (ct->listener)
                tell_listener(ct, m, &c);
        if (ret_seq)
                *ret_seq = c.seq;
        r = 0;
        goto out;
store_failed:
        {
                int se = ss_ct_store_error(ct);

                if (se < 0 && !ct->err) {
                        cm_log(LOG_ERR, "%s: the segment log failed: %s; the container refuses changes "
                               "until it is reopened", ct->dir, strerror(-se));
                        ct->err = se;
                }
        }
        goto out;
drop:
        /* Consumed in every case, a borrowed transaction too (ss_ct.h):
         * a session's COMMIT hands its transaction over and forgets it. */
        dsm_txn_abort(m->txn);
        m->txn = NULL;
out:
        dsm_commit_release(&c);
        ss_cs_free(&m->cs);
        return r;
}

int ss_ct_blocks(struct ss_ct *ct, uint64_t ino, uint64_t *ret)
{
        struct ss_blk *b = &ct->blk[blk_slot(ino)];
        uint64_t p = 0, n = 0, d, h;
        int r;

        if (b->valid && b->ino == ino) {
                *ret = b->pages;
                return 0;
        }
        for (;;) {
                r = dsm_seek(ct->store, ino, p, DSM_SEEK_DATA, &d);
                if (r == -ENXIO)
                        break;
                if (r < 0)
                        return r;
                r = dsm_seek(ct->store, ino, d, DSM_SEEK_HOLE, &h);
                if (r < 0)
                        return r;
                if (h <= d)
                        break;
                n += h - d;
                p = h;
        }
        b->ino = ino;
        b->pages = n;
        b->valid = true;
        *ret = n;
        return 0;
}

struct xdel {
        struct ss_cs *cs;
        uint64_t ino;
};

static int xattr_del_cb(void *ctx, const uint8_t *name, size_t namelen, const void *value, size_t vlen)
{
        struct xdel *x = ctx;

        (void)value;
        (void)vlen;
        ss_cs_del_xattr(x->cs, x->ino, name, namelen);
        return x->cs->err;
}

int ss_ct_free_orphans(struct ss_ct *ct)
{
        uint64_t inos[ORPHAN_BATCH];
        uint64_t total = 0;
        struct ss_inode *in = malloc(sizeof(*in));
        size_t n;
        int r;

        if (!in)
                return -ENOMEM;
        for (;;) {
                struct ss_mut m;
                struct dsm_txn *t;

                r = ss_db_orphans(ct->db, ORPHAN_BATCH, inos, &n);
                if (r < 0 || n == 0)
                        break;
                ss_mut_init(ct, &m, NULL);
                r = ss_mut_txn(ct, &m, &t);
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        struct xdel x = { &m.cs, inos[i] };

                        r = dsm_txn_free(t, inos[i], 0, DSM_TO_END);
                        if (r >= 0)
                                r = ss_db_xattr_each(ct->db, inos[i], xattr_del_cb, &x);
                        if (r >= 0)
                                r = ss_db_inode_get(ct->db, inos[i], in);
                        if (r >= 0)
                                ss_cs_del_inode(&m.cs, inos[i], in->vv, in->vvlen, 0);
                        m.d_inodes--;
                }
                if (r < 0) {
                        ss_mut_abort(ct, &m);
                        break;
                }
                r = ss_mut_commit(ct, &m, NULL);
                if (r < 0)
                        break;
                total += n;
        }
        free(in);
        if (r < 0)
                cm_log(LOG_ERR, "%s: freeing orphans failed: %s", ct->dir, strerror(-r));
        else if (total)
                cm_log(LOG_INFO, "%s: freed %llu orphan inode(s) left over from the last run", ct->dir,
                       (unsigned long long)total);
        return r;
}
