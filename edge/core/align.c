/* align.c - see align.h. */
#include "align.h"

#include <math.h>
#include <stdlib.h>
#include "clock.h"

/* The newest present frame of `l` (its seq in *seq), or NULL. */
static const struct lane_frame *newest_present(const struct lane *l, uint64_t *seq)
{
    if (!l->any)
        return NULL;
    uint64_t lo = lane_oldest(l);
    for (uint64_t q = l->end_seq; q-- > lo;) {
        const struct lane_frame *f = lane_get(l, q);
        if (f && f->state == LANE_PRESENT) {
            *seq = q;
            return f;
        }
    }
    return NULL;
}

/*
 * The sub-frame levels of `l` from PTS `from_us` to its end, on a uniform grid, in the lane's
 * current timeline: each frame is placed by counting samples back from the newest frame, not at
 * its own PTS. The shim pulls its anchor back whenever a batch arrives earlier than any before
 * (mostly in a new session's first seconds, by a few ms each time, tens of ms in all), so older
 * frames carry PTS a little later than the newest frames' timeline says; offsets are used at the
 * live end, in that timeline. Walking back stops at a frame whose own PTS is more than
 * ALIGN_MAX_STEP_US from its place (a re-anchor after a stall: what came before may not be
 * contiguous programme) or whose duration differs.
 */
static bool envelope(const struct lane *l, uint64_t from_us, struct align_envelope *e)
{
    uint64_t last_seq = 0;
    const struct lane_frame *last = newest_present(l, &last_seq);
    if (!last || last->sample_rate == 0 || last->samples == 0 || last->pts_us < from_us)
        return false;
    uint64_t dur = clock_samples_to_us(last->samples, last->sample_rate);
    e->step_us = (uint32_t)(dur / 4);
    e->n = 0;
    e->n_valid = 0;
    if (e->step_us == 0)
        return false;
    /* The grid starts at a frame's place: the oldest one at or after from_us. */
    uint64_t k_max = (last->pts_us - from_us) * last->sample_rate /
                     ((uint64_t)last->samples * 1000000u);
    if (k_max > last_seq - lane_oldest(l))
        k_max = last_seq - lane_oldest(l);
    uint64_t span = clock_samples_to_us(k_max * last->samples, last->sample_rate);
    e->t0_us = last->pts_us - span;
    for (uint32_t i = 0; i < ALIGN_MAX_SAMPLES; i++)
        e->v[i] = NAN;
    for (uint64_t k = 0; k <= k_max; k++) {
        const struct lane_frame *f = lane_get(l, last_seq - k);
        if (!f || f->state != LANE_PRESENT)
            continue; /* lost on every path: its place stays empty */
        if (f->samples != last->samples || f->sample_rate != last->sample_rate)
            break;
        uint64_t rel = span - clock_samples_to_us(k * last->samples, last->sample_rate);
        int64_t shift = (int64_t)(e->t0_us + rel) - (int64_t)f->pts_us;
        if (shift > ALIGN_MAX_STEP_US || shift < -ALIGN_MAX_STEP_US)
            break;
        uint64_t at = (rel + e->step_us / 2) / e->step_us;
        if (at + 4 > ALIGN_MAX_SAMPLES)
            continue;
        for (int i = 0; i < 4; i++) {
            if (f->level[i] <= ALIGN_FLOOR_DB || !isnan(e->v[at + (uint64_t)i]))
                continue;
            e->v[at + (uint64_t)i] = (float)f->level[i];
            e->n_valid++;
        }
        if (at + 4 > e->n)
            e->n = (uint32_t)(at + 4);
    }
    return (uint64_t)e->n_valid * e->step_us >= ALIGN_MIN_HISTORY_US;
}

static double stddev(const struct align_envelope *e)
{
    double s = 0, s2 = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < e->n; i++)
        if (!isnan(e->v[i])) {
            s += e->v[i];
            s2 += (double)e->v[i] * e->v[i];
            n++;
        }
    if (n < 2)
        return 0;
    double m = s / n;
    return sqrt(fmax(0, s2 / n - m * m));
}

/* Pearson correlation of x[i] with y[i + k] over their overlap; -2 if too little overlap. */
static double corr_at(const struct align_envelope *x, const struct align_envelope *y, long k)
{
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < x->n; i++) {
        long j = (long)i + k;
        if (j < 0 || j >= (long)y->n || isnan(x->v[i]) || isnan(y->v[j]))
            continue;
        double a = x->v[i], b = y->v[j];
        sx += a, sy += b, sxx += a * a, syy += b * b, sxy += a * b;
        n++;
    }
    if (n < x->n_valid / 2)
        return -2;
    double cov = sxy - sx * sy / n, vx = sxx - sx * sx / n, vy = syy - sy * sy / n;
    if (vx <= 0 || vy <= 0)
        return -2;
    return cov / sqrt(vx * vy);
}

enum align_result align_estimate(const struct lane *x, const struct lane *y,
                                 struct align_scratch *scratch, int64_t *off_us, double *corr)
{
    struct align_envelope *px = &scratch->x, *py = &scratch->y;
    *corr = 0;
    uint64_t xl_seq;
    const struct lane_frame *xl = newest_present(x, &xl_seq);
    if (!xl || xl->pts_us < ALIGN_WINDOW_US + ALIGN_MAX_OFFSET_US)
        return ALIGN_NODATA; /* PTS near the epoch: not a stamped stream */
    /* The window is fixed in PTS; how much of it holds measurements is counted by envelope(). */
    uint64_t from = xl->pts_us - ALIGN_WINDOW_US;
    if (!envelope(x, from, px) || !envelope(y, from - ALIGN_MAX_OFFSET_US, py) ||
        px->step_us != py->step_us)
        return ALIGN_NODATA;
    if (stddev(px) < ALIGN_MIN_STDDEV_DB || stddev(py) < ALIGN_MIN_STDDEV_DB)
        return ALIGN_FLAT;
    /* y[j] is at ey.t0 + j*step; x[i] at ex.t0 + i*step. With j = i + k the offset is
     * d = ey.t0 - ex.t0 + k*step; search |d| <= ALIGN_MAX_OFFSET_US. */
    double step = px->step_us, base = (double)py->t0_us - (double)px->t0_us;
    long kmin = (long)ceil((-ALIGN_MAX_OFFSET_US - base) / step);
    long kmax = (long)floor((ALIGN_MAX_OFFSET_US - base) / step);
    double best = -2, prev = -2, next;
    long bestk = 0;
    double best_prev = -2, best_next = -2;
    for (long k = kmin; k <= kmax; k++) {
        double c = corr_at(px, py, k);
        if (c > best) {
            best = c;
            bestk = k;
            best_prev = prev;
            best_next = -2;
        } else if (k == bestk + 1) {
            best_next = c;
        }
        prev = c;
    }
    next = best_next;
    if (best < ALIGN_MIN_CORR) {
        *corr = best;
        return ALIGN_WEAK;
    }
    double frac = 0;
    if (best_prev > -2 && next > -2) {
        double den = best_prev - 2 * best + next;
        if (den < 0)
            frac = 0.5 * (best_prev - next) / den;
    }
    *corr = best;
    *off_us = (int64_t)llround(base + ((double)bestk + frac) * step);
    return ALIGN_OK;
}

const char *align_result_name(enum align_result r)
{
    switch (r) {
    case ALIGN_OK: return "correlation";
    case ALIGN_NODATA: return "no-data";
    case ALIGN_FLAT: return "flat";
    case ALIGN_WEAK: return "weak";
    }
    return "?";
}
