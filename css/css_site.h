/*
 * css_site.h -- the site table of a CSS: the storage sites that registered
 * (CSS_REGISTER), where they listen, which file groups they hold a
 * container of, and when we last heard from them.  Kept in memory only: a
 * storage site registers again whenever its connection to the CSS is
 * re-established, so a restarted CSS relearns the table within one
 * reconnection period.
 *
 * Keyed by site id (several storage sites per cluster); at most
 * CSS_MAX_SITES sites and CSS_MAX_SITE_FGS file groups per site.
 *
 * A site that could not be reached (css_sites_failed) is held off for
 * CSS_SITE_HOLDOFF_MS: requests for it fail at once instead of each waiting
 * for its own connection timeout, unless the site has been heard from since
 * (a registration, a keep-alive, a call that worked).
 *
 * Choosing a storage site for a file group (css_sites_holder): among the
 * sites holding it, one whose registering connection is still up, then
 * the one heard from most recently, then the lowest site id.  (With
 * replication this becomes "the site with the newest copy by version
 * vector"; one site holds each file group today.)
 *
 * Ownership and lifetime: the table owns its entries; a struct css_site
 * pointer is valid until the next css_sites_register() or css_sites_free()
 * (registering may move entries).
 *
 * Threads: one thread at a time (the CSS loop thread).
 *
 * Errors: -ENOMEM; -ENOSPC (over a limit); -EINVAL (site 0, port 0, empty
 * or overlong host).
 */
#ifndef CSS_SITE_H
#define CSS_SITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSS_MAX_SITES 1024u
#define CSS_MAX_SITE_FGS 4096u
#define CSS_HOST_MAX 64u
#define CSS_SITE_HOLDOFF_MS 1000u

struct css_site {
        uint64_t id;
        char host[CSS_HOST_MAX];        /* numeric address it serves on */
        uint16_t port;
        uint32_t *fgs;                  /* sorted, unique */
        size_t nfgs;
        uint64_t first_us;              /* first registration (monotonic) */
        uint64_t registered_us;         /* latest registration */
        uint64_t contact_us;            /* latest contact: registration or a call that worked */
        uint64_t fail_us;               /* latest failure to reach it, 0 if none */
        uint64_t nregister;             /* how many times it registered */
        uint64_t conn;                  /* serial of the registering connection, 0 once it closed */
};

struct css_sites;

int css_sites_new(struct css_sites **ret);
void css_sites_free(struct css_sites *t);

/*
 * Add or replace site id: address, file groups (any order, duplicates
 * allowed), the connection it registered on.  Replacing keeps first_us and
 * counts nregister.
 */
int css_sites_register(struct css_sites *t, uint64_t id, const char *host, uint16_t port,
                       const uint32_t *fgs, size_t nfgs, uint64_t conn, uint64_t now_us);
/* The site may now hold fg too (after SS_FG_CREATE). */
int css_sites_add_fg(struct css_sites *t, uint64_t id, uint32_t fg);
/* A call to the site worked. */
void css_sites_touch(struct css_sites *t, uint64_t id, uint64_t now_us);
/* A call to the site failed: it could not be reached. */
void css_sites_failed(struct css_sites *t, uint64_t id, uint64_t now_us);
/* Is s held off (failed, not heard from since, within CSS_SITE_HOLDOFF_MS)? */
bool css_site_held_off(const struct css_site *s, uint64_t now_us);
/* Something arrived on connection conn: sites that registered on it are alive. */
void css_sites_touch_conn(struct css_sites *t, uint64_t conn, uint64_t now_us);
/* Connection conn closed: sites that registered on it are no longer connected. */
void css_sites_conn_closed(struct css_sites *t, uint64_t conn);

size_t css_sites_count(const struct css_sites *t);
/* In site id order; i < count. */
const struct css_site *css_sites_at(const struct css_sites *t, size_t i);
const struct css_site *css_sites_get(const struct css_sites *t, uint64_t id);
bool css_site_holds(const struct css_site *s, uint32_t fg);
/* The site to use for fg (see above), or NULL when no registered site holds it. */
const struct css_site *css_sites_holder(const struct css_sites *t, uint32_t fg);
/*
 * The primary of fg (docs/replication.md, "Placement and the primary
 * copy"): the lowest-id site among holders (all sites holding fg when n
 * is 0) that registered holding fg and whose registering connection is
 * up; if none is up, the holder heard from last (css_sites_holder()'s
 * choice when n is 0), so that a storage site that reconnects slowly is
 * still tried.
 * NULL when no registered site holds fg.
 */
const struct css_site *css_sites_primary(const struct css_sites *t, uint32_t fg, const uint64_t *holders,
                                         size_t n);

#endif
