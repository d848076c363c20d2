/* The check every frame-parser fuzz target makes: a parser keeps its contract on any bytes. */
#ifndef CG_FUZZ_FRAME_H
#define CG_FUZZ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "drivers/serial/serial_frame.h"

/*
 * Besides not crashing, the parser must keep its contract: a good or bad
 * frame has the protocol's length (frame_size) and lies within the input,
 * and any other answer is "wait" or "not a frame here"; the frame scanner
 * over it drops exactly the bytes before the frame it finds. A broken
 * promise aborts, which libFuzzer reports as a crash with the input that
 * caused it. frame points to room for one parsed frame.
 */
static inline int cg_fuzz_frame_parser(const uint8_t *data, size_t size, cg_frame_parse_fn parse,
				       size_t frame_size, void *frame)
{
	cg_frame_counts_t counts = { 0 };
	size_t n = 0, start = 0, frame_len = 0;
	int rc;

	rc = parse(data, size, &n, frame);
	if ((rc == 0 || rc == CG_ECRC) && (n != frame_size || n > size))
		__builtin_trap();
	if (rc != 0 && rc != CG_ECRC && rc != CG_EAGAIN && rc != CG_EFRAME)
		__builtin_trap();
	rc = cg_frame_scan(data, size, parse, frame, &start, &frame_len, &counts);
	if (rc == 0 && (frame_len != frame_size || start + frame_len > size))
		__builtin_trap();
	if (rc != 0 && (rc != CG_EAGAIN || start > size))
		__builtin_trap();
	if (counts.dropped_bytes != start)
		__builtin_trap();
	return 0;
}

#endif
