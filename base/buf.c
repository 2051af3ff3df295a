/* explicit_bzero (glibc 2.25 and later, a BSD function): not in POSIX. */
#define _DEFAULT_SOURCE

#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

enum mp_err buf_append(struct buf *b, const void *data, size_t len)
{
    if (len > b->max - b->len)
        return MP_ERR_TOO_BIG;
    if (len == 0)
        return MP_OK;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : (b->max < 256 ? b->max : 256);
        while (cap < b->len + len)
            cap = cap > b->max / 2 ? b->max : cap * 2;
        uint8_t *data_new = realloc(b->data, cap);
        if (data_new == NULL)
            return MP_ERR_NOMEM;
        b->data = data_new;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return MP_OK;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_free(struct buf *b)
{
    if (b->data != NULL) {
        /* A wipe the compiler may not drop before free (and at memset speed). */
        explicit_bzero(b->data, b->cap);
        free(b->data);
    }
    buf_init(b, b->max);
}
