/*
 * fuzz_prekey: the prekey bundle decoder and the prekey store decoder.
 * First byte: even -> bundle (then verify it and, if it decoded, re-encode
 * and check that decoding gives back every field: identity, signed prekey,
 * each one-time entry), odd -> store for a fixed account (if it decoded,
 * encode, decode again and check the second store equals the first: same
 * encoding, same bundle, same replay counts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/identity.h"
#include "crypto/prekey.h"

#define FUZZ_NOW 1795996800000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct identity *account;
    static const uint8_t seed[IDENTITY_SEED_BYTES] = {42};

    if (account == NULL && identity_from_seed(seed, &account) != MP_OK)
        abort();
    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        struct prekey_bundle b;
        if (prekey_bundle_decode(data + 1, size - 1, &b) != MP_OK)
            return 0;
        (void)prekey_bundle_verify(&b, b.identity, FUZZ_NOW);
        uint8_t out[PREKEY_BUNDLE_WIRE_MAX];
        size_t len;
        struct prekey_bundle back;
        if (prekey_bundle_encode(&b, out, sizeof(out), &len) != MP_OK ||
            prekey_bundle_decode(out, len, &back) != MP_OK ||
            memcmp(back.identity, b.identity, sizeof(b.identity)) != 0 ||
            memcmp(&back.spk, &b.spk, sizeof(b.spk)) != 0 ||
            back.one_time_count != b.one_time_count)
            abort();
        for (uint32_t i = 0; i < b.one_time_count; i++) {
            if (back.one_time[i].id != b.one_time[i].id ||
                memcmp(back.one_time[i].pub, b.one_time[i].pub, PREKEY_KEY_BYTES) != 0)
                abort();
        }
    } else {
        struct prekey_store *s = NULL;
        if (prekey_store_decode(account, data + 1, size - 1, &s) != MP_OK) {
            if (s != NULL)
                abort();
            return 0;
        }
        struct prekey_store *back = NULL;
        struct prekey_bundle b, bb;
        struct buf wire, again;
        if (prekey_store_encode(s, &wire) != MP_OK ||
            prekey_store_decode(account, wire.data, wire.len, &back) != MP_OK ||
            prekey_store_encode(back, &again) != MP_OK || again.len != wire.len ||
            memcmp(again.data, wire.data, wire.len) != 0)
            abort();
        prekey_store_bundle(s, PREKEY_BUNDLE_ONE_TIME_MAX, &b);
        prekey_store_bundle(back, PREKEY_BUNDLE_ONE_TIME_MAX, &bb);
        if (memcmp(&b, &bb, sizeof(b)) != 0 ||
            prekey_store_one_time_count(s) != prekey_store_one_time_count(back) ||
            prekey_store_seen_count(s, b.spk.id) != prekey_store_seen_count(back, b.spk.id))
            abort();
        buf_free(&wire);
        buf_free(&again);
        prekey_store_free(back);
        prekey_store_free(s);
    }
    return 0;
}
