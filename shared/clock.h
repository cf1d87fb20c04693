/*
 * clock.h - the two clocks framecast uses.
 *
 * Wall clock (CLOCK_REALTIME, µs since epoch) stamps PTS (docs/architecture.md §3.1); timeouts use
 * libev's monotonic ev_now() instead, never the wall clock.
 */
#ifndef FC_CLOCK_H
#define FC_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Current wall-clock time in µs since the Unix epoch. */
uint64_t clock_wall_us(void);

/* Current CLOCK_MONOTONIC time in µs (for measurements outside an event loop). */
uint64_t clock_mono_us(void);

/* `us` (µs since the Unix epoch) as ISO 8601 UTC with milliseconds, "2026-11-30T10:00:00.123Z",
 * into buf (n >= 25 bytes for the whole text; shorter is truncated, NUL-terminated). */
void clock_iso_ms(uint64_t us, char *buf, size_t n);

/* Duration of `samples` PCM samples at `sample_rate` Hz, in µs (rounded down). */
static inline uint64_t clock_samples_to_us(uint64_t samples, uint32_t sample_rate)
{
    return sample_rate ? samples * 1000000u / sample_rate : 0;
}

#endif
