/*
 * contact: one entry of the contacts book as a plain value, its rules
 * (names, states) and its stored form (contact_wire.c, msgpack).
 *
 * A contact is keyed by its account public key (the key inside its address).
 * This module has no store and no logic over several contacts: the book
 * (node/contacts.h) does that. Format: docs/PROTOCOL.md, "Contacts (store)".
 */
#ifndef MP_NODE_CONTACT_H
#define MP_NODE_CONTACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CONTACT_KEY_BYTES 32
/* A name is 1..CONTACT_NAME_MAX bytes of printable UTF-8 (contact_name_check). */
#define CONTACT_NAME_MAX 64
/* Networks a contact is known on (its presence was found there, or its
 * messages came over that network's links), or the ones the user pinned it
 * to; each a printable ASCII name of 1..CONTACT_NETWORK_MAX bytes. */
#define CONTACT_NETWORKS_MAX 4
#define CONTACT_NETWORK_MAX  32
/* Version of the stored value; decoders refuse any other. */
#define CONTACT_WIRE_VERSION 1
/* Largest encoded value: array header, version, name, state, added_at,
 * verified, first_seen, last_seen, node key, [pending key, since],
 * networks, [accepted, dropped, refused], [pinned]. */
#define CONTACT_WIRE_MAX                                                                           \
    (1 + 1 + (2 + CONTACT_NAME_MAX) + 1 + 9 + 1 + 9 + 9 + (2 + CONTACT_KEY_BYTES) +                \
     (1 + (2 + CONTACT_KEY_BYTES) + 9) + (1 + CONTACT_NETWORKS_MAX * (2 + CONTACT_NETWORK_MAX)) +  \
     (1 + 3 * 9) + 1)

enum contact_state {
    CONTACT_STATE_CONTACT = 1, /* added by the user: messages go to the inbox */
    CONTACT_STATE_REQUEST = 2, /* wrote to us unasked: messages wait in requests */
    CONTACT_STATE_BLOCKED = 3, /* messages are dropped */
};

struct contact {
    uint8_t account_pk[CONTACT_KEY_BYTES]; /* the store key, not in the value */
    char name[CONTACT_NAME_MAX + 1];       /* "" = no name */
    enum contact_state state;
    uint64_t added_at_ms;   /* Unix ms when it entered the book */
    bool verified;          /* the user compared safety numbers */
    uint64_t first_seen_ms; /* first message from it, 0 = never */
    uint64_t last_seen_ms;
    /* Trust on first use: the node key of the first message (or none yet). */
    bool has_node_key;
    uint8_t node_key[CONTACT_KEY_BYTES];
    /* A different node key seen later, refused until `contacts trust`. */
    bool has_pending_key;
    uint8_t pending_key[CONTACT_KEY_BYTES];
    uint64_t pending_since_ms;
    uint8_t network_count;
    char networks[CONTACT_NETWORKS_MAX][CONTACT_NETWORK_MAX + 1];
    /* The user pinned it to networks: only those are used, none is learnt.
     * Unpinned, networks are learnt hints, tried first. */
    bool networks_pinned;
    /* Messages seen from it: let through (inbox or requests), dropped while
     * blocked, refused for a changed node key. */
    uint64_t accepted;
    uint64_t dropped;
    uint64_t refused;
};

/* Whether name (len bytes, no NUL needed) is a valid contact name: 1 to
 * CONTACT_NAME_MAX bytes of well-formed UTF-8 (no overlong forms, no
 * surrogates), without control characters (C0, DEL, C1), line or paragraph
 * separators or bidirectional controls, not starting or ending with a
 * space, and not starting with "mp1" in any case (that reads as an address). */
bool contact_name_check(const char *name, size_t len);

/* Whether a network name is 1..CONTACT_NETWORK_MAX printable ASCII bytes. */
bool contact_network_check(const char *name, size_t len);

/* "contact", "request", "blocked"; "?" for anything else. */
const char *contact_state_name(enum contact_state state);

/* The inverse; false for an unknown name. */
bool contact_state_parse(const char *name, enum contact_state *state_out);

/* The stored value of c (all but account_pk) into out (cap bytes;
 * CONTACT_WIRE_MAX always suffices). MP_ERR_INVAL when a field breaks its
 * rule (bad name, state, network), MP_ERR_TOO_BIG when cap is too small. */
enum mp_err contact_wire_encode(const struct contact *c, uint8_t *out, size_t cap, size_t *len_out);

/* Decode exactly len bytes into *c_out (account_pk is left zero: it is the
 * key). MP_ERR_TOO_BIG past CONTACT_WIRE_MAX, MP_ERR_STORE_VERSION for
 * another version, MP_ERR_MALFORMED for any other wrong type, count, length
 * or value (names and networks are checked as on encode). *c_out is zeroed on
 * failure. */
enum mp_err contact_wire_decode(const uint8_t *data, size_t len, struct contact *c_out);

#endif
