/*
 * Steward review (issue 6): queries whose agreement says `review:
 * every_query` are held at the agent until a steward of the agency
 * approves or denies them. The agent runs a held query when it arrives and
 * keeps the answer; the steward sees what would be released and decides;
 * the same query id asked again gets PENDING, the denial, or the answer.
 *
 * The store is one SQLite file per agency (DIR/reviews-AGENCY.sqlite, mode
 * 0600, DIR mode 0700), every change committed synchronously, so pending
 * and decided reviews survive restarts. Calls come from several RPC
 * threads: one mutex serializes them.
 */
#ifndef AG_REVIEW_H
#define AG_REVIEW_H

#include "fq/compat.h"

#include "fedq/v1/agent.pb-c.h"

struct fq_arena;
struct ag_config;

#define AG_REVIEW_MAX_PENDING 1000 /* more held queries: RESOURCE_EXHAUSTED */
#define AG_REVIEW_ID_MAX      64   /* query ids: [a-z0-9-]{1,64} */
#define AG_REVIEW_REASON_MAX  1000 /* bytes of a steward's reason */
#define AG_REVIEW_LIST_MAX    1000 /* reviews one ListReviews returns */
#define AG_REVIEW_LIST_DEF    100  /* ... when it asks for 0 */
#define AG_REVIEW_DIGEST_LEN  32   /* SHA-256 */

struct ag_review_store;

/* One held query as stored; everything in the arena given. */
struct ag_review_entry {
    Fedq__V1__Review *review;          /* the request and the decision */
    Fedq__V1__ExecuteResponse *answer; /* groups and data_vintage */
    uint8_t digest[AG_REVIEW_DIGEST_LEN];
    uint32_t min_cell_count; /* the agreement's, when it was held */
};

/* The review directory of cfg (malloc'd; the caller frees): review_dir,
 * or ../state/AGENCY from the configuration file's directory. NULL when
 * out of memory. */
char *ag_review_dir(const struct ag_config *cfg);

/*
 * Opens (creating) the store of agency in dir (created with mode 0700 if
 * missing, and set to 0700), holding at most max_pending pending reviews.
 * 0 or FQ_E* with the reason in err. Close with ag_review_close.
 */
int ag_review_open(const char *dir, const char *agency, size_t max_pending,
                   struct ag_review_store **ret, char *err, size_t errlen);
void ag_review_close(struct ag_review_store *s);

/* True if id is 1 to AG_REVIEW_ID_MAX of [a-z0-9-]. */
bool ag_review_id_valid(const char *id);

/*
 * The digest a held query is known by: SHA-256 over the packed plan, the
 * analyst, agreement and purpose and the sorted pooled_with, each length-
 * prefixed, so a later request under the same id must be the same query.
 * 0 or FQ_ENOMEM / FQ_EINTERNAL.
 */
int ag_review_digest(const Fedq__V1__ExecuteRequest *req,
                     uint8_t out[AG_REVIEW_DIGEST_LEN]);

/*
 * The review of query id into *ret (in arena). 0, FQ_ENOENT ("agency
 * AGENCY holds no query ID for review") or FQ_EIO / FQ_ENOMEM, with the
 * message in err.
 */
int ag_review_get(struct ag_review_store *s, const char *id,
                  struct fq_arena *arena, struct ag_review_entry *ret,
                  char *err, size_t errlen);

/*
 * Holds req (its query_id already checked with ag_review_id_valid) as
 * PENDING with its digest, its answer (groups and data_vintage are kept),
 * the agreement's min_cell_count and the hash of the policy it was checked
 * against, received at now. 0; FQ_EAGAIN if the id is held already (read
 * it with ag_review_get); FQ_ETOOBIG when max_pending reviews are pending;
 * FQ_EIO / FQ_ENOMEM; the message in err.
 */
int ag_review_hold(struct ag_review_store *s,
                   const Fedq__V1__ExecuteRequest *req,
                   const uint8_t digest[AG_REVIEW_DIGEST_LEN],
                   const Fedq__V1__ExecuteResponse *answer,
                   uint32_t min_cell_count, const char *policy_hash, time_t now,
                   char *err, size_t errlen);

/*
 * The reviews in state (REVIEW_STATE_UNSPECIFIED: all), newest first, at
 * most limit (0: AG_REVIEW_LIST_DEF; capped at AG_REVIEW_LIST_MAX), into
 * an array in arena. 0 or FQ_E* with the message in err.
 */
int ag_review_list(struct ag_review_store *s, Fedq__V1__ReviewState state,
                   size_t limit, struct fq_arena *arena,
                   Fedq__V1__Review ***ret, size_t *ret_n, char *err,
                   size_t errlen);

/* True if reason is fit to record: at most AG_REVIEW_REASON_MAX bytes, no
 * control characters (UTF-8 is fine); a denial also needs one byte. */
bool ag_review_reason_valid(const char *reason, bool required);

/*
 * Decides the pending review of id: approve, or deny with reason (checked
 * by the caller), by the steward whose identity URI is who, at now. *ret
 * (in arena) is the decided review. 0; FQ_ENOENT as ag_review_get;
 * FQ_EPRECOND when it was decided already ("query ID was already approved
 * by WHO at WHEN"); FQ_EIO / FQ_ENOMEM; the message in err.
 */
int ag_review_decide(struct ag_review_store *s, const char *id, bool approve,
                     const char *reason, const char *who, time_t now,
                     struct fq_arena *arena, Fedq__V1__Review **ret, char *err,
                     size_t errlen);

/* "2026-11-25T04:30:00Z" for t into buf (at least 21 bytes). */
void ag_review_time(time_t t, char *buf, size_t len);

/*
 * What the agency would release of answer to plan: the columns (group-by
 * columns, then each aggregate's, a HISTOGRAM's one per bin, named as the
 * gateway names them) and one row per group rendered as text, after the
 * minimum cell count k: every aggregate of a group with fewer than k
 * contributors, and a HISTOGRAM bin with 1 to k-1, read "suppressed". ds
 * (the dataset's catalog entry, NULL if it is gone) types the decimals
 * and the QUANTILE sketches. Fills resp's columns, rows and
 * min_cell_count from arena. 0 or FQ_ENOMEM.
 */
int ag_review_preview(const Fedq__V1__Plan *plan,
                      const Fedq__V1__ExecuteResponse *answer,
                      const Fedq__V1__Dataset *ds, uint32_t k,
                      struct fq_arena *arena,
                      Fedq__V1__GetReviewResponse *resp);

#endif
