/*
 * fuzz_ratchet: the ratchet header and state decoders, and decryption of
 * arbitrary bytes against a fixed session.
 * First byte mod 3: 0 -> header decoder (round trip checked), 1 -> state
 * decoder (round trip: the decoded state, encoded and decoded again, gives
 * the same encoding and the same counters), 2 -> [1-byte header length][header][ciphertext]
 * decrypted by a session that has seen a few messages (kept keys, ended chains); a failed decrypt
 * must leave the session byte-for-byte unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/ratchet.h"
#include "tests/support/test_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct test_env te;
static struct buf session; /* the fixed session, encoded */

static void must(enum mp_err err)
{
    if (err != MP_OK)
        abort();
}

/* Bob after: a0 a1 (a2 skipped) a3, reply, a4 (new chain). */
static void build_session(void)
{
    uint8_t root[32] = {1}, ad[64] = {2}, sk[32] = {3}, pk[32];
    uint8_t pt[8] = {0}, ct[8 + RATCHET_OVERHEAD], out[8];
    struct ratchet_header h;
    struct ratchet *a, *b;

    test_env_init(&te, 1);
    if (crypto_scalarmult_base(pk, sk) != 0)
        abort();
    must(ratchet_new_initiator(&te.env, root, ad, pk, &a));
    must(ratchet_new_responder(&te.env, root, ad, sk, pk, &b));
    for (int i = 0; i < 4; i++) {
        must(ratchet_encrypt(a, pt, sizeof(pt), &h, ct));
        if (i != 2)
            must(ratchet_decrypt(b, &h, ct, sizeof(ct), out));
    }
    must(ratchet_encrypt(b, pt, sizeof(pt), &h, ct));
    must(ratchet_decrypt(a, &h, ct, sizeof(ct), out));
    must(ratchet_encrypt(a, pt, sizeof(pt), &h, ct));
    must(ratchet_decrypt(b, &h, ct, sizeof(ct), out));
    must(ratchet_state_encode(b, &session));
    ratchet_free(a);
    ratchet_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (session.data == NULL)
        build_session();
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        struct ratchet_header h, back;
        uint8_t out[RATCHET_HEADER_WIRE_MAX];
        size_t len;
        if (ratchet_header_decode(data, size, &h) != MP_OK)
            return 0;
        must(ratchet_header_encode(&h, out, &len));
        must(ratchet_header_decode(out, len, &back));
        if (memcmp(&h, &back, sizeof(h)) != 0)
            abort();
    } else if (mode == 1) {
        struct ratchet *r = NULL;
        if (ratchet_state_decode(&te.env, data, size, &r) != MP_OK) {
            if (r != NULL)
                abort();
            return 0;
        }
        struct ratchet *back = NULL;
        struct buf wire, again;
        must(ratchet_state_encode(r, &wire));
        must(ratchet_state_decode(&te.env, wire.data, wire.len, &back));
        must(ratchet_state_encode(back, &again));
        if (again.len != wire.len || memcmp(again.data, wire.data, wire.len) != 0 ||
            ratchet_skipped_count(back) != ratchet_skipped_count(r) ||
            ratchet_has_received(back) != ratchet_has_received(r) ||
            memcmp(ratchet_ad(back), ratchet_ad(r), RATCHET_AD_BYTES) != 0)
            abort();
        buf_free(&wire);
        buf_free(&again);
        ratchet_free(back);
        ratchet_free(r);
    } else {
        struct ratchet_header h;
        struct ratchet *r = NULL;
        if (size < 1 || (size_t)data[0] + 1 > size)
            return 0;
        if (ratchet_header_decode(data + 1, data[0], &h) != MP_OK)
            return 0;
        const uint8_t *ct = data + 1 + data[0];
        size_t ct_len = size - 1 - data[0];
        must(ratchet_state_decode(&te.env, session.data, session.len, &r));
        uint8_t *pt = malloc(ct_len + 1);
        if (pt == NULL)
            abort();
        enum mp_err err = ratchet_decrypt(r, &h, ct, ct_len, pt);
        if (err != MP_OK) {
            struct buf now;
            must(ratchet_state_encode(r, &now));
            if (now.len != session.len || memcmp(now.data, session.data, now.len) != 0)
                abort(); /* a failed decrypt changed the session */
            buf_free(&now);
        }
        free(pt);
        ratchet_free(r);
    }
    return 0;
}
