/*
 * buf: a growable byte buffer with a hard cap.
 *
 * Every buffer filled from the network or a socket is a buf with a named
 * maximum; appending past it fails with MP_ERR_TOO_BIG and leaves the buffer
 * as it was, so the caller decides what "full" means (drop, refuse, close).
 * A plain value type: embed it, buf_init it, buf_free it.
 */
#ifndef MP_BASE_BUF_H
#define MP_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct buf {
    uint8_t *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* len never exceeds this */
};

void buf_init(struct buf *b, size_t max);

/* Append len bytes; MP_ERR_TOO_BIG past max, MP_ERR_NOMEM if allocation fails. */
enum mp_err buf_append(struct buf *b, const void *data, size_t len);

/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

/* Zero the contents and release the memory; b can be reused after buf_init. */
void buf_free(struct buf *b);

#endif
