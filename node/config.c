#include "node/config.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/addr.h"
#include "crypto/secure.h"

static const char default_text[] =
    "# Merpati node configuration (libconfig syntax: name = value;).\n"
    "# Every setting is optional; the values below are the defaults.\n"
    "\n"
    "# Numeric IP address to listen on for other nodes, over UDP and TCP.\n"
    "# \"0.0.0.0\" listens on every IPv4 interface, \"::\" on every interface.\n"
    "listen = \"0.0.0.0\";\n"
    "\n"
    "# Port for UDP (the DHT) and TCP (links to other nodes).\n"
    "# 0 picks a free port at every start; a fixed port keeps you reachable.\n"
    "port = 7700;\n"
    "\n"
    "# Path of the control socket that the merpati command talks to.\n"
    "# Empty means <data dir>/control.sock.\n"
    "control_socket = \"\";\n"
    "\n"
    "# How much the daemon logs to stderr: \"error\", \"warn\", \"info\" or \"debug\".\n"
    "# No level ever logs message contents or keys.\n"
    "log_level = \"info\";\n"
    "\n"
    "# DHT nodes to join the network through, as \"<node key>@<ip>:<port>\".\n"
    "# `merpati status` on a node prints its own entry (\"bootstrap\").\n"
    "# Nodes met before are remembered, so this matters most on the first start.\n"
    "bootstrap = [ ];\n"
    "\n"
    "# At most this many nodes of one IP address per routing bucket (0 = no\n"
    "# limit; only for test networks where every node shares an address).\n"
    "dht_ip_limit = 2;\n"
    "\n"
    "# Datagrams per second accepted from one IP address (0 = no limit).\n"
    "dht_rate_limit = 50;\n"
    "\n"
    "# Mailboxes: sealed envelopes held for accounts that are offline. They\n"
    "# hold ciphertext only; no mailbox can read a message or see its sender.\n"
    "mailbox = {\n"
    "  # Hold mail for others (the network relies on nodes that do).\n"
    "  serve = true;\n"
    "  # Seconds an envelope is held before it is dropped (14 days).\n"
    "  ttl = 1209600;\n"
    "  # Per recipient mailbox: at most this many envelopes and KiB.\n"
    "  max_count = 20000;\n"
    "  max_kib = 65536;\n"
    "  # All mailboxes held here together, in MiB.\n"
    "  total_mib = 512;\n"
    "  # One sending node may store this many envelopes at once, then this\n"
    "  # many per second.\n"
    "  burst = 2000;\n"
    "  rate = 50;\n"
    "  # How many of the nodes closest to a recipient's mailbox id hold its mail.\n"
    "  replicas = 3;\n"
    "  # Seconds between asking our own mailboxes for mail while online.\n"
    "  fetch_interval = 60;\n"
    "  # Seconds between handing held mail to the nodes now closest to its\n"
    "  # mailbox id (nodes join and leave).\n"
    "  handoff_interval = 600;\n"
    "  # Nodes you trust to hold your mail too (your always-on node, a friend's),\n"
    "  # as \"<node key>@<ip>:<port>\"; listed in your presence record.\n"
    "  nodes = [ ];\n"
    "};\n"
    "\n"
    "# true: never talk to the public network, only to the private clusters\n"
    "# joined with `merpati cluster create` or `merpati cluster join`.\n"
    "cluster_only = false;\n"
    "\n"
    "# true: serve the DHT only (a bootstrap node): no presence record, no\n"
    "# messages, no contacts. `merpati run --bootstrap-only` sets it too.\n"
    "bootstrap_only = false;\n";

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen, sizeof(cfg->listen), "0.0.0.0");
    cfg->port = CONFIG_DEFAULT_PORT;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->dht_ip_limit = 2;
    cfg->dht_rate_limit = 50;
    cfg->mailbox = (struct config_mailbox){
        .serve = true,
        .ttl_s = 14 * 24 * 3600,
        .max_count = 20000,
        .max_kib = 64 * 1024,
        .total_mib = 512,
        .rate = 50,
        .burst = 2000,
        .replicas = 3,
        .fetch_interval_s = 60,
        .handoff_interval_s = 600,
    };
}

enum mp_err config_check_bootstrap(const char *text, char *why_out, size_t why_size)
{
    const char *at = strchr(text, '@');
    struct addr probe;

    if (strlen(text) >= CONFIG_BOOTSTRAP_TEXT_MAX) {
        snprintf(why_out, why_size, "bootstrap entry is too long");
        return MP_ERR_CONFIG;
    }
    if (at == NULL || at - text != 64 || strspn(text, "0123456789abcdefABCDEF") != 64) {
        snprintf(why_out, why_size,
                 "bootstrap entry \"%.80s\" must be <node key, 64 hex digits>@<ip>:<port> "
                 "(`merpati status` on that node prints it)",
                 text);
        return MP_ERR_CONFIG;
    }
    if (addr_parse(at + 1, &probe) != MP_OK) {
        snprintf(why_out, why_size,
                 "bootstrap entry \"%.80s\": \"%.60s\" is not a numeric <ip>:<port>", text, at + 1);
        return MP_ERR_CONFIG;
    }
    return MP_OK;
}

enum mp_err config_parse_node(const char *text, uint8_t key_out[32], struct addr *addr_out)
{
    char why[200];
    if (config_check_bootstrap(text, why, sizeof(why)) != MP_OK ||
        secure_unhex(key_out, 32, text, 64) != MP_OK)
        return MP_ERR_CONFIG;
    return addr_parse(strchr(text, '@') + 1, addr_out);
}

enum mp_err config_add_bootstrap(struct config *cfg, const char *text, char *why_out,
                                 size_t why_size)
{
    enum mp_err err = config_check_bootstrap(text, why_out, why_size);
    if (err != MP_OK)
        return err;
    if (cfg->bootstrap_count >= CONFIG_BOOTSTRAP_MAX) {
        snprintf(why_out, why_size, "more than %d bootstrap entries", CONFIG_BOOTSTRAP_MAX);
        return MP_ERR_TOO_BIG;
    }
    snprintf(cfg->bootstrap[cfg->bootstrap_count++], CONFIG_BOOTSTRAP_TEXT_MAX, "%s", text);
    return MP_OK;
}

/* Report a problem with one setting at its line. */
static enum mp_err setting_error(const config_setting_t *s, const char *path, const char *msg,
                                 char error_out[CONFIG_ERROR_MAX])
{
    snprintf(error_out, CONFIG_ERROR_MAX, "%s:%d: %s", path, config_setting_source_line(s), msg);
    return MP_ERR_CONFIG;
}

static enum mp_err read_string(const config_setting_t *root, const char *name, const char *path,
                               char *out, size_t size, char error_out[CONFIG_ERROR_MAX])
{
    char msg[160];
    const config_setting_t *s = config_setting_get_member(root, name);

    if (s == NULL)
        return MP_OK;
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        snprintf(msg, sizeof(msg), "%s must be a string in double quotes", name);
        return setting_error(s, path, msg, error_out);
    }
    const char *v = config_setting_get_string(s);
    if (strlen(v) >= size) {
        snprintf(msg, sizeof(msg), "%s is too long (at most %zu bytes)", name, size - 1);
        return setting_error(s, path, msg, error_out);
    }
    snprintf(out, size, "%s", v);
    return MP_OK;
}

static enum mp_err read_count(const config_setting_t *root, const char *name, const char *path,
                              unsigned max, unsigned *out, char error_out[CONFIG_ERROR_MAX])
{
    char msg[160];
    const config_setting_t *s = config_setting_get_member(root, name);

    if (s == NULL)
        return MP_OK;
    long long v = config_setting_get_int64(s);
    if ((config_setting_type(s) != CONFIG_TYPE_INT &&
         config_setting_type(s) != CONFIG_TYPE_INT64) ||
        v < 0 || v > (long long)max) {
        snprintf(msg, sizeof(msg), "%s must be a number from 0 to %u", name, max);
        return setting_error(s, path, msg, error_out);
    }
    *out = (unsigned)v;
    return MP_OK;
}

static enum mp_err check_known(const config_setting_t *root, const char *path,
                               char error_out[CONFIG_ERROR_MAX])
{
    static const char *const known[] = {"listen",         "port",         "control_socket",
                                        "log_level",      "bootstrap",    "dht_ip_limit",
                                        "dht_rate_limit", "cluster_only", "bootstrap_only",
                                        "mailbox"};
    char msg[160];

    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok = ok || strcmp(name, known[k]) == 0;
        if (!ok) {
            snprintf(msg, sizeof(msg), "unknown setting \"%s\"", name);
            return setting_error(s, path, msg, error_out);
        }
    }
    return MP_OK;
}

/* The `mailbox` group. */
static enum mp_err apply_mailbox(const config_setting_t *g, const char *path,
                                 struct config_mailbox *mb, char error_out[CONFIG_ERROR_MAX])
{
    static const char *const known[] = {"serve",    "ttl",  "max_count", "max_kib",
                                        "total_mib", "rate", "burst",     "replicas",
                                        "fetch_interval", "handoff_interval", "nodes"};
    enum mp_err err;
    const config_setting_t *s;
    char msg[160];

    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return setting_error(g, path, "mailbox must be a group { ... }", error_out);
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            ok = ok || strcmp(config_setting_name(e), known[k]) == 0;
        if (!ok) {
            snprintf(msg, sizeof(msg), "unknown setting \"mailbox.%s\"", config_setting_name(e));
            return setting_error(e, path, msg, error_out);
        }
    }
    if ((s = config_setting_get_member(g, "serve")) != NULL) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return setting_error(s, path, "mailbox.serve must be true or false", error_out);
        mb->serve = config_setting_get_bool(s) != 0;
    }
    if ((err = read_count(g, "ttl", path, 365u * 24 * 3600, &mb->ttl_s, error_out)) ||
        (err = read_count(g, "max_count", path, 10000000, &mb->max_count, error_out)) ||
        (err = read_count(g, "max_kib", path, 64u * 1024 * 1024, &mb->max_kib, error_out)) ||
        (err = read_count(g, "total_mib", path, 1024u * 1024, &mb->total_mib, error_out)) ||
        (err = read_count(g, "rate", path, 1000000, &mb->rate, error_out)) ||
        (err = read_count(g, "burst", path, 10000000, &mb->burst, error_out)) ||
        (err = read_count(g, "replicas", path, CONFIG_MAILBOX_REPLICAS_MAX, &mb->replicas,
                          error_out)) ||
        (err =
             read_count(g, "fetch_interval", path, 24 * 3600, &mb->fetch_interval_s, error_out)) ||
        (err = read_count(g, "handoff_interval", path, 24 * 3600, &mb->handoff_interval_s,
                          error_out)))
        return err;
    if (mb->ttl_s == 0 || mb->replicas == 0 || mb->fetch_interval_s == 0 ||
        mb->handoff_interval_s == 0)
        return setting_error(g, path,
                             "mailbox.ttl, replicas, fetch_interval and handoff_interval must be "
                             "above 0",
                             error_out);
    if ((s = config_setting_get_member(g, "nodes")) != NULL) {
        if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
            config_setting_type(s) != CONFIG_TYPE_LIST)
            return setting_error(s, path, "mailbox.nodes must be a list of strings in [ ]",
                                 error_out);
        mb->node_count = 0;
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            char why[200];
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return setting_error(s, path, "mailbox.nodes must be a list of strings", error_out);
            if (mb->node_count == CONFIG_MAILBOX_NODES_MAX) {
                snprintf(msg, sizeof(msg), "more than %d mailbox.nodes", CONFIG_MAILBOX_NODES_MAX);
                return setting_error(e, path, msg, error_out);
            }
            if (config_check_bootstrap(config_setting_get_string(e), why, sizeof(why)) != MP_OK)
                return setting_error(e, path, why, error_out);
            snprintf(mb->nodes[mb->node_count++], CONFIG_BOOTSTRAP_TEXT_MAX, "%s",
                     config_setting_get_string(e));
        }
    }
    return MP_OK;
}

static enum mp_err apply(const config_setting_t *root, const char *path, struct config *cfg,
                         char error_out[CONFIG_ERROR_MAX])
{
    enum mp_err err;
    char level[16] = "";
    const config_setting_t *s;

    if ((err = check_known(root, path, error_out)) != MP_OK)
        return err;
    if ((err = read_string(root, "listen", path, cfg->listen, sizeof(cfg->listen), error_out)))
        return err;
    struct addr probe;
    if (addr_from_ip(cfg->listen, 0, &probe) != MP_OK)
        return setting_error(config_setting_get_member(root, "listen"), path,
                             "listen must be a numeric IP address such as \"0.0.0.0\" or \"::1\"",
                             error_out);
    if ((s = config_setting_get_member(root, "port")) != NULL) {
        if (config_setting_type(s) != CONFIG_TYPE_INT &&
            config_setting_type(s) != CONFIG_TYPE_INT64)
            return setting_error(s, path, "port must be a number from 0 to 65535", error_out);
        long long v = config_setting_get_int64(s); /* widens CONFIG_TYPE_INT too */
        if (v < 0 || v > 65535)
            return setting_error(s, path, "port must be a number from 0 to 65535", error_out);
        cfg->port = (uint16_t)v;
    }
    if ((err = read_string(root, "control_socket", path, cfg->control_socket,
                           sizeof(cfg->control_socket), error_out)))
        return err;
    if ((err = read_count(root, "dht_ip_limit", path, 1000, &cfg->dht_ip_limit, error_out)) ||
        (err = read_count(root, "dht_rate_limit", path, 1000000, &cfg->dht_rate_limit, error_out)))
        return err;
    if ((s = config_setting_get_member(root, "bootstrap")) != NULL) {
        if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
            config_setting_type(s) != CONFIG_TYPE_LIST)
            return setting_error(s, path, "bootstrap must be a list of strings in [ ]", error_out);
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            char why[200];
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return setting_error(s, path, "bootstrap must be a list of strings", error_out);
            if (config_add_bootstrap(cfg, config_setting_get_string(e), why, sizeof(why)))
                return setting_error(e, path, why, error_out);
        }
    }
    if ((s = config_setting_get_member(root, "mailbox")) != NULL &&
        (err = apply_mailbox(s, path, &cfg->mailbox, error_out)) != MP_OK)
        return err;
    static const char *const flags[] = {"cluster_only", "bootstrap_only"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if ((s = config_setting_get_member(root, flags[i])) == NULL)
            continue;
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
            char msg[96];
            snprintf(msg, sizeof(msg), "%s must be true or false", flags[i]);
            return setting_error(s, path, msg, error_out);
        }
        *(i == 0 ? &cfg->cluster_only : &cfg->bootstrap_only) = config_setting_get_bool(s) != 0;
    }
    if ((s = config_setting_get_member(root, "log_level")) != NULL) {
        if ((err = read_string(root, "log_level", path, level, sizeof(level), error_out)))
            return err;
        if (log_level_parse(level, &cfg->log_level) != MP_OK)
            return setting_error(s, path,
                                 "log_level must be \"error\", \"warn\", \"info\" or \"debug\"",
                                 error_out);
    }
    return MP_OK;
}

enum mp_err config_load(const char *path, struct config *cfg, char error_out[CONFIG_ERROR_MAX])
{
    config_t lc;
    enum mp_err err;

    error_out[0] = '\0';
    if (access(path, F_OK) != 0) {
        snprintf(error_out, CONFIG_ERROR_MAX, "%s: no such file", path);
        return MP_ERR_NOT_FOUND;
    }
    config_init(&lc);
    if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
            snprintf(error_out, CONFIG_ERROR_MAX, "%s: cannot read: %s", path, strerror(errno));
        else
            snprintf(error_out, CONFIG_ERROR_MAX, "%s:%d: %s", path, config_error_line(&lc),
                     config_error_text(&lc));
        err = MP_ERR_CONFIG;
        goto cleanup;
    }
    err = apply(config_root_setting(&lc), path, cfg, error_out);
cleanup:
    config_destroy(&lc);
    return err;
}

enum mp_err config_write_default(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return mp_err_from_errno(errno);
    size_t len = sizeof(default_text) - 1;
    ssize_t n = write(fd, default_text, len);
    enum mp_err err = MP_OK;
    if (n < 0 || (size_t)n != len)
        err = n < 0 ? mp_err_from_errno(errno) : MP_ERR_IO;
    else if (fsync(fd) != 0)
        err = mp_err_from_errno(errno);
    close(fd);
    if (err != MP_OK)
        unlink(path);
    return err;
}
