/*
 * wire_scan: a structural pre-check of msgpack bytes, run before msgpack-c
 * sees them.
 *
 * msgpack-c allocates room for an array or map from the count it reads, before
 * it has read the elements, so a 6-byte input can ask for gigabytes. This scan
 * walks the bytes without allocating and refuses any input whose declared
 * counts or lengths exceed the bytes that remain, so what msgpack-c then
 * allocates is bounded by a small multiple of the input size. It does not
 * interpret values.
 */
#ifndef MP_DHT_WIRE_SCAN_H
#define MP_DHT_WIRE_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when data is exactly one well-formed msgpack object (no trailing
 * bytes) whose every count and length fits in the input. */
bool wire_scan_one(const uint8_t *data, size_t len);

#endif
