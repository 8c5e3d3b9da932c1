/*
 * gzip.h - decoding the gzip bodies the API sends, as they arrive.
 *
 * The fetcher asks for gzip and decodes it itself (rather than letting
 * libcurl do it) so that the compressed bytes are still in hand for the raw
 * archive: storing them as received costs PostgreSQL a tenth of what storing
 * and compressing the decoded text did. Replay decodes the archived bytes
 * with the same code. A body that does not decode, stops short of the end of
 * its gzip stream, carries data after it or decodes past a size cap is an
 * error with a message naming which.
 */
#ifndef INTERSECT_GZIP_H
#define INTERSECT_GZIP_H

#include <stddef.h>

#include "util.h"

struct gunzip;

/* A decoder that appends at most max_out bytes to out; free with gunzip_free(). */
struct gunzip *gunzip_new(size_t max_out);
void gunzip_free(struct gunzip *g);

/*
 * Decodes in[0..n) onto out. Returns 0, or -1 with gunzip_error() saying why;
 * after an error every later call fails the same way.
 */
int gunzip_feed(struct gunzip *g, const void *in, size_t n, struct strbuf *out) ETL_WUR;

/* 0 when the stream ended exactly at its end, else -1 (see gunzip_error()). */
int gunzip_finish(struct gunzip *g) ETL_WUR;

/* Why the last call failed; "" when none has. */
const char *gunzip_error(const struct gunzip *g);

/* The whole of in[0..n) onto out; -1 with msg (msgsz bytes) saying why. */
int gunzip_all(const void *in, size_t n, size_t max_out, struct strbuf *out, char *msg,
	       size_t msgsz) ETL_WUR;

#endif
