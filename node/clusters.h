/*
 * clusters: what the node remembers of its networks between runs, in the
 * store's meta family: the private clusters it joined (name, port, join
 * token) and the public network's bootstrap list as changed by
 * `merpati bootstrap add|rm`. Keys and values: docs/PROTOCOL.md
 * "Cluster tokens" > "Store keys".
 *
 * Only reads and writes the store: starting and stopping networks is the
 * daemon's (node/network.h). The token kept holds the cluster secret; the
 * store is private to the node's user like the key files.
 */
#ifndef MP_NODE_CLUSTERS_H
#define MP_NODE_CLUSTERS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/cluster.h"
#include "node/config.h"
#include "node/store.h"

/* Clusters one node joins at most. */
#define CLUSTERS_MAX 8

struct clusters_entry {
    char name[CLUSTER_NAME_SIZE];
    uint16_t port;                       /* the port to bind at every start */
    char token[CLUSTER_TOKEN_TEXT_SIZE]; /* as joined (or created) */
};

/* Remember (or replace) a joined cluster; synced. */
enum mp_err clusters_save(struct store *store, const struct clusters_entry *entry);

/* Forget a cluster and its saved peers. MP_ERR_NOT_FOUND if not joined. */
enum mp_err clusters_remove(struct store *store, const char *name);

/* Every remembered cluster, in name order, up to max; entries that do not
 * parse are skipped with a log line. Wipe out (it holds tokens) when done. */
enum mp_err clusters_load(struct store *store, struct clusters_entry *out, size_t max,
                          size_t *count_out);

/* The public bootstrap list set with `merpati bootstrap`: replaces
 * cfg->bootstrap when one was stored (then *stored_out is true); leaves cfg
 * alone otherwise (the config file's list is the default). Invalid stored
 * entries are skipped. */
enum mp_err clusters_bootstrap_load(struct store *store, struct config *cfg, bool *stored_out);

/* Store cfg's bootstrap list as the public network's; synced. */
enum mp_err clusters_bootstrap_save(struct store *store, const struct config *cfg);

#endif
