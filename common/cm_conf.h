/*
 * cm_conf.h -- a site's configuration file (docs/cluster.md,
 * "Configuration file"): what locus-storaged and locus-cssd need to start
 * with no option, e.g. /etc/locusfs/site.conf:
 *
 *   [site]
 *   id = 2                          ; this site's id, 1..65535
 *   address = 192.0.2.12            ; every socket of the site binds to it
 *   key = /etc/locusfs/cluster.key
 *   [css]
 *   address = 192.0.2.11:7700       ; the cluster's CSS (HOST:PORT)
 *   state = /var/lib/locusfs/css    ; locus-cssd's state directory
 *   port = 7700                     ; where this site's locus-cssd listens
 *   lease_ms = 30000
 *   heartbeat_ms = 300              ; membership: heartbeats, suspicion, polls
 *   suspect_ms = 1500
 *   poll_ms = 500
 *   [storage]
 *   data = /var/lib/locusfs/data
 *   port = 7701
 *   lease_ms = 30000
 *
 * Parsed with inih (a small, well-kept INI parser: ';' and '#' comments,
 * "key = value" or "key: value", sections).  Every key is optional; a key
 * or section this version does not know is an error (a typo must not be
 * silently ignored), and so is a value that does not parse.  The command
 * line of each daemon overrides what the file says.
 *
 * Ownership: the struct holds everything by value.  Threads: any (no
 * state).  Errors: -ENOENT / -EACCES ... (the file cannot be opened),
 * -EINVAL (its content: err says which line and why).
 */
#ifndef CM_CONF_H
#define CM_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CM_CONF_DEFAULT "/etc/locusfs/site.conf"
#define CM_CONF_HOST_MAX 64

struct cm_conf {
        uint64_t site;                          /* 0: not set */
        char address[CM_CONF_HOST_MAX];         /* "": not set */
        char key[PATH_MAX];
        char css_host[CM_CONF_HOST_MAX];        /* [css] address, split */
        uint16_t css_port;
        char css_state[PATH_MAX];
        uint16_t css_listen_port;               /* [css] port; 0: any */
        uint32_t css_lease_ms;                  /* 0: not set */
        uint32_t css_heartbeat_ms;              /* [css] membership (docs/cluster.md); 0: not set */
        uint32_t css_suspect_ms;
        uint32_t css_poll_ms;
        char data[PATH_MAX];
        uint16_t storage_port;                  /* [storage] port; 0: any */
        uint32_t storage_lease_ms;
};

/* The file a daemon reads: the value of --config FILE (or --config=FILE)
 * in argv, else CM_CONF_DEFAULT when there is no option at all, else NULL. */
const char *cm_conf_arg(int argc, char **argv);

/* Read path into *ret (zeroed first). */
int cm_conf_load(const char *path, struct cm_conf *ret, char *err, size_t cap);

#endif
