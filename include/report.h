/*
 * report.h - what the nightly loads produced, for a person, a spreadsheet or
 * a script: `intersect-etl report`, and the output helpers `runs` shares.
 *
 * report.c owns reading, per target set of a job, its latest complete
 * snapshot (date, referring domains, rows, cost) and that snapshot's new and
 * lost referring domains from the views of sql/003_views.sql, and rendering
 * them in three formats. It also owns the three renderings themselves, so
 * every command that prints rows prints them the same way:
 *   - a terminal table, columns padded by display width (UTF-8 decoded; East
 *     Asian wide characters take two columns, combining marks none), so IDN
 *     domains such as "bücher-42.de" or "例え-7.jp" line up; control and
 *     bidirectional-override characters are shown as '?' so data from the
 *     API can never drive the terminal;
 *   - CSV as RFC 4180 has it (CRLF line ends, a field quoted when it holds a
 *     comma, a quote, CR or LF, quotes doubled; SQL NULL is an empty field);
 *   - one JSON document (json-c), numbers kept exactly as the database gave
 *     them.
 * It only reads: no statement here writes.
 */
#ifndef INTERSECT_REPORT_H
#define INTERSECT_REPORT_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "util.h"

enum report_format {
	REPORT_TABLE = 0, /* aligned columns for a terminal (the default) */
	REPORT_CSV,       /* RFC 4180 */
	REPORT_JSON,      /* one JSON document */
};

/* "table", "csv" or "json" to *out; -1 for anything else. */
int report_parse_format(const char *s, enum report_format *out) ETL_WUR;

struct report_options {
	const char *job_path;       /* the job file: database, schema, job name, sets */
	const char *set;            /* only this target set; NULL for every set */
	enum report_format format;
};

/*
 * Writes the report of the job to out. ETL_EUSAGE for a bad job file or a
 * --set the job does not have; ETL_ESCHEMA when the database is not at this
 * binary's schema version; ETL_EFAIL for database errors.
 */
int report_run(const struct report_options *opt, FILE *out, struct etl_error *err) ETL_WUR;

/* ---- output helpers (also used by runs.c) ---- */

/* Terminal columns `s` takes (UTF-8; see the top of this file). */
size_t report_display_width(const char *s);

/*
 * A copy of s fit for one terminal line: line breaks and tabs become spaces,
 * other control and bidi-override characters and invalid UTF-8 bytes '?'.
 * The caller frees it.
 */
char *report_safe_text(const char *s);

enum report_align { REPORT_LEFT = 0, REPORT_RIGHT };

/*
 * A table filled cell by cell, row after row; printed with each column as
 * wide as its widest cell, two spaces between columns, and no trailing
 * blanks (so the last column, often a long error message, pads nothing).
 */
struct report_table;

/* headers and align have ncols entries; the caller frees with report_table_free(). */
struct report_table *report_table_new(size_t ncols, const char *const *headers,
				      const enum report_align *align);
void report_table_free(struct report_table *t);
/* Appends the next cell (copied; NULL shows as "-"). */
void report_table_cell(struct report_table *t, const char *text);
void report_table_cellf(struct report_table *t, const char *fmt, ...) ETL_PRINTF(2, 3);
size_t report_table_rows(const struct report_table *t);
void report_table_print(const struct report_table *t, FILE *out);

/* Appends one CSV field (NULL = empty field), quoted when RFC 4180 needs it. */
void report_csv_field(struct strbuf *sb, const char *s);
/* Appends a record: n fields, commas between, CRLF after. */
void report_csv_record(struct strbuf *sb, size_t n, const char *const *fields);

/*
 * JSON values from the text form PostgreSQL returns; NULL text gives NULL
 * (json-c's null). Each returns a new object the caller owns (or hands to a
 * parent). report_json_number keeps the digits as given: "0.0203" is
 * written 0.0203, not 0.020299999999999999.
 */
json_object *report_json_string(const char *text);
json_object *report_json_int(const char *text);
json_object *report_json_number(const char *text);
json_object *report_json_bool(const char *text); /* "t" or "f" */
/* Writes the document, pretty-printed, and a newline; does not free it. */
void report_json_print(json_object *doc, FILE *out);

/* "$0.0203" (four decimals, as `plan` and the run's last line print costs); "-" for NULL. */
void report_format_cost(char *buf, size_t size, const char *text);
/* The same for a number: the ledger's micro-dollars rounded half up to four decimals. */
void report_format_usd(char *buf, size_t size, double usd);
/* That figure as a number, for a "%.4f" that must print the same. */
double report_round_usd(double usd);

#endif
