/* What outbox.c and quarantine.c share: the handle, the batch layout and the helpers both call. */
#ifndef CG_STORE_OUTBOX_PRIVATE_H
#define CG_STORE_OUTBOX_PRIVATE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/log.h"
#include "store/outbox.h"

/* How long a statement waits for a lock held by another connection before failing. */
#define OB_BUSY_TIMEOUT_MS 5000

/* Readings are stored in batches: a row holds up to OB_BATCH readings with consecutive
 * seqs. SQLite's cost is per row, not per byte: putting a reading and deleting it after
 * its PUBACK took about 9,500 instructions with a row per reading and 2,100 with a row
 * per 64 (callgrind), most of the gateway's main loop. `gone` has bit i set once reading
 * first_seq + i is acknowledged or dropped; a row goes when all its bits are set.
 * `idx` holds OB_IDX_SIZE bytes per reading, little-endian: created_ms (int64), the
 * topic's length and the payload's length (uint32 each); `data` holds each reading's
 * topic then payload, in order. The two are apart so that acks, limits and expiry read
 * idx only. There is no index on created_ms: readings are made in seq order, so expiry
 * finds the expired ones from the oldest seq on. */
#define OB_BATCH    64
#define OB_IDX_SIZE 16
#define OB_BATCHES_SQL                                                                             \
	"CREATE TABLE batches (first_seq INTEGER PRIMARY KEY, n INTEGER NOT NULL,"                 \
	" gone INTEGER NOT NULL, idx BLOB NOT NULL, data BLOB NOT NULL);"

/* Damaged rows one call moves to quarantine at most, so that a store full of them
 * cannot hold a call for long; the next call goes on. */
#define OB_REPAIR_MAX 64

/* The statements prepared once at open and kept for the connection's life. */
enum ob_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_SET_META,
	ST_SCAN,
	ST_SET_GONE,
	ST_DELETE_RANGE,
	ST_FETCH,
	ST_COUNT
};

/* One batch row as read by a scan; idx points into the statement's row. */
struct ob_batch {
	int64_t first;
	int n;
	uint64_t gone;
	const unsigned char *idx;
};

/* What a scan decided for a batch, applied once the scan is over. */
enum ob_change_kind { CH_NONE, CH_UPDATE, CH_DELETE };

struct ob_change {
	int64_t first;
	uint64_t gone;
	enum ob_change_kind kind;
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
	int64_t newest_ms;
	int64_t next_seq;
	int64_t seq_limit; /* meta.seq_limit: every seq committed is below it */
	int64_t dropped;
	int lock_fd;                /* holds the flock on the lock file; -1 when none */
	struct ob_episode full;     /* puts refused because the disk or page limit is full */
	struct ob_episode evicting; /* rows dropped by max_rows or max_bytes */
	struct ob_episode expiring; /* rows dropped by max_age_s */
	struct ob_episode overflowing; /* quarantined readings dropped past its bound */
	int64_t quarantined;        /* readings in the quarantine table */
	/* A damaged batch a scan ran into, moved to quarantine by the next call
	 * (ob_repair_damaged) rather than failing every call after. */
	bool damaged;
	int64_t damaged_first;
	cg_log_limit_t fail_limit; /* SQLite errors: at most one line a second */
	/* The batch being built from consecutive readings (put, conversion of version 1). */
	int64_t batch_first;
	int batch_n;
	cg_buf_t batch_idx;
	cg_buf_t batch_data;
	/* The changes a scan decided, kept between calls to save allocations. */
	struct ob_change *changes;
	size_t n_changes, cap_changes;
};

/* The first seqs of damaged batches a pass over the store found (ob_read_counts). */
struct ob_damage {
	int64_t first[OB_REPAIR_MAX];
	size_t n;
};

void ob_lock(const cg_outbox_t *ob);
void ob_unlock(const cg_outbox_t *ob);
int ob_add_to_batch(cg_outbox_t *ob, sqlite3_stmt *ins, int64_t seq, int64_t created_ms,
                    const void *topic, size_t topic_len, const void *payload, size_t len);
uint64_t ob_all_bits(int n);
int ob_apply_changes(cg_outbox_t *ob);
bool ob_batch_data_fits(const struct ob_batch *b, int64_t data_len);
int ob_copy_row(const struct ob_batch *b, int i, const unsigned char *data, cg_outbox_row_t *row);
int ob_db_fail(cg_outbox_t *ob, const char *what, int rc);
int64_t ob_entry_created(const struct ob_batch *b, int i);
size_t ob_entry_payload_len(const struct ob_batch *b, int i);
int64_t ob_entry_size(const struct ob_batch *b, int i);
size_t ob_entry_topic_len(const struct ob_batch *b, int i);
void ob_episode_add(struct ob_episode *ep, int64_t n, const char *path, const char *what);
void ob_episode_end(struct ob_episode *ep, const char *path, const char *what);
int ob_flush_batch(cg_outbox_t *ob, sqlite3_stmt *ins);
int ob_map_rc(int rc);
int ob_note_change(cg_outbox_t *ob, const struct ob_batch *b, uint64_t gone);
int ob_query_int64(sqlite3 *db, const char *sql, int64_t *out);
int ob_read_batch_of(cg_outbox_t *ob, sqlite3_stmt *st, struct ob_batch *b);
int ob_read_counts(sqlite3 *db, const char *path, cg_outbox_stats_t *st, struct ob_damage *dmg);
int ob_read_oldest(cg_outbox_t *ob, int64_t *oldest_ms);
void ob_rollback(cg_outbox_t *ob);
int ob_run(sqlite3_stmt *st);
int64_t ob_scan_floor(int64_t seq);
int ob_set_meta(cg_outbox_t *ob, const char *key, int64_t value);
int ob_open_counts(cg_outbox_t *ob, cg_outbox_stats_t *st);
int ob_repair_damaged(cg_outbox_t *ob);

#endif
