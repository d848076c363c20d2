/* Modbus device profiles: parse and validate a profile's JSON, and find it on disk. */
#include "drivers/modbus/profile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
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
 * The validation tables. Each key of an object is described once: its JSON
 * type, whether it is required, its bounds, and where its value goes in a
 * plain parse struct. The generic walker below checks every key against its
 * row and reports unknown and duplicate keys, so that the checks that remain
 * in code are only those that relate two keys (table and type, min and max).
 */
typedef enum field_kind {
	FIELD_STRING,  /* const char * into the cJSON tree */
	FIELD_CHOICE,  /* int: index into choices */
	FIELD_INTEGER, /* long, within [min, max] */
	FIELD_NUMBER,  /* double, finite, non-zero if nonzero */
	FIELD_ARRAY,   /* const cJSON *, with [min, max] items */
	FIELD_BOOL,    /* bool */
} field_kind_t;

typedef struct field {
	const char *key;
	field_kind_t kind;
	bool required;
	size_t offset;              /* of the value in the parse struct */
	size_t max_len;             /* strings: longest length in bytes, 0 for any */
	bool non_empty;             /* strings: refuse "" */
	const char *const *choices; /* FIELD_CHOICE */
	double min, max;            /* FIELD_INTEGER value, FIELD_ARRAY item count */
	bool nonzero;               /* FIELD_NUMBER */
} field_t;

typedef enum field_state {
	FIELD_ABSENT,
	FIELD_VALID,
	FIELD_INVALID,
} field_state_t;

typedef struct profile_input {
	const char *name;
	int kind;
	const cJSON *points;
} profile_input_t;

enum { PROFILE_NAME, PROFILE_KIND, PROFILE_POINTS, PROFILE_FIELDS };

static const field_t profile_fields[PROFILE_FIELDS] = {
    [PROFILE_NAME] = {.key = "name",
                      .kind = FIELD_STRING,
                      .required = true,
                      .non_empty = true,
                      .offset = offsetof(profile_input_t, name)},
    [PROFILE_KIND] = {.key = "kind",
                      .kind = FIELD_CHOICE,
                      .required = true,
                      .choices = cg_kind_names,
                      .offset = offsetof(profile_input_t, kind)},
    [PROFILE_POINTS] = {.key = "points",
                        .kind = FIELD_ARRAY,
                        .required = true,
                        .min = 1,
                        .max = CG_READING_MAX_VALUES,
                        .offset = offsetof(profile_input_t, points)},
};

typedef struct point_input {
	const char *name, *unit, *description;
	int table, type, order;
	long address;
	double scale, offset, min, max;
	const cJSON *states;
	long lane;
	bool counter;
	bool has_min, has_max; /* filled from the field states after the walk */
} point_input_t;

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
	POINT_FIELDS
};

static const field_t point_fields[POINT_FIELDS] = {
    [POINT_NAME] = {.key = "name",
                    .kind = FIELD_STRING,
                    .required = true,
                    .non_empty = true,
                    .max_len = CG_NAME_MAX - 1,
                    .offset = offsetof(point_input_t, name)},
    [POINT_TABLE] = {.key = "table",
                     .kind = FIELD_CHOICE,
                     .required = true,
                     .choices = table_names,
                     .offset = offsetof(point_input_t, table)},
    [POINT_ADDRESS] = {.key = "address",
                       .kind = FIELD_INTEGER,
                       .required = true,
                       .min = 0,
                       .max = 65535,
                       .offset = offsetof(point_input_t, address)},
    [POINT_TYPE] = {.key = "type",
                    .kind = FIELD_CHOICE,
                    .choices = type_names,
                    .offset = offsetof(point_input_t, type)},
    [POINT_ORDER] = {.key = "order",
                     .kind = FIELD_CHOICE,
                     .choices = order_names,
                     .offset = offsetof(point_input_t, order)},
    [POINT_SCALE] = {.key = "scale",
                     .kind = FIELD_NUMBER,
                     .nonzero = true,
                     .offset = offsetof(point_input_t, scale)},
    [POINT_OFFSET] = {.key = "offset",
                      .kind = FIELD_NUMBER,
                      .offset = offsetof(point_input_t, offset)},
    [POINT_UNIT] = {.key = "unit",
                    .kind = FIELD_STRING,
                    .non_empty = true,
                    .max_len = CG_UNIT_MAX - 1,
                    .offset = offsetof(point_input_t, unit)},
    [POINT_MIN] = {.key = "min", .kind = FIELD_NUMBER, .offset = offsetof(point_input_t, min)},
    [POINT_MAX] = {.key = "max", .kind = FIELD_NUMBER, .offset = offsetof(point_input_t, max)},
    [POINT_DESCRIPTION] = {.key = "description",
                           .kind = FIELD_STRING,
                           .offset = offsetof(point_input_t, description)},
    [POINT_STATES] = {.key = "states",
                      .kind = FIELD_ARRAY,
                      .min = 2,
                      .max = 64,
                      .offset = offsetof(point_input_t, states)},
    [POINT_LANE] = {.key = "lane",
                    .kind = FIELD_INTEGER,
                    .min = 1,
                    .max = 64,
                    .offset = offsetof(point_input_t, lane)},
    [POINT_COUNTER] = {.key = "counter",
                       .kind = FIELD_BOOL,
                       .offset = offsetof(point_input_t, counter)},
};

/* Writes "a, b or c" from a NULL-terminated list into buf. */
static void choice_list(char *buf, size_t size, const char *const *choices)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; choices[i] && o < size; i++) {
		const char *sep = i == 0 ? "" : choices[i + 1] ? ", " : " or ";

		o += (size_t)snprintf(buf + o, size - o, "%s%s", sep, choices[i]);
	}
}

/* Checks one value against its row and stores it in base. Returns true when
 * valid; otherwise adds one diag line at ptr and returns false. */
static bool parse_field(const cJSON *item, const field_t *f, void *base, const char *ptr,
                        const char *file, cg_diag_t *diag)
{
	char *dst = (char *)base + f->offset;
	char list[128];

	switch (f->kind) {
	case FIELD_STRING: {
		size_t len;

		if (!cJSON_IsString(item)) {
			cg_diag_add(diag, file, ptr, "must be a string");
			return false;
		}
		len = strlen(item->valuestring);
		if (f->non_empty && len == 0) {
			cg_diag_add(diag, file, ptr, "must not be empty");
			return false;
		}
		if (f->max_len && len > f->max_len) {
			cg_diag_add(diag, file, ptr, "must be at most %zu characters long",
			            f->max_len);
			return false;
		}
		*(const char **)dst = item->valuestring;
		return true;
	}
	case FIELD_CHOICE: {
		int i = cJSON_IsString(item) ? name_index(f->choices, item->valuestring) : -1;

		if (i < 0) {
			choice_list(list, sizeof(list), f->choices);
			cg_diag_add(diag, file, ptr, "must be one of %s", list);
			return false;
		}
		*(int *)dst = i;
		return true;
	}
	case FIELD_BOOL:
		if (!cJSON_IsBool(item)) {
			cg_diag_add(diag, file, ptr, "must be true or false");
			return false;
		}
		*(bool *)dst = cJSON_IsTrue(item);
		return true;
	case FIELD_INTEGER: {
		double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;

		/* Bounds first: within them the cast is defined, and a
		 * round trip through long tells an integer without libm. */
		if (!(v >= f->min && v <= f->max) || v != (double)(long)v) {
			cg_diag_add(diag, file, ptr, "must be an integer from %.0f to %.0f", f->min,
			            f->max);
			return false;
		}
		*(long *)dst = (long)v;
		return true;
	}
	case FIELD_NUMBER: {
		double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;

		if (!isfinite(v)) {
			cg_diag_add(diag, file, ptr, "must be a number");
			return false;
		}
		if (f->nonzero && v == 0) {
			cg_diag_add(diag, file, ptr, "must not be zero");
			return false;
		}
		*(double *)dst = v;
		return true;
	}
	case FIELD_ARRAY: {
		int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : -1;

		if (n < 0) {
			cg_diag_add(diag, file, ptr, "must be an array");
			return false;
		}
		if (n < f->min || n > f->max) {
			cg_diag_add(diag, file, ptr, "must have %.0f to %.0f items", f->min,
			            f->max);
			return false;
		}
		*(const cJSON **)dst = item;
		return true;
	}
	}
	return false;
}

/* Walks the keys of obj (at pointer) against the n rows of fields, storing
 * values in base and each row's state in state[]. Unknown keys, duplicate
 * keys, bad values and missing required keys each add one diag line.
 * Returns true when the object is valid as far as single keys go. */
static bool parse_fields(const cJSON *obj, const char *pointer, const field_t *fields, size_t n,
                         void *base, field_state_t *state, const char *file, cg_diag_t *diag)
{
	char ptr[POINTER_MAX];
	bool ok = true;
	const cJSON *item;

	for (size_t i = 0; i < n; i++)
		state[i] = FIELD_ABSENT;
	if (!cJSON_IsObject(obj)) {
		cg_diag_add(diag, file, pointer, "must be an object");
		return false;
	}
	cJSON_ArrayForEach(item, obj)
	{
		size_t i;

		cg_pointer_key(ptr, sizeof(ptr), pointer, item->string);
		for (i = 0; i < n && strcmp(fields[i].key, item->string) != 0; i++)
			;
		if (i == n) {
			cg_diag_add(diag, file, ptr, "unknown key");
			ok = false;
		} else if (state[i] != FIELD_ABSENT) {
			cg_diag_add(diag, file, ptr, "duplicate key");
			ok = false;
		} else if (parse_field(item, &fields[i], base, ptr, file, diag)) {
			state[i] = FIELD_VALID;
		} else {
			state[i] = FIELD_INVALID;
			ok = false;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (fields[i].required && state[i] == FIELD_ABSENT) {
			cg_pointer_key(ptr, sizeof(ptr), pointer, fields[i].key);
			cg_diag_add(diag, file, ptr, "required key missing");
			ok = false;
		}
	}
	return ok;
}

static bool is_bit_table(int table)
{
	return table == CG_TABLE_COIL || table == CG_TABLE_DISCRETE;
}

/* States name the raw values of a bool or integer point (index 0 is false
 * or 0): each a short non-empty string, on a point whose value is whole. */
static bool check_states(const point_input_t *in, const char *pointer, const char *file,
                         cg_diag_t *diag)
{
	char ptr[POINTER_MAX], item_ptr[POINTER_MAX];
	const cJSON *item;
	size_t i = 0;
	bool ok = true;

	cg_pointer_key(ptr, sizeof(ptr), pointer, "states");
	if (in->type == CG_TYPE_F32 || in->type == CG_TYPE_F64) {
		cg_diag_add(diag, file, ptr, "states need a bool or integer point, not %s",
		            type_names[in->type]);
		return false;
	}
	cJSON_ArrayForEach(item, in->states)
	{
		cg_pointer_index(item_ptr, sizeof(item_ptr), ptr, i++);
		if (!cJSON_IsString(item) || !item->valuestring[0] ||
		    strlen(item->valuestring) >= CG_STR_MAX) {
			cg_diag_add(diag, file, item_ptr,
			            "must be a non-empty string of at most %d bytes", CG_STR_MAX - 1);
			ok = false;
		}
	}
	if (ok && in->type == CG_TYPE_BOOL && i != 2) {
		cg_diag_add(diag, file, ptr, "a bool point has exactly 2 states (false, true)");
		ok = false;
	}
	return ok;
}

/* Copies the states array; false when out of memory. */
static bool copy_states(cg_point_t *pt, const cJSON *states)
{
	const cJSON *item;
	int n = states ? cJSON_GetArraySize(states) : 0;

	if (n == 0)
		return true;
	pt->states = calloc((size_t)n, sizeof(*pt->states));
	if (!pt->states)
		return false;
	cJSON_ArrayForEach(item, states)
	{
		pt->states[pt->n_states] = strdup(item->valuestring);
		if (!pt->states[pt->n_states])
			return false;
		pt->n_states++;
	}
	return true;
}

/* Validates point index (at /points/index) and fills in defaults; names[]
 * holds the valid names of the points before it, for the uniqueness check.
 * Returns true when the point is valid. */
static bool parse_point(const cJSON *obj, size_t index, point_input_t *in,
                        const point_input_t *prev, const char **names,
                        const char *file, cg_diag_t *diag)
{
	field_state_t st[POINT_FIELDS];
	char pointer[POINTER_MAX], ptr[POINTER_MAX];
	bool ok;

	*in = (point_input_t){.scale = 1, .order = CG_ORDER_ABCD};
	cg_pointer_index(pointer, sizeof(pointer), "/points", index);
	ok = parse_fields(obj, pointer, point_fields, POINT_FIELDS, in, st, file, diag);
	if (st[POINT_TYPE] == FIELD_ABSENT)
		in->type = is_bit_table(in->table) ? CG_TYPE_BOOL : CG_TYPE_U16;

	/* Only keys that parsed are related to each other, so that one wrong
	 * key gives one line, not a cascade. */
	if (st[POINT_TABLE] == FIELD_VALID && st[POINT_TYPE] == FIELD_VALID) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "type");
		if (is_bit_table(in->table) && in->type != CG_TYPE_BOOL) {
			cg_diag_add(diag, file, ptr, "a %s point must be of type bool",
			            table_names[in->table]);
			ok = false;
		} else if (!is_bit_table(in->table) && in->type == CG_TYPE_BOOL) {
			cg_diag_add(diag, file, ptr,
			            "bool is only for coil and discrete points, not %s",
			            table_names[in->table]);
			ok = false;
		}
	}
	if (st[POINT_ADDRESS] == FIELD_VALID && st[POINT_TYPE] != FIELD_INVALID) {
		size_t regs = cg_type_registers((cg_type_t)in->type);

		if (regs > 1 && in->address + (long)regs > 65536) {
			cg_pointer_key(ptr, sizeof(ptr), pointer, "address");
			cg_diag_add(diag, file, ptr,
			            "%s at %ld needs registers %ld to %ld, past 65535",
			            type_names[in->type], in->address, in->address,
			            in->address + (long)regs - 1);
			ok = false;
		}
	}
	if (st[POINT_STATES] == FIELD_VALID && !check_states(in, pointer, file, diag))
		ok = false;
	if (st[POINT_MIN] == FIELD_VALID && st[POINT_MAX] == FIELD_VALID && in->min > in->max) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "min");
		cg_diag_add(diag, file, ptr, "min %g is greater than max %g", in->min, in->max);
		ok = false;
	}
	if (in->counter && st[POINT_TYPE] != FIELD_INVALID && in->type != CG_TYPE_U16 && in->type != CG_TYPE_U32 &&
	    in->type != CG_TYPE_U64) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "counter");
		cg_diag_add(diag, file, ptr, "a counter must be of type u16, u32 or u64, not %s",
		            type_names[in->type]);
		ok = false;
	}
	if (in->counter && in->states) {
		cg_pointer_key(ptr, sizeof(ptr), pointer, "counter");
		cg_diag_add(diag, file, ptr, "a counter cannot have states");
		ok = false;
	}
	if (st[POINT_NAME] == FIELD_VALID) {
		/* One name per lane: "intensity" may appear once for each lane. */
		for (size_t j = 0; j < index; j++) {
			if (names[j] && strcmp(names[j], in->name) == 0 && prev[j].lane == in->lane) {
				cg_pointer_key(ptr, sizeof(ptr), pointer, "name");
				cg_diag_add(diag, file, ptr,
				            "duplicate point name \"%s\" (first at /points/%zu)",
				            in->name, j);
				ok = false;
				break;
			}
		}
		names[index] = in->name;
	}
	in->has_min = st[POINT_MIN] == FIELD_VALID;
	in->has_max = st[POINT_MAX] == FIELD_VALID;
	return ok;
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
	}
	*out = p;
	return 0;

free_profile:
	cg_profile_free(p);
	return CG_ENOMEM;
}

/* Reports malformed JSON at byte offset pos of text as "line L column C",
 * both counted from 1, columns in characters (UTF-8 continuation bytes are
 * not counted). */
static void report_malformed(const char *text, size_t len, size_t pos, const char *file,
                             cg_diag_t *diag)
{
	size_t line = 1, column = 1;
	char where[64];

	if (pos > len)
		pos = len;
	for (size_t i = 0; i < pos; i++) {
		if (text[i] == '\n') {
			line++;
			column = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			column++;
		}
	}
	snprintf(where, sizeof(where), "line %zu column %zu", line, column);
	cg_diag_add(diag, file, where, "malformed JSON");
}

/* Parses and validates a profile document; see profile.h. The parse end
 * returned by cJSON is used rather than the global cJSON_GetErrorPtr() so
 * that profiles can be parsed on several threads at once. Text after the
 * document other than white space is malformed too. */
int cg_profile_parse(const char *text, size_t len, const char *file, cg_profile_t **out,
                     cg_diag_t *diag)
{
	field_state_t st[PROFILE_FIELDS];
	profile_input_t pin = {0};
	point_input_t *pts = NULL;
	const char **names = NULL;
	const char *end = NULL;
	cJSON *root;
	bool ok;
	size_t n = 0;
	int rc = CG_EINVAL;

	*out = NULL;
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		report_malformed(text, len, end ? (size_t)(end - text) : 0, file, diag);
		return CG_EINVAL;
	}
	while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end < text + len && *end != '\0') {
		report_malformed(text, len, (size_t)(end - text), file, diag);
		goto free_root;
	}

	ok = parse_fields(root, "", profile_fields, PROFILE_FIELDS, &pin, st, file, diag);
	if (st[PROFILE_POINTS] == FIELD_VALID) {
		const cJSON *item;
		size_t i = 0;

		n = (size_t)cJSON_GetArraySize(pin.points);
		pts = calloc(n, sizeof(*pts));
		names = calloc(n, sizeof(*names));
		if (!pts || !names) {
			rc = CG_ENOMEM;
			goto free_arrays;
		}
		cJSON_ArrayForEach(item, pin.points)
		{
			if (!parse_point(item, i, &pts[i], pts, names, file, diag))
				ok = false;
			i++;
		}
	}
	if (ok)
		rc = build_profile(&pin, pts, n, file, out);

free_arrays:
	free(names);
	free(pts);
free_root:
	cJSON_Delete(root);
	return rc;
}

/* Reads a whole file into a NUL-terminated buffer. Returns 0, CG_ENOENT
 * with *err set to errno when it cannot be read, or CG_ERANGE when it is
 * larger than PROFILE_MAX_BYTES. */
static int read_file(const char *path, char **text, size_t *len, int *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*text = NULL;
	*err = 0;
	if (!f) {
		*err = errno;
		return CG_ENOENT;
	}
	for (;;) {
		size_t got;

		if (n == cap) {
			char *grown;

			if (cap >= PROFILE_MAX_BYTES) {
				rc = CG_ERANGE;
				goto free_buf;
			}
			cap = cap ? cap * 2 : 4096;
			grown = realloc(buf, cap + 1);
			if (!grown) {
				rc = CG_ENOMEM;
				goto free_buf;
			}
			buf = grown;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				*err = errno ? errno : EIO;
				rc = CG_ENOENT;
				goto free_buf;
			}
			break;
		}
	}
	if (n > PROFILE_MAX_BYTES) {
		rc = CG_ERANGE;
		goto free_buf;
	}
	buf[n] = '\0';
	fclose(f);
	*text = buf;
	*len = n;
	return 0;

free_buf:
	free(buf);
	fclose(f);
	return rc;
}

/* True when ref names a file rather than a profile in the search folders. */
static bool ref_is_path(const char *ref)
{
	size_t len = strlen(ref);

	return strchr(ref, '/') || (len >= 5 && strcmp(ref + len - 5, ".json") == 0);
}

/* The path of ref: as it is when absolute or when the config file has no
 * folder, else joined to the config file's folder. The caller frees it. */
static char *resolve_path(const char *ref, const char *config_path)
{
	const char *slash = config_path ? strrchr(config_path, '/') : NULL;
	size_t dir_len;
	char *path;

	if (ref[0] == '/' || !slash)
		return strdup(ref);
	dir_len = (size_t)(slash - config_path);
	path = malloc(dir_len + 1 + strlen(ref) + 1);
	if (path)
		sprintf(path, "%.*s/%s", (int)dir_len, config_path, ref);
	return path;
}

/* Reads path and parses it, turning read failures into one diag line
 * (file: "": message) naming ref. */
static int load_path(const char *ref, const char *path, const char *file, cg_profile_t **out,
                     cg_diag_t *diag)
{
	char *text;
	size_t len;
	int err, rc;

	rc = read_file(path, &text, &len, &err);
	if (rc == CG_ENOENT) {
		cg_diag_add(diag, file, "", "profile \"%s\": cannot read %s: %s", ref, path,
		            strerror(err));
		return CG_ENOENT;
	}
	if (rc == CG_ERANGE) {
		cg_diag_add(diag, file, "", "profile \"%s\": %s is larger than %d bytes", ref, path,
		            PROFILE_MAX_BYTES);
		return CG_EINVAL;
	}
	if (rc)
		return rc;
	rc = cg_profile_parse(text, len, path, out, diag);
	free(text);
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
		char *path = resolve_path(ref, config_path);

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

void cg_profile_free(cg_profile_t *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->points && i < p->n_points; i++) {
		free(p->points[i].name);
		free(p->points[i].unit);
		for (size_t j = 0; j < p->points[i].n_states; j++)
			free(p->points[i].states[j]);
		free(p->points[i].states);
	}
	free(p->points);
	free(p->name);
	free(p->file);
	free(p);
}
