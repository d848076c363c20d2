/* libFuzzer target: the config parser and validator (cg_config_parse) on any bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/diag.h"
#include "base/error.h"
#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The whole of --check runs here: JSON parsing, the key tables, the checks
 * across keys, each driver's validator, and the loading of every profile a
 * sensor names (by name from the source tree's profile folder, which needs
 * no file of ours). Besides not crashing, the parser keeps its contract: a
 * config comes back with no problem lines, and a refusal comes back with at
 * least one line, each naming the file, and no config. A broken promise
 * aborts, which libFuzzer reports as a crash with the input that caused it.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char name[] = "fuzz.json";
	cg_config_t *cfg = NULL;
	cg_diag_t diag = {0};
	int rc;

	rc = cg_config_parse((const char *)data, size, name, &cfg, &diag);
	if (rc == 0 && (!cfg || diag.n != 0))
		__builtin_trap();
	if (rc != 0 && (cfg || (rc == CG_EINVAL && diag.n == 0)))
		__builtin_trap();
	for (size_t i = 0; i < diag.n; i++)
		if (strncmp(diag.lines[i], name, sizeof(name) - 1) != 0)
			__builtin_trap();
	cg_config_free(cfg);
	cg_diag_free(&diag);
	return 0;
}
