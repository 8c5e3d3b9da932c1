/*
 * log.c - leveled lines on stderr. See log.h.
 */
#include "log.h"

#include <stdio.h>

static enum log_level current = LOG_INFO;

void log_set_level(enum log_level level)
{
	current = level;
}

enum log_level log_get_level(void)
{
	return current;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error: ", "warning: ", "", ""};
	va_list ap;

	if (level > current)
		return;
	fprintf(stderr, "intersect-etl: %s", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
