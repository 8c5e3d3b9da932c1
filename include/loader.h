/*
 * loader.h - the database work of a run, on threads of its own.
 *
 * loader.c owns worker threads (one per database connection) and two queues:
 * requests (bounded: when it is full, the submitting thread waits, which is
 * the back-pressure that keeps memory at about capacity x page size) and
 * completions. The fetching thread parses while the workers transform and
 * COPY the previous pages (schedule.c), so fetching never waits on the database
 * unless the database falls a whole queue behind. Workers take requests in
 * submission order but several run at once, so completions may come back in
 * another order: a message that must follow others is submitted only once
 * they have completed. What a message does is the caller's `exec` function:
 * the loader knows only order and ownership.
 */
#ifndef INTERSECT_LOADER_H
#define INTERSECT_LOADER_H

#include <stddef.h>

struct loader;

/* One unit of database work; allocated and interpreted by the caller. */
struct loader_msg {
	struct loader_msg *next; /* queue link: the loader's */
	int rc;                  /* exec's return, set before completion */
};

/*
 * Starts n_workers threads. exec runs on them, each worker one message at a
 * time; `worker` (0..n_workers-1) says which, e.g. to pick its connection.
 * wake (may be NULL) is called from a worker after each completion, and
 * when it takes a message from a full queue (room for another), so a
 * thread sleeping elsewhere (in curl_multi_poll) wakes.
 */
struct loader *loader_start(size_t capacity, int n_workers,
			    int (*exec)(void *ctx, int worker, struct loader_msg *m),
			    void (*wake)(void *ctx), void *ctx);
/* Queues m; waits while `capacity` messages are already waiting. */
void loader_submit(struct loader *l, struct loader_msg *m);
/* 1 when loader_submit() would not wait now. */
int loader_has_room(const struct loader *l);
/* A completed message (ownership back to the caller), or NULL if none yet. */
struct loader_msg *loader_poll(struct loader *l);
/* Waits until a message completes (or none is outstanding: NULL). */
struct loader_msg *loader_wait(struct loader *l);
/* Messages submitted and not yet returned by loader_poll/loader_wait. */
size_t loader_outstanding(const struct loader *l);
/* Finishes the queued work, stops the threads; completions not yet taken are
 * passed to `drop` (may be NULL) and the loader is freed. */
void loader_stop(struct loader *l, void (*drop)(void *ctx, struct loader_msg *m));

#endif
