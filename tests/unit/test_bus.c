/* Unit tests of the bus worker (gateway/bus.c) with a driver of the test's own. */
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/error.h"
#include "gateway/bus.h"

/* A driver whose open() fails its first two calls, as one would while a
 * resource it needs is missing, and whose polls then always answer. */
static int opens;

static int flaky_open(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state)
{
	static int token;

	if (++opens <= 2)
		return CG_ENOENT;
	*state = &token;
	return CG_OK;
}

static int flaky_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	if (!state)
		return CG_ESTATE;
	r->kind = CG_KIND_AIR_QUALITY;
	return cg_reading_add_number(r, "pm25", 12.5, "ug/m3");
}

static void flaky_close(void *state)
{
}

static const cg_driver_t flaky_driver = {
    .name = "flaky",
    .bus_types = CG_BUS_SERIAL,
    .open = flaky_open,
    .poll = flaky_poll,
    .close = flaky_close,
};

static pthread_mutex_t got_lock = PTHREAD_MUTEX_INITIALIZER;
static int got;

static void sink(void *ctx, const cg_reading_t *r, int format)
{
	pthread_mutex_lock(&got_lock);
	got++;
	pthread_mutex_unlock(&got_lock);
}

/* A sensor whose driver could not open it at start is opened again on its
 * back-off and then polled. Before, it stayed unopened for good while the
 * log said "retrying". */
static void test_failed_open_is_retried(void **state)
{
	int master, slave;
	char path[64];
	char *dirs[] = {NULL};
	cg_bus_config_t bus = {.id = "uart-1", .backoff_max_s = 1};
	cg_sensor_config_t sensor = {.id = "pm-1", .driver = &flaky_driver, .interval_s = 0.05,
	                             .format = -1};
	cg_config_t cfg = {.path = "/nonexistent/citygate.json", .profile_dirs = dirs,
	                   .buses = &bus, .n_buses = 1, .sensors = &sensor, .n_sensors = 1};
	cg_bus_t *b;
	int64_t deadline;
	int n = 0;

	assert_int_equal(openpty(&master, &slave, path, NULL, NULL), 0);
	bus.line = (cg_bus_line_t){.type = CG_BUS_SERIAL, .device = path, .baud = 9600,
	                           .parity = 'N', .data_bits = 8, .stop_bits = 1,
	                           .timeout_ms = 100};
	assert_int_equal(cg_bus_start(&cfg, 0, sink, NULL, NULL, &b), 0);
	deadline = cg_mono_ms() + 10000;
	while (n < 3 && cg_mono_ms() < deadline) {
		cg_sleep_ms(20);
		pthread_mutex_lock(&got_lock);
		n = got;
		pthread_mutex_unlock(&got_lock);
	}
	cg_bus_stop(b);
	assert_int_equal(opens, 3);
	assert_true(n >= 3);
	close(master);
	close(slave);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed_open_is_retried),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
