/* Unit tests for node/rpc.c: every way a control request can be wrong gets
 * the JSON-RPC error a client expects, and good requests parse exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/rpc.h"

static void expect_error(const char *line, enum rpc_code code)
{
    struct rpc_request req;
    struct rpc_error err;
    if (rpc_parse(line, strlen(line), &req, &err)) {
        rpc_request_clear(&req);
        fail_msg("accepted: %s", line);
    }
    if (err.code != code)
        fail_msg("%s: got %d (%s), want %d", line, err.code, err.message, code);
    assert_true(strlen(err.message) > 0);
    rpc_error_clear(&err);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("garbage", RPC_CODE_PARSE_ERROR);
    expect_error("{\"jsonrpc\":\"2.0\"", RPC_CODE_PARSE_ERROR);
    expect_error("", RPC_CODE_PARSE_ERROR);
    expect_error("[1,2]", RPC_CODE_INVALID_REQUEST);
    expect_error("42", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"method\":\"status\",\"id\":1}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"1.0\",\"method\":\"status\",\"id\":1}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"id\":1}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":1}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":1}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"id\":{}}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"id\":1.5}", RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"id\":1,\"extra\":0}",
                 RPC_CODE_INVALID_REQUEST);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"params\":[1],\"id\":1}",
                 RPC_CODE_INVALID_PARAMS);
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"params\":3,\"id\":1}",
                 RPC_CODE_INVALID_PARAMS);
    expect_error("{\"jsonrpc\":\"2.0\",\"jsonrpc\":\"2.0\",\"method\":\"s\",\"id\":1}",
                 RPC_CODE_PARSE_ERROR); /* duplicate keys */
    expect_error("{\"jsonrpc\":\"2.0\",\"method\":\"a\\u0000b\",\"id\":1}", RPC_CODE_PARSE_ERROR);

    char method[RPC_METHOD_MAX + 2];
    memset(method, 'm', sizeof(method) - 1);
    method[sizeof(method) - 1] = '\0';
    char line[256];
    snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":1}", method);
    expect_error(line, RPC_CODE_INVALID_REQUEST);
}

static void test_depth_and_size_caps(void **state)
{
    (void)state;
    /* Well-formed JSON nested `levels` deep in all (the request object, params, arrays). */
    char deep[300];
    struct rpc_request req;
    struct rpc_error err;
    for (int levels = 32; levels <= 33; levels++) {
        size_t n = (size_t)snprintf(deep, sizeof(deep),
                                    "{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"params\":{\"a\":");
        for (int i = 0; i < levels - 2; i++)
            deep[n++] = '[';
        for (int i = 0; i < levels - 2; i++)
            deep[n++] = ']';
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "},\"id\":1}");
        bool ok = rpc_parse(deep, n, &req, &err);
        if (levels == 32) {
            if (!ok)
                fail_msg("32 levels refused: %s", err.message);
            rpc_request_clear(&req);
        } else {
            assert_false(ok);
            assert_int_equal(err.code, RPC_CODE_PARSE_ERROR);
            assert_non_null(strstr(err.message, "nested deeper"));
            rpc_error_clear(&err);
        }
    }

    size_t big_len = RPC_LINE_MAX + 1;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, ' ', big_len);
    big[big_len] = '\0';
    expect_error(big, RPC_CODE_INVALID_REQUEST);
    free(big);
}

static void test_error_keeps_id(void **state)
{
    (void)state;
    struct rpc_request req;
    struct rpc_error err;
    const char *line = "{\"jsonrpc\":\"2.0\",\"method\":\"s\",\"params\":[],\"id\":\"abc\"}";
    assert_false(rpc_parse(line, strlen(line), &req, &err));
    assert_string_equal(json_string_value(err.id), "abc");
    size_t len = 0;
    char *out = rpc_error_line(&err, rpc_err_data(MP_ERR_INVAL), &len);
    assert_non_null(out);
    assert_int_equal(out[len - 1], '\n');
    json_t *reply = json_loadb(out, len, 0, NULL);
    assert_non_null(reply);
    assert_string_equal(json_string_value(json_object_get(reply, "jsonrpc")), "2.0");
    assert_string_equal(json_string_value(json_object_get(reply, "id")), "abc");
    json_t *error = json_object_get(reply, "error");
    assert_int_equal(json_integer_value(json_object_get(error, "code")), RPC_CODE_INVALID_PARAMS);
    json_t *data = json_object_get(error, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "code")), MP_ERR_INVAL);
    assert_string_equal(json_string_value(json_object_get(data, "name")), "INVAL");
    json_decref(reply);
    free(out);
    rpc_error_clear(&err);
}

static void test_good_requests(void **state)
{
    (void)state;
    struct rpc_request req;
    struct rpc_error err;
    const char *line = "{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":7}";
    assert_true(rpc_parse(line, strlen(line), &req, &err));
    assert_string_equal(req.method, "status");
    assert_int_equal(json_integer_value(req.id), 7);
    assert_true(json_is_object(req.params));
    assert_int_equal(json_object_size(req.params), 0);
    rpc_request_clear(&req);

    line = "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"x\"}}";
    assert_true(rpc_parse(line, strlen(line), &req, &err));
    assert_null(req.id); /* a notification */
    assert_string_equal(json_string_value(json_object_get(req.params, "to")), "x");
    rpc_request_clear(&req);

    size_t len = 0;
    char *out = rpc_request_line("status", NULL, 3, &len);
    assert_non_null(out);
    assert_true(rpc_parse(out, len - 1, &req, &err));
    assert_string_equal(req.method, "status");
    assert_int_equal(json_integer_value(req.id), 3);
    rpc_request_clear(&req);
    free(out);

    json_t *id = json_string("q");
    out = rpc_result_line(id, json_pack("{s:i}", "a", 1), &len);
    assert_string_equal(out, "{\"jsonrpc\":\"2.0\",\"result\":{\"a\":1},\"id\":\"q\"}\n");
    free(out);
    json_decref(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_depth_and_size_caps),
        cmocka_unit_test(test_error_keeps_id),
        cmocka_unit_test(test_good_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
