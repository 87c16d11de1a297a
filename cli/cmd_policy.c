/*
 * `fedq policy sign|verify|show`: the steward's tools for the agency's
 * release policy (common/src/policy*.c). They work on files alone, offline:
 * no gateway and no client configuration, so a policy can be signed on a
 * machine that holds the key and nothing else.
 *
 *   fedq policy sign --key KEY POLICY.yaml       writes POLICY.yaml.sig
 *   fedq policy verify --pubkey PUB POLICY.yaml  says whether it verifies
 *   fedq policy show --pubkey PUB POLICY.yaml    verifies, then lists
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "fq/policy.h"
#include "cli.h"

#include <getopt.h>

#define SHOW_MEMORY (16 * 1024 * 1024)

static const char *const review_names[] = {"none", "every_query"};

struct policy_args {
    const char *key;    /* sign: the private key */
    const char *pubkey; /* verify, show: the public key */
    const char *path;   /* the policy */
};

static int
usage(void)
{
    fprintf(stderr, "usage: fedq policy sign --key KEY POLICY.yaml\n"
                    "       fedq policy verify --pubkey PUB POLICY.yaml\n"
                    "       fedq policy show --pubkey PUB POLICY.yaml "
                    "[--format table|csv|json]\n");
    return CLI_USAGE;
}

/* Options of one subcommand; exactly the key it needs and one policy. */
static int
parse_args(struct cli *c, int argc, char **argv, bool signing,
           struct policy_args *ret)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'},
        {"pubkey", required_argument, NULL, 'p'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    struct policy_args a = {0};
    int opt;

    optind = 0; /* reinitialise getopt for the subcommand's own argv */
    while ((opt = getopt_long(argc, argv, "k:p:f:", longopts, NULL)) != -1) {
        if (opt == 'k')
            a.key = optarg;
        else if (opt == 'p')
            a.pubkey = optarg;
        else if (opt != 'f' || cli_set_format(c, optarg) < 0)
            return usage();
    }
    if (optind + 1 != argc ||
        (signing ? !a.key || a.pubkey : !a.pubkey || a.key))
        return usage();
    a.path = argv[optind];
    *ret = a;
    return CLI_OK;
}

static int
policy_sign(struct cli *c, int argc, char **argv)
{
    struct policy_args a;
    char err[1024];
    int rc;

    if ((rc = parse_args(c, argc, argv, true, &a)) != CLI_OK)
        return rc;
    if (fq_policy_sign(a.path, a.key, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "fedq: %s\n", err);
        return CLI_ERROR;
    }
    printf("%s: signed, written %s%s\n", a.path, a.path, FQ_POLICY_SIG_SUFFIX);
    return CLI_OK;
}

static int
load(const struct policy_args *a, struct fq_policy **ret)
{
    char err[1024];

    if (fq_policy_load(a->path, NULL, a->pubkey, ret, err, sizeof(err)) < 0) {
        fprintf(stderr, "fedq: %s\n", err);
        return CLI_ERROR;
    }
    return CLI_OK;
}

static int
policy_verify(struct cli *c, int argc, char **argv)
{
    struct policy_args a;
    struct fq_policy *p;
    int rc;

    if ((rc = parse_args(c, argc, argv, false, &a)) != CLI_OK ||
        (rc = load(&a, &p)) != CLI_OK)
        return rc;
    printf("%s: signature OK, policy of %s version %" PRId64 ", sha256 %s\n",
           a.path, p->agency, p->version, p->hash);
    fq_policy_free(p);
    return CLI_OK;
}

static void
add_policy(struct cli_out *o, struct fq_arena *m, const struct fq_policy *p)
{
    static const char *const cols[] = {"agency", "federation", "version",
                                       "sha256", NULL};
    const char *row[] = {p->agency, p->federation,
                         fq_arena_printf(m, "%" PRId64, p->version), p->hash};

    cli_out_section(o, "policy", cols);
    cli_out_row(o, row);
}

static void
add_agreements(struct cli_out *o, struct fq_arena *m, const struct fq_policy *p)
{
    static const char *const cols[] = {
        "agreement", "title",      "legal_basis", "purposes",
        "analysts",  "valid_from", "valid_until", "min_cell_count",
        "review",    "pool_with",  NULL};

    cli_out_section(o, "agreements", cols);
    for (size_t i = 0; i < p->n_agreements; i++) {
        const struct fq_policy_agreement *a = &p->agreements[i];
        const char *row[] = {
            a->id,
            a->title,
            cli_join(m, a->legal_basis, a->n_legal_basis, "; "),
            cli_join(m, a->purposes, a->n_purposes, "; "),
            cli_join(m, a->analysts, a->n_analysts, "; "),
            a->valid_from,
            a->valid_until,
            fq_arena_printf(m, "%" PRId64, a->release.min_cell_count),
            review_names[a->review == FQ_POLICY_REVIEW_EVERY_QUERY],
            a->n_pool_with ? cli_join(m, a->pool_with, a->n_pool_with, "; ")
                           : "(none)"};
        cli_out_row(o, row);
    }
}

static void
add_datasets(struct cli_out *o, struct fq_arena *m, const struct fq_policy *p)
{
    static const char *const cols[] = {"agreement", "dataset", "columns",
                                       "aggregates", NULL};

    cli_out_section(o, "datasets", cols);
    for (size_t i = 0; i < p->n_agreements; i++) {
        const struct fq_policy_agreement *a = &p->agreements[i];
        for (size_t k = 0; k < a->n_datasets; k++) {
            const struct fq_policy_dataset *d = &a->datasets[k];
            const char *row[] = {
                a->id, d->name, cli_join(m, d->columns, d->n_columns, "; "),
                cli_join(m, d->aggregates, d->n_aggregates, "; ")};
            cli_out_row(o, row);
        }
    }
}

/* One row per release parameter, so later parameters add rows, not
 * columns, and each keeps its rationale beside it. */
static void
add_release(struct cli_out *o, struct fq_arena *m, const struct fq_policy *p)
{
    static const char *const cols[] = {"agreement", "parameter", "value",
                                       "rationale", NULL};

    cli_out_section(o, "release", cols);
    for (size_t i = 0; i < p->n_agreements; i++) {
        const struct fq_policy_agreement *a = &p->agreements[i];
        const char *row[] = {
            a->id, "min_cell_count",
            fq_arena_printf(m, "%" PRId64, a->release.min_cell_count),
            a->release.min_cell_count_rationale};
        cli_out_row(o, row);
    }
}

static int
policy_show(struct cli *c, int argc, char **argv)
{
    struct policy_args a;
    struct fq_policy *p = NULL;
    struct fq_arena *m = NULL;
    struct cli_out *o = NULL;
    int rc;

    if ((rc = parse_args(c, argc, argv, false, &a)) != CLI_OK ||
        (rc = load(&a, &p)) != CLI_OK)
        return rc;
    rc = CLI_ERROR;
    if (!(m = fq_arena_new(SHOW_MEMORY)) || !(o = cli_out_new(c->format))) {
        fprintf(stderr, "fedq: out of memory\n");
        goto out;
    }
    add_policy(o, m, p);
    add_agreements(o, m, p);
    add_datasets(o, m, p);
    add_release(o, m, p);
    cli_out_print(o);
    rc = CLI_OK;
out:
    fq_arena_free(m);
    fq_policy_free(p);
    return rc;
}

int
cli_cmd_policy(struct cli *c, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(struct cli *c, int argc, char **argv);
    } subs[] = {
        {"sign", policy_sign},
        {"verify", policy_verify},
        {"show", policy_show},
    };

    for (size_t i = 0; argc >= 2 && i < FQ_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].run(c, argc - 1, argv + 1);
    }
    if (argc >= 2)
        fprintf(stderr, "fedq: unknown policy command '%s'\n", argv[1]);
    return usage();
}
