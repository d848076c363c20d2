/* Plantower PMS5003/PMS7003 particulate sensor: the 32-byte data frame, as a pure parser. */
#ifndef CG_PMS5003_H
#define CG_PMS5003_H

#include <stddef.h>
#include <stdint.h>

#define CG_PMS5003_FRAME_LEN 32

/* The data words of one frame, as the sensor sends them. */
typedef struct cg_pms5003_frame {
	uint16_t pm1_cf1, pm25_cf1, pm10_cf1; /* words 1-3: ug/m3 at CF=1 (factory standard) */
	uint16_t pm1, pm25, pm10;             /* words 4-6: ug/m3 in atmospheric conditions */
	uint16_t particles[6]; /* words 7-12: per 0.1 L, > 0.3 0.5 1.0 2.5 5.0 10 um */
	uint16_t reserved;     /* word 13 */
} cg_pms5003_frame_t;

/*
 * Parses the frame that starts buf: `42 4D`, length 28 (big endian), 13
 * big-endian words, checksum (big endian) = sum of the 30 bytes before it. A
 * cg_frame_parse_fn (serial/serial_frame.h): frame points to a
 * cg_pms5003_frame_t; returns 0 (*frame_len 32), CG_EAGAIN, CG_EFRAME (wrong
 * start bytes or length field, e.g. the 8-byte answer to a mode command) or
 * CG_ECRC.
 */
int cg_pms5003_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame);

#endif
