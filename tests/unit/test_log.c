/*
 * test_log.c - log.c's text escaping, and the lines it writes.
 *
 * Messages quote the API (status_message, code, type, request_id) and the
 * database (a COPY error quoting a value): in the text format, a newline in
 * them must not start a line that passes for a log record, nor an ESC reach
 * the terminal. The table gives the input and the exact escaped text; then
 * whole lines are captured from stderr in both formats.
 */
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const struct {
	const char *in;
	const char *out;
} escapes[] = {
	{"plain text, UTF-8: caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "plain text, UTF-8: caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"},
	{"", ""},
	/* a forged record: the newline is shown, no line starts */
	{"Invalid Field.\nintersect-etl: error: run 7: all good", "Invalid Field.\\nintersect-etl: error: run 7: all good"},
	{"a\r\nb\tc", "a\\r\\nb\\tc"},
	/* terminal escapes: ESC, BEL, DEL, NUL-free C0 */
	{"\x1b[31mred\x1b[0m\x07", "\\x1b[31mred\\x1b[0m\\x07"},
	{"x\x7fy\x01z\x1f", "x\\x7fy\\x01z\\x1f"},
	/* C1 as UTF-8 (U+009B is CSI on some terminals), and the bidi overrides */
	{"a\xc2\x9b" "31mb\xc2\x80\xc2\x9f", "a\\u009b31mb\\u0080\\u009f"},
	{"abc\xe2\x80\xae" "cba\xe2\x81\xa6", "abc\\u202ecba\\u2066"},
	{"\xc2\xa0 is not a control", "\xc2\xa0 is not a control"},
	/* invalid UTF-8: lone continuation, overlong, surrogate, truncated */
	{"\x80", "\\x80"},
	{"\xc0\xaf", "\\xc0\\xaf"},
	{"\xed\xa0\x80", "\\xed\\xa0\\x80"},
	{"ab\xe6\x97", "ab\\xe6\\x97"},
	{"\xff\xfe", "\\xff\\xfe"},
	/* a backslash stays: escapes are for safety, not reversibility */
	{"C:\\path \\n", "C:\\path \\n"},
	/* our own continuation lines stay lines of their own */
	{"t.yaml:5:13: api.base_url: bad\nhint: use https://", "t.yaml:5:13: api.base_url: bad\nhint: use https://"},
	{"database error: x\ndetail: y\ncontext: z", "database error: x\ndetail: y\ncontext: z"},
	{"x\nHINT: y\nhint:no space", "x\\nHINT: y\\nhint:no space"},
	{"trailing\n", "trailing\\n"},
};

static void test_escape_table(void)
{
	for (size_t i = 0; i < ETL_ARRAY_LEN(escapes); i++) {
		struct strbuf sb;

		sb_init(&sb);
		log_escape(&sb, escapes[i].in);
		CHECK_STR(sb.data ? sb.data : "", escapes[i].out);
		sb_free(&sb);
	}
}

/* Runs fn with stderr going to a file; returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX", *text;
	int fd = mkstemp(path), saved;
	FILE *f;
	long n;

	if (fd < 0)
		return xstrdup("");
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fdopen(fd, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = xcalloc(1, (size_t)n + 1);
	if (fread(text, 1, (size_t)n, f) != (size_t)n)
		text[0] = '\0';
	fclose(f);
	unlink(path);
	return text;
}

#define HOSTILE "Invalid Field.\nintersect-etl: error: forged\x1b]0;title\x07\xc2\x9b"

static void log_hostile(void)
{
	log_set_msg(LOG_WARN, "crm", "page at offset 0: API task error 40501: %s", HOSTILE);
	log_error("run failed\nhint: see `intersect-etl runs`");
}

static void test_text_lines(void)
{
	char *got;

	log_set_format(LOG_TEXT);
	got = capture_stderr(log_hostile);
	CHECK_STR(got, "intersect-etl: warning: crm: page at offset 0: API task error 40501: "
		       "Invalid Field.\\nintersect-etl: error: forged\\x1b]0;title\\x07\\u009b\n"
		       "intersect-etl: error: run failed\nhint: see `intersect-etl runs`\n");
	free(got);
}

/* JSON lines are json-c's escaping, unchanged: the message comes back whole. */
static void test_json_lines(void)
{
	char *got, *nl;
	json_object *o;

	log_set_format(LOG_JSON);
	got = capture_stderr(log_hostile);
	log_set_format(LOG_TEXT);
	nl = strchr(got, '\n');
	CHECK(nl != NULL);
	if (!nl) {
		free(got);
		return;
	}
	*nl = '\0';
	CHECK(strchr(got, '\x1b') == NULL); /* \u001b in the JSON text */
	o = json_tokener_parse(got);
	CHECK(o != NULL);
	if (o) {
		json_object *m = json_object_object_get(o, "message");
		CHECK_STR(json_object_get_string(m), "page at offset 0: API task error 40501: " HOSTILE);
		CHECK_STR(json_object_get_string(json_object_object_get(o, "target_set")), "crm");
		json_object_put(o);
	}
	CHECK(strchr(nl + 1, '\n') != NULL && strchr(nl + 1, '\n')[1] == '\0'); /* two lines */
	free(got);
}

int main(void)
{
	test_escape_table();
	test_text_lines();
	test_json_lines();
	return check_summary();
}
