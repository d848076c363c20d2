/* The daemon's lifecycle and main loop: readings in, outbox, publisher out. */
#include "gateway.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "build_config.h"
#include "buf.h"
#include "bus.h"
#include "clock.h"
#include "encode.h"
#include "error.h"
#include "log.h"
#include "lot.h"
#include "outbox.h"
#include "publisher.h"

/* Readings waiting for the main loop beyond this are dropped (and counted):
 * it only happens when the store itself is stuck. */
#define QUEUE_MAX 20000
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
/* How long a stopping gateway keeps publishing before it gives up. */
#define STOP_GRACE_MS 3000

typedef struct queued {
	cg_reading_t r;
	int format;
} queued_t;

struct cg_gateway {
	cg_config_t *cfg; /* owned; replaced by a reload */
	cg_signals_t *sig;
	cg_encode_ctx_t ectx;
	cg_outbox_t *ob;
	cg_publisher_t *pub;
	cg_bus_t **buses;
	cg_lots_t *lots;
	cg_reading_t *lot_out; /* LOTS_OUT_MAX readings */
	char status_topic[512];
	char health_topic[512];

	/* Filled by bus workers and Paho callbacks, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool woken;
	queued_t *queue;
	size_t n_queue, cap_queue;
	uint64_t queue_dropped;
	uint64_t made;

	/* The main loop's own. */
	queued_t *work; /* the queue swapped out */
	size_t cap_work;
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
	uint64_t pending_dropped;
	int64_t started_ms;
	int64_t next_health_ms;
	int64_t next_expire_ms;
	int64_t next_watchdog_ms;
	uint64_t watchdog_usec;
	uint64_t password_digest; /* of the password in use, 0 without one */
};

typedef struct cg_gateway gw_t;

static void wake(void *ctx)
{
	gw_t *g = ctx;

	pthread_mutex_lock(&g->lock);
	g->woken = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void cg_gateway_submit(cg_gateway_t *g, const cg_reading_t *r, int format)
{
	pthread_mutex_lock(&g->lock);
	if (g->n_queue == g->cap_queue && g->cap_queue < QUEUE_MAX) {
		size_t cap = g->cap_queue ? g->cap_queue * 2 : 64;
		queued_t *q = realloc(g->queue, cap * sizeof(*q));
		if (q) {
			g->queue = q;
			g->cap_queue = cap;
		}
	}
	if (g->n_queue < g->cap_queue) {
		queued_t *q = &g->queue[g->n_queue++];
		/* The values in use only: a whole reading is about 3 KB, mostly
		 * room for values few sensors have. */
		size_t n = r->n_values;

		if (n > CG_READING_MAX_VALUES)
			n = CG_READING_MAX_VALUES;
		memcpy(&q->r, r, offsetof(cg_reading_t, values) + n * sizeof(r->values[0]));
		q->r.n_values = n;
		q->format = format;
		g->made++;
	} else {
		g->queue_dropped++;
	}
	g->woken = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* The bus workers' sink. */
static void sink(void *ctx, const cg_reading_t *r, int format)
{
	cg_gateway_submit(ctx, r, format);
}

/* Waits for a wake-up or until timeout_ms has passed. */
static void wait_for_work(gw_t *g, int64_t timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (!g->woken && !g->sig->stop &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &ts) != ETIMEDOUT)
		;
	g->woken = false;
	pthread_mutex_unlock(&g->lock);
}

static void free_row(cg_outbox_row_t *row)
{
	free(row->topic);
	free(row->payload);
}

/* Encodes one reading into a pending row with the next seq: seq is
 * assigned here, in one thread, in the order readings arrive. A reading
 * that cannot be staged is counted as dropped. */
static void stage(gw_t *g, const cg_reading_t *r, int format)
{
	int fmt = format >= 0 ? format : (int)g->cfg->mqtt.format;
	char topic[512];
	cg_outbox_row_t row = {0};
	int rc;

	if (g->n_pending == g->cap_pending) {
		size_t cap = g->cap_pending ? g->cap_pending * 2 : 256;
		cg_outbox_row_t *p = realloc(g->pending, cap * sizeof(*p));
		if (!p) {
			g->pending_dropped++;
			return;
		}
		g->pending = p;
		g->cap_pending = cap;
	}
	rc = cg_topic_reading(topic, sizeof(topic), g->cfg->mqtt.topic_prefix, g->cfg->gateway_id,
	                      r->kind, r->sensor);
	if (rc == CG_OK)
		rc = cg_encode((cg_format_t)fmt, &g->ectx, r, g->next_seq, &row.payload, &row.len);
	if (rc == CG_OK && !(row.topic = strdup(topic)))
		rc = CG_ENOMEM;
	if (rc < 0) {
		free_row(&row);
		g->pending_dropped++;
		cg_log(CG_LOG_ERR, "sensor %s: cannot encode a reading: %s", r->sensor,
		       cg_strerror(rc));
		return;
	}
	row.seq = g->next_seq++;
	row.created_ms = cg_now_ms();
	if (g->n_pending == 0)
		g->pending_since = cg_mono_ms();
	g->pending[g->n_pending++] = row;
}

/* Stages a reading, then the lot readings it changes. */
static void stage_with_lots(gw_t *g, const cg_reading_t *r, int format)
{
	size_t n;

	stage(g, r, format);
	n = cg_lots_update(g->lots, r, cg_mono_ms(), g->lot_out, LOTS_OUT_MAX);
	for (size_t i = 0; i < n; i++)
		stage(g, &g->lot_out[i], -1);
}

/* Encodes the queued readings into pending rows. */
static void take_readings(gw_t *g)
{
	queued_t *t;
	size_t n, c;

	pthread_mutex_lock(&g->lock);
	t = g->queue;
	g->queue = g->work;
	g->work = t;
	n = g->n_queue;
	g->n_queue = 0;
	c = g->cap_queue;
	g->cap_queue = g->cap_work;
	g->cap_work = c;
	pthread_mutex_unlock(&g->lock);

	for (size_t i = 0; i < n; i++)
		stage_with_lots(g, &g->work[i].r, g->work[i].format);
	/* While the disk is full, memory holds what the store cannot; beyond a
	 * bound the oldest go, as the outbox's own limits would do. */
	if (g->n_pending > PENDING_MAX) {
		size_t drop = g->n_pending - PENDING_MAX;
		for (size_t i = 0; i < drop; i++)
			free_row(&g->pending[i]);
		memmove(g->pending, g->pending + drop, PENDING_MAX * sizeof(*g->pending));
		g->n_pending = PENDING_MAX;
		g->pending_dropped += drop;
	}
}

/* Queues one row for publishing, handing its strings to the publisher.
 * Returns false when the publisher cannot take it now (the row keeps its
 * strings). */
static bool queue_row(gw_t *g, cg_outbox_row_t *row)
{
	if (cg_publisher_queue(g->pub, row->seq, row->topic, row->payload, row->len,
	                       g->cfg->mqtt.qos) < 0)
		return false;
	row->topic = NULL;
	row->payload = NULL;
	return true;
}

/* Rows just committed go straight to the publisher when everything stored
 * before them has been sent on this connection: reading them back from the
 * outbox would only copy them again. What does not fit is freed and read
 * back later. */
static void hand_over(gw_t *g, cg_outbox_row_t *rows, size_t n, int64_t stored_before)
{
	size_t i = 0;

	if (g->connected && g->cursor_live >= stored_before && n > 0 &&
	    rows[0].seq > g->cursor_live) {
		for (; i < n && queue_row(g, &rows[i]); i++)
			g->cursor_live = rows[i].seq;
	}
	for (; i < n; i++)
		free_row(&rows[i]);
}

/* Commits pending rows in batches when enough have gathered, when the oldest
 * has waited batch_ms, or when forced. A full disk keeps them pending and is
 * retried every second. */
static void store_pending(gw_t *g, bool force)
{
	int64_t now = cg_mono_ms();
	size_t done = 0;

	if (g->n_pending == 0)
		return;
	if (!force && g->n_pending < PUT_BATCH && now - g->pending_since < g->cfg->store.batch_ms)
		return;
	if (g->store_full && now < g->store_retry_ms && !force)
		return;
	while (done < g->n_pending) {
		size_t n = g->n_pending - done;
		int rc;

		if (n > PUT_BATCH)
			n = PUT_BATCH;
		rc = cg_outbox_put(g->ob, g->pending + done, n);
		if (rc == CG_EFULL) {
			g->store_full = true;
			g->store_retry_ms = now + 1000;
			break;
		}
		g->store_full = false;
		if (rc < 0) {
			/* Not a full disk: the rows cannot be stored at all. Dropping
			 * them is better than retrying for ever; the gap in seq shows it. */
			cg_log(CG_LOG_ERR, "outbox: %zu readings lost: %s", n, cg_strerror(rc));
			g->pending_dropped += n;
			for (size_t i = done; i < done + n; i++)
				free_row(&g->pending[i]);
		} else {
			int64_t before = g->stored_to;

			g->stored_to = g->pending[done + n - 1].seq;
			hand_over(g, g->pending + done, n, before);
		}
		done += n;
	}
	memmove(g->pending, g->pending + done, (g->n_pending - done) * sizeof(*g->pending));
	g->n_pending -= done;
	if (g->n_pending)
		g->pending_since = now;
}

/* Deletes acknowledged rows, batched like inserts. */
static void flush_acks(gw_t *g, bool force)
{
	int rc;

	if (g->n_acks == 0)
		return;
	if (!force && g->n_acks < PUT_BATCH &&
	    cg_mono_ms() - g->acks_since < g->cfg->store.batch_ms)
		return;
	rc = cg_outbox_ack(g->ob, g->acks, g->n_acks);
	if (rc < 0) {
		/* The rows stay and are sent again after a restart: a duplicate,
		 * never a loss. Keep the list small. */
		cg_log(CG_LOG_WARNING, "outbox: cannot delete %zu delivered rows: %s", g->n_acks,
		       cg_strerror(rc));
	}
	g->n_acks = 0;
}

static void add_ack(gw_t *g, int64_t seq)
{
	if (g->n_acks == g->cap_acks) {
		size_t cap = g->cap_acks ? g->cap_acks * 2 : 256;
		int64_t *a = realloc(g->acks, cap * sizeof(*a));
		if (!a)
			return;
		g->acks = a;
		g->cap_acks = cap;
	}
	if (g->n_acks == 0)
		g->acks_since = cg_mono_ms();
	g->acks[g->n_acks++] = seq;
}

/* Builds the retained status message. */
static char *status_payload(const gw_t *g, const char *state, bool with_ts)
{
	cg_buf_t b = {0};
	char ts[32];

	cg_buf_puts(&b, "{\"gateway\":");
	cg_buf_json_string(&b, g->cfg->gateway_id);
	cg_buf_printf(&b, ",\"state\":\"%s\"", state);
	if (with_ts) {
		cg_rfc3339(cg_now_ms(), ts, sizeof(ts));
		cg_buf_printf(&b, ",\"ts\":\"%s\"", ts);
	}
	cg_buf_puts(&b, ",\"version\":\"" CG_VERSION "\"}");
	if (cg_buf_failed(&b)) {
		cg_buf_free(&b);
		return NULL;
	}
	return cg_buf_take(&b, NULL);
}

/* Starts sending again from the oldest unacknowledged row of each stream. */
static void rewind_cursors(gw_t *g)
{
	cg_publisher_discard(g->pub);
	g->cursor_live = g->live_from - 1;
	g->cursor_back = 0;
}

/* Handles acknowledgements, failures and connection changes from Paho. On a
 * new connection everything unacknowledged is sent again from the oldest
 * row: the broker dropped the old session (clean session), so what was in
 * flight may or may not have arrived; the same seq makes any duplicate
 * recognisable. */
static void take_events(gw_t *g)
{
	cg_publisher_events_t ev;

	cg_publisher_take(g->pub, &ev);
	for (size_t i = 0; i < ev.n_acked; i++)
		add_ack(g, ev.acked[i]);
	g->published += ev.n_acked;
	if (ev.n_failed && ev.connected && ev.generation == g->generation) {
		/* A send failed without a disconnect: rewind so it goes again. */
		flush_acks(g, true);
		rewind_cursors(g);
	}
	g->connected = ev.connected;
	if (ev.connected && ev.generation != g->generation) {
		char *online = status_payload(g, "online", true);

		g->generation = ev.generation;
		flush_acks(g, true);
		/* What is stored now is the backlog; with a replay rate it drains
		 * at that rate beside live readings. */
		g->live_from = g->cfg->mqtt.replay_rate > 0 ? g->stored_to + 1 : 1;
		g->tokens = 0;
		g->tokens_ms = cg_mono_ms();
		rewind_cursors(g);
		if (online) {
			cg_publisher_send(g->pub, -1, g->status_topic, online, strlen(online), 1,
			                  true);
			free(online);
		}
	}
}

/* Sends up to max rows of one stream (after *cursor, before before_seq),
 * oldest first; returns how many went and sets *all when the stream had no
 * more. Stops at the first refusal: a full window, or a lost connection. */
static size_t send_stream(gw_t *g, int64_t *cursor, int64_t before_seq, size_t max, bool *all)
{
	cg_outbox_row_t *rows = NULL;
	size_t n = 0, sent = 0;
	int rc = cg_outbox_fetch(g->ob, *cursor, before_seq, max, &rows, &n);

	*all = false;
	if (rc < 0)
		return 0;
	for (; sent < n && queue_row(g, &rows[sent]); sent++)
		*cursor = rows[sent].seq;
	cg_outbox_rows_free(rows, n);
	*all = sent == n && n < max;
	return sent;
}

/* Keeps the publisher's window and queue full: live rows first, oldest
 * first, then the backlog of the last reconnect as far as the replay rate's
 * tokens allow, so a day of backlog cannot flood the broker or hold back
 * fresh readings. Rows committed while the live stream was caught up went
 * to the publisher at the commit (hand_over), so the outbox is only read
 * when the stream is behind what is stored. */
static void send_rows(gw_t *g)
{
	double rate = g->cfg->mqtt.replay_rate;
	size_t room;
	bool all;

	/* A fetch costs a statement and a read transaction however few rows it
	 * brings, so the outbox is read in batches: while the publisher holds
	 * more than half its send-ahead, that keeps the window full, and it
	 * wakes us when it runs below half. */
	while (g->connected && g->cursor_live < g->stored_to &&
	       (room = cg_publisher_room(g->pub)) >= SEND_AHEAD / 2) {
		size_t sent = send_stream(g, &g->cursor_live, 0, room, &all);
		if (all)
			g->cursor_live = g->stored_to;
		if (sent < room)
			break;
	}
	if (!g->connected || g->live_from <= 1 || g->cursor_back >= g->live_from - 1)
		return;
	if (rate > 0) {
		int64_t now = cg_mono_ms();
		double cap = rate > 1 ? rate : 1;

		g->tokens += rate * (double)(now - g->tokens_ms) / 1000.0;
		if (g->tokens > cap)
			g->tokens = cap;
		g->tokens_ms = now;
	}
	room = cg_publisher_room(g->pub);
	if (room > (size_t)g->tokens)
		room = (size_t)g->tokens;
	if (room == 0)
		return;
	g->tokens -= (double)send_stream(g, &g->cursor_back, g->live_from, room, &all);
	/* Nothing more below live_from: the backlog has drained. */
	if (all)
		g->cursor_back = g->live_from - 1;
}

/* Appends one bus's counters to a health message; adds its failed polls to *failed. */
static void health_bus(cg_buf_t *b, const cg_bus_stats_t *bs, bool first, uint64_t *failed)
{
	char ts[32];

	cg_buf_printf(b, "%s{\"id\":", first ? "" : ",");
	cg_buf_json_string(b, bs->id);
	cg_buf_printf(b,
	              ",\"open\":%s,\"requests\":%llu,\"noise_bytes\":%llu,\"bad_frames\":%llu,"
	              "\"sensors\":[",
	              bs->open ? "true" : "false", (unsigned long long)bs->requests,
	              (unsigned long long)bs->noise_bytes, (unsigned long long)bs->bad_frames);
	for (size_t j = 0; j < bs->n_sensors; j++) {
		const cg_sensor_stats_t *s = &bs->sensors[j];

		*failed += s->polls - s->ok;
		cg_buf_printf(b, "%s{\"id\":", j ? "," : "");
		cg_buf_json_string(b, s->id);
		cg_buf_printf(b,
		              ",\"polls\":%llu,\"ok\":%llu,\"timeouts\":%llu,\"crc_errors\":%llu,"
		              "\"exceptions\":%llu,\"frame_errors\":%llu,\"io_errors\":%llu,"
		              "\"last_success\":",
		              (unsigned long long)s->polls, (unsigned long long)s->ok,
		              (unsigned long long)s->timeouts, (unsigned long long)s->crc_errors,
		              (unsigned long long)s->exceptions,
		              (unsigned long long)s->frame_errors,
		              (unsigned long long)s->io_errors);
		if (s->last_success_ms) {
			cg_rfc3339(s->last_success_ms, ts, sizeof(ts));
			cg_buf_printf(b, "\"%s\"", ts);
		} else {
			cg_buf_puts(b, "null");
		}
		cg_buf_puts(b, ",\"backoff_s\":");
		cg_buf_json_number(b, s->backoff_s);
		cg_buf_puts(b, "}");
	}
	cg_buf_puts(b, "]}");
}

/* Publishes the health message: outbox, readings, connection and per-bus,
 * per-sensor counters (schemas/health.schema.json). Not stored: a health
 * message that cannot go now is worthless later. The bus counters are
 * gathered first because the readings' "failed" sums them. */
static void publish_health(gw_t *g)
{
	cg_outbox_stats_t os = {0};
	cg_buf_t buses = {0}, b = {0};
	char ts[32];
	uint64_t made, qdrop, failed = 0;
	int64_t now = cg_now_ms();

	if (!g->connected)
		return;
	for (size_t i = 0; i < g->cfg->n_buses; i++) {
		cg_bus_stats_t bs;

		if (cg_bus_stats(g->buses[i], &bs) < 0)
			continue;
		health_bus(&buses, &bs, buses.len == 0, &failed);
		free(bs.sensors);
	}
	cg_outbox_stats(g->ob, &os);
	pthread_mutex_lock(&g->lock);
	made = g->made;
	qdrop = g->queue_dropped;
	pthread_mutex_unlock(&g->lock);
	cg_rfc3339(now, ts, sizeof(ts));
	cg_buf_puts(&b, "{\"gateway\":");
	cg_buf_json_string(&b, g->cfg->gateway_id);
	cg_buf_printf(&b, ",\"ts\":\"%s\",\"uptime_s\":%lld", ts,
	              (long long)((now - g->started_ms) / 1000));
	cg_buf_printf(&b,
	              ",\"outbox\":{\"rows\":%lld,\"bytes\":%lld,\"oldest_age_s\":%lld,"
	              "\"next_seq\":%lld,\"dropped\":%lld}",
	              (long long)os.rows, (long long)os.bytes,
	              (long long)(os.oldest_ms ? (now - os.oldest_ms) / 1000 : 0),
	              (long long)os.next_seq, (long long)os.dropped);
	cg_buf_printf(&b,
	              ",\"readings\":{\"made\":%llu,\"published\":%llu,\"failed\":%llu,"
	              "\"dropped\":%llu}",
	              (unsigned long long)made, (unsigned long long)g->published,
	              (unsigned long long)failed, (unsigned long long)(qdrop + g->pending_dropped));
	cg_buf_printf(&b, ",\"mqtt\":{\"connected\":%s,\"reconnects\":%llu}",
	              g->connected ? "true" : "false",
	              (unsigned long long)cg_publisher_reconnects(g->pub));
	cg_buf_puts(&b, ",\"buses\":[");
	if (buses.len)
		cg_buf_append(&b, buses.data, buses.len);
	cg_buf_puts(&b, "]}");
	if (!cg_buf_failed(&b) && !cg_buf_failed(&buses))
		cg_publisher_send(g->pub, -1, g->health_topic, b.data, b.len, g->cfg->mqtt.qos,
		                  false);
	cg_buf_free(&buses);
	cg_buf_free(&b);
}

/* Periodic chores: age limit, health, systemd watchdog and status. The
 * watchdog is pinged from this loop, so a wedged loop stops the pings. */
static void chores(gw_t *g)
{
	int64_t now = cg_mono_ms();

	if (g->lots) {
		size_t n = cg_lots_due(g->lots, now, g->lot_out, LOTS_OUT_MAX);
		for (size_t i = 0; i < n; i++)
			stage(g, &g->lot_out[i], -1);
	}
	if (now >= g->next_expire_ms) {
		cg_outbox_expire(g->ob, cg_now_ms());
		g->next_expire_ms = now + 60000;
	}
	if (now >= g->next_health_ms) {
		publish_health(g);
		g->next_health_ms = now + (int64_t)(g->cfg->health_interval_s * 1000.0);
	}
	if (g->watchdog_usec && now >= g->next_watchdog_ms) {
		cg_outbox_stats_t os = {0};

		cg_outbox_stats(g->ob, &os);
		sd_notifyf(0, "WATCHDOG=1\nSTATUS=%s; %lld readings waiting in the outbox",
		           g->connected ? "connected" : "broker unreachable", (long long)os.rows);
		g->next_watchdog_ms = now + (int64_t)(g->watchdog_usec / 2000);
	}
}

/* A digest of the password, so that a reload can tell a changed password
 * file without keeping the secret itself (FNV-1a; not a security measure,
 * only a change detector). */
static uint64_t secret_digest(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return s ? h : 0;
}

/* Reads the password file, if any. */
static int read_password(const cg_config_t *cfg, char **out)
{
	int rc;

	*out = NULL;
	if (!cfg->mqtt.password_file)
		return CG_OK;
	rc = cg_config_read_secret(cfg->mqtt.password_file, out);
	if (rc < 0)
		cg_log(CG_LOG_ERR, "mqtt: password file %s: %s", cfg->mqtt.password_file,
		       rc == CG_EPERM ? "readable by group or others; chmod 600 it"
		                      : "cannot be read");
	return rc;
}

/* Opens the outbox at the config's path with its limits. */
static int open_outbox(gw_t *g)
{
	const cg_config_t *cfg = g->cfg;
	cg_outbox_opts_t oo = {
	    .max_rows = cfg->store.max_rows,
	    .max_bytes = cfg->store.max_bytes,
	    .max_age_s = cfg->store.max_age_s,
	    .sync_full = cfg->store.sync_full,
	};
	int64_t stored_next;
	int rc = cg_outbox_open(cfg->store.path, &oo, &g->ob);

	if (rc < 0) {
		cg_log(CG_LOG_ERR, "outbox %s: cannot open: %s", cfg->store.path, cg_strerror(rc));
		return rc;
	}
	/* Rows still pending in memory (a full disk) keep the seqs they have. */
	stored_next = cg_outbox_next_seq(g->ob);
	if (stored_next > g->next_seq)
		g->next_seq = stored_next;
	g->stored_to = stored_next - 1;
	return CG_OK;
}

/* Creates the publisher for the config's broker; it connects from the loop. */
static int open_publisher(gw_t *g)
{
	const cg_config_t *cfg = g->cfg;
	cg_publisher_opts_t po = {0};
	char *offline = NULL, *password = NULL;
	int rc = read_password(cfg, &password);
	uint64_t digest = secret_digest(password);

	if (rc < 0)
		return rc;
	cg_topic_gateway(g->status_topic, sizeof(g->status_topic), cfg->mqtt.topic_prefix,
	                 cfg->gateway_id, "status");
	cg_topic_gateway(g->health_topic, sizeof(g->health_topic), cfg->mqtt.topic_prefix,
	                 cfg->gateway_id, "health");
	/* The Last Will is registered once, so its ts is the time of start-up;
	 * a clean stop publishes a fresh one. */
	offline = status_payload(g, "offline", true);
	po.uri = cfg->mqtt.uri;
	po.client_id = cfg->mqtt.client_id;
	po.username = cfg->mqtt.username;
	po.password = password;
	po.ca_file = cfg->mqtt.ca_file;
	po.cert_file = cfg->mqtt.cert_file;
	po.key_file = cfg->mqtt.key_file;
	po.keepalive_s = cfg->mqtt.keepalive_s;
	po.max_inflight = cfg->mqtt.inflight;
	po.max_queued = SEND_AHEAD;
	po.ack_batch = PUT_BATCH;
	po.reconnect_min_s = cfg->mqtt.reconnect_min_s;
	po.reconnect_max_s = cfg->mqtt.reconnect_max_s;
	po.status_topic = g->status_topic;
	po.offline_payload = offline;
	po.notify = wake;
	po.notify_ctx = g;
	rc = offline ? cg_publisher_new(&po, &g->pub) : CG_ENOMEM;
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(offline);
	g->password_digest = digest;
	/* A new client starts a new session: everything unacknowledged goes again. */
	g->generation = 0;
	g->connected = false;
	return rc;
}

/* Starts the lots and one worker per bus of the config. */
static int start_buses(gw_t *g)
{
	int rc = cg_lots_new(g->cfg, &g->lots);

	if (rc < 0)
		return rc;
	g->buses = calloc(g->cfg->n_buses ? g->cfg->n_buses : 1, sizeof(*g->buses));
	if (!g->buses)
		return CG_ENOMEM;
	for (size_t i = 0; i < g->cfg->n_buses; i++) {
		rc = cg_bus_start(g->cfg, i, sink, g, &g->buses[i]);
		if (rc < 0)
			return rc;
	}
	return CG_OK;
}

/* Stops every bus worker (each finishes its current request) and commits
 * the readings they handed over. */
static void stop_buses(gw_t *g)
{
	for (size_t i = 0; g->buses && i < g->cfg->n_buses; i++)
		cg_bus_stop(g->buses[i]);
	free(g->buses);
	g->buses = NULL;
	take_readings(g);
	store_pending(g, true);
	/* Lots count bays of one config; a reload starts them afresh. */
	cg_lots_free(g->lots);
	g->lots = NULL;
}

/* Publishes the clean-stop status and destroys the publisher. */
static void close_publisher(gw_t *g)
{
	char *offline;

	if (!g->pub)
		return;
	offline = status_payload(g, "offline", true);
	cg_publisher_stop(g->pub, offline, 1000);
	free(offline);
	cg_publisher_free(g->pub);
	g->pub = NULL;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* True when two configs reach the broker the same way, so that a reload can
 * keep the MQTT session. A changed password in the same file is caught by
 * password_changed(). */
static bool same_broker(const cg_config_t *a, const cg_config_t *b)
{
	const cg_mqtt_config_t *x = &a->mqtt, *y = &b->mqtt;

	return same_str(a->gateway_id, b->gateway_id) && same_str(x->uri, y->uri) &&
	       same_str(x->topic_prefix, y->topic_prefix) && same_str(x->client_id, y->client_id) &&
	       same_str(x->username, y->username) && same_str(x->password_file, y->password_file) &&
	       same_str(x->ca_file, y->ca_file) && same_str(x->cert_file, y->cert_file) &&
	       same_str(x->key_file, y->key_file) && x->keepalive_s == y->keepalive_s &&
	       x->inflight == y->inflight && x->reconnect_min_s == y->reconnect_min_s &&
	       x->reconnect_max_s == y->reconnect_max_s;
}

/* Whether the password in next's file differs from the one in use; an
 * unreadable file counts as changed, so that the new session reports it. */
static bool password_changed(const gw_t *g, const cg_config_t *next)
{
	char *password = NULL;
	uint64_t digest;

	if (next->mqtt.password_file &&
	    cg_config_read_secret(next->mqtt.password_file, &password) < 0)
		return true;
	digest = secret_digest(password);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	return digest != g->password_digest;
}

static bool same_store(const cg_store_config_t *a, const cg_store_config_t *b)
{
	return a->max_rows == b->max_rows && a->max_bytes == b->max_bytes &&
	       a->max_age_s == b->max_age_s && a->sync_full == b->sync_full;
}

static void set_encode_ctx(gw_t *g)
{
	g->ectx.gateway_id = g->cfg->gateway_id;
	g->ectx.has_location = g->cfg->has_location;
	g->ectx.lat = g->cfg->lat;
	g->ectx.lon = g->cfg->lon;
}

/* SIGHUP: reads the config file again. An invalid one is refused with the
 * --check lines in the log and the running one goes on. A valid one
 * replaces buses and sensors; the outbox and seq are kept, and so is the
 * MQTT session unless the broker settings changed. The store's path cannot
 * change without a restart (the undelivered rows are in the old file). */
static void reload(gw_t *g)
{
	cg_diag_t diag = {0};
	cg_config_t *next = NULL;
	bool keep_session, reopen_store;
	int rc;

	sd_notify(0, "RELOADING=1");
	cg_config_load(g->cfg->path, &next, &diag);
	for (size_t i = 0; i < diag.n; i++)
		cg_log(CG_LOG_ERR, "%s", diag.lines[i]);
	cg_diag_free(&diag);
	if (!next) {
		cg_log(CG_LOG_ERR, "reload refused: %s is invalid; the running config stays",
		       g->cfg->path);
		sd_notify(0, "READY=1");
		return;
	}
	if (strcmp(next->store.path, g->cfg->store.path) != 0) {
		cg_log(CG_LOG_WARNING,
		       "reload: store.path changed to %s; it takes effect at the "
		       "next restart, the outbox stays %s",
		       next->store.path, g->cfg->store.path);
		free(next->store.path);
		next->store.path = strdup(g->cfg->store.path);
		if (!next->store.path) {
			cg_config_free(next);
			sd_notify(0, "READY=1");
			return;
		}
	}
	keep_session = same_broker(g->cfg, next) && !password_changed(g, next);
	reopen_store = !same_store(&g->cfg->store, &next->store);

	/* Everything made under the old config is encoded with it first. */
	stop_buses(g);
	if (!keep_session)
		close_publisher(g);
	if (reopen_store) {
		flush_acks(g, true);
		cg_outbox_close(g->ob);
		g->ob = NULL;
	}
	cg_config_free(g->cfg);
	g->cfg = next;
	set_encode_ctx(g);
	rc = reopen_store ? open_outbox(g) : CG_OK;
	if (rc == CG_OK && !keep_session)
		rc = open_publisher(g);
	if (rc == CG_OK)
		rc = start_buses(g);
	if (rc < 0) {
		/* Without a store or a client the gateway cannot keep its promise
		 * not to lose data: stop, and let systemd restart it. */
		cg_log(CG_LOG_ERR, "reload failed: %s; stopping", cg_strerror(rc));
		g->sig->stop = 1;
		return;
	}
	g->next_health_ms = cg_mono_ms() + (int64_t)(g->cfg->health_interval_s * 1000.0);
	cg_log(CG_LOG_INFO, "reloaded %s: %zu buses, %zu sensors; MQTT session %s", g->cfg->path,
	       g->cfg->n_buses, g->cfg->n_sensors, keep_session ? "kept" : "renewed");
	sd_notify(0, "READY=1");
}

/* Stops in the order data flows: no new readings, commit what is queued,
 * publish for a short grace period, delete what was acknowledged, publish
 * the offline status. Whatever is still unacknowledged stays in the outbox
 * for the next start. */
static void stop(gw_t *g)
{
	int64_t deadline;

	if (!g->ob)
		return;
	stop_buses(g);
	deadline = cg_mono_ms() + STOP_GRACE_MS;
	while (g->pub && g->connected && cg_mono_ms() < deadline) {
		cg_outbox_stats_t os;

		take_events(g);
		send_rows(g);
		cg_outbox_stats(g->ob, &os);
		if (os.rows - (int64_t)g->n_acks <= 0)
			break;
		wait_for_work(g, 20);
	}
	if (g->pub)
		take_events(g);
	flush_acks(g, true);
	if (g->n_pending)
		cg_log(CG_LOG_WARNING, "outbox: %zu readings could not be stored before exit",
		       g->n_pending);
	close_publisher(g);
}

int cg_gateway_new(cg_config_t *cfg, cg_gateway_t **out)
{
	pthread_condattr_t ca;
	gw_t *g;
	int rc;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g) {
		cg_config_free(cfg);
		return CG_ENOMEM;
	}
	g->cfg = cfg;
	set_encode_ctx(g);
	g->started_ms = cg_now_ms();
	g->lot_out = calloc(LOTS_OUT_MAX, sizeof(*g->lot_out));
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = g->lot_out ? open_outbox(g) : CG_ENOMEM;
	if (rc == CG_OK)
		rc = open_publisher(g);
	if (rc < 0) {
		cg_gateway_free(g);
		return rc;
	}
	*out = g;
	return CG_OK;
}

int cg_gateway_run(cg_gateway_t *g, cg_signals_t *sig)
{
	int rc;

	g->sig = sig;
	rc = start_buses(g);
	if (rc < 0) {
		stop(g);
		return rc;
	}
	g->next_health_ms = cg_mono_ms() + (int64_t)(g->cfg->health_interval_s * 1000.0);
	if (sd_watchdog_enabled(0, &g->watchdog_usec) <= 0)
		g->watchdog_usec = 0;
	cg_log(CG_LOG_INFO,
	       "citygate %s: gateway %s, %zu buses, %zu sensors, outbox %s (next seq %lld)",
	       CG_VERSION, g->cfg->gateway_id, g->cfg->n_buses, g->cfg->n_sensors,
	       g->cfg->store.path, (long long)g->next_seq);
	sd_notify(0, "READY=1\nSTATUS=running");

	while (!sig->stop) {
		if (sig->reload) {
			sig->reload = 0;
			reload(g);
			continue;
		}
		cg_publisher_tick(g->pub, cg_mono_ms());
		take_readings(g);
		store_pending(g, false);
		take_events(g);
		flush_acks(g, false);
		send_rows(g);
		chores(g);
		wait_for_work(g, g->n_pending || g->n_acks ? g->cfg->store.batch_ms / 2 + 1 : 100);
	}
	sd_notify(0, "STOPPING=1");
	cg_log(CG_LOG_INFO, "stopping: committing and publishing what is left");
	stop(g);
	cg_log(CG_LOG_INFO, "stopped");
	return CG_OK;
}

void cg_gateway_free(cg_gateway_t *g)
{
	if (!g)
		return;
	for (size_t i = 0; g->buses && i < g->cfg->n_buses; i++)
		cg_bus_stop(g->buses[i]);
	free(g->buses);
	cg_lots_free(g->lots);
	free(g->lot_out);
	cg_publisher_free(g->pub);
	cg_outbox_close(g->ob);
	for (size_t i = 0; i < g->n_pending; i++)
		free_row(&g->pending[i]);
	free(g->pending);
	free(g->queue);
	free(g->work);
	free(g->acks);
	cg_config_free(g->cfg);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
