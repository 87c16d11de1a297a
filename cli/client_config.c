/*
 * The client configuration: its directive table and the lookup order that
 * lets a user run `fedq` with no flags from anywhere inside a checkout
 * whose federation the quickstart started.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/identity.h"
#include "cli.h"

#include <sys/stat.h>

#define PATH_CAP 4096

static const char *const format_names[] = {"table", "csv", "json", NULL};

static int check_config(void *obj, struct fq_cfg_error *err);

const struct fq_cfg_directive cli_config_table[] = {
    {.key = "federation",
     .type = FQ_CFG_STRING,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct cli_config, federation),
     .min = 1,
     .max = 63,
     .doc = "federation name"},
    {.key = "gateway",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cli_config, gateway),
     .min = 1,
     .max = 200,
     .doc = "the gateway's address (host:port, ipv4:IP:PORT, ...); "
            "every command but review and policy needs it"},
    {.key = "gateway_identity",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cli_config, gateway_identity),
     .max = 255,
     .doc = "identity the gateway must present (default "
            "spiffe://FED/gateway)"},
    {.key = "tls",
     .type = FQ_CFG_SECTION,
     .flags = FQ_CFG_REQUIRED,
     .offset = offsetof(struct cli_config, tls),
     .sub = fq_cfg_tls_table,
     .doc = "the analyst's or steward's TLS material"},
    {.key = "timeout",
     .type = FQ_CFG_DURATION,
     .offset = offsetof(struct cli_config, timeout_ms),
     .min = 10,
     .max = 3600 * 1000,
     .def = "30s",
     .doc = "deadline of each call"},
    {.key = "format",
     .type = FQ_CFG_ENUM,
     .offset = offsetof(struct cli_config, format),
     .names = format_names,
     .def = "table",
     .doc = "default output format: table, csv or json"},
    {.key = "agreement",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cli_config, agreement),
     .min = 1,
     .max = 63,
     .doc = "data sharing agreement queries name when --agreement is not "
            "given"},
    {.key = "purpose",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cli_config, purpose),
     .min = 1,
     .max = 200,
     .doc = "purpose queries state when --purpose is not given"},
    {.key = "agent",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cli_config, agent),
     .min = 1,
     .max = 200,
     .doc = "a steward's own agent (host:port, ipv4:IP:PORT, ...), for "
            "fedq review"},
    {.key = "agent_identity",
     .type = FQ_CFG_STRING,
     .offset = offsetof(struct cli_config, agent_identity),
     .max = 255,
     .doc = "identity the agent must present (default "
            "spiffe://FED/agency/AGENCY/agent, AGENCY from the steward's "
            "certificate)"},
    {0},
};

static int
check_config(void *obj, struct fq_cfg_error *err)
{
    struct cli_config *cfg = obj;
    struct fq_identity id;

    if (!fq_federation_valid(cfg->federation)) {
        snprintf(err->msg, sizeof(err->msg), "federation '%s' is not valid",
                 cfg->federation);
        return FQ_EINVAL;
    }
    if (!cfg->gateway_identity &&
        !(cfg->gateway_identity = fq_arena_printf(
              cfg->doc.arena, "spiffe://%s/gateway", cfg->federation)))
        return FQ_ENOMEM;
    if (fq_identity_parse(cfg->gateway_identity, strlen(cfg->gateway_identity),
                          &id) < 0 ||
        id.role != FQ_ROLE_GATEWAY) {
        snprintf(err->msg, sizeof(err->msg),
                 "gateway_identity '%s' is not a gateway identity",
                 cfg->gateway_identity);
        return FQ_EINVAL;
    }
    /* The default agent identity needs the certificate: see cmd_review.c. */
    if (cfg->agent_identity &&
        (fq_identity_parse(cfg->agent_identity, strlen(cfg->agent_identity),
                           &id) < 0 ||
         id.role != FQ_ROLE_AGENT)) {
        snprintf(err->msg, sizeof(err->msg),
                 "agent_identity '%s' is not an agent identity",
                 cfg->agent_identity);
        return FQ_EINVAL;
    }
    return 0;
}

static bool
file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir + "/" + name (or dir alone); false if it does not fit. */
static bool
path_join(char *out, size_t len, const char *dir, const char *name)
{
    int n = name ? snprintf(out, len, "%s/%s", dir, name)
                 : snprintf(out, len, "%s", dir);
    return n >= 0 && (size_t)n < len;
}

/* .fedq-local/client.yaml in the current directory or the nearest parent. */
static bool
find_upwards(char *out, size_t len)
{
    char dir[PATH_CAP];

    if (!getcwd(dir, sizeof(dir)))
        return false;
    for (;;) {
        if (path_join(out, len, strcmp(dir, "/") == 0 ? "" : dir,
                      ".fedq-local/client.yaml") &&
            file_exists(out))
            return true;
        if (strcmp(dir, "/") == 0)
            return false;
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

/* Applies the lookup order; false if no file was found anywhere. */
static bool
lookup(const char *explicit_path, char *out, size_t len)
{
    const char *env;

    if (explicit_path) {
        return path_join(out, len, explicit_path, NULL);
    }
    if ((env = getenv("FEDQ_CONFIG")) && *env) {
        return path_join(out, len, env, NULL);
    }
    if ((env = getenv("FEDQ_HOME")) && *env) {
        if (path_join(out, len, env, "client.yaml") && file_exists(out))
            return true;
    }
    if (find_upwards(out, len))
        return true;
    if ((env = getenv("HOME")) && *env) {
        if (path_join(out, len, env, ".config/fedq/client.yaml") &&
            file_exists(out))
            return true;
    }
    return false;
}

int
cli_config_find(const char *explicit_path, struct cli_config **ret, char *err,
                size_t errlen)
{
    char path[PATH_CAP];

    if (!lookup(explicit_path, path, sizeof(path))) {
        snprintf(err, errlen,
                 "no client configuration: use --config FILE, set FEDQ_CONFIG "
                 "or FEDQ_HOME, or run deploy/quickstart.sh --keep");
        return FQ_ENOENT;
    }
    return fq_cfg_doc_load(path, cli_config_table, check_config,
                           sizeof(struct cli_config), (void **)ret, err,
                           errlen);
}

void
cli_config_free(struct cli_config *cfg)
{
    fq_cfg_doc_free(cfg ? &cfg->doc : NULL);
}
