/* Sensors polled in a query mode they forget on a power cycle: mode, restart detection, warm-up. */
#ifndef CG_QUERY_MODE_H
#define CG_QUERY_MODE_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "drivers/serial/serial_frame.h"

/* The state of one such sensor. Zero it, then set warmup_ms. */
typedef struct cg_query_mode {
	int64_t warmup_ms; /* readings this long after a wake-up are "warming-up" */
	bool mode_set;     /* query mode set and working since the last failure */
	bool awake;        /* not silent since the warm-up started */
	int64_t woke_ms;   /* monotonic time of the command that started the warm-up */
} cg_query_mode_t;

/*
 * Before a poll: a sensor that sends two or more frames unasked has power
 * cycled into streaming, so its mode is set again (one frame may be a late
 * answer). When the mode is not known to be set, set_mode(t) sends the
 * commands that set it and wake the sensor, and a sensor that was silent
 * starts its warm-up. name and sensor only word the log line. Returns 0 or
 * the error of reading the line or of set_mode.
 */
int cg_query_prepare(cg_query_mode_t *q, cg_transport_t *t, cg_frame_parse_fn parse, void *frame,
                     const char *name, const char *sensor, int (*set_mode)(cg_transport_t *t));

/* After a failed poll: the mode is set again next time, and a sensor that
 * timed out or whose port went away may have been off, so its warm-up
 * starts over then. */
void cg_query_failed(cg_query_mode_t *q, int rc);

/* Whether a reading taken now falls within the warm-up. */
bool cg_query_warming(const cg_query_mode_t *q);

#endif
