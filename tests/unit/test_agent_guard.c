/*
 * Unit tests for the agent's release policy in force (agent/guard.c):
 * fail closed without a policy, with a signature that does not verify, and
 * with another agency's or federation's policy (each with its reason);
 * what a request must name; SIGHUP reloads that put a new policy in force
 * or keep the old one, while a call holding the old rules keeps them.
 * Keys are made with OpenSSL's C API in a private temporary directory.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/policy.h"
#include "agent.h"
#include "guard.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fedq/v1/agent.pb-c.h"

static char dir[64];

static const char policy_fmt[] =
    "policy:\n"
    "  agency: %s\n"
    "  federation: %s\n"
    "  version: %d\n"
    "  agreements:\n"
    "    - id: A-1\n"
    "      title: test\n"
    "      legal_basis: [\"x\"]\n"
    "      purposes: [\"testing\"]\n"
    "      analysts: [\"*\"]\n"
    "      valid_from: 2020-01-01\n"
    "      valid_until: 2099-12-31\n"
    "      datasets:\n"
    "        - name: wages\n"
    "          columns: [town, wages]\n"
    "          aggregates: [COUNT, SUM]\n"
    "      release: {min_cell_count: 7, min_cell_count_rationale: test}\n"
    "      review: none\n";

static const char *
path_of(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];

    assert_true((size_t)snprintf(p, sizeof(buf[0]), "%.255s/%.200s", dir,
                                 name) < sizeof(buf[0]));
    return p;
}

static void
write_text(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* NAME.key (mode 0600) and NAME.pub: a fresh Ed25519 pair. */
static void
make_key(const char *name)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char file[64];
    FILE *f;

    assert_non_null(k);
    for (int private = 1; private >= 0; private --) {
        snprintf(file, sizeof(file), "%s.%s", name, private ? "key" : "pub");
        f = fopen(path_of(file), "w");
        assert_non_null(f);
        assert_int_equal(
            private ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
                    : PEM_write_PUBKEY(f, k),
            1);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path_of(file), private ? 0600 : 0644), 0);
    }
    EVP_PKEY_free(k);
}

/* Writes p.yaml for agency/federation at version and signs it with key. */
static void
write_policy(const char *agency, const char *federation, int version,
             const char *key)
{
    char text[2048], err[1024] = "", keyfile[64];

    snprintf(text, sizeof(text), policy_fmt, agency, federation, version);
    write_text("p.yaml", text);
    snprintf(keyfile, sizeof(keyfile), "%s.key", key);
    if (fq_policy_sign(path_of("p.yaml"), path_of(keyfile), NULL, err,
                       sizeof(err)) < 0)
        fail_msg("sign: %s", err);
}

/* A configuration of agency dol in federation fedq.test with the policy
 * p.yaml and key a.pub (or none); only what the guard reads is set. */
struct conf {
    struct ag_config cfg;
    char file[512], key[512];
};

static void
conf_init(struct conf *c, bool with_policy)
{
    memset(c, 0, sizeof(*c));
    c->cfg.doc.path = "agent-dol.yaml";
    c->cfg.agency = (char *)"dol";
    c->cfg.federation = (char *)"fedq.test";
    snprintf(c->file, sizeof(c->file), "%s", path_of("p.yaml"));
    snprintf(c->key, sizeof(c->key), "%s", path_of("a.pub"));
    if (with_policy) {
        c->cfg.policy.file = c->file;
        c->cfg.policy.public_key = c->key;
    }
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/fq-guard-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    make_key("a");
    make_key("b");
    return 0;
}

/* Every file a test here makes. */
static const char *const made[] = {"a.key", "a.pub",  "b.key",
                                   "b.pub", "p.yaml", "p.yaml.sig"};

static int
teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
        unlink(path_of(made[i]));
    return rmdir(dir);
}

/* The refusal of rules without a policy, which must contain want. */
static void
assert_serves_nothing(struct ag_rules *r, const char *want)
{
    char err[1024] = "";

    assert_null(r->policy);
    assert_int_equal(ag_rules_ready(r, err, sizeof(err)), FQ_EPRECOND);
    if (strncmp(err, "agency dol serves nothing: ", 27) != 0 ||
        !strstr(err, want))
        fail_msg("got '%s', expected '...%s...'", err, want);
}

/* Loads c's policy as dol's of fedq.test: code, and when it fails the
 * refusal naming want. */
static void
expect_load(const struct conf *c, int code, const char *want)
{
    struct ag_rules *r = NULL;
    char err[1024] = "";

    assert_int_equal(
        ag_rules_load(&c->cfg, "dol", "fedq.test", &r, err, sizeof(err)), code);
    if (code < 0) {
        assert_serves_nothing(r, want);
        assert_non_null(strstr(err, want));
    } else {
        assert_int_equal(ag_rules_ready(r, err, sizeof(err)), 0);
    }
    ag_rules_unref(r);
}

static void
test_no_policy(void **state)
{
    struct conf c;

    (void)state;
    conf_init(&c, false);
    expect_load(&c, FQ_ENOENT, "no release policy is configured");
    /* Configured, but the file is missing. */
    conf_init(&c, true);
    unlink(path_of("p.yaml"));
    expect_load(&c, FQ_ENOENT, "cannot read policy");
}

static void
test_bad_signature(void **state)
{
    struct conf c;

    (void)state;
    conf_init(&c, true);
    write_policy("dol", "fedq.test", 1, "a");
    expect_load(&c, 0, NULL);
    /* Signed with another key. */
    write_policy("dol", "fedq.test", 1, "b");
    expect_load(&c, FQ_EPERM, "does not verify");
    /* Changed after signing. */
    write_policy("dol", "fedq.test", 1, "a");
    write_text("p.yaml", "policy: {}\n");
    expect_load(&c, FQ_EPERM, "does not verify");
    /* No signature. */
    write_policy("dol", "fedq.test", 1, "a");
    unlink(path_of("p.yaml.sig"));
    expect_load(&c, FQ_ENOENT, "signature");
}

static void
test_wrong_owner(void **state)
{
    struct conf c;

    (void)state;
    conf_init(&c, true);
    write_policy("dss", "fedq.test", 1, "a");
    expect_load(&c, FQ_EINVAL, "is agency dss's, not dol's");
    write_policy("dol", "other.fed", 1, "a");
    expect_load(&c, FQ_EINVAL, "is for federation other.fed, not fedq.test");
}

static void
test_check(void **state)
{
    Fedq__V1__ExecuteRequest req = FEDQ__V1__EXECUTE_REQUEST__INIT;
    Fedq__V1__Plan plan = FEDQ__V1__PLAN__INIT;
    Fedq__V1__Aggregate count = FEDQ__V1__AGGREGATE__INIT;
    Fedq__V1__Aggregate *aggs[] = {&count};
    char *group_by[] = {(char *)"town"};
    const struct fq_policy_agreement *a = NULL;
    struct conf c;
    struct ag_rules *r = NULL;
    char err[1024] = "";

    (void)state;
    count.kind = FEDQ__V1__AGGREGATE_KIND__AGGREGATE_KIND_COUNT;
    plan.dataset = (char *)"wages";
    plan.n_group_by = 1;
    plan.group_by = group_by;
    plan.n_aggregates = 1;
    plan.aggregates = aggs;
    req.plan = &plan;
    req.analyst = (char *)"spiffe://fedq.test/analyst/alice";
    conf_init(&c, true);
    write_policy("dol", "fedq.test", 1, "a");
    assert_int_equal(
        ag_rules_load(&c.cfg, "dol", "fedq.test", &r, err, sizeof(err)), 0);
    assert_int_equal(ag_rules_ready(r, err, sizeof(err)), 0);
    assert_int_equal(ag_rules_check(r, &req, time(NULL), &a, err, sizeof(err)),
                     FQ_EPERM);
    assert_string_equal(err, "agency dol: the query names no agreement "
                             "(every query must name the data sharing "
                             "agreement it runs under)");
    req.agreement = (char *)"A-1";
    assert_int_equal(ag_rules_check(r, &req, time(NULL), &a, err, sizeof(err)),
                     FQ_EPERM);
    assert_string_equal(err, "agency dol: the query states no purpose "
                             "(every query must state one of its "
                             "agreement's purposes)");
    req.purpose = (char *)"testing";
    assert_int_equal(ag_rules_check(r, &req, time(NULL), &a, err, sizeof(err)),
                     0);
    assert_string_equal(a->id, "A-1");
    assert_int_equal(a->release.min_cell_count, 7);
    /* fq_policy_check's own refusals come through as they are. */
    req.agreement = (char *)"B-2";
    assert_int_equal(ag_rules_check(r, &req, time(NULL), &a, err, sizeof(err)),
                     FQ_EPERM);
    assert_non_null(strstr(err, "dol has signed no agreement 'B-2'"));
    req.agreement = (char *)"A-1";
    assert_int_equal(
        ag_rules_check(r, &req, 1577836800 - 1, &a, err, sizeof(err)),
        FQ_EPRECOND); /* the day before 2020-01-01 */
    ag_rules_unref(r);

    /* Without a policy nothing passes, whatever the request. */
    conf_init(&c, false);
    assert_int_equal(
        ag_rules_load(&c.cfg, "dol", "fedq.test", &r, err, sizeof(err)),
        FQ_ENOENT);
    assert_int_equal(ag_rules_check(r, &req, time(NULL), &a, err, sizeof(err)),
                     FQ_EPRECOND);
    assert_non_null(strstr(err, "agency dol serves nothing"));
    ag_rules_unref(r);
}

static void
test_reload(void **state)
{
    struct ag_guard *g = NULL;
    struct ag_rules *r, *held;
    struct conf c;

    (void)state;
    conf_init(&c, true);
    write_policy("dol", "fedq.test", 1, "a");
    assert_int_equal(ag_guard_open(&c.cfg, &g), 0);
    held = ag_guard_rules(g);
    assert_non_null(held->policy);
    assert_int_equal(held->policy->version, 1);
    char v1[65];
    memcpy(v1, held->policy->hash, sizeof(v1));

    /* A bad new policy: the old one stays in force. */
    write_policy("dol", "fedq.test", 2, "b");
    assert_int_equal(ag_guard_reload(g, &c.cfg), FQ_EPERM);
    r = ag_guard_rules(g);
    assert_ptr_equal(r, held);
    ag_rules_unref(r);
    write_policy("dss", "fedq.test", 2, "a");
    assert_int_equal(ag_guard_reload(g, &c.cfg), FQ_EINVAL);
    r = ag_guard_rules(g);
    assert_int_equal(r->policy->version, 1);
    ag_rules_unref(r);
    /* A configuration without a policy does not drop the one in force. */
    struct conf none;
    conf_init(&none, false);
    assert_int_equal(ag_guard_reload(g, &none.cfg), FQ_ENOENT);
    r = ag_guard_rules(g);
    assert_int_equal(r->policy->version, 1);
    ag_rules_unref(r);

    /* A good one is in force for new calls; a call holding the old rules
     * keeps them, whole, until it lets go. */
    write_policy("dol", "fedq.test", 2, "a");
    assert_int_equal(ag_guard_reload(g, &c.cfg), 0);
    r = ag_guard_rules(g);
    assert_int_equal(r->policy->version, 2);
    assert_string_not_equal(r->policy->hash, v1);
    ag_rules_unref(r);
    assert_int_equal(held->policy->version, 1);
    assert_string_equal(held->policy->hash, v1);
    ag_rules_unref(held);
    ag_guard_close(g);

    /* Started without a valid policy: a reload brings one in, and a
     * failed one replaces the reason. */
    conf_init(&c, true);
    write_policy("dol", "fedq.test", 3, "b");
    assert_int_equal(ag_guard_open(&c.cfg, &g), 0);
    r = ag_guard_rules(g);
    assert_serves_nothing(r, "does not verify");
    ag_rules_unref(r);
    unlink(path_of("p.yaml.sig"));
    assert_int_equal(ag_guard_reload(g, &c.cfg), FQ_ENOENT);
    r = ag_guard_rules(g);
    assert_serves_nothing(r, "does not exist");
    ag_rules_unref(r);
    write_policy("dol", "fedq.test", 3, "a");
    assert_int_equal(ag_guard_reload(g, &c.cfg), 0);
    r = ag_guard_rules(g);
    assert_int_equal(r->policy->version, 3);
    ag_rules_unref(r);
    ag_guard_close(g);
    ag_guard_close(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_policy),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_wrong_owner),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
