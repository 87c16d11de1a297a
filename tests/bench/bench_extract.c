/*
 * The benchmark's dataset as the agent sees it: its configuration, its
 * catalog entry (what plans are checked against) and its columnar
 * extract, built and mapped by the agent's own code.
 */
#include "bench.h"

#include "fq/error.h"
#include "agent.h"
#include "extract.h"

#include <time.h>

int
bench_dataset_open(struct bench_dataset *b, const char *config,
                   const char *name, char *err, size_t errlen)
{
    int rc;

    *b = (struct bench_dataset){0};
    if ((rc = ag_config_load(config, &b->cfg, err, errlen)) < 0 ||
        (rc = ag_catalog_build(b->cfg, &b->cat, err, errlen)) < 0)
        return rc;
    for (size_t i = 0; i < b->cfg->n_datasets; i++) {
        if (strcmp(b->cfg->datasets[i].name, name) == 0)
            b->conf = &b->cfg->datasets[i];
    }
    const struct ag_source *src;
    b->ds = ag_catalog_find(b->cat, name, &src);
    if (!b->conf || !b->ds || !b->conf->source.sqlite) {
        snprintf(err, errlen, "%s: no dataset '%s' with a SQLite source",
                 config, name);
        return FQ_ENOENT;
    }
    return 0;
}

int
bench_dataset_build(struct bench_dataset *b, const char *path, char *err,
                    size_t errlen)
{
    struct ag_row_source src;
    char vintage[AG_VINTAGE_MAX];
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    strftime(vintage, sizeof(vintage), "%Y-%m-%dT%H:%M:%SZ",
             gmtime_r(&now, &tm));
    if ((rc = ag_source_sqlite_open(b->conf, &src, err, errlen)) < 0)
        return rc;
    rc = ag_extract_build(b->conf, &src, vintage, path, err, errlen);
    src.close(src.self);
    return rc;
}

int
bench_dataset_map(struct bench_dataset *b, const char *path, char *err,
                  size_t errlen)
{
    ag_extract_unref(b->x);
    b->x = NULL;
    return ag_extract_open(path, b->conf, &b->x, err, errlen);
}

void
bench_dataset_close(struct bench_dataset *b)
{
    ag_extract_unref(b->x);
    if (b->cat)
        ag_catalog_unref(b->cat);
    if (b->cfg)
        ag_config_free(b->cfg);
    *b = (struct bench_dataset){0};
}

const struct ag_xcol *
bench_xcol(const struct ag_extract *x, const char *name)
{
    for (size_t i = 0; i < x->n_cols; i++) {
        if (strcmp(x->cols[i].name, name) == 0)
            return &x->cols[i];
    }
    return NULL;
}

/* "1,2" into at most max thread counts (each 1..64); the count, or -1. */
static int
parse_threads(const char *s, int *out, int max)
{
    int n = 0;
    char *end;

    while (*s && n < max) {
        long t = strtol(s, &end, 10);
        if (end == s || t < 1 || t > 64 || (*end && *end != ','))
            return -1;
        out[n++] = (int)t;
        s = *end ? end + 1 : end;
    }
    return *s ? -1 : n;
}

int
bench_extract_args(int argc, char **argv, const char *cmd,
                   struct bench_extract_args *a)
{
    static const char *const names[] = {"config", "dataset", "extract",
                                        "threads", NULL};
    const char *vals[4] = {NULL, "enrollment", NULL, "1,2"};
    int rc;

    if ((rc = bench_parse_opts(argc, argv, &a->o, names, vals)) != 0)
        return rc;
    a->config = vals[0];
    a->dataset = vals[1];
    a->extract = vals[2];
    a->n_threads =
        parse_threads(vals[3], a->threads, (int)FQ_ARRAY_LEN(a->threads));
    if (!a->config || !a->extract || a->n_threads < 1) {
        fprintf(stderr,
                "fedq-bench %s: --config and --extract are "
                "required; --threads is a list like 1,2\n",
                cmd);
        return 2;
    }
    return 0;
}
