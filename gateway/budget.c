/*
 * The cell budget: a ledger of the distinct cells each analyst has had
 * released, so that a budget-capped number of tables can be asked of one
 * dataset, however the queries are split (privacy.md A.3: privacy is an
 * exhaustible resource; D item 14, budget bypass).
 *
 * A scope is (analyst, agency, dataset, that agency's data vintage; "live"
 * is one vintage). Its budget is the cell_budget of the agency's agreement
 * the query is made under. A pooled table charges every agency's scope, so
 * asking through an alias, or one agency at a time, costs the same.
 *
 * A cell is one released aggregate value (any status but SUPPRESSED),
 * named by SHA-256 over what determines it: the dataset, the pooled
 * agencies (sorted), the packed filter, the GROUP BY columns, the group's
 * key, the aggregate (its name and packed form) and the HISTOGRAM bin. The
 * same cell asked again costs nothing; a query that releases no new cell is
 * never refused. Only the rows returned (after ORDER BY and LIMIT) count:
 * the rest are not released.
 *
 * One SQLite file, state_dir/cell-budget.db (mode 0600, directory 0700),
 * like held.c. A charge checks and records every scope in one transaction
 * under the mutex, so two concurrent queries cannot both spend the last
 * cells; a refused query records nothing.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/daemon.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/plan.h"
#include "gateway.h"

#include <pthread.h>
#include <sqlite3.h>

#include <openssl/evp.h>

#include "fedq/v1/agent.pb-c.h"
#include "fedq/v1/gateway.pb-c.h"

#define BUDGET_FILE "cell-budget.db"
#define CELL_ID_LEN 32
#define VINTAGE_MAX 128 /* bytes of an agency's data vintage */
#define TEXT_MAX    4096
#define PACKED_MAX  (1024 * 1024) /* a packed filter, key or aggregate */
#define SCOPES_MAX  256           /* agencies pooled in one table */
#define ID_DOMAIN   "fedq cell v1"

struct gw_budget {
    pthread_mutex_t mu;
    sqlite3 *db;
};

static const char budget_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS scopes ("
    " id INTEGER PRIMARY KEY,"
    " analyst TEXT NOT NULL,"
    " agency TEXT NOT NULL,"
    " dataset TEXT NOT NULL,"
    " vintage TEXT NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0," /* rows of cells in this scope */
    " updated TEXT NOT NULL,"
    " UNIQUE (analyst, agency, dataset, vintage));"
    "CREATE TABLE IF NOT EXISTS cells ("
    " scope INTEGER NOT NULL REFERENCES scopes (id),"
    " cell BLOB NOT NULL,"     /* SHA-256 of what names the cell */
    " query TEXT NOT NULL,"    /* the query that first released it */
    " released TEXT NOT NULL," /* when */
    " UNIQUE (scope, cell));";

int
gw_budget_open(const struct gw_config *cfg, struct gw_budget **ret, char *err,
               size_t errlen)
{
    struct gw_budget *b = calloc(1, sizeof(*b));
    int rc;

    if (!b) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    pthread_mutex_init(&b->mu, NULL);
    if ((rc = gw_state_db_open(cfg, BUDGET_FILE, "cell budget ledger",
                               budget_schema, &b->db, err, errlen)) < 0) {
        gw_budget_close(b);
        return rc;
    }
    *ret = b;
    return 0;
}

void
gw_budget_close(struct gw_budget *b)
{
    if (!b)
        return;
    sqlite3_close(b->db);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- cell ids --------------------------------------------------------- */

/* A number as 8 little-endian bytes: counts and bins. */
static int
put_u64(EVP_MD_CTX *md, uint64_t v)
{
    unsigned char n[8];

    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)(v >> (8 * i));
    return EVP_DigestUpdate(md, n, sizeof(n)) == 1 ? 0 : FQ_EINTERNAL;
}

/* A length, then the bytes: no two field sequences hash alike. */
static int
put(EVP_MD_CTX *md, const void *data, size_t len)
{
    int rc = put_u64(md, len);

    if (rc == 0 && len > 0 && EVP_DigestUpdate(md, data, len) != 1)
        rc = FQ_EINTERNAL;
    return rc;
}

static int
put_str(EVP_MD_CTX *md, const char *s)
{
    size_t n = s ? strnlen(s, TEXT_MAX + 1) : 0;
    return n > TEXT_MAX ? FQ_ETOOBIG : put(md, s, n);
}

/* A message's packed bytes (NULL: none), through a buffer from a. */
static int
put_packed(EVP_MD_CTX *md, const ProtobufCMessage *m, struct fq_arena *a)
{
    size_t n = m ? protobuf_c_message_get_packed_size(m) : 0;
    uint8_t *buf;

    if (n > PACKED_MAX)
        return FQ_ETOOBIG;
    if (n == 0)
        return put(md, NULL, 0);
    if (!(buf = fq_arena_alloc(a, n)))
        return FQ_ENOMEM;
    protobuf_c_message_pack(m, buf);
    return put(md, buf, n);
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What every cell of the table shares: the dataset, the pooled agencies
 * sorted, the filter and the GROUP BY columns. */
static int
hash_table(EVP_MD_CTX *md, const struct gw_budget_table *t, struct fq_arena *a)
{
    const Fedq__V1__Plan *p = t->plan;
    const char **names = fq_arena_alloc(a, (t->n_scopes + 1) * sizeof(char *));
    int rc = FQ_EINTERNAL;

    if (!names)
        return FQ_ENOMEM;
    for (size_t i = 0; i < t->n_scopes; i++)
        names[i] = t->scopes[i].agency;
    qsort(names, t->n_scopes, sizeof(*names), str_cmp);
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        (rc = put_str(md, ID_DOMAIN)) < 0 ||
        (rc = put_str(md, p->dataset)) < 0 ||
        (rc = put_u64(md, t->n_scopes)) < 0)
        return rc;
    for (size_t i = 0; i < t->n_scopes; i++) {
        if ((rc = put_str(md, names[i])) < 0)
            return rc;
    }
    if ((rc = put_packed(md, p->filter ? &p->filter->base : NULL, a)) < 0 ||
        (rc = put_u64(md, p->n_group_by)) < 0)
        return rc;
    for (size_t i = 0; i < p->n_group_by; i++) {
        if ((rc = put_str(md, p->group_by[i])) < 0)
            return rc;
    }
    return 0;
}

static int
hash_key(EVP_MD_CTX *md, const Fedq__V1__PartialGroup *g, struct fq_arena *a)
{
    int rc = put_u64(md, g->n_key);

    for (size_t i = 0; rc == 0 && i < g->n_key; i++)
        rc = put_packed(md, g->key[i] ? &g->key[i]->base : NULL, a);
    return rc;
}

static int
hash_cell(EVP_MD_CTX *md, const Fedq__V1__Aggregate *ag, size_t bin,
          struct fq_arena *a, unsigned char out[CELL_ID_LEN])
{
    unsigned int n = 0;
    int rc;

    if ((rc = put_str(md, fq_plan_aggregate_name(ag, a))) < 0 ||
        (rc = put_packed(md, &ag->base, a)) < 0 || (rc = put_u64(md, bin)) < 0)
        return rc;
    return EVP_DigestFinal_ex(md, out, &n) == 1 && n == CELL_ID_LEN
               ? 0
               : FQ_EINTERNAL;
}

/* The plan aggregate and bin of each result column; -1 for a key. */
struct layout {
    ssize_t *agg;
    size_t *bin;
};

static int
lay_out(const struct gw_budget_table *t, struct fq_arena *a, struct layout *l)
{
    size_t k = 0;

    l->agg = fq_arena_alloc(a, (t->n_columns + 1) * sizeof(*l->agg));
    l->bin = fq_arena_alloc(a, (t->n_columns + 1) * sizeof(*l->bin));
    if (!l->agg || !l->bin)
        return FQ_ENOMEM;
    for (size_t c = 0; c < t->n_columns;) {
        if (!t->columns[c]->aggregate) {
            l->agg[c++] = -1;
            continue;
        }
        if (k >= t->plan->n_aggregates)
            return FQ_EINTERNAL;
        const Fedq__V1__Aggregate *ag = t->plan->aggregates[k];
        size_t width =
            ag->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM
                ? ag->n_edges + 1
                : 1;
        for (size_t b = 0; b < width; b++, c++) {
            if (c >= t->n_columns)
                return FQ_EINTERNAL;
            l->agg[c] = (ssize_t)k;
            l->bin[c] = b;
        }
        k++;
    }
    return 0;
}

struct row_ref {
    uintptr_t row;
    size_t group;
};

static int
row_ref_cmp(const void *a, const void *b)
{
    const struct row_ref *x = a, *y = b;
    return (x->row > y->row) - (x->row < y->row);
}

/* rows[i]'s group, found through all_rows (built from groups, in order). */
static const Fedq__V1__PartialGroup *
row_group(const struct gw_budget_table *t, const struct row_ref *refs,
          const Fedq__V1__Row *row)
{
    struct row_ref want = {.row = (uintptr_t)row};
    const struct row_ref *r =
        bsearch(&want, refs, t->n_groups, sizeof(*refs), row_ref_cmp);
    return r ? t->groups[r->group] : NULL;
}

static int
id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CELL_ID_LEN);
}

int
gw_budget_cells(const struct gw_budget_table *t, struct fq_arena *a,
                unsigned char **ret, size_t *ret_n)
{
    EVP_MD_CTX *base = EVP_MD_CTX_new(), *row = EVP_MD_CTX_new(),
               *cell = EVP_MD_CTX_new();
    struct row_ref *refs = fq_arena_alloc(a, (t->n_groups + 1) * sizeof(*refs));
    struct layout l;
    unsigned char *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = FQ_ENOMEM;

    if (!base || !row || !cell || !refs || (rc = lay_out(t, a, &l)) < 0)
        goto out;
    for (size_t i = 0; i < t->n_groups; i++)
        refs[i] = (struct row_ref){(uintptr_t)t->all_rows[i], i};
    qsort(refs, t->n_groups, sizeof(*refs), row_ref_cmp);
    for (size_t c = 0; c < t->n_columns; c++)
        cap += l.agg[c] >= 0;
    rc = FQ_ETOOBIG;
    if (cap && t->n_rows > GW_BUDGET_MAX_CELLS / cap)
        goto out;
    rc = FQ_ENOMEM;
    if (!(ids = fq_arena_alloc(a, (cap * t->n_rows + 1) * CELL_ID_LEN)))
        goto out;
    if ((rc = hash_table(base, t, a)) < 0)
        goto out;
    for (size_t i = 0; i < t->n_rows; i++) {
        const Fedq__V1__Row *r = t->rows[i];
        const Fedq__V1__PartialGroup *g = row_group(t, refs, r);
        rc = FQ_EINTERNAL;
        if (!g || r->n_cells != t->n_columns ||
            EVP_MD_CTX_copy_ex(row, base) != 1 ||
            (rc = hash_key(row, g, a)) < 0)
            goto out;
        for (size_t c = 0; c < t->n_columns; c++) {
            if (l.agg[c] < 0 ||
                r->cells[c]->status ==
                    FEDQ__V1__CELL_STATUS__CELL_STATUS_SUPPRESSED)
                continue;
            rc = FQ_EINTERNAL;
            if (EVP_MD_CTX_copy_ex(cell, row) != 1 ||
                (rc = hash_cell(cell, t->plan->aggregates[l.agg[c]], l.bin[c],
                                a, ids + n * CELL_ID_LEN)) < 0)
                goto out;
            n++;
        }
    }
    /* The same cell twice in one table (COUNT(*) selected twice) is one. */
    qsort(ids, n, CELL_ID_LEN, id_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || memcmp(ids + (u - 1) * CELL_ID_LEN, ids + i * CELL_ID_LEN,
                             CELL_ID_LEN) != 0)
            memmove(ids + u++ * CELL_ID_LEN, ids + i * CELL_ID_LEN,
                    CELL_ID_LEN);
    }
    *ret = ids;
    *ret_n = u;
    rc = 0;
out:
    EVP_MD_CTX_free(base);
    EVP_MD_CTX_free(row);
    EVP_MD_CTX_free(cell);
    return rc;
}

/* ---- the ledger --------------------------------------------------------- */

/* The scope's row id and its cells used so far (created at 0). */
static int
scope_get(struct gw_budget *b, const struct gw_budget_table *t,
          const struct gw_budget_scope *s, const char *now, int64_t *ret_id,
          int64_t *ret_used)
{
    sqlite3_stmt *st = NULL;
    int rc = FQ_EIO;

    if (sqlite3_prepare_v2(b->db,
                           "INSERT INTO scopes (analyst, agency, dataset, "
                           "vintage, updated) VALUES (?1, ?2, ?3, ?4, ?5) ON "
                           "CONFLICT DO NOTHING",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, t->analyst, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, s->agency, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, t->plan->dataset, -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_text(st, 4, s->vintage, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
        goto out;
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(b->db,
                           "SELECT id, used FROM scopes WHERE analyst = ?1 "
                           "AND agency = ?2 AND dataset = ?3 AND vintage = ?4",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_text(st, 1, t->analyst, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 2, s->agency, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, t->plan->dataset, -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_text(st, 4, s->vintage, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto out;
    *ret_id = sqlite3_column_int64(st, 0);
    *ret_used = sqlite3_column_int64(st, 1);
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

/* Records ids in scope id; *ret_new: how many were not there yet. */
static int
scope_add(struct gw_budget *b, int64_t id, const struct gw_budget_table *t,
          const unsigned char *ids, size_t n, const char *now, int64_t *ret_new)
{
    sqlite3_stmt *st = NULL;
    int64_t added = 0;
    int rc = FQ_EIO;

    if (sqlite3_prepare_v2(b->db,
                           "INSERT INTO cells (scope, cell, query, released) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
        sqlite3_bind_text(st, 3, t->query_id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC) != SQLITE_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (sqlite3_bind_blob(st, 2, ids + i * CELL_ID_LEN, CELL_ID_LEN,
                              SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
            goto out;
        added += sqlite3_changes(b->db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (added &&
        (sqlite3_prepare_v2(b->db,
                            "UPDATE scopes SET used = used + ?2, updated = ?3 "
                            "WHERE id = ?1",
                            -1, &st, NULL) != SQLITE_OK ||
         sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
         sqlite3_bind_int64(st, 2, added) != SQLITE_OK ||
         sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC) != SQLITE_OK ||
         sqlite3_step(st) != SQLITE_DONE))
        goto out;
    *ret_new = added;
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

static bool
table_valid(const struct gw_budget_table *t, char *err, size_t errlen)
{
    if (t->n_scopes == 0 || t->n_scopes > SCOPES_MAX) {
        snprintf(err, errlen, "a table of %zu agencies cannot be charged",
                 t->n_scopes);
        return false;
    }
    for (size_t i = 0; i < t->n_scopes; i++) {
        const char *v = t->scopes[i].vintage;
        if (!v || strnlen(v, VINTAGE_MAX + 1) > VINTAGE_MAX) {
            snprintf(err, errlen,
                     "agency %s answered with a data vintage over %d bytes",
                     t->scopes[i].agency, VINTAGE_MAX);
            return false;
        }
    }
    return true;
}

int
gw_budget_charge(struct gw_budget *b, const struct gw_budget_table *t,
                 struct fq_arena *a, char *err, size_t errlen)
{
    int64_t *used = fq_arena_alloc(a, (t->n_scopes + 1) * sizeof(int64_t));
    int64_t *added = fq_arena_alloc(a, (t->n_scopes + 1) * sizeof(int64_t));
    unsigned char *ids = NULL;
    size_t n = 0;
    char now[32];
    bool begun = false;
    int rc;

    if (!table_valid(t, err, errlen))
        return FQ_EPROTO;
    if (!used || !added ||
        (rc = gw_budget_cells(t, a, &ids, &n)) == FQ_ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    if (rc == FQ_ETOOBIG) {
        snprintf(err, errlen,
                 "the table would release more than %d cells: too many for "
                 "the cell budget to account; ask for fewer groups",
                 GW_BUDGET_MAX_CELLS);
        return FQ_ETOOBIG;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot name the table's cells: %s",
                 fq_strerror(rc));
        return rc;
    }
    gw_utc_now(now);
    pthread_mutex_lock(&b->mu);
    rc = FQ_EIO;
    if (sqlite3_exec(b->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    begun = true;
    for (size_t i = 0; i < t->n_scopes; i++) {
        int64_t id;
        if (scope_get(b, t, &t->scopes[i], now, &id, &used[i]) < 0 ||
            scope_add(b, id, t, ids, n, now, &added[i]) < 0)
            goto fail;
    }
    /* Inserted to count what is new; undone if any scope is over. */
    for (size_t i = 0; i < t->n_scopes; i++) {
        const struct gw_budget_scope *s = &t->scopes[i];
        if (added[i] == 0 || used[i] + added[i] <= s->budget)
            continue;
        sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
        pthread_mutex_unlock(&b->mu);
        snprintf(err, errlen,
                 "agency %s: the cell budget of agreement %s for dataset %s "
                 "(data of %s) is spent: %" PRId64 " of %" PRId64
                 " cells released to you; this query would release %" PRId64
                 " more",
                 s->agency, s->agreement, t->plan->dataset, s->vintage, used[i],
                 s->budget, added[i]);
        fq_log_info("query %s by %s refused: cell budget of %s for %s (data "
                    "of %s): %" PRId64 " of %" PRId64 " used, %" PRId64
                    " more asked",
                    t->query_id, t->analyst, s->agency, t->plan->dataset,
                    s->vintage, used[i], s->budget, added[i]);
        return FQ_ETOOBIG;
    }
    if (sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    pthread_mutex_unlock(&b->mu);
    for (size_t i = 0; i < t->n_scopes; i++)
        fq_log_info("query %s: cell budget of %s for %s (data of %s): %zu "
                    "cells released, %" PRId64 " new, %" PRId64 " of %" PRId64
                    " used",
                    t->query_id, t->scopes[i].agency, t->plan->dataset,
                    t->scopes[i].vintage, n, added[i], used[i] + added[i],
                    t->scopes[i].budget);
    return 0;
fail:
    snprintf(err, errlen, "cannot charge the cell budget: %s",
             sqlite3_errmsg(b->db));
    if (begun)
        sqlite3_exec(b->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&b->mu);
    return rc;
}
