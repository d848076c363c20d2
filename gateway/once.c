/* citygate --once: poll every sensor once and print what the daemon would publish, as NDJSON. */
#include "gateway/once.h"

#include <stdlib.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "drivers/transport.h"
#include "gateway/poll.h"
#include "uplink/encode.h"

/* A sensor of the bus being polled, and whether it needs a second poll. */
typedef struct once_sensor {
	const cg_sensor_config_t *sc;
	void *state;
	int64_t again_ms; /* monotonic time of its second poll; 0: none */
} once_sensor_t;

/* One bus's run: its transport, the sensors on it, what a poll yields. */
typedef struct once_bus {
	const cg_bus_config_t *bc;
	const cg_encode_ctx_t *ectx;
	cg_format_t format; /* mqtt.format, for sensors without their own */
	cg_clock_policy_t clock_policy;
	cg_transport_t t;
	bool open;
	cg_poll_t *poll;
	size_t failed;
} once_bus_t;

/*
 * Polls sensor o once and prints its readings, one line per lane, as the
 * daemon would publish them (the sensor's format, its NGSI-LD attributes)
 * but without seq, or its failure on stderr (counted). A first
 * poll that only took a counter's baseline (CG_EAGAIN) schedules a second
 * one interval_s later, so that the count covers the interval_s the reading
 * names, as the daemon's do; a second CG_EAGAIN is a failure. An I/O error
 * reopens the bus for the sensors after it.
 */
static void once_poll(once_bus_t *ob, once_sensor_t *o)
{
	bool second = o->again_ms != 0;
	cg_format_t format = o->sc->format >= 0 ? (cg_format_t)o->sc->format : ob->format;
	cg_encode_ctx_t ectx = *ob->ectx;
	char *json;
	size_t len;
	int rc;

	o->again_ms = 0;
	if (!ob->open) {
		cg_err("%s: bus %s: cannot open %s", o->sc->id, ob->bc->id,
		       cg_bus_line_name(&ob->bc->line));
		ob->failed++;
		return;
	}
	rc = cg_poll_sensor(o->sc, o->state, &ob->t, 0, ob->poll);
	if (rc == CG_EAGAIN && !second) {
		o->again_ms = cg_mono_ms() + (int64_t)(o->sc->interval_s * 1000.0);
		cg_log(CG_LOG_INFO,
		       "%s: the first poll takes the counters' baseline; polling again "
		       "in %g s (interval_s)",
		       o->sc->id, o->sc->interval_s);
		return;
	}
	for (size_t i = 0; rc == CG_OK && i < ob->poll->n; i++) {
		cg_reading_t *r = &ob->poll->lanes[i];

		/* No store here, so only the build's date and the policy judge. */
		if (!cg_clock_trusted(cg_clock_judge(ob->clock_policy, r->ts_ms, 0)))
			r->ts_clock = CG_TS_UNSYNCED;
		json = NULL;
		if (format == CG_FORMAT_NGSI_LD)
			ectx.ngsi_attrs = o->sc->ngsi_attrs;
		rc = cg_encode(format, &ectx, &ob->poll->lanes[i], -1, &json, &len);
		if (rc == CG_OK)
			cg_out(json);
		free(json);
	}
	if (rc == CG_OK && ob->poll->n == 0)
		cg_err("%s: answered, but with no value to publish (quality %s)", o->sc->id,
		       cg_quality_name(ob->poll->whole.quality));
	if (rc == CG_EAGAIN)
		cg_err("%s: nothing to report after two polls", o->sc->id);
	else if (rc < 0)
		cg_err("%s: %s%s%s", o->sc->id, cg_strerror(rc), ob->t.why[0] ? ": " : "", ob->t.why);
	if (rc < 0)
		ob->failed++;
	if (rc == CG_EIO) {
		cg_transport_close(&ob->t);
		ob->open = cg_transport_open(ob->bc->id, &ob->bc->line, &ob->t) == CG_OK;
	}
}

/* Polls the sensors of one bus in the config's order, then the ones that
 * need a second poll as each one's time comes; returns how many failed. */
static size_t once_bus(const cg_config_t *cfg, size_t bus_index, const cg_encode_ctx_t *ectx)
{
	once_bus_t ob = {.bc = &cfg->buses[bus_index],
	                 .ectx = ectx,
	                 .format = cfg->mqtt.format,
	                 .clock_policy = (cg_clock_policy_t)cfg->clock_policy};
	cg_driver_env_t env = cg_config_driver_env(cfg);
	once_sensor_t *sensors = calloc(cfg->n_sensors ? cfg->n_sensors : 1, sizeof(*sensors));
	size_t n = 0;
	int rc;

	ob.poll = malloc(sizeof(*ob.poll));
	if (!sensors || !ob.poll) {
		cg_err("bus %s: %s", ob.bc->id, cg_strerror(CG_ENOMEM));
		free(sensors);
		free(ob.poll);
		return 1;
	}
	ob.open = cg_transport_open(ob.bc->id, &ob.bc->line, &ob.t) == CG_OK;
	for (size_t i = 0; i < cfg->n_sensors; i++) {
		once_sensor_t *o = &sensors[n];

		if (cfg->sensors[i].bus_index != bus_index)
			continue;
		o->sc = &cfg->sensors[i];
		rc = o->sc->driver->open(o->sc->options, &env, &o->state);
		if (rc < 0) {
			cg_err("%s: %s", o->sc->id, cg_strerror(rc));
			ob.failed++;
			continue;
		}
		n++;
		once_poll(&ob, o);
	}
	for (;;) {
		once_sensor_t *next = NULL;

		for (size_t i = 0; i < n; i++)
			if (sensors[i].again_ms && (!next || sensors[i].again_ms < next->again_ms))
				next = &sensors[i];
		if (!next)
			break;
		if (next->again_ms > cg_mono_ms())
			cg_sleep_ms(next->again_ms - cg_mono_ms());
		once_poll(&ob, next);
	}
	for (size_t i = 0; i < n; i++)
		sensors[i].sc->driver->close(sensors[i].state);
	cg_transport_close(&ob.t);
	free(sensors);
	free(ob.poll);
	return ob.failed;
}

int cg_once_run(const cg_config_t *cfg)
{
	cg_encode_ctx_t ectx = {
	    .gateway_id = cfg->gateway_id,
	    .has_location = cfg->has_location,
	    .lat = cfg->lat,
	    .lon = cfg->lon,
	};
	size_t failed = 0;

	for (size_t b = 0; b < cfg->n_buses; b++)
		failed += once_bus(cfg, b, &ectx);
	return failed ? 3 : 0;
}
