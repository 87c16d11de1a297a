/*
 * Unit tests for the gateway's store of queries held for review (held.c):
 * what is kept survives reopening the file (a restart), only the analyst
 * who asked gets it back, and the file is private.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "gateway.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fedq/v1/gateway.pb-c.h"

#define ALICE "spiffe://fedq.test/analyst/alice"
#define BOB   "spiffe://fedq.test/analyst/bob"

struct fixture {
    char dir[64];
    char state[96];
    struct gw_config cfg;
    char err[512];
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-held-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    /* A directory that does not exist yet: the store makes it. */
    snprintf(f->state, sizeof(f->state), "%s/state/gw", f->dir);
    f->cfg.state_dir = f->state;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static Fedq__V1__QueryRequest
request(const char *sql)
{
    Fedq__V1__QueryRequest r = FEDQ__V1__QUERY_REQUEST__INIT;
    r.sql = (char *)sql;
    r.agreement = (char *)"DSA-1";
    r.purpose = (char *)"program evaluation";
    r.allow_partial = true;
    return r;
}

static void
test_survives_reopen(void **state)
{
    struct fixture *f = *state;
    Fedq__V1__QueryRequest r = request("SELECT COUNT(*) FROM dss.enrollment");
    Fedq__V1__QueryRequest *got = NULL;
    struct gw_held *h = NULL;
    struct fq_arena *a = fq_arena_new(4096);
    char path[160];
    struct stat st;

    assert_int_equal(gw_held_open(&f->cfg, &h, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        gw_held_put(h, "q-0123456789abcdef", ALICE, &r, f->err, sizeof(f->err)),
        0);
    gw_held_close(h);
    h = NULL;

    snprintf(path, sizeof(path), "%s/held-queries.db", f->state);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0); /* the analysts' literals */
    assert_int_equal(stat(f->state, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);

    assert_int_equal(gw_held_open(&f->cfg, &h, f->err, sizeof(f->err)), 0);
    assert_int_equal(gw_held_get(h, "q-0123456789abcdef", ALICE, a, &got,
                                 f->err, sizeof(f->err)),
                     0);
    assert_string_equal(got->sql, r.sql);
    assert_string_equal(got->agreement, "DSA-1");
    assert_string_equal(got->purpose, "program evaluation");
    assert_true(got->allow_partial);
    gw_held_close(h);
    fq_arena_free(a);
}

static void
test_only_the_analyst(void **state)
{
    struct fixture *f = *state;
    Fedq__V1__QueryRequest r = request("SELECT COUNT(*) FROM dol.wages");
    Fedq__V1__QueryRequest *got = NULL;
    struct gw_held *h = NULL;
    struct fq_arena *a = fq_arena_new(4096);

    assert_int_equal(gw_held_open(&f->cfg, &h, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        gw_held_put(h, "q-00000000000000aa", ALICE, &r, f->err, sizeof(f->err)),
        0);
    /* Bob cannot tell Alice's query from one that does not exist. */
    assert_int_equal(gw_held_get(h, "q-00000000000000aa", BOB, a, &got, f->err,
                                 sizeof(f->err)),
                     FQ_ENOENT);
    assert_string_equal(f->err,
                        "no query q-00000000000000aa of yours is held for "
                        "review");
    assert_int_equal(gw_held_get(h, "q-00000000000000bb", ALICE, a, &got,
                                 f->err, sizeof(f->err)),
                     FQ_ENOENT);
    assert_null(got);
    /* Putting the same id again (GetResult still pending) keeps one row. */
    gw_held_set_state(h, "q-00000000000000aa", "released");
    assert_int_equal(
        gw_held_put(h, "q-00000000000000aa", ALICE, &r, f->err, sizeof(f->err)),
        0);
    assert_int_equal(gw_held_get(h, "q-00000000000000aa", ALICE, a, &got,
                                 f->err, sizeof(f->err)),
                     0);
    gw_held_close(h);
    fq_arena_free(a);
}

static void
test_cap_per_analyst(void **state)
{
    struct fixture *f = *state;
    Fedq__V1__QueryRequest r = request("SELECT COUNT(*) FROM dol.wages");
    struct gw_held *h = NULL;
    char id[32];
    int rc = 0, n = 0;

    assert_int_equal(gw_held_open(&f->cfg, &h, f->err, sizeof(f->err)), 0);
    while (rc == 0 && n < 2000) {
        snprintf(id, sizeof(id), "q-%016x", n++);
        rc = gw_held_put(h, id, ALICE, &r, f->err, sizeof(f->err));
    }
    assert_int_equal(rc, FQ_ETOOBIG);
    assert_int_equal(n - 1, 1000);
    /* Another analyst is not held up by Alice's backlog. */
    assert_int_equal(
        gw_held_put(h, "q-ffffffffffffffff", BOB, &r, f->err, sizeof(f->err)),
        0);
    /* A decided query no longer counts. */
    gw_held_set_state(h, "q-0000000000000000", "released");
    snprintf(id, sizeof(id), "q-%016x", 5000);
    assert_int_equal(gw_held_put(h, id, ALICE, &r, f->err, sizeof(f->err)), 0);
    gw_held_close(h);
}

static void
test_unwritable_dir(void **state)
{
    struct fixture *f = *state;
    struct gw_held *h = NULL;
    char file[128];
    FILE *fp;

    /* state_dir names a regular file: a clear error, nothing opened */
    snprintf(file, sizeof(file), "%s/plain", f->dir);
    assert_non_null(fp = fopen(file, "w"));
    fclose(fp);
    f->cfg.state_dir = file;
    assert_int_not_equal(gw_held_open(&f->cfg, &h, f->err, sizeof(f->err)), 0);
    assert_null(h);
    assert_non_null(strstr(f->err, "plain"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_the_analyst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_per_analyst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
