/*
 * backoff.h - jittered exponential reconnect delays (docs/architecture.md §2.4: 100 ms to 5 s).
 */
#ifndef FC_BACKOFF_H
#define FC_BACKOFF_H

#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 5.0

struct backoff {
    double next_s; /* delay before the next attempt, seconds (before jitter) */
};

/* Start over at BACKOFF_MIN_S (call after a successful connection). */
void backoff_reset(struct backoff *b);

/* Delay for this attempt, seconds, jittered to 50..100% (libsodium randombytes); doubles after. */
double backoff_next(struct backoff *b);

#endif
