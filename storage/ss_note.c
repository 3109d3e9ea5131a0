/*
 * ss_note.c -- see ss_note.h.
 *
 * The queue is an array of notes in arrival order with an open-addressing
 * index on <fg, ino, client> (2 * max slots, so it is never full), and a
 * small set of file groups covered by a group note.  `all`: the set
 * overflowed, one note for every group (fg 0, LP_NOTE_GROUP) stands for it.
 */
#include "ss_note.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "cm_codec.h"
#include "dsm.h"
#include "lp_note.h"

struct qn {
        uint32_t fg;
        uint64_t ino, version, client;
        uint32_t flags;
        struct lp_note_ext *ext;
        size_t next, cap;
};

struct ss_note {
        size_t max;
        struct qn *v;
        size_t n;
        uint32_t *slot;                 /* index + 1, 0 free */
        size_t nslots;
        size_t bytes;                   /* of extents */
        uint32_t groups[SS_NOTE_GROUPS];
        size_t ngroups;
        bool all;
        uint32_t *taken;                /* the groups of the last batch */
        size_t ntaken;
        bool taken_all;
        struct ss_note_stats st;
};

static size_t hash(uint32_t fg, uint64_t ino, uint64_t client, size_t nslots)
{
        uint64_t h = ino * 0x9E3779B97F4A7C15ull ^ ((uint64_t)fg << 32) ^ client * 0xC2B2AE3D27D4EB4Full;

        h ^= h >> 29;
        return (size_t)(h & (nslots - 1));
}

int ss_note_new(size_t max, struct ss_note **ret)
{
        struct ss_note *q = calloc(1, sizeof(*q));

        if (!q)
                return -ENOMEM;
        q->max = max ? max : SS_NOTE_MAX;
        if (q->max > LP_NOTE_MAX - SS_NOTE_GROUPS - 1)
                q->max = LP_NOTE_MAX - SS_NOTE_GROUPS - 1;
        for (q->nslots = 16; q->nslots < 2 * q->max; q->nslots *= 2)
                ;
        q->v = calloc(q->max, sizeof(*q->v));
        q->slot = calloc(q->nslots, sizeof(*q->slot));
        if (!q->v || !q->slot) {
                ss_note_free(q);
                return -ENOMEM;
        }
        *ret = q;
        return 0;
}

static void clear_notes(struct ss_note *q)
{
        for (size_t i = 0; i < q->n; i++)
                free(q->v[i].ext);
        memset(q->v, 0, q->n * sizeof(*q->v));
        memset(q->slot, 0, q->nslots * sizeof(*q->slot));
        q->n = 0;
        q->bytes = 0;
}

void ss_note_free(struct ss_note *q)
{
        if (!q)
                return;
        if (q->v)
                clear_notes(q);
        free(q->v);
        free(q->slot);
        free(q->taken);
        free(q);
}

static bool group_has(const struct ss_note *q, uint32_t fg)
{
        if (q->all)
                return true;
        for (size_t i = 0; i < q->ngroups; i++)
                if (q->groups[i] == fg)
                        return true;
        return false;
}

static void group_add(struct ss_note *q, uint32_t fg)
{
        if (group_has(q, fg))
                return;
        if (fg == 0 || q->ngroups == SS_NOTE_GROUPS) {
                q->all = true;          /* one note for every group */
                return;
        }
        q->groups[q->ngroups++] = fg;
}

/* The queue is full: every group in it, and fg, get a group note. */
static void collapse(struct ss_note *q, uint32_t fg)
{
        for (size_t i = 0; i < q->n; i++)
                group_add(q, q->v[i].fg);
        group_add(q, fg);
        clear_notes(q);
        q->st.overflows++;
}

/* fg 0: every file group. */
void ss_note_lost(struct ss_note *q, uint32_t fg)
{
        group_add(q, fg);
        /* Notes of fg already waiting are covered now; they go out too
         * (harmless), the bound still holds. */
}

size_t ss_note_count(const struct ss_note *q)
{
        return q->n + (q->all ? 1 : q->ngroups);
}

static uint64_t version_of(const uint8_t *vv, size_t vvlen)
{
        struct dsm_vv v;
        uint64_t sum = 0;

        dsm_vv_init(&v);
        if (dsm_vv_decode(&v, vv, vvlen) >= 0)
                for (uint32_t i = 0; i < v.n; i++)
                        sum += v.e[i].counter;
        dsm_vv_free(&v);
        return sum;
}

/* The note of <fg, ino, client>, made if needed; NULL: the queue is full. */
static struct qn *note_of(struct ss_note *q, uint32_t fg, uint64_t ino, uint64_t client, bool *ret_new)
{
        size_t h = hash(fg, ino, client, q->nslots);
        struct qn *o;

        for (; q->slot[h]; h = (h + 1) & (q->nslots - 1)) {
                o = &q->v[q->slot[h] - 1];
                if (o->fg == fg && o->ino == ino && o->client == client) {
                        *ret_new = false;
                        return o;
                }
        }
        if (q->n == q->max)
                return NULL;
        o = &q->v[q->n++];
        memset(o, 0, sizeof(*o));
        o->fg = fg;
        o->ino = ino;
        o->client = client;
        q->slot[h] = (uint32_t)q->n;
        *ret_new = true;
        return o;
}

/* Add one extent (pages) to o: false when the queue must collapse. */
static bool add_ext(struct ss_note *q, struct qn *o, const struct ss_ct_extent *e)
{
        struct lp_note_ext x = { e->first_page << DSM_PAGE_SHIFT,
                                 e->npages == DSM_TO_END ? 0 : e->npages << DSM_PAGE_SHIFT };

        if (o->flags & LP_NOTE_ALLDATA)
                return true;
        /* Adjacent or the same as the last one: widen it (sequential writes). */
        if (o->next) {
                struct lp_note_ext *l = &o->ext[o->next - 1];

                if (l->len && x.off >= l->off && x.off <= l->off + l->len) {
                        if (!x.len)
                                l->len = 0;
                        else if (x.off + x.len > l->off + l->len)
                                l->len = x.off + x.len - l->off;
                        return true;
                }
        }
        if (o->next == LP_NOTE_EXT_MAX) {
                o->flags |= LP_NOTE_ALLDATA;
                q->bytes -= o->next * sizeof(*o->ext);
                free(o->ext);
                o->ext = NULL;
                o->next = o->cap = 0;
                return true;
        }
        if (q->bytes + sizeof(x) > SS_NOTE_BYTES)
                return false;
        if (o->next == o->cap) {
                size_t cap = o->cap ? o->cap * 2 : 4;
                struct lp_note_ext *v = realloc(o->ext, cap * sizeof(*v));

                if (!v)
                        return false;
                o->ext = v;
                o->cap = cap;
        }
        o->ext[o->next++] = x;
        q->bytes += sizeof(x);
        return true;
}

void ss_note_add(struct ss_note *q, uint32_t fg, uint64_t client, const struct ss_ct_change *ch, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                const struct ss_ct_change *c = &ch[i];
                struct qn *o;
                bool fresh, ok = true;

                q->st.added++;
                if (group_has(q, fg)) {
                        q->st.merged++;
                        continue;
                }
                o = note_of(q, fg, c->ino, client, &fresh);
                if (!o) {
                        collapse(q, fg);
                        continue;
                }
                if (!fresh)
                        q->st.merged++;
                if (c->vvlen)
                        o->version = version_of(c->vv, c->vvlen);
                if (c->gone)
                        o->flags |= LP_NOTE_GONE;
                else if (c->vvlen)
                        o->flags &= ~LP_NOTE_GONE;
                for (size_t k = 0; ok && k < c->next; k++)
                        ok = add_ext(q, o, &c->ext[k]);
                if (!ok)
                        collapse(q, fg);
        }
}

int ss_note_take(struct ss_note *q, uint8_t **ret_buf, size_t *ret_len)
{
        size_t ng = q->all ? 1 : q->ngroups, n = ng + q->n, nt = 0;
        struct lp_note *v = calloc(n ? n : 1, sizeof(*v));
        uint32_t *taken = calloc(n ? n : 1, sizeof(*taken));
        struct cm_wbuf w;
        int r;

        if (!v || !taken) {
                free(v);
                free(taken);
                return -ENOMEM;
        }
        for (size_t i = 0; i < ng; i++) {
                v[i].fg = q->all ? 0 : q->groups[i];
                v[i].flags = LP_NOTE_GROUP;
                taken[nt++] = v[i].fg;
        }
        for (size_t i = 0; i < q->n; i++) {
                const struct qn *o = &q->v[i];

                v[ng + i] = (struct lp_note){ o->fg, o->ino, o->version, o->client, o->flags, o->ext, o->next };
                if (!nt || taken[nt - 1] != o->fg)
                        taken[nt++] = o->fg;    /* repeats are harmless: group_add skips them */
        }
        cm_wbuf_init(&w);
        r = lp_note_encode(&w, v, n);
        free(v);
        if (r < 0) {
                cm_wbuf_free(&w);
                free(taken);
                return r;
        }
        *ret_buf = cm_wbuf_take(&w, ret_len);
        free(q->taken);
        q->taken = taken;
        q->ntaken = nt;
        q->taken_all = q->all;
        q->st.taken += n;
        clear_notes(q);
        q->ngroups = 0;
        q->all = false;
        return 0;
}

void ss_note_untake(struct ss_note *q)
{
        if (q->taken_all)
                q->all = true;
        for (size_t i = 0; i < q->ntaken; i++)
                if (q->taken[i])
                        group_add(q, q->taken[i]);
        q->ntaken = 0;
        q->taken_all = false;
}

void ss_note_stats(const struct ss_note *q, struct ss_note_stats *ret)
{
        *ret = q->st;
}
