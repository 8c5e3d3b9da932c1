/*
 * keyfilter.c - a Bloom filter of (referring domain, target key). See
 * keyfilter.h.
 */
#include "keyfilter.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KF_BITS_PER_KEY 40
#define KF_HASHES 20
#define KF_BLOCK_BITS 512 /* one cache line: a key's bits are all in one block */
#define KF_MIN_BLOCKS 128
/* 32 MiB: past about 6M keys "maybe" comes more often, and publishing slower */
#define KF_MAX_BLOCKS (((size_t)32 << 20) * 8 / KF_BLOCK_BITS)

void key_filter_size(struct key_filter *f, size_t keys)
{
	size_t n = keys > SIZE_MAX / KF_BITS_PER_KEY ? KF_MAX_BLOCKS
						       : keys * KF_BITS_PER_KEY / KF_BLOCK_BITS + 1;

	if (n < KF_MIN_BLOCKS)
		n = KF_MIN_BLOCKS;
	if (n > KF_MAX_BLOCKS)
		n = KF_MAX_BLOCKS;
	free(f->bits);
	f->n_bits = n * KF_BLOCK_BITS;
	f->bits = xcalloc(f->n_bits / 64, sizeof(*f->bits));
}

void key_filter_free(struct key_filter *f)
{
	free(f->bits);
	f->bits = NULL;
	f->n_bits = 0;
}

/* Two 64-bit FNV-1a style hashes of the key. */
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
	uint64_t h1, h2, *block;
	size_t n_blocks;
	int i, seen = 1;

	if (!f->bits)
		key_filter_size(f, 0);
	kf_hash(domain, len, key, &h1, &h2);
	n_blocks = f->n_bits / KF_BLOCK_BITS;
	/* the block: h1 scaled to the number of blocks (no power of two needed) */
	block = f->bits + (size_t)(((unsigned __int128)h1 * n_blocks) >> 64) * (KF_BLOCK_BITS / 64);
	for (i = 0; i < KF_HASHES; i++) {
		unsigned bit;

		/* the top bits of a multiplicative step: the low ones mix poorly */
		h2 = h2 * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
		bit = (unsigned)(h2 >> 55); /* 0..511 */
		if (!(block[bit / 64] & ((uint64_t)1 << (bit % 64)))) {
			seen = 0;
			block[bit / 64] |= (uint64_t)1 << (bit % 64);
		}
	}
	return seen;
}
