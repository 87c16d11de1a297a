/*
 * fedq-bench ledger: the cost of the agents' differencing ledger
 * (agent/ledger.c), side by side with a hand-written loop (the same exact
 * merge of sorted members, without the sentinel prefilter) and SQLite (the
 * members in a WITHOUT ROWID table, each difference an EXCEPT query).
 *
 * Synthetic released cells over a universe of persons: sizes log-uniform
 * between --min and --max persons, one record each; candidates of the
 * same sizes, and as many near-copies of recorded cells (a few persons
 * apart: the pairs that must be merged and reported). Prints "info" lines
 * (tab-separated, for report.py):
 *   the memory the recorded members take, and the time to record a cell;
 *   per candidate, the time to check it against every recorded cell;
 *   per pair, the same, for the loop and SQLite (SQLite on a sample).
 * Never a timed test (tests/bench/run.sh runs it).
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "bench.h"
#include "ledger.h"

#include <getopt.h>
#include <math.h>
#include <sqlite3.h>

struct lb_opts {
    size_t cells, candidates, min, max;
    uint64_t universe;
};

static uint64_t
lb_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A person's tag: keyed hashes look random; a multiplier does too. */
static uint64_t
tag_of(uint64_t person)
{
    return (person + 1) * 0x9E3779B97F4A7C15ULL;
}

/* A cell of n distinct random persons (records = persons). The caller
 * frees c->m. */
static int
random_cell(uint64_t *seed, size_t n, uint64_t universe, struct ag_cellset *c)
{
    size_t cap = 0;
    int rc = 0;

    *c = (struct ag_cellset){0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t p = lb_rand(seed) % universe;
        rc = ag_cellset_push(c, &cap, (struct ag_member){tag_of(p), p});
    }
    ag_cellset_finish(c);
    return rc;
}

/* A near copy of c: d persons replaced. */
static int
near_cell(uint64_t *seed, const struct ag_cellset *c, size_t d,
          uint64_t universe, struct ag_cellset *out)
{
    size_t cap = 0;
    int rc = 0;

    *out = (struct ag_cellset){0};
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        struct ag_member m = c->m[i];
        if (i < d) {
            uint64_t p = lb_rand(seed) % universe;
            m = (struct ag_member){tag_of(p), p};
        }
        rc = ag_cellset_push(out, &cap, m);
    }
    ag_cellset_finish(out);
    return rc;
}

static size_t
log_uniform(uint64_t *seed, size_t lo, size_t hi)
{
    double u = (double)(lb_rand(seed) % 1000000) / 1e6;
    return (size_t)exp(log((double)lo) +
                       u * (log((double)hi) - log((double)lo)));
}

/* The exact differences without a prefilter: merge every pair. */
static void
loop_difference(const struct ag_cellset *a, const struct ag_cellset *b,
                int64_t *d1, int64_t *d2)
{
    size_t i = 0, j = 0;

    *d1 = *d2 = 0;
    while (i < a->n || j < b->n) {
        if (j == b->n || (i < a->n && a->m[i].person < b->m[j].person)) {
            (*d1)++;
            i++;
        } else if (i == a->n || b->m[j].person < a->m[i].person) {
            (*d2)++;
            j++;
        } else {
            i++;
            j++;
        }
    }
}

static int
sqlite_load(sqlite3 *db, const struct ag_cellset *cells, size_t n)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(db,
                          "CREATE TABLE m (cell INTEGER, person INTEGER, "
                          "PRIMARY KEY (cell, person)) WITHOUT ROWID;"
                          "BEGIN",
                          NULL, NULL, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO m VALUES (?1, ?2)", -1, &st,
                                NULL);
    for (size_t c = 0; rc == SQLITE_OK && c < n; c++) {
        for (size_t i = 0; rc == SQLITE_OK && i < cells[c].n; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, (int64_t)c);
            sqlite3_bind_int64(st, 2, (int64_t)cells[c].m[i].person);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : FQ_EIO;
}

static const char sqlite_pair[] =
    "SELECT (SELECT COUNT(*) FROM (SELECT person FROM m WHERE cell = ?1 "
    "EXCEPT SELECT person FROM m WHERE cell = ?2)), (SELECT COUNT(*) FROM "
    "(SELECT person FROM m WHERE cell = ?2 EXCEPT SELECT person FROM m "
    "WHERE cell = ?1))";

static int
parse(int argc, char **argv, struct lb_opts *o)
{
    static const struct option opts[] = {
        {"cells", required_argument, NULL, 'c'},
        {"candidates", required_argument, NULL, 'n'},
        {"min", required_argument, NULL, 'a'},
        {"max", required_argument, NULL, 'b'},
        {"universe", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *o = (struct lb_opts){1000, 50, 100, 100000, 1000000};
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        unsigned long long v;
        char *end;
        if (!optarg || (v = strtoull(optarg, &end, 10)) == 0 || *end)
            return FQ_EINVAL;
        if (opt == 'c')
            o->cells = (size_t)v;
        else if (opt == 'n')
            o->candidates = (size_t)v;
        else if (opt == 'a')
            o->min = (size_t)v;
        else if (opt == 'b')
            o->max = (size_t)v;
        else
            o->universe = v;
    }
    return o->min <= o->max && o->max <= o->universe ? 0 : FQ_EINVAL;
}

static double
median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++) /* insertion: a few hundred values */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n ? v[n / 2] : 0;
}

/* Records the cells (timed), then checks the candidates three ways. */
static int
run(const struct lb_opts *o, struct ag_cellset *rel, struct ag_cellset *cand,
    const char *dir)
{
    struct ag_ledger *l = NULL;
    struct ag_ledger_scope scope = {"bench", "v1"};
    struct fq_arena *a = fq_arena_new(256u << 20);
    double *t_fedq = calloc(2 * o->candidates + 1, sizeof(double));
    double *t_loop = calloc(2 * o->candidates + 1, sizeof(double));
    size_t members = 0, reported = 0, n_cand = 2 * o->candidates;
    char err[512];
    sqlite3 *db = NULL;
    int rc = FQ_ENOMEM;

    if (!a || !t_fedq || !t_loop)
        goto out;
    if ((rc = ag_ledger_open(dir, "bench", 0, &l, err, sizeof(err))) < 0)
        goto out;
    double t0 = bench_now_ms();
    for (size_t c = 0; c < o->cells; c++) {
        char ref[32];
        const char *refs[] = {ref}, *cls[] = {"records"};
        struct ag_ledger_part part = {"bench", (int64_t)rel[c].persons, "v1"};
        const struct ag_ledger_part *parts[] = {&part};
        size_t np[] = {1};
        snprintf(ref, sizeof(ref), "q/%zu", c);
        if ((rc = ag_ledger_record(l, &scope, cls, &rel[c], refs, parts, np,
                                   NULL, 1, err, sizeof(err))) < 0)
            goto out;
        members += rel[c].n;
    }
    double t_record = (bench_now_ms() - t0) / (double)o->cells;
    for (size_t i = 0; i < n_cand; i++) {
        const char *cls[] = {"records"};
        size_t groups[] = {0}, n;
        struct ag_ledger_pair *pairs;
        t0 = bench_now_ms();
        if ((rc = ag_ledger_check(l, &scope, cls, groups, &cand[i], 1, 11, true,
                                  a, &pairs, &n, err, sizeof(err))) < 0)
            goto out;
        t_fedq[i] = bench_now_ms() - t0;
        reported += n;
        t0 = bench_now_ms();
        for (size_t c = 0; c < o->cells; c++) {
            int64_t d1, d2;
            loop_difference(&cand[i], &rel[c], &d1, &d2);
        }
        t_loop[i] = bench_now_ms() - t0;
        fq_arena_free(a); /* the pairs of one check */
        if (!(a = fq_arena_new(256u << 20))) {
            rc = FQ_ENOMEM;
            goto out;
        }
    }
    /* SQLite on a sample: 20 candidates against 50 recorded cells. */
    sqlite3_stmt *st = NULL;
    size_t sample_c = o->cells < 50 ? o->cells : 50, pairs_sql = 0;
    double t_sql = 0;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite_load(db, rel, sample_c) < 0 ||
        sqlite3_prepare_v2(db, sqlite_pair, -1, &st, NULL) != SQLITE_OK) {
        rc = FQ_EIO;
        goto out;
    }
    /* the candidates as cells numbered after the recorded ones */
    for (size_t i = 0; i < 20 && i < n_cand; i++) {
        sqlite3_stmt *ins = NULL;
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO m VALUES (?1, ?2)", -1,
                           &ins, NULL);
        for (size_t k = 0; k < cand[i].n; k++) {
            sqlite3_reset(ins);
            sqlite3_bind_int64(ins, 1, (int64_t)(1000000 + i));
            sqlite3_bind_int64(ins, 2, (int64_t)cand[i].m[k].person);
            sqlite3_step(ins);
        }
        sqlite3_finalize(ins);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        t0 = bench_now_ms();
        for (size_t c = 0; c < sample_c; c++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, (int64_t)(1000000 + i));
            sqlite3_bind_int64(st, 2, (int64_t)c);
            if (sqlite3_step(st) != SQLITE_ROW) {
                rc = FQ_EIO;
                sqlite3_finalize(st);
                goto out;
            }
            pairs_sql++;
        }
        t_sql += bench_now_ms() - t0;
    }
    sqlite3_finalize(st);
    double per_fedq = median(t_fedq, n_cand), per_loop = median(t_loop, n_cand);
    double pair_sql = pairs_sql ? t_sql / (double)pairs_sql : 0;
    /* "info KEY LABEL VALUES" lines, tab-separated, for report.py */
    printf("info\tledger_size\t-\t%zu\t%zu\t%zu\t%zu\n", o->cells, members,
           members * sizeof(struct ag_member),
           (size_t)(AG_LEDGER_SENTINELS * sizeof(uint64_t)));
    printf("info\tledger_record_ms\t-\t%.3f\n", t_record);
    printf("info\tledger_check_ms\t-\t%.4f\t%.4f\t%.4f\t%zu\t%zu\n", per_fedq,
           per_loop, pair_sql * (double)o->cells, n_cand, reported);
    rc = 0;
out:
    if (rc < 0)
        fprintf(stderr, "fedq-bench ledger: %s\n",
                rc == FQ_EIO && db ? sqlite3_errmsg(db) : err);
    sqlite3_close(db);
    ag_ledger_close(l);
    fq_arena_free(a);
    free(t_fedq);
    free(t_loop);
    return rc;
}

int
bench_cmd_ledger(int argc, char **argv)
{
    struct lb_opts o;
    uint64_t seed = 20261206;
    char dir[] = "/tmp/fedq-bench-ledger-XXXXXX";
    struct ag_cellset *rel = NULL, *cand = NULL;
    int rc = FQ_ENOMEM;

    if (parse(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: fedq-bench ledger [--cells N] [--candidates "
                        "N] [--min P] [--max P] [--universe P]\n");
        return 2;
    }
    if (!mkdtemp(dir)) {
        perror("fedq-bench ledger: mkdtemp");
        return 1;
    }
    rel = calloc(o.cells + 1, sizeof(*rel));
    cand = calloc(2 * o.candidates + 1, sizeof(*cand));
    for (size_t c = 0; rel && c < o.cells; c++) {
        if (random_cell(&seed, log_uniform(&seed, o.min, o.max), o.universe,
                        &rel[c]) < 0)
            goto out;
    }
    for (size_t i = 0; cand && rel && i < o.candidates; i++) {
        if (random_cell(&seed, log_uniform(&seed, o.min, o.max), o.universe,
                        &cand[2 * i]) < 0 ||
            near_cell(&seed, &rel[lb_rand(&seed) % o.cells],
                      1 + lb_rand(&seed) % 5, o.universe, &cand[2 * i + 1]) < 0)
            goto out;
    }
    if (rel && cand)
        rc = run(&o, rel, cand, dir);
out:
    for (size_t c = 0; rel && c < o.cells; c++)
        free(rel[c].m);
    for (size_t i = 0; cand && i < 2 * o.candidates; i++)
        free(cand[i].m);
    free(rel);
    free(cand);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fedq-bench ledger: could not remove %s\n", dir);
    return rc < 0 ? 1 : 0;
}
