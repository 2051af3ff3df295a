/*
 * contacts: the contacts book (see contacts.h).
 *
 * The store's contacts family is the only copy: every call reads the entry
 * it needs and writes it back. Only the per-state counts are kept in memory
 * (to bound the book without a scan per unknown sender); name uniqueness and
 * prefix lookups scan the family, which is bounded by CONTACTS_MAX.
 */
#include "node/contacts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/secure.h"

#define MOD "contacts"
/* Hex digits of a node key shown in messages. */
#define KEY_SHOWN 16

struct contacts {
    struct store *store;
    uint8_t self_pk[CONTACT_KEY_BYTES];
    size_t count[4]; /* by enum contact_state */
    uint64_t requests_refused;
};

/* ---- helpers ---- */

static size_t total(const struct contacts *book)
{
    return book->count[CONTACT_STATE_CONTACT] + book->count[CONTACT_STATE_REQUEST] +
           book->count[CONTACT_STATE_BLOCKED];
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int name_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = ascii_lower((unsigned char)*a), cb = ascii_lower((unsigned char)*b);
        if (ca != cb || ca == 0)
            return ca - cb;
    }
}

static enum mp_err load(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                        struct contact *c)
{
    uint8_t *val = NULL;
    size_t len = 0;

    enum mp_err err = store_get(book->store, STORE_CF_CONTACTS, pk, CONTACT_KEY_BYTES, &val, &len);
    if (err != MP_OK)
        return err;
    err = contact_wire_decode(val, len, c);
    free(val);
    if (err != MP_OK) {
        char hex[2 * CONTACT_KEY_BYTES + 1];
        log_warn(MOD, "contact %.16s... cannot be read (%s)",
                 secure_hex(hex, sizeof(hex), pk, CONTACT_KEY_BYTES), mp_strerror(err));
        return MP_ERR_STORE;
    }
    memcpy(c->account_pk, pk, CONTACT_KEY_BYTES);
    return MP_OK;
}

static enum mp_err save(struct contacts *book, const struct contact *c, bool sync)
{
    uint8_t val[CONTACT_WIRE_MAX];
    size_t len = 0;

    enum mp_err err = contact_wire_encode(c, val, sizeof(val), &len);
    if (err == MP_OK)
        err = store_put(book->store, STORE_CF_CONTACTS, c->account_pk, CONTACT_KEY_BYTES, val, len,
                        sync);
    if (err != MP_OK)
        log_warn(MOD, "cannot save a contact: %s", mp_strerror(err));
    return err;
}

/* Save c whose stored state was old_state (0: new entry), keeping counts. */
static enum mp_err save_counted(struct contacts *book, const struct contact *c,
                                enum contact_state old_state, bool sync)
{
    enum mp_err err = save(book, c, sync);
    if (err != MP_OK)
        return err;
    if (old_state != 0)
        book->count[old_state]--;
    book->count[c->state]++;
    return MP_OK;
}

/* Calls fn for every decodable entry until it returns false. */
static enum mp_err each(struct contacts *book, bool (*fn)(void *arg, const struct contact *c),
                        void *arg)
{
    struct store_iter *it = store_iter_new(book->store, STORE_CF_CONTACTS, NULL, 0);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    struct contact c;

    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (key_len != CONTACT_KEY_BYTES || contact_wire_decode(val, val_len, &c) != MP_OK)
            continue;
        memcpy(c.account_pk, key, CONTACT_KEY_BYTES);
        if (!fn(arg, &c))
            break;
    }
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    return err;
}

static void copy_out(struct contact *c_out, const struct contact *c)
{
    if (c_out != NULL)
        *c_out = *c;
}

/* ---- open ---- */

static bool count_cb(void *arg, const struct contact *c)
{
    struct contacts *book = arg;
    book->count[c->state]++;
    return true;
}

enum mp_err contacts_open(struct store *store, const uint8_t self_pk[CONTACT_KEY_BYTES],
                          struct contacts **book_out)
{
    struct contacts *book = calloc(1, sizeof(*book));
    if (book == NULL)
        return MP_ERR_NOMEM;
    book->store = store;
    memcpy(book->self_pk, self_pk, CONTACT_KEY_BYTES);

    /* Count, and say which entries cannot be read (left in place). */
    struct store_iter *it = store_iter_new(store, STORE_CF_CONTACTS, NULL, 0);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    size_t damaged = 0;
    struct contact c;
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (key_len != CONTACT_KEY_BYTES || contact_wire_decode(val, val_len, &c) != MP_OK)
            damaged++;
        else
            count_cb(book, &c);
    }
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    if (err != MP_OK) {
        contacts_free(book);
        return err;
    }
    if (damaged > 0)
        log_warn(MOD, "%zu damaged contact entries skipped", damaged);
    log_info(MOD, "%zu contacts, %zu requests, %zu blocked", book->count[CONTACT_STATE_CONTACT],
             book->count[CONTACT_STATE_REQUEST], book->count[CONTACT_STATE_BLOCKED]);
    *book_out = book;
    return MP_OK;
}

void contacts_free(struct contacts *book)
{
    if (book == NULL)
        return;
    secure_wipe(book, sizeof(*book));
    free(book);
}

const uint8_t *contacts_self(const struct contacts *book)
{
    return book->self_pk;
}

/* ---- names ---- */

struct name_ctx {
    const char *name;
    const uint8_t *except;
    bool taken;
};

static bool name_cb(void *arg, const struct contact *c)
{
    struct name_ctx *n = arg;
    if (c->name[0] != '\0' && name_cmp(c->name, n->name) == 0 &&
        memcmp(c->account_pk, n->except, CONTACT_KEY_BYTES) != 0) {
        n->taken = true;
        return false;
    }
    return true;
}

/* MP_ERR_EXISTS when another entry than pk has name. */
static enum mp_err name_free(struct contacts *book, const char *name,
                             const uint8_t pk[CONTACT_KEY_BYTES])
{
    struct name_ctx n = {name, pk, false};
    enum mp_err err = each(book, name_cb, &n);
    if (err != MP_OK)
        return err;
    return n.taken ? MP_ERR_EXISTS : MP_OK;
}

/* ---- the user's operations ---- */

const char *contacts_action_name(enum contacts_action action)
{
    switch (action) {
    case CONTACTS_ACTION_ADDED:
        return "added";
    case CONTACTS_ACTION_ACCEPTED:
        return "accepted";
    case CONTACTS_ACTION_UNBLOCKED:
        return "unblocked";
    case CONTACTS_ACTION_RENAMED:
        return "renamed";
    case CONTACTS_ACTION_UNCHANGED:
        return "unchanged";
    }
    return "?";
}

enum mp_err contacts_add(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                         const char *name, uint64_t now_ms, enum contacts_action *action_out,
                         struct contact *c_out)
{
    struct contact c;
    enum contacts_action action;
    enum contact_state old_state = 0;
    enum mp_err err;

    if (memcmp(pk, book->self_pk, CONTACT_KEY_BYTES) == 0)
        return MP_ERR_INVAL;
    if (name != NULL && !contact_name_check(name, strlen(name)))
        return MP_ERR_INVAL;
    err = load(book, pk, &c);
    if (err == MP_ERR_NOT_FOUND || err == MP_ERR_STORE) { /* new, or replacing a damaged one */
        if (total(book) >= CONTACTS_MAX)
            return MP_ERR_TOO_BIG;
        memset(&c, 0, sizeof(c));
        memcpy(c.account_pk, pk, CONTACT_KEY_BYTES);
        c.added_at_ms = now_ms;
        action = CONTACTS_ACTION_ADDED;
    } else if (err != MP_OK) {
        return err;
    } else {
        old_state = c.state;
        action = c.state == CONTACT_STATE_REQUEST            ? CONTACTS_ACTION_ACCEPTED
                 : c.state == CONTACT_STATE_BLOCKED          ? CONTACTS_ACTION_UNBLOCKED
                 : name != NULL && strcmp(c.name, name) != 0 ? CONTACTS_ACTION_RENAMED
                                                             : CONTACTS_ACTION_UNCHANGED;
    }
    if (name != NULL && (err = name_free(book, name, pk)) != MP_OK)
        return err;
    if (name != NULL)
        snprintf(c.name, sizeof(c.name), "%s", name);
    c.state = CONTACT_STATE_CONTACT;
    if (action != CONTACTS_ACTION_UNCHANGED &&
        (err = save_counted(book, &c, old_state, true)) != MP_OK)
        return err;
    if (action_out != NULL)
        *action_out = action;
    copy_out(c_out, &c);
    return MP_OK;
}

enum mp_err contacts_get(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                         struct contact *c_out)
{
    return load(book, pk, c_out);
}

struct find_ctx {
    const char *query; /* lowercase address prefix, or a name */
    bool by_name;
    size_t matches;
    struct contact found;
};

static bool find_cb(void *arg, const struct contact *c)
{
    struct find_ctx *f = arg;
    bool match;

    if (f->by_name) {
        match = c->name[0] != '\0' && name_cmp(c->name, f->query) == 0;
    } else {
        char text[ADDRESS_TEXT_SIZE];
        address_encode(c->account_pk, text);
        match = strncmp(text, f->query, strlen(f->query)) == 0;
    }
    if (match) {
        f->matches++;
        f->found = *c;
    }
    return f->matches < 2;
}

enum mp_err contacts_find(struct contacts *book, const char *query, struct contact *c_out)
{
    uint8_t pk[CONTACT_KEY_BYTES];
    size_t len = query != NULL ? strlen(query) : 0;
    enum mp_err err;

    if (len == 0)
        return MP_ERR_NOT_FOUND;
    bool addressish = len >= 3 && ascii_lower((unsigned char)query[0]) == 'm' &&
                      ascii_lower((unsigned char)query[1]) == 'p' && query[2] == '1';
    if (!addressish) {
        /* Names never start with "mp1" (contact_name_check). */
        struct find_ctx f = {.query = query, .by_name = true};
        if ((err = each(book, find_cb, &f)) != MP_OK)
            return err;
        if (f.matches == 0)
            return MP_ERR_NOT_FOUND;
        copy_out(c_out, &f.found);
        return MP_OK;
    }
    if (len >= ADDRESS_TEXT_LEN) {
        if ((err = address_decode(query, pk)) != MP_OK)
            return err;
        return load(book, pk, c_out);
    }
    if (len < CONTACTS_PREFIX_MIN)
        return MP_ERR_NOT_FOUND;
    char lower[ADDRESS_TEXT_SIZE];
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)ascii_lower((unsigned char)query[i]);
    struct find_ctx f = {.query = lower, .by_name = false};
    if ((err = each(book, find_cb, &f)) != MP_OK)
        return err;
    if (f.matches > 1)
        return MP_ERR_CONTACT_AMBIGUOUS;
    if (f.matches == 0) {
        /* A long query is a mistyped address more likely than a prefix. */
        if (len > 2 * CONTACTS_PREFIX_MIN && (err = address_decode(query, pk)) != MP_OK)
            return err;
        return MP_ERR_NOT_FOUND;
    }
    copy_out(c_out, &f.found);
    return MP_OK;
}

struct list_ctx {
    enum contact_state state;
    struct contact *list;
    size_t count;
    size_t cap;
    bool nomem;
};

static bool list_cb(void *arg, const struct contact *c)
{
    struct list_ctx *l = arg;

    if (l->state != 0 && c->state != l->state)
        return true;
    if (l->count == l->cap) {
        size_t cap = l->cap > 0 ? l->cap * 2 : 16;
        struct contact *grown = realloc(l->list, cap * sizeof(*grown));
        if (grown == NULL) {
            l->nomem = true;
            return false;
        }
        l->list = grown;
        l->cap = cap;
    }
    l->list[l->count++] = *c;
    /* The book is bounded; a store with more (written by hand) is cut. */
    return l->count < CONTACTS_MAX;
}

static int list_order(const void *pa, const void *pb)
{
    const struct contact *a = pa, *b = pb;
    bool na = a->name[0] != '\0', nb = b->name[0] != '\0';

    if (na != nb)
        return na ? -1 : 1;
    if (na) {
        int d = name_cmp(a->name, b->name);
        if (d != 0)
            return d;
        d = strcmp(a->name, b->name);
        if (d != 0)
            return d;
    }
    /* Unnamed: by key, a stable order. */
    return memcmp(a->account_pk, b->account_pk, CONTACT_KEY_BYTES);
}

enum mp_err contacts_list(struct contacts *book, enum contact_state state,
                          struct contact **list_out, size_t *count_out)
{
    struct list_ctx l = {.state = state};

    *list_out = NULL;
    *count_out = 0;
    enum mp_err err = each(book, list_cb, &l);
    if (err == MP_OK && l.nomem)
        err = MP_ERR_NOMEM;
    if (err != MP_OK) {
        free(l.list);
        return err;
    }
    if (l.count > 1)
        qsort(l.list, l.count, sizeof(*l.list), list_order);
    *list_out = l.list;
    *count_out = l.count;
    return MP_OK;
}

enum mp_err contacts_remove(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES])
{
    struct contact c;
    enum mp_err err = load(book, pk, &c);
    if (err != MP_OK && err != MP_ERR_STORE) /* a damaged entry can be removed */
        return err;
    bool counted = err == MP_OK;
    if ((err = store_delete(book->store, STORE_CF_CONTACTS, pk, CONTACT_KEY_BYTES, true)) != MP_OK)
        return err;
    if (counted)
        book->count[c.state]--;
    return MP_OK;
}

enum mp_err contacts_block(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                           uint64_t now_ms, struct contact *c_out)
{
    struct contact c;
    enum contact_state old_state = 0;

    if (memcmp(pk, book->self_pk, CONTACT_KEY_BYTES) == 0)
        return MP_ERR_INVAL;
    enum mp_err err = load(book, pk, &c);
    if (err == MP_ERR_NOT_FOUND || err == MP_ERR_STORE) {
        if (total(book) >= CONTACTS_MAX)
            return MP_ERR_TOO_BIG;
        memset(&c, 0, sizeof(c));
        memcpy(c.account_pk, pk, CONTACT_KEY_BYTES);
        c.added_at_ms = now_ms;
    } else if (err != MP_OK) {
        return err;
    } else {
        old_state = c.state;
    }
    if (c.state != CONTACT_STATE_BLOCKED) {
        c.state = CONTACT_STATE_BLOCKED;
        if ((err = save_counted(book, &c, old_state, true)) != MP_OK)
            return err;
    }
    copy_out(c_out, &c);
    return MP_OK;
}

enum mp_err contacts_accept(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                            struct contact *c_out)
{
    struct contact c;
    enum mp_err err = load(book, pk, &c);
    if (err != MP_OK)
        return err;
    if (c.state != CONTACT_STATE_CONTACT) {
        enum contact_state old_state = c.state;
        c.state = CONTACT_STATE_CONTACT;
        if ((err = save_counted(book, &c, old_state, true)) != MP_OK)
            return err;
    }
    copy_out(c_out, &c);
    return MP_OK;
}

/* Whether c's networks list name. */
static bool has_network(const struct contact *c, const char *name)
{
    for (size_t i = 0; i < c->network_count && i < CONTACT_NETWORKS_MAX; i++) {
        if (strcmp(c->networks[i], name) == 0)
            return true;
    }
    return false;
}

enum mp_err contacts_note_network(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                                  const char *name, bool *added_out)
{
    struct contact c;
    enum mp_err err;

    if (added_out != NULL)
        *added_out = false;
    if (name == NULL || !contact_network_check(name, strlen(name)))
        return MP_ERR_INVAL;
    if ((err = load(book, pk, &c)) != MP_OK)
        return err;
    if (c.state == CONTACT_STATE_BLOCKED || c.networks_pinned || has_network(&c, name) ||
        c.network_count >= CONTACT_NETWORKS_MAX)
        return MP_OK;
    snprintf(c.networks[c.network_count], sizeof(c.networks[0]), "%s", name);
    c.network_count++;
    if ((err = save(book, &c, false)) != MP_OK)
        return err;
    if (added_out != NULL)
        *added_out = true;
    return MP_OK;
}

enum mp_err contacts_pin_networks(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                                  const char *const *names, size_t count, struct contact *c_out)
{
    struct contact c;
    enum mp_err err;

    if (count > CONTACT_NETWORKS_MAX)
        return MP_ERR_INVAL;
    for (size_t i = 0; i < count; i++) {
        if (names[i] == NULL || !contact_network_check(names[i], strlen(names[i])))
            return MP_ERR_INVAL;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(names[k], names[i]) == 0)
                return MP_ERR_INVAL;
        }
    }
    if ((err = load(book, pk, &c)) != MP_OK)
        return err;
    memset(c.networks, 0, sizeof(c.networks));
    for (size_t i = 0; i < count; i++)
        snprintf(c.networks[i], sizeof(c.networks[i]), "%s", names[i]);
    c.network_count = (uint8_t)count;
    c.networks_pinned = count > 0;
    if ((err = save(book, &c, true)) != MP_OK)
        return err;
    copy_out(c_out, &c);
    return MP_OK;
}

enum mp_err contacts_verify(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                            struct contact *c_out)
{
    struct contact c;
    enum mp_err err = load(book, pk, &c);
    if (err != MP_OK)
        return err;
    if (!c.verified) {
        c.verified = true;
        if ((err = save(book, &c, true)) != MP_OK)
            return err;
    }
    copy_out(c_out, &c);
    return MP_OK;
}

enum mp_err contacts_trust(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                           bool *changed_out, struct contact *c_out)
{
    struct contact c;
    enum mp_err err = load(book, pk, &c);
    if (err != MP_OK)
        return err;
    *changed_out = c.has_pending_key;
    if (c.has_pending_key) {
        memcpy(c.node_key, c.pending_key, CONTACT_KEY_BYTES);
        c.has_node_key = true;
        c.has_pending_key = false;
        memset(c.pending_key, 0, sizeof(c.pending_key));
        c.pending_since_ms = 0;
        if ((err = save(book, &c, true)) != MP_OK)
            return err;
    }
    copy_out(c_out, &c);
    return MP_OK;
}

/* ---- the delivery engine's question ---- */

const char *contacts_verdict_name(enum contacts_verdict verdict)
{
    switch (verdict) {
    case CONTACTS_VERDICT_DELIVER:
        return "deliver";
    case CONTACTS_VERDICT_REQUEST:
        return "request";
    case CONTACTS_VERDICT_DROP:
        return "drop";
    case CONTACTS_VERDICT_KEY_CHANGED:
        return "key_changed";
    }
    return "?";
}

static void seen(struct contact *c, uint64_t now_ms)
{
    if (c->first_seen_ms == 0)
        c->first_seen_ms = now_ms;
    if (now_ms > c->last_seen_ms)
        c->last_seen_ms = now_ms;
}

enum mp_err contacts_note_sender(struct contacts *book, const uint8_t account_pk[CONTACT_KEY_BYTES],
                                 const uint8_t node_pk[CONTACT_KEY_BYTES], uint64_t now_ms,
                                 enum contacts_verdict *verdict_out)
{
    struct contact c;
    bool sync = false;

    enum mp_err err = load(book, account_pk, &c);
    if (err == MP_ERR_NOT_FOUND) {
        if (book->count[CONTACT_STATE_REQUEST] >= CONTACTS_REQUESTS_MAX ||
            total(book) >= CONTACTS_MAX) {
            book->requests_refused++;
            *verdict_out = CONTACTS_VERDICT_DROP;
            return MP_OK;
        }
        memset(&c, 0, sizeof(c));
        memcpy(c.account_pk, account_pk, CONTACT_KEY_BYTES);
        c.state = CONTACT_STATE_REQUEST;
        c.added_at_ms = now_ms;
        if (node_pk != NULL) {
            memcpy(c.node_key, node_pk, CONTACT_KEY_BYTES);
            c.has_node_key = true;
        }
        c.accepted = 1;
        seen(&c, now_ms);
        if ((err = save_counted(book, &c, 0, true)) != MP_OK)
            return err;
        *verdict_out = CONTACTS_VERDICT_REQUEST;
        return MP_OK;
    }
    if (err != MP_OK)
        return err;

    enum contacts_verdict verdict;
    if (c.state == CONTACT_STATE_BLOCKED) {
        c.dropped++;
        verdict = CONTACTS_VERDICT_DROP;
    } else if (node_pk != NULL && c.has_node_key &&
               memcmp(c.node_key, node_pk, CONTACT_KEY_BYTES) != 0) {
        if (!c.has_pending_key || memcmp(c.pending_key, node_pk, CONTACT_KEY_BYTES) != 0) {
            memcpy(c.pending_key, node_pk, CONTACT_KEY_BYTES);
            c.has_pending_key = true;
            c.pending_since_ms = now_ms;
            sync = true;
            char hex[2 * CONTACT_KEY_BYTES + 1];
            log_warn(MOD,
                     "a contact's node key changed (new key %.16s...); refusing its "
                     "messages until the user trusts it",
                     secure_hex(hex, sizeof(hex), node_pk, CONTACT_KEY_BYTES));
        }
        c.refused++;
        verdict = CONTACTS_VERDICT_KEY_CHANGED;
    } else {
        if (!c.has_node_key && node_pk != NULL) {
            memcpy(c.node_key, node_pk, CONTACT_KEY_BYTES);
            c.has_node_key = true;
            sync = true;
        }
        c.accepted++;
        verdict =
            c.state == CONTACT_STATE_CONTACT ? CONTACTS_VERDICT_DELIVER : CONTACTS_VERDICT_REQUEST;
    }
    seen(&c, now_ms);
    if ((err = save(book, &c, sync)) != MP_OK)
        return err;
    *verdict_out = verdict;
    return MP_OK;
}

void contacts_key_message(const struct contact *c, char *out, size_t cap)
{
    char addr[ADDRESS_TEXT_SIZE];
    char old_hex[2 * CONTACT_KEY_BYTES + 1], new_hex[2 * CONTACT_KEY_BYTES + 1];

    if (cap == 0)
        return;
    out[0] = '\0';
    if (!c->has_pending_key)
        return;
    address_encode(c->account_pk, addr);
    secure_hex(old_hex, sizeof(old_hex), c->node_key, CONTACT_KEY_BYTES);
    secure_hex(new_hex, sizeof(new_hex), c->pending_key, CONTACT_KEY_BYTES);
    snprintf(out, cap,
             "the node key of %s changed from %.*s... to %.*s...; its messages are refused. "
             "If they set up a new node, compare safety numbers (`merpati contacts verify %s`) "
             "and run `merpati contacts trust %s`; if not, someone may be impersonating them",
             c->name[0] != '\0' ? c->name : addr, KEY_SHOWN, old_hex, KEY_SHOWN, new_hex,
             c->name[0] != '\0' ? c->name : addr, c->name[0] != '\0' ? c->name : addr);
}

void contacts_counts(const struct contacts *book, struct contacts_counts *counts_out)
{
    counts_out->contacts = book->count[CONTACT_STATE_CONTACT];
    counts_out->requests = book->count[CONTACT_STATE_REQUEST];
    counts_out->blocked = book->count[CONTACT_STATE_BLOCKED];
    counts_out->requests_refused = book->requests_refused;
}
