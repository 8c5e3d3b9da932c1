/*
 * test_cli.c - what cli.c does to the process before it parses anything.
 *
 * The options themselves are tested on the real binary
 * (tests/integration/test_cli.py, test_secrets.py); here, that once
 * cli_no_core_dumps() has run no core file can be written, not even after
 * raising the soft limit, and the process is not dumpable (so no other
 * process of the same user reads its memory or environment).
 */
#include "cli.h"

#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "date.h"

/* --snapshot-date: what is wrong with a date, and what to write instead. */
static void test_dates(void)
{
	static const struct {
		const char *date;
		const char *why; /* NULL: valid */
	} dates[] = {
		{"2026-02-28", NULL},
		{"2024-02-29", NULL},
		{"2026-02-30", "no such day: February 2026 has 28 days\nhint: the last is 2026-02-28"},
		{"2024-02-30", "no such day: February 2024 has 29 days\nhint: the last is 2024-02-29"},
		{"2100-02-29", "no such day: February 2100 has 28 days"},
		{"2000-02-29", NULL},
		{"2026-04-31", "no such day: April 2026 has 30 days\nhint: the last is 2026-04-30"},
		{"2026-13-01", "there is no month 13"},
		{"2026-00-10", "there is no month 00"},
		{"2026-01-00", "no such day: January 2026 has 31 days"},
		{"1969-12-31", "before 1970"},
		{"2026-2-1", "not a date of the form YYYY-MM-DD\nhint: e.g. 2026-02-28"},
		{"2026-02-28x", "not a date of the form YYYY-MM-DD"},
		{"20260228", "not a date of the form YYYY-MM-DD"},
		{"", "not a date of the form YYYY-MM-DD"},
	};
	char why[160];

	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		why[0] = '\0';
		CHECK_INT(date_check(dates[i].date, why, sizeof(why)), dates[i].why == NULL);
		if (dates[i].why)
			CHECK_CONTAINS(why, dates[i].why);
	}
}

int main(void)
{
	test_dates();
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};

	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1); /* the default, or this proves nothing */
	cli_no_core_dumps();
	CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0);
	CHECK(getrlimit(RLIMIT_CORE, &rl) == 0);
	CHECK_INT(rl.rlim_cur, 0);
	CHECK_INT(rl.rlim_max, 0);
	rl.rlim_cur = 1024 * 1024; /* the hard limit is 0: an unprivileged raise fails */
	if (geteuid() != 0)
		CHECK(setrlimit(RLIMIT_CORE, &rl) != 0);
	return check_summary();
}
