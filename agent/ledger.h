/*
 * The differencing ledger (docs/disclosure-control.md, "Differencing"):
 * the contributor sets of the cells released from this agency's datasets,
 * kept per dataset, data vintage and class of statistic, so that a new
 * cell whose difference from an earlier one (A less B, or B less A) would
 * be a small cell is found before it is released, for any analyst.
 *
 * A cell's members are its records, each with its person: the difference
 * of two cells is a set of records, and it is small when the persons
 * holding them are fewer than k (two cells of the same persons but other
 * records differ by records, which a person-level ledger would miss).
 * Classes keep statistics apart whose differences mean something: the
 * records (COUNT(*), HISTOGRAM bins, and COUNT(DISTINCT), whose
 * difference in persons is the same) and the values of each measure (SUM,
 * AVG, VAR, STDDEV of it). QUANTILE implies no difference cell and is not
 * recorded.
 *
 * The structure is exact: each cell's members sorted by (person tag,
 * record), persons keyed by the agency's secret (64 bits of the HMAC that
 * also gives record keys), and the differences counted by merging. A
 * pair is near only when both differences are below k, so two
 * prefilters prove most pairs far without merging: persons counts k or
 * more apart, and k sentinel persons of one side (the k smallest tags: a
 * random sample, as tags are keyed hashes) all missing from the other.
 * Cost: 16 bytes per recorded member in memory (and on disk), O(1) per
 * pair for the first prefilter, O(k log n) for the second, O(|A| + |B|)
 * per pair that passes both (tests/bench measures it).
 *
 * One SQLite file, state_dir/ledger-AGENCY.sqlite (0600), written
 * synchronously before the gateway releases: a restart loses nothing
 * released. Each scope is loaded into memory at its first use.
 */
#ifndef AG_LEDGER_H
#define AG_LEDGER_H

#include "fq/compat.h"

struct fq_arena;
struct ag_ledger;

#define AG_LEDGER_SENTINELS 64 /* persons kept per cell for the prefilter */
#define AG_LEDGER_AGENCY    64 /* bytes of an agency id, with NUL */
#define AG_LEDGER_VINTAGE   48 /* bytes of a data vintage, with NUL */
#define AG_LEDGER_REF       96 /* bytes of a cell's id, with NUL */
#define AG_LEDGER_PARTS     64 /* agencies a pooled cell may span */

/* One record of a cell, and the person it belongs to. */
struct ag_member {
    uint64_t person; /* the person's tag (keyed): equal tags, one person */
    uint64_t record; /* the record (extract row, SQLite rowid, ctid) */
};

/* One cell's members at this agency: sorted by (person, record), no
 * duplicates; persons counts the distinct persons. */
struct ag_cellset {
    struct ag_member *m;
    size_t n;
    int64_t persons;
};

/* Appends m to c->m (malloc'd, *cap entries, grown as needed; the
 * caller frees c->m). 0 or FQ_ENOMEM. */
int ag_cellset_push(struct ag_cellset *c, size_t *cap, struct ag_member m);

/* Sorts a cellset and removes duplicates; sets persons. */
void ag_cellset_finish(struct ag_cellset *c);

#define AG_LEDGER_VALUE_MAX 256 /* bytes of a published value */

/* A released cell's published value, opaque to the ledger: recorded with
 * the cell and returned with the pairs it is in. */
struct ag_ledger_value {
    const uint8_t *b;
    size_t len;
};

/* An agency's part of a released cell, as the gateway recorded it. */
struct ag_ledger_part {
    char agency[AG_LEDGER_AGENCY];
    int64_t persons; /* its contributors to the cell */
    char vintage[AG_LEDGER_VINTAGE];
};

/*
 * A pair of cells whose difference the gateway must weigh: candidate
 * cell against an earlier released cell (released names it) or another
 * candidate (released NULL, other its index). only_here: this agency's
 * persons with records in the candidate but not in the other; only_there:
 * the reverse. Reported when both are below k (0 too: the gateway adds
 * the agencies' parts); a pair one of whose differences holds k or more
 * implies no small cell from the two values.
 */
struct ag_ledger_pair {
    size_t cell;
    const char *released;
    size_t other;
    int64_t only_here, only_there;
    const struct ag_ledger_part *parts; /* released: its parts */
    size_t n_parts;
    const uint8_t *value; /* released: its published value, as recorded */
    size_t value_len;
};

/* A scope: one dataset's one data vintage. */
struct ag_ledger_scope {
    const char *dataset;
    const char *vintage;
};

/*
 * Opens (creating) dir/ledger-agency.sqlite; max_bytes caps the members
 * held in memory (more: queries are refused, FQ_ETOOBIG). *ret is the
 * caller's (ag_ledger_close). 0, or FQ_E* with err.
 */
int ag_ledger_open(const char *dir, const char *agency, size_t max_bytes,
                   struct ag_ledger **ret, char *err, size_t errlen);
void ag_ledger_close(struct ag_ledger *l);

/*
 * The pairs of candidates cells[0..n) (classes[i] their classes, groups[i]
 * their groups: cells of different groups share no record and are never
 * paired) against the scope's recorded cells of the same class and each
 * other, where both differences at this agency hold fewer than k persons
 * (single: this agency alone answers, so equal cells do not matter).
 * Pairs in a. 0, FQ_ETOOBIG (the ledger's memory is full), FQ_EIO or
 * FQ_ENOMEM with err.
 */
int ag_ledger_check(struct ag_ledger *l, const struct ag_ledger_scope *scope,
                    const char *const *classes, const size_t *groups,
                    const struct ag_cellset *cells, size_t n, int64_t k,
                    bool single, struct fq_arena *a,
                    struct ag_ledger_pair **ret, size_t *ret_n, char *err,
                    size_t errlen);

/*
 * Records cells[0..n) as released: refs[i] its id (unique in the scope; a
 * cell recorded twice keeps its first record), parts[i] (n_parts[i]) the
 * pooled agencies' parts, values[i] its published value (values may be
 * NULL: none; each at most AG_LEDGER_VALUE_MAX bytes). Durable
 * (synchronous) before it returns. 0, or FQ_ETOOBIG / FQ_EIO / FQ_ENOMEM
 * with err.
 */
int ag_ledger_record(struct ag_ledger *l, const struct ag_ledger_scope *scope,
                     const char *const *classes, const struct ag_cellset *cells,
                     const char *const *refs,
                     const struct ag_ledger_part *const *parts,
                     const size_t *n_parts,
                     const struct ag_ledger_value *values, size_t n, char *err,
                     size_t errlen);

/* Cells and members recorded in the scope (for stewards and tests). */
void ag_ledger_stats(struct ag_ledger *l, const struct ag_ledger_scope *scope,
                     size_t *ret_cells, size_t *ret_members);

#endif
