/* The outbox: readings kept in an SQLite file (WAL, batched commits) until the broker acks them. */
#include "outbox.h"

#include "error.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The only schema this code reads and writes; a file with another version is refused. */
#define OB_SCHEMA_VERSION 1
/* How long a statement waits for a lock held by another connection before failing. */
#define OB_BUSY_TIMEOUT_MS 5000
/* A WAL that grew during a burst is cut back to this size after a checkpoint. */
#define OB_JOURNAL_SIZE_LIMIT (4 * 1024 * 1024)

/* What a row counts for against max_bytes: the bytes of its topic and payload. The
 * cast makes length() count bytes, not characters, of a UTF-8 topic. */
#define OB_ROW_SIZE "length(CAST(topic AS BLOB)) + length(payload)"

/* The schema of version 1, created in one transaction in an empty file. There is no
 * index on created_ms: rows are made in seq order, so cg_outbox_expire() finds the
 * expired ones from the oldest seq on, and an index would cost every insert and every
 * delete a second B-tree update (about a quarter of the outbox's time per reading,
 * measured with bench_outbox). Stores made before kept one; opening drops it. */
static const char ob_schema_sql[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
    " payload BLOB NOT NULL, created_ms INTEGER NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('next_seq', 1),"
    " ('dropped', 0);";

/* Rows inserted by one statement: running a statement costs SQLite about as much
 * again as the insert itself, so a batch goes in groups of 16 rows (callgrind,
 * bench_outbox queue: 5,900 instructions per row put one by one, 4,400 in groups). */
#define OB_GROUP        16
#define OB_INSERT       "INSERT INTO messages (seq, topic, payload, created_ms) VALUES "
#define OB_ROW_VALUES   "(?, ?, ?, ?)"
#define OB_VALUES_4     OB_ROW_VALUES ", " OB_ROW_VALUES ", " OB_ROW_VALUES ", " OB_ROW_VALUES
#define OB_GROUP_VALUES OB_VALUES_4 ", " OB_VALUES_4 ", " OB_VALUES_4 ", " OB_VALUES_4
_Static_assert(sizeof(OB_GROUP_VALUES) ==
                   OB_GROUP * (sizeof(OB_ROW_VALUES) - 1) + (OB_GROUP - 1) * 2 + 1,
               "OB_GROUP_VALUES must hold OB_GROUP rows");

/* The statements prepared once at open and kept for the connection's life. */
enum ob_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_INSERT_GROUP,
	ST_SET_META,
	ST_WALK,
	ST_DELETE_UPTO,
	ST_RANGE_SIZE,
	ST_DELETE_RANGE,
	ST_EXPIRE,
	ST_OLDEST,
	ST_FETCH,
	ST_COUNT
};

static const char *const ob_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] = (OB_INSERT OB_ROW_VALUES),
    [ST_INSERT_GROUP] = (OB_INSERT OB_GROUP_VALUES),
    [ST_SET_META] = "UPDATE meta SET value = ?2 WHERE key = ?1",
    [ST_WALK] = "SELECT seq, " OB_ROW_SIZE " FROM messages ORDER BY seq",
    [ST_DELETE_UPTO] = "DELETE FROM messages WHERE seq <= ?1",
    [ST_RANGE_SIZE] = ("SELECT count(*), coalesce(sum(" OB_ROW_SIZE "), 0) FROM messages"
                       " WHERE seq BETWEEN ?1 AND ?2"),
    [ST_DELETE_RANGE] = "DELETE FROM messages WHERE seq BETWEEN ?1 AND ?2",
    /* The rows before the oldest one made at or after the cutoff: a scan from the
     * oldest seq that stops at the first row young enough. */
    [ST_EXPIRE] = ("DELETE FROM messages WHERE seq < coalesce((SELECT seq FROM messages"
                   " WHERE created_ms >= ?1 ORDER BY seq LIMIT 1), 9223372036854775807)"
                   " RETURNING " OB_ROW_SIZE),
    [ST_OLDEST] = "SELECT created_ms FROM messages ORDER BY seq LIMIT 1",
    [ST_FETCH] = ("SELECT seq, topic, payload, created_ms FROM messages WHERE seq > ?1"
                  " AND seq < ?3 ORDER BY seq LIMIT ?2"),
};

/* A repeating condition that is logged when it starts and, with a count, when it ends. */
struct ob_episode {
	bool active;
	int64_t count;
};

struct cg_outbox {
	sqlite3 *db;
	char *path;
	cg_outbox_opts_t opts;
	/* Bus workers put while the publisher fetches and acks: one lock makes every call on
	 * the handle atomic, transactions included, and lets the connection run without
	 * SQLite's own mutex. */
	pthread_mutex_t lock;
	sqlite3_stmt *st[ST_COUNT];
	/* The committed state, kept in memory so that stats and limits need no query. */
	int64_t rows;
	int64_t bytes;
	int64_t oldest_ms;
	int64_t next_seq;
	int64_t dropped;
	struct ob_episode full;     /* puts refused because the disk or page limit is full */
	struct ob_episode evicting; /* rows dropped by max_rows or max_bytes */
	struct ob_episode expiring; /* rows dropped by max_age_s */
};

/* The lock is not part of the logical state, so the const accessors may take it. */
static void ob_lock(const cg_outbox_t *ob)
{
	pthread_mutex_lock((pthread_mutex_t *)&ob->lock);
}

static void ob_unlock(const cg_outbox_t *ob)
{
	pthread_mutex_unlock((pthread_mutex_t *)&ob->lock);
}

/* Maps an SQLite result code to a CG_E* code, for paths that have no open handle. */
static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return 0;
	case SQLITE_FULL: return CG_EFULL;
	case SQLITE_NOMEM: return CG_ENOMEM;
	case SQLITE_CANTOPEN: return CG_EIO;
	}
	return CG_EDB;
}

/* Turns a failed SQLite call on the handle into a CG_E* code and logs it. A full disk
 * or page limit is logged once when it starts, not on every refused call, since the
 * caller retries the same rows until space is freed; the episode ends at the next put
 * that succeeds. Must run before a rollback, which would replace the error message. */
static int db_fail(cg_outbox_t *ob, const char *what, int rc)
{
	if ((rc & 0xff) == SQLITE_FULL) {
		if (!ob->full.active)
			cg_log(CG_LOG_WARNING,
			       "outbox: %s: %s: %s; new rows are refused until space is freed",
			       ob->path, what, sqlite3_errmsg(ob->db));
		ob->full.active = true;
		ob->full.count++;
		return CG_EFULL;
	}
	cg_log(CG_LOG_ERR, "outbox: %s: %s: %s", ob->path, what, sqlite3_errmsg(ob->db));
	return map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
}

/* Steps a statement that returns no rows and resets it. Returns SQLite's code:
 * SQLITE_DONE on success. The reset keeps the error message for db_fail(). */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc;
}

/* Ends a transaction that failed. SQLite may already have rolled it back by itself
 * (it does on some SQLITE_FULL cases), so roll back only if one is still open. */
static void rollback(cg_outbox_t *ob)
{
	int rc;

	if (sqlite3_get_autocommit(ob->db))
		return;
	rc = run(ob->st[ST_ROLLBACK]);
	if (rc != SQLITE_DONE)
		cg_log(CG_LOG_ERR, "outbox: %s: rollback: %s", ob->path, sqlite3_errmsg(ob->db));
}

/* Runs a one-value query through a transient statement (for open and peek, which run
 * rarely). Returns SQLITE_OK with *out set, SQLITE_NOTFOUND when there is no row, or
 * SQLite's error code. */
static int query_int64(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Checks that db holds a citygate outbox of the schema version this code knows. A
 * database without any table sets *empty and returns 0, so that the caller may create
 * the schema; a foreign database or an unknown version is refused with CG_EDB and a
 * logged reason, so that a newer store is never altered by older code. */
static int check_schema(sqlite3 *db, const char *path, bool *empty)
{
	int64_t tables = 0, version = 0;
	int rc;

	*empty = false;
	rc = query_int64(db, "SELECT count(*) FROM sqlite_master", &tables);
	if (rc != SQLITE_OK)
		goto db_error;
	if (tables == 0) {
		*empty = true;
		return 0;
	}
	rc = query_int64(
	    db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
	    &tables);
	if (rc != SQLITE_OK)
		goto db_error;
	if (tables == 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: not a citygate outbox (it has no meta table)",
		       path);
		return CG_EDB;
	}
	rc = query_int64(db, "SELECT value FROM meta WHERE key = 'schema_version'", &version);
	if (rc == SQLITE_NOTFOUND) {
		cg_log(CG_LOG_ERR, "outbox: %s: not a citygate outbox (no schema version)", path);
		return CG_EDB;
	}
	if (rc != SQLITE_OK)
		goto db_error;
	if (version != OB_SCHEMA_VERSION) {
		cg_log(CG_LOG_ERR,
		       "outbox: %s: schema version %lld is unknown to this build (it knows %d); "
		       "refusing to touch it",
		       path, (long long)version, OB_SCHEMA_VERSION);
		return CG_EDB;
	}
	return 0;

db_error:
	cg_log(CG_LOG_ERR, "outbox: %s: reading the schema: %s", path, sqlite3_errmsg(db));
	return map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
}

/* Reads the counters of a store by queries: one pass over the rows for their count,
 * bytes and largest seq, then the meta values and the oldest row through the primary
 * key. Used once at open and by peek; the caller holds a read or write transaction so
 * that the values agree with each other. */
static int read_counts(sqlite3 *db, const char *path, cg_outbox_stats_t *st)
{
	sqlite3_stmt *q;
	int64_t max_seq = 0, meta_next = 1;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = sqlite3_prepare_v2(db,
	                        "SELECT count(*), coalesce(sum(" OB_ROW_SIZE "), 0),"
	                        " coalesce(max(seq), 0) FROM messages",
	                        -1, &q, NULL);
	if (rc != SQLITE_OK)
		goto db_error;
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		st->rows = sqlite3_column_int64(q, 0);
		st->bytes = sqlite3_column_int64(q, 1);
		max_seq = sqlite3_column_int64(q, 2);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_OK)
		goto db_error;

	rc = query_int64(db, "SELECT value FROM meta WHERE key = 'next_seq'", &meta_next);
	if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
		goto db_error;
	rc = query_int64(db, "SELECT value FROM meta WHERE key = 'dropped'", &st->dropped);
	if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
		goto db_error;
	rc =
	    query_int64(db, "SELECT created_ms FROM messages ORDER BY seq LIMIT 1", &st->oldest_ms);
	if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
		goto db_error;

	/* meta.next_seq is written with the rows, so it is never behind; taking the larger
	 * of the two all the same means a damaged meta row can never cause a reused seq. */
	st->next_seq = meta_next > max_seq + 1 ? meta_next : max_seq + 1;
	if (st->next_seq < 1)
		st->next_seq = 1;
	return 0;

db_error:
	cg_log(CG_LOG_ERR, "outbox: %s: reading the counters: %s", path, sqlite3_errmsg(db));
	return map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
}

/* Sets the connection's pragmas; they are per connection and so set at every open. */
static int configure(cg_outbox_t *ob)
{
	char sql[80];
	sqlite3_stmt *q;
	const unsigned char *mode;
	int rc;
	bool wal;

	/* The journal mode is the one pragma whose answer matters: a file system without
	 * shared memory support silently keeps the rollback journal, and then peek would
	 * block the writer. */
	rc = sqlite3_prepare_v2(ob->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return db_fail(ob, "journal_mode", rc);
	rc = sqlite3_step(q);
	mode = rc == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
	wal = mode && strcmp((const char *)mode, "wal") == 0;
	if (rc != SQLITE_ROW) {
		rc = db_fail(ob, "journal_mode", rc);
		sqlite3_finalize(q);
		return rc;
	}
	sqlite3_finalize(q);
	if (!wal) {
		cg_log(CG_LOG_ERR, "outbox: %s: the file system does not allow WAL journaling",
		       ob->path);
		return CG_EDB;
	}

	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s",
	         ob->opts.sync_full ? "FULL" : "NORMAL");
	rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(ob, "synchronous", rc);
	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d", OB_JOURNAL_SIZE_LIMIT);
	rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(ob, "journal_size_limit", rc);
	if (ob->opts.max_page_count > 0) {
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
		         (long long)ob->opts.max_page_count);
		rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return db_fail(ob, "max_page_count", rc);
	}
	return 0;
}

/* Creates the schema in an empty file, or checks the one found. This runs in a write
 * transaction so that two processes opening a new file at once cannot both create it. */
static int setup_schema(cg_outbox_t *ob)
{
	bool empty;
	int rc, err;

	rc = sqlite3_exec(ob->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(ob, "opening", rc);
	err = check_schema(ob->db, ob->path, &empty);
	if (err)
		goto rollback;
	if (empty) {
		rc = sqlite3_exec(ob->db, ob_schema_sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			err = db_fail(ob, "creating the schema", rc);
			goto rollback;
		}
		cg_log(CG_LOG_INFO, "outbox: %s: created a new store", ob->path);
	} else {
		rc =
		    sqlite3_exec(ob->db, "DROP INDEX IF EXISTS messages_created", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			err = db_fail(ob, "dropping the old index", rc);
			goto rollback;
		}
	}
	rc = sqlite3_exec(ob->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = db_fail(ob, "creating the schema", rc);
		goto rollback;
	}
	return 0;

rollback:
	if (!sqlite3_get_autocommit(ob->db))
		sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

/* Opens the store: the connection and its pragmas, the schema, the statements kept for
 * the connection's life, and the counters read once so that later calls need no count
 * query. Every failure is logged and leaves nothing open. */
int cg_outbox_open(const char *path, const cg_outbox_opts_t *opts, cg_outbox_t **out)
{
	static const cg_outbox_opts_t defaults;
	cg_outbox_stats_t st;
	cg_outbox_t *ob;
	int rc, err, i;

	if (!path || !out)
		return CG_EINVAL;
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (opts->max_rows < 0 || opts->max_bytes < 0 || opts->max_age_s < 0 ||
	    opts->max_page_count < 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: negative limit", path);
		return CG_EINVAL;
	}

	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return CG_ENOMEM;
	pthread_mutex_init(&ob->lock, NULL);
	ob->opts = *opts;
	ob->path = strdup(path);
	if (!ob->path) {
		err = CG_ENOMEM;
		goto close_ob;
	}

	rc = sqlite3_open_v2(
	    path, &ob->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		cg_log(CG_LOG_ERR, "outbox: %s: cannot open: %s", path,
		       ob->db ? sqlite3_errmsg(ob->db) : sqlite3_errstr(rc));
		err = rc == SQLITE_NOMEM ? CG_ENOMEM : CG_EIO;
		goto close_ob;
	}
	sqlite3_busy_timeout(ob->db, OB_BUSY_TIMEOUT_MS);
	err = configure(ob);
	if (err)
		goto close_ob;
	err = setup_schema(ob);
	if (err)
		goto close_ob;

	for (i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(ob->db, ob_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &ob->st[i], NULL);
		if (rc != SQLITE_OK) {
			err = db_fail(ob, "preparing statements", rc);
			goto close_ob;
		}
	}

	rc = sqlite3_exec(ob->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = db_fail(ob, "reading the counters", rc);
		goto close_ob;
	}
	err = read_counts(ob->db, ob->path, &st);
	sqlite3_exec(ob->db, err ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
	if (err)
		goto close_ob;
	ob->rows = st.rows;
	ob->bytes = st.bytes;
	ob->oldest_ms = st.oldest_ms;
	ob->next_seq = st.next_seq;
	ob->dropped = st.dropped;

	*out = ob;
	return 0;

close_ob:
	cg_outbox_close(ob);
	return err;
}

/* Closes the connection; SQLite checkpoints the WAL into the database file when the
 * last connection closes. Accepts NULL and a handle that open left half built. */
void cg_outbox_close(cg_outbox_t *ob)
{
	int i;

	if (!ob)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(ob->st[i]);
	if (ob->db && sqlite3_close(ob->db) != SQLITE_OK)
		cg_log(CG_LOG_ERR, "outbox: %s: close: %s", ob->path, sqlite3_errmsg(ob->db));
	pthread_mutex_destroy(&ob->lock);
	free(ob->path);
	free(ob);
}

int64_t cg_outbox_next_seq(const cg_outbox_t *ob)
{
	int64_t seq;

	if (!ob)
		return 0;
	ob_lock(ob);
	seq = ob->next_seq;
	ob_unlock(ob);
	return seq;
}

/* Writes one meta value; the caller holds the write transaction. */
static int set_meta(cg_outbox_t *ob, const char *key, int64_t value)
{
	sqlite3_stmt *st = ob->st[ST_SET_META];

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	return run(st);
}

/* Reads the created_ms of the oldest row, which is the row with the smallest seq, so
 * the primary key finds it without a scan. 0 when the outbox is empty. */
static int read_oldest(cg_outbox_t *ob, int64_t *oldest_ms)
{
	sqlite3_stmt *st = ob->st[ST_OLDEST];
	int rc;

	*oldest_ms = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*oldest_ms = sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(st);
	return rc;
}

static bool over_limits(const cg_outbox_t *ob, int64_t rows, int64_t bytes)
{
	return (ob->opts.max_rows > 0 && rows > ob->opts.max_rows) ||
	       (ob->opts.max_bytes > 0 && bytes > ob->opts.max_bytes);
}

/* Deletes the oldest rows until *rows and *bytes are within max_rows and max_bytes,
 * adjusting them and adding the number deleted to *evicted. It walks the rows in seq
 * order only as far as needed, then deletes that prefix with one range delete. The
 * caller holds the write transaction. Returns SQLITE_DONE or SQLite's error. */
static int evict_oldest(cg_outbox_t *ob, int64_t *rows, int64_t *bytes, int64_t *evicted)
{
	sqlite3_stmt *walk = ob->st[ST_WALK];
	sqlite3_stmt *del = ob->st[ST_DELETE_UPTO];
	int64_t cut = 0, count = 0;
	int rc = SQLITE_DONE;

	while (over_limits(ob, *rows, *bytes)) {
		rc = sqlite3_step(walk);
		if (rc != SQLITE_ROW)
			break;
		cut = sqlite3_column_int64(walk, 0);
		*rows -= 1;
		*bytes -= sqlite3_column_int64(walk, 1);
		count++;
	}
	sqlite3_reset(walk);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc;
	if (count == 0)
		return SQLITE_DONE;
	sqlite3_bind_int64(del, 1, cut);
	rc = run(del);
	if (rc == SQLITE_DONE)
		*evicted += count;
	return rc;
}

/* Validates a batch before any write: topics present, payload present unless empty,
 * seqs strictly increasing from at least next_seq, so that a seq is never reused. */
static int check_batch(const cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n)
{
	int64_t min = ob->next_seq;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!rows[i].topic || (!rows[i].payload && rows[i].len > 0)) {
			cg_log(CG_LOG_ERR, "outbox: %s: row %zu has no topic or payload", ob->path,
			       i);
			return CG_EINVAL;
		}
		if (rows[i].seq < min || rows[i].seq == INT64_MAX) {
			cg_log(CG_LOG_ERR,
			       "outbox: %s: refused seq %lld (the next must be >= %lld)", ob->path,
			       (long long)rows[i].seq, (long long)min);
			return CG_EINVAL;
		}
		min = rows[i].seq + 1;
	}
	return 0;
}

/* Logs the start of a repeating condition with a warning, and adds n to its count. */
static void episode_add(struct ob_episode *ep, int64_t n, const char *path, const char *what)
{
	if (!ep->active)
		cg_log(CG_LOG_WARNING, "outbox: %s: %s; dropping the oldest rows", path, what);
	ep->active = true;
	ep->count += n;
}

/* Logs the end of a repeating condition, with its count, and resets it. */
static void episode_end(struct ob_episode *ep, const char *path, const char *what)
{
	if (!ep->active)
		return;
	cg_log(CG_LOG_INFO, "outbox: %s: %s; %lld rows were dropped", path, what,
	       (long long)ep->count);
	ep->active = false;
	ep->count = 0;
}

/* Binds one row's four values from parameter first + 1 on. */
static void bind_row(sqlite3_stmt *st, int first, const cg_outbox_row_t *row)
{
	sqlite3_bind_int64(st, first + 1, row->seq);
	sqlite3_bind_text(st, first + 2, row->topic, -1, SQLITE_STATIC);
	/* A NULL pointer would bind SQL NULL; an empty payload is a zero-length blob. */
	sqlite3_bind_blob64(st, first + 3, row->payload ? row->payload : "", row->len,
	                    SQLITE_STATIC);
	sqlite3_bind_int64(st, first + 4, row->created_ms);
}

/* Inserts the rows, OB_GROUP at a time while that many are left, adding their sizes
 * to *bytes. Returns SQLite's code, SQLITE_DONE on success. The statements keep no
 * pointers into the caller's rows afterwards. */
static int insert_rows(cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n, int64_t *bytes)
{
	int rc = SQLITE_DONE;

	for (size_t i = 0; i < n && rc == SQLITE_DONE;) {
		size_t k = n - i >= OB_GROUP ? OB_GROUP : 1;
		sqlite3_stmt *st = ob->st[k > 1 ? ST_INSERT_GROUP : ST_INSERT];

		for (size_t j = 0; j < k; j++, i++) {
			bind_row(st, (int)j * 4, &rows[i]);
			*bytes += (int64_t)(strlen(rows[i].topic) + rows[i].len);
		}
		rc = run(st);
	}
	sqlite3_clear_bindings(ob->st[ST_INSERT]);
	sqlite3_clear_bindings(ob->st[ST_INSERT_GROUP]);
	return rc;
}

/* Stores a batch in one transaction: the rows (insert_rows), nothing else per row, then
 * next_seq, then eviction down to the limits, all committed together so that a crash
 * keeps either all of it or none. The in-memory counters change only after the commit,
 * so a failed put (CG_EFULL included) leaves the handle exactly as before it, and the
 * connection usable. */
int cg_outbox_put(cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n)
{
	int64_t new_rows, new_bytes, oldest_ms, evicted = 0, next_seq;
	int rc, err;

	if (!ob || (!rows && n > 0))
		return CG_EINVAL;
	if (n == 0)
		return 0;
	ob_lock(ob);
	err = check_batch(ob, rows, n);
	if (err)
		goto unlock;

	rc = run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE) {
		err = db_fail(ob, "put", rc);
		goto unlock;
	}
	new_rows = ob->rows + (int64_t)n;
	new_bytes = ob->bytes;
	rc = insert_rows(ob, rows, n, &new_bytes);
	if (rc != SQLITE_DONE)
		goto rollback;

	next_seq = rows[n - 1].seq + 1;
	rc = set_meta(ob, "next_seq", next_seq);
	if (rc != SQLITE_DONE)
		goto rollback;
	if (over_limits(ob, new_rows, new_bytes)) {
		rc = evict_oldest(ob, &new_rows, &new_bytes, &evicted);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	if (evicted > 0) {
		rc = set_meta(ob, "dropped", ob->dropped + evicted);
		if (rc != SQLITE_DONE)
			goto rollback;
		rc = read_oldest(ob, &oldest_ms);
		if (rc != SQLITE_DONE)
			goto rollback;
	} else {
		oldest_ms = ob->rows == 0 ? rows[0].created_ms : ob->oldest_ms;
	}
	rc = run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		goto rollback;

	ob->rows = new_rows;
	ob->bytes = new_bytes;
	ob->oldest_ms = oldest_ms;
	ob->next_seq = next_seq;
	ob->dropped += evicted;
	if (ob->full.active) {
		cg_log(CG_LOG_INFO, "outbox: %s: accepting rows again after %lld refused calls",
		       ob->path, (long long)ob->full.count);
		ob->full.active = false;
		ob->full.count = 0;
	}
	if (evicted > 0)
		episode_add(&ob->evicting, evicted, ob->path, "max_rows or max_bytes reached");
	else
		episode_end(&ob->evicting, ob->path, "back within max_rows and max_bytes");
	err = 0;
	goto unlock;

rollback:
	err = db_fail(ob, "put", rc);
	rollback(ob);
unlock:
	ob_unlock(ob);
	return err;
}

/* Deletes the acknowledged rows from seq first to last, adding those that existed to
 * *rows and *bytes. Their count and size are read by the primary key just before the
 * delete: a DELETE ... RETURNING would say the same in one statement, but measured here
 * it makes an ack about five times slower, as each run of it sets up a table for the
 * returned rows. */
static int ack_range(cg_outbox_t *ob, int64_t first, int64_t last, int64_t *rows, int64_t *bytes)
{
	sqlite3_stmt *size = ob->st[ST_RANGE_SIZE];
	sqlite3_stmt *del = ob->st[ST_DELETE_RANGE];
	int64_t n = 0, n_bytes = 0;
	int rc;

	sqlite3_bind_int64(size, 1, first);
	sqlite3_bind_int64(size, 2, last);
	rc = sqlite3_step(size);
	if (rc == SQLITE_ROW) {
		n = sqlite3_column_int64(size, 0);
		n_bytes = sqlite3_column_int64(size, 1);
	}
	sqlite3_reset(size);
	if (rc != SQLITE_ROW)
		return rc;
	if (n == 0)
		return SQLITE_DONE; /* unknown seqs, nothing to delete */
	sqlite3_bind_int64(del, 1, first);
	sqlite3_bind_int64(del, 2, last);
	rc = run(del);
	if (rc == SQLITE_DONE) {
		*rows += n;
		*bytes += n_bytes;
	}
	return rc;
}

/* Deletes acknowledged rows by seq in one transaction, keeping the counters exact. An
 * unknown seq (already acked, or evicted by a limit) is ignored. */
int cg_outbox_ack(cg_outbox_t *ob, const int64_t *seqs, size_t n)
{
	int64_t rows = 0, bytes = 0, oldest_ms;
	size_t i, j;
	int rc, err;

	if (!ob || (!seqs && n > 0))
		return CG_EINVAL;
	if (n == 0)
		return 0;
	ob_lock(ob);
	rc = run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE) {
		err = db_fail(ob, "ack", rc);
		goto unlock;
	}
	/* Acknowledgements come in order, so the list is mostly one run of consecutive
	 * seqs: each run is deleted as a range, a statement per run rather than per row. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && seqs[j - 1] < INT64_MAX && seqs[j] == seqs[j - 1] + 1; j++)
			;
		rc = ack_range(ob, seqs[i], seqs[j - 1], &rows, &bytes);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	oldest_ms = ob->oldest_ms;
	if (rows > 0) {
		rc = read_oldest(ob, &oldest_ms);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	rc = run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		goto rollback;
	ob->rows -= rows;
	ob->bytes -= bytes;
	ob->oldest_ms = oldest_ms;
	err = 0;
	goto unlock;

rollback:
	err = db_fail(ob, "ack", rc);
	rollback(ob);
unlock:
	ob_unlock(ob);
	return err;
}

/* Copies the current row of a fetch into row, which owns its copies: the topic as a
 * string and the payload with a NUL after its len bytes, for callers that treat it as
 * text. On failure row holds nothing that needs freeing. */
static int copy_row(sqlite3_stmt *st, cg_outbox_row_t *row)
{
	const unsigned char *topic = sqlite3_column_text(st, 1);
	size_t topic_len = (size_t)sqlite3_column_bytes(st, 1);
	const void *payload = sqlite3_column_blob(st, 2);
	size_t len = (size_t)sqlite3_column_bytes(st, 2);

	row->seq = sqlite3_column_int64(st, 0);
	row->created_ms = sqlite3_column_int64(st, 3);
	row->topic = malloc(topic_len + 1);
	row->payload = malloc(len + 1);
	if (!row->topic || !row->payload) {
		free(row->topic);
		free(row->payload);
		row->topic = NULL;
		row->payload = NULL;
		return CG_ENOMEM;
	}
	if (topic_len > 0)
		memcpy(row->topic, topic, topic_len);
	row->topic[topic_len] = '\0';
	if (len > 0)
		memcpy(row->payload, payload, len);
	row->payload[len] = '\0';
	row->len = len;
	return 0;
}

/* Returns copies of up to max rows after after_seq, oldest first. The array is sized by
 * the smaller of max and the rows held, which the in-memory count gives exactly. */
int cg_outbox_fetch(cg_outbox_t *ob, int64_t after_seq, int64_t before_seq, size_t max,
                    cg_outbox_row_t **rows, size_t *n)
{
	cg_outbox_row_t *out = NULL;
	sqlite3_stmt *st;
	size_t cap, count = 0;
	int rc = SQLITE_DONE, err = 0;

	if (!ob || !rows || !n)
		return CG_EINVAL;
	*rows = NULL;
	*n = 0;
	ob_lock(ob);
	cap = ob->rows > 0 ? (size_t)ob->rows : 0;
	if (max < cap)
		cap = max;
	if (cap == 0)
		goto unlock;
	out = calloc(cap, sizeof(*out));
	if (!out) {
		err = CG_ENOMEM;
		goto unlock;
	}
	st = ob->st[ST_FETCH];
	sqlite3_bind_int64(st, 1, after_seq);
	sqlite3_bind_int64(st, 2, (int64_t)cap);
	sqlite3_bind_int64(st, 3, before_seq > 0 ? before_seq : INT64_MAX);
	while (count < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		err = copy_row(st, &out[count]);
		if (err)
			break;
		count++;
	}
	if (!err && count < cap && rc != SQLITE_DONE)
		err = db_fail(ob, "fetch", rc);
	sqlite3_reset(st);
	if (err)
		goto free_out;
	if (count == 0) {
		free(out);
		out = NULL;
	}
	*rows = out;
	*n = count;
	goto unlock;

free_out:
	cg_outbox_rows_free(out, count);
unlock:
	ob_unlock(ob);
	return err;
}

void cg_outbox_rows_free(cg_outbox_row_t *rows, size_t n)
{
	size_t i;

	if (!rows)
		return;
	for (i = 0; i < n; i++) {
		free(rows[i].topic);
		free(rows[i].payload);
	}
	free(rows);
}

/* Runs a DELETE ... RETURNING size statement to the end, adding the rows it deleted
 * and their bytes. Returns SQLITE_DONE or SQLite's error. RETURNING has a cost per run,
 * not per row, so it suits the one range delete of an expiry. */
static int delete_counted(sqlite3_stmt *st, int64_t *rows, int64_t *bytes)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*rows += 1;
		*bytes += sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	return rc;
}

/* Deletes the rows created before now_ms - max_age_s and counts them as dropped, in one
 * transaction with the persisted dropped count. Rows go oldest seq first: a row made
 * after the clock stepped back waits behind the newer rows before it. The scan stops
 * at the first row young enough, so with nothing to expire it reads one row. */
int cg_outbox_expire(cg_outbox_t *ob, int64_t now_ms)
{
	int64_t cutoff, rows = 0, bytes = 0, oldest_ms;
	int rc, err = 0;

	if (!ob)
		return CG_EINVAL;
	ob_lock(ob);
	/* No limit, an age no clock can reach, or nothing stored: nothing to do. */
	if (ob->opts.max_age_s == 0 || ob->opts.max_age_s > INT64_MAX / 1000 ||
	    now_ms < INT64_MIN + ob->opts.max_age_s * 1000 || ob->rows == 0)
		goto unlock;
	cutoff = now_ms - ob->opts.max_age_s * 1000;

	rc = run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE) {
		err = db_fail(ob, "expire", rc);
		goto unlock;
	}
	sqlite3_bind_int64(ob->st[ST_EXPIRE], 1, cutoff);
	rc = delete_counted(ob->st[ST_EXPIRE], &rows, &bytes);
	if (rc != SQLITE_DONE)
		goto rollback;
	oldest_ms = ob->oldest_ms;
	if (rows > 0) {
		rc = set_meta(ob, "dropped", ob->dropped + rows);
		if (rc != SQLITE_DONE)
			goto rollback;
		rc = read_oldest(ob, &oldest_ms);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	rc = run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		goto rollback;
	ob->rows -= rows;
	ob->bytes -= bytes;
	ob->dropped += rows;
	ob->oldest_ms = oldest_ms;
	if (rows > 0)
		episode_add(&ob->expiring, rows, ob->path, "rows older than max_age_s");
	else
		episode_end(&ob->expiring, ob->path, "no rows older than max_age_s any more");
	goto unlock;

rollback:
	err = db_fail(ob, "expire", rc);
	rollback(ob);
unlock:
	ob_unlock(ob);
	return err;
}

int cg_outbox_stats(const cg_outbox_t *ob, cg_outbox_stats_t *st)
{
	if (!ob || !st)
		return CG_EINVAL;
	ob_lock(ob);
	st->rows = ob->rows;
	st->bytes = ob->bytes;
	st->oldest_ms = ob->oldest_ms;
	st->next_seq = ob->next_seq;
	st->dropped = ob->dropped;
	ob_unlock(ob);
	return 0;
}

/* Reads the stats of a store that a daemon may have open, through a read-only
 * connection. In WAL mode a reader takes no lock that a writer waits for, so this
 * neither blocks nor is blocked by the daemon's commits; it sees the last commit. The
 * queries run in one read transaction so that the numbers agree with each other. */
int cg_outbox_peek(const char *path, cg_outbox_stats_t *st)
{
	struct stat sb;
	sqlite3 *db = NULL;
	bool empty;
	int rc, err;

	if (!path || !st)
		return CG_EINVAL;
	if (stat(path, &sb) != 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: %s", path, strerror(errno));
		return errno == ENOENT ? CG_ENOENT : CG_EIO;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		cg_log(CG_LOG_ERR, "outbox: %s: cannot open read-only: %s", path,
		       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		err = rc == SQLITE_NOMEM ? CG_ENOMEM : CG_EIO;
		goto close_db;
	}
	sqlite3_busy_timeout(db, OB_BUSY_TIMEOUT_MS);
	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		cg_log(CG_LOG_ERR, "outbox: %s: %s", path, sqlite3_errmsg(db));
		err = map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
		goto close_db;
	}
	err = check_schema(db, path, &empty);
	if (!err && empty) {
		cg_log(CG_LOG_ERR, "outbox: %s: not a citygate outbox (it is empty)", path);
		err = CG_EDB;
	}
	if (!err)
		err = read_counts(db, path, st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
close_db:
	sqlite3_close(db);
	return err;
}
