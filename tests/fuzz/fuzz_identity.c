/*
 * Fuzz target for identity parsing: the URI SAN parser and the PEM
 * certificate reader, both fed by peers' certificates. Beyond not
 * crashing, every accepted URI must format back to exactly itself, so a
 * certificate can never be read as a different party than it names.
 */
#include "fq/compat.h"
#include "fq/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fq_identity id;
    char out[FQ_IDENTITY_MAX], err[256];

    if (fq_identity_parse((const char *)data, size, &id) == 0) {
        if (fq_identity_format(id.role, id.federation, id.agency, id.name, out,
                               sizeof(out)) != 0 ||
            strlen(out) != size || memcmp(out, data, size) != 0)
            abort();
    }
    if (fq_identity_from_pem((const char *)data, size, &id, err, sizeof(err)) ==
            0 &&
        fq_identity_parse(id.uri, strlen(id.uri), &id) != 0)
        abort();
    return 0;
}
