/*
 * splicemeasure - locate each short chunk of a received recording (GOT) in a reference recording
 * of the programme (REF) and report where the mapping jumps: the splice error of a failover,
 * failback or patch, measured on the decoded audio (issue 3 fault tests).
 *
 *   splicemeasure REF.pcm GOT.pcm [--rate 8000] [--chunk-ms 100] [--hop-ms 50]
 *                 [--max-jump-ms X] [--jump-ms 1] [--min-corr 0.7] [--event SECONDS]...
 *                 [--event-window 3] [--skip-ms 0] [--recheck-s 1] [--quiet]
 *
 * Both files are raw s16le mono PCM at --rate (e.g. `ffmpeg -i X -ac 1 -ar 8000 -f s16le X.pcm`).
 * For each chunk of GOT (every hop) the position in REF with the highest normalized
 * cross-correlation (Pearson) is found: the first chunk searches all of REF, later chunks ±1 s
 * around the position the previous confident chunk predicts, falling back to a full search when
 * the best correlation there is below 0.5. So that a false lock (a programme with a periodic
 * component correlates well a period away) cannot persist, a full search is also made every
 * --recheck-s seconds of GOT (0 = never) and the better of the two taken. The first --skip-ms of
 * GOT (decoder start-up: the first frames lack their bit reservoir) are not measured. Both
 * signals are pre-whitened (pre-emphasis x[n] - 0.95 x[n-1]) for sharp peaks and low chance
 * correlations, and the peak is refined to 1/50 sample by windowed-sinc interpolation of the
 * correlation (two decodes of the same MP3 frames, resampled from different starting points,
 * are up to half a sample apart).
 *
 * offset = ref_pos - got_pos (ms): constant while GOT plays the programme continuously; it
 * changes by J at a splice that skips (J > 0) or repeats (J < 0) J ms of programme. A backup
 * encoder is a different encoding of the same programme, so its chunks correlate near 0.9, not 1.0;
 * chunks below --min-corr are not "confident" and are ignored when looking for jumps. Near-silent
 * chunks are skipped.
 *
 * Output (stdout):
 *   chunk got=T.TTTs offset_ms=O corr=C [full] [silent]  one per chunk (not with --quiet)
 *   splice at got=T.TTTs jump_ms=J                       offset change >= --jump-ms between two
 *                                                        consecutive confident chunks
 *   event got=T.TTTs before_ms=B after_ms=A splice_error_ms=E max_dev_ms=D n_before=N n_after=M
 *       per --event: B, A = median offsets of the confident chunks in the --event-window seconds
 *       before / after T (chunks overlapping T ± 0.1 s left out); E = A - B; D = largest
 *       |offset - B| of a confident chunk within the window on either side
 *   splicemeasure: chunks=N confident=C silent=S full_searches=F max_jump_ms=M offsets=[F..L]
 *       M = largest |offset change| between consecutive confident chunks
 *
 * Exit: 0 ok; 1 max_jump_ms > --max-jump-ms (if given), or no confident chunk at all;
 * 2 bad command line or unreadable input.
 *
 * Speed: the cross-correlation runs block-wise through FFTs of REF precomputed once, so a local
 * search costs a handful of small inverse FFTs (30 s of 8 kHz audio: well under a second).
 */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 32
#define SILENT_RMS 2.0    /* s16 units, after pre-whitening: quieter chunks are not searched */
#define FALLBACK_CORR 0.5 /* local best below this: search all of REF */
#define SINC_HALF 8       /* taps either side for sub-sample interpolation */
#define PREEMPH 0.95      /* pre-whitening: x[n] - PREEMPH * x[n-1] */
#define EVENT_GUARD_S 0.1 /* chunks this close to an event are neither before nor after */

typedef double complex cpx;

struct fft {
    unsigned n, logn;
    cpx *tw;       /* n/2 twiddles e^{-2 pi i k / n} */
    unsigned *rev; /* bit reversal */
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "splicemeasure: out of memory\n");
        exit(2);
    }
    return p;
}

static void fft_init(struct fft *f, unsigned n)
{
    const double pi = 3.14159265358979323846;
    f->n = n;
    f->logn = 0;
    while ((1u << f->logn) < n)
        f->logn++;
    f->tw = xmalloc(sizeof(cpx) * (n / 2));
    f->rev = xmalloc(sizeof(unsigned) * n);
    for (unsigned k = 0; k < n / 2; k++)
        f->tw[k] = cexp(-2.0 * pi * I * (double)k / (double)n);
    for (unsigned i = 0; i < n; i++) {
        unsigned r = 0;
        for (unsigned b = 0; b < f->logn; b++)
            if (i & (1u << b))
                r |= 1u << (f->logn - 1 - b);
        f->rev[i] = r;
    }
}

/* In-place radix-2 FFT; inverse when `inv` (unscaled). */
static void fft_run(const struct fft *f, cpx *x, int inv)
{
    unsigned n = f->n;
    for (unsigned i = 0; i < n; i++) {
        unsigned r = f->rev[i];
        if (r > i) {
            cpx t = x[i];
            x[i] = x[r];
            x[r] = t;
        }
    }
    for (unsigned len = 2; len <= n; len <<= 1) {
        unsigned half = len / 2, step = n / len;
        for (unsigned i = 0; i < n; i += len) {
            for (unsigned k = 0; k < half; k++) {
                cpx w = f->tw[k * step];
                if (inv)
                    w = conj(w);
                cpx a = x[i + k], b = x[i + k + half] * w;
                x[i + k] = a + b;
                x[i + k + half] = a - b;
            }
        }
    }
}

static float *load_pcm(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "splicemeasure: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += r;
        if (len == cap) {
            cap *= 2;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                fprintf(stderr, "splicemeasure: out of memory\n");
                exit(2);
            }
            buf = nb;
        }
    }
    if (ferror(fp)) {
        fprintf(stderr, "splicemeasure: %s: read error\n", path);
        exit(2);
    }
    fclose(fp);
    *n = len / 2;
    float *s = xmalloc(sizeof(float) * (*n + 1));
    for (size_t i = 0; i < *n; i++)
        s[i] = (float)(int16_t)(uint16_t)(buf[2 * i] | (buf[2 * i + 1] << 8));
    free(buf);
    return s;
}

static void whiten(float *x, size_t n)
{
    for (size_t i = n; i-- > 1;)
        x[i] -= PREEMPH * x[i - 1];
    if (n)
        x[0] *= 1 - PREEMPH;
}

/* REF, with per-block spectra for block-wise cross-correlation and prefix sums for the
 * normalization. Block b covers ref[b*step, b*step + fft.n); a chunk of `clen` samples correlates
 * validly at the first `step` = n - clen + 1 lags of each block. */
struct refidx {
    const float *x;
    size_t n;
    size_t clen;
    size_t step;
    size_t nblocks;
    struct fft fft;
    cpx *spec;        /* nblocks * fft.n */
    double *ps, *ps2; /* prefix sums of x and x^2, n + 1 each */
};

static void ref_build(struct refidx *r, const float *x, size_t n, size_t clen)
{
    unsigned fn = 1024;
    while (fn < 4 * clen)
        fn <<= 1;
    r->x = x;
    r->n = n;
    r->clen = clen;
    fft_init(&r->fft, fn);
    r->step = fn - clen + 1;
    size_t lags = n >= clen ? n - clen + 1 : 0;
    r->nblocks = (lags + r->step - 1) / r->step;
    r->spec = xmalloc(sizeof(cpx) * fn * (r->nblocks ? r->nblocks : 1));
    for (size_t b = 0; b < r->nblocks; b++) {
        cpx *s = r->spec + b * fn;
        size_t at = b * r->step;
        for (unsigned i = 0; i < fn; i++)
            s[i] = at + i < n ? x[at + i] : 0.0;
        fft_run(&r->fft, s, 0);
    }
    r->ps = xmalloc(sizeof(double) * (n + 1));
    r->ps2 = xmalloc(sizeof(double) * (n + 1));
    r->ps[0] = r->ps2[0] = 0;
    for (size_t i = 0; i < n; i++) {
        r->ps[i + 1] = r->ps[i] + x[i];
        r->ps2[i + 1] = r->ps2[i] + (double)x[i] * x[i];
    }
}

/* Pearson correlation from the raw dot product of a zero-mean chunk (energy ce) with ref at lag k.
 */
static double ncc(const struct refidx *r, size_t k, double dot, double ce)
{
    double s = r->ps[k + r->clen] - r->ps[k], s2 = r->ps2[k + r->clen] - r->ps2[k];
    double var = s2 - s * s / (double)r->clen;
    if (var <= 1e-9 * (double)r->clen || ce <= 0)
        return 0;
    return dot / sqrt(var * ce);
}

/* Windowed-sinc (Lanczos) kernel, half-width SINC_HALF taps. */
static double lanczos(double x)
{
    const double pi = 3.14159265358979323846;
    if (fabs(x) < 1e-9)
        return 1;
    if (fabs(x) >= SINC_HALF)
        return 0;
    return SINC_HALF * sin(pi * x) * sin(pi * x / SINC_HALF) / (pi * pi * x * x);
}

/*
 * Sub-sample peak around integer lag k: the cross-correlation of band-limited signals is
 * band-limited, so its values between integer lags follow from windowed-sinc interpolation of the
 * dot products at k-SINC_HALF..k+SINC_HALF. Two decodes of the same audio resampled from
 * different starting points are up to half a sample apart, which at integer lags alone costs
 * much of the correlation of pre-whitened audio. Returns the fraction (-1..1) and updates *corr
 * with the interpolated peak (never lower than the integer one).
 */
static double refine(const struct refidx *r, const double *c, double ce, long k, double *corr)
{
    double dot[2 * SINC_HALF + 1];
    for (int j = -SINC_HALF; j <= SINC_HALF; j++) {
        long kk = k + j;
        double d = 0;
        if (kk >= 0 && (size_t)kk + r->clen <= r->n)
            for (size_t i = 0; i < r->clen; i++)
                d += c[i] * r->x[(size_t)kk + i];
        else
            return 0; /* at an edge of REF: keep the integer lag */
        dot[j + SINC_HALF] = d;
    }
    double s = r->ps[k + r->clen] - r->ps[k], s2 = r->ps2[k + r->clen] - r->ps2[k];
    double var = s2 - s * s / (double)r->clen;
    if (var <= 0 || ce <= 0)
        return 0;
    double norm = sqrt(var * ce), best = *corr, bestd = 0;
    for (int step = -50; step <= 50; step++) {
        double d = step / 50.0, v = 0;
        if (step == 0)
            continue;
        for (int j = -SINC_HALF; j <= SINC_HALF; j++)
            v += dot[j + SINC_HALF] * lanczos(d - j);
        v /= norm;
        if (v > best) {
            best = v;
            bestd = d;
        }
    }
    if (best > 1)
        best = 1;
    *corr = best;
    return bestd;
}

/* Best lag in [lo, hi] for the chunk whose spectrum is `cspec` (conjugated already). */
static double search(const struct refidx *r, const cpx *cspec, double ce, size_t lo, size_t hi,
                     cpx *work, size_t *best_k)
{
    unsigned fn = r->fft.n;
    double best = -2;
    *best_k = lo;
    if (r->nblocks == 0)
        return best;
    size_t maxlag = r->n - r->clen;
    if (hi > maxlag)
        hi = maxlag;
    for (size_t b = lo / r->step; b < r->nblocks && b * r->step <= hi; b++) {
        const cpx *s = r->spec + b * fn;
        for (unsigned i = 0; i < fn; i++)
            work[i] = s[i] * cspec[i];
        fft_run(&r->fft, work, 1);
        size_t at = b * r->step;
        for (size_t j = 0; j < r->step; j++) {
            size_t k = at + j;
            if (k < lo)
                continue;
            if (k > hi)
                break;
            double c = ncc(r, k, creal(work[j]) / fn, ce);
            if (c > best) {
                best = c;
                *best_k = k;
            }
        }
    }
    return best;
}

struct chunk_res {
    double got_s;  /* chunk start in GOT */
    double off_ms; /* ref_pos - got_pos */
    double corr;
    int confident, silent, full;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: splicemeasure REF.pcm GOT.pcm [--rate 8000] [--chunk-ms 100] [--hop-ms 50]\n"
            "                     [--max-jump-ms X] [--jump-ms 1] [--min-corr 0.7]\n"
            "                     [--event SECONDS]... [--event-window 3] [--skip-ms 0]\n"
            "                     [--recheck-s 1] [--quiet]\n");
}

static int num_arg(int argc, char **argv, int *i, double *out)
{
    if (*i + 1 >= argc)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(argv[*i + 1], &end);
    if (errno || end == argv[*i + 1] || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    (*i)++;
    return 0;
}

int main(int argc, char **argv)
{
    const char *refp = NULL, *gotp = NULL;
    double rate = 8000, chunk_ms = 100, hop_ms = 50, max_jump = -1, jump_ms = 1.0, min_corr = 0.7,
           ev_win = 3.0, skip_ms = 0, recheck_s = 1.0;
    double events[MAX_EVENTS];
    int n_events = 0, quiet = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        double v;
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            if (num_arg(argc, argv, &i, &v) != 0) {
                usage();
                return 2;
            }
            if (strcmp(a, "--rate") == 0)
                rate = v;
            else if (strcmp(a, "--chunk-ms") == 0)
                chunk_ms = v;
            else if (strcmp(a, "--hop-ms") == 0)
                hop_ms = v;
            else if (strcmp(a, "--max-jump-ms") == 0)
                max_jump = v;
            else if (strcmp(a, "--jump-ms") == 0)
                jump_ms = v;
            else if (strcmp(a, "--min-corr") == 0)
                min_corr = v;
            else if (strcmp(a, "--event-window") == 0)
                ev_win = v;
            else if (strcmp(a, "--skip-ms") == 0 && v >= 0)
                skip_ms = v;
            else if (strcmp(a, "--recheck-s") == 0 && v >= 0)
                recheck_s = v;
            else if (strcmp(a, "--event") == 0 && n_events < MAX_EVENTS)
                events[n_events++] = v;
            else {
                usage();
                return 2;
            }
        } else if (!refp) {
            refp = a;
        } else if (!gotp) {
            gotp = a;
        } else {
            usage();
            return 2;
        }
    }
    if (!refp || !gotp || rate < 100 || chunk_ms <= 0 || hop_ms <= 0) {
        usage();
        return 2;
    }
    size_t clen = (size_t)llround(chunk_ms * rate / 1000.0);
    size_t hop = (size_t)llround(hop_ms * rate / 1000.0);
    size_t radius = (size_t)llround(rate); /* ±1 s local search */
    if (clen < 16 || hop < 1) {
        fprintf(stderr, "splicemeasure: chunk or hop too short\n");
        return 2;
    }

    size_t nref, ngot;
    float *ref = load_pcm(refp, &nref);
    float *got = load_pcm(gotp, &ngot);
    if (nref < clen || ngot < clen) {
        fprintf(stderr, "splicemeasure: inputs shorter than one chunk (ref=%zu got=%zu samples)\n",
                nref, ngot);
        return 2;
    }

    /* Pre-whiten both (pre-emphasis): programme audio is mostly low-frequency energy
     * (pink noise, music), whose correlation peaks are broad and whose chance correlations with
     * unrelated audio run high; the difference filter flattens the spectrum. */
    whiten(ref, nref);
    whiten(got, ngot);
    struct refidx r;
    ref_build(&r, ref, nref, clen);
    unsigned fn = r.fft.n;
    cpx *cspec = xmalloc(sizeof(cpx) * fn);
    cpx *work = xmalloc(sizeof(cpx) * fn);
    double *c = xmalloc(sizeof(double) * clen);

    size_t skip = (size_t)llround(skip_ms * rate / 1000.0);
    size_t recheck_every = recheck_s > 0 ? (size_t)llround(recheck_s * 1000.0 / hop_ms) : 0;
    if (recheck_s > 0 && recheck_every < 1)
        recheck_every = 1;
    if (skip + clen > ngot) {
        fprintf(stderr, "splicemeasure: GOT shorter than --skip-ms plus one chunk\n");
        return 2;
    }
    got += skip;
    ngot -= skip;
    size_t nchunks = (ngot - clen) / hop + 1;
    struct chunk_res *res = xmalloc(sizeof(*res) * nchunks);
    size_t n_conf = 0, n_silent = 0, n_full = 0;
    int have_pred = 0;
    double pred_off = 0; /* samples */
    double max_abs_jump = 0, last_off = NAN, first_off = NAN;

    for (size_t ci = 0; ci < nchunks; ci++) {
        size_t g = ci * hop;
        struct chunk_res *cr = &res[ci];
        memset(cr, 0, sizeof(*cr));
        cr->got_s = (double)(g + skip) / rate;
        cr->off_ms = NAN;
        double mean = 0, ce = 0;
        for (size_t i = 0; i < clen; i++)
            mean += got[g + i];
        mean /= (double)clen;
        for (size_t i = 0; i < clen; i++) {
            c[i] = got[g + i] - mean;
            ce += c[i] * c[i];
        }
        if (sqrt(ce / (double)clen) < SILENT_RMS) {
            cr->silent = 1;
            n_silent++;
            if (!quiet)
                printf("chunk got=%.3fs offset_ms=nan corr=0.000 silent\n", cr->got_s);
            continue;
        }
        for (unsigned i = 0; i < fn; i++)
            cspec[i] = i < clen ? c[i] : 0.0;
        fft_run(&r.fft, cspec, 0);
        for (unsigned i = 0; i < fn; i++)
            cspec[i] = conj(cspec[i]);

        size_t bk = 0;
        double best = -2;
        if (have_pred) {
            double p = (double)(g + skip) + pred_off;
            double lo = p - (double)radius, hi = p + (double)radius;
            if (hi >= 0 && lo <= (double)(nref - clen))
                best = search(&r, cspec, ce, lo < 0 ? 0 : (size_t)lo, (size_t)(hi < 0 ? 0 : hi),
                              work, &bk);
        }
        if (best < FALLBACK_CORR || (recheck_every && ci % recheck_every == 0)) {
            size_t k2;
            double b2 = search(&r, cspec, ce, 0, nref - clen, work, &k2);
            cr->full = 1;
            n_full++;
            if (b2 > best) {
                best = b2;
                bk = k2;
            }
        }
        double frac = refine(&r, c, ce, (long)bk, &best);
        double off = (double)bk + frac - (double)(g + skip);
        cr->corr = best;
        cr->off_ms = off * 1000.0 / rate;
        cr->confident = best >= min_corr;
        if (!quiet)
            printf("chunk got=%.3fs offset_ms=%.2f corr=%.3f%s\n", cr->got_s, cr->off_ms, best,
                   cr->full ? " full" : "");
        if (cr->confident) {
            n_conf++;
            if (!isnan(last_off)) {
                double d = cr->off_ms - last_off;
                if (fabs(d) > max_abs_jump)
                    max_abs_jump = fabs(d);
                if (fabs(d) >= jump_ms)
                    printf("splice at got=%.3fs jump_ms=%.2f\n", cr->got_s, d);
            } else {
                first_off = cr->off_ms;
            }
            last_off = cr->off_ms;
            pred_off = off;
            have_pred = 1;
        } else if (!have_pred && best >= FALLBACK_CORR) {
            pred_off = off; /* a hint for the next chunk, not a jump reference */
            have_pred = 1;
        }
    }

    double *tmp = xmalloc(sizeof(double) * (nchunks + 1));
    double chunk_s = (double)clen / rate;
    for (int e = 0; e < n_events; e++) {
        double t = events[e];
        size_t nb = 0, na = 0;
        for (size_t i = 0; i < nchunks; i++)
            if (res[i].confident && res[i].got_s >= t - ev_win &&
                res[i].got_s + chunk_s <= t - EVENT_GUARD_S)
                tmp[nb++] = res[i].off_ms;
        double before = median(tmp, nb);
        for (size_t i = 0; i < nchunks; i++)
            if (res[i].confident && res[i].got_s >= t + EVENT_GUARD_S &&
                res[i].got_s + chunk_s <= t + ev_win)
                tmp[na++] = res[i].off_ms;
        double after = median(tmp, na);
        double dev = 0;
        if (!isnan(before))
            for (size_t i = 0; i < nchunks; i++)
                if (res[i].confident && res[i].got_s + chunk_s >= t - ev_win &&
                    res[i].got_s <= t + ev_win && fabs(res[i].off_ms - before) > dev)
                    dev = fabs(res[i].off_ms - before);
        printf("event got=%.3fs before_ms=%.2f after_ms=%.2f splice_error_ms=%.2f max_dev_ms=%.2f "
               "n_before=%zu n_after=%zu\n",
               t, before, after, after - before, isnan(before) ? NAN : dev, nb, na);
    }

    printf("splicemeasure: chunks=%zu confident=%zu silent=%zu full_searches=%zu max_jump_ms=%.2f "
           "offsets=[%.2f..%.2f]\n",
           nchunks, n_conf, n_silent, n_full, max_abs_jump, first_off, last_off);
    if (n_conf == 0)
        return 1;
    if (max_jump >= 0 && max_abs_jump > max_jump)
        return 1;
    return 0;
}
