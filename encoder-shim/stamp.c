/* stamp.c - PTS anchoring (docs/architecture.md §3.3, §3.4).
 *
 * PTS of frame i = anchor + samples before i * 1e6 / sample_rate: smooth by construction. The
 * anchor is the earliest consistent one: no frame may end after it arrived, so each batch that
 * arrives at time T pulls the anchor back to T - duration up to the batch's end when that is
 * earlier. An upstream burst (seconds of old audio at once) is thereby stamped in the past (pull.c
 * coalesces a burst's chunks into one batch). If every batch for SHIM_DRIFT_WINDOW_US arrives
 * later than the sample clock says by more than SHIM_REANCHOR_US (a stalled upstream, a slow
 * encoder clock), the anchor moves forward by the smallest of those lags.
 */
#include "clock.h"
#include "shim.h"

/* Stamp one run of frames that share a sample rate. */
static bool stamp_run(struct stamper *st, uint64_t arrival_us, const uint16_t *samples, size_t n,
                      uint64_t *pts_us)
{
    bool moved = false;
    uint64_t run = 0;
    for (size_t i = 0; i < n; i++)
        run += samples[i];
    uint64_t end_us = clock_samples_to_us(st->samples + run, st->sample_rate);
    if (!st->anchored) {
        st->anchor_us = arrival_us > end_us ? arrival_us - end_us : 0;
        st->anchored = true;
        st->window_start_us = 0;
    }
    int64_t lag = (int64_t)arrival_us - (int64_t)(st->anchor_us + end_us);
    if (st->resync && lag > SHIM_REANCHOR_US) {
        /* A new input after an outage: continue the sample count, but from now. */
        st->anchor_us += (uint64_t)lag;
        st->reanchors++;
        lag = 0;
        moved = true;
    }
    st->resync = false;
    if (lag < 0) {
        st->anchor_us -= (uint64_t)(-lag); /* arrived earlier than thought possible */
        lag = 0;
    }
    /* A run of batches all later than SHIM_REANCHOR_US (a stall, a slow encoder clock) lasting
     * SHIM_DRIFT_WINDOW_US moves the anchor forward by the run's smallest lag. */
    if (lag <= SHIM_REANCHOR_US) {
        st->window_start_us = 0;
    } else if (st->window_start_us == 0) {
        st->window_start_us = arrival_us;
        st->window_min_lag = lag;
    } else {
        if (lag < st->window_min_lag)
            st->window_min_lag = lag;
        if (arrival_us - st->window_start_us >= SHIM_DRIFT_WINDOW_US) {
            st->anchor_us += (uint64_t)st->window_min_lag;
            st->reanchors++;
            st->window_start_us = 0;
            moved = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        pts_us[i] = st->anchor_us + clock_samples_to_us(st->samples, st->sample_rate);
        st->samples += samples[i];
    }
    return moved;
}

bool stamper_batch(struct stamper *st, uint64_t arrival_us, const uint16_t *samples,
                   const uint32_t *rates, size_t n, uint64_t *pts_us)
{
    bool moved = false;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && rates[j] == rates[i])
            j++;
        if (rates[i] != st->sample_rate) {
            /* A new rate starts a new timeline: keep time continuous, count anew. */
            if (st->anchored)
                st->anchor_us += clock_samples_to_us(st->samples, st->sample_rate);
            st->samples = 0;
            st->sample_rate = rates[i];
        }
        moved |= stamp_run(st, arrival_us, samples + i, j - i, pts_us + i);
        i = j;
    }
    return moved;
}
