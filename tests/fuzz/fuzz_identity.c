/*
 * Fuzz target: identity_decode on arbitrary bytes (the key-file parser).
 * Whatever it accepts must encode back to exactly the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct identity *id = NULL;
    uint8_t again[IDENTITY_ENCODED_BYTES];

    if (identity_decode(data, size, &id) != MP_OK)
        return 0;
    identity_encode(id, again);
    if (size != sizeof(again) || memcmp(again, data, size) != 0)
        abort();
    identity_free(id);
    return 0;
}
