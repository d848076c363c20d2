/* Tests of the pms5003, sds011 and a02yyuw drivers end to end over a real pseudo-terminal pair. */
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

extern const cg_driver_t cg_pms5003_driver;
extern const cg_driver_t cg_sds011_driver;
extern const cg_driver_t cg_a02yyuw_driver;

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

/* ---- the device, played on the master side of the pty by a thread ---- */

typedef enum device_type {
	DEV_PMS5003,
	DEV_SDS011,
	DEV_A02YYUW,
} device_type_t;

#define LOG_MAX 64

typedef struct device {
	device_type_t type;
	int master;
	pthread_t thread;
	pthread_mutex_t lock;
	/* Set by the test, under lock. */
	bool stop;
	bool silent;    /* answers and streams nothing (powered off) */
	bool active;    /* PMS5003/SDS011: sends frames on its own, as after power-up */
	bool noise;     /* noise bytes and a bad-checksum frame before every good frame */
	bool only_bad;  /* every frame it sends has a bad checksum */
	uint16_t value; /* PMS5003 PM2.5 (ug/m3), SDS011 PM2.5 (0.1 ug/m3), A02YYUW mm */
	int period_ms;  /* between frames it sends on its own */
	/* Seen by the device, under lock. */
	int mode_commands;        /* passive (PMS5003) or query-mode (SDS011) */
	int wake_commands;        /* wake (PMS5003) or work (SDS011) */
	int reads;                /* read or query commands answered */
	int bad_commands;         /* commands with a wrong checksum or layout */
	uint8_t log[LOG_MAX][19]; /* the commands received, in order */
	int n_log;
} device_t;

/* Frames built here from the datasheet layouts, independently of the drivers. */

static void put16be(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t pms_data_frame(uint8_t *out, uint16_t pm25)
{
	unsigned sum = 0;

	memset(out, 0, 32);
	out[0] = 0x42;
	out[1] = 0x4D;
	put16be(out + 2, 28);
	/* CF=1 words deliberately differ from the atmospheric ones. */
	put16be(out + 4, pm25 + 100u - 2u);
	put16be(out + 6, pm25 + 100u);
	put16be(out + 8, pm25 + 100u + 3u);
	put16be(out + 10, pm25 - 2u);
	put16be(out + 12, pm25);
	put16be(out + 14, pm25 + 3u);
	for (unsigned i = 0; i < 6; i++)
		put16be(out + 16 + 2 * i, 1000u - 100u * i);
	for (int i = 0; i < 30; i++)
		sum += out[i];
	put16be(out + 30, sum);
	return 32;
}

static size_t sds_data_frame(uint8_t *out, uint16_t pm25_raw)
{
	uint16_t pm10_raw = (uint16_t)(pm25_raw * 2);
	unsigned sum = 0;

	out[0] = 0xAA;
	out[1] = 0xC0;
	out[2] = (uint8_t)pm25_raw;
	out[3] = (uint8_t)(pm25_raw >> 8);
	out[4] = (uint8_t)pm10_raw;
	out[5] = (uint8_t)(pm10_raw >> 8);
	out[6] = 0xA1;
	out[7] = 0x60;
	for (int i = 2; i <= 7; i++)
		sum += out[i];
	out[8] = (uint8_t)sum;
	out[9] = 0xAB;
	return 10;
}

static size_t a02_frame(uint8_t *out, uint16_t mm)
{
	out[0] = 0xFF;
	out[1] = (uint8_t)(mm >> 8);
	out[2] = (uint8_t)mm;
	out[3] = (uint8_t)(0xFF + out[1] + out[2]);
	return 4;
}

static void dev_write(device_t *d, const uint8_t *b, size_t n)
{
	if (write(d->master, b, n) != (ssize_t)n)
		fprintf(stderr, "device: short write\n");
}

/* Sends one data frame the way the test asked: bad only, or with noise and
 * a corrupt copy before it. Called under the lock. */
static void dev_send_frame(device_t *d)
{
	static const uint8_t noise[] = {0x00, 0x13, 0x7F, 0x42, 0xAA};
	uint8_t f[32];
	size_t n;

	switch (d->type) {
	case DEV_PMS5003: n = pms_data_frame(f, d->value); break;
	case DEV_SDS011: n = sds_data_frame(f, d->value); break;
	default: n = a02_frame(f, d->value); break;
	}
	if (d->noise || d->only_bad) {
		f[n - 2] ^= 0x5A; /* the checksum (SDS011: its only byte; tail stays) */
		if (d->type == DEV_A02YYUW)
			f[n - 1] ^= 0x01;
		dev_write(d, noise, sizeof(noise));
		dev_write(d, f, n);
		dev_write(d, noise, 3);
		if (d->only_bad)
			return;
		f[n - 2] ^= 0x5A;
		if (d->type == DEV_A02YYUW)
			f[n - 1] ^= 0x01;
	}
	dev_write(d, f, n);
}

/* Handles one complete PMS5003 command. */
static void pms_command(device_t *d, const uint8_t *c)
{
	static const uint8_t ack[8] = {0x42, 0x4D, 0x00, 0x04, 0xE1, 0x00, 0x01, 0x74};
	unsigned sum = 0;

	for (int i = 0; i < 5; i++)
		sum += c[i];
	if ((c[5] << 8 | c[6]) != (int)sum) {
		d->bad_commands++;
		return;
	}
	if (c[2] == 0xE1 && c[4] == 0) {
		d->mode_commands++;
		d->active = false;
		dev_write(d, ack, sizeof(ack)); /* answered like a PMS7003 does */
	} else if (c[2] == 0xE4 && c[4] == 1) {
		d->wake_commands++;
	} else if (c[2] == 0xE2 && !d->active) {
		d->reads++;
		dev_send_frame(d);
	}
}

/* Handles one complete SDS011 command. */
static void sds_command(device_t *d, const uint8_t *c)
{
	uint8_t reply[10] = {0xAA, 0xC5, c[2], c[3], c[4], 0x00, 0xA1, 0x60, 0x00, 0xAB};
	unsigned sum = 0;

	for (int i = 2; i <= 16; i++)
		sum += c[i];
	if ((sum & 0xFF) != c[17] || c[18] != 0xAB || c[15] != 0xFF || c[16] != 0xFF) {
		d->bad_commands++;
		return;
	}
	for (int i = 2; i <= 7; i++)
		reply[8] = (uint8_t)(reply[8] + reply[i]);
	if (c[2] == 0x02 && c[3] == 1 && c[4] == 1) {
		d->mode_commands++;
		d->active = false;
		dev_write(d, reply, sizeof(reply));
	} else if (c[2] == 0x06 && c[3] == 1 && c[4] == 1) {
		d->wake_commands++;
		dev_write(d, reply, sizeof(reply));
	} else if (c[2] == 0x04) {
		d->reads++;
		dev_send_frame(d);
	}
}

/* Takes every complete command out of in[0, *n); skips bytes that start none. */
static void dev_commands(device_t *d, uint8_t *in, size_t *n)
{
	size_t len = d->type == DEV_PMS5003 ? 7 : 19;
	uint8_t b0 = d->type == DEV_PMS5003 ? 0x42 : 0xAA;
	uint8_t b1 = d->type == DEV_PMS5003 ? 0x4D : 0xB4;
	size_t i = 0;

	while (i < *n) {
		if (in[i] != b0 || (i + 1 < *n && in[i + 1] != b1)) {
			i++;
			continue;
		}
		if (*n - i < len)
			break;
		if (d->n_log < LOG_MAX)
			memcpy(d->log[d->n_log++], in + i, len);
		if (!d->silent) {
			if (d->type == DEV_PMS5003)
				pms_command(d, in + i);
			else
				sds_command(d, in + i);
		}
		i += len;
	}
	memmove(in, in + i, *n - i);
	*n -= i;
}

static void *device_main(void *arg)
{
	device_t *d = arg;
	uint8_t in[512];
	size_t n_in = 0;
	int64_t next_stream = cg_mono_ms();

	for (;;) {
		struct pollfd p = {.fd = d->master, .events = POLLIN};
		bool streams;

		pthread_mutex_lock(&d->lock);
		if (d->stop) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		pthread_mutex_unlock(&d->lock);
		if (poll(&p, 1, 5) > 0 && (p.revents & POLLIN)) {
			ssize_t k = read(d->master, in + n_in, sizeof(in) - n_in);

			if (k > 0) {
				n_in += (size_t)k;
				pthread_mutex_lock(&d->lock);
				if (d->type == DEV_A02YYUW)
					n_in = 0; /* its RX pin only selects a mode */
				else
					dev_commands(d, in, &n_in);
				pthread_mutex_unlock(&d->lock);
			}
		}
		pthread_mutex_lock(&d->lock);
		streams = !d->silent && (d->type == DEV_A02YYUW || d->active);
		if (streams && cg_mono_ms() >= next_stream) {
			dev_send_frame(d);
			next_stream = cg_mono_ms() + d->period_ms;
		}
		pthread_mutex_unlock(&d->lock);
	}
	return NULL;
}

/* ---- fixture: a pty pair, the device on the master, the driver on the slave ---- */

typedef struct fixture {
	device_t dev;
	int slave;
	cg_transport_t t;
	const cg_driver_t *drv;
	void *state;
	bool closed_master;
} fixture_t;

static fixture_t *fixture_new(device_type_t type, const cg_driver_t *drv, const char *json)
{
	fixture_t *f = calloc(1, sizeof(*f));
	struct termios tio;
	cJSON *sensor;

	assert_non_null(f);
	assert_int_equal(openpty(&f->dev.master, &f->slave, NULL, NULL, NULL), 0);
	/* The slave as the bus's transport opens a UART: raw, reads wait 0.1 s at most. */
	assert_int_equal(tcgetattr(f->slave, &tio), 0);
	cfmakeraw(&tio);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 1;
	assert_int_equal(tcsetattr(f->slave, TCSANOW, &tio), 0);
	f->t = (cg_transport_t){.type = CG_BUS_SERIAL, .fd = f->slave, .timeout_ms = 300};
	f->dev.type = type;
	f->dev.period_ms = type == DEV_A02YYUW ? 30 : 150;
	f->dev.value = type == DEV_A02YYUW ? 2000 : 25;
	/* A PMS5003 or SDS011 starts in active mode, as after power-up. */
	f->dev.active = type != DEV_A02YYUW;
	pthread_mutex_init(&f->dev.lock, NULL);
	assert_int_equal(pthread_create(&f->dev.thread, NULL, device_main, &f->dev), 0);

	f->drv = drv;
	sensor = cJSON_Parse(json);
	assert_non_null(sensor);
	assert_int_equal(drv->check(sensor, "/sensors/0", NULL, &(cg_diag_t){0}), 0);
	assert_int_equal(drv->open(sensor, NULL, &f->state), 0);
	assert_non_null(f->state);
	cJSON_Delete(sensor);
	return f;
}

static void device_stop(fixture_t *f)
{
	pthread_mutex_lock(&f->dev.lock);
	f->dev.stop = true;
	pthread_mutex_unlock(&f->dev.lock);
	pthread_join(f->dev.thread, NULL);
}

/* The master side hangs up, as when a USB adapter is pulled. */
static void close_master(fixture_t *f)
{
	device_stop(f);
	close(f->dev.master);
	f->closed_master = true;
}

static void fixture_free(fixture_t *f)
{
	if (!f->closed_master)
		close_master(f);
	close(f->slave);
	f->drv->close(f->state);
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
	fixture_t *f = fixture_new(DEV_PMS5003, &cg_pms5003_driver, PMS_JSON);
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
	fixture_t *f = fixture_new(DEV_PMS5003, &cg_pms5003_driver, PMS_JSON);
	cg_reading_t r;

	assert_int_equal(poll_once(f, &r), 0);
	sleep_ms(1000);
	assert_int_equal(poll_once(f, &r), 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");

	/* One frame it was not asked for (a late answer) is not a restart. */
	pthread_mutex_lock(&f->dev.lock);
	dev_send_frame(&f->dev);
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
	fixture_t *f = fixture_new(DEV_PMS5003, &cg_pms5003_driver, PMS_JSON);
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
	fixture_t *f = fixture_new(DEV_PMS5003, &cg_pms5003_driver, PMS_JSON);
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
	fixture_t *f = fixture_new(DEV_PMS5003, &cg_pms5003_driver, PMS_JSON);
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
	fixture_t *f = fixture_new(DEV_SDS011, &cg_sds011_driver, SDS_JSON);
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
	fixture_t *f = fixture_new(DEV_SDS011, &cg_sds011_driver,
	                           "{\"id\":\"pm-2\",\"driver\":\"sds011\",\"warmup_s\":1}");
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
	fixture_t *f = fixture_new(DEV_SDS011, &cg_sds011_driver, SDS_JSON);
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
	fixture_t *f = fixture_new(DEV_A02YYUW, &cg_a02yyuw_driver, A02_JSON);
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
	fixture_t *f = fixture_new(DEV_A02YYUW, &cg_a02yyuw_driver, A02_JSON);
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
	fixture_t *f = fixture_new(DEV_A02YYUW, &cg_a02yyuw_driver, "{\"id\":\"bay-2\"}");
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

/* ---- all three ---- */

static void test_poll_without_state_or_fd(void **state)
{
	const cg_driver_t *drivers[] = {&cg_pms5003_driver, &cg_sds011_driver, &cg_a02yyuw_driver};
	cg_transport_t t = {.type = CG_BUS_SERIAL, .fd = -1, .timeout_ms = 300};
	cg_reading_t r;
	cJSON *empty = cJSON_CreateObject();

	for (size_t i = 0; i < 3; i++) {
		void *s = NULL;

		cg_reading_init(&r);
		assert_int_equal(drivers[i]->poll(NULL, &t, &r), CG_ESTATE);
		assert_int_equal(drivers[i]->open(empty, NULL, &s), 0);
		assert_int_equal(drivers[i]->poll(s, &t, &r), CG_EINVAL);
		assert_int_equal(drivers[i]->poll(s, NULL, &r), CG_EINVAL);
		assert_int_equal(r.n_values, 0);
		drivers[i]->close(s);
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
	    cmocka_unit_test(test_poll_without_state_or_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
