/*
 * fuzz_msg.c -- every protobuf message decoder of proto/ and its
 * validation: the filesystem request and response (lp_fs.c), Status
 * (lp_status.c) and the three handshake messages (lp_hs.c).
 *
 * Input: byte 0 picks the decoder, the rest is the message.
 *
 * Checked: nothing crashes or leaks; every pointer a decoded struct hands
 * out is readable for the length it states and within the documented
 * limits; whatever a decoder accepts its encoder takes back (a peer can
 * never make us hold a message we could not send on), and decoding that
 * encoding gives the same message again (encode o decode is stable).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "lp_fs.h"
#include "lp_hs_int.h"
#include "lp_status.h"

static volatile uint8_t sink;

/* Read every byte (ASan checks the range is valid). */
static void touch(const void *p, size_t n)
{
        const volatile uint8_t *b = p;

        FZ_CHECK(p != NULL || n == 0);
        for (size_t i = 0; i < n; i++)
                sink ^= b[i];
}

static void touch_str(const char *s, size_t max)
{
        if (s) {
                size_t n = strlen(s);

                FZ_CHECK(n <= max);
                touch(s, n + 1);
        }
}

static void check_attr(const struct lp_fs_attr *a)
{
        FZ_CHECK(a->atime.nsec < 1000000000u && a->mtime.nsec < 1000000000u &&
                 a->ctime.nsec < 1000000000u);
}

static void req_check(const struct lp_fs_req *r)
{
        FZ_CHECK(r->namelen <= LP_FS_NAME_MAX && r->newnamelen <= LP_FS_NAME_MAX);
        FZ_CHECK(r->datalen <= LP_FS_DATA_MAX && r->cred.ngroups <= LP_FS_MAX_GROUPS);
        FZ_CHECK(r->atime.nsec < 1000000000u && r->mtime.nsec < 1000000000u);
        FZ_CHECK(!r->namelen || r->name);
        touch(r->name, r->namelen);
        touch(r->newname, r->newnamelen);
        touch(r->data, r->datalen);
        touch(r->cred.groups, r->cred.ngroups * sizeof(uint32_t));
        touch_str(r->host, LP_FS_PATH_MAX);
        touch_str(r->path, LP_FS_PATH_MAX);
        touch_str(r->text, LP_FS_PATH_MAX);
        FZ_CHECK(lp_fs_op_name(r->op) != NULL);
}

static void resp_check(const struct lp_fs_resp *r)
{
        FZ_CHECK(r->status <= 0);
        FZ_CHECK(r->datalen <= LP_FS_DATA_MAX && r->nentries <= LP_FS_MAX_ENTRIES &&
                 r->nmounts <= LP_FS_MAX_ENTRIES);
        touch_str(r->message, LP_FS_PATH_MAX);
        touch_str(r->host, LP_FS_PATH_MAX);
        touch_str(r->text, SIZE_MAX);
        touch(r->data, r->datalen);
        if (r->has_attr)
                check_attr(&r->attr);
        if (r->has_attr2)
                check_attr(&r->attr2);
        for (size_t i = 0; i < r->nentries; i++) {
                FZ_CHECK(r->entries[i].namelen <= LP_FS_NAME_MAX);
                touch(r->entries[i].name, r->entries[i].namelen);
                if (r->entries[i].has_attr)
                        check_attr(&r->entries[i].attr);
        }
        for (size_t i = 0; i < r->nmounts; i++) {
                touch_str(r->mounts[i].name, LP_FS_PATH_MAX);
                touch_str(r->mounts[i].path, LP_FS_PATH_MAX);
                touch_str(r->mounts[i].host, LP_FS_PATH_MAX);
        }
}

static void fs_req(const uint8_t *data, size_t size)
{
        struct lp_fs_req r, r2;
        uint8_t *b1, *b2;
        size_t l1, l2;
        int ret = lp_fs_req_decode(data, size, &r);

        if (ret < 0) {
                FZ_CHECK(ret == -EBADMSG || ret == -ENAMETOOLONG || ret == -ENOMEM);
                return;
        }
        req_check(&r);
        FZ_CHECK(lp_fs_req_encode(&r, &b1, &l1) == 0);
        FZ_CHECK(lp_fs_req_decode(b1, l1, &r2) == 0);
        req_check(&r2);
        FZ_CHECK(lp_fs_req_encode(&r2, &b2, &l2) == 0);
        FZ_CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
        free(b1);
        free(b2);
        lp_fs_req_release(&r);
        lp_fs_req_release(&r2);
}

static void fs_resp(const uint8_t *data, size_t size)
{
        struct lp_fs_resp r, r2;
        uint8_t *b1, *b2;
        size_t l1, l2;
        int ret = lp_fs_resp_decode(data, size, &r);

        if (ret < 0) {
                FZ_CHECK(ret == -EBADMSG || ret == -ENOMEM);
                return;
        }
        resp_check(&r);
        FZ_CHECK(lp_fs_resp_encode(&r, &b1, &l1) == 0);
        FZ_CHECK(lp_fs_resp_decode(b1, l1, &r2) == 0);
        resp_check(&r2);
        FZ_CHECK(lp_fs_resp_encode(&r2, &b2, &l2) == 0);
        FZ_CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
        free(b1);
        free(b2);
        lp_fs_resp_release(&r);
        lp_fs_resp_release(&r2);
}

static void status(const uint8_t *data, size_t size)
{
        char *msg, *msg2;
        int code, code2;
        void *buf;
        size_t len;

        if (lp_status_unpack(data, size, &code, &msg) < 0)
                return;
        touch_str(msg, SIZE_MAX);
        FZ_CHECK(lp_status_name(code) != NULL);
        FZ_CHECK(lp_status_to_errno(code) <= 0);
        if (lp_status_pack(code, msg, &buf, &len) == 0) {
                FZ_CHECK(lp_status_unpack(buf, len, &code2, &msg2) == 0);
                FZ_CHECK(code2 == code);
                /* Sent as is, or cut to LP_STATUS_MSG_MAX bytes. */
                FZ_CHECK(strlen(msg2) <= LP_STATUS_MSG_MAX);
                FZ_CHECK(strncmp(msg, msg2, strlen(msg2)) == 0);
                free(buf);
                free(msg2);
        }
        free(msg);
}

static void hello(const uint8_t *data, size_t size, bool client)
{
        struct lp__hello h, h2;
        void *buf;
        size_t len;
        int r;

        memset(&h, 0, sizeof(h));
        memset(&h2, 0, sizeof(h2));
        r = client ? lp__client_hello_unpack(data, size, &h) : lp__server_hello_unpack(data, size, &h);
        if (r < 0) {
                FZ_CHECK(r == -EBADMSG);
                return;
        }
        r = client ? lp__client_hello_pack(&h, &buf, &len) : lp__server_hello_pack(&h, &buf, &len);
        FZ_CHECK(r == 0);
        r = client ? lp__client_hello_unpack(buf, len, &h2) : lp__server_hello_unpack(buf, len, &h2);
        FZ_CHECK(r == 0 && memcmp(&h, &h2, sizeof(h)) == 0);
        free(buf);
}

static void server_auth(const uint8_t *data, size_t size)
{
        uint8_t mac[LP_MAC_SIZE], mac2[LP_MAC_SIZE];
        void *buf;
        size_t len;
        int r = lp__server_auth_unpack(data, size, mac);

        if (r < 0) {
                FZ_CHECK(r == -EBADMSG);
                return;
        }
        FZ_CHECK(lp__server_auth_pack(mac, &buf, &len) == 0);
        FZ_CHECK(lp__server_auth_unpack(buf, len, mac2) == 0 && memcmp(mac, mac2, sizeof(mac)) == 0);
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        switch (data[0] % 6) {
        case 0: fs_req(data + 1, size - 1); break;
        case 1: fs_resp(data + 1, size - 1); break;
        case 2: status(data + 1, size - 1); break;
        case 3: hello(data + 1, size - 1, false); break;
        case 4: hello(data + 1, size - 1, true); break;
        default: server_auth(data + 1, size - 1); break;
        }
        return 0;
}
