/*
 * align.h - estimating the content offset between two encoders of one mount
 * (docs/architecture.md §5.6 "Alignment").
 *
 * Each frame carries four sub-frame loudness values (dBFS). Two encoders fed the same programme
 * have the same loudness envelope, shifted by their latency difference. align_estimate()
 * cross-correlates the envelopes (Pearson, every sub-frame lag within ±max_offset) over the last
 * `window_us`, refines the peak by parabolic interpolation, and reports the offset `d` such that
 * the content at PTS p of stream x is at PTS p + d of stream y. Flat envelopes (silence, a
 * steady tone) or a weak peak are reported so the caller falls back to PTS.
 * Pure computation on lanes; no allocation beyond a bounded scratch buffer; no callbacks.
 */
#ifndef FC_ALIGN_H
#define FC_ALIGN_H

#include <stdint.h>
#include "lane.h"

#define ALIGN_WINDOW_US 15000000     /* correlate the last 15 s (issue 3: 10-30 s) */
#define ALIGN_MAX_OFFSET_US 3000000  /* encoders further apart than 3 s are not searched */
#define ALIGN_MIN_CORR 0.8           /* weaker peaks fall back to PTS (0.6 let early, wrong
                                        estimates through) */
#define ALIGN_MIN_STDDEV_DB 1.5      /* flatter envelopes fall back to PTS */
#define ALIGN_MAX_SAMPLES 16384      /* sub-frame values per envelope */
#define ALIGN_MIN_HISTORY_US 8000000 /* the reference must hold this much measured loudness in
                                        the window (floor frames not counted): with ~3 s a
                                        quasi-periodic programme gave peaks 0.5 s off */
#define ALIGN_FLOOR_DB (-127)        /* a level at the floor is no measurement: digital silence,
                                        or a frame decoded without its bit reservoir (the first
                                        frames after a mid-stream join) */
#define ALIGN_MAX_STEP_US 100000   /* a frame whose PTS is further than this from its place in
                                        the lane's current timeline (counted back from the
                                        newest frame) ends the history used: a re-anchor after a
                                        stall (> 200 ms), not the shim's small anchor pull-backs */
#define ALIGN_AGREE_US 10000         /* two successive estimates within this agree (edge uses
                                        an offset only once two agree) */

enum align_result {
    ALIGN_OK = 0,  /* *off_us is the estimate */
    ALIGN_NODATA,  /* not enough history, or frame durations differ */
    ALIGN_FLAT,    /* an envelope is too flat to correlate */
    ALIGN_WEAK,    /* no clear peak */
};

struct align_envelope {
    float v[ALIGN_MAX_SAMPLES]; /* dB, NAN where a frame was lost or its level is the floor */
    uint32_t n;                 /* values used (span, including NAN) */
    uint32_t n_valid;           /* of which are measurements (not NAN) */
    uint64_t t0_us;             /* PTS of v[0] */
    uint32_t step_us;           /* one sub-frame */
};

/* Working memory for align_estimate() (128 KiB: kept in the caller's context, not the stack). */
struct align_scratch {
    struct align_envelope x, y;
};

/*
 * Estimate the offset from `x` to `y` (µs, positive when y runs behind x). `*corr` gets the
 * peak correlation (0 when not computed). Uses the frames held in both lanes: the last
 * ALIGN_WINDOW_US of x, searched against y within ±ALIGN_MAX_OFFSET_US, each lane's frames placed
 * in its current timeline (samples counted back from its newest frame: the offset holds at the
 * live end even when the shim moved its anchor inside the window; history ends at a jump of more
 * than ALIGN_MAX_STEP_US). Levels at
 * ALIGN_FLOOR_DB are missing values. Returns ALIGN_NODATA while x holds less than
 * ALIGN_MIN_HISTORY_US of measured levels in that window (or y too little), ALIGN_FLAT or
 * ALIGN_WEAK as described above; *off_us is written only with ALIGN_OK.
 */
enum align_result align_estimate(const struct lane *x, const struct lane *y,
                                 struct align_scratch *scratch, int64_t *off_us, double *corr);

/* Name of a result for logs. */
const char *align_result_name(enum align_result r);

#endif
