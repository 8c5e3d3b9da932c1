/*
 * date.h - snapshot dates (YYYY-MM-DD, UTC calendar days).
 *
 * date.c owns what a date given on the command line may be, the message
 * that says what is wrong with one, and today's date in UTC.
 */
#ifndef INTERSECT_DATE_H
#define INTERSECT_DATE_H

#include <stddef.h>

/* A real calendar date in YYYY-MM-DD form, 1970 to 9999: 1, else 0. */
int date_valid(const char *s);
/* The same, saying in why (a line, then a hint) what is wrong with s: 0 when it is. */
int date_check(const char *s, char *why, size_t len);
/* Today's date (UTC), days_ahead days on, as YYYY-MM-DD into buf. */
void date_utc(char *buf, size_t len, int days_ahead);

#endif
