/*
 * transform.c - from one API response body to COPY rows of domain_intersection.
 *
 * This file owns everything between a usable answer (response.c found its
 * result) and the COPY text the loader sends, and whether the answer is the
 * one asked for (response_match()). transform_page() turns each item into
 * one row per target key, validating every value and writing it straight
 * into the batch, escaped for COPY text format; a row never exists as
 * anything but bytes in the batch.
 * Fields the program does not know go, as JSON, into the `extra` column; an
 * item that cannot be stored whole fails the page, which then leaves the
 * batch as it found it.
 *
 * Every value bound for a typed column or jsonb is checked against what
 * PostgreSQL accepts there, so a hostile or odd value is this page's error
 * naming its field, never a COPY failure: integers are read exactly from
 * their token (token_int()), numbers in `extra` must fit numeric
 * (numeric_fits()), times have their ranges. An item's own
 * unknown fields go into one row's `extra`, not into each of its rows, and a
 * page's COPY text is capped (TRANSFORM_MAX_COPY): no body makes a batch
 * many times its size.
 */
#include "transform.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"

#define MAX_TARGET_KEYS 20   /* the API's own limit on targets */
#define EXCERPT_MAX JD_EXCERPT_MAX

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ------------------------------------------------------------------------ */
/* Writing COPY text                                                         */
/* ------------------------------------------------------------------------ */

/*
 * The writers below append straight into the strbuf's memory, reserving the
 * worst case for a chunk of input at a time so that a 10 MB value does not
 * reserve 70 MB. Each leaves sb NUL-terminated like the sb_* functions do.
 */
#define CHUNK 4096

/* sb_putc() and sb_append() inline: the hot loop writes ~40 pieces a row. */
static inline void out_c(struct strbuf *sb, char c)
{
	if (sb->cap - sb->len < 2)
		sb_reserve(sb, 1);
	sb->data[sb->len++] = c;
	sb->data[sb->len] = '\0';
}

static inline void out_n(struct strbuf *sb, const char *s, size_t n)
{
	if (sb->cap - sb->len <= n)
		sb_reserve(sb, n);
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

/* COPY text escapes: what a byte becomes inside a COPY text field. */
static const char copy_esc[256] = {
	['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r',
	[0] = '0', /* not an escape: marks the NUL text cannot hold */
};

/*
 * s[0..n) as a COPY text field. False if s holds a NUL, which text cannot;
 * what was written by then is the caller's to cut, as on any row error.
 */
static bool put_text(struct strbuf *sb, const char *s, size_t n)
{
	size_t chunk, i;
	char *p;

	while (n) {
		chunk = n < CHUNK ? n : CHUNK;
		if (sb->cap - sb->len <= 2 * chunk)
			sb_reserve(sb, 2 * chunk);
		p = sb->data + sb->len;
		for (i = 0; i < chunk; i++) {
			unsigned char c = (unsigned char)s[i];

			if (!copy_esc[c]) {
				*p++ = (char)c;
			} else if (c == 0) {
				sb->len = (size_t)(p - sb->data);
				*p = '\0';
				return false;
			} else {
				*p++ = '\\';
				*p++ = copy_esc[c];
			}
		}
		sb->len = (size_t)(p - sb->data);
		*p = '\0';
		s += chunk;
		n -= chunk;
	}
	return true;
}

/*
 * s[0..n) as a JSON string, in the escapes the `extra` and map columns have
 * always held (json-c's PLAIN | NOSLASHESCAPE serializer: \" \\ \b \f \n \r
 * \t, \u00XX for the other control bytes, nothing else), so that a value
 * stored today compares equal to one stored by an earlier release. With
 * copy, every backslash is doubled for COPY text (no raw tab, newline or CR
 * is left after JSON escaping), and a NUL fails the call (false): jsonb
 * rejects \u0000. Without, for a message, a NUL is written \u0000.
 */
static bool put_json_str(struct strbuf *sb, const char *s, size_t n, bool copy)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6];
	size_t chunk, i, k, j;
	char *p;

	out_c(sb, '"');
	while (n) {
		chunk = n < CHUNK ? n : CHUNK;
		if (sb->cap - sb->len <= 7 * chunk + 1)
			sb_reserve(sb, 7 * chunk + 1);
		p = sb->data + sb->len;
		for (i = 0; i < chunk; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c >= 0x20 && c != '"' && c != '\\') {
				*p++ = (char)c;
				continue;
			}
			if (c == 0 && copy) {
				sb->len = (size_t)(p - sb->data);
				*p = '\0';
				return false;
			}
			esc[0] = '\\';
			k = 2;
			switch (c) {
			case '"': esc[1] = '"'; break;
			case '\\': esc[1] = '\\'; break;
			case '\b': esc[1] = 'b'; break;
			case '\f': esc[1] = 'f'; break;
			case '\n': esc[1] = 'n'; break;
			case '\r': esc[1] = 'r'; break;
			case '\t': esc[1] = 't'; break;
			default:
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 0xf];
				k = 6;
				break;
			}
			for (j = 0; j < k; j++) {
				if (copy && esc[j] == '\\')
					*p++ = '\\';
				*p++ = esc[j];
			}
		}
		sb->len = (size_t)(p - sb->data);
		s += chunk;
		n -= chunk;
	}
	out_c(sb, '"');
	return true;
}

static void put_u64(struct strbuf *sb, unsigned long long v, bool neg)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		*--p = '-';
	out_n(sb, p, (size_t)(buf + sizeof(buf) - p));
}

static void put_i64(struct strbuf *sb, long long v)
{
	/* negate in unsigned arithmetic: -LLONG_MIN overflows a long long */
	put_u64(sb, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, v < 0);
}

static void put_lit(struct strbuf *sb, const char *s)
{
	out_n(sb, s, strlen(s));
}

/*
 * A JSON number token read as decimal digits, exactly: its value is
 * sig x 10^exp10, sig being the digits from the first non-zero one to the
 * last non-zero one (n_sig of them; none for a zero). Never a double: a
 * double cannot tell 2.0000000000000001 from 2.
 */
struct num_token {
	bool neg;
	const char *ip, *fp;  /* integer and fraction digits */
	size_t ni, nf;
	size_t first, n_sig;  /* of the digits ip[0..ni) then fp[0..nf) */
	long long exp;        /* the token's exponent, saturated at +-2e9 */
	long long exp10;      /* the exponent of sig's last digit */
};

static char num_digit(const struct num_token *t, size_t i)
{
	return i < t->ni ? t->ip[i] : t->fp[i - t->ni];
}

/* s is a token jd_parse() accepted as a JSON number. */
static void num_read(const char *s, struct num_token *t)
{
	size_t n, last;
	bool eneg = false;

	memset(t, 0, sizeof(*t));
	if ((t->neg = *s == '-'))
		s++;
	for (t->ip = s; is_digit(*s); s++)
		t->ni++;
	if (*s == '.')
		for (t->fp = ++s; is_digit(*s); s++)
			t->nf++;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			eneg = *s++ == '-';
		for (; is_digit(*s); s++)
			if (t->exp < 2000000000)
				t->exp = t->exp * 10 + (*s - '0');
		if (eneg)
			t->exp = -t->exp;
	}
	n = t->ni + t->nf;
	while (t->first < n && num_digit(t, t->first) == '0')
		t->first++;
	if (t->first == n)
		return; /* zero */
	for (last = n - 1; num_digit(t, last) == '0'; last--)
		;
	t->n_sig = last - t->first + 1;
	/* the digit at index last stands for 10^(ni - 1 - last + exp) */
	t->exp10 = (long long)t->ni - 1 - (long long)last + t->exp;
}

/*
 * Would PostgreSQL's numeric (and so jsonb) take this token? Its limits:
 * 131072 digits before the decimal point, a display scale (digits after the
 * point, trailing zeros included, less the exponent) of 16383, and an
 * exponent below INT32_MAX / 2 in magnitude (each boundary checked against
 * PostgreSQL 15). Checked here because a number past them fails the whole
 * COPY: "value overflows numeric format".
 */
static bool numeric_fits(const char *token)
{
	struct num_token t;
	long long scale;

	num_read(token, &t);
	if (t.exp >= INT32_MAX / 2 || t.exp <= -(INT32_MAX / 2))
		return false;
	scale = (long long)t.nf - t.exp;
	if (scale > TRANSFORM_NUMERIC_MAX_SCALE)
		return false;
	/* digits before the point: from the first significant one */
	return !t.n_sig || (long long)t.ni - (long long)t.first + t.exp <=
				   TRANSFORM_NUMERIC_MAX_INT_DIGITS;
}

/*
 * Any JSON value as JSON text, for `extra` (copy: as COPY text, see
 * put_json_str()) or for a message. Integers are printed from their exact
 * value, other numbers as their token in the body, which jd_parse() checked
 * is a JSON number. With copy, returns the first node jsonb cannot store (a
 * string holding a NUL, a number beyond numeric's range, see numeric_fits()),
 * else JD_NONE; the caller cuts what was written on an error.
 */
static size_t put_json(struct strbuf *sb, const struct jd_doc *d, size_t v, bool copy)
{
	size_t i, end, bad;

	switch (jd_type(d, v)) {
	case JD_NULL:
		put_lit(sb, "null");
		return JD_NONE;
	case JD_FALSE:
		put_lit(sb, "false");
		return JD_NONE;
	case JD_TRUE:
		put_lit(sb, "true");
		return JD_NONE;
	case JD_INT:
		put_i64(sb, (long long)jd_int(d, v));
		return JD_NONE;
	case JD_UINT:
		put_u64(sb, (unsigned long long)jd_uint(d, v), false);
		return JD_NONE;
	case JD_NUMBER:
		if (copy && !numeric_fits(jd_token(d, v)))
			return v;
		out_n(sb, jd_token(d, v), jd_len(d, v));
		return JD_NONE;
	case JD_STRING:
		return put_json_str(sb, jd_str(d, v), jd_len(d, v), copy) ? JD_NONE : v;
	case JD_ARRAY:
		out_c(sb, '[');
		for (i = v + 1, end = jd_next(d, v); i < end; i = jd_next(d, i)) {
			if (i != v + 1)
				out_c(sb, ',');
			if ((bad = put_json(sb, d, i, copy)) != JD_NONE)
				return bad;
		}
		out_c(sb, ']');
		return JD_NONE;
	case JD_OBJECT:
		out_c(sb, '{');
		for (i = v + 1, end = jd_next(d, v); i < end; i = jd_next(d, i + 1)) {
			if (i != v + 1)
				out_c(sb, ',');
			(void)put_json_str(sb, jd_str(d, i), jd_len(d, i), copy); /* keys hold no NUL */
			out_c(sb, ':');
			if ((bad = put_json(sb, d, i + 1, copy)) != JD_NONE)
				return bad;
		}
		out_c(sb, '}');
		return JD_NONE;
	}
	return JD_NONE;
}

/* "string \"abc\"", "integer 123", "object {...}": a value as a message shows it. */
static void describe(const struct jd_doc *d, size_t v, char *dst, size_t dstsz)
{
	char ex[EXCERPT_MAX + 8];
	struct strbuf sb;

	if (v == JD_NONE || jd_type(d, v) == JD_NULL) {
		snprintf(dst, dstsz, "null");
		return;
	}
	if (jd_type(d, v) == JD_STRING) {
		jd_excerpt(ex, sizeof(ex), jd_str(d, v), jd_len(d, v));
		snprintf(dst, dstsz, "string \"%s\"", ex);
		return;
	}
	sb_init(&sb);
	(void)put_json(&sb, d, v, false); /* without copy, nothing fails */
	jd_excerpt(ex, sizeof(ex), sb.data, sb.len);
	sb_free(&sb);
	snprintf(dst, dstsz, "%s %s", jd_type_name(d, v), ex);
}

/* ------------------------------------------------------------------------ */
/* transform_page                                                            */
/* ------------------------------------------------------------------------ */

enum field_kind { FK_TEXT, FK_INT4, FK_INT8, FK_TIME, FK_MAP };

/*
 * The per-target fields this program knows, `target` first (it is the
 * referring_domain column, written early) and the rest in the column order
 * of TRANSFORM_COLUMNS, so put_row() can write them in a loop.
 */
static const struct field_def {
	const char *name;     /* the API's name, which is also the column's */
	enum field_kind kind; /* how it is checked and written */
	enum fold_field fold; /* what a domain row makes of it (fold.h) */
} fields[] = {
#define F(name, kind) { name, kind, FOLD_NONE }
#define FF(name, kind, fold) { name, kind, fold }
	F("target", FK_TEXT),
	F("type", FK_TEXT),
	FF("rank", FK_INT4, FOLD_RANK),
	FF("backlinks", FK_INT8, FOLD_BACKLINKS),
	FF("first_seen", FK_TIME, FOLD_SEEN),
	F("lost_date", FK_TIME),
	FF("backlinks_spam_score", FK_INT4, FOLD_SPAM),
	F("broken_backlinks", FK_INT8),
	F("broken_pages", FK_INT8),
	F("referring_domains", FK_INT8),
	F("referring_domains_nofollow", FK_INT8),
	F("referring_main_domains", FK_INT8),
	F("referring_main_domains_nofollow", FK_INT8),
	F("referring_ips", FK_INT8),
	F("referring_subnets", FK_INT8),
	FF("referring_pages", FK_INT8, FOLD_PAGES),
	F("referring_pages_nofollow", FK_INT8),
	F("referring_links_tld", FK_MAP),
	F("referring_links_types", FK_MAP),
	F("referring_links_attributes", FK_MAP),
	F("referring_links_platform_types", FK_MAP),
	F("referring_links_semantic_locations", FK_MAP),
	F("referring_links_countries", FK_MAP),
#undef F
#undef FF
};
#define NFIELDS ETL_ARRAY_LEN(fields)
/* 7 columns before type, the fields after target, then extra, run_id and digest */
_Static_assert(7 + (NFIELDS - 1) + 3 == TRANSFORM_NCOLUMNS,
	       "fields[] out of step with TRANSFORM_COLUMNS");
_Static_assert(BD_DIMS == 6, "the six referring_links_* maps end fields[]");

/*
 * The fields[] index of a per-target key, or -1. The API sends the fields in
 * nearly the order of fields[], so *hint (where the last one was found, +1)
 * makes the first comparison a hit for almost every key of a row.
 */
static int field_lookup(const char *key, size_t *hint)
{
	size_t i = *hint < NFIELDS ? *hint : 0;

	if (strcmp(fields[i].name, key) != 0) {
		for (i = 0; i < NFIELDS; i++)
			if (fields[i].name[0] == key[0] && strcmp(fields[i].name, key) == 0)
				break;
		if (i == NFIELDS)
			return -1;
	}
	*hint = i + 1;
	return (int)i;
}

/* What one item holds, found in one pass over its keys (item_scan()). */
struct item_info {
	const struct jd_doc *doc;        /* the page */
	size_t index;                    /* in the page's items */
	long long position;              /* ctx->offset + index */
	size_t item;                     /* the item's node */
	size_t summary;                  /* "summary", or JD_NONE */
	size_t by_key[MAX_TARGET_KEYS + 1]; /* per-target objects, or JD_NONE */
	bool has_count;                  /* intersections_count given */
	long long count;
	size_t n_item_unknown;           /* item keys that go to extra._item */
	size_t n_summary_unknown;        /* summary keys that go to extra._summary */
};

/* "item 3 (position 1003), target key "2", rank: <detail>". key 0 = none. */
static int item_fail(struct etl_error *err, const struct item_info *it, int key,
		     const char *field, const char *fmt, ...) ETL_PRINTF(5, 6);

static int item_fail(struct etl_error *err, const struct item_info *it, int key,
		     const char *field, const char *fmt, ...)
{
	char detail[1024], where[64] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (key)
		snprintf(where, sizeof(where), ", target key \"%d\"", key);
	return etl_fail(err, ETL_EFAIL, "malformed item %zu (position %lld)%s%s%s: %s", it->index,
			it->position, where, field ? ", " : "", field ? field : "", detail);
}

enum int_problem { INT_OK, INT_TYPE, INT_FRACTION, INT_RANGE };

/*
 * A JD_NUMBER token's exact value as an integer within [lo, hi]. The token
 * is an integer when its exact decimal value is integral, however written:
 * 2.0, 2e0, 20e-1 and 0.2e1 are all 2, and -0.0 is 0. Anything else is a
 * fraction (2.0000000000000001, 1e-400), and a value past int64 or the
 * column is out of range (1e19, 9223372036854775808.0): an error either
 * way, never a rounded value.
 */
static enum int_problem token_int(const char *token, long long lo, long long hi, long long *out)
{
	struct num_token t;
	uint64_t x = 0;
	size_t i;
	long long e;

	num_read(token, &t);
	if (!t.n_sig) {
		*out = 0;
		return 0 < lo || 0 > hi ? INT_RANGE : INT_OK;
	}
	if (t.exp10 < 0)
		return INT_FRACTION; /* its last significant digit is past the point */
	/* 19 digits hold any int64; 20 or more are 1e19 at least */
	if ((long long)t.n_sig + t.exp10 > 19)
		return INT_RANGE;
	for (i = t.first; i < t.first + t.n_sig; i++)
		x = x * 10 + (uint64_t)(num_digit(&t, i) - '0');
	for (e = 0; e < t.exp10; e++)
		x *= 10;
	if (x > (uint64_t)INT64_MAX + t.neg)
		return INT_RANGE;
	/* negate in unsigned arithmetic: -INT64_MIN overflows */
	*out = t.neg ? -(long long)(x - 1) - 1 : (long long)x;
	return *out < lo || *out > hi ? INT_RANGE : INT_OK;
}

/*
 * v (not JSON null) as an integer within [lo, hi]: a JSON integer, or a
 * number whose token has an exact integral value (token_int()), which is an
 * integer written oddly. Strings, booleans, fractions and anything out of
 * range are refused, never coerced, rounded or clamped.
 */
static enum int_problem int_value(const struct jd_doc *doc, size_t v, long long lo, long long hi,
				  long long *out)
{
	switch (jd_type(doc, v)) {
	case JD_INT:
		*out = (long long)jd_int(doc, v);
		return *out < lo || *out > hi ? INT_RANGE : INT_OK;
	case JD_UINT:
		return INT_RANGE;
	case JD_NUMBER:
		return token_int(jd_token(doc, v), lo, hi, out);
	default:
		return INT_TYPE;
	}
}

static int int_fail(struct etl_error *err, const struct item_info *it, int key,
		    const char *field, size_t v, enum int_problem p, bool int4)
{
	char d[EXCERPT_MAX + 32];

	describe(it->doc, v, d, sizeof(d));
	switch (p) {
	case INT_FRACTION:
		return item_fail(err, it, key, field, "expected an integer, got a fraction: %s", d);
	case INT_RANGE:
		return item_fail(err, it, key, field, "%s is out of range for a %s integer", d,
				 int4 ? "32-bit" : "64-bit");
	default:
		return item_fail(err, it, key, field, "expected an integer or null, got %s", d);
	}
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n digits at s as a number within [lo, hi], or -1. */
static int digits(const char *s, int n, int lo, int hi)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v >= lo && v <= hi ? v : -1;
}

/*
 * "YYYY-MM-DD HH:MM:SS", then optionally a zone: an optional space and "Z",
 * "+HH" or "+HH:MM" (or '-'). The API writes "2021-08-27 20:28:54 +00:00".
 * Years 1970..2100 are the plausible ones for a crawler's dates.
 */
static bool valid_time(const char *s, size_t n)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;
	size_t i;

	if (n < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
		return false;
	if ((y = digits(s, 4, 1970, 2100)) < 0 || (m = digits(s + 5, 2, 1, 12)) < 0 ||
	    (d = digits(s + 8, 2, 1, 31)) < 0 || d > mdays[m - 1] + (m == 2 && leap(y)) ||
	    digits(s + 11, 2, 0, 23) < 0 || digits(s + 14, 2, 0, 59) < 0 ||
	    digits(s + 17, 2, 0, 59) < 0)
		return false;
	i = 19;
	if (i == n)
		return true;
	if (s[i] == ' ')
		i++;
	if (n - i == 1 && s[i] == 'Z')
		return true;
	if (n - i < 3 || (s[i] != '+' && s[i] != '-') || digits(s + i + 1, 2, 0, 14) < 0)
		return false;
	i += 3;
	if (i == n)
		return true;
	return n - i == 3 && s[i] == ':' && digits(s + i + 1, 2, 0, 59) >= 0;
}

/*
 * A target key: "1".."20" -> 1..20; a string of digits that is not one of
 * those (e.g. "0", "21", "01") -> -1; anything else -> 0.
 */
static int target_key(const char *k)
{
	size_t i;
	int v = 0;

	if (!is_digit(k[0]))
		return 0;
	for (i = 0; k[i]; i++) {
		if (!is_digit(k[i]))
			return 0;
		if (i < 3)
			v = v * 10 + (k[i] - '0');
	}
	if (k[0] == '0' || i > 2 || v > MAX_TARGET_KEYS)
		return -1;
	return v;
}

static bool item_key_known(const char *k)
{
	return strcmp(k, "domain_intersection") == 0 || strcmp(k, "summary") == 0 ||
	       strcmp(k, "intersections_count") == 0;
}

/* The intersections_count at v (item or summary level) as an int4, or NULL. */
static int count_value(size_t v, const char *field, struct item_info *it, long long *out,
		       bool *found, struct etl_error *err)
{
	enum int_problem p;

	*found = false;
	if (v == JD_NONE)
		return 0;
	if ((p = int_value(it->doc, v, INT32_MIN, INT32_MAX, out)) != INT_OK)
		return int_fail(err, it, 0, field, v, p, true);
	*found = true;
	return 0;
}

#define NOT_A_KEY "key \"%s\" is not a target key (this set has %zu targets)"

/*
 * One pass over an item's keys: finds the per-target objects of either
 * shape, the summary and the intersections count, and counts the keys that
 * will go to extra.
 */
static int item_scan(struct item_info *it, size_t n_targets, struct etl_error *err)
{
	const struct jd_doc *d = it->doc;
	size_t di = JD_NONE, sum_count = JD_NONE, item_count = JD_NONE, k, end, val;
	bool have_di = false, have_legacy = false, f1, f2;
	long long c1 = 0, c2 = 0;
	const char *key;
	int t, n_rows = 0, rc;

	if (!jd_is(d, it->item, JD_OBJECT))
		return item_fail(err, it, 0, NULL, "expected an object, got %s",
				 jd_type_name(d, it->item));
	for (k = it->item + 1, end = jd_next(d, it->item); k < end; k = jd_next(d, k + 1)) {
		key = jd_str(d, k);
		val = jd_nonnull(d, k + 1);
		if (strcmp(key, "domain_intersection") == 0) {
			have_di = true;
			di = val;
		} else if (strcmp(key, "summary") == 0) {
			it->summary = val;
		} else if (strcmp(key, "intersections_count") == 0) {
			item_count = val;
		} else if ((t = target_key(key)) == 0) {
			it->n_item_unknown++;
		} else {
			/* the pre-2023 shape: the item's own "1".."20" */
			have_legacy = true;
			if (t < 0 || (size_t)t > n_targets)
				return item_fail(err, it, 0, NULL, NOT_A_KEY, key, n_targets);
			it->by_key[t] = val; /* null: no data for this target */
		}
	}
	if (have_di && have_legacy)
		return item_fail(err, it, 0, NULL,
				 "both domain_intersection and target keys at the item's top "
				 "level");
	if (di != JD_NONE) {
		if (!jd_is(d, di, JD_OBJECT))
			return item_fail(err, it, 0, "domain_intersection",
					 "expected an object, got %s", jd_type_name(d, di));
		for (k = di + 1, end = jd_next(d, di); k < end; k = jd_next(d, k + 1)) {
			t = target_key(jd_str(d, k));
			if (t <= 0 || (size_t)t > n_targets)
				return item_fail(err, it, 0, "domain_intersection", NOT_A_KEY,
						 jd_str(d, k), n_targets);
			it->by_key[t] = jd_nonnull(d, k + 1);
		}
	}
	if (it->summary != JD_NONE) {
		if (!jd_is(d, it->summary, JD_OBJECT))
			return item_fail(err, it, 0, "summary",
					 "expected an object or null, got %s",
					 jd_type_name(d, it->summary));
		for (k = it->summary + 1, end = jd_next(d, it->summary); k < end;
		     k = jd_next(d, k + 1)) {
			if (strcmp(jd_str(d, k), "intersections_count") == 0)
				sum_count = jd_nonnull(d, k + 1);
			else
				it->n_summary_unknown++;
		}
	}
	if ((rc = count_value(sum_count, "summary.intersections_count", it, &c1, &f1, err)) ||
	    (rc = count_value(item_count, "intersections_count", it, &c2, &f2, err)))
		return rc;
	if (f1 && f2 && c1 != c2)
		return item_fail(err, it, 0, NULL,
				 "summary.intersections_count %lld and intersections_count %lld "
				 "differ",
				 c1, c2);
	it->has_count = f1 || f2;
	it->count = f1 ? c1 : c2;
	for (t = 1; t <= MAX_TARGET_KEYS; t++)
		n_rows += it->by_key[t] != JD_NONE;
	if (!n_rows)
		return item_fail(err, it, 0, NULL,
				 "no target data: neither domain_intersection nor keys "
				 "\"1\"..\"%d\"",
				 MAX_TARGET_KEYS);
	return 0;
}

/* A breakdown map: an object of counts (or null) as jsonb text, or \N. */
static int put_map(struct strbuf *sb, struct page_breakdown *bd, int dim, size_t m,
		   const char *field, const struct item_info *it, int key, struct etl_error *err)
{
	const struct jd_doc *d = it->doc;
	char where[EXCERPT_MAX + 80], ex[EXCERPT_MAX + 8];
	enum int_problem p;
	size_t k, end, v;
	long long x;

	if (m == JD_NONE) {
		out_n(sb, "\\N", 2);
		return 0;
	}
	if (!jd_is(d, m, JD_OBJECT))
		return item_fail(err, it, key, field, "expected an object or null, got %s",
				 jd_type_name(d, m));
	out_c(sb, '{');
	bd_map_begin(bd);
	for (k = m + 1, end = jd_next(d, m); k < end; k = jd_next(d, k + 1)) {
		if (k != m + 1)
			out_c(sb, ',');
		/* jd_parse() has made sure no key holds a NUL */
		(void)put_json_str(sb, jd_str(d, k), jd_len(d, k), true);
		out_c(sb, ':');
		if ((v = jd_nonnull(d, k + 1)) == JD_NONE) {
			put_lit(sb, "null");
			bd_add(bd, dim, jd_str(d, k), jd_len(d, k), 0, 0);
		} else if ((p = int_value(d, v, INT64_MIN, INT64_MAX, &x)) == INT_OK) {
			put_i64(sb, x);
			bd_add(bd, dim, jd_str(d, k), jd_len(d, k), 1, x);
		} else {
			jd_excerpt(ex, sizeof(ex), jd_str(d, k), jd_len(d, k));
			snprintf(where, sizeof(where), "%s[\"%s\"]", field, ex);
			return int_fail(err, it, key, where, v, p, false);
		}
	}
	out_c(sb, '}');
	return 0;
}

/*
 * Value `bad` of field `name` (a node put_json() could not write) as the
 * item's error: a string with a NUL, or a number past numeric's range.
 */
static int extra_fail(struct etl_error *err, const struct item_info *it, int key,
		      const char *name, size_t bad, const char *where)
{
	char ex[EXCERPT_MAX + 8];

	if (jd_type(it->doc, bad) == JD_STRING)
		return item_fail(err, it, key, name,
				 "a string%s holds \\u0000, which jsonb cannot store", where);
	jd_excerpt(ex, sizeof(ex), jd_token(it->doc, bad), jd_len(it->doc, bad));
	return item_fail(err, it, key, name,
			 "the number %s%s is beyond PostgreSQL numeric's range (%d digits "
			 "before the point, %d after), which jsonb cannot store",
			 ex, where, TRANSFORM_NUMERIC_MAX_INT_DIGITS, TRANSFORM_NUMERIC_MAX_SCALE);
}

/*
 * `extra`: the per-target object's unknown fields, then, with with_item, the
 * item's unknown keys under "_item" and the summary's under "_summary"; \N
 * when there are none. The caller asks for the item's only in the row of the
 * item's lowest target key: copied into every row, one field of an item with
 * 20 targets took 20 times its size (80 times with COPY's doubled
 * backslashes). Rare, so it re-walks the objects rather than remembering
 * the keys.
 */
static int put_extra(struct strbuf *sb, size_t obj, size_t n_unknown, const struct item_info *it,
		     int key, bool with_item, struct etl_error *err)
{
	const struct jd_doc *d = it->doc;
	bool first = true, first_inner;
	size_t k, end, bad;
	size_t n_item = with_item ? it->n_item_unknown : 0;
	size_t n_summary = with_item ? it->n_summary_unknown : 0;
	const char *name;

	if (!n_unknown && !n_item && !n_summary) {
		out_n(sb, "\\N", 2);
		return 0;
	}
	out_c(sb, '{');
	if (n_unknown) {
		size_t hint = 0;

		for (k = obj + 1, end = jd_next(d, obj); k < end; k = jd_next(d, k + 1)) {
			name = jd_str(d, k);
			if (field_lookup(name, &hint) >= 0)
				continue;
			if (strcmp(name, "_item") == 0 || strcmp(name, "_summary") == 0)
				return item_fail(err, it, key, name,
						 "a field of this name would be confused with "
						 "extra's own \"%s\"",
						 name);
			if (!first)
				out_c(sb, ',');
			first = false;
			(void)put_json_str(sb, name, jd_len(d, k), true);
			out_c(sb, ':');
			if ((bad = put_json(sb, d, k + 1, true)) != JD_NONE)
				return extra_fail(err, it, key, name, bad, "");
		}
	}
	if (n_item) {
		if (!first)
			out_c(sb, ',');
		first = false;
		put_lit(sb, "\"_item\":{");
		first_inner = true;
		for (k = it->item + 1, end = jd_next(d, it->item); k < end; k = jd_next(d, k + 1)) {
			name = jd_str(d, k);
			if (item_key_known(name) || target_key(name) != 0)
				continue;
			if (!first_inner)
				out_c(sb, ',');
			first_inner = false;
			(void)put_json_str(sb, name, jd_len(d, k), true);
			out_c(sb, ':');
			if ((bad = put_json(sb, d, k + 1, true)) != JD_NONE)
				return extra_fail(err, it, 0, name, bad, "");
		}
		out_c(sb, '}');
	}
	if (n_summary) {
		if (!first)
			out_c(sb, ',');
		put_lit(sb, "\"_summary\":{");
		first_inner = true;
		for (k = it->summary + 1, end = jd_next(d, it->summary); k < end;
		     k = jd_next(d, k + 1)) {
			name = jd_str(d, k);
			if (strcmp(name, "intersections_count") == 0)
				continue;
			if (!first_inner)
				out_c(sb, ',');
			first_inner = false;
			(void)put_json_str(sb, name, jd_len(d, k), true);
			out_c(sb, ':');
			if ((bad = put_json(sb, d, k + 1, true)) != JD_NONE)
				return extra_fail(err, it, 0, name, bad, " in summary");
		}
		out_c(sb, '}');
	}
	out_c(sb, '}');
	return 0;
}

/* Text that stays the same for every row of a page, already COPY-escaped. */
struct page_fmt {
	struct strbuf prefix;  /* "snapshot_date\ttarget_set_id\t" */
	struct strbuf suffix;  /* "\trun_id\t" */
	struct strbuf scratch; /* the text a row's digest is taken of */
	const struct transform_ctx *ctx;
	struct page_breakdown *bd; /* the batch's */
	unsigned char digest[16];  /* the last row's, as put_digest() wrote it */
	struct strbuf *send;       /* the batch's, when ctx->current */
	struct strbuf *item_fps;   /* the batch's, when ctx->current */
	struct strbuf *row_fps;    /* the batch's, when ctx->current */
	struct dom_fold *fold;     /* the item's domain row, when ctx->domains */
};

/*
 * Ends a row with its digest (see TRANSFORM_DIGEST_KEY): of its target's
 * text, a tab, and the text from intersections_count to extra.
 */
static void put_digest(struct strbuf *sb, struct page_fmt *pf, size_t t0, size_t t1, size_t d0,
		       size_t d1)
{
	static const uint64_t key[2] = TRANSFORM_DIGEST_KEY;
	static const char hex[] = "0123456789abcdef";
	uint64_t h[2];
	char out[33];
	int i;

	sb_reset(&pf->scratch);
	sb_append(&pf->scratch, sb->data + t0, t1 - t0);
	sb_putc(&pf->scratch, '\t');
	sb_append(&pf->scratch, sb->data + d0, d1 - d0);
	siphash13(key, pf->scratch.data, pf->scratch.len, h, 2);
	for (i = 0; i < 32; i++)
		out[i] = hex[(h[i / 16] >> (60 - 4 * (i % 16))) & 0xf];
	for (i = 0; i < 16; i++) /* the uuid's bytes, as the hex reads */
		pf->digest[i] = (unsigned char)(h[i / 8] >> (56 - 8 * (i % 8)));
	out[32] = '\n';
	out_n(sb, pf->suffix.data, pf->suffix.len);
	out_n(sb, out, sizeof(out));
}

/* Whether a row from the batch's `from`th on is to be written (send flags). */
static bool sends(const struct row_batch *b, size_t from)
{
	return b->send.len > from && memchr(b->send.data + from, 1, b->send.len - from) != NULL;
}

/*
 * Appends the row of target key `key` of an item. Integer fields take a JSON
 * integer, or a number with an exact integral value, within the column's
 * range (int4 for rank and backlinks_spam_score, int8 for the rest); null and
 * absent are both SQL NULL. with_item: this row's `extra` also carries the
 * item's own unknown fields (see put_extra()).
 */
/*
 * On a night, whether the row just written goes to the database: not when
 * its key and digest are a current version's (pf->send); its fingerprint is
 * kept either way (pf->row_fps). An item's first row also adds the item's
 * domain fingerprint, for the loader's word (schedule.c).
 */
static void judge_row(struct page_fmt *pf, const char *domain, size_t len, int key,
		      bool with_item)
{
	struct cur_fp fp;
	unsigned char stored[CUR_FP_BYTES];
	uint64_t hi;
	uint32_t lo;

	cur_map_fp(domain, len, key, pf->digest, &hi, &lo);
	sb_putc(pf->send, cur_map_has(pf->ctx->current, hi, lo) ? 0 : 1);
	fp.hi = hi;
	fp.lo = lo;
	cur_fp_store(&fp, stored);
	sb_append(pf->row_fps, (const char *)stored, sizeof(stored));
	if (with_item) { /* the item's first row names it (its place in the order) */
		cur_map_domain_fp(domain, len, &hi, &lo);
		fp.hi = hi;
		fp.lo = lo;
		sb_append(pf->item_fps, (const char *)&fp, sizeof(fp));
	}
}

static int put_row(struct strbuf *sb, struct page_fmt *pf, const struct item_info *it,
		   int key, size_t obj, bool with_item, struct etl_error *err)
{
	const struct jd_doc *d = it->doc;
	size_t f[NFIELDS], v, k, end, i, n_unknown = 0, hint = 0, t0, t1, d0;
	const char *target = pf->ctx->targets[key - 1];
	char desc[EXCERPT_MAX + 32];
	enum int_problem p;
	long long x;
	int id;

	if (!jd_is(d, obj, JD_OBJECT))
		return item_fail(err, it, key, NULL, "expected an object or null, got %s",
				 jd_type_name(d, obj));
	for (i = 0; i < NFIELDS; i++)
		f[i] = JD_NONE;
	for (k = obj + 1, end = jd_next(d, obj); k < end; k = jd_next(d, k + 1)) {
		if ((id = field_lookup(jd_str(d, k), &hint)) >= 0)
			f[id] = jd_nonnull(d, k + 1);
		else
			n_unknown++;
	}
	v = f[0];
	if (!jd_is(d, v, JD_STRING) || jd_len(d, v) == 0) {
		describe(d, v, desc, sizeof(desc));
		return item_fail(err, it, key, "target",
				 "expected the referring domain, a non-empty string; got %s", desc);
	}
	/* It is part of the primary key: a btree entry holds at most ~2.7 kB,
	 * and no domain name (253 characters, 4 bytes each at most) comes near. */
	if (jd_len(d, v) > TRANSFORM_MAX_DOMAIN_BYTES)
		return item_fail(err, it, key, "target",
				 "the referring domain is %zu bytes long; at most %d are accepted",
				 jd_len(d, v), TRANSFORM_MAX_DOMAIN_BYTES);

	out_n(sb, pf->prefix.data, pf->prefix.len);
	t0 = sb->len;
	if (!put_text(sb, jd_str(d, v), jd_len(d, v)))
		return item_fail(err, it, key, "target", "holds \\u0000, which text cannot store");
	if (pf->fold)
		fold_row(pf->fold, sb->data, t0, sb->len - t0, key);
	out_c(sb, '\t');
	put_i64(sb, key);
	out_c(sb, '\t');
	t0 = sb->len;
	(void)put_text(sb, target, strlen(target));
	t1 = sb->len;
	out_c(sb, '\t');
	put_i64(sb, it->position);
	out_c(sb, '\t');
	d0 = sb->len;
	if (it->has_count)
		put_i64(sb, it->count);
	else
		out_n(sb, "\\N", 2);

	for (i = 1; i < NFIELDS; i++) {
		const char *name = fields[i].name;

		out_c(sb, '\t');
		v = f[i];
		if (v == JD_NONE && fields[i].kind != FK_MAP) {
			out_n(sb, "\\N", 2);
			continue;
		}
		switch (fields[i].kind) {
		case FK_TEXT:
			if (!jd_is(d, v, JD_STRING)) {
				describe(d, v, desc, sizeof(desc));
				return item_fail(err, it, key, name,
						 "expected a string or null, got %s", desc);
			}
			if (!put_text(sb, jd_str(d, v), jd_len(d, v)))
				return item_fail(err, it, key, name,
						 "holds \\u0000, which text cannot store");
			break;
		case FK_INT4:
		case FK_INT8:
			if (fields[i].kind == FK_INT4)
				p = int_value(d, v, INT32_MIN, INT32_MAX, &x);
			else
				p = int_value(d, v, INT64_MIN, INT64_MAX, &x);
			if (p != INT_OK)
				return int_fail(err, it, key, name, v, p,
						fields[i].kind == FK_INT4);
			put_i64(sb, x);
			if (pf->fold && fields[i].fold != FOLD_NONE)
				fold_int(pf->fold, fields[i].fold, x);
			break;
		case FK_TIME:
			if (!jd_is(d, v, JD_STRING) || !valid_time(jd_str(d, v), jd_len(d, v))) {
				describe(d, v, desc, sizeof(desc));
				return item_fail(err, it, key, name,
						 "expected a time \"YYYY-MM-DD HH:MM:SS "
						 "+HH:MM\" or null, got %s",
						 desc);
			}
			/* validated: nothing in it needs escaping */
			out_n(sb, jd_str(d, v), jd_len(d, v));
			if (pf->fold && fields[i].fold == FOLD_SEEN)
				fold_time(pf->fold, jd_str(d, v), jd_len(d, v));
			break;
		case FK_MAP:
			/* the maps are the last fields, in breakdown.h's order */
			if (put_map(sb, pf->bd, (int)(i - (NFIELDS - BD_DIMS)), v, name, it, key, err))
				return ETL_EFAIL;
			break;
		}
	}
	out_c(sb, '\t');
	if (put_extra(sb, obj, n_unknown, it, key, with_item, err))
		return ETL_EFAIL;
	put_digest(sb, pf, t0, t1, d0, sb->len);
	if (pf->ctx->current)
		judge_row(pf, jd_str(d, f[0]), jd_len(d, f[0]), key, with_item);
	return 0;
}

static bool valid_date(const char *s)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	if ((y = digits(s, 4, 1, 9999)) < 0 || (m = digits(s + 5, 2, 1, 12)) < 0 ||
	    (d = digits(s + 8, 2, 1, 31)) < 0)
		return false;
	return d <= mdays[m - 1] + (m == 2 && leap(y));
}

/* The caller's half of the contract; a failure here is a bug upstream. */
static int check_ctx(const struct api_response *resp, const struct transform_ctx *ctx,
		     struct etl_error *err)
{
	size_t i;

	if (resp->error != RESP_OK || !resp->root)
		return etl_fail(err, ETL_EFAIL,
				"transform: the response was not parsed successfully");
	if (!ctx->snapshot_date || !valid_date(ctx->snapshot_date))
		return etl_fail(err, ETL_EFAIL,
				"transform: snapshot_date \"%s\" is not a YYYY-MM-DD date",
				ctx->snapshot_date ? ctx->snapshot_date : "(null)");
	if (!ctx->targets || ctx->n_targets < 1)
		return etl_fail(err, ETL_EFAIL, "transform: no targets given");
	for (i = 0; i < ctx->n_targets; i++)
		if (!ctx->targets[i] || !jd_utf8_valid(ctx->targets[i], strlen(ctx->targets[i])))
			return etl_fail(err, ETL_EFAIL, "transform: target %zu is %s", i + 1,
					ctx->targets[i] ? "not valid UTF-8" : "missing");
	if (ctx->offset < 0 || ctx->limit < 1)
		return etl_fail(err, ETL_EFAIL, "transform: bad page offset %lld or limit %d",
				ctx->offset, ctx->limit);
	if (resp->n_items > (size_t)ctx->limit)
		return etl_fail(err, ETL_EFAIL,
				"malformed page: %zu items, but only %d were asked for",
				resp->n_items, ctx->limit);
	/* position is an int4 column */
	if (ctx->offset > INT32_MAX || (long long)resp->n_items > INT32_MAX - ctx->offset + 1)
		return etl_fail(err, ETL_EFAIL,
				"transform: offset %lld and %zu items reach past the position "
				"column's range",
				ctx->offset, resp->n_items);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Does the answer answer this request?                                      */
/* ------------------------------------------------------------------------ */

/*
 * An echoed targets object (v, at path) against the request's: the keys
 * "1".."n" with the same strings, byte for byte, and no others. False, with
 * what differs in why, if not.
 */
static bool same_targets(const struct jd_doc *d, size_t v, const char *path,
			 const struct transform_ctx *ctx, char *why, size_t whysz)
{
	char key[24], ex[EXCERPT_MAX + 8], want[EXCERPT_MAX + 8];
	size_t i, t, n;

	if (!jd_is(d, v, JD_OBJECT)) {
		snprintf(why, whysz, "%s is %s, not an object of targets", path, jd_type_name(d, v));
		return false;
	}
	if (jd_len(d, v) != ctx->n_targets) {
		snprintf(why, whysz, "%s holds %zu targets, the request %zu", path, jd_len(d, v),
			 ctx->n_targets);
		return false;
	}
	for (i = 0; i < ctx->n_targets; i++) {
		snprintf(key, sizeof(key), "%zu", i + 1);
		n = strlen(ctx->targets[i]);
		t = jd_member(d, v, key);
		if (jd_is(d, t, JD_STRING) && jd_len(d, t) == n &&
		    memcmp(jd_str(d, t), ctx->targets[i], n) == 0)
			continue;
		jd_excerpt(want, sizeof(want), ctx->targets[i], n);
		if (jd_is(d, t, JD_STRING)) {
			jd_excerpt(ex, sizeof(ex), jd_str(d, t), jd_len(d, t));
			snprintf(why, whysz, "%s.\"%s\" is \"%s\", the request's is \"%s\"", path,
				 key, ex, want);
		} else {
			snprintf(why, whysz, "%s.\"%s\" is %s, the request's is \"%s\"", path, key,
				 t == JD_NONE ? "missing" : jd_type_name(d, t), want);
		}
		return false;
	}
	return true;
}

/* An echoed integer member, when there is one, against the request's value. */
static bool same_int(const struct jd_doc *d, size_t obj, const char *path, const char *key,
		     long long want, char *why, size_t whysz)
{
	size_t v = jd_get(d, obj, key);
	char got[EXCERPT_MAX + 32];

	if (v == JD_NONE || (jd_is(d, v, JD_INT) && jd_int(d, v) == want))
		return true;
	describe(d, v, got, sizeof(got));
	snprintf(why, whysz, "%s%s is %s, the request's is %lld", path, key, got, want);
	return false;
}

/*
 * Whether resp echoes ctx's request wherever it echoes one: tasks[0].data is
 * the request as the API read it, result[0].targets the targets it answered
 * for. A gateway or cache that mixes answers up (seen: one that answered
 * every request with the same body) loads one set's rows under another's
 * targets; nothing else in an answer would show it.
 */
static bool echo_matches(const struct api_response *resp, const struct transform_ctx *ctx,
			 char *why, size_t whysz)
{
	const struct jd_doc *d = &resp->doc;
	size_t data = JD_NONE, t;

	if (!ctx->targets)
		return true; /* check_ctx() refuses such a ctx */
	if (resp->task != JD_NONE)
		data = jd_get(d, resp->task, "data");
	if (jd_is(d, data, JD_OBJECT)) {
		if ((t = jd_get(d, data, "targets")) != JD_NONE &&
		    !same_targets(d, t, "tasks[0].data.targets", ctx, why, whysz))
			return false;
		if (!same_int(d, data, "tasks[0].data.", "offset", ctx->offset, why, whysz) ||
		    !same_int(d, data, "tasks[0].data.", "limit", ctx->limit, why, whysz))
			return false;
	}
	if (resp->result != JD_NONE && (t = jd_get(d, resp->result, "targets")) != JD_NONE &&
	    !same_targets(d, t, "tasks[0].result[0].targets", ctx, why, whysz))
		return false;
	return true;
}

#define OTHER_REQUEST "answer to another request: %s"

int response_match(struct api_response *resp, const struct transform_ctx *ctx,
		   struct etl_error *err)
{
	char why[768];

	if (resp->error != RESP_OK || echo_matches(resp, ctx, why, sizeof(why)))
		return 0;
	resp->error = RESP_OTHER_REQUEST;
	return etl_fail(err, ETL_EFAIL, OTHER_REQUEST, why);
}

void row_batch_init(struct row_batch *b)
{
	b->judged = 0;
	b->domains_unusable = 0;
	sb_init(&b->domains);
	sb_init(&b->send);
	sb_init(&b->item_fps);
	sb_init(&b->row_fps);
	bd_init(&b->breakdown);
	sb_init(&b->copy);
	b->n_rows = 0;
	b->n_items = 0;
}

void row_batch_reset(struct row_batch *b)
{
	b->judged = 0;
	b->domains_unusable = 0;
	sb_reset(&b->domains);
	sb_reset(&b->send);
	sb_reset(&b->item_fps);
	sb_reset(&b->row_fps);
	bd_reset(&b->breakdown);
	sb_reset(&b->copy);
	b->n_rows = 0;
	b->n_items = 0;
}

void row_batch_free(struct row_batch *b)
{
	b->judged = 0;
	b->domains_unusable = 0;
	sb_free(&b->domains);
	sb_free(&b->send);
	sb_free(&b->item_fps);
	sb_free(&b->row_fps);
	bd_free(&b->breakdown);
	sb_free(&b->copy);
	b->n_rows = 0;
	b->n_items = 0;
}

int transform_page(const struct api_response *resp, const struct transform_ctx *ctx,
		   struct row_batch *out, struct etl_error *err)
{
	struct page_fmt pf;
	struct item_info it;
	struct dom_fold fold;
	size_t mark = out->copy.len, rows = 0, i, item, n_keys, send_mark, dom_mark, item_send,
	       fps_mark, row_fps_mark;
	size_t cap = TRANSFORM_MAX_COPY(resp->body_len);
	char why[768];
	bool with_item;
	int k, rc = 0;

	if ((rc = check_ctx(resp, ctx, err)) != 0)
		return rc;
	if (!echo_matches(resp, ctx, why, sizeof(why)))
		return etl_fail(err, ETL_EFAIL, OTHER_REQUEST, why);
	pf.ctx = ctx;
	pf.bd = &out->breakdown;
	pf.send = &out->send;
	pf.item_fps = &out->item_fps;
	pf.row_fps = &out->row_fps;
	pf.fold = ctx->domains ? &fold : NULL;
	send_mark = out->send.len;
	fps_mark = out->item_fps.len;
	row_fps_mark = out->row_fps.len;
	dom_mark = out->domains.len;
	if (ctx->breakdown && out->n_rows == 0)
		out->breakdown.enabled = 1;
	sb_init(&pf.prefix);
	sb_init(&pf.suffix);
	sb_init(&pf.scratch);
	(void)put_text(&pf.prefix, ctx->snapshot_date, strlen(ctx->snapshot_date));
	sb_putc(&pf.prefix, '\t');
	put_i64(&pf.prefix, ctx->target_set_id);
	sb_putc(&pf.prefix, '\t');
	sb_putc(&pf.suffix, '\t');
	put_i64(&pf.suffix, ctx->run_id);
	sb_putc(&pf.suffix, '\t');

	n_keys = ctx->n_targets < MAX_TARGET_KEYS ? ctx->n_targets : MAX_TARGET_KEYS;
	item = resp->n_items ? resp->items + 1 : JD_NONE;
	for (i = 0; i < resp->n_items; i++, item = jd_next(&resp->doc, item)) {
		memset(&it, 0, sizeof(it));
		it.doc = &resp->doc;
		it.index = i;
		it.position = ctx->offset + (long long)i;
		it.item = item;
		it.summary = JD_NONE;
		for (k = 0; k <= MAX_TARGET_KEYS; k++)
			it.by_key[k] = JD_NONE;
		if ((rc = item_scan(&it, n_keys, err)) != 0)
			goto done;
		with_item = true; /* the lowest key's row takes the item's extras */
		fold_begin(&fold);
		item_send = out->send.len;
		for (k = 1; k <= MAX_TARGET_KEYS; k++) {
			if (it.by_key[k] == JD_NONE)
				continue;
			rc = put_row(&out->copy, &pf, &it, k, it.by_key[k], with_item, err);
			if (rc != 0)
				goto done;
			with_item = false;
			rows++;
			if (out->copy.len - mark > cap) {
				rc = etl_fail(err, ETL_EFAIL,
					      "page refused at item %zu (position %lld): its rows "
					      "pass %zu bytes of COPY text, twice its %zu-byte body "
					      "plus 1 MiB",
					      i, it.position, cap, resp->body_len);
				goto done;
			}
		}
		/* on a night, only an item with a row to write has a new domain row */
		if (pf.fold && !out->domains_unusable && (!ctx->current || sends(out, item_send)) &&
		    fold_put(&fold, &out->domains, out->copy.data, ctx->target_set_id,
			     ctx->snapshot_date, ctx->run_id, it.has_count, it.count) != 0)
			out->domains_unusable = 1;
	}
	out->n_rows += rows;
	out->n_items += resp->n_items;
	if (ctx->current)
		out->judged = 1;

done:
	if (rc) {
		/* no partial page: cut the batch back to where this call began
		 * (its totals are not cut back: they are not to be used) */
		out->breakdown.invalid = 1;
		out->send.len = send_mark;
		out->item_fps.len = fps_mark;
		out->row_fps.len = row_fps_mark;
		out->domains.len = dom_mark;
		if (out->domains.data)
			out->domains.data[dom_mark] = '\0';
		out->copy.len = mark;
		if (out->copy.data)
			out->copy.data[mark] = '\0';
	}
	sb_free(&pf.prefix);
	sb_free(&pf.suffix);
	sb_free(&pf.scratch);
	return rc;
}
