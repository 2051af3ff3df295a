#include "crypto/address.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>

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
#define CHECKSUM_CHARS  6
#define ADDRESS_VERSION 0x00

_Static_assert(HRP_LEN + 1 + DATA_CHARS + CHECKSUM_CHARS == ADDRESS_TEXT_LEN,
               "ADDRESS_TEXT_LEN must match the layout");

/* BIP-173's alphabet: value v is written as charset[v]. No "1", "b", "i", "o". */
static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
_Static_assert(sizeof(charset) == 32 + 1, "32 characters");

/* BIP-350: a Bech32m string's checksum polynomial leaves this remainder. */
#define BECH32M_CONST 0x2bc830a3u

/*
 * The checksum works on polynomials whose coefficients are 5-bit values
 * (elements of GF(32), built as GF(2)[z] / (z^5 + z^3 + 1)). A string's
 * values v_0 .. v_n-1 are read as v_0 x^(n-1) + ... + v_n-1, and its
 * remainder modulo the BCH generator
 *
 *   g(x) = x^6 + 29 x^5 + 22 x^4 + 20 x^3 + 21 x^2 + 29 x + 18
 *
 * must equal BECH32M_CONST. `state` holds the running remainder, six
 * coefficients packed five bits each, highest power in bits 25..29.
 *
 * Feeding one value multiplies the remainder by x and adds the value. The
 * coefficient pushed out at x^6 (call it c) is folded back in using
 * x^6 = 29 x^5 + 22 x^4 + ... + 18 (mod g; addition is XOR), that is by
 * adding c times that polynomial. Multiplication by c distributes over c's
 * five bits, so the table below holds (2^i) * (g(x) - x^6) for i = 0..4,
 * packed like `state` (products taken in GF(32); these are BIP-173's five
 * generator words). The known-answer test in tests/unit/test_address.c pins
 * the result against a separate long-division implementation.
 */
static const uint32_t fold[5] = {
    0x3b6a57b2u, /* 1  * {29, 22, 20, 21, 29, 18} */
    0x26508e6du, /* 2  * ... */
    0x1ea119fau, /* 4  * ... */
    0x3d4233ddu, /* 8  * ... */
    0x2a1462b3u, /* 16 * ... */
};

static uint32_t polymod_step(uint32_t state, uint8_t value)
{
    uint32_t top = state >> 25;

    state = ((state & 0x1ffffffu) << 5) ^ value;
    for (int i = 0; i < 5; i++) {
        if ((top >> i) & 1u)
            state ^= fold[i];
    }
    return state;
}

/* The state after the expanded human-readable part: each character's high
 * three bits, a zero, then each character's low five bits. */
static uint32_t polymod_hrp(void)
{
    uint32_t state = 1;

    for (size_t i = 0; i < HRP_LEN; i++)
        state = polymod_step(state, (uint8_t)(HRP[i] >> 5));
    state = polymod_step(state, 0);
    for (size_t i = 0; i < HRP_LEN; i++)
        state = polymod_step(state, (uint8_t)(HRP[i] & 31));
    return state;
}

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
    uint32_t state = polymod_hrp();
    size_t n = 0;

    bytes[0] = ADDRESS_VERSION;
    memcpy(bytes + 1, pk, 32);
    bytes_to_values(bytes, values);

    memcpy(text_out, HRP "1", HRP_LEN + 1);
    n = HRP_LEN + 1;
    for (size_t i = 0; i < DATA_CHARS; i++) {
        state = polymod_step(state, values[i]);
        text_out[n++] = charset[values[i]];
    }
    /* The checksum is what makes the remainder of the whole string equal the
     * constant: the remainder of data * x^6, plus the constant. */
    for (size_t i = 0; i < CHECKSUM_CHARS; i++)
        state = polymod_step(state, 0);
    state ^= BECH32M_CONST;
    for (size_t i = 0; i < CHECKSUM_CHARS; i++)
        text_out[n++] = charset[(state >> (5 * (CHECKSUM_CHARS - 1 - i))) & 31];
    text_out[n] = '\0';
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* The 5-bit value of an alphabet character (lowercase), or -1. */
static int char_value(char c)
{
    for (int v = 0; v < 32; v++) {
        if (charset[v] == c)
            return v;
    }
    return -1;
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
        int v = char_value(ascii_lower(text[i]));
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

    uint32_t state = polymod_hrp();
    for (size_t i = 0; i < sizeof(values); i++)
        state = polymod_step(state, values[i]);
    if (state != BECH32M_CONST)
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
