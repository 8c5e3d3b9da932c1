/*
 * replay.h - re-transform and reload a run from the raw archive, with no API
 * call: the way to apply a transformer fix (or a schema change) to data
 * already paid for.
 *
 * replay.c owns it: the replay is a run of its own (etl_run.replay_of names
 * the original) for the original's snapshot date. Each set the original
 * completed is re-transformed from its archived pages, in result order, and
 * published exactly as a fetched answer would be, so replaying an unchanged
 * run leaves domain_intersection as it was. Sets the original did not
 * complete have no complete answer to replay and are skipped.
 */
#ifndef INTERSECT_REPLAY_H
#define INTERSECT_REPLAY_H

#include "err.h"
#include "run.h"

/*
 * Replays run `run_id` of the job in `job_path`. result gets the replay's
 * run id and counts. Returns 0, ETL_EPARTIAL when a set could not be
 * replayed, ETL_EFAIL (no such run, nothing archived) or as run_job does.
 */
int replay_run(const char *job_path, long long run_id, struct run_result *result,
	       struct etl_error *err) ETL_WUR;

#endif
