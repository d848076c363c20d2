/* From reading to stored row: staging (encode, assign seq), batched commits,
 * and batched deletes of acknowledged rows. seq is assigned here, in the main
 * loop, in the order readings arrive. */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "gateway/gateway_private.h"

void gw_free_row(cg_outbox_row_t *row)
{
	free(row->topic);
	free(row->payload);
}

/* The NGSI-LD attributes the config gives the entity of a reading from
 * sensor (a sensor's or a lot's id), or NULL. */
static const char *ngsi_attrs_of(const cg_config_t *cfg, const char *sensor)
{
	for (size_t i = 0; i < cfg->n_sensors; i++)
		if (strcmp(cfg->sensors[i].id, sensor) == 0)
			return cfg->sensors[i].ngsi_attrs;
	for (size_t i = 0; i < cfg->n_lots; i++)
		if (strcmp(cfg->lots[i].id, sensor) == 0)
			return cfg->lots[i].ngsi_attrs;
	return NULL;
}

/* Encodes one reading into a pending row with the next seq: seq is
 * assigned here, in one thread, in the order readings arrive. Its ts is
 * checked against the wall clock first (wallclock.c), and the row's
 * created_ms is on the store's clock, which does not jump. A reading
 * that cannot be staged is counted as dropped. */
void gw_stage(gw_t *g, const cg_reading_t *r, int format)
{
	int fmt = format >= 0 ? format : (int)g->cfg->mqtt.format;
	cg_encode_ctx_t ectx = g->ectx;
	char topic[512];
	cg_outbox_row_t row = {0};
	int rc;

	r = gw_clock_check(g, r, g->clock_copy);
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
	rc = cg_kind_name(r->kind) ? cg_topic_reading(topic, sizeof(topic), g->cfg->mqtt.topic_prefix,
	                                              g->cfg->gateway_id, cg_kind_name(r->kind),
	                                              r->sensor)
	                           : CG_EINVAL;
	if (fmt == CG_FORMAT_NGSI_LD)
		ectx.ngsi_attrs = ngsi_attrs_of(g->cfg, r->sensor);
	if (rc == CG_OK)
		rc = cg_encode((cg_format_t)fmt, &ectx, r, g->next_seq, &row.payload, &row.len);
	if (rc == CG_OK && !(row.topic = strdup(topic)))
		rc = CG_ENOMEM;
	if (rc < 0) {
		gw_free_row(&row);
		g->pending_dropped++;
		cg_log(CG_LOG_ERR, "sensor %s: cannot encode a reading: %s", r->sensor,
		       cg_strerror(rc));
		return;
	}
	gw_clock_staged(g, r, g->next_seq);
	row.seq = g->next_seq++;
	row.created_ms = gw_store_now(g);
	if (g->n_pending == 0)
		g->pending_since = cg_mono_ms();
	g->pending[g->n_pending++] = row;
}

/* Stages a reading, then the lot readings it changes. */
void gw_stage_with_lots(gw_t *g, const cg_reading_t *r, int format)
{
	size_t n;

	gw_stage(g, r, format);
	n = cg_lots_update(g->lots, r, cg_mono_ms(), g->lot_out, LOTS_OUT_MAX);
	for (size_t i = 0; i < n; i++)
		gw_stage(g, &g->lot_out[i], -1);
}

/* The message expiry (mqtt.message_expiry_s) of a reading's topic,
 * "{prefix}/{gateway}/{kind}/{sensor}": by its kind, the level before the
 * last. 0: none. */
uint32_t gw_expiry_of(const cg_mqtt_config_t *m, const char *topic)
{
	const char *end = strrchr(topic, '/'), *kind = end;
	size_t n;

	if (!end)
		return 0;
	while (kind > topic && kind[-1] != '/')
		kind--;
	n = (size_t)(end - kind);
	if (n == 11 && strncmp(kind, "air-quality", n) == 0)
		return (uint32_t)m->expiry_air_quality_s;
	if (n == 7 && strncmp(kind, "parking", n) == 0)
		return (uint32_t)m->expiry_parking_s;
	if (n == 7 && strncmp(kind, "traffic", n) == 0)
		return (uint32_t)m->expiry_traffic_s;
	if (n == 7 && strncmp(kind, "weather", n) == 0)
		return (uint32_t)m->expiry_weather_s;
	return 0;
}

/* Queues one row for publishing, handing its strings to the publisher, or
 * moves it to quarantine when its topic is one a broker refuses (its strings
 * are freed then). Returns false when the publisher cannot take it now (the
 * row keeps its strings). With mqtt.batch the row goes into a batch instead
 * (batching.c). */
bool gw_queue_row(gw_t *g, cg_outbox_row_t *row)
{
	if (g->cfg->mqtt.batch)
		return gw_batch_row(g, row);
	if (gw_quarantine_bad_topic(g, row)) {
		gw_free_row(row);
		row->topic = NULL;
		row->payload = NULL;
		return true;
	}
	gw_clock_fix_row(g, row);
	if (cg_publisher_queue(g->pub, row->seq, row->topic, row->payload, row->len,
	                       g->cfg->mqtt.qos, gw_expiry_of(&g->cfg->mqtt, row->topic)) < 0)
		return false;
	gw_clock_sent(g, row->seq);
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
		for (; i < n && gw_queue_row(g, &rows[i]); i++)
			g->cursor_live = rows[i].seq;
	}
	for (; i < n; i++)
		gw_free_row(&rows[i]);
}

/* Commits pending rows in batches when enough have gathered, when the oldest
 * has waited batch_ms, or when forced. A full disk keeps them pending and is
 * retried every second. */
void gw_store_pending(gw_t *g, bool force)
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
				gw_free_row(&g->pending[i]);
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
void gw_flush_acks(gw_t *g, bool force)
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

void gw_add_ack(gw_t *g, int64_t seq)
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

/* Opens the outbox at the config's path with its limits. */
int gw_open_outbox(gw_t *g)
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
	gw_clock_open(g);
	return CG_OK;
}
