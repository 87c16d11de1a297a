/*
 * Unit tests for the region allocator (common/src/arena.c): zeroed and
 * 16-byte aligned memory, the cap on the sum of rounded sizes, large blocks
 * in chunks of their own, the string helpers, and the protobuf-c allocator
 * with a real generated message. Runs under ASan (which fills fresh heap
 * memory with a non-zero pattern, so missing zeroing shows), so a leak or
 * an overrun fails the test.
 */
#include "fq/compat.h"
#include "fq/arena.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <protobuf-c/protobuf-c.h>

#include "fedq/v1/catalog.pb-c.h"

static void
assert_aligned(const void *p)
{
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
}

static void
assert_zeroed(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        if (c[i] != 0)
            fail_msg("byte %zu of %zu is 0x%02x, not zero", i, n, c[i]);
    }
}

/* ---- alloc --------------------------------------------------------------- */

static void
test_new_free(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(1024);
    assert_non_null(a);
    assert_int_equal(fq_arena_used(a), 0);
    fq_arena_free(a);
    fq_arena_free(NULL);
}

static void
test_alloc_zeroed_aligned_rounded(void **state)
{
    static const size_t sizes[] = {1, 2, 15, 16, 17, 31, 32, 33, 100, 1000};
    static const size_t rounded[] = {16, 16, 16, 16, 32, 32, 32, 48, 112, 1008};
    unsigned char *ptrs[FQ_ARRAY_LEN(sizes)];
    size_t used = 0;

    (void)state;
    struct fq_arena *a = fq_arena_new(1 << 20);
    assert_non_null(a);
    for (size_t i = 0; i < FQ_ARRAY_LEN(sizes); i++) {
        ptrs[i] = fq_arena_alloc(a, sizes[i]);
        assert_aligned(ptrs[i]);
        assert_zeroed(ptrs[i], sizes[i]);
        used += rounded[i];
        assert_int_equal(fq_arena_used(a), used);
        /* Fill it so an overlap with a later block would show. */
        memset(ptrs[i], (int)(i + 1), sizes[i]);
    }
    for (size_t i = 0; i < FQ_ARRAY_LEN(sizes); i++) {
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(ptrs[i][j], i + 1);
    }
    fq_arena_free(a);
}

/* Many blocks across several chunks: all distinct, zeroed, aligned. */
static void
test_alloc_many_chunks(void **state)
{
    unsigned char *ptrs[2000];

    (void)state;
    struct fq_arena *a = fq_arena_new(1 << 20);
    for (size_t i = 0; i < FQ_ARRAY_LEN(ptrs); i++) {
        size_t n = i % 50 + 1;
        ptrs[i] = fq_arena_alloc(a, n);
        assert_aligned(ptrs[i]);
        assert_zeroed(ptrs[i], n);
        memset(ptrs[i], (int)(i % 251), n);
    }
    for (size_t i = 0; i < FQ_ARRAY_LEN(ptrs); i++) {
        size_t n = i % 50 + 1;
        for (size_t j = 0; j < n; j++)
            assert_int_equal(ptrs[i][j], i % 251);
    }
    fq_arena_free(a);
}

/* ---- the cap ------------------------------------------------------------- */

static void
test_cap_exact(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(64);
    for (int i = 0; i < 4; i++)
        assert_non_null(fq_arena_alloc(a, 16));
    assert_int_equal(fq_arena_used(a), 64);
    assert_null(fq_arena_alloc(a, 1));
    assert_int_equal(fq_arena_used(a), 64);
    fq_arena_free(a);
}

static void
test_cap_counts_rounded_sizes(void **state)
{
    (void)state;
    /* 90 bytes round to 96: the next 16 do not fit in 100. */
    struct fq_arena *a = fq_arena_new(100);
    assert_non_null(fq_arena_alloc(a, 90));
    assert_int_equal(fq_arena_used(a), 96);
    assert_null(fq_arena_alloc(a, 1));
    assert_int_equal(fq_arena_used(a), 96);
    fq_arena_free(a);

    /* 100 bytes round to 112 > 100. */
    a = fq_arena_new(100);
    assert_null(fq_arena_alloc(a, 100));
    assert_int_equal(fq_arena_used(a), 0);
    /* A failed request leaves room for a smaller one. */
    assert_non_null(fq_arena_alloc(a, 96));
    assert_int_equal(fq_arena_used(a), 96);
    fq_arena_free(a);

    /* Large blocks count against the cap too: 10001 rounds to 10016. */
    a = fq_arena_new(10000);
    assert_null(fq_arena_alloc(a, 10001));
    assert_int_equal(fq_arena_used(a), 0);
    assert_non_null(fq_arena_alloc(a, 9985)); /* rounds to 10000 */
    assert_int_equal(fq_arena_used(a), 10000);
    fq_arena_free(a);
}

static void
test_cap_large_blocks(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(10016);
    assert_non_null(fq_arena_alloc(a, 16));
    assert_null(fq_arena_alloc(a, 10001)); /* 10016 > 10000 left */
    assert_int_equal(fq_arena_used(a), 16);
    assert_non_null(fq_arena_alloc(a, 10000));
    assert_int_equal(fq_arena_used(a), 10016);
    assert_null(fq_arena_alloc(a, 1));
    fq_arena_free(a);
}

static void
test_alloc_huge_fails(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(SIZE_MAX);
    assert_null(fq_arena_alloc(a, SIZE_MAX));
    assert_null(fq_arena_alloc(a, SIZE_MAX - 15));
    assert_int_equal(fq_arena_used(a), 0);
    assert_non_null(fq_arena_alloc(a, 1));
    assert_int_equal(fq_arena_used(a), 16);
    fq_arena_free(a);
}

/* ---- large blocks -------------------------------------------------------- */

/* A large block that does not fit the current chunk gets its own, and the
 * current chunk goes on serving small requests right after the last one. */
static void
test_large_keeps_small_chunk(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(1 << 20);
    unsigned char *s1 = fq_arena_alloc(a, 16);
    assert_aligned(s1);
    unsigned char *big = fq_arena_alloc(a, 10000);
    assert_aligned(big);
    assert_zeroed(big, 10000);
    memset(big, 0xbb, 10000);
    unsigned char *s2 = fq_arena_alloc(a, 16);
    assert_ptr_equal(s2, s1 + 16);
    assert_zeroed(s2, 16);
    assert_int_equal(fq_arena_used(a), 16 + 10000 + 16);
    /* A second large block, and the small chunk still continues. */
    unsigned char *big2 = fq_arena_alloc(a, 3000);
    assert_aligned(big2);
    memset(big2, 0xcc, 3000);
    unsigned char *s3 = fq_arena_alloc(a, 32);
    assert_aligned(s3);
    assert_zeroed(s3, 32);
    assert_int_equal(fq_arena_used(a), 16 + 10000 + 16 + 3008 + 32);
    for (size_t i = 0; i < 10000; i++)
        assert_int_equal(big[i], 0xbb);
    for (size_t i = 0; i < 3000; i++)
        assert_int_equal(big2[i], 0xcc);
    fq_arena_free(a);
}

/* A large block as the very first allocation. */
static void
test_large_first(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(1 << 20);
    unsigned char *big = fq_arena_alloc(a, 50000);
    assert_aligned(big);
    assert_zeroed(big, 50000);
    memset(big, 0x11, 50000);
    unsigned char *s1 = fq_arena_alloc(a, 8);
    unsigned char *s2 = fq_arena_alloc(a, 8);
    assert_aligned(s1);
    assert_aligned(s2);
    assert_ptr_equal(s2, s1 + 16);
    assert_zeroed(s1, 8);
    unsigned char *big2 = fq_arena_alloc(a, 60000);
    assert_aligned(big2);
    unsigned char *s3 = fq_arena_alloc(a, 8);
    assert_ptr_equal(s3, s2 + 16);
    assert_int_equal(fq_arena_used(a), 50000 + 16 + 16 + 60000 + 16);
    for (size_t i = 0; i < 50000; i++)
        assert_int_equal(big[i], 0x11);
    fq_arena_free(a);
}

/* ---- strings ------------------------------------------------------------- */

static void
test_strdup(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(1024);
    const char *src = "hello";
    char *s = fq_arena_strdup(a, src);
    assert_non_null(s);
    assert_ptr_not_equal(s, src);
    assert_string_equal(s, "hello");
    assert_aligned(s);
    assert_int_equal(fq_arena_used(a), 16);
    char *e = fq_arena_strdup(a, "");
    assert_string_equal(e, "");
    assert_int_equal(fq_arena_used(a), 32);
    /* 16 characters need 17 bytes: two slots. */
    char *l = fq_arena_strdup(a, "0123456789abcdef");
    assert_string_equal(l, "0123456789abcdef");
    assert_int_equal(fq_arena_used(a), 64);
    fq_arena_free(a);
}

static void
test_strndup(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(1024);
    char *s = fq_arena_strndup(a, "hello world", 5);
    assert_string_equal(s, "hello");
    /* A byte range: embedded NULs are copied, a NUL is added. */
    char *b = fq_arena_strndup(a, "a\0b", 3);
    assert_memory_equal(b, "a\0b\0", 4);
    /* Not NUL-terminated input is fine. */
    static const char raw[4] = {'w', 'x', 'y', 'z'};
    char *r = fq_arena_strndup(a, raw, sizeof(raw));
    assert_string_equal(r, "wxyz");
    char *z = fq_arena_strndup(a, raw, 0);
    assert_string_equal(z, "");
    assert_int_equal(fq_arena_used(a), 64);
    fq_arena_free(a);
}

static void
test_printf(void **state)
{
    char big[4001];

    (void)state;
    struct fq_arena *a = fq_arena_new(1 << 16);
    char *s = fq_arena_printf(a, "%s-%d-%c", "x", 42, 'z');
    assert_string_equal(s, "x-42-z");
    assert_int_equal(fq_arena_used(a), 16);
    char *e = fq_arena_printf(a, "%s", "");
    assert_string_equal(e, "");
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *l = fq_arena_printf(a, "<%s>", big);
    assert_int_equal(strlen(l), 4002);
    assert_int_equal(l[0], '<');
    assert_int_equal(l[4001], '>');
    assert_memory_equal(l + 1, big, 4000);
    assert_int_equal(fq_arena_used(a), 16 + 16 + 4016);
    fq_arena_free(a);
}

static void
test_strings_over_cap(void **state)
{
    (void)state;
    struct fq_arena *a = fq_arena_new(32);
    assert_non_null(fq_arena_strdup(a, "0123456789abcde")); /* 16 bytes */
    assert_null(fq_arena_strdup(a, "0123456789abcdef"));    /* 17 -> 32 */
    assert_null(fq_arena_strndup(a, "0123456789abcdefXYZ", 16));
    assert_null(fq_arena_printf(a, "%s%d", "0123456789abcde", 1));
    assert_int_equal(fq_arena_used(a), 16);
    assert_string_equal(fq_arena_printf(a, "%d", 12345), "12345");
    assert_int_equal(fq_arena_used(a), 32);
    assert_null(fq_arena_strdup(a, ""));
    fq_arena_free(a);
}

/* ---- protobuf-c allocator ------------------------------------------------ */

/* Packs a Column with every field set; *ret_len gets the size. */
static uint8_t *
pack_column(size_t *ret_len)
{
    Fedq__V1__Column col = FEDQ__V1__COLUMN__INIT;
    Fedq__V1__Domain dom = FEDQ__V1__DOMAIN__INIT;
    Fedq__V1__CodeList codes = FEDQ__V1__CODE_LIST__INIT;
    Fedq__V1__IntRange bounds = FEDQ__V1__INT_RANGE__INIT;
    char *code_values[] = {"01", "02", "99"};

    col.name = "county";
    col.role = FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION;
    col.type = FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT;
    col.description = "county of residence";
    codes.n_codes = FQ_ARRAY_LEN(code_values);
    codes.codes = code_values;
    dom.kind_case = FEDQ__V1__DOMAIN__KIND_CODES;
    dom.codes = &codes;
    col.domain = &dom;
    col.unit = "persons";
    bounds.min = -5;
    bounds.max = INT64_C(1) << 40;
    col.bounds = &bounds;

    size_t len = fedq__v1__column__get_packed_size(&col);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(fedq__v1__column__pack(&col, buf), len);
    *ret_len = len;
    return buf;
}

static void
test_pb_allocator(void **state)
{
    size_t len;

    (void)state;
    uint8_t *wire = pack_column(&len);
    struct fq_arena *a = fq_arena_new(1 << 16);
    ProtobufCAllocator *pa = fq_arena_pb_allocator(a);
    assert_non_null(pa);
    assert_non_null(pa->alloc);
    assert_non_null(pa->free);
    assert_ptr_equal(pa->allocator_data, a);
    assert_ptr_equal(fq_arena_pb_allocator(a), pa);

    /* The allocator itself draws from the arena. */
    void *p = pa->alloc(pa->allocator_data, 40);
    assert_aligned(p);
    assert_zeroed(p, 40);
    assert_int_equal(fq_arena_used(a), 48);
    pa->free(pa->allocator_data, p); /* a no-op */
    assert_int_equal(fq_arena_used(a), 48);

    Fedq__V1__Column *col = fedq__v1__column__unpack(pa, len, wire);
    assert_non_null(col);
    assert_true(fq_arena_used(a) > 48);
    assert_string_equal(col->name, "county");
    assert_int_equal(col->role, FEDQ__V1__COLUMN_ROLE__COLUMN_ROLE_DIMENSION);
    assert_int_equal(col->type, FEDQ__V1__VALUE_TYPE__VALUE_TYPE_TEXT);
    assert_string_equal(col->description, "county of residence");
    assert_string_equal(col->unit, "persons");
    assert_non_null(col->domain);
    assert_int_equal(col->domain->kind_case, FEDQ__V1__DOMAIN__KIND_CODES);
    assert_int_equal(col->domain->codes->n_codes, 3);
    assert_string_equal(col->domain->codes->codes[0], "01");
    assert_string_equal(col->domain->codes->codes[1], "02");
    assert_string_equal(col->domain->codes->codes[2], "99");
    assert_non_null(col->bounds);
    assert_int_equal(col->bounds->min, -5);
    assert_int_equal(col->bounds->max, INT64_C(1) << 40);

    /* Re-packing the arena-backed message gives the same bytes. */
    uint8_t *again = malloc(len);
    assert_int_equal(fedq__v1__column__get_packed_size(col), len);
    assert_int_equal(fedq__v1__column__pack(col, again), len);
    assert_memory_equal(again, wire, len);
    free(again);

    /* free_unpacked through the arena allocator is harmless. */
    fedq__v1__column__free_unpacked(col, pa);
    free(wire);
    fq_arena_free(a); /* frees the message: ASan would report a leak */
}

/* Unpacking into an arena too small for the message fails cleanly. */
static void
test_pb_allocator_over_cap(void **state)
{
    size_t len;

    (void)state;
    uint8_t *wire = pack_column(&len);
    struct fq_arena *a = fq_arena_new(64);
    Fedq__V1__Column *col =
        fedq__v1__column__unpack(fq_arena_pb_allocator(a), len, wire);
    assert_null(col);
    assert_true(fq_arena_used(a) <= 64);
    fq_arena_free(a);
    free(wire);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_alloc_zeroed_aligned_rounded),
        cmocka_unit_test(test_alloc_many_chunks),
        cmocka_unit_test(test_cap_exact),
        cmocka_unit_test(test_cap_counts_rounded_sizes),
        cmocka_unit_test(test_cap_large_blocks),
        cmocka_unit_test(test_alloc_huge_fails),
        cmocka_unit_test(test_large_keeps_small_chunk),
        cmocka_unit_test(test_large_first),
        cmocka_unit_test(test_strdup),
        cmocka_unit_test(test_strndup),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_strings_over_cap),
        cmocka_unit_test(test_pb_allocator),
        cmocka_unit_test(test_pb_allocator_over_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
