/* Tests of the generic Modbus driver end to end against a real libmodbus TCP server. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/reading.h"
#include "drivers/driver.h"
#include "drivers/modbus/decode.h"

#define PROFILES CG_SOURCE_DIR "/drivers/profiles"
/* Examples of the format, not shipped (traffic-counter). */
#define EXAMPLE_PROFILES CG_SOURCE_DIR "/examples/profiles"

extern const cg_driver_t cg_modbus_driver;

#define assert_double_near(a, b, eps)                                                              \
	do {                                                                                       \
		double a_ = (a), b_ = (b);                                                         \
		if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                                       \
			fail_msg("%s is %.17g, expected %.17g", #a, a_, b_);                       \
	} while (0)

/* A Modbus TCP server on a loopback port, serving one client from a thread.
 * When answer is false it reads requests and never replies. */
typedef struct server {
	modbus_t *ctx;
	modbus_mapping_t *map;
	int listen_fd;
	int port;
	bool answer;
	pthread_t thread;
} server_t;

static void *server_main(void *arg)
{
	server_t *s = arg;
	uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
	int fd = s->listen_fd;

	if (modbus_tcp_accept(s->ctx, &fd) < 0)
		return NULL;
	for (;;) {
		int rc = modbus_receive(s->ctx, query);

		if (rc < 0)
			break; /* the client closed the connection */
		if (rc > 0 && s->answer)
			modbus_reply(s->ctx, query, rc, s->map);
	}
	return NULL;
}

/* Starts a server on a free port, trying ports from a random high one:
 * libmodbus binds the port it is given, so a busy one is skipped. */
static server_t *server_start(bool answer)
{
	server_t *s = calloc(1, sizeof(*s));
	int base = 20000 + (int)((unsigned)rand() % 30000);

	assert_non_null(s);
	s->answer = answer;
	s->map = modbus_mapping_new(100, 100, 100, 100);
	assert_non_null(s->map);
	for (int i = 0; i < 200; i++) {
		s->port = base + i;
		s->ctx = modbus_new_tcp("127.0.0.1", s->port);
		assert_non_null(s->ctx);
		s->listen_fd = modbus_tcp_listen(s->ctx, 1);
		if (s->listen_fd >= 0)
			break;
		modbus_free(s->ctx);
		s->ctx = NULL;
	}
	assert_non_null(s->ctx);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
	return s;
}

static void server_stop(server_t *s)
{
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	modbus_close(s->ctx);
	modbus_free(s->ctx);
	modbus_mapping_free(s->map);
	free(s);
}

/* A client transport to s, with a short response timeout. */
static cg_transport_t client_open(const server_t *s)
{
	cg_transport_t t = {.type = CG_BUS_MODBUS_TCP, .fd = -1, .timeout_ms = 200};

	t.mb = modbus_new_tcp("127.0.0.1", s->port);
	assert_non_null(t.mb);
	assert_int_equal(modbus_set_response_timeout(t.mb, 0, 200000), 0);
	assert_int_equal(modbus_connect(t.mb), 0);
	return t;
}

static void client_close(cg_transport_t *t)
{
	modbus_close(t->mb);
	modbus_free(t->mb);
	t->mb = NULL;
}

/* A temporary folder with a config file path and a profiles/ folder in it. */
typedef struct fixture {
	char root[64];
	char config[128];
	char profiles[128];
	const char *dirs[4];
	cg_driver_env_t env;
	cg_driver_options_t *options[16]; /* of the sensors opened: states point into them */
	size_t n_options;
} fixture_t;

static void write_profile(fixture_t *f, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->profiles, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static const char *const fixture_files[] = {"custom.json", "faraway.json", "broken.json",
                                            "wide.json", "status.json"};

static int fixture_setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	snprintf(f->root, sizeof(f->root), "/tmp/cg-modbus-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->config, sizeof(f->config), "%s/citygate.json", f->root);
	snprintf(f->profiles, sizeof(f->profiles), "%s/profiles", f->root);
	if (mkdir(f->profiles, 0700))
		return -1;
	f->dirs[0] = PROFILES;
	f->dirs[1] = f->profiles;
	f->dirs[2] = EXAMPLE_PROFILES;
	f->dirs[3] = NULL;
	f->env = (cg_driver_env_t){.config_path = f->config, .profile_dirs = f->dirs};
	/* Every table, a word-swapped float, and a plausible range. */
	write_profile(f, "custom.json",
	              "{\"name\":\"custom\",\"kind\":\"traffic\",\"points\":["
	              "{\"name\":\"averageVehicleSpeed\",\"table\":\"input\",\"address\":20,"
	              "\"type\":\"f32\",\"order\":\"CDAB\",\"unit\":\"km/h\"},"
	              "{\"name\":\"congested\",\"table\":\"coil\",\"address\":3},"
	              "{\"name\":\"intensity\",\"table\":\"holding\",\"address\":30,"
	              "\"unit\":\"count\",\"max\":100},"
	              "{\"name\":\"occupancy\",\"table\":\"input\",\"address\":22,\"type\":\"i32\","
	              "\"order\":\"DCBA\",\"scale\":0.001,\"offset\":0.5,\"unit\":\"/\"}]}");
	/* Register 500 is beyond the server's 100: illegal data address. */
	write_profile(f, "faraway.json",
	              "{\"name\":\"faraway\",\"kind\":\"parking\",\"points\":["
	              "{\"name\":\"status\",\"table\":\"holding\",\"address\":500}]}");
	/* Status rules of every kind: a raw value of a scaled point, a status
	 * register's bits (not published), names with a rule, a coil whose
	 * rule's point is published on request. */
	write_profile(
	    f, "status.json",
	    "{\"name\":\"status\",\"kind\":\"air-quality\",\"points\":["
	    "{\"name\":\"temperature\",\"table\":\"holding\",\"address\":0,"
	    "\"type\":\"i16\",\"scale\":0.1,\"unit\":\"Cel\",\"min\":-40,\"max\":60,"
	    "\"states\":[{\"value\":600,\"quality\":\"maintenance\"},"
	    "{\"min\":-32768,\"max\":-32000,\"quality\":\"sensor-fault\"}]},"
	    "{\"name\":\"status\",\"table\":\"holding\",\"address\":1,\"states\":["
	    "{\"mask\":1,\"state\":\"fault\",\"quality\":\"sensor-fault\"},"
	    "{\"mask\":2,\"state\":\"service\",\"quality\":\"maintenance\"},"
	    "{\"mask\":12,\"value\":8,\"state\":\"warming\",\"quality\":\"warming-up\"}]},"
	    "{\"name\":\"mode\",\"table\":\"holding\",\"address\":2,\"states\":["
	    "\"auto\",\"manual\",{\"value\":7,\"state\":\"test\",\"quality\":"
	    "\"maintenance\"}]},"
	    "{\"name\":\"door\",\"table\":\"coil\",\"address\":0,\"publish\":true,"
	    "\"states\":[{\"value\":1,\"quality\":\"maintenance\"}]}]}");
	write_profile(f, "broken.json",
	              "{\"name\":\"broken\",\"kind\":\"parking\",\"points\":["
	              "{\"name\":\"a\",\"table\":\"holding\",\"address\":0,\"type\":\"u24\"}]}");
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	fixture_t *f = *state;
	char path[256];

	for (size_t i = 0; i < sizeof(fixture_files) / sizeof(fixture_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->profiles, fixture_files[i]);
		unlink(path);
	}
	rmdir(f->profiles);
	rmdir(f->root);
	for (size_t i = 0; i < f->n_options; i++)
		cg_driver_options_free(&cg_modbus_driver, f->options[i]);
	free(f);
	return 0;
}

/* Opens the driver on a sensor object given as JSON text; its parsed
 * options stay in f until the teardown. */
static void *open_sensor(fixture_t *f, const char *json)
{
	cJSON *sensor = cJSON_Parse(json);
	cg_diag_t d = {0};
	cg_driver_options_t *options = NULL;
	void *state = NULL;

	assert_non_null(sensor);
	assert_int_equal(
	    cg_driver_options(&cg_modbus_driver, sensor, "/sensors/0", &f->env, &d, &options), 0);
	assert_int_equal(d.n, 0);
	assert_true(f->n_options < sizeof(f->options) / sizeof(f->options[0]));
	f->options[f->n_options++] = options;
	assert_int_equal(cg_modbus_driver.open(options, &f->env, &state), 0);
	assert_non_null(state);
	cJSON_Delete(sensor);
	return state;
}

static const cg_value_t *value(const cg_reading_t *r, const char *name)
{
	const cg_value_t *v = cg_reading_find(r, name);

	if (!v)
		fail_msg("no value %s in the reading", name);
	return v;
}

static void assert_number(const cg_reading_t *r, const char *name, double expect, const char *unit)
{
	const cg_value_t *v = value(r, name);

	assert_int_equal(v->type, CG_VALUE_NUMBER);
	assert_double_near(v->number, expect, 1e-9);
	assert_string_equal(v->unit, unit);
}

static void test_driver_is_registered(void **state)
{
	(void)state;
	assert_ptr_equal(cg_driver_find("modbus"), &cg_modbus_driver);
	assert_string_equal(cg_modbus_driver.name, "modbus");
	assert_int_equal(cg_modbus_driver.bus_types, CG_BUS_MODBUS_RTU | CG_BUS_MODBUS_TCP | CG_BUS_MODBUS_RTU_TCP);
	assert_string_equal(cg_modbus_driver.keys[0].name, "profile");
	assert_string_equal(cg_modbus_driver.keys[1].name, "unit_id");
	assert_string_equal(cg_modbus_driver.keys[2].name, "merge");
	assert_string_equal(cg_modbus_driver.keys[3].name, "merge_gap");
	assert_null(cg_modbus_driver.keys[4].name);
}

static void test_aqt530_over_tcp(void **state)
{
	fixture_t *f = *state;
	static const int16_t regs[13] = {21, 3, 250, 0, 0, 35, -4, 0, 123, 250, -52, 654, 10132};
	server_t *s = server_start(true);
	cg_transport_t t;
	cg_reading_t r;
	void *st;

	for (size_t i = 0; i < 13; i++)
		s->map->tab_registers[i] = (uint16_t)regs[i];
	t = client_open(s);
	st = open_sensor(f, "{\"id\":\"aq-001\",\"profile\":\"aqt530\",\"unit_id\":1}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "air-quality");
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(r.n_values, 11);
	/* The profile's order is kept. */
	assert_string_equal(r.values[0].name, "no2");
	assert_string_equal(r.values[10].name, "pressure");
	assert_number(&r, "no2", 21, "ppb");
	assert_number(&r, "so2", 3, "ppb");
	assert_number(&r, "co", 250, "ppb");
	assert_number(&r, "o3", 35, "ppb");
	assert_number(&r, "no", -4, "ppb");
	assert_number(&r, "pm25", 12.3, "ug/m3");
	assert_number(&r, "pm10", 25, "ug/m3");
	assert_number(&r, "temperature", -5.2, "Cel");
	assert_number(&r, "relativeHumidity", 65.4, "%RH");
	assert_number(&r, "pressure", 1013.2, "hPa");
	/* The whole map in one read: the holes at 3 and 7 are merged. */
	assert_int_equal(t.requests, 1);
	assert_true(t.last_io_ms > 0);
	cg_modbus_driver.close(st);

	/* merge false: one request per point, the same values. */
	st = open_sensor(f, "{\"profile\":\"aqt530\",\"merge\":false}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_int_equal(r.n_values, 11);
	assert_number(&r, "relativeHumidity", 65.4, "%RH");
	assert_int_equal(t.requests, 1 + 11);
	cg_modbus_driver.close(st);

	/* merge_gap 0: the holes split the map into 3 reads. */
	st = open_sensor(f, "{\"profile\":\"aqt530\",\"merge_gap\":0}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_int_equal(t.requests, 12 + 3);
	cg_modbus_driver.close(st);

	client_close(&t);
	server_stop(s);
}

static void test_ld120_bits_and_u32(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(true);
	cg_transport_t t;
	cg_reading_t r;
	void *st;

	s->map->tab_input_bits[1] = 1;     /* detect: a vehicle over the loop */
	s->map->tab_input_bits[4] = 1;     /* open loop */
	s->map->tab_registers[9] = 0x0001; /* 100000 = 0x000186A0, high word first */
	s->map->tab_registers[10] = 0x86A0;
	t = client_open(s);
	st = open_sensor(f, "{\"profile\":\"ld120\"}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "parking");
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(r.n_values, 5);
	assert_int_equal(value(&r, "loopFault")->type, CG_VALUE_BOOL);
	assert_false(value(&r, "loopFault")->boolean);
	assert_int_equal(value(&r, "status")->type, CG_VALUE_STRING);
	assert_string_equal(value(&r, "status")->string, "occupied");
	assert_true(value(&r, "openLoop")->boolean);
	assert_false(value(&r, "shortedLoop")->boolean);
	assert_string_equal(value(&r, "status")->unit, "");
	assert_number(&r, "vehicleCount", 100000, "count");
	assert_int_equal(t.requests, 2);
	cg_modbus_driver.close(st);
	client_close(&t);
	server_stop(s);
}

/* Polls once and returns the value of name in lane (searching the raw,
 * unsplit reading). */
static double lane_value(const cg_reading_t *r, const char *name, int lane)
{
	for (size_t i = 0; i < r->n_values; i++)
		if (r->values[i].lane == lane && strcmp(r->values[i].name, name) == 0)
			return r->values[i].number;
	fail_msg("no value %s in lane %d", name, lane);
	return 0;
}

static void test_traffic_counters_per_lane(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(true);
	cg_transport_t t;
	cg_reading_t r;
	void *st;

	s->map->tab_registers[0] = 100;   /* lane 1 count */
	s->map->tab_registers[1] = 65530; /* lane 2 count, about to wrap */
	s->map->tab_registers[2] = 250;   /* lane 1 occupancy, per mille */
	t = client_open(s);
	st = open_sensor(f, "{\"profile\":\"traffic-counter\",\"interval_s\":60}");

	/* The first poll only sets the baseline. */
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), CG_EAGAIN);

	s->map->tab_registers[0] = 112;
	s->map->tab_registers[1] = 4; /* wrapped: 65530 -> 65535 -> 0 -> 4 is 10 vehicles */
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "traffic");
	assert_true(r.interval_s == 60);
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_true(lane_value(&r, "intensity", 1) == 12);
	assert_true(lane_value(&r, "intensity", 2) == 10);
	assert_true(lane_value(&r, "occupancy", 1) == 0.25);

	/* A counter going back without wrapping is a device restart: the
	 * count since the restart, flagged, never a huge number. */
	s->map->tab_registers[0] = 3;
	s->map->tab_registers[1] = 9;
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "counter-reset");
	assert_true(lane_value(&r, "intensity", 1) == 3);
	assert_true(lane_value(&r, "intensity", 2) == 5);

	/* After a failed poll the next good one sets a new baseline. */
	s->answer = false;
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), CG_ETIMEDOUT);
	s->answer = true;
	modbus_flush(t.mb);
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), CG_EAGAIN);

	cg_modbus_driver.close(st);
	client_close(&t);
	server_stop(s);
}

static void test_every_table_relative_path_and_range(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(true);
	cg_transport_t t;
	cg_reading_t r;
	void *st;

	assert_int_equal(cg_encode_registers(123.456, CG_TYPE_F32, CG_ORDER_CDAB,
	                                     &s->map->tab_input_registers[20]),
	                 0);
	assert_int_equal(
	    cg_encode_registers(-250, CG_TYPE_I32, CG_ORDER_DCBA, &s->map->tab_input_registers[22]),
	    0);
	s->map->tab_bits[3] = 1;
	s->map->tab_registers[30] = 57;
	t = client_open(s);
	/* Relative to the config file's folder. */
	st = open_sensor(f, "{\"profile\":\"profiles/custom.json\",\"unit_id\":17}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "traffic");
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_double_near(value(&r, "averageVehicleSpeed")->number, 123.456, 1e-4);
	assert_string_equal(value(&r, "averageVehicleSpeed")->unit, "km/h");
	assert_true(value(&r, "congested")->boolean);
	assert_number(&r, "intensity", 57, "count");
	assert_number(&r, "occupancy", 0.25, "/");
	/* coil, holding, input (f32 and i32 merged). */
	assert_int_equal(t.requests, 3);

	/* Above max: the value is kept as it is, the quality says so. */
	s->map->tab_registers[30] = 500;
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "out-of-range");
	assert_number(&r, "intensity", 500, "count");

	/* A NaN cannot be carried in JSON: left out, quality invalid. */
	s->map->tab_registers[30] = 50;
	assert_int_equal(
	    cg_encode_registers(NAN, CG_TYPE_F32, CG_ORDER_CDAB, &s->map->tab_input_registers[20]),
	    0);
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "invalid");
	assert_null(cg_reading_find(&r, "averageVehicleSpeed"));
	assert_int_equal(r.n_values, 3);
	cg_modbus_driver.close(st);
	client_close(&t);
	server_stop(s);
}

/* Polls st once into a fresh reading and returns its quality's name. */
static const char *poll_quality(void *st, cg_transport_t *t, cg_reading_t *r)
{
	cg_reading_init(r);
	assert_int_equal(cg_modbus_driver.poll(st, t, r), 0);
	return cg_quality_name(r->quality);
}

/* Status rules match the raw value (before scale), each gives its quality,
 * the worst of several wins, the first state named is the point's value, and
 * a status register is read but not published. */
static void test_status_rules(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(true);
	uint16_t *h = s->map->tab_registers;
	cg_transport_t t = client_open(s);
	void *st = open_sensor(f, "{\"profile\":\"status\"}");
	cg_reading_t r;

	assert_string_equal(poll_quality(st, &t, &r), "ok");
	assert_int_equal(r.n_values, 3);
	assert_null(cg_reading_find(&r, "status"));
	assert_number(&r, "temperature", 0, "Cel");
	assert_string_equal(value(&r, "mode")->string, "auto");
	assert_int_equal(value(&r, "door")->type, CG_VALUE_BOOL);
	assert_false(value(&r, "door")->boolean);

	/* Each bit rule, then two at once: the worse one wins either way. */
	h[1] = 1;
	assert_string_equal(poll_quality(st, &t, &r), "sensor-fault");
	assert_null(cg_reading_find(&r, "status"));
	h[1] = 2;
	assert_string_equal(poll_quality(st, &t, &r), "maintenance");
	h[1] = 3;
	assert_string_equal(poll_quality(st, &t, &r), "sensor-fault");
	/* Masked equality: bits 2-3 equal to 2, not any of them. */
	h[1] = 8;
	assert_string_equal(poll_quality(st, &t, &r), "warming-up");
	h[1] = 12;
	assert_string_equal(poll_quality(st, &t, &r), "ok");
	h[1] = 4;
	assert_string_equal(poll_quality(st, &t, &r), "ok");

	/* Raw 600 is 60.0 Cel, within max: only the rule speaks. Raw 601 is
	 * over max and matches no rule. */
	h[0] = 600;
	assert_string_equal(poll_quality(st, &t, &r), "maintenance");
	assert_number(&r, "temperature", 60, "Cel");
	h[0] = 601;
	assert_string_equal(poll_quality(st, &t, &r), "out-of-range");
	/* warming-up is worse than out-of-range, whichever point comes first. */
	h[1] = 8;
	assert_string_equal(poll_quality(st, &t, &r), "warming-up");
	h[1] = 0;
	/* A range rule on a signed raw value; sensor-fault beats out-of-range. */
	h[0] = (uint16_t)-32100;
	assert_string_equal(poll_quality(st, &t, &r), "sensor-fault");
	assert_number(&r, "temperature", -3210, "Cel");
	h[0] = 0;

	/* Names first, then a rule's state; a value neither names is unknown. */
	h[2] = 1;
	assert_string_equal(poll_quality(st, &t, &r), "ok");
	assert_string_equal(value(&r, "mode")->string, "manual");
	h[2] = 7;
	assert_string_equal(poll_quality(st, &t, &r), "maintenance");
	assert_string_equal(value(&r, "mode")->string, "test");
	h[2] = 5;
	assert_string_equal(poll_quality(st, &t, &r), "out-of-range");
	assert_string_equal(value(&r, "mode")->string, "unknown");
	h[2] = 0;

	/* A bit with a rule, published on request as the bool it is. */
	s->map->tab_bits[0] = 1;
	assert_string_equal(poll_quality(st, &t, &r), "maintenance");
	assert_true(value(&r, "door")->boolean);

	cg_modbus_driver.close(st);
	client_close(&t);
	server_stop(s);
}

/* 64-bit registers come out exact: a counter past 2^53 counts every vehicle
 * (through a double, 2^53 + 1 read as 2^53 and the next poll counted 2),
 * an all-ones u64 is 18446744073709551615 (through a double it was 2^64,
 * which UBSan flags when converted back), and i64's minimum keeps its sign. */
static void test_u64_exact(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(true);
	uint16_t *h = s->map->tab_registers;
	const cg_value_t *v;
	cg_transport_t t;
	cg_reading_t r;
	void *st;

	write_profile(f, "wide.json",
	              "{\"name\":\"wide\",\"kind\":\"traffic\",\"points\":["
	              "{\"name\":\"intensity\",\"table\":\"holding\",\"address\":40,"
	              "\"type\":\"u64\",\"counter\":true,\"unit\":\"count\"},"
	              "{\"name\":\"serial\",\"table\":\"holding\",\"address\":50,\"type\":\"u64\"},"
	              "{\"name\":\"offset\",\"table\":\"holding\",\"address\":60,\"type\":\"i64\"}]}");
	/* 2^53 + 1, big-endian words. */
	h[40] = 0x0020, h[41] = 0, h[42] = 0, h[43] = 1;
	h[50] = h[51] = h[52] = h[53] = 0xffff;
	h[60] = 0x8000, h[61] = h[62] = h[63] = 0;
	t = client_open(s);
	st = open_sensor(f, "{\"profile\":\"profiles/wide.json\",\"interval_s\":60}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), CG_EAGAIN);

	h[43] = 2;
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	v = value(&r, "intensity");
	assert_true(v->exact);
	assert_int_equal(v->magnitude, 1);
	assert_string_equal(cg_quality_name(r.quality), "ok");
	v = value(&r, "serial");
	assert_true(v->exact && !v->negative);
	assert_true(v->magnitude == UINT64_MAX);
	v = value(&r, "offset");
	assert_true(v->exact && v->negative);
	assert_true(v->magnitude == (uint64_t)1 << 63);
	cg_modbus_driver.close(st);
	client_close(&t);
	server_stop(s);
}

static void test_exception_then_recovery(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(true);
	cg_transport_t t;
	cg_reading_t r;
	void *far, *near;

	s->map->tab_registers[0] = 42;
	t = client_open(s);
	far = open_sensor(f, "{\"profile\":\"faraway\"}");
	near = open_sensor(f, "{\"profile\":\"ld120\"}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(far, &t, &r), CG_EEXCEPTION);
	assert_int_equal(r.n_values, 0);
	assert_int_equal(t.requests, 1);
	/* The same connection still serves the next sensor. */
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(near, &t, &r), 0);
	assert_int_equal(r.n_values, 5);
	cg_modbus_driver.close(far);
	cg_modbus_driver.close(near);
	client_close(&t);
	server_stop(s);
}

static void test_silent_server_times_out(void **state)
{
	fixture_t *f = *state;
	server_t *s = server_start(false);
	cg_transport_t t;
	cg_reading_t r;
	void *st;

	t = client_open(s);
	st = open_sensor(f, "{\"profile\":\"aqt530\"}");
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), CG_ETIMEDOUT);
	assert_int_equal(r.n_values, 0);
	assert_int_equal(t.requests, 1);
	cg_modbus_driver.close(st);
	client_close(&t);
	server_stop(s);
}

static void test_null_state_and_close(void **state)
{
	cg_transport_t t = {.type = CG_BUS_MODBUS_TCP, .fd = -1};
	cg_reading_t r;

	(void)state;
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(NULL, &t, &r), CG_ESTATE);
	cg_modbus_driver.close(NULL);
}

/* Each bad sensor object is refused with exactly one line, and no options. */
/* The unit ids a bus can address: 1-247 on a serial line (and RTU over TCP),
 * 0-255 on Modbus TCP. Before, 0, 248 and 254 passed --check on an RTU bus
 * and the daemon retried them for ever. */
static void test_unit_id_by_bus_type(void **state)
{
	fixture_t *f = *state;
	const struct {
		cg_bus_type_t bus;
		long unit;
		const char *why; /* NULL: accepted */
	} cases[] = {
	    {CG_BUS_MODBUS_RTU, 1, NULL},
	    {CG_BUS_MODBUS_RTU, 247, NULL},
	    {CG_BUS_MODBUS_RTU, 254, "254 on a modbus-rtu bus: 248 to 255 are reserved"},
	    {CG_BUS_MODBUS_RTU, 0, "0 on a modbus-rtu bus: 0 is the broadcast address"},
	    {CG_BUS_MODBUS_RTU_TCP, 248, "248 on a modbus-rtu-tcp bus: 248 to 255 are reserved"},
	    {CG_BUS_MODBUS_TCP, 0, NULL},
	    {CG_BUS_MODBUS_TCP, 255, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[96], want[256];
		cJSON *sensor;
		cg_diag_t d = {0};
		cg_driver_options_t *o = NULL;
		cg_driver_env_t env = f->env;
		int rc;

		env.bus_type = cases[i].bus;
		snprintf(json, sizeof(json), "{\"profile\":\"aqt530\",\"unit_id\":%ld}",
		         cases[i].unit);
		sensor = cJSON_Parse(json);
		assert_non_null(sensor);
		rc = cg_driver_options(&cg_modbus_driver, sensor, "/sensors/0", &env, &d, &o);
		if (!cases[i].why) {
			assert_int_equal(rc, 0);
			assert_int_equal(d.n, 0);
			cg_driver_options_free(&cg_modbus_driver, o);
		} else {
			snprintf(want, sizeof(want), "%s: /sensors/0/unit_id: %s", f->config,
			         cases[i].why);
			assert_int_equal(rc, CG_EINVAL);
			assert_null(o);
			assert_int_equal(d.n, 1);
			if (strncmp(d.lines[0], want, strlen(want)) != 0)
				fail_msg("%s\nexpected it to start with\n%s", d.lines[0], want);
		}
		cg_diag_free(&d);
		cJSON_Delete(sensor);
	}
}

static void test_check_refuses_bad_config(void **state)
{
	fixture_t *f = *state;
	char line[512];
	const struct {
		const char *json;
		const char *line; /* after "CONFIG: " */
	} cases[] = {
	    {"{\"id\":\"x\"}", "/sensors/0/profile: required key missing"},
	    {"{\"profile\":3}", "/sensors/0/profile: must be a string"},
	    {"{\"profile\":\"\"}", "/sensors/0/profile: must not be empty"},
	    {"{\"profile\":\"aqt530\",\"unit_id\":256}",
	     "/sensors/0/unit_id: must be an integer from 0 to 255"},
	    {"{\"profile\":\"aqt530\",\"unit_id\":-1}",
	     "/sensors/0/unit_id: must be an integer from 0 to 255"},
	    {"{\"profile\":\"aqt530\",\"unit_id\":1.5}",
	     "/sensors/0/unit_id: must be an integer from 0 to 255"},
	    {"{\"profile\":\"aqt530\",\"unit_id\":\"1\"}",
	     "/sensors/0/unit_id: must be an integer from 0 to 255"},
	    {"{\"profile\":\"aqt530\",\"merge\":\"yes\"}",
	     "/sensors/0/merge: must be true or false"},
	    {"{\"profile\":\"aqt530\",\"merge_gap\":101}",
	     "/sensors/0/merge_gap: must be an integer from 0 to 100"},
	    {"{\"profile\":\"profiles/none.json\"}", NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *sensor = cJSON_Parse(cases[i].json);
		cg_diag_t d = {0};
		cg_driver_options_t *o = (cg_driver_options_t *)&d;
		int rc;

		assert_non_null(sensor);
		rc = cg_driver_options(&cg_modbus_driver, sensor, "/sensors/0", &f->env, &d, &o);
		assert_null(o);
		if (cases[i].line)
			snprintf(line, sizeof(line), "%s: %s", f->config, cases[i].line);
		else
			snprintf(line, sizeof(line),
			         "%s: /sensors/0/profile: profile \"profiles/none.json\": cannot "
			         "read %s/none.json: No such file or directory",
			         f->config, f->profiles);
		if (rc != CG_EINVAL || d.n != 1 || strcmp(d.lines[0], line) != 0) {
			for (size_t k = 0; k < d.n; k++)
				print_error("  got: %s\n", d.lines[k]);
			fail_msg("case %zu: rc %d, %zu lines, expected \"%s\"", i, rc, d.n, line);
		}
		cg_diag_free(&d);
		cJSON_Delete(sensor);
	}
}

static void test_check_reports_missing_profile_at_the_sensor(void **state)
{
	fixture_t *f = *state;
	cJSON *sensor = cJSON_Parse("{\"profile\":\"nope\",\"unit_id\":1000}");
	cg_diag_t d = {0};
	cg_driver_options_t *o = NULL;
	char line[512];

	/* A line already there, and the sensor's other problems, stay where
	 * they are. */
	cg_diag_add(&d, "other.json", "/x", "earlier problem");
	assert_int_equal(cg_driver_options(&cg_modbus_driver, sensor, "/sensors/4", &f->env, &d, &o),
	                 CG_EINVAL);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.lines[0], "other.json: /x: earlier problem");
	snprintf(line, sizeof(line), "%s: /sensors/4/unit_id: must be an integer from 0 to 255",
	         f->config);
	assert_string_equal(d.lines[1], line);
	snprintf(line, sizeof(line),
	         "%s: /sensors/4/profile: no profile named \"nope\" in %s, %s, %s", f->config,
	         PROFILES, f->profiles, EXAMPLE_PROFILES);
	assert_string_equal(d.lines[2], line);
	cg_diag_free(&d);
	cJSON_Delete(sensor);
}

static void test_check_reports_profile_problems_in_the_profile(void **state)
{
	fixture_t *f = *state;
	cJSON *sensor = cJSON_Parse("{\"profile\":\"broken\",\"merge_gap\":\"8\"}");
	cg_diag_t d = {0};
	char line[512];
	cg_driver_options_t *o = (cg_driver_options_t *)&d;

	/* Refused, with no options for open() to take. */
	assert_int_equal(cg_driver_options(&cg_modbus_driver, sensor, "/sensors/1", &f->env, &d, &o),
	                 CG_EINVAL);
	assert_null(o);
	assert_int_equal(d.n, 2);
	snprintf(line, sizeof(line), "%s: /sensors/1/merge_gap: must be an integer from 0 to 100",
	         f->config);
	assert_string_equal(d.lines[0], line);
	snprintf(line, sizeof(line),
	         "%s/broken.json: /points/0/type: must be one of \"bool\", \"u16\", \"i16\", "
	         "\"u32\", \"i32\", \"u64\", \"i64\", \"f32\", \"f64\"",
	         f->profiles);
	assert_string_equal(d.lines[1], line);
	cg_diag_free(&d);
	cJSON_Delete(sensor);
}

/* What the config's check parsed is what open() takes: the profile is read
 * once, so a profile file gone (or changed) after the check does not change
 * the sensor that starts. */
static void test_open_takes_what_check_parsed(void **state)
{
	fixture_t *f = *state;
	cJSON *sensor = cJSON_Parse("{\"profile\":\"once\",\"merge\":false,\"interval_s\":30}");
	char path[256];
	cg_diag_t d = {0};
	cg_driver_options_t *o = NULL;
	void *st = NULL;
	server_t *s = server_start(true);
	cg_transport_t t;
	cg_reading_t r;

	write_profile(f, "once.json",
	              "{\"name\":\"once\",\"kind\":\"traffic\",\"points\":["
	              "{\"name\":\"intensity\",\"table\":\"holding\",\"address\":4,"
	              "\"counter\":true},"
	              "{\"name\":\"occupancy\",\"table\":\"holding\",\"address\":5}]}");
	assert_non_null(sensor);
	assert_int_equal(cg_driver_options(&cg_modbus_driver, sensor, "/sensors/0", &f->env, &d, &o),
	                 0);
	cJSON_Delete(sensor);
	snprintf(path, sizeof(path), "%s/once.json", f->profiles);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(cg_modbus_driver.open(o, &f->env, &st), 0);
	s->map->tab_registers[4] = 100;
	s->map->tab_registers[5] = 7;
	t = client_open(s);
	cg_reading_init(&r);
	/* A counter's first poll is its baseline. */
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), CG_EAGAIN);
	s->map->tab_registers[4] = 112;
	cg_reading_init(&r);
	assert_int_equal(cg_modbus_driver.poll(st, &t, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "traffic");
	assert_number(&r, "intensity", 12, "");
	assert_number(&r, "occupancy", 7, "");
	/* The interval the counter's increase covers is the sensor's. */
	assert_true(r.interval_s == 30);
	/* merge false: one request per point, two polls. */
	assert_int_equal(t.requests, 4);
	cg_modbus_driver.close(st);
	/* A second state from the same options: the profile is still theirs. */
	assert_int_equal(cg_modbus_driver.open(o, &f->env, &st), 0);
	cg_modbus_driver.close(st);
	cg_driver_options_free(&cg_modbus_driver, o);
	client_close(&t);
	server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_driver_is_registered),
	    cmocka_unit_test(test_aqt530_over_tcp),
	    cmocka_unit_test(test_ld120_bits_and_u32),
	    cmocka_unit_test(test_traffic_counters_per_lane),
	    cmocka_unit_test(test_u64_exact),
	    cmocka_unit_test(test_status_rules),
	    cmocka_unit_test(test_unit_id_by_bus_type),
	    cmocka_unit_test(test_every_table_relative_path_and_range),
	    cmocka_unit_test(test_exception_then_recovery),
	    cmocka_unit_test(test_silent_server_times_out),
	    cmocka_unit_test(test_null_state_and_close),
	    cmocka_unit_test(test_check_refuses_bad_config),
	    cmocka_unit_test(test_check_reports_missing_profile_at_the_sensor),
	    cmocka_unit_test(test_check_reports_profile_problems_in_the_profile),
	    cmocka_unit_test(test_open_takes_what_check_parsed),
	};

	return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
