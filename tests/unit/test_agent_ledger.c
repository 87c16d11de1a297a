/*
 * Unit tests for the agent's differencing ledger (agent/ledger.c): the
 * pairs it reports are exactly those a brute-force comparison of the
 * record sets finds (the prefilter never hides one), within scope and
 * class, between candidates of one group only; cells of another data
 * vintage are weighed by persons; records survive reopening
 * (a restart); a cell id is recorded once; the memory cap refuses.
 */
#include "fq/compat.h"
#include "fq/arena.h"
#include "fq/error.h"
#include "ledger.h"

#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

struct fx {
    char dir[64];
    char err[512];
    struct fq_arena *a;
};

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/fq-ledger-XXXXXX");
    if (!mkdtemp(f->dir) || !(f->a = fq_arena_new(64 << 20)))
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    fq_arena_free(f->a);
    free(f);
    return 0;
}

/* A random cell: persons drawn from [0, universe) (tags spread by a
 * multiplier, as keyed tags are), each with 1 to 3 of its records, some
 * records dropped at random to make near-equal sets. */
static struct ag_cellset
random_set(uint64_t *s, uint64_t lo, uint64_t hi, int drop_pct)
{
    struct ag_cellset c = {malloc((hi - lo) * 3 * sizeof(struct ag_member)), 0,
                           0};
    assert_non_null(c.m);
    for (uint64_t p = lo; p < hi; p++) {
        for (uint64_t r = 0; r < 1 + p % 3; r++) {
            if ((int)(rnd(s) % 100) < drop_pct)
                continue;
            c.m[c.n++] =
                (struct ag_member){p * 0x9E3779B97F4A7C15ULL, p * 4 + r};
        }
    }
    ag_cellset_finish(&c);
    return c;
}

/* Persons with a record in a but not b: brute force over members. */
static int64_t
only_in(const struct ag_cellset *a, const struct ag_cellset *b)
{
    int64_t n = 0;
    uint64_t last = 0;
    bool any = false;
    for (size_t i = 0; i < a->n; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n && !found; j++)
            found = a->m[i].person == b->m[j].person &&
                    a->m[i].record == b->m[j].record;
        if (!found && (!any || last != a->m[i].person)) {
            n++;
            any = true;
            last = a->m[i].person;
        }
    }
    return n;
}

/* Both differences below k (and not both 0 when one agency answers). */
static bool
must_report(int64_t d1, int64_t d2, int64_t k, bool single)
{
    if (d1 >= k || d2 >= k)
        return false;
    return !single || d1 > 0 || d2 > 0;
}

static const struct ag_ledger_part part_dol = {"dol", 0, "v1"};

/* N of a "q-rel/N" id. */
static int
ref_index(const char *ref)
{
    return (int)strtol(strchr(ref, '/') + 1, NULL, 10);
}

/* Random released cells, random candidates: the reported pairs are the
 * brute force's, with its differences. */
static void
test_pairs_match_brute_force(void **state)
{
    struct fx *f = *state;
    uint64_t seed = 0xC0FFEE;
    struct ag_ledger *l;
    struct ag_ledger_scope scope = {"wages", "v1"};
    enum { N_REL = 30, N_CAND = 12 };
    struct ag_cellset rel[N_REL], cand[N_CAND];
    const char *classes[N_CAND];
    size_t groups[N_CAND];
    int reported = 0, expected = 0, safe_skipped = 0;

    assert_int_equal(
        ag_ledger_open(f->dir, "dol", 0, &l, f->err, sizeof(f->err)), 0);
    for (int i = 0; i < N_REL; i++) {
        /* overlapping windows of persons: many near-subsets */
        uint64_t lo = rnd(&seed) % 60, hi = lo + 5 + rnd(&seed) % 60;
        rel[i] = random_set(&seed, lo, hi, (int)(rnd(&seed) % 10));
        char ref[32];
        snprintf(ref, sizeof(ref), "q-rel/%d", i);
        const char *refs[] = {ref};
        const char *cls[] = {"records"};
        const struct ag_ledger_part *parts[] = {&part_dol};
        size_t np[] = {1};
        assert_int_equal(ag_ledger_record(l, &scope, cls, &rel[i], refs, parts,
                                          np, NULL, 1, f->err, sizeof(f->err)),
                         0);
    }
    for (int i = 0; i < N_CAND; i++) {
        uint64_t lo = rnd(&seed) % 60, hi = lo + 5 + rnd(&seed) % 60;
        cand[i] = random_set(&seed, lo, hi, (int)(rnd(&seed) % 10));
        classes[i] = "records";
        groups[i] = (size_t)i % 3;
    }
    for (int64_t k = 2; k <= 16; k += 7) {
        for (int single = 0; single < 2; single++) {
            struct ag_ledger_pair *pairs;
            size_t n;
            assert_int_equal(ag_ledger_check(l, &scope, classes, groups, cand,
                                             N_CAND, k, single, f->a, &pairs,
                                             &n, f->err, sizeof(f->err)),
                             0);
            /* every pair the brute force wants, and nothing else */
            for (int c = 0; c < N_CAND; c++) {
                for (int o = 0; o < N_REL + c; o++) {
                    const struct ag_cellset *other =
                        o < N_REL ? &rel[o] : &cand[o - N_REL];
                    if (o >= N_REL && groups[o - N_REL] != groups[c])
                        continue;
                    int64_t d1 = only_in(&cand[c], other);
                    int64_t d2 = only_in(other, &cand[c]);
                    bool want = must_report(d1, d2, k, single);
                    const struct ag_ledger_pair *got = NULL;
                    for (size_t p = 0; p < n && !got; p++) {
                        bool same =
                            pairs[p].cell == (size_t)c &&
                            (o < N_REL
                                 ? pairs[p].released &&
                                       ref_index(pairs[p].released) == o
                                 : !pairs[p].released &&
                                       pairs[p].other == (size_t)(o - N_REL));
                        got = same ? &pairs[p] : NULL;
                    }
                    expected += want;
                    safe_skipped += !want;
                    if (want) {
                        assert_non_null(got);
                        assert_int_equal(got->only_here, d1);
                        assert_int_equal(got->only_there, d2);
                        if (o < N_REL) {
                            assert_int_equal(got->n_parts, 1);
                            assert_string_equal(got->parts[0].agency, "dol");
                        }
                        reported++;
                    } else {
                        assert_null(got);
                    }
                }
            }
        }
    }
    assert_true(expected > 20 && safe_skipped > 100);
    assert_int_equal(reported, expected);
    for (int i = 0; i < N_REL; i++)
        free(rel[i].m);
    for (int i = 0; i < N_CAND; i++)
        free(cand[i].m);
    ag_ledger_close(l);
}

/* Two cells of the same persons but other records differ by records: a
 * record-level ledger sees what a person-level one would not. */
static void
test_records_not_persons(void **state)
{
    struct fx *f = *state;
    struct ag_ledger *l;
    struct ag_ledger_scope scope = {"wages", "v1"};
    struct ag_member q1[40], q12[44];
    size_t n1 = 0, n12 = 0;
    const char *refs[] = {"q-a/1"}, *cls[] = {"values:wages"};
    const struct ag_ledger_part *parts[] = {&part_dol};
    size_t np[] = {1}, groups[] = {0}, n;
    struct ag_ledger_pair *pairs;

    for (uint64_t p = 0; p < 40; p++) {
        q1[n1++] = (struct ag_member){p + 1, p * 10};
        q12[n12++] = (struct ag_member){p + 1, p * 10};
        if (p < 4) /* four persons have a second quarter */
            q12[n12++] = (struct ag_member){p + 1, p * 10 + 1};
    }
    struct ag_cellset a = {q1, n1, 0}, b = {q12, n12, 0};
    ag_cellset_finish(&a);
    ag_cellset_finish(&b);
    assert_int_equal(a.persons, b.persons);
    assert_int_equal(
        ag_ledger_open(f->dir, "dol", 0, &l, f->err, sizeof(f->err)), 0);
    const struct ag_ledger_value value = {(const uint8_t *)"v=42", 4};
    assert_int_equal(ag_ledger_record(l, &scope, cls, &a, refs, parts, np,
                                      &value, 1, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(ag_ledger_check(l, &scope, cls, groups, &b, 1, 11, true,
                                     f->a, &pairs, &n, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(pairs[0].value_len, 4); /* the published value, back */
    assert_memory_equal(pairs[0].value, "v=42", 4);
    assert_int_equal(pairs[0].only_here, 4); /* the second quarters' */
    assert_int_equal(pairs[0].only_there, 0);
    /* another class, another vintage: nothing to compare with */
    const char *other_cls[] = {"records"};
    assert_int_equal(ag_ledger_check(l, &scope, other_cls, groups, &b, 1, 11,
                                     true, f->a, &pairs, &n, f->err,
                                     sizeof(f->err)),
                     0);
    assert_int_equal(n, 0);
    /* another vintage: its records are others, its persons the same */
    struct ag_ledger_scope v2 = {"wages", "v2"};
    assert_int_equal(ag_ledger_check(l, &v2, cls, groups, &b, 1, 11, true, f->a,
                                     &pairs, &n, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(n, 0);
    /* a refresh that adds three persons (new record ids for all) and drops
     * one: weighed by persons against the earlier vintage */
    struct ag_member r[43];
    for (uint64_t p = 0; p < 43; p++)
        r[p] = (struct ag_member){p + 2, 1000 + p};
    struct ag_cellset c = {r, 43, 0};
    ag_cellset_finish(&c);
    assert_int_equal(ag_ledger_check(l, &v2, cls, groups, &c, 1, 11, true, f->a,
                                     &pairs, &n, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(pairs[0].released, "q-a/1");
    assert_int_equal(pairs[0].only_here, 4);  /* persons 41..44 */
    assert_int_equal(pairs[0].only_there, 1); /* person 1 */
    ag_ledger_close(l);
}

/* What was recorded is there after reopening; a cell id twice is one
 * record; the memory cap refuses more. */
static void
test_persist_and_cap(void **state)
{
    const struct ag_ledger_value pv = {(const uint8_t *)"x=7", 3};
    struct fx *f = *state;
    uint64_t seed = 7;
    struct ag_ledger *l;
    struct ag_ledger_scope scope = {"enrollment", "live"};
    struct ag_cellset a = random_set(&seed, 0, 50, 0);
    struct ag_cellset b = random_set(&seed, 0, 50, 0);
    const char *refs[] = {"q-1/3"}, *cls[] = {"records"};
    const struct ag_ledger_part two[] = {{"dss", 50, "live"}, {"dol", 7, "v9"}};
    const struct ag_ledger_part *parts[] = {two};
    size_t np[] = {2}, groups[] = {0}, n, cells, members;
    struct ag_ledger_pair *pairs;

    b.n -= 2; /* one or two persons fewer */
    ag_cellset_finish(&b);
    assert_int_equal(
        ag_ledger_open(f->dir, "dss", 0, &l, f->err, sizeof(f->err)), 0);
    for (int twice = 0; twice < 2; twice++)
        assert_int_equal(ag_ledger_record(l, &scope, cls, &a, refs, parts, np,
                                          &pv, 1, f->err, sizeof(f->err)),
                         0);
    ag_ledger_stats(l, &scope, &cells, &members);
    assert_int_equal(cells, 1);
    assert_int_equal(members, a.n);
    ag_ledger_close(l);

    assert_int_equal(
        ag_ledger_open(f->dir, "dss", 0, &l, f->err, sizeof(f->err)), 0);
    assert_int_equal(ag_ledger_check(l, &scope, cls, groups, &b, 1, 11, true,
                                     f->a, &pairs, &n, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(pairs[0].released, "q-1/3");
    assert_int_equal(pairs[0].value_len, 3); /* kept on disk */
    assert_memory_equal(pairs[0].value, "x=7", 3);
    assert_int_equal(pairs[0].only_here, 0);
    assert_true(pairs[0].only_there >= 1 && pairs[0].only_there <= 2);
    assert_int_equal(pairs[0].n_parts, 2);
    assert_string_equal(pairs[0].parts[1].agency, "dol");
    assert_int_equal(pairs[0].parts[1].persons, 7);
    assert_string_equal(pairs[0].parts[1].vintage, "v9");
    ag_ledger_close(l);

    /* a cap below one cell's members: reloading it is refused */
    assert_int_equal(
        ag_ledger_open(f->dir, "dss", 16, &l, f->err, sizeof(f->err)), 0);
    assert_int_equal(ag_ledger_check(l, &scope, cls, groups, &b, 1, 11, true,
                                     f->a, &pairs, &n, f->err, sizeof(f->err)),
                     FQ_ETOOBIG);
    assert_non_null(strstr(f->err, "full"));
    ag_ledger_close(l);
    free(a.m);
    free(b.m);
}

/* The file is the agency's alone. */
static void
test_private_file(void **state)
{
    struct fx *f = *state;
    struct ag_ledger *l;
    char path[128];
    struct stat st;

    assert_int_equal(
        ag_ledger_open(f->dir, "ccs", 0, &l, f->err, sizeof(f->err)), 0);
    snprintf(path, sizeof(path), "%s/ledger-ccs.sqlite", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    ag_ledger_close(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pairs_match_brute_force, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_records_not_persons, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_persist_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
