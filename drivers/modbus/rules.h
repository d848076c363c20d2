/* Status rules: what a point's raw value says of the sensor's state and the reading's quality. */
#ifndef CG_RULES_H
#define CG_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "base/reading.h"
#include "drivers/modbus/profile.h"

/* Whether rule r matches a raw value: raw as decoded (before scale and
 * offset), bits the register's bits for a mask (0 or 1 for a bool). */
bool cg_rule_matches(const cg_rule_t *r, double raw, uint64_t bits);

/*
 * Applies every rule of pt to one raw value. Every matching rule's quality
 * worsens *quality (cg_quality_worse(), so the worst one wins whatever the
 * order); the state is that of the first matching rule that names one, in
 * the profile's order. Returns that state (owned by pt), or NULL when no
 * matching rule names one.
 */
const char *cg_rules_apply(const cg_point_t *pt, double raw, uint64_t bits, cg_quality_t *quality);

#endif
