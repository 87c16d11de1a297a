/*
 * Loading and checking of a party's TLS material (CA bundle, certificate,
 * private key) before it is handed to gRPC. gRPC reports bad PEM only in its
 * own log, late; checking here lets every program fail at start with a
 * message that names the file and the problem.
 */
#ifndef FQ_TLS_H
#define FQ_TLS_H

#include "fq/compat.h"
#include "fq/identity.h"

#define FQ_TLS_FILE_MAX (256 * 1024)

struct fq_tls_files {
    const char *ca;   /* PEM bundle of the federation CA */
    const char *cert; /* PEM certificate (chain) of this party */
    const char *key;  /* PEM private key of this party */
};

struct fq_tls_material {
    char *ca_pem;            /* NUL-terminated; owned, freed by release */
    char *cert_pem;          /* NUL-terminated; owned */
    char *key_pem;           /* NUL-terminated; owned, wiped on release */
    struct fq_identity self; /* from the certificate's URI SAN */
    int64_t not_after;       /* certificate expiry, unix seconds */
};

/*
 * Reads and checks the three files: each parses, the key matches the
 * certificate, the certificate chains to the CA and is currently valid, and
 * it carries exactly one fedq identity. 0, or a negative FQ_E* code with a
 * message naming the file in err; ret is written only on success and
 * released with fq_tls_material_release.
 */
int fq_tls_load(const struct fq_tls_files *files, struct fq_tls_material *ret,
                char *err, size_t errlen);
void fq_tls_material_release(struct fq_tls_material *m);

#endif
