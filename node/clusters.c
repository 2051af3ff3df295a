#include "node/clusters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "crypto/secure.h"
#include "node/overlay.h"

#define MOD "clusters"
/* meta keys: "cluster/<name>" -> port (u16 big-endian) || token text;
 * "bootstrap/public" -> entries separated by '\n' (empty: an empty list). */
#define CLUSTER_KEY_PREFIX "cluster/"
#define BOOTSTRAP_KEY      "bootstrap/public"
#define KEY_MAX            (sizeof(CLUSTER_KEY_PREFIX) + CLUSTER_NAME_MAX)

static size_t cluster_key(const char *name, char key[KEY_MAX])
{
    int n = snprintf(key, KEY_MAX, "%s%s", CLUSTER_KEY_PREFIX, name);
    return n > 0 && (size_t)n < KEY_MAX ? (size_t)n : 0;
}

enum mp_err clusters_save(struct store *store, const struct clusters_entry *entry)
{
    char key[KEY_MAX];
    uint8_t val[2 + CLUSTER_TOKEN_TEXT_SIZE];
    size_t key_len = cluster_key(entry->name, key);
    size_t token_len = strnlen(entry->token, CLUSTER_TOKEN_TEXT_SIZE);

    if (!cluster_name_valid(entry->name) || key_len == 0 || token_len > CLUSTER_TOKEN_TEXT_MAX)
        return MP_ERR_INVAL;
    val[0] = (uint8_t)(entry->port >> 8);
    val[1] = (uint8_t)(entry->port & 0xff);
    memcpy(val + 2, entry->token, token_len);
    enum mp_err err = store_put(store, STORE_CF_META, key, key_len, val, 2 + token_len, true);
    secure_wipe(val, sizeof(val));
    return err;
}

enum mp_err clusters_remove(struct store *store, const char *name)
{
    char key[KEY_MAX], prefix[OVERLAY_PREFIX_MAX];
    uint8_t *val = NULL;
    size_t len = 0, key_len = cluster_name_valid(name) ? cluster_key(name, key) : 0;

    if (key_len == 0)
        return MP_ERR_NOT_FOUND;
    enum mp_err err = store_get(store, STORE_CF_META, key, key_len, &val, &len);
    if (val != NULL) {
        secure_wipe(val, len);
        free(val);
    }
    if (err != MP_OK)
        return err;
    int plen = snprintf(prefix, sizeof(prefix), "c/%s/", name);
    if ((err = overlay_forget_peers(store, (const uint8_t *)prefix, (size_t)plen)) != MP_OK)
        return err;
    return store_delete(store, STORE_CF_META, key, key_len, true);
}

enum mp_err clusters_load(struct store *store, struct clusters_entry *out, size_t max,
                          size_t *count_out)
{
    const uint8_t *key, *val;
    size_t key_len, val_len, n = 0;
    size_t plen = strlen(CLUSTER_KEY_PREFIX);

    struct store_iter *it = store_iter_new(store, STORE_CF_META, CLUSTER_KEY_PREFIX, plen);
    while (n < max && store_iter_next(it, &key, &key_len, &val, &val_len)) {
        struct clusters_entry *e = &out[n];
        size_t name_len = key_len - plen;
        memset(e, 0, sizeof(*e));
        if (name_len > CLUSTER_NAME_MAX || val_len < 2 || val_len - 2 > CLUSTER_TOKEN_TEXT_MAX) {
            log_warn(MOD, "skipping a damaged cluster entry in the store");
            continue;
        }
        memcpy(e->name, key + plen, name_len);
        e->port = (uint16_t)((val[0] << 8) | val[1]);
        memcpy(e->token, val + 2, val_len - 2);
        if (!cluster_name_valid(e->name)) {
            log_warn(MOD, "skipping a damaged cluster entry in the store");
            continue;
        }
        n++;
    }
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    *count_out = n;
    return err;
}

enum mp_err clusters_bootstrap_load(struct store *store, struct config *cfg, bool *stored_out)
{
    uint8_t *val = NULL;
    size_t len = 0;

    *stored_out = false;
    enum mp_err err =
        store_get(store, STORE_CF_META, BOOTSTRAP_KEY, strlen(BOOTSTRAP_KEY), &val, &len);
    if (err == MP_ERR_NOT_FOUND)
        return MP_OK;
    if (err != MP_OK)
        return err;
    *stored_out = true;
    cfg->bootstrap_count = 0;
    size_t at = 0;
    while (at < len) {
        char entry[CONFIG_BOOTSTRAP_TEXT_MAX], why[200];
        const uint8_t *nl = memchr(val + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - val) : len;
        if (end - at < sizeof(entry)) {
            memcpy(entry, val + at, end - at);
            entry[end - at] = '\0';
            if (config_add_bootstrap(cfg, entry, why, sizeof(why)) != MP_OK)
                log_warn(MOD, "stored bootstrap entry skipped: %s", why);
        }
        at = end + 1;
    }
    free(val);
    return MP_OK;
}

enum mp_err clusters_bootstrap_save(struct store *store, const struct config *cfg)
{
    char text[CONFIG_BOOTSTRAP_MAX * CONFIG_BOOTSTRAP_TEXT_MAX];
    size_t len = 0;

    for (unsigned i = 0; i < cfg->bootstrap_count; i++) {
        int n =
            snprintf(text + len, sizeof(text) - len, "%s%s", i > 0 ? "\n" : "", cfg->bootstrap[i]);
        if (n < 0 || (size_t)n >= sizeof(text) - len)
            return MP_ERR_TOO_BIG;
        len += (size_t)n;
    }
    return store_put(store, STORE_CF_META, BOOTSTRAP_KEY, strlen(BOOTSTRAP_KEY), text, len, true);
}
