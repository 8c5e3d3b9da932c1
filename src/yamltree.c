/*
 * yamltree.c - a job file's text into a tree of positioned, typed nodes
 * (the contract and the choices are in yamltree.h).
 */
#include "yamltree.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "job.h"

/* ------------------------------------------------------------------ tree */

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
void yt_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		yt_free(n->kids[i]);
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
const struct ynode *yt_get(const struct ynode *m, const char *key)
{
	if (!m || m->kind != YN_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (strcmp(m->kids[i]->text, key) == 0)
			return m->kids[i + 1];
	return NULL;
}

bool yt_is_null(const struct ynode *n)
{
	return !n || (n->kind == YN_SCALAR && n->type == YT_NULL);
}

/* ------------------------------------------------------- messages, paths */

void yt_path_set(struct yt_ctx *c, size_t len)
{
	c->path.len = len;
	if (c->path.data)
		c->path.data[len] = '\0';
}

/* Appends ".key" (sanitized, at most 64 bytes) and returns the old length for yt_path_set(). */
size_t yt_path_key(struct yt_ctx *c, const char *key)
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

size_t yt_path_index(struct yt_ctx *c, size_t i)
{
	size_t old = c->path.len;

	sb_printf(&c->path, "[%zu]", i);
	return old;
}

static int vfail(struct yt_ctx *c, int line, int col, const char *fmt, va_list ap) ETL_PRINTF(4, 0);
static int vfail(struct yt_ctx *c, int line, int col, const char *fmt, va_list ap)
{
	char what[sizeof(c->err->msg)];

	vsnprintf(what, sizeof(what), fmt, ap);
	if (c->path.len)
		return etl_fail(c->err, ETL_EUSAGE, "%s:%d:%d: %s: %s", c->name, line, col,
				c->path.data, what);
	return etl_fail(c->err, ETL_EUSAGE, "%s:%d:%d: %s", c->name, line, col, what);
}

/* Sets a job-file error at line:col with the current key path; returns ETL_EUSAGE. */
int yt_fail_at(struct yt_ctx *c, int line, int col, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(c, line, col, fmt, ap);
	va_end(ap);
	return rc;
}

int yt_fail(struct yt_ctx *c, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(c, n->line, n->col, fmt, ap);
	va_end(ap);
	return rc;
}

const char *yt_kind_name(const struct ynode *n)
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

/* Writes `s` quoted, at most YT_SHOW_MAX bytes of it, control bytes as '?'. */
void yt_show(char *buf, size_t size, const char *s, size_t len)
{
	char tmp[YT_SHOW_MAX + 1];
	size_t n = len < YT_SHOW_MAX ? len : YT_SHOW_MAX;

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
const char *yt_describe(const struct ynode *n, char *buf, size_t size)
{
	char shown[YT_SHOW_MAX + 8];

	if (n->kind != YN_SCALAR || n->type == YT_NULL) {
		snprintf(buf, size, "%s", yt_kind_name(n));
		return buf;
	}
	if (n->type == YT_STR)
		yt_show(shown, sizeof(shown), n->text, n->len);
	else
		snprintf(shown, sizeof(shown), "%.*s", YT_SHOW_MAX, n->text);
	snprintf(buf, size, "%s (%s)", yt_kind_name(n), shown);
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

/* ---------------------------------------------------------------- parse */

struct parse_state {
	struct ynode *stack[YT_MAX_DEPTH]; /* open collections, borrowed from root */
	size_t depth;
	size_t nodes;                        /* created so far, for YT_MAX_NODES */
	int docs;
	struct ynode *root;                  /* owned */
};

/* Sets c->path to where the parser is: used for errors found while parsing. */
static void parse_path(struct yt_ctx *c, const struct parse_state *ps)
{
	yt_path_set(c, 0);
	for (size_t i = 0; i < ps->depth; i++) {
		const struct ynode *f = ps->stack[i];
		bool top = i + 1 == ps->depth;

		if (f->kind == YN_SEQ) {
			if (top)
				yt_path_index(c, f->n);
			else if (f->n)
				yt_path_index(c, f->n - 1);
		} else if (top) {
			if (f->n % 2)
				yt_path_key(c, f->kids[f->n - 1]->text);
		} else if (f->n >= 2) {
			yt_path_key(c, f->kids[f->n - 2]->text);
		}
	}
}

static int fail_mark(struct yt_ctx *c, const struct parse_state *ps, yaml_mark_t m,
		     const char *fmt, ...) ETL_PRINTF(4, 5);
static int fail_mark(struct yt_ctx *c, const struct parse_state *ps, yaml_mark_t m,
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

static int syntax_error(struct yt_ctx *c, const struct parse_state *ps, const yaml_parser_t *p,
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
			return yt_fail_at(c, line, col, "invalid YAML: %s (#x%X)", problem,
					  (unsigned)p->problem_value);
		return yt_fail_at(c, line, col, "invalid YAML: %s", problem);
	}
	line = (int)p->problem_mark.line + 1;
	col = (int)p->problem_mark.column + 1;
	if (p->context)
		return yt_fail_at(c, line, col, "invalid YAML: %s (%s at %d:%d)", problem, p->context,
				  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
	return yt_fail_at(c, line, col, "invalid YAML: %s", problem);
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
static int parse_node(struct yt_ctx *c, struct parse_state *ps, const yaml_event_t *ev)
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
	if (kind != YN_SCALAR && ps->depth == YT_MAX_DEPTH)
		return fail_mark(c, ps, ev->start_mark, "nested more than %d levels deep",
				 YT_MAX_DEPTH);
	if (++ps->nodes > YT_MAX_NODES)
		return fail_mark(c, ps, ev->start_mark, "more than %d YAML nodes; this is not a job file",
				 YT_MAX_NODES);
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

static int parse_event(struct yt_ctx *c, struct parse_state *ps, const yaml_event_t *ev, bool *end)
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

/* Parses buf into a tree. *out is the root (free with yt_free()), or NULL for a stream with no document. */
int yt_parse(struct yt_ctx *c, const char *buf, size_t len, struct ynode **out)
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
		/* a scalar may be a credential; yt_free() wipes our copy */
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
	yt_path_set(c, 0);
	if (rc) {
		yt_free(ps.root);
		return rc;
	}
	*out = ps.root;
	return 0;
}

/* Finds NUL bytes and invalid UTF-8 before libyaml does, for a clearer message. */
int yt_check_text(struct yt_ctx *c, const char *buf, size_t len)
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
			return yt_fail_at(c, line, col, "a NUL byte; is this a binary file?"
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
			return yt_fail_at(c, line, col, "invalid UTF-8 (byte 0x%02X); is this a binary file?"
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
static int expand_scalar(struct yt_ctx *c, struct ynode *n)
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
		const char *val, *hint = "";
		enum yt_unset unset;
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
			rc = yt_fail(c, n, "an unterminated ${ (no closing '}')"
				     "\nhint: write $${ for a literal ${");
			goto done;
		}
		if (name_end == name || (t[name_end] != '}' && t[name_end] != ':')) {
			rc = yt_fail(c, n, "a bad variable name after ${"
				     "\nhint: use ${NAME} or ${NAME:-default}, NAME being "
				     "[A-Za-z_][A-Za-z0-9_]*");
			goto done;
		}
		if (t[name_end] == ':') {
			if (t[name_end + 1] != '-') {
				rc = yt_fail(c, n, "an unsupported expansion (only ${NAME} and "
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
			rc = yt_fail(c, n, "an unterminated ${ (no closing '}')"
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
		} else if ((unset = c->unset ? c->unset(c, &hint) : YT_UNSET_ERROR) ==
			   YT_UNSET_TOLERATE) {
			n->unset = true;
			if (!c->unset_env)
				c->unset_env = xstrdup(var);
		} else if (unset == YT_UNSET_SECRET) {
			/* never a default for a secret: it would sit in the file */
			rc = yt_fail(c, n, "environment variable %s is not set"
				     "\nhint: export %s in the environment that runs intersect-etl "
				     "(cron: the line's env file; systemd: EnvironmentFile=)%s",
				     var, var, hint);
			free(var);
			goto done;
		} else {
			rc = yt_fail(c, n, "environment variable %s is not set"
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
			rc = yt_fail(c, n, "${} expansions make the job more than %d bytes",
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

bool yt_one_of(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Gives a plain scalar its YAML 1.2 core-schema type; every other scalar is a string. */
static int resolve_scalar(struct yt_ctx *c, struct ynode *n)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	const char *t = n->text, *digits = NULL;
	int base = 10;

	n->type = YT_STR;
	if (!n->plain)
		return 0;
	if (!*t || yt_one_of(nulls, t)) {
		n->type = YT_NULL;
		return 0;
	}
	if (yt_one_of(trues, t) || yt_one_of(falses, t)) {
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
			return yt_fail(c, n, "integer %.40s is out of range (64-bit signed)", t);
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
int yt_expand(struct yt_ctx *c, struct ynode *n)
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
			old = yt_path_key(c, n->kids[i - 1]->text);
		} else {
			old = yt_path_index(c, i);
		}
		rc = yt_expand(c, n->kids[i]);
		if (rc == 0)
			yt_path_set(c, old);
	}
	return rc;
}

/* ------------------------------------------------------- scalar getters */

/*
 * For settings that never become JSON: any scalar, taken as its text.
 * *out borrows from the tree; NULL when the node is absent or null.
 * Never shows the value, so it serves for credentials too.
 */
int yt_text(struct yt_ctx *c, const struct ynode *n, const char **out)
{
	*out = NULL;
	if (yt_is_null(n))
		return 0;
	if (n->kind != YN_SCALAR)
		return yt_fail(c, n, "expected a string, got %s", yt_kind_name(n));
	*out = n->text;
	return 0;
}

int yt_int(struct yt_ctx *c, const struct ynode *n, long long min, long long max, long long *out)
{
	char what[96];

	if (n->kind == YN_SCALAR && n->type == YT_INT && n->i >= min && n->i <= max) {
		*out = n->i;
		return 0;
	}
	yt_describe(n, what, sizeof(what));
	if (n->kind == YN_SCALAR && n->type == YT_STR && !n->plain)
		return yt_fail(c, n, "expected an integer from %lld to %lld, got %s"
			       "\nhint: remove the quotes", min, max, what);
	return yt_fail(c, n, "expected an integer from %lld to %lld, got %s", min, max, what);
}

/* A string (by YAML type, not just any scalar) for a request field. */
int yt_need_string(struct yt_ctx *c, const struct ynode *n, const char *what_expected)
{
	char what[96];

	if (n->kind == YN_SCALAR && n->type == YT_STR)
		return 0;
	yt_describe(n, what, sizeof(what));
	if (n->kind == YN_SCALAR && n->type != YT_NULL)
		return yt_fail(c, n, "expected %s, got %s\nhint: quote it to make it a string",
			       what_expected, what);
	return yt_fail(c, n, "expected %s, got %s", what_expected, what);
}
