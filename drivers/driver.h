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

/* A driver's operations. Each says which thread calls it: the main thread
 * or the bus's worker. Sensors of different buses are polled in parallel by
 * their workers, so a driver keeps everything per sensor in its state, never
 * in globals. */
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
	 * CG_EINVAL. Main thread, whenever a config is loaded (start, --check,
	 * a reload). */
	int (*check)(const cJSON *sensor, const char *pointer, const cg_driver_env_t *env,
		     cg_diag_t *diag);
	/* Allocates per-sensor state from a sensor object that check() accepted.
	 * Does no I/O on the bus. Main thread, before the bus's worker starts
	 * (start, reload) or for --once; when it failed there, the bus's worker
	 * calls it again on the sensor's back-off until it succeeds. */
	int (*open)(const cJSON *sensor, const cg_driver_env_t *env, void **state);
	/* Polls the sensor once over t and fills r's kind, values and quality
	 * (the enums of base/reading.h; r was initialised and carries the
	 * sensor id; the caller stamps the time). Values of one lane of a
	 * multi-lane traffic sensor are added after cg_reading_set_lane(); the
	 * caller splits them into one reading per lane. A serial driver makes
	 * its requests with cg_transport_request(). Returns 0; CG_EAGAIN when
	 * the sensor answered but there is nothing to report yet (a counter's
	 * first value, the baseline of its first interval); or CG_ETIMEDOUT,
	 * CG_ECRC, CG_EEXCEPTION, CG_EFRAME, CG_EIO; CG_ESTATE when state is
	 * NULL. The bus's worker thread, which owns t, one poll at a time on
	 * each bus (gateway/poll.c); the main thread for --once. */
	int (*poll)(void *state, cg_transport_t *t, cg_reading_t *r);
	/* Frees the state; accepts NULL. Main thread, once the bus's worker has
	 * been joined (reload, shutdown) or after --once. */
	void (*close)(void *state);
} cg_driver_t;

/* The compile-time table of drivers, NULL-terminated (drivers/registry.c). */
extern const cg_driver_t *const cg_drivers[];

/* The driver called name, or NULL. */
const cg_driver_t *cg_driver_find(const char *name);

#endif
