/*
 * css_membd.c -- see css_membd.h: the membership service's I/O around the
 * pure state machine of css_memb.c.
 *
 * Invariants:
 *   (1) Every callback of an lp_peer checks d->closing first: during
 *       css_membd_close() the calls in flight are answered (-ECANCELED)
 *       from inside lp_peer_close(), and nothing may be sent or decided.
 *   (2) The machine is never called from inside one of its own callbacks
 *       (css_memb.h): a poll or probe that cannot even be sent is left
 *       unanswered, and the machine's tick counts it failed after poll_ms.
 *   (3) members.json holds a max_epoch >= every epoch we proposed or
 *       accepted: css_memb calls changed() before the proposal goes out,
 *       and css_membd_serve() answers after it returned.
 */
#include "css_membd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm.h"
#include "css_json.h"
#include "lp_conn.h"
#include "lp_peer.h"
#include "lp_status.h"

#define HOST_MAX 64u
#define HB_INFLIGHT_MAX 4u              /* heartbeats to one site awaiting an answer */
#define MEMBD_FILE_MAX (64u << 10)

struct site {
        struct css_membd *d;
        uint64_t id;                    /* 0: the seed, before it said who it is */
        char host[HOST_MAX];
        uint16_t port;
        struct lp_peer *link;
        unsigned hb_inflight;
        enum css_memb_state logged;     /* the state last logged */
        uint64_t kicked_us;             /* the link was last told to reconnect at once */
};

struct poller {
        struct css_membd *d;
        uint64_t site;
        uint32_t gen;
        struct lp_peer *p;
        bool done;
        struct poller *next, **pprev;
};

/* A call's context (probe, proposal). */
struct callctx {
        struct css_membd *d;
        uint64_t site;                  /* probe: the site asked about; proposal: the member */
        uint32_t gen;
        uint64_t epoch;
};

struct css_membd {
        uv_loop_t *loop;
        uint8_t key[LP_KEY_SIZE];
        uint64_t self;
        char host[HOST_MAX];
        uint16_t port;
        char path[PATH_MAX];            /* members.json */
        char dir[PATH_MAX];
        struct css_memb m;
        struct site *sites[CSS_MEMB_MAX + 1];
        unsigned nsites;
        struct poller *pollers;
        uv_timer_t hb, tick;
        unsigned handles;               /* timers not yet closed */
        bool closing;
        uint64_t persisted_max;
        bool sites_dirty;
        uint64_t last_epoch_logged;
        uint64_t heartbeats_sent, heartbeats_heard, polls, probes;
};

static const struct lp_peer_callbacks link_cb;

static struct site *site_get(struct css_membd *d, uint64_t id)
{
        for (unsigned i = 0; i < d->nsites; i++)
                if (d->sites[i]->id == id)
                        return d->sites[i];
        return NULL;
}

/* ---- persistence -------------------------------------------------------------------- */

static int write_durable(const char *dir, const char *path, const char *text)
{
        char tmp[PATH_MAX + 8];
        size_t len = strlen(text), off = 0;
        int fd, dfd, r = 0;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (off < len && !r) {
                ssize_t n = write(fd, text + off, len - off);

                if (n < 0 && errno != EINTR)
                        r = -errno;
                else if (n > 0)
                        off += (size_t)n;
        }
        if (!r && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && !r)
                r = -errno;
        if (!r && rename(tmp, path) < 0)
                r = -errno;
        if (r) {
                unlink(tmp);
                return r;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fsync(dfd) < 0)
                r = -errno;
        close(dfd);
        return r;
}

static void persist(struct css_membd *d)
{
        struct css_jw w;
        char *text;
        int r;

        css_jw_init(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "max_epoch");
        css_jw_u64(&w, d->m.max_epoch);
        css_jw_key(&w, "sites");
        css_jw_arr_begin(&w);
        for (unsigned i = 0; i < d->nsites; i++) {
                const struct site *s = d->sites[i];

                if (!s->id)
                        continue;
                css_jw_obj_begin(&w);
                css_jw_key(&w, "site");
                css_jw_u64(&w, s->id);
                css_jw_key(&w, "host");
                css_jw_str(&w, s->host);
                css_jw_key(&w, "port");
                css_jw_u64(&w, s->port);
                css_jw_obj_end(&w);
        }
        css_jw_arr_end(&w);
        css_jw_obj_end(&w);
        if (css_jw_finish(&w, &text) < 0) {
                cm_log(LOG_ERR, "membership: out of memory writing %s", d->path);
                return;
        }
        r = write_durable(d->dir, d->path, text);
        free(text);
        if (r < 0) {
                cm_log(LOG_ERR, "membership: cannot write %s: %s (the epoch %" PRIu64 " is not durable)", d->path,
                       strerror(-r), d->m.max_epoch);
                return;
        }
        d->persisted_max = d->m.max_epoch;
        d->sites_dirty = false;
}

/* ---- the site table ----------------------------------------------------------------- */

static int site_new(struct css_membd *d, uint64_t id, const char *host, uint16_t port, struct site **ret)
{
        struct lp_peer_opts po;
        struct site *s;
        int r;

        if (d->nsites >= CSS_MEMB_MAX || strlen(host) >= HOST_MAX || !port)
                return d->nsites >= CSS_MEMB_MAX ? -ENOSPC : -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->d = d;
        s->id = id;
        snprintf(s->host, sizeof(s->host), "%s", host);
        s->port = port;
        s->logged = CSS_MEMB_SUSPECT;
        memset(&po, 0, sizeof(po));
        po.host = s->host;
        po.port = port;
        po.key = d->key;
        po.site_id = d->self;
        /* a link that cannot connect is tried again soon: it is also how a
         * healed network is noticed */
        po.connect_timeout_ms = d->m.cfg.poll_ms * 2;
        po.backoff_max_ms = d->m.cfg.suspect_ms;
        r = lp_peer_new(d->loop, &po, &link_cb, s, &s->link);
        if (r < 0) {
                free(s);
                return r;
        }
        d->sites[d->nsites++] = s;
        if (id) {
                r = css_memb_add(&d->m, id, cm_now_us());
                if (r < 0)
                        cm_log(LOG_WARNING, "membership: site %" PRIu64 ": %s", id, strerror(-r));
                d->sites_dirty = true;
        }
        *ret = s;
        return 0;
}

static void site_drop(struct css_membd *d, struct site *s)
{
        for (unsigned i = 0; i < d->nsites; i++)
                if (d->sites[i] == s) {
                        d->sites[i] = d->sites[--d->nsites];
                        break;
                }
        lp_peer_close(s->link);
        free(s);
}

/* Site id serves at host:port.  own: the site said so itself (its own
 * heartbeat), which wins over what others told; else only an unknown site
 * is added. */
static void learn(struct css_membd *d, uint64_t id, const char *host, uint16_t port, bool own)
{
        struct site *s;

        if (!id || id == d->self || !host || !*host || !port || strlen(host) >= HOST_MAX)
                return;
        s = site_get(d, id);
        if (s) {
                if (own && (s->port != port || strcmp(s->host, host) != 0)) {
                        cm_log(LOG_INFO, "membership: site %" PRIu64 " moved to %s:%u", id, host, port);
                        snprintf(s->host, sizeof(s->host), "%s", host);
                        s->port = port;
                        (void)lp_peer_set_addr(s->link, s->host, port);
                        d->sites_dirty = true;
                }
                return;
        }
        /* the seed, dialled before we knew its id, may be this site */
        for (unsigned i = 0; i < d->nsites; i++) {
                s = d->sites[i];
                if (!s->id && s->port == port && !strcmp(s->host, host)) {
                        s->id = id;
                        (void)css_memb_add(&d->m, id, cm_now_us());
                        d->sites_dirty = true;
                        return;
                }
        }
        if (site_new(d, id, host, port, &s) == 0)
                cm_log(LOG_INFO, "membership: learned site %" PRIu64 " at %s:%u", id, host, port);
}

/* ---- views on the wire -------------------------------------------------------------- */

static void jw_set(struct css_jw *w, const struct css_memb_set *s)
{
        css_jw_arr_begin(w);
        for (unsigned i = 0; i < s->n; i++)
                css_jw_u64(w, s->v[i]);
        css_jw_arr_end(w);
}

static bool jv_set(const struct css_jval *v, struct css_memb_set *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (!v || v->type != CSS_JARR || v->n > CSS_MEMB_MAX)
                return false;
        for (size_t i = 0; i < v->n; i++) {
                uint64_t id;

                if (!css_json_uint(&v->items[i], UINT64_MAX >> 1, &id) || !id || !css_memb_set_add(ret, id))
                        return false;
        }
        return true;
}

/* Our view and site table: {"epoch","max","members","reach","sites"}. */
static char *view_text(struct css_membd *d)
{
        struct css_memb_view v;
        struct css_jw w;
        char *text;

        css_memb_view(&d->m, &v);
        css_jw_init(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "epoch");
        css_jw_u64(&w, v.epoch);
        css_jw_key(&w, "max");
        css_jw_u64(&w, v.max_epoch);
        css_jw_key(&w, "members");
        jw_set(&w, &v.members);
        css_jw_key(&w, "reach");
        jw_set(&w, &v.reach);
        css_jw_key(&w, "sites");
        css_jw_arr_begin(&w);
        for (unsigned i = 0; i < d->nsites; i++) {
                const struct site *s = d->sites[i];

                if (!s->id)
                        continue;
                css_jw_arr_begin(&w);
                css_jw_u64(&w, s->id);
                css_jw_str(&w, s->host);
                css_jw_u64(&w, s->port);
                css_jw_arr_end(&w);
        }
        css_jw_arr_end(&w);
        css_jw_obj_end(&w);
        return css_jw_finish(&w, &text) < 0 ? NULL : text;
}

/* Parse a peer's view text; learn the sites it lists.  false: malformed. */
static bool take_view(struct css_membd *d, const char *text, struct css_memb_view *ret)
{
        struct css_jval *js;
        const struct css_jval *sites;
        bool ok;

        memset(ret, 0, sizeof(*ret));
        if (!text || css_json_parse(text, strlen(text), &js) < 0)
                return false;
        ok = js->type == CSS_JOBJ && css_json_uint(css_json_get(js, "epoch"), UINT64_MAX >> 1, &ret->epoch) &&
             css_json_uint(css_json_get(js, "max"), UINT64_MAX >> 1, &ret->max_epoch) &&
             jv_set(css_json_get(js, "members"), &ret->members) && jv_set(css_json_get(js, "reach"), &ret->reach);
        sites = css_json_get(js, "sites");
        if (ok && sites && sites->type == CSS_JARR) {
                for (size_t i = 0; i < sites->n && i < CSS_MEMB_MAX; i++) {
                        const struct css_jval *e = &sites->items[i];
                        uint64_t id, port;

                        if (e->type == CSS_JARR && e->n == 3 && css_json_uint(&e->items[0], UINT64_MAX >> 1, &id) &&
                            e->items[1].type == CSS_JSTR && css_json_uint(&e->items[2], 65535, &port))
                                learn(d, id, e->items[1].str, (uint16_t)port, false);
                }
        }
        css_json_free(js);
        return ok;
}

/* The answer of a call: 0 with *a decoded (release it), or < 0. */
static int answer(int err, uint16_t type, const void *payload, size_t len, struct lp_fs_resp *a)
{
        int st;

        if (err < 0)
                return err;
        if (type == LP_MSG_STATUS) {
                if (lp_status_unpack(payload, len, &st, NULL) < 0)
                        return -EPROTO;
                return lp_status_to_errno(st);
        }
        if (type != LP_MSG_FS_RESP || lp_fs_resp_decode(payload, len, a) < 0)
                return -EPROTO;
        return 0;
}

static int call(struct lp_peer *p, const struct lp_fs_req *q, uint32_t timeout_ms, lp_peer_reply_fn fn, void *arg)
{
        uint8_t *buf;
        size_t len;
        int r = lp_fs_req_encode(q, &buf, &len);

        if (r < 0)
                return r;
        r = lp_peer_call(p, LP_MSG_FS_REQ, buf, len, timeout_ms, fn, arg);
        free(buf);
        return r;
}

/* A heartbeat request carrying our address and view. */
static int heartbeat(struct css_membd *d, struct lp_peer *p, uint32_t timeout_ms, lp_peer_reply_fn fn, void *arg)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_HEARTBEAT, .site = d->self, .host = d->host, .port = d->port };
        char *text = view_text(d);
        int r;

        if (!text)
                return -ENOMEM;
        q.text = text;
        r = call(p, &q, timeout_ms, fn, arg);
        free(text);
        return r;
}

/* A heartbeat's answer from site id: contact, with its view. */
static bool heard_answer(struct css_membd *d, uint64_t id, int err, uint16_t type, const void *payload, size_t len)
{
        struct lp_fs_resp a;
        struct css_memb_view v;
        bool ok;

        if (answer(err, type, payload, len, &a) < 0)
                return false;
        ok = a.status == 0 && take_view(d, a.text, &v);
        lp_fs_resp_release(&a);
        if (ok) {
                d->heartbeats_heard++;
                css_memb_heard(&d->m, id, &v, cm_now_us());
        }
        return ok;
}

/* ---- heartbeats and links ----------------------------------------------------------- */

static void on_hb_answer(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct site *s = arg;
        struct css_membd *d = s->d;

        if (d->closing)
                return;
        s->hb_inflight--;
        if (s->id)
                (void)heard_answer(d, s->id, err, type, payload, len);
}

static void send_heartbeat(struct css_membd *d, struct site *s)
{
        if (!s->id || !lp_peer_is_up(s->link) || s->hb_inflight >= HB_INFLIGHT_MAX)
                return;
        if (heartbeat(d, s->link, d->m.cfg.suspect_ms, on_hb_answer, s) == 0) {
                s->hb_inflight++;
                d->heartbeats_sent++;
        }
}

static void on_link_up(struct lp_peer *p, uint64_t peer_site)
{
        struct site *s = lp_peer_data(p), *other;
        struct css_membd *d = s->d;

        if (d->closing)
                return;
        if (!s->id) {
                /* the seed said who it is */
                other = site_get(d, peer_site);
                if (peer_site == d->self || other) {
                        site_drop(d, s);        /* ourselves, or a site we have a link to already */
                        return;
                }
                s->id = peer_site;
                cm_log(LOG_INFO, "membership: the seed %s is site %" PRIu64, lp_peer_addr(p), peer_site);
                (void)css_memb_add(&d->m, peer_site, cm_now_us());
                d->sites_dirty = true;
                persist(d);
        } else if (peer_site != s->id) {
                cm_log(LOG_WARNING, "membership: %s proved site %" PRIu64 ", expected site %" PRIu64, lp_peer_addr(p),
                       peer_site, s->id);
                return;
        }
        send_heartbeat(d, s);           /* at once: a healed link is noticed without waiting a period */
}

static void on_link_down(struct lp_peer *p, int err, const char *why)
{
        struct site *s = lp_peer_data(p);
        struct css_membd *d = s->d;

        if (d->closing)
                return;
        cm_log(LOG_DEBUG, "membership: link to site %" PRIu64 " down: %s", s->id, why);
        if (s->id)
                css_memb_lost(&d->m, s->id, cm_now_us());
        (void)err;
}

static const struct lp_peer_callbacks link_cb = { .on_up = on_link_up, .on_down = on_link_down };

static void on_hb_timer(uv_timer_t *t)
{
        struct css_membd *d = t->data;

        for (unsigned i = 0; i < d->nsites; i++)
                send_heartbeat(d, d->sites[i]);
}

static void log_changes(struct css_membd *d)
{
        for (unsigned i = 0; i < d->nsites; i++) {
                struct site *s = d->sites[i];
                const struct css_memb_peer *p = s->id ? css_memb_peer(&d->m, s->id) : NULL;

                if (p && p->state != s->logged) {
                        cm_log(p->state == CSS_MEMB_DOWN ? LOG_NOTICE : LOG_INFO, "membership: site %" PRIu64
                               " (%s:%u) is %s", s->id, s->host, s->port, css_memb_state_name(p->state));
                        s->logged = p->state;
                }
        }
}

static void on_tick(uv_timer_t *t)
{
        struct css_membd *d = t->data;

        css_memb_tick(&d->m, cm_now_us());
        log_changes(d);
        if (d->sites_dirty)
                persist(d);
}

static void timer_closed(uv_handle_t *h)
{
        struct css_membd *d = h->data;

        if (--d->handles == 0)
                free(d);
}

/* ---- polls, probes, proposals (the machine's callbacks) -------------------------------- */

static void poll_finish(struct poller *pl, bool ok)
{
        struct css_membd *d = pl->d;

        if (pl->done)
                return;
        pl->done = true;
        if (!d->closing)
                css_memb_poll_result(&d->m, pl->site, pl->gen, ok, cm_now_us());
        *pl->pprev = pl->next;
        if (pl->next)
                pl->next->pprev = pl->pprev;
        lp_peer_close(pl->p);           /* answers its call, if any, with -ECANCELED: done is set */
        free(pl);
}

static void on_poll_answer(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct poller *pl = arg;

        if (pl->done || pl->d->closing)
                return;
        poll_finish(pl, heard_answer(pl->d, pl->site, err, type, payload, len));
}

static void on_poll_up(struct lp_peer *p, uint64_t peer_site)
{
        struct poller *pl = lp_peer_data(p);

        if (pl->done || pl->d->closing)
                return;
        if (peer_site != pl->site || heartbeat(pl->d, p, pl->d->m.cfg.poll_ms, on_poll_answer, pl) < 0)
                poll_finish(pl, false);
}

static void on_poll_down(struct lp_peer *p, int err, const char *why)
{
        struct poller *pl = lp_peer_data(p);

        (void)err;
        (void)why;
        if (pl->done || pl->d->closing)
                return;
        poll_finish(pl, false);
}

static const struct lp_peer_callbacks poll_cb = { .on_up = on_poll_up, .on_down = on_poll_down };

static void m_poll(void *arg, uint64_t site, uint32_t gen)
{
        struct css_membd *d = arg;
        struct site *s = site_get(d, site);
        struct lp_peer_opts po;
        struct poller *pl;

        if (!s || d->closing)
                return;                 /* invariant (2): the tick times it out */
        pl = calloc(1, sizeof(*pl));
        if (!pl)
                return;
        pl->d = d;
        pl->site = site;
        pl->gen = gen;
        memset(&po, 0, sizeof(po));
        po.host = s->host;
        po.port = s->port;
        po.key = d->key;
        po.site_id = d->self;
        po.connect_timeout_ms = d->m.cfg.poll_ms;
        po.backoff_min_ms = 3600000;    /* one attempt: the poller is closed after it */
        po.backoff_max_ms = 3600000;
        if (lp_peer_new(d->loop, &po, &poll_cb, pl, &pl->p) < 0) {
                free(pl);
                return;
        }
        pl->next = d->pollers;
        if (pl->next)
                pl->next->pprev = &pl->next;
        pl->pprev = &d->pollers;
        d->pollers = pl;
        d->polls++;
}

static void on_probe_answer(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct callctx *c = arg;
        struct lp_fs_resp a;

        if (!c->d->closing && answer(err, type, payload, len, &a) == 0) {
                css_memb_probe_result(&c->d->m, c->site, c->gen, a.status == 0 && a.value == 1, cm_now_us());
                lp_fs_resp_release(&a);
        }
        free(c);
}

static void m_probe(void *arg, uint64_t site, uint64_t via, uint32_t gen)
{
        struct css_membd *d = arg;
        struct site *s = site_get(d, via);
        struct lp_fs_req q = { .op = LP_FS_CSS_PROBE, .site = site };
        struct callctx *c;

        if (!s || !lp_peer_is_up(s->link))
                return;                 /* invariant (2) */
        c = calloc(1, sizeof(*c));
        if (!c)
                return;
        *c = (struct callctx){ .d = d, .site = site, .gen = gen };
        if (call(s->link, &q, d->m.cfg.poll_ms, on_probe_answer, c) < 0)
                free(c);
        else
                d->probes++;
}

static void m_lost(void *arg, uint64_t site)
{
        struct css_membd *d = arg;
        struct site *s = site_get(d, site);

        /* a connection silent since the cut would deliver nothing for long
         * after the network came back (TCP's retransmission backoff) */
        if (s)
                lp_peer_reconnect(s->link);
}

static void on_epoch_answer(void *arg, int err, uint16_t type, const void *payload, size_t len)
{
        struct callctx *c = arg;
        struct lp_fs_resp a;
        int r;

        if (!c->d->closing) {
                r = answer(err, type, payload, len, &a);
                if (r == 0) {
                        css_memb_proposal_result(&c->d->m, c->site, c->epoch, a.status, a.value);
                        if (a.status)
                                cm_log(LOG_INFO, "membership: site %" PRIu64 " refused epoch %" PRIu64 ": %s%s%s",
                                       c->site, c->epoch, strerror(-a.status), a.message ? ": " : "",
                                       a.message ? a.message : "");
                        lp_fs_resp_release(&a);
                } else {
                        css_memb_proposal_result(&c->d->m, c->site, c->epoch, r, 0);
                }
                if (c->d->persisted_max < c->d->m.max_epoch)
                        persist(c->d);
        }
        free(c);
}

static void m_propose(void *arg, uint64_t epoch, const struct css_memb_set *members)
{
        struct css_membd *d = arg;
        struct lp_fs_req q = { .op = LP_FS_CSS_EPOCH, .site = d->self };
        struct css_jw w;
        char *text;

        css_jw_init(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "epoch");
        css_jw_u64(&w, epoch);
        css_jw_key(&w, "members");
        jw_set(&w, members);
        css_jw_obj_end(&w);
        if (css_jw_finish(&w, &text) < 0)
                return;
        q.text = text;
        for (unsigned i = 0; i < members->n; i++) {
                struct site *s = site_get(d, members->v[i]);
                struct callctx *c;

                if (!s || !lp_peer_is_up(s->link))
                        continue;       /* it tells its view; a disagreement is proposed again */
                c = calloc(1, sizeof(*c));
                if (!c)
                        break;
                *c = (struct callctx){ .d = d, .site = s->id, .epoch = epoch };
                if (call(s->link, &q, d->m.cfg.poll_ms, on_epoch_answer, c) < 0)
                        free(c);
        }
        free(text);
}

static void log_set(char *buf, size_t cap, const struct css_memb_set *s)
{
        size_t n = 0;

        buf[0] = 0;
        for (unsigned i = 0; i < s->n && n < cap; i++) {
                int k = snprintf(buf + n, cap - n, "%s%" PRIu64, i ? "," : "", s->v[i]);

                if (k < 0)
                        break;
                n += (size_t)k;
        }
}

static void m_changed(void *arg, bool epoch_changed)
{
        struct css_membd *d = arg;
        char set[CSS_MEMB_MAX * 8];

        /* invariant (3): durable before anything that depends on it is sent */
        if (d->m.max_epoch > d->persisted_max)
                persist(d);
        if (epoch_changed && d->m.epoch != d->last_epoch_logged) {
                d->last_epoch_logged = d->m.epoch;
                log_set(set, sizeof(set), &d->m.members);
                cm_log(LOG_NOTICE, "membership: epoch %" PRIu64 ", members {%s}", d->m.epoch, set);
        }
}

static const struct css_memb_ops memb_ops = {
        .poll = m_poll,
        .probe = m_probe,
        .lost = m_lost,
        .propose = m_propose,
        .changed = m_changed,
};

/* ---- serving ------------------------------------------------------------------------ */

static char *members_text(struct css_membd *d)
{
        uint64_t now = cm_now_us();
        struct css_jw w;
        char *text;

        css_jw_init(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "site");
        css_jw_u64(&w, d->self);
        css_jw_key(&w, "host");
        css_jw_str(&w, d->host);
        css_jw_key(&w, "port");
        css_jw_u64(&w, d->port);
        css_jw_key(&w, "epoch");
        css_jw_u64(&w, d->m.epoch);
        css_jw_key(&w, "max_epoch");
        css_jw_u64(&w, d->m.max_epoch);
        css_jw_key(&w, "members");
        jw_set(&w, &d->m.members);
        css_jw_key(&w, "epoch_age_ms");
        if (d->m.epoch_us)
                css_jw_u64(&w, (now - d->m.epoch_us) / 1000);
        else
                css_jw_null(&w);
        css_jw_key(&w, "heartbeat_ms");
        css_jw_u64(&w, d->m.cfg.heartbeat_ms);
        css_jw_key(&w, "suspect_ms");
        css_jw_u64(&w, d->m.cfg.suspect_ms);
        css_jw_key(&w, "poll_ms");
        css_jw_u64(&w, d->m.cfg.poll_ms);
        css_jw_key(&w, "proposals");
        css_jw_u64(&w, d->m.proposals);
        css_jw_key(&w, "accepted");
        css_jw_u64(&w, d->m.accepted);
        css_jw_key(&w, "heartbeats_sent");
        css_jw_u64(&w, d->heartbeats_sent);
        css_jw_key(&w, "heartbeats_heard");
        css_jw_u64(&w, d->heartbeats_heard);
        css_jw_key(&w, "polls");
        css_jw_u64(&w, d->polls);
        css_jw_key(&w, "probes");
        css_jw_u64(&w, d->probes);
        css_jw_key(&w, "sites");
        css_jw_arr_begin(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "site");
        css_jw_u64(&w, d->self);
        css_jw_key(&w, "host");
        css_jw_str(&w, d->host);
        css_jw_key(&w, "port");
        css_jw_u64(&w, d->port);
        css_jw_key(&w, "state");
        css_jw_str(&w, "up");
        css_jw_key(&w, "self");
        css_jw_bool(&w, true);
        css_jw_key(&w, "member");
        css_jw_bool(&w, css_memb_set_has(&d->m.members, d->self));
        css_jw_key(&w, "last_heard_ms_ago");
        css_jw_u64(&w, 0);
        css_jw_obj_end(&w);
        for (unsigned i = 0; i < d->m.npeers; i++) {
                const struct css_memb_peer *p = &d->m.peers[i];
                const struct site *s = site_get(d, p->id);

                css_jw_obj_begin(&w);
                css_jw_key(&w, "site");
                css_jw_u64(&w, p->id);
                css_jw_key(&w, "host");
                css_jw_str(&w, s ? s->host : NULL);
                css_jw_key(&w, "port");
                css_jw_u64(&w, s ? s->port : 0);
                css_jw_key(&w, "state");
                css_jw_str(&w, css_memb_state_name(p->state));
                css_jw_key(&w, "self");
                css_jw_bool(&w, false);
                css_jw_key(&w, "member");
                css_jw_bool(&w, css_memb_set_has(&d->m.members, p->id));
                css_jw_key(&w, "last_heard_ms_ago");
                if (p->heard_us)
                        css_jw_u64(&w, (now - p->heard_us) / 1000);
                else
                        css_jw_null(&w);
                css_jw_key(&w, "state_ms");
                css_jw_u64(&w, (now - p->since_us) / 1000);
                css_jw_obj_end(&w);
        }
        css_jw_arr_end(&w);
        css_jw_obj_end(&w);
        return css_jw_finish(&w, &text) < 0 ? NULL : text;
}

void css_membd_serve(struct css_membd *d, uint64_t from, const struct lp_fs_req *rq, struct lp_fs_resp *resp,
                     char **ret_text)
{
        uint64_t now = cm_now_us();
        struct css_memb_view v;

        *ret_text = NULL;
        resp->status = 0;
        switch (rq->op) {
        case LP_FS_CSS_HEARTBEAT:
                if (!from || from != rq->site || from == d->self) {
                        resp->status = -EINVAL;
                        resp->message = "a heartbeat names the site its connection proved, not ours";
                        return;
                }
                learn(d, from, rq->host, (uint16_t)rq->port, true);
                {
                        struct site *s = site_get(d, from);

                        /* it reaches us but our link to it is down (in its
                         * backoff after a cut): try it now, at most every poll_ms */
                        if (s && !lp_peer_is_up(s->link) && now - s->kicked_us >= d->m.cfg.poll_ms * 1000ull) {
                                s->kicked_us = now;
                                lp_peer_reconnect(s->link);
                        }
                }
                if (!take_view(d, rq->text, &v)) {
                        resp->status = -EBADMSG;
                        resp->message = "the heartbeat's view does not parse";
                        return;
                }
                d->heartbeats_heard++;
                css_memb_heard(&d->m, from, &v, now);
                if (d->sites_dirty)
                        persist(d);
                *ret_text = view_text(d);
                break;
        case LP_FS_CSS_PROBE:
                resp->value = css_memb_reaches(&d->m, rq->site, now) ? 1 : 0;
                break;
        case LP_FS_CSS_EPOCH: {
                struct css_jval *js = NULL;
                struct css_memb_set set;
                uint64_t epoch;

                if (!rq->text || css_json_parse(rq->text, strlen(rq->text), &js) < 0 || js->type != CSS_JOBJ ||
                    !css_json_uint(css_json_get(js, "epoch"), UINT64_MAX >> 1, &epoch) ||
                    !jv_set(css_json_get(js, "members"), &set)) {
                        css_json_free(js);
                        resp->status = -EBADMSG;
                        resp->message = "the proposal does not parse";
                        return;
                }
                css_json_free(js);
                resp->status = css_memb_proposal(&d->m, from, epoch, &set, now);
                if (resp->status == -EAGAIN)
                        resp->message = "a member this site does not reach";
                else if (resp->status == -EINVAL)
                        resp->message = "not a member, or the proposer is not the lowest member";
                /* accepted: persisted by m_changed before this answer (invariant 3) */
                resp->value = d->m.max_epoch;
                break;
        }
        case LP_FS_CSS_MEMBERS:
                *ret_text = members_text(d);
                if (!*ret_text)
                        resp->status = -ENOMEM;
                break;
        default:
                resp->status = -EOPNOTSUPP;
                return;
        }
        resp->text = *ret_text;
        log_changes(d);
}

/* ---- life cycle --------------------------------------------------------------------- */

static int load(struct css_membd *d, uint64_t *ret_max, char *err, size_t errcap)
{
        char *buf = malloc(MEMBD_FILE_MAX);
        struct css_jval *js;
        const struct css_jval *sites;
        int n, r = 0;

        *ret_max = 0;
        if (!buf)
                return -ENOMEM;
        n = cm_read_file(d->path, buf, MEMBD_FILE_MAX);
        if (n == -ENOENT) {
                free(buf);
                return 0;               /* a new site */
        }
        if (n < 0) {
                snprintf(err, errcap, "%s: %s", d->path, strerror(-n));
                free(buf);
                return n;
        }
        if (css_json_parse(buf, (size_t)n, &js) < 0 || js->type != CSS_JOBJ ||
            !css_json_uint(css_json_get(js, "max_epoch"), UINT64_MAX >> 1, ret_max)) {
                snprintf(err, errcap, "%s: does not parse (move it away to start this site's membership afresh)",
                         d->path);
                free(buf);
                return -EIO;
        }
        free(buf);
        sites = css_json_get(js, "sites");
        for (size_t i = 0; sites && sites->type == CSS_JARR && i < sites->n; i++) {
                const struct css_jval *e = &sites->items[i];
                const struct css_jval *h = css_json_get(e, "host");
                uint64_t id, port;
                struct site *s;

                if (e->type == CSS_JOBJ && css_json_uint(css_json_get(e, "site"), UINT64_MAX >> 1, &id) && h &&
                    h->type == CSS_JSTR && css_json_uint(css_json_get(e, "port"), 65535, &port) && id != d->self &&
                    !site_get(d, id)) {
                        r = site_new(d, id, h->str, (uint16_t)port, &s);
                        if (r < 0)
                                break;
                }
        }
        css_json_free(js);
        if (r < 0)
                snprintf(err, errcap, "%s: %s", d->path, strerror(-r));
        return r;
}

int css_membd_new(uv_loop_t *loop, const struct css_membd_config *cfg, struct css_membd **ret, char *err,
                  size_t errcap)
{
        struct css_membd *d;
        uint64_t max = 0;
        struct site *s;
        int r;

        if (!cfg->site || !cfg->host || strlen(cfg->host) >= HOST_MAX || !cfg->port) {
                snprintf(err, errcap, "bad membership configuration");
                return -EINVAL;
        }
        d = calloc(1, sizeof(*d));
        if (!d) {
                snprintf(err, errcap, "out of memory");
                return -ENOMEM;
        }
        d->loop = loop;
        memcpy(d->key, cfg->key, sizeof(d->key));
        d->self = cfg->site;
        snprintf(d->host, sizeof(d->host), "%s", cfg->host);
        d->port = cfg->port;
        if (snprintf(d->path, sizeof(d->path), "%s/%s", cfg->state_dir, CSS_MEMBD_FILE) >= (int)sizeof(d->path) ||
            snprintf(d->dir, sizeof(d->dir), "%s", cfg->state_dir) >= (int)sizeof(d->dir)) {
                snprintf(err, errcap, "state directory path too long");
                free(d);
                return -ENAMETOOLONG;
        }
        css_memb_init(&d->m, d->self, 0, &cfg->memb, &memb_ops, d);
        r = load(d, &max, err, errcap);
        if (r < 0)
                goto fail;
        d->m.max_epoch = max;
        d->persisted_max = max;
        if (cfg->seed_host && cfg->seed_port &&
            !(cfg->seed_port == d->port && !strcmp(cfg->seed_host, d->host))) {
                bool known = false;

                for (unsigned i = 0; i < d->nsites; i++)
                        known |= d->sites[i]->port == cfg->seed_port && !strcmp(d->sites[i]->host, cfg->seed_host);
                if (!known && (r = site_new(d, 0, cfg->seed_host, cfg->seed_port, &s)) < 0) {
                        snprintf(err, errcap, "seed %s:%u: %s", cfg->seed_host, cfg->seed_port, strerror(-r));
                        goto fail;
                }
        }
        if (d->sites_dirty)
                persist(d);
        uv_timer_init(loop, &d->hb);
        uv_timer_init(loop, &d->tick);
        d->hb.data = d->tick.data = d;
        d->handles = 2;
        uv_timer_start(&d->hb, on_hb_timer, d->m.cfg.heartbeat_ms, d->m.cfg.heartbeat_ms);
        {
                uint64_t every = d->m.cfg.heartbeat_ms / 3;

                uv_timer_start(&d->tick, on_tick, every ? every : 1, every ? every : 1);
        }
        *ret = d;
        return 0;
fail:
        d->closing = true;
        while (d->pollers)
                poll_finish(d->pollers, false);
        while (d->nsites)
                site_drop(d, d->sites[d->nsites - 1]);
        free(d);
        return r;
}

void css_membd_close(struct css_membd *d)
{
        if (!d || d->closing)
                return;
        d->closing = true;
        while (d->pollers)
                poll_finish(d->pollers, false);
        while (d->nsites)
                site_drop(d, d->sites[d->nsites - 1]);
        lp_key_wipe(d->key, sizeof(d->key));
        uv_close((uv_handle_t *)&d->hb, timer_closed);
        uv_close((uv_handle_t *)&d->tick, timer_closed);
}
