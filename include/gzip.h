/*
 * gzip.h - decoding the gzip bodies the API sends.
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

/*
 * Appends the decoding of the gzip stream in[0..n) to out, at most max_out
 * bytes. Returns 0, or -1 with msg (msgsz bytes) saying why. Whatever the
 * stream, out never grows past max_out + 2 bytes beyond what it held (the
 * fetcher's cap is FETCH_MAX_RESPONSE_BYTES, 64 MiB): a bomb is refused
 * having spent the cap, not twice it.
 */
int gunzip_all(const void *in, size_t n, size_t max_out, struct strbuf *out, char *msg,
	       size_t msgsz) ETL_WUR;

#endif
