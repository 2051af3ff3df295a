/*
 * record_wire: the msgpack form of a struct record.
 *
 * Used inside DHT datagrams (as a bin field) and by the daemon to keep
 * records in its store. Decoding checks shape, types and sizes only; whether
 * a record is genuine is record_check()'s job.
 */
#ifndef MP_DHT_RECORD_WIRE_H
#define MP_DHT_RECORD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dht/record.h"

/* Largest encoded record: array header, kind, owner, seq, expiry, payload, signature. */
#define RECORD_WIRE_MAX (1 + 1 + (2 + RECORD_OWNER_BYTES) + 9 + 9 + (3 + RECORD_PAYLOAD_MAX) + \
                         (2 + RECORD_SIG_BYTES))

/* Encode rec into out (cap bytes, RECORD_WIRE_MAX always suffices).
 * MP_ERR_TOO_BIG when cap is too small or the payload is oversized. */
enum mp_err record_wire_encode(const struct record *rec, uint8_t *out, size_t cap,
                               size_t *len_out);

/* Decode exactly len bytes. MP_ERR_MALFORMED on any wrong type, length,
 * trailing byte or unknown kind; MP_ERR_TOO_BIG for an oversized payload. */
enum mp_err record_wire_decode(const uint8_t *data, size_t len, struct record *rec_out);

#endif
