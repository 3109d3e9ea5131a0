/*
 * ss_srv_fg.c -- file-group lifecycle of the storage server
 * (ss_srv_int.h): finding a container, adding one, SS_FG_CREATE (on the
 * work queue), SS_FG_DROP, SS_STATUS and SS_ORPHANS.  Loop thread, except
 * create_work_cb.
 */
#include "ss_srv_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "cm.h"
#include "ss_pull.h"
#include "ss_reg.h"

struct create_job {
        uv_work_t w;
        struct ss_srv *s;
        struct ss_conn *c;
        uint64_t reqid;
        uint32_t fg;
        char name[LP_FS_NAME_MAX + 1];
        struct ss_ct *ct;
        int r;
};

static void note_dropped(struct ss_srv *s, uint32_t fg, bool dropped);

/* ---- lookups ------------------------------------------------------------------------ */

struct ss_fg *ss__srv_find_fg(struct ss_srv *s, uint32_t fg)
{
        for (size_t i = 0; i < s->nfgs; i++)
                if (s->fgs[i]->fg == fg)
                        return s->fgs[i];
        return NULL;
}

char *ss__srv_fgs_json(struct ss_srv *s)
{
        size_t cap = 16 + s->nfgs * 12, n = 0;
        char *j = malloc(cap);

        if (!j)
                return NULL;
        j[n++] = '[';
        for (size_t i = 0; i < s->nfgs; i++)
                n += (size_t)snprintf(j + n, cap - n, "%s%u", i ? "," : "", s->fgs[i]->fg);
        j[n++] = ']';
        j[n] = 0;
        return j;
}

static void fgs_changed(struct ss_srv *s)
{
        char *j;

        if (!s->reg)
                return;
        j = ss__srv_fgs_json(s);
        if (j)
                ss_reg_set_fgs(s->reg, j);
        free(j);
}

static void json_str(FILE *m, const char *v)
{
        fputc('"', m);
        for (; *v; v++) {
                unsigned char ch = (unsigned char)*v;

                if (ch == '"' || ch == '\\')
                        fprintf(m, "\\%c", ch);
                else if (ch < 0x20)
                        fprintf(m, "\\u%04x", ch);
                else
                        fputc(ch, m);
        }
        fputc('"', m);
}

void ss__srv_op_status(struct ss_srv *s, struct ss_conn *c, uint64_t reqid)
{
        struct lp_fs_resp a = { 0 };
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);

        if (!m) {
                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        fprintf(m, "{\"site\":%llu,\"port\":%u,\"data\":", (unsigned long long)s->o.site, s->port);
        json_str(m, s->data_dir);
        fprintf(m, ",\"sessions\":%u,\"max_sessions\":%u,\"registrations\":%llu,\"css_notes\":%llu,"
                "\"containers\":[", s->sess.n, s->sess.max,
                (unsigned long long)(s->reg ? ss_reg_count(s->reg) : 0),
                (unsigned long long)(s->reg ? ss_reg_notes(s->reg) : 0));
        for (size_t i = 0; i < s->nfgs; i++) {
                struct ss_fg *f = s->fgs[i];
                struct dsm_stats st;
                const char *cause;
                unsigned ns = 0;

                for (struct ss_sess *x = s->sess.head; x; x = x->next)
                        ns += x->ct == f->ct;
                fprintf(m, "%s{\"fg\":%u,\"dir\":", i ? "," : "", f->fg);
                json_str(m, f->ct->dir);
                fprintf(m, ",\"container\":%llu,\"busy\":%s,\"error\":%d,\"sessions\":%u,\"parked\":%zu,"
                        "\"watchers\":%u,\"copy_waits\":%u,\"wal_parked\":%llu",
                        (unsigned long long)f->ct->container, f->busy ? "true" : "false", f->ct->err, ns,
                        f->park_n, f->fw.nwatch, f->fw.ncopy, (unsigned long long)f->wal_parked);
                if (f->ct->err && ss_db_error(f->ct->db, &cause) < 0) {
                        fputs(",\"index_error\":", m);
                        json_str(m, cause);
                }
                if (!f->busy) {
                        /* [S1]: dsm_get_stats waits for the index lock a job holds. */
                        dsm_get_stats(f->ct->store, &st);
                        fprintf(m, ",\"seq\":%llu,\"applied_seq\":%llu,\"inodes\":%llu,\"next_ino\":%llu,"
                                "\"checkpoint_seq\":%llu,\"segments\":%llu,\"segment_size\":%llu,"
                                "\"log_bytes\":%llu,\"live_bytes\":%llu,\"data_bytes_written\":%llu,"
                                "\"meta_bytes_written\":%llu,\"payload_bytes_written\":%llu,"
                                "\"index_extents\":%llu,\"commits\":%llu,\"flushes\":%llu,"
                                "\"damaged_extents\":%llu,\"recovery_bytes\":%llu,\"wal_frames\":%u,"
                                "\"checkpoints\":%llu,\"delta_checkpoints\":%llu,\"checkpoint_chain\":%llu,"
                                "\"checkpoint_hold_max_us\":%llu,\"wal_restarts\":%llu",
                                (unsigned long long)st.seq, (unsigned long long)f->ct->seq,
                                (unsigned long long)f->ct->ninodes, (unsigned long long)f->ct->next_ino,
                                (unsigned long long)st.checkpoint_seq, (unsigned long long)st.segments,
                                (unsigned long long)st.segment_size, (unsigned long long)st.log_bytes,
                                (unsigned long long)st.live_bytes, (unsigned long long)st.data_bytes_written,
                                (unsigned long long)st.meta_bytes_written,
                                (unsigned long long)st.payload_bytes_written,
                                (unsigned long long)st.index_extents, (unsigned long long)st.commits,
                                (unsigned long long)st.flushes, (unsigned long long)st.damaged_extents,
                                (unsigned long long)st.recovery_bytes, ss_db_wal_frames(f->ct->db),
                                (unsigned long long)st.checkpoints, (unsigned long long)st.delta_checkpoints,
                                (unsigned long long)st.checkpoint_chain,
                                (unsigned long long)st.checkpoint_hold_max_us,
                                (unsigned long long)ss_db_wal_restarts(f->ct->db));
                }
                fputc('}', m);
        }
        fputs("],\"pulls\":", m);
        ss_pull_status_json(s->pull, m);
        fputc('}', m);
        if (fclose(m) != 0 || !text) {
                free(text);
                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        a.site = s->o.site;
        a.text = text;
        ss__srv_send_resp(c, reqid, &a);
        free(text);
}

/* SS_ORPHANS: the container's orphans (nlink 0), at most q->length (1..SS_ORPHANS_MAX),
 * as a JSON array of inode numbers; eof when that is all of them. */
void ss__srv_op_orphans(struct ss_fg *f, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        unsigned max = q->length && q->length < SS_ORPHANS_MAX ? (unsigned)q->length : SS_ORPHANS_MAX;
        struct lp_fs_resp a = { 0 };
        uint64_t *inos = calloc(max + 1, sizeof(*inos));
        char *text = NULL;
        size_t n = 0, len = 0;
        FILE *m;
        int r;

        if (!inos) {
                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        r = ss_db_orphans(f->ct->db, max + 1, inos, &n);
        if (r < 0) {
                free(inos);
                ss__srv_send_status(c, reqid, r, "listing the orphans failed");
                return;
        }
        m = open_memstream(&text, &len);
        if (!m) {
                free(inos);
                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        fputc('[', m);
        for (size_t i = 0; i < n && i < max; i++)
                fprintf(m, "%s%llu", i ? "," : "", (unsigned long long)inos[i]);
        fputc(']', m);
        free(inos);
        if (fclose(m) != 0 || !text) {
                free(text);
                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        a.text = text;
        a.eof = n <= max;
        ss__srv_send_resp(c, reqid, &a);
        free(text);
}

static void create_work_cb(uv_work_t *w)
{
        struct create_job *j = w->data;
        struct ss_ct_opts co = { .segment_size = j->s->o.segment_size };

        j->r = ss_ct_create(j->s->data_dir, j->fg, j->s->o.site, &co, &j->ct);
}


static void create_after_cb(uv_work_t *w, int status)
{
        struct create_job *j = w->data;
        struct ss_srv *s = j->s;
        int r = status < 0 ? -EIO : j->r;

        s->works--;
        for (size_t i = 0; i < s->ncreating; i++)
                if (s->creating[i] == j->fg) {
                        s->creating[i] = s->creating[--s->ncreating];
                        break;
                }
        if (r >= 0) {
                r = ss__srv_add_fg(s, j->ct);
                if (r < 0)
                        ss_ct_close(j->ct);
        }
        if (r < 0) {
                cm_log(LOG_ERR, "creating the container of file group %u '%s' in %s failed: %s", j->fg, j->name,
                       s->data_dir, strerror(-r));
                ss__srv_send_status(j->c, j->reqid, r, "creating the container failed");
        } else {
                cm_log(LOG_INFO, "created the container of file group %u '%s'", j->fg, j->name);
                note_dropped(s, j->fg, false);
                ss_pull_forget_fg(s->pull, j->fg);
                ss__srv_send_status(j->c, j->reqid, 0, NULL);
                fgs_changed(s);
        }
        ss__srv_conn_unref(j->c);
        free(j);
        ss__srv_maybe_finish(s);
}

void ss__srv_op_fg_create(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        struct create_job *j;
        int r;

        if (q->fg == 0) {
                ss__srv_send_status(c, reqid, -EINVAL, "file group id 0");
                return;
        }
        if (ss__srv_find_fg(s, q->fg)) {
                ss__srv_send_status(c, reqid, -EEXIST, "this site holds that file group already");
                return;
        }
        for (size_t i = 0; i < s->ncreating; i++)
                if (s->creating[i] == q->fg) {
                        ss__srv_send_status(c, reqid, -EEXIST, "that file group is being created");
                        return;
                }
        if (s->nfgs + s->ncreating >= SS_MAX_FGS) {
                ss__srv_send_status(c, reqid, -ENOSPC, "this site holds the most file groups it can");
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                ss__srv_send_status(c, reqid, -ENOMEM, "out of memory");
                return;
        }
        j->s = s;
        j->c = c;
        c->refs++;
        j->reqid = reqid;
        j->fg = q->fg;
        for (size_t i = 0; i < q->namelen && i < LP_FS_NAME_MAX; i++)   /* for logs only */
                j->name[i] = (q->name[i] >= 0x20 && q->name[i] < 0x7f) ? (char)q->name[i] : '?';
        j->w.data = j;
        r = uv_queue_work(s->loop, &j->w, create_work_cb, create_after_cb);
        if (r < 0) {
                ss__srv_conn_unref(c);
                free(j);
                ss__srv_send_status(c, reqid, -EIO, "cannot queue the creation");
                return;
        }
        s->creating[s->ncreating++] = q->fg;
        s->works++;
}

bool ss__srv_was_dropped(const struct ss_srv *s, uint32_t fg)
{
        for (size_t i = 0; i < s->ndropped; i++)
                if (s->dropped[i] == fg)
                        return true;
        return false;
}

static void note_dropped(struct ss_srv *s, uint32_t fg, bool dropped)
{
        for (size_t i = 0; i < s->ndropped; i++)
                if (s->dropped[i] == fg) {
                        if (!dropped)
                                s->dropped[i] = s->dropped[--s->ndropped];
                        return;
                }
        if (dropped && s->ndropped < SS_MAX_FGS)
                s->dropped[s->ndropped++] = fg;
}

/* Both timers of a dropped container are closed; the second frees it. */
static void fg_free_cb(uv_handle_t *h)
{
        struct ss_fg *f = h->data;

        if (--f->closing == 0)
                free(f);
}

/*
 * SS_FG_DROP: delete this site's container of fg (locusctl replicas
 * remove, once the CSS no longer lists this site as a holder: nothing
 * reads this copy any more).  Its sessions are aborted, it is closed and
 * forgotten, then its folder is renamed away and removed (ss_ct_destroy);
 * the CSS learns the new list at the next registration.  Idempotent: with
 * no container (dropped already, or the deletion was interrupted) it only
 * removes what is left and answers 0; `value` is 1 when a container was
 * deleted.  -EBUSY while a flush or maintenance job runs on it (the tool
 * tries again).
 */
void ss__srv_op_fg_drop(struct ss_srv *s, struct ss_conn *c, uint64_t reqid, const struct lp_fs_req *q)
{
        struct lp_fs_resp a = { .status = 0 };
        struct ss_fg *f = ss__srv_find_fg(s, q->fg);
        unsigned nsess = 0;
        int r;

        if (q->fg == 0) {
                ss__srv_send_status(c, reqid, -EINVAL, "file group id 0");
                return;
        }
        if (s->stopping) {
                ss__srv_send_status(c, reqid, -EHOSTUNREACH, "the storage site is shutting down");
                return;
        }
        for (size_t i = 0; i < s->ncreating; i++)
                if (s->creating[i] == q->fg) {
                        ss__srv_send_status(c, reqid, -EBUSY, "that file group is being created");
                        return;
                }
        if (f && (f->busy || f->flush_running || f->delta_running || f->wal_running || f->park_head)) {
                ss__srv_send_status(c, reqid, -EBUSY, "the container is busy (a flush or maintenance job); try again");
                return;
        }
        if (f) {
                size_t i = 0;

                nsess = ss_sessions_end_ct(&s->sess, f->ct);
                ss__srv_plist_done(&f->wait_run, -ESTALE, "the container was deleted");
                ss__srv_plist_done(&f->wait_next, -ESTALE, "the container was deleted");
                /* Its parked SS_CHANGES and fsyncs waiting for copies [S8]
                 * end now: they point at f, which goes below. */
                ss_fw_clear(&f->fw, -EHOSTUNREACH, ss__srv_watch_cb, ss__srv_copy_cb, f);
                uv_timer_stop(&f->fw_timer);
                uv_timer_stop(&f->flush_timer);
                f->timer_armed = false;
                while (s->fgs[i] != f)
                        i++;
                memmove(&s->fgs[i], &s->fgs[i + 1], (s->nfgs - i - 1) * sizeof(*s->fgs));
                s->nfgs--;
                ss_ct_close(f->ct);
                f->ct = NULL;
                f->closing = 2;
                uv_close((uv_handle_t *)&f->fw_timer, fg_free_cb);
                uv_close((uv_handle_t *)&f->flush_timer, fg_free_cb);   /* the second frees f */
                fgs_changed(s);
        }
        if (f)
                note_dropped(s, q->fg, true);
        ss_pull_forget_fg(s->pull, q->fg);     /* its watermarks went with it (ss_pull.h [P8]) */
        r = ss_ct_destroy(s->data_dir, q->fg);
        if (r < 0) {
                cm_log(LOG_ERR, "fg %u: deleting the container's folder in %s failed: %s", q->fg, s->data_dir,
                       strerror(-r));
                ss__srv_send_status(c, reqid, r, "deleting the container's folder failed");
                return;
        }
        if (f || r > 0)
                cm_log(LOG_INFO, "deleted the container of file group %u (for site %llu; %u session(s) aborted)",
                       q->fg, (unsigned long long)c->site, nsess);
        a.value = f || r > 0;
        ss__srv_send_resp(c, reqid, &a);
}

/* The change stream of a container (ss_ct.h): commit notes to the CSS
 * (ss_reg.h, docs/coherence.md), naming the client whose request is
 * being run. */
static void ct_changes(void *ctx, uint64_t seq, const struct ss_ct_change *ch, size_t n)
{
        struct ss_fg *f = ctx;

        (void)seq;
        ss_reg_commit(f->srv->reg, f->fg, f->srv->cur_client, ch, n);
}

int ss__srv_add_fg(struct ss_srv *s, struct ss_ct *ct)
{
        struct ss_fg **v, *f = calloc(1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        v = realloc(s->fgs, (s->nfgs + 1) * sizeof(*v));
        if (!v) {
                free(f);
                return -ENOMEM;
        }
        s->fgs = v;
        f->srv = s;
        f->ct = ct;
        f->fg = ct->fg;
        f->flush_seq = ct->seq;
        f->ckpt_mark = ss__srv_log_written(ct);
        f->ckpt_seq = ct->seq;
        f->ckpt_us = cm_now_us();
        ss_ct_set_listener(ct, ct_changes, f);
        uv_timer_init(s->loop, &f->flush_timer);
        f->flush_timer.data = f;
        ss_fw_init(&f->fw);
        uv_timer_init(s->loop, &f->fw_timer);
        f->fw_timer.data = f;
        /* keep them sorted by fg id */
        {
                size_t i = s->nfgs;

                while (i > 0 && s->fgs[i - 1]->fg > f->fg) {
                        s->fgs[i] = s->fgs[i - 1];
                        i--;
                }
                s->fgs[i] = f;
        }
        s->nfgs++;
        return 0;
}
