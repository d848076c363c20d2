/* The template driver's frame: a made-up "XX" dust sensor, parsed as a pure function. Copy me. */
#ifndef CG_TEMPLATE_H
#define CG_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The XX protocol, invented for the template: every frame is `5A LEN
 * PAYLOAD[LEN] SUM`, SUM = low byte of the sum of all bytes before it. The
 * gateway asks with payload `52 ADDR` ('R' and the device's address); the
 * device answers with payload `ADDR PM25H PM25L PM10H PM10L`, the
 * concentrations big endian in 0.1 ug/m3.
 */
#define CG_TEMPLATE_ANSWER_LEN 8 /* 5A, LEN = 5, 5 payload bytes, SUM */

typedef struct cg_template_frame {
	uint8_t address;
	uint16_t pm25_raw;
	uint16_t pm10_raw;
} cg_template_frame_t;

/* Parses the answer that starts buf. A cg_frame_parse_fn
 * (serial/serial_frame.h): frame points to a cg_template_frame_t; returns 0
 * (*frame_len 8), CG_EAGAIN, CG_EFRAME (not 5A, or a length other than 5) or
 * CG_ECRC. */
int cg_template_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame);

#endif
