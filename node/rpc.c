#include "node/rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/jread.h"

void rpc_error_set(struct rpc_error *err_out, json_t *id, enum rpc_code code, const char *fmt, ...)
{
    va_list ap;

    err_out->code = code;
    err_out->id = id != NULL ? json_incref(id) : json_null();
    va_start(ap, fmt);
    vsnprintf(err_out->message, sizeof(err_out->message), fmt, ap);
    va_end(ap);
}

void rpc_error_clear(struct rpc_error *err)
{
    json_decref(err->id);
    err->id = NULL;
}

void rpc_request_clear(struct rpc_request *req)
{
    json_decref(req->id);
    json_decref(req->params);
    req->id = NULL;
    req->params = NULL;
}

bool rpc_parse(const char *line, size_t len, struct rpc_request *req_out, struct rpc_error *err_out)
{
    struct jread_error jerr;
    json_t *root = NULL;
    json_t *id = NULL;
    bool ok = false;

    memset(req_out, 0, sizeof(*req_out));
    if (len > RPC_LINE_MAX) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_REQUEST, "request longer than %d bytes",
                      RPC_LINE_MAX);
        return false;
    }
    /* jread refuses "\u0000", so strings are C strings. */
    root = jread(line, len, RPC_DEPTH_MAX, &jerr);
    if (root == NULL) {
        rpc_error_set(err_out, NULL, RPC_CODE_PARSE_ERROR, "parse error at byte %zu: %s",
                      jerr.offset, jerr.reason);
        return false;
    }
    if (json_is_array(root)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_REQUEST, "batch requests are not supported");
        goto cleanup;
    }
    if (!json_is_object(root)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_REQUEST, "a request must be a JSON object");
        goto cleanup;
    }
    id = json_object_get(root, "id");
    if (id != NULL && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_REQUEST,
                      "id must be a string, integer or null");
        goto cleanup;
    }
    const char *version = json_string_value(json_object_get(root, "jsonrpc"));
    if (version == NULL || strcmp(version, "2.0") != 0) {
        rpc_error_set(err_out, id, RPC_CODE_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
        goto cleanup;
    }
    json_t *method = json_object_get(root, "method");
    if (!json_is_string(method) || json_string_length(method) == 0 ||
        json_string_length(method) > RPC_METHOD_MAX) {
        rpc_error_set(err_out, id, RPC_CODE_INVALID_REQUEST,
                      "\"method\" must be a non-empty string of at most %d bytes", RPC_METHOD_MAX);
        goto cleanup;
    }
    json_t *params = json_object_get(root, "params");
    if (params != NULL && !json_is_object(params)) {
        rpc_error_set(err_out, id, RPC_CODE_INVALID_PARAMS, "\"params\" must be an object");
        goto cleanup;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "jsonrpc") && strcmp(key, "method") && strcmp(key, "params") &&
            strcmp(key, "id")) {
            rpc_error_set(err_out, id, RPC_CODE_INVALID_REQUEST, "unknown member \"%.40s\"", key);
            goto cleanup;
        }
    }
    snprintf(req_out->method, sizeof(req_out->method), "%s", json_string_value(method));
    req_out->id = id != NULL ? json_incref(id) : NULL;
    req_out->params = params != NULL ? json_incref(params) : json_object();
    ok = req_out->params != NULL;
    if (!ok) {
        rpc_request_clear(req_out);
        rpc_error_set(err_out, id, RPC_CODE_INTERNAL_ERROR, "out of memory");
    }
cleanup:
    json_decref(root);
    return ok;
}

static char *dump_line(json_t *msg, size_t *len_out)
{
    if (msg == NULL)
        return NULL;
    char *text = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(msg);
    if (text == NULL)
        return NULL;
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    *len_out = len + 1;
    return line;
}

char *rpc_result_line(json_t *id, json_t *result, size_t *len_out)
{
    json_t *msg = json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "result",
                            result != NULL ? result : json_null(), "id",
                            id != NULL ? id : json_null());
    return dump_line(msg, len_out);
}

char *rpc_error_line(const struct rpc_error *err, json_t *data, size_t *len_out)
{
    json_t *error = json_pack("{s:i, s:s}", "code", (int)err->code, "message", err->message);
    if (error != NULL && data != NULL)
        json_object_set_new(error, "data", data);
    else
        json_decref(data);
    json_t *msg = json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "error",
                            error != NULL ? error : json_null(), "id",
                            err->id != NULL ? err->id : json_null());
    return dump_line(msg, len_out);
}

json_t *rpc_err_data(enum mp_err err)
{
    return json_pack("{s:i, s:s}", "code", (int)err, "name", mp_errname(err));
}

char *rpc_notification_line(const char *method, json_t *params, size_t *len_out)
{
    json_t *msg = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                            params != NULL ? params : json_object());
    return dump_line(msg, len_out);
}

char *rpc_request_line(const char *method, json_t *params, long id, size_t *len_out)
{
    json_t *msg = json_pack("{s:s, s:s, s:o, s:I}", "jsonrpc", "2.0", "method", method, "params",
                            params != NULL ? params : json_object(), "id", (json_int_t)id);
    return dump_line(msg, len_out);
}
