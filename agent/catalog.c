/*
 * The agent's catalog: each configured dataset is checked against its SQLite
 * source at load (the file opens read-only, the table and every configured
 * column exist), then the whole catalog is rendered once as the Describe
 * reply. Calls share the immutable result through a reference count, so a
 * reload can swap in a new catalog while old calls finish on the old one.
 *
 * The catalog never holds or returns data: only names, roles, types and the
 * published domains the agency wrote in its configuration.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "agent.h"

#include <stdatomic.h>

#include <sqlite3.h>

#include "fedq/v1/agent.pb-c.h"

#define CATALOG_MEMORY (32 * 1024 * 1024)

struct ag_catalog {
    atomic_int refs;
    const struct ag_config *cfg; /* built from */
    struct ag_config *owned;     /* freed with the catalog, or NULL */
    struct fq_arena *arena;
    Fedq__V1__DescribeResponse resp;
    struct ag_source *sources;           /* one per dataset, in resp's order */
    const struct ag_cell_secret *secret; /* the agent's; not owned */
};

static const Fedq__V1__ColumnRole role_map[] = {
    [AG_ROLE_IDENTIFIER] = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_IDENTIFIER,
    [AG_ROLE_DIMENSION] = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION,
    [AG_ROLE_MEASURE] = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_MEASURE,
    [AG_ROLE_DATE] = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DATE,
};

static const Fedq__V1__ValueType type_map[] = {
    [AG_TYPE_INTEGER] = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_INTEGER,
    [AG_TYPE_TEXT] = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT,
    [AG_TYPE_DATE] = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DATE,
    [AG_TYPE_MONTH] = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_MONTH,
    [AG_TYPE_QUARTER] = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_QUARTER,
    [AG_TYPE_DECIMAL] = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_DECIMAL,
};

/* ---- checking a source --------------------------------------------------- */

/* True if table has a column named col (names compared case-insensitively,
 * as SQLite does). */
static bool
source_has_column(sqlite3_stmt *info, const char *col)
{
    bool found = false;
    sqlite3_reset(info);
    while (sqlite3_step(info) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(info, 1);
        if (name && strcasecmp(name, col) == 0)
            found = true;
    }
    return found;
}

static int
source_check(const struct ag_config *cfg, const struct ag_dataset_conf *d,
             char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *info = NULL;
    char sql[128];
    int rc = FQ_EINVAL;

    if (sqlite3_open_v2(d->source.sqlite, &db, SQLITE_OPEN_READONLY, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL,
                     NULL) != SQLITE_OK) {
        snprintf(err, errlen,
                 "%s:%d: dataset '%s': cannot open SQLite file "
                 "'%s': %s",
                 cfg->doc.path, d->source.line, d->name, d->source.sqlite,
                 db ? sqlite3_errmsg(db) : "out of memory");
        rc = FQ_EIO;
        goto out;
    }
    /* The table name is a checked identifier (agent_config.c). */
    snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", d->source.table);
    if (sqlite3_prepare_v2(db, sql, -1, &info, NULL) != SQLITE_OK ||
        sqlite3_step(info) != SQLITE_ROW) {
        snprintf(err, errlen, "%s:%d: dataset '%s': no table '%s' in '%s'",
                 cfg->doc.path, d->source.line, d->name, d->source.table,
                 d->source.sqlite);
        goto out;
    }
    for (size_t i = 0; i < d->n_columns; i++) {
        if (!source_has_column(info, d->columns[i].name)) {
            snprintf(err, errlen,
                     "%s:%d: dataset '%s': table '%s' has no "
                     "column '%s'",
                     cfg->doc.path, d->columns[i].line, d->name,
                     d->source.table, d->columns[i].name);
            goto out;
        }
    }
    rc = 0;
out:
    sqlite3_finalize(info);
    sqlite3_close(db);
    return rc;
}

/* ---- rendering ----------------------------------------------------------- */

static const char *
or_empty(const char *s)
{
    return s ? s : "";
}

static Fedq__V1__Domain *
render_domain(struct fq_arena *a, const struct ag_domain *d)
{
    Fedq__V1__Domain *dom = fq_arena_alloc(a, sizeof(*dom));
    if (!dom)
        return NULL;
    fedq__v1__domain__init(dom);
    if (d->n_codes) {
        Fedq__V1__CodeList *cl = fq_arena_alloc(a, sizeof(*cl));
        if (!cl)
            return NULL;
        fedq__v1__code_list__init(cl);
        cl->n_codes = d->n_codes;
        cl->codes = d->codes; /* shared until render() copies it */
        dom->kind_case = FEDQ__V1__DOMAIN__KIND_CODES;
        dom->codes = cl;
    } else {
        Fedq__V1__IntRange *r = fq_arena_alloc(a, sizeof(*r));
        if (!r)
            return NULL;
        fedq__v1__int_range__init(r);
        r->min = d->min;
        r->max = d->max;
        dom->kind_case = FEDQ__V1__DOMAIN__KIND_RANGE;
        dom->range = r;
    }
    return dom;
}

static Fedq__V1__Column *
render_column(struct fq_arena *a, const struct ag_column_conf *c)
{
    Fedq__V1__Column *col = fq_arena_alloc(a, sizeof(*col));
    if (!col)
        return NULL;
    fedq__v1__column__init(col);
    col->name = c->name;
    col->role = role_map[c->role];
    col->type = type_map[c->type];
    col->description = (char *)or_empty(c->description);
    col->unit = (char *)or_empty(c->unit);
    if (c->role == AG_ROLE_DIMENSION &&
        !(col->domain = render_domain(a, &c->domain)))
        return NULL;
    if (c->role == AG_ROLE_MEASURE) {
        col->bounds = fq_arena_alloc(a, sizeof(*col->bounds));
        if (!col->bounds)
            return NULL;
        fedq__v1__int_range__init(col->bounds);
        col->bounds->min = c->bounds.min;
        col->bounds->max = c->bounds.max;
        col->quantile_bins = (uint32_t)c->quantile_bins;
        if (c->contributor_unit)
            col->contributor_unit = c->contributor_unit;
    }
    return col;
}

static Fedq__V1__Dataset *
render_dataset(struct fq_arena *a, const struct ag_config *cfg,
               const struct ag_dataset_conf *d)
{
    Fedq__V1__Dataset *ds = fq_arena_alloc(a, sizeof(*ds));
    if (!ds)
        return NULL;
    fedq__v1__dataset__init(ds);
    ds->agency = cfg->agency;
    ds->name = d->name;
    ds->description = (char *)or_empty(d->description);
    ds->n_columns = d->n_columns;
    ds->columns = fq_arena_alloc(a, d->n_columns * sizeof(*ds->columns));
    if (!ds->columns)
        return NULL;
    for (size_t i = 0; i < d->n_columns; i++) {
        if (!(ds->columns[i] = render_column(a, &d->columns[i])))
            return NULL;
    }
    return ds;
}

/* The executors' view of each dataset: pointers into the configuration
 * the catalog was built from, which outlives it. */
static int
copy_sources(struct ag_catalog *cat, const struct ag_config *cfg)
{
    struct fq_arena *a = cat->arena;

    cat->sources =
        fq_arena_alloc(a, (cfg->n_datasets + 1) * sizeof(*cat->sources));
    if (!cat->sources)
        return FQ_ENOMEM;
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        const struct ag_dataset_conf *d = &cfg->datasets[i];
        struct ag_source *src = &cat->sources[i];
        src->sqlite = d->source.sqlite;
        src->table = d->source.table;
        src->contributor = d->contributor;
        src->engine = d->engine;
        src->conf = d;
    }
    return 0;
}

/*
 * Renders into the catalog's arena. Strings are shared with the config, so
 * the catalog keeps the packed reply instead: it is unpacked again into its
 * own arena, which makes the catalog independent of the config's lifetime.
 */
static int
render(struct ag_catalog *cat, const struct ag_config *cfg)
{
    struct fq_arena *tmp = fq_arena_new(CATALOG_MEMORY);
    Fedq__V1__DescribeResponse r = FEDQ__V1__DESCRIBE_RESPONSE__INIT;
    int rc = FQ_ENOMEM;

    if (!tmp)
        return FQ_ENOMEM;
    r.agency = cfg->agency;
    r.agent_version = FQ_VERSION;
    r.n_datasets = cfg->n_datasets;
    r.datasets = fq_arena_alloc(tmp, (cfg->n_datasets + 1) * sizeof(void *));
    if (!r.datasets)
        goto out;
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        if (!(r.datasets[i] = render_dataset(tmp, cfg, &cfg->datasets[i])))
            goto out;
    }
    size_t len = fedq__v1__describe_response__get_packed_size(&r);
    uint8_t *buf = fq_arena_alloc(tmp, len + 1);
    if (!buf)
        goto out;
    fedq__v1__describe_response__pack(&r, buf);
    Fedq__V1__DescribeResponse *copy = fedq__v1__describe_response__unpack(
        fq_arena_pb_allocator(cat->arena), len, buf);
    if (!copy)
        goto out;
    cat->resp = *copy;
    rc = copy_sources(cat, cfg);
out:
    fq_arena_free(tmp);
    return rc;
}

int
ag_catalog_build(const struct ag_config *cfg, struct ag_catalog **ret,
                 char *err, size_t errlen)
{
    struct ag_catalog *cat = calloc(1, sizeof(*cat));
    int rc = FQ_ENOMEM;

    if (!cat || !(cat->arena = fq_arena_new(CATALOG_MEMORY)))
        goto fail;
    cat->cfg = cfg;
    for (size_t i = 0; i < cfg->n_datasets; i++) {
        /* CSV and PostgreSQL sources are checked by their readers. */
        if (cfg->datasets[i].source.sqlite &&
            (rc = source_check(cfg, &cfg->datasets[i], err, errlen)) < 0)
            goto fail;
    }
    if ((rc = render(cat, cfg)) < 0)
        goto fail;
    atomic_init(&cat->refs, 1);
    *ret = cat;
    return 0;
fail:
    if (rc == FQ_ENOMEM)
        snprintf(err, errlen, "%s: out of memory building the catalog",
                 cfg->doc.path);
    if (cat)
        fq_arena_free(cat->arena);
    free(cat);
    return rc;
}

void
ag_catalog_ref(struct ag_catalog *cat)
{
    atomic_fetch_add(&cat->refs, 1);
}

void
ag_catalog_unref(struct ag_catalog *cat)
{
    if (cat && atomic_fetch_sub(&cat->refs, 1) == 1) {
        fq_arena_free(cat->arena);
        ag_config_free(cat->owned);
        free(cat);
    }
}

void
ag_catalog_set_secret(struct ag_catalog *cat,
                      const struct ag_cell_secret *secret)
{
    cat->secret = secret;
}

const struct ag_cell_secret *
ag_catalog_secret(const struct ag_catalog *cat)
{
    return cat->secret;
}

const struct ag_config *
ag_catalog_config(const struct ag_catalog *cat)
{
    return cat->cfg;
}

void
ag_catalog_adopt_config(struct ag_catalog *cat, struct ag_config *cfg)
{
    cat->owned = cfg;
}

const void *
ag_catalog_find(const struct ag_catalog *cat, const char *name,
                const struct ag_source **ret_source)
{
    for (size_t i = 0; i < cat->resp.n_datasets; i++) {
        if (strcmp(cat->resp.datasets[i]->name, name) == 0) {
            *ret_source = &cat->sources[i];
            return cat->resp.datasets[i];
        }
    }
    return NULL;
}

const void *
ag_catalog_describe(const struct ag_catalog *cat)
{
    return &cat->resp;
}

size_t
ag_catalog_datasets(const struct ag_catalog *cat)
{
    return cat->resp.n_datasets;
}
