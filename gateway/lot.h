/* Parking lots: bay statuses counted into available, occupied and total spots. */
#ifndef CG_LOT_H
#define CG_LOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/reading.h"
#include "gateway/config.h"

typedef struct cg_lots cg_lots_t;

/* Creates the lots of cfg (none is fine). cfg must outlive them. */
int cg_lots_new(const cg_config_t *cfg, cg_lots_t **out);

/* Frees; accepts NULL. */
void cg_lots_free(cg_lots_t *l);

/* Takes a reading: when it is the status of a bay of some lot, records it,
 * and writes into out (at most max) a reading for each such lot whose
 * counts changed. A lot speaks first once each of its bays has reported, or
 * when its max_interval_s has passed since start. Returns how many were
 * written. now_mono_ms is the monotonic time. */
size_t cg_lots_update(cg_lots_t *l, const cg_reading_t *r, int64_t now_mono_ms, cg_reading_t *out,
                      size_t max);

/* Writes a reading for each lot whose last one is max_interval_s old. */
size_t cg_lots_due(cg_lots_t *l, int64_t now_mono_ms, cg_reading_t *out, size_t max);

/* The parking rules a bus worker applies to each of its sensors: a sensor is
 * a bay when a lot of cfg names it (so before it ever answers), or once it
 * reports a bay's status; a bay whose sensor stopped answering is reported
 * "unknown", so that its lots stop counting it and the platform does not
 * show a stale state. */
typedef struct cg_bay {
	bool is_bay;
} cg_bay_t;

/* Sets b up for sensor sensor_id of cfg. */
void cg_bay_init(cg_bay_t *b, const cg_config_t *cfg, const char *sensor_id);

/* Takes a reading of the sensor: a parking reading with a text "status" is
 * a bay's. */
void cg_bay_seen(cg_bay_t *b, const cg_reading_t *r);

/* The sensor stopped answering: when it is a bay, fills out with its status
 * "unknown", quality "no-answer", stamped ts_ms, and returns true. */
bool cg_bay_lost(const cg_bay_t *b, const char *sensor_id, int64_t ts_ms, cg_reading_t *out);

#endif
