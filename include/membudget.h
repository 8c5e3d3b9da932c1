/*
 * membudget.h - one memory budget for the whole process.
 *
 * membudget.c counts the bytes a run holds for pages: answers in flight and
 * received (fetch.c, their buffers' capacity), and the COPY text of pages
 * transformed and waiting for, or in, a loader (schedule.c). Together they stay
 * under the limit by back-pressure, never by failing a page:
 *   - a transfer whose body needs room that is not there is paused
 *     (libcurl's CURL_WRITEFUNC_PAUSE; TCP holds the rest at the sender)
 *     until loaded pages give theirs back, except the oldest transfer in
 *     flight, which always goes on, so that something always finishes;
 *     bodies in flight get half the budget, the rest is for pages that
 *     have arrived (fetch.c);
 *   - no new request starts while the budget is spent;
 *   - a page that has arrived is transformed only when its COPY text fits,
 *     or when nothing else can give room back (a page larger than the whole
 *     budget proceeds alone).
 * So the process holds at most the limit plus one page beyond it (the oldest
 * transfer's body and its transform), plus what is not counted: libpq's and
 * libcurl's own buffers, the parsed document of the page being
 * transformed and the blocks bufpool.h keeps for the next page (at most
 * BUFPOOL_DEFAULT_BYTES) (bench/README.md, "Memory of hostile answers at
 * once").
 * Thread-safe: loader threads may give bytes back.
 */
#ifndef INTERSECT_MEMBUDGET_H
#define INTERSECT_MEMBUDGET_H

#include <stddef.h>

/* The default limit: fits the shipped unit's MemoryMax=512M with the uncounted rest. */
#define MEMBUDGET_DEFAULT_BYTES ((size_t)160 * 1024 * 1024)

/* Sets the limit (0: MEMBUDGET_DEFAULT_BYTES). */
void membudget_set_limit(size_t bytes);
size_t membudget_limit(void);

/* Whether n more bytes fit under the limit now. */
int membudget_fits(size_t n);
/* Counts n bytes as held, whether they fit or not (the caller decided). */
void membudget_take(size_t n);
/* Gives n bytes back. */
void membudget_release(size_t n);
/* Bytes held now, and the most ever held at once (for the debug log and tests). */
size_t membudget_used(void);
size_t membudget_peak(void);

#endif
