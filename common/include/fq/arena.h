/*
 * Region allocator for request-scoped and config-scoped memory (after
 * nginx pools). Everything allocated from an arena is freed at once by
 * fq_arena_free; individual frees are no-ops. An arena has a hard cap on
 * the bytes it hands out, so memory fed by the network is bounded.
 *
 * Thread safety: none; an arena belongs to one call or one config.
 */
#ifndef FQ_ARENA_H
#define FQ_ARENA_H

#include "fq/compat.h"

struct fq_arena;
struct ProtobufCAllocator;

/* New arena capped at max bytes; NULL on allocation failure. */
struct fq_arena *fq_arena_new(size_t max);
/* Frees the arena and everything allocated from it; NULL is a no-op. */
void fq_arena_free(struct fq_arena *a);

/* Zeroed, 16-byte aligned memory, or NULL when out of memory or over cap. */
void *fq_arena_alloc(struct fq_arena *a, size_t size);
/* Copies of strings and byte ranges (NUL-terminated); NULL on failure. */
char *fq_arena_strdup(struct fq_arena *a, const char *s);
char *fq_arena_strndup(struct fq_arena *a, const char *s, size_t len);
char *fq_arena_printf(struct fq_arena *a, const char *fmt, ...) FQ_PRINTF(2, 3);
/* Bytes handed out so far. */
size_t fq_arena_used(const struct fq_arena *a);

/*
 * A protobuf-c allocator that draws from the arena, so unpacked messages are
 * freed with the arena (free_unpacked is then unnecessary). The returned
 * struct lives inside the arena.
 */
struct ProtobufCAllocator *fq_arena_pb_allocator(struct fq_arena *a);

#endif
