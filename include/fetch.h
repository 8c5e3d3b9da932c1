/*
 * fetch.h - HTTP requests to the API on libcurl's multi interface.
 *
 * fetch.c owns the transfers: up to `concurrency` requests in flight, starts
 * spaced evenly to honour requests_per_minute (the provider asks for steady
 * traffic, not bursts; a few starts missed while the caller was busy are
 * made up), connection reuse through the multi handle's cache,
 * gzip transfer (decoded here, not by libcurl, so that the raw archive can
 * keep the bytes as received), connect and total timeouts, TLS verification
 * always on.
 * It knows nothing of pages or target sets: a request is an opaque body plus a
 * `user` pointer, and what to do with an answer is the scheduler's business.
 */
#ifndef INTERSECT_FETCH_H
#define INTERSECT_FETCH_H

#include <curl/curl.h>

#include "job.h"
#include "util.h"

/* A response larger than this is refused (a 1000-item page is ~3 MiB). */
#define FETCH_MAX_RESPONSE_BYTES (64u * 1024 * 1024)

/* One request and, once done, its outcome. */
struct fetch_req {
	char *body;                   /* owned: the JSON request body */
	void *user;                   /* the caller's; untouched here */
	int keep_wire;                /* keep a gzip body's bytes as received in `wire` */
	double not_before;            /* monotonic seconds; do not start earlier */
	/* filled when the request completes: */
	CURLcode curl_code;           /* CURLE_OK when an HTTP answer came */
	long http_status;             /* 0 when no answer came */
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's message when curl_code != OK */
	struct strbuf response;       /* owned: the (decompressed) body, after
					 fetcher_body() */
	int gzipped;                  /* the body came gzip-encoded */
	struct strbuf wire;           /* owned: a gzipped body as it came over the
					 wire, while it arrives; kept after only
					 with keep_wire (for the archive) */
	double retry_after;           /* seconds from Retry-After; < 0 if none */
	double started, seconds;      /* when it started, and how long it took */
	/* private to fetch.c: */
	size_t budget;                /* bytes it counts in the memory budget (membudget.h) */
	int paused;                   /* its body waits for room in the budget */
	struct fetcher *fetcher;      /* the fetcher running it */
	CURL *easy;
	int bad_encoding;             /* a Content-Encoding that was not asked for */
	int unread;                   /* complete, body not yet made readable (fetcher_body) */
	size_t isize;                 /* what a gzip body decodes to: counted in the budget
					 while unread, as if decoded */
	struct fetch_req *next;
};

struct fetcher;

/* Returns a fetcher the caller frees with fetcher_free(); url = base + path. */
int fetcher_new(const struct job_api *api, const char *url, struct fetcher **out,
		struct etl_error *err) ETL_WUR;
/* Frees the fetcher and every request it still holds (queued or in flight). */
void fetcher_free(struct fetcher *f);

/* Allocates an empty request holding `body` (taken over: freed with the request). */
struct fetch_req *fetch_req_new(char *body, void *user);
void fetch_req_free(struct fetch_req *r);
/*
 * Counts in the process's memory budget what r's buffers hold now (after
 * the caller freed one of them); fetch.c does so as bodies arrive.
 */
void fetch_req_account(struct fetch_req *r);

/* Queues r (ownership passes to the fetcher until fetcher_next returns it). */
void fetcher_add(struct fetcher *f, struct fetch_req *r);

/*
 * Drives transfers until one request completes (returned; ownership back to
 * the caller; its body still to be made readable, fetcher_body()),
 * max_wait_ms passes, or nothing is queued or in flight (both NULL).
 */
struct fetch_req *fetcher_next(struct fetcher *f, int max_wait_ms);

/*
 * Makes a returned request's body readable: decodes a gzip body and cuts a
 * credential the API echoes (redact.h); sets curl_code and errbuf when the
 * gzip is bad. Left to the caller, so that the requests that take the
 * places of answers that arrived together go out before any of their
 * bodies is decoded (about a millisecond each). Call it before reading
 * `response`; a second call does nothing.
 */
void fetcher_body(struct fetch_req *r);

/*
 * Starts what is queued and may start now, and sends what it can without
 * waiting: for a caller about to spend time on an answer, so that the
 * requests it just queued are on the wire meanwhile.
 */
void fetcher_start(struct fetcher *f);

/*
 * Takes back any one request not yet returned (queued or in flight, which is
 * aborted), for cleaning up after a run-wide stop; NULL when none is left.
 */
struct fetch_req *fetcher_cancel_one(struct fetcher *f);

/*
 * While held, no request starts (those in flight go on): the scheduler holds
 * its requests while it cannot show it still holds the job's lock.
 */
void fetcher_hold(struct fetcher *f, int held);

/* Wakes fetcher_next from another thread (curl_multi_wakeup). */
void fetcher_wakeup(struct fetcher *f);

size_t fetcher_in_flight(const struct fetcher *f);
size_t fetcher_queued(const struct fetcher *f);

/*
 * Changes the pace while running: the scheduler slows down on rate-limit
 * answers and recovers gradually. Values are clamped to the job's own limits.
 */
void fetcher_set_pace(struct fetcher *f, int concurrency, double requests_per_minute);
int fetcher_concurrency(const struct fetcher *f);
double fetcher_rate(const struct fetcher *f);

/* Monotonic clock in seconds. */
double mono_now(void);

#endif
