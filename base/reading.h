/* One poll of one sensor: the C struct that drivers fill and encoders read. */
#ifndef CG_READING_H
#define CG_READING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CG_READING_MAX_VALUES 32
#define CG_READING_MAX_LANES  16 /* lanes one reading may be split into */
#define CG_NAME_MAX           32 /* quantity names, e.g. "relativeHumidity" */
#define CG_UNIT_MAX           12 /* SenML unit symbols, e.g. "ug/m3" */
#define CG_STR_MAX            16 /* string values, e.g. parking "occupied" */
#define CG_ID_MAX             64 /* gateway and sensor ids */

/* What a reading measures. Payloads and topics carry its name, from the one
 * table cg_kind_names; profiles name it there too. */
typedef enum cg_kind {
	CG_KIND_AIR_QUALITY, /* "air-quality" */
	CG_KIND_PARKING,     /* "parking": a bay's status or a lot's counts */
	CG_KIND_TRAFFIC,     /* "traffic" */
	CG_KIND_WEATHER,     /* "weather": wind, rain, temperature, humidity, pressure */
	CG_N_KINDS,
} cg_kind_t;

/* How far a reading can be trusted, as a whole. Payloads carry its name,
 * from the one table cg_quality_names (schemas/reading-*.schema.json say
 * what each means to a consumer). */
typedef enum cg_quality {
	CG_QUALITY_OK,            /* "ok": answered, every value passed its checks */
	CG_QUALITY_OUT_OF_RANGE,  /* "out-of-range": a value outside the declared range */
	CG_QUALITY_WARMING_UP,    /* "warming-up": the sensor is not settled after a wake-up */
	CG_QUALITY_COUNTER_RESET, /* "counter-reset": a cumulative counter went back */
	CG_QUALITY_INVALID,       /* "invalid": a value that is no finite number was left out */
	CG_QUALITY_NO_ANSWER,     /* "no-answer": a parking bay whose sensor stopped answering */
	CG_QUALITY_STALE,         /* "stale": data not refreshed since the previous poll */
	CG_QUALITY_SENSOR_FAULT,  /* "sensor-fault": the sensor reports a fault of its own */
	CG_QUALITY_MAINTENANCE,   /* "maintenance": the sensor reports calibration or service */
	CG_N_QUALITIES,
} cg_quality_t;

/* The names of the kinds and of the qualities, indexed by the enums and
 * NULL-terminated (so that a config table can offer them as its choices). */
extern const char *const cg_kind_names[CG_N_KINDS + 1];
extern const char *const cg_quality_names[CG_N_QUALITIES + 1];

/* The name of kind k, or NULL for a value outside the enum. */
const char *cg_kind_name(cg_kind_t k);

/* The name of quality q, or NULL for a value outside the enum. */
const char *cg_quality_name(cg_quality_t q);

/*
 * A reading carries one quality even when several apply; the worse one wins.
 * From worst to best: sensor-fault, maintenance, no-answer, invalid,
 * warming-up, stale, counter-reset, out-of-range, ok. What the sensor says of
 * itself comes first: its values may all be wrong. Then a value that is
 * missing or left out, then values that are there but not to be relied on,
 * and last a value that is read right but implausible.
 * cg_quality_worse() returns the worse of a and b (a value outside the enum
 * counts as worst, so that it is never hidden).
 */
cg_quality_t cg_quality_worse(cg_quality_t a, cg_quality_t b);

typedef enum cg_value_type {
	CG_VALUE_NUMBER,
	CG_VALUE_BOOL,
	CG_VALUE_STRING,
} cg_value_type_t;

/* How far a reading's ts can be trusted (docs/topics.md, "Clock"). */
typedef enum cg_ts_clock {
	CG_TS_SYNCED,    /* made with a trusted wall clock */
	CG_TS_UNSYNCED,  /* made with a wall clock not trusted, and not corrected */
	CG_TS_CORRECTED, /* made so, and corrected from the boot clock once it was trusted */
} cg_ts_clock_t;

typedef struct cg_value {
	char name[CG_NAME_MAX];
	char unit[CG_UNIT_MAX]; /* "" when the value has no unit */
	cg_value_type_t type;
	double number; /* for an exact integer, the nearest double */
	/* Numbers read from an integer register: the exact value, -magnitude
	 * when negative, so that 64-bit counters and identifiers keep every
	 * digit (a double holds integers exactly only up to 2^53). */
	bool exact;
	bool negative;
	uint64_t magnitude;
	bool boolean;
	char string[CG_STR_MAX];
	int lane; /* 0 for the whole sensor; 1... for one lane of a traffic sensor */
} cg_value_t;

/* A reading owns all its strings (no pointers), so it can be queued across
 * threads and outlive the sensor that made it, e.g. across a reload. */
typedef struct cg_reading {
	char sensor[CG_ID_MAX];
	cg_kind_t kind;
	int64_t ts_ms;          /* time of measurement, Unix epoch milliseconds */
	int64_t boot_ms;        /* the same instant on CLOCK_BOOTTIME (0: not stamped) */
	cg_ts_clock_t ts_clock; /* how far ts can be trusted */
	double interval_s;      /* > 0 for interval measures; ts is the interval's end */
	cg_quality_t quality;   /* ok unless a driver or range check says otherwise */
	int lane;               /* the lane that cg_reading_add_*() gives new values */
	size_t n_values;
	cg_value_t values[CG_READING_MAX_VALUES];
} cg_reading_t;

/* Clears r: kind air-quality, quality ok, no values. */
void cg_reading_init(cg_reading_t *r);

/* Sets r's quality to the worse of its own and q (cg_quality_worse()): the
 * one way a driver lowers a reading's quality, so that no check undoes a
 * worse one made before it. */
void cg_reading_worsen(cg_reading_t *r, cg_quality_t q);

/* Sets ts to wall_ms, a wall-clock time close to now, and ties it to the boot clock
 * (boot_ms), so that it can be corrected if the wall clock turns out wrong. */
void cg_reading_stamp(cg_reading_t *r, int64_t wall_ms);

/* "unsynced", "corrected"; NULL for CG_TS_SYNCED (the flag is then left out). */
const char *cg_ts_clock_name(cg_ts_clock_t c);

/* Append a value. unit may be NULL. Names and units longer than the fields
 * are refused with CG_ERANGE, as is a reading that already has
 * CG_READING_MAX_VALUES values; a duplicate name is refused with CG_EINVAL. */
int cg_reading_add_number(cg_reading_t *r, const char *name, double v, const char *unit);
/* An integer kept exactly (see cg_value_t.exact), signed or unsigned. */
int cg_reading_add_int(cg_reading_t *r, const char *name, int64_t v, const char *unit);
int cg_reading_add_uint(cg_reading_t *r, const char *name, uint64_t v, const char *unit);
int cg_reading_add_bool(cg_reading_t *r, const char *name, bool v);
int cg_reading_add_string(cg_reading_t *r, const char *name, const char *v);

/* The first value named name, in whichever lane, or NULL. */
const cg_value_t *cg_reading_find(const cg_reading_t *r, const char *name);

/* Values added after this belong to lane (0: the whole sensor). One name
 * may appear once per lane. */
void cg_reading_set_lane(cg_reading_t *r, int lane);

/* Whether cur differs from prev enough to be reported: another set of
 * values (names, lanes, types) or quality, any text or boolean value, or a
 * number that moved by more than deadband (absolute). */
bool cg_reading_differs(const cg_reading_t *prev, const cg_reading_t *cur, double deadband);

/* Splits a reading whose values carry lanes into one reading per lane, in
 * the order the lanes first appear: each gets the lane's values after a
 * "laneId" value, then the values of lane 0. A reading without lanes is
 * copied as it is. Returns how many readings were written to out (at most
 * max). */
size_t cg_reading_split_lanes(const cg_reading_t *in, cg_reading_t *out, size_t max);

#endif
