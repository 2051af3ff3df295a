/*
 * contacts: the account's contacts book over the store's contacts family.
 *
 * Who the user knows (contacts), who wrote unasked (requests) and who is
 * blocked, with a name per entry (unique, optional), the trusted node key of
 * each (trust on first use) and the verified mark. The user's operations
 * (add, accept, block, ...), the delivery engine's question
 * (contacts_note_sender: what to do with a message from this sender) and
 * what it learns (contacts_note_network: which networks reach an account)
 * live here; control methods are in contacts_api.c. Not thread-safe: one
 * book per store, used from the daemon's loop.
 *
 * Bounds: at most CONTACTS_MAX entries in all, of which at most
 * CONTACTS_REQUESTS_MAX requests. When full, the user's adds fail with
 * MP_ERR_TOO_BIG and unknown senders are dropped (not stored), counted.
 *
 * Every change the user makes is a synced write. Time (now_ms, Unix ms) is
 * passed in by the caller.
 */
#ifndef MP_NODE_CONTACTS_H
#define MP_NODE_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "node/contact.h"
#include "node/store.h"

#define CONTACTS_MAX          2000
#define CONTACTS_REQUESTS_MAX 200
/* Fewest characters of an address (with "mp1") that select a contact. */
#define CONTACTS_PREFIX_MIN 8

struct contacts;

/* Open the book of the account self_pk (copied; adding oneself is refused)
 * over store (borrowed for the book's life). Counts the entries once.
 * An entry that does not decode (damaged, or another version) is logged,
 * left out of lists and counts, and MP_ERR_STORE for every call that names
 * it, except contacts_add and contacts_block (which replace it) and
 * contacts_remove (which deletes it).
 * MP_ERR_NOMEM, or the store's error. */
enum mp_err contacts_open(struct store *store, const uint8_t self_pk[CONTACT_KEY_BYTES],
                          struct contacts **book_out);

/* Accepts NULL. */
void contacts_free(struct contacts *book);

/* The account key the book belongs to (32 bytes, the book's). */
const uint8_t *contacts_self(const struct contacts *book);

/* What contacts_add did. */
enum contacts_action {
    CONTACTS_ACTION_ADDED,     /* new entry */
    CONTACTS_ACTION_ACCEPTED,  /* was a request */
    CONTACTS_ACTION_UNBLOCKED, /* was blocked */
    CONTACTS_ACTION_RENAMED,   /* was a contact, got a new name */
    CONTACTS_ACTION_UNCHANGED, /* was a contact with that name (or no name given) */
};

const char *contacts_action_name(enum contacts_action action);

/* Make pk a contact. name (may be NULL: keep the current one, or none) must
 * pass contact_name_check and be unused by every other entry (compared
 * ignoring ASCII case). Adding a request accepts it, adding a blocked entry
 * unblocks it, adding a contact with another name renames it. The entry is
 * copied to *c_out (may be NULL). Errors: MP_ERR_INVAL (bad name, or pk is
 * this account), MP_ERR_EXISTS (name taken), MP_ERR_TOO_BIG (book full),
 * store errors. */
enum mp_err contacts_add(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                         const char *name, uint64_t now_ms, enum contacts_action *action_out,
                         struct contact *c_out);

/* The entry of pk. MP_ERR_NOT_FOUND if none, MP_ERR_STORE if damaged. */
enum mp_err contacts_get(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                         struct contact *c_out);

/* The entry the user means by query: a full address (its errors, e.g.
 * MP_ERR_ADDR_CHECKSUM, are returned as they are), a name (ASCII case
 * ignored), or the start of an address of at least CONTACTS_PREFIX_MIN
 * characters. MP_ERR_NOT_FOUND when nothing matches (for a long query that
 * starts with "mp1", the address error instead), MP_ERR_CONTACT_AMBIGUOUS
 * when a prefix matches several. */
enum mp_err contacts_find(struct contacts *book, const char *query, struct contact *c_out);

/* Every entry in state (0 for all states), sorted by name (ASCII case
 * ignored), the unnamed ones last (by key). *list_out is malloc'd (free()
 * it; NULL when the count is 0). */
enum mp_err contacts_list(struct contacts *book, enum contact_state state,
                          struct contact **list_out, size_t *count_out);

/* Delete pk's entry. MP_ERR_NOT_FOUND if none. A removed sender who writes
 * again becomes a request. */
enum mp_err contacts_remove(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES]);

/* Set pk blocked, creating the entry if unknown (MP_ERR_TOO_BIG when full;
 * MP_ERR_INVAL for this account). */
enum mp_err contacts_block(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                           uint64_t now_ms, struct contact *c_out);

/* A request (or a blocked entry) becomes a contact; a contact stays one.
 * MP_ERR_NOT_FOUND if pk is unknown. */
enum mp_err contacts_accept(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                            struct contact *c_out);

/* Mark pk verified: the user compared safety numbers (crypto/safety.h).
 * MP_ERR_NOT_FOUND if unknown. */
enum mp_err contacts_verify(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                            struct contact *c_out);

/* Accept pk's pending node key: it replaces the trusted one. *changed_out is
 * false (and nothing changes) when no key is pending. MP_ERR_NOT_FOUND if
 * unknown. */
enum mp_err contacts_trust(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                           bool *changed_out, struct contact *c_out);

/* Account pk (a contact or a request; blocked and unknown accounts are left
 * alone) was seen on network name: its presence was found there or its
 * message came over that network's links. name joins the entry's networks
 * unless it is there already, the list is full (CONTACT_NETWORKS_MAX: the
 * first ones seen stay) or the user pinned the entry. Unsynced: a hint that
 * a crash may lose. *added_out (may be NULL) says whether it was added.
 * MP_ERR_INVAL for a bad name, MP_ERR_NOT_FOUND for an unknown account,
 * MP_ERR_STORE for a damaged entry, store errors. */
enum mp_err contacts_note_network(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                                  const char *name, bool *added_out);

/* Pin pk (which must be in the book) to networks names[0..count): only they
 * may carry its lookups and messages, and none is learnt any more. count 0
 * unpins it (its networks are cleared and learnt again). Synced.
 * MP_ERR_INVAL for a bad or repeated name or count over
 * CONTACT_NETWORKS_MAX, MP_ERR_NOT_FOUND if unknown. */
enum mp_err contacts_pin_networks(struct contacts *book, const uint8_t pk[CONTACT_KEY_BYTES],
                                  const char *const *names, size_t count, struct contact *c_out);

/* The delivery engine's verdict on a message. */
enum contacts_verdict {
    CONTACTS_VERDICT_DELIVER,     /* a contact: to the inbox */
    CONTACTS_VERDICT_REQUEST,     /* not a contact: to the requests list */
    CONTACTS_VERDICT_DROP,        /* blocked, or unknown while the requests are full */
    CONTACTS_VERDICT_KEY_CHANGED, /* sent from another node key than the trusted one: refuse */
};

const char *contacts_verdict_name(enum contacts_verdict verdict);

/* A message from account_pk arrived from node node_pk at now_ms (node_pk
 * NULL: through a mailbox, so no node key is learnt or checked). An unknown
 * sender is stored as a request trusting node_pk (synced); a contact or
 * request without a node key trusts node_pk now; one whose trusted key
 * differs gets node_pk recorded as pending (synced; see
 * contacts_key_message) and KEY_CHANGED. Counters and last_seen are updated
 * (unsynced: the message's own synced write makes them durable).
 * Errors are the store's, or MP_ERR_STORE when the sender's entry is
 * damaged (then *verdict_out is unset; the entry is left alone). */
enum mp_err contacts_note_sender(struct contacts *book, const uint8_t account_pk[CONTACT_KEY_BYTES],
                                 const uint8_t node_pk[CONTACT_KEY_BYTES], uint64_t now_ms,
                                 enum contacts_verdict *verdict_out);

/* For an entry with a pending node key: one sentence for the user saying
 * what changed and what to do, into out (cap bytes; truncated to fit).
 * Empty when no key is pending. */
void contacts_key_message(const struct contact *c, char *out, size_t cap);

/* Entries by state, and unknown senders dropped because the requests list
 * was full, since open. */
struct contacts_counts {
    size_t contacts;
    size_t requests;
    size_t blocked;
    uint64_t requests_refused;
};
void contacts_counts(const struct contacts *book, struct contacts_counts *counts_out);

#endif
