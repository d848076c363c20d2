/* The daemon's private parts, shared by its files: the gateway struct, which
 * thread owns which of its fields, and the functions one file of the daemon
 * calls in another. Nothing outside gateway/gateway*.c, ingest.c,
 * pipeline.c, sender.c, quarantine.c, health.c and reload.c includes it, but
 * for tests/unit/test_powercut.c, which drives the pipeline through power cuts.
 *
 *   ingest.c    bus workers hand readings and poll outcomes over (any thread,
 *               under lock)
 *   pipeline.c  readings are staged, encoded, given a seq, committed;
 *               acknowledged rows are deleted
 *   sender.c    the publisher: connection events, acks, sending rows in order
 *   batching.c  with mqtt.batch, rows gathered into batches under their bounds
 *   quarantine.c  rows that cannot be sent set aside; the operator's retry, drop
 *   health.c    the health message
 *   reload.c    SIGHUP: a new config, keeping the store and, if it can, the session
 *   wallclock.c whether the wall clock is trusted; flagging and correcting ts
 *   gateway.c   start, the main loop, periodic chores, stop
 *   (avail.c, with its own header: each sensor's online/offline/degraded state)
 */
#ifndef CG_GATEWAY_PRIVATE_H
#define CG_GATEWAY_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/reading.h"
#include "gateway/avail.h"
#include "gateway/bus.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/lot.h"
#include "store/outbox.h"
#include "uplink/batch.h"
#include "uplink/encode.h"
#include "uplink/publisher.h"

/* Bytes of readings waiting for the main loop at most (a reading takes
 * 150 bytes plus about 80 per value); beyond, new ones are dropped and
 * counted: it only happens when the store itself is stuck. */
#define QUEUE_MAX_BYTES (8u << 20)
/* Bytes of queued readings that wake the main loop to take them, whatever
 * its commit batch waits for: a bus of 200 sensors polled back to back hands
 * over 90 KB in 40 ms, and the two buffers that the loop swaps would each
 * grow to hold all of it (docs/benchmarks.md, section 3). Taken at this
 * mark, they stay at their first size, QUEUE_START_BYTES. */
#define QUEUE_WAKE_BYTES  (8u << 10)
#define QUEUE_START_BYTES (16u << 10)
/* Encoded readings kept in memory while the disk is full. */
#define PENDING_MAX 100000
/* Rows per outbox transaction at most. */
#define PUT_BATCH 1000
/* Readings the publisher may hold beyond the in-flight window: a whole
 * commit batch, so that freshly committed rows go to it at once and the
 * window is refilled from the acknowledgements without waiting for us. */
#define SEND_AHEAD PUT_BATCH
/* Lot readings one bay reading (or one tick) may cause at most. */
#define LOTS_OUT_MAX 16
/* Reasons for refusal counted apart in health; more share the last entry. */
#define REFUSAL_KINDS 16
/* A refusal episode ends (and is logged with its count) after this long without one. */
#define REFUSAL_QUIET_MS 60000
/* How long a stopping gateway keeps publishing before it gives up. */
#define STOP_GRACE_MS 3000

/* Runs of readings flagged "unsynced" that wallclock.c keeps at most per run. */
#define CLOCK_SEGMENTS_MAX 256

/* Consecutive seqs staged with an untrusted wall clock and one offset from the boot
 * clock (wallclock.c). */
typedef struct clock_segment {
	int64_t first_seq, last_seq;
	int64_t offset_ms;    /* wall minus boot clock when they were made */
	bool resolved;        /* the clock has been trusted since: delta_ms is fixed */
	int64_t delta_ms;     /* what their ts move by */
	int64_t correct_from; /* lower seqs were handed over flagged and stay so */
} clock_segment_t;

/* The main loop's view of the wall clock (wallclock.c). */
struct gw_clock {
	cg_clock_state_t state;
	bool judged;        /* state holds a judgement */
	int64_t offset_ms;  /* wall minus boot clock at the last judgement */
	int64_t newest_ts;  /* newest ts made with a trusted clock, 0: none */
	int64_t store_base; /* the store's clock is store_base + the boot clock */
	int64_t sent_max;   /* highest seq handed to the publisher in this run */
	clock_segment_t *segs;
	size_t n_segs, cap_segs;
	uint64_t flagged, corrected;
};

/* Batches (mqtt.batch) the sender is filling, one per format (batching.c). */
#define GW_BATCH_FORMATS 3
typedef struct gw_batch {
	cg_batch_t *b;     /* NULL until the format's first row */
	int64_t oldest_ms; /* created_ms of its oldest row, on the store's clock */
	uint32_t expiry_s; /* the longest message expiry of its rows ... */
	bool no_expiry;    /* ... unless one of them has none */
} gw_batch_t;

/* Readings the broker refused for one reason: counted for health, logged
 * once per episode (its first reading, then the count when it ends). */
typedef struct gw_refusal {
	int reason;       /* the MQTT 5 reason code */
	uint64_t count;   /* since start */
	uint64_t episode; /* in the episode going on; 0: none */
	int64_t last_ms;  /* monotonic time of the last one */
} gw_refusal_t;

struct cg_gateway {
	cg_config_t *cfg; /* owned; replaced by a reload */
	cg_signals_t *sig;
	cg_encode_ctx_t ectx;
	cg_outbox_t *ob;
	cg_publisher_t *pub;
	cg_bus_t **buses;
	cg_lots_t *lots;
	cg_avail_t *avail;        /* the main loop's; replaced by a reload */
	cg_reading_t *lot_out;    /* LOTS_OUT_MAX readings */
	cg_reading_t *clock_copy; /* one reading, for gw_clock_check() */
	char status_topic[512];
	char health_topic[512];
	char batch_topic[512];

	/* Filled by bus workers and Paho callbacks, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool woken;
	unsigned char *queue; /* packed entries: see ingest.c */
	size_t queue_len, queue_cap;
	size_t queued;  /* readings handed over since the loop last took the queue */
	size_t wake_at; /* how many make a submit wake the loop (gw_wait_for_work) */
	uint64_t queue_dropped;
	uint64_t made;

	/* The main loop's own. */
	unsigned char *work; /* the queue swapped out */
	size_t work_cap;
	cg_reading_t scratch;     /* the reading being staged */
	cg_outbox_row_t *pending; /* encoded, seq assigned, not yet committed */
	size_t n_pending, cap_pending;
	int64_t pending_since;
	int64_t next_seq;
	int64_t stored_to; /* highest seq committed to the outbox */
	bool store_full;
	int64_t store_retry_ms;
	int64_t *acks; /* acknowledged seqs not yet deleted */
	size_t n_acks, cap_acks;
	int64_t acks_since;
	/* Sending: rows with seq >= live_from go out oldest first as fast as
	 * the window allows; older ones (the backlog at the last reconnect)
	 * at mqtt.replay_rate. Without a replay rate live_from is 1. Sent
	 * means handed to the publisher, which may still hold it in its queue. */
	int64_t live_from;
	int64_t cursor_live; /* highest live seq sent on this connection */
	int64_t cursor_back; /* highest backlog seq sent on this connection */
	double tokens;       /* backlog messages that may go now */
	int64_t tokens_ms;
	uint64_t generation; /* of the connection the cursors belong to */
	bool connected;
	uint64_t published;
	/* With mqtt.batch: rows taken past the cursors, not yet handed to the
	 * publisher (dropped by a rewind), and batches acknowledged. */
	gw_batch_t batch[GW_BATCH_FORMATS];
	uint64_t batches_acked;
	/* Refused readings (gw_refuse), per reason; they are in quarantine. */
	gw_refusal_t refusals[REFUSAL_KINDS];
	size_t n_refusals;
	uint64_t refused_total;
	uint64_t pending_dropped;
	int64_t started_ms; /* monotonic */
	struct gw_clock clock;
	int64_t next_health_ms;
	int64_t next_expire_ms;
	int64_t next_watchdog_ms;
	uint64_t watchdog_usec;
	uint64_t password_digest; /* of the password in use, 0 without one */
	/* Sends that failed without a disconnect are sent again after a back-off that
	 * doubles from reconnect_min_s to reconnect_max_s, and ends with an ack. */
	int64_t resend_at_ms;
	int64_t resend_backoff_ms;
	cg_log_limit_t resend_log;
	cg_log_limit_t quarantine_log;
	int64_t next_quarantine_ms;
};

typedef struct cg_gateway gw_t;

/* ingest.c: the only functions called by other threads (wake: Paho's). */
void gw_wake(void *ctx);
void gw_sink(void *ctx, const cg_reading_t *r, int format);
void gw_outcome_sink(void *ctx, const cg_poll_outcome_t *o);
/* Waits for a wake-up or until timeout_ms has passed. */
void gw_wait_for_work(gw_t *g, int64_t timeout_ms);
/* Encodes the queued readings into pending rows. */
void gw_take_readings(gw_t *g);

/* pipeline.c */
void gw_free_row(cg_outbox_row_t *row);
void gw_stage(gw_t *g, const cg_reading_t *r, int format);
void gw_stage_with_lots(gw_t *g, const cg_reading_t *r, int format);
bool gw_queue_row(gw_t *g, cg_outbox_row_t *row);
uint32_t gw_expiry_of(const cg_mqtt_config_t *m, const char *topic);
void gw_store_pending(gw_t *g, bool force);
void gw_flush_acks(gw_t *g, bool force);
void gw_add_ack(gw_t *g, int64_t seq);
int gw_open_outbox(gw_t *g);

/* sender.c */
void gw_take_events(gw_t *g);
void gw_refuse(gw_t *g, int64_t seq, int reason_code, const char *reason_text);
void gw_send_rows(gw_t *g);
uint64_t gw_secret_digest(const char *s);
int gw_open_publisher(gw_t *g);
void gw_close_publisher(gw_t *g);
void gw_rewind_cursors(gw_t *g);

/* batching.c: with mqtt.batch, gw_queue_row() hands rows to gw_batch_row(), which
 * has its contract; the rest is for the loop (what is due, how long to wait) and
 * for rewinds. */
bool gw_batch_row(gw_t *g, cg_outbox_row_t *row);
void gw_batch_send_due(gw_t *g, bool all);
int64_t gw_batch_wait_ms(const gw_t *g);
bool gw_batch_holds(const gw_t *g);
void gw_batch_clear(gw_t *g);
void gw_batch_free(gw_t *g);

/* quarantine.c */
bool gw_quarantine(gw_t *g, int64_t seq, const char *reason, bool log);
bool gw_quarantine_bad_topic(gw_t *g, const cg_outbox_row_t *row);
void gw_quarantine_chores(gw_t *g, int64_t now_mono_ms);

/* health.c */
void gw_publish_health(gw_t *g);

/* reload.c */
void gw_reload(gw_t *g);

/* wallclock.c */
void gw_clock_open(gw_t *g);
void gw_clock_judge(gw_t *g);
int64_t gw_store_now(const gw_t *g);
const cg_reading_t *gw_clock_check(gw_t *g, const cg_reading_t *r, cg_reading_t *copy);
void gw_clock_staged(gw_t *g, const cg_reading_t *r, int64_t seq);
void gw_clock_fix_row(gw_t *g, cg_outbox_row_t *row);
void gw_clock_sent(gw_t *g, int64_t seq);
void gw_clock_health(const gw_t *g, cg_buf_t *b);
void gw_clock_free(gw_t *g);

/* gateway.c */
void gw_set_encode_ctx(gw_t *g);
int gw_start_buses(gw_t *g);
void gw_stop_buses(gw_t *g);

#endif
