/*
 * msgpack_wire: the implementation of crypto/wire.h, the msgpack helpers
 * shared by crypto's codecs (named *_wire.c because only such files may
 * include msgpack.h).
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/wire.h"

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

bool wire_bounded(const uint8_t *data, size_t len)
{
    /* pending[d]: items still owed by the container open at depth d. */
    uint64_t pending[WIRE_NEST_MAX + 1];
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
            if (owed > len - i || depth == WIRE_NEST_MAX)
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

static int sink_write_cb(void *data, const char *p, size_t n)
{
    struct sink *s = data;

    if (n == 0)
        return 0; /* an empty bin's body: p may be NULL */
    if (s->buf != NULL) {
        if (n > s->cap - s->len)
            return -1;
        memcpy(s->buf + s->len, p, n);
    }
    s->len += n;
    return 0;
}

static int fixed_sink_cb(void *data, const char *p, size_t n)
{
    struct wire_sink *s = data;

    if (s->overflow || n > s->cap - s->len) {
        s->overflow = true;
        return -1;
    }
    if (n > 0) /* an empty bin's body: p may be NULL */
        memcpy(s->out + s->len, p, n);
    s->len += n;
    return 0;
}

void wire_sink_init(struct wire_sink *s, uint8_t *out, size_t cap, struct msgpack_packer *pk)
{
    s->out = out;
    s->cap = cap;
    s->len = 0;
    s->overflow = false;
    msgpack_packer_init(pk, s, fixed_sink_cb);
}

static size_t packed_len(void (*pack_cb)(struct msgpack_packer *pk, const void *obj),
                         const void *obj)
{
    struct sink count = {NULL, 0, 0};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &count, sink_write_cb);
    pack_cb(&pk, obj);
    return count.len;
}

enum mp_err wire_encode_into(void (*pack_cb)(struct msgpack_packer *pk, const void *obj),
                             const void *obj, uint8_t *out, size_t cap, size_t *len_out)
{
    msgpack_packer pk;

    if (packed_len(pack_cb, obj) > cap)
        return MP_ERR_TOO_BIG;
    struct sink s = {out, cap, 0};
    msgpack_packer_init(&pk, &s, sink_write_cb);
    pack_cb(&pk, obj);
    *len_out = s.len;
    return MP_OK;
}

enum mp_err wire_encode_buf(void (*pack_cb)(struct msgpack_packer *pk, const void *obj),
                            const void *obj, size_t max, struct buf *out)
{
    msgpack_packer pk;
    size_t len = packed_len(pack_cb, obj);

    buf_init(out, max);
    if (len > max)
        return MP_ERR_TOO_BIG;
    /* One exact allocation, so no stale copy of a key is left by growth. */
    struct sink s = {malloc(len > 0 ? len : 1), len, 0};
    if (s.buf == NULL)
        return MP_ERR_NOMEM;
    msgpack_packer_init(&pk, &s, sink_write_cb);
    pack_cb(&pk, obj);
    out->data = s.buf;
    out->cap = out->len = s.len;
    return MP_OK;
}

void wire_pack_bin(struct msgpack_packer *pk, const uint8_t *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

void wire_pack_opt(struct msgpack_packer *pk, bool has, const uint8_t *p, size_t n)
{
    if (has)
        wire_pack_bin(pk, p, n);
    else
        msgpack_pack_nil(pk);
}

/* ---- unpacking ---- */

enum mp_err wire_unpack(const uint8_t *data, size_t len, struct msgpack_unpacked *u)
{
    size_t off = 0;

    if (!wire_bounded(data, len))
        return MP_ERR_MALFORMED;
    if (msgpack_unpack_next(u, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        return MP_ERR_MALFORMED;
    return MP_OK;
}

enum mp_err wire_versioned(const struct msgpack_unpacked *u, uint32_t version, uint32_t fields,
                           const struct msgpack_object **fields_out)
{
    uint32_t n, v;
    const msgpack_object *f = wire_get_array(&u->data, 1, UINT32_MAX, &n);

    if (f == NULL || !wire_get_u32(&f[0], &v))
        return MP_ERR_MALFORMED;
    if (v != version)
        return MP_ERR_WIRE_VERSION;
    if (n != fields)
        return MP_ERR_MALFORMED;
    *fields_out = f;
    return MP_OK;
}

bool wire_get_u32(const struct msgpack_object *o, uint32_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
        return false;
    *out = (uint32_t)o->via.u64;
    return true;
}

bool wire_get_u64(const struct msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

bool wire_get_bin(const struct msgpack_object *o, uint8_t *out, size_t n)
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != n)
        return false;
    memcpy(out, o->via.bin.ptr, n);
    return true;
}

bool wire_get_opt(const struct msgpack_object *o, bool *has, uint8_t *out, size_t n)
{
    *has = o->type != MSGPACK_OBJECT_NIL;
    return !*has || wire_get_bin(o, out, n);
}

const struct msgpack_object *wire_get_array(const struct msgpack_object *o, uint32_t min,
                                            uint32_t max, uint32_t *n_out)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < min || o->via.array.size > max)
        return NULL;
    *n_out = o->via.array.size;
    return o->via.array.ptr;
}
