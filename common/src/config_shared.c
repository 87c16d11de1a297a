/* Shared directive tables and their loaders; see fq/config_shared.h. */
#include "fq/compat.h"
#include "fq/config_shared.h"
#include "fq/arena.h"
#include "fq/error.h"

const char *const fq_cfg_log_format_names[] = {"text", "json", NULL};
const char *const fq_cfg_log_level_names[] = {"debug", "info", "warn", "error",
                                              NULL};

const struct fq_cfg_directive fq_cfg_tls_table[] = {
    {.key = "",
     .type = FQ_CFG_LINE,
     .offset = offsetof(struct fq_cfg_tls, line)},
    {.key = "ca",
     .type = FQ_CFG_PATH,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_cfg_tls, ca),
     .doc = "PEM bundle of the federation CA"},
    {.key = "cert",
     .type = FQ_CFG_PATH,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_cfg_tls, cert),
     .doc = "this party's certificate; its one URI SAN names the party"},
    {.key = "key",
     .type = FQ_CFG_PATH,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_cfg_tls, key),
     .doc = "this party's private key (mode 0600)"},
    {0},
};

/* "an analyst or a steward" for a role mask; static storage. */
static const char *
tls_role_names(unsigned roles)
{
    static const enum fq_role all[] = {FQ_ROLE_GATEWAY, FQ_ROLE_AGENT,
                                       FQ_ROLE_ANALYST, FQ_ROLE_STEWARD};
    static __thread char buf[96];
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < FQ_ARRAY_LEN(all); i++) {
        if (!(roles & all[i]))
            continue;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " or " : "",
                              fq_role_name(all[i]));
    }
    return buf;
}

int
fq_cfg_tls_load(const char *path, const struct fq_cfg_tls *t, unsigned roles,
                const char *federation, const char *agency,
                struct fq_tls_material *ret, char *err, size_t errlen)
{
    struct fq_tls_files files = {t->ca, t->cert, t->key};
    struct fq_tls_material m;
    char why[600];

    if (fq_tls_load(&files, &m, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s:%d: %s", path, t->line, why);
        return FQ_EINVAL;
    }
    if (!(m.self.role & roles) || strcmp(m.self.federation, federation) != 0 ||
        (agency && strcmp(m.self.agency, agency) != 0)) {
        snprintf(err, errlen,
                 "%s:%d: certificate '%s' names %s, not %s%s%s "
                 "of federation '%s'",
                 path, t->line, t->cert, m.self.uri, tls_role_names(roles),
                 agency ? " of agency " : "", agency ? agency : "", federation);
        fq_tls_material_release(&m);
        return FQ_EINVAL;
    }
    *ret = m;
    return 0;
}

int
fq_cfg_doc_load(const char *path, const struct fq_cfg_directive *table,
                fq_cfg_check_fn check, size_t size, void **ret, char *err,
                size_t errlen)
{
    struct fq_arena *arena = fq_arena_new(FQ_CFG_DOC_MEMORY);
    struct fq_cfg_doc *doc = arena ? fq_arena_alloc(arena, size) : NULL;

    if (!doc || !(doc->path = fq_arena_strdup(arena, path))) {
        fq_arena_free(arena);
        snprintf(err, errlen, "%s: out of memory", path);
        return FQ_ENOMEM;
    }
    doc->arena = arena;
    int rc = fq_cfg_load_file(path, table, check, doc, arena, err, errlen);
    if (rc < 0) {
        fq_arena_free(arena);
        return rc;
    }
    *ret = doc;
    return 0;
}

void
fq_cfg_doc_free(struct fq_cfg_doc *doc)
{
    if (doc)
        fq_arena_free(doc->arena);
}
