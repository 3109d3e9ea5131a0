/*
 * css.h -- the current synchronization site (CSS) of LocusFS: the server
 * behind locus-cssd, usable in-process (the unit tests run it on a loop
 * thread of their own).
 *
 * What it keeps:
 *   - the mount table (css_mtab.h), durable in STATE/mounttab.sqlite;
 *   - the site table (css_site.h): storage sites that registered, in memory;
 *   - the open table (css_otab.h): which client has which file open, and
 *     the orphans some client still holds;
 *   - the lease table (css_lease.h): mounts and their connections.
 * Clients and leases: a mount names a client id in the handshake
 * (lp_conn.h); its opens are keyed by it and survive its reconnections.
 * When it has had no connection for lease_ms they are released.  A peer
 * that names no client id is known by its connection: its opens go when
 * that connection closes.
 * Orphans: a file that lost its last name is freed by the CSS (it sends
 * FORGET_ORPHAN to the storage site holding it) when no client holds it
 * open any more: at once if nobody does (CSS_ORPHAN from the mount that
 * unlinked it), else at its last CSS_CLOSE or when the lease of its last
 * holder runs out.  A storage site with a write session open on it
 * refuses (EBUSY: a CREATE's open not recorded yet) and the CSS decides
 * again at its next tick.  A storage site keeps its orphans across its restarts;
 * when it registers, the CSS asks it for them (SS_ORPHANS) and decides
 * each the same way.  For one lease (at least CSS_RECLAIM_MIN_MS) after
 * the CSS starts (the reclaim window) nothing is freed: mounts that
 * outlived a CSS restart re-announce their opens (CSS_OPENED) once they
 * see its new boot id, a random number drawn at start and sent as `value`
 * in the answers to CSS_MOUNTTABLE, CSS_OPEN and CSS_OPENED.
 * What it answers (docs/protocol.md, "Operations: -> CSS"): CSS_REGISTER,
 * CSS_MOUNTTABLE, CSS_OPEN, CSS_CLOSE, CSS_OPENED, CSS_ORPHAN, CSS_STATUS,
 * CSS_FG_CREATE, CSS_FG_HOLDERS (css_holders.c), and NOP
 * (a keep-alive: answered 0, it counts as contact with the storage site
 * registered on that connection); every other operation is answered
 * -EOPNOTSUPP, a request that does not decode
 * -EBADMSG (the connection stays open: it is the frame that was wrong, not
 * the stream), a frame of another type with a Status{UNSUPPORTED}.
 *
 * Requests that need a storage site (CSS_OPEN asks GETATTR for the file's
 * version; CSS_FG_CREATE resolves the mount point with LOOKUP/MKDIR/READDIR
 * and creates the container with SS_FG_CREATE) run as blocking lp_client
 * calls on the libuv threadpool (css_ss.h), never on the loop thread; the
 * answer is sent from the loop thread when the work is done.  File group
 * creations run one at a time, in arrival order (CSS_MAX_FG_QUEUE waiting).
 * A storage site that cannot be reached gives -EHOSTUNREACH (on the wire:
 * LOCUS_UNAVAILABLE) with a message naming the site and the cause.
 *
 * Limits: CSS_MAX_JOBS requests waiting for storage sites in all,
 * CSS_MAX_CLIENT_JOBS per connection (-EAGAIN beyond); the limits of the
 * tables (css_mtab.h, css_site.h, css_otab.h).
 *
 * Threads: everything runs on the loop's thread; css_* must be called from
 * it.  The threadpool only runs css_ss calls on copies of what they need.
 *
 * Ownership and lifetime: the caller owns the loop.  css_close() starts
 * shutdown: it stops listening and closes every connection; the struct is
 * freed once the last connection has closed and the last storage-site call
 * has finished (each is bounded by its timeout), so run the loop until it
 * has nothing left.  Do not use the struct after css_close().
 *
 * Logging: through cm_log (it is the daemon's own logic): registrations,
 * file group creations and failures at info/notice/warning, each with the
 * site, the file (<fg,ino> or path) and the cause.
 *
 * Errors (negative errno): css_new: -ENOMEM, -EINVAL, the mount table's
 * (css_mtab.h) with the cause in err; css_listen: lp_server_listen's.
 */
#ifndef CSS_H
#define CSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lp_conn.h"

#define CSS_MAX_JOBS 1024u
#define CSS_MAX_CLIENT_JOBS 64u
/* Orphans being freed at storage sites at once; the rest wait in the
 * deferred list, so that freeing thousands of orphans (the end of the
 * reclaim window) never fills CSS_MAX_JOBS and turns opens away. */
#define CSS_MAX_FORGETS 32u
#define CSS_MAX_FG_QUEUE 16u
/* File group names: 1..CSS_FG_NAME_MAX of [A-Za-z0-9._-], not starting with '.' or '-'. */
#define CSS_FG_NAME_MAX 64u
/* A client (mount) with no connection this long loses its opens. */
#define CSS_LEASE_MS_DEFAULT 30000u
/* The reclaim window lasts max(lease, this): mounts fetch the mount table
 * (and so see a new boot id) every 5 s. */
#define CSS_RECLAIM_MIN_MS 10000u
/* Orphans asked of a storage site per file group at its registration. */
#define CSS_ORPHANS_FETCH 4096u

struct css;

struct css_config {
        const char *state_dir;          /* holds mounttab.sqlite; must exist */
        uint8_t key[LP_KEY_SIZE];       /* the cluster key (copied) */
        uint64_t site;                  /* our site id, > 0 */
        int ss_connect_ms;              /* 0: CSS_SS_CONNECT_MS */
        int ss_call_ms;                 /* 0: CSS_SS_CALL_MS */
        uint32_t lease_ms;              /* 0: CSS_LEASE_MS_DEFAULT */
};

int css_new(uv_loop_t *loop, const struct css_config *cfg, struct css **ret, char *err, size_t errcap);
/* Listen on host (numeric) and port (0: any); *ret_port gets the port. */
int css_listen(struct css *c, const char *host, uint16_t port, uint16_t *ret_port);
void css_close(struct css *c);
/* Serve the membership operations (LP_FS_CSS_HEARTBEAT .. CSS_MEMBERS,
 * css_membd.h) with d, owned by the caller (NULL: answered -EOPNOTSUPP). */
struct css_membd;
void css_set_membd(struct css *c, struct css_membd *d);

/*
 * Helpers, exposed for the tests.
 * css_path_normalize: an absolute path with "//" collapsed and a trailing
 * '/' dropped, each component 1..LP_FS_NAME_MAX bytes, no "." or "..";
 * -EINVAL, -ENAMETOOLONG.
 * css_fg_name_ok: see CSS_FG_NAME_MAX.
 * css_parse_fgs: the text of CSS_REGISTER: a JSON array of file group ids,
 * or of objects with a member "fg", or an object with such an array as
 * member "fgs" or "file_groups"; empty text is no file group.  Returns the
 * count, or -EBADMSG, -ENOSPC (over CSS_MAX_SITE_FGS), -ENOMEM; *ret is
 * malloc'ed (NULL for none).
 */
int css_path_normalize(const char *in, char *out, size_t cap);
bool css_fg_name_ok(const char *name);
int css_parse_fgs(const char *text, uint32_t **ret);

#endif
