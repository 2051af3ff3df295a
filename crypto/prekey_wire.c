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
#include "crypto/ratchet.h"

#define BUNDLE_VERSION 1
#define BUNDLE_FIELDS  4
#define STORE_VERSION  1
#define STORE_FIELDS   7

struct sink {
    uint8_t *buf;
    size_t cap;
    size_t len;
};

static int sink_write(void *data, const char *p, size_t n)
{
    struct sink *s = data;

    if (s->buf != NULL) {
        if (n > s->cap - s->len)
            return -1;
        memcpy(s->buf + s->len, p, n);
    }
    s->len += n;
    return 0;
}

static void pack_bin(msgpack_packer *pk, const uint8_t *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

static bool get_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

static bool get_u32(const msgpack_object *o, uint32_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return false;
    *out = (uint32_t)o->via.u64;
    return true;
}

static bool get_bin(const msgpack_object *o, uint8_t *out, size_t n)
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
        return false;
    memcpy(out, o->via.bin.ptr, n);
    return true;
}

/* The array in o if it has between min and max elements, else NULL. */
static const msgpack_object *get_array(const msgpack_object *o, uint32_t min, uint32_t max,
                                       uint32_t *n_out)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < min || o->via.array.size > max)
        return NULL;
    *n_out = o->via.array.size;
    return o->via.array.ptr;
}

/* Unpack one object spanning all of data; check its version field. */
static enum mp_err unpack_versioned(const uint8_t *data, size_t len, msgpack_unpacked *u,
                                    uint32_t version, uint32_t fields)
{
    size_t off = 0;
    uint32_t v, n;

    if (!ratchet_wire_bounded(data, len) ||
        msgpack_unpack_next(u, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        return MP_ERR_MALFORMED;
    const msgpack_object *f = get_array(&u->data, 1, UINT32_MAX, &n);
    if (f == NULL || !get_u32(&f[0], &v))
        return MP_ERR_MALFORMED;
    if (v != version)
        return MP_ERR_WIRE_VERSION;
    return n == fields ? MP_OK : MP_ERR_MALFORMED;
}

/* ---- bundle ---- */

static void pack_spk(msgpack_packer *pk, const struct prekey_signed *s)
{
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint32(pk, s->id);
    pack_bin(pk, s->pub, PREKEY_KEY_BYTES);
    msgpack_pack_uint64(pk, s->created_ms);
    msgpack_pack_uint64(pk, s->expires_ms);
    pack_bin(pk, s->sig, IDENTITY_SIGNATURE_BYTES);
}

static bool get_spk(const msgpack_object *o, struct prekey_signed *s)
{
    uint32_t n;
    const msgpack_object *f = get_array(o, 5, 5, &n);

    return f != NULL && get_u32(&f[0], &s->id) && get_bin(&f[1], s->pub, PREKEY_KEY_BYTES) &&
           get_u64(&f[2], &s->created_ms) && get_u64(&f[3], &s->expires_ms) &&
           get_bin(&f[4], s->sig, IDENTITY_SIGNATURE_BYTES);
}

static void pack_bundle(msgpack_packer *pk, const struct prekey_bundle *b)
{
    msgpack_pack_array(pk, BUNDLE_FIELDS);
    msgpack_pack_uint32(pk, BUNDLE_VERSION);
    pack_bin(pk, b->identity, IDENTITY_PUBLIC_BYTES);
    pack_spk(pk, &b->spk);
    msgpack_pack_array(pk, b->one_time_count);
    for (uint32_t i = 0; i < b->one_time_count; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, b->one_time[i].id);
        pack_bin(pk, b->one_time[i].pub, PREKEY_KEY_BYTES);
    }
}

enum mp_err prekey_bundle_encode(const struct prekey_bundle *b, uint8_t *out, size_t cap,
                                 size_t *len_out)
{
    struct sink count = {NULL, 0, 0};
    msgpack_packer pk;

    if (b->one_time_count > PREKEY_BUNDLE_ONE_TIME_MAX)
        return MP_ERR_INVAL;
    msgpack_packer_init(&pk, &count, sink_write);
    pack_bundle(&pk, b);
    if (count.len > cap || count.len > PREKEY_BUNDLE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    struct sink s = {out, cap, 0};
    msgpack_packer_init(&pk, &s, sink_write);
    pack_bundle(&pk, b);
    *len_out = s.len;
    return MP_OK;
}

enum mp_err prekey_bundle_decode(const uint8_t *data, size_t len, struct prekey_bundle *b_out)
{
    msgpack_unpacked u;
    struct prekey_bundle *b = NULL;
    uint32_t n = 0;
    enum mp_err err;

    if (len > PREKEY_BUNDLE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = unpack_versioned(data, len, &u, BUNDLE_VERSION, BUNDLE_FIELDS);
    if (err != MP_OK)
        goto cleanup;
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    const msgpack_object *f = u.data.via.array.ptr;
    const msgpack_object *otk = get_array(&f[3], 0, PREKEY_BUNDLE_ONE_TIME_MAX, &n);
    err = MP_ERR_MALFORMED;
    if (!get_bin(&f[1], b->identity, IDENTITY_PUBLIC_BYTES) || !get_spk(&f[2], &b->spk) ||
        otk == NULL)
        goto cleanup;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        const msgpack_object *e = get_array(&otk[i], 2, 2, &two);
        if (e == NULL || !get_u32(&e[0], &b->one_time[i].id) ||
            !get_bin(&e[1], b->one_time[i].pub, PREKEY_KEY_BYTES))
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

static void pack_store(msgpack_packer *pk, const struct prekey_store *s)
{
    msgpack_pack_array(pk, STORE_FIELDS);
    msgpack_pack_uint32(pk, STORE_VERSION);
    pack_bin(pk, s->account_pk, IDENTITY_PUBLIC_BYTES);
    msgpack_pack_uint32(pk, s->next_spk_id);
    msgpack_pack_uint32(pk, s->next_opk_id);
    msgpack_pack_array(pk, s->spk_count);
    for (uint32_t i = 0; i < s->spk_count; i++) {
        msgpack_pack_array(pk, 3);
        pack_bin(pk, s->spk[i].sk, PREKEY_KEY_BYTES);
        pack_spk(pk, &s->spk[i].pub);
        msgpack_pack_uint64(pk, s->spk[i].keep_until_ms);
    }
    msgpack_pack_array(pk, s->opk_count);
    for (uint32_t i = 0; i < s->opk_count; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint32(pk, s->opk[i].id);
        pack_bin(pk, s->opk[i].sk, PREKEY_KEY_BYTES);
    }
    msgpack_pack_array(pk, s->seen_count);
    for (uint32_t i = 0; i < s->seen_count; i++) {
        msgpack_pack_array(pk, 2);
        pack_bin(pk, s->seen[i].eph, PREKEY_KEY_BYTES);
        msgpack_pack_uint32(pk, s->seen[i].spk_id);
    }
}

enum mp_err prekey_store_encode(const struct prekey_store *s, struct buf *out)
{
    struct sink count = {NULL, 0, 0};
    msgpack_packer pk;

    buf_init(out, PREKEY_STORE_WIRE_MAX);
    msgpack_packer_init(&pk, &count, sink_write);
    pack_store(&pk, s);
    if (count.len > PREKEY_STORE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    struct sink w = {malloc(count.len), count.len, 0};
    if (w.buf == NULL)
        return MP_ERR_NOMEM;
    msgpack_packer_init(&pk, &w, sink_write);
    pack_store(&pk, s);
    out->data = w.buf;
    out->cap = out->len = w.len;
    return MP_OK;
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
    const msgpack_object *a = get_array(&f[4], 1, PREKEY_SIGNED_KEEP, &n);

    if (a == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct prekey_spk_secret *k = &s->spk[i];
        const msgpack_object *e = get_array(&a[i], 3, 3, &two);
        if (e == NULL || !get_bin(&e[0], k->sk, PREKEY_KEY_BYTES) || !get_spk(&e[1], &k->pub) ||
            !get_u64(&e[2], &k->keep_until_ms) || !public_of(k->sk, pk) ||
            sodium_memcmp(pk, k->pub.pub, PREKEY_KEY_BYTES) != 0)
            return false;
        s->spk_count = i + 1;
    }
    if ((a = get_array(&f[5], 0, PREKEY_ONE_TIME_MAX, &n)) == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        struct prekey_opk_secret *k = &s->opk[i];
        const msgpack_object *e = get_array(&a[i], 2, 2, &two);
        if (e == NULL || !get_u32(&e[0], &k->id) || !get_bin(&e[1], k->sk, PREKEY_KEY_BYTES) ||
            !public_of(k->sk, k->pk))
            return false;
        s->opk_count = i + 1;
    }
    /* Replay records: each names a held signed prekey, at most
     * PREKEY_SEEN_PER_SIGNED each (what prekey_store_commit keeps to). */
    uint32_t per_spk[PREKEY_SIGNED_KEEP] = {0};
    if ((a = get_array(&f[6], 0, PREKEY_SEEN_MAX, &n)) == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = get_array(&a[i], 2, 2, &two);
        if (e == NULL || !get_bin(&e[0], s->seen[i].eph, PREKEY_KEY_BYTES) ||
            !get_u32(&e[1], &s->seen[i].spk_id))
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
    struct prekey_store *s = NULL;
    uint8_t ik_pk[PREKEY_KEY_BYTES];
    enum mp_err err;

    if (len > PREKEY_STORE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = unpack_versioned(data, len, &u, STORE_VERSION, STORE_FIELDS);
    if (err != MP_OK)
        goto cleanup;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    const msgpack_object *f = u.data.via.array.ptr;
    err = MP_ERR_MALFORMED;
    if (!get_bin(&f[1], s->account_pk, IDENTITY_PUBLIC_BYTES) || !get_u32(&f[2], &s->next_spk_id) ||
        !get_u32(&f[3], &s->next_opk_id) || !get_store_lists(f, s))
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
