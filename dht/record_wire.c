#include "crypto/wire.h"
#include "dht/record_wire.h"


#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

enum mp_err record_wire_encode(const struct record *rec, uint8_t *out, size_t cap,
                               size_t *len_out)
{
    struct wire_sink s;
    msgpack_packer pk;

    if (rec->payload_len > RECORD_PAYLOAD_MAX)
        return MP_ERR_TOO_BIG;
    wire_sink_init(&s, out, cap, &pk);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint8(&pk, rec->kind);
    wire_pack_bin(&pk, rec->owner, RECORD_OWNER_BYTES);
    msgpack_pack_uint64(&pk, rec->seq);
    msgpack_pack_uint64(&pk, rec->expires_s);
    wire_pack_bin(&pk, rec->payload, rec->payload_len);
    wire_pack_bin(&pk, rec->sig, RECORD_SIG_BYTES);
    if (s.overflow)
        return MP_ERR_TOO_BIG;
    *len_out = s.len;
    return MP_OK;
}

static bool get_bin(const msgpack_object *o, uint8_t *dst, size_t n)
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
        return false;
    memcpy(dst, o->via.bin.ptr, n);
    return true;
}

static bool get_uint(const msgpack_object *o, uint64_t max, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
        return false;
    *v = o->via.u64;
    return true;
}

enum mp_err record_wire_decode(const uint8_t *data, size_t len, struct record *rec_out)
{
    msgpack_unpacked up;
    enum mp_err err = MP_ERR_MALFORMED;
    uint64_t kind = 0;

    memset(rec_out, 0, sizeof(*rec_out));
    if (len > RECORD_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&up);
    if (wire_unpack(data, len, &up) != MP_OK)
        goto cleanup;
    const msgpack_object *o = &up.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6)
        goto cleanup;
    const msgpack_object *f = o->via.array.ptr;
    if (!get_uint(&f[0], 255, &kind) || !record_kind_valid((unsigned)kind) ||
        !get_bin(&f[1], rec_out->owner, RECORD_OWNER_BYTES) ||
        !get_uint(&f[2], UINT64_MAX, &rec_out->seq) ||
        !get_uint(&f[3], UINT64_MAX, &rec_out->expires_s) ||
        !get_bin(&f[5], rec_out->sig, RECORD_SIG_BYTES) || f[4].type != MSGPACK_OBJECT_BIN)
        goto cleanup;
    if (f[4].via.bin.size > RECORD_PAYLOAD_MAX) {
        err = MP_ERR_TOO_BIG;
        goto cleanup;
    }
    rec_out->kind = (uint8_t)kind;
    rec_out->payload_len = (uint16_t)f[4].via.bin.size;
    if (rec_out->payload_len > 0)
        memcpy(rec_out->payload, f[4].via.bin.ptr, rec_out->payload_len);
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&up);
    if (err != MP_OK)
        memset(rec_out, 0, sizeof(*rec_out));
    return err;
}
