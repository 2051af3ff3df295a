/*
 * jread: reads one JSON text (RFC 8259) into jansson values. It returns what
 * json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY would, several
 * times faster.
 *
 * Why not json_loadb: its lexer takes one byte at a time through calls and
 * copies every string twice, under 100 MB/s here (15 to 18 us for a
 * 1,372-byte text), and a control request may carry a mebibyte of message
 * text. jread checks 8 bytes of a string at a step and copies it once, into
 * the jansson string: 0.5 us for that text, 2.5 GB/s. It builds with
 * jansson's own constructors: the caller gets an ordinary json_t, and writes
 * JSON with jansson as before.
 *
 * It takes what jansson takes and refuses what jansson refuses, but for NUL
 * bytes (refused anywhere) and depth (only arrays and objects count) (fuzz_jread
 * compares the two on every input):
 * - no comments, trailing commas, leading zeros, NaN or duplicate keys;
 * - no "\u0000" (strings stay C strings), and well-formed UTF-8 only;
 * - integers within json_int_t and reals within a double's range, else an
 *   error (never rounded to a limit).
 * Its error texts are its own (a byte offset and a short reason).
 */
#ifndef MP_NODE_JREAD_H
#define MP_NODE_JREAD_H

#include <jansson.h>
#include <stddef.h>

#define JREAD_REASON_MAX 64

struct jread_error {
    size_t offset;                 /* the byte at which reading stopped */
    char reason[JREAD_REASON_MAX]; /* what was wrong there, as "duplicate key" */
};

/* The JSON value in the len bytes at text (whitespace around it allowed,
 * nothing else), with arrays and objects nested at most depth_max deep: a
 * new reference, or NULL with *err_out filled in (out of memory included).
 * err_out must not be NULL. */
json_t *jread(const char *text, size_t len, unsigned depth_max, struct jread_error *err_out);

#endif
