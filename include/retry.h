/*
 * retry.h - what to do about a failed request: the retry policy in one table.
 *
 * retry.c maps every way a page request can fail (network, HTTP status, the
 * gateway's error object, malformed JSON, the API's top-level and task status
 * codes) to one verdict, and computes the backoff. The table in retry.c is
 * the policy; the README's "Errors and retries" section is generated from
 * reading it, not the other way round.
 */
#ifndef INTERSECT_RETRY_H
#define INTERSECT_RETRY_H

#include "fetch.h"
#include "transform.h"

enum retry_verdict {
	VERDICT_OK = 0,       /* the page is usable */
	VERDICT_RETRY,        /* transient: try the page again after a backoff */
	VERDICT_RETRY_SLOW,   /* rate-limited: retry, and slow the whole run down */
	VERDICT_FAIL_SET,     /* this set's request is wrong: fail the set */
	VERDICT_FAIL_RUN,     /* credentials, payment, endpoint: stop the run */
};

/*
 * Classifies a completed request. resp is the parsed response when an HTTP
 * answer came (may be NULL otherwise). *code is set to the API/task status
 * code that decided, or 0.
 */
enum retry_verdict retry_classify(const struct fetch_req *req, const struct api_response *resp,
				  int *code);
const char *retry_verdict_name(enum retry_verdict v);

/*
 * Seconds to wait before attempt `attempt` (2 = first retry): capped
 * exponential backoff with full jitter, and never less than Retry-After.
 * *seed is the jitter's state (rand_r).
 */
double retry_backoff(int attempt, double retry_after, unsigned *seed);

#endif
