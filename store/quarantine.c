/* The quarantine: unsendable readings and damaged rows set aside by seq; retry and drop. */
#include "store/outbox.h"
#include "store/outbox_private.h"

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Runs a statement prepared for one call (the rare paths: quarantine, repair) with its
 * parameters bound by the caller; returns SQLite's code, SQLITE_DONE on success. */
static int run_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc;
}

/* Inserts one reading into quarantine (a seq already there keeps its first entry); topic
 * NULL stores nothing but the seq, the time and the reason. The caller holds the write
 * transaction. */
static int insert_dead(sqlite3 *db, int64_t seq, int64_t created_ms, int64_t now_ms,
                       const char *reason, const void *topic, size_t topic_len, const void *payload,
                       size_t len)
{
	sqlite3_stmt *st;
	int rc =
	    sqlite3_prepare_v2(db,
	                       "INSERT OR IGNORE INTO quarantine (seq, created_ms, quarantined_ms,"
	                       " reason, topic, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	                       -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int64(st, 2, created_ms);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	if (topic) {
		sqlite3_bind_blob64(st, 5, topic_len ? topic : "", topic_len, SQLITE_STATIC);
		sqlite3_bind_blob64(st, 6, len ? payload : "", len, SQLITE_STATIC);
	}
	return run_once(st);
}

/* Rewrites the counters of the batch at first, whose idx and data agree, from them: n
 * readings, the gone bits kept unless they were damaged too (then every reading of it
 * is sent again: a duplicate is recognisable by its seq, a loss is not). Logged. */
static int rebuild_batch(cg_outbox_t *ob, int64_t first, int n, uint64_t gone, int64_t old_n)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(
	    ob->db, "UPDATE batches SET n = ?2, gone = ?3 WHERE first_seq = ?1", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, first);
	sqlite3_bind_int(st, 2, n);
	sqlite3_bind_int64(st, 3, (int64_t)gone);
	rc = run_once(st);
	if (rc == SQLITE_DONE)
		cg_log(
		    CG_LOG_WARNING,
		    "outbox: %s: the row at seq %lld said %lld readings, its index and data hold "
		    "%d; its counters were rebuilt from them",
		    ob->path, (long long)first, (long long)old_n, n);
	return rc;
}

/* Moves every reading not gone of the damaged batch at first to quarantine, then deletes
 * the batch. How many readings it held: idx's size says it when it is a whole number of
 * entries, else n, else a full batch; never past the next batch or next_seq, so no seq
 * is claimed twice. A reading whose topic and payload lie within data (going by idx)
 * keeps them, for the operator to judge; the reason says the row was damaged. A batch
 * whose idx and data agree, with only n or gone wrong, is rebuilt instead
 * (rebuild_batch). The caller holds the write transaction and recounts afterwards.
 * Returns SQLITE_DONE. */
static int quarantine_batch(cg_outbox_t *ob, int64_t first, int64_t next_seq, int64_t now_ms)
{
	sqlite3_stmt *st, *nx;
	const unsigned char *idx, *data;
	int64_t n, idx_bytes, data_bytes, want = 0, cnt, next_first = INT64_MAX, moved = 0;
	uint64_t gone;
	char reason[160];
	struct ob_batch b;
	size_t at = 0;
	int rc;

	rc = sqlite3_prepare_v2(ob->db, "SELECT min(first_seq) FROM batches WHERE first_seq > ?1",
	                        -1, &nx, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(nx, 1, first);
	if (sqlite3_step(nx) == SQLITE_ROW && sqlite3_column_type(nx, 0) == SQLITE_INTEGER)
		next_first = sqlite3_column_int64(nx, 0);
	sqlite3_finalize(nx);

	rc = sqlite3_prepare_v2(
	    ob->db, "SELECT n, gone, idx, data FROM batches WHERE first_seq = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, first);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? SQLITE_DONE : rc;
	}
	n = sqlite3_column_int64(st, 0);
	gone = (uint64_t)sqlite3_column_int64(st, 1);
	idx = sqlite3_column_blob(st, 2);
	idx_bytes = sqlite3_column_bytes(st, 2);
	data = sqlite3_column_blob(st, 3);
	data_bytes = sqlite3_column_bytes(st, 3);
	if (!data)
		data = (const unsigned char *)"";

	b.first = first;
	b.idx = idx;
	b.n = 0;
	if (idx && idx_bytes % OB_IDX_SIZE == 0 && idx_bytes / OB_IDX_SIZE >= 1 &&
	    idx_bytes / OB_IDX_SIZE <= OB_BATCH)
		b.n = (int)(idx_bytes / OB_IDX_SIZE);
	cnt = b.n ? b.n : n >= 1 && n <= OB_BATCH ? n : OB_BATCH;
	if (next_first != INT64_MAX && next_first - first < cnt)
		cnt = next_first - first;
	if (next_seq > first && next_seq - first < cnt)
		cnt = next_seq - first;
	if (cnt < 1)
		cnt = 1;
	if (gone & ~ob_all_bits((int)cnt))
		gone = 0; /* damaged too: better a reading sent twice than lost */
	if (b.n)
		for (int i = 0; i < b.n; i++)
			want += ob_entry_size(&b, i);
	if (b.n && want == data_bytes && b.n == cnt) {
		/* idx and data agree: only n or gone is wrong, and is rebuilt from them. */
		sqlite3_finalize(st);
		return rebuild_batch(ob, first, b.n, gone, n);
	}
	if (b.n && want != data_bytes)
		snprintf(reason, sizeof(reason),
		         "damaged row: its data is %lld bytes, its index says %lld",
		         (long long)data_bytes, (long long)want);
	else if (b.n && b.n != n)
		snprintf(reason, sizeof(reason),
		         "damaged row: it says %lld readings, its index holds %d", (long long)n,
		         b.n);
	else
		snprintf(reason, sizeof(reason), "damaged row: its index is %lld bytes, not %lld",
		         (long long)idx_bytes, (long long)(n * OB_IDX_SIZE));

	rc = SQLITE_DONE;
	for (int i = 0; i < cnt && rc == SQLITE_DONE; i++) {
		size_t tl = i < b.n ? ob_entry_topic_len(&b, i) : 0;
		size_t pl = i < b.n ? ob_entry_payload_len(&b, i) : 0;
		bool fits = i < b.n && at + tl + pl <= (size_t)data_bytes;

		if (!(gone >> i & 1)) {
			rc = insert_dead(ob->db, first + i, i < b.n ? ob_entry_created(&b, i) : 0,
			                 now_ms, reason, fits ? data + at : NULL, tl,
			                 fits ? data + at + tl : NULL, pl);
			moved++;
		}
		at += tl + pl;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return rc;
	rc = sqlite3_prepare_v2(ob->db, "DELETE FROM batches WHERE first_seq = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, first);
	rc = run_once(st);
	if (rc == SQLITE_DONE)
		cg_log(CG_LOG_WARNING,
		       "outbox: %s: %s (seqs %lld to %lld); moved its %lld readings to quarantine",
		       ob->path, reason, (long long)first, (long long)(first + cnt - 1),
		       (long long)moved);
	return rc;
}

/* Moves the damaged batch a scan noted to quarantine, in a transaction of its own, and
 * recounts the store: what the batch counted for is not known once it is damaged. The
 * caller holds the lock and no transaction. */
int ob_repair_damaged(cg_outbox_t *ob)
{
	cg_outbox_stats_t st;
	int rc, err;

	if (!ob->damaged)
		return 0;
	rc = ob_run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE)
		return ob_db_fail(ob, "moving a damaged row to quarantine", rc);
	rc = quarantine_batch(ob, ob->damaged_first, ob->next_seq, cg_now_ms());
	if (rc != SQLITE_DONE) {
		err = ob_db_fail(ob, "moving a damaged row to quarantine", rc);
		ob_rollback(ob);
		return err;
	}
	err = ob_read_counts(ob->db, ob->path, &st, NULL);
	if (err) {
		ob_rollback(ob);
		return err;
	}
	rc = ob_run(ob->st[ST_COMMIT]);
	if (rc != SQLITE_DONE) {
		err = ob_db_fail(ob, "moving a damaged row to quarantine", rc);
		ob_rollback(ob);
		return err;
	}
	ob->damaged = false;
	ob->rows = st.rows;
	ob->bytes = st.bytes;
	ob->oldest_ms = st.oldest_ms;
	ob->quarantined = st.quarantined;
	if (st.next_seq > ob->next_seq)
		ob->next_seq = st.next_seq;
	return 0;
}

/* Reads a meta counter; false when it is missing or not an integer (damaged). */
static bool meta_value(sqlite3 *db, const char *key, int64_t *v)
{
	char sql[128];

	snprintf(sql, sizeof(sql),
	         "SELECT value FROM meta WHERE key = '%s' AND typeof(value) = 'integer'", key);
	return ob_query_int64(db, sql, v) == SQLITE_OK;
}

/* Rewrites a meta counter found damaged, with a log line saying so. */
static int meta_rebuild(cg_outbox_t *ob, const char *key, int64_t v, const char *how)
{
	char sql[128];
	int rc;

	snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO meta (key, value) VALUES ('%s', %lld)",
	         key, (long long)v);
	rc = sqlite3_exec(ob->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return ob_db_fail(ob, "rebuilding a counter", rc);
	cg_log(CG_LOG_WARNING, "outbox: %s: the %s counter was missing or damaged; %s %lld",
	       ob->path, key, how, (long long)v);
	return 0;
}

/* The counters at open, in the caller's write transaction: damaged batches go to
 * quarantine (logged), then the meta counters are checked against the rows. next_seq
 * is rebuilt from the largest seq held or in quarantine when it is missing, not an
 * integer or behind them (a reused seq would be worse than a gap); dropped, which the
 * rows cannot tell, starts again from 0. A damaged store so opens with a log line
 * rather than refusing to start. */
int ob_open_counts(cg_outbox_t *ob, cg_outbox_stats_t *st)
{
	int64_t v, last = INT64_MIN;
	int err, rc;

	for (;;) {
		struct ob_damage dmg = {.n = 0};

		err = ob_read_counts(ob->db, ob->path, st, &dmg);
		if (err || dmg.n == 0)
			break;
		/* Each pass removes or mends what the last one found; never loop on one. */
		if (dmg.first[0] == last) {
			cg_log(CG_LOG_ERR, "outbox: %s: the row at seq %lld cannot be repaired",
			       ob->path, (long long)last);
			return CG_EDB;
		}
		last = dmg.first[0];
		for (size_t i = 0; i < dmg.n; i++) {
			rc = quarantine_batch(ob, dmg.first[i], st->next_seq, cg_now_ms());
			if (rc != SQLITE_DONE)
				return ob_db_fail(ob, "moving a damaged row to quarantine", rc);
		}
	}
	if (err)
		return err;
	if (!meta_value(ob->db, "next_seq", &v) || v != st->next_seq) {
		err = meta_rebuild(ob, "next_seq", st->next_seq, "rebuilt from the rows as");
		if (err)
			return err;
	}
	if (!meta_value(ob->db, "dropped", &v) || v < 0) {
		st->dropped = 0;
		err = meta_rebuild(ob, "dropped", 0, "it starts again from");
	}
	return err;
}

/* Finds the batch holding seq with the fetch statement, which the caller resets; *found
 * says whether reading seq is held (in a batch, not gone). Returns SQLITE_ROW with the
 * statement on that batch, SQLITE_DONE when seq is not held, or SQLite's error. */
static int find_reading(cg_outbox_t *ob, int64_t seq, struct ob_batch *b, bool *found)
{
	sqlite3_stmt *st = ob->st[ST_FETCH];
	int rc;

	*found = false;
	sqlite3_bind_int64(st, 1, ob_scan_floor(seq));
	sqlite3_bind_int64(st, 2, seq < INT64_MAX ? seq + 1 : seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = ob_read_batch_of(ob, st, b)) != SQLITE_ROW)
			return rc;
		if (seq >= b->first && seq < b->first + b->n) {
			if (!ob_batch_data_fits(b, sqlite3_column_bytes(st, 4))) {
				if (!ob->damaged) {
					ob->damaged = true;
					ob->damaged_first = b->first;
				}
				return SQLITE_CORRUPT;
			}
			*found = !(b->gone >> (seq - b->first) & 1);
			return SQLITE_ROW;
		}
	}
	return rc;
}

/* Ends a quarantine transaction that got as far as rc (SQLITE_DONE: all went well): when
 * moved says readings came or went, the oldest one held is read again into *oldest_ms
 * (else it is the current one), then the transaction is committed; a failure is logged
 * and rolled back. Returns 0 or a CG_E* code. */
static int end_quarantine_tx(cg_outbox_t *ob, int rc, bool moved, int64_t *oldest_ms)
{
	int err;

	*oldest_ms = ob->oldest_ms;
	if (rc == SQLITE_DONE && moved)
		rc = ob_read_oldest(ob, oldest_ms);
	if (rc == SQLITE_DONE)
		rc = ob_run(ob->st[ST_COMMIT]);
	if (rc == SQLITE_DONE)
		return 0;
	err = ob_db_fail(ob, "quarantine", rc);
	ob_rollback(ob);
	return err;
}

/* Moves one reading to quarantine (outbox.h): its copy goes into the quarantine table
 * and its gone bit is set, in one transaction, and the counters follow after the
 * commit. A damaged batch holding it is moved whole by ob_repair_damaged(). */
/* The most readings the quarantine holds: a tenth of max_rows (at least one),
 * so that a broker refusing everything for days cannot fill the disk through
 * it; none when max_rows is 0 (no limit). */
static int64_t quarantine_bound(const cg_outbox_t *ob)
{
	return ob->opts.max_rows > 0 ? (ob->opts.max_rows / 10 > 0 ? ob->opts.max_rows / 10 : 1)
	                             : INT64_MAX;
}

/* Drops the oldest quarantined readings beyond the bound, within the caller's
 * transaction, adding them to the dropped counter; *n says how many. */
static int trim_quarantine(cg_outbox_t *ob, int64_t held, int64_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*n = held > quarantine_bound(ob) ? held - quarantine_bound(ob) : 0;
	if (*n == 0)
		return SQLITE_DONE;
	rc = sqlite3_prepare_v2(ob->db,
	                        "DELETE FROM quarantine WHERE seq IN"
	                        " (SELECT seq FROM quarantine ORDER BY seq LIMIT ?1)",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, *n);
	rc = run_once(st);
	return rc == SQLITE_DONE ? ob_set_meta(ob, "dropped", ob->dropped + *n) : rc;
}

static int quarantine_once(cg_outbox_t *ob, int64_t seq, const char *reason, int64_t now_ms)
{
	sqlite3_stmt *st = ob->st[ST_FETCH];
	cg_outbox_row_t row = {0};
	struct ob_batch b;
	int64_t oldest_ms, size = 0, trimmed = 0;
	bool found;
	int rc, err;

	rc = ob_run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE)
		return ob_db_fail(ob, "quarantine", rc);
	rc = find_reading(ob, seq, &b, &found);
	if (rc == SQLITE_ROW && found) {
		const unsigned char *data = sqlite3_column_blob(st, 4);
		size_t at = 0;
		int i = (int)(seq - b.first);

		for (int j = 0; j < i; j++)
			at += (size_t)ob_entry_size(&b, j);
		size = ob_entry_size(&b, i);
		rc = ob_copy_row(&b, i, data ? data + at : (const unsigned char *)"", &row)
		         ? SQLITE_NOMEM
		         : SQLITE_ROW;
		if (rc == SQLITE_ROW)
			rc = ob_note_change(ob, &b, b.gone | (uint64_t)1 << i);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		if (!found) {
			ob_rollback(ob);
			return CG_ENOENT;
		}
		rc = insert_dead(ob->db, seq, row.created_ms, now_ms, reason, row.topic,
		                 strlen(row.topic), row.payload, row.len);
	}
	free(row.topic);
	free(row.payload);
	if (rc == SQLITE_DONE)
		rc = trim_quarantine(ob, ob->quarantined + 1, &trimmed);
	if (rc == SQLITE_DONE)
		rc = ob_apply_changes(ob);
	else
		ob->n_changes = 0;
	err = end_quarantine_tx(ob, rc, true, &oldest_ms);
	if (err)
		return err;
	ob->rows -= 1;
	ob->bytes -= size;
	ob->oldest_ms = oldest_ms;
	ob->quarantined += 1 - trimmed;
	ob->dropped += trimmed;
	if (trimmed)
		ob_episode_add(&ob->overflowing, trimmed, ob->path,
		               "the quarantine holds a tenth of max_rows at most");
	else
		ob_episode_end(&ob->overflowing, ob->path, "the quarantine is within its bound");
	return 0;
}

int cg_outbox_quarantine(cg_outbox_t *ob, int64_t seq, const char *reason, int64_t now_ms)
{
	int err;

	if (!ob || !reason)
		return CG_EINVAL;
	ob_lock(ob);
	err = ob_repair_damaged(ob);
	if (!err)
		err = quarantine_once(ob, seq, reason, now_ms);
	for (int i = 0; i < OB_REPAIR_MAX && err == CG_EDB && ob->damaged; i++) {
		err = ob_repair_damaged(ob);
		if (!err)
			err = quarantine_once(ob, seq, reason, now_ms);
	}
	ob_unlock(ob);
	/* Moved with its damaged batch, or by an earlier call: in quarantine either way. */
	return err;
}

/* Puts one reading of the quarantine back: its gone bit is cleared when the batch that
 * held it is still there (the readings of a batch are always fetched in seq order),
 * else it goes in as a batch of its own. The caller holds the write transaction and
 * adds the reading to *rows and *bytes. */
static int put_back(cg_outbox_t *ob, int64_t seq, int64_t created_ms, const void *topic,
                    size_t topic_len, const void *payload, size_t len, bool *held)
{
	sqlite3_stmt *st = ob->st[ST_FETCH];
	struct ob_batch b = {0};
	bool found;
	int rc = find_reading(ob, seq, &b, &found);
	int64_t first = b.first;
	uint64_t gone = b.gone;

	sqlite3_reset(st);
	*held = rc == SQLITE_ROW && found;
	if (rc == SQLITE_ROW) {
		if (found)
			return SQLITE_DONE; /* held already: a row rebuilt after damage */
		st = ob->st[ST_SET_GONE];
		sqlite3_bind_int64(st, 1, first);
		sqlite3_bind_int64(st, 2, (int64_t)(gone & ~((uint64_t)1 << (seq - first))));
		return ob_run(st);
	}
	if (rc != SQLITE_DONE)
		return rc;
	rc =
	    ob_add_to_batch(ob, ob->st[ST_INSERT], seq, created_ms, topic, topic_len, payload, len);
	return rc == SQLITE_DONE ? ob_flush_batch(ob, ob->st[ST_INSERT]) : rc;
}

/* Carries out the operator's marks (outbox.h) in one transaction; a reading nothing was
 * recovered of loses its retry mark and is reported, since it cannot be sent. */
static int apply_once(cg_outbox_t *ob, int64_t *lowest, size_t *retried, size_t *dropped)
{
	sqlite3_stmt *q = NULL, *del = NULL, *clear = NULL;
	int64_t rows = 0, bytes = 0, marked = 0, oldest_ms, unrecoverable = 0;
	bool held;
	int rc, err;

	rc = ob_query_int64(ob->db, "SELECT count(*) FROM quarantine WHERE action != 0", &marked);
	if (rc != SQLITE_OK || marked == 0)
		return rc == SQLITE_OK ? 0 : ob_db_fail(ob, "reading the quarantine", rc);
	rc = ob_run(ob->st[ST_BEGIN]);
	if (rc != SQLITE_DONE)
		return ob_db_fail(ob, "quarantine", rc);
	rc = sqlite3_prepare_v2(ob->db,
	                        "SELECT seq, action, created_ms, topic, payload FROM quarantine"
	                        " WHERE action != 0 ORDER BY seq",
	                        -1, &q, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db, "DELETE FROM quarantine WHERE seq = ?1", -1, &del,
		                        NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(ob->db, "UPDATE quarantine SET action = 0 WHERE seq = ?1",
		                        -1, &clear, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(q, 0);
		bool retry = sqlite3_column_int(q, 1) == CG_OUTBOX_RETRY;
		bool has = sqlite3_column_type(q, 3) != SQLITE_NULL;
		size_t tl = (size_t)sqlite3_column_bytes(q, 3), pl;

		if (retry && has) {
			const void *topic = sqlite3_column_blob(q, 3);

			pl = (size_t)sqlite3_column_bytes(q, 4);
			rc = put_back(ob, seq, sqlite3_column_int64(q, 2), topic, tl,
			              sqlite3_column_blob(q, 4), pl, &held);
			if (rc != SQLITE_DONE)
				break;
			/* A reading held already is counted in the rows already. */
			if (!held) {
				rows++;
				bytes += (int64_t)(tl + pl);
			}
			if (seq < *lowest)
				*lowest = seq;
			*retried += 1;
		} else if (!retry) {
			*dropped += 1;
		} else {
			unrecoverable++;
		}
		sqlite3_bind_int64(retry && !has ? clear : del, 1, seq);
		rc = ob_run(retry && !has ? clear : del);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(q);
	sqlite3_finalize(del);
	sqlite3_finalize(clear);
	err = end_quarantine_tx(ob, rc, rows > 0, &oldest_ms);
	if (err) {
		*lowest = INT64_MAX;
		*retried = *dropped = 0;
		return err;
	}
	ob->rows += rows;
	ob->bytes += bytes;
	ob->oldest_ms = oldest_ms;
	ob->quarantined -= (int64_t)(*retried + *dropped);
	cg_log(CG_LOG_NOTICE,
	       "outbox: %s: quarantine: %zu readings put back to be sent again, %zu dropped, "
	       "%lld cannot be retried (nothing of them could be recovered)",
	       ob->path, *retried, *dropped, (long long)unrecoverable);
	return 0;
}

int cg_outbox_quarantine_apply(cg_outbox_t *ob, int64_t *lowest, size_t *retried, size_t *dropped)
{
	size_t r = 0, d = 0;
	int64_t low = INT64_MAX;
	int err;

	if (!ob)
		return CG_EINVAL;
	ob_lock(ob);
	err = ob_repair_damaged(ob);
	if (!err)
		err = apply_once(ob, &low, &r, &d);
	ob_unlock(ob);
	if (lowest)
		*lowest = low;
	if (retried)
		*retried = r;
	if (dropped)
		*dropped = d;
	return err;
}

/* Opens the store at path for the operator's commands, beside a daemon that may have it
 * open; *has_table is false when no build with quarantine opened it yet. */
static int open_other(const char *path, bool write, sqlite3 **db, bool *has_table)
{
	struct stat sb;
	int64_t n = 0;
	int rc;

	*db = NULL;
	*has_table = false;
	if (stat(path, &sb) != 0) {
		cg_log(CG_LOG_ERR, "outbox: %s: %s", path, strerror(errno));
		return errno == ENOENT ? CG_ENOENT : CG_EIO;
	}
	rc = sqlite3_open_v2(
	    path, db, (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX,
	    NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(*db, OB_BUSY_TIMEOUT_MS);
		rc = ob_query_int64(*db,
		                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
		                    " AND name = 'quarantine'",
		                    &n);
	}
	if (rc != SQLITE_OK) {
		cg_log(CG_LOG_ERR, "outbox: %s: %s", path,
		       *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
		return ob_map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
	}
	*has_table = n > 0;
	return 0;
}

/* A copy of column i of q as a string with a NUL after its bytes, and its length. */
static char *column_copy(sqlite3_stmt *q, int i, size_t *len)
{
	size_t n = (size_t)sqlite3_column_bytes(q, i);
	const void *v = sqlite3_column_blob(q, i);
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (n)
		memcpy(s, v, n);
	s[n] = '\0';
	if (len)
		*len = n;
	return s;
}

int cg_outbox_quarantine_list(const char *path, cg_outbox_dead_t **out, size_t *n)
{
	cg_outbox_dead_t *v = NULL, *d;
	size_t cap = 0, count = 0;
	sqlite3_stmt *q = NULL;
	sqlite3 *db;
	bool has;
	int rc, err;

	if (!path || !out || !n)
		return CG_EINVAL;
	*out = NULL;
	*n = 0;
	err = open_other(path, false, &db, &has);
	if (err || !has)
		goto close_db;
	rc = sqlite3_prepare_v2(db,
	                        "SELECT seq, created_ms, quarantined_ms, reason, topic, payload,"
	                        " action FROM quarantine ORDER BY seq",
	                        -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		if (count == cap) {
			cap = cap ? cap * 2 : 64;
			d = realloc(v, cap * sizeof(*v));
			if (!d) {
				err = CG_ENOMEM;
				break;
			}
			v = d;
		}
		d = &v[count++];
		memset(d, 0, sizeof(*d));
		d->seq = sqlite3_column_int64(q, 0);
		d->created_ms = sqlite3_column_int64(q, 1);
		d->quarantined_ms = sqlite3_column_int64(q, 2);
		d->action = sqlite3_column_int(q, 6);
		d->reason = column_copy(q, 3, NULL);
		if (sqlite3_column_type(q, 4) != SQLITE_NULL) {
			d->topic = column_copy(q, 4, NULL);
			d->payload = column_copy(q, 5, &d->len);
		}
		if (!d->reason ||
		    (sqlite3_column_type(q, 4) != SQLITE_NULL && (!d->topic || !d->payload))) {
			err = CG_ENOMEM;
			break;
		}
	}
	if (!err && rc != SQLITE_DONE && rc != SQLITE_OK) {
		cg_log(CG_LOG_ERR, "outbox: %s: reading the quarantine: %s", path,
		       sqlite3_errmsg(db));
		err = CG_EDB;
	}
	sqlite3_finalize(q);
	if (err) {
		cg_outbox_dead_free(v, count);
		goto close_db;
	}
	*out = v;
	*n = count;
close_db:
	sqlite3_close(db);
	return err;
}

void cg_outbox_dead_free(cg_outbox_dead_t *d, size_t n)
{
	if (!d)
		return;
	for (size_t i = 0; i < n; i++) {
		free(d[i].reason);
		free(d[i].topic);
		free(d[i].payload);
	}
	free(d);
}

int cg_outbox_quarantine_mark(const char *path, int64_t seq, int action, size_t *marked)
{
	sqlite3_stmt *q;
	sqlite3 *db;
	bool has;
	int rc, err;

	if (!path || !marked || (action != CG_OUTBOX_RETRY && action != CG_OUTBOX_DROP))
		return CG_EINVAL;
	*marked = 0;
	err = open_other(path, true, &db, &has);
	if (err || !has)
		goto close_db;
	rc = sqlite3_prepare_v2(db, "UPDATE quarantine SET action = ?1 WHERE ?2 = 0 OR seq = ?2",
	                        -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(q, 1, action);
		sqlite3_bind_int64(q, 2, seq);
		rc = sqlite3_step(q);
		sqlite3_finalize(q);
	}
	if (rc != SQLITE_DONE) {
		cg_log(CG_LOG_ERR, "outbox: %s: marking the quarantine: %s", path,
		       sqlite3_errmsg(db));
		err = ob_map_rc(rc) == CG_ENOMEM ? CG_ENOMEM : CG_EDB;
		goto close_db;
	}
	*marked = (size_t)sqlite3_changes(db);
close_db:
	sqlite3_close(db);
	return err;
}
