/* Unit tests for node/jread.c: each kind of JSON value reads as jansson
 * reads it, strings are checked and decoded wherever in a text their
 * special bytes fall, and each way a text can be wrong is refused at the
 * byte where it goes wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/jread.h"

/* text reads, and equals the value jansson makes of want. */
static void reads_as(const char *text, const char *want)
{
    struct jread_error err;
    json_t *got = jread(text, strlen(text), 32, &err);
    if (got == NULL)
        fail_msg("%s: refused at byte %zu: %s", text, err.offset, err.reason);
    json_t *expected = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_non_null(expected);
    if (!json_equal(got, expected))
        fail_msg("%s: read as something other than %s", text, want);
    json_decref(got);
    json_decref(expected);
}

/* text (len bytes) is refused at byte offset, for a reason containing why. */
static void expect_refused_n(const char *text, size_t len, size_t offset, const char *why)
{
    struct jread_error err;
    json_t *got = jread(text, len, 32, &err);
    if (got != NULL) {
        json_decref(got);
        fail_msg("accepted: %s", text);
    }
    if (err.offset != offset || strstr(err.reason, why) == NULL)
        fail_msg("%s: refused at byte %zu (%s), want %zu (%s)", text, err.offset, err.reason,
                 offset, why);
}

static void expect_refused(const char *text, size_t offset, const char *why)
{
    expect_refused_n(text, strlen(text), offset, why);
}

static void test_values(void **state)
{
    (void)state;
    reads_as("0", "0");
    reads_as("-0", "0");
    reads_as(" 42 ", "42");
    reads_as("-9223372036854775808", "-9223372036854775808");
    reads_as("9223372036854775807", "9223372036854775807");
    reads_as("1.5", "1.5");
    reads_as("-2.5e3", "-2500.0");
    reads_as("1E+2", "100.0");
    reads_as("1e-400", "0.0"); /* too small for a double: zero, as jansson */
    reads_as("true", "true");
    reads_as("false", "false");
    reads_as("null", "null");
    reads_as("\"\"", "\"\"");
    reads_as("[]", "[]");
    reads_as("{}", "{}");
    reads_as("\t\r\n[1, \"two\", [3], {\"four\": 4}]\n", "[1, \"two\", [3], {\"four\": 4}]");
    reads_as("{\"a\":{\"b\":[true,null]},\"\":0}", "{\"a\":{\"b\":[true,null]},\"\":0}");

    /* An integer stays an integer and a real a real: 1 and 1.0 differ. */
    struct jread_error err;
    json_t *v = jread("[1,1.0]", 7, 32, &err);
    assert_non_null(v);
    assert_true(json_is_integer(json_array_get(v, 0)));
    assert_true(json_is_real(json_array_get(v, 1)));
    json_decref(v);
}

static void test_strings(void **state)
{
    (void)state;
    reads_as("\"caf\xc3\xa9 \xf0\x9f\x90\xa6\"", "\"caf\xc3\xa9 \xf0\x9f\x90\xa6\"");
    reads_as("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\\"\\\\/\\b\\f\\n\\r\\t\"");
    reads_as("\"\\u00e9\\u20AC\\ud83d\\ude00\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    reads_as("\"\\u0041bc\"", "\"Abc\"");
    /* An escaped key, then a value whose strings are decoded too. */
    reads_as("{\"\\u006b\":\"\\u0076\",\"k2\":[\"\\n\"]}", "{\"k\":\"v\",\"k2\":[\"\\n\"]}");

    /* Texts are checked 8 bytes at a step: a quote, an escape, a control
     * byte or a multi-byte character is seen at every offset. */
    char text[64], want[64];
    for (size_t len = 1; len <= 24; len++) {
        for (size_t at = 0; at < len; at++) {
            memset(text, 'a', sizeof(text));
            text[0] = '"';
            text[len + 1] = '"';
            text[len + 2] = '\0';
            snprintf(want, sizeof(want), "%s", text);
            reads_as(text, want);

            text[1 + at] = '\x01';
            expect_refused(text, 1 + at, "control character");
            text[1 + at] = '\x80';
            expect_refused(text, 1 + at, "UTF-8");
            text[1 + at] = '"';
            expect_refused(text, 2 + at, "nothing expected");
            if (at + 2 <= len) {
                memcpy(text + 1 + at, "\\n", 2);
                struct jread_error err;
                json_t *v = jread(text, strlen(text), 32, &err);
                assert_non_null(v);
                assert_int_equal(json_string_length(v), len - 1);
                assert_int_equal(json_string_value(v)[at], '\n');
                json_decref(v);
                memcpy(text + 1 + at, "\xc3\xa9", 2);
                memcpy(want, text, sizeof(want));
                reads_as(text, want);
            }
        }
    }
}

static void test_refused(void **state)
{
    (void)state;
    expect_refused("", 0, "a value expected");
    expect_refused("   ", 3, "a value expected");
    expect_refused("garbage", 0, "a value expected");
    expect_refused("nul", 0, "invalid literal");
    expect_refused("tru", 0, "invalid literal");
    expect_refused("true1", 4, "nothing expected");
    expect_refused("01", 1, "nothing expected");
    expect_refused("-", 0, "invalid number");
    expect_refused("1.", 0, "invalid number");
    expect_refused(".5", 0, "a value expected");
    expect_refused("1e", 0, "invalid number");
    expect_refused("NaN", 0, "a value expected");
    expect_refused("9223372036854775808", 0, "integer out of range");
    expect_refused("-9223372036854775809", 0, "integer out of range");
    expect_refused("[1e400]", 1, "real out of range");
    expect_refused("[1,]", 3, "a value expected");
    expect_refused("[1 2]", 3, "',' or ']' expected");
    expect_refused("{\"a\" 1}", 5, "':' expected");
    expect_refused("{1:2}", 1, "a key expected");
    expect_refused("{\"a\":1,}", 7, "a key expected");
    expect_refused("{\"a\":1 \"b\":2}", 7, "',' or '}' expected");
    expect_refused("{\"a\":1,\"\\u0061\":2}", 7, "duplicate key");
    expect_refused("\"abc", 4, "unterminated string");
    expect_refused("\"ab\\", 3, "unterminated string");
    expect_refused("\"\\x\"", 1, "invalid escape");
    expect_refused("\"\\u12\"", 1, "4 hex digits");
    expect_refused("\"\\u0000\"", 1, "\\u0000");
    expect_refused("\"\\ud800\"", 1, "unpaired surrogate");
    expect_refused("\"\\ud800\\u0041\"", 1, "unpaired surrogate");
    expect_refused("\"\\udc00\"", 1, "unpaired surrogate");
    expect_refused("\"\xed\xa0\x80\"", 1, "UTF-8");     /* an encoded surrogate */
    expect_refused("\"\xc0\xaf\"", 1, "UTF-8");         /* overlong */
    expect_refused("\"a\tb\"", 2, "control character"); /* a raw tab */
    expect_refused_n("3\0", 2, 1, "nothing expected");
    expect_refused_n("\"a\0\"", 4, 2, "control character");
    expect_refused("[1]]", 3, "nothing expected");
    expect_refused("\xef\xbb\xbf{}", 0, "a value expected"); /* a byte-order mark */

    /* Nesting: 32 levels read, 33 do not. */
    char deep[80];
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    struct jread_error err;
    json_t *v = jread(deep, 64, 32, &err);
    assert_non_null(v);
    json_decref(v);
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    expect_refused_n(deep, 66, 32, "nested deeper than 32 levels");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
