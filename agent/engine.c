/*
 * The extract engine (engine.h): compiles a checked plan against a mapped
 * extract, splits the rows across threads at contributor boundaries, runs
 * each slice a block at a time (engine_filter.c, engine_group.c,
 * engine_agg.c), merges the threads' states into thread 0's and renders
 * the partial groups.
 *
 * Threads are created per query: a few tens of microseconds, against
 * slices of at least MIN_ROWS_PER_THREAD rows (smaller inputs run on the
 * calling thread alone).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "engine.h"
#include "engine_internal.h"
#include "ledger.h"

#include "fedq/v1/agent.pb-c.h"

#define MIN_ROWS_PER_THREAD 65536
#define MAX_THREADS         64
#define DENSE_MAX_SLOTS     ((size_t)1 << 20)
#define DENSE_ANY_SLOTS     ((size_t)1 << 12)   /* dense whatever the rows */
#define DENSE_MAX_BYTES     ((size_t)256 << 20) /* else groups as they come */

/* Rows a thread needs at least: a variable so that tests can run small
 * inputs on several threads. */
uint64_t en_min_rows_per_thread = MIN_ROWS_PER_THREAD;

/* ---- memory ------------------------------------------------------------- */

/*
 * Freed blocks of at least CACHE_MIN bytes (group state arrays) are kept,
 * up to CACHE_BYTES in all, for the next query of the same shape: fresh
 * pages from the kernel fault one by one, which on a million rows is a
 * fifth of a query's time.
 */
#define CACHE_MIN   ((size_t)64 << 10)
#define CACHE_SLOTS 16
#define CACHE_BYTES ((size_t)16 << 20)

static struct {
    pthread_mutex_t lock;
    void *p[CACHE_SLOTS];
    size_t n[CACHE_SLOTS];
    size_t bytes;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A zeroed cached block of exactly n bytes, or NULL. */
static void *
cache_take(size_t n)
{
    void *p = NULL;

    if (n < CACHE_MIN)
        return NULL;
    pthread_mutex_lock(&cache.lock);
    for (size_t i = 0; !p && i < CACHE_SLOTS; i++) {
        if (cache.p[i] && cache.n[i] == n) {
            p = cache.p[i];
            cache.p[i] = NULL;
            cache.bytes -= n;
        }
    }
    pthread_mutex_unlock(&cache.lock);
    if (p)
        memset(p, 0, n);
    return p;
}

/* Keeps p (n bytes) for a later query; false if the cache is full. */
static bool
cache_put(void *p, size_t n)
{
    bool kept = false;

    if (n < CACHE_MIN)
        return false;
    pthread_mutex_lock(&cache.lock);
    for (size_t i = 0; !kept && i < CACHE_SLOTS; i++) {
        if (!cache.p[i] && cache.bytes + n <= CACHE_BYTES) {
            cache.p[i] = p;
            cache.n[i] = n;
            cache.bytes += n;
            kept = true;
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return kept;
}

int
en_alloc(struct en_budget *b, size_t n, void **ret)
{
    size_t used = atomic_fetch_add(&b->used, n) + n;
    if (b->max && used > b->max) {
        atomic_fetch_sub(&b->used, n);
        return FQ_ETOOBIG;
    }
    if (!(*ret = cache_take(n)) && !(*ret = calloc(1, n ? n : 1))) {
        atomic_fetch_sub(&b->used, n);
        return FQ_ENOMEM;
    }
    return 0;
}

void
en_free(struct en_budget *b, void *p, size_t n)
{
    if (!p)
        return;
    if (!cache_put(p, n))
        free(p);
    atomic_fetch_sub(&b->used, n);
}

int
en_grow(struct en_budget *b, void **p, size_t old, size_t n, int fill)
{
    void *np;
    int rc = en_alloc(b, n, &np);
    if (rc < 0)
        return rc;
    if (old)
        memcpy(np, *p, old);
    if (fill)
        memset((char *)np + old, fill, n - old);
    en_free(b, *p, old);
    *p = np;
    return 0;
}

/* A compile-time allocation: a header links it into q->owned. */
struct owned {
    struct owned *next;
    size_t n;
    max_align_t data[];
};

void *
en_qalloc(struct en_query *q, size_t n)
{
    void *p;
    int rc = n > SIZE_MAX / 2
                 ? FQ_ENOMEM
                 : en_alloc(&q->budget, sizeof(struct owned) + n, &p);
    if (rc < 0) {
        q->qalloc_rc = rc;
        if (rc == FQ_ETOOBIG)
            en_fail(q, rc,
                    "the query needs more than %zu bytes of working memory "
                    "(max_query_memory)",
                    q->budget.max);
        else
            en_fail(q, rc, "out of memory compiling the query");
        return NULL;
    }
    struct owned *o = p;
    o->next = q->owned;
    o->n = n;
    q->owned = o;
    return o->data;
}

static void
owned_free(struct en_query *q)
{
    while (q->owned) {
        struct owned *o = q->owned;
        q->owned = o->next;
        en_free(&q->budget, o, sizeof(*o) + o->n);
    }
}

int
en_fail(struct en_query *q, int rc, const char *fmt, ...)
{
    va_list ap;
    if (q->err_set)
        return rc;
    va_start(ap, fmt);
    vsnprintf(q->err, q->errlen, fmt, ap);
    va_end(ap);
    q->err_set = true;
    return rc;
}

const struct ag_xcol *
en_column(const struct en_query *q, const char *name)
{
    for (size_t i = 0; i < q->x->n_cols; i++) {
        if (strcmp(q->x->cols[i].name, name) == 0)
            return &q->x->cols[i];
    }
    return NULL;
}

/* The message for an error a thread met. */
static int
thread_fail(struct en_query *q, const struct en_thread *t, int rc)
{
    if (rc == FQ_ETOOBIG && t->over_groups)
        return en_fail(q, rc, "query produces more than %zu groups",
                       q->max_groups);
    if (rc == FQ_ETOOBIG)
        return en_fail(q, rc,
                       "the query needs more than %zu bytes of working "
                       "memory (max_query_memory)",
                       q->budget.max);
    if (rc == FQ_ENOMEM)
        return en_fail(q, rc, "out of memory running the query");
    return en_fail(q, rc, "the query failed on the extract");
}

/* ---- planning ----------------------------------------------------------- */

static size_t
thread_count(const struct ag_engine_limits *lim, uint64_t rows)
{
    size_t n = lim->threads;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (size_t)cores : 1;
    }
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    uint64_t by_rows =
        rows / (en_min_rows_per_thread ? en_min_rows_per_thread : 1);
    if (n > by_rows)
        n = by_rows ? (size_t)by_rows : 1;
    return n;
}

/* Dense groups when the index is small, or not much larger than the
 * data (zeroing and scanning it costs what scanning the rows does), and
 * every thread's arrays fit half the memory cap (and DENSE_MAX_BYTES:
 * sparse wide states, such as sketches, only for the groups met). */
static void
choose_layout(struct en_query *q)
{
    size_t per_group = en_agg_group_bytes(q), slots = q->slots;
    size_t bytes;

    q->dense = q->n_keys == 0;
    if (q->dense) {
        q->slots = 1;
        return;
    }
    q->dense =
        slots && slots <= DENSE_MAX_SLOTS &&
        (slots <= DENSE_ANY_SLOTS || slots <= q->x->n_rows / 4) &&
        !__builtin_mul_overflow(slots, per_group * q->n_threads, &bytes) &&
        bytes <= DENSE_MAX_BYTES &&
        (!q->budget.max || bytes <= q->budget.max / 2);
    if (!q->dense)
        q->slots = 0;
}

/* Slice boundaries: equal shares, moved forward to where a contributor's
 * run of rows starts, so that no contributor spans two threads and every
 * slice but the first starts a run (the NULL rows, which come first and
 * start none, stay in one slice). */
static void
split_rows(struct en_query *q)
{
    uint64_t n = q->x->n_rows, prev = 0;
    const uint64_t *runs = q->contrib ? q->x->contributor_runs : NULL;

    for (size_t i = 0; i < q->n_threads; i++) {
        uint64_t r = n * (i + 1) / q->n_threads;
        if (r < prev)
            r = prev;
        while (runs && r > prev && r < n && !(runs[r >> 6] >> (r & 63) & 1))
            r++;
        q->threads[i].lo = prev;
        q->threads[i].hi = i + 1 == q->n_threads ? n : r;
        prev = q->threads[i].hi;
    }
}

static int
compile(struct en_query *q, const struct ag_engine_limits *lim)
{
    int rc;

    if ((rc = en_filter_compile(q, q->plan->filter)) < 0 ||
        (rc = en_group_compile(q)) < 0 || (rc = en_agg_compile(q)) < 0)
        return rc;
    if (lim->secret && !(q->tags = ag_extract_person_tags(q->x, lim->secret)))
        return en_fail(q, FQ_ENOMEM, "out of memory for record keys");
    q->rk_by_row = ag_extract_keys_by_row(q->x);
    q->n_threads = thread_count(lim, q->x->n_rows);
    choose_layout(q);
    q->threads = en_qalloc(q, q->n_threads * sizeof(*q->threads));
    if (!q->threads)
        return FQ_ENOMEM;
    split_rows(q);
    return 0;
}

/* ---- threads ------------------------------------------------------------ */

/* t's block buffers (freed with the query). */
static int
scratch_init(struct en_thread *t)
{
    struct en_query *q = t->q;
    struct en_scratch *s = &t->s;
    size_t levels = (size_t)q->depth + 2, mask = EN_BLOCK + 64;
    size_t words = q->dense ? 1 : q->n_words;

    if (!(s->u64 = en_qalloc(q, EN_BLOCK * 8)) ||
        !(s->dbl = en_qalloc(q, EN_BLOCK * 8)) ||
        !(s->runs = en_qalloc(q, EN_BLOCK * 8)) ||
        !(s->rkj = en_qalloc(q, EN_BLOCK * 4)) ||
        !(s->pcode = en_qalloc(q, EN_BLOCK * 8)) ||
        !(s->sel = en_qalloc(q, EN_BLOCK / 8)) ||
        !(s->keys = en_qalloc(q, EN_BLOCK * words * 8)) ||
        !(s->iota = en_qalloc(q, EN_BLOCK * 4)) ||
        !(s->idx = en_qalloc(q, EN_BLOCK * 4)) ||
        !(s->g = en_qalloc(q, EN_BLOCK * 4)) ||
        !(s->gfull = en_qalloc(q, EN_BLOCK * 4)) ||
        !(s->bin = en_qalloc(q, EN_BLOCK * 4)) ||
        !(s->ok = en_qalloc(q, EN_BLOCK)) || !(s->nn = en_qalloc(q, mask)) ||
        !(s->masks = en_qalloc(q, levels * 2 * mask)))
        return FQ_ENOMEM;
    for (uint32_t i = 0; i < EN_BLOCK; i++)
        s->iota[i] = i;
    return 0;
}

static int
thread_init(struct en_query *q, struct en_thread *t)
{
    int rc;

    t->q = q;
    if ((rc = scratch_init(t)) < 0 ||
        (rc = en_state_init(q, &t->st, q->dense ? q->slots : 1024)) < 0 ||
        (rc = en_hash_init(q, &t->hash)) < 0)
        return rc;
    return 0;
}

static void
thread_release(struct en_query *q, struct en_thread *t)
{
    en_state_release(q, &t->st);
    en_hash_release(q, &t->hash);
    en_free(&q->budget, t->map, t->map_len * sizeof(*t->map));
    t->map = NULL;
}

/* Rows [t->lo, t->hi) through the pipeline, a block at a time. */
static int
run_slice(struct en_thread *t)
{
    struct en_query *q = t->q;

    t->run_carry = 0;
    t->runs = 0;
    t->runs_upto = t->lo;
    for (uint64_t b = t->lo; b < t->hi; b += EN_BLOCK) {
        size_t n = t->hi - b < EN_BLOCK ? (size_t)(t->hi - b) : EN_BLOCK;
        const uint32_t *idx;
        int rc;
        if (atomic_load_explicit(&q->stop, memory_order_relaxed))
            return 0; /* another thread failed: its error is the answer */
        if (q->counting) {
            en_agg_count_block(t, b, n, en_filter_mask(t, b, n));
            continue;
        }
        size_t k = en_filter_select(t, b, n, &idx);
        if (k == 0)
            continue;
        if ((rc = en_group_ids(t, b, n, idx, k)) < 0 ||
            (rc = en_agg_block(t, b, idx, k)) < 0) {
            atomic_store(&q->stop, true);
            return rc;
        }
    }
    if (t->phase == 1)
        en_agg_slice_end(t);
    return 0;
}

static void *
worker(void *arg)
{
    struct en_thread *t = arg;
    t->rc = run_slice(t);
    return NULL;
}

/* One pass over every slice; the caller's thread runs slice 0 (and any
 * slice whose thread could not start). */
static int
run_pass(struct en_query *q, int phase)
{
    for (size_t i = 0; i < q->n_threads; i++) {
        struct en_thread *t = &q->threads[i];
        t->phase = phase;
        t->started = i > 0 && pthread_create(&t->tid, NULL, worker, t) == 0;
    }
    q->threads[0].rc = run_slice(&q->threads[0]);
    for (size_t i = 1; i < q->n_threads; i++) {
        struct en_thread *t = &q->threads[i];
        if (t->started)
            pthread_join(t->tid, NULL);
        else
            t->rc = run_slice(t);
    }
    for (size_t i = 0; i < q->n_threads; i++) {
        if (q->threads[i].rc < 0)
            return thread_fail(q, &q->threads[i], q->threads[i].rc);
    }
    return 0;
}

/* Threads 1.. into thread 0; VAR's means and second pass. */
static int
merge_all(struct en_query *q)
{
    struct en_thread *t0 = &q->threads[0];
    int rc;

    for (size_t i = 1; i < q->n_threads; i++) {
        struct en_thread *t = &q->threads[i];
        if ((rc = en_group_merge_map(t0, t)) < 0 ||
            (rc = en_agg_merge_sets(t0, t)) < 0)
            return thread_fail(q, t0, rc);
        en_agg_merge(t0, t, 1);
    }
    if (!q->pass2)
        return 0;
    en_agg_means(t0);
    for (size_t i = 1; i < q->n_threads; i++)
        en_agg_spread_means(t0, &q->threads[i]);
    if ((rc = run_pass(q, 2)) < 0)
        return rc;
    for (size_t i = 1; i < q->n_threads; i++)
        en_agg_merge(t0, &q->threads[i], 2);
    return 0;
}

/* ---- the answer --------------------------------------------------------- */

/* The answer's memory, allocated at once for its n groups; dictionary
 * entries are copied into the arena once per code (when the dictionary is
 * not much larger than the answer). */
struct answer {
    Fedq__V1__PartialGroup *groups;
    Fedq__V1__Literal *lits, **keys;
    Fedq__V1__AggregateState *states, **aggs;
    char **texts[FQ_ARRAY_LEN(((struct en_query *)0)->keys)];
};

static int
answer_alloc(struct en_query *q, struct fq_arena *a, size_t n,
             struct answer *ans)
{
    size_t nk = n * q->n_keys + 1, na = n * q->n_aggs + 1;

    ans->groups = fq_arena_alloc(a, (n + 1) * sizeof(*ans->groups));
    ans->lits = fq_arena_alloc(a, nk * sizeof(*ans->lits));
    ans->keys = fq_arena_alloc(a, nk * sizeof(*ans->keys));
    ans->states = fq_arena_alloc(a, na * sizeof(*ans->states));
    ans->aggs = fq_arena_alloc(a, na * sizeof(*ans->aggs));
    if (!ans->groups || !ans->lits || !ans->keys || !ans->states || !ans->aggs)
        return FQ_ENOMEM;
    for (size_t k = 0; k < q->n_keys; k++) {
        const struct ag_xcol *c = q->keys[k].col;
        ans->texts[k] = NULL;
        if (c->kind == AG_COL_DICT && c->dict_size <= 4 * n + 64 &&
            !(ans->texts[k] =
                  fq_arena_alloc(a, (c->dict_size + 1) * sizeof(char *))))
            return FQ_ENOMEM;
    }
    return 0;
}

/* Dictionary entry code of grouped column k, in the arena. */
static char *
key_text(struct fq_arena *a, struct answer *ans, const struct ag_xcol *c,
         size_t k, uint64_t code)
{
    if (code >= c->dict_size)
        return fq_arena_strdup(a, ""); /* a corrupt code: no entry */
    if (!ans->texts[k])
        return fq_arena_strdup(a, ag_xcol_text(c, (uint32_t)code));
    if (!ans->texts[k][code])
        ans->texts[k][code] =
            fq_arena_strdup(a, ag_xcol_text(c, (uint32_t)code));
    return ans->texts[k][code];
}

/* Key k of group g, typed like its column; NULL keys have no value. */
static int
key_literal(struct en_query *q, struct fq_arena *a, struct answer *ans,
            size_t g, size_t k, Fedq__V1__Literal *l)
{
    const struct ag_xcol *c = q->keys[k].col;
    uint64_t stored;

    fedq__v1__literal__init(l);
    if (en_group_key(&q->threads[0], g, k, &stored))
        return 0;
    if (c->kind == AG_COL_INT) {
        l->value_case = FEDQ__V1__LITERAL__VALUE_INT_VALUE;
        l->int_value = (int64_t)((uint64_t)c->base + stored);
        return 0;
    }
    l->value_case = FEDQ__V1__LITERAL__VALUE_TEXT_VALUE;
    l->text_value = key_text(a, ans, c, k, stored);
    return l->text_value ? 0 : FQ_ENOMEM;
}

/* Answer group i from thread 0's group g. */
static int
group_emit(struct en_query *q, struct fq_arena *a, struct answer *ans, size_t i,
           size_t g)
{
    Fedq__V1__PartialGroup *pg = &ans->groups[i];
    size_t nk = q->n_keys;
    int rc;

    fedq__v1__partial_group__init(pg);
    pg->n_key = nk;
    pg->key = ans->keys + i * nk;
    for (size_t k = 0; k < nk; k++) {
        pg->key[k] = &ans->lits[i * nk + k];
        if ((rc = key_literal(q, a, ans, g, k, pg->key[k])) < 0)
            return rc;
    }
    return en_agg_emit_group(a, &q->threads[0], g, pg,
                             ans->states + i * q->n_aggs,
                             ans->aggs + i * q->n_aggs);
}

static int
emit(struct en_query *q, struct fq_arena *arena,
     Fedq__V1__ExecuteResponse *resp)
{
    struct en_thread *t0 = &q->threads[0];
    size_t n = 0, groups = en_groups(t0);
    struct answer ans;
    int rc;

    for (size_t g = 0; g < groups; g++)
        n += en_agg_records(t0, g) > 0;
    if (q->max_groups && n > q->max_groups)
        return en_fail(q, FQ_ETOOBIG, "query produces more than %zu groups",
                       q->max_groups);
    en_agg_finish(t0);
    if (answer_alloc(q, arena, n, &ans) < 0 ||
        !(resp->groups = fq_arena_alloc(arena, (n + 1) * sizeof(void *))))
        return en_fail(q, FQ_ENOMEM, "out of memory writing groups");
    resp->n_groups = 0;
    for (size_t g = 0; g < groups; g++) {
        if (en_agg_records(t0, g) == 0)
            continue; /* a group without records does not exist */
        if ((rc = group_emit(q, arena, &ans, resp->n_groups, g)) < 0)
            return en_fail(q, rc, "out of memory writing groups");
        resp->groups[resp->n_groups] = &ans.groups[resp->n_groups];
        resp->n_groups++;
    }
    return 0;
}

static void
query_release(struct en_query *q)
{
    for (size_t i = 0; q->threads && i < q->n_threads; i++) {
        if (q->threads[i].q)
            thread_release(q, &q->threads[i]);
    }
    owned_free(q);
}

int
ag_engine_execute(const struct ag_extract *x,
                  const struct Fedq__V1__Dataset *ds,
                  const struct Fedq__V1__Plan *plan,
                  const struct ag_engine_limits *lim, struct fq_arena *arena,
                  struct Fedq__V1__ExecuteResponse *resp, char *err,
                  size_t errlen)
{
    struct en_query q = {.x = x,
                         .ds = ds,
                         .plan = plan,
                         .err = err,
                         .errlen = errlen,
                         .max_groups = lim->max_groups};
    int rc;

    atomic_init(&q.budget.used, 0);
    atomic_init(&q.stop, false);
    q.budget.max = lim->max_memory;
    if ((rc = compile(&q, lim)) < 0)
        goto out;
    for (size_t i = 0; i < q.n_threads; i++) {
        if ((rc = thread_init(&q, &q.threads[i])) < 0) {
            rc = thread_fail(&q, &q.threads[i], rc);
            goto out;
        }
    }
    if ((rc = run_pass(&q, 1)) < 0 || (rc = merge_all(&q)) < 0)
        goto out;
    rc = emit(&q, arena, resp);
out:
    if (rc == FQ_ENOMEM && q.qalloc_rc == FQ_ETOOBIG)
        rc = FQ_ETOOBIG; /* en_qalloc's callers say ENOMEM */
    if (rc < 0 && !q.err_set)
        en_fail(&q, rc, "%s", fq_strerror(rc));
    query_release(&q);
    return rc;
}

/* ---- members (the differencing ledger) ---------------------------------- */

/* A selected row and its group. */
struct grow {
    uint32_t g;
    uint64_t row;
};

static int
grow_cmp(const void *pa, const void *pb)
{
    const struct grow *a = pa, *b = pb;
    if (a->g != b->g)
        return a->g < b->g ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* A wanted cell's group as stored values (a NULL mask and values), or
 * absent when a key value is not in the extract at all. */
struct wanted {
    uint64_t nulls;
    uint64_t stored[FQ_PLAN_MAX_GROUP_BY];
    size_t nk; /* key columns */
    bool absent;
    size_t ref;
};

static int
wanted_cmp(const void *pa, const void *pb)
{
    const struct wanted *a = pa, *b = pb;
    if (a->nulls != b->nulls)
        return a->nulls < b->nulls ? -1 : 1;
    for (size_t k = 0; k < a->nk; k++) {
        if (a->stored[k] != b->stored[k])
            return a->stored[k] < b->stored[k] ? -1 : 1;
    }
    return 0;
}

/* The stored value of a key literal in grouped column c; false if no row
 * can hold it. */
static bool
literal_stored(const struct ag_xcol *c, const Fedq__V1__Literal *l,
               uint64_t *ret)
{
    if (c->kind == AG_COL_INT) {
        if (l->value_case != FEDQ__V1__LITERAL__VALUE_INT_VALUE ||
            l->int_value < c->base)
            return false;
        *ret = (uint64_t)l->int_value - (uint64_t)c->base;
        return true;
    }
    if (c->kind != AG_COL_DICT ||
        l->value_case != FEDQ__V1__LITERAL__VALUE_TEXT_VALUE)
        return false;
    uint32_t lo = 0, hi = c->dict_size;
    while (lo < hi) { /* the dictionary is in byte order */
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(ag_xcol_text(c, mid), l->text_value) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->dict_size || strcmp(ag_xcol_text(c, lo), l->text_value))
        return false;
    *ret = lo;
    return true;
}

static void
wanted_of(const struct en_query *q, const struct ag_member_ref *r,
          struct wanted *w)
{
    memset(w, 0, sizeof(*w));
    w->nk = q->n_keys;
    for (size_t k = 0; k < q->n_keys; k++) {
        const Fedq__V1__Literal *l = r->key[k];
        if (l->value_case == FEDQ__V1__LITERAL__VALUE__NOT_SET)
            w->nulls |= (uint64_t)1 << k;
        else if (!literal_stored(q->keys[k].col, l, &w->stored[k]))
            w->absent = true;
    }
}

static void
wanted_of_group(const struct en_thread *t0, size_t g, struct wanted *w)
{
    const struct en_query *q = t0->q;

    memset(w, 0, sizeof(*w));
    w->nk = q->n_keys;
    for (size_t k = 0; k < q->n_keys; k++) {
        if (en_group_key(t0, g, k, &w->stored[k])) {
            w->nulls |= (uint64_t)1 << k;
            w->stored[k] = 0;
        }
    }
}

/* The HISTOGRAM bin of row's value of a's column (the rule of
 * bin_values: how many thresholds lie at or below it). */
static size_t
row_bin(const struct en_agg *a, uint64_t row)
{
    size_t bin = 0;

    for (size_t k = 0; k + 1 < a->n_bins; k++) {
        if (a->col->kind == AG_COL_INT)
            bin += ag_xcol_stored(a->col, row) >= a->uedges[k];
        else
            bin += ((const double *)a->col->data)[row] >= a->dedges[k];
    }
    return bin;
}

/* Whether row is a member of the cell (aggregate agg, bin). */
static bool
row_member(const struct en_query *q, size_t agg, size_t bin, uint64_t row)
{
    const struct en_agg *a = &q->aggs[agg];

    if (q->contrib && ag_xcol_is_null(q->contrib, row))
        return false; /* a record of no contributor counts for none */
    if (!a->col)
        return true; /* COUNT(*) */
    if (ag_xcol_is_null(a->col, row))
        return false;
    if (a->kind != FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM)
        return true;
    return !a->void_bins && row_bin(a, row) == bin;
}

static uint64_t
row_person(const struct en_query *q, uint64_t row)
{
    return q->rk_by_row ? q->tags[row]
                        : q->tags[ag_xcol_stored(q->contrib, row)];
}

/* One cell's members from its group's rows [rows, rows + n). */
static int
cell_members(const struct en_query *q, const struct ag_member_ref *r,
             const struct grow *rows, size_t n, struct ag_cellset *out)
{
    struct ag_member *m = malloc((n + 1) * sizeof(*m));
    size_t k = 0;

    if (!m)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (row_member(q, r->agg, r->bin, rows[i].row))
            m[k++] =
                (struct ag_member){row_person(q, rows[i].row), rows[i].row};
    }
    out->m = m;
    out->n = k;
    ag_cellset_finish(out);
    return 0;
}

/* Every selected row with its group, one thread. */
static int
members_pass(struct en_query *q, struct en_thread *t, struct grow **ret,
             size_t *ret_n, size_t *ret_cap)
{
    struct grow *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    for (uint64_t b = t->lo; rc == 0 && b < t->hi; b += EN_BLOCK) {
        size_t rows = t->hi - b < EN_BLOCK ? (size_t)(t->hi - b) : EN_BLOCK;
        const uint32_t *idx;
        size_t k = en_filter_select(t, b, rows, &idx);
        if (k == 0 || (rc = en_group_ids(t, b, rows, idx, k)) < 0)
            continue;
        if (n + k > cap) {
            size_t ncap = cap ? cap : 4096;
            while (ncap < n + k)
                ncap *= 2;
            if ((rc = en_grow(&q->budget, (void **)&v, cap * sizeof(*v),
                              ncap * sizeof(*v), 0)) < 0)
                break;
            cap = ncap;
        }
        for (size_t j = 0; j < k; j++)
            v[n++] = (struct grow){t->s.g[j], b + idx[j]};
    }
    if (rc < 0) {
        en_free(&q->budget, v, cap * sizeof(*v));
        return thread_fail(q, t, rc);
    }
    if (n)
        qsort(v, n, sizeof(*v), grow_cmp);
    *ret = v;
    *ret_n = n;
    *ret_cap = cap;
    return 0;
}

/* Each wanted cell's members, group by group. */
static int
members_collect(struct en_query *q, const struct grow *v, size_t n,
                const struct ag_member_ref *refs, struct wanted *w,
                size_t n_refs, struct ag_cellset *out)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n;) {
        size_t j = i;
        struct wanted key;
        while (j < n && v[j].g == v[i].g)
            j++;
        wanted_of_group(&q->threads[0], v[i].g, &key);
        /* the first wanted cell of this key, then those after it */
        size_t lo = 0, hi = n_refs;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (wanted_cmp(&w[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; rc == 0 && lo < n_refs && wanted_cmp(&w[lo], &key) == 0; lo++) {
            if (w[lo].absent)
                continue;
            rc = cell_members(q, &refs[w[lo].ref], v + i, j - i,
                              &out[w[lo].ref]);
        }
        i = j;
    }
    return rc < 0 ? en_fail(q, rc, "out of memory collecting members") : 0;
}

static int
members_check(struct en_query *q, const struct ag_member_ref *refs, size_t n)
{
    if (!q->tags)
        return en_fail(q, FQ_EINVAL, "members need the cell-key secret");
    for (size_t i = 0; i < n; i++) {
        const struct en_agg *a;
        if (refs[i].agg >= q->n_aggs)
            return en_fail(q, FQ_EINVAL, "cell %zu: no aggregate %zu", i,
                           refs[i].agg);
        a = &q->aggs[refs[i].agg];
        if (a->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE ||
            (a->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM &&
             refs[i].bin >= a->n_bins))
            return en_fail(q, FQ_EINVAL,
                           "cell %zu: not a cell the ledger records", i);
    }
    return 0;
}

int
ag_engine_members(const struct ag_extract *x,
                  const struct Fedq__V1__Dataset *ds,
                  const struct Fedq__V1__Plan *plan,
                  const struct ag_engine_limits *lim,
                  const struct ag_member_ref *refs, size_t n,
                  struct ag_cellset *out, char *err, size_t errlen)
{
    struct en_query q = {.x = x,
                         .ds = ds,
                         .plan = plan,
                         .err = err,
                         .errlen = errlen,
                         .max_groups = lim->max_groups};
    struct ag_engine_limits one = *lim;
    struct wanted *w = calloc(n + 1, sizeof(*w));
    struct grow *v = NULL;
    size_t nv = 0, cap = 0;
    int rc = FQ_ENOMEM;

    atomic_init(&q.budget.used, 0);
    atomic_init(&q.stop, false);
    q.budget.max = lim->max_memory;
    one.threads = 1;
    memset(out, 0, n * sizeof(*out));
    if (!w || (rc = compile(&q, &one)) < 0 ||
        (rc = members_check(&q, refs, n)) < 0)
        goto out;
    if ((rc = thread_init(&q, &q.threads[0])) < 0) {
        rc = thread_fail(&q, &q.threads[0], rc);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        wanted_of(&q, &refs[i], &w[i]);
        w[i].ref = i;
    }
    qsort(w, n, sizeof(*w), wanted_cmp);
    if ((rc = members_pass(&q, &q.threads[0], &v, &nv, &cap)) == 0)
        rc = members_collect(&q, v, nv, refs, w, n, out);
    en_free(&q.budget, v, cap * sizeof(*v));
out:
    if (rc < 0 && !q.err_set)
        en_fail(&q, rc, "%s", fq_strerror(rc));
    if (rc < 0)
        for (size_t i = 0; i < n; i++) {
            free(out[i].m);
            out[i] = (struct ag_cellset){0};
        }
    free(w);
    query_release(&q);
    return rc;
}

/* ---- finding a row's wanted cells ------------------------------------ */

static int
keys_cmp(Fedq__V1__Literal *const *a, Fedq__V1__Literal *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = fq_literal_cmp(a[i], b[i]);
        if (c)
            return c;
    }
    return 0;
}

static int
slot_cmp(const void *pa, const void *pb)
{
    const struct ag_cell_slot *a = pa, *b = pb;
    return keys_cmp(a->key, b->key, a->n_key);
}

int
ag_cell_index_build(struct ag_cell_index *ix, const struct ag_member_ref *refs,
                    size_t n, size_t n_key, struct fq_arena *a)
{
    ix->sorted = fq_arena_alloc(a, (n + 1) * sizeof(*ix->sorted));
    ix->n = n;
    ix->n_key = n_key;
    if (!ix->sorted)
        return FQ_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ix->sorted[i] = (struct ag_cell_slot){refs[i].key, n_key, i};
    qsort(ix->sorted, n, sizeof(*ix->sorted), slot_cmp);
    return 0;
}

size_t
ag_cell_index_find(const struct ag_cell_index *ix,
                   Fedq__V1__Literal *const *key, size_t *first)
{
    size_t lo = 0, hi = ix->n, end;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys_cmp(ix->sorted[mid].key, key, ix->n_key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (end = lo;
         end < ix->n && keys_cmp(ix->sorted[end].key, key, ix->n_key) == 0;
         end++)
        ;
    *first = lo;
    return end - lo;
}
