/*
 * store: the node's durable state, one RocksDB database in <data dir>/db,
 * owned by one process at a time.
 *
 * The only module that talks to RocksDB (the only file that includes
 * rocksdb/c.h). Data is split into the column families below; keys and
 * values are opaque bytes to it, their layouts are documented in
 * docs/PROTOCOL.md ("Store layout"), except to the format migrations run at
 * open, which move what older formats wrote (the one to format 3 reads
 * outbox entries: node/outbox.h). Writes that must survive a crash (an accepted message,
 * a ratchet step) pass sync=true: they are on disk when the call returns.
 */
#ifndef MP_NODE_STORE_H
#define MP_NODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

/* Bumped when a layout changes incompatibly; store_open refuses newer data. */
#define STORE_FORMAT_VERSION 3

enum store_cf {
    STORE_CF_META = 0,    /* format version, node settings */
    STORE_CF_CONTACTS,    /* address -> contact */
    STORE_CF_SESSIONS,    /* ratchet sessions */
    STORE_CF_OUTBOX,      /* messages waiting for delivery or receipt */
    STORE_CF_INBOX,       /* received messages and history */
    STORE_CF_MAILBOX,     /* envelopes held for others */
    STORE_CF_DHT_RECORDS, /* signed DHT records this node stores */
    STORE_CF_PEERS,       /* routing table cache for restarts */
    STORE_CF_OUTBOX_INDEX, /* the outbox's work list and indexes (small keys) */
    STORE_CF_INBOX_INDEX,  /* the inbox's duplicate index (small keys) */
    STORE_CF_OUTBOX_SEALED, /* envelopes of outbox entries not yet sent, under the entries' keys */
    STORE_CF_COUNT_
};

struct store;
struct store_batch;
struct store_iter;

/* Lock <dir>/lock, then open (creating if absent) <dir>/db with every column
 * family. dir must exist. The lock belongs to the returned store, not to the
 * process: a second store_open of the same dir fails even in the same process.
 * Errors: MP_ERR_BUSY when the dir is already open (the holder's pid in
 * *holder_pid_out, 0 if unknown; not logged, the caller words the message),
 * MP_ERR_STORE_VERSION when the data has another format version than this
 * build's (newer, or older without a migration; an older format with one is
 * migrated, and an interrupted migration goes on at the next open), MP_ERR_STORE / MP_ERR_IO /
 * MP_ERR_DISK_FULL otherwise (logged with RocksDB's message). On failure
 * nothing stays open or locked. */
enum mp_err store_open(const char *dir, struct store **store_out, pid_t *holder_pid_out);

/* Whether a process holds the lock of data dir dir: MP_OK with its pid in
 * *holder_pid_out (0 if not yet written), MP_ERR_NOT_FOUND when the dir is
 * free (or was never opened). Does not take the lock. */
enum mp_err store_lock_holder(const char *dir, pid_t *holder_pid_out);

/* Close the database and release the lock; accepts NULL. Every iterator of
 * the store must be freed first. Synced writes are durable without a flush. */
void store_close(struct store *store);

/* The value at key, malloc'd into *val_out (caller frees with free()).
 * MP_ERR_NOT_FOUND if absent. Keys and values may be empty. */
enum mp_err store_get(struct store *store, enum store_cf cf, const void *key, size_t key_len,
                      uint8_t **val_out, size_t *val_len_out);

/* Write one key. MP_ERR_DISK_FULL when the disk is full: from then on RocksDB
 * refuses every write of this store (reads still work), even once space is
 * freed, until the store is closed and opened again. */
enum mp_err store_put(struct store *store, enum store_cf cf, const void *key, size_t key_len,
                      const void *val, size_t val_len, bool sync);

enum mp_err store_delete(struct store *store, enum store_cf cf, const void *key, size_t key_len,
                         bool sync);

/* Make every write so far durable (sync the write-ahead log): one fsync for
 * any number of unsynced writes before it, which is how callers group-commit.
 * Recovery after a crash keeps a prefix of the writes in order, so what was
 * synced is there, and anything after it is either there or not, whole. */
enum mp_err store_sync(struct store *store);

/* store_sync in two halves, for a sync on another thread while the store's
 * own thread writes on (RocksDB allows that): store_sync_wal may run on any
 * thread and touches nothing of the store but its database; it returns
 * RocksDB's error text, NULL once synced. store_sync_result, back on the
 * store's thread, takes that text (frees it) and returns what store_sync
 * would have: also MP_ERR_IO once a write has failed. */
char *store_sync_wal(struct store *store);
enum mp_err store_sync_result(struct store *store, char *err);

/* A write batch applies atomically: all of it or none. Building one cannot fail
 * (allocation failure aborts, as in RocksDB itself) and needs no store; the
 * batch copies keys and values. store_batch_write leaves the batch as it was
 * (it may be written again or freed); MP_ERR_INVAL if an op names an invalid
 * column family. store_batch_free wipes the copies. */
struct store_batch *store_batch_new(void);
void store_batch_put(struct store_batch *batch, enum store_cf cf, const void *key, size_t key_len,
                     const void *val, size_t val_len);
void store_batch_delete(struct store_batch *batch, enum store_cf cf, const void *key,
                        size_t key_len);
enum mp_err store_batch_write(struct store *store, struct store_batch *batch, bool sync);
void store_batch_free(struct store_batch *batch);

/* Iterate the keys of cf that start with prefix (all keys if prefix_len is 0),
 * in byte order (memcmp, shorter first), over a snapshot taken at creation.
 * Never NULL (allocation failure aborts); an invalid cf gives an iterator that
 * yields nothing with status MP_ERR_INVAL. Pointers from store_iter_next are
 * valid until the next call. Free every iterator before store_close. */
struct store_iter *store_iter_new(struct store *store, enum store_cf cf, const void *prefix,
                                  size_t prefix_len);
/* store_iter_new, starting at the first key >= start instead of the first
 * key with the prefix: a queue whose head was deleted seeks past the
 * deletions instead of stepping over each (RocksDB keeps them until
 * compaction). A start before the prefix starts at the prefix; one after
 * every key with the prefix yields nothing. */
struct store_iter *store_iter_new_at(struct store *store, enum store_cf cf, const void *prefix,
                                     size_t prefix_len, const void *start, size_t start_len);
/* store_iter_new, walking the prefix's keys backwards: the last first. */
struct store_iter *store_iter_new_reverse(struct store *store, enum store_cf cf,
                                          const void *prefix, size_t prefix_len);
bool store_iter_next(struct store_iter *it, const uint8_t **key_out, size_t *key_len_out,
                     const uint8_t **val_out, size_t *val_len_out);
/* MP_OK, or the error that ended the iteration early. */
enum mp_err store_iter_status(const struct store_iter *it);
void store_iter_free(struct store_iter *it);

#endif
