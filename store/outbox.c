/* The outbox: readings kept in an SQLite file (WAL, batched commits) until the broker acks them. */
#include "store/outbox.h"
#include "store/outbox_private.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The only schema this code writes. Version 1 kept a row per reading; a store of that
 * version is converted when it is opened, and a newer version is refused. */
#define OB_SCHEMA_VERSION 2
/* A WAL that grew during a burst is cut back to this size after a checkpoint. */
#define OB_JOURNAL_SIZE_LIMIT (4 * 1024 * 1024)
/* seqs are reserved this many at a time. With synchronous = NORMAL a power cut can take
 * back the last commits, next_seq with them, so next_seq alone cannot keep a seq that
 * was committed (and maybe published) from being given again. meta.seq_limit is larger
 * than every seq committed, and the commit that raises it is flushed to the disk (one
 * fsync per block, whatever store.sync says); a start after an unclean stop begins at
 * it, skipping at most a block of seqs that were never used. A clean close gives the
 * unused rest of the block back, so that a clean restart leaves no gap. */
#define OB_SEQ_BLOCK 1000

/* Readings that could not be sent, moved aside with their seq (cg_outbox_quarantine);
 * topic and payload are NULL when nothing of a damaged row could be recovered. action
 * is what an operator asked for (CG_OUTBOX_RETRY, CG_OUTBOX_DROP), carried out by the
 * process that owns the outbox. A table of its own, created in any store opened, so
 * that the batches' layout and the schema version stay as they are: a build without
 * quarantine ignores it. */
#define OB_QUARANTINE_SQL                                                                          \
	"CREATE TABLE IF NOT EXISTS quarantine (seq INTEGER PRIMARY KEY,"                          \
	" created_ms INTEGER NOT NULL, quarantined_ms INTEGER NOT NULL, reason TEXT NOT NULL,"     \
	" topic BLOB, payload BLOB, action INTEGER NOT NULL DEFAULT 0);"

/* The schema, created in one transaction in an empty file. */
static const char ob_schema_sql[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;" OB_BATCHES_SQL
    "INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('next_seq', 1),"
    " ('dropped', 0), ('seq_limit', 1);";

static const char *const ob_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] = "INSERT INTO batches (first_seq, n, gone, idx, data) VALUES (?1, ?2, 0, ?3, ?4)",
    /* An upsert: stores made before seq_limit existed lack that key. */
    [ST_SET_META] = ("INSERT INTO meta (key, value) VALUES (?1, ?2)"
                     " ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
    /* The batches that may hold a seq from ?1 + OB_BATCH to ?2, a batch holding at most
     * OB_BATCH: callers pass ?1 as the lowest seq wanted minus OB_BATCH (ob_scan_floor). */
    [ST_SCAN] = ("SELECT first_seq, n, gone, idx FROM batches WHERE first_seq > ?1"
                 " AND first_seq <= ?2 ORDER BY first_seq"),
    [ST_SET_GONE] = "UPDATE batches SET gone = ?2 WHERE first_seq = ?1",
    [ST_DELETE_RANGE] = "DELETE FROM batches WHERE first_seq BETWEEN ?1 AND ?2",
    [ST_FETCH] = ("SELECT first_seq, n, gone, idx, data FROM batches WHERE first_seq > ?1"
                  " AND first_seq < ?2 ORDER BY first_seq"),
};

/* The lock is not part of the logical state, so the const accessors may take it. */
void ob_lock(const cg_outbox_t *ob)
{
	pthread_mutex_lock((pthread_mutex_t *)&ob->lock);
}

void ob_unlock(const cg_outbox_t *ob)
{
	pthread_mutex_unlock((pthread_mutex_t *)&ob->lock);
}

/* Maps an SQLite result code to a CG_E* code, for paths that have no open handle. */
int ob_map_rc(int rc)
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
 * that succeeds. Other errors are logged at most once a second, since a caller may
 * retry at once (the sender does every loop). Must run before a rollback, which would
 * replace the error message. */
int ob_db_fail(cg_outbox_t *ob, const char *what, int rc)
{
	unsigned long held = 0;
	/* A malformed batch or a failed allocation of ours is found by this code, not by
	 * SQLite, whose last message would then be about something else. */
	const char *msg = (sqlite3_errcode(ob->db) & 0xff) == (rc & 0xff) ? sqlite3_errmsg(ob->db)
	                                                                  : sqlite3_errstr(rc);

	/* A damaged batch is moved to quarantine by the next call, which logs it. */
	if ((rc & 0xff) == SQLITE_CORRUPT && ob->damaged)
		return CG_EDB;
	if ((rc & 0xff) == SQLITE_FULL) {
		if (!ob->full.active)
			cg_log(CG_LOG_WARNING,
			       "outbox: %s: %s: %s; new rows are refused until space is freed",
			       ob->path, what, msg);
		ob->full.active = true;
		ob->full.count++;
		return CG_EFULL;
	}
	if (!cg_log_allow(&ob->fail_limit, cg_mono_ms(), &held))
		; /* counted into the next line that is allowed */
	else if (held)
		cg_log(CG_LOG_ERR, "outbox: %s: %s: %s (and %lu errors held back since the last)",
		       ob->path, what, msg, held);
	else
		cg_log(CG_LOG_ERR, "outbox: %s: %s: %s", ob->path, what, msg);
	return ob_map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
}

/* Steps a statement that returns no rows and resets it. Returns SQLite's code:
 * SQLITE_DONE on success. The reset keeps the error message for ob_db_fail(). */
int ob_run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc;
}

/* Ends a transaction that failed. SQLite may already have rolled it back by itself
 * (it does on some SQLITE_FULL cases), so roll back only if one is still open. */
void ob_rollback(cg_outbox_t *ob)
{
	int rc;

	if (sqlite3_get_autocommit(ob->db))
		return;
	rc = ob_run(ob->st[ST_ROLLBACK]);
	if (rc != SQLITE_DONE)
		cg_log(CG_LOG_ERR, "outbox: %s: rollback: %s", ob->path, sqlite3_errmsg(ob->db));
}

/* Runs a one-value query through a transient statement (for open and peek, which run
 * rarely). Returns SQLITE_OK with *out set, SQLITE_NOTFOUND when there is no row, or
 * SQLite's error code. */
int ob_query_int64(sqlite3 *db, const char *sql, int64_t *out)
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

/* idx's integers are little-endian whatever the host, so that a store can move between
 * machines; on a little-endian host these are plain loads and stores. */
static void put_le64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/* The bits of the first n readings of a batch. */
uint64_t ob_all_bits(int n)
{
	return n >= 64 ? UINT64_MAX : ((uint64_t)1 << n) - 1;
}

int64_t ob_entry_created(const struct ob_batch *b, int i)
{
	return (int64_t)get_le64(b->idx + i * OB_IDX_SIZE);
}

size_t ob_entry_topic_len(const struct ob_batch *b, int i)
{
	return get_le32(b->idx + i * OB_IDX_SIZE + 8);
}

size_t ob_entry_payload_len(const struct ob_batch *b, int i)
{
	return get_le32(b->idx + i * OB_IDX_SIZE + 12);
}

/* What reading i counts for against max_bytes: its topic's and its payload's bytes. */
int64_t ob_entry_size(const struct ob_batch *b, int i)
{
	return (int64_t)(ob_entry_topic_len(b, i) + ob_entry_payload_len(b, i));
}

/* The smallest seq worth scanning for batches holding seq or later ones. */
int64_t ob_scan_floor(int64_t seq)
{
	return seq > INT64_MIN + OB_BATCH ? seq - OB_BATCH : INT64_MIN;
}

/* Reads the first four columns of a scan or fetch row (first_seq, n, gone, idx) and
 * checks that they agree, so that nothing after reads beyond idx. SQLITE_CORRUPT for a
 * row this code did not write. */
static int read_batch(sqlite3_stmt *st, struct ob_batch *b)
{
	int64_t n = sqlite3_column_int64(st, 1);

	b->first = sqlite3_column_int64(st, 0);
	b->gone = (uint64_t)sqlite3_column_int64(st, 2);
	b->idx = sqlite3_column_blob(st, 3);
	if (n < 1 || n > OB_BATCH || b->first > INT64_MAX - n ||
	    sqlite3_column_bytes(st, 3) != n * OB_IDX_SIZE || (b->gone & ~ob_all_bits((int)n)))
		return SQLITE_CORRUPT;
	b->n = (int)n;
	return SQLITE_ROW;
}

/* read_batch() for the handle's scans: a damaged batch is noted, so that the next call
 * moves it to quarantine (ob_repair_damaged) instead of every call failing on it. */
int ob_read_batch_of(cg_outbox_t *ob, sqlite3_stmt *st, struct ob_batch *b)
{
	int rc = read_batch(st, b);

	if (rc == SQLITE_CORRUPT && !ob->damaged) {
		ob->damaged = true;
		ob->damaged_first = b->first;
	}
	return rc;
}

/* Notes what to do with a batch once the scan that read it is over. */
int ob_note_change(cg_outbox_t *ob, const struct ob_batch *b, uint64_t gone)
{
	struct ob_change *c;

	if (ob->n_changes == ob->cap_changes) {
		size_t cap = ob->cap_changes ? ob->cap_changes * 2 : 64;

		c = realloc(ob->changes, cap * sizeof(*c));
		if (!c)
			return SQLITE_NOMEM;
		ob->changes = c;
		ob->cap_changes = cap;
	}
	c = &ob->changes[ob->n_changes++];
	c->first = b->first;
	c->gone = gone;
	c->kind = gone == ob_all_bits(b->n) ? CH_DELETE : gone != b->gone ? CH_UPDATE : CH_NONE;
	return SQLITE_DONE;
}

/* Applies the noted changes: a batch that still holds readings gets its new gone bits,
 * and each run of batches with none left, consecutive in the scan, goes in one range
 * delete. The caller holds the write transaction. */
int ob_apply_changes(cg_outbox_t *ob)
{
	sqlite3_stmt *del = ob->st[ST_DELETE_RANGE];
	sqlite3_stmt *upd = ob->st[ST_SET_GONE];
	size_t i = 0, j, n = ob->n_changes;
	int rc = SQLITE_DONE;

	ob->n_changes = 0;
	while (i < n && rc == SQLITE_DONE) {
		const struct ob_change *c = &ob->changes[i];

		if (c->kind == CH_DELETE) {
			for (j = i + 1; j < n && ob->changes[j].kind == CH_DELETE; j++)
				;
			sqlite3_bind_int64(del, 1, c->first);
			sqlite3_bind_int64(del, 2, ob->changes[j - 1].first);
			rc = ob_run(del);
			i = j;
			continue;
		}
		if (c->kind == CH_UPDATE) {
			sqlite3_bind_int64(upd, 1, c->first);
			sqlite3_bind_int64(upd, 2, (int64_t)c->gone);
			rc = ob_run(upd);
		}
		i++;
	}
	return rc;
}

/* Forgets the batch being built. */
static void reset_batch(cg_outbox_t *ob)
{
	ob->batch_n = 0;
	ob->batch_idx.len = 0;
	ob->batch_data.len = 0;
	ob->batch_idx.failed = ob->batch_data.failed = false;
}

/* Stores the batch being built, if any, through ins and starts a new one. */
int ob_flush_batch(cg_outbox_t *ob, sqlite3_stmt *ins)
{
	int rc = SQLITE_DONE;

	if (ob->batch_n == 0)
		return rc;
	if (cg_buf_failed(&ob->batch_idx) || cg_buf_failed(&ob->batch_data)) {
		rc = SQLITE_NOMEM;
	} else {
		sqlite3_bind_int64(ins, 1, ob->batch_first);
		sqlite3_bind_int(ins, 2, ob->batch_n);
		sqlite3_bind_blob(ins, 3, ob->batch_idx.data, (int)ob->batch_idx.len,
		                  SQLITE_STATIC);
		/* An empty buffer has no data pointer, which would bind SQL NULL. */
		sqlite3_bind_blob64(ins, 4, ob->batch_data.len ? ob->batch_data.data : "",
		                    ob->batch_data.len, SQLITE_STATIC);
		rc = ob_run(ins);
		sqlite3_clear_bindings(ins);
	}
	reset_batch(ob);
	return rc;
}

/* Adds a reading to the batch being built, storing that batch first if it is full or
 * the seq does not follow on. The data is copied, so the pointers may be transient. */
int ob_add_to_batch(cg_outbox_t *ob, sqlite3_stmt *ins, int64_t seq, int64_t created_ms,
                    const void *topic, size_t topic_len, const void *payload, size_t len)
{
	unsigned char e[OB_IDX_SIZE];
	int rc = SQLITE_DONE;

	if (ob->batch_n == OB_BATCH || (ob->batch_n > 0 && seq != ob->batch_first + ob->batch_n))
		rc = ob_flush_batch(ob, ins);
	if (rc != SQLITE_DONE)
		return rc;
	if (ob->batch_n == 0)
		ob->batch_first = seq;
	put_le64(e, (uint64_t)created_ms);
	put_le32(e + 8, (uint32_t)topic_len);
	put_le32(e + 12, (uint32_t)len);
	cg_buf_append(&ob->batch_idx, (const char *)e, sizeof(e));
	cg_buf_append(&ob->batch_data, topic_len ? topic : "", topic_len);
	cg_buf_append(&ob->batch_data, len ? payload : "", len);
	ob->batch_n++;
	return rc;
}

/* Checks that db holds a citygate outbox of a schema version this code knows, and sets
 * *version: 0 for a database without any table, which the caller may create the schema
 * in. A foreign database or an unknown version is refused with CG_EDB and a logged
 * reason, so that a newer store is never altered by older code. */
static int check_schema(sqlite3 *db, const char *path, int64_t *version)
{
	int64_t tables = 0;
	int rc;

	*version = 0;
	rc = ob_query_int64(db, "SELECT count(*) FROM sqlite_master", &tables);
	if (rc != SQLITE_OK)
		goto db_error;
	if (tables == 0)
		return 0;
	rc = ob_query_int64(
	    db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
	    &tables);
	if (rc != SQLITE_OK)
		goto db_error;
	if (tables == 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: not a citygate outbox (it has no meta table)",
		       path);
		return CG_EDB;
	}
	rc = ob_query_int64(db, "SELECT value FROM meta WHERE key = 'schema_version'", version);
	if (rc == SQLITE_NOTFOUND) {
		cg_log(CG_LOG_ERR, "outbox: %s: not a citygate outbox (no schema version)", path);
		return CG_EDB;
	}
	if (rc != SQLITE_OK)
		goto db_error;
	if (*version != 1 && *version != OB_SCHEMA_VERSION) {
		cg_log(CG_LOG_ERR,
		       "outbox: %s: schema version %lld is unknown to this build (it knows %d); "
		       "refusing to touch it",
		       path, (long long)*version, OB_SCHEMA_VERSION);
		return CG_EDB;
	}
	return 0;

db_error:
	cg_log(CG_LOG_ERR, "outbox: %s: reading the schema: %s", path, sqlite3_errmsg(db));
	return ob_map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
}

/* Whether the batch just read (read_batch() having passed) holds as many data bytes as
 * its idx says, given the data's length. */
bool ob_batch_data_fits(const struct ob_batch *b, int64_t data_len)
{
	int64_t size = 0;

	for (int i = 0; i < b->n; i++)
		size += ob_entry_size(b, i);
	return size == data_len;
}

/* Reads the counters of a store: one pass over the batches for the readings still held,
 * their bytes, the oldest one's created_ms and the largest seq stored, then the meta
 * values and the quarantine's count. A damaged batch (idx, n, gone or the data's length
 * disagreeing) is not counted; its first seq goes into dmg when given, for the caller to
 * move it to quarantine. Used at open and by peek; the caller holds a read or write
 * transaction so that the values agree with each other. */
int ob_read_counts(sqlite3 *db, const char *path, cg_outbox_stats_t *st, struct ob_damage *dmg)
{
	sqlite3_stmt *q;
	struct ob_batch b;
	int64_t max_seq = 0, meta_next = 1, has_q = 0, q_max = 0;
	int rc;

	memset(st, 0, sizeof(*st));
	/* length() of a blob reads its size from the record header, not the blob. */
	rc = sqlite3_prepare_v2(
	    db, "SELECT first_seq, n, gone, idx, length(data) FROM batches ORDER BY first_seq", -1,
	    &q, NULL);
	if (rc != SQLITE_OK)
		goto db_error;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (read_batch(q, &b) != SQLITE_ROW ||
		    !ob_batch_data_fits(&b, sqlite3_column_int64(q, 4))) {
			if (dmg && dmg->n < OB_REPAIR_MAX)
				dmg->first[dmg->n++] = b.first;
			if (b.first > max_seq)
				max_seq = b.first;
			continue;
		}
		for (int i = 0; i < b.n; i++) {
			if (b.gone >> i & 1)
				continue;
			if (st->rows++ == 0)
				st->oldest_ms = ob_entry_created(&b, i);
			if (ob_entry_created(&b, i) > st->newest_ms)
				st->newest_ms = ob_entry_created(&b, i);
			st->bytes += ob_entry_size(&b, i);
		}
		max_seq = b.first + b.n - 1;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		goto db_error;

	rc = ob_query_int64(db, "SELECT value FROM meta WHERE key = 'next_seq'", &meta_next);
	if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
		goto db_error;
	rc = ob_query_int64(db, "SELECT value FROM meta WHERE key = 'dropped'", &st->dropped);
	if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
		goto db_error;
	/* A store opened only by a build without quarantine has no such table. */
	rc = ob_query_int64(db,
	                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
	                    " AND name = 'quarantine'",
	                    &has_q);
	if (rc == SQLITE_OK && has_q)
		rc = ob_query_int64(db, "SELECT count(*) FROM quarantine", &st->quarantined);
	if (rc == SQLITE_OK && has_q)
		rc = ob_query_int64(db, "SELECT coalesce(max(seq), 0) FROM quarantine", &q_max);
	if (rc != SQLITE_OK)
		goto db_error;
	if (q_max > max_seq)
		max_seq = q_max;

	/* meta.next_seq is written with the rows, so it is never behind; taking the larger
	 * of the two all the same means a damaged meta row can never cause a reused seq. */
	st->next_seq = meta_next > max_seq + 1 ? meta_next : max_seq + 1;
	if (st->next_seq < 1)
		st->next_seq = 1;
	return 0;

db_error:
	cg_log(CG_LOG_ERR, "outbox: %s: reading the counters: %s", path,
	       rc == SQLITE_CORRUPT ? sqlite3_errstr(rc) : sqlite3_errmsg(db));
	return ob_map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
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
		return ob_db_fail(ob, "journal_mode", rc);
	rc = sqlite3_step(q);
	mode = rc == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
	wal = mode && strcmp((const char *)mode, "wal") == 0;
	if (rc != SQLITE_ROW) {
		rc = ob_db_fail(ob, "journal_mode", rc);
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
		return ob_db_fail(ob, "synchronous", rc);
	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d", OB_JOURNAL_SIZE_LIMIT);
	rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return ob_db_fail(ob, "journal_size_limit", rc);
	/* Debian builds SQLite to overwrite every freed page with zeros, and an
	 * acknowledged row frees its overflow pages: off, the outbox writes 40 % less
	 * (50,000 readings: 62.7 to 37.1 MB) and delivers 3 % more a second
	 * (docs/benchmarks.md). It holds only what it publishes: wiping gains nothing. */
	rc = sqlite3_exec(ob->db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return ob_db_fail(ob, "secure_delete", rc);
	if (ob->opts.max_page_count > 0) {
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld",
		         (long long)ob->opts.max_page_count);
		rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return ob_db_fail(ob, "max_page_count", rc);
	}
	return 0;
}

/* Converts a store of schema version 1 (a row per reading, in a table `messages`) to
 * batches, keeping every reading with its seq, topic, payload and created_ms; next_seq
 * and dropped stay in meta. The caller holds the write transaction, so a failure or a
 * crash leaves the file as it was. */
static int convert_v1(cg_outbox_t *ob)
{
	sqlite3_stmt *rd = NULL, *ins = NULL;
	int64_t n = 0;
	int rc;

	rc = sqlite3_exec(ob->db, "DROP INDEX IF EXISTS messages_created;" OB_BATCHES_SQL, NULL,
	                  NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db,
		                        "SELECT seq, topic, payload, created_ms FROM messages"
		                        " ORDER BY seq",
		                        -1, &rd, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db, ob_sql[ST_INSERT], -1, &ins, NULL);
	if (rc != SQLITE_OK)
		goto done;
	while ((rc = sqlite3_step(rd)) == SQLITE_ROW) {
		rc = ob_add_to_batch(
		    ob, ins, sqlite3_column_int64(rd, 0), sqlite3_column_int64(rd, 3),
		    sqlite3_column_text(rd, 1), (size_t)sqlite3_column_bytes(rd, 1),
		    sqlite3_column_blob(rd, 2), (size_t)sqlite3_column_bytes(rd, 2));
		if (rc != SQLITE_DONE)
			break;
		n++;
	}
	if (rc == SQLITE_DONE)
		rc = ob_flush_batch(ob, ins);
	reset_batch(ob);
	if (rc == SQLITE_DONE)
		rc = sqlite3_exec(ob->db,
		                  "DROP TABLE messages;"
		                  " UPDATE meta SET value = 2 WHERE key = 'schema_version'",
		                  NULL, NULL, NULL);
done:
	sqlite3_finalize(rd);
	sqlite3_finalize(ins);
	if (rc != SQLITE_OK && rc != SQLITE_DONE)
		return ob_db_fail(ob, "converting schema version 1", rc);
	cg_log(CG_LOG_INFO, "outbox: %s: converted %lld stored readings to schema version %d",
	       ob->path, (long long)n, OB_SCHEMA_VERSION);
	return 0;
}

/* Creates the schema in an empty file, converts a version 1 store, or checks the one
 * found. This runs in a write transaction so that two processes opening a new file at
 * once cannot both create it. */
static int setup_schema(cg_outbox_t *ob)
{
	int64_t version;
	int rc, err;

	rc = sqlite3_exec(ob->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return ob_db_fail(ob, "opening", rc);
	err = check_schema(ob->db, ob->path, &version);
	if (err)
		goto rollback;
	if (version == 0) {
		rc = sqlite3_exec(ob->db, ob_schema_sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			err = ob_db_fail(ob, "creating the schema", rc);
			goto rollback;
		}
		cg_log(CG_LOG_INFO, "outbox: %s: created a new store", ob->path);
	} else if (version == 1) {
		err = convert_v1(ob);
		if (err)
			goto rollback;
	}
	rc = sqlite3_exec(ob->db, OB_QUARANTINE_SQL, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = ob_db_fail(ob, "creating the quarantine table", rc);
		goto rollback;
	}
	rc = sqlite3_exec(ob->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = ob_db_fail(ob, "creating the schema", rc);
		goto rollback;
	}
	return 0;

rollback:
	if (!sqlite3_get_autocommit(ob->db))
		sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

/* Writes one meta value; in the caller's write transaction, or
 * in one of its own. */
int ob_set_meta(cg_outbox_t *ob, const char *key, int64_t value)
{
	sqlite3_stmt *st = ob->st[ST_SET_META];

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	return ob_run(st);
}

/* Takes the store's lock, so that one process at a time writes it: an flock on
 * path.lock, a file that holds the holder's pid for the message the next one gets. The
 * kernel drops the lock with the process however it ends, so a stale lock file never
 * blocks a start; the file stays (unlinking it would race with the next opener). A
 * lock file, not a lock on the store itself: closing any descriptor of the store would
 * drop SQLite's own POSIX locks on it. CG_EBUSY, logged with the holder's pid, when
 * another process (or another handle of this one) holds it. */
static int take_lock(cg_outbox_t *ob)
{
	char lock_path[PATH_MAX], pid[32];
	ssize_t len;

	if (snprintf(lock_path, sizeof(lock_path), "%s.lock", ob->path) >= (int)sizeof(lock_path))
		return CG_EINVAL;
	ob->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (ob->lock_fd < 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: cannot open its lock file: %s", lock_path,
		       strerror(errno));
		return CG_EIO;
	}
	if (flock(ob->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;

		len = err == EWOULDBLOCK ? pread(ob->lock_fd, pid, sizeof(pid) - 1, 0) : -1;
		pid[len > 0 ? len : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (err == EWOULDBLOCK)
			cg_log(CG_LOG_ERR,
			       "outbox: %s: in use by another citygate (pid %s, lock %s); one "
			       "gateway per store: stop it first, or give this one its own "
			       "store.path",
			       ob->path, pid[0] ? pid : "unknown", lock_path);
		else
			cg_log(CG_LOG_ERR, "outbox: %s: cannot lock: %s", lock_path, strerror(err));
		return err == EWOULDBLOCK ? CG_EBUSY : CG_EIO;
	}
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(ob->lock_fd, 0) != 0 || pwrite(ob->lock_fd, pid, (size_t)len, 0) != len)
		cg_log(CG_LOG_WARNING, "outbox: %s: cannot write the pid: %s", lock_path,
		       strerror(errno));
	return 0;
}

/* Creates the store file, when there is none, readable and writable by its owner only
 * whatever the umask: it holds every reading not yet delivered, and SQLite would create
 * it 0644 less the umask. The -wal and -shm files SQLite creates beside it take its
 * mode. An existing file keeps the mode it has. */
static int create_private(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	cg_log(CG_LOG_ERR, "outbox: %s: cannot create: %s", path, strerror(errno));
	return errno == ENOSPC ? CG_EFULL : CG_EIO;
}

/* Reads meta.seq_limit (0 in a store made before it existed) and starts next_seq at it
 * when it is larger: the last process did not close the store, so the seqs up to it
 * may have been used in commits that a power cut took back. The caller holds a read
 * transaction. */
static int read_seq_limit(cg_outbox_t *ob)
{
	int64_t limit = 0;
	int rc = ob_query_int64(ob->db, "SELECT value FROM meta WHERE key = 'seq_limit'", &limit);

	if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
		return ob_db_fail(ob, "reading seq_limit", rc);
	if (limit > ob->next_seq) {
		cg_log(CG_LOG_NOTICE,
		       "outbox: %s: the last stop was not clean; seq %lld to %lld are skipped "
		       "(reserved, maybe used in commits a power cut took back, never given "
		       "again)",
		       ob->path, (long long)ob->next_seq, (long long)limit - 1);
		ob->next_seq = limit;
	}
	ob->seq_limit = limit;
	return 0;
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
	ob->lock_fd = -1;
	ob->opts = *opts;
	ob->path = strdup(path);
	if (!ob->path) {
		err = CG_ENOMEM;
		goto close_ob;
	}
	err = take_lock(ob);
	if (!err)
		err = create_private(path);
	if (err)
		goto close_ob;

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
			err = ob_db_fail(ob, "preparing statements", rc);
			goto close_ob;
		}
	}

	rc = sqlite3_exec(ob->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		err = ob_db_fail(ob, "reading the counters", rc);
		goto close_ob;
	}
	err = ob_open_counts(ob, &st);
	if (!err)
		ob->quarantined = st.quarantined;
	ob->rows = st.rows;
	ob->bytes = st.bytes;
	ob->oldest_ms = st.oldest_ms;
	ob->newest_ms = st.newest_ms;
	ob->next_seq = st.next_seq;
	ob->dropped = st.dropped;
	if (!err)
		err = read_seq_limit(ob);
	sqlite3_exec(ob->db, err ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
	if (err)
		goto close_ob;

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
	/* The unused rest of the reserved block goes back, so that the next start need not
	 * skip it. Not flushed: should a power cut take it back, the block is skipped. */
	if (ob->st[ST_SET_META] && ob->seq_limit > ob->next_seq &&
	    ob_set_meta(ob, "seq_limit", ob->next_seq) != SQLITE_DONE)
		cg_log(CG_LOG_WARNING, "outbox: %s: cannot give back the unused seqs: %s", ob->path,
		       sqlite3_errmsg(ob->db));
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(ob->st[i]);
	if (ob->db && sqlite3_close(ob->db) != SQLITE_OK)
		cg_log(CG_LOG_ERR, "outbox: %s: close: %s", ob->path, sqlite3_errmsg(ob->db));
	/* After SQLite has closed the store: the lock is what tells the next process it
	 * may write. */
	if (ob->lock_fd >= 0)
		close(ob->lock_fd);
	pthread_mutex_destroy(&ob->lock);
	cg_buf_free(&ob->batch_idx);
	cg_buf_free(&ob->batch_data);
	free(ob->changes);
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

/* Starts a scan of the batches that may hold seqs from lo to hi. */
static sqlite3_stmt *scan(cg_outbox_t *ob, int64_t lo, int64_t hi)
{
	sqlite3_stmt *st = ob->st[ST_SCAN];

	sqlite3_bind_int64(st, 1, ob_scan_floor(lo));
	sqlite3_bind_int64(st, 2, hi);
	return st;
}

/* Reads the created_ms of the oldest reading held: the first one not gone in the batch
 * with the smallest seq, which the primary key finds without a scan. 0 when the outbox
 * is empty. */
int ob_read_oldest(cg_outbox_t *ob, int64_t *oldest_ms)
{
	sqlite3_stmt *st = scan(ob, INT64_MIN, INT64_MAX);
	struct ob_batch b;
	int rc;

	*oldest_ms = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	       (rc = ob_read_batch_of(ob, st, &b)) == SQLITE_ROW) {
		int i = 0;

		while (i < b.n && (b.gone >> i & 1))
			i++;
		if (i < b.n) {
			*oldest_ms = ob_entry_created(&b, i);
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc;
}

static bool over_limits(const cg_outbox_t *ob, int64_t rows, int64_t bytes)
{
	return (ob->opts.max_rows > 0 && rows > ob->opts.max_rows) ||
	       (ob->opts.max_bytes > 0 && bytes > ob->opts.max_bytes);
}

/* Whose oldest readings drop_oldest() drops: those over max_rows or max_bytes, or
 * those made before a cutoff. */
struct ob_drop {
	bool by_age;
	int64_t cutoff_ms;
};

/* Drops the oldest readings held, in seq order, for as long as the rule says, taking
 * each from *rows and *bytes and counting it in *dropped: the scan stops at the first
 * reading the rule keeps, so with nothing to drop it reads one batch. A reading made
 * after the clock stepped back waits behind the newer ones before it. The caller holds
 * the write transaction. Returns SQLITE_DONE or SQLite's error. */
static int drop_oldest(cg_outbox_t *ob, struct ob_drop rule, int64_t *rows, int64_t *bytes,
                       int64_t *dropped)
{
	sqlite3_stmt *st = scan(ob, INT64_MIN, INT64_MAX);
	struct ob_batch b;
	bool more = true;
	int rc;

	while (more && (rc = sqlite3_step(st)) == SQLITE_ROW &&
	       (rc = ob_read_batch_of(ob, st, &b)) == SQLITE_ROW) {
		uint64_t gone = b.gone;

		for (int i = 0; i < b.n && more; i++) {
			if (gone >> i & 1)
				continue;
			more = rule.by_age ? ob_entry_created(&b, i) < rule.cutoff_ms
			                   : over_limits(ob, *rows, *bytes);
			if (!more)
				break;
			gone |= (uint64_t)1 << i;
			*rows -= 1;
			*bytes -= ob_entry_size(&b, i);
			*dropped += 1;
		}
		if (gone != b.gone && (rc = ob_note_change(ob, &b, gone)) != SQLITE_DONE)
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ob->n_changes = 0;
		return rc;
	}
	return ob_apply_changes(ob);
}

/* Validates a batch before any write: topics present, payload present unless empty,
 * lengths that idx can hold, seqs strictly increasing from at least next_seq, so that a
 * seq is never reused. */
static int check_batch(const cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n)
{
	int64_t min = ob->next_seq;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!rows[i].topic || (!rows[i].payload && rows[i].len > 0) ||
		    strlen(rows[i].topic) > UINT32_MAX || rows[i].len > UINT32_MAX) {
			cg_log(CG_LOG_ERR,
			       "outbox: %s: row %zu has no topic or payload, or a too long one",
			       ob->path, i);
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
void ob_episode_add(struct ob_episode *ep, int64_t n, const char *path, const char *what)
{
	if (!ep->active)
		cg_log(CG_LOG_WARNING, "outbox: %s: %s; dropping the oldest rows", path, what);
	ep->active = true;
	ep->count += n;
}

/* Logs the end of a repeating condition, with its count, and resets it. */
void ob_episode_end(struct ob_episode *ep, const char *path, const char *what)
{
	if (!ep->active)
		return;
	cg_log(CG_LOG_INFO, "outbox: %s: %s; %lld rows were dropped", path, what,
	       (long long)ep->count);
	ep->active = false;
	ep->count = 0;
}

/* Inserts the rows as batches of consecutive seqs, adding their sizes to *bytes.
 * Returns SQLite's code, SQLITE_DONE on success. */
static int insert_rows(cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n, int64_t *bytes)
{
	sqlite3_stmt *ins = ob->st[ST_INSERT];
	int rc = SQLITE_DONE;

	for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
		size_t topic_len = strlen(rows[i].topic);

		rc = ob_add_to_batch(ob, ins, rows[i].seq, rows[i].created_ms, rows[i].topic,
		                     topic_len, rows[i].payload, rows[i].len);
		*bytes += (int64_t)(topic_len + rows[i].len);
	}
	if (rc == SQLITE_DONE)
		return ob_flush_batch(ob, ins);
	reset_batch(ob);
	return rc;
}

/* Sets PRAGMA synchronous: a commit that must reach the disk under store.sync = normal
 * is made under FULL. Never a statement prepared once: SQLite applies this pragma when
 * it prepares it, not when it runs it. Returns SQLite's code. */
static int set_synchronous(cg_outbox_t *ob, const char *level)
{
	char sql[40];

	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", level);
	return sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
}

/* Stores a batch in one transaction: the rows (insert_rows), nothing else per row, then
 * next_seq (and seq_limit when the rows pass it, a commit then flushed to the disk
 * whatever store.sync says: OB_SEQ_BLOCK), then eviction down to the limits, all
 * committed together so that a crash keeps either all of it or none. The in-memory
 * counters change only after the commit, so a failed put (CG_EFULL included) leaves the
 * handle exactly as before it, and the connection usable. */
static int put_once(cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n)
{
	int64_t new_rows, new_bytes, oldest_ms, evicted = 0, next_seq, seq_limit;
	bool durable = false;
	int rc, err;

	if (!ob || (!rows && n > 0))
		return CG_EINVAL;
	if (n == 0)
		return 0;
	ob_lock(ob);
	err = ob_repair_damaged(ob);
	if (!err)
		err = check_batch(ob, rows, n);
	if (err)
		goto unlock;
	next_seq = rows[n - 1].seq + 1;
	/* A row beyond the reserved block: the next block is reserved in this transaction,
	 * which must reach the disk before the caller may publish any of its rows. */
	seq_limit = ob->seq_limit;
	if (next_seq > seq_limit) {
		seq_limit =
		    next_seq <= INT64_MAX - OB_SEQ_BLOCK ? next_seq + OB_SEQ_BLOCK : INT64_MAX;
		durable = !ob->opts.sync_full;
		if (durable && (rc = set_synchronous(ob, "FULL")) != SQLITE_OK) {
			err = ob_db_fail(ob, "put", rc);
			goto unlock;
		}
	}

	rc = ob_run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE)
		goto rollback;
	new_rows = ob->rows + (int64_t)n;
	new_bytes = ob->bytes;
	rc = insert_rows(ob, rows, n, &new_bytes);
	if (rc != SQLITE_DONE)
		goto rollback;

	rc = ob_set_meta(ob, "next_seq", next_seq);
	if (rc == SQLITE_DONE && seq_limit != ob->seq_limit)
		rc = ob_set_meta(ob, "seq_limit", seq_limit);
	if (rc != SQLITE_DONE)
		goto rollback;
	if (over_limits(ob, new_rows, new_bytes)) {
		rc = drop_oldest(ob, (struct ob_drop){0}, &new_rows, &new_bytes, &evicted);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	if (evicted > 0) {
		rc = ob_set_meta(ob, "dropped", ob->dropped + evicted);
		if (rc != SQLITE_DONE)
			goto rollback;
		rc = ob_read_oldest(ob, &oldest_ms);
		if (rc != SQLITE_DONE)
			goto rollback;
	} else {
		oldest_ms = ob->rows == 0 ? rows[0].created_ms : ob->oldest_ms;
	}
	rc = ob_run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		goto rollback;

	ob->rows = new_rows;
	ob->bytes = new_bytes;
	ob->oldest_ms = oldest_ms;
	ob->next_seq = next_seq;
	ob->seq_limit = seq_limit;
	ob->dropped += evicted;
	for (size_t i = 0; i < n; i++)
		if (rows[i].created_ms > ob->newest_ms)
			ob->newest_ms = rows[i].created_ms;
	if (ob->full.active) {
		cg_log(CG_LOG_INFO, "outbox: %s: accepting rows again after %lld refused calls",
		       ob->path, (long long)ob->full.count);
		ob->full.active = false;
		ob->full.count = 0;
	}
	if (evicted > 0)
		ob_episode_add(&ob->evicting, evicted, ob->path, "max_rows or max_bytes reached");
	else
		ob_episode_end(&ob->evicting, ob->path, "back within max_rows and max_bytes");
	err = 0;
	goto unlock;

rollback:
	err = ob_db_fail(ob, "put", rc);
	ob_rollback(ob);
unlock:
	if (durable && (rc = set_synchronous(ob, "NORMAL")) != SQLITE_OK)
		ob_db_fail(ob, "put", rc);
	ob_unlock(ob);
	return err;
}

/* Marks the readings with seqs first to last gone, adding those that were held to *rows
 * and *bytes: each batch they touch gets its new bits, and batches left with nothing
 * go. */
static int ack_range(cg_outbox_t *ob, int64_t first, int64_t last, int64_t *rows, int64_t *bytes)
{
	sqlite3_stmt *st = scan(ob, first, last);
	struct ob_batch b;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	       (rc = ob_read_batch_of(ob, st, &b)) == SQLITE_ROW) {
		int64_t end = b.first + b.n - 1;
		int lo, hi;
		uint64_t mask, fresh;

		if (end < first)
			continue;
		lo = first > b.first ? (int)(first - b.first) : 0;
		hi = last < end ? (int)(last - b.first) : b.n - 1;
		mask = ob_all_bits(hi + 1) & ~ob_all_bits(lo);
		fresh = mask & ~b.gone;
		for (int i = lo; i <= hi; i++) {
			if (fresh >> i & 1) {
				*rows += 1;
				*bytes += ob_entry_size(&b, i);
			}
		}
		/* Noted even when nothing changes, so that a range delete never spans it. */
		rc = ob_note_change(ob, &b, b.gone | fresh);
		if (rc != SQLITE_DONE)
			break;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		ob->n_changes = 0;
		return rc;
	}
	return ob_apply_changes(ob);
}

/* Deletes acknowledged rows by seq in one transaction, keeping the counters exact. An
 * unknown seq (already acked, or evicted by a limit) is ignored. */
static int ack_once(cg_outbox_t *ob, const int64_t *seqs, size_t n)
{
	int64_t rows = 0, bytes = 0, oldest_ms;
	size_t i, j;
	int rc, err;

	if (!ob || (!seqs && n > 0))
		return CG_EINVAL;
	if (n == 0)
		return 0;
	ob_lock(ob);
	err = ob_repair_damaged(ob);
	if (err)
		goto unlock;
	rc = ob_run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE) {
		err = ob_db_fail(ob, "ack", rc);
		goto unlock;
	}
	/* Acknowledgements come in order, so the list is mostly one run of consecutive
	 * seqs: each run is read and marked with one scan. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && seqs[j - 1] < INT64_MAX && seqs[j] == seqs[j - 1] + 1; j++)
			;
		rc = ack_range(ob, seqs[i], seqs[j - 1], &rows, &bytes);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	oldest_ms = ob->oldest_ms;
	if (rows > 0) {
		rc = ob_read_oldest(ob, &oldest_ms);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	rc = ob_run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		goto rollback;
	ob->rows -= rows;
	ob->bytes -= bytes;
	ob->oldest_ms = oldest_ms;
	err = 0;
	goto unlock;

rollback:
	err = ob_db_fail(ob, "ack", rc);
	ob_rollback(ob);
unlock:
	ob_unlock(ob);
	return err;
}

/* Copies reading i of a fetched batch into row, which owns its copies: the topic as a
 * string and the payload with a NUL after its len bytes, for callers that treat it as
 * text. On failure row holds nothing that needs freeing. */
int ob_copy_row(const struct ob_batch *b, int i, const unsigned char *data, cg_outbox_row_t *row)
{
	size_t topic_len = ob_entry_topic_len(b, i);
	size_t len = ob_entry_payload_len(b, i);

	row->seq = b->first + i;
	row->created_ms = ob_entry_created(b, i);
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
		memcpy(row->topic, data, topic_len);
	row->topic[topic_len] = '\0';
	if (len > 0)
		memcpy(row->payload, data + topic_len, len);
	row->payload[len] = '\0';
	row->len = len;
	return 0;
}

/* Copies the readings of the current fetch row with after_seq < seq < before_seq that
 * are not gone into out, up to cap in all. SQLITE_CORRUPT when data and idx disagree. */
static int copy_batch(cg_outbox_t *ob, sqlite3_stmt *st, int64_t after_seq, int64_t before_seq,
                      cg_outbox_row_t *out, size_t cap, size_t *count)
{
	const unsigned char *data;
	size_t size = 0, at = 0;
	struct ob_batch b;
	int rc = ob_read_batch_of(ob, st, &b);

	if (rc != SQLITE_ROW)
		return rc;
	data = sqlite3_column_blob(st, 4);
	if (!data) /* an empty blob: every topic and payload empty */
		data = (const unsigned char *)"";
	for (int i = 0; i < b.n; i++)
		size += (size_t)ob_entry_size(&b, i);
	if (size != (size_t)sqlite3_column_bytes(st, 4)) {
		if (!ob->damaged) {
			ob->damaged = true;
			ob->damaged_first = b.first;
		}
		return SQLITE_CORRUPT;
	}
	for (int i = 0; i < b.n && *count < cap; i++) {
		int64_t seq = b.first + i;

		if (!(b.gone >> i & 1) && seq > after_seq && seq < before_seq) {
			if (ob_copy_row(&b, i, data + at, &out[*count]))
				return SQLITE_NOMEM;
			*count += 1;
		}
		at += (size_t)ob_entry_size(&b, i);
	}
	return SQLITE_ROW;
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
	if (before_seq <= 0)
		before_seq = INT64_MAX;
	ob_lock(ob);
	err = ob_repair_damaged(ob);
	if (err)
		goto unlock;
	cap = ob->rows > 0 ? (size_t)ob->rows : 0;
	if (max < cap)
		cap = max;
	if (cap == 0 || after_seq >= before_seq)
		goto unlock;
	out = calloc(cap, sizeof(*out));
	if (!out) {
		err = CG_ENOMEM;
		goto unlock;
	}
	st = ob->st[ST_FETCH];
	/* A damaged batch met on the way goes to quarantine, and the fetch goes on after
	 * the rows it has: the readings behind it are not held up. */
	for (int repairs = 0;; repairs++) {
		sqlite3_bind_int64(st, 1, ob_scan_floor(after_seq));
		sqlite3_bind_int64(st, 2, before_seq);
		while (count < cap && (rc = sqlite3_step(st)) == SQLITE_ROW &&
		       (rc = copy_batch(ob, st, after_seq, before_seq, out, cap, &count)) ==
		           SQLITE_ROW)
			;
		sqlite3_reset(st);
		if (rc != SQLITE_CORRUPT || !ob->damaged || repairs == OB_REPAIR_MAX)
			break;
		if (count > 0)
			after_seq = out[count - 1].seq;
		err = ob_repair_damaged(ob);
		if (err)
			goto free_out;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = rc == SQLITE_NOMEM ? CG_ENOMEM : ob_db_fail(ob, "fetch", rc);
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

/* Drops the rows created before now_ms - max_age_s and counts them as dropped, in one
 * transaction with the persisted dropped count (drop_oldest says in which order). */
static int expire_once(cg_outbox_t *ob, int64_t now_ms)
{
	int64_t rows, bytes, dropped = 0, oldest_ms;
	struct ob_drop rule = {.by_age = true};
	int rc, err = 0;

	if (!ob)
		return CG_EINVAL;
	ob_lock(ob);
	/* No limit, an age no clock can reach, or nothing stored: nothing to do. */
	if (ob->opts.max_age_s == 0 || ob->opts.max_age_s > INT64_MAX / 1000 ||
	    now_ms < INT64_MIN + ob->opts.max_age_s * 1000 || ob->rows == 0)
		goto unlock;
	rule.cutoff_ms = now_ms - ob->opts.max_age_s * 1000;
	err = ob_repair_damaged(ob);
	if (err)
		goto unlock;

	rc = ob_run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE) {
		err = ob_db_fail(ob, "expire", rc);
		goto unlock;
	}
	rows = ob->rows;
	bytes = ob->bytes;
	rc = drop_oldest(ob, rule, &rows, &bytes, &dropped);
	if (rc != SQLITE_DONE)
		goto rollback;
	oldest_ms = ob->oldest_ms;
	if (dropped > 0) {
		rc = ob_set_meta(ob, "dropped", ob->dropped + dropped);
		if (rc != SQLITE_DONE)
			goto rollback;
		rc = ob_read_oldest(ob, &oldest_ms);
		if (rc != SQLITE_DONE)
			goto rollback;
	}
	rc = ob_run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		goto rollback;
	ob->rows = rows;
	ob->bytes = bytes;
	ob->dropped += dropped;
	ob->oldest_ms = oldest_ms;
	if (dropped > 0)
		ob_episode_add(&ob->expiring, dropped, ob->path, "rows older than max_age_s");
	else
		ob_episode_end(&ob->expiring, ob->path, "no rows older than max_age_s any more");
	goto unlock;

rollback:
	err = ob_db_fail(ob, "expire", rc);
	ob_rollback(ob);
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
	st->newest_ms = ob->newest_ms;
	st->next_seq = ob->next_seq;
	st->dropped = ob->dropped;
	st->quarantined = ob->quarantined;
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
	int64_t version;
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
		err = ob_map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
		goto close_db;
	}
	err = check_schema(db, path, &version);
	if (!err && version == 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: not a citygate outbox (it is empty)", path);
		err = CG_EDB;
	} else if (!err && version != OB_SCHEMA_VERSION) {
		cg_log(CG_LOG_ERR,
		       "outbox: %s: schema version %lld is converted when citygate next starts",
		       path, (long long)version);
		err = CG_EDB;
	}
	if (!err)
		err = ob_read_counts(db, path, st, NULL);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
close_db:
	sqlite3_close(db);
	return err;
}

/* Whether a call that failed with err ran into a damaged batch that could now be moved
 * to quarantine, so that the call is worth making again. */
static bool repaired(cg_outbox_t *ob, int err)
{
	bool again;

	if (err != CG_EDB)
		return false;
	ob_lock(ob);
	again = ob->damaged && ob_repair_damaged(ob) == 0;
	ob_unlock(ob);
	return again;
}

/* The write calls: each runs once more after a damaged batch it met went to quarantine
 * (at most OB_REPAIR_MAX times), so that a damaged batch costs the caller nothing; a
 * put that failed would otherwise lose its readings. */
int cg_outbox_put(cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n)
{
	int err = put_once(ob, rows, n);

	for (int i = 0; i < OB_REPAIR_MAX && ob && repaired(ob, err); i++)
		err = put_once(ob, rows, n);
	return err;
}

int cg_outbox_ack(cg_outbox_t *ob, const int64_t *seqs, size_t n)
{
	int err = ack_once(ob, seqs, n);

	for (int i = 0; i < OB_REPAIR_MAX && ob && repaired(ob, err); i++)
		err = ack_once(ob, seqs, n);
	return err;
}

int cg_outbox_expire(cg_outbox_t *ob, int64_t now_ms)
{
	int err = expire_once(ob, now_ms);

	for (int i = 0; i < OB_REPAIR_MAX && ob && repaired(ob, err); i++)
		err = expire_once(ob, now_ms);
	return err;
}
