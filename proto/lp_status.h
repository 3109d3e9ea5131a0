/*
 * lp_status.h -- wire status codes, their errno mapping, and the Status
 * message (the generic error reply).
 *
 * On the wire an outcome is an enum lp_status (locus.proto: StatusCode),
 * never a host errno: errno numbers differ between systems and carry host
 * detail the peer cannot act on.  Code that speaks errno converts at the
 * edge with lp_errno_to_status() before sending and lp_status_to_errno()
 * after receiving.  The mapping is one-to-one for the errno values named
 * in the table in lp_status.c; a few more errno values map onto the
 * nearest status (one way), and anything else becomes LP_STATUS_IO.
 *
 * Ownership: lp_status_pack() returns a malloc'ed buffer and
 * lp_status_unpack() a malloc'ed message string, both owned by the caller
 * (free()).  lp_status_name() returns a static string.
 *
 * Threads: no state; any thread.
 *
 * Errors: lp_status_pack: -ENOMEM, -EINVAL (code out of range);
 * lp_status_unpack: -EBADMSG (payload does not parse), -ENOMEM.
 */
#ifndef LP_STATUS_H
#define LP_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Values are fixed by locus.proto (enum StatusCode). */
enum lp_status {
        LP_STATUS_OK = 0,
        LP_STATUS_NOT_FOUND = 1,
        LP_STATUS_EXISTS = 2,
        LP_STATUS_NOT_EMPTY = 3,
        LP_STATUS_NAME_TOO_LONG = 4,
        LP_STATUS_IS_DIR = 5,
        LP_STATUS_NOT_DIR = 6,
        LP_STATUS_INVALID = 7,
        LP_STATUS_ACCESS = 8,
        LP_STATUS_PERM = 9,
        LP_STATUS_CROSS_DEVICE = 10,
        LP_STATUS_NO_SPACE = 11,
        LP_STATUS_IO = 12,
        LP_STATUS_STALE = 13,
        LP_STATUS_CONFLICT = 14,
        LP_STATUS_UNAVAILABLE = 15,
        LP_STATUS_TIMEOUT = 16,
        LP_STATUS_TOO_BIG = 17,
        LP_STATUS_UNSUPPORTED = 18,
        LP_STATUS_BAD_MESSAGE = 19,
        LP_STATUS_PROTOCOL = 20,
        LP_STATUS_AUTH = 21,
        LP_STATUS_NO_DATA = 22,
        LP_STATUS_RANGE = 23,
        LP_STATUS_TOO_MANY_LINKS = 24,
        LP_STATUS_NO_SUCH_OFFSET = 25,
        LP_STATUS_BUSY = 26,
        LP_STATUS_TOO_MANY_OPEN = 27,
        LP_STATUS_BAD_HANDLE = 28,
        LP_STATUS_NO_DEVICE = 29,
        LP_STATUS_ARG_TOO_BIG = 30,
        LP_STATUS_NOT_PRIMARY = 31,     /* a change sent to a secondary copy; nothing done */
        LP_STATUS_COUNT_         /* number of codes; not a code */
};

/* Longest message lp_status_pack() sends; longer ones are cut (at a UTF-8
 * character boundary). */
#define LP_STATUS_MSG_MAX 1024

/*
 * Status -> negative errno (0 for LP_STATUS_OK).  Unknown codes (a newer
 * peer) give -EIO.
 */
int lp_status_to_errno(int status);

/*
 * errno -> status.  Accepts err or -err; 0 gives LP_STATUS_OK.
 */
enum lp_status lp_errno_to_status(int err);

/* "NOT_FOUND", ...; "UNKNOWN" for codes this build does not know. */
const char *lp_status_name(int status);

/*
 * Encode a Status message (the payload of an LP_MSG_STATUS frame).
 * message may be NULL.  Returns 0 and a malloc'ed buffer (never NULL, even
 * for an empty encoding) in *ret_buf / *ret_len.
 */
int lp_status_pack(enum lp_status code, const char *message, void **ret_buf,
                   size_t *ret_len);

/*
 * Decode a Status message.  *ret_code gets the code as sent (possibly one
 * this build does not know; pass it to lp_status_to_errno()); an absent
 * code is LP_STATUS_OK.  If ret_message is not NULL it gets a malloc'ed
 * NUL-terminated copy of the message ("" when absent).
 */
int lp_status_unpack(const void *buf, size_t len, int *ret_code, char **ret_message);

#ifdef __cplusplus
}
#endif

#endif
