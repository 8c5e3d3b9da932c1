/*
 * test_breakdown.c - a page's breakdown totals (breakdown.h): sums and
 * entry counts per dimension and key, null as an entry of 0, a key repeated
 * within one map or a sum past int64 making the totals unusable (the
 * database then sums the rows itself), and the array literals stage_page()
 * reads, keys quoted whatever they hold.
 */
#include <limits.h>
#include <string.h>

#include "breakdown.h"
#include "check.h"

static void arrays(const struct page_breakdown *b, int want, const char *dims, const char *keys,
		   const char *links, const char *entries)
{
	struct strbuf a[4];
	int j;

	for (j = 0; j < 4; j++)
		sb_init(&a[j]);
	CHECK_INT(bd_arrays(b, a), want);
	if (want) {
		CHECK_STR(a[0].data, dims);
		CHECK_STR(a[1].data, keys);
		CHECK_STR(a[2].data, links);
		CHECK_STR(a[3].data, entries);
	} else {
		for (j = 0; j < 4; j++)
			CHECK_INT(a[j].len, 0);
	}
	for (j = 0; j < 4; j++)
		sb_free(&a[j]);
}

int main(void)
{
	struct page_breakdown b;
	int i;

	bd_init(&b);
	bd_map_begin(&b);
	bd_add(&b, 5, "us", 2, 1, 3);
	arrays(&b, 0, NULL, NULL, NULL, NULL); /* not enabled: nothing kept */

	b.enabled = 1;
	/* row 1: country {"us": 3, "de": null}, tld {"com": 2} */
	bd_map_begin(&b);
	bd_add(&b, 5, "us", 2, 1, 3);
	bd_add(&b, 5, "de", 2, 0, 0);
	bd_map_begin(&b);
	bd_add(&b, 0, "com", 3, 1, 2);
	/* row 2: country {"us": 4, "a\"b\\c": -1} */
	bd_map_begin(&b);
	bd_add(&b, 5, "us", 2, 1, 4);
	bd_add(&b, 5, "a\"b\\c", 5, 1, -1);
	arrays(&b, 1, "{\"country\",\"country\",\"tld\",\"country\"}",
	       "{\"us\",\"de\",\"com\",\"a\\\"b\\\\c\"}", "{7,0,2,-1}", "{2,1,1,1}");

	/* the same key in another dimension is another total */
	bd_map_begin(&b);
	bd_add(&b, 4, "us", 2, 1, 1);
	CHECK(!b.invalid);

	/* a key twice in one map: jsonb keeps one, so these totals are not used */
	bd_map_begin(&b);
	bd_add(&b, 5, "fr", 2, 1, 1);
	bd_add(&b, 5, "fr", 2, 1, 1);
	CHECK(b.invalid);
	arrays(&b, 0, NULL, NULL, NULL, NULL);

	/* reset: usable again, empty */
	bd_reset(&b);
	b.enabled = 1;
	arrays(&b, 1, "{}", "{}", "{}", "{}");

	/* a sum past int64 */
	bd_map_begin(&b);
	bd_add(&b, 1, "x", 1, 1, LLONG_MAX);
	bd_map_begin(&b);
	bd_add(&b, 1, "x", 1, 1, 1);
	CHECK(b.invalid);

	/* many keys: the table grows and keeps every total */
	bd_reset(&b);
	b.enabled = 1;
	for (i = 0; i < 5000; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i % 1000);
		bd_map_begin(&b);
		bd_add(&b, i % 1000 % 6, key, strlen(key), 1, 1);
	}
	CHECK(!b.invalid);
	CHECK_INT(b.n, 1000); /* 1000 (dim, key) pairs, 5 entries each */
	for (i = 0; i < (int)b.n; i++)
		CHECK_INT(b.e[i].entries, 5);
	bd_free(&b);
	return check_summary();
}
