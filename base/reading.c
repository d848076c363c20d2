/* One poll of one sensor: the C struct that drivers fill and encoders read. */
#include "base/reading.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"

const char *const cg_kind_names[CG_N_KINDS + 1] = {
    [CG_KIND_AIR_QUALITY] = "air-quality",
    [CG_KIND_PARKING] = "parking",
    [CG_KIND_TRAFFIC] = "traffic",
    [CG_KIND_WEATHER] = "weather",
    [CG_N_KINDS] = NULL,
};

const char *const cg_quality_names[CG_N_QUALITIES + 1] = {
    [CG_QUALITY_OK] = "ok",
    [CG_QUALITY_OUT_OF_RANGE] = "out-of-range",
    [CG_QUALITY_WARMING_UP] = "warming-up",
    [CG_QUALITY_COUNTER_RESET] = "counter-reset",
    [CG_QUALITY_INVALID] = "invalid",
    [CG_QUALITY_NO_ANSWER] = "no-answer",
    [CG_QUALITY_STALE] = "stale",
    [CG_QUALITY_SENSOR_FAULT] = "sensor-fault",
    [CG_QUALITY_MAINTENANCE] = "maintenance",
    [CG_N_QUALITIES] = NULL,
};

/* Each quality's rank, 0 the best; the order is documented in reading.h. */
static const int quality_rank[CG_N_QUALITIES] = {
    [CG_QUALITY_OK] = 0,        [CG_QUALITY_OUT_OF_RANGE] = 1, [CG_QUALITY_COUNTER_RESET] = 2,
    [CG_QUALITY_STALE] = 3,     [CG_QUALITY_WARMING_UP] = 4,   [CG_QUALITY_INVALID] = 5,
    [CG_QUALITY_NO_ANSWER] = 6, [CG_QUALITY_MAINTENANCE] = 7,  [CG_QUALITY_SENSOR_FAULT] = 8,
};

const char *cg_kind_name(cg_kind_t k)
{
	return (unsigned)k < CG_N_KINDS ? cg_kind_names[k] : NULL;
}

const char *cg_quality_name(cg_quality_t q)
{
	return (unsigned)q < CG_N_QUALITIES ? cg_quality_names[q] : NULL;
}

/* The rank of q; past every quality for a value outside the enum. */
static int rank(cg_quality_t q)
{
	return (unsigned)q < CG_N_QUALITIES ? quality_rank[q] : CG_N_QUALITIES;
}

cg_quality_t cg_quality_worse(cg_quality_t a, cg_quality_t b)
{
	return rank(b) > rank(a) ? b : a;
}

void cg_reading_worsen(cg_reading_t *r, cg_quality_t q)
{
	r->quality = cg_quality_worse(r->quality, q);
}

void cg_reading_init(cg_reading_t *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = CG_KIND_AIR_QUALITY;
	r->quality = CG_QUALITY_OK;
}

void cg_reading_stamp(cg_reading_t *r, int64_t wall_ms)
{
	int64_t boot = cg_boot_ms();

	r->ts_ms = wall_ms;
	r->boot_ms = boot + (wall_ms - cg_now_ms());
}

const char *cg_ts_clock_name(cg_ts_clock_t c)
{
	switch (c) {
	case CG_TS_UNSYNCED: return "unsynced";
	case CG_TS_CORRECTED: return "corrected";
	default: return NULL;
	}
}

const cg_value_t *cg_reading_find(const cg_reading_t *r, const char *name)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (strcmp(r->values[i].name, name) == 0)
			return &r->values[i];
	return NULL;
}

/* The value named name in lane, or NULL. */
static const cg_value_t *find_in_lane(const cg_reading_t *r, const char *name, int lane)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (r->values[i].lane == lane && strcmp(r->values[i].name, name) == 0)
			return &r->values[i];
	return NULL;
}

void cg_reading_set_lane(cg_reading_t *r, int lane)
{
	r->lane = lane;
}

size_t cg_reading_split_lanes(const cg_reading_t *in, cg_reading_t *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < in->n_values && n < max; i++) {
		int lane = in->values[i].lane;
		bool seen = false;
		cg_reading_t *r;

		if (lane == 0)
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = in->values[j].lane == lane;
		if (seen)
			continue;
		r = &out[n++];
		*r = *in;
		r->n_values = 0;
		r->lane = 0;
		cg_reading_add_number(r, "laneId", lane, NULL);
		for (size_t j = 0; j < in->n_values; j++) {
			if (in->values[j].lane == lane && r->n_values < CG_READING_MAX_VALUES) {
				r->values[r->n_values] = in->values[j];
				r->values[r->n_values++].lane = 0;
			}
		}
		for (size_t j = 0; j < in->n_values; j++)
			if (in->values[j].lane == 0 && r->n_values < CG_READING_MAX_VALUES)
				r->values[r->n_values++] = in->values[j];
	}
	if (n == 0 && max > 0) {
		out[0] = *in;
		n = 1;
	}
	return n;
}

/* Reserves the next value slot after checking capacity, name length and uniqueness. */
static int add_slot(cg_reading_t *r, const char *name, const char *unit, cg_value_t **out)
{
	cg_value_t *v;

	if (r->n_values >= CG_READING_MAX_VALUES || strlen(name) >= CG_NAME_MAX ||
	    (unit && strlen(unit) >= CG_UNIT_MAX))
		return CG_ERANGE;
	if (name[0] == '\0')
		return CG_EINVAL;
	if (find_in_lane(r, name, r->lane))
		return CG_EINVAL;
	v = &r->values[r->n_values++];
	memset(v, 0, sizeof(*v));
	v->lane = r->lane;
	strcpy(v->name, name);
	if (unit)
		strcpy(v->unit, unit);
	*out = v;
	return CG_OK;
}

int cg_reading_add_number(cg_reading_t *r, const char *name, double value, const char *unit)
{
	cg_value_t *v;
	int rc = add_slot(r, name, unit, &v);

	if (rc < 0)
		return rc;
	v->type = CG_VALUE_NUMBER;
	v->number = value;
	return CG_OK;
}

/* An exact integer: a number whose digits the encoders print from
 * magnitude, not from the double. */
static int add_exact(cg_reading_t *r, const char *name, bool negative, uint64_t magnitude,
                     double approx, const char *unit)
{
	int rc = cg_reading_add_number(r, name, approx, unit);
	cg_value_t *v;

	if (rc < 0)
		return rc;
	v = &r->values[r->n_values - 1];
	v->exact = true;
	v->negative = negative;
	v->magnitude = magnitude;
	return CG_OK;
}

int cg_reading_add_int(cg_reading_t *r, const char *name, int64_t value, const char *unit)
{
	/* -(INT64_MIN) overflows int64_t; in uint64_t it is exact. */
	uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;

	return add_exact(r, name, value < 0, magnitude, (double)value, unit);
}

int cg_reading_add_uint(cg_reading_t *r, const char *name, uint64_t value, const char *unit)
{
	return add_exact(r, name, false, value, (double)value, unit);
}

int cg_reading_add_bool(cg_reading_t *r, const char *name, bool value)
{
	cg_value_t *v;
	int rc = add_slot(r, name, NULL, &v);

	if (rc < 0)
		return rc;
	v->type = CG_VALUE_BOOL;
	v->boolean = value;
	return CG_OK;
}

int cg_reading_add_string(cg_reading_t *r, const char *name, const char *value)
{
	cg_value_t *v;
	int rc;

	if (strlen(value) >= CG_STR_MAX)
		return CG_ERANGE;
	rc = add_slot(r, name, NULL, &v);
	if (rc < 0)
		return rc;
	v->type = CG_VALUE_STRING;
	strcpy(v->string, value);
	return CG_OK;
}

bool cg_reading_differs(const cg_reading_t *prev, const cg_reading_t *cur, double deadband)
{
	if (prev->n_values != cur->n_values || prev->quality != cur->quality)
		return true;
	for (size_t i = 0; i < cur->n_values; i++) {
		const cg_value_t *a = &prev->values[i], *b = &cur->values[i];

		if (a->type != b->type || a->lane != b->lane || strcmp(a->name, b->name) != 0)
			return true;
		switch (b->type) {
		case CG_VALUE_NUMBER:
			/* Exact integers beyond 2^53 may differ where their doubles do not. */
			if (a->exact && b->exact && deadband == 0 &&
			    (a->negative != b->negative || a->magnitude != b->magnitude))
				return true;
			/* NaN compares unequal to everything: a change either way. */
			if (!(fabs(b->number - a->number) <= deadband))
				return true;
			break;
		case CG_VALUE_BOOL:
			if (a->boolean != b->boolean)
				return true;
			break;
		case CG_VALUE_STRING:
			if (strcmp(a->string, b->string) != 0)
				return true;
			break;
		}
	}
	return false;
}
