#include "tests/support/outbox_v3_wire.h"

#include <msgpack.h>

enum mp_err outbox_v3_encode(const struct outbox_entry *e, struct buf *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = 0;
    rc |= msgpack_pack_array(&pk, 8);
    rc |= msgpack_pack_uint32(&pk, 3);
    rc |= msgpack_pack_bin(&pk, 32);
    rc |= msgpack_pack_bin_body(&pk, e->to, 32);
    rc |= msgpack_pack_uint32(&pk, e->state);
    rc |= msgpack_pack_uint64(&pk, e->created_ms);
    rc |= msgpack_pack_bin(&pk, e->plaintext.len);
    rc |= msgpack_pack_bin_body(&pk, e->plaintext.data, e->plaintext.len);
    rc |= msgpack_pack_bin(&pk, e->envelope.len);
    rc |= msgpack_pack_bin_body(&pk, e->envelope.data, e->envelope.len);
    rc |= msgpack_pack_uint64(&pk, e->expires_ms);
    rc |= msgpack_pack_array(&pk, (uint32_t)e->rider_count);
    for (size_t i = 0; i < e->rider_count; i++)
        rc |= msgpack_pack_uint64(&pk, e->riders[i]);
    buf_init(out, sb.size);
    enum mp_err err = rc == 0 ? buf_append(out, sb.data, sb.size) : MP_ERR_NOMEM;
    msgpack_sbuffer_destroy(&sb);
    return err;
}
