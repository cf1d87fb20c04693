/*
 * edge_merge_stubs.h - weak stand-ins for the edge's merge (edge/core/merge.c), for a test or fuzz
 * target of the core's other parts (persist, rewind, handoff, the HTTP side) that does not
 * compile it in: none of them is reached there. A build that links the real ones wins. Used by
 * tests/unit/test_persist.c, tests/fuzz/fuzz_persist.c, tests/fuzz/fuzz_handoff.c and
 * edge_http_stubs.h.
 */
#ifndef FC_EDGE_MERGE_STUBS_H
#define FC_EDGE_MERGE_STUBS_H

#ifndef STUB
#define STUB __attribute__((weak))
#endif
STUB void merge_pump(struct core *e, struct emount *m)
{
    (void)e, (void)m;
}
STUB bool merge_has_source(struct core *e, struct emount *m)
{
    (void)e, (void)m;
    return false;
}
STUB bool merge_encoder_fed(const struct emount *m, const char *encoder)
{
    (void)m, (void)encoder;
    return false;
}

#endif
