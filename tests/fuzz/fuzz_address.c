/*
 * Fuzz target: address_decode on arbitrary bytes (as a NUL-terminated copy).
 * Whatever it accepts must encode back to the same text, ignoring case: one
 * key, one address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/address.h"

/* Longer inputs only exercise the length check; keep copies small. */
#define FUZZ_ADDRESS_INPUT_MAX 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[FUZZ_ADDRESS_INPUT_MAX + 1];
    char again[ADDRESS_TEXT_SIZE];
    uint8_t pk[32];

    if (size > FUZZ_ADDRESS_INPUT_MAX)
        size = FUZZ_ADDRESS_INPUT_MAX;
    memcpy(text, data, size);
    text[size] = '\0';
    if (address_decode(text, pk) != MP_OK)
        return 0;

    address_encode(pk, again);
    if (strlen(text) != ADDRESS_TEXT_LEN)
        abort();
    for (size_t i = 0; i < ADDRESS_TEXT_LEN; i++) {
        if (lower(text[i]) != again[i])
            abort();
    }
    return 0;
}
