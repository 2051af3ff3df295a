/*
 * fuzz_envelope: the sealed envelope's outer decoder, opening by a fixed
 * recipient, and the inner (sealed) decoder reached directly.
 * First byte mod 3: 0 -> envelope_mailbox, 1 -> envelope_open, 2 -> inner.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope.h"
#include "crypto/envelope_wire.h"
#include "crypto/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct identity *bob;
    static const uint8_t seed[IDENTITY_SEED_BYTES] = {7};
    struct envelope_content c;
    uint8_t mailbox[ENVELOPE_MAILBOX_BYTES];

    if (bob == NULL && identity_from_seed(seed, &bob) != MP_OK)
        abort();
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    memset(&c, 0, sizeof(c));
    if (mode == 0) {
        (void)envelope_mailbox(data, size, mailbox);
    } else if (mode == 1) {
        if (envelope_open(bob, data, size, &c) == MP_OK) {
            if (c.ct_len < RATCHET_OVERHEAD ||
                (c.has_init && memcmp(c.init.initiator, c.sender, 32)))
                abort();
            envelope_content_clear(&c);
        }
    } else {
        if (envelope_inner_decode(data, size, &c) == MP_OK) {
            /* Round trip through the encoder. */
            uint8_t *out = malloc(ENVELOPE_INNER_MAX);
            size_t len;
            struct envelope_content back;
            if (out == NULL || envelope_inner_encode(&c, out, ENVELOPE_INNER_MAX, &len) != MP_OK ||
                envelope_inner_decode(out, len, &back) != MP_OK || back.ct_len != c.ct_len ||
                memcmp(back.ct, c.ct, c.ct_len) != 0 ||
                memcmp(&back.header, &c.header, sizeof(c.header)) != 0)
                abort();
            envelope_content_clear(&back);
            free(out);
            envelope_content_clear(&c);
        }
    }
    return 0;
}
