/* Unit tests of parking lots: bay statuses counted, published on change and on time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/lot.h"

static char *bay_ids[] = { "bay-1", "bay-2", "bay-3" };

static cg_config_t config(cg_lot_config_t *lot)
{
	cg_config_t cfg = { 0 };

	lot->id = "lot-a";
	lot->bays = bay_ids;
	lot->n_bays = 3;
	lot->max_interval_s = 60;
	cfg.lots = lot;
	cfg.n_lots = 1;
	return cfg;
}

static cg_reading_t bay(const char *id, const char *status, int64_t ts)
{
	cg_reading_t r;

	cg_reading_init(&r);
	snprintf(r.sensor, sizeof(r.sensor), "%s", id);
	r.kind = CG_KIND_PARKING;
	r.ts_ms = ts;
	cg_reading_add_string(&r, "status", status);
	return r;
}

static double num(const cg_reading_t *r, const char *name)
{
	const cg_value_t *v = cg_reading_find(r, name);

	assert_non_null(v);
	return v->number;
}

static void test_counts_once_every_bay_reported(void **state)
{
	cg_lot_config_t lc;
	cg_config_t cfg = config(&lc);
	cg_lots_t *l;
	cg_reading_t out[4], r;

	assert_int_equal(cg_lots_new(&cfg, &l), 0);
	r = bay("bay-1", "occupied", 1000);
	assert_int_equal(cg_lots_update(l, &r, 0, out, 4), 0);
	r = bay("bay-2", "free", 1001);
	assert_int_equal(cg_lots_update(l, &r, 0, out, 4), 0);
	/* The third bay completes the picture: the first lot reading. */
	r = bay("bay-3", "free", 1002);
	assert_int_equal(cg_lots_update(l, &r, 0, out, 4), 1);
	assert_string_equal(out[0].sensor, "lot-a");
	assert_string_equal(cg_kind_name(out[0].kind), "parking");
	assert_int_equal(out[0].ts_ms, 1002);
	assert_true(num(&out[0], "availableSpotNumber") == 2);
	assert_true(num(&out[0], "occupiedSpotNumber") == 1);
	assert_true(num(&out[0], "totalSpotNumber") == 3);
	assert_true(num(&out[0], "occupancy") == 1.0 / 3);
	assert_string_equal(cg_reading_find(&out[0], "totalSpotNumber")->unit, "count");

	/* The same status again changes nothing. */
	r = bay("bay-3", "free", 2000);
	assert_int_equal(cg_lots_update(l, &r, 10, out, 4), 0);
	/* A bay whose sensor went silent counts as neither. */
	r = bay("bay-1", "unknown", 3000);
	assert_int_equal(cg_lots_update(l, &r, 20, out, 4), 1);
	assert_true(num(&out[0], "availableSpotNumber") == 2);
	assert_true(num(&out[0], "occupiedSpotNumber") == 0);
	assert_true(num(&out[0], "totalSpotNumber") == 3);
	/* Readings of other sensors and kinds are ignored. */
	r = bay("bay-9", "occupied", 3000);
	assert_int_equal(cg_lots_update(l, &r, 30, out, 4), 0);
	cg_reading_init(&r);
	r.kind = CG_KIND_AIR_QUALITY;
	strcpy(r.sensor, "bay-2");
	assert_int_equal(cg_lots_update(l, &r, 30, out, 4), 0);
	cg_lots_free(l);
	cg_lots_free(NULL);
}

static void test_published_at_least_every_max_interval(void **state)
{
	cg_lot_config_t lc;
	cg_config_t cfg = config(&lc);
	cg_lots_t *l;
	cg_reading_t out[4], r;

	assert_int_equal(cg_lots_new(&cfg, &l), 0);
	/* A bay that never reports does not silence the lot for ever. */
	r = bay("bay-1", "occupied", 1000);
	assert_int_equal(cg_lots_update(l, &r, 1, out, 4), 0);
	assert_int_equal(cg_lots_due(l, INT64_MAX / 2, out, 4), 1);
	assert_true(num(&out[0], "occupiedSpotNumber") == 1);
	assert_true(num(&out[0], "availableSpotNumber") == 0);
	/* Right after a reading nothing is due; 60 s later it is. */
	assert_int_equal(cg_lots_due(l, INT64_MAX / 2 + 59000, out, 4), 0);
	assert_int_equal(cg_lots_due(l, INT64_MAX / 2 + 60000, out, 4), 1);
	cg_lots_free(l);
}

/* The parking rules of a bus worker: a lot's bay is a bay before it ever
 * answers, another sensor once it reports a status; a lost bay is reported
 * unknown and counted as neither free nor occupied. */
static void test_bay_rules(void **state)
{
	cg_lot_config_t lc;
	cg_config_t cfg = config(&lc);
	cg_bay_t in_lot, other;
	cg_reading_t r, out[4];
	cg_lots_t *l;

	cg_bay_init(&in_lot, &cfg, "bay-2");
	cg_bay_init(&other, &cfg, "street-9");
	assert_false(cg_bay_lost(&other, "street-9", 5, &r));
	r = bay("street-9", "free", 1);
	r.kind = CG_KIND_AIR_QUALITY;
	cg_bay_seen(&other, &r);
	assert_false(cg_bay_lost(&other, "street-9", 5, &r));
	r = bay("street-9", "free", 1);
	cg_bay_seen(&other, &r);
	assert_true(cg_bay_lost(&other, "street-9", 5, &r));

	assert_true(cg_bay_lost(&in_lot, "bay-2", 7000, &r));
	assert_string_equal(r.sensor, "bay-2");
	assert_string_equal(cg_kind_name(r.kind), "parking");
	assert_string_equal(cg_quality_name(r.quality), "no-answer");
	assert_string_equal(cg_reading_find(&r, "status")->string, "unknown");
	assert_int_equal(r.ts_ms, 7000);
	assert_int_equal(cg_lots_new(&cfg, &l), 0);
	out[0] = bay("bay-1", "occupied", 1);
	assert_int_equal(cg_lots_update(l, &out[0], 0, out, 4), 0);
	out[0] = bay("bay-3", "free", 1);
	assert_int_equal(cg_lots_update(l, &out[0], 0, out, 4), 0);
	assert_int_equal(cg_lots_update(l, &r, 0, out, 4), 1);
	assert_true(num(&out[0], "occupiedSpotNumber") == 1);
	assert_true(num(&out[0], "availableSpotNumber") == 1);
	cg_lots_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_once_every_bay_reported),
		cmocka_unit_test(test_published_at_least_every_max_interval),
		cmocka_unit_test(test_bay_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
