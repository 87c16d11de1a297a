/*
 * fedq: the command-line client of a fedq federation. Reads the client
 * configuration, opens one mutual-TLS channel to the gateway (checking that
 * it really is the federation's gateway) and runs one command.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/log.h"
#include "fq/policy.h"
#include "cli.h"

#include <getopt.h>

struct cli_command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
    const char *help;
    bool offline; /* works on local files: no configuration, no gateway */
};

static const struct cli_command commands[] = {
    {"datasets", cli_cmd_datasets,
     "list every agency's datasets and the federation's aliases", false},
    {"query", cli_cmd_query,
     "run a fedq SQL query: fedq query \"SELECT ... FROM agency.dataset\"",
     false},
    {"result", cli_cmd_result,
     "the answer to a query held for review: fedq result QUERY_ID", false},
    {"explain", cli_cmd_explain,
     "show what a query would do, without running it", false},
    {"health", cli_cmd_health, "check the gateway and every agency it reaches",
     false},
    {"review", cli_cmd_review,
     "a steward's held queries: review list|show|approve|deny (agent)", false},
    {"policy", cli_cmd_policy,
     "sign, verify or show an agency's release policy (offline)", true},
    {"ptable", cli_cmd_ptable,
     "print the federation's perturbation table (offline)", true},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: fedq [--config FILE] [--format table|csv|json] "
                 "[--timeout MS] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < FQ_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nThe client configuration is --config FILE, else "
                 "$FEDQ_CONFIG, else $FEDQ_HOME/client.yaml,\nelse "
                 ".fedq-local/client.yaml here or in a parent directory, "
                 "else\n~/.config/fedq/client.yaml.\n"
                 "Queries name a data sharing agreement and a purpose: "
                 "--agreement ID --purpose TEXT,\nor agreement: and "
                 "purpose: in the client configuration.\n"
                 "Exit codes: 0 ok, 1 error, 2 usage, 3 some agency did not "
                 "answer,\n4 held for a steward's review (fedq result "
                 "QUERY_ID later).\n");
}

int
cli_call(struct cli *c, const char *method, const ProtobufCMessage *req,
         const ProtobufCMessageDescriptor *resp_desc, struct fq_rpc_result *res)
{
    if (!c->gw) {
        fprintf(stderr, "fedq: %s names no gateway: set gateway: in it\n",
                c->cfg->doc.path);
        return CLI_USAGE;
    }
    return cli_call_on(c, c->gw, method, req, resp_desc, res);
}

int
cli_call_on(struct cli *c, struct fq_rpc_channel *ch, const char *method,
            const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *resp_desc,
            struct fq_rpc_result *res)
{
    int rc = fq_rpc_call_blocking(ch, method, req, resp_desc,
                                  c->cfg->timeout_ms, res);
    if (rc < 0) {
        fprintf(stderr, "fedq: cannot call %s: %s\n", method, fq_strerror(rc));
        return CLI_ERROR;
    }
    if (res->status != FQ_RPC_OK) {
        fprintf(stderr, "fedq: %s: %s\n", fq_rpc_status_name(res->status),
                res->message);
        fq_arena_free(res->arena);
        res->arena = NULL;
        return CLI_ERROR;
    }
    return CLI_OK;
}

static int
cli_open(struct cli *c, const char *config, char *err, size_t errlen)
{
    struct cli_config *cfg;
    int rc;

    if ((rc = cli_config_find(config, &cfg, err, errlen)) < 0)
        return rc;
    c->cfg = cfg;
    if ((rc = fq_cfg_tls_load(cfg->doc.path, &cfg->tls,
                              FQ_ROLE_ANALYST | FQ_ROLE_STEWARD,
                              cfg->federation, NULL, &c->tls, err, errlen)) < 0)
        return rc;
    if (!cfg->gateway)
        return 0; /* a steward's configuration for fedq review alone */
    struct fq_rpc_channel_opts o = {
        .target = cfg->gateway,
        .tls = &c->tls,
        .expect_identity = cfg->gateway_identity,
        .max_message_bytes = 64 * 1024 * 1024,
    };
    return fq_rpc_channel_open(&o, &c->gw, err, errlen);
}

static void
cli_close(struct cli *c)
{
    fq_rpc_channel_free(c->gw);
    fq_tls_material_release(&c->tls);
    cli_config_free(c->cfg);
}

int
cli_set_format(struct cli *c, const char *name)
{
    static const char *const names[] = {"table", "csv", "json"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            c->format = (int)i;
            return 0;
        }
    }
    fprintf(stderr, "fedq: --format must be table, csv or json\n");
    return FQ_EINVAL;
}

static const struct cli_command *
find_command(const char *name)
{
    for (size_t i = 0; i < FQ_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"format", required_argument, NULL, 'f'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"config-reference", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    struct cli c = {0};
    const char *config = NULL, *format = NULL;
    long timeout = 0;
    char err[1024], *end;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "+c:f:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 't':
            timeout = strtol(optarg, &end, 10);
            if (*end || timeout <= 0) {
                fprintf(stderr, "fedq: --timeout takes milliseconds\n");
                return CLI_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return CLI_OK;
        case 'R':
            fq_cfg_write_reference(stdout, "fedq (client.yaml)",
                                   cli_config_table);
            printf("\n");
            fq_cfg_write_reference(
                stdout, "release policy (policy-AGENCY.yaml)", fq_policy_table);
            return CLI_OK;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    const struct cli_command *cmd =
        optind < argc ? find_command(argv[optind]) : NULL;
    if (!cmd) {
        if (optind < argc)
            fprintf(stderr, "fedq: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return CLI_USAGE;
    }
    fq_log_setup("fedq", FQ_LOG_ERROR, FQ_LOG_TEXT);
    if (cmd->offline) {
        c.format = CLI_FMT_TABLE;
        if (format && cli_set_format(&c, format) < 0)
            return CLI_USAGE;
        return cmd->run(&c, argc - optind, argv + optind);
    }
    fq_rpc_global_init();
    if (cli_open(&c, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "fedq: %s\n", err);
        rc = CLI_USAGE;
        goto out;
    }
    c.format = c.cfg->format;
    if (format && cli_set_format(&c, format) < 0) {
        rc = CLI_USAGE;
        goto out;
    }
    if (timeout)
        c.cfg->timeout_ms = timeout;
    rc = cmd->run(&c, argc - optind, argv + optind);
out:
    cli_close(&c);
    fq_rpc_global_shutdown();
    return rc;
}
