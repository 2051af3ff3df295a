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

bool utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (len - i >= 8 && plain8(s + i)) {
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false; /* a continuation byte or 0xf8..0xff where a character starts */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}
