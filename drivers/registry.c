/* The compile-time table of drivers: add one line here to register a driver. */
#include <string.h>

#include "clock.h"
#include "driver.h"

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

void cg_transport_pace(cg_transport_t *t)
{
	if (t->last_io_ms && t->gap_ms > 0) {
		int64_t wait = t->last_io_ms + t->gap_ms - cg_mono_ms();
		if (wait > 0)
			cg_sleep_ms(wait);
	}
	t->requests++;
}

void cg_transport_done(cg_transport_t *t)
{
	t->last_io_ms = cg_mono_ms();
}
