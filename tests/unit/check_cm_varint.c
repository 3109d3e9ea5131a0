/*
 * check_cm_varint.c -- common/cm_varint.c, the one LEB128 codec (the page
 * index, version vectors and changesets use it): round trips at every
 * 7-bit boundary, the exact byte forms, and what is malformed.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cm_varint.h"
#include "testutil.h"

START_TEST(t_round_trip)
{
        uint64_t seed = tu_seed("cm_varint");
        uint8_t b[CM_VARINT_MAX + 4];

        for (unsigned bits = 0; bits <= 64; bits++) {
                uint64_t base = bits == 64 ? UINT64_MAX : (bits ? (1ull << bits) : 0);

                for (int d = -1; d <= 1; d++) {
                        uint64_t v = base + (uint64_t)(int64_t)d, got = 0;
                        size_t n = cm_varint_put(b, v), pos = 0;

                        ck_assert_uint_eq(n, cm_varint_size(v));
                        ck_assert_uint_ge(n, 1);
                        ck_assert_uint_le(n, CM_VARINT_MAX);
                        for (size_t i = 0; i + 1 < n; i++)
                                ck_assert(b[i] & 0x80);
                        ck_assert(!(b[n - 1] & 0x80));
                        ck_assert_int_eq(cm_varint_get(b, n, &pos, &got), 0);
                        ck_assert_uint_eq(pos, n);
                        ck_assert_uint_eq(got, v);
                        /* cut short: malformed, nothing consumed */
                        pos = 0;
                        got = 7;
                        ck_assert_int_eq(cm_varint_get(b, n - 1, &pos, &got), -EBADMSG);
                        ck_assert_uint_eq(pos, 0);
                        ck_assert_uint_eq(got, 7);
                }
        }
        for (int i = 0; i < 100000; i++) {
                uint64_t v = tu_rand(&seed) >> (tu_rand(&seed) % 64), got;
                size_t n = cm_varint_put(b + 2, v), pos = 2;

                ck_assert_int_eq(cm_varint_get(b, n + 2, &pos, &got), 0);
                ck_assert_uint_eq(pos, n + 2);
                ck_assert_uint_eq(got, v);
        }
}
END_TEST

START_TEST(t_forms)
{
        static const uint8_t one28[] = { 0x80, 0x01 };
        static const uint8_t max[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
        static const uint8_t over[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 };
        static const uint8_t eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00 };
        static const uint8_t loose[] = { 0x85, 0x80, 0x00 };    /* 5, not the shortest form */
        uint8_t b[CM_VARINT_MAX];
        uint64_t v;
        size_t pos;

        ck_assert_uint_eq(cm_varint_put(b, 128), 2);
        ck_assert_mem_eq(b, one28, 2);
        ck_assert_uint_eq(cm_varint_put(b, UINT64_MAX), 10);
        ck_assert_mem_eq(b, max, 10);
        ck_assert_uint_eq(cm_varint_put(b, 0), 1);
        ck_assert_uint_eq(b[0], 0);
        pos = 0;
        ck_assert_int_eq(cm_varint_get(max, sizeof(max), &pos, &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);
        pos = 0;
        ck_assert_int_eq(cm_varint_get(over, sizeof(over), &pos, &v), -EBADMSG);
        pos = 0;
        ck_assert_int_eq(cm_varint_get(eleven, sizeof(eleven), &pos, &v), -EBADMSG);
        pos = 0;
        ck_assert_int_eq(cm_varint_get(loose, sizeof(loose), &pos, &v), 0);
        ck_assert_uint_eq(v, 5);
        ck_assert_uint_eq(pos, 3);
        pos = 0;
        ck_assert_int_eq(cm_varint_get(loose, 0, &pos, &v), -EBADMSG);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("cm_varint");
        TCase *tc = tcase_create("codec");

        tcase_add_test(tc, t_round_trip);
        tcase_add_test(tc, t_forms);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return tu_run_suite(suite());
}
