/*
 * libFuzzer target for the configuration loader: arbitrary bytes go
 * through fq_cfg_load_buf against a table that uses every directive type
 * (a nested SECTION, a LIST of mappings with a LIST inside, STRLISTs, every
 * scalar type, LINE and check hooks at each level), so both the YAML pass
 * and the mapping pass see hostile input. Each run gets a fresh arena and
 * frees it, so LeakSanitizer catches anything the loader keeps.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/config.h"
#include "fq/error.h"

#define FUZZ_ARENA_MAX (64u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_field {
    char *name;
    int kind;
    bool key;
    int64_t width;
    int line;
};

struct fz_source {
    char *name;
    char *path;
    struct fz_field *fields;
    size_t nfields;
    char **labels;
    size_t nlabels;
    int64_t refresh_ms;
    int line;
};

struct fz_limits {
    int64_t rows;
    int64_t bytes;
    int64_t deadline_ms;
    int line;
};

struct fz_tls {
    char *ca;
    char *cert;
    bool verify;
    struct fz_limits limits;
    int line;
};

struct fz_cfg {
    char *listen;
    char *data_dir;
    int64_t threads;
    int64_t offset;
    bool debug;
    int mode;
    int64_t timeout_ms;
    int64_t max_body;
    char **peers;
    size_t npeers;
    struct fz_tls tls;
    struct fz_source *sources;
    size_t nsources;
    int line;
};

static const char *const modes[] = {"text", "json", "binary", NULL};
static const char *const kinds[] = {"int", "real", "text", "blob", NULL};

/* The checks read what the loader promises after mapping: required keys
 * set, defaults applied, lists with their counts. */
static int
field_check(void *obj, struct fq_cfg_error *err)
{
    struct fz_field *f = obj;

    if (f->key && f->kind == 1) {
        snprintf(err->msg, sizeof(err->msg), "field '%s' cannot be a key",
                 f->name);
        return FQ_EINVAL;
    }
    return 0;
}

static int
source_check(void *obj, struct fq_cfg_error *err)
{
    struct fz_source *s = obj;

    for (size_t i = 0; i < s->nfields; i++) {
        if (strcmp(s->fields[i].name, s->name) == 0) {
            err->line = s->fields[i].line;
            snprintf(err->msg, sizeof(err->msg), "field named like source");
            return FQ_EINVAL;
        }
    }
    return 0;
}

static int
limits_check(void *obj, struct fq_cfg_error *err)
{
    struct fz_limits *l = obj;

    if (l->rows > 1000 && l->bytes < 4096) {
        snprintf(err->msg, sizeof(err->msg), "rows need bytes");
        return FQ_EINVAL;
    }
    return 0;
}

static int
tls_check(void *obj, struct fq_cfg_error *err)
{
    struct fz_tls *t = obj;

    if (t->verify && (!t->ca || !t->cert)) {
        err->line = t->line;
        snprintf(err->msg, sizeof(err->msg), "verify needs ca and cert");
        return FQ_EINVAL;
    }
    return 0;
}

static int
top_check(void *obj, struct fq_cfg_error *err)
{
    struct fz_cfg *c = obj;

    for (size_t i = 0; i < c->npeers; i++) {
        if (strcmp(c->peers[i], c->listen) == 0) {
            snprintf(err->msg, sizeof(err->msg), "peer is self");
            return FQ_EINVAL;
        }
    }
    return 0;
}

static const struct fq_cfg_directive field_table[] = {
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fz_field, name),
     .min = 1,
     .max = 64},
    {.key = "kind",
     .type = FQ_CFG_ENUM,
     .names = kinds,
     .def = "text",
     .offset = offsetof(struct fz_field, kind)},
    {.key = "key",
     .type = FQ_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct fz_field, key)},
    {.key = "width",
     .type = FQ_CFG_INT,
     .min = -1,
     .max = 1 << 20,
     .def = "-1",
     .offset = offsetof(struct fz_field, width)},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct fz_field, line)},
    {0},
};

static const struct fq_cfg_directive source_table[] = {
    {.key = "name",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fz_source, name)},
    {.key = "path",
     .type = FQ_CFG_PATH,
     .def = "data.db",
     .offset = offsetof(struct fz_source, path)},
    {.key = "fields",
     .type = FQ_CFG_LIST,
     .min = 1,
     .max = 32,
     .offset = offsetof(struct fz_source, fields),
     .count_offset = offsetof(struct fz_source, nfields),
     .sub = field_table,
     .elem_size = sizeof(struct fz_field),
     .check = field_check,
     .flags = FQ_CFG_REQUIRED},
    {.key = "labels",
     .type = FQ_CFG_STRLIST,
     .offset = offsetof(struct fz_source, labels),
     .count_offset = offsetof(struct fz_source, nlabels)},
    {.key = "refresh",
     .type = FQ_CFG_DURATION,
     .def = "1m",
     .offset = offsetof(struct fz_source, refresh_ms)},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct fz_source, line)},
    {0},
};

static const struct fq_cfg_directive limits_table[] = {
    {.key = "rows",
     .type = FQ_CFG_INT,
     .min = 1,
     .max = 1000000,
     .def = "10000",
     .offset = offsetof(struct fz_limits, rows)},
    {.key = "bytes",
     .type = FQ_CFG_SIZE,
     .def = "16MiB",
     .offset = offsetof(struct fz_limits, bytes)},
    {.key = "deadline",
     .type = FQ_CFG_DURATION,
     .min = 1,
     .max = 24 * 3600000,
     .def = "30s",
     .offset = offsetof(struct fz_limits, deadline_ms)},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct fz_limits, line)},
    {0},
};

static const struct fq_cfg_directive tls_table[] = {
    {.key = "ca", .type = FQ_CFG_PATH, .offset = offsetof(struct fz_tls, ca)},
    {.key = "cert",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct fz_tls, cert)},
    {.key = "verify",
     .type = FQ_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct fz_tls, verify)},
    {.key = "limits",
     .type = FQ_CFG_SECTION,
     .sub = limits_table,
     .check = limits_check,
     .offset = offsetof(struct fz_tls, limits)},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct fz_tls, line)},
    {0},
};

static const struct fq_cfg_directive table[] = {
    {.key = "listen",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fz_cfg, listen),
     .min = 3,
     .max = 255},
    {.key = "data_dir",
     .type = FQ_CFG_PATH,
     .def = "/var/lib/fedq",
     .offset = offsetof(struct fz_cfg, data_dir)},
    {.key = "threads",
     .type = FQ_CFG_INT,
     .min = 1,
     .max = 64,
     .def = "4",
     .offset = offsetof(struct fz_cfg, threads)},
    {.key = "offset",
     .type = FQ_CFG_INT,
     .def = "0",
     .offset = offsetof(struct fz_cfg, offset)},
    {.key = "debug",
     .type = FQ_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct fz_cfg, debug)},
    {.key = "mode",
     .type = FQ_CFG_ENUM,
     .names = modes,
     .def = "text",
     .offset = offsetof(struct fz_cfg, mode)},
    {.key = "timeout",
     .type = FQ_CFG_DURATION,
     .min = 100,
     .max = 3600000,
     .def = "5s",
     .offset = offsetof(struct fz_cfg, timeout_ms)},
    {.key = "max_body",
     .type = FQ_CFG_SIZE,
     .min = 1024,
     .max = INT64_C(1) << 30,
     .def = "4MiB",
     .offset = offsetof(struct fz_cfg, max_body)},
    {.key = "peers",
     .type = FQ_CFG_STRLIST,
     .max = 16,
     .offset = offsetof(struct fz_cfg, peers),
     .count_offset = offsetof(struct fz_cfg, npeers)},
    {.key = "tls",
     .type = FQ_CFG_SECTION,
     .sub = tls_table,
     .check = tls_check,
     .offset = offsetof(struct fz_cfg, tls)},
    {.key = "sources",
     .type = FQ_CFG_LIST,
     .max = 64,
     .offset = offsetof(struct fz_cfg, sources),
     .count_offset = offsetof(struct fz_cfg, nsources),
     .sub = source_table,
     .elem_size = sizeof(struct fz_source),
     .check = source_check},
    {.type = FQ_CFG_LINE, .offset = offsetof(struct fz_cfg, line)},
    {0},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fq_arena *arena = fq_arena_new(FUZZ_ARENA_MAX);
    struct fz_cfg cfg;
    char err[512];

    if (!arena)
        return 0;
    memset(&cfg, 0, sizeof(cfg));
    int rc = fq_cfg_load_buf("fuzz.yaml", "/etc/fedq", (const char *)data, size,
                             table, top_check, &cfg, arena, err, sizeof(err));
    /* Every failure must explain itself as "NAME:LINE: ..." or "NAME: ...";
     * abort so the fuzzer records the input if one does not. */
    if (rc < 0 && strncmp(err, "fuzz.yaml:", 10) != 0)
        abort();
    if (rc == 0 && (!cfg.listen || !cfg.tls.limits.line))
        abort();
    fq_arena_free(arena);
    return 0;
}
