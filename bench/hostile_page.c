/*
 * hostile_page.c - one response body through what the fetcher and the
 * scheduler do with it, measured: bench/hostile.py's driver.
 *
 *     hostile_page FILE [gzip]
 *
 * The steps are run.c's and fetch.c's, in their order and on the library
 * the binary links: the body as received (read from FILE), gunzip_all() to
 * the fetcher's cap when it came gzipped, response_parse(), the decoded text
 * freed (run.c frees it once parsed), transform_page() into a batch, then
 * the parsed document freed while the batch waits for the loader. Prints
 * one JSON line: the verdict, wall time, and the process's peak RSS before
 * the body was read ("idle") and at the end (VmHWM, the high-water mark, so
 * whatever step peaked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch.h"
#include "gzip.h"
#include "transform.h"

/*
 * The process's peak RSS so far, in KiB: VmHWM, not getrusage()'s
 * ru_maxrss, which Linux carries over from the image exec() replaced (here,
 * the Python that built a 64 MiB body).
 */
static long maxrss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "..." with the quotes and backslashes of msg escaped, for the JSON line. */
static void put_msg(const char *msg)
{
	putchar('"');
	for (; *msg; msg++) {
		if (*msg == '"' || *msg == '\\')
			putchar('\\');
		putchar(*msg == '\n' ? ' ' : *msg);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	static char names[20][16];
	static char *targets[20];
	struct transform_ctx ctx = {"2026-01-15", 1, 1, 0, 1000, targets, 20};
	struct strbuf wire, body;
	struct api_response resp;
	struct row_batch batch;
	struct etl_error err = {0, ""};
	char buf[1 << 16], msg[256] = "";
	long idle;
	double t0, secs;
	size_t n, decoded, wire_len;
	FILE *f;
	int i, ok = 0, gz = argc > 2 && strcmp(argv[2], "gzip") == 0;

	if (argc < 2 || !(f = fopen(argv[1], "rb"))) {
		fprintf(stderr, "usage: hostile_page FILE [gzip]\n");
		return 2;
	}
	for (i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "t%02d.example", i + 1);
		targets[i] = names[i];
	}
	sb_init(&wire);
	sb_init(&body);
	row_batch_init(&batch);
	idle = maxrss_kib();
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_append(&wire, buf, n);
	fclose(f);
	wire_len = wire.len;

	t0 = now();
	if (gz && gunzip_all(wire.data, wire.len, FETCH_MAX_RESPONSE_BYTES, &body, msg,
			     sizeof(msg)) != 0) {
		snprintf(err.msg, sizeof(err.msg), "gzip body: %s", msg);
		decoded = body.len;
		goto done;
	}
	if (!gz) {
		body = wire;
		sb_init(&wire);
	}
	decoded = body.len;
	if (response_parse(body.data, body.len, &resp, &err) == 0) {
		if (gz)
			sb_free(&body);
		ok = transform_page(&resp, &ctx, &batch, &err) == 0;
	}
	response_free(&resp);
done:
	secs = now() - t0;
	printf("{\"ok\": %s, \"msg\": ", ok ? "true" : "false");
	put_msg(err.msg);
	printf(", \"wire_bytes\": %zu, \"decoded_bytes\": %zu, \"rows\": %zu, \"copy_bytes\": %zu, "
	       "\"wall_s\": %.3f, \"idle_kib\": %ld, \"peak_kib\": %ld}\n",
	       wire_len, decoded, batch.n_rows, batch.copy.len, secs, idle, maxrss_kib());
	row_batch_free(&batch);
	sb_free(&body);
	sb_free(&wire);
	return 0;
}
