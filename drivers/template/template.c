/* The template driver of docs/drivers.md: a complete serial-frame driver to copy; unregistered. */
#include "drivers/template/template.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "drivers/driver.h"
#include "drivers/serial/serial_frame.h"

/* The keys of this driver, parsed: what open() takes. */
typedef struct template_options {
	long address;
} template_options_t;

/* The keys of this driver besides the common ones (id, bus, driver, ...),
 * one row per key: type, bounds, default and where it goes. The core walks
 * the table and reports each bad key with its JSON pointer, e.g.
 * "/sensors/3/address: must be an integer from 0 to 255". */
static const cg_key_t template_keys[] = {
    {.name = "address",
     .type = CG_J_INTEGER,
     .field = CG_F_LONG,
     .offset = offsetof(template_options_t, address),
     .min = 0,
     .max = 255,
     .def = 1},
    {.name = NULL},
};

/* Per-sensor state: allocated in open(), freed in close(), never global. */
typedef struct template_state {
	uint8_t address;
} template_state_t;

/* The parser touches nothing but its arguments, so tests and fuzzers call
 * it on any bytes. It checks the start byte and the length field as soon as
 * it has them, so that noise is skipped without waiting for a whole frame. */
int cg_template_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame)
{
	cg_template_frame_t *f = frame;
	unsigned sum = 0;

	*frame_len = 0;
	if (len >= 1 && buf[0] != 0x5A)
		return CG_EFRAME;
	if (len >= 2 && buf[1] != CG_TEMPLATE_ANSWER_LEN - 3)
		return CG_EFRAME;
	*frame_len = CG_TEMPLATE_ANSWER_LEN;
	if (len < CG_TEMPLATE_ANSWER_LEN)
		return CG_EAGAIN;
	for (size_t i = 0; i < CG_TEMPLATE_ANSWER_LEN - 1; i++)
		sum += buf[i];
	if ((sum & 0xFF) != buf[CG_TEMPLATE_ANSWER_LEN - 1])
		return CG_ECRC;
	*f = (cg_template_frame_t){
	    .address = buf[2],
	    .pm25_raw = (uint16_t)(buf[3] << 8 | buf[4]),
	    .pm10_raw = (uint16_t)(buf[5] << 8 | buf[6]),
	};
	return 0;
}

/* Frees the state; accepts NULL like every close(). */
static void template_close(void *state)
{
	free(state);
}

/* Allocates the state of one sensor from its parsed keys; does no I/O. */
static int template_open(const cg_driver_options_t *options, const cg_driver_env_t *env,
                         void **state)
{
	const template_options_t *o = (const void *)options;
	template_state_t *s;

	*state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CG_ENOMEM;
	s->address = (uint8_t)o->address;
	*state = s;
	return 0;
}

/* Writes the read request to the sensor's address into c. */
static void template_command(const template_state_t *s, uint8_t c[5])
{
	c[0] = 0x5A;
	c[1] = 0x02;
	c[2] = 0x52;
	c[3] = s->address;
	c[4] = (uint8_t)(c[0] + c[1] + c[2] + c[3]);
}

/*
 * Polls once: see driver.h. cg_transport_request() does the I/O: it keeps
 * the bus's gap, flushes stale input (a late answer to an earlier request
 * must not be taken for this one's), writes the command, reads the answer,
 * and counts and logs the noise and bad frames it skipped, also when the
 * poll fails. Values pm25 and pm10 in ug/m3. An answer from another address
 * is an unexpected frame (CG_EFRAME). Errors come from the frame reader:
 * CG_ETIMEDOUT (silent), CG_ECRC (only bad checksums), CG_EFRAME (only
 * noise), CG_EIO (the port is gone; the bus worker reopens it).
 */
static int template_poll(void *state, cg_transport_t *t, cg_reading_t *r)
{
	template_state_t *s = state;
	cg_template_frame_t f;
	uint8_t c[5];
	int rc;

	if (!s)
		return CG_ESTATE;
	if (!t || t->fd < 0)
		return CG_EINVAL;
	template_command(s, c);
	rc = cg_transport_request(t, c, sizeof(c), cg_template_parse, &f, "template", r->sensor);
	if (rc)
		return rc;
	if (f.address != s->address)
		return CG_EFRAME;
	r->kind = CG_KIND_AIR_QUALITY;
	if ((rc = cg_reading_add_number(r, "pm25", f.pm25_raw / 10.0, "ug/m3")) ||
	    (rc = cg_reading_add_number(r, "pm10", f.pm10_raw / 10.0, "ug/m3")))
		return rc;
	return 0;
}

/* Registered by one line in drivers/registry.c (this template is not). */
const cg_driver_t cg_template_driver = {
    .name = "template",
    .bus_types = CG_BUS_SERIAL,
    .keys = template_keys,
    .options_size = sizeof(template_options_t),
    .open = template_open,
    .poll = template_poll,
    .close = template_close,
};
