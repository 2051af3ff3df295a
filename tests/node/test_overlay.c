/*
 * Twenty real `merpati run` processes on loopback form one DHT overlay: a
 * record put through one node's control API is got through every other,
 * still after 5 of them are killed without notice, and a restarted node
 * rejoins from its saved routing table with no bootstrap entry at all.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/node/node_util.h"

#define NODES 20
#define KILLED 5
/* How long the overlay may take to form (each node knows several others). */
#define FORM_TIMEOUT_MS 30000
/* Peers each node should know before the test goes on. */
#define FORM_MIN_PEERS 5

static struct node nodes[NODES];
static char config_path[96];

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long table_size(struct node *n)
{
    json_t *s = status_json(n);
    long size = (long)json_integer_value(json_object_get(json_object_get(s, "dht"), "table_size"));
    json_decref(s);
    return size;
}

/* Wait until every running node knows at least min peers. */
static void wait_formed(long min)
{
    for (int waited = 0; waited < FORM_TIMEOUT_MS; waited += 200) {
        int ready = 0, running = 0;
        for (int i = 0; i < NODES; i++) {
            if (nodes[i].pid <= 0)
                continue;
            running++;
            ready += table_size(&nodes[i]) >= min;
        }
        if (ready == running)
            return;
        sleep_ms(200);
    }
    for (int i = 0; i < NODES; i++) {
        if (nodes[i].pid > 0)
            fprintf(stderr, "node %d: %ld peers\n", i, table_size(&nodes[i]));
    }
    fail_msg("the overlay did not form within %d ms", FORM_TIMEOUT_MS);
}

static void expect_record(struct node *n, const char *owner, const char *payload_hex)
{
    char params[256];
    snprintf(params, sizeof(params), "{\"kind\":\"note\",\"owner\":\"%s\"}", owner);
    json_t *reply = node_call(n, "dht.get", params);
    json_t *result = json_object_get(reply, "result");
    if (result == NULL) {
        char *text = json_dumps(reply, 0);
        fail_msg("dht.get from %s failed: %s", n->dir, text);
    }
    assert_string_equal(json_string_value(json_object_get(result, "payload")), payload_hex);
    json_decref(reply);
}

/* dht.get from every running node at once (a lookup that meets dead nodes
 * waits out their timeouts; in parallel the test pays that once). */
static void expect_record_everywhere(const char *owner, const char *payload_hex)
{
    int fds[NODES];
    char line[512];
    int len = snprintf(line, sizeof(line),
                       "{\"jsonrpc\":\"2.0\",\"method\":\"dht.get\",\"params\":{\"kind\":"
                       "\"note\",\"owner\":\"%s\"},\"id\":1}\n",
                       owner);
    for (int i = 0; i < NODES; i++) {
        fds[i] = -1;
        if (nodes[i].pid <= 0)
            continue;
        fds[i] = harness_connect(nodes[i].sock);
        assert_true(fds[i] >= 0);
        assert_int_equal(send(fds[i], line, (size_t)len, MSG_NOSIGNAL), len);
    }
    for (int i = 0; i < NODES; i++) {
        if (fds[i] < 0)
            continue;
        char *reply = harness_exchange(fds[i], "", 0);
        close(fds[i]);
        if (reply == NULL)
            fail_msg("no answer to dht.get from node %d", i);
        json_t *j = json_loads(reply, 0, NULL);
        json_t *result = json_object_get(j, "result");
        if (result == NULL)
            fail_msg("dht.get from node %d failed: %s", i, reply);
        assert_string_equal(json_string_value(json_object_get(result, "payload")), payload_hex);
        json_decref(j);
        free(reply);
    }
}

static int teardown(void **state)
{
    harness_kill_all(state);
    for (int i = 0; i < NODES; i++)
        node_cleanup(&nodes[i]);
    unlink(config_path);
    return 0;
}

static void test_twenty_nodes(void **state)
{
    (void)state;
    /* Every node shares 127.0.0.1: lift the per-IP limits meant for the internet. */
    snprintf(config_path, sizeof(config_path), "/tmp/mp-overlay-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    assert_non_null(f);
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\n", f);
    fclose(f);

    for (int i = 0; i < NODES; i++)
        node_init(&nodes[i]);
    node_start(&nodes[0], ARGS("--config", config_path));
    char bootstrap[160];
    node_bootstrap_entry(&nodes[0], bootstrap, sizeof(bootstrap));
    assert_true(strchr(bootstrap, '@') != NULL);
    for (int i = 1; i < NODES; i++)
        node_start(&nodes[i], ARGS("--config", config_path, "--bootstrap", bootstrap));
    wait_formed(FORM_MIN_PEERS);

    /* Node 3 publishes; every other node finds it. */
    const char *payload = "6d65727061746920726f636b73"; /* "merpati rocks" */
    char params[256];
    snprintf(params, sizeof(params), "{\"payload\":\"%s\"}", payload);
    json_t *reply = node_call(&nodes[3], "dht.put", params);
    json_t *result = json_object_get(reply, "result");
    assert_non_null(result);
    assert_true(json_integer_value(json_object_get(result, "stored")) >= 1);
    json_decref(reply);
    for (int i = 0; i < NODES; i++)
        expect_record(&nodes[i], nodes[3].address, payload);

    /* A record nobody published is reported missing, not invented. */
    snprintf(params, sizeof(params), "{\"kind\":\"note\",\"owner\":\"%s\"}", nodes[5].address);
    reply = node_call(&nodes[7], "dht.get", params);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(reply, "error"), "code")),
                     -32000);
    json_decref(reply);

    /* Kill 5 nodes without notice (not the publisher); the rest still find it. */
    for (int i = NODES - KILLED; i < NODES; i++) {
        kill(nodes[i].pid, SIGKILL);
        assert_int_equal(harness_wait(nodes[i].pid, STOP_TIMEOUT_MS), 128 + SIGKILL);
        nodes[i].pid = 0;
    }
    expect_record_everywhere(nodes[3].address, payload);

    /* A node restarted with no bootstrap entry rejoins from its saved table. */
    node_stop(&nodes[1]);
    node_start(&nodes[1], ARGS("--config", config_path));
    char *log = harness_read_file(nodes[1].log);
    assert_contains(log, "saved peers");
    free(log);
    wait_formed(1);
    expect_record(&nodes[1], nodes[3].address, payload);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_twenty_nodes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
