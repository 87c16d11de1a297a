/*
 * Unit tests for release policies (common/src/policy.c, policy_sign.c):
 * document errors with their FILE:LINE, signatures (good, another key, a
 * changed byte, missing, malformed, a key readable by others), every
 * refusal fq_policy_check gives with its exact code and message, and the
 * example policies shipped in deploy/examples/etc. Keys are made at test
 * time with OpenSSL's C API in a private temporary directory.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

/* 2026-03-01T00:00:00Z and the edges of DSA-1's validity. */
#define T_MARCH 1772323200
#define T_FROM  1767225600 /* 2026-01-01T00:00:00Z */
#define T_UNTIL 1782863999 /* 2026-06-30T23:59:59Z */

static char dir[64];

/* Line numbers matter: the error cases below name them. */
static const char base_doc[] =
    "policy:\n"                                                /* 1 */
    "  agency: dss\n"                                          /* 2 */
    "  federation: fedq.test\n"                                /* 3 */
    "  version: 3\n"                                           /* 4 */
    "  agreements:\n"                                          /* 5 */
    "    - id: DSA-1\n"                                        /* 6 */
    "      title: SNAP and wages\n"                            /* 7 */
    "      legal_basis: [\"SNAP 7 CFR 272.8\"]\n"              /* 8 */
    "      purposes: [\"program evaluation\"]\n"               /* 9 */
    "      analysts: [\"spiffe://fedq.test/analyst/alice\"]\n" /* 10 */
    "      valid_from: 2026-01-01\n"                           /* 11 */
    "      valid_until: 2026-06-30\n"                          /* 12 */
    "      datasets:\n"                                        /* 13 */
    "        - name: enrollment\n"                             /* 14 */
    "          columns: [program, town, month, benefit]\n"     /* 15 */
    "          aggregates: [COUNT, SUM, AVG]\n"                /* 16 */
    "      release:\n"                                         /* 17 */
    "        min_cell_count: 11\n"                             /* 18 */
    "        min_cell_count_rationale: CMS cell-size policy\n" /* 19 */
    "      review: none\n"                                     /* 20 */
    "      pool_with: [dol]\n"                                 /* 21 */
    "    - id: DSA-2\n"                                        /* 22 */
    "      title: Open enrollment counts\n"                    /* 23 */
    "      legal_basis: [\"SNAP 7 CFR 272.8\"]\n"              /* 24 */
    "      purposes: [\"public reporting\"]\n"                 /* 25 */
    "      analysts: [\"*\"]\n"                                /* 26 */
    "      valid_from: 2026-01-01\n"                           /* 27 */
    "      valid_until: 2027-12-31\n"                          /* 28 */
    "      datasets:\n"                                        /* 29 */
    "        - name: enrollment\n"                             /* 30 */
    "          columns: [program, month]\n"                    /* 31 */
    "          aggregates: [COUNT]\n"                          /* 32 */
    "      release: {min_cell_count: 20, "
    "min_cell_count_rationale: public}\n" /* 33 */
    "      review: every_query\n";        /* 34 */

/* dir/name */
static const char *
path_of(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];

    /* dir is a short mkdtemp name; a cut path would fail the test. */
    assert_true((size_t)snprintf(p, sizeof(buf[0]), "%.255s/%.200s", dir,
                                 name) < sizeof(buf[0]));
    return p;
}

static void
write_file(const char *name, const char *data, size_t len, mode_t mode)
{
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void
write_text(const char *name, const char *text)
{
    write_file(name, text, strlen(text), 0644);
}

/* base_doc with the first occurrence of from replaced by to. */
static char *
edited(const char *from, const char *to)
{
    const char *at = strstr(base_doc, from);
    size_t n = strlen(base_doc) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);

    assert_non_null(at);
    assert_non_null(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - base_doc), base_doc, to,
             at + strlen(from));
    return s;
}

static void
make_key(const char *name)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char priv[64], pub[64];
    FILE *f;

    assert_non_null(k);
    snprintf(priv, sizeof(priv), "%s.key", name);
    snprintf(pub, sizeof(pub), "%s.pub", name);
    assert_non_null(f = fopen(path_of(priv), "w"));
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    assert_int_equal(chmod(path_of(priv), 0600), 0);
    assert_non_null(f = fopen(path_of(pub), "w"));
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    EVP_PKEY_free(k);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fq-policy-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    make_key("a");
    make_key("b");
    return 0;
}

static int
teardown(void **state)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    (void)state;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            unlink(path_of(e->d_name));
    }
    if (d)
        closedir(d);
    rmdir(dir);
    return 0;
}

/* ---- documents ------------------------------------------------------------
 */

static void
test_parse_ok(void **state)
{
    struct fq_policy *p = NULL;
    char err[1024] = "";

    (void)state;
    write_text("p.yaml", base_doc);
    int rc = fq_policy_parse(path_of("p.yaml"), &p, err, sizeof(err));
    if (rc != 0)
        fail_msg("%d %s", rc, err);
    assert_string_equal(p->agency, "dss");
    assert_int_equal(p->version, 3);
    assert_int_equal(p->n_agreements, 2);
    const struct fq_policy_agreement *a = &p->agreements[0];
    assert_int_equal(a->line, 6);
    assert_int_equal(a->valid_from_time, T_FROM);
    assert_int_equal(a->valid_until_time, T_UNTIL);
    assert_int_equal(a->release.min_cell_count, 11);
    /* No cell_budget: the default, with no rationale to show. */
    assert_int_equal(a->release.cell_budget, FQ_POLICY_CELL_BUDGET_DEFAULT);
    assert_int_equal(a->release.cell_budget, 10000);
    assert_null(a->release.cell_budget_rationale);
    assert_int_equal(a->review, FQ_POLICY_REVIEW_NONE);
    assert_int_equal(p->agreements[1].review, FQ_POLICY_REVIEW_EVERY_QUERY);
    assert_int_equal(p->agreements[1].n_pool_with, 0);
    assert_int_equal(strlen(p->hash), 64);
    fq_policy_free(p);
    fq_policy_free(NULL);
}

/* A given cell_budget is kept with its rationale; the bounds are 1 and
 * 10^9. */
static void
test_cell_budget(void **state)
{
    static const int64_t ok[] = {1, 50000, 1000000000};
    char text[64];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ok); i++) {
        struct fq_policy *p = NULL;
        char err[1024] = "";
        snprintf(text, sizeof(text),
                 "min_cell_count: 20, cell_budget: %" PRId64 ", ", ok[i]);
        char *doc = edited("min_cell_count: 20, ", text);
        char *doc2 = NULL;
        /* and a rationale, after the threshold's */
        const char *at = strstr(doc, "public}");
        assert_non_null(at);
        assert_true(asprintf(&doc2,
                             "%.*spublic, cell_budget_rationale: "
                             "\"ten tables a month\"}%s",
                             (int)(at - doc), doc, at + strlen("public}")) > 0);
        write_text("p.yaml", doc2);
        free(doc);
        free(doc2);
        int rc = fq_policy_parse(path_of("p.yaml"), &p, err, sizeof(err));
        if (rc != 0)
            fail_msg("%" PRId64 ": %d %s", ok[i], rc, err);
        const struct fq_policy_agreement *a = &p->agreements[1];
        assert_int_equal(a->release.cell_budget, ok[i]);
        assert_string_equal(a->release.cell_budget_rationale,
                            "ten tables a month");
        /* The other agreement sets none: the default. */
        assert_int_equal(p->agreements[0].release.cell_budget, 10000);
        fq_policy_free(p);
    }
}

static void
test_parse_errors(void **state)
{
    static const char *const cases[][3] = {
        {"valid_from: 2026-01-01", "valid_from: 2026-02-30",
         "p.yaml:6: agreement DSA-1: valid_from '2026-02-30' is not a date "
         "(YYYY-MM-DD)"},
        {"valid_until: 2026-06-30", "valid_until: 2026-6-300",
         "p.yaml:6: agreement DSA-1: valid_until '2026-6-300' is not a date "
         "(YYYY-MM-DD)"},
        {"valid_until: 2026-06-30", "valid_until: 2025-12-31",
         "p.yaml:6: agreement DSA-1: valid_until 2025-12-31 is before "
         "valid_from 2026-01-01"},
        {"[COUNT, SUM, AVG]", "[COUNT, MEDIAN]",
         "p.yaml:14: dataset 'enrollment': unknown aggregate 'MEDIAN' (COUNT, "
         "COUNT_DISTINCT, SUM, AVG, VAR, STDDEV, HISTOGRAM, QUANTILE)"},
        {"[COUNT, SUM, AVG]", "[COUNT, SUM, COUNT]",
         "p.yaml:14: dataset 'enrollment': aggregate 'COUNT' listed twice"},
        {"[program, town, month, benefit]", "[program, town, program]",
         "p.yaml:14: dataset 'enrollment': column 'program' listed twice"},
        {"rationale: CMS cell-size policy", "rationale: \"  \"",
         "p.yaml:18: min_cell_count_rationale must say why"},
        {"        min_cell_count_rationale: CMS cell-size policy\n", "",
         "p.yaml:18: missing required key 'min_cell_count_rationale' in "
         "'policy.agreements[0].release'"},
        {"legal_basis: [\"SNAP 7 CFR 272.8\"]", "legal_basis: [\"\"]",
         "p.yaml:6: legal_basis: an entry is empty"},
        {"id: DSA-2", "id: DSA-1", "p.yaml:22: agreement DSA-1 listed twice"},
        {"analyst/alice", "analyst/alice/x",
         "p.yaml:6: agreement DSA-1: analyst "
         "'spiffe://fedq.test/analyst/alice/x' is not \"*\" or "
         "spiffe://fedq.test/analyst/NAME"},
        {"spiffe://fedq.test/analyst/alice",
         "spiffe://other.test/analyst/alice",
         "p.yaml:6: agreement DSA-1: analyst "
         "'spiffe://other.test/analyst/alice' is not \"*\" or "
         "spiffe://fedq.test/analyst/NAME"},
        {"review: none", "review: sometimes", NULL},
        {"pool_with: [dol]", "pool_with: [DOL]",
         "p.yaml:6: agreement DSA-1: pool_with 'DOL' is not an agency"},
        {"pool_with: [dol]", "pool_with: [dss]",
         "p.yaml:6: agreement DSA-1: pool_with names dss itself"},
        {"id: DSA-1", "id: \"DSA 1\"",
         "p.yaml:6: agreement id 'DSA 1' must be letters, digits, '-', '_' "
         "and '.'"},
        {"min_cell_count: 11", "min_cell_count: 0", NULL},
        {"        min_cell_count_rationale: CMS cell-size policy\n",
         "        min_cell_count_rationale: CMS cell-size policy\n"
         "        cell_budget: 5000\n",
         "p.yaml:18: cell_budget needs cell_budget_rationale"},
        {"        min_cell_count_rationale: CMS cell-size policy\n",
         "        min_cell_count_rationale: CMS cell-size policy\n"
         "        cell_budget: 5000\n"
         "        cell_budget_rationale: \" \"\n",
         "p.yaml:18: cell_budget_rationale must say why"},
        {"        min_cell_count_rationale: CMS cell-size policy\n",
         "        min_cell_count_rationale: CMS cell-size policy\n"
         "        cell_budget: 0\n"
         "        cell_budget_rationale: none at all\n",
         NULL},
        {"        min_cell_count_rationale: CMS cell-size policy\n",
         "        min_cell_count_rationale: CMS cell-size policy\n"
         "        cell_budget: 1000000001\n"
         "        cell_budget_rationale: too many\n",
         NULL},
        {"agency: dss", "agency: Dss",
         "p.yaml:2: agency 'Dss' must match [a-z0-9][a-z0-9_-]*"},
        {"policy:\n", "polcy:\n", NULL},
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        struct fq_policy *p = NULL;
        char err[1024] = "", *doc = edited(cases[i][0], cases[i][1]);

        write_text("p.yaml", doc);
        free(doc);
        int rc = fq_policy_parse(path_of("p.yaml"), &p, err, sizeof(err));
        if (rc != FQ_EINVAL)
            fail_msg("case %zu: %d '%s'", i, rc, err);
        assert_null(p);
        /* Every error reads "FILE:LINE: ..."; some exactly as given. */
        const char *msg = strstr(err, "p.yaml:");
        assert_non_null(msg);
        if (!cases[i][2] && strtol(msg + 7, NULL, 10) <= 0)
            fail_msg("case %zu: no line in '%s'", i, err);
        if (cases[i][2] && strcmp(msg, cases[i][2]) != 0)
            fail_msg("case %zu:\n got '%s'\nwant '%s'", i, msg, cases[i][2]);
    }
}

static void
test_parse_too_big(void **state)
{
    size_t n = FQ_POLICY_MAX_BYTES + 1;
    char *big = malloc(n);
    struct fq_policy *p = NULL;
    char err[512];

    (void)state;
    assert_non_null(big);
    memset(big, '#', n);
    assert_int_equal(
        fq_policy_parse_buf("big.yaml", big, n, &p, err, sizeof(err)),
        FQ_ETOOBIG);
    write_file("big.yaml", big, n, 0644);
    assert_int_equal(fq_policy_parse(path_of("big.yaml"), &p, err, sizeof(err)),
                     FQ_ETOOBIG);
    assert_null(p);
    free(big);
}

/* ---- signatures -----------------------------------------------------------
 */

static int
load(const char *pub, struct fq_policy **ret, char *err, size_t errlen)
{
    return fq_policy_load(path_of("p.yaml"), NULL, path_of(pub), ret, err,
                          errlen);
}

static void
sign_ok(void)
{
    char err[1024] = "";

    write_text("p.yaml", base_doc);
    int rc = fq_policy_sign(path_of("p.yaml"), path_of("a.key"), NULL, err,
                            sizeof(err));
    if (rc != 0)
        fail_msg("%d %s", rc, err);
}

static void
test_sign_verify(void **state)
{
    struct fq_policy *p = NULL, *q = NULL;
    char err[1024] = "";
    struct stat st;

    (void)state;
    sign_ok();
    assert_int_equal(stat(path_of("p.yaml.sig"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(st.st_size, 97);
    int rc = load("a.pub", &p, err, sizeof(err));
    if (rc != 0)
        fail_msg("%d %s", rc, err);
    assert_int_equal(fq_policy_parse(path_of("p.yaml"), &q, err, sizeof(err)),
                     0);
    assert_string_equal(p->hash, q->hash);
    assert_string_equal(p->agreements[0].id, "DSA-1");
    fq_policy_free(p);
    fq_policy_free(q);

    /* An explicit signature path is honoured both ways. */
    assert_int_equal(fq_policy_sign(path_of("p.yaml"), path_of("a.key"),
                                    path_of("other.sig"), err, sizeof(err)),
                     0);
    assert_int_equal(fq_policy_load(path_of("p.yaml"), path_of("other.sig"),
                                    path_of("a.pub"), &p, err, sizeof(err)),
                     0);
    fq_policy_free(p);
}

static void
test_verify_refusals(void **state)
{
    struct fq_policy *p = NULL;
    char err[1024] = "", want[1024];

    (void)state;
    sign_ok();
    /* Another agency's key. */
    assert_int_equal(load("b.pub", &p, err, sizeof(err)), FQ_EPERM);
    snprintf(want, sizeof(want),
             "policy '%s' does not verify with key '%s': it changed after "
             "signing, or another key signed it",
             path_of("p.yaml"), path_of("b.pub"));
    assert_string_equal(err, want);

    /* One byte changed: 11 becomes 12. */
    char *doc = edited("min_cell_count: 11", "min_cell_count: 12");
    write_text("p.yaml", doc);
    free(doc);
    assert_int_equal(load("a.pub", &p, err, sizeof(err)), FQ_EPERM);
    assert_null(p);

    /* No signature at all. */
    sign_ok();
    unlink(path_of("p.yaml.sig"));
    assert_int_equal(load("a.pub", &p, err, sizeof(err)), FQ_ENOENT);
    snprintf(want, sizeof(want),
             "policy signature '%s' does not exist (sign the policy with "
             "'fedq policy sign')",
             path_of("p.yaml.sig"));
    assert_string_equal(err, want);

    /* No policy. */
    unlink(path_of("p.yaml"));
    assert_int_equal(load("a.pub", &p, err, sizeof(err)), FQ_ENOENT);
    assert_null(p);
}

static void
test_malformed_signatures(void **state)
{
    struct fq_policy *p = NULL;
    char err[1024], good[128], bad[256], want[512];

    (void)state;
    sign_ok();
    FILE *f = fopen(path_of("p.yaml.sig"), "r");
    assert_non_null(f);
    assert_non_null(fgets(good, sizeof(good), f));
    fclose(f);
    assert_int_equal(strlen(good), 97);
    snprintf(want, sizeof(want),
             "policy signature '%s' is malformed: expected one line "
             "'ed25519 BASE64' of a 64-byte signature",
             path_of("p.yaml.sig"));

    const char *variants[] = {"truncated", "no newline", "trailing", "garbage",
                              "prefix",    "empty",      "bits",     "crlf"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(variants); i++) {
        snprintf(bad, sizeof(bad), "%s", good);
        switch (i) {
        case 0:
            bad[50] = '\0';
            break;
        case 1:
            bad[96] = '\0';
            break;
        case 2:
            snprintf(bad, sizeof(bad), "%s\n", good);
            break;
        case 3:
            memset(bad + 8, '!', 88);
            break;
        case 4:
            memcpy(bad, "ed448  ", 7);
            break;
        case 5:
            bad[0] = '\0';
            break;
        /* The last symbol before "==" carries 4 unused bits; setting one
         * keeps the bytes but is not the canonical text. */
        case 6:
            bad[93] = bad[93] == 'A' ? 'B' : 'A';
            break;
        case 7:
            memcpy(bad + 96, "\r\n", 3);
            break;
        }
        write_text("p.yaml.sig", bad);
        int rc = load("a.pub", &p, err, sizeof(err));
        if (i == 6 && rc == FQ_EPERM)
            continue; /* the flipped symbol changed a used bit instead */
        if (rc != FQ_EINVAL)
            fail_msg("%s: %d '%s'", variants[i], rc, err);
        assert_string_equal(err, want);
    }
}

static void
test_key_checks(void **state)
{
    struct fq_policy *p = NULL;
    char err[1024], want[512];

    (void)state;
    write_text("p.yaml", base_doc);
    assert_int_equal(chmod(path_of("a.key"), 0640), 0);
    assert_int_equal(fq_policy_sign(path_of("p.yaml"), path_of("a.key"), NULL,
                                    err, sizeof(err)),
                     FQ_EPERM);
    snprintf(want, sizeof(want),
             "key file '%s' is readable by group or others (chmod 600 it)",
             path_of("a.key"));
    assert_string_equal(err, want);
    assert_int_equal(chmod(path_of("a.key"), 0600), 0);

    /* A public key where the private key belongs, and the other way. */
    write_file("pub-as-key", "x", 1, 0600);
    assert_int_equal(fq_policy_sign(path_of("p.yaml"), path_of("pub-as-key"),
                                    NULL, err, sizeof(err)),
                     FQ_EINVAL);
    sign_ok();
    assert_int_equal(load("a.key", &p, err, sizeof(err)), FQ_EINVAL);
    snprintf(want, sizeof(want),
             "public key '%s' holds no unencrypted Ed25519 PEM public key",
             path_of("a.key"));
    assert_string_equal(err, want);

    /* An EC key is not an Ed25519 key. */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FILE *f = fopen(path_of("ec.pub"), "w");
    assert_non_null(ec);
    assert_non_null(f);
    PEM_write_PUBKEY(f, ec);
    fclose(f);
    EVP_PKEY_free(ec);
    assert_int_equal(load("ec.pub", &p, err, sizeof(err)), FQ_EINVAL);

    /* A bad document is not signed, and no signature appears. */
    unlink(path_of("p.yaml.sig"));
    write_text("p.yaml", "policy: {agency: dss}\n");
    assert_int_equal(fq_policy_sign(path_of("p.yaml"), path_of("a.key"), NULL,
                                    err, sizeof(err)),
                     FQ_EINVAL);
    assert_int_equal(access(path_of("p.yaml.sig"), F_OK), -1);
}

/* ---- the decision ---------------------------------------------------------
 */

struct req {
    Fedq__V1__Plan plan;
    Fedq__V1__Predicate root, month_eq, not_node, in_node;
    Fedq__V1__Predicate *terms[2];
    Fedq__V1__Conjunction all;
    Fedq__V1__Comparison cmp;
    Fedq__V1__Negation neg;
    Fedq__V1__InList in;
    Fedq__V1__Aggregate count, sum;
    Fedq__V1__Aggregate *aggs[2];
    char *group_by[1];
    const char *pooled[1];
    struct fq_policy_request r;
};

/* month = ... AND NOT (program IN ...), GROUP BY town, COUNT(*),
 * SUM(benefit), by alice, for program evaluation, pooled with dol. */
static void
req_init(struct req *q)
{
    memset(q, 0, sizeof(*q));
    q->plan = (Fedq__V1__Plan)FEDQ__V1__PLAN__INIT;
    q->root = (Fedq__V1__Predicate)FEDQ__V1__PREDICATE__INIT;
    q->month_eq = q->not_node = q->in_node = q->root;
    q->all = (Fedq__V1__Conjunction)FEDQ__V1__CONJUNCTION__INIT;
    q->cmp = (Fedq__V1__Comparison)FEDQ__V1__COMPARISON__INIT;
    q->neg = (Fedq__V1__Negation)FEDQ__V1__NEGATION__INIT;
    q->in = (Fedq__V1__InList)FEDQ__V1__IN_LIST__INIT;
    q->count = (Fedq__V1__Aggregate)FEDQ__V1__AGGREGATE__INIT;
    q->sum = q->count;

    q->cmp.column = "month";
    q->month_eq.node_case = FEDQ__V1__PREDICATE__NODE_COMPARE;
    q->month_eq.compare = &q->cmp;
    q->in.column = "program";
    q->in_node.node_case = FEDQ__V1__PREDICATE__NODE_IN;
    q->in_node.in = &q->in;
    q->neg.term = &q->in_node;
    q->not_node.node_case = FEDQ__V1__PREDICATE__NODE_NOT;
    q->not_node.not_ = &q->neg;
    q->terms[0] = &q->month_eq;
    q->terms[1] = &q->not_node;
    q->all.terms = q->terms;
    q->all.n_terms = 2;
    q->root.node_case = FEDQ__V1__PREDICATE__NODE_ALL;
    q->root.all = &q->all;

    q->count.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    q->count.column = "";
    q->sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_SUM;
    q->sum.column = "benefit";
    q->aggs[0] = &q->count;
    q->aggs[1] = &q->sum;
    q->group_by[0] = "town";
    q->plan.dataset = "enrollment";
    q->plan.filter = &q->root;
    q->plan.group_by = q->group_by;
    q->plan.n_group_by = 1;
    q->plan.aggregates = q->aggs;
    q->plan.n_aggregates = 2;

    q->pooled[0] = "dol";
    q->r = (struct fq_policy_request){
        .agreement = "DSA-1",
        .purpose = "program evaluation",
        .analyst = "spiffe://fedq.test/analyst/alice",
        .plan = &q->plan,
        .pooled_with = q->pooled,
        .n_pooled_with = 1,
        .now = T_MARCH,
    };
}

static struct fq_policy *
base_policy(void)
{
    struct fq_policy *p = NULL;
    char err[1024];

    assert_int_equal(fq_policy_parse_buf("p.yaml", base_doc, strlen(base_doc),
                                         &p, err, sizeof(err)),
                     0);
    return p;
}

static void
expect(const struct fq_policy *p, const struct req *q, int code,
       const char *msg)
{
    const struct fq_policy_agreement *a = NULL;
    char err[512] = "";

    int rc = fq_policy_check(p, &q->r, &a, err, sizeof(err));
    if (rc != code || (msg && strcmp(err, msg) != 0))
        fail_msg("got %d '%s', want %d '%s'", rc, err, code, msg ? msg : "");
    if (code == 0)
        assert_non_null(a);
    else
        assert_null(a);
}

static void
test_check_accepts(void **state)
{
    struct fq_policy *p = base_policy();
    struct req q;

    (void)state;
    req_init(&q);
    expect(p, &q, 0, NULL);
    q.r.now = T_FROM; /* both ends of the days are inside */
    expect(p, &q, 0, NULL);
    q.r.now = T_UNTIL;
    expect(p, &q, 0, NULL);
    /* "*" lets anyone in; no pooling is always fine. */
    req_init(&q);
    q.r.agreement = "DSA-2";
    q.r.purpose = "public reporting";
    q.r.analyst = "spiffe://fedq.test/analyst/bob";
    q.r.n_pooled_with = 0;
    q.sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    q.sum.column = "";
    q.plan.n_group_by = 0;
    expect(p, &q, 0, NULL);
    fq_policy_free(p);
}

static void
test_check_refusals(void **state)
{
    struct fq_policy *p = base_policy();
    struct req q;

    (void)state;
    req_init(&q);
    q.r.agreement = "DSA-9";
    expect(p, &q, FQ_EPERM,
           "dss has signed no agreement 'DSA-9' (policy version 3)");

    req_init(&q);
    q.r.now = T_FROM - 1;
    expect(p, &q, FQ_EPRECOND,
           "agreement DSA-1 of dss is not valid before 2026-01-01 (valid "
           "2026-01-01 to 2026-06-30)");
    q.r.now = T_UNTIL + 1;
    expect(p, &q, FQ_EPRECOND,
           "agreement DSA-1 of dss expired on 2026-06-30 (valid 2026-01-01 "
           "to 2026-06-30)");

    req_init(&q);
    q.r.analyst = "spiffe://fedq.test/analyst/bob";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list analyst "
           "'spiffe://fedq.test/analyst/bob'");

    req_init(&q);
    q.r.purpose = "Program evaluation";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list purpose 'Program "
           "evaluation'");

    req_init(&q);
    q.plan.dataset = "households";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list dataset 'households'");

    req_init(&q);
    q.group_by[0] = "sex";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list column 'sex' of enrollment");

    req_init(&q);
    q.in.column = "birth_year"; /* under NOT, under AND */
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list column 'birth_year' of "
           "enrollment");

    req_init(&q);
    q.sum.column = "household_size";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list column 'household_size' of "
           "enrollment");

    req_init(&q);
    q.sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_VAR;
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list aggregate VAR on "
           "enrollment");

    req_init(&q);
    q.sum.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT_DISTINCT;
    q.sum.column = "program";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list aggregate COUNT_DISTINCT on "
           "enrollment");

    req_init(&q);
    q.pooled[0] = "doe";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not allow pooling with doe");
    fq_policy_free(p);
}

static void
test_check_other_filters(void **state)
{
    struct fq_policy *p = base_policy();
    Fedq__V1__Predicate leaf = FEDQ__V1__PREDICATE__INIT;
    Fedq__V1__Between btw = FEDQ__V1__BETWEEN__INIT;
    Fedq__V1__IsNull isn = FEDQ__V1__IS_NULL__INIT;
    Fedq__V1__Disjunction any = FEDQ__V1__DISJUNCTION__INIT;
    Fedq__V1__Predicate root = FEDQ__V1__PREDICATE__INIT;
    Fedq__V1__Predicate *terms[2];
    struct req q;

    (void)state;
    req_init(&q);
    leaf.node_case = FEDQ__V1__PREDICATE__NODE_BETWEEN;
    leaf.between = &btw;
    btw.column = "benefit";
    Fedq__V1__Predicate leaf2 = FEDQ__V1__PREDICATE__INIT;
    leaf2.node_case = FEDQ__V1__PREDICATE__NODE_IS_NULL;
    leaf2.is_null = &isn;
    isn.column = "town";
    terms[0] = &leaf;
    terms[1] = &leaf2;
    any.terms = terms;
    any.n_terms = 2;
    root.node_case = FEDQ__V1__PREDICATE__NODE_ANY;
    root.any = &any;
    q.plan.filter = &root;
    expect(p, &q, 0, NULL);
    isn.column = "sex";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list column 'sex' of enrollment");
    isn.column = "town";
    btw.column = "age";
    expect(p, &q, FQ_EPERM,
           "agreement DSA-1 of dss does not list column 'age' of enrollment");
    fq_policy_free(p);
}

/* ---- the examples ---------------------------------------------------------
 */

static void
test_examples_parse(void **state)
{
    static const char *const agencies[] = {"dol", "dss", "doe",
                                           "uhs", "csu", "ccs"};
    char path[512], err[1024];

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(agencies); i++) {
        struct fq_policy *p = NULL;
        snprintf(path, sizeof(path), "%s/deploy/examples/etc/policy-%s.yaml",
                 FQ_SOURCE_DIR, agencies[i]);
        int rc = fq_policy_parse(path, &p, err, sizeof(err));
        if (rc != 0)
            fail_msg("%s: %d %s", agencies[i], rc, err);
        assert_string_equal(p->agency, agencies[i]);
        assert_string_equal(p->federation, "fedq.local");
        const struct fq_policy_agreement *a = &p->agreements[0];
        assert_string_equal(a->id, "P20W-2026-01");
        assert_string_equal(a->valid_from, "2026-01-01");
        assert_string_equal(a->valid_until, "2027-12-31");
        assert_int_equal(a->release.min_cell_count, 11);
        /* Explicit, and large enough for the example federation's
         * oracle tests (thousands of random queries). */
        assert_true(a->release.cell_budget >= 1000000);
        assert_non_null(a->release.cell_budget_rationale);
        assert_string_equal(a->analysts[0],
                            "spiffe://fedq.local/analyst/alice");
        fq_policy_free(p);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_cell_budget),
        cmocka_unit_test(test_parse_too_big),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_verify_refusals),
        cmocka_unit_test(test_malformed_signatures),
        cmocka_unit_test(test_key_checks),
        cmocka_unit_test(test_check_accepts),
        cmocka_unit_test(test_check_refusals),
        cmocka_unit_test(test_check_other_filters),
        cmocka_unit_test(test_examples_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
