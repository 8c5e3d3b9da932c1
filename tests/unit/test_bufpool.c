/*
 * test_bufpool.c - the pool of large page buffers: a block given back is the
 * one the next request of its size class gets; small blocks and blocks past
 * the limit go to malloc; the oldest leave first; a strbuf and a parsed
 * document take and give back through it; threads at once leave it
 * consistent.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "check.h"
#include "jsondoc.h"
#include "util.h"

#define K ((size_t)1024)

static void *churn(void *arg)
{
	size_t cap, i, want = (size_t)(uintptr_t)arg;
	char *p;

	for (i = 0; i < 2000; i++) {
		p = bufpool_get(want + i % 1000, &cap);
		memset(p, (int)i, want); /* the block is the caller's alone */
		bufpool_put(p, cap);
	}
	return NULL;
}

static void reuse(void)
{
	size_t cap, cap2, blocks, bytes;
	void *p, *q;

	bufpool_clear();
	CHECK_INT(bufpool_limit(), BUFPOOL_DEFAULT_BYTES);
	/* sizes round up to a quarter step: 1.96 MB and 2 MB are one class */
	p = bufpool_get(1960 * K, &cap);
	CHECK_INT(cap, 2048 * K);
	bufpool_put(p, cap);
	bufpool_stats(&blocks, &bytes);
	CHECK_INT(blocks, 1);
	CHECK_INT(bytes, 2048 * K);
	q = bufpool_get(1970 * K, &cap2);
	CHECK(q == p);
	CHECK_INT(cap2, 2048 * K);
	bufpool_stats(&blocks, &bytes);
	CHECK_INT(blocks, 0);
	/* a block more than twice the request is not handed out */
	bufpool_put(q, cap2);
	p = bufpool_get(600 * K, &cap);
	CHECK(p != q);
	CHECK_INT(cap, 640 * K);
	free(p); /* plain malloc memory: free() is correct too */
	/* below BUFPOOL_MIN: malloc, never kept */
	p = bufpool_get(1000, &cap);
	CHECK_INT(cap, 1000);
	bufpool_put(p, cap);
	bufpool_stats(&blocks, &bytes);
	CHECK_INT(blocks, 1);
	bufpool_clear();
	bufpool_stats(&blocks, &bytes);
	CHECK_INT(blocks, 0);
	CHECK_INT(bytes, 0);
}

static void limits(void)
{
	void *p[BUFPOOL_BLOCKS + 2];
	size_t cap[BUFPOOL_BLOCKS + 2], blocks, bytes, i;

	/* the oldest go when the bytes pass the limit */
	bufpool_set_limit(1024 * K);
	for (i = 0; i < 3; i++)
		p[i] = bufpool_get(512 * K, &cap[i]);
	for (i = 0; i < 3; i++)
		bufpool_put(p[i], cap[i]);
	bufpool_stats(&blocks, &bytes);
	CHECK_INT(blocks, 2);
	CHECK_INT(bytes, 1024 * K);
	for (i = 0; i < 2; i++) { /* p[0], the oldest, went */
		void *x = bufpool_get(512 * K, &cap[0]);

		CHECK(x == p[1] || x == p[2]);
		bufpool_put(x, cap[0]);
	}
	/* a block larger than the whole limit is freed at once */
	p[0] = bufpool_get(2048 * K, &cap[0]);
	bufpool_put(p[0], cap[0]);
	bufpool_stats(&blocks, &bytes);
	CHECK(bytes <= 1024 * K);
	/* lowering the limit frees what is past it */
	bufpool_set_limit(256 * K);
	bufpool_stats(&blocks, &bytes);
	CHECK(bytes <= 256 * K);
	/* at most BUFPOOL_BLOCKS blocks, whatever their bytes */
	bufpool_set_limit((size_t)1 << 30);
	bufpool_clear();
	for (i = 0; i < BUFPOOL_BLOCKS + 2; i++)
		p[i] = bufpool_get(BUFPOOL_MIN, &cap[i]);
	for (i = 0; i < BUFPOOL_BLOCKS + 2; i++)
		bufpool_put(p[i], cap[i]);
	bufpool_stats(&blocks, &bytes);
	CHECK_INT(blocks, BUFPOOL_BLOCKS);
	/* the two oldest went */
	for (i = 0; i < BUFPOOL_BLOCKS; i++) {
		void *x = bufpool_get(BUFPOOL_MIN, &cap[0]);

		CHECK(x != p[0] && x != p[1]);
		free(x);
	}
	bufpool_set_limit(0);
	CHECK_INT(bufpool_limit(), BUFPOOL_DEFAULT_BYTES);
}

static void users(void)
{
	struct strbuf sb;
	struct jd_doc doc;
	char *body, msg[200], *first;
	size_t blocks, bytes, i, n = 300 * K;

	bufpool_clear();
	/* a strbuf grows through the pool and gives its block back */
	sb_init(&sb);
	for (i = 0; i < n; i++)
		sb_putc(&sb, (char)('a' + i % 26));
	CHECK_INT(sb.len, n);
	CHECK(sb.data[n - 1] == (char)('a' + (n - 1) % 26) && sb.data[n] == '\0');
	CHECK(sb.data[0] == 'a' && sb.data[BUFPOOL_MIN] == (char)('a' + BUFPOOL_MIN % 26));
	first = sb.data;
	sb_free(&sb);
	bufpool_stats(&blocks, &bytes);
	CHECK(blocks >= 1);
	sb_reserve(&sb, n);
	CHECK(sb.data == first); /* the same block again: no fresh pages */
	sb_free(&sb);
	/* a parsed document's arrays go back too */
	bufpool_clear();
	body = xmalloc(n + 16);
	body[0] = '[';
	for (i = 1; i + 5 < n; i += 5)
		memcpy(body + i, "1000,", 5);
	memcpy(body + i, "1]", 2);
	CHECK_INT(jd_parse(&doc, body, i + 2, msg, sizeof(msg)), 0);
	CHECK_INT(jd_type(&doc, 0), JD_ARRAY);
	CHECK_INT(doc.n_nodes, (i - 1) / 5 + 2);
	jd_free(&doc);
	bufpool_stats(&blocks, &bytes);
	CHECK(blocks >= 2); /* nodes and strings (types too, if large enough) */
	CHECK_INT(jd_parse(&doc, body, i + 2, msg, sizeof(msg)), 0);
	CHECK_INT(doc.n_nodes, (i - 1) / 5 + 2);
	jd_free(&doc);
	free(body);
	bufpool_clear();
}

int main(void)
{
	pthread_t t[4];
	size_t i, blocks, bytes;

	reuse();
	limits();
	users();
	for (i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)((i + 1) * 200 * K)), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	bufpool_stats(&blocks, &bytes);
	CHECK(blocks <= BUFPOOL_BLOCKS && bytes <= bufpool_limit());
	bufpool_clear();
	return check_summary();
}
