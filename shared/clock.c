/* clock.c - see clock.h. */
#include "clock.h"

#include <stdio.h>
#include <time.h>

static uint64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t clock_wall_us(void)
{
    return read_clock(CLOCK_REALTIME);
}

uint64_t clock_mono_us(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

void clock_iso_ms(uint64_t us, char *buf, size_t n)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03uZ", (unsigned)(us % 1000000 / 1000));
}
