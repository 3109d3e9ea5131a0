/*
 * css_memb.h -- the membership state machine of the cssds (docs/cluster.md,
 * "Membership"): which sites this site reaches, which it suspects, which
 * it has confirmed unreachable, and the partition it agreed on (an epoch
 * and its members).  Pure: no I/O, no clock of its own.  The caller
 * (css_membd.c, or a unit test) feeds it events with the time and carries
 * out what it asks for through callbacks.
 *
 * States of a peer, and the edges (function that takes them):
 *
 *       heard (css_memb_heard, a poll that worked)
 *   +---------------------------------------------+
 *   v                                             |
 *   UP --silent suspect_ms / link lost--> SUSPECT --poll failed, nobody
 *   ^            (css_memb_tick,           |        reaches it / 2nd round
 *   |             css_memb_lost)           |        failed--> DOWN
 *   +--------------- heard ----------------+     (css_memb_poll_result,
 *                                                  css_memb_tick)
 *   DOWN --heard (merge poll every suspect_ms, or its heartbeat)--> UP
 *
 * A site learned (css_memb_add) starts SUSPECT: it is polled before it is
 * either counted in or confirmed out.
 *
 * Invariants:
 *   (1) Suspicion is never confirmation: a peer becomes DOWN only after a
 *       direct poll on a fresh connection failed (poll_ms) and no other
 *       reachable peer said it reaches the peer (css_memb_probe_result); if
 *       one did, a second round is polled first.  One lost heartbeat or a
 *       slow reply (anything within suspect_ms) changes nothing.
 *   (2) max_epoch only grows; the caller persists it (on_changed) before
 *       it answers a proposal or sends its own (make durable before
 *       replying), so epochs only grow across restarts too.
 *   (3) reach = self + the peers UP or SUSPECT; a site follows the lowest
 *       site of its reach.  Only the lowest site of its reach proposes (the
 *       leader), only when no peer of its reach is SUSPECT and every one
 *       has told its view.  The partition it proposes is itself and, in id
 *       order, each peer that follows it and reaches (by the views) every
 *       site chosen before: with a clean cut, its whole reach.  It proposes
 *       when that partition differs from its members, or the view of a
 *       member that has heard of our epoch (its max_epoch is not below it)
 *       has another epoch or members: {max_epoch + 1, partition},
 *       installed at once.  A member accepts (css_memb_proposal) when the
 *       epoch is above its max_epoch, it is a member, the proposer is the
 *       lowest member and the lowest site of its own reach, and every
 *       member is in its reach.  A refused or lost proposal is proposed
 *       again (a higher epoch) at most every 2 * heartbeat_ms while the
 *       disagreement lasts.  Reachability that is not transitive (1-3 and
 *       2-3 up, 1-2 cut) gives {1,3} and {2}: 3 follows 1.
 *
 * Limits: CSS_MEMB_MAX sites (self included).
 *
 * Threads: one at a time (the cssd loop thread); callbacks are made from
 * inside the call that decides them and must not call back into the
 * machine (they queue work, e.g. network calls whose results come later).
 *
 * Errors: css_memb_add: -ENOSPC (CSS_MEMB_MAX), -EINVAL (site 0).
 * css_memb_proposal: -ESTALE (epoch not above max_epoch), -EINVAL (not a
 * member, or the proposer is not the lowest member), -EAGAIN (a member we
 * do not reach), -EXDEV (we reach a site lower than the proposer).
 */
#ifndef CSS_MEMB_H
#define CSS_MEMB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSS_MEMB_MAX 64u
#define CSS_MEMB_HEARTBEAT_MS 300u      /* a heartbeat to every peer this often */
#define CSS_MEMB_SUSPECT_MS 1500u       /* silent this long: suspected */
#define CSS_MEMB_POLL_MS 500u           /* a poll (or a probe) waits this long */

struct css_memb_cfg {
        uint32_t heartbeat_ms;          /* 0: the defaults above */
        uint32_t suspect_ms;
        uint32_t poll_ms;
};

/* A set of sites, sorted, unique. */
struct css_memb_set {
        unsigned n;
        uint64_t v[CSS_MEMB_MAX];
};

bool css_memb_set_has(const struct css_memb_set *s, uint64_t id);
/* Add id (keeps the order); false when full. */
bool css_memb_set_add(struct css_memb_set *s, uint64_t id);
bool css_memb_set_eq(const struct css_memb_set *a, const struct css_memb_set *b);
/* Every site of a is in b. */
bool css_memb_set_sub(const struct css_memb_set *a, const struct css_memb_set *b);

/* What a site tells of itself in its heartbeats. */
struct css_memb_view {
        uint64_t epoch;                 /* the partition it agreed on: 0 none yet */
        uint64_t max_epoch;             /* the highest epoch it has seen */
        struct css_memb_set members;    /* of that epoch */
        struct css_memb_set reach;      /* self + the peers it holds UP or SUSPECT */
};

enum css_memb_state {
        CSS_MEMB_UP,
        CSS_MEMB_SUSPECT,
        CSS_MEMB_DOWN,
};

struct css_memb_peer {
        uint64_t id;
        enum css_memb_state state;
        uint64_t heard_us;              /* last heard from (0: never) */
        uint64_t since_us;              /* entered its state */
        bool have_view;
        struct css_memb_view view;      /* its last heartbeat's view */
        /* a poll round (SUSPECT), or the merge poll (DOWN) */
        uint32_t gen;                   /* results of older rounds are ignored */
        unsigned round;                 /* 1 or 2 */
        bool poll_pending;
        bool poll_failed;
        unsigned probes_pending;
        unsigned probe_yes;
        uint64_t round_us;
        uint64_t polled_us;             /* the last merge poll (DOWN) */
};

struct css_memb_ops {
        /* Poll site directly: one call on a fresh connection, poll_ms;
         * answer with css_memb_poll_result(gen). */
        void (*poll)(void *arg, uint64_t site, uint32_t gen);
        /* Ask via whether it reaches site; css_memb_probe_result(gen). */
        void (*probe)(void *arg, uint64_t site, uint64_t via, uint32_t gen);
        /* site is confirmed DOWN: drop its links (a stale connection would
         * deliver nothing for long after the network came back). */
        void (*lost)(void *arg, uint64_t site);
        /* Send the proposal {epoch, members} to every member but us; each
         * answer goes to css_memb_proposal_result. */
        void (*propose)(void *arg, uint64_t epoch, const struct css_memb_set *members);
        /* The view changed (epoch, max_epoch, members, or a peer's state):
         * persist max_epoch (before anything is sent), log. */
        void (*changed)(void *arg, bool epoch_changed);
};

struct css_memb {
        uint64_t self;
        struct css_memb_cfg cfg;
        const struct css_memb_ops *ops;
        void *arg;
        uint64_t epoch, max_epoch;
        struct css_memb_set members;
        uint64_t epoch_us;              /* installed at */
        uint64_t proposed_us;           /* our last proposal (0: none) */
        uint64_t proposals, accepted, refused;
        unsigned npeers;
        struct css_memb_peer peers[CSS_MEMB_MAX];       /* sorted by id; self is not one */
};

/* Start with the epoch persisted (0: none); no peers yet. */
void css_memb_init(struct css_memb *m, uint64_t self, uint64_t max_epoch, const struct css_memb_cfg *cfg,
                   const struct css_memb_ops *ops, void *arg);
/* Learn site id (no-op if known or self). */
int css_memb_add(struct css_memb *m, uint64_t id, uint64_t now_us);
/* A heartbeat (asked or answered) came from id with its view (NULL: a
 * poll answered without one).  Unknown sites are added. */
void css_memb_heard(struct css_memb *m, uint64_t id, const struct css_memb_view *v, uint64_t now_us);
/* The link to id broke (connection reset, refused): suspect it now. */
void css_memb_lost(struct css_memb *m, uint64_t id, uint64_t now_us);
/* Timers: suspicion, poll rounds, merge polls of DOWN peers, proposals.
 * Call at least every heartbeat_ms / 3. */
void css_memb_tick(struct css_memb *m, uint64_t now_us);
void css_memb_poll_result(struct css_memb *m, uint64_t id, uint32_t gen, bool ok, uint64_t now_us);
void css_memb_probe_result(struct css_memb *m, uint64_t id, uint32_t gen, bool reached, uint64_t now_us);
/* A proposal from a peer: 0 accepted (installed: persist before the
 * answer), or an error above. */
int css_memb_proposal(struct css_memb *m, uint64_t from, uint64_t epoch, const struct css_memb_set *members,
                      uint64_t now_us);
/* The answer of a member to our proposal: 0 accepted; else its max_epoch
 * (their_max) teaches us a higher one. */
void css_memb_proposal_result(struct css_memb *m, uint64_t id, uint64_t epoch, int err, uint64_t their_max);

/* Our own view (what our heartbeats carry). */
void css_memb_view(const struct css_memb *m, struct css_memb_view *ret);
/* Does this site hold id UP now (heard within suspect_ms)?  The answer to a probe. */
bool css_memb_reaches(const struct css_memb *m, uint64_t id, uint64_t now_us);
const struct css_memb_peer *css_memb_peer(const struct css_memb *m, uint64_t id);
const char *css_memb_state_name(enum css_memb_state s);

#endif
