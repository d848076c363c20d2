/* Integer sensor keys of serial-frame drivers: parsed by a table, reported with JSON pointers. */
#ifndef CG_SERIAL_OPTIONS_H
#define CG_SERIAL_OPTIONS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/diag.h"
#include "drivers/driver.h"

/* One optional integer key of a sensor object: its bounds, its default, and
 * where it goes (a long at offset in the driver's options struct). */
typedef struct cg_int_option {
	const char *key;
	long min, max, def;
	size_t offset;
} cg_int_option_t;

/*
 * Reads the keys opts[0, n) of sensor into the longs at out + offset, each
 * absent key getting its default. Each key that is not an integer within its
 * bounds adds one line "file: pointer/key: must be an integer from MIN to
 * MAX" to diag (which may be NULL) and leaves its default. Returns 0 or
 * CG_EINVAL.
 */
int cg_int_options_parse(const cJSON *sensor, const char *pointer, const char *file,
                         const cg_int_option_t *opts, size_t n, void *out, cg_diag_t *diag);

/* The file name a driver's diag lines carry: the config's path, or "config". */
const char *cg_driver_env_file(const cg_driver_env_t *env);

#endif
