/*
 * fold.h - an item's rows folded into its referring domain's row.
 *
 * domain_intersection_domain_version (sql/017) holds one row per referring
 * domain: its rows' target keys folded. On a set's first load the loader
 * writes those rows itself, one per item, beside the item's versions, so
 * that the publish need not fold the night's rows again (sql/019). The
 * fold is first_domains()'s, row for row: count(*), bit_or(1 << key),
 * max(intersections_count), min(rank), sum(backlinks), max(first_seen),
 * max(backlinks_spam_score), sum(referring_pages), NULLs ignored and NULL
 * when every value is. An item the fold cannot be sure of (rows naming
 * different referring domains, a time without a zone, whose instant
 * depends on the server's TimeZone) is unusable: its page sends no domain
 * rows and the publish folds the night in SQL, as before.
 */
#ifndef INTERSECT_FOLD_H
#define INTERSECT_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* The columns of a folded row, in fold_put()'s order. */
#define FOLD_COLUMNS                                                                  \
	"target_set_id, referring_domain, valid_from, target_keys, key_mask, "        \
	"intersections_count, min_rank, backlinks, links_to_all_since, max_spam_score, " \
	"referring_pages, run_id"

/* The per-target fields a domain row folds (transform.c's fields[] says which). */
enum fold_field { FOLD_NONE, FOLD_RANK, FOLD_BACKLINKS, FOLD_SPAM, FOLD_PAGES, FOLD_SEEN,
		  FOLD_NFIELDS };

struct dom_fold {
	size_t domain_off, domain_len; /* the first row's domain, as COPY text in the rows' buffer */
	int rows;
	unsigned mask;
	bool unusable;
	bool has[FOLD_NFIELDS];
	long long min_rank, max_spam;
	__int128 sum_backlinks, sum_pages;
	long long seen_at;             /* max(first_seen), seconds since the epoch */
	const char *seen;              /* its text (in the parsed answer) */
	size_t seen_len;
};

void fold_begin(struct dom_fold *f);
/* A row of the item: its domain's COPY text at buf[off..off+len), its target key. */
void fold_row(struct dom_fold *f, const char *buf, size_t off, size_t len, int key);
/* A non-null integer field of the row (not FOLD_SEEN). */
void fold_int(struct dom_fold *f, enum fold_field which, long long v);
/* A non-null first_seen, as valid_time() accepted it. */
void fold_time(struct dom_fold *f, const char *s, size_t n);
/*
 * Appends the domain row (FOLD_COLUMNS, COPY text) to out; buf is the rows'
 * buffer fold_row() saw. count: the item's intersections_count, or NULL
 * (has_count false). Returns -1, appending nothing, for an unusable item.
 */
int fold_put(const struct dom_fold *f, struct strbuf *out, const char *buf,
	     long long set_id, const char *date, long long run_id, bool has_count,
	     long long count);

#endif
