/*
 * Secondary suppression against everything released (secondary.h).
 *
 * A family's tables are laid over the finest cross-classification U of
 * their columns: one LP variable per combination of U's values that every
 * table allows (a combination whose projection is a group some table does
 * not have is empty, since counts and the family's sums are not
 * negative), one per table cell; each cell equals the sum of the
 * combinations under it. A released cell is bounded by what its published
 * value says of the truth (exact; within the perturbation's preimage;
 * within the rounding), a suppressed one by what the published rules say
 * (at least 1 below k for a primary one, not negative otherwise). The
 * interval of a suppressed cell is its minimum and maximum over that
 * polytope (lp.c; an LP relaxation, which for two-way tables equals the
 * integer interval and is otherwise at least as wide: the integer check
 * in tests/integration bounds the gap). A family with more finest cells
 * than the gateway allows is related through its tables' margins instead,
 * its cycles closed by latent tables (see "margins" below).
 *
 * Suppression is greedy: while a suppressed cell's interval is narrower
 * than the protection level, the smallest released cell of the new table
 * that shares a margin with it is suppressed too. Violations that remain
 * with every cell of the new table suppressed are not this table's doing
 * (a stricter level than an earlier release's) and are left as they are.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/plan.h"
#include "fq/error.h"
#include "fq/log.h"
#include "disclose.h"
#include "gateway.h"
#include "lp.h"
#include "secondary.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>

#include <openssl/evp.h>

#include "fedq/v1/gateway.pb-c.h"

#define RELEASED_FILE "released-cells.db"
#define MAX_DIMS      16
#define MAX_COMBOS    6000 /* finest cells of one family's program, at most */
#define VALUE_MAX     4096 /* bytes of one packed key value */

struct gw_released {
    pthread_mutex_t mu;
    sqlite3 *db;
    size_t max_finest; /* secondary_finest_cells, <= MAX_COMBOS */
};

/*
 * What the analysts hold of each family, merged: a table asked again (a
 * repeat, a rewrite, a LIMIT of it) is one table whose cells are known as
 * well as the best of its releases tells, so the store grows with the
 * distinct cells released, not with the queries. releases keeps the
 * provenance.
 */
static const char released_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS released_tables ("
    " family TEXT NOT NULL," /* SHA-256 of what makes cells add up */
    " dims TEXT NOT NULL,"   /* the GROUP BY columns, sorted, "\x1f" apart */
    " complete INTEGER NOT NULL," /* some release returned every group */
    " PRIMARY KEY (family, dims));"
    "CREATE TABLE IF NOT EXISTS released_cells ("
    " family TEXT NOT NULL,"
    " dims TEXT NOT NULL,"
    " key BLOB NOT NULL," /* its values, in dims order: 4-byte length, bytes */
    " lo REAL NOT NULL,"  /* released: what its value tells; hidden: 1 if */
    " hi REAL NOT NULL,"  /* the primary rule hid a count, else 0 */
    " hidden INTEGER NOT NULL," /* in every release so far */
    " truth REAL,"              /* hidden sums: their % protection */
    " PRIMARY KEY (family, dims, key));"
    "CREATE TABLE IF NOT EXISTS releases ("
    " id INTEGER PRIMARY KEY,"
    " family TEXT NOT NULL,"
    " dims TEXT NOT NULL,"
    " query TEXT NOT NULL,"
    " released TEXT NOT NULL);";

int
gw_released_open(const struct gw_config *cfg, struct gw_released **ret,
                 char *err, size_t errlen)
{
    struct gw_released *s = calloc(1, sizeof(*s));
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->max_finest = (size_t)cfg->secondary_finest_cells;
    if (s->max_finest == 0 || s->max_finest > MAX_COMBOS)
        s->max_finest = MAX_COMBOS;
    if ((rc = gw_state_db_open(cfg, RELEASED_FILE, "released-cell store",
                               released_schema, &s->db, err, errlen)) < 0) {
        gw_released_close(s);
        return rc;
    }
    *ret = s;
    return 0;
}

void
gw_released_close(struct gw_released *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- families ------------------------------------------------------------ */

/* Whether column j's cells add up over nested groupings. */
static bool
additive(const struct gw_column *c)
{
    return c->stat == GW_STAT_RECORDS || c->stat == GW_STAT_SUM;
}

static int
put(EVP_MD_CTX *md, const void *p, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    return EVP_DigestUpdate(md, len, 8) == 1 &&
                   (n == 0 || EVP_DigestUpdate(md, p, n) == 1)
               ? 0
               : FQ_EINTERNAL;
}

static int
put_str(EVP_MD_CTX *md, const char *s)
{
    return put(md, s, strlen(s));
}

/* The literal's packed bytes, into a (NULL literal: none). */
static uint8_t *
pack_literal(const Fedq__V1__Literal *l, struct fq_arena *a, size_t *len)
{
    *len = l ? protobuf_c_message_get_packed_size(&l->base) : 0;
    uint8_t *b = fq_arena_alloc(a, *len + 1);
    if (b && *len)
        protobuf_c_message_pack(&l->base, b);
    return b;
}

/* The statistic of column c: a count of records (a HISTOGRAM bin is the
 * count of its values: named by its bounds, not the other edges), or a
 * sum of one measure. */
static int
put_statistic(EVP_MD_CTX *md, const struct gw_release *r,
              const struct gw_column *c, struct fq_arena *a)
{
    const Fedq__V1__Aggregate *ag = r->plan->aggregates[c->agg];
    size_t n;
    int rc;

    if (c->stat == GW_STAT_SUM)
        return put_str(md, "sum") == 0 ? put_str(md, ag->column) : FQ_EINTERNAL;
    if ((rc = put_str(md, "records")) < 0 || !c->is_bin)
        return rc;
    const Fedq__V1__Literal *lo = c->bin > 0 ? ag->edges[c->bin - 1] : NULL;
    const Fedq__V1__Literal *hi =
        c->bin < ag->n_edges ? ag->edges[c->bin] : NULL;
    uint8_t *b;
    if ((rc = put_str(md, ag->column)) < 0 || !(b = pack_literal(lo, a, &n)))
        return rc < 0 ? rc : FQ_ENOMEM;
    if ((rc = put(md, b, n)) < 0 || !(b = pack_literal(hi, a, &n)))
        return rc < 0 ? rc : FQ_ENOMEM;
    return put(md, b, n);
}

/* The family of column c: dataset, agencies and vintages (sorted: the
 * caller's order), the filter, the statistic. */
static int
family_id(const struct gw_release *r, const struct gw_column *c,
          struct fq_arena *a, char out[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[32];
    unsigned int n = 0;
    size_t flen = 0;
    uint8_t *f = NULL;
    int rc = FQ_ENOMEM;

    if (!md)
        return FQ_ENOMEM;
    if (r->plan->filter) {
        flen = protobuf_c_message_get_packed_size(&r->plan->filter->base);
        if (!(f = fq_arena_alloc(a, flen + 1)))
            goto out;
        protobuf_c_message_pack(&r->plan->filter->base, f);
    }
    rc = FQ_EINTERNAL;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        put_str(md, "fedq family v1") < 0 || put_str(md, r->plan->dataset) < 0)
        goto out;
    for (size_t i = 0; i < r->n_agencies; i++) {
        if (put_str(md, r->agencies[i]) < 0 || put_str(md, r->vintages[i]) < 0)
            goto out;
    }
    if (put(md, f, flen) < 0 || (rc = put_statistic(md, r, c, a)) < 0)
        goto out;
    rc = EVP_DigestFinal_ex(md, h, &n) == 1 ? 0 : FQ_EINTERNAL;
    for (unsigned int i = 0; rc == 0 && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
out:
    EVP_MD_CTX_free(md);
    return rc;
}

/* ---- a family's tables in memory ---------------------------------------- */

struct fcell {
    uint32_t v[MAX_DIMS]; /* value ids, per dim of its table */
    double lo, hi, truth;
    bool hidden, primary;
    struct gw_cell *live; /* a cell of the new table, else NULL */
    size_t row;           /* live: its row in the new table */
    size_t var;           /* its LP variable */
    size_t *combos;       /* the finest cells under it */
    size_t n_combos;
    size_t table; /* its table's index (margins mode) */
};

struct ftable {
    size_t n_dims;
    size_t dim[MAX_DIMS]; /* indexes into the family's dims */
    const char *dims;     /* as stored */
    bool complete;        /* every non-empty group is a cell */
    bool latent;          /* no release: a clique of margins mode */
    struct fcell *cells;
    size_t n, cap;
};

/* The distinct values of one dimension, as bytes. */
struct values {
    const uint8_t **b;
    size_t *len;
    size_t n, cap;
};

struct family {
    struct fq_arena *a;
    int stat;
    bool nonneg;       /* the cells cannot be negative */
    bool nonempty;     /* COUNT(*): a group that is a row has a record */
    size_t exposed;    /* cells of the new table narrow whatever it hides */
    double scale;      /* the program's unit (choose_scale) */
    bool margins;      /* the program relates tables, not finest cells */
    size_t max_combos; /* finest cells it may have */
    bool big_cycle;    /* margins: a clique has more than that */
    char *dims[MAX_DIMS];
    size_t n_dims;
    struct values vals[MAX_DIMS];
    struct ftable *tables;
    size_t n_tables, cap_tables;
    uint32_t *combos; /* n_combos * n_dims value ids */
    size_t n_combos;
};

/* The id of bytes b in dimension d's values (added if new). */
static int
value_id(struct family *f, size_t d, const uint8_t *b, size_t len,
         uint32_t *ret)
{
    struct values *v = &f->vals[d];
    for (size_t i = 0; i < v->n; i++) {
        if (v->len[i] == len && (len == 0 || memcmp(v->b[i], b, len) == 0)) {
            *ret = (uint32_t)i;
            return 0;
        }
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        const uint8_t **nb = fq_arena_alloc(f->a, cap * sizeof(*nb));
        size_t *nl = fq_arena_alloc(f->a, cap * sizeof(*nl));
        if (!nb || !nl)
            return FQ_ENOMEM;
        if (v->n) {
            memcpy(nb, v->b, v->n * sizeof(*nb));
            memcpy(nl, v->len, v->n * sizeof(*nl));
        }
        v->b = nb;
        v->len = nl;
        v->cap = cap;
    }
    uint8_t *copy = fq_arena_alloc(f->a, len + 1);
    if (!copy)
        return FQ_ENOMEM;
    if (len)
        memcpy(copy, b, len);
    v->b[v->n] = copy;
    v->len[v->n] = len;
    *ret = (uint32_t)v->n++;
    return 0;
}

static int
dim_index(struct family *f, const char *name, size_t *ret)
{
    for (size_t i = 0; i < f->n_dims; i++) {
        if (strcmp(f->dims[i], name) == 0) {
            *ret = i;
            return 0;
        }
    }
    if (f->n_dims == MAX_DIMS)
        return FQ_ETOOBIG;
    if (!(f->dims[f->n_dims] = fq_arena_strdup(f->a, name)))
        return FQ_ENOMEM;
    *ret = f->n_dims++;
    return 0;
}

static struct ftable *
new_table(struct family *f)
{
    if (f->n_tables == f->cap_tables) {
        size_t cap = f->cap_tables ? f->cap_tables * 2 : 8;
        struct ftable *n = fq_arena_alloc(f->a, cap * sizeof(*n));
        if (!n)
            return NULL;
        if (f->n_tables)
            memcpy(n, f->tables, f->n_tables * sizeof(*n));
        f->tables = n;
        f->cap_tables = cap;
    }
    struct ftable *t = &f->tables[f->n_tables++];
    memset(t, 0, sizeof(*t));
    return t;
}

/* A new, zeroed cell at the end of t. */
static struct fcell *
table_append(struct family *f, struct ftable *t)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct fcell *n = fq_arena_alloc(f->a, cap * sizeof(*n));
        if (!n)
            return NULL;
        if (t->n)
            memcpy(n, t->cells, t->n * sizeof(*n));
        t->cells = n;
        t->cap = cap;
    }
    struct fcell *c = &t->cells[t->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

/* "a\x1fb" into t's dims. */
static int
table_dims(struct family *f, struct ftable *t, const char *text)
{
    char *copy = fq_arena_strdup(f->a, text), *save = NULL;
    if (!copy)
        return FQ_ENOMEM;
    for (char *tok = strtok_r(copy, "\x1f", &save); tok;
         tok = strtok_r(NULL, "\x1f", &save)) {
        int rc;
        if (t->n_dims == MAX_DIMS)
            return FQ_ETOOBIG;
        if ((rc = dim_index(f, tok, &t->dim[t->n_dims++])) < 0)
            return rc;
    }
    return 0;
}

/* A stored key (4-byte length, bytes per dim) into value ids. */
static int
key_ids(struct family *f, const struct ftable *t, const uint8_t *k, size_t len,
        uint32_t *ids)
{
    size_t at = 0;
    for (size_t d = 0; d < t->n_dims; d++) {
        uint32_t n;
        int rc;
        if (at + 4 > len)
            return FQ_EPROTO;
        n = (uint32_t)k[at] | (uint32_t)k[at + 1] << 8 |
            (uint32_t)k[at + 2] << 16 | (uint32_t)k[at + 3] << 24;
        at += 4;
        if (n > len - at)
            return FQ_EPROTO;
        if ((rc = value_id(f, t->dim[d], k + at, n, &ids[d])) < 0)
            return rc;
        at += n;
    }
    return at == len ? 0 : FQ_EPROTO;
}

/* The earlier table of dims, a new one if none. */
static int
stored_table(struct family *f, const char *dims, struct ftable **ret)
{
    struct ftable *t;
    int rc;

    for (size_t i = 0; i < f->n_tables; i++) {
        if (strcmp(f->tables[i].dims, dims) == 0) {
            *ret = &f->tables[i];
            return 0;
        }
    }
    if (!(t = new_table(f)) || !(t->dims = fq_arena_strdup(f->a, dims)))
        return FQ_ENOMEM;
    if ((rc = table_dims(f, t, dims)) < 0)
        return rc;
    *ret = t;
    return 0;
}

/* The cell of t at values v, a new hidden one if none. */
static struct fcell *
stored_cell(struct family *f, struct ftable *t, const uint32_t *v)
{
    struct fcell *c;

    for (size_t i = 0; i < t->n; i++) {
        if (memcmp(t->cells[i].v, v, t->n_dims * sizeof(*v)) == 0)
            return &t->cells[i];
    }
    if (!(c = table_append(f, t)))
        return NULL;
    memcpy(c->v, v, t->n_dims * sizeof(*v));
    c->hidden = true;
    c->lo = -INFINITY;
    c->hi = INFINITY;
    return c;
}

/* One stored cell into what the analyst knows of it: a table asked again
 * (a repeat, a rewrite) is one table whose cells are known as well as
 * the best of its releases tells. */
static void
merge_cell(struct fcell *c, bool hidden, double lo, double hi, double truth)
{
    if (hidden) {
        c->primary = c->primary || (c->hidden && lo >= 1);
        c->truth = truth;
        return;
    }
    if (c->hidden) {
        c->hidden = c->primary = false;
        c->lo = lo;
        c->hi = hi;
        return;
    }
    c->lo = lo > c->lo ? lo : c->lo;
    c->hi = hi < c->hi ? hi : c->hi;
}

/* The family's earlier tables from the store, one per GROUP BY. */
static int
load_family(struct gw_released *s, struct family *f, const char *id)
{
    sqlite3_stmt *st = NULL;
    int rc = FQ_EIO, step;

    if (sqlite3_prepare_v2(s->db,
                           "SELECT t.dims, t.complete, c.key, c.lo, c.hi, "
                           "c.hidden, c.truth FROM released_tables t JOIN "
                           "released_cells c USING (family, dims) WHERE "
                           "t.family = ?1 ORDER BY t.rowid",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *dims = (const char *)sqlite3_column_text(st, 0);
        uint32_t v[MAX_DIMS] = {0};
        struct ftable *t;
        struct fcell *c;
        if ((rc = stored_table(f, dims ? dims : "", &t)) < 0 ||
            (rc = key_ids(f, t, sqlite3_column_blob(st, 2),
                          (size_t)sqlite3_column_bytes(st, 2), v)) < 0)
            goto out;
        if (!(c = stored_cell(f, t, v))) {
            rc = FQ_ENOMEM;
            goto out;
        }
        t->complete = t->complete || sqlite3_column_int(st, 1) != 0;
        merge_cell(c, sqlite3_column_int(st, 5) != 0,
                   sqlite3_column_double(st, 3), sqlite3_column_double(st, 4),
                   sqlite3_column_double(st, 6));
    }
    rc = step == SQLITE_DONE ? 0 : FQ_EIO;
out:
    sqlite3_finalize(st);
    return rc;
}

/* The group-by columns of the plan, sorted, and where each sits in the
 * plan (dims order -> group_by index). */
static size_t
sorted_dims(const Fedq__V1__Plan *plan, size_t *order)
{
    size_t n = plan->n_group_by;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) { /* insertion: a few columns */
        for (size_t j = i; j > 0 && strcmp(plan->group_by[order[j - 1]],
                                           plan->group_by[order[j]]) > 0;
             j--) {
            size_t x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    }
    return n;
}

/* The new table's column j as the family's last table. */
static int
add_live(struct family *f, const struct gw_release *r, size_t col)
{
    struct gw_table *t = r->table;
    size_t order[MAX_DIMS], n = sorted_dims(r->plan, order);
    struct ftable *ft = new_table(f);
    int rc;

    if (!ft)
        return FQ_ENOMEM;
    if (n > MAX_DIMS)
        return FQ_ETOOBIG;
    ft->complete = true; /* the pooled table, before any LIMIT */
    for (size_t d = 0; d < n; d++) {
        if ((rc = dim_index(f, r->plan->group_by[order[d]], &ft->dim[d])) < 0)
            return rc;
    }
    ft->n_dims = n;
    for (size_t i = 0; i < t->n_rows; i++) {
        struct gw_cell *g = &t->cells[i * t->n_cols + col];
        struct fcell *c = table_append(f, ft);
        if (!c)
            return FQ_ENOMEM;
        for (size_t d = 0; d < n; d++) {
            size_t len;
            uint8_t *b = pack_literal(r->groups[i]->key[order[d]], f->a, &len);
            if (!b)
                return FQ_ENOMEM;
            if ((rc = value_id(f, ft->dim[d], b, len, &c->v[d])) < 0)
                return rc;
        }
        c->live = g;
        c->row = i;
        c->hidden = g->reason != GW_REASON_NONE;
        /* a small group hides its cells, an empty bin among them */
        c->primary = g->reason == GW_REASON_PRIMARY && g->contributors > 0;
        c->lo = g->lo;
        c->hi = g->hi;
        c->truth = g->truth;
    }
    return 0;
}

/* ---- the finest cells ---------------------------------------------------- */

/* The family dims of t, as a bit set. */
static uint32_t
dim_mask(const struct ftable *t)
{
    uint32_t m = 0;
    for (size_t d = 0; d < t->n_dims; d++)
        m |= 1u << t->dim[d];
    return m;
}

/* Whether table t holds a cell of values (per family dim) v. */
static bool
table_has(const struct ftable *t, const uint32_t *v)
{
    for (size_t i = 0; i < t->n; i++) {
        bool same = true;
        for (size_t d = 0; same && d < t->n_dims; d++)
            same = t->cells[i].v[d] == v[t->dim[d]];
        if (same)
            return true;
    }
    return false;
}

/* The deepest family dim of t (its dims are all set at that depth). */
static size_t
table_depth(const struct ftable *t)
{
    size_t deepest = 0;
    for (size_t d = 0; d < t->n_dims; d++)
        deepest = t->dim[d] > deepest ? t->dim[d] : deepest;
    return deepest;
}

typedef int (*combo_fn)(struct family *f, const uint32_t *v, void *arg);

/* Every combination of the values of the dims in mask (in v, by family
 * dim) that each complete table within mask has a group for, to emit in
 * order: a combination some complete table has no group for is empty. */
static int
combinations(struct family *f, uint32_t mask, size_t d, uint32_t *v,
             combo_fn emit, void *arg)
{
    while (d < f->n_dims && !(mask >> d & 1))
        d++;
    if (d == f->n_dims)
        return emit(f, v, arg);
    for (uint32_t x = 0; x < f->vals[d].n; x++) {
        bool ok = true;
        v[d] = x;
        for (size_t u = 0; ok && u < f->n_tables; u++) {
            const struct ftable *o = &f->tables[u];
            if (o->complete && !o->latent && o->n_dims &&
                (dim_mask(o) & ~mask) == 0 && table_depth(o) == d)
                ok = table_has(o, v);
        }
        int rc = ok ? combinations(f, mask, d + 1, v, emit, arg) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A finest cell (combinations() over every dim). */
static int
add_combo(struct family *f, const uint32_t *v, void *arg)
{
    (void)arg;
    if (f->n_combos == f->max_combos)
        return FQ_ETOOBIG;
    memcpy(f->combos + f->n_combos++ * f->n_dims, v, f->n_dims * sizeof(*v));
    return 0;
}

/* Each cell's finest cells (the combinations projecting onto it). */
static int
attach_combos(struct family *f)
{
    for (size_t t = 0; t < f->n_tables; t++) {
        struct ftable *ft = &f->tables[t];
        for (size_t i = 0; i < ft->n; i++) {
            struct fcell *c = &ft->cells[i];
            if (!(c->combos =
                      fq_arena_alloc(f->a, (f->n_combos + 1) * sizeof(size_t))))
                return FQ_ENOMEM;
            for (size_t u = 0; u < f->n_combos; u++) {
                const uint32_t *v = f->combos + u * f->n_dims;
                bool under = true;
                for (size_t d = 0; under && d < ft->n_dims; d++)
                    under = c->v[d] == v[ft->dim[d]];
                if (under)
                    c->combos[c->n_combos++] = u;
            }
        }
    }
    return 0;
}

/* ---- margins, when the finest cells are too many ----------------------- */

/*
 * A family whose finest cross-classification is too large (town by birth
 * year, asked as two one-way tables) is related through its tables'
 * cells instead: one LP variable per table cell, and the tables agree on
 * the dims they share (the cells of one under each value of those dims
 * add up to the other's). When the tables' GROUP BYs form an acyclic
 * hypergraph (nested, a chain or a tree of shared dims), tables that
 * agree along a join tree have a finest table under them (locally
 * consistent margins of a decomposable model are globally consistent),
 * so the program allows the same cells as the finest one and the
 * intervals are the same. A cycle (a x b, b x c, a x c) is not so:
 * agreement admits margins no table has. It is closed by latent tables,
 * the cliques of a triangulation of the GROUP BYs (a x b x c here), all
 * of whose cells are unknown: the family with them is acyclic again, and
 * exact, at the cost of the cliques' cells instead of the finest cells.
 */

static size_t
popcount32(uint32_t m)
{
    size_t n = 0;
    for (; m; m &= m - 1)
        n++;
    return n;
}

/* A cell of latent table arg (combinations() over its dims): unknown. */
static int
add_latent_cell(struct family *f, const uint32_t *v, void *arg)
{
    struct ftable *t = arg;
    struct fcell *c;

    if (t->n == f->max_combos)
        return FQ_ETOOBIG;
    if (!(c = table_append(f, t)))
        return FQ_ENOMEM;
    for (size_t i = 0; i < t->n_dims; i++)
        c->v[i] = v[t->dim[i]];
    c->lo = f->nonneg ? 0 : -INFINITY;
    c->hi = INFINITY;
    return 0;
}

/* The maximal cliques of a triangulation of the complete tables' GROUP
 * BYs (greedy elimination, the dim whose clique has the fewest value
 * combinations first), in cliques[0..*n). */
static void
triangulate(const struct family *f, uint32_t *cliques, size_t *n)
{
    uint32_t adj[MAX_DIMS] = {0}, left = 0;

    *n = 0;
    for (size_t t = 0; t < f->n_tables; t++) {
        uint32_t m = dim_mask(&f->tables[t]);
        if (!f->tables[t].complete)
            continue;
        left |= m;
        for (size_t d = 0; d < f->n_dims; d++) {
            if (m >> d & 1)
                adj[d] |= m & ~(1u << d);
        }
    }
    while (left) {
        size_t best = 0;
        double weight = INFINITY;
        for (size_t d = 0; d < f->n_dims; d++) {
            double w = 1;
            if (!(left >> d & 1))
                continue;
            for (size_t e = 0; e < f->n_dims; e++) {
                if (((adj[d] & left) | 1u << d) >> e & 1)
                    w *= (double)f->vals[e].n;
            }
            if (w < weight) {
                weight = w;
                best = d;
            }
        }
        uint32_t nb = adj[best] & left, clique = nb | 1u << best;
        for (size_t e = 0; e < f->n_dims; e++) {
            if (nb >> e & 1)
                adj[e] |= nb & ~(1u << e); /* fill in */
        }
        left &= ~(1u << best);
        bool inside = false;
        for (size_t i = 0; !inside && i < *n; i++)
            inside = (clique & ~cliques[i]) == 0;
        if (!inside)
            cliques[(*n)++] = clique;
    }
}

/* Whether some complete table of f holds every dim of mask. */
static bool
covered(const struct family *f, uint32_t mask)
{
    for (size_t t = 0; t < f->n_tables; t++) {
        if (f->tables[t].complete && (mask & ~dim_mask(&f->tables[t])) == 0)
            return true;
    }
    return false;
}

/* Margins mode: a latent table per clique no table covers, before the new
 * table (which stays last). FQ_ETOOBIG when a clique has more than
 * f->max_combos cells. */
static int
add_latent_tables(struct family *f)
{
    uint32_t cliques[MAX_DIMS + 1], v[MAX_DIMS] = {0};
    size_t n;
    int rc;

    triangulate(f, cliques, &n);
    for (size_t i = 0; i < n; i++) {
        struct ftable *t, live;
        if (covered(f, cliques[i]))
            continue;
        if (!(t = new_table(f)))
            return FQ_ENOMEM;
        t->complete = t->latent = true;
        t->dims = "\x01latent"; /* no stored table's */
        for (size_t d = 0; d < f->n_dims; d++) {
            if (cliques[i] >> d & 1)
                t->dim[t->n_dims++] = d;
        }
        if ((rc = combinations(f, cliques[i], 0, v, add_latent_cell, t)) < 0)
            return rc;
        /* the new table last again */
        live = f->tables[f->n_tables - 2];
        f->tables[f->n_tables - 2] = *t;
        f->tables[f->n_tables - 1] = live;
    }
    return 0;
}

/* c's value (c of table t) in family dim d; UINT32_MAX if t has no d. */
static uint32_t
value_at(const struct ftable *t, const struct fcell *c, size_t d)
{
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dim[i] == d)
            return c->v[i];
    }
    return UINT32_MAX;
}

/* Whether cells a and b have the same values in the dims of mask. */
static bool
agree(const struct family *f, const struct fcell *a, const struct fcell *b,
      uint32_t mask)
{
    const struct ftable *ta = &f->tables[a->table];
    const struct ftable *tb = &f->tables[b->table];

    for (size_t d = 0; d < f->n_dims; d++) {
        if ((mask >> d & 1) && value_at(ta, a, d) != value_at(tb, b, d))
            return false;
    }
    return true;
}

/* One row of the margins program: sum coef * var (+ slack) = 0. */
struct mrow {
    size_t *vars;
    double *coef;
    size_t n;
    int slack; /* the coefficient of the row's own slack, 0 for none */
};

struct mrows {
    struct mrow *r;
    size_t n, cap, slacks;
};

static int
mrows_push(struct family *f, struct mrows *rows, const size_t *vars,
           const double *coef, size_t n, int slack)
{
    struct mrow *row;

    if (rows->n == GW_LP_MAX_ROWS)
        return FQ_ETOOBIG;
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 64;
        struct mrow *r = fq_arena_alloc(f->a, cap * sizeof(*r));
        if (!r)
            return FQ_ENOMEM;
        if (rows->n)
            memcpy(r, rows->r, rows->n * sizeof(*r));
        rows->r = r;
        rows->cap = cap;
    }
    row = &rows->r[rows->n];
    /* one more place for the slack */
    if (!(row->vars = fq_arena_alloc(f->a, (n + 1) * sizeof(*vars))) ||
        !(row->coef = fq_arena_alloc(f->a, (n + 1) * sizeof(*coef))))
        return FQ_ENOMEM;
    if (n) {
        memcpy(row->vars, vars, n * sizeof(*vars));
        memcpy(row->coef, coef, n * sizeof(*coef));
    }
    row->n = n;
    row->slack = slack;
    rows->slacks += slack != 0;
    rows->n++;
    return 0;
}

/* The cell at index i of tables t and u taken one after the other. */
static const struct fcell *
pair_cell(const struct ftable *t, const struct ftable *u, size_t i)
{
    return i < t->n ? &t->cells[i] : &u->cells[i - t->n];
}

/* The rows between tables t and u: per value of the dims they share, t's
 * cells under it minus u's. A table that is not complete (a LIMIT) has
 * groups that are not there: its side is at most the other's, by a
 * slack, and only for cells that cannot be negative; two such tables
 * tell nothing of each other. */
static int
pair_rows(struct family *f, size_t t, size_t u, struct mrows *rows)
{
    const struct ftable *tt = &f->tables[t], *tu = &f->tables[u];
    uint32_t shared = dim_mask(tt) & dim_mask(tu);
    size_t n = tt->n + tu->n, *vars;
    int slack = 0, rc = 0;
    double *coef;
    bool *done;

    if (!tt->complete || !tu->complete) {
        if ((!tt->complete && !tu->complete) || !f->nonneg)
            return 0;
        slack = tt->complete ? -1 : 1;
    }
    if (!(done = fq_arena_alloc(f->a, (n + 1) * sizeof(*done))) ||
        !(vars = fq_arena_alloc(f->a, (n + 1) * sizeof(*vars))) ||
        !(coef = fq_arena_alloc(f->a, (n + 1) * sizeof(*coef))))
        return FQ_ENOMEM;
    memset(done, 0, n * sizeof(*done));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct fcell *x = pair_cell(tt, tu, i);
        size_t m = 0;
        if (done[i])
            continue;
        for (size_t j = i; j < n; j++) {
            const struct fcell *y = pair_cell(tt, tu, j);
            if (done[j] || !agree(f, x, y, shared))
                continue;
            done[j] = true;
            vars[m] = y->var;
            coef[m++] = j < tt->n ? 1 : -1;
        }
        rc = mrows_push(f, rows, vars, coef, m, slack);
    }
    return rc;
}

/* ---- the program -----------------------------------------------------------
 */

/* What the analyst can tell of a suppressed cell from the rules alone. */
static void
hidden_bounds(const struct family *f, const struct ftable *t,
              const struct fcell *c, double *lo, double *hi)
{
    /* a count below k but not 0 (the primary rule on the cell's own
     * contributors), or a COUNT(*) of a group that is a row: one or more;
     * a sum: its sign */
    bool one = f->stat == GW_STAT_RECORDS &&
               (c->primary || (f->nonempty && t->n_dims > 0));
    *lo = f->nonneg ? (one ? 1 : 0) : -INFINITY;
    *hi = INFINITY;
}

/* Sums run to 10^8 and more, counts to 10^5 and more, where the
 * simplex's tolerances are too tight to hold: the program works in units
 * of the family's largest value (narrow() rounds counts back to whole
 * numbers in the caller's units). */
static void
choose_scale(struct family *f)
{
    f->scale = 1;
    for (size_t t = 0; t < f->n_tables; t++) {
        for (size_t i = 0; i < f->tables[t].n; i++) {
            const struct fcell *c = &f->tables[t].cells[i];
            double v[] = {c->lo, c->hi, c->truth};
            for (size_t j = 0; j < 3; j++) {
                if (isfinite(v[j]) && fabs(v[j]) < 1e300 &&
                    fabs(v[j]) > f->scale)
                    f->scale = fabs(v[j]);
            }
        }
    }
}

static int
set_scaled(const struct family *f, struct gw_lp *lp, size_t var, double lo,
           double hi)
{
    return gw_lp_set_bounds(lp, var, lo / f->scale, hi / f->scale);
}

/* Cell c of table t's bounds in the program. */
static int
bound_cell(const struct family *f, struct gw_lp *lp, const struct ftable *t,
           const struct fcell *c)
{
    double lo = c->lo, hi = c->hi;

    if (c->hidden)
        hidden_bounds(f, t, c, &lo, &hi);
    return set_scaled(f, lp, c->var, lo, hi);
}

/* Over the finest cells: each table cell is the sum of those under it. */
static int
build_finest_lp(struct family *f, struct gw_lp **ret)
{
    size_t cells = 0, var;
    struct gw_lp *lp;
    int rc;

    for (size_t t = 0; t < f->n_tables; t++)
        cells += f->tables[t].n;
    if ((rc = gw_lp_new(f->n_combos + cells, &lp)) < 0)
        return rc;
    for (size_t u = 0; u < f->n_combos; u++) {
        if ((rc = gw_lp_set_bounds(lp, u, f->nonneg ? 0 : -INFINITY,
                                   INFINITY)) < 0)
            goto fail;
    }
    var = f->n_combos;
    for (size_t t = 0; t < f->n_tables; t++) {
        for (size_t i = 0; i < f->tables[t].n; i++) {
            struct fcell *c = &f->tables[t].cells[i];
            size_t *vars =
                fq_arena_alloc(f->a, (c->n_combos + 2) * sizeof(size_t));
            double *coef =
                fq_arena_alloc(f->a, (c->n_combos + 2) * sizeof(double));
            if (!vars || !coef) {
                rc = FQ_ENOMEM;
                goto fail;
            }
            c->var = var++;
            for (size_t k = 0; k < c->n_combos; k++) {
                vars[k] = c->combos[k];
                coef[k] = 1;
            }
            vars[c->n_combos] = c->var;
            coef[c->n_combos] = -1;
            if ((rc = bound_cell(f, lp, &f->tables[t], c)) < 0 ||
                (rc = gw_lp_add_row(lp, vars, coef, c->n_combos + 1, 0)) < 0)
                goto fail;
        }
    }
    *ret = lp;
    return 0;
fail:
    gw_lp_free(lp);
    return rc;
}

/* The edges of a join tree of the family's complete tables: a spanning
 * tree of the most shared dims (Prim's), which for an acyclic family is
 * one (every table on the path between two holds the dims they share).
 * parent[t] is t's neighbour towards the root, or SIZE_MAX (the root, an
 * incomplete table). */
static int
join_tree(const struct family *f, size_t *parent)
{
    size_t n = f->n_tables, root = SIZE_MAX;
    bool *in = fq_arena_alloc(f->a, (n + 1) * sizeof(*in));
    long *best = fq_arena_alloc(f->a, (n + 1) * sizeof(*best));

    if (!in || !best)
        return FQ_ENOMEM;
    for (size_t t = 0; t < n; t++) {
        in[t] = !f->tables[t].complete;
        best[t] = -1;
        parent[t] = SIZE_MAX;
        if (!in[t] && root == SIZE_MAX)
            root = t;
    }
    for (size_t next = root; next != SIZE_MAX;) {
        size_t t = next;
        in[t] = true;
        next = SIZE_MAX;
        for (size_t u = 0; u < n; u++) {
            if (in[u])
                continue;
            long w = (long)popcount32(dim_mask(&f->tables[t]) &
                                      dim_mask(&f->tables[u]));
            if (w > best[u]) {
                best[u] = w;
                parent[u] = t;
            }
            if (next == SIZE_MAX || best[u] > best[next])
                next = u;
        }
    }
    return 0;
}

/* Over the tables' cells alone (margins mode): complete tables agree
 * along a join tree; a table that is not complete is held against every
 * complete one (a slack per row). */
static int
build_margins_lp(struct family *f, struct gw_lp **ret)
{
    struct mrows rows = {0};
    size_t cells = 0, slack, *parent;
    struct gw_lp *lp = NULL;
    int rc = 0;

    for (size_t t = 0; t < f->n_tables; t++) {
        for (size_t i = 0; i < f->tables[t].n; i++) {
            f->tables[t].cells[i].table = t;
            f->tables[t].cells[i].var = cells++;
        }
    }
    if (cells > GW_LP_MAX_VARS)
        return FQ_ETOOBIG;
    if (!(parent = fq_arena_alloc(f->a, (f->n_tables + 1) * sizeof(*parent))))
        return FQ_ENOMEM;
    if ((rc = join_tree(f, parent)) < 0)
        return rc;
    for (size_t t = 0; rc == 0 && t < f->n_tables; t++) {
        if (parent[t] != SIZE_MAX)
            rc = pair_rows(f, t, parent[t], &rows);
        for (size_t u = 0; rc == 0 && !f->tables[t].complete && u < f->n_tables;
             u++) {
            if (f->tables[u].complete)
                rc = pair_rows(f, t, u, &rows);
        }
    }
    if (rc < 0 || (rc = gw_lp_new(cells + rows.slacks, &lp)) < 0)
        return rc;
    for (size_t t = 0; rc == 0 && t < f->n_tables; t++) {
        for (size_t i = 0; rc == 0 && i < f->tables[t].n; i++)
            rc = bound_cell(f, lp, &f->tables[t], &f->tables[t].cells[i]);
    }
    slack = cells; /* slacks keep the [0, inf) of gw_lp_new */
    for (size_t k = 0; rc == 0 && k < rows.n; k++) {
        struct mrow *row = &rows.r[k];
        if (row->slack) {
            row->vars[row->n] = slack++;
            row->coef[row->n++] = row->slack;
        }
        rc = gw_lp_add_row(lp, row->vars, row->coef, row->n, 0);
    }
    if (rc < 0) {
        gw_lp_free(lp);
        return rc;
    }
    *ret = lp;
    return 0;
}

static int
build_lp(struct family *f, struct gw_lp **ret)
{
    return f->margins ? build_margins_lp(f, ret) : build_finest_lp(f, ret);
}

/* The width cell c's interval must have. */
static double
required(const struct family *f, const struct gw_rules *r,
         const struct fcell *c)
{
    if (f->stat == GW_STAT_SUM)
        return (double)r->protection_pct / 100.0 * fabs(c->truth);
    return (double)r->protection;
}

/* Cell c's interval in the caller's units, or a part of it wide
 * enough for c under rules r (two more for counts, which narrow()
 * rounds inward). */
static int
range_scaled(const struct family *f, struct gw_lp *lp, const struct gw_rules *r,
             const struct fcell *c, double *lo, double *hi)
{
    double need = required(f, r, c) + (f->stat == GW_STAT_SUM ? 0 : 2);
    int rc =
        gw_lp_range_within(lp, c->var, need > 0 ? need / f->scale : 1, lo, hi);
    if (rc == 0) {
        *lo *= f->scale;
        *hi *= f->scale;
    }
    return rc;
}

/* Whether [lo, hi], a suppressed cell's interval by the LP, is narrower
 * than required. A count is whole, so its interval is the whole numbers
 * within; LP results are good to ~1e-9, and the slack keeps an exact
 * boundary case on the protected side only when it is one. */
static bool
narrow(const struct family *f, const struct gw_rules *r, const struct fcell *c,
       double lo, double hi)
{
    if (f->stat != GW_STAT_SUM) {
        lo = ceil(lo - 1e-6);
        hi = floor(hi + 1e-6);
    }
    return hi - lo + 1e-6 < required(f, r, c);
}

/* The protection check's state; per cell (in table order): */
struct scan {
    struct gw_lp *lp;   /* the program */
    struct gw_lp *base; /* the same with the new table all hidden (lazy) */
    bool *wide;         /* found wide enough before: hiding a cell only widens
                         * the others' intervals, so not weighed again until
                         * protect()'s last pass */
    bool *stand;        /* narrow with the new table all hidden: earlier
                         * releases tell it (a stricter level than theirs), no
                         * suppression now can undo it */
    size_t total;
};

/* Whether narrow cell c stands with the new table all hidden. */
static int
standing(struct family *f, const struct gw_rules *r, struct scan *s,
         const struct fcell *c, bool *ret)
{
    struct ftable *live = &f->tables[f->n_tables - 1];
    double lo, hi;
    int rc = 0;

    if (!s->base) {
        bool *was = fq_arena_alloc(f->a, (live->n + 1) * sizeof(*was));
        if (!was)
            return FQ_ENOMEM;
        for (size_t i = 0; i < live->n; i++) {
            was[i] = live->cells[i].hidden;
            live->cells[i].hidden = true;
        }
        rc = build_lp(f, &s->base);
        for (size_t i = 0; i < live->n; i++)
            live->cells[i].hidden = was[i];
        if (rc < 0)
            return rc;
    }
    if ((rc = range_scaled(f, s->base, r, c, &lo, &hi)) < 0)
        return rc;
    *ret = narrow(f, r, c, lo, hi);
    return 0;
}

/* The first suppressed cell narrower than required that earlier releases
 * alone do not make so, or NULL. */
static struct fcell *
violation(struct family *f, const struct gw_rules *r, struct scan *s, int *rc)
{
    size_t idx = 0;

    for (size_t t = 0; t < f->n_tables; t++) {
        for (size_t i = 0; i < f->tables[t].n; i++, idx++) {
            struct fcell *c = &f->tables[t].cells[i];
            double lo, hi, need = required(f, r, c);
            bool stands;
            if (!c->hidden || need <= 0 || s->stand[idx] || s->wide[idx])
                continue;
            if ((*rc = range_scaled(f, s->lp, r, c, &lo, &hi)) < 0)
                return NULL;
            if (!narrow(f, r, c, lo, hi)) {
                s->wide[idx] = true;
                continue;
            }
            if ((*rc = standing(f, r, s, c, &stands)) < 0)
                return NULL;
            if (!stands)
                return c;
            s->stand[idx] = true;
            f->exposed += t == f->n_tables - 1;
        }
    }
    *rc = 0;
    return NULL;
}

/* Hides cell c of the new table in the program. */
static int
hide(struct family *f, struct gw_lp *lp, struct fcell *c)
{
    double lo, hi;

    gw_cell_suppress(c->live, GW_REASON_SECONDARY);
    c->hidden = true;
    c->primary = false;
    hidden_bounds(f, &f->tables[f->n_tables - 1], c, &lo, &hi);
    return set_scaled(f, lp, c->var, lo, hi);
}

/* Whether a and b have a finest cell in common (both lists ascend). */
static bool
share_combo(const struct fcell *a, const struct fcell *b)
{
    size_t i = 0, j = 0;

    while (i < a->n_combos && j < b->n_combos) {
        if (a->combos[i] == b->combos[j])
            return true;
        if (a->combos[i] < b->combos[j])
            i++;
        else
            j++;
    }
    return false;
}

/* Whether live cell c shares a margin with v: some cell of the family
 * lies over both. In margins mode, some table's dims on which v and c
 * agree wherever both have them (a cell of it there is taken to exist). */
static bool
related(const struct family *f, const struct fcell *v, const struct fcell *c)
{
    for (size_t t = 0; t < f->n_tables; t++) {
        const struct ftable *m = &f->tables[t];
        if (m->latent)
            continue;
        if (f->margins) {
            uint32_t both = dim_mask(m) & dim_mask(&f->tables[v->table]) &
                            dim_mask(&f->tables[c->table]);
            if (agree(f, v, c, both))
                return true;
            continue;
        }
        for (size_t i = 0; i < m->n; i++) {
            if (share_combo(&m->cells[i], v) && share_combo(&m->cells[i], c))
                return true;
        }
    }
    return false;
}

/* The smallest released cell of the new table related to v (any
 * released one if none is), or NULL. */
static struct fcell *
partner(struct family *f, const struct fcell *v)
{
    struct ftable *live = &f->tables[f->n_tables - 1];
    struct fcell *best = NULL;

    for (int pass = 0; pass < 2 && !best; pass++) {
        for (size_t i = 0; i < live->n; i++) {
            struct fcell *c = &live->cells[i];
            if (c->hidden || c == v || (pass == 0 && !related(f, v, c)))
                continue;
            if (!best || fabs(c->truth) < fabs(best->truth))
                best = c;
        }
    }
    return best;
}

/* Protects the family: hides cells of the new table until no suppressed
 * cell is narrower than required. */
static int
protect(struct family *f, const struct gw_rules *r, size_t *hidden)
{
    struct scan s = {0};
    bool again = true;
    int rc;

    for (size_t t = 0; t < f->n_tables; t++)
        s.total += f->tables[t].n;
    if (!(s.wide = fq_arena_alloc(f->a, (s.total + 1) * sizeof(bool))) ||
        !(s.stand = fq_arena_alloc(f->a, (s.total + 1) * sizeof(bool))))
        return FQ_ENOMEM;
    memset(s.stand, 0, s.total * sizeof(bool));
    if ((rc = build_lp(f, &s.lp)) < 0)
        return rc;
    while (again) {
        struct fcell *v, *c;
        memset(s.wide, 0, s.total * sizeof(bool));
        again = false;
        while ((v = violation(f, r, &s, &rc))) {
            if (!(c = partner(f, v))) {
                rc = FQ_EPRECOND;
                break;
            }
            if ((rc = hide(f, s.lp, c)) < 0)
                break;
            (*hidden)++;
            again = true; /* a last pass over them all */
        }
        if (rc < 0)
            break;
    }
    gw_lp_free(s.lp);
    gw_lp_free(s.base);
    return rc;
}

/* ---- one table -------------------------------------------------------------
 */

/* Whether the family's program relates anything: two tables at least,
 * and a suppressed cell. */
static bool
worth_solving(const struct family *f)
{
    if (f->n_tables < 2)
        return false;
    for (size_t t = 0; t < f->n_tables; t++) {
        for (size_t i = 0; i < f->tables[t].n; i++) {
            if (f->tables[t].cells[i].hidden)
                return true;
        }
    }
    return false;
}

static bool
column_nonneg(const struct gw_release *r, const struct gw_column *c)
{
    if (c->stat != GW_STAT_SUM)
        return true;
    const Fedq__V1__Column *col =
        fq_catalog_column(r->ds, r->plan->aggregates[c->agg]->column);
    return col && col->bounds && col->bounds->min >= 0;
}

/* Margins mode in the log: how the family was laid out (operators
 * weigh secondary_finest_cells by it). */
static void
log_margins(const struct family *f, const struct gw_release *r)
{
    size_t cells = 0, latent = 0;

    for (size_t t = 0; t < f->n_tables; t++) {
        cells += f->tables[t].n;
        latent += f->tables[t].latent ? f->tables[t].n : 0;
    }
    fq_log_info("query %s: secondary suppression over margins: %zu tables, "
                "%zu cells, %zu of them latent",
                r->query_id, f->n_tables, cells, latent);
}

/* What the analyst is told of failure rc on family f (id), and the log. */
static void
family_error(const struct family *f, const struct gw_release *r, const char *id,
             int rc, char *err, size_t errlen)
{
    if (rc == FQ_ETOOBIG) {
        char why[96];
        if (f->big_cycle)
            snprintf(why, sizeof(why),
                     "GROUP BYs that form a cycle over more than %zu "
                     "combinations",
                     f->max_combos);
        else
            snprintf(why, sizeof(why), "a program too large to solve");
        snprintf(err, errlen,
                 "the table cannot be checked against the tables released "
                 "before it with the same filter (%s): ask for fewer groups, "
                 "or another filter",
                 why);
    } else if (rc == FQ_EPRECOND)
        snprintf(err, errlen,
                 "the table's suppressed cells cannot be "
                 "protected against the tables released before");
    else if (rc == FQ_EINVAL) /* the truth is feasible: never seen */
        snprintf(err, errlen,
                 "secondary suppression failed: the released "
                 "tables of this family contradict each other");
    else if (rc < 0)
        snprintf(err, errlen, "secondary suppression failed: %s",
                 fq_strerror(rc));
    if (rc == FQ_EINVAL)
        fq_log_warnx("query %s: secondary suppression: %zu tables, %zu "
                     "finest cells%s, an infeasible program (family %s)",
                     r->query_id, f->n_tables, f->n_combos,
                     f->margins ? " (too many: over margins)" : "", id);
}

static int
one_family(struct gw_released *s, const struct gw_release *r, size_t col,
           struct fq_arena *a, size_t *hidden, char *err, size_t errlen)
{
    struct family f = {.a = a, .stat = r->cols[col].stat};
    uint32_t v[MAX_DIMS];
    char id[65];
    int rc;

    f.nonneg = column_nonneg(r, &r->cols[col]);
    f.nonempty = f.stat == GW_STAT_RECORDS && !r->cols[col].is_bin;
    if ((rc = family_id(r, &r->cols[col], a, id)) < 0)
        return rc;
    pthread_mutex_lock(&s->mu);
    rc = load_family(s, &f, id);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0 || (rc = add_live(&f, r, col)) < 0)
        goto out;
    if (!worth_solving(&f))
        goto out;
    f.max_combos = s->max_finest;
    if (!(f.combos = fq_arena_alloc(a, (f.max_combos + 1) * MAX_DIMS *
                                           sizeof(*f.combos)))) {
        rc = FQ_ENOMEM;
        goto out;
    }
    if ((rc = combinations(&f, (1u << f.n_dims) - 1, 0, v, add_combo, NULL)) ==
        FQ_ETOOBIG) {
        f.margins = true;
        f.big_cycle = (rc = add_latent_tables(&f)) == FQ_ETOOBIG;
    } else if (rc == 0) {
        rc = attach_combos(&f);
    }
    if (rc < 0)
        goto out;
    if (f.margins)
        log_margins(&f, r);
    choose_scale(&f);
    rc = protect(&f, r->rules, hidden);
    if (rc == 0 && f.exposed)
        fq_log_warnx("query %s: %zu suppressed cells are narrower than the "
                     "protection level given earlier releases alone",
                     r->query_id, f.exposed);
out:
    family_error(&f, r, id, rc, err, errlen);
    return rc;
}

/* Whether the rules ask suppressed cells of column c to be protected
 * (a protection level of 0 asks nothing). */
static bool
protected_stat(const struct gw_rules *r, const struct gw_column *c)
{
    return c->stat == GW_STAT_SUM ? r->protection_pct > 0 : r->protection > 0;
}

/* A mean beside a sum or count hidden for another cell's sake gives it
 * back (sum = mean x count): the row's means and spreads go too. */
static void
hide_derived(struct gw_table *t)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        struct gw_cell *row = &t->cells[i * t->n_cols];
        bool any = false;
        for (size_t j = 0; !any && j < t->n_cols; j++)
            any = row[j].reason == GW_REASON_SECONDARY;
        for (size_t j = 0; any && j < t->n_cols; j++) {
            if ((row[j].stat == GW_STAT_MEAN ||
                 row[j].stat == GW_STAT_SPREAD) &&
                row[j].reason == GW_REASON_NONE)
                gw_cell_suppress(&row[j], GW_REASON_SECONDARY);
        }
    }
}

int
gw_secondary(struct gw_released *s, const struct gw_release *r,
             struct fq_arena *a, size_t *ret_hidden, char *err, size_t errlen)
{
    size_t hidden = 0;

    if (r->plan->n_group_by > MAX_DIMS)
        return 0; /* never: the plan's cap is lower */
    for (size_t j = 0; j < r->table->n_cols; j++) {
        int rc;
        if (!additive(&r->cols[j]) || !protected_stat(r->rules, &r->cols[j]))
            continue;
        if ((rc = one_family(s, r, j, a, &hidden, err, errlen)) < 0)
            return rc;
    }
    if (hidden)
        hide_derived(r->table);
    *ret_hidden = hidden;
    return 0;
}

/* ---- recording -------------------------------------------------------------
 */

/* The group's key, in sorted-dims order, as stored. */
static uint8_t *
stored_key(const struct gw_release *r, size_t row, struct fq_arena *a,
           size_t *ret_len)
{
    size_t order[MAX_DIMS], n = sorted_dims(r->plan, order), len = 0;
    size_t lens[MAX_DIMS];
    uint8_t *parts[MAX_DIMS], *out;

    for (size_t d = 0; d < n; d++) {
        if (!(parts[d] =
                  pack_literal(r->groups[row]->key[order[d]], a, &lens[d])) ||
            lens[d] > VALUE_MAX)
            return NULL;
        len += 4 + lens[d];
    }
    if (!(out = fq_arena_alloc(a, len + 1)))
        return NULL;
    len = 0;
    for (size_t d = 0; d < n; d++) {
        for (int i = 0; i < 4; i++)
            out[len++] = (uint8_t)(lens[d] >> (8 * i));
        if (lens[d])
            memcpy(out + len, parts[d], lens[d]);
        len += lens[d];
    }
    *ret_len = len;
    return out;
}

static char *
dims_text(const struct gw_release *r, struct fq_arena *a)
{
    size_t order[MAX_DIMS], n = sorted_dims(r->plan, order);
    char *t = fq_arena_strdup(a, "");
    for (size_t d = 0; t && d < n; d++)
        t = fq_arena_printf(a, "%s%s%s", t, d ? "\x1f" : "",
                            r->plan->group_by[order[d]]);
    return t;
}

static int
insert_release(struct gw_released *s, const char *family, const char *dims,
               bool complete, const char *query)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = FQ_EIO;

    gw_utc_now(now);
    if (sqlite3_prepare_v2(
            s->db,
            "INSERT INTO released_tables (family, dims, complete) VALUES "
            "(?1, ?2, ?3) ON CONFLICT (family, dims) DO UPDATE SET complete "
            "= complete OR excluded.complete",
            -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, family, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, dims, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(st, 3, complete) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO releases (family, dims, query, "
                           "released) VALUES (?1, ?2, ?3, ?4)",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, family, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(st, 2, dims, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(st, 3, query, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

/* A cell into its table, merged as merge_cell does in memory. */
static const char upsert_cell[] =
    "INSERT INTO released_cells (family, dims, key, lo, hi, hidden, truth) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (family, dims, key) DO "
    "UPDATE SET "
    "lo = CASE WHEN hidden AND excluded.hidden THEN max(lo, excluded.lo) "
    "WHEN excluded.hidden THEN lo WHEN hidden THEN excluded.lo "
    "ELSE max(lo, excluded.lo) END, "
    "hi = CASE WHEN hidden AND excluded.hidden THEN min(hi, excluded.hi) "
    "WHEN excluded.hidden THEN hi WHEN hidden THEN excluded.hi "
    "ELSE min(hi, excluded.hi) END, "
    "truth = coalesce(excluded.truth, truth), "
    "hidden = hidden AND excluded.hidden";

static int
insert_cells(struct gw_released *s, const struct gw_release *r, size_t col,
             const char *family, const char *dims, const bool *rows,
             struct fq_arena *a)
{
    struct gw_table *t = r->table;
    sqlite3_stmt *st = NULL;
    int rc = FQ_EIO;

    if (sqlite3_prepare_v2(s->db, upsert_cell, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, family, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, dims, -1, SQLITE_STATIC) != SQLITE_OK)
        goto out;
    for (size_t i = 0; i < t->n_rows; i++) {
        const struct gw_cell *c = &t->cells[i * t->n_cols + col];
        size_t len;
        uint8_t *key;
        bool hidden = c->reason != GW_REASON_NONE;
        if (rows && !rows[i])
            continue;
        rc = FQ_ENOMEM;
        if (!(key = stored_key(r, i, a, &len)))
            goto out;
        rc = FQ_EIO;
        sqlite3_reset(st);
        if (sqlite3_bind_blob(st, 3, key, (int)len, SQLITE_STATIC) !=
                SQLITE_OK ||
            sqlite3_bind_double(st, 4, isfinite(c->lo) ? c->lo : -1e308) !=
                SQLITE_OK ||
            sqlite3_bind_double(st, 5, isfinite(c->hi) ? c->hi : 1e308) !=
                SQLITE_OK ||
            sqlite3_bind_int(st, 6, hidden) != SQLITE_OK ||
            (hidden && r->cols[col].stat == GW_STAT_SUM
                 ? sqlite3_bind_double(st, 7, c->truth)
                 : sqlite3_bind_null(st, 7)) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
            goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

int
gw_released_record(struct gw_released *s, const struct gw_release *r,
                   const bool *rows, struct fq_arena *a, char *err,
                   size_t errlen)
{
    char *dims = dims_text(r, a), id[65];
    int rc = dims ? 0 : FQ_ENOMEM;
    bool complete = true;

    for (size_t i = 0; rows && i < r->table->n_rows; i++)
        complete = complete && rows[i];

    pthread_mutex_lock(&s->mu);
    if (rc == 0 &&
        sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        rc = FQ_EIO;
    for (size_t j = 0; rc == 0 && j < r->table->n_cols; j++) {
        if (!additive(&r->cols[j]))
            continue;
        if ((rc = family_id(r, &r->cols[j], a, id)) == 0 &&
            (rc = insert_release(s, id, dims, complete, r->query_id)) == 0)
            rc = insert_cells(s, r, j, id, dims, rows, a);
    }
    if (rc == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = FQ_EIO;
    if (rc < 0) {
        snprintf(err, errlen, "cannot record the released cells: %s",
                 rc == FQ_EIO ? sqlite3_errmsg(s->db) : fq_strerror(rc));
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}
