/*
 * yamltree.h - a job file's YAML as a small tree of positioned nodes.
 *
 * yamltree.c reads the text and knows YAML; job.c walks the tree against the
 * job's schema and knows what a job holds. Three steps, each simple on its
 * own: yt_check_text() refuses NUL bytes and invalid UTF-8 with a clearer
 * message than libyaml's; yt_parse() turns libyaml's event stream into the
 * tree, where the hostile-input limits live (nesting depth, node count, one
 * document, no anchors, aliases or type tags, no NUL in a scalar);
 * yt_expand() rewrites ${VAR} references in every value scalar and then
 * resolves each plain scalar to its YAML 1.2 core-schema type, so
 * `limit: 1000` is an integer and `limit: "1000"` a string, also when the
 * digits came from the environment. Every error names file:line:column and
 * the key path being read (list indexes 0-based, e.g.
 * target_sets[0].filters[2]), which the caller keeps in yt_ctx.path as it
 * walks.
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
 *  - What an unset ${VAR} means is the caller's to say, by path
 *    (yt_ctx.unset): job.c tolerates one in a credential that the command
 *    does not use, and offers no default for a secret.
 *  - Scalars are wiped when the tree is freed: they include credentials,
 *    inline or expanded from the environment.
 */
#ifndef INTERSECT_YAMLTREE_H
#define INTERSECT_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct etl_error;

#define YT_MAX_DEPTH 64     /* nested collections; real job files use about 6 */
#define YT_MAX_NODES 100000 /* YAML nodes in one file */
#define YT_SHOW_MAX 40      /* bytes of a value quoted in a message */

enum ykind { YN_SCALAR, YN_SEQ, YN_MAP };
enum ytype { YT_STR = 0, YT_NULL, YT_BOOL, YT_INT, YT_FLOAT };

struct ynode {
	enum ykind kind;
	int line, col;        /* 1-based, where the node starts */
	char *text;           /* scalars: owned, NUL-terminated, expanded by yt_expand() */
	size_t len;           /* bytes in text */
	bool plain;           /* plain style and untagged: its type comes from its text */
	enum ytype type;      /* scalars: resolved type (keys stay YT_STR) */
	bool b;               /* YT_BOOL */
	long long i;          /* YT_INT */
	double d;             /* YT_FLOAT */
	bool unset;           /* its ${VAR} was unset and the caller tolerated it
				 (YT_UNSET_TOLERATE): expanded as "" */
	struct ynode **kids;  /* seq: items; map: key, value, key, value, ... (owned) */
	size_t n, cap;        /* used and allocated entries of kids */
};

/* What an unset ${VAR} means at the path being expanded (yt_ctx.unset). */
enum yt_unset {
	YT_UNSET_ERROR,    /* an error whose hint offers a default, ${VAR:-VALUE} */
	YT_UNSET_SECRET,   /* an error offering none: a secret's default would sit in the file */
	YT_UNSET_TOLERATE  /* no error: the value is "" and the node is marked unset */
};

/* One reading of one file: where messages point, and the caller's policy. */
struct yt_ctx {
	const char *name;        /* the file as named in messages */
	struct etl_error *err;
	struct strbuf path;      /* key path of the node being read (yt_path_*()) */
	size_t expanded;         /* bytes of scalars rewritten by yt_expand() so far */
	/* What an unset ${VAR} at c->path means; for YT_UNSET_SECRET, *hint is
	 * appended to the message's hint (it starts as ""). NULL: always an error. */
	enum yt_unset (*unset)(const struct yt_ctx *c, const char **hint);
	char *unset_env;         /* owned: the first unset ${VAR} tolerated */
	void *user;              /* the caller's own state, for unset() and its walk */
};

/* Refuses NUL bytes and invalid UTF-8, at their line and column. */
int yt_check_text(struct yt_ctx *c, const char *buf, size_t len);
/* Parses buf into a tree. *out is the root (free with yt_free()), or NULL for a
 * stream with no document. */
int yt_parse(struct yt_ctx *c, const char *buf, size_t len, struct ynode **out);
/* Expands ${VAR} and resolves the core-schema type of every value scalar
 * under n. Keys stay as written. */
int yt_expand(struct yt_ctx *c, struct ynode *n);
/* Frees n and everything under it, its scalars wiped first. */
void yt_free(struct ynode *n);

/* The value under `key` in mapping m (borrowed), or NULL when absent. */
const struct ynode *yt_get(const struct ynode *m, const char *key);
/* Absent, or a null scalar: "not set". */
bool yt_is_null(const struct ynode *n);
/* Whether s is one of the NULL-terminated list. */
bool yt_one_of(const char *const *list, const char *s);

/* Appends ".key" (sanitized, at most 64 bytes) to c->path; returns the old
 * length, for yt_path_set(). */
size_t yt_path_key(struct yt_ctx *c, const char *key);
/* Appends "[i]" likewise. */
size_t yt_path_index(struct yt_ctx *c, size_t i);
/* Cuts c->path back to len bytes. */
void yt_path_set(struct yt_ctx *c, size_t len);

/* Sets a job-file error at line:col with the current key path; returns ETL_EUSAGE. */
int yt_fail_at(struct yt_ctx *c, int line, int col, const char *fmt, ...) ETL_PRINTF(4, 5);
/* The same at node n. */
int yt_fail(struct yt_ctx *c, const struct ynode *n, const char *fmt, ...) ETL_PRINTF(3, 4);
/* "a list", "an integer", ...: what n is, for messages. */
const char *yt_kind_name(const struct ynode *n);
/* Writes `s` quoted, at most YT_SHOW_MAX bytes of it, control bytes as '?'. */
void yt_show(char *buf, size_t size, const char *s, size_t len);
/* "a string (\"x\")", "an integer (5)", "a list" into buf, which it returns:
 * for messages about values that are not secret. */
const char *yt_describe(const struct ynode *n, char *buf, size_t size);

/*
 * For settings that never become JSON: any scalar, taken as its text.
 * *out borrows from the tree; NULL when the node is absent or null.
 * Never shows the value, so it serves for credentials too.
 */
int yt_text(struct yt_ctx *c, const struct ynode *n, const char **out);
/* An integer scalar from min to max (a quoted one gets a hint to unquote it). */
int yt_int(struct yt_ctx *c, const struct ynode *n, long long min, long long max, long long *out);
/* A string by YAML type, not just any scalar (for request fields); else an
 * error saying `what_expected` was expected. */
int yt_need_string(struct yt_ctx *c, const struct ynode *n, const char *what_expected);

#endif
