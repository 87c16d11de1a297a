/*
 * The extract store: the current extract of every dataset served by the
 * extract engine, and their refresh. At start each dataset's newest
 * extract file is mapped if it matches the configuration, else built from
 * the source; a refresh (scheduled by the dataset's `refresh`, or asked by
 * the steward through the control socket) builds a new file and swaps it
 * in atomically: a query holds the extract it started with.
 */
#ifndef AG_STORE_H
#define AG_STORE_H

#include "fq/compat.h"

#include "agent.h"

struct ag_extract;
struct ag_store;

/* Opens the store for cfg's extract datasets (maps or builds each one).
 * 0 or FQ_E* with a message naming the dataset. */
int ag_store_open(const struct ag_config *cfg, struct ag_store **ret, char *err,
                  size_t errlen);

/* The current extract of dataset name, with a reference for the caller
 * (ag_extract_unref), or NULL if the store has none. */
struct ag_extract *ag_store_get(struct ag_store *s, const char *name);

/* Rebuilds dataset name from its source and swaps it in; on failure the
 * old extract keeps serving. 0 or FQ_E* with a message. */
int ag_store_refresh(struct ag_store *s, const char *name, char *err,
                     size_t errlen);

/* Takes a reloaded configuration: datasets that are new or whose columns
 * or source changed are rebuilt, removed ones dropped. On failure nothing
 * changes. 0 or FQ_E* with a message. */
int ag_store_reconfigure(struct ag_store *s, const struct ag_config *cfg,
                         char *err, size_t errlen);

/* Stops the refresh schedule and drops every extract (queries holding one
 * keep it until they finish). NULL is a no-op. */
void ag_store_close(struct ag_store *s);

#endif
