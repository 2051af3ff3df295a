/*
 * Codecs of the ratchet: header and stored session state (msgpack, with the
 * helpers of crypto/wire.h). Formats: docs/PROTOCOL.md, "Double Ratchet".
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/ratchet.h"
#include "crypto/ratchet_state.h"
#include "crypto/wire.h"

#define HEADER_VERSION 1
#define HEADER_FIELDS  4
#define STATE_VERSION  1
#define STATE_FIELDS   14

/* ---- header ---- */

static void pack_header_cb(msgpack_packer *pk, const void *obj)
{
    const struct ratchet_header *h = obj;

    msgpack_pack_array(pk, HEADER_FIELDS);
    msgpack_pack_uint32(pk, HEADER_VERSION);
    wire_pack_bin(pk, h->dh, RATCHET_KEY_BYTES);
    msgpack_pack_uint32(pk, h->pn);
    msgpack_pack_uint32(pk, h->n);
}

enum mp_err ratchet_header_encode(const struct ratchet_header *h,
                                  uint8_t out[RATCHET_HEADER_WIRE_MAX], size_t *len_out)
{
    return wire_encode_into(pack_header_cb, h, out, RATCHET_HEADER_WIRE_MAX, len_out);
}

enum mp_err ratchet_header_decode(const uint8_t *data, size_t len, struct ratchet_header *h_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct ratchet_header h;
    enum mp_err err;

    if (len > RATCHET_HEADER_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, HEADER_VERSION, HEADER_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    if (!wire_get_bin(&f[1], h.dh, RATCHET_KEY_BYTES) || !wire_get_u32(&f[2], &h.pn) ||
        !wire_get_u32(&f[3], &h.n))
        goto cleanup;
    *h_out = h;
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&u);
    return err;
}

/* ---- state ---- */

static void pack_state_cb(msgpack_packer *pk, const void *obj)
{
    const struct ratchet *r = obj;

    msgpack_pack_array(pk, STATE_FIELDS);
    msgpack_pack_uint32(pk, STATE_VERSION);
    wire_pack_bin(pk, r->ad, RATCHET_AD_BYTES);
    wire_pack_bin(pk, r->rk, RATCHET_KEY_BYTES);
    wire_pack_bin(pk, r->dhs_sk, RATCHET_KEY_BYTES);
    wire_pack_bin(pk, r->dhs_pk, RATCHET_KEY_BYTES);
    wire_pack_opt(pk, r->has_dhr, r->dhr, RATCHET_KEY_BYTES);
    wire_pack_opt(pk, r->has_cks, r->cks, RATCHET_KEY_BYTES);
    wire_pack_opt(pk, r->has_ckr, r->ckr, RATCHET_KEY_BYTES);
    msgpack_pack_uint32(pk, r->ns);
    msgpack_pack_uint32(pk, r->nr);
    msgpack_pack_uint32(pk, r->pn);
    msgpack_pack_uint32(pk, r->floor);
    msgpack_pack_array(pk, r->skipped_count);
    for (uint32_t i = 0; i < r->skipped_count; i++) {
        msgpack_pack_array(pk, 3);
        wire_pack_bin(pk, r->skipped[i].dh, RATCHET_KEY_BYTES);
        msgpack_pack_uint32(pk, r->skipped[i].n);
        wire_pack_bin(pk, r->skipped[i].mk, RATCHET_KEY_BYTES);
    }
    msgpack_pack_array(pk, r->chain_count);
    for (uint32_t i = 0; i < r->chain_count; i++) {
        msgpack_pack_array(pk, 3);
        wire_pack_bin(pk, r->chains[i].dh, RATCHET_KEY_BYTES);
        msgpack_pack_uint32(pk, r->chains[i].end);
        msgpack_pack_uint32(pk, r->chains[i].floor);
    }
}

enum mp_err ratchet_state_encode(const struct ratchet *r, struct buf *out)
{
    return wire_encode_buf(pack_state_cb, r, RATCHET_STATE_WIRE_MAX, out);
}

static bool decode_skipped(const msgpack_object *o, struct ratchet *r)
{
    uint32_t n = 0, three = 0;
    const msgpack_object *a = wire_get_array(o, 0, RATCHET_SKIPPED_MAX, &n);

    if (a == NULL || ratchet_reserve(r, n) != MP_OK)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = wire_get_array(&a[i], 3, 3, &three);
        struct ratchet_skipped *s = &r->skipped[i];
        if (e == NULL || !wire_get_bin(&e[0], s->dh, RATCHET_KEY_BYTES) ||
            !wire_get_u32(&e[1], &s->n) || !wire_get_bin(&e[2], s->mk, RATCHET_KEY_BYTES))
            return false;
        r->skipped_count = i + 1;
    }
    return true;
}

static bool decode_chains(const msgpack_object *o, struct ratchet *r)
{
    uint32_t n = 0, three = 0;
    const msgpack_object *a = wire_get_array(o, 0, RATCHET_CHAINS_KEPT, &n);

    if (a == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = wire_get_array(&a[i], 3, 3, &three);
        struct ratchet_chain *c = &r->chains[i];
        if (e == NULL || !wire_get_bin(&e[0], c->dh, RATCHET_KEY_BYTES) ||
            !wire_get_u32(&e[1], &c->end) || !wire_get_u32(&e[2], &c->floor))
            return false;
        r->chain_count = i + 1;
    }
    return true;
}

enum mp_err ratchet_state_decode(const struct env *env, const uint8_t *data, size_t len,
                                 struct ratchet **r_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct ratchet *r = NULL;
    enum mp_err err;

    if (len > RATCHET_STATE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, STATE_VERSION, STATE_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    r = ratchet_alloc(env);
    if (r == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    if (!wire_get_bin(&f[1], r->ad, RATCHET_AD_BYTES) ||
        !wire_get_bin(&f[2], r->rk, RATCHET_KEY_BYTES) ||
        !wire_get_bin(&f[3], r->dhs_sk, RATCHET_KEY_BYTES) ||
        !wire_get_bin(&f[4], r->dhs_pk, RATCHET_KEY_BYTES) ||
        !wire_get_opt(&f[5], &r->has_dhr, r->dhr, RATCHET_KEY_BYTES) ||
        !wire_get_opt(&f[6], &r->has_cks, r->cks, RATCHET_KEY_BYTES) ||
        !wire_get_opt(&f[7], &r->has_ckr, r->ckr, RATCHET_KEY_BYTES) ||
        !wire_get_u32(&f[8], &r->ns) || !wire_get_u32(&f[9], &r->nr) ||
        !wire_get_u32(&f[10], &r->pn) || !wire_get_u32(&f[11], &r->floor) ||
        !decode_skipped(&f[12], r) || !decode_chains(&f[13], r))
        goto cleanup;
    /* A receiving chain needs the key it belongs to. The key pair is not
     * checked: only ratchet_state_encode writes it, from a pair it made, and
     * the store checksums what it holds; a check (a base-point
     * multiplication, 33 us here) on every load cost each message that much
     * on both sides. */
    if (r->has_ckr && !r->has_dhr)
        goto cleanup;
    *r_out = r;
    r = NULL;
    err = MP_OK;
cleanup:
    ratchet_free(r);
    msgpack_unpacked_destroy(&u);
    return err;
}
