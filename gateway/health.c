/* The periodic health message: outbox, readings, connection and per-bus,
 * per-sensor counters (schemas/health.schema.json). */
#include <ctype.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "gateway/gateway_private.h"

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

/* Appends the refused readings per reason, keyed by the reason's name in
 * lower case with '-' for spaces ("not-authorized", "packet-too-large"). */
static void health_refusals(cg_buf_t *b, const gw_t *g)
{
	cg_buf_puts(b, ",\"refused\":{");
	for (size_t i = 0; i < g->n_refusals; i++) {
		char key[64];
		const char *name = cg_publisher_reason_name(g->refusals[i].reason);
		size_t k = 0;

		for (; name[k] && k < sizeof(key) - 1; k++)
			key[k] = name[k] == ' ' ? '-' : (char)tolower((unsigned char)name[k]);
		key[k] = '\0';
		cg_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", key,
		              (unsigned long long)g->refusals[i].count);
	}
	cg_buf_puts(b, "}");
}

/* Publishes the health message: outbox, readings, connection and per-bus,
 * per-sensor counters (schemas/health.schema.json). Not stored: a health
 * message that cannot go now is worthless later. The bus counters are
 * gathered first because the readings' "failed" sums them. */
void gw_publish_health(gw_t *g)
{
	cg_outbox_stats_t os = {0};
	cg_buf_t buses = {0}, b = {0};
	char ts[32];
	uint64_t made, qdrop, failed = 0;
	int64_t now = cg_now_ms(), age_ms;

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
	/* On the store's clock, which does not jump: never negative. */
	age_ms = os.oldest_ms ? gw_store_now(g) - os.oldest_ms : 0;
	pthread_mutex_lock(&g->lock);
	made = g->made;
	qdrop = g->queue_dropped;
	pthread_mutex_unlock(&g->lock);
	cg_rfc3339(now, ts, sizeof(ts));
	cg_buf_puts(&b, "{\"gateway\":");
	cg_buf_json_string(&b, g->cfg->gateway_id);
	cg_buf_printf(&b, ",\"ts\":\"%s\",\"uptime_s\":%lld", ts,
	              (long long)((cg_mono_ms() - g->started_ms) / 1000));
	cg_buf_printf(&b,
	              ",\"outbox\":{\"rows\":%lld,\"bytes\":%lld,\"oldest_age_s\":%lld,"
	              "\"next_seq\":%lld,\"dropped\":%lld,\"quarantined\":%lld}",
	              (long long)os.rows, (long long)os.bytes,
	              (long long)(age_ms > 0 ? age_ms / 1000 : 0),
	              (long long)os.next_seq, (long long)os.dropped, (long long)os.quarantined);
	cg_buf_printf(&b,
	              ",\"readings\":{\"made\":%llu,\"published\":%llu,\"failed\":%llu,"
	              "\"dropped\":%llu,\"refused\":%llu}",
	              (unsigned long long)made, (unsigned long long)g->published,
	              (unsigned long long)failed, (unsigned long long)(qdrop + g->pending_dropped),
	              (unsigned long long)g->refused_total);
	gw_clock_health(g, &b);
	cg_buf_printf(&b, ",\"mqtt\":{\"connected\":%s,\"reconnects\":%llu,\"version\":\"%s\"",
	              g->connected ? "true" : "false",
	              (unsigned long long)cg_publisher_reconnects(g->pub),
	              cg_publisher_version(g->pub) == CG_MQTT_311 ? "3.1.1" : "5");
	/* Batch messages acknowledged (mqtt.batch); their readings count in published. */
	cg_buf_printf(&b, ",\"batches\":%llu", (unsigned long long)g->batches_acked);
	health_refusals(&b, g);
	cg_buf_puts(&b, "}");
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
