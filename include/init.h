/*
 * init.h - `intersect-etl init FILE`: a job file to start from.
 *
 * init.c owns the template: every key of the job file with its default and a
 * comment saying what it does, the credentials taken from the environment
 * (never written into the file), one target set to edit. The file it writes
 * passes `validate` as it is.
 */
#ifndef INTERSECT_INIT_H
#define INTERSECT_INIT_H

#include "err.h"

/*
 * Writes the template to path, for job `job` (NULL: named after the file,
 * e.g. "competitors" for competitors.yaml). Never replaces a file:
 * ETL_EUSAGE if path exists (or `job` is not a job name), ETL_EFAIL on an
 * I/O error.
 */
int init_write(const char *path, const char *job, struct etl_error *err) ETL_WUR;

/* The job name init_write() derives from a path: its base name up to the first '.'. */
void init_job_name(const char *path, char *buf, size_t size);

#endif
