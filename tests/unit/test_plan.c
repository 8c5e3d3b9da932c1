/*
 * test_plan.c - the paging rule, request bodies and the cost formula, as
 * tables of cases; also --snapshot-date checking.
 */
#include <stdlib.h>

#include "check.h"
#include "date.h"
#include "plan.h"

static struct target_set make_set(int limit, long long max_rows)
{
	static char a[] = "a.com", b[] = "b.com", name[] = "s";
	static char *targets[] = {a, b};
	struct target_set s;

	memset(&s, 0, sizeof(s));
	s.name = name;
	s.targets = targets;
	s.n_targets = 2;
	s.limit = limit;
	s.max_rows = max_rows;
	s.request = json_tokener_parse("{\"targets\":{\"1\":\"a.com\",\"2\":\"b.com\"},"
				       "\"filters\":[[\"1.rank\",\">\",100]],\"tag\":\"t\\\"q\"}");
	return s;
}

/* The offsets and limits a set is paged with, once total_count is known. */
static void sequence(const struct target_set *s, long long total, struct strbuf *out)
{
	long long off;
	int lim = plan_page_limit(s, 0, -1);

	sb_printf(out, "0/%d", lim);
	for (off = s->limit;; off += s->limit) {
		lim = plan_page_limit(s, off, total);
		if (!lim)
			break;
		sb_printf(out, " %lld/%d", off, lim);
	}
}

static void test_paging(void)
{
	static const struct {
		int limit;
		long long max_rows, total;
		const char *want;
	} cases[] = {
		{1000, 10000, 0, "0/1000"},
		{1000, 10000, 700, "0/1000"},
		{1000, 10000, 1000, "0/1000"},
		{1000, 10000, 1001, "0/1000 1000/1"},
		{1000, 2000, 2345, "0/1000 1000/1000"},
		{1000, 2500, 10000, "0/1000 1000/1000 2000/500"},
		{1000, 300, 5000, "0/300"},
		{100, 250, 1000, "0/100 100/100 200/50"},
		{1, 3, 1000, "0/1 1/1 2/1"},
	};
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		struct target_set s = make_set(cases[i].limit, cases[i].max_rows);
		struct strbuf sb;

		sb_init(&sb);
		sequence(&s, cases[i].total, &sb);
		CHECK_STR(sb.data, cases[i].want);
		sb_free(&sb);
		json_object_put(s.request);
	}
}

static void test_estimate_and_cost(void)
{
	struct target_set s = make_set(1000, 2500);
	struct set_estimate e;
	char buf[64];

	plan_estimate(&s, &e);
	CHECK_INT(e.pages, 3);
	CHECK_INT(e.rows, 2500);
	snprintf(buf, sizeof(buf), "%.4f", e.cost_usd);
	CHECK_STR(buf, "0.1350");
	/* the provider's own example: 10 rows cost 0.0203 */
	snprintf(buf, sizeof(buf), "%.4f", plan_cost(1, 10));
	CHECK_STR(buf, "0.0203");
	json_object_put(s.request);
}

static void test_bodies(void)
{
	struct target_set s = make_set(1000, 2500);
	struct job job;
	char *body;

	memset(&job, 0, sizeof(job));
	job.api.body = BODY_OBJECT;
	body = plan_request_body(&job, &s, 2000, 500);
	CHECK_STR(body, "{\"targets\":{\"1\":\"a.com\",\"2\":\"b.com\"},\"filters\":[[\"1.rank\",\">\",100]],"
			"\"tag\":\"t\\\"q\",\"offset\":2000,\"limit\":500}");
	free(body);
	job.api.body = BODY_ARRAY;
	body = plan_request_body(&job, &s, 0, 1000);
	CHECK_STR(body, "[{\"targets\":{\"1\":\"a.com\",\"2\":\"b.com\"},\"filters\":[[\"1.rank\",\">\",100]],"
			"\"tag\":\"t\\\"q\",\"offset\":0,\"limit\":1000}]");
	free(body);
	/* the template is not changed by building bodies from it */
	CHECK(json_object_object_get(s.request, "offset") == NULL);
	json_object_put(s.request);
	CHECK_STR(plan_endpoint_path(API_AISA), "/dataforseo/backlinks/domain_intersection/live");
	CHECK_STR(plan_endpoint_path(API_DATAFORSEO), "/backlinks/domain_intersection/live");
}

static void test_dates(void)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
		{"2026-01-31", 1}, {"2024-02-29", 1}, {"2026-02-29", 0}, {"2026-13-01", 0},
		{"2026-1-01", 0},  {"20260101", 0},   {"2026-01-01x", 0}, {"", 0},
		{"1969-12-31", 0}, {"2026-04-31", 0}, {"2026/01/01", 0},  {"abcd-ef-gh", 0},
	};
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		if (date_valid(cases[i].s) != cases[i].ok)
			fprintf(stderr, "date case %s\n", cases[i].s);
		CHECK_INT(date_valid(cases[i].s), cases[i].ok);
	}
	CHECK_INT(date_valid(NULL), 0);
}

int main(void)
{
	test_paging();
	test_estimate_and_cost();
	test_bodies();
	test_dates();
	return check_summary();
}
