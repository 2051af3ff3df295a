/* Fuzz target: one control-API request line through the JSON-RPC parser and,
 * when it parses, back out as a reply line that must itself be valid JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpc_request req;
    struct rpc_error err;
    size_t len = 0;
    char *line;

    if (rpc_parse((const char *)data, size, &req, &err)) {
        if (strlen(req.method) == 0 || !json_is_object(req.params))
            abort();
        line = rpc_result_line(req.id, json_incref(req.params), &len);
        rpc_request_clear(&req);
    } else {
        line = rpc_error_line(&err, NULL, &len);
        rpc_error_clear(&err);
    }
    if (line != NULL) {
        json_t *back = json_loadb(line, len, 0, NULL);
        if (back == NULL || line[len - 1] != '\n')
            abort();
        json_decref(back);
        free(line);
    }
    return 0;
}
