/* The generic Modbus driver: reads any sensor that a JSON device profile describes. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <modbus.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "drivers/driver.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/plan.h"
#include "drivers/modbus/profile.h"
#include "drivers/modbus/rules.h"

/* The sensor's keys, parsed; check() adds the interval and the profile. */
typedef struct driver_options {
	char *profile_ref; /* the "profile" key: a name or a path */
	long unit_id;
	bool merge;
	long merge_gap;
	double interval_s;     /* the sensor's; interval measures carry it */
	cg_profile_t *profile; /* loaded by check(); the states of open() point to it */
} driver_options_t;

#define OPTION(f) offsetof(driver_options_t, f)

/*
 * unit_id: the keys take 0 to 255, what a Modbus TCP unit identifier can be;
 * check() narrows it by the bus type (unit_id_problem).
 */
/* clang-format off */
static const cg_key_t driver_keys[] = {
	{.name = "profile", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = OPTION(profile_ref), .min = 1},
	{.name = "unit_id", .type = CG_J_INTEGER, .field = CG_F_LONG, .offset = OPTION(unit_id),
	 .min = 0, .max = 255, .def = 1},
	{.name = "merge", .type = CG_J_BOOL, .field = CG_F_BOOL, .offset = OPTION(merge), .def = 1},
	{.name = "merge_gap", .type = CG_J_INTEGER, .field = CG_F_LONG, .offset = OPTION(merge_gap),
	 .min = 0, .max = 100, .def = 8},
	{.name = NULL},
};
/* clang-format on */

/*
 * Moves the lines that cg_profile_load() added from index `from` on, each
 * "lfile: : message", to the sensor's own "profile" key: a profile that is
 * not found is a problem of the config, at the place that names it.
 */
static void move_not_found(cg_diag_t *diag, size_t from, const char *lfile, const char *file,
                           const char *ptr)
{
	size_t end = diag->n, skip = strlen(lfile) + 4;

	for (size_t i = from; i < end; i++) {
		const char *line = diag->lines[i];
		bool prefixed = strncmp(line, lfile, strlen(lfile)) == 0 &&
		                strncmp(line + strlen(lfile), ": : ", 4) == 0;

		cg_diag_add(diag, file, ptr, "%s", prefixed ? line + skip : line);
	}
	for (size_t i = from; i < end; i++)
		free(diag->lines[i]);
	memmove(&diag->lines[from], &diag->lines[end], (diag->n - end) * sizeof(*diag->lines));
	diag->n -= end - from;
}

/*
 * What is wrong with unit id for a bus of type t, or NULL. On a serial line
 * (and RTU over TCP, the same line behind a serial server) slaves are 1 to
 * 247: 0 is the broadcast address, which no slave answers, and 248 to 255
 * are reserved (Modbus over serial line, 2.2). On Modbus TCP the unit
 * identifier is 0 to 255: a device reached directly answers to 255 (or 0,
 * as many do), one behind a TCP-to-serial gateway to its serial address
 * (Modbus messaging on TCP/IP, 4.4.2).
 */
static const char *unit_id_problem(cg_bus_type_t t, long unit)
{
	if ((t == CG_BUS_MODBUS_RTU || t == CG_BUS_MODBUS_RTU_TCP) && (unit < 1 || unit > 247))
		return unit == 0 ? "0 is the broadcast address, which no slave answers; a slave on "
		                   "a serial line is 1 to 247"
		                 : "248 to 255 are reserved on a serial line; a slave is 1 to 247";
	return NULL;
}

/* Loads the profile the keys name, and takes the sensor's interval: see
 * driver.h. Problems inside the profile (among them a unit that
 * env->unit_ok refuses) are reported with the profile's own file and
 * pointers; a profile that is not found, at pointer + "/profile" in the
 * config. */
static int driver_check(cg_driver_options_t *options, const cJSON *sensor, const char *pointer,
                        const cg_driver_env_t *env, cg_diag_t *diag)
{
	driver_options_t *o = (void *)options;
	/* interval_s is a common sensor key, checked by the config. */
	const cJSON *interval = cJSON_GetObjectItemCaseSensitive(sensor, "interval_s");
	size_t from;
	char ptr[256];
	bool bad_unit;
	int rc;

	o->interval_s = cJSON_IsNumber(interval) ? interval->valuedouble : 10;
	bad_unit = env && unit_id_problem(env->bus_type, o->unit_id);
	if (bad_unit) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "unit_id");
		cg_diag_add(diag, cg_driver_env_file(env), ptr, "%ld on a %s bus: %s", o->unit_id,
		            env->bus_type == CG_BUS_MODBUS_RTU ? "modbus-rtu" : "modbus-rtu-tcp",
		            unit_id_problem(env->bus_type, o->unit_id));
	}
	if (!o->profile_ref)
		return CG_EINVAL; /* the walk said why */
	from = diag->n;
	rc = cg_profile_load(o->profile_ref, env ? env->config_path : NULL,
	                     env ? env->profile_dirs : NULL, &o->profile, diag);
	if (rc == CG_ENOENT) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "profile");
		move_not_found(diag, from,
		               env && env->config_path ? env->config_path : o->profile_ref,
		               cg_driver_env_file(env), ptr);
	}
	for (size_t i = 0; rc == 0 && env && env->unit_ok && i < o->profile->n_points; i++) {
		const cg_point_t *pt = &o->profile->points[i];

		if (!pt->unit || env->unit_ok(pt->unit))
			continue;
		snprintf(ptr, sizeof(ptr), "/points/%zu/unit", i);
		cg_diag_add(diag, o->profile->file, ptr,
		            "unit \"%s\" (sensor %s) is not one the payload formats carry: %s",
		            pt->unit, pointer,
		            env->units_hint ? env->units_hint : "docs/topics.md lists them");
		rc = CG_EINVAL;
	}
	if (rc == CG_ENOMEM)
		return rc;
	return rc == 0 && !bad_unit ? 0 : CG_EINVAL;
}

static void driver_release(cg_driver_options_t *options)
{
	cg_profile_free(((driver_options_t *)(void *)options)->profile);
}

/* Per-sensor state: the profile, its plan, and one buffer per table kind
 * holding the answers of every request of one poll, request i from
 * offset[i] on. */
typedef struct driver_state {
	const cg_profile_t *profile; /* the options' */
	cg_plan_t plan;
	int unit_id;
	size_t *offset;
	uint16_t *regs;
	uint8_t *bits;
	double interval_s; /* the sensor's; interval measures carry it */
	bool has_counters;
	bool have_baseline;      /* counter values of the previous good poll are known */
	uint64_t *last_count;    /* per point; used by counter points only */
	uint64_t *last_increase; /* per point: the previous interval's increase */
} driver_state_t;

static bool is_bit_table(cg_table_t t)
{
	return t == CG_TABLE_COIL || t == CG_TABLE_DISCRETE;
}

static void driver_close(void *state)
{
	driver_state_t *s = state;

	if (!s)
		return;
	cg_plan_free(&s->plan);
	free(s->offset);
	free(s->regs);
	free(s->bits);
	free(s->last_count);
	free(s->last_increase);
	free(s);
}

/* Plans the reads of the profile check() loaded and sizes the buffers for
 * the plan; see driver.h. */
static int driver_open(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state)
{
	const driver_options_t *o = (const void *)options;
	driver_state_t *s;
	size_t n_regs = 0, n_bits = 0;
	int rc;

	*state = NULL;
	if (!o || !o->profile)
		return CG_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CG_ENOMEM;
	s->unit_id = (int)o->unit_id;
	s->interval_s = o->interval_s;
	s->profile = o->profile;
	rc = cg_plan_build(s->profile->points, s->profile->n_points, o->merge,
	                   (unsigned)o->merge_gap, &s->plan);
	if (rc)
		goto free_state;
	rc = CG_ENOMEM;
	s->offset = calloc(s->plan.n_requests, sizeof(*s->offset));
	if (!s->offset)
		goto free_state;
	for (size_t i = 0; i < s->plan.n_requests; i++) {
		const cg_request_t *q = &s->plan.requests[i];
		size_t *total = is_bit_table(q->table) ? &n_bits : &n_regs;

		s->offset[i] = *total;
		*total += q->count;
	}
	s->regs = calloc(n_regs ? n_regs : 1, sizeof(*s->regs));
	s->bits = calloc(n_bits ? n_bits : 1, sizeof(*s->bits));
	s->last_count = calloc(s->profile->n_points, sizeof(*s->last_count));
	s->last_increase = calloc(s->profile->n_points, sizeof(*s->last_increase));
	if (!s->regs || !s->bits || !s->last_count || !s->last_increase)
		goto free_state;
	for (size_t i = 0; i < s->profile->n_points; i++)
		s->has_counters |= s->profile->points[i].counter;
	*state = s;
	return 0;

free_state:
	driver_close(s);
	return rc;
}

/* After a bad frame the slave's real answer may still be on its way: noise
 * or another master's broadcast was read in its place. Taken for the answer
 * to the next request, it would give a reading of the wrong registers or
 * time. So discard input until the response timeout of the failed request
 * has run out, as libmodbus's own protocol recovery does, then flush. This
 * costs the bus at most one timeout per bad frame. */
static void drain_line(cg_transport_t *t, int64_t started_ms)
{
	int64_t left = started_ms + t->timeout_ms - cg_mono_ms();
	int fd = modbus_get_socket(t->mb);

	while (left > 0 && fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, (int)left) > 0 && cg_transport_flush(t) < 0)
			return; /* closed: the next request finds out, and the bus reopens */
		left = started_ms + t->timeout_ms - cg_mono_ms();
	}
	cg_transport_flush(t);
}

/* Maps libmodbus's errno after a failed read to a CG_E* code. */
static int map_errno(int err)
{
	if (err == ETIMEDOUT)
		return CG_ETIMEDOUT;
	if (err == EMBBADCRC)
		return CG_ECRC;
	if (err >= EMBXILFUN && err <= EMBXGTAR)
		return CG_EEXCEPTION;
	if (err == EMBBADDATA || err == EMBMDATA || err == EMBBADEXC || err == EMBBADSLAVE ||
	    err == EMBUNKEXC)
		return CG_EFRAME;
	return CG_EIO;
}

/* Sends request i and stores its answer in the state's buffers. Returns 0
 * or the mapped error; after a timeout the link is flushed, after a CRC or
 * frame error drained (drain_line), so that a late or partial answer cannot
 * be taken for the answer to the next request. */
static int read_request(driver_state_t *s, size_t i, cg_transport_t *t)
{
	const cg_request_t *q = &s->plan.requests[i];
	int64_t started;
	int n, err, rc;

	/* Setting the unit id does no I/O; done first so that an id the bus
	 * refuses (above 247 on RTU) is not counted as a request. */
	if (modbus_set_slave(t->mb, s->unit_id) == -1) {
		snprintf(t->why, sizeof(t->why), "unit id %d is not one this bus can address%s",
		         s->unit_id, t->type == CG_BUS_MODBUS_RTU ? " (RTU: 1-247)" : "");
		return CG_EINVAL;
	}
	cg_transport_pace(t);
	started = cg_mono_ms();
	switch (q->table) {
	case CG_TABLE_COIL:
		n = modbus_read_bits(t->mb, q->address, q->count, s->bits + s->offset[i]);
		break;
	case CG_TABLE_DISCRETE:
		n = modbus_read_input_bits(t->mb, q->address, q->count, s->bits + s->offset[i]);
		break;
	case CG_TABLE_HOLDING:
		n = modbus_read_registers(t->mb, q->address, q->count, s->regs + s->offset[i]);
		break;
	case CG_TABLE_INPUT:
		n = modbus_read_input_registers(t->mb, q->address, q->count,
		                                s->regs + s->offset[i]);
		break;
	default: n = -1; errno = EINVAL;
	}
	err = errno;
	cg_transport_done(t);
	if (n == q->count)
		return 0;
	rc = n < 0 ? map_errno(err) : CG_EFRAME;
	if (rc == CG_ECRC || rc == CG_EFRAME)
		drain_line(t, started);
	else if (rc == CG_ETIMEDOUT)
		cg_transport_flush(t);
	/* Which exception, or what libmodbus saw: the operator needs it. */
	snprintf(t->why, sizeof(t->why), "unit %d %s %u+%u: %s", s->unit_id, cg_table_name(q->table),
	         q->address, q->count, n < 0 ? modbus_strerror(err) : "short answer");
	if (n < 0 && err > MODBUS_ENOBASE && err <= EMBXGTAR)
		snprintf(t->why + strlen(t->why), sizeof(t->why) - strlen(t->why),
		         " (exception %d)", err - MODBUS_ENOBASE);
	cg_log(CG_LOG_DEBUG, "modbus: %s", t->why);
	return rc;
}

/* The increase of a cumulative counter from last to now, for a register of
 * the point's width. A counter below its last value has either wrapped or
 * its device restarted and counts from 0 again; the two look alike near the
 * top of the range. It is taken for a wrap when the increase that implies
 * is plausible: under an eighth of the register's range, and at most four
 * times the previous interval's increase (prev, or 16 if that was smaller,
 * so quiet intervals do not make a busy one suspect). Otherwise the
 * increase is the value itself (a lower bound) and *reset is set, never a
 * huge count. */
static uint64_t counter_increase(const cg_point_t *pt, uint64_t last, uint64_t now, uint64_t prev,
                                 bool *reset)
{
	unsigned bits = pt->type == CG_TYPE_U16 ? 16 : pt->type == CG_TYPE_U32 ? 32 : 64;
	uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
	uint64_t wrapped = (now - last) & mask;

	if (now >= last)
		return now - last;
	if (wrapped <= (mask >> 3) && wrapped <= 4 * (prev > 16 ? prev : 16))
		return wrapped;
	*reset = true;
	return now;
}

/* Adds the point's state: the name of raw value raw (index into the
 * point's names), else the state its rules gave (rule_state, or NULL). A
 * value that neither names reads "unknown" and the reading's quality says
 * so. */
static int add_state(cg_reading_t *r, const cg_point_t *pt, double raw, const char *rule_state)
{
	if (raw >= 0 && raw < (double)pt->n_states && raw == (double)(size_t)raw)
		return cg_reading_add_string(r, pt->name, pt->states[(size_t)raw]);
	if (rule_state)
		return cg_reading_add_string(r, pt->name, rule_state);
	cg_reading_worsen(r, CG_QUALITY_OUT_OF_RANGE);
	return cg_reading_add_string(r, pt->name, "unknown");
}

/* Adds a number point's value v (raw bits for an exact integer) to r,
 * judging it against the point's min/max. A float that decodes to NaN or
 * infinity cannot be carried in JSON: it is left out and the quality says
 * so. */
static int add_number(cg_reading_t *r, const cg_point_t *pt, double v, uint64_t bits)
{
	if (!isfinite(v)) {
		cg_reading_worsen(r, CG_QUALITY_INVALID);
		return 0;
	}
	if ((pt->has_min && v < pt->min) || (pt->has_max && v > pt->max))
		cg_reading_worsen(r, CG_QUALITY_OUT_OF_RANGE);
	if (cg_type_is_integer(pt->type) && pt->scale == 1 && pt->offset == 0)
		return cg_type_is_signed(pt->type) && !pt->counter
		           ? cg_reading_add_int(r, pt->name, (int64_t)bits, pt->unit)
		           : cg_reading_add_uint(r, pt->name, bits, pt->unit);
	return cg_reading_add_number(r, pt->name, v, pt->unit);
}

/*
 * Polls every request of the plan, then decodes every point into r, in the
 * profile's order: see driver.h. A point's status rules are matched on its
 * raw value, before scale, and each lowers the reading's quality as it
 * says; every quality is set with cg_reading_worsen(), so the worst one
 * wins. A point not published (a status register) gives only its rules'
 * quality. A value outside the point's min/max is kept as it is and the
 * quality becomes "out-of-range". On a read error nothing is added to r.
 */
static int driver_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	driver_state_t *s = state;
	const cg_profile_t *p;
	int rc;

	if (!s)
		return CG_ESTATE;
	if (!t || !t->mb)
		return CG_EINVAL;
	p = s->profile;
	for (size_t i = 0; i < s->plan.n_requests; i++) {
		rc = read_request(s, i, t);
		if (rc) {
			/* Counts across a gap would span an unknown interval. */
			s->have_baseline = false;
			return rc;
		}
	}

	r->kind = p->kind;
	if (s->has_counters)
		r->interval_s = s->interval_s;
	for (size_t j = 0; j < p->n_points; j++) {
		const cg_point_t *pt = &p->points[j];
		size_t qi = s->plan.point_request[j];
		size_t at = s->offset[qi] + (pt->address - s->plan.requests[qi].address);
		const char *rule_state = NULL;
		cg_quality_t q = CG_QUALITY_OK;
		double raw;
		uint64_t bits = 0;

		cg_reading_set_lane(r, pt->lane);
		if (is_bit_table(pt->table)) {
			bits = s->bits[at] != 0;
			raw = (double)bits;
		} else {
			rc = cg_decode_registers(&s->regs[at], pt->type, pt->order, &raw);
			/* Integers are also kept exact: past 2^53 a double drops
			 * digits and counts lose increments. */
			if (rc == 0 && cg_type_is_integer(pt->type))
				rc = cg_decode_integer(&s->regs[at], pt->type, pt->order, &bits);
			if (rc)
				return rc;
		}
		if (pt->n_rules) {
			rule_state = cg_rules_apply(pt, raw, bits, &q);
			cg_reading_worsen(r, q);
		}
		if (!pt->publish)
			continue;
		if (pt->named)
			rc = add_state(r, pt, raw, rule_state);
		else if (is_bit_table(pt->table))
			rc = cg_reading_add_bool(r, pt->name, bits != 0);
		else if (pt->counter) {
			bool reset = false;
			uint64_t inc = counter_increase(pt, s->last_count[j], bits,
			                                s->last_increase[j], &reset);

			s->last_count[j] = bits;
			s->last_increase[j] = s->have_baseline ? inc : 0;
			if (reset)
				cg_reading_worsen(r, CG_QUALITY_COUNTER_RESET);
			rc = add_number(r, pt, cg_point_value(pt, (double)inc), inc);
		} else {
			rc = add_number(r, pt, cg_point_value(pt, raw), bits);
		}
		if (rc)
			return rc;
	}
	cg_reading_set_lane(r, 0);
	/* The first good poll only sets the counters' baseline. */
	if (s->has_counters && !s->have_baseline) {
		s->have_baseline = true;
		return CG_EAGAIN;
	}
	return 0;
}

const cg_driver_t cg_modbus_driver = {
    .name = "modbus",
    .bus_types = CG_BUS_MODBUS_RTU | CG_BUS_MODBUS_TCP | CG_BUS_MODBUS_RTU_TCP,
    .keys = driver_keys,
    .options_size = sizeof(driver_options_t),
    .check = driver_check,
    .open = driver_open,
    .poll = driver_poll,
    .close = driver_close,
    .release = driver_release,
};
