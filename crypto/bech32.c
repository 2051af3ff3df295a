#include "crypto/bech32.h"

#include <string.h>

const char bech32_charset[33] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

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

uint32_t bech32_step(uint32_t state, uint8_t value)
{
    uint32_t top = state >> 25;

    state = ((state & 0x1ffffffu) << 5) ^ value;
    for (int i = 0; i < 5; i++) {
        if ((top >> i) & 1u)
            state ^= fold[i];
    }
    return state;
}

uint32_t bech32_start(const char *hrp)
{
    uint32_t state = 1;
    size_t len = strlen(hrp);

    for (size_t i = 0; i < len; i++)
        state = bech32_step(state, (uint8_t)(hrp[i] >> 5));
    state = bech32_step(state, 0);
    for (size_t i = 0; i < len; i++)
        state = bech32_step(state, (uint8_t)(hrp[i] & 31));
    return state;
}

void bech32_checksum(uint32_t state, char out[BECH32_CHECKSUM_CHARS])
{
    /* The checksum is what makes the remainder of the whole string equal the
     * constant: the remainder of data * x^6, plus the constant. */
    for (int i = 0; i < BECH32_CHECKSUM_CHARS; i++)
        state = bech32_step(state, 0);
    state ^= BECH32M_CONST;
    for (int i = 0; i < BECH32_CHECKSUM_CHARS; i++)
        out[i] = bech32_charset[(state >> (5 * (BECH32_CHECKSUM_CHARS - 1 - i))) & 31];
}

bool bech32_valid(uint32_t state)
{
    return state == BECH32M_CONST;
}

int bech32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    for (int v = 0; v < 32; v++) {
        if (bech32_charset[v] == c)
            return v;
    }
    return -1;
}
