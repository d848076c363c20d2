/* citygate-sim: one simulated Modbus slave (register tables, changing values, faults). */
#include "tools/sim/sim_slave.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "drivers/modbus/decode.h"

/* How a point's value moves. */
typedef enum sim_gen_kind {
	SIM_GEN_WAVE,    /* a slow sine in a range, plus a little noise */
	SIM_GEN_FLIP,    /* a bool or named state that changes every 20 to 60 s */
	SIM_GEN_COUNTER, /* a cumulative count that grows a few per second and wraps */
} sim_gen_kind_t;

/* The state of one point's value. */
typedef struct sim_gen {
	sim_gen_kind_t kind;
	double lo, hi;      /* WAVE: engineering range */
	double period_s[2]; /* WAVE: a slow and a faster component */
	double phase[2];
	unsigned state;     /* FLIP: the raw value, below n_states */
	unsigned n_states;  /* FLIP: 2 for a bool */
	double next_flip_s; /* FLIP */
	uint64_t count;     /* COUNTER: raw count, modulo the type's width */
	double rate;        /* COUNTER: counts per second */
	double carry;       /* COUNTER: fraction of a count not yet added */
	double last_s;      /* COUNTER: time of the last update */
} sim_gen_t;

struct sim_slave {
	int unit;
	cg_profile_t *profile;
	modbus_mapping_t *map;
	sim_gen_t *gens; /* one per profile point */
	sim_fault_t fault;
	size_t force_point[SIM_FORCE_MAX]; /* the point index of each force= item */
	uint64_t rng;
	sim_stats_t stats;
};

/* A plausible range per Smart Data Models quantity, in the unit named here. */
static const struct sim_range {
	const char *name;
	const char *unit;
	double lo, hi;
} sim_ranges[] = {
    {"pm1", "ug/m3", 2, 25},
    {"pm25", "ug/m3", 5, 35},
    {"pm10", "ug/m3", 10, 60},
    {"no2", "ppb", 5, 60},
    {"o3", "ppb", 10, 80},
    {"co", "ppb", 100, 800},
    {"so2", "ppb", 1, 10},
    {"no", "ppb", 1, 30},
    {"nox", "ppb", 6, 90},
    {"h2s", "ppb", 0, 5},
    {"co2", "ppm", 400, 1200},
    {"temperature", "Cel", -5, 30},
    {"relativeHumidity", "%RH", 30, 90},
    {"pressure", "hPa", 990, 1030},
    {"occupancy", "/", 0, 0.6},
    {"averageVehicleSpeed", "km/h", 20, 70},
    {"averageVehicleLength", "m", 3.5, 12},
    {"averageHeadwayTime", "s", 1, 10},
    {"intensity", "count", 0, 40},
    {"laneId", NULL, 1, 1},
    {"windSpeed", "m/s", 0, 12},
    {"gustSpeed", "m/s", 2, 20},
    {"windDirection", "deg", 0, 359},
    {"atmosphericPressure", "hPa", 990, 1030},
    {"dewPoint", "Cel", -10, 15},
    {"precipitationTotal", "mm", 0, 40},
};

/* Factors from the unit of sim_ranges to a unit a profile may use instead. */
static const struct sim_unit_factor {
	const char *from, *to;
	double factor;
} sim_unit_factors[] = {
    {"ppb", "ppm", 0.001},    {"ppm", "ppb", 1000}, {"ug/m3", "mg/m3", 0.001}, {"%RH", "/", 0.01},
    {"%RH", "%", 1},          {"/", "%", 100},      {"hPa", "Pa", 100},        {"hPa", "kPa", 0.1},
    {"km/h", "m/s", 1 / 3.6}, {"Cel", "K", 1}, /* offset applied below */
};

uint64_t sim_random_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double sim_random_unit(uint64_t *state)
{
	return (double)(sim_random_next(state) >> 11) * 0x1.0p-53;
}

static double sim_random_between(uint64_t *state, double lo, double hi)
{
	return lo + (hi - lo) * sim_random_unit(state);
}

uint16_t sim_crc16(const uint8_t *p, size_t n)
{
	uint16_t crc = 0xFFFF;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

bool sim_function_is_read(uint8_t function)
{
	return function >= MODBUS_FC_READ_COILS && function <= MODBUS_FC_READ_INPUT_REGISTERS;
}

/* Parses a number for key k of a fault spec, in [lo, hi]. */
static int sim_fault_number(const char *key, const char *value, double lo, double hi, double *out,
                            char *err, size_t err_size)
{
	char *end;
	double v;

	if (!value || !value[0]) {
		snprintf(err, err_size, "fault \"%s\" needs a value (%s=N)", key, key);
		return CG_EINVAL;
	}
	errno = 0;
	v = strtod(value, &end);
	if (errno || *end || !isfinite(v) || v < lo || v > hi) {
		snprintf(err, err_size, "fault \"%s\": \"%s\" is not a number in [%g, %g]", key,
		         value, lo, hi);
		return CG_EINVAL;
	}
	*out = v;
	return 0;
}

/* Parses the value of a force= item, "POINT:VALUE", into f's next force.
 * VALUE is the raw value, as strtod() reads it (so 0x20 is 32). */
static int sim_force_item(const char *value, sim_fault_t *f, char *err, size_t err_size)
{
	const char *colon = value ? strrchr(value, ':') : NULL;
	sim_force_t *force;
	size_t len;
	char *end;

	if (!colon || colon == value || !colon[1]) {
		snprintf(err, err_size,
		         "fault \"force\" needs a point and a raw value "
		         "(force=POINT:VALUE)");
		return CG_EINVAL;
	}
	len = (size_t)(colon - value);
	if (len >= CG_NAME_MAX) {
		snprintf(err, err_size, "fault \"force\": point name \"%.*s\" is too long",
		         (int)len, value);
		return CG_EINVAL;
	}
	if (f->n_force >= SIM_FORCE_MAX) {
		snprintf(err, err_size, "fault \"force\": at most %d per slave", SIM_FORCE_MAX);
		return CG_EINVAL;
	}
	force = &f->force[f->n_force];
	memcpy(force->point, value, len);
	force->point[len] = '\0';
	errno = 0;
	force->value = strtod(colon + 1, &end);
	if (errno || *end || !isfinite(force->value)) {
		snprintf(err, err_size, "fault \"force\": \"%s\" is not a number", colon + 1);
		return CG_EINVAL;
	}
	f->n_force++;
	return 0;
}

/* Parses one "key" or "key=value" item of a fault list into f. */
static int sim_fault_item(char *item, sim_fault_t *f, char *err, size_t err_size)
{
	char *value = strchr(item, '=');
	double v;
	int rc;

	if (value)
		*value++ = '\0';
	if (strcmp(item, "silent") == 0 && !value) {
		f->silent = true;
	} else if (strcmp(item, "crc") == 0 && !value) {
		f->crc = true;
	} else if (strcmp(item, "exception") == 0) {
		if (!value) {
			f->exception = MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE;
			return 0;
		}
		rc = sim_fault_number(item, value, 1, 255, &v, err, err_size);
		if (rc || v != floor(v)) {
			snprintf(err, err_size, "fault \"exception\": \"%s\" is not a code 1-255",
			         value);
			return CG_EINVAL;
		}
		f->exception = (int)v;
	} else if (strcmp(item, "slow") == 0) {
		rc = sim_fault_number(item, value, 0, 600000, &v, err, err_size);
		if (rc)
			return rc;
		f->slow_ms = (int)v;
	} else if (strcmp(item, "flaky") == 0) {
		rc = sim_fault_number(item, value, 0, 100, &f->flaky_pct, err, err_size);
		if (rc)
			return rc;
	} else if (strcmp(item, "after") == 0) {
		rc = sim_fault_number(item, value, 0, 1e9, &f->after_s, err, err_size);
		if (rc)
			return rc;
	} else if (strcmp(item, "until") == 0) {
		rc = sim_fault_number(item, value, 0, 1e9, &f->until_s, err, err_size);
		if (rc)
			return rc;
	} else if (strcmp(item, "force") == 0) {
		return sim_force_item(value, f, err, err_size);
	} else if (strcmp(item, "restart") == 0) {
		rc = sim_fault_number(item, value, 1, 1e9, &f->restart_s, err, err_size);
		if (rc)
			return rc;
	} else {
		snprintf(err, err_size,
		         "unknown fault \"%s\" (silent, exception[=N], crc, slow=MS, flaky=P, "
		         "after=S, until=S, restart=S, force=POINT:VALUE)",
		         item);
		return CG_EINVAL;
	}
	return 0;
}

int sim_fault_parse(const char *spec, sim_fault_t *f, char *err, size_t err_size)
{
	char *copy, *item, *save = NULL;
	int rc = 0;

	*f = (sim_fault_t){.flaky_pct = 100, .until_s = INFINITY};
	if (!spec || !spec[0])
		return 0;
	copy = strdup(spec);
	if (!copy)
		return CG_ENOMEM;
	for (item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save))
		rc = sim_fault_item(item, f, err, err_size);
	free(copy);
	if (rc)
		return rc;
	if (!f->silent && !f->exception && !f->crc && !f->slow_ms && !f->restart_s && !f->n_force) {
		snprintf(err, err_size,
		         "\"%s\" names no fault (silent, exception, crc, slow or force) for "
		         "flaky, after or until to apply to",
		         spec);
		return CG_EINVAL;
	}
	if (f->until_s <= f->after_s) {
		snprintf(err, err_size, "until=%g must be later than after=%g", f->until_s,
		         f->after_s);
		return CG_EINVAL;
	}
	return 0;
}

/* The range of raw values type t can hold, as doubles. */
static void sim_type_range(cg_type_t t, double *lo, double *hi);

/* The index of the point named name in profile, or -1. */
static long sim_point_index(const cg_profile_t *profile, const char *name)
{
	for (size_t i = 0; i < profile->n_points; i++)
		if (strcmp(profile->points[i].name, name) == 0)
			return (long)i;
	return -1;
}

int sim_fault_check(const sim_fault_t *f, const cg_profile_t *profile, char *err, size_t err_size)
{
	for (size_t i = 0; i < f->n_force; i++) {
		const sim_force_t *force = &f->force[i];
		long at = sim_point_index(profile, force->point);
		const cg_point_t *p;
		double lo, hi;

		if (at < 0) {
			snprintf(err, err_size, "force=%s: profile %s has no point \"%s\"",
			         force->point, profile->name, force->point);
			return CG_EINVAL;
		}
		p = &profile->points[at];
		sim_type_range(p->type, &lo, &hi);
		if (force->value < lo || force->value > hi ||
		    (p->type != CG_TYPE_F32 && p->type != CG_TYPE_F64 &&
		     force->value != floor(force->value))) {
			snprintf(err, err_size, "force=%s:%g: not a raw value of a %s point",
			         force->point, force->value, cg_type_name(p->type));
			return CG_EINVAL;
		}
	}
	return 0;
}

/* The number of table entries a point occupies: one bit or register for a
 * bool, else its type's registers. */
static size_t sim_point_width(const cg_point_t *p)
{
	size_t n = cg_type_registers(p->type);

	return n ? n : 1;
}

/* The range of raw values type t can hold, as doubles. */
static void sim_type_range(cg_type_t t, double *lo, double *hi)
{
	switch (t) {
	case CG_TYPE_BOOL: *lo = 0, *hi = 1; break;
	case CG_TYPE_U16: *lo = 0, *hi = 65535; break;
	case CG_TYPE_I16: *lo = -32768, *hi = 32767; break;
	case CG_TYPE_U32: *lo = 0, *hi = 4294967295.0; break;
	case CG_TYPE_I32: *lo = -2147483648.0, *hi = 2147483647.0; break;
	case CG_TYPE_U64: *lo = 0, *hi = 0x1.0p64; break;
	case CG_TYPE_I64: *lo = -0x1.0p63, *hi = 0x1.0p63; break;
	default: *lo = -1e30, *hi = 1e30; break;
	}
}

/* Bools whose name says they report a fault stay false: a loop fault that
 * came and went every minute would not be plausible. */
static bool sim_name_is_fault(const char *name)
{
	static const char *const words[] = {"fault", "error", "alarm", "open", "short", NULL};
	char lower[64];
	size_t i;

	for (i = 0; name[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	for (i = 0; words[i]; i++)
		if (strstr(lower, words[i]))
			return true;
	return false;
}

static bool sim_name_is_counter(const char *name)
{
	size_t len = strlen(name);

	return strcmp(name, "vehicleCount") == 0 || strncmp(name, "counter", 7) == 0 ||
	       (len > 5 && strcmp(name + len - 5, "Count") == 0);
}

/* Converts the range r to the unit of point p when the units differ and a
 * factor is known; otherwise leaves it as it is. */
static void sim_range_to_unit(const struct sim_range *r, const cg_point_t *p, double *lo,
                              double *hi)
{
	*lo = r->lo;
	*hi = r->hi;
	if (!r->unit || !p->unit || strcmp(r->unit, p->unit) == 0)
		return;
	for (size_t i = 0; i < sizeof(sim_unit_factors) / sizeof(sim_unit_factors[0]); i++) {
		const struct sim_unit_factor *u = &sim_unit_factors[i];

		if (strcmp(u->from, r->unit) || strcmp(u->to, p->unit))
			continue;
		*lo *= u->factor;
		*hi *= u->factor;
		if (strcmp(u->to, "K") == 0) {
			*lo += 273.15;
			*hi += 273.15;
		}
		return;
	}
}

/* The plausible range of a quantity name, or NULL. Per-lane points carry a
 * number after the quantity ("occupancy1"), but digits also end some names
 * ("pm25", "no2"), so the whole name is tried first. */
static const struct sim_range *sim_range_find(const char *name)
{
	size_t len = strlen(name), n = sizeof(sim_ranges) / sizeof(sim_ranges[0]);

	for (size_t i = 0; i < n; i++)
		if (strcmp(sim_ranges[i].name, name) == 0)
			return &sim_ranges[i];
	while (len > 1 && isdigit((unsigned char)name[len - 1]))
		len--;
	for (size_t i = 0; i < n; i++)
		if (strlen(sim_ranges[i].name) == len &&
		    strncmp(sim_ranges[i].name, name, len) == 0)
			return &sim_ranges[i];
	return NULL;
}

/* Chooses the engineering range of a wave point: the quantity's plausible
 * range, narrowed to the point's min/max and to what its type can encode
 * after scale and offset. Unknown quantities use min/max, else 0-100. */
static void sim_point_range(const cg_point_t *p, double *lo, double *hi)
{
	const struct sim_range *r;
	double tlo, thi, elo, ehi;

	r = sim_range_find(p->name);
	if (r) {
		sim_range_to_unit(r, p, lo, hi);
	} else {
		*lo = p->has_min ? p->min : (p->has_max ? p->max - 100 : 0);
		*hi = p->has_max ? p->max : *lo + 100;
	}
	if (p->has_min && p->min > *lo)
		*lo = p->min;
	if (p->has_max && p->max < *hi)
		*hi = p->max;
	if (*lo > *hi) {
		/* The profile's bounds and the quantity's range do not overlap:
		 * trust the profile. */
		*lo = p->has_min ? p->min : *hi;
		*hi = p->has_max ? p->max : *lo;
	}
	sim_type_range(p->type, &tlo, &thi);
	elo = tlo * p->scale + p->offset;
	ehi = thi * p->scale + p->offset;
	if (elo > ehi) {
		double tmp = elo;

		elo = ehi;
		ehi = tmp;
	}
	if (*lo < elo)
		*lo = elo;
	if (*hi > ehi)
		*hi = ehi;
	if (*lo > *hi)
		*lo = *hi;
}

/* Sets up the generator of point p with random periods and phases. */
static void sim_gen_init(sim_gen_t *g, const cg_point_t *p, uint64_t *rng)
{
	bool is_bool =
	    p->type == CG_TYPE_BOOL || p->table == CG_TABLE_COIL || p->table == CG_TABLE_DISCRETE;

	memset(g, 0, sizeof(*g));
	if (p->status) {
		/* A status register reads 0, all clear, unless a fault forces it. */
		g->kind = SIM_GEN_FLIP;
		g->n_states = 1;
		g->next_flip_s = INFINITY;
	} else if (is_bool || p->n_states) {
		g->kind = SIM_GEN_FLIP;
		g->n_states = is_bool ? 2 : (unsigned)p->n_states;
		g->state =
		    !sim_name_is_fault(p->name) && g->n_states > 1 && sim_random_unit(rng) < 0.5;
		g->next_flip_s =
		    sim_name_is_fault(p->name) ? INFINITY : sim_random_between(rng, 20, 60);
	} else if (p->counter || sim_name_is_counter(p->name)) {
		g->kind = SIM_GEN_COUNTER;
		g->count = (uint64_t)sim_random_between(rng, 0, 60000);
		g->rate = sim_random_between(rng, 1, 5);
	} else {
		g->kind = SIM_GEN_WAVE;
		sim_point_range(p, &g->lo, &g->hi);
		g->period_s[0] = sim_random_between(rng, 120, 900);
		g->period_s[1] = sim_random_between(rng, 20, 90);
		g->phase[0] = sim_random_between(rng, 0, 2 * M_PI);
		g->phase[1] = sim_random_between(rng, 0, 2 * M_PI);
	}
}

/* The raw value of a counter: its count modulo the type's width, read as
 * two's complement for signed types, so that it wraps as a device's would. */
static double sim_counter_raw(uint64_t count, cg_type_t t)
{
	switch (t) {
	case CG_TYPE_U16: return (double)(uint16_t)count;
	case CG_TYPE_I16: return (double)(int16_t)(uint16_t)count;
	case CG_TYPE_U32: return (double)(uint32_t)count;
	case CG_TYPE_I32: return (double)(int32_t)(uint32_t)count;
	case CG_TYPE_I64: return (double)(int64_t)count;
	default: return (double)count;
	}
}

/* Advances g to time t and returns the point's raw value. */
static double sim_gen_step(sim_gen_t *g, const cg_point_t *p, double t, double restart_s,
                           uint64_t *rng)
{
	double v, range, whole;

	switch (g->kind) {
	case SIM_GEN_FLIP:
		while (t >= g->next_flip_s) {
			/* Named states flip between the first two (free and
			 * occupied, say) and now and then visit the others. */
			if (g->n_states > 2 && sim_random_unit(rng) < 0.1)
				g->state = 2 + (unsigned)(sim_random_unit(rng) * (g->n_states - 2));
			else if (g->n_states > 1)
				g->state = g->state == 0 ? 1 : 0;
			g->next_flip_s += sim_random_between(rng, 20, 60);
		}
		return g->state;
	case SIM_GEN_COUNTER:
		/* A device restart starts its counters again from 0. */
		if (restart_s > 0 && floor(t / restart_s) > floor(g->last_s / restart_s)) {
			g->count = 0;
			g->carry = 0;
		}
		if (t > g->last_s) {
			/* A little jitter keeps counts from looking machine-made. */
			g->carry += (t - g->last_s) * g->rate * sim_random_between(rng, 0.5, 1.5);
			whole = floor(g->carry);
			g->count += (uint64_t)whole;
			g->carry -= whole;
			g->last_s = t;
		}
		return sim_counter_raw(g->count, p->type);
	case SIM_GEN_WAVE:
	default:
		range = g->hi - g->lo;
		v = 0.7 * sin(2 * M_PI * t / g->period_s[0] + g->phase[0]) +
		    0.3 * sin(2 * M_PI * t / g->period_s[1] + g->phase[1]);
		v = (g->lo + g->hi) / 2 + v * range * 0.45 +
		    sim_random_between(rng, -0.02, 0.02) * range;
		if (v < g->lo)
			v = g->lo;
		if (v > g->hi)
			v = g->hi;
		return (v - p->offset) / p->scale;
	}
}

int sim_slave_new(int unit, cg_profile_t *profile, const sim_fault_t *fault, uint64_t seed,
                  sim_slave_t **out)
{
	size_t n_bits = 0, n_input_bits = 0, n_regs = 0, n_input_regs = 0;
	sim_slave_t *s;

	*out = NULL;
	for (size_t i = 0; i < profile->n_points; i++) {
		const cg_point_t *p = &profile->points[i];
		size_t end = (size_t)p->address + sim_point_width(p);
		size_t *n = p->table == CG_TABLE_COIL       ? &n_bits
		            : p->table == CG_TABLE_DISCRETE ? &n_input_bits
		            : p->table == CG_TABLE_HOLDING  ? &n_regs
		                                            : &n_input_regs;

		if (end > 65536)
			return CG_EINVAL;
		if (end > *n)
			*n = end;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return CG_ENOMEM;
	s->gens = calloc(profile->n_points ? profile->n_points : 1, sizeof(*s->gens));
	s->map = modbus_mapping_new((int)n_bits, (int)n_input_bits, (int)n_regs, (int)n_input_regs);
	if (!s->gens || !s->map) {
		free(s->gens);
		if (s->map)
			modbus_mapping_free(s->map);
		free(s);
		return CG_ENOMEM;
	}
	s->unit = unit;
	s->profile = profile;
	if (fault)
		s->fault = *fault;
	else
		sim_fault_parse(NULL, &s->fault, NULL, 0);
	for (size_t i = 0; i < s->fault.n_force; i++) {
		long at = sim_point_index(profile, s->fault.force[i].point);
		char err[128];

		if (at < 0 || sim_fault_check(&s->fault, profile, err, sizeof(err))) {
			s->profile = NULL; /* the caller keeps it on failure */
			sim_slave_free(s);
			return CG_EINVAL;
		}
		s->force_point[i] = (size_t)at;
	}
	s->rng = seed;
	for (size_t i = 0; i < profile->n_points; i++)
		sim_gen_init(&s->gens[i], &profile->points[i], &s->rng);
	*out = s;
	return 0;
}

void sim_slave_free(sim_slave_t *s)
{
	if (!s)
		return;
	modbus_mapping_free(s->map);
	free(s->gens);
	cg_profile_free(s->profile);
	free(s);
}

int sim_slave_unit(const sim_slave_t *s)
{
	return s->unit;
}

const char *sim_slave_profile_name(const sim_slave_t *s)
{
	return s->profile->name;
}

modbus_mapping_t *sim_slave_mapping(sim_slave_t *s)
{
	return s->map;
}

sim_stats_t *sim_slave_stats(sim_slave_t *s)
{
	return &s->stats;
}

/* Writes raw value raw of point p into the tables. */
static void sim_point_write(sim_slave_t *s, const cg_point_t *p, double raw)
{
	switch (p->table) {
	case CG_TABLE_COIL: s->map->tab_bits[p->address] = raw != 0; break;
	case CG_TABLE_DISCRETE: s->map->tab_input_bits[p->address] = raw != 0; break;
	case CG_TABLE_HOLDING:
	case CG_TABLE_INPUT: {
		uint16_t *regs = p->table == CG_TABLE_HOLDING ? s->map->tab_registers
		                                              : s->map->tab_input_registers;

		if (p->type == CG_TYPE_BOOL)
			regs[p->address] = raw != 0;
		else
			cg_encode_registers(raw, p->type, p->order, &regs[p->address]);
		break;
	}
	}
}

void sim_slave_update(sim_slave_t *s, double t)
{
	const sim_fault_t *f = &s->fault;

	for (size_t i = 0; i < s->profile->n_points; i++) {
		const cg_point_t *p = &s->profile->points[i];

		sim_point_write(s, p, sim_gen_step(&s->gens[i], p, t, f->restart_s, &s->rng));
	}
	/* Generators still step while forced, so that a run's values after
	 * the window are those it would have had without it. */
	if (t >= f->after_s && t < f->until_s)
		for (size_t i = 0; i < f->n_force; i++)
			sim_point_write(s, &s->profile->points[s->force_point[i]],
			                f->force[i].value);
}

sim_action_t sim_slave_decide(sim_slave_t *s, double t, uint8_t function)
{
	const sim_fault_t *f = &s->fault;
	sim_action_t a = {0};
	bool active = t >= f->after_s && t < f->until_s;

	s->stats.requests++;
	/* Draw only for flaky slaves, so that adding a fault to one slave never
	 * changes the values of a reproducible run elsewhere. */
	if (active && f->flaky_pct < 100)
		active = sim_random_unit(&s->rng) * 100 < f->flaky_pct;
	if (active) {
		a.silent = f->silent;
		a.exception = f->exception;
		a.corrupt = f->crc;
		a.delay_ms = f->slow_ms;
	}
	if (a.silent) {
		s->stats.silenced++;
		return a;
	}
	if (a.exception)
		s->stats.exceptions++;
	else if (!sim_function_is_read(function))
		a.exception = MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
	if (a.corrupt)
		s->stats.corrupted++;
	if (a.delay_ms)
		s->stats.delayed++;
	return a;
}

/* Writes the exception PDU for function and code into rsp. */
static size_t sim_exception_pdu(uint8_t function, int code, uint8_t *rsp)
{
	rsp[0] = (uint8_t)(function | 0x80);
	rsp[1] = (uint8_t)code;
	return 2;
}

size_t sim_slave_reply_pdu(const sim_slave_t *s, const uint8_t *req, size_t len, int exception,
                           uint8_t *rsp)
{
	uint8_t function = len ? req[0] : 0;
	unsigned address, count, limit, size;
	bool bits;

	if (exception)
		return sim_exception_pdu(function, exception, rsp);
	if (!sim_function_is_read(function))
		return sim_exception_pdu(function, MODBUS_EXCEPTION_ILLEGAL_FUNCTION, rsp);
	if (len < 5)
		return sim_exception_pdu(function, MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE, rsp);
	address = (unsigned)req[1] << 8 | req[2];
	count = (unsigned)req[3] << 8 | req[4];
	bits = function == MODBUS_FC_READ_COILS || function == MODBUS_FC_READ_DISCRETE_INPUTS;
	limit = bits ? MODBUS_MAX_READ_BITS : MODBUS_MAX_READ_REGISTERS;
	switch (function) {
	case MODBUS_FC_READ_COILS: size = (unsigned)s->map->nb_bits; break;
	case MODBUS_FC_READ_DISCRETE_INPUTS: size = (unsigned)s->map->nb_input_bits; break;
	case MODBUS_FC_READ_HOLDING_REGISTERS: size = (unsigned)s->map->nb_registers; break;
	default: size = (unsigned)s->map->nb_input_registers; break;
	}
	if (count < 1 || count > limit)
		return sim_exception_pdu(function, MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE, rsp);
	if (address + count > size)
		return sim_exception_pdu(function, MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS, rsp);
	rsp[0] = function;
	if (bits) {
		const uint8_t *tab =
		    function == MODBUS_FC_READ_COILS ? s->map->tab_bits : s->map->tab_input_bits;

		rsp[1] = (uint8_t)((count + 7) / 8);
		memset(rsp + 2, 0, rsp[1]);
		for (unsigned i = 0; i < count; i++)
			if (tab[address + i])
				rsp[2 + i / 8] |= (uint8_t)(1u << (i % 8));
		return 2 + (size_t)rsp[1];
	}
	const uint16_t *tab = function == MODBUS_FC_READ_HOLDING_REGISTERS
	                          ? s->map->tab_registers
	                          : s->map->tab_input_registers;

	rsp[1] = (uint8_t)(count * 2);
	for (unsigned i = 0; i < count; i++) {
		rsp[2 + 2 * i] = (uint8_t)(tab[address + i] >> 8);
		rsp[3 + 2 * i] = (uint8_t)tab[address + i];
	}
	return 2 + (size_t)rsp[1];
}
