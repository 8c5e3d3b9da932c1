/*
 * test_jsondoc.c - jd_parse()'s own rules, as a table of bodies and the
 * verdict (and message) expected, then the shape of what it builds: node
 * order, subtree skips, decoded strings and exact integers; and its bounds:
 * values per body byte, members per object, and a repeated-key check that
 * stays linear whatever the keys (counted in probes, not timed).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jsondoc.h"

struct parse_case {
	const char *name;
	const char *body;
	size_t len;      /* 0: strlen(body) */
	int ok;          /* 1: accepted */
	const char *msg; /* part of the message when refused */
};

#define L(s) s, sizeof(s) - 1

static const struct parse_case cases[] = {
	/* grammar */
	{"object", "{\"a\":1}", 0, 1, NULL},
	{"scalar top", "\"x\"", 0, 1, NULL},
	{"empty", "", 0, 0, "empty body"},
	{"only whitespace", " \t\r\n", 0, 0, "empty body"},
	{"whitespace everywhere", " {\t\"a\" :\r[ 1 ,\n2 ] , \"b\"\n:{ } }\r\n", 0, 1, NULL},
	{"vertical tab is no whitespace", "{\"a\":1}\v", 0, 0, "data after the JSON value at byte 7"},
	{"form feed is no whitespace", "\f{}", 0, 0, "unexpected character at byte 0"},
	{"BOM", "\xef\xbb\xbf{}", 0, 0, "unexpected character at byte 0"},
	{"trailing comma, object", "{\"a\":1,}", 0, 0, "unexpected character at byte 7"},
	{"trailing comma, array", "[1,]", 0, 0, "unexpected character at byte 3"},
	{"leading comma", "[,1]", 0, 0, "unexpected character at byte 1"},
	{"missing colon", "{\"a\" 1}", 0, 0, "unexpected character at byte 5"},
	{"unquoted key", "{a:1}", 0, 0, "unexpected character at byte 1"},
	{"single quotes", "{'a':1}", 0, 0, "unexpected character at byte 1"},
	{"comment", "{} // x", 0, 0, "data after the JSON value at byte 3"},
	{"two values", "{}{}", 0, 0, "data after the JSON value at byte 2"},
	{"html", "<html>", 0, 0, "hint: an HTML page"},
	{"NaN", "[NaN]", 0, 0, "\"NaN\" at byte 1 is not JSON"},
	{"Infinity", "[-Infinity]", 0, 0, "is not a JSON number"},
	{"True", "[True]", 0, 0, "\"True\" at byte 1 is not JSON"},
	{"literals", "[true,false,null]", 0, 1, NULL},
	{"cut literal", "[tru", 0, 0, "truncated"},
	{"cut object", "{\"a\":1", 0, 0, "truncated: the JSON ends early, after 6 bytes"},
	{"cut string", "[\"abc", 0, 0, "truncated"},
	{"cut escape", "[\"a\\u00", 0, 0, "truncated"},
	{"cut UTF-8", "[\"a\xc3", 0, 0, "truncated"},
	{"raw NUL outside", L("[1,\0 2]"), 0, "NUL byte at byte 3"},
	{"raw NUL in string", L("[\"a\0\"]"), 0, "NUL byte at byte 3"},
	/* numbers */
	{"leading zero", "[01]", 0, 0, "\"01]\" at byte 1 is not a JSON number"},
	{"negative leading zero", "[-01]", 0, 0, "is not a JSON number"},
	{"double zero", "[00]", 0, 0, "is not a JSON number"},
	{"zero fraction leading zero", "[00.5]", 0, 0, "is not a JSON number"},
	{"bare fraction", "[.5]", 0, 0, "unexpected character at byte 1"},
	{"plus", "[+1]", 0, 0, "unexpected character at byte 1"},
	{"1.", "[1.]", 0, 0, "\"1.]\" at byte 1 is not a JSON number"},
	{"1e", "[1e]", 0, 0, "is not a JSON number"},
	{"1e+", "[1e+]", 0, 0, "is not a JSON number"},
	{"minus alone", "[-]", 0, 0, "is not a JSON number"},
	{"good numbers", "[0,-0,0.5,-1.5e+3,1E-2,2e0,10]", 0, 1, NULL},
	{"int64 max", "[9223372036854775807]", 0, 1, NULL},
	{"int64 min", "[-9223372036854775808]", 0, 1, NULL},
	{"below int64", "{\"k\":-9223372036854775809}", 0, 0,
	 "integer -9223372036854775809 at byte 5 (in \"k\") does not fit in 64 bits"},
	{"uint64 max", "[18446744073709551615]", 0, 1, NULL},
	{"past uint64", "[18446744073709551616]", 0, 0, "does not fit in 64 bits"},
	{"huge double", "[1e400]", 0, 1, NULL},
	/* strings */
	{"escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"]", 0, 1, NULL},
	{"bad escape", "[\"\\x\"]", 0, 0, "invalid escape at byte 2"},
	{"bad hex", "[\"\\u12g4\"]", 0, 0, "invalid \\u escape at byte 2"},
	{"lone high surrogate", "[\"a\\ud800b\"]", 0, 0, "lone UTF-16 surrogate \\uD800 at byte 3"},
	{"high then not low", "[\"\\ud800\\u0041\"]", 0, 0, "lone UTF-16 surrogate \\uD800"},
	{"lone low surrogate", "[\"\\udc00\"]", 0, 0, "lone UTF-16 surrogate \\uDC00 at byte 2"},
	{"high at the end", "[\"\\ud800\"]", 0, 0, "lone UTF-16 surrogate"},
	/* found by fuzz_jsondiff: one byte after the high surrogate, the quote */
	{"high, then the last byte", "\"\\ud83A\"", 0, 0, "lone UTF-16 surrogate \\uD83A at byte 1"},
	{"high, then a cut escape", "\"\\ud83A\\", 0, 0, "truncated"},
	{"high, then a cut \\u", "\"\\ud83A\\u", 0, 0, "truncated"},
	{"raw tab", "[\"a\tb\"]", 0, 0, "control character 0x09 at byte 3"},
	{"raw newline", "[\"a\nb\"]", 0, 0, "control character 0x0A at byte 3"},
	{"raw DEL is fine", "[\"a\x7f\"]", 0, 1, NULL},
	{"overlong", "[\"\xc0\xaf\"]", 0, 0, "invalid UTF-8 at byte 2"},
	{"UTF-8 surrogate", "[\"\xed\xa0\x80\"]", 0, 0, "invalid UTF-8 at byte 2"},
	{"past U+10FFFF", "[\"\xf4\x90\x80\x80\"]", 0, 0, "invalid UTF-8 at byte 2"},
	{"latin-1", "[\"caf\xe9\"]", 0, 0, "invalid UTF-8 at byte 5"},
	{"4-byte UTF-8", "[\"\xf0\x9f\x98\x80\"]", 0, 1, NULL},
	{"\\u0000 in a value", "{\"a\":\"x\\u0000y\"}", 0, 1, NULL},
	{"\\u0000 in a key", "{\"a\\u0000b\":1}", 0, 0,
	 "object key \"a\\u0000b\" at byte 1 holds \\u0000"},
	{"escaped backslash, then u0000", "{\"a\\\\u0000\":1}", 0, 1, NULL},
	{"escapes in keys", "{\"\\u0061\":1,\"a\\n\":2,\"\\ud83d\\ude00\":3}", 0, 1, NULL},
	/* repeated keys, at every level and through escapes */
	{"repeat at the top", "{\"a\":1,\"b\":2,\"a\":3}", 0, 0,
	 "an object repeats the key \"a\" at byte 13"},
	{"repeat deep", "{\"x\":[{\"y\":{\"k\":1,\"k\":2}}]}", 0, 0,
	 "an object repeats the key \"k\" at byte 18"},
	{"repeat through an escape", "{\"a\":1,\"\\u0061\":2}", 0, 0,
	 "an object repeats the key \"a\" at byte 7"},
	{"same key in sibling objects", "[{\"a\":1},{\"a\":2}]", 0, 1, NULL},
	{"same key at two levels", "{\"a\":{\"a\":{\"a\":1}}}", 0, 1, NULL},
	{"empty key twice", "{\"\":1,\"\":2}", 0, 0, "an object repeats the key \"\""},
	{"repeat in a big object",
	 "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
	 "\"k9\":9,\"long_key_with_a_common_prefix_1\":1,"
	 "\"long_key_with_a_common_prefix_2\":2,\"k5\":5}",
	 0, 0, "an object repeats the key \"k5\""},
	{"no repeat in a big object",
	 "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
	 "\"k9\":9,\"long_key_with_a_common_prefix_1\":1,"
	 "\"long_key_with_a_common_prefix_2\":2}",
	 0, 1, NULL},
	{"prefix keys differ", "{\"ab\":1,\"a\":2,\"abc\":3}", 0, 1, NULL},
};

static void test_cases(void)
{
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		const struct parse_case *c = &cases[i];
		struct jd_doc doc;
		char msg[512] = "";
		size_t len = c->len ? c->len : strlen(c->body);
		int rc = jd_parse(&doc, c->body, len, msg, sizeof(msg));

		if ((rc == 0) != c->ok || (!c->ok && !strstr(msg, c->msg)))
			fprintf(stderr, "case \"%s\": rc %d, \"%s\"\n", c->name, rc, msg);
		CHECK_INT(rc == 0, c->ok);
		if (!c->ok)
			CHECK_CONTAINS(msg, c->msg);
		jd_free(&doc);
	}
}

/* n arrays around inner: json-c's count of levels, which earlier releases used */
static void test_depth(void)
{
	static const struct {
		size_t arrays;
		const char *inner;
		int ok;
	} depth[] = {
		{64, "", 1},  /* 64 levels, the innermost empty */
		{63, "1", 1}, /* 63 arrays and a value: 64 levels */
		{64, "1", 0}, /* a value at level 65 */
		{63, "{}", 1},
		{64, "{}", 0},
		{100000, "", 0}, /* deep, and no recursion to overflow */
	};
	size_t i, k;

	for (i = 0; i < ETL_ARRAY_LEN(depth); i++) {
		struct strbuf sb;
		struct jd_doc doc;
		char msg[256] = "";
		int rc;

		sb_init(&sb);
		for (k = 0; k < depth[i].arrays; k++)
			sb_putc(&sb, '[');
		sb_puts(&sb, depth[i].inner);
		for (k = 0; k < depth[i].arrays; k++)
			sb_putc(&sb, ']');
		rc = jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg));
		if ((rc == 0) != depth[i].ok)
			fprintf(stderr, "depth %zu + \"%s\": rc %d, \"%s\"\n", depth[i].arrays,
				depth[i].inner, rc, msg);
		CHECK_INT(rc == 0, depth[i].ok);
		if (!depth[i].ok)
			CHECK_CONTAINS(msg, "JSON nested deeper than 64 levels at byte 64");
		jd_free(&doc);
		sb_free(&sb);
	}
}

/* The nodes of one document: order, skips, values. */
static void test_nodes(void)
{
	static const char body[] =
		"{\"a\":[1,{\"x\":null},\"s\\n\"],\"b\":-9223372036854775808,"
		"\"c\":18446744073709551615,\"d\":-1.5e3,\"e\":{},\"f\":true,\"\\u00e9\":\"\\u0000\"}";
	struct jd_doc doc;
	char msg[256] = "";
	size_t a, v;

	CHECK_INT(jd_parse(&doc, body, strlen(body), msg, sizeof(msg)), 0);
	CHECK_STR(msg, "");
	if (!doc.nodes)
		return;
	CHECK_INT(jd_type(&doc, 0), JD_OBJECT);
	CHECK_INT(jd_len(&doc, 0), 7);
	CHECK_INT(jd_next(&doc, 0), doc.n_nodes);
	/* "a": [1, {"x": null}, "s\n"] */
	CHECK_STR(jd_str(&doc, 1), "a");
	a = jd_member(&doc, 0, "a");
	CHECK_INT(a, 2);
	CHECK_INT(jd_type(&doc, a), JD_ARRAY);
	CHECK_INT(jd_len(&doc, a), 3);
	v = a + 1;
	CHECK_INT(jd_type(&doc, v), JD_INT);
	CHECK_INT(jd_int(&doc, v), 1);
	v = jd_next(&doc, v);
	CHECK_INT(jd_type(&doc, v), JD_OBJECT);
	CHECK_INT(jd_member(&doc, v, "x"), v + 2);
	CHECK_INT(jd_type(&doc, v + 2), JD_NULL);
	CHECK_INT(jd_member(&doc, v, "y"), JD_NONE);
	v = jd_next(&doc, v);
	CHECK_INT(jd_type(&doc, v), JD_STRING);
	CHECK_STR(jd_str(&doc, v), "s\n");
	CHECK_INT(jd_next(&doc, v), jd_next(&doc, a));

	v = jd_member(&doc, 0, "b");
	CHECK_INT(jd_type(&doc, v), JD_INT);
	CHECK(jd_int(&doc, v) == INT64_MIN);
	v = jd_member(&doc, 0, "c");
	CHECK_INT(jd_type(&doc, v), JD_UINT);
	CHECK(jd_uint(&doc, v) == UINT64_MAX);
	CHECK(jd_double(&doc, v) == 18446744073709551615.0);
	v = jd_member(&doc, 0, "d");
	CHECK_INT(jd_type(&doc, v), JD_NUMBER);
	CHECK_STR(jd_token(&doc, v), "-1.5e3");
	CHECK(jd_double(&doc, v) == -1500.0);
	v = jd_member(&doc, 0, "e");
	CHECK_INT(jd_type(&doc, v), JD_OBJECT);
	CHECK_INT(jd_len(&doc, v), 0);
	CHECK_INT(jd_next(&doc, v), v + 1);
	CHECK_INT(jd_type(&doc, jd_member(&doc, 0, "f")), JD_TRUE);
	/* an escaped key is found by its decoded text; a NUL in a value stays */
	v = jd_member(&doc, 0, "\xc3\xa9");
	CHECK(v != JD_NONE);
	if (v != JD_NONE) {
		CHECK_INT(jd_len(&doc, v), 1);
		CHECK_INT(jd_str(&doc, v)[0], 0);
	}
	jd_free(&doc);
	jd_free(&doc); /* twice is harmless */
	CHECK(doc.nodes == NULL && doc.strings == NULL);
}

/* A number that is the whole body still gets its terminated text. */
static void test_number_alone(void)
{
	struct jd_doc doc;
	char msg[256] = "", body[] = "2.5x";

	CHECK_INT(jd_parse(&doc, body, 3, msg, sizeof(msg)), 0);
	if (doc.nodes) {
		CHECK_INT(jd_type(&doc, 0), JD_NUMBER);
		CHECK_STR(jd_token(&doc, 0), "2.5");
		CHECK(jd_double(&doc, 0) == 2.5);
	}
	jd_free(&doc);
}

/* Many keys in one object, and many objects: the repeated-key table grows. */
static void test_many_keys(void)
{
	struct strbuf sb;
	struct jd_doc doc;
	char msg[256] = "";
	int i;

	sb_init(&sb);
	sb_putc(&sb, '{');
	for (i = 0; i < 5000; i++)
		sb_printf(&sb, "%s\"key%d\":%d", i ? "," : "", i, i);
	sb_putc(&sb, '}');
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), 0);
	CHECK_INT(jd_len(&doc, 0), 5000);
	CHECK_INT(jd_int(&doc, jd_member(&doc, 0, "key4321")), 4321);
	jd_free(&doc);
	sb.len--;
	sb_puts(&sb, ",\"key2500\":0}");
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), -1);
	CHECK_CONTAINS(msg, "an object repeats the key \"key2500\"");
	jd_free(&doc);
	sb_free(&sb);
}

/* Integers keep their 64 bits in an 8-byte node: both signs, both halves. */
static void test_int_values(void)
{
	static const struct {
		const char *body;
		enum jd_type type;
		int64_t i;
		uint64_t u;
	} ints[] = {
		{"0", JD_INT, 0, 0},
		{"-0", JD_INT, 0, 0},
		{"-1", JD_INT, -1, 0},
		{"4294967295", JD_INT, 4294967295LL, 0},
		{"4294967296", JD_INT, 4294967296LL, 0},
		{"-4294967297", JD_INT, -4294967297LL, 0},
		{"9223372036854775807", JD_INT, INT64_MAX, 0},
		{"-9223372036854775808", JD_INT, INT64_MIN, 0},
		{"9223372036854775808", JD_UINT, 0, 9223372036854775808ULL},
	};
	size_t i;

	for (i = 0; i < ETL_ARRAY_LEN(ints); i++) {
		struct jd_doc doc;
		char msg[256] = "";

		CHECK_INT(jd_parse(&doc, ints[i].body, strlen(ints[i].body), msg, sizeof(msg)), 0);
		if (!doc.nodes)
			continue;
		CHECK_INT(jd_type(&doc, 0), ints[i].type);
		if (ints[i].type == JD_INT)
			CHECK(jd_int(&doc, 0) == ints[i].i);
		else
			CHECK(jd_uint(&doc, 0) == ints[i].u);
		jd_free(&doc);
	}
}

/*
 * 40000 keys of 64 bytes that differ only in their middle bytes: the hash
 * that read a key's length and first and last 8 bytes gave them all one
 * slot, and the check took n^2/2 probes (6.9 s). Probes beyond each key's
 * first slot are counted, not timed: at most half the table is full, so a
 * hash that spreads the keys needs about one extra probe per two keys.
 */
static void test_keys_differing_in_the_middle(void)
{
	const int n = 40000;
	struct strbuf sb;
	struct jd_doc doc;
	char msg[256] = "";
	int i;

	sb_init(&sb);
	sb_putc(&sb, '{');
	for (i = 0; i < n; i++)
		sb_printf(&sb, "%s\"aaaaaaaaaaaaaaaaaaaaaaaa%08dbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\":%d",
			  i ? "," : "", i, i);
	sb_putc(&sb, '}');
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), 0);
	CHECK_STR(msg, "");
	CHECK_INT(jd_len(&doc, 0), n);
	if (doc.key_probes > (size_t)2 * n)
		fprintf(stderr, "%zu probes for %d keys\n", doc.key_probes, n);
	CHECK(doc.key_probes <= (size_t)2 * n);
	jd_free(&doc);
	/* and a repeat among them is still found */
	sb.len--;
	sb_puts(&sb, ",\"aaaaaaaaaaaaaaaaaaaaaaaa00031337bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\":0}");
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), -1);
	CHECK_CONTAINS(msg, "an object repeats the key \"aaaaaaaaaaaaaaaaaaaaaaaa00031337");
	CHECK(doc.key_probes <= (size_t)2 * n);
	jd_free(&doc);
	sb_free(&sb);
}

/* JD_MAX_MEMBERS members in one object, and one more. */
static void test_members_cap(void)
{
	struct strbuf sb;
	struct jd_doc doc;
	char msg[256] = "";
	int i;

	sb_init(&sb);
	sb_putc(&sb, '{');
	for (i = 0; i < JD_MAX_MEMBERS; i++)
		sb_printf(&sb, "%s\"%x\":0", i ? "," : "", i);
	sb_putc(&sb, '}');
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), 0);
	CHECK_INT(jd_len(&doc, 0), JD_MAX_MEMBERS);
	jd_free(&doc);
	sb.len--;
	sb_puts(&sb, ",\"x\":0}");
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), -1);
	CHECK_CONTAINS(msg, "an object has more than 65536 members at byte");
	jd_free(&doc);
	sb_free(&sb);
}

/*
 * Values per body byte: `[0,0,...]` has one per 2 bytes and made a 24-byte
 * node of each (12x the body); past one per 4 bytes the body is refused, and
 * a body at that density is not.
 */
static void test_nodes_cap(void)
{
	const size_t n = 1 << 20;
	struct strbuf sb;
	struct jd_doc doc;
	char msg[256] = "";
	size_t i;

	sb_init(&sb);
	sb_putc(&sb, '[');
	for (i = 0; i < n; i++)
		sb_puts(&sb, i ? ",0" : "0");
	sb_putc(&sb, ']');
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), -1);
	CHECK_CONTAINS(msg, "JSON values at byte");
	CHECK_CONTAINS(msg, "at most one per 4 bytes of body is accepted");
	CHECK(doc.cap_nodes <= JD_MAX_NODES(sb.len));
	jd_free(&doc);
	/* one value per 4 bytes: "0,  " */
	sb_reset(&sb);
	sb_putc(&sb, '[');
	for (i = 0; i < n; i++)
		sb_puts(&sb, i ? ",  0" : "0");
	sb_puts(&sb, "]  ");
	CHECK_INT(jd_parse(&doc, sb.data, sb.len, msg, sizeof(msg)), 0);
	CHECK_INT(jd_len(&doc, 0), n);
	CHECK(doc.cap_nodes <= JD_MAX_NODES(sb.len));
	jd_free(&doc);
	sb_free(&sb);
}

/*
 * Strings are scanned 8 bytes at a time while they are plain: a byte that
 * is not (an escape, the closing quote, a control byte, UTF-8) is found at
 * every offset within and across those 8-byte steps.
 */
static void test_string_scan_offsets(void)
{
	static const struct {
		const char *mid;   /* what comes after k plain bytes */
		int ok;
		const char *decoded;
	} after[] = {
		{"\\n!", 1, "\n!"}, {"", 1, ""}, {"\xc3\xa9!", 1, "\xc3\xa9!"},
		{"\x01", 0, NULL}, {"\\u0041z", 1, "Az"}, {"\x7f", 1, "\x7f"}, {"\xff", 0, NULL},
	};
	char body[128], want[64], msg[256];
	struct jd_doc doc;
	size_t i;
	int k;

	for (i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		for (k = 0; k <= 20; k++) {
			memset(want, 'a', (size_t)k);
			snprintf(want + k, sizeof(want) - (size_t)k, "%s", after[i].decoded ? after[i].decoded : "");
			body[0] = '"';
			memset(body + 1, 'a', (size_t)k);
			snprintf(body + 1 + k, sizeof(body) - 1 - (size_t)k, "%s\"", after[i].mid);
			msg[0] = '\0';
			if (after[i].ok) {
				CHECK_INT(jd_parse(&doc, body, strlen(body), msg, sizeof(msg)), 0);
				CHECK_STR(jd_str(&doc, 0), want);
			} else {
				CHECK_INT(jd_parse(&doc, body, strlen(body), msg, sizeof(msg)), -1);
			}
			jd_free(&doc);
		}
	}
}

int main(void)
{
	test_cases();
	test_depth();
	test_nodes();
	test_number_alone();
	test_many_keys();
	test_int_values();
	test_keys_differing_in_the_middle();
	test_members_cap();
	test_nodes_cap();
	test_string_scan_offsets();
	return check_summary();
}
