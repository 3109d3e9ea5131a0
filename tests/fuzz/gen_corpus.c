/*
 * gen_corpus.c -- write the seed corpora of the fuzz targets with the real
 * encoders: gen_corpus DIR writes DIR/<target>/<name> for every target
 * (scripts/fuzz.sh --seed runs it into tests/fuzz/corpus/).  Each seed is a
 * well-formed input in the target's input format (see the target's file),
 * so that the fuzzer starts from messages, stores and changesets that get
 * past the first checks.  Deterministic but for the segment seeds, whose
 * store id dsm_format() draws at random.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsm_faultio.h"
#include "lp_frame.h"
#include "lp_fs.h"
#include "lp_hs_int.h"
#include "lp_status.h"
#include "ss_cs.h"

#define CHECK(c)                                                                  \
        do {                                                                      \
                if (!(c)) {                                                       \
                        fprintf(stderr, "gen_corpus: %s:%d: %s\n", __FILE__,      \
                                __LINE__, #c);                                    \
                        exit(1);                                                  \
                }                                                                 \
        } while (0)

static const char *outdir;

/* An output buffer: a prefix of selector bytes, then the seed proper. */
struct out {
        uint8_t *p;
        size_t len;
};

static void add(struct out *o, const void *p, size_t n)
{
        o->p = realloc(o->p, o->len + n + 1);
        CHECK(o->p);
        if (n)
                memcpy(o->p + o->len, p, n);
        o->len += n;
}

static void add_u8(struct out *o, uint8_t b)
{
        add(o, &b, 1);
}

static void save(const char *target, const char *name, struct out *o)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", outdir, target);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
        f = fopen(path, "wb");
        CHECK(f);
        CHECK(fwrite(o->p, 1, o->len, f) == o->len);
        CHECK(fclose(f) == 0);
        free(o->p);
        o->p = NULL;
        o->len = 0;
}

static void add_frame(struct out *o, uint16_t type, uint16_t flags, uint64_t reqid, const void *p, size_t n)
{
        uint8_t *buf;
        size_t len;

        CHECK(lp_frame_encode(type, flags, reqid, p, n, LP_FRAME_HARD_MAX, &buf, &len) == 0);
        add(o, buf, len);
        free(buf);
}

/* ---- proto messages ---- */

static const uint32_t groups[] = { 10, 100, 1000 };

static void req_bytes(int which, uint8_t **buf, size_t *len)
{
        struct lp_fs_req r = { .cred = { 1000, 1000, 4242, 022, 3, groups }, .fg = 2 };

        switch (which) {
        case 0:
                r.op = LP_FS_LOOKUP;
                r.parent = 1;
                r.name = (const uint8_t *)"hello.txt";
                r.namelen = 9;
                break;
        case 1:
                r.op = LP_FS_WRITE;
                r.ino = 12;
                r.session = 99;
                r.offset = 4096;
                r.data = (const uint8_t *)"some bytes of a file";
                r.datalen = 20;
                break;
        case 2:
                r.op = LP_FS_SETATTR;
                r.ino = 12;
                r.valid = LP_FS_SET_MODE | LP_FS_SET_ATIME | LP_FS_SET_MTIME | LP_FS_SET_SIZE;
                r.mode = 0100644;
                r.size = 1 << 20;
                r.atime = (struct lp_fs_time){ 1700000000, 5 };
                r.mtime = (struct lp_fs_time){ -3, 999999999 };
                break;
        case 3:
                r.op = LP_FS_RENAME;
                r.parent = 1;
                r.newparent = 5;
                r.name = (const uint8_t *)"a";
                r.namelen = 1;
                r.newname = (const uint8_t *)"b";
                r.newnamelen = 1;
                r.flags = LP_FS_RENAME_NOREPLACE;
                break;
        default:
                r.op = LP_FS_CSS_REGISTER;
                r.site = 3;
                r.host = "127.0.0.1";
                r.port = 4711;
                r.path = "/home";
                r.text = "{\"x\":1}";
                break;
        }
        CHECK(lp_fs_req_encode(&r, buf, len) == 0);
}

static void resp_bytes(int which, uint8_t **buf, size_t *len)
{
        static const struct lp_fs_dirent ents[] = {
                { .ino = 1, .next = 3, .type = 4, .name = (const uint8_t *)".", .namelen = 1 },
                { .ino = 12, .next = 4, .type = 8, .name = (const uint8_t *)"file", .namelen = 4,
                  .has_attr = true, .attr = { .ino = 12, .size = 5, .mode = 0100644, .nlink = 1,
                                              .mtime = { 1700000000, 7 } } },
        };
        static const struct lp_fs_mount mnts[] = {
                { .fg = 1, .name = "root", .path = "/", .site = 1, .host = "127.0.0.1", .port = 1 },
                { .fg = 2, .name = "home", .parent_fg = 1, .parent_ino = 7, .path = "/home", .site = 2,
                  .host = "127.0.0.2", .port = 2 },
        };
        struct lp_fs_resp r = { 0 };

        switch (which) {
        case 0:
                r.has_attr = true;
                r.attr = (struct lp_fs_attr){ .ino = 12, .size = 4096, .blocks = 8, .mode = 0100600,
                                              .nlink = 1, .uid = 1000, .gid = 1000,
                                              .atime = { 1, 2 }, .mtime = { 3, 4 }, .ctime = { 5, 6 },
                                              .generation = 1, .version = 9 };
                r.has_attr2 = true;
                r.attr2 = r.attr;
                r.session = 5;
                break;
        case 1:
                r.entries = ents;
                r.nentries = 2;
                r.eof = true;
                break;
        case 2:
                r.status = -ENOENT;
                r.message = "no such file: <2,12>";
                break;
        case 3:
                r.mounts = mnts;
                r.nmounts = 2;
                r.has_statfs = true;
                r.statfs = (struct lp_fs_statfs){ 100, 50, 40, 10, 5, 4096, 255 };
                break;
        default:
                r.data = (const uint8_t *)"page data";
                r.datalen = 9;
                r.value = 9;
                r.text = "{\"status\":\"ok\"}";
                r.site = 1;
                r.host = "127.0.0.1";
                r.port = 9;
                break;
        }
        CHECK(lp_fs_resp_encode(&r, buf, len) == 0);
}

static void hello_bytes(bool client, void **buf, size_t *len)
{
        struct lp__hello h = { .version = LP_PROTO_VERSION, .site_id = client ? 7 : 1 };

        memset(h.nonce, client ? 0x5a : 0x33, sizeof(h.nonce));
        memset(h.mac, 0x11, sizeof(h.mac));
        CHECK((client ? lp__client_hello_pack(&h, buf, len) : lp__server_hello_pack(&h, buf, len)) == 0);
}

static void gen_msg(void)
{
        struct out o = { 0 };
        char name[32];
        uint8_t *b;
        void *v;
        size_t n;

        for (int i = 0; i < 5; i++) {
                req_bytes(i, &b, &n);
                add_u8(&o, 0);
                add(&o, b, n);
                free(b);
                snprintf(name, sizeof(name), "fs_req_%d", i);
                save("msg", name, &o);
                resp_bytes(i, &b, &n);
                add_u8(&o, 1);
                add(&o, b, n);
                free(b);
                snprintf(name, sizeof(name), "fs_resp_%d", i);
                save("msg", name, &o);
        }
        CHECK(lp_status_pack(LP_STATUS_AUTH, "authentication failed", &v, &n) == 0);
        add_u8(&o, 2);
        add(&o, v, n);
        free(v);
        save("msg", "status", &o);
        hello_bytes(false, &v, &n);
        add_u8(&o, 3);
        add(&o, v, n);
        free(v);
        save("msg", "server_hello", &o);
        hello_bytes(true, &v, &n);
        add_u8(&o, 4);
        add(&o, v, n);
        free(v);
        save("msg", "client_hello", &o);
        {
                uint8_t mac[LP_MAC_SIZE];

                memset(mac, 0x77, sizeof(mac));
                CHECK(lp__server_auth_pack(mac, &v, &n) == 0);
        }
        add_u8(&o, 5);
        add(&o, v, n);
        free(v);
        save("msg", "server_auth", &o);
}

/* A stream of frames as a peer would send them. */
static void add_stream(struct out *o, bool with_hello)
{
        uint8_t *b;
        void *v;
        size_t n;

        if (with_hello) {
                hello_bytes(true, &v, &n);
                add_frame(o, LP_MSG_CLIENT_HELLO, 0, 0, v, n);
                free(v);
        }
        req_bytes(0, &b, &n);
        add_frame(o, LP_MSG_FS_REQ, 0, 1, b, n);
        free(b);
        req_bytes(1, &b, &n);
        add_frame(o, LP_MSG_FS_REQ, 0, 2, b, n);
        free(b);
        resp_bytes(2, &b, &n);
        add_frame(o, LP_MSG_FS_RESP, LP_F_REPLY, 3, b, n);
        free(b);
        CHECK(lp_status_pack(LP_STATUS_PROTOCOL, "bye", &v, &n) == 0);
        add_frame(o, LP_MSG_STATUS, 0, 4, v, n);
        free(v);
        add_frame(o, LP_MSG_USER_MIN + 9, 0x8000, 0, NULL, 0);
}

static void gen_frame(void)
{
        struct out o = { 0 };

        add_u8(&o, 0);          /* handshake limit */
        add_u8(&o, 1);
        add_stream(&o, true);
        save("frame", "hs_limit", &o);
        add_u8(&o, 2);          /* default limit */
        add_u8(&o, 77);
        add_stream(&o, false);
        save("frame", "default_limit", &o);
        add_u8(&o, 1 | (15 << 2));      /* a 16-byte limit */
        add_u8(&o, 3);
        add_stream(&o, false);
        save("frame", "tiny_limit", &o);
}

static void gen_handshake(void)
{
        struct out o = { 0 };
        void *v;
        size_t n;

        add_u8(&o, 1);          /* authenticated, then requests */
        add_u8(&o, 5);
        add_stream(&o, false);
        save("handshake", "authed_requests", &o);
        add_u8(&o, 0);          /* a ClientHello with a wrong MAC */
        add_u8(&o, 9);
        add_stream(&o, true);
        save("handshake", "bad_mac", &o);
        add_u8(&o, 0);          /* the client refuses */
        add_u8(&o, 0);
        CHECK(lp_status_pack(LP_STATUS_PROTOCOL, "version mismatch\n\x01", &v, &n) == 0);
        add_frame(&o, LP_MSG_STATUS, 0, 0, v, n);
        free(v);
        save("handshake", "refused", &o);
        add_u8(&o, 1);          /* a handshake message after authentication */
        add_u8(&o, 2);
        hello_bytes(true, &v, &n);
        add_frame(&o, LP_MSG_CLIENT_HELLO, 0, 0, v, n);
        free(v);
        save("handshake", "hello_after_auth", &o);

        /* The client side (bit 1): what a server sends after the handshake. */
        add_u8(&o, 3);
        add_u8(&o, 4);
        add_frame(&o, LP_MSG_USER_MIN + 1, 0, 0, "notice", 6);
        add_frame(&o, LP_MSG_USER_MIN, LP_F_REPLY, 9, "stale", 5);
        add_frame(&o, LP_MSG_USER_MIN, LP_F_REPLY, 1, "pong", 4);
        CHECK(lp_status_pack(LP_STATUS_BUSY, "later", &v, &n) == 0);
        add_frame(&o, LP_MSG_STATUS, 0, 0, v, n);
        free(v);
        save("handshake", "client_authed", &o);
        /* ... and the whole handshake from the server, with a wrong MAC. */
        add_u8(&o, 2);
        add_u8(&o, 0);
        hello_bytes(false, &v, &n);
        add_frame(&o, LP_MSG_SERVER_HELLO, 0, 0, v, n);
        free(v);
        {
                uint8_t mac[LP_MAC_SIZE];

                memset(mac, 0x77, sizeof(mac));
                CHECK(lp__server_auth_pack(mac, &v, &n) == 0);
        }
        add_frame(&o, LP_MSG_SERVER_AUTH, 0, 0, v, n);
        free(v);
        save("handshake", "client_bad_auth", &o);
        /* ... and a server that refuses us. */
        add_u8(&o, 2);
        add_u8(&o, 1);
        CHECK(lp_status_pack(LP_STATUS_AUTH, "who are you?", &v, &n) == 0);
        add_frame(&o, LP_MSG_STATUS, 0, 0, v, n);
        free(v);
        save("handshake", "client_refused", &o);
}

/* ---- segments ---- */

struct segs {
        struct dsm_faultio *f;
        uint64_t no[64];
        size_t n;
};

static int collect(void *arg, const char *name)
{
        struct segs *s = arg;
        unsigned long long no;

        if (sscanf(name, "seg-%llx.log", &no) == 1 && s->n < 64)
                s->no[s->n++] = no;
        return 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* fix: the target's flag that recomputes checksums before opening. */
static void save_store(struct dsm_faultio *f, const char *name, bool fix)
{
        struct segs s = { .f = f };
        struct out o = { 0 };
        char full[64];

        CHECK(dsm_faultio_ops.listdir(f, "/g", collect, &s) == 0);
        qsort(s.no, s.n, sizeof(s.no[0]), cmp_u64);
        add_u8(&o, fix);
        for (size_t i = 0; i < s.n; i++) {
                char path[64];
                uint64_t size;
                uint8_t *buf;
                int fd;

                snprintf(path, sizeof(path), "/g/seg-%016llx.log", (unsigned long long)s.no[i]);
                fd = dsm_faultio_ops.open(f, path, O_RDONLY, 0);
                CHECK(fd >= 0);
                CHECK(dsm_faultio_ops.fsize(f, fd, &size) == 0);
                buf = malloc(size);
                CHECK(buf);
                CHECK(dsm_faultio_ops.pread(f, fd, buf, size, 0) == (ssize_t)size);
                add(&o, buf, size);
                free(buf);
                dsm_faultio_ops.close(f, fd);
        }
        snprintf(full, sizeof(full), "%s%s", name, fix ? "_fix" : "");
        save("segment", full, &o);
}

static void commit_pages(struct dsm_store *s, uint64_t obj, uint64_t page, int n, uint8_t tag,
                         bool free_first)
{
        uint8_t buf[DSM_PAGE_SIZE];
        struct dsm_txn *t;
        char meta[32];

        CHECK(dsm_txn_begin(s, &t) == 0);
        if (free_first)
                CHECK(dsm_txn_free(t, obj, 0, DSM_TO_END) == 0);
        for (int i = 0; i < n; i++) {
                memset(buf, tag + i, sizeof(buf));
                CHECK(dsm_txn_write(t, obj, page + (uint64_t)i, 0, buf, DSM_PAGE_SIZE) == 0);
        }
        snprintf(meta, sizeof(meta), "meta %llu", (unsigned long long)obj);
        CHECK(dsm_txn_commit(t, meta, strlen(meta), NULL) == 0);
}

static int ckpt_meta(void *ctx, uint64_t seq, struct dsm_ckpt *cp)
{
        (void)ctx;
        (void)seq;
        return dsm_ckpt_put(cp, "image of the metadata", 21);
}

static void gen_segment(void)
{
        for (int kind = 0; kind < 4; kind++) {
                struct dsm_faultio *f = dsm_faultio_new(1);
                struct dsm_options opt = { .segment_size = DSM_SEGMENT_SIZE_MIN, .io = &dsm_faultio_ops,
                                           .io_ctx = f, .ckpt_meta = ckpt_meta,
                                           .txn_buffer = DSM_PAGE_SIZE };
                struct dsm_store *s;

                CHECK(f);
                CHECK(dsm_format("/g", &opt) == 0);
                CHECK(dsm_open("/g", &opt, &s) == 0);
                commit_pages(s, 1, 0, 3, 0x10, false);
                commit_pages(s, 2, 4, 1, 0x20, false);
                if (kind == 3) {
                        /* A checkpoint, then more than a segment of commits:
                         * replay crosses a segment, and most of the older
                         * one is dead (obj 100 freed) for the cleaner. */
                        CHECK(dsm_checkpoint(s) == 0);
                        commit_pages(s, 1, 1, 1, 0x70, false);
                        commit_pages(s, 100, 0, 64, 0x80, false);
                        commit_pages(s, 100, 0, 0, 0, true);
                        commit_pages(s, 2, 1, 1, 0x90, false);
                }
                if (kind == 1 || kind == 2) {
                        CHECK(dsm_checkpoint(s) == 0);
                        commit_pages(s, 1, 1, 1, 0x30, false);
                        commit_pages(s, 2, 0, 2, 0x40, true);
                }
                if (kind == 2) {
                        commit_pages(s, 3, 0, 2, 0x50, false);
                        CHECK(dsm_clean(s, 90) >= 0);
                        commit_pages(s, 4, 7, 1, 0x60, false);
                }
                dsm_close(s);
                for (int fix = 0; fix < (kind == 3 ? 1 : 2); fix++)
                        save_store(f, kind == 0 ? "one_segment" : kind == 1 ? "checkpoint" :
                                      kind == 2 ? "cleaned" : "full_segment", fix);
                dsm_faultio_free(f);
        }
}

/* ---- changesets ---- */

static void gen_changeset(void)
{
        static const uint8_t vv[] = { 2, 1, 3, 2, 1 };   /* {1: 3, 3: 1} */
        struct ss_inode in = { .ino = 12, .mode = 0120777, .nlink = 1, .uid = 1000, .gid = 100,
                               .size = 6, .atime = { -5, 1 }, .mtime = { 1700000000, 999999999 },
                               .ctime = { 0, 0 }, .generation = 3, .vvlen = sizeof(vv), .targetlen = 6 };
        struct ss_dirent d = { .id = (1ull << 40) | 7, .parent = 1, .ino = 12, .type = 10, .cookie = 12345,
                               .namelen = 4 };
        struct ss_cs cs;
        struct out o = { 0 };

        memcpy(in.vv, vv, sizeof(vv));
        memcpy(in.target, "target", 7);
        memcpy(d.name, "link", 5);

        ss_cs_init(&cs);
        cs.site = 1;
        ss_cs_put_inode(&cs, &in, SS_CS_KEEPVV);
        in.ino = 13;
        in.mode = 040755;
        in.targetlen = 0;
        ss_cs_put_inode(&cs, &in, SS_CS_GSEQ);
        ss_cs_put_dirent(&cs, &d);
        ss_cs_put_xattr(&cs, 12, (const uint8_t *)"user.locus.copies", 17, "3", 1);
        ss_cs_put_meta(&cs, "next_ino", 14);
        ss_cs_seal(&cs);
        CHECK(!cs.err);
        add_u8(&o, 0);
        add(&o, cs.p, cs.len);
        save("changeset", "puts", &o);
        ss_cs_free(&cs);

        ss_cs_init(&cs);
        cs.site = 1;
        ss_cs_put_inode(&cs, &in, 0);
        ss_cs_del_dirent(&cs, (1ull << 40) | 7);
        ss_cs_del_xattr(&cs, 12, (const uint8_t *)"user.x", 6);
        ss_cs_del_inode(&cs, 12, vv, sizeof(vv), 0);
        ss_cs_put_meta(&cs, "inodes", 2);
        ss_cs_seal(&cs);
        CHECK(!cs.err);
        add_u8(&o, 200);
        add(&o, cs.p, cs.len);
        save("changeset", "dels", &o);
        ss_cs_free(&cs);

        ss_cs_init(&cs);
        ss_cs_seal(&cs);
        add_u8(&o, 1);
        add(&o, cs.p, cs.len);
        save("changeset", "empty", &o);
        ss_cs_free(&cs);

        /* Format 1 (still read): an inode with VSEQ, an entry without a
         * cookie, an inode del without a vector; written by hand, since
         * the builder writes format 2 only. */
        {
                static const uint8_t v1[] = {
                        'L', 'C', 1,
                        /* inode put, VSEQ|GSEQ: ino 5, dir, nlink 2, ids 0, size 4096 (v 0x80 0x20),
                         * times 0, gen 0, version 0, target "" */
                        20, 0x31, 5, 0xed, 0x83, 0x01, 2, 0, 0, 0, 0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        /* dirent put: id 3, parent 1, ino 5, type 4, "old" */
                        9, 0x02, 3, 1, 5, 4, 3, 'o', 'l', 'd',
                        /* inode del: ino 9 */
                        2, 0x09, 9,
                        0 };

                add_u8(&o, 7);
                add(&o, v1, sizeof(v1));
                save("changeset", "format1", &o);
        }
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: gen_corpus DIR\n");
                return 2;
        }
        outdir = argv[1];
        mkdir(outdir, 0755);
        gen_msg();
        gen_frame();
        gen_handshake();
        gen_segment();
        gen_changeset();
        return 0;
}
