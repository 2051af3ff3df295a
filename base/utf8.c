#include "base/utf8.h"

#include <string.h>

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Whether the 8 bytes at p are all ASCII and none is NUL: the whole of most
 * texts, then checked 8 bytes a step instead of one (a zero byte is one
 * whose subtraction borrows: (w - ONES) & ~w has its high bit). */
static bool plain8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return ((w | ((w - ONES) & ~w)) & HIGHS) == 0;
}

size_t utf8_char(const uint8_t *s, size_t len)
{
    size_t n;
    uint32_t cp, min;

    if (len == 0 || s[0] == 0)
        return 0;
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* a continuation byte or 0xf8..0xff where a character starts */
    }
    if (len <= n)
        return 0;
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n + 1;
}

bool utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (len - i >= 8 && plain8(s + i)) {
            i += 8;
            continue;
        }
        size_t n = utf8_char(s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}
