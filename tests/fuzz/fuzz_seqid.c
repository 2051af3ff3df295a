/*
 * Fuzz target: seqid_decode on arbitrary ids (the first 32 bytes of the input
 * are the key, the next 16 the id). An id it accepts must be the one its seq
 * encodes to; and any seq (the input's last 8 bytes) encodes to an id that
 * decodes back to it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "crypto/seqid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[SEQID_KEY_BYTES], id[SEQID_BYTES], again[SEQID_BYTES];
    uint64_t seq;

    if (size < SEQID_KEY_BYTES + SEQID_BYTES)
        return 0;
    memcpy(key, data, SEQID_KEY_BYTES);
    memcpy(id, data + SEQID_KEY_BYTES, SEQID_BYTES);
    if (seqid_decode(key, id, &seq)) {
        seqid_encode(key, seq, again);
        if (memcmp(again, id, SEQID_BYTES) != 0)
            abort();
    }
    uint64_t want = bytes_get_u64(data + size - 8), got = 0;
    seqid_encode(key, want, again);
    if (!seqid_decode(key, again, &got) || got != want)
        abort();
    return 0;
}
