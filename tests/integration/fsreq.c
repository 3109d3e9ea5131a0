/*
 * fsreq -- send one file request straight to a storage site and print its
 * answer, for the integration tests that must reach a site without a
 * mount's mount table in between (repl.sh: a mutation sent to a copy
 * that is not its group's primary is refused, storage/ss_srv_int.h [S9]).
 *
 *   fsreq HOST:PORT KEYFILE mkdir FG PARENT NAME
 *   fsreq HOST:PORT KEYFILE rmdir FG PARENT NAME
 *
 * Prints "status N" (0 or a negative errno) and the answer's message, if
 * any, on one line; exits 0 when an answer came (whatever its status), 1
 * when none did, 2 on bad arguments.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_key.h"

#define IO_MS 10000

int main(int argc, char **argv)
{
        uint8_t key[LP_KEY_SIZE];
        struct lp_fs_req rq = { 0 };
        struct lp_fs_resp resp;
        struct lp_client *c = NULL;
        char host[64], *colon;
        uint8_t *buf = NULL;
        void *payload = NULL;
        size_t len = 0, plen = 0;
        uint16_t type = 0;
        unsigned long port;
        int r;

        if (argc != 7 || strlen(argv[1]) >= sizeof(host)) {
                fprintf(stderr, "usage: fsreq HOST:PORT KEYFILE mkdir|rmdir FG PARENT NAME\n");
                return 2;
        }
        strcpy(host, argv[1]);
        colon = strrchr(host, ':');
        if (!colon || (port = strtoul(colon + 1, NULL, 10)) == 0 || port > 65535) {
                fprintf(stderr, "fsreq: bad address %s\n", argv[1]);
                return 2;
        }
        *colon = 0;
        if (strcmp(argv[3], "mkdir") == 0) {
                rq.op = LP_FS_MKDIR;
                rq.mode = S_IFDIR | 0755;
        } else if (strcmp(argv[3], "rmdir") == 0) {
                rq.op = LP_FS_RMDIR;
        } else {
                fprintf(stderr, "fsreq: unknown operation %s\n", argv[3]);
                return 2;
        }
        rq.fg = (uint32_t)strtoul(argv[4], NULL, 10);
        rq.parent = strtoull(argv[5], NULL, 10);
        rq.name = (const uint8_t *)argv[6];
        rq.namelen = strlen(argv[6]);
        if (lp_key_load(argv[2], key) < 0) {
                fprintf(stderr, "fsreq: cannot load the key %s\n", argv[2]);
                return 2;
        }
        r = lp_client_connect(host, (uint16_t)port, key, 0, IO_MS, &c);
        if (r < 0) {
                fprintf(stderr, "fsreq: connect %s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        if (lp_fs_req_encode(&rq, &buf, &len) < 0 ||
            lp_client_call(c, LP_MSG_FS_REQ, buf, len, IO_MS, &type, &payload, &plen) < 0 ||
            type != LP_MSG_FS_RESP || lp_fs_resp_decode(payload, plen, &resp) < 0) {
                fprintf(stderr, "fsreq: no answer from %s\n", argv[1]);
                free(buf);
                free(payload);
                lp_client_close(c);
                return 1;
        }
        printf("status %d%s%s\n", resp.status, resp.message ? " " : "", resp.message ? resp.message : "");
        lp_fs_resp_release(&resp);
        free(buf);
        free(payload);
        lp_client_close(c);
        return 0;
}
