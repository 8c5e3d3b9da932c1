/*
 * transform.c - from one API response body to COPY rows of domain_intersection.
 *
 * This file owns everything between the bytes the fetcher received and the
 * COPY text the loader sends. response_parse() parses the body with json-c,
 * first checking what json-c accepts or quietly alters but PostgreSQL must
 * not see (see body_scan()), then walks the envelope in the order the API
 * reports failure: the gateway's error object, the top status_code, the first
 * task's status_code and tasks_error, and finally result[0]. transform_page()
 * turns each item into one row per target key, validating every value and
 * writing it straight into the batch, escaped for COPY text format; a row
 * never exists as anything but bytes in the batch. Fields the program does
 * not know go, as JSON, into the `extra` column; an item that cannot be
 * stored whole fails the page, which then leaves the batch as it found it.
 */
#include "transform.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_OK 20000
#define PARSE_MAX_DEPTH 64   /* a response nests ~10 deep; 64 leaves room for new fields */
#define MAX_TARGET_KEYS 20   /* the API's own limit on targets */
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define EXCERPT_MAX 60       /* bytes of a value or body quoted in a message */

/* ------------------------------------------------------------------------ */
/* Small helpers shared by both steps                                        */
/* ------------------------------------------------------------------------ */

static const char *type_name(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return "boolean";
	case json_type_double: return "number";
	case json_type_int: return "integer";
	case json_type_object: return "object";
	case json_type_array: return "array";
	case json_type_string: return "string";
	}
	return "unknown";
}

/*
 * Length of the UTF-8 sequence at s (n bytes available), or 0 when it is not
 * one PostgreSQL accepts: RFC 3629 forbids overlong forms, UTF-16 surrogates
 * and code points past U+10FFFF, all of which json-c 0.16's own validation
 * lets through.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
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

static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (!(k = utf8_len(p + i, n - i)))
			return false;
		i += k;
	}
	return true;
}

/*
 * Copies at most EXCERPT_MAX bytes of s into dst (dstsz >= EXCERPT_MAX + 4)
 * for a message: control bytes become '?', a cut never splits a UTF-8
 * sequence, and "..." marks a cut.
 */
static void excerpt(char *dst, size_t dstsz, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, k;

	while (i < n && o + 4 < dstsz && i < EXCERPT_MAX) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			dst[o++] = '?';
			i++;
			continue;
		}
		if (!(k = utf8_len(p + i, n - i))) {
			dst[o++] = '?';
			i++;
			continue;
		}
		if (i + k > EXCERPT_MAX)
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

/* "string \"abc\"", "integer 123", "object {...}": a value as a message shows it. */
static void describe(json_object *v, char *dst, size_t dstsz)
{
	char ex[EXCERPT_MAX + 8];
	const char *text;

	if (!v) {
		snprintf(dst, dstsz, "null");
		return;
	}
	if (json_object_is_type(v, json_type_string)) {
		/* from the value itself: serializing a 10 MB string for a message
		   would be a waste */
		excerpt(ex, sizeof(ex), json_object_get_string(v),
			(size_t)json_object_get_string_len(v));
		snprintf(dst, dstsz, "string \"%s\"", ex);
		return;
	}
	/* the serialization is cached in v and freed with the tree */
	text = json_object_to_json_string_ext(v, JSON_FLAGS);
	excerpt(ex, sizeof(ex), text, strlen(text));
	snprintf(dst, dstsz, "%s %s", type_name(v), ex);
}

/* A JSON member's value, or NULL when the member is absent or JSON null. */
static json_object *member(json_object *obj, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

/*
 * The exact value of a json-c integer. json-c 0.16 stores integers past
 * INT64_MAX as uint64 and reports them to json_object_get_int64() as
 * INT64_MAX, so that value is only trusted when the uint64 view agrees.
 */
static bool int_exact(json_object *v, long long *out)
{
	int64_t x = json_object_get_int64(v);

	if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX)
		return false;
	*out = (long long)x;
	return true;
}

/* ------------------------------------------------------------------------ */
/* response_parse                                                            */
/* ------------------------------------------------------------------------ */

/* Sets out->error and err; a RESP_MALFORMED message gets its prefix here. */
static int resp_fail(struct api_response *out, struct etl_error *err, enum response_error why,
		     const char *fmt, ...) ETL_PRINTF(4, 5);

static int resp_fail(struct api_response *out, struct etl_error *err, enum response_error why,
		     const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	va_list ap;

	out->error = why;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return etl_fail(err, ETL_EFAIL, "%s%s", why == RESP_MALFORMED ? "malformed response: " : "",
			msg);
}

/* Bytes a string's fast run goes over: ASCII but NUL, quote and backslash. */
static bool str_plain(unsigned char c)
{
	return c - 1u < 0x7fu && c != '"' && c != '\\';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Does the integer token s[0..n) (optional '-', digits, no leading zero) lie
 * outside what json-c stores exactly? json-c 0.16 saturates to INT64_MIN below
 * it and to UINT64_MAX above that, silently; the exact uint64 range above
 * INT64_MAX is left to the field checks, which name the field.
 */
static bool int_token_clamped(const char *s, size_t n)
{
	static const char min_abs[] = "9223372036854775808";
	static const char max_u64[] = "18446744073709551615";

	if (s[0] == '-') {
		if (n - 1 != sizeof(min_abs) - 1)
			return n - 1 > sizeof(min_abs) - 1;
		return memcmp(s + 1, min_abs, n - 1) > 0;
	}
	if (n != sizeof(max_u64) - 1)
		return n > sizeof(max_u64) - 1;
	return memcmp(s, max_u64, n) > 0;
}

/* Where body_scan() is, and the last string it closed (a key, at a ':'). */
struct scan {
	const char *b;
	size_t len;
	size_t i;                /* the next byte to look at */
	size_t str_off, str_len; /* the last string's contents */
	size_t key_off, key_len; /* the key of the member being read */
	size_t members;          /* ':' seen outside strings */
};

/* The string opening at sc->i; leaves sc->i past its closing quote. */
static int scan_string(struct scan *sc, struct api_response *out, struct etl_error *err)
{
	const char *b = sc->b;
	size_t i = sc->i + 1, j, len = sc->len;
	bool nul = false;
	char ex[EXCERPT_MAX + 8];

	sc->str_off = i;
	for (;;) {
		while (i < len && str_plain((unsigned char)b[i]))
			i++;
		if (i >= len)
			return resp_fail(out, err, RESP_MALFORMED,
					 "unterminated string at byte %zu", sc->str_off - 1);
		if (b[i] == '"')
			break;
		if (b[i] == '\\') {
			/* json-c has checked the escapes; only \u0000 matters here */
			if (i + 6 <= len && b[i + 1] == 'u') {
				nul |= memcmp(b + i + 2, "0000", 4) == 0;
				i += 6;
			} else {
				i += 2;
			}
			continue;
		}
		if (b[i] == '\0')
			return resp_fail(out, err, RESP_MALFORMED, "NUL byte at byte %zu", i);
		if (!(j = utf8_len((const unsigned char *)b + i, len - i)))
			return resp_fail(out, err, RESP_MALFORMED, "invalid UTF-8 at byte %zu", i);
		i += j;
	}
	sc->str_len = i - sc->str_off;
	sc->i = i + 1;
	if (!nul)
		return 0;
	/* a value may hold \u0000 (the columns' checks refuse it); a key may not */
	for (j = sc->i; j < len && is_ws(b[j]); j++)
		;
	if (j < len && b[j] == ':') {
		excerpt(ex, sizeof(ex), b + sc->str_off, sc->str_len);
		return resp_fail(out, err, RESP_MALFORMED,
				 "object key \"%s\" at byte %zu holds \\u0000, which json-c would "
				 "cut short",
				 ex, sc->str_off - 1);
	}
	return 0;
}

/* The number starting at sc->i: JSON's grammar, and within what json-c keeps. */
static int scan_number(struct scan *sc, struct api_response *out, struct etl_error *err)
{
	const char *b = sc->b;
	size_t i = sc->i, start = sc->i, len = sc->len;
	bool integer = true;
	char ex[EXCERPT_MAX + 8];

	if (b[i] == '-')
		i++;
	if (i < len && b[i] == '0')
		i++;
	else if (i < len && is_digit(b[i]))
		while (i < len && is_digit(b[i]))
			i++;
	else
		goto bad;
	if (i < len && b[i] == '.') {
		integer = false;
		if (++i >= len || !is_digit(b[i]))
			goto bad;
		while (i < len && is_digit(b[i]))
			i++;
	}
	if (i < len && (b[i] == 'e' || b[i] == 'E')) {
		integer = false;
		if (++i < len && (b[i] == '+' || b[i] == '-'))
			i++;
		if (i >= len || !is_digit(b[i]))
			goto bad;
		while (i < len && is_digit(b[i]))
			i++;
	}
	sc->i = i;
	if (integer && int_token_clamped(b + start, i - start)) {
		excerpt(ex, sizeof(ex), b + sc->key_off, sc->key_len);
		return resp_fail(out, err, RESP_MALFORMED,
				 "integer %.*s at byte %zu (in \"%s\") does not fit in 64 bits",
				 (int)(i - start > 40 ? 40 : i - start), b + start, start, ex);
	}
	return 0;
bad:
	excerpt(ex, sizeof(ex), b + start, len - start);
	return resp_fail(out, err, RESP_MALFORMED, "\"%s\" at byte %zu is not a JSON number",
			 ex, start);
}

/*
 * One pass over a body json-c has accepted, for what json-c accepts or alters
 * without a word but the database must never see:
 *  - a raw NUL byte, or UTF-8 PostgreSQL rejects (see utf8_len());
 *  - NaN, Infinity and numbers such as "1." (json-c takes them even in strict
 *    mode; jsonb does not);
 *  - integers json-c clamps (int_token_clamped());
 *  - an object key holding \u0000, which json-c cuts at the NUL.
 * It also counts object members: json-c keeps only the last of repeated keys,
 * so a tree with fewer members than the text has lost one (response_parse()).
 */
static int body_scan(const char *b, size_t len, size_t *n_members, struct api_response *out,
		     struct etl_error *err)
{
	struct scan sc = {b, len, 0, 0, 0, 0, 0, 0};
	char ex[EXCERPT_MAX + 8];
	size_t start;
	int rc;

	while (sc.i < len) {
		char c = b[sc.i];

		if (c == '"') {
			if ((rc = scan_string(&sc, out, err)) != 0)
				return rc;
		} else if (c == ':') {
			sc.members++;
			sc.key_off = sc.str_off;
			sc.key_len = sc.str_len;
			sc.i++;
		} else if (c == '-' || is_digit(c)) {
			if ((rc = scan_number(&sc, out, err)) != 0)
				return rc;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			/* true, false, null; json-c also takes NaN and Infinity */
			for (start = sc.i; sc.i < len && (b[sc.i] | 0x20) >= 'a' &&
					   (b[sc.i] | 0x20) <= 'z';
			     sc.i++)
				;
			if (!((sc.i - start == 4 && memcmp(b + start, "true", 4) == 0) ||
			      (sc.i - start == 4 && memcmp(b + start, "null", 4) == 0) ||
			      (sc.i - start == 5 && memcmp(b + start, "false", 5) == 0))) {
				excerpt(ex, sizeof(ex), b + start, sc.i - start);
				return resp_fail(out, err, RESP_MALFORMED,
						 "\"%s\" at byte %zu is not JSON", ex, start);
			}
		} else if (c == '\0') {
			return resp_fail(out, err, RESP_MALFORMED, "NUL byte at byte %zu", sc.i);
		} else {
			sc.i++;
		}
	}
	*n_members = sc.members;
	return 0;
}

/*
 * Object members in the parsed tree below v, leaving out the subtree `skip`.
 * Depth is bounded by PARSE_MAX_DEPTH.
 */
static size_t tree_members(json_object *v, const json_object *skip)
{
	size_t n = 0, i, len;

	if (v == skip)
		return 0;
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val) {
			(void)key;
			n += 1 + tree_members(val, skip);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		len = json_object_array_length(v);
		for (i = 0; i < len; i++)
			n += tree_members(json_object_array_get_idx(v, i), skip);
	}
	return n;
}

/* The tokenizer failed: say how, for a person who has the body in a log. */
static int parse_error(const char *body, size_t len, struct json_tokener *tok,
		       enum json_tokener_error jerr, bool at_end, struct api_response *out,
		       struct etl_error *err)
{
	char ex[EXCERPT_MAX + 8];
	size_t i, at = json_tokener_get_parse_end(tok);

	for (i = 0; i < len && is_ws(body[i]); i++)
		;
	if (i == len)
		return resp_fail(out, err, RESP_MALFORMED, "empty body");
	if (at_end)
		return resp_fail(out, err, RESP_MALFORMED,
				 "truncated: the JSON ends early, after %zu bytes",
				 len);
	if (jerr == json_tokener_error_depth)
		return resp_fail(out, err, RESP_MALFORMED,
				 "JSON nested deeper than %d levels at byte %zu",
				 PARSE_MAX_DEPTH, at);
	excerpt(ex, sizeof(ex), body + i, len - i);
	return resp_fail(out, err, RESP_MALFORMED,
			 "not JSON: %s at byte %zu; the body starts \"%s\"%s",
			 json_tokener_error_desc(jerr), at, ex,
			 body[i] == '<' ? "\nhint: an HTML page comes from a proxy or the gateway, "
					  "not from the API"
					: "");
}

/*
 * Parses the body into out->root and counts its object members in *members;
 * the envelope is not looked at yet.
 */
static int parse_json(const char *body, size_t len, size_t *members, struct api_response *out,
		      struct etl_error *err)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	size_t end;
	int rc;

	if (len >= INT32_MAX)
		return resp_fail(out, err, RESP_MALFORMED,
				 "body of %zu bytes is too large", len);
	tok = json_tokener_new_ex(PARSE_MAX_DEPTH);
	if (!tok) {
		fputs("intersect-etl: out of memory creating a JSON tokener\n", stderr);
		abort();
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	out->root = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/* a lone NUL tells json-c the input ended: a top-level scalar
		   completes, anything else fails as truncated */
		out->root = json_tokener_parse_ex(tok, "", 1);
		if ((jerr = json_tokener_get_error(tok)) != json_tokener_success) {
			rc = parse_error(body, len, tok, jerr, true, out, err);
			goto done;
		}
	} else if (jerr != json_tokener_success) {
		rc = parse_error(body, len, tok, jerr, false, out, err);
		goto done;
	} else {
		/* strict mode refuses trailing data itself; this is belt and braces */
		for (end = json_tokener_get_parse_end(tok); end < len && is_ws(body[end]); end++)
			;
		if (end < len) {
			rc = resp_fail(out, err, RESP_MALFORMED,
				       "data after the JSON value at byte %zu", end);
			goto done;
		}
	}
	/* out->root is NULL here for a body of JSON null */
	rc = body_scan(body, len, members, out, err);
done:
	json_tokener_free(tok);
	return rc;
}

/*
 * Envelope accessors. Each takes the member key of obj at path (for the
 * message), treats JSON null like an absent member, and fails RESP_MALFORMED
 * on a value of the wrong type.
 */
static int env_int(json_object *obj, const char *path, const char *key, long long lo,
		   long long hi, long long *val, bool *found, struct api_response *out,
		   struct etl_error *err)
{
	json_object *v = member(obj, key);
	long long x;

	*found = false;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected an integer, got %s", path, key,
				 type_name(v));
	if (!int_exact(v, &x) || x < lo || x > hi)
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: %s is out of range", path, key,
				 json_object_to_json_string_ext(v, JSON_FLAGS));
	*val = x;
	*found = true;
	return 0;
}

static int env_str(json_object *obj, const char *path, const char *key, const char **val,
		   struct api_response *out, struct etl_error *err)
{
	json_object *v = member(obj, key);

	*val = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a string, got %s", path, key,
				 type_name(v));
	*val = json_object_get_string(v);
	return 0;
}

static int env_num(json_object *obj, const char *path, const char *key, double *val,
		   struct api_response *out, struct etl_error *err)
{
	json_object *v = member(obj, key);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a number, got %s", path, key,
				 type_name(v));
	*val = json_object_get_double(v);
	return 0;
}

/* A non-empty array's first element, which must be an object. */
static int env_first(json_object *obj, const char *path, const char *key, json_object **first,
		     struct api_response *out, struct etl_error *err)
{
	json_object *v = member(obj, key);

	if (!v || !json_object_is_type(v, json_type_array))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a non-empty array, got %s", path,
				 key, type_name(v));
	if (json_object_array_length(v) == 0)
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s: expected a non-empty array, got an empty one",
				 path, key);
	*first = json_object_array_get_idx(v, 0);
	if (!json_object_is_type(*first, json_type_object))
		return resp_fail(out, err, RESP_MALFORMED,
				 "%s%s[0]: expected an object, got %s", path, key,
				 type_name(*first));
	return 0;
}

/*
 * The gateway's own {"error": {...}}: an error whatever its fields hold, so
 * they are read leniently and only for the message.
 */
static int gateway_error(json_object *e, struct api_response *out, struct etl_error *err)
{
	json_object *code, *type, *msg, *rid;
	const char *type_s = "", *rid_s = NULL;
	char code_s[64] = "";

	if (json_object_is_type(e, json_type_string)) {
		out->status_message = json_object_get_string(e);
		return resp_fail(out, err, RESP_GATEWAY, "API gateway error: %s",
				 out->status_message);
	}
	if (!json_object_is_type(e, json_type_object))
		return resp_fail(out, err, RESP_MALFORMED,
				 "error: expected an object, got %s", type_name(e));
	code = member(e, "code");
	type = member(e, "type");
	msg = member(e, "message");
	rid = member(e, "request_id");
	if (json_object_is_type(msg, json_type_string))
		out->status_message = json_object_get_string(msg);
	if (json_object_is_type(code, json_type_int) || json_object_is_type(code, json_type_string))
		snprintf(code_s, sizeof(code_s), " %s", json_object_get_string(code));
	if (json_object_is_type(type, json_type_string))
		type_s = json_object_get_string(type);
	if (json_object_is_type(rid, json_type_string))
		rid_s = json_object_get_string(rid);
	return resp_fail(out, err, RESP_GATEWAY, "API gateway error%s%s%s: %s%s%s%s", code_s,
			 *type_s ? " " : "", type_s,
			 out->status_message ? out->status_message : "(no message)",
			 rid_s ? " (request_id " : "", rid_s ? rid_s : "", rid_s ? ")" : "");
}

/*
 * The envelope checks, in the order the API reports failure. *added says
 * whether an "items" member was added to result[0] (see below).
 */
static int envelope(struct api_response *out, bool *added, struct etl_error *err)
{
	json_object *root = out->root, *e, *task, *res0, *items;
	const char *top_msg, *msg;
	long long x, tasks_error = 0, items_count = 0;
	bool found, have_items_count;
	int rc;

	if (!json_object_is_type(root, json_type_object))
		return resp_fail(out, err, RESP_MALFORMED,
				 "expected a JSON object, got %s", type_name(root));

	if ((e = member(root, "error")))
		return gateway_error(e, out, err);

	if ((rc = env_num(root, "", "cost", &out->cost, out, err)) ||
	    (rc = env_str(root, "", "status_message", &top_msg, out, err)) ||
	    (rc = env_int(root, "", "status_code", INT32_MIN, INT32_MAX, &x, &found, out, err)))
		return rc;
	out->status_message = top_msg;
	if (!found)
		return resp_fail(out, err, RESP_MALFORMED, "status_code: missing");
	out->status_code = (int)x;
	if (x != STATUS_OK)
		return resp_fail(out, err, RESP_API_STATUS, "API error %d: %s", out->status_code,
				 top_msg ? top_msg : "(no message)");
	if ((rc = env_int(root, "", "tasks_error", 0, INT32_MAX, &tasks_error, &found, out, err)))
		return rc;

	if ((rc = env_first(root, "", "tasks", &task, out, err)) ||
	    (rc = env_str(task, "tasks[0].", "id", &out->task_id, out, err)) ||
	    (rc = env_str(task, "tasks[0].", "status_message", &msg, out, err)) ||
	    (rc = env_num(task, "tasks[0].", "cost", &out->cost, out, err)) ||
	    (rc = env_int(task, "tasks[0].", "status_code", INT32_MIN, INT32_MAX, &x, &found, out,
			  err)))
		return rc;
	if (msg)
		out->status_message = msg;
	if (!found)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].status_code: missing");
	out->task_status = (int)x;
	if (x != STATUS_OK)
		return resp_fail(out, err, RESP_TASK_STATUS, "API task error %d: %s",
				 out->task_status, msg ? msg : "(no message)");
	if (tasks_error > 0)
		return resp_fail(out, err, RESP_TASK_STATUS,
				 "API task error: tasks_error is %lld although tasks[0] has "
				 "status %d",
				 tasks_error, out->task_status);

	if (!member(task, "result"))
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result is null although the task's "
				 "status is %d",
				 out->task_status);
	if ((rc = env_first(task, "tasks[0].", "result", &res0, out, err)) ||
	    (rc = env_int(res0, "tasks[0].result[0].", "total_count", 0, INT64_MAX,
			  &out->total_count, &found, out, err)))
		return rc;
	if (!found)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result[0].total_count: missing");
	if ((rc = env_int(res0, "tasks[0].result[0].", "items_count", 0, INT64_MAX, &items_count,
			  &have_items_count, out, err)))
		return rc;
	if (!(items = member(res0, "items"))) {
		/* "items": null comes with total_count 0; an empty array owned by
		   root spares every reader a NULL check */
		*added = !json_object_object_get_ex(res0, "items", NULL);
		items = json_object_new_array();
		json_object_object_add(res0, "items", items);
	} else if (!json_object_is_type(items, json_type_array)) {
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result[0].items: expected an array, got %s",
				 type_name(items));
	}
	out->items = items;
	out->n_items = json_object_array_length(items);
	if (have_items_count && (unsigned long long)items_count != out->n_items)
		return resp_fail(out, err, RESP_MALFORMED,
				 "tasks[0].result[0].items_count is %lld but items "
				 "holds %zu",
				 items_count, out->n_items);
	out->error = RESP_OK;
	return 0;
}

int response_parse(const char *body, size_t len, struct api_response *out,
		   struct etl_error *err)
{
	size_t members = 0, tree;
	bool added = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = parse_json(body ? body : "", body ? len : 0, &members, out, err)) != 0)
		return rc;
	rc = envelope(out, &added, err);
	/*
	 * Repeated keys: json-c keeps the last value, so the tree holds fewer
	 * members than the body. An error response is small and is counted
	 * whole here (it might hold two status codes). A page's items are
	 * counted by transform_page() as it walks them anyway, which spares a
	 * second pass over the largest part of the tree.
	 */
	tree = tree_members(out->root, rc ? NULL : out->items) - (added ? 1 : 0);
	if (rc) {
		if (tree != members)
			return resp_fail(out, err, RESP_MALFORMED,
					 "an object repeats a key; json-c "
					 "would keep only the last value");
		return rc;
	}
	if (tree > members) /* cannot happen: the tree comes from the text */
		return resp_fail(out, err, RESP_MALFORMED,
				 "%zu object members parsed from %zu", tree,
				 members);
	out->item_members = members - tree;
	return 0;
}

void response_free(struct api_response *resp)
{
	if (!resp)
		return;
	json_object_put(resp->root);
	memset(resp, 0, sizeof(*resp));
}

/* ------------------------------------------------------------------------ */
/* Writing COPY text                                                         */
/* ------------------------------------------------------------------------ */

/*
 * The writers below append straight into the strbuf's memory, reserving the
 * worst case for a chunk of input at a time so that a 10 MB value does not
 * reserve 70 MB. Each leaves sb NUL-terminated like the sb_* functions do.
 */
#define CHUNK 4096

/* sb_putc() and sb_append() inline: the hot loop writes ~40 pieces a row. */
static inline void out_c(struct strbuf *sb, char c)
{
	if (sb->cap - sb->len < 2)
		sb_reserve(sb, 1);
	sb->data[sb->len++] = c;
	sb->data[sb->len] = '\0';
}

static inline void out_n(struct strbuf *sb, const char *s, size_t n)
{
	if (sb->cap - sb->len <= n)
		sb_reserve(sb, n);
	memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

/* COPY text escapes: what a byte becomes inside a COPY text field. */
static const char copy_esc[256] = {
	['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r',
	[0] = '0', /* not an escape: marks the NUL text cannot hold */
};

/*
 * s[0..n) as a COPY text field. False if s holds a NUL, which text cannot;
 * what was written by then is the caller's to cut, as on any row error.
 */
static bool put_text(struct strbuf *sb, const char *s, size_t n)
{
	size_t chunk, i;
	char *p;

	while (n) {
		chunk = n < CHUNK ? n : CHUNK;
		if (sb->cap - sb->len <= 2 * chunk)
			sb_reserve(sb, 2 * chunk);
		p = sb->data + sb->len;
		for (i = 0; i < chunk; i++) {
			unsigned char c = (unsigned char)s[i];

			if (!copy_esc[c]) {
				*p++ = (char)c;
			} else if (c == 0) {
				sb->len = (size_t)(p - sb->data);
				*p = '\0';
				return false;
			} else {
				*p++ = '\\';
				*p++ = copy_esc[c];
			}
		}
		sb->len = (size_t)(p - sb->data);
		*p = '\0';
		s += chunk;
		n -= chunk;
	}
	return true;
}

/*
 * s[0..n) as a JSON string, written as COPY text: the JSON escapes of
 * json_object_to_json_string_ext(JSON_FLAGS), then every backslash doubled
 * for COPY (no raw tab, newline or CR is left after JSON escaping). False if
 * s holds a NUL: jsonb rejects \u0000.
 */
static bool put_json_str(struct strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t chunk, i;
	char *p;

	out_c(sb, '"');
	while (n) {
		chunk = n < CHUNK ? n : CHUNK;
		if (sb->cap - sb->len <= 7 * chunk + 1)
			sb_reserve(sb, 7 * chunk + 1);
		p = sb->data + sb->len;
		for (i = 0; i < chunk; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c >= 0x20 && c != '"' && c != '\\') {
				*p++ = (char)c;
				continue;
			}
			if (c == 0) {
				sb->len = (size_t)(p - sb->data);
				*p = '\0';
				return false;
			}
			*p++ = '\\';
			*p++ = '\\';
			switch (c) {
			case '"': *p++ = '"'; break;
			case '\\': *p++ = '\\'; *p++ = '\\'; break;
			case '\b': *p++ = 'b'; break;
			case '\f': *p++ = 'f'; break;
			case '\n': *p++ = 'n'; break;
			case '\r': *p++ = 'r'; break;
			case '\t': *p++ = 't'; break;
			default:
				memcpy(p, "u00", 3);
				p += 3;
				*p++ = hex[c >> 4];
				*p++ = hex[c & 0xf];
				break;
			}
		}
		sb->len = (size_t)(p - sb->data);
		s += chunk;
		n -= chunk;
	}
	out_c(sb, '"');
	return true;
}

static void put_u64(struct strbuf *sb, unsigned long long v, bool neg)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		*--p = '-';
	out_n(sb, p, (size_t)(buf + sizeof(buf) - p));
}

static void put_i64(struct strbuf *sb, long long v)
{
	/* negate in unsigned arithmetic: -LLONG_MIN overflows a long long */
	put_u64(sb, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, v < 0);
}

static void put_lit(struct strbuf *sb, const char *s)
{
	out_n(sb, s, strlen(s));
}

/*
 * Any JSON value as JSON text in COPY text, for `extra`. Integers are
 * printed from their exact value, doubles from the token json-c kept (which
 * body_scan() checked is a JSON number). False if a string in v holds a NUL.
 */
static bool put_json(struct strbuf *sb, json_object *v)
{
	size_t i, len;
	bool first = true;

	switch (json_object_get_type(v)) {
	case json_type_null:
		put_lit(sb, "null");
		return true;
	case json_type_boolean:
		put_lit(sb, json_object_get_boolean(v) ? "true" : "false");
		return true;
	case json_type_int: {
		long long x;

		if (int_exact(v, &x))
			put_i64(sb, x);
		else
			put_u64(sb, (unsigned long long)json_object_get_uint64(v), false);
		return true;
	}
	case json_type_double:
		put_lit(sb, json_object_to_json_string_ext(v, JSON_FLAGS));
		return true;
	case json_type_string:
		return put_json_str(sb, json_object_get_string(v),
				    (size_t)json_object_get_string_len(v));
	case json_type_array:
		out_c(sb, '[');
		len = json_object_array_length(v);
		for (i = 0; i < len; i++) {
			if (i)
				out_c(sb, ',');
			if (!put_json(sb, json_object_array_get_idx(v, i)))
				return false;
		}
		out_c(sb, ']');
		return true;
	case json_type_object: {
		out_c(sb, '{');
		json_object_object_foreach(v, key, val) {
			if (!first)
				out_c(sb, ',');
			first = false;
			if (!put_json_str(sb, key, strlen(key)))
				return false;
			out_c(sb, ':');
			if (!put_json(sb, val))
				return false;
		}
		out_c(sb, '}');
		return true;
	}
	}
	return false;
}

/* ------------------------------------------------------------------------ */
/* transform_page                                                            */
/* ------------------------------------------------------------------------ */

enum field_kind { FK_TEXT, FK_INT4, FK_INT8, FK_TIME, FK_MAP };

/*
 * The per-target fields this program knows, `target` first (it is the
 * referring_domain column, written early) and the rest in the column order
 * of TRANSFORM_COLUMNS, so put_row() can write them in a loop.
 */
static const struct field_def {
	const char *name;     /* the API's name, which is also the column's */
	enum field_kind kind; /* how it is checked and written */
} fields[] = {
#define F(name, kind) { name, kind }
	F("target", FK_TEXT),
	F("type", FK_TEXT),
	F("rank", FK_INT4),
	F("backlinks", FK_INT8),
	F("first_seen", FK_TIME),
	F("lost_date", FK_TIME),
	F("backlinks_spam_score", FK_INT4),
	F("broken_backlinks", FK_INT8),
	F("broken_pages", FK_INT8),
	F("referring_domains", FK_INT8),
	F("referring_domains_nofollow", FK_INT8),
	F("referring_main_domains", FK_INT8),
	F("referring_main_domains_nofollow", FK_INT8),
	F("referring_ips", FK_INT8),
	F("referring_subnets", FK_INT8),
	F("referring_pages", FK_INT8),
	F("referring_pages_nofollow", FK_INT8),
	F("referring_links_tld", FK_MAP),
	F("referring_links_types", FK_MAP),
	F("referring_links_attributes", FK_MAP),
	F("referring_links_platform_types", FK_MAP),
	F("referring_links_semantic_locations", FK_MAP),
	F("referring_links_countries", FK_MAP),
#undef F
};
#define NFIELDS ETL_ARRAY_LEN(fields)
/* 7 columns before type, the fields after target, then extra and run_id */
_Static_assert(7 + (NFIELDS - 1) + 2 == TRANSFORM_NCOLUMNS,
	       "fields[] out of step with TRANSFORM_COLUMNS");

/*
 * The fields[] index of a per-target key, or -1. The API sends the fields in
 * nearly the order of fields[], so *hint (where the last one was found, +1)
 * makes the first comparison a hit for almost every key of a row.
 */
static int field_lookup(const char *key, size_t *hint)
{
	size_t i = *hint < NFIELDS ? *hint : 0;

	if (strcmp(fields[i].name, key) != 0) {
		for (i = 0; i < NFIELDS; i++)
			if (fields[i].name[0] == key[0] && strcmp(fields[i].name, key) == 0)
				break;
		if (i == NFIELDS)
			return -1;
	}
	*hint = i + 1;
	return (int)i;
}

/* What one item holds, found in one pass over its keys (item_scan()). */
struct item_info {
	size_t index;                    /* in the page's items */
	long long position;              /* ctx->offset + index */
	json_object *item;               /* borrowed: the item */
	json_object *summary;            /* borrowed: "summary", or NULL */
	json_object *by_key[MAX_TARGET_KEYS + 1]; /* borrowed: per-target objects */
	bool has_count;                  /* intersections_count given */
	long long count;
	size_t n_item_unknown;           /* item keys that go to extra._item */
	size_t n_summary_unknown;        /* summary keys that go to extra._summary */
	size_t members;                  /* object members seen outside per-target objects */
};

/* "item 3 (position 1003), target key "2", rank: <detail>". key 0 = none. */
static int item_fail(struct etl_error *err, const struct item_info *it, int key,
		     const char *field, const char *fmt, ...) ETL_PRINTF(5, 6);

static int item_fail(struct etl_error *err, const struct item_info *it, int key,
		     const char *field, const char *fmt, ...)
{
	char detail[1024], where[64] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (key)
		snprintf(where, sizeof(where), ", target key \"%d\"", key);
	return etl_fail(err, ETL_EFAIL, "malformed item %zu (position %lld)%s%s%s: %s", it->index,
			it->position, where, field ? ", " : "", field ? field : "", detail);
}

enum int_problem { INT_OK, INT_TYPE, INT_FRACTION, INT_RANGE };

/*
 * v (not JSON null) as an integer within [lo, hi]: a JSON integer, or a
 * number with an exact integral value (2.0, 1e3), which is an integer
 * written oddly. Strings, booleans, fractions and anything out of range are
 * refused, never coerced or clamped.
 */
static enum int_problem int_value(json_object *v, long long lo, long long hi, long long *out)
{
	double d;

	switch (json_object_get_type(v)) {
	case json_type_int:
		if (!int_exact(v, out) || *out < lo || *out > hi)
			return INT_RANGE;
		return INT_OK;
	case json_type_double:
		d = json_object_get_double(v);
		if (isfinite(d) && d != floor(d))
			return INT_FRACTION;
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
			return INT_RANGE;
		*out = (long long)d;
		return *out < lo || *out > hi ? INT_RANGE : INT_OK;
	default:
		return INT_TYPE;
	}
}

static int int_fail(struct etl_error *err, const struct item_info *it, int key,
		    const char *field, json_object *v, enum int_problem p, bool int4)
{
	char d[EXCERPT_MAX + 32];

	describe(v, d, sizeof(d));
	switch (p) {
	case INT_FRACTION:
		return item_fail(err, it, key, field, "expected an integer, got a fraction: %s", d);
	case INT_RANGE:
		return item_fail(err, it, key, field, "%s is out of range for a %s integer", d,
				 int4 ? "32-bit" : "64-bit");
	default:
		return item_fail(err, it, key, field, "expected an integer or null, got %s", d);
	}
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n digits at s as a number within [lo, hi], or -1. */
static int digits(const char *s, int n, int lo, int hi)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v >= lo && v <= hi ? v : -1;
}

/*
 * "YYYY-MM-DD HH:MM:SS", then optionally a zone: an optional space and "Z",
 * "+HH" or "+HH:MM" (or '-'). The API writes "2021-08-27 20:28:54 +00:00".
 * Years 1970..2100 are the plausible ones for a crawler's dates.
 */
static bool valid_time(const char *s, size_t n)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;
	size_t i;

	if (n < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
		return false;
	if ((y = digits(s, 4, 1970, 2100)) < 0 || (m = digits(s + 5, 2, 1, 12)) < 0 ||
	    (d = digits(s + 8, 2, 1, 31)) < 0 || d > mdays[m - 1] + (m == 2 && leap(y)) ||
	    digits(s + 11, 2, 0, 23) < 0 || digits(s + 14, 2, 0, 59) < 0 ||
	    digits(s + 17, 2, 0, 59) < 0)
		return false;
	i = 19;
	if (i == n)
		return true;
	if (s[i] == ' ')
		i++;
	if (n - i == 1 && s[i] == 'Z')
		return true;
	if (n - i < 3 || (s[i] != '+' && s[i] != '-') || digits(s + i + 1, 2, 0, 14) < 0)
		return false;
	i += 3;
	if (i == n)
		return true;
	return n - i == 3 && s[i] == ':' && digits(s + i + 1, 2, 0, 59) >= 0;
}

/*
 * A target key: "1".."20" -> 1..20; a string of digits that is not one of
 * those (e.g. "0", "21", "01") -> -1; anything else -> 0.
 */
static int target_key(const char *k)
{
	size_t i;
	int v = 0;

	if (!is_digit(k[0]))
		return 0;
	for (i = 0; k[i]; i++) {
		if (!is_digit(k[i]))
			return 0;
		if (i < 3)
			v = v * 10 + (k[i] - '0');
	}
	if (k[0] == '0' || i > 2 || v > MAX_TARGET_KEYS)
		return -1;
	return v;
}

static bool item_key_known(const char *k)
{
	return strcmp(k, "domain_intersection") == 0 || strcmp(k, "summary") == 0 ||
	       strcmp(k, "intersections_count") == 0;
}

/* The intersections_count at v (item or summary level) as an int4, or NULL. */
static int count_value(json_object *v, const char *field, struct item_info *it,
		       long long *out, bool *found, struct etl_error *err)
{
	enum int_problem p;

	*found = false;
	if (!v)
		return 0;
	if ((p = int_value(v, INT32_MIN, INT32_MAX, out)) != INT_OK)
		return int_fail(err, it, 0, field, v, p, true);
	*found = true;
	return 0;
}

#define NOT_A_KEY "key \"%s\" is not a target key (this set has %zu targets)"

/*
 * One pass over an item's keys: finds the per-target objects of either
 * shape, the summary and the intersections count, and counts the keys that
 * will go to extra.
 */
static int item_scan(struct item_info *it, size_t n_targets, struct etl_error *err)
{
	json_object *di = NULL, *sum_count = NULL, *item_count = NULL;
	bool have_di = false, have_legacy = false, f1, f2;
	long long c1 = 0, c2 = 0;
	int k, n_rows = 0, rc;

	if (!json_object_is_type(it->item, json_type_object))
		return item_fail(err, it, 0, NULL, "expected an object, got %s",
				 type_name(it->item));
	it->members = (size_t)json_object_object_length(it->item);
	json_object_object_foreach(it->item, key, val) {
		if (strcmp(key, "domain_intersection") == 0) {
			have_di = true;
			di = val;
		} else if (strcmp(key, "summary") == 0) {
			it->summary = val;
		} else if (strcmp(key, "intersections_count") == 0) {
			item_count = val;
		} else if ((k = target_key(key)) == 0) {
			it->n_item_unknown++;
			it->members += tree_members(val, NULL);
		} else {
			/* the pre-2023 shape: the item's own "1".."20" */
			have_legacy = true;
			if (k < 0 || (size_t)k > n_targets)
				return item_fail(err, it, 0, NULL, NOT_A_KEY, key, n_targets);
			it->by_key[k] = val; /* null: no data for this target */
		}
	}
	if (have_di && have_legacy)
		return item_fail(err, it, 0, NULL,
				 "both domain_intersection and target keys at the item's top "
				 "level");
	if (di) {
		if (!json_object_is_type(di, json_type_object))
			return item_fail(err, it, 0, "domain_intersection",
					 "expected an object, got %s", type_name(di));
		it->members += (size_t)json_object_object_length(di);
		json_object_object_foreach(di, dkey, dval) {
			k = target_key(dkey);
			if (k <= 0 || (size_t)k > n_targets)
				return item_fail(err, it, 0, "domain_intersection", NOT_A_KEY, dkey,
						 n_targets);
			it->by_key[k] = dval;
		}
	}
	if (it->summary) {
		if (!json_object_is_type(it->summary, json_type_object))
			return item_fail(err, it, 0, "summary",
					 "expected an object or null, got %s",
					 type_name(it->summary));
		it->members += (size_t)json_object_object_length(it->summary);
		json_object_object_foreach(it->summary, skey, sval) {
			if (strcmp(skey, "intersections_count") == 0) {
				sum_count = sval;
			} else {
				it->n_summary_unknown++;
				it->members += tree_members(sval, NULL);
			}
		}
	}
	if ((rc = count_value(sum_count, "summary.intersections_count", it, &c1, &f1, err)) ||
	    (rc = count_value(item_count, "intersections_count", it, &c2, &f2, err)))
		return rc;
	if (f1 && f2 && c1 != c2)
		return item_fail(err, it, 0, NULL,
				 "summary.intersections_count %lld and intersections_count %lld "
				 "differ",
				 c1, c2);
	it->has_count = f1 || f2;
	it->count = f1 ? c1 : c2;
	for (k = 1; k <= MAX_TARGET_KEYS; k++)
		n_rows += it->by_key[k] != NULL;
	if (!n_rows)
		return item_fail(err, it, 0, NULL,
				 "no target data: neither domain_intersection nor keys "
				 "\"1\"..\"%d\"",
				 MAX_TARGET_KEYS);
	return 0;
}

/* A breakdown map: an object of counts (or null) as jsonb text, or \N. */
static int put_map(struct strbuf *sb, json_object *m, const char *field,
		   const struct item_info *it, int key, size_t *members, struct etl_error *err)
{
	char where[EXCERPT_MAX + 80], ex[EXCERPT_MAX + 8];
	enum int_problem p;
	long long x;
	bool first = true;

	if (!m) {
		out_n(sb, "\\N", 2);
		return 0;
	}
	if (!json_object_is_type(m, json_type_object))
		return item_fail(err, it, key, field, "expected an object or null, got %s",
				 type_name(m));
	*members += (size_t)json_object_object_length(m);
	out_c(sb, '{');
	json_object_object_foreach(m, mkey, mval) {
		if (!first)
			out_c(sb, ',');
		first = false;
		/* body_scan() has made sure no key holds a NUL */
		(void)put_json_str(sb, mkey, strlen(mkey));
		out_c(sb, ':');
		if (!mval) {
			put_lit(sb, "null");
		} else if ((p = int_value(mval, INT64_MIN, INT64_MAX, &x)) == INT_OK) {
			put_i64(sb, x);
		} else {
			excerpt(ex, sizeof(ex), mkey, strlen(mkey));
			snprintf(where, sizeof(where), "%s[\"%s\"]", field, ex);
			return int_fail(err, it, key, where, mval, p, false);
		}
	}
	out_c(sb, '}');
	return 0;
}

#define NUL_IN_JSONB "a string%s holds \\u0000, which jsonb cannot store"

/*
 * `extra`: the per-target object's unknown fields, then the item's unknown
 * keys under "_item" and the summary's under "_summary"; \N when there are
 * none. Rare, so it re-walks the objects rather than remembering the keys.
 */
static int put_extra(struct strbuf *sb, json_object *obj, size_t n_unknown,
		     const struct item_info *it, int key, struct etl_error *err)
{
	bool first = true, first_inner;

	if (!n_unknown && !it->n_item_unknown && !it->n_summary_unknown) {
		out_n(sb, "\\N", 2);
		return 0;
	}
	out_c(sb, '{');
	if (n_unknown) {
		size_t hint = 0;

		json_object_object_foreach(obj, k, v) {
			if (field_lookup(k, &hint) >= 0)
				continue;
			if (strcmp(k, "_item") == 0 || strcmp(k, "_summary") == 0)
				return item_fail(err, it, key, k,
						 "a field of this name would be confused with "
						 "extra's own \"%s\"",
						 k);
			if (!first)
				out_c(sb, ',');
			first = false;
			(void)put_json_str(sb, k, strlen(k));
			out_c(sb, ':');
			if (!put_json(sb, v))
				return item_fail(err, it, key, k, NUL_IN_JSONB, "");
		}
	}
	if (it->n_item_unknown) {
		if (!first)
			out_c(sb, ',');
		first = false;
		put_lit(sb, "\"_item\":{");
		first_inner = true;
		json_object_object_foreach(it->item, ik, iv) {
			if (item_key_known(ik) || target_key(ik) != 0)
				continue;
			if (!first_inner)
				out_c(sb, ',');
			first_inner = false;
			(void)put_json_str(sb, ik, strlen(ik));
			out_c(sb, ':');
			if (!put_json(sb, iv))
				return item_fail(err, it, 0, ik, NUL_IN_JSONB, "");
		}
		out_c(sb, '}');
	}
	if (it->n_summary_unknown) {
		if (!first)
			out_c(sb, ',');
		put_lit(sb, "\"_summary\":{");
		first_inner = true;
		json_object_object_foreach(it->summary, sk, sv) {
			if (strcmp(sk, "intersections_count") == 0)
				continue;
			if (!first_inner)
				out_c(sb, ',');
			first_inner = false;
			(void)put_json_str(sb, sk, strlen(sk));
			out_c(sb, ':');
			if (!put_json(sb, sv))
				return item_fail(err, it, 0, sk, NUL_IN_JSONB, " in summary");
		}
		out_c(sb, '}');
	}
	out_c(sb, '}');
	return 0;
}

/* Text that stays the same for every row of a page, already COPY-escaped. */
struct page_fmt {
	struct strbuf prefix;  /* "snapshot_date\ttarget_set_id\t" */
	struct strbuf suffix;  /* "\trun_id\n" */
	const struct transform_ctx *ctx;
};

/*
 * Appends the row of target key `key` of an item. Integer fields take a JSON
 * integer, or a number with an exact integral value, within the column's
 * range (int4 for rank and backlinks_spam_score, int8 for the rest); null and
 * absent are both SQL NULL.
 */
static int put_row(struct strbuf *sb, const struct page_fmt *pf, const struct item_info *it,
		   int key, json_object *obj, size_t *members, struct etl_error *err)
{
	json_object *f[NFIELDS] = {0}, *v;
	const char *target = pf->ctx->targets[key - 1];
	char d[EXCERPT_MAX + 32];
	size_t i, n_unknown = 0, hint = 0;
	enum int_problem p;
	long long x;
	int id;

	if (!json_object_is_type(obj, json_type_object))
		return item_fail(err, it, key, NULL, "expected an object or null, got %s",
				 type_name(obj));
	*members += (size_t)json_object_object_length(obj);
	json_object_object_foreach(obj, k, val) {
		if ((id = field_lookup(k, &hint)) >= 0) {
			f[id] = val;
		} else {
			n_unknown++;
			*members += tree_members(val, NULL);
		}
	}
	v = f[0];
	if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
		describe(v, d, sizeof(d));
		return item_fail(err, it, key, "target",
				 "expected the referring domain, a non-empty string; got %s", d);
	}
	/* It is part of the primary key: a btree entry holds at most ~2.7 kB,
	 * and no domain name (253 characters, 4 bytes each at most) comes near. */
	if (json_object_get_string_len(v) > TRANSFORM_MAX_DOMAIN_BYTES)
		return item_fail(err, it, key, "target",
				 "the referring domain is %d bytes long; at most %d are accepted",
				 json_object_get_string_len(v), TRANSFORM_MAX_DOMAIN_BYTES);

	out_n(sb, pf->prefix.data, pf->prefix.len);
	if (!put_text(sb, json_object_get_string(v), (size_t)json_object_get_string_len(v)))
		return item_fail(err, it, key, "target", "holds \\u0000, which text cannot store");
	out_c(sb, '\t');
	put_i64(sb, key);
	out_c(sb, '\t');
	(void)put_text(sb, target, strlen(target));
	out_c(sb, '\t');
	put_i64(sb, it->position);
	out_c(sb, '\t');
	if (it->has_count)
		put_i64(sb, it->count);
	else
		out_n(sb, "\\N", 2);

	for (i = 1; i < NFIELDS; i++) {
		const char *name = fields[i].name;

		out_c(sb, '\t');
		v = f[i];
		if (!v && fields[i].kind != FK_MAP) {
			out_n(sb, "\\N", 2);
			continue;
		}
		switch (fields[i].kind) {
		case FK_TEXT:
			if (!json_object_is_type(v, json_type_string)) {
				describe(v, d, sizeof(d));
				return item_fail(err, it, key, name,
						 "expected a string or null, got %s", d);
			}
			if (!put_text(sb, json_object_get_string(v),
				      (size_t)json_object_get_string_len(v)))
				return item_fail(err, it, key, name,
						 "holds \\u0000, which text cannot store");
			break;
		case FK_INT4:
		case FK_INT8:
			if (fields[i].kind == FK_INT4)
				p = int_value(v, INT32_MIN, INT32_MAX, &x);
			else
				p = int_value(v, INT64_MIN, INT64_MAX, &x);
			if (p != INT_OK)
				return int_fail(err, it, key, name, v, p,
						fields[i].kind == FK_INT4);
			put_i64(sb, x);
			break;
		case FK_TIME:
			if (!json_object_is_type(v, json_type_string) ||
			    !valid_time(json_object_get_string(v),
					(size_t)json_object_get_string_len(v))) {
				describe(v, d, sizeof(d));
				return item_fail(err, it, key, name,
						 "expected a time \"YYYY-MM-DD HH:MM:SS "
						 "+HH:MM\" or null, got %s",
						 d);
			}
			/* validated: nothing in it needs escaping */
			out_n(sb, json_object_get_string(v),
				  (size_t)json_object_get_string_len(v));
			break;
		case FK_MAP:
			if (put_map(sb, v, name, it, key, members, err))
				return ETL_EFAIL;
			break;
		}
	}
	out_c(sb, '\t');
	if (put_extra(sb, obj, n_unknown, it, key, err))
		return ETL_EFAIL;
	out_n(sb, pf->suffix.data, pf->suffix.len);
	return 0;
}

static bool valid_date(const char *s)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	if ((y = digits(s, 4, 1, 9999)) < 0 || (m = digits(s + 5, 2, 1, 12)) < 0 ||
	    (d = digits(s + 8, 2, 1, 31)) < 0)
		return false;
	return d <= mdays[m - 1] + (m == 2 && leap(y));
}

/* The caller's half of the contract; a failure here is a bug upstream. */
static int check_ctx(const struct api_response *resp, const struct transform_ctx *ctx,
		     struct etl_error *err)
{
	size_t i;

	if (resp->error != RESP_OK || !resp->items)
		return etl_fail(err, ETL_EFAIL,
				"transform: the response was not parsed successfully");
	if (!ctx->snapshot_date || !valid_date(ctx->snapshot_date))
		return etl_fail(err, ETL_EFAIL,
				"transform: snapshot_date \"%s\" is not a YYYY-MM-DD date",
				ctx->snapshot_date ? ctx->snapshot_date : "(null)");
	if (!ctx->targets || ctx->n_targets < 1)
		return etl_fail(err, ETL_EFAIL, "transform: no targets given");
	for (i = 0; i < ctx->n_targets; i++)
		if (!ctx->targets[i] || !utf8_valid(ctx->targets[i], strlen(ctx->targets[i])))
			return etl_fail(err, ETL_EFAIL, "transform: target %zu is %s", i + 1,
					ctx->targets[i] ? "not valid UTF-8" : "missing");
	if (ctx->offset < 0 || ctx->limit < 1)
		return etl_fail(err, ETL_EFAIL, "transform: bad page offset %lld or limit %d",
				ctx->offset, ctx->limit);
	if (resp->n_items > (size_t)ctx->limit)
		return etl_fail(err, ETL_EFAIL,
				"malformed page: %zu items, but only %d were asked for",
				resp->n_items, ctx->limit);
	/* position is an int4 column */
	if (ctx->offset > INT32_MAX || (long long)resp->n_items > INT32_MAX - ctx->offset + 1)
		return etl_fail(err, ETL_EFAIL,
				"transform: offset %lld and %zu items reach past the position "
				"column's range",
				ctx->offset, resp->n_items);
	return 0;
}

void row_batch_init(struct row_batch *b)
{
	sb_init(&b->copy);
	b->n_rows = 0;
	b->n_items = 0;
}

void row_batch_reset(struct row_batch *b)
{
	sb_reset(&b->copy);
	b->n_rows = 0;
	b->n_items = 0;
}

void row_batch_free(struct row_batch *b)
{
	sb_free(&b->copy);
	b->n_rows = 0;
	b->n_items = 0;
}

int transform_page(const struct api_response *resp, const struct transform_ctx *ctx,
		   struct row_batch *out, struct etl_error *err)
{
	struct page_fmt pf;
	struct item_info it;
	size_t mark = out->copy.len, rows = 0, i, members = 0;
	size_t n_keys;
	int k, rc;

	if ((rc = check_ctx(resp, ctx, err)) != 0)
		return rc;
	pf.ctx = ctx;
	sb_init(&pf.prefix);
	sb_init(&pf.suffix);
	(void)put_text(&pf.prefix, ctx->snapshot_date, strlen(ctx->snapshot_date));
	sb_putc(&pf.prefix, '\t');
	put_i64(&pf.prefix, ctx->target_set_id);
	sb_putc(&pf.prefix, '\t');
	sb_putc(&pf.suffix, '\t');
	put_i64(&pf.suffix, ctx->run_id);
	sb_putc(&pf.suffix, '\n');

	n_keys = ctx->n_targets < MAX_TARGET_KEYS ? ctx->n_targets : MAX_TARGET_KEYS;
	for (i = 0; i < resp->n_items; i++) {
		memset(&it, 0, sizeof(it));
		it.index = i;
		it.position = ctx->offset + (long long)i;
		it.item = json_object_array_get_idx(resp->items, i);
		if ((rc = item_scan(&it, n_keys, err)) != 0)
			goto done;
		members += it.members;
		for (k = 1; k <= MAX_TARGET_KEYS; k++) {
			if (!it.by_key[k])
				continue;
			rc = put_row(&out->copy, &pf, &it, k, it.by_key[k], &members, err);
			if (rc != 0)
				goto done;
			rows++;
		}
	}
	/* see response_parse(): a repeated key leaves the tree short of members */
	if (members != resp->item_members) {
		rc = etl_fail(err, ETL_EFAIL,
			      "malformed page: an object repeats a key; json-c would keep only "
			      "the last value");
		goto done;
	}
	out->n_rows += rows;
	out->n_items += resp->n_items;

done:
	if (rc) {
		/* no partial page: cut the batch back to where this call began */
		out->copy.len = mark;
		if (out->copy.data)
			out->copy.data[mark] = '\0';
	}
	sb_free(&pf.prefix);
	sb_free(&pf.suffix);
	return rc;
}
