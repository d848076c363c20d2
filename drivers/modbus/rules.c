/* Status rules: what a point's raw value says of the sensor's state and the reading's quality. */
#include "drivers/modbus/rules.h"

#include <stddef.h>

bool cg_rule_matches(const cg_rule_t *r, double raw, uint64_t bits)
{
	switch (r->match) {
	case CG_MATCH_VALUE: return raw == r->value;
	case CG_MATCH_MASK:
		/* A mask alone is any of its bits: a group of fault bits is one
		 * rule. Masked equality picks one value of a multi-bit field. */
		return r->has_value ? (bits & r->mask) == (uint64_t)r->value
		                    : (bits & r->mask) != 0;
	case CG_MATCH_RANGE:
		return (!r->has_min || raw >= r->min) && (!r->has_max || raw <= r->max);
	}
	return false;
}

const char *cg_rules_apply(const cg_point_t *pt, double raw, uint64_t bits, cg_quality_t *quality)
{
	const char *state = NULL;

	for (size_t i = 0; i < pt->n_rules; i++) {
		const cg_rule_t *r = &pt->rules[i];

		if (!cg_rule_matches(r, raw, bits))
			continue;
		if (r->has_quality)
			*quality = cg_quality_worse(*quality, r->quality);
		if (!state && r->state)
			state = r->state;
	}
	return state;
}
