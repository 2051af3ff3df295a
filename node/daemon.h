/*
 * daemon: `merpati run`, one node in the foreground on a libuv loop.
 *
 * Owns the data dir for its lifetime (through the store's lock), listens for
 * other nodes on UDP and TCP, serves the control API, and shuts down cleanly
 * on SIGINT, SIGTERM or the `shutdown` method: every handle closed, the store
 * flushed and closed, the loop closed with nothing left on it.
 */
#ifndef MP_NODE_DAEMON_H
#define MP_NODE_DAEMON_H

#include "node/config.h"

struct daemon_options {
    const char *data_dir;       /* exists and holds identity.key */
    const char *control_path;   /* socket path */
    struct config config;       /* settings after the config file and flags */
};

/* Run until asked to stop. Returns a sysexits.h code (0 on a clean stop) after
 * printing one error line and a hint for anything that stopped it early. */
int daemon_run(const struct daemon_options *opts);

#endif
