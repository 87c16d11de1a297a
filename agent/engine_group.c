/*
 * The extract engine's grouping: each selected row gets a group number.
 *
 * Dense: when the grouped columns' domains are small, a group is a slot of
 * a mixed-radix index, slot = sum of code_k * stride_k with code 0 for
 * NULL and stored + 1 otherwise; every thread has the same slots, so
 * merging is adding arrays. Hash: otherwise each thread numbers the groups
 * it meets in an open-addressing table over the key words (a NULL mask,
 * then the stored values), and merging maps its numbers to thread 0's.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "engine_internal.h"

#include "fedq/v1/plan.pb-c.h"

#define HASH_EMPTY      UINT32_MAX
#define HASH_FIRST_CAP  1024
#define HASH_MAX_GROUPS ((size_t)UINT32_MAX - 1)

/* ---- gathers ------------------------------------------------------------ */

#define GATHER(T, OUT)                       \
    do {                                     \
        const T *p = (const T *)c->data + b; \
        for (size_t j = 0; j < n; j++)       \
            out[j] = (OUT)p[idx[j]];         \
    } while (0)

void
en_gather_u64(const struct ag_xcol *c, uint64_t b, const uint32_t *idx,
              size_t n, uint64_t *out)
{
    switch (c->width) {
    case 1:
        GATHER(uint8_t, uint64_t);
        break;
    case 2:
        GATHER(uint16_t, uint64_t);
        break;
    case 4:
        GATHER(uint32_t, uint64_t);
        break;
    default:
        GATHER(uint64_t, uint64_t);
    }
}

void
en_gather_f64(const struct ag_xcol *c, uint64_t b, const uint32_t *idx,
              size_t n, double *out)
{
    GATHER(double, double);
}

void
en_gather_ok(const struct ag_xcol *c, uint64_t b, const uint32_t *idx, size_t n,
             uint8_t *ok)
{
    if (!c->nulls) {
        memset(ok, 1, n);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        uint64_t r = b + idx[j];
        ok[j] = (uint8_t)(~c->nulls[r >> 6] >> (r & 63) & 1);
    }
}

/* ---- compiling ---------------------------------------------------------- */

/* The codes of grouped column k: NULL, then each stored value. */
static int
key_compile(struct en_query *q, struct en_key *k, const char *name)
{
    const struct ag_xcol *c = en_column(q, name);

    if (!c)
        return en_fail(q, FQ_EINVAL, "column '%s' is not in the extract", name);
    if (c->kind == AG_COL_DOUBLE)
        return en_fail(q, FQ_EINVAL,
                       "the extract engine cannot group on decimal column "
                       "'%s'",
                       name);
    k->col = c;
    k->smax = 0;
    k->card = 1;
    if (c->kind == AG_COL_DICT && c->dict_size) {
        k->smax = c->dict_size - 1;
        k->card = (uint64_t)c->dict_size + 1;
    } else if (c->kind == AG_COL_INT && c->min <= c->max) {
        k->smax = (uint64_t)c->max - (uint64_t)c->base;
        k->card = k->smax >= UINT64_MAX - 1 ? UINT64_MAX : k->smax + 2;
    }
    return 0;
}

/* Keys and the dense index size (slots 0 when it does not fit 2^32). */
int
en_group_compile(struct en_query *q)
{
    const Fedq__V1__Plan *plan = q->plan;
    uint64_t slots = 1;

    if (plan->n_group_by > FQ_ARRAY_LEN(q->keys))
        return en_fail(q, FQ_ETOOBIG, "too many GROUP BY columns");
    q->n_keys = plan->n_group_by;
    q->n_words = q->n_keys + 1;
    for (size_t i = 0; i < q->n_keys; i++) {
        struct en_key *k = &q->keys[i];
        int rc = key_compile(q, k, plan->group_by[i]);
        if (rc < 0)
            return rc;
        k->stride = (uint32_t)slots;
        if (slots && (k->card > UINT32_MAX ||
                      __builtin_mul_overflow(slots, k->card, &slots) ||
                      slots > UINT32_MAX))
            slots = 0;
    }
    q->slots = (size_t)slots;
    return 0;
}

/* ---- the hash table ----------------------------------------------------- */

static uint64_t
hash_words(const uint64_t *w, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ w[i]) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    return h;
}

static int
table_alloc(struct en_query *q, struct en_hash *h, size_t entries)
{
    void *p;
    int rc = en_alloc(&q->budget, entries * sizeof(uint32_t), &p);
    if (rc < 0)
        return rc;
    h->table = p;
    h->mask = entries - 1;
    memset(h->table, 0xFF, entries * sizeof(uint32_t));
    return 0;
}

int
en_hash_init(struct en_query *q, struct en_hash *h)
{
    void *k, *hs;
    int rc;

    memset(h, 0, sizeof(*h));
    if (q->dense)
        return 0;
    if ((rc = table_alloc(q, h, 2 * HASH_FIRST_CAP)) < 0 ||
        (rc = en_alloc(&q->budget, HASH_FIRST_CAP * q->n_words * 8, &k)) < 0 ||
        (rc = en_alloc(&q->budget, HASH_FIRST_CAP * 8, &hs)) < 0)
        return rc;
    h->keys = k;
    h->hashes = hs;
    h->cap = HASH_FIRST_CAP;
    return 0;
}

void
en_hash_release(struct en_query *q, struct en_hash *h)
{
    if (h->table)
        en_free(&q->budget, h->table, (h->mask + 1) * sizeof(uint32_t));
    en_free(&q->budget, h->keys, h->cap * q->n_words * 8);
    en_free(&q->budget, h->hashes, h->cap * 8);
    memset(h, 0, sizeof(*h));
}

/* Doubles the table, reinserting n groups by their hashes. */
static int
hash_rehash(struct en_query *q, struct en_hash *h, size_t n)
{
    uint32_t *old = h->table;
    size_t old_entries = h->mask + 1;
    int rc = table_alloc(q, h, old_entries * 2);

    if (rc < 0) {
        h->table = old;
        return rc;
    }
    for (size_t g = 0; g < n; g++) {
        size_t i = h->hashes[g] & h->mask;
        while (h->table[i] != HASH_EMPTY)
            i = (i + 1) & h->mask;
        h->table[i] = (uint32_t)g;
    }
    en_free(&q->budget, old, old_entries * sizeof(uint32_t));
    return 0;
}

/* Room for one more group in t's keys and state. */
static int
hash_make_room(struct en_thread *t)
{
    struct en_query *q = t->q;
    struct en_hash *h = &t->hash;
    size_t n = t->st.n_groups, cap = h->cap * 2;
    int rc;

    if (n == h->cap) {
        void *k = h->keys, *hs = h->hashes;
        if ((rc = en_grow(&q->budget, &k, h->cap * q->n_words * 8,
                          cap * q->n_words * 8, 0)) < 0)
            return rc;
        h->keys = k;
        if ((rc = en_grow(&q->budget, &hs, h->cap * 8, cap * 8, 0)) < 0)
            return rc;
        h->hashes = hs;
        h->cap = cap;
    }
    if (n == t->st.cap && (rc = en_state_grow(q, &t->st, n * 2)) < 0)
        return rc;
    if ((n + 1) * 2 > h->mask + 1)
        return hash_rehash(q, h, n);
    return 0;
}

/* The group of key (q->n_words words, hash hv) in t, added if new. */
static int
hash_find_or_add(struct en_thread *t, const uint64_t *key, uint64_t hv,
                 uint32_t *ret)
{
    struct en_query *q = t->q;
    struct en_hash *h = &t->hash;
    size_t w = q->n_words, i = hv & h->mask, n = t->st.n_groups;
    int rc;

    for (; h->table[i] != HASH_EMPTY; i = (i + 1) & h->mask) {
        uint32_t g = h->table[i];
        if (h->hashes[g] == hv && memcmp(&h->keys[g * w], key, w * 8) == 0) {
            *ret = g;
            return 0;
        }
    }
    if ((q->max_groups && n >= q->max_groups) || n >= HASH_MAX_GROUPS) {
        t->over_groups = true;
        return FQ_ETOOBIG;
    }
    if ((rc = hash_make_room(t)) < 0)
        return rc;
    for (i = hv & h->mask; h->table[i] != HASH_EMPTY; i = (i + 1) & h->mask)
        ;
    h->table[i] = (uint32_t)n;
    memcpy(&h->keys[n * w], key, w * 8);
    h->hashes[n] = hv;
    t->st.n_groups = n + 1;
    *ret = (uint32_t)n;
    return 0;
}

/* ---- group numbers ------------------------------------------------------ */

#define DENSE_LOOP(T)                                      \
    do {                                                   \
        const T *restrict p = (const T *)k->col->data + b; \
        T top = (T)smax;                                   \
        for (size_t j = 0; j < n; j++) {                   \
            T v = p[idx[j]] < top ? p[idx[j]] : top;       \
            g[j] += ((uint32_t)v + 1) * stride;            \
        }                                                  \
    } while (0)

/* Adds key k's part of the slot to g[]. */
static void
dense_add(struct en_thread *t, const struct en_key *k, uint64_t b,
          const uint32_t *restrict idx, size_t n, uint32_t *restrict g)
{
    uint32_t stride = k->stride;
    uint64_t smax = k->smax;

    if (k->col->nulls) {
        uint64_t *v = t->s.u64;
        uint8_t *ok = t->s.ok;
        en_gather_u64(k->col, b, idx, n, v);
        en_gather_ok(k->col, b, idx, n, ok);
        for (size_t j = 0; j < n; j++) {
            uint64_t c = (v[j] < smax ? v[j] : smax) + 1;
            g[j] += (uint32_t)c * stride & -(uint32_t)ok[j];
        }
        return;
    }
    switch (k->col->width) {
    case 1:
        DENSE_LOOP(uint8_t);
        break;
    case 2:
        DENSE_LOOP(uint16_t);
        break;
    case 4:
        DENSE_LOOP(uint32_t);
        break;
    default:
        DENSE_LOOP(uint64_t);
    }
}

/* Key words of the selected rows into t->s.keys, row after row. */
static void
hash_keys(struct en_thread *t, uint64_t b, const uint32_t *idx, size_t n)
{
    const struct en_query *q = t->q;
    size_t w = q->n_words;
    uint64_t *keys = t->s.keys, *v = t->s.u64;
    uint8_t *ok = t->s.ok;

    for (size_t j = 0; j < n; j++)
        keys[j * w] = 0;
    for (size_t k = 0; k < q->n_keys; k++) {
        en_gather_u64(q->keys[k].col, b, idx, n, v);
        en_gather_ok(q->keys[k].col, b, idx, n, ok);
        for (size_t j = 0; j < n; j++) {
            keys[j * w + 1 + k] = v[j] & -(uint64_t)ok[j];
            keys[j * w] |= (uint64_t)(ok[j] ^ 1) << k;
        }
    }
}

#define DENSE_FULL(T)                                      \
    do {                                                   \
        const T *restrict p = (const T *)k->col->data + b; \
        T top = (T)smax;                                   \
        for (size_t i = 0; i < rows; i++) {                \
            T v = p[i] < top ? p[i] : top;                 \
            gf[i] += ((uint32_t)v + 1) * stride;           \
        }                                                  \
    } while (0)

/* Key k's part of the slot of every row of the block, NULLs aside:
 * contiguous loads, which vectorize. */
static void
dense_full(const struct en_key *k, uint64_t b, size_t rows,
           uint32_t *restrict gf)
{
    uint64_t smax = k->smax; /* < 2^32: the slots fit 32 bits */
    uint32_t stride = k->stride;

    switch (k->col->width) {
    case 1:
        DENSE_FULL(uint8_t);
        break;
    case 2:
        DENSE_FULL(uint16_t);
        break;
    case 4:
        DENSE_FULL(uint32_t);
        break;
    default:
        DENSE_FULL(uint64_t);
    }
}

/* Dense slots of the n selected rows of the block [b, b + rows): when
 * many rows are selected, computed for the whole block first (one
 * gather instead of one per key). */
static void
dense_ids(struct en_thread *t, uint64_t b, size_t rows, const uint32_t *idx,
          size_t n)
{
    const struct en_query *q = t->q;
    uint32_t *g = t->s.g, *gf = t->s.gfull;
    bool full = n * 8 > rows;

    memset(g, 0, n * sizeof(*g));
    if (full) {
        memset(gf, 0, rows * sizeof(*gf));
        for (size_t k = 0; k < q->n_keys; k++) {
            if (!q->keys[k].col->nulls)
                dense_full(&q->keys[k], b, rows, gf);
        }
        for (size_t j = 0; j < n; j++)
            g[j] = gf[idx[j]];
    }
    for (size_t k = 0; k < q->n_keys; k++) {
        if (!full || q->keys[k].col->nulls)
            dense_add(t, &q->keys[k], b, idx, n, g);
    }
}

int
en_group_ids(struct en_thread *t, uint64_t b, size_t rows, const uint32_t *idx,
             size_t n)
{
    const struct en_query *q = t->q;
    uint32_t *g = t->s.g;

    if (q->dense) {
        dense_ids(t, b, rows, idx, n);
        return 0;
    }
    hash_keys(t, b, idx, n);
    for (size_t j = 0; j < n; j++) {
        const uint64_t *key = &t->s.keys[j * q->n_words];
        int rc = hash_find_or_add(t, key, hash_words(key, q->n_words), &g[j]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
en_group_merge_map(struct en_thread *t0, struct en_thread *t)
{
    const struct en_query *q = t->q;
    size_t n = t->st.n_groups, w = q->n_words;
    void *p;
    int rc;

    if (q->dense || n == 0)
        return 0;
    if ((rc = en_alloc(&t->q->budget, n * sizeof(uint32_t), &p)) < 0)
        return rc;
    t->map = p;
    t->map_len = n;
    for (size_t g = 0; g < n; g++) {
        rc = hash_find_or_add(t0, &t->hash.keys[g * w], t->hash.hashes[g],
                              &t->map[g]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool
en_group_key(const struct en_thread *t0, size_t g, size_t k, uint64_t *stored)
{
    const struct en_query *q = t0->q;

    if (q->dense) {
        const struct en_key *key = &q->keys[k];
        uint64_t code = (g / key->stride) % key->card;
        *stored = code ? code - 1 : 0;
        return code == 0;
    }
    const uint64_t *words = &t0->hash.keys[g * q->n_words];
    *stored = words[1 + k];
    return words[0] >> k & 1;
}
