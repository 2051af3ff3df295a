#include "crypto/address.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "crypto/bech32.h"

/*
 * Layout of an address (docs/PROTOCOL.md, "Addresses"):
 *
 *   "mp" "1" <53 data characters> <6 checksum characters>
 *
 * The data characters carry 33 bytes (version 0x00, then the key) as 5-bit
 * groups, most significant bit first: 264 bits fill 52 groups and 4 bits of
 * the 53rd, whose last bit is padding and must be zero.
 */
#define HRP             "mp"
#define HRP_LEN         2
#define DATA_BYTES      (1 + 32)
#define DATA_CHARS      ((DATA_BYTES * 8 + 4) / 5)
#define CHECKSUM_CHARS  BECH32_CHECKSUM_CHARS
#define ADDRESS_VERSION 0x00

_Static_assert(HRP_LEN + 1 + DATA_CHARS + CHECKSUM_CHARS == ADDRESS_TEXT_LEN,
               "ADDRESS_TEXT_LEN must match the layout");


/* 33 bytes -> 53 five-bit values, zero-padded. */
static void bytes_to_values(const uint8_t bytes[DATA_BYTES], uint8_t values[DATA_CHARS])
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    for (size_t i = 0; i < DATA_BYTES; i++) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            values[n++] = (uint8_t)((acc >> bits) & 31);
        }
    }
    if (bits > 0)
        values[n++] = (uint8_t)((acc << (5 - bits)) & 31);
}

/* 53 five-bit values -> 33 bytes; false if the padding bits are not zero. */
static bool values_to_bytes(const uint8_t values[DATA_CHARS], uint8_t bytes[DATA_BYTES])
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    for (size_t i = 0; i < DATA_CHARS; i++) {
        acc = (acc << 5) | values[i];
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            bytes[n++] = (uint8_t)((acc >> bits) & 0xff);
        }
    }
    return (acc & ((1u << bits) - 1)) == 0;
}

void address_encode(const uint8_t pk[32], char text_out[ADDRESS_TEXT_SIZE])
{
    uint8_t bytes[DATA_BYTES];
    uint8_t values[DATA_CHARS];
    uint32_t state = bech32_start(HRP);
    size_t n = 0;

    bytes[0] = ADDRESS_VERSION;
    memcpy(bytes + 1, pk, 32);
    bytes_to_values(bytes, values);

    memcpy(text_out, HRP "1", HRP_LEN + 1);
    n = HRP_LEN + 1;
    for (size_t i = 0; i < DATA_CHARS; i++) {
        state = bech32_step(state, values[i]);
        text_out[n++] = bech32_charset[values[i]];
    }
    bech32_checksum(state, text_out + n);
    text_out[n + CHECKSUM_CHARS] = '\0';
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

enum mp_err address_decode(const char *text, uint8_t pk_out[32])
{
    static const char prefix[] = HRP "1";
    uint8_t values[DATA_CHARS + CHECKSUM_CHARS];
    uint8_t bytes[DATA_BYTES];
    bool upper = false, lower = false;

    if (text == NULL)
        return MP_ERR_INVAL;
    /* Reads stop at the first NUL, so a short string is never overrun. */
    for (size_t i = 0; i < HRP_LEN + 1; i++) {
        if (ascii_lower(text[i]) != prefix[i])
            return MP_ERR_ADDR_PREFIX;
    }
    if (strnlen(text, ADDRESS_TEXT_LEN + 1) != ADDRESS_TEXT_LEN)
        return MP_ERR_ADDR_LENGTH;
    for (size_t i = HRP_LEN + 1; i < ADDRESS_TEXT_LEN; i++) {
        int v = bech32_value(text[i]);
        if (v < 0)
            return MP_ERR_ADDR_ALPHABET;
        values[i - (HRP_LEN + 1)] = (uint8_t)v;
    }
    for (size_t i = 0; i < ADDRESS_TEXT_LEN; i++) {
        upper |= text[i] >= 'A' && text[i] <= 'Z';
        lower |= text[i] >= 'a' && text[i] <= 'z';
    }
    if (upper && lower)
        return MP_ERR_ADDR_CASE;

    uint32_t state = bech32_start(HRP);
    for (size_t i = 0; i < sizeof(values); i++)
        state = bech32_step(state, values[i]);
    if (!bech32_valid(state))
        return MP_ERR_ADDR_CHECKSUM;

    /* A correct checksum over non-zero padding is no typo but a string built
     * by hand; accepting it would give one key two addresses. */
    if (!values_to_bytes(values, bytes))
        return MP_ERR_MALFORMED;
    if (bytes[0] != ADDRESS_VERSION)
        return MP_ERR_ADDR_VERSION;
    /* Canonical encoding, on the curve, in the prime-order subgroup, and not
     * of small order: a key no one could sign with is no address. */
    if (crypto_core_ed25519_is_valid_point(bytes + 1) != 1)
        return MP_ERR_ADDR_KEY;
    memcpy(pk_out, bytes + 1, 32);
    return MP_OK;
}
