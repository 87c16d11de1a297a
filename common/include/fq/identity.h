/*
 * Federation identities. Every party holds a certificate with exactly one
 * URI SAN naming it; identity is taken from that URI, never from the TLS
 * library's default (which falls back to the CN):
 *
 *   spiffe://<federation>/gateway
 *   spiffe://<federation>/agency/<agency>/agent
 *   spiffe://<federation>/analyst/<name>
 *   spiffe://<federation>/steward/<agency>/<name>
 *
 * Names are [a-z0-9][a-z0-9_-]{0,31}; federations [a-z0-9][a-z0-9.-]{0,62}.
 */
#ifndef FQ_IDENTITY_H
#define FQ_IDENTITY_H

#include "fq/compat.h"

enum fq_role {
    FQ_ROLE_NONE = 0,
    FQ_ROLE_GATEWAY = 1u << 0,
    FQ_ROLE_AGENT = 1u << 1,
    FQ_ROLE_ANALYST = 1u << 2,
    FQ_ROLE_STEWARD = 1u << 3,
};
#define FQ_ROLE_ANY \
    (FQ_ROLE_GATEWAY | FQ_ROLE_AGENT | FQ_ROLE_ANALYST | FQ_ROLE_STEWARD)

#define FQ_NAME_MAX       32
#define FQ_FEDERATION_MAX 63
#define FQ_IDENTITY_MAX   256

struct fq_identity {
    enum fq_role role;
    char uri[FQ_IDENTITY_MAX];
    char federation[FQ_FEDERATION_MAX + 1];
    char agency[FQ_NAME_MAX + 1]; /* agent and steward */
    char name[FQ_NAME_MAX + 1];   /* analyst and steward */
};

/* True if s is a valid agency, analyst or steward name. */
bool fq_name_valid(const char *s);
bool fq_federation_valid(const char *s);
const char *fq_role_name(enum fq_role role);

/*
 * Parses a spiffe URI of len bytes (not necessarily NUL-terminated) into
 * ret. 0, or FQ_EINVAL if it is not one of the four forms above; ret is
 * written only on success.
 */
int fq_identity_parse(const char *uri, size_t len, struct fq_identity *ret);

/* Writes the URI of a role into out; 0 or FQ_EINVAL / FQ_ETOOBIG. */
int fq_identity_format(enum fq_role role, const char *federation,
                       const char *agency, const char *name, char *out,
                       size_t outlen);

/*
 * Reads the identity from a PEM certificate: it must carry exactly one URI
 * SAN, in one of the forms above. 0 or FQ_EINVAL with a reason in err.
 */
int fq_identity_from_pem(const char *pem, size_t len, struct fq_identity *ret,
                         char *err, size_t errlen);

#endif
