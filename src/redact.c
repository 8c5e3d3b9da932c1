/*
 * redact.c - the credential registry and the one function that cuts
 * credentials out of outside text. See redact.h.
 */
#include "redact.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A handful: token, password, database password and their JSON spellings. */
#define REDACT_MAX 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *secrets[REDACT_MAX];
static size_t n_secrets;

static int wipe_registered;

/*
 * At exit the copies are zeroed, as the program's other copies of the
 * credentials are. trylock: a thread still inside redact() while another
 * exits must not hang the exit.
 */
static void wipe_at_exit(void)
{
	if (pthread_mutex_trylock(&lock) != 0)
		return;
	while (n_secrets > 0)
		xfree_secret(secrets[--n_secrets]);
	pthread_mutex_unlock(&lock);
}

/* Under lock. A full registry keeps what it has: there are at most 6 callers. */
static void add_locked(char *copy)
{
	size_t i;

	for (i = 0; i < n_secrets; i++) {
		if (strcmp(secrets[i], copy) == 0) {
			xfree_secret(copy);
			return;
		}
	}
	if (n_secrets == REDACT_MAX) {
		xfree_secret(copy);
		return;
	}
	secrets[n_secrets++] = copy;
}

/* The secret as a JSON encoder may write it inside a string; NULL if the same. */
static char *json_spelling(const char *s)
{
	struct strbuf sb;
	const char *p;

	if (!strpbrk(s, "/\"\\"))
		return NULL;
	sb_init(&sb);
	for (p = s; *p; p++) {
		if (*p == '/' || *p == '"' || *p == '\\')
			sb_putc(&sb, '\\');
		sb_putc(&sb, *p);
	}
	return sb_detach(&sb);
}

void redact_add(const char *secret)
{
	char *json;

	if (!secret || strlen(secret) < REDACT_MIN_LEN)
		return;
	json = json_spelling(secret);
	pthread_mutex_lock(&lock);
	if (!wipe_registered)
		wipe_registered = atexit(wipe_at_exit) == 0;
	add_locked(xstrdup(secret));
	if (json)
		add_locked(json);
	pthread_mutex_unlock(&lock);
}

void redact_clear(void)
{
	pthread_mutex_lock(&lock);
	while (n_secrets > 0)
		xfree_secret(secrets[--n_secrets]);
	pthread_mutex_unlock(&lock);
}

/* One secret out of s[0..len), compacting in place; returns the new length. */
static size_t cut(char *s, size_t len, const char *secret)
{
	size_t slen = strlen(secret), mlen = strlen(REDACT_MARK);
	char *r = s, *w = s, *end = s + len, *hit;

	while ((hit = memmem(r, (size_t)(end - r), secret, slen)) != NULL) {
		if (w != r)
			memmove(w, r, (size_t)(hit - r));
		w += hit - r;
		memcpy(w, REDACT_MARK, mlen);
		w += mlen;
		r = hit + slen;
	}
	if (r == s)
		return len; /* nothing found: nothing moved */
	memmove(w, r, (size_t)(end - r));
	w += end - r;
	return (size_t)(w - s);
}

size_t redact(char *s, size_t len)
{
	size_t i;

	if (!s || len == 0)
		return len;
	pthread_mutex_lock(&lock);
	for (i = 0; i < n_secrets; i++)
		len = cut(s, len, secrets[i]);
	pthread_mutex_unlock(&lock);
	return len;
}

int redact_str(char *s)
{
	size_t len, n;

	if (!s)
		return 0;
	len = strlen(s);
	n = redact(s, len);
	s[n] = '\0';
	return n != len;
}
