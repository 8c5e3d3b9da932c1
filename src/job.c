/*
 * job.c - reading and validating a job file (the contract is in job.h).
 *
 * Three passes, each simple on its own. parse_yaml() turns libyaml's event
 * stream into a small tree of struct ynode; the hostile-input limits live
 * there (nesting depth, node count, one document, no anchors or aliases, no
 * NUL in a scalar). expand_tree() rewrites ${VAR} references in every value
 * scalar and then resolves each plain scalar to its YAML 1.2 core-schema type,
 * so `limit: 1000` is an integer and `limit: "1000"` a string, also when the
 * digits came from the environment. The load_* functions then walk the tree
 * against the schema below and build struct job; the first error stops the
 * load and names file:line:column and the key path (list indexes 0-based,
 * e.g. target_sets[0].filters[2]).
 *
 * Choices worth knowing:
 *  - Anchors and aliases are refused, not expanded: a job file has no need
 *    for them (defaults: is the way to share request fields), and refusing
 *    them makes "billion laughs" impossible rather than merely capped.
 *  - Mapping keys are not ${}-expanded; the vocabulary is fixed. Inside a
 *    flow collection ([...] or {...}) an unquoted ${VAR} is a YAML syntax
 *    error, since { and } are flow indicators there: quote it (a string) or
 *    use block style (keeps the core-schema type).
 *  - The expanded text of all scalars together is capped at
 *    JOB_MAX_FILE_BYTES, so the environment cannot inflate a file past it.
 *  - A null value (`key:`, `key: ~`, or `key: ${VAR:-}`) means "not set":
 *    the built-in default applies, and in a target set it clears a value
 *    given under defaults:.
 *  - Settings that never become JSON (credentials, URLs, names, paths) take
 *    any scalar as its text, so a numeric password stays a password. Request
 *    fields keep their YAML type and are type-checked.
 *  - Credential values, base_url and database.url never appear in a message.
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
#include <yaml.h>

#define JOB_MAX_DEPTH 64          /* nested collections; real job files use about 6 */
#define JOB_MAX_NODES 100000      /* YAML nodes in one file */
#define JOB_MAX_SECRET_FILE 65536 /* token_file / password_file */
#define JOB_MAX_ROWS 10000000LL
#define JOB_DEFAULT_MAX_ROWS 10000
#define JOB_MAX_NAME 63
#define JOB_SHOW_MAX 40           /* bytes of a value quoted in a message */

#define DEFAULT_AISA_URL "https://api.aisa.one/apis/v1"
#define DEFAULT_DATAFORSEO_URL "https://api.dataforseo.com/v3"

/* ------------------------------------------------------------------ tree */

enum ykind { YN_SCALAR, YN_SEQ, YN_MAP };
enum ytype { YT_STR = 0, YT_NULL, YT_BOOL, YT_INT, YT_FLOAT };

struct ynode {
	enum ykind kind;
	int line, col;        /* 1-based, where the node starts */
	char *text;           /* scalars: owned, NUL-terminated, expanded by expand_tree() */
	size_t len;           /* bytes in text */
	bool plain;           /* plain style and untagged: its type comes from its text */
	enum ytype type;      /* scalars: resolved type (keys stay YT_STR) */
	bool b;               /* YT_BOOL */
	long long i;          /* YT_INT */
	double d;             /* YT_FLOAT */
	bool unset;           /* a credential's ${VAR} was unset, which a load that does not
				 need it tolerates (see JOB_NEED_API): expanded as "" */
	struct ynode **kids;  /* seq: items; map: key, value, key, value, ... (owned) */
	size_t n, cap;        /* used and allocated entries of kids */
};

static struct ynode *ynode_new(enum ykind kind, yaml_mark_t mark)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	/* The file is at most JOB_MAX_FILE_BYTES, so marks fit an int. */
	n->line = (int)mark.line + 1;
	n->col = (int)mark.column + 1;
	return n;
}

/* Frees n and everything under it. Scalars are wiped first: they include
 * credentials, inline or expanded from the environment. */
static void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	if (n->text) {
		explicit_bzero(n->text, n->len);
		free(n->text);
	}
	free(n);
}

static void ynode_add(struct ynode *parent, struct ynode *kid)
{
	if (parent->n == parent->cap) {
		parent->cap = parent->cap ? parent->cap * 2 : 8;
		parent->kids = xrealloc(parent->kids, parent->cap * sizeof(*parent->kids));
	}
	parent->kids[parent->n++] = kid;
}

/* The value under `key` in mapping m (borrowed), or NULL when absent. */
static const struct ynode *map_get(const struct ynode *m, const char *key)
{
	if (!m || m->kind != YN_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (strcmp(m->kids[i]->text, key) == 0)
			return m->kids[i + 1];
	return NULL;
}

static bool is_null(const struct ynode *n)
{
	return !n || (n->kind == YN_SCALAR && n->type == YT_NULL);
}

/* ------------------------------------------------------- messages, paths */

struct ctx {
	const char *name;        /* the file as named in messages */
	char *dir;               /* owned; base of relative secret-file paths, NULL = cwd */
	struct etl_error *err;
	struct strbuf path;      /* key path of the node being checked */
	size_t expanded;         /* bytes of scalars rewritten by expand_scalar() so far */
	unsigned need;           /* JOB_NEED_API, JOB_NEED_DB: whose credentials must be there */
	char *unset_env;         /* owned: the first unset ${VAR} a credential named, tolerated */
};

/* Whether the value at the current path is one of the API's credentials. */
static bool at_api_credential(const struct ctx *c)
{
	static const char *const keys[] = {"api.token", "api.token_file", "api.login",
					   "api.password", "api.password_file"};
	const char *p = c->path.data ? c->path.data : "";

	for (size_t i = 0; i < ETL_ARRAY_LEN(keys); i++)
		if (strcmp(p, keys[i]) == 0)
			return true;
	return false;
}

static bool at_db_url(const struct ctx *c)
{
	return c->path.data && strcmp(c->path.data, "database.url") == 0;
}

/*
 * An unset ${VAR} in a credential is no error for a command that does not
 * use that credential: `validate` and `plan` connect to nothing, `runs` and
 * `report` only to the database.
 */
static bool unset_tolerated(const struct ctx *c)
{
	if (at_api_credential(c))
		return !(c->need & JOB_NEED_API);
	return at_db_url(c) && !(c->need & JOB_NEED_DB);
}

static void path_set_len(struct ctx *c, size_t len)
{
	c->path.len = len;
	if (c->path.data)
		c->path.data[len] = '\0';
}

/* Appends ".key" (sanitized, at most 64 bytes) and returns the old length for path_set_len(). */
static size_t path_key(struct ctx *c, const char *key)
{
	size_t old = c->path.len;

	if (old)
		sb_putc(&c->path, '.');
	for (size_t i = 0; key[i] && i < 64; i++) {
		unsigned char ch = (unsigned char)key[i];
		sb_putc(&c->path, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
	}
	return old;
}

static size_t path_index(struct ctx *c, size_t i)
{
	size_t old = c->path.len;

	sb_printf(&c->path, "[%zu]", i);
	return old;
}

static int vfail(struct ctx *c, int line, int col, const char *fmt, va_list ap) ETL_PRINTF(4, 0);
static int vfail(struct ctx *c, int line, int col, const char *fmt, va_list ap)
{
	char what[sizeof(c->err->msg)];

	vsnprintf(what, sizeof(what), fmt, ap);
	if (c->path.len)
		return etl_fail(c->err, ETL_EUSAGE, "%s:%d:%d: %s: %s", c->name, line, col,
				c->path.data, what);
	return etl_fail(c->err, ETL_EUSAGE, "%s:%d:%d: %s", c->name, line, col, what);
}

/* Sets a job-file error at line:col with the current key path; returns ETL_EUSAGE. */
static int fail_at(struct ctx *c, int line, int col, const char *fmt, ...) ETL_PRINTF(4, 5);
static int fail_at(struct ctx *c, int line, int col, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(c, line, col, fmt, ap);
	va_end(ap);
	return rc;
}

static int fail_node(struct ctx *c, const struct ynode *n, const char *fmt, ...) ETL_PRINTF(3, 4);
static int fail_node(struct ctx *c, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(c, n->line, n->col, fmt, ap);
	va_end(ap);
	return rc;
}

static const char *kind_name(const struct ynode *n)
{
	if (n->kind == YN_SEQ)
		return "a list";
	if (n->kind == YN_MAP)
		return "a mapping";
	switch (n->type) {
	case YT_NULL: return "null";
	case YT_BOOL: return "a boolean";
	case YT_INT: return "an integer";
	case YT_FLOAT: return "a float";
	case YT_STR: break;
	}
	return "a string";
}

/* Writes `s` quoted, at most JOB_SHOW_MAX bytes of it, control bytes as '?'. */
static void show_text(char *buf, size_t size, const char *s, size_t len)
{
	char tmp[JOB_SHOW_MAX + 1];
	size_t n = len < JOB_SHOW_MAX ? len : JOB_SHOW_MAX;

	/* Never cut a UTF-8 sequence in half. */
	while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		tmp[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	tmp[n] = '\0';
	snprintf(buf, size, "\"%s%s\"", tmp, n < len ? "..." : "");
}

/* "a string (\"x\")", "an integer (5)", "a list" into buf, which it returns:
 * for messages about values that are not secret. */
static const char *describe(const struct ynode *n, char *buf, size_t size)
{
	char shown[JOB_SHOW_MAX + 8];

	if (n->kind != YN_SCALAR || n->type == YT_NULL) {
		snprintf(buf, size, "%s", kind_name(n));
		return buf;
	}
	if (n->type == YT_STR)
		show_text(shown, sizeof(shown), n->text, n->len);
	else
		snprintf(shown, sizeof(shown), "%.*s", JOB_SHOW_MAX, n->text);
	snprintf(buf, size, "%s (%s)", kind_name(n), shown);
	return buf;
}

/* Line and column (1-based, in characters as libyaml counts them) of byte `off`. */
static void offset_pos(const char *buf, size_t len, size_t off, int *line, int *col)
{
	int l = 1, cl = 1;
	size_t i = 0;

	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	for (; i < off && i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch == '\n' || (ch == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))) {
			l++;
			cl = 1;
		} else if ((ch & 0xC0) != 0x80 && ch != '\r') {
			cl++;
		}
	}
	*line = l;
	*col = cl;
}

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

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Where a key that is unknown here does belong, for the hint. */
static const char *key_home(const char *key)
{
	if (in_list(root_keys, key))
		return "at the top level";
	if (in_list(api_keys, key))
		return "under api:";
	if (in_list(database_keys, key))
		return "under database:";
	if (strcmp(key, "name") == 0)
		return "in a target set (an item of target_sets:)";
	if (in_list(set_keys + 1, key))
		return "under defaults: or in a target set";
	return NULL;
}

/* The error for an unknown key, with the closest known key as a hint. */
static int unknown_key(struct ctx *c, const struct ynode *key, const char *const *known)
{
	const char *best = NULL, *home;
	size_t best_d = 3;

	path_key(c, key->text);
	if (strcmp(key->text, "offset") == 0 && in_list(known, "limit"))
		return fail_node(c, key, "offset is set by the scheduler while paging"
			"\nhint: remove it; limit sets the page size");
	for (const char *const *k = known; *k; k++) {
		size_t d = edit_distance(key->text, *k);
		if (d < best_d) {
			best_d = d;
			best = *k;
		}
	}
	if (best)
		return fail_node(c, key, "unknown key\nhint: did you mean '%s'?", best);
	home = key_home(key->text);
	if (home)
		return fail_node(c, key, "unknown key here\nhint: '%s' belongs %s", key->text, home);
	return fail_node(c, key, "unknown key");
}

/* Checks that n is a mapping whose keys are unique and all in `known`. */
static int map_check(struct ctx *c, const struct ynode *n, const char *const *known)
{
	if (n->kind != YN_MAP)
		return fail_node(c, n, "expected a mapping (key: value lines), got %s", kind_name(n));
	/* Both checks stop at the first bad key, so with a short `known` list
	 * the quadratic duplicate scan stays short however large the file. */
	for (size_t i = 0; i < n->n; i += 2) {
		const struct ynode *key = n->kids[i];
		if (!in_list(known, key->text))
			return unknown_key(c, key, known);
		for (size_t j = 0; j < i; j += 2) {
			if (strcmp(n->kids[j]->text, key->text) == 0) {
				path_key(c, key->text);
				return fail_node(c, key, "duplicate key (first at %d:%d)",
						 n->kids[j]->line, n->kids[j]->col);
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- parse */

struct parse_state {
	struct ynode *stack[JOB_MAX_DEPTH]; /* open collections, borrowed from root */
	size_t depth;
	size_t nodes;                        /* created so far, for JOB_MAX_NODES */
	int docs;
	struct ynode *root;                  /* owned */
};

/* Sets c->path to where the parser is: used for errors found while parsing. */
static void parse_path(struct ctx *c, const struct parse_state *ps)
{
	path_set_len(c, 0);
	for (size_t i = 0; i < ps->depth; i++) {
		const struct ynode *f = ps->stack[i];
		bool top = i + 1 == ps->depth;

		if (f->kind == YN_SEQ) {
			if (top)
				path_index(c, f->n);
			else if (f->n)
				path_index(c, f->n - 1);
		} else if (top) {
			if (f->n % 2)
				path_key(c, f->kids[f->n - 1]->text);
		} else if (f->n >= 2) {
			path_key(c, f->kids[f->n - 2]->text);
		}
	}
}

static int fail_mark(struct ctx *c, const struct parse_state *ps, yaml_mark_t m,
		     const char *fmt, ...) ETL_PRINTF(4, 5);
static int fail_mark(struct ctx *c, const struct parse_state *ps, yaml_mark_t m,
		     const char *fmt, ...)
{
	va_list ap;
	int rc;

	parse_path(c, ps);
	va_start(ap, fmt);
	rc = vfail(c, (int)m.line + 1, (int)m.column + 1, fmt, ap);
	va_end(ap);
	return rc;
}

static int syntax_error(struct ctx *c, const struct parse_state *ps, const yaml_parser_t *p,
			const char *buf, size_t len)
{
	const char *problem = p->problem ? p->problem : "unknown error";
	int line, col;

	parse_path(c, ps);
	if (p->error == YAML_MEMORY_ERROR) {
		fprintf(stderr, "intersect-etl: out of memory in the YAML parser\n");
		abort();
	}
	if (p->error == YAML_READER_ERROR) {
		offset_pos(buf, len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			return fail_at(c, line, col, "invalid YAML: %s (#x%X)", problem,
				       (unsigned)p->problem_value);
		return fail_at(c, line, col, "invalid YAML: %s", problem);
	}
	line = (int)p->problem_mark.line + 1;
	col = (int)p->problem_mark.column + 1;
	if (p->context)
		return fail_at(c, line, col, "invalid YAML: %s (%s at %d:%d)", problem, p->context,
			       (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
	return fail_at(c, line, col, "invalid YAML: %s", problem);
}

/* Tags: only those that change nothing or force a string are accepted. */
static bool tag_ok(enum ykind kind, const char *tag)
{
	if (!tag)
		return true;
	if (kind == YN_SCALAR)
		return strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0;
	if (kind == YN_SEQ)
		return strcmp(tag, YAML_SEQ_TAG) == 0;
	return strcmp(tag, YAML_MAP_TAG) == 0;
}

/* Handles one node event: checks the limits, then attaches the new node to its parent. */
static int parse_node(struct ctx *c, struct parse_state *ps, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;
	enum ykind kind;
	struct ynode *n, *top = ps->depth ? ps->stack[ps->depth - 1] : NULL;

	if (ev->type == YAML_SCALAR_EVENT) {
		kind = YN_SCALAR;
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
	} else if (ev->type == YAML_SEQUENCE_START_EVENT) {
		kind = YN_SEQ;
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	} else {
		kind = YN_MAP;
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	}
	if (anchor)
		return fail_mark(c, ps, ev->start_mark, "anchors (&%.40s) are not supported"
				 "\nhint: share request fields with defaults: instead", (const char *)anchor);
	if (!tag_ok(kind, (const char *)tag))
		return fail_mark(c, ps, ev->start_mark, "unsupported tag '%.40s'"
				 "\nhint: only !!str (to force a string) is accepted", (const char *)tag);
	if (top && top->kind == YN_MAP && top->n % 2 == 0 && kind != YN_SCALAR)
		return fail_mark(c, ps, ev->start_mark, "a mapping key must be a scalar, not %s",
				 kind == YN_SEQ ? "a list" : "a mapping");
	if (kind != YN_SCALAR && ps->depth == JOB_MAX_DEPTH)
		return fail_mark(c, ps, ev->start_mark, "nested more than %d levels deep",
				 JOB_MAX_DEPTH);
	if (++ps->nodes > JOB_MAX_NODES)
		return fail_mark(c, ps, ev->start_mark, "more than %d YAML nodes; this is not a job file",
				 JOB_MAX_NODES);
	if (kind == YN_SCALAR &&
	    memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
		return fail_mark(c, ps, ev->start_mark, "a NUL character in a string");
	if (!top && ps->root)
		return fail_mark(c, ps, ev->start_mark, "a second top-level node");

	n = ynode_new(kind, ev->start_mark);
	if (kind == YN_SCALAR) {
		n->text = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
	}
	if (top)
		ynode_add(top, n);
	else
		ps->root = n;
	if (kind != YN_SCALAR)
		ps->stack[ps->depth++] = n;
	return 0;
}

static int parse_event(struct ctx *c, struct parse_state *ps, const yaml_event_t *ev, bool *end)
{
	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		*end = true;
		return 0;
	case YAML_DOCUMENT_START_EVENT:
		if (ps->docs++)
			return fail_mark(c, ps, ev->start_mark, "a second YAML document; a job file holds one");
		return 0;
	case YAML_ALIAS_EVENT:
		return fail_mark(c, ps, ev->start_mark, "aliases (*%.40s) are not supported"
				 "\nhint: share request fields with defaults: instead",
				 (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return parse_node(c, ps, ev);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		ps->depth--;
		return 0;
	default:
		return 0;
	}
}

/* Parses buf into a tree. *out is the root (free with ynode_free()), or NULL for a stream with no document. */
static int parse_yaml(struct ctx *c, const char *buf, size_t len, struct ynode **out)
{
	struct parse_state ps = {.depth = 0};
	yaml_parser_t parser;
	yaml_event_t ev;
	bool end = false;
	int rc = 0;

	*out = NULL;
	if (!yaml_parser_initialize(&parser)) {
		fprintf(stderr, "intersect-etl: out of memory initializing the YAML parser\n");
		abort();
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	while (!end && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = syntax_error(c, &ps, &parser, buf, len);
			break;
		}
		rc = parse_event(c, &ps, &ev, &end);
		/* a scalar may be a credential; ynode_free() wipes our copy */
		if (ev.type == YAML_SCALAR_EVENT && ev.data.scalar.value)
			explicit_bzero(ev.data.scalar.value, ev.data.scalar.length);
		yaml_event_delete(&ev);
	}
	/* libyaml's copies of the file text, credentials included (its own
	 * scanning scratch strings are out of reach) */
	if (parser.raw_buffer.start)
		explicit_bzero(parser.raw_buffer.start,
			       (size_t)(parser.raw_buffer.end - parser.raw_buffer.start));
	if (parser.buffer.start)
		explicit_bzero(parser.buffer.start,
			       (size_t)(parser.buffer.end - parser.buffer.start));
	yaml_parser_delete(&parser);
	path_set_len(c, 0);
	if (rc) {
		ynode_free(ps.root);
		return rc;
	}
	*out = ps.root;
	return 0;
}

/* Finds NUL bytes and invalid UTF-8 before libyaml does, for a clearer message. */
static int check_text(struct ctx *c, const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;
	int line, col;

	while (i < len) {
		unsigned char b = s[i];
		size_t need = 0;
		unsigned char lo = 0x80, hi = 0xBF;

		if (b == 0) {
			offset_pos(buf, len, i, &line, &col);
			return fail_at(c, line, col, "a NUL byte; is this a binary file?"
				       "\nhint: job files are UTF-8 YAML text");
		}
		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xC2 && b <= 0xDF) {
			need = 1;
		} else if (b >= 0xE0 && b <= 0xEF) {
			need = 2;
			if (b == 0xE0)
				lo = 0xA0;
			else if (b == 0xED)
				hi = 0x9F;
		} else if (b >= 0xF0 && b <= 0xF4) {
			need = 3;
			if (b == 0xF0)
				lo = 0x90;
			else if (b == 0xF4)
				hi = 0x8F;
		}
		bool ok = need > 0 && i + need < len;
		for (size_t k = 1; ok && k <= need; k++) {
			unsigned char cb = s[i + k];
			if (k == 1 ? (cb < lo || cb > hi) : (cb & 0xC0) != 0x80)
				ok = false;
		}
		if (!ok) {
			offset_pos(buf, len, i, &line, &col);
			return fail_at(c, line, col, "invalid UTF-8 (byte 0x%02X); is this a binary file?"
				       "\nhint: job files are UTF-8 YAML text", b);
		}
		i += need + 1;
	}
	return 0;
}

/* ------------------------------------------------------ expand, resolve */

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_name_start(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}
static bool is_name_char(char ch) { return is_name_start(ch) || is_digit(ch); }

/*
 * Rewrites n->text with ${VAR}, ${VAR:-default} and $${ expanded. The
 * default is literal text up to the first '}'. Values from the environment
 * are not expanded again.
 */
static int expand_scalar(struct ctx *c, struct ynode *n)
{
	struct strbuf sb;
	const char *t = n->text;
	size_t i = 0;
	int rc = 0;

	if (!strchr(t, '$'))
		return 0;
	sb_init(&sb);
	while (i < n->len) {
		size_t name, name_end, def = 0, def_end = 0, close;
		const char *val;
		char *var;

		if (t[i] == '$' && t[i + 1] == '$' && t[i + 2] == '{') {
			sb_append(&sb, "${", 2);
			i += 3;
			continue;
		}
		if (t[i] != '$' || t[i + 1] != '{') {
			sb_putc(&sb, t[i++]);
			continue;
		}
		name = name_end = i + 2;
		if (is_name_start(t[name_end]))
			while (is_name_char(t[name_end]))
				name_end++;
		if (!strchr(t + i, '}')) {
			rc = fail_node(c, n, "an unterminated ${ (no closing '}')"
				       "\nhint: write $${ for a literal ${");
			goto done;
		}
		if (name_end == name || (t[name_end] != '}' && t[name_end] != ':')) {
			rc = fail_node(c, n, "a bad variable name after ${"
				       "\nhint: use ${NAME} or ${NAME:-default}, NAME being "
				       "[A-Za-z_][A-Za-z0-9_]*");
			goto done;
		}
		if (t[name_end] == ':') {
			if (t[name_end + 1] != '-') {
				rc = fail_node(c, n, "an unsupported expansion (only ${NAME} and "
					       "${NAME:-default} are supported)");
				goto done;
			}
			def = name_end + 2;
			def_end = def;
			while (t[def_end] && t[def_end] != '}')
				def_end++;
			close = def_end;
		} else {
			close = name_end;
		}
		if (t[close] != '}') {
			rc = fail_node(c, n, "an unterminated ${ (no closing '}')"
				       "\nhint: write $${ for a literal ${");
			goto done;
		}
		var = xstrndup(t + name, name_end - name);
		val = getenv(var);
		if (def) {
			if (val && *val)
				sb_puts(&sb, val);
			else
				sb_append(&sb, t + def, def_end - def);
		} else if (val) {
			sb_puts(&sb, val);
		} else if (unset_tolerated(c)) {
			n->unset = true;
			if (!c->unset_env)
				c->unset_env = xstrdup(var);
		} else if (at_api_credential(c) || at_db_url(c)) {
			/* never a default for a secret: it would sit in the file */
			rc = fail_node(c, n, "environment variable %s is not set"
				       "\nhint: export %s in the environment that runs intersect-etl "
				       "(cron: the line's env file; systemd: EnvironmentFile=)%s",
				       var, var,
				       at_api_credential(c) ? ", or keep the key in a file named by "
							      "api.token_file / api.password_file"
							    : "");
			free(var);
			goto done;
		} else {
			rc = fail_node(c, n, "environment variable %s is not set"
				       "\nhint: export %s, or write a default into the file: "
				       "${%s:-VALUE}",
				       var, var, var);
			free(var);
			goto done;
		}
		free(var);
		i = close + 1;
		/* The environment is not under the file's size limit; keep it there. */
		if (c->expanded + sb.len > JOB_MAX_FILE_BYTES) {
			rc = fail_node(c, n, "${} expansions make the job more than %d bytes",
				       JOB_MAX_FILE_BYTES);
			goto done;
		}
	}
	c->expanded += sb.len;
	explicit_bzero(n->text, n->len);
	free(n->text);
	n->len = sb.len;
	n->text = sb_detach(&sb);
done:
	if (sb.data)
		explicit_bzero(sb.data, sb.len);
	sb_free(&sb);
	return rc;
}

static bool is_core_float(const char *p)
{
	bool digits = false;

	if (*p == '+' || *p == '-')
		p++;
	while (is_digit(*p)) {
		p++;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (is_digit(*p)) {
			p++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!is_digit(*p))
			return false;
		while (is_digit(*p))
			p++;
	}
	return *p == '\0';
}

static bool all_in(const char *p, const char *set)
{
	if (!*p)
		return false;
	for (; *p; p++)
		if (!strchr(set, *p))
			return false;
	return true;
}

/* Gives a plain scalar its YAML 1.2 core-schema type; every other scalar is a string. */
static int resolve_scalar(struct ctx *c, struct ynode *n)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	const char *t = n->text, *digits = NULL;
	int base = 10;

	n->type = YT_STR;
	if (!n->plain)
		return 0;
	if (!*t || in_list(nulls, t)) {
		n->type = YT_NULL;
		return 0;
	}
	if (in_list(trues, t) || in_list(falses, t)) {
		n->type = YT_BOOL;
		n->b = t[0] == 't' || t[0] == 'T';
		return 0;
	}
	if (all_in(t + (*t == '+' || *t == '-'), "0123456789"))
		digits = t;
	else if (strncmp(t, "0o", 2) == 0 && all_in(t + 2, "01234567"))
		digits = t + 2;
	else if (strncmp(t, "0x", 2) == 0 && all_in(t + 2, "0123456789abcdefABCDEF"))
		digits = t + 2;
	if (digits && digits != t)
		base = t[1] == 'o' ? 8 : 16;
	if (digits) {
		errno = 0;
		n->i = strtoll(digits, NULL, base);
		if (errno == ERANGE)
			return fail_node(c, n, "integer %.40s is out of range (64-bit signed)", t);
		n->type = YT_INT;
		return 0;
	}
	if (is_core_float(t)) {
		n->type = YT_FLOAT;
		n->d = strtod(t, NULL);
		return 0;
	}
	{
		const char *p = t + (*t == '+' || *t == '-');
		if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
			n->type = YT_FLOAT;
			n->d = *t == '-' ? -INFINITY : INFINITY;
		} else if (p == t && (!strcmp(t, ".nan") || !strcmp(t, ".NaN") || !strcmp(t, ".NAN"))) {
			n->type = YT_FLOAT;
			n->d = NAN;
		}
	}
	return 0;
}

/* Expands and resolves every value scalar under n. Keys stay as written. */
static int expand_tree(struct ctx *c, struct ynode *n)
{
	int rc = 0;

	if (n->kind == YN_SCALAR) {
		rc = expand_scalar(c, n);
		return rc ? rc : resolve_scalar(c, n);
	}
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		size_t old;
		if (n->kind == YN_MAP) {
			if (i % 2 == 0)
				continue;
			old = path_key(c, n->kids[i - 1]->text);
		} else {
			old = path_index(c, i);
		}
		rc = expand_tree(c, n->kids[i]);
		if (rc == 0)
			path_set_len(c, old);
	}
	return rc;
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
static int scalar_json(struct ctx *c, const struct ynode *n, json_object **out)
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
			return fail_node(c, n, "%.40s has no JSON form (infinity or NaN)", n->text);
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

/*
 * For settings that never become JSON: any scalar, taken as its text.
 * *out borrows from the tree; NULL when the node is absent or null.
 * Never shows the value, so it serves for credentials too.
 */
static int get_text(struct ctx *c, const struct ynode *n, const char **out)
{
	*out = NULL;
	if (is_null(n))
		return 0;
	if (n->kind != YN_SCALAR)
		return fail_node(c, n, "expected a string, got %s", kind_name(n));
	*out = n->text;
	return 0;
}

static int get_int(struct ctx *c, const struct ynode *n, long long min, long long max, long long *out)
{
	char what[96];

	if (n->kind == YN_SCALAR && n->type == YT_INT && n->i >= min && n->i <= max) {
		*out = n->i;
		return 0;
	}
	describe(n, what, sizeof(what));
	if (n->kind == YN_SCALAR && n->type == YT_STR && !n->plain)
		return fail_node(c, n, "expected an integer from %lld to %lld, got %s"
				 "\nhint: remove the quotes", min, max, what);
	return fail_node(c, n, "expected an integer from %lld to %lld, got %s", min, max, what);
}

/* A positive amount of US dollars (an integer or a float), at most max. */
static int get_money(struct ctx *c, const struct ynode *n, double max, double *out)
{
	char what[96];

	if (n->kind == YN_SCALAR && (n->type == YT_INT || n->type == YT_FLOAT)) {
		double d = n->type == YT_INT ? (double)n->i : n->d;

		if (d > 0 && d <= max) {
			*out = d;
			return 0;
		}
	}
	describe(n, what, sizeof(what));
	return fail_node(c, n, "expected an amount in USD above 0 and at most %.0f, got %s", max, what);
}

#define JOB_MAX_DAYS 36500 /* a century; leaving the key out keeps everything */

/*
 * A period in whole days: an integer, or "N day(s)" / "N week(s)". Returns
 * the number of days in *out (1..JOB_MAX_DAYS). The count is bounded before
 * it is scaled by its unit: "7905747460161236407 weeks" once overflowed
 * `v *= 7` and wrapped to a small, valid-looking number of days.
 */
static int get_days(struct ctx *c, const struct ynode *n, int *out)
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
		describe(n, what, sizeof(what));
		return fail_node(c, n, "%s is more than the maximum of %d days (%d weeks)\n"
				 "hint: without the key, nothing is deleted", what, JOB_MAX_DAYS,
				 JOB_MAX_DAYS / 7);
	}
	if (v >= 1) {
		*out = (int)(v * per);
		return 0;
	}
	describe(n, what, sizeof(what));
	return fail_node(c, n, "expected a period such as 400 days or 8 weeks (1 to %d days), "
			 "got %s", JOB_MAX_DAYS, what);
}

/* A string (by YAML type, not just any scalar) for a request field. */
static int need_string(struct ctx *c, const struct ynode *n, const char *what_expected)
{
	char what[96];

	if (n->kind == YN_SCALAR && n->type == YT_STR)
		return 0;
	describe(n, what, sizeof(what));
	if (n->kind == YN_SCALAR && n->type != YT_NULL)
		return fail_node(c, n, "expected %s, got %s\nhint: quote it to make it a string",
				 what_expected, what);
	return fail_node(c, n, "expected %s, got %s", what_expected, what);
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
static int check_targets(struct ctx *c, const struct field_spec *f, const struct ynode *n,
			 json_object **out)
{
	json_object *obj;
	char key[24];
	int rc = 0;

	if (n->kind != YN_SEQ)
		return fail_node(c, n, "expected a list of 1 to %lld targets, got %s", f->max, kind_name(n));
	if (n->n == 0)
		return fail_node(c, n, "an empty list; at least one target is required");
	if (n->n > (size_t)f->max)
		return fail_node(c, n, "%zu targets; at most %lld are allowed", n->n, f->max);
	obj = jnew(json_object_new_object());
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct ynode *t = n->kids[i];
		size_t old = path_index(c, i);

		/* Any other text goes to the API as it is: quotes, backslashes, tabs
		 * and newlines included, so what is stored is what was asked (a NUL,
		 * which PostgreSQL text cannot hold, is refused for every string). */
		rc = need_string(c, t, "a target (a domain or a page URL)");
		if (rc == 0 && t->len == 0)
			rc = fail_node(c, t, "an empty target");
		for (size_t j = 0; j < i && rc == 0; j++) {
			if (strcmp(n->kids[j]->text, t->text) == 0) {
				char shown[JOB_SHOW_MAX + 8];
				show_text(shown, sizeof(shown), t->text, t->len);
				rc = fail_node(c, t, "duplicate target %s (also at %d:%d)", shown,
					       n->kids[j]->line, n->kids[j]->col);
			}
		}
		if (rc == 0) {
			snprintf(key, sizeof(key), "%zu", i + 1);
			json_object_object_add(obj, key, jnew(json_object_new_string_len(t->text, (int)t->len)));
			path_set_len(c, old);
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
static int check_strlist(struct ctx *c, const struct field_spec *f, const struct ynode *n,
			 json_object **out)
{
	const char *what = f->check == CK_ORDER_BY ? "a rule \"field,asc\" or \"field,desc\""
						     : "a non-empty string";
	json_object *arr;
	int rc = 0;

	if (n->kind != YN_SEQ)
		return fail_node(c, n, "expected a list of at most %lld strings, got %s", f->max,
				 kind_name(n));
	if (n->n == 0)
		return fail_node(c, n, "an empty list\nhint: leave the key out, or set it to null "
				 "to clear a value from defaults:");
	if (n->n > (size_t)f->max)
		return fail_node(c, n, "%zu items; at most %lld are allowed", n->n, f->max);
	arr = jnew(json_object_new_array());
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct ynode *s = n->kids[i];
		size_t old = path_index(c, i);

		rc = need_string(c, s, what);
		if (rc == 0 && s->len == 0)
			rc = fail_node(c, s, "expected %s, got an empty string", what);
		if (rc == 0 && f->check == CK_ORDER_BY) {
			const char *comma = strrchr(s->text, ',');
			if (!comma || comma == s->text ||
			    (strcmp(comma, ",asc") != 0 && strcmp(comma, ",desc") != 0)) {
				char shown[JOB_SHOW_MAX + 8];
				show_text(shown, sizeof(shown), s->text, s->len);
				rc = fail_node(c, s, "expected %s, got %s", what, shown);
			}
		}
		if (rc == 0) {
			json_object_array_add(arr, jnew(json_object_new_string_len(s->text, (int)s->len)));
			path_set_len(c, old);
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
static int check_condition(struct ctx *c, const struct field_spec *f, const struct ynode *n,
			   int *nconds, json_object **out)
{
	const struct ynode *field, *op, *val;
	json_object *arr = NULL, *v = NULL;
	bool list_op;
	size_t old;
	int rc;

	if (++*nconds > f->max)
		return fail_node(c, n, "more than %lld conditions; the API allows at most %lld",
				 f->max, f->max);
	if (n->n != 3)
		return fail_node(c, n, "a condition is [field, operator, value]; this one has %zu items",
				 n->n);
	field = n->kids[0];
	op = n->kids[1];
	val = n->kids[2];
	old = path_index(c, 0);
	if ((rc = need_string(c, field, "a field name such as \"1.rank\"")) != 0)
		return rc;
	if (field->len == 0)
		return fail_node(c, field, "an empty field name");
	path_set_len(c, old);
	path_index(c, 1);
	if ((rc = need_string(c, op, "an operator")) != 0)
		return rc;
	if (!in_list(filter_ops, op->text)) {
		char shown[JOB_SHOW_MAX + 8];
		show_text(shown, sizeof(shown), op->text, op->len);
		return fail_node(c, op, "unknown operator %s\nhint: operators are regex, not_regex, "
				 "=, <>, <, <=, >, >=, in, not_in, like, not_like, ilike, not_ilike, "
				 "match, not_match", shown);
	}
	path_set_len(c, old);
	path_index(c, 2);
	list_op = strcmp(op->text, "in") == 0 || strcmp(op->text, "not_in") == 0;
	if (list_op) {
		if (val->kind != YN_SEQ || val->n == 0)
			return fail_node(c, val, "operator %s takes a non-empty list of values, got %s",
					 op->text, val->kind == YN_SEQ ? "an empty list" : kind_name(val));
		v = jnew(json_object_new_array());
		for (size_t i = 0; i < val->n; i++) {
			json_object *item;
			path_index(c, i);
			if (val->kids[i]->kind != YN_SCALAR) {
				json_object_put(v);
				return fail_node(c, val->kids[i], "expected a scalar value, got %s",
						 kind_name(val->kids[i]));
			}
			if ((rc = scalar_json(c, val->kids[i], &item)) != 0) {
				json_object_put(v);
				return rc;
			}
			json_object_array_add(v, item);
			path_set_len(c, old);
			path_index(c, 2);
		}
	} else {
		if (val->kind != YN_SCALAR)
			return fail_node(c, val, "operator %s takes one scalar value, got %s", op->text,
					 kind_name(val));
		if ((rc = scalar_json(c, val, &v)) != 0)
			return rc;
	}
	path_set_len(c, old);
	arr = jnew(json_object_new_array());
	json_object_array_add(arr, jnew(json_object_new_string_len(field->text, (int)field->len)));
	json_object_array_add(arr, jnew(json_object_new_string_len(op->text, (int)op->len)));
	json_object_array_add(arr, v);
	*out = arr;
	return 0;
}

/* A group: condition-or-group, "and"|"or", condition-or-group, ... */
static int check_group(struct ctx *c, const struct field_spec *f, const struct ynode *n,
		       int *nconds, json_object **out)
{
	json_object *arr;
	int rc = 0;

	if (n->n == 0)
		return fail_node(c, n, "an empty filter\nhint: leave the key out, or set it to null "
				 "to clear a value from defaults:");
	if (n->n % 2 == 0)
		return fail_node(c, n, "a filter list alternates conditions and \"and\"/\"or\", "
				 "so it has an odd number of items; this one has %zu", n->n);
	arr = jnew(json_object_new_array());
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct ynode *k = n->kids[i];
		size_t old = path_index(c, i);
		json_object *item = NULL;

		if (i % 2) {
			rc = need_string(c, k, "\"and\" or \"or\"");
			if (rc == 0 && strcmp(k->text, "and") != 0 && strcmp(k->text, "or") != 0) {
				char shown[JOB_SHOW_MAX + 8];
				show_text(shown, sizeof(shown), k->text, k->len);
				rc = fail_node(c, k, "expected \"and\" or \"or\", got %s", shown);
			}
			if (rc == 0)
				item = jnew(json_object_new_string(k->text));
		} else if (k->kind != YN_SEQ) {
			char what[96];
			rc = fail_node(c, k, "expected a condition [field, operator, value] or a "
				       "nested list, got %s", describe(k, what, sizeof(what)));
		} else if (is_condition(k)) {
			rc = check_condition(c, f, k, nconds, &item);
		} else {
			rc = check_group(c, f, k, nconds, &item);
		}
		if (rc == 0) {
			json_object_array_add(arr, item);
			path_set_len(c, old);
		}
	}
	if (rc) {
		json_object_put(arr);
		return rc;
	}
	*out = arr;
	return 0;
}

static int check_filter(struct ctx *c, const struct field_spec *f, const struct ynode *n,
			json_object **out)
{
	int nconds = 0;

	if (n->kind != YN_SEQ)
		return fail_node(c, n, "expected a filter list such as [[\"1.rank\", \">\", 100]], got %s",
				 kind_name(n));
	if (is_condition(n))
		return check_condition(c, f, n, &nconds, out);
	return check_group(c, f, n, &nconds, out);
}

/* Validates one request field; *out is a new json object the caller owns. */
static int check_field(struct ctx *c, const struct field_spec *f, const struct ynode *n,
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
		if ((rc = get_int(c, n, f->min, f->max, &v)) != 0)
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
			return fail_node(c, n, "expected true or false, got %s",
					 describe(n, what, sizeof(what)));
		*out = jnew(json_object_new_boolean(n->b));
		return 0;
	case CK_CHOICE:
		if (n->kind != YN_SCALAR || n->type != YT_STR || !in_list(f->choices, n->text)) {
			struct strbuf sb;
			sb_init(&sb);
			for (const char *const *k = f->choices; *k; k++)
				sb_printf(&sb, "%s%s", k == f->choices ? "" : ", ", *k);
			rc = fail_node(c, n, "expected one of %s; got %s", sb.data,
				       describe(n, what, sizeof(what)));
			sb_free(&sb);
			return rc;
		}
		*out = jnew(json_object_new_string(n->text));
		return 0;
	case CK_STRING:
		if ((rc = need_string(c, n, "a string")) != 0)
			return rc;
		if (utf8_chars(n->text) > (size_t)f->max)
			return fail_node(c, n, "%zu characters; at most %lld are allowed",
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
static int check_host_port(struct ctx *c, const struct ynode *n, const char *host, size_t hlen,
			   const char *end)
{
	const char *p = host + hlen;
	long port = 0;
	size_t digits;

	if (*host == '[') {
		if (host[hlen - 1] != ']')
			return fail_node(c, n, "has an IPv6 host without its closing ']'");
	} else {
		for (size_t i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)host[i]) && !strchr(".-_", host[i]))
				return fail_node(c, n, "has a character no host name has ('%c')"
						 "\nhint: the form is https://HOST[:PORT][/PATH]",
						 host[i] >= 0x21 && host[i] < 0x7f ? host[i] : '?');
		if (host[0] == '.' || host[hlen - 1] == '.' ||
		    memmem(host, hlen, "..", 2) != NULL)
			return fail_node(c, n, "has an empty label in its host name ('..' or a '.' "
					 "at an end)");
	}
	if (p == end)
		return 0;
	if (*p != ':')
		return fail_node(c, n, "has text after its host that is not ':PORT'"
				 "\nhint: the form is https://HOST[:PORT][/PATH]");
	p++;
	digits = strspn(p, "0123456789");
	if (p == end || digits == 0)
		return fail_node(c, n, "has an empty or non-numeric port after ':'"
				 "\nhint: give the port (https://HOST:8443/...) or leave out the ':' "
				 "for the scheme's default (443, or 80 for http)");
	if (p + digits != end || digits > 5 || (port = strtol(p, NULL, 10)) < 1 || port > 65535)
		return fail_node(c, n, "has a port that is not a number from 1 to 65535");
	return 0;
}

static int check_base_url(struct ctx *c, const struct ynode *n, const char *url, char **out)
{
	const char *auth, *end, *host;
	bool https;
	size_t len = strlen(url), hlen;
	int rc;

	while (len > 0 && url[len - 1] == '/')
		len--;
	https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0)
		return fail_node(c, n, "must start with https://"
				 "\nhint: plain http:// is refused except on loopback "
				 "(127.0.0.0/8, localhost, [::1])");
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)url[i];
		if (ch <= 0x20 || ch == 0x7f)
			return fail_node(c, n, "contains whitespace or a control character");
		if (ch == '?' || ch == '#')
			return fail_node(c, n, "must not have a query or a fragment; the endpoint path "
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
		return fail_node(c, n, "must not contain a user name or password (user:password@)"
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
		return fail_node(c, n, "has no host");
	if ((rc = check_host_port(c, n, host, hlen, end)) != 0)
		return rc;
	if (!https && !loopback_host(host, hlen))
		return fail_node(c, n, "plain http is refused except on loopback "
				 "(127.0.0.0/8, localhost, [::1])\nhint: use https://");
	*out = xstrndup(url, len);
	return 0;
}

/* Reads a token_file or password_file. *out is a new string the caller wipes and frees. */
static int read_secret_file(struct ctx *c, const struct ynode *n, const char *path, char **out)
{
	char *full = path[0] != '/' && c->dir ? xasprintf("%s/%s", c->dir, path) : xstrdup(path);
	char *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t got;
	int fd, rc = 0;

	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = fail_node(c, n, "cannot open %.200s: %s", full, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fail_node(c, n, "%.200s is not a regular file", full);
		goto out;
	}
	buf = xmalloc(JOB_MAX_SECRET_FILE + 1);
	while ((got = read(fd, buf + len, JOB_MAX_SECRET_FILE + 1 - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = fail_node(c, n, "cannot read %.200s: %s", full, strerror(errno));
			goto out;
		}
		len += (size_t)got;
		if (len > JOB_MAX_SECRET_FILE) {
			rc = fail_node(c, n, "%.200s is larger than %d bytes", full, JOB_MAX_SECRET_FILE);
			goto out;
		}
	}
	while (len > 0 && strchr(" \t\r\n\v\f", buf[len - 1]))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		rc = fail_node(c, n, "%.200s is empty", full);
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
static int load_credential(struct ctx *c, const struct ynode *api, const struct ynode *where,
			   const char *provider, const char *key, const char *file_key, char **out)
{
	const struct ynode *vn = map_get(api, key), *fn = file_key ? map_get(api, file_key) : NULL;
	const char *val, *file = NULL;
	size_t old = path_key(c, "api"), api_len = c->path.len;
	int rc;

	path_key(c, key);
	if ((rc = get_text(c, vn, &val)) != 0)
		return rc;
	path_set_len(c, api_len);
	if (file_key) {
		path_key(c, file_key);
		if ((rc = get_text(c, fn, &file)) != 0)
			return rc;
		path_set_len(c, api_len);
	}
	if (val && file) {
		path_key(c, file_key);
		return fail_node(c, fn, "give %s or %s, not both", key, file_key);
	}
	if (!(c->need & JOB_NEED_API) && (file || (vn && vn->unset))) {
		/* not used by this command: neither its variable nor its file is needed */
		*out = xstrdup("");
		path_set_len(c, old);
		return 0;
	}
	if (file) {
		path_key(c, file_key);
		if ((rc = read_secret_file(c, fn, file, out)) != 0)
			return rc;
		vn = fn;
	} else if (val && *val) {
		path_key(c, key);
		*out = xstrdup(val);
	} else {
		path_key(c, key);
		if (file_key)
			return fail_node(c, vn ? vn : where, "provider %s needs a non-empty %s "
					 "(%s: or %s:)", provider, key, key, file_key);
		return fail_node(c, vn ? vn : where, "provider %s needs a non-empty %s",
				 provider, key);
	}
	for (const char *p = *out; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			rc = fail_node(c, vn, "contains a control character");
			break;
		}
		if (*p == ':' && strcmp(key, "login") == 0) {
			rc = fail_node(c, vn, "must not contain ':' (HTTP Basic uses it as the separator)");
			break;
		}
	}
	if (rc) {
		explicit_bzero(*out, strlen(*out));
		free(*out);
		*out = NULL;
		return rc;
	}
	path_set_len(c, old);
	return 0;
}

static int load_api(struct ctx *c, const struct ynode *root, const struct ynode *api,
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

	path_key(c, "api");
	old = c->path.len;
	if (is_null(api))
		api = NULL;
	else if ((rc = map_check(c, api, api_keys)) != 0)
		return rc;

	n = map_get(api, "provider");
	path_key(c, "provider");
	if ((rc = get_text(c, n, &s)) != 0)
		return rc;
	if (!s || strcmp(s, "aisa") == 0) {
		out->provider = API_AISA;
	} else if (strcmp(s, "dataforseo") == 0) {
		out->provider = API_DATAFORSEO;
	} else {
		char what[96];
		return fail_node(c, n, "expected aisa or dataforseo, got %s", describe(n, what, sizeof(what)));
	}
	path_set_len(c, old);

	n = map_get(api, "body");
	path_key(c, "body");
	if ((rc = get_text(c, n, &s)) != 0)
		return rc;
	if (!s) {
		out->body = out->provider == API_AISA ? BODY_OBJECT : BODY_ARRAY;
	} else if (strcmp(s, "object") == 0) {
		out->body = BODY_OBJECT;
	} else if (strcmp(s, "array") == 0) {
		out->body = BODY_ARRAY;
	} else {
		char what[96];
		return fail_node(c, n, "expected object or array, got %s", describe(n, what, sizeof(what)));
	}
	path_set_len(c, old);

	for (size_t i = 0; i < ETL_ARRAY_LEN(ints); i++) {
		long long v = ints[i].def;
		n = map_get(api, ints[i].key);
		path_key(c, ints[i].key);
		if (!is_null(n) && (rc = get_int(c, n, ints[i].min, ints[i].max, &v)) != 0)
			return rc;
		*ints[i].dst = (int)v;
		path_set_len(c, old);
	}

	n = map_get(api, "base_url");
	path_key(c, "base_url");
	if ((rc = get_text(c, n, &s)) != 0)
		return rc;
	if (s) {
		if ((rc = check_base_url(c, n, s, &out->base_url)) != 0)
			return rc;
	} else {
		out->base_url = xstrdup(out->provider == API_AISA ? DEFAULT_AISA_URL
								  : DEFAULT_DATAFORSEO_URL);
	}
	path_set_len(c, 0);

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

static int load_database(struct ctx *c, const struct ynode *db, struct job_database *out)
{
	const struct ynode *n;
	const char *s;
	size_t old;
	int rc;

	path_key(c, "database");
	old = c->path.len;
	if (is_null(db))
		db = NULL;
	else if ((rc = map_check(c, db, database_keys)) != 0)
		return rc;
	path_key(c, "url");
	if ((rc = get_text(c, map_get(db, "url"), &s)) != 0)
		return rc;
	out->url = xstrdup(s ? s : "");
	path_set_len(c, old);

	n = map_get(db, "schema");
	path_key(c, "schema");
	if ((rc = get_text(c, n, &s)) != 0)
		return rc;
	if (s) {
		bool ok = strlen(s) <= JOB_MAX_NAME && ((*s >= 'a' && *s <= 'z') || *s == '_');
		for (const char *p = s; ok && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || is_digit(*p) || *p == '_';
		if (!ok) {
			char what[96];
			return fail_node(c, n, "expected a schema name [a-z_][a-z0-9_]* of at most %d "
					 "characters, got %s", JOB_MAX_NAME, describe(n, what, sizeof(what)));
		}
	}
	out->schema = xstrdup(s ? s : "dataforseo");
	path_set_len(c, old);

	{
		long long v = JOB_DEFAULT_CONNECTIONS;

		n = map_get(db, "connections");
		path_key(c, "connections");
		if (!is_null(n) && (rc = get_int(c, n, 1, JOB_MAX_CONNECTIONS, &v)) != 0)
			return rc;
		out->connections = (int)v;
	}
	path_set_len(c, 0);
	return 0;
}

/* ---------------------------------------------------------- target sets */

static void set_path(struct ctx *c, size_t i)
{
	path_set_len(c, 0);
	path_key(c, "target_sets");
	path_index(c, i);
}

/*
 * Fills one target set: each field comes from the set when its key is
 * there (a null clears it), else from defaults. defaults' values were
 * checked before, so checking them again here cannot fail; it gives each
 * set its own json objects, shared with nothing.
 */
static int load_set(struct ctx *c, const struct ynode *sn, const struct ynode *defaults,
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
	n = map_get(sn, "name");
	path_key(c, "name");
	if (is_null(n))
		return fail_node(c, n ? n : sn, "required key is missing");
	if ((rc = get_text(c, n, &name)) != 0)
		return rc;
	if (!valid_name(name)) {
		char what[96];
		return fail_node(c, n, "expected a name [a-z0-9_-]+ of at most %d characters, got %s",
				 JOB_MAX_NAME, describe(n, what, sizeof(what)));
	}
	ts->name = xstrdup(name);

	for (size_t f = 0; f < F_COUNT && rc == 0; f++) {
		const struct ynode *own = map_get(sn, fields[f].key);
		const struct ynode *src = own ? own : map_get(defaults, fields[f].key);

		if (is_null(src))
			continue;
		if (own) {
			set_path(c, index);
		} else {
			path_set_len(c, 0);
			path_key(c, "defaults");
		}
		path_key(c, fields[f].key);
		rc = check_field(c, &fields[f], src, &vals[f]);
	}
	if (rc)
		goto out;

	set_path(c, index);
	if (!vals[F_TARGETS]) {
		path_key(c, "targets");
		rc = fail_node(c, sn, "no targets\nhint: give targets: in the set or under defaults:");
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

static int load_sets(struct ctx *c, const struct ynode *root, struct job *job)
{
	const struct ynode *defaults = map_get(root, "defaults");
	const struct ynode *sets = map_get(root, "target_sets");
	int rc;

	/* defaults: checked once on its own, so an error there names defaults. */
	path_key(c, "defaults");
	if (is_null(defaults)) {
		defaults = NULL;
	} else {
		if ((rc = map_check(c, defaults, set_keys + 1)) != 0)
			return rc;
		for (size_t f = 0; f < F_COUNT; f++) {
			const struct ynode *n = map_get(defaults, fields[f].key);
			json_object *v;
			size_t old;

			if (is_null(n))
				continue;
			old = path_key(c, fields[f].key);
			if ((rc = check_field(c, &fields[f], n, &v)) != 0)
				return rc;
			json_object_put(v);
			path_set_len(c, old);
		}
	}
	path_set_len(c, 0);

	path_key(c, "target_sets");
	if (!sets)
		return fail_node(c, root, "required key is missing");
	if (sets->kind != YN_SEQ || sets->n == 0)
		return fail_node(c, sets, "expected a list of at least one target set, got %s",
				 sets->kind == YN_SEQ ? "an empty list" : kind_name(sets));
	job->sets = xcalloc(sets->n, sizeof(*job->sets));
	for (size_t i = 0; i < sets->n; i++) {
		job->n_sets = i + 1;
		if ((rc = load_set(c, sets->kids[i], defaults, i, &job->sets[i])) != 0)
			return rc;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(job->sets[j].name, job->sets[i].name) == 0) {
				const struct ynode *a = map_get(sets->kids[j], "name");
				const struct ynode *b = map_get(sets->kids[i], "name");
				set_path(c, i);
				path_key(c, "name");
				return fail_node(c, b, "duplicate target set name \"%s\" (first at %d:%d)",
						 job->sets[i].name, a->line, a->col);
			}
		}
	}
	path_set_len(c, 0);
	return 0;
}

/* archive, retention and the job's cost ceiling. */
static int load_history(struct ctx *c, const struct ynode *root, struct job *job)
{
	const struct ynode *n, *ret;
	char what[96];
	int rc;

	job->archive = true;
	n = map_get(root, "archive");
	path_key(c, "archive");
	if (!is_null(n)) {
		if (n->kind != YN_SCALAR || n->type != YT_BOOL)
			return fail_node(c, n, "expected true or false, got %s",
					 describe(n, what, sizeof(what)));
		job->archive = n->b;
	}
	path_set_len(c, 0);

	n = map_get(root, "max_cost_usd");
	path_key(c, "max_cost_usd");
	if (!is_null(n) && (rc = get_money(c, n, 1000000, &job->max_cost_usd)) != 0)
		return rc;
	path_set_len(c, 0);

	{
		const char *s;

		/* where a run writes its Prometheus metrics (metrics.h); relative to
		 * the working directory, as --metrics-file */
		n = map_get(root, "metrics_file");
		path_key(c, "metrics_file");
		if ((rc = get_text(c, n, &s)) != 0)
			return rc;
		if (s && (!*s || strlen(s) > 4000))
			return fail_node(c, n, "expected a file path of 1 to 4000 bytes");
		job->metrics_file = s ? xstrdup(s) : NULL;
		path_set_len(c, 0);
	}

	ret = map_get(root, "retention");
	path_key(c, "retention");
	if (is_null(ret)) {
		path_set_len(c, 0);
		return 0;
	}
	if ((rc = map_check(c, ret, retention_keys)) != 0)
		return rc;
	{
		size_t old = c->path.len;

		n = map_get(ret, "keep_snapshots");
		path_key(c, "keep_snapshots");
		if (!is_null(n) && (rc = get_days(c, n, &job->keep_snapshots_days)) != 0)
			return rc;
		path_set_len(c, old);
		n = map_get(ret, "keep_archive");
		path_key(c, "keep_archive");
		if (!is_null(n) && (rc = get_days(c, n, &job->keep_archive_days)) != 0)
			return rc;
	}
	path_set_len(c, 0);
	return 0;
}

static int load_job(struct ctx *c, const struct ynode *root, struct job *job)
{
	const struct ynode *n;
	const char *s;
	char what[96];
	int rc;

	if (root->kind != YN_MAP)
		return fail_node(c, root, "the top level must be a mapping (key: value lines), got %s",
				 kind_name(root));
	if ((rc = map_check(c, root, root_keys)) != 0)
		return rc;

	n = map_get(root, "version");
	path_key(c, "version");
	if (is_null(n))
		return fail_node(c, n ? n : root, "required key is missing\nhint: start the file with "
				 "version: 1");
	if (n->kind != YN_SCALAR || n->type != YT_INT)
		return fail_node(c, n, "expected the integer 1, got %s", describe(n, what, sizeof(what)));
	if (n->i != 1)
		return fail_node(c, n, "unsupported version %lld; this program reads version 1", n->i);
	path_set_len(c, 0);

	n = map_get(root, "job");
	path_key(c, "job");
	if (is_null(n))
		return fail_node(c, n ? n : root, "required key is missing");
	if ((rc = get_text(c, n, &s)) != 0)
		return rc;
	if (!valid_name(s))
		return fail_node(c, n, "expected a name [a-z0-9_-]+ of at most %d characters, got %s",
				 JOB_MAX_NAME, describe(n, what, sizeof(what)));
	job->name = xstrdup(s);
	path_set_len(c, 0);

	if ((rc = load_api(c, root, map_get(root, "api"), &job->api)) != 0)
		return rc;
	if ((rc = load_database(c, map_get(root, "database"), &job->db)) != 0)
		return rc;
	if ((rc = load_history(c, root, job)) != 0)
		return rc;
	return load_sets(c, root, job);
}

/* ----------------------------------------------------------- public API */

static int load(const char *text, size_t len, const char *name, const char *dir, unsigned need,
		struct job **out, struct etl_error *err)
{
	struct ctx c = {.name = name, .err = err, .need = need};
	struct ynode *root = NULL;
	struct job *job = NULL;
	int rc;

	*out = NULL;
	if (err)
		etl_error_clear(err);
	sb_init(&c.path);
	c.dir = dir ? xstrdup(dir) : NULL;
	if (len > JOB_MAX_FILE_BYTES) {
		rc = etl_fail(err, ETL_EUSAGE, "%s: %zu bytes; a job file may be at most %d bytes",
			      name, len, JOB_MAX_FILE_BYTES);
		goto out;
	}
	if (len == 0) {
		rc = fail_at(&c, 1, 1, "empty job file");
		goto out;
	}
	if ((rc = check_text(&c, text, len)) != 0)
		goto out;
	if ((rc = parse_yaml(&c, text, len, &root)) != 0)
		goto out;
	/* No document, or one that is only `---`, `~` or `${X:-}`. */
	if (root && (rc = expand_tree(&c, root)) != 0)
		goto out;
	if (is_null(root)) {
		rc = fail_at(&c, root ? root->line : 1, root ? root->col : 1, "empty job file");
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
	ynode_free(root);
	sb_free(&c.path);
	free(c.dir);
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
