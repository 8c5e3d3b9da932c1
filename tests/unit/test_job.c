/*
 * test_job.c - job.c against good files, bad files, and hostile input.
 *
 * Bad input is data: tests/data/jobs/bad/NAME.yaml with the status and the
 * message (file:line:col: key.path: ...) it must produce, in bad_files[]
 * below. Small variations on one valid job (expansion, types, URLs) are
 * tables of YAML snippets. Hostile files too large or too random to keep in
 * the tree are generated in a temporary directory at run time. Every test
 * also asserts that no message ever contains a credential: each secret in
 * the data holds the word SECRET.
 */
#include "job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define GOOD ETL_TEST_DATA "/jobs/good/"
#define BAD ETL_TEST_DATA "/jobs/bad/"
#define EXAMPLE ETL_TEST_DATA "/../../jobs/example.yaml"

static char tmpdir[] = "/tmp/test_job.XXXXXX";

/* ---------------------------------------------------------------- helpers */

static const char *req_json(const struct target_set *ts)
{
	return json_object_to_json_string_ext(ts->request, JSON_C_TO_STRING_PLAIN);
}

/* "file:LINE:COL: " right after the file name, and no secret anywhere. */
static void check_message(const struct etl_error *err, const char *name)
{
	size_t n = strlen(name);
	const char *p = err->msg;

	CHECK(strstr(err->msg, "SECRET") == NULL);
	CHECK(strncmp(p, name, n) == 0);
	if (strncmp(p, name, n) != 0)
		return;
	p += n;
	if (strncmp(p, ": ", 2) == 0) /* file-level errors: open, read, size */
		return;
	CHECK(*p == ':' && p[1] >= '1' && p[1] <= '9');
	p += strspn(p + 1, "0123456789") + 1;
	CHECK(*p == ':' && p[1] >= '1' && p[1] <= '9');
	p += strspn(p + 1, "0123456789") + 1;
	CHECK(strncmp(p, ": ", 2) == 0);
}

static struct job *load_file_ok(const char *path)
{
	struct etl_error err = {0};
	struct job *job = NULL;
	int rc = job_load_file(path, &job, &err);

	CHECK_INT(rc, ETL_OK);
	if (rc)
		fprintf(stderr, "  unexpected error: %s\n", err.msg);
	return job;
}

static struct job *load_str_ok(const char *yaml)
{
	struct etl_error err = {0};
	struct job *job = NULL;
	int rc = job_load_string(yaml, strlen(yaml), "t.yaml", &job, &err);

	CHECK_INT(rc, ETL_OK);
	if (rc)
		fprintf(stderr, "  unexpected error: %s\n  for:\n%s\n", err.msg, yaml);
	return job;
}

static void expect_str_err(const char *yaml, size_t len, int code, const char *msg)
{
	static struct job sentinel;
	struct etl_error err = {0};
	struct job *job = &sentinel; /* must come back NULL */
	int rc = job_load_string(yaml, len, "t.yaml", &job, &err);

	CHECK_INT(rc, code);
	CHECK(job == NULL);
	CHECK_CONTAINS(err.msg, msg);
	check_message(&err, "t.yaml");
	if (rc == ETL_OK && job != &sentinel)
		job_free(job);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fwrite(data, 1, len, f), len);
	CHECK_INT(fclose(f), 0);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct strbuf sb;
	char buf[4096];
	size_t n;

	sb_init(&sb);
	CHECK(f != NULL);
	if (!f)
		return sb_detach(&sb);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_append(&sb, buf, n);
	fclose(f);
	*len = sb.len;
	return sb_detach(&sb);
}

/* A valid job with `extra` appended to its one target set (line 8 on). */
#define HEAD                                                                         \
	"version: 1\n"                                                               \
	"job: t\n"                                                                   \
	"api:\n"                                                                     \
	"  token: sk-test-SECRET\n"                                                  \
	"target_sets:\n"                                                             \
	"  - name: a\n"                                                              \
	"    targets: [a.com]\n"

/* The request that job produces, with `rest` after its targets. */
#define REQ(rest) "{\"targets\":{\"1\":\"a.com\"}" rest "}"

/* ------------------------------------------------------------ bad files */

static const struct {
	const char *file;
	int code;
	const char *msg; /* expected substring, from the file name on */
} bad_files[] = {
	/* the file itself */
	{"empty.yaml", ETL_EUSAGE, "empty.yaml:1:1: empty job file"},
	{"comments_only.yaml", ETL_EUSAGE, "comments_only.yaml:1:1: empty job file"},
	{"not_mapping.yaml", ETL_EUSAGE, "not_mapping.yaml:1:1: the top level must be a mapping (key: value lines), got a list"},
	{"scalar_root.yaml", ETL_EUSAGE, "scalar_root.yaml:1:1: the top level must be a mapping (key: value lines), got a string"},
	{"multi_doc.yaml", ETL_EUSAGE, "multi_doc.yaml:8:1: a second YAML document; a job file holds one"},
	{"invalid_utf8.yaml", ETL_EUSAGE, "invalid_utf8.yaml:8:13: invalid UTF-8 (byte 0xC3)"},
	{"overlong_utf8.yaml", ETL_EUSAGE, "overlong_utf8.yaml:8:10: invalid UTF-8 (byte 0xC0)"},
	{"surrogate_utf8.yaml", ETL_EUSAGE, "surrogate_utf8.yaml:8:10: invalid UTF-8 (byte 0xED)"},
	{"control_char.yaml", ETL_EUSAGE, "control_char.yaml:8:11: invalid YAML: control characters are not allowed (#x1)"},
	{"nul_escape.yaml", ETL_EUSAGE, "nul_escape.yaml:8:10: target_sets[0].tag: a NUL character in a string"},
	/* YAML syntax, truncation, nesting, features refused */
	{"truncated.yaml", ETL_EUSAGE, "truncated.yaml:8:1: target_sets[0].targets[2]: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at 7:14)"},
	{"truncated_quote.yaml", ETL_EUSAGE, "truncated_quote.yaml:7:1: target_sets[0].name: invalid YAML: found unexpected end of stream (while scanning a quoted scalar at 6:11)"},
	{"bad_indent.yaml", ETL_EUSAGE, "bad_indent.yaml:8:4: target_sets[1]: invalid YAML: did not find expected '-' indicator (while parsing a block collection at 6:3)"},
	{"tab_indent.yaml", ETL_EUSAGE, "tab_indent.yaml:6:1: target_sets: invalid YAML: found character that cannot start any token"},
	{"deep.yaml", ETL_EUSAGE, "deep.yaml:8:75: target_sets[0].filters[0][0]"},
	{"deep.yaml", ETL_EUSAGE, "[0]: nested more than 64 levels deep"},
	{"complex_key.yaml", ETL_EUSAGE, "complex_key.yaml:8:7: target_sets[0]: a mapping key must be a scalar, not a list"},
	{"anchor.yaml", ETL_EUSAGE, "anchor.yaml:5:11: defaults: anchors (&d) are not supported\nhint: share request fields with defaults: instead"},
	{"alias_undefined.yaml", ETL_EUSAGE, "alias_undefined.yaml:8:10: target_sets[0].tag: aliases (*nothing) are not supported"},
	{"billion_laughs.yaml", ETL_EUSAGE, "billion_laughs.yaml:1:4: a: anchors (&a) are not supported"},
	{"tag_int.yaml", ETL_EUSAGE, "tag_int.yaml:8:12: target_sets[0].limit: unsupported tag 'tag:yaml.org,2002:int'\nhint: only !!str"},
	{"tag_custom.yaml", ETL_EUSAGE, "tag_custom.yaml:8:10: target_sets[0].tag: unsupported tag '!secret'"},
	/* keys: unknown, duplicate, missing, misplaced */
	{"unknown_key.yaml", ETL_EUSAGE, "unknown_key.yaml:4:3: api.tokn: unknown key\nhint: did you mean 'token'?"},
	{"unknown_root_key.yaml", ETL_EUSAGE, "unknown_root_key.yaml:5:1: concurrency: unknown key here\nhint: 'concurrency' belongs under api:"},
	{"unknown_key_far.yaml", ETL_EUSAGE, "unknown_key_far.yaml:8:5: target_sets[0].colour: unknown key"},
	{"database_unknown.yaml", ETL_EUSAGE, "database_unknown.yaml:6:3: database.uri: unknown key\nhint: did you mean 'url'?"},
	{"name_in_defaults.yaml", ETL_EUSAGE, "name_in_defaults.yaml:6:3: defaults.name: unknown key here\nhint: 'name' belongs in a target set"},
	{"offset.yaml", ETL_EUSAGE, "offset.yaml:8:5: target_sets[0].offset: offset is set by the scheduler while paging"},
	{"offset_defaults.yaml", ETL_EUSAGE, "offset_defaults.yaml:6:3: defaults.offset: offset is set by the scheduler while paging"},
	{"duplicate_key.yaml", ETL_EUSAGE, "duplicate_key.yaml:5:3: api.token: duplicate key (first at 4:3)"},
	{"duplicate_set.yaml", ETL_EUSAGE, "duplicate_set.yaml:10:11: target_sets[2].name: duplicate target set name \"a\" (first at 6:11)"},
	{"version_missing.yaml", ETL_EUSAGE, "version_missing.yaml:2:1: version: required key is missing"},
	{"version_2.yaml", ETL_EUSAGE, "version_2.yaml:1:10: version: unsupported version 2; this program reads version 1"},
	{"version_string.yaml", ETL_EUSAGE, "version_string.yaml:1:10: version: expected the integer 1, got a string (\"1\")"},
	{"job_missing.yaml", ETL_EUSAGE, "job_missing.yaml:1:1: job: required key is missing"},
	{"job_bad_name.yaml", ETL_EUSAGE, "job_bad_name.yaml:2:6: job: expected a name [a-z0-9_-]+ of at most 63 characters, got a string (\"Nightly Run\")"},
	{"target_sets_missing.yaml", ETL_EUSAGE, "target_sets_missing.yaml:1:1: target_sets: required key is missing"},
	{"target_sets_empty.yaml", ETL_EUSAGE, "target_sets_empty.yaml:5:14: target_sets: expected a list of at least one target set, got an empty list"},
	{"target_sets_mapping.yaml", ETL_EUSAGE, "target_sets_mapping.yaml:6:3: target_sets: expected a list of at least one target set, got a mapping"},
	{"set_not_mapping.yaml", ETL_EUSAGE, "set_not_mapping.yaml:6:5: target_sets[0]: expected a mapping (key: value lines), got a string"},
	{"set_name_missing.yaml", ETL_EUSAGE, "set_name_missing.yaml:6:5: target_sets[0].name: required key is missing"},
	{"set_name_bad.yaml", ETL_EUSAGE, "set_name_bad.yaml:6:11: target_sets[0].name: expected a name [a-z0-9_-]+"},
	{"set_no_targets.yaml", ETL_EUSAGE, "set_no_targets.yaml:6:5: target_sets[0].targets: no targets\nhint: give targets: in the set or under defaults:"},
	/* node kinds */
	{"api_list.yaml", ETL_EUSAGE, "api_list.yaml:3:6: api: expected a mapping (key: value lines), got a list"},
	{"defaults_list.yaml", ETL_EUSAGE, "defaults_list.yaml:6:3: defaults: expected a mapping (key: value lines), got a list"},
	{"targets_scalar.yaml", ETL_EUSAGE, "targets_scalar.yaml:7:14: target_sets[0].targets: expected a list of 1 to 20 targets, got a string"},
	{"filters_mapping.yaml", ETL_EUSAGE, "filters_mapping.yaml:8:14: target_sets[0].filters: expected a filter list such as [[\"1.rank\", \">\", 100]], got a mapping"},
	{"token_list.yaml", ETL_EUSAGE, "token_list.yaml:4:10: api.token: expected a string, got a list"},
	/* request fields: types and bounds */
	{"targets_21.yaml", ETL_EUSAGE, "targets_21.yaml:7:14: target_sets[0].targets: 21 targets; at most 20 are allowed"},
	{"targets_empty_list.yaml", ETL_EUSAGE, "targets_empty_list.yaml:7:14: target_sets[0].targets: an empty list; at least one target is required"},
	{"targets_dup.yaml", ETL_EUSAGE, "targets_dup.yaml:10:9: target_sets[0].targets[2]: duplicate target \"a.com\" (also at 8:9)"},
	{"targets_number.yaml", ETL_EUSAGE, "targets_number.yaml:7:22: target_sets[0].targets[1]: expected a target (a domain or a page URL), got an integer (123)\nhint: quote it"},
	{"targets_nul.yaml", ETL_EUSAGE, "targets_nul.yaml:7:22: target_sets[0].targets[1]: a NUL character in a string"},
	{"exclude_11.yaml", ETL_EUSAGE, "exclude_11.yaml:8:22: target_sets[0].exclude_targets: 11 items; at most 10 are allowed"},
	{"limit_string.yaml", ETL_EUSAGE, "limit_string.yaml:8:12: target_sets[0].limit: expected an integer from 1 to 1000, got a string (\"1000\")\nhint: remove the quotes"},
	{"limit_range.yaml", ETL_EUSAGE, "limit_range.yaml:8:12: target_sets[0].limit: expected an integer from 1 to 1000, got an integer (1001)"},
	{"limit_float.yaml", ETL_EUSAGE, "limit_float.yaml:8:12: target_sets[0].limit: expected an integer from 1 to 1000, got a float (10.5)"},
	{"int_overflow.yaml", ETL_EUSAGE, "int_overflow.yaml:8:12: target_sets[0].limit: integer 99999999999999999999 is out of range"},
	{"max_rows_range.yaml", ETL_EUSAGE, "max_rows_range.yaml:6:13: defaults.max_rows: expected an integer from 1 to 10000000, got an integer (10000001)"},
	{"defaults_limit_zero.yaml", ETL_EUSAGE, "defaults_limit_zero.yaml:6:10: defaults.limit: expected an integer from 1 to 1000, got an integer (0)"},
	{"filters_bad_op.yaml", ETL_EUSAGE, "filters_bad_op.yaml:8:26: target_sets[0].filters[0][1]: unknown operator \"~\"\nhint: operators are regex, not_regex"},
	{"filters_9.yaml", ETL_EUSAGE, "filters_9.yaml:25:9: target_sets[0].filters[16]: more than 8 conditions; the API allows at most 8"},
	{"filters_nested_9.yaml", ETL_EUSAGE, "filters_nested_9.yaml:8:171: target_sets[0].backlinks_filters[4][6]: more than 8 conditions"},
	{"filters_bad_join.yaml", ETL_EUSAGE, "filters_bad_join.yaml:8:35: target_sets[0].filters[1]: expected \"and\" or \"or\", got \"xor\""},
	{"filters_even.yaml", ETL_EUSAGE, "filters_even.yaml:8:14: target_sets[0].filters: a filter list alternates conditions and \"and\"/\"or\""},
	{"filters_in_scalar.yaml", ETL_EUSAGE, "filters_in_scalar.yaml:8:33: target_sets[0].filters[2]: operator in takes a non-empty list of values, got a string"},
	{"filters_short.yaml", ETL_EUSAGE, "filters_short.yaml:8:15: target_sets[0].filters[0]: a condition is [field, operator, value]; this one has 2 items"},
	{"filters_value_list.yaml", ETL_EUSAGE, "filters_value_list.yaml:8:31: target_sets[0].filters[0][2]: operator > takes one scalar value, got a list"},
	{"filters_field_number.yaml", ETL_EUSAGE, "filters_field_number.yaml:8:16: target_sets[0].filters[0][0]: expected a field name such as \"1.rank\", got an integer (1)"},
	{"filters_empty.yaml", ETL_EUSAGE, "filters_empty.yaml:8:14: target_sets[0].filters: an empty filter"},
	{"filters_inf.yaml", ETL_EUSAGE, "filters_inf.yaml:8:31: target_sets[0].filters[0][2]: .inf has no JSON form"},
	{"order_by_bad.yaml", ETL_EUSAGE, "order_by_bad.yaml:8:16: target_sets[0].order_by[0]: expected a rule \"field,asc\" or \"field,desc\", got \"1.rank,up\""},
	{"order_by_4.yaml", ETL_EUSAGE, "order_by_4.yaml:8:15: target_sets[0].order_by: 4 items; at most 3 are allowed"},
	{"bool_string.yaml", ETL_EUSAGE, "bool_string.yaml:8:25: target_sets[0].include_subdomains: expected true or false, got a string (\"yes\")"},
	{"bool_yes.yaml", ETL_EUSAGE, "bool_yes.yaml:8:33: target_sets[0].exclude_internal_backlinks: expected true or false, got a string (\"yes\")"},
	{"choice_bad.yaml", ETL_EUSAGE, "choice_bad.yaml:8:28: target_sets[0].backlinks_status_type: expected one of all, live, lost; got a string (\"dead\")"},
	{"rank_scale_bad.yaml", ETL_EUSAGE, "rank_scale_bad.yaml:8:17: target_sets[0].rank_scale: expected one of one_hundred, one_thousand; got an integer (100)"},
	{"tag_long.yaml", ETL_EUSAGE, "tag_long.yaml:8:10: target_sets[0].tag: 256 characters; at most 255 are allowed"},
	{"tag_number.yaml", ETL_EUSAGE, "tag_number.yaml:8:10: target_sets[0].tag: expected a string, got an integer (2024)\nhint: quote it to make it a string"},
	/* api */
	{"provider_bad.yaml", ETL_EUSAGE, "provider_bad.yaml:4:13: api.provider: expected aisa or dataforseo, got a string (\"moz\")"},
	{"body_bad.yaml", ETL_EUSAGE, "body_bad.yaml:5:9: api.body: expected object or array, got a string (\"list\")"},
	{"concurrency_range.yaml", ETL_EUSAGE, "concurrency_range.yaml:5:16: api.concurrency: expected an integer from 1 to 30, got an integer (31)"},
	{"concurrency_string.yaml", ETL_EUSAGE, "concurrency_string.yaml:5:16: api.concurrency: expected an integer from 1 to 30, got a string (\"8\")\nhint: remove the quotes"},
	{"rpm_zero.yaml", ETL_EUSAGE, "rpm_zero.yaml:5:24: api.requests_per_minute: expected an integer from 1 to 10000, got an integer (0)"},
	{"timeout_range.yaml", ETL_EUSAGE, "timeout_range.yaml:5:20: api.timeout_seconds: expected an integer from 1 to 600, got an integer (601)"},
	{"attempts_range.yaml", ETL_EUSAGE, "attempts_range.yaml:5:17: api.max_attempts: expected an integer from 1 to 20, got an integer (21)"},
	{"http_remote.yaml", ETL_EUSAGE, "http_remote.yaml:5:13: api.base_url: plain http is refused except on loopback (127.0.0.0/8, localhost, [::1])\nhint: use https://"},
	{"http_fake_loopback.yaml", ETL_EUSAGE, "http_fake_loopback.yaml:5:13: api.base_url: must not contain a user name or password"}, /* 127.0.0.1 is the user name */
	{"http_127_short.yaml", ETL_EUSAGE, "http_127_short.yaml:5:13: api.base_url: plain http is refused except on loopback"},
	{"ftp_url.yaml", ETL_EUSAGE, "ftp_url.yaml:5:13: api.base_url: must start with https://\nhint: plain http:// is refused except on loopback"},
	{"url_query.yaml", ETL_EUSAGE, "url_query.yaml:5:13: api.base_url: must not have a query or a fragment"},
	{"url_no_host.yaml", ETL_EUSAGE, "url_no_host.yaml:5:13: api.base_url: has no host"},
	{"url_userinfo.yaml", ETL_EUSAGE, "url_userinfo.yaml:5:13: api.base_url: must not contain a user name or password (user:password@)\nhint: credentials belong in api.token or token_file (aisa), or api.login and api.password or password_file (dataforseo)"},
	{"url_user_only.yaml", ETL_EUSAGE, "url_user_only.yaml:7:13: api.base_url: must not contain a user name or password"},
	/* credentials: named by key and provider, never shown */
	{"token_missing.yaml", ETL_EUSAGE, "token_missing.yaml:4:3: api.token: provider aisa needs a non-empty token (token: or token_file:)"},
	{"token_no_api.yaml", ETL_EUSAGE, "token_no_api.yaml:1:1: api.token: provider aisa needs a non-empty token"},
	{"token_null.yaml", ETL_EUSAGE, "token_null.yaml:4:10: api.token: provider aisa needs a non-empty token"},
	{"token_empty.yaml", ETL_EUSAGE, "token_empty.yaml:4:10: api.token: provider aisa needs a non-empty token"},
	{"token_both.yaml", ETL_EUSAGE, "token_both.yaml:5:15: api.token_file: give token or token_file, not both"},
	{"token_control.yaml", ETL_EUSAGE, "token_control.yaml:4:10: api.token: contains a control character"},
	{"token_file_missing.yaml", ETL_EUSAGE, "token_file_missing.yaml:4:15: api.token_file: cannot open " ETL_TEST_DATA "/jobs/bad/no-such-token-file: No such file or directory"},
	{"login_missing.yaml", ETL_EUSAGE, "login_missing.yaml:4:3: api.login: provider dataforseo needs a non-empty login"},
	{"password_missing.yaml", ETL_EUSAGE, "password_missing.yaml:4:3: api.password: provider dataforseo needs a non-empty password (password: or password_file:)"},
	{"password_both.yaml", ETL_EUSAGE, "password_both.yaml:7:18: api.password_file: give password or password_file, not both"},
	{"login_colon.yaml", ETL_EUSAGE, "login_colon.yaml:5:10: api.login: must not contain ':'"},
	/* database */
	{"schema_bad.yaml", ETL_EUSAGE, "schema_bad.yaml:6:11: database.schema: expected a schema name [a-z_][a-z0-9_]* of at most 63 characters, got a string (\"Bad-Schema\")"},
	{"connections_range.yaml", ETL_EUSAGE, "connections_range.yaml:6:16: database.connections: expected an integer from 1 to 8, got an integer (9)"},
	{"connections_type.yaml", ETL_EUSAGE, "connections_type.yaml:6:16: database.connections: expected an integer from 1 to 8, got a string (\"two\")"},
	/* retention: bounded before the unit multiplies it */
	{"retention_overflow.yaml", ETL_EUSAGE, "retention_overflow.yaml:7:19: retention.keep_snapshots: a string (\"7905747460161236407 weeks\") is more than the maximum of 36500 days (5214 weeks)\nhint: without the key, nothing is deleted"},
	{"retention_weeks_max.yaml", ETL_EUSAGE, "retention_weeks_max.yaml:6:17: retention.keep_archive: a string (\"5215 weeks\") is more than the maximum of 36500 days"},
	/* ${VAR} expansion */
	{"env_unset.yaml", ETL_EUSAGE, "env_unset.yaml:8:10: target_sets[0].tag: environment variable ETL_TEST_UNSET is not set\nhint: export ETL_TEST_UNSET, or write a default into the file: ${ETL_TEST_UNSET:-VALUE}"},
	/* a secret's hint never suggests a default: it would sit in the file */
	{"env_unset_plain.yaml", ETL_EUSAGE, "env_unset_plain.yaml:4:10: api.token: environment variable ETL_TEST_UNSET is not set\nhint: export ETL_TEST_UNSET in the environment that runs intersect-etl (cron: the line's env file; systemd: EnvironmentFile=), or keep the key in a file named by api.token_file / api.password_file"},
	{"env_unterminated.yaml", ETL_EUSAGE, "env_unterminated.yaml:8:10: target_sets[0].tag: an unterminated ${ (no closing '}')\nhint: write $${ for a literal ${"},
	{"env_bad_name.yaml", ETL_EUSAGE, "env_bad_name.yaml:8:10: target_sets[0].tag: a bad variable name after ${"},
	{"env_empty_name.yaml", ETL_EUSAGE, "env_empty_name.yaml:8:10: target_sets[0].tag: a bad variable name after ${"},
	{"env_bad_op.yaml", ETL_EUSAGE, "env_bad_op.yaml:8:10: target_sets[0].tag: an unsupported expansion"},
};

static void test_bad_files(void)
{
	for (size_t i = 0; i < ETL_ARRAY_LEN(bad_files); i++) {
		char path[1024];
		struct etl_error err = {0};
		struct job *job = NULL;
		int rc;

		snprintf(path, sizeof(path), "%s%s", BAD, bad_files[i].file);
		rc = job_load_file(path, &job, &err);
		if (rc != bad_files[i].code || !strstr(err.msg, bad_files[i].msg))
			fprintf(stderr, "bad file %s\n", bad_files[i].file);
		CHECK_INT(rc, bad_files[i].code);
		CHECK(job == NULL);
		CHECK_CONTAINS(err.msg, bad_files[i].msg);
		CHECK_INT(err.code, bad_files[i].code);
		check_message(&err, path);
		job_free(job);
	}
}

/* ------------------------------------------------------------ good files */

static void test_full_file(void)
{
	struct job *job = load_file_ok(GOOD "full.yaml");
	const struct target_set *ts;

	if (!job)
		return;
	CHECK_STR(job->path, GOOD "full.yaml");
	CHECK_STR(job->name, "full-job_1");
	CHECK_INT(job->api.provider, API_AISA);
	CHECK_STR(job->api.base_url, "https://gateway.example.com/apis/v1");
	CHECK_STR(job->api.token, "sk-test-SECRET");
	CHECK(job->api.login == NULL);    /* another provider's: not kept */
	CHECK(job->api.password == NULL);
	CHECK_INT(job->api.body, BODY_ARRAY);
	CHECK_INT(job->api.concurrency, 30);
	CHECK_INT(job->api.requests_per_minute, 10000);
	CHECK_INT(job->api.timeout_seconds, 600);
	CHECK_INT(job->api.max_attempts, 20);
	CHECK_STR(job->db.url, "postgresql://etl@localhost:5433/etl?application_name=intersect");
	CHECK_STR(job->db.schema, "seo_data");
	CHECK_INT(job->db.connections, 4);
	CHECK_INT(job->n_sets, 2);

	ts = &job->sets[0];
	CHECK_STR(ts->name, "crm-vendors");
	CHECK_INT(ts->n_targets, 3);
	CHECK_STR(ts->targets[0], "hubspot.com");
	CHECK_STR(ts->targets[1], "salesforce.com");
	CHECK_STR(ts->targets[2], "zoho.com");
	CHECK_INT(ts->limit, 500);
	CHECK_INT(ts->max_rows, 2000000);
	CHECK_INT(ts->line, 36);
	CHECK_INT(ts->column, 5);
	CHECK_STR(req_json(ts),
		  "{\"targets\":{\"1\":\"hubspot.com\",\"2\":\"salesforce.com\",\"3\":\"zoho.com\"},"
		  "\"exclude_targets\":[\"spam.example\"],"
		  "\"filters\":[[\"1.rank\",\">\",100],\"and\",[\"2.backlinks\",\">\",5]],"
		  "\"backlinks_filters\":[[\"dofollow\",\"=\",true]],"
		  "\"order_by\":[\"1.rank,desc\",\"2.rank,asc\"],"
		  "\"internal_list_limit\":50,\"backlinks_status_type\":\"live\","
		  "\"include_subdomains\":false,\"include_indirect_links\":true,"
		  "\"exclude_internal_backlinks\":false,\"intersection_mode\":\"partial\","
		  "\"rank_scale\":\"one_hundred\",\"tag\":\"nightly\"}");

	ts = &job->sets[1];
	CHECK_STR(ts->name, "email_marketing");
	CHECK_INT(ts->n_targets, 2);
	CHECK_STR(ts->targets[0], "mailchimp.com");
	CHECK_STR(ts->targets[1], "https://www.sendinblue.com/pricing/");
	CHECK_INT(ts->limit, 10);
	CHECK_INT(ts->max_rows, 1);
	CHECK_INT(ts->line, 38);
	CHECK_INT(ts->column, 5);
	/* json-c escapes '/' unless told JSON_C_TO_STRING_NOSLASHESCAPE. */
	CHECK_CONTAINS(req_json(ts), "{\"targets\":{\"1\":\"mailchimp.com\",\"2\":\"https:\\/\\/www.sendinblue.com\\/pricing\\/\"},\"exclude_targets\"");
	CHECK_CONTAINS(req_json(ts), "\"rank_scale\":\"one_hundred\",\"tag\":\"email: weekly\"}");
	/* limit and max_rows are never in the template. */
	CHECK(strstr(req_json(ts), "limit\":10") == NULL);
	CHECK(strstr(req_json(ts), "max_rows") == NULL);
	CHECK(strstr(req_json(ts), "offset") == NULL);

	CHECK(job_find_set(job, "email_marketing") == &job->sets[1]);
	CHECK(job_find_set(job, "crm-vendors") == &job->sets[0]);
	CHECK(job_find_set(job, "nope") == NULL);
	CHECK(job_find_set(job, NULL) == NULL);
	CHECK(job_find_set(NULL, "crm-vendors") == NULL);
	job_free(job);
}

/* Same file, same bytes: the request is a function of the file alone. */
static void test_deterministic(void)
{
	struct job *a = load_file_ok(GOOD "full.yaml");
	struct job *b = load_file_ok(GOOD "full.yaml");
	size_t len = 0;
	char *text = read_file(GOOD "full.yaml", &len);
	struct etl_error err = {0};
	struct job *c = NULL;

	CHECK_INT(job_load_string(text, len, GOOD "full.yaml", &c, &err), ETL_OK);
	if (a && b && c) {
		for (size_t i = 0; i < a->n_sets; i++) {
			CHECK_STR(req_json(&a->sets[i]), req_json(&b->sets[i]));
			CHECK_STR(req_json(&a->sets[i]), req_json(&c->sets[i]));
		}
		/* Each set's request is its own tree: nothing shared between sets. */
		json_object_object_add(a->sets[0].request, "offset", json_object_new_int(0));
		json_object_array_add(json_object_object_get(a->sets[0].request, "filters"),
				      json_object_new_string("x"));
		CHECK(strstr(req_json(&a->sets[1]), "\"x\"") == NULL);
	}
	job_free(c);
	c = NULL;

	/* CRLF line ends and a UTF-8 byte-order mark change nothing. */
	{
		struct strbuf sb;
		sb_init(&sb);
		sb_puts(&sb, "\xEF\xBB\xBF");
		for (size_t i = 0; i < len; i++) {
			if (text[i] == '\n')
				sb_putc(&sb, '\r');
			sb_putc(&sb, text[i]);
		}
		CHECK_INT(job_load_string(sb.data, sb.len, "crlf.yaml", &c, &err), ETL_OK);
		if (b && c) {
			for (size_t i = 0; i < b->n_sets; i++) {
				CHECK_STR(req_json(&b->sets[i]), req_json(&c->sets[i]));
				CHECK_INT(c->sets[i].line, b->sets[i].line);
				CHECK_INT(c->sets[i].column, b->sets[i].column);
			}
		}
		sb_free(&sb);
	}
	free(text);
	job_free(a);
	job_free(b);
	job_free(c);
}

static void test_provider_defaults(void)
{
	struct job *job = load_file_ok(GOOD "minimal.yaml");

	if (job) {
		CHECK_STR(job->name, "minimal");
		CHECK_INT(job->api.provider, API_AISA);
		CHECK_STR(job_provider_name(job->api.provider), "aisa");
		CHECK_STR(job->api.base_url, "https://api.aisa.one/apis/v1");
		CHECK_INT(job->api.body, BODY_OBJECT);
		CHECK_STR(job->api.token, "sk-test-inline");
		CHECK(job->api.login == NULL && job->api.password == NULL);
		CHECK_INT(job->api.concurrency, 8);
		CHECK_INT(job->api.requests_per_minute, 600);
		CHECK_INT(job->api.timeout_seconds, 180);
		CHECK_INT(job->api.max_attempts, 5);
		CHECK_STR(job->db.url, "");
		CHECK_STR(job->db.schema, "dataforseo");
		CHECK_INT(job->db.connections, JOB_DEFAULT_CONNECTIONS);
		CHECK_INT(job->n_sets, 1);
		CHECK_INT(job->sets[0].limit, 1000);
		CHECK_INT(job->sets[0].max_rows, 10000);
		CHECK_INT(job->sets[0].line, 7);
		CHECK_INT(job->sets[0].column, 5);
		CHECK_STR(req_json(&job->sets[0]), "{\"targets\":{\"1\":\"example.com\"}}");
		job_free(job);
	}

	job = load_file_ok(GOOD "dataforseo.yaml");
	if (job) {
		CHECK_INT(job->api.provider, API_DATAFORSEO);
		CHECK_STR(job_provider_name(job->api.provider), "dataforseo");
		CHECK_STR(job->api.base_url, "https://api.dataforseo.com/v3");
		CHECK_INT(job->api.body, BODY_ARRAY);
		CHECK_STR(job->api.login, "dfs-user");
		CHECK_STR(job->api.password, "dfs-SECRET");
		CHECK(job->api.token == NULL);
		CHECK_STR(req_json(&job->sets[0]),
			  "{\"targets\":{\"1\":\"example.com\",\"2\":\"example.org\"}}");
		job_free(job);
	}
	CHECK_STR(job_provider_name((enum api_provider)7), "unknown");

	/* body: given explicitly wins over the provider's default */
	job = load_str_ok("version: 1\njob: t\napi:\n  provider: dataforseo\n  body: object\n"
			  "  login: u\n  password: p\ntarget_sets: [{name: a, targets: [a.com]}]\n");
	if (job) {
		CHECK_INT(job->api.body, BODY_OBJECT);
		job_free(job);
	}
	/* a numeric password is still a password: settings never sent take any scalar as text */
	job = load_str_ok("version: 1\njob: 2024\napi:\n  provider: dataforseo\n"
			  "  login: 12345\n  password: 0042\ntarget_sets: [{name: 7, targets: [a.com]}]\n");
	if (job) {
		CHECK_STR(job->name, "2024");
		CHECK_STR(job->api.login, "12345");
		CHECK_STR(job->api.password, "0042");
		CHECK_STR(job->sets[0].name, "7");
		job_free(job);
	}
}

static void test_merge(void)
{
	struct job *job = load_file_ok(GOOD "merge.yaml");

	if (!job)
		return;
	CHECK_INT(job->n_sets, 3);
	CHECK_STR(job->sets[0].name, "inherits");
	CHECK_STR(req_json(&job->sets[0]),
		  "{\"targets\":{\"1\":\"default-a.com\",\"2\":\"default-b.com\"},"
		  "\"filters\":[[\"1.rank\",\">\",100],\"and\",[\"2.rank\",\">\",100]],"
		  "\"order_by\":[\"1.rank,desc\"],\"tag\":\"from-defaults\"}");
	CHECK_INT(job->sets[0].limit, 200);
	CHECK_INT(job->sets[0].max_rows, 400);
	CHECK_INT(job->sets[0].n_targets, 2);
	CHECK_STR(job->sets[0].targets[1], "default-b.com");

	CHECK_STR(req_json(&job->sets[1]),
		  "{\"targets\":{\"1\":\"own.com\"},\"filters\":[[\"1.backlinks\",\">\",5]],"
		  "\"order_by\":[\"1.rank,desc\"],\"tag\":\"from-defaults\"}");
	CHECK_INT(job->sets[1].limit, 50);
	CHECK_INT(job->sets[1].max_rows, 400);
	CHECK_INT(job->sets[1].n_targets, 1);
	CHECK_STR(job->sets[1].targets[0], "own.com");

	CHECK_STR(req_json(&job->sets[2]),
		  "{\"targets\":{\"1\":\"default-a.com\",\"2\":\"default-b.com\"},"
		  "\"filters\":[[\"1.rank\",\">\",100],\"and\",[\"2.rank\",\">\",100]]}");
	CHECK_INT(job->sets[2].limit, 1000);
	CHECK_INT(job->sets[2].max_rows, 10000);
	job_free(job);
}

static void test_types_file(void)
{
	struct job *job = load_file_ok(GOOD "types.yaml");

	if (!job)
		return;
	/* fixed field order, whatever the order in the file */
	CHECK_STR(req_json(&job->sets[0]),
		  "{\"targets\":{\"1\":\"a.com\",\"2\":\"b.com\"},"
		  "\"filters\":[[\"1.rank\",\">\",100],\"and\",[\"1.rank\",\"<\",\"100\"],\"or\","
		  "[\"2.spam\",\"<=\",0.25],\"and\",[\"2.x\",\"<>\",-7],\"or\",[\"2.y\",\"=\",1000.0],"
		  "\"or\",[\"2.first_seen\",\">\",\"2024-01-01 00:00:00 +00:00\"],\"and\","
		  "[\"2.z\",\"like\",\"%.example\"]],"
		  "\"backlinks_filters\":[[[\"a\",\"=\",null],\"or\",[\"b\",\"=\",null]],\"and\","
		  "[\"c\",\"in\",[1,\"1\",1.5,true,\"true\",\"2\",null]]],"
		  "\"internal_list_limit\":16,\"include_subdomains\":true,\"tag\":\"123\"}");
	job_free(job);
}

static void test_flow_and_env_files(void)
{
	struct job *job = load_file_ok(GOOD "flow.yaml");

	if (job) {
		CHECK_STR(job->name, "flow");
		CHECK_INT(job->api.body, BODY_OBJECT);
		CHECK_STR(job->db.schema, "dataforseo");
		CHECK_INT(job->n_sets, 2);
		CHECK_INT(job->sets[1].line, 4);
		CHECK_INT(job->sets[1].column, 45);
		CHECK_STR(req_json(&job->sets[1]), "{\"targets\":{\"1\":\"b.com\"},\"tag\":\"7\"}");
		job_free(job);
	}

	job = load_file_ok(GOOD "env.yaml");
	if (job) {
		CHECK_STR(job->name, "envjob");
		CHECK_STR(job->api.base_url, "http://localhost:8089");
		CHECK_STR(job->api.token, "sk-test-SECRET");
		CHECK_INT(job->api.concurrency, 12);
		CHECK_STR(job->db.url, "");
		CHECK_STR(job->db.schema, "fallback_schema");
		CHECK_INT(job->sets[0].limit, 12);
		CHECK_STR(job->sets[0].targets[0], "hello.com");
		CHECK_STR(job->sets[0].targets[1], "lit-${ETL_TEST_WORD}.com");
		CHECK_STR(req_json(&job->sets[0]),
			  "{\"targets\":{\"1\":\"hello.com\",\"2\":\"lit-${ETL_TEST_WORD}.com\"},"
			  "\"tag\":\"pre-hello--post $5 $$\"}");
		job_free(job);
	}
}

static void test_example_job(void)
{
	struct job *job;

	unsetenv("AISA_BASE_URL");
	job = load_file_ok(EXAMPLE);
	if (job) {
		CHECK_STR(job->name, "example");
		CHECK_INT(job->api.provider, API_AISA);
		CHECK_STR(job->api.base_url, "https://api.aisa.one/apis/v1");
		CHECK_STR(job->api.token, "sk-aisa-SECRET");
		CHECK_INT(job->api.concurrency, 8);
		CHECK_STR(job->db.schema, "dataforseo");
		CHECK_INT(job->n_sets, 3);
		CHECK(job_find_set(job, "crm-vendors") != NULL);
		CHECK(job_find_set(job, "email-marketing") != NULL);
		CHECK(job_find_set(job, "project-tools") != NULL);
		CHECK_INT(job->sets[0].max_rows, 5000);
		CHECK_INT(job->sets[0].limit, 1000);
		CHECK_STR(req_json(&job->sets[0]),
			  "{\"targets\":{\"1\":\"hubspot.com\",\"2\":\"salesforce.com\",\"3\":\"zoho.com\"},"
			  "\"exclude_targets\":[\"pipedrive.com\"],"
			  "\"filters\":[[\"1.rank\",\">\",100],\"and\",[\"2.backlinks\",\">\",5]],"
			  "\"order_by\":[\"1.rank,desc\"]}");
		CHECK_INT(job->sets[2].n_targets, 4);
		job_free(job);
	}
	setenv("AISA_BASE_URL", "http://127.0.0.1:8089/", 1);
	job = load_file_ok(EXAMPLE);
	if (job) {
		CHECK_STR(job->api.base_url, "http://127.0.0.1:8089");
		job_free(job);
	}
	unsetenv("AISA_BASE_URL");
}

/* ------------------------------------------- snippets: expansion and types */

static const struct {
	const char *extra;  /* appended to HEAD, so it starts at line 8 */
	const char *json;   /* the request, or NULL when an error is expected */
	const char *msg;    /* the error */
} snippets[] = {
	/* ${VAR} expansion */
	{"    tag: ${ETL_TEST_WORD}\n", REQ(",\"tag\":\"hello\""), NULL},
	{"    tag: x-${ETL_TEST_WORD}-y\n", REQ(",\"tag\":\"x-hello-y\""), NULL},
	{"    tag: \"${ETL_TEST_WORD}${ETL_TEST_WORD}\"\n", REQ(",\"tag\":\"hellohello\""), NULL},
	{"    tag: ${ETL_TEST_UNSET:-fallback}\n", REQ(",\"tag\":\"fallback\""), NULL},
	{"    tag: ${ETL_TEST_EMPTY:-fallback}\n", REQ(",\"tag\":\"fallback\""), NULL},
	{"    tag: \"${ETL_TEST_UNSET:-a b: c}\"\n", REQ(",\"tag\":\"a b: c\""), NULL},
	{"    tag: \"${ETL_TEST_EMPTY}\"\n", REQ(",\"tag\":\"\""), NULL},
	{"    tag: \"${ETL_TEST_UNSET:-}\"\n", REQ(",\"tag\":\"\""), NULL},
	{"    tag: a${ETL_TEST_UNSET:-}b\n", REQ(",\"tag\":\"ab\""), NULL},
	{"    tag: ${ETL_TEST_UNSET:-}\n", REQ(""), NULL}, /* plain and empty: null, unset */
	{"    tag: $${ETL_TEST_WORD}\n", REQ(",\"tag\":\"${ETL_TEST_WORD}\""), NULL},
	{"    tag: \"$${ETL_TEST_UNSET}\"\n", REQ(",\"tag\":\"${ETL_TEST_UNSET}\""), NULL},
	{"    tag: 'cost $5 $$ $ {x} ${ETL_TEST_WORD}'\n", REQ(",\"tag\":\"cost $5 $$ $ {x} hello\""), NULL},
	{"    tag: \"a $${ b\"\n", REQ(",\"tag\":\"a ${ b\""), NULL},
	{"    tag: ${ETL_TEST_NESTED}\n", REQ(",\"tag\":\"${ETL_TEST_WORD}\""), NULL},
	{"    tag: ${ETL_TEST_SPACE}\n", REQ(",\"tag\":\"a: b # c\""), NULL},
	{"    tag: |\n      ${ETL_TEST_WORD}\n      line two\n", REQ(",\"tag\":\"hello\\nline two\\n\""), NULL},
	{"    internal_list_limit: ${ETL_TEST_NUM}\n", REQ(",\"internal_list_limit\":12"), NULL},
	{"    include_subdomains: ${ETL_TEST_BOOL}\n", REQ(",\"include_subdomains\":false"), NULL},
	{"    tag: \"${ETL_TEST_NUM}\"\n", REQ(",\"tag\":\"12\""), NULL},
	/* unquoted ${} is block style only: { and } end a plain scalar in a flow list */
	{"    filters:\n      - 1.rank\n      - \">\"\n      - ${ETL_TEST_NUM}\n", REQ(",\"filters\":[\"1.rank\",\">\",12]"), NULL},
	{"    filters: [\"1.rank\", \">\", \"${ETL_TEST_NUM}\"]\n", REQ(",\"filters\":[\"1.rank\",\">\",\"12\"]"), NULL},
	{"    internal_list_limit: \"${ETL_TEST_NUM}\"\n", NULL,
	 "t.yaml:8:26: target_sets[0].internal_list_limit: expected an integer from 1 to 1000, got a string (\"12\")"},
	{"    tag: ${ETL_TEST_NUM}\n", NULL, "t.yaml:8:10: target_sets[0].tag: expected a string, got an integer (12)"},
	{"    tag: ${ETL_TEST_UNSET}\n", NULL, "t.yaml:8:10: target_sets[0].tag: environment variable ETL_TEST_UNSET is not set"},
	{"    tag: \"x ${ETL_TEST_UNSET} y\"\n", NULL, "t.yaml:8:10: target_sets[0].tag: environment variable ETL_TEST_UNSET is not set"},
	{"    tag: ${ETL_TEST_WORD\n", NULL, "t.yaml:8:10: target_sets[0].tag: an unterminated ${"},
	{"    tag: \"${ETL_TEST_UNSET:-x\"\n", NULL, "t.yaml:8:10: target_sets[0].tag: an unterminated ${"},
	{"    tag: \"${\"\n", NULL, "t.yaml:8:10: target_sets[0].tag: an unterminated ${"},
	{"    tag: \"${}\"\n", NULL, "t.yaml:8:10: target_sets[0].tag: a bad variable name after ${"},
	{"    tag: ${ETL-TEST}\n", NULL, "t.yaml:8:10: target_sets[0].tag: a bad variable name after ${"},
	{"    tag: ${9LIVES}\n", NULL, "t.yaml:8:10: target_sets[0].tag: a bad variable name after ${"},
	{"    tag: ${ETL_TEST_WORD:=x}\n", NULL, "t.yaml:8:10: target_sets[0].tag: an unsupported expansion"},
	{"    filters: [[\"a\", \"=\", \"${ETL_TEST_UNSET}\"]]\n", NULL,
	 "t.yaml:8:26: target_sets[0].filters[0][2]: environment variable ETL_TEST_UNSET is not set"},
	/* types: plain scalars resolve by the YAML 1.2 core schema; quoted and !!str stay strings */
	{"    filters: [\"f\", \"=\", 100]\n", REQ(",\"filters\":[\"f\",\"=\",100]"), NULL},
	{"    filters: [\"f\", \"=\", \"100\"]\n", REQ(",\"filters\":[\"f\",\"=\",\"100\"]"), NULL},
	{"    filters: [\"f\", \"=\", '100']\n", REQ(",\"filters\":[\"f\",\"=\",\"100\"]"), NULL},
	{"    filters: [\"f\", \"=\", !!str 100]\n", REQ(",\"filters\":[\"f\",\"=\",\"100\"]"), NULL},
	{"    filters: [\"f\", \"=\", ! 100]\n", REQ(",\"filters\":[\"f\",\"=\",\"100\"]"), NULL},
	{"    filters:\n      - f\n      - \"=\"\n      - |-\n        100\n", REQ(",\"filters\":[\"f\",\"=\",\"100\"]"), NULL},
	{"    filters: [\"f\", \"=\", +12]\n", REQ(",\"filters\":[\"f\",\"=\",12]"), NULL},
	{"    filters: [\"f\", \"=\", 007]\n", REQ(",\"filters\":[\"f\",\"=\",7]"), NULL},
	{"    filters: [\"f\", \"=\", 0o17]\n", REQ(",\"filters\":[\"f\",\"=\",15]"), NULL},
	{"    filters: [\"f\", \"=\", 0x1f]\n", REQ(",\"filters\":[\"f\",\"=\",31]"), NULL},
	{"    filters: [\"f\", \"=\", 9223372036854775807]\n", REQ(",\"filters\":[\"f\",\"=\",9223372036854775807]"), NULL},
	{"    filters: [\"f\", \"=\", -9223372036854775808]\n", REQ(",\"filters\":[\"f\",\"=\",-9223372036854775808]"), NULL},
	{"    filters: [\"f\", \"=\", 1_000]\n", REQ(",\"filters\":[\"f\",\"=\",\"1_000\"]"), NULL},
	{"    filters: [\"f\", \"=\", 0.1]\n", REQ(",\"filters\":[\"f\",\"=\",0.1]"), NULL},
	{"    filters: [\"f\", \"=\", .5]\n", REQ(",\"filters\":[\"f\",\"=\",0.5]"), NULL},
	{"    filters: [\"f\", \"=\", -2.50]\n", REQ(",\"filters\":[\"f\",\"=\",-2.5]"), NULL},
	{"    filters: [\"f\", \"=\", 1e3]\n", REQ(",\"filters\":[\"f\",\"=\",1000.0]"), NULL},
	{"    filters: [\"f\", \"=\", 2.]\n", REQ(",\"filters\":[\"f\",\"=\",2.0]"), NULL},
	{"    filters: [\"f\", \"=\", true]\n", REQ(",\"filters\":[\"f\",\"=\",true]"), NULL},
	{"    filters: [\"f\", \"=\", FALSE]\n", REQ(",\"filters\":[\"f\",\"=\",false]"), NULL},
	{"    filters: [\"f\", \"=\", \"true\"]\n", REQ(",\"filters\":[\"f\",\"=\",\"true\"]"), NULL},
	{"    filters: [\"f\", \"=\", yes]\n", REQ(",\"filters\":[\"f\",\"=\",\"yes\"]"), NULL},
	{"    filters: [\"f\", \"=\", null]\n", REQ(",\"filters\":[\"f\",\"=\",null]"), NULL},
	{"    filters: [\"f\", \"=\", ~]\n", REQ(",\"filters\":[\"f\",\"=\",null]"), NULL},
	{"    filters: [\"f\", \"=\", \"null\"]\n", REQ(",\"filters\":[\"f\",\"=\",\"null\"]"), NULL},
	{"    filters: [\"f\", \"regex\", \"^a.*\\\\.com$\"]\n", REQ(",\"filters\":[\"f\",\"regex\",\"^a.*\\\\.com$\"]"), NULL},
	{"    filters: [\"f\", not_in, [1, \"1\", true, null]]\n", REQ(",\"filters\":[\"f\",\"not_in\",[1,\"1\",true,null]]"), NULL},
	{"    filters: [[[[\"a\", \"=\", 1]]]]\n", REQ(",\"filters\":[[[[\"a\",\"=\",1]]]]"), NULL},
	{"    filters: [\"f\", \"=\", 9223372036854775808]\n", NULL, "t.yaml:8:25: target_sets[0].filters[2]: integer 9223372036854775808 is out of range"},
	{"    filters: [\"f\", \"=\", 1e400]\n", NULL, "t.yaml:8:25: target_sets[0].filters[2]: 1e400 has no JSON form"},
	{"    filters: [\"f\", \"=\", .NaN]\n", NULL, "t.yaml:8:25: target_sets[0].filters[2]: .NaN has no JSON form"},
	{"    filters: [\"f\", \"=\", -.inf]\n", NULL, "t.yaml:8:25: target_sets[0].filters[2]: -.inf has no JSON form"},
	{"    filters: [\"f\", \"in\", [[1]]]\n", NULL, "t.yaml:8:27: target_sets[0].filters[2][0]: expected a scalar value, got a list"},
	{"    filters: [\"f\", \"in\", []]\n", NULL, "t.yaml:8:26: target_sets[0].filters[2]: operator in takes a non-empty list of values, got an empty list"},
	{"    filters: [[\"f\", \"=\", 1], and, []]\n", NULL, "t.yaml:8:35: target_sets[0].filters[2]: an empty filter"},
	{"    filters: [[\"f\", \"=\", 1], and, x]\n", NULL, "t.yaml:8:35: target_sets[0].filters[2]: expected a condition [field, operator, value] or a nested list, got a string (\"x\")"},
	{"    filters: [[\"\", \"=\", 1]]\n", NULL, "t.yaml:8:16: target_sets[0].filters[0][0]: an empty field name"},
	{"    include_subdomains: 1\n", NULL, "t.yaml:8:25: target_sets[0].include_subdomains: expected true or false, got an integer (1)"},
	{"    include_subdomains: ~\n", REQ(""), NULL},
	{"    intersection_mode: \"partial\"\n", REQ(",\"intersection_mode\":\"partial\""), NULL},
	{"    exclude_targets: [b.com, 17]\n", NULL, "t.yaml:8:30: target_sets[0].exclude_targets[1]: expected a non-empty string, got an integer (17)"},
	{"    exclude_targets: []\n", NULL, "t.yaml:8:22: target_sets[0].exclude_targets: an empty list"},
	{"    order_by: [\",asc\"]\n", NULL, "t.yaml:8:16: target_sets[0].order_by[0]: expected a rule \"field,asc\" or \"field,desc\", got \",asc\""},
	{"    order_by: [\"intersections_count,desc\", \"1.rank,asc\"]\n",
	 REQ(",\"order_by\":[\"intersections_count,desc\",\"1.rank,asc\"]"), NULL},
	{"    tag: \"\xc3\xa9t\xc3\xa9\"\n", REQ(",\"tag\":\"\xc3\xa9t\xc3\xa9\""), NULL},
	/* keys */
	{"    limit: 1\n    limit: 2\n", NULL, "t.yaml:9:5: target_sets[0].limit: duplicate key (first at 8:5)"},
	{"    exclude_target: [b.com]\n", NULL, "t.yaml:8:5: target_sets[0].exclude_target: unknown key\nhint: did you mean 'exclude_targets'?"},
	{"    include_subdomain: true\n", NULL, "hint: did you mean 'include_subdomains'?"},
	{"    targest: [a.com]\n", NULL, "t.yaml:8:5: target_sets[0].targest: unknown key\nhint: did you mean 'targets'?"},
	{"    concurrency: 4\n", NULL, "t.yaml:8:5: target_sets[0].concurrency: unknown key here\nhint: 'concurrency' belongs under api:"},
	{"    Tag: x\n", NULL, "hint: did you mean 'tag'?"},
	{"    \"\": x\n", NULL, "t.yaml:8:5: target_sets[0].: unknown key"},
	{"    tag:\n      nested: map\n", NULL, "t.yaml:9:7: target_sets[0].tag: expected a string, got a mapping"},
	{"    max_rows: 10000000\n", REQ(""), NULL},
	{"    max_rows: 0\n", NULL, "t.yaml:8:15: target_sets[0].max_rows: expected an integer from 1 to 10000000, got an integer (0)"},
	{"  - name: a\n    targets: [b.com]\n", NULL,
	 "t.yaml:8:11: target_sets[1].name: duplicate target set name \"a\" (first at 6:11)"},
};

static void test_snippets(void)
{
	for (size_t i = 0; i < ETL_ARRAY_LEN(snippets); i++) {
		char *yaml = xasprintf("%s%s", HEAD, snippets[i].extra);

		if (snippets[i].json) {
			struct job *job = load_str_ok(yaml);
			if (job) {
				CHECK_STR(req_json(&job->sets[0]), snippets[i].json);
				job_free(job);
			}
		} else {
			expect_str_err(yaml, strlen(yaml), ETL_EUSAGE, snippets[i].msg);
		}
		free(yaml);
	}
	/* an env value is taken literally: a number from ${} in a plain scalar is a number */
	{
		struct job *job = load_str_ok(HEAD "    limit: ${ETL_TEST_NUM}\n    max_rows: ${ETL_TEST_NUM}\n");
		if (job) {
			CHECK_INT(job->sets[0].limit, 12);
			CHECK_INT(job->sets[0].max_rows, 12);
			job_free(job);
		}
	}
}

/* ------------------------------------ archive, retention, cost ceilings */

static void test_history_keys(void)
{
	static const struct {
		const char *root;  /* keys put before HEAD's target_sets (line 1 onwards) */
		int archive, keep_snapshots, keep_archive;
		double max_cost;
		const char *msg;   /* error expected, or NULL */
	} cases[] = {
		{"", 1, 0, 0, 0, NULL},
		{"archive: false\n", 0, 0, 0, 0, NULL},
		{"retention:\n  keep_snapshots: 400 days\n  keep_archive: 8 weeks\n", 1, 400, 56, 0, NULL},
		{"retention: {keep_snapshots: 30}\n", 1, 30, 0, 0, NULL},
		{"retention: {keep_snapshots: 1 day}\n", 1, 1, 0, 0, NULL},
		{"max_cost_usd: 12.5\n", 1, 0, 0, 12.5, NULL},
		{"max_cost_usd: 3\n", 1, 0, 0, 3, NULL},
		{"archive: \"no\"\n", 0, 0, 0, 0, "t.yaml:1:10: archive: expected true or false"},
		{"retention: {keep_snapshots: 400 years}\n", 0, 0, 0, 0,
		 "t.yaml:1:29: retention.keep_snapshots: expected a period such as 400 days"},
		{"retention: {keep_snapshots: 0}\n", 0, 0, 0, 0, "retention.keep_snapshots: expected a period"},
		{"retention: {keep_snapshots: 5214 weeks, keep_archive: 36500}\n", 1, 36498, 36500, 0, NULL},
		{"retention: {keep_snapshots: 36501}\n", 0, 0, 0, 0,
		 "t.yaml:1:29: retention.keep_snapshots: an integer (36501) is more than the maximum of 36500 days"},
		{"retention: {keep_snapshots: 99999999999999999999 days}\n", 0, 0, 0, 0,
		 "retention.keep_snapshots: a string (\"99999999999999999999 days\") is more than the maximum"},
		{"retention: {keep_snapshots: -3 days}\n", 0, 0, 0, 0, "retention.keep_snapshots: expected a period"},
		{"retention: {keep_snapshots: 2 days ago}\n", 0, 0, 0, 0, "retention.keep_snapshots: expected a period"},
		{"retention: {keep_snapshot: 3}\n", 0, 0, 0, 0,
		 "t.yaml:1:13: retention.keep_snapshot: unknown key\nhint: did you mean 'keep_snapshots'?"},
		{"max_cost_usd: 0\n", 0, 0, 0, 0, "t.yaml:1:15: max_cost_usd: expected an amount in USD above 0"},
		{"max_cost_usd: \"5\"\n", 0, 0, 0, 0, "max_cost_usd: expected an amount in USD"},
	};

	for (size_t i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		char *yaml = xasprintf("%s%s", cases[i].root, HEAD);

		if (!cases[i].msg) {
			struct job *job = load_str_ok(yaml);
			if (job) {
				CHECK_INT(job->archive, cases[i].archive);
				CHECK_INT(job->keep_snapshots_days, cases[i].keep_snapshots);
				CHECK_INT(job->keep_archive_days, cases[i].keep_archive);
				CHECK(job->max_cost_usd == cases[i].max_cost);
				job_free(job);
			}
		} else {
			struct etl_error err = {0, ""};
			struct job *job = NULL;

			CHECK_INT(job_load_string(yaml, strlen(yaml), "t.yaml", &job, &err), ETL_EUSAGE);
			CHECK_CONTAINS(err.msg, cases[i].msg);
			job_free(job);
		}
		free(yaml);
	}
	/* a set's own ceiling: ours, never sent */
	{
		struct job *job = load_str_ok(HEAD "    max_cost_usd: 0.5\n");
		if (job) {
			CHECK(job->sets[0].max_cost_usd == 0.5);
			CHECK_STR(req_json(&job->sets[0]), REQ(""));
			job_free(job);
		}
	}
}

/* --------------------------------------------------------- api settings */

static const struct {
	const char *url;
	const char *stored; /* NULL: refused */
} urls[] = {
	{"https://api.example.com", "https://api.example.com"},
	{"https://api.example.com///", "https://api.example.com"},
	{"HTTPS://Api.Example.com:8443/apis/v1/", "HTTPS://Api.Example.com:8443/apis/v1"},
	{"http://127.0.0.1:8089/", "http://127.0.0.1:8089"},
	{"http://127.255.255.254/api", "http://127.255.255.254/api"},
	{"http://localhost", "http://localhost"},
	{"HTTP://LocalHost:80/x/", "HTTP://LocalHost:80/x"},
	{"http://[::1]:8089/v1", "http://[::1]:8089/v1"},
	{"http://user:pw@localhost:1/", NULL},
	{"https://user:SECRET@api.example.com/v1", NULL},
	{"https://api.example.com/v1/a@b", "https://api.example.com/v1/a@b"},
	{"http://127.0.0.1.nip.io/", NULL},
	{"http://localhost.example.com", NULL},
	{"http://[::2]/", NULL},
	{"http://128.0.0.1/", NULL},
	{"http://127.0.0.256/", NULL},
	{"http://127.0.0/", NULL},
	{"http://user:SECRET@evil.example/", NULL},
	{"http://", NULL},
	{"api.example.com", NULL},
	{"https://api.example.com/a b", NULL},
	{"https://api.example.com/#x", NULL},
	/* host and port (issue 17: an empty port passed validate, and the run went to port 80) */
	{"http://127.0.0.1:/apis/v1", NULL},
	{"https://api.example.com:/v1", NULL},
	{"https://api.example.com:0/", NULL},
	{"https://api.example.com:65536/", NULL},
	{"https://api.example.com:443x/", NULL},
	{"https://api.example.com:-1/", NULL},
	{"https://api.example.com:443:1/", NULL},
	{"https://api..example.com/", NULL},
	{"https://.api.example.com/", NULL},
	{"https://api.exa%mple.com/", NULL},
	{"https://api_x.example.com/", "https://api_x.example.com"},
	{"http://[::1/v1", NULL},
	{"http://[::1]x/v1", NULL},
	{"https://api.example.com:65535", "https://api.example.com:65535"},
	{"http://localhost:1/", "http://localhost:1"},
};

static void test_base_urls(void)
{
	for (size_t i = 0; i < ETL_ARRAY_LEN(urls); i++) {
		char *yaml = xasprintf("version: 1\njob: t\napi:\n  token: x\n  base_url: \"%s\"\n"
				       "target_sets: [{name: a, targets: [a.com]}]\n", urls[i].url);
		if (urls[i].stored) {
			struct job *job = load_str_ok(yaml);
			if (job) {
				CHECK_STR(job->api.base_url, urls[i].stored);
				job_free(job);
			}
		} else {
			expect_str_err(yaml, strlen(yaml), ETL_EUSAGE, "t.yaml:5:13: api.base_url: ");
		}
		free(yaml);
	}
	/* the other provider's default */
	{
		struct job *job = load_str_ok("version: 1\njob: t\napi: {provider: dataforseo, login: u, "
					      "password: p, base_url: 'https://sandbox.dataforseo.com/v3/'}\n"
					      "target_sets: [{name: a, targets: [a.com]}]\n");
		if (job) {
			CHECK_STR(job->api.base_url, "https://sandbox.dataforseo.com/v3");
			job_free(job);
		}
	}
}

#define TOKEN_FILE_JOB \
	"version: 1\njob: t\napi:\n  token_file: %s\ntarget_sets: [{name: a, targets: [a.com]}]\n"

/*
 * A command loads the credentials it uses only (job_load_file_for): an unset
 * ${VAR} or an unreadable token_file in the API's credentials is no error
 * for validate and plan (need 0) nor for runs and report (JOB_NEED_DB); the
 * database's URL is for need 0 only. Each is an error for run (JOB_NEED_ALL).
 */
static void test_need(void)
{
	static const struct {
		const char *yaml;
		unsigned need;
		const char *error; /* NULL: loads, with unset_env */
		const char *unset;
	} cases[] = {
		{"api: {token: '${ETL_TEST_UNSET}'}\n", 0, NULL, "ETL_TEST_UNSET"},
		{"api: {token: '${ETL_TEST_UNSET}'}\n", JOB_NEED_DB, NULL, "ETL_TEST_UNSET"},
		{"api: {token: '${ETL_TEST_UNSET}'}\n", JOB_NEED_ALL, "api.token: environment variable ETL_TEST_UNSET is not set", NULL},
		{"api: {token_file: /nonexistent/token}\n", 0, NULL, NULL},
		{"api: {token_file: /nonexistent/token}\n", JOB_NEED_API, "api.token_file: cannot open /nonexistent/token", NULL},
		{"api: {provider: dataforseo, login: '${ETL_TEST_UNSET}', password: '${ETL_TEST_UNSET2}'}\n", 0, NULL, "ETL_TEST_UNSET"},
		{"api: {token: x}\ndatabase: {url: '${ETL_TEST_UNSET}'}\n", 0, NULL, "ETL_TEST_UNSET"},
		{"api: {token: x}\ndatabase: {url: '${ETL_TEST_UNSET}'}\n", JOB_NEED_DB, "database.url: environment variable ETL_TEST_UNSET is not set\nhint: export ETL_TEST_UNSET in the environment", NULL},
		/* a missing key is the file's error, whatever the command */
		{"api: {provider: aisa}\n", 0, "api.token: provider aisa needs a non-empty token", NULL},
		/* only credentials: any other unset variable stays an error */
		{"api: {token: x, base_url: '${ETL_TEST_UNSET}'}\n", 0, "api.base_url: environment variable ETL_TEST_UNSET is not set", NULL},
	};
	char path[1024];

	snprintf(path, sizeof(path), "%s/need.yaml", tmpdir);
	for (size_t i = 0; i < ETL_ARRAY_LEN(cases); i++) {
		char *yaml = xasprintf("version: 1\njob: t\n%starget_sets: [{name: a, targets: [a.com]}]\n",
				       cases[i].yaml);
		struct etl_error err = {0};
		struct job *job = NULL;
		int rc;

		write_file(path, yaml, strlen(yaml));
		rc = job_load_file_for(path, cases[i].need, &job, &err);
		if (cases[i].error) {
			CHECK_INT(rc, ETL_EUSAGE);
			CHECK_CONTAINS(err.msg, cases[i].error);
		} else {
			CHECK_INT(rc, 0);
			if (job && cases[i].unset)
				CHECK_STR(job->unset_env, cases[i].unset);
			else if (job)
				CHECK(job->unset_env == NULL);
		}
		job_free(job);
		free(yaml);
	}
}

/* token_file / password_file: read, trailing whitespace stripped, relative to the job file. */
static void test_secret_files(void)
{
	char *dir_job = xasprintf("%s/job.yaml", tmpdir);
	char *tok = xasprintf("%s/token.txt", tmpdir);
	char *empty = xasprintf("%s/empty.txt", tmpdir);
	char *multi = xasprintf("%s/multi.txt", tmpdir);
	char *big = xasprintf("%s/big.txt", tmpdir);
	char *pw = xasprintf("%s/pw.txt", tmpdir);
	struct etl_error err = {0};
	struct job *job = NULL;
	char *yaml, *bigdata;

	write_file(tok, "sk-file-SECRET \t\r\n\n", 19);
	write_file(empty, " \n\t\n", 4);
	write_file(multi, "sk-SECRET\nline2\n", 16);
	write_file(pw, "pw-SECRET\n", 10);
	bigdata = xmalloc(70000);
	memset(bigdata, 'k', 70000);
	write_file(big, bigdata, 70000);
	free(bigdata);

	/* relative to the job file's directory, not the cwd */
	yaml = xasprintf("version: 1\njob: t\napi:\n  token_file: token.txt\n"
			 "target_sets: [{name: a, targets: [a.com]}]\n");
	write_file(dir_job, yaml, strlen(yaml));
	free(yaml);
	job = load_file_ok(dir_job);
	if (job) {
		CHECK_STR(job->api.token, "sk-file-SECRET");
		job_free(job);
	}

	/* the path from the environment */
	setenv("ETL_TEST_TOKEN_FILE", tok, 1);
	job = load_str_ok("version: 1\njob: t\napi:\n  token_file: ${ETL_TEST_TOKEN_FILE}\n"
			  "target_sets: [{name: a, targets: [a.com]}]\n");
	if (job) {
		CHECK_STR(job->api.token, "sk-file-SECRET");
		job_free(job);
	}

	yaml = xasprintf(TOKEN_FILE_JOB, empty);
	CHECK_INT(job_load_string(yaml, strlen(yaml), "t.yaml", &job, &err), ETL_EUSAGE);
	CHECK_CONTAINS(err.msg, "t.yaml:4:15: api.token_file: ");
	CHECK_CONTAINS(err.msg, "/empty.txt is empty");
	check_message(&err, "t.yaml");
	free(yaml);

	yaml = xasprintf(TOKEN_FILE_JOB, multi);
	expect_str_err(yaml, strlen(yaml), ETL_EUSAGE, "t.yaml:4:15: api.token_file: contains a control character");
	free(yaml);
	yaml = xasprintf(TOKEN_FILE_JOB, big);
	expect_str_err(yaml, strlen(yaml), ETL_EUSAGE, "/big.txt is larger than 65536 bytes");
	free(yaml);
	yaml = xasprintf(TOKEN_FILE_JOB, tmpdir);
	expect_str_err(yaml, strlen(yaml), ETL_EUSAGE, "is not a regular file");
	free(yaml);

	yaml = xasprintf("version: 1\njob: t\napi:\n  provider: dataforseo\n  login: me\n"
			 "  password_file: %s\ntarget_sets: [{name: a, targets: [a.com]}]\n", pw);
	job = load_str_ok(yaml);
	if (job) {
		CHECK_STR(job->api.password, "pw-SECRET");
		CHECK_STR(job->api.login, "me");
		job_free(job);
	}
	free(yaml);

	unlink(tok);
	unlink(empty);
	unlink(multi);
	unlink(big);
	unlink(pw);
	unlink(dir_job);
	free(tok);
	free(empty);
	free(multi);
	free(big);
	free(pw);
	free(dir_job);
}

/* ------------------------------------------------------------- hostile */

static unsigned long long rng_state;

static unsigned long long rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_binary_files(void)
{
	char *path = xasprintf("%s/random.bin", tmpdir);

	/* Random bytes, seeded so a failure can be replayed. */
	for (unsigned seed = 1; seed <= 32; seed++) {
		size_t len = 1 + (size_t)seed * 97;
		char *data = xmalloc(len);
		struct etl_error err = {0};
		struct job *job = NULL;

		rng_state = 0x9E3779B97F4A7C15ULL * seed;
		for (size_t i = 0; i < len; i++)
			data[i] = (char)(rng() >> 24);
		write_file(path, data, len);
		CHECK_INT(job_load_file(path, &job, &err), ETL_EUSAGE);
		CHECK(job == NULL);
		check_message(&err, path);

		/* printable garbage with line breaks: it gets as far as the YAML parser */
		for (size_t i = 0; i < len; i++)
			data[i] = (rng() % 8 == 0) ? '\n' : (char)(' ' + rng() % 95);
		CHECK_INT(job_load_string(data, len, "t.yaml", &job, &err), ETL_EUSAGE);
		CHECK(job == NULL);
		check_message(&err, "t.yaml");
		free(data);
	}
	unlink(path);
	free(path);

	/* NUL bytes, reported where they are */
	expect_str_err("version: 1\0\njob: t\n", 19, ETL_EUSAGE, "t.yaml:1:11: a NUL byte; is this a binary file?");
	expect_str_err("\xff\xfe" "v\0e\0r\0", 8, ETL_EUSAGE, "t.yaml:1:1: invalid UTF-8 (byte 0xFF)");
	expect_str_err("job: t\ntag: \xe2\x82", 14, ETL_EUSAGE, "t.yaml:2:6: invalid UTF-8 (byte 0xE2)");
	expect_str_err("", 0, ETL_EUSAGE, "t.yaml:1:1: empty job file");
	expect_str_err(NULL, 0, ETL_EUSAGE, "t.yaml:1:1: empty job file");
	expect_str_err("---\n", 4, ETL_EUSAGE, "t.yaml:2:1: empty job file");
	expect_str_err("${ETL_TEST_UNSET:-}\n", 20, ETL_EUSAGE, "t.yaml:1:1: empty job file");
	expect_str_err("~\n", 2, ETL_EUSAGE, "t.yaml:1:1: empty job file");
}

static void test_large_files(void)
{
	char *path = xasprintf("%s/large.yaml", tmpdir);
	struct etl_error err = {0};
	struct job *job = NULL;
	char block[65536], *bigdata;
	struct strbuf sb;
	FILE *f;

	/* 10 MiB: refused from its size, before a byte is parsed */
	memset(block, '#', sizeof(block));
	for (size_t i = 63; i < sizeof(block); i += 64)
		block[i] = '\n';
	f = fopen(path, "wb");
	CHECK(f != NULL);
	if (f) {
		for (int i = 0; i < 160; i++)
			CHECK_INT(fwrite(block, 1, sizeof(block), f), sizeof(block));
		CHECK_INT(fclose(f), 0);
	}
	CHECK_INT(job_load_file(path, &job, &err), ETL_EUSAGE);
	CHECK(job == NULL);
	CHECK_CONTAINS(err.msg, ": 10485760 bytes; a job file may be at most 1048576 bytes");
	check_message(&err, path);

	/* exactly at the limit: fine; one byte more: refused */
	sb_init(&sb);
	sb_puts(&sb, HEAD);
	while (sb.len + 64 <= JOB_MAX_FILE_BYTES)
		sb_puts(&sb, "# padding padding padding padding padding padding padding paddin\n");
	while (sb.len < JOB_MAX_FILE_BYTES - 1)
		sb_putc(&sb, '#');
	sb_putc(&sb, '\n');
	CHECK_INT(sb.len, JOB_MAX_FILE_BYTES);
	write_file(path, sb.data, sb.len);
	job = load_file_ok(path);
	job_free(job);
	sb_putc(&sb, '\n');
	write_file(path, sb.data, sb.len);
	CHECK_INT(job_load_file(path, &job, &err), ETL_EUSAGE);
	CHECK_CONTAINS(err.msg, ": 1048577 bytes; a job file may be at most 1048576 bytes");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml: 1048577 bytes; a job file may be at most 1048576 bytes");

	/* A very long scalar is only a long string. */
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    tag: ");
	for (int i = 0; i < 900000; i++)
		sb_putc(&sb, 'x');
	sb_putc(&sb, '\n');
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml:8:10: target_sets[0].tag: 900000 characters; at most 255 are allowed");

	/* A very long key: libyaml's own limit, or ours; the message stays short. */
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    ");
	for (int i = 0; i < 1000; i++)
		sb_putc(&sb, 'k');
	sb_puts(&sb, ": 1\n");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml:8:5: target_sets[0].kkkkkkkkkk");
	CHECK_INT(job_load_string(sb.data, sb.len, "t.yaml", &job, &err), ETL_EUSAGE);
	CHECK(strlen(err.msg) < 200);
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    \"");
	for (int i = 0; i < 500000; i++)
		sb_putc(&sb, 'k');
	sb_puts(&sb, "\": 1\n");
	CHECK_INT(job_load_string(sb.data, sb.len, "t.yaml", &job, &err), ETL_EUSAGE);
	CHECK(job == NULL);
	check_message(&err, "t.yaml");

	/* The environment cannot blow a small file up: 20 x 100 KB would be 2 MB. */
	bigdata = xmalloc(100001);
	memset(bigdata, 'b', 100000);
	bigdata[100000] = '\0';
	setenv("ETL_TEST_BIG", bigdata, 1);
	free(bigdata);
	job = load_str_ok(HEAD "    exclude_targets: [\"${ETL_TEST_BIG}\"]\n"); /* 100 KB: fine */
	if (job) {
		CHECK_INT(strlen(json_object_get_string(json_object_array_get_idx(
			json_object_object_get(job->sets[0].request, "exclude_targets"), 0))), 100000);
		job_free(job);
	}
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    exclude_targets: [a]\n    tag: \"");
	for (int i = 0; i < 20; i++)
		sb_puts(&sb, "${ETL_TEST_BIG}");
	sb_puts(&sb, "\"\n");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml:9:10: target_sets[0].tag: ${} expansions make the job more than 1048576 bytes");
	unsetenv("ETL_TEST_BIG");

	/* Too many nodes, each one small. */
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    tag: [");
	for (int i = 0; i < 120000; i++)
		sb_puts(&sb, "1,");
	sb_puts(&sb, "1]\n");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "more than 100000 YAML nodes; this is not a job file");

	/* Many sets with one name: the duplicate is found at the second. */
	sb_reset(&sb);
	sb_puts(&sb, HEAD);
	for (int i = 0; i < 2000; i++)
		sb_puts(&sb, "  - {name: a, targets: [a.com]}\n");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml:8:12: target_sets[1].name: duplicate target set name \"a\" (first at 6:11)");

	sb_free(&sb);
	unlink(path);
	free(path);
}

static void test_deep_nesting(void)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_puts(&sb, HEAD "    tag: ");
	for (int i = 0; i < 10000; i++)
		sb_putc(&sb, '[');
	for (int i = 0; i < 10000; i++)
		sb_putc(&sb, ']');
	sb_putc(&sb, '\n');
	/* the root, target_sets, the set: three levels, so the 62nd '[' is level 65 */
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml:8:71: target_sets[0].tag[0][0]");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, ": nested more than 64 levels deep");

	/* block mappings, the same limit */
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    tag:\n");
	for (int i = 0; i < 100; i++) {
		for (int j = 0; j < 6 + i; j++)
			sb_putc(&sb, ' ');
		sb_printf(&sb, "k%d:\n", i);
	}
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "nested more than 64 levels deep");

	/* flow mappings, unclosed: truncated and deep at once */
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    tag: ");
	for (int i = 0; i < 30; i++)
		sb_puts(&sb, "{a: ");
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "invalid YAML: ");

	/* 60 levels is deep but allowed by the parser; the field check then says what is wrong */
	sb_reset(&sb);
	sb_puts(&sb, HEAD "    tag: ");
	for (int i = 0; i < 60; i++)
		sb_putc(&sb, '[');
	for (int i = 0; i < 60; i++)
		sb_putc(&sb, ']');
	sb_putc(&sb, '\n');
	expect_str_err(sb.data, sb.len, ETL_EUSAGE, "t.yaml:8:10: target_sets[0].tag: expected a string, got a list");
	sb_free(&sb);
}

/* Every prefix of a good file: loads, or fails with a positioned message; never crashes or leaks. */
static void test_truncations(void)
{
	size_t len = 0;
	char *text = read_file(GOOD "full.yaml", &len);
	int ok = 0, failed = 0;

	for (size_t cut = 0; cut <= len; cut++) {
		struct etl_error err = {0};
		struct job *job = NULL;
		int rc = job_load_string(text, cut, "cut.yaml", &job, &err);

		if (rc == ETL_OK) {
			ok++;
			job_free(job);
			continue;
		}
		failed++;
		if (rc != ETL_EUSAGE || strncmp(err.msg, "cut.yaml:", 9) != 0 ||
		    strstr(err.msg, "SECRET")) {
			CHECK_INT(rc, ETL_EUSAGE);
			CHECK_CONTAINS(err.msg, "cut.yaml:");
			fprintf(stderr, "  at cut %zu: %s\n", cut, err.msg);
		}
	}
	CHECK(ok > 0);      /* the cuts that fall after the last set's complete lines */
	CHECK(failed > 1000);
	/* cut inside the first target list: libyaml reports the end of the stream, on a new line */
	expect_str_err(text, (size_t)(strstr(text, "zoho.com") - text), ETL_EUSAGE,
		       "t.yaml:38:1: target_sets[0].targets[2]: invalid YAML: did not find expected node content");
	free(text);
}

static void test_io_errors(void)
{
	struct etl_error err = {0};
	struct job *job = NULL;

	/* a job file that is not there, or a directory, is a bad command line (2) */
	CHECK_INT(job_load_file(BAD "no-such-file.yaml", &job, &err), ETL_EUSAGE);
	CHECK(job == NULL);
	CHECK_CONTAINS(err.msg, BAD "no-such-file.yaml: cannot open the job file: No such file or "
				    "directory\nhint: give the path of a job file (YAML)");
	CHECK_INT(err.code, ETL_EUSAGE);
	CHECK_INT(job_load_file(tmpdir, &job, &err), ETL_EUSAGE);
	CHECK_CONTAINS(err.msg, ": a directory, not a job file");
	/* NULL err is allowed: the status alone */
	CHECK_INT(job_load_file(BAD "no-such-file.yaml", &job, NULL), ETL_EUSAGE);
	CHECK_INT(job_load_string("x: 1\n", 5, "t.yaml", &job, NULL), ETL_EUSAGE);
	job_free(NULL);
}

int main(void)
{
	test_history_keys();
	setenv("ETL_TEST_TOKEN", "sk-test-SECRET", 1);
	setenv("ETL_TEST_LOGIN", "dfs-user", 1);
	setenv("ETL_TEST_PASSWORD", "dfs-SECRET", 1);
	setenv("ETL_TEST_JOB_NAME", "envjob", 1);
	setenv("ETL_TEST_WORD", "hello", 1);
	setenv("ETL_TEST_EMPTY", "", 1);
	setenv("ETL_TEST_NUM", "12", 1);
	setenv("ETL_TEST_BOOL", "false", 1);
	setenv("ETL_TEST_NESTED", "${ETL_TEST_WORD}", 1);
	setenv("ETL_TEST_SPACE", "a: b # c", 1);
	setenv("AISA_API_KEY", "sk-aisa-SECRET", 1);
	unsetenv("ETL_TEST_UNSET");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}

	test_bad_files();
	test_full_file();
	test_deterministic();
	test_provider_defaults();
	test_merge();
	test_types_file();
	test_flow_and_env_files();
	test_example_job();
	test_snippets();
	test_base_urls();
	test_secret_files();
	test_need();
	test_binary_files();
	test_large_files();
	test_deep_nesting();
	test_truncations();
	test_io_errors();

	rmdir(tmpdir);
	return check_summary();
}
