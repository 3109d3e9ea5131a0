/*
 * lp_frame.h -- LocusFS framing: how messages are cut out of a TCP stream.
 *
 * A frame is a 16-byte little-endian header followed by `len` payload bytes
 * (a protobuf-c encoded message whose kind is given by `type`, or raw bytes):
 *
 *   offset size field
 *        0    1 mark     0xA1: high nibble 0xA = LocusFS magic,
 *                              low nibble = frame format version (1)
 *        1    3 len      payload length, u24 LE (so at most 16 MiB - 1)
 *        4    2 type     message type, u16 LE (LP_MSG_*; 0 is invalid)
 *        6    2 flags    u16 LE (LP_F_*; unknown bits are carried, not refused)
 *        8    8 reqid    request id, u64 LE (a reply repeats the request's)
 *       16  len payload
 *
 * Read as one u32 LE, bytes 0..3 are (len << 8) | mark.  The header is 16
 * bytes so that the three fields every protocol needs (type, flags, a
 * 64-bit request id) fit with the length in two aligned words; the magic
 * and version share the length word because 24 bits of length are plenty
 * (LP_FRAME_HARD_MAX below) and a one-byte mark is enough to catch a
 * desynchronised stream or a foreign protocol on the port.  The protocol
 * version proper is negotiated in the handshake (lp_conn.h).
 *
 * Limits: every decoder and encoder has a maximum payload size chosen by its
 * owner (default LP_MAX_FRAME), never above the compile-time LP_FRAME_HARD_MAX.
 * The decoder checks the length from the header before it allocates
 * anything, so a peer can make it allocate at most `max` bytes.
 *
 * Ownership: lp_frame_encode() returns a malloc'ed buffer owned by the
 * caller.  A frame returned by lp_decoder_feed() owns its payload (malloc'ed,
 * NULL when len == 0); the caller frees it with free().
 *
 * Threads: no global state.  A decoder belongs to one thread at a time.
 *
 * Errors (negative errno):
 *   -EBADMSG          the header does not start with the LocusFS magic, or
 *                     names message type 0
 *   -EPROTONOSUPPORT  the magic is right but the frame format version is not
 *   -EMSGSIZE         the payload is longer than the limit
 *   -EINVAL           a bad argument (limit above LP_FRAME_HARD_MAX, ...)
 *   -ENOMEM           allocation failed
 * A decoder that returned an error keeps returning it (sticky): the stream
 * cannot be resynchronised, the connection must be closed.
 */
#ifndef LP_FRAME_H
#define LP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LP_FRAME_HDR 16u
#define LP_FRAME_MAGIC 0xA0u         /* high nibble of byte 0 */
#define LP_FRAME_VERSION 1u          /* low nibble of byte 0 */
#define LP_FRAME_MARK (LP_FRAME_MAGIC | LP_FRAME_VERSION)

/* Compile-time cap: what 24 bits of length can express. */
#define LP_FRAME_HARD_MAX ((1u << 24) - 1)
/* Default limit: 8 MiB of data plus room for the message around it. */
#define LP_MAX_FRAME ((8u << 20) + (64u << 10))

/* Flags (u16).  Bits 0..7 are libproto's, 8..15 belong to the protocols. */
#define LP_F_REPLY 0x0001u           /* this frame answers request `reqid` */

/*
 * Message types (u16), mirrored from enum MsgType in locus.proto.  1..63
 * are libproto's; the filesystem protocols use LP_MSG_USER_MIN and up.
 */
enum lp_msg_type {
        LP_MSG_INVALID = 0,
        LP_MSG_SERVER_HELLO = 1,
        LP_MSG_CLIENT_HELLO = 2,
        LP_MSG_SERVER_AUTH = 3,
        LP_MSG_STATUS = 4,
        LP_MSG_USER_MIN = 64,
};

struct lp_frame {
        uint16_t type;
        uint16_t flags;
        uint64_t reqid;
        uint32_t len;
        uint8_t *payload;       /* malloc'ed, owned by whoever holds the frame */
};

/*
 * Write a header for a payload of `len` bytes into hdr.  Returns 0, or
 * -EMSGSIZE if len > LP_FRAME_HARD_MAX, -EINVAL if type is 0.
 */
int lp_frame_header_pack(uint8_t hdr[LP_FRAME_HDR], uint16_t type, uint16_t flags,
                         uint64_t reqid, size_t len);

/*
 * Parse a header; check the mark, the type and that len <= max (max <=
 * LP_FRAME_HARD_MAX).  On success fills *ret (payload NULL) and returns 0.
 */
int lp_frame_header_unpack(const uint8_t hdr[LP_FRAME_HDR], size_t max,
                           struct lp_frame *ret);

/*
 * Encode one frame (header + copy of payload) into a new malloc'ed buffer
 * of LP_FRAME_HDR + len bytes.  payload may be NULL when len == 0.  Returns
 * 0, -EMSGSIZE (len > max), -EINVAL, -ENOMEM.
 */
int lp_frame_encode(uint16_t type, uint16_t flags, uint64_t reqid,
                    const void *payload, size_t len, size_t max,
                    uint8_t **ret_buf, size_t *ret_len);

/* Free a frame's payload and clear it; NULL is fine. */
void lp_frame_clear(struct lp_frame *f);

/*
 * Incremental decoder for a byte stream (blocking or not): feed it whatever
 * arrived, in pieces of any size, and it hands back complete frames.
 */
struct lp_decoder;

/* max: payload limit, 1..LP_FRAME_HARD_MAX (0 means LP_MAX_FRAME). */
int lp_decoder_new(size_t max, struct lp_decoder **ret_dec);
void lp_decoder_free(struct lp_decoder *dec);

/*
 * Change the payload limit; it applies from the next header on (a frame
 * whose header was already accepted is completed).  -EINVAL if out of range.
 */
int lp_decoder_set_max(struct lp_decoder *dec, size_t max);
size_t lp_decoder_get_max(const struct lp_decoder *dec);

/*
 * Consume bytes from buf, at most up to the end of the next frame.
 * Returns:
 *   1  a frame is complete: *ret_frame is filled (the caller now owns its
 *      payload), *ret_used says how many bytes of buf were consumed; feed
 *      the rest (buf + *ret_used) in the next call;
 *   0  all len bytes consumed (*ret_used == len), no complete frame yet;
 *  <0  the stream is malformed (see above); sticky.
 * ret_used is written on success (>= 0) only.
 */
int lp_decoder_feed(struct lp_decoder *dec, const void *buf, size_t len,
                    size_t *ret_used, struct lp_frame *ret_frame);

/* True when the decoder holds part of a frame (used to word EOF errors). */
int lp_decoder_partial(const struct lp_decoder *dec);

#ifdef __cplusplus
}
#endif

#endif
