/*
 * client: the CLI's side of the control API: connect to the daemon's socket,
 * send one request, wait for its reply.
 *
 * Blocking and synchronous on purpose (a CLI command does one thing); every
 * wait is bounded by a timeout so a stuck daemon cannot hang the command.
 */
#ifndef MP_NODE_CLIENT_H
#define MP_NODE_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "base/err.h"

/* How long a command waits for the daemon's reply unless told otherwise. */
#define CLIENT_TIMEOUT_MS 10000

struct client_reply {
    json_t *result;         /* on success, owned */
    int rpc_code;           /* on an error reply: its code ... */
    char message[512];      /* ... and message */
    enum mp_err err;        /* the node's error (data.code) when rpc_code is -32000 */
    json_t *data;           /* the error's data, owned; NULL if it had none */
};

/* Call method with params (stolen; may be NULL), waiting at most timeout_ms
 * (0: CLIENT_TIMEOUT_MS). Returns MP_ERR_UNAVAILABLE
 * when nothing listens at path, MP_ERR_TIMEOUT, MP_ERR_IO or MP_ERR_MALFORMED
 * for transport problems; MP_OK once a reply arrived, which may itself be an
 * error (reply->result NULL, rpc_code set, data if it had any). reply_out is
 * zeroed first and owns something only on MP_OK: clear it then with
 * client_reply_clear (clearing it after a transport error is harmless). */
enum mp_err client_call(const char *socket_path, const char *method, json_t *params,
                        int timeout_ms, struct client_reply *reply_out);

/* Call a method that streams: every line that arrives (notifications, then
 * the final reply) is parsed and passed to line_cb (borrowed for the call)
 * until line_cb returns false, the connection ends, or a line is not JSON.
 * No timeout: it runs until the daemon ends the stream. Errors as
 * client_call's transport errors; MP_OK when the stream ended. */
enum mp_err client_stream(const char *socket_path, const char *method, json_t *params,
                          bool (*line_cb)(void *arg, json_t *line), void *arg);

void client_reply_clear(struct client_reply *reply);

#endif
