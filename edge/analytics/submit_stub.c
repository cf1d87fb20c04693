/* submit_stub.c - edge_analytics_submit() until the analytics writer is linked in: a weak
 * definition that drops the session (the writer's strong one replaces it). */
#include "../edge.h"

__attribute__((weak)) void edge_analytics_submit(struct edge *e, const struct an_session *s)
{
    log_info(&e->core.log, "session id=%s mount=%s proto=%u listened_s=%.1f bytes=%llu "
             "timeshift_s=%.1f (no analytics writer linked)", s->id, s->mount, s->proto,
             s->listened_s, (unsigned long long)s->bytes, s->timeshift_s);
}
