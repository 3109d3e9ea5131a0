/*
 * ctl_sync.c -- locusctl sync: wait until every copy reachable is current
 * (docs/replication.md, "locusctl sync and status").
 *
 * A pass reads the mount table from the CSS (the holders of each file
 * group and where they listen), then SS_STATUS from every holder that
 * answers: each container's seq, and each replicator link's watermark
 * (ss_pull.h).  The copies are current when, for every file group and
 * every two holders a and b that answered, a's watermark of b has reached
 * b's seq: a has installed (or found it did not need) every change b had
 * made when b was asked, which is after sync started.  Passes repeat every
 * 100 ms until that holds (exit 0) or the timeout (exit 1, saying what is
 * behind).  Holders that do not answer are reported and left out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm.h"
#include "css_json.h"
#include "ctl.h"
#include "lp_conn.h"

#define MAX_SITES 256u

struct site_report {
        uint64_t site;
        char host[64];
        uint16_t port;
        bool ok;
        char err[384];
        struct css_jval *js;            /* SS_STATUS */
};

static struct site_report *report_of(struct site_report *s, size_t n, uint64_t site)
{
        for (size_t i = 0; i < n; i++)
                if (s[i].site == site)
                        return &s[i];
        return NULL;
}

static uint64_t g_deadline_us;          /* 0: none (ctl_set_deadline) */

void ctl_set_deadline(uint64_t us)
{
        g_deadline_us = us;
}

/* CTL_CALL_MS, or less when the command's deadline comes first (at least
 * 200 ms, so a call past it still says what it found). */
static int call_ms(void)
{
        uint64_t now = cm_now_us(), left;

        if (!g_deadline_us)
                return CTL_CALL_MS;
        left = g_deadline_us > now ? (g_deadline_us - now) / 1000u : 0;
        if (left < 200)
                left = 200;
        return left < CTL_CALL_MS ? (int)left : CTL_CALL_MS;
}

int ctl_call_conn(const char *host, uint16_t port, const uint8_t key[LP_KEY_SIZE], struct lp_client **cp,
                const struct lp_fs_req *q, struct lp_fs_resp *resp, char *err, size_t cap)
{
        struct lp_client *c = cp ? *cp : NULL;
        char *msg = NULL;
        int e = 0;

        if (!c)
                e = lp_client_connect(host, port, key, CTL_SITE, call_ms(), &c);
        if (e >= 0) {
                (void)lp_client_set_max_frame(c, LP_FS_DATA_MAX + (1u << 16));
                e = lp_fs_call(c, q, call_ms(), resp, &msg);
        }
        if (e < 0) {
                snprintf(err, cap, "%s:%u: %s: %s%s%s", host, port, lp_fs_op_name(q->op),
                         e == -ETIMEDOUT ? "no answer in time" : strerror(-e), msg ? ": " : "", msg ? msg : "");
                free(msg);
                lp_client_close(c);
                c = NULL;
        }
        if (cp)
                *cp = c;
        else
                lp_client_close(c);
        return e;
}

int ctl_ss_report(const uint8_t key[LP_KEY_SIZE], uint64_t site, const char *host, uint16_t port,
                  struct css_jval **ret, char *err, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_SS_STATUS };
        struct lp_fs_resp a;
        char why[256];
        int e = ctl_call_conn(host, port, key, NULL, &q, &a, why, sizeof(why));

        if (e < 0) {
                snprintf(err, cap, "site %" PRIu64 " at %s", site, why);
                return e;
        }
        if (a.status < 0 || !a.text || css_json_parse(a.text, strlen(a.text), ret) < 0) {
                snprintf(err, cap, "site %" PRIu64 " at %s:%u: SS_STATUS: %s", site, host, port,
                         a.status < 0 ? strerror(-a.status) : "no report it can read");
                e = a.status < 0 ? a.status : -EBADMSG;
                lp_fs_resp_release(&a);
                return e;
        }
        lp_fs_resp_release(&a);
        return 0;
}

static void ss_status(const uint8_t key[LP_KEY_SIZE], struct site_report *r)
{
        r->ok = ctl_ss_report(key, r->site, r->host, r->port, &r->js, r->err, sizeof(r->err)) == 0;
}

bool ctl_report_seq(const struct css_jval *js, uint32_t fg, uint64_t *ret)
{
        const struct css_jval *cts = css_json_get(js, "containers");

        for (size_t i = 0; cts && cts->type == CSS_JARR && i < cts->n; i++) {
                uint64_t f;

                if (css_json_uint(css_json_get(&cts->items[i], "fg"), UINT32_MAX, &f) && f == fg)
                        return css_json_uint(css_json_get(&cts->items[i], "seq"), UINT64_MAX, ret);
        }
        return false;
}

bool ctl_report_link(const struct css_jval *js, uint32_t fg, uint64_t site, uint64_t *ret_wm, const char **ret_err,
                     uint64_t *ret_pulled)
{
        const struct css_jval *ls = css_json_get(js, "pulls");

        for (size_t i = 0; ls && ls->type == CSS_JARR && i < ls->n; i++) {
                const struct css_jval *l = &ls->items[i], *e;
                uint64_t f, s;

                if (!css_json_uint(css_json_get(l, "fg"), UINT32_MAX, &f) || f != fg ||
                    !css_json_uint(css_json_get(l, "site"), UINT64_MAX, &s) || s != site)
                        continue;
                e = css_json_get(l, "error");
                *ret_err = e && e->type == CSS_JSTR ? e->str : NULL;
                if (ret_pulled && !css_json_uint(css_json_get(l, "pulled"), UINT64_MAX, ret_pulled))
                        *ret_pulled = 0;
                return css_json_uint(css_json_get(l, "watermark"), UINT64_MAX, ret_wm);
        }
        return false;
}

/* Every holder of every group in the mount table, each with its
 * SS_STATUS (or why not); sr has room for MAX_SITES. */
static size_t gather(const struct lp_fs_resp *mt, const uint8_t key[LP_KEY_SIZE], struct site_report *sr)
{
        size_t nsr = 0;

        for (size_t i = 0; i < mt->nmounts; i++)
                for (size_t j = 0; j < mt->mounts[i].nholders; j++) {
                        const struct lp_fs_holder *h = &mt->mounts[i].holders[j];
                        struct site_report *s = report_of(sr, nsr, h->site);

                        if (s || nsr == MAX_SITES)
                                continue;
                        s = &sr[nsr++];
                        s->site = h->site;
                        snprintf(s->host, sizeof(s->host), "%s", h->host ? h->host : "");
                        s->port = (uint16_t)h->port;
                        if (!h->port)
                                snprintf(s->err, sizeof(s->err), "site %" PRIu64 " is not registered with the CSS",
                                         h->site);
                        else
                                ss_status(key, s);
                }
        return nsr;
}

static void free_reports(struct site_report *sr, size_t nsr)
{
        for (size_t i = 0; i < nsr; i++)
                css_json_free(sr[i].js);
        free(sr);
}

/* One pass: the number of links behind (their descriptions in out), or < 0. */
static int one_pass(const struct ctl_state *st, const uint8_t key[LP_KEY_SIZE], FILE *out, char *err, size_t cap)
{
        struct lp_fs_req q = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp mt;
        struct site_report *sr = calloc(MAX_SITES, sizeof(*sr));
        size_t nsr = 0;
        int behind = 0, r;

        if (!sr)
                return -ENOMEM;
        r = ctl_call(st, CTL_CSSD, &q, CTL_CALL_MS, &mt, err, cap);
        if (r < 0) {
                free(sr);
                return r;
        }
        if (mt.status < 0) {
                snprintf(err, cap, "locus-cssd: CSS_MOUNTTABLE: %s", strerror(-mt.status));
                r = mt.status;
                goto out;
        }
        nsr = gather(&mt, key, sr);
        for (size_t i = 0; i < nsr; i++)
                if (!sr[i].ok)
                        fprintf(out, "  not reachable, left out: %s\n", sr[i].err);
        for (size_t i = 0; i < mt.nmounts; i++) {
                const struct lp_fs_mount *m = &mt.mounts[i];

                for (size_t a = 0; a < m->nholders; a++)
                        for (size_t b = 0; b < m->nholders; b++) {
                                struct site_report *ra = report_of(sr, nsr, m->holders[a].site);
                                struct site_report *rb = report_of(sr, nsr, m->holders[b].site);
                                uint64_t seq, wm = 0;
                                const char *lerr = NULL;

                                /* nobody pulls from a site being added (replicas add) */
                                if (a == b || m->holders[b].adding || !ra || !rb || !ra->ok || !rb->ok ||
                                    !ctl_report_seq(rb->js, m->fg, &seq))
                                        continue;
                                if (!ctl_report_link(ra->js, m->fg, rb->site, &wm, &lerr, NULL))
                                        wm = 0;
                                if (wm >= seq)
                                        continue;
                                behind++;
                                fprintf(out, "  file group %u: site %" PRIu64 " has pulled from site %" PRIu64
                                        " up to %" PRIu64 " of %" PRIu64 "%s%s\n", m->fg, ra->site, rb->site, wm,
                                        seq, lerr ? "; last error: " : "", lerr ? lerr : "");
                        }
        }
        r = behind;
out:
        free_reports(sr, nsr);
        lp_fs_resp_release(&mt);
        return r;
}

void ctl_copies_report(const struct ctl_state *st, const struct lp_fs_resp *mt, struct css_jw *w, FILE *out)
{
        struct site_report *sr = calloc(MAX_SITES, sizeof(*sr));
        uint8_t key[LP_KEY_SIZE];
        char err[512];
        size_t nsr;

        if (w)
                css_jw_arr_begin(w);
        if (!sr || ctl_load_key(st, key, err, sizeof(err)) < 0) {
                if (out)
                        fprintf(out, "  (unknown: %s)\n", sr ? err : "out of memory");
                if (w)
                        css_jw_arr_end(w);
                free(sr);
                return;
        }
        nsr = gather(mt, key, sr);
        if (out)
                fprintf(out, "%-5s %-6s %-10s %-10s %-14s %s\n", "FG", "SITE", "SEQ", "PULLED", "FILES BEHIND",
                        "STATE");
        for (size_t i = 0; i < mt->nmounts; i++) {
                const struct lp_fs_mount *m = &mt->mounts[i];
                const struct lp_fs_holder *prim = NULL;

                for (size_t j = 0; j < m->nholders; j++)
                        if (m->holders[j].site == m->site && m->holders[j].port)
                                prim = &m->holders[j];
                for (size_t j = 0; j < m->nholders; j++) {
                        struct site_report *r = report_of(sr, nsr, m->holders[j].site);
                        uint64_t seq = 0, wm = 0, behind = 0;
                        const char *lerr = NULL, *state;
                        bool have_seq = false, have_wm = false, have_behind = false;

                        if (r && r->ok) {
                                have_seq = ctl_report_seq(r->js, m->fg, &seq);
                                if (prim && prim->site != r->site)
                                        have_wm = ctl_report_link(r->js, m->fg, prim->site, &wm, &lerr, NULL);
                        }
                        if (prim && r && r->ok && prim->site == r->site) {
                                have_behind = true;     /* the primary is current by definition */
                        } else if (prim && have_wm) {
                                struct lp_fs_req q = { .op = LP_FS_SS_CHANGES, .fg = m->fg, .offset = wm,
                                                       .flags = LP_FS_CHANGES_COUNT };
                                struct lp_fs_resp a;

                                if (ctl_call_conn(prim->host, (uint16_t)prim->port, key, NULL, &q, &a, err,
                                                  sizeof(err)) == 0) {
                                        if (a.status == 0) {
                                                behind = a.value;
                                                have_behind = true;
                                        }
                                        lp_fs_resp_release(&a);
                                }
                        }
                        state = !r || !r->ok ? "unreachable" : !have_seq ? "no container" :
                                prim && prim->site == r->site ? "primary" : have_behind && !behind ? "current" :
                                "behind";
                        if (out) {
                                char sseq[24] = "-", swm[24] = "-", sbeh[24] = "-";

                                if (have_seq)
                                        snprintf(sseq, sizeof(sseq), "%" PRIu64, seq);
                                if (have_wm)
                                        snprintf(swm, sizeof(swm), "%" PRIu64, wm);
                                if (have_behind)
                                        snprintf(sbeh, sizeof(sbeh), "%" PRIu64, behind);
                                fprintf(out, "%-5u %-6" PRIu64 " %-10s %-10s %-14s %s%s%s\n", m->fg,
                                        m->holders[j].site, sseq, swm, sbeh, state, lerr ? ": " : "",
                                        lerr ? lerr : "");
                        }
                        if (w) {
                                css_jw_obj_begin(w);
                                css_jw_key(w, "fg");
                                css_jw_u64(w, m->fg);
                                css_jw_key(w, "site");
                                css_jw_u64(w, m->holders[j].site);
                                css_jw_key(w, "state");
                                css_jw_str(w, state);
                                css_jw_key(w, "seq");
                                if (have_seq)
                                        css_jw_u64(w, seq);
                                else
                                        css_jw_null(w);
                                css_jw_key(w, "pulled_from_primary");
                                if (have_wm)
                                        css_jw_u64(w, wm);
                                else
                                        css_jw_null(w);
                                css_jw_key(w, "files_behind");
                                if (have_behind)
                                        css_jw_u64(w, behind);
                                else
                                        css_jw_null(w);
                                css_jw_key(w, "error");
                                css_jw_str(w, lerr ? lerr : r && !r->ok ? r->err : NULL);
                                css_jw_obj_end(w);
                        }
                }
        }
        if (w)
                css_jw_arr_end(w);
        lp_key_wipe(key, sizeof(key));
        free_reports(sr, nsr);
}

int ctl_cmd_sync(int argc, char **argv)
{
        struct ctl_opts o;
        struct ctl_state st;
        uint8_t key[LP_KEY_SIZE];
        char err[512] = "", *text = NULL;
        size_t tlen = 0;
        uint64_t deadline;
        int r;

        if (ctl_parse_opts(argc, argv, CTL_OPT_STATE | CTL_OPT_CONFIG | CTL_OPT_TIMEOUT, 0, &o) < 0)
                return 2;
        r = ctl_state_of_opts(&o, &st);
        if (r < 0 || !st.exists) {
                fprintf(stderr, "locusctl: no dev cluster in %s (wrong --state?)\n", r < 0 ? "(unknown)" : st.dir);
                return 1;
        }
        if (ctl_load_key(&st, key, err, sizeof(err)) < 0) {
                fprintf(stderr, "locusctl: %s\n", err);
                return 1;
        }
        deadline = cm_now_us() + (uint64_t)(o.timeout_s > 0 ? o.timeout_s : CTL_DEFAULT_TIMEOUT_S) * 1000000u;
        ctl_set_deadline(deadline);     /* a site that does not answer costs no more than what is left */
        for (;;) {
                FILE *m = open_memstream(&text, &tlen);

                if (!m) {
                        r = -ENOMEM;
                        break;
                }
                r = one_pass(&st, key, m, err, sizeof(err));
                fclose(m);
                if (r == 0 || cm_now_us() >= deadline)
                        break;
                free(text);
                text = NULL;
                struct timespec ts = { 0, 100 * 1000000L };
                nanosleep(&ts, NULL);
        }
        lp_key_wipe(key, sizeof(key));
        if (r == 0) {
                if (text && *text)
                        fputs(text, stdout);
                printf("in sync\n");
        } else if (r > 0) {
                fprintf(stderr, "locusctl: not in sync after %d s; still pending:\n%s",
                        o.timeout_s > 0 ? o.timeout_s : CTL_DEFAULT_TIMEOUT_S, text ? text : "");
        } else {
                fprintf(stderr, "locusctl: sync: %s\n", err[0] ? err : strerror(-r));
        }
        free(text);
        return r == 0 ? 0 : 1;
}
