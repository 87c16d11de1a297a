/*
 * Parsing and formatting of federation identities (spiffe URIs), and their
 * extraction from X.509 certificates. Parsing is strict: anything that is
 * not exactly one of the four documented forms is refused, so a certificate
 * can never be read as a different role than the one it was issued for.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "fq/identity.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define SPIFFE_PREFIX "spiffe://"

static bool
name_char(char c, bool first, bool dots)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    if (first)
        return false;
    return c == '-' || (!dots && c == '_') || (dots && c == '.');
}

static bool
token_valid(const char *s, size_t len, size_t max, bool dots)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!name_char(s[i], i == 0, dots))
            return false;
    }
    return true;
}

bool
fq_name_valid(const char *s)
{
    return token_valid(s, strlen(s), FQ_NAME_MAX, false);
}

bool
fq_federation_valid(const char *s)
{
    return token_valid(s, strlen(s), FQ_FEDERATION_MAX, true);
}

const char *
fq_role_name(enum fq_role role)
{
    switch (role) {
    case FQ_ROLE_GATEWAY:
        return "gateway";
    case FQ_ROLE_AGENT:
        return "agent";
    case FQ_ROLE_ANALYST:
        return "analyst";
    case FQ_ROLE_STEWARD:
        return "steward";
    default:
        return "none";
    }
}

/* Splits the path after the federation into at most 4 '/'-separated parts. */
static size_t
split_path(const char *p, size_t len, const char **parts, size_t *lens)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '/') {
            if (n == 4)
                return 5;
            parts[n] = p + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static bool
part_is(const char *p, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(p, word, len) == 0;
}

static int
identity_from_parts(struct fq_identity *id, const char **parts,
                    const size_t *lens, size_t n)
{
    if (n == 1 && part_is(parts[0], lens[0], "gateway")) {
        id->role = FQ_ROLE_GATEWAY;
        return 0;
    }
    if (n == 2 && part_is(parts[0], lens[0], "analyst") &&
        token_valid(parts[1], lens[1], FQ_NAME_MAX, false)) {
        id->role = FQ_ROLE_ANALYST;
        memcpy(id->name, parts[1], lens[1]);
        return 0;
    }
    if (n == 3 && part_is(parts[0], lens[0], "agency") &&
        part_is(parts[2], lens[2], "agent") &&
        token_valid(parts[1], lens[1], FQ_NAME_MAX, false)) {
        id->role = FQ_ROLE_AGENT;
        memcpy(id->agency, parts[1], lens[1]);
        return 0;
    }
    if (n == 3 && part_is(parts[0], lens[0], "steward") &&
        token_valid(parts[1], lens[1], FQ_NAME_MAX, false) &&
        token_valid(parts[2], lens[2], FQ_NAME_MAX, false)) {
        id->role = FQ_ROLE_STEWARD;
        memcpy(id->agency, parts[1], lens[1]);
        memcpy(id->name, parts[2], lens[2]);
        return 0;
    }
    return FQ_EINVAL;
}

int
fq_identity_parse(const char *uri, size_t len, struct fq_identity *ret)
{
    struct fq_identity id;
    const char *parts[5];
    size_t lens[5];
    const size_t plen = sizeof(SPIFFE_PREFIX) - 1;

    memset(&id, 0, sizeof(id));
    if (len >= sizeof(id.uri) || len <= plen ||
        memcmp(uri, SPIFFE_PREFIX, plen) != 0)
        return FQ_EINVAL;
    const char *fed = uri + plen;
    const char *slash = memchr(fed, '/', len - plen);
    if (!slash)
        return FQ_EINVAL;
    size_t flen = (size_t)(slash - fed);
    if (!token_valid(fed, flen, FQ_FEDERATION_MAX, true))
        return FQ_EINVAL;
    size_t rest = len - plen - flen - 1;
    size_t n = split_path(slash + 1, rest, parts, lens);
    if (n > 4 || identity_from_parts(&id, parts, lens, n) < 0)
        return FQ_EINVAL;
    memcpy(id.federation, fed, flen);
    memcpy(id.uri, uri, len);
    *ret = id;
    return 0;
}

int
fq_identity_format(enum fq_role role, const char *federation,
                   const char *agency, const char *name, char *out,
                   size_t outlen)
{
    int n;

    if (!fq_federation_valid(federation))
        return FQ_EINVAL;
    switch (role) {
    case FQ_ROLE_GATEWAY:
        n = snprintf(out, outlen, SPIFFE_PREFIX "%s/gateway", federation);
        break;
    case FQ_ROLE_AGENT:
        if (!agency || !fq_name_valid(agency))
            return FQ_EINVAL;
        n = snprintf(out, outlen, SPIFFE_PREFIX "%s/agency/%s/agent",
                     federation, agency);
        break;
    case FQ_ROLE_ANALYST:
        if (!name || !fq_name_valid(name))
            return FQ_EINVAL;
        n = snprintf(out, outlen, SPIFFE_PREFIX "%s/analyst/%s", federation,
                     name);
        break;
    case FQ_ROLE_STEWARD:
        if (!agency || !name || !fq_name_valid(agency) || !fq_name_valid(name))
            return FQ_EINVAL;
        n = snprintf(out, outlen, SPIFFE_PREFIX "%s/steward/%s/%s", federation,
                     agency, name);
        break;
    default:
        return FQ_EINVAL;
    }
    return n < 0 || (size_t)n >= outlen ? FQ_ETOOBIG : 0;
}

/* Finds the single URI SAN of cert; 0, or FQ_EINVAL with a reason. */
static int
cert_single_uri(X509 *cert, struct fq_identity *ret, char *err, size_t errlen)
{
    int rc = FQ_EINVAL, uris = 0;
    const unsigned char *uri = NULL;
    int urilen = 0;

    GENERAL_NAMES *sans =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_URI)
            continue;
        uris++;
        uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        urilen = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
    }
    if (uris != 1) {
        snprintf(err, errlen,
                 "certificate has %d URI SANs, expected exactly one", uris);
        goto out;
    }
    if (fq_identity_parse((const char *)uri, (size_t)urilen, ret) < 0) {
        snprintf(err, errlen,
                 "certificate URI SAN '%.*s' is not a fedq "
                 "identity",
                 urilen > 200 ? 200 : urilen, (const char *)uri);
        goto out;
    }
    rc = 0;
out:
    GENERAL_NAMES_free(sans);
    return rc;
}

int
fq_identity_from_pem(const char *pem, size_t len, struct fq_identity *ret,
                     char *err, size_t errlen)
{
    int rc = FQ_EINVAL;
    X509 *cert = NULL;

    if (len > INT_MAX) {
        snprintf(err, errlen, "certificate too large");
        return FQ_EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        snprintf(err, errlen, "out of memory");
        return FQ_ENOMEM;
    }
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!cert) {
        snprintf(err, errlen, "not a PEM certificate");
        goto out;
    }
    rc = cert_single_uri(cert, ret, err, errlen);
out:
    X509_free(cert);
    BIO_free(bio);
    return rc;
}
