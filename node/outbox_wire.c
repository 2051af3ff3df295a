#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "crypto/wire.h"
#include "node/outbox.h"

#define ENTRY_VERSION 4
#define ENTRY_FIELDS 8
/* Version 1 (no expiry), 2 (no riders) and 3 (the envelope within, where
 * version 4 says only whether it is sealed) entries are still read: queued
 * mail survives an upgrade. */
#define ENTRY_V1 1
#define ENTRY_V1_FIELDS 6
#define ENTRY_V2 2
#define ENTRY_V2_FIELDS 7
#define ENTRY_V3 3
#define ENTRY_V3_FIELDS 8
#define STATE_VERSION 2
#define STATE_SEALED 0x01
/* Version 1 rows (format 2 stores): version, state, expiry only. */
#define STATE_V1 1
#define STATE_V1_BYTES 10
#define EVENT_VERSION 1
#define EVENT_FIELDS 7
/* An entry: plaintext and riders at their caps, plus framing; and read, an
 * envelope within (versions 1 to 3). */
#define ENTRY_WIRE_MAX (MSG_WIRE_MAX + 9 * MSG_BUNDLE_MAX + 256)
#define ENTRY_READ_MAX (ENTRY_WIRE_MAX + MSG_LINK_ENVELOPE_MAX)
#define EVENT_WIRE_MAX (MSG_WIRE_MAX + 256)

static void pack_buf(msgpack_packer *pk, const struct buf *b)
{
    wire_pack_bin(pk, b->data, b->len);
}

static void pack_entry_cb(msgpack_packer *pk, const void *obj)
{
    const struct outbox_entry *e = obj;

    msgpack_pack_array(pk, ENTRY_FIELDS);
    msgpack_pack_uint32(pk, ENTRY_VERSION);
    wire_pack_bin(pk, e->to, MSG_KEY_BYTES);
    msgpack_pack_uint32(pk, e->state);
    msgpack_pack_uint64(pk, e->created_ms);
    pack_buf(pk, &e->plaintext);
    if (e->sealed)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    msgpack_pack_uint64(pk, e->expires_ms);
    msgpack_pack_array(pk, (uint32_t)e->rider_count);
    for (size_t i = 0; i < e->rider_count; i++)
        msgpack_pack_uint64(pk, e->riders[i]);
}

/* The riders an entry or state row may list: at most MSG_BUNDLE_MAX - 1,
 * and only a sealed head has any. */
static bool riders_valid(size_t count, bool sealed)
{
    return count <= MSG_BUNDLE_MAX - 1 && (count == 0 || sealed);
}

enum mp_err outbox_entry_encode(const struct outbox_entry *e, struct buf *out)
{
    if (e->state < OUTBOX_QUEUED || e->state > OUTBOX_STATE_MAX ||
        !riders_valid(e->rider_count, e->sealed) || (e->envelope.len > 0 && !e->sealed))
        return MP_ERR_INVAL;
    return wire_encode_buf(pack_entry_cb, e, ENTRY_WIRE_MAX, out);
}

/* A bin of at most max bytes, copied into a fresh buf. */
static bool get_buf(const msgpack_object *o, size_t max, struct buf *out)
{
    buf_init(out, max);
    return o->type == MSGPACK_OBJECT_BIN && o->via.bin.size <= max &&
           buf_append(out, o->via.bin.ptr, o->via.bin.size) == MP_OK;
}

void outbox_entry_clear(struct outbox_entry *e)
{
    buf_free(&e->plaintext);
    buf_free(&e->envelope);
    free(e->riders);
    e->riders = NULL;
    e->rider_count = 0;
}

/* The riders array: 0..MSG_BUNDLE_MAX - 1 seqs, into a fresh allocation. */
static bool get_riders(const msgpack_object *o, struct outbox_entry *e)
{
    uint32_t n = 0;
    const msgpack_object *items = wire_get_array(o, 0, MSG_BUNDLE_MAX - 1, &n);
    if (items == NULL)
        return false;
    if (n == 0)
        return true;
    e->riders = malloc(n * sizeof(*e->riders));
    if (e->riders == NULL)
        return false;
    e->rider_count = n;
    for (uint32_t i = 0; i < n; i++) {
        if (!wire_get_u64(&items[i], &e->riders[i]))
            return false;
    }
    return true;
}

enum mp_err outbox_entry_decode(const uint8_t *data, size_t len, struct outbox_entry *e_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    uint32_t state = 0;
    enum mp_err err;

    memset(e_out, 0, sizeof(*e_out));
    buf_init(&e_out->plaintext, MSG_WIRE_MAX);
    buf_init(&e_out->envelope, MSG_LINK_ENVELOPE_MAX);
    if (len > ENTRY_READ_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    unsigned version = ENTRY_VERSION;
    if (err == MP_OK) {
        err = wire_versioned(&u, ENTRY_VERSION, ENTRY_FIELDS, &f);
        if (err == MP_ERR_WIRE_VERSION) {
            version = ENTRY_V3;
            err = wire_versioned(&u, ENTRY_V3, ENTRY_V3_FIELDS, &f);
        }
        if (err == MP_ERR_WIRE_VERSION) {
            version = ENTRY_V2;
            err = wire_versioned(&u, ENTRY_V2, ENTRY_V2_FIELDS, &f);
        }
        if (err == MP_ERR_WIRE_VERSION) {
            version = ENTRY_V1;
            err = wire_versioned(&u, ENTRY_V1, ENTRY_V1_FIELDS, &f);
        }
    }
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    if ((version >= ENTRY_V2 && !wire_get_u64(&f[6], &e_out->expires_ms)) ||
        (version >= ENTRY_V3 && !get_riders(&f[7], e_out)))
        goto cleanup;
    if (!wire_get_bin(&f[1], e_out->to, MSG_KEY_BYTES) || !wire_get_u32(&f[2], &state) ||
        state < OUTBOX_QUEUED || state > OUTBOX_STATE_MAX ||
        !wire_get_u64(&f[3], &e_out->created_ms) ||
        !get_buf(&f[4], MSG_WIRE_MAX, &e_out->plaintext))
        goto cleanup;
    if (version == ENTRY_VERSION ? f[5].type != MSGPACK_OBJECT_BOOLEAN
                                 : !get_buf(&f[5], MSG_LINK_ENVELOPE_MAX, &e_out->envelope))
        goto cleanup;
    /* An older entry holding its envelope (sealed apart by the store's
     * migration), or listing riders (a head whose envelope went once sent),
     * was sealed. */
    e_out->sealed = version == ENTRY_VERSION ? f[5].via.boolean
                                             : e_out->envelope.len > 0 || e_out->rider_count > 0;
    if (!riders_valid(e_out->rider_count, e_out->sealed))
        goto cleanup;
    e_out->state = (uint8_t)state;
    err = MP_OK;
cleanup:
    if (err != MP_OK)
        outbox_entry_clear(e_out);
    msgpack_unpacked_destroy(&u);
    return err;
}

enum mp_err outbox_state_encode(const struct outbox_entry *e,
                                uint8_t out[OUTBOX_STATE_ROW_MAX], size_t *len_out)
{
    if (e->state < OUTBOX_QUEUED || e->state > OUTBOX_STATE_MAX ||
        !riders_valid(e->rider_count, e->sealed))
        return MP_ERR_INVAL;
    out[0] = STATE_VERSION;
    out[1] = e->state;
    bytes_put_u64(out + 2, e->expires_ms);
    out[10] = e->sealed ? STATE_SEALED : 0;
    bytes_put_u16(out + 11, (uint16_t)e->rider_count);
    for (size_t i = 0; i < e->rider_count; i++)
        bytes_put_u64(out + OUTBOX_STATE_FIXED + 8 * i, e->riders[i]);
    *len_out = OUTBOX_STATE_FIXED + 8 * e->rider_count;
    return MP_OK;
}

enum mp_err outbox_state_decode(const uint8_t *data, size_t len, struct outbox_entry *e)
{
    if (len < 1)
        return MP_ERR_MALFORMED;
    if (data[0] != STATE_VERSION && data[0] != STATE_V1)
        return MP_ERR_WIRE_VERSION;
    bool v1 = data[0] == STATE_V1;
    size_t n = !v1 && len >= OUTBOX_STATE_FIXED ? bytes_get_u16(data + 11) : 0;
    if (len != (v1 ? STATE_V1_BYTES : OUTBOX_STATE_FIXED + 8 * n) || data[1] < OUTBOX_QUEUED ||
        data[1] > OUTBOX_STATE_MAX ||
        (!v1 && ((data[10] & ~STATE_SEALED) != 0 || !riders_valid(n, data[10] & STATE_SEALED))))
        return MP_ERR_MALFORMED;
    uint64_t *riders = NULL;
    if (n > 0 && (riders = malloc(n * sizeof(*riders))) == NULL)
        return MP_ERR_NOMEM;
    e->state = data[1];
    e->expires_ms = bytes_get_u64(data + 2);
    if (v1)
        return MP_OK;
    for (size_t i = 0; i < n; i++)
        riders[i] = bytes_get_u64(data + OUTBOX_STATE_FIXED + 8 * i);
    free(e->riders);
    e->riders = riders;
    e->rider_count = n;
    e->sealed = (data[10] & STATE_SEALED) != 0;
    return MP_OK;
}

static void pack_event_cb(msgpack_packer *pk, const void *obj)
{
    const struct outbox_event *ev = obj;

    msgpack_pack_array(pk, EVENT_FIELDS);
    msgpack_pack_uint32(pk, EVENT_VERSION);
    msgpack_pack_uint32(pk, ev->type);
    msgpack_pack_uint64(pk, ev->at_ms);
    wire_pack_bin(pk, ev->peer, MSG_KEY_BYTES);
    wire_pack_bin(pk, ev->id, MSG_ID_BYTES);
    if (ev->request)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_buf(pk, &ev->plaintext);
}

enum mp_err outbox_event_encode(const struct outbox_event *ev, struct buf *out)
{
    if (ev->type < OUTBOX_EVENT_MESSAGE || ev->type > OUTBOX_EVENT_MAX)
        return MP_ERR_INVAL;
    return wire_encode_buf(pack_event_cb, ev, EVENT_WIRE_MAX, out);
}

void outbox_event_clear(struct outbox_event *ev)
{
    buf_free(&ev->plaintext);
}

enum mp_err outbox_event_decode(const uint8_t *data, size_t len, struct outbox_event *ev_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    uint32_t type = 0;
    enum mp_err err;

    memset(ev_out, 0, sizeof(*ev_out));
    buf_init(&ev_out->plaintext, MSG_WIRE_MAX);
    if (len > EVENT_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, EVENT_VERSION, EVENT_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    if (!wire_get_u32(&f[1], &type) || type < OUTBOX_EVENT_MESSAGE ||
        type > OUTBOX_EVENT_MAX || !wire_get_u64(&f[2], &ev_out->at_ms) ||
        !wire_get_bin(&f[3], ev_out->peer, MSG_KEY_BYTES) ||
        !wire_get_bin(&f[4], ev_out->id, MSG_ID_BYTES) || f[5].type != MSGPACK_OBJECT_BOOLEAN ||
        !get_buf(&f[6], MSG_WIRE_MAX, &ev_out->plaintext))
        goto cleanup;
    ev_out->type = (uint8_t)type;
    ev_out->request = f[5].via.boolean;
    err = MP_OK;
cleanup:
    if (err != MP_OK)
        outbox_event_clear(ev_out);
    msgpack_unpacked_destroy(&u);
    return err;
}
