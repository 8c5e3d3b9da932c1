/*
 * stage.h - a page of a direct load (sql/016_direct_load.sql), straight into
 * domain_intersection_version.
 *
 * A run whose date is after the set's latest complete snapshot loads its
 * pages directly: the page's keys go to stage_page() with the loader's
 * verdicts (or the database looks its rows up), and only new and changed
 * rows are COPYed, as versions of the run's date that no reader sees before
 * the publish. load.c calls stage_direct() in the page's transaction.
 */
#ifndef INTERSECT_STAGE_H
#define INTERSECT_STAGE_H

#include <libpq-fe.h>

#include "load.h"

/*
 * Stages the page's rows directly, in the caller's transaction; *staged is
 * how many rows it inserted (the ledger's count).
 */
int stage_direct(PGconn *conn, const struct page_record *rec, const struct row_batch *rows,
		 long long *staged, struct etl_error *err) ETL_WUR;

/*
 * Reads the set's current versions (those before snapshot_date) into m, for
 * the loader to judge rows by (curmap.h): their fingerprints as the set's
 * last publish kept them (*kept 1) while no publish or failure of the set
 * has come since (sql/024), else the versions themselves (*kept 0). A
 * set of more than CUR_MAP_MAX_ROWS leaves m empty and unsealed (the
 * database judges).
 */
int stage_current_map(PGconn *conn, long long set_id, const char *snapshot_date,
		     struct cur_map *m, int *kept, struct etl_error *err) ETL_WUR;

#endif
