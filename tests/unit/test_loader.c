/*
 * test_loader.c - the loader's queue as the scheduler reads it: whether a
 * submit would wait (loader_has_room()), and the wake a worker sends when it
 * takes a message from a full queue, so that a thread polling elsewhere
 * learns there is room again without a completion (src/schedule.c parses
 * an answer only when a loader can take its page at once).
 *
 * One worker whose work waits at a gate the test opens: every state is
 * reached by waiting for it, never by sleeping.
 */
#include <pthread.h>

#include "check.h"
#include "loader.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started, opened, wakes;

static int exec_gated(void *ctx, int worker, struct loader_msg *m)
{
	(void)ctx;
	(void)worker;
	(void)m;
	pthread_mutex_lock(&mu);
	started++;
	pthread_cond_broadcast(&cv);
	while (opened < started)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return 0;
}

static void wake(void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&mu);
	wakes++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Waits until *v reaches n. */
static void wait_for(const int *v, int n)
{
	pthread_mutex_lock(&mu);
	while (*v < n)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static int count(const int *v)
{
	int n;

	pthread_mutex_lock(&mu);
	n = *v;
	pthread_mutex_unlock(&mu);
	return n;
}

static void open_gate(void)
{
	pthread_mutex_lock(&mu);
	opened++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

int main(void)
{
	struct loader_msg m1 = {0}, m2 = {0}, m3 = {0};
	struct loader *l = loader_start(1, 1, exec_gated, wake, NULL);

	CHECK(loader_has_room(l));
	/* taken from a queue that was full (capacity 1): room again, and a wake */
	loader_submit(l, &m1);
	wait_for(&started, 1);
	wait_for(&wakes, 1);
	CHECK(loader_has_room(l));
	/* the worker is busy: the next one waits in the queue, which is full */
	loader_submit(l, &m2);
	CHECK(!loader_has_room(l));
	CHECK_INT(count(&wakes), 1);
	CHECK_INT(loader_outstanding(l), 2);
	/* m1 done (a wake), m2 taken from the full queue (another): room */
	open_gate();
	wait_for(&started, 2);
	wait_for(&wakes, 3);
	CHECK(loader_has_room(l));
	CHECK(loader_wait(l) == &m1);
	loader_submit(l, &m3);
	CHECK(!loader_has_room(l));
	open_gate();
	wait_for(&started, 3);
	open_gate();
	CHECK(loader_wait(l) == &m2);
	CHECK(loader_wait(l) == &m3);
	CHECK(loader_wait(l) == NULL);
	CHECK(loader_has_room(l));
	loader_stop(l, NULL);
	return check_summary();
}
