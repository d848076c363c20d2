/* Unit tests of the reconnect schedule: its windows, its phase per outage, and a
 * simulated fleet returning after a broker restart. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uplink/backoff.h"

/* The first attempt of an outage is anywhere in [0, min): across seeds both halves
 * are used (a half-to-whole jitter would never try in the first half). */
static void test_first_attempt_uniform(void **state)
{
	int bins[4] = {0};

	(void)state;
	for (uint64_t seed = 1; seed <= 4000; seed++) {
		cg_backoff_t b;
		int64_t t;

		cg_backoff_init(&b, 2.0, 60.0, seed);
		t = cg_backoff_next(&b, 100000);
		assert_true(t >= 100000);
		assert_true(t < 102000);
		bins[(t - 100000) / 500]++;
	}
	/* 1000 expected per quarter; 800 is beyond five standard deviations. */
	for (int i = 0; i < 4; i++)
		assert_true(bins[i] > 800);
}

/* Attempts that fail at once fall one per window, windows doubling to the cap, all
 * at the outage's own phase. */
static void test_doubling_windows_same_phase(void **state)
{
	const double min = 1.0, max = 8.0;
	/* Window starts and lengths: [0,1) [1,3) [3,7) [7,15) [15,23) [23,31). */
	const double start[] = {0, 1, 3, 7, 15, 23}, len[] = {1, 2, 4, 8, 8, 8};
	cg_backoff_t b;
	int64_t t = 5000;
	double phase = -1;

	(void)state;
	cg_backoff_init(&b, min, max, 42);
	for (int k = 0; k < 6; k++) {
		double at, ph;

		t = cg_backoff_next(&b, t);
		at = (double)(t - 5000) / 1000.0;
		assert_true(at >= start[k] - 0.001);
		assert_true(at < start[k] + len[k]);
		ph = (at - start[k]) / len[k];
		if (phase < 0)
			phase = ph;
		assert_true(fabs(ph - phase) < 0.002);
	}
}

/* A new outage draws a new phase; a connection in between resets the windows. */
static void test_reset_new_phase(void **state)
{
	cg_backoff_t b;
	int64_t t1, t2;
	int differ = 0;

	(void)state;
	cg_backoff_init(&b, 10.0, 60.0, 7);
	for (int i = 0; i < 20; i++) {
		t1 = cg_backoff_next(&b, 0);
		(void)cg_backoff_next(&b, t1); /* a second window */
		cg_backoff_reset(&b);
		t2 = cg_backoff_next(&b, 1000000);
		assert_true(t2 >= 1000000 && t2 < 1010000); /* back in the first window */
		cg_backoff_reset(&b);
		differ += (t2 - 1000000) != t1;
	}
	assert_true(differ >= 19);
}

/* An attempt that outlasts its window (a connect timeout) skips the windows whose
 * attempt is past; an hour's suspend does not loop once per capped window. */
static void test_skips_past_windows(void **state)
{
	cg_backoff_t b;
	int64_t t;

	(void)state;
	cg_backoff_init(&b, 1.0, 4.0, 3);
	t = cg_backoff_next(&b, 0);
	assert_true(t < 1000);
	t = cg_backoff_next(&b, 20000);
	assert_true(t >= 20000 && t < 24000);
	t = cg_backoff_next(&b, t + 3600000);
	assert_true(t >= 3600000);
	assert_true(t < 3600000 + 24000 + 4000);
}

/* The fleet: n gateways lose the broker at once (each noticing within 50 ms), it is
 * back after down_ms; an attempt before that fails at once. Returns the peak
 * connections in any one second over the mean rate of the return. */
static double fleet_peak_over_mean(int n, double min, double max, int64_t down_ms, double *span_s)
{
	int64_t *at = calloc((size_t)n, sizeof(*at));
	int64_t first = INT64_MAX, last = 0;
	int *per_s;
	int nbins, peak = 0;

	assert_non_null(at);
	for (int g = 0; g < n; g++) {
		cg_backoff_t b;
		int64_t t = g % 50;

		cg_backoff_init(&b, min, max, 1000003ULL * (uint64_t)(g + 1));
		do
			t = cg_backoff_next(&b, t);
		while (t < down_ms);
		at[g] = t;
		first = t < first ? t : first;
		last = t > last ? t : last;
	}
	*span_s = (double)(last - down_ms) / 1000.0;
	nbins = (int)((last - down_ms) / 1000) + 1;
	per_s = calloc((size_t)nbins, sizeof(*per_s));
	assert_non_null(per_s);
	for (int g = 0; g < n; g++) {
		int i = (int)((at[g] - down_ms) / 1000);

		if (++per_s[i] > peak)
			peak = per_s[i];
	}
	free(per_s);
	free(at);
	/* The mean over whole seconds: a return shorter than a second is one bin. */
	return peak / ((double)n / nbins);
}

/* 200 gateways, restarts in every kind of window, at the windows' edges and inside:
 * no second sees more than twice the mean rate. min and max are those a fleet of
 * this size would use (max 8 s: 25 connects a second once capped). */
static void test_fleet_spread(void **state)
{
	const int64_t downs[] = {300, 900, 2000, 3000, 5500, 7000, 10000, 15000, 19000, 60000};

	(void)state;
	for (size_t i = 0; i < sizeof(downs) / sizeof(downs[0]); i++) {
		double span, r = fleet_peak_over_mean(200, 1.0, 8.0, downs[i], &span);

		print_message("down %lld ms: all back in %.1f s, peak/mean %.2f\n",
		              (long long)downs[i], span, r);
		assert_true(r <= 2.0);
		/* All back within two windows of the cap. */
		assert_true(span <= 16.1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_attempt_uniform),
	    cmocka_unit_test(test_doubling_windows_same_phase),
	    cmocka_unit_test(test_reset_new_phase),
	    cmocka_unit_test(test_skips_past_windows),
	    cmocka_unit_test(test_fleet_spread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
