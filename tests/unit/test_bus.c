/* Unit tests of the bus worker (gateway/bus.c) with a driver of the test's own. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* A driver that notes when each of its sensors was first polled. */
#define N_TIMED 5
static int64_t polled_at[N_TIMED];
static int n_polled;

static int timed_open(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state)
{
	static int tokens[N_TIMED];
	static int next;

	*state = &tokens[next++ % N_TIMED];
	return CG_OK;
}

static int timed_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	pthread_mutex_lock(&got_lock);
	if (n_polled < N_TIMED)
		polled_at[n_polled++] = cg_mono_ms();
	pthread_mutex_unlock(&got_lock);
	r->kind = CG_KIND_AIR_QUALITY;
	return cg_reading_add_number(r, "pm25", 12.5, "ug/m3");
}

static const cg_driver_t timed_driver = {
    .name = "timed",
    .bus_types = CG_BUS_SERIAL | CG_BUS_MODBUS_TCP,
    .open = timed_open,
    .poll = timed_poll,
    .close = flaky_close,
};

/* The first polls of N_TIMED sensors with equal intervals on a bus of line, the
 * bus_index-th of the config's buses: from before the bus started to the first
 * and to the last poll, in ms. */
static void first_polls(cg_bus_line_t line, size_t bus_index, int64_t *first, int64_t *last)
{
	char *dirs[] = {NULL};
	cg_bus_config_t buses[3];
	cg_sensor_config_t sensors[N_TIMED];
	cg_config_t cfg = {.path = "/nonexistent/citygate.json", .profile_dirs = dirs,
	                   .buses = buses, .n_buses = 3, .sensors = sensors, .n_sensors = N_TIMED};
	char ids[N_TIMED][8];
	cg_bus_t *b;
	int64_t started = cg_mono_ms(), deadline = started + 10000;
	int n = 0;

	for (size_t i = 0; i < 3; i++)
		buses[i] = (cg_bus_config_t){.id = "bus-1", .backoff_max_s = 1, .line = line};
	for (int i = 0; i < N_TIMED; i++) {
		snprintf(ids[i], sizeof(ids[i]), "s-%d", i);
		sensors[i] = (cg_sensor_config_t){.id = ids[i], .driver = &timed_driver,
		                                  .bus_index = bus_index, .interval_s = 60,
		                                  .format = -1};
	}
	n_polled = 0;
	assert_int_equal(cg_bus_start(&cfg, bus_index, sink, NULL, NULL, &b), 0);
	while (n < N_TIMED && cg_mono_ms() < deadline) {
		cg_sleep_ms(5);
		pthread_mutex_lock(&got_lock);
		n = n_polled;
		pthread_mutex_unlock(&got_lock);
	}
	cg_bus_stop(b);
	assert_int_equal(n, N_TIMED);
	*first = polled_at[0] - started;
	*last = polled_at[N_TIMED - 1] - started;
}

/* On a line the first polls are spread 20 ms apart; on a Modbus TCP bus they
 * go back to back, one wake-up of the worker for all of them. The line's
 * bound is taken from the start: a late first poll (a slow machine, qemu)
 * shortens the span between polls, never the schedule. */
static void test_first_polls_spread_on_a_line_only(void **state)
{
	int master, slave, listener;
	char path[64];
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(addr);
	int64_t line_first, line_last, tcp_first, tcp_last, third_first, third_last;
	cg_bus_line_t tcp;

	assert_int_equal(openpty(&master, &slave, path, NULL, NULL), 0);
	first_polls((cg_bus_line_t){.type = CG_BUS_SERIAL, .device = path, .baud = 9600,
	                            .parity = 'N', .data_bits = 8, .stop_bits = 1,
	                            .timeout_ms = 100},
	            0, &line_first, &line_last);
	close(master);
	close(slave);

	/* A listening socket takes the connections into its backlog: enough for the
	 * transport to open, and this driver sends nothing. */
	listener = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(listener >= 0);
	assert_int_equal(bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(listener, 4), 0);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&addr, &len), 0);
	tcp = (cg_bus_line_t){.type = CG_BUS_MODBUS_TCP, .host = "127.0.0.1",
	                      .port = ntohs(addr.sin_port), .timeout_ms = 100};
	first_polls(tcp, 0, &tcp_first, &tcp_last);
	first_polls(tcp, 2, &third_first, &third_last);
	close(listener);

	print_message("first polls of %d sensors after the start: line %lld-%lld ms, modbus-tcp "
	              "%lld-%lld ms, the third modbus-tcp bus %lld-%lld ms\n",
	              N_TIMED, (long long)line_first, (long long)line_last, (long long)tcp_first,
	              (long long)tcp_last, (long long)third_first, (long long)third_last);
	assert_true(line_last >= 20 * (N_TIMED - 1));
	/* Back to back, they are microseconds apart; spread, they would be 80 ms. */
	assert_true(tcp_last - tcp_first < 10 * (N_TIMED - 1));
	/* The third bus starts its burst 40 ms after the start, still back to back. */
	assert_true(third_first >= 2 * 20);
	assert_true(third_last - third_first < 10 * (N_TIMED - 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed_open_is_retried),
	    cmocka_unit_test(test_first_polls_spread_on_a_line_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
