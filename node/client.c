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
#include "node/rpc.h"

/* Largest reply a command accepts. */
#define CLIENT_REPLY_MAX (4 * 1024 * 1024)

static long elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

static enum mp_err wait_fd(int fd, short events, const struct timespec *start)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        long left = CLIENT_TIMEOUT_MS - elapsed_ms(start);
        if (left <= 0)
            return MP_ERR_TIMEOUT;
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return MP_OK;
        if (n < 0 && errno != EINTR)
            return MP_ERR_IO;
    }
}

static enum mp_err connect_to(const char *path, int *fd_out, const struct timespec *start)
{
    struct sockaddr_un sun;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path))
        return MP_ERR_TOO_BIG;
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return MP_ERR_IO;
    /* Non-blocking, so a daemon whose backlog is full (stopped, stuck) cannot
     * hold the command past its timeout: retry EAGAIN until the deadline. */
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            *fd_out = fd;
            return MP_OK;
        }
        int e = errno;
        if (e == EAGAIN && elapsed_ms(start) < CLIENT_TIMEOUT_MS) {
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

static enum mp_err send_all(int fd, const char *data, size_t len, const struct timespec *start)
{
    while (len > 0) {
        enum mp_err err = wait_fd(fd, POLLOUT, start);
        if (err != MP_OK)
            return err;
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return MP_ERR_IO;
        data += n;
        len -= (size_t)n;
    }
    return MP_OK;
}

/* Read up to the first newline into line (capped). */
static enum mp_err read_line(int fd, struct buf *line, const struct timespec *start)
{
    char chunk[4096];
    for (;;) {
        enum mp_err err = wait_fd(fd, POLLIN, start);
        if (err != MP_OK)
            return err;
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return MP_ERR_IO; /* the daemon closed the connection before replying */
        char *nl = memchr(chunk, '\n', (size_t)n);
        size_t take = nl != NULL ? (size_t)(nl - chunk) : (size_t)n;
        if ((err = buf_append(line, chunk, take)) != MP_OK)
            return err;
        if (nl != NULL)
            return MP_OK;
    }
}

static enum mp_err parse_reply(const struct buf *line, struct client_reply *reply)
{
    json_t *root = json_loadb((const char *)line->data, line->len, 0, NULL);
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
        json_t *code = json_object_get(json_object_get(error, "data"), "code");
        reply->err = json_is_integer(code) ? (enum mp_err)json_integer_value(code) : MP_ERR_IO;
    } else {
        err = MP_ERR_MALFORMED;
    }
    json_decref(root);
    return err;
}

enum mp_err client_call(const char *socket_path, const char *method, json_t *params,
                        struct client_reply *reply_out)
{
    struct timespec start;
    struct buf line;
    size_t req_len = 0;
    int fd = -1;

    memset(reply_out, 0, sizeof(*reply_out));
    buf_init(&line, CLIENT_REPLY_MAX);
    clock_gettime(CLOCK_MONOTONIC, &start);
    char *req = rpc_request_line(method, params, 1, &req_len);
    enum mp_err err = req != NULL ? MP_OK : MP_ERR_NOMEM;
    if (err == MP_OK)
        err = connect_to(socket_path, &fd, &start);
    if (err == MP_OK)
        err = send_all(fd, req, req_len, &start);
    if (err == MP_OK)
        err = read_line(fd, &line, &start);
    if (err == MP_OK)
        err = parse_reply(&line, reply_out);
    if (fd >= 0)
        close(fd);
    free(req);
    buf_free(&line);
    return err;
}

void client_reply_clear(struct client_reply *reply)
{
    json_decref(reply->result);
    reply->result = NULL;
}
