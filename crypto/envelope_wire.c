/*
 * Codecs of sealed envelopes: the outer form anyone can parse and the inner
 * form inside the seal. Format: docs/PROTOCOL.md, "Sealed envelopes".
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope_codec.h"

#define OUTER_FIELDS 4
#define INNER_FIELDS 6

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

static void pack_outer(msgpack_packer *pk, const struct envelope_outer *o)
{
    msgpack_pack_array(pk, OUTER_FIELDS);
    msgpack_pack_uint32(pk, ENVELOPE_VERSION);
    pack_bin(pk, o->mailbox, ENVELOPE_MAILBOX_BYTES);
    pack_bin(pk, o->ephemeral, 32);
    pack_bin(pk, o->sealed, o->sealed_len);
}

enum mp_err envelope_outer_encode(const struct envelope_outer *o, struct buf *out)
{
    struct sink count = {NULL, 0, 0};
    msgpack_packer pk;

    buf_init(out, ENVELOPE_WIRE_MAX);
    msgpack_packer_init(&pk, &count, sink_write);
    pack_outer(&pk, o);
    if (count.len > ENVELOPE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    struct sink s = {malloc(count.len), count.len, 0};
    if (s.buf == NULL)
        return MP_ERR_NOMEM;
    msgpack_packer_init(&pk, &s, sink_write);
    pack_outer(&pk, o);
    out->data = s.buf;
    out->cap = out->len = s.len;
    return MP_OK;
}

enum mp_err envelope_outer_decode(const uint8_t *data, size_t len, struct envelope_outer *o_out)
{
    msgpack_unpacked u;
    struct envelope_outer o;
    uint32_t version;
    enum mp_err err;

    if (len > ENVELOPE_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = unpack_one(data, len, &u);
    if (err != MP_OK)
        goto cleanup;
    const msgpack_object *a = &u.data;
    err = MP_ERR_MALFORMED;
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size < 1 ||
        !get_u32(&a->via.array.ptr[0], &version))
        goto cleanup;
    if (version != ENVELOPE_VERSION) {
        err = MP_ERR_WIRE_VERSION;
        goto cleanup;
    }
    const msgpack_object *f = a->via.array.ptr;
    if (a->via.array.size != OUTER_FIELDS || !get_bin(&f[1], o.mailbox, ENVELOPE_MAILBOX_BYTES) ||
        !get_bin(&f[2], o.ephemeral, 32) || f[3].type != MSGPACK_OBJECT_BIN)
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

static void pack_inner(msgpack_packer *pk, const struct envelope_content *c)
{
    msgpack_pack_array(pk, INNER_FIELDS);
    pack_bin(pk, c->sender, IDENTITY_PUBLIC_BYTES);
    if (c->has_init) {
        msgpack_pack_array(pk, 3);
        pack_bin(pk, c->init.ephemeral, PREKEY_KEY_BYTES);
        msgpack_pack_uint32(pk, c->init.spk_id);
        if (c->init.has_opk)
            msgpack_pack_uint32(pk, c->init.opk_id);
        else
            msgpack_pack_nil(pk);
    } else {
        msgpack_pack_nil(pk);
    }
    pack_bin(pk, c->header.dh, RATCHET_KEY_BYTES);
    msgpack_pack_uint32(pk, c->header.pn);
    msgpack_pack_uint32(pk, c->header.n);
    pack_bin(pk, c->ct, c->ct_len);
}

enum mp_err envelope_inner_encode(const struct envelope_content *c, uint8_t *out, size_t cap,
                                  size_t *len_out)
{
    struct sink count = {NULL, 0, 0};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &count, sink_write);
    pack_inner(&pk, c);
    if (count.len > cap)
        return MP_ERR_TOO_BIG;
    struct sink s = {out, cap, 0};
    msgpack_packer_init(&pk, &s, sink_write);
    pack_inner(&pk, c);
    *len_out = s.len;
    return MP_OK;
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
    return get_bin(&f[0], c->init.ephemeral, PREKEY_KEY_BYTES) && get_u32(&f[1], &c->init.spk_id) &&
           (!c->init.has_opk || get_u32(&f[2], &c->init.opk_id));
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
    err = unpack_one(data, len, &u);
    if (err != MP_OK)
        goto cleanup;
    const msgpack_object *a = &u.data;
    const msgpack_object *f = a->via.array.ptr;
    err = MP_ERR_MALFORMED;
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != INNER_FIELDS ||
        !get_bin(&f[0], c.sender, IDENTITY_PUBLIC_BYTES) || !decode_init(&f[1], &c) ||
        !get_bin(&f[2], c.header.dh, RATCHET_KEY_BYTES) || !get_u32(&f[3], &c.header.pn) ||
        !get_u32(&f[4], &c.header.n) || f[5].type != MSGPACK_OBJECT_BIN ||
        f[5].via.bin.size < RATCHET_OVERHEAD ||
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
