/*
 * Codecs of the ratchet: header and stored session state (msgpack), and the
 * bounds check that every decoder of this layer runs before msgpack-c.
 * Formats: docs/PROTOCOL.md, "Double Ratchet".
 */
#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/ratchet.h"
#include "crypto/ratchet_state.h"

#define HEADER_VERSION 1
#define STATE_VERSION  1
#define STATE_FIELDS   14
/* msgpack-c's own nesting limit is 32 (MSGPACK_EMBED_STACK_SIZE). */
#define NEST_MAX 32

/* ---- bounds check ---- */

static bool read_be(const uint8_t *p, size_t avail, size_t width, uint64_t *out)
{
    if (avail < width)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = v << 8 | p[i];
    *out = v;
    return true;
}

bool ratchet_wire_bounded(const uint8_t *data, size_t len)
{
    /* pending[d]: items still owed by the container open at depth d. */
    uint64_t pending[NEST_MAX + 1];
    uint64_t owed = 1; /* items owed in all: each needs at least one byte */
    int depth = 0;
    size_t i = 0;

    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        if (i >= len)
            return false;
        pending[depth]--;
        owed--;
        uint8_t b = data[i++];
        uint64_t body = 0, items = 0, w = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) {
            items = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            items = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            body = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                w = 1;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                w = 2;
                break;
            case 0xc6:
            case 0xdb:
                w = 4;
                break;
            case 0xc7:
                w = 1;
                body = 1;
                break; /* ext8: + type byte */
            case 0xc8:
                w = 2;
                body = 1;
                break;
            case 0xc9:
                w = 4;
                body = 1;
                break;
            case 0xca:
                body = 4;
                break;
            case 0xcb:
                body = 8;
                break;
            case 0xcc:
            case 0xd0:
                body = 1;
                break;
            case 0xcd:
            case 0xd1:
                body = 2;
                break;
            case 0xce:
            case 0xd2:
                body = 4;
                break;
            case 0xcf:
            case 0xd3:
                body = 8;
                break;
            case 0xd4:
                body = 2;
                break; /* fixext: type + data */
            case 0xd5:
                body = 3;
                break;
            case 0xd6:
                body = 5;
                break;
            case 0xd7:
                body = 9;
                break;
            case 0xd8:
                body = 17;
                break;
            case 0xdc:
            case 0xde:
                w = 2;
                break;
            case 0xdd:
            case 0xdf:
                w = 4;
                break;
            default:
                return false; /* 0xc1 */
            }
            if (w > 0) {
                uint64_t n;
                if (!read_be(data + i, len - i, w, &n))
                    return false;
                i += w;
                if (b == 0xdc || b == 0xdd)
                    items = n;
                else if (b == 0xde || b == 0xdf)
                    items = 2 * n;
                else
                    body += n;
            }
        }
        if (body > len - i)
            return false;
        i += body;
        if (items > 0) {
            owed += items;
            if (owed > len - i || depth == NEST_MAX)
                return false;
            pending[++depth] = items;
        }
    }
    return i == len;
}

/* ---- packing ---- */

/* Packer target: counts when buf is NULL, else writes up to cap. */
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

static void pack_opt(msgpack_packer *pk, bool has, const uint8_t *p, size_t n)
{
    if (has)
        pack_bin(pk, p, n);
    else
        msgpack_pack_nil(pk);
}

/* ---- unpacking helpers ---- */

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

/* nil -> *has = false; bin of n bytes -> copied. */
static bool get_opt(const msgpack_object *o, bool *has, uint8_t *out, size_t n)
{
    *has = o->type != MSGPACK_OBJECT_NIL;
    return !*has || get_bin(o, out, n);
}

/* Unpack exactly one object spanning all of data. */
static enum mp_err unpack_one(const uint8_t *data, size_t len, msgpack_unpacked *u)
{
    size_t off = 0;

    if (!ratchet_wire_bounded(data, len))
        return MP_ERR_MALFORMED;
    if (msgpack_unpack_next(u, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        return MP_ERR_MALFORMED;
    return MP_OK;
}

/* ---- header ---- */

static void pack_header(msgpack_packer *pk, const struct ratchet_header *h)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint32(pk, HEADER_VERSION);
    pack_bin(pk, h->dh, RATCHET_KEY_BYTES);
    msgpack_pack_uint32(pk, h->pn);
    msgpack_pack_uint32(pk, h->n);
}

enum mp_err ratchet_header_encode(const struct ratchet_header *h,
                                  uint8_t out[RATCHET_HEADER_WIRE_MAX], size_t *len_out)
{
    struct sink s = {out, RATCHET_HEADER_WIRE_MAX, 0};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &s, sink_write);
    pack_header(&pk, h);
    *len_out = s.len;
    return MP_OK;
}

enum mp_err ratchet_header_decode(const uint8_t *data, size_t len, struct ratchet_header *h_out)
{
    msgpack_unpacked u;
    struct ratchet_header h;
    uint32_t version;
    enum mp_err err;

    if (len > RATCHET_HEADER_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = unpack_one(data, len, &u);
    if (err != MP_OK)
        goto cleanup;
    const msgpack_object *o = &u.data;
    err = MP_ERR_MALFORMED;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 ||
        !get_u32(&o->via.array.ptr[0], &version))
        goto cleanup;
    if (version != HEADER_VERSION) {
        err = MP_ERR_WIRE_VERSION;
        goto cleanup;
    }
    const msgpack_object *f = o->via.array.ptr;
    if (o->via.array.size != 4 || !get_bin(&f[1], h.dh, RATCHET_KEY_BYTES) ||
        !get_u32(&f[2], &h.pn) || !get_u32(&f[3], &h.n))
        goto cleanup;
    *h_out = h;
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&u);
    return err;
}

/* ---- state ---- */

static void pack_state(msgpack_packer *pk, const struct ratchet *r)
{
    msgpack_pack_array(pk, STATE_FIELDS);
    msgpack_pack_uint32(pk, STATE_VERSION);
    pack_bin(pk, r->ad, RATCHET_AD_BYTES);
    pack_bin(pk, r->rk, RATCHET_KEY_BYTES);
    pack_bin(pk, r->dhs_sk, RATCHET_KEY_BYTES);
    pack_bin(pk, r->dhs_pk, RATCHET_KEY_BYTES);
    pack_opt(pk, r->has_dhr, r->dhr, RATCHET_KEY_BYTES);
    pack_opt(pk, r->has_cks, r->cks, RATCHET_KEY_BYTES);
    pack_opt(pk, r->has_ckr, r->ckr, RATCHET_KEY_BYTES);
    msgpack_pack_uint32(pk, r->ns);
    msgpack_pack_uint32(pk, r->nr);
    msgpack_pack_uint32(pk, r->pn);
    msgpack_pack_uint32(pk, r->floor);
    msgpack_pack_array(pk, r->skipped_count);
    for (uint32_t i = 0; i < r->skipped_count; i++) {
        msgpack_pack_array(pk, 3);
        pack_bin(pk, r->skipped[i].dh, RATCHET_KEY_BYTES);
        msgpack_pack_uint32(pk, r->skipped[i].n);
        pack_bin(pk, r->skipped[i].mk, RATCHET_KEY_BYTES);
    }
    msgpack_pack_array(pk, r->chain_count);
    for (uint32_t i = 0; i < r->chain_count; i++) {
        msgpack_pack_array(pk, 3);
        pack_bin(pk, r->chains[i].dh, RATCHET_KEY_BYTES);
        msgpack_pack_uint32(pk, r->chains[i].end);
        msgpack_pack_uint32(pk, r->chains[i].floor);
    }
}

enum mp_err ratchet_state_encode(const struct ratchet *r, struct buf *out)
{
    struct sink count = {NULL, 0, 0};
    msgpack_packer pk;

    buf_init(out, RATCHET_STATE_WIRE_MAX);
    msgpack_packer_init(&pk, &count, sink_write);
    pack_state(&pk, r);
    if (count.len > RATCHET_STATE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    /* One exact allocation, so no stale copy of a key is left by growth. */
    struct sink s = {malloc(count.len), count.len, 0};
    if (s.buf == NULL)
        return MP_ERR_NOMEM;
    msgpack_packer_init(&pk, &s, sink_write);
    pack_state(&pk, r);
    out->data = s.buf;
    out->cap = out->len = s.len;
    return MP_OK;
}

static bool decode_skipped(const msgpack_object *o, struct ratchet *r)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > RATCHET_SKIPPED_MAX)
        return false;
    if (ratchet_reserve(r, o->via.array.size) != MP_OK)
        return false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct ratchet_skipped *s = &r->skipped[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3 ||
            !get_bin(&e->via.array.ptr[0], s->dh, RATCHET_KEY_BYTES) ||
            !get_u32(&e->via.array.ptr[1], &s->n) ||
            !get_bin(&e->via.array.ptr[2], s->mk, RATCHET_KEY_BYTES))
            return false;
        r->skipped_count = i + 1;
    }
    return true;
}

static bool decode_chains(const msgpack_object *o, struct ratchet *r)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > RATCHET_CHAINS_KEPT)
        return false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        struct ratchet_chain *c = &r->chains[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3 ||
            !get_bin(&e->via.array.ptr[0], c->dh, RATCHET_KEY_BYTES) ||
            !get_u32(&e->via.array.ptr[1], &c->end) || !get_u32(&e->via.array.ptr[2], &c->floor))
            return false;
        r->chain_count = i + 1;
    }
    return true;
}

enum mp_err ratchet_state_decode(const struct env *env, const uint8_t *data, size_t len,
                                 struct ratchet **r_out)
{
    msgpack_unpacked u;
    struct ratchet *r = NULL;
    uint8_t pk[RATCHET_KEY_BYTES];
    uint32_t version;
    enum mp_err err;

    if (len > RATCHET_STATE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = unpack_one(data, len, &u);
    if (err != MP_OK)
        goto cleanup;
    const msgpack_object *o = &u.data;
    err = MP_ERR_MALFORMED;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 ||
        !get_u32(&o->via.array.ptr[0], &version))
        goto cleanup;
    if (version != STATE_VERSION) {
        err = MP_ERR_WIRE_VERSION;
        goto cleanup;
    }
    if (o->via.array.size != STATE_FIELDS)
        goto cleanup;
    r = ratchet_alloc(env);
    if (r == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    const msgpack_object *f = o->via.array.ptr;
    if (!get_bin(&f[1], r->ad, RATCHET_AD_BYTES) || !get_bin(&f[2], r->rk, RATCHET_KEY_BYTES) ||
        !get_bin(&f[3], r->dhs_sk, RATCHET_KEY_BYTES) ||
        !get_bin(&f[4], r->dhs_pk, RATCHET_KEY_BYTES) ||
        !get_opt(&f[5], &r->has_dhr, r->dhr, RATCHET_KEY_BYTES) ||
        !get_opt(&f[6], &r->has_cks, r->cks, RATCHET_KEY_BYTES) ||
        !get_opt(&f[7], &r->has_ckr, r->ckr, RATCHET_KEY_BYTES) || !get_u32(&f[8], &r->ns) ||
        !get_u32(&f[9], &r->nr) || !get_u32(&f[10], &r->pn) || !get_u32(&f[11], &r->floor) ||
        !decode_skipped(&f[12], r) || !decode_chains(&f[13], r))
        goto cleanup;
    /* A receiving chain needs the key it belongs to; the key pair must match. */
    if ((r->has_ckr && !r->has_dhr) || crypto_scalarmult_base(pk, r->dhs_sk) != 0 ||
        sodium_memcmp(pk, r->dhs_pk, RATCHET_KEY_BYTES) != 0)
        goto cleanup;
    *r_out = r;
    r = NULL;
    err = MP_OK;
cleanup:
    ratchet_free(r);
    msgpack_unpacked_destroy(&u);
    return err;
}
