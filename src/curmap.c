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
	/* a domain, a NUL (no domain holds one), the key's byte, the digest;
	 * on the stack for any domain a page can hold (transform.h) */
	char stack[1100], *buf = stack;
	uint64_t h[2];

	if (len + 18 > sizeof(stack))
		buf = xmalloc(len + 18);
	memcpy(buf, domain, len);
	buf[len] = '\0';
	buf[len + 1] = (char)(unsigned char)key;
	memcpy(buf + len + 2, digest, 16);
	siphash13(fp_key, buf, len + 18, h, 2);
	if (buf != stack)
		free(buf);
	*hi = h[0];
	*lo = (uint32_t)h[1];
}

void cur_map_domain_fp(const char *domain, size_t len, uint64_t *hi, uint32_t *lo)
{
	static const unsigned char none[16];

	cur_map_fp(domain, len, 0, none, hi, lo);
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

void cur_fp_store(const struct cur_fp *fp, unsigned char out[CUR_FP_BYTES])
{
	uint64_t hi = fp->hi;
	uint32_t lo = fp->lo;
	int i;

	for (i = 0; i < 8; i++)
		out[i] = (unsigned char)(hi >> (8 * i));
	for (i = 0; i < 4; i++)
		out[8 + i] = (unsigned char)(lo >> (8 * i));
}

void cur_map_add_stored(struct cur_map *m, const unsigned char *p, size_t n)
{
	uint64_t hi;
	uint32_t lo;
	size_t k;
	int i;

	if (m->n + n > m->cap) {
		m->cap = m->n + n;
		m->fp = xrealloc(m->fp, m->cap * sizeof(*m->fp));
	}
	for (k = 0; k < n; k++, p += CUR_FP_BYTES) {
		hi = 0;
		lo = 0;
		for (i = 7; i >= 0; i--)
			hi = hi << 8 | p[i];
		for (i = 3; i >= 0; i--)
			lo = lo << 8 | p[8 + i];
		cur_map_add(m, hi, lo);
	}
}

static int fp_less(const struct cur_fp *x, const struct cur_fp *y)
{
	return x->hi < y->hi || (x->hi == y->hi && x->lo < y->lo);
}

/*
 * Sorted by a counting sort on the top `bits` bits of hi (fingerprints are
 * uniform: about 8 a bucket), then each bucket by insertion: linear, where
 * qsort() of a million took a tenth of a second.
 */
void cur_map_seal(struct cur_map *m)
{
	size_t nb, i, j, b, *next;
	struct cur_fp *out, t;

	/* about 8 fingerprints a bucket: the bucket of hi is its top bits */
	for (m->bits = 1; ((size_t)1 << m->bits) < m->n / 8 && m->bits < 30; m->bits++)
		;
	nb = (size_t)1 << m->bits;
	m->idx = xcalloc(nb + 1, sizeof(*m->idx));
	for (i = 0; i < m->n; i++)
		m->idx[(m->fp[i].hi >> (64 - m->bits)) + 1]++;
	for (b = 0; b < nb; b++)
		m->idx[b + 1] += m->idx[b];
	if (m->n) {
		next = xmalloc(nb * sizeof(*next));
		for (b = 0; b < nb; b++)
			next[b] = m->idx[b];
		out = xmalloc(m->n * sizeof(*out));
		for (i = 0; i < m->n; i++)
			out[next[m->fp[i].hi >> (64 - m->bits)]++] = m->fp[i];
		for (b = 0; b < nb; b++)
			for (i = m->idx[b] + 1; i < m->idx[b + 1]; i++) {
				t = out[i];
				for (j = i; j > m->idx[b] && fp_less(&t, &out[j - 1]); j--)
					out[j] = out[j - 1];
				out[j] = t;
			}
		free(next);
		free(m->fp);
		m->fp = out;
		m->cap = m->n;
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

int cur_map_distinct(const struct cur_map *m)
{
	size_t i;

	if (!m->ready)
		return 0;
	for (i = 1; i < m->n; i++)
		if (m->fp[i].hi == m->fp[i - 1].hi && m->fp[i].lo == m->fp[i - 1].lo)
			return 0;
	return 1;
}

void cur_map_free(struct cur_map *m)
{
	free(m->fp);
	free(m->idx);
	memset(m, 0, sizeof(*m));
}
