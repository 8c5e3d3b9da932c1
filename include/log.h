/*
 * log.h - messages for the person (or cron mail, or log collector) watching
 * a run, and the live progress line.
 *
 * log.c owns stderr. Text lines are prefixed "intersect-etl: " and leveled,
 * so `--quiet` keeps only warnings and errors and `--verbose` adds per-request
 * lines; `--log-format json` writes one JSON object per line instead (time,
 * level, job, run, target_set, message) for log collectors. On a terminal,
 * at the default level and in text format, a progress line is redrawn in
 * place under the messages; elsewhere a summary line is logged periodically.
 * Nothing that holds a credential is ever passed here: request bodies carry
 * none, and the Authorization header is never logged. Messages quote text
 * from the API and the database, so a text line shows its control
 * characters escaped (log_escape()): a status_message cannot start a line
 * of its own or send escape sequences to the terminal.
 */
#ifndef INTERSECT_LOG_H
#define INTERSECT_LOG_H

#include "util.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT = 0, LOG_JSON };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_format(enum log_format format);
enum log_format log_get_format(void);
/* Names the job and run that every following line belongs to (job NULL: none). */
void log_set_context(const char *job, long long run_id);

/* A line about the run as a whole (target_set NULL) or about one set. */
void log_set_msg(enum log_level level, const char *target_set, const char *fmt, ...)
	ETL_PRINTF(3, 4);
void log_msg(enum log_level level, const char *fmt, ...) ETL_PRINTF(2, 3);

/*
 * The numbers of a line, which a JSON line carries as fields of their own
 * (a collector should not parse them out of the message; a text line has
 * them in its message only). A field below 0 is left out: start from
 * LOG_FIELDS_NONE. cost_usd is printed to four decimals, as everywhere.
 */
struct log_fields {
	long long sets_complete, sets_failed, pages, rows, referring_domains, total_count;
	double cost_usd, duration_seconds;
};
#define LOG_FIELDS_NONE {-1, -1, -1, -1, -1, -1, -1.0, -1.0}
void log_fields_msg(enum log_level level, const char *target_set, const struct log_fields *f,
		    const char *fmt, ...) ETL_PRINTF(4, 5);

/*
 * Appends s to sb fit for one text log line: line breaks, tabs and other
 * control characters (C0, DEL, C1), the bidi controls and invalid UTF-8
 * bytes become escapes (\n, \x1b, \u009b, \xc3), except a newline before
 * one of our own "hint: ", "detail: " or "context: " lines. A backslash is
 * kept as it is: the escapes make text safe for a terminal and a line-based
 * collector, not reversible (the JSON format is that).
 */
void log_escape(struct strbuf *sb, const char *s);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* What the progress line shows; the scheduler fills it. */
struct progress {
	long long pages_done, pages_planned; /* planned: an upper bound until totals are known */
	long long rows;
	size_t sets_done, sets_total;
	int in_flight;
	double cost_usd;
	double elapsed;                      /* seconds since the run started */
};

/*
 * Starts progress reporting: a redrawn line when stderr is a terminal (and
 * the format is text at the default level), else a summary line every
 * `interval` seconds.
 */
void progress_start(double interval);
/* Called as often as convenient; redraws at most ten times a second. */
void progress_update(const struct progress *p);
/* Clears the live line (if any) and logs the final summary. */
void progress_finish(const struct progress *p);

#endif
