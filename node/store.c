/*
 * store: RocksDB behind a small, opaque API (see store.h).
 *
 * Layout of a data dir D as this file leaves it:
 *   D/lock   our pid as text while a process owns D; locked with an
 *            open-file-description lock (F_OFD_SETLK), so a second open in the
 *            same process conflicts too and closing it cannot drop the first
 *            owner's lock (a classic fcntl lock is lost on any close()).
 *   D/db/    the RocksDB database: "default" (unused) plus one column family
 *            per enum store_cf, named in cf_names below. Names are stable:
 *            they are the on-disk identity of each family.
 *
 * Every RocksDB error string is logged once here and translated to an
 * enum mp_err; nothing above this file sees RocksDB types or messages.
 */
#define _GNU_SOURCE /* F_OFD_SETLK, F_OFD_GETLK (Linux >= 3.15) */

#include "node/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rocksdb/c.h>
#include "crypto/secure.h"

#include "base/bytes.h"
#include "base/log.h"
#include "node/outbox.h"
#include "node/paths.h"

#define MOD "store"

/* Key in STORE_CF_META holding the format version, a 4-byte big-endian u32. */
#define FORMAT_KEY "format_version"
#define FORMAT_LEN 4

/* Column families found on disk that this build does not know (left by a
 * newer build); they are opened so RocksDB accepts the database, never used. */
#define EXTRA_CF_MAX 32

/* "<pid>\n" in the lock file. */
#define PID_TEXT_MAX 24

/* RocksDB's InfoLogLevel: DEBUG 0, INFO 1, WARN 2; its LOG file then only
 * gets warnings, errors and the short header written at open. */
#define ROCKS_LOG_WARN 2

/* Sizes for a personal node: little RAM, small files, few descriptors. */
#define CF_WRITE_BUFFER   (8u << 20)  /* memtable per column family */
/* All memtables together, and the write-ahead logs: a log file goes only once
 * every family with data in it has been flushed, and past this size RocksDB
 * flushes the family with the oldest data, however little it holds. At 32 MiB
 * that flushed the small families (work list, indexes) into many tiny tables
 * while a sender was busy, and each lookup then searched them all. */
#define DB_WRITE_BUFFER   (64u << 20)
#define MAX_TOTAL_WAL     (128u << 20)
#define BLOCK_CACHE       (8u << 20)  /* shared by all families */
#define BLOOM_BITS_PER_KEY 10         /* about 1% false positives */
#define ROCKS_PERF_DISABLE 1          /* rocksdb::PerfLevel::kDisable */
#define MEMTABLE_BLOOM_RATIO 0.02     /* of the memtable's size, for its filter */
#define MANIFEST_PREALLOC (64u << 10) /* default 4 MiB; small disks */
#define MAX_MANIFEST      (8u << 20)  /* then start a fresh MANIFEST */
#define MAX_OPEN_FILES    256
#define ROCKS_LEVELS 7                /* RocksDB's default num_levels */
#define UNCOMPRESSED_LEVELS 3         /* levels 0 to 2: see set_options */
#define KEEP_LOG_FILES    2
#define MAX_LOG_FILE      (1u << 20)

static const char *const cf_names[STORE_CF_COUNT_] = {
    [STORE_CF_META] = "meta",
    [STORE_CF_CONTACTS] = "contacts",
    [STORE_CF_SESSIONS] = "sessions",
    [STORE_CF_OUTBOX] = "outbox",
    [STORE_CF_INBOX] = "inbox",
    [STORE_CF_MAILBOX] = "mailbox",
    [STORE_CF_DHT_RECORDS] = "dht_records",
    [STORE_CF_PEERS] = "peers",
    [STORE_CF_OUTBOX_INDEX] = "outbox_index",
    [STORE_CF_INBOX_INDEX] = "inbox_index",
    [STORE_CF_OUTBOX_SEALED] = "outbox_sealed",
};

struct store {
    int lock_fd;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *read_opts;
    rocksdb_writeoptions_t *write_sync;
    rocksdb_writeoptions_t *write_nosync;
    rocksdb_column_family_handle_t *default_cf;
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT_];
    rocksdb_column_family_handle_t *extra_cf[EXTRA_CF_MAX];
    size_t extra_count;
    /* Every store_batch_write fills this one, cleared: its buffer keeps its
     * size, so a large batch neither grows nor faults in a fresh one. Like
     * the memtables, which hold the same bytes, it is not wiped. */
    rocksdb_writebatch_t *wb;
    bool write_failed; /* RocksDB is in its error state: no WAL sync at close */
};

struct batch_op {
    enum store_cf cf;
    bool is_put;
    const uint8_t *data; /* key then value, in a chunk of the batch */
    size_t key_len;
    size_t val_len;
};

/* Keys and values of a batch's ops, placed one after another in chunks that
 * never move (no allocation per op, no copy on growth). */
#define BATCH_CHUNK (64u * 1024u)
struct batch_chunk {
    struct batch_chunk *next;
    size_t used, cap;
    uint8_t data[];
};

struct store_batch {
    struct batch_op *ops;
    size_t count;
    size_t cap;
    struct batch_chunk *chunks; /* the one being filled first */
};

struct store_iter {
    rocksdb_iterator_t *it;           /* NULL when creation failed (see status) */
    rocksdb_readoptions_t *read_opts; /* owns the upper bound below */
    uint8_t *prefix;
    size_t prefix_len;
    uint8_t *upper; /* first key after every key with the prefix, or NULL */
    size_t upper_len;
    bool started;
    bool done;
    bool reverse; /* from the last key back (store_iter_new_reverse) */
    enum mp_err status;
};

/* Building batches and iterators cannot fail: out of memory aborts. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        log_error(MOD, "out of memory allocating %zu bytes", n);
        abort();
    }
    return p;
}

static bool cf_valid(enum store_cf cf)
{
    return (unsigned)cf < STORE_CF_COUNT_;
}

/* Log a RocksDB error once, free it and translate it. The message has no key
 * or value bytes in it, only paths and RocksDB's reason. */
static enum mp_err rocks_err(char *err, const char *what)
{
    enum mp_err e;

    if (strstr(err, "No space left") != NULL)
        e = MP_ERR_DISK_FULL;
    else if (strncmp(err, "Corruption", strlen("Corruption")) == 0)
        e = MP_ERR_STORE;
    else if (strstr(err, "lock file") != NULL || strstr(err, "lock hold") != NULL)
        e = MP_ERR_BUSY; /* RocksDB's own db/LOCK, e.g. "While lock file: ..." */
    else if (strncmp(err, "IO error", strlen("IO error")) == 0)
        e = MP_ERR_IO;
    else
        e = MP_ERR_STORE;
    log_error(MOD, "%s: %s", what, err);
    rocksdb_free(err);
    return e;
}

/* A failed write leaves RocksDB refusing writes until reopened; remember it. */
static enum mp_err write_err(struct store *s, char *err, const char *what)
{
    s->write_failed = true;
    return rocks_err(err, what);
}

/* ---- the lock file ---- */

/* The pid holding fd's lock: from the kernel when it can tell (a classic
 * fcntl lock), else from the text the holder wrote; 0 if neither knows. */
static pid_t lock_holder(int fd)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    char text[PID_TEXT_MAX];
    ssize_t n;
    char *end;
    long pid;

    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
        return fl.l_pid;
    n = pread(fd, text, sizeof(text) - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    errno = 0;
    pid = strtol(text, &end, 10);
    if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || pid <= 0 || pid > INT_MAX)
        return 0;
    return (pid_t)pid;
}

static enum mp_err lock_dir(const char *dir, int *fd_out, pid_t *holder_pid_out)
{
    char path[PATHS_MAX];
    char text[PID_TEXT_MAX];
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    enum mp_err err;
    int fd, n;

    if ((err = paths_join(dir, "lock", path, sizeof(path))) != MP_OK) {
        log_error(MOD, "data dir path too long: %s", dir);
        return err;
    }
    /* No O_TRUNC: until we hold the lock the file is the holder's. */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        err = mp_err_from_errno(errno);
        log_error(MOD, "cannot open lock file %s: %s", path, strerror(errno));
        return err;
    }
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        if (errno == EAGAIN || errno == EACCES) {
            *holder_pid_out = lock_holder(fd);
            close(fd);
            return MP_ERR_BUSY;
        }
        err = mp_err_from_errno(errno);
        log_error(MOD, "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return err;
    }
    /* Ours now. The pid is only informative (for the "in use by pid N"
     * message), so failing to write it (a full disk) is not fatal. */
    n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != (ssize_t)n)
        log_warn(MOD, "cannot write our pid into %s: %s", path, strerror(errno));
    *fd_out = fd;
    return MP_OK;
}

enum mp_err store_lock_holder(const char *dir, pid_t *holder_pid_out)
{
    char path[PATHS_MAX];
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};

    if (paths_join(dir, "lock", path, sizeof(path)) != MP_OK)
        return MP_ERR_TOO_BIG;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? MP_ERR_NOT_FOUND : mp_err_from_errno(errno);
    /* F_OFD_GETLK asks whether our write lock would conflict: l_pid must be 0. */
    enum mp_err err = MP_ERR_NOT_FOUND;
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
        err = mp_err_from_errno(errno);
    else if (fl.l_type != F_UNLCK) {
        *holder_pid_out = lock_holder(fd);
        err = MP_OK;
    }
    close(fd);
    return err;
}

/* ---- open and close ---- */

/* Options whose only door in the C API is the options string. The keys of
 * the outbox, inbox and index families begin with a one-byte kind ('o', 'q',
 * 's', 'e' ... then big-endian numbers); each kind is mostly written in order,
 * but kinds interleave in one family. With a hint per first byte, a memtable
 * insert starts where the last insert of the same kind went instead of
 * searching the skip list from the top (the inserts were a fifth of a busy
 * sender's samples). In the other families (contacts, sessions: keys are
 * account keys) a hint is only a wrong guess, checked and dropped. */
#define STRING_OPTIONS "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.1"

/* Fresh options with STRING_OPTIONS, or without them (slower, not wrong) if
 * this RocksDB does not know the option's name. */
static rocksdb_options_t *options_create(void)
{
    rocksdb_options_t *base = rocksdb_options_create(), *o = rocksdb_options_create();
    char *err = NULL;

    rocksdb_get_options_from_string(base, STRING_OPTIONS, o, &err);
    rocksdb_options_destroy(base);
    if (err != NULL) {
        log_warn(MOD, "RocksDB refused \"%s\" (%s): running without it, writes cost more "
                 "CPU (a RocksDB other than Debian 12's?)", STRING_OPTIONS, err);
        rocksdb_free(err);
        rocksdb_options_destroy(o);
        o = rocksdb_options_create();
    }
    return o;
}

static void set_options(struct store *s)
{
    rocksdb_options_t *o = s->opts;

    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_set_info_log_level(o, ROCKS_LOG_WARN);
    rocksdb_options_set_keep_log_file_num(o, KEEP_LOG_FILES);
    rocksdb_options_set_max_log_file_size(o, MAX_LOG_FILE);
    rocksdb_options_set_stats_dump_period_sec(o, 0);
    rocksdb_options_set_max_open_files(o, MAX_OPEN_FILES);
    rocksdb_options_set_write_buffer_size(o, CF_WRITE_BUFFER);
    /* A filter in each memtable too: a read that misses it (an older key,
     * "seen before?") skips its search. */
    rocksdb_options_set_memtable_whole_key_filtering(o, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, MEMTABLE_BLOOM_RATIO);
    rocksdb_options_set_max_write_buffer_number(o, 2);
    /* Compression only for old data: levels 0 to 2 hold what is young and
     * rewritten within moments (messages in flight, their state) and all
     * of a personal node's data, much of it ciphertext that does not
     * compress (envelopes, mailboxes, sessions); compressing it cost the
     * sender about 15% of its CPU under load. Older history, lower down,
     * gets LZ4 (Debian's RocksDB has it; a build without it fails to open
     * the store, saying so). */
    int compression[ROCKS_LEVELS];
    for (size_t i = 0; i < ROCKS_LEVELS; i++)
        compression[i] = i < UNCOMPRESSED_LEVELS ? rocksdb_no_compression : rocksdb_lz4_compression;
    rocksdb_options_set_compression_per_level(o, compression, ROCKS_LEVELS);
    rocksdb_options_set_db_write_buffer_size(o, DB_WRITE_BUFFER);
    rocksdb_options_set_max_total_wal_size(o, MAX_TOTAL_WAL);
    rocksdb_options_set_manifest_preallocation_size(o, MANIFEST_PREALLOC);
    rocksdb_options_set_max_manifest_file_size(o, MAX_MANIFEST);

    s->cache = rocksdb_cache_create_lru(BLOCK_CACHE);
    s->table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table_opts, s->cache);
    /* Most reads look up one key (an entry, an index, "seen before?"), and
     * many miss: a filter per table file spares reading blocks of the files
     * that cannot hold the key. */
    rocksdb_block_based_options_set_filter_policy( /* the table options own it */
        s->table_opts, rocksdb_filterpolicy_create_bloom_full(BLOOM_BITS_PER_KEY));
    rocksdb_options_set_block_based_table_factory(o, s->table_opts);
}

/* Open D/db with "default", our families and any unknown ones already on disk. */
static enum mp_err open_db(struct store *s, const char *db_path)
{
    const char *names[1 + STORE_CF_COUNT_ + EXTRA_CF_MAX];
    const rocksdb_options_t *cf_opts[1 + STORE_CF_COUNT_ + EXTRA_CF_MAX];
    rocksdb_column_family_handle_t *handles[1 + STORE_CF_COUNT_ + EXTRA_CF_MAX];
    char **existing = NULL;
    size_t existing_count = 0, count = 0;
    enum mp_err err = MP_OK;
    char *rerr = NULL;

    names[count++] = "default";
    for (size_t i = 0; i < STORE_CF_COUNT_; i++)
        names[count++] = cf_names[i];

    /* Fails on a fresh dir (no db yet): then there is nothing extra to open. */
    existing = rocksdb_list_column_families(s->opts, db_path, &existing_count, &rerr);
    if (rerr != NULL) {
        log_debug(MOD, "no existing column families in %s: %s", db_path, rerr);
        rocksdb_free(rerr);
        rerr = NULL;
        /* RocksDB 7.8 still returns an empty malloc'd list here. */
        if (existing != NULL)
            rocksdb_list_column_families_destroy(existing, 0);
        existing = NULL;
        existing_count = 0;
    }
    for (size_t i = 0; i < existing_count; i++) {
        bool known = false;
        for (size_t j = 0; j < 1 + STORE_CF_COUNT_; j++)
            known = known || strcmp(existing[i], names[j]) == 0;
        if (known)
            continue;
        if (s->extra_count == EXTRA_CF_MAX) {
            log_error(MOD, "%s has more than %d unknown column families", db_path, EXTRA_CF_MAX);
            err = MP_ERR_STORE_VERSION;
            goto cleanup;
        }
        log_warn(MOD, "%s has column family \"%s\" unknown to this build; leaving it alone",
                 db_path, existing[i]);
        names[count++] = existing[i];
        s->extra_count++;
    }
    for (size_t i = 0; i < count; i++)
        cf_opts[i] = s->opts;

    s->db =
        rocksdb_open_column_families(s->opts, db_path, (int)count, names, cf_opts, handles, &rerr);
    if (rerr != NULL) {
        s->db = NULL;
        s->extra_count = 0;
        err = rocks_err(rerr, "cannot open the database");
        goto cleanup;
    }
    s->default_cf = handles[0];
    for (size_t i = 0; i < STORE_CF_COUNT_; i++)
        s->cf[i] = handles[1 + i];
    for (size_t i = 0; i < s->extra_count; i++)
        s->extra_cf[i] = handles[1 + STORE_CF_COUNT_ + i];

cleanup:
    if (existing != NULL)
        rocksdb_list_column_families_destroy(existing, existing_count);
    return err;
}

/* Format 2 moved the small keys of the outbox and the inbox (the work list,
 * the digest and message-id indexes, the duplicate index: keys spread over
 * the whole key space) into families of their own. Mixed with the messages,
 * whose keys only grow, every compaction of new data overlapped all the old
 * messages and rewrote them: the sender's compactions took as much CPU as
 * its main thread under load. Layouts: docs/PROTOCOL.md. */
static const struct key_move {
    enum store_cf from, to;
    uint8_t prefix;
} moves_to_2[] = {
    {STORE_CF_OUTBOX, STORE_CF_OUTBOX_INDEX, 'q'},
    {STORE_CF_OUTBOX, STORE_CF_OUTBOX_INDEX, 'd'},
    {STORE_CF_OUTBOX, STORE_CF_OUTBOX_INDEX, 'm'},
    {STORE_CF_INBOX, STORE_CF_INBOX_INDEX, 'i'},
};

/* Keys moved per write of a migration: a store of any size moves in bounded
 * memory. */
#define MIGRATE_CHUNK 4096

/* Key in STORE_CF_META present while a migration is under way: the format
 * it started from (4 bytes, like FORMAT_KEY). */
#define MIGRATING_KEY "migrating_from"

/* What a migration does with one key of its walk (walk_chunks): the writes
 * that move it, into b, counted in *moved_io; arg is the step's own. */
typedef enum mp_err migrate_key_cb(struct store *s, struct store_batch *b, const uint8_t *key,
                                   size_t key_len, const uint8_t *val, size_t val_len, void *arg,
                                   size_t *moved_io);

/* The keys of cf starting with prefix, each through fn, chunk of them a
 * write, so that a store of any size moves in bounded memory, and each
 * write moves its keys whole. Each chunk picks up after the last key of the
 * one before (a walk from the prefix's start would step over every key
 * already moved: RocksDB keeps the deletions until a compaction), so fn
 * meets each key once. */
static enum mp_err walk_chunks(struct store *s, enum store_cf cf, uint8_t prefix, size_t chunk,
                               migrate_key_cb *fn, void *arg, size_t *moved_io)
{
    struct buf last; /* the last key met: no cap, it copies a key the iterator holds */
    size_t n;
    enum mp_err err = MP_OK;

    buf_init(&last, SIZE_MAX);
    do {
        struct store_iter *it = last.len > 0
                                    ? store_iter_new_at(s, cf, &prefix, 1, last.data, last.len)
                                    : store_iter_new(s, cf, &prefix, 1);
        struct store_batch *b = store_batch_new();
        const uint8_t *key, *val;
        size_t key_len, val_len;
        n = 0;
        while (err == MP_OK && n < chunk && store_iter_next(it, &key, &key_len, &val, &val_len)) {
            if (key_len == last.len && memcmp(key, last.data, last.len) == 0)
                continue; /* where the chunk before ended: done */
            err = fn(s, b, key, key_len, val, val_len, arg, moved_io);
            last.len = 0;
            if (err == MP_OK)
                err = buf_append(&last, key, key_len);
            n++;
        }
        if (err == MP_OK)
            err = store_iter_status(it);
        store_iter_free(it);
        if (err == MP_OK && n > 0)
            err = store_batch_write(s, b, false);
        store_batch_free(b);
    } while (err == MP_OK && n == chunk);
    buf_free(&last);
    return err;
}

/* A key of mv (struct key_move) to its new family. */
static enum mp_err move_key(struct store *s, struct store_batch *b, const uint8_t *key,
                            size_t key_len, const uint8_t *val, size_t val_len, void *arg,
                            size_t *moved_io)
{
    const struct key_move *mv = arg;
    (void)s;
    store_batch_put(b, mv->to, key, key_len, val, val_len);
    store_batch_delete(b, mv->from, key, key_len);
    (*moved_io)++;
    return MP_OK;
}

/* Format 1 to 2: the keys of moves_to_2 to their new families. Each write
 * moves its keys whole (put and delete in one batch), so a crash leaves
 * every key in one place or the other, never lost nor in both. */
static enum mp_err move_keys_to_2(struct store *s, size_t *moved_io)
{
    enum mp_err err = MP_OK;
    for (size_t m = 0; err == MP_OK && m < sizeof(moves_to_2) / sizeof(moves_to_2[0]); m++) {
        const struct key_move *mv = &moves_to_2[m];
        err = walk_chunks(s, mv->from, mv->prefix, MIGRATE_CHUNK, move_key, (void *)mv, moved_io);
    }
    return err;
}

/* Entries read per write of the format 3 migration: at most this many
 * envelopes (64 KiB each) in memory at once. */
#define MIGRATE_ENTRIES 64

/* The envelope held within the queued entry that work-list key key names
 * (version 3 and older) moved apart: the entry written again as version 4,
 * marked sealed, with its envelope under the same key in outbox_sealed.
 * An entry done before (by a migration cut short) holds none, and is left;
 * one that does not decode is left as it is, for delivery to report as it
 * reads it; so is a key of another length (counted in *arg, a size_t). */
static enum mp_err move_envelope(struct store *s, struct store_batch *b, const uint8_t *key,
                                 size_t key_len, const uint8_t *val, size_t val_len, void *arg,
                                 size_t *moved_io)
{
    uint8_t entry_key[9], *raw = NULL;
    size_t raw_len = 0;
    struct outbox_entry e;
    struct buf enc;
    (void)val;
    (void)val_len;
    if (key_len != sizeof(entry_key)) {
        (*(size_t *)arg)++;
        return MP_OK;
    }
    entry_key[0] = OUTBOX_KEY_ENTRY;
    memcpy(entry_key + 1, key + 1, 8);
    enum mp_err err = store_get(s, STORE_CF_OUTBOX, entry_key, sizeof(entry_key), &raw, &raw_len);
    bool decoded = err == MP_OK && outbox_entry_decode(raw, raw_len, &e) == MP_OK;
    free(raw);
    if (!decoded)
        return err == MP_ERR_NOT_FOUND ? MP_OK : err;
    if (e.envelope.len > 0) { /* within: version 3 or older, which decodes as sealed */
        err = outbox_entry_encode(&e, &enc);
        if (err == MP_OK) {
            store_batch_put(b, STORE_CF_OUTBOX, entry_key, sizeof(entry_key), enc.data, enc.len);
            store_batch_put(b, STORE_CF_OUTBOX_SEALED, entry_key, sizeof(entry_key),
                            e.envelope.data, e.envelope.len);
            buf_free(&enc);
            (*moved_io)++;
        }
    }
    outbox_entry_clear(&e);
    return err;
}

/* Format 2 to 3: the envelopes within queued entries moved apart
 * (move_envelope), each entry with its envelope in one write. Queued
 * entries are found through the work list ('q' keys of outbox_index): no
 * entry off it holds an envelope. */
static enum mp_err move_envelopes(struct store *s, size_t *moved_io)
{
    size_t odd_keys = 0;
    enum mp_err err = walk_chunks(s, STORE_CF_OUTBOX_INDEX, OUTBOX_KEY_PENDING, MIGRATE_ENTRIES,
                                  move_envelope, &odd_keys, moved_io);
    if (odd_keys > 0)
        log_warn(MOD, "%zu work-list key(s) not of 9 bytes: the store is damaged (they are left "
                 "as they are; if messages are missing, restore the data dir from a backup)",
                 odd_keys);
    return err;
}

/* A migration's moves (migrate), counted in *moved_io. */
typedef enum mp_err migrate_step_cb(struct store *s, size_t *moved_io);

/* Format from to from + 1 by step (what it moves: counted in what). First
 * the new version and the MIGRATING_KEY marker, synced: from then on a
 * build that knows only the old format refuses the store rather than
 * misread what was moved, and an open of this build that finds the marker
 * goes on with the migration (step takes up where it stopped). Each write
 * of step leaves every key whole in one place or the other. The marker goes
 * last, synced, making the moves durable. */
static enum mp_err migrate(struct store *s, const char *dir, uint32_t from, bool resumed,
                           migrate_step_cb *step, const char *what)
{
    uint8_t be[FORMAT_LEN], from_be[FORMAT_LEN];
    size_t moved = 0;

    bytes_put_u32(be, from + 1);
    bytes_put_u32(from_be, from);
    struct store_batch *b = store_batch_new();
    store_batch_put(b, STORE_CF_META, FORMAT_KEY, strlen(FORMAT_KEY), be, sizeof(be));
    store_batch_put(b, STORE_CF_META, MIGRATING_KEY, strlen(MIGRATING_KEY), from_be,
                    sizeof(from_be));
    enum mp_err err = store_batch_write(s, b, true);
    store_batch_free(b);
    if (err == MP_OK)
        err = step(s, &moved);
    if (err == MP_OK)
        err = store_delete(s, STORE_CF_META, MIGRATING_KEY, strlen(MIGRATING_KEY), true);
    if (err == MP_OK)
        log_info(MOD, "store in %s migrated from format %u to %u%s (%zu %s moved)", dir,
                 (unsigned)from, (unsigned)from + 1,
                 resumed ? ", going on with a migration cut short" : "", moved, what);
    else
        log_error(MOD, "cannot migrate the store in %s from format %u to %u: %s; the next "
                  "start goes on from where this one stopped", dir, (unsigned)from,
                  (unsigned)from + 1, mp_strerror(err));
    return err;
}

/* The format a migration cut short started from, into *from_out (0: none under way). */
static enum mp_err migrating_from(struct store *s, const char *dir, uint32_t *from_out)
{
    uint8_t *val = NULL;
    size_t len = 0;
    enum mp_err err = store_get(s, STORE_CF_META, MIGRATING_KEY, strlen(MIGRATING_KEY), &val, &len);
    *from_out = 0;
    if (err == MP_OK && len == FORMAT_LEN)
        *from_out = bytes_get_u32(val);
    free(val);
    if (err == MP_ERR_NOT_FOUND)
        return MP_OK;
    if (err == MP_OK && *from_out == 0) {
        log_error(MOD, "store in %s is damaged: %s is not a 4-byte format above 0", dir,
                  MIGRATING_KEY);
        err = MP_ERR_STORE;
    }
    return err;
}

static enum mp_err check_format(struct store *s, const char *dir)
{
    uint8_t *val = NULL;
    size_t len = 0;
    uint32_t version, from;
    enum mp_err err;

    err = store_get(s, STORE_CF_META, FORMAT_KEY, strlen(FORMAT_KEY), &val, &len);
    if (err == MP_ERR_NOT_FOUND) {
        uint8_t be[FORMAT_LEN];
        bytes_put_u32(be, STORE_FORMAT_VERSION);
        log_info(MOD, "new store in %s (format %u)", dir, (unsigned)STORE_FORMAT_VERSION);
        return store_put(s, STORE_CF_META, FORMAT_KEY, strlen(FORMAT_KEY), be, sizeof(be), true);
    }
    if (err != MP_OK)
        return err;
    if (len != FORMAT_LEN) {
        log_error(MOD, "store in %s is damaged: format_version is %zu bytes, not %d", dir, len,
                  FORMAT_LEN);
        free(val);
        return MP_ERR_STORE;
    }
    version = bytes_get_u32(val);
    free(val);
    if (version > STORE_FORMAT_VERSION) {
        log_error(MOD,
                  "store in %s has format %u, this build supports format %u only: "
                  "run a newer merpati on it",
                  dir, (unsigned)version, (unsigned)STORE_FORMAT_VERSION);
        return MP_ERR_STORE_VERSION;
    }
    if (version == 0) { /* no build wrote it, and none migrates from it */
        log_error(MOD,
                  "store in %s has format %u, this build supports format %u only "
                  "and has no migration from it",
                  dir, (unsigned)version, (unsigned)STORE_FORMAT_VERSION);
        return MP_ERR_STORE_VERSION;
    }
    if ((err = migrating_from(s, dir, &from)) != MP_OK)
        return err;
    if (from != 0 && from + 1 != version) {
        log_error(MOD, "store in %s is damaged: a migration from format %u at format %u", dir,
                  (unsigned)from, (unsigned)version);
        return MP_ERR_STORE;
    }
    /* Each step in turn, from the one cut short (its marker still there). */
    if (version == 1 || from == 1)
        err = migrate(s, dir, 1, from == 1, move_keys_to_2, "keys");
    if (err == MP_OK && (version <= 2 || from == 2))
        err = migrate(s, dir, 2, from == 2, move_envelopes, "envelopes");
    return err;
}

enum mp_err store_open(const char *dir, struct store **store_out, pid_t *holder_pid_out)
{
    char db_path[PATHS_MAX];
    struct store *s;
    enum mp_err err;

    *store_out = NULL;
    *holder_pid_out = 0;
    /* RocksDB counts every read and write per thread unless told not to;
     * nothing here reads those counts. (The calling thread is the one that
     * uses the store.) */
    rocksdb_set_perf_level(ROCKS_PERF_DISABLE);
    if ((err = paths_join(dir, "db", db_path, sizeof(db_path))) != MP_OK) {
        log_error(MOD, "data dir path too long: %s", dir);
        return err;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MP_ERR_NOMEM;
    s->lock_fd = -1;
    if ((err = lock_dir(dir, &s->lock_fd, holder_pid_out)) != MP_OK)
        goto cleanup;

    s->opts = options_create();
    set_options(s);
    s->read_opts = rocksdb_readoptions_create();
    s->write_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->write_sync, 1);
    s->write_nosync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->write_nosync, 0);
    s->wb = rocksdb_writebatch_create();

    if ((err = open_db(s, db_path)) != MP_OK)
        goto cleanup;
    if ((err = check_format(s, dir)) != MP_OK)
        goto cleanup;
    *store_out = s;
    return MP_OK;

cleanup:
    store_close(s);
    return err;
}

void store_close(struct store *s)
{
    if (s == NULL)
        return;
    /* Synced writes are durable already; syncing the WAL here makes the
     * unsynced ones durable too, so a clean stop loses nothing even if the
     * machine loses power right after. Handles go before the db. */
    if (s->db != NULL && !s->write_failed) {
        char *errptr = NULL;
        rocksdb_flush_wal(s->db, 1, &errptr);
        if (errptr != NULL)
            rocks_err(errptr, "syncing the write-ahead log at close");
    }
    if (s->db != NULL) {
        rocksdb_column_family_handle_destroy(s->default_cf);
        for (size_t i = 0; i < STORE_CF_COUNT_; i++)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        for (size_t i = 0; i < s->extra_count; i++)
            rocksdb_column_family_handle_destroy(s->extra_cf[i]);
        rocksdb_close(s->db);
    }
    if (s->wb != NULL)
        rocksdb_writebatch_destroy(s->wb);
    if (s->write_nosync != NULL)
        rocksdb_writeoptions_destroy(s->write_nosync);
    if (s->write_sync != NULL)
        rocksdb_writeoptions_destroy(s->write_sync);
    if (s->read_opts != NULL)
        rocksdb_readoptions_destroy(s->read_opts);
    if (s->opts != NULL)
        rocksdb_options_destroy(s->opts);
    if (s->table_opts != NULL)
        rocksdb_block_based_options_destroy(s->table_opts);
    if (s->cache != NULL)
        rocksdb_cache_destroy(s->cache);
    if (s->lock_fd >= 0) {
        /* Forget our pid before unlocking, so the next owner's "in use by"
         * message never names us. Closing the descriptor releases the lock. */
        if (ftruncate(s->lock_fd, 0) != 0)
            log_debug(MOD, "cannot clear the lock file: %s", strerror(errno));
        close(s->lock_fd);
    }
    free(s);
}

/* ---- single reads and writes ---- */

enum mp_err store_get(struct store *s, enum store_cf cf, const void *key, size_t key_len,
                      uint8_t **val_out, size_t *val_len_out)
{
    rocksdb_pinnableslice_t *slice;
    const char *val;
    char *rerr = NULL;
    size_t len;
    uint8_t *copy;

    *val_out = NULL;
    *val_len_out = 0;
    if (!cf_valid(cf))
        return MP_ERR_INVAL;
    slice = rocksdb_get_pinned_cf(s->db, s->read_opts, s->cf[cf], key, key_len, &rerr);
    if (rerr != NULL)
        return rocks_err(rerr, "read failed");
    if (slice == NULL)
        return MP_ERR_NOT_FOUND;
    val = rocksdb_pinnableslice_value(slice, &len);
    copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        rocksdb_pinnableslice_destroy(slice);
        return MP_ERR_NOMEM;
    }
    memcpy(copy, val, len);
    rocksdb_pinnableslice_destroy(slice);
    *val_out = copy;
    *val_len_out = len;
    return MP_OK;
}

enum mp_err store_sync(struct store *s)
{
    if (s->write_failed)
        return MP_ERR_IO; /* RocksDB refuses writes until reopened */
    return store_sync_result(s, store_sync_wal(s));
}

char *store_sync_wal(struct store *s)
{
    char *errptr = NULL;
    rocksdb_flush_wal(s->db, 1, &errptr);
    return errptr;
}

enum mp_err store_sync_result(struct store *s, char *err)
{
    if (err != NULL)
        return write_err(s, err, "syncing the write-ahead log");
    return s->write_failed ? MP_ERR_IO : MP_OK; /* a write failed meanwhile: not all is there */
}

enum mp_err store_put(struct store *s, enum store_cf cf, const void *key, size_t key_len,
                      const void *val, size_t val_len, bool sync)
{
    char *rerr = NULL;

    if (!cf_valid(cf))
        return MP_ERR_INVAL;
    rocksdb_put_cf(s->db, sync ? s->write_sync : s->write_nosync, s->cf[cf], key, key_len, val,
                   val_len, &rerr);
    return rerr != NULL ? write_err(s, rerr, "write failed") : MP_OK;
}

enum mp_err store_delete(struct store *s, enum store_cf cf, const void *key, size_t key_len,
                         bool sync)
{
    char *rerr = NULL;

    if (!cf_valid(cf))
        return MP_ERR_INVAL;
    rocksdb_delete_cf(s->db, sync ? s->write_sync : s->write_nosync, s->cf[cf], key, key_len,
                      &rerr);
    return rerr != NULL ? write_err(s, rerr, "delete failed") : MP_OK;
}

/* ---- batches: our own op list, turned into a RocksDB batch at write time,
 * so a batch can be built without a store. ---- */

struct store_batch *store_batch_new(void)
{
    struct store_batch *b = xmalloc(sizeof(*b));
    b->ops = NULL;
    b->count = 0;
    b->cap = 0;
    b->chunks = NULL;
    return b;
}

/* len bytes of b's chunks for an op's key and value. An op larger than a
 * chunk (an envelope) gets one of its own, linked behind the one being
 * filled, which goes on taking the small ops around it. */
static uint8_t *batch_room(struct store_batch *b, size_t len)
{
    struct batch_chunk *c = b->chunks;
    if (c == NULL || c->cap - c->used < len) {
        size_t cap = len > BATCH_CHUNK ? len : BATCH_CHUNK;
        if (cap > SIZE_MAX - sizeof(*c)) {
            log_error(MOD, "write batch entry too large");
            abort();
        }
        struct batch_chunk *fresh = xmalloc(sizeof(*fresh) + cap);
        fresh->used = 0;
        fresh->cap = cap;
        if (c != NULL && len > BATCH_CHUNK) {
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            b->chunks = fresh;
        }
        c = fresh;
    }
    uint8_t *p = c->data + c->used;
    c->used += len;
    return p;
}

static void batch_add(struct store_batch *b, enum store_cf cf, bool is_put, const void *key,
                      size_t key_len, const void *val, size_t val_len)
{
    struct batch_op *op;

    if (b->count == b->cap) {
        size_t cap = b->cap > 0 ? b->cap * 2 : 8;
        if (cap > SIZE_MAX / sizeof(*b->ops)) {
            log_error(MOD, "write batch too large");
            abort();
        }
        struct batch_op *ops = xmalloc(cap * sizeof(*ops));
        if (b->count > 0)
            memcpy(ops, b->ops, b->count * sizeof(*ops));
        free(b->ops);
        b->ops = ops;
        b->cap = cap;
    }
    if (key_len > SIZE_MAX - val_len) {
        log_error(MOD, "write batch entry too large");
        abort();
    }
    uint8_t *data = batch_room(b, key_len + val_len);
    if (key_len > 0)
        memcpy(data, key, key_len);
    if (val_len > 0)
        memcpy(data + key_len, val, val_len);
    op = &b->ops[b->count++];
    op->cf = cf;
    op->is_put = is_put;
    op->key_len = key_len;
    op->val_len = val_len;
    op->data = data;
}

void store_batch_put(struct store_batch *b, enum store_cf cf, const void *key, size_t key_len,
                     const void *val, size_t val_len)
{
    batch_add(b, cf, true, key, key_len, val, val_len);
}

void store_batch_delete(struct store_batch *b, enum store_cf cf, const void *key, size_t key_len)
{
    batch_add(b, cf, false, key, key_len, NULL, 0);
}

enum mp_err store_batch_write(struct store *s, struct store_batch *b, bool sync)
{
    rocksdb_writebatch_t *wb;
    char *rerr = NULL;

    for (size_t i = 0; i < b->count; i++) {
        if (!cf_valid(b->ops[i].cf))
            return MP_ERR_INVAL;
    }
    wb = s->wb;
    rocksdb_writebatch_clear(wb);
    for (size_t i = 0; i < b->count; i++) {
        const struct batch_op *op = &b->ops[i];
        const char *key = (const char *)op->data;
        if (op->is_put)
            rocksdb_writebatch_put_cf(wb, s->cf[op->cf], key, op->key_len, key + op->key_len,
                                      op->val_len);
        else
            rocksdb_writebatch_delete_cf(wb, s->cf[op->cf], key, op->key_len);
    }
    rocksdb_write(s->db, sync ? s->write_sync : s->write_nosync, wb, &rerr);
    return rerr != NULL ? write_err(s, rerr, "batch write failed") : MP_OK;
}

void store_batch_free(struct store_batch *b)
{
    if (b == NULL)
        return;
    /* Batches carry session state and messages: wipe them. */
    while (b->chunks != NULL) {
        struct batch_chunk *c = b->chunks;
        b->chunks = c->next;
        secure_wipe(c->data, c->used);
        free(c);
    }
    free(b->ops);
    free(b);
}

/* ---- prefix iteration ---- */

/* The smallest key greater than every key starting with prefix: drop trailing
 * 0xff bytes and increment the last one. None (NULL) if all bytes are 0xff. */
static void set_upper_bound(struct store_iter *it)
{
    size_t len = it->prefix_len;

    while (len > 0 && it->prefix[len - 1] == 0xff)
        len--;
    if (len == 0)
        return;
    it->upper = xmalloc(len);
    memcpy(it->upper, it->prefix, len);
    it->upper[len - 1]++;
    it->upper_len = len;
    rocksdb_readoptions_set_iterate_upper_bound(it->read_opts, (const char *)it->upper, len);
}

struct store_iter *store_iter_new(struct store *s, enum store_cf cf, const void *prefix,
                                  size_t prefix_len)
{
    return store_iter_new_at(s, cf, prefix, prefix_len, prefix, prefix_len);
}

/* An iterator over cf's keys with prefix, not yet positioned; for an
 * invalid cf one without a RocksDB iterator, done, with MP_ERR_INVAL. */
static struct store_iter *iter_create(struct store *s, enum store_cf cf, const void *prefix,
                                      size_t prefix_len)
{
    struct store_iter *it = xmalloc(sizeof(*it));

    memset(it, 0, sizeof(*it));
    it->status = MP_OK;
    if (!cf_valid(cf)) {
        it->status = MP_ERR_INVAL;
        it->done = true;
        return it;
    }
    it->prefix = xmalloc(prefix_len);
    if (prefix_len > 0)
        memcpy(it->prefix, prefix, prefix_len);
    it->prefix_len = prefix_len;
    it->read_opts = rocksdb_readoptions_create();
    set_upper_bound(it);
    it->it = rocksdb_create_iterator_cf(s->db, it->read_opts, s->cf[cf]);
    return it;
}

struct store_iter *store_iter_new_reverse(struct store *s, enum store_cf cf, const void *prefix,
                                          size_t prefix_len)
{
    struct store_iter *it = iter_create(s, cf, prefix, prefix_len);
    if (it->it == NULL)
        return it;
    it->reverse = true;
    /* The last key under the upper bound, or of the family when the prefix
     * has none (empty or all 0xff): then the last key of all has it, if any. */
    rocksdb_iter_seek_to_last(it->it);
    return it;
}

struct store_iter *store_iter_new_at(struct store *s, enum store_cf cf, const void *prefix,
                                     size_t prefix_len, const void *start, size_t start_len)
{
    struct store_iter *it = iter_create(s, cf, prefix, prefix_len);
    if (it->it == NULL)
        return it;
    /* Where start stands against the prefix: before it, inside it, after it. */
    size_t common = start_len < prefix_len ? start_len : prefix_len;
    int c = common > 0 ? memcmp(start, prefix, common) : 0;
    if (c > 0)
        it->done = true; /* after every key with the prefix */
    else if (c == 0 && start_len >= prefix_len)
        rocksdb_iter_seek(it->it, (const char *)start, start_len);
    else
        rocksdb_iter_seek(it->it, (const char *)it->prefix, prefix_len);
    return it;
}

bool store_iter_next(struct store_iter *it, const uint8_t **key_out, size_t *key_len_out,
                     const uint8_t **val_out, size_t *val_len_out)
{
    const char *key, *val;
    size_t key_len, val_len;

    if (it->done)
        return false;
    if (it->started && it->reverse)
        rocksdb_iter_prev(it->it);
    else if (it->started)
        rocksdb_iter_next(it->it);
    it->started = true;
    if (!rocksdb_iter_valid(it->it)) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it->it, &rerr);
        if (rerr != NULL)
            it->status = rocks_err(rerr, "iteration failed");
        it->done = true;
        return false;
    }
    key = rocksdb_iter_key(it->it, &key_len);
    if (key_len < it->prefix_len || memcmp(key, it->prefix, it->prefix_len) != 0) {
        it->done = true;
        return false;
    }
    val = rocksdb_iter_value(it->it, &val_len);
    *key_out = (const uint8_t *)key;
    *key_len_out = key_len;
    *val_out = (const uint8_t *)val;
    *val_len_out = val_len;
    return true;
}

enum mp_err store_iter_status(const struct store_iter *it)
{
    return it->status;
}

void store_iter_free(struct store_iter *it)
{
    if (it == NULL)
        return;
    if (it->it != NULL)
        rocksdb_iter_destroy(it->it);
    if (it->read_opts != NULL)
        rocksdb_readoptions_destroy(it->read_opts);
    free(it->upper);
    free(it->prefix);
    free(it);
}
