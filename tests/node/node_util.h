/*
 * node_util: cmocka helpers over the harness for tests that run whole nodes:
 * a node is a temp data dir, its log file and (while running) its pid.
 * Every helper asserts, so a test reads as the steps a user would take.
 */
#ifndef MP_TESTS_NODE_UTIL_H
#define MP_TESTS_NODE_UTIL_H

#include <jansson.h>
#include <sys/types.h>

#include "tests/node/harness.h"

#define START_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS 20000

/* A NULL-terminated argument list literal. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

struct node {
    char dir[64];
    char sock[128];
    char log[128];
    char address[128];
    pid_t pid;
};

void assert_contains(const char *text, const char *want);

/* A fresh data dir with `merpati init`; n->address holds the new address. */
void node_init(struct node *n);

/* `merpati run` on 127.0.0.1, port 0, debug log, plus extra (NULL-terminated,
 * may be NULL) run arguments; returns once the node logged "ready". */
void node_start(struct node *n, const char *const *extra);

/* SIGTERM and expect a clean exit 0. */
void node_stop(struct node *n);

/* SIGKILL (if running), then remove its dir and log. */
void node_cleanup(struct node *n);

/* `merpati status --json`, parsed. */
json_t *status_json(struct node *n);
/* n's bootstrap entry for other nodes (status dht.bootstrap: key hex @ address) into out. */
void node_bootstrap_entry(struct node *n, char *out, size_t size);

/* One JSON-RPC call over the node's socket; params_json is an object's text.
 * Returns the whole reply (result or error), parsed; fails the test if no
 * reply comes within 30 s. */
json_t *node_call(struct node *n, const char *method, const char *params_json);

/* All of n's inbox, in order, asked `limit` messages a page (inbox.list),
 * each page resuming at the cursor the last one gave, until a page moves
 * no cursor; every page is checked to hold at most `limit`. */
json_t *node_inbox_all(struct node *n, unsigned limit);

#endif
