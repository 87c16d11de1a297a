/*
 * Configuration loading: YAML (libyaml) mapped onto C structs through one
 * declarative table of directives per struct, with types, bounds, defaults
 * and a line of documentation each (after nginx ngx_command_t and Redis
 * static_configs[]).
 *
 * Rules every table gets for free:
 *  - unknown keys, duplicate keys, wrong types and out-of-bound values are
 *    errors; missing FQ_CFG_REQUIRED keys are errors;
 *  - errors read "FILE:LINE: what is wrong" (LINE is 1-based);
 *  - defaults are applied for absent keys that have one;
 *  - the input is capped (FQ_CFG_MAX_BYTES, nesting depth, item counts).
 *
 * Memory: every string, list and nested struct is allocated from the arena
 * the caller passes; free the arena to free the config. Nothing is written
 * to ret_obj's pointees outside the arena.
 */
#ifndef FQ_CONFIG_H
#define FQ_CONFIG_H

#include "fq/compat.h"

struct fq_arena;

#define FQ_CFG_MAX_BYTES  (1024 * 1024)
#define FQ_CFG_MAX_DEPTH  16
#define FQ_CFG_STRING_MAX 4096 /* default cap on a string's length */

enum fq_cfg_type {
    FQ_CFG_END = 0,  /* terminates a table (key == NULL) */
    FQ_CFG_STRING,   /* char *; min/max bound the length (max 0: default) */
    FQ_CFG_PATH,     /* char *; relative paths resolved against the file */
    FQ_CFG_INT,      /* int64_t within [min, max] */
    FQ_CFG_BOOL,     /* bool; true/false only */
    FQ_CFG_ENUM,     /* int: index into names[] */
    FQ_CFG_DURATION, /* int64_t ms; "250ms", "5s", "2m", "1h" or bare ms */
    FQ_CFG_SIZE,     /* int64_t bytes; "512", "64KiB", "4MiB", "1GiB" */
    FQ_CFG_STRLIST,  /* char **; count (size_t) at count_offset; max items */
    FQ_CFG_SECTION,  /* nested mapping into an embedded struct via sub */
    FQ_CFG_LIST,     /* sequence of mappings: arena array of elem_size
                        structs mapped via sub; count at count_offset */
    FQ_CFG_LINE,     /* not a key: stores the mapping's source line (int) */
    FQ_CFG_INLINE,   /* not a key: sub's keys belong to this mapping and map
                        into the struct embedded at offset (shared tables) */
    FQ_CFG_DOUBLE,   /* double within [dmin, dmax]; finite only */
};

#define FQ_CFG_REQUIRED 0x1u
/* The default is a sentinel meaning "not given" (checked by a hook), not a
 * value a user would write; the reference leaves it out. */
#define FQ_CFG_DEFAULT_UNSET 0x2u

struct fq_cfg_error {
    int line;      /* 0: the loader uses the line of the mapping checked */
    char msg[400]; /* what is wrong, lowercase, no file or line */
};

/*
 * Semantic check run after a mapping (the top level, a SECTION or each LIST
 * element) is fully mapped and its defaults applied. Returns 0, or a
 * negative FQ_E* code with err->msg (and optionally err->line) set.
 */
typedef int (*fq_cfg_check_fn)(void *obj, struct fq_cfg_error *err);

struct fq_cfg_directive {
    const char *key;
    enum fq_cfg_type type;
    size_t offset;            /* of the field in the struct being mapped */
    unsigned flags;           /* FQ_CFG_REQUIRED */
    int64_t min, max;         /* bounds: value (INT, DURATION, SIZE), length
                                 (STRING, PATH), item count (LIST, STRLIST) */
    const char *def;          /* default as YAML scalar text, or NULL */
    const char *const *names; /* ENUM: NULL-terminated names */
    const struct fq_cfg_directive *sub; /* SECTION, LIST */
    size_t elem_size;                   /* LIST: sizeof one element */
    size_t count_offset;   /* LIST, STRLIST: offset of the size_t count */
    fq_cfg_check_fn check; /* SECTION, LIST: run per mapped element */
    const char *doc;       /* one line for the configuration reference */
    double dmin, dmax;     /* DOUBLE: bounds */
};

/*
 * Maps the YAML file at path onto ret_obj (a zeroed struct described by
 * table) and then runs top_check on it, if given. Returns 0, or a negative
 * FQ_E* code with "FILE:LINE: what is wrong" in errbuf. On failure ret_obj
 * may be partly filled; discard it together with the arena.
 */
int fq_cfg_load_file(const char *path, const struct fq_cfg_directive *table,
                     fq_cfg_check_fn top_check, void *ret_obj,
                     struct fq_arena *arena, char *errbuf, size_t errlen);

/* Same, from memory; name is used in error messages and base_dir resolves
 * relative FQ_CFG_PATH values (NULL: the current directory). */
int fq_cfg_load_buf(const char *name, const char *base_dir, const char *data,
                    size_t len, const struct fq_cfg_directive *table,
                    fq_cfg_check_fn top_check, void *ret_obj,
                    struct fq_arena *arena, char *errbuf, size_t errlen);

/*
 * Writes a Markdown reference of a table (keys, types, bounds, defaults,
 * docs; nested tables indented by their path) to out. title heads it.
 */
void fq_cfg_write_reference(FILE *out, const char *title,
                            const struct fq_cfg_directive *table);

#endif
