/*
 * harness: run the real merpati binary from tests. Commands run to
 * completion with their output captured; daemons run in the background with
 * their log in a file; everything is bounded by timeouts and killed on exit.
 */
#ifndef MP_TESTS_HARNESS_H
#define MP_TESTS_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

struct run_result {
    int status; /* exit code, or 128 + signal */
    char *out;  /* stdout, NUL-terminated, malloc'd */
    char *err;  /* stderr */
};

/* Run merpati with the NULL-terminated args (extra environment: env entries
 * "NAME=value", NULL-terminated, may be NULL); waits at most 30 s. */
struct run_result harness_run(const char *const *env, const char *const *args);
void harness_result_free(struct run_result *r);

/* Start `merpati <args>` in the background, stderr and stdout appended to
 * log_path. The harness remembers the pid until harness_wait reaps it. */
pid_t harness_spawn(const char *log_path, const char *const *args);

/* SIGKILL and reap every spawned process not yet reaped: a cmocka teardown,
 * so a failed assertion leaves no daemon behind. Returns 0. */
int harness_kill_all(void **state);

/* Wait up to timeout_ms for a process to exit; returns its status as above, or
 * -1 after killing it with SIGKILL when it did not exit in time. */
int harness_wait(pid_t pid, int timeout_ms);

/* Wait until path accepts a connection; false after timeout_ms. */
bool harness_wait_socket(const char *path, int timeout_ms);

/* Wait until the file at path contains text; false after timeout_ms. */
bool harness_wait_log(const char *path, const char *text, int timeout_ms);

/* Connect to a Unix socket; -1 on failure. */
int harness_connect(const char *path);

/* Send len bytes, then read one reply line (malloc'd, newline stripped); NULL
 * if the connection closed or 30 s passed. */
char *harness_exchange(int fd, const char *data, size_t len);

/* Read a whole file into a malloc'd string (NULL if missing). */
char *harness_read_file(const char *path);

/* A fresh private temp dir path (short, so socket paths fit). */
void harness_tempdir(char *out, size_t size);

/* rm -rf path. */
void harness_rmtree(const char *path);

#endif
