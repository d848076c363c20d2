/* Integer sensor keys of serial-frame drivers: parsed by a table, reported with JSON pointers. */
#include "drivers/serial/serial_options.h"

#include <math.h>

#include "base/error.h"

int cg_int_options_parse(const cJSON *sensor, const char *pointer, const char *file,
                         const cg_int_option_t *opts, size_t n, void *out, cg_diag_t *diag)
{
	char ptr[256];
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		const cg_int_option_t *o = &opts[i];
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(sensor, o->key);
		long *dst = (long *)(void *)((char *)out + o->offset);
		double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;

		*dst = o->def;
		if (!item)
			continue;
		/* The range test comes first so that the cast below is defined. */
		if (!(v >= (double)o->min && v <= (double)o->max) || v != (double)(long)v) {
			if (diag) {
				cg_pointer_key(ptr, sizeof(ptr), pointer, o->key);
				cg_diag_add(diag, file, ptr, "must be an integer from %ld to %ld",
				            o->min, o->max);
			}
			rc = CG_EINVAL;
			continue;
		}
		*dst = (long)v;
	}
	return rc;
}

const char *cg_driver_env_file(const cg_driver_env_t *env)
{
	return env && env->config_path ? env->config_path : "config";
}
