/*
 * membudget.c - the process's memory budget. See membudget.h.
 *
 * A counter under a mutex: the decisions (pause a transfer, wait before a
 * transform) are the callers', taken on the fetching thread, which is the
 * only one that waits for room; it waits for loader completions, which is
 * when room comes back (schedule.c), so no condition variable is needed here.
 */
#include "membudget.h"

#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static size_t limit = MEMBUDGET_DEFAULT_BYTES;
static size_t used;  /* bytes counted as held */
static size_t peak;  /* the most `used` has been */

void membudget_set_limit(size_t bytes)
{
	pthread_mutex_lock(&lock);
	limit = bytes ? bytes : MEMBUDGET_DEFAULT_BYTES;
	pthread_mutex_unlock(&lock);
}

size_t membudget_limit(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = limit;
	pthread_mutex_unlock(&lock);
	return n;
}

int membudget_fits(size_t n)
{
	int fits;

	pthread_mutex_lock(&lock);
	fits = used <= limit && n <= limit - used;
	pthread_mutex_unlock(&lock);
	return fits;
}

void membudget_take(size_t n)
{
	pthread_mutex_lock(&lock);
	used += n;
	if (used > peak)
		peak = used;
	pthread_mutex_unlock(&lock);
}

void membudget_release(size_t n)
{
	pthread_mutex_lock(&lock);
	used = n < used ? used - n : 0;
	pthread_mutex_unlock(&lock);
}

size_t membudget_used(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = used;
	pthread_mutex_unlock(&lock);
	return n;
}

size_t membudget_peak(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = peak;
	pthread_mutex_unlock(&lock);
	return n;
}
