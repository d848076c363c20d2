/* From store to broker: connection events, acknowledgements and refusals
 * from the publisher, the retained status, and sending stored rows oldest
 * first with the replay pacing of a backlog. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/build_config.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/secret.h"
#include "gateway/gateway_private.h"

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

/* The counters of one reason; reasons beyond REFUSAL_KINDS share the last. */
static gw_refusal_t *refusal_kind(gw_t *g, int reason)
{
	for (size_t i = 0; i < g->n_refusals; i++)
		if (g->refusals[i].reason == reason)
			return &g->refusals[i];
	if (g->n_refusals == REFUSAL_KINDS)
		return &g->refusals[REFUSAL_KINDS - 1];
	g->refusals[g->n_refusals] = (gw_refusal_t){.reason = reason};
	return &g->refusals[g->n_refusals++];
}

/*
 * Reading seq will not be taken as it is (reason_code, an MQTT 5 reason, in
 * words reason_text): it is not delivered, so it is not acknowledged; it
 * moves to quarantine with its reason (citygate --quarantine list, retry
 * once the broker is fixed), so the rows behind it go on, and it is counted
 * per reason for health. Logged once per episode: the first refusal with
 * its topic, then the count when REFUSAL_QUIET_MS pass without another
 * (end_refusal_episodes).
 */
void gw_refuse(gw_t *g, int64_t seq, int reason_code, const char *reason_text)
{
	gw_refusal_t *k;
	cg_outbox_row_t *rows = NULL;
	char reason[224];
	size_t n = 0;

	/* Another copy of it was acknowledged (a resend after a rewind): it was
	 * delivered, and its refused duplicate is no loss. */
	for (size_t i = 0; i < g->n_acks; i++)
		if (g->acks[i] == seq)
			return;
	k = refusal_kind(g, reason_code);
	snprintf(reason, sizeof(reason), "refused: %s (reason 0x%02x)", reason_text,
	         (unsigned)reason_code);
	if (k->episode == 0)
		cg_outbox_fetch(g->ob, seq - 1, seq + 1, 1, &rows, &n);
	/* Not held any more (refused twice, or acknowledged meanwhile): counted once. */
	if (gw_quarantine(g, seq, reason, false)) {
		k->count++;
		g->refused_total++;
		k->last_ms = cg_mono_ms();
		/* With mqtt.batch the broker refused the batch topic, which is the
		 * one an ACL must allow; the reading's own topic says which sensor. */
		if (k->episode++ == 0)
			cg_log(CG_LOG_WARNING,
			       "mqtt: reading seq %lld on %s%s%s %s; not delivered, moved to "
			       "quarantine (citygate --quarantine list); further refusals for this "
			       "reason are counted in health",
			       (long long)seq, n ? rows[0].topic : "(topic not found)",
			       g->cfg->mqtt.batch ? ", sent in a batch on " : "",
			       g->cfg->mqtt.batch ? g->batch_topic : "", reason);
	}
	cg_outbox_rows_free(rows, n);
}

/* Ends the refusal episodes that have been quiet for REFUSAL_QUIET_MS, each
 * with one line that says how many readings it refused. */
static void end_refusal_episodes(gw_t *g)
{
	int64_t now = cg_mono_ms();

	for (size_t i = 0; i < g->n_refusals; i++) {
		gw_refusal_t *k = &g->refusals[i];

		if (k->episode == 0 || now - k->last_ms < REFUSAL_QUIET_MS)
			continue;
		cg_log(CG_LOG_INFO,
		       "mqtt: %llu readings refused (%s, reason 0x%02x), none for %d s",
		       (unsigned long long)k->episode, cg_publisher_reason_name(k->reason),
		       (unsigned)k->reason, REFUSAL_QUIET_MS / 1000);
		k->episode = 0;
	}
}

/* Hands the publisher's refusals to gw_refuse, with their reason in words. */
static void take_refusals(gw_t *g, const cg_publisher_events_t *ev)
{
	for (size_t i = 0; i < ev->n_refused; i++) {
		const cg_publisher_refusal_t *r = &ev->refused[i];
		char text[160];

		if (r->client_code)
			snprintf(text, sizeof(text), "the MQTT client refused it: %s (code %d)",
			         cg_publisher_refusal_text(r), r->client_code);
		else if (r->local)
			snprintf(
			    text, sizeof(text),
			    "larger than the broker's Maximum Packet Size (%u bytes), not sent",
			    (unsigned)cg_publisher_max_packet(g->pub));
		else
			snprintf(text, sizeof(text), "the broker answered %s",
			         cg_publisher_reason_name(r->reason));
		gw_refuse(g, r->seq, r->reason, text);
	}
}

/* Starts sending again from the oldest unacknowledged row of each stream. */
void gw_rewind_cursors(gw_t *g)
{
	/* Rows in a batch not yet handed over are still in the outbox. */
	gw_batch_clear(g);
	cg_publisher_discard(g->pub);
	g->cursor_live = g->live_from - 1;
	g->cursor_back = 0;
}

/* A send failed without a disconnect: everything from the oldest unacknowledged row
 * goes again, after a back-off (reconnect_min_s, doubling up to reconnect_max_s, until
 * an acknowledgement) so that a failure that repeats cannot spin the loop. */
static void resend_later(gw_t *g, size_t n_failed, int64_t first_seq)
{
	int64_t lo = (int64_t)(g->cfg->mqtt.reconnect_min_s * 1000.0);
	int64_t hi = (int64_t)(g->cfg->mqtt.reconnect_max_s * 1000.0);
	unsigned long held;

	g->resend_backoff_ms = g->resend_backoff_ms ? g->resend_backoff_ms * 2 : lo;
	if (g->resend_backoff_ms > hi)
		g->resend_backoff_ms = hi;
	g->resend_at_ms = cg_mono_ms() + g->resend_backoff_ms;
	if (cg_log_allow(&g->resend_log, cg_mono_ms(), &held))
		cg_log(CG_LOG_WARNING,
		       "mqtt: %zu sends failed (seq %lld first) without a disconnect; sending again"
		       " in %lld ms (%lu such lines held back)",
		       n_failed, (long long)first_seq, (long long)g->resend_backoff_ms, held);
	gw_flush_acks(g, true);
	gw_rewind_cursors(g);
}

/* Handles acknowledgements, failures and connection changes from Paho. On a
 * new connection everything unacknowledged is sent again from the oldest
 * row: the broker dropped the old session (clean session), so what was in
 * flight may or may not have arrived; the same seq makes any duplicate
 * recognisable. */
void gw_take_events(gw_t *g)
{
	cg_publisher_events_t ev;

	cg_publisher_take(g->pub, &ev);
	for (size_t i = 0; i < ev.n_acked; i++)
		gw_add_ack(g, ev.acked[i]);
	g->published += ev.n_acked;
	g->batches_acked += ev.n_batches;
	if (ev.n_acked && !ev.n_failed)
		g->resend_backoff_ms = 0;
	take_refusals(g, &ev);
	end_refusal_episodes(g);
	if (ev.n_failed && ev.connected && ev.generation == g->generation)
		resend_later(g, ev.n_failed, ev.failed[0]);
	g->connected = ev.connected;
	if (ev.connected && ev.generation != g->generation) {
		char *online = status_payload(g, "online", true);

		g->generation = ev.generation;
		/* A failure on the old connection says nothing about this one. */
		g->resend_backoff_ms = 0;
		g->resend_at_ms = 0;
		gw_flush_acks(g, true);
		/* What is stored now is the backlog; with a replay rate it drains
		 * at that rate beside live readings. */
		g->live_from = g->cfg->mqtt.replay_rate > 0 ? g->stored_to + 1 : 1;
		g->tokens = 0;
		g->tokens_ms = cg_mono_ms();
		gw_rewind_cursors(g);
		/* The retained sensor states too: what changed while the link was down
		 * goes now, and a state lost with the old connection is sent again. */
		if (g->avail)
			cg_avail_resend_all(g->avail);
		if (online) {
			cg_publisher_send(g->pub, -1, g->status_topic, online, strlen(online), 1,
			                  true);
			free(online);
		}
	}
}

/* Sends up to max rows of one stream (after *cursor, before before_seq),
 * oldest first; returns how many went (a row whose topic a broker would
 * refuse goes to quarantine instead) and sets *all when the stream had no more.
 * Stops when the publisher takes no more: a full window, or a lost
 * connection. */
static size_t send_stream(gw_t *g, int64_t *cursor, int64_t before_seq, size_t max, bool *all)
{
	cg_outbox_row_t *rows = NULL;
	size_t n = 0, sent = 0;
	int rc = cg_outbox_fetch(g->ob, *cursor, before_seq, max, &rows, &n);

	*all = false;
	if (rc < 0)
		return 0;
	for (; sent < n; sent++) {
		if (!gw_queue_row(g, &rows[sent]))
			break;
		*cursor = rows[sent].seq;
	}
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
static void send_streams(gw_t *g)
{
	double rate = g->cfg->mqtt.replay_rate;
	size_t room, per;
	bool all;

	if (g->resend_at_ms && cg_mono_ms() < g->resend_at_ms)
		return;

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
	/* The rate is in messages: with mqtt.batch a token is a whole batch, so
	 * that the backlog still goes in full batches. */
	per = g->cfg->mqtt.batch ? (size_t)g->cfg->mqtt.batch_max_readings : 1;
	room = cg_publisher_room(g->pub);
	if (room > (size_t)g->tokens)
		room = (size_t)g->tokens;
	if (room == 0)
		return;
	g->tokens -=
	    (double)send_stream(g, &g->cursor_back, g->live_from, room * per, &all) / (double)per;
	/* Nothing more below live_from: the backlog has drained. */
	if (all)
		g->cursor_back = g->live_from - 1;
}

/* With mqtt.batch: the batches whose oldest reading has waited long enough go,
 * however full. */
static void send_due(gw_t *g)
{
	if (g->cfg->mqtt.batch && g->connected)
		gw_batch_send_due(g, false);
}

void gw_send_rows(gw_t *g)
{
	if (g->resend_at_ms && cg_mono_ms() < g->resend_at_ms)
		return;
	send_streams(g);
	send_due(g);
}

/* A digest of the password, so that a reload can tell a changed password
 * file without keeping the secret itself (FNV-1a; not a security measure,
 * only a change detector). */
uint64_t gw_secret_digest(const char *s)
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

/* Creates the publisher for the config's broker; it connects from the loop. */
int gw_open_publisher(gw_t *g)
{
	const cg_config_t *cfg = g->cfg;
	cg_publisher_opts_t po = {0};
	char *offline = NULL, *password = NULL;
	int rc = read_password(cfg, &password);
	uint64_t digest = gw_secret_digest(password);

	if (rc < 0)
		return rc;
	cg_topic_gateway(g->status_topic, sizeof(g->status_topic), cfg->mqtt.topic_prefix,
	                 cfg->gateway_id, "status");
	cg_topic_gateway(g->health_topic, sizeof(g->health_topic), cfg->mqtt.topic_prefix,
	                 cfg->gateway_id, "health");
	/* The Last Will is registered with the connect and published by the
	 * broker whenever the connection is lost: no ts, since any the gateway
	 * could give would be older than the online it replaces. A clean stop
	 * publishes an offline with its own ts. */
	offline = status_payload(g, "offline", false);
	po.uri = cfg->mqtt.uri;
	po.client_id = cfg->mqtt.client_id;
	po.username = cfg->mqtt.username;
	po.password = password;
	po.ca_file = cfg->mqtt.ca_file;
	po.cert_file = cfg->mqtt.cert_file;
	po.key_file = cfg->mqtt.key_file;
	po.keepalive_s = cfg->mqtt.keepalive_s;
	po.version = cfg->mqtt.version;
	po.session_expiry_s = (uint32_t)cfg->mqtt.session_expiry_s;
	po.max_inflight = cfg->mqtt.inflight;
	po.max_queued = SEND_AHEAD;
	po.ack_batch = PUT_BATCH;
	po.reconnect_min_s = cfg->mqtt.reconnect_min_s;
	po.reconnect_max_s = cfg->mqtt.reconnect_max_s;
	po.status_topic = g->status_topic;
	po.offline_payload = offline;
	po.notify = gw_wake;
	po.notify_ctx = g;
	rc = offline ? cg_publisher_new(&po, &g->pub) : CG_ENOMEM;
	cg_secret_free(password);
	free(offline);
	g->password_digest = digest;
	/* A new client starts a new session: everything unacknowledged goes
	 * again (refused readings are in quarantine: --quarantine retry). */
	g->generation = 0;
	g->connected = false;
	if (cfg->mqtt.version == CG_MQTT_311 && (cfg->mqtt.username || cfg->mqtt.cert_file))
		cg_log(CG_LOG_WARNING,
		       "mqtt: version 3.1.1 with a user name or client certificate: if the broker "
		       "has ACLs, it acknowledges readings it refuses and they count as delivered; "
		       "use version 5 or auto (docs/security.md)");
	return rc;
}

/* Publishes the clean-stop status and destroys the publisher. */
void gw_close_publisher(gw_t *g)
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
