/*
 * bech32: the alphabet and the Bech32m checksum (BIP-350) that the text
 * forms of addresses ("mp1...", crypto/address.c) and cluster tokens
 * ("mpc1...", crypto/cluster.c) share. A checksum runs over the expanded
 * human-readable part, then the 5-bit data values, then its own six values:
 * bech32_start, bech32_step per value, and bech32_checksum to write it or
 * bech32_valid to check it.
 */
#ifndef MP_CRYPTO_BECH32_H
#define MP_CRYPTO_BECH32_H

#include <stdbool.h>
#include <stdint.h>

#define BECH32_CHECKSUM_CHARS 6

/* BIP-173's alphabet: value v is written as bech32_charset[v]. No "1", "b",
 * "i", "o". */
extern const char bech32_charset[33];

/* The checksum state after the expanded human-readable part hrp (each
 * character's high three bits, a zero, then each character's low five bits). */
uint32_t bech32_start(const char *hrp);

/* The state after one more 5-bit value. */
uint32_t bech32_step(uint32_t state, uint8_t value);

/* The six checksum characters that complete a string whose data ended in
 * state (written to out, no NUL). */
void bech32_checksum(uint32_t state, char out[BECH32_CHECKSUM_CHARS]);

/* True when the state after a whole string, checksum included, is Bech32m's. */
bool bech32_valid(uint32_t state);

/* The 5-bit value of an alphabet character (either case), or -1. */
int bech32_value(char c);

#endif
