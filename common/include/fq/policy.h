/*
 * Agency release policies (issue 6): one YAML document per agency listing
 * the data sharing agreements it has signed, signed with the agency's
 * Ed25519 key. Agents refuse to serve without a valid signed policy (fail
 * closed); the gateway holds the federation's copies and refuses early.
 * Both decide with fq_policy_check(), so they give the same answer.
 *
 * The signature covers the exact bytes of the policy file; it lives in a
 * file of its own (POLICY.yaml.sig next to POLICY.yaml: one line
 * "ed25519 BASE64SIG\n"), so the YAML stays readable and diffable. The policy's
 * hash (SHA-256 of the file's bytes, lowercase hex) names the version applied
 * in every answer.
 *
 *   policy:
 *     agency: dss
 *     federation: fedq.local
 *     version: 3
 *     agreements:
 *       - id: DSA-2026-014
 *         title: SNAP participation and UI wages
 *         legal_basis: ["SNAP 7 CFR 272.8", "UI 20 CFR 603"]
 *         purposes: ["program evaluation"]
 *         analysts: ["spiffe://fedq.local/analyst/alice"]  # or "*"
 *         valid_from: 2026-01-01       # inclusive, UTC
 *         valid_until: 2027-06-30      # inclusive, UTC
 *         datasets:
 *           - name: enrollment
 *             columns: [program, town, month, benefit]
 *             aggregates: [COUNT, SUM, AVG, HISTOGRAM]
 *         release:
 *           min_cell_count: 11
 *           min_cell_count_rationale: "..."
 *           # each optional, with its rationale when given:
 *           zero_cells: release          # or suppress (+ _rationale)
 *           dominance_min_units: 3       # dominance_top_percent: 80,
 *           p_percent: 0                 # dominance_rationale
 *           protection_level: 5          # protection_percent: 10,
 *                                        # protection_rationale
 *           perturbation: cell_key       # or none; rounding_base: 1, 3, 5;
 *                                        # perturbation_rationale
 *           decimals: 2                  # decimals_rationale
 *           differencing_ledger: on      # or off (+ _rationale)
 *           cell_budget: 50000           # default 10000
 *           cell_budget_rationale: "..." # required with cell_budget
 *         review: none                 # or every_query
 *         pool_with: [dol]             # agencies results may be pooled with
 */
#ifndef FQ_POLICY_H
#define FQ_POLICY_H

#include "fq/compat.h"
#include "fq/config.h"
#include "fq/config_shared.h"

#include "fedq/v1/plan.pb-c.h"

#define FQ_POLICY_MAX_BYTES (1024 * 1024) /* a policy file */
#define FQ_POLICY_SIG_MAX   128           /* its signature line, and NUL */

enum fq_policy_review {
    FQ_POLICY_REVIEW_NONE,
    FQ_POLICY_REVIEW_EVERY_QUERY,
};

struct fq_policy_dataset {
    int line;
    char *name;
    char **columns; /* every column a query may use, in any clause */
    size_t n_columns;
    char **aggregates; /* COUNT, COUNT_DISTINCT, SUM, AVG, VAR, STDDEV,
                          HISTOGRAM, QUANTILE */
    size_t n_aggregates;
};

/* Defaults of the release parameters an agreement leaves out; each is
 * explained in docs/disclosure-control.md, which stands as their
 * rationale. */
#define FQ_POLICY_CELL_BUDGET_DEFAULT       10000
#define FQ_POLICY_DOMINANCE_UNITS_DEFAULT   3 /* the "80/3" rule */
#define FQ_POLICY_DOMINANCE_PERCENT_DEFAULT 80
#define FQ_POLICY_PROTECTION_DEFAULT        5  /* counts: interval width */
#define FQ_POLICY_PROTECTION_PCT_DEFAULT    10 /* magnitudes: % of value */
#define FQ_POLICY_DECIMALS_DEFAULT          2

enum fq_policy_zero { FQ_POLICY_ZERO_RELEASE, FQ_POLICY_ZERO_SUPPRESS };
enum fq_policy_perturb { FQ_POLICY_PERTURB_CELL_KEY, FQ_POLICY_PERTURB_NONE };
enum fq_policy_ledger { FQ_POLICY_LEDGER_ON, FQ_POLICY_LEDGER_OFF };

/*
 * What an agreement lets the federation release (docs/disclosure-control.md
 * says how each is applied). Every parameter given needs its rationale;
 * one left out takes the default above, whose rationale is the documented
 * one. Where several agencies pool a cell, the strictest of their values
 * applies to it.
 */
struct fq_policy_release {
    int line;
    int64_t min_cell_count;
    char *min_cell_count_rationale; /* required */
    /* Zeros: released (default), or suppressed like small counts. */
    int zero_cells; /* enum fq_policy_zero */
    char *zero_cells_rationale;
    /* Magnitude cells (SUM, and AVG, VAR, STDDEV with it): suppressed with
     * fewer than dominance_min_units contributor units, or when the
     * largest holds dominance_top_percent % or more of the total, or (with
     * p_percent > 0) when the rest less the second largest would tell the
     * largest within p %. */
    int64_t dominance_min_units;
    int64_t dominance_top_percent;
    int64_t p_percent; /* 0: the p% rule is off */
    char *dominance_rationale;
    /* Secondary suppression: every suppressed count's feasible interval at
     * least protection_level wide, a magnitude's at least
     * protection_percent % of its value. */
    int64_t protection_level;
    int64_t protection_percent;
    char *protection_rationale;
    /* Released counts: perturbed by the cell-key method (default), or
     * exact; then randomly rounded to rounding_base (1: not rounded). */
    int perturbation; /* enum fq_policy_perturb */
    int64_t rounding_base;
    char *perturbation_rationale;
    /* The differencing ledger at the agents (on by default): a cell whose
     * difference from an earlier released one is a small cell is
     * suppressed. */
    int differencing_ledger; /* enum fq_policy_ledger */
    char *differencing_ledger_rationale;
    /* Decimal places of derived statistics (AVG, VAR, STDDEV). */
    int64_t decimals;
    char *decimals_rationale;
    /* The most distinct cells one analyst may have released from one
     * dataset of the agency per data vintage (the gateway's ledger,
     * gateway/budget.c); FQ_POLICY_CELL_BUDGET_DEFAULT when not given. */
    int64_t cell_budget;
    char *cell_budget_rationale; /* required with cell_budget, else NULL */
};

struct fq_policy_agreement {
    int line;
    char *id;
    char *title;
    char **legal_basis;
    size_t n_legal_basis;
    char **purposes;
    size_t n_purposes;
    char **analysts; /* identities (spiffe://FED/analyst/NAME), or "*" */
    size_t n_analysts;
    char *valid_from, *valid_until; /* 'YYYY-MM-DD', inclusive, UTC */
    time_t valid_from_time;         /* read-only: valid_from 00:00:00Z */
    time_t valid_until_time;        /* read-only: valid_until 23:59:59Z */
    struct fq_policy_dataset *datasets;
    size_t n_datasets;
    struct fq_policy_release release;
    int review; /* enum fq_policy_review */
    char **pool_with;
    size_t n_pool_with;
};

struct fq_policy {
    struct fq_cfg_doc doc; /* first: arena and path */
    char *agency;
    char *federation;
    int64_t version;
    struct fq_policy_agreement *agreements;
    size_t n_agreements;
    char hash[65]; /* SHA-256 of the file's bytes, hex */
    /* Set by fq_policy_load and fq_policy_verify_buf: the bytes and the
     * signature line that verified (NUL-terminated), to show to others. */
    char *bytes;
    size_t n_bytes;
    char signature[FQ_POLICY_SIG_MAX];
};

#define FQ_POLICY_SIG_SUFFIX ".sig"

/*
 * Reads the policy at path, verifies sig_path (NULL: path + ".sig"), the
 * file's signature, against the Ed25519 public key in pubkey_path (PEM),
 * then parses and checks the very bytes that verified (FILE:LINE errors).
 * *ret is the caller's (fq_policy_free). 0, or FQ_ENOENT (no policy or no
 * signature), FQ_EPERM (a signature that does not verify: another key, or
 * a changed byte), FQ_EINVAL (a bad document, with its line; a malformed
 * signature file or key), FQ_ETOOBIG, FQ_EIO; the message says which.
 */
int fq_policy_load(const char *path, const char *sig_path,
                   const char *pubkey_path, struct fq_policy **ret, char *err,
                   size_t errlen);
/*
 * The same for a policy and its signature received as bytes (from an
 * agent's Describe): data (len bytes) must verify against sig_text with
 * the key in pubkey_path; name and sig_name label the errors. *ret is the
 * caller's. 0, FQ_EPERM, FQ_EINVAL, FQ_ETOOBIG, FQ_ENOMEM or FQ_EIO.
 */
int fq_policy_verify_buf(const char *name, const char *data, size_t len,
                         const char *sig_name, const char *sig_text,
                         size_t sig_len, const char *pubkey_path,
                         struct fq_policy **ret, char *err, size_t errlen);
/* Whether path holds an Ed25519 public key in PEM (configuration checks).
 * 0, or FQ_E* with the reason in err. */
int fq_policy_pubkey_check(const char *path, char *err, size_t errlen);
/* Frees a policy; NULL is a no-op. */
void fq_policy_free(struct fq_policy *p);

/*
 * Parses and checks a policy without looking at any signature: what
 * fq_policy_load does once the signature verified, and what the fuzzer and
 * `fedq policy sign` (which refuses to sign a bad document) run. data need
 * not be NUL-terminated; name is used in "NAME:LINE: ..." errors. *ret is
 * the caller's (fq_policy_free). 0, FQ_EINVAL, FQ_ETOOBIG or FQ_ENOMEM.
 */
int fq_policy_parse_buf(const char *name, const char *data, size_t len,
                        struct fq_policy **ret, char *err, size_t errlen);
/* The same for the file at path (at most FQ_POLICY_MAX_BYTES); also
 * FQ_ENOENT, FQ_EIO. */
int fq_policy_parse(const char *path, struct fq_policy **ret, char *err,
                    size_t errlen);

/* Signs the exact bytes of path with the Ed25519 private key in key_path
 * (PEM, mode 0600) and writes sig_path (NULL: path + ".sig") atomically,
 * after checking that the policy parses (a bad one is not signed). 0 or
 * FQ_E* with the reason in err. */
int fq_policy_sign(const char *path, const char *key_path, const char *sig_path,
                   char *err, size_t errlen);

/* What a query asks of one agency's policy. */
struct fq_policy_request {
    const char *agreement;          /* agreement id */
    const char *purpose;            /* as the analyst states it */
    const char *analyst;            /* identity URI */
    const Fedq__V1__Plan *plan;     /* dataset, columns and aggregates used */
    const char *const *pooled_with; /* the agencies of the query (this
                                       agency's own name is ignored) */
    size_t n_pooled_with;
    time_t now;
};

/*
 * Whether p covers r. 0 with *ret_agreement set, or FQ_EPERM
 * (PERMISSION_DENIED) naming the missing term ("agreement DSA-1 of dss
 * does not list column 'town' of enrollment"), FQ_EPRECOND
 * (FAILED_PRECONDITION) for an agreement outside its validity dates
 * ("agreement DSA-1 of dss expired on 2026-06-30"), with the message in
 * err.
 */
int fq_policy_check(const struct fq_policy *p,
                    const struct fq_policy_request *r,
                    const struct fq_policy_agreement **ret_agreement, char *err,
                    size_t errlen);

/* The directive table (for the reference docs and fuzzing). */
extern const struct fq_cfg_directive fq_policy_table[];

#endif
