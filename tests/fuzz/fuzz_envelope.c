/*
 * fuzz_envelope: the sealed envelope's outer decoder, opening by a fixed
 * recipient, and the inner (sealed) decoder reached directly.
 * First byte mod 3: 0 -> envelope_mailbox and the outer form's round trip,
 * 1 -> envelope_open, 2 -> inner form and its round trip (every field:
 * sender, init, header, ciphertext).
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
        struct envelope_outer o, back;
        struct buf wire;
        enum mp_err err = envelope_mailbox(data, size, mailbox);
        if (envelope_outer_decode(data, size, &o) != MP_OK) {
            if (err == MP_OK)
                abort(); /* a mailbox id from bytes that do not decode */
            return 0;
        }
        if (err != MP_OK || memcmp(mailbox, o.mailbox, sizeof(mailbox)) != 0 ||
            envelope_outer_encode(&o, &wire) != MP_OK ||
            envelope_outer_decode(wire.data, wire.len, &back) != MP_OK ||
            memcmp(back.mailbox, o.mailbox, sizeof(o.mailbox)) != 0 ||
            memcmp(back.ephemeral, o.ephemeral, sizeof(o.ephemeral)) != 0 ||
            back.sealed_len != o.sealed_len || memcmp(back.sealed, o.sealed, o.sealed_len) != 0)
            abort();
        buf_free(&wire);
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
                memcmp(&back.header, &c.header, sizeof(c.header)) != 0 ||
                memcmp(back.sender, c.sender, sizeof(c.sender)) != 0 || back.has_init != c.has_init)
                abort();
            if (c.has_init &&
                (memcmp(back.init.initiator, c.init.initiator, sizeof(c.init.initiator)) != 0 ||
                 memcmp(back.init.ephemeral, c.init.ephemeral, sizeof(c.init.ephemeral)) != 0 ||
                 back.init.spk_id != c.init.spk_id || back.init.has_opk != c.init.has_opk ||
                 (c.init.has_opk && back.init.opk_id != c.init.opk_id)))
                abort();
            envelope_content_clear(&back);
            free(out);
            envelope_content_clear(&c);
        }
    }
    return 0;
}
