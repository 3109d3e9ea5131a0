/*
 * check_memb.c -- css/css_memb.c, the membership state machine, driven
 * by a simulated network of N sites on a simulated clock: heartbeats,
 * polls, probes and proposals are delivered after a latency when the link
 * between the two sites is up, lost when it is cut.  Checks: agreement on
 * {epoch, members} when all reach all; one lost heartbeat and slow replies
 * change nothing; a partition gives each side its own members and a new
 * epoch, the heal one partition with a higher epoch; a site that another
 * still reaches is polled a second time before it is confirmed down;
 * flapping faster than the suspicion changes nothing, slower flapping only
 * ever raises the epoch; epochs persisted across a restart only grow; the
 * acceptance rules of a proposal; an answer that crossed a proposal does
 * not make the leader propose again.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "css_memb.h"
#include "testutil.h"

#define N 4                             /* sites 1..N-1 used; index = site id */
#define MSG_MAX 4096

enum msg_kind { M_HB, M_POLL, M_PROBE, M_PROPOSE };

struct msg {
        enum msg_kind kind;
        uint64_t at;                    /* delivery time */
        unsigned from, to;              /* the asker, the asked (site ids) */
        unsigned about;                 /* poll / probe: the site polled */
        uint32_t gen;
        uint64_t epoch;
        struct css_memb_set members;
};

static struct sim {
        unsigned n;                     /* sites 1..n */
        struct css_memb m[N];
        bool cut[N][N];                 /* symmetric unless a test sets one way */
        unsigned drop_hb[N][N];         /* heartbeats from i to j to lose, one each */
        uint64_t latency_us;            /* of every message and its answer */
        uint64_t poll_latency_us;
        uint64_t now;
        struct msg q[MSG_MAX];
        unsigned nq;
        uint64_t next_hb;
        unsigned polls[N][N];           /* polls of j by i */
        uint64_t persisted[N];          /* max_epoch as changed() saw it */
        uint64_t epochs_seen[N][64];    /* each site's epochs, in order */
        unsigned nepochs[N];
        bool epoch_went_down;
} S;

static void push(struct msg m)
{
        ck_assert_uint_lt(S.nq, MSG_MAX);
        S.q[S.nq++] = m;
}

static unsigned idx(void *arg)
{
        return (unsigned)(uintptr_t)arg;
}

static void op_poll(void *arg, uint64_t site, uint32_t gen)
{
        unsigned i = idx(arg);

        S.polls[i][site]++;
        push((struct msg){ .kind = M_POLL, .at = S.now + S.poll_latency_us, .from = i, .to = (unsigned)site,
                           .about = (unsigned)site, .gen = gen });
}

static void op_probe(void *arg, uint64_t site, uint64_t via, uint32_t gen)
{
        push((struct msg){ .kind = M_PROBE, .at = S.now + S.latency_us, .from = idx(arg), .to = (unsigned)via,
                           .about = (unsigned)site, .gen = gen });
}

static void op_lost(void *arg, uint64_t site)
{
        (void)arg;
        (void)site;
}

static void op_propose(void *arg, uint64_t epoch, const struct css_memb_set *members)
{
        for (unsigned k = 0; k < members->n; k++)
                if (members->v[k] != idx(arg))
                        push((struct msg){ .kind = M_PROPOSE, .at = S.now + S.latency_us, .from = idx(arg),
                                           .to = (unsigned)members->v[k], .epoch = epoch, .members = *members });
}

static void op_changed(void *arg, bool epoch_changed)
{
        unsigned i = idx(arg);
        struct css_memb *m = &S.m[i];

        ck_assert_uint_ge(m->max_epoch, S.persisted[i]);       /* invariant (2) */
        S.persisted[i] = m->max_epoch;
        if (epoch_changed) {
                if (S.nepochs[i] && m->epoch <= S.epochs_seen[i][S.nepochs[i] - 1])
                        S.epoch_went_down = true;
                if (S.nepochs[i] < 64)
                        S.epochs_seen[i][S.nepochs[i]++] = m->epoch;
        }
}

static const struct css_memb_ops ops = {
        .poll = op_poll, .probe = op_probe, .lost = op_lost, .propose = op_propose, .changed = op_changed,
};

static const struct css_memb_cfg cfg = { .heartbeat_ms = 300, .suspect_ms = 1000, .poll_ms = 500 };

static void sim_start_site(unsigned i, uint64_t max_epoch)
{
        css_memb_init(&S.m[i], i, max_epoch, &cfg, &ops, (void *)(uintptr_t)i);
        S.persisted[i] = max_epoch;
        for (unsigned j = 1; j <= S.n; j++)
                if (j != i)
                        ck_assert_int_eq(css_memb_add(&S.m[i], j, S.now), 0);
}

static void sim_init(unsigned n)
{
        memset(&S, 0, sizeof(S));
        S.n = n;
        S.latency_us = 2000;
        S.poll_latency_us = 2000;
        S.now = 1000000;
        for (unsigned i = 1; i <= n; i++)
                sim_start_site(i, 0);
}

static bool up(unsigned i, unsigned j)
{
        return !S.cut[i][j] && !S.cut[j][i];
}

static void cut(const unsigned *a, size_t na, const unsigned *b, size_t nb, bool on)
{
        for (size_t x = 0; x < na; x++)
                for (size_t y = 0; y < nb; y++)
                        S.cut[a[x]][b[y]] = S.cut[b[y]][a[x]] = on;
}

static void deliver(struct msg *g)
{
        struct css_memb_view v;
        unsigned i = g->from, j = g->to;

        switch (g->kind) {
        case M_HB:
                /* j hears i; i hears j's answer (the same latency again, kept simple) */
                if (!up(i, j))
                        return;
                css_memb_view(&S.m[i], &v);
                css_memb_heard(&S.m[j], i, &v, S.now);
                css_memb_view(&S.m[j], &v);
                css_memb_heard(&S.m[i], j, &v, S.now);
                break;
        case M_POLL:
                if (up(i, j)) {
                        css_memb_view(&S.m[j], &v);
                        css_memb_heard(&S.m[i], j, &v, S.now);
                        css_memb_poll_result(&S.m[i], j, g->gen, true, S.now);
                } else {
                        css_memb_poll_result(&S.m[i], j, g->gen, false, S.now);
                }
                break;
        case M_PROBE:
                if (up(i, j))           /* else never answered: the tick times it out */
                        css_memb_probe_result(&S.m[i], g->about, g->gen,
                                              css_memb_reaches(&S.m[j], g->about, S.now), S.now);
                break;
        case M_PROPOSE:
                if (up(i, j)) {
                        int r = css_memb_proposal(&S.m[j], i, g->epoch, &g->members, S.now);

                        css_memb_proposal_result(&S.m[i], j, g->epoch, r, S.m[j].max_epoch);
                }
                break;
        }
}

/* Run the simulation for ms milliseconds in steps of 10 ms. */
static void run(unsigned ms)
{
        uint64_t end = S.now + ms * 1000ull;

        while (S.now < end) {
                S.now += 10000;
                if (S.now >= S.next_hb) {
                        S.next_hb = S.now + cfg.heartbeat_ms * 1000ull;
                        for (unsigned i = 1; i <= S.n; i++)
                                for (unsigned j = 1; j <= S.n; j++) {
                                        if (i == j)
                                                continue;
                                        if (S.drop_hb[i][j]) {
                                                S.drop_hb[i][j]--;
                                                continue;
                                        }
                                        push((struct msg){ .kind = M_HB, .at = S.now + S.latency_us, .from = i,
                                                           .to = j });
                                }
                }
                /* deliver what is due, in order; deliveries may queue more */
                for (unsigned k = 0; k < S.nq;) {
                        if (S.q[k].at <= S.now) {
                                struct msg g = S.q[k];

                                S.q[k] = S.q[--S.nq];
                                deliver(&g);
                                k = 0;
                                continue;
                        }
                        k++;
                }
                for (unsigned i = 1; i <= S.n; i++)
                        css_memb_tick(&S.m[i], S.now);
        }
}

static struct css_memb_set set_of(const unsigned *v, size_t n)
{
        struct css_memb_set s = { 0 };

        for (size_t k = 0; k < n; k++)
                css_memb_set_add(&s, v[k]);
        return s;
}

/* Sites a[] agree: the same epoch, members = a[]. */
static uint64_t agreed(const unsigned *a, size_t n)
{
        struct css_memb_set want = set_of(a, n);
        uint64_t e = S.m[a[0]].epoch;

        for (size_t k = 0; k < n; k++) {
                ck_assert_msg(css_memb_set_eq(&S.m[a[k]].members, &want), "site %u: members differ", a[k]);
                ck_assert_uint_eq(S.m[a[k]].epoch, e);
        }
        ck_assert_uint_gt(e, 0);
        return e;
}

static const unsigned ALL[] = { 1, 2, 3 }, A12[] = { 1, 2 }, A3[] = { 3 }, A13[] = { 1, 3 }, A2[] = { 2 };

START_TEST(t_form)
{
        sim_init(3);
        run(2000);
        agreed(ALL, 3);
        for (unsigned i = 1; i <= 3; i++)
                for (unsigned j = 1; j <= 3; j++)
                        if (i != j)
                                ck_assert_int_eq(css_memb_peer(&S.m[i], j)->state, CSS_MEMB_UP);
        ck_assert(!S.epoch_went_down);
}
END_TEST

START_TEST(t_lost_heartbeat)
{
        uint64_t e;
        uint64_t props;

        sim_init(3);
        run(2000);
        e = agreed(ALL, 3);
        props = S.m[1].proposals;
        memset(S.polls, 0, sizeof(S.polls));    /* the first polls of a new site are done */
        /* one heartbeat lost each way between 1 and 3, and one between 2 and 3 */
        S.drop_hb[1][3] = S.drop_hb[3][1] = S.drop_hb[2][3] = 1;
        run(3000);
        ck_assert_uint_eq(agreed(ALL, 3), e);
        ck_assert_uint_eq(S.m[1].proposals, props);
        ck_assert_uint_eq(S.polls[1][3] + S.polls[3][1], 0);    /* not even suspected */
}
END_TEST

START_TEST(t_slow_replies)
{
        uint64_t e;

        sim_init(3);
        run(2000);
        e = agreed(ALL, 3);
        /* every message and answer takes 700 ms: slow, but within suspect_ms */
        S.latency_us = 700000;
        run(5000);
        S.latency_us = 2000;
        run(1000);
        ck_assert_uint_eq(agreed(ALL, 3), e);
}
END_TEST

START_TEST(t_slow_poll)
{
        uint64_t e;

        sim_init(3);
        run(2000);
        e = agreed(ALL, 3);
        /* site 3 is silent a little longer than the suspicion, and the poll
         * answer comes late (within poll_ms) after the link is back */
        S.poll_latency_us = 400000;
        cut(A12, 2, A3, 1, true);
        run(1150);
        for (unsigned i = 1; i <= 2; i++)
                ck_assert_int_eq(css_memb_peer(&S.m[i], 3)->state, CSS_MEMB_SUSPECT);
        cut(A12, 2, A3, 1, false);
        run(2000);
        ck_assert_uint_eq(agreed(ALL, 3), e);
        ck_assert_uint_gt(S.polls[1][3], 0);
}
END_TEST

START_TEST(t_partition_heal)
{
        uint64_t e0, e12, e3, e;

        sim_init(3);
        run(2000);
        e0 = agreed(ALL, 3);
        cut(A12, 2, A3, 1, true);
        run(800);
        ck_assert_uint_eq(agreed(ALL, 3), e0);  /* not yet: within suspect_ms */
        run(2500);
        e12 = agreed(A12, 2);
        e3 = agreed(A3, 1);
        ck_assert_uint_gt(e12, e0);
        ck_assert_uint_gt(e3, e0);
        ck_assert_int_eq(css_memb_peer(&S.m[3], 1)->state, CSS_MEMB_DOWN);
        ck_assert_int_eq(css_memb_peer(&S.m[1], 3)->state, CSS_MEMB_DOWN);
        cut(A12, 2, A3, 1, false);
        run(3000);
        e = agreed(ALL, 3);
        ck_assert_uint_gt(e, e12);
        ck_assert_uint_gt(e, e3);
        ck_assert(!S.epoch_went_down);
}
END_TEST

START_TEST(t_indirect)
{
        const struct css_memb_peer *p;
        uint64_t t0;

        sim_init(3);
        run(2000);
        agreed(ALL, 3);
        memset(S.polls, 0, sizeof(S.polls));
        /* 1 loses 3, but 2 still reaches it: a second round before DOWN */
        S.cut[1][3] = S.cut[3][1] = true;
        t0 = S.now;
        while (css_memb_peer(&S.m[1], 3)->state != CSS_MEMB_DOWN && S.now < t0 + 10000000)
                run(10);
        p = css_memb_peer(&S.m[1], 3);
        ck_assert_int_eq(p->state, CSS_MEMB_DOWN);
        ck_assert_uint_eq(p->round, 2);
        ck_assert_uint_eq(S.polls[1][3], 2);
        /* 1 proposes {1,2} (2 reaches both: it accepts) */
        run(2000);
        agreed(A12, 2);
}
END_TEST

START_TEST(t_flap)
{
        uint64_t e;

        sim_init(3);
        run(2000);
        e = agreed(ALL, 3);
        /* fast flapping (400 ms cut, 400 ms up): heartbeats get through
         * within every suspect_ms: nothing changes */
        for (int k = 0; k < 8; k++) {
                cut(A12, 2, A3, 1, true);
                run(400);
                cut(A12, 2, A3, 1, false);
                run(400);
        }
        run(1000);
        ck_assert_uint_eq(agreed(ALL, 3), e);
        /* slow flapping (3 s each way): epochs change, only upwards, and
         * the end is one partition again */
        for (int k = 0; k < 4; k++) {
                cut(A12, 2, A3, 1, true);
                run(3000);
                cut(A12, 2, A3, 1, false);
                run(3000);
        }
        ck_assert_uint_gt(agreed(ALL, 3), e);
        ck_assert(!S.epoch_went_down);
}
END_TEST

START_TEST(t_crossed_answer)
{
        struct css_memb_view stale;
        uint64_t e, props;

        sim_init(3);
        run(2000);
        agreed(ALL, 3);
        cut(A12, 2, A3, 1, true);
        run(4000);
        agreed(A12, 2);
        agreed(A3, 1);
        cut(A12, 2, A3, 1, false);
        props = S.m[1].proposals;
        /* until site 1 proposes the merge */
        do
                run(10);
        while (S.m[1].proposals == props && S.now < 60000000);
        ck_assert_uint_eq(S.m[1].proposals, props + 1);
        /* the view of site 3 it decided on: what an answer sent before
         * site 3 had the proposal says */
        stale = css_memb_peer(&S.m[1], 3)->view;
        e = S.m[1].epoch;
        /* an answer of site 3 sent before it had the proposal arrives
         * late, just before site 1 may propose again */
        while (S.now + 10000 < S.m[1].proposed_us + 2 * cfg.heartbeat_ms * 1000ull)
                run(10);
        S.now = S.m[1].proposed_us + 2 * cfg.heartbeat_ms * 1000ull;
        css_memb_heard(&S.m[1], 3, &stale, S.now);
        css_memb_tick(&S.m[1], S.now);
        ck_assert_uint_eq(S.m[1].proposals, props + 1);
        run(3000);
        ck_assert_uint_eq(agreed(ALL, 3), e);
        ck_assert_uint_eq(S.m[1].proposals, props + 1);        /* not proposed again */
}
END_TEST

START_TEST(t_not_transitive)
{
        uint64_t e13, e2;

        sim_init(3);
        run(2000);
        agreed(ALL, 3);
        /* 1-3 and 2-3 up, 1-2 cut: 3 follows 1; 2 is a partition of its own */
        S.cut[1][2] = S.cut[2][1] = true;
        run(4000);
        e13 = agreed(A13, 2);
        e2 = agreed(A2, 1);
        /* and it stays so: no proposal war over site 3 */
        run(5000);
        ck_assert_uint_eq(agreed(A13, 2), e13);
        ck_assert_uint_eq(agreed(A2, 1), e2);
}
END_TEST

START_TEST(t_kill_restart)
{
        uint64_t e0, e13, e, persisted2;

        sim_init(3);
        run(2000);
        e0 = agreed(ALL, 3);
        /* site 2 dies: its links break (lost), it answers nothing */
        cut(A2, 1, A13, 2, true);
        css_memb_lost(&S.m[1], 2, S.now);
        css_memb_lost(&S.m[3], 2, S.now);
        run(1500);
        e13 = agreed(A13, 2);
        ck_assert_uint_gt(e13, e0);
        /* it restarts with what it persisted */
        persisted2 = S.persisted[2];
        ck_assert_uint_ge(persisted2, e0);
        sim_start_site(2, persisted2);
        cut(A2, 1, A13, 2, false);
        run(3000);
        e = agreed(ALL, 3);
        ck_assert_uint_gt(e, e13);
        ck_assert_uint_gt(e, persisted2);
}
END_TEST

START_TEST(t_proposal_rules)
{
        struct css_memb_set s12 = set_of(A12, 2), s13 = set_of(A13, 2), s23 = { 0 };
        uint64_t e;

        sim_init(3);
        run(2000);
        e = agreed(ALL, 3);
        css_memb_set_add(&s23, 2);
        css_memb_set_add(&s23, 3);
        /* not above max_epoch */
        ck_assert_int_eq(css_memb_proposal(&S.m[2], 1, e, &s12, S.now), -ESTALE);
        /* not a member */
        ck_assert_int_eq(css_memb_proposal(&S.m[2], 1, e + 5, &s13, S.now), -EINVAL);
        /* the proposer is not the lowest member */
        ck_assert_int_eq(css_memb_proposal(&S.m[3], 3, e + 5, &s23, S.now), -EINVAL);
        /* a member we do not reach */
        S.cut[2][1] = S.cut[1][2] = true;
        run(3000);
        ck_assert_int_eq(css_memb_peer(&S.m[3], 1)->state, CSS_MEMB_UP);
        ck_assert_int_eq(css_memb_proposal(&S.m[2], 1, S.m[2].max_epoch + 1, &s12, S.now), -EAGAIN);
        /* 3 reaches 1, lower than the proposer 2: it follows 1 */
        ck_assert_int_eq(css_memb_proposal(&S.m[3], 2, S.m[3].max_epoch + 1, &s23, S.now), -EXDEV);
        /* accepted: installed, max_epoch persisted first */
        ck_assert_int_eq(css_memb_proposal(&S.m[3], 1, S.m[3].max_epoch + 7, &s13, S.now), 0);
        ck_assert_uint_eq(S.persisted[3], S.m[3].epoch);
        ck_assert(css_memb_set_eq(&S.m[3].members, &s13));
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("memb");
        TCase *tc = tcase_create("memb");

        tcase_add_test(tc, t_form);
        tcase_add_test(tc, t_lost_heartbeat);
        tcase_add_test(tc, t_slow_replies);
        tcase_add_test(tc, t_slow_poll);
        tcase_add_test(tc, t_partition_heal);
        tcase_add_test(tc, t_indirect);
        tcase_add_test(tc, t_flap);
        tcase_add_test(tc, t_crossed_answer);
        tcase_add_test(tc, t_not_transitive);
        tcase_add_test(tc, t_kill_restart);
        tcase_add_test(tc, t_proposal_rules);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
