/* libFuzzer target: the A02YYUW frame parser, alone and under the frame scanner, on any bytes. */
#include "drivers/a02yyuw/a02yyuw.h"
#include "fuzz_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cg_a02yyuw_frame_t frame;

	return cg_fuzz_frame_parser(data, size, cg_a02yyuw_parse, CG_A02YYUW_FRAME_LEN, &frame);
}
