/*
 * The agency's own veto on a release (release_veto.h).
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "release_veto.h"

#include <stdio.h>
#include <string.h>

/* Cell i's pooled persons and this agency's part as stated, checked
 * against its own count. */
static int
pooled_of(const struct ag_veto_rules *r, const struct ag_veto_cell *c, size_t i,
          int64_t *ret, char *err, size_t errlen)
{
    int64_t pooled = 0, stated = 0;

    for (size_t j = 0; j < c->n_parts; j++) {
        int64_t p = c->parts[j].persons;
        if (p < 0 || p > INT64_MAX - pooled) {
            snprintf(err, errlen, "cell %zu: a part of %lld persons", i,
                     (long long)p);
            return FQ_EINVAL;
        }
        pooled += p;
        if (strcmp(c->parts[j].agency, r->agency) == 0)
            stated += p;
    }
    if (stated != c->own) {
        snprintf(err, errlen,
                 "cell %zu: the gateway states %lld persons of agency %s, "
                 "its records hold %lld",
                 i, (long long)stated, r->agency, (long long)c->own);
        return FQ_EINVAL;
    }
    *ret = pooled;
    return 0;
}

static bool
small(int64_t n, int64_t k)
{
    return n > 0 && n < k;
}

int
ag_release_veto(const struct ag_veto_rules *r, const struct ag_veto_cell *cells,
                size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct ag_veto_cell *c = &cells[i];
        int64_t pooled;
        int rc;

        if ((rc = pooled_of(r, c, i, &pooled, err, errlen)) < 0)
            return rc;
        if (small(pooled, r->k) || (pooled == 0 && r->suppress_zero)) {
            snprintf(err, errlen,
                     "cell %zu: %lld contributors, and agency %s's policy "
                     "releases %s",
                     i, (long long)pooled, r->agency,
                     pooled ? "no cell of fewer than its min_cell_count"
                            : "no zero");
            return FQ_EPERM;
        }
        for (size_t j = 0; j < c->n_parts; j++) {
            int64_t rest = pooled - c->parts[j].persons;
            if (small(rest, r->k)) {
                snprintf(err, errlen,
                         "cell %zu: %lld contributors besides agency %s's, "
                         "which agency %s's policy does not release",
                         i, (long long)rest, c->parts[j].agency, r->agency);
                return FQ_EPERM;
            }
        }
    }
    return 0;
}
