/*
 * paths: where a node keeps its files.
 *
 * A data dir holds everything of one node: merpati.conf, identity.key, the
 * lock file, the RocksDB database (db/) and, by default, the control socket.
 * Its location is, first found: the --data-dir flag, $MERPATI_DATA_DIR,
 * $XDG_DATA_HOME/merpati, $HOME/.local/share/merpati.
 */
#ifndef MP_NODE_PATHS_H
#define MP_NODE_PATHS_H

#include <stddef.h>

#include "base/err.h"

/* Longest path the node handles (PATH_MAX-sized buffers). */
#define PATHS_MAX 4096

/* Resolve the data dir (flag may be NULL). MP_ERR_CONFIG when neither a flag
 * nor any of the environment variables gives one; MP_ERR_TOO_BIG if too long. */
enum mp_err paths_data_dir(const char *flag, char *out, size_t size);

/* out = dir + "/" + name; MP_ERR_TOO_BIG if it does not fit. */
enum mp_err paths_join(const char *dir, const char *name, char *out, size_t size);

/* mkdir -p with mode 0700 for every directory it creates. */
enum mp_err paths_mkdir_private(const char *dir);

#endif
