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

#include "base/addr.h"
#include "base/err.h"
#include "base/log.h"
#include "node/paths.h"

/* The port a personal node listens on unless configured otherwise. */
#define CONFIG_DEFAULT_PORT 7700
/* Room for one "file:line: message" error. */
#define CONFIG_ERROR_MAX 512
/* Bootstrap entries kept from the config and the command line together. */
#define CONFIG_BOOTSTRAP_MAX 16
/* "<64 hex>@" + "[v6]:port". */
#define CONFIG_BOOTSTRAP_TEXT_MAX 128

/* Own mailbox nodes listed in the config. */
#define CONFIG_MAILBOX_NODES_MAX 4
/* Most mailboxes (closest nodes) one message is left with. */
#define CONFIG_MAILBOX_REPLICAS_MAX 4

/* Mail held for others, and where our own waits (the `mailbox` group;
 * docs/PROTOCOL.md, "Mailboxes", states the defaults and why). */
struct config_mailbox {
    bool serve;               /* hold envelopes for other accounts */
    unsigned ttl_s;           /* how long an envelope is held */
    unsigned max_count;       /* envelopes held per mailbox */
    unsigned max_kib;         /* bytes held per mailbox, in KiB */
    unsigned total_mib;       /* bytes held for all mailboxes together, in MiB */
    unsigned rate;            /* stores per second from one sending node */
    unsigned burst;           /* stores one sending node may make at once */
    unsigned replicas;        /* mailboxes (closest nodes) a message is left with */
    unsigned fetch_interval_s; /* how often our own mailboxes are asked for mail */
    unsigned handoff_interval_s; /* how often held mail goes to the nodes now closest */
    /* Our own mailbox nodes, "<node key>@<ip>:<port>": listed in our
     * presence record, so senders leave our mail there too. */
    char nodes[CONFIG_MAILBOX_NODES_MAX][CONFIG_BOOTSTRAP_TEXT_MAX];
    unsigned node_count;
};

struct config {
    char listen[64];                 /* numeric IP to bind UDP and TCP on */
    uint16_t port;                   /* 0 = any free port, chosen at each start */
    char control_socket[PATHS_MAX];  /* empty = <data dir>/control.sock */
    enum log_level log_level;
    /* DHT nodes to join through, "<node key hex>@<ip>:<port>" (validated). */
    char bootstrap[CONFIG_BOOTSTRAP_MAX][CONFIG_BOOTSTRAP_TEXT_MAX];
    unsigned bootstrap_count;
    unsigned dht_ip_limit;  /* nodes of one IP per bucket; 0 = no limit */
    unsigned dht_rate_limit; /* datagrams per second per source IP; 0 = no limit */
    struct config_mailbox mailbox;
    bool cluster_only;   /* open no public network: only the joined clusters */
    bool bootstrap_only; /* DHT and links only: no presence, no delivery, no contacts */
};

/* Check a bootstrap entry's form without resolving anything: MP_OK, or
 * MP_ERR_CONFIG with the reason in why_out. */
enum mp_err config_check_bootstrap(const char *text, char *why_out, size_t why_size);

/* A checked "<node key>@<ip>:<port>" entry into its parts; MP_ERR_CONFIG if malformed. */
enum mp_err config_parse_node(const char *text, uint8_t key_out[32], struct addr *addr_out);

/* Append a bootstrap entry (validated); MP_ERR_TOO_BIG past CONFIG_BOOTSTRAP_MAX. */
enum mp_err config_add_bootstrap(struct config *cfg, const char *text, char *why_out,
                                 size_t why_size);

void config_defaults(struct config *cfg);

/* Read path over the defaults already in cfg. A missing file is MP_ERR_NOT_FOUND
 * (the caller decides whether that matters); any other problem is MP_ERR_CONFIG
 * with "file:line: message" in error_out. */
enum mp_err config_load(const char *path, struct config *cfg, char error_out[CONFIG_ERROR_MAX]);

/* Create path (mode 0600, refusing to overwrite) holding every setting with
 * its default value and a comment. */
enum mp_err config_write_default(const char *path);

#endif
