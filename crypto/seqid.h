/*
 * seqid: a node's own sequence numbers as 128-bit ids that look random to
 * everyone else and map back to their number without an index.
 *
 * The id of seq is a deterministic authenticated encryption of it, in the
 * SIV manner (Rogaway and Shrimpton): tag = PRF_k0(seq), then
 * masked = seq XOR PRF_k1(tag), and id = tag || masked (8 + 8 bytes),
 * with SipHash-2-4 (libsodium's crypto_shorthash) as the PRF. Decoding
 * unmasks the seq and recomputes the tag: an id this key did not make
 * fails (a forged id passes with chance 2^-64). Ids of different seqs
 * always differ; without the key they show nothing of the seq or its order
 * (up to the birthday bound of the 64-bit tag: among about 2^32 ids, two
 * tags may meet and show the XOR of their seqs). A seq used twice under one
 * key gives the same id twice: keep the key with the counter it numbers.
 *
 * Pure functions: no state, no allocation, no randomness.
 */
#ifndef MP_CRYPTO_SEQID_H
#define MP_CRYPTO_SEQID_H

#include <stdbool.h>
#include <stdint.h>

#define SEQID_BYTES 16
#define SEQID_KEY_BYTES 32 /* two SipHash keys: the tag's, then the mask's */

/* The id of seq under key: the same id for the same seq and key, always. */
void seqid_encode(const uint8_t key[SEQID_KEY_BYTES], uint64_t seq, uint8_t id_out[SEQID_BYTES]);

/* The seq whose id is id under key; false (and *seq_out untouched) if key
 * did not make it. */
bool seqid_decode(const uint8_t key[SEQID_KEY_BYTES], const uint8_t id[SEQID_BYTES],
                  uint64_t *seq_out);

#endif
