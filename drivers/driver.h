/* The driver interface: a const table of operations per sensor protocol. */
#ifndef CG_DRIVER_H
#define CG_DRIVER_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/diag.h"
#include "base/reading.h"
#include "drivers/transport.h"

/* What a driver may need besides its sensor's JSON object: where the config
 * file is (relative profile paths are resolved against its folder) and the
 * profile folders to search, a NULL-terminated list. */
typedef struct cg_driver_env {
	const char *config_path;
	const char *const *profile_dirs;
} cg_driver_env_t;

typedef struct cg_driver {
	const char *name;
	/* The bus types this driver polls over (CG_BUS_* flags). */
	unsigned bus_types;
	/* The sensor keys this driver owns, NULL-terminated; any key that is
	 * neither a common sensor key nor listed here is an error. */
	const char *const *keys;
	/* Checks this driver's keys of one sensor object. pointer is the JSON
	 * pointer of the sensor ("/sensors/2"); problems go to diag with the
	 * config file's name (or a profile's file and pointer). Returns 0 or
	 * CG_EINVAL. */
	int (*check)(const cJSON *sensor, const char *pointer, const cg_driver_env_t *env,
		     cg_diag_t *diag);
	/* Allocates per-sensor state from a sensor object that check() accepted.
	 * Does no I/O on the bus. */
	int (*open)(const cJSON *sensor, const cg_driver_env_t *env, void **state);
	/* Polls the sensor once over t and fills r's kind, values and quality
	 * (r was initialised and carries the sensor id; the bus worker stamps the
	 * time). Values of one lane of a multi-lane traffic sensor are added
	 * after cg_reading_set_lane(); the bus worker splits them into one
	 * reading per lane. Returns 0; CG_EAGAIN when the sensor answered but
	 * there is nothing to report yet (a counter's first value, the baseline
	 * of its first interval); or CG_ETIMEDOUT, CG_ECRC, CG_EEXCEPTION,
	 * CG_EFRAME, CG_EIO; CG_ESTATE when state is NULL. */
	int (*poll)(void *state, cg_transport_t *t, cg_reading_t *r);
	/* Frees the state; accepts NULL. */
	void (*close)(void *state);
} cg_driver_t;

/* The compile-time table of drivers, NULL-terminated (drivers/registry.c). */
extern const cg_driver_t *const cg_drivers[];

/* The driver called name, or NULL. */
const cg_driver_t *cg_driver_find(const char *name);

#endif
