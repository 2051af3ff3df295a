#include "node/client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "node/jread.h"
#include "node/rpc.h"

/* Largest reply (or streamed line) a command accepts. */
#define CLIENT_REPLY_MAX (4 * 1024 * 1024)

/* One connection: the socket, what was read past the last line, and the
 * time limit (0: none, for streams). */
struct conn {
    int fd;
    struct buf pending;
    struct timespec start;
    int timeout_ms;
};

static long elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

static enum mp_err wait_fd(const struct conn *c, short events)
{
    struct pollfd p = {.fd = c->fd, .events = events};
    for (;;) {
        long left = c->timeout_ms > 0 ? c->timeout_ms - elapsed_ms(&c->start) : -1;
        if (c->timeout_ms > 0 && left <= 0)
            return MP_ERR_TIMEOUT;
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return MP_OK;
        if (n < 0 && errno != EINTR)
            return MP_ERR_IO;
    }
}

static enum mp_err conn_open(struct conn *c, const char *path, int timeout_ms)
{
    struct sockaddr_un sun;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    buf_init(&c->pending, CLIENT_REPLY_MAX);
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    c->timeout_ms = timeout_ms;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path))
        return MP_ERR_TOO_BIG;
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return MP_ERR_IO;
    /* Non-blocking, so a daemon whose backlog is full (stopped, stuck) cannot
     * hold the command past CLIENT_TIMEOUT_MS: retry EAGAIN until then. */
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            c->fd = fd;
            return MP_OK;
        }
        int e = errno;
        if (e == EAGAIN && elapsed_ms(&c->start) < CLIENT_TIMEOUT_MS) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
            nanosleep(&pause, NULL);
            continue;
        }
        close(fd);
        if (e == EAGAIN)
            return MP_ERR_TIMEOUT;
        return e == ENOENT || e == ECONNREFUSED ? MP_ERR_UNAVAILABLE : mp_err_from_errno(e);
    }
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->pending);
}

static enum mp_err send_all(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        enum mp_err err = wait_fd(c, POLLOUT);
        if (err != MP_OK)
            return err;
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return MP_ERR_IO;
        data += n;
        len -= (size_t)n;
    }
    return MP_OK;
}

/* The next line (newline stripped) into line; MP_ERR_IO when the daemon
 * closed the connection first. */
static enum mp_err read_line(struct conn *c, struct buf *line)
{
    char chunk[16384];
    for (;;) {
        uint8_t *nl = c->pending.len ? memchr(c->pending.data, '\n', c->pending.len) : NULL;
        if (nl != NULL) {
            size_t take = (size_t)(nl - c->pending.data);
            line->len = 0;
            enum mp_err err = buf_append(line, c->pending.data, take);
            buf_consume(&c->pending, take + 1);
            return err;
        }
        enum mp_err err = wait_fd(c, POLLIN);
        if (err != MP_OK)
            return err;
        ssize_t n = read(c->fd, chunk, sizeof(chunk));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return MP_ERR_IO;
        if ((err = buf_append(&c->pending, chunk, (size_t)n)) != MP_OK)
            return err;
    }
}

static enum mp_err parse_reply(const struct buf *line, struct client_reply *reply)
{
    struct jread_error jerr;
    json_t *root = jread((const char *)line->data, line->len, RPC_DEPTH_MAX, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return MP_ERR_MALFORMED;
    }
    json_t *result = json_object_get(root, "result");
    json_t *error = json_object_get(root, "error");
    enum mp_err err = MP_OK;
    if (result != NULL) {
        reply->result = json_incref(result);
    } else if (json_is_object(error)) {
        reply->rpc_code = (int)json_integer_value(json_object_get(error, "code"));
        const char *msg = json_string_value(json_object_get(error, "message"));
        snprintf(reply->message, sizeof(reply->message), "%s", msg != NULL ? msg : "(no message)");
        reply->data = json_incref(json_object_get(error, "data"));
        json_t *code = json_object_get(reply->data, "code");
        reply->err = json_is_integer(code) ? (enum mp_err)json_integer_value(code) : MP_ERR_IO;
    } else {
        err = MP_ERR_MALFORMED;
    }
    json_decref(root);
    return err;
}

/* Connect and send one request; the caller reads. */
static enum mp_err start_call(struct conn *c, const char *path, const char *method, json_t *params,
                              int timeout_ms)
{
    size_t req_len = 0;
    enum mp_err err = conn_open(c, path, timeout_ms);
    char *req = rpc_request_line(method, params, 1, &req_len);
    if (err == MP_OK && req == NULL)
        err = MP_ERR_NOMEM;
    if (err == MP_OK)
        err = send_all(c, req, req_len);
    free(req);
    return err;
}

enum mp_err client_call(const char *socket_path, const char *method, json_t *params,
                        int timeout_ms, struct client_reply *reply_out)
{
    struct conn c;
    struct buf line;

    memset(reply_out, 0, sizeof(*reply_out));
    buf_init(&line, CLIENT_REPLY_MAX);
    enum mp_err err = start_call(&c, socket_path, method, params,
                                 timeout_ms > 0 ? timeout_ms : CLIENT_TIMEOUT_MS);
    if (err == MP_OK)
        err = read_line(&c, &line);
    if (err == MP_OK)
        err = parse_reply(&line, reply_out);
    conn_close(&c);
    buf_free(&line);
    return err;
}

enum mp_err client_stream(const char *socket_path, const char *method, json_t *params,
                          bool (*line_cb)(void *arg, json_t *line), void *arg)
{
    struct conn c;
    struct buf line;

    buf_init(&line, CLIENT_REPLY_MAX);
    enum mp_err err = start_call(&c, socket_path, method, params, CLIENT_TIMEOUT_MS);
    c.timeout_ms = 0; /* connected: now wait as long as the stream lasts */
    while (err == MP_OK && read_line(&c, &line) == MP_OK) {
        struct jread_error jerr;
        json_t *j = jread((const char *)line.data, line.len, RPC_DEPTH_MAX, &jerr);
        if (j == NULL) {
            err = MP_ERR_MALFORMED;
            break;
        }
        bool more = line_cb(arg, j);
        json_decref(j);
        if (!more)
            break;
    }
    conn_close(&c);
    buf_free(&line);
    return err;
}

void client_reply_clear(struct client_reply *reply)
{
    json_decref(reply->result);
    reply->result = NULL;
    json_decref(reply->data);
    reply->data = NULL;
}
