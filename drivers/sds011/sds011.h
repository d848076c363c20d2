/* Nova SDS011 particulate sensor: the 10-byte data frame, parsed as a pure function. */
#ifndef CG_SDS011_H
#define CG_SDS011_H

#include <stddef.h>
#include <stdint.h>

#define CG_SDS011_FRAME_LEN   10
#define CG_SDS011_COMMAND_LEN 19

/* One data frame, raw: the concentrations are in 0.1 ug/m3. */
typedef struct cg_sds011_frame {
	uint16_t pm25_raw;
	uint16_t pm10_raw;
	uint16_t device_id; /* ID1 << 8 | ID2 */
} cg_sds011_frame_t;

/*
 * Parses the data frame that starts buf: `AA C0 PM25L PM25H PM10L PM10H ID1
 * ID2 CS AB`, CS = low byte of the sum of bytes 2-7. A cg_frame_parse_fn
 * (serial/serial_frame.h): frame points to a cg_sds011_frame_t; returns 0
 * (*frame_len 10), CG_EAGAIN, CG_EFRAME (wrong head, command id or tail,
 * e.g. the `AA C5` answer to a setting) or CG_ECRC.
 */
int cg_sds011_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame);

#endif
