/* citygate --once: poll every sensor once and print native readings as NDJSON. */
#include "gateway/once.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "drivers/transport.h"
#include "uplink/encode.h"

/* Polls the sensors of one bus; returns how many failed. */
static size_t once_bus(const cg_config_t *cfg, size_t bus_index, const cg_encode_ctx_t *ectx)
{
	const cg_bus_config_t *bc = &cfg->buses[bus_index];
	cg_driver_env_t env = cg_config_driver_env(cfg);
	cg_transport_t t;
	size_t failed = 0;
	bool open = cg_transport_open(bc->id, &bc->line, &t) == CG_OK;

	for (size_t i = 0; i < cfg->n_sensors; i++) {
		const cg_sensor_config_t *sc = &cfg->sensors[i];
		cg_reading_t r;
		void *state = NULL;
		char *json = NULL;
		size_t len;
		int rc;

		if (sc->bus_index != bus_index)
			continue;
		if (!open) {
			cg_err("%s: bus %s: cannot open %s", sc->id, bc->id,
			       cg_bus_line_name(&bc->line));
			failed++;
			continue;
		}
		cg_reading_init(&r);
		snprintf(r.sensor, sizeof(r.sensor), "%s", sc->id);
		rc = sc->driver->open(sc->json, &env, &state);
		if (rc == CG_OK)
			rc = sc->driver->poll(state, &t, &r);
		sc->driver->close(state);
		if (rc == CG_OK) {
			r.ts_ms = cg_now_ms();
			rc = cg_encode(CG_FORMAT_NATIVE, ectx, &r, -1, &json, &len);
		}
		if (rc < 0) {
			cg_err("%s: %s", sc->id, cg_strerror(rc));
			failed++;
		} else {
			cg_out(json);
		}
		free(json);
		if (rc == CG_EIO)
			cg_transport_close(&t), open = cg_transport_open(bc->id, &bc->line, &t) == CG_OK;
	}
	cg_transport_close(&t);
	return failed;
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
