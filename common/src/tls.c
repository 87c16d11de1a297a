/*
 * TLS material checks with OpenSSL; see fq/tls.h. Nothing here talks to
 * gRPC: the PEM strings are handed over by the RPC layer.
 */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "fq/tls.h"

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int
tls_read(const char *what, const char *path, char **ret, char *err,
         size_t errlen)
{
    struct fq_buf b;

    if (!path || !*path) {
        snprintf(err, errlen, "no %s file configured", what);
        return FQ_EINVAL;
    }
    fq_buf_init(&b, FQ_TLS_FILE_MAX);
    int rc = fq_buf_read_file(&b, path);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s '%s': %s", what, path,
                 fq_strerror(rc));
        return rc;
    }
    *ret = fq_buf_detach(&b, NULL);
    return *ret ? 0 : FQ_ENOMEM;
}

/* Loads every certificate of a PEM bundle into a new store. */
static X509_STORE *
tls_ca_store(const char *pem, int *ret_count)
{
    X509_STORE *store = X509_STORE_new();
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *c;
    int n = 0;

    if (!store || !bio)
        goto out;
    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, c) == 1)
            n++;
        X509_free(c);
    }
    ERR_clear_error();
out:
    BIO_free(bio);
    *ret_count = n;
    return store;
}

/* Verifies cert (with any intermediates after it in pem) against store. */
static int
tls_verify_chain(X509_STORE *store, X509 *cert, const char *cert_pem, char *why,
                 size_t whylen)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    BIO *bio = BIO_new_mem_buf(cert_pem, -1);
    X509 *c;
    int rc = FQ_ENOMEM;

    if (!chain || !ctx || !bio)
        goto out;
    X509_free(PEM_read_bio_X509(bio, NULL, NULL, NULL)); /* skip the leaf */
    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        sk_X509_push(chain, c);
    ERR_clear_error();
    if (X509_STORE_CTX_init(ctx, store, cert, chain) != 1)
        goto out;
    if (X509_verify_cert(ctx) == 1) {
        rc = 0;
        goto out;
    }
    snprintf(why, whylen, "%s",
             X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    rc = FQ_EINVAL;
out:
    BIO_free(bio);
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

static int64_t
tls_not_after(X509 *cert)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Private keys must not be readable by group or others (as ssh insists). */
static bool
tls_key_private(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && (st.st_mode & 077) == 0;
}

static int
tls_check(const struct fq_tls_files *f, struct fq_tls_material *m, char *err,
          size_t errlen)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    X509_STORE *store = NULL;
    BIO *bio = NULL;
    char why[256];
    int n, rc = FQ_EINVAL;

    store = tls_ca_store(m->ca_pem, &n);
    if (!store || n == 0) {
        snprintf(err, errlen, "CA file '%s' holds no PEM certificate", f->ca);
        goto out;
    }
    bio = BIO_new_mem_buf(m->cert_pem, -1);
    cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (!cert) {
        snprintf(err, errlen,
                 "certificate file '%s' holds no PEM "
                 "certificate",
                 f->cert);
        goto out;
    }
    BIO_free(bio);
    bio = BIO_new_mem_buf(m->key_pem, -1);
    key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    if (!key) {
        snprintf(err, errlen,
                 "key file '%s' holds no unencrypted PEM "
                 "private key",
                 f->key);
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        snprintf(err, errlen, "key '%s' does not match certificate '%s'",
                 f->key, f->cert);
        goto out;
    }
    if (tls_verify_chain(store, cert, m->cert_pem, why, sizeof(why)) < 0) {
        snprintf(err, errlen,
                 "certificate '%s' does not verify against CA "
                 "'%s': %s",
                 f->cert, f->ca, why);
        goto out;
    }
    if (fq_identity_from_pem(m->cert_pem, strlen(m->cert_pem), &m->self, why,
                             sizeof(why)) < 0) {
        snprintf(err, errlen, "certificate '%s': %s", f->cert, why);
        goto out;
    }
    m->not_after = tls_not_after(cert);
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(bio);
    EVP_PKEY_free(key);
    X509_free(cert);
    X509_STORE_free(store);
    return rc;
}

int
fq_tls_load(const struct fq_tls_files *files, struct fq_tls_material *ret,
            char *err, size_t errlen)
{
    struct fq_tls_material m;
    int rc;

    memset(&m, 0, sizeof(m));
    if ((rc = tls_read("CA", files->ca, &m.ca_pem, err, errlen)) < 0 ||
        (rc = tls_read("certificate", files->cert, &m.cert_pem, err, errlen)) <
            0 ||
        (rc = tls_read("key", files->key, &m.key_pem, err, errlen)) < 0)
        goto fail;
    if (!tls_key_private(files->key)) {
        snprintf(err, errlen,
                 "key file '%s' is readable by group or others "
                 "(chmod 600 it)",
                 files->key);
        rc = FQ_EPERM;
        goto fail;
    }
    if ((rc = tls_check(files, &m, err, errlen)) < 0)
        goto fail;
    *ret = m;
    return 0;
fail:
    fq_tls_material_release(&m);
    return rc;
}

void
fq_tls_material_release(struct fq_tls_material *m)
{
    if (m->key_pem) {
        OPENSSL_cleanse(m->key_pem, strlen(m->key_pem));
        free(m->key_pem);
    }
    free(m->ca_pem);
    free(m->cert_pem);
    m->ca_pem = m->cert_pem = m->key_pem = NULL;
}
