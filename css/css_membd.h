/*
 * css_membd.h -- the membership service of a locus-cssd (docs/cluster.md,
 * "Membership"): heartbeats to the cssd of every known site over lp_peer
 * links on the cssd's libuv loop, polls and probes of suspected sites, the
 * epoch proposals of css_memb.h, the site table of cssds learned from a
 * seed (the cluster's CSS) and by gossip, and their persistence in
 * STATE/members.json.  The decisions are css_memb.c's (pure); this module
 * does the I/O around them.
 *
 * Wire (proto/lp_fs.h, ops 90-93): CSS_HEARTBEAT carries the sender's
 * address (site, host, port) and its view as JSON text
 * {"epoch","max","members","reach","sites":[[id,host,port],...]}; the
 * answer carries the answerer's view the same way.  A heartbeat asked or
 * answered is contact.  CSS_PROBE (site) answers whether we hold that site
 * UP; CSS_EPOCH (site = proposer, text {"epoch","members"}) is a proposal;
 * CSS_MEMBERS answers this site's view for locusctl.
 *
 * A poll is a CSS_HEARTBEAT on a connection of its own, opened for it and
 * closed after (never queued behind a stale connection's retransmissions),
 * bounded by poll_ms; polls of several sites run at once.
 *
 * Persistence: STATE/members.json {"max_epoch", "sites":[{site,host,port}]}
 * is written (temporary file, fsync, rename, fsync of the directory) when
 * the max epoch grows or a site is learned, before the proposal or answer
 * that depends on it is sent.  A cssd started alone knows its peers from
 * it after it reached any peer once.
 *
 * Threads: the loop thread only.  Ownership: the caller owns the loop;
 * css_membd_close() closes every handle and link, the struct is freed once
 * they closed (run the loop).  css_membd_serve() answers synchronously:
 * *ret_text (malloc'ed, may be NULL) is the caller's to free after replying.
 * Errors: css_membd_new: -ENOMEM, -EINVAL (bad address), -EIO (members.json
 * does not parse: err says so), -errno of reading it.
 */
#ifndef CSS_MEMBD_H
#define CSS_MEMBD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "css_memb.h"
#include "lp_fs.h"
#include "lp_key.h"

#define CSS_MEMBD_FILE "members.json"

struct css_membd;

struct css_membd_config {
        const char *state_dir;
        uint8_t key[LP_KEY_SIZE];
        uint64_t site;
        const char *host;               /* where this cssd listens (what peers dial) */
        uint16_t port;
        const char *seed_host;          /* a cssd to reach first (the cluster's CSS); NULL: none */
        uint16_t seed_port;
        struct css_memb_cfg memb;       /* zeros: defaults */
};

int css_membd_new(uv_loop_t *loop, const struct css_membd_config *cfg, struct css_membd **ret, char *err,
                  size_t errcap);
/* Serve ops 90..93 from site `from` (the site its connection proved):
 * fills *resp (status, value, text = *ret_text). */
void css_membd_serve(struct css_membd *d, uint64_t from, const struct lp_fs_req *rq, struct lp_fs_resp *resp,
                     char **ret_text);
void css_membd_close(struct css_membd *d);

#endif
