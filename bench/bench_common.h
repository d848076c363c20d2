/* Helpers shared by the benchmark programs: clocks, medians and the reading they publish. */
#ifndef CG_BENCH_COMMON_H
#define CG_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "base/reading.h"

/* The ids every benchmark uses, so that topics and payloads have one size. */
#define BENCH_GATEWAY_ID "gw-bench-0001"
#define BENCH_SENSOR_ID  "aq-001"
#define BENCH_PREFIX     "city/bench"

/* Seconds on the monotonic clock. */
double bench_now_s(void);

/* Sleeps for ms milliseconds. */
void bench_sleep_ms(int ms);

/* Fills r with the air-quality reading the throughput benchmarks publish:
 * with a seq of six digits its native payload is about 200 bytes. */
void bench_reading(cg_reading_t *r);

/* The median of v (sorted in place). */
double bench_median(double *v, size_t n);

/* Prints one result line "key=value ..." on stdout through the log module. */
void bench_result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
