/*
 * err.c - struct etl_error helpers. Messages are truncated, never overrun:
 * a message is for a person, and its first 2 KiB say what went wrong.
 */
#include "err.h"

#include <stdio.h>
#include <string.h>

int etl_fail(struct etl_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void etl_error_prefix(struct etl_error *err, const char *fmt, ...)
{
	char old[sizeof(err->msg)];
	size_t n;
	va_list ap;

	if (!err)
		return;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	/* truncation is fine: the message's head says what went wrong */
	memcpy(err->msg + n, old, strnlen(old, sizeof(err->msg) - 1 - n));
	err->msg[n + strnlen(old, sizeof(err->msg) - 1 - n)] = '\0';
}

void etl_error_clear(struct etl_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}

const char *etl_exit_name(int code)
{
	switch (code) {
	case ETL_OK: return "ok";
	case ETL_EFAIL: return "failure";
	case ETL_EUSAGE: return "usage or job-file error";
	case ETL_EPARTIAL: return "partial";
	case ETL_ELOCKED: return "locked";
	case ETL_ESCHEMA: return "schema version mismatch";
	case ETL_ECHECK_DB: return "check: database";
	case ETL_ECHECK_API: return "check: API";
	case ETL_ESIGINT: return "interrupted (SIGINT)";
	case ETL_ESIGTERM: return "interrupted (SIGTERM)";
	default: return "unknown";
	}
}
