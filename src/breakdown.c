/*
 * breakdown.c - a page's breakdown totals. See breakdown.h.
 */
#include "breakdown.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As sql/014's view domain_intersection_version_entries names them. */
const char *const bd_dim_names[BD_DIMS] = {
	"tld", "link_type", "attribute", "platform", "semantic_location", "country",
};

void bd_init(struct page_breakdown *b)
{
	memset(b, 0, sizeof(*b));
}

void bd_reset(struct page_breakdown *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->e[i].key);
	b->n = 0;
	if (b->slot)
		memset(b->slot, 0, b->n_slots * sizeof(*b->slot));
	b->enabled = 0;
	b->invalid = 0;
}

void bd_free(struct page_breakdown *b)
{
	bd_reset(b);
	free(b->e);
	free(b->slot);
	bd_init(b);
}

void bd_map_begin(struct page_breakdown *b)
{
	b->stamp++;
}

static size_t bd_hash(int dim, const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)dim;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

static void bd_grow(struct page_breakdown *b)
{
	size_t i, j;

	free(b->slot);
	b->n_slots = b->n_slots ? 2 * b->n_slots : 256;
	b->slot = xcalloc(b->n_slots, sizeof(*b->slot));
	for (i = 0; i < b->n; i++) {
		j = bd_hash(b->e[i].dim, b->e[i].key, b->e[i].len) & (b->n_slots - 1);
		while (b->slot[j])
			j = (j + 1) & (b->n_slots - 1);
		b->slot[j] = i + 1;
	}
}

/* The entry of (dim, key), made when new. */
static struct bd_entry *bd_find(struct page_breakdown *b, int dim, const char *key, size_t len)
{
	struct bd_entry *e;
	size_t j;

	if (2 * (b->n + 1) > b->n_slots)
		bd_grow(b);
	j = bd_hash(dim, key, len) & (b->n_slots - 1);
	for (; b->slot[j]; j = (j + 1) & (b->n_slots - 1)) {
		e = &b->e[b->slot[j] - 1];
		if (e->dim == dim && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
	}
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->e = xrealloc(b->e, b->cap * sizeof(*b->e));
	}
	e = &b->e[b->n++];
	memset(e, 0, sizeof(*e));
	e->dim = dim;
	e->key = xmalloc(len + 1);
	memcpy(e->key, key, len);
	e->key[len] = '\0';
	e->len = len;
	b->slot[j] = b->n;
	return e;
}

void bd_add(struct page_breakdown *b, int dim, const char *key, size_t len, int has_value,
	    long long value)
{
	struct bd_entry *e;
	long long v = has_value ? value : 0;

	if (!b->enabled || b->invalid)
		return;
	e = bd_find(b, dim, key, len);
	if (e->stamp == b->stamp && b->stamp) {
		/* jsonb keeps a repeated key's last value: not worth mirroring */
		b->invalid = 1;
		return;
	}
	e->stamp = b->stamp;
	e->entries++;
	if (__builtin_add_overflow(e->links, v, &e->links))
		b->invalid = 1;
}

/* An array element that needs quoting (any text), after a comma unless first. */
static void quoted(struct strbuf *sb, const char *s, size_t len)
{
	size_t i;

	sb_putc(sb, sb->len ? ',' : '{');
	sb_putc(sb, '"');
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			sb_putc(sb, '\\');
		sb_putc(sb, s[i]);
	}
	sb_putc(sb, '"');
}

int bd_arrays(const struct page_breakdown *b, struct strbuf out[4])
{
	size_t i;
	int j;

	if (!b->enabled || b->invalid)
		return 0;
	for (i = 0; i < b->n; i++) {
		const struct bd_entry *e = &b->e[i];

		quoted(&out[0], bd_dim_names[e->dim], strlen(bd_dim_names[e->dim]));
		quoted(&out[1], e->key, e->len);
		sb_printf(&out[2], "%c%lld", out[2].len ? ',' : '{', e->links);
		sb_printf(&out[3], "%c%lld", out[3].len ? ',' : '{', e->entries);
	}
	for (j = 0; j < 4; j++) {
		if (!out[j].len)
			sb_putc(&out[j], '{');
		sb_putc(&out[j], '}');
	}
	return 1;
}
