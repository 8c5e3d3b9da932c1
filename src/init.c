/*
 * init.c - `intersect-etl init`: the commented job file. See init.h.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Every key is one the README's job-file table lists; the job's line goes between. */
static const char template_head[] =
	"# An intersect-etl job file (README \"The job file\"; man intersect-etl).\n"
	"# Check it with `intersect-etl validate FILE`, see what a run would send and\n"
	"# cost with `intersect-etl plan FILE`, then `intersect-etl migrate FILE` once\n"
	"# and `intersect-etl run FILE` every night.\n"
	"version: 1                       # the job-file format; must be 1\n";

static const char template_tail[] =
	"\n"
	"api:\n"
	"  provider: aisa                 # aisa (Bearer token) or dataforseo (HTTP Basic)\n"
	"  base_url: https://api.aisa.one/apis/v1   # https only (http on loopback alone)\n"
	"  # The key comes from the environment, never from this file: export\n"
	"  # AISA_API_KEY where the job runs (cron: an env file; systemd:\n"
	"  # EnvironmentFile=), or name a file holding it with token_file:.\n"
	"  token: ${AISA_API_KEY}\n"
	"  # token_file: /etc/intersect-etl/aisa.key\n"
	"  concurrency: 8                 # requests in flight at once, 1..30\n"
	"  requests_per_minute: 600       # starts spaced evenly at this rate\n"
	"  timeout_seconds: 180           # a whole request, 1..600\n"
	"  max_attempts: 5                # tries per page, 1..20\n"
	"\n"
	"database:\n"
	"  url: ${DATABASE_URL:-}         # libpq URI or conninfo; empty: the PG* variables\n"
	"  schema: dataforseo             # where the tables live\n"
	"  connections: 2                 # connections loading pages at once, 1..8\n"
	"\n"
	"archive: true                    # keep each response body, so `replay` costs nothing\n"
	"# retention:                     # after a run that published every set:\n"
	"#   keep_snapshots: 400 days     #   purge older snapshots (the newest always stays)\n"
	"#   keep_archive: 8 weeks        #   and older archived bodies\n"
	"# max_cost_usd: 5.00             # the run's spending ceiling in USD (see `plan`)\n"
	"\n"
	"defaults:                        # any key of a target set, shared by all of them\n"
	"  limit: 1000                    # items per page, 1..1000 (a full page is cheapest)\n"
	"  max_rows: 10000                # items (referring domains) per set per run at most\n"
	"  order_by: [\"1.rank,desc\"]      # strongest referring domains first\n"
	"\n"
	"target_sets:\n"
	"  # One set per question: which referring domains link to all of these?\n"
	"  - name: competitors            # [a-z0-9_-]+, unique in the job\n"
	"    targets: [example.com, example.org]   # 1..20 domains or page URLs\n"
	"    # exclude_targets: [example.net]      # ...that do not also link to these\n"
	"    # filters: [[\"1.rank\", \">\", 100]]      # the API's filter arrays\n"
	"    # max_cost_usd: 1.00                  # this set's own ceiling per run\n";

void init_job_name(const char *path, char *buf, size_t size)
{
	const char *base = strrchr(path, '/');
	size_t n = 0;

	base = base ? base + 1 : path;
	for (; *base && *base != '.' && n + 1 < size && n < 63; base++) {
		char ch = *base;

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			ch = '-';
		buf[n++] = ch;
	}
	buf[n] = '\0';
	if (n == 0)
		snprintf(buf, size, "my-job");
}

static int valid_name(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n > 0 && n <= 63 && s[n] == '\0';
}

int init_write(const char *path, const char *job, struct etl_error *err)
{
	char name[64];
	FILE *f;
	int fd, rc = 0;

	if (job && !valid_name(job))
		return etl_fail(err, ETL_EUSAGE, "--job: not a job name\nhint: [a-z0-9_-]+, at most "
				"63 characters");
	if (job)
		snprintf(name, sizeof(name), "%s", job);
	else
		init_job_name(path, name, sizeof(name));
	/* O_EXCL: a job file someone wrote is never replaced */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST)
		return etl_fail(err, ETL_EUSAGE, "%s: exists; init never replaces a file\nhint: "
				"name a new file, or remove this one first", path);
	if (fd < 0)
		return etl_fail(err, ETL_EFAIL, "%s: cannot create: %s", path, strerror(errno));
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return etl_fail(err, ETL_EFAIL, "%s: cannot write: %s", path, strerror(errno));
	}
	fputs(template_head, f);
	fprintf(f, "job: %s   # names this job's runs and its lock: [a-z0-9_-]+\n", name);
	fputs(template_tail, f);
	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
		rc = etl_fail(err, ETL_EFAIL, "%s: cannot write: %s", path, strerror(errno));
	if (fclose(f) != 0 && rc == 0)
		rc = etl_fail(err, ETL_EFAIL, "%s: cannot write: %s", path, strerror(errno));
	if (rc != 0)
		unlink(path);
	return rc;
}
