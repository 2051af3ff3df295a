/*
 * contacts_api: control methods over the contacts book (see contacts_api.h).
 */
#include "node/contacts_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/address.h"
#include "crypto/safety.h"
#include "crypto/secure.h"
#include "node/contacts.h"
#include "node/sysenv.h"

/* Longest contact argument echoed back in an error message. */
#define SHOWN_MAX   64
#define WARNING_MAX 512

static json_t *ms_or_null(uint64_t ms)
{
    return ms != 0 ? json_integer((json_int_t)ms) : json_null();
}

static json_t *key_or_null(bool has, const uint8_t key[CONTACT_KEY_BYTES])
{
    char hex[2 * CONTACT_KEY_BYTES + 1];
    return has ? json_string(secure_hex(hex, sizeof(hex), key, CONTACT_KEY_BYTES)) : json_null();
}

json_t *contacts_api_json(const struct contact *c, bool full)
{
    char addr[ADDRESS_TEXT_SIZE];

    address_encode(c->account_pk, addr);
    json_t *o = json_pack("{s:s, s:o, s:s, s:b, s:I, s:o, s:b}", "address", addr, "name",
                          c->name[0] != '\0' ? json_string(c->name) : json_null(), "state",
                          contact_state_name(c->state), "verified", c->verified, "added_at",
                          (json_int_t)c->added_at_ms, "last_seen", ms_or_null(c->last_seen_ms),
                          "key_changed", c->has_pending_key);
    if (o == NULL || !full)
        return o;
    json_t *networks = json_array();
    for (size_t i = 0; i < c->network_count; i++)
        json_array_append_new(networks, json_string(c->networks[i]));
    json_object_set_new(o, "first_seen", ms_or_null(c->first_seen_ms));
    json_object_set_new(o, "node_key", key_or_null(c->has_node_key, c->node_key));
    json_object_set_new(o, "pending_node_key", key_or_null(c->has_pending_key, c->pending_key));
    json_object_set_new(o, "pending_since",
                        ms_or_null(c->has_pending_key ? c->pending_since_ms : 0));
    json_object_set_new(o, "networks", networks);
    json_object_set_new(o, "networks_pinned", json_boolean(c->networks_pinned));
    json_object_set_new(o, "counters",
                        json_pack("{s:I, s:I, s:I}", "accepted", (json_int_t)c->accepted, "dropped",
                                  (json_int_t)c->dropped, "refused", (json_int_t)c->refused));
    if (c->has_pending_key) {
        char warning[WARNING_MAX];
        contacts_key_message(c, warning, sizeof(warning));
        json_object_set_new(o, "warning", json_string(warning));
    }
    return o;
}

/* ---- errors ---- */

static bool fail(struct rpc_error *err_out, json_t **data_out, enum rpc_code code, enum mp_err err,
                 const char *message)
{
    rpc_error_set(err_out, NULL, code, "%s", message);
    *data_out = rpc_err_data(err);
    return false;
}

static bool fail_address(struct rpc_error *err_out, json_t **data_out, enum mp_err err)
{
    char message[160];
    snprintf(message, sizeof(message), "invalid address: %s", mp_strerror(err));
    return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, err, message);
}

static bool is_address_error(enum mp_err err)
{
    return err == MP_ERR_ADDR_PREFIX || err == MP_ERR_ADDR_LENGTH || err == MP_ERR_ADDR_ALPHABET ||
           err == MP_ERR_ADDR_CASE || err == MP_ERR_ADDR_CHECKSUM || err == MP_ERR_MALFORMED ||
           err == MP_ERR_ADDR_VERSION || err == MP_ERR_ADDR_KEY;
}

/* Any failure of the book other than the caller's own mistakes. */
static bool fail_book(struct rpc_error *err_out, json_t **data_out, enum mp_err err)
{
    char message[160];
    if (err == MP_ERR_TOO_BIG)
        snprintf(message, sizeof(message),
                 "the contacts book is full (%d entries): remove some first", CONTACTS_MAX);
    else
        snprintf(message, sizeof(message), "contacts: %s", mp_strerror(err));
    return fail(err_out, data_out, RPC_CODE_FAILED, err, message);
}

/* The string param name, or a -32602 error. */
static const char *string_param(json_t *params, const char *name, struct rpc_error *err_out)
{
    const char *s = json_string_value(json_object_get(params, name));
    if (s == NULL || s[0] == '\0')
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "\"%s\" must be a non-empty string",
                      name);
    return s;
}

/* Resolve params.contact into *c, or fail the call. */
static bool find(struct contacts *book, json_t *params, struct contact *c,
                 struct rpc_error *err_out, json_t **data_out)
{
    char message[160];
    const char *query = string_param(params, "contact", err_out);
    if (query == NULL)
        return false;
    enum mp_err err = contacts_find(book, query, c);
    if (err == MP_OK)
        return true;
    if (is_address_error(err))
        return fail_address(err_out, data_out, err);
    if (err == MP_ERR_NOT_FOUND) {
        snprintf(message, sizeof(message), "no contact \"%.*s\"", SHOWN_MAX, query);
        return fail(err_out, data_out, RPC_CODE_FAILED, err, message);
    }
    if (err == MP_ERR_CONTACT_AMBIGUOUS) {
        snprintf(message, sizeof(message), "\"%.*s\": %s", SHOWN_MAX, query, mp_strerror(err));
        return fail(err_out, data_out, RPC_CODE_FAILED, err, message);
    }
    return fail_book(err_out, data_out, err);
}

/* ---- methods ---- */

static bool method_add(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                       struct rpc_error *err_out, json_t **data_out)
{
    struct contacts *book = ctx;
    uint8_t pk[CONTACT_KEY_BYTES];
    enum contacts_action action;
    struct contact c;
    char message[160];
    (void)call;

    const char *address = string_param(params, "address", err_out);
    if (address == NULL)
        return false;
    enum mp_err err = address_decode(address, pk);
    if (err != MP_OK)
        return fail_address(err_out, data_out, err);
    json_t *name_j = json_object_get(params, "name");
    const char *name = NULL;
    if (name_j != NULL && !json_is_null(name_j)) {
        name = json_string_value(name_j);
        if (name == NULL || !contact_name_check(name, strlen(name)))
            return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL,
                        "\"name\" must be 1 to 64 bytes of printable text (no control "
                        "characters, no leading or trailing space, not starting with mp1)");
    }
    /* networks: pin the contact to these (an empty array unpins it). */
    json_t *nets_j = json_object_get(params, "networks");
    const char *nets[CONTACT_NETWORKS_MAX];
    size_t net_count = 0;
    if (nets_j != NULL && !json_is_null(nets_j)) {
        bool ok = json_is_array(nets_j) && json_array_size(nets_j) <= CONTACT_NETWORKS_MAX;
        for (size_t i = 0; ok && i < json_array_size(nets_j); i++) {
            nets[i] = json_string_value(json_array_get(nets_j, i));
            ok = nets[i] != NULL && contact_network_check(nets[i], strlen(nets[i]));
            for (size_t k = 0; ok && k < i; k++)
                ok = strcmp(nets[k], nets[i]) != 0;
            net_count = i + 1;
        }
        if (!ok) {
            snprintf(message, sizeof(message),
                     "\"networks\" must be at most %d different network names (1 to %d "
                     "printable ASCII characters each)",
                     CONTACT_NETWORKS_MAX, CONTACT_NETWORK_MAX);
            return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL, message);
        }
    }
    err = contacts_add(book, pk, name, sysenv_unix_ms(), &action, &c);
    if (err == MP_ERR_INVAL)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, err,
                    "that is this node's own address");
    if (err == MP_ERR_EXISTS) {
        snprintf(message, sizeof(message), "the name \"%s\" is already used by another contact",
                 name);
        return fail(err_out, data_out, RPC_CODE_FAILED, err, message);
    }
    if (err == MP_OK && nets_j != NULL && !json_is_null(nets_j))
        err = contacts_pin_networks(book, pk, nets, net_count, &c);
    if (err != MP_OK)
        return fail_book(err_out, data_out, err);
    *result_out = json_pack("{s:s, s:o}", "action", contacts_action_name(action), "contact",
                            contacts_api_json(&c, true));
    return true;
}

static bool method_list(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                        struct rpc_error *err_out, json_t **data_out)
{
    struct contacts *book = ctx;
    enum contact_state state = 0;
    struct contact *list = NULL;
    size_t n = 0;
    struct contacts_counts counts;
    (void)call;

    json_t *state_j = json_object_get(params, "state");
    if (state_j != NULL && !json_is_null(state_j) &&
        !contact_state_parse(json_string_value(state_j), &state)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"state\" must be \"contact\", \"request\" or \"blocked\"");
        return false;
    }
    enum mp_err err = contacts_list(book, state, &list, &n);
    if (err != MP_OK)
        return fail_book(err_out, data_out, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, contacts_api_json(&list[i], false));
    free(list);
    contacts_counts(book, &counts);
    *result_out = json_pack("{s:o, s:{s:I, s:I, s:I, s:I}}", "contacts", arr, "counts", "contacts",
                            (json_int_t)counts.contacts, "requests", (json_int_t)counts.requests,
                            "blocked", (json_int_t)counts.blocked, "requests_refused",
                            (json_int_t)counts.requests_refused);
    return true;
}

static bool method_show(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                        struct rpc_error *err_out, json_t **data_out)
{
    struct contact c;
    (void)call;
    if (!find(ctx, params, &c, err_out, data_out))
        return false;
    *result_out = contacts_api_json(&c, true);
    return true;
}

static bool method_remove(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                          struct rpc_error *err_out, json_t **data_out)
{
    struct contact c;
    (void)call;
    if (!find(ctx, params, &c, err_out, data_out))
        return false;
    enum mp_err err = contacts_remove(ctx, c.account_pk);
    if (err != MP_OK)
        return fail_book(err_out, data_out, err);
    *result_out = json_pack("{s:o}", "removed", contacts_api_json(&c, false));
    return true;
}

static bool method_block(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                         struct rpc_error *err_out, json_t **data_out)
{
    struct contacts *book = ctx;
    uint8_t pk[CONTACT_KEY_BYTES];
    struct contact c;
    (void)call;

    /* A full address blocks even someone not in the book yet. */
    const char *query = string_param(params, "contact", err_out);
    if (query == NULL)
        return false;
    if (address_decode(query, pk) != MP_OK) {
        if (!find(book, params, &c, err_out, data_out))
            return false;
        memcpy(pk, c.account_pk, CONTACT_KEY_BYTES);
    }
    enum mp_err err = contacts_block(book, pk, sysenv_unix_ms(), &c);
    if (err == MP_ERR_INVAL)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, err,
                    "that is this node's own address");
    if (err != MP_OK)
        return fail_book(err_out, data_out, err);
    *result_out = json_pack("{s:o}", "contact", contacts_api_json(&c, true));
    return true;
}

static bool method_accept(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                          struct rpc_error *err_out, json_t **data_out)
{
    struct contact c;
    (void)call;
    if (!find(ctx, params, &c, err_out, data_out))
        return false;
    enum contact_state was = c.state;
    enum mp_err err = contacts_accept(ctx, c.account_pk, &c);
    if (err != MP_OK)
        return fail_book(err_out, data_out, err);
    *result_out = json_pack("{s:s, s:o}", "was", contact_state_name(was), "contact",
                            contacts_api_json(&c, true));
    return true;
}

static bool method_verify(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                          struct rpc_error *err_out, json_t **data_out)
{
    struct contacts *book = ctx;
    struct contact c;
    char digits[SAFETY_TEXT_SIZE];
    (void)call;

    json_t *confirm = json_object_get(params, "confirm");
    if (confirm != NULL && !json_is_boolean(confirm)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "\"confirm\" must be true or false");
        return false;
    }
    if (!find(book, params, &c, err_out, data_out))
        return false;
    if (json_is_true(confirm)) {
        enum mp_err err = contacts_verify(book, c.account_pk, &c);
        if (err != MP_OK)
            return fail_book(err_out, data_out, err);
    }
    safety_number(contacts_self(book), c.account_pk, digits);
    json_t *groups = json_array();
    for (int g = 0; g < SAFETY_GROUPS; g++)
        json_array_append_new(groups,
                              json_stringn(digits + g * SAFETY_GROUP_DIGITS, SAFETY_GROUP_DIGITS));
    *result_out = json_pack("{s:s, s:o, s:b, s:o}", "safety_number", digits, "groups", groups,
                            "verified", c.verified, "contact", contacts_api_json(&c, true));
    return true;
}

static bool method_trust(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                         struct rpc_error *err_out, json_t **data_out)
{
    struct contact c;
    bool changed = false;
    (void)call;
    if (!find(ctx, params, &c, err_out, data_out))
        return false;
    enum mp_err err = contacts_trust(ctx, c.account_pk, &changed, &c);
    if (err != MP_OK)
        return fail_book(err_out, data_out, err);
    *result_out =
        json_pack("{s:b, s:o}", "trusted", changed, "contact", contacts_api_json(&c, true));
    return true;
}

static const char *const add_params[] = {"address", "name", "networks", NULL};
static const char *const list_params[] = {"state", NULL};
static const char *const contact_params[] = {"contact", NULL};
static const char *const verify_params[] = {"contact", "confirm", NULL};

static const struct control_method methods[] = {
    {"contacts.add", add_params, method_add},
    {"contacts.list", list_params, method_list},
    {"contacts.show", contact_params, method_show},
    {"contacts.remove", contact_params, method_remove},
    {"contacts.block", contact_params, method_block},
    {"contacts.accept", contact_params, method_accept},
    {"contacts.verify", verify_params, method_verify},
    {"contacts.trust", contact_params, method_trust},
};

const struct control_method *contacts_api_methods(size_t *count_out)
{
    *count_out = sizeof(methods) / sizeof(methods[0]);
    return methods;
}
