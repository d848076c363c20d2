/* The sds011 driver: Nova SDS011 particulate sensors in query mode on a UART. */
#include "drivers/sds011/sds011.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "drivers/driver.h"
#include "drivers/serial/query_mode.h"
#include "drivers/serial/serial_frame.h"

/*
 * Commands are 19 bytes: `AA B4`, data bytes 1-15 at offsets 2-16 (data 1 is
 * the command, data 2 is 1 to set and 0 to query a setting, data 3 the new
 * setting; data 14-15 the device id, FF FF for any), the low byte of the sum
 * of the data bytes at 17, and `AB` at 18.
 */
#define SDS_CMD_REPORT_MODE 0x02 /* data 3: 0 active (reports every second), 1 query */
#define SDS_CMD_QUERY       0x04 /* answered with one data frame */
#define SDS_CMD_SLEEP       0x06 /* data 3: 0 sleep, 1 work */

/* The sensor's range is 0.0 to 999.9 ug/m3. */
#define SDS_PM_MAX_RAW 9999

typedef struct sds_options {
	long warmup_s;
} sds_options_t;

static const cg_key_t sds_keys[] = {
    {.name = "warmup_s",
     .type = CG_J_INTEGER,
     .field = CG_F_LONG,
     .offset = offsetof(sds_options_t, warmup_s),
     .min = 0,
     .max = 600,
     .def = 30},
    {.name = NULL},
};

typedef struct sds_state {
	cg_query_mode_t mode; /* query mode, work state and warm-up */
} sds_state_t;

int cg_sds011_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame)
{
	cg_sds011_frame_t *f = frame;
	unsigned sum = 0;

	*frame_len = 0;
	if (len >= 1 && buf[0] != 0xAA)
		return CG_EFRAME;
	if (len >= 2 && buf[1] != 0xC0)
		return CG_EFRAME;
	*frame_len = CG_SDS011_FRAME_LEN;
	if (len < CG_SDS011_FRAME_LEN)
		return CG_EAGAIN;
	if (buf[9] != 0xAB)
		return CG_EFRAME;
	for (size_t i = 2; i <= 7; i++)
		sum += buf[i];
	if ((sum & 0xFF) != buf[8])
		return CG_ECRC;
	*f = (cg_sds011_frame_t){
	    .pm25_raw = (uint16_t)(buf[3] << 8 | buf[2]),
	    .pm10_raw = (uint16_t)(buf[5] << 8 | buf[4]),
	    .device_id = (uint16_t)(buf[6] << 8 | buf[7]),
	};
	return 0;
}

static void sds_close(void *state)
{
	free(state);
}

/* Allocates the state of one sensor from its parsed keys; does no I/O. */
static int sds_open(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state)
{
	const sds_options_t *o = (const void *)options;
	sds_state_t *s;

	*state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CG_ENOMEM;
	s->mode.warmup_ms = o->warmup_s * 1000;
	*state = s;
	return 0;
}

/* Writes into c the command cmd to every device on the line (id FF FF). */
static void sds_command(uint8_t c[CG_SDS011_COMMAND_LEN], uint8_t cmd, uint8_t set, uint8_t value)
{
	unsigned sum = 0;

	memset(c, 0, CG_SDS011_COMMAND_LEN);
	c[0] = 0xAA;
	c[1] = 0xB4;
	c[2] = cmd;
	c[3] = set;
	c[4] = value;
	c[15] = 0xFF;
	c[16] = 0xFF;
	for (size_t i = 2; i <= 16; i++)
		sum += c[i];
	c[17] = (uint8_t)sum;
	c[18] = 0xAB;
}

/* Sends one command whose answer is not read. */
static int sds_send(cg_transport_t *t, uint8_t cmd, uint8_t set, uint8_t value)
{
	uint8_t c[CG_SDS011_COMMAND_LEN];

	sds_command(c, cmd, set, value);
	return cg_transport_request(t, c, sizeof(c), NULL, NULL, "sds011", NULL);
}

/* Wakes the sensor (a sleeping SDS011 answers nothing else) and sets query mode. */
static int sds_set_mode(cg_transport_t *t)
{
	int rc = sds_send(t, SDS_CMD_SLEEP, 1, 1);

	return rc ? rc : sds_send(t, SDS_CMD_REPORT_MODE, 1, 1);
}

/*
 * The I/O of one poll: sets work (the sensor may have been put to sleep)
 * and query mode when that is not known to be done (first poll, after a
 * failure, or when it is found reporting on its own, as after a power cycle
 * in active mode), then queries one frame and reads it into *f. The `AA C5`
 * answers to the settings are skipped by the parser.
 */
static int sds_read(sds_state_t *s, cg_transport_t *t, const char *sensor, cg_sds011_frame_t *f)
{
	uint8_t c[CG_SDS011_COMMAND_LEN];
	int rc;

	rc = cg_query_prepare(&s->mode, t, cg_sds011_parse, f, "sds011", sensor, sds_set_mode);
	if (rc)
		return rc;
	sds_command(c, SDS_CMD_QUERY, 0, 0);
	return cg_transport_request(t, c, sizeof(c), cg_sds011_parse, f, "sds011", sensor);
}

/*
 * Polls once: see driver.h. Values pm25 and pm10 in ug/m3. Quality
 * "warming-up" within warmup_s of the work command that followed the first
 * poll, a timeout, a lost device or a restart seen, else "out-of-range"
 * above the sensor's 999.9 ug/m3. After any failure the next poll sets the
 * modes again.
 */
static int sds_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	sds_state_t *s = state;
	cg_sds011_frame_t f;
	int rc;

	if (!s)
		return CG_ESTATE;
	if (!t || t->fd < 0)
		return CG_EINVAL;
	rc = sds_read(s, t, r->sensor, &f);
	if (rc) {
		cg_query_failed(&s->mode, rc);
		return rc;
	}
	r->kind = CG_KIND_AIR_QUALITY;
	if ((rc = cg_reading_add_number(r, "pm25", f.pm25_raw / 10.0, "ug/m3")) ||
	    (rc = cg_reading_add_number(r, "pm10", f.pm10_raw / 10.0, "ug/m3")))
		return rc;
	if (f.pm25_raw > SDS_PM_MAX_RAW || f.pm10_raw > SDS_PM_MAX_RAW)
		r->quality = CG_QUALITY_OUT_OF_RANGE;
	if (cg_query_warming(&s->mode))
		r->quality = CG_QUALITY_WARMING_UP;
	return 0;
}

const cg_driver_t cg_sds011_driver = {
    .name = "sds011",
    .bus_types = CG_BUS_SERIAL,
    .keys = sds_keys,
    .options_size = sizeof(sds_options_t),
    .open = sds_open,
    .poll = sds_poll,
    .close = sds_close,
};
