/*
 * tsrv.h -- a storage server (storage/ss_srv.h) on a libuv loop in a
 * thread of the calling process, for the unit tests (check_ss.c,
 * check_repl.c) and benchmarks (bench/ckptbench.c) that talk to it over
 * TCP on 127.0.0.1.  It is the real server: real logs, real SQLite, real
 * connections; nothing is mocked.
 *
 * Ownership: tsrv_new() copies the options (data_dir into t->data) and
 * returns a struct the caller owns until tsrv_stop(), which stops the
 * server, joins its thread and frees the struct.  t->port is the port the
 * server listens on (it listens on port o->listen_port, 0: any).
 *
 * Threads: the server runs on its own thread; the caller reads t->port
 * and t->o and calls tsrv_new/tsrv_stop from any one thread.  Test code
 * never calls into t->s directly (it belongs to the loop thread).
 *
 * Errors: tsrv_new returns 0, or -ENOMEM, the error of pthread_create,
 * or the error of ss_srv_new (ss_srv.h); on failure nothing is left
 * running and *ret is untouched.  Uses no Check macros, so that a
 * benchmark can use it too.
 */
#ifndef TSRV_H
#define TSRV_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "lp_key.h"
#include "ss_srv.h"

struct tsrv {
        pthread_t thr;
        uv_loop_t loop;
        struct ss_srv *s;
        struct ss_opts o;
        char data[PATH_MAX];
        uint16_t port;
        int err;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool ready;
};

/* The options the unit tests start from: ss_opts_default, then data_dir,
 * key and site, a 50 ms sweep, 1 MiB segments, no space reserve. */
void tsrv_opts(struct ss_opts *o, const char *data_dir, const uint8_t key[LP_KEY_SIZE], uint64_t site);
/* Start a server with options o and wait until ss_srv_new returned. */
int tsrv_new(const struct ss_opts *o, struct tsrv **ret);
/* Stop it (ss_srv_stop_async), join its thread, free t. */
void tsrv_stop(struct tsrv *t);

#endif
