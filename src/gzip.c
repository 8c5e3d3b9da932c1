/*
 * gzip.c - gzip decoding onto a strbuf, on zlib. See gzip.h.
 *
 * zlib is already in every process that links libcurl and libpq; using it
 * directly adds no library to the machine, only to the link line.
 *
 * The cap is enforced before memory is spent, not after: the buffer grows
 * by doubling but never past the cap, and zlib is never given room for more
 * than one byte past it (the byte that shows the cap is passed). Growing
 * first and checking after, as this file once did, let a bomb fill 128 MiB
 * for a 64 MiB cap.
 */
#include "gzip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#define OUT_STEP (256u * 1024) /* output space reserved when out runs short */
#define ZMAX (1u << 30)        /* zlib counts in uInt: at most this per call */

/*
 * More room in out, doubling, but never more than the decoding can use:
 * max_out bytes from start, one more that shows the cap is passed, and the
 * NUL. Only called when out has less than 2 bytes free.
 */
static void grow(struct strbuf *out, size_t start, size_t max_out)
{
	size_t limit = max_out > SIZE_MAX - start - 2 ? SIZE_MAX : start + max_out + 2;
	size_t want = out->cap < OUT_STEP ? out->len + OUT_STEP : 2 * out->cap;

	if (want > limit)
		want = limit;
	if (want <= out->cap)
		return;
	/* not through the pool (bufpool.h): it rounds up, past the cap */
	out->data = xrealloc(out->data, want);
	out->cap = want;
}

/*
 * The whole stream at once, with libdeflate, into room for the size its
 * trailer states: 2 to 3 times zlib's speed, and a page's bodies are most
 * of what the process decodes (zlib was a fifth of its CPU on a night).
 * 0, or -1 for anything but a good single stream of that size within the
 * cap: zlib's streaming decoder below then says what is wrong (or decodes a
 * stream whose trailer understates its size).
 */
static int whole(const void *in, size_t n, size_t max_out, struct strbuf *out)
{
	const unsigned char *t = (const unsigned char *)in + n - 4;
	struct libdeflate_decompressor *d;
	enum libdeflate_result r;
	size_t isize, used = 0, got = 0;

	if (n < 18)
		return -1;
	isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
	if (isize > max_out)
		return -1;
	if (out->cap - out->len < isize + 1) { /* exactly: the cap holds */
		out->data = xrealloc(out->data, out->len + isize + 1);
		out->cap = out->len + isize + 1;
	}
	if (!(d = libdeflate_alloc_decompressor())) {
		fputs("intersect-etl: out of memory creating a gzip decoder\n", stderr);
		abort();
	}
	r = libdeflate_gzip_decompress_ex(d, in, n, out->data + out->len, isize, &used, &got);
	libdeflate_free_decompressor(d);
	if (r != LIBDEFLATE_SUCCESS || used != n || got != isize)
		return -1;
	out->len += got;
	out->data[out->len] = '\0';
	return 0;
}

int gunzip_all(const void *in, size_t n, size_t max_out, struct strbuf *out, char *msg,
	       size_t msgsz)
{
	z_stream zs;
	size_t produced = 0, room, fed = 0, start = out->len;
	int zrc = Z_OK;

	if (whole(in, n, max_out, out) == 0)
		return 0;
	memset(&zs, 0, sizeof(zs));
	/* 16 + MAX_WBITS: a gzip wrapper, and only that */
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		fputs("intersect-etl: out of memory creating a gzip decoder\n", stderr);
		abort();
	}
	zs.next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const-clean */
	while (zrc != Z_STREAM_END) {
		if (!zs.avail_in && fed < n) {
			zs.avail_in = n - fed > ZMAX ? ZMAX : (uInt)(n - fed);
			fed += zs.avail_in;
		}
		if (out->cap - out->len < 2)
			grow(out, start, max_out);
		room = out->cap - out->len - 1; /* keep the NUL's byte */
		if (room - 1 > max_out - produced) /* produced <= max_out here */
			room = max_out - produced + 1;
		zs.next_out = (Bytef *)out->data + out->len;
		zs.avail_out = room > ZMAX ? ZMAX : (uInt)room;
		room = zs.avail_out;
		zrc = inflate(&zs, Z_NO_FLUSH);
		out->len += room - zs.avail_out;
		produced += room - zs.avail_out;
		out->data[out->len] = '\0';
		if (zrc == Z_MEM_ERROR) {
			fputs("intersect-etl: out of memory decoding gzip\n", stderr);
			abort();
		}
		if (produced > max_out) {
			snprintf(msg, msgsz, "the body decodes to more than %zu bytes", max_out);
			break;
		}
		if (zrc == Z_BUF_ERROR && !zs.avail_in && fed == n) {
			snprintf(msg, msgsz, "the gzip stream ends early (truncated body)");
			break;
		}
		if (zrc != Z_OK && zrc != Z_BUF_ERROR && zrc != Z_STREAM_END) {
			snprintf(msg, msgsz, "not a valid gzip stream: %s",
				 zs.msg ? zs.msg : "corrupt data");
			break;
		}
		if (zrc == Z_STREAM_END && (zs.avail_in || fed < n)) {
			snprintf(msg, msgsz, "data after the end of the gzip stream");
			break;
		}
	}
	inflateEnd(&zs);
	return zrc == Z_STREAM_END && produced <= max_out && !zs.avail_in && fed == n ? 0 : -1;
}
