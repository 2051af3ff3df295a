/*
 * Codecs of sealed envelopes: the outer form anyone can parse and the inner
 * form inside the seal. Format: docs/PROTOCOL.md, "Sealed envelopes".
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope_wire.h"
#include "crypto/wire.h"

#define OUTER_FIELDS 4
#define INNER_FIELDS 6

static void pack_outer_cb(msgpack_packer *pk, const void *obj)
{
    const struct envelope_outer *o = obj;

    msgpack_pack_array(pk, OUTER_FIELDS);
    msgpack_pack_uint32(pk, ENVELOPE_VERSION);
    wire_pack_bin(pk, o->mailbox, ENVELOPE_MAILBOX_BYTES);
    wire_pack_bin(pk, o->ephemeral, 32);
    wire_pack_bin(pk, o->sealed, o->sealed_len);
}

enum mp_err envelope_outer_encode(const struct envelope_outer *o, struct buf *out)
{
    return wire_encode_buf(pack_outer_cb, o, ENVELOPE_WIRE_MAX, out);
}

enum mp_err envelope_outer_decode(const uint8_t *data, size_t len, struct envelope_outer *o_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct envelope_outer o;
    enum mp_err err;

    if (len > ENVELOPE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, ENVELOPE_VERSION, OUTER_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    if (!wire_get_bin(&f[1], o.mailbox, ENVELOPE_MAILBOX_BYTES) ||
        !wire_get_bin(&f[2], o.ephemeral, 32) || f[3].type != MSGPACK_OBJECT_BIN)
        goto cleanup;
    /* The unpacker points bin bodies into `data`, which outlives u. */
    o.sealed = (const uint8_t *)f[3].via.bin.ptr;
    o.sealed_len = f[3].via.bin.size;
    *o_out = o;
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&u);
    return err;
}

static void pack_inner_cb(msgpack_packer *pk, const void *obj)
{
    const struct envelope_content *c = obj;

    msgpack_pack_array(pk, INNER_FIELDS);
    wire_pack_bin(pk, c->sender, IDENTITY_PUBLIC_BYTES);
    if (c->has_init) {
        msgpack_pack_array(pk, 3);
        wire_pack_bin(pk, c->init.ephemeral, PREKEY_KEY_BYTES);
        msgpack_pack_uint32(pk, c->init.spk_id);
        if (c->init.has_opk)
            msgpack_pack_uint32(pk, c->init.opk_id);
        else
            msgpack_pack_nil(pk);
    } else {
        msgpack_pack_nil(pk);
    }
    wire_pack_bin(pk, c->header.dh, RATCHET_KEY_BYTES);
    msgpack_pack_uint32(pk, c->header.pn);
    msgpack_pack_uint32(pk, c->header.n);
    wire_pack_bin(pk, c->ct, c->ct_len);
}

enum mp_err envelope_inner_encode(const struct envelope_content *c, uint8_t *out, size_t cap,
                                  size_t *len_out)
{
    return wire_encode_into(pack_inner_cb, c, out, cap, len_out);
}

static bool decode_init(const msgpack_object *o, struct envelope_content *c)
{
    c->has_init = o->type != MSGPACK_OBJECT_NIL;
    if (!c->has_init)
        return true;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
        return false;
    const msgpack_object *f = o->via.array.ptr;
    memcpy(c->init.initiator, c->sender, IDENTITY_PUBLIC_BYTES);
    c->init.has_opk = f[2].type != MSGPACK_OBJECT_NIL;
    return wire_get_bin(&f[0], c->init.ephemeral, PREKEY_KEY_BYTES) &&
           wire_get_u32(&f[1], &c->init.spk_id) &&
           (!c->init.has_opk || wire_get_u32(&f[2], &c->init.opk_id));
}

enum mp_err envelope_inner_decode(const uint8_t *data, size_t len, struct envelope_content *c_out)
{
    msgpack_unpacked u;
    struct envelope_content c;
    enum mp_err err;

    memset(&c, 0, sizeof(c));
    if (len > ENVELOPE_INNER_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err != MP_OK)
        goto cleanup;
    const msgpack_object *a = &u.data;
    const msgpack_object *f = a->via.array.ptr;
    err = MP_ERR_MALFORMED;
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != INNER_FIELDS ||
        !wire_get_bin(&f[0], c.sender, IDENTITY_PUBLIC_BYTES) || !decode_init(&f[1], &c) ||
        !wire_get_bin(&f[2], c.header.dh, RATCHET_KEY_BYTES) ||
        !wire_get_u32(&f[3], &c.header.pn) || !wire_get_u32(&f[4], &c.header.n) ||
        f[5].type != MSGPACK_OBJECT_BIN || f[5].via.bin.size < RATCHET_OVERHEAD ||
        f[5].via.bin.size > RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD)
        goto cleanup;
    c.ct_len = f[5].via.bin.size;
    c.ct = malloc(c.ct_len);
    if (c.ct == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    memcpy(c.ct, f[5].via.bin.ptr, c.ct_len);
    *c_out = c;
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&u);
    return err;
}
