/*
 * fetch.c - the libcurl multi engine. See fetch.h.
 *
 * Pacing: each start takes the next slot of a clock that ticks every
 * 60/requests_per_minute seconds, so a run of any size keeps an even rate
 * instead of bursting `concurrency` requests at once and then idling; slots
 * the caller was too busy to use are made up, at most PACE_MAKEUP. Easy
 * handles are pooled; connections live in the multi handle's cache and are
 * reused across requests (HTTP/1.1 keep-alive, or HTTP/2 when offered).
 */
#include "fetch.h"

#include <ctype.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gzip.h"
#include "membudget.h"
#include "redact.h"

/*
 * How many slots late the clock may run: starts the caller could not make
 * on time (it was parsing an answer while others landed) are made up at
 * once, up to this many, so that the places of answers that landed
 * together are refilled together and rounds of requests do not drift
 * apart by the parsing between them. An idle spell banks no more.
 */
#define PACE_MAKEUP 4

struct fetcher {
	CURLM *multi;
	char *url;
	struct curl_slist *headers;   /* Content-Type and, for aisa, Authorization */
	const struct job_api *api;    /* borrowed from the job */
	int plain_http;               /* http:// (loopback only, job.c): never via a proxy */
	int max_concurrency;          /* the job's own limits */
	double max_rate;
	int concurrency;              /* current, <= max_concurrency */
	double rate;                  /* current requests per minute */
	double next_slot;             /* monotonic time of the next allowed start */
	struct fetch_req *queue;      /* waiting to start, in arrival order */
	struct fetch_req *queue_tail;
	struct fetch_req *running;    /* in flight (unordered) */
	size_t n_queued, n_running;
	CURL **pool;                  /* idle easy handles, reused */
	size_t n_pool, cap_pool;
	atomic_int woken;             /* fetcher_wakeup was called: return from fetcher_next */
	int held;                     /* fetcher_hold: start nothing new */
	struct fetch_req *oldest;     /* the transfer in flight that may always grow its body
					 (membudget.h); NULL when none is */
};

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int curl_ready;

int fetcher_new(const struct job_api *api, const char *url, struct fetcher **out,
		struct etl_error *err)
{
	struct fetcher *f;

	*out = NULL;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return etl_fail(err, ETL_EFAIL, "cannot initialise libcurl");
		curl_ready = 1;
	}
	f = xcalloc(1, sizeof(*f));
	f->multi = curl_multi_init();
	if (!f->multi) {
		free(f);
		return etl_fail(err, ETL_EFAIL, "cannot create a libcurl multi handle");
	}
	f->url = xstrdup(url);
	f->api = api;
	f->plain_http = strncasecmp(url, "http://", 7) == 0;
	f->max_concurrency = f->concurrency = api->concurrency;
	f->max_rate = f->rate = api->requests_per_minute;
	f->next_slot = 0;
	f->headers = curl_slist_append(NULL, "Content-Type: application/json");
	f->headers = curl_slist_append(f->headers, "Accept: application/json");
	/* gzip only, decoded here (decode_body()) rather than by libcurl: see fetch.h */
	f->headers = curl_slist_append(f->headers, "Accept-Encoding: gzip");
	if (api->provider == API_AISA && api->token) {
		char *h = xasprintf("Authorization: Bearer %s", api->token);
		f->headers = curl_slist_append(f->headers, h);
		/* the header held a secret: wipe our copy before freeing it
		 * (explicitly: a memset before free() may be optimised away) */
		xfree_secret(h);
	}
	/* an API that echoes a credential (a 401 quoting the key) has it cut
	 * from the body before anything reads it: redact_body() */
	redact_add(api->token);
	redact_add(api->password);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)api->concurrency);
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)api->concurrency);
	*out = f;
	return 0;
}

struct fetch_req *fetch_req_new(char *body, void *user)
{
	struct fetch_req *r = xcalloc(1, sizeof(*r));

	r->body = body;
	r->user = user;
	r->retry_after = -1;
	sb_init(&r->response);
	sb_init(&r->wire);
	return r;
}

/* What r's buffers hold is what it counts in the memory budget. */
void fetch_req_account(struct fetch_req *r)
{
	size_t now = r->response.cap + r->wire.cap + (r->unread ? r->isize : 0);

	if (now > r->budget)
		membudget_take(now - r->budget);
	else
		membudget_release(r->budget - now);
	r->budget = now;
}

void fetch_req_free(struct fetch_req *r)
{
	if (!r)
		return;
	membudget_release(r->budget);
	free(r->body);
	sb_free(&r->response);
	sb_free(&r->wire);
	free(r);
}

static void release_easy(struct fetcher *f, CURL *easy)
{
	if (f->n_pool == f->cap_pool) {
		f->cap_pool = f->cap_pool ? f->cap_pool * 2 : 8;
		f->pool = xrealloc(f->pool, f->cap_pool * sizeof(*f->pool));
	}
	f->pool[f->n_pool++] = easy;
}

void fetcher_free(struct fetcher *f)
{
	struct fetch_req *r, *next;
	size_t i;

	if (!f)
		return;
	for (r = f->running; r; r = next) {
		next = r->next;
		curl_multi_remove_handle(f->multi, r->easy);
		curl_easy_cleanup(r->easy);
		fetch_req_free(r);
	}
	for (r = f->queue; r; r = next) {
		next = r->next;
		fetch_req_free(r);
	}
	for (i = 0; i < f->n_pool; i++)
		curl_easy_cleanup(f->pool[i]);
	free(f->pool);
	/* the Authorization header holds the token (libcurl's own copies of
	 * CURLOPT_USERNAME/PASSWORD are out of reach) */
	for (struct curl_slist *s = f->headers; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(f->headers);
	curl_multi_cleanup(f->multi);
	free(f->url);
	free(f);
}

/*
 * Whether a body in flight may grow by n bytes: bodies in flight get half
 * the memory budget, the other half is kept for pages that have arrived
 * (their COPY text, about twice a body, and their loading).
 */
static int room_to_grow(size_t n)
{
	return membudget_fits(n + membudget_limit() / 2);
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct fetch_req *r = userp;
	struct strbuf *to = r->gzipped ? &r->wire : &r->response;
	size_t len = size * n;

	if (r->bad_encoding)
		return 0; /* libcurl fails the transfer; collect_done() says why */
	if (to->len + len > FETCH_MAX_RESPONSE_BYTES)
		return 0; /* libcurl fails the transfer with CURLE_WRITE_ERROR */
	/* Room in the memory budget for the buffer to grow (it doubles), or
	 * the transfer waits: libcurl keeps this chunk and calls again once
	 * fetcher_next() resumes it. The oldest transfer never waits, so that
	 * one always finishes and its page gives room back. */
	if (to->len + len + 1 > to->cap && r != r->fetcher->oldest &&
	    !room_to_grow(to->cap > len ? to->cap : len)) {
		r->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	sb_append(to, data, len);
	fetch_req_account(r);
	return len;
}

/* What a gzip body says it decodes to (its trailer's size field), below the cap; else 0. */
static size_t gzip_isize(const struct fetch_req *r)
{
	const unsigned char *t;
	size_t isize;

	if (r->wire.len < 18) /* a gzip header and trailer at least */
		return 0;
	t = (const unsigned char *)r->wire.data + r->wire.len - 4;
	isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
	return isize < FETCH_MAX_RESPONSE_BYTES ? isize : 0;
}

/*
 * A gzip body is kept as it came while the transfer runs, and decoded only
 * when its answer is about to be parsed (fetcher_body()): a request in
 * flight holds a fraction of the bytes, which is what keeps memory flat at
 * any concurrency. The gzip trailer's size field sizes the decoded buffer in
 * one allocation (and is what the budget counts until then).
 */
static void decode_body(struct fetch_req *r)
{
	char msg[160];
	size_t isize = gzip_isize(r);

	if (isize)
		sb_reserve(&r->response, isize);
	if (gunzip_all(r->wire.data, r->wire.len, FETCH_MAX_RESPONSE_BYTES, &r->response, msg,
		       sizeof(msg)) != 0) {
		r->curl_code = CURLE_BAD_CONTENT_ENCODING;
		snprintf(r->errbuf, sizeof(r->errbuf), "gzip body: %s (%zu bytes decoded)", msg,
			 r->response.len);
	}
	if (!r->keep_wire)
		sb_free(&r->wire);
	fetch_req_account(r);
}

/*
 * The body is where the API's text enters: a credential it echoes (a 401 or
 * a task error whose message quotes the key) is cut here, once, so the
 * status message, page errors, logs, the ledger and the archive all derive
 * from text without it. A gzip body that held one is archived decoded and
 * cut (raw_page.body) rather than as the bytes that came, which still hold
 * it: the archive keeps bodies as received except for a credential.
 */
static void redact_body(struct fetch_req *r)
{
	size_t len = redact(r->response.data, r->response.len);

	if (len == r->response.len)
		return;
	r->response.len = len;
	r->response.data[len] = '\0';
	if (r->gzipped) {
		sb_free(&r->wire);
		r->gzipped = 0;
		fetch_req_account(r);
	}
}

/* Resets what the headers of the previous response (or attempt) said. */
static void body_reset(struct fetch_req *r)
{
	sb_reset(&r->response);
	sb_reset(&r->wire);
	r->gzipped = 0;
	r->bad_encoding = 0;
}

/* Content-Encoding: gzip (or x-gzip) is decoded; identity is the body itself. */
static void on_content_encoding(struct fetch_req *r, const char *v, size_t n)
{
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	if ((n == 4 && strncasecmp(v, "gzip", 4) == 0) || (n == 6 && strncasecmp(v, "x-gzip", 6) == 0))
		r->gzipped = 1;
	else if (n && !(n == 8 && strncasecmp(v, "identity", 8) == 0))
		r->bad_encoding = 1;
}

/* Retry-After is either delta-seconds or an HTTP date; both are honoured. */
static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct fetch_req *r = userp;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	static const char enc[] = "content-encoding:";

	if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
		body_reset(r); /* a new response: an interim one's headers do not count */
		return len;
	}
	if (len > sizeof(enc) - 1 && strncasecmp(data, enc, sizeof(enc) - 1) == 0) {
		on_content_encoding(r, data + sizeof(enc) - 1, len - (sizeof(enc) - 1));
		return len;
	}
	if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		char buf[64];
		size_t vlen = len - (sizeof(name) - 1);
		char *end;
		double v;

		if (vlen >= sizeof(buf))
			vlen = sizeof(buf) - 1;
		memcpy(buf, data + sizeof(name) - 1, vlen);
		buf[vlen] = '\0';
		v = strtod(buf, &end);
		if (end != buf && isfinite(v) && v >= 0) {
			r->retry_after = v;
		} else {
			time_t when = curl_getdate(buf, NULL);
			if (when > 0) {
				double d = difftime(when, time(NULL));
				r->retry_after = d > 0 ? d : 0;
			}
		}
	}
	return len;
}

static CURL *easy_for(struct fetcher *f, struct fetch_req *r)
{
	CURL *e = f->n_pool ? f->pool[--f->n_pool] : curl_easy_init();
	long connect_timeout = f->api->timeout_seconds < 30 ? f->api->timeout_seconds : 30;

	if (!e)
		return NULL;
	curl_easy_reset(e);
	r->fetcher = f;
	r->paused = 0;
	curl_easy_setopt(e, CURLOPT_URL, f->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, connect_timeout);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)f->api->timeout_seconds);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Never off: the job file has no switch for it, on purpose. */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Plain http is allowed to a loopback address only, where nothing can
	 * read the token on the way; an http_proxy (or all_proxy) from the
	 * environment would take it, in clear, somewhere else. https through a
	 * proxy is a tunnel the proxy cannot read, and stays as configured. */
	if (f->plain_http)
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "intersect-etl/" ETL_VERSION);
	if (f->api->provider == API_DATAFORSEO && f->api->login) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, f->api->login);
		curl_easy_setopt(e, CURLOPT_PASSWORD, f->api->password ? f->api->password : "");
	}
	return e;
}

void fetcher_add(struct fetcher *f, struct fetch_req *r)
{
	r->next = NULL;
	r->http_status = 0;
	r->curl_code = CURLE_OK;
	r->errbuf[0] = '\0';
	r->retry_after = -1;
	body_reset(r);
	if (f->queue_tail)
		f->queue_tail->next = r;
	else
		f->queue = r;
	f->queue_tail = r;
	f->n_queued++;
}

/* The oldest transfer in flight: the running list has the newest first. */
static void find_oldest(struct fetcher *f)
{
	struct fetch_req *r;

	f->oldest = f->running;
	for (r = f->running; r; r = r->next)
		f->oldest = r;
}

/*
 * Resumes transfers paused for room in the memory budget (on_body) when
 * there is room again, and the oldest one in any case.
 */
static void resume_paused(struct fetcher *f)
{
	struct fetch_req *r;

	for (r = f->running; r; r = r->next) {
		struct strbuf *to = r->gzipped ? &r->wire : &r->response;

		if (r->paused && (r == f->oldest || room_to_grow(to->cap ? to->cap : CURL_MAX_WRITE_SIZE))) {
			r->paused = 0;
			curl_easy_pause(r->easy, CURLPAUSE_CONT); /* may pause it again at once */
		}
	}
}

/* Takes the first queued request whose not_before has passed, if any. */
static struct fetch_req *dequeue_ready(struct fetcher *f, double now, double *soonest)
{
	struct fetch_req *r, *prev = NULL;

	for (r = f->queue; r; prev = r, r = r->next) {
		if (r->not_before <= now) {
			if (prev)
				prev->next = r->next;
			else
				f->queue = r->next;
			if (f->queue_tail == r)
				f->queue_tail = prev;
			r->next = NULL;
			f->n_queued--;
			return r;
		}
		if (r->not_before < *soonest)
			*soonest = r->not_before;
	}
	return NULL;
}

/* Starts what pacing and concurrency allow; returns when the next start may be. */
static double start_ready(struct fetcher *f)
{
	double now = mono_now();
	double wake = now + 3600, late;

	if (f->held)
		return now + 0.2; /* the caller lifts it from its own loop */
	while ((int)f->n_running < f->concurrency && f->queue) {
		struct fetch_req *r;

		if (f->next_slot > now) {
			wake = f->next_slot;
			break;
		}
		r = dequeue_ready(f, now, &wake);
		if (!r)
			break;
		r->easy = easy_for(f, r);
		if (!r->easy || curl_multi_add_handle(f->multi, r->easy) != CURLM_OK) {
			/* Report it as a failed transfer; the scheduler's retry applies. */
			r->curl_code = CURLE_FAILED_INIT;
			snprintf(r->errbuf, sizeof(r->errbuf), "cannot start a transfer");
			if (r->easy)
				curl_easy_cleanup(r->easy);
			r->easy = NULL;
			r->next = f->queue;
			f->queue = r;
			if (!f->queue_tail)
				f->queue_tail = r;
			f->n_queued++;
			r->not_before = now + 1;
			break;
		}
		r->started = now;
		r->next = f->running;
		f->running = r;
		f->n_running++;
		find_oldest(f);
		/* The slot clock never runs ahead of now by more than one
		 * interval, nor behind it by more than PACE_MAKEUP. */
		late = now - PACE_MAKEUP * 60.0 / f->rate;
		f->next_slot = (f->next_slot > late ? f->next_slot : late) + 60.0 / f->rate;
	}
	return wake;
}

static struct fetch_req *collect_done(struct fetcher *f)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left))) {
		struct fetch_req *r = NULL, **pp;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		r->curl_code = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->http_status);
		if (r->curl_code != CURLE_OK && !r->errbuf[0])
			snprintf(r->errbuf, sizeof(r->errbuf), "%s", curl_easy_strerror(r->curl_code));
		if (r->curl_code == CURLE_WRITE_ERROR && r->bad_encoding) {
			r->curl_code = CURLE_BAD_CONTENT_ENCODING;
			snprintf(r->errbuf, sizeof(r->errbuf),
				 "the response has a Content-Encoding other than gzip, "
				 "which was not asked for");
		} else if (r->curl_code == CURLE_OK) {
			r->unread = 1; /* fetcher_body() */
			/* counted as decoded from now, as it was when decoded here */
			r->isize = r->gzipped ? gzip_isize(r) : 0;
			fetch_req_account(r);
		} else if (r->curl_code == CURLE_WRITE_ERROR) {
			snprintf(r->errbuf, sizeof(r->errbuf), "response larger than %u bytes",
				 FETCH_MAX_RESPONSE_BYTES);
		}
		r->seconds = mono_now() - r->started;
		curl_multi_remove_handle(f->multi, r->easy);
		release_easy(f, r->easy);
		r->easy = NULL;
		for (pp = &f->running; *pp; pp = &(*pp)->next) {
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		}
		r->next = NULL;
		f->n_running--;
		find_oldest(f);
		return r;
	}
	return NULL;
}

/* Decoded and redacted when the caller is ready for it (fetch.h). */
void fetcher_body(struct fetch_req *r)
{
	if (!r->unread)
		return;
	r->unread = 0;
	if (r->gzipped)
		decode_body(r); /* counts the body decoded, not isize */
	redact_body(r);
}

struct fetch_req *fetcher_next(struct fetcher *f, int max_wait_ms)
{
	double deadline = mono_now() + max_wait_ms / 1000.0;

	for (;;) {
		struct fetch_req *done;
		double wake, now;
		int still, wait_ms;

		wake = start_ready(f);
		resume_paused(f);
		curl_multi_perform(f->multi, &still);
		if ((done = collect_done(f)))
			return done;
		if (!f->n_running && !f->n_queued)
			return NULL;
		if (atomic_exchange(&f->woken, 0))
			return NULL; /* another thread has news for the caller */
		now = mono_now();
		if (now >= deadline)
			return NULL;
		if (wake > deadline)
			wake = deadline;
		wait_ms = (int)((wake - now) * 1000.0) + 1;
		if (f->n_running == 0 && wait_ms > 0) {
			/* nothing to poll: sleep until the next start is allowed */
			struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
			continue;
		}
		curl_multi_poll(f->multi, NULL, 0, wait_ms > 1000 ? 1000 : wait_ms, NULL);
	}
}

void fetcher_start(struct fetcher *f)
{
	int still;

	start_ready(f);
	curl_multi_perform(f->multi, &still);
}

struct fetch_req *fetcher_cancel_one(struct fetcher *f)
{
	struct fetch_req *r;

	if ((r = f->running)) {
		f->running = r->next;
		f->n_running--;
		find_oldest(f);
		curl_multi_remove_handle(f->multi, r->easy);
		release_easy(f, r->easy);
		r->easy = NULL;
	} else if ((r = f->queue)) {
		f->queue = r->next;
		if (!f->queue)
			f->queue_tail = NULL;
		f->n_queued--;
	}
	if (r)
		r->next = NULL;
	return r;
}

void fetcher_hold(struct fetcher *f, int held)
{
	f->held = held;
}

void fetcher_wakeup(struct fetcher *f)
{
	atomic_store(&f->woken, 1);
	curl_multi_wakeup(f->multi);
}

size_t fetcher_in_flight(const struct fetcher *f)
{
	return f->n_running;
}

size_t fetcher_queued(const struct fetcher *f)
{
	return f->n_queued;
}

void fetcher_set_pace(struct fetcher *f, int concurrency, double rpm)
{
	if (concurrency < 1)
		concurrency = 1;
	if (concurrency > f->max_concurrency)
		concurrency = f->max_concurrency;
	if (rpm < 1)
		rpm = 1;
	if (rpm > f->max_rate)
		rpm = f->max_rate;
	f->concurrency = concurrency;
	f->rate = rpm;
}

int fetcher_concurrency(const struct fetcher *f)
{
	return f->concurrency;
}

double fetcher_rate(const struct fetcher *f)
{
	return f->rate;
}
