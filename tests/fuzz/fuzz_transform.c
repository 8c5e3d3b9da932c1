/*
 * fuzz_transform.c - libFuzzer harness for the response parser and the
 * transformer: any bytes, as an API response body, must end in a usable page
 * or a clean error, never a crash, a leak or undefined behaviour.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char t1[] = "a.com", t2[] = "b.com", t3[] = "c.com";
	static char *targets[] = {t1, t2, t3};
	struct transform_ctx ctx = {"2026-01-01", 1, 1, 0, 1000, targets, 3, 0, NULL, 1};
	struct etl_error err;
	struct api_response resp;
	struct row_batch batch;
	char *body = xmalloc(size + 1);

	memcpy(body, data, size);
	body[size] = '\0';
	row_batch_init(&batch);
	if (response_parse(body, size, &resp, &err) == 0 && resp.error == RESP_OK) {
		size_t before = batch.copy.len;

		if (transform_page(&resp, &ctx, &batch, &err) != 0 && batch.copy.len != before)
			abort(); /* a failed page must leave the batch as it was */
	}
	response_free(&resp);
	row_batch_free(&batch);
	free(body);
	return 0;
}
