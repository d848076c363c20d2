/* Tests of request planning: merging points into the fewest Modbus reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/error.h"
#include "drivers/modbus/plan.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A point with only what planning looks at. */
static cg_point_t pt(cg_table_t table, unsigned address, cg_type_t type)
{
	return (cg_point_t){
	    .name = "p", .table = table, .address = (uint16_t)address, .type = type, .scale = 1};
}

static void assert_request(const cg_plan_t *plan, size_t i, cg_table_t table, unsigned address,
                           unsigned count)
{
	assert_true(i < plan->n_requests);
	assert_int_equal(plan->requests[i].table, table);
	assert_int_equal(plan->requests[i].address, address);
	assert_int_equal(plan->requests[i].count, count);
}

static void test_contiguous_points_make_one_request(void **state)
{
	cg_point_t p[] = {
	    pt(CG_TABLE_HOLDING, 2, CG_TYPE_U16), pt(CG_TABLE_HOLDING, 0, CG_TYPE_U16),
	    pt(CG_TABLE_HOLDING, 1, CG_TYPE_I16), pt(CG_TABLE_HOLDING, 3, CG_TYPE_F32)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(p, N(p), true, 0, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 5);
	for (size_t i = 0; i < N(p); i++)
		assert_int_equal(plan.point_request[i], 0);
	cg_plan_free(&plan);
}

static void test_small_gaps_merge_large_gaps_split(void **state)
{
	/* The AQT530 map: 0, 1, 2, (3 unused), 4..6, (7 unused), 8..12. */
	cg_point_t p[] = {
	    pt(CG_TABLE_HOLDING, 0, CG_TYPE_I16), pt(CG_TABLE_HOLDING, 2, CG_TYPE_I16),
	    pt(CG_TABLE_HOLDING, 6, CG_TYPE_I16), pt(CG_TABLE_HOLDING, 8, CG_TYPE_I16),
	    pt(CG_TABLE_HOLDING, 12, CG_TYPE_I16)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(p, N(p), true, 8, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 13);
	cg_plan_free(&plan);

	/* The widest hole is 3 (registers 3..5 and 9..11): merged at 3. */
	assert_int_equal(cg_plan_build(p, N(p), true, 3, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 13);
	cg_plan_free(&plan);

	/* At 2 the holes of 3 split, the holes of 1 (1 and 7) still merge. */
	assert_int_equal(cg_plan_build(p, N(p), true, 2, &plan), 0);
	assert_int_equal(plan.n_requests, 3);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 3);
	assert_request(&plan, 1, CG_TABLE_HOLDING, 6, 3);
	assert_request(&plan, 2, CG_TABLE_HOLDING, 12, 1);
	assert_int_equal(plan.point_request[1], 0);
	assert_int_equal(plan.point_request[2], 1);
	assert_int_equal(plan.point_request[3], 1);
	assert_int_equal(plan.point_request[4], 2);
	cg_plan_free(&plan);

	/* max_gap 0 merges only neighbours that touch, and none do here. */
	assert_int_equal(cg_plan_build(p, N(p), true, 0, &plan), 0);
	assert_int_equal(plan.n_requests, 5);
	cg_plan_free(&plan);
}

static void test_gap_is_measured_from_the_end_of_a_value(void **state)
{
	/* A u64 at 10 ends at 14: a point at 16 leaves a hole of 2. */
	cg_point_t p[] = {pt(CG_TABLE_INPUT, 10, CG_TYPE_U64), pt(CG_TABLE_INPUT, 16, CG_TYPE_U16)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(p, N(p), true, 2, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_INPUT, 10, 7);
	cg_plan_free(&plan);
	assert_int_equal(cg_plan_build(p, N(p), true, 1, &plan), 0);
	assert_int_equal(plan.n_requests, 2);
	cg_plan_free(&plan);
}

static void test_register_limit_is_respected(void **state)
{
	cg_point_t p[200];
	cg_plan_t plan;

	(void)state;
	/* 200 contiguous registers: 125 then 75. */
	for (size_t i = 0; i < N(p); i++)
		p[i] = pt(CG_TABLE_HOLDING, 1000 + (unsigned)i, CG_TYPE_U16);
	assert_int_equal(cg_plan_build(p, N(p), true, 8, &plan), 0);
	assert_int_equal(plan.n_requests, 2);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 1000, CG_MAX_READ_REGISTERS);
	assert_request(&plan, 1, CG_TABLE_HOLDING, 1125, 75);
	assert_int_equal(plan.point_request[124], 0);
	assert_int_equal(plan.point_request[125], 1);
	cg_plan_free(&plan);

	/* Exactly 125 registers, first to last, is one request. */
	p[0] = pt(CG_TABLE_INPUT, 0, CG_TYPE_U16);
	p[1] = pt(CG_TABLE_INPUT, 124, CG_TYPE_U16);
	assert_int_equal(cg_plan_build(p, 2, true, 200, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_INPUT, 0, 125);
	cg_plan_free(&plan);
	p[1] = pt(CG_TABLE_INPUT, 125, CG_TYPE_U16);
	assert_int_equal(cg_plan_build(p, 2, true, 200, &plan), 0);
	assert_int_equal(plan.n_requests, 2);
	cg_plan_free(&plan);
}

static void test_wide_value_never_crosses_the_limit(void **state)
{
	/* A u32 at 123 ends at 125 and fits; at 124 it would end at 126. */
	cg_point_t fits[] = {pt(CG_TABLE_HOLDING, 0, CG_TYPE_U16),
	                     pt(CG_TABLE_HOLDING, 123, CG_TYPE_U32)};
	cg_point_t crosses[] = {pt(CG_TABLE_HOLDING, 0, CG_TYPE_U16),
	                        pt(CG_TABLE_HOLDING, 124, CG_TYPE_F32),
	                        pt(CG_TABLE_HOLDING, 126, CG_TYPE_F64)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(fits, N(fits), true, 125, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 125);
	cg_plan_free(&plan);

	assert_int_equal(cg_plan_build(crosses, N(crosses), true, 125, &plan), 0);
	assert_int_equal(plan.n_requests, 2);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 1);
	assert_request(&plan, 1, CG_TABLE_HOLDING, 124, 6);
	assert_int_equal(plan.point_request[1], 1);
	assert_int_equal(plan.point_request[2], 1);
	cg_plan_free(&plan);
}

static void test_bit_limit_is_respected(void **state)
{
	cg_point_t p[] = {pt(CG_TABLE_COIL, 0, CG_TYPE_BOOL), pt(CG_TABLE_COIL, 1999, CG_TYPE_BOOL),
	                  pt(CG_TABLE_COIL, 2000, CG_TYPE_BOOL),
	                  pt(CG_TABLE_COIL, 2050, CG_TYPE_BOOL)};
	cg_plan_t plan;

	(void)state;
	/* With an unbounded gap the limit alone decides: 0..1999, then 2000..2050. */
	assert_int_equal(cg_plan_build(p, N(p), true, 5000, &plan), 0);
	assert_int_equal(plan.n_requests, 2);
	assert_request(&plan, 0, CG_TABLE_COIL, 0, CG_MAX_READ_BITS);
	assert_request(&plan, 1, CG_TABLE_COIL, 2000, 51);
	cg_plan_free(&plan);
}

static void test_tables_are_never_merged(void **state)
{
	/* Same addresses in four tables, listed out of order. */
	cg_point_t p[] = {
	    pt(CG_TABLE_INPUT, 0, CG_TYPE_U16),     pt(CG_TABLE_HOLDING, 1, CG_TYPE_U16),
	    pt(CG_TABLE_DISCRETE, 0, CG_TYPE_BOOL), pt(CG_TABLE_COIL, 3, CG_TYPE_BOOL),
	    pt(CG_TABLE_HOLDING, 0, CG_TYPE_U16),   pt(CG_TABLE_DISCRETE, 5, CG_TYPE_BOOL)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(p, N(p), true, 8, &plan), 0);
	assert_int_equal(plan.n_requests, 4);
	assert_request(&plan, 0, CG_TABLE_COIL, 3, 1);
	assert_request(&plan, 1, CG_TABLE_DISCRETE, 0, 6);
	assert_request(&plan, 2, CG_TABLE_HOLDING, 0, 2);
	assert_request(&plan, 3, CG_TABLE_INPUT, 0, 1);
	assert_int_equal(plan.point_request[0], 3);
	assert_int_equal(plan.point_request[1], 2);
	assert_int_equal(plan.point_request[2], 1);
	assert_int_equal(plan.point_request[3], 0);
	assert_int_equal(plan.point_request[4], 2);
	assert_int_equal(plan.point_request[5], 1);
	cg_plan_free(&plan);
}

static void test_merge_off_gives_one_request_per_point(void **state)
{
	cg_point_t p[] = {pt(CG_TABLE_HOLDING, 1, CG_TYPE_U32),
	                  pt(CG_TABLE_HOLDING, 0, CG_TYPE_U16),
	                  pt(CG_TABLE_HOLDING, 3, CG_TYPE_U16)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(p, N(p), false, 100, &plan), 0);
	assert_int_equal(plan.n_requests, 3);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 0, 1);
	assert_request(&plan, 1, CG_TABLE_HOLDING, 1, 2);
	assert_request(&plan, 2, CG_TABLE_HOLDING, 3, 1);
	assert_int_equal(plan.point_request[0], 1);
	assert_int_equal(plan.point_request[1], 0);
	assert_int_equal(plan.point_request[2], 2);
	cg_plan_free(&plan);
}

static void test_overlapping_points_share_registers(void **state)
{
	/* A u32 at 10, its low word again as u16 at 11, and an f64 at 8
	 * that covers both: all one request 8..11. */
	cg_point_t p[] = {
	    pt(CG_TABLE_HOLDING, 10, CG_TYPE_U32), pt(CG_TABLE_HOLDING, 11, CG_TYPE_U16),
	    pt(CG_TABLE_HOLDING, 8, CG_TYPE_F64), pt(CG_TABLE_HOLDING, 10, CG_TYPE_I16)};
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(p, N(p), true, 0, &plan), 0);
	assert_int_equal(plan.n_requests, 1);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 8, 4);
	cg_plan_free(&plan);
}

static void test_value_past_the_last_address_is_refused(void **state)
{
	cg_point_t ok = pt(CG_TABLE_HOLDING, 65532, CG_TYPE_U64);
	cg_point_t bad = pt(CG_TABLE_HOLDING, 65533, CG_TYPE_U64);
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(&ok, 1, true, 0, &plan), 0);
	assert_request(&plan, 0, CG_TABLE_HOLDING, 65532, 4);
	cg_plan_free(&plan);
	assert_int_equal(cg_plan_build(&bad, 1, true, 0, &plan), CG_EINVAL);
	assert_int_equal(plan.n_requests, 0);
	assert_null(plan.requests);
	cg_plan_free(&plan);
}

static void test_empty_plan_and_free_null(void **state)
{
	cg_plan_t plan;

	(void)state;
	assert_int_equal(cg_plan_build(NULL, 0, true, 8, &plan), 0);
	assert_int_equal(plan.n_requests, 0);
	cg_plan_free(&plan);
	cg_plan_free(NULL);
}

static void test_rtu_bytes(void **state)
{
	cg_request_t ten = {.table = CG_TABLE_HOLDING, .address = 0, .count = 10};
	cg_request_t full = {.table = CG_TABLE_INPUT, .address = 0, .count = 125};
	cg_request_t bits = {.table = CG_TABLE_DISCRETE, .address = 0, .count = 9};
	cg_request_t byte = {.table = CG_TABLE_COIL, .address = 0, .count = 8};
	cg_request_t max = {.table = CG_TABLE_COIL, .address = 0, .count = 2000};
	size_t resp = 0;

	(void)state;
	/* FIELD-NOTES: a 10-register read is an 8-byte request, a 25-byte answer. */
	assert_int_equal(cg_request_rtu_bytes(&ten, &resp), 8);
	assert_int_equal(resp, 25);
	assert_int_equal(cg_request_rtu_bytes(&full, &resp), 8);
	assert_int_equal(resp, 255);
	assert_int_equal(cg_request_rtu_bytes(&bits, &resp), 8);
	assert_int_equal(resp, 7);
	assert_int_equal(cg_request_rtu_bytes(&byte, &resp), 8);
	assert_int_equal(resp, 6);
	assert_int_equal(cg_request_rtu_bytes(&max, &resp), 8);
	assert_int_equal(resp, 255);
	assert_int_equal(cg_request_rtu_bytes(&ten, NULL), 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contiguous_points_make_one_request),
	    cmocka_unit_test(test_small_gaps_merge_large_gaps_split),
	    cmocka_unit_test(test_gap_is_measured_from_the_end_of_a_value),
	    cmocka_unit_test(test_register_limit_is_respected),
	    cmocka_unit_test(test_wide_value_never_crosses_the_limit),
	    cmocka_unit_test(test_bit_limit_is_respected),
	    cmocka_unit_test(test_tables_are_never_merged),
	    cmocka_unit_test(test_merge_off_gives_one_request_per_point),
	    cmocka_unit_test(test_overlapping_points_share_registers),
	    cmocka_unit_test(test_value_past_the_last_address_is_refused),
	    cmocka_unit_test(test_empty_plan_and_free_null),
	    cmocka_unit_test(test_rtu_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
