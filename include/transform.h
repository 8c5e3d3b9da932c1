/*
 * transform.h - from one API response body to rows of domain_intersection.
 *
 * After response_parse() (response.h) has found the result in a usable
 * answer, transform_page() flattens each item into one row per target key
 * (current shape: item.domain_intersection."N"; pre-2023 shape: item."N"),
 * rendered straight into PostgreSQL COPY text format in the column order of
 * TRANSFORM_COLUMNS, so the loader never re-parses or re-formats a value.
 * Nothing in an item is dropped: fields this program does not know go to the
 * `extra` jsonb column.
 *
 * What PostgreSQL would refuse is refused here first, as a page error that
 * names the field, so that one odd value never fails a COPY (and with it the
 * run): integers are judged from their token, never through a double;
 * numbers bound for jsonb are kept within numeric's range; cost must fit
 * etl_page.cost_usd (response.c). The COPY text of a page is capped relative to its body
 * (TRANSFORM_MAX_COPY).
 */
#ifndef INTERSECT_TRANSFORM_H
#define INTERSECT_TRANSFORM_H

#include <stddef.h>

#include "breakdown.h"
#include "curmap.h"
#include "err.h"
#include "jsondoc.h"
#include "response.h"
#include "util.h"

/* The columns a row's values take, from intersections_count to extra. */
#define TRANSFORM_VALUE_COLUMNS                                                    \
	"intersections_count, type, rank, backlinks, first_seen, "                   \
	"lost_date, backlinks_spam_score, broken_backlinks, broken_pages, "          \
	"referring_domains, referring_domains_nofollow, referring_main_domains, "    \
	"referring_main_domains_nofollow, referring_ips, referring_subnets, "        \
	"referring_pages, referring_pages_nofollow, referring_links_tld, "           \
	"referring_links_types, referring_links_attributes, "                        \
	"referring_links_platform_types, referring_links_semantic_locations, "       \
	"referring_links_countries, extra"

/* The columns of domain_intersection, in COPY order (see sql/001_*). */
#define TRANSFORM_COLUMNS                                                          \
	"snapshot_date, target_set_id, referring_domain, target_key, target, "       \
	"position, " TRANSFORM_VALUE_COLUMNS ", run_id, digest"
#define TRANSFORM_NCOLUMNS 32

/*
 * digest: SipHash-1-3-128 under TRANSFORM_DIGEST_KEY of the row's COPY text
 * from target to extra, position left out: the values a version of the row
 * compares (sql/009_*), so equal digests mean equal values and a night
 * compares one uuid per row instead of 25 columns. The key and the text are
 * fixed, and a direct publish takes two digests that differ for values that
 * differ (sql/021: it compares values only where a digest is missing). So a
 * change to either must come with a migration that sets the stored digests
 * to NULL: their versions are then compared value by value once.
 */
#define TRANSFORM_DIGEST_KEY {0x696e746572736563u, 0x742d65746c2d7631u}

/* Longest referring domain accepted (it is part of the primary key). */
#define TRANSFORM_MAX_DOMAIN_BYTES 1024

/*
 * PostgreSQL numeric's range, which a number stored in jsonb must keep:
 * digits before the decimal point, and digits after it (its display scale).
 */
#define TRANSFORM_NUMERIC_MAX_INT_DIGITS 131072
#define TRANSFORM_NUMERIC_MAX_SCALE 16383

/*
 * The most COPY text one page may take: twice its body, plus 1 MiB. Each
 * byte of the body lands in at most one row (a per-target field in its own
 * row, an item's extras in one row), and JSON escaping doubled by COPY's is
 * at most 2x (a backslash); what could pass that is the per-row overhead of
 * many tiny per-target objects, which is what the cap stops. A real page
 * takes about 1x. Checked after each row, so a page is refused as soon as it
 * passes the cap.
 */
#define TRANSFORM_MAX_COPY(body_len) (2 * (size_t)(body_len) + ((size_t)1 << 20))

/*
 * What was asked for, and where the rows go. offset, limit and targets are
 * the request's own: an answer that echoes other values answers another
 * request (response_match()).
 */
struct transform_ctx {
	const char *snapshot_date;   /* "YYYY-MM-DD" */
	long long target_set_id;
	long long run_id;
	long long offset;            /* result position of items[0]; the request's offset */
	int limit;                   /* the request's limit; more items is an error */
	char *const *targets;        /* targets[i] is the target of key "i+1" */
	size_t n_targets;
	int breakdown;               /* sum the page's breakdown totals (breakdown.h) */
	const struct cur_map *current; /* judge each row against these (curmap.h), or NULL */
	int domains;                 /* fold each item into its domain row (fold.h) */
};

/*
 * Does a usable resp answer the request ctx describes? Where the answer
 * echoes the request (tasks[0].data's targets, offset and limit, and
 * tasks[0].result[0].targets), each value echoed must be the one sent; what
 * is not echoed is not judged. Returns 0, or ETL_EFAIL with resp->error set
 * to RESP_OTHER_REQUEST (retry_classify(): retry) and err saying "answer to
 * another request" and what differed. transform_page() makes the same check.
 */
int response_match(struct api_response *resp, const struct transform_ctx *ctx,
		   struct etl_error *err) ETL_WUR;

/* Rows in COPY text format, one line per row, ready for PQputCopyData. */
struct row_batch {
	struct strbuf copy;  /* owned */
	size_t n_rows;
	size_t n_items;
	struct page_breakdown breakdown; /* when the ctx asked for it */
	int judged;          /* send says which rows to send (ctx->current) */
	struct strbuf send;  /* per row: 1 to send, 0 equal to its current version */
	struct strbuf item_fps; /* ctx->current: per item, its domain's fingerprint (a
				 * struct cur_fp: cur_map_domain_fp()), for cur_map_distinct() */
	struct strbuf row_fps;  /* ctx->current: per row, sent or not, its fingerprint
				 * (cur_map_fp()) as the database keeps it (CUR_FP_BYTES,
				 * cur_fp_store()): the publish keeps them for the next
				 * night (sql/024) */
	struct strbuf domains; /* ctx->domains: a domain row per item (fold.h), COPY text */
	int domains_unusable;  /* an item did not fold: the page sends no domain rows */
};

void row_batch_init(struct row_batch *b);
void row_batch_reset(struct row_batch *b);
void row_batch_free(struct row_batch *b);

/*
 * Appends the rows of every item of resp to out: one row per target key an
 * item has, its per-target unknown fields in that row's `extra`, and the
 * item's own and its summary's unknown fields (extra's "_item" and
 * "_summary") once per item, in the row of its lowest target key. On a
 * malformed item, an answer to another request or a page past
 * TRANSFORM_MAX_COPY returns ETL_EFAIL naming the item's index and the
 * field, and leaves out as it was before the call (no partial page).
 */
int transform_page(const struct api_response *resp, const struct transform_ctx *ctx,
		   struct row_batch *out, struct etl_error *err) ETL_WUR;

#endif
