/* DFRobot A02YYUW ultrasonic distance sensor: the 4-byte UART frame, parsed as a pure function. */
#ifndef CG_A02YYUW_H
#define CG_A02YYUW_H

#include <stddef.h>
#include <stdint.h>

#define CG_A02YYUW_FRAME_LEN 4

typedef struct cg_a02yyuw_frame {
	uint16_t distance_mm;
} cg_a02yyuw_frame_t;

/*
 * Parses the frame that starts buf: `FF H L SUM`, distance = H * 256 + L mm,
 * SUM = (0xFF + H + L) & 0xFF. A cg_frame_parse_fn (serial/serial_frame.h):
 * frame points to a cg_a02yyuw_frame_t; returns 0 (*frame_len 4),
 * CG_EAGAIN, CG_EFRAME (not FF) or CG_ECRC.
 */
int cg_a02yyuw_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame);

#endif
