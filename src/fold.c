/*
 * fold.c - an item's rows folded into its referring domain's row. See fold.h.
 */
#include "fold.h"

#include <stdio.h>
#include <string.h>

void fold_begin(struct dom_fold *f)
{
	memset(f, 0, sizeof(*f));
}

void fold_row(struct dom_fold *f, const char *buf, size_t off, size_t len, int key)
{
	if (f->rows == 0) {
		f->domain_off = off;
		f->domain_len = len;
	} else if (len != f->domain_len || memcmp(buf + off, buf + f->domain_off, len) != 0) {
		f->unusable = true; /* first_domains() would make two domains of it */
	}
	f->rows++;
	f->mask |= 1u << key;
}

void fold_int(struct dom_fold *f, enum fold_field which, long long v)
{
	bool first = !f->has[which];

	f->has[which] = true;
	switch (which) {
	case FOLD_RANK:
		if (first || v < f->min_rank)
			f->min_rank = v;
		break;
	case FOLD_SPAM:
		if (first || v > f->max_spam)
			f->max_spam = v;
		break;
	case FOLD_BACKLINKS:
		f->sum_backlinks += v;
		break;
	case FOLD_PAGES:
		f->sum_pages += v;
		break;
	default:
		break;
	}
}

static long long num(const char *s, int n)
{
	long long v = 0;

	while (n-- > 0)
		v = v * 10 + (*s++ - '0');
	return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
static long long days(long long y, long long m, long long d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void fold_time(struct dom_fold *f, const char *s, size_t n)
{
	long long t, zone = 0;
	size_t i = 19;

	if (n < 19) {
		f->unusable = true;
		return;
	}
	t = days(num(s, 4), num(s + 5, 2), num(s + 8, 2)) * 86400 + num(s + 11, 2) * 3600 +
	    num(s + 14, 2) * 60 + num(s + 17, 2);
	if (i < n && s[i] == ' ')
		i++;
	if (i == n) {
		f->unusable = true; /* no zone: the server's TimeZone would say */
		return;
	}
	if (s[i] == '+' || s[i] == '-') {
		zone = num(s + i + 1, 2) * 3600 + (n - i == 6 ? num(s + i + 4, 2) * 60 : 0);
		t -= s[i] == '+' ? zone : -zone;
	}
	if (!f->has[FOLD_SEEN] || t > f->seen_at) {
		f->has[FOLD_SEEN] = true;
		f->seen_at = t;
		f->seen = s;
		f->seen_len = n;
	}
}

/* v in decimal (a sum of up to 20 int8 values passes int8: 128 bits). */
static void put_num(struct strbuf *out, __int128 v)
{
	char d[48];
	size_t n = 0;
	unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;

	do {
		d[n++] = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u);
	if (v < 0)
		sb_putc(out, '-');
	while (n)
		sb_putc(out, d[--n]);
}

/* A field and the tab before it: v, or NULL. */
static void put_field(struct strbuf *out, bool has, __int128 v)
{
	sb_putc(out, '\t');
	if (has)
		put_num(out, v);
	else
		sb_puts(out, "\\N");
}

int fold_put(const struct dom_fold *f, struct strbuf *out, const char *buf,
	     long long set_id, const char *date, long long run_id, bool has_count,
	     long long count)
{
	if (f->unusable || f->rows == 0)
		return -1;
	/* (by hand, not printf: one row an item, a first load's every item) */
	put_num(out, set_id);
	sb_putc(out, '\t');
	sb_append(out, buf + f->domain_off, f->domain_len);
	sb_putc(out, '\t');
	sb_puts(out, date);
	put_field(out, true, f->rows);
	put_field(out, true, f->mask);
	put_field(out, has_count, count);
	put_field(out, f->has[FOLD_RANK], f->min_rank);
	put_field(out, f->has[FOLD_BACKLINKS], f->sum_backlinks);
	if (f->has[FOLD_SEEN]) {
		sb_putc(out, '\t');
		sb_append(out, f->seen, f->seen_len); /* validated: nothing to escape */
	} else {
		sb_puts(out, "\t\\N");
	}
	put_field(out, f->has[FOLD_SPAM], f->max_spam);
	put_field(out, f->has[FOLD_PAGES], f->sum_pages);
	put_field(out, true, run_id);
	sb_putc(out, '\n');
	return 0;
}
