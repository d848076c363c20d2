/* libFuzzer target: the SDS011 frame parser, alone and under the frame scanner, on any bytes. */
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "sds011/sds011.h"
#include "serial/serial_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Besides not crashing, the parser must keep its contract: a good or bad
 * frame has the protocol's length and lies within the input, and any other
 * answer is "wait" or "not a frame here". A broken promise aborts, which
 * libFuzzer reports as a crash with the input that caused it.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cg_sds011_frame_t frame;
	cg_frame_counts_t counts = {0};
	size_t n = 0, start = 0, frame_len = 0;
	int rc;

	rc = cg_sds011_parse(data, size, &n, &frame);
	if ((rc == 0 || rc == CG_ECRC) && (n != CG_SDS011_FRAME_LEN || n > size))
		__builtin_trap();
	if (rc != 0 && rc != CG_ECRC && rc != CG_EAGAIN && rc != CG_EFRAME)
		__builtin_trap();
	rc = cg_frame_scan(data, size, cg_sds011_parse, &frame, &start, &frame_len, &counts);
	if (rc == 0 && (frame_len != CG_SDS011_FRAME_LEN || start + frame_len > size))
		__builtin_trap();
	if (rc != 0 && (rc != CG_EAGAIN || start > size))
		__builtin_trap();
	if (counts.dropped_bytes != start)
		__builtin_trap();
	return 0;
}
