/*
 * repldelay.c -- propagation delay of a commit between two storage sites
 * of a running dev cluster (bench/repl_delay.sh starts it): N times,
 * after a random idle pause of 20 to 120 ms, rewrite 8 bytes of a file at
 * site 1's storage daemon (the primary) in one commit, then ask site 2's
 * storage daemon for the file's vector (SS_FETCH with FETCH_VV) until it
 * equals site 1's: the time from the commit's answer to the first equal
 * vector.  The reference, in the
 * same run: the time of one such question (the cost of looking).
 *
 * usage: repldelay STATE N
 * stdout: key=value lines (microseconds).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_key.h"
#include "lp_rs.h"

static uint8_t KEY[LP_KEY_SIZE];

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct lp_client *connect_site(const char *state, unsigned k)
{
        char path[PATH_MAX], host[32];
        struct lp_client *c = NULL;
        uint16_t port;
        int r;

        snprintf(path, sizeof(path), "%s/site%u/run/storaged.port", state, k);
        snprintf(host, sizeof(host), "127.0.0.%u", k);
        r = cm_read_port_file(path, &port);
        if (r >= 0)
                r = lp_client_connect(host, port, KEY, 0, 10000, &c);
        if (r < 0) {
                fprintf(stderr, "repldelay: site %u (%s): %s\n", k, path, strerror(-r));
                exit(1);
        }
        return c;
}

static struct lp_fs_resp call(struct lp_client *c, const struct lp_fs_req *q)
{
        struct lp_fs_resp a;
        int r = lp_fs_call(c, q, 10000, &a, NULL);

        if (r < 0 || a.status < 0) {
                fprintf(stderr, "repldelay: %s: %s\n", lp_fs_op_name(q->op),
                        r < 0 ? strerror(-r) : a.message ? a.message : strerror(-a.status));
                exit(1);
        }
        return a;
}

static struct lp_fs_req Q(uint32_t op)
{
        struct lp_fs_req q = { .op = op, .fg = 1 };

        q.cred.uid = getuid();
        q.cred.gid = getgid();
        q.cred.umask = 022;
        return q;
}

/* The encoded vector of ino at c into vv (0 bytes: no such file yet). */
static size_t vv_of(struct lp_client *c, uint64_t ino, uint8_t *vv)
{
        struct lp_fs_req q = Q(LP_FS_SS_FETCH);
        struct lp_fs_resp a;
        struct lp_rs_state st;
        size_t n = 0;
        int r;

        q.ino = ino;
        q.flags = LP_FS_FETCH_VV;
        r = lp_fs_call(c, &q, 10000, &a, NULL);
        if (r < 0) {
                fprintf(stderr, "repldelay: ss_fetch: %s\n", strerror(-r));
                exit(1);
        }
        if (a.status == 0 && lp_rs_state_decode(a.data, a.datalen, &st) == 0) {
                if (st.kind == LP_RS_INODE) {
                        memcpy(vv, st.vv, st.vvlen);
                        n = st.vvlen;
                }
                lp_rs_state_free(&st);
        }
        lp_fs_resp_release(&a);
        return n;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        char keyfile[PATH_MAX], name[64];
        struct lp_client *c1, *c2;
        uint64_t *delay, *ref, sd = 0, sr = 0, ino, sess;
        long n;

        if (argc != 3 || (n = strtol(argv[2], NULL, 10)) < 1) {
                fprintf(stderr, "usage: repldelay STATE N\n");
                return 2;
        }
        snprintf(keyfile, sizeof(keyfile), "%s/cluster.key", argv[1]);
        if (lp_key_load(keyfile, KEY) < 0) {
                fprintf(stderr, "repldelay: cannot load %s\n", keyfile);
                return 1;
        }
        c1 = connect_site(argv[1], 1);
        c2 = connect_site(argv[1], 2);
        delay = calloc((size_t)n, sizeof(*delay));
        ref = calloc((size_t)n, sizeof(*ref));
        if (!delay || !ref)
                return 1;
        {
                struct lp_fs_req q = Q(LP_FS_CREATE);
                struct lp_fs_resp a;

                snprintf(name, sizeof(name), "repldelay.%d", (int)getpid());
                q.parent = 1;
                q.name = (const uint8_t *)name;
                q.namelen = strlen(name);
                q.mode = S_IFREG | 0644;
                q.flags = 02 | 0100;
                a = call(c1, &q);
                ino = a.attr.ino;
                sess = a.session;
                lp_fs_resp_release(&a);
                q = Q(LP_FS_COMMIT);
                q.ino = ino;
                q.session = sess;
                q.flags = LP_FS_COMMIT_END | LP_FS_COMMIT_SYNC;
                a = call(c1, &q);
                lp_fs_resp_release(&a);
        }
        srandom((unsigned)getpid());
        for (long i = 0; i < n; i++) {
                struct lp_fs_req q = Q(LP_FS_OPEN);
                struct lp_fs_resp a;
                uint8_t want[LP_FS_VV_MAX], got[LP_FS_VV_MAX];
                size_t wlen, glen;
                uint64_t t0, t1;

                /* The link idle, at a random phase of a poller's period. */
                usleep(20000 + (useconds_t)(random() % 100000));
                q.ino = ino;
                q.flags = 02;
                a = call(c1, &q);
                sess = a.session;
                lp_fs_resp_release(&a);
                q = Q(LP_FS_WRITE);
                q.ino = ino;
                q.session = sess;
                q.offset = (uint64_t)i * 8;
                q.data = (const uint8_t *)"commit!\n";
                q.datalen = 8;
                a = call(c1, &q);
                lp_fs_resp_release(&a);
                q = Q(LP_FS_COMMIT);
                q.ino = ino;
                q.session = sess;
                q.flags = LP_FS_COMMIT_END;
                a = call(c1, &q);
                lp_fs_resp_release(&a);
                t0 = now_us();
                wlen = vv_of(c1, ino, want);
                do
                        glen = vv_of(c2, ino, got);
                while (glen != wlen || memcmp(got, want, wlen));
                t1 = now_us();
                delay[i] = t1 - t0;
                (void)vv_of(c2, ino, got);
                ref[i] = now_us() - t1;
                sd += delay[i];
                sr += ref[i];
        }
        qsort(delay, (size_t)n, sizeof(*delay), cmp_u64);
        qsort(ref, (size_t)n, sizeof(*ref), cmp_u64);
        printf("files=%ld\n", n);
        printf("delay_mean_us=%" PRIu64 "\ndelay_median_us=%" PRIu64 "\ndelay_max_us=%" PRIu64 "\n",
               sd / (uint64_t)n, delay[n / 2], delay[n - 1]);
        printf("reference_fetch_mean_us=%" PRIu64 "\nreference_fetch_median_us=%" PRIu64 "\n",
               sr / (uint64_t)n, ref[n / 2]);
        lp_client_close(c1);
        lp_client_close(c2);
        free(delay);
        free(ref);
        return 0;
}
