/*
 * css_lease.c -- see css_lease.h.
 *
 * A list: clients are mounts, a handful per cluster; every operation is
 * linear in their number, bounded by CSS_MAX_CLIENTS.
 *
 * Invariant: a client is in the list iff it has a connection, or has had
 * none for less than the lease (css_leases_expire removes it then).
 */
#include "css_lease.h"

#include <errno.h>
#include <stdlib.h>

struct lclient {
        struct lclient *next;
        uint64_t id;
        unsigned nconns;
        uint64_t gone_us;               /* when nconns dropped to 0 */
};

struct css_leases {
        struct lclient *head;
        unsigned n;
};

int css_leases_new(struct css_leases **ret)
{
        struct css_leases *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

void css_leases_free(struct css_leases *t)
{
        if (!t)
                return;
        while (t->head) {
                struct lclient *c = t->head;

                t->head = c->next;
                free(c);
        }
        free(t);
}

static struct lclient *find(const struct css_leases *t, uint64_t id)
{
        struct lclient *c;

        for (c = t->head; c && c->id != id; c = c->next)
                ;
        return c;
}

int css_lease_connected(struct css_leases *t, uint64_t id)
{
        struct lclient *c = find(t, id);

        if (!c) {
                if (t->n >= CSS_MAX_CLIENTS)
                        return -ENOSPC;
                c = calloc(1, sizeof(*c));
                if (!c)
                        return -ENOMEM;
                c->id = id;
                c->next = t->head;
                t->head = c;
                t->n++;
        }
        c->nconns++;
        return 0;
}

void css_lease_disconnected(struct css_leases *t, uint64_t id, uint64_t now)
{
        struct lclient *c = find(t, id);

        if (c && c->nconns && --c->nconns == 0)
                c->gone_us = now;
}

void css_leases_expire(struct css_leases *t, uint64_t now, uint64_t lease_us,
                       void (*expired)(void *arg, uint64_t id), void *arg)
{
        struct lclient **pp = &t->head;

        while (*pp) {
                struct lclient *c = *pp;

                if (c->nconns || now - c->gone_us < lease_us) {
                        pp = &c->next;
                        continue;
                }
                *pp = c->next;
                t->n--;
                if (expired)
                        expired(arg, c->id);
                free(c);
        }
}

void css_leases_count(const struct css_leases *t, uint64_t *ret_known, uint64_t *ret_connected)
{
        uint64_t k = 0, c = 0;

        for (const struct lclient *x = t->head; x; x = x->next) {
                k++;
                c += x->nconns > 0;
        }
        *ret_known = k;
        *ret_connected = c;
}
