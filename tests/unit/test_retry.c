/*
 * test_retry.c - the retry policy as a table: each way a request can end,
 * and the verdict it must get; and the backoff's bounds.
 */
#include <stdlib.h>

#include "check.h"
#include "retry.h"

struct retry_case {
	CURLcode curl;
	long http;
	enum response_error resp;
	int top, task;
	enum retry_verdict want;
};

static const struct retry_case cases[] = {
	{CURLE_OK, 200, RESP_OK, 20000, 20000, VERDICT_OK},
	{CURLE_COULDNT_CONNECT, 0, RESP_OK, 0, 0, VERDICT_RETRY},
	{CURLE_OPERATION_TIMEDOUT, 0, RESP_OK, 0, 0, VERDICT_RETRY},
	{CURLE_RECV_ERROR, 0, RESP_OK, 0, 0, VERDICT_RETRY},
	{CURLE_GOT_NOTHING, 0, RESP_OK, 0, 0, VERDICT_RETRY},
	{CURLE_PEER_FAILED_VERIFICATION, 0, RESP_OK, 0, 0, VERDICT_FAIL_RUN},
	{CURLE_UNSUPPORTED_PROTOCOL, 0, RESP_OK, 0, 0, VERDICT_FAIL_RUN},
	{CURLE_OK, 429, RESP_GATEWAY, 0, 0, VERDICT_RETRY_SLOW},
	{CURLE_OK, 500, RESP_GATEWAY, 0, 0, VERDICT_RETRY},
	{CURLE_OK, 502, RESP_MALFORMED, 0, 0, VERDICT_RETRY},
	{CURLE_OK, 503, RESP_MALFORMED, 0, 0, VERDICT_RETRY},
	{CURLE_OK, 401, RESP_API_STATUS, 40100, 0, VERDICT_FAIL_RUN},
	{CURLE_OK, 401, RESP_GATEWAY, 0, 0, VERDICT_FAIL_RUN},
	{CURLE_OK, 402, RESP_API_STATUS, 40200, 0, VERDICT_FAIL_RUN},
	{CURLE_OK, 404, RESP_API_STATUS, 40400, 0, VERDICT_FAIL_RUN},
	{CURLE_OK, 400, RESP_GATEWAY, 0, 0, VERDICT_FAIL_SET},
	{CURLE_OK, 200, RESP_MALFORMED, 0, 0, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_GATEWAY, 0, 0, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_OTHER_REQUEST, 20000, 20000, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40202, VERDICT_RETRY_SLOW},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40209, VERDICT_RETRY_SLOW},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40103, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40601, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40602, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 50000, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 50301, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 50303, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 50401, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40100, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40104, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40200, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40210, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40203, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40204, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40401, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40501, VERDICT_FAIL_SET},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40503, VERDICT_FAIL_SET},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 40506, VERDICT_FAIL_SET},
	{CURLE_OK, 200, RESP_API_STATUS, 40006, 0, VERDICT_FAIL_RUN},
	{CURLE_OK, 200, RESP_API_STATUS, 50000, 0, VERDICT_RETRY},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 49999, VERDICT_FAIL_SET},
	{CURLE_OK, 200, RESP_TASK_STATUS, 20000, 30000, VERDICT_RETRY},
};

int main(void)
{
	size_t i;
	unsigned seed = 1;
	int a;

	for (i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		struct fetch_req req;
		struct api_response resp;
		int code;
		enum retry_verdict v;

		memset(&req, 0, sizeof(req));
		memset(&resp, 0, sizeof(resp));
		req.curl_code = cases[i].curl;
		req.http_status = cases[i].http;
		resp.error = cases[i].resp;
		resp.status_code = cases[i].top;
		resp.task_status = cases[i].task;
		v = retry_classify(&req, cases[i].curl == CURLE_OK ? &resp : NULL, &code);
		if (v != cases[i].want)
			fprintf(stderr, "case %zu (curl %d, http %ld, top %d, task %d): %s, want %s\n", i,
				cases[i].curl, cases[i].http, cases[i].top, cases[i].task,
				retry_verdict_name(v), retry_verdict_name(cases[i].want));
		CHECK_INT(v, cases[i].want);
	}
	/* backoff: grows, is capped, jittered within [ceiling/2, ceiling], honours Retry-After */
	for (a = 2; a < 20; a++) {
		double w = retry_backoff(a, -1, &seed);
		double ceiling = 1 << (a - 2 > 6 ? 6 : a - 2);

		if (ceiling > 60)
			ceiling = 60;
		CHECK(w >= ceiling / 2 && w <= ceiling);
	}
	CHECK(retry_backoff(2, 30, &seed) == 30);
	CHECK(retry_backoff(2, 100000, &seed) == 300);
	return check_summary();
}
