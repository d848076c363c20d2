/* Unit tests of readings: adding values, their limits, and splitting by lane. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/reading.h"

/* One name per kind and quality, as the payload schemas spell them; none
 * outside the enums. */
static void test_kind_and_quality_names(void **state)
{
	static const char *const qualities[] = {
	    "ok",        "out-of-range", "warming-up",   "counter-reset", "invalid",
	    "no-answer", "stale",        "sensor-fault", "maintenance"};

	(void)state;
	assert_string_equal(cg_kind_name(CG_KIND_AIR_QUALITY), "air-quality");
	assert_string_equal(cg_kind_name(CG_KIND_PARKING), "parking");
	assert_string_equal(cg_kind_name(CG_KIND_TRAFFIC), "traffic");
	assert_string_equal(cg_kind_name(CG_KIND_WEATHER), "weather");
	assert_null(cg_kind_name(CG_N_KINDS));
	assert_null(cg_kind_name((cg_kind_t)-1));
	assert_null(cg_kind_names[CG_N_KINDS]);
	assert_int_equal(sizeof(qualities) / sizeof(qualities[0]), CG_N_QUALITIES);
	for (int q = 0; q < CG_N_QUALITIES; q++)
		assert_string_equal(cg_quality_name((cg_quality_t)q), qualities[q]);
	assert_null(cg_quality_name(CG_N_QUALITIES));
	assert_null(cg_quality_names[CG_N_QUALITIES]);
}

/* The worst quality wins, in the documented order, whichever comes first;
 * a value outside the enum is never hidden by a known one. */
static void test_quality_worse_order(void **state)
{
	static const cg_quality_t worst_first[] = {
	    CG_QUALITY_SENSOR_FAULT,  CG_QUALITY_MAINTENANCE,  CG_QUALITY_NO_ANSWER,
	    CG_QUALITY_INVALID,       CG_QUALITY_WARMING_UP,   CG_QUALITY_STALE,
	    CG_QUALITY_COUNTER_RESET, CG_QUALITY_OUT_OF_RANGE, CG_QUALITY_OK};
	size_t n = sizeof(worst_first) / sizeof(worst_first[0]);
	cg_reading_t r;

	(void)state;
	assert_int_equal(n, CG_N_QUALITIES);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < n; j++) {
			cg_quality_t want = worst_first[i < j ? i : j];

			assert_int_equal(cg_quality_worse(worst_first[i], worst_first[j]), want);
			cg_reading_init(&r);
			cg_reading_worsen(&r, worst_first[i]);
			cg_reading_worsen(&r, worst_first[j]);
			assert_int_equal(r.quality, want);
		}
	}
	assert_int_equal(cg_quality_worse(CG_QUALITY_SENSOR_FAULT, CG_N_QUALITIES), CG_N_QUALITIES);
	assert_int_equal(cg_quality_worse(CG_N_QUALITIES, CG_QUALITY_OK), CG_N_QUALITIES);
}

static void test_add_and_find(void **state)
{
	cg_reading_t r;

	cg_reading_init(&r);
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(cg_reading_add_number(&r, "pm25", 12.5, "ug/m3"), 0);
	assert_int_equal(cg_reading_add_bool(&r, "fault", true), 0);
	assert_int_equal(cg_reading_add_string(&r, "status", "occupied"), 0);
	assert_int_equal(r.n_values, 3);
	assert_true(cg_reading_find(&r, "pm25")->number == 12.5);
	assert_string_equal(cg_reading_find(&r, "pm25")->unit, "ug/m3");
	assert_int_equal(cg_reading_find(&r, "fault")->type, CG_VALUE_BOOL);
	assert_string_equal(cg_reading_find(&r, "status")->string, "occupied");
	assert_null(cg_reading_find(&r, "pm10"));
}

static void test_limits(void **state)
{
	cg_reading_t r;
	char name[16];

	cg_reading_init(&r);
	assert_int_equal(cg_reading_add_number(&r, "pm25", 1, NULL), 0);
	assert_int_equal(cg_reading_add_number(&r, "pm25", 2, NULL), CG_EINVAL);
	assert_int_equal(cg_reading_add_number(&r, "", 2, NULL), CG_EINVAL);
	assert_int_equal(cg_reading_add_number(&r, "a-name-that-is-far-too-long-to-fit", 2, NULL),
	                 CG_ERANGE);
	assert_int_equal(cg_reading_add_number(&r, "x", 2, "a-unit-too-long"), CG_ERANGE);
	assert_int_equal(cg_reading_add_string(&r, "s", "a string too long"), CG_ERANGE);
	for (int i = 1; i < CG_READING_MAX_VALUES; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		assert_int_equal(cg_reading_add_number(&r, name, i, NULL), 0);
	}
	assert_int_equal(cg_reading_add_number(&r, "one-more", 1, NULL), CG_ERANGE);
	assert_int_equal(r.n_values, CG_READING_MAX_VALUES);
}

static void test_split_lanes(void **state)
{
	cg_reading_t r, out[4];
	size_t n;

	cg_reading_init(&r);
	strcpy(r.sensor, "lanes-1");
	r.kind = CG_KIND_TRAFFIC;
	r.ts_ms = 1000;
	r.interval_s = 60;
	cg_reading_set_lane(&r, 1);
	assert_int_equal(cg_reading_add_number(&r, "intensity", 12, "count"), 0);
	assert_int_equal(cg_reading_add_number(&r, "occupancy", 0.25, "/"), 0);
	cg_reading_set_lane(&r, 2);
	/* The same name in another lane is allowed. */
	assert_int_equal(cg_reading_add_number(&r, "intensity", 7, "count"), 0);
	assert_int_equal(cg_reading_add_number(&r, "intensity", 8, "count"), CG_EINVAL);
	cg_reading_set_lane(&r, 0);
	assert_int_equal(cg_reading_add_bool(&r, "congested", false), 0);

	n = cg_reading_split_lanes(&r, out, 4);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(out[i].sensor, "lanes-1");
		assert_int_equal(out[i].ts_ms, 1000);
		assert_true(out[i].interval_s == 60);
		assert_string_equal(out[i].values[0].name, "laneId");
		assert_true(out[i].values[0].number == (double)(i + 1));
		assert_int_equal(out[i].values[out[i].n_values - 1].type, CG_VALUE_BOOL);
		for (size_t j = 0; j < out[i].n_values; j++)
			assert_int_equal(out[i].values[j].lane, 0);
	}
	assert_int_equal(out[0].n_values, 4);
	assert_true(cg_reading_find(&out[0], "intensity")->number == 12);
	assert_true(cg_reading_find(&out[0], "occupancy")->number == 0.25);
	assert_int_equal(out[1].n_values, 3);
	assert_true(cg_reading_find(&out[1], "intensity")->number == 7);
	assert_null(cg_reading_find(&out[1], "occupancy"));

	/* A reading without lanes is passed through. */
	cg_reading_init(&r);
	cg_reading_add_number(&r, "pm25", 3, "ug/m3");
	assert_int_equal(cg_reading_split_lanes(&r, out, 4), 1);
	assert_int_equal(out[0].n_values, 1);
	assert_null(cg_reading_find(&out[0], "laneId"));
}

static void test_differs(void **state)
{
	cg_reading_t a, b;

	cg_reading_init(&a);
	cg_reading_add_number(&a, "pm25", 10, "ug/m3");
	cg_reading_add_string(&a, "status", "free");
	b = a;
	assert_false(cg_reading_differs(&a, &b, 0));
	b.values[0].number = 10.5;
	assert_false(cg_reading_differs(&a, &b, 0.5));
	assert_true(cg_reading_differs(&a, &b, 0.4));
	b = a;
	strcpy(b.values[1].string, "occupied");
	assert_true(cg_reading_differs(&a, &b, 100));
	b = a;
	b.quality = CG_QUALITY_OUT_OF_RANGE;
	assert_true(cg_reading_differs(&a, &b, 100));
	b = a;
	b.n_values = 1;
	assert_true(cg_reading_differs(&a, &b, 100));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kind_and_quality_names),
	    cmocka_unit_test(test_quality_worse_order),
	    cmocka_unit_test(test_add_and_find),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_split_lanes),
	    cmocka_unit_test(test_differs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
