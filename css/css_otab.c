/*
 * css_otab.c -- see css_otab.h.
 *
 * Three chained hash tables: records hashed by <fg, ino> (so every record
 * of one file, whatever the site or client, is in one bucket), clients
 * hashed by id, each with a doubly linked list of its records, and the
 * orphan set hashed by <fg, ino>.
 *
 * Invariants:
 *   (1) a record exists iff readers + writers > 0;
 *   (2) a record is in exactly one file bucket and on its client's list;
 *   (3) a client entry exists iff its list is non-empty, and nrec is the
 *       length of that list;
 *   (4) an orphan entry is never reported free (css_otab_close,
 *       css_otab_drop_client, css_otab_orphan_add, css_otab_orphans_free)
 *       while a record of its file exists, and is removed when it is.
 */
#include "css_otab.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct oclient;

struct orec {
        uint64_t site, client;
        uint32_t fg;
        uint64_t ino;
        uint32_t readers, writers;
        struct orec *next;              /* file bucket chain */
        struct orec *cprev, *cnext;     /* client list */
        struct oclient *oc;
};

struct oclient {
        uint64_t id;
        uint32_t nrec;
        struct orec *head;
        struct oclient *next;           /* hash chain */
};

struct oorph {
        uint32_t fg;
        uint64_t ino;
        struct oorph *next;
};

struct css_otab {
        struct orec **fb;               /* file buckets */
        size_t nfb;
        struct oclient **cb;            /* client buckets */
        size_t ncb;
        size_t nrec, nconn;
        struct oorph *ob[CSS_ORPHAN_BUCKETS];
        size_t norph;
};

static uint64_t mix(uint64_t x)
{
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
}

static size_t fslot(const struct css_otab *t, uint32_t fg, uint64_t ino)
{
        return (size_t)(mix(ino ^ ((uint64_t)fg << 48) ^ ((uint64_t)fg >> 16)) & (t->nfb - 1));
}

static size_t cslot(const struct css_otab *t, uint64_t id)
{
        return (size_t)(mix(id) & (t->ncb - 1));
}

static size_t oslot(uint32_t fg, uint64_t ino)
{
        return (size_t)(mix(ino ^ ((uint64_t)fg << 48) ^ ((uint64_t)fg >> 16)) & (CSS_ORPHAN_BUCKETS - 1));
}

int css_otab_new(struct css_otab **ret)
{
        struct css_otab *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->nfb = 256;
        t->ncb = 64;
        t->fb = calloc(t->nfb, sizeof(*t->fb));
        t->cb = calloc(t->ncb, sizeof(*t->cb));
        if (!t->fb || !t->cb) {
                css_otab_free(t);
                return -ENOMEM;
        }
        *ret = t;
        return 0;
}

void css_otab_free(struct css_otab *t)
{
        if (!t)
                return;
        for (size_t i = 0; t->fb && i < t->nfb; i++)
                while (t->fb[i]) {
                        struct orec *r = t->fb[i];

                        t->fb[i] = r->next;
                        free(r);
                }
        for (size_t i = 0; t->cb && i < t->ncb; i++)
                while (t->cb[i]) {
                        struct oclient *c = t->cb[i];

                        t->cb[i] = c->next;
                        free(c);
                }
        for (size_t i = 0; i < CSS_ORPHAN_BUCKETS; i++)
                while (t->ob[i]) {
                        struct oorph *o = t->ob[i];

                        t->ob[i] = o->next;
                        free(o);
                }
        free(t->fb);
        free(t->cb);
        free(t);
}

/* Double the file buckets when records outnumber them twice; a failed
 * allocation just keeps the chains longer. */
static void fgrow(struct css_otab *t)
{
        size_t n = t->nfb * 2, old = t->nfb;
        struct orec **fb, **ofb = t->fb;

        if (t->nrec < 2 * t->nfb)
                return;
        fb = calloc(n, sizeof(*fb));
        if (!fb)
                return;
        t->fb = fb;
        t->nfb = n;
        for (size_t i = 0; i < old; i++)
                while (ofb[i]) {
                        struct orec *r = ofb[i];
                        size_t s = fslot(t, r->fg, r->ino);

                        ofb[i] = r->next;
                        r->next = fb[s];
                        fb[s] = r;
                }
        free(ofb);
}

static void cgrow(struct css_otab *t)
{
        size_t n = t->ncb * 2, old = t->ncb;
        struct oclient **cb, **ocb = t->cb;

        if (t->nconn < 2 * t->ncb)
                return;
        cb = calloc(n, sizeof(*cb));
        if (!cb)
                return;
        t->cb = cb;
        t->ncb = n;
        for (size_t i = 0; i < old; i++)
                while (ocb[i]) {
                        struct oclient *c = ocb[i];
                        size_t s = cslot(t, c->id);

                        ocb[i] = c->next;
                        c->next = cb[s];
                        cb[s] = c;
                }
        free(ocb);
}

static struct oclient *client_find(const struct css_otab *t, uint64_t id)
{
        for (struct oclient *c = t->cb[cslot(t, id)]; c; c = c->next)
                if (c->id == id)
                        return c;
        return NULL;
}

static bool held(const struct css_otab *t, uint32_t fg, uint64_t ino)
{
        for (const struct orec *r = t->fb[fslot(t, fg, ino)]; r; r = r->next)
                if (r->fg == fg && r->ino == ino)
                        return true;
        return false;
}

static struct oorph **orph_find(struct css_otab *t, uint32_t fg, uint64_t ino)
{
        struct oorph **pp = &t->ob[oslot(fg, ino)];

        while (*pp && ((*pp)->fg != fg || (*pp)->ino != ino))
                pp = &(*pp)->next;
        return pp;
}

/* If <fg, ino> is an orphan nobody holds: forget it and return 1. */
static int orph_take(struct css_otab *t, uint32_t fg, uint64_t ino)
{
        struct oorph **pp, *o;

        if (held(t, fg, ino))
                return 0;
        pp = orph_find(t, fg, ino);
        if (!*pp)
                return 0;
        o = *pp;
        *pp = o->next;
        t->norph--;
        free(o);
        return 1;
}

/* Unlink r from everything and free it; drops an empty client (3). */
static void rec_remove(struct css_otab *t, struct orec *r)
{
        struct orec **pp = &t->fb[fslot(t, r->fg, r->ino)];
        struct oclient *c = r->oc;

        while (*pp != r)
                pp = &(*pp)->next;
        *pp = r->next;
        if (r->cprev)
                r->cprev->cnext = r->cnext;
        else
                c->head = r->cnext;
        if (r->cnext)
                r->cnext->cprev = r->cprev;
        c->nrec--;
        t->nrec--;
        free(r);
        if (!c->head) {
                struct oclient **cp = &t->cb[cslot(t, c->id)];

                assert(c->nrec == 0);   /* invariant (3) */
                while (*cp != c)
                        cp = &(*cp)->next;
                *cp = c->next;
                t->nconn--;
                free(c);
        }
}

int css_otab_open(struct css_otab *t, uint64_t site, uint64_t client, uint32_t fg, uint64_t ino,
                  bool write)
{
        size_t s = fslot(t, fg, ino);
        struct oclient *c;
        struct orec *r;

        for (r = t->fb[s]; r; r = r->next)
                if (r->client == client && r->site == site && r->fg == fg && r->ino == ino) {
                        uint32_t *n = write ? &r->writers : &r->readers;

                        if (*n == UINT32_MAX)
                                return -ENOSPC;
                        (*n)++;
                        return 0;
                }
        if (t->nrec >= CSS_MAX_OPENS)
                return -ENOSPC;
        c = client_find(t, client);
        if (c && c->nrec >= CSS_MAX_CLIENT_OPENS)
                return -ENOSPC;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        if (!c) {
                c = calloc(1, sizeof(*c));
                if (!c) {
                        free(r);
                        return -ENOMEM;
                }
                c->id = client;
                c->next = t->cb[cslot(t, client)];
                t->cb[cslot(t, client)] = c;
                t->nconn++;
        }
        r->site = site;
        r->client = client;
        r->fg = fg;
        r->ino = ino;
        if (write)
                r->writers = 1;
        else
                r->readers = 1;
        r->next = t->fb[s];
        t->fb[s] = r;
        r->oc = c;
        r->cnext = c->head;
        if (c->head)
                c->head->cprev = r;
        c->head = r;
        c->nrec++;
        t->nrec++;
        fgrow(t);
        cgrow(t);
        return 0;
}

int css_otab_close(struct css_otab *t, uint64_t site, uint64_t client, uint32_t fg, uint64_t ino,
                   bool write)
{
        struct orec *r;

        for (r = t->fb[fslot(t, fg, ino)]; r; r = r->next)
                if (r->client == client && r->site == site && r->fg == fg && r->ino == ino &&
                    (write ? r->writers : r->readers))
                        break;
        if (!r)
                return -ENOENT;
        if (write)
                r->writers--;
        else
                r->readers--;
        if (r->readers || r->writers)
                return 0;
        rec_remove(t, r);               /* invariant (1) */
        return orph_take(t, fg, ino);   /* invariant (4) */
}

uint64_t css_otab_drop_client(struct css_otab *t, uint64_t client,
                              void (*freed)(void *arg, uint32_t fg, uint64_t ino), void *arg)
{
        struct oclient *c = client_find(t, client);
        uint64_t n = 0;

        while (c) {
                struct orec *r = c->head;
                bool last = r->cnext == NULL;
                uint32_t fg = r->fg;
                uint64_t ino = r->ino;

                n += (uint64_t)r->readers + r->writers;
                rec_remove(t, r);           /* frees c with the last record */
                if (orph_take(t, fg, ino) && freed)
                        freed(arg, fg, ino);
                if (last)
                        break;
        }
        return n;
}

int css_otab_orphan_add(struct css_otab *t, uint32_t fg, uint64_t ino)
{
        struct oorph **pp = orph_find(t, fg, ino), *o;

        if (*pp)
                return orph_take(t, fg, ino);
        if (!held(t, fg, ino))
                return 1;
        if (t->norph >= CSS_MAX_ORPHANS)
                return -ENOSPC;
        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->fg = fg;
        o->ino = ino;
        o->next = t->ob[oslot(fg, ino)];
        t->ob[oslot(fg, ino)] = o;
        t->norph++;
        return 0;
}

bool css_otab_is_orphan(struct css_otab *t, uint32_t fg, uint64_t ino)
{
        return *orph_find(t, fg, ino) != NULL;
}

void css_otab_get(const struct css_otab *t, uint64_t site, uint32_t fg, uint64_t ino,
                  uint32_t *ret_readers, uint32_t *ret_writers)
{
        uint64_t rd = 0, wr = 0;

        for (const struct orec *r = t->fb[fslot(t, fg, ino)]; r; r = r->next)
                if (r->fg == fg && r->ino == ino && (!site || r->site == site)) {
                        rd += r->readers;
                        wr += r->writers;
                }
        *ret_readers = rd > UINT32_MAX ? UINT32_MAX : (uint32_t)rd;
        *ret_writers = wr > UINT32_MAX ? UINT32_MAX : (uint32_t)wr;
}

void css_otab_stats(const struct css_otab *t, struct css_otab_stats *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->orphans = t->norph;
        ret->clients = t->nconn;
        for (size_t i = 0; i < t->nfb; i++)
                for (const struct orec *r = t->fb[i]; r; r = r->next) {
                        const struct orec *q;

                        ret->records++;
                        ret->readers += r->readers;
                        ret->writers += r->writers;
                        /* count <fg, ino> at its first record in the chain */
                        for (q = t->fb[i]; q != r; q = q->next)
                                if (q->fg == r->fg && q->ino == r->ino)
                                        break;
                        if (q == r)
                                ret->files++;
                }
}
