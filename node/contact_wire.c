/*
 * contact_wire: the msgpack value of a contact in the store's contacts
 * family. Layout: docs/PROTOCOL.md, "Contacts (store)".
 */
#include "crypto/wire.h"
#include "node/contact.h"

#include <msgpack.h>
#include <string.h>


/* Without and with the optional last field (pinned, written only when true,
 * so that unpinned entries stay readable by older nodes). */
#define FIELDS     11
#define FIELDS_MAX 12
#define COUNTERS 3

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static bool state_valid(uint64_t state)
{
    return state == CONTACT_STATE_CONTACT || state == CONTACT_STATE_REQUEST ||
           state == CONTACT_STATE_BLOCKED;
}

enum mp_err contact_wire_encode(const struct contact *c, uint8_t *out, size_t cap, size_t *len_out)
{
    struct wire_sink s;
    msgpack_packer pk;
    size_t name_len = strnlen(c->name, sizeof(c->name));

    if (name_len == sizeof(c->name) || (name_len > 0 && !contact_name_check(c->name, name_len)) ||
        !state_valid(c->state) || c->network_count > CONTACT_NETWORKS_MAX)
        return MP_ERR_INVAL;
    for (size_t i = 0; i < c->network_count; i++) {
        size_t n = strnlen(c->networks[i], sizeof(c->networks[i]));
        if (!contact_network_check(c->networks[i], n) || n == sizeof(c->networks[i]))
            return MP_ERR_INVAL;
    }
    wire_sink_init(&s, out, cap, &pk);
    msgpack_pack_array(&pk, c->networks_pinned ? FIELDS_MAX : FIELDS);
    msgpack_pack_uint8(&pk, CONTACT_WIRE_VERSION);
    pack_str(&pk, c->name);
    msgpack_pack_uint8(&pk, (uint8_t)c->state);
    msgpack_pack_uint64(&pk, c->added_at_ms);
    if (c->verified)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    msgpack_pack_uint64(&pk, c->first_seen_ms);
    msgpack_pack_uint64(&pk, c->last_seen_ms);
    if (c->has_node_key)
        wire_pack_bin(&pk, c->node_key, CONTACT_KEY_BYTES);
    else
        msgpack_pack_nil(&pk);
    if (c->has_pending_key) {
        msgpack_pack_array(&pk, 2);
        wire_pack_bin(&pk, c->pending_key, CONTACT_KEY_BYTES);
        msgpack_pack_uint64(&pk, c->pending_since_ms);
    } else {
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_array(&pk, c->network_count);
    for (size_t i = 0; i < c->network_count; i++)
        pack_str(&pk, c->networks[i]);
    msgpack_pack_array(&pk, COUNTERS);
    msgpack_pack_uint64(&pk, c->accepted);
    msgpack_pack_uint64(&pk, c->dropped);
    msgpack_pack_uint64(&pk, c->refused);
    if (c->networks_pinned)
        msgpack_pack_true(&pk);
    if (s.overflow)
        return MP_ERR_TOO_BIG;
    *len_out = s.len;
    return MP_OK;
}

static bool get_uint(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *v = o->via.u64;
    return true;
}

static bool get_key(const msgpack_object *o, uint8_t dst[CONTACT_KEY_BYTES])
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != CONTACT_KEY_BYTES)
        return false;
    memcpy(dst, o->via.bin.ptr, CONTACT_KEY_BYTES);
    return true;
}

/* A str of at most max bytes into dst (max + 1 bytes), NUL-terminated. */
static bool get_str(const msgpack_object *o, char *dst, size_t max)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return false;
    if (o->via.str.size > 0)
        memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
    return memchr(dst, '\0', o->via.str.size) == NULL;
}

static bool decode_fields(const msgpack_object *f, size_t count, struct contact *c)
{
    uint64_t state;

    if (!get_str(&f[1], c->name, CONTACT_NAME_MAX) ||
        (c->name[0] != '\0' && !contact_name_check(c->name, strlen(c->name))))
        return false;
    if (!get_uint(&f[2], &state) || !state_valid(state))
        return false;
    c->state = (enum contact_state)state;
    if (!get_uint(&f[3], &c->added_at_ms) || f[4].type != MSGPACK_OBJECT_BOOLEAN ||
        !get_uint(&f[5], &c->first_seen_ms) || !get_uint(&f[6], &c->last_seen_ms))
        return false;
    c->verified = f[4].via.boolean;
    if (f[7].type != MSGPACK_OBJECT_NIL) {
        if (!get_key(&f[7], c->node_key))
            return false;
        c->has_node_key = true;
    }
    if (f[8].type != MSGPACK_OBJECT_NIL) {
        if (f[8].type != MSGPACK_OBJECT_ARRAY || f[8].via.array.size != 2 ||
            !get_key(&f[8].via.array.ptr[0], c->pending_key) ||
            !get_uint(&f[8].via.array.ptr[1], &c->pending_since_ms))
            return false;
        c->has_pending_key = true;
    }
    if (f[9].type != MSGPACK_OBJECT_ARRAY || f[9].via.array.size > CONTACT_NETWORKS_MAX)
        return false;
    c->network_count = (uint8_t)f[9].via.array.size;
    for (size_t i = 0; i < c->network_count; i++) {
        if (!get_str(&f[9].via.array.ptr[i], c->networks[i], CONTACT_NETWORK_MAX) ||
            !contact_network_check(c->networks[i], strlen(c->networks[i])))
            return false;
    }
    if (f[10].type != MSGPACK_OBJECT_ARRAY || f[10].via.array.size != COUNTERS)
        return false;
    const msgpack_object *n = f[10].via.array.ptr;
    if (!get_uint(&n[0], &c->accepted) || !get_uint(&n[1], &c->dropped) ||
        !get_uint(&n[2], &c->refused))
        return false;
    if (count == FIELDS_MAX) {
        if (f[11].type != MSGPACK_OBJECT_BOOLEAN)
            return false;
        c->networks_pinned = f[11].via.boolean;
    }
    return true;
}

enum mp_err contact_wire_decode(const uint8_t *data, size_t len, struct contact *c_out)
{
    msgpack_unpacked up;
    uint64_t version;
    enum mp_err err = MP_ERR_MALFORMED;

    memset(c_out, 0, sizeof(*c_out));
    if (len > CONTACT_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&up);
    if (wire_unpack(data, len, &up) != MP_OK)
        goto cleanup;
    const msgpack_object *o = &up.data;
    /* The version first: another version may have another shape. */
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 ||
        !get_uint(&o->via.array.ptr[0], &version))
        goto cleanup;
    if (version != CONTACT_WIRE_VERSION) {
        err = MP_ERR_STORE_VERSION;
        goto cleanup;
    }
    if ((o->via.array.size != FIELDS && o->via.array.size != FIELDS_MAX) ||
        !decode_fields(o->via.array.ptr, o->via.array.size, c_out))
        goto cleanup;
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&up);
    if (err != MP_OK)
        memset(c_out, 0, sizeof(*c_out));
    return err;
}
