/*
 * retire.h - `intersect-etl retire JOB SET`: a target set taken out of use.
 *
 * retire.c owns marking a set retired (target_set.retired_at): a set removed
 * from its job file otherwise stays in domain_intersection_latest forever,
 * since no run publishes a newer snapshot of it. Its snapshots and history
 * stay; a run of a job file that names the set again brings it back
 * (load_register_sets clears retired_at).
 */
#ifndef INTERSECT_RETIRE_H
#define INTERSECT_RETIRE_H

#include "err.h"

/*
 * Retires set `set` of the job in `job_path` (its database and job name).
 * Refuses (ETL_EUSAGE) a set the job file still names: the next run would
 * bring it back. ETL_EFAIL when the database has no such set of the job;
 * ETL_ESCHEMA when the schema is not at this binary's version. *already is
 * set when the set was retired before (nothing changed then).
 */
int retire_set(const char *job_path, const char *set, int *already, struct etl_error *err) ETL_WUR;

#endif
