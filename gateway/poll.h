/* One poll of one sensor, as the daemon publishes it: what bus workers and --once share. */
#ifndef CG_POLL_H
#define CG_POLL_H

#include <stddef.h>
#include <stdint.h>

#include "base/reading.h"
#include "drivers/transport.h"
#include "gateway/config.h"

/* The most readings one poll yields: one per lane of a traffic sensor. */
#define CG_POLL_MAX_LANES CG_READING_MAX_LANES

/* What one poll yields; large (17 readings), so allocate it once per bus. */
typedef struct cg_poll {
	cg_reading_t whole; /* the driver's reading, stamped, its lanes not split */
	size_t n;           /* readings in lanes[]: 0 unless the poll returned 0 with values */
	cg_reading_t lanes[CG_POLL_MAX_LANES]; /* what is published: one per lane, or whole */
} cg_poll_t;

/*
 * Polls sensor sc once with its driver state over the open transport t and
 * fills p with what the daemon publishes for it: the driver's reading,
 * stamped with the time of measurement (when the answer arrived; for an
 * interval measure of an aligned sensor, due_wall_ms, the end of the
 * interval, unless that is 0), and split into one reading per lane (each
 * with a "laneId" value). Returns 0, with p->n >= 1, or with p->n 0 when
 * the reading has no values (each was left out as undecodable, which its
 * quality says; nothing is published); CG_EAGAIN when the sensor answered
 * but has nothing to report yet (a counter's first poll only takes its
 * baseline), p->whole stamped and empty; else the driver's error
 * (driver.h), or CG_ESTATE when state is NULL (the driver could not open
 * the sensor), with p->n 0.
 */
int cg_poll_sensor(const cg_sensor_config_t *sc, void *state, cg_transport_t *t,
                   int64_t due_wall_ms, cg_poll_t *p);

#endif
