/*
 * Unit tests for the TLS material checks (common/src/tls.c). A small PKI
 * is built at test time with OpenSSL's C API (root CA, intermediate, an
 * unrelated CA, an impostor CA with the root's name, and leaves that are
 * good, expired, not yet valid, with two URI SANs, ...) and written into a
 * private temporary directory; every failure is checked for its FQ_E* code
 * and its exact message, which must name the file.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/tls.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define DAY 86400

static char dir[64];
static time_t leaf_not_after; /* of leaf.crt, to the second */

/* ---- building the PKI ---------------------------------------------------- */

struct cert_spec {
    const char *cn;
    X509 *issuer;         /* NULL: self-signed */
    EVP_PKEY *issuer_key; /* NULL: self-signed */
    bool ca;
    const char *uri1; /* URI SANs, may be NULL */
    const char *uri2;
    time_t not_before;
    time_t not_after;
};

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;

    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static X509 *
make_cert(const struct cert_spec *s, EVP_PKEY *key)
{
    static long serial = 1;
    char san[512];

    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
    X509_NAME *nm = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                                (const unsigned char *)s->cn,
                                                -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(
                         x, s->issuer ? X509_get_subject_name(s->issuer) : nm),
                     1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), s->not_before));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), s->not_after));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    if (s->ca) {
        add_ext(x, s->issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, s->issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, s->issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, s->issuer, NID_key_usage,
                "critical,digitalSignature,keyEncipherment");
    }
    if (s->uri1) {
        if (s->uri2)
            snprintf(san, sizeof(san), "DNS:localhost,URI:%s,URI:%s", s->uri1,
                     s->uri2);
        else
            snprintf(san, sizeof(san), "DNS:localhost,URI:%s", s->uri1);
        add_ext(x, s->issuer, NID_subject_alt_name, san);
    } else {
        add_ext(x, s->issuer, NID_subject_alt_name, "DNS:localhost");
    }
    assert_true(
        X509_sign(x, s->issuer_key ? s->issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void
path_of(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", dir, name);
}

static void
write_bytes(const char *name, const void *data, size_t len, mode_t mode)
{
    char path[128];

    path_of(path, sizeof(path), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Writes up to three certificates, in order, as one PEM file. */
static void
write_certs(const char *name, X509 *a, X509 *b, X509 *c)
{
    X509 *certs[] = {a, b, c};
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;

    for (size_t i = 0; i < FQ_ARRAY_LEN(certs); i++) {
        if (certs[i])
            assert_int_equal(PEM_write_bio_X509(bio, certs[i]), 1);
    }
    long n = BIO_get_mem_data(bio, &data);
    write_bytes(name, data, (size_t)n, 0644);
    BIO_free(bio);
}

static void
write_key(const char *name, EVP_PKEY *key, mode_t mode)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;

    assert_int_equal(
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    long n = BIO_get_mem_data(bio, &data);
    write_bytes(name, data, (size_t)n, mode);
    BIO_free(bio);
}

static EVP_PKEY *
new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static int
setup_pki(void **state)
{
    (void)state;
    /* A local time zone far from UTC: not_after must not depend on it. */
    setenv("TZ", "FQT-5", 1);
    tzset();
    snprintf(dir, sizeof(dir), "/tmp/fq-test-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;

    time_t now = time(NULL);
    leaf_not_after = now + 30 * DAY;
    EVP_PKEY *ca_key = new_key(), *other_ca_key = new_key(),
             *impostor_key = new_key(), *inter_key = new_key(),
             *leaf_key = new_key(), *other_key = new_key();

    struct cert_spec s = {.cn = "fedq test CA",
                          .ca = true,
                          .not_before = now - DAY,
                          .not_after = now + 365 * DAY};
    X509 *ca = make_cert(&s, ca_key);
    write_certs("ca.crt", ca, NULL, NULL);
    s.cn = "another CA";
    X509 *other_ca = make_cert(&s, other_ca_key);
    write_certs("other-ca.crt", other_ca, NULL, NULL);
    write_certs("bundle.crt", other_ca, ca, NULL);
    /* Same subject as the real CA, different key. */
    s.cn = "fedq test CA";
    X509 *impostor = make_cert(&s, impostor_key);
    write_certs("impostor-ca.crt", impostor, NULL, NULL);
    s.cn = "fedq intermediate";
    s.issuer = ca;
    s.issuer_key = ca_key;
    X509 *inter = make_cert(&s, inter_key);

    /* Leaves, all with leaf_key unless said otherwise. */
    struct cert_spec l = {.cn = "alice",
                          .issuer = ca,
                          .issuer_key = ca_key,
                          .uri1 = "spiffe://fed.test/analyst/alice",
                          .not_before = now - 3600,
                          .not_after = leaf_not_after};
    write_key("leaf.key", leaf_key, 0600);
    write_key("leaf-0400.key", leaf_key, 0400);
    write_key("leaf-0644.key", leaf_key, 0644);
    write_key("leaf-0640.key", leaf_key, 0640);
    write_key("leaf-0604.key", leaf_key, 0604);
    write_key("other.key", other_key, 0600);
    X509 *x = make_cert(&l, leaf_key);
    write_certs("leaf.crt", x, NULL, NULL);
    X509_free(x);

    l.uri2 = "spiffe://fed.test/gateway";
    x = make_cert(&l, leaf_key);
    write_certs("two-uris.crt", x, NULL, NULL);
    X509_free(x);
    l.uri1 = l.uri2 = NULL;
    x = make_cert(&l, leaf_key);
    write_certs("no-uri.crt", x, NULL, NULL);
    X509_free(x);
    l.uri1 = "https://fed.test/alice";
    x = make_cert(&l, leaf_key);
    write_certs("bad-uri.crt", x, NULL, NULL);
    X509_free(x);
    l.uri1 = "spiffe://fed.test/analyst/alice";

    l.not_before = now - 10 * DAY;
    l.not_after = now - DAY;
    x = make_cert(&l, leaf_key);
    write_certs("expired.crt", x, NULL, NULL);
    X509_free(x);
    l.not_before = now + DAY;
    l.not_after = now + 10 * DAY;
    x = make_cert(&l, leaf_key);
    write_certs("future.crt", x, NULL, NULL);
    X509_free(x);
    l.not_before = now - 3600;
    l.not_after = leaf_not_after;

    l.issuer = other_ca;
    l.issuer_key = other_ca_key;
    x = make_cert(&l, leaf_key);
    write_certs("by-other-ca.crt", x, NULL, NULL);
    X509_free(x);
    l.issuer = impostor;
    l.issuer_key = impostor_key;
    x = make_cert(&l, leaf_key);
    write_certs("by-impostor.crt", x, NULL, NULL);
    X509_free(x);

    /* Issued by the intermediate: good only with the intermediate after
     * the leaf in the certificate file. */
    l.issuer = inter;
    l.issuer_key = inter_key;
    l.uri1 = "spiffe://fed.test/agency/dol/agent";
    x = make_cert(&l, leaf_key);
    write_certs("chain.crt", x, inter, NULL);
    write_certs("chain-leaf-only.crt", x, NULL, NULL);
    X509_free(x);

    write_bytes("garbage.pem", "this is not PEM\n", 16, 0600);
    write_bytes("empty.pem", "", 0, 0600);
    static char big[FQ_TLS_FILE_MAX + 1];
    memset(big, '#', sizeof(big));
    write_bytes("big.pem", big, sizeof(big), 0600);

    X509_free(ca);
    X509_free(other_ca);
    X509_free(impostor);
    X509_free(inter);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_ca_key);
    EVP_PKEY_free(impostor_key);
    EVP_PKEY_free(inter_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(other_key);
    return 0;
}

static int
teardown_pki(void **state)
{
    char path[512];
    struct dirent *e;

    (void)state;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return rmdir(dir);
}

/* ---- running fq_tls_load ------------------------------------------------- */

struct paths {
    char ca[128], cert[128], key[128];
};

static void
set_paths(struct paths *p, const char *ca, const char *cert, const char *key)
{
    path_of(p->ca, sizeof(p->ca), ca);
    path_of(p->cert, sizeof(p->cert), cert);
    path_of(p->key, sizeof(p->key), key);
}

/* Expects failure rc with message why; ret must be left untouched. */
static void
expect_fail(const struct fq_tls_files *f, int rc, const char *why)
{
    struct fq_tls_material m, before;
    char err[1024] = "";

    memset(&m, 0x5a, sizeof(m));
    memcpy(&before, &m, sizeof(m));
    int got = fq_tls_load(f, &m, err, sizeof(err));
    if (got != rc || strcmp(err, why) != 0)
        fail_msg("got %d '%s', expected %d '%s'", got, err, rc, why);
    assert_memory_equal(&m, &before, sizeof(m));
}

static void
expect_fail_names(const char *ca, const char *cert, const char *key, int rc,
                  const char *why)
{
    struct paths p;

    set_paths(&p, ca, cert, key);
    struct fq_tls_files f = {p.ca, p.cert, p.key};
    expect_fail(&f, rc, why);
}

/* Reads a file of the temp dir into a malloc'd string. */
static char *
slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

/* ---- success ------------------------------------------------------------- */

static void
test_load_ok(void **state)
{
    struct paths p;
    struct fq_tls_material m;
    char err[512] = "";

    (void)state;
    set_paths(&p, "ca.crt", "leaf.crt", "leaf.key");
    struct fq_tls_files f = {p.ca, p.cert, p.key};
    memset(&m, 0x5a, sizeof(m));
    assert_int_equal(fq_tls_load(&f, &m, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(m.self.role, FQ_ROLE_ANALYST);
    assert_string_equal(m.self.uri, "spiffe://fed.test/analyst/alice");
    assert_string_equal(m.self.federation, "fed.test");
    assert_string_equal(m.self.name, "alice");
    assert_string_equal(m.self.agency, "");
    assert_int_equal(m.not_after, (int64_t)leaf_not_after);

    char *ca = slurp(p.ca), *cert = slurp(p.cert), *key = slurp(p.key);
    assert_string_equal(m.ca_pem, ca);
    assert_string_equal(m.cert_pem, cert);
    assert_string_equal(m.key_pem, key);
    free(ca);
    free(cert);
    free(key);

    fq_tls_material_release(&m);
    assert_null(m.ca_pem);
    assert_null(m.cert_pem);
    assert_null(m.key_pem);
    fq_tls_material_release(&m); /* idempotent */
    assert_null(m.key_pem);
}

static void
test_load_ok_variants(void **state)
{
    static const char *const cases[][3] = {
        {"ca.crt", "leaf.crt", "leaf-0400.key"}, /* read-only key */
        {"bundle.crt", "leaf.crt", "leaf.key"},  /* CA among others */
        {"ca.crt", "chain.crt", "leaf.key"},     /* with intermediate */
    };

    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(cases); i++) {
        struct paths p;
        struct fq_tls_material m;
        char err[512] = "";

        set_paths(&p, cases[i][0], cases[i][1], cases[i][2]);
        struct fq_tls_files f = {p.ca, p.cert, p.key};
        int rc = fq_tls_load(&f, &m, err, sizeof(err));
        if (rc != 0)
            fail_msg("case %zu: %d '%s'", i, rc, err);
        assert_int_equal(m.not_after, (int64_t)leaf_not_after);
        assert_non_null(m.key_pem);
        fq_tls_material_release(&m);
    }

    /* The chained leaf is an agent. */
    struct paths p;
    struct fq_tls_material m;
    char err[512];
    set_paths(&p, "ca.crt", "chain.crt", "leaf.key");
    struct fq_tls_files f = {p.ca, p.cert, p.key};
    assert_int_equal(fq_tls_load(&f, &m, err, sizeof(err)), 0);
    assert_int_equal(m.self.role, FQ_ROLE_AGENT);
    assert_string_equal(m.self.agency, "dol");
    fq_tls_material_release(&m);
}

static void
test_release_zeroed(void **state)
{
    struct fq_tls_material m;

    (void)state;
    memset(&m, 0, sizeof(m));
    fq_tls_material_release(&m);
    fq_tls_material_release(&m);
    assert_null(m.ca_pem);
    assert_null(m.cert_pem);
    assert_null(m.key_pem);
}

/* ---- unreadable or missing files ----------------------------------------- */

static void
test_missing_files(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "nope-ca.crt", "nope.crt", "nope.key");
    snprintf(why, sizeof(why), "cannot read CA '%s': not found", p.ca);
    expect_fail_names("nope-ca.crt", "leaf.crt", "leaf.key", FQ_ENOENT, why);
    snprintf(why, sizeof(why), "cannot read certificate '%s': not found",
             p.cert);
    expect_fail_names("ca.crt", "nope.crt", "leaf.key", FQ_ENOENT, why);
    snprintf(why, sizeof(why), "cannot read key '%s': not found", p.key);
    expect_fail_names("ca.crt", "leaf.crt", "nope.key", FQ_ENOENT, why);
}

static void
test_unconfigured_files(void **state)
{
    struct paths p;

    (void)state;
    set_paths(&p, "ca.crt", "leaf.crt", "leaf.key");
    struct fq_tls_files f = {NULL, p.cert, p.key};
    expect_fail(&f, FQ_EINVAL, "no CA file configured");
    f = (struct fq_tls_files){p.ca, "", p.key};
    expect_fail(&f, FQ_EINVAL, "no certificate file configured");
    f = (struct fq_tls_files){p.ca, p.cert, NULL};
    expect_fail(&f, FQ_EINVAL, "no key file configured");
}

static void
test_file_too_big(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "big.pem", "big.pem", "big.pem");
    snprintf(why, sizeof(why), "cannot read CA '%s': limit exceeded", p.ca);
    expect_fail_names("big.pem", "leaf.crt", "leaf.key", FQ_ETOOBIG, why);
    snprintf(why, sizeof(why), "cannot read certificate '%s': limit exceeded",
             p.cert);
    expect_fail_names("ca.crt", "big.pem", "leaf.key", FQ_ETOOBIG, why);
}

/* ---- bad content
 * -------------------------------------------------------------- */

static void
test_garbage_pem(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "garbage.pem", "garbage.pem", "garbage.pem");
    snprintf(why, sizeof(why), "CA file '%s' holds no PEM certificate", p.ca);
    expect_fail_names("garbage.pem", "leaf.crt", "leaf.key", FQ_EINVAL, why);
    snprintf(why, sizeof(why), "certificate file '%s' holds no PEM certificate",
             p.cert);
    expect_fail_names("ca.crt", "garbage.pem", "leaf.key", FQ_EINVAL, why);
    snprintf(why, sizeof(why),
             "key file '%s' holds no unencrypted PEM private key", p.key);
    expect_fail_names("ca.crt", "leaf.crt", "garbage.pem", FQ_EINVAL, why);

    set_paths(&p, "empty.pem", "empty.pem", "empty.pem");
    snprintf(why, sizeof(why), "CA file '%s' holds no PEM certificate", p.ca);
    expect_fail_names("empty.pem", "leaf.crt", "leaf.key", FQ_EINVAL, why);
    snprintf(why, sizeof(why), "certificate file '%s' holds no PEM certificate",
             p.cert);
    expect_fail_names("ca.crt", "empty.pem", "leaf.key", FQ_EINVAL, why);
    snprintf(why, sizeof(why),
             "key file '%s' holds no unencrypted PEM private key", p.key);
    expect_fail_names("ca.crt", "leaf.crt", "empty.pem", FQ_EINVAL, why);
}

/* Files swapped around: a key where the certificate goes and so on. */
static void
test_swapped_files(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "leaf.key", "leaf.key", "leaf.crt");
    snprintf(why, sizeof(why), "CA file '%s' holds no PEM certificate", p.ca);
    expect_fail_names("leaf.key", "leaf.crt", "leaf.key", FQ_EINVAL, why);
    snprintf(why, sizeof(why), "certificate file '%s' holds no PEM certificate",
             p.cert);
    expect_fail_names("ca.crt", "leaf.key", "leaf.key", FQ_EINVAL, why);
}

static void
test_key_mismatch(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "ca.crt", "leaf.crt", "other.key");
    snprintf(why, sizeof(why), "key '%s' does not match certificate '%s'",
             p.key, p.cert);
    expect_fail_names("ca.crt", "leaf.crt", "other.key", FQ_EINVAL, why);
}

/* ---- chain and validity
 * --------------------------------------------------------- */

static void
expect_verify_fail(const char *ca, const char *cert, int x509_err)
{
    struct paths p;
    char why[1024];

    set_paths(&p, ca, cert, "leaf.key");
    snprintf(why, sizeof(why),
             "certificate '%s' does not verify against CA '%s': %s", p.cert,
             p.ca, X509_verify_cert_error_string(x509_err));
    expect_fail_names(ca, cert, "leaf.key", FQ_EINVAL, why);
}

static void
test_other_ca(void **state)
{
    (void)state;
    expect_verify_fail("ca.crt", "by-other-ca.crt",
                       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    expect_verify_fail("other-ca.crt", "leaf.crt",
                       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* An issuer with the CA's name but not its key. */
    expect_verify_fail("ca.crt", "by-impostor.crt",
                       X509_V_ERR_CERT_SIGNATURE_FAILURE);
    expect_verify_fail("impostor-ca.crt", "leaf.crt",
                       X509_V_ERR_CERT_SIGNATURE_FAILURE);
    /* The intermediate is missing from the certificate file. */
    expect_verify_fail("ca.crt", "chain-leaf-only.crt",
                       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
}

static void
test_expired(void **state)
{
    (void)state;
    expect_verify_fail("ca.crt", "expired.crt", X509_V_ERR_CERT_HAS_EXPIRED);
}

static void
test_not_yet_valid(void **state)
{
    (void)state;
    expect_verify_fail("ca.crt", "future.crt", X509_V_ERR_CERT_NOT_YET_VALID);
}

/* ---- identity ------------------------------------------------------------ */

static void
test_two_uri_sans(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "ca.crt", "two-uris.crt", "leaf.key");
    snprintf(why, sizeof(why),
             "certificate '%s': certificate has 2 URI SANs, expected exactly "
             "one",
             p.cert);
    expect_fail_names("ca.crt", "two-uris.crt", "leaf.key", FQ_EINVAL, why);
}

static void
test_no_or_bad_uri_san(void **state)
{
    struct paths p;
    char why[512];

    (void)state;
    set_paths(&p, "ca.crt", "no-uri.crt", "leaf.key");
    snprintf(why, sizeof(why),
             "certificate '%s': certificate has 0 URI SANs, expected exactly "
             "one",
             p.cert);
    expect_fail_names("ca.crt", "no-uri.crt", "leaf.key", FQ_EINVAL, why);
    set_paths(&p, "ca.crt", "bad-uri.crt", "leaf.key");
    snprintf(why, sizeof(why),
             "certificate '%s': certificate URI SAN 'https://fed.test/alice' "
             "is not a fedq identity",
             p.cert);
    expect_fail_names("ca.crt", "bad-uri.crt", "leaf.key", FQ_EINVAL, why);
}

/* ---- key file mode
 * ------------------------------------------------------------ */

static void
test_key_mode(void **state)
{
    static const char *const keys[] = {"leaf-0644.key", "leaf-0640.key",
                                       "leaf-0604.key"};
    (void)state;
    for (size_t i = 0; i < FQ_ARRAY_LEN(keys); i++) {
        struct paths p;
        char why[512];

        set_paths(&p, "ca.crt", "leaf.crt", keys[i]);
        snprintf(why, sizeof(why),
                 "key file '%s' is readable by group or others (chmod 600 "
                 "it)",
                 p.key);
        expect_fail_names("ca.crt", "leaf.crt", keys[i], FQ_EPERM, why);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ok),
        cmocka_unit_test(test_load_ok_variants),
        cmocka_unit_test(test_release_zeroed),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_unconfigured_files),
        cmocka_unit_test(test_file_too_big),
        cmocka_unit_test(test_garbage_pem),
        cmocka_unit_test(test_swapped_files),
        cmocka_unit_test(test_key_mismatch),
        cmocka_unit_test(test_other_ca),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_two_uri_sans),
        cmocka_unit_test(test_no_or_bad_uri_san),
        cmocka_unit_test(test_key_mode),
    };
    return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
