/*
 * ss_srv.c -- see ss_srv.h.  Connections and answers, the dispatch of
 * requests, the sweep, and the server's life cycle.  The state diagram and
 * the invariants [S1]..[S8] are in ss_srv_int.h; flushing is in
 * ss_srv_flush.c, maintenance in ss_srv_maint.c, file groups in
 * ss_srv_fg.c.
 */
#include "ss_srv_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "cm.h"
#include "lp_conn.h"
#include "ss_ops.h"
#include "ss_pull.h"
#include "ss_reg.h"

/* ---- connections and answers ------------------------------------------------------- */

void ss__srv_conn_unref(struct ss_conn *c)
{
        if (--c->refs == 0)
                free(c);
}

static const char *errname(int err)
{
        const char *n = strerrorname_np(err < 0 ? -err : err);

        return n ? n : "E?";
}

static void send_buf(struct ss_conn *c, uint64_t reqid, const uint8_t *buf, size_t len)
{
        int r;

        if (!c->lc)
                return;         /* the connection went away: nobody to tell */
        r = lp_server_reply(c->lc, reqid, LP_MSG_FS_RESP, buf, len);
        if (r < 0 && r != -ENOTCONN)
                cm_log(LOG_WARNING, "answer to site %llu (%s) not sent: %s", (unsigned long long)c->site,
                       lp_server_conn_peer(c->lc), strerror(-r));
}

static int encode(const struct lp_fs_resp *a, uint8_t **buf, size_t *len)
{
        int r = lp_fs_resp_encode(a, buf, len);

        if (r < 0) {
                struct lp_fs_resp e = { .status = -EIO, .message = "EIO: answer could not be encoded" };

                cm_log(LOG_ERR, "encoding an answer failed: %s", strerror(-r));
                r = lp_fs_resp_encode(&e, buf, len);
        }
        return r;
}

void ss__srv_send_resp(struct ss_conn *c, uint64_t reqid, const struct lp_fs_resp *a)
{
        uint8_t *buf;
        size_t len;

        if (!c->lc)
                return;
        if (encode(a, &buf, &len) < 0)
                return;
        send_buf(c, reqid, buf, len);
        free(buf);
}

void ss__srv_send_status(struct ss_conn *c, uint64_t reqid, int status, const char *why)
{
        struct lp_fs_resp a = { .status = status };
        char msg[300];

        if (status < 0) {
                snprintf(msg, sizeof(msg), "%s: %s", errname(status), why ? why : strerror(-status));
                a.message = msg;
        }
        ss__srv_send_resp(c, reqid, &a);
}

static struct pending *pending_new(struct ss_conn *c, uint64_t reqid, uint8_t *buf, size_t len)
{
        struct pending *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->c = c;
        c->refs++;
        p->reqid = reqid;
        p->buf = buf;
        p->len = len;
        return p;
}

/* Answer p: its buffer if status is 0, else the error; then free it. */
void ss__srv_pending_done(struct pending *p, int status, const char *why)
{
        if (status < 0 || !p->buf)
                ss__srv_send_status(p->c, p->reqid, status, why);
        else
                send_buf(p->c, p->reqid, p->buf, p->len);
        ss__srv_conn_unref(p->c);
        free(p->buf);
        free(p);
}

void ss__srv_plist_done(struct plist *l, int status, const char *why)
{
        struct pending *p = l->head, *n;

        l->head = l->tail = NULL;
        for (; p; p = n) {
                n = p->next;
                ss__srv_pending_done(p, status, why);
        }
}

/* ---- lookups and the error state [S6] --------------------------------------------------- */

static struct ss_fg *fg_of_ct(struct ss_srv *s, const struct ss_ct *ct)
{
        for (size_t i = 0; i < s->nfgs; i++)
                if (s->fgs[i]->ct == ct)
                        return s->fgs[i];
        return NULL;
}

void ss__srv_fg_failed(struct ss_fg *f, int r, const char *what)
{
        if (!f->ct->err)
                f->ct->err = r;
        if (!f->srv->err)
                f->srv->err = r;
        if (!f->err_logged)
                cm_log(LOG_ERR, "fg %u (%s): %s failed: %s; the container refuses requests until the storage "
                       "site is restarted", f->fg, f->ct->dir, what, strerror(-r));
        f->err_logged = true;
}

/* [S6]: the error state of f, entering it if its SQLite index failed. */
int ss__srv_fg_check(struct ss_fg *f)
{
        const char *cause;

        if (!f->ct->err && ss_db_error(f->ct->db, &cause) < 0)
                ss__srv_fg_failed(f, -EIO, cause);
        return f->ct->err;
}

/* ---- requests ----------------------------------------------------------------------- */

static int log_level_of(int err)
{
        switch (-err) {
        case EIO:
        case ENOMEM:
        case EPROTO:
        case EBADMSG:
                return LOG_ERR;
        case EAGAIN:
        case ENOSPC:
        case ENFILE:
                return LOG_WARNING;
        case ESTALE:
                return LOG_INFO;
        default:
                return LOG_DEBUG;
        }
}

void ss__srv_run_op(struct ss_srv *s, struct ss_fg *f, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        struct ss_opctx x = { 0 };
        struct lp_fs_resp a;
        uint64_t seq0 = f->ct->seq;
        uint8_t *buf = NULL;
        size_t len = 0;
        char msg[320];
        int r;

        assert(!f->busy);       /* [S1] */
        x.ct = f->ct;
        x.sess = &s->sess;
        x.client = c->client;
        x.data_dir = s->data_dir;
        x.space_reserve = s->o.space_reserve;
        x.pull = s->pull;               /* repairs of damaged pages (ss_pull.h [P9]) */
        s->cur_client = c->client;      /* its commits' notes name it (ss__srv_changes) */
        r = ss_op_run(&x, q, &a);
        s->cur_client = 0;
        (void)ss__srv_fg_check(f);
        if (r < 0) {
                snprintf(msg, sizeof(msg), "%s: %s", errname(r), x.msg[0] ? x.msg : strerror(-r));
                a.message = msg;
                cm_log(log_level_of(r), "fg %u ino %#llx: %s from site %llu: %s", f->fg,
                       (unsigned long long)x.ino, lp_fs_op_name(q->op), (unsigned long long)c->site, msg);
        }
        r = encode(&a, &buf, &len);
        ss_opctx_release(&x);
        if (f->ct->seq != seq0)
                ss__srv_fg_dirty(f);
        if (r >= 0) {
                if (x.sync && a.status == 0) {
                        struct pending *p = pending_new(c, reqid, buf, len);
                        /* This site's own replicator (ss_pull.h [P5]: this
                         * site's id and no client id; a mount of this site
                         * names a client id) needs only the local flush: its
                         * SYNC is what makes an install count as a copy. */
                        unsigned copies = c->client == s->o.site ? 1 : ss_pull_sync_copies(s->pull, f->fg);

                        if (p && copies > 1) {
                                p->copies_seq = f->ct->seq;
                                p->copies_need = copies - 1;
                        }
                        if (p)
                                ss__srv_add_sync_waiter(f, p);
                        else {
                                free(buf);
                                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                        }
                } else {
                        send_buf(c, reqid, buf, len);
                        free(buf);
                }
        }
        lp_fs_req_release(q);
        if (f->ct->seq != seq0)
                ss_fw_committed(&f->fw, f->ct->seq, ss__srv_watch_cb, f);       /* [S8] */
        ss__srv_maybe_wal(f, false);
}

/* The container a request names, ready to serve it.  Answers the request
 * itself and returns NULL when this site holds no such container or the
 * container is in its error state [C5]; parks the request (taking over q)
 * and returns FG_PARKED while the container is busy. */
#define FG_PARKED ((struct ss_fg *)-1)
static struct ss_fg *ready_fg(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        struct ss_fg *f = ss__srv_find_fg(s, q->fg);

        if (!f && ss__srv_was_dropped(s, q->fg)) {
                /* "Unavailable", not "stale": the copy moved (replicas
                 * remove), nothing was done, and a mount asks the CSS for
                 * the current primary and again (docs/replication.md). */
                ss__srv_send_status(c, reqid, -EHOSTUNREACH, "this site's copy of that file group was removed: ask the "
                            "CSS for its holders");
                return NULL;
        }
        if (!f) {
                char why[96];

                snprintf(why, sizeof(why), "this site holds no container of file group %u", q->fg);
                cm_log(LOG_INFO, "fg %u: %s from site %llu: %s", q->fg, lp_fs_op_name(q->op),
                       (unsigned long long)c->site, why);
                ss__srv_send_status(c, reqid, -ESTALE, why);
                return NULL;
        }
        if (f->busy) {
                ss__srv_park(f, c, reqid, q);
                return FG_PARKED;
        }
        if (ss__srv_fg_check(f) < 0) {
                ss__srv_send_status(c, reqid, f->ct->err, "the container is in an error state (see the "
                            "storage site's log); restart the storage site to recover it");
                return NULL;
        }
        return f;
}

/* [S9]: refuse (answered, true) a mutation of a group another site is the
 * primary of. */
static bool not_primary(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        uint64_t primary;
        char why[160];

        if (!ss_op_is_mutation(q) || ss_pull_primary(s->pull, q->fg, &primary) < 0 || !primary ||
            primary == s->o.site)
                return false;
        snprintf(why, sizeof(why), "site %llu is the primary of file group %u, not this site: ask the CSS for "
                 "the mount table", (unsigned long long)primary, q->fg);
        cm_log(LOG_INFO, "fg %u: %s <%llu> refused: %s", q->fg, lp_fs_op_name(q->op),
               (unsigned long long)q->ino, why);
        ss__srv_send_status(c, reqid, -EREMCHG, why);
        return true;
}

/* Handle one decoded request; takes over q. */
void ss__srv_handle_req(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, struct lp_fs_req *q)
{
        struct ss_fg *f = NULL;

        switch (q->op) {
        case LP_FS_NOP:
                ss__srv_send_status(c, reqid, 0, NULL);
                break;
        case LP_FS_SS_STATUS:
                ss__srv_op_status(s, c, reqid);
                break;
        case LP_FS_SS_FG_CREATE:
                ss__srv_op_fg_create(s, c, reqid, q);
                break;
        case LP_FS_SS_FG_DROP:
                ss__srv_op_fg_drop(s, c, reqid, q);
                break;
        case LP_FS_SS_ORPHANS:
                f = ready_fg(s, c, reqid, q);
                if (f == FG_PARKED)
                        return;
                if (f)
                        ss__srv_op_orphans(f, c, reqid, q);
                break;
        case LP_FS_SS_CHECKPOINT:
        case LP_FS_SS_CLEAN:
                f = ready_fg(s, c, reqid, q);
                if (f == FG_PARKED)
                        return;
                if (f) {
                        struct pending *p = pending_new(c, reqid, NULL, 0);

                        if (!p)
                                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                        else if (ss__srv_start_maint(f, q->op == LP_FS_SS_CHECKPOINT ? M_ADMIN_CKPT : M_ADMIN_CLEAN,
                                                     p) < 0)
                                ss__srv_pending_done(p, -EIO, "cannot start the job");
                }
                break;
        default:
                if (!ss_op_is_file_op(q->op)) {
                        ss__srv_send_status(c, reqid, -EOPNOTSUPP, "operation not served by a storage site");
                        break;
                }
                f = ready_fg(s, c, reqid, q);
                if (f == FG_PARKED)
                        return;
                if (!f || not_primary(s, c, reqid, q))
                        break;
                if (q->op == LP_FS_SS_CHANGES && ss__srv_changes_follow(f, c, reqid, q))
                        return;
                ss__srv_run_op(s, f, c, reqid, q);
                return;
        }
        lp_fs_req_release(q);
}

/* ---- lp_server callbacks ------------------------------------------------------------- */

static void on_connect(struct lp_conn *conn, uint64_t site)
{
        struct ss_srv *s = lp_server_get_data(lp_server_conn_server(conn));
        struct ss_conn *c = calloc(1, sizeof(*c));
        uint64_t id = lp_server_conn_client(conn) ? lp_server_conn_client(conn) : site;
        struct ss_client *cl;

        if (!c) {
                cm_log(LOG_ERR, "out of memory accepting site %llu", (unsigned long long)site);
                lp_server_conn_close(conn);
                return;
        }
        for (cl = s->clients; cl && cl->id != id; cl = cl->next)
                ;
        if (!cl) {
                cl = calloc(1, sizeof(*cl));
                if (!cl) {
                        free(c);
                        lp_server_conn_close(conn);
                        return;
                }
                cl->id = id;
                cl->site = site;
                cl->next = s->clients;
                s->clients = cl;
        }
        cl->nconns++;
        c->lc = conn;
        c->cl = cl;
        c->site = site;
        c->client = id;
        c->refs = 1;
        lp_server_conn_set_data(conn, c);
        cm_log(LOG_DEBUG, "site %llu connected from %s", (unsigned long long)site, lp_server_conn_peer(conn));
}

static void on_close(struct lp_conn *conn)
{
        struct ss_conn *c = lp_server_conn_get_data(conn);

        if (!c)
                return;
        c->lc = NULL;
        if (c->cl && --c->cl->nconns == 0)
                c->cl->gone_us = cm_now_us();
        ss__srv_conn_unref(c);
}

static void on_frame(struct lp_conn *conn, uint16_t type, uint16_t flags, uint64_t reqid, const void *payload,
                     size_t len)
{
        struct ss_srv *s = lp_server_get_data(lp_server_conn_server(conn));
        struct ss_conn *c = lp_server_conn_get_data(conn);
        struct lp_fs_req q;
        int r;

        if (!c || (flags & LP_F_REPLY))
                return;         /* we send no requests: a stray reply */
        if (type != LP_MSG_FS_REQ) {
                cm_log(LOG_WARNING, "site %llu (%s) sent message type %u: refused", (unsigned long long)c->site,
                       lp_server_conn_peer(conn), type);
                lp_server_reply_status(conn, reqid, LP_STATUS_PROTOCOL, "a storage site serves LP_MSG_FS_REQ");
                return;
        }
        r = lp_fs_req_decode(payload, len, &q);
        if (r < 0) {
                cm_log(r == -ENAMETOOLONG ? LOG_DEBUG : LOG_WARNING, "site %llu (%s): malformed request: %s",
                       (unsigned long long)c->site, lp_server_conn_peer(conn), strerror(-r));
                ss__srv_send_status(c, reqid, r == -ENAMETOOLONG ? r : (r == -ENOMEM ? r : -EBADMSG),
                            r == -ENAMETOOLONG ? "a name is longer than 255 bytes" : "request does not parse");
                return;
        }
        if (s->stopping) {
                ss__srv_send_status(c, reqid, -EHOSTUNREACH, "the storage site is shutting down");
                lp_fs_req_release(&q);
                return;
        }
        ss__srv_handle_req(s, c, reqid, &q);
}

static void on_log(struct lp_server *srv, int prio, const char *peer, const char *msg)
{
        (void)srv;
        cm_log(prio, "%s: %s", peer, msg);
}

/* ---- timers --------------------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t)
{
        struct ss_srv *s = t->data;
        uint64_t now = cm_now_us();
        struct ss_client **pp = &s->clients;
        struct ss_sess *x, *next;

        /* Clients that have had no connection for the lease. */
        while (*pp) {
                struct ss_client *cl = *pp;
                unsigned n = 0;

                if (cl->nconns || now - cl->gone_us < (uint64_t)s->o.client_grace_ms * 1000u) {
                        pp = &cl->next;
                        continue;
                }
                for (x = s->sess.head; x; x = x->next)
                        if (x->client == cl->id && !x->doomed) {
                                x->doomed = true;
                                n++;
                        }
                if (n)
                        cm_log(LOG_NOTICE, "client %016llx (site %llu) has had no connection for the lease "
                               "(%u ms): aborting its %u write session(s), nothing of them committed",
                               (unsigned long long)cl->id, (unsigned long long)cl->site, s->o.client_grace_ms,
                               n);
                *pp = cl->next;
                free(cl);
        }
        for (x = s->sess.head; x; x = next) {
                struct ss_fg *f = fg_of_ct(s, x->ct);

                next = x->next;
                if (!x->doomed && now - x->last_used_us >= (uint64_t)s->o.idle_timeout_ms * 1000u) {
                        cm_log(LOG_NOTICE, "fg %u ino %#llx: write session %016llx of client %016llx unused for "
                               "%u ms: aborted", f ? f->fg : 0, (unsigned long long)x->ino, (unsigned long long)x->id,
                               (unsigned long long)x->client, s->o.idle_timeout_ms);
                        x->doomed = true;
                }
                if (x->doomed && (!f || !f->busy))
                        ss_sess_end(&s->sess, x);
        }
        for (size_t i = 0; i < s->nfgs; i++)
                ss__srv_maybe_maint(s->fgs[i], now);
}

static void async_cb(uv_async_t *a)
{
        ss_srv_stop(a->data);
}

/* ---- life cycle ------------------------------------------------------------------------- */

void ss_opts_default(struct ss_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->listen_host = "127.0.0.1";
        o->create_root = true;
        o->flush_interval_ms = 5;
        o->idle_timeout_ms = 600000;
        o->client_grace_ms = SS_LEASE_MS_DEFAULT;
        o->sweep_ms = 1000;
        o->max_sessions = 1024;
        o->ckpt_bytes = 64ull << 20;
        o->ckpt_interval_ms = 300000;
        o->wal_frames = 4096;
        o->clean_live_pct = 50;
        o->space_reserve = 64ull << 20;
        o->css_poll_ms = 1000;
}

void ss__srv_maybe_finish(struct ss_srv *s)
{
        if (!s->stopping || s->finished || s->works > 0)
                return;
        s->finished = true;
        for (size_t i = 0; i < s->nfgs; i++)
                assert(!s->fgs[i]->busy && !s->fgs[i]->flush_running);  /* [S5] */
        ss_sessions_clear(&s->sess);
        for (size_t i = 0; i < s->nfgs; i++) {
                struct ss_fg *f = s->fgs[i];

                ss__srv_drop_parked(f);
                ss__srv_plist_done(&f->wait_run, -EHOSTUNREACH, "shutting down");
                ss__srv_plist_done(&f->wait_next, -EHOSTUNREACH, "shutting down");
                ss_fw_clear(&f->fw, -EHOSTUNREACH, ss__srv_watch_cb, ss__srv_copy_cb, f);
                if (f->ct->err && !s->err)
                        s->err = f->ct->err;
                ss_ct_close(f->ct);
                f->ct = NULL;
                uv_close((uv_handle_t *)&f->flush_timer, NULL);
                uv_close((uv_handle_t *)&f->fw_timer, NULL);
        }
        if (s->handles) {
                uv_close((uv_handle_t *)&s->tick, NULL);
                uv_close((uv_handle_t *)&s->async, NULL);
        }
        if (s->reg_handle) {
                /* ss_srv_stop signalled the replicator: it sends no more
                 * (ss_pull.h); its threads are joined in ss_srv_free, when
                 * no call of theirs can wait for this loop. */
                uv_close((uv_handle_t *)&s->reg_async, NULL);
                s->reg_handle = false;
        }
        ss_reg_stop(s->reg);
        s->reg = NULL;
        cm_log(LOG_INFO, "storage site %llu stopped", (unsigned long long)s->o.site);
}

void ss_srv_stop(struct ss_srv *s)
{
        if (s->stopping)
                return;
        s->stopping = true;
        cm_log(LOG_INFO, "storage site %llu shutting down", (unsigned long long)s->o.site);
        ss_pull_signal(s->pull);
        if (s->lp) {
                lp_server_close(s->lp);
                s->lp = NULL;
        }
        if (s->handles)
                uv_timer_stop(&s->tick);
        for (size_t i = 0; i < s->nfgs; i++) {
                uv_timer_stop(&s->fgs[i]->flush_timer);
                uv_timer_stop(&s->fgs[i]->fw_timer);
                s->fgs[i]->timer_armed = false;
        }
        ss__srv_maybe_finish(s);
}

void ss_srv_stop_async(struct ss_srv *s)
{
        uv_async_send(&s->async);
}

int ss_srv_error(const struct ss_srv *s)
{
        return s->err;
}

uint16_t ss_srv_port(const struct ss_srv *s)
{
        return s->port;
}

void ss_srv_free(struct ss_srv *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->nfgs; i++) {
                ss_ct_close(s->fgs[i]->ct);
                free(s->fgs[i]);
        }
        free(s->fgs);
        while (s->clients) {
                struct ss_client *cl = s->clients;

                s->clients = cl->next;
                free(cl);
        }
        ss_reg_stop(s->reg);
        ss_pull_stop(s->pull);
        free(s->data_dir);
        free(s->listen_host);
        free(s->css_host);
        free(s->css_port_file);
        lp_key_wipe(s->o.key, sizeof(s->o.key));
        free(s);
}

/* The CSS says the mount table changed: the replicator reads it now. */
static void reg_note(void *ctx)
{
        struct ss_srv *s = ctx;

        ss_pull_kick(s->pull);
}

/* Register with the CSS (ss_reg.h), from now on. */
static void start_reg(struct ss_srv *s)
{
        struct ss_reg_opts ro = { .site = s->o.site, .css_host = s->css_host, .css_port = s->o.css_port,
                                  .css_port_file = s->css_port_file, .host = s->listen_host,
                                  .port = s->port, .poll_ms = s->o.css_poll_ms, .on_note = reg_note,
                                  .ctx = s };
        char *j;
        int r;

        if (s->reg || s->stopping)
                return;
        j = ss__srv_fgs_json(s);
        /* ro.host is what we listen on; for a wildcard address (0.0.0.0,
         * ::) the CSS takes the address we call from. */
        memcpy(ro.key, s->o.key, sizeof(ro.key));
        r = j ? ss_reg_start(s->loop, &ro, j, &s->reg) : -ENOMEM;
        lp_key_wipe(ro.key, sizeof(ro.key));
        free(j);
        if (r < 0) {
                cm_log(LOG_ERR, "cannot start registering with the CSS: %s; stopping", strerror(-r));
                if (!s->err)
                        s->err = r;
                ss_srv_stop(s);
        }
}

static void reg_async_cb(uv_async_t *a)
{
        start_reg(a->data);
}

/* From a replicator thread [P4]. */
static void pull_current(void *ctx)
{
        struct ss_srv *s = ctx;

        uv_async_send(&s->reg_async);
}

/* The replicator: it learns the other holders from the CSS's mount table
 * and installs through this server (ss_pull.h). */
static int start_pull(struct ss_srv *s)
{
        struct ss_pull_opts po = { .site = s->o.site, .data_dir = s->data_dir, .self_host = s->listen_host,
                                   .self_port = s->port, .css_host = s->css_host, .css_port = s->o.css_port,
                                   .css_port_file = s->css_port_file, .on_current = pull_current, .ctx = s };
        int r;

        /* A wildcard listen address is reached on loopback. */
        if (!strcmp(s->listen_host, "0.0.0.0"))
                po.self_host = "127.0.0.1";
        else if (!strcmp(s->listen_host, "::"))
                po.self_host = "::1";
        memcpy(po.key, s->o.key, sizeof(po.key));
        r = ss_pull_start(&po, &s->pull);
        lp_key_wipe(po.key, sizeof(po.key));
        return r;
}

static char *dup_or_null(const char *p, bool *oom)
{
        char *d;

        if (!p)
                return NULL;
        d = strdup(p);
        if (!d)
                *oom = true;
        return d;
}

int ss_srv_new(uv_loop_t *loop, const struct ss_opts *o, struct ss_srv **ret)
{
        struct lp_server_callbacks cb = { .on_connect = on_connect, .on_frame = on_frame,
                                          .on_close = on_close, .log = on_log };
        struct ss_srv *s;
        uint32_t *fgs = NULL;
        size_t n = 0;
        bool oom = false;
        int r;

        *ret = NULL;
        if (!o->data_dir || o->site == 0 || o->site > SS_CONTAINER_MAX) {
                cm_log(LOG_ERR, "site id %llu: must be 1..%u (it names this site's inode pool)",
                       (unsigned long long)o->site, SS_CONTAINER_MAX);
                return -EINVAL;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = loop;
        s->o = *o;
        s->data_dir = dup_or_null(o->data_dir, &oom);
        s->listen_host = dup_or_null(o->listen_host ? o->listen_host : "127.0.0.1", &oom);
        s->css_host = dup_or_null(o->css_host, &oom);
        s->css_port_file = dup_or_null(o->css_port_file, &oom);
        if (oom) {
                r = -ENOMEM;
                goto fail;
        }
        s->o.data_dir = s->data_dir;
        s->o.listen_host = s->listen_host;
        s->o.css_host = s->css_host;
        s->o.css_port_file = s->css_port_file;
        ss_sessions_init(&s->sess, o->max_sessions);

        if (mkdir(s->data_dir, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                cm_log(LOG_ERR, "%s: cannot create the data directory: %s", s->data_dir, strerror(-r));
                goto fail;
        }
        r = ss_ct_list(s->data_dir, &fgs, &n);
        if (r < 0) {
                cm_log(LOG_ERR, "%s: cannot list the data directory: %s", s->data_dir, strerror(-r));
                goto fail;
        }
        if (n == 0 && !o->create_root) {
                cm_log(LOG_NOTICE, "%s: no container yet: this site holds no file group until one is created "
                       "here (the root group: --create-root, given by locusctl when the cluster is made)",
                       s->data_dir);
        } else if (n == 0) {
                struct ss_ct_opts co = { .segment_size = o->segment_size };
                struct ss_ct *ct;

                cm_log(LOG_INFO, "%s: first start: creating the root file group (1)", s->data_dir);
                r = ss_ct_create(s->data_dir, 1, o->site, &co, &ct);
                if (r >= 0) {
                        r = ss__srv_add_fg(s, ct);
                        if (r < 0)
                                ss_ct_close(ct);
                }
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: cannot create file group 1: %s", s->data_dir, strerror(-r));
                        goto fail;
                }
        }
        if (n > SS_MAX_FGS) {
                cm_log(LOG_ERR, "%s: %zu containers, at most %u are supported", s->data_dir, n, SS_MAX_FGS);
                r = -EMFILE;
                goto fail;
        }
        for (size_t i = 0; i < n; i++) {
                struct ss_ct *ct;

                /* With a CSS, orphans wait for its decision (it asks for them
                 * when we register: SS_ORPHANS): a mount that outlived our
                 * restart may still hold them open. */
                r = ss_ct_open(s->data_dir, fgs[i], !(o->css_port || o->css_port_file), &ct);
                if (r >= 0) {
                        r = ss__srv_add_fg(s, ct);
                        if (r < 0)
                                ss_ct_close(ct);
                }
                if (r < 0) {
                        cm_log(LOG_ERR, "%s: cannot open the container of file group %u: %s", s->data_dir, fgs[i],
                               strerror(-r));
                        goto fail;
                }
                cm_log(LOG_INFO, "fg %u: open at commit %llu, %llu inode(s)", fgs[i],
                       (unsigned long long)ct->seq, (unsigned long long)ct->ninodes);
        }
        free(fgs);
        fgs = NULL;

        r = lp_server_new(loop, o->key, o->site, &cb, s, &s->lp);
        if (r < 0)
                goto fail;
        r = lp_server_listen(s->lp, s->listen_host, o->listen_port, &s->port);
        if (r < 0) {
                cm_log(LOG_ERR, "cannot listen on %s:%u: %s", s->listen_host, o->listen_port, strerror(-r));
                lp_server_close(s->lp);
                s->lp = NULL;
                goto fail;
        }
        uv_timer_init(loop, &s->tick);
        s->tick.data = s;
        uv_async_init(loop, &s->async, async_cb);
        s->async.data = s;
        s->handles = true;
        uv_timer_start(&s->tick, tick_cb, o->sweep_ms, o->sweep_ms);
        if (o->css_port || o->css_port_file) {
                /* Register once the replicator has caught up with the other
                 * holders (ss_pull.h [P4]): start_reg() runs from reg_async. */
                uv_async_init(loop, &s->reg_async, reg_async_cb);
                s->reg_async.data = s;
                s->reg_handle = true;
                r = start_pull(s);
                if (r < 0) {
                        cm_log(LOG_ERR, "cannot start the replicator: %s", strerror(-r));
                        *ret = s;
                        ss_srv_stop(s);
                        return r;
                }
        }
        cm_log(LOG_INFO, "storage site %llu listening on %s:%u, %zu file group(s)", (unsigned long long)o->site,
               s->listen_host, s->port, s->nfgs);
        *ret = s;
        return 0;
fail:
        free(fgs);
        for (size_t i = 0; i < s->nfgs; i++) {
                ss_ct_close(s->fgs[i]->ct);
                s->fgs[i]->ct = NULL;
                uv_close((uv_handle_t *)&s->fgs[i]->flush_timer, NULL);
                uv_close((uv_handle_t *)&s->fgs[i]->fw_timer, NULL);
        }
        /* The flush timers must be closed by the loop: hand the server to
         * the caller, stopped, if any exist. */
        if (s->nfgs) {
                s->stopping = s->finished = true;
                *ret = s;
                return r;
        }
        ss_srv_free(s);
        return r;
}
