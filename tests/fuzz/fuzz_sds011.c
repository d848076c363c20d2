/* libFuzzer target: the SDS011 frame parser, alone and under the frame scanner, on any bytes. */
#include "drivers/sds011/sds011.h"
#include "fuzz_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cg_sds011_frame_t frame;

	return cg_fuzz_frame_parser(data, size, cg_sds011_parse, CG_SDS011_FRAME_LEN, &frame);
}
