/*
 * test_gzip.c - gunzip_all() on good streams and on each way a body can be
 * bad: empty, cut short, corrupted, followed by other bytes, not gzip at
 * all, stating another size, or decoding past the cap. Good streams decode
 * whole (libdeflate); every bad one falls to zlib's streaming decoder,
 * which says what is wrong. Streams are made here with zlib's own
 * deflate, so the decoder is checked against an independent encoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "gzip.h"

/* text[0..n) as a gzip stream in out (caller frees out->data). */
static void gzip_of(const char *text, size_t n, struct strbuf *out)
{
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	sb_init(out);
	sb_reserve(out, deflateBound(&zs, (uLong)n));
	zs.next_in = (Bytef *)(uintptr_t)text;
	zs.avail_in = (uInt)n;
	zs.next_out = (Bytef *)out->data;
	zs.avail_out = (uInt)(out->cap - 1);
	CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	out->len = zs.total_out;
	deflateEnd(&zs);
}

/* Decodes in[0..n) with cap max_out; checks the result and the message. */
static void expect(const char *what, const char *in, size_t n, size_t max_out, const char *want,
		   size_t want_len, const char *want_err)
{
	struct strbuf out;
	char msg[200] = "";
	int rc;

	sb_init(&out);
	sb_append(&out, "prefix:", 7); /* appended to, never overwritten */
	rc = gunzip_all(in, n, max_out, &out, msg, sizeof(msg));
	if (want_err) {
		CHECK_INT(rc, -1);
		CHECK_CONTAINS(msg, want_err);
	} else {
		CHECK_INT(rc, 0);
		CHECK_INT((long long)out.len, (long long)(7 + want_len));
		CHECK(memcmp(out.data, "prefix:", 7) == 0);
		CHECK(memcmp(out.data + 7, want, want_len) == 0);
		CHECK(out.data[out.len] == '\0');
	}
	if ((rc != 0) != (want_err != NULL))
		fprintf(stderr, "  in case \"%s\": %s\n", what, rc ? msg : "decoded");
	sb_free(&out);
}

/*
 * A bomb: 16 MiB of zeros (16 KiB gzipped) against caps around 1 MiB. The
 * buffer never grows past the cap (plus the byte that shows it is passed
 * and the NUL), where doubling before checking took up to twice the cap.
 */
static void test_bomb(void)
{
	static const size_t caps[] = {1 << 20, (1 << 20) + 12345, (3 << 20) / 2, 16 << 20};
	size_t n = 16 << 20, i;
	char *zeros = calloc(1, n);
	struct strbuf gz, out;
	char msg[200];

	gzip_of(zeros, n, &gz);
	for (i = 0; i < ETL_ARRAY_LEN(caps); i++) {
		sb_init(&out);
		sb_append(&out, "prefix:", 7);
		msg[0] = '\0';
		if (caps[i] < n) {
			CHECK_INT(gunzip_all(gz.data, gz.len, caps[i], &out, msg, sizeof(msg)), -1);
			CHECK_CONTAINS(msg, "the body decodes to more than");
			CHECK_INT(out.len, 7 + caps[i] + 1);
		} else {
			CHECK_INT(gunzip_all(gz.data, gz.len, caps[i], &out, msg, sizeof(msg)), 0);
			CHECK_INT(out.len, 7 + n);
		}
		if (out.cap > 7 + caps[i] + 2)
			fprintf(stderr, "cap %zu: buffer of %zu bytes\n", caps[i], out.cap);
		CHECK(out.cap <= 7 + caps[i] + 2);
		sb_free(&out);
	}
	sb_free(&gz);
	free(zeros);
}

int main(void)
{
	const char *small = "{\"status_code\": 20000}";
	size_t big_n = 3 * 1024 * 1024 + 17, i;
	char *big = malloc(big_n);
	struct strbuf gz, bad;

	/* a body larger than one output step, not all one byte */
	for (i = 0; i < big_n; i++)
		big[i] = (char)('a' + (i * 7 + i / 1000) % 26);

	gzip_of(small, strlen(small), &gz);
	expect("small", gz.data, gz.len, 1000, small, strlen(small), NULL);
	/* the cap is inclusive, one byte less is refused */
	expect("cap exact", gz.data, gz.len, strlen(small), small, strlen(small), NULL);
	expect("cap", gz.data, gz.len, strlen(small) - 1, NULL, 0,
	       "the body decodes to more than 21 bytes");
	/* cut anywhere: the stream ends early */
	for (i = 0; i < gz.len; i++)
		expect("cut", gz.data, i, 1000, NULL, 0, "the gzip stream ends early");
	expect("empty", "", 0, 1000, NULL, 0, "the gzip stream ends early");
	/* bytes after the stream, and a second stream after it */
	sb_init(&bad);
	sb_append(&bad, gz.data, gz.len);
	sb_append(&bad, "x", 1);
	expect("trailing", bad.data, bad.len, 1000, NULL, 0, "data after the end of the gzip stream");
	sb_append(&bad, gz.data, gz.len);
	expect("two streams", bad.data, bad.len, 1000, NULL, 0, "data after the end");
	/* a corrupted byte: the CRC or the data is wrong */
	sb_reset(&bad);
	sb_append(&bad, gz.data, gz.len);
	bad.data[gz.len - 6] ^= 0x01;
	expect("crc", bad.data, bad.len, 1000, NULL, 0, "not a valid gzip stream");
	expect("not gzip", small, strlen(small), 1000, NULL, 0, "not a valid gzip stream");
	sb_free(&gz);
	sb_free(&bad);

	gzip_of(big, big_n, &gz);
	expect("big", gz.data, gz.len, big_n, big, big_n, NULL);
	expect("big over cap", gz.data, gz.len, big_n - 1, NULL, 0, "decodes to more than");
	/* a trailer that states another size: the whole-stream decoder (which
	 * sizes its output by it) declines, and the streaming one refuses it */
	sb_init(&bad);
	sb_append(&bad, gz.data, gz.len);
	bad.data[gz.len - 4] ^= 0x10; /* ISIZE, little-endian: 16 bytes off */
	expect("isize", bad.data, bad.len, big_n + 100, NULL, 0, "not a valid gzip stream");
	sb_free(&bad);
	sb_free(&gz);
	free(big);
	test_bomb();
	return check_summary();
}
