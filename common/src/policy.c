/*
 * Agency release policies: the directive tables that map a policy
 * document onto struct fq_policy, the semantic checks the tables cannot
 * express (unique ids, real dates, known aggregates, recorded rationales,
 * identities of the policy's own federation), and fq_policy_check, the one
 * decision the gateway and the agent both take. Signatures live in
 * policy_sign.c; nothing here trusts a document more than its parse.
 *
 * Every refusal names the agency, the agreement and the missing term, so a
 * steward reading the log knows which clause to change.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "fq/identity.h"
#include "fq/plan.h"
#include "fq/policy.h"

#include <openssl/evp.h>

#define POLICY_ID_MAX      63
#define POLICY_TEXT_MAX    1024
#define POLICY_MAX_ITEMS   256
#define POLICY_MAX_AGREE   256
#define POLICY_MIN_CELL    1000000
#define POLICY_CELL_BUDGET 1000000000
#define POLICY_MAX_VERSION 1000000000

static const char *const review_names[] = {"none", "every_query", NULL};
static const char *const zero_names[] = {"release", "suppress", NULL};
static const char *const perturb_names[] = {"cell_key", "none", NULL};
static const char *const ledger_names[] = {"on", "off", NULL};
#define UNSET_TEXT "-1" /* an INT release parameter that was not given */

/* Indexed by Fedq__V1__AggregateKind; policies spell kinds this way. */
static const char *const aggregate_names[] = {
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT] = "COUNT",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM] = "SUM",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_AVG] = "AVG",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT] =
        "COUNT_DISTINCT",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR] = "VAR",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_STDDEV] = "STDDEV",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_HISTOGRAM] = "HISTOGRAM",
    [FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_QUANTILE] = "QUANTILE",
};

static int check_dataset(void *obj, struct fq_cfg_error *err);
static int check_release(void *obj, struct fq_cfg_error *err);
static int check_agreement(void *obj, struct fq_cfg_error *err);
static int check_policy(void *obj, struct fq_cfg_error *err);

static const struct fq_cfg_directive dataset_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct fq_policy_dataset, line)},
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_dataset, name),
     .min = 1,
     .max = 63,
     .doc = "dataset name at the agency"},
    {.key = "columns",
     .type = FQ_CFG_STRLIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_dataset, columns),
     .min = 1,
     .max = POLICY_MAX_ITEMS,
     .count_offset = offsetof(struct fq_policy_dataset, n_columns),
     .doc = "every column a query may use, in any clause"},
    {.key = "aggregates",
     .type = FQ_CFG_STRLIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_dataset, aggregates),
     .min = 1,
     .max = 8,
     .count_offset = offsetof(struct fq_policy_dataset, n_aggregates),
     .doc = "COUNT (also COUNT(*)), COUNT_DISTINCT, SUM, AVG, VAR, STDDEV, "
            "HISTOGRAM, QUANTILE"},
    {0},
};

static const struct fq_cfg_directive release_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct fq_policy_release, line)},
    {.key = "min_cell_count",
     .type = FQ_CFG_INT,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_release, min_cell_count),
     .min = 1,
     .max = POLICY_MIN_CELL,
     .doc = "cells with fewer contributors are suppressed"},
    {.key = "min_cell_count_rationale",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_release, min_cell_count_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why this threshold (the agreement's clause, a standard)"},
    /* Defaults are sentinels: absent must be told from given, since a
     * given parameter needs its rationale; check_release sets the real
     * defaults. */
    {.key = "zero_cells",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct fq_policy_release, zero_cells),
     .names = zero_names,
     .doc = "release (default) or suppress cells whose true value is 0"},
    {.key = "zero_cells_rationale",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_policy_release, zero_cells_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why (required with zero_cells)"},
    {.key = "dominance_min_units",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, dominance_min_units),
     .min = 1,
     .max = 1000,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "magnitude cells with fewer contributor units are suppressed "
            "(default 3)"},
    {.key = "dominance_top_percent",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, dominance_top_percent),
     .min = 1,
     .max = 100,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "magnitude cells whose largest unit holds this % or more are "
            "suppressed (default 80)"},
    {.key = "p_percent",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, p_percent),
     .min = 0,
     .max = 100,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "the p% rule: suppressed when the total less the two largest "
            "is under p % of the largest (default 0: off)"},
    {.key = "dominance_rationale",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_policy_release, dominance_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why (required with any dominance parameter)"},
    {.key = "protection_level",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, protection_level),
     .min = 0,
     .max = POLICY_MIN_CELL,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "a suppressed count's feasible interval, given everything "
            "released, is at least this wide (default 5)"},
    {.key = "protection_percent",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, protection_percent),
     .min = 0,
     .max = 100,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "a suppressed magnitude's interval is at least this % of its "
            "value (default 10)"},
    {.key = "protection_rationale",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_policy_release, protection_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why (required with a protection parameter)"},
    {.key = "perturbation",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct fq_policy_release, perturbation),
     .names = perturb_names,
     .doc = "cell_key (default: consistent noise from the federation's "
            "perturbation table) or none (exact counts)"},
    {.key = "rounding_base",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, rounding_base),
     .min = 1,
     .max = 10,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "consistent random rounding of released counts to this base "
            "(3 or 5; default 1: none)"},
    {.key = "perturbation_rationale",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_policy_release, perturbation_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why (required with perturbation or rounding_base)"},
    {.key = "differencing_ledger",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct fq_policy_release, differencing_ledger),
     .names = ledger_names,
     .doc = "on (default): the agents suppress a cell whose difference from "
            "any cell released before (same dataset and data vintage) is a "
            "small cell; off"},
    {.key = "differencing_ledger_rationale",
     .type = FQ_CFG_STRING,
     .offset =
         offsetof(struct fq_policy_release, differencing_ledger_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why (required with differencing_ledger)"},
    {.key = "decimals",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, decimals),
     .min = 0,
     .max = 6,
     .def = UNSET_TEXT,
     .flags = FQ_CFG_DEFAULT_UNSET,
     .doc = "decimal places of means and variances (default 2)"},
    {.key = "decimals_rationale",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_policy_release, decimals_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why (required with decimals)"},
    {.key = "cell_budget",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_policy_release, cell_budget),
     .min = 1,
     .max = POLICY_CELL_BUDGET,
     .doc = "most distinct cells one analyst may have released from one "
            "dataset of the agency per data vintage (absent: 10000)"},
    {.key = "cell_budget_rationale",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_policy_release, cell_budget_rationale),
     .min = 1,
     .max = POLICY_TEXT_MAX,
     .doc = "why this budget (required with cell_budget)"},
    {0},
};

static const struct fq_cfg_directive agreement_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct fq_policy_agreement, line)},
    {.key = "id",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, id),
     .min = 1,
     .max = POLICY_ID_MAX,
     .doc = "the agreement's id (DSA-2026-014); queries name it"},
    {.key = "title",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, title),
     .min = 1,
     .max = 200,
     .doc = "what the agreement is about, for people"},
    {.key = "legal_basis",
     .type = FQ_CFG_STRLIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, legal_basis),
     .min = 1,
     .max = 16,
     .count_offset = offsetof(struct fq_policy_agreement, n_legal_basis),
     .doc = "the laws that allow the release (\"SNAP 7 CFR 272.8\")"},
    {.key = "purposes",
     .type = FQ_CFG_STRLIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, purposes),
     .min = 1,
     .max = 32,
     .count_offset = offsetof(struct fq_policy_agreement, n_purposes),
     .doc = "purposes a query may state (matched exactly)"},
    {.key = "analysts",
     .type = FQ_CFG_STRLIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, analysts),
     .min = 1,
     .max = POLICY_MAX_ITEMS,
     .count_offset = offsetof(struct fq_policy_agreement, n_analysts),
     .doc = "analyst identities (spiffe://FED/analyst/NAME), or \"*\""},
    {.key = "valid_from",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, valid_from),
     .min = 10,
     .max = 10,
     .doc = "first day the agreement holds (YYYY-MM-DD, UTC)"},
    {.key = "valid_until",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, valid_until),
     .min = 10,
     .max = 10,
     .doc = "last day the agreement holds (YYYY-MM-DD, UTC)"},
    {.key = "datasets",
     .type = FQ_CFG_LIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, datasets),
     .min = 1,
     .max = 64,
     .sub = dataset_table,
     .elem_size = sizeof(struct fq_policy_dataset),
     .count_offset = offsetof(struct fq_policy_agreement, n_datasets),
     .check = check_dataset,
     .doc = "the datasets, columns and aggregates covered"},
    {.key = "release",
     .type = FQ_CFG_SECTION,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, release),
     .sub = release_table,
     .check = check_release,
     .doc = "release parameters, each with its rationale"},
    {.key = "review",
     .type = FQ_CFG_ENUM,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy_agreement, review),
     .names = review_names,
     .doc = "none, or every_query (a steward approves each query)"},
    {.key = "pool_with",
     .type = FQ_CFG_STRLIST,
     .offset = offsetof(struct fq_policy_agreement, pool_with),
     .max = 64,
     .count_offset = offsetof(struct fq_policy_agreement, n_pool_with),
     .doc = "agencies results may be pooled with (absent: none)"},
    {0},
};

static const struct fq_cfg_directive policy_table[] = {
    {.key = "agency",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy, agency),
     .min = 1,
     .max = FQ_NAME_MAX,
     .doc = "the agency whose policy this is"},
    {.key = "federation",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy, federation),
     .min = 1,
     .max = FQ_FEDERATION_MAX,
     .doc = "the federation its identities belong to"},
    {.key = "version",
     .type = FQ_CFG_INT,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy, version),
     .min = 1,
     .max = POLICY_MAX_VERSION,
     .doc = "raised with every change"},
    {.key = "agreements",
     .type = FQ_CFG_LIST,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_policy, agreements),
     .min = 1,
     .max = POLICY_MAX_AGREE,
     .sub = agreement_table,
     .elem_size = sizeof(struct fq_policy_agreement),
     .count_offset = offsetof(struct fq_policy, n_agreements),
     .check = check_agreement,
     .doc = "the data sharing agreements the agency has signed"},
    {0},
};

/* The document is one mapping under "policy:", so a policy file cannot be
 * mistaken for any other configuration. The section maps onto struct
 * fq_policy itself (offset 0). */
const struct fq_cfg_directive fq_policy_table[] = {
    {.key = "policy",
     .type = FQ_CFG_SECTION,
     .flags = FQ_CFG_REQUIRED,
     .offset = 0,
     .sub = policy_table,
     .check = check_policy,
     .doc = "an agency's release policy"},
    {0},
};

static bool
blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    }
    return true;
}

/* The index of s in list, or -1. */
static ssize_t
find(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* The first item listed twice, or NULL. */
static const char *
duplicate(char *const *list, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (find(list, i, list[i]) >= 0)
            return list[i];
    }
    return NULL;
}

/* Ids travel in requests and answers: printable, no spaces or quotes. */
static bool
id_valid(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            return false;
    }
    return true;
}

static bool
aggregate_known(const char *name)
{
    for (size_t i = 0; i < FQ_ARRAY_LEN(aggregate_names); i++) {
        if (aggregate_names[i] && strcmp(aggregate_names[i], name) == 0)
            return true;
    }
    return false;
}

static int
check_dataset(void *obj, struct fq_cfg_error *err)
{
    const struct fq_policy_dataset *d = obj;
    const char *dup;

    if (!fq_name_valid(d->name))
        FQ_CFG_FAIL(err, "dataset name '%s' must match [a-z0-9][a-z0-9_-]*",
                    d->name);
    if ((dup = duplicate(d->columns, d->n_columns)))
        FQ_CFG_FAIL(err, "dataset '%s': column '%s' listed twice", d->name,
                    dup);
    for (size_t i = 0; i < d->n_columns; i++) {
        if (d->columns[i][0] == '\0' || !id_valid(d->columns[i]))
            FQ_CFG_FAIL(err, "dataset '%s': column '%s' is not a column name",
                        d->name, d->columns[i]);
    }
    for (size_t i = 0; i < d->n_aggregates; i++) {
        if (!aggregate_known(d->aggregates[i]))
            FQ_CFG_FAIL(err,
                        "dataset '%s': unknown aggregate '%s' (COUNT, "
                        "COUNT_DISTINCT, SUM, AVG, VAR, STDDEV, HISTOGRAM, "
                        "QUANTILE)",
                        d->name, d->aggregates[i]);
    }
    if ((dup = duplicate(d->aggregates, d->n_aggregates)))
        FQ_CFG_FAIL(err, "dataset '%s': aggregate '%s' listed twice", d->name,
                    dup);
    return 0;
}

/* A parameter group given needs its rationale; one left out gets its
 * defaults. -1 (UNSET_TEXT) marks an integer left out. */
static int
check_group(const char *what, bool given, const char *rationale,
            struct fq_cfg_error *err)
{
    if (!given && !rationale)
        return 0;
    if (!rationale)
        FQ_CFG_FAIL(err, "%s needs %s_rationale", what, what);
    if (blank(rationale))
        FQ_CFG_FAIL(err, "%s_rationale must say why", what);
    return 0;
}

static void
default_int(int64_t *v, int64_t def)
{
    if (*v < 0)
        *v = def;
}

/* A parameter without a reason cannot be reviewed, so none is accepted. */
static int
check_release(void *obj, struct fq_cfg_error *err)
{
    struct fq_policy_release *r = obj;
    bool dom = r->dominance_min_units >= 0 || r->dominance_top_percent >= 0 ||
               r->p_percent >= 0;
    bool prot = r->protection_level >= 0 || r->protection_percent >= 0;
    bool pert =
        r->perturbation != FQ_POLICY_PERTURB_CELL_KEY || r->rounding_base >= 0;

    if (blank(r->min_cell_count_rationale))
        FQ_CFG_FAIL(err, "min_cell_count_rationale must say why");
    if (check_group("zero_cells", r->zero_cells != FQ_POLICY_ZERO_RELEASE,
                    r->zero_cells_rationale, err) < 0 ||
        check_group("dominance", dom, r->dominance_rationale, err) < 0 ||
        check_group("protection", prot, r->protection_rationale, err) < 0 ||
        check_group("perturbation", pert, r->perturbation_rationale, err) < 0 ||
        check_group("decimals", r->decimals >= 0, r->decimals_rationale, err) <
            0 ||
        check_group("differencing_ledger",
                    r->differencing_ledger != FQ_POLICY_LEDGER_ON,
                    r->differencing_ledger_rationale, err) < 0)
        return FQ_EINVAL;
    default_int(&r->dominance_min_units, FQ_POLICY_DOMINANCE_UNITS_DEFAULT);
    default_int(&r->dominance_top_percent, FQ_POLICY_DOMINANCE_PERCENT_DEFAULT);
    default_int(&r->p_percent, 0);
    default_int(&r->protection_level, FQ_POLICY_PROTECTION_DEFAULT);
    default_int(&r->protection_percent, FQ_POLICY_PROTECTION_PCT_DEFAULT);
    default_int(&r->rounding_base, 1);
    default_int(&r->decimals, FQ_POLICY_DECIMALS_DEFAULT);
    if (r->cell_budget == 0) { /* not given (the bounds refuse 0) */
        r->cell_budget = FQ_POLICY_CELL_BUDGET_DEFAULT;
    } else if (!r->cell_budget_rationale) {
        FQ_CFG_FAIL(err, "cell_budget needs cell_budget_rationale");
    } else if (blank(r->cell_budget_rationale)) {
        FQ_CFG_FAIL(err, "cell_budget_rationale must say why");
    }
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
 * days_from_civil), so no time zone or libc table is involved. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* 'YYYY-MM-DD', a day that exists; 0 and the day's first second, or -1. */
static int
date_parse(const char *s, time_t *ret)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int v[8];

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0, k = 0; i < 10; i++) {
        if (i == 4 || i == 7)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v[k++] = s[i] - '0';
    }
    int y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
    int m = v[4] * 10 + v[5], d = v[6] * 10 + v[7];
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
        (m == 2 && d == 29 && !leap))
        return -1;
    *ret = (time_t)(days_from_civil(y, m, d) * 86400);
    return 0;
}

static int
check_strings(const char *what, char *const *list, size_t n,
              struct fq_cfg_error *err)
{
    const char *dup = duplicate(list, n);

    for (size_t i = 0; i < n; i++) {
        if (blank(list[i]))
            FQ_CFG_FAIL(err, "%s: an entry is empty", what);
    }
    if (dup)
        FQ_CFG_FAIL(err, "%s: '%s' listed twice", what, dup);
    return 0;
}

static int
check_agreement_dates(struct fq_policy_agreement *a, struct fq_cfg_error *err)
{
    if (date_parse(a->valid_from, &a->valid_from_time) < 0)
        FQ_CFG_FAIL(err,
                    "agreement %s: valid_from '%s' is not a date "
                    "(YYYY-MM-DD)",
                    a->id, a->valid_from);
    if (date_parse(a->valid_until, &a->valid_until_time) < 0)
        FQ_CFG_FAIL(err,
                    "agreement %s: valid_until '%s' is not a date "
                    "(YYYY-MM-DD)",
                    a->id, a->valid_until);
    if (a->valid_until_time < a->valid_from_time)
        FQ_CFG_FAIL(err, "agreement %s: valid_until %s is before valid_from %s",
                    a->id, a->valid_until, a->valid_from);
    a->valid_until_time += 86399; /* inclusive: to 23:59:59Z */
    return 0;
}

static int
check_agreement(void *obj, struct fq_cfg_error *err)
{
    struct fq_policy_agreement *a = obj;
    const char *dup;

    if (!id_valid(a->id))
        FQ_CFG_FAIL(err,
                    "agreement id '%s' must be letters, digits, '-', '_' "
                    "and '.'",
                    a->id);
    if (check_strings("legal_basis", a->legal_basis, a->n_legal_basis, err) <
            0 ||
        check_strings("purposes", a->purposes, a->n_purposes, err) < 0 ||
        check_strings("analysts", a->analysts, a->n_analysts, err) < 0 ||
        check_agreement_dates(a, err) < 0)
        return FQ_EINVAL;
    for (size_t i = 0; i < a->n_pool_with; i++) {
        if (!fq_name_valid(a->pool_with[i]))
            FQ_CFG_FAIL(err, "agreement %s: pool_with '%s' is not an agency",
                        a->id, a->pool_with[i]);
    }
    if ((dup = duplicate(a->pool_with, a->n_pool_with)))
        FQ_CFG_FAIL(err, "agreement %s: pool_with '%s' listed twice", a->id,
                    dup);
    for (size_t i = 1; i < a->n_datasets; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a->datasets[i].name, a->datasets[j].name) == 0) {
                err->line = a->datasets[i].line;
                FQ_CFG_FAIL(err, "agreement %s: dataset '%s' listed twice",
                            a->id, a->datasets[i].name);
            }
        }
    }
    return 0;
}

/* Analysts need the federation, which only the whole document knows. */
static int
check_analysts(const struct fq_policy *p, const struct fq_policy_agreement *a,
               struct fq_cfg_error *err)
{
    struct fq_identity id;

    err->line = a->line;
    for (size_t i = 0; i < a->n_analysts; i++) {
        const char *s = a->analysts[i];
        if (strcmp(s, "*") == 0)
            continue;
        if (fq_identity_parse(s, strlen(s), &id) < 0 ||
            id.role != FQ_ROLE_ANALYST ||
            strcmp(id.federation, p->federation) != 0)
            FQ_CFG_FAIL(err,
                        "agreement %s: analyst '%s' is not \"*\" or "
                        "spiffe://%s/analyst/NAME",
                        a->id, s, p->federation);
    }
    for (size_t i = 0; i < a->n_pool_with; i++) {
        if (strcmp(a->pool_with[i], p->agency) == 0)
            FQ_CFG_FAIL(err, "agreement %s: pool_with names %s itself", a->id,
                        p->agency);
    }
    return 0;
}

static int
check_policy(void *obj, struct fq_cfg_error *err)
{
    const struct fq_policy *p = obj;

    if (!fq_name_valid(p->agency))
        FQ_CFG_FAIL(err, "agency '%s' must match [a-z0-9][a-z0-9_-]*",
                    p->agency);
    if (!fq_federation_valid(p->federation))
        FQ_CFG_FAIL(err, "federation '%s' must match [a-z0-9][a-z0-9.-]*",
                    p->federation);
    for (size_t i = 0; i < p->n_agreements; i++) {
        const struct fq_policy_agreement *a = &p->agreements[i];
        if (check_analysts(p, a, err) < 0)
            return FQ_EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a->id, p->agreements[j].id) == 0)
                FQ_CFG_FAIL(err, "agreement %s listed twice", a->id);
        }
    }
    return 0;
}

/* Lowercase hex SHA-256 of the bytes; the name of this policy version. */
static int
policy_hash(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return FQ_EINTERNAL;
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int
fq_policy_parse_buf(const char *name, const char *data, size_t len,
                    struct fq_policy **ret, char *err, size_t errlen)
{
    struct fq_arena *arena = NULL;
    struct fq_policy *p = NULL;
    int rc = FQ_ENOMEM;

    if (len > FQ_POLICY_MAX_BYTES) {
        snprintf(err, errlen, "%s: policy too large (limit %d bytes)", name,
                 FQ_POLICY_MAX_BYTES);
        return FQ_ETOOBIG;
    }
    if (!(arena = fq_arena_new(FQ_CFG_DOC_MEMORY)) ||
        !(p = fq_arena_alloc(arena, sizeof(*p))) ||
        !(p->doc.path = fq_arena_strdup(arena, name))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto out;
    }
    p->doc.arena = arena;
    rc = fq_cfg_load_buf(name, NULL, data, len, fq_policy_table, NULL, p, arena,
                         err, errlen);
    if (rc == 0 && (rc = policy_hash(data, len, p->hash)) < 0)
        snprintf(err, errlen, "%s: cannot hash: %s", name, fq_strerror(rc));
out:
    if (rc < 0) {
        fq_arena_free(arena);
        return rc;
    }
    *ret = p;
    return 0;
}

int
fq_policy_parse(const char *path, struct fq_policy **ret, char *err,
                size_t errlen)
{
    struct fq_buf b;
    int rc;

    fq_buf_init(&b, FQ_POLICY_MAX_BYTES);
    if ((rc = fq_buf_read_file(&b, path)) == FQ_ETOOBIG)
        snprintf(err, errlen, "%s: policy too large (limit %d bytes)", path,
                 FQ_POLICY_MAX_BYTES);
    else if (rc < 0)
        snprintf(err, errlen, "cannot read policy '%s': %s", path,
                 fq_strerror(rc));
    else
        rc = fq_policy_parse_buf(path, fq_buf_str(&b), fq_buf_len(&b), ret, err,
                                 errlen);
    fq_buf_release(&b);
    return rc;
}

void
fq_policy_free(struct fq_policy *p)
{
    fq_cfg_doc_free(p ? &p->doc : NULL);
}

/* ---- the decision ------------------------------------------------------- */

/* The state of one check: the policy, the agreement, where the message
 * goes. Every refusal goes through deny(). */
struct policy_check {
    const struct fq_policy *p;
    const struct fq_policy_agreement *a;
    const struct fq_policy_dataset *d;
    char *err;
    size_t errlen;
};

static int deny(struct policy_check *c, const char *fmt, ...) FQ_PRINTF(2, 3);

/* "agreement A of AGENCY " + the missing term; FQ_EPERM. */
static int
deny(struct policy_check *c, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(c->err, c->errlen, "agreement %s of %s ", c->a->id,
                     c->p->agency);

    if (n >= 0 && (size_t)n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return FQ_EPERM;
}

static int
check_column(struct policy_check *c, const char *column)
{
    if (!column || find(c->d->columns, c->d->n_columns, column) < 0)
        return deny(c, "does not list column '%s' of %s", column ? column : "",
                    c->d->name);
    return 0;
}

/* Every column the filter tree reads, at any depth (bounded like plans). */
static int
check_filter(struct policy_check *c, const Fedq__V1__Predicate *pr, int depth)
{
    const Fedq__V1__Conjunction *all;
    const Fedq__V1__Disjunction *any;
    int rc = 0;

    if (!pr)
        return 0;
    if (depth > FQ_PLAN_MAX_DEPTH) {
        snprintf(c->err, c->errlen, "filter nested deeper than %d levels",
                 FQ_PLAN_MAX_DEPTH);
        return FQ_EINVAL;
    }
    switch (pr->node_case) {
    case FEDQ__V1__PREDICATE__NODE_COMPARE:
        return check_column(c, pr->compare ? pr->compare->column : NULL);
    case FEDQ__V1__PREDICATE__NODE_BETWEEN:
        return check_column(c, pr->between ? pr->between->column : NULL);
    case FEDQ__V1__PREDICATE__NODE_IN:
        return check_column(c, pr->in ? pr->in->column : NULL);
    case FEDQ__V1__PREDICATE__NODE_IS_NULL:
        return check_column(c, pr->is_null ? pr->is_null->column : NULL);
    case FEDQ__V1__PREDICATE__NODE_NOT:
        return check_filter(c, pr->not_ ? pr->not_->term : NULL, depth + 1);
    case FEDQ__V1__PREDICATE__NODE_ALL:
        all = pr->all;
        for (size_t i = 0; all && rc == 0 && i < all->n_terms; i++)
            rc = check_filter(c, all->terms[i], depth + 1);
        return rc;
    case FEDQ__V1__PREDICATE__NODE_ANY:
        any = pr->any;
        for (size_t i = 0; any && rc == 0 && i < any->n_terms; i++)
            rc = check_filter(c, any->terms[i], depth + 1);
        return rc;
    default:
        return 0;
    }
}

static int
check_aggregate(struct policy_check *c, const Fedq__V1__Aggregate *agg)
{
    const char *kind =
        agg->kind >= 0 && (size_t)agg->kind < FQ_ARRAY_LEN(aggregate_names)
            ? aggregate_names[agg->kind]
            : NULL;

    if (!kind || find(c->d->aggregates, c->d->n_aggregates, kind) < 0)
        return deny(c, "does not list aggregate %s on %s",
                    kind ? kind : "(unknown)", c->d->name);
    /* COUNT(*) reads no column. */
    if (agg->kind == FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT &&
        (!agg->column || !agg->column[0]))
        return 0;
    return check_column(c, agg->column);
}

/* The dataset, and every column and aggregate the plan uses. */
static int
check_plan(struct policy_check *c, const Fedq__V1__Plan *plan)
{
    const char *ds = plan && plan->dataset ? plan->dataset : "";
    int rc = 0;

    for (size_t i = 0; i < c->a->n_datasets && !c->d; i++) {
        if (strcmp(c->a->datasets[i].name, ds) == 0)
            c->d = &c->a->datasets[i];
    }
    if (!c->d)
        return deny(c, "does not list dataset '%s'", ds);
    for (size_t i = 0; rc == 0 && i < plan->n_group_by; i++)
        rc = check_column(c, plan->group_by[i]);
    if (rc == 0)
        rc = check_filter(c, plan->filter, 0);
    for (size_t i = 0; rc == 0 && i < plan->n_aggregates; i++)
        rc = check_aggregate(c, plan->aggregates[i]);
    return rc;
}

static int
check_time(struct policy_check *c, time_t now)
{
    if (now < c->a->valid_from_time) {
        snprintf(c->err, c->errlen,
                 "agreement %s of %s is not valid before %s (valid %s to %s)",
                 c->a->id, c->p->agency, c->a->valid_from, c->a->valid_from,
                 c->a->valid_until);
        return FQ_EPRECOND;
    }
    if (now > c->a->valid_until_time) {
        snprintf(c->err, c->errlen,
                 "agreement %s of %s expired on %s (valid %s to %s)", c->a->id,
                 c->p->agency, c->a->valid_until, c->a->valid_from,
                 c->a->valid_until);
        return FQ_EPRECOND;
    }
    return 0;
}

static int
check_who(struct policy_check *c, const struct fq_policy_request *r)
{
    const char *analyst = r->analyst ? r->analyst : "";
    const char *purpose = r->purpose ? r->purpose : "";

    if (find(c->a->analysts, c->a->n_analysts, "*") < 0 &&
        find(c->a->analysts, c->a->n_analysts, analyst) < 0)
        return deny(c, "does not list analyst '%s'", analyst);
    if (find(c->a->purposes, c->a->n_purposes, purpose) < 0)
        return deny(c, "does not list purpose '%s'", purpose);
    for (size_t i = 0; i < r->n_pooled_with; i++) {
        const char *other = r->pooled_with[i] ? r->pooled_with[i] : "";
        /* The gateway sends every agency of the query, this one too. */
        if (strcmp(other, c->p->agency) == 0)
            continue;
        if (find(c->a->pool_with, c->a->n_pool_with, other) < 0)
            return deny(c, "does not allow pooling with %s", other);
    }
    return 0;
}

int
fq_policy_check(const struct fq_policy *p, const struct fq_policy_request *r,
                const struct fq_policy_agreement **ret_agreement, char *err,
                size_t errlen)
{
    struct policy_check c = {.p = p, .err = err, .errlen = errlen};
    const char *id = r->agreement ? r->agreement : "";
    int rc;

    for (size_t i = 0; i < p->n_agreements && !c.a; i++) {
        if (strcmp(p->agreements[i].id, id) == 0)
            c.a = &p->agreements[i];
    }
    if (!c.a) {
        snprintf(err, errlen,
                 "%s has signed no agreement '%s' (policy "
                 "version %" PRId64 ")",
                 p->agency, id, p->version);
        return FQ_EPERM;
    }
    if ((rc = check_time(&c, r->now)) < 0 || (rc = check_who(&c, r)) < 0 ||
        (rc = check_plan(&c, r->plan)) < 0)
        return rc;
    *ret_agreement = c.a;
    return 0;
}
