/*
 * lp_hs_int.h -- internal to proto/: the handshake messages and MACs.
 *
 * Packs and unpacks ServerHello, ClientHello and ServerAuth (locus.proto)
 * without exposing protobuf-c types, and computes the two MACs of the
 * handshake described in lp_conn.h.  Used by lp_server.c and lp_client.c,
 * and by the unit tests that need to play a misbehaving peer.
 *
 * Ownership: *_pack() return a malloc'ed buffer owned by the caller.
 * Threads: no state; any thread (lp__hs_init() is idempotent and safe to
 * call concurrently).
 * Errors: -ENOMEM; unpack returns -EBADMSG when the payload does not parse
 * or a field is missing or has the wrong size.
 */
#ifndef LP_HS_INT_H
#define LP_HS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "lp_conn.h"

#define LP_NONCE_SIZE 32
#define LP_MAC_SIZE 32
/* Limit on frames before authentication: hellos are ~100 bytes. */
#define LP_HS_MAX_FRAME 1024u

struct lp__hello {
        uint32_t version;
        uint64_t site_id;
        uint8_t nonce[LP_NONCE_SIZE];
        uint8_t mac[LP_MAC_SIZE];       /* ClientHello only */
        uint64_t client_id;             /* ClientHello only; 0 = absent */
};

/* sodium_init(); -EIO if libsodium cannot start. */
int lp__hs_init(void);

int lp__server_hello_pack(const struct lp__hello *h, void **ret_buf, size_t *ret_len);
int lp__server_hello_unpack(const void *buf, size_t len, struct lp__hello *ret);
int lp__client_hello_pack(const struct lp__hello *h, void **ret_buf, size_t *ret_len);
int lp__client_hello_unpack(const void *buf, size_t len, struct lp__hello *ret);
int lp__server_auth_pack(const uint8_t mac[LP_MAC_SIZE], void **ret_buf, size_t *ret_len);
int lp__server_auth_unpack(const void *buf, size_t len, uint8_t ret_mac[LP_MAC_SIZE]);

/*
 * The client's proof: HMAC-SHA-256(key, "locus-client" || version ||
 * server nonce || client nonce || server site || client site), integers as
 * fixed-width little-endian (u32 version, u64 sites).
 * The server's proof: same with "locus-server" and the nonces swapped.
 */
void lp__mac_client(const uint8_t key[LP_KEY_SIZE], uint32_t version,
                    const uint8_t sn[LP_NONCE_SIZE], const uint8_t cn[LP_NONCE_SIZE],
                    uint64_t server_site, uint64_t client_site,
                    uint8_t out[LP_MAC_SIZE]);
void lp__mac_server(const uint8_t key[LP_KEY_SIZE], uint32_t version,
                    const uint8_t cn[LP_NONCE_SIZE], const uint8_t sn[LP_NONCE_SIZE],
                    uint64_t server_site, uint64_t client_site,
                    uint8_t out[LP_MAC_SIZE]);

/* Constant-time comparison of two MACs: 0 if equal, -1 if not. */
int lp__mac_verify(const uint8_t a[LP_MAC_SIZE], const uint8_t b[LP_MAC_SIZE]);

/* Fill buf with random bytes (libsodium). */
void lp__random(void *buf, size_t len);

#endif
