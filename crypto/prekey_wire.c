/*
 * Codecs of prekeys: the public bundle and the owner's stored prekey secrets.
 * Formats: docs/PROTOCOL.md, "Prekey bundles and session setup".
 */
#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/prekey.h"
#include "crypto/prekey_store.h"
#include "crypto/wire.h"

#define BUNDLE_VERSION 1
#define BUNDLE_FIELDS  4
#define STORE_VERSION  1
#define STORE_FIELDS   7

/* ---- bundle ---- */

static void pack_spk(msgpack_packer *pk, const struct prekey_signed *s)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint32(pk, s->id);
    wire_pack_bin(pk, s->pub, PREKEY_KEY_BYTES);
    msgpack_pack_uint64(pk, s->created_ms);
    msgpack_pack_uint64(pk, s->expires_ms);
    wire_pack_bin(pk, s->sig, IDENTITY_SIGNATURE_BYTES);
}

static bool get_spk(const msgpack_object *o, struct prekey_signed *s)
{
    uint32_t n;
    const msgpack_object *f = wire_get_array(o, 5, 5, &n);

    return f != NULL && wire_get_u32(&f[0], &s->id) &&
           wire_get_bin(&f[1], s->pub, PREKEY_KEY_BYTES) && wire_get_u64(&f[2], &s->created_ms) &&
           wire_get_u64(&f[3], &s->expires_ms) &&
           wire_get_bin(&f[4], s->sig, IDENTITY_SIGNATURE_BYTES);
}

static void pack_bundle_cb(msgpack_packer *pk, const void *obj)
{
    const struct prekey_bundle *b = obj;

    msgpack_pack_array(pk, BUNDLE_FIELDS);
    msgpack_pack_uint32(pk, BUNDLE_VERSION);
    wire_pack_bin(pk, b->identity, IDENTITY_PUBLIC_BYTES);
    pack_spk(pk, &b->spk);
    msgpack_pack_array(pk, b->one_time_count);
    for (uint32_t i = 0; i < b->one_time_count; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, b->one_time[i].id);
        wire_pack_bin(pk, b->one_time[i].pub, PREKEY_KEY_BYTES);
    }
}

enum mp_err prekey_bundle_encode(const struct prekey_bundle *b, uint8_t *out, size_t cap,
                                 size_t *len_out)
{
    if (b->one_time_count > PREKEY_BUNDLE_ONE_TIME_MAX)
        return MP_ERR_INVAL;
    return wire_encode_into(pack_bundle_cb, b, out,
                            cap < PREKEY_BUNDLE_WIRE_MAX ? cap : PREKEY_BUNDLE_WIRE_MAX, len_out);
}

enum mp_err prekey_bundle_decode(const uint8_t *data, size_t len, struct prekey_bundle *b_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct prekey_bundle *b = NULL;
    uint32_t n = 0;
    enum mp_err err;

    if (len > PREKEY_BUNDLE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, BUNDLE_VERSION, BUNDLE_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    const msgpack_object *otk = wire_get_array(&f[3], 0, PREKEY_BUNDLE_ONE_TIME_MAX, &n);
    err = MP_ERR_MALFORMED;
    if (!wire_get_bin(&f[1], b->identity, IDENTITY_PUBLIC_BYTES) || !get_spk(&f[2], &b->spk) ||
        otk == NULL)
        goto cleanup;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        const msgpack_object *e = wire_get_array(&otk[i], 2, 2, &two);
        if (e == NULL || !wire_get_u32(&e[0], &b->one_time[i].id) ||
            !wire_get_bin(&e[1], b->one_time[i].pub, PREKEY_KEY_BYTES))
            goto cleanup;
    }
    b->one_time_count = n;
    *b_out = *b;
    err = MP_OK;
cleanup:
    free(b);
    msgpack_unpacked_destroy(&u);
    return err;
}

/* ---- store ---- */

static void pack_store_cb(msgpack_packer *pk, const void *obj)
{
    const struct prekey_store *s = obj;

    msgpack_pack_array(pk, STORE_FIELDS);
    msgpack_pack_uint32(pk, STORE_VERSION);
    wire_pack_bin(pk, s->account_pk, IDENTITY_PUBLIC_BYTES);
    msgpack_pack_uint32(pk, s->next_spk_id);
    msgpack_pack_uint32(pk, s->next_opk_id);
    msgpack_pack_array(pk, s->spk_count);
    for (uint32_t i = 0; i < s->spk_count; i++) {
        msgpack_pack_array(pk, 3);
        wire_pack_bin(pk, s->spk[i].sk, PREKEY_KEY_BYTES);
        pack_spk(pk, &s->spk[i].pub);
        msgpack_pack_uint64(pk, s->spk[i].keep_until_ms);
    }
    msgpack_pack_array(pk, s->opk_count);
    for (uint32_t i = 0; i < s->opk_count; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, s->opk[i].id);
        wire_pack_bin(pk, s->opk[i].sk, PREKEY_KEY_BYTES);
    }
    msgpack_pack_array(pk, s->seen_count);
    for (uint32_t i = 0; i < s->seen_count; i++) {
        msgpack_pack_array(pk, 2);
        wire_pack_bin(pk, s->seen[i].eph, PREKEY_KEY_BYTES);
        msgpack_pack_uint32(pk, s->seen[i].spk_id);
    }
}

enum mp_err prekey_store_encode(const struct prekey_store *s, struct buf *out)
{
    return wire_encode_buf(pack_store_cb, s, PREKEY_STORE_WIRE_MAX, out);
}

/* The public half of an X25519 secret; false if it is unusable. */
static bool public_of(const uint8_t sk[PREKEY_KEY_BYTES], uint8_t pk[PREKEY_KEY_BYTES])
{
    return crypto_scalarmult_base(pk, sk) == 0;
}

static bool get_store_lists(const msgpack_object *f, struct prekey_store *s)
{
    uint32_t n = 0, two = 0;
    uint8_t pk[PREKEY_KEY_BYTES];
    const msgpack_object *a = wire_get_array(&f[4], 1, PREKEY_SIGNED_KEEP, &n);

    if (a == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct prekey_spk_secret *k = &s->spk[i];
        const msgpack_object *e = wire_get_array(&a[i], 3, 3, &two);
        if (e == NULL || !wire_get_bin(&e[0], k->sk, PREKEY_KEY_BYTES) ||
            !get_spk(&e[1], &k->pub) || !wire_get_u64(&e[2], &k->keep_until_ms) ||
            !public_of(k->sk, pk) || sodium_memcmp(pk, k->pub.pub, PREKEY_KEY_BYTES) != 0)
            return false;
        s->spk_count = i + 1;
    }
    if ((a = wire_get_array(&f[5], 0, PREKEY_ONE_TIME_MAX, &n)) == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct prekey_opk_secret *k = &s->opk[i];
        const msgpack_object *e = wire_get_array(&a[i], 2, 2, &two);
        if (e == NULL || !wire_get_u32(&e[0], &k->id) ||
            !wire_get_bin(&e[1], k->sk, PREKEY_KEY_BYTES) || !public_of(k->sk, k->pk))
            return false;
        s->opk_count = i + 1;
    }
    /* Replay records: each names a held signed prekey, at most
     * PREKEY_SEEN_PER_SIGNED each (what prekey_store_commit keeps to). */
    uint32_t per_spk[PREKEY_SIGNED_KEEP] = {0};
    if ((a = wire_get_array(&f[6], 0, PREKEY_SEEN_MAX, &n)) == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = wire_get_array(&a[i], 2, 2, &two);
        if (e == NULL || !wire_get_bin(&e[0], s->seen[i].eph, PREKEY_KEY_BYTES) ||
            !wire_get_u32(&e[1], &s->seen[i].spk_id))
            return false;
        uint32_t j = 0;
        while (j < s->spk_count && s->spk[j].pub.id != s->seen[i].spk_id)
            j++;
        if (j == s->spk_count || ++per_spk[j] > PREKEY_SEEN_PER_SIGNED)
            return false;
        s->seen_count = i + 1;
    }
    return true;
}

enum mp_err prekey_store_decode(const struct identity *account, const uint8_t *data, size_t len,
                                struct prekey_store **store_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct prekey_store *s = NULL;
    uint8_t ik_pk[PREKEY_KEY_BYTES];
    enum mp_err err;

    if (len > PREKEY_STORE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, STORE_VERSION, STORE_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    err = MP_ERR_MALFORMED;
    if (!wire_get_bin(&f[1], s->account_pk, IDENTITY_PUBLIC_BYTES) ||
        !wire_get_u32(&f[2], &s->next_spk_id) || !wire_get_u32(&f[3], &s->next_opk_id) ||
        !get_store_lists(f, s))
        goto cleanup;
    if (sodium_memcmp(s->account_pk, identity_public_key(account), IDENTITY_PUBLIC_BYTES) != 0) {
        err = MP_ERR_PREKEY_OWNER;
        goto cleanup;
    }
    err = prekey_identity_dh(account, s->ik_sk, ik_pk);
    if (err != MP_OK)
        goto cleanup;
    *store_out = s;
    s = NULL;
cleanup:
    prekey_store_free(s);
    msgpack_unpacked_destroy(&u);
    return err;
}
