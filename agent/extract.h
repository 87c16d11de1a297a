/*
 * Columnar extracts: a dataset copied once from its source (SQLite, CSV or
 * PostgreSQL) into narrow fixed-width columns, in one versioned file that
 * the agent maps read-only at start, with no parsing (docs/extract-format.md).
 *
 *   source ── ag_row_source ──► ag_extract_build() ──► FILE.fqx
 *   FILE.fqx ── ag_extract_open() (mmap) ──► struct ag_extract ──► engine.c
 *
 * Encodings, chosen per column at build time:
 *   INTEGER           AG_COL_INT: value = base + stored unsigned offset, in
 *                     the narrowest width (1, 2, 4 or 8 bytes) that fits
 *                     max - min.
 *   DECIMAL           AG_COL_DOUBLE: 8-byte IEEE doubles.
 *   TEXT, DATE, MONTH, QUARTER, and identifiers
 *                     AG_COL_DICT: codes (1, 2 or 4 bytes) into a
 *                     dictionary sorted by byte order (memcmp, like SQLite's
 *                     BINARY collation), so code order is value order and a
 *                     range filter on text is a range on codes.
 *   NULL              a bitmap per column (bit set = NULL), absent when the
 *                     column has no NULL; the stored value of a NULL row is 0.
 *
 * When the dataset declares a contributor, rows are sorted by its code, so
 * that the rows of one person are adjacent: distinct persons per group are
 * counted in one pass, and threads split the rows at person boundaries.
 * A bitmap marks where each person's run of rows starts, so that counting
 * persons reads 1 bit a row rather than the person's code (a group counts
 * a person when the run number of its rows changes).
 */
#ifndef AG_EXTRACT_H
#define AG_EXTRACT_H

#include "fq/compat.h"

#include <stdatomic.h>

#include "agent.h"

#define AG_EXTRACT_MAGIC   "FQXTRACT"
#define AG_EXTRACT_VERSION 2
#define AG_VINTAGE_MAX     40 /* "2026-11-25T01:40:00Z" and room */

enum ag_col_kind {
    AG_COL_INT,
    AG_COL_DOUBLE,
    AG_COL_DICT,
};

/* One column of a mapped extract; pointers into the mapping. */
struct ag_xcol {
    const char *name; /* the configured column name */
    int type;         /* enum ag_type */
    int role;         /* enum ag_role */
    enum ag_col_kind kind;
    uint8_t width;    /* bytes per stored value: 1, 2, 4 or 8 */
    int64_t base;     /* AG_COL_INT: value = base + stored */
    int64_t min, max; /* AG_COL_INT: of the non-NULL values (0, -1 if none) */
    const void *data; /* n_rows stored values, 64-byte aligned */
    const uint64_t *nulls; /* bit r of word r/64 set: row r is NULL; or NULL */
    uint32_t dict_size;    /* AG_COL_DICT: entries, codes 0..dict_size-1 */
    const uint64_t *dict_offsets; /* dict_size + 1 offsets into dict_bytes */
    const char *dict_bytes;       /* entries, each NUL-terminated */
};

/* A mapped extract. Immutable; shared by queries through refs, so that a
 * refresh can swap in a new one while old queries finish on the old. */
struct ag_extract {
    atomic_int refs;
    char *path; /* the file (malloc'd), or NULL if in memory */
    void *map;  /* the mapping, or NULL */
    size_t map_len;
    uint64_t n_rows;
    size_t n_cols;
    struct ag_xcol *cols; /* malloc'd, in the dataset's column order */
    int contributor;      /* column index of the contributor, or -1 */
    /* With a contributor: bit r of word r/64 set where row r starts a run
     * of rows of one non-NULL contributor (ag_xcol_run_word); bits past the
     * rows are 0. NULL without a contributor. */
    const uint64_t *contributor_runs;
    char vintage[AG_VINTAGE_MAX]; /* when the data was taken, UTC ISO 8601 */
    uint64_t schema_hash;         /* of the column names, roles and types */
    /* Person tags (cellkey.h), made by the first query that needs them
     * (ag_extract_person_tags); malloc'd, freed with the extract. */
    _Atomic(uint64_t *) person_tags;
};

/* The i-th stored value of an AG_COL_INT or AG_COL_DICT column. */
static inline uint64_t
ag_xcol_stored(const struct ag_xcol *c, uint64_t r)
{
    switch (c->width) {
    case 1:
        return ((const uint8_t *)c->data)[r];
    case 2:
        return ((const uint16_t *)c->data)[r];
    case 4:
        return ((const uint32_t *)c->data)[r];
    default:
        return ((const uint64_t *)c->data)[r];
    }
}

static inline bool
ag_xcol_is_null(const struct ag_xcol *c, uint64_t r)
{
    return c->nulls && (c->nulls[r >> 6] >> (r & 63) & 1);
}

/* Dictionary entry code of an AG_COL_DICT column. */
static inline const char *
ag_xcol_text(const struct ag_xcol *c, uint32_t code)
{
    return c->dict_bytes + c->dict_offsets[code];
}

/*
 * Word w of the run bitmap that column c's first n rows imply: bit j set
 * where row r = 64w + j < n is not NULL and r is 0, or row r - 1 is NULL or
 * stores another value. NULL rows never start a run: they belong to no
 * contributor (and come first, as rows are sorted NULL first).
 */
uint64_t ag_xcol_run_word(const struct ag_xcol *c, uint64_t n, uint64_t w);

/*
 * Maps the extract at path and checks it against the dataset's
 * configuration (same columns, roles and types: schema_hash), the magic,
 * version, sizes and offsets (every section inside the file, aligned;
 * dictionaries sorted; the contributor run bitmap what the codes imply). *ret
 * has one reference. 0, or FQ_ENOENT (no file), FQ_EPROTO (not an extract,
 * another version, corrupt: the message says which), FQ_EPRECOND (built for
 * other columns), FQ_EIO.
 */
int ag_extract_open(const char *path, const struct ag_dataset_conf *d,
                    struct ag_extract **ret, char *err, size_t errlen);
void ag_extract_ref(struct ag_extract *x);
/* Drops a reference; the last one unmaps and frees. NULL is a no-op. */
void ag_extract_unref(struct ag_extract *x);

struct ag_cell_secret;
/* Whether person tags are per row (an integer contributor, keyed by its
 * value; no contributor, keyed by the row's position) rather than per
 * code of a dictionary contributor. */
bool ag_extract_keys_by_row(const struct ag_extract *x);
/*
 * The person tag (record key: its first 32 bits) of every contributor
 * code, or of every row (see above; a row's position is 1-based, as text:
 * for an extract built from SQLite, the rowid of the same record when the
 * table's rowids are dense; a NULL contributor's row gets a tag never
 * used). Computed once per extract, shared by the queries; the agent has
 * one secret. NULL when out of memory or without a secret (keys are then
 * 0).
 */
const uint64_t *ag_extract_person_tags(const struct ag_extract *x,
                                       const struct ag_cell_secret *secret);

/* The schema hash a dataset configuration gives its extracts. */
uint64_t ag_extract_schema_hash(const struct ag_dataset_conf *d);

/* ---- building ---------------------------------------------------------- */

/* One field of a source row. */
struct ag_value {
    enum { AG_V_NULL, AG_V_INT, AG_V_REAL, AG_V_TEXT } kind;
    int64_t i;
    double d;
    const char *s; /* AG_V_TEXT: len bytes, valid until the next row */
    size_t len;
};

/*
 * A source of rows, each with one value per configured column of the
 * dataset, in configuration order. next() returns 1 with vals filled, 0 at
 * the end, or a negative FQ_E* with a message naming the row and column.
 */
struct ag_row_source {
    void *self;
    int (*next)(void *self, struct ag_value *vals, char *err, size_t errlen);
    void (*close)(void *self);
};

/*
 * Reads every row of src and writes the extract for dataset d to path,
 * atomically (a temporary file, fsync, rename): a reader sees the old file
 * or the new one. Values are checked against the column types (an INTEGER
 * column takes integers, a DECIMAL column numbers, text columns text;
 * anything else fails naming the row and column). vintage is recorded as
 * the data's time. 0 or FQ_E* with a message.
 */
int ag_extract_build(const struct ag_dataset_conf *d, struct ag_row_source *src,
                     const char *vintage, const char *path, char *err,
                     size_t errlen);

/* Row sources. Each opens d's source and yields its configured columns;
 * close() frees. 0 or FQ_E* with a message naming the source. */
int ag_source_sqlite_open(const struct ag_dataset_conf *d,
                          struct ag_row_source *ret, char *err, size_t errlen);
int ag_source_csv_open(const struct ag_dataset_conf *d,
                       struct ag_row_source *ret, char *err, size_t errlen);
int ag_source_pg_open(const struct ag_dataset_conf *d,
                      struct ag_row_source *ret, char *err, size_t errlen);

/*
 * The CSV reader on a buffer (what ag_source_csv_open uses, and the fuzz
 * target): RFC 4180 fields (quotes, doubled quotes, CR LF or LF), a header
 * row naming columns, which are matched to d's columns by name. An empty
 * unquoted field is NULL. Limits: 1 MiB per row, 4096 fields.
 */
int ag_source_csv_buffer(const struct ag_dataset_conf *d, const char *buf,
                         size_t len, char delimiter, struct ag_row_source *ret,
                         char *err, size_t errlen);

#endif
