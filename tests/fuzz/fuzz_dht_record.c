/* Fuzz target: the msgpack form of a DHT record. What decodes must check
 * without crashing and survive an encode/decode round trip unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dht/record.h"
#include "dht/record_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct record rec, again;
    uint8_t buf[RECORD_WIRE_MAX];
    size_t len = 0;

    if (record_wire_decode(data, size, &rec) != MP_OK)
        return 0;
    (void)record_check(&rec, 1000);
    if (record_wire_encode(&rec, buf, sizeof(buf), &len) != MP_OK ||
        record_wire_decode(buf, len, &again) != MP_OK || memcmp(&rec, &again, sizeof(rec)) != 0)
        abort();
    return 0;
}
