/*
 * redact.h - cutting credentials out of text that came from outside.
 *
 * The API token, the DataForSEO password and the database password are
 * registered once they are known (fetcher_new(), db_connect()); every text
 * that enters from outside passes through redact() at its entry, before
 * anything logs, stores or shows it: a response body in fetch.c as soon as
 * it is complete (so status messages, page errors, the ledger and the
 * archive all derive from the cut text), and a database or libpq message in
 * db.c. Each occurrence becomes "***". The registry is process-wide (the
 * credentials are) and guarded by a mutex: loader threads connect and fail
 * while the fetcher reads bodies.
 */
#ifndef INTERSECT_REDACT_H
#define INTERSECT_REDACT_H

#include <stddef.h>

/* Shorter credentials are not looked for: they would cut ordinary words. */
#define REDACT_MIN_LEN 4
/* What a credential is replaced with: shorter than any registered one, so
 * redact() works in place. */
#define REDACT_MARK "***"

/*
 * Registers a credential (copied; NULL, or shorter than REDACT_MIN_LEN:
 * ignored; registering one again is harmless). Its JSON-escaped spelling
 * ('/' as "\/", '"' and '\' escaped) is registered too when it differs, as
 * an echoing API may write it that way.
 */
void redact_add(const char *secret);

/* Forgets every registered credential, zeroing the copies (tests, exit). */
void redact_clear(void);

/*
 * Replaces every registered credential in s[0..len) with REDACT_MARK, in
 * place; returns the new length (<= len; s is not NUL-terminated by it).
 */
size_t redact(char *s, size_t len);

/* redact() on a NUL-terminated string; returns whether anything was cut. */
int redact_str(char *s);

#endif
