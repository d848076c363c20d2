/* Tests of the serial request helper, and of the template driver through it, over a real pty. */
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/reading.h"
#include "drivers/driver.h"
#include "drivers/template/template.h"

extern const cg_driver_t cg_template_driver;

/* The template's read request to address 1, and answers from address 1
 * (PM2.5 12.3, PM10 45.6), written out from the XX layout in template.h. */
static const uint8_t request[5] = {0x5A, 0x02, 0x52, 0x01, 0xAF};
static const uint8_t good[8] = {0x5A, 0x05, 0x01, 0x00, 0x7B, 0x01, 0xC8, 0xA4};
static const uint8_t bad_sum[8] = {0x5A, 0x05, 0x01, 0x00, 0x7B, 0x01, 0xC8, 0xA5};
static const uint8_t noise[3] = {0x11, 0x22, 0x33};

/* The device on the master side of the pty: once it has received a whole
 * request, it answers with the bytes it was given (none: it stays silent). */
typedef struct device {
	int master;
	pthread_t thread;
	uint8_t answer[64];
	size_t answer_len;
	uint8_t got[16]; /* what it received */
	size_t got_len;
} device_t;

typedef struct fixture {
	device_t dev;
	int slave;
	cg_transport_t t;
} fixture_t;

static void *device_main(void *arg)
{
	device_t *d = arg;
	struct pollfd p = {.fd = d->master, .events = POLLIN};
	ssize_t n;

	while (d->got_len < sizeof(request) && poll(&p, 1, 2000) == 1) {
		n = read(d->master, d->got + d->got_len, sizeof(d->got) - d->got_len);
		if (n <= 0)
			return NULL;
		d->got_len += (size_t)n;
	}
	if (d->answer_len && write(d->master, d->answer, d->answer_len) != (ssize_t)d->answer_len)
		d->answer_len = 0;
	return NULL;
}

/* A pty pair whose slave is set up as the transport opens a UART, and a
 * device that answers the next request with parts (pairs of pointer and
 * length, ending with NULL). */
static fixture_t *fixture_new(const uint8_t *part, ...)
{
	fixture_t *f = calloc(1, sizeof(*f));
	struct termios tio;
	va_list ap;

	assert_non_null(f);
	assert_int_equal(openpty(&f->dev.master, &f->slave, NULL, NULL, NULL), 0);
	assert_int_equal(tcgetattr(f->slave, &tio), 0);
	cfmakeraw(&tio);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 1;
	assert_int_equal(tcsetattr(f->slave, TCSANOW, &tio), 0);
	assert_int_equal(tcgetattr(f->dev.master, &tio), 0);
	cfmakeraw(&tio);
	assert_int_equal(tcsetattr(f->dev.master, TCSANOW, &tio), 0);
	f->t = (cg_transport_t){.type = CG_BUS_SERIAL, .fd = f->slave, .timeout_ms = 300};
	va_start(ap, part);
	for (; part; part = va_arg(ap, const uint8_t *)) {
		size_t len = va_arg(ap, size_t);

		assert_true(f->dev.answer_len + len <= sizeof(f->dev.answer));
		memcpy(f->dev.answer + f->dev.answer_len, part, len);
		f->dev.answer_len += len;
	}
	va_end(ap);
	assert_int_equal(pthread_create(&f->dev.thread, NULL, device_main, &f->dev), 0);
	return f;
}

/* Joins the device and checks that it received exactly the request. */
static void fixture_free(fixture_t *f)
{
	pthread_join(f->dev.thread, NULL);
	assert_int_equal(f->dev.got_len, sizeof(request));
	assert_memory_equal(f->dev.got, request, sizeof(request));
	close(f->slave);
	close(f->dev.master);
	free(f);
}

/* A read that finds noise and a frame with a bad checksum but no good frame
 * fails, and what it skipped is counted all the same. */
static void test_request_counts_a_failing_read(void **state)
{
	fixture_t *f = fixture_new(noise, sizeof(noise), bad_sum, sizeof(bad_sum), NULL);
	cg_template_frame_t frame;

	(void)state;
	assert_int_equal(cg_transport_request(&f->t, request, sizeof(request), cg_template_parse,
	                                      &frame, "template", "s"),
	                 CG_ECRC);
	assert_int_equal(f->t.requests, 1);
	assert_int_equal(f->t.noise_bytes, sizeof(noise) + sizeof(bad_sum));
	assert_int_equal(f->t.bad_frames, 1);
	assert_true(f->t.last_io_ms > 0);
	fixture_free(f);
}

/* Noise and a bad frame before a good one: the poll succeeds, the skipped
 * bytes are counted, the frame decoded. */
static void test_request_counts_before_a_good_frame(void **state)
{
	fixture_t *f =
	    fixture_new(noise, sizeof(noise), bad_sum, sizeof(bad_sum), good, sizeof(good), NULL);
	cg_template_frame_t frame = {0};

	(void)state;
	assert_int_equal(cg_transport_request(&f->t, request, sizeof(request), cg_template_parse,
	                                      &frame, "template", "s"),
	                 0);
	assert_int_equal(frame.address, 1);
	assert_int_equal(frame.pm25_raw, 123);
	assert_int_equal(frame.pm10_raw, 456);
	assert_int_equal(f->t.noise_bytes, sizeof(noise) + sizeof(bad_sum));
	assert_int_equal(f->t.bad_frames, 1);
	fixture_free(f);
}

/* Only noise: CG_EFRAME, the noise counted, no bad frame. */
static void test_request_counts_noise_only(void **state)
{
	fixture_t *f = fixture_new(noise, sizeof(noise), NULL);
	cg_template_frame_t frame;

	(void)state;
	assert_int_equal(cg_transport_request(&f->t, request, sizeof(request), cg_template_parse,
	                                      &frame, "template", "s"),
	                 CG_EFRAME);
	assert_int_equal(f->t.noise_bytes, sizeof(noise));
	assert_int_equal(f->t.bad_frames, 0);
	fixture_free(f);
}

/* A silent device: a timeout, one request, nothing skipped. */
static void test_request_silent(void **state)
{
	fixture_t *f = fixture_new(NULL);
	cg_template_frame_t frame;

	(void)state;
	f->t.timeout_ms = 100;
	assert_int_equal(cg_transport_request(&f->t, request, sizeof(request), cg_template_parse,
	                                      &frame, "template", "s"),
	                 CG_ETIMEDOUT);
	assert_int_equal(f->t.requests, 1);
	assert_int_equal(f->t.noise_bytes, 0);
	assert_int_equal(f->t.bad_frames, 0);
	fixture_free(f);
}

/* Without a serial fd there is nothing to ask. */
static void test_request_without_fd(void **state)
{
	cg_transport_t t = {.type = CG_BUS_SERIAL, .fd = -1, .timeout_ms = 100};

	(void)state;
	assert_int_equal(cg_transport_request(&t, request, sizeof(request), NULL, NULL, "x", "s"),
	                 CG_EINVAL);
	assert_int_equal(t.requests, 0);
}

/* The template driver, which docs/drivers.md tells integrators to copy,
 * counts what a failed poll skipped into the bus's counters. */
static void test_template_poll_counts_on_failure(void **state)
{
	fixture_t *f = fixture_new(noise, sizeof(noise), bad_sum, sizeof(bad_sum), NULL);
	cJSON *sensor = cJSON_Parse("{\"id\":\"s\",\"driver\":\"template\",\"address\":1}");
	cg_driver_options_t *options = NULL;
	cg_diag_t diag = {0};
	void *st = NULL;
	cg_reading_t r;

	(void)state;
	assert_non_null(sensor);
	assert_int_equal(cg_driver_options(&cg_template_driver, sensor, "", NULL, &diag, &options),
	                 0);
	assert_int_equal(cg_template_driver.open(options, NULL, &st), 0);
	cg_reading_init(&r);
	assert_int_equal(cg_template_driver.poll(st, &f->t, &r), CG_ECRC);
	assert_int_equal(r.n_values, 0);
	assert_int_equal(f->t.requests, 1);
	assert_int_equal(f->t.noise_bytes, sizeof(noise) + sizeof(bad_sum));
	assert_int_equal(f->t.bad_frames, 1);
	cg_template_driver.close(st);
	cg_driver_options_free(&cg_template_driver, options);
	cJSON_Delete(sensor);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_counts_a_failing_read),
	    cmocka_unit_test(test_request_counts_before_a_good_frame),
	    cmocka_unit_test(test_request_counts_noise_only),
	    cmocka_unit_test(test_request_silent),
	    cmocka_unit_test(test_request_without_fd),
	    cmocka_unit_test(test_template_poll_counts_on_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
