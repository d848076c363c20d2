/* Register decoding: Modbus registers to numbers for every type and word order. */
#ifndef CG_DECODE_H
#define CG_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/modbus/profile.h"

/* Registers a value of type t occupies (1 for 16-bit, 2, 4; 0 for bool). */
size_t cg_type_registers(cg_type_t t);

/* Whether t is one of the integer types (u16 ... i64), and a signed one. */
bool cg_type_is_integer(cg_type_t t);
bool cg_type_is_signed(cg_type_t t);

/* Decodes an integer type exactly: *bits is the value, sign-extended to 64
 * bits for a signed type (so that (int64_t)*bits is it). Returns 0, or
 * CG_EINVAL for bool, the float types or a bad order. */
int cg_decode_integer(const uint16_t *regs, cg_type_t t, cg_order_t o, uint64_t *bits);

/* Decodes the raw value of type t in order o from regs (at least
 * cg_type_registers(t) of them) as a double. 64-bit integers beyond 2^53
 * come out as the nearest double: cg_decode_integer() keeps them exact.
 * Returns 0, or CG_EINVAL for CG_TYPE_BOOL or a bad enum. */
int cg_decode_registers(const uint16_t *regs, cg_type_t t, cg_order_t o, double *raw);

/* The inverse, for the simulator and tests: raw is rounded and clamped to the
 * type's range for integers. */
int cg_encode_registers(double raw, cg_type_t t, cg_order_t o, uint16_t *regs);

/* Applies a point's scale and offset to a raw value. */
double cg_point_value(const cg_point_t *p, double raw);

#endif
