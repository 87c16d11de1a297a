/*
 * Fuzz target for the agent's CSV reader (agent/source_csv.c): arbitrary
 * bytes are read as a CSV file of a small fixed dataset, every row to the
 * end, exactly as an extract build reads it. Beyond not crashing or
 * reading outside the input, every value must be what its column's type
 * allows (an integer, a finite number, text without NUL, or NULL), and
 * every refusal must say on which line.
 */
#include "fq/compat.h"
#include "extract.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ag_column_conf columns[] = {
    {.name = (char *)"person_id",
     .role = AG_ROLE_IDENTIFIER,
     .type = AG_TYPE_TEXT},
    {.name = (char *)"town", .role = AG_ROLE_DIMENSION, .type = AG_TYPE_TEXT},
    {.name = (char *)"year",
     .role = AG_ROLE_DIMENSION,
     .type = AG_TYPE_INTEGER},
    {.name = (char *)"q", .role = AG_ROLE_DIMENSION, .type = AG_TYPE_QUARTER},
    {.name = (char *)"rate", .role = AG_ROLE_MEASURE, .type = AG_TYPE_DECIMAL},
};

static const struct ag_dataset_conf dataset = {
    .name = (char *)"fz",
    .source = {.csv = (char *)"fz.csv"},
    .columns = columns,
    .n_columns = FQ_ARRAY_LEN(columns),
    .contributor = (char *)"person_id",
};

/* The value fits its column's type, and text lies in readable memory. */
static void
check_value(const struct ag_column_conf *c, const struct ag_value *v)
{
    if (v->kind == AG_V_NULL)
        return;
    switch (c->type) {
    case AG_TYPE_INTEGER:
        if (v->kind != AG_V_INT)
            abort();
        break;
    case AG_TYPE_DECIMAL:
        if (v->kind != AG_V_REAL || !isfinite(v->d))
            abort();
        break;
    default:
        if (v->kind != AG_V_TEXT || memchr(v->s, '\0', v->len))
            abort();
        break;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ag_row_source src;
    struct ag_value vals[FQ_ARRAY_LEN(columns)];
    char err[512] = "";
    int rc;

    rc = ag_source_csv_buffer(&dataset, (const char *)data, size, ',', &src,
                              err, sizeof(err));
    if (rc == 0) {
        while ((rc = src.next(src.self, vals, err, sizeof(err))) == 1) {
            for (size_t i = 0; i < FQ_ARRAY_LEN(columns); i++)
                check_value(&columns[i], &vals[i]);
        }
        src.close(src.self);
    }
    if (rc < 0 && !strstr(err, ": line "))
        abort();
    return 0;
}
