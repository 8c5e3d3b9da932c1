/*
 * loader.c - worker threads sharing a bounded request queue and a
 * completion queue. See loader.h.
 */
#include "loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

struct worker_arg {
	struct loader *l;
	int index;                  /* passed to exec: which worker runs it */
};

struct loader {
	pthread_t *threads;
	struct worker_arg *args;
	int n_workers;
	pthread_mutex_t lock;
	pthread_cond_t work;        /* the worker waits here for requests */
	pthread_cond_t room;        /* submitters wait here for space */
	pthread_cond_t done;        /* loader_wait waits here for completions */
	struct loader_msg *req_head, *req_tail;
	struct loader_msg *done_head, *done_tail;
	size_t n_req, capacity;
	size_t outstanding;         /* submitted, not yet taken back */
	int stopping;
	int (*exec)(void *ctx, int worker, struct loader_msg *m);
	void (*wake)(void *ctx);
	void *ctx;
};

static void push(struct loader_msg **head, struct loader_msg **tail, struct loader_msg *m)
{
	m->next = NULL;
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

static struct loader_msg *pop(struct loader_msg **head, struct loader_msg **tail)
{
	struct loader_msg *m = *head;

	if (m) {
		*head = m->next;
		if (!*head)
			*tail = NULL;
		m->next = NULL;
	}
	return m;
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct loader *l = wa->l;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct loader_msg *m;

		while (!l->req_head && !l->stopping)
			pthread_cond_wait(&l->work, &l->lock);
		m = pop(&l->req_head, &l->req_tail);
		if (!m)
			break; /* stopping, and nothing left */
		if (l->n_req-- == l->capacity && l->wake)
			l->wake(l->ctx); /* room again: a submitter may be waiting for it */
		pthread_cond_signal(&l->room);
		pthread_mutex_unlock(&l->lock);
		m->rc = l->exec(l->ctx, wa->index, m);
		pthread_mutex_lock(&l->lock);
		push(&l->done_head, &l->done_tail, m);
		pthread_cond_broadcast(&l->done);
		if (l->wake)
			l->wake(l->ctx);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

struct loader *loader_start(size_t capacity, int n_workers,
			    int (*exec)(void *ctx, int worker, struct loader_msg *m),
			    void (*wake)(void *ctx), void *ctx)
{
	struct loader *l = xcalloc(1, sizeof(*l));
	int i;

	l->capacity = capacity ? capacity : 1;
	l->n_workers = n_workers > 0 ? n_workers : 1;
	l->exec = exec;
	l->wake = wake;
	l->ctx = ctx;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->work, NULL);
	pthread_cond_init(&l->room, NULL);
	pthread_cond_init(&l->done, NULL);
	l->threads = xcalloc((size_t)l->n_workers, sizeof(*l->threads));
	l->args = xcalloc((size_t)l->n_workers, sizeof(*l->args));
	for (i = 0; i < l->n_workers; i++) {
		l->args[i].l = l;
		l->args[i].index = i;
		if (pthread_create(&l->threads[i], NULL, worker, &l->args[i]) != 0) {
			fprintf(stderr, "intersect-etl: cannot start a loader thread\n");
			abort();
		}
	}
	return l;
}

void loader_submit(struct loader *l, struct loader_msg *m)
{
	pthread_mutex_lock(&l->lock);
	while (l->n_req >= l->capacity)
		pthread_cond_wait(&l->room, &l->lock);
	push(&l->req_head, &l->req_tail, m);
	l->n_req++;
	l->outstanding++;
	pthread_cond_signal(&l->work);
	pthread_mutex_unlock(&l->lock);
}

struct loader_msg *loader_poll(struct loader *l)
{
	struct loader_msg *m;

	pthread_mutex_lock(&l->lock);
	m = pop(&l->done_head, &l->done_tail);
	if (m)
		l->outstanding--;
	pthread_mutex_unlock(&l->lock);
	return m;
}

struct loader_msg *loader_wait(struct loader *l)
{
	struct loader_msg *m;

	pthread_mutex_lock(&l->lock);
	while (!l->done_head && l->outstanding > 0)
		pthread_cond_wait(&l->done, &l->lock);
	m = pop(&l->done_head, &l->done_tail);
	if (m)
		l->outstanding--;
	pthread_mutex_unlock(&l->lock);
	return m;
}

int loader_has_room(const struct loader *l)
{
	struct loader *ml = (struct loader *)l; /* the lock is not part of the value */
	int room;

	pthread_mutex_lock(&ml->lock);
	room = ml->n_req < ml->capacity;
	pthread_mutex_unlock(&ml->lock);
	return room;
}

size_t loader_outstanding(const struct loader *l)
{
	struct loader *ml = (struct loader *)l; /* the lock is not part of the value */
	size_t n;

	pthread_mutex_lock(&ml->lock);
	n = ml->outstanding;
	pthread_mutex_unlock(&ml->lock);
	return n;
}

void loader_stop(struct loader *l, void (*drop)(void *ctx, struct loader_msg *m))
{
	struct loader_msg *m;
	int i;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stopping = 1;
	pthread_cond_broadcast(&l->work);
	pthread_mutex_unlock(&l->lock);
	for (i = 0; i < l->n_workers; i++)
		pthread_join(l->threads[i], NULL);
	while ((m = pop(&l->done_head, &l->done_tail)))
		if (drop)
			drop(l->ctx, m);
	pthread_cond_destroy(&l->work);
	pthread_cond_destroy(&l->room);
	pthread_cond_destroy(&l->done);
	pthread_mutex_destroy(&l->lock);
	free(l->threads);
	free(l->args);
	free(l);
}
