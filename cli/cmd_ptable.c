/*
 * fedq ptable: the federation's perturbation table, printed as published
 * (docs/disclosure-control.md): for each true count, the noise a cell may
 * get and its probability. Offline: the table is built from the
 * parameters alone (the gateway configuration's perturbation: section and
 * a policy's min_cell_count), as the gateway builds it.
 */
#include "fq/compat.h"
#include "fq/buf.h"
#include "fq/error.h"
#include "fq/ptable.h"
#include "cli.h"

#include <getopt.h>

static int
usage(void)
{
    fprintf(stderr,
            "usage: fedq ptable [--max-deviation D] [--variance V] "
            "[--threshold K]\n"
            "  the cell-key perturbation table for D (default %d), V "
            "(default %g) and\n  the minimum cell count K (default %d)\n",
            FQ_PTABLE_DEFAULT_MAX_DEVIATION, FQ_PTABLE_DEFAULT_VARIANCE,
            FQ_PTABLE_DEFAULT_THRESHOLD);
    return CLI_USAGE;
}

static bool
number(const char *s, double *ret)
{
    char *end;
    errno = 0;
    *ret = strtod(s, &end);
    return *s && !*end && !errno;
}

int
cli_cmd_ptable(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"max-deviation", required_argument, NULL, 'd'},
        {"variance", required_argument, NULL, 'v'},
        {"threshold", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    struct fq_ptable_params p;
    struct fq_ptable *t = NULL;
    struct fq_buf out;
    char err[256];
    double v;
    int opt, rc;

    (void)c;
    fq_ptable_params_default(&p);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (!optarg || !number(optarg, &v))
            return usage();
        if (opt == 'd')
            p.max_deviation = (int)v;
        else if (opt == 'v')
            p.variance = v;
        else if (opt == 'k')
            p.threshold = (int64_t)v;
        else
            return usage();
    }
    if (optind != argc)
        return usage();
    if ((rc = fq_ptable_build(&p, &t, err, sizeof(err))) < 0) {
        fprintf(stderr, "fedq: %s\n", err);
        return CLI_USAGE;
    }
    fq_buf_init(&out, 1 << 20);
    rc = fq_ptable_format(t, &out);
    if (rc == 0)
        fputs(fq_buf_str(&out), stdout);
    else
        fprintf(stderr, "fedq: cannot print the table: %s\n", fq_strerror(rc));
    fq_buf_release(&out);
    fq_ptable_free(t);
    return rc < 0 ? CLI_ERROR : CLI_OK;
}
