/* The compile-time table of drivers: add one line here to register a driver. */
#include <string.h>

#include "drivers/driver.h"

extern const cg_driver_t cg_modbus_driver;
extern const cg_driver_t cg_pms5003_driver;
extern const cg_driver_t cg_sds011_driver;
extern const cg_driver_t cg_a02yyuw_driver;

const cg_driver_t *const cg_drivers[] = {
	&cg_modbus_driver,
	&cg_pms5003_driver,
	&cg_sds011_driver,
	&cg_a02yyuw_driver,
	NULL,
};

const cg_driver_t *cg_driver_find(const char *name)
{
	for (size_t i = 0; cg_drivers[i]; i++)
		if (strcmp(cg_drivers[i]->name, name) == 0)
			return cg_drivers[i];
	return NULL;
}
