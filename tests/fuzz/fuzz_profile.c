/* libFuzzer target: the Modbus device profile parser (cg_profile_parse) on any bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/diag.h"
#include "base/error.h"
#include "drivers/modbus/decode.h"
#include "drivers/modbus/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Besides not crashing, the parser keeps its contract: a profile comes back
 * with no problem lines, a name, a kind and points whose enums are in range
 * and whose values fit the register space; a refusal comes back with at
 * least one line naming the file, and no profile. A broken promise aborts.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char name[] = "fuzz-profile.json";
	cg_profile_t *p = NULL;
	cg_diag_t diag = {0};
	int rc;

	rc = cg_profile_parse((const char *)data, size, name, &p, &diag);
	if (rc == 0) {
		if (!p || diag.n != 0 || !p->name || !cg_kind_name(p->kind))
			__builtin_trap();
		for (size_t i = 0; i < p->n_points; i++) {
			const cg_point_t *pt = &p->points[i];

			if (!pt->name || pt->table > CG_TABLE_INPUT || pt->type > CG_TYPE_F64 ||
			    pt->order > CG_ORDER_DCBA)
				__builtin_trap();
			if ((unsigned long)pt->address + cg_type_registers(pt->type) > 65536)
				__builtin_trap();
		}
	} else if (p || (rc == CG_EINVAL && diag.n == 0)) {
		__builtin_trap();
	}
	for (size_t i = 0; i < diag.n; i++)
		if (strncmp(diag.lines[i], name, sizeof(name) - 1) != 0)
			__builtin_trap();
	cg_profile_free(p);
	cg_diag_free(&diag);
	return 0;
}
