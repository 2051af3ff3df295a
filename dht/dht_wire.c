#include "crypto/wire.h"
#include "dht/dht_wire.h"

#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "dht/record_wire.h"

/* An address is bin 6 (IPv4 + port) or bin 18 (IPv6 + port), port big-endian. */
static bool pack_addr(msgpack_packer *pk, const struct addr *a)
{
    uint8_t b[18];
    size_t iplen;
    if (a->family == ADDR_FAMILY_IPV4)
        iplen = 4;
    else if (a->family == ADDR_FAMILY_IPV6)
        iplen = 16;
    else
        return false;
    memcpy(b, a->ip, iplen);
    b[iplen] = (uint8_t)(a->port >> 8);
    b[iplen + 1] = (uint8_t)a->port;
    wire_pack_bin(pk, b, iplen + 2);
    return true;
}

static bool pack_nodes(msgpack_packer *pk, const struct dht_msg *m)
{
    if (m->node_count > DHT_WIRE_NODES_MAX)
        return false;
    msgpack_pack_array(pk, m->node_count);
    for (unsigned i = 0; i < m->node_count; i++) {
        msgpack_pack_array(pk, 2);
        wire_pack_bin(pk, m->nodes[i].pk, DHT_WIRE_PK_BYTES);
        if (!pack_addr(pk, &m->nodes[i].addr))
            return false;
    }
    return true;
}

static bool pack_record(msgpack_packer *pk, const struct record *rec)
{
    uint8_t buf[RECORD_WIRE_MAX];
    size_t n = 0;
    if (record_wire_encode(rec, buf, sizeof(buf), &n) != MP_OK)
        return false;
    wire_pack_bin(pk, buf, n);
    return true;
}

bool dht_wire_is_request(unsigned type)
{
    return type <= DHT_MSG_PUT;
}

static unsigned field_count(unsigned type)
{
    switch (type) {
    case DHT_MSG_PING: return 2;
    case DHT_MSG_FIND_NODE: return 3;
    case DHT_MSG_GET: return 3;
    case DHT_MSG_PUT: return 4;
    case DHT_MSG_PONG: return 3;
    case DHT_MSG_NODES: return 3;
    case DHT_MSG_GOT: return 5;
    case DHT_MSG_PUT_ACK: return 3;
    default: return 0;
    }
}

enum mp_err dht_wire_encode(const struct dht_msg *m, uint8_t *out, size_t cap, size_t *len_out)
{
    struct wire_sink s;
    msgpack_packer pk;
    bool bad = false;
    unsigned n = field_count(m->type);

    if (n == 0)
        return MP_ERR_INVAL;
    wire_sink_init(&s, out, cap, &pk);
    msgpack_pack_array(&pk, n);
    msgpack_pack_uint8(&pk, m->type);
    msgpack_pack_uint32(&pk, m->tid);
    switch (m->type) {
    case DHT_MSG_PING:
        break;
    case DHT_MSG_FIND_NODE:
    case DHT_MSG_GET:
        wire_pack_bin(&pk, m->target, DHT_WIRE_ID_BYTES);
        break;
    case DHT_MSG_PUT:
        wire_pack_bin(&pk, m->token, DHT_WIRE_TOKEN_BYTES);
        bad = !m->has_record || !pack_record(&pk, &m->record);
        break;
    case DHT_MSG_PONG:
        bad = !pack_addr(&pk, &m->observed);
        break;
    case DHT_MSG_NODES:
        bad = !pack_nodes(&pk, m);
        break;
    case DHT_MSG_GOT:
        wire_pack_bin(&pk, m->token, DHT_WIRE_TOKEN_BYTES);
        bad = !pack_nodes(&pk, m);
        if (m->has_record)
            bad = bad || !pack_record(&pk, &m->record);
        else
            msgpack_pack_nil(&pk);
        break;
    case DHT_MSG_PUT_ACK:
        msgpack_pack_uint8(&pk, m->status);
        break;
    }
    if (bad)
        return MP_ERR_INVAL;
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

static bool get_addr(const msgpack_object *o, struct addr *a)
{
    size_t iplen;
    memset(a, 0, sizeof(*a));
    if (o->type != MSGPACK_OBJECT_BIN)
        return false;
    if (o->via.bin.size == 6) {
        a->family = ADDR_FAMILY_IPV4;
        iplen = 4;
    } else if (o->via.bin.size == 18) {
        a->family = ADDR_FAMILY_IPV6;
        iplen = 16;
    } else {
        return false;
    }
    const uint8_t *p = (const uint8_t *)o->via.bin.ptr;
    memcpy(a->ip, p, iplen);
    a->port = (uint16_t)((p[iplen] << 8) | p[iplen + 1]);
    return true;
}

static bool get_nodes(const msgpack_object *o, struct dht_msg *m)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > DHT_WIRE_NODES_MAX)
        return false;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            !get_bin(&e->via.array.ptr[0], m->nodes[i].pk, DHT_WIRE_PK_BYTES) ||
            !get_addr(&e->via.array.ptr[1], &m->nodes[i].addr))
            return false;
    }
    m->node_count = (uint8_t)o->via.array.size;
    return true;
}

static bool get_record(const msgpack_object *o, struct dht_msg *m)
{
    if (o->type != MSGPACK_OBJECT_BIN)
        return false;
    if (record_wire_decode((const uint8_t *)o->via.bin.ptr, o->via.bin.size, &m->record) !=
        MP_OK)
        return false;
    m->has_record = true;
    return true;
}

enum mp_err dht_wire_decode(const uint8_t *data, size_t len, struct dht_msg *m_out)
{
    msgpack_unpacked up;
    bool bad = true;

    memset(m_out, 0, sizeof(*m_out));
    if (len > DHT_WIRE_BODY_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&up);
    if (wire_unpack(data, len, &up) != MP_OK)
        goto cleanup;
    const msgpack_object *o = &up.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
        goto cleanup;
    const msgpack_object *f = o->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 > 255 ||
        f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 > UINT32_MAX)
        goto cleanup;
    unsigned type = (unsigned)f[0].via.u64;
    if (field_count(type) == 0 || field_count(type) != o->via.array.size)
        goto cleanup;
    m_out->type = (uint8_t)type;
    m_out->tid = (uint32_t)f[1].via.u64;
    switch (type) {
    case DHT_MSG_PING:
        bad = false;
        break;
    case DHT_MSG_FIND_NODE:
    case DHT_MSG_GET:
        bad = !get_bin(&f[2], m_out->target, DHT_WIRE_ID_BYTES);
        break;
    case DHT_MSG_PUT:
        bad = !get_bin(&f[2], m_out->token, DHT_WIRE_TOKEN_BYTES) || !get_record(&f[3], m_out);
        break;
    case DHT_MSG_PONG:
        bad = !get_addr(&f[2], &m_out->observed);
        break;
    case DHT_MSG_NODES:
        bad = !get_nodes(&f[2], m_out);
        break;
    case DHT_MSG_GOT:
        bad = !get_bin(&f[2], m_out->token, DHT_WIRE_TOKEN_BYTES) || !get_nodes(&f[3], m_out) ||
              (f[4].type != MSGPACK_OBJECT_NIL && !get_record(&f[4], m_out));
        break;
    case DHT_MSG_PUT_ACK:
        bad = f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].via.u64 > DHT_PUT_FULL;
        if (!bad)
            m_out->status = (uint8_t)f[2].via.u64;
        break;
    }
cleanup:
    msgpack_unpacked_destroy(&up);
    if (bad) {
        memset(m_out, 0, sizeof(*m_out));
        return MP_ERR_MALFORMED;
    }
    return MP_OK;
}
