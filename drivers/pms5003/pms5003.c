/* The pms5003 driver: Plantower PMS5003/PMS7003 particulate sensors in passive mode on a UART. */
#include "drivers/pms5003/pms5003.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "drivers/driver.h"
#include "drivers/serial/query_mode.h"
#include "drivers/serial/serial_frame.h"

/* Commands are `42 4D CMD DH DL sumH sumL`, sum = the 16-bit sum of the five bytes before it. */
#define PMS_COMMAND_LEN 7
#define PMS_CMD_READ    0xE2 /* read one frame in passive mode; data 0 */
#define PMS_CMD_MODE    0xE1 /* data 0: passive, 1: active */
#define PMS_CMD_POWER   0xE4 /* data 0: sleep, 1: wake */

/* Mass concentrations above this are beyond the sensor's maximum range (datasheet: >= 1000). */
#define PMS_PM_MAX 1000

typedef struct pms_options {
	long warmup_s;
} pms_options_t;

static const cg_key_t pms_keys[] = {
    {.name = "warmup_s",
     .type = CG_J_INTEGER,
     .field = CG_F_LONG,
     .offset = offsetof(pms_options_t, warmup_s),
     .min = 0,
     .max = 600,
     .def = 30},
    {.name = NULL},
};

/* The names of the particle counts (words 7-12), by the smallest diameter counted, in 0.1 um. */
static const char *const pms_particle_names[6] = {
    "particles03", "particles05", "particles10", "particles25", "particles50", "particles100",
};

typedef struct pms_state {
	cg_query_mode_t mode; /* passive mode, wake-up and warm-up */
} pms_state_t;

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int cg_pms5003_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame)
{
	cg_pms5003_frame_t *f = frame;
	uint16_t w[13];
	unsigned sum = 0;

	*frame_len = 0;
	if (len >= 1 && buf[0] != 0x42)
		return CG_EFRAME;
	if (len >= 2 && buf[1] != 0x4D)
		return CG_EFRAME;
	if (len >= 4 && be16(buf + 2) != CG_PMS5003_FRAME_LEN - 4)
		return CG_EFRAME;
	if (len < CG_PMS5003_FRAME_LEN) {
		*frame_len = len >= 4 ? CG_PMS5003_FRAME_LEN : 0;
		return CG_EAGAIN;
	}
	*frame_len = CG_PMS5003_FRAME_LEN;
	for (size_t i = 0; i < CG_PMS5003_FRAME_LEN - 2; i++)
		sum += buf[i];
	if ((sum & 0xFFFF) != be16(buf + CG_PMS5003_FRAME_LEN - 2))
		return CG_ECRC;
	for (size_t i = 0; i < 13; i++)
		w[i] = be16(buf + 4 + 2 * i);
	*f = (cg_pms5003_frame_t){
	    .pm1_cf1 = w[0],
	    .pm25_cf1 = w[1],
	    .pm10_cf1 = w[2],
	    .pm1 = w[3],
	    .pm25 = w[4],
	    .pm10 = w[5],
	    .particles = {w[6], w[7], w[8], w[9], w[10], w[11]},
	    .reserved = w[12],
	};
	return 0;
}

static void pms_close(void *state)
{
	free(state);
}

/* Allocates the state of one sensor from its parsed keys; does no I/O. */
static int pms_open(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state)
{
	const pms_options_t *o = (const void *)options;
	pms_state_t *s;

	*state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CG_ENOMEM;
	s->mode.warmup_ms = o->warmup_s * 1000;
	*state = s;
	return 0;
}

/* Writes the command cmd with data into c. */
static void pms_command(uint8_t c[PMS_COMMAND_LEN], uint8_t cmd, uint16_t data)
{
	unsigned sum = 0;

	c[0] = 0x42;
	c[1] = 0x4D;
	c[2] = cmd;
	c[3] = (uint8_t)(data >> 8);
	c[4] = (uint8_t)data;
	for (size_t i = 0; i < 5; i++)
		sum += c[i];
	c[5] = (uint8_t)(sum >> 8);
	c[6] = (uint8_t)sum;
}

/* Sends one command whose answer is not read. */
static int pms_send(cg_transport_t *t, uint8_t cmd, uint16_t data)
{
	uint8_t c[PMS_COMMAND_LEN];

	pms_command(c, cmd, data);
	return cg_transport_request(t, c, sizeof(c), NULL, NULL, "pms5003", NULL);
}

/* Puts the sensor in passive mode and wakes it. */
static int pms_set_mode(cg_transport_t *t)
{
	int rc = pms_send(t, PMS_CMD_MODE, 0);

	return rc ? rc : pms_send(t, PMS_CMD_POWER, 1);
}

/*
 * The I/O of one poll: puts the sensor in passive mode and wakes it when
 * that is not known to be done (first poll, after a failure, or when it is
 * found sending frames on its own, which it does after a power cycle), then
 * asks for one frame and reads it into *f.
 */
static int pms_read(pms_state_t *s, cg_transport_t *t, const char *sensor, cg_pms5003_frame_t *f)
{
	uint8_t c[PMS_COMMAND_LEN];
	int rc;

	rc = cg_query_prepare(&s->mode, t, cg_pms5003_parse, f, "pms5003", sensor, pms_set_mode);
	if (rc)
		return rc;
	pms_command(c, PMS_CMD_READ, 0);
	return cg_transport_request(t, c, sizeof(c), cg_pms5003_parse, f, "pms5003", sensor);
}

/*
 * Polls once: see driver.h. Values pm1, pm25, pm10 (ug/m3, atmospheric) and
 * the particle counts (count per 0.1 L). Quality "warming-up" within
 * warmup_s of the wake command that followed the first poll, a timeout, a
 * lost device or a restart seen (a wake sent to a sensor that kept talking
 * does not restart its fan, so it does not restart the warm-up), else
 * "out-of-range" when a mass concentration is above the sensor's maximum
 * range. After any failure the next poll sets passive mode and wakes the
 * sensor again.
 */
static int pms_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	pms_state_t *s = state;
	cg_pms5003_frame_t f;
	int rc;

	if (!s)
		return CG_ESTATE;
	if (!t || t->fd < 0)
		return CG_EINVAL;
	rc = pms_read(s, t, r->sensor, &f);
	if (rc) {
		cg_query_failed(&s->mode, rc);
		return rc;
	}
	r->kind = CG_KIND_AIR_QUALITY;
	if ((rc = cg_reading_add_number(r, "pm1", f.pm1, "ug/m3")) ||
	    (rc = cg_reading_add_number(r, "pm25", f.pm25, "ug/m3")) ||
	    (rc = cg_reading_add_number(r, "pm10", f.pm10, "ug/m3")))
		return rc;
	for (size_t i = 0; i < 6; i++) {
		rc = cg_reading_add_number(r, pms_particle_names[i], f.particles[i], "count");
		if (rc)
			return rc;
	}
	if (f.pm1 > PMS_PM_MAX || f.pm25 > PMS_PM_MAX || f.pm10 > PMS_PM_MAX)
		r->quality = CG_QUALITY_OUT_OF_RANGE;
	if (cg_query_warming(&s->mode))
		r->quality = CG_QUALITY_WARMING_UP;
	return 0;
}

const cg_driver_t cg_pms5003_driver = {
    .name = "pms5003",
    .bus_types = CG_BUS_SERIAL,
    .keys = pms_keys,
    .options_size = sizeof(pms_options_t),
    .open = pms_open,
    .poll = pms_poll,
    .close = pms_close,
};
