/*
 * rpc: JSON-RPC 2.0 messages of the control API, one JSON object a line.
 *
 * Parsing and formatting only, no sockets: control.c feeds it lines and
 * writes what it returns. A request is checked completely here (version,
 * method, params, id) so handlers only ever see well-formed input.
 * Batches (JSON arrays) are refused with -32600. The API itself is described
 * in docs/PROTOCOL.md, "Control API".
 */
#ifndef MP_NODE_RPC_H
#define MP_NODE_RPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

/* Longest request line accepted, newline excluded: a `send` of the longest
 * text (MSG_TEXT_MAX) fits however JSON escapes it (6 bytes a byte at
 * worst), and a `send.batch` of hundreds of ordinary ones. A connection's
 * line buffer grows to it only while such a line arrives. */
#define RPC_LINE_MAX (1024 * 1024)
/* Deepest nesting of arrays and objects in a request (deeper is a parse
 * error) and in a reply the client reads. */
#define RPC_DEPTH_MAX 32
/* Longest method name. */
#define RPC_METHOD_MAX 64

/* Error codes of JSON-RPC 2.0, and ours (-32000: the request was valid but
 * failed; "data" then holds {"code": <enum mp_err>, "name": "..."}). */
enum rpc_code {
    RPC_CODE_PARSE_ERROR = -32700,
    RPC_CODE_INVALID_REQUEST = -32600,
    RPC_CODE_METHOD_NOT_FOUND = -32601,
    RPC_CODE_INVALID_PARAMS = -32602,
    RPC_CODE_INTERNAL_ERROR = -32603,
    RPC_CODE_FAILED = -32000,
};

struct rpc_request {
    json_t *id;     /* string, number or null; NULL for a notification (no reply) */
    char method[RPC_METHOD_MAX + 1];
    json_t *params; /* an object (empty when absent); owned */
};

struct rpc_error {
    enum rpc_code code;
    char message[512];
    json_t *id; /* the id to answer with (json null if unknown); owned */
};

/* Parse one line (without its newline). On success fills req_out and returns
 * true; the caller calls rpc_request_clear. On failure fills err_out (clear it
 * with rpc_error_clear) and returns false. Positional (array) params are
 * refused: every method takes named params. */
bool rpc_parse(const char *line, size_t len, struct rpc_request *req_out,
               struct rpc_error *err_out);

void rpc_request_clear(struct rpc_request *req);
void rpc_error_clear(struct rpc_error *err);

/* Set err_out for a failure with a message (printf-style). id is borrowed. */
void rpc_error_set(struct rpc_error *err_out, json_t *id, enum rpc_code code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* Response lines, newline-terminated, malloc'd (caller frees); NULL on
 * allocation failure. result is stolen (json_decref'd). data may be NULL and is
 * stolen too. */
char *rpc_result_line(json_t *id, json_t *result, size_t *len_out);
char *rpc_error_line(const struct rpc_error *err, json_t *data, size_t *len_out);

/* {"code": err, "name": "..."}: the data member for RPC_CODE_FAILED errors. */
json_t *rpc_err_data(enum mp_err err);

/* A notification line (no id) for method with params (stolen). */
char *rpc_notification_line(const char *method, json_t *params, size_t *len_out);

/* A request line for method with params (stolen; may be NULL) and a numeric id. */
char *rpc_request_line(const char *method, json_t *params, long id, size_t *len_out);

#endif
