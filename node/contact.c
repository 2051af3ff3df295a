/*
 * contact: the rules of one contact's fields (see contact.h); the codec is in
 * contact_wire.c.
 */
#include "node/contact.h"

#include <string.h>

/* Next code point of s[0..len) at *i: advances *i, false on ill-formed
 * UTF-8 (truncated, overlong, surrogate, above U+10FFFF). */
static bool next_code_point(const unsigned char *s, size_t len, size_t *i, uint32_t *cp_out)
{
    unsigned char b = s[*i];
    size_t extra;
    uint32_t cp, min;

    if (b < 0x80) {
        *cp_out = b;
        (*i)++;
        return true;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        extra = 1;
        cp = b & 0x1f;
        min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
        extra = 2;
        cp = b & 0x0f;
        min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        extra = 3;
        cp = b & 0x07;
        min = 0x10000;
    } else {
        return false;
    }
    if (extra > len - *i - 1)
        return false;
    for (size_t k = 1; k <= extra; k++) {
        unsigned char c = s[*i + k];
        if ((c & 0xc0) != 0x80)
            return false;
        cp = cp << 6 | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return false;
    *i += 1 + extra;
    *cp_out = cp;
    return true;
}

/* Characters that would let a name hide or fake text around it. */
static bool forbidden(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||      /* C0, DEL, C1 */
           cp == 0x2028 || cp == 0x2029 ||                 /* line, paragraph separator */
           cp == 0x200e || cp == 0x200f || cp == 0x061c || /* directional marks */
           (cp >= 0x202a && cp <= 0x202e) ||               /* embeddings, overrides */
           (cp >= 0x2066 && cp <= 0x2069) ||               /* isolates */
           cp == 0xfeff;                                   /* byte order mark */
}

bool contact_name_check(const char *name, size_t len)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t i = 0;

    if (name == NULL || len == 0 || len > CONTACT_NAME_MAX)
        return false;
    if (s[0] == ' ' || s[len - 1] == ' ')
        return false;
    if (len >= 3 && (s[0] | 0x20) == 'm' && (s[1] | 0x20) == 'p' && s[2] == '1')
        return false;
    while (i < len) {
        uint32_t cp;
        if (!next_code_point(s, len, &i, &cp) || forbidden(cp))
            return false;
    }
    return true;
}

bool contact_network_check(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > CONTACT_NETWORK_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] > '~')
            return false;
    }
    return true;
}

const char *contact_state_name(enum contact_state state)
{
    switch (state) {
    case CONTACT_STATE_CONTACT:
        return "contact";
    case CONTACT_STATE_REQUEST:
        return "request";
    case CONTACT_STATE_BLOCKED:
        return "blocked";
    }
    return "?";
}

bool contact_state_parse(const char *name, enum contact_state *state_out)
{
    static const enum contact_state all[] = {CONTACT_STATE_CONTACT, CONTACT_STATE_REQUEST,
                                             CONTACT_STATE_BLOCKED};
    for (size_t i = 0; name != NULL && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(name, contact_state_name(all[i])) == 0) {
            *state_out = all[i];
            return true;
        }
    }
    return false;
}
