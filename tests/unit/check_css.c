/*
 * check_css.c -- the current synchronization site (css/): its tables as
 * modules (mount table persistence, site table, open table, JSON), and the
 * CSS itself served in-process on a libuv loop thread over real TCP on
 * 127.0.0.1 (port 0), spoken to by real lp_clients: registration and
 * re-registration, CSS_MOUNTTABLE, CSS_OPEN/CSS_CLOSE bookkeeping,
 * -EHOSTUNREACH when no storage site can serve, malformed requests answered
 * -EBADMSG while other clients keep being served, the mount table across a
 * restart.
 *
 * When the storage daemon has been built (../../storage/locus-storaged
 * relative to this runner, or $LOCUS_STORAGED), the end-to-end cases start
 * it as a child process (port 0, --ready-fd) registered with the in-process
 * CSS, and check CSS_OPEN and CSS_FG_CREATE against it.  Without it those
 * cases are not added (the runner says so on stderr).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "cm.h"
#include "css.h"
#include "css_json.h"
#include "css_mtab.h"
#include "css_otab.h"
#include "css_site.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_key.h"
#include "testutil.h"


#define CSS_SITE 1
#define WAIT_MS 10000

/* ---- the CSS on a loop thread ------------------------------------------------ */

struct tcss {
        pthread_t thr;
        uv_loop_t loop;
        uv_async_t stop;
        struct css *css;
        char state[PATH_MAX];
        uint8_t key[LP_KEY_SIZE];
        uint16_t port;
        int connect_ms, call_ms;        /* toward storage sites */
        uint32_t lease_ms;              /* 0: the default */
        int err;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool ready;
};

static void on_stop(uv_async_t *a)
{
        struct tcss *t = a->data;

        css_close(t->css);
        uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
        struct tcss *t = arg;
        struct css_config cfg = { .state_dir = t->state, .site = CSS_SITE,
                                  .ss_connect_ms = t->connect_ms ? t->connect_ms : 2000,
                                  .ss_call_ms = t->call_ms ? t->call_ms : 5000,
                                  .lease_ms = t->lease_ms };
        char err[256];
        int r;

        memcpy(cfg.key, t->key, LP_KEY_SIZE);
        CHECK(uv_loop_init(&t->loop) == 0);
        r = css_new(&t->loop, &cfg, &t->css, err, sizeof(err));
        if (r == 0)
                r = css_listen(t->css, "127.0.0.1", 0, &t->port);
        if (r == 0) {
                t->stop.data = t;
                CHECK(uv_async_init(&t->loop, &t->stop, on_stop) == 0);
        } else if (t->css) {
                css_close(t->css);
        }
        pthread_mutex_lock(&t->mu);
        t->err = r;
        t->ready = true;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        uv_run(&t->loop, UV_RUN_DEFAULT);
        CHECK(uv_loop_close(&t->loop) == 0);
        return NULL;
}

static void key_of_test(uint8_t key[LP_KEY_SIZE])
{
        for (int i = 0; i < LP_KEY_SIZE; i++)
                key[i] = (uint8_t)(0x5a ^ (i * 7));
}

/* call_ms: 0 for the default. */
static struct tcss *tcss_start_calls(const char *state, int connect_ms, int call_ms, uint32_t lease_ms)
{
        struct tcss *t = calloc(1, sizeof(*t));

        CHECK(t);
        t->connect_ms = connect_ms;
        t->call_ms = call_ms;
        t->lease_ms = lease_ms;
        snprintf(t->state, sizeof(t->state), "%s", state);
        mkdir(state, 0700);
        key_of_test(t->key);
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        CHECK(pthread_create(&t->thr, NULL, loop_main, t) == 0);
        pthread_mutex_lock(&t->mu);
        while (!t->ready)
                pthread_cond_wait(&t->cv, &t->mu);
        pthread_mutex_unlock(&t->mu);
        if (t->err)
                ck_abort_msg("CSS did not start: %s", strerror(-t->err));
        return t;
}

static struct tcss *tcss_start_lease(const char *state, int connect_ms, uint32_t lease_ms)
{
        return tcss_start_calls(state, connect_ms, 0, lease_ms);
}

static struct tcss *tcss_start_ms(const char *state, int connect_ms)
{
        return tcss_start_lease(state, connect_ms, 0);
}

static struct tcss *tcss_start(const char *state)
{
        return tcss_start_ms(state, 0);
}

static void tcss_stop(struct tcss *t)
{
        uv_async_send(&t->stop);
        CHECK(pthread_join(t->thr, NULL) == 0);
        free(t);
}

/* ---- a client ----------------------------------------------------------------- */

static struct lp_client *cl_connect(struct tcss *t, uint64_t site)
{
        struct lp_client *c = NULL;
        int r = lp_client_connect("127.0.0.1", t->port, t->key, site, WAIT_MS, &c);

        if (r < 0)
                ck_abort_msg("connect to the CSS: %s", strerror(-r));
        return c;
}

/* A connection naming client id (a mount's identity). */
static struct lp_client *cl_connect_id(struct tcss *t, uint64_t id)
{
        struct lp_client *c = NULL;
        int r = lp_client_connect_as("127.0.0.1", t->port, t->key, 0, id, WAIT_MS, &c);

        if (r < 0)
                ck_abort_msg("connect to the CSS: %s", strerror(-r));
        return c;
}

/* One request; the answer must be an FS response.  Returns resp.status. */
static int call(struct lp_client *c, const struct lp_fs_req *rq, struct lp_fs_resp *resp)
{
        uint8_t *buf;
        size_t len, plen;
        uint16_t type;
        void *payload;
        int r;

        CHECK(lp_fs_req_encode(rq, &buf, &len) == 0);
        r = lp_client_call(c, LP_MSG_FS_REQ, buf, len, WAIT_MS, &type, &payload, &plen);
        free(buf);
        if (r < 0)
                ck_abort_msg("call %s: %s", lp_fs_op_name(rq->op), strerror(-r));
        CHECK_EQ(type, LP_MSG_FS_RESP);
        CHECK(lp_fs_resp_decode(payload, plen, resp) == 0);
        free(payload);
        return resp->status;
}

/* A request whose answer only matters for its status. */
static int call_st(struct lp_client *c, const struct lp_fs_req *rq)
{
        struct lp_fs_resp resp;
        int st = call(c, rq, &resp);

        lp_fs_resp_release(&resp);
        return st;
}

static int do_register(struct lp_client *c, uint64_t site, const char *host, uint32_t port, const char *fgs)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_REGISTER, .site = site, .host = host, .port = port,
                                .text = fgs };

        return call_st(c, &rq);
}

static struct css_jval *get_status(struct lp_client *c)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_STATUS };
        struct lp_fs_resp resp;
        struct css_jval *v;

        CHECK_EQ(call(c, &rq, &resp), 0);
        CHECK(resp.text);
        if (css_json_parse(resp.text, strlen(resp.text), &v) < 0)
                ck_abort_msg("CSS_STATUS is not JSON: %s", resp.text);
        lp_fs_resp_release(&resp);
        return v;
}

static uint64_t jnum(const struct css_jval *obj, const char *key)
{
        uint64_t x;

        if (!css_json_uint(css_json_get(obj, key), UINT64_MAX >> 1, &x))
                ck_abort_msg("status: no number '%s'", key);
        return x;
}

static const struct css_jval *status_site(const struct css_jval *st, uint64_t id)
{
        const struct css_jval *a = css_json_get(st, "storage_sites");

        CHECK(a && a->type == CSS_JARR);
        for (size_t i = 0; i < a->n; i++)
                if (jnum(&a->items[i], "site") == id)
                        return &a->items[i];
        return NULL;
}

/* A TCP port on 127.0.0.1 that nobody listens on (bound, then closed). */
static uint16_t dead_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
        CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
        close(fd);
        return ntohs(a.sin_port);
}

static char *state_dir(const char *name)
{
        static char buf[PATH_MAX];

        snprintf(buf, sizeof(buf), "%s/%s", tu_tmpdir(), name);
        return buf;
}

/* ---- JSON ------------------------------------------------------------------------ */

START_TEST(test_json)
{
        struct css_jw w;
        struct css_jval *v;
        char *text;
        const char *bad[] = { "", "[", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "-", "\"\\x\"", "\"a",
                              "[1] 2", "tru", "\"\\u0000\"", "\"\\ud800\"", "{1:2}", "\"\x01\"" };
        char deep[200];

        css_jw_init(&w);
        css_jw_obj_begin(&w);
        css_jw_key(&w, "s");
        css_jw_str(&w, "a\"b\\c\n\x01\xc3\xa9");
        css_jw_key(&w, "n");
        css_jw_u64(&w, UINT64_C(18446744073709551615));
        css_jw_key(&w, "i");
        css_jw_i64(&w, -42);
        css_jw_key(&w, "a");
        css_jw_arr_begin(&w);
        css_jw_bool(&w, true);
        css_jw_null(&w);
        css_jw_raw(&w, "{\"x\":[]}");
        css_jw_str(&w, NULL);
        css_jw_arr_end(&w);
        css_jw_key(&w, "e");
        css_jw_obj_begin(&w);
        css_jw_obj_end(&w);
        css_jw_obj_end(&w);
        CHECK(css_jw_finish(&w, &text) == 0);
        CHECK(css_json_parse(text, strlen(text), &v) == 0);
        CHECK(v->type == CSS_JOBJ && v->n == 5);
        CHECK(!strcmp(css_json_get(v, "s")->str, "a\"b\\c\n\x01\xc3\xa9"));
        CHECK(css_json_get(v, "n")->type == CSS_JNUM);
        CHECK(!css_json_get(v, "n")->is_int);           /* beyond int64: a double */
        CHECK(css_json_get(v, "i")->is_int && css_json_get(v, "i")->i == -42);
        CHECK(css_json_get(v, "a")->n == 4);
        CHECK(css_json_get(v, "a")->items[0].type == CSS_JBOOL && css_json_get(v, "a")->items[0].b);
        CHECK(css_json_get(v, "a")->items[2].type == CSS_JOBJ);
        CHECK(css_json_get(v, "a")->items[3].type == CSS_JNULL);
        CHECK(css_json_get(v, "e")->type == CSS_JOBJ && css_json_get(v, "e")->n == 0);
        CHECK(css_json_get(v, "missing") == NULL);
        css_json_free(v);
        free(text);

        {
                const char *txt = " [1, -2.5e3, \"\\u00e9\\ud83d\\ude00\", {}] ";

                CHECK(css_json_parse(txt, strlen(txt), &v) == 0);
        }
        CHECK(v->n == 4 && v->items[1].num == -2500.0 && !v->items[1].is_int);
        CHECK(!strcmp(v->items[2].str, "\xc3\xa9\xf0\x9f\x98\x80"));
        css_json_free(v);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                v = NULL;
                if (css_json_parse(bad[i], strlen(bad[i]), &v) != -EBADMSG)
                        ck_abort_msg("'%s' parsed", bad[i]);
        }
        memset(deep, '[', sizeof(deep));
        CHECK(css_json_parse(deep, sizeof(deep), &v) == -EBADMSG);     /* too deep */
}
END_TEST

START_TEST(test_parse_fgs)
{
        uint32_t *f;

        CHECK_EQ(css_parse_fgs("[1, 3, 2]", &f), 3);
        CHECK(f[0] == 1 && f[1] == 3 && f[2] == 2);
        free(f);
        CHECK_EQ(css_parse_fgs("[{\"fg\": 1, \"name\": \"root\"}, {\"fg\": 7}]", &f), 2);
        CHECK(f[0] == 1 && f[1] == 7);
        free(f);
        CHECK_EQ(css_parse_fgs("{\"fgs\": [4]}", &f), 1);
        CHECK(f[0] == 4);
        free(f);
        CHECK_EQ(css_parse_fgs("{\"file_groups\": [{\"fg\": 5}]}", &f), 1);
        CHECK(f[0] == 5);
        free(f);
        CHECK_EQ(css_parse_fgs("", &f), 0);
        CHECK(f == NULL);
        CHECK_EQ(css_parse_fgs(NULL, &f), 0);
        CHECK_EQ(css_parse_fgs("[]", &f), 0);
        CHECK_EQ(css_parse_fgs("[0]", &f), -EBADMSG);
        CHECK_EQ(css_parse_fgs("[4294967296]", &f), -EBADMSG);
        CHECK_EQ(css_parse_fgs("[1.5]", &f), -EBADMSG);
        CHECK_EQ(css_parse_fgs("[\"1\"]", &f), -EBADMSG);
        CHECK_EQ(css_parse_fgs("{\"x\": [1]}", &f), -EBADMSG);
        CHECK_EQ(css_parse_fgs("1", &f), -EBADMSG);
        CHECK_EQ(css_parse_fgs("[1", &f), -EBADMSG);
}
END_TEST

START_TEST(test_paths_and_names)
{
        char out[LP_FS_PATH_MAX + 1];
        char longname[300], longpath[5000];

        CHECK(css_path_normalize("/", out, sizeof(out)) == 0 && !strcmp(out, "/"));
        CHECK(css_path_normalize("//home//x/", out, sizeof(out)) == 0 && !strcmp(out, "/home/x"));
        CHECK(css_path_normalize("/a/.b/c..", out, sizeof(out)) == 0 && !strcmp(out, "/a/.b/c.."));
        CHECK(css_path_normalize("home", out, sizeof(out)) == -EINVAL);
        CHECK(css_path_normalize("", out, sizeof(out)) == -EINVAL);
        CHECK(css_path_normalize("/a/./b", out, sizeof(out)) == -EINVAL);
        CHECK(css_path_normalize("/a/../b", out, sizeof(out)) == -EINVAL);
        memset(longname, 'x', sizeof(longname));
        longname[0] = '/';
        longname[sizeof(longname) - 1] = 0;
        CHECK(css_path_normalize(longname, out, sizeof(out)) == -ENAMETOOLONG);
        for (size_t i = 0; i < sizeof(longpath) - 1; i++)
                longpath[i] = i % 2 ? 'a' : '/';
        longpath[sizeof(longpath) - 1] = 0;
        CHECK(css_path_normalize(longpath, out, sizeof(out)) == -ENAMETOOLONG);

        CHECK(css_fg_name_ok("home"));
        CHECK(css_fg_name_ok("a.b_c-9"));
        CHECK(!css_fg_name_ok(""));
        CHECK(!css_fg_name_ok(NULL));
        CHECK(!css_fg_name_ok(".hidden"));
        CHECK(!css_fg_name_ok("-x"));
        CHECK(!css_fg_name_ok("a/b"));
        CHECK(!css_fg_name_ok("a b"));
        memset(longname, 'x', sizeof(longname));
        longname[CSS_FG_NAME_MAX + 1] = 0;
        CHECK(!css_fg_name_ok(longname));
        longname[CSS_FG_NAME_MAX] = 0;
        CHECK(css_fg_name_ok(longname));
}
END_TEST

/* ---- mount table --------------------------------------------------------------------- */

START_TEST(test_mtab_persist)
{
        const char *dir = tu_tmpdir();
        struct css_mtab *m;
        const struct css_mount *r;
        char err[256], file[PATH_MAX];
        uint32_t fg;

        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        CHECK_EQ(css_mtab_count(m), 1);
        r = css_mtab_find(m, CSS_ROOT_FG);
        CHECK(r && !strcmp(r->path, "/") && r->parent_fg == 0 && r->parent_ino == 0);
        CHECK(r->ctime > 0);
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK_EQ(fg, 2);
        CHECK(css_mtab_add(m, fg, "home", 1, 77, "/home") == 0);
        /* invariants (1) and (2) */
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK_EQ(fg, 3);
        CHECK_EQ(css_mtab_add(m, 3, "home", 1, 78, "/home2"), -EEXIST);
        CHECK_EQ(css_mtab_add(m, 3, "h2", 1, 78, "/home"), -EEXIST);
        CHECK_EQ(css_mtab_add(m, 3, "h2", 1, 77, "/home2"), -EEXIST);
        CHECK_EQ(css_mtab_add(m, 2, "h2", 1, 78, "/home2"), -EEXIST);
        CHECK_EQ(css_mtab_add(m, 9, "h9", 1, 78, "/h9"), -EINVAL);      /* never reserved */
        CHECK_EQ(css_mtab_add(m, 3, "h3", 42, 78, "/h3"), -EINVAL);     /* no parent fg 42 */
        CHECK_EQ(css_mtab_add(m, 3, "h3", 1, 78, "h3"), -EINVAL);
        CHECK(css_mtab_add(m, 3, "proj", 2, 5, "/home/proj") == 0);
        CHECK(css_mtab_find_on(m, 2, 5)->fg == 3);
        CHECK(css_mtab_find_name(m, "home")->fg == 2);
        CHECK(css_mtab_find_path(m, "/home/proj")->fg == 3);
        CHECK(css_mtab_find_on(m, 0, 0) == NULL);       /* the root is mounted on nothing */
        /* a reserved id that was never recorded is not given out again */
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK_EQ(fg, 4);
        css_mtab_close(m);

        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        CHECK_EQ(css_mtab_count(m), 3);
        r = css_mtab_at(m, 1);
        CHECK(r->fg == 2 && !strcmp(r->name, "home") && r->parent_fg == 1 && r->parent_ino == 77 &&
              !strcmp(r->path, "/home") && r->policy == CSS_SYNC_SHARED);
        r = css_mtab_at(m, 2);
        CHECK(r->fg == 3 && r->parent_fg == 2 && r->parent_ino == 5 && !strcmp(r->path, "/home/proj"));
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK_EQ(fg, 5);
        css_mtab_close(m);

        /* A file that is not a mount table is refused with the cause. */
        snprintf(file, sizeof(file), "%s/bad", dir);
        mkdir(file, 0700);
        snprintf(file, sizeof(file), "%s/bad/mounttab.sqlite", dir);
        CHECK(cm_write_file(file, "this is not a database, just some text that is long enough......\n"
                                  "................................................................\n") == 0);
        snprintf(file, sizeof(file), "%s/bad", dir);
        err[0] = 0;
        CHECK(css_mtab_open(file, &m, err, sizeof(err)) < 0);
        CHECK(err[0] != 0);
        /* No such directory. */
        snprintf(file, sizeof(file), "%s/nonexistent", dir);
        CHECK(css_mtab_open(file, &m, err, sizeof(err)) < 0);
}
END_TEST

START_TEST(test_mtab_schema_refused)
{
        const char *dir = tu_tmpdir();
        struct css_mtab *m;
        char err[256], file[PATH_MAX];
        sqlite3 *db;

        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        css_mtab_close(m);
        snprintf(file, sizeof(file), "%s/mounttab.sqlite", dir);
        CHECK(sqlite3_open(file, &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "UPDATE meta SET value = 99 WHERE key = 'schema'", NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
        CHECK_EQ(css_mtab_open(dir, &m, err, sizeof(err)), -EBADMSG);
        CHECK(strstr(err, "schema"));
}
END_TEST

/* Holders: recorded, merged, durable; a version-1 table (no holders column,
 * as written before sites existed) is migrated on open and keeps its mounts. */
START_TEST(test_mtab_holders)
{
        const char *dir = tu_tmpdir();
        struct css_mtab *m;
        const struct css_mount *r;
        char err[256], file[PATH_MAX];
        uint64_t a[] = { 3, 1 }, b[] = { 2, 3, 0 }, all[CSS_MAX_HOLDERS + 1];
        sqlite3 *db;
        uint32_t fg;

        /* version 1, as css_mtab.c wrote it */
        snprintf(file, sizeof(file), "%s/mounttab.sqlite", dir);
        CHECK(sqlite3_open(file, &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db,
                           "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                           "CREATE TABLE mounts(fg INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                           " parent_fg INTEGER NOT NULL, parent_ino INTEGER NOT NULL, path TEXT NOT NULL UNIQUE,"
                           " ctime INTEGER NOT NULL, policy INTEGER NOT NULL DEFAULT 0,"
                           " UNIQUE(parent_fg, parent_ino));"
                           "INSERT INTO meta VALUES ('schema', 1), ('next_fg', 3);"
                           "INSERT INTO mounts VALUES (1, 'root', 0, 0, '/', 1, 0), (2, 'home', 1, 77, '/home', 1, 0);",
                           NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
        ck_assert_msg(css_mtab_open(dir, &m, err, sizeof(err)) == 0, "open of a version-1 table: %s", err);
        CHECK_EQ(css_mtab_count(m), 2);
        r = css_mtab_find(m, 2);
        CHECK(r && !strcmp(r->path, "/home") && r->nholders == 0);
        CHECK_EQ(css_mtab_add_holders(m, 2, a, 2), 1);
        r = css_mtab_find(m, 2);
        CHECK(r->nholders == 2 && r->holders[0] == 1 && r->holders[1] == 3);
        CHECK_EQ(css_mtab_add_holders(m, 2, a, 2), 0);          /* nothing new */
        CHECK_EQ(css_mtab_add_holders(m, 2, b, 3), 1);          /* 0 is skipped, 3 is there */
        r = css_mtab_find(m, 2);
        CHECK(r->nholders == 3 && r->holders[0] == 1 && r->holders[1] == 2 && r->holders[2] == 3);
        CHECK_EQ(css_mtab_add_holders(m, 9, a, 2), -ENOENT);
        for (size_t i = 0; i <= CSS_MAX_HOLDERS; i++)
                all[i] = 100 + i;
        CHECK_EQ(css_mtab_add_holders(m, 1, all, CSS_MAX_HOLDERS + 1), -ENOSPC);
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK_EQ(fg, 3);
        CHECK(css_mtab_add(m, fg, "proj", 1, 78, "/proj") == 0);
        CHECK(css_mtab_find(m, 3)->nholders == 0);
        /* sync_copies: 1 by default (also for rows migrated from before
         * the column), kept across a reopen. */
        CHECK_EQ(css_mtab_find(m, 2)->sync_copies, 1);
        CHECK_EQ(css_mtab_set_sync_copies(m, 3, 2), 0);
        CHECK_EQ(css_mtab_set_sync_copies(m, 3, 0), -EINVAL);
        CHECK_EQ(css_mtab_set_sync_copies(m, 99, 2), -ENOENT);
        css_mtab_close(m);

        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        r = css_mtab_find(m, 2);
        CHECK(r->nholders == 3 && r->holders[0] == 1 && r->holders[1] == 2 && r->holders[2] == 3);
        CHECK(css_mtab_find(m, 1)->nholders == 0);
        CHECK_EQ(css_mtab_find(m, 3)->sync_copies, 2);
        CHECK_EQ(css_mtab_find(m, 2)->sync_copies, 1);
        css_mtab_close(m);
        CHECK(sqlite3_open(file, &db) == SQLITE_OK);
        {
                sqlite3_stmt *st;

                CHECK(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema'", -1, &st, NULL) ==
                      SQLITE_OK);
                CHECK(sqlite3_step(st) == SQLITE_ROW);
                CHECK_EQ(sqlite3_column_int(st, 0), 4);  /* v1 migrated to the last version */
                sqlite3_finalize(st);
        }
        sqlite3_close(db);
}
END_TEST

/* Sites being added (replicas add): a state of their own, durable, never
 * made holders by a registration (css_mtab_add_holders), and moved
 * between the states by css_mtab_set_holder only. */
START_TEST(test_mtab_adding)
{
        const char *dir = tu_tmpdir();
        struct css_mtab *m;
        const struct css_mount *r;
        char err[256];
        uint64_t five = 5, two = 2;
        uint32_t fg;

        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK(css_mtab_add(m, fg, "g", 1, 9, "/g") == 0);
        CHECK_EQ(css_mtab_add_holders(m, fg, &two, 1), 1);
        CHECK_EQ(css_mtab_set_holder(m, fg, 5, CSS_HOLDER_ADDING), 1);
        CHECK_EQ(css_mtab_set_holder(m, fg, 5, CSS_HOLDER_ADDING), 0);          /* a rerun */
        r = css_mtab_find(m, fg);
        CHECK(r->nholders == 1 && r->holders[0] == 2 && r->nadding == 1 && r->adding[0] == 5);
        CHECK_EQ(css_mtab_holder_state(r, 5), CSS_HOLDER_ADDING);
        CHECK_EQ(css_mtab_holder_state(r, 2), CSS_HOLDER_FULL);
        CHECK_EQ(css_mtab_holder_state(r, 7), CSS_HOLDER_NONE);
        /* Its storaged registers with the half-made container: still being added. */
        CHECK_EQ(css_mtab_add_holders(m, fg, &five, 1), 0);
        CHECK(css_mtab_find(m, fg)->nholders == 1);
        CHECK_EQ(css_mtab_set_holder(m, fg, 0, CSS_HOLDER_ADDING), -EINVAL);
        CHECK_EQ(css_mtab_set_holder(m, 99, 5, CSS_HOLDER_ADDING), -ENOENT);
        css_mtab_close(m);

        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);        /* durable */
        r = css_mtab_find(m, fg);
        CHECK(r->nholders == 1 && r->nadding == 1 && r->adding[0] == 5);
        CHECK_EQ(css_mtab_set_holder(m, fg, 5, CSS_HOLDER_FULL), 1);
        r = css_mtab_find(m, fg);
        CHECK(r->nholders == 2 && r->holders[0] == 2 && r->holders[1] == 5 && r->nadding == 0);
        CHECK_EQ(css_mtab_set_holder(m, fg, 2, CSS_HOLDER_NONE), 1);
        CHECK_EQ(css_mtab_set_holder(m, fg, 2, CSS_HOLDER_NONE), 0);
        css_mtab_close(m);
        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        r = css_mtab_find(m, fg);
        CHECK(r->nholders == 1 && r->holders[0] == 5 && r->nadding == 0);
        css_mtab_close(m);
}
END_TEST

/* The primary: the lowest-id connected holder, else css_sites_holder's choice. */
START_TEST(test_sites_primary)
{
        struct css_sites *t;
        uint32_t one[] = { 1 };
        uint64_t h13[] = { 1, 3 }, h23[] = { 2, 3 };

        CHECK(css_sites_new(&t) == 0);
        CHECK(css_sites_primary(t, 1, NULL, 0) == NULL);
        CHECK(css_sites_register(t, 3, "127.0.0.3", 3000, one, 1, 13, 300) == 0);
        CHECK(css_sites_register(t, 2, "127.0.0.2", 2000, one, 1, 12, 200) == 0);
        CHECK(css_sites_register(t, 1, "127.0.0.1", 1000, one, 1, 11, 100) == 0);
        CHECK_EQ(css_sites_primary(t, 1, NULL, 0)->id, 1);     /* no holder list: every site holding it */
        CHECK_EQ(css_sites_primary(t, 1, h23, 2)->id, 2);      /* only the holders count */
        css_sites_conn_closed(t, 11);
        CHECK_EQ(css_sites_primary(t, 1, h13, 2)->id, 3);      /* site 1 down: the next holder */
        CHECK_EQ(css_sites_primary(t, 1, NULL, 0)->id, 2);
        css_sites_conn_closed(t, 12);
        css_sites_conn_closed(t, 13);
        CHECK(css_sites_primary(t, 1, h13, 2) != NULL);        /* none up: still someone to try */
        CHECK(css_sites_register(t, 1, "127.0.0.1", 1001, one, 1, 21, 400) == 0);
        CHECK_EQ(css_sites_primary(t, 1, h23, 2)->id, 3);      /* site 1 is up but not a holder: the
                                                                 * holder heard from last */
        css_sites_free(t);
}
END_TEST

/* ---- site table ------------------------------------------------------------------------ */

START_TEST(test_sites)
{
        struct css_sites *t;
        const struct css_site *s;
        uint32_t a[] = { 3, 1, 3, 2 }, b[] = { 1 };

        CHECK(css_sites_new(&t) == 0);
        CHECK(css_sites_holder(t, 1) == NULL);
        CHECK_EQ(css_sites_register(t, 0, "127.0.0.1", 1, a, 4, 1, 100), -EINVAL);
        CHECK_EQ(css_sites_register(t, 5, "127.0.0.1", 0, a, 4, 1, 100), -EINVAL);
        CHECK_EQ(css_sites_register(t, 5, "", 1, a, 4, 1, 100), -EINVAL);
        CHECK(css_sites_register(t, 5, "127.0.0.1", 4000, a, 4, 11, 100) == 0);
        s = css_sites_get(t, 5);
        CHECK(s && s->nfgs == 3 && s->fgs[0] == 1 && s->fgs[1] == 2 && s->fgs[2] == 3);
        CHECK(css_site_holds(s, 2) && !css_site_holds(s, 4));
        CHECK_EQ(css_sites_holder(t, 3)->id, 5);
        /* re-registration replaces address and file groups, keeps the first time */
        CHECK(css_sites_register(t, 5, "127.0.0.2", 4001, b, 1, 12, 200) == 0);
        s = css_sites_get(t, 5);
        CHECK(s->port == 4001 && !strcmp(s->host, "127.0.0.2") && s->nfgs == 1 && s->nregister == 2);
        CHECK(s->first_us == 100 && s->registered_us == 200 && s->conn == 12);
        CHECK(css_sites_holder(t, 3) == NULL);
        /* a second site holding fg 1: the connected one wins, then the newest contact */
        CHECK(css_sites_register(t, 2, "127.0.0.3", 4002, b, 1, 13, 300) == 0);
        CHECK_EQ(css_sites_count(t), 2);
        CHECK_EQ(css_sites_at(t, 0)->id, 2);            /* id order */
        CHECK_EQ(css_sites_holder(t, 1)->id, 2);        /* both connected: newest contact */
        css_sites_touch(t, 5, 400);
        CHECK_EQ(css_sites_holder(t, 1)->id, 5);
        css_sites_touch_conn(t, 13, 450);              /* a keep-alive on site 2's connection */
        CHECK_EQ(css_sites_get(t, 2)->contact_us, 450);
        CHECK_EQ(css_sites_holder(t, 1)->id, 2);
        css_sites_touch_conn(t, 12, 500);
        CHECK_EQ(css_sites_holder(t, 1)->id, 5);
        css_sites_conn_closed(t, 12);
        CHECK_EQ(css_sites_get(t, 5)->conn, 0);
        CHECK_EQ(css_sites_holder(t, 1)->id, 2);        /* the connected one */
        css_sites_conn_closed(t, 13);
        CHECK_EQ(css_sites_holder(t, 1)->id, 5);        /* neither: newest contact */
        /* a failure holds a site off until it is heard from again */
        s = css_sites_get(t, 2);
        CHECK(!css_site_held_off(s, 1000));
        css_sites_failed(t, 2, 2000);
        CHECK(css_site_held_off(s, 2000 + 10));
        CHECK(!css_site_held_off(s, 2000 + CSS_SITE_HOLDOFF_MS * 1000ull));
        css_sites_touch(t, 2, 2500);
        CHECK(!css_site_held_off(s, 2600));
        css_sites_failed(t, 2, 3000);
        CHECK(css_site_held_off(s, 3001));
        CHECK(css_sites_register(t, 2, "127.0.0.3", 4002, b, 1, 13, 3002) == 0);
        CHECK(!css_site_held_off(css_sites_get(t, 2), 3003));
        CHECK(css_sites_add_fg(t, 2, 9) == 0);
        CHECK(css_sites_add_fg(t, 2, 4) == 0);
        CHECK(css_sites_add_fg(t, 2, 4) == 0);
        s = css_sites_get(t, 2);
        CHECK(s->nfgs == 3 && s->fgs[0] == 1 && s->fgs[1] == 4 && s->fgs[2] == 9);
        CHECK_EQ(css_sites_add_fg(t, 77, 1), -ENOENT);
        css_sites_free(t);
}
END_TEST

/* ---- open table -------------------------------------------------------------------------- */

START_TEST(test_otab)
{
        struct css_otab *t;
        struct css_otab_stats st;
        uint32_t rd, wr;

        CHECK(css_otab_new(&t) == 0);
        /* site 1, client 10: two readers, one writer of <1,5> */
        CHECK(css_otab_open(t, 1, 10, 1, 5, false) == 0);
        CHECK(css_otab_open(t, 1, 10, 1, 5, false) == 0);
        CHECK(css_otab_open(t, 1, 10, 1, 5, true) == 0);
        /* site 2 reads the same file, and another */
        CHECK(css_otab_open(t, 2, 20, 1, 5, false) == 0);
        CHECK(css_otab_open(t, 2, 20, 2, 5, false) == 0);
        css_otab_get(t, 1, 1, 5, &rd, &wr);
        CHECK(rd == 2 && wr == 1);
        css_otab_get(t, 0, 1, 5, &rd, &wr);
        CHECK(rd == 3 && wr == 1);
        css_otab_stats(t, &st);
        CHECK(st.records == 3 && st.files == 2 && st.readers == 4 && st.writers == 1 && st.clients == 2);

        CHECK(css_otab_close(t, 1, 10, 1, 5, true) == 0);
        CHECK_EQ(css_otab_close(t, 1, 10, 1, 5, true), -ENOENT);        /* no writer left */
        CHECK_EQ(css_otab_close(t, 3, 10, 1, 5, false), -ENOENT);       /* not that site */
        /* another client of the same site (every mount is site 0) cannot
         * close what client 10 opened */
        CHECK_EQ(css_otab_close(t, 1, 11, 1, 5, false), -ENOENT);
        CHECK(css_otab_close(t, 1, 10, 1, 5, false) == 0);
        css_otab_get(t, 1, 1, 5, &rd, &wr);
        CHECK(rd == 1 && wr == 0);
        /* client 20 goes away: its opens are released */
        CHECK_EQ(css_otab_drop_client(t, 20, NULL, NULL), 2);
        CHECK_EQ(css_otab_drop_client(t, 20, NULL, NULL), 0);
        css_otab_get(t, 0, 1, 5, &rd, &wr);
        CHECK(rd == 1 && wr == 0);
        css_otab_stats(t, &st);
        CHECK(st.records == 1 && st.files == 1 && st.readers == 1 && st.writers == 0);
        CHECK(css_otab_close(t, 1, 10, 1, 5, false) == 0);
        css_otab_stats(t, &st);
        CHECK(st.records == 0 && st.files == 0);

        /* many files (the tables grow) and the per-client limit */
        for (uint32_t i = 0; i < CSS_MAX_CLIENT_OPENS; i++)
                CHECK(css_otab_open(t, 1, 30, 1, 100 + i, i & 1) == 0);
        CHECK_EQ(css_otab_open(t, 1, 30, 1, 99, false), -ENOSPC);
        CHECK(css_otab_open(t, 1, 30, 1, 100, false) == 0);     /* an existing record still counts up */
        CHECK(css_otab_open(t, 1, 31, 1, 99, false) == 0);      /* another client is fine */
        css_otab_stats(t, &st);
        CHECK_EQ(st.records, CSS_MAX_CLIENT_OPENS + 1);
        CHECK_EQ(css_otab_drop_client(t, 30, NULL, NULL), CSS_MAX_CLIENT_OPENS + 1);
        css_otab_stats(t, &st);
        CHECK_EQ(st.records, 1);
        css_otab_free(t);
}
END_TEST

static unsigned nfreed;
static uint64_t freed_ino;

static void freed_cb(void *arg, uint32_t fg, uint64_t ino)
{
        (void)arg;
        CHECK_EQ(fg, 1);
        nfreed++;
        freed_ino = ino;
}

/* The orphan decision: free at once if nobody holds the file; else at the
 * last close anywhere, or when the last holder's client is dropped. */
START_TEST(test_otab_orphans)
{
        struct css_otab *t;
        struct css_otab_stats st;

        CHECK(css_otab_new(&t) == 0);
        /* nobody holds <1,7>: free now, nothing kept */
        CHECK_EQ(css_otab_orphan_add(t, 1, 7), 1);
        CHECK(!css_otab_is_orphan(t, 1, 7));

        /* clients A (100) and B (200), both of site 0, hold <1,8>; B unlinks */
        CHECK(css_otab_open(t, 0, 100, 1, 8, true) == 0);
        CHECK(css_otab_open(t, 0, 200, 1, 8, false) == 0);
        CHECK_EQ(css_otab_orphan_add(t, 1, 8), 0);
        CHECK_EQ(css_otab_orphan_add(t, 1, 8), 0);              /* told twice: still one */
        CHECK(css_otab_is_orphan(t, 1, 8));
        /* B closes: A still holds it */
        CHECK_EQ(css_otab_close(t, 0, 200, 1, 8, false), 0);
        CHECK(css_otab_is_orphan(t, 1, 8));
        css_otab_stats(t, &st);
        CHECK_EQ(st.orphans, 1);
        /* A's last close frees it, once */
        CHECK(css_otab_open(t, 0, 100, 1, 8, false) == 0);
        CHECK_EQ(css_otab_close(t, 0, 100, 1, 8, true), 0);
        CHECK_EQ(css_otab_close(t, 0, 100, 1, 8, false), 1);
        CHECK(!css_otab_is_orphan(t, 1, 8));
        CHECK(css_otab_open(t, 0, 100, 1, 8, false) == 0);
        CHECK_EQ(css_otab_close(t, 0, 100, 1, 8, false), 0);    /* not an orphan any more */

        /* a dead client's lease runs out: its orphan is reported freed, the
         * other files it held are not */
        nfreed = 0;
        CHECK(css_otab_open(t, 0, 300, 1, 9, true) == 0);
        CHECK(css_otab_open(t, 0, 300, 1, 10, true) == 0);
        CHECK_EQ(css_otab_orphan_add(t, 1, 9), 0);
        CHECK_EQ(css_otab_drop_client(t, 300, freed_cb, NULL), 2);
        CHECK_EQ(nfreed, 1);
        CHECK_EQ(freed_ino, 9);
        css_otab_stats(t, &st);
        CHECK(st.orphans == 0 && st.records == 0);
        css_otab_free(t);
}
END_TEST

/* ---- the CSS on the wire ----------------------------------------------------------------- */

START_TEST(test_register_and_mounttable)
{
        struct tcss *t = tcss_start(state_dir("css"));
        struct lp_client *ss = cl_connect(t, 7), *ss2 = cl_connect(t, 8), *us = cl_connect(t, 3);
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp resp;
        struct css_jval *st;
        const struct css_jval *s;

        /* Before any registration: the root file group, held by nobody. */
        CHECK_EQ(call(us, &mt, &resp), 0);
        CHECK_EQ(resp.nmounts, 1);
        CHECK(resp.mounts[0].fg == 1 && !strcmp(resp.mounts[0].path, "/") && resp.mounts[0].parent_fg == 0 &&
              resp.mounts[0].parent_ino == 0);
        CHECK(resp.mounts[0].site == 0 && resp.mounts[0].port == 0);
        lp_fs_resp_release(&resp);

        CHECK_EQ(do_register(ss, 7, "127.0.0.1", 12345, "[1]"), 0);
        CHECK_EQ(call(us, &mt, &resp), 0);
        CHECK(resp.mounts[0].site == 7 && !strcmp(resp.mounts[0].host, "127.0.0.1") &&
              resp.mounts[0].port == 12345);
        lp_fs_resp_release(&resp);

        /* Re-registration (a restarted storage site, another port). */
        CHECK_EQ(do_register(ss, 7, "127.0.0.1", 12346, "[{\"fg\":1}]"), 0);
        CHECK_EQ(call(us, &mt, &resp), 0);
        CHECK(resp.mounts[0].site == 7 && resp.mounts[0].port == 12346);
        lp_fs_resp_release(&resp);

        /* A second site, no host given: the address it called from; site 0: the handshake's. */
        CHECK_EQ(do_register(ss2, 0, NULL, 2000, "{\"fgs\":[]}"), 0);
        CHECK_EQ(do_register(ss2, 9, "0.0.0.0", 2001, ""), 0);

        /* Refusals, each naming the cause. */
        CHECK_EQ(do_register(ss2, 8, "127.0.0.1", 0, "[1]"), -EINVAL);
        CHECK_EQ(do_register(ss2, 8, "example.org", 1, "[1]"), -EINVAL);
        CHECK_EQ(do_register(ss2, 8, "127.0.0.1", 70000, "[1]"), -EINVAL);
        CHECK_EQ(do_register(ss2, 8, "127.0.0.1", 1, "[1,"), -EBADMSG);
        CHECK_EQ(do_register(ss2, 8, "127.0.0.1", 1, "[\"x\"]"), -EBADMSG);

        st = get_status(us);
        CHECK_EQ(jnum(st, "site"), CSS_SITE);
        s = status_site(st, 7);
        CHECK(s && jnum(s, "port") == 12346 && jnum(s, "registrations") == 2);
        CHECK(css_json_get(s, "connected")->b);
        CHECK(css_json_get(s, "file_groups")->n == 1);
        s = status_site(st, 8);
        CHECK(s && jnum(s, "port") == 2000 && !strcmp(css_json_get(s, "host")->str, "127.0.0.1"));
        CHECK(css_json_get(s, "file_groups")->n == 0);
        s = status_site(st, 9);
        CHECK(s && !strcmp(css_json_get(s, "host")->str, "127.0.0.1"));
        CHECK_EQ(css_json_get(st, "storage_sites")->n, 3);
        CHECK_EQ(jnum(st, "clients"), 3);
        CHECK_EQ(css_json_get(st, "mounts")->n, 1);
        css_json_free(st);

        /* The registering connection goes: the site stays known, not connected. */
        lp_client_close(ss);
        for (int i = 0;; i++) {
                bool conn;

                st = get_status(us);
                conn = css_json_get(status_site(st, 7), "connected")->b;
                css_json_free(st);
                if (!conn)
                        break;
                CHECK(i < 1000);        /* the CSS sees the close within a few round trips */
                usleep(10 * 1000);
        }
        CHECK_EQ(call(us, &mt, &resp), 0);
        CHECK(resp.mounts[0].site == 7);
        lp_fs_resp_release(&resp);
        lp_client_close(ss2);
        lp_client_close(us);
        tcss_stop(t);
}
END_TEST

/* The root group's primary per the mount table. */
static uint64_t root_primary(struct lp_client *c)
{
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp resp;
        uint64_t site;

        CHECK_EQ(call(c, &mt, &resp), 0);
        CHECK(resp.nmounts >= 1 && resp.mounts[0].fg == 1);
        site = resp.mounts[0].site;
        lp_fs_resp_release(&resp);
        return site;
}

/* Wait (bounded) until the root group's primary is site; the CSS sees a
 * closed connection within a few round trips. */
static void wait_root_primary(struct lp_client *c, uint64_t site)
{
        for (int i = 0; root_primary(c) != site; i++) {
                ck_assert_msg(i < 1000, "the root group's primary never became site %" PRIu64, site);
                usleep(10 * 1000);
        }
}

/*
 * The primary is sticky (docs/replication.md, "Failover"): when it goes the
 * next holder takes over, and the old one, registered again, does not take
 * the role back from a live primary (mounts and the interim primary would
 * go on acting on the old choice, and its copy may lack the interim
 * primary's commits); only when the interim primary goes too.
 */
START_TEST(test_primary_sticky)
{
        struct tcss *t = tcss_start(state_dir("css"));
        struct lp_client *ss1 = cl_connect(t, 1), *ss2 = cl_connect(t, 2), *ss3 = cl_connect(t, 3);
        struct lp_client *us = cl_connect(t, 9);

        CHECK_EQ(do_register(ss1, 1, "127.0.0.1", 2001, "[1]"), 0);
        CHECK_EQ(do_register(ss2, 2, "127.0.0.1", 2002, "[1]"), 0);
        CHECK_EQ(do_register(ss3, 3, "127.0.0.1", 2003, "[1]"), 0);
        CHECK_EQ(root_primary(us), 1);                  /* the lowest */
        lp_client_close(ss1);                           /* site 1 dies */
        wait_root_primary(us, 2);
        ss1 = cl_connect(t, 1);                         /* it comes back */
        CHECK_EQ(do_register(ss1, 1, "127.0.0.1", 2011, "[1]"), 0);
        CHECK_EQ(root_primary(us), 2);
        CHECK_EQ(root_primary(us), 2);
        lp_client_close(ss2);                           /* the interim primary dies */
        wait_root_primary(us, 1);
        ss2 = cl_connect(t, 2);
        CHECK_EQ(do_register(ss2, 2, "127.0.0.1", 2012, "[1]"), 0);
        CHECK_EQ(root_primary(us), 1);
        lp_client_close(ss1);
        lp_client_close(ss2);
        lp_client_close(ss3);
        lp_client_close(us);
        tcss_stop(t);
}
END_TEST

static int set_holder(struct lp_client *c, uint32_t fg, uint64_t site, uint32_t state, uint64_t *ret_value)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_HOLDERS, .fg = fg, .site = site, .flags = state };
        struct lp_fs_resp resp;
        int st = call(c, &rq, &resp);

        if (ret_value)
                *ret_value = resp.value;
        lp_fs_resp_release(&resp);
        return st;
}

/* The root group's primary and its holders, "1a,2" (a: being added). */
static void root_holders(struct lp_client *c, uint64_t *ret_primary, char *buf, size_t cap)
{
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp resp;
        size_t off = 0;

        CHECK_EQ(call(c, &mt, &resp), 0);
        CHECK(resp.nmounts >= 1 && resp.mounts[0].fg == 1);
        *ret_primary = resp.mounts[0].site;
        buf[0] = 0;
        for (size_t i = 0; i < resp.mounts[0].nholders && off < cap; i++)
                off += (size_t)snprintf(buf + off, cap - off, "%s%" PRIu64 "%s", i ? "," : "",
                                        resp.mounts[0].holders[i].site, resp.mounts[0].holders[i].adding ? "a" : "");
        lp_fs_resp_release(&resp);
}

/* CSS_FG_HOLDERS (replicas add|remove): a site being added is listed as
 * such, pulls but is never the primary, even registered with the container
 * and the lowest id; only it becomes a holder; the last holder is never
 * removed; reruns change nothing; the states survive a restart. */
START_TEST(test_fg_holders)
{
        const char *dir = state_dir("css");
        struct tcss *t = tcss_start(dir);
        struct lp_client *ss1 = cl_connect(t, 1), *ss2 = cl_connect(t, 2), *us = cl_connect(t, 3);
        uint64_t primary, v = 9;
        char h[64];

        CHECK_EQ(do_register(ss2, 2, "127.0.0.1", 2002, "[1]"), 0);
        CHECK_EQ(do_register(ss1, 1, "127.0.0.1", 2001, "[]"), 0);
        root_holders(us, &primary, h, sizeof(h));
        CHECK(primary == 2 && !strcmp(h, "2"));

        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_ADDING, &v), 0);
        CHECK_EQ(v, 1);
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_ADDING, &v), 0);   /* a rerun */
        CHECK_EQ(v, 0);
        /* Site 1's storaged restarts with its half copy and registers it. */
        CHECK_EQ(do_register(ss1, 1, "127.0.0.1", 2001, "[1]"), 0);
        root_holders(us, &primary, h, sizeof(h));
        ck_assert_msg(primary == 2 && !strcmp(h, "1a,2"), "primary %" PRIu64 ", holders %s", primary, h);

        /* Refusals. */
        CHECK_EQ(set_holder(us, 1, 3, LP_FS_HOLDER_FULL, NULL), -EINVAL);     /* never added */
        CHECK_EQ(set_holder(us, 1, 9, LP_FS_HOLDER_ADDING, NULL), -EHOSTUNREACH);
        CHECK_EQ(set_holder(us, 77, 1, LP_FS_HOLDER_ADDING, NULL), -ENOENT);
        CHECK_EQ(set_holder(us, 1, 0, LP_FS_HOLDER_ADDING, NULL), -EINVAL);
        CHECK_EQ(set_holder(us, 1, 1, 0, NULL), -EINVAL);
        CHECK_EQ(set_holder(us, 1, 2, LP_FS_HOLDER_REMOVE, NULL), -EBUSY);    /* the last complete copy */

        /* The copy is complete: a holder; the live primary stays (sticky,
         * docs/replication.md "Failover"), the lower id does not take over. */
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_FULL, &v), 0);
        CHECK_EQ(v, 1);
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_ADDING, &v), 0);   /* add rerun: nothing to do */
        CHECK_EQ(v, 0);
        root_holders(us, &primary, h, sizeof(h));
        CHECK(primary == 2 && !strcmp(h, "1,2"));

        /* Remove site 1's copy: site 2 serves as before. */
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_REMOVE, &v), 0);
        CHECK_EQ(v, 1);
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_REMOVE, &v), 0);
        CHECK_EQ(v, 0);
        root_holders(us, &primary, h, sizeof(h));
        CHECK(primary == 2 && !strcmp(h, "2"));
        /* A registration does not bring it back; an add does, as being added. */
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_ADDING, &v), 0);
        CHECK_EQ(set_holder(us, 1, 2, LP_FS_HOLDER_REMOVE, NULL), -EBUSY);    /* still the last complete one */
        lp_client_close(ss1);
        lp_client_close(ss2);
        lp_client_close(us);
        tcss_stop(t);

        t = tcss_start(dir);            /* durable */
        us = cl_connect(t, 3);
        ss2 = cl_connect(t, 2);
        CHECK_EQ(do_register(ss2, 2, "127.0.0.1", 2002, "[1]"), 0);
        root_holders(us, &primary, h, sizeof(h));
        ck_assert_msg(primary == 2 && !strcmp(h, "1a,2"), "after a restart: primary %" PRIu64 ", holders %s",
                      primary, h);
        lp_client_close(ss2);
        lp_client_close(us);
        tcss_stop(t);
}
END_TEST

/* CSS_FG_SET of the root group's sync_copies. */
static int set_sync_copies(struct lp_client *c, unsigned n)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_SET, .name = (const uint8_t *)"root", .namelen = 4, .length = n };

        return call_st(c, &rq);
}

/* CSS_FG_HOLDERS refuses a removal that would leave fewer holders than the
 * group's sync_copies (every fsync would wait for a missing copy), with a
 * message that says why, and changes nothing; sites being added do not
 * count; once sync_copies is lowered the removal goes through. */
START_TEST(test_fg_holders_sync_copies)
{
        struct tcss *t = tcss_start(state_dir("css"));
        struct lp_client *ss1 = cl_connect(t, 1), *ss2 = cl_connect(t, 2), *ss3 = cl_connect(t, 3);
        struct lp_client *us = cl_connect(t, 4);
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_HOLDERS, .fg = 1, .site = 3, .flags = LP_FS_HOLDER_REMOVE };
        struct lp_fs_resp resp;
        uint64_t primary, v = 9;
        char h[64];

        CHECK_EQ(do_register(ss1, 1, "127.0.0.1", 2001, "[1]"), 0);
        CHECK_EQ(do_register(ss2, 2, "127.0.0.1", 2002, "[1]"), 0);
        CHECK_EQ(do_register(ss3, 3, "127.0.0.1", 2003, "[1]"), 0);
        root_holders(us, &primary, h, sizeof(h));
        ck_assert_msg(!strcmp(h, "1,2,3"), "holders %s", h);
        CHECK_EQ(set_sync_copies(us, 3), 0);

        CHECK_EQ(call(us, &rq, &resp), -EBUSY);
        ck_assert_msg(resp.message && strstr(resp.message, "sync_copies 3") && strstr(resp.message, "fg set root"),
                      "message: %s", resp.message ? resp.message : "(none)");
        lp_fs_resp_release(&resp);
        root_holders(us, &primary, h, sizeof(h));
        ck_assert_msg(!strcmp(h, "1,2,3"), "holders after a refused removal: %s", h);

        CHECK_EQ(set_sync_copies(us, 2), 0);
        CHECK_EQ(set_holder(us, 1, 3, LP_FS_HOLDER_REMOVE, &v), 0);
        CHECK_EQ(v, 1);
        /* Site 3 being added again does not count as a copy. */
        CHECK_EQ(set_holder(us, 1, 3, LP_FS_HOLDER_ADDING, &v), 0);
        CHECK_EQ(set_holder(us, 1, 2, LP_FS_HOLDER_REMOVE, NULL), -EBUSY);
        CHECK_EQ(set_holder(us, 1, 1, LP_FS_HOLDER_REMOVE, NULL), -EBUSY);
        root_holders(us, &primary, h, sizeof(h));
        ck_assert_msg(primary == 1 && !strcmp(h, "1,2,3a"), "holders %s", h);
        /* Removing a site being added never weakens anything. */
        CHECK_EQ(set_holder(us, 1, 3, LP_FS_HOLDER_REMOVE, &v), 0);
        CHECK_EQ(v, 1);

        CHECK_EQ(set_sync_copies(us, 1), 0);
        CHECK_EQ(set_holder(us, 1, 2, LP_FS_HOLDER_REMOVE, &v), 0);
        CHECK_EQ(v, 1);
        root_holders(us, &primary, h, sizeof(h));
        ck_assert_msg(!strcmp(h, "1"), "holders %s", h);
        lp_client_close(ss1);
        lp_client_close(ss2);
        lp_client_close(ss3);
        lp_client_close(us);
        tcss_stop(t);
}
END_TEST

/* The next frame c receives within ms: 1 if it is a LP_FS_CSS_NOTE_MTAB
 * push (its count in *count), 0 if nothing came, -1 for anything else. */
static int next_note(struct lp_client *c, int ms, uint64_t *count)
{
        uint16_t type, flags;
        uint64_t reqid;
        void *payload = NULL;
        size_t len = 0;
        struct lp_fs_req q;
        int r = lp_client_recv(c, ms, &type, &flags, &reqid, &payload, &len);

        if (r == -ETIMEDOUT)
                return 0;
        CHECK(r == 0);
        r = -1;
        if (type == LP_MSG_FS_REQ && !(flags & LP_F_REPLY) && reqid == 0 &&
            lp_fs_req_decode(payload, len, &q) == 0) {
                if (q.op == LP_FS_CSS_NOTE_MTAB) {
                        *count = q.length;
                        r = 1;
                }
                lp_fs_req_release(&q);
        }
        free(payload);
        return r;
}

/* Registered storage sites are told when the mount table, or who serves a
 * group, changes (here: a site registers, a site goes away): pushed,
 * never answered; other clients (a mount) are not. */
START_TEST(test_mtab_notes)
{
        struct tcss *t = tcss_start(state_dir("css"));
        struct lp_client *ss1 = cl_connect(t, 1), *ss2, *us = cl_connect(t, 0);
        uint64_t n1 = 0, n2 = 0;
        int r;

        CHECK_EQ(do_register(ss1, 1, "127.0.0.1", 2001, "[1]"), 0);
        CHECK_EQ(next_note(ss1, WAIT_MS, &n1), 1);      /* its own registration */
        ss2 = cl_connect(t, 2);
        CHECK_EQ(do_register(ss2, 2, "127.0.0.1", 2002, "[1]"), 0);
        CHECK_EQ(next_note(ss1, WAIT_MS, &n2), 1);      /* another site registered */
        CHECK(n2 > n1);
        CHECK_EQ(next_note(ss2, WAIT_MS, &n2), 1);
        lp_client_close(ss2);                           /* site 2 goes away */
        CHECK_EQ(next_note(ss1, WAIT_MS, &n1), 1);
        CHECK(n1 > n2 - 1);
        /* nothing else is pending for site 1, and the mount got nothing */
        CHECK_EQ(next_note(ss1, 200, &n2), 0);
        r = next_note(us, 200, &n2);
        CHECK_EQ(r, 0);
        lp_client_close(us);
        lp_client_close(ss1);
        tcss_stop(t);
}
END_TEST

static void drain_orphans(struct lp_client *c, uint64_t others);

START_TEST(test_open_close_unavailable)
{
        struct tcss *t = tcss_start(state_dir("css"));
        struct lp_client *us = cl_connect(t, 9), *ss = cl_connect(t, 7), *reg9 = cl_connect(t, 9);
        struct lp_fs_req op = { .op = LP_FS_CSS_OPEN, .fg = 1, .ino = 1, .flags = O_RDONLY };
        struct lp_fs_req cl = { .op = LP_FS_CSS_CLOSE, .fg = 1, .ino = 1, .flags = O_RDONLY };
        struct lp_fs_resp resp;
        struct css_jval *st;
        uint16_t port = dead_port();

        /* No storage site registered. */
        CHECK_EQ(call(us, &op, &resp), -EHOSTUNREACH);
        CHECK(resp.message && strstr(resp.message, "file group 1"));
        lp_fs_resp_release(&resp);
        /* Unknown file group; inode 0. */
        op.fg = 99;
        CHECK_EQ(call_st(us, &op), -ENOENT);
        op.fg = 1;
        op.ino = 0;
        CHECK_EQ(call_st(us, &op), -EINVAL);
        op.ino = 1;

        /* A registered site that does not answer: unreachable, named in the
         * message, when the open asks it (a read-only open from a mount on
         * another holder's site, 9, compares that site's copy with the
         * primary's; the other opens are answered from the table). */
        CHECK_EQ(do_register(ss, 7, "127.0.0.1", port, "[1]"), 0);
        CHECK_EQ(do_register(reg9, 9, "127.0.0.1", dead_port(), "[1]"), 0);
        CHECK_EQ(call(us, &op, &resp), -EHOSTUNREACH);
        CHECK(resp.message && strstr(resp.message, "storage site 7"));
        lp_fs_resp_release(&resp);
        /* Held off for a while: answered at once, saying so. */
        op.flags = O_RDWR;
        CHECK_EQ(call(us, &op, &resp), -EHOSTUNREACH);
        CHECK(resp.message && strstr(resp.message, "could not be reached"));
        lp_fs_resp_release(&resp);
        st = get_status(us);
        CHECK(css_json_get(status_site(st, 7), "held_off")->b);
        css_json_free(st);
        /* Heard from again (it registers): tried again. */
        CHECK_EQ(do_register(ss, 7, "127.0.0.1", port, "[1]"), 0);
        op.flags = O_RDONLY;
        CHECK_EQ(call(us, &op, &resp), -EHOSTUNREACH);
        CHECK(resp.message && strstr(resp.message, "unreachable for getattr"));
        lp_fs_resp_release(&resp);

        /* Nothing was recorded; a close of what is not open is answered and counted. */
        CHECK_EQ(call_st(us, &cl), 0);
        st = get_status(us);
        CHECK_EQ(jnum(st, "open_files"), 0);
        CHECK_EQ(jnum(css_json_get(st, "opens"), "records"), 0);
        CHECK_EQ(jnum(st, "unmatched_closes"), 1);
        css_json_free(st);
        /* Nothing stays pending: site 7's registration started the CSS's own
         * orphan sweep of it, which ends (refused) on its own time. */
        drain_orphans(us, 0);

        lp_client_close(us);
        lp_client_close(ss);
        lp_client_close(reg9);
        tcss_stop(t);
}
END_TEST

static uint64_t writers_of(struct lp_client *c)
{
        struct css_jval *st = get_status(c);
        uint64_t n = jnum(css_json_get(st, "opens"), "writers");

        css_json_free(st);
        return n;
}

/* Opens belong to a client id: they survive its reconnections, only it can
 * close them, and they go one lease after its last connection closed. */
START_TEST(test_client_leases)
{
        struct tcss *t = tcss_start_lease(state_dir("css"), 0, 3000);
        struct lp_fs_req op = { .op = LP_FS_CSS_OPENED, .fg = 1, .ino = 50, .flags = O_WRONLY };
        struct lp_fs_req cl = { .op = LP_FS_CSS_CLOSE, .fg = 1, .ino = 50, .flags = O_WRONLY };
        struct lp_fs_req orph = { .op = LP_FS_CSS_ORPHAN, .fg = 1, .ino = 50 };
        struct lp_client *tool = cl_connect(t, 0), *a, *b;
        struct lp_fs_resp resp;
        struct css_jval *st;
        uint64_t deadline;

        /* A opens, its connection breaks, it reconnects and closes */
        a = cl_connect_id(t, LP_CLIENT_ID_BIT | 0xa);
        CHECK_EQ(call(a, &op, &resp), 0);
        CHECK(resp.value != 0);                 /* the CSS's boot id */
        lp_fs_resp_release(&resp);
        lp_client_close(a);
        CHECK_EQ(writers_of(tool), 1);
        a = cl_connect_id(t, LP_CLIENT_ID_BIT | 0xa);
        CHECK_EQ(call_st(a, &cl), 0);
        CHECK_EQ(writers_of(tool), 0);

        /* another mount of the same site cannot close A's open */
        CHECK_EQ(call_st(a, &op), 0);
        b = cl_connect_id(t, LP_CLIENT_ID_BIT | 0xb);
        CHECK_EQ(call_st(b, &cl), 0);           /* answered, matches nothing */
        CHECK_EQ(writers_of(tool), 1);
        st = get_status(tool);
        CHECK_EQ(jnum(st, "unmatched_closes"), 1);
        CHECK_EQ(jnum(st, "leased_clients"), 2);
        css_json_free(st);

        /* B reports the file orphaned: A holds it, and the CSS is in its
         * reclaim window anyway: nothing is freed */
        CHECK_EQ(call_st(b, &orph), 0);
        st = get_status(tool);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "freed"), 0);
        css_json_free(st);

        /* A dies: its open goes after the lease, not before */
        lp_client_close(a);
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        while (writers_of(tool) != 0)
                CHECK(cm_now_us() < deadline);
        st = get_status(tool);
        CHECK_EQ(jnum(st, "clients_expired"), 1);
        CHECK_EQ(jnum(st, "leased_clients"), 1);
        css_json_free(st);

        /* a peer without a client id is released when its connection closes */
        {
                struct lp_client *c = cl_connect(t, 0);

                CHECK_EQ(call_st(c, &op), 0);
                CHECK_EQ(writers_of(tool), 1);
                lp_client_close(c);
                deadline = cm_now_us() + WAIT_MS * 1000ull;
                while (writers_of(tool) != 0)
                        CHECK(cm_now_us() < deadline);
                st = get_status(tool);
                CHECK_EQ(jnum(st, "clients_expired"), 1);
                css_json_free(st);
        }
        lp_client_close(b);
        lp_client_close(tool);
        tcss_stop(t);
}
END_TEST

/* Send raw bytes as one FS request frame and read the answer frame. */
static void raw_call(struct lp_client *c, uint16_t type, const void *p, size_t len, uint16_t *ret_type,
                     struct lp_fs_resp *resp, int *ret_status)
{
        void *payload;
        size_t plen;

        CHECK(lp_client_call(c, type, p, len, WAIT_MS, ret_type, &payload, &plen) == 0);
        if (*ret_type == LP_MSG_FS_RESP) {
                CHECK(lp_fs_resp_decode(payload, plen, resp) == 0);
                *ret_status = resp->status;
        } else {
                int code;

                CHECK_EQ(*ret_type, LP_MSG_STATUS);
                CHECK(lp_status_unpack(payload, plen, &code, NULL) == 0);
                *ret_status = lp_status_to_errno(code);
                memset(resp, 0, sizeof(*resp));
        }
        free(payload);
}

START_TEST(test_malformed)
{
        struct tcss *t = tcss_start(state_dir("css"));
        struct lp_client *bad = cl_connect(t, 4), *good = cl_connect(t, 3);
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_req lookup = { .op = LP_FS_LOOKUP, .fg = 1, .parent = 1 };
        const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34 };
        struct lp_fs_resp resp;
        struct css_jval *st;
        uint16_t type;
        int status;
        int fd;

        for (int round = 0; round < 3; round++) {
                raw_call(bad, LP_MSG_FS_REQ, garbage, sizeof(garbage), &type, &resp, &status);
                CHECK_EQ(type, LP_MSG_FS_RESP);
                CHECK_EQ(status, -EBADMSG);
                CHECK(resp.message && strstr(resp.message, "malformed"));
                lp_fs_resp_release(&resp);
                /* the other client is served in between */
                CHECK_EQ(call_st(good, &mt), 0);
        }
        /* An operation the CSS does not serve. */
        CHECK_EQ(call_st(bad, &lookup), -EOPNOTSUPP);
        /* Another message type. */
        raw_call(bad, LP_MSG_USER_MIN + 20, "x", 1, &type, &resp, &status);
        CHECK_EQ(type, LP_MSG_STATUS);
        CHECK_EQ(status, -EOPNOTSUPP);
        /* An empty request is a well-formed NOP (op 0): the keep-alive, answered 0. */
        raw_call(bad, LP_MSG_FS_REQ, NULL, 0, &type, &resp, &status);
        CHECK_EQ(type, LP_MSG_FS_RESP);
        CHECK_EQ(status, 0);
        lp_fs_resp_release(&resp);
        /* The malformed requests did not cost the connection. */
        CHECK_EQ(call_st(bad, &mt), 0);

        /* A peer that is not even speaking the protocol: only its connection goes. */
        {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(t->port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                char junk[64];

                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                CHECK(fd >= 0);
                CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
                memset(junk, 'G', sizeof(junk));
                CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
        }
        CHECK_EQ(call_st(good, &mt), 0);
        CHECK_EQ(call_st(bad, &mt), 0);
        close(fd);

        st = get_status(good);
        CHECK_EQ(jnum(st, "clients"), 2);
        css_json_free(st);
        lp_client_close(bad);
        lp_client_close(good);
        tcss_stop(t);
}
END_TEST

START_TEST(test_restart_keeps_mounts)
{
        char *dir = state_dir("css");
        struct tcss *t = tcss_start(dir);
        struct lp_client *c = cl_connect(t, 3);
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp resp;
        struct css_mtab *m;
        char err[256];
        uint32_t fg;

        CHECK_EQ(call(c, &mt, &resp), 0);
        CHECK_EQ(resp.nmounts, 1);
        lp_fs_resp_release(&resp);
        lp_client_close(c);
        tcss_stop(t);

        /* While it is down, the table gains a mount (as CSS_FG_CREATE records it). */
        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK(css_mtab_add(m, fg, "home", 1, 1099511627778ull, "/home") == 0);
        css_mtab_close(m);

        t = tcss_start(dir);
        c = cl_connect(t, 3);
        CHECK_EQ(call(c, &mt, &resp), 0);
        CHECK_EQ(resp.nmounts, 2);
        CHECK(resp.mounts[1].fg == 2 && !strcmp(resp.mounts[1].name, "home") &&
              !strcmp(resp.mounts[1].path, "/home") && resp.mounts[1].parent_fg == 1 &&
              resp.mounts[1].parent_ino == 1099511627778ull && resp.mounts[1].site == 0);
        lp_fs_resp_release(&resp);
        /* The site table is not persisted: it is relearnt from registrations. */
        {
                struct css_jval *st = get_status(c);

                CHECK_EQ(css_json_get(st, "storage_sites")->n, 0);
                css_json_free(st);
        }
        lp_client_close(c);
        tcss_stop(t);
}
END_TEST

START_TEST(test_fg_create_refusals)
{
        char *dir = state_dir("css");
        struct css_mtab *m;
        char err[256];
        uint32_t fg;
        struct tcss *t;
        struct lp_client *c;
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_CREATE };
        struct lp_fs_resp resp;

        mkdir(dir, 0700);
        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK(css_mtab_add(m, fg, "home", 1, 5, "/home") == 0);
        css_mtab_close(m);
        t = tcss_start(dir);
        c = cl_connect(t, 3);

#define TRY(nm, p, want) \
        do { \
                rq.name = (const uint8_t *)(nm); \
                rq.namelen = rq.name ? strlen((const char *)rq.name) : 0; \
                rq.path = (p); \
                CHECK_EQ(call(c, &rq, &resp), want); \
                CHECK(resp.message && *resp.message); \
                lp_fs_resp_release(&resp); \
        } while (0)
        TRY(NULL, "/x", -EINVAL);
        TRY("bad name", "/x", -EINVAL);
        TRY(".x", "/x", -EINVAL);
        TRY("x", NULL, -EINVAL);
        TRY("x", "x", -EINVAL);
        TRY("x", "/a/../x", -EINVAL);
        TRY("x", "/", -EEXIST);
        TRY("x", "//", -EEXIST);
        TRY("home", "/x", -EEXIST);             /* name taken */
        TRY("x", "/home/", -EEXIST);            /* mount point taken */
        TRY("x", "/x", -EHOSTUNREACH);          /* nobody holds the root file group */
#undef TRY
        /* Nothing was reserved for the refusals. */
        lp_client_close(c);
        tcss_stop(t);
        CHECK(css_mtab_open(dir, &m, err, sizeof(err)) == 0);
        CHECK(css_mtab_reserve_fg(m, &fg) == 0);
        CHECK_EQ(fg, 3);
        CHECK_EQ(css_mtab_count(m), 2);
        css_mtab_close(m);
}
END_TEST

/* A TCP listener on 127.0.0.1 that never accepts: a peer that is there but
 * never answers (connections wait in its backlog until they time out). */
static int blackhole(uint16_t *ret_port)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
        CHECK(listen(fd, 1) == 0);
        CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
        *ret_port = ntohs(a.sin_port);
        return fd;
}

/* Send without waiting; the answers are read with recv_answer(). */
static void send_req(struct lp_client *c, uint64_t reqid, const struct lp_fs_req *rq)
{
        uint8_t *buf;
        size_t len;

        CHECK(lp_fs_req_encode(rq, &buf, &len) == 0);
        CHECK(lp_client_send(c, LP_MSG_FS_REQ, 0, reqid, buf, len) == 0);
        free(buf);
}

static int recv_answer(struct lp_client *c, uint64_t *ret_reqid)
{
        uint16_t type, flags;
        void *payload;
        size_t plen;
        struct lp_fs_resp resp;
        int st;

        CHECK(lp_client_recv(c, 30000, &type, &flags, ret_reqid, &payload, &plen) == 0);
        CHECK_EQ(type, LP_MSG_FS_RESP);
        CHECK(flags & LP_F_REPLY);
        CHECK(lp_fs_resp_decode(payload, plen, &resp) == 0);
        free(payload);
        st = resp.status;
        lp_fs_resp_release(&resp);
        return st;
}

START_TEST(test_limits_and_order)
{
        struct tcss *t = tcss_start_ms(state_dir("css"), 250);
        struct lp_client *us = cl_connect(t, 9), *ss = cl_connect(t, 7), *other = cl_connect(t, 5);
        struct lp_client *reg9 = cl_connect(t, 9);
        struct lp_fs_req op = { .op = LP_FS_CSS_OPEN, .fg = 1, .ino = 1, .flags = O_RDONLY };
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        enum { NOPEN = CSS_MAX_CLIENT_JOBS + 6, NFG = CSS_MAX_FG_QUEUE + 4 };
        bool seen[NOPEN + NFG + 1] = { false };
        int again = 0, unreach = 0;
        uint16_t port;
        int hole = blackhole(&port);
        struct css_jval *st;

        CHECK_EQ(do_register(ss, 7, "127.0.0.1", port, "[1]"), 0);
        /* us is a mount on another holder's site (registered by reg9): its
         * read-only opens compare that copy with the primary's, i.e. wait
         * for site 7. */
        CHECK_EQ(do_register(reg9, 9, "127.0.0.1", dead_port(), "[1]"), 0);
        /* More opens at once than one connection may have waiting: the rest are
         * refused at once, every one is answered exactly once. */
        for (uint64_t i = 1; i <= NOPEN; i++)
                send_req(us, i, &op);
        /* Meanwhile another connection is served without waiting for them. */
        CHECK_EQ(call_st(other, &mt), 0);
        for (int i = 0; i < NOPEN; i++) {
                uint64_t id;
                int r = recv_answer(us, &id);

                CHECK(id >= 1 && id <= NOPEN && !seen[id]);
                seen[id] = true;
                if (r == -EAGAIN)
                        again++;
                else if (r == -EHOSTUNREACH)
                        unreach++;
                else
                        ck_abort_msg("open answered %d", r);
        }
        CHECK_EQ(again, NOPEN - CSS_MAX_CLIENT_JOBS);
        CHECK_EQ(unreach, CSS_MAX_CLIENT_JOBS);

        /* File group creations: one at a time, CSS_MAX_FG_QUEUE waiting, in order. */
        again = unreach = 0;
        for (uint64_t i = 1; i <= NFG; i++) {
                struct lp_fs_req fc = { .op = LP_FS_CSS_FG_CREATE, .path = "/x" };
                char name[16];

                snprintf(name, sizeof(name), "g%u", (unsigned)i);
                fc.name = (const uint8_t *)name;
                fc.namelen = strlen(name);
                send_req(us, NOPEN + i, &fc);
        }
        {
                uint64_t last = 0;

                for (int i = 0; i < NFG; i++) {
                        uint64_t id;
                        int r = recv_answer(us, &id);

                        CHECK(id > NOPEN && id <= NOPEN + NFG && !seen[id]);
                        seen[id] = true;
                        if (r == -EAGAIN) {
                                again++;
                                continue;
                        }
                        CHECK_EQ(r, -EHOSTUNREACH);
                        CHECK(id > last);       /* creations are answered in arrival order */
                        last = id;
                        unreach++;
                }
        }
        /* the first starts at once, CSS_MAX_FG_QUEUE wait, the rest are refused */
        CHECK_EQ(unreach, CSS_MAX_FG_QUEUE + 1);
        CHECK_EQ(again, NFG - CSS_MAX_FG_QUEUE - 1);
        st = get_status(us);
        CHECK_EQ(jnum(st, "pending_requests"), 0);
        CHECK_EQ(jnum(st, "pending_fg_creates"), 0);
        CHECK_EQ(jnum(st, "open_files"), 0);
        css_json_free(st);
        lp_client_close(us);
        lp_client_close(ss);
        lp_client_close(reg9);
        lp_client_close(other);
        tcss_stop(t);
        close(hole);
}
END_TEST

/* Requesters that go away, and a shutdown, while requests wait for a
 * storage site that does not answer: nothing is answered to the departed,
 * nothing leaks, the CSS stops once its calls have timed out. */
START_TEST(test_departures_and_shutdown)
{
        struct tcss *t = tcss_start_ms(state_dir("css"), 300);
        struct lp_client *us = cl_connect(t, 3), *ss = cl_connect(t, 7), *us2;
        struct lp_fs_req op = { .op = LP_FS_CSS_OPEN, .fg = 1, .ino = 1, .flags = O_RDWR };
        struct lp_fs_req fc = { .op = LP_FS_CSS_FG_CREATE, .path = "/x" };
        uint16_t port;
        int hole = blackhole(&port);

        CHECK_EQ(do_register(ss, 7, "127.0.0.1", port, "[1]"), 0);
        fc.name = (const uint8_t *)"a";
        fc.namelen = 1;
        for (uint64_t i = 1; i <= 8; i++)
                send_req(us, i, &op);
        for (uint64_t i = 10; i <= 13; i++)
                send_req(us, i, &fc);                   /* one running, three queued */
        /* make sure the CSS has them all before the connection goes */
        CHECK_EQ(call_st(us, &(struct lp_fs_req){ .op = LP_FS_NOP }), 0);
        lp_client_close(us);

        /* A second requester, still there when the CSS shuts down. */
        us2 = cl_connect(t, 4);
        for (uint64_t i = 1; i <= 4; i++)
                send_req(us2, i, &op);
        send_req(us2, 20, &fc);
        CHECK_EQ(call_st(us2, &(struct lp_fs_req){ .op = LP_FS_NOP }), 0);
        tcss_stop(t);                                   /* returns once the loop is empty */
        lp_client_close(us2);
        lp_client_close(ss);
        close(hole);
}
END_TEST

/* Poll the CSS status until orphans.deferred and pending_requests are both
 * 0, checking on every poll that at most CSS_MAX_FORGETS FORGET_ORPHAN
 * jobs (plus `others` other requests) wait for the storage site. */
static void drain_orphans(struct lp_client *c, uint64_t others)
{
        uint64_t deadline = cm_now_us() + WAIT_MS * 1000ull * 6;

        for (;;) {
                struct css_jval *st = get_status(c);
                uint64_t pending = jnum(st, "pending_requests");
                uint64_t deferred = jnum(css_json_get(st, "orphans"), "deferred");

                css_json_free(st);
                CHECK(pending <= CSS_MAX_FORGETS + others);
                if (!pending && !deferred)
                        return;
                if (cm_now_us() > deadline)
                        ck_abort_msg("orphans did not drain: %llu deferred, %llu requests pending",
                                     (unsigned long long)deferred, (unsigned long long)pending);
                usleep(20000);          /* polling a condition, bounded by the deadline */
        }
}

/* A storage site that accepts every connection and never says a word,
 * until silent_site_leave() closes them all and stops listening: then
 * every call to it fails at once. */
struct silent_site {
        int lfd;
        uint16_t port;
        pthread_t thr;
        pthread_mutex_t mu;
        int fds[1024];
        size_t n;
};

static void *silent_accept(void *arg)
{
        struct silent_site *h = arg;

        for (;;) {
                int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return NULL;            /* shut down */
                }
                pthread_mutex_lock(&h->mu);
                if (h->n < sizeof(h->fds) / sizeof(h->fds[0]))
                        h->fds[h->n++] = fd;
                else
                        close(fd);
                pthread_mutex_unlock(&h->mu);
        }
}

static void silent_site_start(struct silent_site *h)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        memset(h, 0, sizeof(*h));
        h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(h->lfd >= 0);
        CHECK(bind(h->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
        CHECK(listen(h->lfd, 64) == 0);
        CHECK(getsockname(h->lfd, (struct sockaddr *)&a, &len) == 0);
        h->port = ntohs(a.sin_port);
        pthread_mutex_init(&h->mu, NULL);
        CHECK(pthread_create(&h->thr, NULL, silent_accept, h) == 0);
}

static void silent_site_leave(struct silent_site *h)
{
        CHECK(shutdown(h->lfd, SHUT_RDWR) == 0);        /* wakes accept4 */
        CHECK(pthread_join(h->thr, NULL) == 0);
        close(h->lfd);
        for (size_t i = 0; i < h->n; i++)
                close(h->fds[i]);
        h->n = 0;
}

/*
 * Issue #7 (the model test's late find): orphans reported during the
 * reclaim window wait on the deferred list; when the window ends, at most
 * CSS_MAX_FORGETS FORGET_ORPHAN jobs run at once and the rest stay
 * deferred, each taking a slot as one ends.  Before, the end of the window
 * started a job per orphan at once: more than CSS_MAX_JOBS orphans filled
 * the job table and CSS_OPEN answered EAGAIN until they drained.  The
 * storage site here accepts connections and never answers, so FORGET
 * jobs stay in flight until it goes away; then every one fails at once and
 * the list drains through the bounded slots.
 */
START_TEST(test_orphans_bounded)
{
        struct tcss *t = tcss_start_calls(state_dir("css"), 60000, 60000, 2000);
        struct lp_client *tool = cl_connect(t, 0), *ss = cl_connect(t, 7);
        struct lp_client *us = cl_connect_id(t, LP_CLIENT_ID_BIT | 0xd);
        struct lp_fs_req op = { .op = LP_FS_CSS_OPEN, .fg = 1, .ino = 1, .flags = O_RDONLY };
        enum { NORPH = CSS_MAX_JOBS + 76 };
        uint64_t deadline, id;
        struct css_jval *st;
        struct silent_site site;

        silent_site_start(&site);
        CHECK_EQ(do_register(ss, 7, "127.0.0.1", site.port, "[1]"), 0); /* its SS_ORPHANS waits */
        for (uint64_t i = 0; i < NORPH; i++)
                send_req(us, i + 1, &(struct lp_fs_req){ .op = LP_FS_CSS_ORPHAN, .fg = 1, .ino = 100 + i });
        for (uint64_t i = 0; i < NORPH; i++)
                CHECK_EQ(recv_answer(us, &id), 0);
        st = get_status(tool);
        CHECK(jnum(st, "uptime_ms") < CSS_RECLAIM_MIN_MS);     /* else the case proves nothing */
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "deferred"), NORPH);
        CHECK_EQ(jnum(st, "pending_requests"), 1);
        css_json_free(st);

        /* The window ends: CSS_MAX_FORGETS jobs start, the rest wait. */
        deadline = cm_now_us() + (CSS_RECLAIM_MIN_MS + WAIT_MS) * 1000ull;
        for (;;) {
                st = get_status(tool);
                if (jnum(css_json_get(st, "orphans"), "deferred") < NORPH)
                        break;
                css_json_free(st);
                CHECK(cm_now_us() < deadline);
                usleep(20000);          /* polling a condition, bounded by the deadline */
        }
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "deferred"), NORPH - CSS_MAX_FORGETS);
        CHECK_EQ(jnum(st, "pending_requests"), CSS_MAX_FORGETS + 1);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "not_freed"), 0);
        css_json_free(st);

        /* An open is not turned away: the primary serves it, so it is
         * answered from the table at once, jobs or not (no EAGAIN). */
        send_req(us, NORPH + 1, &op);
        send_req(us, NORPH + 2, &(struct lp_fs_req){ .op = LP_FS_CSS_STATUS });
        CHECK_EQ(recv_answer(us, &id), 0);
        CHECK_EQ(id, NORPH + 1);
        CHECK_EQ(recv_answer(us, &id), 0);
        CHECK_EQ(id, NORPH + 2);

        /* The storage site goes away: every FORGET fails, slot by slot. */
        silent_site_leave(&site);
        drain_orphans(tool, 2);
        st = get_status(tool);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "not_freed"), NORPH);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "freed"), 0);
        css_json_free(st);
        lp_client_close(us);
        lp_client_close(ss);
        lp_client_close(tool);
        tcss_stop(t);
}
END_TEST

/* ---- end to end with the real storage daemon ----------------------------------------------- */

static char storaged_bin[PATH_MAX];

static bool find_storaged(void)
{
        const char *env = getenv("LOCUS_STORAGED");
        char self[PATH_MAX];
        ssize_t n;
        char *slash;

        if (env && *env) {
                snprintf(storaged_bin, sizeof(storaged_bin), "%s", env);
                return access(storaged_bin, X_OK) == 0;
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
                return false;
        self[n] = 0;
        slash = strrchr(self, '/');
        if (!slash)
                return false;
        *slash = 0;
        snprintf(storaged_bin, sizeof(storaged_bin), "%.3800s/../../storage/locus-storaged", self);
        return access(storaged_bin, X_OK) == 0;
}

struct tss {
        pid_t pid;
        uint16_t port;
        char data[PATH_MAX];
        char log[PATH_MAX];
};

static void tss_dump_log(const struct tss *s)
{
        char buf[4096];
        int fd = open(s->log, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                (void)!write(STDERR_FILENO, buf, (size_t)n);
        close(fd);
}

/* Start locus-storaged (site 1) registered with the CSS on css_port. */
static void tss_start(struct tss *s, const char *dir, const char *keyfile, uint16_t css_port)
{
        char cssarg[64], info[128];
        int p[2];

        snprintf(s->data, sizeof(s->data), "%s/data", dir);
        snprintf(s->log, sizeof(s->log), "%s/storaged.log", dir);
        snprintf(cssarg, sizeof(cssarg), "127.0.0.1:%u", css_port);
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        s->pid = fork();
        CHECK(s->pid >= 0);
        if (s->pid == 0) {
                int log = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

                if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 || dup2(p[1], 3) < 0)
                        _exit(127);
                signal(SIGPIPE, SIG_DFL);
                execl(storaged_bin, "locus-storaged", "--data", s->data, "--key", keyfile, "--site", "1", "--create-root",
                      "--listen", "127.0.0.1:0", "--ready-fd", "3", "--css", cssarg, "--log-level", "debug",
                      (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        if (cm_wait_ready(p[0], WAIT_MS * 3, info, sizeof(info)) < 0) {
                tss_dump_log(s);
                ck_abort_msg("locus-storaged did not get ready (log above)");
        }
        close(p[0]);
        CHECK(sscanf(info, "port=%hu", &s->port) == 1);
}

static void tss_stop(struct tss *s)
{
        int st;

        if (s->pid <= 0)
                return;
        kill(s->pid, SIGTERM);
        CHECK(waitpid(s->pid, &st, 0) == s->pid);
        s->pid = 0;
}

/* Wait until the storage site listening on port has registered holding fg. */
static void wait_registered(struct lp_client *c, uint32_t fg, uint16_t port)
{
        uint64_t deadline = cm_now_us() + WAIT_MS * 1000ull;

        for (;;) {
                struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
                struct lp_fs_resp resp;
                bool ok = false;

                CHECK_EQ(call(c, &mt, &resp), 0);
                for (size_t i = 0; i < resp.nmounts; i++)
                        if (resp.mounts[i].fg == fg && resp.mounts[i].site && resp.mounts[i].port == port)
                                ok = true;
                lp_fs_resp_release(&resp);
                if (ok)
                        return;
                if (cm_now_us() > deadline)
                        ck_abort_msg("the storage site did not register within %d ms", WAIT_MS);
                usleep(5000);           /* polling a condition, bounded by the deadline */
        }
}

static struct lp_client *ss_connect(const struct tss *s, const uint8_t *key)
{
        struct lp_client *c;

        CHECK(lp_client_connect("127.0.0.1", s->port, key, 3, WAIT_MS, &c) == 0);
        return c;
}

static int fg_create(struct lp_client *c, const char *name, const char *path, uint64_t *ret_fg, char *msg,
                     size_t cap)
{
        struct lp_fs_req rq = { .op = LP_FS_CSS_FG_CREATE, .path = path, .cred.umask = 022 };
        struct lp_fs_resp resp;
        int st;

        rq.name = (const uint8_t *)name;
        rq.namelen = strlen(name);
        st = call(c, &rq, &resp);
        if (ret_fg)
                *ret_fg = resp.value;
        if (msg)
                snprintf(msg, cap, "%s", resp.message ? resp.message : "");
        lp_fs_resp_release(&resp);
        return st;
}

static int ss_lookup(struct lp_client *c, uint32_t fg, uint64_t parent, const char *name, struct lp_fs_attr *ret)
{
        struct lp_fs_req rq = { .op = LP_FS_LOOKUP, .fg = fg, .parent = parent };
        struct lp_fs_resp resp;
        int st;

        rq.name = (const uint8_t *)name;
        rq.namelen = strlen(name);
        st = call(c, &rq, &resp);
        if (!st && ret)
                *ret = resp.attr;
        lp_fs_resp_release(&resp);
        return st;
}

START_TEST(test_e2e_open_and_fg_create)
{
        const char *dir = tu_tmpdir();
        char keyfile[PATH_MAX], msg[1024];
        uint8_t key[LP_KEY_SIZE];
        struct tcss *t;
        struct tss s = { 0 };
        struct lp_client *us, *ssc;
        struct lp_fs_req op = { .op = LP_FS_CSS_OPEN, .fg = 1, .ino = 1, .flags = O_RDONLY };
        struct lp_fs_req cl = { .op = LP_FS_CSS_CLOSE, .fg = 1, .ino = 1, .flags = O_RDONLY };
        struct lp_fs_req mt = { .op = LP_FS_CSS_MOUNTTABLE };
        struct lp_fs_resp resp;
        struct lp_fs_attr a;
        struct css_jval *st;
        uint64_t fg, nreg;

        snprintf(keyfile, sizeof(keyfile), "%s/cluster.key", dir);
        CHECK(lp_key_generate(keyfile) == 0);
        CHECK(lp_key_load(keyfile, key) == 0);
        {
                char sdir[PATH_MAX];

                snprintf(sdir, sizeof(sdir), "%s/css", dir);
                mkdir(sdir, 0700);
                t = calloc(1, sizeof(*t));
                snprintf(t->state, sizeof(t->state), "%s", sdir);
                memcpy(t->key, key, LP_KEY_SIZE);
                pthread_mutex_init(&t->mu, NULL);
                pthread_cond_init(&t->cv, NULL);
                CHECK(pthread_create(&t->thr, NULL, loop_main, t) == 0);
                pthread_mutex_lock(&t->mu);
                while (!t->ready)
                        pthread_cond_wait(&t->cv, &t->mu);
                pthread_mutex_unlock(&t->mu);
                CHECK(t->err == 0);
        }
        tss_start(&s, dir, keyfile, t->port);
        us = cl_connect(t, 3);
        wait_registered(us, 1, s.port);

        /* CSS_OPEN: the storage site and the file's version, recorded until close. */
        CHECK_EQ(call(us, &op, &resp), 0);
        CHECK_EQ(resp.site, 1);
        CHECK_EQ(resp.port, s.port);
        CHECK(resp.host && !strcmp(resp.host, "127.0.0.1"));
        lp_fs_resp_release(&resp);
        op.flags = O_WRONLY;
        CHECK_EQ(call_st(us, &op), 0);
        st = get_status(us);
        CHECK_EQ(jnum(st, "open_files"), 1);
        CHECK_EQ(jnum(css_json_get(st, "opens"), "readers"), 1);
        CHECK_EQ(jnum(css_json_get(st, "opens"), "writers"), 1);
        css_json_free(st);
        CHECK_EQ(call_st(us, &cl), 0);
        cl.flags = O_WRONLY;
        CHECK_EQ(call_st(us, &cl), 0);
        st = get_status(us);
        CHECK_EQ(jnum(st, "open_files"), 0);
        CHECK_EQ(jnum(st, "unmatched_closes"), 0);
        css_json_free(st);
        /* A file the storage site does not have: the CSS does not ask the
         * storage site when the primary serves the open (the mount's OPEN
         * there answers ENOENT); the open is recorded, and closed. */
        op.ino = 123456789;
        op.flags = O_RDONLY;
        CHECK_EQ(call_st(us, &op), 0);
        cl.ino = 123456789;
        cl.flags = O_RDONLY;
        CHECK_EQ(call_st(us, &cl), 0);
        cl.ino = 1;
        op.ino = 1;

        /* CSS_FG_CREATE: the directory is made, the container created, the mount recorded. */
        CHECK_EQ(fg_create(us, "home", "/home", &fg, msg, sizeof(msg)), 0);
        CHECK_EQ(fg, 2);
        ssc = ss_connect(&s, key);
        CHECK_EQ(ss_lookup(ssc, 1, 1, "home", &a), 0);
        CHECK(S_ISDIR(a.mode));
        CHECK_EQ(call(us, &mt, &resp), 0);
        CHECK_EQ(resp.nmounts, 2);
        CHECK(resp.mounts[1].fg == 2 && !strcmp(resp.mounts[1].path, "/home") && resp.mounts[1].parent_fg == 1 &&
              resp.mounts[1].parent_ino == a.ino && resp.mounts[1].site == 1 && resp.mounts[1].port == s.port);
        lp_fs_resp_release(&resp);
        /* the new file group serves: its root through CSS_OPEN */
        op.fg = 2;
        op.flags = O_RDONLY;
        CHECK_EQ(call_st(us, &op), 0);
        CHECK_EQ(call_st(ssc, &(struct lp_fs_req){ .op = LP_FS_GETATTR, .fg = 2, .ino = 1 }), 0);

        /* Below a mount point: the path crosses into file group 2. */
        CHECK_EQ(fg_create(us, "proj", "/home/proj", &fg, msg, sizeof(msg)), 0);
        CHECK_EQ(fg, 3);
        CHECK_EQ(ss_lookup(ssc, 2, 1, "proj", &a), 0);
        CHECK_EQ(call(us, &mt, &resp), 0);
        CHECK(resp.nmounts == 3 && resp.mounts[2].parent_fg == 2 && resp.mounts[2].parent_ino == a.ino);
        lp_fs_resp_release(&resp);

        /* Refusals that need the storage site. */
        CHECK_EQ(fg_create(us, "x", "/home/proj", NULL, msg, sizeof(msg)), -EEXIST);
        CHECK_EQ(fg_create(us, "x", "/nonexistent/x", NULL, msg, sizeof(msg)), -ENOENT);
        CHECK(strstr(msg, "/nonexistent"));
        {
                /* an existing, non-empty directory; a file */
                struct lp_fs_req mk = { .op = LP_FS_MKDIR, .fg = 1, .parent = 1, .mode = S_IFDIR | 0755 };
                struct lp_fs_req cr = { .op = LP_FS_CREATE, .fg = 1, .mode = S_IFREG | 0644, .flags = O_RDONLY };

                mk.name = (const uint8_t *)"full";
                mk.namelen = 4;
                CHECK_EQ(call(ssc, &mk, &resp), 0);
                cr.parent = resp.attr.ino;
                lp_fs_resp_release(&resp);
                cr.name = (const uint8_t *)"f";
                cr.namelen = 1;
                CHECK_EQ(call_st(ssc, &cr), 0);
                cr.parent = 1;
                cr.name = (const uint8_t *)"file";
                cr.namelen = 4;
                CHECK_EQ(call_st(ssc, &cr), 0);
        }
        CHECK_EQ(fg_create(us, "x", "/full", NULL, msg, sizeof(msg)), -ENOTEMPTY);
        CHECK(strstr(msg, "/full"));
        CHECK_EQ(fg_create(us, "x", "/file", NULL, msg, sizeof(msg)), -ENOTDIR);
        CHECK_EQ(fg_create(us, "x", "/file/y", NULL, msg, sizeof(msg)), -ENOTDIR);
        /* refusals did not use up ids */
        CHECK_EQ(fg_create(us, "data", "/data", &fg, msg, sizeof(msg)), 0);
        CHECK_EQ(fg, 4);

        /* The storage site goes away: unreachable, and the message says which. */
        st = get_status(us);
        nreg = jnum(status_site(st, 1), "registrations");
        CHECK(css_json_get(status_site(st, 1), "connected")->b);
        css_json_free(st);
        lp_client_close(ssc);
        tss_stop(&s);
        op.fg = 1;
        CHECK_EQ(call(us, &op, &resp), -EHOSTUNREACH);
        CHECK(resp.message && strstr(resp.message, "storage site 1"));
        lp_fs_resp_release(&resp);
        CHECK_EQ(fg_create(us, "late", "/late", NULL, msg, sizeof(msg)), -EHOSTUNREACH);

        /* It comes back (same data): it registers again, with every file group. */
        tss_start(&s, dir, keyfile, t->port);
        wait_registered(us, 4, s.port);
        CHECK_EQ(call_st(us, &op), 0);
        op.fg = 3;
        CHECK_EQ(call_st(us, &op), 0);
        st = get_status(us);
        CHECK(jnum(status_site(st, 1), "registrations") > nreg);
        CHECK(css_json_get(status_site(st, 1), "connected")->b);
        css_json_free(st);

        lp_client_close(us);
        tss_stop(&s);
        tcss_stop(t);
}
END_TEST

/* Poll the CSS status until orphans.<key> reaches at least want. */
static void wait_orphans(struct lp_client *c, const char *key, uint64_t want)
{
        uint64_t deadline = cm_now_us() + WAIT_MS * 1000ull * 4;

        for (;;) {
                struct css_jval *st = get_status(c);
                uint64_t v = jnum(css_json_get(st, "orphans"), key);

                css_json_free(st);
                if (v >= want)
                        return;
                if (cm_now_us() > deadline)
                        ck_abort_msg("orphans.%s did not reach %llu", key, (unsigned long long)want);
                usleep(5000);           /* polling a condition, bounded by the deadline */
        }
}

/*
 * A CREATE opens the file at the storage site before the mount can record
 * the open at the CSS (CSS_OPENED follows the answer).  An unlink in
 * between makes it an orphan the CSS sees nobody holding: the storage site
 * must refuse to free it while the write session is open (EBUSY), and the
 * CSS decide again, keep it once the open is recorded, and free it at the
 * last close.  Before, FORGET_ORPHAN ended the session: the descriptor's
 * next write answered ESTALE (EIO in the mount; the stress test).
 */
START_TEST(test_e2e_orphan_of_create)
{
        const char *dir = tu_tmpdir();
        char keyfile[PATH_MAX], sdir[PATH_MAX];
        uint8_t key[LP_KEY_SIZE];
        struct tcss *t;
        struct tss s = { 0 };
        struct lp_client *tool, *mnt, *ssc;
        struct lp_fs_req cr = { .op = LP_FS_CREATE, .fg = 1, .parent = 1, .mode = S_IFREG | 0644,
                                .flags = O_RDWR | O_CREAT };
        struct lp_fs_req ul = { .op = LP_FS_UNLINK, .fg = 1, .parent = 1 };
        struct lp_fs_resp resp;
        struct css_jval *st;
        uint64_t ino, sess, deadline;

        snprintf(keyfile, sizeof(keyfile), "%s/cluster.key", dir);
        CHECK(lp_key_generate(keyfile) == 0);
        CHECK(lp_key_load(keyfile, key) == 0);
        snprintf(sdir, sizeof(sdir), "%s/css", dir);
        mkdir(sdir, 0700);
        t = calloc(1, sizeof(*t));
        CHECK(t);
        snprintf(t->state, sizeof(t->state), "%s", sdir);
        memcpy(t->key, key, LP_KEY_SIZE);
        t->lease_ms = 3000;             /* the reclaim window is then its minimum */
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        CHECK(pthread_create(&t->thr, NULL, loop_main, t) == 0);
        pthread_mutex_lock(&t->mu);
        while (!t->ready)
                pthread_cond_wait(&t->cv, &t->mu);
        pthread_mutex_unlock(&t->mu);
        CHECK(t->err == 0);
        tss_start(&s, dir, keyfile, t->port);
        tool = cl_connect(t, 0);
        wait_registered(tool, 1, s.port);
        mnt = cl_connect_id(t, LP_CLIENT_ID_BIT | 0xc);
        ssc = ss_connect(&s, key);

        /* The reclaim window frees nothing: wait until it is over. */
        deadline = cm_now_us() + (CSS_RECLAIM_MIN_MS + WAIT_MS * 4ull) * 1000ull;
        for (;;) {
                st = get_status(tool);
                if (jnum(st, "uptime_ms") > jnum(st, "lease_ms") && jnum(st, "uptime_ms") > CSS_RECLAIM_MIN_MS) {
                        css_json_free(st);
                        break;
                }
                css_json_free(st);
                CHECK(cm_now_us() < deadline);
                usleep(20000);          /* polling a condition, bounded by the deadline */
        }

        /* The mount creates "o" (a write session), then another thread of
         * it unlinks "o" and reports the orphan: CSS_OPENED is not sent yet. */
        cr.name = (const uint8_t *)"o";
        cr.namelen = 1;
        CHECK_EQ(call(ssc, &cr, &resp), 0);
        CHECK(resp.session != 0 && resp.has_attr);
        sess = resp.session;
        ino = resp.attr.ino;
        lp_fs_resp_release(&resp);
        ul.name = (const uint8_t *)"o";
        ul.namelen = 1;
        CHECK_EQ(call(ssc, &ul, &resp), 0);
        CHECK(resp.orphan && resp.ino == ino);
        lp_fs_resp_release(&resp);
        CHECK_EQ(call_st(mnt, &(struct lp_fs_req){ .op = LP_FS_CSS_ORPHAN, .fg = 1, .ino = ino }), 0);
        /* The storage site refuses while the session is open: decided again. */
        wait_orphans(tool, "deferred", 1);
        st = get_status(tool);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "freed"), 0);
        css_json_free(st);

        /* The descriptor still works. */
        {
                struct lp_fs_req w = { .op = LP_FS_WRITE, .fg = 1, .ino = ino, .session = sess, .offset = 0 };

                w.data = (const uint8_t *)"hello";
                w.datalen = 5;
                CHECK_EQ(call_st(ssc, &w), 0);
        }

        /* The open is recorded now: the orphan is kept until its last close. */
        CHECK_EQ(call_st(mnt, &(struct lp_fs_req){ .op = LP_FS_CSS_OPENED, .fg = 1, .ino = ino,
                                                   .flags = O_RDWR }), 0);
        wait_orphans(tool, "held", 1);
        st = get_status(tool);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "freed"), 0);
        css_json_free(st);
        CHECK_EQ(call_st(ssc, &(struct lp_fs_req){ .op = LP_FS_COMMIT, .fg = 1, .ino = ino, .session = sess,
                                                   .flags = LP_FS_COMMIT_END }), 0);
        CHECK_EQ(call_st(ssc, &(struct lp_fs_req){ .op = LP_FS_GETATTR, .fg = 1, .ino = ino }), 0);

        /* The last close frees it. */
        CHECK_EQ(call_st(mnt, &(struct lp_fs_req){ .op = LP_FS_CSS_CLOSE, .fg = 1, .ino = ino,
                                                   .flags = O_RDWR }), 0);
        wait_orphans(tool, "freed", 1);
        deadline = cm_now_us() + WAIT_MS * 1000ull;
        while (call_st(ssc, &(struct lp_fs_req){ .op = LP_FS_GETATTR, .fg = 1, .ino = ino }) == 0)
                CHECK(cm_now_us() < deadline);
        st = get_status(tool);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "held"), 0);
        CHECK_EQ(jnum(css_json_get(st, "orphans"), "not_freed"), 0);
        css_json_free(st);

        lp_client_close(ssc);
        lp_client_close(mnt);
        lp_client_close(tool);
        tss_stop(&s);
        tcss_stop(t);
}
END_TEST

static Suite *css_suite(void)
{
        Suite *s = suite_create("css");
        TCase *tc = tcase_create("tables");

        tcase_add_test(tc, test_json);
        tcase_add_test(tc, test_parse_fgs);
        tcase_add_test(tc, test_paths_and_names);
        tcase_add_test(tc, test_mtab_persist);
        tcase_add_test(tc, test_mtab_schema_refused);
        tcase_add_test(tc, test_mtab_holders);
        tcase_add_test(tc, test_mtab_adding);
        tcase_add_test(tc, test_sites_primary);
        tcase_add_test(tc, test_sites);
        tcase_add_test(tc, test_otab);
        tcase_add_test(tc, test_otab_orphans);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);

        tc = tcase_create("wire");
        tcase_add_test(tc, test_register_and_mounttable);
        tcase_add_test(tc, test_fg_holders);
        tcase_add_test(tc, test_fg_holders_sync_copies);
        tcase_add_test(tc, test_mtab_notes);
        tcase_add_test(tc, test_primary_sticky);
        tcase_add_test(tc, test_open_close_unavailable);
        tcase_add_test(tc, test_client_leases);
        tcase_add_test(tc, test_malformed);
        tcase_add_test(tc, test_restart_keeps_mounts);
        tcase_add_test(tc, test_fg_create_refusals);
        tcase_add_test(tc, test_limits_and_order);
        tcase_add_test(tc, test_departures_and_shutdown);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);

        tc = tcase_create("orphans");
        tcase_add_test(tc, test_orphans_bounded);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        if (find_storaged()) {
                tc = tcase_create("storaged");
                tcase_add_test(tc, test_e2e_open_and_fg_create);
                tcase_add_test(tc, test_e2e_orphan_of_create);
                tcase_set_timeout(tc, 120);
                suite_add_tcase(s, tc);
        } else {
                fprintf(stderr, "# storaged cases not run: no locus-storaged at %s (set LOCUS_STORAGED)\n",
                        storaged_bin[0] ? storaged_bin : "?");
        }
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(css_suite());
        const char *lvl = getenv("LOCUS_TEST_LOG");
        int failed;

        cm_log_init("check_css", lvl ? cm_log_level_parse(lvl) : LOG_ERR, CM_LOG_STDERR);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
