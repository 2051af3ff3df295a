#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A log line longer than this is cut (and marked with "..."). */
#define LOG_LINE_MAX 1024

static enum log_level current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

enum mp_err log_level_parse(const char *name, enum log_level *level_out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level_out = (enum log_level)i;
            return MP_OK;
        }
    }
    return MP_ERR_INVAL;
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
    char text[LOG_LINE_MAX];
    char line[LOG_LINE_MAX * 4 + 96];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    size_t n = 0;

    if (level > current_level)
        return;
    va_start(ap, fmt);
    int len = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (len < 0)
        return;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    n = (size_t)snprintf(line, sizeof(line), "%s.%03ldZ %s %s: ", stamp, ts.tv_nsec / 1000000L,
                         level_tags[level], module);

    /* Escape control bytes so that a peer-chosen string cannot start a fake line. */
    for (const unsigned char *p = (const unsigned char *)text; *p && n + 5 < sizeof(line); p++) {
        if (*p < 0x20 || *p == 0x7f)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "\\x%02x", *p);
        else
            line[n++] = (char)*p;
    }
    if ((size_t)len >= sizeof(text) && n + 4 < sizeof(line)) {
        memcpy(line + n, "...", 3);
        n += 3;
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}
