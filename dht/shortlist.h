/*
 * shortlist: the candidate list of one iterative Kademlia lookup.
 *
 * It keeps the SHORTLIST_MAX nodes nearest the target heard of so far,
 * nearest first, each with its state (not asked, asked, answered, failed),
 * and decides what to ask next and when the lookup is over: when the k
 * nearest nodes that have not failed have all answered, or no node is left
 * to ask. It sends nothing and knows no time: dht.c does both.
 */
#ifndef MP_DHT_SHORTLIST_H
#define MP_DHT_SHORTLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"

#define SHORTLIST_MAX 24
#define SHORTLIST_ID_BYTES 32
#define SHORTLIST_PK_BYTES 32
#define SHORTLIST_TOKEN_BYTES 16

enum shortlist_state {
    SHORTLIST_NEW,
    SHORTLIST_ASKED,
    SHORTLIST_ANSWERED,
    SHORTLIST_FAILED,
};

struct shortlist_entry {
    uint8_t id[SHORTLIST_ID_BYTES];
    uint8_t pk[SHORTLIST_PK_BYTES];
    struct addr addr;
    uint8_t state; /* enum shortlist_state */
    uint8_t depth; /* 1 for nodes from our own table, +1 per hop */
    uint8_t tries; /* requests sent to it */
    bool has_token;
    uint8_t token[SHORTLIST_TOKEN_BYTES]; /* write token from its GET answer */
};

struct shortlist {
    uint8_t target[SHORTLIST_ID_BYTES];
    unsigned n;
    struct shortlist_entry e[SHORTLIST_MAX];
};

void shortlist_init(struct shortlist *sl, const uint8_t target[SHORTLIST_ID_BYTES]);

/* Add a node heard of at depth (a node already listed keeps the smaller
 * depth). When the list is full, a node nearer than the farthest replaces it
 * (an answer from the dropped node is then ignored); a farther one is not
 * added. */
void shortlist_add(struct shortlist *sl, const uint8_t id[SHORTLIST_ID_BYTES],
                   const uint8_t pk[SHORTLIST_PK_BYTES], const struct addr *addr, unsigned depth);

/* The entry for id, or NULL. Valid until the next shortlist_add. */
struct shortlist_entry *shortlist_find(struct shortlist *sl, const uint8_t id[SHORTLIST_ID_BYTES]);

/* Look at the k nearest entries that have not failed. Store up to max_ask of
 * them that were never asked (or are due a retry: state NEW) in ask, nearest
 * first, and their count in n_ask. Returns true when the lookup is over:
 * none of those k is waiting for an answer or still to be asked. */
bool shortlist_scan(struct shortlist *sl, unsigned k, struct shortlist_entry **ask,
                    unsigned max_ask, unsigned *n_ask);

/* The position of e in the list (0 = nearest). */
unsigned shortlist_rank(const struct shortlist *sl, const struct shortlist_entry *e);

#endif
