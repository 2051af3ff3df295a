/*
 * Node tests for contacts: the real merpati binary and daemon in temp data
 * dirs, driven through the CLI as a user would (exit codes, messages,
 * --json), and through the control API where a program would. Messages from
 * other nodes (not delivered by anything yet) are simulated by calling the
 * book's delivery hook on the stopped node's store, as the delivery engine
 * will.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/secure.h"
#include "node/contacts.h"
#include "node/store.h"
#include "tests/node/node_util.h"

/* Run `merpati --data-dir D <args...>` and return the result. */
static struct run_result cli(struct node *n, const char *const *args)
{
    const char *full[16] = {"--data-dir", n->dir};
    size_t count = 2;
    for (; *args != NULL && count + 1 < 16; args++)
        full[count++] = *args;
    full[count] = NULL;
    return harness_run(NULL, full);
}

/* Expect exit status want; return stdout (caller frees). */
static char *cli_ok(struct node *n, int want, const char *const *args)
{
    struct run_result r = cli(n, args);
    if (r.status != want)
        fail_msg("exit %d, want %d; stdout:\n%s\nstderr:\n%s", r.status, want, r.out, r.err);
    char *out = r.out;
    r.out = NULL;
    harness_result_free(&r);
    return out;
}

static json_t *list_json(struct node *n, const char *flag)
{
    char *out = cli_ok(n, 0,
                       flag != NULL ? ARGS("contacts", "list", flag, "--json")
                                    : ARGS("contacts", "list", "--json"));
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(j);
    return j;
}

static size_t list_count(struct node *n, const char *flag)
{
    json_t *j = list_json(n, flag);
    size_t count = json_array_size(json_object_get(j, "contacts"));
    json_decref(j);
    return count;
}

/* The address with one character changed: a typo. */
static void typo(const char *address, char *out, size_t cap)
{
    snprintf(out, cap, "%s", address);
    out[30] = out[30] == 'q' ? 'p' : 'q';
}

/* The 60 digits that `contacts verify` prints, spaces and newlines dropped. */
static void digits_of(const char *out, char *digits, size_t cap)
{
    size_t n = 0;
    const char *p = strchr(out, '\n'); /* skip "safety number with X:" */
    assert_non_null(p);
    for (; *p != '\0' && n + 1 < cap; p++) {
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
        else if (*p != ' ' && *p != '\n')
            break;
    }
    digits[n] = '\0';
}

static void test_add_list_show_remove(void **state)
{
    (void)state;
    struct node a, b, c;
    char bad[128];
    node_init(&a);
    node_init(&b);
    node_init(&c);
    node_start(&a, NULL);

    /* Nobody yet. */
    char *out = cli_ok(&a, 0, ARGS("contacts", "list"));
    assert_contains(out, "no contacts yet");
    free(out);

    out = cli_ok(&a, 0, ARGS("contacts", "add", b.address, "--name", "bob"));
    assert_contains(out, "added bob (");
    assert_contains(out, b.address);
    free(out);

    /* One typo: refused with the address error and a hint, nothing stored. */
    typo(c.address, bad, sizeof(bad));
    struct run_result r = cli(&a, ARGS("contacts", "add", bad, "--name", "carol"));
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "merpati: error: invalid address: address checksum does not match");
    assert_contains(r.err, "hint: ");
    harness_result_free(&r);
    assert_int_equal(list_count(&a, NULL), 1);
    assert_int_equal(list_count(&a, "--blocked"), 0);
    /* Cut short: a length error, also 65. */
    snprintf(bad, sizeof(bad), "%.61s", c.address);
    r = cli(&a, ARGS("contacts", "add", bad));
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "wrong length");
    harness_result_free(&r);
    /* Over the API: -32602 with the address error in data.code's name. */
    char params[256];
    typo(c.address, bad, sizeof(bad));
    snprintf(params, sizeof(params), "{\"address\":\"%s\"}", bad);
    json_t *reply = node_call(&a, "contacts.add", params);
    json_t *error = json_object_get(reply, "error");
    assert_int_equal(json_integer_value(json_object_get(error, "code")), -32602);
    assert_string_equal(json_string_value(json_object_get(json_object_get(error, "data"), "name")),
                        "ADDR_CHECKSUM");
    json_decref(reply);

    /* A name is unique, ignoring case. */
    r = cli(&a, ARGS("contacts", "add", c.address, "--name", "BOB"));
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "the name \"BOB\" is already used");
    harness_result_free(&r);
    r = cli(&a, ARGS("contacts", "add", c.address, "--name", "bad\tname"));
    assert_int_equal(r.status, 65);
    harness_result_free(&r);
    out = cli_ok(&a, 0, ARGS("contacts", "add", c.address, "--name", "Carol"));
    free(out);
    /* Adding again with a new name renames. */
    out = cli_ok(&a, 0, ARGS("contacts", "add", b.address, "--name", "Robert"));
    assert_contains(out, "renamed ");
    assert_contains(out, " to Robert");
    free(out);

    /* The table: a header and both, sorted by name. */
    out = cli_ok(&a, 0, ARGS("contacts", "list"));
    assert_contains(out, "NAME");
    assert_contains(out, "ADDRESS");
    char *carol = strstr(out, "Carol");
    char *robert = strstr(out, "Robert");
    assert_non_null(carol);
    assert_non_null(robert);
    assert_true(carol < robert);
    free(out);

    /* show by name (any case), by address, by a prefix; --json. */
    out = cli_ok(&a, 0, ARGS("contacts", "show", "robert"));
    assert_contains(out, "name        Robert");
    assert_contains(out, b.address);
    assert_contains(out, "verified    no");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "show", c.address, "--json"));
    json_t *j = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "Carol");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "contact");
    json_decref(j);
    free(out);
    /* A prefix long enough to be unique between these two addresses. */
    size_t common = 0;
    while (b.address[common] == c.address[common])
        common++;
    snprintf(bad, sizeof(bad), "%.*s", (int)(common + 1 > 12 ? common + 1 : 12), c.address);
    out = cli_ok(&a, 0, ARGS("contacts", "show", bad));
    assert_contains(out, "Carol");
    free(out);

    /* Unknown: 67. Usage mistakes: 64. */
    r = cli(&a, ARGS("contacts", "show", "dave"));
    assert_int_equal(r.status, 67);
    assert_contains(r.err, "no contact \"dave\"");
    harness_result_free(&r);
    r = cli(&a, ARGS("contacts", "show", a.address));
    assert_int_equal(r.status, 67);
    harness_result_free(&r);
    r = cli(&a, ARGS("contacts", "frob"));
    assert_int_equal(r.status, 64);
    harness_result_free(&r);
    r = cli(&a, ARGS("contacts", "add"));
    assert_int_equal(r.status, 64);
    harness_result_free(&r);
    r = cli(&a, ARGS("contacts", "show", "carol", "--confirm"));
    assert_int_equal(r.status, 64);
    harness_result_free(&r);
    /* Oneself is not a contact. */
    r = cli(&a, ARGS("contacts", "add", a.address));
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "own address");
    harness_result_free(&r);

    /* remove, then it is unknown. */
    out = cli_ok(&a, 0, ARGS("contacts", "remove", "carol"));
    assert_contains(out, "removed Carol");
    free(out);
    r = cli(&a, ARGS("contacts", "remove", "carol"));
    assert_int_equal(r.status, 67);
    harness_result_free(&r);
    assert_int_equal(list_count(&a, NULL), 1);

    node_stop(&a);
    node_cleanup(&a);
    node_cleanup(&b);
    node_cleanup(&c);
}

static void test_block_accept_and_restart(void **state)
{
    (void)state;
    struct node a, b, c;
    node_init(&a);
    node_init(&b);
    node_init(&c);
    node_start(&a, NULL);

    char *out = cli_ok(&a, 0, ARGS("contacts", "add", b.address, "--name", "bob"));
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "block", "bob"));
    assert_contains(out, "blocked bob");
    free(out);
    /* Anyone can be blocked by address, contact or not. */
    out = cli_ok(&a, 0, ARGS("contacts", "block", c.address));
    free(out);
    assert_int_equal(list_count(&a, NULL), 0);
    assert_int_equal(list_count(&a, "--blocked"), 2);

    /* Survives a restart. */
    node_stop(&a);
    node_start(&a, NULL);
    out = cli_ok(&a, 0, ARGS("contacts", "list", "--blocked"));
    assert_contains(out, "bob");
    assert_contains(out, c.address);
    free(out);

    /* accept (or add) unblocks. */
    out = cli_ok(&a, 0, ARGS("contacts", "accept", "bob"));
    assert_contains(out, "accepted bob");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "add", c.address, "--name", "carol"));
    assert_contains(out, "unblocked carol");
    free(out);
    assert_int_equal(list_count(&a, "--blocked"), 0);
    assert_int_equal(list_count(&a, NULL), 2);

    node_stop(&a);
    node_start(&a, NULL);
    json_t *j = list_json(&a, NULL);
    json_t *list = json_object_get(j, "contacts");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")), "bob");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "name")),
                        "carol");
    json_decref(j);

    node_stop(&a);
    node_cleanup(&a);
    node_cleanup(&b);
    node_cleanup(&c);
}

static void test_verify_both_sides(void **state)
{
    (void)state;
    struct node a, b;
    char da[64], db[64];
    node_init(&a);
    node_init(&b);
    node_start(&a, NULL);
    node_start(&b, NULL);

    char *out = cli_ok(&a, 0, ARGS("contacts", "add", b.address, "--name", "bob"));
    free(out);
    out = cli_ok(&b, 0, ARGS("contacts", "add", a.address, "--name", "alice"));
    free(out);

    out = cli_ok(&a, 0, ARGS("contacts", "verify", "bob"));
    assert_contains(out, "safety number with bob:");
    assert_contains(out, "--confirm");
    digits_of(out, da, sizeof(da));
    /* 3 lines of 4 groups of 5. */
    const char *first = strstr(out, "\n\n") + 2;
    assert_int_equal(strcspn(first, "\n"), 3 + 4 * (1 + 5));
    free(out);
    out = cli_ok(&b, 0, ARGS("contacts", "verify", a.address));
    digits_of(out, db, sizeof(db));
    free(out);
    assert_int_equal(strlen(da), 60);
    assert_string_equal(da, db);

    out = cli_ok(&a, 0, ARGS("contacts", "verify", "bob", "--confirm"));
    assert_contains(out, "bob is now marked verified");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "show", "bob"));
    assert_contains(out, "verified    yes");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "verify", "bob", "--json"));
    json_t *j = json_loads(out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "safety_number")), da);
    assert_true(json_is_true(json_object_get(j, "verified")));
    json_decref(j);
    free(out);
    struct run_result r = cli(&a, ARGS("contacts", "verify", "nobody"));
    assert_int_equal(r.status, 67);
    harness_result_free(&r);

    node_stop(&a);
    node_stop(&b);
    node_cleanup(&a);
    node_cleanup(&b);
}

/* What the delivery engine will do when messages arrive: call the book's
 * hook. Done here on the stopped node's store. */
static void deliver(struct node *n, const char *from_address, uint8_t node_key_byte,
                    enum contacts_verdict want)
{
    uint8_t self[32], from[32], node_key[32];
    struct store *store = NULL;
    struct contacts *book = NULL;
    enum contacts_verdict v;
    pid_t holder = 0;

    assert_int_equal(address_decode(n->address, self), MP_OK);
    assert_int_equal(address_decode(from_address, from), MP_OK);
    memset(node_key, node_key_byte, sizeof(node_key));
    assert_int_equal(store_open(n->dir, &store, &holder), MP_OK);
    assert_int_equal(contacts_open(store, self, &book), MP_OK);
    assert_int_equal(contacts_note_sender(book, from, node_key, 1700000000000ull, &v), MP_OK);
    assert_int_equal(v, want);
    contacts_free(book);
    store_close(store);
}

static void test_requests_and_key_change(void **state)
{
    (void)state;
    struct node a, b, c;
    node_init(&a);
    node_init(&b);
    node_init(&c);

    /* bob is a contact; carol, a stranger, writes. */
    node_start(&a, NULL);
    char *out = cli_ok(&a, 0, ARGS("contacts", "add", b.address, "--name", "bob"));
    free(out);
    node_stop(&a);
    deliver(&a, b.address, 0xaa, CONTACTS_VERDICT_DELIVER);
    deliver(&a, c.address, 0xcc, CONTACTS_VERDICT_REQUEST);
    deliver(&a, b.address, 0xbb, CONTACTS_VERDICT_KEY_CHANGED);
    node_start(&a, NULL);

    /* carol is a request, not a contact. */
    out = cli_ok(&a, 0, ARGS("contacts", "list", "--requests"));
    assert_contains(out, c.address);
    assert_contains(out, "contacts accept");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "list"));
    assert_true(strstr(out, c.address) == NULL);
    /* bob's node key changed: flagged in the list, explained in show. */
    assert_contains(out, "node key changed!");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "show", "bob"));
    assert_contains(out, "warning: the node key of bob changed from aaaaaaaaaaaaaaaa... to "
                         "bbbbbbbbbbbbbbbb...");
    assert_contains(out, "merpati contacts trust bob");
    assert_contains(out, "1 refused");
    free(out);

    /* accept carol (by address); trust bob's new key. */
    out = cli_ok(&a, 0, ARGS("contacts", "accept", c.address));
    assert_contains(out, "accepted ");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "trust", "bob"));
    assert_contains(out, "now trusting the new node key of bob: bbbbbbbb");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "trust", "bob"));
    assert_contains(out, "nothing to trust");
    free(out);
    out = cli_ok(&a, 0, ARGS("contacts", "show", "bob"));
    assert_true(strstr(out, "warning") == NULL);
    free(out);
    assert_int_equal(list_count(&a, "--requests"), 0);
    assert_int_equal(list_count(&a, NULL), 2);
    node_stop(&a);

    /* The new key is trusted now, the old one is refused; carol delivers. */
    deliver(&a, b.address, 0xbb, CONTACTS_VERDICT_DELIVER);
    deliver(&a, b.address, 0xaa, CONTACTS_VERDICT_KEY_CHANGED);
    deliver(&a, c.address, 0xcc, CONTACTS_VERDICT_DELIVER);
    node_start(&a, NULL);
    out = cli_ok(&a, 0, ARGS("contacts", "block", "bob"));
    free(out);
    node_stop(&a);
    deliver(&a, b.address, 0xbb, CONTACTS_VERDICT_DROP);

    node_cleanup(&a);
    node_cleanup(&b);
    node_cleanup(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_add_list_show_remove, harness_kill_all),
        cmocka_unit_test_teardown(test_block_accept_and_restart, harness_kill_all),
        cmocka_unit_test_teardown(test_verify_both_sides, harness_kill_all),
        cmocka_unit_test_teardown(test_requests_and_key_change, harness_kill_all),
    };
    log_set_level(LOG_LEVEL_ERROR);
    if (secure_init() != MP_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
