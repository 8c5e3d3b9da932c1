/*
 * test_curmap.c - the loader's memory of a set's current versions: their
 * fingerprints (curmap.h) answer exactly for what was added and for nothing
 * else among many random others, empty or not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "curmap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_curmap(size_t n)
{
	struct cur_map m;
	unsigned char digest[16];
	uint64_t hi, *his = calloc(n + 1, sizeof(*his));
	uint32_t lo, *los = calloc(n + 1, sizeof(*los));
	size_t i, wrong = 0;

	memset(&m, 0, sizeof(m));
	for (i = 0; i < n; i++) {
		char domain[32];

		snprintf(domain, sizeof(domain), "d%zu.example", i);
		memset(digest, (int)(i & 0xff), sizeof(digest));
		cur_map_fp(domain, strlen(domain), 1 + (int)(i % 3), digest, &his[i], &los[i]);
		cur_map_add(&m, his[i], los[i]);
	}
	if (n)
		CHECK(!cur_map_has(&m, his[0], los[0])); /* not sealed: nothing */
	cur_map_seal(&m);
	for (i = 0; i < n; i++)
		wrong += !cur_map_has(&m, his[i], los[i]);
	CHECK_INT(wrong, 0);
	/* the same hi with another lo, and random others: not there */
	for (i = 0; i < n; i++)
		wrong += cur_map_has(&m, his[i], los[i] ^ 1);
	for (i = 0; i < 100000; i++) {
		hi = next();
		lo = (uint32_t)next();
		wrong += cur_map_has(&m, hi, lo);
	}
	CHECK_INT(wrong, 0);
	/* the fingerprint covers the digest and the key */
	if (n) {
		memset(digest, 0, sizeof(digest));
		cur_map_fp("d0.example", 10, 1, digest, &hi, &lo);
		CHECK(hi == his[0] && lo == los[0]);
		digest[15] = 1;
		cur_map_fp("d0.example", 10, 1, digest, &hi, &lo);
		CHECK(!cur_map_has(&m, hi, lo));
		digest[15] = 0;
		cur_map_fp("d0.example", 10, 2, digest, &hi, &lo);
		CHECK(!cur_map_has(&m, hi, lo));
	}
	cur_map_free(&m);
	free(his);
	free(los);
}

/*
 * A night's domains (cur_map_distinct()): distinct until one comes twice,
 * wherever the two land after sealing; a domain differs from its rows.
 */
static void test_distinct(size_t n)
{
	struct cur_map m;
	uint64_t hi, hi2;
	uint32_t lo, lo2;
	unsigned char digest[16] = {0};
	char domain[32];
	size_t i, twice = n ? (size_t)(next() % n) : 0;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		memset(&m, 0, sizeof(m));
		CHECK(!cur_map_distinct(&m)); /* not sealed: no word */
		for (i = 0; i < n; i++) {
			snprintf(domain, sizeof(domain), "d%zu.example", i);
			cur_map_domain_fp(domain, strlen(domain), &hi, &lo);
			cur_map_add(&m, hi, lo);
		}
		if (pass) { /* one of them again, last */
			snprintf(domain, sizeof(domain), "d%zu.example", twice);
			cur_map_domain_fp(domain, strlen(domain), &hi, &lo);
			cur_map_add(&m, hi, lo);
		}
		cur_map_seal(&m);
		CHECK_INT(cur_map_distinct(&m), pass && n ? 0 : 1);
		cur_map_free(&m);
	}
	cur_map_domain_fp("d0.example", 10, &hi, &lo);
	cur_map_fp("d0.example", 10, 1, digest, &hi2, &lo2);
	CHECK(hi != hi2 || lo != lo2);
}

/*
 * The form the database keeps (sql/024): little-endian, hi then lo, and a
 * map of stored fingerprints answers as the map they were taken from.
 */
static void test_stored(size_t n)
{
	static const unsigned char want[CUR_FP_BYTES] = {8, 7, 6, 5, 4, 3, 2, 1, 12, 11, 10, 9};
	struct cur_fp fp = {0x0102030405060708ull, 0x090a0b0cu};
	struct cur_map a = {0}, b = {0};
	unsigned char *buf = malloc(n * CUR_FP_BYTES + 1), one[CUR_FP_BYTES];
	size_t i;

	cur_fp_store(&fp, one);
	CHECK(memcmp(one, want, sizeof(want)) == 0);
	for (i = 0; i < n; i++) {
		fp.hi = next();
		fp.lo = (uint32_t)next();
		cur_map_add(&a, fp.hi, fp.lo);
		cur_fp_store(&fp, buf + i * CUR_FP_BYTES);
	}
	cur_map_add_stored(&b, buf, n);
	cur_map_seal(&a);
	cur_map_seal(&b);
	CHECK_INT((long long)b.n, (long long)n);
	CHECK(n == 0 || memcmp(a.fp, b.fp, n * sizeof(*a.fp)) == 0);
	for (i = 0; i < n; i += 97)
		CHECK(cur_map_has(&b, a.fp[i].hi, a.fp[i].lo));
	cur_map_free(&a);
	cur_map_free(&b);
	free(buf);
}

int main(void)
{
	test_stored(0);
	test_stored(1);
	test_stored(5000);
	test_distinct(0);
	test_distinct(1);
	test_distinct(1000);
	test_distinct(100000);
	test_curmap(0);
	test_curmap(1);
	test_curmap(7);
	test_curmap(100000);
	return check_summary();
}
