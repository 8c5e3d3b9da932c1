/*
 * retire.c - `intersect-etl retire JOB SET`. See retire.h.
 */
#include "retire.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "job.h"
#include "migrate.h"

/* The first retirement's time is kept: retiring again changes nothing. */
static const char retire_sql[] =
	"WITH old AS (SELECT target_set_id, retired_at FROM target_set\n"
	"             WHERE job = $1 AND name = $2 FOR UPDATE)\n"
	"UPDATE target_set t SET retired_at = coalesce(old.retired_at, now())\n"
	"FROM old WHERE t.target_set_id = old.target_set_id\n"
	"RETURNING old.retired_at IS NOT NULL";

int retire_set(const char *job_path, const char *set, int *already, struct etl_error *err)
{
	struct job *job = NULL;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	const char *params[2];
	int rc;

	*already = 0;
	if ((rc = job_load_file(job_path, &job, err)) != 0)
		goto out;
	if (job_find_set(job, set)) {
		rc = etl_fail(err, ETL_EUSAGE,
			      "%s: target set %s is still in the job file; remove it first "
			      "(the next run would bring it back)", job_path, set);
		goto out;
	}
	if ((rc = db_connect(job->db.url, job->db.schema, 0, &conn, err)) != 0)
		goto out;
	if ((rc = migrate_check(conn, err)) != 0)
		goto out;
	params[0] = job->name;
	params[1] = set;
	if ((rc = db_query(conn, retire_sql, 2, params, &res, err)) != 0)
		goto out;
	if (PQntuples(res) == 0) {
		rc = etl_fail(err, ETL_EFAIL, "job %s has no target set %s in schema %s", job->name,
			      set, job->db.schema);
		goto out;
	}
	*already = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
out:
	PQclear(res);
	if (conn)
		PQfinish(conn);
	job_free(job);
	return rc;
}
