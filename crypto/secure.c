#include "crypto/secure.h"

#include <sodium.h>

enum mp_err secure_init(void)
{
    return sodium_init() < 0 ? MP_ERR_CRYPTO : MP_OK;
}

void secure_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

void secure_wipe(void *buf, size_t len)
{
    sodium_memzero(buf, len);
}

char *secure_hex(char *out, size_t out_size, const uint8_t *bin, size_t len)
{
    return sodium_bin2hex(out, out_size, bin, len);
}

enum mp_err secure_unhex(uint8_t *out, size_t len, const char *hex, size_t hex_len)
{
    size_t got = 0;
    const char *end = NULL;
    if (hex_len != 2 * len ||
        sodium_hex2bin(out, len, hex, hex_len, NULL, &got, &end) != 0 || got != len ||
        end != hex + hex_len)
        return MP_ERR_MALFORMED;
    return MP_OK;
}
