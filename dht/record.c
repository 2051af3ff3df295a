#include "dht/record.h"

#include <string.h>

#include "crypto/box.h"

static const char sign_label[] = "merpati record v1";
static const char key_label[] = "merpati record key v1";

/* label || kind(1) || owner(32) || seq(8, BE) || expires(8, BE) || len(2, BE) */
#define SIGNED_HEAD_BYTES (sizeof(sign_label) - 1 + 1 + RECORD_OWNER_BYTES + 8 + 8 + 2)
#define SIGNED_MAX (SIGNED_HEAD_BYTES + RECORD_PAYLOAD_MAX)

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static size_t signed_bytes(const struct record *rec, uint8_t out[SIGNED_MAX])
{
    size_t n = sizeof(sign_label) - 1;
    memcpy(out, sign_label, n);
    out[n++] = rec->kind;
    memcpy(out + n, rec->owner, RECORD_OWNER_BYTES);
    n += RECORD_OWNER_BYTES;
    put_be(out + n, rec->seq, 8);
    n += 8;
    put_be(out + n, rec->expires_s, 8);
    n += 8;
    put_be(out + n, rec->payload_len, 2);
    n += 2;
    memcpy(out + n, rec->payload, rec->payload_len);
    return n + rec->payload_len;
}

bool record_kind_valid(unsigned kind)
{
    return kind == RECORD_KIND_PRESENCE || kind == RECORD_KIND_PREKEYS || kind == RECORD_KIND_NOTE;
}

void record_key(unsigned kind, const uint8_t owner[RECORD_OWNER_BYTES],
                uint8_t key_out[RECORD_KEY_BYTES])
{
    uint8_t k = (uint8_t)kind;
    box_hash(key_out, RECORD_KEY_BYTES, NULL, 0, key_label, sizeof(key_label) - 1, &k, 1, owner,
             RECORD_OWNER_BYTES);
}

enum mp_err record_make(const struct identity *id, unsigned kind, uint64_t seq,
                        uint64_t expires_s, const uint8_t *payload, size_t len,
                        struct record *rec_out)
{
    uint8_t buf[SIGNED_MAX];

    if (!record_kind_valid(kind))
        return MP_ERR_INVAL;
    if (len > RECORD_PAYLOAD_MAX)
        return MP_ERR_TOO_BIG;
    memset(rec_out, 0, sizeof(*rec_out));
    rec_out->kind = (uint8_t)kind;
    memcpy(rec_out->owner, identity_public_key(id), RECORD_OWNER_BYTES);
    rec_out->seq = seq;
    rec_out->expires_s = expires_s;
    rec_out->payload_len = (uint16_t)len;
    if (len > 0)
        memcpy(rec_out->payload, payload, len);
    size_t n = signed_bytes(rec_out, buf);
    identity_sign(id, buf, n, rec_out->sig);
    return MP_OK;
}

enum mp_err record_check(const struct record *rec, uint64_t now_s)
{
    uint8_t buf[SIGNED_MAX];

    if (!record_kind_valid(rec->kind))
        return MP_ERR_INVAL;
    if (rec->payload_len > RECORD_PAYLOAD_MAX)
        return MP_ERR_TOO_BIG;
    if (rec->expires_s <= now_s || rec->expires_s > now_s + RECORD_TTL_MAX_S + RECORD_SKEW_S)
        return MP_ERR_RECORD_EXPIRED;
    size_t n = signed_bytes(rec, buf);
    if (!identity_verify(rec->owner, buf, n, rec->sig))
        return MP_ERR_RECORD_FORGED;
    return MP_OK;
}
