/*
 * Fuzz target: DHT datagrams. The input is used three ways: as a message body
 * for the codec (decode, and if it decodes, encode and decode again to the
 * same struct); as a raw datagram for a node (header, rate, AEAD checks); and
 * sealed under a valid key for that node, so the bytes reach the decoder and
 * the request/answer handlers behind the AEAD check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/box.h"
#include "dht/dht.h"
#include "dht/dht_wire.h"
#include "tests/support/test_env.h"

static enum mp_err discard(void *ctx, const struct addr *to, const uint8_t *buf, size_t len)
{
    (void)ctx;
    (void)to;
    (void)buf;
    (void)len;
    return MP_OK;
}

static struct test_env te;
static struct box_key *node_key, *peer_key;
static struct dht *node;
static uint8_t shared[BOX_SHARED_BYTES];

static void init(void)
{
    uint8_t net[BOX_NETWORK_KEY_BYTES];
    struct dht_config cfg;
    test_env_init(&te, 1);
    te.env.send = discard;
    dht_config_default(&cfg);
    cfg.rate_per_s = 0;
    if (box_key_generate(&te.env, &node_key) != MP_OK ||
        box_key_generate(&te.env, &peer_key) != MP_OK ||
        dht_new(&te.env, node_key, &cfg, &node) != MP_OK)
        abort();
    box_public_network_key(net);
    if (box_shared(peer_key, box_key_public(node_key), net, shared) != MP_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct addr from = {ADDR_FAMILY_IPV4, 5000, {192, 0, 2, 1}};
    struct dht_msg m, again;
    uint8_t buf[DHT_DATAGRAM_MAX];
    size_t len = 0;

    if (node == NULL)
        init();
    if (dht_wire_decode(data, size, &m) == MP_OK) {
        if (dht_wire_encode(&m, buf, sizeof(buf), &len) != MP_OK ||
            dht_wire_decode(buf, len, &again) != MP_OK || memcmp(&m, &again, sizeof(m)) != 0)
            abort();
    }
    dht_on_datagram(node, &from, data, size);
    if (size <= DHT_WIRE_BODY_MAX) {
        buf[0] = 1;
        memcpy(buf + 1, box_key_public(peer_key), 32);
        memset(buf + 33, 0, BOX_NONCE_BYTES);
        box_seal(shared, buf + 33, buf, 57, data, size, buf + 57);
        dht_on_datagram(node, &from, buf, 57 + size + BOX_TAG_BYTES);
    }
    te.now_ms += 100;
    dht_tick(node);
    return 0;
}
