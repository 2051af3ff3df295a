/*
 * safety: the safety number of two accounts, 60 decimal digits that both
 * people compute from their two account public keys and compare (read out,
 * or side by side) to know that each holds the other's true address.
 *
 * Order-independent: A's view of B equals B's view of A. Not a secret and
 * not a key: it only binds the two public keys. Construction:
 * docs/PROTOCOL.md, "Contacts (store)", "Safety numbers".
 */
#ifndef MP_CRYPTO_SAFETY_H
#define MP_CRYPTO_SAFETY_H

#include <stdint.h>

#define SAFETY_KEY_BYTES 32
#define SAFETY_DIGITS    60
/* Digits per group and groups, as shown: 12 groups of 5. */
#define SAFETY_GROUP_DIGITS 5
#define SAFETY_GROUPS       (SAFETY_DIGITS / SAFETY_GROUP_DIGITS)
/* Hash rounds per key: makes a search for a key with a chosen number dear. */
#define SAFETY_ITERATIONS 5200
/* The 60 digits and a NUL. */
#define SAFETY_TEXT_SIZE (SAFETY_DIGITS + 1)

/* The 60 digits (no spaces) for the account keys a and b, in either order.
 * Cannot fail (after secure_init). */
void safety_number(const uint8_t a[SAFETY_KEY_BYTES], const uint8_t b[SAFETY_KEY_BYTES],
                   char digits_out[SAFETY_TEXT_SIZE]);

#endif
