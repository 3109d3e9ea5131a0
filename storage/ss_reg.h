/*
 * ss_reg.h -- registration of the storage site with the current
 * synchronization site (CSS_REGISTER), on the daemon's loop.
 *
 * An lp_peer link (proto/lp_peer.h) to the CSS (host:port, or the port read
 * from css_port_file, again every poll interval while the link is down, so
 * a CSS restarted on another port is found).  Each time the link comes up
 * it sends CSS_REGISTER {site, host, port, text = JSON list of the file
 * groups held}; while registered it sends a NOP every poll interval, and a
 * second NOP in a row with no answer within the call timeout breaks the link
 * (a CSS cut off by the network, which TCP alone would notice only after
 * minutes).  The link comes back by itself (lp_peer's backoff, 100 ms
 * doubling to 5 s) and registers again.  A refusal of the CSS is retried
 * every poll interval.  ss_reg_set_fgs() registers again at once with the
 * new list.
 *
 * Pushes: the CSS tells registered sites when the mount table, or who
 * serves a file group, changed (LP_FS_CSS_NOTE_MTAB); on_note is called
 * for each, so the replicator reads the table at once (ss_pull_kick).
 *
 * Commit notes (docs/coherence.md): ss_reg_commit() queues the changes of
 * each live commit (ss_note.h); the queue goes to the CSS as one
 * LP_FS_SS_NOTE_COMMIT frame per loop turn (a uv_check handle) while
 * registered, and waits (bounded: it collapses into group notes) while
 * not; a batch the link refused comes back as group notes.  Each
 * successful registration first sends one group note for every file
 * group held (fg 0): a CSS that lost our notes, or a new CSS, passes "all
 * may have changed" to the mounts.
 *
 * Logging: the first failure of an outage at LOG_NOTICE (one per outage),
 * each successful registration at LOG_INFO.
 *
 * Ownership: the options' strings are copied.  ss_reg_stop() closes the
 * link; the struct is freed once its handles have closed (the loop must
 * run on until then).
 *
 * Threads: the loop's thread only (every function and callback).
 *
 * Errors: ss_reg_start: -ENOMEM, -EINVAL (no CSS given; a host that is not
 * a numeric address).
 */
#ifndef SS_REG_H
#define SS_REG_H

#include <stdint.h>

#include <uv.h>

#include "lp_key.h"
#include "ss_ct.h"

struct ss_reg_opts {
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        const char *css_host;           /* NULL: 127.0.0.1 (with a port file) */
        uint16_t css_port;
        const char *css_port_file;      /* read while the link is down; NULL: css_port */
        const char *host;               /* what we tell the CSS: our address */
        uint16_t port;
        uint32_t poll_ms;               /* 0 = 1000 */
        uint32_t timeout_ms;            /* 0 = 2000 */
        void (*on_note)(void *ctx);     /* the CSS said the mount table changed; may be NULL */
        void *ctx;
};

struct ss_reg;

int ss_reg_start(uv_loop_t *loop, const struct ss_reg_opts *o, const char *fgs_json, struct ss_reg **ret);
void ss_reg_set_fgs(struct ss_reg *r, const char *fgs_json);
/* Successful registrations so far. */
uint64_t ss_reg_count(const struct ss_reg *r);
/* Mount table notes received from the CSS. */
uint64_t ss_reg_notes(const struct ss_reg *r);
/* The changes of one live commit of fg, made for client (0: none). */
void ss_reg_commit(struct ss_reg *r, uint32_t fg, uint64_t client, const struct ss_ct_change *ch, size_t n);
/* Commit notes sent to the CSS so far (batches, notes). */
void ss_reg_commit_stats(const struct ss_reg *r, uint64_t *ret_batches, uint64_t *ret_notes);
void ss_reg_stop(struct ss_reg *r);

#endif
