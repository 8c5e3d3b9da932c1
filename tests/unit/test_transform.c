/*
 * test_transform.c - response_parse() and transform_page() against response
 * fixtures (tests/data/responses/) and tables of hostile bodies and items.
 *
 * Rows are checked as the exact COPY text, field by field. The JSON columns
 * are also checked against json-c's own serialization of the same objects
 * (json_object_to_json_string_ext, PLAIN | NOSLASHESCAPE), so transform.c's
 * hand-written JSON writer cannot drift from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "check.h"
#include "transform.h"

#ifndef ETL_TEST_DATA
#error "ETL_TEST_DATA must name tests/data"
#endif

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define MB (1024 * 1024)

static const char *const column_names[TRANSFORM_NCOLUMNS] = {
	"snapshot_date", "target_set_id", "referring_domain", "target_key", "target",
	"position", "intersections_count", "type", "rank", "backlinks", "first_seen",
	"lost_date", "backlinks_spam_score", "broken_backlinks", "broken_pages",
	"referring_domains", "referring_domains_nofollow", "referring_main_domains",
	"referring_main_domains_nofollow", "referring_ips", "referring_subnets",
	"referring_pages", "referring_pages_nofollow", "referring_links_tld",
	"referring_links_types", "referring_links_attributes",
	"referring_links_platform_types", "referring_links_semantic_locations",
	"referring_links_countries", "extra", "run_id", "digest",
};
#define COL_FIRST_MAP 23
#define COL_EXTRA 29

/* ctx->targets is char *const * (as job.c holds them), hence the arrays */
static char tgt_com[] = "example.com", tgt_org[] = "example.org", tgt_net[] = "example.net";
static char *const two_targets[] = {tgt_com, tgt_org};
static char *const three_targets[] = {tgt_com, tgt_org, tgt_net};

/* The ctx every page test uses unless it says otherwise. */
static struct transform_ctx base_ctx(void)
{
	struct transform_ctx c = {"2024-05-01", 7, 42, 100, 10, two_targets, 2, 0, NULL, 0};

	return c;
}

/* ---------------------------------------------------------------- helpers */

/* A fixture's bytes; the caller frees them. Aborts the test run if missing. */
static char *slurp(const char *name, size_t *len)
{
	char path[1024];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/responses/%s", ETL_TEST_DATA, name);
	if (!(f = fopen(path, "rb"))) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Splits line (modified in place) at tabs; returns the field count. */
static size_t split_fields(char *line, char **f, size_t max)
{
	size_t n = 0;

	for (;;) {
		if (n < max)
			f[n] = line;
		n++;
		line = strchr(line, '\t');
		if (!line)
			return n;
		*line++ = '\0';
	}
}

/* The lines of a batch as separate strings; free with free_lines(). */
static char **batch_lines(const struct row_batch *b, size_t *n)
{
	const char *data = b->copy.data ? b->copy.data : "", *p, *nl;
	char **lines;
	size_t i = 0;

	for (p = data; (nl = strchr(p, '\n')); p = nl + 1)
		i++;
	lines = xcalloc(i + 1, sizeof(char *));
	*n = i;
	for (i = 0, p = data; (nl = strchr(p, '\n')); p = nl + 1)
		lines[i++] = xstrndup(p, (size_t)(nl - p));
	return lines;
}

static void free_lines(char **lines, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

/* COPY text field -> the value (NULL for \N); free() the result. */
static char *copy_unescape(const char *s)
{
	char *out, *o;

	if (strcmp(s, "\\N") == 0)
		return NULL;
	out = o = xmalloc(strlen(s) + 1);
	while (*s) {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case 't': *o++ = '\t'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case '\\': *o++ = '\\'; break;
		default:
			fprintf(stderr, "unexpected COPY escape \\%c\n", *s);
			check_failed++;
			*o++ = *s;
			break;
		}
		if (*s)
			s++;
	}
	*o = '\0';
	return out;
}

/* 32 lowercase hex digits: a digest as uuid reads it. */
static int is_digest(const char *s)
{
	return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/*
 * Compares one COPY line with the expected fields, naming the column on a
 * miss; an expected NULL (the digest, left out of the tables) asks only for
 * a digest's form: what it is made of is test_digest()'s.
 */
static void check_row(const char *line, const char *const *expect, const char *what)
{
	char *copy = xstrdup(line), *f[TRANSFORM_NCOLUMNS + 8];
	size_t n = split_fields(copy, f, ETL_ARRAY_LEN(f)), i;

	CHECK_INT(n, TRANSFORM_NCOLUMNS);
	for (i = 0; i < TRANSFORM_NCOLUMNS && i < n; i++) {
		if (!expect[i]) {
			CHECK(is_digest(f[i]));
			continue;
		}
		if (strcmp(f[i], expect[i]) != 0)
			fprintf(stderr, "%s: column %s differs\n", what, column_names[i]);
		CHECK_STR(f[i], expect[i]);
	}
	free(copy);
}

/* One field of row `row` of a batch, COPY-escaped as stored; free() it. */
static char *batch_field(const struct row_batch *b, size_t row, size_t col)
{
	size_t n, nf;
	char **lines = batch_lines(b, &n), *f[TRANSFORM_NCOLUMNS + 8], *res = NULL;

	if (row < n) {
		nf = split_fields(lines[row], f, ETL_ARRAY_LEN(f));
		if (col < nf && col < ETL_ARRAY_LEN(f))
			res = xstrdup(f[col]);
	}
	free_lines(lines, n);
	return res ? res : xstrdup("(no such field)");
}

/* response_parse + transform_page into b; returns transform's (or parse's) status. */
static int run_page(const char *body, size_t len, const struct transform_ctx *ctx,
		    struct row_batch *b, struct etl_error *err)
{
	struct api_response r;
	int rc;

	etl_error_clear(err);
	rc = response_parse(body, len, &r, err);
	if (rc == 0)
		rc = transform_page(&r, ctx, b, err);
	response_free(&r);
	return rc;
}

static int run_file(const char *name, const struct transform_ctx *ctx, struct row_batch *b,
		    struct etl_error *err)
{
	size_t len;
	char *body = slurp(name, &len);
	int rc = run_page(body, len, ctx, b, err);

	free(body);
	return rc;
}

/*
 * The differential check: every map column of every row equals json-c's own
 * serialization of the map in the response (items walked in the same order).
 */
static void check_maps_match_jsonc(const char *file, const struct transform_ctx *ctx)
{
	static const char *const maps[] = {
		"referring_links_tld", "referring_links_types", "referring_links_attributes",
		"referring_links_platform_types", "referring_links_semantic_locations",
		"referring_links_countries",
	};
	struct api_response r;
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t len, i, m, row = 0, n_lines;
	char *body = slurp(file, &len), **lines;
	/* json-c reads the same body on its own, as an independent witness */
	json_object *doc = json_tokener_parse(body), *items = NULL;
	int k;

	row_batch_init(&b);
	CHECK_INT(response_parse(body, len, &r, &err), 0);
	CHECK_INT(transform_page(&r, ctx, &b, &err), 0);
	CHECK(doc != NULL);
	if (doc) {
		json_object *task = json_object_array_get_idx(
			json_object_object_get(doc, "tasks"), 0);
		json_object *res0 = json_object_array_get_idx(
			json_object_object_get(task, "result"), 0);

		items = json_object_object_get(res0, "items");
	}
	CHECK_INT(json_object_array_length(items), r.n_items);
	lines = batch_lines(&b, &n_lines);
	for (i = 0; items && i < r.n_items; i++) {
		json_object *item = json_object_array_get_idx(items, i), *di, *obj, *map;
		char key[12];

		if (!json_object_object_get_ex(item, "domain_intersection", &di))
			di = item;
		for (k = 1; k <= 20; k++) {
			snprintf(key, sizeof(key), "%d", k);
			if (!json_object_object_get_ex(di, key, &obj) || !obj)
				continue;
			for (m = 0; m < ETL_ARRAY_LEN(maps) && row < n_lines; m++) {
				char *f[TRANSFORM_NCOLUMNS + 8], *line = xstrdup(lines[row]), *got;
				const char *want = NULL;

				if (split_fields(line, f, ETL_ARRAY_LEN(f)) != TRANSFORM_NCOLUMNS) {
					CHECK(!"a row without 32 columns");
					free(line);
					continue;
				}
				got = copy_unescape(f[COL_FIRST_MAP + m]);
				if (json_object_object_get_ex(obj, maps[m], &map) && map)
					want = json_object_to_json_string_ext(map, JSON_FLAGS);
				if (!want || !got) {
					CHECK(!want && !got);
				} else {
					if (strcmp(got, want) != 0)
						fprintf(stderr, "%s row %zu %s\n", file, row,
							maps[m]);
					CHECK_STR(got, want);
				}
				free(got);
				free(line);
			}
			row++;
		}
	}
	CHECK_INT(row, b.n_rows);
	free_lines(lines, n_lines);
	row_batch_free(&b);
	response_free(&r);
	json_object_put(doc);
	free(body);
}

/* --------------------------------------------------------- fixture pages */

/*
 * Expected rows are laid out by column group: the 7 columns before type;
 * type .. lost_date; backlinks_spam_score .. referring_pages_nofollow; the six
 * maps; extra and run_id.
 */
static void test_current_page(void)
{
	static const char *const rows[6][TRANSFORM_NCOLUMNS] = {
		{"2024-05-01", "7", "wongqq.net", "1", "example.com", "100", "2",
		 "backlinks_domain_intersection", "343", "9", "2021-08-27 20:28:54 +00:00", "\\N",
		 "12", "0", "1", "1", "0", "1", "0", "1", "1", "5", "2",
		 "{\"net\":9}", "{\"anchor\":9}", "\\N", "{\"unknown\":9}",
		 "{\"article\":2,\"\":1}", "{\"\":9}",
		 "\\N", "42"},
		{"2024-05-01", "7", "wongqq.net", "2", "example.org", "100", "2",
		 "backlinks_domain_intersection", "120", "3", "2022-01-05 07:01:02 +00:00",
		 "2023-11-30 23:59:59 +00:00",
		 "0", "0", "0", "1", "1", "1", "1", "1", "1", "3", "3",
		 "{\"net\":3}", "{\"anchor\":2,\"image\":1}", "{\"nofollow\":3}", "{\"blogs\":3}",
		 "{\"\":3}", "{\"SG\":3}",
		 "\\N", "42"},
		{"2024-05-01", "7", "b\xc3\xbc" "cher.de", "1", "example.com", "101", "2",
		 "backlinks_domain_intersection", "0", "1", "2024-02-29 00:00:00 +00:00",
		 "2024-03-01 12:30:00 +00:00",
		 "\\N", "\\N", "\\N", "1", "0", "1", "0", "1", "1", "1", "0",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "42"},
		{"2024-05-01", "7", "b\xc3\xbc" "cher.de", "2", "example.org", "101", "2",
		 "backlinks_domain_intersection", "2", "4", "2019-11-15 12:57:46 +00:00", "\\N",
		 "3", "1", "1", "1", "0", "1", "0", "1", "1", "2", "0",
		 "{\"de\":4}", "{\"anchor\":4}", "{}", "{\"cms\":4}", "{\"footer\":4}",
		 "{\"DE\":4}",
		 "\\N", "42"},
		{"2024-05-01", "7", "xn--80ak6aa92e.com", "1", "example.com", "102", "2",
		 "\\N", "1000", "9007199254740993", "2020-06-30 08:15:00 +00:00", "\\N",
		 "100", "9223372036854775807", "0", "2", "0", "2", "0", "2", "2", "40", "0",
		 "{\"com\":9007199254740993}", "{\"anchor\":39,\"redirect\":1}", "\\N",
		 "{\"ecommerce\":40}", "{\"main\":30,\"nav\":10}", "{\"RU\":40}",
		 "\\N", "42"},
		{"2024-05-01", "7", "xn--80ak6aa92e.com", "2", "example.org", "102", "2",
		 "backlinks_domain_intersection", "998", "12", "2020-06-30 08:15:00 +00:00", "\\N",
		 "1", "0", "0", "1", "0", "1", "0", "1", "1", "12", "0",
		 "{\"com\":12}", "{\"anchor\":12}", "\\N", "{\"ecommerce\":12}", "{\"main\":12}",
		 "{\"RU\":12}",
		 "\\N", "42"},
	};
	struct transform_ctx ctx = base_ctx();
	struct api_response r;
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t len, n, i;
	char *body = slurp("current_page.json", &len), **lines, what[64];

	CHECK_INT(response_parse(body, len, &r, &err), 0);
	CHECK_INT(r.error, RESP_OK);
	CHECK_INT(r.status_code, 20000);
	CHECK_INT(r.task_status, 20000);
	CHECK_STR(r.status_message, "Ok.");
	CHECK_STR(r.task_id, "05011234-1535-0367-0000-b2f7d4a3c0e1");
	CHECK(r.cost > 0.02008 && r.cost < 0.0201);
	CHECK_INT(r.total_count, 6462);
	CHECK_INT(r.n_items, 3);

	row_batch_init(&b);
	CHECK_INT(transform_page(&r, &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 6);
	CHECK_INT(b.n_items, 3);
	CHECK(b.copy.len > 0 && b.copy.data[b.copy.len - 1] == '\n');
	CHECK_INT(strlen(b.copy.data), b.copy.len);
	lines = batch_lines(&b, &n);
	CHECK_INT(n, 6);
	for (i = 0; i < n && i < 6; i++) {
		snprintf(what, sizeof(what), "current_page row %zu", i);
		check_row(lines[i], rows[i], what);
	}
	free_lines(lines, n);

	/* a second page appends; counts add up */
	CHECK_INT(transform_page(&r, &ctx, &b, &err), 0);
	CHECK_INT(b.n_rows, 12);
	CHECK_INT(b.n_items, 6);
	row_batch_free(&b);
	response_free(&r);
	free(body);

	check_maps_match_jsonc("current_page.json", &ctx);
}

static void test_legacy_page(void)
{
	static const char *const rows[4][TRANSFORM_NCOLUMNS] = {
		{"2024-05-01", "7", "wongqq.net", "1", "example.com", "100", "\\N",
		 "backlinks_domain_intersection", "343", "9", "2021-08-27 20:28:54 +00:00", "\\N",
		 "\\N", "0", "0", "1", "\\N", "1", "\\N", "1", "1", "9", "\\N",
		 "{\"net\":9}", "{\"anchor\":9}", "\\N", "{\"unknown\":9}",
		 "{\"article\":2,\"\":1}", "\\N",
		 "\\N", "42"},
		{"2024-05-01", "7", "wongqq.net", "2", "example.org", "100", "\\N",
		 "backlinks_domain_intersection", "343", "2", "2021-09-01 01:02:03 +00:00", "\\N",
		 "\\N", "0", "0", "1", "\\N", "1", "\\N", "1", "1", "2", "\\N",
		 "{\"net\":2}", "{\"anchor\":2}", "\\N", "{\"unknown\":2}", "{\"\":2}", "\\N",
		 "\\N", "42"},
		/* item 1 lists "2" before "1": rows still come in key order */
		{"2024-05-01", "7", "blogspot.com", "1", "example.com", "101", "\\N",
		 "backlinks_domain_intersection", "560", "20", "2019-03-04 05:06:07 +00:00", "\\N",
		 "\\N", "0", "0", "5", "\\N", "1", "\\N", "4", "3", "20", "\\N",
		 "{\"com\":20}", "{\"anchor\":20}", "\\N", "{\"blogs\":20}", "{\"article\":20}",
		 "\\N",
		 "\\N", "42"},
		{"2024-05-01", "7", "blogspot.com", "2", "example.org", "101", "\\N",
		 "backlinks_domain_intersection", "560", "14", "2020-01-02 03:04:05 +00:00",
		 "2021-07-01 00:00:00 +00:00",
		 "\\N", "1", "1", "3", "\\N", "1", "\\N", "2", "2", "14", "\\N",
		 "{\"com\":14}", "{\"anchor\":14}", "{\"ugc\":3}", "{\"blogs\":14}",
		 "{\"article\":14}", "\\N",
		 "\\N", "42"},
	};
	struct transform_ctx ctx = base_ctx();
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t n, i;
	char **lines, what[64];

	row_batch_init(&b);
	CHECK_INT(run_file("legacy_page.json", &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 4);
	CHECK_INT(b.n_items, 2);
	lines = batch_lines(&b, &n);
	CHECK_INT(n, 4);
	for (i = 0; i < n && i < 4; i++) {
		snprintf(what, sizeof(what), "legacy_page row %zu", i);
		check_row(lines[i], rows[i], what);
	}
	free_lines(lines, n);
	row_batch_free(&b);
	check_maps_match_jsonc("legacy_page.json", &ctx);
}

static void test_partial_page(void)
{
	static const char *const rows[4][TRANSFORM_NCOLUMNS] = {
		{"2024-05-01", "7", "only-one-and-three.example", "1", "example.com", "100", "2",
		 "backlinks_domain_intersection", "7", "5", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "42"},
		{"2024-05-01", "7", "only-one-and-three.example", "3", "example.net", "100", "2",
		 "backlinks_domain_intersection", "7", "2", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "42"},
		/* no summary: the item-level intersections_count */
		{"2024-05-01", "7", "only-two.example", "2", "example.org", "101", "1",
		 "backlinks_domain_intersection", "1", "\\N", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "42"},
		/* no count at all, and "2": null is no row */
		{"2024-05-01", "7", "one-of-three.example", "1", "example.com", "102", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		 "\\N", "42"},
	};
	struct transform_ctx ctx = base_ctx();
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t n, i;
	char **lines, what[64];

	ctx.targets = three_targets;
	ctx.n_targets = 3;
	row_batch_init(&b);
	CHECK_INT(run_file("partial_page.json", &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 4);
	CHECK_INT(b.n_items, 3);
	lines = batch_lines(&b, &n);
	CHECK_INT(n, 4);
	for (i = 0; i < n && i < 4; i++) {
		snprintf(what, sizeof(what), "partial_page row %zu", i);
		check_row(lines[i], rows[i], what);
	}
	free_lines(lines, n);
	row_batch_free(&b);
}

static void test_escapes(void)
{
	static char odd[] = "http://ex.com/a\tb\\c\nd";
	static char *const odd_targets[] = {odd};
	static const char *const row[TRANSFORM_NCOLUMNS] = {
		"2024-05-01", "7", "we\\tird\\nname\\\\with\"quotes\\r.example", "1",
		"http://ex.com/a\\tb\\\\c\\nd", "100", "1", "type with \\\\ backslash", "\\N",
		"\\N",
		"\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N", "\\N",
		"\\N",
		/* JSON escapes first, then every backslash doubled for COPY */
		"{\"tab\\\\there\":1,\"quote\\\\\"key\":2,\"back\\\\\\\\slash\":3,"
		"\"new\\\\nline\":4,\"ctl\\\\u0001\":5,\"slash/\":6,"
		"\"uni \xc3\xa9\xf0\x9f\x98\x80\":7,\"\":8,\"cr\\\\rform\\\\ffeed\\\\bbs\":9}",
		"\\N", "\\N", "\\N", "\\N", "{\"\xc3\x85land\":null}", "\\N", "42",
	};
	struct transform_ctx ctx = base_ctx();
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t n;
	char **lines, *raw;

	ctx.targets = odd_targets;
	ctx.n_targets = 1;
	row_batch_init(&b);
	CHECK_INT(run_file("escapes_page.json", &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 1);
	lines = batch_lines(&b, &n);
	CHECK_INT(n, 1);
	if (n == 1)
		check_row(lines[0], row, "escapes_page");
	free_lines(lines, n);
	/* and COPY decoding gives back the original string */
	raw = batch_field(&b, 0, 2);
	{
		char *dec = copy_unescape(raw);

		CHECK_STR(dec, "we\tird\nname\\with\"quotes\r.example");
		free(dec);
	}
	free(raw);
	row_batch_free(&b);
	check_maps_match_jsonc("escapes_page.json", &ctx);
}

static void test_unknown_fields(void)
{
	/* item 0's own and its summary's unknowns are in the row of its lowest
	   key only ("1"): the row of key "2" has no unknowns of its own */
#define ITEM0_EXTRA                                                                              \
	"\"_item\":{\"item_flag\":true,\"weird\":null},\"_summary\":{\"new_summary_count\":7}}"
	static const char *const extras[3] = {
		("{\"new_metric\":5,\"nested\":{\"a\":[1,2.50,null,true,\"x\\\\ty\"],\"b\":{}},"
		 "\"huge\":18446744073709551615,\"lowest\":-9223372036854775808,\"gone\":null,"
		 ITEM0_EXTRA),
		"\\N",
		"{\"_item\":{\"legacy_extra\":\"x\\\\\\\\y\"}}",
	};
#undef ITEM0_EXTRA
	struct transform_ctx ctx = base_ctx();
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t i;

	row_batch_init(&b);
	CHECK_INT(run_file("unknown_fields.json", &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 3);
	for (i = 0; i < 3; i++) {
		char *f = batch_field(&b, i, COL_EXTRA), *dec;
		json_object *o;

		CHECK_STR(f, extras[i]);
		/* what lands in jsonb is JSON json-c reads back to the same text */
		dec = copy_unescape(f);
		if (!dec) {
			free(f);
			continue; /* \N */
		}
		o = json_tokener_parse(dec);
		CHECK(o != NULL);
		if (o)
			CHECK_STR(json_object_to_json_string_ext(o, JSON_FLAGS), dec);
		json_object_put(o);
		free(dec);
		free(f);
	}
	/* the known fields still land in their columns */
	{
		char *f = batch_field(&b, 0, 8);

		CHECK_STR(f, "5");
		free(f);
	}
	row_batch_free(&b);
}

/* ------------------------------------------------------------- envelope */

#define ENV_HEAD                                                                     \
	"{\"status_code\":20000,\"status_message\":\"Ok.\",\"tasks_error\":0,\"tasks\":[{" \
	"\"id\":\"t-1\",\"status_code\":20000,\"status_message\":\"Ok.\",\"cost\":0.02,"  \
	"\"result\":[{\"total_count\":100,\"items\":"
#define ENV_TAIL "}]}]}"
#define PAGE(items) ENV_HEAD items ENV_TAIL
/* an envelope up to a task object's fields */
#define TASK(fields) "{\"status_code\":20000,\"tasks\":[{" fields "}]}"
#define RESULT(fields) TASK("\"status_code\":20000,\"result\":[{" fields "}]")
/* a usable empty page whose top-level (or task's) cost is c */
#define TOP_COST(c)                                                                   \
	"{\"status_code\":20000,\"cost\":" c ",\"tasks\":[{\"status_code\":20000,"        \
	"\"result\":[{\"total_count\":0}]}]}"
#define RESULT_COST(c, fields) TASK("\"status_code\":20000,\"cost\":" c ",\"result\":[{" fields "}]")
/* an item with one per-target object whose fields follow "target" */
#define ITEM1(fields) "{\"domain_intersection\":{\"1\":{\"target\":\"a.example\"" fields "}}}"
#define ONE(fields) PAGE("[" ITEM1(fields) "]")

static const struct env_case {
	const char *name;
	const char *file;      /* under responses/; else body */
	const char *body;
	size_t len;            /* 0: strlen(body) */
	int rc;
	enum response_error error;
	int status_code, task_status;
	const char *msg;       /* a substring of err.msg ("" when rc is 0) */
	const char *status_message; /* NULL: not checked */
} env_cases[] = {
	/* the API's own failures, as it sends them */
	{"gateway", "gateway_error.json", NULL, 0, ETL_EFAIL, RESP_GATEWAY, 0, 0,
	 "API gateway error 429 quota_exceeded: Monthly spend cap reached for this key. "
	 "(request_id req_01HXYZ8K2M)",
	 "Monthly spend cap reached for this key."},
	{"gateway string", NULL, "{\"error\":\"Unauthorized\"}", 0, ETL_EFAIL, RESP_GATEWAY, 0, 0,
	 "API gateway error: Unauthorized", "Unauthorized"},
	{"gateway bare", NULL, "{\"error\":{}}", 0, ETL_EFAIL, RESP_GATEWAY, 0, 0,
	 "API gateway error: (no message)", NULL},
	{"top 40100", "api_status_40100.json", NULL, 0, ETL_EFAIL, RESP_API_STATUS, 40100, 0,
	 "API error 40100: You are not authorized to access this resource.",
	 "You are not authorized to access this resource."},
	{"task 40501", "task_40501.json", NULL, 0, ETL_EFAIL, RESP_TASK_STATUS, 20000, 40501,
	 "API task error 40501: Invalid Field: 'limit'.", "Invalid Field: 'limit'."},
	{"task 40202", "task_40202.json", NULL, 0, ETL_EFAIL, RESP_TASK_STATUS, 20000, 40202,
	 "API task error 40202: Rate-limit on your account has been exceeded.", NULL},
	{"task 50000", "task_50000.json", NULL, 0, ETL_EFAIL, RESP_TASK_STATUS, 20000, 50000,
	 "API task error 50000: Internal Error.", "Internal Error."},
	{"tasks_error", "tasks_error.json", NULL, 0, ETL_EFAIL, RESP_TASK_STATUS, 20000, 20000,
	 "tasks_error is 1 although tasks[0] has status 20000", NULL},
	{"result null", "result_null.json", NULL, 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "tasks[0].result is null although the task's status is 20000", "Ok."},
	{"items null, total 0", "items_null_total0.json", NULL, 0, 0, RESP_OK, 20000, 20000, "",
	 "Ok."},
	{"current page", "current_page.json", NULL, 0, 0, RESP_OK, 20000, 20000, "", "Ok."},
	{"legacy page", "legacy_page.json", NULL, 0, 0, RESP_OK, 20000, 20000, "", "Ok."},

	/* not JSON at all */
	{"html page", "html_502.json", NULL, 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "the body starts \"<!DOCTYPE html>?<html>?<head><title>502 Bad Gateway</title><...\""
	 "\nhint: an HTML page comes from a proxy or the gateway", NULL},
	{"empty", NULL, "", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0, "malformed response: empty body",
	 NULL},
	{"blank", NULL, " \r\n\t ", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0, "empty body", NULL},
	{"truncated", NULL, "{\"status_code\":20000,\"tasks\":[{\"id\"", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "truncated: the JSON ends early, after 35 bytes", NULL},
	{"truncated string", NULL, "{\"status_code\":20000,\"status_message\":\"O", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "truncated", NULL},
	{"trailing data", NULL, PAGE("[]") "x", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "data after the JSON value",
	 NULL},
	{"trailing object", NULL, PAGE("[]") "{}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "data after the JSON value",
	 NULL},
	{"trailing blank", NULL, PAGE("[]") " \n", 0, 0, RESP_OK, 20000, 20000, "", NULL},
	{"bom", NULL, "\xef\xbb\xbf" PAGE("[]"), 0, ETL_EFAIL, RESP_MALFORMED, 0, 0, "not JSON",
	 NULL},
	{"single quotes", NULL, "{'status_code':20000}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "not JSON", NULL},
	{"comment", NULL, "/* hi */{\"status_code\":20000}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "not JSON", NULL},
	{"trailing comma", NULL, "{\"status_code\":20000,}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "not JSON", NULL},
	{"NaN", NULL, RESULT("\"total_count\":NaN"), 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "\"NaN\" at byte", NULL},
	{"-Infinity", NULL, RESULT("\"total_count\":-Infinity"), 0, ETL_EFAIL, RESP_MALFORMED, 0,
	 0, "is not a JSON number", NULL},
	{"1.", NULL, "{\"status_code\":20000,\"cost\":1.}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "\"1.}\" at byte 28 is not a JSON number", NULL},
	{"raw NUL", NULL, "{\"status_code\":20000,\"status_message\":\"O\0k\"}", 44, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "malformed response", NULL},
	{"raw NUL after", NULL, "{\"status_code\":20000}\0", 22, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "malformed response", NULL},
	{"overlong UTF-8", NULL, "{\"status_code\":20000,\"status_message\":\"\xc0\x80\"}", 0,
	 ETL_EFAIL, RESP_MALFORMED, 0, 0, "invalid UTF-8 at byte 39", NULL},
	{"surrogate UTF-8", NULL, "{\"status_code\":20000,\"x\":\"\xed\xa0\x80\"}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "invalid UTF-8 at byte 26", NULL},
	{"past U+10FFFF", NULL, "{\"status_code\":20000,\"x\":\"\xf4\x90\x80\x80\"}", 0,
	 ETL_EFAIL, RESP_MALFORMED, 0, 0, "invalid UTF-8", NULL},
	{"latin-1 byte", NULL, "{\"status_code\":20000,\"x\":\"caf\xe9\"}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "invalid UTF-8 at byte 29", NULL},
	{"NUL in a key", NULL, "{\"status_code\":20000,\"a\\u0000b\":1}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "object key \"a\\u0000b\" at byte 21 holds \\u0000", NULL},
	/* a repeated key makes the whole body malformed, before the envelope
	   is read: either value kept would lose the other */
	{"duplicate key", NULL, "{\"status_code\":20000,\"status_code\":40100}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0,
	 "malformed response: an object repeats the key \"status_code\" at byte 21", NULL},
	{"duplicate key, task", NULL, TASK("\"status_code\":40501,\"id\":\"a\",\"id\":\"b\""), 0,
	 ETL_EFAIL, RESP_MALFORMED, 0, 0, "an object repeats the key \"id\" at byte", NULL},
	{"past uint64", NULL, RESULT("\"total_count\":99999999999999999999"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0,
	 "integer 99999999999999999999 at byte 76 (in \"total_count\") does not fit in 64 bits",
	 NULL},
	{"below int64", NULL, "{\"status_code\":20000,\"cost\":-9223372036854775809}", 0,
	 ETL_EFAIL, RESP_MALFORMED, 0, 0, "(in \"cost\") does not fit in 64 bits", NULL},
	{"nested too deep", NULL,
	 "{\"status_code\":20000,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	 "[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	 "]]]}",
	 0, ETL_EFAIL, RESP_MALFORMED, 0, 0, "nested deeper than 64 levels", NULL},

	/* JSON, but of the wrong shape */
	{"root array", NULL, "[]", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "expected a JSON object, got array", NULL},
	{"root string", NULL, "\"Ok.\"", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "expected a JSON object, got string", NULL},
	{"root number", NULL, "20000", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "expected a JSON object, got integer", NULL},
	{"root null", NULL, "null", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "expected a JSON object, got null", NULL},
	{"error number", NULL, "{\"error\":5}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "error: expected an object, got integer", NULL},
	{"error null is no error", NULL, "{\"error\":null,\"status_code\":40000}", 0, ETL_EFAIL,
	 RESP_API_STATUS, 40000, 0, "API error 40000: (no message)", NULL},
	{"no status_code", NULL, "{}", 0, ETL_EFAIL, RESP_MALFORMED, 0, 0,
	 "malformed response: status_code: missing", NULL},
	{"status_code string", NULL, "{\"status_code\":\"20000\"}", 0, ETL_EFAIL, RESP_MALFORMED,
	 0, 0, "malformed response: status_code: expected an integer, got string", NULL},
	{"status_code double", NULL, "{\"status_code\":20000.0}", 0, ETL_EFAIL, RESP_MALFORMED, 0,
	 0, "status_code: expected an integer, got number", NULL},
	{"status_code huge", NULL, "{\"status_code\":4294967296}", 0, ETL_EFAIL, RESP_MALFORMED,
	 0, 0, "status_code: 4294967296 is out of range", NULL},
	{"status_message int", NULL, "{\"status_code\":20000,\"status_message\":5}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "status_message: expected a string, got integer", NULL},
	{"cost string", NULL, "{\"status_code\":20000,\"cost\":\"0.02\"}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 0, 0, "cost: expected a number, got string", NULL},
	/* a cost must fit etl_page.cost_usd, numeric(14,6), and not be negative */
	{"cost negative", NULL, TOP_COST("-0.01"), 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "malformed response: cost: -0.01 is not a cost in USD: expected 0 <= cost < 100000000",
	 NULL},
	{"cost 123456789", NULL, TOP_COST("123456789"), 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "cost: 1.23457e+08 is not a cost in USD", NULL},
	{"cost 1e8", NULL, TOP_COST("1e8"), 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "is not a cost in USD", NULL},
	{"cost 1e400", NULL, TOP_COST("1e400"), 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "cost: inf is not a cost in USD", NULL},
	{"cost past uint64", NULL, TOP_COST("18446744073709551615"), 0, ETL_EFAIL, RESP_MALFORMED,
	 20000, 20000, "is not a cost in USD", NULL},
	{"cost numeric(14,6) max", NULL, TOP_COST("99999999.999999"), 0, 0, RESP_OK, 20000, 20000,
	 "", NULL},
	{"cost -0", NULL, TOP_COST("-0.0"), 0, 0, RESP_OK, 20000, 20000, "", NULL},
	{"task cost negative", NULL, RESULT_COST("-1", "\"total_count\":0"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000,
	 "tasks[0].cost: -1 is not a cost in USD", NULL},
	{"task cost fine, top cost not", NULL,
	 "{\"status_code\":20000,\"cost\":-5,\"tasks\":[{\"status_code\":20000,\"cost\":0.5,"
	 "\"result\":[{\"total_count\":0}]}]}",
	 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000, "malformed response: cost: -5 is not", NULL},
	/* a failed task's status decides, whatever its cost says */
	{"failed task, odd cost", NULL, TASK("\"status_code\":40501,\"cost\":-3"), 0, ETL_EFAIL,
	 RESP_TASK_STATUS, 20000, 40501, "API task error 40501", NULL},
	{"tasks_error string", NULL, "{\"status_code\":20000,\"tasks_error\":\"0\"}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks_error: expected an integer, got string", NULL},
	{"tasks missing", NULL, "{\"status_code\":20000}", 0, ETL_EFAIL, RESP_MALFORMED, 20000, 0,
	 "tasks: expected a non-empty array, got null", NULL},
	{"tasks object", NULL, "{\"status_code\":20000,\"tasks\":{}}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks: expected a non-empty array, got object", NULL},
	{"tasks empty", NULL, "{\"status_code\":20000,\"tasks\":[]}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks: expected a non-empty array, got an empty one", NULL},
	{"tasks[0] string", NULL, "{\"status_code\":20000,\"tasks\":[\"x\"]}", 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks[0]: expected an object, got string", NULL},
	{"task id int", NULL, TASK("\"id\":5,\"status_code\":20000"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks[0].id: expected a string, got integer", NULL},
	{"task cost bool", NULL, TASK("\"cost\":true,\"status_code\":20000"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks[0].cost: expected a number, got boolean", NULL},
	{"task status missing", NULL, TASK("\"id\":\"x\""), 0, ETL_EFAIL, RESP_MALFORMED, 20000, 0,
	 "tasks[0].status_code: missing", NULL},
	{"task status string", NULL, TASK("\"status_code\":\"40501\""), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 0, "tasks[0].status_code: expected an integer, got string", NULL},
	{"task message array", NULL, TASK("\"status_code\":40501,\"status_message\":[]"), 0,
	 ETL_EFAIL, RESP_MALFORMED, 20000, 0,
	 "tasks[0].status_message: expected a string, got array", NULL},
	{"task failed, no message", NULL, TASK("\"status_code\":40501"), 0, ETL_EFAIL,
	 RESP_TASK_STATUS, 20000, 40501, "API task error 40501: (no message)", NULL},
	{"result missing", NULL, TASK("\"status_code\":20000"), 0, ETL_EFAIL, RESP_MALFORMED,
	 20000, 20000, "tasks[0].result is null", NULL},
	{"result object", NULL, TASK("\"status_code\":20000,\"result\":{}"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000, "tasks[0].result: expected a non-empty array, got object",
	 NULL},
	{"result empty", NULL, TASK("\"status_code\":20000,\"result\":[]"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000,
	 "tasks[0].result: expected a non-empty array, got an empty one",
	 NULL},
	{"result[0] null", NULL, TASK("\"status_code\":20000,\"result\":[null]"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000, "tasks[0].result[0]: expected an object, got null", NULL},
	{"total_count missing", NULL, RESULT("\"items\":[]"), 0, ETL_EFAIL, RESP_MALFORMED, 20000,
	 20000, "tasks[0].result[0].total_count: missing", NULL},
	{"total_count string", NULL, RESULT("\"total_count\":\"5\""), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000,
	 "tasks[0].result[0].total_count: expected an integer, got string", NULL},
	{"total_count negative", NULL, RESULT("\"total_count\":-1"), 0, ETL_EFAIL, RESP_MALFORMED,
	 20000, 20000, "tasks[0].result[0].total_count: -1 is out of range", NULL},
	{"total_count fraction", NULL, RESULT("\"total_count\":1.5"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000, "total_count: expected an integer, got number", NULL},
	{"total_count past int64", NULL, RESULT("\"total_count\":9223372036854775808"), 0,
	 ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "total_count: 9223372036854775808 is out of range",
	 NULL},
	{"items object", NULL, RESULT("\"total_count\":1,\"items\":{}"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000, "tasks[0].result[0].items: expected an array, got object",
	 NULL},
	{"items absent", NULL, RESULT("\"total_count\":0"), 0, 0, RESP_OK, 20000, 20000, "", NULL},
	{"items_count string", NULL, RESULT("\"total_count\":1,\"items_count\":\"1\",\"items\":[]"),
	 0, ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "tasks[0].result[0].items_count: expected an integer, got string", NULL},
	{"items_count, no items", NULL, RESULT("\"total_count\":3,\"items_count\":3"), 0,
	 ETL_EFAIL, RESP_MALFORMED, 20000, 20000,
	 "tasks[0].result[0].items_count is 3 but items holds 0", NULL},
	{"items_count mismatch", NULL,
	 RESULT("\"total_count\":9,\"items_count\":3,\"items\":[{}]"), 0, ETL_EFAIL,
	 RESP_MALFORMED, 20000, 20000, "tasks[0].result[0].items_count is 3 but items holds 1",
	 NULL},
};

static void test_envelope(void)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(env_cases); i++) {
		const struct env_case *c = &env_cases[i];
		struct api_response r;
		struct etl_error err = {0, ""};
		size_t len;
		char *body = c->file ? slurp(c->file, &len) : NULL;
		int rc;

		if (!body) {
			len = c->len ? c->len : strlen(c->body);
			body = xmalloc(len + 1);
			memcpy(body, c->body, len);
			body[len] = '\0';
		}
		rc = response_parse(body, len, &r, &err);
		if (rc != c->rc || (int)r.error != (int)c->error || !strstr(err.msg, c->msg) ||
		    (c->rc == 0 && err.msg[0]))
			fprintf(stderr, "envelope case \"%s\": rc %d error %d msg \"%s\"\n",
				c->name, rc, r.error, err.msg);
		CHECK_INT(rc, c->rc);
		CHECK_INT(r.error, c->error);
		CHECK_INT(r.status_code, c->status_code);
		CHECK_INT(r.task_status, c->task_status);
		CHECK_CONTAINS(err.msg, c->msg);
		if (c->rc == 0) {
			CHECK_STR(err.msg, "");
			if (r.n_items) {
				CHECK(r.items != JD_NONE);
				CHECK(r.items != JD_NONE && jd_type(&r.doc, r.items) == JD_ARRAY);
				CHECK(r.items != JD_NONE && jd_len(&r.doc, r.items) == r.n_items);
			}
		} else {
			CHECK_INT(err.code, ETL_EFAIL);
		}
		if (c->status_message)
			CHECK_STR(r.status_message, c->status_message);
		response_free(&r);
		response_free(&r); /* twice is harmless */
		CHECK(r.root == NULL && r.doc.nodes == NULL && r.items == JD_NONE &&
		      r.status_message == NULL);
		free(body);
	}
}

/* Details of the envelope cases that a table row cannot say. */
static void test_envelope_details(void)
{
	struct api_response r;
	struct etl_error err = {0, ""};
	size_t len;
	char *body;

	body = slurp("task_40501.json", &len);
	CHECK_INT(response_parse(body, len, &r, &err), ETL_EFAIL);
	CHECK_STR(r.task_id, "05011234-1535-0367-0000-task40501");
	CHECK_STR(err.msg, "API task error 40501: Invalid Field: 'limit'.");
	response_free(&r);
	free(body);

	body = slurp("items_null_total0.json", &len);
	CHECK_INT(response_parse(body, len, &r, &err), 0);
	CHECK_INT(r.total_count, 0);
	CHECK_INT(r.n_items, 0);
	CHECK(r.cost > 0.0199 && r.cost < 0.0201);
	CHECK_STR(r.task_id, "items-null-0001");
	{
		struct transform_ctx ctx = base_ctx();
		struct row_batch b;

		row_batch_init(&b);
		CHECK_INT(transform_page(&r, &ctx, &b, &err), 0);
		CHECK_INT(b.n_rows, 0);
		CHECK_INT(b.n_items, 0);
		CHECK_INT(b.copy.len, 0);
		row_batch_free(&b);
	}
	response_free(&r);
	free(body);

	/* cost: the task's, else the top level's; an integer cost is fine */
	CHECK_INT(response_parse(RESULT("\"total_count\":0"), strlen(RESULT("\"total_count\":0")),
				 &r, &err), 0);
	CHECK(r.cost == 0.0);
	response_free(&r);
	{
		static const char top_cost[] =
			"{\"status_code\":20000,\"cost\":3,\"tasks\":[{\"status_code\":20000,"
			"\"result\":[{\"total_count\":0}]}]}";
		static const char both[] =
			"{\"status_code\":20000,\"cost\":3,\"tasks\":[{\"status_code\":20000,"
			"\"cost\":0.5,\"result\":[{\"total_count\":0}]}]}";

		CHECK_INT(response_parse(top_cost, strlen(top_cost), &r, &err), 0);
		CHECK(r.cost == 3.0);
		response_free(&r);
		CHECK_INT(response_parse(both, strlen(both), &r, &err), 0);
		CHECK(r.cost == 0.5);
		response_free(&r);
	}

	/* NULL body is an empty one; response_free on a zeroed struct is fine */
	CHECK_INT(response_parse(NULL, 0, &r, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "empty body");
	response_free(&r);
	memset(&r, 0, sizeof(r));
	response_free(&r);
	response_free(NULL);

	/* a lone-surrogate escape is refused (jsonb refuses it too), and an
	   escaped backslash before u0000 is no NUL */
	{
		static const char s1[] = "{\"status_code\":40000,\"status_message\":\"a\\ud800b\"}";
		static const char s2[] = "{\"status_code\":40000,\"a\\\\u0000b\":\"\\\\u0000\"}";

		CHECK_INT(response_parse(s1, strlen(s1), &r, &err), ETL_EFAIL);
		CHECK_INT(r.error, RESP_MALFORMED);
		CHECK_STR(err.msg, "malformed response: lone UTF-16 surrogate \\uD800 at byte 40");
		response_free(&r);
		CHECK_INT(response_parse(s2, strlen(s2), &r, &err), ETL_EFAIL);
		CHECK_INT(r.error, RESP_API_STATUS);
		response_free(&r);
	}
}

/* 10000 '[' (and the same closed): a depth error, not a stack overflow. */
static void test_deep_nesting(void)
{
	struct api_response r;
	struct etl_error err = {0, ""};
	size_t n = 10000, i;
	char *body = xmalloc(2 * n + 1);

	/* 50 levels inside an unknown field are within the limit: kept in extra */
	{
		struct transform_ctx ctx = base_ctx();
		struct row_batch b;
		struct strbuf page, want;

		sb_init(&page);
		sb_init(&want);
		sb_puts(&want, "{\"deep\":");
		for (i = 0; i < 50; i++)
			sb_putc(&want, '[');
		sb_putc(&want, '1');
		for (i = 0; i < 50; i++)
			sb_putc(&want, ']');
		sb_putc(&want, '}');
		sb_printf(&page, ONE(",\"deep\":%.*s"), (int)(want.len - 9), want.data + 8);
		row_batch_init(&b);
		CHECK_INT(run_page(page.data, page.len, &ctx, &b, &err), 0);
		{
			char *f = batch_field(&b, 0, COL_EXTRA);

			CHECK_STR(f, want.data);
			free(f);
		}
		row_batch_free(&b);
		sb_free(&page);
		sb_free(&want);
	}

	memset(body, '[', n);
	CHECK_INT(response_parse(body, n, &r, &err), ETL_EFAIL);
	CHECK_INT(r.error, RESP_MALFORMED);
	CHECK_CONTAINS(err.msg, "nested deeper than 64 levels at byte 64");
	response_free(&r);
	for (i = 0; i < n; i++)
		body[n + i] = ']';
	CHECK_INT(response_parse(body, 2 * n, &r, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "nested deeper than 64 levels");
	response_free(&r);
	for (i = 0; i < n; i++)
		memcpy(body + 2 * i, "{\"", 2);
	CHECK_INT(response_parse(body, 2 * n, &r, &err), ETL_EFAIL);
	CHECK_INT(r.error, RESP_MALFORMED);
	response_free(&r);
	free(body);
}

/* Every proper prefix of a page is malformed; none crashes or leaks. */
static void test_truncations(void)
{
	static const char *const files[] = {"partial_page.json", "current_page.json"};
	size_t f, len, cut, end, fails, steps;

	for (f = 0; f < ETL_ARRAY_LEN(files); f++) {
		char *body = slurp(files[f], &len);

		end = (size_t)(strrchr(body, '}') - body) + 1;
		fails = steps = 0;
		for (cut = 0; cut < end; cut += f == 0 ? 1 : 7) {
			struct api_response r;
			struct etl_error err = {0, ""};
			char *copy = xmalloc(cut + 1);

			/* its own allocation, so ASan sees a read past the cut */
			memcpy(copy, body, cut);
			if (response_parse(copy, cut, &r, &err) == ETL_EFAIL &&
			    r.error == RESP_MALFORMED && err.msg[0])
				fails++;
			steps++;
			response_free(&r);
			free(copy);
		}
		CHECK_INT(fails, steps);
		free(body);
	}
}

/*
 * Byte mutations of a page: whatever the result, parse and transform either
 * succeed or fail with a message, and the batch holds whole rows only.
 */
static void test_mutations(void)
{
	static const char subst[] = {'"', '{', '}', '[', '\\', '0', '-', 'x', ':', ',', '\0'};
	struct transform_ctx ctx = base_ctx();
	size_t len, i, s, ok = 0, bad = 0;
	char *body = slurp("partial_page.json", &len);

	ctx.targets = three_targets;
	ctx.n_targets = 3;
	for (i = 0; i < len; i++) {
		for (s = 0; s < sizeof(subst) + 1; s++) {
			char *copy = xmalloc(len);
			struct row_batch b;
			struct etl_error err = {0, ""};
			int rc;

			memcpy(copy, body, len);
			copy[i] = s < sizeof(subst) ? subst[s] : (char)0xC3;
			row_batch_init(&b);
			rc = run_page(copy, len, &ctx, &b, &err);
			if (rc == 0) {
				ok++;
				CHECK(b.n_rows == 0 || b.copy.data[b.copy.len - 1] == '\n');
			} else {
				bad++;
				if (!err.msg[0])
					CHECK(err.msg[0]);
				if (b.copy.len != 0)
					CHECK_INT(b.copy.len, 0);
			}
			row_batch_free(&b);
			free(copy);
		}
	}
	CHECK(ok > 0);
	CHECK(bad > 0);
	free(body);
}

/* ------------------------------------------------------------ bad items */


static const struct item_case {
	const char *name;
	const char *body;
	int rc;
	size_t rows;
	const char *msg;   /* substring of err.msg; or, when rc is 0, of the batch */
} item_cases[] = {
	/* integers */
	{"rank string", ONE(",\"rank\":\"5\""), ETL_EFAIL, 0,
	 "malformed item 0 (position 100), target key \"1\", rank: expected an integer or null, "
	 "got string \"5\""},
	{"rank fraction", ONE(",\"rank\":1.5"), ETL_EFAIL, 0,
	 "rank: expected an integer, got a fraction: number 1.5"},
	{"rank past int32", ONE(",\"rank\":3000000000"), ETL_EFAIL, 0,
	 "rank: integer 3000000000 is out of range for a 32-bit integer"},
	{"rank 2.0", ONE(",\"rank\":2.0"), 0, 1, "\t\\N\t2\t\\N\t"},
	/* judged from the token, never through a double */
	{"rank 2.0000000000000001", ONE(",\"rank\":2.0000000000000001"), ETL_EFAIL, 0,
	 "target key \"1\", rank: expected an integer, got a fraction: number 2.0000000000000001"},
	{"backlinks 2^53+1", ONE(",\"backlinks\":9007199254740993.0"), 0, 1,
	 "\t9007199254740993\t"},
	{"broken_pages 1e-400", ONE(",\"broken_pages\":1e-400"), ETL_EFAIL, 0,
	 "broken_pages: expected an integer, got a fraction: number 1e-400"},
	{"rank 20e-1", ONE(",\"rank\":20e-1"), 0, 1, "\t\\N\t2\t\\N\t"},
	{"rank 0.2e1", ONE(",\"rank\":0.2e1"), 0, 1, "\t\\N\t2\t\\N\t"},
	{"rank 2e0", ONE(",\"rank\":2e0"), 0, 1, "\t\\N\t2\t\\N\t"},
	{"rank -0.0", ONE(",\"rank\":-0.0"), 0, 1, "\t\\N\t0\t\\N\t"},
	{"rank 0e999999999999", ONE(",\"rank\":0e999999999999"), 0, 1, "\t\\N\t0\t\\N\t"},
	{"rank 25e-1", ONE(",\"rank\":25e-1"), ETL_EFAIL, 0, "rank: expected an integer, got a fraction"},
	{"rank int32 max", ONE(",\"rank\":2147483647.000"), 0, 1, "\t2147483647\t"},
	{"rank past int32", ONE(",\"rank\":2147483648e0"), ETL_EFAIL, 0,
	 "rank: number 2147483648e0 is out of range for a 32-bit integer"},
	{"backlinks 19 digits", ONE(",\"backlinks\":12345678901234567890e-1"), 0, 1,
	 "\t1234567890123456789\t"},
	{"backlinks int64 max", ONE(",\"backlinks\":9.223372036854775807e18"), 0, 1,
	 "\t9223372036854775807\t"},
	{"backlinks past int64", ONE(",\"backlinks\":9223372036854775808.0"), ETL_EFAIL, 0,
	 "backlinks: number 9223372036854775808.0 is out of range"},
	{"backlinks int64 min", ONE(",\"backlinks\":-9223372036854775808.0"), 0, 1,
	 "\t-9223372036854775808\t"},
	{"backlinks below int64", ONE(",\"backlinks\":-9223372036854775809.0"), ETL_EFAIL, 0,
	 "backlinks: number -9223372036854775809.0 is out of range"},
	{"backlinks 1e-0", ONE(",\"backlinks\":1E-0"), 0, 1, "\t1\t"},
	{"map value 1.0...01", ONE(",\"referring_links_tld\":{\"a\":1.0000000000000000001}"),
	 ETL_EFAIL, 0, "referring_links_tld[\"a\"]: expected an integer, got a fraction"},
	{"count 2.5e0", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
			     "\"intersections_count\":2.5e0}]"),
	 ETL_EFAIL, 0, "intersections_count: expected an integer, got a fraction"},
	{"rank 1e3", ONE(",\"rank\":1e3"), 0, 1, "\t\\N\t1000\t\\N\t"},
	{"rank -0", ONE(",\"rank\":-0"), 0, 1, "\t\\N\t0\t\\N\t"},
	{"rank negative", ONE(",\"rank\":-1"), 0, 1, "\t\\N\t-1\t\\N\t"},
	{"spam below int32", ONE(",\"backlinks_spam_score\":-2147483649"), ETL_EFAIL, 0,
	 "backlinks_spam_score: integer -2147483649 is out of range for a 32-bit integer"},
	{"spam int32 min", ONE(",\"backlinks_spam_score\":-2147483648"), 0, 1, "\t-2147483648\t"},
	{"backlinks 20 digits", ONE(",\"backlinks\":12345678901234567890"), ETL_EFAIL, 0,
	 "target key \"1\", backlinks: integer 12345678901234567890 is out of range for a 64-bit "
	 "integer"},
	{"backlinks uint64 max", ONE(",\"backlinks\":18446744073709551615"), ETL_EFAIL, 0,
	 "backlinks: integer 18446744073709551615 is out of range"},
	{"backlinks int64 min", ONE(",\"backlinks\":-9223372036854775808"), 0, 1,
	 "\t-9223372036854775808\t"},
	{"backlinks 1e19", ONE(",\"backlinks\":1e19"), ETL_EFAIL, 0,
	 "backlinks: number 1e19 is out of range for a 64-bit integer"},
	{"backlinks 1e400", ONE(",\"backlinks\":1e400"), ETL_EFAIL, 0,
	 "backlinks: number 1e400 is out of range"},
	{"backlinks bool", ONE(",\"backlinks\":true"), ETL_EFAIL, 0,
	 "backlinks: expected an integer or null, got boolean true"},
	{"backlinks object", ONE(",\"backlinks\":{\"n\":1}"), ETL_EFAIL, 0,
	 "backlinks: expected an integer or null, got object {\"n\":1}"},
	{"pages array", ONE(",\"referring_pages\":[1]"), ETL_EFAIL, 0,
	 "referring_pages: expected an integer or null, got array [1]"},
	{"count past int32", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				  "\"summary\":{\"intersections_count\":3000000000}}]"),
	 ETL_EFAIL, 0, "summary.intersections_count: integer 3000000000 is out of range"},
	{"count string", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
			      "\"summary\":{\"intersections_count\":\"2\"}}]"),
	 ETL_EFAIL, 0, "summary.intersections_count: expected an integer or null, got string"},
	{"counts differ", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
			       "\"summary\":{\"intersections_count\":2},"
			       "\"intersections_count\":3}]"),
	 ETL_EFAIL, 0, "summary.intersections_count 2 and intersections_count 3 differ"},
	{"counts agree", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
			      "\"summary\":{\"intersections_count\":2},"
			      "\"intersections_count\":2}]"),
	 0, 1, "\t100\t2\t"},
	{"summary count null", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				    "\"summary\":{\"intersections_count\":null},"
				    "\"intersections_count\":4}]"),
	 0, 1, "\t100\t4\t"},
	{"summary null", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
			      "\"summary\":null}]"),
	 0, 1, "\t100\t\\N\t"},
	{"summary string", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				"\"summary\":\"2\"}]"),
	 ETL_EFAIL, 0, "summary: expected an object or null, got string"},

	/* strings and times */
	{"target missing", PAGE("[{\"domain_intersection\":{\"1\":{\"rank\":1}}}]"), ETL_EFAIL,
	 0,
	 "target key \"1\", target: expected the referring domain, a non-empty string; "
	 "got null"},
	{"target empty", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"\"}}}]"), ETL_EFAIL,
	 0, "target: expected the referring domain, a non-empty string; got string \"\""},
	{"target number", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":5}}}]"), ETL_EFAIL,
	 0, "got integer 5"},
	{"target NUL", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\\u0000b\"}}}]"),
	 ETL_EFAIL, 0, "target: holds \\u0000, which text cannot store"},
	{"type number", ONE(",\"type\":5"), ETL_EFAIL, 0,
	 "type: expected a string or null, got integer 5"},
	{"type NUL", ONE(",\"type\":\"x\\u0000\""), ETL_EFAIL, 0, "type: holds \\u0000"},
	{"type control chars", ONE(",\"type\":\"a\\u0001b\\u001fc\""), 0, 1,
	 "\ta\x01" "b\x1f" "c\t"},
	{"first_seen word", ONE(",\"first_seen\":\"yesterday\""), ETL_EFAIL, 0,
	 "first_seen: expected a time \"YYYY-MM-DD HH:MM:SS +HH:MM\" or null, got string "
	 "\"yesterday\""},
	{"first_seen number", ONE(",\"first_seen\":1630096134"), ETL_EFAIL, 0,
	 "first_seen: expected a time"},
	{"lost_date Feb 29 2021", ONE(",\"lost_date\":\"2021-02-29 00:00:00 +00:00\""),
	 ETL_EFAIL, 0, "lost_date: expected a time"},
	{"lost_date NUL", ONE(",\"lost_date\":\"2021-02-28 00:00:00 +00:00\\u0000\""), ETL_EFAIL,
	 0, "lost_date: expected a time"},

	/* maps */
	{"map value string", ONE(",\"referring_links_tld\":{\"net\":\"9\"}"), ETL_EFAIL, 0,
	 "referring_links_tld[\"net\"]: expected an integer or null, got string \"9\""},
	{"map value fraction", ONE(",\"referring_links_types\":{\"anchor\":1.5}"), ETL_EFAIL, 0,
	 "referring_links_types[\"anchor\"]: expected an integer, got a fraction"},
	{"map value object", ONE(",\"referring_links_countries\":{\"US\":{}}"), ETL_EFAIL, 0,
	 "referring_links_countries[\"US\"]: expected an integer or null, got object"},
	{"map value past int64", ONE(",\"referring_links_tld\":{\"x\":9223372036854775808}"),
	 ETL_EFAIL, 0, "referring_links_tld[\"x\"]: integer 9223372036854775808 is out of range"},
	{"map array", ONE(",\"referring_links_tld\":[]"), ETL_EFAIL, 0,
	 "referring_links_tld: expected an object or null, got array"},
	{"map string", ONE(",\"referring_links_attributes\":\"nofollow\""), ETL_EFAIL, 0,
	 "referring_links_attributes: expected an object or null, got string"},
	{"map null value", ONE(",\"referring_links_tld\":{\"net\":null,\"com\":2.0}"), 0, 1,
	 "\t{\"net\":null,\"com\":2}\t"},
	{"map empty key", ONE(",\"referring_links_semantic_locations\":{\"\":1}"), 0, 1,
	 "\t{\"\":1}\t"},

	/* keys and shapes */
	{"key past n_targets", PAGE("[{\"domain_intersection\":{\"3\":{\"target\":\"a\"}}}]"),
	 ETL_EFAIL, 0,
	 "domain_intersection: key \"3\" is not a target key (this set has 2 targets)"},
	{"key 0", PAGE("[{\"domain_intersection\":{\"0\":{\"target\":\"a\"}}}]"), ETL_EFAIL, 0,
	 "key \"0\" is not a target key"},
	{"key 01", PAGE("[{\"domain_intersection\":{\"01\":{\"target\":\"a\"}}}]"), ETL_EFAIL, 0,
	 "key \"01\" is not a target key"},
	{"key word", PAGE("[{\"domain_intersection\":{\"x\":{\"target\":\"a\"}}}]"), ETL_EFAIL, 0,
	 "key \"x\" is not a target key"},
	{"legacy key 21", PAGE("[{\"21\":{\"target\":\"a\"}}]"), ETL_EFAIL, 0,
	 "malformed item 0 (position 100): key \"21\" is not a target key"},
	{"legacy key 3", PAGE("[{\"1\":{\"target\":\"a\"},\"3\":{\"target\":\"a\"}}]"), ETL_EFAIL,
	 0, "key \"3\" is not a target key (this set has 2 targets)"},
	{"legacy huge key", PAGE("[{\"99999999999999999999\":{\"target\":\"a\"}}]"), ETL_EFAIL, 0,
	 "is not a target key"},
	{"mixed shapes", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
			      "\"2\":{\"target\":\"a\"}}]"),
	 ETL_EFAIL, 0, "both domain_intersection and target keys"},
	{"item number", PAGE("[5]"), ETL_EFAIL, 0,
	 "malformed item 0 (position 100): expected an object, got integer"},
	{"item null", PAGE("[" ITEM1("") ",null]"), ETL_EFAIL, 0,
	 "malformed item 1 (position 101): expected an object, got null"},
	{"item empty", PAGE("[{}]"), ETL_EFAIL, 0, "no target data"},
	{"di empty", PAGE("[{\"domain_intersection\":{}}]"), ETL_EFAIL, 0, "no target data"},
	{"di null", PAGE("[{\"domain_intersection\":null}]"), ETL_EFAIL, 0, "no target data"},
	{"di all null", PAGE("[{\"domain_intersection\":{\"1\":null,\"2\":null}}]"), ETL_EFAIL, 0,
	 "no target data"},
	{"di array", PAGE("[{\"domain_intersection\":[{\"target\":\"a\"}]}]"), ETL_EFAIL, 0,
	 "domain_intersection: expected an object, got array"},
	{"per-target string", PAGE("[{\"domain_intersection\":{\"1\":\"a\"}}]"), ETL_EFAIL, 0,
	 "target key \"1\": expected an object or null, got string"},
	{"legacy per-target array", PAGE("[{\"1\":[]}]"), ETL_EFAIL, 0,
	 "target key \"1\": expected an object or null, got array"},

	/* extra */
	{"extra _item clash", ONE(",\"_item\":1"), ETL_EFAIL, 0,
	 "_item: a field of this name would be confused with extra's own \"_item\""},
	{"extra NUL", ONE(",\"new\":\"a\\u0000\""), ETL_EFAIL, 0,
	 "new: a string holds \\u0000, which jsonb cannot store"},
	{"extra deep NUL", ONE(",\"new\":[{\"x\":[\"\\u0000\"]}]"), ETL_EFAIL, 0,
	 "new: a string holds \\u0000"},
	{"extra item NUL", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				"\"note\":\"\\u0000\"}]"),
	 ETL_EFAIL, 0, "note: a string holds \\u0000"},
	{"extra summary NUL", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				   "\"summary\":{\"s\":\"\\u0000\"}}]"),
	 ETL_EFAIL, 0, "s: a string in summary holds \\u0000"},
	{"extra slash and unicode", ONE(",\"u\":\"a/b \\u00e9\""), 0, 1,
	 "\t{\"u\":\"a/b \xc3\xa9\"}\t"},
	{"extra control char", ONE(",\"u\":\"\\u0007\""), 0, 1, "\t{\"u\":\"\\\\u0007\"}\t"},
	{"extra double text", ONE(",\"d\":[0.10,-1.5E+3,1e400]"), 0, 1,
	 "\t{\"d\":[0.10,-1.5E+3,1e400]}\t"},
	/* numbers in extra stay within what jsonb (numeric) stores */
	{"extra 1e131072", ONE(",\"new_field\":1e131072"), ETL_EFAIL, 0,
	 "target key \"1\", new_field: the number 1e131072 is beyond PostgreSQL numeric's range "
	 "(131072 digits before the point, 16383 after), which jsonb cannot store"},
	{"extra 1e131071", ONE(",\"n\":1e131071"), 0, 1, "\t{\"n\":1e131071}\t"},
	{"extra 0.1e131073", ONE(",\"n\":0.01e131073"), 0, 1, "\t{\"n\":0.01e131073}\t"},
	{"extra 10e131071", ONE(",\"n\":10e131071"), ETL_EFAIL, 0, "n: the number 10e131071 is beyond"},
	{"extra 1e-16383", ONE(",\"n\":1e-16383"), 0, 1, "\t{\"n\":1e-16383}\t"},
	{"extra 1e-16384", ONE(",\"n\":[{\"x\":[1e-16384]}]"), ETL_EFAIL, 0,
	 "n: the number 1e-16384 is beyond"},
	{"extra 1.50e-16382", ONE(",\"n\":1.50e-16382"), ETL_EFAIL, 0, "the number 1.50e-16382"},
	{"extra 1.5e-16382", ONE(",\"n\":1.5e-16382"), 0, 1, "\t{\"n\":1.5e-16382}\t"},
	{"extra 0e1073741823", ONE(",\"n\":0e1073741823"), ETL_EFAIL, 0, "the number 0e1073741823"},
	{"extra 0e1073741822", ONE(",\"n\":0e1073741822"), 0, 1, "\t{\"n\":0e1073741822}\t"},
	{"extra 0.0e-16383", ONE(",\"n\":0.0e-16383"), ETL_EFAIL, 0, "the number 0.0e-16383"},
	{"extra 1234567890e131063", ONE(",\"n\":1234567890e131063"), ETL_EFAIL, 0, "is beyond"},
	{"extra 123456789e131063", ONE(",\"n\":123456789e131063"), 0, 1, "123456789e131063}\t"},
	{"item extra 1e131072", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				     "\"new_field\":1e131072}]"),
	 ETL_EFAIL, 0, "malformed item 0 (position 100), new_field: the number 1e131072 is beyond"},
	{"summary extra 1e131072", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
					"\"summary\":{\"s\":[-1e131072]}}]"),
	 ETL_EFAIL, 0, "s: the number -1e131072 in summary is beyond"},

	/* repeated keys, at any level: the parser refuses the body */
	{"repeat in per-target", PAGE("[" ITEM1(",\"rank\":1,\"rank\":2") "]"), ETL_EFAIL, 0,
	 "malformed response: an object repeats the key \"rank\" at byte"},
	{"repeat in map", ONE(",\"referring_links_tld\":{\"a\":1,\"a\":2}"), ETL_EFAIL, 0,
	 "an object repeats the key \"a\" at byte"},
	{"repeat in unknown", ONE(",\"x\":[{\"a\":1,\"a\":2}]"), ETL_EFAIL, 0,
	 "an object repeats the key \"a\" at byte"},
	{"repeat in item", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				"\"n\":1,\"n\":2}]"),
	 ETL_EFAIL, 0, "an object repeats the key \"n\" at byte"},
	{"repeat in item unknown", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
					"\"n\":{\"a\":{\"b\":1,\"b\":1}}}]"),
	 ETL_EFAIL, 0, "an object repeats the key \"b\" at byte"},
	{"repeat in di", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"},"
			      "\"1\":{\"target\":\"b\"}}}]"),
	 ETL_EFAIL, 0, "an object repeats the key \"1\" at byte"},
	{"repeat in summary", PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a\"}},"
				   "\"summary\":{\"intersections_count\":1,"
				   "\"intersections_count\":2}}]"),
	 ETL_EFAIL, 0, "an object repeats the key \"intersections_count\" at byte"},
	{"repeat in legacy", PAGE("[{\"1\":{\"target\":\"a\"},\"1\":{\"target\":\"b\"}}]"),
	 ETL_EFAIL, 0, "an object repeats the key \"1\" at byte"},
	{"repeat in OK envelope", "{\"version\":\"1\",\"version\":\"2\",\"status_code\":20000,"
				  "\"tasks\":[{\"status_code\":20000,"
				  "\"result\":[{\"total_count\":0,"
				  "\"items\":[]}]}]}",
	 ETL_EFAIL, 0, "an object repeats the key \"version\" at byte"},
	{"repeat, items absent", "{\"tasks_count\":1,\"tasks_count\":1,\"status_code\":20000,"
				 "\"tasks\":[{\"status_code\":20000,"
				 "\"result\":[{\"total_count\":0}]}]}",
	 ETL_EFAIL, 0, "an object repeats the key \"tasks_count\" at byte"},
	{"no repeat, items absent", "{\"status_code\":20000,\"tasks\":[{\"status_code\":20000,"
				    "\"result\":[{\"total_count\":0}]}]}",
	 0, 0, ""},
	{"no repeat, items null", "{\"status_code\":20000,\"tasks\":[{\"status_code\":20000,"
				  "\"result\":[{\"total_count\":0,\"items\":null}]}]}",
	 0, 0, ""},

	/* the page */
	{"two items, two rows", PAGE("[" ITEM1("") "," ITEM1("") "]"), 0, 2,
	 "\t1\texample.com\t101\t"},
};

static void test_items(void)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(item_cases); i++) {
		const struct item_case *c = &item_cases[i];
		struct transform_ctx ctx = base_ctx();
		struct row_batch b;
		struct etl_error err = {0, ""};
		int rc;

		row_batch_init(&b);
		rc = run_page(c->body, strlen(c->body), &ctx, &b, &err);
		if (rc != c->rc || b.n_rows != c->rows ||
		    !strstr(c->rc ? err.msg : (b.copy.data ? b.copy.data : ""), c->msg))
			fprintf(stderr,
				"item case \"%s\": rc %d rows %zu msg \"%s\" batch \"%s\"\n",
				c->name, rc, b.n_rows, err.msg, b.copy.data ? b.copy.data : "");
		CHECK_INT(rc, c->rc);
		CHECK_INT(b.n_rows, c->rows);
		if (c->rc) {
			CHECK_CONTAINS(err.msg, c->msg);
			CHECK_INT(b.copy.len, 0);
			CHECK_INT(b.n_items, 0);
		} else {
			CHECK_CONTAINS(b.copy.data ? b.copy.data : "", c->msg);
			CHECK_STR(err.msg, "");
		}
		row_batch_free(&b);
	}
}

static const struct time_case {
	const char *value;
	int ok;
} time_cases[] = {
	{"2021-08-27 20:28:54 +00:00", 1},
	{"2021-08-27 20:28:54", 1},
	{"2021-08-27 20:28:54Z", 1},
	{"2021-08-27 20:28:54 Z", 1},
	{"2021-08-27 20:28:54+00:00", 1},
	{"2021-08-27 20:28:54 +05", 1},
	{"2021-08-27 20:28:54 -03:30", 1},
	{"2021-08-27 20:28:54 +14:00", 1},
	{"2024-02-29 00:00:00 +00:00", 1},
	{"2000-02-29 00:00:00 +00:00", 1},
	{"1970-01-01 00:00:00 +00:00", 1},
	{"2100-12-31 23:59:59 +00:00", 1},
	{"2021-08-27T20:28:54Z", 0},
	{"2021-8-27 20:28:54 +00:00", 0},
	{"2021-08-27 24:00:00 +00:00", 0},
	{"2021-08-27 20:60:00 +00:00", 0},
	{"2021-08-27 20:28:60 +00:00", 0},
	{"2021-02-29 00:00:00 +00:00", 0},
	{"2100-02-29 00:00:00 +00:00", 0},
	{"2021-13-01 00:00:00 +00:00", 0},
	{"2021-00-10 00:00:00 +00:00", 0},
	{"2021-04-31 00:00:00 +00:00", 0},
	{"2021-04-00 00:00:00 +00:00", 0},
	{"1969-12-31 23:59:59 +00:00", 0},
	{"2101-01-01 00:00:00 +00:00", 0},
	{"2021-08-27 20:28:54 +0000", 0},
	{"2021-08-27 20:28:54 +15:00", 0},
	{"2021-08-27 20:28:54 +00:60", 0},
	{"2021-08-27 20:28:54  +00:00", 0},
	{"2021-08-27 20:28:54 +00:00 ", 0},
	{"2021-08-27 20:28:54 UTC", 0},
	{"2021-08-27 20:28:54.123 +00:00", 0},
	{"2021-08-27 20:28:5a +00:00", 0},
	{"-021-08-27 20:28:54 +00:00", 0},
	{"2021-08-27", 0},
	{"", 0},
};

static void test_times(void)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(time_cases); i++) {
		const struct time_case *c = &time_cases[i];
		struct transform_ctx ctx = base_ctx();
		struct row_batch b;
		struct etl_error err = {0, ""};
		char *body = xasprintf(ONE(",\"first_seen\":\"%s\""), c->value), *f;
		int rc;

		row_batch_init(&b);
		rc = run_page(body, strlen(body), &ctx, &b, &err);
		if ((rc == 0) != c->ok)
			fprintf(stderr, "time \"%s\": rc %d (%s)\n", c->value, rc, err.msg);
		CHECK_INT(rc == 0, c->ok);
		if (rc == 0) {
			/* written as given */
			f = batch_field(&b, 0, 10);
			CHECK_STR(f, c->value);
			free(f);
		} else {
			CHECK_CONTAINS(err.msg, "first_seen: expected a time");
		}
		row_batch_free(&b);
		free(body);
	}
}

/* ----------------------------------------------------------- domain rows */

/*
 * A first load folds each item into its domain row (fold.h), as sql/018's
 * first_domains() would from the item's rows: NULLs ignored, sums past int8,
 * the latest first_seen by its instant, not its text. Items it cannot fold
 * (rows naming two domains, a time without a zone) leave the page without
 * domain rows, and the publish folds in SQL.
 */
static void test_domain_rows(void)
{
	static const struct {
		const char *items;
		const char *rows; /* the batch's domain rows, or NULL: unusable */
	} cases[] = {
		{"[{\"intersections_count\":2,\"domain_intersection\":{"
		 "\"1\":{\"target\":\"a.example\",\"rank\":5,\"backlinks\":9223372036854775807,"
		 "\"first_seen\":\"2021-01-01 00:30:00 +01:00\",\"backlinks_spam_score\":3,"
		 "\"referring_pages\":4},"
		 "\"2\":{\"target\":\"a.example\",\"rank\":3,\"backlinks\":9223372036854775807,"
		 "\"first_seen\":\"2020-12-31 23:45:00 +00:00\",\"backlinks_spam_score\":null}}},"
		 "{\"domain_intersection\":{\"2\":{\"target\":\"b\\\\c.example\"}}}]",
		 "7\ta.example\t2024-05-01\t2\t6\t2\t3\t18446744073709551614\t"
		 "2020-12-31 23:45:00 +00:00\t3\t4\t42\n"
		 "7\tb\\\\c.example\t2024-05-01\t1\t4\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t42\n"},
		{"[{\"domain_intersection\":{\"1\":{\"target\":\"a.example\",\"backlinks\":-5,"
		 "\"first_seen\":\"2021-01-01 00:00:00Z\"},\"2\":{\"target\":\"a.example\","
		 "\"backlinks\":-9223372036854775807,\"first_seen\":\"2021-01-01 01:00:00 +02\"}}}]",
		 "7\ta.example\t2024-05-01\t2\t6\t\\N\t\\N\t-9223372036854775812\t"
		 "2021-01-01 00:00:00Z\t\\N\t\\N\t42\n"},
		{"[{\"domain_intersection\":{\"1\":{\"target\":\"a.example\"},"
		 "\"2\":{\"target\":\"b.example\"}}}]", NULL},
		{"[{\"domain_intersection\":{\"1\":{\"target\":\"a.example\","
		 "\"first_seen\":\"2021-01-01 00:00:00\"}}}]", NULL},
	};
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		struct transform_ctx ctx = base_ctx();
		struct row_batch b;
		struct etl_error err = {0, ""};
		char *body = xasprintf(ENV_HEAD "%s" ENV_TAIL, cases[i].items);
		int rc;

		ctx.domains = 1;
		row_batch_init(&b);
		rc = run_page(body, strlen(body), &ctx, &b, &err);
		if (rc != 0)
			fprintf(stderr, "domain rows case %zu: %s\n", i, err.msg);
		CHECK_INT(rc, 0);
		CHECK_INT(b.domains_unusable, cases[i].rows == NULL);
		if (cases[i].rows)
			CHECK_STR(b.domains.data, cases[i].rows);
		/* without the flag, none */
		ctx.domains = 0;
		row_batch_reset(&b);
		CHECK_INT(run_page(body, strlen(body), &ctx, &b, &err), 0);
		CHECK_INT(b.domains.len, 0);
		row_batch_free(&b);
		free(body);
	}
}

/* The field'th tab-separated field of a COPY line (not NUL-ended). */
static const char *line_field(const char *line, int field, size_t *len)
{
	const char *end;

	while (field-- > 0)
		line = strchr(line, '\t') + 1;
	end = line + strcspn(line, "\t\n");
	*len = (size_t)(end - line);
	return line;
}

/*
 * On a night (ctx.current set), only the items with a row to write get a
 * domain row (sql/021): a map holding every row of the page's first item
 * leaves that item out, and no other.
 */
static void test_night_domain_rows(void)
{
	struct transform_ctx ctx = base_ctx();
	struct row_batch all, night;
	struct etl_error err = {0, ""};
	struct cur_map map;
	const char *line, *f;
	unsigned char digest[16];
	uint64_t hi;
	uint32_t lo;
	size_t len, i, first_len = 0, n_all = 0, n_night = 0;
	char first[256] = "";

	ctx.domains = 1;
	row_batch_init(&all);
	CHECK_INT(run_file("current_page.json", &ctx, &all, &err), 0);
	memset(&map, 0, sizeof(map));
	/* the first item's rows: every line with the first line's domain */
	for (line = all.copy.data; *line; line = strchr(line, '\n') + 1) {
		f = line_field(line, 2, &len);
		if (!first[0]) {
			CHECK(len < sizeof(first));
			memcpy(first, f, len);
			first_len = len;
		}
		if (len != first_len || memcmp(f, first, len) != 0)
			continue;
		line_field(line, 31, &len); /* the digest */
		CHECK_INT(len, 32);
		for (i = 0; i < 16; i++)
			CHECK_INT(sscanf(line_field(line, 31, &len) + 2 * i, "%2hhx", &digest[i]), 1);
		f = line_field(line, 3, &len);
		cur_map_fp(first, first_len, atoi(f), digest, &hi, &lo);
		cur_map_add(&map, hi, lo);
	}
	CHECK(map.n >= 1);
	cur_map_seal(&map);
	for (line = all.domains.data; line && *line; line = strchr(line, '\n') + 1)
		n_all++;

	ctx.current = &map;
	row_batch_init(&night);
	CHECK_INT(run_file("current_page.json", &ctx, &night, &err), 0);
	CHECK_INT(night.domains_unusable, 0);
	for (line = night.domains.data; line && *line; line = strchr(line, '\n') + 1) {
		n_night++;
		f = line_field(line, 1, &len); /* FOLD_COLUMNS: the referring domain */
		CHECK(len != first_len || memcmp(f, first, len) != 0);
	}
	CHECK_INT(n_night, n_all - 1);
	/* the other items' rows are the same as without the map */
	CHECK_INT(night.copy.len, all.copy.len);
	cur_map_free(&map);
	row_batch_free(&all);
	row_batch_free(&night);
}

/* -------------------------------------------------- batch and ctx rules */

static void test_failure_keeps_batch(void)
{
	/* item 0 is good and its rows get written before item 1 fails */
	static const char bad_second[] =
		PAGE("[" ITEM1(",\"rank\":1") "," ITEM1(",\"rank\":\"x\"") "]");
	struct transform_ctx ctx = base_ctx();
	struct row_batch b;
	struct etl_error err = {0, ""};
	char *before;
	size_t len;

	row_batch_init(&b);
	CHECK_INT(run_file("current_page.json", &ctx, &b, &err), 0);
	before = xstrndup(b.copy.data, b.copy.len);
	len = b.copy.len;

	CHECK_INT(run_page(bad_second, strlen(bad_second), &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "malformed item 1 (position 101), target key \"1\", rank:");
	CHECK_INT(b.copy.len, len);
	CHECK(memcmp(b.copy.data, before, len) == 0);
	CHECK_INT(b.copy.data[len], '\0');
	CHECK_INT(b.n_rows, 6);
	CHECK_INT(b.n_items, 3);

	/* a failed row halfway through its columns is cut too */
	CHECK_INT(run_page(ONE(",\"referring_links_countries\":5"),
			   strlen(ONE(",\"referring_links_countries\":5")), &ctx, &b, &err),
		  ETL_EFAIL);
	CHECK_INT(b.copy.len, len);
	CHECK(memcmp(b.copy.data, before, len) == 0);

	/* more items than asked for */
	ctx.limit = 1;
	CHECK_INT(run_page(PAGE("[" ITEM1("") "," ITEM1("") "]"),
			   strlen(PAGE("[" ITEM1("") "," ITEM1("") "]")), &ctx, &b, &err),
		  ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "malformed page: 2 items, but only 1 were asked for");
	CHECK_INT(b.copy.len, len);
	CHECK_INT(b.n_rows, 6);

	/* and the batch still works afterwards */
	ctx.limit = 10;
	CHECK_INT(run_page(ONE(""), strlen(ONE("")), &ctx, &b, &err), 0);
	CHECK_INT(b.n_rows, 7);
	CHECK_INT(b.n_items, 4);
	CHECK(memcmp(b.copy.data, before, len) == 0);

	row_batch_reset(&b);
	CHECK_INT(b.copy.len, 0);
	CHECK_INT(b.n_rows, 0);
	CHECK_INT(b.n_items, 0);
	row_batch_free(&b);
	CHECK(b.copy.data == NULL);
	row_batch_free(&b);
	free(before);
}

static void test_ctx_rules(void)
{
	static char bad[] = "ex\xff.com";
	static char *const bad_utf8[] = {bad, tgt_org};
	struct transform_ctx ctx;
	struct api_response r, failed;
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t len;
	char *body = slurp("current_page.json", &len);

	CHECK_INT(response_parse(body, len, &r, &err), 0);
	row_batch_init(&b);

	ctx = base_ctx();
	ctx.snapshot_date = "2024-02-30";
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "snapshot_date \"2024-02-30\" is not a YYYY-MM-DD date");
	ctx = base_ctx();
	ctx.limit = 0;
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "limit 0");
	ctx = base_ctx();
	ctx.n_targets = 0;
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "no targets");
	ctx = base_ctx();
	ctx.targets = bad_utf8;
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "target 1 is not valid UTF-8");
	/* the fixture echoes offset 100 and two targets: what follows asks for
	   others, so it takes a page that echoes nothing */
	response_free(&r);
	{
		static const char three[] =
			PAGE("[" ITEM1("") "," ITEM1("") ",{\"domain_intersection\":{"
			     "\"1\":{\"target\":\"a\"},\"2\":{\"target\":\"a\"}}}]");

		CHECK_INT(response_parse(three, strlen(three), &r, &err), 0);
	}
	ctx = base_ctx();
	ctx.offset = 2147483646;
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "position column");
	ctx.offset = 2147483645; /* positions ..645, ..646, ..647 fit */
	CHECK_INT(transform_page(&r, &ctx, &b, &err), 0);
	row_batch_reset(&b);
	/* n_targets 1: key "2" of the page is out of range */
	ctx = base_ctx();
	ctx.n_targets = 1;
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "key \"2\" is not a target key (this set has 1 targets)");
	CHECK_INT(b.copy.len, 0);

	/* a response that did not parse is not transformed */
	CHECK_INT(response_parse("{}", 2, &failed, &err), ETL_EFAIL);
	ctx = base_ctx();
	CHECK_INT(transform_page(&failed, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "not parsed successfully");
	response_free(&failed);

	row_batch_free(&b);
	response_free(&r);
	free(body);
}

/*
 * 10 MB strings: an unknown field full of characters JSON and COPY both
 * escape loads intact (extra); a 10 MB referring domain, which no btree key
 * can hold, fails the page with a short message and leaves the batch alone.
 */
static void test_big_strings(void)
{
	static const char pattern[] = "ab\\\"\t/\xc3\xa9";  /* JSON-escaped below */
	size_t n = 10 * MB, i, plen = sizeof(pattern) - 1, reps = n / plen;
	struct transform_ctx ctx = base_ctx();
	struct strbuf body, want;
	struct row_batch b;
	struct etl_error err = {0, ""};
	char *f, *dec;
	json_object *o = NULL, *v = NULL;

	sb_init(&body);
	sb_puts(&body, ENV_HEAD "[{\"domain_intersection\":{\"1\":{\"target\":\"");
	sb_puts(&body, "d.example\",\"huge\":\"");
	sb_init(&want);
	for (i = 0; i < reps; i++) {
		sb_puts(&body, "ab\\\\\\\"\\t/\xc3\xa9");
		sb_append(&want, pattern, plen);
	}
	sb_puts(&body, "\"}}}]" ENV_TAIL);

	row_batch_init(&b);
	CHECK_INT(run_page(body.data, body.len, &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 1);
	f = batch_field(&b, 0, 2);
	CHECK_STR(f, "d.example");
	free(f);

	f = batch_field(&b, 0, COL_EXTRA);
	dec = copy_unescape(f);
	if (dec)
		o = json_tokener_parse(dec);
	CHECK(o != NULL);
	if (o && json_object_object_get_ex(o, "huge", &v)) {
		CHECK_INT(json_object_get_string_len(v), want.len);
		CHECK(memcmp(json_object_get_string(v), want.data, want.len) == 0);
	} else {
		CHECK(!"extra.huge missing");
	}
	json_object_put(o);
	free(dec);
	free(f);

	/* a 10 MB referring domain */
	sb_reset(&body);
	sb_puts(&body, ENV_HEAD "[{\"domain_intersection\":{\"1\":{\"target\":\"");
	sb_reserve(&body, n);
	memset(body.data + body.len, 'd', n);
	body.len += n;
	sb_puts(&body, ".example\"}}}]" ENV_TAIL);
	{
		size_t before = b.copy.len, rows = b.n_rows;

		CHECK_INT(run_page(body.data, body.len, &ctx, &b, &err), ETL_EFAIL);
		CHECK_CONTAINS(err.msg, "the referring domain is 10485768 bytes long; at most 1024");
		CHECK(strlen(err.msg) < 300);
		CHECK_INT(b.copy.len, before);
		CHECK_INT(b.n_rows, rows);
	}
	row_batch_free(&b);

	/* a 10 MB value in the wrong place fails with a short message */
	sb_reset(&body);
	sb_puts(&body, ENV_HEAD "[{\"domain_intersection\":{\"1\":{\"target\":\"a\",\"rank\":\"");
	sb_reserve(&body, n);
	memset(body.data + body.len, '7', n);
	body.len += n;
	sb_puts(&body, "\"}}}]" ENV_TAIL);
	row_batch_init(&b);
	CHECK_INT(run_page(body.data, body.len, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "rank: expected an integer or null, got string \"777");
	CHECK_CONTAINS(err.msg, "7...\"");
	CHECK(strlen(err.msg) < 200);
	CHECK_INT(b.copy.len, 0);
	row_batch_free(&b);
	sb_free(&body);
	sb_free(&want);
}

/* ----------------------------------------------- answers to other requests */

/* a page of one item that echoes data (fields) and result[0].targets (rt) */
#define ECHO(data, rt)                                                                     \
	"{\"status_code\":20000,\"tasks\":[{\"status_code\":20000,\"data\":" data               \
	",\"result\":[{\"targets\":" rt ",\"total_count\":200,\"items\":[" ITEM1("") "]}]}]}"
#define TWO "{\"1\":\"example.com\",\"2\":\"example.org\"}"
#define DATA(targets, rest) "{\"api\":\"backlinks\",\"targets\":" targets rest "}"

static const struct echo_case {
	const char *name;
	const char *body;
	const char *msg; /* NULL: the page matches its request */
} echo_cases[] = {
	{"all echoed", ECHO(DATA(TWO, ",\"offset\":100,\"limit\":10"), TWO), NULL},
	{"nothing echoed", PAGE("[" ITEM1("") "]"), NULL},
	{"keys in another order", ECHO(DATA("{\"2\":\"example.org\",\"1\":\"example.com\"}", ""),
				       TWO),
	 NULL},
	{"data not an object", ECHO("\"x\"", TWO), NULL},
	{"offset null", ECHO(DATA(TWO, ",\"offset\":null"), TWO), NULL},
	{"other offset", ECHO(DATA(TWO, ",\"offset\":200,\"limit\":10"), TWO),
	 "answer to another request: tasks[0].data.offset is integer 200, the request's is 100"},
	{"offset as a string", ECHO(DATA(TWO, ",\"offset\":\"100\""), TWO),
	 "tasks[0].data.offset is string \"100\", the request's is 100"},
	{"other limit", ECHO(DATA(TWO, ",\"limit\":1000"), TWO),
	 "answer to another request: tasks[0].data.limit is integer 1000, the request's is 10"},
	{"other target", ECHO(DATA("{\"1\":\"example.com\",\"2\":\"other.org\"}", ""), TWO),
	 "answer to another request: tasks[0].data.targets.\"2\" is \"other.org\", the request's is "
	 "\"example.org\""},
	{"target case differs", ECHO(DATA("{\"1\":\"Example.com\",\"2\":\"example.org\"}", ""), TWO),
	 "tasks[0].data.targets.\"1\" is \"Example.com\""},
	{"one target more", ECHO(DATA("{\"1\":\"example.com\",\"2\":\"example.org\",\"3\":\"x\"}",
				      ""),
				 TWO),
	 "tasks[0].data.targets holds 3 targets, the request 2"},
	{"a key missing", ECHO(DATA("{\"1\":\"example.com\",\"3\":\"example.org\"}", ""), TWO),
	 "tasks[0].data.targets.\"2\" is missing, the request's is \"example.org\""},
	{"a target null", ECHO(DATA("{\"1\":\"example.com\",\"2\":null}", ""), TWO),
	 "tasks[0].data.targets.\"2\" is null"},
	{"targets an array", ECHO(DATA("[\"example.com\",\"example.org\"]", ""), TWO),
	 "tasks[0].data.targets is array, not an object of targets"},
	{"result targets differ", ECHO(DATA(TWO, ""), "{\"1\":\"example.net\",\"2\":\"example.org\"}"),
	 "answer to another request: tasks[0].result[0].targets.\"1\" is \"example.net\""},
};

/*
 * A response that echoes another request than the one sent (a gateway or
 * cache mixing answers up) is refused, retryably, and writes no row.
 */
static void test_other_request(void)
{
	struct transform_ctx ctx = base_ctx();
	struct api_response r;
	struct etl_error err = {0, ""};
	struct row_batch b;
	size_t i, len;
	char *body;

	row_batch_init(&b);
	for (i = 0; i < ETL_ARRAY_LEN(echo_cases); i++) {
		const struct echo_case *c = &echo_cases[i];
		int rc;

		etl_error_clear(&err);
		CHECK_INT(response_parse(c->body, strlen(c->body), &r, &err), 0);
		rc = transform_page(&r, &ctx, &b, &err);
		if ((rc == 0) != (c->msg == NULL) || (c->msg && !strstr(err.msg, c->msg)))
			fprintf(stderr, "echo case \"%s\": rc %d, \"%s\"\n", c->name, rc, err.msg);
		CHECK_INT(rc, c->msg ? ETL_EFAIL : 0);
		if (c->msg) {
			CHECK_CONTAINS(err.msg, c->msg);
			CHECK_INT(b.copy.len, 0);
			/* the same verdict from response_match(), which marks it retryable */
			CHECK_INT(response_match(&r, &ctx, &err), ETL_EFAIL);
			CHECK_INT(r.error, RESP_OTHER_REQUEST);
			CHECK_CONTAINS(err.msg, c->msg);
		} else {
			CHECK_INT(response_match(&r, &ctx, &err), 0);
			CHECK_INT(r.error, RESP_OK);
		}
		row_batch_reset(&b);
		response_free(&r);
	}

	/* one whole answer, served for the request of the next page or of
	   another target set: both refused */
	body = slurp("current_page.json", &len);
	CHECK_INT(response_parse(body, len, &r, &err), 0);
	ctx.offset = 110;
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "answer to another request: tasks[0].data.offset is integer 100");
	ctx = base_ctx();
	ctx.targets = three_targets + 1; /* example.org, example.net */
	CHECK_INT(transform_page(&r, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "tasks[0].data.targets.\"1\" is \"example.com\", the request's is "
				"\"example.org\"");
	CHECK_INT(b.copy.len, 0);
	ctx = base_ctx();
	CHECK_INT(transform_page(&r, &ctx, &b, &err), 0);
	response_free(&r);
	free(body);
	row_batch_free(&b);
}

/* --------------------------------------------------- amplification bounds */

static char long_targets[20][201];
static char *twenty_targets[20];

/* 20 targets, each `width` bytes long ("t01aaaa..."). */
static struct transform_ctx twenty_ctx(size_t width)
{
	struct transform_ctx c = base_ctx();
	size_t i;

	for (i = 0; i < 20; i++) {
		memset(long_targets[i], 'a', width);
		memcpy(long_targets[i], "t", 1);
		long_targets[i][1] = (char)('0' + (i + 1) / 10);
		long_targets[i][2] = (char)('0' + (i + 1) % 10);
		long_targets[i][width] = '\0';
		twenty_targets[i] = long_targets[i];
	}
	c.targets = twenty_targets;
	c.n_targets = 20;
	c.limit = 1000;
	return c;
}

/*
 * One item, 20 target keys and an item-level unknown field of n backslashes:
 * copied into every row's extra, with JSON's and COPY's escaping, it made a
 * batch of 80n bytes (a 32 MiB body made 1.34 GB). Stored once, in the row
 * of the lowest key present, it is 4n; the other rows keep their own.
 */
static void test_item_extras_once(void)
{
	const size_t n = 1 << 20;
	struct transform_ctx ctx = twenty_ctx(3);
	struct strbuf body;
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t i;
	char *f;

	sb_init(&body);
	sb_puts(&body, ENV_HEAD "[{\"domain_intersection\":{");
	/* key "1" absent: "2" is the lowest present */
	for (i = 2; i <= 20; i++)
		sb_printf(&body, "%s\"%zu\":{\"target\":\"r.example\"%s}", i > 2 ? "," : "", i,
			  i == 5 ? ",\"own\":5" : "");
	sb_puts(&body, "},\"summary\":{\"intersections_count\":19,\"s\":1},\"bulk\":\"");
	for (i = 0; i < n; i++)
		sb_puts(&body, "\\\\");
	sb_puts(&body, "\"}]" ENV_TAIL);

	row_batch_init(&b);
	CHECK_INT(run_page(body.data, body.len, &ctx, &b, &err), 0);
	CHECK_STR(err.msg, "");
	CHECK_INT(b.n_rows, 19);
	CHECK(b.copy.len < 4 * n + 19 * 1024);
	CHECK(b.copy.len <= TRANSFORM_MAX_COPY(body.len));
	f = batch_field(&b, 0, 3);
	CHECK_STR(f, "2");
	free(f);
	f = batch_field(&b, 0, COL_EXTRA);
	CHECK_INT(strlen(f), 4 * n + strlen("{\"_item\":{\"bulk\":\"\"},\"_summary\":{\"s\":1}}"));
	CHECK(strncmp(f, "{\"_item\":{\"bulk\":\"\\\\\\\\", 20) == 0);
	CHECK_CONTAINS(f, "\"},\"_summary\":{\"s\":1}}");
	free(f);
	for (i = 1; i < 19; i++) {
		f = batch_field(&b, i, COL_EXTRA);
		/* key "5" (row 3) keeps its own unknown field */
		CHECK_STR(f, i == 3 ? "{\"own\":5}" : "\\N");
		free(f);
	}
	row_batch_free(&b);
	sb_free(&body);
}

/*
 * The batch's cap: 1000 items of 20 tiny per-target objects and 200-byte
 * targets make ~330 bytes of COPY text per 20 bytes of body, which passes
 * twice the body plus 1 MiB: the page is refused, the batch left alone.
 */
static void test_copy_cap(void)
{
	struct transform_ctx ctx = twenty_ctx(200);
	struct strbuf body;
	struct row_batch b;
	struct etl_error err = {0, ""};
	size_t i, k;

	sb_init(&body);
	sb_puts(&body, ENV_HEAD "[");
	for (i = 0; i < 1000; i++) {
		sb_puts(&body, i ? ",{\"domain_intersection\":{" : "{\"domain_intersection\":{");
		for (k = 1; k <= 20; k++)
			sb_printf(&body, "%s\"%zu\":{\"target\":\"r\"}", k > 1 ? "," : "", k);
		sb_puts(&body, "}}");
	}
	sb_puts(&body, "]" ENV_TAIL);
	row_batch_init(&b);
	sb_puts(&b.copy, "earlier page\n");
	b.n_rows = 1;
	CHECK_INT(run_page(body.data, body.len, &ctx, &b, &err), ETL_EFAIL);
	CHECK_CONTAINS(err.msg, "page refused at item ");
	CHECK_CONTAINS(err.msg, "bytes of COPY text, twice its ");
	CHECK_STR(b.copy.data, "earlier page\n");
	CHECK_INT(b.n_rows, 1);
	/* its first 100 items fit: the 1 MiB covers a small page's overhead */
	sb_reset(&body);
	sb_puts(&body, ENV_HEAD "[");
	for (i = 0; i < 100; i++) {
		sb_puts(&body, i ? ",{\"domain_intersection\":{" : "{\"domain_intersection\":{");
		for (k = 1; k <= 20; k++)
			sb_printf(&body, "%s\"%zu\":{\"target\":\"r\"}", k > 1 ? "," : "", k);
		sb_puts(&body, "}}");
	}
	sb_puts(&body, "]" ENV_TAIL);
	row_batch_reset(&b);
	CHECK_INT(run_page(body.data, body.len, &ctx, &b, &err), 0);
	CHECK_INT(b.n_rows, 2000);
	CHECK(b.copy.len <= TRANSFORM_MAX_COPY(body.len));
	row_batch_free(&b);
	sb_free(&body);
}

/*
 * SipHash-1-3 itself, against an implementation that exists: CPython hashes
 * bytes with it, under the key 0 when PYTHONHASHSEED=0, e.g.
 * PYTHONHASHSEED=0 python3 -c "print(hash(b'a') & (2**64 - 1))".
 */
static void test_siphash(void)
{
	static const struct {
		const char *s;
		uint64_t want;
	} v[] = {
		{"a", 4644417185603328019u},
		{"abcdefgh", 4574395652268504554u},
		{"hello world, this is siphash13!", 13764440948784584808u},
	};
	static const uint64_t zero[2] = {0, 0};
	uint64_t h[2];
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(v); i++) {
		siphash13(zero, v[i].s, strlen(v[i].s), h, 1);
		CHECK(h[0] == v[i].want);
	}
}

/* The digest of the first row of body transformed under ctx; free() it. */
static char *digest_of(const char *body, const struct transform_ctx *ctx)
{
	struct row_batch b;
	struct etl_error err;
	char *d;

	row_batch_init(&b);
	if (run_page(body, strlen(body), ctx, &b, &err) != 0) {
		fprintf(stderr, "digest_of: %s\n", err.msg);
		CHECK(!"the page transforms");
	}
	d = batch_field(&b, 0, TRANSFORM_NCOLUMNS - 1);
	row_batch_free(&b);
	return d;
}

/*
 * The digest is of the values a version compares, and of nothing else: the
 * same values give the same digest at any position, date, set or run; any
 * one value changed, or the target, gives another; and it is the same in
 * every build and on every host (pinned: stored digests are compared with
 * tomorrow's).
 */
static void test_digest(void)
{
	static const char *const changed[] = {
		ONE(",\"rank\":6,\"backlinks\":10,\"type\":\"t\""),
		ONE(",\"rank\":5,\"backlinks\":11,\"type\":\"t\""),
		ONE(",\"rank\":5,\"backlinks\":10,\"type\":\"u\""),
		ONE(",\"rank\":5,\"backlinks\":10,\"type\":\"t\",\"broken_pages\":0"),
		ONE(",\"rank\":5,\"backlinks\":10,\"type\":\"t\",\"referring_links_tld\":{\"com\":1}"),
		ONE(",\"rank\":5,\"backlinks\":10,\"type\":\"t\",\"new_metric\":1"),
		ONE(",\"rank\":5,\"backlinks\":10,\"type\":\"t\",\"first_seen\":"
		    "\"2024-01-02 03:04:05 +00:00\""),
		PAGE("[{\"domain_intersection\":{\"1\":{\"target\":\"a.example\",\"rank\":5,"
		     "\"backlinks\":10,\"type\":\"t\"}},\"intersections_count\":2}]"),
	};
	const char *body = ONE(",\"rank\":5,\"backlinks\":10,\"type\":\"t\"");
	struct transform_ctx c = base_ctx(), moved = base_ctx(), other = base_ctx();
	char *want = digest_of(body, &c), *got;
	size_t i;

	CHECK(is_digest(want));
	CHECK_STR(want, "384bd55355a11a31c6aca434c123cb90");
	moved.offset = 900;
	moved.snapshot_date = "2031-12-31";
	moved.target_set_id = 99;
	moved.run_id = 12345;
	got = digest_of(body, &moved);
	CHECK_STR(got, want);
	free(got);
	for (i = 0; i < ETL_ARRAY_LEN(changed); i++) {
		got = digest_of(changed[i], &c);
		if (strcmp(got, want) == 0)
			fprintf(stderr, "test_digest: change %zu kept the digest\n", i);
		CHECK(strcmp(got, want) != 0);
		free(got);
	}
	other.targets = (char *const *)three_targets + 1; /* key 1 is example.org now */
	got = digest_of(body, &other);
	CHECK(strcmp(got, want) != 0);
	free(got);
	free(want);
}

int main(void)
{
	test_current_page();
	test_legacy_page();
	test_partial_page();
	test_escapes();
	test_unknown_fields();
	test_envelope();
	test_envelope_details();
	test_deep_nesting();
	test_truncations();
	test_mutations();
	test_items();
	test_times();
	test_domain_rows();
	test_night_domain_rows();
	test_failure_keeps_batch();
	test_ctx_rules();
	test_big_strings();
	test_other_request();
	test_item_extras_once();
	test_copy_cap();
	test_siphash();
	test_digest();
	return check_summary();
}
