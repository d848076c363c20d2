/* libFuzzer target: the PMS5003 frame parser, alone and under the frame scanner, on any bytes. */
#include "drivers/pms5003/pms5003.h"
#include "fuzz_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cg_pms5003_frame_t frame;

	return cg_fuzz_frame_parser(data, size, cg_pms5003_parse, CG_PMS5003_FRAME_LEN, &frame);
}
