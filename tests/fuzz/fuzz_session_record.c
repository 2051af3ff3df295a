/* Fuzz target: the stored session record (node/sessions.c: version, flags,
 * the pending X3DH init, one or two length-prefixed ratchet states). What
 * decodes must encode to bytes that decode and encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "node/sessions.h"
#include "tests/support/test_env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct test_env te;
static bool ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf once, twice;

    if (!ready) {
        test_env_init(&te, 1);
        ready = true;
    }
    if (sessions_record_recode(&te.env, data, size, &once) != MP_OK)
        return 0;
    if (sessions_record_recode(&te.env, once.data, once.len, &twice) != MP_OK)
        abort();
    if (twice.len != once.len || memcmp(twice.data, once.data, once.len) != 0)
        abort();
    buf_free(&once);
    buf_free(&twice);
    return 0;
}
