/*
 * stage.c - a page of a direct load, straight into the versions. See stage.h.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fold.h"

/*
 * A direct load (sql/016_direct_load.sql) COPYs a row as a version: its
 * text without its position (TRANSFORM_COLUMNS' sixth field) and with
 * sync_seq 0 (the publish's number reaches readers through the control row;
 * the column's default would lock the sync counter from the first page on).
 */
#define VERSION_COLUMNS                                                              \
	"valid_from, target_set_id, referring_domain, target_key, target, "           \
	TRANSFORM_VALUE_COLUMNS ", run_id, digest, sync_seq"
enum { F_DOMAIN = 2, F_KEY = 3, F_POSITION = 5 };

/* One row of a batch: its COPY text without the newline. */
struct row_span {
	const char *p;
	size_t len;
};

/* The rows of a batch (rows end at a newline: those in values are escaped). */
static struct row_span *split_rows(const struct row_batch *rows, size_t *n)
{
	const char *p = rows->copy.data, *end = p + rows->copy.len, *nl;
	struct row_span *r = xcalloc(rows->n_rows + 1, sizeof(*r));

	*n = 0;
	while (p < end && *n < rows->n_rows && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		r[*n].p = p;
		r[(*n)++].len = (size_t)(nl - p);
		p = nl + 1;
	}
	return r;
}

/* Where field i of a row starts (its text runs to the next tab or the end). */
static const char *row_field(const struct row_span *r, int i, size_t *len)
{
	const char *p = r->p, *end = r->p + r->len, *tab;

	while (i-- > 0 && (tab = memchr(p, '\t', (size_t)(end - p))))
		p = tab + 1;
	tab = memchr(p, '\t', (size_t)(end - p));
	*len = (size_t)((tab ? tab : end) - p);
	return p;
}

/* The byte at s[*i] of a COPY text field, an escape read whole (PostgreSQL
 * writes \b \f \n \r \t \v and \\; the transformer \n \r \t and \\). */
static char copy_char(const char *s, size_t len, size_t *i)
{
	char c = s[*i];

	if (c == '\\' && *i + 1 < len) {
		c = s[++*i];
		c = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r'
		  : c == 't' ? '\t' : c == 'v' ? '\v' : c;
	}
	return c;
}

/* A COPY text field unescaped into dst (at most len bytes); its length. */
static size_t copy_unescape(char *dst, const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		dst[n++] = copy_char(s, len, &i);
	return n;
}

/* A COPY text field as an element of an array literal: quoted, unescaped for COPY. */
static void array_text(struct strbuf *sb, const char *s, size_t len)
{
	size_t i;

	sb_putc(sb, sb->len ? ',' : '{');
	sb_putc(sb, '"');
	for (i = 0; i < len; i++) {
		char c = copy_char(s, len, &i);

		if (c == '"' || c == '\\')
			sb_putc(sb, '\\');
		sb_putc(sb, c);
	}
	sb_putc(sb, '"');
}

/* A field that needs no quoting (a number, a digest) as an array element. */
static void array_word(struct strbuf *sb, const char *s, size_t len)
{
	sb_putc(sb, sb->len ? ',' : '{');
	sb_append(sb, s, len);
}

static const char *array_end(struct strbuf *sb)
{
	if (!sb->len)
		sb_putc(sb, '{');
	sb_putc(sb, '}');
	return sb->data;
}

/* Whether the loader judged every row of the page itself (curmap.h). */
static bool loader_judged(const struct row_batch *rows, size_t n)
{
	return rows->judged && rows->send.len == n;
}

/*
 * The page's keys go to stage_page(), which records them with the page and
 * answers which rows to send; send[i] is set for those.
 */
static int direct_keys(PGconn *conn, const struct page_record *rec, const struct row_batch *rows,
		       const struct row_span *r, size_t n, char *send, size_t *n_send,
		       struct etl_error *err)
{
	char v[3][24];
	const char *params[17];
	int lengths[17] = {0}, formats[17] = {0};
	struct strbuf a[11];
	PGresult *res = NULL;
	size_t i, len, plen = 0;
	const char *f, *prev = NULL;
	int rc, j, totals, judged, lookup;

	for (j = 0; j < 11; j++)
		sb_init(&a[j]);
	totals = bd_arrays(&rows->breakdown, &a[4]);
	/* rows the loader judged itself (curmap.h): the database looks nothing up */
	judged = loader_judged(rows, n);
	lookup = rec->lookup && !judged;
	for (i = 0; i < n; i++) {
		f = row_field(&r[i], F_DOMAIN, &len);
		array_text(&a[0], f, len);
		f = row_field(&r[i], F_KEY, &len);
		array_word(&a[1], f, len);
		f = row_field(&r[i], F_POSITION, &len);
		array_word(&a[2], f, len);
		/* the digest ends the row; only a lookup reads it */
		if (lookup)
			array_word(&a[3], r[i].p + r[i].len - 32, 32);
		/* an item's rows come together, at its position: its first one names it */
		if (i == 0 || len != plen || memcmp(prev, f, len) != 0) {
			array_word(&a[10], f, len);
			prev = f;
			plen = len;
			f = row_field(&r[i], F_DOMAIN, &len);
			array_text(&a[9], f, len);
		}
	}
	snprintf(v[0], sizeof(v[0]), "%lld", rec->run_id);
	snprintf(v[1], sizeof(v[1]), "%lld", rec->target_set_id);
	snprintf(v[2], sizeof(v[2]), "%lld", rec->offset);
	params[0] = v[0];
	params[1] = v[1];
	params[2] = v[2];
	params[3] = rec->snapshot_date;
	params[4] = lookup ? "t" : "f";
	for (j = 0; j < 3; j++)
		params[5 + j] = array_end(&a[j]);
	params[8] = lookup ? array_end(&a[3]) : NULL;
	for (j = 9; j < 13; j++)
		params[j] = totals ? a[j - 5].data : NULL;
	params[13] = NULL;
	if (judged) {
		for (i = 0; i < n; i++)
			array_word(&a[8], rows->send.data[i] ? "t" : "f", 1);
		params[13] = array_end(&a[8]);
	}
	params[14] = array_end(&a[9]);
	params[15] = array_end(&a[10]);
	/* every row's fingerprint, for the publish to keep (sql/024) */
	params[16] = NULL;
	if (judged && rows->row_fps.len == n * CUR_FP_BYTES) {
		params[16] = rows->row_fps.data ? rows->row_fps.data : "";
		lengths[16] = (int)rows->row_fps.len;
		formats[16] = 1;
	}
	rc = db_query_bin(conn,
			  "SELECT * FROM stage_page($1, $2, $3, $4::date, $5::boolean, $6::text[],"
			  " $7::smallint[], $8::integer[], $9::uuid[], $10::text[], $11::text[],"
			  " $12::bigint[], $13::integer[], $14::boolean[], $15::text[], $16::integer[],"
			  " $17::bytea)",
			  17, params, lengths, formats, 0, &res, err);
	for (j = 0; j < 11; j++)
		sb_free(&a[j]);
	if (rc != 0)
		return rc;
	*n_send = 0;
	for (j = 0; j < PQntuples(res); j++) {
		long k = strtol(PQgetvalue(res, j, 0), NULL, 10);

		if (k >= 1 && (size_t)k <= n && !send[k - 1]) {
			send[k - 1] = 1;
			(*n_send)++;
		}
	}
	PQclear(res);
	return 0;
}

/*
 * COPYs the rows to send: as versions, or (as_version 0) as they are, into
 * pg_temp.di_stage.
 */
static int copy_sent(PGconn *conn, const struct row_span *r, size_t n, const char *send,
		     int as_version, char *sqlstate, struct etl_error *err)
{
	struct db_copy co;
	size_t i, len;
	const char *pos;
	int rc;

	sqlstate[0] = '\0';
	rc = db_copy_start(conn,
			   as_version ? "domain_intersection_version (" VERSION_COLUMNS ") FROM STDIN"
				      : "pg_temp.di_stage (" TRANSFORM_COLUMNS ") FROM STDIN",
			   &co, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (!send[i])
			continue;
		if (as_version) { /* the row without its position, sync_seq 0 */
			pos = row_field(&r[i], F_POSITION, &len);
			db_copy_put(&co, r[i].p, (size_t)(pos - r[i].p));
			db_copy_put(&co, pos + len + 1, r[i].len - (size_t)(pos + len + 1 - r[i].p));
			db_copy_put(&co, "\t0\n", 3);
		} else {
			db_copy_put(&co, r[i].p, r[i].len + 1);
		}
	}
	return db_copy_end(&co, sqlstate, err);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One line of the current versions' COPY: "domain\tkey\tdigest". 0 if it has no digest. */
static int current_line(const char *line, size_t len, struct cur_map *m, char *buf)
{
	const char *t1 = memchr(line, '\t', len), *t2;
	unsigned char digest[16];
	size_t n, i, j = 0;
	uint64_t hi;
	uint32_t lo;
	int key, h;

	if (!t1 || !(t2 = memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - line))))
		return 0;
	key = atoi(t1 + 1);
	for (i = (size_t)(t2 + 1 - line); i < len && j < 32; i++) {
		if ((h = hexval(line[i])) < 0)
			continue; /* the uuid's dashes; \N has none */
		if (j % 2 == 0)
			digest[j / 2] = (unsigned char)(h << 4);
		else
			digest[j / 2] |= (unsigned char)h;
		j++;
	}
	if (j != 32)
		return 0;
	n = copy_unescape(buf, line, (size_t)(t1 - line));
	cur_map_fp(buf, n, key, digest, &hi, &lo);
	cur_map_add(m, hi, lo);
	return 1;
}

/*
 * The fingerprints the set's last publish kept (sql/024), when nothing has
 * moved the set's control rows since (a purge carries them forward): *got 1
 * when m holds them, sealed; 0 when there are none to take (m untouched).
 */
static int kept_map(PGconn *conn, long long set_id, struct cur_map *m, int *got,
		    struct etl_error *err)
{
	char id[24];
	const char *params[1] = {id};
	PGresult *res = NULL;
	size_t len;
	int rc;

	*got = 0;
	snprintf(id, sizeof(id), "%lld", set_id);
	rc = db_query_bin(conn,
			  "SELECT d.fps FROM etl_kept_digests d WHERE d.target_set_id = $1"
			  " AND d.sync_seq = (SELECT max(c.sync_seq) FROM etl_snapshot c"
			  "                   WHERE c.target_set_id = $1)",
			  1, params, NULL, NULL, 1, &res, err);
	if (rc != 0)
		return rc;
	len = PQntuples(res) == 1 ? (size_t)PQgetlength(res, 0, 0) : 0;
	if (PQntuples(res) != 1 || len % CUR_FP_BYTES != 0 ||
	    len / CUR_FP_BYTES >= CUR_MAP_MAX_ROWS) {
		PQclear(res);
		return 0;
	}
	cur_map_add_stored(m, (const unsigned char *)PQgetvalue(res, 0, 0), len / CUR_FP_BYTES);
	PQclear(res);
	cur_map_seal(m);
	*got = 1;
	return 0;
}

int stage_current_map(PGconn *conn, long long set_id, const char *snapshot_date,
		     struct cur_map *m, int *kept, struct etl_error *err)
{
	char *sql, *line = NULL, *buf = NULL;
	size_t cap = 0;
	PGresult *res;
	int n, rc = 0;

	cur_map_free(m);
	if ((rc = kept_map(conn, set_id, m, kept, err)) != 0 || *kept)
		return rc;
	sql = xasprintf("COPY (SELECT referring_domain, target_key, digest"
			" FROM domain_intersection_version WHERE target_set_id = %lld"
			" AND valid_to = 'infinity' AND valid_from < '%s') TO STDOUT",
			set_id, snapshot_date);
	res = PQexec(conn, sql);
	free(sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		rc = etl_fail(err, ETL_EFAIL, "database error: cannot read the current versions: %s",
			      PQresultErrorMessage(res));
		PQclear(res);
		return rc;
	}
	PQclear(res);
	while ((n = PQgetCopyData(conn, &line, 0)) > 0) {
		if ((size_t)n > cap) {
			cap = (size_t)n;
			buf = xrealloc(buf, cap);
		}
		if (m->n < CUR_MAP_MAX_ROWS)
			(void)current_line(line, (size_t)n - 1, m, buf);
		PQfreemem(line);
	}
	free(buf);
	if (n == -2)
		rc = etl_fail(err, ETL_EFAIL, "database error: reading the current versions: %s",
			      PQerrorMessage(conn));
	while ((res = PQgetResult(conn))) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && !rc)
			rc = etl_fail(err, ETL_EFAIL, "database error: reading the current versions: %s",
				      PQresultErrorMessage(res));
		PQclear(res);
	}
	if (rc == 0 && m->n < CUR_MAP_MAX_ROWS)
		cur_map_seal(m); /* else left unsealed: the database judges the rows */
	else
		cur_map_free(m);
	return rc;
}

/*
 * A page of a direct load: its new and changed rows straight into the
 * versions, unseen until the publish (load.h). A row that repeats a key
 * another page staged (offset paging) meets the primary key: then the
 * page is redone through di_stage and stage_page_rows(), where the first
 * place in result order wins. The items' domain rows go in too (fold.h):
 * every item's on a set's first load, on a night those of the items with a
 * row written; a domain another item already gave meets their key the same
 * way, and a page redone sends none: the publish then folds the night
 * itself (sql/019, sql/021).
 */
int stage_direct(PGconn *conn, const struct page_record *rec, const struct row_batch *rows,
			long long *staged, struct etl_error *err)
{
	char v[4][24], state[6];
	const char *params[4] = {v[0], v[1], v[2], rec->snapshot_date};
	PGresult *res = NULL;
	struct row_span *r;
	size_t n, n_send = 0;
	char *send;
	int rc;

	*staged = 0;
	r = split_rows(rows, &n);
	send = xcalloc(n + 1, 1);
	if ((rc = direct_keys(conn, rec, rows, r, n, send, &n_send, err)) != 0 || n_send == 0)
		goto out;
	if ((rc = db_exec(conn, "SAVEPOINT stage_copy", err)) != 0)
		goto out;
	rc = copy_sent(conn, r, n, send, 1, state, err);
	/* the items' domain rows with them (sql/019, sql/021), when every item
	 * folded and the rows that went are those they were folded for: all of
	 * them (a first load) or those the loader judged (a night) */
	if (rc == 0 && rows->domains.len && !rows->domains_unusable &&
	    (n_send == n || loader_judged(rows, n)))
		rc = db_copy_data(conn, "domain_intersection_domain_version (" FOLD_COLUMNS ") FROM STDIN",
				  rows->domains.data, rows->domains.len, state, err);
	if (rc == 0) {
		*staged = (long long)n_send;
		goto out;
	}
	if (strcmp(state, "23505") != 0)
		goto out;
	etl_error_clear(err);
	if ((rc = db_exec(conn, "ROLLBACK TO SAVEPOINT stage_copy", err)) != 0 ||
	    (rc = copy_sent(conn, r, n, send, 0, state, err)) != 0)
		goto out;
	snprintf(v[0], sizeof(v[0]), "%lld", rec->run_id);
	snprintf(v[1], sizeof(v[1]), "%lld", rec->target_set_id);
	snprintf(v[2], sizeof(v[2]), "%lld", rec->offset);
	rc = db_query(conn, "SELECT stage_page_rows($1, $2, $3, $4::date)", 4, params, &res, err);
	if (rc == 0) {
		*staged = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
out:
	free(send);
	free(r);
	return rc;
}
