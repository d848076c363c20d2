/* Tests of the serial drivers end to end over a real pseudo-terminal pair, the device played by
 * serial_device.c. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/reading.h"
#include "drivers/driver.h"
#include "serial_device.h"

#define assert_double_near(a, b, eps)                                                              \
	do {                                                                                       \
		double a_ = (a), b_ = (b);                                                         \
		if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                                       \
			fail_msg("%s is %.17g, expected %.17g", #a, a_, b_);                       \
	} while (0)

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- fixture: a pty pair, the device on the master, the driver on the slave ---- */

typedef struct fixture {
	device_t dev;
	int slave;
	cg_transport_t t;
	const cg_driver_t *drv;
	cg_driver_options_t *options; /* the sensor's keys, parsed; the state may point into them */
	void *state;
	bool closed_master;
} fixture_t;

/* A device of the driver called name on a new pty, and the driver opened
 * with the sensor object json. */
static fixture_t *fixture_new(const char *name, const char *json)
{
	fixture_t *f = calloc(1, sizeof(*f));
	const device_type_t *type = device_type_find(name);
	const cg_driver_t *drv = cg_driver_find(name);
	struct termios tio;
	int master;
	cg_diag_t diag = {0};
	cJSON *sensor;

	assert_non_null(f);
	assert_non_null(type);
	assert_non_null(drv);
	assert_int_equal(openpty(&master, &f->slave, NULL, NULL, NULL), 0);
	/* The slave as the bus's transport opens a UART: raw, reads wait 0.1 s at most. */
	assert_int_equal(tcgetattr(f->slave, &tio), 0);
	cfmakeraw(&tio);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 1;
	assert_int_equal(tcsetattr(f->slave, TCSANOW, &tio), 0);
	f->t = (cg_transport_t){.type = CG_BUS_SERIAL, .fd = f->slave, .timeout_ms = 300};
	/* The device starts as after power-up (a PMS5003 or SDS011 streams). */
	assert_int_equal(device_start(&f->dev, type, master), 0);

	f->drv = drv;
	sensor = cJSON_Parse(json);
	assert_non_null(sensor);
	assert_int_equal(cg_driver_options(drv, sensor, "/sensors/0", NULL, &diag, &f->options), 0);
	assert_int_equal(diag.n, 0);
	assert_int_equal(drv->open(f->options, NULL, &f->state), 0);
	assert_non_null(f->state);
	cJSON_Delete(sensor);
	return f;
}

/* The master side hangs up, as when a USB adapter is pulled. */
static void close_master(fixture_t *f)
{
	device_stop(&f->dev);
	close(f->dev.master);
	f->closed_master = true;
}

static void fixture_free(fixture_t *f)
{
	if (!f->closed_master)
		close_master(f);
	close(f->slave);
	f->drv->close(f->state);
	cg_driver_options_free(f->drv, f->options);
	pthread_mutex_destroy(&f->dev.lock);
	free(f);
}

/* Runs the device's setter under its lock. */
#define DEV_SET(f, field, v)                                                                       \
	do {                                                                                       \
		pthread_mutex_lock(&(f)->dev.lock);                                                \
		(f)->dev.field = (v);                                                              \
		pthread_mutex_unlock(&(f)->dev.lock);                                              \
	} while (0)

static int dev_get(fixture_t *f, const int *field)
{
	int v;

	pthread_mutex_lock(&f->dev.lock);
	v = *field;
	pthread_mutex_unlock(&f->dev.lock);
	return v;
}

/* Waits up to a second for the device to have seen n commands: a frame the
 * device sent on its own can answer a poll before it reads the last ones. */
static void wait_commands(fixture_t *f, int n)
{
	for (int i = 0; i < 100 && dev_get(f, &f->dev.n_log) < n; i++)
		sleep_ms(10);
}

static int poll_once(fixture_t *f, cg_reading_t *r)
{
	cg_reading_init(r);
	snprintf(r->sensor, sizeof(r->sensor), "s-1");
	return f->drv->poll(f->state, &f->t, r);
}

static void assert_number(const cg_reading_t *r, const char *name, double v, const char *unit)
{
	const cg_value_t *x = cg_reading_find(r, name);

	if (!x)
		fail_msg("value %s missing", name);
	assert_int_equal(x->type, CG_VALUE_NUMBER);
	assert_double_near(x->number, v, 1e-9);
	assert_string_equal(x->unit, unit);
}

static void assert_status(const cg_reading_t *r, const char *status)
{
	const cg_value_t *x = cg_reading_find(r, "status");

	if (!x)
		fail_msg("value status missing");
	assert_int_equal(x->type, CG_VALUE_STRING);
	assert_string_equal(x->string, status);
	assert_string_equal(x->unit, "");
}

/* ---- PMS5003 ---- */

#define PMS_JSON "{\"id\":\"pm-1\",\"bus\":\"uart-1\",\"driver\":\"pms5003\",\"warmup_s\":1}"

static void test_pms5003_values_and_commands(void **state)
{
	static const uint8_t passive[7] = {0x42, 0x4D, 0xE1, 0x00, 0x00, 0x01, 0x70};
	static const uint8_t wake[7] = {0x42, 0x4D, 0xE4, 0x00, 0x01, 0x01, 0x74};
	static const uint8_t read_cmd[7] = {0x42, 0x4D, 0xE2, 0x00, 0x00, 0x01, 0x71};
	fixture_t *f = fixture_new("pms5003", PMS_JSON);
	cg_reading_t r;

	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "air-quality");
	assert_string_equal(cg_quality_name(r.quality), "warming-up");
	assert_int_equal(r.n_values, 9);
	assert_number(&r, "pm1", 23, "ug/m3");
	assert_number(&r, "pm25", 25, "ug/m3");
	assert_number(&r, "pm10", 28, "ug/m3");
	assert_number(&r, "particles03", 1000, "count");
	assert_number(&r, "particles05", 900, "count");
	assert_number(&r, "particles10", 800, "count");
	assert_number(&r, "particles25", 700, "count");
	assert_number(&r, "particles50", 600, "count");
	assert_number(&r, "particles100", 500, "count");

	/* The exact bytes of the datasheet's commands, in order. */
	wait_commands(f, 3);
	pthread_mutex_lock(&f->dev.lock);
	assert_int_equal(f->dev.n_log, 3);
	assert_memory_equal(f->dev.log[0], passive, 7);
	assert_memory_equal(f->dev.log[1], wake, 7);
	assert_memory_equal(f->dev.log[2], read_cmd, 7);
	assert_int_equal(f->dev.bad_commands, 0);
	pthread_mutex_unlock(&f->dev.lock);

	/* Later polls only read; warming-up ends warmup_s after the wake. */
	DEV_SET(f, value, 40);
	assert_int_equal(poll_once(f, &r), 0);
	assert_number(&r, "pm25", 40, "ug/m3");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 1);
	assert_int_equal(dev_get(f, &f->dev.reads), 2);
	sleep_ms(1000);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(dev_get(f, &f->dev.wake_commands), 1);
	fixture_free(f);
}

static void test_pms5003_reboot_into_active_mode(void **state)
{
	fixture_t *f = fixture_new("pms5003", PMS_JSON);
	cg_reading_t r;

	assert_int_equal(poll_once(f, &r), 0);
	sleep_ms(1000);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");

	/* One frame it was not asked for (a late answer) is not a restart. */
	pthread_mutex_lock(&f->dev.lock);
	device_send_frame(&f->dev);
	pthread_mutex_unlock(&f->dev.lock);
	sleep_ms(50);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 1);

	/* Power cycled between two polls: it boots streaming, in active mode. */
	DEV_SET(f, active, true);
	sleep_ms(350);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "warming-up");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 2);
	assert_int_equal(dev_get(f, &f->dev.wake_commands), 2);
	pthread_mutex_lock(&f->dev.lock);
	assert_false(f->dev.active);
	pthread_mutex_unlock(&f->dev.lock);
	fixture_free(f);
}

static void test_pms5003_silent_then_back(void **state)
{
	fixture_t *f = fixture_new("pms5003", PMS_JSON);
	cg_reading_t r;
	int64_t t0;

	assert_int_equal(poll_once(f, &r), 0);
	sleep_ms(1000);

	/* Powered off: nothing comes back within the transport's timeout. */
	DEV_SET(f, silent, true);
	t0 = cg_mono_ms();
	assert_int_equal(poll_once(f, &r), CG_ETIMEDOUT);
	assert_true(cg_mono_ms() - t0 >= 290);
	assert_true(cg_mono_ms() - t0 < 2000);
	assert_int_equal(r.n_values, 0);

	/* Back, in active mode: the failure makes the next poll set passive
	 * mode and wake it again, and the warm-up starts over. */
	pthread_mutex_lock(&f->dev.lock);
	f->dev.silent = false;
	f->dev.active = true;
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "warming-up");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 2);
	fixture_free(f);
}

static void test_pms5003_noise_and_bad_checksums(void **state)
{
	fixture_t *f = fixture_new("pms5003", PMS_JSON);
	cg_reading_t r;

	DEV_SET(f, noise, true);
	assert_int_equal(poll_once(f, &r), 0);
	assert_number(&r, "pm25", 25, "ug/m3");
	sleep_ms(1000);
	DEV_SET(f, only_bad, true);
	assert_int_equal(poll_once(f, &r), CG_ECRC);
	DEV_SET(f, only_bad, false);

	/* The modes are set again, but a sensor that kept talking was not
	 * asleep: no new warm-up. */
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 2);
	fixture_free(f);
}

static void test_pms5003_device_gone(void **state)
{
	fixture_t *f = fixture_new("pms5003", PMS_JSON);
	cg_reading_t r;

	assert_int_equal(poll_once(f, &r), 0);
	close_master(f);
	assert_int_equal(poll_once(f, &r), CG_EIO);
	assert_int_equal(poll_once(f, &r), CG_EIO);
	fixture_free(f);
}

/* ---- SDS011 ---- */

#define SDS_JSON "{\"id\":\"pm-2\",\"bus\":\"uart-1\",\"driver\":\"sds011\",\"warmup_s\":0}"

static void test_sds011_values_and_commands(void **state)
{
	/* Data bytes 1-15 at offsets 2-16, the checksum (low byte of their sum) at 17. */
	static const uint8_t work[19] = {0xAA, 0xB4, 0x06, 0x01, 0x01, 0,    0,    0,    0,   0,
	                                 0,    0,    0,    0,    0,    0xFF, 0xFF, 0x06, 0xAB};
	static const uint8_t query_mode[19] = {
	    0xAA, 0xB4, 0x02, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0x02, 0xAB};
	static const uint8_t query[19] = {0xAA, 0xB4, 0x04, 0, 0, 0,    0,    0,    0,   0,
	                                  0,    0,    0,    0, 0, 0xFF, 0xFF, 0x02, 0xAB};
	fixture_t *f = fixture_new("sds011", SDS_JSON);
	cg_reading_t r;

	DEV_SET(f, value, 1236);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "air-quality");
	assert_string_equal(cg_quality_name(r.quality), "ok"); /* warmup_s 0 */
	assert_int_equal(r.n_values, 2);
	assert_number(&r, "pm25", 123.6, "ug/m3");
	assert_number(&r, "pm10", 247.2, "ug/m3");

	wait_commands(f, 3);
	pthread_mutex_lock(&f->dev.lock);
	assert_int_equal(f->dev.n_log, 3);
	assert_memory_equal(f->dev.log[0], work, 19);
	assert_memory_equal(f->dev.log[1], query_mode, 19);
	assert_memory_equal(f->dev.log[2], query, 19);
	assert_int_equal(f->dev.bad_commands, 0);
	assert_false(f->dev.active);
	pthread_mutex_unlock(&f->dev.lock);

	DEV_SET(f, value, 9);
	assert_int_equal(poll_once(f, &r), 0);
	assert_number(&r, "pm25", 0.9, "ug/m3");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 1);

	/* Above the sensor's 999.9 ug/m3. */
	DEV_SET(f, value, 10000);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "out-of-range");
	assert_number(&r, "pm25", 1000, "ug/m3");
	fixture_free(f);
}

static void test_sds011_warming_up_and_reboot(void **state)
{
	fixture_t *f =
	    fixture_new("sds011", "{\"id\":\"pm-2\",\"driver\":\"sds011\",\"warmup_s\":1}");
	cg_reading_t r;

	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "warming-up");
	sleep_ms(1000);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");

	DEV_SET(f, active, true);
	sleep_ms(350);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "warming-up");
	assert_int_equal(dev_get(f, &f->dev.mode_commands), 2);
	fixture_free(f);
}

static void test_sds011_noise_silence_and_gone(void **state)
{
	fixture_t *f = fixture_new("sds011", SDS_JSON);
	cg_reading_t r;

	DEV_SET(f, noise, true);
	assert_int_equal(poll_once(f, &r), 0);
	assert_number(&r, "pm25", 2.5, "ug/m3");
	DEV_SET(f, only_bad, true);
	assert_int_equal(poll_once(f, &r), CG_ECRC);
	pthread_mutex_lock(&f->dev.lock);
	f->dev.only_bad = false;
	f->dev.noise = false;
	f->dev.silent = true;
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(poll_once(f, &r), CG_ETIMEDOUT);
	DEV_SET(f, silent, false);
	assert_int_equal(poll_once(f, &r), 0);
	close_master(f);
	assert_int_equal(poll_once(f, &r), CG_EIO);
	fixture_free(f);
}

/* ---- A02YYUW ---- */

#define A02_JSON                                                                                   \
	"{\"id\":\"bay-1\",\"driver\":\"a02yyuw\",\"occupied_below_mm\":1500,\"hysteresis_mm\":"   \
	"100}"

/* Sets the distance the sensor sees, and polls. */
static int poll_at(fixture_t *f, uint16_t mm, cg_reading_t *r)
{
	DEV_SET(f, value, mm);
	return poll_once(f, r);
}

static void test_a02yyuw_status_with_hysteresis(void **state)
{
	fixture_t *f = fixture_new("a02yyuw", A02_JSON);
	cg_reading_t r;

	/* Noise bytes and a bad frame before every good frame. */
	DEV_SET(f, noise, true);
	assert_int_equal(poll_at(f, 2000, &r), 0);
	assert_string_equal(cg_kind_name(r.kind), "parking");
	assert_string_equal(cg_quality_name(r.quality), "ok");
	assert_int_equal(r.n_values, 2);
	assert_status(&r, "free");
	assert_number(&r, "distance", 2.0, "m");

	/* The band is 1450 to 1550 mm: inside it the status stays. */
	assert_int_equal(poll_at(f, 1500, &r), 0);
	assert_status(&r, "free");
	assert_int_equal(poll_at(f, 1450, &r), 0);
	assert_status(&r, "free");
	assert_int_equal(poll_at(f, 1449, &r), 0);
	assert_status(&r, "occupied");
	assert_number(&r, "distance", 1.449, "m");
	assert_int_equal(poll_at(f, 1550, &r), 0);
	assert_status(&r, "occupied");
	assert_int_equal(poll_at(f, 1551, &r), 0);
	assert_status(&r, "free");

	/* Out of the sensor's 30-4500 mm range: flagged, status still decided. */
	assert_int_equal(poll_at(f, 20, &r), 0);
	assert_status(&r, "occupied");
	assert_string_equal(cg_quality_name(r.quality), "out-of-range");
	fixture_free(f);
}

static void test_a02yyuw_first_reading_uses_plain_threshold(void **state)
{
	fixture_t *f = fixture_new("a02yyuw", A02_JSON);
	cg_reading_t r;

	assert_int_equal(poll_at(f, 1480, &r), 0);
	assert_status(&r, "occupied");
	/* A failure forgets the status: the bay may have changed meanwhile. */
	DEV_SET(f, silent, true);
	assert_int_equal(poll_once(f, &r), CG_ETIMEDOUT);
	DEV_SET(f, silent, false);
	assert_int_equal(poll_at(f, 1520, &r), 0);
	assert_status(&r, "free");
	assert_int_equal(poll_at(f, 1480, &r), 0);
	assert_status(&r, "free");
	fixture_free(f);
}

static void test_a02yyuw_defaults_bad_frames_and_gone(void **state)
{
	fixture_t *f = fixture_new("a02yyuw", "{\"id\":\"bay-2\"}");
	cg_reading_t r;

	/* Default threshold 1500 mm, hysteresis 100 mm. */
	assert_int_equal(poll_at(f, 1400, &r), 0);
	assert_status(&r, "occupied");
	assert_int_equal(poll_at(f, 1549, &r), 0);
	assert_status(&r, "occupied");
	assert_int_equal(poll_at(f, 1600, &r), 0);
	assert_status(&r, "free");

	DEV_SET(f, only_bad, true);
	assert_int_equal(poll_once(f, &r), CG_ECRC);
	DEV_SET(f, only_bad, false);
	assert_int_equal(poll_once(f, &r), 0);
	close_master(f);
	assert_int_equal(poll_once(f, &r), CG_EIO);
	fixture_free(f);
}

static void test_a02yyuw_needs_two_frames_that_agree(void **state)
{
	fixture_t *f = fixture_new("a02yyuw", A02_JSON);
	cg_reading_t r;

	/* Good frames, each one, but every other 51 mm off: no two successive
	 * ones agree, so nothing is published (a forged frame looks the same). */
	pthread_mutex_lock(&f->dev.lock);
	f->dev.value = 1000;
	f->dev.alternate = 1051;
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(poll_once(f, &r), CG_EFRAME);
	assert_int_equal(r.n_values, 0);
	assert_true(f->t.noise_bytes == 0 && f->t.bad_frames == 0);

	/* 50 mm apart is within what one surface gives: the later one counts. */
	DEV_SET(f, alternate, 1050);
	assert_int_equal(poll_once(f, &r), 0);
	assert_status(&r, "occupied");
	{
		const cg_value_t *d = cg_reading_find(&r, "distance");

		assert_non_null(d);
		assert_true(d->number == 1.0 || d->number == 1.05);
	}

	/* A car arriving: the floor's frames, then the car's, agree again. */
	pthread_mutex_lock(&f->dev.lock);
	f->dev.alternate = 0;
	f->dev.value = 2600;
	pthread_mutex_unlock(&f->dev.lock);
	assert_int_equal(poll_once(f, &r), 0);
	assert_status(&r, "free");
	assert_number(&r, "distance", 2.6, "m");
	fixture_free(f);
}

/* ---- every serial driver ---- */

static void test_poll_without_state_or_fd(void **state)
{
	cg_transport_t t = {.type = CG_BUS_SERIAL, .fd = -1, .timeout_ms = 300};
	cg_reading_t r;
	cJSON *empty = cJSON_CreateObject();

	for (size_t i = 0; cg_drivers[i]; i++) {
		const cg_driver_t *d = cg_drivers[i];
		void *s = NULL;
		cg_diag_t diag = {0};
		cg_driver_options_t *o = NULL;

		if (!(d->bus_types & CG_BUS_SERIAL))
			continue;
		cg_reading_init(&r);
		assert_int_equal(d->poll(NULL, &t, &r), CG_ESTATE);
		assert_int_equal(cg_driver_options(d, empty, "", NULL, &diag, &o), 0);
		assert_int_equal(d->open(o, NULL, &s), 0);
		assert_int_equal(d->poll(s, &t, &r), CG_EINVAL);
		assert_int_equal(d->poll(s, NULL, &r), CG_EINVAL);
		assert_int_equal(r.n_values, 0);
		d->close(s);
		cg_driver_options_free(d, o);
	}
	cJSON_Delete(empty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pms5003_values_and_commands),
	    cmocka_unit_test(test_pms5003_reboot_into_active_mode),
	    cmocka_unit_test(test_pms5003_silent_then_back),
	    cmocka_unit_test(test_pms5003_noise_and_bad_checksums),
	    cmocka_unit_test(test_pms5003_device_gone),
	    cmocka_unit_test(test_sds011_values_and_commands),
	    cmocka_unit_test(test_sds011_warming_up_and_reboot),
	    cmocka_unit_test(test_sds011_noise_silence_and_gone),
	    cmocka_unit_test(test_a02yyuw_status_with_hysteresis),
	    cmocka_unit_test(test_a02yyuw_first_reading_uses_plain_threshold),
	    cmocka_unit_test(test_a02yyuw_defaults_bad_frames_and_gone),
	    cmocka_unit_test(test_a02yyuw_needs_two_frames_that_agree),
	    cmocka_unit_test(test_poll_without_state_or_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
