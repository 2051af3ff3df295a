/* Unit tests for node/contact (names, the stored value's codec) and
 * node/contacts (the book over a real store in a temp dir): what the user's
 * commands and the delivery engine would observe. */
#define _GNU_SOURCE /* mkdtemp */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/identity.h"
#include "crypto/secure.h"
#include "node/contact.h"
#include "node/contacts.h"
#include "node/store.h"

#define DIR_MAX 256

/* ---- names and codec ---- */

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {"alice", "Bob Smith", "Zoë",    "日本語",
                                       "a",     "emoji 🐦",   "x-y_z.1"};
    static const char *const bad[] = {"",
                                      " alice",
                                      "alice ",
                                      "a\tb",
                                      "a\nb",
                                      "mp1abc",
                                      "MP1xyz",
                                      "a\x7f",
                                      "\xc3",
                                      "\xc0\xaf",
                                      "\xed\xa0\x80",
                                      "ab\xe2\x80\xae"
                                      "cd",
                                      "\xc2\x85",
                                      "x\xe2\x81\xa6y"};
    char long_name[CONTACT_NAME_MAX + 2];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(contact_name_check(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (contact_name_check(bad[i], strlen(bad[i])))
            fail_msg("name #%zu accepted", i);
    }
    memset(long_name, 'n', sizeof(long_name));
    assert_true(contact_name_check(long_name, CONTACT_NAME_MAX));
    assert_false(contact_name_check(long_name, CONTACT_NAME_MAX + 1));
    assert_false(contact_name_check("a\0b", 3));
}

static void full_contact(struct contact *c)
{
    memset(c, 0, sizeof(*c));
    memset(c->account_pk, 0x11, sizeof(c->account_pk));
    snprintf(c->name, sizeof(c->name), "%s", "Zoë the 🐦");
    c->state = CONTACT_STATE_REQUEST;
    c->added_at_ms = 1700000000123ull;
    c->verified = true;
    c->first_seen_ms = 1700000000200ull;
    c->last_seen_ms = UINT64_MAX;
    c->has_node_key = true;
    memset(c->node_key, 0x22, sizeof(c->node_key));
    c->has_pending_key = true;
    memset(c->pending_key, 0x33, sizeof(c->pending_key));
    c->pending_since_ms = 42;
    c->network_count = CONTACT_NETWORKS_MAX;
    for (int i = 0; i < CONTACT_NETWORKS_MAX; i++)
        memset(c->networks[i], 'a' + i, CONTACT_NETWORK_MAX);
    c->networks_pinned = true;
    c->accepted = 1;
    c->dropped = 2;
    c->refused = UINT64_MAX;
}

static void test_codec_round_trip(void **state)
{
    (void)state;
    struct contact c, back;
    uint8_t buf[CONTACT_WIRE_MAX];
    size_t len = 0;

    /* Every field at its largest: fits CONTACT_WIRE_MAX exactly or below. */
    full_contact(&c);
    memset(c.name, 'n', CONTACT_NAME_MAX);
    c.name[CONTACT_NAME_MAX] = '\0';
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    assert_true(len <= CONTACT_WIRE_MAX);
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_OK);
    memcpy(back.account_pk, c.account_pk, CONTACT_KEY_BYTES);
    assert_memory_equal(&back, &c, sizeof(c));

    /* Unicode name, and an entry with nothing optional. */
    full_contact(&c);
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_OK);
    assert_string_equal(back.name, "Zoë the 🐦");
    memset(&c, 0, sizeof(c));
    c.state = CONTACT_STATE_BLOCKED;
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_OK);
    assert_memory_equal(&back, &c, sizeof(c));

    /* Truncated, trailing byte, small cap. */
    full_contact(&c);
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal(contact_wire_decode(buf, cut, &back), MP_OK);
    buf[len] = 0xc0;
    assert_int_equal(contact_wire_decode(buf, len + 1, &back), MP_ERR_MALFORMED);
    assert_int_equal(contact_wire_encode(&c, buf, 10, &len), MP_ERR_TOO_BIG);
}

static void test_codec_refuses(void **state)
{
    (void)state;
    struct contact c, back;
    uint8_t buf[CONTACT_WIRE_MAX + 8];
    size_t len = 0;

    /* Another version: its own error, whatever follows. */
    const uint8_t v2[] = {0x91, 0x02};
    assert_int_equal(contact_wire_decode(v2, sizeof(v2), &back), MP_ERR_STORE_VERSION);
    /* A bad name or state cannot be stored, nor read back. */
    full_contact(&c);
    snprintf(c.name, sizeof(c.name), "%s", "bad\nname");
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_ERR_INVAL);
    full_contact(&c);
    c.state = 4;
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_ERR_INVAL);
    full_contact(&c);
    snprintf(c.name, sizeof(c.name), "%s", "alice");
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    uint8_t *name = memmem(buf, len, "alice", 5);
    assert_non_null(name);
    name[1] = '\n';
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_ERR_MALFORMED);
    name[1] = 'l';
    buf[2 + 1 + 5] = 9; /* the state after the name: unknown */
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_ERR_MALFORMED);
    /* Oversized input. */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(contact_wire_decode(buf, CONTACT_WIRE_MAX + 1, &back), MP_ERR_TOO_BIG);
    /* An array claiming 2^32 - 1 elements in 6 bytes. */
    const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(contact_wire_decode(huge, sizeof(huge), &back), MP_ERR_MALFORMED);
}

/* ---- the book over a real store ---- */

struct fixture {
    char dir[DIR_MAX];
    struct store *store;
    struct contacts *book;
    uint8_t self[CONTACT_KEY_BYTES];
    uint8_t keys[4][CONTACT_KEY_BYTES];
    char addr[4][ADDRESS_TEXT_SIZE];
};

static void key_from(uint8_t n, uint8_t pk_out[CONTACT_KEY_BYTES])
{
    uint8_t seed[IDENTITY_SEED_BYTES];
    struct identity *id = NULL;
    memset(seed, n, sizeof(seed));
    assert_int_equal(identity_from_seed(seed, &id), MP_OK);
    memcpy(pk_out, identity_public_key(id), CONTACT_KEY_BYTES);
    identity_free(id);
}

static void reopen(struct fixture *f)
{
    pid_t holder = 0;
    contacts_free(f->book);
    store_close(f->store);
    assert_int_equal(store_open(f->dir, &f->store, &holder), MP_OK);
    assert_int_equal(contacts_open(f->store, f->self, &f->book), MP_OK);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    pid_t holder = 0;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/merpati-contacts-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, &f->store, &holder), MP_OK);
    key_from(1, f->self);
    for (int i = 0; i < 4; i++) {
        key_from((uint8_t)(10 + i), f->keys[i]);
        address_encode(f->keys[i], f->addr[i]);
    }
    assert_int_equal(contacts_open(f->store, f->self, &f->book), MP_OK);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    contacts_free(f->book);
    store_close(f->store);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void test_add_rename_list(void **state)
{
    struct fixture *f = *state;
    enum contacts_action action;
    struct contact c, *list = NULL;
    size_t n = 0;

    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1000, &action, &c), MP_OK);
    assert_int_equal(action, CONTACTS_ACTION_ADDED);
    assert_int_equal(c.state, CONTACT_STATE_CONTACT);
    assert_int_equal(c.added_at_ms, 1000);
    assert_int_equal(contacts_add(f->book, f->keys[1], "Alice", 2000, &action, NULL), MP_OK);
    assert_int_equal(contacts_add(f->book, f->keys[2], NULL, 3000, &action, NULL), MP_OK);

    /* Names are unique, ignoring ASCII case; one's own name is no conflict. */
    assert_int_equal(contacts_add(f->book, f->keys[2], "BOB", 3000, NULL, NULL), MP_ERR_EXISTS);
    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 5000, &action, &c), MP_OK);
    assert_int_equal(action, CONTACTS_ACTION_UNCHANGED);
    assert_int_equal(c.added_at_ms, 1000);
    /* Adding again with a new name renames. */
    assert_int_equal(contacts_add(f->book, f->keys[0], "robert", 5000, &action, &c), MP_OK);
    assert_int_equal(action, CONTACTS_ACTION_RENAMED);
    assert_string_equal(c.name, "robert");
    /* Bad names, and oneself. */
    assert_int_equal(contacts_add(f->book, f->keys[3], "mp1x", 1, NULL, NULL), MP_ERR_INVAL);
    assert_int_equal(contacts_add(f->book, f->keys[3], "", 1, NULL, NULL), MP_ERR_INVAL);
    assert_int_equal(contacts_add(f->book, f->self, "me", 1, NULL, NULL), MP_ERR_INVAL);
    assert_int_equal(contacts_get(f->book, f->keys[3], &c), MP_ERR_NOT_FOUND);

    /* Sorted by name, case ignored; the unnamed last. Survives a reopen. */
    reopen(f);
    assert_int_equal(contacts_list(f->book, 0, &list, &n), MP_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "Alice");
    assert_string_equal(list[1].name, "robert");
    assert_string_equal(list[2].name, "");
    assert_memory_equal(list[2].account_pk, f->keys[2], CONTACT_KEY_BYTES);
    free(list);
    struct contacts_counts counts;
    contacts_counts(f->book, &counts);
    assert_int_equal(counts.contacts, 3);
    assert_int_equal(counts.requests, 0);
}

static void test_find(void **state)
{
    struct fixture *f = *state;
    struct contact c;
    char query[ADDRESS_TEXT_SIZE];

    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1, NULL, NULL), MP_OK);
    assert_int_equal(contacts_add(f->book, f->keys[1], NULL, 1, NULL, NULL), MP_OK);

    assert_int_equal(contacts_find(f->book, "bob", &c), MP_OK);
    assert_memory_equal(c.account_pk, f->keys[0], CONTACT_KEY_BYTES);
    assert_int_equal(contacts_find(f->book, "BoB", &c), MP_OK);
    assert_int_equal(contacts_find(f->book, "carol", &c), MP_ERR_NOT_FOUND);
    assert_int_equal(contacts_find(f->book, f->addr[1], &c), MP_OK);
    assert_memory_equal(c.account_pk, f->keys[1], CONTACT_KEY_BYTES);
    /* A unique prefix, in either case; too short a prefix finds nothing. */
    snprintf(query, sizeof(query), "%.12s", f->addr[1]);
    assert_int_equal(contacts_find(f->book, query, &c), MP_OK);
    assert_memory_equal(c.account_pk, f->keys[1], CONTACT_KEY_BYTES);
    for (char *p = query; *p != '\0'; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    assert_int_equal(contacts_find(f->book, query, &c), MP_OK);
    snprintf(query, sizeof(query), "%.5s", f->addr[1]);
    assert_int_equal(contacts_find(f->book, query, &c), MP_ERR_NOT_FOUND);
    /* A full address with a typo: the address error, not "not found". */
    snprintf(query, sizeof(query), "%s", f->addr[1]);
    query[20] = query[20] == 'q' ? 'p' : 'q';
    assert_int_equal(contacts_find(f->book, query, &c), MP_ERR_ADDR_CHECKSUM);
    /* One character short: a length error. */
    snprintf(query, sizeof(query), "%.*s", ADDRESS_TEXT_LEN - 1, f->addr[2]);
    assert_int_equal(contacts_find(f->book, query, &c), MP_ERR_ADDR_LENGTH);
    /* A valid address of no contact. */
    assert_int_equal(contacts_find(f->book, f->addr[2], &c), MP_ERR_NOT_FOUND);
}

static void test_ambiguous_prefix(void **state)
{
    struct fixture *f = *state;
    struct contact c;
    char query[ADDRESS_TEXT_SIZE];
    uint8_t pk[2][CONTACT_KEY_BYTES];
    char addr[2][ADDRESS_TEXT_SIZE];

    /* Two keys equal but for the last byte: their addresses share ~50 characters. */
    memset(pk[0], 0x42, CONTACT_KEY_BYTES);
    memcpy(pk[1], pk[0], CONTACT_KEY_BYTES);
    pk[1][CONTACT_KEY_BYTES - 1] ^= 0x01;
    address_encode(pk[0], addr[0]);
    address_encode(pk[1], addr[1]);
    assert_int_equal(contacts_add(f->book, pk[0], NULL, 1, NULL, NULL), MP_OK);
    assert_int_equal(contacts_add(f->book, pk[1], NULL, 1, NULL, NULL), MP_OK);
    size_t common = 0;
    while (addr[0][common] == addr[1][common])
        common++;
    assert_true(common > 2 * CONTACTS_PREFIX_MIN);
    snprintf(query, sizeof(query), "%.*s", CONTACTS_PREFIX_MIN, addr[0]);
    assert_int_equal(contacts_find(f->book, query, &c), MP_ERR_CONTACT_AMBIGUOUS);
    snprintf(query, sizeof(query), "%.*s", (int)common, addr[0]);
    assert_int_equal(contacts_find(f->book, query, &c), MP_ERR_CONTACT_AMBIGUOUS);
    snprintf(query, sizeof(query), "%.*s", (int)common + 1, addr[1]);
    assert_int_equal(contacts_find(f->book, query, &c), MP_OK);
    assert_memory_equal(c.account_pk, pk[1], CONTACT_KEY_BYTES);
}

static void test_requests_block_accept(void **state)
{
    struct fixture *f = *state;
    enum contacts_verdict v;
    enum contacts_action action;
    struct contact c;
    uint8_t node_a[CONTACT_KEY_BYTES], node_b[CONTACT_KEY_BYTES];
    memset(node_a, 0xaa, sizeof(node_a));
    memset(node_b, 0xbb, sizeof(node_b));

    /* A stranger writes: stored as a request, not a contact. */
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 100, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_REQUEST);
    assert_int_equal(contacts_get(f->book, f->keys[0], &c), MP_OK);
    assert_int_equal(c.state, CONTACT_STATE_REQUEST);
    assert_int_equal(c.first_seen_ms, 100);
    assert_true(c.has_node_key);
    assert_memory_equal(c.node_key, node_a, CONTACT_KEY_BYTES);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 200, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_REQUEST);
    struct contact *list = NULL;
    size_t n = 0;
    assert_int_equal(contacts_list(f->book, CONTACT_STATE_CONTACT, &list, &n), MP_OK);
    assert_int_equal(n, 0);
    assert_int_equal(contacts_list(f->book, CONTACT_STATE_REQUEST, &list, &n), MP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].accepted, 2);
    assert_int_equal(list[0].last_seen_ms, 200);
    free(list);

    /* Accepted, it is a contact: DELIVER. */
    assert_int_equal(contacts_accept(f->book, f->keys[0], &c), MP_OK);
    assert_int_equal(c.state, CONTACT_STATE_CONTACT);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 300, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DELIVER);

    /* Blocked: DROP, counted; adding unblocks. */
    assert_int_equal(contacts_block(f->book, f->keys[0], 400, &c), MP_OK);
    assert_int_equal(c.state, CONTACT_STATE_BLOCKED);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 500, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DROP);
    assert_int_equal(contacts_get(f->book, f->keys[0], &c), MP_OK);
    assert_int_equal(c.dropped, 1);
    assert_int_equal(contacts_add(f->book, f->keys[0], "amy", 600, &action, &c), MP_OK);
    assert_int_equal(action, CONTACTS_ACTION_UNBLOCKED);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 700, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DELIVER);

    /* Blocking someone never seen creates a blocked entry. */
    assert_int_equal(contacts_block(f->book, f->keys[1], 800, NULL), MP_OK);
    assert_int_equal(contacts_note_sender(f->book, f->keys[1], node_b, 900, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DROP);

    /* Removed: the next message makes it a request again. */
    assert_int_equal(contacts_remove(f->book, f->keys[0]), MP_OK);
    assert_int_equal(contacts_remove(f->book, f->keys[0]), MP_ERR_NOT_FOUND);
    assert_int_equal(contacts_accept(f->book, f->keys[0], &c), MP_ERR_NOT_FOUND);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_b, 1000, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_REQUEST);

    struct contacts_counts counts;
    reopen(f);
    contacts_counts(f->book, &counts);
    assert_int_equal(counts.contacts, 0);
    assert_int_equal(counts.requests, 1);
    assert_int_equal(counts.blocked, 1);
}

static void test_tofu_key_change(void **state)
{
    struct fixture *f = *state;
    enum contacts_verdict v;
    struct contact c;
    bool changed = true;
    char msg[512];
    uint8_t node_a[CONTACT_KEY_BYTES], node_b[CONTACT_KEY_BYTES];
    memset(node_a, 0xaa, sizeof(node_a));
    memset(node_b, 0xbb, sizeof(node_b));

    /* Added by address: no node key yet; the first message's is trusted. */
    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1, NULL, &c), MP_OK);
    assert_false(c.has_node_key);
    assert_int_equal(contacts_trust(f->book, f->keys[0], &changed, &c), MP_OK);
    assert_false(changed);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 10, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DELIVER);

    /* Another node key: refused, recorded, explained; still refused after a restart. */
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_b, 20, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_KEY_CHANGED);
    reopen(f);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_b, 30, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_KEY_CHANGED);
    assert_int_equal(contacts_get(f->book, f->keys[0], &c), MP_OK);
    assert_true(c.has_pending_key);
    assert_memory_equal(c.pending_key, node_b, CONTACT_KEY_BYTES);
    assert_memory_equal(c.node_key, node_a, CONTACT_KEY_BYTES);
    assert_int_equal(c.pending_since_ms, 20);
    assert_int_equal(c.refused, 2);
    contacts_key_message(&c, msg, sizeof(msg));
    assert_non_null(strstr(msg, "node key of bob changed from aaaaaaaaaaaaaaaa... to "
                                "bbbbbbbbbbbbbbbb..."));
    assert_non_null(strstr(msg, "merpati contacts trust bob"));
    /* The old key still works meanwhile. */
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 40, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DELIVER);

    /* The user trusts the new key: it replaces the old one. */
    assert_int_equal(contacts_trust(f->book, f->keys[0], &changed, &c), MP_OK);
    assert_true(changed);
    assert_false(c.has_pending_key);
    assert_memory_equal(c.node_key, node_b, CONTACT_KEY_BYTES);
    contacts_key_message(&c, msg, sizeof(msg));
    assert_string_equal(msg, "");
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_b, 50, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_DELIVER);
    assert_int_equal(contacts_note_sender(f->book, f->keys[0], node_a, 60, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_KEY_CHANGED);

    /* Verified is the user's mark; it stays. */
    assert_int_equal(contacts_verify(f->book, f->keys[0], &c), MP_OK);
    assert_true(c.verified);
    reopen(f);
    assert_int_equal(contacts_get(f->book, f->keys[0], &c), MP_OK);
    assert_true(c.verified);
    assert_int_equal(contacts_verify(f->book, f->keys[3], &c), MP_ERR_NOT_FOUND);
}

static void test_requests_bounded(void **state)
{
    struct fixture *f = *state;
    enum contacts_verdict v;
    uint8_t pk[CONTACT_KEY_BYTES], node[CONTACT_KEY_BYTES];
    struct contacts_counts counts;

    memset(node, 0x55, sizeof(node));
    memset(pk, 0, sizeof(pk));
    for (unsigned i = 0; i < CONTACTS_REQUESTS_MAX + 5; i++) {
        pk[0] = (uint8_t)i;
        pk[1] = (uint8_t)(i >> 8);
        assert_int_equal(contacts_note_sender(f->book, pk, node, 1, &v), MP_OK);
        assert_int_equal(v, i < CONTACTS_REQUESTS_MAX ? CONTACTS_VERDICT_REQUEST
                                                      : CONTACTS_VERDICT_DROP);
    }
    contacts_counts(f->book, &counts);
    assert_int_equal(counts.requests, CONTACTS_REQUESTS_MAX);
    assert_int_equal(counts.requests_refused, 5);
    /* The user's own adds still work. */
    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1, NULL, NULL), MP_OK);
    /* Accepting one makes room for a new request. */
    pk[0] = 0;
    pk[1] = 0;
    assert_int_equal(contacts_accept(f->book, pk, NULL), MP_OK);
    pk[0] = 0xfe;
    pk[1] = 0xfe;
    assert_int_equal(contacts_note_sender(f->book, pk, node, 1, &v), MP_OK);
    assert_int_equal(v, CONTACTS_VERDICT_REQUEST);
}

/* An entry written before the pinned flag existed (11 fields) still reads,
 * unpinned; an unpinned entry is still written that way. */
static void test_codec_without_pinned(void **state)
{
    (void)state;
    struct contact c, back;
    uint8_t buf[CONTACT_WIRE_MAX];
    size_t len = 0;

    full_contact(&c);
    c.networks_pinned = false;
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(buf[0], 0x9b); /* fixarray of 11 */
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_OK);
    assert_false(back.networks_pinned);
    assert_int_equal(back.network_count, CONTACT_NETWORKS_MAX);
    c.networks_pinned = true;
    assert_int_equal(contact_wire_encode(&c, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(buf[0], 0x9c); /* fixarray of 12 */
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_OK);
    assert_true(back.networks_pinned);
    /* The 12th field must be a boolean. */
    buf[len - 1] = 0x01;
    assert_int_equal(contact_wire_decode(buf, len, &back), MP_ERR_MALFORMED);
}

static void test_note_network(void **state)
{
    struct fixture *f = *state;
    struct contact c;
    bool added = false;
    char name[16];

    /* Only accounts in the book learn networks. */
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "public", &added),
                     MP_ERR_NOT_FOUND);
    assert_false(added);
    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1000, NULL, NULL), MP_OK);
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "team", &added), MP_OK);
    assert_true(added);
    /* Again: no duplicate. */
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "team", &added), MP_OK);
    assert_false(added);
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "bad\nname", &added),
                     MP_ERR_INVAL);
    /* Up to the cap; the first ones seen stay. */
    for (int i = 0; i < CONTACT_NETWORKS_MAX + 2; i++) {
        snprintf(name, sizeof(name), "net%d", i);
        assert_int_equal(contacts_note_network(f->book, f->keys[0], name, &added), MP_OK);
        assert_int_equal(added, i < CONTACT_NETWORKS_MAX - 1);
    }
    reopen(f); /* it is stored */
    assert_int_equal(contacts_get(f->book, f->keys[0], &c), MP_OK);
    assert_int_equal(c.network_count, CONTACT_NETWORKS_MAX);
    assert_string_equal(c.networks[0], "team");
    assert_string_equal(c.networks[1], "net0");
    assert_string_equal(c.networks[CONTACT_NETWORKS_MAX - 1], "net2");
    assert_false(c.networks_pinned);

    /* Requests learn too; blocked entries do not. */
    assert_int_equal(contacts_block(f->book, f->keys[1], 1000, NULL), MP_OK);
    assert_int_equal(contacts_note_network(f->book, f->keys[1], "public", &added), MP_OK);
    assert_false(added);
    assert_int_equal(contacts_get(f->book, f->keys[1], &c), MP_OK);
    assert_int_equal(c.network_count, 0);
}

static void test_pin_networks(void **state)
{
    struct fixture *f = *state;
    struct contact c;
    bool added = true;
    const char *team[] = {"team"};
    const char *twice[] = {"team", "team"};

    assert_int_equal(contacts_pin_networks(f->book, f->keys[0], team, 1, &c), MP_ERR_NOT_FOUND);
    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1000, NULL, NULL), MP_OK);
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "public", NULL), MP_OK);
    assert_int_equal(contacts_pin_networks(f->book, f->keys[0], twice, 2, &c), MP_ERR_INVAL);
    assert_int_equal(contacts_pin_networks(f->book, f->keys[0], team, 1, &c), MP_OK);
    assert_true(c.networks_pinned);
    assert_int_equal(c.network_count, 1);
    assert_string_equal(c.networks[0], "team");
    /* Pinned: nothing is learnt. */
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "public", &added), MP_OK);
    assert_false(added);
    reopen(f);
    assert_int_equal(contacts_get(f->book, f->keys[0], &c), MP_OK);
    assert_true(c.networks_pinned);
    assert_int_equal(c.network_count, 1);
    /* Unpinned: cleared, and learnt again. */
    assert_int_equal(contacts_pin_networks(f->book, f->keys[0], NULL, 0, &c), MP_OK);
    assert_false(c.networks_pinned);
    assert_int_equal(c.network_count, 0);
    assert_int_equal(contacts_note_network(f->book, f->keys[0], "public", &added), MP_OK);
    assert_true(added);
}

static void test_damaged_entry_skipped(void **state)
{
    struct fixture *f = *state;
    struct contact c, *list = NULL;
    size_t n = 0;

    assert_int_equal(contacts_add(f->book, f->keys[0], "bob", 1, NULL, NULL), MP_OK);
    assert_int_equal(
        store_put(f->store, STORE_CF_CONTACTS, f->keys[1], CONTACT_KEY_BYTES, "\x91\x07", 2, true),
        MP_OK);
    reopen(f);
    /* Not listed, not counted, never overwritten by a message; an error when named. */
    assert_int_equal(contacts_get(f->book, f->keys[1], &c), MP_ERR_STORE);
    assert_int_equal(contacts_list(f->book, 0, &list, &n), MP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "bob");
    free(list);
    struct contacts_counts counts;
    contacts_counts(f->book, &counts);
    assert_int_equal(counts.contacts, 1);
    uint8_t node[CONTACT_KEY_BYTES] = {0};
    enum contacts_verdict v;
    assert_int_equal(contacts_note_sender(f->book, f->keys[1], node, 5, &v), MP_ERR_STORE);
    assert_int_equal(contacts_get(f->book, f->keys[1], &c), MP_ERR_STORE);
    /* The user can remove it, or replace it by adding. */
    assert_int_equal(contacts_remove(f->book, f->keys[1]), MP_OK);
    assert_int_equal(contacts_get(f->book, f->keys[1], &c), MP_ERR_NOT_FOUND);
    assert_int_equal(
        store_put(f->store, STORE_CF_CONTACTS, f->keys[1], CONTACT_KEY_BYTES, "\x91\x07", 2, true),
        MP_OK);
    assert_int_equal(contacts_add(f->book, f->keys[1], "carol", 9, NULL, NULL), MP_OK);
    assert_int_equal(contacts_get(f->book, f->keys[1], &c), MP_OK);
    assert_string_equal(c.name, "carol");
    contacts_counts(f->book, &counts);
    assert_int_equal(counts.contacts, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_codec_round_trip),
        cmocka_unit_test(test_codec_refuses),
        cmocka_unit_test_setup_teardown(test_add_rename_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ambiguous_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_block_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tofu_key_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_entry_skipped, setup, teardown),
        cmocka_unit_test(test_codec_without_pinned),
        cmocka_unit_test_setup_teardown(test_note_network, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_networks, setup, teardown),
    };
    log_set_level(LOG_LEVEL_ERROR);
    if (secure_init() != MP_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
