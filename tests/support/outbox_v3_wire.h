/*
 * outbox_v3_wire: outbox entries as format 2 builds wrote them (entry
 * version 3, the envelope within), for the tests that make such stores and
 * check that they are migrated and read. Not an encoder the node has: it
 * writes version 4 only (node/outbox.h).
 */
#ifndef MP_TESTS_SUPPORT_OUTBOX_V3_WIRE_H
#define MP_TESTS_SUPPORT_OUTBOX_V3_WIRE_H

#include "base/buf.h"
#include "base/err.h"
#include "node/outbox.h"

/* e as version 3: [3, to, state, created, plaintext, envelope, expires,
 * riders], into out (buf_init'ed here). MP_ERR_NOMEM. */
enum mp_err outbox_v3_encode(const struct outbox_entry *e, struct buf *out);

#endif
