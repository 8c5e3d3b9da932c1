/*
 * metrics.c - the Prometheus text file of a run. See metrics.h.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The statuses a run can end with; each gets a 0/1 series, so an alert
 * matches one without knowing the others. */
static const char *const run_statuses[] = {"succeeded", "partial", "failed", "interrupted"};

/* A label value with \, " and newline escaped, as the text format asks. */
static void put_label(struct strbuf *sb, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			sb_putc(sb, '\\');
		if (*v == '\n') {
			sb_puts(sb, "\\n");
			continue;
		}
		sb_putc(sb, *v);
	}
}

static void help(struct strbuf *sb, const char *name, const char *type, const char *text)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/*
 * One sample: name{etl_job="...",extra} value; extra is already escaped (or
 * ""). Not "job": Prometheus gives every scraped series its target's job
 * label, and would rename ours to exported_job.
 */
static void sample(struct strbuf *sb, const char *name, const char *job, const char *extra,
		   const char *value)
{
	sb_printf(sb, "%s{etl_job=\"", name);
	put_label(sb, job);
	sb_printf(sb, "\"%s} %s\n", extra, value);
}

/* The same with a number printed to `decimals` places. */
static void sample_num(struct strbuf *sb, const char *name, const char *job, const char *extra,
		       int decimals, double v)
{
	char num[64];

	snprintf(num, sizeof(num), "%.*f", decimals, v);
	sample(sb, name, job, extra, num);
}

static void run_series(struct strbuf *sb, const struct metrics_run *m)
{
	char extra[64];

	help(sb, "intersect_etl_run_success", "gauge",
	     "1 if the last run published every target set, else 0.");
	sample_num(sb, "intersect_etl_run_success", m->job, "", 0,
		   strcmp(m->status, "succeeded") == 0);
	help(sb, "intersect_etl_run_status", "gauge",
	     "The last run's status: 1 for the one it ended with, 0 for the others.");
	for (size_t i = 0; i < sizeof(run_statuses) / sizeof(run_statuses[0]); i++) {
		snprintf(extra, sizeof(extra), ",status=\"%s\"", run_statuses[i]);
		sample_num(sb, "intersect_etl_run_status", m->job, extra, 0,
			   strcmp(m->status, run_statuses[i]) == 0);
	}
	help(sb, "intersect_etl_run_exit_status", "gauge", "The exit status of the last run.");
	sample_num(sb, "intersect_etl_run_exit_status", m->job, "", 0, m->exit_status);
	help(sb, "intersect_etl_run_id", "gauge", "etl_run.run_id of the last run; 0 if it got none.");
	sample_num(sb, "intersect_etl_run_id", m->job, "", 0, (double)m->run_id);
	help(sb, "intersect_etl_run_start_time_seconds", "gauge",
	     "When the last run's process started it, seconds since the epoch.");
	sample_num(sb, "intersect_etl_run_start_time_seconds", m->job, "", 3, m->start_time);
	help(sb, "intersect_etl_run_end_time_seconds", "gauge",
	     "When it ended, seconds since the epoch: alert on its age to catch a run that never ran.");
	sample_num(sb, "intersect_etl_run_end_time_seconds", m->job, "", 3, m->end_time);
	help(sb, "intersect_etl_run_duration_seconds", "gauge", "The last run's working time.");
	sample_num(sb, "intersect_etl_run_duration_seconds", m->job, "", 3,
		   m->end_time - m->start_time);
	help(sb, "intersect_etl_run_pages", "gauge", "Pages loaded by the run (its ledger).");
	sample_num(sb, "intersect_etl_run_pages", m->job, "", 0, (double)m->pages);
	help(sb, "intersect_etl_run_rows", "gauge", "Table rows the run's pages staged (its ledger).");
	sample_num(sb, "intersect_etl_run_rows", m->job, "", 0, (double)m->rows);
	help(sb, "intersect_etl_run_requests", "gauge", "API requests this process sent, retries included.");
	sample_num(sb, "intersect_etl_run_requests", m->job, "", 0, (double)m->requests);
	help(sb, "intersect_etl_run_retries", "gauge", "Of those, retries.");
	sample_num(sb, "intersect_etl_run_retries", m->job, "", 0, (double)m->retries);
	help(sb, "intersect_etl_run_cost_usd", "gauge",
	     "What the API charged the run, USD, as its ledger sums it.");
	sample_num(sb, "intersect_etl_run_cost_usd", m->job, "", 6, m->cost_usd);
}

static void set_series(struct strbuf *sb, const struct metrics_run *m)
{
	static const struct {
		const char *name, *help;
	} series[] = {
		{"intersect_etl_set_complete", "1 if the target set's answer was published, else 0."},
		{"intersect_etl_set_pages", "Pages of the set loaded by the run."},
		{"intersect_etl_set_rows", "Table rows of the set staged by the run."},
		{"intersect_etl_set_requests", "API requests for the set this process sent."},
		{"intersect_etl_set_retries", "Of those, retries."},
		{"intersect_etl_set_cost_usd", "What the API charged for the set in the run, USD."},
	};
	struct strbuf extra;

	if (m->n_sets == 0)
		return;
	sb_init(&extra);
	for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
		help(sb, series[k].name, "gauge", series[k].help);
		for (size_t i = 0; i < m->n_sets; i++) {
			const struct metrics_set *s = &m->sets[i];
			double v = k == 0   ? strcmp(s->status, "complete") == 0
				   : k == 1 ? (double)s->pages
				   : k == 2 ? (double)s->rows
				   : k == 3 ? (double)s->requests
				   : k == 4 ? (double)s->retries
					    : s->cost_usd;

			extra.len = 0;
			sb_puts(&extra, ",target_set=\"");
			put_label(&extra, s->name);
			sb_putc(&extra, '"');
			sample_num(sb, series[k].name, m->job, extra.data, k == 5 ? 6 : 0, v);
		}
	}
	sb_free(&extra);
}

int metrics_write(const char *path, const struct metrics_run *m, struct etl_error *err)
{
	struct strbuf sb;
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	ssize_t put = 0;
	size_t done = 0;
	int fd, rc = 0;

	sb_init(&sb);
	run_series(&sb, m);
	set_series(&sb, m);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = etl_fail(err, ETL_EFAIL, "metrics file %s: cannot create: %s", tmp,
			      strerror(errno));
		goto out;
	}
	while (done < sb.len && (put = write(fd, sb.data + done, sb.len - done)) > 0)
		done += (size_t)put;
	if (done < sb.len || fsync(fd) != 0)
		rc = etl_fail(err, ETL_EFAIL, "metrics file %s: cannot write: %s", tmp,
			      strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = etl_fail(err, ETL_EFAIL, "metrics file %s: cannot write: %s", tmp,
			      strerror(errno));
	/* rename: a scrape sees the old file or the new one, never a half */
	if (rc == 0 && rename(tmp, path) != 0)
		rc = etl_fail(err, ETL_EFAIL, "metrics file %s: cannot rename %s over it: %s", path,
			      tmp, strerror(errno));
	if (rc != 0)
		unlink(tmp);
out:
	sb_free(&sb);
	free(tmp);
	return rc;
}

void metrics_free_sets(struct metrics_run *m)
{
	for (size_t i = 0; i < m->n_sets; i++) {
		free(m->sets[i].name);
		free(m->sets[i].status);
	}
	free(m->sets);
	m->sets = NULL;
	m->n_sets = 0;
}
