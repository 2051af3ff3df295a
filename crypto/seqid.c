#include "crypto/seqid.h"

#include <sodium.h>
#include <string.h>

#include "base/bytes.h"

#define TAG_BYTES 8

/* tag = SipHash_k0(seq as 8 big-endian bytes). */
static void tag_of(const uint8_t key[SEQID_KEY_BYTES], const uint8_t seq_be[8],
                   uint8_t tag_out[TAG_BYTES])
{
    crypto_shorthash_siphash24(tag_out, seq_be, 8, key);
}

/* mask = SipHash_k1(tag), XORed into the seq's 8 bytes in place. */
static void mask(const uint8_t key[SEQID_KEY_BYTES], const uint8_t tag[TAG_BYTES], uint8_t x[8])
{
    uint8_t m[8];
    crypto_shorthash_siphash24(m, tag, TAG_BYTES, key + crypto_shorthash_siphash24_KEYBYTES);
    for (int i = 0; i < 8; i++)
        x[i] ^= m[i];
}

void seqid_encode(const uint8_t key[SEQID_KEY_BYTES], uint64_t seq, uint8_t id_out[SEQID_BYTES])
{
    uint8_t seq_be[8];
    bytes_put_u64(seq_be, seq);
    tag_of(key, seq_be, id_out);
    mask(key, id_out, seq_be);
    memcpy(id_out + TAG_BYTES, seq_be, 8);
}

bool seqid_decode(const uint8_t key[SEQID_KEY_BYTES], const uint8_t id[SEQID_BYTES],
                  uint64_t *seq_out)
{
    uint8_t seq_be[8], tag[TAG_BYTES];
    memcpy(seq_be, id + TAG_BYTES, 8);
    mask(key, id, seq_be);
    tag_of(key, seq_be, tag);
    if (sodium_memcmp(tag, id, TAG_BYTES) != 0)
        return false;
    *seq_out = bytes_get_u64(seq_be);
    return true;
}
