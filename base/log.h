/*
 * log: leveled, one-line log messages to stderr.
 *
 * The level is process-wide (a daemon has one stderr). Messages are formatted
 * with printf rules and have control characters escaped, so text from the
 * network cannot forge log lines. There is deliberately no way to dump a
 * buffer: keys, plaintext and message bodies never go to the log; log sizes,
 * ids and counts instead.
 */
#ifndef MP_BASE_LOG_H
#define MP_BASE_LOG_H

#include "base/err.h"

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* "error", "warn", "info", "debug" -> level; MP_ERR_INVAL otherwise. */
enum mp_err log_level_parse(const char *name, enum log_level *level_out);

/* Writes "<UTC time> <LEVEL> <module>: <message>\n" when level is enabled. */
void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(module, ...) log_msg(LOG_LEVEL_ERROR, module, __VA_ARGS__)
#define log_warn(module, ...) log_msg(LOG_LEVEL_WARN, module, __VA_ARGS__)
#define log_info(module, ...) log_msg(LOG_LEVEL_INFO, module, __VA_ARGS__)
#define log_debug(module, ...) log_msg(LOG_LEVEL_DEBUG, module, __VA_ARGS__)

#endif
