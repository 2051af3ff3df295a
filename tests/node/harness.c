#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/node/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HARNESS_RUN_TIMEOUT_MS 30000
#define HARNESS_ARGS_MAX 32
#define HARNESS_ENV_MAX 256
#define HARNESS_SPAWNED_MAX 64
/* How long a reply may take: generous, for sanitizer builds on a busy machine. */
#define HARNESS_REPLY_TIMEOUT_MS 30000

static pid_t spawned[HARNESS_SPAWNED_MAX];

static void forget(pid_t pid)
{
    for (int i = 0; i < HARNESS_SPAWNED_MAX; i++) {
        if (spawned[i] == pid)
            spawned[i] = 0;
    }
}

int harness_kill_all(void **state)
{
    (void)state;
    for (int i = 0; i < HARNESS_SPAWNED_MAX; i++) {
        if (spawned[i] > 0) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
            spawned[i] = 0;
        }
    }
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char **build_argv(const char *const *args, char **argv)
{
    int n = 0;
    argv[n++] = (char *)MERPATI_BIN;
    for (; args[n - 1] != NULL && n < HARNESS_ARGS_MAX - 1; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    return argv;
}

static char **build_env(const char *const *extra, char **envp)
{
    int n = 0;
    for (char **e = environ; *e != NULL && n < HARNESS_ENV_MAX - 40; e++) {
        /* Tests choose the data dir themselves. */
        if (strncmp(*e, "MERPATI_DATA_DIR=", 17) != 0)
            envp[n++] = *e;
    }
    for (; extra != NULL && *extra != NULL && n < HARNESS_ENV_MAX - 1; extra++)
        envp[n++] = (char *)*extra;
    envp[n] = NULL;
    return envp;
}

int harness_wait(pid_t pid, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            forget(pid);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            forget(pid);
            return -1;
        }
        sleep_ms(5);
    }
}

static void drain(int fd, char **text, size_t *len)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0)
        return;
    char *grown = realloc(*text, *len + (size_t)n + 1);
    if (grown == NULL)
        return;
    memcpy(grown + *len, chunk, (size_t)n);
    *len += (size_t)n;
    grown[*len] = '\0';
    *text = grown;
}

struct run_result harness_run(const char *const *env, const char *const *args)
{
    struct run_result r = {.status = -1, .out = calloc(1, 1), .err = calloc(1, 1)};
    char *argv[HARNESS_ARGS_MAX];
    char *envp[HARNESS_ENV_MAX];
    int out_pipe[2], err_pipe[2];
    size_t out_len = 0, err_len = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;

    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0)
        return r;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
    posix_spawn_file_actions_addclose(&fa, err_pipe[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    int rc = posix_spawn(&pid, MERPATI_BIN, &fa, NULL, build_argv(args, argv),
                         build_env(env, envp));
    posix_spawn_file_actions_destroy(&fa);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(err_pipe[0]);
        return r;
    }
    long deadline = now_ms() + HARNESS_RUN_TIMEOUT_MS;
    struct pollfd p[2] = {{.fd = out_pipe[0], .events = POLLIN},
                          {.fd = err_pipe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0 && now_ms() < deadline) {
        if (poll(p, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            size_t before = i == 0 ? out_len : err_len;
            drain(p[i].fd, i == 0 ? &r.out : &r.err, i == 0 ? &out_len : &err_len);
            if ((i == 0 ? out_len : err_len) == before) { /* EOF */
                close(p[i].fd);
                p[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (p[i].fd >= 0)
            close(p[i].fd);
    }
    r.status = harness_wait(pid, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 1));
    return r;
}

void harness_result_free(struct run_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

pid_t harness_spawn(const char *log_path, const char *const *args)
{
    char *argv[HARNESS_ARGS_MAX];
    char *envp[HARNESS_ENV_MAX];
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid, MERPATI_BIN, &fa, NULL, build_argv(args, argv), build_env(NULL, envp)))
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; pid > 0 && i < HARNESS_SPAWNED_MAX; i++) {
        if (spawned[i] == 0) {
            spawned[i] = pid;
            break;
        }
    }
    return pid;
}

int harness_connect(const char *path)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path))
        return -1;
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool harness_wait_socket(const char *path, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int fd = harness_connect(path);
        if (fd >= 0) {
            close(fd);
            return true;
        }
        sleep_ms(10);
    }
    return false;
}

bool harness_wait_log(const char *path, const char *text, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        char *log = harness_read_file(path);
        bool found = log != NULL && strstr(log, text) != NULL;
        free(log);
        if (found)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* Bytes of a reply looked at in one go. */
#define HARNESS_PEEK_BYTES 4096

char *harness_exchange(int fd, const char *data, size_t len)
{
    long deadline = now_ms() + HARNESS_REPLY_TIMEOUT_MS;
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        data += n;
        len -= (size_t)n;
    }
    /* A line at a time: peek, then take up to the newline only (the next
     * reply stays for the next call); the buffer grows by doubling, so a
     * long reply costs no quadratic copying (ASan's realloc always moves). */
    char *line = NULL;
    size_t line_len = 0, cap = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = deadline - now_ms();
        char chunk[HARNESS_PEEK_BYTES];
        int ready = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0) {
            free(line);
            return NULL;
        }
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_PEEK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(line);
            return NULL;
        }
        char *nl = memchr(chunk, '\n', (size_t)n);
        size_t take = nl != NULL ? (size_t)(nl - chunk) + 1 : (size_t)n;
        if (line_len + take + 1 > cap) {
            size_t want = cap * 2 > line_len + take + 1 ? cap * 2 : line_len + take + 1;
            char *grown = realloc(line, want);
            if (grown == NULL) {
                free(line);
                return NULL;
            }
            line = grown;
            cap = want;
        }
        if (recv(fd, line + line_len, take, 0) != (ssize_t)take) {
            free(line);
            return NULL;
        }
        line_len += take;
        line[line_len] = '\0';
        if (nl != NULL) {
            line[line_len - 1] = '\0'; /* the newline */
            return line;
        }
    }
}

char *harness_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    drain(fileno(f), &text, &len);
    while (1) {
        size_t before = len;
        drain(fileno(f), &text, &len);
        if (len == before)
            break;
    }
    fclose(f);
    return text != NULL ? text : calloc(1, 1);
}

void harness_tempdir(char *out, size_t size)
{
    snprintf(out, size, "/tmp/mp-node-XXXXXX");
    if (mkdtemp(out) == NULL)
        out[0] = '\0';
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void harness_rmtree(const char *path)
{
    nftw(path, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
}
