/* lp_hs.c -- see lp_hs_int.h. */
#include "lp_hs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lp_frame.h"
#include "locus.pb-c.h"

#define SAME(c, p) _Static_assert((int)LP_MSG_##c == (int)LOCUS__MSG_TYPE__MSG_##p, \
                                  "lp_frame.h out of step with locus.proto: " #c)
SAME(INVALID, INVALID);
SAME(SERVER_HELLO, SERVER_HELLO);
SAME(CLIENT_HELLO, CLIENT_HELLO);
SAME(SERVER_AUTH, SERVER_AUTH);
SAME(STATUS, STATUS);
#undef SAME

_Static_assert(crypto_auth_hmacsha256_KEYBYTES == LP_KEY_SIZE, "key size");
_Static_assert(crypto_auth_hmacsha256_BYTES == LP_MAC_SIZE, "mac size");

int lp__hs_init(void)
{
        return sodium_init() < 0 ? -EIO : 0;
}

void lp__random(void *buf, size_t len)
{
        randombytes_buf(buf, len);
}

/* Pack any protobuf-c message into a fresh buffer (never NULL). */
static int pack_msg(const ProtobufCMessage *m, void **ret_buf, size_t *ret_len)
{
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(len ? len : 1);

        if (!buf)
                return -ENOMEM;
        protobuf_c_message_pack(m, buf);
        *ret_buf = buf;
        *ret_len = len;
        return 0;
}

static int copy_fixed(uint8_t *dst, size_t size, protobuf_c_boolean has,
                      const ProtobufCBinaryData *b)
{
        if (!has || b->len != size)
                return -EBADMSG;
        memcpy(dst, b->data, size);
        return 0;
}

int lp__server_hello_pack(const struct lp__hello *h, void **ret_buf, size_t *ret_len)
{
        Locus__ServerHello m = LOCUS__SERVER_HELLO__INIT;

        m.has_version = 1;
        m.version = h->version;
        m.has_site_id = 1;
        m.site_id = h->site_id;
        m.has_nonce = 1;
        m.nonce.len = LP_NONCE_SIZE;
        m.nonce.data = (uint8_t *)h->nonce;
        return pack_msg(&m.base, ret_buf, ret_len);
}

int lp__server_hello_unpack(const void *buf, size_t len, struct lp__hello *ret)
{
        Locus__ServerHello *m = locus__server_hello__unpack(NULL, len, buf);
        struct lp__hello h;
        int r = -EBADMSG;

        if (!m)
                return -EBADMSG;
        memset(&h, 0, sizeof(h));
        if (!m->has_version || !m->has_site_id)
                goto out;
        h.version = m->version;
        h.site_id = m->site_id;
        r = copy_fixed(h.nonce, LP_NONCE_SIZE, m->has_nonce, &m->nonce);
        if (r < 0)
                goto out;
        *ret = h;
out:
        locus__server_hello__free_unpacked(m, NULL);
        return r;
}

int lp__client_hello_pack(const struct lp__hello *h, void **ret_buf, size_t *ret_len)
{
        Locus__ClientHello m = LOCUS__CLIENT_HELLO__INIT;

        m.has_version = 1;
        m.version = h->version;
        m.has_site_id = 1;
        m.site_id = h->site_id;
        m.has_nonce = 1;
        m.nonce.len = LP_NONCE_SIZE;
        m.nonce.data = (uint8_t *)h->nonce;
        m.has_mac = 1;
        m.mac.len = LP_MAC_SIZE;
        m.mac.data = (uint8_t *)h->mac;
        m.has_client_id = h->client_id != 0;
        m.client_id = h->client_id;
        return pack_msg(&m.base, ret_buf, ret_len);
}

int lp__client_hello_unpack(const void *buf, size_t len, struct lp__hello *ret)
{
        Locus__ClientHello *m = locus__client_hello__unpack(NULL, len, buf);
        struct lp__hello h;
        int r = -EBADMSG;

        if (!m)
                return -EBADMSG;
        memset(&h, 0, sizeof(h));
        if (!m->has_version || !m->has_site_id)
                goto out;
        h.version = m->version;
        h.site_id = m->site_id;
        h.client_id = m->has_client_id ? m->client_id : 0;
        r = copy_fixed(h.nonce, LP_NONCE_SIZE, m->has_nonce, &m->nonce);
        if (r < 0)
                goto out;
        r = copy_fixed(h.mac, LP_MAC_SIZE, m->has_mac, &m->mac);
        if (r < 0)
                goto out;
        *ret = h;
out:
        locus__client_hello__free_unpacked(m, NULL);
        return r;
}

int lp__server_auth_pack(const uint8_t mac[LP_MAC_SIZE], void **ret_buf, size_t *ret_len)
{
        Locus__ServerAuth m = LOCUS__SERVER_AUTH__INIT;

        m.has_mac = 1;
        m.mac.len = LP_MAC_SIZE;
        m.mac.data = (uint8_t *)mac;
        return pack_msg(&m.base, ret_buf, ret_len);
}

int lp__server_auth_unpack(const void *buf, size_t len, uint8_t ret_mac[LP_MAC_SIZE])
{
        Locus__ServerAuth *m = locus__server_auth__unpack(NULL, len, buf);
        int r;

        if (!m)
                return -EBADMSG;
        r = copy_fixed(ret_mac, LP_MAC_SIZE, m->has_mac, &m->mac);
        locus__server_auth__free_unpacked(m, NULL);
        return r;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
        for (int i = 0; i < n; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

/* label (12 bytes) || u32 version || n1 || n2 || u64 server || u64 client */
static void mac(const uint8_t key[LP_KEY_SIZE], const char label[12], uint32_t version,
                const uint8_t n1[LP_NONCE_SIZE], const uint8_t n2[LP_NONCE_SIZE],
                uint64_t server_site, uint64_t client_site, uint8_t out[LP_MAC_SIZE])
{
        uint8_t in[12 + 4 + 2 * LP_NONCE_SIZE + 8 + 8];
        uint8_t *p = in;

        memcpy(p, label, 12);
        p += 12;
        put_le(p, version, 4);
        p += 4;
        memcpy(p, n1, LP_NONCE_SIZE);
        p += LP_NONCE_SIZE;
        memcpy(p, n2, LP_NONCE_SIZE);
        p += LP_NONCE_SIZE;
        put_le(p, server_site, 8);
        p += 8;
        put_le(p, client_site, 8);
        crypto_auth_hmacsha256(out, in, sizeof(in), key);
}

void lp__mac_client(const uint8_t key[LP_KEY_SIZE], uint32_t version,
                    const uint8_t sn[LP_NONCE_SIZE], const uint8_t cn[LP_NONCE_SIZE],
                    uint64_t server_site, uint64_t client_site,
                    uint8_t out[LP_MAC_SIZE])
{
        mac(key, "locus-client", version, sn, cn, server_site, client_site, out);
}

void lp__mac_server(const uint8_t key[LP_KEY_SIZE], uint32_t version,
                    const uint8_t cn[LP_NONCE_SIZE], const uint8_t sn[LP_NONCE_SIZE],
                    uint64_t server_site, uint64_t client_site,
                    uint8_t out[LP_MAC_SIZE])
{
        mac(key, "locus-server", version, cn, sn, server_site, client_site, out);
}

int lp__mac_verify(const uint8_t a[LP_MAC_SIZE], const uint8_t b[LP_MAC_SIZE])
{
        return crypto_verify_32(a, b) == 0 ? 0 : -1;
}
