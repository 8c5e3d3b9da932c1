/*
 * check.c - `intersect-etl check JOB`. See check.h.
 *
 * Each part prints "PART: ok: ..." to out, or fails with a message that
 * names the part; the parts after a failed one are still checked (an
 * operator fixing a new host wants every problem at once), and the status
 * is the first failure's.
 */
#include "check.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "job.h"
#include "log.h"
#include "migrate.h"

/* What a run writes and reads: every one needs all four rights (asked one by
 * one: has_table_privilege() with a list is true if any one is held). */
static const char tables_sql[] =
	"SELECT coalesce(string_agg(t, ', ' ORDER BY t), '') FROM unnest($1::text[]) t\n"
	"WHERE to_regclass(t) IS NULL\n"
	"   OR NOT (SELECT bool_and(has_table_privilege(to_regclass(t), p))\n"
	"           FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p)";
static const char *const run_tables =
	"{target_set,etl_run,etl_run_set,etl_run_attempt,etl_page,etl_snapshot,raw_page,"
	"domain_intersection_pending,domain_intersection_version,domain_intersection_order,"
	"domain_intersection_change,etl_job_lock,etl_sync_counter,etl_sync_deleted,etl_page_keys}";
/* The schema's functions (publish_snapshot() and the others a run calls). */
static const char functions_sql[] =
	"SELECT coalesce(string_agg(DISTINCT p.proname, ', '), ''),\n"
	"       has_database_privilege(current_database(), 'TEMP')\n"
	"FROM pg_namespace n LEFT JOIN pg_proc p ON p.pronamespace = n.oid\n"
	"     AND NOT has_function_privilege(p.oid, 'EXECUTE')\n"
	"WHERE n.nspname = $1";

/* The database part: reachable, at this version, with a run's rights. */
static int check_database(const struct job *job, FILE *out, struct etl_error *err)
{
	const char *params[1];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int rc;

	if ((rc = db_connect(job->db.url, job->db.schema, 0, &conn, err)) != 0) {
		etl_error_prefix(err, "database: ");
		rc = ETL_ECHECK_DB;
		goto out;
	}
	if ((rc = migrate_check(conn, err)) != 0) {
		etl_error_prefix(err, "database: ");
		goto out;
	}
	params[0] = run_tables;
	if ((rc = db_query(conn, tables_sql, 1, params, &res, err)) != 0)
		goto failed;
	if (*PQgetvalue(res, 0, 0)) {
		rc = etl_fail(err, ETL_ECHECK_DB,
			      "database: the role %s lacks SELECT, INSERT, UPDATE or DELETE on %s in "
			      "schema %s\nhint: run as the role that ran `migrate`, or GRANT them",
			      PQuser(conn), PQgetvalue(res, 0, 0), job->db.schema);
		goto out;
	}
	PQclear(res);
	params[0] = job->db.schema;
	if ((rc = db_query(conn, functions_sql, 1, params, &res, err)) != 0)
		goto failed;
	if (*PQgetvalue(res, 0, 0)) {
		rc = etl_fail(err, ETL_ECHECK_DB, "database: the role %s may not EXECUTE %s in schema %s",
			      PQuser(conn), PQgetvalue(res, 0, 0), job->db.schema);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		rc = etl_fail(err, ETL_ECHECK_DB,
			      "database: the role %s may not create temporary tables (TEMP on database "
			      "%s), which a run stages pages in",
			      PQuser(conn), PQdb(conn));
		goto out;
	}
	fprintf(out, "database: ok: %s on %s:%s, schema %s at this binary's version, the rights a "
		     "run uses\n",
		PQdb(conn), PQhost(conn), PQport(conn), job->db.schema);
	goto out;
failed:
	etl_error_prefix(err, "database: ");
	rc = ETL_ECHECK_DB;
out:
	PQclear(res);
	if (conn)
		PQfinish(conn);
	return rc;
}

/* The answer's body, up to a cap: the account endpoint's is a few kB. */
#define CHECK_MAX_BODY (1 << 20)

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct strbuf *sb = userp;

	if (sb->len + size * n > CHECK_MAX_BODY)
		return 0;
	sb_append(sb, data, size * n);
	return size * n;
}

/* The task's status code and message of an answer (the envelope's if there is no task). */
static int answer_status(json_object *doc, const char **msg, double *balance)
{
	json_object *tasks, *task = NULL, *v, *result, *money;
	int code = 0;

	*msg = NULL;
	*balance = -1;
	if (json_object_object_get_ex(doc, "status_code", &v))
		code = json_object_get_int(v);
	if (json_object_object_get_ex(doc, "status_message", &v))
		*msg = json_object_get_string(v);
	if (code == 20000 && json_object_object_get_ex(doc, "tasks", &tasks) &&
	    json_object_is_type(tasks, json_type_array) && json_object_array_length(tasks) > 0)
		task = json_object_array_get_idx(tasks, 0);
	if (task && json_object_object_get_ex(task, "status_code", &v))
		code = json_object_get_int(v);
	if (task && json_object_object_get_ex(task, "status_message", &v))
		*msg = json_object_get_string(v);
	if (task && json_object_object_get_ex(task, "result", &result) &&
	    json_object_is_type(result, json_type_array) && json_object_array_length(result) > 0 &&
	    json_object_object_get_ex(json_object_array_get_idx(result, 0), "money", &money) &&
	    json_object_object_get_ex(money, "balance", &v))
		*balance = json_object_get_double(v);
	return code;
}

/* Judges the free endpoint's answer: accepted, refused, or not shown either way. */
static int judge(const struct job *job, const char *url, long http, const struct strbuf *body,
		 FILE *out, struct etl_error *err)
{
	json_object *doc = body->len ? json_tokener_parse(body->data) : NULL;
	const char *msg = NULL;
	double balance = -1;
	int code = doc ? answer_status(doc, &msg, &balance) : 0, rc = 0;
	const char *cred = job->api.provider == API_AISA ? "api.token (AISA_API_KEY)"
							  : "api.login and api.password";

	if (http == 401 || http == 403 || (code >= 40100 && code < 40200))
		rc = etl_fail(err, ETL_ECHECK_API,
			      "api: the credentials were refused (HTTP %ld%s%s)\nhint: check %s", http,
			      msg ? ": " : "", msg ? msg : "", cred);
	else if (http == 402 || code == 40200 || code == 40210)
		rc = etl_fail(err, ETL_ECHECK_API,
			      "api: the credentials are accepted, but the account cannot pay (HTTP %ld%s%s)",
			      http, msg ? ": " : "", msg ? msg : "");
	else if (http == 404)
		rc = etl_fail(err, ETL_ECHECK_API,
			      "api: %s answered HTTP 404: this gateway has no free account endpoint, so "
			      "the credentials are not verified (nothing charged was sent)\nhint: a run "
			      "of one small set (e.g. `--only SET` with max_rows: 1) verifies them for "
			      "about $0.02",
			      url);
	else if (http == 200 && code == 20000) {
		if (balance >= 0)
			fprintf(out, "api: ok: the credentials are accepted (%s provider, %s), balance "
				     "$%.2f; nothing charged\n",
				job_provider_name(job->api.provider), job->api.base_url, balance);
		else
			fprintf(out, "api: ok: the credentials are accepted (%s provider, %s); nothing "
				     "charged\n",
				job_provider_name(job->api.provider), job->api.base_url);
	} else
		rc = etl_fail(err, ETL_ECHECK_API,
			      "api: %s answered HTTP %ld, status code %d%s%s: not an answer that shows "
			      "the credentials accepted",
			      url, http, code, msg ? ": " : "", msg ? msg : "");
	json_object_put(doc);
	return rc;
}

/* The API part: one GET of the free account endpoint with the job's credentials. */
static int check_api(const struct job *job, FILE *out, struct etl_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "", *url, *auth = NULL;
	struct curl_slist *headers = NULL;
	struct strbuf body;
	CURL *e;
	CURLcode cc;
	long http = 0, timeout = job->api.timeout_seconds < 60 ? job->api.timeout_seconds : 60;
	int rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(e = curl_easy_init()))
		return etl_fail(err, ETL_ECHECK_API, "api: cannot initialise libcurl");
	url = xasprintf("%s%s", job->api.base_url,
			job->api.provider == API_AISA ? CHECK_USER_DATA_AISA
						      : CHECK_USER_DATA_DATAFORSEO);
	sb_init(&body);
	headers = curl_slist_append(NULL, "Accept: application/json");
	if (job->api.provider == API_AISA) {
		auth = xasprintf("Authorization: Bearer %s", job->api.token);
		headers = curl_slist_append(headers, auth);
		xfree_secret(auth); /* curl_slist_append copied it */
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, job->api.login);
		curl_easy_setopt(e, CURLOPT_PASSWORD, job->api.password);
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, timeout < 30 ? timeout : 30L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* any libcurl decodes itself */
	curl_easy_setopt(e, CURLOPT_USERAGENT, "intersect-etl/" ETL_VERSION);
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
	if (cc != CURLE_OK)
		rc = etl_fail(err, ETL_ECHECK_API, "api: cannot reach %s: %s", url,
			      errbuf[0] ? errbuf : curl_easy_strerror(cc));
	else
		rc = judge(job, url, http, &body, out, err);
	curl_slist_free_all(headers); /* holds the Authorization header */
	curl_easy_cleanup(e);
	sb_free(&body);
	free(url);
	return rc;
}

int check_job(const char *path, FILE *out, struct etl_error *err)
{
	struct etl_error later = {0, ""};
	struct job *job = NULL;
	int rc, r;

	if ((rc = job_load_file(path, &job, err)) != 0) {
		etl_error_prefix(err, "job file: ");
		return rc;
	}
	fprintf(out, "job file: ok: job %s, %zu target set%s, %s provider\n", job->name,
		job->n_sets, job->n_sets == 1 ? "" : "s", job_provider_name(job->api.provider));
	rc = check_database(job, out, err);
	r = check_api(job, out, rc ? &later : err);
	if (rc == 0)
		rc = r;
	else if (r != 0)
		/* both failed: the first is the status, the second is said too */
		log_error("%s", later.msg);
	job_free(job);
	return rc;
}
