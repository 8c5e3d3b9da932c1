/*
 * log.c - leveled lines on stderr, text or JSON, and the progress line.
 * See log.h.
 */
#include "log.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The loader thread logs too (a lost connection): one line at a time. */
static pthread_mutex_t emit_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level current = LOG_INFO;
static enum log_format format = LOG_TEXT;
static char ctx_job[128];
static long long ctx_run;

/* Progress state: live (on a terminal) or periodic. */
static int progress_on, progress_live, progress_drawn;
static double progress_interval, progress_last;
static struct progress progress_now;

void log_set_level(enum log_level level)
{
	current = level;
}

enum log_level log_get_level(void)
{
	return current;
}

void log_set_format(enum log_format f)
{
	format = f;
}

enum log_format log_get_format(void)
{
	return format;
}

void log_set_context(const char *job, long long run_id)
{
	/* under the lock: another thread may be writing a line with them */
	pthread_mutex_lock(&emit_lock);
	snprintf(ctx_job, sizeof(ctx_job), "%s", job ? job : "");
	ctx_run = run_id;
	pthread_mutex_unlock(&emit_lock);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Erases the live progress line so a message can take its place. */
static void clear_live(void)
{
	if (progress_live && progress_drawn) {
		fputs("\r\033[K", stderr);
		progress_drawn = 0;
	}
}

/*
 * The labels of our own continuation lines (etl_fail messages put them
 * after the primary line). Only a newline before one of them stays a line
 * break: any other, such as one inside an API status_message or a COPY
 * error quoting a value, could start a line that passes for a log record.
 */
static int continuation(const char *s)
{
	static const char *const labels[] = {"hint: ", "detail: ", "context: "};

	for (size_t i = 0; i < ETL_ARRAY_LEN(labels); i++)
		if (strncmp(s, labels[i], strlen(labels[i])) == 0)
			return 1;
	return 0;
}

void log_escape(struct strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n > 0) {
		uint32_t cp = 0;
		size_t len = utf8_decode(p, n, &cp);

		if (len == 0) {
			sb_printf(sb, "\\x%02x", p[0]);
			len = 1;
		} else if (cp == '\n' && continuation((const char *)p + 1)) {
			sb_putc(sb, '\n');
		} else if (cp == '\n' || cp == '\r' || cp == '\t') {
			sb_putc(sb, '\\');
			sb_putc(sb, cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
		} else if (cp < 0x80 && utf8_unsafe_cp(cp)) {
			sb_printf(sb, "\\x%02x", (unsigned)cp);
		} else if (utf8_unsafe_cp(cp)) {
			sb_printf(sb, "\\u%04x", (unsigned)cp);
		} else {
			sb_append(sb, (const char *)p, len);
		}
		p += len;
		n -= len;
	}
}

static void draw_live(void);
static void emit(enum log_level level, const char *set, const struct log_fields *f,
		 const char *fmt, va_list ap) ETL_PRINTF(4, 0);

/* A line's numbers as JSON fields, those >= 0 (struct log_fields). */
static void add_fields(json_object *o, const struct log_fields *f)
{
	const struct {
		const char *name;
		long long v;
	} ints[] = {{"sets_complete", f->sets_complete}, {"sets_failed", f->sets_failed},
		    {"pages", f->pages},		 {"rows", f->rows},
		    {"referring_domains", f->referring_domains},
		    {"total_count", f->total_count}};
	char num[48];

	for (size_t i = 0; i < ETL_ARRAY_LEN(ints); i++)
		if (ints[i].v >= 0)
			json_object_object_add(o, ints[i].name, json_object_new_int64(ints[i].v));
	if (f->cost_usd >= 0) {
		snprintf(num, sizeof(num), "%.4f", f->cost_usd);
		json_object_object_add(o, "cost_usd", json_object_new_double_s(f->cost_usd, num));
	}
	if (f->duration_seconds >= 0) {
		snprintf(num, sizeof(num), "%.3f", f->duration_seconds);
		json_object_object_add(o, "duration_seconds",
				       json_object_new_double_s(f->duration_seconds, num));
	}
}

static void emit(enum log_level level, const char *set, const struct log_fields *f,
		 const char *fmt, va_list ap)
{
	static const char *const text_names[] = {"error: ", "warning: ", "", ""};
	static const char *const json_names[] = {"error", "warning", "info", "debug"};

	if (level > current)
		return;
	pthread_mutex_lock(&emit_lock);
	clear_live();
	if (format == LOG_JSON) {
		json_object *o = json_object_new_object();
		struct timeval tv;
		struct tm tm;
		char when[40], msg[4096];

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ",
			 (long)(tv.tv_usec / 1000));
		vsnprintf(msg, sizeof(msg), fmt, ap);
		json_object_object_add(o, "time", json_object_new_string(when));
		json_object_object_add(o, "level", json_object_new_string(json_names[level]));
		if (ctx_job[0])
			json_object_object_add(o, "job", json_object_new_string(ctx_job));
		if (ctx_run)
			json_object_object_add(o, "run", json_object_new_int64(ctx_run));
		if (set)
			json_object_object_add(o, "target_set", json_object_new_string(set));
		json_object_object_add(o, "message", json_object_new_string(msg));
		if (f)
			add_fields(o, f);
		fprintf(stderr, "%s\n",
			json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		char *msg = xvasprintf(fmt, ap);
		struct strbuf sb;

		/* json-c escapes every control character already; text needs it done */
		sb_init(&sb);
		log_escape(&sb, msg);
		fprintf(stderr, "intersect-etl: %s%s%s%s\n", text_names[level], set ? set : "",
			set ? ": " : "", sb.data ? sb.data : "");
		sb_free(&sb);
		free(msg);
	}
	if (progress_live)
		draw_live();
	pthread_mutex_unlock(&emit_lock);
}

void log_set_msg(enum log_level level, const char *set, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, set, NULL, fmt, ap);
	va_end(ap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, NULL, NULL, fmt, ap);
	va_end(ap);
}

void log_fields_msg(enum log_level level, const char *set, const struct log_fields *f,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, set, f, fmt, ap);
	va_end(ap);
}

/* "1:02:03" or "2:03"; "?" while there is nothing to estimate from. */
static void fmt_eta(char *buf, size_t len, const struct progress *p)
{
	double left;
	long s;

	if (p->pages_done <= 0 || p->pages_planned <= p->pages_done) {
		snprintf(buf, len, p->pages_planned <= p->pages_done && p->pages_done ? "0:00" : "?");
		return;
	}
	left = p->elapsed / (double)p->pages_done * (double)(p->pages_planned - p->pages_done);
	s = (long)(left + 0.5);
	if (s >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
	else
		snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
}

static void summary(char *buf, size_t len, const struct progress *p)
{
	char eta[32];

	fmt_eta(eta, sizeof(eta), p);
	snprintf(buf, len,
		 "sets %zu/%zu, pages %lld/%lld, rows %lld, in flight %d, $%.4f, elapsed %.0f s, ETA %s",
		 p->sets_done, p->sets_total, p->pages_done, p->pages_planned, p->rows, p->in_flight,
		 p->cost_usd, p->elapsed, eta);
}

/* The progress line's numbers as JSON fields (struct log_fields). */
static void progress_fields(const struct progress *p, struct log_fields *f)
{
	f->sets_complete = (long long)p->sets_done;
	f->pages = p->pages_done;
	f->rows = p->rows;
	f->cost_usd = p->cost_usd;
	f->duration_seconds = p->elapsed;
}

static void draw_live(void)
{
	char line[256];

	summary(line, sizeof(line), &progress_now);
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	progress_drawn = 1;
}

void progress_start(double interval)
{
	progress_on = 1;
	progress_live = isatty(STDERR_FILENO) && format == LOG_TEXT && current == LOG_INFO;
	progress_drawn = 0;
	progress_interval = interval;
	progress_last = now_seconds();
	memset(&progress_now, 0, sizeof(progress_now));
}

void progress_update(const struct progress *p)
{
	double now = now_seconds();

	if (!progress_on)
		return;
	progress_now = *p;
	if (progress_live) {
		if (now - progress_last >= 0.1) {
			progress_last = now;
			pthread_mutex_lock(&emit_lock);
			draw_live();
			pthread_mutex_unlock(&emit_lock);
		}
	} else if (now - progress_last >= progress_interval) {
		struct log_fields f = LOG_FIELDS_NONE;
		char line[256];

		progress_last = now;
		summary(line, sizeof(line), p);
		progress_fields(p, &f);
		log_fields_msg(LOG_INFO, NULL, &f, "progress: %s", line);
	}
}

void progress_finish(const struct progress *p)
{
	char line[256];

	if (!progress_on)
		return;
	progress_now = *p;
	clear_live();
	progress_on = 0;
	progress_live = 0;
	summary(line, sizeof(line), p);
	{
		struct log_fields f = LOG_FIELDS_NONE;

		progress_fields(p, &f);
		log_fields_msg(LOG_INFO, NULL, &f, "done: %s", line);
	}
}
