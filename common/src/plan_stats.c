/*
 * Mergeable statistics shared by the agent (which fills them) and the
 * gateway (which pools and reads them): the fixed-bin quantile sketch and
 * the names of histogram bins. See fq/plan.h.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/plan.h"

#include <math.h>

/* Spans up to 2^62 keep every bin computation inside int64_t. */
#define SPAN_MAX ((uint64_t)1 << 62)

int64_t
fq_quantile_width(int64_t min, int64_t max, int64_t bins)
{
    if (bins <= 0 || bins > FQ_QUANTILE_MAX_BINS || min > max)
        return FQ_EINVAL;
    uint64_t span = (uint64_t)max - (uint64_t)min + 1;
    if (span == 0 || span > SPAN_MAX)
        return FQ_EINVAL;
    return (int64_t)((span + (uint64_t)bins - 1) / (uint64_t)bins);
}

static int64_t
column_width(const Fedq__V1__Column *col)
{
    if (!col || !col->bounds || col->quantile_bins == 0)
        return FQ_EINVAL;
    return fq_quantile_width(col->bounds->min, col->bounds->max,
                             col->quantile_bins);
}

/* Bins actually used: ceil(span / w), at most quantile_bins (25 values in
 * 8 bins of 4 use 7). */
static uint32_t
used_bins(const Fedq__V1__Column *col, int64_t w)
{
    uint64_t span = (uint64_t)col->bounds->max - (uint64_t)col->bounds->min + 1;
    return (uint32_t)((span + (uint64_t)w - 1) / (uint64_t)w);
}

uint32_t
fq_sketch_bin(int64_t min, int64_t w, uint32_t used, int64_t v)
{
    if (w <= 0 || used == 0 || v <= min)
        return 0;
    uint64_t i = ((uint64_t)v - (uint64_t)min) / (uint64_t)w;
    return i >= used ? used - 1 : (uint32_t)i;
}

int
fq_quantile_sketch(const Fedq__V1__Column *col, int64_t *w, uint32_t *used)
{
    if ((*w = column_width(col)) <= 0)
        return FQ_EINVAL;
    *used = used_bins(col, *w);
    return 0;
}

uint32_t
fq_quantile_bin(const Fedq__V1__Column *col, int64_t v)
{
    int64_t w;
    uint32_t used;
    if (fq_quantile_sketch(col, &w, &used) < 0)
        return 0;
    return fq_sketch_bin(col->bounds->min, w, used, v);
}

int64_t
fq_quantile_error_bound(const Fedq__V1__Column *col)
{
    int64_t w = column_width(col);
    return w > 0 ? w / 2 : 0;
}

/* Rank of the q-quantile among total values: ceil(q * total) in [1, total]. */
static int64_t
quantile_rank(double q, int64_t total)
{
    double r = ceil(q * (double)total);
    if (!(r >= 1)) /* also NaN */
        return 1;
    return r >= (double)total ? total : (int64_t)r;
}

int
fq_quantile_pick(const Fedq__V1__Column *col, double q, const uint32_t *bins,
                 const int64_t *counts, size_t n, struct fq_quantile *out)
{
    int64_t w = column_width(col), total = 0, seen = 0;

    if (w <= 0)
        return FQ_EPROTO;
    uint32_t used = used_bins(col, w);
    for (size_t i = 0; i < n; i++) {
        if (counts[i] <= 0 || bins[i] >= used ||
            (i && bins[i] <= bins[i - 1]) ||
            __builtin_add_overflow(total, counts[i], &total))
            return FQ_EPROTO;
    }
    if (total == 0)
        return FQ_ENOENT;
    int64_t r = quantile_rank(q, total);
    size_t i = 0;
    while ((seen += counts[i]) < r)
        i++;
    out->lo = col->bounds->min + (int64_t)bins[i] * w;
    /* Compared as a difference: lo + w - 1 may not fit near INT64_MAX. */
    out->hi = col->bounds->max - out->lo > w - 1 ? out->lo + (w - 1)
                                                 : col->bounds->max;
    out->value = out->lo + (out->hi - out->lo) / 2;
    return 0;
}

static char *
edge_text(const Fedq__V1__Literal *e, struct fq_arena *a)
{
    if (e->value_case == FEDQ__V1__LITERAL__VALUE_INT_VALUE)
        return fq_arena_printf(a, "%" PRId64, e->int_value);
    return fq_arena_printf(a, "%g", e->decimal_value);
}

char *
fq_histogram_bin_name(const Fedq__V1__Aggregate *agg, size_t i,
                      struct fq_arena *a)
{
    char *lo = i == 0 ? "-inf" : edge_text(agg->edges[i - 1], a);
    char *hi = i == agg->n_edges ? "+inf" : edge_text(agg->edges[i], a);

    if (!lo || !hi)
        return NULL;
    return fq_arena_printf(a, "HISTOGRAM(%s)[%s,%s)", agg->column, lo, hi);
}
