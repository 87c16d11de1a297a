/*
 * fedq-synth: deterministic synthetic data for the agencies of one state.
 *
 * One population of N persons is shared by every agency: person i's
 * attributes (id, birth year, sex, town, disadvantage, household size,
 * earnings rank) are a pure function of (seed, i), so agencies can be
 * generated independently, in any order or in parallel, and still agree
 * on who lives where. Each agency then draws its own records for person i
 * from a generator seeded by (seed, agency, i). The output files are
 * therefore byte-for-byte identical for the same (seed, persons) and the
 * same SQLite library, whatever --agencies or --jobs say.
 *
 * Only integer arithmetic is used for the data: libm results may differ in
 * the last bit between C libraries, which would break determinism.
 *
 * See docs/synthetic-data.md for the model and the schemas.
 */
#include "fq/compat.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>

#define PERSONS_DEFAULT 20000u
#define PERSONS_MIN     1000u
#define PERSONS_MAX     10000000u
#define SEED_DEFAULT    42u
#define AGENCIES_ALL    "dol,dss,doe,uhs,csu,ccs"

#define NTOWNS     169
#define NDISTRICTS 40
/* Towns that are large enough to be their own school district. */
#define NCITY_DISTRICTS 25
#define PPM             1000000u

/* The state's geography does not depend on --seed: docs can name towns. */
#define GEOGRAPHY_SEED 0x5EEDC0FFEEull

/* ---------------------------------------------------------------------- */
/* PRNG: splitmix64 seeding xoshiro256** (Blackman and Vigna).            */

struct rng {
    uint64_t s[4];
};

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t
mix64(uint64_t x)
{
    return splitmix64(&x);
}

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/*
 * One independent stream per (seed, purpose, item): purpose is a tag such
 * as "dol", item a person or employer number.
 */
static void
rng_seed(struct rng *r, uint64_t seed, uint64_t tag, uint64_t item)
{
    uint64_t x = mix64(seed ^ mix64(tag ^ mix64(item)));

    for (int k = 0; k < 4; k++)
        r->s[k] = splitmix64(&x);
}

/* Uniform in [0, n): multiply-shift; the bias is below 2^-40 here. */
static uint64_t
rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static int64_t
rng_range(struct rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)rng_below(r, (uint64_t)(hi - lo + 1));
}

/* True with probability ppm / 10^6. */
static bool
rng_chance(struct rng *r, uint32_t ppm)
{
    return rng_below(r, PPM) < ppm;
}

static uint64_t
tag_of(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

/* ---------------------------------------------------------------------- */
/* Weighted choice by binary search over cumulative weights.              */

struct wtable {
    uint64_t *cum; /* cum[k]: sum of weights 0..k */
    uint32_t n;
};

static int
wtable_init(struct wtable *t, const uint64_t *weights, uint32_t n)
{
    uint64_t sum = 0;

    t->cum = malloc(n * sizeof(*t->cum));
    if (!t->cum)
        return -1;
    for (uint32_t k = 0; k < n; k++) {
        sum += weights[k];
        t->cum[k] = sum;
    }
    t->n = n;
    return 0;
}

static void
wtable_free(struct wtable *t)
{
    free(t->cum);
    t->cum = NULL;
}

static uint32_t
wtable_pick(const struct wtable *t, struct rng *r)
{
    uint64_t x = rng_below(r, t->cum[t->n - 1]);
    uint32_t lo = 0, hi = t->n - 1;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Small fixed tables: pick an index from a few integer weights. */
static uint32_t
pick_small(struct rng *r, const uint32_t *w, uint32_t n)
{
    uint64_t sum = 0;

    for (uint32_t k = 0; k < n; k++)
        sum += w[k];
    uint64_t x = rng_below(r, sum);
    for (uint32_t k = 0; k < n; k++) {
        if (x < w[k])
            return k;
        x -= w[k];
    }
    return n - 1;
}

/* ---------------------------------------------------------------------- */
/* Code lists shared with deploy/examples/etc/agent-*.yaml.               */

static const char *const quarters[] = {
    "2022Q1", "2022Q2", "2022Q3", "2022Q4", "2023Q1", "2023Q2",
    "2023Q3", "2023Q4", "2024Q1", "2024Q2", "2024Q3", "2024Q4",
};

static const char *const months[] = {
    "2023-01", "2023-02", "2023-03", "2023-04", "2023-05", "2023-06",
    "2023-07", "2023-08", "2023-09", "2023-10", "2023-11", "2023-12",
    "2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06",
    "2024-07", "2024-08", "2024-09", "2024-10", "2024-11", "2024-12",
};

static const char *const grades[] = {
    "K", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
};

static const char *const school_years[] = {"2022-23", "2023-24"};

static const char *const terms[] = {"2023FA", "2024SP", "2024FA"};
/* Calendar year in which each term ends: a graduation's year. */
static const int term_end_year[] = {2023, 2024, 2024};

/* NAICS 2-digit sectors; 11, 21, 22 and 55 are rare on purpose. */
struct industry {
    const char *code;
    uint32_t weight;   /* share of employers, per mille-ish */
    uint32_t wage_pct; /* wage level relative to the average, percent */
};

static const struct industry industries[] = {
    {"11", 3, 70},   {"21", 1, 130},  {"22", 3, 150},  {"23", 45, 110},
    {"31", 8, 85},   {"32", 22, 120}, {"33", 50, 125}, {"42", 38, 120},
    {"44", 70, 65},  {"45", 35, 60},  {"48", 25, 95},  {"49", 15, 80},
    {"51", 20, 140}, {"52", 60, 160}, {"53", 15, 105}, {"54", 65, 150},
    {"55", 2, 170},  {"56", 55, 75},  {"61", 90, 90},  {"62", 170, 95},
    {"71", 17, 60},  {"72", 80, 45},  {"81", 35, 70},  {"92", 60, 110},
};
#define NINDUSTRIES FQ_ARRAY_LEN(industries)
/* The few largest employers are the usual suspects, not random. */
static const char *const top_employer_industry[] = {"92", "62", "61", "44"};

enum program { PROG_SNAP, PROG_TANF, PROG_MEDICAID, NPROGRAMS };
static const char *const program_names[] = {"SNAP", "TANF", "MEDICAID"};

enum credential { CRED_CERT, CRED_AA, CRED_BA, CRED_MA, CRED_PHD, NCREDS };
static const char *const cred_names[] = {"CERT", "AA", "BA", "MA", "PHD"};

/* The three higher-education systems; students are disjoint across them. */
struct hied_system {
    const char *prefix; /* institution codes: PREFIX01.. */
    uint32_t ninst;
    uint32_t inst_weight[12];
    uint32_t cred_weight[NCREDS];
    uint32_t persist_ppm; /* chance to continue into the next term */
};

static const struct hied_system hied_systems[] = {
    {"UHS", 4, {60, 15, 15, 10}, {2, 0, 72, 20, 6}, 900000},
    {"CSU", 4, {35, 25, 20, 20}, {5, 0, 78, 17, 0}, 850000},
    {"CCS",
     12,
     {20, 16, 13, 11, 9, 8, 6, 5, 4, 3, 3, 2},
     {38, 62, 0, 0, 0},
     700000},
};
#define NHIED FQ_ARRAY_LEN(hied_systems)

/* ---------------------------------------------------------------------- */
/* The world: read-only tables built once, shared by all threads.         */

struct world {
    uint64_t seed;
    uint32_t persons;
    uint32_t employers;
    struct wtable town_rank;  /* size rank 0..168, Zipf-Mandelbrot */
    struct wtable birth_year; /* 1940..2012 */
    struct wtable employer;   /* size rank 0..employers-1 */
    uint8_t town_of_rank[NTOWNS];
    uint8_t town_poverty[NTOWNS]; /* percent of residents in poverty */
    uint8_t town_district[NTOWNS];
    char town_code[NTOWNS][5];
    char district_code[NDISTRICTS][5];
    uint8_t *employer_industry; /* by size rank */
    uint64_t tag_person, tag_dol, tag_dss, tag_doe, tag_hied, tag_employer;
    uint64_t tag_credits;
};

/* Town sizes fall off as 1/(rank+8)^2: the largest holds about 11% of
 * the state, the smallest about 0.03%, so small cells occur by design. */
static int
world_towns(struct world *w)
{
    uint64_t wt[NTOWNS];
    struct rng r;

    for (int k = 0; k < NTOWNS; k++) {
        uint64_t d = (uint64_t)(k + 9) * (uint64_t)(k + 9);
        wt[k] = (1ull << 40) / d;
    }
    if (wtable_init(&w->town_rank, wt, NTOWNS) < 0)
        return -1;

    rng_seed(&r, GEOGRAPHY_SEED, tag_of("towns"), 0);
    for (int k = 0; k < NTOWNS; k++)
        w->town_of_rank[k] = (uint8_t)k;
    for (int k = NTOWNS - 1; k > 0; k--) {
        int j = (int)rng_below(&r, (uint64_t)k + 1);
        uint8_t t = w->town_of_rank[k];
        w->town_of_rank[k] = w->town_of_rank[j];
        w->town_of_rank[j] = t;
    }
    for (int k = 0; k < NTOWNS; k++) {
        int t = w->town_of_rank[k];
        int pov;
        /* Cities are poorer; a few small rural towns are poor too. */
        if (k < 6)
            pov = (int)rng_range(&r, 22, 35);
        else if (k < 30)
            pov = (int)rng_range(&r, 6, 20);
        else if (k % 37 == 5)
            pov = (int)rng_range(&r, 18, 26);
        else
            pov = (int)rng_range(&r, 2, 14);
        w->town_poverty[t] = (uint8_t)pov;
        /* Large towns run their own district; the rest are regional. */
        w->town_district[t] =
            (uint8_t)(k < NCITY_DISTRICTS ? k : NCITY_DISTRICTS + t % 15);
        snprintf(w->town_code[t], sizeof(w->town_code[t]), "T%03d", t + 1);
    }
    for (int k = 0; k < NDISTRICTS; k++)
        snprintf(w->district_code[k], sizeof(w->district_code[k]), "D%03d",
                 k + 1);
    return 0;
}

/* Ages in 2024 from 12 to 84: older cohorts thinned by mortality, a baby
 * boom bump and a large millennial cohort. */
static uint64_t
birth_year_weight(int y)
{
    if (y < 1945)
        return (uint64_t)(40 + 6 * (y - 1940));
    if (y < 1955)
        return (uint64_t)(80 + 3 * (y - 1945));
    if (y < 1965)
        return 118;
    if (y < 1981)
        return 105;
    if (y < 1997)
        return 125;
    return 112;
}

static int
world_employers(struct world *w)
{
    uint32_t m = w->persons / 20;
    uint64_t *wt = NULL;
    int rc = -1;

    if (m < 100)
        m = 100;
    if (m > 999999)
        m = 999999;
    w->employers = m;
    wt = malloc(m * sizeof(*wt));
    w->employer_industry = malloc(m);
    if (!wt || !w->employer_industry)
        goto out;
    /* Firm sizes are roughly Zipf: weight 1/(rank+3). */
    for (uint32_t k = 0; k < m; k++)
        wt[k] = (1ull << 40) / (k + 3);
    if (wtable_init(&w->employer, wt, m) < 0)
        goto out;

    uint32_t iw[NINDUSTRIES];
    for (size_t k = 0; k < NINDUSTRIES; k++)
        iw[k] = industries[k].weight;
    for (uint32_t k = 0; k < m; k++) {
        struct rng r;
        uint32_t ind;
        rng_seed(&r, w->seed, w->tag_employer, k);
        ind = pick_small(&r, iw, NINDUSTRIES);
        if (k < FQ_ARRAY_LEN(top_employer_industry)) {
            for (size_t j = 0; j < NINDUSTRIES; j++)
                if (!strcmp(industries[j].code, top_employer_industry[k]))
                    ind = (uint32_t)j;
        }
        w->employer_industry[k] = (uint8_t)ind;
    }
    rc = 0;
out:
    free(wt);
    return rc;
}

static void
world_free(struct world *w)
{
    wtable_free(&w->town_rank);
    wtable_free(&w->birth_year);
    wtable_free(&w->employer);
    free(w->employer_industry);
    w->employer_industry = NULL;
}

static int
world_init(struct world *w, uint64_t seed, uint32_t persons)
{
    uint64_t by[2012 - 1940 + 1];

    memset(w, 0, sizeof(*w));
    w->seed = seed;
    w->persons = persons;
    w->tag_person = tag_of("person");
    w->tag_dol = tag_of("dol");
    w->tag_dss = tag_of("dss");
    w->tag_doe = tag_of("doe");
    w->tag_hied = tag_of("hied");
    w->tag_credits = tag_of("credits");
    w->tag_employer = tag_of("employer");
    for (int y = 1940; y <= 2012; y++)
        by[y - 1940] = birth_year_weight(y);
    if (world_towns(w) < 0 ||
        wtable_init(&w->birth_year, by, FQ_ARRAY_LEN(by)) < 0 ||
        world_employers(w) < 0) {
        world_free(w);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Persons.                                                               */

struct person {
    char id[11]; /* 'P' + 9 digits */
    int birth_year;
    char sex[2];
    int town;
    int disadv;   /* 0..999: drives poverty programs, work and pay */
    int hh_size;  /* 1..9 */
    int earn_ppm; /* earnings rank among workers, 0..999999 */
};

/* Writes prefix and n as exactly `digits` decimal digits. */
static void
fmt_code(char *buf, char prefix, uint32_t n, int digits)
{
    buf[0] = prefix;
    for (int k = digits; k >= 1; k--) {
        buf[k] = (char)('0' + n % 10);
        n /= 10;
    }
    buf[digits + 1] = '\0';
}

static void
person_make(const struct world *w, uint32_t i, struct person *p)
{
    static const uint32_t hh_weight[9] = {140, 300, 200, 190, 100,
                                          40,  17,  8,   5};
    struct rng r;

    /* A fixed bijection on 0..10^9-1 (3^18 is coprime to 10), so ids look
     * arbitrary but person i keeps the same id in every agency. */
    uint64_t num = ((uint64_t)i * 387420489ull + 100000007ull) % 1000000000ull;
    fmt_code(p->id, 'P', (uint32_t)num, 9);

    rng_seed(&r, w->seed, w->tag_person, i);
    p->birth_year = 1940 + (int)wtable_pick(&w->birth_year, &r);
    p->sex[0] = rng_chance(&r, 510000) ? 'F' : 'M';
    p->sex[1] = '\0';
    p->town = w->town_of_rank[wtable_pick(&w->town_rank, &r)];

    /* Individual disadvantage is skewed low; town poverty shifts it. */
    int u = (int)rng_below(&r, 1000);
    p->disadv = w->town_poverty[p->town] * 12 + u * u / 1429;
    if (p->disadv > 999)
        p->disadv = 999;
    p->hh_size = 1 + (int)pick_small(&r, hh_weight, 9);
    int e = (1000 - p->disadv) * 700 + (int)rng_below(&r, 300000);
    p->earn_ppm = e > 999999 ? 999999 : e;
}

/* ---------------------------------------------------------------------- */
/* SQLite output.                                                         */

enum val_kind { V_TEXT, V_INT, V_NULL };

struct val {
    enum val_kind kind;
    const char *s;
    int64_t i;
};

#define TXT(x)  ((struct val){V_TEXT, (x), 0})
#define INT(x)  ((struct val){V_INT, NULL, (x)})
#define NUL_V() ((struct val){V_NULL, NULL, 0})

struct agency;

struct job {
    const struct world *w;
    const struct agency *ag;
    const char *outdir;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    sqlite3 *db;
    sqlite3_stmt *ins;
    int64_t rows;
    double secs;
    int failed;
    bool done; /* file renamed into place */
    char err[600];
};

struct agency {
    const char *id;
    const char *table;
    const char *create_sql;
    const char *insert_sql;
    int (*gen)(struct job *j);
    int hied; /* index into hied_systems, or -1 */
};

static int job_fail(struct job *j, const char *fmt, ...) FQ_PRINTF(2, 3);

/* Records the first error of a job; returns -1 for `return job_fail()`. */
static int
job_fail(struct job *j, const char *fmt, ...)
{
    va_list ap;

    if (j->failed)
        return -1;
    va_start(ap, fmt);
    vsnprintf(j->err, sizeof(j->err), fmt, ap);
    va_end(ap);
    j->failed = 1;
    return -1;
}

static int
db_fail(struct job *j, const char *what)
{
    return job_fail(j, "%s: %s: %s", j->tmp, what,
                    j->db ? sqlite3_errmsg(j->db) : "out of memory");
}

static int
db_exec(struct job *j, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        job_fail(j, "%s: %s: %s", j->tmp, sql, msg ? msg : "failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Binds one row to the insert statement and runs it. */
static int
insert_row(struct job *j, const struct val *v, int n)
{
    sqlite3_stmt *s = j->ins;
    int rc = SQLITE_OK;

    for (int k = 0; k < n && rc == SQLITE_OK; k++) {
        if (v[k].kind == V_TEXT)
            rc = sqlite3_bind_text(s, k + 1, v[k].s, -1, SQLITE_STATIC);
        else if (v[k].kind == V_INT)
            rc = sqlite3_bind_int64(s, k + 1, v[k].i);
        else
            rc = sqlite3_bind_null(s, k + 1);
    }
    if (rc != SQLITE_OK)
        return db_fail(j, "bind");
    if (sqlite3_step(s) != SQLITE_DONE) {
        db_fail(j, "insert");
        (void)sqlite3_reset(s); /* repeats the step's error, already kept */
        return -1;
    }
    if (sqlite3_reset(s) != SQLITE_OK)
        return db_fail(j, "reset");
    j->rows++;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* dol: quarterly UI wage records.                                        */

/* Chance (ppm) of having wages in a quarter, before disadvantage. */
static uint32_t
work_base_ppm(int age)
{
    if (age < 16)
        return 0;
    if (age < 18)
        return 350000;
    if (age < 20)
        return 600000;
    if (age < 25)
        return 780000;
    if (age < 55)
        return 900000;
    if (age < 60)
        return 820000;
    if (age < 62)
        return 720000;
    if (age < 65)
        return 560000;
    if (age < 70)
        return 320000;
    if (age < 75)
        return 160000;
    return 60000;
}

static uint32_t
work_ppm(const struct person *p, int age)
{
    uint64_t ppm = work_base_ppm(age);

    ppm = ppm * (uint64_t)(1900 - p->disadv) / 1900;
    if (p->sex[0] == 'F')
        ppm = ppm * 93 / 100;
    return (uint32_t)ppm;
}

/* Quarterly wage in cents at an earnings rank: piecewise linear through
 * a plausible distribution of quarterly earnings. */
static int64_t
wage_at_rank(int ppm)
{
    static const int64_t pts[][2] = {
        {0, 15000},          {50000, 150000},   {100000, 300000},
        {250000, 700000},    {500000, 1300000}, {750000, 2200000},
        {900000, 3500000},   {970000, 6000000}, {995000, 13000000},
        {1000000, 50000000},
    };
    size_t k = 1;

    while (k < FQ_ARRAY_LEN(pts) - 1 && ppm > pts[k][0])
        k++;
    int64_t x0 = pts[k - 1][0], y0 = pts[k - 1][1];
    int64_t x1 = pts[k][0], y1 = pts[k][1];
    return y0 + (y1 - y0) * (ppm - x0) / (x1 - x0);
}

static int64_t
age_wage_pct(int age)
{
    if (age < 18)
        return 25;
    if (age < 22)
        return 45;
    if (age < 25)
        return 70;
    if (age < 30)
        return 85;
    if (age < 35)
        return 95;
    if (age < 55)
        return 105;
    if (age < 65)
        return 100;
    return 70;
}

struct job_spell {
    uint32_t employer; /* size rank */
    bool employed;
};

static uint32_t
employer_number(const struct world *w, uint32_t rank)
{
    /* Multiplying by a prime above any employer count is a bijection on
     * ranks, so the largest employer is not E000001. */
    return 1 + (uint32_t)((uint64_t)rank * 2654435761ull % w->employers);
}

static int
dol_row(struct job *j, const struct person *p, int q, uint32_t rank,
        int64_t wages)
{
    const struct world *w = j->w;
    char emp[8];

    if (wages < 1000)
        wages = 1000;
    if (wages > 100000000)
        wages = 100000000;
    fmt_code(emp, 'E', employer_number(w, rank), 6);
    struct val v[] = {
        TXT(p->id),
        TXT(emp),
        TXT(quarters[q]),
        INT(wages),
        TXT(w->town_code[p->town]),
        TXT(industries[w->employer_industry[rank]].code),
    };
    return insert_row(j, v, FQ_ARRAY_LEN(v));
}

static int64_t
dol_wage(const struct person *p, int age, int q, uint32_t ind, struct rng *r)
{
    /* Nominal wage growth of about 3.5% a year. */
    static const int64_t growth[] = {1000, 1035, 1071};
    int64_t wg = wage_at_rank(p->earn_ppm);

    wg = wg * age_wage_pct(age) / 100;
    wg = wg * industries[ind].wage_pct / 100;
    wg = wg * growth[q / 4] / 1000;
    return wg * rng_range(r, 85, 115) / 100;
}

static int
dol_person(struct job *j, const struct person *p, struct rng *r)
{
    const struct world *w = j->w;
    struct job_spell js = {0, false};
    bool started = false;

    for (int q = 0; q < (int)FQ_ARRAY_LEN(quarters); q++) {
        int age = 2022 + q / 4 - p->birth_year;
        uint32_t ppm = work_ppm(p, age);
        bool entered = false;

        if (ppm == 0)
            continue;
        /* Two-state Markov chain per quarter: stationary share ppm, spells
         * of several quarters rather than independent coin flips. */
        if (!started) {
            js.employed = rng_chance(r, ppm);
            started = true;
        } else if (js.employed) {
            js.employed = !rng_chance(r, (PPM - ppm) * 35 / 100);
        } else {
            js.employed = rng_chance(r, ppm * 35 / 100);
            entered = js.employed;
        }
        if (!js.employed)
            continue;
        if (entered || q == 0 || rng_chance(r, 50000))
            js.employer = wtable_pick(&w->employer, r);

        int64_t wg = dol_wage(p, age, q, w->employer_industry[js.employer], r);
        if (entered)
            wg = wg * rng_range(r, 20, 90) / 100; /* started mid-quarter */
        if (dol_row(j, p, q, js.employer, wg) < 0)
            return -1;

        /* A second job in some quarters. */
        if (rng_chance(r, 60000)) {
            uint32_t second = wtable_pick(&w->employer, r);
            if (second != js.employer) {
                wg = dol_wage(p, age, q, w->employer_industry[second], r);
                wg = wg * rng_range(r, 10, 40) / 100;
                if (dol_row(j, p, q, second, wg) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static int
gen_dol(struct job *j)
{
    const struct world *w = j->w;

    for (uint32_t i = 0; i < w->persons; i++) {
        struct person p;
        struct rng r;
        person_make(w, i, &p);
        rng_seed(&r, w->seed, w->tag_dol, i);
        if (dol_person(j, &p, &r) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* dss: monthly program enrollment.                                       */

static uint32_t
clamp_ppm(uint64_t v, uint32_t max)
{
    return v > max ? max : (uint32_t)v;
}

/* Long-run monthly chance (ppm) of being enrolled in a program. */
static uint32_t
program_ppm(enum program prog, const struct person *p, int age)
{
    uint64_t x;

    switch (prog) {
    case PROG_SNAP:
        x = p->disadv > 200 ? (uint64_t)(p->disadv - 200) : 0;
        x = x * x * 1000 / 1050;
        if (p->hh_size >= 3)
            x = x * 6 / 5;
        if (age >= 65)
            x = x * 7 / 10;
        return clamp_ppm(x, 850000);
    case PROG_TANF:
        /* Families with children only; adults past 50 rarely qualify. */
        if (p->hh_size < 2 || age > 50)
            return 0;
        x = p->disadv > 500 ? (uint64_t)(p->disadv - 500) : 0;
        return clamp_ppm(x * x * 1000 / 620, 400000);
    case PROG_MEDICAID:
        x = p->disadv > 150 ? (uint64_t)(p->disadv - 150) : 0;
        x = x * x * 1000 / 750;
        if (age < 19)
            x = x * 17 / 10; /* children's coverage is broader */
        if (age >= 65)
            x = x * 6 / 10 + 30000;
        return clamp_ppm(x, 900000);
    default:
        return 0;
    }
}

/* Monthly benefit in cents. SNAP follows the federal maximum allotment
 * by household size and fiscal year (Oct-Sep), scaled by the household's
 * share; TANF a state payment standard; MEDICAID the managed-care
 * capitation paid for the member that month. */
static int64_t
program_benefit(enum program prog, const struct person *p, int age, int m,
                int share_pct, struct rng *r)
{
    static const int64_t snap_max[3][9] = {
        {281, 516, 740, 939, 1116, 1339, 1480, 1691, 1902}, /* FY2023 */
        {291, 535, 766, 973, 1155, 1386, 1532, 1751, 1970}, /* FY2024 */
        {292, 536, 768, 975, 1158, 1390, 1536, 1756, 1976}, /* FY2025 */
    };
    static const int64_t tanf_std[9] = {400,  550,  698,  800, 900,
                                        1000, 1100, 1200, 1300};
    int fy = m < 9 ? 0 : (m < 21 ? 1 : 2);
    int64_t c;

    switch (prog) {
    case PROG_SNAP:
        c = snap_max[fy][p->hh_size - 1] * 100 * share_pct / 100;
        return c < 2300 ? 2300 : c;
    case PROG_TANF:
        return tanf_std[p->hh_size - 1] * share_pct;
    case PROG_MEDICAID:
        c = age < 19 ? 26000 : (age < 65 ? 56000 : 145000);
        return c * rng_range(r, 90, 110) / 100;
    default:
        return 0;
    }
}

static int
dss_program(struct job *j, const struct person *p, enum program prog,
            struct rng *r)
{
    const struct world *w = j->w;
    uint32_t ppm = program_ppm(prog, p, 2023 - p->birth_year);
    bool on = false;
    int share = 0;

    if (ppm == 0)
        return 0;
    for (int m = 0; m < (int)FQ_ARRAY_LEN(months); m++) {
        bool was = on;
        /* Monthly Markov chain: stationary share ppm, spells of months. */
        if (m == 0)
            on = rng_chance(r, ppm);
        else if (on)
            on = !rng_chance(r, (PPM - ppm) / 10);
        else
            on = rng_chance(r, ppm / 10);
        if (!on)
            continue;
        if (!was) /* benefit share is set at (re)application */
            share = (int)rng_range(r, 20 + p->disadv / 20, 100);
        int age = 2023 + m / 12 - p->birth_year;
        struct val v[] = {
            TXT(p->id),      TXT(program_names[prog]),
            TXT(months[m]),  TXT(w->town_code[p->town]),
            INT(p->hh_size), INT(p->birth_year),
            TXT(p->sex),     INT(program_benefit(prog, p, age, m, share, r)),
        };
        if (insert_row(j, v, FQ_ARRAY_LEN(v)) < 0)
            return -1;
    }
    return 0;
}

static int
gen_dss(struct job *j)
{
    const struct world *w = j->w;

    for (uint32_t i = 0; i < w->persons; i++) {
        struct person p;
        struct rng r;
        person_make(w, i, &p);
        rng_seed(&r, w->seed, w->tag_dss, i);
        for (int prog = 0; prog < NPROGRAMS; prog++)
            if (dss_program(j, &p, (enum program)prog, &r) < 0)
                return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* doe: K-12 enrollment by school year.                                   */

static int
doe_row(struct job *j, const struct person *p, int year, int grade,
        int graduated)
{
    const struct world *w = j->w;
    struct val v[] = {
        TXT(p->id),         TXT(w->district_code[w->town_district[p->town]]),
        TXT(grades[grade]), TXT(school_years[year]),
        INT(graduated),
    };
    return insert_row(j, v, FQ_ARRAY_LEN(v));
}

static int
doe_person(struct job *j, const struct person *p, struct rng *r)
{
    /* Kindergarten in the fall of the year a child turns 5 (a 1 January
     * cut-off); a few children are a year behind or ahead. About 12% are
     * in private or home schools and never appear. */
    if (!rng_chance(r, 880000))
        return 0;
    int adj = rng_chance(r, 50000) ? -1 : (rng_chance(r, 10000) ? 1 : 0);
    int grade = 2022 - p->birth_year - 5 + adj;
    bool moved_in = rng_chance(r, 30000), moves_out = rng_chance(r, 30000);

    for (int y = 0; y < 2; y++, grade++) {
        if (grade < 0 || grade > 12)
            continue;
        if ((y == 0 && moved_in) || (y == 1 && moves_out))
            continue;
        int graduated = grade == 12 && rng_chance(r, 880000);
        if (doe_row(j, p, y, grade, graduated) < 0)
            return -1;
        if (graduated)
            break;
        if (grade == 12) {
            /* Not graduated: half return for another year of grade 12. */
            if (!rng_chance(r, 500000))
                break;
            grade--;
        } else if (rng_chance(r, 20000)) {
            grade--; /* retained */
        }
    }
    return 0;
}

static int
gen_doe(struct job *j)
{
    const struct world *w = j->w;

    for (uint32_t i = 0; i < w->persons; i++) {
        struct person p;
        struct rng r;
        person_make(w, i, &p);
        if (2022 - p.birth_year > 19)
            continue; /* no draws needed: too old for K-12 */
        rng_seed(&r, w->seed, w->tag_doe, i);
        if (doe_person(j, &p, &r) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* uhs, csu, ccs: higher education, one system per student.               */

struct student {
    int system; /* index into hied_systems */
    int inst;
    int cred;
    int first, last; /* term indexes attended */
    int grad_year;   /* 0: no credential awarded in the window */
};

/* Graduation chance at the end of a term, by credential (ppm). */
static const uint32_t grad_ppm[NCREDS] = {350000, 200000, 180000, 300000,
                                          150000};

/* Decides whether person i studies in 2023-24 and where. The draws come
 * from the "hied" stream, not a system's, so all three systems agree. */
static bool
hied_student(const struct world *w, uint32_t i, const struct person *p,
             struct student *s)
{
    int age = 2023 - p->birth_year;
    struct rng r;

    if (age < 18 || age > 30)
        return false;
    rng_seed(&r, w->seed, w->tag_hied, i);
    if (!rng_chance(&r, 80000))
        return false;

    /* Students from poorer backgrounds go to community college more. */
    uint32_t sys_w[NHIED] = {(uint32_t)(350 - p->disadv / 4), 300,
                             (uint32_t)(350 + p->disadv / 2)};
    s->system = (int)pick_small(&r, sys_w, NHIED);
    const struct hied_system *hs = &hied_systems[s->system];
    s->inst = (int)pick_small(&r, hs->inst_weight, hs->ninst);
    s->cred = (int)pick_small(&r, hs->cred_weight, NCREDS);
    if (age < 22 && (s->cred == CRED_MA || s->cred == CRED_PHD))
        s->cred = CRED_BA;

    static const uint32_t first_w[3] = {70, 10, 20};
    s->first = (int)pick_small(&r, first_w, 3);
    s->last = s->first;
    s->grad_year = 0;
    for (int t = s->first; t < 3; t++) {
        s->last = t;
        if (rng_chance(&r, grad_ppm[s->cred])) {
            s->grad_year = term_end_year[t];
            break;
        }
        if (!rng_chance(&r, hs->persist_ppm))
            break;
    }
    return true;
}

/* Credits attempted in a term: mostly full time (12 to 18), part time more
 * often at community colleges; 2% not yet recorded (-1, stored as NULL). */
static int64_t
term_credits(struct rng *r, int system)
{
    if (rng_chance(r, 20000))
        return -1;
    if (rng_chance(r, system == 2 ? 450000 : 150000))
        return rng_range(r, 1, 11);
    return rng_range(r, 12, 18);
}

static int
gen_hied(struct job *j)
{
    const struct world *w = j->w;
    const struct hied_system *hs = &hied_systems[j->ag->hied];

    for (uint32_t i = 0; i < w->persons; i++) {
        struct person p;
        struct student s;
        struct rng cr;
        char inst[24];

        person_make(w, i, &p);
        if (!hied_student(w, i, &p, &s) || s.system != j->ag->hied)
            continue;
        snprintf(inst, sizeof(inst), "%s%02d", hs->prefix, s.inst + 1);
        /* Credits from a stream of their own, so that adding them left
         * every other draw (and every older result) unchanged. */
        rng_seed(&cr, w->seed, w->tag_credits, i);
        for (int t = s.first; t <= s.last; t++) {
            int64_t credits = term_credits(&cr, s.system);
            struct val v[] = {
                TXT(p.id),
                TXT(inst),
                TXT(terms[t]),
                TXT(cred_names[s.cred]),
                s.grad_year ? INT(s.grad_year) : NUL_V(),
                INT(p.birth_year),
                TXT(w->town_code[p.town]),
                credits >= 0 ? INT(credits) : NUL_V(),
            };
            if (insert_row(j, v, FQ_ARRAY_LEN(v)) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Agencies.                                                              */

#define HIED_CREATE                                                        \
    "CREATE TABLE enrollment (person_id TEXT NOT NULL, institution TEXT "  \
    "NOT NULL, term TEXT NOT NULL, credential TEXT NOT NULL, "             \
    "graduation_year INTEGER, birth_year INTEGER NOT NULL, town TEXT NOT " \
    "NULL, credits INTEGER)"
#define HIED_INSERT "INSERT INTO enrollment VALUES (?, ?, ?, ?, ?, ?, ?, ?)"

static const struct agency agencies[] = {
    {"dol", "ui_wages",
     "CREATE TABLE ui_wages (person_id TEXT NOT NULL, employer_id TEXT NOT "
     "NULL, quarter TEXT NOT NULL, wages INTEGER NOT NULL, town TEXT NOT "
     "NULL, industry TEXT NOT NULL)",
     "INSERT INTO ui_wages VALUES (?, ?, ?, ?, ?, ?)", gen_dol, -1},
    {"dss", "enrollment",
     "CREATE TABLE enrollment (person_id TEXT NOT NULL, program TEXT NOT "
     "NULL, month TEXT NOT NULL, town TEXT NOT NULL, household_size "
     "INTEGER NOT NULL, birth_year INTEGER NOT NULL, sex TEXT NOT NULL, "
     "benefit INTEGER NOT NULL)",
     "INSERT INTO enrollment VALUES (?, ?, ?, ?, ?, ?, ?, ?)", gen_dss, -1},
    {"doe", "k12_enrollment",
     "CREATE TABLE k12_enrollment (person_id TEXT NOT NULL, district TEXT "
     "NOT NULL, grade TEXT NOT NULL, school_year TEXT NOT NULL, graduated "
     "INTEGER NOT NULL)",
     "INSERT INTO k12_enrollment VALUES (?, ?, ?, ?, ?)", gen_doe, -1},
    {"uhs", "enrollment", HIED_CREATE, HIED_INSERT, gen_hied, 0},
    {"csu", "enrollment", HIED_CREATE, HIED_INSERT, gen_hied, 1},
    {"ccs", "enrollment", HIED_CREATE, HIED_INSERT, gen_hied, 2},
};
#define NAGENCIES FQ_ARRAY_LEN(agencies)

static const struct agency *
agency_find(const char *id, size_t len)
{
    for (size_t k = 0; k < NAGENCIES; k++)
        if (strlen(agencies[k].id) == len && !memcmp(agencies[k].id, id, len))
            return &agencies[k];
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Files.                                                                 */

static int
mkdir_p(struct job *j, const char *path)
{
    char buf[PATH_MAX];
    struct stat st;

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return job_fail(j, "%s: path too long", path);
    for (char *s = buf + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return job_fail(j, "cannot create %s: %s", buf, strerror(errno));
        *s = c;
        if (c == '\0')
            break;
    }
    if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode))
        return job_fail(j, "%s: not a directory", buf);
    return 0;
}

/* Durability for the rename: the data, then the directory entry. */
static int
fsync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

static int
job_paths(struct job *j)
{
    const char *id = j->ag->id;

    if (snprintf(j->dir, sizeof(j->dir), "%s/%s", j->outdir, id) >=
            (int)sizeof(j->dir) ||
        snprintf(j->path, sizeof(j->path), "%s/%s.sqlite", j->dir, id) >=
            (int)sizeof(j->path) ||
        snprintf(j->tmp, sizeof(j->tmp), "%s.tmp", j->path) >=
            (int)sizeof(j->tmp))
        return job_fail(j, "%s: output path too long", j->outdir);
    if (mkdir_p(j, j->dir) < 0)
        return -1;
    /* A .tmp left by a crashed run is ours to replace. */
    if (unlink(j->tmp) < 0 && errno != ENOENT)
        return job_fail(j, "cannot remove %s: %s", j->tmp, strerror(errno));
    return 0;
}

/* Bulk-load settings: nothing is durable until the rename, so SQLite's
 * own journaling and syncing would only cost time. */
static const char load_pragmas[] = "PRAGMA journal_mode=OFF;"
                                   "PRAGMA synchronous=OFF;"
                                   "PRAGMA locking_mode=EXCLUSIVE;"
                                   "PRAGMA temp_store=MEMORY;"
                                   "PRAGMA cache_size=-16384;";

static int
job_load(struct job *j)
{
    int rc = -1;

    if (sqlite3_open_v2(j->tmp, &j->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        db_fail(j, "open");
        goto out;
    }
    if (db_exec(j, load_pragmas) < 0 || db_exec(j, "BEGIN") < 0 ||
        db_exec(j, j->ag->create_sql) < 0)
        goto out;
    if (sqlite3_prepare_v2(j->db, j->ag->insert_sql, -1, &j->ins, NULL) !=
        SQLITE_OK) {
        db_fail(j, "prepare");
        goto out;
    }
    if (j->ag->gen(j) < 0)
        goto out;
    if (sqlite3_finalize(j->ins) != SQLITE_OK) {
        j->ins = NULL;
        db_fail(j, "finalize");
        goto out;
    }
    j->ins = NULL;
    if (db_exec(j, "COMMIT") < 0)
        goto out;
    rc = 0;
out:
    (void)sqlite3_finalize(j->ins); /* only on error; its code is known */
    j->ins = NULL;
    if (j->db && sqlite3_close(j->db) != SQLITE_OK && rc == 0)
        rc = job_fail(j, "%s: close: %s", j->tmp, sqlite3_errmsg(j->db));
    j->db = NULL;
    return rc;
}

static double
now_secs(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
job_run(struct job *j)
{
    double t0 = now_secs();

    if (job_paths(j) < 0)
        return;
    if (job_load(j) < 0)
        goto fail;
    if (fsync_path(j->tmp, false) < 0) {
        job_fail(j, "cannot sync %s: %s", j->tmp, strerror(errno));
        goto fail;
    }
    if (rename(j->tmp, j->path) < 0) {
        job_fail(j, "cannot rename %s to %s: %s", j->tmp, j->path,
                 strerror(errno));
        goto fail;
    }
    if (fsync_path(j->dir, true) < 0) {
        job_fail(j, "cannot sync %s: %s", j->dir, strerror(errno));
        return;
    }
    j->secs = now_secs() - t0;
    j->done = true;
    return;
fail:
    unlink(j->tmp);
}

/* ---------------------------------------------------------------------- */
/* Worker threads: agencies are independent, so one thread per file.     */

struct pool {
    pthread_mutex_t lock;
    struct job *jobs;
    size_t njobs;
    size_t next;
    bool stop; /* a job failed: start no more */
};

static void *
worker(void *arg)
{
    struct pool *pl = arg;

    for (;;) {
        pthread_mutex_lock(&pl->lock);
        struct job *j = NULL;
        if (!pl->stop && pl->next < pl->njobs)
            j = &pl->jobs[pl->next++];
        pthread_mutex_unlock(&pl->lock);
        if (!j)
            return NULL;
        job_run(j);
        if (j->failed) {
            pthread_mutex_lock(&pl->lock);
            pl->stop = true;
            pthread_mutex_unlock(&pl->lock);
        }
    }
}

static int
run_jobs(struct job *jobs, size_t njobs, unsigned nthreads)
{
    struct pool pl = {.jobs = jobs, .njobs = njobs};
    pthread_t tid[NAGENCIES];
    unsigned started = 0;

    if (pthread_mutex_init(&pl.lock, NULL) != 0)
        return -1;
    if (nthreads > njobs)
        nthreads = (unsigned)njobs;
    for (; started < nthreads; started++)
        if (pthread_create(&tid[started], NULL, worker, &pl) != 0)
            break;
    if (started == 0)
        worker(&pl); /* no threads to be had: do it ourselves */
    for (unsigned k = 0; k < started; k++)
        pthread_join(tid[k], NULL);
    pthread_mutex_destroy(&pl.lock);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Command line.                                                          */

struct opts {
    const char *out;
    uint32_t persons;
    uint64_t seed;
    unsigned jobs;
    const struct agency *list[NAGENCIES];
    size_t nlist;
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: fedq-synth --out DIR [--persons N] [--seed S]\n"
            "                  [--agencies LIST] [--jobs J]\n"
            "\n"
            "Writes deterministic synthetic data, DIR/<agency>/<agency>"
            ".sqlite, for\n"
            "each agency in LIST. The same seed and persons give the same "
            "bytes.\n"
            "\n"
            "  -o, --out DIR        output directory (created if missing)\n"
            "  -n, --persons N      population size, %u..%u (default %u)\n"
            "  -s, --seed S         64-bit seed, decimal (default %u)\n"
            "  -a, --agencies LIST  comma-separated subset of\n"
            "                       %s (default: all)\n"
            "  -j, --jobs J         agencies generated in parallel, 1..%zu\n"
            "                       (default: online CPUs)\n"
            "  -h, --help           this text\n",
            PERSONS_MIN, PERSONS_MAX, PERSONS_DEFAULT, SEED_DEFAULT,
            AGENCIES_ALL, NAGENCIES);
}

static int
parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *ret = v;
    return 0;
}

static int
parse_agencies(const char *s, struct opts *o)
{
    o->nlist = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        const struct agency *ag = agency_find(s, len);

        if (!ag) {
            fprintf(stderr,
                    "fedq-synth: unknown agency '%.*s' in --agencies "
                    "(known: %s)\n",
                    (int)len, s, AGENCIES_ALL);
            return -1;
        }
        for (size_t k = 0; k < o->nlist; k++) {
            if (o->list[k] == ag) {
                fprintf(stderr, "fedq-synth: agency '%s' given twice\n",
                        ag->id);
                return -1;
            }
        }
        o->list[o->nlist++] = ag;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"persons", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"agencies", required_argument, NULL, 'a'},
        {"jobs", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int c;

    while ((c = getopt_long(argc, argv, "o:n:s:a:j:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->out = optarg;
            break;
        case 'n':
            if (parse_u64(optarg, PERSONS_MAX, &v) < 0 || v < PERSONS_MIN) {
                fprintf(stderr,
                        "fedq-synth: --persons must be a whole number "
                        "from %u to %u, got '%s'\n",
                        PERSONS_MIN, PERSONS_MAX, optarg);
                return -1;
            }
            o->persons = (uint32_t)v;
            break;
        case 's':
            if (parse_u64(optarg, UINT64_MAX, &o->seed) < 0) {
                fprintf(stderr,
                        "fedq-synth: --seed must be a non-negative "
                        "decimal 64-bit number, got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case 'a':
            if (parse_agencies(optarg, o) < 0)
                return -1;
            break;
        case 'j':
            if (parse_u64(optarg, NAGENCIES, &v) < 0 || v < 1) {
                fprintf(stderr,
                        "fedq-synth: --jobs must be from 1 to %zu, got "
                        "'%s'\n",
                        NAGENCIES, optarg);
                return -1;
            }
            o->jobs = (unsigned)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "fedq-synth: see --help\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "fedq-synth: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->out || !*o->out) {
        fprintf(stderr, "fedq-synth: --out DIR is required (see --help)\n");
        return -1;
    }
    return 0;
}

static void
print_results(const struct opts *o, const struct job *jobs, double secs)
{
    int64_t total = 0;

    for (size_t k = 0; k < o->nlist; k++) {
        printf("%s\t%s\t%s=%" PRId64 "\n", jobs[k].ag->id, jobs[k].path,
               jobs[k].ag->table, jobs[k].rows);
        total += jobs[k].rows;
    }
    /* Timings go to stderr so that stdout is the same on every run. */
    fprintf(stderr,
            "fedq-synth: %u persons, seed %" PRIu64 ", %" PRId64
            " rows in %.2fs (",
            o->persons, o->seed, total, secs);
    for (size_t k = 0; k < o->nlist; k++)
        fprintf(stderr, "%s%s %.2fs", k ? ", " : "", jobs[k].ag->id,
                jobs[k].secs);
    fprintf(stderr, "; %u jobs)\n", o->jobs);
}

int
main(int argc, char **argv)
{
    struct opts o = {.persons = PERSONS_DEFAULT, .seed = SEED_DEFAULT};
    struct world w;
    struct job jobs[NAGENCIES];
    int ret = 1;

    if (parse_args(argc, argv, &o) < 0)
        return 2;
    if (o.nlist == 0 && parse_agencies(AGENCIES_ALL, &o) < 0)
        return 2;
    if (o.jobs == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.jobs = n < 1 ? 1 : (n > (long)NAGENCIES ? NAGENCIES : (unsigned)n);
    }

    /* Each connection stays on one thread; memory statistics would take a
     * global mutex on every allocation. */
    if (sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) != SQLITE_OK) {
        fprintf(stderr, "fedq-synth: cannot configure sqlite\n");
        return 1;
    }

    double t0 = now_secs();
    if (world_init(&w, o.seed, o.persons) < 0) {
        fprintf(stderr, "fedq-synth: out of memory\n");
        return 1;
    }
    memset(jobs, 0, sizeof(jobs));
    for (size_t k = 0; k < o.nlist; k++) {
        jobs[k].w = &w;
        jobs[k].ag = o.list[k];
        jobs[k].outdir = o.out;
    }
    if (run_jobs(jobs, o.nlist, o.jobs) < 0) {
        fprintf(stderr, "fedq-synth: cannot start worker threads\n");
        goto out;
    }
    ret = 0;
    for (size_t k = 0; k < o.nlist; k++) {
        if (jobs[k].failed) {
            fprintf(stderr, "fedq-synth: %s: %s\n", jobs[k].ag->id,
                    jobs[k].err);
            ret = 1;
        } else if (!jobs[k].done) {
            /* Not started because another agency failed first. */
            fprintf(stderr, "fedq-synth: %s: skipped after an error\n",
                    jobs[k].ag->id);
            ret = 1;
        }
    }
    if (ret == 0)
        print_results(&o, jobs, now_secs() - t0);
out:
    world_free(&w);
    return ret;
}
