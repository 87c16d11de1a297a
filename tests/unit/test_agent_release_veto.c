/*
 * The agency's own veto on a release (agent/release_veto.c): the primary
 * rule, zeros, the insider rule for every part, and parts that
 * contradict the agency's own count.
 */
#include "fq/compat.h"
#include "fq/error.h"
#include "release_veto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static struct ag_ledger_part
part(const char *agency, int64_t persons)
{
    struct ag_ledger_part p = {.persons = persons};
    snprintf(p.agency, sizeof(p.agency), "%s", agency);
    snprintf(p.vintage, sizeof(p.vintage), "v1");
    return p;
}

/* One cell of parts uhs and csu (0: no part), this agency uhs. */
static int
veto(int64_t uhs, int64_t csu, bool suppress_zero, char *err, size_t len)
{
    struct ag_ledger_part p[2];
    size_t n = 0;
    const struct ag_veto_rules r = {"uhs", 11, suppress_zero};

    if (uhs)
        p[n++] = part("uhs", uhs);
    if (csu)
        p[n++] = part("csu", csu);
    struct ag_veto_cell c = {p, n, uhs};
    return ag_release_veto(&r, &c, 1, err, len);
}

static void
test_passes(void **state)
{
    char err[256] = "";

    (void)state;
    assert_int_equal(veto(30, 40, false, err, sizeof(err)), 0);
    assert_int_equal(veto(11, 0, false, err, sizeof(err)), 0); /* one agency */
    assert_int_equal(veto(0, 25, false, err, sizeof(err)), 0); /* none here */
    assert_int_equal(veto(0, 0, false, err, sizeof(err)), 0);  /* a zero */
    assert_int_equal(veto(11, 11, true, err, sizeof(err)), 0);
}

static void
test_primary_and_zero(void **state)
{
    char err[256] = "";

    (void)state;
    assert_int_equal(veto(6, 4, false, err, sizeof(err)), FQ_EPERM);
    assert_non_null(strstr(err, "10 contributors"));
    assert_int_equal(veto(0, 0, true, err, sizeof(err)), FQ_EPERM);
    assert_non_null(strstr(err, "no zero"));
}

/* Pooled 40 passes, but csu knows its 35: the rest of 5 is uhs's. */
static void
test_insider(void **state)
{
    char err[256] = "";

    (void)state;
    assert_int_equal(veto(5, 35, false, err, sizeof(err)), FQ_EPERM);
    assert_non_null(strstr(err, "5 contributors besides agency csu"));
    assert_int_equal(veto(35, 5, false, err, sizeof(err)), FQ_EPERM);
    assert_non_null(strstr(err, "besides agency uhs"));
}

/* The gateway's part for this agency must be what its records hold. */
static void
test_own_part(void **state)
{
    struct ag_ledger_part p[2] = {part("uhs", 20), part("csu", 20)};
    const struct ag_veto_rules r = {"uhs", 11, false};
    struct ag_veto_cell ok = {p, 2, 20}, wrong = {p, 2, 12},
                        left = {p + 1, 1, 3};
    struct ag_veto_cell cells[2] = {ok, wrong};
    char err[256] = "";

    (void)state;
    assert_int_equal(ag_release_veto(&r, cells, 2, err, sizeof(err)),
                     FQ_EINVAL);
    assert_non_null(strstr(err, "cell 1: the gateway states 20"));
    assert_int_equal(ag_release_veto(&r, &left, 1, err, sizeof(err)),
                     FQ_EINVAL);
    p[0].persons = -1;
    assert_int_equal(ag_release_veto(&r, &ok, 1, err, sizeof(err)), FQ_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passes),
        cmocka_unit_test(test_primary_and_zero),
        cmocka_unit_test(test_insider),
        cmocka_unit_test(test_own_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
