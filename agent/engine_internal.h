/*
 * The extract engine's private parts (engine.c, engine_filter.c,
 * engine_group.c, engine_agg.c). A query is compiled once (struct
 * en_query), then each thread runs blocks of EN_BLOCK rows of its slice
 * through the same pipeline:
 *
 *   filter ──► byte masks (true / false per node, SQL's three values)
 *          ──► idx[]: the selected rows of the block
 *   groups ──► g[]: each selected row's group (dense slot or hash id)
 *   aggregates: one tight loop per aggregate over (idx, g), with the
 *   column's width and the aggregate's kind switched outside the loop.
 *
 * Thread states are merged into thread 0's, which then holds the answer.
 */
#ifndef AG_ENGINE_INTERNAL_H
#define AG_ENGINE_INTERNAL_H

#include "fq/compat.h"

#include <pthread.h>
#include <stdatomic.h>

#include "fq/plan.h"
#include "extract.h"

struct fq_arena;
struct Fedq__V1__Dataset;
struct Fedq__V1__Plan;
struct Fedq__V1__Predicate;
struct Fedq__V1__ExecuteResponse;

#define EN_BLOCK 2048 /* rows per vector: the masks of a few nodes fit L1 */

/* Rows a thread needs at least (65536; tests lower it). */
extern uint64_t en_min_rows_per_thread;

/* ---- memory ------------------------------------------------------------ */

/* Bytes of working state a query holds, against lim->max_memory; shared by
 * its threads. */
struct en_budget {
    atomic_size_t used;
    size_t max; /* 0: no limit */
};

/* Zeroed memory counted against b. 0, FQ_ETOOBIG or FQ_ENOMEM. Free with
 * en_free(b, p, n) (same n). */
int en_alloc(struct en_budget *b, size_t n, void **ret);
void en_free(struct en_budget *b, void *p, size_t n);
/* Grows *p from old to n bytes (new bytes set to fill). */
int en_grow(struct en_budget *b, void **p, size_t old, size_t n, int fill);

/* ---- the filter -------------------------------------------------------- */

enum en_op { EN_AND, EN_OR, EN_NOT, EN_LEAF };

/* What a leaf tests on the non-NULL rows of its column. */
enum en_test {
    EN_T_NEVER,  /* no value matches */
    EN_T_ALL,    /* every value matches */
    EN_T_RANGE,  /* lo <= stored <= hi (integers and dictionary codes) */
    EN_T_LUT,    /* lut[stored] (IN on a small domain) */
    EN_T_SET,    /* stored in set[] (IN on a wide domain; sorted) */
    EN_T_DRANGE, /* dlo <= value <= dhi (doubles) */
    EN_T_DSET,   /* the value's order key in set[] (sorted) */
    EN_T_ISNULL, /* the row is NULL: never UNKNOWN */
};

struct en_node {
    enum en_op op;
    bool nullable; /* may be UNKNOWN: computes a false mask too */
    size_t n_kids;
    struct en_node **kids;
    /* EN_LEAF */
    const struct ag_xcol *col;
    enum en_test test;
    bool negate; /* match = !test (<>, IS NOT NULL) */
    uint64_t lo, hi;
    double dlo, dhi;
    const uint8_t *lut; /* 0 or 0xFF; lut_max + 1 entries, last is 0 */
    uint64_t lut_max;
    const uint64_t *set;
    size_t n_set;
};

/* A key whose unsigned order is the order of doubles, -0.0 being 0.0:
 * IN lists and COUNT(DISTINCT) on doubles work on these. */
static inline uint64_t
en_double_order(double d)
{
    uint64_t u;
    if (d == 0)
        d = 0;
    memcpy(&u, &d, sizeof(u));
    return u >> 63 ? ~u : u | (uint64_t)1 << 63;
}

/* Set bits of w. Inline arithmetic: without -mpopcnt the builtin is a
 * library call. */
static inline int
en_popcount(uint64_t w)
{
    w -= (w >> 1) & 0x5555555555555555ULL;
    w = (w & 0x3333333333333333ULL) + ((w >> 2) & 0x3333333333333333ULL);
    w = (w + (w >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((w * 0x0101010101010101ULL) >> 56);
}

/* ---- groups ------------------------------------------------------------ */

/* A grouped column. A row's code is 0 for NULL, else stored + 1. */
struct en_key {
    const struct ag_xcol *col;
    uint64_t smax;   /* largest stored value (clamp for the dense index) */
    uint64_t card;   /* codes: smax + 2, or 1 if the column is all NULL */
    uint32_t stride; /* dense: slot = sum of code * stride */
};

/* Hash grouping: key words per group are a NULL mask, then the stored
 * value of each grouped column (0 when NULL). */
struct en_hash {
    uint32_t *table; /* group ids, UINT32_MAX empty; mask + 1 entries */
    size_t mask;
    uint64_t *keys;   /* n_words per group */
    uint64_t *hashes; /* per group, for rehashing */
    size_t cap;       /* groups keys/hashes hold */
};

/* ---- aggregate state --------------------------------------------------- */

enum en_merge {
    EN_M_NONE, /* scratch (last seen contributor...): not merged */
    EN_M_I64,
    EN_M_U128,
    EN_M_F64,
    EN_M_OR64,
    EN_M_U32,  /* cell keys: added mod 2^32 */
    EN_M_TOP2, /* two doubles, the largest first: the top two of both */
};

/* One array of per-group state: elem bytes times per_group per group. */
struct en_arr {
    size_t elem, per_group;
    enum en_merge merge;
    int fill;  /* initial byte */
    int phase; /* merged after pass 1 or pass 2 */
};

/* The distinct (group, value) pairs of a COUNT(DISTINCT) on a wide
 * domain: open addressing, empty slots have g == UINT32_MAX. */
struct en_pair {
    uint64_t v;
    uint32_t g;
};
struct en_pairset {
    struct en_pair *slots;
    size_t mask, n;
};

/* Per (group, unit) totals of a magnitude whose column declares a
 * contributor_unit (employers): open addressing like en_pairset. */
struct en_unitsum {
    uint64_t unit; /* the unit column's stored value; UINT64_MAX: NULL */
    uint32_t g;
    double total;
};
struct en_unitset {
    struct en_unitsum *slots;
    size_t mask, n;
};

enum en_distinct {
    EN_D_NONE,    /* not a COUNT(DISTINCT) */
    EN_D_CONTRIB, /* the contributor column: the group's contributors */
    EN_D_BITMAP,  /* a bit per stored value per group */
    EN_D_SET,     /* en_pairset */
};

struct en_agg {
    int kind; /* Fedq__V1__AggregateKind */
    const struct ag_xcol *col;
    int a_cnt, a_sum, a_mean, a_m2; /* state arrays, -1 if unused */
    bool sum_shared, dev_shared;    /* an earlier aggregate fills them */
    int a_bins, a_binc, a_binlast;  /* HISTOGRAM */
    int a_q;                        /* QUANTILE counts */
    int a_bits;                     /* COUNT(DISTINCT) bitmap */
    enum en_distinct distinct;
    uint64_t dom; /* bitmap: stored values 0..dom-1 */
    size_t words; /* bitmap words per group */
    size_t n_bins;
    bool void_bins;   /* a NaN edge: SQLite puts no value in any bin */
    uint64_t *uedges; /* stored-domain thresholds (integer columns) */
    double *dedges;   /* thresholds (double columns) */
    int64_t qmin, qw;
    uint32_t qused;
    /* Disclosure fields (cellstats.h): the aggregate's contributors and
     * their cell key, -1 where they are the group's (a column without
     * NULLs, or COUNT(*)); bins' cell keys; a magnitude's per-unit top
     * two, absolute total and units, with the unit being summed (person
     * units) or the unit column (unitset). */
    int a_pcnt, a_plast, a_pck;
    int a_binck;
    int a_top, a_abs, a_units, a_ucur, a_usum;
    const struct ag_xcol *unit;
};

/* A thread's groups: cap groups in every array. */
struct en_state {
    size_t cap, n_groups;
    void **p;                 /* one per en_query.arrs */
    struct en_pairset *pairs; /* one per aggregate (EN_D_SET only) */
    struct en_unitset *units; /* one per aggregate (a unit column only) */
};

/* Per-thread block buffers. */
struct en_scratch {
    uint8_t *masks; /* TRUE and FALSE masks per filter level */
    uint8_t *nn;    /* NOT NULL mask of a leaf's rows */
    uint32_t *iota, *idx, *g, *gfull, *bin;
    uint64_t *sel; /* the block's selected rows, 64 a word */
    uint64_t *u64, *keys;
    uint64_t *runs;  /* per selected row: its contributor run's number */
    uint32_t *rkj;   /* per selected row: its contributor's record key */
    uint64_t *pcode; /* per selected row: its contributor's code */
    double *dbl;
    uint8_t *ok; /* per selected row: the value is not NULL */
};

struct en_query;

struct en_thread {
    struct en_query *q;
    uint64_t lo, hi; /* rows [lo, hi) */
    int phase;       /* 1, or 2 (VAR's deviations) */
    int rc;
    struct en_state st;
    struct en_hash hash;
    uint32_t *map; /* after merging: local group -> thread 0's group */
    size_t map_len;
    bool over_groups; /* failed on max_groups (not on memory) */
    struct en_scratch s;
    pthread_t tid;
    bool started;
    uint64_t run_carry; /* the last run start seen has no selected row */
    uint64_t runs;      /* runs with a selected row in [lo, runs_upto) */
    uint64_t runs_upto;
};

struct en_query {
    const struct ag_extract *x;
    const struct Fedq__V1__Dataset *ds;
    const struct Fedq__V1__Plan *plan;
    struct en_budget budget;
    size_t max_groups; /* 0: no limit */
    char *err;
    size_t errlen;
    bool err_set;
    atomic_bool stop; /* a thread failed: the others stop early */
    int qalloc_rc;    /* why en_qalloc last failed */
    void *owned;      /* compile-time allocations (en_qalloc), a list */
    struct en_node *filter;
    int depth; /* levels of the filter tree */
    size_t n_keys;
    struct en_key keys[FQ_PLAN_MAX_GROUP_BY];
    bool dense;
    size_t slots;   /* dense: groups by index; else 0 */
    size_t n_words; /* hash: key words per group */
    const struct ag_xcol *contrib;
    /* Person tags (cellkey.h; a record key is a tag's first 32 bits): per
     * contributor code, or per row; NULL: every key is 0. */
    const uint64_t *tags;
    bool rk_by_row; /* tags are per row, not per contributor code */
    int a_ck;       /* the group's cell key */
    size_t n_aggs;
    struct en_agg *aggs;
    size_t n_arrs, cap_arrs;
    struct en_arr *arrs;
    int a_rec, a_contrib, a_last;
    bool pass2;
    bool counting;    /* no GROUP BY, only COUNT(*) and contributors */
    bool narrow_sums; /* integer sums of <= 4-byte values fit 64 bits */
    size_t n_threads;
    struct en_thread *threads;
};

/* Memory that lives as long as the query; NULL on failure (message set). */
void *en_qalloc(struct en_query *q, size_t n);
/* Sets the message; returns rc. */
int en_fail(struct en_query *q, int rc, const char *fmt, ...) FQ_PRINTF(3, 4);
/* The extract's column named name, or NULL. */
const struct ag_xcol *en_column(const struct en_query *q, const char *name);

/* engine_filter.c */
int en_filter_compile(struct en_query *q, const struct Fedq__V1__Predicate *p);
/* The filter's TRUE mask of rows [b, b + n), or NULL without a filter. */
const uint8_t *en_filter_mask(struct en_thread *t, uint64_t b, size_t n);
/* m[0..n) (bytes 0 or 0xFF) as bits, word by word (the last one padded
 * with 0). */
void en_mask_bits(const uint8_t *m, size_t n, uint64_t *w);
/* The selected rows of [b, b + n) into t->s.idx (or iota), and as bit
 * words into t->s.sel; their number. */
size_t en_filter_select(struct en_thread *t, uint64_t b, size_t n,
                        const uint32_t **ret_idx);

/* engine_group.c */
int en_group_compile(struct en_query *q);
/* Groups of the n selected rows idx[] of block [b, b + rows) into t->s.g.
 * 0, or FQ_ETOOBIG / FQ_ENOMEM (hash groups). */
int en_group_ids(struct en_thread *t, uint64_t b, size_t rows,
                 const uint32_t *idx, size_t n);
/* Thread t's groups into thread 0's: fills t->map. */
int en_group_merge_map(struct en_thread *t0, struct en_thread *t);
int en_hash_init(struct en_query *q, struct en_hash *h);
void en_hash_release(struct en_query *q, struct en_hash *h);
/* The stored value of grouped column k in group g (of thread t0) and
 * whether it is NULL. */
bool en_group_key(const struct en_thread *t0, size_t g, size_t k,
                  uint64_t *stored);

/* engine_agg.c */
int en_agg_compile(struct en_query *q);
int en_state_init(struct en_query *q, struct en_state *st, size_t cap);
int en_state_grow(struct en_query *q, struct en_state *st, size_t cap);
void en_state_release(struct en_query *q, struct en_state *st);
/* Bytes of state one group takes. */
size_t en_agg_group_bytes(const struct en_query *q);
/* The selected rows idx[0..n) of block b (groups in t->s.g) into t's state
 * (pass t->phase). 0, FQ_ETOOBIG or FQ_ENOMEM. */
int en_agg_block(struct en_thread *t, uint64_t b, const uint32_t *idx,
                 size_t n);
/* Counting plans: records and contributors of rows [b, b + n) selected
 * by mask (NULL: all) straight from bit masks. */
void en_agg_count_block(struct en_thread *t, uint64_t b, size_t n,
                        const uint8_t *mask);
/* After a thread's first pass: what it still holds of its last
 * contributor (a magnitude's per-person total) goes into its state. */
void en_agg_slice_end(struct en_thread *t);
/* Adds t's state of pass phase into t0's (t->map says where). */
void en_agg_merge(struct en_thread *t0, const struct en_thread *t, int phase);
int en_agg_merge_sets(struct en_thread *t0, const struct en_thread *t);
/* VAR: the merged means, then copied to each thread's groups. */
void en_agg_means(struct en_thread *t0);
void en_agg_spread_means(struct en_thread *t0, struct en_thread *t);
/* Groups in thread 0's state (slots or hash groups), and their records. */
size_t en_groups(const struct en_thread *t0);
int64_t en_agg_records(const struct en_thread *t0, size_t g);
/* Before emitting: counts that need the merged state. */
void en_agg_finish(struct en_thread *t0);
/* Records, contributors and aggregate states of group g into pg: its
 * n_aggs states in states[], pointed to by ptrs[] (bins in arena). */
struct Fedq__V1__PartialGroup;
struct Fedq__V1__AggregateState;
int en_agg_emit_group(struct fq_arena *arena, struct en_thread *t0, size_t g,
                      struct Fedq__V1__PartialGroup *pg,
                      struct Fedq__V1__AggregateState *states,
                      struct Fedq__V1__AggregateState **ptrs);

/* Column gathers (engine_group.c): the values of column c at rows
 * b + idx[j]. */
void en_gather_u64(const struct ag_xcol *c, uint64_t b, const uint32_t *idx,
                   size_t n, uint64_t *out);
void en_gather_f64(const struct ag_xcol *c, uint64_t b, const uint32_t *idx,
                   size_t n, double *out);
/* ok[j] = 1 if the row is not NULL. */
void en_gather_ok(const struct ag_xcol *c, uint64_t b, const uint32_t *idx,
                  size_t n, uint8_t *ok);

#endif
