/*
 * gzip.c - streaming gzip decoding onto a strbuf, on zlib. See gzip.h.
 *
 * zlib is already in every process that links libcurl and libpq; using it
 * directly adds no library to the machine, only to the link line.
 */
#include "gzip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_STEP (256u * 1024) /* output space reserved per inflate() call */

struct gunzip {
	z_stream zs;
	size_t max_out;  /* cap on the decoded size */
	size_t produced; /* decoded so far */
	int ended;       /* the gzip trailer has been read */
	char error[160]; /* "" while all is well */
};

struct gunzip *gunzip_new(size_t max_out)
{
	struct gunzip *g = xcalloc(1, sizeof(*g));

	g->max_out = max_out;
	/* 16 + MAX_WBITS: a gzip wrapper, and only that */
	if (inflateInit2(&g->zs, 16 + MAX_WBITS) != Z_OK) {
		fputs("intersect-etl: out of memory creating a gzip decoder\n", stderr);
		abort();
	}
	return g;
}

void gunzip_free(struct gunzip *g)
{
	if (!g)
		return;
	inflateEnd(&g->zs);
	free(g);
}

const char *gunzip_error(const struct gunzip *g)
{
	return g->error;
}

static int fail(struct gunzip *g, const char *what, const char *detail)
{
	if (!g->error[0])
		snprintf(g->error, sizeof(g->error), "%s%s%s", what, detail ? ": " : "",
			 detail ? detail : "");
	return -1;
}

int gunzip_feed(struct gunzip *g, const void *in, size_t n, struct strbuf *out)
{
	int zrc;

	if (g->error[0])
		return -1;
	if (n && g->ended)
		return fail(g, "data after the end of the gzip stream", NULL);
	g->zs.next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const-clean */
	while (n) {
		/* zlib counts in uInt: feed it at most 1 GiB at a time */
		uInt take = n > (1u << 30) ? (1u << 30) : (uInt)n;
		size_t room;

		g->zs.avail_in = take;
		while (g->zs.avail_in) {
			if (out->cap - out->len < OUT_STEP + 1)
				sb_reserve(out, OUT_STEP);
			room = out->cap - out->len - 1; /* keep the NUL's byte */
			g->zs.next_out = (Bytef *)out->data + out->len;
			g->zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
			room = g->zs.avail_out;
			zrc = inflate(&g->zs, Z_NO_FLUSH);
			out->len += room - g->zs.avail_out;
			g->produced += room - g->zs.avail_out;
			out->data[out->len] = '\0';
			if (g->produced > g->max_out)
				return fail(g, "the body decodes to more bytes than accepted", NULL);
			if (zrc == Z_STREAM_END) {
				g->ended = 1;
				if (g->zs.avail_in || n > take)
					return fail(g, "data after the end of the gzip stream", NULL);
				return 0;
			}
			if (zrc == Z_MEM_ERROR) {
				fputs("intersect-etl: out of memory decoding gzip\n", stderr);
				abort();
			}
			if (zrc != Z_OK && zrc != Z_BUF_ERROR)
				return fail(g, "not a valid gzip stream",
					    g->zs.msg ? g->zs.msg : "corrupt data");
		}
		n -= take;
	}
	return 0;
}

int gunzip_finish(struct gunzip *g)
{
	if (g->error[0])
		return -1;
	if (!g->ended)
		return fail(g, "the gzip stream ends early (truncated body)", NULL);
	return 0;
}

int gunzip_all(const void *in, size_t n, size_t max_out, struct strbuf *out, char *msg,
	       size_t msgsz)
{
	struct gunzip *g = gunzip_new(max_out);
	int rc = gunzip_feed(g, in, n, out);

	if (rc == 0)
		rc = gunzip_finish(g);
	if (rc != 0)
		snprintf(msg, msgsz, "%s", gunzip_error(g));
	gunzip_free(g);
	return rc;
}
