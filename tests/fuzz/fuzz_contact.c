/*
 * Fuzz target: contact_wire_decode (a contact as stored in the contacts
 * family) on arbitrary bytes. What it accepts must encode again and decode
 * to the same contact: one stored form per contact. Names get
 * contact_name_check on the raw bytes too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/contact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct contact c, again;
    uint8_t buf[CONTACT_WIRE_MAX];
    size_t len = 0;

    if (size <= CONTACT_NAME_MAX + 1)
        (void)contact_name_check((const char *)data, size);
    if (contact_wire_decode(data, size, &c) != MP_OK)
        return 0;
    if (contact_wire_encode(&c, buf, sizeof(buf), &len) != MP_OK)
        abort();
    if (contact_wire_decode(buf, len, &again) != MP_OK || memcmp(&c, &again, sizeof(c)) != 0)
        abort();
    return 0;
}
