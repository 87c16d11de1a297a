/*
 * Unit tests for the gateway's configuration rules (gateway_config.c):
 * agents, their identities and policy keys, and the federation aliases,
 * each error with the line it is reported at.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "gateway.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define HEAD                                                \
    "federation: fedq.test\n"                               \
    "tls: {ca: ca.crt, cert: g.crt, key: g.key}\n"          \
    "agents:\n"                                             \
    "  - {agency: uhs, address: \"ipv4:127.0.0.1:7001\",\n" \
    "     policy_key: k.pub}\n"                             \
    "  - {agency: csu, address: \"ipv4:127.0.0.1:7002\",\n" \
    "     policy_key: k.pub}\n"

struct fixture {
    char dir[64];
    char path[96];
    char key[96];
    char err[1024];
};

/* A fresh Ed25519 public key, as deploy/pki.sh policy-key writes it. */
static int
write_pubkey(const char *path)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *fp = fopen(path, "w");
    int ok = k && fp && PEM_write_PUBKEY(fp, k) == 1;

    if (fp)
        fclose(fp);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-gwcfg-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/gateway.yaml", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/k.pub", f->dir);
    *state = f;
    return write_pubkey(f->key);
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    unlink(f->key);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int
load_text(struct fixture *f, const char *text, struct gw_config **ret)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return gw_config_load(f->path, ret, f->err, sizeof(f->err));
}

static void
expect_error(struct fixture *f, const char *text, int line, const char *msg)
{
    struct gw_config *cfg = NULL;
    char want[1024];

    snprintf(want, sizeof(want), "%s:%d: %s", f->path, line, msg);
    assert_int_not_equal(load_text(f, text, &cfg), 0);
    assert_null(cfg);
    assert_string_equal(f->err, want);
}

static void
test_good(void **state)
{
    struct fixture *f = *state;
    struct gw_config *cfg = NULL;

    assert_int_equal(load_text(f,
                               HEAD "aliases:\n"
                                    "  - {name: hied, agencies: [uhs, csu]}\n",
                               &cfg),
                     0);
    assert_int_equal(cfg->n_agents, 2);
    assert_string_equal(cfg->agents[1].identity,
                        "spiffe://fedq.test/agency/csu/agent");
    assert_int_equal(cfg->agent_timeout_ms, 3000);
    assert_int_equal(cfg->n_aliases, 1);
    assert_int_equal(cfg->aliases[0].n_agencies, 2);
    assert_string_equal(cfg->server.listen, "127.0.0.1:0");
    /* relative to the configuration file */
    assert_string_equal(cfg->agents[0].policy_key, f->key);
    gw_config_free(cfg);
}

static void
test_agent_rules(void **state)
{
    struct fixture *f = *state;

    expect_error(
        f, HEAD "  - {agency: uhs, address: \"x:1\", policy_key: k.pub}\n", 8,
        "agency 'uhs' listed twice");
    expect_error(
        f, HEAD "  - {agency: Big, address: \"x:1\", policy_key: k.pub}\n", 8,
        "agency 'Big' must match [a-z0-9][a-z0-9_-]*");
    expect_error(f,
                 HEAD
                 "  - {agency: dol, address: \"x:1\", policy_key: k.pub,\n"
                 "     identity: \"spiffe://fedq.test/agency/dss/agent\"}\n",
                 8,
                 "identity 'spiffe://fedq.test/agency/dss/agent' is not the "
                 "agent of agency 'dol' in federation 'fedq.test'");
    expect_error(f, HEAD "  - {agency: dol, policy_key: k.pub}\n", 8,
                 "missing required key 'address' in 'agents[2]'");
}

static void
test_policy_key_rules(void **state)
{
    struct fixture *f = *state;
    char want[256];

    expect_error(f, HEAD "  - {agency: dol, address: \"x:1\"}\n", 8,
                 "missing required key 'policy_key' in 'agents[2]'");
    snprintf(want, sizeof(want),
             "policy_key: cannot read policy public key '%s/none.pub': "
             "not found",
             f->dir);
    expect_error(f,
                 HEAD "  - {agency: dol, address: \"x:1\", "
                      "policy_key: none.pub}\n",
                 8, want);
    /* a configuration file is not a key */
    snprintf(want, sizeof(want),
             "policy_key: policy public key '%s' holds no unencrypted "
             "Ed25519 PEM public key",
             f->path);
    expect_error(f,
                 HEAD "  - {agency: dol, address: \"x:1\", "
                      "policy_key: gateway.yaml}\n",
                 8, want);
}

static void
test_alias_rules(void **state)
{
    struct fixture *f = *state;

    expect_error(f, HEAD "aliases:\n  - {name: hied, agencies: [uhs, dol]}\n",
                 9, "alias 'hied': no agent configured for agency 'dol'");
    expect_error(f, HEAD "aliases:\n  - {name: uhs, agencies: [uhs, csu]}\n", 9,
                 "alias 'uhs' is also an agency id");
    expect_error(f, HEAD "aliases:\n  - {name: hied, agencies: [uhs, uhs]}\n",
                 9, "alias 'hied': agency 'uhs' listed twice");
    expect_error(f,
                 HEAD "aliases:\n  - {name: hied, agencies: [uhs, csu]}\n"
                      "  - {name: hied, agencies: [uhs, csu]}\n",
                 10, "alias 'hied' listed twice");
    expect_error(f, HEAD "aliases:\n  - {name: hied, agencies: [uhs]}\n", 9,
                 "'aliases[0].agencies' must have at least 2 items, found 1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_key_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
