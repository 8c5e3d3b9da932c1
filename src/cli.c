/*
 * cli.c - subcommands, options and help. See cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "db.h"
#include "check.h"
#include "date.h"
#include "err.h"
#include "init.h"
#include "job.h"
#include "log.h"
#include "migrate.h"
#include "plan.h"
#include "replay.h"
#include "report.h"
#include "retire.h"
#include "run.h"
#include "runs.h"

static const char exit_help[] =
	"Exit status:\n"
	"  0  success\n"
	"  1  failure (network, API, database, I/O), or every target set failed\n"
	"  2  bad command line or job file; nothing was started\n"
	"  3  partial: the run finished but some target sets failed\n"
	"  4  another run of the same job holds its lock\n"
	"  5  the database schema is not at this binary's version (run `migrate`)\n"
	"  6  check: the database is unreachable, or the role lacks a right a run uses\n"
	"  7  check: the API refused the credentials, or could not show them accepted\n"
	"  130, 143  run stopped by SIGINT or SIGTERM: recorded `interrupted`; the\n"
	"     pages loaded are kept and `run --snapshot-date DATE` continues it\n";

static const char main_help[] =
	"Usage: intersect-etl [--quiet|--verbose] [--log-format text|json] COMMAND [OPTIONS] [ARGS]\n"
	"\n"
	"Loads DataForSEO Backlinks \"Domain Intersection\" results into PostgreSQL.\n"
	"\n"
	"Commands:\n"
	"  run JOB        fetch every target set of JOB and load it (a snapshot per date)\n"
	"  plan JOB       show the requests and the worst-case cost; no network, no database\n"
	"  validate JOB   check a job file and report the first error\n"
	"  migrate [JOB]  create or update the database schema\n"
	"  replay JOB RUN_ID  reload a run from the raw archive; no API call\n"
	"  runs [JOB]     recent runs; `runs RUN_ID`: one run's target sets and failed pages\n"
	"  report JOB     each target set's latest snapshot, its new and lost referring domains\n"
	"  retire JOB SET take a set removed from JOB out of the latest views\n"
	"  init FILE      write a commented job file to start from\n"
	"  check JOB      job file, database and API credentials, without loading\n"
	"  help COMMAND   options of one command\n"
	"\n"
	"Options (before the command, or after it among the command's options):\n"
	"  -q, --quiet    only warnings and errors\n"
	"  -v, --verbose  a line per request (credentials are never shown)\n"
	"  --log-format text|json\n"
	"                 json: one object per line (time, level, job, run,\n"
	"                 target_set, message) for log collectors; outcome lines\n"
	"                 also carry pages, rows, cost_usd, ... as fields\n"
	"  -h, --help     this text\n"
	"  -V, --version  the version\n"
	"\n";

static const char run_help[] =
	"Usage: intersect-etl run JOB [OPTIONS]\n"
	"\n"
	"Fetches every page of every target set of JOB and loads it into the snapshot\n"
	"of one date. Running a date again replaces that date's snapshot set by set,\n"
	"each only once its answer is complete; an unfinished run of the same date\n"
	"continues without fetching its loaded pages again.\n"
	"\n"
	"Options:\n"
	"  --snapshot-date YYYY-MM-DD  the snapshot to write (default: today, UTC)\n"
	"  --only SET                  only this target set (repeatable)\n"
	"  --migrate                   apply missing schema migrations first\n"
	"  --fresh                     start a new run even if an unfinished one exists\n"
	"  --metrics-file PATH         write the run's Prometheus metrics to PATH at its\n"
	"                              end, failed or not (tmp file + rename); overrides\n"
	"                              the job's metrics_file\n"
	"\n";

static const char plan_help[] =
	"Usage: intersect-etl plan JOB [--only SET]...\n"
	"\n"
	"Prints, per target set, the first request body, the most requests and rows\n"
	"max_rows allows and their worst-case cost ($0.02 per request + $0.00003 per\n"
	"row); totals at the end. Sends nothing, opens no database connection and\n"
	"needs no credential.\n"
	"\n";

static const char validate_help[] =
	"Usage: intersect-etl validate JOB\n"
	"\n"
	"Reads JOB, expands ${VAR} references and checks every key; prints the first\n"
	"error as FILE:LINE:COLUMN: KEY: message. Connects to nothing and needs no\n"
	"credential: an unset ${VAR} in api.token, api.login, api.password or\n"
	"database.url is noted, not an error; a token_file is not read.\n"
	"\n";

static const char migrate_help[] =
	"Usage: intersect-etl migrate [JOB] [--database-url URL] [--schema NAME]\n"
	"\n"
	"Applies the schema migrations this binary carries that the database lacks.\n"
	"The database and schema come from the options, else from JOB, else from\n"
	"DATABASE_URL (or libpq's PG* variables) and schema \"dataforseo\".\n"
	"\n"
	"Options:\n"
	"  --database-url URL  libpq connection string or URI\n"
	"  --schema NAME       schema to create the tables in\n"
	"\n";

/* Each command's --help ends with this and exit_help. */
static const char global_help[] =
	"Every command also takes -q/--quiet, -v/--verbose and --log-format text|json,\n"
	"before or after the command name (see intersect-etl --help).\n"
	"\n";

static int usage_error(const char *cmd, const char *fmt, ...) ETL_PRINTF(2, 3);

static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "intersect-etl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'intersect-etl %s%s--help' for more information.\n", cmd ? cmd : "",
		cmd ? " " : "");
	return ETL_EUSAGE;
}

static int report(int rc, const struct etl_error *err)
{
	if (rc != 0)
		log_error("%s", err->msg[0] ? err->msg : etl_exit_name(rc));
	return rc;
}

/*
 * Whether an argument may be shown back in a message: a plain word. Option
 * values are typed next to --database-url, and a command name may be a URL
 * pasted in the wrong place, so what could hold a password is never shown.
 */
static int plain_word(const char *arg)
{
	size_t n = strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	return n > 0 && n <= 32 && arg[n] == '\0';
}

/* "--format csv" for a message about an option's value, or "--format" alone. */
static const char *opt_value(char *buf, size_t size, const char *opt, const char *arg)
{
	if (plain_word(arg))
		snprintf(buf, size, "%s %s", opt, arg);
	else
		snprintf(buf, size, "%s", opt);
	return buf;
}

/*
 * The usage error for an option getopt_long refused (c is '?' or ':'), naming
 * the option only: "--database-url=postgresql://u:PW@h/db" is shown as
 * "--database-url". An unknown long option leaves optopt 0; a long option
 * given a value it does not take leaves its val in optopt, which for a
 * letter is one that optstring knows (an unknown letter is not in it).
 */
static int refused_option(const char *cmd, int c, const char *optstring, char **argv)
{
	const char *tok = argv[optind - 1];
	/* tok is the previous argument when a letter of "-ab" is refused */
	bool is_long = strncmp(tok, "--", 2) == 0 &&
		       (optopt == 0 || optopt > 255 || c == ':' || strchr(optstring, optopt));
	char name[64];

	if (is_long)
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(tok, "="), tok);
	else
		snprintf(name, sizeof(name), "-%c", optopt > ' ' && optopt < 127 ? optopt : '?');
	if (c == ':')
		return usage_error(cmd, "%s: needs a value", name);
	if (is_long && optopt != 0)
		return usage_error(cmd, "%s: takes no value", name);
	return usage_error(cmd, "%s: unknown option", name);
}

/*
 * The options every command takes before or after its name (git-style
 * placement is what --help shows; people type them anywhere). Returns -2
 * when c is not one of them, -1 to go on, or an exit status.
 */
static int global_opt(int c, const char *arg, const char *cmd)
{
	char what[64];

	switch (c) {
	case 'q':
		log_set_level(LOG_WARN);
		return -1;
	case 'v':
		log_set_level(LOG_DEBUG);
		return -1;
	case 'F':
		if (strcmp(arg, "json") == 0)
			log_set_format(LOG_JSON);
		else if (strcmp(arg, "text") == 0)
			log_set_format(LOG_TEXT);
		else
			return usage_error(cmd, "%s: expected text or json",
					   opt_value(what, sizeof(what), "--log-format", arg));
		return -1;
	case 'V':
		printf("intersect-etl %s\n", ETL_VERSION);
		return ETL_OK;
	}
	return -2;
}

/* Parses a subcommand's options; returns -1 to go on, or an exit status. */
static int parse_opts(int argc, char **argv, const char *cmd, const char *help,
		      const struct option *longopts, int (*on_opt)(int c, const char *arg, void *ud),
		      void *ud)
{
	static const char optstring[] = ":hqvVF:";
	int c, rc;

	optind = 0; /* 0, not 1: glibc then forgets the "+" of the global parse */
	opterr = 0;
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		if ((rc = global_opt(c, optarg, cmd)) != -2) {
			if (rc >= 0)
				return rc;
			continue;
		}
		switch (c) {
		case 'h':
			printf("%s%s%s", help, global_help, exit_help);
			return ETL_OK;
		case '?':
		case ':':
			return refused_option(cmd, c, optstring, argv);
		default:
			if (on_opt(c, optarg, ud) != 0)
				return ETL_EUSAGE;
		}
	}
	return -1;
}

/* Every subcommand takes these, and ends its table with them. */
#define COMMON_LONGOPTS                                                                            \
	{"help", no_argument, NULL, 'h'}, {"quiet", no_argument, NULL, 'q'},                       \
		{"verbose", no_argument, NULL, 'v'}, {"version", no_argument, NULL, 'V'},          \
		{"log-format", required_argument, NULL, 'F'}, { NULL, 0, NULL, 0 }

static const struct option common_longopts[] = {COMMON_LONGOPTS};

static int no_opt(int c, const char *arg, void *ud)
{
	(void)c;
	(void)arg;
	(void)ud;
	return 1;
}

static int cmd_validate(int argc, char **argv)
{
	struct etl_error err = {0, ""};
	struct job *job = NULL;
	int rc = parse_opts(argc, argv, "validate", validate_help, common_longopts, no_opt, NULL);

	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return usage_error("validate", "validate takes exactly one JOB file");
	/* validate reads the file and nothing else: no credential, no connection */
	rc = job_load_file_for(argv[optind], 0, &job, &err);
	if (rc == 0)
		printf("%s: ok: job %s, %zu target set%s, %s provider\n", argv[optind], job->name,
		       job->n_sets, job->n_sets == 1 ? "" : "s", job_provider_name(job->api.provider));
	if (rc == 0 && job->unset_env)
		log_info("%s is not set here: run and check need it, validate and plan do not",
			 job->unset_env);
	job_free(job);
	return report(rc, &err);
}

/* --only SET collected into a growable array. */
struct only_list {
	char **names;
	size_t n;
};

static void only_add(struct only_list *l, const char *name)
{
	l->names = xrealloc(l->names, (l->n + 1) * sizeof(*l->names));
	l->names[l->n++] = (char *)name;
}

static int only_check(const struct job *job, const struct only_list *l, struct etl_error *err)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!job_find_set(job, l->names[i]))
			return job_no_such_set(job, "--only", l->names[i], err);
	return 0;
}

enum { OPT_ONLY = 256, OPT_DATE, OPT_MIGRATE, OPT_FRESH, OPT_URL, OPT_SCHEMA, OPT_METRICS };

static int plan_opt(int c, const char *arg, void *ud)
{
	if (c != OPT_ONLY)
		return 1;
	only_add(ud, arg);
	return 0;
}

static int cmd_plan(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"only", required_argument, NULL, OPT_ONLY},
		COMMON_LONGOPTS,
	};
	struct etl_error err = {0, ""};
	struct only_list only = {NULL, 0};
	struct job *job = NULL;
	int rc = parse_opts(argc, argv, "plan", plan_help, longopts, plan_opt, &only);

	if (rc >= 0)
		goto out;
	if (argc - optind != 1) {
		rc = usage_error("plan", "plan takes exactly one JOB file");
		goto out;
	}
	rc = job_load_file_for(argv[optind], 0, &job, &err); /* plan sends nothing */
	if (rc == 0)
		rc = only_check(job, &only, &err);
	if (rc == 0)
		plan_print(job, only.names, only.n, stdout);
	rc = report(rc, &err);
out:
	free(only.names);
	job_free(job);
	return rc;
}

static int run_opt(int c, const char *arg, void *ud)
{
	struct run_options *o = ud;
	char what[64];

	switch (c) {
	case OPT_ONLY:
		o->only = xrealloc(o->only, (o->n_only + 1) * sizeof(*o->only));
		o->only[o->n_only++] = (char *)arg;
		return 0;
	case OPT_DATE: {
		char why[160];

		if (!date_check(arg, why, sizeof(why)))
			return usage_error("run", "%s: %s",
					   opt_value(what, sizeof(what), "--snapshot-date", arg), why);
		o->snapshot_date = arg;
		return 0;
	}
	case OPT_MIGRATE:
		o->migrate = 1;
		return 0;
	case OPT_FRESH:
		o->fresh = 1;
		return 0;
	case OPT_METRICS:
		o->metrics_file = arg;
		return 0;
	}
	return 1;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"only", required_argument, NULL, OPT_ONLY},
		{"snapshot-date", required_argument, NULL, OPT_DATE},
		{"migrate", no_argument, NULL, OPT_MIGRATE},
		{"fresh", no_argument, NULL, OPT_FRESH},
		{"metrics-file", required_argument, NULL, OPT_METRICS},
		COMMON_LONGOPTS,
	};
	struct run_options opt;
	struct run_result res;
	struct etl_error err = {0, ""};
	int rc;

	memset(&opt, 0, sizeof(opt));
	rc = parse_opts(argc, argv, "run", run_help, longopts, run_opt, &opt);
	if (rc >= 0)
		goto out;
	if (argc - optind != 1) {
		rc = usage_error("run", "run takes exactly one JOB file");
		goto out;
	}
	opt.job_path = argv[optind];
	rc = run_job(&opt, &res, &err);
	if (res.counted) {
		struct log_fields f = LOG_FIELDS_NONE;
		char cost[32];

		/* the ledger's figures, as `runs` shows them; JSON lines as fields too */
		f.sets_complete = (long long)res.sets_complete;
		f.sets_failed = (long long)res.sets_failed;
		f.pages = res.pages;
		f.rows = res.rows;
		f.cost_usd = report_round_usd(res.cost_usd);
		f.duration_seconds = res.duration_seconds;
		report_format_usd(cost, sizeof(cost), res.cost_usd);
		log_fields_msg(LOG_INFO, NULL, &f,"run %lld: %zu target set%s complete, %zu failed; %lld page%s, %lld row%s, %s",
			 res.run_id, res.sets_complete, res.sets_complete == 1 ? "" : "s",
			 res.sets_failed, res.pages, res.pages == 1 ? "" : "s", res.rows,
			 res.rows == 1 ? "" : "s", cost);
	}
	rc = report(rc, &err);
out:
	free(opt.only);
	return rc;
}

struct migrate_opts {
	char *url; /* owned, a secret: xfree_secret() */
	const char *schema;
};

/*
 * A copy of a --database-url value, whose bytes in argv are overwritten:
 * `ps` shows a process's arguments to every user, and the URL may hold a
 * password. (It was visible from exec until now; DATABASE_URL or the job
 * file never is.) The caller frees the copy with xfree_secret().
 */
static char *take_secret(const char *arg, char *old)
{
	char *copy = xstrdup(arg);

	memset((char *)arg, 'x', strlen(arg)); /* argv's strings are writable */
	xfree_secret(old);
	return copy;
}

static int migrate_opt(int c, const char *arg, void *ud)
{
	struct migrate_opts *m = ud;

	if (c == OPT_URL)
		m->url = take_secret(arg, m->url);
	else if (c == OPT_SCHEMA)
		m->schema = arg;
	else
		return 1;
	return 0;
}

static int cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"database-url", required_argument, NULL, OPT_URL},
		{"schema", required_argument, NULL, OPT_SCHEMA},
		COMMON_LONGOPTS,
	};
	struct migrate_opts m = {NULL, NULL};
	struct etl_error err = {0, ""};
	struct job *job = NULL;
	PGconn *conn = NULL;
	const char *url, *schema;
	int rc = parse_opts(argc, argv, "migrate", migrate_help, longopts, migrate_opt, &m);
	int applied = 0;

	if (rc >= 0)
		goto out;
	if (argc - optind > 1) {
		rc = usage_error("migrate", "migrate takes at most one JOB file");
		goto out;
	}
	if (argc - optind == 1 &&
	    (rc = job_load_file_for(argv[optind], JOB_NEED_DB, &job, &err)) != 0)
		goto failed;
	url = m.url ? m.url : job ? job->db.url : getenv("DATABASE_URL") ? getenv("DATABASE_URL") : "";
	schema = m.schema ? m.schema : job ? job->db.schema : "dataforseo";
	rc = db_connect(url, schema, 1, &conn, &err);
	if (rc == 0)
		rc = migrate_apply(conn, &applied, &err);
	if (rc == 0)
		log_info("schema %s: %d migration%s applied, up to date", schema, applied,
			 applied == 1 ? "" : "s");
failed:
	rc = report(rc, &err);
out:
	if (conn)
		PQfinish(conn);
	job_free(job);
	xfree_secret(m.url);
	return rc;
}

static const char replay_help[] =
	"Usage: intersect-etl replay JOB RUN_ID\n"
	"\n"
	"Re-transforms and reloads run RUN_ID of JOB from the raw archive (table\n"
	"raw_page), with no API call, as a new run of the same snapshot date. Each\n"
	"set the run completed is published again; an unchanged transformer leaves\n"
	"the tables as they were. A run made with archive: false cannot be replayed.\n"
	"\n";

static int cmd_replay(int argc, char **argv)
{
	struct etl_error err = {0, ""};
	struct run_result res;
	char *end = NULL;
	long long run_id;
	int rc = parse_opts(argc, argv, "replay", replay_help, common_longopts, no_opt, NULL);

	if (rc >= 0)
		return rc;
	if (argc - optind != 2)
		return usage_error("replay", "replay takes a JOB file and a RUN_ID");
	run_id = strtoll(argv[optind + 1], &end, 10);
	if (!*argv[optind + 1] || *end || run_id <= 0)
		return usage_error("replay", "%s: not a run id (a positive integer)", argv[optind + 1]);
	rc = replay_run(argv[optind], run_id, &res, &err);
	if (res.run_id)
		log_info("run %lld: %zu target set%s replayed, %zu failed; %lld page%s, %lld row%s",
			 res.run_id, res.sets_complete, res.sets_complete == 1 ? "" : "s",
			 res.sets_failed, res.pages, res.pages == 1 ? "" : "s", res.rows,
			 res.rows == 1 ? "" : "s");
	return report(rc, &err);
}

static const char runs_help[] =
	"Usage: intersect-etl runs [JOB] [RUN_ID] [OPTIONS]\n"
	"\n"
	"Without RUN_ID: the most recent runs, newest first, one line each: run id,\n"
	"job, snapshot date, status, attempts (with more than one, their outcomes in\n"
	"order: \"2 (failed, succeeded)\"), start (UTC), duration (working time, the\n"
	"attempts' sum), target sets complete/all, pages, failed pages, rows, cost,\n"
	"error. Statuses: running, succeeded, partial, failed, interrupted (SIGINT,\n"
	"SIGTERM), abandoned (its process died; marked by the job's next run).\n"
	"With RUN_ID (a number): that run, its attempts when there were several, its\n"
	"target sets (status, total_count,\n"
	"pages, rows, cost, error) and every page that failed for good (offset,\n"
	"limit, attempts, HTTP status, API status code and message, error). An\n"
	"unknown RUN_ID is an error (exit status 1).\n"
	"The database and schema come from the options, else from JOB, else from\n"
	"DATABASE_URL (or libpq's PG* variables) and schema \"dataforseo\". Nothing is\n"
	"written.\n"
	"\n"
	"Options:\n"
	"  --job NAME          only runs of this job (default: JOB's; every job without JOB)\n"
	"  --limit N           list at most N runs, 1..100000 (default 20)\n"
	"  --status STATUS     only runs with this status: running, succeeded, partial,\n"
	"                      failed, interrupted, abandoned\n"
	"  --since YYYY-MM-DD  only runs of this snapshot date or later\n"
	"  --database-url URL  libpq connection string or URI\n"
	"  --schema NAME       schema of the tables\n"
	"  --format FORMAT     table (default) or json (one document)\n"
	"\n";

static const char report_help[] =
	"Usage: intersect-etl report JOB [--set NAME] [--format table|csv|json]\n"
	"\n"
	"For each target set of JOB (or the --set one): its latest complete snapshot\n"
	"(date, the complete snapshot before it, referring domains, rows, cost of that\n"
	"date's runs) and the referring domains new in it or lost since the one\n"
	"before, each with its intersections count, lowest rank and backlinks; and a\n"
	"note for each set whose latest run of a later date failed. The database and\n"
	"schema are JOB's. Nothing is written.\n"
	"\n"
	"Options:\n"
	"  --set NAME       only this target set\n"
	"  --format FORMAT  table (default: aligned columns), csv (RFC 4180: a \"snapshot\"\n"
	"                   record per set, then a \"new\" or \"lost\" record per domain)\n"
	"                   or json (one document)\n"
	"\n";

/* Options of `runs` and `report` (numbered apart from the ones above). */
enum { OPT_SET = 512, OPT_FORMAT, OPT_JOB, OPT_LIMIT, OPT_STATUS, OPT_SINCE };

static int runs_opt(int c, const char *arg, void *ud)
{
	struct runs_options *o = ud;
	char *end, what[64];
	long v;

	switch (c) {
	case OPT_JOB:
		o->job = arg;
		return 0;
	case OPT_STATUS:
		if (!runs_valid_status(arg))
			return usage_error("runs", "%s: not a run status\nhint: one of " RUNS_STATUSES,
					   opt_value(what, sizeof(what), "--status", arg));
		o->status = arg;
		return 0;
	case OPT_SINCE: {
		char why[160];

		if (!date_check(arg, why, sizeof(why)))
			return usage_error("runs", "%s: %s",
					   opt_value(what, sizeof(what), "--since", arg), why);
		o->since = arg;
		return 0;
	}
	case OPT_LIMIT:
		v = strtol(arg, &end, 10);
		if (!*arg || *end || v < 1 || v > RUNS_MAX_LIMIT)
			return usage_error("runs", "%s: not a number from 1 to %d",
					   opt_value(what, sizeof(what), "--limit", arg), RUNS_MAX_LIMIT);
		o->limit = (int)v;
		return 0;
	case OPT_URL:
		/* cmd_runs() frees it; the struct's field is const for runs.c */
		o->database_url = take_secret(arg, (char *)o->database_url);
		return 0;
	case OPT_SCHEMA:
		o->schema = arg;
		return 0;
	case OPT_FORMAT:
		if (report_parse_format(arg, &o->format) != 0 || o->format == REPORT_CSV)
			return usage_error("runs", "%s: runs prints table or json",
					   opt_value(what, sizeof(what), "--format", arg));
		return 0;
	}
	return 1;
}

static int cmd_runs(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"job", required_argument, NULL, OPT_JOB},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"status", required_argument, NULL, OPT_STATUS},
		{"since", required_argument, NULL, OPT_SINCE},
		{"database-url", required_argument, NULL, OPT_URL},
		{"schema", required_argument, NULL, OPT_SCHEMA},
		{"format", required_argument, NULL, OPT_FORMAT},
		COMMON_LONGOPTS,
	};
	struct runs_options opt;
	struct etl_error err = {0, ""};
	int rc, i;

	memset(&opt, 0, sizeof(opt));
	opt.limit = RUNS_DEFAULT_LIMIT;
	opt.format = REPORT_TABLE;
	rc = parse_opts(argc, argv, "runs", runs_help, longopts, runs_opt, &opt);
	if (rc >= 0)
		goto out;
	/* All digits is a RUN_ID, anything else the JOB file (./123 names a file "123"). */
	for (i = optind; i < argc; i++) {
		if (argv[i][0] && argv[i][strspn(argv[i], "0123456789")] == '\0') {
			if (opt.run_id) {
				rc = usage_error("runs", "%s: only one RUN_ID is taken", argv[i]);
				goto out;
			}
			if (runs_parse_id(argv[i], &opt.run_id) != 0) {
				rc = usage_error("runs", "%s: not a run id", argv[i]);
				goto out;
			}
		} else if (opt.job_path) {
			rc = usage_error("runs", "%s: only one JOB file is taken", argv[i]);
			goto out;
		} else {
			opt.job_path = argv[i];
		}
	}
	rc = runs_show(&opt, stdout, &err);
	rc = report(rc, &err);
out:
	xfree_secret((char *)opt.database_url); /* runs_opt()'s copy */
	return rc;
}

static int report_opt(int c, const char *arg, void *ud)
{
	struct report_options *o = ud;
	char what[64];

	switch (c) {
	case OPT_SET:
		o->set = arg;
		return 0;
	case OPT_FORMAT:
		if (report_parse_format(arg, &o->format) != 0)
			return usage_error("report", "%s: not table, csv or json",
					   opt_value(what, sizeof(what), "--format", arg));
		return 0;
	}
	return 1;
}

static int cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"set", required_argument, NULL, OPT_SET},
		{"format", required_argument, NULL, OPT_FORMAT},
		COMMON_LONGOPTS,
	};
	struct report_options opt;
	struct etl_error err = {0, ""};
	int rc;

	memset(&opt, 0, sizeof(opt));
	opt.format = REPORT_TABLE;
	rc = parse_opts(argc, argv, "report", report_help, longopts, report_opt, &opt);
	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return usage_error("report", "report takes exactly one JOB file");
	opt.job_path = argv[optind];
	rc = report_run(&opt, stdout, &err);
	return report(rc, &err);
}

static const char retire_help[] =
	"Usage: intersect-etl retire JOB SET\n"
	"\n"
	"Marks target set SET of JOB retired: it leaves domain_intersection_latest and\n"
	"domain_intersection_breakdown; its snapshots and history stay. Remove SET from\n"
	"the job file first; a run of a job file that names it again brings it back.\n"
	"\n";

static int cmd_retire(int argc, char **argv)
{
	struct etl_error err = {0, ""};
	int already = 0;
	int rc = parse_opts(argc, argv, "retire", retire_help, common_longopts, no_opt, NULL);

	if (rc >= 0)
		return rc;
	if (argc - optind != 2)
		return usage_error("retire", "retire takes a JOB file and a SET name");
	/* set names are [a-z0-9_-]+ (job.c); anything else is not echoed back */
	if (!*argv[optind + 1] || strlen(argv[optind + 1]) > 63 ||
	    strspn(argv[optind + 1], "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(argv[optind + 1]))
		return usage_error("retire", "SET: not a target set name ([a-z0-9_-]+)");
	rc = retire_set(argv[optind], argv[optind + 1], &already, &err);
	if (rc == 0)
		log_info("target set %s: %s", argv[optind + 1], already ? "already retired" : "retired");
	return report(rc, &err);
}

static const char init_help[] =
	"Usage: intersect-etl init FILE [--job NAME]\n"
	"\n"
	"Writes a job file to start from: every key with its default and a comment,\n"
	"the API key and database URL taken from the environment (${AISA_API_KEY},\n"
	"${DATABASE_URL}), never written in the file, and one target set to edit.\n"
	"`validate` accepts it as it is. An existing FILE is never replaced (exit 2).\n"
	"\n"
	"Options:\n"
	"  --job NAME  the job's name (default: FILE's base name, e.g. competitors for\n"
	"              competitors.yaml)\n"
	"\n";

static int init_opt(int c, const char *arg, void *ud)
{
	if (c != OPT_JOB)
		return 1;
	*(const char **)ud = arg;
	return 0;
}

static int cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"job", required_argument, NULL, OPT_JOB},
		COMMON_LONGOPTS,
	};
	struct etl_error err = {0, ""};
	const char *job = NULL;
	int rc = parse_opts(argc, argv, "init", init_help, longopts, init_opt, &job);

	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return usage_error("init", "init takes exactly one FILE to write");
	rc = init_write(argv[optind], job, &err);
	if (rc == 0)
		log_info("wrote %s; edit its target sets, then `intersect-etl validate %s`",
			 argv[optind], argv[optind]);
	return report(rc, &err);
}

static const char check_help[] =
	"Usage: intersect-etl check JOB\n"
	"\n"
	"Checks what a run of JOB needs, without loading anything, a line per part:\n"
	"  job file  valid, every credential present\n"
	"  database  reachable, the schema at this binary's version, and the rights a\n"
	"            run uses (its tables, functions, temporary tables); nothing written\n"
	"  api       the credentials accepted: one GET of the provider's free account\n"
	"            endpoint (appendix/user_data, not charged); no charged request\n"
	"Exit status 0 when all pass, else the first failure's: 2 job file, 6 database,\n"
	"5 schema version, 7 API.\n"
	"\n";

static int cmd_check(int argc, char **argv)
{
	struct etl_error err = {0, ""};
	int rc = parse_opts(argc, argv, "check", check_help, common_longopts, no_opt, NULL);

	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return usage_error("check", "check takes exactly one JOB file");
	rc = check_job(argv[optind], stdout, &err);
	return report(rc, &err);
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{"run", cmd_run, run_help},
	{"plan", cmd_plan, plan_help},
	{"validate", cmd_validate, validate_help},
	{"migrate", cmd_migrate, migrate_help},
	{"replay", cmd_replay, replay_help},
	{"runs", cmd_runs, runs_help},
	{"report", cmd_report, report_help},
	{"retire", cmd_retire, retire_help},
	{"init", cmd_init, init_help},
	{"check", cmd_check, check_help},
};

void cli_no_core_dumps(void)
{
	const struct rlimit none = {0, 0};

	/* The hard limit too, so nothing this process runs can raise it again. */
	if (setrlimit(RLIMIT_CORE, &none) != 0)
		log_warn("cannot disable core dumps: %s", strerror(errno));
	/* Not dumpable also keeps other processes of the same user from reading
	 * /proc/PID/environ and /proc/PID/mem or attaching a debugger (valgrind
	 * is not one: it runs the program inside its own process). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("cannot mark the process not dumpable: %s", strerror(errno));
}

int cli_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"log-format", required_argument, NULL, 'F'},
		{NULL, 0, NULL, 0},
	};
	static const char optstring[] = "+:hVqvF:"; /* "+": stop at the command */
	size_t i;
	int c, rc;

	cli_no_core_dumps();
	opterr = 0;
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		if ((rc = global_opt(c, optarg, NULL)) != -2) {
			if (rc >= 0)
				return rc;
			continue;
		}
		if (c != 'h')
			return refused_option(NULL, c, optstring, argv);
		printf("%s%s", main_help, exit_help);
		return ETL_OK;
	}
	if (optind >= argc)
		return usage_error(NULL, "no command given");
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 >= argc) {
			printf("%s%s", main_help, exit_help);
			return ETL_OK;
		}
		for (i = 0; i < ETL_ARRAY_LEN(commands); i++)
			if (strcmp(argv[optind + 1], commands[i].name) == 0) {
				printf("%s%s%s", commands[i].help, global_help, exit_help);
				return ETL_OK;
			}
		if (!plain_word(argv[optind + 1]))
			return usage_error(NULL, "help: no such command");
		return usage_error(NULL, "help %s: no such command", argv[optind + 1]);
	}
	for (i = 0; i < ETL_ARRAY_LEN(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return commands[i].fn(argc - optind, argv + optind);
	if (!plain_word(argv[optind]))
		return usage_error(NULL, "the first argument after the options is not a command");
	return usage_error(NULL, "%s: no such command", argv[optind]);
}
