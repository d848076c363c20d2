/* Unit tests of the outbox against real SQLite files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "store/outbox.h"

#define TOPIC     "city/test/gw-0001/air-quality/aq-001"
#define TOPIC_LEN ((int64_t)(sizeof(TOPIC) - 1))
#define T0        1700000000000LL /* created_ms of the first test row */

static char tmp_dir[PATH_MAX / 2];

/* A database path in the temporary directory, one per test. The buffers rotate so that
 * a test can hold a few paths at once. */
static const char *db_path(const char *name)
{
	static char paths[4][PATH_MAX];
	static unsigned next;
	char *path = paths[next++ % 4];

	snprintf(path, PATH_MAX, "%s/%s.db", tmp_dir, name);
	return path;
}

/* The payload of a test row: len bytes derived from its seq, so content is checkable. */
static void fill_payload(char *buf, size_t len, int64_t seq)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (char)('a' + (seq + (int64_t)i) % 26);
}

/* Puts n rows with seqs first..first+n-1, payloads of plen bytes and created_ms
 * T0 + seq (or created_ms when it is not 0), in one call. */
static int put_range_at(cg_outbox_t *ob, int64_t first, size_t n, size_t plen, int64_t created_ms)
{
	cg_outbox_row_t *rows = calloc(n, sizeof(*rows));
	char *payloads = malloc(n * plen + 1);
	size_t i;
	int err;

	assert_non_null(rows);
	assert_non_null(payloads);
	for (i = 0; i < n; i++) {
		int64_t seq = first + (int64_t)i;

		fill_payload(payloads + i * plen, plen, seq);
		rows[i].seq = seq;
		rows[i].topic = TOPIC;
		rows[i].payload = payloads + i * plen;
		rows[i].len = plen;
		rows[i].created_ms = created_ms ? created_ms : T0 + seq;
	}
	err = cg_outbox_put(ob, rows, n);
	free(payloads);
	free(rows);
	return err;
}

static int put_range(cg_outbox_t *ob, int64_t first, size_t n, size_t plen)
{
	return put_range_at(ob, first, n, plen, 0);
}

static void ack_range(cg_outbox_t *ob, int64_t first, size_t n)
{
	int64_t *seqs = calloc(n, sizeof(*seqs));
	size_t i;

	assert_non_null(seqs);
	for (i = 0; i < n; i++)
		seqs[i] = first + (int64_t)i;
	assert_int_equal(cg_outbox_ack(ob, seqs, n), 0);
	free(seqs);
}

static cg_outbox_t *open_ok(const char *path, const cg_outbox_opts_t *opts)
{
	cg_outbox_t *ob = NULL;

	assert_int_equal(cg_outbox_open(path, opts, &ob), 0);
	assert_non_null(ob);
	return ob;
}

static cg_outbox_stats_t stats_of(const cg_outbox_t *ob)
{
	cg_outbox_stats_t st;

	assert_int_equal(cg_outbox_stats(ob, &st), 0);
	return st;
}

/* Checks that every fetched row is the one put_range() made for its seq. */
static void check_rows(const cg_outbox_row_t *rows, size_t n, int64_t first, size_t plen)
{
	char *want = malloc(plen + 1);
	size_t i;

	assert_non_null(want);
	for (i = 0; i < n; i++) {
		int64_t seq = first + (int64_t)i;

		assert_int_equal(rows[i].seq, seq);
		assert_string_equal(rows[i].topic, TOPIC);
		assert_int_equal(rows[i].len, plen);
		fill_payload(want, plen, seq);
		assert_memory_equal(rows[i].payload, want, plen);
		assert_int_equal(rows[i].payload[plen], '\0');
		assert_int_equal(rows[i].created_ms, T0 + seq);
	}
	free(want);
}

/* Fetches everything and checks it is exactly seqs first..first+n-1. */
static void check_contents(cg_outbox_t *ob, int64_t first, size_t n, size_t plen)
{
	cg_outbox_row_t *rows = NULL;
	size_t got = 0;

	assert_int_equal(cg_outbox_fetch(ob, 0, 0, SIZE_MAX, &rows, &got), 0);
	assert_int_equal(got, n);
	check_rows(rows, got, first, plen);
	cg_outbox_rows_free(rows, got);
}

/* Runs PRAGMA integrity_check through a separate connection. */
static void check_integrity(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* Log capture: stderr goes to a file while a test counts the outbox's log lines. */
static int saved_stderr = -1;
static char capture_path[PATH_MAX];

static void capture_start(void)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path), "%s/log.txt", tmp_dir);
	fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

/* Restores stderr and returns how many captured lines start with prefix. */
static int capture_count(const char *prefix)
{
	char line[2048];
	FILE *f;
	int count = 0;

	fflush(stderr);
	f = fopen(capture_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			count++;
	fclose(f);
	return count;
}

static void capture_stop(void)
{
	fflush(stderr);
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	saved_stderr = -1;
}

static void test_put_fetch_order(void **state)
{
	const char *path = db_path("order");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_stats_t st = stats_of(ob);
	cg_outbox_row_t *rows = NULL;
	size_t n = 99;

	assert_int_equal(st.rows, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.oldest_ms, 0);
	assert_int_equal(st.next_seq, 1);
	assert_int_equal(cg_outbox_next_seq(ob), 1);
	assert_int_equal(cg_outbox_fetch(ob, 0, 0, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_null(rows);

	assert_int_equal(put_range(ob, 1, 5, 20), 0);
	assert_int_equal(put_range(ob, 6, 1, 20), 0);
	assert_int_equal(put_range(ob, 7, 10, 20), 0);
	check_contents(ob, 1, 16, 20);
	st = stats_of(ob);
	assert_int_equal(st.rows, 16);
	assert_int_equal(st.bytes, 16 * (TOPIC_LEN + 20));
	assert_int_equal(st.oldest_ms, T0 + 1);
	assert_int_equal(st.newest_ms, T0 + 16);
	assert_int_equal(st.next_seq, 17);
	assert_int_equal(st.dropped, 0);

	/* Seqs may skip: next_seq follows the last one. An empty payload is allowed. */
	{
		cg_outbox_row_t row = {
		    .seq = 40, .topic = TOPIC, .payload = NULL, .len = 0, .created_ms = T0 + 40};

		assert_int_equal(cg_outbox_put(ob, &row, 1), 0);
		assert_int_equal(cg_outbox_next_seq(ob), 41);
		assert_int_equal(cg_outbox_fetch(ob, 16, 0, 10, &rows, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(rows[0].seq, 40);
		assert_int_equal(rows[0].len, 0);
		assert_string_equal(rows[0].payload, "");
		cg_outbox_rows_free(rows, n);
	}
	assert_int_equal(cg_outbox_put(ob, NULL, 0), 0);
	cg_outbox_close(ob);
	check_integrity(path);
	/* newest_ms is read back at open and by peek: the gateway's store clock continues
	 * from it, and --status ages the oldest row by it. */
	ob = open_ok(path, NULL);
	st = stats_of(ob);
	assert_int_equal(st.newest_ms, T0 + 40);
	assert_int_equal(st.oldest_ms, T0 + 1);
	cg_outbox_close(ob);
	assert_int_equal(cg_outbox_peek(path, &st), 0);
	assert_int_equal(st.newest_ms, T0 + 40);
}

static void test_ack_updates_stats(void **state)
{
	cg_outbox_t *ob = open_ok(db_path("ack"), NULL);
	cg_outbox_row_t *rows = NULL;
	cg_outbox_stats_t st;
	int64_t some[] = {3, 5, 5, 1000, -7, INT64_MAX, INT64_MIN};
	size_t n = 0;

	assert_int_equal(put_range(ob, 1, 10, 100), 0);
	/* Fetched rows are copies: they stay valid after their rows are acked. */
	assert_int_equal(cg_outbox_fetch(ob, 0, 0, 10, &rows, &n), 0);
	assert_int_equal(n, 10);

	/* Duplicates and unknown seqs are ignored. */
	assert_int_equal(cg_outbox_ack(ob, some, 7), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 8);
	assert_int_equal(st.bytes, 8 * (TOPIC_LEN + 100));
	assert_int_equal(st.oldest_ms, T0 + 1);

	/* Acking the oldest moves oldest_ms to the next remaining row. */
	ack_range(ob, 1, 2);
	st = stats_of(ob);
	assert_int_equal(st.rows, 6);
	assert_int_equal(st.oldest_ms, T0 + 4);
	ack_range(ob, 4, 7);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.oldest_ms, 0);
	assert_int_equal(st.next_seq, 11);
	assert_int_equal(st.dropped, 0);

	/* A run of consecutive seqs over rows of different sizes, with one
	 * already gone, is deleted in one go and counted exactly. */
	assert_int_equal(put_range(ob, 11, 5, 50), 0);
	assert_int_equal(put_range(ob, 16, 5, 70), 0);
	ack_range(ob, 14, 1);
	ack_range(ob, 12, 7);
	st = stats_of(ob);
	assert_int_equal(st.rows, 3);
	assert_int_equal(st.bytes, (TOPIC_LEN + 50) + 2 * (TOPIC_LEN + 70));
	assert_int_equal(st.oldest_ms, T0 + 11);

	check_rows(rows, n, 1, 100);
	cg_outbox_rows_free(rows, n);
	assert_int_equal(cg_outbox_ack(ob, NULL, 0), 0);
	cg_outbox_close(ob);
}

static void test_fetch_paging(void **state)
{
	cg_outbox_t *ob = open_ok(db_path("paging"), NULL);
	cg_outbox_row_t *rows = NULL;
	int64_t after = 0, expect = 1;
	size_t n = 0, pages = 0;

	assert_int_equal(put_range(ob, 1, 250, 30), 0);
	do {
		assert_int_equal(cg_outbox_fetch(ob, after, 0, 64, &rows, &n), 0);
		check_rows(rows, n, expect, 30);
		if (n > 0) {
			after = rows[n - 1].seq;
			expect += (int64_t)n;
			pages++;
		}
		cg_outbox_rows_free(rows, n);
	} while (n == 64);
	assert_int_equal(expect, 251);
	assert_int_equal(pages, 4);

	/* A hole in the seqs (acked rows) is skipped. */
	ack_range(ob, 100, 50);
	assert_int_equal(cg_outbox_fetch(ob, 90, 0, 20, &rows, &n), 0);
	assert_int_equal(n, 20);
	check_rows(rows, 9, 91, 30);
	check_rows(rows + 9, 11, 150, 30);
	cg_outbox_rows_free(rows, n);
	assert_int_equal(cg_outbox_fetch(ob, 250, 0, 20, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(cg_outbox_fetch(ob, 0, 0, 0, &rows, &n), 0);
	assert_int_equal(n, 0);
	/* An upper bound keeps a backlog apart from newer rows. */
	assert_int_equal(cg_outbox_fetch(ob, 90, 95, 20, &rows, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(rows[0].seq, 91);
	assert_int_equal(rows[3].seq, 94);
	cg_outbox_rows_free(rows, n);
	assert_int_equal(cg_outbox_fetch(ob, 0, 0, 0, &rows, &n), 0);
	assert_int_equal(n, 0);
	cg_outbox_close(ob);
}

static void test_next_seq_persists(void **state)
{
	const char *path = db_path("next_seq");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_stats_t st;

	assert_int_equal(put_range(ob, 1, 10, 10), 0);
	assert_int_equal(put_range(ob, 500, 3, 10), 0);
	ack_range(ob, 1, 10);
	ack_range(ob, 500, 3);
	assert_int_equal(stats_of(ob).rows, 0);
	cg_outbox_close(ob);

	ob = open_ok(path, NULL);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.next_seq, 503);
	assert_int_equal(cg_outbox_next_seq(ob), 503);
	assert_int_equal(put_range(ob, 502, 1, 10), CG_EINVAL);
	assert_int_equal(put_range(ob, 503, 1, 10), 0);
	cg_outbox_close(ob);

	/* A meta row behind the rows (it cannot happen, but must not cause reuse). */
	exec_sql(path, "UPDATE meta SET value = 1 WHERE key = 'next_seq'");
	ob = open_ok(path, NULL);
	assert_int_equal(cg_outbox_next_seq(ob), 504);
	cg_outbox_close(ob);

	/* A store made before seq_limit existed: opened without a skip, and its first put
	 * reserves a block (the key is added). */
	exec_sql(path, "DELETE FROM meta WHERE key = 'seq_limit'");
	ob = open_ok(path, NULL);
	assert_int_equal(cg_outbox_next_seq(ob), 504);
	assert_int_equal(put_range(ob, 504, 1, 10), 0);
	cg_outbox_close(ob);
	exec_sql(path, "UPDATE meta SET value = value + 5000 WHERE key = 'seq_limit'");
	ob = open_ok(path, NULL);
	assert_int_equal(cg_outbox_next_seq(ob), 505 + 5000);
	cg_outbox_close(ob);
}

static void test_seq_refused(void **state)
{
	cg_outbox_t *ob = open_ok(db_path("seq_refused"), NULL);
	cg_outbox_row_t rows[3] = {
	    {.seq = 10, .topic = TOPIC, .payload = "a", .len = 1, .created_ms = T0},
	    {.seq = 12, .topic = TOPIC, .payload = "b", .len = 1, .created_ms = T0},
	    {.seq = 11, .topic = TOPIC, .payload = "c", .len = 1, .created_ms = T0},
	};
	cg_outbox_stats_t st;

	cg_log_set_level(CG_LOG_ERR - 1); /* the refusals are logged; keep the output clean */
	/* Not increasing within the batch: nothing is stored. */
	assert_int_equal(cg_outbox_put(ob, rows, 3), CG_EINVAL);
	rows[2].seq = 12;
	assert_int_equal(cg_outbox_put(ob, rows, 3), CG_EINVAL);
	assert_int_equal(stats_of(ob).rows, 0);
	assert_int_equal(cg_outbox_next_seq(ob), 1);

	rows[2].seq = 13;
	assert_int_equal(cg_outbox_put(ob, rows, 3), 0);
	assert_int_equal(cg_outbox_next_seq(ob), 14);
	/* Below next_seq, equal to a stored seq, or 0: refused. */
	assert_int_equal(cg_outbox_put(ob, rows, 1), CG_EINVAL);
	rows[0].seq = 13;
	assert_int_equal(cg_outbox_put(ob, rows, 1), CG_EINVAL);
	rows[0].seq = 0;
	assert_int_equal(cg_outbox_put(ob, rows, 1), CG_EINVAL);
	/* A row without a topic, or a payload pointer missing for len > 0. */
	rows[0].seq = 20;
	rows[0].topic = NULL;
	assert_int_equal(cg_outbox_put(ob, rows, 1), CG_EINVAL);
	rows[0].topic = TOPIC;
	rows[0].payload = NULL;
	assert_int_equal(cg_outbox_put(ob, rows, 1), CG_EINVAL);
	assert_int_equal(cg_outbox_put(ob, NULL, 1), CG_EINVAL);
	cg_log_set_level(CG_LOG_INFO);

	st = stats_of(ob);
	assert_int_equal(st.rows, 3);
	assert_int_equal(st.next_seq, 14);
	cg_outbox_close(ob);
}

static void test_max_rows(void **state)
{
	const char *path = db_path("max_rows");
	cg_outbox_opts_t opts = {.max_rows = 100};
	cg_outbox_t *ob = open_ok(path, &opts);
	cg_outbox_stats_t st;

	assert_int_equal(put_range(ob, 1, 100, 10), 0);
	assert_int_equal(stats_of(ob).dropped, 0);
	assert_int_equal(put_range(ob, 101, 30, 10), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 100);
	assert_int_equal(st.dropped, 30);
	assert_int_equal(st.oldest_ms, T0 + 31);
	assert_int_equal(st.bytes, 100 * (TOPIC_LEN + 10));
	check_contents(ob, 31, 100, 10);

	/* A batch larger than the limit keeps only its newest rows. */
	assert_int_equal(put_range(ob, 131, 150, 10), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 100);
	assert_int_equal(st.dropped, 180);
	check_contents(ob, 181, 100, 10);
	cg_outbox_close(ob);

	/* dropped is persisted; the limit keeps applying after a reopen. */
	ob = open_ok(path, &opts);
	st = stats_of(ob);
	assert_int_equal(st.rows, 100);
	assert_int_equal(st.dropped, 180);
	assert_int_equal(st.next_seq, 281);
	assert_int_equal(st.oldest_ms, T0 + 181);
	assert_int_equal(put_range(ob, 281, 1, 10), 0);
	assert_int_equal(stats_of(ob).dropped, 181);
	cg_outbox_close(ob);
	check_integrity(path);
}

static void test_max_bytes(void **state)
{
	const char *path = db_path("max_bytes");
	const int64_t row_bytes = TOPIC_LEN + 100;
	cg_outbox_opts_t opts = {.max_bytes = 10 * row_bytes + row_bytes / 2};
	cg_outbox_t *ob = open_ok(path, &opts);
	cg_outbox_stats_t st;

	assert_int_equal(put_range(ob, 1, 10, 100), 0);
	assert_int_equal(stats_of(ob).dropped, 0);
	assert_int_equal(put_range(ob, 11, 5, 100), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 10);
	assert_int_equal(st.bytes, 10 * row_bytes);
	assert_int_equal(st.dropped, 5);
	check_contents(ob, 6, 10, 100);

	/* A row that alone exceeds max_bytes evicts everything, itself included. */
	assert_int_equal(put_range(ob, 16, 1, 2000), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.oldest_ms, 0);
	assert_int_equal(st.dropped, 16);
	assert_int_equal(st.next_seq, 17);
	cg_outbox_close(ob);

	ob = open_ok(path, &opts);
	st = stats_of(ob);
	assert_int_equal(st.dropped, 16);
	assert_int_equal(st.next_seq, 17);
	/* A larger row takes the room of several small ones. */
	assert_int_equal(put_range(ob, 17, 10, 100), 0);
	assert_int_equal(put_range(ob, 27, 1, (size_t)(3 * row_bytes - TOPIC_LEN)), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 8);
	assert_int_equal(st.bytes, 10 * row_bytes);
	assert_int_equal(st.dropped, 19);
	assert_int_equal(st.oldest_ms, T0 + 20);
	cg_outbox_close(ob);
}

static void test_expire(void **state)
{
	const char *path = db_path("expire");
	cg_outbox_opts_t opts = {.max_age_s = 60};
	cg_outbox_t *ob = open_ok(path, &opts);
	cg_outbox_stats_t st;
	int64_t now = T0 + 1000 * 1000;

	/* Rows 1-10 made at T0, 11-20 at T0 + 100 s, 21-30 at T0 + 200 s. */
	assert_int_equal(put_range_at(ob, 1, 10, 10, T0), 0);
	assert_int_equal(put_range_at(ob, 11, 10, 10, T0 + 100000), 0);
	assert_int_equal(put_range_at(ob, 21, 10, 10, T0 + 200000), 0);
	assert_int_equal(stats_of(ob).oldest_ms, T0);

	/* At T0 + 60 s nothing is older than 60 s; at T0 + 160.001 s the first 20 are. */
	assert_int_equal(cg_outbox_expire(ob, T0 + 60000), 0);
	assert_int_equal(stats_of(ob).rows, 30);
	assert_int_equal(cg_outbox_expire(ob, T0 + 160001), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 10);
	assert_int_equal(st.dropped, 20);
	assert_int_equal(st.bytes, 10 * (TOPIC_LEN + 10));
	assert_int_equal(st.oldest_ms, T0 + 200000);
	cg_outbox_close(ob);

	/* Without max_age_s, expire does nothing; the dropped count survived. */
	ob = open_ok(path, NULL);
	assert_int_equal(cg_outbox_expire(ob, now), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 10);
	assert_int_equal(st.dropped, 20);
	cg_outbox_close(ob);

	ob = open_ok(path, &opts);
	assert_int_equal(cg_outbox_expire(ob, now), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.oldest_ms, 0);
	assert_int_equal(st.dropped, 30);
	assert_int_equal(st.next_seq, 31);
	cg_outbox_close(ob);
}

/* Expiry goes by seq: rows made after the clock stepped back wait behind the newer
 * rows before them. */
static void test_expire_by_seq(void **state)
{
	const char *path = db_path("expire_seq");
	cg_outbox_opts_t opts = {.max_age_s = 60};
	cg_outbox_t *ob = open_ok(path, &opts);
	cg_outbox_row_t *rows = NULL;
	cg_outbox_stats_t st;
	size_t n = 0;

	/* Rows 1-10 at T0, 11-20 at T0 + 200 s, 21-30 at T0 again (the clock stepped back). */
	assert_int_equal(put_range_at(ob, 1, 10, 10, T0), 0);
	assert_int_equal(put_range_at(ob, 11, 10, 10, T0 + 200000), 0);
	assert_int_equal(put_range_at(ob, 21, 10, 10, T0), 0);
	assert_int_equal(cg_outbox_expire(ob, T0 + 100000), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 20);
	assert_int_equal(st.dropped, 10);
	assert_int_equal(st.bytes, 20 * (TOPIC_LEN + 10));
	assert_int_equal(st.oldest_ms, T0 + 200000);
	assert_int_equal(cg_outbox_fetch(ob, 0, 0, 100, &rows, &n), 0);
	assert_int_equal(n, 20);
	assert_int_equal(rows[0].seq, 11);
	assert_int_equal(rows[19].seq, 30);
	cg_outbox_rows_free(rows, n);
	/* Once the newer rows are old enough, the ones behind them go too. */
	assert_int_equal(cg_outbox_expire(ob, T0 + 260001), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.dropped, 30);
	assert_int_equal(st.bytes, 0);
	cg_outbox_close(ob);
	check_integrity(path);
}

/* Runs a one-value query through a connection of the test's own. */
static int64_t query_value(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Fetches everything and checks the seqs are exactly want[0..n-1], each with the
 * content put_range() gives it. */
static void check_seqs(cg_outbox_t *ob, const int64_t *want, size_t n, size_t plen)
{
	cg_outbox_row_t *rows = NULL;
	size_t got = 0;

	assert_int_equal(cg_outbox_fetch(ob, 0, 0, SIZE_MAX, &rows, &got), 0);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++)
		check_rows(&rows[i], 1, want[i], plen);
	cg_outbox_rows_free(rows, got);
}

/* Readings are stored up to 64 a row: acks and limits that take part of a row are kept
 * across a reopen, fetch skips what is gone, and a row goes once nothing in it is held. */
static void test_partial_batches(void **state)
{
	const char *path = db_path("partial");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_stats_t st, peeked;
	int64_t odd[50], want[200];
	size_t n_want = 0;

	/* Seqs 1-200 in one put (rows 1-64, 65-128, 129-192, 193-200), then 300-302 after
	 * a gap, which start a row of their own. */
	assert_int_equal(put_range(ob, 1, 200, 30), 0);
	assert_int_equal(put_range(ob, 300, 3, 30), 0);
	assert_int_equal(query_value(path, "SELECT count(*) FROM batches"), 5);
	for (int i = 0; i < 50; i++)
		odd[i] = 2 * i + 1;
	assert_int_equal(cg_outbox_ack(ob, odd, 50), 0); /* the odd seqs of 1-100 */
	ack_range(ob, 150, 60);                          /* 150-209: past 200 is unknown */
	ack_range(ob, 301, 1);
	for (int64_t s = 2; s <= 100; s += 2)
		want[n_want++] = s;
	for (int64_t s = 101; s < 150; s++)
		want[n_want++] = s;
	want[n_want++] = 300;
	want[n_want++] = 302;
	st = stats_of(ob);
	assert_int_equal(st.rows, (int64_t)n_want);
	assert_int_equal(st.bytes, st.rows * (TOPIC_LEN + 30));
	assert_int_equal(st.oldest_ms, T0 + 2);
	/* Row 193-200 had nothing left and went; the others keep what is held. */
	assert_int_equal(query_value(path, "SELECT count(*) FROM batches"), 4);
	check_seqs(ob, want, n_want, 30);

	/* What is gone is on disk, not only in memory. */
	cg_outbox_close(ob);
	ob = open_ok(path, NULL);
	peeked = stats_of(ob);
	assert_memory_equal(&st, &peeked, sizeof(st));
	assert_int_equal(cg_outbox_peek(path, &peeked), 0);
	assert_memory_equal(&st, &peeked, sizeof(st));
	check_seqs(ob, want, n_want, 30);

	/* Fetch by cursor and bound within a row. */
	{
		cg_outbox_row_t *rows = NULL;
		size_t n = 0;

		/* 64, 66, ..., 100, then 101 and 102 across the row boundary at 128. */
		assert_int_equal(cg_outbox_fetch(ob, 63, 103, 100, &rows, &n), 0);
		assert_int_equal(n, 21);
		check_rows(&rows[0], 1, 64, 30);
		check_rows(&rows[1], 1, 66, 30);
		check_rows(&rows[18], 1, 100, 30);
		check_rows(&rows[20], 1, 102, 30);
		cg_outbox_rows_free(rows, n);
		assert_int_equal(cg_outbox_fetch(ob, 63, 0, 2, &rows, &n), 0);
		assert_int_equal(n, 2);
		check_rows(&rows[1], 1, 66, 30);
		cg_outbox_rows_free(rows, n);
	}

	/* max_rows drops the oldest held readings, part of a row included. */
	cg_outbox_close(ob);
	ob = open_ok(path, &(cg_outbox_opts_t){.max_rows = 50});
	assert_int_equal(put_range(ob, 400, 1, 30), 0);
	st = stats_of(ob);
	assert_int_equal(st.rows, 50);
	assert_int_equal(st.dropped, (int64_t)n_want + 1 - 50);
	assert_int_equal(st.oldest_ms, T0 + 103);
	n_want = 0;
	for (int64_t s = 103; s < 150; s++)
		want[n_want++] = s;
	want[n_want++] = 300;
	want[n_want++] = 302;
	want[n_want++] = 400;
	check_seqs(ob, want, n_want, 30);

	/* Acking the rest leaves no row behind. */
	ack_range(ob, 100, 301);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.oldest_ms, 0);
	assert_int_equal(query_value(path, "SELECT count(*) FROM batches"), 0);
	cg_outbox_close(ob);
	check_integrity(path);
}

/* A store of schema version 1 (a row per reading) is converted at open with every
 * reading kept, gaps in the seqs and the old index on created_ms included. */
static void test_convert_v1(void **state)
{
	const char *path = db_path("v1");
	char sql[4096];
	char payload[1501];
	int64_t want[] = {5, 6, 7, 9, 100};
	cg_outbox_stats_t st;
	cg_outbox_t *ob;

	exec_sql(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
	               " WITHOUT ROWID;"
	               "CREATE TABLE messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
	               " payload BLOB NOT NULL, created_ms INTEGER NOT NULL);"
	               "CREATE INDEX messages_created ON messages (created_ms);"
	               "INSERT INTO meta VALUES ('schema_version', 1), ('next_seq', 120),"
	               " ('dropped', 4);");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		fill_payload(payload, 1500, want[i]);
		payload[1500] = '\0';
		snprintf(sql, sizeof(sql),
		         "INSERT INTO messages VALUES (%lld, '%s', CAST('%s' AS BLOB), %lld)",
		         (long long)want[i], TOPIC, payload, (long long)(T0 + want[i]));
		exec_sql(path, sql);
	}
	/* citygate --status says what to do rather than misreading it. */
	cg_log_set_level(CG_LOG_ERR - 1);
	assert_int_equal(cg_outbox_peek(path, &st), CG_EDB);
	cg_log_set_level(CG_LOG_INFO);

	/* A conversion that finds the disk full (the batches need more pages than the old
	 * index frees) leaves the store as it was. */
	cg_log_set_level(CG_LOG_ERR - 1);
	ob = (cg_outbox_t *)1;
	assert_int_equal(cg_outbox_open(path, &(cg_outbox_opts_t){.max_page_count = 1}, &ob),
	                 CG_EFULL);
	assert_null(ob);
	cg_log_set_level(CG_LOG_INFO);
	assert_int_equal(query_value(path, "SELECT value FROM meta WHERE key = 'schema_version'"),
	                 1);

	ob = open_ok(path, NULL);
	st = stats_of(ob);
	assert_int_equal(st.rows, 5);
	assert_int_equal(st.bytes, 5 * (TOPIC_LEN + 1500));
	assert_int_equal(st.oldest_ms, T0 + 5);
	assert_int_equal(st.next_seq, 120);
	assert_int_equal(st.dropped, 4);
	check_seqs(ob, want, 5, 1500);
	assert_int_equal(query_value(path, "SELECT value FROM meta WHERE key = 'schema_version'"),
	                 2);
	assert_int_equal(query_value(path, "SELECT count(*) FROM sqlite_master WHERE name IN"
	                                   " ('messages', 'messages_created')"),
	                 0);
	/* 5-7, 9 and 100 are three rows. */
	assert_int_equal(query_value(path, "SELECT count(*) FROM batches"), 3);
	ack_range(ob, 6, 4);
	assert_int_equal(stats_of(ob).rows, 2);
	cg_outbox_close(ob);
	ob = open_ok(path, NULL);
	check_seqs(ob, (int64_t[]){5, 100}, 2, 1500);
	cg_outbox_close(ob);
	check_integrity(path);
}

static void test_sync_full(void **state)
{
	const char *path = db_path("sync_full");
	cg_outbox_opts_t opts = {.sync_full = true};
	cg_outbox_t *ob = open_ok(path, &opts);

	assert_int_equal(put_range(ob, 1, 50, 200), 0);
	ack_range(ob, 1, 25);
	check_contents(ob, 26, 25, 200);
	cg_outbox_close(ob);
	ob = open_ok(path, &opts);
	assert_int_equal(stats_of(ob).rows, 25);
	cg_outbox_close(ob);
	check_integrity(path);
}

/* Puts batches of 10 rows until the page limit refuses one; returns the next seq. */
static int64_t fill_until_full(cg_outbox_t *ob, int64_t seq)
{
	int i, err = 0;

	for (i = 0; i < 100000; i++) {
		err = put_range(ob, seq, 10, 500);
		if (err)
			break;
		seq += 10;
	}
	assert_int_equal(err, CG_EFULL);
	return seq;
}

static void test_full_page_limit(void **state)
{
	const char *path = db_path("full");
	cg_outbox_opts_t opts = {.max_page_count = 40};
	cg_outbox_t *ob = open_ok(path, &opts);
	cg_outbox_stats_t before, after;
	int64_t seq;

	capture_start();
	seq = fill_until_full(ob, 1);
	before = stats_of(ob);
	assert_true(before.rows > 10);
	assert_int_equal(before.rows, seq - 1);
	/* The refused batch left nothing, and changed no counter. */
	assert_int_equal(put_range(ob, seq, 10, 500), CG_EFULL);
	assert_int_equal(put_range(ob, seq, 10, 500), CG_EFULL);
	after = stats_of(ob);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(cg_outbox_next_seq(ob), seq);
	check_contents(ob, 1, (size_t)(seq - 1), 500);
	/* Logged once for the episode, not once per refused call. */
	assert_int_equal(capture_count("<4>outbox:"), 1);
	assert_int_equal(capture_count("<6>outbox:"), 0);

	/* Acking rows frees pages; the same connection accepts the batch again. */
	ack_range(ob, 1, 50);
	assert_int_equal(put_range(ob, seq, 10, 500), 0);
	assert_int_equal(capture_count("<6>outbox:"), 1);
	seq += 10;
	assert_int_equal(stats_of(ob).rows, before.rows - 40);
	check_contents(ob, 51, (size_t)(seq - 51), 500);

	/* A second episode is logged again. */
	seq = fill_until_full(ob, seq);
	assert_int_equal(capture_count("<4>outbox:"), 2);
	before = stats_of(ob);
	cg_outbox_close(ob);
	check_integrity(path);

	/* Reopening with the same limit works, and still refuses. */
	ob = open_ok(path, &opts);
	after = stats_of(ob);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(put_range(ob, seq, 10, 500), CG_EFULL);
	cg_outbox_close(ob);

	/* A higher limit takes effect at the next open. */
	opts.max_page_count = 400;
	ob = open_ok(path, &opts);
	assert_int_equal(put_range(ob, seq, 100, 500), 0);
	assert_int_equal(stats_of(ob).rows, before.rows + 100);
	check_contents(ob, 51, (size_t)(seq + 100 - 51), 500);
	cg_outbox_close(ob);
	capture_stop();
	check_integrity(path);
}

static void test_peek(void **state)
{
	const char *path = db_path("peek");
	cg_outbox_t *ob = open_ok(path, &(cg_outbox_opts_t){.max_rows = 50});
	cg_outbox_stats_t mem, peeked;
	sqlite3 *writer = NULL;
	struct stat sb;

	assert_int_equal(put_range(ob, 1, 60, 40), 0);
	ack_range(ob, 11, 5);
	mem = stats_of(ob);
	assert_int_equal(cg_outbox_peek(path, &peeked), 0);
	assert_memory_equal(&mem, &peeked, sizeof(mem));

	/* Another connection holding the write lock with uncommitted rows does not block
	 * peek, which sees the last commit. */
	assert_int_equal(sqlite3_open(path, &writer), SQLITE_OK);
	assert_int_equal(sqlite3_exec(writer,
	                              "BEGIN IMMEDIATE; INSERT INTO meta VALUES ('other', 1)", NULL,
	                              NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(cg_outbox_peek(path, &peeked), 0);
	assert_memory_equal(&mem, &peeked, sizeof(mem));
	assert_int_equal(sqlite3_exec(writer, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(writer);

	/* The daemon's connection keeps working after a peek. */
	assert_int_equal(put_range(ob, 61, 5, 40), 0);
	mem = stats_of(ob);
	assert_int_equal(cg_outbox_peek(path, &peeked), 0);
	assert_memory_equal(&mem, &peeked, sizeof(mem));
	cg_outbox_close(ob);

	/* After a clean close (no -wal or -shm left) and on a missing file. */
	assert_int_equal(cg_outbox_peek(path, &peeked), 0);
	assert_memory_equal(&mem, &peeked, sizeof(mem));
	cg_log_set_level(CG_LOG_ERR - 1);
	assert_int_equal(cg_outbox_peek(db_path("peek-missing"), &peeked), CG_ENOENT);
	cg_log_set_level(CG_LOG_INFO);
	assert_int_not_equal(stat(db_path("peek-missing"), &sb), 0);
}

static void test_crash_child(void **state)
{
	const char *path = db_path("crash");
	char wal[PATH_MAX + 8];
	cg_outbox_t *ob;
	cg_outbox_stats_t st;
	int status = 0;
	pid_t pid;

	/* The parent has nothing open across fork: SQLite connections must not cross it. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cg_outbox_t *child = NULL;
		int i;

		if (cg_outbox_open(path, NULL, &child) != 0)
			_exit(10);
		for (i = 0; i < 5; i++)
			if (put_range(child, 1 + i * 100, 100, 64) != 0)
				_exit(11);
		{
			int64_t acked[] = {1, 2, 3};

			if (cg_outbox_ack(child, acked, 3) != 0)
				_exit(12);
		}
		_exit(0); /* no close, no checkpoint: the rows are only in the WAL */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(access(wal, F_OK), 0);

	ob = open_ok(path, NULL);
	st = stats_of(ob);
	assert_int_equal(st.rows, 497);
	assert_int_equal(st.bytes, 497 * (TOPIC_LEN + 64));
	assert_int_equal(st.oldest_ms, T0 + 4);
	check_contents(ob, 4, 497, 64);
	/* The child did not close: it may have used any seq of the block it reserved (its
	 * first put reserved up to 1 + 100 + 1000), so the next seq starts past it. */
	assert_int_equal(st.next_seq, 1101);
	assert_int_equal(put_range(ob, 501, 1, 64), CG_EINVAL);
	assert_int_equal(put_range(ob, 1101, 1, 64), 0);
	cg_outbox_close(ob);
	check_integrity(path);

	/* A clean close gives the rest of the new block back: no gap at the next start. */
	ob = open_ok(path, NULL);
	assert_int_equal(cg_outbox_next_seq(ob), 1102);
	cg_outbox_close(ob);
}

/* Whether the captured log holds a line containing text. */
static bool capture_has(const char *text)
{
	char line[2048];
	bool found = false;
	FILE *f;

	fflush(stderr);
	f = fopen(capture_path, "r");
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

static void test_one_handle_per_store(void **state)
{
	const char *path = db_path("locked");
	cg_outbox_t *ob = open_ok(path, NULL), *other = (cg_outbox_t *)1;
	cg_outbox_stats_t st;
	char holder[64];

	assert_int_equal(put_range(ob, 1, 5, 10), 0);
	/* A second handle, from this process or another, is refused, naming the holder. */
	snprintf(holder, sizeof(holder), "in use by another citygate (pid %ld,", (long)getpid());
	capture_start();
	assert_int_equal(cg_outbox_open(path, NULL, &other), CG_EBUSY);
	capture_stop();
	assert_null(other);
	assert_true(capture_has(holder));
	/* The holder goes on; peek (citygate --status) takes no lock. */
	assert_int_equal(put_range(ob, 6, 5, 10), 0);
	assert_int_equal(cg_outbox_peek(path, &st), 0);
	assert_int_equal(st.rows, 10);
	cg_outbox_close(ob);

	/* Once closed, the store opens again. */
	ob = open_ok(path, NULL);
	assert_int_equal(stats_of(ob).rows, 10);
	cg_outbox_close(ob);
}

/* The store holds every undelivered reading: it and every file beside it are the
 * owner's only, also under umask 000. */
static void test_file_modes(void **state)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", ".lock"};
	const char *path = db_path("modes");
	char name[PATH_MAX + 8];
	mode_t old = umask(0);
	cg_outbox_t *ob = open_ok(path, NULL);
	struct stat sb;

	assert_int_equal(put_range(ob, 1, 100, 100), 0);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
		assert_int_equal(stat(name, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
	cg_outbox_close(ob);
	umask(old);
}

static void test_schema_refused(void **state)
{
	const char *path = db_path("schema");
	const char *foreign = db_path("foreign");
	const char *garbage = db_path("garbage");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_stats_t st;
	FILE *f;

	assert_int_equal(put_range(ob, 1, 3, 10), 0);
	cg_outbox_close(ob);
	exec_sql(path, "UPDATE meta SET value = 3 WHERE key = 'schema_version'");
	exec_sql(foreign, "CREATE TABLE other (x INTEGER)");
	f = fopen(garbage, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);

	capture_start();
	ob = (cg_outbox_t *)1;
	assert_int_equal(cg_outbox_open(path, NULL, &ob), CG_EDB);
	assert_null(ob);
	assert_int_equal(capture_count("<3>outbox:"), 1);
	assert_int_equal(cg_outbox_peek(path, &st), CG_EDB);
	assert_int_equal(cg_outbox_open(foreign, NULL, &ob), CG_EDB);
	assert_int_equal(cg_outbox_open(garbage, NULL, &ob), CG_EDB);
	assert_int_equal(cg_outbox_peek(garbage, &st), CG_EDB);
	assert_int_equal(cg_outbox_open(path, &(cg_outbox_opts_t){.max_rows = -1}, &ob), CG_EINVAL);
	assert_int_equal(capture_count("<3>outbox:"), 6);
	capture_stop();

	/* The refused file was not modified: the version is still the unknown one. */
	exec_sql(path, "UPDATE meta SET value = 2 WHERE key = 'schema_version'");
	ob = open_ok(path, NULL);
	assert_int_equal(stats_of(ob).rows, 3);
	cg_outbox_close(ob);
	cg_outbox_close(NULL);
}

/* Finds seq in a quarantine list; NULL when it is not there. */
static const cg_outbox_dead_t *dead_find(const cg_outbox_dead_t *d, size_t n, int64_t seq)
{
	for (size_t i = 0; i < n; i++)
		if (d[i].seq == seq)
			return &d[i];
	return NULL;
}

/* Fetches every held seq into held[seq] (seqs below max). */
static void fetch_held(cg_outbox_t *ob, bool *held, int64_t max)
{
	cg_outbox_row_t *rows = NULL;
	size_t n = 0;

	assert_int_equal(cg_outbox_fetch(ob, 0, 0, SIZE_MAX, &rows, &n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(rows[i].seq > 0 && rows[i].seq < max);
		assert_false(held[rows[i].seq]);
		if (i > 0)
			assert_true(rows[i].seq > rows[i - 1].seq);
		held[rows[i].seq] = true;
	}
	cg_outbox_rows_free(rows, n);
}

/* Checks that every seq from 1 to last is either held or in quarantine, never both,
 * and that each reading in quarantine has a reason. */
static void check_accounted(cg_outbox_t *ob, const char *path, int64_t last)
{
	bool *held = calloc((size_t)last + 1, sizeof(*held));
	cg_outbox_dead_t *d = NULL;
	size_t n = 0;

	assert_non_null(held);
	fetch_held(ob, held, last + 1);
	assert_int_equal(cg_outbox_quarantine_list(path, &d, &n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(d[i].seq >= 1 && d[i].seq <= last);
		assert_false(held[d[i].seq]);
		assert_true(d[i].reason && *d[i].reason);
		held[d[i].seq] = true;
	}
	for (int64_t seq = 1; seq <= last; seq++)
		assert_true(held[seq]);
	assert_int_equal(stats_of(ob).quarantined, (int64_t)n);
	cg_outbox_dead_free(d, n);
	free(held);
}

/* One reading of a batch goes to quarantine: the others of its batch and those after it
 * are fetched, it keeps its seq, topic and payload, survives a reopen, and comes back
 * when an operator asks: into its old batch while that is there, as a batch of its own
 * once that is gone. */
/* The quarantine holds a tenth of max_rows at most: a broker refusing every
 * reading for days cannot fill the disk through it. The oldest go, counted as
 * dropped, and a reopen sees the same counts. */
static void test_quarantine_bounded(void **state)
{
	const char *path = db_path("quarantine-bounded");
	cg_outbox_opts_t opts = {.max_rows = 30};
	cg_outbox_t *ob = open_ok(path, &opts);
	cg_outbox_dead_t *d = NULL;
	cg_outbox_stats_t st;
	size_t n = 0;

	assert_int_equal(put_range(ob, 1, 20, 20), 0);
	for (int64_t seq = 1; seq <= 8; seq++)
		assert_int_equal(cg_outbox_quarantine(ob, seq, "refused", T0 + 500 + seq), 0);
	st = stats_of(ob);
	assert_int_equal(st.quarantined, 3);
	assert_int_equal(st.dropped, 5);
	assert_int_equal(st.rows, 12);
	assert_int_equal(cg_outbox_quarantine_list(path, &d, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(d[0].seq, 6);
	assert_int_equal(d[2].seq, 8);
	cg_outbox_dead_free(d, n);
	cg_outbox_close(ob);
	ob = open_ok(path, &opts);
	st = stats_of(ob);
	assert_int_equal(st.quarantined, 3);
	assert_int_equal(st.dropped, 5);
	cg_outbox_close(ob);
}

static void test_quarantine(void **state)
{
	const char *path = db_path("quarantine");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_dead_t *d = NULL;
	cg_outbox_row_t *rows = NULL;
	cg_outbox_stats_t st;
	size_t n = 0, marked = 0, retried = 0, dropped = 0;
	int64_t lowest = 0;
	char want[20];

	assert_int_equal(put_range(ob, 1, 100, 20), 0);
	assert_int_equal(cg_outbox_quarantine(ob, 10, "refused: invalid topic", T0 + 500), 0);
	assert_int_equal(cg_outbox_quarantine(ob, 70, "too large", T0 + 501), 0);
	assert_int_equal(cg_outbox_quarantine(ob, 10, "again", T0 + 502), CG_ENOENT);
	assert_int_equal(cg_outbox_quarantine(ob, 500, "unknown", T0 + 502), CG_ENOENT);
	st = stats_of(ob);
	assert_int_equal(st.rows, 98);
	assert_int_equal(st.bytes, 98 * (TOPIC_LEN + 20));
	assert_int_equal(st.quarantined, 2);
	check_accounted(ob, path, 100);

	assert_int_equal(cg_outbox_quarantine_list(path, &d, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(d[0].seq, 10);
	assert_string_equal(d[0].reason, "refused: invalid topic");
	assert_string_equal(d[0].topic, TOPIC);
	fill_payload(want, 20, 10);
	assert_int_equal(d[0].len, 20);
	assert_memory_equal(d[0].payload, want, 20);
	assert_int_equal(d[0].created_ms, T0 + 10);
	assert_int_equal(d[0].quarantined_ms, T0 + 500);
	assert_int_equal(d[1].seq, 70);
	cg_outbox_dead_free(d, n);

	cg_outbox_close(ob);
	ob = open_ok(path, NULL);
	st = stats_of(ob);
	assert_int_equal(st.rows, 98);
	assert_int_equal(st.quarantined, 2);
	assert_int_equal(st.next_seq, 101);

	/* Retry while its batch is there: it is fetched in seq order with its neighbours. */
	assert_int_equal(cg_outbox_quarantine_mark(path, 70, CG_OUTBOX_RETRY, &marked), 0);
	assert_int_equal(marked, 1);
	assert_int_equal(cg_outbox_quarantine_apply(ob, &lowest, &retried, &dropped), 0);
	assert_int_equal(lowest, 70);
	assert_int_equal(retried, 1);
	assert_int_equal(dropped, 0);
	assert_int_equal(stats_of(ob).rows, 99);
	assert_int_equal(cg_outbox_fetch(ob, 68, 72, 10, &rows, &n), 0);
	assert_int_equal(n, 3);
	check_rows(rows, n, 69, 20);
	cg_outbox_rows_free(rows, n);

	/* Retry once its batch has gone: a batch of its own. */
	ack_range(ob, 1, 100);
	assert_int_equal(stats_of(ob).rows, 0);
	assert_int_equal(cg_outbox_quarantine_mark(path, 0, CG_OUTBOX_RETRY, &marked), 0);
	assert_int_equal(marked, 1);
	assert_int_equal(cg_outbox_quarantine_apply(ob, &lowest, &retried, &dropped), 0);
	assert_int_equal(lowest, 10);
	st = stats_of(ob);
	assert_int_equal(st.rows, 1);
	assert_int_equal(st.quarantined, 0);
	assert_int_equal(st.oldest_ms, T0 + 10);
	check_contents(ob, 10, 1, 20);

	/* Drop. Nothing marked: apply changes nothing. */
	assert_int_equal(cg_outbox_quarantine(ob, 10, "refused again", T0 + 600), 0);
	assert_int_equal(cg_outbox_quarantine_apply(ob, &lowest, &retried, &dropped), 0);
	assert_int_equal(lowest, INT64_MAX);
	assert_int_equal(stats_of(ob).quarantined, 1);
	assert_int_equal(cg_outbox_quarantine_mark(path, 0, CG_OUTBOX_DROP, &marked), 0);
	assert_int_equal(cg_outbox_quarantine_apply(ob, &lowest, &retried, &dropped), 0);
	assert_int_equal(dropped, 1);
	st = stats_of(ob);
	assert_int_equal(st.rows, 0);
	assert_int_equal(st.quarantined, 0);
	assert_int_equal(st.next_seq, 101);
	assert_int_equal(cg_outbox_quarantine_list(path, &d, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(cg_outbox_peek(path, &st), 0);
	assert_int_equal(st.quarantined, 0);
	cg_outbox_close(ob);
	check_integrity(path);
}

/* A batch whose data is shorter than its idx says, found at open: its readings go to
 * quarantine with the reason (those that lie within the data keep their copies), one
 * log line, and the rest of the store opens and is fetched. */
static void test_damaged_at_open(void **state)
{
	const char *path = db_path("damaged_open");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_dead_t *d = NULL;
	cg_outbox_stats_t st;
	size_t n = 0;

	assert_int_equal(put_range(ob, 1, 100, 20), 0);
	ack_range(ob, 3, 1);
	cg_outbox_close(ob);
	exec_sql(path, "UPDATE batches SET data = substr(data, 1, length(data) - 5)"
	               " WHERE first_seq = 1");
	assert_int_equal(cg_outbox_peek(path, &st), 0);
	assert_int_equal(st.rows, 36);

	capture_start();
	ob = open_ok(path, NULL);
	assert_int_equal(capture_count("<4>outbox:"), 1);
	capture_stop();
	st = stats_of(ob);
	assert_int_equal(st.rows, 36);
	assert_int_equal(st.quarantined, 63); /* seq 3 was acknowledged */
	assert_int_equal(st.next_seq, 101);
	assert_int_equal(cg_outbox_quarantine_list(path, &d, &n), 0);
	assert_int_equal(n, 63);
	assert_null(dead_find(d, n, 3));
	assert_non_null(strstr(dead_find(d, n, 1)->reason, "damaged row"));
	assert_string_equal(dead_find(d, n, 63)->topic, TOPIC);
	assert_null(dead_find(d, n, 64)->topic);
	cg_outbox_dead_free(d, n);
	{
		bool held[101] = {false};

		fetch_held(ob, held, 101);
		for (int64_t seq = 65; seq <= 100; seq++)
			assert_true(held[seq]);
	}
	cg_outbox_close(ob);
	check_integrity(path);
}

/* Damage while the store is open: an idx of the wrong size met by a fetch, and by an
 * ack whose scan passes it. Each call goes on after moving the batch to quarantine, and
 * no seq is unaccounted. */
static void test_damaged_at_runtime(void **state)
{
	const char *path = db_path("damaged_run");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_stats_t st;
	bool held[201] = {false};

	assert_int_equal(put_range(ob, 1, 200, 20), 0);
	exec_sql(path, "UPDATE batches SET idx = x'00' WHERE first_seq = 65");
	capture_start();
	fetch_held(ob, held, 201);
	for (int64_t seq = 1; seq <= 200; seq++)
		assert_int_equal(held[seq], seq < 65 || seq > 128);
	assert_int_equal(capture_count("<4>outbox:"), 1);
	assert_int_equal(capture_count("<3>"), 0);
	capture_stop();
	st = stats_of(ob);
	assert_int_equal(st.rows, 136);
	assert_int_equal(st.quarantined, 64);
	check_accounted(ob, path, 200);

	/* The first batch damaged, read_oldest() in every ack passes it: an idx cut short
	 * goes to quarantine; a wrong n, with idx and data agreeing, is rebuilt from them. */
	exec_sql(path, "UPDATE batches SET idx = substr(idx, 2) WHERE first_seq = 1");
	ack_range(ob, 130, 5);
	st = stats_of(ob);
	assert_int_equal(st.rows, 136 - 64 - 5);
	assert_int_equal(st.quarantined, 128);
	assert_int_equal(st.oldest_ms, T0 + 129);
	capture_start();
	exec_sql(path, "UPDATE batches SET n = 99 WHERE first_seq = 129");
	ack_range(ob, 140, 1);
	assert_int_equal(capture_count("<4>outbox:"), 1);
	capture_stop();
	st = stats_of(ob);
	assert_int_equal(st.quarantined, 128);
	assert_int_equal(st.rows, 64 - 5 - 1 + 8);
	memset(held, 0, sizeof(held));
	fetch_held(ob, held, 201);
	for (int64_t seq = 129; seq <= 200; seq++)
		assert_int_equal(held[seq], seq != 140 && (seq < 130 || seq > 134));
	cg_outbox_close(ob);
	ob = open_ok(path, NULL);
	assert_int_equal(stats_of(ob).rows, 64 - 5 - 1 + 8);
	cg_outbox_close(ob);
}

/* Damaged counters are rebuilt from the rows at open, with a log line each, instead of
 * refusing to start; a seq is never reused, even when every reading is in quarantine. */
static void test_damaged_counters(void **state)
{
	const char *path = db_path("counters");
	cg_outbox_t *ob = open_ok(path, NULL);
	cg_outbox_stats_t st;

	assert_int_equal(put_range(ob, 1, 10, 20), 0);
	assert_int_equal(cg_outbox_quarantine(ob, 10, "refused", T0), 0);
	ack_range(ob, 1, 9);
	cg_outbox_close(ob);
	exec_sql(path, "DELETE FROM meta WHERE key = 'next_seq';"
	               "UPDATE meta SET value = 'x' WHERE key = 'dropped'");
	capture_start();
	ob = open_ok(path, NULL);
	assert_int_equal(capture_count("<4>outbox:"), 2);
	capture_stop();
	st = stats_of(ob);
	assert_int_equal(st.next_seq, 11);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.quarantined, 1);
	cg_outbox_close(ob);

	exec_sql(path, "UPDATE meta SET value = 3 WHERE key = 'next_seq'");
	capture_start();
	ob = open_ok(path, NULL);
	assert_int_equal(capture_count("<4>outbox:"), 1);
	capture_stop();
	assert_int_equal(cg_outbox_next_seq(ob), 11);
	assert_int_equal(put_range(ob, 10, 1, 20), CG_EINVAL);
	assert_int_equal(put_range(ob, 11, 1, 20), 0);
	cg_outbox_close(ob);
	capture_start();
	ob = open_ok(path, NULL);
	assert_int_equal(capture_count("<4>outbox:"), 0);
	capture_stop();

	/* A row's gone bits beyond its n: rebuilt, every reading of it held again (a
	 * duplicate is recognisable, a loss is not). */
	assert_int_equal(put_range(ob, 12, 10, 20), 0);
	ack_range(ob, 12, 3);
	cg_outbox_close(ob);
	exec_sql(path, "UPDATE batches SET gone = gone | 1048576 WHERE first_seq = 12");
	capture_start();
	ob = open_ok(path, NULL);
	assert_int_equal(capture_count("<4>outbox:"), 1);
	capture_stop();
	st = stats_of(ob);
	assert_int_equal(st.rows, 1 + 10);
	assert_int_equal(st.quarantined, 1);
	cg_outbox_close(ob);
}

/* Removes the temporary directory and the files in it. */
static int remove_tmp_dir(void)
{
	char path[PATH_MAX * 2];
	struct dirent *de;
	DIR *d = opendir(tmp_dir);

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmp_dir);
}

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmp_dir, sizeof(tmp_dir), "%s/cg-outbox-XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(tmp_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	return remove_tmp_dir();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_put_fetch_order),
	    cmocka_unit_test(test_ack_updates_stats),
	    cmocka_unit_test(test_fetch_paging),
	    cmocka_unit_test(test_next_seq_persists),
	    cmocka_unit_test(test_seq_refused),
	    cmocka_unit_test(test_max_rows),
	    cmocka_unit_test(test_max_bytes),
	    cmocka_unit_test(test_expire),
	    cmocka_unit_test(test_expire_by_seq),
	    cmocka_unit_test(test_partial_batches),
	    cmocka_unit_test(test_convert_v1),
	    cmocka_unit_test(test_sync_full),
	    cmocka_unit_test(test_full_page_limit),
	    cmocka_unit_test(test_peek),
	    cmocka_unit_test(test_crash_child),
	    cmocka_unit_test(test_one_handle_per_store),
	    cmocka_unit_test(test_file_modes),
	    cmocka_unit_test(test_schema_refused),
	    cmocka_unit_test(test_quarantine),
	    cmocka_unit_test(test_quarantine_bounded),
	    cmocka_unit_test(test_damaged_at_open),
	    cmocka_unit_test(test_damaged_at_runtime),
	    cmocka_unit_test(test_damaged_counters),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
