/*
 * fedq-bench: the side-by-side benchmark of issue 5 (tests/bench/run.sh
 * drives it; never a timed test). One program, one subcommand per engine,
 * each timing the same three queries over the same data the same way:
 * one untimed warm-up run, whose result is kept for the cross-check, then
 * N timed runs, clock_gettime(CLOCK_MONOTONIC) around each.
 *
 * Output (stdout, tab-separated, read by report.py):
 *   time  ENGINE LABEL QUERY THREADS RUNS MEDIAN_MS MIN_MS MAX_MS
 *   check ENGINE LABEL QUERY GROUPS RECORDS SUM SUPPRESSED
 *   info  KEY LABEL VALUE...
 * and, with --results DIR, one file per (engine, label, query) holding
 * the warm-up run's groups ("key<TAB>records<TAB>sum" lines, unsorted),
 * which run.sh compares across engines.
 */
#ifndef FQ_BENCH_H
#define FQ_BENCH_H

#include "fq/compat.h"

#define BENCH_MAX_RUNS 10000
#define BENCH_KEY_MAX  256 /* bytes of a group key "T001|SNAP|3" */
#define BENCH_MAX_COLS 6   /* columns one query reads */

/* One benchmark query, written once per language. */
struct bench_query {
    const char *id;   /* "a", "b", "c" */
    const char *fedq; /* fedq SQL; %s is the source (agency or alias) */
    const char *sql;  /* SQLite and PostgreSQL; %s is the table */
    size_t n_keys;    /* leading key columns of the SQL result */
    bool has_sum;     /* a SUM(benefit) column follows COUNT(*) */
    const char *cols[BENCH_MAX_COLS]; /* columns read, NULL-terminated */
};

extern const struct bench_query bench_queries[];
extern const size_t bench_n_queries;

/* Options every subcommand takes. */
struct bench_opts {
    const char *label;   /* names the data set: "1M", "10M", "4x1M" */
    int runs;            /* timed runs after the warm-up */
    const char *results; /* directory for result files, or NULL */
    const char *only;    /* run only these queries ("ab"), or NULL: all */
};

/* The groups of one run, for the cross-check. */
struct bench_result {
    FILE *f; /* NULL: only the totals are kept */
    size_t groups;
    int64_t records;
    int64_t sum;
    size_t suppressed; /* gateway: cells released without a value */
};

void bench_result_add(struct bench_result *r, const char *key, int64_t records,
                      int64_t sum);

/* Appends key part idx ("|" before all but the first) to key (cap bytes,
 * *len used): text, or the integer iv when text is NULL and is_int, or
 * "NULL". */
void bench_key_part(char *key, size_t cap, size_t *len, size_t idx,
                    const char *text, bool is_int, int64_t iv);

struct Fedq__V1__ExecuteResponse;
/* The groups of an agent's answer (engine in process, or over RPC). */
void bench_collect_partials(const struct Fedq__V1__ExecuteResponse *resp,
                            const struct bench_query *q,
                            struct bench_result *res);

/*
 * One run of query q. res is the warm-up's collector (groups to keep) or
 * NULL for a timed run, which must only do the work. 0 or FQ_E* with a
 * message in err.
 */
typedef int (*bench_run_fn)(void *ctx, const struct bench_query *q,
                            struct bench_result *res, char *err, size_t errlen);

/*
 * The warm-up (results kept, "check" line) and o->runs timed runs
 * ("time" line) of run for query q, under the name engine at threads
 * threads. 0 or the first failure (with a message on stderr).
 */
int bench_measure(const struct bench_opts *o, const char *engine, int threads,
                  const struct bench_query *q, bench_run_fn run, void *ctx);

/* One configuration of a set measured together. */
struct bench_config {
    char engine[32]; /* its name in the output: "engine-2t" */
    int threads;
    void *ctx; /* for run */
};

/*
 * bench_measure for n configurations at once: each one's warm-up, then the
 * timed runs interleaved (run i of every configuration before run i + 1
 * of any), so that load from outside that comes and goes falls on all of
 * them alike and their ratios (1 against 2 threads) stay fair.
 */
int bench_measure_set(const struct bench_opts *o,
                      const struct bench_config *cfg, size_t n,
                      const struct bench_query *q, bench_run_fn run);

/* A query template (bench_query.fedq or .sql) with its one "%s" replaced
 * by name, into out. 0 or FQ_ETOOBIG. */
int bench_query_text(const char *tmpl, const char *name, char *out,
                     size_t outlen);

/* Whether o selects query q. */
bool bench_selected(const struct bench_opts *o, const struct bench_query *q);

double bench_now_ms(void);

/* ---- the extract of the benchmark's dataset (bench_extract.c) ---------- */

struct ag_config;
struct ag_catalog;
struct ag_dataset_conf;
struct ag_extract;
struct ag_xcol;
struct Fedq__V1__Dataset;

/* A dataset of an agent configuration, its catalog entry and extract. */
struct bench_dataset {
    struct ag_config *cfg;
    struct ag_catalog *cat;
    const struct ag_dataset_conf *conf;
    const struct Fedq__V1__Dataset *ds; /* the catalog entry */
    struct ag_extract *x;               /* once mapped */
};

/* Loads config and finds dataset name in it and its catalog. 0 or FQ_E*
 * with a message; bench_dataset_close frees (also after a failure). */
int bench_dataset_open(struct bench_dataset *b, const char *config,
                       const char *name, char *err, size_t errlen);
/* Builds the extract at path from the dataset's SQLite source. */
int bench_dataset_build(struct bench_dataset *b, const char *path, char *err,
                        size_t errlen);
/* Maps the extract at path into b->x. */
int bench_dataset_map(struct bench_dataset *b, const char *path, char *err,
                      size_t errlen);
void bench_dataset_close(struct bench_dataset *b);

/* The column of x named name, or NULL. */
const struct ag_xcol *bench_xcol(const struct ag_extract *x, const char *name);

/* The options of the commands on an extract: --config AGENT.yaml
 * [--dataset D] --extract FILE [--threads 1,2], and the common ones. */
struct bench_extract_args {
    struct bench_opts o;
    const char *config, *dataset, *extract;
    int threads[8];
    int n_threads;
};
/* 0, or 2 after a usage message naming cmd. */
int bench_extract_args(int argc, char **argv, const char *cmd,
                       struct bench_extract_args *a);

/* The subcommands; argv[0] is the subcommand's name. Exit codes. */
int bench_cmd_engine(int argc, char **argv);
int bench_cmd_cloop(int argc, char **argv);
int bench_cmd_sqlite(int argc, char **argv);
int bench_cmd_pg(int argc, char **argv);
int bench_cmd_gateway(int argc, char **argv);
int bench_cmd_agent(int argc, char **argv);
/* The differencing ledger's cost (bench_ledger.c). */
int bench_cmd_ledger(int argc, char **argv);

/*
 * Option parsing shared by the subcommands: the common options (--label,
 * --runs, --results, --only) into o, the others through extra
 * ("name=value" pairs matched by name, NULL-terminated list of names;
 * values stored in vals). Returns 0 or 2 (usage, with a message).
 */
int bench_parse_opts(int argc, char **argv, struct bench_opts *o,
                     const char *const *extra, const char **vals);

#endif
