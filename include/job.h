/*
 * job.h - the job file: what to fetch, from where, and into which database.
 *
 * job.c owns reading a YAML job file (libyaml), expanding ${VAR} and
 * ${VAR:-default} in scalars, and validating every key before anything opens
 * a connection. The result is a struct job that later stages only read. Each
 * target set carries its complete request template as a json-c object (the
 * defaults merged with the set's own keys, targets already turned into
 * {"1": .., "2": ..}), so the request the fetcher sends and the definition the
 * loader records are the same object.
 *
 * Every error names file:line:column and the key path, e.g.
 *   jobs/x.yaml:12:7: target_sets[1].targets: 21 targets; at most 20 are allowed
 */
#ifndef INTERSECT_JOB_H
#define INTERSECT_JOB_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Largest job file read; anything bigger is surely not a job file. */
#define JOB_MAX_FILE_BYTES (1024 * 1024)
#define JOB_MAX_TARGETS 20
#define JOB_MAX_EXCLUDE_TARGETS 10
#define JOB_MAX_FILTER_CONDITIONS 8
#define JOB_MAX_ORDER_BY 3
#define JOB_MAX_LIMIT 1000
#define JOB_MAX_TAG 255

enum api_provider {
	API_AISA = 0,     /* the AISA gateway: Bearer token, one task object */
	API_DATAFORSEO,   /* DataForSEO itself: HTTP Basic, a one-task array */
};

enum body_form {
	BODY_OBJECT = 0,  /* {...} */
	BODY_ARRAY,       /* [{...}] */
};

struct job_api {
	enum api_provider provider;
	char *base_url;          /* no trailing '/'; default per provider */
	char *token;             /* aisa: the Bearer key (secret; NULL if unset) */
	char *login;             /* dataforseo: Basic login (NULL if unset) */
	char *password;          /* dataforseo: Basic password (secret) */
	enum body_form body;     /* default: object for aisa, array for dataforseo */
	int concurrency;         /* requests in flight, 1..30; default 8 */
	int requests_per_minute; /* 1..10000; default 600 */
	int timeout_seconds;     /* whole-request timeout, 1..600; default 180 */
	int max_attempts;        /* tries per page, 1..20; default 5 */
};

/* Loading connections: 2 lets PostgreSQL spend two cores on a run's COPY. */
#define JOB_DEFAULT_CONNECTIONS 2
#define JOB_MAX_CONNECTIONS 8

struct job_database {
	char *url;       /* libpq conninfo or URI; "" = libpq's PG* variables */
	char *schema;    /* [a-z_][a-z0-9_]{0,62}; default "dataforseo" */
	int connections; /* connections loading pages, 1..8; default 2 */
};

struct target_set {
	char *name;            /* [a-z0-9_-]+, unique within the job */
	char **targets;        /* requested targets; targets[i] has key "i+1" */
	size_t n_targets;      /* 1..20 */
	json_object *request;  /* owned: the request minus offset/limit, every
				  field with its YAML type; "targets" is an object */
	int limit;             /* page size 1..1000; default 1000 */
	long long max_rows;    /* rows to fetch at most per run; default 10000 */
	double max_cost_usd;   /* spending ceiling for this set per run; 0 = none */
	int line, column;      /* where the set begins in the job file (1-based) */
};

struct job {
	char *path;            /* the file as named on the command line */
	char *name;            /* "job:" value, [a-z0-9_-]+ */
	struct job_api api;
	struct job_database db;
	struct target_set *sets; /* n_sets entries, in file order */
	size_t n_sets;
	bool archive;            /* keep every response body in raw_page; default true */
	int keep_snapshots_days; /* retention.keep_snapshots; 0 = keep every snapshot */
	int keep_archive_days;   /* retention.keep_archive; 0 = keep every body */
	double max_cost_usd;     /* spending ceiling for the whole run; 0 = none */
	char *metrics_file;      /* metrics_file: the Prometheus file a run writes; NULL = none */
	char *unset_env;         /* the first unset ${VAR} of a credential this load did not
				    need (job_load_file_for), or NULL */
};

/* What a command uses, so a credential it does not use need not be there. */
#define JOB_NEED_API 1u /* api.token / login / password (and their files) */
#define JOB_NEED_DB 2u  /* database.url */
#define JOB_NEED_ALL (JOB_NEED_API | JOB_NEED_DB)

/*
 * Reads and validates a job file. On success *out is a job the caller frees
 * with job_free(); on failure returns ETL_EUSAGE (or ETL_EFAIL when the file
 * cannot be read) with err naming file:line:column.
 */
int job_load_file(const char *path, struct job **out, struct etl_error *err) ETL_WUR;
/*
 * The same for a command that needs only some credentials: an unset ${VAR}
 * in a credential outside `need` (JOB_NEED_*) is no error, the value is ""
 * and job->unset_env names the variable; a token_file or password_file is
 * then not read. `validate` and `plan` need none, `runs` and `report` the
 * database's.
 */
int job_load_file_for(const char *path, unsigned need, struct job **out,
		      struct etl_error *err) ETL_WUR;
/* The same from memory; `name` stands in for the file name in messages. */
int job_load_string(const char *text, size_t len, const char *name, struct job **out,
		    struct etl_error *err) ETL_WUR;
void job_free(struct job *job);

const struct target_set *job_find_set(const struct job *job, const char *name);
/* The sets' names, "a, b, c", in file order; the caller frees it. */
char *job_set_names(const struct job *job);
/* ETL_EUSAGE: "JOB: --only NAME: no target set of that name", with the names as a hint. */
int job_no_such_set(const struct job *job, const char *option, const char *name,
		    struct etl_error *err);
const char *job_provider_name(enum api_provider p);

#endif
