/*
 * check_lp_fs.c -- the filesystem protocol's messages: every field
 * survives a round trip, absent fields stay absent, limits are enforced on
 * decode, and garbage does not parse.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lp_fs.h"
#include "testutil.h"

START_TEST(test_request_round_trip)
{
        uint32_t groups[] = { 4, 27, 100 };
        struct lp_fs_req in = {
                .op = LP_FS_RENAME, .cred = { 1000, 1000, 4242, 022, 3, groups }, .fg = 2,
                .ino = (1ull << 40) | 7, .parent = 1, .newparent = 9, .session = 0xabcdef0123ull,
                .offset = 5ull << 32, .length = 4096, .size = 1ull << 33, .mode = 0100644, .uid = 7,
                .gid = 8, .flags = 3, .valid = 0x1ff, .whence = 4, .rdev = 0x0801,
                .atime = { -5, 999999999 }, .mtime = { 1700000000, 1 },
                .name = (const uint8_t *)"a\xff" "b", .namelen = 3,
                .newname = (const uint8_t *)"new", .newnamelen = 3,
                .data = (const uint8_t *)"\0\1\2", .datalen = 3,
                .ino2 = 11, .session2 = 12, .offset2 = 13, .site = 3, .host = "127.0.0.1",
                .port = 4444, .path = "/home", .text = "{}",
        };
        struct lp_fs_req out;
        uint8_t *buf;
        size_t len;

        ck_assert_int_eq(lp_fs_req_encode(&in, &buf, &len), 0);
        ck_assert_int_eq(lp_fs_req_decode(buf, len, &out), 0);
        free(buf);
        ck_assert_uint_eq(out.op, LP_FS_RENAME);
        ck_assert_uint_eq(out.cred.uid, 1000);
        ck_assert_uint_eq(out.cred.pid, 4242);
        ck_assert_uint_eq(out.cred.umask, 022);
        ck_assert_uint_eq(out.cred.ngroups, 3);
        ck_assert_uint_eq(out.cred.groups[2], 100);
        ck_assert_uint_eq(out.fg, 2);
        ck_assert_uint_eq(out.ino, in.ino);
        ck_assert_uint_eq(out.newparent, 9);
        ck_assert_uint_eq(out.session, in.session);
        ck_assert_uint_eq(out.offset, in.offset);
        ck_assert_uint_eq(out.size, in.size);
        ck_assert_uint_eq(out.mode, 0100644);
        ck_assert_uint_eq(out.valid, 0x1ff);
        ck_assert_uint_eq(out.rdev, 0x0801);
        ck_assert_int_eq(out.atime.sec, -5);
        ck_assert_uint_eq(out.atime.nsec, 999999999);
        ck_assert_int_eq(out.mtime.sec, 1700000000);
        ck_assert_uint_eq(out.namelen, 3);
        ck_assert(memcmp(out.name, "a\xff" "b", 3) == 0);
        ck_assert(memcmp(out.newname, "new", 3) == 0);
        ck_assert_uint_eq(out.datalen, 3);
        ck_assert(memcmp(out.data, "\0\1\2", 3) == 0);
        ck_assert_uint_eq(out.ino2, 11);
        ck_assert_uint_eq(out.offset2, 13);
        ck_assert_str_eq(out.host, "127.0.0.1");
        ck_assert_uint_eq(out.port, 4444);
        ck_assert_str_eq(out.path, "/home");
        ck_assert_str_eq(out.text, "{}");
        lp_fs_req_release(&out);
        lp_fs_req_release(NULL);
}
END_TEST

START_TEST(test_absent_fields_stay_absent)
{
        struct lp_fs_req in = { .op = LP_FS_GETATTR, .ino = 1 }, out;
        uint8_t *buf;
        size_t len;

        ck_assert_int_eq(lp_fs_req_encode(&in, &buf, &len), 0);
        ck_assert_uint_lt(len, 16);
        ck_assert_int_eq(lp_fs_req_decode(buf, len, &out), 0);
        free(buf);
        ck_assert_ptr_null(out.name);
        ck_assert_ptr_null(out.data);
        ck_assert_ptr_null(out.host);
        ck_assert_uint_eq(out.session, 0);
        /* An empty name is present, and not NULL. */
        lp_fs_req_release(&out);
        in.name = (const uint8_t *)"";
        in.namelen = 0;
        ck_assert_int_eq(lp_fs_req_encode(&in, &buf, &len), 0);
        ck_assert_int_eq(lp_fs_req_decode(buf, len, &out), 0);
        free(buf);
        ck_assert_ptr_nonnull(out.name);
        ck_assert_uint_eq(out.namelen, 0);
        lp_fs_req_release(&out);
}
END_TEST

START_TEST(test_response_round_trip)
{
        struct lp_fs_dirent ents[3] = {
                { .ino = 1, .next = 1, .type = 4, .name = (const uint8_t *)".", .namelen = 1 },
                { .ino = 1, .next = 2, .type = 4, .name = (const uint8_t *)"..", .namelen = 2 },
                { .ino = 77, .next = 9, .type = 8, .name = (const uint8_t *)"file", .namelen = 4,
                  .has_attr = true, .attr = { .ino = 77, .size = 5, .mode = 0100600, .nlink = 1,
                                              .mtime = { 10, 20 }, .vv = (const uint8_t *)"\x01\x02\x05",
                                              .vvlen = 3 } },
        };
        struct lp_fs_mount mnts[2] = {
                { .fg = 1, .name = "root", .path = "/", .site = 1, .host = "127.0.0.1", .port = 9 },
                { .fg = 2, .name = "home", .parent_fg = 1, .parent_ino = 42, .path = "/home", .site = 1 },
        };
        struct lp_fs_resp in = {
                .status = -ENOTEMPTY, .message = "directory not empty", .has_attr = true,
                .attr = { .ino = 5, .size = 1ull << 40, .blocks = 8, .mode = 040755, .nlink = 3, .uid = 1,
                          .gid = 2, .rdev = 3, .atime = { 1, 2 }, .mtime = { 3, 4 }, .ctime = { 5, 6 },
                          .generation = 7, .version = 8, .vv = (const uint8_t *)"\x02\x01\x03\x04\x05",
                          .vvlen = 5 },
                .has_attr2 = true, .attr2 = { .ino = 6 }, .session = 99, .version = 100, .value = 101,
                .ino = 102, .orphan = true, .data = (const uint8_t *)"xyz", .datalen = 3,
                .entries = ents, .nentries = 3, .eof = true, .has_statfs = true,
                .statfs = { 1000, 500, 400, 100, 50, 4096, 255 }, .mounts = mnts, .nmounts = 2,
                .site = 4, .host = "127.0.0.1", .port = 5, .text = "{\"ok\":1}",
        };
        struct lp_fs_resp out;
        uint8_t *buf;
        size_t len;

        ck_assert_int_eq(lp_fs_resp_encode(&in, &buf, &len), 0);
        ck_assert_int_eq(lp_fs_resp_decode(buf, len, &out), 0);
        free(buf);
        ck_assert_int_eq(out.status, -ENOTEMPTY);
        ck_assert_str_eq(out.message, "directory not empty");
        ck_assert(out.has_attr);
        ck_assert_uint_eq(out.attr.size, 1ull << 40);
        ck_assert_uint_eq(out.attr.mode, 040755);
        ck_assert_int_eq(out.attr.ctime.sec, 5);
        ck_assert_uint_eq(out.attr.ctime.nsec, 6);
        ck_assert_uint_eq(out.attr.version, 8);
        ck_assert_uint_eq(out.attr.vvlen, 5);
        ck_assert_mem_eq(out.attr.vv, "\x02\x01\x03\x04\x05", 5);
        ck_assert(out.has_attr2);
        ck_assert_uint_eq(out.attr2.vvlen, 0);  /* not sent: absent */
        ck_assert_uint_eq(out.attr2.ino, 6);
        ck_assert_uint_eq(out.session, 99);
        ck_assert(out.orphan);
        ck_assert(out.eof);
        ck_assert_uint_eq(out.datalen, 3);
        ck_assert_uint_eq(out.nentries, 3);
        ck_assert_uint_eq(out.entries[1].namelen, 2);
        ck_assert(!out.entries[1].has_attr);
        ck_assert(out.entries[2].has_attr);
        ck_assert_uint_eq(out.entries[2].attr.size, 5);
        ck_assert_uint_eq(out.entries[2].next, 9);
        ck_assert_uint_eq(out.entries[2].attr.vvlen, 3);
        ck_assert_mem_eq(out.entries[2].attr.vv, "\x01\x02\x05", 3);
        ck_assert(out.has_statfs);
        ck_assert_uint_eq(out.statfs.bsize, 4096);
        ck_assert_uint_eq(out.statfs.namemax, 255);
        ck_assert_uint_eq(out.nmounts, 2);
        ck_assert_str_eq(out.mounts[1].path, "/home");
        ck_assert_uint_eq(out.mounts[1].parent_ino, 42);
        ck_assert_ptr_null(out.mounts[1].host);
        ck_assert_str_eq(out.text, "{\"ok\":1}");
        lp_fs_resp_release(&out);

        /* Success carries no status field at all. */
        memset(&in, 0, sizeof(in));
        ck_assert_int_eq(lp_fs_resp_encode(&in, &buf, &len), 0);
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(lp_fs_resp_decode(buf, len, &out), 0);
        ck_assert_int_eq(out.status, 0);
        free(buf);
        lp_fs_resp_release(&out);
}
END_TEST

START_TEST(test_limits_and_garbage)
{
        static uint8_t big[LP_FS_DATA_MAX + 1];
        char name[LP_FS_NAME_MAX + 2];
        struct lp_fs_req in = { .op = LP_FS_WRITE }, out;
        struct lp_fs_resp rout;
        uint8_t *buf;
        size_t len;
        uint64_t rs = tu_seed("lp_fs garbage");

        memset(name, 'n', sizeof(name));
        in.name = (const uint8_t *)name;
        in.namelen = LP_FS_NAME_MAX + 1;
        ck_assert_int_eq(lp_fs_req_encode(&in, &buf, &len), -EINVAL);
        in.namelen = LP_FS_NAME_MAX;
        ck_assert_int_eq(lp_fs_req_encode(&in, &buf, &len), 0);
        ck_assert_int_eq(lp_fs_req_decode(buf, len, &out), 0);
        lp_fs_req_release(&out);
        /* A peer that sends a longer name gets ENAMETOOLONG on decode:
         * patch the encoded length byte (name is field 20, 2-byte tag). */
        {
                uint8_t *p = memmem(buf, len, name, LP_FS_NAME_MAX);
                uint8_t *nb = malloc(len + 1);
                size_t pre = (size_t)(p - buf);

                ck_assert_ptr_nonnull(p);
                memcpy(nb, buf, pre);
                nb[pre - 2] = (uint8_t)(((LP_FS_NAME_MAX + 1) & 0x7f) | 0x80);
                nb[pre - 1] = (uint8_t)((LP_FS_NAME_MAX + 1) >> 7);
                memcpy(nb + pre, name, LP_FS_NAME_MAX + 1);
                ck_assert_int_eq(lp_fs_req_decode(nb, pre + LP_FS_NAME_MAX + 1, &out), -ENAMETOOLONG);
                free(nb);
        }
        free(buf);
        in.name = NULL;
        in.namelen = 0;
        in.data = big;
        in.datalen = sizeof(big);
        ck_assert_int_eq(lp_fs_req_encode(&in, &buf, &len), -EINVAL);
        /* Random bytes never crash the decoder, and whatever decodes
         * releases cleanly. */
        for (int i = 0; i < 20000; i++) {
                uint8_t g[64];
                size_t n = tu_rand(&rs) % sizeof(g);

                for (size_t j = 0; j < n; j++)
                        g[j] = (uint8_t)tu_rand(&rs);
                if (lp_fs_req_decode(g, n, &out) == 0)
                        lp_fs_req_release(&out);
                if (lp_fs_resp_decode(g, n, &rout) == 0)
                        lp_fs_resp_release(&rout);
        }
        ck_assert_int_eq(lp_fs_req_decode("\xff\xff\xff", 3, &out), -EBADMSG);
        /* An over-long message is cut, not a reason to refuse the answer. */
        {
                static char longmsg[LP_FS_PATH_MAX + 100];
                struct lp_fs_resp rin = { .status = -ENOENT, .message = longmsg };

                memset(longmsg, 'm', sizeof(longmsg) - 1);
                ck_assert_int_eq(lp_fs_resp_encode(&rin, &buf, &len), 0);
                ck_assert_int_eq(lp_fs_resp_decode(buf, len, &rout), 0);
                ck_assert_int_eq(rout.status, -ENOENT);
                ck_assert_uint_eq(strlen(rout.message), LP_FS_PATH_MAX);
                free(buf);
                lp_fs_resp_release(&rout);
        }
        /* A version vector over the limit is refused. */
        {
                static uint8_t vv[LP_FS_VV_MAX + 1];
                struct lp_fs_resp rin = { .has_attr = true, .attr = { .ino = 1, .vv = vv, .vvlen = LP_FS_VV_MAX } };

                ck_assert_int_eq(lp_fs_resp_encode(&rin, &buf, &len), 0);
                ck_assert_int_eq(lp_fs_resp_decode(buf, len, &rout), 0);
                ck_assert_uint_eq(rout.attr.vvlen, LP_FS_VV_MAX);
                free(buf);
                lp_fs_resp_release(&rout);
                rin.attr.vvlen = LP_FS_VV_MAX + 1;
                ck_assert_int_eq(lp_fs_resp_encode(&rin, &buf, &len), 0);
                ck_assert_int_eq(lp_fs_resp_decode(buf, len, &rout), -EBADMSG);
                free(buf);
        }
        ck_assert_str_eq(lp_fs_op_name(LP_FS_LOOKUP), "lookup");
        ck_assert_str_eq(lp_fs_op_name(9999), "unknown");
}
END_TEST

/* Every errno a filesystem operation answers crosses the wire intact. */
START_TEST(test_errnos_survive_the_wire)
{
        static const int errs[] = { ENOENT, EEXIST, ENOTEMPTY, ENAMETOOLONG, EISDIR, ENOTDIR, EINVAL,
                                    EACCES, EPERM, EXDEV, ENOSPC, EIO, ESTALE, EAGAIN, ETIMEDOUT, EFBIG,
                                    EOPNOTSUPP, EBADMSG, ENODATA, ERANGE, EMLINK, ENXIO, EBUSY, ENFILE,
                                    EBADF, ENODEV, E2BIG };

        for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
                struct lp_fs_resp in = { .status = -errs[i] }, out;
                uint8_t *buf;
                size_t len;

                ck_assert_int_eq(lp_fs_resp_encode(&in, &buf, &len), 0);
                ck_assert_int_eq(lp_fs_resp_decode(buf, len, &out), 0);
                ck_assert_msg(out.status == -errs[i], "errno %d came back as %d", errs[i], -out.status);
                free(buf);
                lp_fs_resp_release(&out);
        }
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("lp_fs");
        TCase *tc = tcase_create("messages");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_request_round_trip);
        tcase_add_test(tc, test_absent_fields_stay_absent);
        tcase_add_test(tc, test_response_round_trip);
        tcase_add_test(tc, test_limits_and_garbage);
        tcase_add_test(tc, test_errnos_survive_the_wire);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
