/*
 * keyfilter.c - a Bloom filter of (referring domain, target key). See
 * keyfilter.h.
 */
#include "keyfilter.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KF_BITS_PER_KEY 40
#define KF_HASHES 27 /* ln 2 x bits per key */
#define KF_MIN_BITS ((size_t)1 << 16)
/* 32 MiB: past about 6M keys "maybe" comes more often, and publishing slower */
#define KF_MAX_BITS ((size_t)1 << 28)

void key_filter_size(struct key_filter *f, size_t keys)
{
	size_t want = keys > SIZE_MAX / KF_BITS_PER_KEY ? SIZE_MAX / 2 : keys * KF_BITS_PER_KEY;
	size_t n = KF_MIN_BITS;

	while (n < want && n < KF_MAX_BITS)
		n <<= 1;
	free(f->bits);
	f->n_bits = n;
	f->bits = xcalloc(n / 64, sizeof(*f->bits));
}

void key_filter_free(struct key_filter *f)
{
	free(f->bits);
	f->bits = NULL;
	f->n_bits = 0;
}

/* Two 64-bit FNV-1a style hashes of the key, for double hashing. */
static void kf_hash(const char *s, size_t len, int key, uint64_t *h1, uint64_t *h2)
{
	uint64_t a = 14695981039346656037ull ^ (uint64_t)key, b = 0x9e3779b97f4a7c15ull + (uint64_t)key;
	size_t i;

	for (i = 0; i < len; i++) {
		a = (a ^ (unsigned char)s[i]) * 1099511628211ull;
		b = (b ^ (unsigned char)s[i]) * 0xff51afd7ed558ccdull;
		b ^= b >> 29;
	}
	a ^= a >> 31;
	a *= 0xc4ceb9fe1a85ec53ull;
	a ^= a >> 33;
	*h1 = a;
	*h2 = b | 1;
}

int key_filter_add(struct key_filter *f, const char *domain, size_t len, int key)
{
	uint64_t h1, h2, bit;
	int i, seen = 1;

	if (!f->bits)
		key_filter_size(f, 0);
	kf_hash(domain, len, key, &h1, &h2);
	for (i = 0; i < KF_HASHES; i++) {
		bit = (h1 + (uint64_t)i * h2) & (f->n_bits - 1);
		if (!(f->bits[bit / 64] & ((uint64_t)1 << (bit % 64)))) {
			seen = 0;
			f->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
		}
	}
	return seen;
}
