/*
 * css_memb.c -- see css_memb.h: the membership state machine (pure).
 */
#include "css_memb.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

bool css_memb_set_has(const struct css_memb_set *s, uint64_t id)
{
        for (unsigned i = 0; i < s->n; i++)
                if (s->v[i] == id)
                        return true;
        return false;
}

bool css_memb_set_add(struct css_memb_set *s, uint64_t id)
{
        unsigned i;

        if (css_memb_set_has(s, id))
                return true;
        if (s->n >= CSS_MEMB_MAX)
                return false;
        for (i = s->n; i > 0 && s->v[i - 1] > id; i--)
                s->v[i] = s->v[i - 1];
        s->v[i] = id;
        s->n++;
        return true;
}

bool css_memb_set_eq(const struct css_memb_set *a, const struct css_memb_set *b)
{
        return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof(a->v[0])) == 0;
}

bool css_memb_set_sub(const struct css_memb_set *a, const struct css_memb_set *b)
{
        for (unsigned i = 0; i < a->n; i++)
                if (!css_memb_set_has(b, a->v[i]))
                        return false;
        return true;
}

const char *css_memb_state_name(enum css_memb_state s)
{
        switch (s) {
        case CSS_MEMB_UP: return "up";
        case CSS_MEMB_SUSPECT: return "suspect";
        case CSS_MEMB_DOWN: return "down";
        }
        return "?";
}

static uint64_t ms(uint32_t v)
{
        return (uint64_t)v * 1000u;
}

void css_memb_init(struct css_memb *m, uint64_t self, uint64_t max_epoch, const struct css_memb_cfg *cfg,
                   const struct css_memb_ops *ops, void *arg)
{
        memset(m, 0, sizeof(*m));
        m->self = self;
        m->cfg.heartbeat_ms = cfg && cfg->heartbeat_ms ? cfg->heartbeat_ms : CSS_MEMB_HEARTBEAT_MS;
        m->cfg.suspect_ms = cfg && cfg->suspect_ms ? cfg->suspect_ms : CSS_MEMB_SUSPECT_MS;
        m->cfg.poll_ms = cfg && cfg->poll_ms ? cfg->poll_ms : CSS_MEMB_POLL_MS;
        m->ops = ops;
        m->arg = arg;
        m->max_epoch = max_epoch;
        /* Until the first agreement, we know only ourselves (epoch 0). */
        css_memb_set_add(&m->members, self);
}

static struct css_memb_peer *find(struct css_memb *m, uint64_t id)
{
        for (unsigned i = 0; i < m->npeers; i++)
                if (m->peers[i].id == id)
                        return &m->peers[i];
        return NULL;
}

const struct css_memb_peer *css_memb_peer(const struct css_memb *m, uint64_t id)
{
        return find((struct css_memb *)m, id);
}

static void changed(struct css_memb *m, bool epoch)
{
        if (m->ops && m->ops->changed)
                m->ops->changed(m->arg, epoch);
}

static void set_state(struct css_memb *m, struct css_memb_peer *p, enum css_memb_state s, uint64_t now)
{
        if (p->state == s)
                return;
        p->state = s;
        p->since_us = now;
        p->gen++;               /* rounds of the old state are over */
        p->poll_pending = false;
        p->probes_pending = 0;
        changed(m, false);
}

/* A poll round: the direct poll and a probe through every UP peer. */
static void start_round(struct css_memb *m, struct css_memb_peer *p, unsigned round, uint64_t now)
{
        p->gen++;
        p->round = round;
        p->round_us = now;
        p->poll_pending = true;
        p->poll_failed = false;
        p->probe_yes = 0;
        p->probes_pending = 0;
        for (unsigned i = 0; i < m->npeers; i++) {
                struct css_memb_peer *q = &m->peers[i];

                if (q != p && q->state == CSS_MEMB_UP) {
                        p->probes_pending++;
                        if (m->ops && m->ops->probe)
                                m->ops->probe(m->arg, p->id, q->id, p->gen);
                }
        }
        if (m->ops && m->ops->poll)
                m->ops->poll(m->arg, p->id, p->gen);
}

static void suspect(struct css_memb *m, struct css_memb_peer *p, uint64_t now)
{
        set_state(m, p, CSS_MEMB_SUSPECT, now);
        start_round(m, p, 1, now);
}

int css_memb_add(struct css_memb *m, uint64_t id, uint64_t now_us)
{
        struct css_memb_peer *p;
        unsigned i;

        if (!id)
                return -EINVAL;
        if (id == m->self || find(m, id))
                return 0;
        if (m->npeers + 1 >= CSS_MEMB_MAX)
                return -ENOSPC;
        for (i = m->npeers; i > 0 && m->peers[i - 1].id > id; i--)
                m->peers[i] = m->peers[i - 1];
        p = &m->peers[i];
        memset(p, 0, sizeof(*p));
        p->id = id;
        p->state = CSS_MEMB_SUSPECT;   /* polled before it counts either way */
        p->since_us = now_us;
        m->npeers++;
        start_round(m, p, 1, now_us);
        changed(m, false);
        return 0;
}

void css_memb_heard(struct css_memb *m, uint64_t id, const struct css_memb_view *v, uint64_t now_us)
{
        struct css_memb_peer *p;

        if (id == m->self || !id)
                return;
        p = find(m, id);
        if (!p) {
                if (css_memb_add(m, id, now_us) < 0)
                        return;
                p = find(m, id);
        }
        p->heard_us = now_us;
        if (v) {
                p->have_view = true;
                p->view = *v;
                if (v->max_epoch > m->max_epoch) {
                        m->max_epoch = v->max_epoch;    /* (2): only grows */
                        changed(m, false);
                }
        }
        set_state(m, p, CSS_MEMB_UP, now_us);
}

void css_memb_lost(struct css_memb *m, uint64_t id, uint64_t now_us)
{
        struct css_memb_peer *p = find(m, id);

        if (p && p->state == CSS_MEMB_UP)
                suspect(m, p, now_us);
}

/* (1): decide a round once its poll failed and its probes are in (or
 * poll_ms has passed). */
static void decide(struct css_memb *m, struct css_memb_peer *p, uint64_t now)
{
        if (p->state != CSS_MEMB_SUSPECT || p->poll_pending || !p->poll_failed)
                return;
        if (p->probes_pending && now < p->round_us + ms(m->cfg.poll_ms))
                return;
        if (p->probe_yes && p->round == 1) {
                start_round(m, p, 2, now);      /* someone reaches it: look again */
                return;
        }
        set_state(m, p, CSS_MEMB_DOWN, now);
        p->polled_us = now;
        if (m->ops && m->ops->lost)
                m->ops->lost(m->arg, p->id);
}

void css_memb_poll_result(struct css_memb *m, uint64_t id, uint32_t gen, bool ok, uint64_t now_us)
{
        struct css_memb_peer *p = find(m, id);

        if (!p)
                return;
        if (ok) {
                css_memb_heard(m, id, NULL, now_us);
                return;
        }
        if (gen != p->gen || !p->poll_pending)
                return;
        p->poll_pending = false;
        p->poll_failed = true;
        decide(m, p, now_us);
}

void css_memb_probe_result(struct css_memb *m, uint64_t id, uint32_t gen, bool reached, uint64_t now_us)
{
        struct css_memb_peer *p = find(m, id);

        if (!p || gen != p->gen || !p->probes_pending)
                return;
        p->probes_pending--;
        if (reached)
                p->probe_yes++;
        decide(m, p, now_us);
}

void css_memb_view(const struct css_memb *m, struct css_memb_view *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->epoch = m->epoch;
        ret->max_epoch = m->max_epoch;
        ret->members = m->members;
        css_memb_set_add(&ret->reach, m->self);
        for (unsigned i = 0; i < m->npeers; i++)
                if (m->peers[i].state != CSS_MEMB_DOWN)
                        css_memb_set_add(&ret->reach, m->peers[i].id);
}

bool css_memb_reaches(const struct css_memb *m, uint64_t id, uint64_t now_us)
{
        const struct css_memb_peer *p = css_memb_peer(m, id);

        return id == m->self ||
               (p && p->state == CSS_MEMB_UP && p->heard_us && now_us - p->heard_us < ms(m->cfg.suspect_ms));
}

static void install(struct css_memb *m, uint64_t epoch, const struct css_memb_set *members, uint64_t now)
{
        m->epoch = epoch;
        if (epoch > m->max_epoch)
                m->max_epoch = epoch;
        m->members = *members;
        m->epoch_us = now;
        changed(m, true);
}

/* Does peer j (its last view) reach site k?  Self reaches every UP peer. */
static bool view_reaches(const struct css_memb *m, const struct css_memb_peer *j, uint64_t k)
{
        return k == j->id || css_memb_set_has(&j->view.reach, k);
}

/* (3): the leader's decision. */
static void maybe_propose(struct css_memb *m, uint64_t now)
{
        struct css_memb_set part = { 0 };
        bool differs;

        for (unsigned i = 0; i < m->npeers; i++)
                if (m->peers[i].state != CSS_MEMB_DOWN && m->peers[i].id < m->self)
                        return;                 /* not the lowest of our reach: not ours to propose */
        if (m->proposed_us && now < m->proposed_us + 2 * ms(m->cfg.heartbeat_ms))
                return;
        /* The partition: us and, in id order, every peer that follows us
         * (we are the lowest it reaches) and reaches every site chosen so
         * far, as they reach it.  With a clean cut that is our whole reach. */
        css_memb_set_add(&part, m->self);
        for (unsigned i = 0; i < m->npeers; i++) {
                const struct css_memb_peer *p = &m->peers[i];
                bool all = true;

                if (p->state == CSS_MEMB_DOWN)
                        continue;
                if (p->state != CSS_MEMB_UP || !p->have_view)
                        return;                 /* wait: a suspicion, or no view yet */
                if (!p->view.reach.n || p->view.reach.v[0] != m->self)
                        continue;               /* it follows a lower site */
                for (unsigned k = 0; k < part.n && all; k++) {
                        const struct css_memb_peer *q = part.v[k] == m->self ? NULL : find(m, part.v[k]);

                        all = view_reaches(m, p, part.v[k]) && (!q || view_reaches(m, q, p->id));
                }
                if (all)
                        css_memb_set_add(&part, p->id);
        }
        differs = m->epoch == 0 || !css_memb_set_eq(&part, &m->members);
        for (unsigned k = 0; k < part.n && !differs; k++) {
                const struct css_memb_peer *p = part.v[k] == m->self ? NULL : find(m, part.v[k]);

                /* a view from before it heard of our epoch (an answer that
                 * crossed our proposal) says nothing about it yet */
                if (p && p->view.max_epoch >= m->epoch &&
                    (p->view.epoch != m->epoch || !css_memb_set_eq(&p->view.members, &m->members)))
                        differs = true;
        }
        if (!differs)
                return;
        m->proposed_us = now;
        m->proposals++;
        install(m, m->max_epoch + 1, &part, now);       /* persisted by changed() before it goes out */
        if (part.n > 1 && m->ops && m->ops->propose)
                m->ops->propose(m->arg, m->epoch, &m->members);
}

void css_memb_tick(struct css_memb *m, uint64_t now_us)
{
        for (unsigned i = 0; i < m->npeers; i++) {
                struct css_memb_peer *p = &m->peers[i];

                switch (p->state) {
                case CSS_MEMB_UP:
                        if (now_us >= p->heard_us + ms(m->cfg.suspect_ms))
                                suspect(m, p, now_us);
                        break;
                case CSS_MEMB_SUSPECT:
                        if (p->poll_pending && now_us >= p->round_us + ms(m->cfg.poll_ms)) {
                                /* the caller's poll never answered: count it failed */
                                p->poll_pending = false;
                                p->poll_failed = true;
                        }
                        decide(m, p, now_us);
                        break;
                case CSS_MEMB_DOWN:
                        /* merge detection: every DOWN peer polled, all in parallel */
                        if (now_us >= p->polled_us + ms(m->cfg.suspect_ms)) {
                                p->polled_us = now_us;
                                p->gen++;
                                if (m->ops && m->ops->poll)
                                        m->ops->poll(m->arg, p->id, p->gen);
                        }
                        break;
                }
        }
        maybe_propose(m, now_us);
}

int css_memb_proposal(struct css_memb *m, uint64_t from, uint64_t epoch, const struct css_memb_set *members,
                      uint64_t now_us)
{
        struct css_memb_view me;

        if (epoch <= m->max_epoch)
                return -ESTALE;
        if (!members->n || !css_memb_set_has(members, m->self) || members->v[0] != from)
                return -EINVAL;
        css_memb_view(m, &me);
        if (!css_memb_set_sub(members, &me.reach))
                return -EAGAIN;
        if (me.reach.v[0] != from)
                return -EXDEV;          /* we follow a lower site (3) */
        m->accepted++;
        install(m, epoch, members, now_us);
        return 0;
}

void css_memb_proposal_result(struct css_memb *m, uint64_t id, uint64_t epoch, int err, uint64_t their_max)
{
        (void)id;
        (void)epoch;
        if (!err)
                return;
        m->refused++;
        if (their_max > m->max_epoch) {
                m->max_epoch = their_max;
                changed(m, false);
        }
}
