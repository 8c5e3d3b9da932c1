/*
 * job.c - reading and validating a job file (the contract is in job.h).
 *
 * yamltree.c reads the text into a tree of positioned, typed nodes, ${VAR}
 * expanded (yamltree.h says how, and which YAML it refuses). The load_*
 * functions here walk that tree against the schema below and build struct
 * job; the first error stops the load and names file:line:column and the key
 * path (list indexes 0-based, e.g. target_sets[0].filters[2]).
 *
 * Choices worth knowing:
 *  - A null value (`key:`, `key: ~`, or `key: ${VAR:-}`) means "not set":
 *    the built-in default applies, and in a target set it clears a value
 *    given under defaults:.
 *  - Settings that never become JSON (credentials, URLs, names, paths) take
 *    any scalar as its text, so a numeric password stays a password. Request
 *    fields keep their YAML type and are type-checked.
 *  - Credential values, base_url and database.url never appear in a message.
 *    An unset ${VAR} in a credential is no error for a command that does not
 *    use it (unset_policy()).
 *  - token_file/password_file paths are relative to the job file's directory.
 */
#include "job.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "yamltree.h"

#define JOB_MAX_SECRET_FILE 65536 /* token_file / password_file */
#define JOB_MAX_ROWS 10000000LL
#define JOB_DEFAULT_MAX_ROWS 10000
#define JOB_MAX_NAME 63

#define DEFAULT_AISA_URL "https://api.aisa.one/apis/v1"
#define DEFAULT_DATAFORSEO_URL "https://api.dataforseo.com/v3"

/* ---------------------------------------------------- credentials, paths */

/* What a load keeps beside the YAML reader's context (yt_ctx.user). */
struct job_read {
	char *dir;      /* owned; base of relative secret-file paths, NULL = cwd */
	unsigned need;  /* JOB_NEED_API, JOB_NEED_DB: whose credentials must be there */
};

static const struct job_read *job_read(const struct yt_ctx *c)
{
	return c->user;
}

/* Whether the value at the current path is one of the API's credentials. */
static bool at_api_credential(const struct yt_ctx *c)
{
	static const char *const keys[] = {"api.token", "api.token_file", "api.login",
					   "api.password", "api.password_file"};
	const char *p = c->path.data ? c->path.data : "";

	for (size_t i = 0; i < ETL_ARRAY_LEN(keys); i++)
		if (strcmp(p, keys[i]) == 0)
			return true;
	return false;
}

static bool at_db_url(const struct yt_ctx *c)
{
	return c->path.data && strcmp(c->path.data, "database.url") == 0;
}

/*
 * What an unset ${VAR} means where it is (yt_ctx.unset). In a credential it
 * is no error for a command that does not use that credential: `validate`
 * and `plan` connect to nothing, `runs` and `report` only to the database;
 * for one that does, the error offers no default (it would sit in the file).
 */
static enum yt_unset unset_policy(const struct yt_ctx *c, const char **hint)
{
	unsigned need = job_read(c)->need;

	if (at_api_credential(c)) {
		*hint = ", or keep the key in a file named by api.token_file / api.password_file";
		return need & JOB_NEED_API ? YT_UNSET_SECRET : YT_UNSET_TOLERATE;
	}
	if (at_db_url(c))
		return need & JOB_NEED_DB ? YT_UNSET_SECRET : YT_UNSET_TOLERATE;
	return YT_UNSET_ERROR;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* Levenshtein distance, or a large number for keys too long to be typos. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[65], prev;

	if (la > 64 || lb > 64)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t best = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

/* ----------------------------------------------------------- key tables */

static const char *const root_keys[] = {"version", "job", "api", "database", "defaults",
					"target_sets", "archive", "retention", "max_cost_usd",
					"metrics_file", NULL};
static const char *const retention_keys[] = {"keep_snapshots", "keep_archive", NULL};
static const char *const api_keys[] = {
	"provider", "base_url", "token", "token_file", "login", "password", "password_file",
	"body", "concurrency", "requests_per_minute", "timeout_seconds", "max_attempts", NULL};
static const char *const database_keys[] = {"url", "schema", "connections", NULL};

/*
 * The request fields, in the order they appear in target_set.request (after
 * "targets", which comes first). limit and max_rows are ours: the fetcher
 * adds limit and offset per page, and max_rows is never sent.
 */
enum field {
	F_TARGETS,
	F_EXCLUDE_TARGETS,
	F_FILTERS,
	F_BACKLINKS_FILTERS,
	F_ORDER_BY,
	F_INTERNAL_LIST_LIMIT,
	F_BACKLINKS_STATUS_TYPE,
	F_INCLUDE_SUBDOMAINS,
	F_INCLUDE_INDIRECT_LINKS,
	F_EXCLUDE_INTERNAL_BACKLINKS,
	F_INTERSECTION_MODE,
	F_RANK_SCALE,
	F_TAG,
	F_LIMIT,
	F_MAX_ROWS,
	F_MAX_COST_USD,
	F_COUNT
};

enum check_kind {
	CK_TARGETS, CK_STRLIST, CK_FILTER, CK_ORDER_BY, CK_INT, CK_CHOICE, CK_BOOL, CK_STRING,
	CK_MONEY
};

struct field_spec {
	const char *key;
	enum check_kind check;
	long long min, max;          /* CK_INT bounds; lists: max items; CK_STRING: max characters */
	const char *const *choices;  /* CK_CHOICE: NULL-terminated */
	bool sent;                   /* part of the request template */
};

static const char *const status_types[] = {"all", "live", "lost", NULL};
static const char *const intersection_modes[] = {"all", "partial", NULL};
static const char *const rank_scales[] = {"one_hundred", "one_thousand", NULL};

static const struct field_spec fields[F_COUNT] = {
	[F_TARGETS] = {"targets", CK_TARGETS, 1, JOB_MAX_TARGETS, NULL, true},
	[F_EXCLUDE_TARGETS] = {"exclude_targets", CK_STRLIST, 1, JOB_MAX_EXCLUDE_TARGETS, NULL, true},
	[F_FILTERS] = {"filters", CK_FILTER, 1, JOB_MAX_FILTER_CONDITIONS, NULL, true},
	[F_BACKLINKS_FILTERS] = {"backlinks_filters", CK_FILTER, 1, JOB_MAX_FILTER_CONDITIONS, NULL, true},
	[F_ORDER_BY] = {"order_by", CK_ORDER_BY, 1, JOB_MAX_ORDER_BY, NULL, true},
	[F_INTERNAL_LIST_LIMIT] = {"internal_list_limit", CK_INT, 1, 1000, NULL, true},
	[F_BACKLINKS_STATUS_TYPE] = {"backlinks_status_type", CK_CHOICE, 0, 0, status_types, true},
	[F_INCLUDE_SUBDOMAINS] = {"include_subdomains", CK_BOOL, 0, 0, NULL, true},
	[F_INCLUDE_INDIRECT_LINKS] = {"include_indirect_links", CK_BOOL, 0, 0, NULL, true},
	[F_EXCLUDE_INTERNAL_BACKLINKS] = {"exclude_internal_backlinks", CK_BOOL, 0, 0, NULL, true},
	[F_INTERSECTION_MODE] = {"intersection_mode", CK_CHOICE, 0, 0, intersection_modes, true},
	[F_RANK_SCALE] = {"rank_scale", CK_CHOICE, 0, 0, rank_scales, true},
	[F_TAG] = {"tag", CK_STRING, 0, JOB_MAX_TAG, NULL, true},
	[F_LIMIT] = {"limit", CK_INT, 1, JOB_MAX_LIMIT, NULL, false},
	[F_MAX_ROWS] = {"max_rows", CK_INT, 1, JOB_MAX_ROWS, NULL, false},
	[F_MAX_COST_USD] = {"max_cost_usd", CK_MONEY, 0, 1000000, NULL, false},
};

/* The keys of a target set: "name", then fields[] in order; defaults: takes set_keys + 1. */
static const char *const set_keys[F_COUNT + 2] = {
	"name", "targets", "exclude_targets", "filters", "backlinks_filters", "order_by",
	"internal_list_limit", "backlinks_status_type", "include_subdomains",
	"include_indirect_links", "exclude_internal_backlinks", "intersection_mode",
	"rank_scale", "tag", "limit", "max_rows", "max_cost_usd", NULL};

/* Where a key that is unknown here does belong, for the hint. */
static const char *key_home(const char *key)
{
	if (yt_one_of(root_keys, key))
		return "at the top level";
	if (yt_one_of(api_keys, key))
		return "under api:";
	if (yt_one_of(database_keys, key))
		return "under database:";
	if (strcmp(key, "name") == 0)
		return "in a target set (an item of target_sets:)";
	if (yt_one_of(set_keys + 1, key))
		return "under defaults: or in a target set";
	return NULL;
}

/* The error for an unknown key, with the closest known key as a hint. */
static int unknown_key(struct yt_ctx *c, const struct ynode *key, const char *const *known)
{
	const char *best = NULL, *home;
	size_t best_d = 3;

	yt_path_key(c, key->text);
	if (strcmp(key->text, "offset") == 0 && yt_one_of(known, "limit"))
		return yt_fail(c, key, "offset is set by the scheduler while paging"
			"\nhint: remove it; limit sets the page size");
	for (const char *const *k = known; *k; k++) {
		size_t d = edit_distance(key->text, *k);
		if (d < best_d) {
			best_d = d;
			best = *k;
		}
	}
	if (best)
		return yt_fail(c, key, "unknown key\nhint: did you mean '%s'?", best);
	home = key_home(key->text);
	if (home)
		return yt_fail(c, key, "unknown key here\nhint: '%s' belongs %s", key->text, home);
	return yt_fail(c, key, "unknown key");
}

/* Checks that n is a mapping whose keys are unique and all in `known`. */
static int map_check(struct yt_ctx *c, const struct ynode *n, const char *const *known)
{
	if (n->kind != YN_MAP)
		return yt_fail(c, n, "expected a mapping (key: value lines), got %s", yt_kind_name(n));
	/* Both checks stop at the first bad key, so with a short `known` list
	 * the quadratic duplicate scan stays short however large the file. */
	for (size_t i = 0; i < n->n; i += 2) {
		const struct ynode *key = n->kids[i];
		if (!yt_one_of(known, key->text))
			return unknown_key(c, key, known);
		for (size_t j = 0; j < i; j += 2) {
			if (strcmp(n->kids[j]->text, key->text) == 0) {
				yt_path_key(c, key->text);
				return yt_fail(c, key, "duplicate key (first at %d:%d)",
					       n->kids[j]->line, n->kids[j]->col);
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------- scalar getters */

/* json-c returns NULL only when out of memory. */
static json_object *jnew(json_object *o)
{
	if (!o) {
		fprintf(stderr, "intersect-etl: out of memory in json-c\n");
		abort();
	}
	return o;
}

/* The JSON value of a scalar, its type kept; YAML null is JSON null (NULL). */
static int scalar_json(struct yt_ctx *c, const struct ynode *n, json_object **out)
{
	char buf[40];

	*out = NULL;
	switch (n->type) {
	case YT_NULL:
		return 0;
	case YT_BOOL:
		*out = jnew(json_object_new_boolean(n->b));
		return 0;
	case YT_INT:
		*out = jnew(json_object_new_int64(n->i));
		return 0;
	case YT_FLOAT:
		if (!isfinite(n->d))
			return yt_fail(c, n, "%.40s has no JSON form (infinity or NaN)", n->text);
		/* The shortest text that reads back as the same double, so
		 * 0.1 is sent as 0.1 and the output is the same on every run. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, n->d);
			if (strtod(buf, NULL) == n->d)
				break;
		}
		if (!strpbrk(buf, ".eE"))
			strcat(buf, ".0");
		*out = jnew(json_object_new_double_s(n->d, buf));
		return 0;
	case YT_STR:
		break;
	}
	*out = jnew(json_object_new_string_len(n->text, (int)n->len));
	return 0;
}

/* A positive amount of US dollars (an integer or a float), at most max. */
static int get_money(struct yt_ctx *c, const struct ynode *n, double max, double *out)
{
	char what[96];

	if (n->kind == YN_SCALAR && (n->type == YT_INT || n->type == YT_FLOAT)) {
		double d = n->type == YT_INT ? (double)n->i : n->d;

		if (d > 0 && d <= max) {
			*out = d;
			return 0;
		}
	}
	yt_describe(n, what, sizeof(what));
	return yt_fail(c, n, "expected an amount in USD above 0 and at most %.0f, got %s", max, what);
}

#define JOB_MAX_DAYS 36500 /* a century; leaving the key out keeps everything */

/*
 * A period in whole days: an integer, or "N day(s)" / "N week(s)". Returns
 * the number of days in *out (1..JOB_MAX_DAYS). The count is bounded before
 * it is scaled by its unit: "7905747460161236407 weeks" once overflowed
 * `v *= 7` and wrapped to a small, valid-looking number of days.
 */
static int get_days(struct yt_ctx *c, const struct ynode *n, int *out)
{
	char what[96], *unit;
	long long v = -1, per = 1;

	if (n->kind == YN_SCALAR && n->type == YT_INT) {
		v = n->i;
	} else if (n->kind == YN_SCALAR && n->type == YT_STR && n->text[0] >= '0' &&
		   n->text[0] <= '9') {
		/* past LLONG_MAX strtoll saturates, which the bound below refuses */
		v = strtoll(n->text, &unit, 10);
		unit += strspn(unit, " \t");
		if (strcmp(unit, "week") == 0 || strcmp(unit, "weeks") == 0)
			per = 7;
		else if (strcmp(unit, "day") != 0 && strcmp(unit, "days") != 0)
			v = -1;
	}
	if (v > JOB_MAX_DAYS / per) {
		yt_describe(n, what, sizeof(what));
		return yt_fail(c, n, "%s is more than the maximum of %d days (%d weeks)\n"
			       "hint: without the key, nothing is deleted", what, JOB_MAX_DAYS,
			       JOB_MAX_DAYS / 7);
	}
	if (v >= 1) {
		*out = (int)(v * per);
		return 0;
	}
	yt_describe(n, what, sizeof(what));
	return yt_fail(c, n, "expected a period such as 400 days or 8 weeks (1 to %d days), "
		       "got %s", JOB_MAX_DAYS, what);
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* [a-z0-9_-]{1,63}: job and target set names, which become file and database keys. */
static bool valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > JOB_MAX_NAME)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || is_digit(*s) || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* -------------------------------------------------------- request fields */

/* targets: a list of distinct strings, sent as {"1": .., "2": ..}. */
static int check_targets(struct yt_ctx *c, const struct field_spec *f, const struct ynode *n,
			 json_object **out)
{
	json_object *obj;
	char key[24];
	int rc = 0;

	if (n->kind != YN_SEQ)
		return yt_fail(c, n, "expected a list of 1 to %lld targets, got %s", f->max, yt_kind_name(n));
	if (n->n == 0)
		return yt_fail(c, n, "an empty list; at least one target is required");
	if (n->n > (size_t)f->max)
		return yt_fail(c, n, "%zu targets; at most %lld are allowed", n->n, f->max);
	obj = jnew(json_object_new_object());
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct ynode *t = n->kids[i];
		size_t old = yt_path_index(c, i);

		/* Any other text goes to the API as it is: quotes, backslashes, tabs
		 * and newlines included, so what is stored is what was asked (a NUL,
		 * which PostgreSQL text cannot hold, is refused for every string). */
		rc = yt_need_string(c, t, "a target (a domain or a page URL)");
		if (rc == 0 && t->len == 0)
			rc = yt_fail(c, t, "an empty target");
		for (size_t j = 0; j < i && rc == 0; j++) {
			if (strcmp(n->kids[j]->text, t->text) == 0) {
				char shown[YT_SHOW_MAX + 8];
				yt_show(shown, sizeof(shown), t->text, t->len);
				rc = yt_fail(c, t, "duplicate target %s (also at %d:%d)", shown,
					     n->kids[j]->line, n->kids[j]->col);
			}
		}
		if (rc == 0) {
			snprintf(key, sizeof(key), "%zu", i + 1);
			json_object_object_add(obj, key, jnew(json_object_new_string_len(t->text, (int)t->len)));
			yt_path_set(c, old);
		}
	}
	if (rc) {
		json_object_put(obj);
		return rc;
	}
	*out = obj;
	return 0;
}

/* exclude_targets and order_by: lists of strings, each checked by `item` (NULL: non-empty). */
static int check_strlist(struct yt_ctx *c, const struct field_spec *f, const struct ynode *n,
			 json_object **out)
{
	const char *what = f->check == CK_ORDER_BY ? "a rule \"field,asc\" or \"field,desc\""
						     : "a non-empty string";
	json_object *arr;
	int rc = 0;

	if (n->kind != YN_SEQ)
		return yt_fail(c, n, "expected a list of at most %lld strings, got %s", f->max,
			       yt_kind_name(n));
	if (n->n == 0)
		return yt_fail(c, n, "an empty list\nhint: leave the key out, or set it to null "
			       "to clear a value from defaults:");
	if (n->n > (size_t)f->max)
		return yt_fail(c, n, "%zu items; at most %lld are allowed", n->n, f->max);
	arr = jnew(json_object_new_array());
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct ynode *s = n->kids[i];
		size_t old = yt_path_index(c, i);

		rc = yt_need_string(c, s, what);
		if (rc == 0 && s->len == 0)
			rc = yt_fail(c, s, "expected %s, got an empty string", what);
		if (rc == 0 && f->check == CK_ORDER_BY) {
			const char *comma = strrchr(s->text, ',');
			if (!comma || comma == s->text ||
			    (strcmp(comma, ",asc") != 0 && strcmp(comma, ",desc") != 0)) {
				char shown[YT_SHOW_MAX + 8];
				yt_show(shown, sizeof(shown), s->text, s->len);
				rc = yt_fail(c, s, "expected %s, got %s", what, shown);
			}
		}
		if (rc == 0) {
			json_object_array_add(arr, jnew(json_object_new_string_len(s->text, (int)s->len)));
			yt_path_set(c, old);
		}
	}
	if (rc) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

static const char *const filter_ops[] = {
	"regex", "not_regex", "=", "<>", "<", "<=", ">", ">=", "in", "not_in",
	"like", "not_like", "ilike", "not_ilike", "match", "not_match", NULL};

/* A list is a condition when its first item is a scalar (the field name). */
static bool is_condition(const struct ynode *n)
{
	return n->kind == YN_SEQ && n->n > 0 && n->kids[0]->kind == YN_SCALAR;
}

/* [field, operator, value]; value is a scalar, or for in/not_in a list of scalars. */
static int check_condition(struct yt_ctx *c, const struct field_spec *f, const struct ynode *n,
			   int *nconds, json_object **out)
{
	const struct ynode *field, *op, *val;
	json_object *arr = NULL, *v = NULL;
	bool list_op;
	size_t old;
	int rc;

	if (++*nconds > f->max)
		return yt_fail(c, n, "more than %lld conditions; the API allows at most %lld",
			       f->max, f->max);
	if (n->n != 3)
		return yt_fail(c, n, "a condition is [field, operator, value]; this one has %zu items",
			       n->n);
	field = n->kids[0];
	op = n->kids[1];
	val = n->kids[2];
	old = yt_path_index(c, 0);
	if ((rc = yt_need_string(c, field, "a field name such as \"1.rank\"")) != 0)
		return rc;
	if (field->len == 0)
		return yt_fail(c, field, "an empty field name");
	yt_path_set(c, old);
	yt_path_index(c, 1);
	if ((rc = yt_need_string(c, op, "an operator")) != 0)
		return rc;
	if (!yt_one_of(filter_ops, op->text)) {
		char shown[YT_SHOW_MAX + 8];
		yt_show(shown, sizeof(shown), op->text, op->len);
		return yt_fail(c, op, "unknown operator %s\nhint: operators are regex, not_regex, "
			       "=, <>, <, <=, >, >=, in, not_in, like, not_like, ilike, not_ilike, "
			       "match, not_match", shown);
	}
	yt_path_set(c, old);
	yt_path_index(c, 2);
	list_op = strcmp(op->text, "in") == 0 || strcmp(op->text, "not_in") == 0;
	if (list_op) {
		if (val->kind != YN_SEQ || val->n == 0)
			return yt_fail(c, val, "operator %s takes a non-empty list of values, got %s",
				       op->text, val->kind == YN_SEQ ? "an empty list" : yt_kind_name(val));
		v = jnew(json_object_new_array());
		for (size_t i = 0; i < val->n; i++) {
			json_object *item;
			yt_path_index(c, i);
			if (val->kids[i]->kind != YN_SCALAR) {
				json_object_put(v);
				return yt_fail(c, val->kids[i], "expected a scalar value, got %s",
					       yt_kind_name(val->kids[i]));
			}
			if ((rc = scalar_json(c, val->kids[i], &item)) != 0) {
				json_object_put(v);
				return rc;
			}
			json_object_array_add(v, item);
			yt_path_set(c, old);
			yt_path_index(c, 2);
		}
	} else {
		if (val->kind != YN_SCALAR)
			return yt_fail(c, val, "operator %s takes one scalar value, got %s", op->text,
				       yt_kind_name(val));
		if ((rc = scalar_json(c, val, &v)) != 0)
			return rc;
	}
	yt_path_set(c, old);
	arr = jnew(json_object_new_array());
	json_object_array_add(arr, jnew(json_object_new_string_len(field->text, (int)field->len)));
	json_object_array_add(arr, jnew(json_object_new_string_len(op->text, (int)op->len)));
	json_object_array_add(arr, v);
	*out = arr;
	return 0;
}

/* A group: condition-or-group, "and"|"or", condition-or-group, ... */
static int check_group(struct yt_ctx *c, const struct field_spec *f, const struct ynode *n,
		       int *nconds, json_object **out)
{
	json_object *arr;
	int rc = 0;

	if (n->n == 0)
		return yt_fail(c, n, "an empty filter\nhint: leave the key out, or set it to null "
			       "to clear a value from defaults:");
	if (n->n % 2 == 0)
		return yt_fail(c, n, "a filter list alternates conditions and \"and\"/\"or\", "
			       "so it has an odd number of items; this one has %zu", n->n);
	arr = jnew(json_object_new_array());
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct ynode *k = n->kids[i];
		size_t old = yt_path_index(c, i);
		json_object *item = NULL;

		if (i % 2) {
			rc = yt_need_string(c, k, "\"and\" or \"or\"");
			if (rc == 0 && strcmp(k->text, "and") != 0 && strcmp(k->text, "or") != 0) {
				char shown[YT_SHOW_MAX + 8];
				yt_show(shown, sizeof(shown), k->text, k->len);
				rc = yt_fail(c, k, "expected \"and\" or \"or\", got %s", shown);
			}
			if (rc == 0)
				item = jnew(json_object_new_string(k->text));
		} else if (k->kind != YN_SEQ) {
			char what[96];
			rc = yt_fail(c, k, "expected a condition [field, operator, value] or a "
				     "nested list, got %s", yt_describe(k, what, sizeof(what)));
		} else if (is_condition(k)) {
			rc = check_condition(c, f, k, nconds, &item);
		} else {
			rc = check_group(c, f, k, nconds, &item);
		}
		if (rc == 0) {
			json_object_array_add(arr, item);
			yt_path_set(c, old);
		}
	}
	if (rc) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

static int check_filter(struct yt_ctx *c, const struct field_spec *f, const struct ynode *n,
			json_object **out)
{
	int nconds = 0;

	if (n->kind != YN_SEQ)
		return yt_fail(c, n, "expected a filter list such as [[\"1.rank\", \">\", 100]], got %s",
			       yt_kind_name(n));
	if (is_condition(n))
		return check_condition(c, f, n, &nconds, out);
	return check_group(c, f, n, &nconds, out);
}

/* Validates one request field; *out is a new json object the caller owns. */
static int check_field(struct yt_ctx *c, const struct field_spec *f, const struct ynode *n,
		       json_object **out)
{
	char what[96];
	long long v;
	int rc;

	*out = NULL;
	switch (f->check) {
	case CK_TARGETS:
		return check_targets(c, f, n, out);
	case CK_STRLIST:
	case CK_ORDER_BY:
		return check_strlist(c, f, n, out);
	case CK_FILTER:
		return check_filter(c, f, n, out);
	case CK_INT:
		if ((rc = yt_int(c, n, f->min, f->max, &v)) != 0)
			return rc;
		*out = jnew(json_object_new_int64(v));
		return 0;
	case CK_MONEY: {
		double d = 0;

		if ((rc = get_money(c, n, (double)f->max, &d)) != 0)
			return rc;
		*out = jnew(json_object_new_double(d));
		return 0;
	}
	case CK_BOOL:
		if (n->kind != YN_SCALAR || n->type != YT_BOOL)
			return yt_fail(c, n, "expected true or false, got %s",
				       yt_describe(n, what, sizeof(what)));
		*out = jnew(json_object_new_boolean(n->b));
		return 0;
	case CK_CHOICE:
		if (n->kind != YN_SCALAR || n->type != YT_STR || !yt_one_of(f->choices, n->text)) {
			struct strbuf sb;
			sb_init(&sb);
			for (const char *const *k = f->choices; *k; k++)
				sb_printf(&sb, "%s%s", k == f->choices ? "" : ", ", *k);
			rc = yt_fail(c, n, "expected one of %s; got %s", sb.data,
				     yt_describe(n, what, sizeof(what)));
			sb_free(&sb);
			return rc;
		}
		*out = jnew(json_object_new_string(n->text));
		return 0;
	case CK_STRING:
		if ((rc = yt_need_string(c, n, "a string")) != 0)
			return rc;
		if (utf8_chars(n->text) > (size_t)f->max)
			return yt_fail(c, n, "%zu characters; at most %lld are allowed",
				       utf8_chars(n->text), f->max);
		*out = jnew(json_object_new_string_len(n->text, (int)n->len));
		return 0;
	}
	return 0;
}

/* ------------------------------------------------------------ api block */

static bool loopback_host(const char *h, size_t len)
{
	unsigned parts = 0, val = 0, digits = 0;

	if ((len == 9 && strncasecmp(h, "localhost", 9) == 0) || (len == 5 && memcmp(h, "[::1]", 5) == 0))
		return true;
	/* A dotted quad 127.a.b.c; shorter forms such as 127.1 are refused. */
	for (size_t i = 0; i <= len; i++) {
		if (i < len && is_digit(h[i])) {
			val = val * 10 + (unsigned)(h[i] - '0');
			if (++digits > 3 || val > 255)
				return false;
		} else if (i == len || h[i] == '.') {
			if (!digits || (parts == 0 && val != 127))
				return false;
			parts++;
			val = digits = 0;
		} else {
			return false;
		}
	}
	return parts == 4;
}

/*
 * https://HOST[...], or http:// on loopback only, never with user:password@.
 * *out is a new string without trailing '/'.
 */
/*
 * The host and port of a base_url, [host, end): a name or IPv4 address of
 * [A-Za-z0-9.-_] (or an IPv6 address in brackets), then nothing or ':' and
 * a port 1..65535. libcurl would take "http://127.0.0.1:/v1" (empty port)
 * as port 80, and a run would then fail far from the typo.
 */
static int check_host_port(struct yt_ctx *c, const struct ynode *n, const char *host, size_t hlen,
			   const char *end)
{
	const char *p = host + hlen;
	long port = 0;
	size_t digits;

	if (*host == '[') {
		if (host[hlen - 1] != ']')
			return yt_fail(c, n, "has an IPv6 host without its closing ']'");
	} else {
		for (size_t i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)host[i]) && !strchr(".-_", host[i]))
				return yt_fail(c, n, "has a character no host name has ('%c')"
					       "\nhint: the form is https://HOST[:PORT][/PATH]",
					       host[i] >= 0x21 && host[i] < 0x7f ? host[i] : '?');
		if (host[0] == '.' || host[hlen - 1] == '.' ||
		    memmem(host, hlen, "..", 2) != NULL)
			return yt_fail(c, n, "has an empty label in its host name ('..' or a '.' "
				       "at an end)");
	}
	if (p == end)
		return 0;
	if (*p != ':')
		return yt_fail(c, n, "has text after its host that is not ':PORT'"
			       "\nhint: the form is https://HOST[:PORT][/PATH]");
	p++;
	digits = strspn(p, "0123456789");
	if (p == end || digits == 0)
		return yt_fail(c, n, "has an empty or non-numeric port after ':'"
			       "\nhint: give the port (https://HOST:8443/...) or leave out the ':' "
			       "for the scheme's default (443, or 80 for http)");
	if (p + digits != end || digits > 5 || (port = strtol(p, NULL, 10)) < 1 || port > 65535)
		return yt_fail(c, n, "has a port that is not a number from 1 to 65535");
	return 0;
}

static int check_base_url(struct yt_ctx *c, const struct ynode *n, const char *url, char **out)
{
	const char *auth, *end, *host;
	bool https;
	size_t len = strlen(url), hlen;
	int rc;

	while (len > 0 && url[len - 1] == '/')
		len--;
	https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0)
		return yt_fail(c, n, "must start with https://"
			       "\nhint: plain http:// is refused except on loopback "
			       "(127.0.0.0/8, localhost, [::1])");
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)url[i];
		if (ch <= 0x20 || ch == 0x7f)
			return yt_fail(c, n, "contains whitespace or a control character");
		if (ch == '?' || ch == '#')
			return yt_fail(c, n, "must not have a query or a fragment; the endpoint path "
				       "is appended to it");
	}
	auth = url + (https ? 8 : 7);
	end = auth;
	while (end < url + len && *end != '/')
		end++;
	/* A password in the URL would be printed by `plan` and could be by
	 * libcurl's messages; the API's credentials have keys of their own,
	 * which are never printed. */
	if (memchr(auth, '@', (size_t)(end - auth)))
		return yt_fail(c, n, "must not contain a user name or password (user:password@)"
			       "\nhint: credentials belong in api.token or token_file (aisa), or "
			       "api.login and api.password or password_file (dataforseo)");
	host = auth;
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));
		hlen = rb ? (size_t)(rb - host) + 1 : (size_t)(end - host);
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));
		hlen = colon ? (size_t)(colon - host) : (size_t)(end - host);
	}
	if (hlen == 0)
		return yt_fail(c, n, "has no host");
	if ((rc = check_host_port(c, n, host, hlen, end)) != 0)
		return rc;
	if (!https && !loopback_host(host, hlen))
		return yt_fail(c, n, "plain http is refused except on loopback "
			       "(127.0.0.0/8, localhost, [::1])\nhint: use https://");
	*out = xstrndup(url, len);
	return 0;
}

/* Reads a token_file or password_file. *out is a new string the caller wipes and frees. */
static int read_secret_file(struct yt_ctx *c, const struct ynode *n, const char *path, char **out)
{
	const char *dir = job_read(c)->dir;
	char *full = path[0] != '/' && dir ? xasprintf("%s/%s", dir, path) : xstrdup(path);
	char *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t got;
	int fd, rc = 0;

	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = yt_fail(c, n, "cannot open %.200s: %s", full, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = yt_fail(c, n, "%.200s is not a regular file", full);
		goto out;
	}
	buf = xmalloc(JOB_MAX_SECRET_FILE + 1);
	while ((got = read(fd, buf + len, JOB_MAX_SECRET_FILE + 1 - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = yt_fail(c, n, "cannot read %.200s: %s", full, strerror(errno));
			goto out;
		}
		len += (size_t)got;
		if (len > JOB_MAX_SECRET_FILE) {
			rc = yt_fail(c, n, "%.200s is larger than %d bytes", full, JOB_MAX_SECRET_FILE);
			goto out;
		}
	}
	while (len > 0 && strchr(" \t\r\n\v\f", buf[len - 1]))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		rc = yt_fail(c, n, "%.200s is empty", full);
		goto out;
	}
	*out = xstrndup(buf, len);
out:
	if (fd >= 0)
		close(fd);
	if (buf) {
		explicit_bzero(buf, JOB_MAX_SECRET_FILE + 1);
		free(buf);
	}
	free(full);
	return rc;
}

/*
 * One credential: `key` inline or `file_key` (may be NULL) from a file.
 * `where` is the api mapping (or the root when there is none), for the
 * "missing" error. *out is a new string; the value never enters a message.
 */
static int load_credential(struct yt_ctx *c, const struct ynode *api, const struct ynode *where,
			   const char *provider, const char *key, const char *file_key, char **out)
{
	const struct ynode *vn = yt_get(api, key), *fn = file_key ? yt_get(api, file_key) : NULL;
	const char *val, *file = NULL;
	size_t old = yt_path_key(c, "api"), api_len = c->path.len;
	int rc;

	yt_path_key(c, key);
	if ((rc = yt_text(c, vn, &val)) != 0)
		return rc;
	yt_path_set(c, api_len);
	if (file_key) {
		yt_path_key(c, file_key);
		if ((rc = yt_text(c, fn, &file)) != 0)
			return rc;
		yt_path_set(c, api_len);
	}
	if (val && file) {
		yt_path_key(c, file_key);
		return yt_fail(c, fn, "give %s or %s, not both", key, file_key);
	}
	if (!(job_read(c)->need & JOB_NEED_API) && (file || (vn && vn->unset))) {
		/* not used by this command: neither its variable nor its file is needed */
		*out = xstrdup("");
		yt_path_set(c, old);
		return 0;
	}
	if (file) {
		yt_path_key(c, file_key);
		if ((rc = read_secret_file(c, fn, file, out)) != 0)
			return rc;
		vn = fn;
	} else if (val && *val) {
		yt_path_key(c, key);
		*out = xstrdup(val);
	} else {
		yt_path_key(c, key);
		if (file_key)
			return yt_fail(c, vn ? vn : where, "provider %s needs a non-empty %s "
				       "(%s: or %s:)", provider, key, key, file_key);
		return yt_fail(c, vn ? vn : where, "provider %s needs a non-empty %s",
			       provider, key);
	}
	for (const char *p = *out; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			rc = yt_fail(c, vn, "contains a control character");
			break;
		}
		if (*p == ':' && strcmp(key, "login") == 0) {
			rc = yt_fail(c, vn, "must not contain ':' (HTTP Basic uses it as the separator)");
			break;
		}
	}
	if (rc) {
		explicit_bzero(*out, strlen(*out));
		free(*out);
		*out = NULL;
		return rc;
	}
	yt_path_set(c, old);
	return 0;
}

static int load_api(struct yt_ctx *c, const struct ynode *root, const struct ynode *api,
		    struct job_api *out)
{
	const struct {
		const char *key;
		long long min, max, def;
		int *dst;
	} ints[] = {
		{"concurrency", 1, 30, 8, &out->concurrency},
		{"requests_per_minute", 1, 10000, 600, &out->requests_per_minute},
		{"timeout_seconds", 1, 600, 180, &out->timeout_seconds},
		{"max_attempts", 1, 20, 5, &out->max_attempts},
	};
	const char *s;
	const struct ynode *n;
	size_t old;
	int rc;

	yt_path_key(c, "api");
	old = c->path.len;
	if (yt_is_null(api))
		api = NULL;
	else if ((rc = map_check(c, api, api_keys)) != 0)
		return rc;

	n = yt_get(api, "provider");
	yt_path_key(c, "provider");
	if ((rc = yt_text(c, n, &s)) != 0)
		return rc;
	if (!s || strcmp(s, "aisa") == 0) {
		out->provider = API_AISA;
	} else if (strcmp(s, "dataforseo") == 0) {
		out->provider = API_DATAFORSEO;
	} else {
		char what[96];
		return yt_fail(c, n, "expected aisa or dataforseo, got %s", yt_describe(n, what, sizeof(what)));
	}
	yt_path_set(c, old);

	n = yt_get(api, "body");
	yt_path_key(c, "body");
	if ((rc = yt_text(c, n, &s)) != 0)
		return rc;
	if (!s) {
		out->body = out->provider == API_AISA ? BODY_OBJECT : BODY_ARRAY;
	} else if (strcmp(s, "object") == 0) {
		out->body = BODY_OBJECT;
	} else if (strcmp(s, "array") == 0) {
		out->body = BODY_ARRAY;
	} else {
		char what[96];
		return yt_fail(c, n, "expected object or array, got %s", yt_describe(n, what, sizeof(what)));
	}
	yt_path_set(c, old);

	for (size_t i = 0; i < ETL_ARRAY_LEN(ints); i++) {
		long long v = ints[i].def;
		n = yt_get(api, ints[i].key);
		yt_path_key(c, ints[i].key);
		if (!yt_is_null(n) && (rc = yt_int(c, n, ints[i].min, ints[i].max, &v)) != 0)
			return rc;
		*ints[i].dst = (int)v;
		yt_path_set(c, old);
	}

	n = yt_get(api, "base_url");
	yt_path_key(c, "base_url");
	if ((rc = yt_text(c, n, &s)) != 0)
		return rc;
	if (s) {
		if ((rc = check_base_url(c, n, s, &out->base_url)) != 0)
			return rc;
	} else {
		out->base_url = xstrdup(out->provider == API_AISA ? DEFAULT_AISA_URL
								  : DEFAULT_DATAFORSEO_URL);
	}
	yt_path_set(c, 0);

	/* Only the chosen provider's credentials are read: a file may carry
	 * both when provider: comes from the environment. */
	if (out->provider == API_AISA)
		return load_credential(c, api, api ? api : root, "aisa", "token", "token_file",
				       &out->token);
	if ((rc = load_credential(c, api, api ? api : root, "dataforseo", "login", NULL,
				  &out->login)) != 0)
		return rc;
	return load_credential(c, api, api ? api : root, "dataforseo", "password", "password_file",
			       &out->password);
}

static int load_database(struct yt_ctx *c, const struct ynode *db, struct job_database *out)
{
	const struct ynode *n;
	const char *s;
	size_t old;
	int rc;

	yt_path_key(c, "database");
	old = c->path.len;
	if (yt_is_null(db))
		db = NULL;
	else if ((rc = map_check(c, db, database_keys)) != 0)
		return rc;
	yt_path_key(c, "url");
	if ((rc = yt_text(c, yt_get(db, "url"), &s)) != 0)
		return rc;
	out->url = xstrdup(s ? s : "");
	yt_path_set(c, old);

	n = yt_get(db, "schema");
	yt_path_key(c, "schema");
	if ((rc = yt_text(c, n, &s)) != 0)
		return rc;
	if (s) {
		bool ok = strlen(s) <= JOB_MAX_NAME && ((*s >= 'a' && *s <= 'z') || *s == '_');
		for (const char *p = s; ok && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || is_digit(*p) || *p == '_';
		if (!ok) {
			char what[96];
			return yt_fail(c, n, "expected a schema name [a-z_][a-z0-9_]* of at most %d "
				       "characters, got %s", JOB_MAX_NAME, yt_describe(n, what, sizeof(what)));
		}
	}
	out->schema = xstrdup(s ? s : "dataforseo");
	yt_path_set(c, old);

	{
		long long v = JOB_DEFAULT_CONNECTIONS;

		n = yt_get(db, "connections");
		yt_path_key(c, "connections");
		if (!yt_is_null(n) && (rc = yt_int(c, n, 1, JOB_MAX_CONNECTIONS, &v)) != 0)
			return rc;
		out->connections = (int)v;
	}
	yt_path_set(c, 0);
	return 0;
}

/* ---------------------------------------------------------- target sets */

static void set_path(struct yt_ctx *c, size_t i)
{
	yt_path_set(c, 0);
	yt_path_key(c, "target_sets");
	yt_path_index(c, i);
}

/*
 * Fills one target set: each field comes from the set when its key is
 * there (a null clears it), else from defaults. defaults' values were
 * checked before, so checking them again here cannot fail; it gives each
 * set its own json objects, shared with nothing.
 */
static int load_set(struct yt_ctx *c, const struct ynode *sn, const struct ynode *defaults,
		    size_t index, struct target_set *ts)
{
	json_object *vals[F_COUNT] = {NULL};
	const struct ynode *n;
	const char *name;
	int rc = 0;

	set_path(c, index);
	if ((rc = map_check(c, sn, set_keys)) != 0)
		return rc;
	ts->line = sn->line;
	ts->column = sn->col;
	n = yt_get(sn, "name");
	yt_path_key(c, "name");
	if (yt_is_null(n))
		return yt_fail(c, n ? n : sn, "required key is missing");
	if ((rc = yt_text(c, n, &name)) != 0)
		return rc;
	if (!valid_name(name)) {
		char what[96];
		return yt_fail(c, n, "expected a name [a-z0-9_-]+ of at most %d characters, got %s",
			       JOB_MAX_NAME, yt_describe(n, what, sizeof(what)));
	}
	ts->name = xstrdup(name);

	for (size_t f = 0; f < F_COUNT && rc == 0; f++) {
		const struct ynode *own = yt_get(sn, fields[f].key);
		const struct ynode *src = own ? own : yt_get(defaults, fields[f].key);

		if (yt_is_null(src))
			continue;
		if (own) {
			set_path(c, index);
		} else {
			yt_path_set(c, 0);
			yt_path_key(c, "defaults");
		}
		yt_path_key(c, fields[f].key);
		rc = check_field(c, &fields[f], src, &vals[f]);
	}
	if (rc)
		goto out;

	set_path(c, index);
	if (!vals[F_TARGETS]) {
		yt_path_key(c, "targets");
		rc = yt_fail(c, sn, "no targets\nhint: give targets: in the set or under defaults:");
		goto out;
	}
	ts->n_targets = (size_t)json_object_object_length(vals[F_TARGETS]);
	ts->targets = xcalloc(ts->n_targets, sizeof(*ts->targets));
	for (size_t i = 0; i < ts->n_targets; i++) {
		char key[24];
		snprintf(key, sizeof(key), "%zu", i + 1);
		ts->targets[i] = xstrdup(json_object_get_string(json_object_object_get(vals[F_TARGETS], key)));
	}
	ts->limit = vals[F_LIMIT] ? (int)json_object_get_int64(vals[F_LIMIT]) : JOB_MAX_LIMIT;
	ts->max_rows = vals[F_MAX_ROWS] ? json_object_get_int64(vals[F_MAX_ROWS]) : JOB_DEFAULT_MAX_ROWS;
	ts->max_cost_usd = vals[F_MAX_COST_USD] ? json_object_get_double(vals[F_MAX_COST_USD]) : 0;
	ts->request = jnew(json_object_new_object());
	for (size_t f = 0; f < F_COUNT; f++) {
		if (fields[f].sent && vals[f]) {
			json_object_object_add(ts->request, fields[f].key, vals[f]);
			vals[f] = NULL;
		}
	}
out:
	for (size_t f = 0; f < F_COUNT; f++)
		json_object_put(vals[f]);
	return rc;
}

static int load_sets(struct yt_ctx *c, const struct ynode *root, struct job *job)
{
	const struct ynode *defaults = yt_get(root, "defaults");
	const struct ynode *sets = yt_get(root, "target_sets");
	int rc;

	/* defaults: checked once on its own, so an error there names defaults. */
	yt_path_key(c, "defaults");
	if (yt_is_null(defaults)) {
		defaults = NULL;
	} else {
		if ((rc = map_check(c, defaults, set_keys + 1)) != 0)
			return rc;
		for (size_t f = 0; f < F_COUNT; f++) {
			const struct ynode *n = yt_get(defaults, fields[f].key);
			json_object *v;
			size_t old;

			if (yt_is_null(n))
				continue;
			old = yt_path_key(c, fields[f].key);
			if ((rc = check_field(c, &fields[f], n, &v)) != 0)
				return rc;
			json_object_put(v);
			yt_path_set(c, old);
		}
	}
	yt_path_set(c, 0);

	yt_path_key(c, "target_sets");
	if (!sets)
		return yt_fail(c, root, "required key is missing");
	if (sets->kind != YN_SEQ || sets->n == 0)
		return yt_fail(c, sets, "expected a list of at least one target set, got %s",
			       sets->kind == YN_SEQ ? "an empty list" : yt_kind_name(sets));
	job->sets = xcalloc(sets->n, sizeof(*job->sets));
	for (size_t i = 0; i < sets->n; i++) {
		job->n_sets = i + 1;
		if ((rc = load_set(c, sets->kids[i], defaults, i, &job->sets[i])) != 0)
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(job->sets[j].name, job->sets[i].name) == 0) {
				const struct ynode *a = yt_get(sets->kids[j], "name");
				const struct ynode *b = yt_get(sets->kids[i], "name");
				set_path(c, i);
				yt_path_key(c, "name");
				return yt_fail(c, b, "duplicate target set name \"%s\" (first at %d:%d)",
					       job->sets[i].name, a->line, a->col);
			}
		}
	}
	yt_path_set(c, 0);
	return 0;
}

/* archive, retention and the job's cost ceiling. */
static int load_history(struct yt_ctx *c, const struct ynode *root, struct job *job)
{
	const struct ynode *n, *ret;
	char what[96];
	int rc;

	job->archive = true;
	n = yt_get(root, "archive");
	yt_path_key(c, "archive");
	if (!yt_is_null(n)) {
		if (n->kind != YN_SCALAR || n->type != YT_BOOL)
			return yt_fail(c, n, "expected true or false, got %s",
				       yt_describe(n, what, sizeof(what)));
		job->archive = n->b;
	}
	yt_path_set(c, 0);

	n = yt_get(root, "max_cost_usd");
	yt_path_key(c, "max_cost_usd");
	if (!yt_is_null(n) && (rc = get_money(c, n, 1000000, &job->max_cost_usd)) != 0)
		return rc;
	yt_path_set(c, 0);

	{
		const char *s;

		/* where a run writes its Prometheus metrics (metrics.h); relative to
		 * the working directory, as --metrics-file */
		n = yt_get(root, "metrics_file");
		yt_path_key(c, "metrics_file");
		if ((rc = yt_text(c, n, &s)) != 0)
			return rc;
		if (s && (!*s || strlen(s) > 4000))
			return yt_fail(c, n, "expected a file path of 1 to 4000 bytes");
		job->metrics_file = s ? xstrdup(s) : NULL;
		yt_path_set(c, 0);
	}

	ret = yt_get(root, "retention");
	yt_path_key(c, "retention");
	if (yt_is_null(ret)) {
		yt_path_set(c, 0);
		return 0;
	}
	if ((rc = map_check(c, ret, retention_keys)) != 0)
		return rc;
	{
		size_t old = c->path.len;

		n = yt_get(ret, "keep_snapshots");
		yt_path_key(c, "keep_snapshots");
		if (!yt_is_null(n) && (rc = get_days(c, n, &job->keep_snapshots_days)) != 0)
			return rc;
		yt_path_set(c, old);
		n = yt_get(ret, "keep_archive");
		yt_path_key(c, "keep_archive");
		if (!yt_is_null(n) && (rc = get_days(c, n, &job->keep_archive_days)) != 0)
			return rc;
	}
	yt_path_set(c, 0);
	return 0;
}

static int load_job(struct yt_ctx *c, const struct ynode *root, struct job *job)
{
	const struct ynode *n;
	const char *s;
	char what[96];
	int rc;

	if (root->kind != YN_MAP)
		return yt_fail(c, root, "the top level must be a mapping (key: value lines), got %s",
			       yt_kind_name(root));
	if ((rc = map_check(c, root, root_keys)) != 0)
		return rc;

	n = yt_get(root, "version");
	yt_path_key(c, "version");
	if (yt_is_null(n))
		return yt_fail(c, n ? n : root, "required key is missing\nhint: start the file with "
			       "version: 1");
	if (n->kind != YN_SCALAR || n->type != YT_INT)
		return yt_fail(c, n, "expected the integer 1, got %s", yt_describe(n, what, sizeof(what)));
	if (n->i != 1)
		return yt_fail(c, n, "unsupported version %lld; this program reads version 1", n->i);
	yt_path_set(c, 0);

	n = yt_get(root, "job");
	yt_path_key(c, "job");
	if (yt_is_null(n))
		return yt_fail(c, n ? n : root, "required key is missing");
	if ((rc = yt_text(c, n, &s)) != 0)
		return rc;
	if (!valid_name(s))
		return yt_fail(c, n, "expected a name [a-z0-9_-]+ of at most %d characters, got %s",
			       JOB_MAX_NAME, yt_describe(n, what, sizeof(what)));
	job->name = xstrdup(s);
	yt_path_set(c, 0);

	if ((rc = load_api(c, root, yt_get(root, "api"), &job->api)) != 0)
		return rc;
	if ((rc = load_database(c, yt_get(root, "database"), &job->db)) != 0)
		return rc;
	if ((rc = load_history(c, root, job)) != 0)
		return rc;
	return load_sets(c, root, job);
}

/* ----------------------------------------------------------- public API */

static int load(const char *text, size_t len, const char *name, const char *dir, unsigned need,
		struct job **out, struct etl_error *err)
{
	struct job_read rd = {dir ? xstrdup(dir) : NULL, need};
	struct yt_ctx c = {.name = name, .err = err, .unset = unset_policy, .user = &rd};
	struct ynode *root = NULL;
	struct job *job = NULL;
	int rc;

	*out = NULL;
	if (err)
		etl_error_clear(err);
	sb_init(&c.path);
	if (len > JOB_MAX_FILE_BYTES) {
		rc = etl_fail(err, ETL_EUSAGE, "%s: %zu bytes; a job file may be at most %d bytes",
			      name, len, JOB_MAX_FILE_BYTES);
		goto out;
	}
	if (len == 0) {
		rc = yt_fail_at(&c, 1, 1, "empty job file");
		goto out;
	}
	if ((rc = yt_check_text(&c, text, len)) != 0)
		goto out;
	if ((rc = yt_parse(&c, text, len, &root)) != 0)
		goto out;
	/* No document, or one that is only `---`, `~` or `${X:-}`. */
	if (root && (rc = yt_expand(&c, root)) != 0)
		goto out;
	if (yt_is_null(root)) {
		rc = yt_fail_at(&c, root ? root->line : 1, root ? root->col : 1, "empty job file");
		goto out;
	}
	job = xcalloc(1, sizeof(*job));
	job->path = xstrdup(name);
	if ((rc = load_job(&c, root, job)) != 0)
		goto out;
	job->unset_env = c.unset_env;
	c.unset_env = NULL;
	*out = job;
	job = NULL;
out:
	job_free(job);
	yt_free(root);
	sb_free(&c.path);
	free(rd.dir);
	free(c.unset_env);
	return rc;
}

int job_load_string(const char *text, size_t len, const char *name, struct job **out,
		    struct etl_error *err)
{
	return load(text, len, name ? name : "<string>", NULL, JOB_NEED_ALL, out, err);
}

int job_load_file(const char *path, struct job **out, struct etl_error *err)
{
	return job_load_file_for(path, JOB_NEED_ALL, out, err);
}

int job_load_file_for(const char *path, unsigned need, struct job **out, struct etl_error *err)
{
	const char *slash = strrchr(path, '/');
	char *buf = NULL, *dir = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t got;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	/* a job file that is not there is a bad command line: nothing started */
	if (fd < 0)
		return etl_fail(err, ETL_EUSAGE, "%s: cannot open the job file: %s\n"
				"hint: give the path of a job file (YAML); `intersect-etl init FILE` "
				"writes one to start from",
				path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = etl_fail(err, ETL_EFAIL, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = etl_fail(err, ETL_EUSAGE, "%s: a directory, not a job file", path);
		goto out;
	}
	/* Refused before reading a byte of it, so a huge file costs nothing. */
	if (S_ISREG(st.st_mode) && st.st_size > JOB_MAX_FILE_BYTES) {
		rc = etl_fail(err, ETL_EUSAGE, "%s: %lld bytes; a job file may be at most %d bytes",
			      path, (long long)st.st_size, JOB_MAX_FILE_BYTES);
		goto out;
	}
	/* One byte more than allowed, to notice a pipe that goes on. */
	buf = xmalloc(JOB_MAX_FILE_BYTES + 1);
	while ((got = read(fd, buf + len, JOB_MAX_FILE_BYTES + 1 - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = etl_fail(err, ETL_EFAIL, "%s: cannot read: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)got;
		if (len > JOB_MAX_FILE_BYTES) {
			rc = etl_fail(err, ETL_EUSAGE, "%s: more than %d bytes; a job file may be at "
				      "most %d bytes", path, JOB_MAX_FILE_BYTES, JOB_MAX_FILE_BYTES);
			goto out;
		}
	}
	if (slash)
		dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	rc = load(buf, len, path, dir, need, out, err);
out:
	close(fd);
	if (buf) {
		explicit_bzero(buf, len);
		free(buf);
	}
	free(dir);
	return rc;
}

void job_free(struct job *job)
{
	if (!job)
		return;
	free(job->path);
	free(job->unset_env);
	free(job->metrics_file);
	free(job->name);
	free(job->api.base_url);
	xfree_secret(job->api.token);
	xfree_secret(job->api.login); /* half of the Basic credential */
	xfree_secret(job->api.password);
	xfree_secret(job->db.url); /* a conninfo may hold a password */
	free(job->db.schema);
	for (size_t i = 0; i < job->n_sets; i++) {
		struct target_set *ts = &job->sets[i];
		free(ts->name);
		for (size_t t = 0; t < ts->n_targets; t++)
			free(ts->targets[t]);
		free(ts->targets);
		json_object_put(ts->request);
	}
	free(job->sets);
	free(job);
}

const struct target_set *job_find_set(const struct job *job, const char *name)
{
	if (!job || !name)
		return NULL;
	for (size_t i = 0; i < job->n_sets; i++)
		if (strcmp(job->sets[i].name, name) == 0)
			return &job->sets[i];
	return NULL;
}

char *job_set_names(const struct job *job)
{
	struct strbuf sb;

	sb_init(&sb);
	for (size_t i = 0; job && i < job->n_sets; i++)
		sb_printf(&sb, "%s%s", i ? ", " : "", job->sets[i].name);
	return sb_detach(&sb);
}

int job_no_such_set(const struct job *job, const char *option, const char *name,
		    struct etl_error *err)
{
	char *names = job_set_names(job);
	int rc = etl_fail(err, ETL_EUSAGE,
			  "%s: %s %s: no target set of that name\nhint: the job's target sets: %s",
			  job->path, option, name, names);

	free(names);
	return rc;
}

const char *job_provider_name(enum api_provider p)
{
	switch (p) {
	case API_AISA: return "aisa";
	case API_DATAFORSEO: return "dataforseo";
	}
	return "unknown";
}
