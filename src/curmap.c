/*
 * curmap.c - fingerprints of a set's current versions. See curmap.h.
 */
#include "curmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A key of our own for the fingerprints: "intersect-curmap". */
static const uint64_t fp_key[2] = {0x696e746572736563u, 0x742d6375726d6170u};

void cur_map_fp(const char *domain, size_t len, int key, const unsigned char digest[16],
		uint64_t *hi, uint32_t *lo)
{
	struct strbuf sb;
	uint64_t h[2];
	unsigned char k = (unsigned char)key;

	sb_init(&sb);
	sb_append(&sb, domain, len);
	sb_append(&sb, "", 1); /* a NUL: no domain holds one */
	sb_append(&sb, (const char *)&k, 1);
	sb_append(&sb, (const char *)digest, 16);
	siphash13(fp_key, sb.data, sb.len, h, 2);
	sb_free(&sb);
	*hi = h[0];
	*lo = (uint32_t)h[1];
}

void cur_map_add(struct cur_map *m, uint64_t hi, uint32_t lo)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 1024;
		m->fp = xrealloc(m->fp, m->cap * sizeof(*m->fp));
	}
	m->fp[m->n].hi = hi;
	m->fp[m->n++].lo = lo;
}

static int fp_cmp(const void *a, const void *b)
{
	const struct cur_fp *x = a, *y = b;
	uint64_t xh = x->hi, yh = y->hi;
	uint32_t xl = x->lo, yl = y->lo;

	if (xh != yh)
		return xh < yh ? -1 : 1;
	return xl < yl ? -1 : xl > yl;
}

void cur_map_seal(struct cur_map *m)
{
	size_t i, b;

	if (m->n)
		qsort(m->fp, m->n, sizeof(*m->fp), fp_cmp);
	/* about 8 fingerprints a bucket: the bucket of hi is its top bits */
	for (m->bits = 1; ((size_t)1 << m->bits) < m->n / 8 && m->bits < 30; m->bits++)
		;
	m->idx = xcalloc(((size_t)1 << m->bits) + 1, sizeof(*m->idx));
	for (i = 0, b = 0; b <= ((size_t)1 << m->bits); b++) {
		while (i < m->n && (m->fp[i].hi >> (64 - m->bits)) < b)
			i++;
		m->idx[b] = (uint32_t)i;
	}
	m->ready = 1;
}

int cur_map_has(const struct cur_map *m, uint64_t hi, uint32_t lo)
{
	size_t bucket, a, b, mid;

	if (!m->ready)
		return 0;
	bucket = (size_t)(hi >> (64 - m->bits));
	a = m->idx[bucket];
	b = m->idx[bucket + 1];
	while (a < b) {
		uint64_t h;
		uint32_t l;

		mid = a + (b - a) / 2;
		h = m->fp[mid].hi;
		l = m->fp[mid].lo;
		if (h < hi || (h == hi && l < lo))
			a = mid + 1;
		else
			b = mid;
	}
	return a < m->n && m->fp[a].hi == hi && m->fp[a].lo == lo;
}

void cur_map_free(struct cur_map *m)
{
	free(m->fp);
	free(m->idx);
	memset(m, 0, sizeof(*m));
}
