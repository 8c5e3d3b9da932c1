/*
 * util.h - memory wrappers and a growable string buffer.
 *
 * Allocation failure is not a condition this program can recover from in any
 * useful way, so the x* wrappers print a message and abort; error paths are
 * kept for the failures that really happen (network, JSON, database, input).
 * struct strbuf is the one growable byte buffer of the project: COPY batches,
 * request bodies and messages are all built in one.
 */
#ifndef INTERSECT_UTIL_H
#define INTERSECT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ETL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ETL_WUR __attribute__((warn_unused_result))
#define ETL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Each returns memory the caller frees with free(); never NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) ETL_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) ETL_PRINTF(1, 0);
/* Frees a string that held a credential, zeroing it first (NULL: nothing). */
void xfree_secret(char *s);

/*
 * Decodes one UTF-8 sequence at s (n >= 1 bytes left) into *cp. Returns its
 * length, or 0 for an invalid, overlong, surrogate or truncated sequence.
 */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* C0/C1 controls, DEL and the bidi controls: shown escaped or replaced, never raw. */
int utf8_unsafe_cp(uint32_t cp);

/*
 * SipHash-1-3 (Aumasson and Bernstein) of s[0..n) under key, into out[0],
 * or, with words 2, the 128-bit output mode into out[0..1]. Words are read
 * little-endian, so a value is the same on every host (a stored digest may
 * rely on it). Keyed at random it is a hash table's defence against
 * flooding; under a fixed key, a digest against accidents, not attacks.
 */
void siphash13(const uint64_t key[2], const void *s, size_t n, uint64_t *out, int words);

/* A NUL-terminated growable buffer; data may also hold NULs (len counts them). */
struct strbuf {
	char *data;  /* owned; NULL until the first append */
	size_t len;  /* bytes used, not counting the terminating NUL */
	size_t cap;  /* bytes allocated */
};

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);               /* len = 0, keeps the allocation */
void sb_reserve(struct strbuf *sb, size_t extra);
/* Room for cap bytes (at least; at most twice): its bytes kept, up to len and the NUL. */
void sb_set_cap(struct strbuf *sb, size_t cap);
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_putc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...) ETL_PRINTF(2, 3);
void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap) ETL_PRINTF(2, 0);
/* Hands the buffer to the caller (free() it) and leaves sb empty. */
char *sb_detach(struct strbuf *sb);

#endif
