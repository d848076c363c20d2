/* Tests of Modbus device profiles: the shipped ones, every kind of error, and look-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/profile.h"

#define PROFILES CG_SOURCE_DIR "/drivers/profiles"
/* Examples of the format, not shipped (traffic-counter). */
#define EXAMPLE_PROFILES CG_SOURCE_DIR "/examples/profiles"

static int parse(const char *text, cg_profile_t **p, cg_diag_t *d)
{
	return cg_profile_parse(text, strlen(text), "p.json", p, d);
}

static const cg_point_t *find_point(const cg_profile_t *p, const char *name)
{
	for (size_t i = 0; i < p->n_points; i++)
		if (strcmp(p->points[i].name, name) == 0)
			return &p->points[i];
	fail_msg("no point %s in %s", name, p->name);
	return NULL;
}

static void test_name_helpers(void **state)
{
	(void)state;
	for (int i = CG_TABLE_COIL; i <= CG_TABLE_INPUT; i++)
		assert_int_equal(cg_table_from_name(cg_table_name((cg_table_t)i)), i);
	for (int i = CG_TYPE_BOOL; i <= CG_TYPE_F64; i++)
		assert_int_equal(cg_type_from_name(cg_type_name((cg_type_t)i)), i);
	for (int i = CG_ORDER_ABCD; i <= CG_ORDER_DCBA; i++)
		assert_int_equal(cg_order_from_name(cg_order_name((cg_order_t)i)), i);
	assert_string_equal(cg_table_name(CG_TABLE_DISCRETE), "discrete");
	assert_string_equal(cg_type_name(CG_TYPE_F32), "f32");
	assert_string_equal(cg_order_name(CG_ORDER_CDAB), "CDAB");
	assert_int_equal(cg_table_from_name("Holding"), -1);
	assert_int_equal(cg_type_from_name("float"), -1);
	assert_int_equal(cg_order_from_name("abcd"), -1);
	assert_int_equal(cg_order_from_name(NULL), -1);
	assert_string_equal(cg_type_name((cg_type_t)42), "?");
}

static void test_aqt530_parses(void **state)
{
	const char *const dirs[] = {PROFILES, NULL};
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;
	const cg_point_t *pt;

	(void)state;
	assert_int_equal(cg_profile_load("aqt530", NULL, dirs, &p, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(p->name, "aqt530");
	assert_string_equal(cg_kind_name(p->kind), "air-quality");
	assert_string_equal(p->file, PROFILES "/aqt530.json");
	assert_int_equal(p->n_points, 11);
	for (size_t i = 0; i < p->n_points; i++) {
		assert_int_equal(p->points[i].table, CG_TABLE_HOLDING);
		assert_int_equal(p->points[i].type, CG_TYPE_I16);
		assert_non_null(p->points[i].unit);
		assert_true(p->points[i].has_min && p->points[i].has_max);
	}
	pt = find_point(p, "no2");
	assert_int_equal(pt->address, 0);
	assert_string_equal(pt->unit, "ppb");
	assert_true(pt->scale == 1 && pt->offset == 0);
	pt = find_point(p, "o3");
	assert_int_equal(pt->address, 5);
	pt = find_point(p, "pm25");
	assert_int_equal(pt->address, 8);
	assert_true(pt->scale == 0.1);
	assert_string_equal(pt->unit, "ug/m3");
	pt = find_point(p, "temperature");
	assert_int_equal(pt->address, 10);
	assert_string_equal(pt->unit, "Cel");
	pt = find_point(p, "relativeHumidity");
	assert_int_equal(pt->address, 11);
	assert_string_equal(pt->unit, "%RH");
	pt = find_point(p, "pressure");
	assert_int_equal(pt->address, 12);
	assert_string_equal(pt->unit, "hPa");
	cg_profile_free(p);
}

static void test_ld120_parses(void **state)
{
	const char *const dirs[] = {PROFILES, NULL};
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;
	const cg_point_t *pt;

	(void)state;
	assert_int_equal(cg_profile_load("ld120", NULL, dirs, &p, &d), 0);
	assert_string_equal(cg_kind_name(p->kind), "parking");
	assert_int_equal(p->n_points, 5);
	pt = find_point(p, "loopFault");
	assert_int_equal(pt->table, CG_TABLE_DISCRETE);
	assert_int_equal(pt->address, 0);
	assert_int_equal(pt->type, CG_TYPE_BOOL);
	assert_null(pt->unit);
	assert_int_equal(find_point(p, "status")->address, 1);
	assert_int_equal(find_point(p, "status")->n_states, 2);
	assert_string_equal(find_point(p, "status")->states[0], "free");
	assert_string_equal(find_point(p, "status")->states[1], "occupied");
	assert_int_equal(find_point(p, "openLoop")->address, 4);
	assert_int_equal(find_point(p, "shortedLoop")->address, 5);
	pt = find_point(p, "vehicleCount");
	assert_int_equal(pt->table, CG_TABLE_HOLDING);
	assert_int_equal(pt->address, 9);
	assert_int_equal(pt->type, CG_TYPE_U32);
	assert_int_equal(pt->order, CG_ORDER_ABCD);
	assert_string_equal(pt->unit, "count");
	cg_profile_free(p);
}

/* The GMP252's map as its user guide gives it: the CO2 float low word first,
 * decoded here from the guide's own example (registers D47Ah, 43E8h read
 * 465.66 ppm), and its two status registers as unpublished status points. */
static void test_gmp252_parses(void **state)
{
	const char *const dirs[] = {PROFILES, NULL};
	const uint16_t example[] = {0xD47A, 0x43E8};
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;
	const cg_point_t *pt;
	double raw;

	(void)state;
	assert_int_equal(cg_profile_load("gmp252", NULL, dirs, &p, &d), 0);
	assert_string_equal(cg_kind_name(p->kind), "air-quality");
	pt = find_point(p, "co2");
	assert_int_equal(pt->table, CG_TABLE_HOLDING);
	assert_int_equal(pt->address, 0);
	assert_int_equal(pt->type, CG_TYPE_F32);
	assert_int_equal(cg_decode_registers(example, pt->type, pt->order, &raw), 0);
	assert_float_equal(raw, 465.66, 0.001);
	assert_string_equal(pt->unit, "ppm");
	pt = find_point(p, "deviceStatus");
	assert_int_equal(pt->address, 0x800);
	assert_true(pt->status && !pt->publish);
	assert_true(pt->rules[1].match == CG_MATCH_MASK && pt->rules[1].mask == 1 &&
	            pt->rules[1].quality == CG_QUALITY_SENSOR_FAULT);
	assert_false(pt->rules[3].has_quality); /* a warning keeps the reading as it is */
	pt = find_point(p, "co2Status");
	assert_int_equal(pt->address, 0x801);
	assert_true(pt->status && !pt->publish);
	assert_true(pt->rules[2].mask == 256 && pt->rules[2].quality == CG_QUALITY_WARMING_UP);
	cg_profile_free(p);
}

static void test_traffic_counter_parses(void **state)
{
	const char *const dirs[] = {EXAMPLE_PROFILES, NULL};
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;
	const cg_point_t *pt;

	(void)state;
	assert_int_equal(cg_profile_load("traffic-counter", NULL, dirs, &p, &d), 0);
	assert_string_equal(cg_kind_name(p->kind), "traffic");
	assert_int_equal(p->n_points, 6);
	/* Points are per lane: the second "intensity" is lane 2's counter. */
	pt = &p->points[1];
	assert_string_equal(pt->name, "intensity");
	assert_int_equal(pt->lane, 2);
	assert_true(pt->counter);
	assert_int_equal(pt->address, 1);
	assert_int_equal(pt->type, CG_TYPE_U16);
	assert_string_equal(pt->unit, "count");
	pt = &p->points[2];
	assert_string_equal(pt->name, "occupancy");
	assert_int_equal(pt->lane, 1);
	assert_false(pt->counter);
	assert_int_equal(pt->address, 2);
	assert_true(pt->scale == 0.001 && pt->max == 1);
	assert_string_equal(pt->unit, "/");
	pt = &p->points[5];
	assert_string_equal(pt->name, "averageVehicleSpeed");
	assert_int_equal(pt->lane, 2);
	assert_int_equal(pt->address, 5);
	assert_string_equal(pt->unit, "km/h");
	cg_profile_free(p);
}

static void test_defaults(void **state)
{
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	(void)state;
	assert_int_equal(parse("{\"name\":\"x\",\"kind\":\"traffic\",\"points\":["
	                       "{\"name\":\"a\",\"table\":\"input\",\"address\":7},"
	                       "{\"name\":\"b\",\"table\":\"coil\",\"address\":65535},"
	                       "{\"name\":\"c\",\"table\":\"holding\",\"address\":65532,"
	                       "\"type\":\"f64\",\"order\":\"DCBA\",\"scale\":-2.5,"
	                       "\"offset\":3,\"min\":-1,\"max\":-1,\"unit\":\"m\","
	                       "\"description\":\"\"}]}",
	                       &p, &d),
	                 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(p->file, "p.json");
	assert_int_equal(p->points[0].type, CG_TYPE_U16);
	assert_int_equal(p->points[0].order, CG_ORDER_ABCD);
	assert_true(p->points[0].scale == 1 && p->points[0].offset == 0);
	assert_null(p->points[0].unit);
	assert_false(p->points[0].has_min || p->points[0].has_max);
	assert_int_equal(p->points[1].type, CG_TYPE_BOOL);
	assert_int_equal(p->points[1].address, 65535);
	assert_int_equal(p->points[2].type, CG_TYPE_F64);
	assert_int_equal(p->points[2].order, CG_ORDER_DCBA);
	assert_true(p->points[2].scale == -2.5 && p->points[2].offset == 3);
	assert_true(p->points[2].has_min && p->points[2].min == -1);
	assert_true(p->points[2].has_max && p->points[2].max == -1);
	cg_profile_free(p);
	cg_profile_free(NULL);
}

/* A valid point, to pad documents so that each case has one problem. */
#define OK_POINT    "{\"name\":\"a\",\"table\":\"holding\",\"address\":0}"
#define DOC(points) "{\"name\":\"x\",\"kind\":\"parking\",\"points\":[" points "]}"

static const struct {
	const char *text;
	const char *line;
} error_cases[] = {
    {DOC(OK_POINT ",{\"name\":\"b\",\"table\":\"holding\",\"address\":1,\"type\":\"u128\"}"),
     "p.json: /points/1/type: must be one of \"bool\", \"u16\", \"i16\", \"u32\", \"i32\", "
     "\"u64\", \"i64\", \"f32\", \"f64\""},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":65536}"),
     "p.json: /points/0/address: must be an integer from 0 to 65535"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":-1}"),
     "p.json: /points/0/address: must be an integer from 0 to 65535"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":1.5}"),
     "p.json: /points/0/address: must be an integer from 0 to 65535"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":\"3\"}"),
     "p.json: /points/0/address: must be an integer from 0 to 65535"},
    {DOC("{\"name\":\"a\",\"table\":\"discrete\",\"address\":0,\"states\":[\"x\",\"y\",\"z\"]}"),
     "p.json: /points/0/states: a bool point has exactly 2 states (false, true)"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[\"x\",\"\"]}"),
     "p.json: /points/0/states/1: must be 1 to 15 characters"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"type\":\"f32\",\"states\":[\"x\","
         "\"y\"]}"),
     "p.json: /points/0/states: states need a bool or integer point, not f32"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[\"x\"]}"),
     "p.json: /points/0/states: names start at raw 0 and need at least 2; one state is a "
     "rule: {\"value\": 0, \"state\": \"...\"}"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[]}"),
     "p.json: /points/0/states: must have 1 to 64 items"},
    /* Status rules: what they match, what they give, and that they can match. */
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"mask\":65536,"
         "\"quality\":\"sensor-fault\"}]}"),
     "p.json: /points/0/states/0/mask: mask 0x10000 does not fit a u16 point (at most 0xffff)"},
    {DOC("{\"name\":\"a\",\"table\":\"coil\",\"address\":0,\"states\":[{\"mask\":2,"
         "\"state\":\"on\"}]}"),
     "p.json: /points/0/states/0/mask: mask 0x2 does not fit a bool point (at most 0x1)"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"type\":\"f32\",\"states\":[{"
         "\"mask\":1,\"state\":\"x\"}]}"),
     "p.json: /points/0/states/0/mask: a mask needs a bool or integer point, not f32"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"mask\":0,"
         "\"state\":\"x\"}]}"),
     "p.json: /points/0/states/0/mask: must be an integer from 1 to 9007199254740991"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"mask\":12,"
         "\"value\":3,\"state\":\"x\"}]}"),
     "p.json: /points/0/states/0/value: 3 has bits outside mask 0xc: the rule would never match"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"type\":\"i16\",\"states\":[{"
         "\"value\":40000,\"state\":\"x\"}]}"),
     "p.json: /points/0/states/0/value: 40000 is no raw value of a i16 point: the rule would "
     "never match"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"min\":5,"
         "\"max\":4,\"quality\":\"maintenance\"}]}"),
     "p.json: /points/0/states/0/min: min 5 is greater than max 4"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"min\":5,"
         "\"value\":6,\"quality\":\"maintenance\"}]}"),
     "p.json: /points/0/states/0/min: min/max is a rule of its own: not with value or mask"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"state\":"
         "\"x\"}]}"),
     "p.json: /points/0/states/0: a rule matches by value, mask (and value) or min/max: give "
     "one of them"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"value\":1}]}"),
     "p.json: /points/0/states/0: a rule gives a state, a quality or both"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"value\":1,"
         "\"quality\":\"broken\"}]}"),
     "p.json: /points/0/states/0/quality: must be one of \"ok\", \"out-of-range\", "
     "\"warming-up\", \"counter-reset\", \"invalid\", \"no-answer\", \"stale\", "
     "\"sensor-fault\", \"maintenance\""},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"value\":1,"
         "\"state\":\"x\",\"colour\":1}]}"),
     "p.json: /points/0/states/0/colour: unknown key"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[\"x\",\"y\",{"
         "\"value\":5,\"state\":\"z\"},\"w\"]}"),
     "p.json: /points/0/states/3: names come before rules: a name's raw value is its position"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[\"x\",7]}"),
     "p.json: /points/0/states/1: must be a name (a string) or a rule (an object)"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"publish\":\"no\"}"),
     "p.json: /points/0/publish: must be true or false"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"states\":[{\"mask\":1,"
         "\"quality\":\"sensor-fault\"}]}"),
     "p.json: /points: no point is published, so a reading would carry no value (a status "
     "point is published with \"publish\": true)"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"type\":\"i16\",\"counter\":true}"),
     "p.json: /points/0/counter: a counter must be of type u16, u32 or u64, not i16"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"counter\":1}"),
     "p.json: /points/0/counter: must be true or false"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"lane\":0}"),
     "p.json: /points/0/lane: must be an integer from 1 to 16"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"lane\":17}"),
     "p.json: /points/0/lane: must be an integer from 1 to 16"},
    {DOC("{\"name\":\"a\",\"lane\":1,\"table\":\"holding\",\"address\":0},"
         "{\"name\":\"a\",\"lane\":1,\"table\":\"holding\",\"address\":1}"),
     "p.json: /points/1/name: duplicate point name \"a\" (first at /points/0)"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0},"
         "{\"name\":\"a\",\"lane\":1,\"table\":\"holding\",\"address\":1}"),
     "p.json: /points/1/name: \"a\" is both a lane's point and one without a lane "
     "(/points/0), which every lane's reading carries: it would appear twice"},
    {DOC("{\"name\":\"laneId\",\"table\":\"holding\",\"address\":0}"),
     "p.json: /points/0/name: laneId is the lane readings' own; give \"lane\" instead"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"type\":\"u24\","
         "\"states\":[\"x\",\"y\",\"z\"]}"),
     "p.json: /points/0/type: must be one of \"bool\", \"u16\", \"i16\", \"u32\", \"i32\", "
     "\"u64\", \"i64\", \"f32\", \"f64\""},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"colour\":\"red\"}"),
     "p.json: /points/0/colour: unknown key"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"a/b~\":1}"),
     "p.json: /points/0/a~1b~0: unknown key"},
    {DOC("{\"name\":\"a\",\"name\":\"b\",\"table\":\"holding\",\"address\":0}"),
     "p.json: /points/0/name: duplicate key"},
    {"{\"kind\":\"parking\",\"points\":[" OK_POINT "]}", "p.json: /name: required key missing"},
    {"{\"name\":\"\",\"kind\":\"parking\",\"points\":[" OK_POINT "]}",
     "p.json: /name: must not be empty"},
    {"{\"name\":7,\"kind\":\"parking\",\"points\":[" OK_POINT "]}",
     "p.json: /name: must be a string"},
    {"{\"name\":\"x\",\"kind\":\"noise\",\"points\":[" OK_POINT "]}",
     "p.json: /kind: must be one of \"air-quality\", \"parking\", \"traffic\", \"weather\""},
    {"{\"name\":\"x\",\"points\":[" OK_POINT "]}", "p.json: /kind: required key missing"},
    {"{\"name\":\"x\",\"kind\":\"parking\",\"points\":[" OK_POINT "],\"vendor\":\"v\"}",
     "p.json: /vendor: unknown key"},
    {DOC(""), "p.json: /points: must have 1 to 32 items"},
    {"{\"name\":\"x\",\"kind\":\"parking\",\"points\":{}}", "p.json: /points: must be an array"},
    {"{\"name\":\"x\",\"kind\":\"parking\"}", "p.json: /points: required key missing"},
    {"[]", "p.json: : must be an object"},
    {DOC(OK_POINT ",3"), "p.json: /points/1: must be an object"},
    {DOC("{\"name\":\"a\",\"address\":0}"), "p.json: /points/0/table: required key missing"},
    {DOC("{\"name\":\"a\",\"table\":\"register\",\"address\":0}"),
     "p.json: /points/0/table: must be one of \"coil\", \"discrete\", \"holding\", \"input\""},
    {DOC("{\"table\":\"holding\",\"address\":0}"), "p.json: /points/0/name: required key missing"},
    {DOC("{\"name\":\"averageVehicleSpeedOfLaneNumber12\",\"table\":\"holding\",\"address\":0}"),
     "p.json: /points/0/name: must be 1 to 31 characters"},
    {DOC("{\"name\":\"a\",\"table\":\"coil\",\"address\":0,\"type\":\"u16\"}"),
     "p.json: /points/0/type: a coil point must be of type bool"},
    {DOC("{\"name\":\"a\",\"table\":\"discrete\",\"address\":0,\"type\":\"f32\"}"),
     "p.json: /points/0/type: a discrete point must be of type bool"},
    {DOC("{\"name\":\"a\",\"table\":\"input\",\"address\":0,\"type\":\"bool\"}"),
     "p.json: /points/0/type: bool is only for coil and discrete points, not input"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"order\":\"BACD\"}"),
     "p.json: /points/0/order: must be one of \"ABCD\", \"CDAB\", \"BADC\", \"DCBA\""},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"scale\":0}"),
     "p.json: /points/0/scale: must not be zero"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"scale\":\"0.1\"}"),
     "p.json: /points/0/scale: must be a number"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"offset\":null}"),
     "p.json: /points/0/offset: must be a number"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"min\":5,\"max\":4.5}"),
     "p.json: /points/0/min: min 5 is greater than max 4.5"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"unit\":\"microgram/m3\"}"),
     "p.json: /points/0/unit: must be 1 to 11 characters"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"unit\":1}"),
     "p.json: /points/0/unit: must be a string"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"description\":[]}"),
     "p.json: /points/0/description: must be a string"},
    {DOC(OK_POINT ",{\"name\":\"a\",\"table\":\"input\",\"address\":1}"),
     "p.json: /points/1/name: duplicate point name \"a\" (first at /points/0)"},
    {DOC("{\"name\":\"a\",\"table\":\"holding\",\"address\":65535,\"type\":\"u32\"}"),
     "p.json: /points/0/address: u32 at 65535 needs registers 65535 to 65536, past 65535"},
    {DOC("{\"name\":\"a\",\"table\":\"input\",\"address\":65533,\"type\":\"i64\"}"),
     "p.json: /points/0/address: i64 at 65533 needs registers 65533 to 65536, past 65535"},
    /* Malformed JSON: line and column of the first byte cJSON refused. */
    {"{\n  \"name\": \"x\",\n  \"kind\" \"parking\"\n}",
     "p.json: line 3 column 10: malformed JSON"},
    {"", "p.json: : the file is empty"},
    {"{\"name\":\"x\",\"kind\":\"parking\",\"points\":[" OK_POINT "]}\n  x",
     "p.json: line 2 column 3: malformed JSON"},
    {"{\"name\": \"\xc3\xa9t\xc3\xa9\", ]", "p.json: line 1 column 17: malformed JSON"},
};

/* The test fixture's status rules: each kind of match, in order, with its
 * state, quality and description; names, rules and publish together. */
static void test_status_rules_parse(void **state)
{
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;
	const cg_point_t *pt;
	const cg_rule_t *r;

	(void)state;
	assert_int_equal(cg_profile_load(CG_SOURCE_DIR "/tests/fixtures/profiles/co2-status.json",
	                                 NULL, NULL, &p, &d),
	                 0);
	pt = find_point(p, "meterStatus");
	assert_int_equal(pt->n_states, 0);
	assert_int_equal(pt->n_rules, 6);
	assert_true(pt->status && pt->named && !pt->publish);
	r = &pt->rules[0];
	assert_true(r->match == CG_MATCH_VALUE && r->value == 0 && !r->has_quality);
	assert_string_equal(r->state, "normal");
	r = &pt->rules[1];
	assert_true(r->match == CG_MATCH_MASK && r->mask == 1 && !r->has_value);
	assert_true(r->has_quality && r->quality == CG_QUALITY_SENSOR_FAULT);
	assert_string_equal(r->description, "Bit 0: fatal error");
	r = &pt->rules[4];
	assert_true(r->match == CG_MATCH_MASK && r->mask == 48 && r->has_value && r->value == 32);
	assert_int_equal(r->quality, CG_QUALITY_STALE);
	/* A measurement with a rule has a unit: still published, read as a number. */
	pt = find_point(p, "co2");
	assert_true(!pt->status && !pt->named && pt->publish);
	r = &pt->rules[0];
	assert_true(r->match == CG_MATCH_RANGE && r->has_min && !r->has_max && r->min == 32768);
	assert_null(r->state);
	cg_profile_free(p);

	/* Names then rules; publish as given, both ways. */
	assert_int_equal(
	    parse(DOC("{\"name\":\"s\",\"table\":\"holding\",\"address\":0,\"states\":[\"off\","
	              "\"on\",{\"value\":9,\"state\":\"service\",\"quality\":\"maintenance\"}]},"
	              "{\"name\":\"t\",\"table\":\"holding\",\"address\":1,\"publish\":false},"
	              "{\"name\":\"u\",\"table\":\"holding\",\"address\":2,\"publish\":true,"
	              "\"states\":[{\"mask\":1,\"quality\":\"sensor-fault\"}]}"),
	          &p, &d),
	    0);
	assert_int_equal(p->points[0].n_states, 2);
	assert_int_equal(p->points[0].n_rules, 1);
	assert_true(p->points[0].named && !p->points[0].status && p->points[0].publish);
	assert_false(p->points[1].publish);
	assert_true(p->points[2].status && p->points[2].publish && !p->points[2].named);
	cg_profile_free(p);
	cg_diag_free(&d);
}

/* Each single problem gives exactly one line, with the exact pointer. */
static void test_each_error_gives_one_exact_line(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		cg_diag_t d = {0};
		cg_profile_t *p = (cg_profile_t *)&d; /* must come back NULL */
		int rc = parse(error_cases[i].text, &p, &d);

		if (rc != CG_EINVAL || p != NULL || d.n != 1 ||
		    strcmp(d.lines[0], error_cases[i].line) != 0) {
			for (size_t k = 0; k < d.n; k++)
				print_error("  got: %s\n", d.lines[k]);
			fail_msg("case %zu: rc %d, %zu lines, expected \"%s\"", i, rc, d.n,
			         error_cases[i].line);
		}
		cg_diag_free(&d);
	}
}

/* Problems in different places are all reported, one line each. */
static void test_several_errors_are_all_reported(void **state)
{
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	(void)state;
	assert_int_equal(
	    parse("{\"kind\":\"x\",\"points\":["
	          "{\"name\":\"a\",\"table\":\"coil\",\"address\":1e6},"
	          "{\"name\":\"a\",\"table\":\"coil\",\"address\":2,\"type\":\"i16\"}]}",
	          &p, &d),
	    CG_EINVAL);
	assert_null(p);
	assert_int_equal(d.n, 5);
	/* The keys of an object in the order of its table: name, kind, points. */
	assert_string_equal(d.lines[0], "p.json: /name: required key missing");
	assert_string_equal(d.lines[1],
	                    "p.json: /kind: must be one of \"air-quality\", \"parking\", "
	                    "\"traffic\", \"weather\"");
	assert_string_equal(d.lines[2],
	                    "p.json: /points/0/address: must be an integer from 0 to 65535");
	assert_string_equal(d.lines[3],
	                    "p.json: /points/1/type: a coil point must be of type bool");
	assert_string_equal(
	    d.lines[4], "p.json: /points/1/name: duplicate point name \"a\" (first at /points/0)");
	cg_diag_free(&d);
}

static void test_too_many_points(void **state)
{
	char text[8192];
	size_t o;
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	(void)state;
	o = (size_t)snprintf(text, sizeof(text),
	                     "{\"name\":\"x\",\"kind\":\"traffic\",\"points\":[");
	for (int i = 0; i < 33; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
		                      "%s{\"name\":\"p%d\",\"table\":\"input\",\"address\":%d}",
		                      i ? "," : "", i, i);
	snprintf(text + o, sizeof(text) - o, "]}");
	assert_int_equal(parse(text, &p, &d), CG_EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "p.json: /points: must have 1 to 32 items");
	cg_diag_free(&d);
}

/* 31 points on lane 1 and one without a lane: lane 1's reading would carry
 * 33 values with its laneId. Refused, where the lane split used to leave the
 * 33rd out without a word. */
static void test_lane_reading_too_large(void **state)
{
	char text[8192];
	size_t o;
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	(void)state;
	o = (size_t)snprintf(text, sizeof(text),
	                     "{\"name\":\"x\",\"kind\":\"traffic\",\"points\":["
	                     "{\"name\":\"congested\",\"table\":\"coil\",\"address\":0}");
	for (int i = 0; i < 31; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
		                      ",{\"name\":\"p%d\",\"lane\":1,\"table\":\"input\","
		                      "\"address\":%d}",
		                      i, i);
	snprintf(text + o, sizeof(text) - o, "]}");
	assert_int_equal(parse(text, &p, &d), CG_EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "p.json: /points: lane 1's reading would carry 33 values "
	                                "(laneId, 31 of the lane, 1 without a lane), more than 32");
	cg_diag_free(&d);
}

/* A folder tree for look-ups: ROOT/a, ROOT/b, ROOT/etc/profiles. */
typedef struct tree {
	char root[64];
	char a[96], b[96], etc[96], etc_profiles[128], config[128];
} tree_t;

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

#define PROFILE_NAMED(n) "{\"name\":\"" n "\",\"kind\":\"traffic\",\"points\":[" OK_POINT "]}"

static int tree_setup(void **state)
{
	tree_t *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->root, sizeof(t->root), "/tmp/cg-profile-XXXXXX");
	if (!mkdtemp(t->root))
		return -1;
	snprintf(t->a, sizeof(t->a), "%s/a", t->root);
	snprintf(t->b, sizeof(t->b), "%s/b", t->root);
	snprintf(t->etc, sizeof(t->etc), "%s/etc", t->root);
	snprintf(t->etc_profiles, sizeof(t->etc_profiles), "%s/profiles", t->etc);
	snprintf(t->config, sizeof(t->config), "%s/citygate.json", t->etc);
	if (mkdir(t->a, 0700) || mkdir(t->b, 0700) || mkdir(t->etc, 0700) ||
	    mkdir(t->etc_profiles, 0700))
		return -1;
	write_file(t->a, "both.json", PROFILE_NAMED("both-in-a"));
	write_file(t->b, "both.json", PROFILE_NAMED("both-in-b"));
	write_file(t->b, "only-b.json", PROFILE_NAMED("only-b"));
	write_file(t->b, "broken.json", DOC("{\"name\":\"a\",\"table\":\"holding\"}"));
	write_file(t->etc, "local.json", PROFILE_NAMED("local"));
	write_file(t->etc_profiles, "sub.json", PROFILE_NAMED("sub"));
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	tree_t *t = *state;

	remove_file(t->a, "both.json");
	remove_file(t->b, "both.json");
	remove_file(t->b, "only-b.json");
	remove_file(t->b, "broken.json");
	remove_file(t->etc, "local.json");
	remove_file(t->etc_profiles, "sub.json");
	rmdir(t->etc_profiles);
	rmdir(t->etc);
	rmdir(t->a);
	rmdir(t->b);
	rmdir(t->root);
	free(t);
	return 0;
}

static void test_lookup_by_name_in_order(void **state)
{
	tree_t *t = *state;
	const char *const ab[] = {t->a, t->b, NULL};
	const char *const ba[] = {t->b, t->a, NULL};
	char path[256];
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	assert_int_equal(cg_profile_load("both", t->config, ab, &p, &d), 0);
	assert_string_equal(p->name, "both-in-a");
	snprintf(path, sizeof(path), "%s/both.json", t->a);
	assert_string_equal(p->file, path);
	cg_profile_free(p);

	assert_int_equal(cg_profile_load("both", t->config, ba, &p, &d), 0);
	assert_string_equal(p->name, "both-in-b");
	cg_profile_free(p);

	assert_int_equal(cg_profile_load("only-b", t->config, ab, &p, &d), 0);
	assert_string_equal(p->name, "only-b");
	cg_profile_free(p);
	assert_int_equal(d.n, 0);
}

static void test_lookup_by_name_not_found(void **state)
{
	tree_t *t = *state;
	const char *const ab[] = {t->a, t->b, NULL};
	const char *const none[] = {NULL};
	char line[512];
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	assert_int_equal(cg_profile_load("nope", t->config, ab, &p, &d), CG_ENOENT);
	assert_null(p);
	assert_int_equal(d.n, 1);
	snprintf(line, sizeof(line), "%s: : no profile named \"nope\" in %s, %s", t->config, t->a,
	         t->b);
	assert_string_equal(d.lines[0], line);
	cg_diag_free(&d);

	/* A name is never looked up next to the config file. */
	assert_int_equal(cg_profile_load("local", t->config, none, &p, &d), CG_ENOENT);
	assert_int_equal(d.n, 1);
	snprintf(line, sizeof(line), "%s: : no profile named \"local\" in (no profile folders)",
	         t->config);
	assert_string_equal(d.lines[0], line);
	cg_diag_free(&d);
}

static void test_lookup_by_relative_and_absolute_path(void **state)
{
	tree_t *t = *state;
	const char *const ab[] = {t->a, t->b, NULL};
	char path[256];
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	/* Relative paths are resolved against the config file's folder. */
	assert_int_equal(cg_profile_load("profiles/sub.json", t->config, ab, &p, &d), 0);
	assert_string_equal(p->name, "sub");
	snprintf(path, sizeof(path), "%s/profiles/sub.json", t->etc);
	assert_string_equal(p->file, path);
	cg_profile_free(p);

	/* A bare file name ending in .json is a path too, not a name. */
	assert_int_equal(cg_profile_load("local.json", t->config, ab, &p, &d), 0);
	assert_string_equal(p->name, "local");
	cg_profile_free(p);
	assert_int_equal(cg_profile_load("both.json", t->config, ab, &p, &d), CG_ENOENT);
	cg_diag_free(&d);

	snprintf(path, sizeof(path), "%s/only-b.json", t->b);
	assert_int_equal(cg_profile_load(path, t->config, NULL, &p, &d), 0);
	assert_string_equal(p->name, "only-b");
	cg_profile_free(p);

	/* ./ and ../ work from the config's folder too. */
	assert_int_equal(cg_profile_load("../b/only-b.json", t->config, NULL, &p, &d), 0);
	assert_string_equal(p->name, "only-b");
	cg_profile_free(p);
	assert_int_equal(d.n, 0);
}

/* Writes text into b/only-b.json, loads "only-b" and checks that the profile
 * read is the one named name. */
static cg_profile_t *edit_and_load(const tree_t *t, const char *text, const char *name,
                                   cg_diag_t *d)
{
	const char *const ab[] = {t->a, t->b, NULL};
	cg_profile_t *p = NULL;

	write_file(t->b, "only-b.json", text);
	assert_int_equal(cg_profile_load("only-b", t->config, ab, &p, d), 0);
	assert_string_equal(p->name, name);
	return p;
}

/* Sensors of one model hold one copy of its profile, until the file's text
 * changes; each holder frees it, in any order (ASan tells a double free). */
static void test_one_copy_per_unchanged_file(void **state)
{
	tree_t *t = *state;
	const char *const ab[] = {t->a, t->b, NULL};
	cg_diag_t d = {0};
	cg_profile_t *first = NULL, *again = NULL, *by_path = NULL, *changed, *other = NULL,
	             *same_len;
	char path[256];

	assert_int_equal(cg_profile_load("only-b", t->config, ab, &first, &d), 0);
	assert_int_equal(cg_profile_load("only-b", t->config, ab, &again, &d), 0);
	assert_ptr_equal(again, first);
	snprintf(path, sizeof(path), "%s/only-b.json", t->b);
	assert_int_equal(cg_profile_load(path, t->config, NULL, &by_path, &d), 0);
	assert_ptr_equal(by_path, first);
	/* Another file is another profile. */
	assert_int_equal(cg_profile_load("both", t->config, ab, &other, &d), 0);
	assert_ptr_not_equal(other, first);
	assert_string_equal(other->name, "both-in-a");

	/* An edited file (a reload after a fix) is parsed again; those who
	 * hold the old text keep it. */
	changed = edit_and_load(t, PROFILE_NAMED("only-b-v2"), "only-b-v2", &d);
	assert_ptr_not_equal(changed, first);
	assert_string_equal(first->name, "only-b");

	/* An edit that keeps the length is told by the text's hash. */
	same_len = edit_and_load(t, PROFILE_NAMED("only-c"), "only-c", &d);
	assert_ptr_not_equal(same_len, first);
	cg_profile_free(same_len);

	cg_profile_free(again);
	cg_profile_free(first);
	assert_string_equal(by_path->name, "only-b");
	cg_profile_free(by_path);
	/* The last holder of the old text is gone: loading the old text again
	 * parses it anew, into a profile of its own. */
	first = edit_and_load(t, PROFILE_NAMED("only-b"), "only-b", &d);
	assert_ptr_not_equal(first, changed);
	cg_profile_free(first);
	cg_profile_free(changed);
	cg_profile_free(other);
	assert_int_equal(d.n, 0);
}

static void test_missing_path_names_the_file(void **state)
{
	tree_t *t = *state;
	char line[512];
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	assert_int_equal(cg_profile_load("profiles/gone.json", t->config, NULL, &p, &d), CG_ENOENT);
	assert_null(p);
	assert_int_equal(d.n, 1);
	snprintf(line, sizeof(line),
	         "%s: : profile \"profiles/gone.json\": cannot read %s/profiles/gone.json: No such "
	         "file or directory",
	         t->config, t->etc);
	assert_string_equal(d.lines[0], line);
	cg_diag_free(&d);
}

/* A file too large to be a register map is refused before it is parsed,
 * worded as any other file that cannot be read. */
static void test_oversized_profile_cannot_be_read(void **state)
{
	tree_t *t = *state;
	char path[256], line[512];
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/huge.json", t->etc);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(PROFILE_NAMED("huge"), f);
	for (int i = 0; i < 1024 * 1024; i++)
		fputc(' ', f);
	fclose(f);
	assert_int_equal(cg_profile_load("huge.json", t->config, NULL, &p, &d), CG_ENOENT);
	unlink(path);
	assert_null(p);
	assert_int_equal(d.n, 1);
	snprintf(line, sizeof(line), "%s: : profile \"huge.json\": cannot read %s: File too large",
	         t->config, path);
	assert_string_equal(d.lines[0], line);
	cg_diag_free(&d);
}

static void test_found_profile_errors_carry_its_file(void **state)
{
	tree_t *t = *state;
	const char *const ab[] = {t->a, t->b, NULL};
	char line[512];
	cg_diag_t d = {0};
	cg_profile_t *p = NULL;

	assert_int_equal(cg_profile_load("broken", t->config, ab, &p, &d), CG_EINVAL);
	assert_null(p);
	assert_int_equal(d.n, 1);
	snprintf(line, sizeof(line), "%s/broken.json: /points/0/address: required key missing",
	         t->b);
	assert_string_equal(d.lines[0], line);
	cg_diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_helpers),
	    cmocka_unit_test(test_aqt530_parses),
	    cmocka_unit_test(test_ld120_parses),
	    cmocka_unit_test(test_traffic_counter_parses),
	    cmocka_unit_test(test_status_rules_parse),
	    cmocka_unit_test(test_gmp252_parses),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_each_error_gives_one_exact_line),
	    cmocka_unit_test(test_several_errors_are_all_reported),
	    cmocka_unit_test(test_too_many_points),
	    cmocka_unit_test(test_lane_reading_too_large),
	};
	const struct CMUnitTest lookup_tests[] = {
	    cmocka_unit_test(test_lookup_by_name_in_order),
	    cmocka_unit_test(test_lookup_by_name_not_found),
	    cmocka_unit_test(test_lookup_by_relative_and_absolute_path),
	    cmocka_unit_test(test_one_copy_per_unchanged_file),
	    cmocka_unit_test(test_missing_path_names_the_file),
	    cmocka_unit_test(test_oversized_profile_cannot_be_read),
	    cmocka_unit_test(test_found_profile_errors_carry_its_file),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	return failed + cmocka_run_group_tests(lookup_tests, tree_setup, tree_teardown);
}
