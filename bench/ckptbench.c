/*
 * ckptbench.c -- create latency while checkpoints happen (issue #7 item 9).
 *
 * Runs a storage site (ss_srv) in this process on a private data directory,
 * with a small checkpoint trigger (--ckpt-bytes, default 256 KiB of log) so
 * that many checkpoints happen, and times N CREATE requests (default
 * 100,000; O_CREAT|O_EXCL, no write session) sent one after the other over
 * the storage protocol from one client on 127.0.0.1.  The protocol rather
 * than a FUSE mount isolates what the storage site does: a mount adds its
 * own lookups and kernel round trips, which only blur the stalls.
 *
 * Each create is timed from send to answer (CLOCK_MONOTONIC).  Printed, as
 * key=value lines: creates, p50_us, p99_us, p999_us, max_us, over_5ms (how
 * many took longer than 5 ms), checkpoints (full and delta, from the
 * store's statistics at the end), checkpoint_hold_max_us (the longest
 * time a checkpoint held commits back inside the store), wal_max_bytes
 * (the largest size of SQLite's WAL file, sampled every 100 creates),
 * wal_restarts (how often the WAL restarted from its start) and
 * wal_parked (how often the container was parked to copy the WAL's last
 * frames: ss_srv_int.h [S7]), seconds.
 *
 * --wal-frames F sets when SQLite's own WAL is checkpointed (default the
 * daemon's, 4096 frames); a huge value keeps those out of the run, to see
 * the segment log's checkpoints alone.
 *
 * usage: ckptbench DATA_DIR [--creates N] [--ckpt-bytes B] [--dirs D] [--wal-frames F]
 * DATA_DIR must not exist (it is created, and removed at the end).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_key.h"
#include "lp_fs.h"
#include "ss_srv.h"
#include "tsrv.h"

static uint8_t KEY[LP_KEY_SIZE];

static int call(struct lp_client *c, const struct lp_fs_req *q, struct lp_fs_resp *a)
{
        uint8_t *buf;
        size_t len, alen = 0;
        void *ans = NULL;
        uint16_t rtype;
        int r;

        r = lp_fs_req_encode(q, &buf, &len);
        if (r < 0)
                return r;
        r = lp_client_call(c, LP_MSG_FS_REQ, buf, len, 60000, &rtype, &ans, &alen);
        free(buf);
        if (r < 0)
                return r;
        if (rtype != LP_MSG_FS_RESP) {
                free(ans);
                return -EPROTO;
        }
        r = lp_fs_resp_decode(ans, alen, a);
        free(ans);
        if (r < 0)
                return r;
        return a->status;
}

static struct lp_fs_req req(uint32_t op)
{
        struct lp_fs_req q = { .op = op, .fg = 1 };

        q.cred.uid = 1000;
        q.cred.gid = 1000;
        q.cred.umask = 022;
        return q;
}

static uint64_t status_num(const char *text, const char *key)
{
        char pat[64];
        const char *p;

        snprintf(pat, sizeof(pat), "\"%s\":", key);
        p = text ? strstr(text, pat) : NULL;
        return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        remove(p);
        return 0;
}

int main(int argc, char **argv)
{
        struct tsrv *t = NULL;
        struct ss_opts o;
        struct lp_client *c = NULL;
        struct lp_fs_req q;
        struct lp_fs_resp a;
        uint64_t n = 100000, ckpt_bytes = 256u << 10, ndirs = 100, wal_frames = 0, *lat, *dirs, t0, over = 0;
        uint64_t wal_max = 0;
        char wal_path[4096];
        struct stat wst;
        const char *data;
        bool trace;
        char name[64];
        int r;

        if (argc < 2) {
                fprintf(stderr, "usage: %s DATA_DIR [--creates N] [--ckpt-bytes B] [--dirs D] [--wal-frames F]\n",
                        argv[0]);
                return 2;
        }
        data = argv[1];
        for (int i = 2; i + 1 < argc; i += 2) {
                if (!strcmp(argv[i], "--creates"))
                        n = strtoull(argv[i + 1], NULL, 0);
                else if (!strcmp(argv[i], "--ckpt-bytes"))
                        ckpt_bytes = strtoull(argv[i + 1], NULL, 0);
                else if (!strcmp(argv[i], "--dirs"))
                        ndirs = strtoull(argv[i + 1], NULL, 0);
                else if (!strcmp(argv[i], "--wal-frames"))
                        wal_frames = strtoull(argv[i + 1], NULL, 0);
                else {
                        fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
                        return 2;
                }
        }
        if (!n || !ndirs) {
                fprintf(stderr, "%s: --creates and --dirs must be > 0\n", argv[0]);
                return 2;
        }
        if (mkdir(data, 0700) < 0) {
                fprintf(stderr, "%s: %s: %s\n", argv[0], data, strerror(errno));
                return 1;
        }
        lat = calloc(n, sizeof(*lat));
        dirs = calloc(ndirs, sizeof(*dirs));
        if (!lat || !dirs)
                return 1;
        /* CKPTBENCH_TRACE=1: the daemon's debug log and every create over
         * 20 ms on stderr, with wall-clock times, to see what stalls. */
        trace = getenv("CKPTBENCH_TRACE") != NULL;
        cm_log_init("ckptbench", trace ? LOG_DEBUG : LOG_WARNING, CM_LOG_STDERR);
        ss_opts_default(&o);
        o.data_dir = data;
        memcpy(o.key, KEY, sizeof(KEY));
        o.site = 1;
        o.segment_size = 1u << 20;
        o.space_reserve = 0;
        o.ckpt_bytes = ckpt_bytes;
        if (wal_frames)
                o.wal_frames = (unsigned)wal_frames;
        r = tsrv_new(&o, &t);   /* the server on a thread of its own (tests/unit/tsrv.h) */
        if (r < 0) {
                fprintf(stderr, "%s: storage site: %s\n", argv[0], strerror(-r));
                return 1;
        }
        r = lp_client_connect("127.0.0.1", t->port, KEY, 100, 10000, &c);
        if (r < 0) {
                fprintf(stderr, "%s: connect: %s\n", argv[0], strerror(-r));
                goto out;
        }
        for (uint64_t d = 0; d < ndirs; d++) {
                q = req(LP_FS_MKDIR);
                q.parent = 1;
                snprintf(name, sizeof(name), "d%llu", (unsigned long long)d);
                q.name = (const uint8_t *)name;
                q.namelen = strlen(name);
                q.mode = 0755;
                r = call(c, &q, &a);
                dirs[d] = a.attr.ino;
                lp_fs_resp_release(&a);
                if (r < 0) {
                        fprintf(stderr, "%s: mkdir %s: %s\n", argv[0], name, strerror(-r));
                        goto out;
                }
        }
        snprintf(wal_path, sizeof(wal_path), "%s/fg-1/meta.sqlite-wal", data);
        t0 = cm_now_us();
        for (uint64_t i = 0; i < n; i++) {
                uint64_t s;

                if (i % 100 == 0 && stat(wal_path, &wst) == 0 && (uint64_t)wst.st_size > wal_max)
                        wal_max = (uint64_t)wst.st_size;

                q = req(LP_FS_CREATE);
                q.parent = dirs[i % ndirs];
                snprintf(name, sizeof(name), "f%llu", (unsigned long long)i);
                q.name = (const uint8_t *)name;
                q.namelen = strlen(name);
                q.flags = O_CREAT | O_EXCL | O_RDONLY;
                q.mode = 0644;
                s = cm_now_us();
                r = call(c, &q, &a);
                lat[i] = cm_now_us() - s;
                lp_fs_resp_release(&a);
                if (r < 0) {
                        fprintf(stderr, "%s: create %s: %s\n", argv[0], name, strerror(-r));
                        goto out;
                }
                if (lat[i] > 5000)
                        over++;
                if (trace && lat[i] > 20000) {
                        struct timespec ts;

                        clock_gettime(CLOCK_REALTIME, &ts);
                        fprintf(stderr, "slow create %llu: %llu us, ended %lld.%03ld\n", (unsigned long long)i,
                                (unsigned long long)lat[i], (long long)ts.tv_sec, ts.tv_nsec / 1000000);
                }
        }
        {
                double secs = (double)(cm_now_us() - t0) / 1e6;

                q = req(LP_FS_SS_STATUS);
                r = call(c, &q, &a);
                qsort(lat, n, sizeof(*lat), cmp_u64);
                printf("creates=%llu\n", (unsigned long long)n);
                printf("ckpt_bytes=%llu\n", (unsigned long long)ckpt_bytes);
                printf("wal_frames=%u\n", t->o.wal_frames);
                printf("p50_us=%llu\n", (unsigned long long)lat[n / 2]);
                printf("p99_us=%llu\n", (unsigned long long)lat[n * 99 / 100]);
                printf("p999_us=%llu\n", (unsigned long long)lat[n * 999 / 1000]);
                printf("max_us=%llu\n", (unsigned long long)lat[n - 1]);
                printf("over_5ms=%llu\n", (unsigned long long)over);
                printf("checkpoints=%llu\n", (unsigned long long)status_num(r >= 0 ? a.text : NULL, "checkpoints"));
                printf("delta_checkpoints=%llu\n",
                       (unsigned long long)status_num(r >= 0 ? a.text : NULL, "delta_checkpoints"));
                printf("checkpoint_hold_max_us=%llu\n",
                       (unsigned long long)status_num(r >= 0 ? a.text : NULL, "checkpoint_hold_max_us"));
                printf("checkpoint_seq=%llu\n",
                       (unsigned long long)status_num(r >= 0 ? a.text : NULL, "checkpoint_seq"));
                printf("wal_max_bytes=%llu\n", (unsigned long long)wal_max);
                printf("wal_restarts=%llu\n",
                       (unsigned long long)status_num(r >= 0 ? a.text : NULL, "wal_restarts"));
                printf("wal_parked=%llu\n", (unsigned long long)status_num(r >= 0 ? a.text : NULL, "wal_parked"));
                printf("seconds=%.1f\n", secs);
                if (r >= 0)
                        lp_fs_resp_release(&a);
                r = 0;
        }
out:
        if (c)
                lp_client_close(c);
        tsrv_stop(t);
        nftw(data, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(lat);
        free(dirs);
        return r < 0 ? 1 : 0;
}
