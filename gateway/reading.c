/* One poll of one sensor: the C struct that drivers fill and encoders read. */
#include "reading.h"

#include <string.h>

#include "error.h"

void cg_reading_init(cg_reading_t *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->quality, "ok");
}

const cg_value_t *cg_reading_find(const cg_reading_t *r, const char *name)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (strcmp(r->values[i].name, name) == 0)
			return &r->values[i];
	return NULL;
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
	if (cg_reading_find(r, name))
		return CG_EINVAL;
	v = &r->values[r->n_values++];
	memset(v, 0, sizeof(*v));
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
