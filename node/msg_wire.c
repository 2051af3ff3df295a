#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "crypto/wire.h"
#include "node/msg.h"

#define MSG_VERSION 1
#define MSG_FIELDS 6
#define BUNDLE_VERSION 2
#define BUNDLE_FIELDS 2
#define PRESENCE_VERSION 1
#define PRESENCE_FIELDS 4

/* ---- message plaintext ---- */

static bool msg_valid(const struct msg *m)
{
    if (m->kind == MSG_KIND_TEXT)
        return m->text != NULL && m->text_len <= MSG_TEXT_MAX &&
               utf8_valid((const uint8_t *)m->text, m->text_len);
    if (m->kind == MSG_KIND_RECEIPT)
        return m->receipt_count >= 1 && m->receipt_count <= MSG_RECEIPT_IDS_MAX;
    return m->kind == MSG_KIND_ENVELOPE_RECEIPT;
}

static void pack_msg_cb(msgpack_packer *pk, const void *obj)
{
    const struct msg *m = obj;

    msgpack_pack_array(pk, MSG_FIELDS);
    msgpack_pack_uint32(pk, MSG_VERSION);
    wire_pack_bin(pk, m->id, MSG_ID_BYTES);
    msgpack_pack_uint64(pk, m->sent_at_ms);
    msgpack_pack_uint64(pk, m->counter);
    msgpack_pack_uint32(pk, m->kind);
    if (m->kind == MSG_KIND_TEXT) {
        msgpack_pack_str(pk, m->text_len);
        msgpack_pack_str_body(pk, m->text, m->text_len);
    } else if (m->kind == MSG_KIND_RECEIPT) {
        msgpack_pack_array(pk, m->receipt_count);
        for (unsigned i = 0; i < m->receipt_count; i++)
            wire_pack_bin(pk, m->receipt_ids[i], MSG_ID_BYTES);
    } else {
        wire_pack_bin(pk, m->digest, sizeof(m->digest));
    }
}

enum mp_err msg_encode(const struct msg *m, struct buf *out)
{
    if (!msg_valid(m))
        return MP_ERR_INVAL;
    return wire_encode_buf(pack_msg_cb, m, MSG_WIRE_MAX, out);
}

void msg_clear(struct msg *m)
{
    free(m->text);
    m->text = NULL;
    m->text_len = 0;
}

static bool get_body(const msgpack_object *o, struct msg *m)
{
    if (m->kind == MSG_KIND_TEXT) {
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > MSG_TEXT_MAX ||
            !utf8_valid((const uint8_t *)o->via.str.ptr, o->via.str.size))
            return false;
        m->text = malloc(o->via.str.size + 1);
        if (m->text == NULL)
            return false;
        memcpy(m->text, o->via.str.ptr, o->via.str.size);
        m->text[o->via.str.size] = '\0';
        m->text_len = o->via.str.size;
        return true;
    }
    if (m->kind == MSG_KIND_RECEIPT) {
        uint32_t n = 0;
        const msgpack_object *ids = wire_get_array(o, 1, MSG_RECEIPT_IDS_MAX, &n);
        if (ids == NULL)
            return false;
        for (uint32_t i = 0; i < n; i++) {
            if (!wire_get_bin(&ids[i], m->receipt_ids[i], MSG_ID_BYTES))
                return false;
        }
        m->receipt_count = n;
        return true;
    }
    if (m->kind == MSG_KIND_ENVELOPE_RECEIPT)
        return wire_get_bin(o, m->digest, sizeof(m->digest));
    return false;
}

enum mp_err msg_decode(const uint8_t *data, size_t len, struct msg *m_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct msg m;
    uint32_t kind = 0;
    enum mp_err err;

    if (len > MSG_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    memset(&m, 0, sizeof(m));
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, MSG_VERSION, MSG_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    if (!wire_get_bin(&f[1], m.id, MSG_ID_BYTES) || !wire_get_u64(&f[2], &m.sent_at_ms) ||
        !wire_get_u64(&f[3], &m.counter) || !wire_get_u32(&f[4], &kind) || kind > 255)
        goto cleanup;
    m.kind = (uint8_t)kind;
    if (!get_body(&f[5], &m))
        goto cleanup;
    *m_out = m;
    memset(&m, 0, sizeof(m)); /* the text now belongs to m_out */
    err = MP_OK;
cleanup:
    msg_clear(&m);
    msgpack_unpacked_destroy(&u);
    return err;
}

enum mp_err msg_peek(const uint8_t *data, size_t len, uint8_t id_out[MSG_ID_BYTES],
                     uint8_t *kind_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    uint32_t kind = 0;

    if (len > MSG_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    enum mp_err err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, MSG_VERSION, MSG_FIELDS, &f);
    if (err == MP_OK && (!wire_get_bin(&f[1], id_out, MSG_ID_BYTES) ||
                         !wire_get_u32(&f[4], &kind) || kind > 255))
        err = MP_ERR_MALFORMED;
    if (err == MP_OK)
        *kind_out = (uint8_t)kind;
    msgpack_unpacked_destroy(&u);
    return err;
}

/* ---- bundles ---- */

struct bundle {
    const struct msg_part *parts;
    size_t count;
};

static void pack_bundle_cb(msgpack_packer *pk, const void *obj)
{
    const struct bundle *b = obj;

    msgpack_pack_array(pk, BUNDLE_FIELDS);
    msgpack_pack_uint32(pk, BUNDLE_VERSION);
    msgpack_pack_array(pk, (uint32_t)b->count);
    for (size_t i = 0; i < b->count; i++)
        wire_pack_bin(pk, b->parts[i].data, b->parts[i].len);
}

enum mp_err msg_bundle_encode(const struct msg_part *parts, size_t count, struct buf *out)
{
    struct bundle b = {.parts = parts, .count = count};
    if (count < 2 || count > MSG_BUNDLE_MAX)
        return MP_ERR_INVAL;
    return wire_encode_buf(pack_bundle_cb, &b, MSG_WIRE_MAX, out);
}

enum mp_err msg_split(const uint8_t *data, size_t len, struct msg_part *parts_out,
                      size_t *count_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    enum mp_err err;

    *count_out = 0;
    if (len > MSG_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, BUNDLE_VERSION, BUNDLE_FIELDS, &f);
    if (err == MP_ERR_WIRE_VERSION) {
        /* Not a bundle: one message, or a version we do not know. */
        err = wire_versioned(&u, MSG_VERSION, MSG_FIELDS, &f);
        if (err == MP_OK) {
            parts_out[0].data = data;
            parts_out[0].len = len;
            *count_out = 1;
        }
        goto cleanup;
    }
    if (err != MP_OK)
        goto cleanup;
    uint32_t n = 0;
    const msgpack_object *items = wire_get_array(&f[1], 2, MSG_BUNDLE_MAX, &n);
    err = items == NULL ? MP_ERR_MALFORMED : MP_OK;
    for (uint32_t i = 0; err == MP_OK && i < n; i++) {
        if (items[i].type != MSGPACK_OBJECT_BIN) {
            err = MP_ERR_MALFORMED;
            break;
        }
        parts_out[i].data = (const uint8_t *)items[i].via.bin.ptr; /* points into data */
        parts_out[i].len = items[i].via.bin.size;
    }
    if (err == MP_OK)
        *count_out = n;
cleanup:
    msgpack_unpacked_destroy(&u);
    return err;
}

/* ---- presence ---- */

static void pack_presence_cb(msgpack_packer *pk, const void *obj)
{
    const struct msg_presence *p = obj;

    msgpack_pack_array(pk, PRESENCE_FIELDS);
    msgpack_pack_uint32(pk, PRESENCE_VERSION);
    wire_pack_bin(pk, p->node_key, MSG_KEY_BYTES);
    msgpack_pack_array(pk, p->addr_count);
    for (unsigned i = 0; i < p->addr_count; i++) {
        char text[ADDR_TEXT_MAX];
        addr_format(&p->addrs[i], text, sizeof(text));
        msgpack_pack_str(pk, strlen(text));
        msgpack_pack_str_body(pk, text, strlen(text));
    }
    msgpack_pack_array(pk, p->mailbox_count);
    for (unsigned i = 0; i < p->mailbox_count; i++) {
        char text[ADDR_TEXT_MAX];
        addr_format(&p->mailbox_addrs[i], text, sizeof(text));
        msgpack_pack_array(pk, 2);
        wire_pack_bin(pk, p->mailboxes[i], MSG_KEY_BYTES);
        msgpack_pack_str(pk, strlen(text));
        msgpack_pack_str_body(pk, text, strlen(text));
    }
}

/* An "ip:port" string into a. */
static bool get_addr(const msgpack_object *o, struct addr *a)
{
    char text[ADDR_TEXT_MAX];
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= sizeof(text))
        return false;
    memcpy(text, o->via.str.ptr, o->via.str.size);
    text[o->via.str.size] = '\0';
    return addr_parse(text, a) == MP_OK;
}

enum mp_err msg_presence_encode(const struct msg_presence *p, uint8_t *out, size_t cap,
                                size_t *len_out)
{
    if (p->addr_count > MSG_PRESENCE_ADDRS_MAX || p->mailbox_count > MSG_PRESENCE_MAILBOXES_MAX)
        return MP_ERR_INVAL;
    for (unsigned i = 0; i < p->addr_count; i++) {
        if (p->addrs[i].family != ADDR_FAMILY_IPV4 && p->addrs[i].family != ADDR_FAMILY_IPV6)
            return MP_ERR_INVAL;
    }
    for (unsigned i = 0; i < p->mailbox_count; i++) {
        if (p->mailbox_addrs[i].family != ADDR_FAMILY_IPV4 &&
            p->mailbox_addrs[i].family != ADDR_FAMILY_IPV6)
            return MP_ERR_INVAL;
    }
    return wire_encode_into(pack_presence_cb, p, out, cap, len_out);
}

enum mp_err msg_presence_decode(const uint8_t *data, size_t len, struct msg_presence *p_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL;
    struct msg_presence p;
    uint32_t n = 0;
    enum mp_err err;

    memset(&p, 0, sizeof(p));
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err == MP_OK)
        err = wire_versioned(&u, PRESENCE_VERSION, PRESENCE_FIELDS, &f);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    if (!wire_get_bin(&f[1], p.node_key, MSG_KEY_BYTES))
        goto cleanup;
    const msgpack_object *addrs = wire_get_array(&f[2], 0, MSG_PRESENCE_ADDRS_MAX, &n);
    if (addrs == NULL)
        goto cleanup;
    for (uint32_t i = 0; i < n; i++) {
        if (!get_addr(&addrs[i], &p.addrs[i]))
            goto cleanup;
    }
    p.addr_count = n;
    const msgpack_object *boxes = wire_get_array(&f[3], 0, MSG_PRESENCE_MAILBOXES_MAX, &n);
    if (boxes == NULL)
        goto cleanup;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two = 0;
        const msgpack_object *box = wire_get_array(&boxes[i], 2, 2, &two);
        if (box == NULL || !wire_get_bin(&box[0], p.mailboxes[i], MSG_KEY_BYTES) ||
            !get_addr(&box[1], &p.mailbox_addrs[i]))
            goto cleanup;
    }
    p.mailbox_count = n;
    *p_out = p;
    err = MP_OK;
cleanup:
    msgpack_unpacked_destroy(&u);
    return err;
}

/* ---- link messages ---- */

/* Fields after the type, per type (docs/PROTOCOL.md, "Mailboxes"). */
static unsigned link_fields(unsigned type)
{
    switch (type) {
    case MSG_LINK_ENVELOPE:
    case MSG_LINK_ACK:
    case MSG_LINK_DELIVERED:
    case MSG_LINK_MB_CHALLENGE:
    case MSG_LINK_MB_MAIL:
    case MSG_LINK_MB_TAKEN:
    case MSG_LINK_MB_END:
    case MSG_LINK_HELLO:
        return 1;
    case MSG_LINK_MB_STORED:
        return 3;
    case MSG_LINK_MB_FETCH:
    case MSG_LINK_MB_STORE:
        return 2;
    default:
        return 0; /* MSG_LINK_MB_HELLO */
    }
}

static bool link_has_envelope(unsigned type)
{
    return type == MSG_LINK_ENVELOPE || type == MSG_LINK_MB_STORE || type == MSG_LINK_MB_MAIL;
}

static void pack_link_cb(msgpack_packer *pk, const void *obj)
{
    const struct msg_link *l = obj;

    msgpack_pack_array(pk, 1 + link_fields(l->type));
    msgpack_pack_uint32(pk, l->type);
    switch (l->type) {
    case MSG_LINK_ENVELOPE:
    case MSG_LINK_MB_MAIL:
        wire_pack_bin(pk, l->envelope.data, l->envelope.len);
        break;
    case MSG_LINK_MB_STORE:
        wire_pack_bin(pk, l->envelope.data, l->envelope.len);
        msgpack_pack_uint64(pk, l->expires_s);
        break;
    case MSG_LINK_ACK:
    case MSG_LINK_DELIVERED:
        wire_pack_bin(pk, l->digest, sizeof(l->digest));
        break;
    case MSG_LINK_MB_STORED:
        wire_pack_bin(pk, l->digest, sizeof(l->digest));
        msgpack_pack_uint32(pk, l->status);
        msgpack_pack_uint64(pk, l->expires_s);
        break;
    case MSG_LINK_MB_CHALLENGE:
        wire_pack_bin(pk, l->nonce, sizeof(l->nonce));
        break;
    case MSG_LINK_MB_FETCH:
        wire_pack_bin(pk, l->account, sizeof(l->account));
        wire_pack_bin(pk, l->sig, sizeof(l->sig));
        break;
    case MSG_LINK_MB_TAKEN:
        msgpack_pack_array(pk, l->digest_count);
        for (unsigned i = 0; i < l->digest_count; i++)
            wire_pack_bin(pk, l->digests[i], 32);
        break;
    case MSG_LINK_MB_END:
        msgpack_pack_uint32(pk, l->status);
        break;
    case MSG_LINK_HELLO:
        msgpack_pack_uint32(pk, l->features);
        break;
    default:
        break;
    }
}

enum mp_err msg_link_encode(const struct msg_link *l, struct buf *out)
{
    bool known = l->type >= MSG_LINK_ENVELOPE && l->type <= MSG_LINK_TYPE_MAX;
    if (!known ||
        (link_has_envelope(l->type) &&
         (l->envelope.len == 0 || l->envelope.len > MSG_LINK_ENVELOPE_MAX)) ||
        (l->type == MSG_LINK_MB_STORED && l->status > MSG_MB_STATUS_MAX) ||
        (l->type == MSG_LINK_MB_END && l->status > MSG_MB_END_MAX) ||
        (l->type == MSG_LINK_MB_TAKEN &&
         (l->digest_count == 0 || l->digest_count > MSG_MB_TAKEN_MAX)))
        return MP_ERR_INVAL;
    return wire_encode_buf(pack_link_cb, l, MSG_LINK_WIRE_MAX, out);
}

void msg_link_clear(struct msg_link *l)
{
    buf_free(&l->envelope);
}

enum mp_err msg_link_decode(const uint8_t *data, size_t len, struct msg_link *l_out)
{
    msgpack_unpacked u;
    const msgpack_object *f = NULL, *d = NULL;
    uint32_t n = 0, type = 0, status = 0;
    enum mp_err err;

    memset(l_out, 0, sizeof(*l_out));
    buf_init(&l_out->envelope, MSG_LINK_ENVELOPE_MAX);
    if (len > MSG_LINK_WIRE_MAX)
        return MP_ERR_TOO_BIG;
    msgpack_unpacked_init(&u);
    err = wire_unpack(data, len, &u);
    if (err != MP_OK)
        goto cleanup;
    err = MP_ERR_MALFORMED;
    f = wire_get_array(&u.data, 1, 4, &n);
    if (f == NULL || !wire_get_u32(&f[0], &type))
        goto cleanup;
    if (type < MSG_LINK_ENVELOPE || type > MSG_LINK_TYPE_MAX) {
        err = MP_ERR_WIRE_VERSION;
        goto cleanup;
    }
    if (n != 1 + link_fields(type))
        goto cleanup;
    switch (type) {
    case MSG_LINK_ENVELOPE:
    case MSG_LINK_MB_STORE:
    case MSG_LINK_MB_MAIL:
        if (f[1].type != MSGPACK_OBJECT_BIN || f[1].via.bin.size == 0 ||
            f[1].via.bin.size > MSG_LINK_ENVELOPE_MAX)
            goto cleanup;
        if (buf_append(&l_out->envelope, f[1].via.bin.ptr, f[1].via.bin.size) != MP_OK) {
            err = MP_ERR_NOMEM;
            goto cleanup;
        }
        if (type == MSG_LINK_MB_STORE && !wire_get_u64(&f[2], &l_out->expires_s))
            goto cleanup;
        break;
    case MSG_LINK_ACK:
    case MSG_LINK_DELIVERED:
        if (!wire_get_bin(&f[1], l_out->digest, sizeof(l_out->digest)))
            goto cleanup;
        break;
    case MSG_LINK_MB_STORED:
        if (!wire_get_bin(&f[1], l_out->digest, sizeof(l_out->digest)) ||
            !wire_get_u32(&f[2], &status) || status > MSG_MB_STATUS_MAX ||
            !wire_get_u64(&f[3], &l_out->expires_s))
            goto cleanup;
        break;
    case MSG_LINK_MB_CHALLENGE:
        if (!wire_get_bin(&f[1], l_out->nonce, sizeof(l_out->nonce)))
            goto cleanup;
        break;
    case MSG_LINK_MB_FETCH:
        if (!wire_get_bin(&f[1], l_out->account, sizeof(l_out->account)) ||
            !wire_get_bin(&f[2], l_out->sig, sizeof(l_out->sig)))
            goto cleanup;
        break;
    case MSG_LINK_MB_TAKEN:
        d = wire_get_array(&f[1], 1, MSG_MB_TAKEN_MAX, &l_out->digest_count);
        if (d == NULL)
            goto cleanup;
        for (unsigned i = 0; i < l_out->digest_count; i++) {
            if (!wire_get_bin(&d[i], l_out->digests[i], 32))
                goto cleanup;
        }
        break;
    case MSG_LINK_MB_END:
        if (!wire_get_u32(&f[1], &status) || status > MSG_MB_END_MAX)
            goto cleanup;
        break;
    case MSG_LINK_HELLO:
        if (!wire_get_u32(&f[1], &l_out->features))
            goto cleanup;
        break;
    default: /* MSG_LINK_MB_HELLO: no fields */
        break;
    }
    l_out->type = (uint8_t)type;
    l_out->status = (uint8_t)status;
    err = MP_OK;
cleanup:
    if (err != MP_OK)
        msg_link_clear(l_out);
    msgpack_unpacked_destroy(&u);
    return err;
}
