#include "tests/node/node_util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Arguments of one `merpati run` line, extra ones included. */
#define NODE_ARGS_MAX 30

void assert_contains(const char *text, const char *want)
{
    if (text == NULL || strstr(text, want) == NULL)
        fail_msg("\"%s\" not found in:\n%s", want, text != NULL ? text : "(null)");
}

void node_init(struct node *n)
{
    memset(n, 0, sizeof(*n));
    harness_tempdir(n->dir, sizeof(n->dir));
    assert_true(n->dir[0] != '\0');
    snprintf(n->sock, sizeof(n->sock), "%s/control.sock", n->dir);
    snprintf(n->log, sizeof(n->log), "%s.log", n->dir);
    struct run_result r = harness_run(NULL, ARGS("init", "--data-dir", n->dir));
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "mp1", 3) == 0);
    snprintf(n->address, sizeof(n->address), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    harness_result_free(&r);
}

void node_start(struct node *n, const char *const *extra)
{
    const char *args[NODE_ARGS_MAX] = {"--data-dir", n->dir,        "run",         "--port",
                                       "0",          "--listen",    "127.0.0.1",   "--log-level",
                                       "debug"};
    size_t count = 9;
    for (; extra != NULL && *extra != NULL && count + 1 < NODE_ARGS_MAX; extra++)
        args[count++] = *extra;
    args[count] = NULL;

    unlink(n->log);
    n->pid = harness_spawn(n->log, args);
    assert_true(n->pid > 0);
    if (!harness_wait_socket(n->sock, START_TIMEOUT_MS) ||
        !harness_wait_log(n->log, " ready", START_TIMEOUT_MS)) {
        char *log = harness_read_file(n->log);
        fail_msg("node did not come up; log:\n%s", log);
    }
}

void node_stop(struct node *n)
{
    assert_true(n->pid > 0);
    kill(n->pid, SIGTERM);
    assert_int_equal(harness_wait(n->pid, STOP_TIMEOUT_MS), 0);
    n->pid = 0;
}

void node_cleanup(struct node *n)
{
    if (n->pid > 0) {
        kill(n->pid, SIGKILL);
        harness_wait(n->pid, STOP_TIMEOUT_MS);
        n->pid = 0;
    }
    harness_rmtree(n->dir);
    unlink(n->log);
}

json_t *status_json(struct node *n)
{
    struct run_result r = harness_run(NULL, ARGS("status", "--json", "--data-dir", n->dir));
    assert_int_equal(r.status, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    harness_result_free(&r);
    return j;
}

void node_bootstrap_entry(struct node *n, char *out, size_t size)
{
    json_t *s = status_json(n);
    const char *entry = json_string_value(json_object_get(json_object_get(s, "dht"), "bootstrap"));
    assert_non_null(entry);
    snprintf(out, size, "%s", entry);
    json_decref(s);
}

json_t *node_call(struct node *n, const char *method, const char *params_json)
{
    char line[4096];
    int len = snprintf(line, sizeof(line),
                       "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s,\"id\":1}\n", method,
                       params_json);
    assert_true(len > 0 && (size_t)len < sizeof(line));
    int fd = harness_connect(n->sock);
    assert_true(fd >= 0);
    char *reply = harness_exchange(fd, line, (size_t)len);
    close(fd);
    if (reply == NULL)
        fail_msg("no reply to %s from %s", method, n->dir);
    json_t *j = json_loads(reply, 0, NULL);
    if (j == NULL)
        fail_msg("reply to %s is not JSON: %s", method, reply);
    free(reply);
    return j;
}

json_t *node_inbox_all(struct node *n, unsigned limit)
{
    json_t *all = json_array();
    long long since = 0;
    for (;;) {
        char params[96];
        snprintf(params, sizeof(params), "{\"limit\":%u,\"since\":%lld}", limit, since);
        json_t *reply = node_call(n, "inbox.list", params);
        json_t *result = json_object_get(reply, "result");
        json_t *list = json_object_get(result, "messages");
        assert_non_null(list);
        assert_true(json_array_size(list) <= limit);
        json_array_extend(all, list);
        long long cursor = (long long)json_integer_value(json_object_get(result, "cursor"));
        json_decref(reply);
        if (cursor == since)
            return all;
        since = cursor;
    }
}
