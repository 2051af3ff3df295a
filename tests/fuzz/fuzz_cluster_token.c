/*
 * Fuzz target: cluster_token_decode on arbitrary bytes (as a NUL-terminated
 * copy). Whatever it accepts must encode back to the same text, ignoring
 * case: one token, one text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[CLUSTER_TOKEN_TEXT_SIZE + 1];
    char again[CLUSTER_TOKEN_TEXT_SIZE];
    struct cluster_token t;

    if (size > CLUSTER_TOKEN_TEXT_SIZE)
        size = CLUSTER_TOKEN_TEXT_SIZE;
    memcpy(text, data, size);
    text[size] = '\0';
    if (cluster_token_decode(text, &t) != MP_OK)
        return 0;
    if (cluster_token_encode(&t, again, sizeof(again)) != MP_OK)
        abort();
    if (strlen(text) != strlen(again))
        abort();
    for (size_t i = 0; again[i] != '\0'; i++) {
        if (lower(text[i]) != again[i])
            abort();
    }
    cluster_token_wipe(&t);
    return 0;
}
