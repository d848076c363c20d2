/* Register decoding: Modbus registers to numbers for every type and word order. */
#include "drivers/modbus/decode.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "base/error.h"

size_t cg_type_registers(cg_type_t t)
{
	switch (t) {
	case CG_TYPE_BOOL: return 0;
	case CG_TYPE_U16:
	case CG_TYPE_I16: return 1;
	case CG_TYPE_U32:
	case CG_TYPE_I32:
	case CG_TYPE_F32: return 2;
	case CG_TYPE_U64:
	case CG_TYPE_I64:
	case CG_TYPE_F64: return 4;
	}
	return 0;
}

/* Word-reversing orders take the registers last first; byte-swapping orders
 * swap the two bytes of each register. Every order is one of the four
 * combinations, which is what makes the rule extend to 16 and 64 bits. */
static bool order_reverses_words(cg_order_t o)
{
	return o == CG_ORDER_CDAB || o == CG_ORDER_DCBA;
}

static bool order_swaps_bytes(cg_order_t o)
{
	return o == CG_ORDER_BADC || o == CG_ORDER_DCBA;
}

static bool order_valid(cg_order_t o)
{
	return o == CG_ORDER_ABCD || o == CG_ORDER_CDAB || o == CG_ORDER_BADC || o == CG_ORDER_DCBA;
}

static uint16_t swap16(uint16_t v)
{
	return (uint16_t)((v << 8) | (v >> 8));
}

/* Gathers n registers in order o into one big-endian integer of 16 * n bits:
 * the most significant register of the value comes first. */
static uint64_t gather(const uint16_t *regs, size_t n, cg_order_t o)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		uint16_t r = regs[order_reverses_words(o) ? n - 1 - i : i];

		if (order_swaps_bytes(o))
			r = swap16(r);
		v = (v << 16) | r;
	}
	return v;
}

/* The inverse of gather(): spreads the low 16 * n bits of v over n registers. */
static void scatter(uint64_t v, size_t n, cg_order_t o, uint16_t *regs)
{
	for (size_t i = 0; i < n; i++) {
		uint16_t r = (uint16_t)(v >> (16 * (n - 1 - i)));

		if (order_swaps_bytes(o))
			r = swap16(r);
		regs[order_reverses_words(o) ? n - 1 - i : i] = r;
	}
}

bool cg_type_is_integer(cg_type_t t)
{
	return t == CG_TYPE_U16 || t == CG_TYPE_I16 || t == CG_TYPE_U32 || t == CG_TYPE_I32 ||
	       t == CG_TYPE_U64 || t == CG_TYPE_I64;
}

bool cg_type_is_signed(cg_type_t t)
{
	return t == CG_TYPE_I16 || t == CG_TYPE_I32 || t == CG_TYPE_I64;
}

int cg_decode_integer(const uint16_t *regs, cg_type_t t, cg_order_t o, uint64_t *bits)
{
	size_t n = cg_type_registers(t);
	unsigned width = 16 * (unsigned)n;
	uint64_t v;

	if (!cg_type_is_integer(t) || !order_valid(o))
		return CG_EINVAL;
	v = gather(regs, n, o);
	/* Sign extension by hand: the top bit of the type's width, copied up. */
	if (cg_type_is_signed(t) && width < 64 && (v >> (width - 1)) & 1)
		v |= UINT64_MAX << width;
	*bits = v;
	return 0;
}

/* Decodes the raw value: the registers are gathered into one big-endian bit
 * pattern, which is then read as the type's integer or IEEE 754 format. */
int cg_decode_registers(const uint16_t *regs, cg_type_t t, cg_order_t o, double *raw)
{
	size_t n = cg_type_registers(t);
	uint64_t v;

	if (cg_type_is_integer(t)) {
		if (cg_decode_integer(regs, t, o, &v) < 0)
			return CG_EINVAL;
		*raw = cg_type_is_signed(t) ? (double)(int64_t)v : (double)v;
		return 0;
	}
	if (n == 0 || !order_valid(o))
		return CG_EINVAL;
	v = gather(regs, n, o);
	switch (t) {
	case CG_TYPE_F32: {
		uint32_t bits = (uint32_t)v;
		float f;

		memcpy(&f, &bits, sizeof(f));
		*raw = (double)f;
		break;
	}
	case CG_TYPE_F64: {
		double d;

		memcpy(&d, &v, sizeof(d));
		*raw = d;
		break;
	}
	default: return CG_EINVAL;
	}
	return 0;
}

/* Rounds raw to the nearest integer, halves away from zero, and clamps it to
 * [lo, hi]. Done by hand rather than with round() so that the module needs no
 * libm: truncation is exact for doubles, and so is the fraction it leaves.
 * 2^63 is exact as a double, which makes the outer bounds right. */
static int64_t round_signed(double raw, int64_t lo, int64_t hi)
{
	int64_t t;
	double frac;

	if (raw >= 9223372036854775808.0)
		return hi;
	if (raw <= -9223372036854775808.0)
		return lo;
	t = (int64_t)raw;
	frac = raw - (double)t;
	if (frac >= 0.5 && t < INT64_MAX)
		t++;
	else if (frac <= -0.5 && t > INT64_MIN)
		t--;
	return t < lo ? lo : t > hi ? hi : t;
}

/* The same for unsigned types: 2^64 is exact as a double. */
static uint64_t round_unsigned(double raw, uint64_t hi)
{
	uint64_t t;

	if (!(raw >= 0.5))
		return 0;
	if (raw >= 18446744073709551616.0)
		return hi;
	t = (uint64_t)raw;
	if (raw - (double)t >= 0.5)
		t++;
	return t > hi ? hi : t;
}

/* Encodes raw as type t in order o: integers are rounded to nearest (halves
 * away from zero) and clamped to the type's range; floats are stored as the
 * nearest value of their format. NaN cannot be encoded as an integer and
 * gives CG_EINVAL, as do CG_TYPE_BOOL and a bad enum. */
int cg_encode_registers(double raw, cg_type_t t, cg_order_t o, uint16_t *regs)
{
	size_t n = cg_type_registers(t);
	uint64_t v;

	if (n == 0 || !order_valid(o))
		return CG_EINVAL;
	if (isnan(raw) && t != CG_TYPE_F32 && t != CG_TYPE_F64)
		return CG_EINVAL;
	switch (t) {
	case CG_TYPE_U16: v = round_unsigned(raw, UINT16_MAX); break;
	case CG_TYPE_I16: v = (uint16_t)(int16_t)round_signed(raw, INT16_MIN, INT16_MAX); break;
	case CG_TYPE_U32: v = round_unsigned(raw, UINT32_MAX); break;
	case CG_TYPE_I32: v = (uint32_t)(int32_t)round_signed(raw, INT32_MIN, INT32_MAX); break;
	case CG_TYPE_U64: v = round_unsigned(raw, UINT64_MAX); break;
	case CG_TYPE_I64: v = (uint64_t)round_signed(raw, INT64_MIN, INT64_MAX); break;
	case CG_TYPE_F32: {
		uint32_t bits;
		float f;

		/* Out of float's range the conversion is undefined in C; IEEE
		 * rounding would give infinity, so say so explicitly. */
		if (raw > FLT_MAX)
			f = INFINITY;
		else if (raw < -FLT_MAX)
			f = -INFINITY;
		else
			f = (float)raw;

		memcpy(&bits, &f, sizeof(bits));
		v = bits;
		break;
	}
	case CG_TYPE_F64: memcpy(&v, &raw, sizeof(v)); break;
	default: return CG_EINVAL;
	}
	scatter(v, n, o, regs);
	return 0;
}

double cg_point_value(const cg_point_t *p, double raw)
{
	return raw * p->scale + p->offset;
}
