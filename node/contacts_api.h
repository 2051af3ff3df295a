/*
 * contacts_api: the control methods of the contacts book (contacts.add,
 * .list, .show, .remove, .block, .accept, .verify, .trust), a thin layer of
 * JSON over node/contacts.h. Methods and errors: docs/PROTOCOL.md, "Control
 * API".
 */
#ifndef MP_NODE_CONTACTS_API_H
#define MP_NODE_CONTACTS_API_H

#include <jansson.h>
#include <stddef.h>

#include "node/contact.h"
#include "node/control.h"

/* The methods, to pass to control_add_methods with the book
 * (struct contacts *) as ctx. */
const struct control_method *contacts_api_methods(size_t *count_out);

/* A contact as the API shows it (a new reference): address, name (null if
 * none), state, verified, added_at, last_seen (ms or null), key_changed;
 * with full also first_seen, node_key, pending_node_key, pending_since,
 * networks, counters and, when a key is pending, warning (the sentence of
 * contacts_key_message). */
json_t *contacts_api_json(const struct contact *c, bool full);

#endif
