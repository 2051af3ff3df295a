/* Unit test for store_iter_new_at: iterating a prefix from a start key, the
 * way the delivery pump reads its work list past a deleted head; and for
 * store_iter_new_reverse, a prefix from its last key back, the way history
 * reads the newest messages first. */
#define _GNU_SOURCE /* mkdtemp */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "node/store.h"

#define DIR_MAX 256

static char dir[DIR_MAX];
static struct store *store;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/merpati-iter-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    pid_t holder = 0;
    assert_int_equal(store_open(dir, &store, &holder), MP_OK);
    /* "q" + one byte 1..9, plus keys around the prefix that must never show. */
    for (uint8_t i = 1; i <= 9; i++) {
        uint8_t key[2] = {'q', i};
        assert_int_equal(store_put(store, STORE_CF_OUTBOX, key, 2, &i, 1, false), MP_OK);
    }
    assert_int_equal(store_put(store, STORE_CF_OUTBOX, "p\xff", 2, "x", 1, false), MP_OK);
    assert_int_equal(store_put(store, STORE_CF_OUTBOX, "r", 1, "x", 1, false), MP_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(store);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* The second bytes of the keys an iterator yields, as a string of digits. */
static void walk(const void *start, size_t start_len, char *out, size_t cap)
{
    const uint8_t *key, *val;
    size_t key_len, val_len, n = 0;
    struct store_iter *it = store_iter_new_at(store, STORE_CF_OUTBOX, "q", 1, start, start_len);
    while (store_iter_next(it, &key, &key_len, &val, &val_len) && n + 1 < cap) {
        assert_int_equal(key_len, 2);
        assert_int_equal(key[0], 'q');
        out[n++] = (char)('0' + key[1]);
    }
    out[n] = '\0';
    assert_int_equal(store_iter_status(it), MP_OK);
    store_iter_free(it);
}

static void test_from_a_start_key(void **state)
{
    (void)state;
    char got[16];
    uint8_t start[2] = {'q', 4};
    walk(start, 2, got, sizeof(got));
    assert_string_equal(got, "456789");
    start[1] = 10; /* past the last one */
    walk(start, 2, got, sizeof(got));
    assert_string_equal(got, "");
}

static void test_start_outside_the_prefix(void **state)
{
    (void)state;
    char got[16];
    walk("a", 1, got, sizeof(got)); /* before: the whole prefix */
    assert_string_equal(got, "123456789");
    walk("q", 1, got, sizeof(got)); /* the prefix itself */
    assert_string_equal(got, "123456789");
    walk("s", 1, got, sizeof(got)); /* after: nothing */
    assert_string_equal(got, "");
}

static void test_past_a_deleted_head(void **state)
{
    (void)state;
    char got[16];
    for (uint8_t i = 1; i <= 5; i++) {
        uint8_t key[2] = {'q', i};
        assert_int_equal(store_delete(store, STORE_CF_OUTBOX, key, 2, false), MP_OK);
    }
    uint8_t start[2] = {'q', 3};
    walk(start, 2, got, sizeof(got));
    assert_string_equal(got, "6789");
    walk("q", 1, got, sizeof(got));
    assert_string_equal(got, "6789");
}

/* The keys of prefix from the last back, each as its second byte's digit
 * (a 'q' key) or as its first letter (any other). */
static void walk_back(const char *prefix, size_t prefix_len, char *out, size_t cap)
{
    const uint8_t *key, *val;
    size_t key_len, val_len, n = 0;
    struct store_iter *it = store_iter_new_reverse(store, STORE_CF_OUTBOX, prefix, prefix_len);
    while (store_iter_next(it, &key, &key_len, &val, &val_len) && n + 1 < cap)
        out[n++] = key[0] == 'q' && key_len == 2 ? (char)('0' + key[1]) : (char)key[0];
    out[n] = '\0';
    assert_int_equal(store_iter_status(it), MP_OK);
    store_iter_free(it);
}

static void test_reverse(void **state)
{
    (void)state;
    char got[16];
    walk_back("q", 1, got, sizeof(got));
    assert_string_equal(got, "987654321");
    walk_back("", 0, got, sizeof(got)); /* the whole family */
    assert_string_equal(got, "r987654321p");
    walk_back("s", 1, got, sizeof(got)); /* after every key */
    assert_string_equal(got, "");
    walk_back("a", 1, got, sizeof(got)); /* before every key */
    assert_string_equal(got, "");
    /* A prefix of 0xff only has no upper bound: it starts from the last key. */
    walk_back("\xff", 1, got, sizeof(got));
    assert_string_equal(got, "");
    assert_int_equal(store_put(store, STORE_CF_OUTBOX, "\xff\x01", 2, "x", 1, false), MP_OK);
    walk_back("\xff", 1, got, sizeof(got));
    assert_int_equal(strlen(got), 1);
    assert_int_equal((uint8_t)got[0], 0xff);
    /* Deleted keys at the end are stepped over. */
    for (uint8_t i = 7; i <= 9; i++) {
        uint8_t key[2] = {'q', i};
        assert_int_equal(store_delete(store, STORE_CF_OUTBOX, key, 2, false), MP_OK);
    }
    walk_back("q", 1, got, sizeof(got));
    assert_string_equal(got, "654321");
    /* An invalid family: nothing, and says so. */
    struct store_iter *it = store_iter_new_reverse(store, STORE_CF_COUNT_, "q", 1);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    assert_false(store_iter_next(it, &key, &key_len, &val, &val_len));
    assert_int_equal(store_iter_status(it), MP_ERR_INVAL);
    store_iter_free(it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_from_a_start_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_outside_the_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_past_a_deleted_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reverse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
