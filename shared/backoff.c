/* backoff.c - see backoff.h. */
#include "backoff.h"

#include <sodium.h>

void backoff_reset(struct backoff *b)
{
    b->next_s = BACKOFF_MIN_S;
}

double backoff_next(struct backoff *b)
{
    if (b->next_s < BACKOFF_MIN_S)
        b->next_s = BACKOFF_MIN_S;
    double d = b->next_s * (0.5 + 0.5 * randombytes_uniform(1000) / 1000.0);
    b->next_s *= 2;
    if (b->next_s > BACKOFF_MAX_S)
        b->next_s = BACKOFF_MAX_S;
    return d;
}
