/*
 * breakdown.h - a page's breakdown totals, summed as its rows are written.
 *
 * The breakdown totals of a snapshot (sql/014_breakdown_totals.sql) are, per
 * dimension and map key, the sum of the numbers in the referring_links_*
 * maps of its rows and how many entries there are. A set's first snapshot
 * has nothing to start from, and summing the maps of every row in SQL cost
 * more than loading the rows (2.7 s for 100,000). A later one can come from
 * the one before and what changed, but comparing the maps of each changed
 * row with its version's cost the publish about 5 us a changed row (0.48 s
 * of a 100,000-row night with every row changed), where summing them here
 * costs the loader well under 1 us a row. So every direct load sums them
 * here, page by page, as jsonb would read the maps (a key given twice in
 * one map counts once, with its last value: then, and on an overflow, the
 * page's totals are marked invalid and the database sums the rows itself),
 * and keeps them with the page (etl_page_keys, sql/016_direct_load.sql).
 */
#ifndef INTERSECT_BREAKDOWN_H
#define INTERSECT_BREAKDOWN_H

#include <stddef.h>

#include "util.h"

/* The dimensions, in the order of the referring_links_* columns. */
#define BD_DIMS 6
extern const char *const bd_dim_names[BD_DIMS];

struct bd_entry {
	int dim;
	char *key;            /* owned */
	size_t len;
	long long links;      /* sum of the entries' numbers (null counts 0) */
	long long entries;
	unsigned long stamp;  /* the map that last added to it */
};

struct page_breakdown {
	int enabled;          /* sum this page's maps */
	int invalid;          /* a repeated key or an overflow: not to be used */
	struct bd_entry *e;
	size_t n, cap;
	size_t *slot;         /* open addressing: index + 1, 0 free */
	size_t n_slots;
	unsigned long stamp;  /* the map being read */
};

void bd_init(struct page_breakdown *b);
void bd_reset(struct page_breakdown *b);
void bd_free(struct page_breakdown *b);
/* A new map starts (its keys are checked for repeats among themselves). */
void bd_map_begin(struct page_breakdown *b);
/* One entry of the current map of dimension dim: its value (has_value 0: null). */
void bd_add(struct page_breakdown *b, int dim, const char *key, size_t len, int has_value,
	    long long value);
/*
 * The totals as four array literals for stage_page() (dimensions, keys,
 * links, entries). Returns 0, leaving them empty, when the page's totals
 * are not to be used (not enabled, or invalid).
 */
int bd_arrays(const struct page_breakdown *b, struct strbuf out[4]);

#endif
