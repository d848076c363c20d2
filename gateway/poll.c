/* One poll of one sensor, as the daemon publishes it: what bus workers and --once share. */
#include "gateway/poll.h"

#include <stdio.h>

#include "base/clock.h"
#include "base/error.h"

int cg_poll_sensor(const cg_sensor_config_t *sc, void *state, cg_transport_t *t,
                   int64_t due_wall_ms, cg_poll_t *p)
{
	cg_reading_t *r = &p->whole;
	int rc;

	p->n = 0;
	t->why[0] = '\0';
	cg_reading_init(r);
	snprintf(r->sensor, sizeof(r->sensor), "%s", sc->id);
	rc = state ? sc->driver->poll(state, t, r) : CG_ESTATE;
	if (rc < 0 && rc != CG_EAGAIN)
		return rc;
	/* The sensor answered; after CG_EAGAIN it only has nothing to report yet. */
	if (rc == CG_EAGAIN)
		r->n_values = 0;
	cg_reading_stamp(r, sc->aligned && r->interval_s > 0 && due_wall_ms ? due_wall_ms
	                                                                    : cg_now_ms());
	if (rc == CG_EAGAIN)
		return rc;
	/* A reading left without values (every one undecodable) is not published. */
	if (r->n_values)
		p->n = cg_reading_split_lanes(r, p->lanes, CG_POLL_MAX_LANES);
	return CG_OK;
}
