/* Modbus device profiles: parse and validate a profile's JSON, and find it on disk. */
#include "drivers/modbus/profile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/jsonfile.h"
#include "base/keys.h"
#include "base/reading.h"
#include "drivers/modbus/decode.h"

/* A profile larger than this is not a register map; refuse it before parsing. */
#define PROFILE_MAX_BYTES (1024 * 1024)
/* Room for any JSON pointer we build: keys are bounded by what we report. */
#define POINTER_MAX 256

static const char *const table_names[] = {
    [CG_TABLE_COIL] = "coil",
    [CG_TABLE_DISCRETE] = "discrete",
    [CG_TABLE_HOLDING] = "holding",
    [CG_TABLE_INPUT] = "input",
    NULL,
};

static const char *const type_names[] = {
    [CG_TYPE_BOOL] = "bool", [CG_TYPE_U16] = "u16",
    [CG_TYPE_I16] = "i16",   [CG_TYPE_U32] = "u32",
    [CG_TYPE_I32] = "i32",   [CG_TYPE_U64] = "u64",
    [CG_TYPE_I64] = "i64",   [CG_TYPE_F32] = "f32",
    [CG_TYPE_F64] = "f64",   NULL,
};

static const char *const order_names[] = {
    [CG_ORDER_ABCD] = "ABCD",
    [CG_ORDER_CDAB] = "CDAB",
    [CG_ORDER_BADC] = "BADC",
    [CG_ORDER_DCBA] = "DCBA",
    NULL,
};

/* The index of s in the NULL-terminated list names, or -1. */
static int name_index(const char *const *names, const char *s)
{
	if (!s)
		return -1;
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* names[i] when i is within the NULL-terminated list, else "?". */
static const char *name_at(const char *const *names, size_t count, int i)
{
	return i >= 0 && (size_t)i < count ? names[i] : "?";
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]) - 1)

const char *cg_table_name(cg_table_t t)
{
	return name_at(table_names, COUNT(table_names), (int)t);
}

const char *cg_type_name(cg_type_t t)
{
	return name_at(type_names, COUNT(type_names), (int)t);
}

const char *cg_order_name(cg_order_t o)
{
	return name_at(order_names, COUNT(order_names), (int)o);
}

int cg_table_from_name(const char *s)
{
	return name_index(table_names, s);
}

int cg_type_from_name(const char *s)
{
	return name_index(type_names, s);
}

int cg_order_from_name(const char *s)
{
	return name_index(order_names, s);
}

/*
 * The validation tables (base/keys.h): each key of an object is described
 * once, its JSON type, whether it is required, its bounds, and where its
 * value goes in a plain parse struct. The walker checks every key against
 * its row and reports unknown and duplicate keys, so that the checks that
 * remain in code are only those that relate two keys (table and type, min
 * and max). Strings and arrays point into the cJSON tree until
 * build_profile() copies them.
 */
typedef struct profile_input {
	const char *name;
	int kind;
	const char *description; /* for people: the device and its register map's source */
	const cJSON *points;
} profile_input_t;

/* clang-format off */
static const cg_key_t profile_keys[] = {
	{.name = "name", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_REF,
	 .offset = offsetof(profile_input_t, name), .min = 1},
	{.name = "kind", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_INT,
	 .offset = offsetof(profile_input_t, kind), .names = cg_kind_names},
	{.name = "description", .type = CG_J_STRING, .field = CG_F_REF,
	 .offset = offsetof(profile_input_t, description)},
	{.name = "points", .type = CG_J_ARRAY, .flags = CG_K_REQUIRED, .field = CG_F_REF,
	 .offset = offsetof(profile_input_t, points), .min = 1, .max = CG_READING_MAX_VALUES},
	{.name = NULL},
};
/* clang-format on */

typedef struct point_input {
	const char *name, *unit, *description;
	int table, type, order;
	long address;
	double scale, offset, min, max;
	const cJSON *states;
	long lane;
	bool counter;
	bool publish;
	bool has_min, has_max; /* filled from the key states after the walk */
	size_t n_names, n_rules; /* of states, counted by check_states() */
} point_input_t;

/* The rows of point_keys, to read the state of each after a walk. */
enum {
	POINT_NAME,
	POINT_TABLE,
	POINT_ADDRESS,
	POINT_TYPE,
	POINT_ORDER,
	POINT_SCALE,
	POINT_OFFSET,
	POINT_UNIT,
	POINT_MIN,
	POINT_MAX,
	POINT_DESCRIPTION,
	POINT_STATES,
	POINT_LANE,
	POINT_COUNTER,
	POINT_PUBLISH,
	POINT_KEYS
};

#define POINT(f) offsetof(point_input_t, f)

/* clang-format off */
static const cg_key_t point_keys[POINT_KEYS + 1] = {
	[POINT_NAME] = {.name = "name", .type = CG_J_STRING, .flags = CG_K_REQUIRED,
	 .field = CG_F_REF, .offset = POINT(name), .min = 1, .max = CG_NAME_MAX - 1},
	[POINT_TABLE] = {.name = "table", .type = CG_J_STRING, .flags = CG_K_REQUIRED,
	 .field = CG_F_INT, .offset = POINT(table), .names = table_names},
	[POINT_ADDRESS] = {.name = "address", .type = CG_J_INTEGER, .flags = CG_K_REQUIRED,
	 .field = CG_F_LONG, .offset = POINT(address), .min = 0, .max = 65535},
	[POINT_TYPE] = {.name = "type", .type = CG_J_STRING, .field = CG_F_INT,
	 .offset = POINT(type), .names = type_names},
	[POINT_ORDER] = {.name = "order", .type = CG_J_STRING, .field = CG_F_INT,
	 .offset = POINT(order), .names = order_names, .def = CG_ORDER_ABCD},
	[POINT_SCALE] = {.name = "scale", .type = CG_J_NUMBER, .flags = CG_K_NONZERO,
	 .field = CG_F_DOUBLE, .offset = POINT(scale), .def = 1},
	[POINT_OFFSET] = {.name = "offset", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = POINT(offset)},
	[POINT_UNIT] = {.name = "unit", .type = CG_J_STRING, .field = CG_F_REF,
	 .offset = POINT(unit), .min = 1, .max = CG_UNIT_MAX - 1},
	[POINT_MIN] = {.name = "min", .type = CG_J_NUMBER, .field = CG_F_DOUBLE, .offset = POINT(min)},
	[POINT_MAX] = {.name = "max", .type = CG_J_NUMBER, .field = CG_F_DOUBLE, .offset = POINT(max)},
	[POINT_DESCRIPTION] = {.name = "description", .type = CG_J_STRING, .field = CG_F_REF,
	 .offset = POINT(description)},
	[POINT_STATES] = {.name = "states", .type = CG_J_ARRAY, .field = CG_F_REF,
	 .offset = POINT(states), .min = 1, .max = 64},
	[POINT_LANE] = {.name = "lane", .type = CG_J_INTEGER, .field = CG_F_LONG,
	 .offset = POINT(lane), .min = 1, .max = CG_READING_MAX_LANES},
	[POINT_COUNTER] = {.name = "counter", .type = CG_J_BOOL, .field = CG_F_BOOL,
	 .offset = POINT(counter)},
	[POINT_PUBLISH] = {.name = "publish", .type = CG_J_BOOL, .field = CG_F_BOOL,
	 .offset = POINT(publish)},
	[POINT_KEYS] = {.name = NULL},
};

/* One name of a point's states array. */
static const cg_key_t state_key = {.name = "", .type = CG_J_STRING, .min = 1,
				   .max = CG_STR_MAX - 1};
/* clang-format on */

/* A status rule, an object among a point's states. */
typedef struct rule_input {
	double value, mask, min, max;
	const char *state, *description;
	int quality;
} rule_input_t;

enum {
	RULE_VALUE,
	RULE_MASK,
	RULE_MIN,
	RULE_MAX,
	RULE_STATE,
	RULE_QUALITY,
	RULE_DESCRIPTION,
	RULE_KEYS
};

#define RULE(f) offsetof(rule_input_t, f)

/* Masks and whole values above 2^53 would not survive a double exactly. */
#define RULE_INT_MAX 9007199254740991.0

/* clang-format off */
static const cg_key_t rule_keys[RULE_KEYS + 1] = {
	[RULE_VALUE] = {.name = "value", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = RULE(value)},
	[RULE_MASK] = {.name = "mask", .type = CG_J_INTEGER, .field = CG_F_DOUBLE,
	 .offset = RULE(mask), .min = 1, .max = RULE_INT_MAX},
	[RULE_MIN] = {.name = "min", .type = CG_J_NUMBER, .field = CG_F_DOUBLE, .offset = RULE(min)},
	[RULE_MAX] = {.name = "max", .type = CG_J_NUMBER, .field = CG_F_DOUBLE, .offset = RULE(max)},
	[RULE_STATE] = {.name = "state", .type = CG_J_STRING, .field = CG_F_REF,
	 .offset = RULE(state), .min = 1, .max = CG_STR_MAX - 1},
	[RULE_QUALITY] = {.name = "quality", .type = CG_J_STRING, .field = CG_F_INT,
	 .offset = RULE(quality), .names = cg_quality_names},
	[RULE_DESCRIPTION] = {.name = "description", .type = CG_J_STRING, .field = CG_F_REF,
	 .offset = RULE(description)},
	[RULE_KEYS] = {.name = NULL},
};
/* clang-format on */

static bool is_bit_table(int table)
{
	return table == CG_TABLE_COIL || table == CG_TABLE_DISCRETE;
}

/* A reading with no value says nothing: refuses a profile whose every point
 * is a status point left unpublished. */
static void check_published(cg_walk_t *w, const point_input_t *pts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pts[i].publish)
			return;
	cg_walk_problem(w, "/points",
	                "no point is published, so a reading would carry no value (a status "
	                "point is published with \"publish\": true)");
}

/* Copies a string, or NULL. Returns false when out of memory. */
static bool copy_string(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return true;
	*dst = strdup(src);
	return *dst != NULL;
}

static bool is_float_type(int type)
{
	return type == CG_TYPE_F32 || type == CG_TYPE_F64;
}

/* The largest raw value, as register bits, that a bool or integer point
 * holds: 1 for a bool, else all ones over its registers. */
static uint64_t width_mask(int type)
{
	size_t regs = cg_type_registers((cg_type_t)type);

	if (type == CG_TYPE_BOOL)
		return 1;
	return regs >= 4 ? UINT64_MAX : ((uint64_t)1 << (16 * regs)) - 1;
}

/* Whether v is a raw value an integer or bool point of type can hold. */
static bool value_fits(int type, double v)
{
	double lo = 0, hi = 1;

	switch (type) {
	case CG_TYPE_BOOL: break;
	case CG_TYPE_U16: hi = 65535; break;
	case CG_TYPE_I16: lo = -32768, hi = 32767; break;
	case CG_TYPE_U32: hi = 4294967295.0; break;
	case CG_TYPE_I32: lo = -2147483648.0, hi = 2147483647.0; break;
	case CG_TYPE_U64: hi = 0x1.0p64; break;
	case CG_TYPE_I64: lo = -0x1.0p63, hi = 0x1.0p63; break;
	default: return true;
	}
	return v == floor(v) && v >= lo && v <= hi;
}

/*
 * Checks one status rule (an object of states, at ptr) of a point of type
 * type. Its keys must say what matches: value alone, mask with or without
 * value (masked equality), or min and/or max; and what a match means: a
 * state, a quality or both. All compare the raw value, before scale, so a
 * mask must fit the register's width and a value must be one the register
 * can hold.
 */
static void check_rule(cg_walk_t *w, const cJSON *obj, const char *ptr, int type, bool type_known)
{
	rule_input_t in = {0};
	cg_key_state_t st[RULE_KEYS];
	char kptr[POINTER_MAX];
	bool v, m, lo, hi;

	cg_keys_walk(w, obj, ptr, rule_keys, &in, NULL, st);
	if (!cJSON_IsObject(obj))
		return;
	v = st[RULE_VALUE] != CG_KEY_ABSENT;
	m = st[RULE_MASK] != CG_KEY_ABSENT;
	lo = st[RULE_MIN] != CG_KEY_ABSENT;
	hi = st[RULE_MAX] != CG_KEY_ABSENT;
	if (!v && !m && !lo && !hi) {
		cg_walk_problem(w, ptr,
		                "a rule matches by value, mask (and value) or min/max: "
		                "give one of them");
		return;
	}
	if ((lo || hi) && (v || m)) {
		cg_pointer_key(kptr, sizeof(kptr), ptr, lo ? "min" : "max");
		cg_walk_problem(w, kptr, "min/max is a rule of its own: not with value or mask");
		return;
	}
	if (st[RULE_STATE] == CG_KEY_ABSENT && st[RULE_QUALITY] == CG_KEY_ABSENT)
		cg_walk_problem(w, ptr, "a rule gives a state, a quality or both");
	if (st[RULE_MIN] == CG_KEY_VALID && st[RULE_MAX] == CG_KEY_VALID && in.min > in.max) {
		cg_pointer_key(kptr, sizeof(kptr), ptr, "min");
		cg_walk_problem(w, kptr, "min %g is greater than max %g", in.min, in.max);
	}
	if (!type_known)
		return;
	if (m && is_float_type(type)) {
		cg_pointer_key(kptr, sizeof(kptr), ptr, "mask");
		cg_walk_problem(w, kptr, "a mask needs a bool or integer point, not %s",
		                type_names[type]);
		return;
	}
	if (st[RULE_MASK] == CG_KEY_VALID && (uint64_t)in.mask > width_mask(type)) {
		cg_pointer_key(kptr, sizeof(kptr), ptr, "mask");
		cg_walk_problem(w, kptr, "mask 0x%llx does not fit a %s point (at most 0x%llx)",
		                (unsigned long long)in.mask, type_names[type],
		                (unsigned long long)width_mask(type));
		return;
	}
	if (st[RULE_VALUE] != CG_KEY_VALID)
		return;
	cg_pointer_key(kptr, sizeof(kptr), ptr, "value");
	if (m) {
		if (st[RULE_MASK] == CG_KEY_VALID &&
		    (in.value < 0 || in.value > RULE_INT_MAX || in.value != floor(in.value) ||
		     ((uint64_t)in.value & ~(uint64_t)in.mask) != 0))
			cg_walk_problem(
			    w, kptr, "%g has bits outside mask 0x%llx: the rule would never match",
			    in.value, (unsigned long long)in.mask);
	} else if (!value_fits(type, in.value)) {
		cg_walk_problem(w, kptr,
		                "%g is no raw value of a %s point: the rule would never "
		                "match",
		                in.value, type_names[type]);
	}
}

/*
 * A point's states: first the names of raw values 0, 1, ... (false, true),
 * each a short non-empty string, on a point whose value is whole; then the
 * status rules, objects (check_rule). Names come first so that a name's raw
 * value is its position in the array. Counts both into in.
 */
static void check_states(cg_walk_t *w, point_input_t *in, const char *pointer, bool type_known)
{
	char ptr[POINTER_MAX], item_ptr[POINTER_MAX], msg[128];
	unsigned before = w->errors;
	const cJSON *item;
	size_t i = 0;

	cg_pointer_key(ptr, sizeof(ptr), pointer, "states");
	cJSON_ArrayForEach(item, in->states)
	{
		cg_pointer_index(item_ptr, sizeof(item_ptr), ptr, i++);
		if (cJSON_IsObject(item)) {
			in->n_rules++;
			check_rule(w, item, item_ptr, in->type, type_known);
		} else if (cJSON_IsString(item) && in->n_rules) {
			cg_walk_problem(w, item_ptr,
			                "names come before rules: a name's raw value is its "
			                "position");
		} else if (cJSON_IsString(item)) {
			in->n_names++;
			if (cg_key_problem(&state_key, item, msg, sizeof(msg)))
				cg_walk_problem(w, item_ptr, "%s", msg);
		} else {
			cg_walk_problem(w, item_ptr,
			                "must be a name (a string) or a rule (an object)");
		}
	}
	if (!type_known || !in->n_names || w->errors != before)
		return;
	if (is_float_type(in->type))
		cg_walk_problem(w, ptr, "states need a bool or integer point, not %s",
		                type_names[in->type]);
	else if (in->type == CG_TYPE_BOOL && in->n_names != 2)
		cg_walk_problem(w, ptr, "a bool point has exactly 2 states (false, true)");
	else if (in->n_names < 2)
		cg_walk_problem(w, ptr,
		                "names start at raw 0 and need at least 2; one state is a rule: "
		                "{\"value\": 0, \"state\": \"...\"}");
}

/* Copies the names and the rules of a states array; false when out of
 * memory. */
static bool copy_states(cg_point_t *pt, const cJSON *states)
{
	const cJSON *item;
	int n = states ? cJSON_GetArraySize(states) : 0;

	if (n == 0)
		return true;
	pt->states = calloc((size_t)n, sizeof(*pt->states));
	pt->rules = calloc((size_t)n, sizeof(*pt->rules));
	if (!pt->states || !pt->rules)
		return false;
	cJSON_ArrayForEach(item, states)
	{
		const cJSON *value, *mask, *min, *max, *state, *quality, *description;
		cg_rule_t *r;

		if (cJSON_IsString(item)) {
			pt->states[pt->n_states] = strdup(item->valuestring);
			if (!pt->states[pt->n_states])
				return false;
			pt->n_states++;
			continue;
		}
		r = &pt->rules[pt->n_rules++];
		value = cJSON_GetObjectItemCaseSensitive(item, "value");
		mask = cJSON_GetObjectItemCaseSensitive(item, "mask");
		min = cJSON_GetObjectItemCaseSensitive(item, "min");
		max = cJSON_GetObjectItemCaseSensitive(item, "max");
		state = cJSON_GetObjectItemCaseSensitive(item, "state");
		quality = cJSON_GetObjectItemCaseSensitive(item, "quality");
		description = cJSON_GetObjectItemCaseSensitive(item, "description");
		r->match = mask ? CG_MATCH_MASK : value ? CG_MATCH_VALUE : CG_MATCH_RANGE;
		r->has_value = value != NULL;
		r->value = value ? value->valuedouble : 0;
		r->mask = mask ? (uint64_t)mask->valuedouble : 0;
		r->has_min = min != NULL;
		r->min = min ? min->valuedouble : 0;
		r->has_max = max != NULL;
		r->max = max ? max->valuedouble : 0;
		r->has_quality = quality != NULL;
		r->quality = quality
		                 ? (cg_quality_t)name_index(cg_quality_names, quality->valuestring)
		                 : CG_QUALITY_OK;
		if (!copy_string(&r->state, state ? state->valuestring : NULL) ||
		    !copy_string(&r->description, description ? description->valuestring : NULL))
			return false;
		pt->named |= r->state != NULL;
	}
	pt->named |= pt->n_states > 0;
	return true;
}

/* Validates point index (at /points/index) into pts[index] and fills in
 * defaults; pts[] and names[] hold the points before it and their valid
 * names, for the uniqueness check. Problems are counted in w. */
static void parse_point(cg_walk_t *w, const cJSON *obj, size_t index, point_input_t *pts,
                        const char **names)
{
	point_input_t *in = &pts[index];
	cg_key_state_t st[POINT_KEYS];
	char pointer[POINTER_MAX], ptr[POINTER_MAX];

	cg_pointer_index(pointer, sizeof(pointer), "/points", index);
	cg_keys_walk(w, obj, pointer, point_keys, in, NULL, st);
	if (st[POINT_TYPE] == CG_KEY_ABSENT)
		in->type = is_bit_table(in->table) ? CG_TYPE_BOOL : CG_TYPE_U16;

	/* Only keys that parsed are related to each other, so that one wrong
	 * key gives one line, not a cascade. */
	if (st[POINT_TABLE] == CG_KEY_VALID && st[POINT_TYPE] == CG_KEY_VALID) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "type");
		if (is_bit_table(in->table) && in->type != CG_TYPE_BOOL) {
			cg_walk_problem(w, ptr, "a %s point must be of type bool",
			                table_names[in->table]);
		} else if (!is_bit_table(in->table) && in->type == CG_TYPE_BOOL) {
			cg_walk_problem(w, ptr, "bool is only for coil and discrete points, not %s",
			                table_names[in->table]);
		}
	}
	if (st[POINT_ADDRESS] == CG_KEY_VALID && st[POINT_TYPE] != CG_KEY_INVALID) {
		size_t regs = cg_type_registers((cg_type_t)in->type);

		if (regs > 1 && in->address + (long)regs > 65536) {
			cg_pointer_key(ptr, sizeof(ptr), pointer, "address");
			cg_walk_problem(w, ptr, "%s at %ld needs registers %ld to %ld, past 65535",
			                type_names[in->type], in->address, in->address,
			                in->address + (long)regs - 1);
		}
	}
	if (st[POINT_STATES] == CG_KEY_VALID)
		check_states(w, in, pointer,
		             st[POINT_TYPE] != CG_KEY_INVALID && st[POINT_TABLE] != CG_KEY_INVALID);
	/* A status register, whose states are all rules and which has no unit,
	 * is only there for its rules: not published unless asked. */
	if (st[POINT_PUBLISH] != CG_KEY_VALID)
		in->publish = !(in->n_rules && !in->n_names && !in->unit);
	if (st[POINT_MIN] == CG_KEY_VALID && st[POINT_MAX] == CG_KEY_VALID && in->min > in->max) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "min");
		cg_walk_problem(w, ptr, "min %g is greater than max %g", in->min, in->max);
	}
	if (in->counter && st[POINT_TYPE] != CG_KEY_INVALID && in->type != CG_TYPE_U16 &&
	    in->type != CG_TYPE_U32 && in->type != CG_TYPE_U64) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "counter");
		cg_walk_problem(w, ptr, "a counter must be of type u16, u32 or u64, not %s",
		                type_names[in->type]);
	}
	if (in->counter && in->states) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "counter");
		cg_walk_problem(w, ptr, "a counter cannot have states");
	}
	if (st[POINT_NAME] == CG_KEY_VALID) {
		/* One name per lane: "intensity" may appear once for each lane. A
		 * name without a lane is repeated in every lane's reading, so it may
		 * not also be a lane's; and every lane's reading has laneId. */
		if (strcmp(in->name, "laneId") == 0) {
			cg_pointer_key(ptr, sizeof(ptr), pointer, "name");
			cg_walk_problem(w, ptr, "laneId is the lane readings' own; give \"lane\" instead");
		}
		for (size_t j = 0; j < index; j++) {
			if (names[j] && strcmp(names[j], in->name) == 0 &&
			    (pts[j].lane == in->lane || !pts[j].lane || !in->lane)) {
				cg_pointer_key(ptr, sizeof(ptr), pointer, "name");
				if (pts[j].lane == in->lane)
					cg_walk_problem(
					    w, ptr, "duplicate point name \"%s\" (first at /points/%zu)",
					    in->name, j);
				else
					cg_walk_problem(w, ptr,
					                "\"%s\" is both a lane's point and one without a "
					                "lane (/points/%zu), which every lane's reading "
					                "carries: it would appear twice",
					                in->name, j);
				break;
			}
		}
		names[index] = in->name;
	}
	in->has_min = st[POINT_MIN] == CG_KEY_VALID;
	in->has_max = st[POINT_MAX] == CG_KEY_VALID;
}

/* Each lane's reading carries laneId, the lane's values and every value
 * without a lane: refuses a profile whose lane readings would not fit in a
 * reading, rather than leave values out when it is split. */
static void check_lanes(cg_walk_t *w, const point_input_t *pts, size_t n)
{
	size_t per_lane[CG_READING_MAX_LANES + 1] = {0};

	for (size_t i = 0; i < n; i++)
		if (pts[i].publish && pts[i].lane >= 0 && pts[i].lane <= CG_READING_MAX_LANES)
			per_lane[pts[i].lane]++;
	for (int lane = 1; lane <= CG_READING_MAX_LANES; lane++) {
		size_t values = 1 + per_lane[lane] + per_lane[0];

		if (per_lane[lane] && values > CG_READING_MAX_VALUES) {
			cg_walk_problem(w, "/points",
			                "lane %d's reading would carry %zu values (laneId, %zu of the "
			                "lane, %zu without a lane), more than %d",
			                lane, values, per_lane[lane], per_lane[0],
			                CG_READING_MAX_VALUES);
			return;
		}
	}
}

/* Builds the profile from parsed input, copying every string out of the
 * cJSON tree. Returns 0 or CG_ENOMEM (with *out NULL). */
static int build_profile(const profile_input_t *pin, const point_input_t *pts, size_t n,
                         const char *file, cg_profile_t **out)
{
	cg_profile_t *p = calloc(1, sizeof(*p));

	if (!p)
		return CG_ENOMEM;
	p->points = calloc(n, sizeof(*p->points));
	if (!p->points)
		goto free_profile;
	p->n_points = n;
	p->kind = (cg_kind_t)pin->kind;
	if (!copy_string(&p->name, pin->name) || !copy_string(&p->file, file))
		goto free_profile;
	for (size_t i = 0; i < n; i++) {
		cg_point_t *pt = &p->points[i];

		if (!copy_string(&pt->name, pts[i].name) || !copy_string(&pt->unit, pts[i].unit) ||
		    !copy_states(pt, pts[i].states))
			goto free_profile;
		pt->table = (cg_table_t)pts[i].table;
		pt->address = (uint16_t)pts[i].address;
		pt->type = (cg_type_t)pts[i].type;
		pt->order = (cg_order_t)pts[i].order;
		pt->scale = pts[i].scale;
		pt->offset = pts[i].offset;
		pt->has_min = pts[i].has_min;
		pt->min = pts[i].has_min ? pts[i].min : 0;
		pt->lane = (int)pts[i].lane;
		pt->counter = pts[i].counter;
		pt->has_max = pts[i].has_max;
		pt->max = pts[i].has_max ? pts[i].max : 0;
		pt->status = pt->n_rules && !pt->n_states && !pt->unit;
		pt->publish = pts[i].publish;
	}
	*out = p;
	return 0;

free_profile:
	cg_profile_free(p);
	return CG_ENOMEM;
}

/* Parses and validates a profile document; see profile.h. */
int cg_profile_parse(const char *text, size_t len, const char *file, cg_profile_t **out,
                     cg_diag_t *diag)
{
	cg_walk_t w = {.file = file, .diag = diag};
	profile_input_t pin = {0};
	point_input_t *pts = NULL;
	const char **names = NULL;
	cJSON *root;
	size_t n = 0;
	int rc = CG_EINVAL;

	*out = NULL;
	root = cg_json_parse(text, len, file, diag);
	if (!root)
		return CG_EINVAL;
	cg_keys_walk(&w, root, "", profile_keys, &pin, NULL, NULL);
	if (pin.points) {
		const cJSON *item;
		size_t i = 0;

		n = (size_t)cJSON_GetArraySize(pin.points);
		pts = calloc(n, sizeof(*pts));
		names = calloc(n, sizeof(*names));
		if (!pts || !names) {
			rc = CG_ENOMEM;
			goto free_arrays;
		}
		cJSON_ArrayForEach(item, pin.points) parse_point(&w, item, i++, pts, names);
		if (!w.errors)
			check_lanes(&w, pts, n);
		if (!w.errors)
			check_published(&w, pts, n);
	}
	if (!w.errors)
		rc = build_profile(&pin, pts, n, file, out);

free_arrays:
	free(names);
	free(pts);
	cJSON_Delete(root);
	return rc;
}

/* True when ref names a file rather than a profile in the search folders. */
static bool ref_is_path(const char *ref)
{
	size_t len = strlen(ref);

	return strchr(ref, '/') || (len >= 5 && strcmp(ref + len - 5, ".json") == 0);
}

/* The profiles cg_profile_load() gave out and that are still held: two
 * hundred sensors of one model hold one copy, not two hundred (th2 x 200:
 * 48 KB, aqt530 x 200 far more), and the file is parsed once. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static cg_profile_t *shared;

/* FNV-1a, 64 bits: with the path and the length, what tells that a file's
 * text is the one a shared profile was parsed from. */
static uint64_t text_hash(const char *text, size_t len)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)text[i]) * 1099511628211ULL;
	return h;
}

/* A held profile parsed from this very text of path, with one more holder;
 * NULL when none. */
static cg_profile_t *take_shared(const char *path, uint64_t hash, size_t len)
{
	cg_profile_t *p;

	pthread_mutex_lock(&shared_lock);
	for (p = shared; p; p = p->next_shared)
		if (p->text_hash == hash && p->text_len == len && strcmp(p->file, path) == 0) {
			p->refs++;
			break;
		}
	pthread_mutex_unlock(&shared_lock);
	return p;
}

/* Reads path and parses it, or takes the profile already parsed from the
 * same text, turning read failures into one diag line (file: "": message)
 * naming ref. */
static int load_path(const char *ref, const char *path, const char *file, cg_profile_t **out,
                     cg_diag_t *diag)
{
	uint64_t hash;
	char *text;
	size_t len;
	int rc;

	rc = cg_file_read(path, PROFILE_MAX_BYTES, &text, &len);
	if (rc == CG_ENOENT)
		cg_diag_add(diag, file, "", "profile \"%s\": cannot read %s: %s", ref, path,
		            strerror(errno));
	if (rc)
		return rc;
	hash = text_hash(text, len);
	*out = take_shared(path, hash, len);
	if (*out) {
		free(text);
		return 0;
	}
	rc = cg_profile_parse(text, len, path, out, diag);
	free(text);
	if (rc == 0) {
		(*out)->refs = 1;
		(*out)->text_hash = hash;
		(*out)->text_len = len;
		pthread_mutex_lock(&shared_lock);
		(*out)->next_shared = shared;
		shared = *out;
		pthread_mutex_unlock(&shared_lock);
	}
	return rc;
}

/*
 * Finds and parses a profile; see profile.h. When it is not found, the one
 * diag line carries config_path (or ref when there is no config file) as
 * its file and an empty pointer, and names ref and every place searched:
 * the caller, who knows where ref came from, may report it at its own
 * pointer instead. A file found but unreadable is CG_ENOENT too; problems
 * inside the profile carry the profile's own file and pointers (CG_EINVAL).
 */
int cg_profile_load(const char *ref, const char *config_path, const char *const *dirs,
                    cg_profile_t **out, cg_diag_t *diag)
{
	const char *file = config_path ? config_path : ref;
	char searched[512];
	size_t o = 0;
	int rc;

	*out = NULL;
	if (!ref || !ref[0]) {
		cg_diag_add(diag, file, "", "empty profile reference");
		return CG_ENOENT;
	}
	if (ref_is_path(ref)) {
		char *path = cg_path_resolve(config_path, ref);

		if (!path)
			return CG_ENOMEM;
		rc = load_path(ref, path, file, out, diag);
		free(path);
		return rc;
	}

	searched[0] = '\0';
	for (size_t i = 0; dirs && dirs[i]; i++) {
		size_t plen = strlen(dirs[i]) + strlen(ref) + 7;
		char *path = malloc(plen);
		FILE *f;

		if (!path)
			return CG_ENOMEM;
		snprintf(path, plen, "%s/%s.json", dirs[i], ref);
		/* Only a file that does not exist moves the search on: one
		 * that exists but cannot be read is reported as it is. */
		f = fopen(path, "rb");
		if (f || errno != ENOENT) {
			if (f)
				fclose(f);
			rc = load_path(ref, path, file, out, diag);
			free(path);
			return rc;
		}
		free(path);
		if (o < sizeof(searched))
			o += (size_t)snprintf(searched + o, sizeof(searched) - o, "%s%s",
			                      i ? ", " : "", dirs[i]);
	}
	cg_diag_add(diag, file, "", "no profile named \"%s\" in %s", ref,
	            o ? searched : "(no profile folders)");
	return CG_ENOENT;
}

/* False while others still hold p; otherwise takes p out of the shared
 * list, for it to be freed. */
static bool drop_holder(cg_profile_t *p)
{
	bool last = true;

	pthread_mutex_lock(&shared_lock);
	if (!p->refs) {
		/* never shared: from cg_profile_parse() */
	} else if (--p->refs) {
		last = false;
	} else {
		cg_profile_t **at = &shared;

		while (*at && *at != p)
			at = &(*at)->next_shared;
		if (*at)
			*at = p->next_shared;
	}
	pthread_mutex_unlock(&shared_lock);
	return last;
}

void cg_profile_free(cg_profile_t *p)
{
	if (!p || !drop_holder(p))
		return;
	for (size_t i = 0; p->points && i < p->n_points; i++) {
		free(p->points[i].name);
		free(p->points[i].unit);
		for (size_t j = 0; j < p->points[i].n_states; j++)
			free(p->points[i].states[j]);
		free(p->points[i].states);
		for (size_t j = 0; j < p->points[i].n_rules; j++) {
			free(p->points[i].rules[j].state);
			free(p->points[i].rules[j].description);
		}
		free(p->points[i].rules);
	}
	free(p->points);
	free(p->name);
	free(p->file);
	free(p);
}
