/*
 * config: the node's settings, read from a libconfig file
 * (<data dir>/merpati.conf unless --config names another).
 *
 * Every setting has a default, so a missing file is not an error unless the
 * user named it. Errors come back as one line "file:line: message" ready to
 * print. config_write_default writes the commented file that `merpati init`
 * creates, which documents every setting.
 */
#ifndef MP_NODE_CONFIG_H
#define MP_NODE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/log.h"
#include "node/paths.h"

/* The port a personal node listens on unless configured otherwise. */
#define CONFIG_DEFAULT_PORT 7700
/* Room for one "file:line: message" error. */
#define CONFIG_ERROR_MAX 512

struct config {
    char listen[64];                 /* numeric IP to bind UDP and TCP on */
    uint16_t port;                   /* 0 = any free port, chosen at each start */
    char control_socket[PATHS_MAX];  /* empty = <data dir>/control.sock */
    enum log_level log_level;
};

void config_defaults(struct config *cfg);

/* Read path over the defaults already in cfg. A missing file is MP_ERR_NOT_FOUND
 * (the caller decides whether that matters); any other problem is MP_ERR_CONFIG
 * with "file:line: message" in error_out. */
enum mp_err config_load(const char *path, struct config *cfg, char error_out[CONFIG_ERROR_MAX]);

/* Create path (mode 0600, refusing to overwrite) holding every setting with
 * its default value and a comment. */
enum mp_err config_write_default(const char *path);

#endif
