#include "dht/storage.h"

#include <stdlib.h>
#include <string.h>

struct item {
    uint8_t key[RECORD_KEY_BYTES];
    struct record rec;
};

struct storage {
    size_t max;
    size_t n;
    size_t cap;
    struct item *items;
};

enum mp_err storage_new(size_t max, struct storage **st_out)
{
    struct storage *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return MP_ERR_NOMEM;
    st->max = max;
    *st_out = st;
    return MP_OK;
}

void storage_free(struct storage *st)
{
    if (st == NULL)
        return;
    free(st->items);
    free(st);
}

static struct item *find(const struct storage *st, const uint8_t key[RECORD_KEY_BYTES])
{
    for (size_t i = 0; i < st->n; i++) {
        if (memcmp(st->items[i].key, key, RECORD_KEY_BYTES) == 0)
            return &st->items[i];
    }
    return NULL;
}

enum storage_result storage_put(struct storage *st, const uint8_t key[RECORD_KEY_BYTES],
                                const struct record *rec)
{
    struct item *it = find(st, key);
    if (it != NULL) {
        if (rec->seq <= it->rec.seq)
            return STORAGE_STALE;
        it->rec = *rec;
        return STORAGE_STORED;
    }
    if (st->n >= st->max)
        return STORAGE_FULL;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4;
        if (cap > st->max)
            cap = st->max;
        struct item *items = realloc(st->items, cap * sizeof(*items));
        if (items == NULL)
            return STORAGE_FULL;
        st->items = items;
        st->cap = cap;
    }
    it = &st->items[st->n++];
    memcpy(it->key, key, RECORD_KEY_BYTES);
    it->rec = *rec;
    return STORAGE_STORED;
}

const struct record *storage_get(const struct storage *st, const uint8_t key[RECORD_KEY_BYTES],
                                 uint64_t now_s)
{
    const struct item *it = find(st, key);
    if (it == NULL || it->rec.expires_s <= now_s)
        return NULL;
    return &it->rec;
}

size_t storage_expire(struct storage *st, uint64_t now_s)
{
    size_t dropped = 0;
    for (size_t i = 0; i < st->n;) {
        if (st->items[i].rec.expires_s <= now_s) {
            st->items[i] = st->items[st->n - 1];
            st->n--;
            dropped++;
        } else {
            i++;
        }
    }
    return dropped;
}

size_t storage_count(const struct storage *st)
{
    return st->n;
}

size_t storage_memory(const struct storage *st)
{
    return sizeof(*st) + st->cap * sizeof(struct item);
}
