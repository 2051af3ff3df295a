/* Unit tests for base/: the error map, network addresses, bounded buffers, log levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <cmocka.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "base/utf8.h"

static void test_err_map_is_complete_and_distinct(void **state)
{
    (void)state;
    assert_int_equal(MP_OK, 0);
    assert_string_equal(mp_strerror(MP_OK), "success");
    for (int i = 0; i < MP_ERR_COUNT_; i++) {
        const char *msg = mp_strerror((enum mp_err)i);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, "unknown error");
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(msg, mp_strerror((enum mp_err)j));
            assert_string_not_equal(mp_errname((enum mp_err)i), mp_errname((enum mp_err)j));
        }
    }
    assert_string_equal(mp_strerror(MP_ERR_COUNT_), "unknown error");
    assert_string_equal(mp_strerror((enum mp_err)-1), "unknown error");
    assert_string_equal(mp_errname(MP_ERR_ADDR_CHECKSUM), "ADDR_CHECKSUM");
}

static void test_err_numbers_are_stable(void **state)
{
    (void)state;
    /* These numbers are part of the control API; the list is append-only. */
    assert_int_equal(MP_ERR_NOMEM, 1);
    assert_int_equal(MP_ERR_MALFORMED, 3);
    assert_int_equal(MP_ERR_BUSY, 8);
    assert_int_equal(MP_ERR_ADDR_CHECKSUM, 16);
}

static void test_err_from_errno(void **state)
{
    (void)state;
    assert_int_equal(mp_err_from_errno(0), MP_OK);
    assert_int_equal(mp_err_from_errno(ENOSPC), MP_ERR_DISK_FULL);
    assert_int_equal(mp_err_from_errno(ENOENT), MP_ERR_NOT_FOUND);
    assert_int_equal(mp_err_from_errno(EACCES), MP_ERR_PERM);
    assert_int_equal(mp_err_from_errno(EIO), MP_ERR_IO);
}

static void roundtrip(const char *text)
{
    struct addr a;
    char out[ADDR_TEXT_MAX];
    assert_int_equal(addr_parse(text, &a), MP_OK);
    assert_string_equal(addr_format(&a, out, sizeof(out)), text);
}

static void test_addr_roundtrip(void **state)
{
    (void)state;
    roundtrip("127.0.0.1:0");
    roundtrip("10.1.2.3:65535");
    roundtrip("[::1]:4000");
    roundtrip("[fe80::1:2]:1");
    roundtrip("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

    struct addr a;
    assert_int_equal(addr_parse("127.9.9.9:7", &a), MP_OK);
    assert_int_equal(a.family, ADDR_FAMILY_IPV4);
    assert_int_equal(a.port, 7);
    assert_true(addr_is_loopback(&a));
    assert_int_equal(addr_parse("[::1]:7", &a), MP_OK);
    assert_true(addr_is_loopback(&a));
    assert_int_equal(addr_parse("192.0.2.1:7", &a), MP_OK);
    assert_false(addr_is_loopback(&a));
}

static void test_addr_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1", "1.2.3.4:+5",
        "1.2.3.4:5x", "1.2.3:5", "::1:5", "[::1]5", "[::1", "[]:5", "localhost:5",
        "1.2.3.4:5 ", " 1.2.3.4:5", "[1.2.3.4]:5x", "256.1.1.1:5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct addr a;
        if (addr_parse(bad[i], &a) != MP_ERR_NET_ADDR)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void test_addr_equal(void **state)
{
    (void)state;
    struct addr a, b;
    assert_int_equal(addr_from_ip("127.0.0.1", 5, &a), MP_OK);
    assert_int_equal(addr_parse("127.0.0.1:5", &b), MP_OK);
    assert_true(addr_equal(&a, &b));
    b.port = 6;
    assert_false(addr_equal(&a, &b));
}

static void test_buf_cap(void **state)
{
    (void)state;
    struct buf b;
    uint8_t chunk[300];
    memset(chunk, 0xab, sizeof(chunk));
    buf_init(&b, 1000);
    assert_int_equal(buf_append(&b, chunk, 300), MP_OK);
    assert_int_equal(buf_append(&b, chunk, 300), MP_OK);
    assert_int_equal(buf_append(&b, chunk, 300), MP_OK);
    assert_int_equal(buf_append(&b, chunk, 300), MP_ERR_TOO_BIG);
    assert_int_equal(b.len, 900); /* a refused append changes nothing */
    assert_int_equal(buf_append(&b, chunk, 100), MP_OK);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap <= 1000);
    buf_consume(&b, 999);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 0xab);
    buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.max, 1000);
}

static void test_log_levels(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_level_parse("debug", &l), MP_OK);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("warn", &l), MP_OK);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("loud", &l), MP_ERR_INVAL);
    log_set_level(LOG_LEVEL_ERROR);
    assert_int_equal(log_get_level(), LOG_LEVEL_ERROR);
    log_set_level(LOG_LEVEL_INFO);
}

static bool valid(const char *s, size_t len)
{
    return utf8_valid((const uint8_t *)s, len);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(valid("", 0));
    assert_true(valid("hello", 5));
    assert_true(valid("k\xc3\xa9\xe2\x82\xac\xf0\x9f\x90\xa6", 10)); /* é € bird */
    assert_true(valid("\xf4\x8f\xbf\xbf", 4));                           /* U+10FFFF */
    assert_false(valid("a\0b", 3));                                         /* NUL */
    assert_false(valid("\xc0\xaf", 2));                                     /* overlong '/' */
    assert_false(valid("\xe0\x80\xaf", 3));                                /* overlong */
    assert_false(valid("\xed\xa0\x80", 3));                                /* surrogate */
    assert_false(valid("\xf4\x90\x80\x80", 4));                           /* > U+10FFFF */
    assert_false(valid("\x80", 1));                                         /* lone continuation */
    assert_false(valid("\xc3", 1));                                         /* truncated */
    assert_false(valid("\xe2\x82", 2));                                     /* truncated */
    assert_false(valid("\xc3\x28", 2));                                     /* bad continuation */
    assert_false(valid("\xff", 1));

    /* Long texts go 8 bytes a step while plain ASCII: a NUL, a byte >= 0x80
     * or a character anywhere, at every offset and length, is still seen. */
    char text[40];
    for (size_t len = 1; len <= 24; len++) {
        for (size_t at = 0; at < len; at++) {
            memset(text, 'a', sizeof(text));
            assert_true(valid(text, len));
            text[at] = '\0';
            assert_false(valid(text, len));
            text[at] = (char)0x80;
            assert_false(valid(text, len));
            text[at] = 0x7f;
            assert_true(valid(text, len));
            if (at + 2 <= len) {
                memcpy(text + at, "\xc3\xa9", 2); /* é */
                assert_true(valid(text, len));
                assert_false(valid(text, at + 1)); /* cut inside it */
            }
        }
    }

    /* utf8_char: the length of the one character a text starts with. */
    const uint8_t *u = (const uint8_t *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x90\xa6";
    assert_int_equal(utf8_char(u, 10), 1);
    assert_int_equal(utf8_char(u + 1, 9), 2);
    assert_int_equal(utf8_char(u + 3, 7), 3);
    assert_int_equal(utf8_char(u + 6, 4), 4);
    assert_int_equal(utf8_char(u + 6, 3), 0); /* cut short */
    assert_int_equal(utf8_char(u + 2, 8), 0); /* starts with a continuation byte */
    assert_int_equal(utf8_char(u, 0), 0);
    assert_int_equal(utf8_char((const uint8_t *)"\0", 1), 0);
    assert_int_equal(utf8_char((const uint8_t *)"\xed\xa0\x80", 3), 0); /* a surrogate */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_map_is_complete_and_distinct),
        cmocka_unit_test(test_err_numbers_are_stable),
        cmocka_unit_test(test_err_from_errno),
        cmocka_unit_test(test_addr_roundtrip),
        cmocka_unit_test(test_addr_rejects),
        cmocka_unit_test(test_addr_equal),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
