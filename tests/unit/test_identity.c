/*
 * Unit tests for federation identities (common/src/identity.c): the four
 * spiffe URI forms and everything near them that must be refused, name and
 * federation syntax, formatting (and its round trip through parsing), and
 * extraction from certificates built in memory with OpenSSL, with zero, one
 * or two URI SANs. Nothing is read from disk.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/identity.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* ---- helpers ------------------------------------------------------------ */

/* Parses a NUL-terminated string. */
static int
parse(const char *uri, struct fq_identity *ret)
{
    return fq_identity_parse(uri, strlen(uri), ret);
}

/* Fails unless uri is refused and ret is left exactly as it was. */
static void
assert_rejected_len(const char *uri, size_t len)
{
    struct fq_identity id, before;

    memset(&id, 0x5a, sizeof(id));
    memcpy(&before, &id, sizeof(id));
    int rc = fq_identity_parse(uri, len, &id);
    if (rc != FQ_EINVAL)
        fail_msg("'%.*s' (%zu bytes): got %d, expected FQ_EINVAL", (int)len,
                 uri, len, rc);
    assert_memory_equal(&id, &before, sizeof(id));
}

static void
assert_rejected(const char *uri)
{
    assert_rejected_len(uri, strlen(uri));
}

/* A string of n copies of c (n < 128). */
/* Writes n copies of c and a NUL into out. */
static void
fill(char *out, size_t outlen, char c, size_t n)
{
    assert_true(n < outlen);
    memset(out, c, n);
    out[n] = '\0';
}

static const char *
repeat(char c, size_t n)
{
    static char s[128];
    assert_true(n < sizeof(s));
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- fq_identity_parse: the four forms ----------------------------------- */

static void
test_parse_gateway(void **state)
{
    struct fq_identity id;

    (void)state;
    memset(&id, 0x5a, sizeof(id)); /* stale content must not survive */
    assert_int_equal(parse("spiffe://fed.example-1/gateway", &id), 0);
    assert_int_equal(id.role, FQ_ROLE_GATEWAY);
    assert_string_equal(id.uri, "spiffe://fed.example-1/gateway");
    assert_string_equal(id.federation, "fed.example-1");
    assert_string_equal(id.agency, "");
    assert_string_equal(id.name, "");
}

static void
test_parse_agent(void **state)
{
    struct fq_identity id;

    (void)state;
    memset(&id, 0x5a, sizeof(id));
    assert_int_equal(parse("spiffe://fed/agency/dol/agent", &id), 0);
    assert_int_equal(id.role, FQ_ROLE_AGENT);
    assert_string_equal(id.uri, "spiffe://fed/agency/dol/agent");
    assert_string_equal(id.federation, "fed");
    assert_string_equal(id.agency, "dol");
    assert_string_equal(id.name, "");
}

static void
test_parse_analyst(void **state)
{
    struct fq_identity id;

    (void)state;
    memset(&id, 0x5a, sizeof(id));
    assert_int_equal(parse("spiffe://f/analyst/alice_1-b", &id), 0);
    assert_int_equal(id.role, FQ_ROLE_ANALYST);
    assert_string_equal(id.uri, "spiffe://f/analyst/alice_1-b");
    assert_string_equal(id.federation, "f");
    assert_string_equal(id.agency, "");
    assert_string_equal(id.name, "alice_1-b");
}

static void
test_parse_steward(void **state)
{
    struct fq_identity id;

    (void)state;
    memset(&id, 0x5a, sizeof(id));
    assert_int_equal(parse("spiffe://fed/steward/dol/bob", &id), 0);
    assert_int_equal(id.role, FQ_ROLE_STEWARD);
    assert_string_equal(id.uri, "spiffe://fed/steward/dol/bob");
    assert_string_equal(id.federation, "fed");
    assert_string_equal(id.agency, "dol");
    assert_string_equal(id.name, "bob");
}

/* len bounds the URI: bytes after it are not part of it. */
static void
test_parse_uses_len(void **state)
{
    struct fq_identity id;
    const char *s = "spiffe://fed/analyst/alice/extra";

    (void)state;
    assert_int_equal(
        fq_identity_parse(s, strlen("spiffe://fed/analyst/alice"), &id), 0);
    assert_int_equal(id.role, FQ_ROLE_ANALYST);
    assert_string_equal(id.uri, "spiffe://fed/analyst/alice");
    assert_string_equal(id.name, "alice");

    /* Not NUL-terminated at all. */
    static const char raw[] = {'s', 'p', 'i', 'f', 'f', 'e', ':', '/', '/',
                               'x', '/', 'g', 'a', 't', 'e', 'w', 'a', 'y'};
    assert_int_equal(fq_identity_parse(raw, sizeof(raw), &id), 0);
    assert_int_equal(id.role, FQ_ROLE_GATEWAY);
    assert_string_equal(id.uri, "spiffe://x/gateway");
    assert_string_equal(id.federation, "x");
}

/* ---- fq_identity_parse: lengths ------------------------------------------ */

static void
test_parse_name_lengths(void **state)
{
    char uri[256];
    struct fq_identity id;

    (void)state;
    snprintf(uri, sizeof(uri), "spiffe://fed/analyst/%s", repeat('n', 32));
    assert_int_equal(parse(uri, &id), 0);
    assert_string_equal(id.name, repeat('n', 32));
    snprintf(uri, sizeof(uri), "spiffe://fed/analyst/%s", repeat('n', 33));
    assert_rejected(uri);

    snprintf(uri, sizeof(uri), "spiffe://fed/agency/%s/agent", repeat('a', 32));
    assert_int_equal(parse(uri, &id), 0);
    assert_string_equal(id.agency, repeat('a', 32));
    snprintf(uri, sizeof(uri), "spiffe://fed/agency/%s/agent", repeat('a', 33));
    assert_rejected(uri);

    char agency[40];
    fill(agency, sizeof(agency), 'a', 32);
    snprintf(uri, sizeof(uri), "spiffe://fed/steward/%s/%s", agency,
             repeat('b', 32));
    assert_int_equal(parse(uri, &id), 0);
    assert_string_equal(id.agency, agency);
    assert_string_equal(id.name, repeat('b', 32));
    snprintf(uri, sizeof(uri), "spiffe://fed/steward/%s/%s", agency,
             repeat('b', 33));
    assert_rejected(uri);
    fill(agency, sizeof(agency), 'a', 33);
    snprintf(uri, sizeof(uri), "spiffe://fed/steward/%s/bob", agency);
    assert_rejected(uri);
}

static void
test_parse_federation_lengths(void **state)
{
    char uri[256];
    struct fq_identity id;

    (void)state;
    snprintf(uri, sizeof(uri), "spiffe://%s/gateway", repeat('f', 63));
    assert_int_equal(parse(uri, &id), 0);
    assert_string_equal(id.federation, repeat('f', 63));
    snprintf(uri, sizeof(uri), "spiffe://%s/gateway", repeat('f', 64));
    assert_rejected(uri);
}

/* The longest valid URI fits, with its NUL, in the uri field. */
static void
test_parse_longest(void **state)
{
    char uri[256], fed[64], agency[33];
    struct fq_identity id;

    (void)state;
    fill(fed, sizeof(fed), 'f', 63);
    fill(agency, sizeof(agency), 'a', 32);
    int n = snprintf(uri, sizeof(uri), "spiffe://%s/steward/%s/%s", fed, agency,
                     repeat('n', 32));
    assert_int_equal(n, 9 + 63 + 9 + 32 + 1 + 32);
    assert_int_equal(parse(uri, &id), 0);
    assert_string_equal(id.uri, uri);
    assert_string_equal(id.federation, fed);
    assert_string_equal(id.agency, agency);
    assert_string_equal(id.name, repeat('n', 32));
}

/* Lengths that cannot be a fedq identity at all. */
static void
test_parse_length_limits(void **state)
{
    char big[400];

    (void)state;
    assert_rejected_len("", 0);
    assert_rejected_len("spiffe://fed/gateway", 0);
    assert_rejected("spiffe://");
    assert_rejected("spiffe:/");
    /* 256 bytes or more is refused before anything else. */
    memset(big, 'a', sizeof(big));
    memcpy(big, "spiffe://fed/analyst/", 21);
    assert_rejected_len(big, 256);
    assert_rejected_len(big, sizeof(big));
}

/* ---- fq_identity_parse: refusals ----------------------------------------- */

static void
test_parse_rejects_scheme(void **state)
{
    (void)state;
    assert_rejected("https://fed/gateway");
    assert_rejected("spiffe:/fed/gateway");
    assert_rejected("spiffe:fed/gateway");
    assert_rejected("SPIFFE://fed/gateway");
    assert_rejected("Spiffe://fed/gateway");
    assert_rejected(" spiffe://fed/gateway");
    assert_rejected("spiffe//fed/gateway");
    assert_rejected("fed/gateway");
    assert_rejected("urn:spiffe://fed/gateway");
}

static void
test_parse_rejects_federation(void **state)
{
    (void)state;
    assert_rejected("spiffe://fed"); /* no path at all */
    assert_rejected("spiffe:///gateway");
    assert_rejected("spiffe://Fed/gateway");
    assert_rejected("spiffe://FED/gateway");
    assert_rejected("spiffe://fed_x/gateway");
    assert_rejected("spiffe://-fed/gateway");
    assert_rejected("spiffe://.fed/gateway");
    assert_rejected("spiffe://fed:443/gateway");
    assert_rejected("spiffe://user@fed/gateway");
    assert_rejected("spiffe://fe d/gateway");
    assert_rejected("spiffe://f%41/gateway");
}

static void
test_parse_rejects_gateway_variants(void **state)
{
    (void)state;
    assert_rejected("spiffe://fed/");
    assert_rejected("spiffe://fed/gateway/");
    assert_rejected("spiffe://fed/gateway/x");
    assert_rejected("spiffe://fed//gateway");
    assert_rejected("spiffe://fed/Gateway");
    assert_rejected("spiffe://fed/gateways");
    assert_rejected("spiffe://fed/gatewa");
    assert_rejected("spiffe://fed/gateway ");
    assert_rejected("spiffe://fed/gateway?x=1");
    assert_rejected("spiffe://fed/gateway#x");
    assert_rejected("spiffe://fed/./gateway");
    assert_rejected("spiffe://fed/../gateway");
    assert_rejected("spiffe://fed/x/../gateway");
    assert_rejected("spiffe://fed/unknown");
    assert_rejected("spiffe://fed/a/b/c/d/e");
    assert_rejected("spiffe://fed/////");
}

static void
test_parse_rejects_analyst_variants(void **state)
{
    (void)state;
    assert_rejected("spiffe://fed/analyst");
    assert_rejected("spiffe://fed/analyst/");
    assert_rejected("spiffe://fed/analyst//");
    assert_rejected("spiffe://fed/analyst/alice/");
    assert_rejected("spiffe://fed/analyst/alice/x");
    assert_rejected("spiffe://fed/analyst/Alice");
    assert_rejected("spiffe://fed/analyst/..");
    assert_rejected("spiffe://fed/analyst/.");
    assert_rejected("spiffe://fed/analyst/a.b");
    assert_rejected("spiffe://fed/analyst/_a");
    assert_rejected("spiffe://fed/analyst/-a");
    assert_rejected("spiffe://fed/analyst/a b");
    assert_rejected("spiffe://fed/analyst/al%69ce");
    assert_rejected("spiffe://fed/Analyst/alice");
    assert_rejected("spiffe://fed/analysts/alice");
    assert_rejected("spiffe://fed/analyst/\xc3\xa9");
}

static void
test_parse_rejects_agent_variants(void **state)
{
    (void)state;
    assert_rejected("spiffe://fed/agency");
    assert_rejected("spiffe://fed/agency/dol");
    assert_rejected("spiffe://fed/agency/dol/");
    assert_rejected("spiffe://fed/agency/dol/agent/");
    assert_rejected("spiffe://fed/agency/dol/agent/x");
    assert_rejected("spiffe://fed/agency/dol/agents");
    assert_rejected("spiffe://fed/agency/dol/Agent");
    assert_rejected("spiffe://fed/agency//agent");
    assert_rejected("spiffe://fed/agency/../agent");
    assert_rejected("spiffe://fed/agency/DOL/agent");
    assert_rejected("spiffe://fed/agent/dol/agency");
    assert_rejected("spiffe://fed/agency/dol/gateway");
}

static void
test_parse_rejects_steward_variants(void **state)
{
    (void)state;
    assert_rejected("spiffe://fed/steward");
    assert_rejected("spiffe://fed/steward/dol");
    assert_rejected("spiffe://fed/steward/dol/");
    assert_rejected("spiffe://fed/steward//bob");
    assert_rejected("spiffe://fed/steward/dol/bob/");
    assert_rejected("spiffe://fed/steward/dol/bob/x");
    assert_rejected("spiffe://fed/steward/dol/Bob");
    assert_rejected("spiffe://fed/steward/dol/..");
    assert_rejected("spiffe://fed/steward/../bob");
    assert_rejected("spiffe://fed/steward/dol.gov/bob");
}

/* len counts bytes: a NUL inside is a byte that no form allows. */
static void
test_parse_rejects_embedded_nul(void **state)
{
    static const char a[] = "spiffe://fed/analyst/al\0ce";
    static const char b[] = "spiffe://fed/gateway\0";
    static const char c[] = "spiffe://fe\0d/gateway";
    static const char d[] = "spiffe://fed/agency/dol\0/agent";
    static const char e[] = "spiffe://fed/analyst/alice\0.evil.example";

    (void)state;
    assert_rejected_len(a, sizeof(a) - 1);
    assert_rejected_len(b, sizeof(b) - 1);
    assert_rejected_len(c, sizeof(c) - 1);
    assert_rejected_len(d, sizeof(d) - 1);
    assert_rejected_len(e, sizeof(e) - 1);
    /* The same bytes up to the NUL are fine. */
    struct fq_identity id;
    assert_int_equal(fq_identity_parse(e, strlen(e), &id), 0);
    assert_string_equal(id.name, "alice");
}

/* ---- names --------------------------------------------------------------- */

static void
test_name_valid(void **state)
{
    (void)state;
    assert_true(fq_name_valid("a"));
    assert_true(fq_name_valid("0"));
    assert_true(fq_name_valid("a-b_c9"));
    assert_true(fq_name_valid("9-"));
    assert_true(fq_name_valid("a_"));
    assert_true(fq_name_valid(repeat('z', 32)));
    assert_false(fq_name_valid(repeat('z', 33)));
    assert_false(fq_name_valid(""));
    assert_false(fq_name_valid("-a"));
    assert_false(fq_name_valid("_a"));
    assert_false(fq_name_valid("A"));
    assert_false(fq_name_valid("aB"));
    assert_false(fq_name_valid("a.b"));
    assert_false(fq_name_valid("a b"));
    assert_false(fq_name_valid("a/b"));
    assert_false(fq_name_valid(".."));
    assert_false(fq_name_valid("\xc3\xa9"));
}

static void
test_federation_valid(void **state)
{
    (void)state;
    assert_true(fq_federation_valid("a"));
    assert_true(fq_federation_valid("0"));
    assert_true(fq_federation_valid("fed.example-1.org"));
    assert_true(fq_federation_valid(repeat('f', 63)));
    assert_false(fq_federation_valid(repeat('f', 64)));
    assert_false(fq_federation_valid(""));
    assert_false(fq_federation_valid("a_b"));
    assert_false(fq_federation_valid(".a"));
    assert_false(fq_federation_valid("-a"));
    assert_false(fq_federation_valid("A"));
    assert_false(fq_federation_valid("a/b"));
    assert_false(fq_federation_valid("a:1"));
    assert_false(fq_federation_valid("a b"));
}

static void
test_role_name(void **state)
{
    (void)state;
    assert_string_equal(fq_role_name(FQ_ROLE_GATEWAY), "gateway");
    assert_string_equal(fq_role_name(FQ_ROLE_AGENT), "agent");
    assert_string_equal(fq_role_name(FQ_ROLE_ANALYST), "analyst");
    assert_string_equal(fq_role_name(FQ_ROLE_STEWARD), "steward");
    assert_string_equal(fq_role_name(FQ_ROLE_NONE), "none");
    assert_string_equal(fq_role_name((enum fq_role)FQ_ROLE_ANY), "none");
    assert_string_equal(fq_role_name((enum fq_role)64), "none");
}

/* ---- fq_identity_format -------------------------------------------------- */

static void
assert_round_trip(enum fq_role role, const char *fed, const char *agency,
                  const char *name, const char *expect)
{
    char out[FQ_IDENTITY_MAX];
    struct fq_identity id;

    assert_int_equal(
        fq_identity_format(role, fed, agency, name, out, sizeof(out)), 0);
    assert_string_equal(out, expect);
    assert_int_equal(parse(out, &id), 0);
    assert_int_equal(id.role, role);
    assert_string_equal(id.uri, expect);
    assert_string_equal(id.federation, fed);
    assert_string_equal(
        id.agency,
        role == FQ_ROLE_AGENT || role == FQ_ROLE_STEWARD ? agency : "");
    assert_string_equal(
        id.name,
        role == FQ_ROLE_ANALYST || role == FQ_ROLE_STEWARD ? name : "");
}

static void
test_format_round_trip(void **state)
{
    (void)state;
    assert_round_trip(FQ_ROLE_GATEWAY, "fed.gov", NULL, NULL,
                      "spiffe://fed.gov/gateway");
    /* Gateway ignores agency and name. */
    assert_round_trip(FQ_ROLE_GATEWAY, "fed.gov", "BAD!", "BAD!",
                      "spiffe://fed.gov/gateway");
    assert_round_trip(FQ_ROLE_AGENT, "fed", "dol", NULL,
                      "spiffe://fed/agency/dol/agent");
    assert_round_trip(FQ_ROLE_ANALYST, "fed", NULL, "alice",
                      "spiffe://fed/analyst/alice");
    assert_round_trip(FQ_ROLE_STEWARD, "fed", "dol", "bob",
                      "spiffe://fed/steward/dol/bob");
}

static void
test_format_rejects(void **state)
{
    char out[FQ_IDENTITY_MAX];

    (void)state;
    memset(out, 0, sizeof(out));
    assert_int_equal(fq_identity_format(FQ_ROLE_GATEWAY, "Fed", NULL, NULL, out,
                                        sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(
        fq_identity_format(FQ_ROLE_GATEWAY, "", NULL, NULL, out, sizeof(out)),
        FQ_EINVAL);
    assert_int_equal(fq_identity_format(FQ_ROLE_GATEWAY, "a_b", NULL, NULL, out,
                                        sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(
        fq_identity_format(FQ_ROLE_AGENT, "fed", NULL, NULL, out, sizeof(out)),
        FQ_EINVAL);
    assert_int_equal(
        fq_identity_format(FQ_ROLE_AGENT, "fed", "D", NULL, out, sizeof(out)),
        FQ_EINVAL);
    assert_int_equal(fq_identity_format(FQ_ROLE_ANALYST, "fed", "dol", NULL,
                                        out, sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(fq_identity_format(FQ_ROLE_ANALYST, "fed", NULL,
                                        repeat('a', 33), out, sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(fq_identity_format(FQ_ROLE_STEWARD, "fed", "dol", NULL,
                                        out, sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(fq_identity_format(FQ_ROLE_STEWARD, "fed", NULL, "bob",
                                        out, sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(fq_identity_format(FQ_ROLE_STEWARD, "fed", "dol", "b/c",
                                        out, sizeof(out)),
                     FQ_EINVAL);
    assert_int_equal(
        fq_identity_format(FQ_ROLE_NONE, "fed", "dol", "bob", out, sizeof(out)),
        FQ_EINVAL);
    assert_int_equal(fq_identity_format((enum fq_role)FQ_ROLE_ANY, "fed", "dol",
                                        "bob", out, sizeof(out)),
                     FQ_EINVAL);
    /* Nothing was written by any refusal. */
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(out[i], 0);
}

static void
test_format_out_size(void **state)
{
    char out[32];
    const char *expect = "spiffe://fed/analyst/alice"; /* 26 bytes */

    (void)state;
    assert_int_equal(
        fq_identity_format(FQ_ROLE_ANALYST, "fed", NULL, "alice", out, 27), 0);
    assert_string_equal(out, expect);
    assert_int_equal(
        fq_identity_format(FQ_ROLE_ANALYST, "fed", NULL, "alice", out, 26),
        FQ_ETOOBIG);
    assert_int_equal(
        fq_identity_format(FQ_ROLE_GATEWAY, "fed", NULL, NULL, out, 1),
        FQ_ETOOBIG);
}

/* ---- fq_identity_from_pem ------------------------------------------------ */

struct san {
    int type;          /* GEN_URI, GEN_DNS or GEN_EMAIL */
    const char *value; /* len bytes, may hold a NUL */
    size_t len;        /* 0: strlen(value) */
};

/*
 * A self-signed certificate (fresh P-256 key) with subject CN=cn and the
 * given SANs (no SAN extension at all when nsans is 0), as a malloc'd PEM
 * string.
 */
static char *
make_cert(const char *cn, const struct san *sans, size_t nsans)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    X509_NAME *nm = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1,
                                                -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, nm), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    if (nsans > 0) {
        GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        for (size_t i = 0; i < nsans; i++) {
            GENERAL_NAME *gn = GENERAL_NAME_new();
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();
            size_t len = sans[i].len ? sans[i].len : strlen(sans[i].value);
            assert_int_equal(ASN1_STRING_set(s, sans[i].value, (int)len), 1);
            GENERAL_NAME_set0_value(gn, sans[i].type, s);
            assert_true(sk_GENERAL_NAME_push(gens, gn) > 0);
        }
        assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
                                           X509V3_ADD_DEFAULT),
                         1);
        GENERAL_NAMES_free(gens);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);

    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, x), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    assert_true(n > 0);
    char *pem = malloc((size_t)n + 1);
    assert_non_null(pem);
    memcpy(pem, data, (size_t)n);
    pem[n] = '\0';
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return pem;
}

/* Runs fq_identity_from_pem and checks the refusal and its reason. */
static void
assert_pem_rejected(const char *pem, size_t len, const char *why)
{
    struct fq_identity id, before;
    char err[512] = "";

    memset(&id, 0x5a, sizeof(id));
    memcpy(&before, &id, sizeof(id));
    assert_int_equal(fq_identity_from_pem(pem, len, &id, err, sizeof(err)),
                     FQ_EINVAL);
    assert_string_equal(err, why);
    assert_memory_equal(&id, &before, sizeof(id));
}

static void
test_pem_one_uri(void **state)
{
    const struct san sans[] = {{GEN_URI, "spiffe://fed/analyst/alice", 0}};
    struct fq_identity id;
    char err[256] = "";

    (void)state;
    char *pem = make_cert("alice", sans, 1);
    assert_int_equal(
        fq_identity_from_pem(pem, strlen(pem), &id, err, sizeof(err)), 0);
    assert_int_equal(id.role, FQ_ROLE_ANALYST);
    assert_string_equal(id.uri, "spiffe://fed/analyst/alice");
    assert_string_equal(id.federation, "fed");
    assert_string_equal(id.name, "alice");
    assert_string_equal(err, "");
    free(pem);
}

/* Server certificates also carry DNS and e-mail SANs: only URIs count. */
static void
test_pem_one_uri_among_others(void **state)
{
    const struct san sans[] = {
        {GEN_DNS, "localhost", 0},
        {GEN_URI, "spiffe://fed/agency/dol/agent", 0},
        {GEN_DNS, "agent.example", 0},
        {GEN_EMAIL, "ops@example.org", 0},
    };
    struct fq_identity id;
    char err[256] = "";

    (void)state;
    char *pem = make_cert("dol", sans, FQ_ARRAY_LEN(sans));
    assert_int_equal(
        fq_identity_from_pem(pem, strlen(pem), &id, err, sizeof(err)), 0);
    assert_int_equal(id.role, FQ_ROLE_AGENT);
    assert_string_equal(id.agency, "dol");
    assert_string_equal(id.uri, "spiffe://fed/agency/dol/agent");
    free(pem);
}

static void
test_pem_two_uris(void **state)
{
    const struct san sans[] = {
        {GEN_URI, "spiffe://fed/analyst/alice", 0},
        {GEN_URI, "spiffe://fed/gateway", 0},
    };

    (void)state;
    char *pem = make_cert("alice", sans, 2);
    assert_pem_rejected(pem, strlen(pem),
                        "certificate has 2 URI SANs, expected exactly one");
    free(pem);
}

/* The same URI twice is still two. */
static void
test_pem_duplicate_uri(void **state)
{
    const struct san sans[] = {
        {GEN_URI, "spiffe://fed/gateway", 0},
        {GEN_URI, "spiffe://fed/gateway", 0},
    };

    (void)state;
    char *pem = make_cert("gw", sans, 2);
    assert_pem_rejected(pem, strlen(pem),
                        "certificate has 2 URI SANs, expected exactly one");
    free(pem);
}

/* No URI SAN: a spiffe-looking CN is never used instead. */
static void
test_pem_no_uri(void **state)
{
    const struct san sans[] = {{GEN_DNS, "spiffe://fed/gateway", 0}};

    (void)state;
    char *pem = make_cert("spiffe://fed/gateway", sans, 1);
    assert_pem_rejected(pem, strlen(pem),
                        "certificate has 0 URI SANs, expected exactly one");
    free(pem);
    pem = make_cert("spiffe://fed/gateway", NULL, 0);
    assert_pem_rejected(pem, strlen(pem),
                        "certificate has 0 URI SANs, expected exactly one");
    free(pem);
}

static void
test_pem_non_fedq_uri(void **state)
{
    const struct san sans[] = {{GEN_URI, "https://example.org/x", 0}};
    const struct san sans2[] = {{GEN_URI, "spiffe://fed/analyst/Alice", 0}};

    (void)state;
    char *pem = make_cert("x", sans, 1);
    assert_pem_rejected(pem, strlen(pem),
                        "certificate URI SAN 'https://example.org/x' is not a "
                        "fedq identity");
    free(pem);
    pem = make_cert("x", sans2, 1);
    assert_pem_rejected(pem, strlen(pem),
                        "certificate URI SAN 'spiffe://fed/analyst/Alice' is "
                        "not a fedq identity");
    free(pem);
}

/* A URI SAN with a NUL in it is not read as the part before the NUL. */
static void
test_pem_uri_with_nul(void **state)
{
    static const char uri[] = "spiffe://fed/analyst/alice\0.evil";
    const struct san sans[] = {{GEN_URI, uri, sizeof(uri) - 1}};
    struct fq_identity id, before;
    char err[256] = "";

    (void)state;
    char *pem = make_cert("x", sans, 1);
    memset(&id, 0x5a, sizeof(id));
    memcpy(&before, &id, sizeof(id));
    assert_int_equal(
        fq_identity_from_pem(pem, strlen(pem), &id, err, sizeof(err)),
        FQ_EINVAL);
    assert_non_null(strstr(err, "is not a fedq identity"));
    assert_memory_equal(&id, &before, sizeof(id));
    free(pem);
}

/* A very long URI SAN: the reason quotes at most 200 bytes of it. */
static void
test_pem_long_uri(void **state)
{
    char uri[400], expect[512];

    (void)state;
    memset(uri, 'u', sizeof(uri) - 1);
    uri[sizeof(uri) - 1] = '\0';
    memcpy(uri, "spiffe://", 9);
    const struct san sans[] = {{GEN_URI, uri, 0}};
    char *pem = make_cert("x", sans, 1);
    snprintf(expect, sizeof(expect),
             "certificate URI SAN '%.200s' is not a fedq identity", uri);
    assert_pem_rejected(pem, strlen(pem), expect);
    free(pem);
}

static void
test_pem_garbage(void **state)
{
    const struct san sans[] = {{GEN_URI, "spiffe://fed/gateway", 0}};

    (void)state;
    assert_pem_rejected("", 0, "not a PEM certificate");
    assert_pem_rejected("hello", 5, "not a PEM certificate");
    const char *bad = "-----BEGIN CERTIFICATE-----\nAAAA\n"
                      "-----END CERTIFICATE-----\n";
    assert_pem_rejected(bad, strlen(bad), "not a PEM certificate");
    /* A good certificate cut short by len. */
    char *pem = make_cert("gw", sans, 1);
    assert_pem_rejected(pem, strlen(pem) / 2, "not a PEM certificate");
    /* The whole of it is fine. */
    struct fq_identity id;
    char err[128];
    assert_int_equal(
        fq_identity_from_pem(pem, strlen(pem), &id, err, sizeof(err)), 0);
    assert_int_equal(id.role, FQ_ROLE_GATEWAY);
    free(pem);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_gateway),
        cmocka_unit_test(test_parse_agent),
        cmocka_unit_test(test_parse_analyst),
        cmocka_unit_test(test_parse_steward),
        cmocka_unit_test(test_parse_uses_len),
        cmocka_unit_test(test_parse_name_lengths),
        cmocka_unit_test(test_parse_federation_lengths),
        cmocka_unit_test(test_parse_longest),
        cmocka_unit_test(test_parse_length_limits),
        cmocka_unit_test(test_parse_rejects_scheme),
        cmocka_unit_test(test_parse_rejects_federation),
        cmocka_unit_test(test_parse_rejects_gateway_variants),
        cmocka_unit_test(test_parse_rejects_analyst_variants),
        cmocka_unit_test(test_parse_rejects_agent_variants),
        cmocka_unit_test(test_parse_rejects_steward_variants),
        cmocka_unit_test(test_parse_rejects_embedded_nul),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_federation_valid),
        cmocka_unit_test(test_role_name),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_format_rejects),
        cmocka_unit_test(test_format_out_size),
        cmocka_unit_test(test_pem_one_uri),
        cmocka_unit_test(test_pem_one_uri_among_others),
        cmocka_unit_test(test_pem_two_uris),
        cmocka_unit_test(test_pem_duplicate_uri),
        cmocka_unit_test(test_pem_no_uri),
        cmocka_unit_test(test_pem_non_fedq_uri),
        cmocka_unit_test(test_pem_uri_with_nul),
        cmocka_unit_test(test_pem_long_uri),
        cmocka_unit_test(test_pem_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
