/*
 * log.h - messages for the person (or cron mail) watching a run.
 *
 * log.c owns stderr: every line is prefixed "intersect-etl: " and leveled, so
 * `--quiet` keeps only warnings and errors and `--verbose` adds per-request
 * lines. Nothing that holds a credential is ever passed here: request bodies
 * carry none, and the Authorization header is never logged.
 */
#ifndef INTERSECT_LOG_H
#define INTERSECT_LOG_H

#include "util.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) ETL_PRINTF(2, 3);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
