/*
 * jsondoc.c - one pass from a JSON text to a flat array of nodes.
 *
 * The parser is iterative: an explicit stack of open containers, bounded by
 * JD_MAX_DEPTH, so no input can make it recurse. Every check the data needs
 * is made in the same pass as the parsing, on the byte at hand: the grammar
 * of RFC 8259 to the letter (no NaN, no "1.", no leading zeros, no trailing
 * commas, no comments, nothing after the value), UTF-8 per RFC 3629, no raw
 * control byte in a string, \u escapes that pair their surrogates, integer
 * tokens that fit in 64 bits, and no \u0000 in a key (C code compares keys
 * as C strings). What the parser accepts, PostgreSQL's jsonb accepts too,
 * but for \u0000 in a string value: that is the caller's to judge.
 *
 * Memory: the node array grows by doubling up to JD_MAX_NODES(len), past
 * which the body is refused (see jsondoc.h for why that cap); the string
 * buffer is sized once, as a decoded string plus its NUL never takes more
 * bytes than its quoted form in the body (numbers with a fraction or
 * exponent keep their text there too, see parse_number()); the document
 * borrows nothing from the body.
 *
 * A repeated key is found when its object closes, with an open-addressing
 * table over the object's keys (pairwise for the smallest objects). The
 * table's hash is SipHash-1-3 over the whole key under a key drawn once per
 * process from getrandom(): a hash of a few bytes of each key, as this file
 * once had, let keys that differ only in the middle all collide, and 40k of
 * them took 7 s; a hash whose key the sender cannot know leaves it no such
 * choice, so the check costs O(members) per object in expectation.
 */
#include "jsondoc.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bufpool.h"

/* A key of an open object: its node, and where it stands in the body. */
struct key_ref {
	uint32_t node;
	uint32_t at;
};

/* An open container. */
struct frame {
	size_t node;  /* its node */
	size_t keys;  /* OBJECT: where its keys start in parser.keys */
	bool object;
};

struct parser {
	struct jd_doc *doc;
	const unsigned char *b;
	size_t len;
	size_t p;               /* the next byte to read */
	size_t out;             /* bytes used in doc->strings */
	struct key_ref *keys;   /* keys of the open objects, innermost last */
	size_t n_keys, cap_keys;
	uint32_t *slots;        /* the repeated-key table (check_keys()) */
	size_t cap_slots;
	size_t last_key;        /* node of the last key read, for messages */
	size_t max_nodes;       /* JD_MAX_NODES(len) */
	char *msg;
	size_t msgsz;
};

/* Bytes a string's fast run copies as they are: printable ASCII but '"' and '\'. */
static inline bool plain(unsigned char c)
{
	return (unsigned)(c - 0x20) < 0x60u && c != '"' && c != '\\';
}

/* Whether any of 8 bytes is not plain() (word-at-a-time zero-byte tests). */
static inline bool any_special(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	uint64_t quote = v ^ (ones * '"'), bslash = v ^ (ones * '\\');
	uint64_t below = (v - ones * 0x20) & ~v;             /* a byte < 0x20 */

	quote = (quote - ones) & ~quote;                     /* a byte == '"' */
	bslash = (bslash - ones) & ~bslash;                  /* a byte == '\\' */
	return ((below | quote | bslash | v) & highs) != 0;  /* or one >= 0x80 */
}

static int fail(struct parser *ps, const char *fmt, ...) ETL_PRINTF(2, 3);

static int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->msg, ps->msgsz, fmt, ap);
	va_end(ap);
	return -1;
}

static int truncated(struct parser *ps)
{
	return fail(ps, "truncated: the JSON ends early, after %zu bytes", ps->len);
}

/* The byte at ps->p cannot stand where it does. */
static int unexpected(struct parser *ps)
{
	char ex[JD_EXCERPT_MAX + 8];
	size_t i = 0;

	while (i < ps->len && (ps->b[i] == ' ' || ps->b[i] == '\t' || ps->b[i] == '\r' ||
			       ps->b[i] == '\n'))
		i++;
	if (ps->b[ps->p] == '\0')
		return fail(ps, "NUL byte at byte %zu", ps->p);
	jd_excerpt(ex, sizeof(ex), (const char *)ps->b + i, ps->len - i);
	return fail(ps, "not JSON: unexpected character at byte %zu; the body starts \"%s\"%s",
		    ps->p, ex,
		    ps->b[i] == '<' ? "\nhint: an HTML page comes from a proxy or the gateway, "
				      "not from the API"
				    : "");
}

static inline void skip_ws(struct parser *ps)
{
	while (ps->p < ps->len && (ps->b[ps->p] == ' ' || ps->b[ps->p] == '\n' ||
				   ps->b[ps->p] == '\t' || ps->b[ps->p] == '\r'))
		ps->p++;
}

static inline bool is_digit(unsigned char c)
{
	return (unsigned)(c - '0') < 10u;
}

/* Room for cap nodes (the arrays from the pool: bufpool.h). */
static void doc_nodes(struct jd_doc *d, size_t cap)
{
	d->nodes = bufpool_grow(d->nodes, d->n_nodes * sizeof(*d->nodes), d->bytes[0],
				cap * sizeof(*d->nodes), &d->bytes[0]);
	d->types = bufpool_grow(d->types, d->n_nodes, d->bytes[1], cap, &d->bytes[1]);
	d->cap_nodes = cap;
}

/*
 * A new node of type t; its index, or JD_NONE (with the message set) when
 * the body holds more values than JD_MAX_NODES allows for its size.
 */
static size_t new_node(struct parser *ps, enum jd_type t)
{
	struct jd_doc *d = ps->doc;

	if (d->n_nodes == d->cap_nodes) {
		if (d->cap_nodes == ps->max_nodes) {
			fail(ps, "the body holds more than %zu JSON values at byte %zu: at most "
				 "one per 4 bytes of body is accepted",
			     ps->max_nodes, ps->p);
			return JD_NONE;
		}
		doc_nodes(d, d->cap_nodes > ps->max_nodes / 2 ? ps->max_nodes : 2 * d->cap_nodes);
	}
	d->types[d->n_nodes] = (uint8_t)t;
	d->nodes[d->n_nodes].off = 0;
	d->nodes[d->n_nodes].len = 0;
	return d->n_nodes++;
}

/* Stores an integer's 64 bits in node's off and len (see jd_uint()). */
static void set_int(struct jd_doc *d, size_t node, enum jd_type t, uint64_t v)
{
	d->types[node] = (uint8_t)t;
	d->nodes[node].off = (uint32_t)v;
	d->nodes[node].len = (uint32_t)(v >> 32);
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */
/* ------------------------------------------------------------------------ */

static int hex4(struct parser *ps, size_t at, unsigned *cp)
{
	size_t i;
	unsigned c, v = 0;

	for (i = 0; i < 4; i++) {
		if (at + i >= ps->len)
			return truncated(ps);
		c = ps->b[at + i];
		if (is_digit((unsigned char)c))
			c -= '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			c = (c | 0x20) - 'a' + 10;
		else
			return fail(ps, "invalid \\u escape at byte %zu", at - 2);
		v = v << 4 | c;
	}
	*cp = v;
	return 0;
}

static char *put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xC0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3F));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/*
 * The escape at ps->p (a backslash), decoded to *o; sets *nul for \u0000.
 * PostgreSQL refuses a lone surrogate in jsonb, so it is refused here rather
 * than replaced.
 */
static int parse_escape(struct parser *ps, char **o, bool *nul)
{
	static const char simple[256] = {
		['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
		['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
	};
	size_t at = ps->p;
	unsigned cp = 0, lo = 0;

	if (at + 1 >= ps->len)
		return truncated(ps);
	if (ps->b[at + 1] != 'u') {
		if (!simple[ps->b[at + 1]])
			return fail(ps, "invalid escape at byte %zu", at);
		*(*o)++ = simple[ps->b[at + 1]];
		ps->p += 2;
		return 0;
	}
	if (hex4(ps, at + 2, &cp))
		return -1;
	ps->p += 6;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return fail(ps, "lone UTF-16 surrogate \\u%04X at byte %zu", cp, at);
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		/* what follows is judged as far as it goes: a last byte that
		 * is not a backslash (the closing quote) already ends it */
		if ((ps->p < ps->len && ps->b[ps->p] != '\\') ||
		    (ps->p + 1 < ps->len && ps->b[ps->p + 1] != 'u'))
			return fail(ps, "lone UTF-16 surrogate \\u%04X at byte %zu", cp, at);
		if (ps->p + 1 >= ps->len)
			return truncated(ps);
		if (hex4(ps, ps->p + 2, &lo))
			return -1;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return fail(ps, "lone UTF-16 surrogate \\u%04X at byte %zu", cp, at);
		ps->p += 6;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	*nul |= cp == 0;
	*o = put_utf8(*o, cp);
	return 0;
}

/*
 * A byte of a string that is neither plain ASCII nor an escape: a UTF-8
 * sequence, copied to *o, or an error.
 */
static int string_byte(struct parser *ps, char **o)
{
	const unsigned char *s = ps->b + ps->p;
	size_t avail = ps->len - ps->p, k, need, i;

	if (s[0] >= 0x80) {
		if ((k = jd_utf8_len(s, avail)) != 0) {
			memcpy(*o, s, k);
			*o += k;
			ps->p += k;
			return 0;
		}
		/* a sequence the body's end cuts short is a truncation */
		need = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
		for (i = 1; i < avail && (s[i] & 0xC0) == 0x80; i++)
			;
		if (s[0] >= 0xC2 && s[0] <= 0xF4 && avail < need && i == avail)
			return truncated(ps);
		return fail(ps, "invalid UTF-8 at byte %zu", ps->p);
	}
	if (s[0] == '\0')
		return fail(ps, "NUL byte at byte %zu", ps->p);
	return fail(ps, "control character 0x%02X at byte %zu: a JSON string must escape it",
		    s[0], ps->p);
}

/*
 * The string whose opening quote is at ps->p, decoded into node: leaves
 * ps->p past its closing quote. A key may not hold \u0000.
 */
static int parse_string(struct parser *ps, size_t node, bool key)
{
	const unsigned char *b = ps->b;
	size_t start = ps->p, run, len = ps->len;
	char *base = ps->doc->strings + ps->out, *o = base;
	char ex[JD_EXCERPT_MAX + 8];
	bool nul = false;

	ps->p++;
	for (;;) {
		run = ps->p;
		for (;;) { /* 8 plain bytes at a time, then byte by byte */
			uint64_t w;

			if (ps->p + 8 > len)
				break;
			memcpy(&w, b + ps->p, 8);
			if (any_special(w))
				break;
			ps->p += 8;
		}
		while (ps->p < len && plain(b[ps->p]))
			ps->p++;
		memcpy(o, b + run, ps->p - run);
		o += ps->p - run;
		if (ps->p >= len)
			return truncated(ps);
		if (b[ps->p] == '"')
			break;
		if (b[ps->p] == '\\') {
			if (parse_escape(ps, &o, &nul))
				return -1;
		} else if (string_byte(ps, &o)) {
			return -1;
		}
	}
	ps->p++;
	*o = '\0';
	ps->doc->nodes[node].off = (uint32_t)ps->out;
	ps->doc->nodes[node].len = (uint32_t)(o - base);
	ps->out += (size_t)(o - base) + 1;
	if (key && nul) {
		/* quoted as written: decoded, the NUL would not show */
		jd_excerpt(ex, sizeof(ex), (const char *)b + start + 1, ps->p - start - 2);
		return fail(ps, "object key \"%s\" at byte %zu holds \\u0000", ex, start);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Numbers and literals                                                      */
/* ------------------------------------------------------------------------ */

static int bad_number(struct parser *ps, size_t start)
{
	char ex[JD_EXCERPT_MAX + 8];

	jd_excerpt(ex, sizeof(ex), (const char *)ps->b + start, ps->len - start);
	return fail(ps, "\"%s\" at byte %zu is not a JSON number", ex, start);
}

/* Digits from ps->p on; false if there is none. */
static bool digits(struct parser *ps)
{
	size_t from = ps->p;

	while (ps->p < ps->len && is_digit(ps->b[ps->p]))
		ps->p++;
	return ps->p > from;
}

/*
 * The number at ps->p. An integer token keeps its exact value, which must
 * fit in int64 or, above, in uint64; a token with a fraction or exponent
 * keeps strtod()'s double and its text.
 */
static int parse_number(struct parser *ps, size_t node)
{
	const unsigned char *b = ps->b;
	size_t start = ps->p, len = ps->len, n;
	struct jd_node *nd = &ps->doc->nodes[node];
	uint64_t x = 0;
	bool neg = false, over = false;
	char *copy, ex[JD_EXCERPT_MAX + 8];
	unsigned d;

	if (b[ps->p] == '-') {
		neg = true;
		ps->p++;
	}
	if (ps->p >= len)
		return truncated(ps);
	if (b[ps->p] == '0') {
		if (++ps->p < len && is_digit(b[ps->p]))
			return bad_number(ps, start); /* a leading zero */
	} else if (is_digit(b[ps->p])) {
		for (; ps->p < len && is_digit(b[ps->p]); ps->p++) {
			d = b[ps->p] - '0';
			if (x > (UINT64_MAX - d) / 10)
				over = true;
			else
				x = x * 10 + d;
		}
	} else {
		return bad_number(ps, start);
	}
	if (ps->p < len && (b[ps->p] == '.' || (b[ps->p] | 0x20) == 'e')) {
		if (b[ps->p] == '.') {
			ps->p++;
			if (!digits(ps))
				return ps->p >= len ? truncated(ps) : bad_number(ps, start);
		}
		if (ps->p < len && (b[ps->p] | 0x20) == 'e') {
			if (++ps->p < len && (b[ps->p] == '+' || b[ps->p] == '-'))
				ps->p++;
			if (!digits(ps))
				return ps->p >= len ? truncated(ps) : bad_number(ps, start);
		}
		/* the text goes with the strings, terminated for strtod(): a
		   number inside a container is followed by a byte that is
		   neither string nor number, which pays for its NUL, and the
		   buffer's extra byte pays for a number that is the whole body */
		n = ps->p - start;
		copy = ps->doc->strings + ps->out;
		memcpy(copy, b + start, n);
		copy[n] = '\0';
		ps->doc->types[node] = JD_NUMBER;
		nd->off = (uint32_t)ps->out;
		nd->len = (uint32_t)n;
		ps->out += n + 1;
		return 0;
	}
	n = ps->p - start;
	if (neg && !over && x <= (uint64_t)INT64_MAX + 1) {
		/* two's complement of x, in unsigned arithmetic */
		set_int(ps->doc, node, JD_INT, 0 - x);
	} else if (!neg && !over) {
		set_int(ps->doc, node, x > (uint64_t)INT64_MAX ? JD_UINT : JD_INT, x);
		return 0;
	} else {
		ex[0] = '\0';
		if (ps->last_key != JD_NONE)
			jd_excerpt(ex, sizeof(ex), jd_str(ps->doc, ps->last_key),
				   jd_len(ps->doc, ps->last_key));
		return fail(ps, "integer %.*s at byte %zu%s%s%s does not fit in 64 bits",
			    (int)(n > 40 ? 40 : n), (const char *)b + start, start,
			    *ex ? " (in \"" : "", ex, *ex ? "\")" : "");
	}
	return 0;
}

/* true, false or null at ps->p; NaN, Infinity and other words are not JSON. */
static int parse_literal(struct parser *ps, size_t node)
{
	static const struct {
		const char *word;
		enum jd_type type;
	} lits[] = {{"true", JD_TRUE}, {"false", JD_FALSE}, {"null", JD_NULL}};
	size_t start = ps->p, n, i;
	char ex[JD_EXCERPT_MAX + 8];

	while (ps->p < ps->len && (ps->b[ps->p] | 0x20) >= 'a' && (ps->b[ps->p] | 0x20) <= 'z')
		ps->p++;
	n = ps->p - start;
	for (i = 0; i < ETL_ARRAY_LEN(lits); i++) {
		if (strlen(lits[i].word) == n && memcmp(ps->b + start, lits[i].word, n) == 0) {
			ps->doc->types[node] = (uint8_t)lits[i].type;
			return 0;
		}
		/* "tru" at the very end is a cut, not a typo */
		if (ps->p == ps->len && n < strlen(lits[i].word) &&
		    memcmp(ps->b + start, lits[i].word, n) == 0)
			return truncated(ps);
	}
	jd_excerpt(ex, sizeof(ex), (const char *)ps->b + start, n);
	return fail(ps, "\"%s\" at byte %zu is not JSON", ex, start);
}

/* ------------------------------------------------------------------------ */
/* Objects                                                                   */
/* ------------------------------------------------------------------------ */

static bool same_key(const struct jd_doc *d, uint32_t a, uint32_t b)
{
	return d->nodes[a].len == d->nodes[b].len &&
	       memcmp(jd_str(d, a), jd_str(d, b), d->nodes[a].len) == 0;
}

/* The repeated-key hash's key: random, drawn once per process. */
static uint64_t hash_key[2];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
	ssize_t got = getrandom(hash_key, sizeof(hash_key), 0);
	int fd;

	if (got == (ssize_t)sizeof(hash_key))
		return;
	/* a kernel before 3.17: the same bytes from the device */
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
		got = read(fd, hash_key, sizeof(hash_key));
		close(fd);
		if (got == (ssize_t)sizeof(hash_key))
			return;
	}
	/* no randomness at all: still a full-key hash, only a guessable one */
	hash_key[0] = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	hash_key[1] = (uint64_t)(uintptr_t)&hash_key ^ 0x9E3779B97F4A7C15u;
}

static size_t key_hash(const struct jd_doc *d, uint32_t k)
{
	uint64_t h;

	siphash13(hash_key, jd_str(d, k), d->nodes[k].len, &h, 1);
	return (size_t)h;
}

static int repeated(struct parser *ps, const struct key_ref *k)
{
	char ex[JD_EXCERPT_MAX + 8];

	jd_excerpt(ex, sizeof(ex), jd_str(ps->doc, k->node), jd_len(ps->doc, k->node));
	return fail(ps, "an object repeats the key \"%s\" at byte %zu", ex, (size_t)k->at);
}

/*
 * A quick hash of a key: its length and its first and last 8 bytes, mixed
 * with the process's random key. Enough to spread the keys of an answer's
 * objects; keys built to collide on it (they differ only in their middle
 * bytes) run into the probe limit of fill_slots(), and the object is
 * checked again with key_hash(), which reads every byte.
 */
static size_t quick_hash(const struct jd_doc *d, uint32_t k)
{
	const unsigned char *s = (const unsigned char *)jd_str(d, k);
	uint32_t n = d->nodes[k].len;
	uint64_t a = 0, b = 0, h;

	if (n >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
	} else {
		memcpy(&a, s, n);
	}
	h = (a ^ hash_key[0]) * 0x9E3779B97F4A7C15u;
	h ^= (b ^ hash_key[1] ^ n) * 0xC2B2AE3D27D4EB4Fu;
	return (size_t)(h ^ (h >> 31));
}

/*
 * Puts keys[0..n) in the table by `hash`: 0 when no key repeats, 1 with
 * *dup the one that repeats an earlier key, 2 when the keys took more than
 * `limit` probes beyond their first slots (counted in key_probes).
 */
static int fill_slots(struct parser *ps, const struct key_ref *keys, size_t n, size_t mask,
		      size_t (*hash)(const struct jd_doc *, uint32_t), size_t limit, size_t *dup)
{
	size_t j, h, probes = 0;

	memset(ps->slots, 0, (mask + 1) * sizeof(*ps->slots));
	for (j = 0; j < n; j++) {
		/* a slot holds a key's index + 1; 0 is empty */
		for (h = hash(ps->doc, keys[j].node) & mask; ps->slots[h]; h = (h + 1) & mask) {
			ps->doc->key_probes++;
			if (++probes > limit)
				return 2;
			if (same_key(ps->doc, keys[ps->slots[h] - 1].node, keys[j].node)) {
				*dup = j;
				return 1;
			}
		}
		ps->slots[h] = (uint32_t)(j + 1);
	}
	return 0;
}

/*
 * The object whose keys are ps->keys[from..] is complete: does it repeat a
 * key? Pairwise for up to 8 keys, else through a table twice the keys'
 * count: by quick_hash() while the keys spread (at most one probe a key
 * beyond their first slots: a table at most half full needs about one per
 * two keys), else again by key_hash().
 */
static int check_keys(struct parser *ps, size_t from)
{
	const struct key_ref *keys;
	size_t n = ps->n_keys - from, i, j, size = 16, dup = 0;
	int r;

	if (n < 2)
		return 0; /* and ps->keys may still be NULL */
	keys = ps->keys + from;
	if (n <= 8) {
		for (j = 1; j < n; j++)
			for (i = 0; i < j; i++)
				if (same_key(ps->doc, keys[i].node, keys[j].node))
					return repeated(ps, &keys[j]);
		return 0;
	}
	while (size < 2 * n)
		size *= 2;
	if (size > ps->cap_slots) {
		free(ps->slots);
		ps->slots = xmalloc(size * sizeof(*ps->slots));
		ps->cap_slots = size;
	}
	r = fill_slots(ps, keys, n, size - 1, quick_hash, n, &dup);
	if (r == 2)
		r = fill_slots(ps, keys, n, size - 1, key_hash, SIZE_MAX, &dup);
	return r == 1 ? repeated(ps, &keys[dup]) : 0;
}

/*
 * A member's key at ps->p, then its ':': leaves ps->p at the value. The key
 * becomes a node of the object `obj`.
 */
static int parse_key(struct parser *ps, size_t obj)
{
	size_t node, at = ps->p;

	if (at >= ps->len)
		return truncated(ps);
	if (ps->b[at] != '"')
		return unexpected(ps);
	if (ps->doc->nodes[obj].len == JD_MAX_MEMBERS)
		return fail(ps, "an object has more than %d members at byte %zu", JD_MAX_MEMBERS, at);
	if ((node = new_node(ps, JD_STRING)) == JD_NONE || parse_string(ps, node, true))
		return -1;
	ps->doc->nodes[obj].len++;
	if (ps->n_keys == ps->cap_keys) {
		ps->cap_keys = ps->cap_keys ? 2 * ps->cap_keys : 64;
		ps->keys = xrealloc(ps->keys, ps->cap_keys * sizeof(*ps->keys));
	}
	ps->keys[ps->n_keys].node = (uint32_t)node;
	ps->keys[ps->n_keys].at = (uint32_t)at;
	ps->n_keys++;
	ps->last_key = node;
	skip_ws(ps);
	if (ps->p >= ps->len)
		return truncated(ps);
	if (ps->b[ps->p] != ':')
		return unexpected(ps);
	ps->p++;
	skip_ws(ps);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The document                                                              */
/* ------------------------------------------------------------------------ */

/*
 * The value at ps->p (whitespace skipped), with no container open on it:
 * containers are pushed on st, and what follows a value is read in the
 * loop's second half, which closes containers until one takes a comma.
 */
static int parse_doc(struct parser *ps)
{
	struct frame st[JD_MAX_DEPTH], *f;
	size_t depth = 0, node;
	unsigned char c, close;

	for (;;) {
		if (ps->p >= ps->len)
			return truncated(ps);
		/* the top value is at level 1: a value in 64 containers is too deep */
		if (depth == JD_MAX_DEPTH)
			return fail(ps, "JSON nested deeper than %d levels at byte %zu", JD_MAX_DEPTH,
				    ps->p);
		c = ps->b[ps->p];
		if (depth && !st[depth - 1].object)
			ps->doc->nodes[st[depth - 1].node].len++;
		if ((node = new_node(ps, JD_NULL)) == JD_NONE)
			return -1;
		if (c == '{' || c == '[') {
			ps->doc->types[node] = c == '{' ? JD_OBJECT : JD_ARRAY;
			st[depth].node = node;
			st[depth].keys = ps->n_keys;
			st[depth].object = c == '{';
			depth++;
			ps->p++;
			skip_ws(ps);
			if (ps->p < ps->len && ps->b[ps->p] == (c == '{' ? '}' : ']')) {
				/* empty: the second half closes it */
			} else {
				if (c == '{' && parse_key(ps, node))
					return -1;
				continue;
			}
		} else if (c == '"') {
			ps->doc->types[node] = JD_STRING;
			if (parse_string(ps, node, false))
				return -1;
		} else if (c == '-' || is_digit(c)) {
			if (parse_number(ps, node))
				return -1;
		} else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
			if (parse_literal(ps, node))
				return -1;
		} else {
			return unexpected(ps);
		}

		/* after a value: close containers until one goes on */
		for (;;) {
			skip_ws(ps);
			if (!depth) {
				if (ps->p < ps->len)
					return fail(ps, "data after the JSON value at byte %zu",
						    ps->p);
				return 0;
			}
			if (ps->p >= ps->len)
				return truncated(ps);
			f = &st[depth - 1];
			c = ps->b[ps->p];
			close = f->object ? '}' : ']';
			if (c == close) {
				ps->p++;
				ps->doc->nodes[f->node].off = (uint32_t)ps->doc->n_nodes;
				if (f->object) {
					if (check_keys(ps, f->keys))
						return -1;
					ps->n_keys = f->keys;
				}
				depth--;
				continue;
			}
			if (c != ',')
				return unexpected(ps);
			ps->p++;
			skip_ws(ps);
			if (f->object && parse_key(ps, f->node))
				return -1;
			break;
		}
	}
}

int jd_parse(struct jd_doc *doc, const char *body, size_t len, char *msg, size_t msgsz)
{
	struct parser ps;
	int rc;

	memset(doc, 0, sizeof(*doc));
	memset(&ps, 0, sizeof(ps));
	ps.doc = doc;
	ps.b = (const unsigned char *)body;
	ps.len = len;
	ps.last_key = JD_NONE;
	ps.msg = msg;
	ps.msgsz = msgsz;
	ps.max_nodes = JD_MAX_NODES(len);
	if (len > JD_MAX_BODY)
		return fail(&ps, "body of %zu bytes is too large", len);
	skip_ws(&ps);
	if (ps.p == len)
		return fail(&ps, "empty body");
	pthread_once(&hash_key_once, hash_key_init);
	/* a page holds about one node in 10 bytes; doubling covers the rest */
	doc_nodes(doc, len / 8 + 16 > ps.max_nodes ? ps.max_nodes : len / 8 + 16);
	doc->strings = bufpool_get(len + 1, &doc->bytes[2]);
	rc = parse_doc(&ps);
	free(ps.keys);
	free(ps.slots);
	return rc;
}

void jd_free(struct jd_doc *doc)
{
	if (!doc)
		return;
	bufpool_put(doc->nodes, doc->bytes[0]);
	bufpool_put(doc->types, doc->bytes[1]);
	bufpool_put(doc->strings, doc->bytes[2]);
	memset(doc, 0, sizeof(*doc));
}

double jd_double(const struct jd_doc *d, size_t i)
{
	switch (jd_type(d, i)) {
	case JD_INT: return (double)jd_int(d, i);
	case JD_UINT: return (double)jd_uint(d, i);
	case JD_NUMBER: return strtod(jd_token(d, i), NULL);
	default: return 0;
	}
}

size_t jd_member(const struct jd_doc *d, size_t obj, const char *key)
{
	size_t k, end = d->nodes[obj].off, n = strlen(key);

	for (k = obj + 1; k < end; k = jd_next(d, k + 1))
		if (d->nodes[k].len == n && memcmp(jd_str(d, k), key, n) == 0)
			return k + 1;
	return JD_NONE;
}

const char *jd_type_name(const struct jd_doc *d, size_t v)
{
	if (v == JD_NONE)
		return "null";
	switch (jd_type(d, v)) {
	case JD_NULL: return "null";
	case JD_FALSE:
	case JD_TRUE: return "boolean";
	case JD_NUMBER: return "number";
	case JD_INT:
	case JD_UINT: return "integer";
	case JD_OBJECT: return "object";
	case JD_ARRAY: return "array";
	case JD_STRING: return "string";
	}
	return "unknown";
}

/* ------------------------------------------------------------------------ */
/* UTF-8 and excerpts                                                        */
/* ------------------------------------------------------------------------ */

size_t jd_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

bool jd_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (!(k = jd_utf8_len(p + i, n - i)))
			return false;
		i += k;
	}
	return true;
}

void jd_excerpt(char *dst, size_t dstsz, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, k;

	while (i < n && o + 4 < dstsz && i < JD_EXCERPT_MAX) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			dst[o++] = '?';
			i++;
			continue;
		}
		if (!(k = jd_utf8_len(p + i, n - i))) {
			dst[o++] = '?';
			i++;
			continue;
		}
		if (i + k > JD_EXCERPT_MAX)
			break;
		memcpy(dst + o, p + i, k);
		o += k;
		i += k;
	}
	if (i < n && o + 4 <= dstsz) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}
