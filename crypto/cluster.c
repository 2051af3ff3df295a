#include "crypto/cluster.h"

#include <string.h>

#include "crypto/bech32.h"
#include "crypto/kdf.h"
#include "crypto/secure.h"

/*
 * Token payload (docs/PROTOCOL.md, "Cluster tokens"):
 *
 *   version u8 (1) | name_len u8 | name | secret[32] | count u8 |
 *   count x ( node_key[32] | family u8 (4 or 6) | ip[4 or 16] | port u16 BE )
 *
 * written as "mpc1" + 5-bit groups of the payload (zero padded) + a 6
 * character Bech32m checksum over hrp "mpc" and the groups.
 */
#define HRP            "mpc"
#define HRP_LEN        3
#define PREFIX_LEN     (HRP_LEN + 1)
#define CHECKSUM_CHARS BECH32_CHECKSUM_CHARS
#define DATA_CHARS_MAX ((CLUSTER_TOKEN_BYTES_MAX * 8 + 4) / 5)

/* HKDF salt and info strings: one context per use of the secret. */
#define KDF_SALT             "merpati cluster v1"
#define KDF_INFO_DHT         "dht network key"
#define KDF_INFO_PSK         "link psk"
#define KDF_INFO_NETWORK_ID  "link network id"
#define KDF_INFO_FINGERPRINT "fingerprint"
#define FINGERPRINT_BYTES    8

bool cluster_name_valid(const char *name)
{
    size_t len = name != NULL ? strnlen(name, CLUSTER_NAME_MAX + 1) : 0;

    if (len == 0 || len > CLUSTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

void cluster_secret_generate(const struct env *env, uint8_t secret_out[CLUSTER_SECRET_BYTES])
{
    env_random(env, secret_out, CLUSTER_SECRET_BYTES);
}

static void derive(const uint8_t secret[CLUSTER_SECRET_BYTES], const char *info, uint8_t *out,
                   size_t len)
{
    /* Lengths are constants within HKDF's range: it cannot fail. */
    (void)kdf_hkdf((const uint8_t *)KDF_SALT, sizeof(KDF_SALT) - 1, secret, CLUSTER_SECRET_BYTES,
                   (const uint8_t *)info, strlen(info), len, out);
}

void cluster_derive(const uint8_t secret[CLUSTER_SECRET_BYTES], struct cluster_keys *keys_out)
{
    uint8_t fp[FINGERPRINT_BYTES];
    char hex[2 * FINGERPRINT_BYTES + 1];

    derive(secret, KDF_INFO_DHT, keys_out->dht_key, sizeof(keys_out->dht_key));
    derive(secret, KDF_INFO_PSK, keys_out->psk, sizeof(keys_out->psk));
    derive(secret, KDF_INFO_NETWORK_ID, keys_out->network_id, sizeof(keys_out->network_id));
    derive(secret, KDF_INFO_FINGERPRINT, fp, sizeof(fp));
    secure_hex(hex, sizeof(hex), fp, sizeof(fp));
    size_t n = 0;
    for (size_t i = 0; i < 2 * FINGERPRINT_BYTES; i++) {
        if (i > 0 && i % 4 == 0)
            keys_out->fingerprint[n++] = '-';
        keys_out->fingerprint[n++] = hex[i];
    }
    keys_out->fingerprint[n] = '\0';
}

void cluster_keys_wipe(struct cluster_keys *keys)
{
    if (keys != NULL)
        secure_wipe(keys, sizeof(*keys));
}

void cluster_token_wipe(struct cluster_token *token)
{
    if (token != NULL)
        secure_wipe(token, sizeof(*token));
}

/* ---- encode ---- */

static bool entry_ok(const struct cluster_entry *e)
{
    return (e->addr.family == ADDR_FAMILY_IPV4 || e->addr.family == ADDR_FAMILY_IPV6) &&
           e->addr.port != 0;
}

enum mp_err cluster_token_encode(const struct cluster_token *token, char *text_out,
                                 size_t text_size)
{
    uint8_t bytes[CLUSTER_TOKEN_BYTES_MAX];
    size_t len = 0;
    enum mp_err err = MP_OK;

    if (!cluster_name_valid(token->name) || token->bootstrap_count > CLUSTER_BOOTSTRAP_MAX)
        return MP_ERR_INVAL;
    for (unsigned i = 0; i < token->bootstrap_count; i++) {
        if (!entry_ok(&token->bootstrap[i]))
            return MP_ERR_INVAL;
    }
    size_t name_len = strlen(token->name);
    bytes[len++] = CLUSTER_TOKEN_VERSION;
    bytes[len++] = (uint8_t)name_len;
    memcpy(bytes + len, token->name, name_len);
    len += name_len;
    memcpy(bytes + len, token->secret, CLUSTER_SECRET_BYTES);
    len += CLUSTER_SECRET_BYTES;
    bytes[len++] = (uint8_t)token->bootstrap_count;
    for (unsigned i = 0; i < token->bootstrap_count; i++) {
        const struct cluster_entry *e = &token->bootstrap[i];
        size_t ip_len = e->addr.family == ADDR_FAMILY_IPV6 ? 16 : 4;
        memcpy(bytes + len, e->node_key, 32);
        len += 32;
        bytes[len++] = e->addr.family;
        memcpy(bytes + len, e->addr.ip, ip_len);
        len += ip_len;
        bytes[len++] = (uint8_t)(e->addr.port >> 8);
        bytes[len++] = (uint8_t)(e->addr.port & 0xff);
    }

    size_t chars = (len * 8 + 4) / 5;
    if (text_size < PREFIX_LEN + chars + CHECKSUM_CHARS + 1) {
        err = MP_ERR_TOO_BIG;
        goto cleanup;
    }
    memcpy(text_out, HRP "1", PREFIX_LEN);
    size_t n = PREFIX_LEN;
    uint32_t state = bech32_start(HRP), acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            uint8_t v = (uint8_t)((acc >> bits) & 31);
            state = bech32_step(state, v);
            text_out[n++] = bech32_charset[v];
        }
    }
    if (bits > 0) {
        uint8_t v = (uint8_t)((acc << (5 - bits)) & 31);
        state = bech32_step(state, v);
        text_out[n++] = bech32_charset[v];
    }
    bech32_checksum(state, text_out + n);
    text_out[n + CHECKSUM_CHARS] = '\0';
cleanup:
    secure_wipe(bytes, sizeof(bytes));
    return err;
}

/* ---- decode ---- */

/* The payload bytes into token_out; MP_ERR_CLUSTER_TOKEN on any format break. */
static enum mp_err parse_payload(const uint8_t *b, size_t len, struct cluster_token *t)
{
    size_t at = 0;

    if (len < 1)
        return MP_ERR_CLUSTER_TOKEN;
    if (b[at++] != CLUSTER_TOKEN_VERSION)
        return MP_ERR_CLUSTER_TOKEN_VERSION;
    if (at + 1 > len)
        return MP_ERR_CLUSTER_TOKEN;
    size_t name_len = b[at++];
    if (name_len == 0 || name_len > CLUSTER_NAME_MAX || at + name_len > len)
        return MP_ERR_CLUSTER_TOKEN;
    memcpy(t->name, b + at, name_len);
    t->name[name_len] = '\0';
    at += name_len;
    if (!cluster_name_valid(t->name) || strlen(t->name) != name_len)
        return MP_ERR_CLUSTER_TOKEN;
    if (at + CLUSTER_SECRET_BYTES + 1 > len)
        return MP_ERR_CLUSTER_TOKEN;
    memcpy(t->secret, b + at, CLUSTER_SECRET_BYTES);
    at += CLUSTER_SECRET_BYTES;
    unsigned count = b[at++];
    if (count > CLUSTER_BOOTSTRAP_MAX)
        return MP_ERR_CLUSTER_TOKEN;
    for (unsigned i = 0; i < count; i++) {
        struct cluster_entry *e = &t->bootstrap[i];
        if (at + 32 + 1 > len)
            return MP_ERR_CLUSTER_TOKEN;
        memcpy(e->node_key, b + at, 32);
        at += 32;
        memset(&e->addr, 0, sizeof(e->addr));
        e->addr.family = b[at++];
        size_t ip_len = e->addr.family == ADDR_FAMILY_IPV6   ? 16
                        : e->addr.family == ADDR_FAMILY_IPV4 ? 4
                                                             : 0;
        if (ip_len == 0 || at + ip_len + 2 > len)
            return MP_ERR_CLUSTER_TOKEN;
        memcpy(e->addr.ip, b + at, ip_len);
        at += ip_len;
        e->addr.port = (uint16_t)((b[at] << 8) | b[at + 1]);
        at += 2;
        if (e->addr.port == 0)
            return MP_ERR_CLUSTER_TOKEN;
    }
    if (at != len)
        return MP_ERR_CLUSTER_TOKEN; /* trailing bytes */
    t->bootstrap_count = count;
    return MP_OK;
}

enum mp_err cluster_token_decode(const char *text, struct cluster_token *token_out)
{
    uint8_t bytes[CLUSTER_TOKEN_BYTES_MAX + 1];
    struct cluster_token t;
    bool upper = false, lower = false;
    enum mp_err err;

    if (text == NULL)
        return MP_ERR_INVAL;
    memset(&t, 0, sizeof(t));
    for (size_t i = 0; i < PREFIX_LEN; i++) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != (HRP "1")[i])
            return MP_ERR_CLUSTER_TOKEN;
    }
    size_t text_len = strnlen(text, CLUSTER_TOKEN_TEXT_MAX + 1);
    if (text_len > CLUSTER_TOKEN_TEXT_MAX || text_len < PREFIX_LEN + 1 + CHECKSUM_CHARS)
        return MP_ERR_CLUSTER_TOKEN;
    for (size_t i = 0; i < text_len; i++) {
        upper |= text[i] >= 'A' && text[i] <= 'Z';
        lower |= text[i] >= 'a' && text[i] <= 'z';
    }
    if (upper && lower)
        return MP_ERR_CLUSTER_TOKEN;

    uint32_t state = bech32_start(HRP), acc = 0;
    unsigned bits = 0;
    size_t data_chars = text_len - PREFIX_LEN - CHECKSUM_CHARS, n = 0;
    for (size_t i = PREFIX_LEN; i < text_len; i++) {
        int v = bech32_value(text[i]);
        if (v < 0)
            return MP_ERR_CLUSTER_TOKEN;
        state = bech32_step(state, (uint8_t)v);
        if (i - PREFIX_LEN >= data_chars)
            continue; /* checksum characters */
        acc = ((acc << 5) | (uint32_t)v) & 0xfffu;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            bytes[n++] = (uint8_t)((acc >> bits) & 0xff);
        }
    }
    if (!bech32_valid(state)) {
        err = MP_ERR_CLUSTER_TOKEN_CHECKSUM;
        goto cleanup;
    }
    /* Leftover bits are padding: fewer than 5, all zero (one text per token). */
    if (bits >= 5 || (acc & ((1u << bits) - 1)) != 0) {
        err = MP_ERR_CLUSTER_TOKEN;
        goto cleanup;
    }
    if ((err = parse_payload(bytes, n, &t)) == MP_OK)
        *token_out = t;
cleanup:
    secure_wipe(bytes, sizeof(bytes));
    secure_wipe(&t, sizeof(t));
    return err;
}
