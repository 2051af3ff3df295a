/*
 * address: the text form of an account's public key, the string a person
 * copies, pastes and reads out to be reached ("mp1..." ).
 *
 * Bech32m (BIP-350) with human-readable part "mp" over a version byte and the
 * 32-byte Ed25519 key: one lowercase word that a double click selects whole,
 * with a 6-character BCH checksum that detects every error touching up to 4
 * characters, so every single-character typo and every swap of neighbours is
 * caught. Format and error rules: docs/PROTOCOL.md, "Addresses".
 */
#ifndef MP_CRYPTO_ADDRESS_H
#define MP_CRYPTO_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Characters in an address, and the buffer size that holds one with its NUL. */
#define ADDRESS_TEXT_LEN 62
#define ADDRESS_TEXT_SIZE (ADDRESS_TEXT_LEN + 1)

/* Write the address of a 32-byte Ed25519 public key. */
void address_encode(const uint8_t pk[32], char text_out[ADDRESS_TEXT_SIZE]);

/* Parse a NUL-terminated address (either case, not mixed; no spaces; at most
 * ADDRESS_TEXT_LEN + 1 characters are read). Errors, checked in this order:
 * MP_ERR_ADDR_PREFIX (not "mp1...", in either case), MP_ERR_ADDR_LENGTH (not
 * ADDRESS_TEXT_LEN characters), MP_ERR_ADDR_ALPHABET, MP_ERR_ADDR_CASE (upper-
 * and lowercase mixed), MP_ERR_ADDR_CHECKSUM, MP_ERR_MALFORMED (checksum right
 * but the padding bit set: a hand-made string, not a typo), MP_ERR_ADDR_VERSION,
 * MP_ERR_ADDR_KEY (not a canonical Ed25519 point of prime order).
 * MP_ERR_INVAL if text is NULL. pk_out is written only on MP_OK. */
enum mp_err address_decode(const char *text, uint8_t pk_out[32]);

#endif
