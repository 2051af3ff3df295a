/*
 * Direct delivery with real nodes on loopback: messages both ways with
 * receipts, `listen` in order, a restart between messages, kill -9 in the
 * middle of 1,000 sends, the errors a user meets at `send`, nodes whose
 * stores older builds wrote (formats 1 and 2), a damaged state row, long
 * texts in full envelopes, and `send --wait` timing out while the node is
 * kept busy.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "node/msg.h"
#include "node/outbox.h"
#include "node/store.h"
#include "tests/node/node_util.h"
#include "tests/support/outbox_v3_wire.h"

/* Bounded waits for what must arrive; generous, since ASan and a loaded
 * machine slow a node down several times. */
#define WAIT_MS 60000

static struct node nodes[3];
static char config_path[96];
static char bootstrap[160];

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void start_all(int count)
{
    snprintf(config_path, sizeof(config_path), "/tmp/mp-msg-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    assert_non_null(f);
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\n", f);
    fclose(f);
    for (int i = 0; i < count; i++)
        node_init(&nodes[i]);
    node_start(&nodes[0], ARGS("--config", config_path));
    node_bootstrap_entry(&nodes[0], bootstrap, sizeof(bootstrap));
    for (int i = 1; i < count; i++)
        node_start(&nodes[i], ARGS("--config", config_path, "--bootstrap", bootstrap));
}

/* Start a stopped node again, bootstrapping as its config would: node 0,
 * the first bootstrap node, joins through node 1. */
static void restart(struct node *n)
{
    char entry[160];
    snprintf(entry, sizeof(entry), "%s", bootstrap);
    if (n == &nodes[0])
        node_bootstrap_entry(&nodes[1], entry, sizeof(entry));
    node_start(n, ARGS("--config", config_path, "--bootstrap", entry));
}

static int teardown(void **state)
{
    harness_kill_all(state);
    if (getenv("MERPATI_TEST_KEEP") != NULL)
        return 0; /* leave the data dirs and logs for a look */
    for (int i = 0; i < 3; i++)
        node_cleanup(&nodes[i]);
    unlink(config_path);
    return 0;
}

/* `merpati send` through the CLI; returns its result (exit status, out, err). */
static struct run_result cli_send(struct node *from, const char *to, const char *text,
                                  bool wait)
{
    return harness_run(NULL, wait ? ARGS("send", "--data-dir", from->dir, "--config", config_path,
                                         to, text, "--wait")
                                  : ARGS("send", "--data-dir", from->dir, "--config", config_path,
                                         to, text));
}

/* cli_send that must succeed. */
static void send_ok(struct node *from, const char *to, const char *text, bool wait)
{
    struct run_result r = cli_send(from, to, text, wait);
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
}

/* `merpati contacts add` of other on n, under name. */
static void add_contact(struct node *n, struct node *other, const char *name)
{
    struct run_result r = harness_run(NULL, ARGS("contacts", "add", other->address, "--name", name,
                                                 "--data-dir", n->dir, "--config", config_path));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
}

/* Nodes 0 and 1 (a and b) started, each the other's contact: bob and alice. */
static void start_pair(void)
{
    start_all(2);
    add_contact(&nodes[0], &nodes[1], "bob");
    add_contact(&nodes[1], &nodes[0], "alice");
}

static json_t *inbox(struct node *n, const char *extra_params)
{
    char params[256];
    snprintf(params, sizeof(params), "{\"limit\":1000%s}", extra_params);
    json_t *reply = node_call(n, "inbox.list", params);
    json_t *list = json_incref(json_object_get(json_object_get(reply, "result"), "messages"));
    json_decref(reply);
    assert_non_null(list);
    return list;
}

/* Wait until n's inbox holds at least count messages; returns them. */
static json_t *wait_inbox(struct node *n, size_t count)
{
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        json_t *list = inbox(n, "");
        if (json_array_size(list) >= count)
            return list;
        json_decref(list);
        sleep_ms(100);
    }
    fail_msg("%s did not receive %zu messages in time", n->dir, count);
    return NULL;
}

/* Waits until from's last message in its history with to is text, in state. */
static void wait_last_state(struct node *from, const struct node *to, const char *text,
                            const char *state)
{
    bool found = false;
    for (int waited = 0; waited < WAIT_MS && !found; waited += 100) {
        char params[200];
        snprintf(params, sizeof(params), "{\"with\":\"%s\"}", to->address);
        json_t *h = node_call(from, "history", params);
        json_t *msgs = json_object_get(json_object_get(h, "result"), "messages");
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        found = last != NULL &&
                strcmp(json_string_value(json_object_get(last, "state")), state) == 0 &&
                strcmp(json_string_value(json_object_get(last, "text")), text) == 0;
        json_decref(h);
        if (!found)
            sleep_ms(100);
    }
    assert_true(found);
}

static void test_both_ways_with_receipts(void **state)
{
    (void)state;
    start_all(3);
    struct node *a = &nodes[0], *b = &nodes[1], *c = &nodes[2];
    add_contact(a, b, "bob");
    add_contact(b, a, "alice");

    /* b listens before anything arrives, as a program would. */
    char listen_log[128];
    snprintf(listen_log, sizeof(listen_log), "%s.listen", b->dir);
    pid_t listener = harness_spawn(listen_log, ARGS("listen", "--json", "--data-dir", b->dir,
                                                    "--config", config_path));
    assert_true(listener > 0);

    struct run_result r = cli_send(a, "bob", "hello b", true); /* by contact name */
    assert_int_equal(r.status, 0);
    assert_int_equal(strlen(r.out), 33); /* its id, as without --wait ... */
    assert_contains(r.err, "delivered"); /* ... and what it waited for */
    char first_id[33];
    memcpy(first_id, r.out, 32);
    first_id[32] = '\0';
    harness_result_free(&r);
    send_ok(b, a->address, "hello a", true);
    for (int i = 1; i <= 3; i++) {
        char text[32];
        snprintf(text, sizeof(text), "numbered %d", i);
        r = cli_send(a, b->address, text, false);
        assert_int_equal(r.status, 0);
        assert_int_equal(strlen(r.out), 33); /* a 32-hex-digit id and a newline */
        harness_result_free(&r);
    }

    json_t *list = wait_inbox(b, 4);
    assert_int_equal(json_array_size(list), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")),
                        first_id);
    /* a's history with b, its newest 4 both ways, oldest first: b's answer,
     * then a's three numbered texts; a's first text is cut. */
    char limited[200];
    snprintf(limited, sizeof(limited), "{\"with\":\"%s\",\"limit\":4}", b->address);
    json_t *recent = node_call(a, "history", limited);
    json_t *both = json_object_get(json_object_get(recent, "result"), "messages");
    const char *texts[] = {"hello a", "numbered 1", "numbered 2", "numbered 3"};
    assert_int_equal(json_array_size(both), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_array_get(both, i);
        assert_string_equal(json_string_value(json_object_get(m, "text")), texts[i]);
        assert_string_equal(json_string_value(json_object_get(m, "direction")),
                            i == 0 ? "in" : "out");
    }
    json_decref(recent);
    const char *want[] = {"hello b", "numbered 1", "numbered 2", "numbered 3"};
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(m, "text")), want[i]);
        assert_string_equal(json_string_value(json_object_get(m, "peer")), a->address);
        assert_int_equal(json_integer_value(json_object_get(m, "counter")), (json_int_t)i + 1);
    }
    json_decref(list);

    /* listen printed the same messages, in the same order, as NDJSON. */
    char *out = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        free(out);
        out = harness_read_file(listen_log);
        if (out != NULL && strstr(out, "numbered 3") != NULL)
            break;
        sleep_ms(100);
    }
    assert_contains(out, "hello b");
    char *p1 = strstr(out, "\"numbered 1\""), *p2 = strstr(out, "\"numbered 2\""),
         *p3 = strstr(out, "\"numbered 3\"");
    assert_true(p1 != NULL && p2 != NULL && p3 != NULL && p1 < p2 && p2 < p3);
    /* b's own reply reached a: a's node acked it as delivered. */
    assert_contains(out, "\"type\":\"delivered\"");
    assert_true(strstr(out, "\"type\":\"sent\"") == NULL);
    free(out);
    kill(listener, SIGTERM);
    harness_wait(listener, STOP_TIMEOUT_MS);
    unlink(listen_log);

    /* Without --json, a's listen names bob: his message, and a's delivered. */
    snprintf(listen_log, sizeof(listen_log), "%s.listen", a->dir);
    listener = harness_spawn(listen_log, ARGS("listen", "--since", "0", "--data-dir", a->dir,
                                              "--config", config_path));
    assert_true(listener > 0);
    assert_true(harness_wait_log(listen_log, " bob: hello a\n", WAIT_MS));
    assert_true(harness_wait_log(listen_log, " delivered to bob\n", WAIT_MS));
    kill(listener, SIGTERM);
    harness_wait(listener, STOP_TIMEOUT_MS);
    unlink(listen_log);

    /* c is not b's contact: its message waits among b's requests, not the inbox. */
    send_ok(c, b->address, "hi, I am c", false);
    json_t *requests = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        requests = inbox(b, ",\"requests\":true");
        if (json_array_size(requests) == 1)
            break;
        json_decref(requests);
        requests = NULL;
        sleep_ms(100);
    }
    assert_non_null(requests);
    assert_string_equal(json_string_value(json_object_get(json_array_get(requests, 0), "text")),
                        "hi, I am c");
    assert_string_equal(json_string_value(json_object_get(json_array_get(requests, 0), "peer")),
                        c->address);
    json_decref(requests);
    list = inbox(b, "");
    assert_int_equal(json_array_size(list), 4); /* still only a's */
    json_decref(list);
    r = harness_run(NULL, ARGS("contacts", "list", "--requests", "--data-dir", b->dir, "--config",
                               config_path));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, c->address);
    harness_result_free(&r);
    /* `inbox` shows a contact by name, a stranger by the start of its address. */
    r = harness_run(NULL, ARGS("inbox", "--data-dir", b->dir, "--config", config_path));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, " alice: hello b\n");
    harness_result_free(&r);
    r = harness_run(NULL,
                    ARGS("inbox", "--requests", "--data-dir", b->dir, "--config", config_path));
    assert_int_equal(r.status, 0);
    char stranger[64];
    snprintf(stranger, sizeof(stranger), " %.16s... (request): hi, I am c\n", c->address);
    assert_contains(r.out, stranger);
    harness_result_free(&r);
    /* Stored, so acked: c sees it sent, never delivered (no receipt to a stranger). */
    wait_last_state(c, b, "hi, I am c", "sent");

    /* b blocks c: c's next message is taken (c sees it sent) and dropped. */
    r = harness_run(NULL, ARGS("contacts", "block", c->address, "--data-dir", b->dir, "--config",
                               config_path));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
    send_ok(c, b->address, "let me in", false);
    wait_last_state(c, b, "let me in", "sent");
    requests = inbox(b, ",\"requests\":true");
    assert_int_equal(json_array_size(requests), 1); /* still only the first */
    json_decref(requests);

    /* A program resuming with `since` gets every later event once, in cursor order. */
    json_t *st = status_json(b);
    json_int_t total =
        json_integer_value(json_object_get(json_object_get(st, "messages"), "events"));
    json_decref(st);
    assert_true(total >= 6);
    int fd = harness_connect(b->sock);
    assert_true(fd >= 0);
    const char *sub =
        "{\"jsonrpc\":\"2.0\",\"method\":\"subscribe\",\"params\":{\"since\":2},\"id\":1}\n";
    char *line = harness_exchange(fd, sub, strlen(sub));
    for (json_int_t cursor = 3; cursor <= total; cursor++) {
        assert_non_null(line);
        json_t *ev = json_loads(line, 0, NULL);
        json_t *params = json_object_get(ev, "params");
        assert_int_equal(json_integer_value(json_object_get(params, "cursor")), cursor);
        json_decref(ev);
        free(line);
        line = cursor < total ? harness_exchange(fd, "", 0) : NULL;
    }
    close(fd);

    /* a sees its messages delivered (receipts came back). */
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        char params[200];
        snprintf(params, sizeof(params), "{\"with\":\"%s\"}", b->address);
        json_t *h = node_call(a, "history", params);
        json_t *msgs = json_object_get(json_object_get(h, "result"), "messages");
        size_t delivered = 0, i;
        json_t *m;
        json_array_foreach(msgs, i, m) delivered +=
            strcmp(json_string_value(json_object_get(m, "direction")), "out") == 0 &&
            strcmp(json_string_value(json_object_get(m, "state")), "delivered") == 0;
        json_decref(h);
        if (delivered == 4)
            break;
        assert_true(waited + 100 < WAIT_MS);
        sleep_ms(100);
    }
}

static void test_restart_between_messages(void **state)
{
    (void)state;
    start_pair();
    struct node *a = &nodes[0], *b = &nodes[1];
    send_ok(a, b->address, "before", true);

    node_stop(b);
    send_ok(a, b->address, "while b was away", false); /* queued: b is down */
    restart(b);
    json_t *list = wait_inbox(b, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "text")),
                        "while b was away");
    json_decref(list);

    /* The ratchet continues both ways after the restart. */
    send_ok(b, a->address, "back", true);
    send_ok(a, b->address, "welcome back", true);
    list = inbox(b, "");
    assert_int_equal(json_array_size(list), 3); /* nothing lost, nothing twice */
    json_decref(list);
}

static void test_kill_during_a_thousand_sends(void **state)
{
    (void)state;
    enum { TOTAL = 1000, KILL_AFTER = 300 };
    start_all(2);
    struct node *a = &nodes[0], *b = &nodes[1];
    add_contact(b, a, "alice");

    /* Pipeline all TOTAL sends on one connection; kill -9 a after reading
     * KILL_AFTER replies, while the rest are still being taken in. */
    int fd = harness_connect(a->sock);
    assert_true(fd >= 0);
    char line[512];
    for (int i = 0; i < TOTAL; i++) {
        int len = snprintf(line, sizeof(line),
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"m%04d\"},\"id\":%d}\n",
                           b->address, i, i);
        if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
            break;
    }
    bool ok[TOTAL] = {false};
    int succeeded = 0;
    for (int i = 0; i < KILL_AFTER; i++) {
        char *reply = harness_exchange(fd, "", 0);
        assert_non_null(reply);
        json_t *j = json_loads(reply, 0, NULL);
        int id = (int)json_integer_value(json_object_get(j, "id"));
        if (json_object_get(j, "result") != NULL && id >= 0 && id < TOTAL) {
            ok[id] = true;
            succeeded++;
        }
        json_decref(j);
        free(reply);
    }
    kill(a->pid, SIGKILL);
    assert_int_equal(harness_wait(a->pid, STOP_TIMEOUT_MS), 128 + SIGKILL);
    a->pid = 0;
    close(fd);
    assert_int_equal(succeeded, KILL_AFTER);

    restart(a);
    json_t *list = wait_inbox(b, (size_t)succeeded);
    /* Let anything else in flight land, then check. */
    sleep_ms(1000);
    json_decref(list);
    list = inbox(b, "");
    bool seen[TOTAL] = {false};
    int last = -1;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        int n = (int)strtol(json_string_value(json_object_get(m, "text")) + 1, NULL, 10);
        assert_true(n >= 0 && n < TOTAL);
        assert_false(seen[n]); /* exactly once */
        seen[n] = true;
        assert_true(n > last); /* in order */
        last = n;
    }
    for (int k = 0; k < TOTAL; k++) {
        if (ok[k] && !seen[k])
            fail_msg("message %d was accepted by send but never arrived", k);
    }
    json_decref(list);
}

static void test_send_errors(void **state)
{
    (void)state;
    start_pair();
    struct node *a = &nodes[0], *b = &nodes[1];

    /* A contact name that does not exist: 67, nothing queued. */
    struct run_result r = cli_send(a, "carol", "who?", false);
    assert_int_equal(r.status, 67);
    assert_contains(r.err, "no contact or address \"carol\"");
    harness_result_free(&r);

    /* One character changed in the address: refused, nothing queued. */
    char typo[128];
    snprintf(typo, sizeof(typo), "%s", b->address);
    typo[10] = typo[10] == 'q' ? 'p' : 'q';
    r = cli_send(a, typo, "lost?", false);
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "checksum");
    harness_result_free(&r);

    /* Over 64 KiB: refused with its size. */
    char *big = malloc(65538);
    assert_non_null(big);
    memset(big, 'x', 65537);
    big[65537] = '\0';
    r = cli_send(a, b->address, big, false);
    free(big);
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "longer than 65536 bytes");
    harness_result_free(&r);

    /* To oneself. */
    r = cli_send(a, a->address, "me", false);
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "addressed to yourself");
    harness_result_free(&r);

    /* Empty (an unset shell variable, say). */
    r = cli_send(a, b->address, "", false);
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "empty text");
    harness_result_free(&r);

    /* Nothing of the above went out. */
    char params[200];
    snprintf(params, sizeof(params), "{\"with\":\"%s\"}", b->address);
    json_t *h = node_call(a, "history", params);
    assert_int_equal(json_array_size(json_object_get(json_object_get(h, "result"), "messages")),
                     0);
    json_decref(h);

    /* --wait with the recipient down: exit 75, and the message stays queued. */
    node_stop(b);
    r = harness_run(NULL, ARGS("send", "--data-dir", a->dir, "--config", config_path, b->address,
                               "later", "--wait", "--timeout", "2"));
    assert_int_equal(r.status, 75);
    assert_contains(r.err, "stays queued");
    assert_int_equal(strlen(r.out), 33); /* the id of what stays queued */
    char later_id[33];
    memcpy(later_id, r.out, 32);
    later_id[32] = '\0';
    harness_result_free(&r);
    restart(b);
    json_t *list = wait_inbox(b, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "text")),
                        "later");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")),
                        later_id);
    json_decref(list);

    /* The longest text, 64 KiB of a byte that JSON writes as 6 ("\u0001"):
     * its request line (384 KiB) is taken, and it arrives whole. */
    char *longest = malloc(65537);
    assert_non_null(longest);
    memset(longest, 0x01, 65536);
    longest[65536] = '\0';
    send_ok(a, b->address, longest, false);
    list = wait_inbox(b, 2);
    const char *got = json_string_value(json_object_get(json_array_get(list, 1), "text"));
    assert_non_null(got);
    assert_int_equal(strlen(got), 65536);
    assert_memory_equal(got, longest, 65536);
    json_decref(list);
    free(longest);
}

/* The outgoing messages to `with` in a's history: their states, oldest first. */
static json_t *history_with(struct node *n, const char *with)
{
    char params[200];
    snprintf(params, sizeof(params), "{\"with\":\"%s\",\"limit\":1000}", with);
    json_t *h = node_call(n, "history", params);
    json_t *list = json_incref(json_object_get(json_object_get(h, "result"), "messages"));
    json_decref(h);
    assert_non_null(list);
    return list;
}

/* A send.batch call that must fail: its error, checked for code, item index
 * and a word of the message. */
static void batch_refused(struct node *n, const char *params, int code, int index,
                          const char *why)
{
    json_t *reply = node_call(n, "send.batch", params);
    json_t *err = json_object_get(reply, "error");
    assert_non_null(err);
    assert_int_equal(json_integer_value(json_object_get(err, "code")), code);
    if (index >= 0)
        assert_int_equal(json_integer_value(json_object_get(json_object_get(err, "data"), "index")),
                         index);
    assert_contains(json_string_value(json_object_get(err, "message")), why);
    json_decref(reply);
}

static void test_send_batch(void **state)
{
    (void)state;
    enum { COUNT = 40 };
    start_pair();
    struct node *a = &nodes[0], *b = &nodes[1];

    /* One call queues all, in order; the last one names its recipient itself
     * (a contact name), the others take the call's `to`. */
    size_t cap = 512 + COUNT * 64;
    char *params = malloc(cap);
    assert_non_null(params);
    size_t len = (size_t)snprintf(params, cap, "{\"to\":\"%s\",\"messages\":[", b->address);
    for (int i = 0; i < COUNT; i++)
        len += (size_t)snprintf(params + len, cap - len, "%s{%s\"text\":\"batch %02d\"}",
                                i > 0 ? "," : "", i == COUNT - 1 ? "\"to\":\"bob\"," : "", i);
    snprintf(params + len, cap - len, "]}");
    json_t *reply = node_call(a, "send.batch", params);
    free(params);
    json_t *result = json_object_get(reply, "result");
    assert_non_null(result);
    assert_string_equal(json_string_value(json_object_get(result, "state")), "queued");
    json_t *ids = json_object_get(result, "ids");
    assert_int_equal(json_array_size(ids), COUNT);

    /* b gets every one once, in order, under the id the call gave; so does
     * a reader asking pages of 7, each resuming at the cursor the last gave. */
    json_t *list = wait_inbox(b, COUNT);
    sleep_ms(300);
    json_decref(list);
    list = inbox(b, "");
    json_t *paged = node_inbox_all(b, 7);
    assert_int_equal(json_array_size(list), COUNT);
    assert_int_equal(json_array_size(paged), COUNT);
    for (int i = 0; i < COUNT; i++) {
        char want[16];
        json_t *m = json_array_get(list, (size_t)i);
        const char *id = json_string_value(json_object_get(m, "id"));
        snprintf(want, sizeof(want), "batch %02d", i);
        assert_string_equal(json_string_value(json_object_get(m, "text")), want);
        assert_string_equal(id, json_string_value(json_array_get(ids, (size_t)i)));
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(paged, (size_t)i), "id")), id);
    }
    json_decref(paged);
    json_decref(list);
    json_decref(reply);

    /* A full page says more follow, and where; the last page says none do. */
    reply = node_call(b, "inbox.list", "{\"limit\":7}");
    assert_true(json_is_true(json_object_get(json_object_get(reply, "result"), "more")));
    json_decref(reply);
    reply = node_call(b, "inbox.list", "{\"limit\":1000}");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(reply, "result"), "messages")), COUNT);
    assert_true(json_is_false(json_object_get(json_object_get(reply, "result"), "more")));
    json_decref(reply);
    struct run_result r = harness_run(
        NULL, ARGS("inbox", "--limit", "7", "--data-dir", b->dir, "--config", config_path));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, ": batch 06\nmore after cursor ");
    harness_result_free(&r);

    /* A page of none moves no cursor. */
    reply = node_call(b, "inbox.list", "{\"limit\":0,\"since\":3}");
    assert_int_equal(json_array_size(json_object_get(json_object_get(reply, "result"), "messages")),
                     0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(reply, "result"), "cursor")), 3);
    json_decref(reply);

    /* A cursor past the last event (another node's, or one kept across a
     * restore from a backup) is refused, not waited on in silence. */
    reply = node_call(b, "inbox.list", "{\"since\":1000000}");
    json_t *past = json_object_get(reply, "error");
    assert_int_equal(json_integer_value(json_object_get(past, "code")), -32602);
    assert_contains(json_string_value(json_object_get(past, "message")),
                    "past this node's last event");
    json_int_t last = json_integer_value(json_object_get(json_object_get(past, "data"), "last"));
    assert_true(last >= COUNT);
    json_decref(reply);
    char at_last[64];
    snprintf(at_last, sizeof(at_last), "{\"since\":%lld}", (long long)last); /* caught up */
    reply = node_call(b, "inbox.list", at_last);
    assert_int_equal(json_array_size(json_object_get(json_object_get(reply, "result"), "messages")),
                     0);
    json_decref(reply);
    snprintf(at_last, sizeof(at_last), "{\"since\":%lld}", (long long)last + 1);
    reply = node_call(b, "inbox.list", at_last);
    assert_non_null(json_object_get(reply, "error"));
    json_decref(reply);
    r = harness_run(NULL, ARGS("listen", "--since", "1000000", "--data-dir", b->dir, "--config",
                               config_path));
    assert_int_equal(r.status, 65);
    assert_contains(r.err, "past this node's last event");
    harness_result_free(&r);

    /* Every receipt comes back (b answers a burst with few receipts). */
    bool all_delivered = false;
    for (int waited = 0; waited < WAIT_MS && !all_delivered; waited += 100) {
        list = history_with(a, b->address);
        size_t i;
        json_t *m;
        all_delivered = json_array_size(list) == COUNT;
        json_array_foreach(list, i, m)
        {
            all_delivered = all_delivered && strcmp(json_string_value(json_object_get(m, "state")),
                                                    "delivered") == 0;
        }
        json_decref(list);
        if (!all_delivered)
            sleep_ms(100);
    }
    assert_true(all_delivered);
    /* History: oldest first, in the order written (many share a ms); with a
     * limit, the newest ones, either way. */
    list = history_with(a, b->address);
    for (int i = 0; i < COUNT; i++) {
        char want[16];
        snprintf(want, sizeof(want), "batch %02d", i);
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(list, (size_t)i), "text")), want);
    }
    json_decref(list);
    for (int side = 0; side < 2; side++) {
        char limited[200];
        struct node *n = side == 0 ? a : b;
        snprintf(limited, sizeof(limited), "{\"with\":\"%s\",\"limit\":3}",
                 (side == 0 ? b : a)->address);
        json_t *h = node_call(n, "history", limited);
        list = json_object_get(json_object_get(h, "result"), "messages");
        assert_int_equal(json_array_size(list), 3);
        for (int i = 0; i < 3; i++) {
            json_t *m = json_array_get(list, (size_t)i);
            char want[16];
            snprintf(want, sizeof(want), "batch %02d", COUNT - 3 + i);
            assert_string_equal(json_string_value(json_object_get(m, "text")), want);
            assert_string_equal(json_string_value(json_object_get(m, "direction")),
                                side == 0 ? "out" : "in");
        }
        json_decref(h);
    }
    /* They went as a bundle: far fewer envelopes than messages, each message
     * acked (the first send may go alone while the session starts, a
     * resend may add one). */
    json_t *st = status_json(a);
    json_t *counts = json_object_get(st, "messages");
    json_int_t envelopes = json_integer_value(json_object_get(counts, "sent"));
    json_int_t acked = json_integer_value(json_object_get(counts, "acked"));
    json_t *cache = json_object_get(counts, "entry_cache");
    json_int_t hits = json_integer_value(json_object_get(cache, "hits"));
    json_int_t misses = json_integer_value(json_object_get(cache, "misses"));
    json_int_t cached = json_integer_value(json_object_get(cache, "bytes"));
    json_decref(st);
    print_message("%d messages: %lld envelopes, %lld acked, entries read %lld times from "
                  "memory, %lld from the store\n",
                  COUNT, (long long)envelopes, (long long)acked, (long long)hits,
                  (long long)misses);
    assert_true(envelopes >= 1 && envelopes <= 4);
    assert_true(acked >= COUNT);
    /* Sealing and the acks read the entries the call wrote from memory (a
     * bundle's head too: its envelope is kept apart), and none stays there
     * once delivered. */
    assert_true(hits >= COUNT);
    assert_true(misses <= envelopes - 1); /* an ack for a resend, of a head delivered */
    assert_int_equal(cached, 0);

    /* All or nothing: one bad item refuses the call, naming the item. */
    char bad[1024];
    snprintf(bad, sizeof(bad),
             "{\"to\":\"%s\",\"messages\":[{\"text\":\"ok\"},{\"text\":\"ok\"},"
             "{\"to\":\"%s\",\"text\":\"to me\"}]}",
             b->address, a->address);
    batch_refused(a, bad, -32602, 2, "messages[2]");
    batch_refused(a, bad, -32602, 2, "addressed to yourself");
    snprintf(bad, sizeof(bad), "{\"to\":\"%s\",\"messages\":[{\"text\":\"ok\"},{\"text\":\"\"}]}",
             b->address);
    batch_refused(a, bad, -32602, 1, "empty text");
    snprintf(bad, sizeof(bad),
             "{\"to\":\"%s\",\"messages\":[{\"text\":\"ok\"},{\"to\":\"carol\",\"text\":\"who\"}]}",
             b->address);
    batch_refused(a, bad, -32000, 1, "carol");
    snprintf(bad, sizeof(bad), "{\"messages\":[{\"text\":\"nobody\"}]}");
    batch_refused(a, bad, -32602, 0, "messages[0]");
    snprintf(bad, sizeof(bad), "{\"to\":\"%s\",\"messages\":[{\"text\":1}]}", b->address);
    batch_refused(a, bad, -32602, 0, "text");
    snprintf(bad, sizeof(bad), "{\"to\":\"%s\",\"messages\":[]}", b->address);
    batch_refused(a, bad, -32602, -1, "1 to 1024");

    /* None of the refused calls queued anything. */
    list = history_with(a, b->address);
    assert_int_equal(json_array_size(list), COUNT);
    json_decref(list);
}

static void test_changed_node_key(void **state)
{
    (void)state;
    start_pair();
    struct node *a = &nodes[0], *b = &nodes[1];
    struct run_result r = cli_send(b, "alice", "first", true); /* a now trusts b's node key */
    assert_int_equal(r.status, 0);
    harness_result_free(&r);

    /* b comes back with a new node key (a reinstall, or a stolen account key in use elsewhere). */
    node_stop(b);
    char path[160];
    snprintf(path, sizeof(path), "%s/node.key", b->dir);
    assert_int_equal(unlink(path), 0);
    /* Sent before a knows: accepted, but held back from the unknown node key
     * (sent while b is down: once it is back, a may learn the key first). */
    send_ok(a, "bob", "held", false);
    restart(b);
    send_ok(b, "alice", "from my new node", false);

    /* a refuses it, says why, and will not send to bob until told to trust the key. */
    json_t *c = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        json_t *reply = node_call(a, "contacts.show", "{\"contact\":\"bob\"}");
        c = json_incref(json_object_get(reply, "result"));
        json_decref(reply);
        if (json_is_string(json_object_get(c, "pending_node_key")))
            break;
        json_decref(c);
        c = NULL;
        sleep_ms(100);
    }
    if (c == NULL)
        fail_msg("a never saw b's new node key");
    json_decref(c);
    json_t *list = inbox(a, "");
    assert_int_equal(json_array_size(list), 1); /* only "first" */
    json_decref(list);
    r = cli_send(a, "bob", "are you you?", false);
    assert_int_equal(r.status, 77);
    assert_contains(r.err, "trust");
    harness_result_free(&r);

    r = harness_run(NULL, ARGS("contacts", "trust", "bob", "--data-dir", a->dir, "--config",
                               config_path));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
    list = inbox(b, "");
    for (size_t i = 0; i < json_array_size(list); i++)
        assert_string_not_equal(
            json_string_value(json_object_get(json_array_get(list, i), "text")), "held");
    json_decref(list);
    list = wait_inbox(a, 2); /* b kept resending; now it gets in */
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "text")),
                        "from my new node");
    json_decref(list);
    bool held_arrived = false;
    for (int waited = 0; waited < WAIT_MS && !held_arrived; waited += 100) {
        list = inbox(b, "");
        for (size_t i = 0; i < json_array_size(list); i++)
            held_arrived =
                held_arrived ||
                strcmp(json_string_value(json_object_get(json_array_get(list, i), "text")),
                       "held") == 0;
        json_decref(list);
        if (!held_arrived)
            sleep_ms(100);
    }
    assert_true(held_arrived); /* released by the trust */
    send_ok(a, "bob", "welcome", true);
}

/* What a rewrite_prefix does with one key of its walk: its writes into b. */
typedef void rewrite_key_cb(struct store *st, struct store_batch *b, const uint8_t *key,
                            size_t key_len, const uint8_t *val, size_t val_len, void *arg);

/* Each key of family cf starting with prefix (in a stopped node's store)
 * through fn, whose writes go in one synced write at the end; how many. */
static size_t rewrite_prefix(struct store *st, enum store_cf cf, uint8_t prefix,
                             rewrite_key_cb *fn, void *arg)
{
    size_t n = 0;
    struct store_batch *b = store_batch_new();
    struct store_iter *it = store_iter_new(st, cf, &prefix, 1);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        fn(st, b, key, key_len, val, val_len, arg);
        n++;
    }
    assert_int_equal(store_iter_status(it), MP_OK);
    store_iter_free(it);
    assert_int_equal(store_batch_write(st, b, true), MP_OK);
    store_batch_free(b);
    return n;
}

struct move {
    enum store_cf from, to;
};

static void move_key(struct store *st, struct store_batch *b, const uint8_t *key, size_t key_len,
                     const uint8_t *val, size_t val_len, void *arg)
{
    const struct move *mv = arg;
    (void)st;
    store_batch_put(b, mv->to, key, key_len, val, val_len);
    store_batch_delete(b, mv->from, key, key_len);
}

/* Keys of one prefix from family from to family to; how many. */
static size_t move_prefix(struct store *st, enum store_cf from, enum store_cf to, uint8_t prefix)
{
    struct move mv = {.from = from, .to = to};
    return rewrite_prefix(st, from, prefix, move_key, &mv);
}

/* Keys of family cf starting with prefix (in a stopped node's store). */
static size_t count_prefix(struct store *st, enum store_cf cf, uint8_t prefix)
{
    struct store_iter *it = store_iter_new(st, cf, &prefix, 1);
    const uint8_t *key, *val;
    size_t key_len, val_len, n = 0;
    while (store_iter_next(it, &key, &key_len, &val, &val_len))
        n++;
    assert_int_equal(store_iter_status(it), MP_OK);
    store_iter_free(it);
    return n;
}

/* One entry as format 2 kept it (back_to_format_2); *(size_t *)arg counts
 * the envelopes put back. */
static void entry_to_format_2(struct store *st, struct store_batch *b, const uint8_t *key,
                              size_t key_len, const uint8_t *val, size_t val_len, void *arg)
{
    uint8_t row_key[9], *row = NULL, *env = NULL, v1_row[10] = {1};
    size_t row_len = 0, env_len = 0;
    struct outbox_entry e;
    struct buf enc;
    assert_int_equal(key_len, 9);
    assert_int_equal(outbox_entry_decode(val, val_len, &e), MP_OK);
    row_key[0] = 's';
    memcpy(row_key + 1, key + 1, 8);
    enum mp_err err = store_get(st, STORE_CF_OUTBOX_INDEX, row_key, 9, &row, &row_len);
    assert_true(err == MP_OK || err == MP_ERR_NOT_FOUND);
    if (err == MP_OK) {
        assert_int_equal(outbox_state_decode(row, row_len, &e), MP_OK);
        v1_row[1] = e.state;
        memcpy(v1_row + 2, row + 2, 8); /* the expiry */
        store_batch_put(b, STORE_CF_OUTBOX_INDEX, row_key, 9, v1_row, sizeof(v1_row));
        free(row);
    }
    if (store_get(st, STORE_CF_OUTBOX_SEALED, key, key_len, &env, &env_len) == MP_OK) {
        assert_true(e.sealed);
        assert_int_equal(buf_append(&e.envelope, env, env_len), MP_OK);
        free(env);
        store_batch_delete(b, STORE_CF_OUTBOX_SEALED, key, key_len);
        (*(size_t *)arg)++;
    }
    assert_int_equal(outbox_v3_encode(&e, &enc), MP_OK);
    store_batch_put(b, STORE_CF_OUTBOX, key, key_len, enc.data, enc.len);
    buf_free(&enc);
    outbox_entry_clear(&e);
}

/* The seq of the one message on a stopped node's work list. */
static uint64_t queued_seq(struct store *st)
{
    uint8_t prefix = OUTBOX_KEY_PENDING;
    const uint8_t *key, *val;
    size_t key_len, val_len;
    struct store_iter *it = store_iter_new(st, STORE_CF_OUTBOX_INDEX, &prefix, 1);
    assert_true(store_iter_next(it, &key, &key_len, &val, &val_len));
    assert_int_equal(key_len, 9);
    uint64_t seq = bytes_get_u64(key + 1);
    assert_false(store_iter_next(it, &key, &key_len, &val, &val_len)); /* the one */
    store_iter_free(it);
    return seq;
}

/* How many envelopes were sealed with entry seq at their head: its digest
 * index rows ('d' digest -> seq). Counting these, not all rows, leaves out
 * the receipts a node may owe after a restart (an ack lost with it). */
static size_t seals_of(struct store *st, uint64_t seq)
{
    uint8_t prefix = 'd';
    const uint8_t *key, *val;
    size_t key_len, val_len, n = 0;
    struct store_iter *it = store_iter_new(st, STORE_CF_OUTBOX_INDEX, &prefix, 1);
    while (store_iter_next(it, &key, &key_len, &val, &val_len))
        n += val_len == 8 && bytes_get_u64(val) == seq;
    assert_int_equal(store_iter_status(it), MP_OK);
    store_iter_free(it);
    return n;
}

/* A stopped node's outbox as format 2 builds kept it: each entry of
 * version 3, its seal and riders, and its envelope (kept apart), back
 * within it; its state row, if any, of version 1 (state and expiry only).
 * Returns how many envelopes went back. */
static size_t back_to_format_2(struct store *st)
{
    size_t n = 0;
    rewrite_prefix(st, STORE_CF_OUTBOX, 'o', entry_to_format_2, &n);
    assert_int_equal(count_prefix(st, STORE_CF_OUTBOX_SEALED, 'o'), 0);
    return n;
}

/* Keys of each kind moved by back_to_format_1: q, d, m, i; texts given
 * drawn ids; envelopes put back within their entries. */
struct moved {
    size_t q, d, m, i, drawn, sealed;
};

/* drawn_ids' counts: ids drawn, id index rows written. */
struct drawn {
    size_t drawn, rows;
};

/* One entry's id as drawn_ids gives it. */
static void draw_id(struct store *st, struct store_batch *b, const uint8_t *key, size_t key_len,
                    const uint8_t *val, size_t val_len, void *arg)
{
    struct drawn *dr = arg;
    struct outbox_entry e;
    struct msg m;
    (void)st;
    assert_int_equal(outbox_entry_decode(val, val_len, &e), MP_OK);
    assert_int_equal(msg_decode(e.plaintext.data, e.plaintext.len, &m), MP_OK);
    if (m.kind == MSG_KIND_TEXT) {
        uint8_t id_key[1 + MSG_ID_BYTES] = {'m'};
        struct buf enc;
        if (e.state == OUTBOX_QUEUED) {
            memset(m.id, 0xd0 + (int)dr->drawn, MSG_ID_BYTES); /* not any seq's id */
            buf_free(&e.plaintext);
            assert_int_equal(msg_encode(&m, &e.plaintext), MP_OK);
            buf_free(&e.envelope);
            buf_init(&e.envelope, 0);
            assert_int_equal(outbox_v3_encode(&e, &enc), MP_OK);
            store_batch_put(b, STORE_CF_OUTBOX, key, key_len, enc.data, enc.len);
            buf_free(&enc);
            dr->drawn++;
        }
        memcpy(id_key + 1, m.id, MSG_ID_BYTES);
        store_batch_put(b, STORE_CF_OUTBOX_INDEX, id_key, sizeof(id_key), key + 1, 8);
        dr->rows++;
    }
    msg_clear(&m);
    outbox_entry_clear(&e);
}

/* Give stopped node n's texts ids as builds before ids came from seqs did:
 * each text gets an id index row ('m', id -> seq); a text still queued gets
 * an id of its own choosing (and loses its envelope, to be sealed again
 * with it), so its receipt finds it through that row only. Returns how
 * many ids were so chosen. */
static size_t drawn_ids(struct store *st, size_t *rows_out)
{
    struct drawn dr = {0};
    rewrite_prefix(st, STORE_CF_OUTBOX, 'o', draw_id, &dr);
    *rows_out = dr.rows;
    return dr.drawn;
}

/* One state row folded into its entry (back_to_format_1). */
static void fold_state_row(struct store *st, struct store_batch *b, const uint8_t *key,
                           size_t key_len, const uint8_t *val, size_t val_len, void *arg)
{
    uint8_t entry_key[9], *ev = NULL;
    size_t ev_len = 0;
    struct outbox_entry e;
    struct buf enc;
    (void)arg;
    assert_int_equal(key_len, 9);
    entry_key[0] = 'o';
    memcpy(entry_key + 1, key + 1, 8);
    assert_int_equal(store_get(st, STORE_CF_OUTBOX, entry_key, 9, &ev, &ev_len), MP_OK);
    assert_int_equal(outbox_entry_decode(ev, ev_len, &e), MP_OK);
    free(ev);
    assert_int_equal(outbox_state_decode(val, val_len, &e), MP_OK);
    assert_int_equal(outbox_v3_encode(&e, &enc), MP_OK);
    store_batch_put(b, STORE_CF_OUTBOX, entry_key, 9, enc.data, enc.len);
    store_batch_delete(b, STORE_CF_OUTBOX_INDEX, key, key_len);
    buf_free(&enc);
    outbox_entry_clear(&e);
}

/* Rewrite stopped node n's store as a format 1 build would have left it:
 * the work list and indexes in the message families, envelopes within
 * their entries, each entry's state in the entry itself (format 1 had no
 * state rows), texts' ids drawn and indexed (drawn_ids), version 1. */
static struct moved back_to_format_1(struct node *n)
{
    struct moved moved;
    struct store *st = NULL;
    pid_t holder = 0;
    assert_int_equal(store_open(n->dir, &st, &holder), MP_OK);
    moved.sealed = back_to_format_2(st);
    size_t rows = rewrite_prefix(st, STORE_CF_OUTBOX_INDEX, 's', fold_state_row, NULL);
    size_t id_rows;
    assert_int_equal(count_prefix(st, STORE_CF_OUTBOX_INDEX, 'm'), 0); /* none written now */
    moved.drawn = drawn_ids(st, &id_rows);
    assert_int_equal(count_prefix(st, STORE_CF_OUTBOX_INDEX, 'm'), id_rows);
    moved.q = move_prefix(st, STORE_CF_OUTBOX_INDEX, STORE_CF_OUTBOX, 'q');
    moved.d = move_prefix(st, STORE_CF_OUTBOX_INDEX, STORE_CF_OUTBOX, 'd');
    moved.m = move_prefix(st, STORE_CF_OUTBOX_INDEX, STORE_CF_OUTBOX, 'm');
    moved.i = move_prefix(st, STORE_CF_INBOX_INDEX, STORE_CF_INBOX, 'i');
    /* Format 1 builds had no message id key: the upgraded node draws one. */
    assert_int_equal(store_delete(st, STORE_CF_META, "msgid_key", 9, true), MP_OK);
    const uint8_t one[4] = {0, 0, 0, 1};
    assert_int_equal(store_put(st, STORE_CF_META, "format_version", 14, one, 4, true), MP_OK);
    store_close(st);
    print_message("%s: %zu state rows folded into their entries\n", n->dir, rows);
    return moved;
}

/* After the upgrade from format `from`: n's store is format 3, no migration
 * under way, no work-list or index key left in the message families, no
 * envelope within an entry, and the log says each step was taken. */
static void expect_format_3(struct node *n, unsigned from)
{
    struct store *st = NULL;
    pid_t holder = 0;
    uint8_t *v = NULL, prefix = 'o';
    size_t len = 0;
    assert_int_equal(store_open(n->dir, &st, &holder), MP_OK);
    assert_int_equal(store_get(st, STORE_CF_META, "format_version", 14, &v, &len), MP_OK);
    const uint8_t three[4] = {0, 0, 0, 3};
    assert_int_equal(len, 4);
    assert_memory_equal(v, three, 4);
    free(v);
    assert_int_equal(store_get(st, STORE_CF_META, "migrating_from", 14, &v, &len),
                     MP_ERR_NOT_FOUND);
    assert_int_equal(count_prefix(st, STORE_CF_OUTBOX, 'q'), 0);
    assert_int_equal(count_prefix(st, STORE_CF_OUTBOX, 'd'), 0);
    assert_int_equal(count_prefix(st, STORE_CF_OUTBOX, 'm'), 0);
    assert_int_equal(count_prefix(st, STORE_CF_INBOX, 'i'), 0);
    struct store_iter *it = store_iter_new(st, STORE_CF_OUTBOX, &prefix, 1);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        struct outbox_entry e;
        assert_int_equal(outbox_entry_decode(val, val_len, &e), MP_OK);
        assert_int_equal(e.envelope.len, 0);
        outbox_entry_clear(&e);
    }
    assert_int_equal(store_iter_status(it), MP_OK);
    store_iter_free(it);
    store_close(st);
    char *log = harness_read_file(n->log);
    if (from == 1)
        assert_contains(log, "migrated from format 1 to 2");
    assert_contains(log, "migrated from format 2 to 3");
    free(log);
}

/* Nodes 0 and 1 (a and b) as start_pair leaves them; a's text `before`
 * delivered, then `queued` sent while b is stopped (sealed, not delivered),
 * then a stopped too: both stores may be opened and changed. */
static void stop_with_one_queued(const char *before, const char *queued)
{
    struct node *a = &nodes[0], *b = &nodes[1];
    start_pair();
    send_ok(a, b->address, before, true);
    node_stop(b);
    send_ok(a, b->address, queued, false);
    node_stop(a);
}

/* A node upgraded from a build that wrote format 2, a sealed message queued
 * for a peer that was away (its envelope within its entry): the envelope
 * moves apart as the store opens, and the message goes out once, as sealed
 * then (the same envelope: no second ratchet step for it). */
static void test_upgrade_from_format_2(void **state)
{
    (void)state;
    struct node *a = &nodes[0], *b = &nodes[1];
    stop_with_one_queued("before the upgrade", "sealed across the upgrade");
    struct store *st = NULL;
    pid_t holder = 0;
    assert_int_equal(store_open(a->dir, &st, &holder), MP_OK);
    assert_int_equal(back_to_format_2(st), 1); /* sealed while b was away */
    uint64_t seq = queued_seq(st);
    assert_int_equal(seals_of(st, seq), 1);
    const uint8_t two[4] = {0, 0, 0, 2};
    assert_int_equal(store_put(st, STORE_CF_META, "format_version", 14, two, 4, true), MP_OK);
    store_close(st);

    restart(b); /* first: a, node 0, joins through b */
    restart(a);
    json_t *list = wait_inbox(b, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "text")),
                        "sealed across the upgrade");
    json_decref(list);
    wait_last_state(a, b, "sealed across the upgrade", "delivered");
    list = inbox(b, "");
    assert_int_equal(json_array_size(list), 2); /* nothing twice */
    json_decref(list);
    node_stop(a);
    node_stop(b);
    expect_format_3(a, 2);
    assert_int_equal(store_open(a->dir, &st, &holder), MP_OK);
    assert_int_equal(seals_of(st, seq), 1); /* not sealed again */
    store_close(st);
}

/* Damage done to a stopped node's store (st) to the message that key names
 * (9 bytes: a prefix, then its seq). */
typedef void damage_cb(struct store *st, uint8_t key[9]);

/* Its state row, which holds its seal and riders, no longer decodes. */
static void damage_state_row(struct store *st, uint8_t key[9])
{
    const uint8_t garbage[3] = {2, 9, 9};
    key[0] = 's';
    assert_int_equal(store_put(st, STORE_CF_OUTBOX_INDEX, key, 9, garbage, 3, true), MP_OK);
}

/* Its kept envelope is gone. */
static void lose_envelope(struct store *st, uint8_t key[9])
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    key[0] = OUTBOX_KEY_ENTRY;
    assert_int_equal(store_get(st, STORE_CF_OUTBOX_SEALED, key, 9, &env, &env_len), MP_OK);
    free(env);
    assert_int_equal(store_delete(st, STORE_CF_OUTBOX_SEALED, key, 9, true), MP_OK);
}

/* A message sealed for a peer that was away, damaged (damage) while its
 * node is stopped: counted once in status, though every pass since the
 * restart meets it (the seal's, the pump's), its damage (what) logged, and
 * left where it is, never sealed again (which would lose its riders); later
 * messages go on. */
static void damaged_one_queued(damage_cb *damage, const char *what)
{
    struct node *a = &nodes[0], *b = &nodes[1];
    char logged[64];
    stop_with_one_queued("before", "damaged while queued");
    struct store *st = NULL;
    pid_t holder = 0;
    uint8_t *row = NULL;
    size_t row_len = 0;
    assert_int_equal(store_open(a->dir, &st, &holder), MP_OK);
    uint64_t seq = queued_seq(st);
    uint8_t row_key[9] = {'s'};
    bytes_put_u64(row_key + 1, seq);
    assert_int_equal(store_get(st, STORE_CF_OUTBOX_INDEX, row_key, 9, &row, &row_len), MP_OK);
    assert_true(row_len > 10 && row[0] == 2 && (row[10] & 1)); /* sealed while b was away */
    free(row);
    assert_int_equal(seals_of(st, seq), 1);
    damage(st, row_key);
    store_close(st);

    restart(b);
    restart(a);
    send_ok(a, b->address, "after", true); /* b is reachable again */
    json_t *list = inbox(b, "");
    assert_int_equal(json_array_size(list), 2); /* "before" and "after" only */
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "text")),
                        "after");
    json_decref(list);
    json_t *status = status_json(a);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(status, "messages"),
                                                        "damaged_states")), 1);
    json_decref(status);
    node_stop(a);
    node_stop(b);
    assert_int_equal(store_open(a->dir, &st, &holder), MP_OK);
    assert_int_equal(seals_of(st, seq), 1); /* never sealed again */
    uint8_t pending_key[9] = {OUTBOX_KEY_PENDING}, *pending = NULL;
    size_t pending_len = 0;
    bytes_put_u64(pending_key + 1, seq);
    assert_int_equal(store_get(st, STORE_CF_OUTBOX_INDEX, pending_key, 9, &pending, &pending_len),
                     MP_OK); /* still queued (a receipt owed may be too) */
    free(pending);
    store_close(st);
    char *log = harness_read_file(a->log);
    snprintf(logged, sizeof(logged), "the %s of outgoing message", what);
    assert_contains(log, logged);
    free(log);
}

static void test_damaged_state_row(void **state)
{
    (void)state;
    damaged_one_queued(damage_state_row, "state");
}

static void test_lost_envelope(void **state)
{
    (void)state;
    damaged_one_queued(lose_envelope, "envelope");
}

/* A long queue of long texts goes in full envelopes: COUNT texts of
 * 1,372 bytes (46 fill a bundle's 64 KiB of plaintext) in one send.batch
 * call are sealed as that many full bundles and the part of one left over,
 * not as groups each ending in a runt of a few messages. Seals are counted
 * in the digest index (one per envelope, resends aside). */
static void test_full_bundles(void **state)
{
    (void)state;
    enum { COUNT = 220, TEXT = 1372, PER_BUNDLE = 46 };
    start_pair();
    struct node *a = &nodes[0], *b = &nodes[1];
    send_ok(a, b->address, "first", true); /* the session is up: it may go alone */

    size_t cap = 256 + COUNT * (TEXT + 16);
    char *line = malloc(cap), text[TEXT + 1];
    assert_non_null(line);
    memset(text, 'x', TEXT);
    text[TEXT] = '\0';
    size_t len = (size_t)snprintf(line, cap,
                                  "{\"jsonrpc\":\"2.0\",\"method\":\"send.batch\",\"params\":"
                                  "{\"to\":\"%s\",\"messages\":[", b->address);
    for (int i = 0; i < COUNT; i++)
        len += (size_t)snprintf(line + len, cap - len, "%s{\"text\":\"%s\"}", i > 0 ? "," : "",
                                text);
    len += (size_t)snprintf(line + len, cap - len, "]},\"id\":1}\n");
    assert_true(len < cap);
    int fd = harness_connect(a->sock);
    assert_true(fd >= 0);
    char *reply = harness_exchange(fd, line, len);
    close(fd);
    free(line);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "\"queued\""));
    free(reply);

    json_t *list = wait_inbox(b, COUNT + 1);
    json_decref(list);
    node_stop(a);
    struct store *st = NULL;
    pid_t holder = 0;
    assert_int_equal(store_open(a->dir, &st, &holder), MP_OK);
    size_t envelopes = count_prefix(st, STORE_CF_OUTBOX_INDEX, 'd') - 1; /* "first" aside */
    store_close(st);
    print_message("%d texts of %d bytes: %zu envelopes\n", COUNT, TEXT, envelopes);
    /* (Groups cut at a fixed size left a runt each: 187 texts went in 5.) */
    assert_int_equal(envelopes, (COUNT + PER_BUNDLE - 1) / PER_BUNDLE);
}

/* A stream of send.batch calls from a child process, FLOOD_DEPTH in flight
 * at a time on one connection, to n's contact to; it ends by itself after
 * FLOOD_CALLS calls or FLOOD_MS, exiting 0 (1 if the node stopped
 * answering). */
enum { FLOOD_DEPTH = 4, FLOOD_CALLS = 20000, FLOOD_BATCH = 8, FLOOD_MS = 20000 };

static pid_t flood(struct node *n, const char *to)
{
    size_t cap = 256 + FLOOD_BATCH * 24;
    char *line = malloc(cap);
    assert_non_null(line);
    size_t len = (size_t)snprintf(line, cap,
                                  "{\"jsonrpc\":\"2.0\",\"method\":\"send.batch\",\"params\":"
                                  "{\"to\":\"%s\",\"messages\":[", to);
    for (int i = 0; i < FLOOD_BATCH; i++)
        len += (size_t)snprintf(line + len, cap - len, "%s{\"text\":\"load\"}", i > 0 ? "," : "");
    len += (size_t)snprintf(line + len, cap - len, "]},\"id\":1}\n");
    assert_true(len < cap);
    int fd = harness_connect(n->sock);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(fd);
        free(line);
        return pid;
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < FLOOD_DEPTH - 1; i++) {
        if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
            _exit(1);
    }
    for (int calls = FLOOD_DEPTH - 1; calls < FLOOD_CALLS; calls++) {
        char *reply = harness_exchange(fd, line, len); /* one more in, one answer out */
        if (reply == NULL || strstr(reply, "\"queued\"") == NULL)
            _exit(1);
        free(reply);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > FLOOD_MS)
            break;
    }
    _exit(0);
}

/* 65 sends to carol in one write on one connection, the first 64 waiting
 * or not (wait_first), the last waiting: the first answer is the last's,
 * refused at once (BUSY, why), naming its message, which is queued. */
static void busy_past(struct node *n, bool wait_first, const char *why)
{
    enum { SENDS = 65, LINE = 160 };
    char *lines = malloc(SENDS * LINE);
    assert_non_null(lines);
    size_t len = 0;
    for (int i = 0; i < SENDS; i++)
        len += (size_t)snprintf(lines + len, LINE,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":"
                                "\"carol\",\"text\":\"w%02d\"%s},\"id\":%d}\n",
                                i, wait_first || i == SENDS - 1 ? ",\"wait_ms\":5000" : "", i);
    int fd = harness_connect(n->sock);
    assert_true(fd >= 0);
    char *reply = harness_exchange(fd, lines, len);
    free(lines);
    assert_non_null(reply);
    json_t *busy = json_loads(reply, 0, NULL);
    free(reply);
    json_t *error = json_object_get(busy, "error");
    assert_int_equal(json_integer_value(json_object_get(busy, "id")), SENDS - 1);
    assert_contains(json_string_value(json_object_get(error, "message")), why);
    json_t *data = json_object_get(error, "data");
    assert_string_equal(json_string_value(json_object_get(data, "name")), "BUSY");
    const char *id = json_string_value(json_object_get(data, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 32);
    json_t *list = history_with(n, "carol");
    json_t *last = json_array_get(list, json_array_size(list) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "id")), id); /* queued */
    json_decref(list);
    json_decref(busy);
    close(fd);
}

/* `send --wait --timeout 1` to a contact whose node never came up, while
 * the node is kept busy sending to another: the wait ends (exit 75, the
 * message stays queued) while the load goes on, not once it stops. */
static void test_wait_times_out_under_load(void **state)
{
    (void)state;
    start_pair();
    struct node *a = &nodes[0], *b = &nodes[1], *c = &nodes[2];
    node_init(c); /* never started: its presence is nowhere */
    add_contact(a, c, "carol");
    send_ok(a, "bob", "first", true); /* the session is up before the load */

    pid_t load = flood(a, b->address);
    sleep_ms(500); /* the load is on */
    struct run_result r = harness_run(NULL, ARGS("send", "--data-dir", a->dir, "--config",
                                                 config_path, "carol", "hello", "--wait",
                                                 "--timeout", "1"));
    int status;
    pid_t ended = waitpid(load, &status, WNOHANG);
    if (ended == 0) {
        kill(load, SIGKILL);
        waitpid(load, &status, 0);
    }
    assert_int_equal(r.status, 75);
    assert_contains(r.err, "stays queued");
    assert_int_equal(strlen(r.out), 33); /* its id all the same */
    harness_result_free(&r);
    assert_int_equal(ended, 0); /* answered while the load still ran */

    /* With --json: the id and "queued", as JSON. */
    r = harness_run(NULL, ARGS("send", "--json", "--data-dir", a->dir, "--config", config_path,
                               "carol", "again", "--wait", "--timeout", "1"));
    assert_int_equal(r.status, 75);
    json_t *queued = json_loads(r.out, 0, NULL);
    assert_non_null(queued);
    assert_string_equal(json_string_value(json_object_get(queued, "state")), "queued");
    assert_int_equal(strlen(json_string_value(json_object_get(queued, "id"))), 32);
    json_decref(queued);
    harness_result_free(&r);

    /* The node stops while a send waits: 69, the id, queued still. */
    char wait_log[128];
    snprintf(wait_log, sizeof(wait_log), "%s.wait", a->dir);
    pid_t waiting = harness_spawn(wait_log, ARGS("send", "--data-dir", a->dir, "--config",
                                                 config_path, "carol", "at the stop", "--wait",
                                                 "--timeout", "60"));
    assert_true(waiting > 0);
    json_t *list = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 50) { /* until a has it */
        json_decref(list);
        list = history_with(a, c->address);
        if (json_array_size(list) == 3)
            break;
        sleep_ms(50);
    }
    assert_int_equal(json_array_size(list), 3);
    char id_line[40];
    snprintf(id_line, sizeof(id_line), "%s\n",
             json_string_value(json_object_get(json_array_get(list, 2), "id")));
    json_decref(list);
    node_stop(a);
    assert_int_equal(harness_wait(waiting, STOP_TIMEOUT_MS), 69);
    char *out = harness_read_file(wait_log);
    assert_contains(out, "shutting down");
    assert_contains(out, id_line);
    assert_contains(out, "goes out once the node runs again");
    free(out);
    unlink(wait_log);

    /* Queued: carol's three messages wait among a's pending ones. */
    restart(a);
    list = history_with(a, c->address);
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, i), "state")),
                            "queued");
    json_decref(list);

    /* 65 sends that wait, on one connection: the one past the 64 waiters
     * cannot wait, and hears so at once, queued all the same, with its id. */
    busy_past(a, true, "64 sends wait already");
    /* 64 sends that do not wait (answered once synced, at the end of the
     * turn) and one that would: past the connection's 64 open calls. */
    busy_past(a, false, "this connection has 64 calls open");
}

/* A node upgraded from a build that wrote format 1: what it had delivered
 * stays delivered, what was queued for a peer that was away goes out after
 * the upgrade, once, and both keep talking. */
static void test_upgrade_from_format_1(void **state)
{
    (void)state;
    struct node *a = &nodes[0], *b = &nodes[1];
    stop_with_one_queued("before the upgrade", "queued across the upgrade");
    struct moved at_a = back_to_format_1(a), at_b = back_to_format_1(b);
    /* Every kind of key goes back, so the migration has each to move: the
     * queued message's work-list key, digests of the envelopes a sent, ids
     * of a's texts, the duplicate index of what b took. (b sent nothing: its
     * acks were the receipts.) The queued text has a drawn id and an m row,
     * as old builds wrote them; b's ack names its envelope by digest, so the
     * m rows are moved here but not read. Its envelope went back within its
     * entry, then was dropped with its id. */
    assert_true(at_a.q >= 1 && at_a.d >= 1 && at_a.m == 2 && at_b.i == 1 && at_a.sealed == 1);
    assert_int_equal(at_a.drawn, 1);

    restart(b); /* first: a, node 0, joins through b */
    restart(a);
    json_t *list = wait_inbox(b, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "text")),
                        "queued across the upgrade");
    json_decref(list);
    send_ok(b, a->address, "after it", true);
    /* a's history: both of its messages delivered (the second's after the
     * upgrade), b's answer received. */
    bool delivered = false;
    for (int waited = 0; !delivered && waited < WAIT_MS; waited += 100) {
        list = history_with(a, b->address);
        size_t n_delivered = 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *m = json_array_get(list, i);
            const char *st = json_string_value(json_object_get(m, "state"));
            n_delivered += st != NULL && strcmp(st, "delivered") == 0;
        }
        delivered = json_array_size(list) == 3 && n_delivered == 2;
        json_decref(list);
        if (!delivered)
            sleep_ms(100);
    }
    assert_true(delivered);
    list = inbox(b, "");
    assert_int_equal(json_array_size(list), 2); /* nothing twice */
    json_decref(list);
    node_stop(a);
    node_stop(b);
    expect_format_3(a, 1);
    expect_format_3(b, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_both_ways_with_receipts, teardown),
        cmocka_unit_test_teardown(test_restart_between_messages, teardown),
        cmocka_unit_test_teardown(test_kill_during_a_thousand_sends, teardown),
        cmocka_unit_test_teardown(test_send_errors, teardown),
        cmocka_unit_test_teardown(test_send_batch, teardown),
        cmocka_unit_test_teardown(test_full_bundles, teardown),
        cmocka_unit_test_teardown(test_changed_node_key, teardown),
        cmocka_unit_test_teardown(test_upgrade_from_format_1, teardown),
        cmocka_unit_test_teardown(test_upgrade_from_format_2, teardown),
        cmocka_unit_test_teardown(test_damaged_state_row, teardown),
        cmocka_unit_test_teardown(test_lost_envelope, teardown),
        cmocka_unit_test_teardown(test_wait_times_out_under_load, teardown),
    };
    if (getenv("MERPATI_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("MERPATI_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
