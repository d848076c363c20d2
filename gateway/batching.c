/* Rows gathered into batches (mqtt.batch): one per format, sent when full or when the
 * oldest reading in it has waited max_latency_ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "gateway/gateway_private.h"

/*
 * A batch holds rows the sender has taken from the outbox (its cursors are
 * past them) and not yet handed to the publisher. They stay in the outbox
 * until the broker acknowledges the batch, so a batch lost before that (a
 * rewind: reconnect, failed send, operator's retry) is simply dropped here
 * and its rows are read back and batched again.
 */

/* Bytes a batch message adds to its payload on the wire, at most: the fixed
 * header (5), the topic's length (2) and packet id (2), and the MQTT 5
 * properties (payload format 2, content type 25, user property "seqs" with
 * two 19-digit seqs 49, message expiry 5, their length 4). */
#define BATCH_OVERHEAD 100

/* The largest payload a batch may have: mqtt.batch.max_bytes, and less when
 * the broker's Maximum Packet Size would not take a message that large. */
static size_t batch_limit(gw_t *g)
{
	size_t limit = (size_t)g->cfg->mqtt.batch_max_bytes;
	size_t packet = g->pub ? cg_publisher_max_packet(g->pub) : 0;
	size_t over;

	cg_topic_batch(g->batch_topic, sizeof(g->batch_topic), g->cfg->mqtt.topic_prefix,
	               g->cfg->gateway_id);
	over = strlen(g->batch_topic) + BATCH_OVERHEAD;

	if (packet && packet > over && packet - over < limit)
		limit = packet - over;
	return limit;
}

/* The message expiry of a batch: that of its readings when all have one (the
 * longest, so that none expires before its own), else none. */
static uint32_t batch_expiry(const gw_batch_t *a)
{
	return a->no_expiry ? 0 : a->expiry_s;
}

/* Hands batch f to the publisher: 1 when it went (or was empty), 0 when the
 * publisher has no room now (it is kept), -1 when the connection went as it
 * was handed over: the cursors were rewound, and the caller must not move
 * them on. */
static int send_batch(gw_t *g, int f)
{
	gw_batch_t *a = &g->batch[f];
	size_t n = a->b ? cg_batch_count(a->b) : 0, len;
	int64_t *seqs;
	char *payload, *topic;
	int rc;

	if (n == 0)
		return 1;
	if (!g->connected || cg_publisher_room(g->pub) == 0)
		return 0;
	seqs = malloc(n * sizeof(*seqs));
	topic = strdup(g->batch_topic);
	if (!seqs || !topic) {
		free(seqs);
		free(topic);
		return 0;
	}
	memcpy(seqs, cg_batch_seqs(a->b), n * sizeof(*seqs));
	rc = cg_batch_take(a->b, &payload, &len);
	if (rc < 0) {
		free(seqs);
		free(topic);
		return 0;
	}
	rc = cg_publisher_queue_batch(g->pub, seqs, n, topic, payload, len, g->cfg->mqtt.qos,
	                              batch_expiry(a));
	free(seqs);
	*a = (gw_batch_t){.b = a->b};
	if (rc < 0) {
		/* The publisher had room a moment ago: the connection went. Its rows
		 * are in the outbox and go again from the rewind. */
		free(topic);
		free(payload);
		gw_rewind_cursors(g);
		return -1;
	}
	return 1;
}

/* Sets row aside as damaged: it cannot be part of a batch (nor sent alone). */
static void set_aside(gw_t *g, cg_outbox_row_t *row, const char *what)
{
	char reason[96];

	snprintf(reason, sizeof(reason), "damaged row: its payload is not %s", what);
	gw_quarantine(g, row->seq, reason, true);
	gw_free_row(row);
	row->topic = NULL;
	row->payload = NULL;
}

bool gw_batch_row(gw_t *g, cg_outbox_row_t *row)
{
	int f = cg_batch_format_of(row->payload, row->len);
	size_t limit = batch_limit(g);
	gw_batch_t *a;
	uint32_t expiry;
	int rc;

	if (f < 0) {
		set_aside(g, row, "a reading");
		return true;
	}
	if (gw_quarantine_bad_topic(g, row)) {
		gw_free_row(row);
		row->topic = NULL;
		row->payload = NULL;
		return true;
	}
	a = &g->batch[f];
	if (!a->b && cg_batch_new((cg_format_t)f, g->cfg->gateway_id, &a->b) < 0)
		return false;
	if (cg_batch_count(a->b) >= (size_t)g->cfg->mqtt.batch_max_readings &&
	    send_batch(g, f) <= 0)
		return false;
	gw_clock_fix_row(g, row);
	rc = cg_batch_add(a->b, row->seq, row->payload, row->len, limit);
	if (rc == CG_ERANGE) {
		if (send_batch(g, f) <= 0)
			return false;
		rc = cg_batch_add(a->b, row->seq, row->payload, row->len, limit);
	}
	if (rc == CG_EINVAL) {
		char what[32];

		snprintf(what, sizeof(what), "a %s reading", cg_format_name((cg_format_t)f));
		set_aside(g, row, what);
		return true;
	}
	if (rc < 0)
		return false;
	expiry = gw_expiry_of(&g->cfg->mqtt, row->topic);
	if (cg_batch_count(a->b) == 1)
		a->oldest_ms = row->created_ms;
	else if (row->created_ms < a->oldest_ms)
		a->oldest_ms = row->created_ms;
	if (expiry == 0)
		a->no_expiry = true;
	else if (expiry > a->expiry_s)
		a->expiry_s = expiry;
	gw_clock_sent(g, row->seq);
	gw_free_row(row);
	row->topic = NULL;
	row->payload = NULL;
	if (cg_batch_count(a->b) >= (size_t)g->cfg->mqtt.batch_max_readings)
		return send_batch(g, f) >= 0;
	return true;
}

/* Milliseconds until batch a is due (its oldest reading has waited max_latency_ms),
 * on the store's clock, which created_ms is on; 0 when it is due. */
static int64_t due_in(const gw_t *g, const gw_batch_t *a, int64_t now)
{
	int64_t left = a->oldest_ms + g->cfg->mqtt.batch_max_latency_ms - now;

	return left > 0 ? left : 0;
}

void gw_batch_send_due(gw_t *g, bool all)
{
	int64_t now = gw_store_now(g);

	for (int f = 0; f < GW_BATCH_FORMATS; f++) {
		gw_batch_t *a = &g->batch[f];

		if (a->b && cg_batch_count(a->b) > 0 && (all || due_in(g, a, now) == 0))
			send_batch(g, f);
	}
}

int64_t gw_batch_wait_ms(const gw_t *g)
{
	int64_t now = gw_store_now(g), wait = -1;

	for (int f = 0; f < GW_BATCH_FORMATS; f++) {
		const gw_batch_t *a = &g->batch[f];
		int64_t left;

		if (!a->b || cg_batch_count(a->b) == 0)
			continue;
		left = due_in(g, a, now);
		if (wait < 0 || left < wait)
			wait = left;
	}
	return wait;
}

bool gw_batch_holds(const gw_t *g)
{
	for (int f = 0; f < GW_BATCH_FORMATS; f++)
		if (g->batch[f].b && cg_batch_count(g->batch[f].b) > 0)
			return true;
	return false;
}

void gw_batch_clear(gw_t *g)
{
	for (int f = 0; f < GW_BATCH_FORMATS; f++) {
		if (g->batch[f].b)
			cg_batch_reset(g->batch[f].b);
		g->batch[f] = (gw_batch_t){.b = g->batch[f].b};
	}
}

void gw_batch_free(gw_t *g)
{
	for (int f = 0; f < GW_BATCH_FORMATS; f++) {
		cg_batch_free(g->batch[f].b);
		g->batch[f] = (gw_batch_t){0};
	}
}
