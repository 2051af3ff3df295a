/*
 * secure: the few libsodium services that layers above crypto/ need
 * directly (only crypto/ includes sodium.h): library start-up, the system
 * CSPRNG, wiping memory the compiler may not skip, and hex encoding that
 * does not branch on secret bytes.
 *
 * It is not a source of randomness for crypto/ or dht/ logic (they take it
 * from the env, so tests replay; node/sysenv fills the env from
 * secure_random), not guarded memory (identity.c keeps the account key in
 * sodium_malloc), and not a general libsodium wrapper: a new need gets its
 * own function here, not a pass-through.
 */
#ifndef MP_CRYPTO_SECURE_H
#define MP_CRYPTO_SECURE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Initialize libsodium; safe to call more than once. MP_ERR_CRYPTO if it fails. */
enum mp_err secure_init(void);

/* len bytes from the operating system's CSPRNG (after secure_init). */
void secure_random(void *buf, size_t len);

/* Zero len bytes in a way the compiler cannot optimize away. */
void secure_wipe(void *buf, size_t len);

/* Lowercase hex of len bytes into out (2 * len + 1 bytes at least);
 * returns out. */
char *secure_hex(char *out, size_t out_size, const uint8_t *bin, size_t len);

/* Exactly 2 * len hex digits (either case) into len bytes; MP_ERR_MALFORMED
 * otherwise (out may then be partly written). */
enum mp_err secure_unhex(uint8_t *out, size_t len, const char *hex, size_t hex_len);

#endif
