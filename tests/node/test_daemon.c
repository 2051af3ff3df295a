/*
 * Node tests for the foundation: init -> run -> status over the socket ->
 * stop, with the real merpati binary in temporary data dirs. Each test checks
 * what a user would see: exit codes, the one-line errors, the answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/node/node_util.h"

static void test_init_run_status_stop(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);

    struct stat st;
    char path[160];
    snprintf(path, sizeof(path), "%s/identity.key", n.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/merpati.conf", n.dir);
    assert_int_equal(stat(path, &st), 0);
    char *conf = harness_read_file(path);
    assert_contains(conf, "port = 7700;");
    assert_contains(conf, "# ");
    free(conf);

    /* A second init refuses, and says where. */
    struct run_result r = harness_run(NULL, ARGS("init", "--data-dir", n.dir));
    assert_int_equal(r.status, 73);
    assert_contains(r.err, "already initialized at ");
    assert_contains(r.err, n.dir);
    harness_result_free(&r);

    node_start(&n, NULL);
    char *log = harness_read_file(n.log);
    assert_contains(log, "ready");
    assert_contains(log, "control socket at ");
    assert_contains(log, "UDP port ");
    free(log);

    assert_int_equal(stat(n.sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    json_t *s = status_json(&n);
    assert_string_equal(json_string_value(json_object_get(s, "address")), n.address);
    assert_string_equal(json_string_value(json_object_get(s, "data_dir")), n.dir);
    assert_int_equal(json_integer_value(json_object_get(s, "pid")), n.pid);
    json_t *ports = json_object_get(s, "ports");
    assert_true(json_integer_value(json_object_get(ports, "udp")) > 0);
    assert_int_equal(json_integer_value(json_object_get(ports, "udp")),
                     json_integer_value(json_object_get(ports, "tcp")));
    json_decref(s);

    /* Human output, flags after the command, and the env var for the dir. */
    char env_dir[128];
    snprintf(env_dir, sizeof(env_dir), "MERPATI_DATA_DIR=%s", n.dir);
    r = harness_run((const char *const[]){env_dir, NULL}, ARGS("status"));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "address         mp1");
    assert_contains(r.out, n.address);
    harness_result_free(&r);
    r = harness_run(NULL, ARGS("id", "--data-dir", n.dir));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, n.address);
    harness_result_free(&r);

    r = harness_run(NULL, ARGS("--data-dir", n.dir, "stop"));
    assert_int_equal(r.status, 0);
    harness_result_free(&r);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;
    log = harness_read_file(n.log);
    assert_contains(log, "stopped cleanly");
    free(log);
    assert_int_not_equal(stat(n.sock, &st), 0); /* the socket file is gone */

    /* Restarted, the node has the same identity. */
    node_start(&n, NULL);
    r = harness_run(NULL, ARGS("id", "--data-dir", n.dir));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, n.address);
    harness_result_free(&r);

    /* SIGTERM stops it cleanly too. */
    kill(n.pid, SIGTERM);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;
    node_cleanup(&n);
}

static void test_second_run_refused(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);
    node_start(&n, NULL);

    struct run_result r = harness_run(NULL, ARGS("run", "--data-dir", n.dir, "--port", "0"));
    assert_int_equal(r.status, 75);
    char want[160];
    snprintf(want, sizeof(want), "data dir %s is in use by another merpati (pid %ld)", n.dir,
             (long)n.pid);
    assert_contains(r.err, want);
    harness_result_free(&r);

    /* The first one is unharmed. */
    json_t *s = status_json(&n);
    assert_string_equal(json_string_value(json_object_get(s, "address")), n.address);
    json_decref(s);

    /* SIGINT (Ctrl-C) is a clean stop. */
    kill(n.pid, SIGINT);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;
    node_cleanup(&n);
}

static int rpc_code(const char *reply)
{
    json_t *j = json_loads(reply != NULL ? reply : "", 0, NULL);
    if (j == NULL)
        fail_msg("reply is not JSON: %s", reply != NULL ? reply : "(none)");
    int code = (int)json_integer_value(json_object_get(json_object_get(j, "error"), "code"));
    json_decref(j);
    return code;
}

static void test_control_socket_survives_bad_input(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);
    node_start(&n, NULL);

    int fd = harness_connect(n.sock);
    assert_true(fd >= 0);
    char *reply = harness_exchange(fd, "garbage\n", 8);
    assert_int_equal(rpc_code(reply), -32700);
    free(reply);

    const char *unknown = "{\"jsonrpc\":\"2.0\",\"method\":\"fly\",\"id\":1}\n";
    reply = harness_exchange(fd, unknown, strlen(unknown));
    assert_int_equal(rpc_code(reply), -32601);
    assert_contains(reply, "\"id\":1");
    free(reply);

    const char *bad_params =
        "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"params\":[1],\"id\":2}\n";
    reply = harness_exchange(fd, bad_params, strlen(bad_params));
    assert_int_equal(rpc_code(reply), -32602);
    free(reply);

    /* A line past RPC_LINE_MAX (1 MiB): refused, skipped to its newline,
     * connection kept. */
    size_t big_len = 1024 * 1024 + 64 * 1024;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'x', big_len);
    big[big_len] = '\n';
    reply = harness_exchange(fd, big, big_len + 1);
    free(big);
    assert_int_equal(rpc_code(reply), -32600);
    assert_contains(reply, "longer than");
    free(reply);

    const char *status = "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":\"s\"}\n";
    reply = harness_exchange(fd, status, strlen(status));
    assert_non_null(reply);
    assert_contains(reply, n.address);
    assert_contains(reply, "\"id\":\"s\"");
    free(reply);

    /* Binary junk and a peer that hangs up mid-line. */
    int fd2 = harness_connect(n.sock);
    assert_true(fd2 >= 0);
    const char junk[] = {'\x00', '\xff', '{', '"', '\x01', '\n'};
    reply = harness_exchange(fd2, junk, sizeof(junk));
    assert_int_equal(rpc_code(reply), -32700);
    free(reply);
    (void)!write(fd2, "{\"jsonrpc\":", 11);
    close(fd2);

    /* Still serving, on the old connection and on a new one. */
    reply = harness_exchange(fd, status, strlen(status));
    assert_non_null(reply);
    assert_contains(reply, n.address);
    free(reply);
    close(fd);
    json_t *s = status_json(&n);
    json_decref(s);

    kill(n.pid, SIGTERM);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;
    node_cleanup(&n);
}

static void test_cli_errors(void **state)
{
    (void)state;
    char dir[64];
    harness_tempdir(dir, sizeof(dir));

    /* No daemon. */
    struct run_result r = harness_run(NULL, ARGS("status", "--data-dir", dir));
    assert_int_equal(r.status, 69);
    assert_contains(r.err, "merpati: error: daemon not running (no socket at ");
    assert_contains(r.err, "hint: ");
    harness_result_free(&r);

    /* Not initialized. */
    r = harness_run(NULL, ARGS("run", "--data-dir", dir, "--port", "0"));
    assert_int_equal(r.status, 66);
    assert_contains(r.err, "not initialized at ");
    harness_result_free(&r);

    /* Usage errors. */
    r = harness_run(NULL, ARGS("fly", "--data-dir", dir));
    assert_int_equal(r.status, 64);
    assert_contains(r.err, "unknown command \"fly\"");
    assert_contains(r.err, "usage: merpati");
    harness_result_free(&r);
    r = harness_run(NULL, ARGS("status", "--data-dir", dir, "--frobnicate"));
    assert_int_equal(r.status, 64);
    assert_contains(r.err, "--frobnicate");
    assert_contains(r.err, "hint: `merpati help`"); /* a line and a hint, not the usage */
    assert_true(strstr(r.err, "Commands:") == NULL);
    harness_result_free(&r);
    r = harness_run(NULL, ARGS("run", "--data-dir", dir, "--port", "99999"));
    assert_int_equal(r.status, 64);
    harness_result_free(&r);
    r = harness_run(NULL, ARGS("--data-dir"));
    assert_int_equal(r.status, 64);
    harness_result_free(&r);
    r = harness_run(NULL, ARGS("--help"));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "Commands:");
    harness_result_free(&r);

    /* A broken config file: file:line: message, exit 78. */
    char conf[160];
    snprintf(conf, sizeof(conf), "%s/broken.conf", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs("# ok\nport = = 5;\n", f);
    fclose(f);
    r = harness_run(NULL, ARGS("status", "--data-dir", dir, "--config", conf));
    assert_int_equal(r.status, 78);
    char want[200];
    snprintf(want, sizeof(want), "%s:2: ", conf);
    assert_contains(r.err, want);
    harness_result_free(&r);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("port = 123456;\n", f);
    fclose(f);
    r = harness_run(NULL, ARGS("run", "--data-dir", dir, "--config", conf));
    assert_int_equal(r.status, 78);
    snprintf(want, sizeof(want), "%s:1: port must be", conf);
    assert_contains(r.err, want);
    harness_result_free(&r);

    /* A named config that does not exist is an error too. */
    snprintf(conf, sizeof(conf), "%s/missing.conf", dir);
    r = harness_run(NULL, ARGS("status", "--data-dir", dir, "--config", conf));
    assert_int_equal(r.status, 78);
    assert_contains(r.err, "missing.conf");
    harness_result_free(&r);

    harness_rmtree(dir);
}

static void test_key_file_mode_enforced(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);
    char path[160];
    snprintf(path, sizeof(path), "%s/identity.key", n.dir);
    assert_int_equal(chmod(path, 0644), 0);
    struct run_result r = harness_run(NULL, ARGS("run", "--data-dir", n.dir, "--port", "0"));
    assert_int_equal(r.status, 77); /* EX_NOPERM */
    assert_contains(r.err, "chmod 600");
    harness_result_free(&r);
    node_cleanup(&n);
}


static void send_all_or_fail(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void test_params_and_notifications(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);
    node_start(&n, NULL);
    int fd = harness_connect(n.sock);
    assert_true(fd >= 0);

    const char *bogus =
        "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"params\":{\"bogus\":1},\"id\":5}\n";
    char *reply = harness_exchange(fd, bogus, strlen(bogus));
    assert_int_equal(rpc_code(reply), -32602);
    assert_contains(reply, "bogus");
    free(reply);

    /* A notification gets no reply: the next line read answers the request after it. */
    const char *pair = "{\"jsonrpc\":\"2.0\",\"method\":\"id\"}\n"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"fly\"}\n"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"id\",\"id\":\"after\"}\n";
    reply = harness_exchange(fd, pair, strlen(pair));
    assert_non_null(reply);
    assert_contains(reply, "\"id\":\"after\"");
    free(reply);

    /* Requests split across writes and ending in CRLF. */
    send_all_or_fail(fd, "{\"jsonrpc\":\"2.0\",", 17);
    reply = harness_exchange(fd, "\"method\":\"id\",\"id\":9}\r\n", 24);
    assert_non_null(reply);
    assert_contains(reply, n.address);
    assert_contains(reply, "\"id\":9");
    free(reply);
    close(fd);

    kill(n.pid, SIGTERM);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;
    node_cleanup(&n);
}

static void test_connection_caps(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);
    node_start(&n, NULL);

    /* More connections than the cap: the extra ones are closed, the rest served. */
    enum { MANY = 70 };
    int fds[MANY];
    for (int i = 0; i < MANY; i++) {
        fds[i] = harness_connect(n.sock);
        assert_true(fds[i] >= 0);
    }
    const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"id\",\"id\":1}\n";
    int served = 0;
    for (int i = 0; i < MANY; i++) {
        char *reply = harness_exchange(fds[i], req, strlen(req));
        served += reply != NULL;
        free(reply);
    }
    /* The cap holds; a probe connection of node_start may still occupy a slot
     * while its close is processed, so one fewer may be served. */
    assert_true(served <= 64);
    assert_true(served >= 63);
    for (int i = 0; i < MANY; i++)
        close(fds[i]);

    /* A client that sends without ever reading: cut off at 1 MiB of queued
     * replies, while everyone else is still served. */
    /* The 70 closes above may still be in flight in the daemon: connect until
     * a connection is served (not refused at the cap) before the flood. */
    int hog = -1;
    for (int tries = 0; tries < 100 && hog < 0; tries++) {
        hog = harness_connect(n.sock);
        assert_true(hog >= 0);
        char *first = harness_exchange(hog, req, strlen(req));
        if (first == NULL) {
            close(hog);
            hog = -1;
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
            nanosleep(&pause, NULL);
        }
        free(first);
    }
    assert_true(hog >= 0);
    size_t chunk_len = 0;
    char *chunk = malloc(64 * 1024);
    assert_non_null(chunk);
    while (chunk_len + strlen(req) < 64 * 1024) {
        memcpy(chunk + chunk_len, req, strlen(req));
        chunk_len += strlen(req);
    }
    bool cut_off = false;
    for (int i = 0; i < 2000 && !cut_off; i++) {
        struct pollfd p = {.fd = hog, .events = POLLOUT};
        if (poll(&p, 1, 2000) <= 0)
            continue; /* the daemon must read on; try again */
        if (p.revents & (POLLERR | POLLHUP)) {
            cut_off = true;
            break;
        }
        ssize_t w = send(hog, chunk, chunk_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        cut_off = w < 0 && errno != EAGAIN;
    }
    free(chunk);
    close(hog);
    assert_true(cut_off);
    char *log = harness_read_file(n.log);
    assert_contains(log, "does not read its replies");
    free(log);
    json_t *s = status_json(&n);
    json_decref(s);

    kill(n.pid, SIGTERM);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;
    node_cleanup(&n);
}

static void test_restart_after_kill(void **state)
{
    (void)state;
    struct node n;
    node_init(&n);
    node_start(&n, NULL);

    /* kill -9 leaves a stale socket and lock file behind; the next run takes over. */
    kill(n.pid, SIGKILL);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 128 + SIGKILL);
    n.pid = 0;
    struct stat st;
    assert_int_equal(stat(n.sock, &st), 0);
    node_start(&n, NULL);
    json_t *s = status_json(&n);
    assert_string_equal(json_string_value(json_object_get(s, "address")), n.address);
    assert_int_equal(json_integer_value(json_object_get(s, "pid")), n.pid);
    json_decref(s);

    /* --json on init, id and stop. */
    struct run_result r = harness_run(NULL, ARGS("id", "--json", "--data-dir", n.dir));
    assert_int_equal(r.status, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "address")), n.address);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "public_key"))), 64);
    json_decref(j);
    harness_result_free(&r);
    r = harness_run(NULL, ARGS("stop", "--json", "--data-dir", n.dir));
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "\"stopping\":true");
    harness_result_free(&r);
    assert_int_equal(harness_wait(n.pid, STOP_TIMEOUT_MS), 0);
    n.pid = 0;

    /* A socket path taken by a live node is refused, not stolen. */
    struct node other;
    node_init(&other);
    node_start(&other, NULL);
    char conf[160], text[200];
    snprintf(conf, sizeof(conf), "%s/shared.conf", n.dir);
    snprintf(text, sizeof(text), "control_socket = \"%s\";\n", other.sock);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    r = harness_run(NULL, ARGS("run", "--data-dir", n.dir, "--config", conf, "--port", "0"));
    assert_int_equal(r.status, 73);
    assert_contains(r.err, "another merpati uses that socket");
    harness_result_free(&r);
    s = status_json(&other);
    assert_string_equal(json_string_value(json_object_get(s, "address")), other.address);
    json_decref(s);
    kill(other.pid, SIGTERM);
    assert_int_equal(harness_wait(other.pid, STOP_TIMEOUT_MS), 0);
    other.pid = 0;
    node_cleanup(&other);
    node_cleanup(&n);
}

static void test_init_with_new_config_path(void **state)
{
    (void)state;
    char dir[64], conf[128];
    harness_tempdir(dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/elsewhere.conf", dir);
    char data[96];
    snprintf(data, sizeof(data), "%s/data", dir);
    struct run_result r =
        harness_run(NULL, ARGS("init", "--json", "--data-dir", data, "--config", conf));
    assert_int_equal(r.status, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_true(strncmp(json_string_value(json_object_get(j, "address")), "mp1", 3) == 0);
    assert_string_equal(json_string_value(json_object_get(j, "config")), conf);
    json_decref(j);
    harness_result_free(&r);
    struct stat st;
    assert_int_equal(stat(conf, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    harness_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_init_run_status_stop, harness_kill_all),
        cmocka_unit_test_teardown(test_second_run_refused, harness_kill_all),
        cmocka_unit_test_teardown(test_control_socket_survives_bad_input, harness_kill_all),
        cmocka_unit_test_teardown(test_cli_errors, harness_kill_all),
        cmocka_unit_test_teardown(test_key_file_mode_enforced, harness_kill_all),
        cmocka_unit_test_teardown(test_params_and_notifications, harness_kill_all),
        cmocka_unit_test_teardown(test_connection_caps, harness_kill_all),
        cmocka_unit_test_teardown(test_restart_after_kill, harness_kill_all),
        cmocka_unit_test_teardown(test_init_with_new_config_path, harness_kill_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
