/*
 * fedq-bench: the queries, the measuring loop and the subcommand
 * dispatch (bench.h says what is printed).
 */
#include "bench.h"

#include "fq/error.h"

#include <stdarg.h>
#include <time.h>

/*
 * The three queries of issue 5 over the social-services enrollment:
 * (a) a filtered COUNT; (b) GROUP BY town (169 values) with SUM over a
 * birth-year range; (c) GROUP BY three dimensions (169 towns x 3
 * programs x 9 household sizes: up to 4,563 groups) over a month range.
 */
const struct bench_query bench_queries[] = {
    {"a",
     "SELECT COUNT(*) FROM %s.enrollment WHERE program = 'SNAP'",
     "SELECT COUNT(*) FROM %s WHERE program = 'SNAP'",
     0,
     false,
     {"program", NULL}},
    {"b",
     "SELECT town, COUNT(*), SUM(benefit) FROM %s.enrollment "
     "WHERE birth_year BETWEEN 1960 AND 1990 GROUP BY town",
     "SELECT town, COUNT(*), SUM(benefit) FROM %s "
     "WHERE birth_year BETWEEN 1960 AND 1990 GROUP BY town",
     1,
     true,
     {"birth_year", "town", "benefit", NULL}},
    {"c",
     "SELECT town, program, household_size, COUNT(*), SUM(benefit) "
     "FROM %s.enrollment WHERE month >= '2024-01' "
     "GROUP BY town, program, household_size",
     "SELECT town, program, household_size, COUNT(*), SUM(benefit) "
     "FROM %s WHERE month >= '2024-01' "
     "GROUP BY town, program, household_size",
     3,
     true,
     {"month", "town", "program", "household_size", "benefit", NULL}},
};
const size_t bench_n_queries = FQ_ARRAY_LEN(bench_queries);

double
bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int
bench_query_text(const char *tmpl, const char *name, char *out, size_t outlen)
{
    const char *at = strstr(tmpl, "%s");
    if (!at || snprintf(out, outlen, "%.*s%s%s", (int)(at - tmpl), tmpl, name,
                        at + 2) >= (int)outlen)
        return FQ_ETOOBIG;
    return 0;
}

bool
bench_selected(const struct bench_opts *o, const struct bench_query *q)
{
    return !o->only || strchr(o->only, q->id[0]);
}

void
bench_result_add(struct bench_result *r, const char *key, int64_t records,
                 int64_t sum)
{
    r->groups++;
    r->records += records;
    r->sum += sum;
    if (r->f)
        fprintf(r->f, "%s\t%" PRId64 "\t%" PRId64 "\n", key, records, sum);
}

void
bench_key_part(char *key, size_t cap, size_t *len, size_t idx, const char *text,
               bool is_int, int64_t iv)
{
    const char *sep = idx ? "|" : "";
    if (*len >= cap)
        return;
    if (text || !is_int)
        *len += (size_t)snprintf(key + *len, cap - *len, "%s%s", sep,
                                 text ? text : "NULL");
    else
        *len += (size_t)snprintf(key + *len, cap - *len, "%s%" PRId64, sep, iv);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The warm-up run, its groups written to the results directory. */
static int
warm_up(const struct bench_opts *o, const char *engine,
        const struct bench_query *q, bench_run_fn run, void *ctx)
{
    struct bench_result res = {0};
    char path[PATH_MAX], err[512] = "";
    int rc;

    if (o->results) {
        snprintf(path, sizeof(path), "%s/%s-%s-%s.tsv", o->results, engine,
                 o->label, q->id);
        if (!(res.f = fopen(path, "w"))) {
            fprintf(stderr, "fedq-bench: cannot write %s: %s\n", path,
                    strerror(errno));
            return FQ_EIO;
        }
    }
    rc = run(ctx, q, &res, err, sizeof(err));
    if (res.f && fclose(res.f) != 0 && rc == 0)
        rc = FQ_EIO;
    if (rc < 0 && res.f)
        unlink(path); /* no answer: no file to compare */
    if (rc < 0) {
        fprintf(stderr, "fedq-bench: %s %s (%s): %s\n", engine, o->label, q->id,
                err[0] ? err : fq_strerror(rc));
        return rc;
    }
    printf("check\t%s\t%s\t%s\t%zu\t%" PRId64 "\t%" PRId64 "\t%zu\n", engine,
           o->label, q->id, res.groups, res.records, res.sum, res.suppressed);
    return 0;
}

/* The "time" line of one configuration; sorts ms. */
static void
print_times(const struct bench_opts *o, const struct bench_config *cfg,
            const struct bench_query *q, double *ms)
{
    qsort(ms, (size_t)o->runs, sizeof(*ms), cmp_double);
    /* The median of an even count is the mean of the middle two. */
    double med = (ms[(o->runs - 1) / 2] + ms[o->runs / 2]) / 2;
    printf("time\t%s\t%s\t%s\t%d\t%d\t%.4f\t%.4f\t%.4f\n", cfg->engine,
           o->label, q->id, cfg->threads, o->runs, med, ms[0], ms[o->runs - 1]);
    fflush(stdout);
}

int
bench_measure_set(const struct bench_opts *o, const struct bench_config *cfg,
                  size_t n, const struct bench_query *q, bench_run_fn run)
{
    double *ms = NULL; /* ms[c * runs + i]: run i of configuration c */
    char err[512] = "";
    int rc = 0;

    for (size_t c = 0; c < n; c++) {
        if ((rc = warm_up(o, cfg[c].engine, q, run, cfg[c].ctx)) < 0)
            return rc;
    }
    if (!(ms = calloc(n * (size_t)o->runs, sizeof(*ms))))
        return FQ_ENOMEM;
    for (int i = 0; i < o->runs; i++) {
        for (size_t c = 0; c < n; c++) {
            double t0 = bench_now_ms();
            if ((rc = run(cfg[c].ctx, q, NULL, err, sizeof(err))) < 0) {
                fprintf(stderr, "fedq-bench: %s %s (%s): %s\n", cfg[c].engine,
                        o->label, q->id, err[0] ? err : fq_strerror(rc));
                goto out;
            }
            ms[c * (size_t)o->runs + (size_t)i] = bench_now_ms() - t0;
        }
    }
    for (size_t c = 0; c < n; c++)
        print_times(o, &cfg[c], q, ms + c * (size_t)o->runs);
out:
    free(ms);
    return rc;
}

int
bench_measure(const struct bench_opts *o, const char *engine, int threads,
              const struct bench_query *q, bench_run_fn run, void *ctx)
{
    struct bench_config cfg = {.threads = threads, .ctx = ctx};
    snprintf(cfg.engine, sizeof(cfg.engine), "%s", engine);
    return bench_measure_set(o, &cfg, 1, q, run);
}

static int FQ_PRINTF(1, 2) usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fedq-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

int
bench_parse_opts(int argc, char **argv, struct bench_opts *o,
                 const char *const *extra, const char **vals)
{
    *o = (struct bench_opts){.label = "?", .runs = 7};
    for (int i = 1; i < argc; i += 2) {
        const char *name = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        size_t k;

        if (strncmp(name, "--", 2) != 0 || !val)
            return usage_error("expected --option value at '%s'", name);
        name += 2;
        if (strcmp(name, "label") == 0) {
            o->label = val;
        } else if (strcmp(name, "runs") == 0) {
            char *end;
            long runs = strtol(val, &end, 10);
            if (*end || runs < 1 || runs > BENCH_MAX_RUNS)
                return usage_error("--runs takes 1 to 10000, not '%s'", val);
            o->runs = (int)runs;
        } else if (strcmp(name, "results") == 0) {
            o->results = val;
        } else if (strcmp(name, "only") == 0) {
            o->only = val;
        } else {
            for (k = 0; extra && extra[k] && strcmp(extra[k], name); k++)
                ;
            if (!extra || !extra[k])
                return usage_error("unknown option '--%s'", name);
            vals[k] = val;
        }
    }
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"engine", bench_cmd_engine,
     "--config AGENT.yaml --dataset D --extract FILE [--threads 1,2]: "
     "builds the extract from the SQLite source, times plan to encoded "
     "partial"},
    {"cloop", bench_cmd_cloop,
     "--config AGENT.yaml --dataset D --extract FILE [--threads 1,2]: the "
     "hand-written loops over the extract's columns"},
    {"sqlite", bench_cmd_sqlite,
     "--db FILE [--engine NAME]: the queries through the SQLite C API"},
    {"pg", bench_cmd_pg, "--conninfo STR --table T: the queries through libpq"},
    {"gateway", bench_cmd_gateway,
     "--target ADDR --pki DIR [--source ALIAS]: the queries through the "
     "gateway as analyst alice, one persistent mutual-TLS channel"},
    {"ledger", bench_cmd_ledger,
     "[--cells N] [--candidates N] [--min P] [--max P] [--universe P]: the "
     "differencing ledger against a merge loop and SQLite"},
    {"agent", bench_cmd_agent,
     "--target ADDR --pki DIR --identity URI: one agent's Execute as the "
     "gateway calls it"},
};

int
main(int argc, char **argv)
{
    for (size_t i = 0; argc > 1 && i < FQ_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: fedq-bench COMMAND OPTIONS (common: --label L "
                    "--runs N --results DIR --only abc)\n");
    for (size_t i = 0; i < FQ_ARRAY_LEN(commands); i++)
        fprintf(stderr, "  %-8s %s\n", commands[i].name, commands[i].help);
    return 2;
}
