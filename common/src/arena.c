/*
 * Region allocator: a list of chunks, bump allocation inside each. Large
 * requests get a chunk of their own. The cap counts bytes handed out, not
 * chunk slack, so it is exactly what callers asked for.
 */
#include "fq/compat.h"
#include "fq/arena.h"

#include <protobuf-c/protobuf-c.h>

#define ARENA_CHUNK 8192
#define ARENA_ALIGN 16

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char mem[];
};

struct fq_arena {
    struct arena_chunk *head;
    size_t max;
    size_t used;
    ProtobufCAllocator pb;
};

struct fq_arena *
fq_arena_new(size_t max)
{
    struct fq_arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->max = max;
    return a;
}

void
fq_arena_free(struct fq_arena *a)
{
    if (!a)
        return;
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

static struct arena_chunk *
arena_add_chunk(struct fq_arena *a, size_t size)
{
    struct arena_chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->size = size;
    c->used = 0;
    c->next = a->head;
    a->head = c;
    return c;
}

void *
fq_arena_alloc(struct fq_arena *a, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded > a->max - a->used || a->used > a->max)
        return NULL;

    struct arena_chunk *c = a->head;
    if (!c || c->size - c->used < rounded) {
        size_t csize = rounded > ARENA_CHUNK / 4 ? rounded : ARENA_CHUNK;
        if (rounded > ARENA_CHUNK / 4 && c) {
            /* Big block: own chunk, placed behind the current one so the
             * current chunk keeps serving small requests. */
            struct arena_chunk *big = malloc(sizeof(*big) + csize);
            if (!big)
                return NULL;
            big->size = csize;
            big->used = rounded;
            big->next = c->next;
            c->next = big;
            a->used += rounded;
            memset(big->mem, 0, rounded);
            return big->mem;
        }
        c = arena_add_chunk(a, csize);
        if (!c)
            return NULL;
    }
    void *p = c->mem + c->used;
    c->used += rounded;
    a->used += rounded;
    memset(p, 0, rounded);
    return p;
}

char *
fq_arena_strndup(struct fq_arena *a, const char *s, size_t len)
{
    char *p = fq_arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *
fq_arena_strdup(struct fq_arena *a, const char *s)
{
    return fq_arena_strndup(a, s, strlen(s));
}

char *
fq_arena_printf(struct fq_arena *a, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = fq_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t
fq_arena_used(const struct fq_arena *a)
{
    return a->used;
}

static void *
arena_pb_alloc(void *data, size_t size)
{
    return fq_arena_alloc(data, size);
}

static void
arena_pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

struct ProtobufCAllocator *
fq_arena_pb_allocator(struct fq_arena *a)
{
    a->pb.alloc = arena_pb_alloc;
    a->pb.free = arena_pb_free;
    a->pb.allocator_data = a;
    return &a->pb;
}
