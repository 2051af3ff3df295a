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
