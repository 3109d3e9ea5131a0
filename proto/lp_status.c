/* lp_status.c -- see lp_status.h. */
#include "lp_status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "locus.pb-c.h"

#define SAME(c, p) _Static_assert((int)LP_STATUS_##c == (int)LOCUS__STATUS_CODE__LOCUS_##p, \
                                  "lp_status.h out of step with locus.proto: " #c)
SAME(OK, OK);
SAME(NOT_FOUND, NOT_FOUND);
SAME(EXISTS, EXISTS);
SAME(NOT_EMPTY, NOT_EMPTY);
SAME(NAME_TOO_LONG, NAME_TOO_LONG);
SAME(IS_DIR, IS_DIR);
SAME(NOT_DIR, NOT_DIR);
SAME(INVALID, INVALID);
SAME(ACCESS, ACCESS);
SAME(PERM, PERM);
SAME(CROSS_DEVICE, CROSS_DEVICE);
SAME(NO_SPACE, NO_SPACE);
SAME(IO, IO);
SAME(STALE, STALE);
SAME(CONFLICT, CONFLICT);
SAME(UNAVAILABLE, UNAVAILABLE);
SAME(TIMEOUT, TIMEOUT);
SAME(TOO_BIG, TOO_BIG);
SAME(UNSUPPORTED, UNSUPPORTED);
SAME(BAD_MESSAGE, BAD_MESSAGE);
SAME(PROTOCOL, PROTOCOL);
SAME(AUTH, AUTH);
SAME(NO_DATA, NO_DATA);
SAME(RANGE, RANGE);
SAME(TOO_MANY_LINKS, TOO_MANY_LINKS);
SAME(NO_SUCH_OFFSET, NO_SUCH_OFFSET);
SAME(BUSY, BUSY);
SAME(TOO_MANY_OPEN, TOO_MANY_OPEN);
SAME(BAD_HANDLE, BAD_HANDLE);
SAME(NO_DEVICE, NO_DEVICE);
SAME(ARG_TOO_BIG, ARG_TOO_BIG);
SAME(NOT_PRIMARY, NOT_PRIMARY);
#undef SAME

/* The one-to-one part of the mapping: status <-> errno. */
static const struct {
        const char *name;
        int err;
} status_table[LP_STATUS_COUNT_] = {
        [LP_STATUS_OK] = { "OK", 0 },
        [LP_STATUS_NOT_FOUND] = { "NOT_FOUND", ENOENT },
        [LP_STATUS_EXISTS] = { "EXISTS", EEXIST },
        [LP_STATUS_NOT_EMPTY] = { "NOT_EMPTY", ENOTEMPTY },
        [LP_STATUS_NAME_TOO_LONG] = { "NAME_TOO_LONG", ENAMETOOLONG },
        [LP_STATUS_IS_DIR] = { "IS_DIR", EISDIR },
        [LP_STATUS_NOT_DIR] = { "NOT_DIR", ENOTDIR },
        [LP_STATUS_INVALID] = { "INVALID", EINVAL },
        [LP_STATUS_ACCESS] = { "ACCESS", EACCES },
        [LP_STATUS_PERM] = { "PERM", EPERM },
        [LP_STATUS_CROSS_DEVICE] = { "CROSS_DEVICE", EXDEV },
        [LP_STATUS_NO_SPACE] = { "NO_SPACE", ENOSPC },
        [LP_STATUS_IO] = { "IO", EIO },
        [LP_STATUS_STALE] = { "STALE", ESTALE },
        [LP_STATUS_CONFLICT] = { "CONFLICT", EAGAIN },
        [LP_STATUS_UNAVAILABLE] = { "UNAVAILABLE", EHOSTUNREACH },
        [LP_STATUS_TIMEOUT] = { "TIMEOUT", ETIMEDOUT },
        [LP_STATUS_TOO_BIG] = { "TOO_BIG", EFBIG },
        [LP_STATUS_UNSUPPORTED] = { "UNSUPPORTED", EOPNOTSUPP },
        [LP_STATUS_BAD_MESSAGE] = { "BAD_MESSAGE", EBADMSG },
        [LP_STATUS_PROTOCOL] = { "PROTOCOL", EPROTO },
        [LP_STATUS_AUTH] = { "AUTH", EKEYREJECTED },
        [LP_STATUS_NO_DATA] = { "NO_DATA", ENODATA },
        [LP_STATUS_RANGE] = { "RANGE", ERANGE },
        [LP_STATUS_TOO_MANY_LINKS] = { "TOO_MANY_LINKS", EMLINK },
        [LP_STATUS_NO_SUCH_OFFSET] = { "NO_SUCH_OFFSET", ENXIO },
        [LP_STATUS_BUSY] = { "BUSY", EBUSY },
        [LP_STATUS_TOO_MANY_OPEN] = { "TOO_MANY_OPEN", ENFILE },
        [LP_STATUS_BAD_HANDLE] = { "BAD_HANDLE", EBADF },
        [LP_STATUS_NO_DEVICE] = { "NO_DEVICE", ENODEV },
        [LP_STATUS_ARG_TOO_BIG] = { "ARG_TOO_BIG", E2BIG },
        [LP_STATUS_NOT_PRIMARY] = { "NOT_PRIMARY", EREMCHG },
};

/* Further errno values that map onto a status one way only. */
static const struct {
        int err;
        enum lp_status status;
} errno_extra[] = {
        { EDQUOT, LP_STATUS_NO_SPACE },
        { EMSGSIZE, LP_STATUS_TOO_BIG },
        { ENOSYS, LP_STATUS_UNSUPPORTED },
        { EPROTONOSUPPORT, LP_STATUS_PROTOCOL },
        { ECONNREFUSED, LP_STATUS_UNAVAILABLE },
        { ECONNRESET, LP_STATUS_UNAVAILABLE },
        { ENOTCONN, LP_STATUS_UNAVAILABLE },
        { EHOSTDOWN, LP_STATUS_UNAVAILABLE },
        { ENETUNREACH, LP_STATUS_UNAVAILABLE },
        { EPIPE, LP_STATUS_UNAVAILABLE },
};

int lp_status_to_errno(int status)
{
        if (status < 0 || status >= LP_STATUS_COUNT_)
                return -EIO;
        return -status_table[status].err;
}

enum lp_status lp_errno_to_status(int err)
{
        size_t i;

        if (err < 0)
                err = -err;
        for (i = 0; i < LP_STATUS_COUNT_; i++)
                if (status_table[i].err == err)
                        return (enum lp_status)i;
        for (i = 0; i < sizeof(errno_extra) / sizeof(errno_extra[0]); i++)
                if (errno_extra[i].err == err)
                        return errno_extra[i].status;
        return LP_STATUS_IO;
}

const char *lp_status_name(int status)
{
        if (status < 0 || status >= LP_STATUS_COUNT_)
                return "UNKNOWN";
        return status_table[status].name;
}

/* Length of at most max bytes of s, not cutting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
        size_t n = strlen(s);

        if (n <= max)
                return n;
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
                n--;
        return n;
}

int lp_status_pack(enum lp_status code, const char *message, void **ret_buf,
                   size_t *ret_len)
{
        Locus__Status msg = LOCUS__STATUS__INIT;
        char *copy = NULL;
        uint8_t *buf;
        size_t len;

        if ((int)code < 0 || code >= LP_STATUS_COUNT_)
                return -EINVAL;
        msg.has_code = 1;
        msg.code = (Locus__StatusCode)code;
        if (message) {
                size_t n = utf8_cut(message, LP_STATUS_MSG_MAX);

                copy = strndup(message, n);
                if (!copy)
                        return -ENOMEM;
                msg.message = copy;
        }
        len = locus__status__get_packed_size(&msg);
        buf = malloc(len ? len : 1);
        if (!buf) {
                free(copy);
                return -ENOMEM;
        }
        locus__status__pack(&msg, buf);
        free(copy);
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

int lp_status_unpack(const void *buf, size_t len, int *ret_code, char **ret_message)
{
        Locus__Status *msg;
        char *m = NULL;
        int code;

        msg = locus__status__unpack(NULL, len, buf);
        if (!msg)
                return -EBADMSG;
        code = msg->has_code ? (int)msg->code : LP_STATUS_OK;
        if (ret_message) {
                m = strdup(msg->message ? msg->message : "");
                if (!m) {
                        locus__status__free_unpacked(msg, NULL);
                        return -ENOMEM;
                }
        }
        locus__status__free_unpacked(msg, NULL);
        *ret_code = code;
        if (ret_message)
                *ret_message = m;
        return 0;
}
