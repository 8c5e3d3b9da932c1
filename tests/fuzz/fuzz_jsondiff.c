/*
 * fuzz_jsondiff.c - differential libFuzzer harness: jsondoc.c against json-c.
 *
 * The hand-written parser reads every API body, so it is checked against an
 * independent one on any bytes: each input is parsed by jd_parse() and by
 * json-c's tokener in strict mode with UTF-8 validation, and the harness
 * aborts when they disagree, on whether the input is JSON or on what it
 * holds (types, strings byte for byte, integers exactly, other numbers as
 * the doubles json-c reads).
 *
 * jsondoc refuses some JSON on purpose, which json-c takes; those verdicts
 * are not disagreements, and each is recognised by its message: a repeated key, a raw control byte in
 * a string, a lone surrogate, \u0000 in a key, an integer past 64 bits, and
 * the caps on depth, values and members. json-c's strict mode has
 * laxities of its own, which jsondoc rightly refuses: numbers off RFC 8259's
 * grammar ("1.", "-.3", NaN), single-quoted object keys, and UTF-8 that is only shaped right (overlong
 * forms, encoded surrogates, past U+10FFFF). Anything else that one accepts and the other refuses is
 * a bug in one of them.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "jsondoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void disagree(const char *what, const char *detail)
{
	fprintf(stderr, "jsondoc and json-c disagree: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	abort();
}

/* A sequence at data[p] that has the shape of UTF-8 but is not RFC 3629's. */
static int lax_utf8(const uint8_t *data, size_t size, size_t p)
{
	size_t need, i;

	if (p >= size || data[p] < 0xC0 || data[p] > 0xF7)
		return 0;
	need = data[p] >= 0xF0 ? 3 : data[p] >= 0xE0 ? 2 : 1;
	for (i = 1; i <= need; i++)
		if (p + i >= size || (data[p + i] & 0xC0) != 0x80)
			return 0;
	return 1;
}

/* jd_parse()'s deliberate refusals of JSON that json-c accepts. */
static int deliberate(const char *msg, const uint8_t *data, size_t size)
{
	static const char *const refusals[] = {
		"an object repeats the key", "control character", "lone UTF-16 surrogate",
		"holds \\u0000", "does not fit in 64 bits", "nested deeper than",
		"JSON values at byte", "members at byte", "NUL byte",
	};
	const char *at;
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(refusals); i++)
		if (strstr(msg, refusals[i]))
			return 1;
	/* json-c's UTF-8 check counts continuation bytes only: it takes
	   overlong forms, UTF-16 surrogates and code points past U+10FFFF,
	   which RFC 3629 (and PostgreSQL) refuse */
	if ((at = strstr(msg, "invalid UTF-8 at byte ")) &&
	    lax_utf8(data, size, strtoul(at + 22, NULL, 10)))
		return 1;
	/* json-c's strict mode does not hold numbers to RFC 8259's grammar: it
	   takes "1.", "-.3" and more, so a number jsondoc refuses (a leading
	   zero among them) is not a disagreement; test_jsondoc's table holds
	   jsondoc to that grammar instead. At the very end, such a number
	   reads as cut short. */
	if (strstr(msg, "is not a JSON number"))
		return 1;
	/* nor single-quoted object keys ('key': ...), which it reads as
	   strings even in strict mode: jsondoc stops at the quote */
	if ((at = strstr(msg, "unexpected character at byte ")) &&
	    strtoul(at + 29, NULL, 10) < size && data[strtoul(at + 29, NULL, 10)] == '\'')
		return 1;
	/* nor does it refuse NaN and Infinity, in any case */
	if (strncasecmp(msg, "\"nan\"", 5) == 0 || strncasecmp(msg, "\"infinity\"", 10) == 0)
		return 1;
	return strstr(msg, "truncated") && size && strchr(".eE+-", data[size - 1]);
}

/* Compares jd's node v with json-c's o; aborts on any difference. */
static void compare(const struct jd_doc *d, size_t v, struct json_object *o)
{
	enum json_type t = json_object_get_type(o);
	size_t i, end, n;
	struct json_object *m;
	char detail[160];

	switch (jd_type(d, v)) {
	case JD_NULL:
		if (t != json_type_null)
			disagree("null", json_type_to_name(t));
		return;
	case JD_TRUE:
	case JD_FALSE:
		if (t != json_type_boolean ||
		    json_object_get_boolean(o) != (jd_type(d, v) == JD_TRUE))
			disagree("boolean", json_type_to_name(t));
		return;
	case JD_INT:
		if (t != json_type_int || json_object_get_int64(o) != jd_int(d, v)) {
			snprintf(detail, sizeof(detail), "%lld vs %s", (long long)jd_int(d, v),
				 json_object_to_json_string(o));
			disagree("integer", detail);
		}
		return;
	case JD_UINT:
		if (t != json_type_int || json_object_get_uint64(o) != jd_uint(d, v))
			disagree("unsigned integer", json_object_to_json_string(o));
		return;
	case JD_NUMBER:
		/* bit for bit, but -0.0 == 0.0 and inf == inf as json-c has them */
		if (t != json_type_double || json_object_get_double(o) != jd_double(d, v)) {
			snprintf(detail, sizeof(detail), "%s: %.17g vs %s", jd_token(d, v),
				 jd_double(d, v), json_object_to_json_string(o));
			disagree("number", detail);
		}
		return;
	case JD_STRING:
		n = jd_len(d, v);
		if (t != json_type_string || (size_t)json_object_get_string_len(o) != n ||
		    memcmp(json_object_get_string(o), jd_str(d, v), n) != 0)
			disagree("string", jd_str(d, v));
		return;
	case JD_ARRAY:
		if (t != json_type_array || json_object_array_length(o) != jd_len(d, v))
			disagree("array", json_type_to_name(t));
		for (i = v + 1, end = jd_next(d, v), n = 0; i < end; i = jd_next(d, i), n++)
			compare(d, i, json_object_array_get_idx(o, n));
		return;
	case JD_OBJECT:
		/* jd refuses repeated keys, so the counts must match too */
		if (t != json_type_object || (size_t)json_object_object_length(o) != jd_len(d, v))
			disagree("object", json_type_to_name(t));
		for (i = v + 1, end = jd_next(d, v); i < end; i = jd_next(d, i + 1)) {
			if (!json_object_object_get_ex(o, jd_str(d, i), &m))
				disagree("object key missing in json-c", jd_str(d, i));
			compare(d, i + 1, m);
		}
		return;
	}
	disagree("node type", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *o;
	struct jd_doc doc;
	char msg[512] = "", *copy;
	int jd_ok, jc_ok;

	if (size > INT32_MAX)
		return 0;
	jd_ok = jd_parse(&doc, (const char *)data, size, msg, sizeof(msg)) == 0;
	if (!jd_ok && !msg[0])
		abort(); /* every refusal says why */

	/* json-c's own depth limit is one level deeper than its documented
	   count; 128 keeps it out of the way: jd's depth cap is deliberate */
	tok = json_tokener_new_ex(128);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* with the NUL that ends a C string: without it a number that is the
	   whole input stays "continue" (more digits might follow) */
	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	o = json_tokener_parse_ex(tok, copy, (int)size + 1);
	free(copy);
	/* a whole value, then nothing but JSON whitespace */
	jc_ok = json_tokener_get_error(tok) == json_tokener_success &&
		(size_t)tok->char_offset <= size;
	if (jc_ok)
		for (size_t p = (size_t)tok->char_offset; p < size; p++)
			if (data[p] != ' ' && data[p] != '\t' && data[p] != '\n' && data[p] != '\r')
				jc_ok = 0;

	if (jd_ok && !jc_ok)
		disagree("jsondoc accepts what json-c refuses",
			 json_tokener_error_desc(json_tokener_get_error(tok)));
	if (!jd_ok && jc_ok && !deliberate(msg, data, size))
		disagree("json-c accepts what jsondoc refuses", msg);
	if (jd_ok && jc_ok)
		compare(&doc, 0, o);
	json_object_put(o);
	json_tokener_free(tok);
	jd_free(&doc);
	return 0;
}
