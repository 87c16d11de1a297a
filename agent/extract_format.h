/*
 * The on-disk layout of an extract file, version 2, shared by the reader
 * (extract.c) and the writer (extract_build.c). docs/extract-format.md
 * describes it byte by byte; the two must change together, with
 * AG_EXTRACT_VERSION.
 *
 * Every integer is little-endian. The file is a fixed header, a directory
 * of fixed-size column entries, then the sections (column values, null
 * bitmaps, dictionary offsets and bytes), each starting at a multiple of 64
 * bytes so that the mapped arrays are aligned for vector loads.
 */
#ifndef AG_EXTRACT_FORMAT_H
#define AG_EXTRACT_FORMAT_H

#include "fq/compat.h"

#include "extract.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "extracts are mapped as little-endian arrays"
#endif

#define AGX_ALIGN       64
#define AGX_HEADER_SIZE 128
#define AGX_ENTRY_SIZE  160
#define AGX_NAME_MAX    64 /* column name field, NUL-padded */
/* Rows are indexed with 32-bit row numbers while building. */
#define AGX_MAX_ROWS ((uint64_t)UINT32_MAX)

/* Header fields: byte offsets. 96..127 are zero. */
enum {
    AGX_H_MAGIC = 0,        /* 8 bytes, AG_EXTRACT_MAGIC without NUL */
    AGX_H_VERSION = 8,      /* u32 */
    AGX_H_N_COLS = 12,      /* u32 */
    AGX_H_N_ROWS = 16,      /* u64 */
    AGX_H_CONTRIBUTOR = 24, /* i32: column index, or -1 */
    AGX_H_FLAGS = 28,       /* u32: 0 */
    AGX_H_SCHEMA = 32,      /* u64: ag_extract_schema_hash */
    AGX_H_FILE_SIZE = 40,   /* u64: the whole file */
    AGX_H_VINTAGE = 48,     /* AG_VINTAGE_MAX bytes, NUL-padded */
    AGX_H_RUNS = 88,        /* u64 offset of the contributor run bitmap, or
                               0: no contributor */
    AGX_H_END = 96,
};
_Static_assert(AGX_H_VINTAGE + AG_VINTAGE_MAX <= AGX_H_RUNS,
               "the vintage ends before the run bitmap's offset");

/* Column directory entry fields: byte offsets. 136..159 are zero. */
enum {
    AGX_C_NAME = 0,             /* AGX_NAME_MAX bytes, NUL-padded */
    AGX_C_KIND = 64,            /* u8: enum ag_col_kind */
    AGX_C_WIDTH = 65,           /* u8: 1, 2, 4 or 8 */
    AGX_C_TYPE = 66,            /* u8: enum ag_type */
    AGX_C_ROLE = 67,            /* u8: enum ag_role */
    AGX_C_DICT_SIZE = 68,       /* u32 */
    AGX_C_BASE = 72,            /* i64 */
    AGX_C_MIN = 80,             /* i64 */
    AGX_C_MAX = 88,             /* i64 */
    AGX_C_DATA = 96,            /* u64 offset: n_rows * width bytes */
    AGX_C_NULLS = 104,          /* u64 offset, or 0: no NULL */
    AGX_C_DICT_OFFSETS = 112,   /* u64 offset, or 0: not a dictionary */
    AGX_C_DICT_BYTES = 120,     /* u64 offset */
    AGX_C_DICT_BYTES_LEN = 128, /* u64 */
    AGX_C_END = 136,
};

static inline uint32_t
agx_get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t
agx_get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void
agx_put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline void
agx_put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* Bytes of a null (or run) bitmap over n rows: whole 64-bit words. */
static inline uint64_t
agx_nulls_len(uint64_t n_rows)
{
    return (n_rows + 63) / 64 * 8;
}

/* The index of d's contributor column, or -1 if it has none (or names a
 * column it does not have). */
int ag__extract_contributor(const struct ag_dataset_conf *d);

#endif
