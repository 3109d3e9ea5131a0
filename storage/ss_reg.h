/*
 * ss_reg.h -- registration of the storage site with the current
 * synchronization site (CSS_REGISTER), from a helper thread.
 *
 * The thread connects to the CSS (host:port, or the port read from
 * css_port_file at every attempt), sends CSS_REGISTER {site, host, port,
 * text = JSON list of the file groups held}, and then polls the connection
 * with a NOP every poll interval.  When the connection breaks, or the CSS
 * refuses, it retries with exponential backoff (100 ms doubling to 5 s)
 * and registers again once connected.  ss_reg_set_fgs() makes it register
 * again at once with the new list.  Every wait is bounded (call timeout),
 * so ss_reg_stop() returns within about one timeout.
 *
 * Logging: the first failure of an outage at LOG_NOTICE, the following
 * ones at LOG_DEBUG; each successful registration at LOG_INFO.
 *
 * Ownership: the caller owns the options' strings only during
 * ss_reg_start() (they are copied); the struct ss_reg belongs to the
 * caller until ss_reg_stop() frees it.
 *
 * Threads: ss_reg_start/stop from one thread; ss_reg_set_fgs and
 * ss_reg_count from any thread.
 *
 * Errors: ss_reg_start: -ENOMEM, -EINVAL (no CSS given), pthread errors.
 */
#ifndef SS_REG_H
#define SS_REG_H

#include <stdint.h>

#include "lp_key.h"

struct ss_reg_opts {
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        const char *css_host;           /* NULL: 127.0.0.1 (with a port file) */
        uint16_t css_port;
        const char *css_port_file;      /* read at every attempt; NULL: css_port */
        const char *host;               /* what we tell the CSS: our address */
        uint16_t port;
        uint32_t poll_ms;               /* 0 = 1000 */
        uint32_t timeout_ms;            /* 0 = 2000 */
};

struct ss_reg;

int ss_reg_start(const struct ss_reg_opts *o, const char *fgs_json, struct ss_reg **ret);
void ss_reg_set_fgs(struct ss_reg *r, const char *fgs_json);
/* Successful registrations so far. */
uint64_t ss_reg_count(struct ss_reg *r);
void ss_reg_stop(struct ss_reg *r);

#endif
