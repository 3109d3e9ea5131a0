/*
 * cssflood.c -- fill a locus-cssd's table of requests waiting for storage
 * sites, so that its next CSS_OPEN is answered "busy" (EAGAIN).
 *
 * usage: cssflood --port P --key FILE --count N [--until M] [--fg FG] [--ino INO]
 *                 [--site S]
 *
 * Connects to 127.0.0.1:P only (these tests never leave the machine), as
 * many connections as the CSS's per-connection limit needs, naming site S
 * (default 0) in the handshake, and sends N CSS_OPEN (read-only) of <FG,
 * INO> (default <1, 1>) without waiting for the answers.  The CSS asks
 * storage sites about such an open only when S holds a copy of FG other
 * than the primary's (it compares the copies; else it answers from its
 * table at once): with the primary's storage site stopped (SIGSTOP), each
 * stays a job at the CSS until the site answers or the CSS's call times
 * out (those past the CSS's job limit are refused at once).  Then it asks CSS_STATUS
 * until pending_requests >= M (default N), prints "pending M" and exits 0
 * (the jobs stay at the CSS after their connections closed).
 * Exit 1 on any failure (said on stderr), 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_key.h"

#define PER_CONN 64             /* CSS_MAX_CLIENT_JOBS */
#define MAX_CONNS 64
#define IO_MS 5000

static uint16_t g_port;
static uint64_t g_site;                 /* the site the flood's connections name (--site) */
static uint8_t g_key[LP_KEY_SIZE];

static struct lp_client *connect_css(void)
{
        struct lp_client *c = NULL;
        int r = lp_client_connect("127.0.0.1", g_port, g_key, g_site, IO_MS, &c);

        if (r < 0) {
                fprintf(stderr, "cssflood: connect to 127.0.0.1:%u: %s\n", g_port, strerror(-r));
                exit(1);
        }
        return c;
}

/* pending_requests from one CSS_STATUS, or -1. */
static long long pending(struct lp_client *c)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_STATUS };
        struct lp_fs_resp resp;
        uint8_t *buf;
        size_t len, plen;
        uint16_t type;
        void *payload;
        const char *p;
        long long n = -1;

        if (lp_fs_req_encode(&rq, &buf, &len) < 0)
                return -1;
        if (lp_client_call(c, LP_MSG_FS_REQ, buf, len, IO_MS, &type, &payload, &plen) < 0) {
                free(buf);
                return -1;
        }
        free(buf);
        if (type == LP_MSG_FS_RESP && lp_fs_resp_decode(payload, plen, &resp) == 0) {
                if (resp.status == 0 && resp.text && (p = strstr(resp.text, "\"pending_requests\":")))
                        n = strtoll(p + strlen("\"pending_requests\":"), NULL, 10);
                lp_fs_resp_release(&resp);
        }
        free(payload);
        return n;
}

int main(int argc, char **argv)
{
        struct lp_client *conns[MAX_CONNS], *st;
        const char *keyfile = NULL;
        long count = 0, until = 0, fg = 1;
        unsigned long long ino = 1;
        struct timespec slice = { 0, 20 * 1000 * 1000 };
        int nconns, waited = 0;
        long long n;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--port") && i + 1 < argc)
                        g_port = (uint16_t)atoi(argv[++i]);
                else if (!strcmp(argv[i], "--key") && i + 1 < argc)
                        keyfile = argv[++i];
                else if (!strcmp(argv[i], "--count") && i + 1 < argc)
                        count = atol(argv[++i]);
                else if (!strcmp(argv[i], "--until") && i + 1 < argc)
                        until = atol(argv[++i]);
                else if (!strcmp(argv[i], "--fg") && i + 1 < argc)
                        fg = atol(argv[++i]);
                else if (!strcmp(argv[i], "--ino") && i + 1 < argc)
                        ino = strtoull(argv[++i], NULL, 10);
                else if (!strcmp(argv[i], "--site") && i + 1 < argc)
                        g_site = strtoull(argv[++i], NULL, 10);
                else {
                        fprintf(stderr, "usage: cssflood --port P --key FILE --count N [--until M] [--fg FG] "
                                "[--ino INO] [--site S]\n");
                        return 2;
                }
        }
        if (!g_port || !keyfile || count <= 0 || count > (long)PER_CONN * MAX_CONNS || fg <= 0 || !ino) {
                fprintf(stderr, "cssflood: --port, --key and --count (1..%d) are needed\n", PER_CONN * MAX_CONNS);
                return 2;
        }
        if (until <= 0 || until > count)
                until = count;
        if (lp_key_load(keyfile, g_key) < 0) {
                fprintf(stderr, "cssflood: cannot load the key %s\n", keyfile);
                return 1;
        }
        nconns = (int)((count + PER_CONN - 1) / PER_CONN);
        for (int i = 0; i < nconns; i++) {
                conns[i] = connect_css();
                for (long k = 0; k < PER_CONN && (long)i * PER_CONN + k < count; k++) {
                        struct lp_fs_req rq = { .op = LP_FS_CSS_OPEN, .fg = (uint32_t)fg, .ino = ino,
                                                .flags = O_RDONLY };
                        uint8_t *buf;
                        size_t len;
                        int r;

                        if (lp_fs_req_encode(&rq, &buf, &len) < 0) {
                                fprintf(stderr, "cssflood: cannot encode CSS_OPEN\n");
                                return 1;
                        }
                        r = lp_client_send(conns[i], LP_MSG_FS_REQ, 0, lp_client_next_reqid(conns[i]), buf, len);
                        free(buf);
                        if (r < 0) {
                                fprintf(stderr, "cssflood: send: %s\n", strerror(-r));
                                return 1;
                        }
                }
        }
        /* The CSS reads the connections in its own time: wait (bounded)
         * until every open is a job. */
        st = connect_css();
        while ((n = pending(st)) < until) {
                if (n < 0 || ++waited > 500) {
                        fprintf(stderr, "cssflood: the CSS has %lld requests pending, expected %ld\n", n, until);
                        return 1;
                }
                nanosleep(&slice, NULL);        /* polling a condition, bounded above */
        }
        printf("pending %lld\n", n);
        lp_client_close(st);
        for (int i = 0; i < nconns; i++)
                lp_client_close(conns[i]);
        return 0;
}
