/*
 * keyfilter.h - has a set's run seen this (referring domain, target key)?
 *
 * A direct load's publish (sql/016_direct_load.sql) can skip building the
 * answer key by key only when no key came twice (offset paging repeats a
 * referring domain when the ranking moves between pages). A Bloom filter
 * per set answers "maybe seen" for every repeat and rarely for a new key:
 * a page with a maybe is flagged, and a flagged page sends the publish the
 * slow, exact way. Sized from total_count at 40 bits a key, all of a key's
 * 20 bits in one 64-byte block (one cache miss a key; a false "maybe" about
 * once in 10^7 keys), so memory grows by 5 bytes a row: 5 MB at 1M rows.
 */
#ifndef INTERSECT_KEYFILTER_H
#define INTERSECT_KEYFILTER_H

#include <stddef.h>
#include <stdint.h>

struct key_filter {
	uint64_t *bits;     /* owned; NULL: not sized yet */
	size_t n_bits;      /* a multiple of 512 */
};

/* Sized for `keys` keys (at least a minimum); what it held is forgotten. */
void key_filter_size(struct key_filter *f, size_t keys);
void key_filter_free(struct key_filter *f);
/* Adds the key; answers whether it may have been added before. */
int key_filter_add(struct key_filter *f, const char *domain, size_t len, int key);

#endif
