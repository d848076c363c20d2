/* Unit tests of the daemon's ingest queue: bounded in bytes, given back after a burst,
 * taken before a burst makes it grow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gateway_private.h"

/* A gateway on a store in a fresh folder; its broker is never connected to
 * (the main loop does not run here). */
static gw_t *new_gateway(char *dir)
{
	char path[512], text[1024];
	cg_config_t *cfg = NULL;
	cg_diag_t diag = {0};
	cg_gateway_t *g = NULL;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/citygate.json", dir);
	snprintf(text, sizeof(text),
	         "{\"gateway\": {\"id\": \"gw-1\"},"
	         " \"mqtt\": {\"uri\": \"tcp://127.0.0.1:1\", \"topic_prefix\": \"city/t\"},"
	         " \"store\": {\"path\": \"outbox.db\"},"
	         " \"buses\": [{\"id\": \"lan\", \"type\": \"modbus-tcp\", \"host\": \"127.0.0.1\"}],"
	         " \"sensors\": [{\"id\": \"aq-1\", \"bus\": \"lan\", \"driver\": \"modbus\","
	         " \"profile\": \"aqt530\", \"interval_s\": 10}]}");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	cg_config_load(path, &cfg, &diag);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "%s\n", diag.lines[i]);
	assert_non_null(cfg);
	cg_diag_free(&diag);
	assert_int_equal(cg_gateway_new(cfg, &g), 0);
	return g;
}

static void remove_dir(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* A reading with every value slot in use, the largest there is. */
static void full_reading(cg_reading_t *r, int i)
{
	char name[16];

	cg_reading_init(r);
	snprintf(r->sensor, sizeof(r->sensor), "aq-%d", i % 100);
	r->kind = CG_KIND_AIR_QUALITY;
	r->ts_ms = 1764071200000 + i;
	for (int v = 0; v < CG_READING_MAX_VALUES; v++) {
		snprintf(name, sizeof(name), "v%d", v);
		assert_int_equal(cg_reading_add_number(r, name, v, "ppb"), 0);
	}
}

/* With the store stuck (the loop does not take readings), the queue stops at
 * its byte bound and counts the rest as dropped. Before, it held 20,000
 * whole readings and doubled past that: about 100 MB for one buffer. */
static void test_queue_bounded_in_bytes(void **state)
{
	char dir[] = "/tmp/cg-ingest-XXXXXX";
	gw_t *g = new_gateway(dir);
	cg_reading_t r;
	const int n = 20000;

	for (int i = 0; i < n; i++) {
		full_reading(&r, i);
		cg_gateway_submit(g, &r, -1);
	}
	assert_true(g->queue_cap <= QUEUE_MAX_BYTES);
	assert_true(g->queue_len <= QUEUE_MAX_BYTES);
	assert_true(g->queue_dropped > 0);
	assert_int_equal(g->made + g->queue_dropped, n);
	/* Every reading that was taken is staged whole: nothing is cut. */
	gw_take_readings(g);
	assert_int_equal(g->n_pending, g->made);
	cg_gateway_free(g);
	remove_dir(dir);
}

/* After a burst, the buffers shrink back within two turns of the loop. */
static void test_queue_given_back_after_burst(void **state)
{
	char dir[] = "/tmp/cg-ingest-XXXXXX";
	gw_t *g = new_gateway(dir);
	cg_reading_t r;

	for (int i = 0; i < 5000; i++) {
		full_reading(&r, i);
		cg_gateway_submit(g, &r, -1);
	}
	assert_true(g->queue_cap > 1024 * 1024);
	gw_take_readings(g);
	gw_take_readings(g);
	gw_take_readings(g);
	assert_true(g->queue_cap <= 256 * 1024);
	assert_true(g->work_cap <= 256 * 1024);
	cg_gateway_free(g);
	remove_dir(dir);
}

/* A two-value reading, as a temperature and humidity transmitter gives. */
static void small_reading(cg_reading_t *r, int i)
{
	cg_reading_init(r);
	snprintf(r->sensor, sizeof(r->sensor), "th-%03d", i);
	r->ts_ms = 1764071200000 + i;
	assert_int_equal(cg_reading_add_number(r, "temperature", 21.5, "Cel"), 0);
	assert_int_equal(cg_reading_add_number(r, "relativeHumidity", 40, "%RH"), 0);
}

/* A bus of 200 sensors polled back to back, while rows wait for their commit
 * (so no reading count wakes the loop): the queue's bytes wake it, and the
 * loop, taking the queue each time it is woken, keeps both buffers at their
 * first size. Before, they grew to hold the whole burst (128 KB each). */
static void test_burst_wakes_the_loop_before_the_queue_grows(void **state)
{
	char dir[] = "/tmp/cg-ingest-XXXXXX";
	gw_t *g = new_gateway(dir);
	cg_reading_t r;
	int wakes = 0;

	g->wake_at = PUT_BATCH; /* what gw_wait_for_work() sets with rows pending */
	for (int i = 0; i < 200; i++) {
		size_t before = g->queue_len;

		small_reading(&r, i);
		cg_gateway_submit(g, &r, -1);
		assert_true(g->woken == (g->queue_len >= QUEUE_WAKE_BYTES));
		assert_true(before < QUEUE_WAKE_BYTES);
		if (g->woken) {
			wakes++;
			g->woken = false;
			gw_take_readings(g);
			g->wake_at = PUT_BATCH - g->n_pending;
		}
		assert_true(g->queue_cap <= QUEUE_START_BYTES);
		assert_true(g->work_cap <= QUEUE_START_BYTES);
	}
	assert_true(wakes >= 2);
	assert_true(wakes < 200 / 4);
	cg_gateway_free(g);
	remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_queue_bounded_in_bytes),
	    cmocka_unit_test(test_queue_given_back_after_burst),
	    cmocka_unit_test(test_burst_wakes_the_loop_before_the_queue_grows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
