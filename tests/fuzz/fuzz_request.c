/* libFuzzer target: the edge's query-string and time parsers (edge/http/request.c) on arbitrary bytes.
 * Checks the invariants callers rely on: parsed values are in range, strings NUL-terminated. */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../edge/http/request.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stream_req r;
    const char *why = "";
    char out[128];
    double t;
    if (request_parse_query((const char *)data, size, &r, &why) == FC_OK) {
        assert(!(r.has_offset && r.has_at));
        assert(!r.has_offset || (r.offset_s >= 0 && r.offset_s <= REQUEST_MAX_DURATION_S));
        assert(!r.has_duration || (r.duration_s > 0 && r.duration_s <= REQUEST_MAX_DURATION_S));
        assert(!r.has_at || isfinite(r.at_s));
    } else {
        assert(why && why[0]);
    }
    if (request_parse_time((const char *)data, size, &t))
        assert(isfinite(t));
    if (text_unescape((const char *)data, size, out, sizeof(out)))
        assert(strlen(out) < sizeof(out));
    return 0;
}
