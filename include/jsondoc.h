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
 *
 * Work and memory are bounded by the body, whatever it holds: at most
 * JD_MAX_NODES(len) values (9 bytes each: a node and its type byte), at most
 * JD_MAX_MEMBERS members in one object, and a repeated-key check whose hash
 * reads every byte of a key under a per-process random key (SipHash), so no
 * choice of keys makes it slower than linear in expectation.
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
/*
 * Members of one object. The API's largest objects are the breakdown maps,
 * capped at internal_list_limit (at most 1000) keys; 65536 leaves a wide
 * margin and keeps the repeated-key table of one object at 512 KiB.
 */
#define JD_MAX_MEMBERS 65536
/*
 * Values (nodes, object keys included) in a body of len bytes: one per 4
 * bytes. A page of the API holds about one per 10 bytes (the fake's pages:
 * 9.6), one whose items carry 1000-key breakdown maps about one per 5; the
 * densest JSON there is, `[0,0,...]`, one per 2. At the cap the nodes take
 * 9/4 of the body's size, so the parser's memory stays within about 3.3x the
 * body (nodes, and strings at most the body's size), where one node per 2
 * bytes at 24 bytes a node used to take 12x.
 */
#define JD_MAX_NODES(len) ((len) / 4 + 64)

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
 * One value, or one object key, in 8 bytes (its type is in doc->types). An
 * object's members are its key node then its value's nodes, in body order;
 * an array's elements are their nodes. Read them through the accessors below.
 */
struct jd_node {
	uint32_t off;  /* STRING, NUMBER: offset of its text in doc->strings;
			  ARRAY, OBJECT: the index just past the subtree;
			  INT, UINT: the value's low 32 bits */
	uint32_t len;  /* STRING: decoded bytes; NUMBER: token bytes;
			  ARRAY: elements; OBJECT: members;
			  INT, UINT: the value's high 32 bits */
};

struct jd_doc {
	struct jd_node *nodes; /* owned; nodes[0] is the root */
	uint8_t *types;        /* owned: types[i] is nodes[i]'s enum jd_type */
	size_t n_nodes;
	size_t cap_nodes;
	char *strings;         /* owned: decoded strings and the text of
				  JD_NUMBER tokens, each NUL-terminated (a
				  string may also hold a NUL of its own) */
	size_t key_probes;     /* slots the repeated-key check looked at past
				  the first: the tests bound it, to show the
				  check stays linear */
	size_t bytes[3];       /* private: what nodes, types and strings hold
				  (bufpool.h) */
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
	return d->types[i] >= JD_ARRAY ? d->nodes[i].off : i + 1;
}

static inline enum jd_type jd_type(const struct jd_doc *d, size_t i)
{
	return (enum jd_type)d->types[i];
}

/* A JD_UINT node's value, or a JD_INT node's as two's complement bits. */
static inline uint64_t jd_uint(const struct jd_doc *d, size_t i)
{
	return (uint64_t)d->nodes[i].len << 32 | d->nodes[i].off;
}

/* A JD_INT node's value. */
static inline int64_t jd_int(const struct jd_doc *d, size_t i)
{
	uint64_t u = jd_uint(d, i);

	/* negate in unsigned arithmetic: no implementation-defined conversion */
	return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

/*
 * A number node's value as a double: JD_NUMBER's through strtod() on its
 * token (rarely needed, so not kept in every node), an integer's converted.
 */
double jd_double(const struct jd_doc *d, size_t i);

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

/* v, or JD_NONE when v is JSON null: absent and null mean the same to a reader of the API. */
static inline size_t jd_nonnull(const struct jd_doc *d, size_t v)
{
	return v != JD_NONE && jd_type(d, v) == JD_NULL ? JD_NONE : v;
}

/* A member's value, or JD_NONE when the member is absent or JSON null. */
static inline size_t jd_get(const struct jd_doc *d, size_t obj, const char *key)
{
	return jd_nonnull(d, jd_member(d, obj, key));
}

/* Whether v is there and of type t. */
static inline bool jd_is(const struct jd_doc *d, size_t v, enum jd_type t)
{
	return v != JD_NONE && jd_type(d, v) == t;
}

/* "integer", "object", ...: v's JSON type for a message; "null" for JD_NONE. */
const char *jd_type_name(const struct jd_doc *d, size_t v);

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
