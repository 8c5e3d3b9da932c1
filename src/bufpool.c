/*
 * bufpool.c - a page's large buffers kept for the next page. See bufpool.h.
 */
#include "bufpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct block {
	void *p;
	size_t cap;
} kept[BUFPOOL_BLOCKS]; /* oldest first */
static size_t n_kept, kept_bytes, limit = BUFPOOL_DEFAULT_BYTES;

/* Removes kept[i]; the caller holds mu. */
static struct block take(size_t i)
{
	struct block b = kept[i];

	memmove(&kept[i], &kept[i + 1], (n_kept - i - 1) * sizeof(kept[0]));
	n_kept--;
	kept_bytes -= b.cap;
	return b;
}

/* The oldest blocks out until `more` bytes fit (in a free slot if slot);
 * they go to out, freed by the caller outside the lock. */
static size_t make_room(size_t more, int slot, struct block *out)
{
	size_t n = 0;

	while (n_kept && ((slot && n_kept == BUFPOOL_BLOCKS) || kept_bytes + more > limit))
		out[n++] = take(0);
	return n;
}

/* want rounded up to a quarter step between powers of two (at most 25%
 * more): blocks for pages of slightly different sizes are then one size. */
static size_t size_class(size_t want)
{
	size_t step = BUFPOOL_MIN / 4;

	while (step <= want / 8)
		step *= 2;
	return (want + step - 1) / step * step;
}

void *bufpool_get(size_t want, size_t *cap)
{
	size_t i, best = BUFPOOL_BLOCKS;
	struct block b = {NULL, 0};

	if (want >= BUFPOOL_MIN) {
		want = size_class(want);
		pthread_mutex_lock(&mu);
		/* the smallest that fits, if it wastes at most half of itself */
		for (i = 0; i < n_kept; i++)
			if (kept[i].cap >= want && kept[i].cap / 2 <= want &&
			    (best == BUFPOOL_BLOCKS || kept[i].cap < kept[best].cap))
				best = i;
		if (best < BUFPOOL_BLOCKS)
			b = take(best);
		pthread_mutex_unlock(&mu);
	}
	if (b.p) {
		*cap = b.cap;
		return b.p;
	}
	*cap = want;
	return xmalloc(want);
}

void bufpool_put(void *p, size_t cap)
{
	struct block out[BUFPOOL_BLOCKS];
	size_t i, n = 0;

	if (!p)
		return;
	if (cap < BUFPOOL_MIN) {
		free(p);
		return;
	}
	pthread_mutex_lock(&mu);
	if (cap <= limit) {
		n = make_room(cap, 1, out);
		kept[n_kept].p = p;
		kept[n_kept++].cap = cap;
		kept_bytes += cap;
		p = NULL;
	}
	pthread_mutex_unlock(&mu);
	free(p);
	for (i = 0; i < n; i++)
		free(out[i].p);
}

void *bufpool_grow(void *p, size_t len, size_t cap, size_t want, size_t *new_cap)
{
	void *q;

	if (want < BUFPOOL_MIN) {
		*new_cap = want;
		return xrealloc(p, want);
	}
	q = bufpool_get(want, new_cap);
	if (len)
		memcpy(q, p, len);
	bufpool_put(p, cap);
	return q;
}

void bufpool_set_limit(size_t bytes)
{
	struct block out[BUFPOOL_BLOCKS];
	size_t i, n;

	pthread_mutex_lock(&mu);
	limit = bytes ? bytes : BUFPOOL_DEFAULT_BYTES;
	n = make_room(0, 0, out);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < n; i++)
		free(out[i].p);
}

size_t bufpool_limit(void)
{
	size_t v;

	pthread_mutex_lock(&mu);
	v = limit;
	pthread_mutex_unlock(&mu);
	return v;
}

void bufpool_stats(size_t *blocks, size_t *bytes)
{
	pthread_mutex_lock(&mu);
	*blocks = n_kept;
	*bytes = kept_bytes;
	pthread_mutex_unlock(&mu);
}

void bufpool_clear(void)
{
	struct block out[BUFPOOL_BLOCKS];
	size_t i, n = 0;

	pthread_mutex_lock(&mu);
	while (n_kept)
		out[n++] = take(0);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < n; i++)
		free(out[i].p);
}
