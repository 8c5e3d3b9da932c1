/*
 * bufpool.h - a page's large buffers kept for the next page.
 *
 * Every page makes the same few large buffers (its body as it came and
 * decoded, its parsed document, its COPY text), one thread making them and
 * another freeing them. malloc maps each large one on its own (main.c fixes
 * the threshold, so that per-thread arenas do not keep them), and a freshly
 * mapped page costs the kernel a fault and a zeroed page on first touch:
 * at 1,000,000 rows that was most of the process's system time. The pool
 * keeps up to BUFPOOL_BLOCKS freed blocks of BUFPOOL_MIN bytes or more, and
 * at most bufpool_limit() bytes of them, for the next page to take; the
 * oldest go back to malloc first. A block is plain malloc memory: free()
 * stays correct for any of them (the block is then not reused). Thread-safe.
 */
#ifndef INTERSECT_BUFPOOL_H
#define INTERSECT_BUFPOOL_H

#include <stddef.h>

#define BUFPOOL_MIN ((size_t)128 * 1024)
#define BUFPOOL_BLOCKS 24
#define BUFPOOL_DEFAULT_BYTES ((size_t)8 * 1024 * 1024)

/* At least `want` bytes (*cap: how many); a kept block when one fits. */
void *bufpool_get(size_t want, size_t *cap);
/* Gives back a block of cap bytes from bufpool_get() or malloc (NULL: nothing). */
void bufpool_put(void *p, size_t cap);
/* p (len bytes used of cap) moved to a block of at least want bytes. */
void *bufpool_grow(void *p, size_t len, size_t cap, size_t want, size_t *new_cap);

/* The bytes kept at most (0: BUFPOOL_DEFAULT_BYTES); frees what is past it. */
void bufpool_set_limit(size_t bytes);
size_t bufpool_limit(void);
/* Blocks and bytes kept now (the tests). */
void bufpool_stats(size_t *blocks, size_t *bytes);
/* Frees every kept block. */
void bufpool_clear(void);

#endif
