/*
 * wire: the msgpack helpers every codec of crypto/ shares (prekey_wire.c,
 * ratchet_wire.c, envelope_wire.c; implemented in msgpack_wire.c), so each
 * length, type and count check is written once.
 *
 * It is not a general msgpack layer: only *_wire.c files (of crypto/, and
 * node/'s codecs, which share the same rules) include it (they alone may use msgpack.h, so the
 * msgpack-c types appear here by their struct tags only), apart from
 * wire_bounded, which has no msgpack type and which tests call directly.
 * Encoders pack twice, once to count and once to write, so the output is one
 * exact allocation (no stale copy of a secret is left behind by growth).
 */
#ifndef MP_CRYPTO_WIRE_H
#define MP_CRYPTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

struct msgpack_object;
struct msgpack_packer;
struct msgpack_unpacked;

/* Deepest nesting wire_bounded accepts (msgpack-c's own limit is 32). */
#define WIRE_NEST_MAX 32

/* True when data is one well-formed msgpack object whose every array, map,
 * string and binary length fits in the bytes that remain (so msgpack-c never
 * allocates from an unchecked count), nested at most WIRE_NEST_MAX deep, and
 * nothing follows it. Every decoder here calls it before unpacking. */
bool wire_bounded(const uint8_t *data, size_t len);

/* The encoders take pack_cb, which packs obj (the codec's own struct) into
 * pk; it is called twice and must pack the same bytes both times. */

/* Pack obj into out (at most cap bytes); its length into *len_out.
 * MP_ERR_TOO_BIG (out untouched) if it needs more than cap bytes. */
enum mp_err wire_encode_into(void (*pack_cb)(struct msgpack_packer *pk, const void *obj),
                             const void *obj, uint8_t *out, size_t cap, size_t *len_out);

/* Pack obj into a fresh heap buffer: out is initialised with max `max` and
 * holds exactly the encoding on MP_OK (the caller buf_frees it). Errors:
 * MP_ERR_TOO_BIG (over max), MP_ERR_NOMEM. */
enum mp_err wire_encode_buf(void (*pack_cb)(struct msgpack_packer *pk, const void *obj),
                            const void *obj, size_t max, struct buf *out);

/* A fixed buffer for a msgpack_packer, for encoders that pack in one go:
 * writes past cap fail and set overflow (sticky), leaving len as it was. */
struct wire_sink {
    uint8_t *out;
    size_t cap;
    size_t len;
    bool overflow;
};

/* Point s at out (cap bytes) and make pk write into it. */
void wire_sink_init(struct wire_sink *s, uint8_t *out, size_t cap, struct msgpack_packer *pk);

/* A bin of n bytes, or nil when !has. */
void wire_pack_bin(struct msgpack_packer *pk, const uint8_t *p, size_t n);
void wire_pack_opt(struct msgpack_packer *pk, bool has, const uint8_t *p, size_t n);

/* Unpack the single object that spans data (after wire_bounded) into u, a
 * msgpack_unpacked the caller initialised and destroys. MP_ERR_MALFORMED if
 * data is not exactly one bounded object. The object points into data. */
enum mp_err wire_unpack(const uint8_t *data, size_t len, struct msgpack_unpacked *u);

/* The array [version, ...] of exactly `fields` elements at the root of u:
 * MP_ERR_WIRE_VERSION if version differs (checked before the field count,
 * so a newer format is named as such), MP_ERR_MALFORMED if not such an
 * array. On MP_OK *fields_out points to its elements. */
enum mp_err wire_versioned(const struct msgpack_unpacked *u, uint32_t version, uint32_t fields,
                           const struct msgpack_object **fields_out);

/* Strict getters: false unless o has exactly the type (and range) asked. */
bool wire_get_u32(const struct msgpack_object *o, uint32_t *out);
bool wire_get_u64(const struct msgpack_object *o, uint64_t *out);
/* A bin of exactly n bytes, copied to out. */
bool wire_get_bin(const struct msgpack_object *o, uint8_t *out, size_t n);
/* nil -> *has = false; a bin of exactly n bytes -> *has = true, copied. */
bool wire_get_opt(const struct msgpack_object *o, bool *has, uint8_t *out, size_t n);
/* The elements of an array of min..max elements (count in *n_out), else NULL. */
const struct msgpack_object *wire_get_array(const struct msgpack_object *o, uint32_t min,
                                            uint32_t max, uint32_t *n_out);

#endif
