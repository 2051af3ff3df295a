#include "node/control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "node/paths.h"

/* Bytes read from a client per callback. */
#define CONTROL_READ_CHUNK (16 * 1024)
/* A line buffer grown past this (for requests of up to RPC_LINE_MAX) goes
 * back once a read leaves no part of a line in it: an open connection does
 * not keep a mebibyte for the largest request it ever sent. */
#define CONTROL_LINE_KEEP (64 * 1024)

struct control_call {
    struct client *client; /* NULL once the client is gone */
    json_t *id;            /* owned */
    bool deferred;
    struct control_call *prev, *next; /* the client's deferred calls */
};

struct client {
    uv_pipe_t pipe; /* pipe.data = this */
    struct control *control;
    struct client *prev, *next;
    struct buf line;     /* the request being received, capped at RPC_LINE_MAX */
    bool discarding;     /* skipping the rest of an oversized line */
    bool closing;        /* uv_close called or owed once writes drain */
    size_t writes_owed;  /* uv_write requests not yet called back */
    struct control_call *deferred; /* open deferred calls */
    unsigned deferred_count;
};

struct control {
    uv_pipe_t server; /* server.data = this */
    uv_timer_t drain; /* drain.data = this; bounds the wait for replies at close */
    uv_loop_t *loop;
    struct {
        const struct control_method *methods;
        size_t count;
        void *ctx;
    } groups[CONTROL_GROUPS_MAX];
    size_t group_count;
    char path[PATHS_MAX];
    struct client *clients;
    unsigned client_count;
    unsigned handles_open; /* server + clients; freed when it reaches 0 while closing */
    struct client *dispatching; /* the client whose request is being handled */
    bool closing;
    bool bound; /* the socket file is ours to unlink */
    void (*closed_cb)(void *arg);
    void *closed_arg;
    unsigned long served;
    unsigned long errors;
};

struct write_block {
    uv_write_t req; /* req.data = client */
    size_t len;
    char data[];
};

static void drain_closed_cb(uv_handle_t *handle);

static void handle_closed(struct control *ctl)
{
    /* Once the last client is gone there is nothing left to drain. */
    if (ctl->closing && ctl->clients == NULL && !uv_is_closing((uv_handle_t *)&ctl->drain))
        uv_close((uv_handle_t *)&ctl->drain, drain_closed_cb);
    if (--ctl->handles_open > 0 || !ctl->closing)
        return;
    if (ctl->bound)
        unlink(ctl->path);
    void (*cb)(void *) = ctl->closed_cb;
    void *arg = ctl->closed_arg;
    free(ctl);
    if (cb != NULL)
        cb(arg);
}

static void client_closed_cb(uv_handle_t *handle)
{
    struct client *c = handle->data;
    struct control *ctl = c->control;

    for (struct control_call *call = c->deferred; call != NULL; call = call->next)
        call->client = NULL; /* its answer will be dropped */

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        ctl->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    ctl->client_count--;
    buf_free(&c->line);
    free(c);
    handle_closed(ctl);
}

/* Close at once; pending writes are called back with UV_ECANCELED. */
static void client_close_now(struct client *c)
{
    c->closing = true;
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, client_closed_cb);
}

/* Close now if nothing is owed, or mark for closing when the last write lands. */
static void client_close(struct client *c)
{
    if (uv_is_closing((uv_handle_t *)&c->pipe))
        return;
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (c->writes_owed == 0 && c->control->dispatching != c)
        uv_close((uv_handle_t *)&c->pipe, client_closed_cb);
}

static void write_cb(uv_write_t *req, int status)
{
    struct write_block *w = (struct write_block *)req;
    struct client *c = req->data;

    (void)status; /* a failed write means the client left: its read side closes it */
    free(w);
    c->writes_owed--;
    if (c->closing)
        client_close(c);
}

static void send_line(struct client *c, char *line, size_t len)
{
    if (line == NULL) {
        log_error("control", "out of memory while answering a request");
        return;
    }
    /* A client marked closing still gets the replies to what it already sent
     * (the reply to `shutdown` above all); only a closed handle drops them. */
    if (uv_is_closing((uv_handle_t *)&c->pipe)) {
        free(line);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) + len > CONTROL_OUTPUT_MAX) {
        log_warn("control", "client does not read its replies (%zu bytes queued): disconnecting",
                 uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe));
        free(line);
        client_close_now(c);
        return;
    }
    struct write_block *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        free(line);
        return;
    }
    memcpy(w->data, line, len);
    w->len = len;
    free(line);
    w->req.data = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
    if (rc != 0) {
        free(w);
        client_close_now(c);
        return;
    }
    c->writes_owed++;
}

static void send_error(struct client *c, struct rpc_error *err, json_t *data)
{
    size_t len = 0;
    char *line = rpc_error_line(err, data, &len);

    c->control->errors++;
    send_line(c, line, len);
    rpc_error_clear(err);
}

static const struct control_method *find_method(const struct control *ctl, const char *name,
                                                void **ctx_out)
{
    for (size_t g = 0; g < ctl->group_count; g++) {
        for (size_t i = 0; i < ctl->groups[g].count; i++) {
            if (strcmp(ctl->groups[g].methods[i].name, name) == 0) {
                *ctx_out = ctl->groups[g].ctx;
                return &ctl->groups[g].methods[i];
            }
        }
    }
    return NULL;
}

struct control_call *control_call_defer(struct control_call *call)
{
    struct client *c = call->client;

    if (c->deferred_count >= CONTROL_DEFERRED_MAX)
        return NULL;
    struct control_call *kept = calloc(1, sizeof(*kept));
    if (kept == NULL)
        return NULL;
    kept->client = c;
    kept->id = call->id != NULL ? json_incref(call->id) : NULL;
    kept->next = c->deferred;
    if (c->deferred != NULL)
        c->deferred->prev = kept;
    c->deferred = kept;
    c->deferred_count++;
    call->deferred = true;
    return kept;
}

static void call_free(struct control_call *call)
{
    struct client *c = call->client;

    if (c != NULL) {
        if (call->prev != NULL)
            call->prev->next = call->next;
        else
            c->deferred = call->next;
        if (call->next != NULL)
            call->next->prev = call->prev;
        c->deferred_count--;
    }
    json_decref(call->id);
    free(call);
}

bool control_call_alive(const struct control_call *call)
{
    return call->client != NULL && !uv_is_closing((uv_handle_t *)&call->client->pipe);
}

size_t control_call_backlog(const struct control_call *call)
{
    if (!control_call_alive(call))
        return 0;
    return uv_stream_get_write_queue_size((const uv_stream_t *)&call->client->pipe);
}

bool control_call_notify(struct control_call *call, const char *method, json_t *params)
{
    struct client *c = call->client;

    if (c == NULL || uv_is_closing((uv_handle_t *)&c->pipe)) {
        json_decref(params);
        return false;
    }
    size_t len = 0;
    char *line = rpc_notification_line(method, params, &len);
    send_line(c, line, len);
    return call->client != NULL && !uv_is_closing((uv_handle_t *)&c->pipe);
}

void control_call_reply(struct control_call *call, json_t *result)
{
    struct client *c = call->client;

    if (c != NULL && call->id != NULL) {
        size_t len = 0;
        char *line = rpc_result_line(call->id, result, &len);
        c->control->served++;
        send_line(c, line, len);
    } else {
        json_decref(result);
    }
    call_free(call);
}

void control_call_fail(struct control_call *call, enum rpc_code code, enum mp_err err,
                       const char *message)
{
    control_call_fail_data(call, code, message,
                           code == RPC_CODE_FAILED ? rpc_err_data(err) : NULL);
}

void control_call_fail_data(struct control_call *call, enum rpc_code code, const char *message,
                            json_t *data)
{
    struct client *c = call->client;

    if (c != NULL && call->id != NULL) {
        struct rpc_error e;
        rpc_error_set(&e, call->id, code, "%s", message);
        send_error(c, &e, data);
        data = NULL;
    }
    json_decref(data);
    call_free(call);
}

enum mp_err control_add_methods(struct control *ctl, const struct control_method *methods,
                                size_t method_count, void *ctx)
{
    void *unused;

    if (ctl->group_count >= CONTROL_GROUPS_MAX)
        return MP_ERR_TOO_BIG;
    for (size_t i = 0; i < method_count; i++) {
        if (find_method(ctl, methods[i].name, &unused) != NULL)
            return MP_ERR_EXISTS;
    }
    ctl->groups[ctl->group_count].methods = methods;
    ctl->groups[ctl->group_count].count = method_count;
    ctl->groups[ctl->group_count].ctx = ctx;
    ctl->group_count++;
    return MP_OK;
}

/* The first param name that m does not take, or NULL. */
static const char *unknown_param(const struct control_method *m, json_t *params)
{
    const char *key;
    json_t *value;

    json_object_foreach(params, key, value)
    {
        bool known = false;
        for (const char *const *p = m->params; p != NULL && *p != NULL && !known; p++)
            known = strcmp(*p, key) == 0;
        if (!known)
            return key;
    }
    return NULL;
}

static void handle_line(struct client *c, const char *line, size_t len)
{
    struct control *ctl = c->control;
    struct rpc_request req;
    struct rpc_error err;

    if (!rpc_parse(line, len, &req, &err)) {
        send_error(c, &err, NULL);
        return;
    }
    void *ctx = NULL;
    const struct control_method *m = find_method(ctl, req.method, &ctx);
    if (m == NULL) {
        if (req.id != NULL) {
            rpc_error_set(&err, req.id, RPC_CODE_METHOD_NOT_FOUND, "unknown method \"%s\"",
                          req.method);
            send_error(c, &err, NULL);
        }
        rpc_request_clear(&req);
        return;
    }
    const char *bad = unknown_param(m, req.params);
    if (bad != NULL) {
        if (req.id != NULL) {
            rpc_error_set(&err, req.id, RPC_CODE_INVALID_PARAMS,
                          "method \"%s\" takes no param \"%.40s\"", m->name, bad);
            send_error(c, &err, NULL);
        }
        rpc_request_clear(&req);
        return;
    }
    json_t *result = NULL;
    json_t *data = NULL;
    struct control_call call = {.client = c, .id = req.id};
    memset(&err, 0, sizeof(err));
    ctl->dispatching = c;
    bool ok = m->handler_cb(ctx, &call, req.params, &result, &err, &data);
    ctl->dispatching = NULL;
    if (call.deferred && ok) { /* answered later, by control_call_reply */
        json_decref(result);
        json_decref(data);
    } else if (req.id == NULL) { /* a notification: no reply either way */
        json_decref(result);
        json_decref(data);
        if (!ok)
            rpc_error_clear(&err);
    } else if (ok) {
        size_t out_len = 0;
        char *out = rpc_result_line(req.id, result, &out_len);
        ctl->served++;
        send_line(c, out, out_len);
    } else {
        json_decref(err.id);
        err.id = json_incref(req.id);
        send_error(c, &err, data);
    }
    rpc_request_clear(&req);
}

/* Split incoming bytes into lines, enforcing RPC_LINE_MAX. */
static void take_bytes(struct client *c, const char *data, size_t len)
{
    while (len > 0 && !c->closing) {
        const char *nl = memchr(data, '\n', len);
        size_t part = nl != NULL ? (size_t)(nl - data) : len;
        if (!c->discarding && buf_append(&c->line, data, part) != MP_OK) {
            struct rpc_error err;
            rpc_error_set(&err, NULL, RPC_CODE_INVALID_REQUEST,
                          "request longer than %d bytes; skipped up to its newline", RPC_LINE_MAX);
            send_error(c, &err, NULL);
            buf_free(&c->line);
            c->discarding = true;
        }
        if (nl == NULL)
            return;
        if (!c->discarding) {
            size_t n = c->line.len;
            if (n > 0 && c->line.data[n - 1] == '\r')
                n--;
            if (n > 0)
                handle_line(c, (const char *)c->line.data, n);
        }
        c->discarding = false;
        c->line.len = 0;
        data = nl + 1;
        len -= part + 1;
    }
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    (void)handle;
    (void)suggested;
    char *mem = malloc(CONTROL_READ_CHUNK);
    *out = uv_buf_init(mem, mem != NULL ? CONTROL_READ_CHUNK : 0);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct client *c = stream->data;

    if (nread > 0)
        take_bytes(c, b->base, (size_t)nread);
    free(b->base);
    if (c->line.len == 0 && c->line.cap > CONTROL_LINE_KEEP)
        buf_free(&c->line);
    if (nread < 0 || c->closing || c->control->closing)
        client_close(c);
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct control *ctl = server->data;

    if (status < 0 || ctl->closing)
        return;
    struct client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    if (uv_pipe_init(ctl->loop, &c->pipe, 0) != 0) {
        free(c);
        return;
    }
    c->pipe.data = c;
    c->control = ctl;
    buf_init(&c->line, RPC_LINE_MAX);
    c->next = ctl->clients;
    if (ctl->clients != NULL)
        ctl->clients->prev = c;
    ctl->clients = c;
    ctl->client_count++;
    ctl->handles_open++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c);
        return;
    }
    if (ctl->client_count > CONTROL_CLIENTS_MAX) {
        log_warn("control", "more than %d control connections: refusing one", CONTROL_CLIENTS_MAX);
        client_close(c);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) != 0)
        client_close(c);
}

static void server_closed_cb(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void drain_closed_cb(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

/* The drain deadline passed: clients that still owe writes are cut off. */
static void drain_cb(uv_timer_t *timer)
{
    struct control *ctl = timer->data;

    for (struct client *c = ctl->clients; c != NULL; c = c->next)
        client_close_now(c);
}

/* True if something accepts connections on the Unix socket at path. */
static bool socket_answers(const char *path)
{
    struct sockaddr_un sun;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    /* A live listener accepts, or has a full backlog (EAGAIN); a stale file refuses. */
    bool answers = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN;
    close(fd);
    return answers;
}

enum mp_err control_open(uv_loop_t *loop, const char *path, struct control **control_out)
{
    struct sockaddr_un sun;
    struct stat st;

    if (strlen(path) >= sizeof(sun.sun_path))
        return MP_ERR_TOO_BIG;
    struct control *ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL)
        return MP_ERR_NOMEM;
    ctl->loop = loop;
    snprintf(ctl->path, sizeof(ctl->path), "%s", path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_error("control", "%s exists and is not a socket; not touching it", path);
            free(ctl);
            return MP_ERR_EXISTS;
        }
        if (socket_answers(path)) {
            log_error("control", "another daemon answers on %s", path);
            free(ctl);
            return MP_ERR_BUSY;
        }
        unlink(path); /* left by a daemon that was killed */
    }
    if (uv_pipe_init(loop, &ctl->server, 0) != 0) {
        free(ctl);
        return MP_ERR_IO;
    }
    ctl->server.data = ctl;
    ctl->handles_open = 1;
    if (uv_timer_init(loop, &ctl->drain) != 0) {
        ctl->closing = true;
        uv_close((uv_handle_t *)&ctl->server, server_closed_cb);
        return MP_ERR_IO;
    }
    ctl->drain.data = ctl;
    ctl->handles_open++;

    mode_t old_mask = umask(0077);
    int rc = uv_pipe_bind(&ctl->server, path);
    umask(old_mask);
    ctl->bound = rc == 0;
    if (rc == 0)
        rc = chmod(path, 0600) == 0 ? 0 : uv_translate_sys_error(errno);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->server, 16, connection_cb);
    if (rc != 0) {
        log_error("control", "cannot listen on %s: %s", path, uv_strerror(rc));
        ctl->closing = true;
        uv_close((uv_handle_t *)&ctl->server, server_closed_cb);
        uv_close((uv_handle_t *)&ctl->drain, drain_closed_cb);
        return rc == UV_EADDRINUSE ? MP_ERR_BUSY : rc == UV_EACCES ? MP_ERR_PERM : MP_ERR_IO;
    }
    *control_out = ctl;
    return MP_OK;
}

void control_close(struct control *ctl, void (*closed_cb)(void *arg), void *arg)
{
    if (ctl == NULL || ctl->closing)
        return;
    ctl->closing = true;
    ctl->closed_cb = closed_cb;
    ctl->closed_arg = arg;
    for (struct client *c = ctl->clients, *next; c != NULL; c = next) {
        next = c->next;
        client_close(c);
    }
    uv_close((uv_handle_t *)&ctl->server, server_closed_cb);
    if (ctl->clients == NULL)
        uv_close((uv_handle_t *)&ctl->drain, drain_closed_cb);
    else
        uv_timer_start(&ctl->drain, drain_cb, CONTROL_DRAIN_MS, 0);
}

void control_counters(const struct control *ctl, unsigned long *served_out,
                      unsigned long *errors_out)
{
    *served_out = ctl->served;
    *errors_out = ctl->errors;
}
