/* The outbox: readings kept in SQLite until the broker acknowledges them. Here a "row"
 * is one reading (one MQTT message); in the file up to 64 share an SQLite row, which
 * outbox.c describes. */
#ifndef CG_OUTBOX_H
#define CG_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A handle may be shared by threads (bus workers put, the publisher fetches and acks):
 * each call is atomic, made so by a lock inside the handle. */
typedef struct cg_outbox cg_outbox_t;

typedef struct cg_outbox_opts {
	int64_t max_rows;       /* 0: no limit */
	int64_t max_bytes;      /* payload + topic bytes; 0: no limit */
	int64_t max_age_s;      /* 0: no limit */
	bool sync_full;         /* synchronous=FULL instead of NORMAL */
	int64_t max_page_count; /* 0: SQLite's default; tests set it to simulate a full disk */
} cg_outbox_opts_t;

/* One stored message. Rows returned by cg_outbox_fetch() own their strings, and their
 * payload has a NUL after its len bytes. */
typedef struct cg_outbox_row {
	int64_t seq;
	char *topic;
	char *payload;
	size_t len;
	int64_t created_ms; /* when it entered the outbox, on the caller's clock (for max_age_s) */
} cg_outbox_row_t;

typedef struct cg_outbox_stats {
	int64_t rows;
	int64_t bytes;
	int64_t oldest_ms; /* created_ms of the oldest row, 0 when empty */
	int64_t newest_ms; /* the largest created_ms held at open or stored since, 0: none */
	int64_t next_seq;
	int64_t dropped; /* rows evicted by a limit, since the store was created */
	int64_t quarantined; /* readings in quarantine (cg_outbox_quarantine) */
} cg_outbox_stats_t;

/* A reading in quarantine: one that could not be sent (refused, invalid, damaged),
 * moved aside with its seq so that the readings behind it go on. */
typedef struct cg_outbox_dead {
	int64_t seq;
	int64_t created_ms;     /* 0 when a damaged row did not say */
	int64_t quarantined_ms; /* wall clock */
	char *reason;
	char *topic;   /* NULL when nothing of the reading could be recovered */
	char *payload; /* with a NUL after len bytes; NULL with topic */
	size_t len;
	int action; /* CG_OUTBOX_RETRY or CG_OUTBOX_DROP when asked for, else 0 */
} cg_outbox_dead_t;

/* What an operator asks for a reading in quarantine (cg_outbox_quarantine_mark). */
enum { CG_OUTBOX_RETRY = 1, CG_OUTBOX_DROP = 2 };

/* Opens (creating if needed, mode 0600 whatever the umask) the store at path in WAL
 * mode and checks its schema. One handle per store: the handle holds a lock (on
 * path.lock) that a second open, from any process, finds taken: CG_EBUSY, logged with
 * the holder's pid. CG_EDB or CG_EIO on other failures, with a logged reason. */
int cg_outbox_open(const char *path, const cg_outbox_opts_t *opts, cg_outbox_t **out);

/* Closes; accepts NULL. */
void cg_outbox_close(cg_outbox_t *ob);

/* The seq the next stored row must carry: larger than every seq ever stored
 * in this file, kept across restarts even when the outbox is empty, and across
 * power cuts under every store.sync: after an unclean stop it starts past the
 * block of seqs the last process had reserved (at most 1000 skipped, logged). */
int64_t cg_outbox_next_seq(const cg_outbox_t *ob);

/* Stores n rows in one transaction. Their seqs must be increasing and at
 * least cg_outbox_next_seq(); topic, payload, len and created_ms are read,
 * nothing is kept. Afterwards the limits are applied, oldest rows first (a
 * new row may itself be evicted if it alone exceeds max_bytes). CG_EFULL when
 * the disk or page limit is full: nothing was stored, and the caller keeps
 * the rows to retry. */
int cg_outbox_put(cg_outbox_t *ob, const cg_outbox_row_t *rows, size_t n);

/* Deletes the rows with the given seqs (unknown seqs are ignored), in one
 * transaction. */
int cg_outbox_ack(cg_outbox_t *ob, const int64_t *seqs, size_t n);

/* Returns up to max rows with after_seq < seq < before_seq (before_seq <= 0:
 * no upper bound), oldest first; *rows is allocated (free with
 * cg_outbox_rows_free) and *n may be 0. The upper bound lets the publisher
 * drain an old backlog separately from live rows. */
int cg_outbox_fetch(cg_outbox_t *ob, int64_t after_seq, int64_t before_seq, size_t max,
                    cg_outbox_row_t **rows, size_t *n);
void cg_outbox_rows_free(cg_outbox_row_t *rows, size_t n);

/* Evicts rows older than max_age_s relative to now_ms, on the clock of created_ms;
 * counts them as dropped. That clock must not jump: the wall clock's steps would
 * evict readings that are not old. */
int cg_outbox_expire(cg_outbox_t *ob, int64_t now_ms);

/* Counters and sizes; cheap (kept in memory, not counted by a query). */
int cg_outbox_stats(const cg_outbox_t *ob, cg_outbox_stats_t *st);

/* Reads the stats of the store at path through a read-only connection,
 * without disturbing a daemon that has it open (citygate --status). */
int cg_outbox_peek(const char *path, cg_outbox_stats_t *st);

/* Moves reading seq from the outbox to quarantine, with its topic, payload, created_ms,
 * the reason (UTF-8 text) and now_ms, in one transaction: it is no longer fetched, and
 * it keeps its seq. CG_ENOENT when seq is not held (already acknowledged, dropped or in
 * quarantine). A damaged row found by any call is moved to quarantine by the call
 * itself, reading by reading, with the reason "damaged row: ...", and logged once. */
int cg_outbox_quarantine(cg_outbox_t *ob, int64_t seq, const char *reason, int64_t now_ms);

/* Carries out what an operator asked for through cg_outbox_quarantine_mark(): a
 * reading to retry goes back into the outbox with its seq (one that nothing could be
 * recovered of stays, and is reported), one to drop is deleted. *lowest is set to the
 * smallest seq put back (INT64_MAX when none), so the sender can go back to it; the
 * counts may be NULL. The gateway calls it every second: the marks come from another
 * process, and only the handle's owner changes the outbox's counters. */
int cg_outbox_quarantine_apply(cg_outbox_t *ob, int64_t *lowest, size_t *retried, size_t *dropped);

/* Reads every reading in quarantine of the store at path, oldest seq first, through a
 * read-only connection (citygate --quarantine list). *out is allocated (free with
 * cg_outbox_dead_free) and *n may be 0. */
int cg_outbox_quarantine_list(const char *path, cg_outbox_dead_t **out, size_t *n);
void cg_outbox_dead_free(cg_outbox_dead_t *d, size_t n);

/* Asks for action (CG_OUTBOX_RETRY or CG_OUTBOX_DROP) on reading seq in quarantine, or
 * on all of them when seq is 0, in the store at path; *marked says how many. A short
 * write transaction beside a running daemon, which carries it out within a second
 * (cg_outbox_quarantine_apply), or at its next start. */
int cg_outbox_quarantine_mark(const char *path, int64_t seq, int action, size_t *marked);

#endif
