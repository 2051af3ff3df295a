/*
 * merpati: the command line. `init` and `run` work on the data dir directly;
 * every other command is a client of the running daemon's control socket.
 * Exit codes are sysexits.h; every failure prints one "merpati: error:" line
 * and, where it helps, a "hint:" line.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/identity.h"
#include "node/client.h"
#include "node/config.h"
#include "node/daemon.h"
#include "node/keyfile.h"
#include "node/msg.h"
#include "node/paths.h"
#include "node/rpc.h"
#include "node/store.h"
#include "node/sysenv.h"

/* Most arguments a command line may have. */
#define CLI_ARGS_MAX 64
/* How long `stop` waits for the daemon to release the data dir. */
#define CLI_STOP_WAIT_MS 15000

static const char usage_text[] =
    "usage: merpati [global flags] <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  init      create a node (data dir, identity, config) and print its address\n"
    "  run       run the node in the foreground (Ctrl-C stops it)\n"
    "  id        print the running node's address\n"
    "  status    show the running node's state\n"
    "  peers     list the DHT nodes this node knows [--network NAME]\n"
    "  send <contact|address> <text|->  send a message (- reads stdin); prints its id\n"
    "            [--wait [--timeout S]]: wait until it is delivered (\"delivered\" on\n"
    "            stderr; exit 75 if not yet: the id is printed, it stays queued)\n"
    "  inbox     messages received, a page from the oldest [--from A] [--since CURSOR]\n"
    "            [--requests] [--limit N (100)]\n"
    "  history <contact|address>  the conversation with one account, both ways, its\n"
    "            newest texts [--limit N (100)]\n"
    "  listen    print messages and delivery events as they happen [--since CURSOR]\n"
    "  mailboxes <contact|address>  the nodes that would hold its mail while it is offline\n"
    "  contacts  manage contacts (subcommands below)\n"
    "  cluster   private clusters (subcommands below)\n"
    "  bootstrap the public network's bootstrap list: list | add K@IP:PORT | rm IP:PORT\n"
    "  stop      stop the running node\n"
    "  help      show this text\n"
    "\n"
    "Global flags (anywhere on the line):\n"
    "  --data-dir D   the node's data dir (default: $MERPATI_DATA_DIR,\n"
    "                 else $XDG_DATA_HOME/merpati, else ~/.local/share/merpati)\n"
    "  --config F     config file (default: <data dir>/merpati.conf)\n"
    "  --json         print machine-readable JSON\n"
    "  -h, --help     show this text;  --version  print the version\n"
    "\n"
    "Flags of run (override the config file):\n"
    "  --port N        UDP and TCP port (0 = any free port)\n"
    "  --listen IP     numeric address to listen on\n"
    "  --log-level L   error, warn, info or debug\n"
    "  --bootstrap K@IP:PORT   join the DHT through this node (repeatable; K is its\n"
    "                  node key, printed by `merpati status` on that node)\n"
    "  --cluster-only  open no public network, only the joined clusters\n"
    "  --bootstrap-only  serve the DHT only: no presence, no messages\n"
    "\n"
    "Contacts (<c> is a name, an address, or the start of one):\n"
    "  contacts add <address> [--name N]   add (or rename, accept, unblock)\n"
    "                          [--network NAME ...] pin it to those networks only\n"
    "                          [--unpin] use every network again (the seen ones first)\n"
    "  contacts list [--requests|--blocked]  contacts, or who wrote unasked, or blocked\n"
    "  contacts show <c>       details, node key, a key-change warning\n"
    "  contacts remove <c>     forget <c> (if they write again: a request)\n"
    "  contacts block <c>      drop their messages (<c> may be any address)\n"
    "  contacts accept <c>     a request becomes a contact\n"
    "  contacts verify <c> [--confirm]  show the safety number; --confirm marks <c>\n"
    "                          verified once both of you saw the same digits\n"
    "  contacts trust <c>      accept <c>'s new node key after a key change\n"
    "\n"
    "Private clusters (a running node starts and stops them at once):\n"
    "  cluster create NAME [--port N] [--bootstrap IP:PORT|K@IP:PORT ...]\n"
    "                          make a cluster; prints its join token and fingerprint\n"
    "  cluster join TOKEN [--port N]   join with a token from a member\n"
    "  cluster list            joined clusters: fingerprint, port, peers\n"
    "  cluster token NAME      a join token for NAME that names this node\n"
    "  cluster leave NAME      stop and forget NAME\n"
    "  (--port 0, the default, picks a free port once and keeps it)\n";

struct cli {
    const char *data_dir_flag;
    const char *config_flag;
    bool json;
    const char *command;
    const char *args[CLI_ARGS_MAX]; /* the command's own flags and values, in order */
    int arg_count;
    char data_dir[PATHS_MAX];
    char config_path[PATHS_MAX];
    char control_path[PATHS_MAX];
    struct config config;
};

static void print_error(const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void print_error(const char *hint, const char *fmt, ...)
{
    va_list ap;
    fputs("merpati: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (hint != NULL)
        fprintf(stderr, "hint: %s\n", hint);
}

/* A command line that does not parse: the error and where the usage is
 * (all of it follows only when no known command was given). */
static int usage_error_v(bool whole_usage, const char *fmt, va_list ap)
{
    fputs("merpati: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (whole_usage) {
        fputs("\n\n", stderr);
        fputs(usage_text, stderr);
    } else {
        fputs("\nhint: `merpati help` shows every command and its flags\n", stderr);
    }
    return EX_USAGE;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_error_v(false, fmt, ap);
    va_end(ap);
    return rc;
}

static int command_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int command_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_error_v(true, fmt, ap);
    va_end(ap);
    return rc;
}

/* Flags that take a value, global or a command's: their values are not positionals. */
static bool takes_value(const char *flag)
{
    static const char *const flags[] = {"--data-dir",  "--config",  "--port",    "--listen",
                                        "--log-level", "--bootstrap", "--from",  "--since",
                                        "--timeout",   "--limit",     "--name",    "--network"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (strcmp(flag, flags[i]) == 0)
            return true;
    }
    return false;
}

/* Split argv into global flags, the command and the command's arguments. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = NULL;
        if (takes_value(a)) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            value = argv[++i];
        }
        if (strcmp(a, "--data-dir") == 0) {
            cli->data_dir_flag = value;
        } else if (strcmp(a, "--config") == 0) {
            cli->config_flag = value;
        } else if (strcmp(a, "--json") == 0) {
            cli->json = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli->command = "help";
        } else if (strcmp(a, "--version") == 0) {
            cli->command = "version";
        } else if (a[0] != '-' && cli->command == NULL) {
            cli->command = a;
        } else {
            if (cli->arg_count + 2 > CLI_ARGS_MAX)
                return usage_error("%s", "too many arguments");
            cli->args[cli->arg_count++] = a;
            if (value != NULL)
                cli->args[cli->arg_count++] = value;
        }
    }
    return 0;
}

static int path_too_long(const char *what)
{
    print_error("use shorter paths", "the %s path is longer than %d bytes", what, PATHS_MAX - 1);
    return EX_USAGE;
}

/* Resolve the data dir, config path and control socket path, and read the
 * config file. A missing default config is fine; a missing --config is not,
 * except for init (missing_config_ok), which creates it. */
static int load_settings(struct cli *cli, bool missing_config_ok)
{
    char error[CONFIG_ERROR_MAX];

    enum mp_err err = paths_data_dir(cli->data_dir_flag, cli->data_dir, sizeof(cli->data_dir));
    if (err == MP_ERR_TOO_BIG)
        return path_too_long("data dir");
    if (err != MP_OK) {
        print_error("pass --data-dir or set MERPATI_DATA_DIR",
                    "cannot tell where the data dir is: HOME is not set");
        return EX_CONFIG;
    }
    if (cli->config_flag != NULL) {
        if ((size_t)snprintf(cli->config_path, sizeof(cli->config_path), "%s",
                             cli->config_flag) >= sizeof(cli->config_path))
            return path_too_long("config file");
    } else if (paths_join(cli->data_dir, "merpati.conf", cli->config_path,
                          sizeof(cli->config_path)) != MP_OK) {
        return path_too_long("config file");
    }
    config_defaults(&cli->config);
    err = config_load(cli->config_path, &cli->config, error);
    if (err == MP_ERR_NOT_FOUND && (cli->config_flag == NULL || missing_config_ok))
        err = MP_OK;
    if (err != MP_OK) {
        fprintf(stderr, "%s\n", error);
        return EX_CONFIG;
    }
    if (cli->config.control_socket[0] != '\0')
        snprintf(cli->control_path, sizeof(cli->control_path), "%s", cli->config.control_socket);
    else if (paths_join(cli->data_dir, "control.sock", cli->control_path,
                        sizeof(cli->control_path)) != MP_OK)
        return path_too_long("control socket");
    return 0;
}

static void print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
}

/* ---- init ---- */

static int cmd_init(struct cli *cli)
{
    char key_path[PATHS_MAX];
    char address[ADDRESS_TEXT_SIZE];
    struct identity *id = NULL;
    struct env env = {0};
    struct stat st;
    int rc;

    if (cli->arg_count > 0)
        return usage_error("init takes no argument \"%s\"", cli->args[0]);
    if ((rc = load_settings(cli, true)) != 0)
        return rc;
    if (paths_join(cli->data_dir, "identity.key", key_path, sizeof(key_path)) != MP_OK)
        return path_too_long("key file");
    if (stat(key_path, &st) == 0) {
        print_error("use it with `merpati run`, or pick another --data-dir",
                    "already initialized at %s", cli->data_dir);
        return EX_CANTCREAT;
    }
    umask(0077);
    enum mp_err err = paths_mkdir_private(cli->data_dir);
    if (err != MP_OK) {
        print_error(NULL, "cannot create the data dir %s: %s", cli->data_dir, mp_strerror(err));
        return EX_CANTCREAT;
    }
    /* The config first: the key file marks a finished init. */
    if (stat(cli->config_path, &st) != 0 &&
        (err = config_write_default(cli->config_path)) != MP_OK) {
        print_error(NULL, "cannot write %s: %s", cli->config_path, mp_strerror(err));
        return EX_CANTCREAT;
    }
    if ((err = sysenv_init(&env)) != MP_OK || (err = identity_generate(&env, &id)) != MP_OK) {
        print_error(NULL, "cannot create an identity: %s", mp_strerror(err));
        return EX_SOFTWARE;
    }
    err = keyfile_write(key_path, id);
    address_encode(identity_public_key(id), address);
    identity_free(id);
    if (err != MP_OK) {
        print_error(NULL, "cannot write %s: %s", key_path, mp_strerror(err));
        return err == MP_ERR_EXISTS ? EX_CANTCREAT : EX_IOERR;
    }
    if (cli->json) {
        json_t *out = json_pack("{s:s, s:s, s:s}", "address", address, "data_dir", cli->data_dir,
                                "config", cli->config_path);
        print_json(out);
        json_decref(out);
    } else {
        printf("%s\n", address);
        fprintf(stderr, "initialized a node at %s; start it with `merpati run`\n", cli->data_dir);
    }
    return 0;
}

/* ---- run ---- */

static int cmd_run(struct cli *cli)
{
    int rc = load_settings(cli, false);
    if (rc != 0)
        return rc;
    for (int i = 0; i < cli->arg_count; i += 2) {
        const char *flag = cli->args[i];
        const char *value = i + 1 < cli->arg_count ? cli->args[i + 1] : NULL;
        if (strcmp(flag, "--bootstrap-only") == 0 || strcmp(flag, "--cluster-only") == 0) {
            *(flag[2] == 'b' ? &cli->config.bootstrap_only : &cli->config.cluster_only) = true;
            i--; /* no value */
            continue;
        }
        if (!takes_value(flag) || value == NULL)
            return usage_error("run does not know \"%s\"", flag);
        if (strcmp(flag, "--port") == 0) {
            char *end = NULL;
            errno = 0;
            long port = strtol(value, &end, 10);
            if (errno != 0 || *end != '\0' || end == value || port < 0 || port > 65535)
                return usage_error("--port wants a number from 0 to 65535, not \"%s\"", value);
            cli->config.port = (uint16_t)port;
        } else if (strcmp(flag, "--listen") == 0) {
            struct addr probe;
            if (addr_from_ip(value, 0, &probe) != MP_OK ||
                strlen(value) >= sizeof(cli->config.listen))
                return usage_error("--listen wants a numeric IP address, not \"%s\"", value);
            snprintf(cli->config.listen, sizeof(cli->config.listen), "%s", value);
        } else if (strcmp(flag, "--bootstrap") == 0) {
            char why[200];
            if (config_add_bootstrap(&cli->config, value, why, sizeof(why)) != MP_OK)
                return usage_error("%s", why);
        } else if (strcmp(flag, "--log-level") == 0) {
            if (log_level_parse(value, &cli->config.log_level) != MP_OK)
                return usage_error("--log-level wants error, warn, info or debug, not \"%s\"",
                                   value);
        } else {
            return usage_error("run does not know \"%s\"", flag);
        }
    }
    struct daemon_options opts = {
        .data_dir = cli->data_dir,
        .control_path = cli->control_path,
        .config = cli->config,
    };
    return daemon_run(&opts);
}

/* ---- clients of the control socket ---- */

/* The exit code for a node error in a reply. */
static int exit_for(enum mp_err err)
{
    switch (err) {
    case MP_ERR_ADDR_PREFIX:
    case MP_ERR_ADDR_LENGTH:
    case MP_ERR_ADDR_ALPHABET:
    case MP_ERR_ADDR_CHECKSUM:
    case MP_ERR_ADDR_VERSION:
    case MP_ERR_ADDR_KEY:
    case MP_ERR_ADDR_CASE:
    case MP_ERR_TOO_BIG:
    case MP_ERR_INVAL:
    case MP_ERR_CONTACT_AMBIGUOUS:
    case MP_ERR_CLUSTER_TOKEN:
    case MP_ERR_CLUSTER_TOKEN_CHECKSUM:
    case MP_ERR_CLUSTER_TOKEN_VERSION:
    case MP_ERR_CONFIG:
        return EX_DATAERR;
    case MP_ERR_CLUSTER_UNKNOWN:
        return EX_NOUSER;
    case MP_ERR_EXISTS:
        return EX_CANTCREAT;
    case MP_ERR_NOT_FOUND:
        return EX_NOUSER;
    case MP_ERR_KEY_CHANGED:
        return EX_NOPERM;
    case MP_ERR_TIMEOUT:
    case MP_ERR_BUSY:
    case MP_ERR_DHT_NO_PEERS:
    case MP_ERR_DHT_BUSY:
        return EX_TEMPFAIL;
    case MP_ERR_DISK_FULL:
    case MP_ERR_IO:
    case MP_ERR_STORE:
        return EX_IOERR;
    case MP_ERR_UNAVAILABLE:
        return EX_UNAVAILABLE;
    default:
        return EX_SOFTWARE;
    }
}

/* Report a transport failure of a call; returns its exit code. */
static int transport_error(struct cli *cli, enum mp_err err)
{
    switch (err) {
    case MP_ERR_UNAVAILABLE:
    case MP_ERR_NOT_FOUND:
        print_error("start it with `merpati run` (or scripts/run), with the same --data-dir",
                    "daemon not running (no socket at %s)", cli->control_path);
        return EX_UNAVAILABLE;
    case MP_ERR_TIMEOUT:
        print_error("it may be overloaded or stuck; see its log",
                    "the daemon did not answer in time");
        return EX_TEMPFAIL;
    case MP_ERR_PERM:
        print_error("run merpati as the user that runs the daemon",
                    "no permission to use %s", cli->control_path);
        return EX_NOPERM;
    default:
        print_error(NULL, "talking to the daemon at %s failed: %s", cli->control_path,
                    mp_strerror(err));
        return EX_PROTOCOL;
    }
}

/* Call method with params (stolen, may be NULL) and a timeout (0: default);
 * on failure print why and return the exit code, else 0. */
static int call_with(struct cli *cli, const char *method, json_t *params, int timeout_ms,
                     struct client_reply *reply)
{
    enum mp_err err = client_call(cli->control_path, method, params, timeout_ms, reply);
    if (err != MP_OK)
        return transport_error(cli, err);
    if (reply->result == NULL && reply->rpc_code == RPC_CODE_METHOD_NOT_FOUND) {
        /* Messaging methods are there only while the node runs messaging. */
        print_error("a --bootstrap-only node, or a cluster_only one that has joined no cluster "
                    "yet (merpati cluster join TOKEN), runs no messaging",
                    "this node does not offer \"%s\"", method);
        return EX_UNAVAILABLE;
    }
    if (reply->result == NULL) {
        print_error(NULL, "%s", reply->message);
        if (reply->rpc_code == RPC_CODE_FAILED ||
            (reply->rpc_code == RPC_CODE_INVALID_PARAMS && reply->err != MP_ERR_IO))
            return exit_for(reply->err);
        return reply->rpc_code == RPC_CODE_INVALID_PARAMS ? EX_DATAERR : EX_SOFTWARE;
    }
    return 0;
}


static int client_command(struct cli *cli, const char *method, int (*show)(struct cli *, json_t *))
{
    struct client_reply reply;
    int rc;

    if (cli->arg_count > 0)
        return usage_error("unknown flag \"%s\"", cli->args[0]);
    if ((rc = load_settings(cli, false)) != 0)
        return rc;
    if ((rc = call_with(cli, method, NULL, 0, &reply)) == 0) {
        if (cli->json)
            print_json(reply.result);
        else
            rc = show(cli, reply.result);
    }
    client_reply_clear(&reply);
    return rc;
}

static int show_id(struct cli *cli, json_t *result)
{
    (void)cli;
    printf("%s\n", json_string_value(json_object_get(result, "address")));
    return 0;
}

static int show_status(struct cli *cli, json_t *result)
{
    json_t *ports = json_object_get(result, "ports");
    json_t *dropped = json_object_get(result, "dropped");
    (void)cli;
    printf("address         %s\n", json_string_value(json_object_get(result, "address")));
    printf("version         %s\n", json_string_value(json_object_get(result, "version")));
    printf("pid             %lld\n", (long long)json_integer_value(json_object_get(result, "pid")));
    printf("uptime          %lld s\n",
           (long long)json_integer_value(json_object_get(result, "uptime_s")));
    printf("ports           udp %lld, tcp %lld\n",
           (long long)json_integer_value(json_object_get(ports, "udp")),
           (long long)json_integer_value(json_object_get(ports, "tcp")));
    printf("data dir        %s\n", json_string_value(json_object_get(result, "data_dir")));
    printf("control socket  %s\n", json_string_value(json_object_get(result, "control_socket")));
    printf("unhandled       %lld datagrams, %lld connections\n",
           (long long)json_integer_value(json_object_get(dropped, "udp_unhandled")),
           (long long)json_integer_value(json_object_get(dropped, "tcp_unhandled")));
    json_t *dht = json_object_get(result, "dht");
    if (dht != NULL) {
        printf("network         %s\n", json_string_value(json_object_get(dht, "network")));
        printf("dht peers       %lld\n",
               (long long)json_integer_value(json_object_get(dht, "table_size")));
        printf("dht records     %lld held (ours too)\n",
               (long long)json_integer_value(json_object_get(dht, "records")));
        printf("dht datagrams   %lld in, %lld out\n",
               (long long)json_integer_value(json_object_get(dht, "rx")),
               (long long)json_integer_value(json_object_get(dht, "tx")));
        printf("dht dropped    ");
        const char *reason;
        json_t *n;
        size_t shown = 0;
        json_object_foreach(json_object_get(dht, "dropped"), reason, n)
        {
            printf(" %s %lld", reason, (long long)json_integer_value(n));
            shown++;
        }
        printf("%s\n", shown == 0 ? " none" : "");
        printf("bootstrap       %s\n", json_string_value(json_object_get(dht, "bootstrap")));
    }
    size_t ni;
    json_t *net;
    json_array_foreach(json_object_get(result, "networks"), ni, net)
    {
        json_t *nd = json_object_get(json_object_get(net, "dht"), "dropped");
        json_t *ld = json_object_get(net, "dropped");
        const char *fp = json_string_value(json_object_get(net, "fingerprint"));
        printf("%-16s%s%s%s%s port %lld, %lld peers, %lld links up; dropped: %lld auth, %lld "
               "link psk/decrypt\n",
               ni == 0 ? "networks" : "", json_string_value(json_object_get(net, "name")),
               fp != NULL ? " (" : "", fp != NULL ? fp : "", fp != NULL ? ")" : "",
               (long long)json_integer_value(json_object_get(net, "port")),
               (long long)json_integer_value(json_object_get(net, "table_size")),
               (long long)json_integer_value(
                   json_object_get(json_object_get(net, "links"), "up")),
               (long long)json_integer_value(json_object_get(nd, "auth")),
               (long long)(json_integer_value(json_object_get(ld, "link_psk")) +
                           json_integer_value(json_object_get(ld, "link_decrypt"))));
        const char *warning = json_string_value(json_object_get(net, "warning"));
        if (warning != NULL)
            printf("warning         %s: %s\n", json_string_value(json_object_get(net, "name")),
                   warning);
    }
    if (json_array_size(json_object_get(result, "networks")) == 0)
        printf("networks        none (cluster_only and no cluster joined)\n");
    json_t *links = json_object_get(result, "links");
    if (links != NULL)
        printf("links           %lld up (%lld dialed, %lld accepted)\n",
               (long long)json_integer_value(json_object_get(links, "up")),
               (long long)json_integer_value(json_object_get(links, "dials")),
               (long long)json_integer_value(json_object_get(links, "accepted")));
    json_t *msgs = json_object_get(result, "messages");
    if (msgs != NULL)
        printf("messages        %lld sent, %lld acked, %lld received, %lld duplicates, "
               "%lld refused, %lld undecryptable\n",
               (long long)json_integer_value(json_object_get(msgs, "sent")),
               (long long)json_integer_value(json_object_get(msgs, "acked")),
               (long long)json_integer_value(json_object_get(msgs, "received")),
               (long long)json_integer_value(json_object_get(msgs, "duplicates")),
               (long long)json_integer_value(json_object_get(msgs, "refused")),
               (long long)json_integer_value(json_object_get(msgs, "undecryptable")));
    json_t *out = json_object_get(msgs, "to_mailboxes");
    if (out != NULL)
        printf("to mailboxes    %lld contacts offline, %lld held, %lld full, %lld rate-limited, "
               "%lld expired\n",
               (long long)json_integer_value(json_object_get(out, "peers")),
               (long long)json_integer_value(json_object_get(out, "held")),
               (long long)json_integer_value(json_object_get(out, "full")),
               (long long)json_integer_value(json_object_get(out, "rate_limited")),
               (long long)json_integer_value(json_object_get(out, "expired")));
    json_t *mb = json_object_get(result, "mailbox");
    if (mb != NULL) {
        printf("mailbox         %s; holding %lld envelopes (%lld bytes) for others; %lld fetched "
               "for us\n",
               json_is_true(json_object_get(mb, "serving")) ? "serving" : "not serving",
               (long long)json_integer_value(json_object_get(mb, "held")),
               (long long)json_integer_value(json_object_get(mb, "held_bytes")),
               (long long)json_integer_value(json_object_get(mb, "fetched")));
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(mb, "own_nodes"), i, n)
        printf("my mailbox      %s@%s\n", json_string_value(json_object_get(n, "node_key")),
               json_string_value(json_object_get(n, "addr")));
    }
    return 0;
}

static int show_peers(struct cli *cli, json_t *result)
{
    json_t *peers = json_object_get(result, "peers");
    size_t i;
    json_t *p;
    (void)cli;

    if (json_array_size(peers) == 0) {
        printf("no peers yet (is a bootstrap node configured and reachable?)\n");
        return 0;
    }
    printf("%-16s  %-28s  %9s  %6s\n", "ID", "ADDRESS", "LAST SEEN", "RTT");
    json_array_foreach(peers, i, p)
    {
        printf("%-16s  %-28s  %7llds  %4lldms\n", json_string_value(json_object_get(p, "id")),
               json_string_value(json_object_get(p, "address")),
               (long long)json_integer_value(json_object_get(p, "last_seen_s")),
               (long long)json_integer_value(json_object_get(p, "rtt_ms")));
    }
    return 0;
}

/* `peers [--network NAME]`: the primary network's table, or NAME's. */
static int cmd_peers(struct cli *cli)
{
    struct client_reply reply;
    int rc;

    if (cli->arg_count == 0)
        return client_command(cli, "peers", show_peers);
    if (cli->arg_count != 2 || strcmp(cli->args[0], "--network") != 0)
        return usage_error("peers takes only --network NAME, not \"%s\"", cli->args[0]);
    if ((rc = load_settings(cli, false)) != 0)
        return rc;
    memset(&reply, 0, sizeof(reply));
    if ((rc = call_with(cli, "peers", json_pack("{s:s}", "network", cli->args[1]), 0, &reply)) ==
        0) {
        if (cli->json)
            print_json(reply.result);
        else
            rc = show_peers(cli, reply.result);
    }
    client_reply_clear(&reply);
    return rc;
}

/* Wait until the daemon has released the data dir, so that a `run` right after
 * `stop` succeeds. */
static int wait_released(struct cli *cli)
{
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
    pid_t holder = 0;

    for (int waited = 0; waited < CLI_STOP_WAIT_MS; waited += 20) {
        if (store_lock_holder(cli->data_dir, &holder) != MP_OK)
            return 0;
        nanosleep(&pause, NULL);
    }
    print_error("look at its log; `kill` the pid if it is stuck",
                "the daemon (pid %ld) was asked to stop but still holds %s after %d s",
                (long)holder, cli->data_dir, CLI_STOP_WAIT_MS / 1000);
    return EX_TEMPFAIL;
}

static int show_stopped(struct cli *cli, json_t *result)
{
    (void)result;
    int rc = wait_released(cli);
    if (rc == 0)
        fprintf(stderr, "stopped\n");
    return rc;
}

static int cmd_stop(struct cli *cli)
{
    int rc = client_command(cli, "shutdown", show_stopped);
    /* With --json, client_command printed the reply instead of waiting. */
    if (rc == 0 && cli->json)
        rc = wait_released(cli);
    return rc;
}

/* ---- messaging ---- */

/* The command's positional arguments and its flags (with values) apart. */
struct cmd_args {
    const char *pos[8];
    int pos_count;
    const char *from, *since, *timeout, *limit;
    bool wait, requests;
};

static int split_args(struct cli *cli, struct cmd_args *a, const char *const *allowed)
{
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < cli->arg_count; i++) {
        const char *arg = cli->args[i];
        bool ok = false;
        if (arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (a->pos_count >= 8)
                return usage_error("%s", "too many arguments");
            a->pos[a->pos_count++] = arg;
            continue;
        }
        for (const char *const *f = allowed; *f != NULL && !ok; f++)
            ok = strcmp(*f, arg) == 0;
        if (!ok)
            return usage_error("%s does not know \"%s\"", cli->command, arg);
        const char *value = takes_value(arg) ? cli->args[++i] : NULL;
        if (strcmp(arg, "--from") == 0)
            a->from = value;
        else if (strcmp(arg, "--since") == 0)
            a->since = value;
        else if (strcmp(arg, "--timeout") == 0)
            a->timeout = value;
        else if (strcmp(arg, "--limit") == 0)
            a->limit = value;
        else if (strcmp(arg, "--wait") == 0)
            a->wait = true;
        else if (strcmp(arg, "--requests") == 0)
            a->requests = true;
    }
    return 0;
}

/* A non-negative integer flag value into a JSON params member. */
static int number_param(json_t *params, const char *name, const char *flag, const char *text)
{
    char *end = NULL;
    errno = 0;
    long long v = text != NULL ? strtoll(text, &end, 10) : 0;
    if (text == NULL)
        return 0;
    if (errno != 0 || end == text || *end != '\0' || v < 0)
        return usage_error("%s wants a number, not \"%s\"", flag, text);
    json_object_set_new(params, name, json_integer(v));
    return 0;
}

/* Read the message text from stdin ("-"), refusing more than MSG_TEXT_MAX bytes. */
static int read_stdin_text(char **text_out, size_t *len_out)
{
    /* Room for the longest text, a trailing newline and one byte more, which
     * tells a text too long. */
    size_t cap = MSG_TEXT_MAX + 3, len = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        print_error(NULL, "out of memory");
        return EX_OSERR;
    }
    errno = 0;
    for (;;) {
        size_t n = fread(text + len, 1, cap - 1 - len, stdin);
        len += n;
        if (n == 0 || len == cap - 1 || ferror(stdin))
            break;
    }
    if (ferror(stdin)) { /* never send what may be only the start of it */
        int e = errno;
        free(text);
        print_error("nothing was sent; check what feeds it, and send again",
                    "cannot read the message from stdin: %s", e != 0 ? strerror(e) : "read error");
        return EX_IOERR;
    }
    /* One trailing newline from `echo` or a here-doc is not part of the message. */
    if (len > 0 && text[len - 1] == '\n')
        len--;
    if (len > MSG_TEXT_MAX) {
        free(text);
        print_error("split it into several messages",
                    "the message is longer than %d bytes", MSG_TEXT_MAX);
        return EX_DATAERR;
    }
    text[len] = '\0';
    *text_out = text;
    *len_out = len;
    return 0;
}

static int cmd_send(struct cli *cli)
{
    static const char *const flags[] = {"--wait", "--timeout", NULL};
    struct cmd_args a;
    struct client_reply reply;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = split_args(cli, &a, flags)) != 0)
        return rc;
    if (a.pos_count != 2)
        return usage_error("%s", "send wants <contact|address> and <text> (or - to read stdin)");
    if ((rc = load_settings(cli, false)) != 0)
        return rc;
    if (strcmp(a.pos[1], "-") == 0) {
        if ((rc = read_stdin_text(&text, &len)) != 0)
            return rc;
    } else {
        len = strlen(a.pos[1]);
        if (len > MSG_TEXT_MAX) {
            print_error("split it into several messages", "the message is longer than %d bytes",
                        MSG_TEXT_MAX);
            return EX_DATAERR;
        }
        text = strdup(a.pos[1]);
        if (text == NULL) {
            print_error(NULL, "out of memory");
            return EX_OSERR;
        }
    }
    long wait_s = 0;
    if (a.wait || a.timeout != NULL) {
        char *end = NULL;
        wait_s = a.timeout != NULL ? strtol(a.timeout, &end, 10) : 30;
        if (a.timeout != NULL &&
            (end == a.timeout || *end != '\0' || wait_s <= 0 || wait_s > 600)) {
            free(text);
            return usage_error("--timeout wants seconds from 1 to 600, not \"%s\"", a.timeout);
        }
    }
    json_t *params = json_pack("{s:s, s:s%}", "to", a.pos[0], "text", text, len);
    free(text);
    if (params == NULL) {
        print_error("messages are UTF-8 text", "the message is not valid UTF-8");
        return EX_DATAERR;
    }
    if (wait_s > 0)
        json_object_set_new(params, "wait_ms", json_integer(wait_s * 1000));
    rc = call_with(cli, "send", params, wait_s > 0 ? (int)(wait_s * 1000) + 5000 : 0, &reply);
    /* Whenever the message is queued, its id is on stdout: also after an
     * error that leaves it queued (not delivered in time, not waited for,
     * the node stopping), whose data names it. */
    const char *queued_id =
        reply.result == NULL ? json_string_value(json_object_get(reply.data, "id")) : NULL;
    if (queued_id != NULL) {
        if (cli->json) {
            json_t *queued = json_pack("{s:s, s:s}", "id", queued_id, "state", "queued");
            print_json(queued);
            json_decref(queued);
        } else {
            printf("%s\n", queued_id);
        }
        fprintf(stderr, "hint: it stays queued and goes out %s\n",
                reply.err == MP_ERR_TIMEOUT || reply.err == MP_ERR_BUSY
                    ? "when the recipient is reachable"
                    : reply.err == MP_ERR_UNAVAILABLE ? "once the node runs again"
                                                      : "once the node is restarted");
    }
    if (rc == 0) {
        const char *id = json_string_value(json_object_get(reply.result, "id"));
        if (cli->json) {
            print_json(reply.result);
        } else {
            if (id != NULL)
                printf("%s\n", id);
            const char *state = json_string_value(json_object_get(reply.result, "state"));
            json_t *via = json_object_get(reply.result, "via");
            if (via != NULL && strcmp(json_string_value(via), "mailbox") == 0)
                fprintf(stderr, "queued for mailbox: the recipient's node is not reachable now; "
                                "its mailboxes hold it until it comes back\n");
            else if (state != NULL && strcmp(state, "delivered") == 0)
                fprintf(stderr, "delivered\n");
        }
    }
    client_reply_clear(&reply);
    return rc;
}

/* ---- contacts ---- */

/* "2026-11-30 10:22 UTC" for Unix ms, "never" for null. */
static const char *when(json_t *ms, char *out, size_t cap)
{
    struct tm tm;
    if (!json_is_integer(ms)) {
        snprintf(out, cap, "never");
        return out;
    }
    time_t t = (time_t)(json_integer_value(ms) / 1000);
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(out, cap, "?");
    return out;
}

/* The contact's name, else its address. */
static const char *label(json_t *contact)
{
    const char *name = json_string_value(json_object_get(contact, "name"));
    return name != NULL ? name : json_string_value(json_object_get(contact, "address"));
}

static const char *address_hint(enum mp_err err)
{
    switch (err) {
    case MP_ERR_ADDR_CHECKSUM:
        return "a character is wrong or two are swapped: copy and paste the whole address "
               "again (it starts with mp1 and has 62 characters)";
    case MP_ERR_ADDR_LENGTH:
        return "an address has 62 characters and starts with mp1: some are missing or extra; "
               "copy and paste it whole";
    case MP_ERR_ADDR_PREFIX:
        return "a Merpati address starts with mp1 (the other person's `merpati id` prints it)";
    case MP_ERR_ADDR_ALPHABET:
        return "after mp1 an address has only lowercase letters and digits, never b, i, o "
               "or 1: check for a typo";
    case MP_ERR_ADDR_CASE:
        return "write the address all in lowercase (or all in uppercase)";
    default:
        return "ask for the address again (`merpati id` prints it on their side)";
    }
}

static bool address_error(enum mp_err err)
{
    return err == MP_ERR_ADDR_PREFIX || err == MP_ERR_ADDR_LENGTH || err == MP_ERR_ADDR_ALPHABET ||
           err == MP_ERR_ADDR_CASE || err == MP_ERR_ADDR_CHECKSUM || err == MP_ERR_MALFORMED ||
           err == MP_ERR_ADDR_VERSION || err == MP_ERR_ADDR_KEY;
}

/* Print a contacts.* error reply and return its exit code. */
static int contacts_failed(const struct client_reply *reply)
{
    if (reply->rpc_code == RPC_CODE_INVALID_PARAMS) {
        bool addr = address_error(reply->err);
        print_error(addr ? address_hint(reply->err) : NULL, "%s", reply->message);
        return EX_DATAERR;
    }
    if (reply->rpc_code != RPC_CODE_FAILED) {
        print_error(NULL, "%s", reply->message);
        return EX_SOFTWARE;
    }
    switch (reply->err) {
    case MP_ERR_NOT_FOUND:
        print_error("see `merpati contacts list` (add --requests or --blocked for the others)",
                    "%s", reply->message);
        return EX_NOUSER;
    case MP_ERR_CONTACT_AMBIGUOUS:
        print_error("`merpati contacts list` shows the full addresses", "%s", reply->message);
        return EX_DATAERR;
    case MP_ERR_EXISTS:
        print_error("pick another --name (names ignore upper and lower case)", "%s",
                    reply->message);
        return EX_DATAERR;
    case MP_ERR_DISK_FULL:
        print_error("free some disk space", "%s", reply->message);
        return EX_IOERR;
    default:
        print_error(NULL, "%s", reply->message);
        return EX_SOFTWARE;
    }
}

static void show_contact_list(json_t *result, const char *state)
{
    json_t *list = json_object_get(result, "contacts");
    char seen[32];
    size_t i;
    json_t *c;

    if (json_array_size(list) == 0) {
        if (strcmp(state, "request") == 0)
            printf("no requests (messages from people who are not contacts land here)\n");
        else if (strcmp(state, "blocked") == 0)
            printf("nobody is blocked\n");
        else
            printf("no contacts yet; add one with `merpati contacts add <address> --name N`\n");
        return;
    }
    printf("%-20s  %-62s  %-8s  %s\n", "NAME", "ADDRESS", "VERIFIED", "LAST SEEN");
    json_array_foreach(list, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        printf("%-20s  %-62s  %-8s  %s%s\n", name != NULL ? name : "-",
               json_string_value(json_object_get(c, "address")),
               json_is_true(json_object_get(c, "verified")) ? "yes" : "no",
               when(json_object_get(c, "last_seen"), seen, sizeof(seen)),
               json_is_true(json_object_get(c, "key_changed")) ? "  (node key changed!)" : "");
    }
    if (strcmp(state, "request") == 0)
        printf("\naccept one with `merpati contacts accept <address>`, or block it with "
               "`merpati contacts block <address>`\n");
}

static void show_contact(json_t *c)
{
    json_t *counters = json_object_get(c, "counters");
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *node_key = json_string_value(json_object_get(c, "node_key"));
    const char *warning = json_string_value(json_object_get(c, "warning"));
    char t[32];

    printf("name        %s\n", name != NULL ? name : "-");
    printf("address     %s\n", json_string_value(json_object_get(c, "address")));
    printf("state       %s\n", json_string_value(json_object_get(c, "state")));
    if (json_is_true(json_object_get(c, "verified")))
        printf("verified    yes (safety numbers compared)\n");
    else
        printf("verified    no (compare safety numbers: merpati contacts verify %s)\n", label(c));
    printf("added       %s\n", when(json_object_get(c, "added_at"), t, sizeof(t)));
    printf("first seen  %s\n", when(json_object_get(c, "first_seen"), t, sizeof(t)));
    printf("last seen   %s\n", when(json_object_get(c, "last_seen"), t, sizeof(t)));
    if (node_key != NULL)
        printf("node key    %s (trusted on first use)\n", node_key);
    else
        printf("node key    none yet (the first message's is trusted)\n");
    printf("messages    %lld accepted, %lld dropped, %lld refused\n",
           (long long)json_integer_value(json_object_get(counters, "accepted")),
           (long long)json_integer_value(json_object_get(counters, "dropped")),
           (long long)json_integer_value(json_object_get(counters, "refused")));
    json_t *nets = json_object_get(c, "networks");
    if (json_array_size(nets) == 0) {
        printf("networks    none seen yet (looked up on every network)\n");
    } else {
        printf("networks    ");
        for (size_t k = 0; k < json_array_size(nets); k++)
            printf("%s%s", k > 0 ? ", " : "", json_string_value(json_array_get(nets, k)));
        printf(json_is_true(json_object_get(c, "networks_pinned"))
                   ? " (pinned: looked up only there)\n"
                   : " (seen there: looked up there first)\n");
    }
    if (warning != NULL)
        printf("\nwarning: %s\n", warning);
}

/* For `contacts show`: where the contact's mail waits while it is offline. */
static void show_mailboxes_of(struct cli *cli, const char *address)
{
    struct client_reply reply;
    json_t *params = json_pack("{s:s}", "who", address != NULL ? address : "");

    if (client_call(cli->control_path, "mailbox.where", params, 0, &reply) != MP_OK)
        return;
    json_t *list = json_object_get(reply.result, "mailboxes");
    if (json_array_size(list) == 0)
        printf("mailboxes   none found now (no DHT peers?)\n");
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m)
    printf("%s %.16s...@%s\n", i == 0 ? "mailboxes  " : "           ",
           json_string_value(json_object_get(m, "node_key")),
           json_string_value(json_object_get(m, "addr")));
    client_reply_clear(&reply);
}

static void show_contacts_result(const char *sub, json_t *result)
{
    json_t *c = json_object_get(result, "contact");

    if (strcmp(sub, "show") == 0) {
        show_contact(result);
    } else if (strcmp(sub, "add") == 0) {
        const char *action = json_string_value(json_object_get(result, "action"));
        if (strcmp(action, "added") == 0)
            printf("added %s (%s)\n", label(c), json_string_value(json_object_get(c, "address")));
        else if (strcmp(action, "accepted") == 0)
            printf("accepted %s: their messages now go to the inbox\n", label(c));
        else if (strcmp(action, "unblocked") == 0)
            printf("unblocked %s: a contact again\n", label(c));
        else if (strcmp(action, "renamed") == 0)
            printf("renamed %s to %s\n", json_string_value(json_object_get(c, "address")),
                   label(c));
        else
            printf("%s is already a contact\n", label(c));
    } else if (strcmp(sub, "remove") == 0) {
        printf("removed %s\n", label(json_object_get(result, "removed")));
    } else if (strcmp(sub, "block") == 0) {
        printf("blocked %s: their messages are dropped\n", label(c));
    } else if (strcmp(sub, "accept") == 0) {
        const char *was = json_string_value(json_object_get(result, "was"));
        if (strcmp(was, "contact") == 0)
            printf("%s is already a contact\n", label(c));
        else
            printf("accepted %s: their messages now go to the inbox\n", label(c));
    } else if (strcmp(sub, "trust") == 0) {
        if (json_is_true(json_object_get(result, "trusted")))
            printf("now trusting the new node key of %s: %s\n", label(c),
                   json_string_value(json_object_get(c, "node_key")));
        else
            printf("nothing to trust: the node key of %s has not changed\n", label(c));
    }
}

static void show_safety_number(json_t *result, bool confirmed)
{
    json_t *groups = json_object_get(result, "groups");
    json_t *c = json_object_get(result, "contact");

    printf("safety number with %s:\n\n", label(c));
    for (size_t row = 0; row < 3; row++) {
        printf("   ");
        for (size_t g = 0; g < 4; g++)
            printf(" %s", json_string_value(json_array_get(groups, row * 4 + g)));
        printf("\n");
    }
    printf("\n");
    if (confirmed) {
        printf("%s is now marked verified\n", label(c));
        return;
    }
    printf("%s sees the same 60 digits for you (`merpati contacts verify <your address>` on\n"
           "their side). Compare them in person or over a call you trust; if all match, run\n"
           "`merpati contacts verify %s --confirm`.%s\n",
           label(c), label(c),
           json_is_true(json_object_get(result, "verified")) ? " (already verified)" : "");
}

static int cmd_contacts(struct cli *cli)
{
    static const char *const subs[] = {"add",    "list",   "show",   "remove",
                                       "block",  "accept", "verify", "trust"};
    const char *sub = cli->arg_count > 0 ? cli->args[0] : NULL;
    const char *target = NULL, *name = NULL, *state = "contact";
    char method[RPC_METHOD_MAX + 1];
    bool confirm = false, known = false;
    struct client_reply reply;
    json_t *pins = NULL; /* add --network NAME ... */
    bool bad_pin = false; /* a network name that is not UTF-8 */
    bool unpin = false;
    int rc;

    for (size_t i = 0; sub != NULL && i < sizeof(subs) / sizeof(subs[0]); i++)
        known = known || strcmp(sub, subs[i]) == 0;
    if (!known)
        return usage_error("contacts wants one of add, list, show, remove, block, accept, "
                           "verify, trust%s%s%s",
                           sub != NULL ? " (not \"" : "", sub != NULL ? sub : "",
                           sub != NULL ? "\")" : "");
    for (int i = 1; i < cli->arg_count; i++) {
        const char *a = cli->args[i];
        if (strcmp(a, "--name") == 0 && strcmp(sub, "add") == 0 && i + 1 < cli->arg_count)
            name = cli->args[++i];
        else if (strcmp(a, "--network") == 0 && strcmp(sub, "add") == 0 && !unpin &&
                 i + 1 < cli->arg_count) {
            if (pins == NULL)
                pins = json_array();
            if (json_array_append_new(pins, json_string(cli->args[++i])) != 0)
                bad_pin = true;
        } else if (strcmp(a, "--unpin") == 0 && strcmp(sub, "add") == 0 && pins == NULL) {
            pins = json_array(); /* an empty list unpins */
            unpin = true;
        } else if (strcmp(a, "--requests") == 0 && strcmp(sub, "list") == 0 &&
                 strcmp(state, "contact") == 0)
            state = "request";
        else if (strcmp(a, "--blocked") == 0 && strcmp(sub, "list") == 0 &&
                 strcmp(state, "contact") == 0)
            state = "blocked";
        else if (strcmp(a, "--confirm") == 0 && strcmp(sub, "verify") == 0)
            confirm = true;
        else if (a[0] != '-' && target == NULL && strcmp(sub, "list") != 0)
            target = a;
        else {
            json_decref(pins);
            return usage_error("contacts %s does not take \"%s\"", sub, a);
        }
    }
    if (target == NULL && strcmp(sub, "list") != 0) {
        json_decref(pins);
        return usage_error("contacts %s needs %s", sub,
                           strcmp(sub, "add") == 0 ? "an address" : "a contact (name or address)");
    }
    if ((rc = load_settings(cli, false)) != 0) {
        json_decref(pins);
        return rc;
    }

    json_t *params;
    if (strcmp(sub, "add") == 0) {
        params = name != NULL ? json_pack("{s:s, s:s}", "address", target, "name", name)
                              : json_pack("{s:s}", "address", target);
        if (params != NULL && pins != NULL)
            json_object_set(params, "networks", pins);
        if (bad_pin) {
            json_decref(params);
            params = NULL;
        }
    }
    else if (strcmp(sub, "list") == 0)
        params = json_pack("{s:s}", "state", state);
    else if (strcmp(sub, "verify") == 0)
        params = json_pack("{s:s, s:b}", "contact", target, "confirm", confirm);
    else
        params = json_pack("{s:s}", "contact", target);
    if (params == NULL) {
        /* json_pack refuses strings that are not UTF-8. */
        print_error("names and addresses must be UTF-8 text", "cannot send \"%s\"",
                    name != NULL ? name : target);
        json_decref(pins);
        return EX_DATAERR;
    }
    json_decref(pins);
    snprintf(method, sizeof(method), "contacts.%s", sub);
    enum mp_err terr = client_call(cli->control_path, method, params, 0, &reply);
    if (terr != MP_OK)
        return transport_error(cli, terr);
    if (reply.result == NULL)
        rc = contacts_failed(&reply);
    else if (cli->json)
        print_json(reply.result);
    else if (strcmp(sub, "list") == 0)
        show_contact_list(reply.result, state);
    else if (strcmp(sub, "verify") == 0)
        show_safety_number(reply.result, confirm);
    else
        show_contacts_result(sub, reply.result);
    if (reply.result != NULL && !cli->json && strcmp(sub, "show") == 0)
        show_mailboxes_of(cli, json_string_value(json_object_get(reply.result, "address")));
    client_reply_clear(&reply);
    return rc;
}

/* The contacts' names by address ({address: name}, owned), for showing
 * messages by name; NULL if the node did not answer (addresses are shown). */
static json_t *contact_names(struct cli *cli)
{
    struct client_reply reply;
    json_t *names = NULL;

    if (client_call(cli->control_path, "contacts.list", json_pack("{s:s}", "state", "contact"), 0,
                    &reply) != MP_OK)
        return NULL;
    if (reply.result != NULL && (names = json_object()) != NULL) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(reply.result, "contacts"), i, c)
        {
            const char *address = json_string_value(json_object_get(c, "address"));
            json_t *name = json_object_get(c, "name");
            if (address != NULL && json_is_string(name))
                json_object_set(names, address, name);
        }
    }
    client_reply_clear(&reply);
    return names;
}

/* Who a message or event is with: the contact's name, else the start of the
 * address. */
static void print_peer(json_t *names, json_t *m)
{
    const char *address = json_string_value(json_object_get(m, "peer"));
    const char *name = address != NULL ? json_string_value(json_object_get(names, address)) : NULL;
    if (name != NULL)
        printf("%s", name);
    else
        printf("%.16s...", address != NULL ? address : "?");
}

static void print_message(json_t *names, json_t *m)
{
    time_t t = (time_t)(json_integer_value(json_object_get(m, "sent_at_ms")) / 1000);
    char when[32];
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    printf("[%lld] %s ", (long long)json_integer_value(json_object_get(m, "cursor")), when);
    print_peer(names, m);
    printf("%s: %s\n", json_is_true(json_object_get(m, "request")) ? " (request)" : "",
           json_string_value(json_object_get(m, "text")));
}

static int cmd_inbox(struct cli *cli)
{
    static const char *const flags[] = {"--from", "--since", "--limit", "--requests", NULL};
    struct cmd_args a;
    struct client_reply reply;
    int rc;

    if ((rc = split_args(cli, &a, flags)) != 0)
        return rc;
    if (a.pos_count != 0)
        return usage_error("inbox takes no argument \"%s\"", a.pos[0]);
    json_t *params = json_object();
    if (a.from != NULL)
        json_object_set_new(params, "from", json_string(a.from));
    if (a.requests)
        json_object_set_new(params, "requests", json_true());
    if ((rc = number_param(params, "since", "--since", a.since)) != 0 ||
        (rc = number_param(params, "limit", "--limit", a.limit)) != 0) {
        json_decref(params);
        return rc;
    }
    if ((rc = load_settings(cli, false)) != 0) {
        json_decref(params);
        return rc;
    }
    if ((rc = call_with(cli, "inbox.list", params, 0, &reply)) == 0) {
        if (cli->json) {
            print_json(reply.result);
        } else {
            size_t i;
            json_t *m, *messages = json_object_get(reply.result, "messages");
            json_t *names = json_array_size(messages) > 0 ? contact_names(cli) : NULL;
            json_array_foreach(messages, i, m) print_message(names, m);
            json_decref(names);
            if (json_array_size(messages) == 0)
                printf("no messages%s\n", a.since != NULL ? " after that cursor" : "");
            if (json_is_true(json_object_get(reply.result, "more")))
                printf("more after cursor %lld: add --since %lld\n",
                       (long long)json_integer_value(json_object_get(reply.result, "cursor")),
                       (long long)json_integer_value(json_object_get(reply.result, "cursor")));
        }
    }
    client_reply_clear(&reply);
    return rc;
}

/* `mailboxes <who>`: where who's mail waits when its node is offline. */
static int cmd_mailboxes(struct cli *cli)
{
    struct cmd_args a;
    struct client_reply reply;
    int rc;

    if ((rc = split_args(cli, &a, NULL)) != 0)
        return rc;
    if (a.pos_count != 1)
        return usage_error("%s", "mailboxes wants one <contact|address>");
    if ((rc = load_settings(cli, false)) != 0)
        return rc;
    json_t *params = json_pack("{s:s}", "who", a.pos[0]);
    if ((rc = call_with(cli, "mailbox.where", params, 0, &reply)) == 0) {
        if (cli->json) {
            print_json(reply.result);
        } else {
            size_t i;
            json_t *m;
            json_array_foreach(json_object_get(reply.result, "mailboxes"), i, m)
            printf("%s@%s\n", json_string_value(json_object_get(m, "node_key")),
                   json_string_value(json_object_get(m, "addr")));
        }
    }
    client_reply_clear(&reply);
    return rc;
}

static int cmd_history(struct cli *cli)
{
    static const char *const flags[] = {"--limit", NULL};
    struct cmd_args a;
    struct client_reply reply;
    int rc;

    if ((rc = split_args(cli, &a, flags)) != 0)
        return rc;
    if (a.pos_count != 1)
        return usage_error("%s", "history wants one <contact|address>");
    json_t *params = json_pack("{s:s}", "with", a.pos[0]);
    if ((rc = number_param(params, "limit", "--limit", a.limit)) != 0 ||
        (rc = load_settings(cli, false)) != 0) {
        json_decref(params);
        return rc;
    }
    if ((rc = call_with(cli, "history", params, 0, &reply)) == 0) {
        if (cli->json) {
            print_json(reply.result);
        } else {
            size_t i;
            json_t *m;
            json_array_foreach(json_object_get(reply.result, "messages"), i, m)
            {
                /* When we wrote it or it arrived: the order the lines are in. */
                bool out = strcmp(json_string_value(json_object_get(m, "direction")), "out") == 0;
                time_t secs = (time_t)(json_integer_value(json_object_get(m, "at_ms")) / 1000);
                char when[32];
                struct tm tm;
                localtime_r(&secs, &tm);
                strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
                if (out)
                    printf("%s >> %s  [%s]\n", when, json_string_value(json_object_get(m, "text")),
                           json_string_value(json_object_get(m, "state")));
                else
                    printf("%s << %s\n", when, json_string_value(json_object_get(m, "text")));
            }
        }
    }
    client_reply_clear(&reply);
    return rc;
}

struct listen_state {
    bool json;
    bool ended; /* the daemon's last word came (an error: stopping, or refused) */
    int rc;
    json_t *names; /* contact_names at the start (one added later shows by address) */
};

static bool listen_line_cb(void *arg, json_t *line)
{
    struct listen_state *st = arg;
    json_t *params = json_object_get(line, "params");
    json_t *error = json_object_get(line, "error");

    if (error != NULL) { /* the stream ended: the daemon stopped, or refused the call */
        print_error(NULL, "%s", json_string_value(json_object_get(error, "message")));
        json_t *code = json_object_get(json_object_get(error, "data"), "code");
        if (json_integer_value(json_object_get(error, "code")) == RPC_CODE_INVALID_PARAMS)
            st->rc = EX_DATAERR;
        else
            st->rc = json_is_integer(code) ? exit_for((enum mp_err)json_integer_value(code))
                                           : EX_UNAVAILABLE;
        st->ended = true;
        return false;
    }
    if (params == NULL)
        return true;
    if (st->json) {
        print_json(params);
    } else {
        const char *type = json_string_value(json_object_get(params, "type"));
        if (type != NULL && strcmp(type, "message") == 0) {
            print_message(st->names, params);
        } else {
            printf("[%lld] %s %s to ",
                   (long long)json_integer_value(json_object_get(params, "cursor")),
                   json_string_value(json_object_get(params, "id")), type);
            print_peer(st->names, params);
            printf("\n");
        }
    }
    fflush(stdout);
    return true;
}

static int cmd_listen(struct cli *cli)
{
    static const char *const flags[] = {"--since", NULL};
    struct cmd_args a;
    struct listen_state st = {.json = cli->json};
    int rc;

    if ((rc = split_args(cli, &a, flags)) != 0)
        return rc;
    if (a.pos_count != 0)
        return usage_error("listen takes no argument \"%s\"", a.pos[0]);
    json_t *params = json_object();
    if ((rc = number_param(params, "since", "--since", a.since)) != 0 ||
        (rc = load_settings(cli, false)) != 0) {
        json_decref(params);
        return rc;
    }
    if (!st.json)
        st.names = contact_names(cli);
    enum mp_err err = client_stream(cli->control_path, "subscribe", params, listen_line_cb, &st);
    json_decref(st.names);
    if (err != MP_OK)
        return transport_error(cli, err);
    if (!st.ended) { /* the connection ended without a word: the daemon died */
        print_error("see the node's log; listen again with --since the last cursor shown",
                    "the daemon closed the stream");
        return EX_UNAVAILABLE;
    }
    return st.rc;
}

/* ---- networks: clusters and the bootstrap list ---- */

/* Trim spaces and line ends a copied token may carry. */
static const char *trimmed(const char *text, char *buf, size_t size)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    size_t len = strnlen(text, size - 1);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                       text[len - 1] == '\r'))
        len--;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return buf;
}

static int show_cluster(struct cli *cli, const char *sub, json_t *r)
{
    (void)cli;
    const char *name = json_string_value(json_object_get(r, "name"));
    long long port = (long long)json_integer_value(json_object_get(r, "port"));
    const char *fp = json_string_value(json_object_get(r, "fingerprint"));
    if (strcmp(sub, "create") == 0) {
        printf("%s\n", json_string_value(json_object_get(r, "token")));
        fprintf(stderr,
                "created cluster %s, fingerprint %s, port %lld\n"
                "give the token above to each member (privately: it holds the cluster's "
                "secret); they run `merpati cluster join <token>` and compare the fingerprint\n",
                name, fp, port);
    } else {
        printf("joined cluster %s, fingerprint %s, port %lld, through %lld bootstrap entries\n",
               name, fp, port, (long long)json_integer_value(json_object_get(r, "bootstrap")));
    }
    return 0;
}

static int cmd_cluster(struct cli *cli)
{
    const char *sub = cli->arg_count > 0 ? cli->args[0] : "";
    const char *target = NULL, *port = NULL;
    char token[4096];
    struct client_reply reply;
    json_t *bootstrap = json_array();
    int rc = 0;

    for (int i = 1; i < cli->arg_count && rc == 0; i++) {
        const char *a = cli->args[i];
        bool creating = strcmp(sub, "create") == 0, joining = strcmp(sub, "join") == 0;
        if (strcmp(a, "--port") == 0 && (creating || joining) && i + 1 < cli->arg_count)
            port = cli->args[++i];
        else if (strcmp(a, "--bootstrap") == 0 && creating && i + 1 < cli->arg_count)
            json_array_append_new(bootstrap, json_string(cli->args[++i]));
        else if (a[0] != '-' && target == NULL && strcmp(sub, "list") != 0)
            target = a;
        else
            rc = usage_error("cluster %s does not take \"%s\"", sub, a);
    }
    if (rc == 0 && strcmp(sub, "create") != 0 && strcmp(sub, "join") != 0 &&
        strcmp(sub, "list") != 0 && strcmp(sub, "leave") != 0 && strcmp(sub, "token") != 0)
        rc = usage_error("cluster wants one of create, join, list, token, leave (not \"%s\")",
                         sub);
    if (rc == 0 && target == NULL && strcmp(sub, "list") != 0)
        rc = usage_error("cluster %s needs %s", sub,
                         strcmp(sub, "join") == 0 ? "a token (mpc1...)" : "a cluster name");
    if (rc == 0)
        rc = load_settings(cli, false);
    if (rc != 0) {
        json_decref(bootstrap);
        return rc;
    }

    json_t *params = json_object();
    char method[32];
    if (strcmp(sub, "create") == 0) {
        json_object_set_new(params, "name", json_string(target));
        json_object_set(params, "bootstrap", bootstrap);
    } else if (strcmp(sub, "join") == 0) {
        json_object_set_new(params, "token", json_string(trimmed(target, token, sizeof(token))));
    } else if (strcmp(sub, "leave") == 0) {
        json_object_set_new(params, "name", json_string(target));
    }
    json_decref(bootstrap);
    if ((rc = number_param(params, "port", "--port", port)) != 0) {
        json_decref(params);
        return rc;
    }
    snprintf(method, sizeof(method), "cluster.%s", strcmp(sub, "token") == 0 ? "list" : sub);
    memset(&reply, 0, sizeof(reply));
    if ((rc = call_with(cli, method, params, 0, &reply)) != 0) {
        client_reply_clear(&reply);
        return rc;
    }
    json_t *r = reply.result;
    if (strcmp(sub, "token") == 0) {
        size_t i;
        json_t *c;
        rc = EX_NOUSER;
        json_array_foreach(json_object_get(r, "clusters"), i, c)
        {
            if (strcmp(json_string_value(json_object_get(c, "name")), target) != 0)
                continue;
            if (cli->json)
                print_json(c);
            else
                printf("%s\n", json_string_value(json_object_get(c, "token")));
            rc = 0;
        }
        if (rc != 0)
            print_error("see `merpati cluster list`", "no cluster \"%s\" joined", target);
    } else if (cli->json) {
        print_json(r);
    } else if (strcmp(sub, "list") == 0) {
        size_t i;
        json_t *c;
        if (json_array_size(json_object_get(r, "clusters")) == 0)
            printf("no clusters joined (`merpati cluster create NAME` or `cluster join TOKEN`)\n");
        else
            printf("%-32s  %-19s  %5s  %5s\n", "NAME", "FINGERPRINT", "PORT", "PEERS");
        json_array_foreach(json_object_get(r, "clusters"), i, c)
        {
            printf("%-32s  %-19s  %5lld  %5lld\n", json_string_value(json_object_get(c, "name")),
                   json_string_value(json_object_get(c, "fingerprint")),
                   (long long)json_integer_value(json_object_get(c, "port")),
                   (long long)json_integer_value(json_object_get(c, "table_size")));
        }
    } else if (strcmp(sub, "leave") == 0) {
        printf("left cluster %s\n", target);
        if (json_is_true(json_object_get(r, "restart_needed")))
            fprintf(stderr, "messages run on this cluster until the node restarts\n");
    } else {
        rc = show_cluster(cli, sub, r);
    }
    client_reply_clear(&reply);
    return rc;
}

static int cmd_bootstrap(struct cli *cli)
{
    const char *sub = cli->arg_count > 0 ? cli->args[0] : "";
    struct client_reply reply;
    json_t *params;
    int rc;

    if (strcmp(sub, "list") == 0 && cli->arg_count == 1)
        params = json_object();
    else if (strcmp(sub, "add") == 0 && cli->arg_count == 2)
        params = json_pack("{s:s}", "entry", cli->args[1]);
    else if (strcmp(sub, "rm") == 0 && cli->arg_count == 2)
        params = json_pack("{s:s}", "address", cli->args[1]);
    else
        return usage_error("%s", "bootstrap wants list, add <node key>@<ip>:<port> or rm "
                                 "<ip>:<port>");
    if (params == NULL)
        return usage_error("%s", "bootstrap entries are ASCII text");
    if ((rc = load_settings(cli, false)) != 0) {
        json_decref(params);
        return rc;
    }
    char method[32];
    snprintf(method, sizeof(method), "bootstrap.%s", sub);
    memset(&reply, 0, sizeof(reply));
    if ((rc = call_with(cli, method, params, 0, &reply)) != 0) {
        client_reply_clear(&reply);
        return rc;
    }
    json_t *r = reply.result;
    if (cli->json) {
        print_json(r);
    } else if (strcmp(sub, "list") == 0) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r, "entries"), i, e)
            printf("%s\n", json_string_value(e));
        fprintf(stderr, "%zu entries (from the %s)\n",
                json_array_size(json_object_get(r, "entries")),
                strcmp(json_string_value(json_object_get(r, "source")), "store") == 0
                    ? "node's store: `merpati bootstrap add|rm` changed it"
                    : "config file");
    } else if (strcmp(sub, "add") == 0) {
        printf("%s %s\n", json_is_true(json_object_get(r, "already")) ? "already listed:" : "added",
               cli->args[1]);
    } else {
        json_int_t removed = json_integer_value(json_object_get(r, "removed"));
        printf("removed %lld entr%s\n", (long long)removed, removed == 1 ? "y" : "ies");
    }
    client_reply_clear(&reply);
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli;
    int rc;

    memset(&cli, 0, sizeof(cli));
    if ((rc = parse_args(argc, argv, &cli)) != 0)
        return rc;
    if (cli.command == NULL)
        return command_error("%s", "no command given");
    if (strcmp(cli.command, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cli.command, "version") == 0) {
        printf("merpati %s\n", MERPATI_VERSION);
        return 0;
    }
    if (strcmp(cli.command, "init") == 0)
        return cmd_init(&cli);
    if (strcmp(cli.command, "run") == 0)
        return cmd_run(&cli);
    if (strcmp(cli.command, "id") == 0)
        return client_command(&cli, "id", show_id);
    if (strcmp(cli.command, "status") == 0)
        return client_command(&cli, "status", show_status);
    if (strcmp(cli.command, "send") == 0)
        return cmd_send(&cli);
    if (strcmp(cli.command, "inbox") == 0)
        return cmd_inbox(&cli);
    if (strcmp(cli.command, "history") == 0)
        return cmd_history(&cli);
    if (strcmp(cli.command, "listen") == 0)
        return cmd_listen(&cli);
    if (strcmp(cli.command, "mailboxes") == 0)
        return cmd_mailboxes(&cli);
    if (strcmp(cli.command, "peers") == 0)
        return cmd_peers(&cli);
    if (strcmp(cli.command, "stop") == 0)
        return cmd_stop(&cli);
    if (strcmp(cli.command, "cluster") == 0)
        return cmd_cluster(&cli);
    if (strcmp(cli.command, "bootstrap") == 0)
        return cmd_bootstrap(&cli);
    if (strcmp(cli.command, "contacts") == 0)
        return cmd_contacts(&cli);
    return command_error("unknown command \"%s\"", cli.command);
}
