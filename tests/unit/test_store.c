/* Unit tests for node/store: column families, format version, the data-dir
 * lock across processes, batches, prefix iteration and a full disk. Each test
 * works in its own mkdtemp dir, removed at the end. */
#define _GNU_SOURCE /* mkdtemp, mount */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/log.h"
#include "node/outbox.h"
#include "node/store.h"
#include "tests/support/outbox_v3_wire.h"

#define DIR_MAX          256
#define PATH_CAP         512
#define OPTIONS_TEXT_MAX (256u << 10)

static const char *const cf_names[STORE_CF_COUNT_] = {
    "meta",    "contacts",    "sessions", "outbox",       "inbox",
    "mailbox", "dht_records", "peers",    "outbox_index", "inbox_index", "outbox_sealed",
};

static void make_dir(char *dir)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, DIR_MAX, "%s/merpati-store-XXXXXX",
                     tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    assert_true(n > 0 && n < DIR_MAX);
    assert_non_null(mkdtemp(dir));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_dir(const char *dir)
{
    assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static struct store *open_ok(const char *dir)
{
    struct store *s = NULL;
    pid_t holder = -1;
    assert_int_equal(store_open(dir, &s, &holder), MP_OK);
    assert_non_null(s);
    return s;
}

static void put_str(struct store *s, enum store_cf cf, const char *key, const char *val, bool sync)
{
    assert_int_equal(store_put(s, cf, key, strlen(key), val, strlen(val), sync), MP_OK);
}

static void expect_str(struct store *s, enum store_cf cf, const char *key, const char *want)
{
    uint8_t *val = NULL;
    size_t len = 0;
    assert_int_equal(store_get(s, cf, key, strlen(key), &val, &len), MP_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(val, want, len);
    free(val);
}

static void expect_absent(struct store *s, enum store_cf cf, const char *key)
{
    uint8_t *val = (uint8_t *)"sentinel";
    size_t len = 99;
    assert_int_equal(store_get(s, cf, key, strlen(key), &val, &len), MP_ERR_NOT_FOUND);
    assert_null(val);
    assert_int_equal(len, 0);
}

/* The text of db/OPTIONS-*, where RocksDB records every column family. */
static char *read_options_file(const char *dir)
{
    char path[PATH_CAP];
    char *text = NULL;
    DIR *d;
    struct dirent *e;

    assert_true(snprintf(path, sizeof(path), "%s/db", dir) < (int)sizeof(path));
    assert_non_null(d = opendir(path));
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "OPTIONS-", 8) != 0)
            continue;
        assert_true(snprintf(path, sizeof(path), "%s/db/%s", dir, e->d_name) < (int)sizeof(path));
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        free(text);
        text = calloc(1, OPTIONS_TEXT_MAX);
        assert_non_null(text);
        size_t n = fread(text, 1, OPTIONS_TEXT_MAX - 1, f);
        assert_true(n > 0 && n < OPTIONS_TEXT_MAX - 1);
        fclose(f);
    }
    closedir(d);
    assert_non_null(text);
    return text;
}

static void test_fresh_dir_has_families_and_version(void **state)
{
    char dir[DIR_MAX], section[64];
    (void)state;
    make_dir(dir);
    struct store *s = open_ok(dir);

    uint8_t *val = NULL;
    size_t len = 0;
    assert_int_equal(store_get(s, STORE_CF_META, "format_version", 14, &val, &len), MP_OK);
    assert_int_equal(len, 4);
    const uint8_t want[4] = {0, 0, 0, STORE_FORMAT_VERSION};
    assert_memory_equal(val, want, 4);
    free(val);
    store_close(s);

    char *options = read_options_file(dir);
    for (size_t i = 0; i < STORE_CF_COUNT_; i++) {
        snprintf(section, sizeof(section), "[CFOptions \"%s\"]", cf_names[i]);
        const char *at = strstr(options, section);
        assert_non_null(at);
        /* The option set through the options string took (store.c). */
        const char *hint = strstr(at, "memtable_insert_with_hint_prefix_extractor=");
        const char *next = strstr(at + 1, "[CFOptions");
        assert_true(hint != NULL && (next == NULL || hint < next)); /* in this section */
        assert_true(strncmp(strchr(hint, '=') + 1, "rocksdb.FixedPrefix.1\n", 22) == 0);
    }
    free(options);

    struct stat st;
    char lock[PATH_CAP];
    snprintf(lock, sizeof(lock), "%s/lock", dir);
    assert_int_equal(stat(lock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    remove_dir(dir);
}

static void test_put_get_delete_every_family(void **state)
{
    char dir[DIR_MAX], val[32];
    (void)state;
    make_dir(dir);
    struct store *s = open_ok(dir);

    /* The same key in every family holds a different value: families are separate. */
    for (int cf = 0; cf < STORE_CF_COUNT_; cf++) {
        snprintf(val, sizeof(val), "value in %s", cf_names[cf]);
        put_str(s, (enum store_cf)cf, "k", val, cf % 2 == 0);
    }
    for (int cf = 0; cf < STORE_CF_COUNT_; cf++) {
        snprintf(val, sizeof(val), "value in %s", cf_names[cf]);
        expect_str(s, (enum store_cf)cf, "k", val);
        expect_absent(s, (enum store_cf)cf, "other");
    }
    /* Overwrite, empty value, binary key with a NUL byte. */
    put_str(s, STORE_CF_CONTACTS, "k", "newer", true);
    expect_str(s, STORE_CF_CONTACTS, "k", "newer");
    assert_int_equal(store_put(s, STORE_CF_INBOX, "\0x", 2, "", 0, true), MP_OK);
    uint8_t *v = NULL;
    size_t len = 7;
    assert_int_equal(store_get(s, STORE_CF_INBOX, "\0x", 2, &v, &len), MP_OK);
    assert_int_equal(len, 0);
    free(v);
    expect_absent(s, STORE_CF_INBOX, "x");

    for (int cf = 0; cf < STORE_CF_COUNT_; cf++) {
        assert_int_equal(store_delete(s, (enum store_cf)cf, "k", 1, cf % 2 == 1), MP_OK);
        expect_absent(s, (enum store_cf)cf, "k");
    }
    /* Deleting what is absent is not an error; a bad family is. */
    assert_int_equal(store_delete(s, STORE_CF_PEERS, "nothing", 7, false), MP_OK);
    assert_int_equal(store_put(s, STORE_CF_COUNT_, "k", 1, "v", 1, false), MP_ERR_INVAL);
    assert_int_equal(store_get(s, STORE_CF_META, "format_version", 14, &v, &len), MP_OK);
    assert_int_equal(len, 4); /* other families' writes left the version alone */
    free(v);
    store_close(s);
    remove_dir(dir);
}

static void test_reopen_keeps_data_and_batches_are_atomic(void **state)
{
    char dir[DIR_MAX];
    (void)state;
    make_dir(dir);
    struct store *s = open_ok(dir);
    put_str(s, STORE_CF_CONTACTS, "alice", "a", true);
    put_str(s, STORE_CF_OUTBOX, "gone", "x", true);
    /* Unsynced writes are readable at once, and made durable by one sync. */
    put_str(s, STORE_CF_INBOX, "later", "synced by store_sync", false);
    expect_str(s, STORE_CF_INBOX, "later", "synced by store_sync");
    assert_int_equal(store_sync(s), MP_OK);

    struct store_batch *b = store_batch_new();
    store_batch_put(b, STORE_CF_OUTBOX, "m1", 2, "hello", 5);
    store_batch_put(b, STORE_CF_SESSIONS, "alice", 5, "ratchet-1", 9);
    store_batch_delete(b, STORE_CF_OUTBOX, "gone", 4);
    store_batch_put(b, STORE_CF_SESSIONS, "alice", 5, "ratchet-2", 9); /* later op wins */
    /* Nothing is visible before the write. */
    expect_absent(s, STORE_CF_OUTBOX, "m1");
    assert_int_equal(store_batch_write(s, b, true), MP_OK);
    store_batch_free(b);
    store_batch_free(NULL);

    /* Values past a batch's 64 KiB chunks, and larger than one, between
     * small ones: each written whole, in its place. */
    b = store_batch_new();
    enum { BIG = 100 * 1024, MID = 40 * 1024, OPS = 7 };
    uint8_t *vals[OPS];
    size_t lens[OPS] = {3, BIG, 5, MID, MID, BIG, 2};
    for (size_t i = 0; i < OPS; i++) {
        char key[8];
        vals[i] = malloc(lens[i]);
        assert_non_null(vals[i]);
        memset(vals[i], 'a' + (int)i, lens[i]);
        snprintf(key, sizeof(key), "v%zu", i);
        store_batch_put(b, STORE_CF_INBOX, key, strlen(key), vals[i], lens[i]);
    }
    assert_int_equal(store_batch_write(s, b, false), MP_OK);
    store_batch_free(b);
    for (size_t i = 0; i < OPS; i++) {
        char key[8];
        uint8_t *got = NULL;
        size_t got_len = 0;
        snprintf(key, sizeof(key), "v%zu", i);
        assert_int_equal(store_get(s, STORE_CF_INBOX, key, strlen(key), &got, &got_len), MP_OK);
        assert_int_equal(got_len, lens[i]);
        assert_memory_equal(got, vals[i], lens[i]);
        free(got);
        free(vals[i]);
    }

    /* A batch with an invalid family writes nothing at all. */
    b = store_batch_new();
    store_batch_put(b, STORE_CF_PEERS, "p", 1, "1", 1);
    store_batch_put(b, STORE_CF_COUNT_, "p", 1, "1", 1);
    assert_int_equal(store_batch_write(s, b, true), MP_ERR_INVAL);
    store_batch_free(b);
    expect_absent(s, STORE_CF_PEERS, "p");
    store_close(s);
    store_close(NULL);

    s = open_ok(dir);
    expect_str(s, STORE_CF_CONTACTS, "alice", "a");
    expect_str(s, STORE_CF_INBOX, "later", "synced by store_sync");
    expect_str(s, STORE_CF_OUTBOX, "m1", "hello");
    expect_str(s, STORE_CF_SESSIONS, "alice", "ratchet-2");
    expect_absent(s, STORE_CF_OUTBOX, "gone");
    store_close(s);
    remove_dir(dir);
}

/* s holds format version v. */
static void expect_format(struct store *s, uint32_t v)
{
    uint8_t *val = NULL, want[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                                    (uint8_t)v};
    size_t len = 0;
    assert_int_equal(store_get(s, STORE_CF_META, "format_version", 14, &val, &len), MP_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(val, want, 4);
    free(val);
}

static void put_version(struct store *s, uint32_t v)
{
    const uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    assert_int_equal(store_put(s, STORE_CF_META, "format_version", 14, be, 4, true), MP_OK);
}

static void test_other_format_version_is_refused(void **state)
{
    char dir[DIR_MAX];
    struct store *s;
    pid_t holder = -1;
    (void)state;
    make_dir(dir);

    s = open_ok(dir);
    put_str(s, STORE_CF_INBOX, "msg", "kept", true);
    put_version(s, STORE_FORMAT_VERSION + 1);
    store_close(s);

    /* Refused every time: the newer version is not overwritten, and nothing
     * stays locked (a lock left behind would turn the second try into BUSY). */
    for (int i = 0; i < 2; i++) {
        s = (struct store *)&holder;
        assert_int_equal(store_open(dir, &s, &holder), MP_ERR_STORE_VERSION);
        assert_null(s);
    }
    remove_dir(dir);

    /* Older without a migration (format 0 never existed): refused too. */
    make_dir(dir);
    s = open_ok(dir);
    put_version(s, 0);
    store_close(s);
    assert_int_equal(store_open(dir, &s, &holder), MP_ERR_STORE_VERSION);
    remove_dir(dir);
}

/* A format 1 store: the outbox's and the inbox's small keys move to their
 * own families, every other key stays, and the version becomes 2, then 3
 * (test_format_2_is_migrated). More keys than one write of the migration
 * moves, so it takes several. */
static void test_format_1_is_migrated(void **state)
{
    enum { MANY = 5000 };
    char dir[DIR_MAX], key[16], val[16];
    (void)state;
    make_dir(dir);

    struct store *s = open_ok(dir);
    for (int i = 0; i < MANY; i++) {
        snprintf(key, sizeof(key), "m%05d", i);
        snprintf(val, sizeof(val), "seq%d", i);
        put_str(s, STORE_CF_OUTBOX, key, val, false);
    }
    put_str(s, STORE_CF_OUTBOX, "q1", "to", false);
    put_str(s, STORE_CF_OUTBOX, "d1", "seq1", false);
    put_str(s, STORE_CF_OUTBOX, "o1", "entry", false);
    put_str(s, STORE_CF_INBOX, "i1", "cursor", false);
    put_str(s, STORE_CF_INBOX, "e1", "event", false);
    put_version(s, 1);
    store_close(s);

    s = open_ok(dir);
    expect_format(s, 3);
    for (int i = 0; i < MANY; i++) {
        snprintf(key, sizeof(key), "m%05d", i);
        snprintf(val, sizeof(val), "seq%d", i);
        expect_str(s, STORE_CF_OUTBOX_INDEX, key, val);
        expect_absent(s, STORE_CF_OUTBOX, key);
    }
    expect_str(s, STORE_CF_OUTBOX_INDEX, "q1", "to");
    expect_str(s, STORE_CF_OUTBOX_INDEX, "d1", "seq1");
    expect_absent(s, STORE_CF_OUTBOX, "q1");
    expect_absent(s, STORE_CF_OUTBOX, "d1");
    expect_str(s, STORE_CF_OUTBOX, "o1", "entry");
    expect_str(s, STORE_CF_INBOX_INDEX, "i1", "cursor");
    expect_absent(s, STORE_CF_INBOX, "i1");
    expect_str(s, STORE_CF_INBOX, "e1", "event");
    expect_absent(s, STORE_CF_META, "migrating_from");
    store_close(s);
    remove_dir(dir);
}

/* The key of outbox entry seq under prefix ('o' entry, 'q' work list). */
static void seq_key(uint8_t out[9], char prefix, uint64_t seq)
{
    out[0] = (uint8_t)prefix;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

/* A version 3 entry as format 2 builds wrote it, its envelope (env, may be
 * empty) within: to 0x42 .., queued, created 7, plaintext "pt". */
static void v3_entry(struct buf *out, const char *env)
{
    struct outbox_entry e = {.state = OUTBOX_QUEUED, .created_ms = 7};
    memset(e.to, 0x42, sizeof(e.to));
    e.plaintext = (struct buf){.data = (uint8_t *)"pt", .len = 2};
    e.envelope = (struct buf){.data = (uint8_t *)env, .len = strlen(env)};
    assert_int_equal(outbox_v3_encode(&e, out), MP_OK);
}

/* A format 2 store, or one whose migration to 3 was cut short after MOVED
 * heads (cut_short): HEADS queued entries holding their envelopes (more
 * than one write of the migration takes), one of them held by mailboxes
 * (a version 1 state row), a rider (no envelope, off the work list), a
 * work-list key whose entry is gone and two of other lengths (damage).
 * After the open: format 3, no marker, each head's envelope apart under
 * its entry's key and the head marked sealed (version 4, no envelope
 * within), the state row, the rider and the odd keys as they were. */
static void format_2_is_migrated(bool cut_short)
{
    enum { HEADS = 70, MOVED = 10, HELD = 5, RIDER = 1000, GONE = 1001 };
    char dir[DIR_MAX], env[16];
    uint8_t key[9], to[32];
    struct buf entry, rider;
    const uint8_t held_row[10] = {1, OUTBOX_MAILBOX, 0, 0, 0, 0, 0, 0, 0, 9};
    const uint8_t odd_key[3] = {'q', 0, 0}; /* first on the work list, and no seq */
    /* Longer than any key written, after seq 62's: the 64th on the work list,
     * where the migration's first write (MIGRATE_ENTRIES) ends and its next
     * walk starts. */
    uint8_t long_key[100];
    seq_key(long_key, 'q', 62);
    memset(long_key + 9, 0xff, sizeof(long_key) - 9);
    memset(to, 0x42, sizeof(to)); /* as v3_entry's */
    make_dir(dir);

    struct store *s = open_ok(dir);
    for (uint64_t seq = 1; seq <= HEADS; seq++) {
        snprintf(env, sizeof(env), "env%llu", (unsigned long long)seq);
        v3_entry(&entry, env);
        seq_key(key, 'o', seq);
        if (cut_short && seq <= MOVED) { /* as the migration left it */
            struct outbox_entry e;
            struct buf enc;
            assert_int_equal(outbox_entry_decode(entry.data, entry.len, &e), MP_OK);
            assert_int_equal(outbox_entry_encode(&e, &enc), MP_OK);
            assert_int_equal(store_put(s, STORE_CF_OUTBOX, key, 9, enc.data, enc.len, false),
                             MP_OK);
            assert_int_equal(store_put(s, STORE_CF_OUTBOX_SEALED, key, 9, env, strlen(env),
                                       false),
                             MP_OK);
            buf_free(&enc);
            outbox_entry_clear(&e);
        } else {
            assert_int_equal(store_put(s, STORE_CF_OUTBOX, key, 9, entry.data, entry.len, false),
                             MP_OK);
        }
        buf_free(&entry);
        seq_key(key, 'q', seq);
        assert_int_equal(store_put(s, STORE_CF_OUTBOX_INDEX, key, 9, to, 32, false), MP_OK);
    }
    seq_key(key, 's', HELD);
    assert_int_equal(store_put(s, STORE_CF_OUTBOX_INDEX, key, 9, held_row, 10, false), MP_OK);
    v3_entry(&rider, "");
    seq_key(key, 'o', RIDER);
    assert_int_equal(store_put(s, STORE_CF_OUTBOX, key, 9, rider.data, rider.len, false), MP_OK);
    seq_key(key, 'q', GONE);
    assert_int_equal(store_put(s, STORE_CF_OUTBOX_INDEX, key, 9, to, 32, false), MP_OK);
    assert_int_equal(store_put(s, STORE_CF_OUTBOX_INDEX, odd_key, sizeof(odd_key), to, 32, false),
                     MP_OK);
    assert_int_equal(store_put(s, STORE_CF_OUTBOX_INDEX, long_key, sizeof(long_key), to, 32, false),
                     MP_OK);
    if (cut_short) {
        const uint8_t two[4] = {0, 0, 0, 2};
        assert_int_equal(store_put(s, STORE_CF_META, "migrating_from", 14, two, 4, true), MP_OK);
    }
    put_version(s, cut_short ? 3 : 2);
    store_close(s);

    s = open_ok(dir);
    uint8_t *v = NULL;
    size_t len = 0;
    expect_format(s, 3);
    expect_absent(s, STORE_CF_META, "migrating_from");
    for (uint64_t seq = 1; seq <= HEADS; seq++) {
        struct outbox_entry e;
        snprintf(env, sizeof(env), "env%llu", (unsigned long long)seq);
        seq_key(key, 'o', seq);
        assert_int_equal(store_get(s, STORE_CF_OUTBOX_SEALED, key, 9, &v, &len), MP_OK);
        assert_int_equal(len, strlen(env));
        assert_memory_equal(v, env, len);
        free(v);
        assert_int_equal(store_get(s, STORE_CF_OUTBOX, key, 9, &v, &len), MP_OK);
        assert_int_equal(outbox_entry_decode(v, len, &e), MP_OK);
        free(v);
        assert_true(e.sealed);
        assert_int_equal(e.envelope.len, 0);
        assert_int_equal(e.state, OUTBOX_QUEUED);
        assert_int_equal(e.created_ms, 7);
        assert_int_equal(e.plaintext.len, 2);
        outbox_entry_clear(&e);
    }
    seq_key(key, 's', HELD);
    assert_int_equal(store_get(s, STORE_CF_OUTBOX_INDEX, key, 9, &v, &len), MP_OK);
    assert_int_equal(len, sizeof(held_row));
    assert_memory_equal(v, held_row, len);
    free(v);
    seq_key(key, 'o', RIDER);
    assert_int_equal(store_get(s, STORE_CF_OUTBOX, key, 9, &v, &len), MP_OK);
    assert_int_equal(len, rider.len);
    assert_memory_equal(v, rider.data, len);
    free(v);
    buf_free(&rider);
    assert_int_equal(store_get(s, STORE_CF_OUTBOX_SEALED, key, 9, &v, &len), MP_ERR_NOT_FOUND);
    assert_int_equal(store_get(s, STORE_CF_OUTBOX_INDEX, odd_key, sizeof(odd_key), &v, &len),
                     MP_OK); /* left as it is */
    free(v);
    assert_int_equal(store_get(s, STORE_CF_OUTBOX_INDEX, long_key, sizeof(long_key), &v, &len),
                     MP_OK);
    free(v);
    store_close(s);
    remove_dir(dir);
}

static void test_format_2_is_migrated(void **state)
{
    (void)state;
    format_2_is_migrated(false);
    format_2_is_migrated(true);
}

/* A migration cut short: version 2 is written with the marker first (so a
 * format 1 build refuses the store), some keys are moved, some not. The next
 * open moves the rest, one write's worth and one key more, and drops the
 * marker. */
static void test_cut_short_migration_goes_on(void **state)
{
    enum { LEFT = 4097 };
    char dir[DIR_MAX], key[16];
    (void)state;
    make_dir(dir);

    struct store *s = open_ok(dir);
    put_str(s, STORE_CF_OUTBOX_INDEX, "d-moved", "seq0", false);
    for (int i = 0; i < LEFT; i++) {
        snprintf(key, sizeof(key), "m%05d", i);
        put_str(s, STORE_CF_OUTBOX, key, key, false);
    }
    put_str(s, STORE_CF_INBOX, "i-left", "cursor", false);
    const uint8_t one[4] = {0, 0, 0, 1};
    assert_int_equal(store_put(s, STORE_CF_META, "migrating_from", 14, one, 4, true), MP_OK);
    put_version(s, 2);
    store_close(s);

    s = open_ok(dir);
    expect_absent(s, STORE_CF_META, "migrating_from");
    expect_str(s, STORE_CF_OUTBOX_INDEX, "d-moved", "seq0");
    for (int i = 0; i < LEFT; i++) {
        snprintf(key, sizeof(key), "m%05d", i);
        expect_str(s, STORE_CF_OUTBOX_INDEX, key, key);
        expect_absent(s, STORE_CF_OUTBOX, key);
    }
    expect_str(s, STORE_CF_INBOX_INDEX, "i-left", "cursor");
    expect_absent(s, STORE_CF_INBOX, "i-left");
    store_close(s);
    remove_dir(dir);
}

/* The child side: open dir, expect `want` (and, for BUSY, the holder's pid).
 * Runs in a fresh process (this binary re-executed), because a forked copy of
 * a process that has run RocksDB inherits its thread pools without threads. */
static int child_main(const char *dir, const char *want_text, const char *holder_text)
{
    struct store *s = NULL;
    pid_t got = -1;
    enum mp_err want = (enum mp_err)strtol(want_text, NULL, 10);
    pid_t holder = (pid_t)strtol(holder_text, NULL, 10);
    enum mp_err err = store_open(dir, &s, &got);
    int code = 0;

    if (err != want)
        code = 1;
    else if (err == MP_ERR_BUSY && (got != holder || s != NULL))
        code = 2;
    else if (err == MP_OK && s == NULL)
        code = 3;
    if (code != 0)
        fprintf(stderr, "child: store_open gave %s (holder %ld), want %s (holder %ld)\n",
                mp_errname(err), (long)got, mp_errname(want), (long)holder);
    store_close(s);
    return code;
}

/* In another process: store_open(dir) must give `want` (and, for BUSY, name
 * `holder`). */
static void child_open(const char *dir, enum mp_err want, pid_t holder)
{
    char want_text[16], holder_text[16];
    snprintf(want_text, sizeof(want_text), "%d", (int)want);
    snprintf(holder_text, sizeof(holder_text), "%ld", (long)holder);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        execl("/proc/self/exe", "unit_store", "--child-open", dir, want_text, holder_text,
              (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_lock_excludes_other_opens(void **state)
{
    char dir[DIR_MAX];
    (void)state;
    make_dir(dir);
    pid_t holder = 0;
    assert_int_equal(store_lock_holder(dir, &holder), MP_ERR_NOT_FOUND); /* never opened */
    struct store *s = open_ok(dir);
    put_str(s, STORE_CF_META, "owner", "parent", true);
    assert_int_equal(store_lock_holder(dir, &holder), MP_OK);
    assert_int_equal(holder, getpid());

    child_open(dir, MP_ERR_BUSY, getpid());

    /* A second open in the same process is refused too, and failing must not
     * release the first owner's lock. */
    struct store *again = (struct store *)dir;
    holder = 0;
    assert_int_equal(store_open(dir, &again, &holder), MP_ERR_BUSY);
    assert_null(again);
    assert_int_equal(holder, getpid());
    child_open(dir, MP_ERR_BUSY, getpid());
    expect_str(s, STORE_CF_META, "owner", "parent");

    store_close(s);
    assert_int_equal(store_lock_holder(dir, &holder), MP_ERR_NOT_FOUND);
    child_open(dir, MP_OK, 0);
    s = open_ok(dir);
    expect_str(s, STORE_CF_META, "owner", "parent");
    store_close(s);
    remove_dir(dir);
}

static void expect_keys(struct store *s, enum store_cf cf, const char *prefix, size_t prefix_len,
                        const char *const *want, size_t want_count)
{
    struct store_iter *it = store_iter_new(s, cf, prefix, prefix_len);
    const uint8_t *key, *val;
    size_t key_len, val_len, n = 0;

    assert_non_null(it);
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        assert_true(n < want_count);
        assert_int_equal(key_len, strlen(want[n]));
        assert_memory_equal(key, want[n], key_len);
        /* Each value is "v:" + its key. */
        assert_int_equal(val_len, key_len + 2);
        assert_memory_equal(val, "v:", 2);
        assert_memory_equal(val + 2, key, key_len);
        n++;
    }
    assert_false(store_iter_next(it, &key, &key_len, &val, &val_len));
    assert_int_equal(store_iter_status(it), MP_OK);
    assert_int_equal(n, want_count);
    store_iter_free(it);
}

static void test_prefix_iteration(void **state)
{
    char dir[DIR_MAX], val[64];
    (void)state;
    make_dir(dir);
    struct store *s = open_ok(dir);
    static const char *const keys[] = {
        "a",   "ab", "ab\x01", "ab\xff", "ab\xff\xff",   "abc",
        "abd", "ac", "b",      "\xff",   "\xff\xff\x01",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(val, sizeof(val), "v:%s", keys[i]);
        put_str(s, STORE_CF_INBOX, keys[i], val, false);
    }
    put_str(s, STORE_CF_OUTBOX, "ab-other-family", "v:ab-other-family", false);
    store_delete(s, STORE_CF_INBOX, "abd", 3, false);

    static const char *const ab[] = {"ab", "ab\x01", "abc", "ab\xff", "ab\xff\xff"};
    expect_keys(s, STORE_CF_INBOX, "ab", 2, ab, 5);
    static const char *const abff[] = {"ab\xff", "ab\xff\xff"};
    expect_keys(s, STORE_CF_INBOX, "ab\xff", 3, abff, 2);
    static const char *const ff[] = {"\xff", "\xff\xff\x01"};
    expect_keys(s, STORE_CF_INBOX, "\xff", 1, ff, 2);
    static const char *const all[] = {
        "a", "ab", "ab\x01", "abc", "ab\xff", "ab\xff\xff", "ac", "b", "\xff", "\xff\xff\x01",
    };
    expect_keys(s, STORE_CF_INBOX, "", 0, all, 10);
    expect_keys(s, STORE_CF_INBOX, "zz", 2, NULL, 0);
    expect_keys(s, STORE_CF_CONTACTS, "", 0, NULL, 0);

    /* The iterator reads a snapshot: a write during iteration is not seen. */
    struct store_iter *it = store_iter_new(s, STORE_CF_INBOX, "a", 1);
    const uint8_t *key, *v;
    size_t key_len, v_len;
    assert_true(store_iter_next(it, &key, &key_len, &v, &v_len));
    put_str(s, STORE_CF_INBOX, "aa", "v:aa", false);
    assert_true(store_iter_next(it, &key, &key_len, &v, &v_len));
    assert_memory_equal(key, "ab", 2);
    store_iter_free(it);

    it = store_iter_new(s, STORE_CF_COUNT_, "", 0);
    assert_false(store_iter_next(it, &key, &key_len, &v, &v_len));
    assert_int_equal(store_iter_status(it), MP_ERR_INVAL);
    store_iter_free(it);
    store_iter_free(NULL);

    store_close(s);
    remove_dir(dir);
}

/* Incompressible filler, so RocksDB's compression cannot make the disk last. */
static void fill(uint8_t *buf, size_t len, uint64_t *x)
{
    for (size_t i = 0; i < len; i++) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        buf[i] = (uint8_t)*x;
    }
}

/* The tmpfs of the disk-full test, unmounted by its teardown even when an
 * assertion failed halfway. */
static char mounted[DIR_MAX];

static int unmount_teardown(void **state)
{
    (void)state;
    if (mounted[0] != '\0') {
        umount2(mounted, MNT_DETACH);
        rmdir(mounted);
        mounted[0] = '\0';
    }
    return 0;
}

#define FILL_VALUE (32u << 10)
#define FILL_MAX   4096 /* 128 MiB: far beyond the 2 MiB disk */

static void test_disk_full_is_an_error_not_a_crash(void **state)
{
    char dir[DIR_MAX];
    static uint8_t value[FILL_VALUE];
    uint64_t x = 0x9e3779b97f4a7c15u;
    enum mp_err err = MP_OK;
    char key[32];
    (void)state;

    make_dir(dir);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700") != 0) {
        fprintf(stderr, "skipped: cannot mount a tmpfs on %s (%s); needs root\n", dir,
                strerror(errno));
        rmdir(dir);
        skip();
    }
    memcpy(mounted, dir, sizeof(mounted));
    struct store *s = open_ok(dir);
    put_str(s, STORE_CF_OUTBOX, "accepted", "before the disk filled", true);
    int i;
    for (i = 0; i < FILL_MAX && err == MP_OK; i++) {
        fill(value, sizeof(value), &x);
        snprintf(key, sizeof(key), "fill-%06d", i);
        err = store_put(s, STORE_CF_MAILBOX, key, strlen(key), value, sizeof(value), true);
    }
    assert_int_equal(err, MP_ERR_DISK_FULL);
    assert_true(i < FILL_MAX);
    /* Later writes fail the same way; reads still work. */
    assert_int_equal(store_put(s, STORE_CF_OUTBOX, "small", 5, "x", 1, true), MP_ERR_DISK_FULL);
    expect_str(s, STORE_CF_OUTBOX, "accepted", "before the disk filled");
    store_close(s);

    /* The user frees space; the node starts again with what it had accepted. */
    assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    s = open_ok(dir);
    expect_str(s, STORE_CF_OUTBOX, "accepted", "before the disk filled");
    put_str(s, STORE_CF_OUTBOX, "after", "space was freed", true);
    store_close(s);

    assert_int_equal(umount(dir), 0);
    assert_int_equal(rmdir(dir), 0);
    mounted[0] = '\0';
}

int main(int argc, char **argv)
{
    log_set_level(LOG_LEVEL_ERROR);
    if (argc == 5 && strcmp(argv[1], "--child-open") == 0)
        return child_main(argv[2], argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_dir_has_families_and_version),
        cmocka_unit_test(test_put_get_delete_every_family),
        cmocka_unit_test(test_reopen_keeps_data_and_batches_are_atomic),
        cmocka_unit_test(test_other_format_version_is_refused),
        cmocka_unit_test(test_format_1_is_migrated),
        cmocka_unit_test(test_format_2_is_migrated),
        cmocka_unit_test(test_cut_short_migration_goes_on),
        cmocka_unit_test(test_lock_excludes_other_opens),
        cmocka_unit_test(test_prefix_iteration),
        cmocka_unit_test_teardown(test_disk_full_is_an_error_not_a_crash, unmount_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
