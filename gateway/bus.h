/* Bus workers: one thread per bus polls its sensors in turn on their schedules. */
#ifndef CG_BUS_H
#define CG_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/reading.h"
#include "gateway/config.h"

typedef struct cg_bus cg_bus_t;

/* Where a worker hands each successful reading; called from the worker's
 * thread, so it must be thread safe and quick. format is the sensor's
 * cg_format_t or -1 for the gateway's. */
typedef void (*cg_reading_sink_t)(void *ctx, const cg_reading_t *r, int format);

/* What one poll of a sensor came to, readings or not: what the main loop decides a
 * sensor's availability from (gateway/avail.h). */
typedef struct cg_poll_outcome {
	char sensor[CG_ID_MAX];
	bool answered; /* the sensor answered (with or without a reading to report) */
	int quality;   /* answered with a reading: its cg_quality_t; else -1 */
	int64_t ts_ms; /* the reading's ts, when there is one */
	int error;     /* not answered: the CG_E* code of the failure */
} cg_poll_outcome_t;

/* Where a worker reports the outcome of every poll; called from the worker's thread
 * after the poll's readings went to the reading sink, so the two arrive in order when
 * both sinks feed one queue. Thread safe and quick, like the reading sink. */
typedef void (*cg_outcome_sink_t)(void *ctx, const cg_poll_outcome_t *o);

typedef struct cg_sensor_stats {
	char id[CG_ID_MAX];
	uint64_t polls, ok, timeouts, crc_errors, exceptions, frame_errors, io_errors;
	int64_t last_success_ms; /* epoch ms, 0 when never */
	uint32_t failing;        /* consecutive failed polls */
	double backoff_s;        /* current extra delay of a failing sensor */
} cg_sensor_stats_t;

typedef struct cg_bus_stats {
	char id[CG_ID_MAX];
	bool open;
	uint64_t requests;
	uint64_t noise_bytes;   /* serial buses: bytes skipped looking for frames */
	uint64_t bad_frames;    /* serial buses: frames that failed their checksum */
	uint64_t open_failures;
	size_t n_sensors;
	cg_sensor_stats_t *sensors; /* the caller frees */
} cg_bus_stats_t;

/* Starts the worker of cfg->buses[bus_index] with the sensors that name it.
 * cfg must outlive the worker. The transport is opened by the worker (and
 * reopened after I/O errors), so a missing device does not stop start-up.
 * outcome may be NULL; both sinks get ctx. */
int cg_bus_start(const cg_config_t *cfg, size_t bus_index, cg_reading_sink_t sink,
                 cg_outcome_sink_t outcome, void *ctx, cg_bus_t **out);

/* Asks the worker to stop after its current request, without waiting; a
 * caller stopping several buses asks them all first, so that the stall is
 * the longest of their requests in flight, not the sum. Accepts NULL. */
void cg_bus_request_stop(cg_bus_t *b);

/* Waits at most timeout_ms for a worker asked to stop to end: CG_OK when it
 * has (or was never started, or b is NULL: a bus whose start failed),
 * CG_ETIMEDOUT when it is still in a request. */
int cg_bus_wait(cg_bus_t *b, int64_t timeout_ms);

/* Asks the worker to stop, waits for its current request to end, joins and
 * frees; accepts NULL. */
void cg_bus_stop(cg_bus_t *b);

/* A snapshot of the worker's counters. */
int cg_bus_stats(cg_bus_t *b, cg_bus_stats_t *st);

#endif
