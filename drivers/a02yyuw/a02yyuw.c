/* The a02yyuw driver: a DFRobot A02YYUW ultrasonic sensor over a parking bay, on a UART. */
#include "drivers/a02yyuw/a02yyuw.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "drivers/driver.h"
#include "drivers/serial/serial_frame.h"

/* The sensor measures 30 to 4500 mm; it has a blind zone below. */
#define A02_MIN_MM 30
#define A02_MAX_MM 4500

/*
 * A frame is one 0xFF byte and an 8-bit sum, so random bytes forge a good
 * one about every 65,536 bytes (once a minute on a noisy 9600-baud line). A
 * poll therefore publishes only when two successive good frames agree
 * within A02_AGREE_MM (the sensor's accuracy is 1 cm + 0.3 %, so frames of
 * one surface agree; forged ones 1 time in 650), reading at most
 * A02_MAX_FRAMES frames, each within the bus's timeout.
 */
#define A02_AGREE_MM   50
#define A02_MAX_FRAMES 4

typedef struct a02_options {
	long occupied_below_mm;
	long hysteresis_mm;
} a02_options_t;

static const cg_key_t a02_keys[] = {
    {.name = "occupied_below_mm",
     .type = CG_J_INTEGER,
     .field = CG_F_LONG,
     .offset = offsetof(a02_options_t, occupied_below_mm),
     .min = A02_MIN_MM,
     .max = A02_MAX_MM,
     .def = 1500},
    {.name = "hysteresis_mm",
     .type = CG_J_INTEGER,
     .field = CG_F_LONG,
     .offset = offsetof(a02_options_t, hysteresis_mm),
     .min = 0,
     .max = 2000,
     .def = 100},
    {.name = NULL},
};

typedef enum a02_status {
	A02_UNKNOWN,
	A02_FREE,
	A02_OCCUPIED,
} a02_status_t;

typedef struct a02_state {
	long threshold_mm;
	long hysteresis_mm;
	a02_status_t status; /* the last decision; unknown after a failure */
} a02_state_t;

int cg_a02yyuw_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame)
{
	cg_a02yyuw_frame_t *f = frame;

	*frame_len = 0;
	if (len >= 1 && buf[0] != 0xFF)
		return CG_EFRAME;
	*frame_len = CG_A02YYUW_FRAME_LEN;
	if (len < CG_A02YYUW_FRAME_LEN)
		return CG_EAGAIN;
	if (((0xFFu + buf[1] + buf[2]) & 0xFF) != buf[3])
		return CG_ECRC;
	f->distance_mm = (uint16_t)(buf[1] << 8 | buf[2]);
	return 0;
}

/* The rule across the keys (see driver.h): with a hysteresis of twice the
 * threshold or more, a bay could never become occupied. */
static int a02_check(cg_driver_options_t *options, const cJSON *sensor, const char *pointer,
                     const cg_driver_env_t *env, cg_diag_t *diag)
{
	const a02_options_t *o = (const void *)options;
	char ptr[256];

	if (!cg_keys_usable(sensor, a02_keys, "occupied_below_mm") ||
	    !cg_keys_usable(sensor, a02_keys, "hysteresis_mm") ||
	    o->hysteresis_mm < 2 * o->occupied_below_mm)
		return 0;
	cg_pointer_key(ptr, sizeof(ptr), pointer, "hysteresis_mm");
	cg_diag_add(diag, cg_driver_env_file(env), ptr,
	            "must be less than twice occupied_below_mm (%ld)", o->occupied_below_mm);
	return CG_EINVAL;
}

static void a02_close(void *state)
{
	free(state);
}

/* Allocates the state of one sensor from its parsed keys; does no I/O. */
static int a02_open(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state)
{
	const a02_options_t *o = (const void *)options;
	a02_state_t *s;

	*state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CG_ENOMEM;
	s->threshold_mm = o->occupied_below_mm;
	s->hysteresis_mm = o->hysteresis_mm;
	s->status = A02_UNKNOWN;
	*state = s;
	return 0;
}

/*
 * The bay's status for a distance: occupied below threshold - hysteresis/2,
 * free above threshold + hysteresis/2, the previous status in between, so
 * that a car at the threshold (or a swaying one) does not flap. Without a
 * previous status the plain threshold decides. Doubled to stay in integers.
 */
static a02_status_t a02_decide(const a02_state_t *s, long distance_mm)
{
	if (2 * distance_mm < 2 * s->threshold_mm - s->hysteresis_mm)
		return A02_OCCUPIED;
	if (2 * distance_mm > 2 * s->threshold_mm + s->hysteresis_mm)
		return A02_FREE;
	if (s->status != A02_UNKNOWN)
		return s->status;
	return distance_mm < s->threshold_mm ? A02_OCCUPIED : A02_FREE;
}

/*
 * Reads good frames from t until two successive ones agree within
 * A02_AGREE_MM (see above) and sets *mm to the later one's distance. Each
 * frame is one request (cg_transport_request: the flush, then the next
 * frame), so what the reader skipped is counted as for any request. A
 * failed read fails the poll with its error; A02_MAX_FRAMES frames without
 * two that agree fail it with CG_EFRAME.
 */
static int a02_read_confirmed(cg_transport_t *t, const char *sensor, long *mm)
{
	cg_a02yyuw_frame_t f;
	long prev = -1;
	int rc;

	for (int i = 0; i < A02_MAX_FRAMES; i++) {
		rc = cg_transport_request(t, NULL, 0, cg_a02yyuw_parse, &f, "a02yyuw", sensor);
		if (rc)
			return rc;
		if (prev >= 0 && labs(f.distance_mm - prev) <= A02_AGREE_MM) {
			*mm = f.distance_mm;
			return 0;
		}
		prev = f.distance_mm;
	}
	return CG_EFRAME;
}

/*
 * Polls once: see driver.h. The sensor streams frames on its own, so a poll
 * flushes what came before and reads the next good frames until two agree
 * (a single frame may be forged by noise). Values status ("free" or
 * "occupied") and distance (m); quality "out-of-range" outside the sensor's
 * 30-4500 mm, with the status still decided from the distance. After a
 * failure the previous status is forgotten: the bay may have changed
 * meanwhile.
 */
static int a02_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	a02_state_t *s = state;
	long mm = 0;
	int rc;

	if (!s)
		return CG_ESTATE;
	if (!t || t->fd < 0)
		return CG_EINVAL;
	rc = a02_read_confirmed(t, r->sensor, &mm);
	if (rc) {
		s->status = A02_UNKNOWN;
		return rc;
	}
	s->status = a02_decide(s, mm);
	r->kind = CG_KIND_PARKING;
	if ((rc = cg_reading_add_string(r, "status",
	                                s->status == A02_OCCUPIED ? "occupied" : "free")) ||
	    (rc = cg_reading_add_number(r, "distance", mm / 1000.0, "m")))
		return rc;
	if (mm < A02_MIN_MM || mm > A02_MAX_MM)
		r->quality = CG_QUALITY_OUT_OF_RANGE;
	return 0;
}

const cg_driver_t cg_a02yyuw_driver = {
    .name = "a02yyuw",
    .bus_types = CG_BUS_SERIAL,
    .keys = a02_keys,
    .options_size = sizeof(a02_options_t),
    .check = a02_check,
    .open = a02_open,
    .poll = a02_poll,
    .close = a02_close,
};
