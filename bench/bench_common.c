/* Helpers shared by the benchmark programs: clocks, medians and the reading they publish. */
#include "bench_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"

double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

void bench_reading(cg_reading_t *r)
{
	cg_reading_init(r);
	snprintf(r->sensor, sizeof(r->sensor), "%s", BENCH_SENSOR_ID);
	r->kind = CG_KIND_AIR_QUALITY;
	r->ts_ms = cg_now_ms();
	cg_reading_add_number(r, "pm25", 12.3, "ug/m3");
	cg_reading_add_number(r, "pm10", 20.5, "ug/m3");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_result(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cg_out(line);
}
