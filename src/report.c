/*
 * report.c - `intersect-etl report` and the table, CSV and JSON writers that
 * `runs` shares. See report.h.
 */
#include "report.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "job.h"
#include "migrate.h"

int report_parse_format(const char *s, enum report_format *out)
{
	if (strcmp(s, "table") == 0)
		*out = REPORT_TABLE;
	else if (strcmp(s, "csv") == 0)
		*out = REPORT_CSV;
	else if (strcmp(s, "json") == 0)
		*out = REPORT_JSON;
	else
		return -1;
	return 0;
}

/* ---- display width ---- */

struct cp_range {
	uint32_t lo, hi;
};

/*
 * Zero-width code points: the combining marks of the scripts IDN domains
 * and API messages are written in, joiners, variation selectors. Not all of
 * Unicode's Mn/Me, but every range here is (a subset of Markus Kuhn's
 * wcwidth table, which terminals follow).
 */
static const struct cp_range zero_width[] = {
	{0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x05BF, 0x05BF},
	{0x05C1, 0x05C2}, {0x05C4, 0x05C5}, {0x05C7, 0x05C7}, {0x0610, 0x061A},
	{0x064B, 0x065F}, {0x0670, 0x0670}, {0x06D6, 0x06DC}, {0x06DF, 0x06E4},
	{0x06E7, 0x06E8}, {0x06EA, 0x06ED}, {0x0900, 0x0902}, {0x093A, 0x093A},
	{0x093C, 0x093C}, {0x0941, 0x0948}, {0x094D, 0x094D}, {0x0951, 0x0957},
	{0x0962, 0x0963}, {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E},
	{0x1160, 0x11FF}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200D},
	{0x2060, 0x2064}, {0x20D0, 0x20FF}, {0x302A, 0x302D}, {0x3099, 0x309A},
	{0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
};

/* East Asian Wide and Fullwidth: two terminal columns each. */
static const struct cp_range wide[] = {
	{0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
	{0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
	{0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
	{0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
	{0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
	{0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
	{0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
	{0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
	{0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x303E},
	{0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},
	{0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE10, 0xFE19},
	{0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x16FE0, 0x16FE4},
	{0x17000, 0x18CFF}, {0x1B000, 0x1B2FF}, {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF},
	{0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F251}, {0x1F300, 0x1F64F},
	{0x1F680, 0x1F6FF}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

static int in_ranges(uint32_t cp, const struct cp_range *r, size_t n)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cp < r[mid].lo)
			hi = mid;
		else if (cp > r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

static int cp_width(uint32_t cp)
{
	if (in_ranges(cp, zero_width, ETL_ARRAY_LEN(zero_width)))
		return 0;
	if (in_ranges(cp, wide, ETL_ARRAY_LEN(wide)))
		return 2;
	return 1;
}

size_t report_display_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), w = 0;

	while (n > 0) {
		uint32_t cp;
		size_t len = utf8_decode(p, n, &cp);

		if (len == 0) { /* shown as '?' */
			w++;
			len = 1;
		} else if (utf8_unsafe_cp(cp)) {
			w++;
		} else {
			w += (size_t)cp_width(cp);
		}
		p += len;
		n -= len;
	}
	return w;
}

char *report_safe_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	struct strbuf sb;

	sb_init(&sb);
	while (n > 0) {
		uint32_t cp;
		size_t len = utf8_decode(p, n, &cp);

		if (len == 0) {
			sb_putc(&sb, '?');
			len = 1;
		} else if (cp == '\n' || cp == '\r' || cp == '\t') {
			sb_putc(&sb, ' ');
		} else if (utf8_unsafe_cp(cp)) {
			sb_putc(&sb, '?');
		} else {
			sb_append(&sb, (const char *)p, len);
		}
		p += len;
		n -= len;
	}
	return sb_detach(&sb);
}

/* ---- tables ---- */

struct report_table {
	size_t ncols;
	char **headers;           /* ncols, owned */
	enum report_align *align; /* ncols, owned */
	char **cells;             /* n_cells, row-major, owned, terminal-safe */
	size_t n_cells, cap;
};

struct report_table *report_table_new(size_t ncols, const char *const *headers,
				      const enum report_align *align)
{
	struct report_table *t = xcalloc(1, sizeof(*t));
	size_t i;

	t->ncols = ncols;
	t->headers = xcalloc(ncols, sizeof(*t->headers));
	t->align = xcalloc(ncols, sizeof(*t->align));
	for (i = 0; i < ncols; i++) {
		t->headers[i] = report_safe_text(headers[i]);
		t->align[i] = align[i];
	}
	return t;
}

void report_table_free(struct report_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->ncols; i++)
		free(t->headers[i]);
	for (i = 0; i < t->n_cells; i++)
		free(t->cells[i]);
	free(t->headers);
	free(t->align);
	free(t->cells);
	free(t);
}

void report_table_cell(struct report_table *t, const char *text)
{
	if (t->n_cells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	t->cells[t->n_cells++] = report_safe_text(text ? text : "-");
}

void report_table_cellf(struct report_table *t, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	report_table_cell(t, text);
	free(text);
}

size_t report_table_rows(const struct report_table *t)
{
	return (t->n_cells + t->ncols - 1) / t->ncols;
}

static void print_row(const struct report_table *t, char *const *cells, size_t n,
		      const size_t *width, FILE *out)
{
	struct strbuf line;
	size_t i, w, pad;

	sb_init(&line);
	for (i = 0; i < t->ncols; i++) {
		const char *c = i < n ? cells[i] : "";

		w = report_display_width(c);
		pad = width[i] > w ? width[i] - w : 0;
		if (i > 0)
			sb_puts(&line, "  ");
		if (t->align[i] == REPORT_RIGHT)
			sb_printf(&line, "%*s%s", (int)pad, "", c);
		else
			sb_printf(&line, "%s%*s", c, (int)pad, "");
	}
	/* no trailing blanks: an empty or short last column ends the line */
	while (line.len > 0 && line.data[line.len - 1] == ' ')
		line.len--;
	fwrite(line.data ? line.data : "", 1, line.len, out);
	fputc('\n', out);
	sb_free(&line);
}

void report_table_print(const struct report_table *t, FILE *out)
{
	size_t *width = xcalloc(t->ncols, sizeof(*width));
	size_t i, rows = report_table_rows(t);

	for (i = 0; i < t->ncols; i++)
		width[i] = report_display_width(t->headers[i]);
	for (i = 0; i < t->n_cells; i++) {
		size_t w = report_display_width(t->cells[i]);

		if (w > width[i % t->ncols])
			width[i % t->ncols] = w;
	}
	print_row(t, t->headers, t->ncols, width, out);
	for (i = 0; i < rows; i++) {
		size_t first = i * t->ncols;

		print_row(t, t->cells + first,
			  t->n_cells - first < t->ncols ? t->n_cells - first : t->ncols, width, out);
	}
	free(width);
}

/* ---- CSV ---- */

void report_csv_field(struct strbuf *sb, const char *s)
{
	const char *p;

	if (!s)
		return;
	/* "" is quoted so that it differs from NULL's empty field */
	if (*s && !strpbrk(s, ",\"\r\n")) {
		sb_puts(sb, s);
		return;
	}
	sb_putc(sb, '"');
	for (p = s; *p; p++) {
		if (*p == '"')
			sb_putc(sb, '"');
		sb_putc(sb, *p);
	}
	sb_putc(sb, '"');
}

void report_csv_record(struct strbuf *sb, size_t n, const char *const *fields)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			sb_putc(sb, ',');
		report_csv_field(sb, fields[i]);
	}
	sb_puts(sb, "\r\n");
}

/* ---- JSON ---- */

json_object *report_json_string(const char *text)
{
	return text ? json_object_new_string(text) : NULL;
}

json_object *report_json_int(const char *text)
{
	return text ? json_object_new_int64(strtoll(text, NULL, 10)) : NULL;
}

json_object *report_json_number(const char *text)
{
	double d;

	if (!text)
		return NULL;
	d = strtod(text, NULL);
	if (!isfinite(d)) /* NaN and Infinity are not JSON */
		return NULL;
	/* json-c writes the given text rather than re-printing the double */
	return json_object_new_double_s(d, text);
}

json_object *report_json_bool(const char *text)
{
	return text ? json_object_new_boolean(strcmp(text, "t") == 0) : NULL;
}

void report_json_print(json_object *doc, FILE *out)
{
	fputs(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_SPACED |
							  JSON_C_TO_STRING_NOSLASHESCAPE),
	      out);
	fputc('\n', out);
}

/*
 * Costs are shown as the ledger sums them: numeric(14,6) per page, so every
 * sum is a whole number of micro-dollars. Rounding that number half up to
 * four decimals (as PostgreSQL's round() does) makes the log, `runs`, the
 * run's last line and the tables print one figure; printf's rounding of the
 * nearest double would print $0.0644 for a ledger's $0.06445.
 */
static long long tenth_mills(double usd)
{
	long long micro = llround(usd * 1e6);

	return micro < 0 ? 0 : (micro + 50) / 100;
}

void report_format_usd(char *buf, size_t size, double usd)
{
	long long t = tenth_mills(usd);

	snprintf(buf, size, "$%lld.%04lld", t / 10000, t % 10000);
}

double report_round_usd(double usd)
{
	return (double)tenth_mills(usd) / 10000.0;
}

void report_format_cost(char *buf, size_t size, const char *text)
{
	if (!text)
		snprintf(buf, size, "-");
	else
		report_format_usd(buf, size, strtod(text, NULL));
}

/* ---- the report ---- */

/*
 * Which snapshots a set has, from the daily view (a row per set and date a
 * run finished, 'complete' or 'failed'): 0 its latest complete snapshot,
 * 1 the complete one before it (what the changes view compares with),
 * 2 the latest failed date after it (the set's last night went wrong). One
 * row, NULLs where there is none. Only control tables are read: the view's
 * measures are computed per row asked for, and none is asked for here.
 */
static const char dates_sql[] =
	"WITH d AS (\n"
	"  SELECT snapshot_date, status FROM domain_intersection_daily\n"
	"  WHERE job = $1 AND target_set = $2 AND purged_at IS NULL),\n"
	"l AS (SELECT max(snapshot_date) AS latest FROM d WHERE status = 'complete')\n"
	"SELECT l.latest::text,\n"
	"       (SELECT max(snapshot_date) FROM d\n"
	"        WHERE status = 'complete' AND snapshot_date < l.latest)::text,\n"
	"       (SELECT max(snapshot_date) FROM d\n"
	"        WHERE status = 'failed' AND snapshot_date > coalesce(l.latest, '-infinity'))::text\n"
	"FROM l";
enum { D_DATE, D_PREV, D_FAILED };

/*
 * The measures of that snapshot, as its control row recorded them when it
 * was published: 0 distinct referring domains, 1 rows, 2 new and 3 lost
 * referring domains (NULL when there is nothing to compare with: the first
 * snapshot, or a changed definition), 4 cost of that date's runs (float8
 * text: the shortest exact digits), 5 definition_changed.
 */
static const char facts_sql[] =
	"SELECT distinct_domains, rows, new_domains, lost_domains, cost_usd::float8::text,\n"
	"       definition_changed\n"
	"FROM domain_intersection_daily\n"
	"WHERE job = $1 AND target_set = $2 AND snapshot_date = $3::date";
enum { F_DOMAINS, F_ROWS, F_NEW, F_LOST, F_COST, F_DEFCHANGED };

/* That snapshot's new and lost referring domains: new first, then by name. */
static const char changes_sql[] =
	"SELECT change, referring_domain, intersections_count, min_rank, backlinks\n"
	"FROM domain_intersection_changes\n"
	"WHERE job = $1 AND target_set = $2 AND snapshot_date = $3::date\n"
	"  AND change IN ('new', 'lost')\n"
	"ORDER BY change = 'lost', referring_domain COLLATE \"C\"";
enum { C_CHANGE, C_DOMAIN, C_ICOUNT, C_MINRANK, C_BACKLINKS };

struct set_report {
	const char *name;     /* borrowed from the job */
	PGresult *dates;      /* owned: dates_sql's row */
	PGresult *facts;      /* owned: facts_sql's row; NULL without a complete snapshot */
	PGresult *changes;    /* owned: changes_sql's rows; NULL likewise */
};

/* The value of a cell, NULL for SQL NULL (or no such result or row). */
static const char *cell(const PGresult *r, int row, int col)
{
	if (!r || row >= PQntuples(r) || PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

static const char *or_dash(const char *v)
{
	return v ? v : "-";
}

static int is_true(const char *v)
{
	return v && strcmp(v, "t") == 0;
}

static int fetch_set(PGconn *conn, const struct job *job, struct set_report *s,
		     struct etl_error *err)
{
	const char *params[3] = {job->name, s->name, NULL};
	int rc;

	if ((rc = db_query(conn, dates_sql, 2, params, &s->dates, err)) != 0)
		return rc;
	if (!(params[2] = cell(s->dates, 0, D_DATE)))
		return 0;
	if ((rc = db_query(conn, facts_sql, 3, params, &s->facts, err)) != 0)
		return rc;
	return db_query(conn, changes_sql, 3, params, &s->changes, err);
}

/* Why a set shows no comparison, or NULL when it has one. */
static const char *no_comparison(const struct set_report *s)
{
	if (!cell(s->dates, 0, D_DATE))
		return "no complete snapshot yet";
	if (!cell(s->dates, 0, D_PREV))
		return "first snapshot: nothing to compare with";
	if (is_true(cell(s->facts, 0, F_DEFCHANGED)))
		return "definition changed: not compared";
	return NULL;
}

static void print_table(const struct set_report *sets, size_t n, FILE *out)
{
	static const char *const head[] = {"TARGET SET", "SNAPSHOT", "PREVIOUS", "DOMAINS",
					   "ROWS", "NEW", "LOST", "COST"};
	static const enum report_align align[] = {REPORT_LEFT, REPORT_LEFT, REPORT_LEFT,
						  REPORT_RIGHT, REPORT_RIGHT, REPORT_RIGHT,
						  REPORT_RIGHT, REPORT_RIGHT};
	static const char *const chead[] = {"CHANGE", "REFERRING DOMAIN", "INTERSECTIONS",
					    "MIN RANK", "BACKLINKS"};
	static const enum report_align calign[] = {REPORT_LEFT, REPORT_LEFT, REPORT_RIGHT,
						   REPORT_RIGHT, REPORT_RIGHT};
	struct report_table *t = report_table_new(ETL_ARRAY_LEN(head), head, align);
	char cost[64];
	size_t i;
	int j, k, notes = 0;

	for (i = 0; i < n; i++) {
		const struct set_report *s = &sets[i];

		report_table_cell(t, s->name);
		report_table_cell(t, cell(s->dates, 0, D_DATE));
		report_table_cell(t, cell(s->dates, 0, D_PREV));
		report_table_cell(t, cell(s->facts, 0, F_DOMAINS));
		report_table_cell(t, cell(s->facts, 0, F_ROWS));
		report_table_cell(t, cell(s->facts, 0, F_NEW));
		report_table_cell(t, cell(s->facts, 0, F_LOST));
		report_format_cost(cost, sizeof(cost), cell(s->facts, 0, F_COST));
		report_table_cell(t, cost);
	}
	report_table_print(t, out);
	report_table_free(t);

	/* What an operator must not miss: sets whose last night failed. */
	for (i = 0; i < n; i++) {
		const char *failed = cell(sets[i].dates, 0, D_FAILED);
		const char *date = cell(sets[i].dates, 0, D_DATE);

		if (!failed)
			continue;
		fprintf(out, "%s%s: the run of %s failed; ", notes++ ? "" : "\n", sets[i].name,
			failed);
		if (date)
			fprintf(out, "showing the snapshot of %s\n", date);
		else
			fputs("no complete snapshot yet\n", out);
	}

	for (i = 0; i < n; i++) {
		const struct set_report *s = &sets[i];
		const char *why = no_comparison(s);

		if (!cell(s->dates, 0, D_DATE))
			continue;
		fprintf(out, "\n%s %s: ", s->name, cell(s->dates, 0, D_DATE));
		if (why) {
			fprintf(out, "%s\n", why);
			continue;
		}
		fprintf(out, "%s new, %s lost since %s\n", or_dash(cell(s->facts, 0, F_NEW)),
			or_dash(cell(s->facts, 0, F_LOST)), or_dash(cell(s->dates, 0, D_PREV)));
		if (PQntuples(s->changes) == 0)
			continue;
		t = report_table_new(ETL_ARRAY_LEN(chead), chead, calign);
		for (j = 0; j < PQntuples(s->changes); j++)
			for (k = 0; k < (int)ETL_ARRAY_LEN(chead); k++)
				report_table_cell(t, cell(s->changes, j, k));
		report_table_print(t, out);
		report_table_free(t);
	}
}

static void print_csv(const struct job *job, const struct set_report *sets, size_t n, FILE *out)
{
	static const char *const head[] = {
		"job", "target_set", "record", "snapshot_date", "previous_snapshot_date",
		"referring_domains", "rows", "new_domains", "lost_domains", "cost_usd",
		"definition_changed", "referring_domain", "intersections_count", "min_rank",
		"backlinks"};
	struct strbuf sb;
	size_t i;
	int j;

	sb_init(&sb);
	report_csv_record(&sb, ETL_ARRAY_LEN(head), head);
	for (i = 0; i < n; i++) {
		const struct set_report *s = &sets[i];
		const char *f[ETL_ARRAY_LEN(head)] = {0};
		const char *defch = cell(s->facts, 0, F_DEFCHANGED);

		f[0] = job->name;
		f[1] = s->name;
		f[2] = "snapshot";
		f[3] = cell(s->dates, 0, D_DATE);
		f[4] = cell(s->dates, 0, D_PREV);
		f[5] = cell(s->facts, 0, F_DOMAINS);
		f[6] = cell(s->facts, 0, F_ROWS);
		f[7] = cell(s->facts, 0, F_NEW);
		f[8] = cell(s->facts, 0, F_LOST);
		f[9] = cell(s->facts, 0, F_COST);
		f[10] = defch ? (is_true(defch) ? "true" : "false") : NULL;
		report_csv_record(&sb, ETL_ARRAY_LEN(head), f);
		for (j = 0; s->changes && j < PQntuples(s->changes); j++) {
			const char *g[ETL_ARRAY_LEN(head)] = {0};

			g[0] = job->name;
			g[1] = s->name;
			g[2] = cell(s->changes, j, C_CHANGE);
			g[3] = f[3];
			g[4] = f[4];
			g[11] = cell(s->changes, j, C_DOMAIN);
			g[12] = cell(s->changes, j, C_ICOUNT);
			g[13] = cell(s->changes, j, C_MINRANK);
			g[14] = cell(s->changes, j, C_BACKLINKS);
			report_csv_record(&sb, ETL_ARRAY_LEN(head), g);
		}
	}
	fwrite(sb.data, 1, sb.len, out);
	sb_free(&sb);
}

static void print_json(const struct job *job, const struct set_report *sets, size_t n, FILE *out)
{
	json_object *doc = json_object_new_object();
	json_object *arr = json_object_new_array();
	size_t i;
	int j;

	json_object_object_add(doc, "job", json_object_new_string(job->name));
	json_object_object_add(doc, "schema", json_object_new_string(job->db.schema));
	json_object_object_add(doc, "target_sets", arr);
	for (i = 0; i < n; i++) {
		const struct set_report *s = &sets[i];
		json_object *o = json_object_new_object();
		json_object *lists[2];

		json_object_array_add(arr, o);
		json_object_object_add(o, "name", json_object_new_string(s->name));
		json_object_object_add(o, "snapshot_date",
				       report_json_string(cell(s->dates, 0, D_DATE)));
		json_object_object_add(o, "previous_snapshot_date",
				       report_json_string(cell(s->dates, 0, D_PREV)));
		json_object_object_add(o, "failed_after",
				       report_json_string(cell(s->dates, 0, D_FAILED)));
		json_object_object_add(o, "referring_domains",
				       report_json_int(cell(s->facts, 0, F_DOMAINS)));
		json_object_object_add(o, "rows", report_json_int(cell(s->facts, 0, F_ROWS)));
		json_object_object_add(o, "new_domains", report_json_int(cell(s->facts, 0, F_NEW)));
		json_object_object_add(o, "lost_domains", report_json_int(cell(s->facts, 0, F_LOST)));
		json_object_object_add(o, "cost_usd", report_json_number(cell(s->facts, 0, F_COST)));
		json_object_object_add(o, "definition_changed",
				       report_json_bool(cell(s->facts, 0, F_DEFCHANGED)));
		lists[0] = json_object_new_array();
		lists[1] = json_object_new_array();
		json_object_object_add(o, "new", lists[0]);
		json_object_object_add(o, "lost", lists[1]);
		for (j = 0; s->changes && j < PQntuples(s->changes); j++) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "referring_domain",
					       report_json_string(cell(s->changes, j, C_DOMAIN)));
			json_object_object_add(e, "intersections_count",
					       report_json_int(cell(s->changes, j, C_ICOUNT)));
			json_object_object_add(e, "min_rank",
					       report_json_int(cell(s->changes, j, C_MINRANK)));
			json_object_object_add(e, "backlinks",
					       report_json_int(cell(s->changes, j, C_BACKLINKS)));
			json_object_array_add(
				lists[strcmp(cell(s->changes, j, C_CHANGE), "new") == 0 ? 0 : 1], e);
		}
	}
	report_json_print(doc, out);
	json_object_put(doc);
}

int report_run(const struct report_options *opt, FILE *out, struct etl_error *err)
{
	struct job *job = NULL;
	PGconn *conn = NULL;
	struct set_report *sets = NULL;
	size_t n = 0, i;
	int rc;

	/* the database's credentials only: report never calls the API */
	if ((rc = job_load_file_for(opt->job_path, JOB_NEED_DB, &job, err)) != 0)
		goto out;
	if (opt->set && !job_find_set(job, opt->set)) {
		rc = job_no_such_set(job, "--set", opt->set, err);
		goto out;
	}
	if ((rc = db_connect(job->db.url, job->db.schema, 0, &conn, err)) != 0)
		goto out;
	if ((rc = migrate_check(conn, err)) != 0)
		goto out;
	sets = xcalloc(job->n_sets, sizeof(*sets));
	for (i = 0; i < job->n_sets; i++) {
		if (opt->set && strcmp(opt->set, job->sets[i].name) != 0)
			continue;
		sets[n].name = job->sets[i].name;
		if ((rc = fetch_set(conn, job, &sets[n++], err)) != 0) {
			etl_error_prefix(err, "target set %s: ", job->sets[i].name);
			goto out;
		}
	}
	switch (opt->format) {
	case REPORT_TABLE:
		print_table(sets, n, out);
		break;
	case REPORT_CSV:
		print_csv(job, sets, n, out);
		break;
	case REPORT_JSON:
		print_json(job, sets, n, out);
		break;
	}
	if (fflush(out) != 0 || ferror(out))
		rc = etl_fail(err, ETL_EFAIL, "writing the report failed");
out:
	for (i = 0; i < n; i++) {
		PQclear(sets[i].dates);
		PQclear(sets[i].facts);
		PQclear(sets[i].changes);
	}
	free(sets);
	if (conn)
		PQfinish(conn);
	job_free(job);
	return rc;
}
