/* Parking lots: bay statuses counted into available, occupied and total spots. */
#include "gateway/lot.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"

typedef enum bay_state {
	BAY_NEVER, /* not heard from since start */
	BAY_FREE,
	BAY_OCCUPIED,
	BAY_OTHER, /* closed or unknown: counted as neither */
} bay_state_t;

typedef struct lot {
	const cg_lot_config_t *cfg;
	bay_state_t *bays;
	size_t available, occupied;
	bool spoken; /* a reading was published since start */
	int64_t started_ms;
	int64_t last_ms; /* monotonic time of the last reading */
} lot_t;

struct cg_lots {
	lot_t *lots;
	size_t n;
};

int cg_lots_new(const cg_config_t *cfg, cg_lots_t **out)
{
	cg_lots_t *l = calloc(1, sizeof(*l));
	int64_t now = cg_mono_ms();

	*out = NULL;
	if (!l)
		return CG_ENOMEM;
	l->lots = calloc(cfg->n_lots ? cfg->n_lots : 1, sizeof(*l->lots));
	if (!l->lots)
		goto free_lots;
	for (size_t i = 0; i < cfg->n_lots; i++) {
		l->lots[i].cfg = &cfg->lots[i];
		l->lots[i].started_ms = now;
		l->lots[i].bays =
		    calloc(cfg->lots[i].n_bays ? cfg->lots[i].n_bays : 1, sizeof(*l->lots[i].bays));
		l->n++;
		if (!l->lots[i].bays)
			goto free_lots;
	}
	*out = l;
	return CG_OK;

free_lots:
	cg_lots_free(l);
	return CG_ENOMEM;
}

void cg_lots_free(cg_lots_t *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->lots[i].bays);
	free(l->lots);
	free(l);
}

/* Fills out with the lot's counts, stamped ts_ms. */
static void lot_reading(lot_t *lot, const cg_reading_t *src, int64_t now_mono, cg_reading_t *out)
{
	size_t total = lot->cfg->n_bays;

	cg_reading_init(out);
	snprintf(out->sensor, sizeof(out->sensor), "%s", lot->cfg->id);
	out->kind = CG_KIND_PARKING;
	if (src) {
		out->ts_ms = src->ts_ms;
		out->boot_ms = src->boot_ms;
	} else {
		cg_reading_stamp(out, cg_now_ms());
	}
	cg_reading_add_number(out, "availableSpotNumber", (double)lot->available, "count");
	cg_reading_add_number(out, "occupiedSpotNumber", (double)lot->occupied, "count");
	cg_reading_add_number(out, "totalSpotNumber", (double)total, "count");
	cg_reading_add_number(out, "occupancy", total ? (double)lot->occupied / (double)total : 0,
	                      "/");
	lot->spoken = true;
	lot->last_ms = now_mono;
}

/* Counts the lot's bays; true when the counts changed. */
static bool recount(lot_t *lot)
{
	size_t available = 0, occupied = 0;

	for (size_t i = 0; i < lot->cfg->n_bays; i++) {
		available += lot->bays[i] == BAY_FREE;
		occupied += lot->bays[i] == BAY_OCCUPIED;
	}
	if (available == lot->available && occupied == lot->occupied)
		return false;
	lot->available = available;
	lot->occupied = occupied;
	return true;
}

static bool all_heard(const lot_t *lot)
{
	for (size_t i = 0; i < lot->cfg->n_bays; i++)
		if (lot->bays[i] == BAY_NEVER)
			return false;
	return true;
}

size_t cg_lots_update(cg_lots_t *l, const cg_reading_t *r, int64_t now_mono, cg_reading_t *out,
                      size_t max)
{
	const cg_value_t *status;
	bay_state_t state;
	size_t n = 0;

	if (!l || r->kind != CG_KIND_PARKING)
		return 0;
	status = cg_reading_find(r, "status");
	if (!status || status->type != CG_VALUE_STRING)
		return 0;
	state = strcmp(status->string, "free") == 0       ? BAY_FREE
	        : strcmp(status->string, "occupied") == 0 ? BAY_OCCUPIED
	                                                  : BAY_OTHER;
	for (size_t i = 0; i < l->n && n < max; i++) {
		lot_t *lot = &l->lots[i];
		bool member = false, changed, ready;

		for (size_t b = 0; b < lot->cfg->n_bays; b++) {
			if (strcmp(lot->cfg->bays[b], r->sensor) == 0) {
				lot->bays[b] = state;
				member = true;
			}
		}
		if (!member)
			continue;
		changed = recount(lot);
		ready = lot->spoken || all_heard(lot) ||
		        now_mono - lot->started_ms >= (int64_t)(lot->cfg->max_interval_s * 1000.0);
		if (ready && (changed || !lot->spoken))
			lot_reading(lot, r, now_mono, &out[n++]);
	}
	return n;
}

size_t cg_lots_due(cg_lots_t *l, int64_t now_mono, cg_reading_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; l && i < l->n && n < max; i++) {
		lot_t *lot = &l->lots[i];
		int64_t since = lot->spoken ? lot->last_ms : lot->started_ms;

		if (now_mono - since >= (int64_t)(lot->cfg->max_interval_s * 1000.0))
			lot_reading(lot, NULL, now_mono, &out[n++]);
	}
	return n;
}

void cg_bay_init(cg_bay_t *b, const cg_config_t *cfg, const char *sensor_id)
{
	b->is_bay = false;
	for (size_t i = 0; i < cfg->n_lots; i++)
		for (size_t j = 0; j < cfg->lots[i].n_bays; j++)
			b->is_bay |= strcmp(cfg->lots[i].bays[j], sensor_id) == 0;
}

void cg_bay_seen(cg_bay_t *b, const cg_reading_t *r)
{
	const cg_value_t *status = cg_reading_find(r, "status");

	b->is_bay |= r->kind == CG_KIND_PARKING && status && status->type == CG_VALUE_STRING;
}

bool cg_bay_lost(const cg_bay_t *b, const char *sensor_id, int64_t ts_ms, cg_reading_t *out)
{
	if (!b->is_bay)
		return false;
	cg_reading_init(out);
	snprintf(out->sensor, sizeof(out->sensor), "%s", sensor_id);
	out->kind = CG_KIND_PARKING;
	out->quality = CG_QUALITY_NO_ANSWER;
	cg_reading_stamp(out, ts_ms);
	cg_reading_add_string(out, "status", "unknown");
	return true;
}
