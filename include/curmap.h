/*
 * curmap.h - the current versions of a set, as the loader compares rows
 * with them (issue 18: an unchanged row is not sent at all).
 *
 * Before a direct load (sql/016_direct_load.sql) fetches a set that has
 * current versions, it reads each one's key and digest in one pass and
 * keeps a 96-bit fingerprint of (referring domain, target key, digest):
 * 12 bytes a row, sorted, with an index of buckets (half a byte a row). A row whose fingerprint is there equals its key's
 * current version and is not sent; the others are (a key new, or changed).
 * Two different rows share a fingerprint with probability about n / 2^96
 * for n current rows (1e-23 at a million): far below the digest's own.
 * Built on the run's connection, read on the fetching thread; a set of more
 * than CUR_MAP_MAX_ROWS current rows is compared by the database instead
 * (stage_page()).
 */
#ifndef INTERSECT_CURMAP_H
#define INTERSECT_CURMAP_H

#include <stddef.h>
#include <stdint.h>

#define CUR_MAP_MAX_ROWS ((size_t)4000000) /* 46 MiB */

/* One fingerprint: 12 bytes, no padding (alignment 1). */
struct cur_fp {
	uint64_t hi;
	uint32_t lo;
} __attribute__((packed));

struct cur_map {
	struct cur_fp *fp;  /* owned; sorted once sealed */
	size_t n, cap;
	uint32_t *idx;      /* owned: where bucket b (hi's top `bits` bits) starts */
	int bits;
	int ready;          /* sealed: rows can be judged by it */
};

/* The fingerprint of a row: its referring domain (as text, unescaped), key and digest. */
void cur_map_fp(const char *domain, size_t len, int key, const unsigned char digest[16],
		uint64_t *hi, uint32_t *lo);
void cur_map_add(struct cur_map *m, uint64_t hi, uint32_t lo);
/*
 * A fingerprint as the database keeps it (etl_page_keys.fps,
 * etl_kept_digests, sql/024): 12 bytes, hi then lo, little-endian.
 */
#define CUR_FP_BYTES 12
void cur_fp_store(const struct cur_fp *fp, unsigned char out[CUR_FP_BYTES]);
/* Adds the n fingerprints stored at p (n * CUR_FP_BYTES bytes). */
void cur_map_add_stored(struct cur_map *m, const unsigned char *p, size_t n);
/* Sorts what was added: from now on cur_map_has() answers. */
void cur_map_seal(struct cur_map *m);
int cur_map_has(const struct cur_map *m, uint64_t hi, uint32_t lo);
void cur_map_free(struct cur_map *m);

/*
 * A night's answer as the loader saw it: each item's referring domain, as a
 * fingerprint of the domain alone (key 0, which no row has, and no digest),
 * added to a map of their own. Sealed, it says whether any domain came
 * twice: 1 when no two fingerprints are equal. Two domains share one with
 * probability about n^2 / 2^97: then it says 0, and the database counts the
 * domains itself (sql/022), as it does without the loader's word.
 */
void cur_map_domain_fp(const char *domain, size_t len, uint64_t *hi, uint32_t *lo);
int cur_map_distinct(const struct cur_map *m);

#endif
