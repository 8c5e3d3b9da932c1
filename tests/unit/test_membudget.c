/*
 * test_membudget.c - the process's memory budget: a table of steps (take,
 * release, what fits after each), and takes and releases from several
 * threads at once that must leave it where it started.
 */
#include <pthread.h>

#include "check.h"
#include "membudget.h"

enum op { TAKE, RELEASE };

struct step {
	enum op op;
	size_t n;
	size_t used;      /* after the step */
	size_t fits_max;  /* the most that fits after it (0 when nothing does) */
	int fits_zero;    /* membudget_fits(0) */
};

/* With a limit of 100. */
static const struct step steps[] = {
	{TAKE, 40, 40, 60, 1},
	{TAKE, 60, 100, 0, 1},   /* exactly full: 0 more still fits */
	{TAKE, 50, 150, 0, 0},   /* taken past the limit (a page larger than the rest) */
	{RELEASE, 100, 50, 50, 1},
	{RELEASE, 80, 0, 100, 1}, /* more than held: never below 0 */
	{TAKE, 1000, 1000, 0, 0}, /* one page larger than the whole budget, alone */
	{RELEASE, 1000, 0, 100, 1},
};

static void *churn(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 100000; i++) {
		membudget_take(7);
		membudget_release(7);
	}
	return NULL;
}

int main(void)
{
	pthread_t t[4];
	size_t i;

	CHECK_INT(membudget_limit(), MEMBUDGET_DEFAULT_BYTES);
	CHECK(MEMBUDGET_DEFAULT_BYTES <= (size_t)256 << 20); /* the unit's MemoryMax is 512M */
	membudget_set_limit(100);
	CHECK_INT(membudget_limit(), 100);
	CHECK(membudget_fits(100));
	CHECK(!membudget_fits(101));
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		const struct step *s = &steps[i];

		if (s->op == TAKE)
			membudget_take(s->n);
		else
			membudget_release(s->n);
		CHECK_INT(membudget_used(), s->used);
		CHECK_INT(membudget_fits(0), s->fits_zero);
		if (s->fits_max) {
			CHECK(membudget_fits(s->fits_max));
			CHECK(!membudget_fits(s->fits_max + 1));
		} else {
			CHECK(!membudget_fits(1));
		}
	}
	CHECK_INT(membudget_peak(), 1000);
	/* loaders give bytes back from their threads */
	membudget_take(10);
	for (i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, churn, NULL), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(membudget_used(), 10);
	membudget_set_limit(0);
	CHECK_INT(membudget_limit(), MEMBUDGET_DEFAULT_BYTES);
	return check_summary();
}
