/* Fuzz target: jread against json_loadb with JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY, at jansson's own depth limit. Both take the input or both
 * refuse it; what both take is equal, value for value and type for type
 * (an integer is not a real); a refusal names a byte within the input.
 * Known differences: jansson skips a NUL byte after a number or literal
 * ("3\0", "[1\0]"), where JSON allows none (jread refuses any), and counts
 * a scalar as a level of depth too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/jread.h"

/* The deepest nesting jansson reads (JSON_PARSER_MAX_DEPTH). */
#define JANSSON_DEPTH_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jread_error err;
    json_error_t jerr;

    json_t *ours = jread((const char *)data, size, JANSSON_DEPTH_MAX, &err);
    json_t *theirs =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (memchr(data, 0, size) != NULL) {
        if (ours != NULL)
            abort();
        json_decref(theirs);
        return 0;
    }
    /* jansson counts the scalar inside the deepest array as a level too,
     * jread only arrays and objects: at its limit either answer stands. */
    if (theirs == NULL && json_error_code(&jerr) == json_error_stack_overflow) {
        json_decref(ours);
        return 0;
    }
    if ((ours == NULL) != (theirs == NULL))
        abort();
    if (ours == NULL && (err.offset > size || err.reason[0] == '\0'))
        abort();
    if (ours != NULL && !json_equal(ours, theirs))
        abort();
    json_decref(ours);
    json_decref(theirs);
    return 0;
}
