/*
 * storage: the records this node holds for others, keyed by record location.
 *
 * At most `max` records; when full, records for new keys are refused (the
 * ones held stay until they expire). A key keeps only its highest sequence
 * number. Records are checked by the caller (record_check) before they come
 * here; storage_expire drops the ones past their expiry.
 */
#ifndef MP_DHT_STORAGE_H
#define MP_DHT_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "dht/record.h"

enum storage_result {
    STORAGE_STORED,
    STORAGE_STALE, /* the same or a higher seq is held */
    STORAGE_FULL,
};

struct storage;

enum mp_err storage_new(size_t max, struct storage **st_out);
void storage_free(struct storage *st);

enum storage_result storage_put(struct storage *st, const uint8_t key[RECORD_KEY_BYTES],
                                const struct record *rec);

/* The record at key if held and not expired at now_s; borrowed until the next change. */
const struct record *storage_get(const struct storage *st, const uint8_t key[RECORD_KEY_BYTES],
                                 uint64_t now_s);

/* Drop records with expires_s <= now_s; returns how many. */
size_t storage_expire(struct storage *st, uint64_t now_s);

size_t storage_count(const struct storage *st);
size_t storage_memory(const struct storage *st);

#endif
