/* Key tables: one row per key of a JSON object, walked by one walker that words every problem. */
#ifndef CG_KEYS_H
#define CG_KEYS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/diag.h"

/* The JSON type a key must have. */
typedef enum cg_jtype {
	CG_J_STRING,
	CG_J_INTEGER,
	CG_J_NUMBER,
	CG_J_BOOL,
	CG_J_OBJECT,
	CG_J_ARRAY,
} cg_jtype_t;

/* How a valid value is stored at the key's offset. */
typedef enum cg_field {
	CG_F_NONE,   /* checked only, or handled by the key's own function */
	CG_F_STR,    /* char *, a copy (cg_keys_free() frees it) */
	CG_F_REF,    /* const char * (strings) or const cJSON * (arrays, objects) into the tree */
	CG_F_INT,    /* int (also int-sized enums) */
	CG_F_LONG,   /* long */
	CG_F_INT64,  /* int64_t */
	CG_F_DOUBLE, /* double */
	CG_F_BOOL,   /* bool */
	CG_F_CHAR,   /* char, e.g. parity 'N' */
} cg_field_t;

enum {
	CG_K_REQUIRED = 1, /* absent is an error (for variant keys: when valid for the variant) */
	CG_K_PATH = 2,     /* a file path: a relative one is resolved against the walk's file */
	CG_K_READABLE = 4, /* must name a regular file that can be opened for reading now */
	CG_K_NONZERO = 8,  /* numbers: 0 is refused */
};

typedef struct cg_walk cg_walk_t;
typedef struct cg_key cg_key_t;

/*
 * One row of a key table: everything the walker enforces about one key, and
 * everything a problem line says about it. Tables end with a row whose name
 * is NULL. Bounds of 0 and 0 mean none: any finite number or integer, any
 * string length, any number of items.
 */
struct cg_key {
	const char *name;
	cg_jtype_t type;
	unsigned flags; /* CG_K_* */
	cg_field_t field;
	size_t offset;            /* of the field, or of the sub-struct for objects */
	double min, max;          /* numbers: the bounds; strings: the length (max 0: no
	                             limit); arrays: the number of items */
	double def;               /* stored when absent or invalid: numbers, bools, enum values */
	const char *const *names; /* string enums: the allowed names, NULL-terminated */
	const int *values;        /* string enums: what each name stores (NULL: its index);
	                             integers: the only allowed values */
	size_t n_values;          /* integers: the length of values */
	unsigned variants;        /* the variants of the object it is valid for; 0: all */
	const char *(*check)(const char *s); /* strings: a further rule, a message or NULL */
	const cg_key_t *sub; /* objects: their table, offsets relative to base + offset */
	/* arrays: called with the array, or with NULL when it is absent or invalid */
	void (*each)(cg_walk_t *w, const cJSON *array, const char *pointer);
	/* objects: the rules across their keys, run after a walk of a valid object */
	void (*post)(cg_walk_t *w, const cJSON *obj, void *base);
};

/* One walk: where problems go, how many there were, and the caller's own
 * state for its each() and post() functions. Zero-initialise, then set file
 * and diag (which may be NULL: problems are then only counted). */
struct cg_walk {
	const char *file; /* names every problem line; anchors relative paths */
	cg_diag_t *diag;
	unsigned errors;
	bool nomem;
	void *user;
};

/* What a walk makes of members beyond its table; NULL means: none allowed. */
typedef struct cg_keys_scope {
	const cg_key_t *also;      /* another table's keys: its owner walks them */
	bool others;               /* any other member belongs to someone else too */
	unsigned variant;          /* the object's variant for keys with variants; 0: unknown */
	const char *variant_label; /* words "not valid for a LABEL" */
} cg_keys_scope_t;

/* What the walk found of each row, by row index. */
typedef enum cg_key_state {
	CG_KEY_ABSENT,
	CG_KEY_VALID,
	CG_KEY_INVALID,
} cg_key_state_t;

/*
 * Checks the JSON object obj (at JSON pointer pointer) against the table
 * keys and stores every valid value in the struct at base; absent and
 * invalid keys get their defaults, so that rules across keys stay quiet about
 * a value already reported. Each problem is one line: a repeated member
 * ("duplicate key"), a member in no table ("unknown key"), one of another
 * variant ("not valid for a ..."), a required key absent ("required key
 * missing"), a value against its row (the rule it breaks, e.g. "must be an
 * integer from 0 to 255"), or obj itself not an object ("must be an
 * object"). Objects with a sub-table are walked in turn, arrays handed to
 * their each(). Rows are handled in table order, so a row may rely on the
 * ones before it. state, when not NULL, receives each row's state. The walk
 * always goes to the end; w counts what it found.
 */
void cg_keys_walk(cg_walk_t *w, const cJSON *obj, const char *pointer, const cg_key_t *keys,
                  void *base, const cg_keys_scope_t *scope, cg_key_state_t *state);

/* Records one problem of w: a line in its diag and one more error. */
void cg_walk_problem(cg_walk_t *w, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Judges item by row k alone: NULL when valid, else writes the rule it
 * breaks into msg and returns msg. Stores nothing, so it also serves array
 * elements and rules across keys. */
const char *cg_key_problem(const cg_key_t *k, const cJSON *item, char *msg, size_t size);

/* The row called name, or NULL. */
const cg_key_t *cg_key_find(const cg_key_t *keys, const char *name);

/* The number (or bool, or enum value) a valid item of row k stores. */
double cg_key_value(const cg_key_t *k, const cJSON *item);

/* Whether the member name of obj is absent or valid by its row, so that a
 * rule across keys does not repeat a problem already reported. */
bool cg_keys_usable(const cJSON *obj, const cg_key_t *keys, const char *name);

/* Frees the CG_F_STR copies a walk stored in base (and in its sub-structs)
 * and sets them to NULL. */
void cg_keys_free(const cg_key_t *keys, void *base);

#endif
