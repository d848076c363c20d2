/* Modbus device profiles: the JSON description of a sensor's register map. */
#ifndef CG_PROFILE_H
#define CG_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/diag.h"
#include "base/reading.h"

typedef enum cg_table {
	CG_TABLE_COIL,     /* FC 01, bits */
	CG_TABLE_DISCRETE, /* FC 02, bits */
	CG_TABLE_HOLDING,  /* FC 03, registers */
	CG_TABLE_INPUT,    /* FC 04, registers */
} cg_table_t;

typedef enum cg_type {
	CG_TYPE_BOOL,
	CG_TYPE_U16,
	CG_TYPE_I16,
	CG_TYPE_U32,
	CG_TYPE_I32,
	CG_TYPE_U64,
	CG_TYPE_I64,
	CG_TYPE_F32,
	CG_TYPE_F64,
} cg_type_t;

/* Byte order of multi-register values, named after the 32-bit case:
 * ABCD big endian, CDAB word swapped, BADC byte swapped, DCBA little endian.
 * For 64-bit values the same rule extends to four registers. */
typedef enum cg_order {
	CG_ORDER_ABCD,
	CG_ORDER_CDAB,
	CG_ORDER_BADC,
	CG_ORDER_DCBA,
} cg_order_t;

/* How a status rule matches a point's raw value (before scale and offset). */
typedef enum cg_rule_match {
	CG_MATCH_VALUE, /* raw == value */
	CG_MATCH_MASK,  /* (bits & mask) != 0, or == value when has_value */
	CG_MATCH_RANGE, /* min <= raw <= max, either bound optional */
} cg_rule_match_t;

/* One status rule of a point's states: when the raw value matches, the
 * point reads state (if any) and the reading gets quality (if any). */
typedef struct cg_rule {
	cg_rule_match_t match;
	bool has_value;
	double value;  /* VALUE, and MASK with has_value */
	uint64_t mask; /* MASK: the bits of the register, within its width */
	bool has_min, has_max;
	double min, max; /* RANGE */
	char *state;     /* NULL: the rule names no state */
	bool has_quality;
	cg_quality_t quality;
	char *description; /* for people; NULL when none */
} cg_rule_t;

typedef struct cg_point {
	char *name;        /* Smart Data Models quantity name */
	char *unit;        /* SenML unit, NULL when none */
	cg_table_t table;
	uint16_t address;  /* 0-based PDU address */
	cg_type_t type;    /* CG_TYPE_BOOL for coil and discrete tables */
	cg_order_t order;
	double scale;      /* default 1 */
	double offset;     /* default 0 */
	bool has_min, has_max;
	double min, max;   /* plausible range; outside it the reading's quality says so */
	int lane;          /* 0, or the traffic lane the value belongs to (1...) */
	bool counter;      /* a cumulative count: readings give its increase per interval */
	char **states;     /* names of raw values 0, 1, ... (false, true); NULL when none */
	size_t n_states;   /* a point with states reads as a string, e.g. parking status */
	cg_rule_t *rules;  /* the status rules of its states, in order; NULL when none */
	size_t n_rules;
	bool named;        /* reads as a string: it has names or a rule with a state */
	bool status;       /* a pure status register: rules, no names, no unit */
	bool publish;      /* its value is in the reading (default: not for a status point) */
} cg_point_t;

typedef struct cg_profile {
	char *name;
	cg_kind_t kind;
	char *file;        /* the file it was read from */
	cg_point_t *points;
	size_t n_points;
	/* cg_profile_load(): the holders of this copy, and what identifies the
	 * text it was parsed from (see load_path()). 0 refs: not shared. */
	size_t refs;
	uint64_t text_hash;
	size_t text_len;
	struct cg_profile *next_shared;
} cg_profile_t;

/* Parses a profile document. file names it in diag lines. On error returns
 * CG_EINVAL with one diag line per problem ("file: /points/2/type: ...",
 * malformed JSON as "file: line L column C: ..."), and *out is NULL. */
int cg_profile_parse(const char *text, size_t len, const char *file, cg_profile_t **out,
		     cg_diag_t *diag);

/* Finds and parses a profile. ref is a name ("aqt530", looked up as
 * DIR/aqt530.json in dirs, a NULL-terminated list, in order) or a path to a
 * .json file (relative paths resolved against config_path's folder).
 * CG_ENOENT with a diag line when not found. A file whose text has not
 * changed since a profile still held was loaded from it gives that same
 * profile: read-only, shared by every holder, each of whom frees it. */
int cg_profile_load(const char *ref, const char *config_path, const char *const *dirs,
		    cg_profile_t **out, cg_diag_t *diag);

/* Frees p; accepts NULL. */
void cg_profile_free(cg_profile_t *p);

/* Names used in profiles, and their inverse look-ups (-1 when unknown). */
const char *cg_table_name(cg_table_t t);
const char *cg_type_name(cg_type_t t);
const char *cg_order_name(cg_order_t o);
int cg_table_from_name(const char *s);
int cg_type_from_name(const char *s);
int cg_order_from_name(const char *s);

#endif
