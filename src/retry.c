/*
 * retry.c - the retry policy. See retry.h.
 *
 * Sources: the provider's list of status codes (../shared/api-facts.md,
 * "Errors and status codes"). A code missing from the table falls back on its
 * class: 5xxxx is the server's trouble (retry), 4xxxx is ours (fail the set).
 */
#include "retry.h"

#include <stdlib.h>

struct code_rule {
	int lo, hi;                 /* inclusive range of API status codes */
	enum retry_verdict verdict;
};

/* First match wins, so specific codes come before the ranges around them. */
static const struct code_rule code_rules[] = {
	{40103, 40103, VERDICT_RETRY},      /* temporary auth problem on their side */
	{40202, 40202, VERDICT_RETRY_SLOW}, /* per-minute rate limit */
	{40209, 40209, VERDICT_RETRY_SLOW}, /* more than 30 simultaneous requests */
	{40601, 40602, VERDICT_RETRY},      /* task handed to / still in processing */
	{50000, 59999, VERDICT_RETRY},      /* internal error, 50301/50303, 50401 timeout */
	{40100, 40199, VERDICT_FAIL_RUN},   /* credentials */
	{40200, 40201, VERDICT_FAIL_RUN},   /* payment required */
	{40203, 40208, VERDICT_FAIL_RUN},   /* cost limit, access denied, ... */
	{40210, 40299, VERDICT_FAIL_RUN},   /* insufficient funds and the like */
	{40000, 40099, VERDICT_FAIL_RUN},   /* malformed call, e.g. 40006 several tasks */
	{40400, 40499, VERDICT_FAIL_RUN},   /* endpoint not found: every request would fail */
	{40500, 40599, VERDICT_FAIL_SET},   /* invalid field in this set's request */
	{40000, 49999, VERDICT_FAIL_SET},   /* any other client error: this request */
};

struct http_rule {
	long status;
	enum retry_verdict verdict;
};

static const struct http_rule http_rules[] = {
	{401, VERDICT_FAIL_RUN}, /* bad credentials */
	{402, VERDICT_FAIL_RUN}, /* payment required */
	{403, VERDICT_FAIL_RUN}, /* forbidden: key lacks access */
	{404, VERDICT_FAIL_RUN}, /* wrong base_url */
	{408, VERDICT_RETRY},
	{429, VERDICT_RETRY_SLOW},
	{400, VERDICT_FAIL_SET},
	{422, VERDICT_FAIL_SET},
};

static enum retry_verdict by_code(int code)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(code_rules); i++)
		if (code >= code_rules[i].lo && code <= code_rules[i].hi)
			return code_rules[i].verdict;
	return VERDICT_RETRY;
}

/* libcurl failures that no retry can mend: the configuration is wrong. */
static int curl_permanent(CURLcode c)
{
	switch (c) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_NOT_BUILT_IN:
		return 1;
	default:
		return 0;
	}
}

enum retry_verdict retry_classify(const struct fetch_req *req, const struct api_response *resp,
				  int *code)
{
	size_t i;

	*code = 0;
	if (req->curl_code != CURLE_OK)
		return curl_permanent(req->curl_code) ? VERDICT_FAIL_RUN : VERDICT_RETRY;
	if (resp && resp->error == RESP_API_STATUS)
		*code = resp->status_code;
	else if (resp && resp->error == RESP_TASK_STATUS)
		*code = resp->task_status;
	if (req->http_status != 200) {
		for (i = 0; i < ETL_ARRAY_LEN(http_rules); i++)
			if (http_rules[i].status == req->http_status)
				return http_rules[i].verdict;
		/* 5xx and anything unexpected: the server's trouble, retry */
		if (req->http_status >= 500 || !*code)
			return VERDICT_RETRY;
		return by_code(*code);
	}
	/* a body cut short, a gateway's hiccup, or an answer that echoes another
	   request (a cache or gateway mixed answers up): asking again may mend it */
	if (!resp || resp->error == RESP_MALFORMED || resp->error == RESP_GATEWAY ||
	    resp->error == RESP_OTHER_REQUEST)
		return VERDICT_RETRY;
	if (resp->error == RESP_OK)
		return VERDICT_OK;
	return by_code(*code);
}

const char *retry_verdict_name(enum retry_verdict v)
{
	switch (v) {
	case VERDICT_OK: return "ok";
	case VERDICT_RETRY: return "retry";
	case VERDICT_RETRY_SLOW: return "retry, slowing down";
	case VERDICT_FAIL_SET: return "fail the target set";
	case VERDICT_FAIL_RUN: return "stop the run";
	}
	return "?";
}

double retry_backoff(int attempt, double retry_after, unsigned *seed)
{
	/* 1 s, 2 s, 4 s ... capped at 60 s; full jitter spreads retries of many
	 * pages that failed together so they do not return together. */
	double cap = 60.0, base = 1.0, ceiling, wait;
	int n = attempt > 1 ? attempt - 2 : 0;

	ceiling = base * (double)(1u << (n > 6 ? 6 : n));
	if (ceiling > cap)
		ceiling = cap;
	wait = ceiling * (0.5 + 0.5 * ((double)rand_r(seed) / RAND_MAX));
	if (retry_after > wait)
		wait = retry_after > 300 ? 300 : retry_after;
	return wait;
}
