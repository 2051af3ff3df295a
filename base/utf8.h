/*
 * utf8: validation of UTF-8 text from the network or a user, so that what
 * a node stores and shows as text is text: well-formed (no overlong forms,
 * no surrogates, nothing past U+10FFFF) and without NUL bytes.
 */
#ifndef MP_BASE_UTF8_H
#define MP_BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the len bytes are well-formed UTF-8 with no NUL. */
bool utf8_valid(const uint8_t *s, size_t len);

/* The length (1 to 4) of the well-formed character, not NUL, that the len
 * bytes at s begin with; 0 if they do not begin with one (or len is 0). */
size_t utf8_char(const uint8_t *s, size_t len);

#endif
