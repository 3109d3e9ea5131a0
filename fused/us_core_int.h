/*
 * us_core_int.h -- internal to fused/: the structs of the using site's core
 * (us_core.h is its interface) and the helpers its pieces share.  Only the
 * pieces include it:
 *   us_core.c   the core object: nodes and lookup counts, where requests go
 *               and how they are sent, the mount table, life cycle and the
 *               keeper thread;
 *   us_sess.c   write-session lifetime (its state diagram is there);
 *   us_file.c   open handles: attributes, open, create, release, data;
 *   us_names.c  names and directories: lookup, making and removing names
 *               (orphans), readdir, statfs;
 *   us_xattr.c  extended attributes and the security.capability cache.
 *
 * Invariants (core->mu protects every field named here):
 *   (1) a node is in the hash table while any of nlookup, refs, nopen,
 *       sess, committing, opening is non-zero, and is freed as soon as all
 *       are zero (node_maybe_free);
 *   (2) node->sess, when set, is a session that is neither lost (err == 0)
 *       nor ending, and is the only such session of that node: a session
 *       the storage site opens for a node that has one already is aborted
 *       and the handle joins the live one (us__sess_attach), never replaces it;
 *   (3) a session is in core->sessions and holds one node ref from
 *       sess_new() until it is freed.  Its lifetime is one count, refs: one
 *       for node->sess while attached, one per writable handle (fh->sess),
 *       one per request in flight (busy), and the last release's own while
 *       its END commit is in flight (it inherits the handle's).  Every one
 *       is dropped exactly once, by us__sess_put(), the only place that frees;
 *       so refs reaches zero once, and nothing touches the session after
 *       its own us__sess_put();
 *   (4) busy counts requests in flight that name the session; its END
 *       commit is sent only once busy == 0 (or the release's deadline
 *       passed) and after it is detached from the node (so no new request
 *       can name it);
 *   (5) node->committing > 0 exactly while an END commit of one of its
 *       sessions is in flight; node->opening while a request that starts
 *       a session is in flight; neither is ever held across a return to
 *       the kernel except by the release that owns it.  node->changing
 *       counts the changes sent without a session (us__call_sess) in
 *       flight; us__node_wait waits for them too.  A session is attached
 *       only if no commit of its file this mount made outside it (END
 *       commits, fsync commits, changes without a session) landed after
 *       the storage site began it (its snapshot would be older than that
 *       commit, and its reads and writes fail with EAGAIN): OPEN waits
 *       for them first; CREATE cannot (it learns the file from the
 *       answer), so it compares chg_seq and opens a new session if one
 *       may have;
 *   (6) every struct us_fh is in core->fhs and holds one node ref and one
 *       nopen; a writable one holds one session ref and one of its
 *       handles (fh->sess) until release, even if the session is lost.
 *   (7) (writeback cache) ksize is the size this mount believes the
 *       kernel has for the file when it has no write session of it;
 *       node->sizing > 0 while an open gives the kernel a larger size
 *       (a STORE of the file's last byte, us_ops.c): no writable open
 *       starts meanwhile (us__node_wait with also_opening), so no write
 *       of this mount can be in the page the STORE lands in.
 *
 * The mutex is never held during a request (us_rpc_call); waits are on
 * core->cv (CLOCK_MONOTONIC), with the caller's deadline except for (4),
 * whose waiters are requests that have deadlines of their own.
 */
#ifndef US_CORE_INT_H
#define US_CORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_fs.h"
#include "us_core.h"
#include "us_rpc.h"
#include "us_sa.h"

struct us_sess;

struct us_node {
        struct us_node *hnext;
        uint64_t fino;
        uint32_t fg;
        uint64_t ino;
        uint64_t nlookup;               /* the kernel's lookup count */
        unsigned refs;                  /* requests, handles, sessions holding it */
        unsigned nopen;                 /* open handles, and opens in progress */
        struct us_sess *sess;           /* (2) */
        unsigned committing;            /* (5) */
        bool opening;                   /* (5) */
        unsigned sizing;                /* (7) */
        bool have_version;
        uint64_t version;               /* seen at the last open or commit here */
        unsigned changing;              /* (5) */
        uint64_t chg_seq;               /* core->chg_seq at its last commit (5) */
        uint64_t nocaps_until;          /* no security.capability until then (us) */
        /* The size last answered to the kernel, or committed here
         * (us_core_size_news). */
        bool has_ksize;                 /* (7) */
        uint64_t ksize;
        bool cache_bad;                 /* us__node_cache_stale, until an open handles it */
        uint64_t lparent;               /* the last name answered for it (us_core_note_name) */
        char *lname;
        /* The attributes a commit answered, good while the us_sa generation
         * is cattr_gen and for US_ATTR_TIMEOUT_US after cattr_at. */
        bool cattr_valid;
        struct lp_fs_attr cattr;
        uint64_t cattr_at, cattr_gen;
};

struct us_sess {
        struct us_sess *next, *prev;    /* core->sessions */
        struct us_node *node;           /* (3) */
        uint64_t id;
        struct us_site site;
        unsigned refs;                  /* lifetime (3) */
        unsigned handles;               /* writable handles (6) */
        unsigned busy;                  /* (4) */
        int err;                        /* 0, or -EIO once lost (sticky) */
        bool dirty;                     /* changes not committed yet */
        bool ending;
        uint64_t last_use;
};

struct us_fh {
        struct us_fh *next, *prev;      /* core->fhs (6) */
        struct us_node *node;
        int flags;
        bool writable;
        bool css_open;                  /* CSS_CLOSE at release */
        uint64_t css_boot;              /* the CSS instance that recorded the open */
        struct us_sess *sess;           /* writable handles (6) */
        struct us_site site;            /* where reads without a session go */
        int werr;                       /* first write error flush has not reported */
        bool has_osize;                 /* us_fh_open_size() */
        uint64_t osize;
};

struct us_core {
        struct us_core_opts o;
        char *css_port_file;
        struct us_rpc *rpc;
        struct us_mtab *mtab;
        struct us_sa *sa;               /* statahead (us_sa.h) */

        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct us_node **ht;
        size_t htcap, nnodes;
        struct us_sess sessions;        /* list head */
        struct us_fh fhs;               /* list head */
        size_t nsess, nfh;

        pthread_mutex_t mtmu;           /* one mount-table refresh at a time */
        uint64_t mt_last_try;
        uint64_t css_boot;              /* the CSS's boot id, last seen (mu) */
        bool reannounce;                /* a new CSS: tell it our opens (mu) */
        uint64_t chg_seq;               /* commits answered so far (mu) (5) */
        bool writeback;                 /* us_core_set_writeback (set before requests) */

        pthread_mutex_t kmu;
        pthread_cond_t kcv;
        pthread_t keeper;
        bool keeper_running;
        bool keeper_stop;
        bool destroyed;
};


enum sess_need {
        SESS_OPTIONAL,          /* name the file's session if there is one */
        SESS_OWN,               /* the handle's own session, required */
};

/* ---- us_core.c ---- */

/* Small helpers.  us__cv_wait_until: -ETIMEDOUT once the deadline passed. */
int us__cv_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline);
void us__req_init(struct lp_fs_req *req, const struct us_ctx *ctx, uint32_t op, uint32_t fg,
                  uint64_t ino);
void us__req_name(struct lp_fs_req *req, const char *name);

/* Nodes (core->mu held).  us__node_get: created if needed, one more ref
 * (NULL: no memory); us__node_wait: until no END commit (and, if
 * also_opening, no session start and no size given to the kernel (7)) of
 * n is in flight. */
struct us_node *us__node_find(struct us_core *core, uint64_t fino);
struct us_node *us__node_get(struct us_core *core, uint64_t fino);
void us__node_put(struct us_core *core, struct us_node *n);
int us__node_wait(struct us_core *core, struct us_node *n, const struct us_ctx *ctx,
                  bool also_opening);

/* Targets and requests (core->mu not held).  us__read_only: the request
 * changes nothing a directory listing shows; us__call: one request, which
 * invalidates statahead if it changes something; us__call_fg: to the file
 * group's site; us__node_target: where requests through fh (no session) on
 * n go. */
void us__css_target(struct us_core *core, struct us_target *t);
int us__fg_target(struct us_core *core, const struct us_ctx *ctx, uint32_t fg,
                  struct us_target *t);
void us__site_target(const struct us_site *site, struct us_target *t);
/* Target of requests naming a write session opened at site (fg's):
 * -ESTALE once the mount table shows that site no longer serves fg. */
void us__sess_target(struct us_core *core, uint32_t fg, const struct us_site *site,
                     struct us_target *t);
bool us__read_only(uint32_t op);
int us__call(struct us_core *core, const struct us_ctx *ctx, struct us_target *t,
             const struct lp_fs_req *req, enum us_resend rs, struct lp_fs_resp *resp);
int us__call_fg(struct us_core *core, const struct us_ctx *ctx, const struct lp_fs_req *req,
                enum us_resend rs, struct lp_fs_resp *resp);
bool us__same_site(const struct us_site *a, const struct us_site *b);
int us__node_target(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                    struct us_fh *fh, struct us_target *t);

/* ---- us_sess.c ---- */

/* Writes of this mount to n were lost (a lost session, a failed WRITE or
 * commit): what its kernel caches of n, pages and size, may hold data the
 * file does not, whatever is committed later.  The next open without
 * O_TRUNC and without a session of this mount drops the pages (no
 * keep_cache) and makes the kernel forget the inode (US_SIZE_SHRANK)
 * (mu held). */
void us__node_cache_stale(struct us_node *n);

/* Session lifetime (core->mu held): invariants (2)-(6). */
void us__sess_put(struct us_core *core, struct us_sess *s);
void us__note_commit(struct us_core *core, struct us_node *n);
void us__sess_join(struct us_sess *s, struct us_fh *fh);
struct us_sess *us__sess_leave(struct us_fh *fh);
void us__sess_detach(struct us_core *core, struct us_sess *s);
int us__sess_attach(struct us_core *core, struct us_node *n, struct us_fh *fh, uint64_t id,
                    const struct us_site *site, uint64_t *ret_extra);
void us__sess_use(struct us_sess *s);
void us__sess_unuse(struct us_core *core, struct us_sess *s, int r);
struct us_sess *us__sess_pick(struct us_node *n, struct us_fh *fh);
bool us__note_version(struct us_node *n, uint64_t version);

/* Requests naming a session, and commits (core->mu not held). */
int us__call_sess(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                  struct us_fh *fh, enum sess_need need, struct lp_fs_req *req,
                  enum us_resend rs, struct lp_fs_resp *resp);
void us__sess_abort(struct us_core *core, const struct us_ctx *ctx, struct us_target *t,
                    uint32_t fg, uint64_t ino, uint64_t id);
int us__sess_commit(struct us_core *core, const struct us_ctx *ctx, struct us_node *n,
                    struct us_sess *s, uint32_t flags);

/* ---- us_names.c ---- */

/* req for op on name in directory parent (name checked). */
int us__parent_req(struct us_ctx *ctx, uint32_t op, uint64_t parent, const char *name,
                   struct lp_fs_req *req);

/* ---- us_xattr.c ---- */

/* A file known to have no security.capability (core->mu held). */
void us__caps_absent(struct us_node *n);

#endif
