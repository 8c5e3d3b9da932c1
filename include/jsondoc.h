/*
 * jsondoc.h - a whole JSON text parsed in one pass into a flat node array.
 *
 * jsondoc.c owns the reading of API response bodies as JSON. jd_parse()
 * checks a body against strict RFC 8259 and against what PostgreSQL will
 * refuse later (invalid UTF-8 per RFC 3629, lone surrogates, raw control
 * characters, \u0000 in a key) and refuses an object that repeats a key,
 * since keeping either value would lose the other. What it builds is a few
 * arrays freed together: nodes in document order, each container followed
 * by its subtree and knowing where that ends, so a reader walks or skips
 * any value in O(1) a step; and one buffer of decoded, NUL-terminated
 * strings. No node is allocated on its own.
 */
#ifndef INTERSECT_JSONDOC_H
#define INTERSECT_JSONDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * Levels of nesting: the top value is at level 1, a value inside it at 2, and
 * so on (an empty container adds no level). A response nests ~10 deep; 64
 * leaves room for new fields and is json-c's count, which earlier releases
 * of this program used.
 */
#define JD_MAX_DEPTH 64
/* The longest body accepted: node fields are 32-bit to keep nodes small. */
#define JD_MAX_BODY ((size_t)INT32_MAX - 1)
/* "No node": an absent member, or an index past the end. */
#define JD_NONE ((size_t)-1)

enum jd_type {
	JD_NULL,
	JD_FALSE,
	JD_TRUE,
	JD_INT,    /* an integer token within int64: v.i */
	JD_UINT,   /* an integer token above INT64_MAX, within uint64: v.u */
	JD_NUMBER, /* a token with a fraction or exponent: v.d, and its text */
	JD_STRING, /* also every object key */
	JD_ARRAY,
	JD_OBJECT,
};

/*
 * One value, or one object key. An object's members are its key node then
 * its value's nodes, in body order; an array's elements are their nodes.
 */
struct jd_node {
	uint8_t type;  /* enum jd_type */
	uint32_t off;  /* STRING, NUMBER: offset of its text in doc->strings;
			  ARRAY, OBJECT: the index just past the subtree */
	uint32_t len;  /* STRING: decoded bytes; numbers: token bytes;
			  ARRAY: elements; OBJECT: members */
	union {
		int64_t i;
		uint64_t u;
		double d;
	} v;
};

struct jd_doc {
	struct jd_node *nodes; /* owned; nodes[0] is the root */
	size_t n_nodes;
	size_t cap_nodes;
	char *strings;         /* owned: decoded strings and the text of
				  JD_NUMBER tokens, each NUL-terminated (a
				  string may also hold a NUL of its own) */
};

/*
 * Parses body[0..len) into doc. Returns 0, or -1 with msg (msgsz bytes)
 * saying what is wrong and at which byte. Either way the caller frees doc
 * with jd_free(); doc keeps nothing of body.
 */
int jd_parse(struct jd_doc *doc, const char *body, size_t len, char *msg, size_t msgsz) ETL_WUR;
void jd_free(struct jd_doc *doc);

/* The node after node i and its subtree. */
static inline size_t jd_next(const struct jd_doc *d, size_t i)
{
	return d->nodes[i].type >= JD_ARRAY ? d->nodes[i].off : i + 1;
}

static inline enum jd_type jd_type(const struct jd_doc *d, size_t i)
{
	return (enum jd_type)d->nodes[i].type;
}

/* A string node's bytes (NUL-terminated) and length. */
static inline const char *jd_str(const struct jd_doc *d, size_t i)
{
	return d->strings + d->nodes[i].off;
}

static inline size_t jd_len(const struct jd_doc *d, size_t i)
{
	return d->nodes[i].len;
}

/* A JD_NUMBER node's token as it stands in the body (NUL-terminated). */
static inline const char *jd_token(const struct jd_doc *d, size_t i)
{
	return d->strings + d->nodes[i].off;
}

/* The value of key in object obj, or JD_NONE. */
size_t jd_member(const struct jd_doc *d, size_t obj, const char *key);

/*
 * Length of the UTF-8 sequence at s (n >= 1 bytes available), or 0 when it
 * is not one RFC 3629 (and PostgreSQL) accepts: no overlong forms, no UTF-16
 * surrogates, nothing past U+10FFFF.
 */
size_t jd_utf8_len(const unsigned char *s, size_t n);
bool jd_utf8_valid(const char *s, size_t n);

/* Bytes of a value or body quoted in a message. */
#define JD_EXCERPT_MAX 60

/*
 * Copies at most JD_EXCERPT_MAX bytes of s into dst (dstsz >=
 * JD_EXCERPT_MAX + 4) for a message: control bytes become '?', a cut never
 * splits a UTF-8 sequence, and "..." marks a cut.
 */
void jd_excerpt(char *dst, size_t dstsz, const char *s, size_t n);

#endif
