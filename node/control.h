/*
 * control: the control API server, JSON-RPC 2.0 over a Unix socket.
 *
 * Listens on a socket file created with mode 0600, reads newline-terminated
 * requests from up to CONTROL_CLIENTS_MAX connections, hands each well-formed
 * request to the method table and writes the reply. A bad line gets a JSON-RPC
 * error and the connection stays open; a line over RPC_LINE_MAX is answered
 * with -32600 and skipped up to its newline. A client that stops reading is
 * disconnected once CONTROL_OUTPUT_MAX bytes of replies wait for it, so no
 * client can grow the daemon's memory.
 */
#ifndef MP_NODE_CONTROL_H
#define MP_NODE_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "base/err.h"
#include "node/rpc.h"

#define CONTROL_CLIENTS_MAX 64
#define CONTROL_OUTPUT_MAX (1024 * 1024)
#define CONTROL_DRAIN_MS 1000
#define CONTROL_GROUPS_MAX 16

/* A method: its name, the names of the params it takes (NULL-terminated; NULL
 * for none; control refuses any other param with -32602 before calling the
 * handler, which still checks types and values), and its handler.
 *
 * The handler gets params as an object (borrowed). On success set
 * *result_out (a new reference, or leave NULL for null) and return true; on
 * failure fill err_out with rpc_error_set (id NULL: control fills it in) and
 * optionally *data_out, and return false. */
struct control_call;

struct control_method {
    const char *name;
    const char *const *params;
    bool (*handler_cb)(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                       struct rpc_error *err_out, json_t **data_out);
};

/* Most deferred calls one connection may have open; more fail with -32000 BUSY. */
#define CONTROL_DEFERRED_MAX 64

/* Inside a handler: keep the call open after the handler returns (it then
 * returns true and sets no result), to answer later with control_call_reply
 * or control_call_fail, e.g. when a DHT lookup completes. Returns the call to
 * keep, or NULL when the connection has CONTROL_DEFERRED_MAX open already
 * (the handler then fails the request itself). If the client goes away
 * first, the reply is dropped quietly. The module that deferred a call
 * answers or fails it exactly once, also when it shuts down: that frees it. */
struct control_call *control_call_defer(struct control_call *call);

/* Push a notification (JSON-RPC, no id) on a deferred call's connection,
 * leaving the call open: how a subscription streams events. params is
 * stolen. Returns false when the client is gone or does not read fast enough
 * (its queued output is over CONTROL_OUTPUT_MAX and it was cut off): the
 * caller should then end the call. */
bool control_call_notify(struct control_call *call, const char *method, json_t *params);

/* False once the call's client has gone (the call still needs answering
 * or failing, which then only frees it). */
bool control_call_alive(const struct control_call *call);

/* Bytes of output waiting for the call's client to read: a streaming
 * producer pauses while this is high (0 for a gone client). */
size_t control_call_backlog(const struct control_call *call);

/* Answer a deferred call with result (stolen; NULL for null) and free it. */
void control_call_reply(struct control_call *call, json_t *result);

/* Fail a deferred call with a JSON-RPC code and, for RPC_CODE_FAILED, the
 * node's error as data; frees it. */
void control_call_fail(struct control_call *call, enum rpc_code code, enum mp_err err,
                       const char *message);

/* control_call_fail with data of the caller's (stolen; NULL for none), e.g.
 * rpc_err_data's object with more members. */
void control_call_fail_data(struct control_call *call, enum rpc_code code, const char *message,
                            json_t *data);

struct control;

/* Bind path and start listening. A socket file already at path is removed
 * only if nothing answers on it (left by a killed daemon); if another daemon
 * answers: MP_ERR_BUSY. Any other file at path: MP_ERR_EXISTS, untouched. */
enum mp_err control_open(uv_loop_t *loop, const char *path, struct control **control_out);

/* Serve a module's methods: methods (borrowed for the server's lifetime) get
 * ctx as their first argument. Up to CONTROL_GROUPS_MAX groups; a name
 * already served is MP_ERR_EXISTS. */
enum mp_err control_add_methods(struct control *control, const struct control_method *methods,
                                size_t method_count, void *ctx);

/* Stop accepting, give queued replies (the one to `shutdown` above all) up to
 * CONTROL_DRAIN_MS to drain, close every handle, unlink the socket file, then
 * call closed_cb (may be NULL) and free the server. Safe to call from inside a
 * handler. */
void control_close(struct control *control, void (*closed_cb)(void *arg), void *arg);

/* Number of requests served and refused since start, for status. */
void control_counters(const struct control *control, unsigned long *served_out,
                      unsigned long *errors_out);

#endif
