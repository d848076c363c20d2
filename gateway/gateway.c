/* The daemon's lifecycle: start, the main loop, periodic chores, stop. The
 * loop's stages are in ingest.c, pipeline.c, sender.c, health.c and reload.c
 * (gateway/gateway_private.h says who owns what). */
#include <stdlib.h>

#include "base/build_config.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/notify.h"
#include "gateway/gateway_private.h"

/* Pings the systemd watchdog when half its period has passed, with the
 * status line. Only the main loop and the stop and reload sequences call it,
 * so a wedged loop stops the pings. */
static void ping_watchdog(gw_t *g, int64_t now)
{
	cg_outbox_stats_t os = {0};

	if (!g->watchdog_usec || now < g->next_watchdog_ms)
		return;
	cg_outbox_stats(g->ob, &os);
	cg_notify("WATCHDOG=1\nSTATUS=%s; %lld readings waiting in the outbox",
	           g->connected ? "connected" : "broker unreachable", (long long)os.rows);
	g->next_watchdog_ms = now + (int64_t)(g->watchdog_usec / 2000);
}

/* How often the age limit is applied: a tenth of it, between 1 s and a minute, so
 * that a reading outlives max_age_s by a tenth at most. */
static int64_t expire_every_ms(const gw_t *g)
{
	int64_t ms = g->cfg->store.max_age_s * 100;

	return ms < 1000 ? 1000 : ms > 60000 ? 60000 : ms;
}

/* Periodic chores: the wall clock's state, sensor availability, age limit, health,
 * systemd watchdog and status. */
static void chores(gw_t *g)
{
	int64_t now = cg_mono_ms();

	gw_clock_judge(g);
	/* The offline timer runs here, not in the bus workers, so that a bus stuck in a
	 * request makes its sensors offline too. */
	if (g->avail) {
		cg_avail_tick(g->avail, now, cg_now_ms());
		if (g->connected)
			cg_avail_publish(g->avail, g->pub, &g->ectx);
	}
	if (g->lots) {
		size_t n = cg_lots_due(g->lots, now, g->lot_out, LOTS_OUT_MAX);
		for (size_t i = 0; i < n; i++)
			gw_stage(g, &g->lot_out[i], -1);
	}
	gw_quarantine_chores(g, now);
	if (now >= g->next_expire_ms) {
		cg_outbox_expire(g->ob, gw_store_now(g));
		g->next_expire_ms = now + expire_every_ms(g);
	}
	if (now >= g->next_health_ms) {
		gw_publish_health(g);
		g->next_health_ms = now + (int64_t)(g->cfg->health_interval_s * 1000.0);
	}
	ping_watchdog(g, now);
}

/* Starts the lots, the availability of the config's sensors (keeping the state of
 * those that remain after a reload) and one worker per bus of the config. */
int gw_start_buses(gw_t *g)
{
	cg_avail_t *avail = NULL;
	int rc = cg_lots_new(g->cfg, &g->lots);

	if (rc < 0)
		return rc;
	rc = cg_avail_new(g->cfg, g->avail, cg_mono_ms(), &avail);
	if (rc < 0)
		return rc;
	cg_avail_free(g->avail);
	g->avail = avail;
	g->buses = calloc(g->cfg->n_buses ? g->cfg->n_buses : 1, sizeof(*g->buses));
	if (!g->buses)
		return CG_ENOMEM;
	for (size_t i = 0; i < g->cfg->n_buses; i++) {
		rc = cg_bus_start(g->cfg, i, gw_sink, gw_outcome_sink, g, &g->buses[i]);
		if (rc < 0)
			return rc;
	}
	return CG_OK;
}

/* Stops every bus worker and commits the readings they handed over. Every
 * worker is asked first and then waited for, so the stall is the longest
 * request in flight (up to a bus's timeout_ms), not the sum of them; the
 * watchdog keeps being pinged meanwhile, so a long timeout cannot make
 * systemd kill a gateway that is stopping or reloading. */
void gw_stop_buses(gw_t *g)
{
	size_t n = g->buses ? g->cfg->n_buses : 0;

	for (size_t i = 0; i < n; i++)
		cg_bus_request_stop(g->buses[i]);
	for (size_t i = 0; i < n; i++) {
		while (cg_bus_wait(g->buses[i], 200) == CG_ETIMEDOUT)
			ping_watchdog(g, cg_mono_ms());
		cg_bus_stop(g->buses[i]);
	}
	free(g->buses);
	g->buses = NULL;
	gw_take_readings(g);
	gw_store_pending(g, true);
	/* Lots count bays of one config; a reload starts them afresh. */
	cg_lots_free(g->lots);
	g->lots = NULL;
}

void gw_set_encode_ctx(gw_t *g)
{
	g->ectx.gateway_id = g->cfg->gateway_id;
	g->ectx.has_location = g->cfg->has_location;
	g->ectx.lat = g->cfg->lat;
	g->ectx.lon = g->cfg->lon;
}

/* Stops in the order data flows: no new readings, commit what is queued,
 * publish for a short grace period, delete what was acknowledged, publish
 * the offline status. Whatever is still unacknowledged stays in the outbox
 * for the next start. */
/* How long the loop may sleep when nothing wakes it: half a commit batch while
 * rows or acknowledgements wait, else 100 ms, and no longer than until a batch
 * being filled is due (mqtt.batch.max_latency_ms). */
static int64_t loop_wait_ms(const gw_t *g)
{
	int64_t wait = g->n_pending || g->n_acks ? g->cfg->store.batch_ms / 2 + 1 : 100;
	int64_t due = g->cfg->mqtt.batch ? gw_batch_wait_ms(g) : -1;

	if (due >= 0 && due + 1 < wait)
		wait = due + 1;
	return wait;
}

static void stop(gw_t *g)
{
	int64_t deadline;

	if (!g->ob)
		return;
	gw_stop_buses(g);
	deadline = cg_mono_ms() + STOP_GRACE_MS;
	while (g->pub && g->connected && cg_mono_ms() < deadline) {
		cg_outbox_stats_t os;

		gw_take_events(g);
		gw_send_rows(g);
		/* Stopping: a batch need not wait to fill. */
		if (g->cfg->mqtt.batch)
			gw_batch_send_due(g, true);
		cg_outbox_stats(g->ob, &os);
		if (os.rows - (int64_t)g->n_acks <= 0)
			break;
		ping_watchdog(g, cg_mono_ms());
		gw_wait_for_work(g, 20);
	}
	if (g->pub)
		gw_take_events(g);
	gw_flush_acks(g, true);
	if (g->n_pending)
		cg_log(CG_LOG_WARNING, "outbox: %zu readings could not be stored before exit",
		       g->n_pending);
	gw_close_publisher(g);
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
	gw_set_encode_ctx(g);
	g->started_ms = cg_mono_ms();
	g->lot_out = calloc(LOTS_OUT_MAX, sizeof(*g->lot_out));
	g->clock_copy = calloc(1, sizeof(*g->clock_copy));
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = g->lot_out && g->clock_copy ? gw_open_outbox(g) : CG_ENOMEM;
	if (rc == CG_OK)
		rc = gw_open_publisher(g);
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
	rc = gw_start_buses(g);
	if (rc < 0) {
		stop(g);
		return rc;
	}
	g->next_health_ms = cg_mono_ms() + (int64_t)(g->cfg->health_interval_s * 1000.0);
	cg_watchdog_enabled(&g->watchdog_usec);
	cg_log(CG_LOG_INFO,
	       "citygate %s: gateway %s, %zu buses, %zu sensors, outbox %s (next seq %lld)",
	       CG_VERSION, g->cfg->gateway_id, g->cfg->n_buses, g->cfg->n_sensors,
	       g->cfg->store.path, (long long)g->next_seq);
	cg_notify("READY=1\nSTATUS=running");

	while (!sig->stop) {
		if (sig->reload) {
			sig->reload = 0;
			gw_reload(g);
			continue;
		}
		cg_publisher_tick(g->pub, cg_mono_ms());
		gw_take_readings(g);
		gw_store_pending(g, false);
		gw_take_events(g);
		gw_flush_acks(g, false);
		gw_send_rows(g);
		chores(g);
		gw_wait_for_work(g, loop_wait_ms(g));
	}
	cg_notify("STOPPING=1");
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
	cg_avail_free(g->avail);
	free(g->lot_out);
	free(g->clock_copy);
	gw_clock_free(g);
	cg_publisher_free(g->pub);
	gw_batch_free(g);
	cg_outbox_close(g->ob);
	for (size_t i = 0; i < g->n_pending; i++)
		gw_free_row(&g->pending[i]);
	free(g->pending);
	free(g->queue);
	free(g->work);
	free(g->acks);
	cg_config_free(g->cfg);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
