#include "node/jread.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/utf8.h"

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
/* Numbers up to this long are converted from a copy on the stack; longer
 * ones (a real with a long mantissa) from one on the heap. */
#define NUMBER_STACK 64

struct reader {
    const uint8_t *start, *p, *end;
    unsigned depth, depth_max;
    struct buf text; /* the string being read, decoded, when it has escapes */
    struct jread_error *err;
};

static json_t *value(struct reader *r);

/* Records why reading stopped at at; false, for the callers to return. */
static bool fail(struct reader *r, const uint8_t *at, const char *reason)
{
    r->err->offset = (size_t)(at - r->start);
    snprintf(r->err->reason, sizeof(r->err->reason), "%s", reason);
    return false;
}

static void skip_space(struct reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* Whether none of the 8 bytes at p needs a look inside a string: no '"',
 * '\\', control byte (below 0x20) or byte of a multi-byte character. Each
 * term has a byte's high bit set exactly when that byte is such a one,
 * given (first term) that none has its own high bit set. */
static bool plain8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    uint64_t quote = w ^ (ONES * '"'), slash = w ^ (ONES * '\\');
    uint64_t hit = w | ((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
                   ((slash - ONES) & ~slash);
    return (hit & HIGHS) == 0;
}

/* The value of the 4 hex digits at p, or -1. */
static long hex4(const uint8_t *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* The escape at r->p (its backslash), decoded onto r->text; r->p past it. */
static bool escape(struct reader *r)
{
    const uint8_t *at = r->p;
    uint8_t out[4];
    size_t n = 1;

    if (r->end - r->p < 2)
        return fail(r, at, "unterminated string");
    uint8_t c = r->p[1];
    r->p += 2;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        out[0] = c;
        break;
    case 'b':
        out[0] = '\b';
        break;
    case 'f':
        out[0] = '\f';
        break;
    case 'n':
        out[0] = '\n';
        break;
    case 'r':
        out[0] = '\r';
        break;
    case 't':
        out[0] = '\t';
        break;
    case 'u': {
        long cp = r->end - r->p >= 4 ? hex4(r->p) : -1;
        if (cp < 0)
            return fail(r, at, "\\u without 4 hex digits");
        r->p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) { /* the high half of a pair: the low half follows */
            bool escaped = r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u';
            long low = escaped ? hex4(r->p + 2) : -1;
            if (low < 0xdc00 || low > 0xdfff)
                return fail(r, at, "unpaired surrogate");
            r->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return fail(r, at, "unpaired surrogate");
        } else if (cp == 0) {
            return fail(r, at, "\\u0000 in a string");
        }
        if (cp < 0x80) {
            out[0] = (uint8_t)cp;
        } else if (cp < 0x800) {
            out[0] = (uint8_t)(0xc0 | cp >> 6);
            out[1] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            out[0] = (uint8_t)(0xe0 | cp >> 12);
            out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            out[2] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            out[0] = (uint8_t)(0xf0 | cp >> 18);
            out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
            out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            out[3] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 4;
        }
        break;
    }
    default:
        return fail(r, at, "invalid escape");
    }
    return buf_append(&r->text, out, n) == MP_OK || fail(r, at, "out of memory");
}

/* The string at r->p (its opening quote) into *s_out, *len_out: its bytes
 * in the text when it has no escapes (*decoded_out false), else decoded in
 * r->text, valid until the next string is read. r->p ends past it. */
static bool string(struct reader *r, const char **s_out, size_t *len_out, bool *decoded_out)
{
    const uint8_t *run = ++r->p; /* the bytes since the last escape */
    bool decoded = false;

    r->text.len = 0;
    for (;;) {
        while (r->end - r->p >= 8 && plain8(r->p))
            r->p += 8;
        if (r->p == r->end)
            return fail(r, r->p, "unterminated string");
        uint8_t c = *r->p;
        if (c == '"')
            break;
        if (c >= 0x80) {
            size_t n = utf8_char(r->p, (size_t)(r->end - r->p));
            if (n == 0)
                return fail(r, r->p, "invalid UTF-8");
            r->p += n;
        } else if (c < 0x20) {
            return fail(r, r->p, "control character in a string");
        } else if (c == '\\') {
            if (buf_append(&r->text, run, (size_t)(r->p - run)) != MP_OK)
                return fail(r, r->p, "out of memory");
            if (!escape(r))
                return false;
            run = r->p;
            decoded = true;
        } else {
            r->p++;
        }
    }
    if (decoded) {
        if (buf_append(&r->text, run, (size_t)(r->p - run)) != MP_OK)
            return fail(r, r->p, "out of memory");
        *s_out = (const char *)r->text.data;
        *len_out = r->text.len;
    } else {
        *s_out = (const char *)run;
        *len_out = (size_t)(r->p - run);
    }
    *decoded_out = decoded;
    r->p++; /* the closing quote */
    return true;
}

static bool digit(const struct reader *r, const uint8_t *p)
{
    return p < r->end && *p >= '0' && *p <= '9';
}

/* The number at r->p: an integer without fraction or exponent (as jansson),
 * else a real. */
static json_t *number(struct reader *r)
{
    const uint8_t *from = r->p, *p = r->p;
    bool real = false;

    if (p < r->end && *p == '-')
        p++;
    if (!digit(r, p)) {
        fail(r, from, "invalid number");
        return NULL;
    }
    if (*p++ != '0') {
        while (digit(r, p))
            p++;
    }
    if (p < r->end && *p == '.') {
        real = true;
        if (!digit(r, ++p)) {
            fail(r, from, "invalid number");
            return NULL;
        }
        while (digit(r, p))
            p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        if (!digit(r, p)) {
            fail(r, from, "invalid number");
            return NULL;
        }
        while (digit(r, p))
            p++;
    }
    r->p = p;

    /* strtoll and strtod want a terminated string. */
    size_t len = (size_t)(p - from);
    char small[NUMBER_STACK];
    char *s = len < sizeof(small) ? small : malloc(len + 1);
    if (s == NULL) {
        fail(r, from, "out of memory");
        return NULL;
    }
    memcpy(s, from, len);
    s[len] = '\0';
    json_t *v = NULL;
    errno = 0;
    if (!real) {
        long long n = strtoll(s, NULL, 10);
        if (errno == ERANGE)
            fail(r, from, "integer out of range");
        else if ((v = json_integer((json_int_t)n)) == NULL)
            fail(r, from, "out of memory");
    } else {
        double d = strtod(s, NULL);
        if (errno == ERANGE && isinf(d)) /* past a double; tiny ones are taken as 0 or subnormal */
            fail(r, from, "real out of range");
        else if ((v = json_real(d)) == NULL)
            fail(r, from, "out of memory");
    }
    if (s != small)
        free(s);
    return v;
}

/* true, false or null at r->p, spelt word. */
static json_t *literal(struct reader *r, const char *word, json_t *v)
{
    size_t len = strlen(word);
    if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0) {
        fail(r, r->p, "invalid literal");
        return NULL;
    }
    r->p += len;
    return v;
}

/* Past the '[' or '{' at r->p, one level deeper: *empty_out when close
 * follows at once (and r->p past it, the level left again). */
static bool open_level(struct reader *r, uint8_t close, bool *empty_out)
{
    if (++r->depth > r->depth_max) {
        char reason[JREAD_REASON_MAX];
        snprintf(reason, sizeof(reason), "nested deeper than %u levels", r->depth_max);
        return fail(r, r->p, reason);
    }
    r->p++;
    skip_space(r);
    *empty_out = r->p < r->end && *r->p == close;
    if (*empty_out) {
        r->p++;
        r->depth--;
    }
    return true;
}

/* After an item of an array or object: a ',' (*more_out) or close (the
 * level left), r->p past it. */
static bool next_item(struct reader *r, uint8_t close, bool *more_out)
{
    skip_space(r);
    *more_out = r->p < r->end && *r->p == ',';
    if (*more_out || (r->p < r->end && *r->p == close)) {
        r->p++;
        if (!*more_out)
            r->depth--;
        return true;
    }
    return fail(r, r->p, close == ']' ? "',' or ']' expected" : "',' or '}' expected");
}

/* The array at r->p (its '['). */
static json_t *array(struct reader *r)
{
    bool empty, more = true;
    if (!open_level(r, ']', &empty))
        return NULL;
    json_t *arr = json_array();
    if (arr == NULL) {
        fail(r, r->p, "out of memory");
        return NULL;
    }
    while (!empty && more) {
        const uint8_t *at = r->p;
        json_t *v = value(r);
        if (v == NULL)
            goto refused;
        if (json_array_append_new(arr, v) != 0) { /* takes v, even when it fails */
            fail(r, at, "out of memory");
            goto refused;
        }
        if (!next_item(r, ']', &more))
            goto refused;
    }
    return arr;
refused:
    json_decref(arr);
    return NULL;
}

/* The object at r->p (its '{'). */
static json_t *object(struct reader *r)
{
    char *key_copy = NULL;
    bool empty, more = true;

    if (!open_level(r, '}', &empty))
        return NULL;
    json_t *obj = json_object();
    if (obj == NULL) {
        fail(r, r->p, "out of memory");
        return NULL;
    }
    while (!empty && more) {
        skip_space(r);
        const uint8_t *at = r->p;
        const char *key;
        size_t key_len;
        bool decoded;
        if (r->p == r->end || *r->p != '"') {
            fail(r, r->p, "a key expected");
            goto refused;
        }
        if (!string(r, &key, &key_len, &decoded))
            goto refused;
        if (json_object_getn(obj, key, key_len) != NULL) {
            fail(r, at, "duplicate key");
            goto refused;
        }
        if (decoded) { /* the value's strings are decoded in the same place */
            key_copy = malloc(key_len);
            if (key_copy == NULL) {
                fail(r, at, "out of memory");
                goto refused;
            }
            key = memcpy(key_copy, key, key_len);
        }
        skip_space(r);
        if (r->p == r->end || *r->p != ':') {
            fail(r, r->p, "':' expected");
            goto refused;
        }
        r->p++;
        json_t *v = value(r);
        if (v == NULL)
            goto refused;
        if (json_object_setn_new_nocheck(obj, key, key_len, v) != 0) { /* takes v */
            fail(r, at, "out of memory");
            goto refused;
        }
        free(key_copy);
        key_copy = NULL;
        if (!next_item(r, '}', &more))
            goto refused;
    }
    return obj;
refused:
    free(key_copy);
    json_decref(obj);
    return NULL;
}

static json_t *value(struct reader *r)
{
    skip_space(r);
    if (r->p == r->end) {
        fail(r, r->p, "a value expected");
        return NULL;
    }
    switch (*r->p) {
    case '{':
        return object(r);
    case '[':
        return array(r);
    case '"': {
        const uint8_t *at = r->p;
        const char *s;
        size_t len;
        bool decoded;
        if (!string(r, &s, &len, &decoded))
            return NULL;
        json_t *v = json_stringn_nocheck(s, len); /* checked above */
        if (v == NULL)
            fail(r, at, "out of memory");
        return v;
    }
    case 't':
        return literal(r, "true", json_true());
    case 'f':
        return literal(r, "false", json_false());
    case 'n':
        return literal(r, "null", json_null());
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
            return number(r);
        fail(r, r->p, "a value expected");
        return NULL;
    }
}

json_t *jread(const char *text, size_t len, unsigned depth_max, struct jread_error *err_out)
{
    static const char none[1];
    struct reader r = {.depth_max = depth_max, .err = err_out};

    r.start = (const uint8_t *)(text != NULL ? text : none);
    r.p = r.start;
    r.end = r.start + (text != NULL ? len : 0);
    memset(err_out, 0, sizeof(*err_out));
    buf_init(&r.text, len); /* decoding never lengthens a string */
    json_t *v = value(&r);
    if (v != NULL) {
        skip_space(&r);
        if (r.p != r.end) {
            fail(&r, r.p, "nothing expected after the value");
            json_decref(v);
            v = NULL;
        }
    }
    buf_free(&r.text);
    return v;
}
