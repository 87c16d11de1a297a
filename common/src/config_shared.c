/* Shared directive tables and their loaders; see fq/config_shared.h. */
#include "fq/compat.h"
#include "fq/config_shared.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/rpc.h"

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

const struct fq_cfg_directive fq_cfg_server_table[] = {
    {.key = "listen",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct fq_cfg_server, listen),
     .def = "127.0.0.1:0",
     .max = 127,
     .doc = "address to serve on (host:port); port 0 picks a free port"},
    {.key = "run_dir",
     .type = FQ_CFG_PATH,
     .offset = offsetof(struct fq_cfg_server, run_dir),
     .doc = "where NAME.pid and NAME.addr are written once serving"},
    {.key = "tls",
     .type = FQ_CFG_SECTION,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct fq_cfg_server, tls),
     .sub = fq_cfg_tls_table,
     .doc = "mutual TLS material"},
    {.key = "threads",
     .type = FQ_CFG_INT,
     .offset = offsetof(struct fq_cfg_server, threads),
     .min = 1,
     .max = 64,
     .def = "2",
     .doc = "worker threads serving calls (calls never block them)"},
    {.key = "max_message_bytes",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct fq_cfg_server, max_message_bytes),
     .min = 1024,
     .max = 64 * 1024 * 1024,
     .def = "4MiB",
     .doc = "largest message received or sent; larger: RESOURCE_EXHAUSTED"},
    {.key = "call_memory",
     .type = FQ_CFG_SIZE,
     .offset = offsetof(struct fq_cfg_server, call_memory_bytes),
     .min = 64 * 1024,
     .max = 1024LL * 1024 * 1024,
     .def = "64MiB",
     .doc = "memory one call may use"},
    {.key = "default_deadline",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct fq_cfg_server, default_deadline_ms),
     .min = 10,
     .max = 3600 * 1000,
     .def = "10s",
     .doc = "deadline of a call whose client set none"},
    {.key = "max_deadline",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct fq_cfg_server, max_deadline_ms),
     .min = 10,
     .max = 3600 * 1000,
     .def = "60s",
     .doc = "cap on any client deadline"},
    {.key = "log_format",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct fq_cfg_server, log_format),
     .names = fq_cfg_log_format_names,
     .def = "text",
     .doc = "text, or json for log collectors"},
    {.key = "log_level",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct fq_cfg_server, log_level),
     .names = fq_cfg_log_level_names,
     .def = "info",
     .doc = "lowest level logged"},
    {0},
};

int
fq_cfg_server_check(const struct fq_cfg_server *s, struct fq_cfg_error *err)
{
    if (s->default_deadline_ms > s->max_deadline_ms)
        FQ_CFG_FAIL(err, "default_deadline exceeds max_deadline");
    return 0;
}

static bool
str_differs(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

bool
fq_cfg_server_needs_restart(const struct fq_cfg_server *a,
                            const struct fq_cfg_server *b)
{
    return str_differs(a->listen, b->listen) ||
           str_differs(a->run_dir, b->run_dir) ||
           str_differs(a->tls.ca, b->tls.ca) ||
           str_differs(a->tls.cert, b->tls.cert) ||
           str_differs(a->tls.key, b->tls.key) || a->threads != b->threads ||
           a->max_message_bytes != b->max_message_bytes ||
           a->call_memory_bytes != b->call_memory_bytes ||
           a->default_deadline_ms != b->default_deadline_ms ||
           a->max_deadline_ms != b->max_deadline_ms;
}

void
fq_cfg_server_rpc_opts(const struct fq_cfg_server *s,
                       const struct fq_tls_material *tls,
                       const char *federation, struct fq_rpc_server_opts *o)
{
    o->listen = s->listen;
    o->tls = tls;
    o->federation = federation;
    o->threads = (int)s->threads;
    o->default_deadline_ms = s->default_deadline_ms;
    o->max_deadline_ms = s->max_deadline_ms;
    o->max_message_bytes = (size_t)s->max_message_bytes;
    o->call_memory_bytes = (size_t)s->call_memory_bytes;
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
