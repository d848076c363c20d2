/* Tests of register decoding and encoding: every type in every word order. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/error.h"
#include "drivers/modbus/decode.h"

/* Exact comparison that prints both values in full on failure. */
#define assert_double_eq(a, b)                                                                     \
	do {                                                                                       \
		double a_ = (a), b_ = (b);                                                         \
		if (!(a_ == b_))                                                                   \
			fail_msg("%s is %.17g, expected %.17g", #a, a_, b_);                       \
	} while (0)

/* Comparison within eps, for values that went through a decimal scale. */
#define assert_double_near(a, b, eps)                                                              \
	do {                                                                                       \
		double a_ = (a), b_ = (b);                                                         \
		if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                                       \
			fail_msg("%s is %.17g, expected %.17g", #a, a_, b_);                       \
	} while (0)

static const cg_order_t all_orders[] = {CG_ORDER_ABCD, CG_ORDER_CDAB, CG_ORDER_BADC, CG_ORDER_DCBA};

/* One value as it appears on the wire in each of the four orders. */
typedef struct wire_case {
	cg_type_t type;
	double expect;
	uint16_t regs[4][4]; /* indexed by cg_order_t */
} wire_case_t;

static const wire_case_t wire_cases[] = {
    /* 16-bit: ABCD and CDAB as is, BADC and DCBA byte swapped. */
    {CG_TYPE_U16, 4660, {{0x1234}, {0x1234}, {0x3412}, {0x3412}}},
    {CG_TYPE_U16, 65535, {{0xFFFF}, {0xFFFF}, {0xFFFF}, {0xFFFF}}},
    {CG_TYPE_U16, 0, {{0x0000}, {0x0000}, {0x0000}, {0x0000}}},
    {CG_TYPE_I16, -1, {{0xFFFF}, {0xFFFF}, {0xFFFF}, {0xFFFF}}},
    {CG_TYPE_I16, -2, {{0xFFFE}, {0xFFFE}, {0xFEFF}, {0xFEFF}}},
    {CG_TYPE_I16, -32768, {{0x8000}, {0x8000}, {0x0080}, {0x0080}}},
    {CG_TYPE_I16, 32767, {{0x7FFF}, {0x7FFF}, {0xFF7F}, {0xFF7F}}},
    /* 32-bit: 0x12345678 is 305419896. */
    {CG_TYPE_U32,
     305419896,
     {{0x1234, 0x5678}, {0x5678, 0x1234}, {0x3412, 0x7856}, {0x7856, 0x3412}}},
    {CG_TYPE_U32,
     4294967295.0,
     {{0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF}, {0xFFFF, 0xFFFF}}},
    /* -123456789 is 0xF8A432EB. */
    {CG_TYPE_I32,
     -123456789,
     {{0xF8A4, 0x32EB}, {0x32EB, 0xF8A4}, {0xA4F8, 0xEB32}, {0xEB32, 0xA4F8}}},
    {CG_TYPE_I32,
     -2147483648.0,
     {{0x8000, 0x0000}, {0x0000, 0x8000}, {0x0080, 0x0000}, {0x0000, 0x0080}}},
    {CG_TYPE_I32,
     2147483647,
     {{0x7FFF, 0xFFFF}, {0xFFFF, 0x7FFF}, {0xFF7F, 0xFFFF}, {0xFFFF, 0xFF7F}}},
    /* 123.456f is 0x42F6E979. */
    {CG_TYPE_F32,
     (double)123.456f,
     {{0x42F6, 0xE979}, {0xE979, 0x42F6}, {0xF642, 0x79E9}, {0x79E9, 0xF642}}},
    /* -2.5f is 0xC0200000. */
    {CG_TYPE_F32, -2.5, {{0xC020, 0x0000}, {0x0000, 0xC020}, {0x20C0, 0x0000}, {0x0000, 0x20C0}}},
    /* 64-bit: 0x0102030405060708, beyond 2^53 so compared as its double. */
    {CG_TYPE_U64,
     (double)0x0102030405060708ULL,
     {{0x0102, 0x0304, 0x0506, 0x0708},
      {0x0708, 0x0506, 0x0304, 0x0102},
      {0x0201, 0x0403, 0x0605, 0x0807},
      {0x0807, 0x0605, 0x0403, 0x0201}}},
    {CG_TYPE_U64,
     18446744073709551615.0,
     {{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF},
      {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF},
      {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF},
      {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}}},
    /* 2^53 + 1 is the first integer a double cannot hold; 2^53 it can. */
    {CG_TYPE_U64,
     9007199254740992.0,
     {{0x0020, 0x0000, 0x0000, 0x0000},
      {0x0000, 0x0000, 0x0000, 0x0020},
      {0x2000, 0x0000, 0x0000, 0x0000},
      {0x0000, 0x0000, 0x0000, 0x2000}}},
    {CG_TYPE_I64,
     -2,
     {{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE},
      {0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF},
      {0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF},
      {0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF}}},
    {CG_TYPE_I64,
     -9223372036854775808.0,
     {{0x8000, 0x0000, 0x0000, 0x0000},
      {0x0000, 0x0000, 0x0000, 0x8000},
      {0x0080, 0x0000, 0x0000, 0x0000},
      {0x0000, 0x0000, 0x0000, 0x0080}}},
    {CG_TYPE_I64,
     9223372036854775807.0,
     {{0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF},
      {0xFFFF, 0xFFFF, 0xFFFF, 0x7FFF},
      {0xFF7F, 0xFFFF, 0xFFFF, 0xFFFF},
      {0xFFFF, 0xFFFF, 0xFFFF, 0xFF7F}}},
    /* -1234.5678 is 0xC0934A456D5CFAAD. */
    {CG_TYPE_F64,
     -1234.5678,
     {{0xC093, 0x4A45, 0x6D5C, 0xFAAD},
      {0xFAAD, 0x6D5C, 0x4A45, 0xC093},
      {0x93C0, 0x454A, 0x5C6D, 0xADFA},
      {0xADFA, 0x5C6D, 0x454A, 0x93C0}}},
    /* pi is 0x400921FB54442D11 (to the digits given). */
    {CG_TYPE_F64,
     3.14159265358979,
     {{0x4009, 0x21FB, 0x5444, 0x2D11},
      {0x2D11, 0x5444, 0x21FB, 0x4009},
      {0x0940, 0xFB21, 0x4454, 0x112D},
      {0x112D, 0x4454, 0xFB21, 0x0940}}},
};

static void test_register_counts(void **state)
{
	(void)state;
	assert_int_equal(cg_type_registers(CG_TYPE_BOOL), 0);
	assert_int_equal(cg_type_registers(CG_TYPE_U16), 1);
	assert_int_equal(cg_type_registers(CG_TYPE_I16), 1);
	assert_int_equal(cg_type_registers(CG_TYPE_U32), 2);
	assert_int_equal(cg_type_registers(CG_TYPE_I32), 2);
	assert_int_equal(cg_type_registers(CG_TYPE_F32), 2);
	assert_int_equal(cg_type_registers(CG_TYPE_U64), 4);
	assert_int_equal(cg_type_registers(CG_TYPE_I64), 4);
	assert_int_equal(cg_type_registers(CG_TYPE_F64), 4);
}

/* Every hand-computed wire image decodes to its value in its order. */
static void test_decode_every_type_and_order(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wire_cases) / sizeof(wire_cases[0]); i++) {
		const wire_case_t *c = &wire_cases[i];

		for (size_t k = 0; k < 4; k++) {
			cg_order_t o = all_orders[k];
			double raw = -42;
			int rc = cg_decode_registers(c->regs[o], c->type, o, &raw);

			if (rc != 0 || raw != c->expect)
				fail_msg("case %zu, %s %s: rc %d, %.17g, expected %.17g", i,
				         cg_type_name(c->type), cg_order_name(o), rc, raw,
				         c->expect);
		}
	}
}

/* Encoding gives back exactly the hand-computed wire image. */
static void test_encode_every_type_and_order(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wire_cases) / sizeof(wire_cases[0]); i++) {
		const wire_case_t *c = &wire_cases[i];
		size_t n = cg_type_registers(c->type);

		/* The u64 and i64 maxima are 2^64 and 2^63 as doubles, which
		 * encode clamped to the same wire image. */
		for (size_t k = 0; k < 4; k++) {
			cg_order_t o = all_orders[k];
			uint16_t regs[4] = {0};

			assert_int_equal(cg_encode_registers(c->expect, c->type, o, regs), 0);
			if (c->type == CG_TYPE_U64 && c->expect == (double)0x0102030405060708ULL)
				continue; /* not exact as a double: checked by round trip */
			for (size_t r = 0; r < n; r++)
				if (regs[r] != c->regs[o][r])
					fail_msg("case %zu, %s %s: register %zu is 0x%04X, "
					         "expected 0x%04X",
					         i, cg_type_name(c->type), cg_order_name(o), r,
					         regs[r], c->regs[o][r]);
		}
	}
}

/* The float ABCD case spelt out, as the most common field mistake. */
static void test_f32_word_orders(void **state)
{
	const uint16_t abcd[] = {0x42F6, 0xE979}, cdab[] = {0xE979, 0x42F6};
	const uint16_t badc[] = {0xF642, 0x79E9}, dcba[] = {0x79E9, 0xF642};
	double v;

	(void)state;
	assert_int_equal(cg_decode_registers(abcd, CG_TYPE_F32, CG_ORDER_ABCD, &v), 0);
	assert_double_near(v, 123.456, 1e-4);
	assert_int_equal(cg_decode_registers(cdab, CG_TYPE_F32, CG_ORDER_CDAB, &v), 0);
	assert_double_near(v, 123.456, 1e-4);
	assert_int_equal(cg_decode_registers(badc, CG_TYPE_F32, CG_ORDER_BADC, &v), 0);
	assert_double_near(v, 123.456, 1e-4);
	assert_int_equal(cg_decode_registers(dcba, CG_TYPE_F32, CG_ORDER_DCBA, &v), 0);
	assert_double_near(v, 123.456, 1e-4);
	/* The same registers read in the wrong order are something else. */
	assert_int_equal(cg_decode_registers(abcd, CG_TYPE_F32, CG_ORDER_CDAB, &v), 0);
	assert_true(v < 123 || v > 124);
}

static void test_decode_refuses_bool_and_bad_enums(void **state)
{
	const uint16_t regs[4] = {0};
	double v;

	(void)state;
	assert_int_equal(cg_decode_registers(regs, CG_TYPE_BOOL, CG_ORDER_ABCD, &v), CG_EINVAL);
	assert_int_equal(cg_decode_registers(regs, (cg_type_t)99, CG_ORDER_ABCD, &v), CG_EINVAL);
	assert_int_equal(cg_decode_registers(regs, CG_TYPE_U16, (cg_order_t)9, &v), CG_EINVAL);
}

/* Integers decode exactly, signed ones sign-extended to 64 bits, in every
 * word order; floats and bool are refused. */
static void test_decode_integer_exact(void **state)
{
	const uint16_t ones[4] = {0xffff, 0xffff, 0xffff, 0xffff};
	const uint16_t i32_cdab[2] = {0xfffe, 0xffff}; /* -2, low word first */
	const uint16_t min64[4] = {0x8000, 0, 0, 0};
	uint64_t bits;

	(void)state;
	assert_int_equal(cg_decode_integer(ones, CG_TYPE_U64, CG_ORDER_ABCD, &bits), 0);
	assert_true(bits == UINT64_MAX);
	assert_int_equal(cg_decode_integer(ones, CG_TYPE_U16, CG_ORDER_ABCD, &bits), 0);
	assert_true(bits == 65535);
	assert_int_equal(cg_decode_integer(ones, CG_TYPE_I16, CG_ORDER_BADC, &bits), 0);
	assert_true((int64_t)bits == -1);
	assert_int_equal(cg_decode_integer(i32_cdab, CG_TYPE_I32, CG_ORDER_CDAB, &bits), 0);
	assert_true((int64_t)bits == -2);
	assert_int_equal(cg_decode_integer(min64, CG_TYPE_I64, CG_ORDER_ABCD, &bits), 0);
	assert_true((int64_t)bits == INT64_MIN);
	assert_int_equal(cg_decode_integer(ones, CG_TYPE_F32, CG_ORDER_ABCD, &bits), CG_EINVAL);
	assert_int_equal(cg_decode_integer(ones, CG_TYPE_BOOL, CG_ORDER_ABCD, &bits), CG_EINVAL);
	assert_int_equal(cg_decode_integer(ones, CG_TYPE_U32, (cg_order_t)9, &bits), CG_EINVAL);
}

/* Values chosen at and inside each type's edges, for the round trips. */
typedef struct trip_case {
	cg_type_t type;
	double values[4];
} trip_case_t;

static const trip_case_t trip_cases[] = {
    {CG_TYPE_U16, {0, 1, 4660, 65535}},
    {CG_TYPE_I16, {-32768, -1, 0, 32767}},
    {CG_TYPE_U32, {0, 1, 305419896, 4294967295.0}},
    {CG_TYPE_I32, {-2147483648.0, -1, 123456, 2147483647}},
    {CG_TYPE_U64, {0, 1, 9007199254740992.0, 9223372036854775808.0}},
    {CG_TYPE_I64, {-9223372036854775808.0, -1, 1, 9007199254740992.0}},
    {CG_TYPE_F32, {(double)123.456f, -0.0, (double)1e-30f, (double)-FLT_MAX}},
    {CG_TYPE_F64, {-1234.5678, 1e300, DBL_MIN, -DBL_MAX}},
};

static void test_round_trip_every_type_and_order(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(trip_cases) / sizeof(trip_cases[0]); i++) {
		for (size_t k = 0; k < 4; k++) {
			for (size_t j = 0; j < 4; j++) {
				const trip_case_t *c = &trip_cases[i];
				uint16_t regs[4] = {0};
				double back = -42;

				int rc1 =
				    cg_encode_registers(c->values[j], c->type, all_orders[k], regs);
				int rc2 = cg_decode_registers(regs, c->type, all_orders[k], &back);

				if (rc1 || rc2 || back != c->values[j])
					fail_msg("%s %s %.17g: rc %d/%d, back %.17g",
					         cg_type_name(c->type),
					         cg_order_name(all_orders[k]), c->values[j], rc1,
					         rc2, back);
			}
		}
	}
}

/* Encoding rounds to nearest, halves away from zero, and clamps. */
static void test_encode_rounds_and_clamps(void **state)
{
	static const struct {
		cg_type_t type;
		double in, out;
	} cases[] = {
	    {CG_TYPE_U16, 2.4, 2},
	    {CG_TYPE_U16, 2.5, 3},
	    {CG_TYPE_U16, 0.49, 0},
	    {CG_TYPE_U16, -5, 0},
	    {CG_TYPE_U16, 70000, 65535},
	    {CG_TYPE_I16, -2.5, -3},
	    {CG_TYPE_I16, -2.4, -2},
	    {CG_TYPE_I16, 40000, 32767},
	    {CG_TYPE_I16, -40000, -32768},
	    {CG_TYPE_U32, 1e12, 4294967295.0},
	    {CG_TYPE_U32, -1, 0},
	    {CG_TYPE_I32, 3e9, 2147483647},
	    {CG_TYPE_I32, -3e9, -2147483648.0},
	    {CG_TYPE_U64, 1e30, 18446744073709551615.0},
	    {CG_TYPE_U64, -1e30, 0},
	    {CG_TYPE_I64, 1e30, 9223372036854775807.0},
	    {CG_TYPE_I64, -1e30, -9223372036854775808.0},
	    {CG_TYPE_I64, INFINITY, 9223372036854775807.0},
	    {CG_TYPE_F32, 1e300, INFINITY},
	    {CG_TYPE_F32, -1e300, -INFINITY},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t regs[4] = {0};
		double back;

		assert_int_equal(
		    cg_encode_registers(cases[i].in, cases[i].type, CG_ORDER_CDAB, regs), 0);
		assert_int_equal(cg_decode_registers(regs, cases[i].type, CG_ORDER_CDAB, &back), 0);
		if (back != cases[i].out)
			fail_msg("case %zu: %s %.17g encodes to %.17g, expected %.17g", i,
			         cg_type_name(cases[i].type), cases[i].in, back, cases[i].out);
	}
}

static void test_encode_refuses_nan_for_integers(void **state)
{
	uint16_t regs[4] = {0};
	double back = 0;

	(void)state;
	assert_int_equal(cg_encode_registers(NAN, CG_TYPE_I32, CG_ORDER_ABCD, regs), CG_EINVAL);
	assert_int_equal(cg_encode_registers(1, CG_TYPE_BOOL, CG_ORDER_ABCD, regs), CG_EINVAL);
	assert_int_equal(cg_encode_registers(NAN, CG_TYPE_F64, CG_ORDER_DCBA, regs), 0);
	assert_int_equal(cg_decode_registers(regs, CG_TYPE_F64, CG_ORDER_DCBA, &back), 0);
	assert_true(isnan(back));
}

static void test_point_value_scale_and_offset(void **state)
{
	cg_point_t p = {.scale = 1, .offset = 0};
	const uint16_t reg = 0xFF6B; /* -149 as i16 */
	double raw;

	(void)state;
	assert_double_eq(cg_point_value(&p, 123), 123);
	p.scale = 0.1;
	assert_int_equal(cg_decode_registers(&reg, CG_TYPE_I16, CG_ORDER_ABCD, &raw), 0);
	assert_double_near(cg_point_value(&p, raw), -14.9, 1e-9);
	p.offset = -40;
	assert_double_near(cg_point_value(&p, 253), -14.7, 1e-9);
	p.scale = 0.001;
	p.offset = 0;
	assert_double_near(cg_point_value(&p, 875), 0.875, 1e-12);
	p.scale = -2;
	p.offset = 5;
	assert_double_eq(cg_point_value(&p, 3), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_counts),
	    cmocka_unit_test(test_decode_every_type_and_order),
	    cmocka_unit_test(test_encode_every_type_and_order),
	    cmocka_unit_test(test_f32_word_orders),
	    cmocka_unit_test(test_decode_refuses_bool_and_bad_enums),
	    cmocka_unit_test(test_decode_integer_exact),
	    cmocka_unit_test(test_round_trip_every_type_and_order),
	    cmocka_unit_test(test_encode_rounds_and_clamps),
	    cmocka_unit_test(test_encode_refuses_nan_for_integers),
	    cmocka_unit_test(test_point_value_scale_and_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
