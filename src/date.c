/*
 * date.c - snapshot dates: checked, explained, and today's. See date.h.
 */
#include "date.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int date_check(const char *s, char *why, size_t len)
{
	static const char *const months[] = {"January", "February", "March",	 "April",
					     "May",	"June",	    "July",	 "August",
					     "September", "October", "November", "December"};
	int y, m, d, days;
	char tail;

	if (date_valid(s))
		return 1;
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    strspn(s, "0123456789-") != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3) {
		snprintf(why, len, "not a date of the form YYYY-MM-DD\nhint: e.g. 2026-02-28");
		return 0;
	}
	if (y < 1970)
		snprintf(why, len, "before 1970");
	else if (m < 1 || m > 12)
		snprintf(why, len, "there is no month %02d\nhint: the form is YYYY-MM-DD", m);
	else {
		days = m == 2 ? (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : 28)
		       : m == 4 || m == 6 || m == 9 || m == 11 ? 30
							    : 31;
		snprintf(why, len, "no such day: %s %d has %d days\nhint: the last is %04d-%02d-%02d",
			 months[m - 1], y, days, y, m, days);
	}
	return 0;
}

int date_valid(const char *s)
{
	struct tm tm = {0}, check;
	time_t t;
	int y, m, d;
	char tail;

	if (!s || strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
		return 0;
	if (s[4] != '-' || s[7] != '-' || y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
		return 0;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	t = timegm(&tm);
	if (!gmtime_r(&t, &check))
		return 0;
	return check.tm_mday == d && check.tm_mon == m - 1;
}

void date_utc(char *buf, size_t len, int days_ahead)
{
	time_t now = time(NULL) + (time_t)days_ahead * 86400;
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}
