/* The driver interface: a const table of operations per sensor protocol. */
#ifndef CG_DRIVER_H
#define CG_DRIVER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/diag.h"
#include "base/keys.h"
#include "base/reading.h"
#include "drivers/transport.h"

/* What a driver may need besides its sensor's JSON object: where the config
 * file is (relative profile paths are resolved against its folder), the
 * profile folders to search, a NULL-terminated list, and which units the
 * payload format can carry. */
typedef struct cg_driver_env {
	const char *config_path;
	const char *const *profile_dirs;
	/* The type of the sensor's bus (a CG_BUS_* flag), 0 when not known
	 * (the bus is missing or invalid): what the driver can address on it. */
	cg_bus_type_t bus_type;
	/* When not NULL, whether the payload formats can carry a unit (every
	 * format: a config is not refused for changing its format): check()
	 * reports every unit the sensor would report that they cannot, naming
	 * the ones they can (units_hint), so that a config whose readings could
	 * not be published as valid payloads is refused up front. */
	bool (*unit_ok)(const char *unit);
	const char *units_hint;
} cg_driver_env_t;

/* A driver's operations. Each says which thread calls it: the main thread
 * or the bus's worker. Sensors of different buses are polled in parallel by
 * their workers, so a driver keeps everything per sensor in its state, never
 * in globals. */
/* A driver's parsed keys: its own options struct, opaque to the rest, so
 * that nothing else (a sensor's JSON) can be handed to open() by mistake. */
typedef struct cg_driver_options cg_driver_options_t;

typedef struct cg_driver {
	const char *name;
	/* The bus types this driver polls over (CG_BUS_* flags). */
	unsigned bus_types;
	/* The sensor keys this driver owns, a table (base/keys.h) ending with a
	 * NULL name; any key that is neither a common sensor key nor in it is
	 * an error. The core walks it (cg_driver_options()) into a zeroed
	 * options struct of options_size bytes, the keys' offsets into it. */
	const cg_key_t *keys;
	size_t options_size;
	/* The rules across this driver's keys, and what they name (a profile
	 * to load), on the options the walk filled; NULL when there are none.
	 * It runs after problems in the walk too, so that --check lists every
	 * problem: a key that was invalid holds its default, and
	 * cg_keys_usable(sensor, keys, name) tells. May add to options what
	 * open() will need (release() frees it). pointer is the sensor's JSON
	 * pointer ("/sensors/2"); problems go to diag with the config file's
	 * name (or a profile's file and pointer). Returns 0 or CG_EINVAL.
	 * Main thread, whenever a config is loaded (start, --check, a
	 * reload). */
	int (*check)(cg_driver_options_t *options, const cJSON *sensor, const char *pointer,
	             const cg_driver_env_t *env, cg_diag_t *diag);
	/* Allocates per-sensor state from options that cg_driver_options()
	 * accepted; the state may point into them (they outlive it). Does no
	 * I/O on the bus. Main thread, before the bus's worker starts (start,
	 * reload) or for --once; when it failed there, the bus's worker calls
	 * it again, with the same options, on the sensor's back-off until it
	 * succeeds. */
	int (*open)(const cg_driver_options_t *options, const cg_driver_env_t *env, void **state);
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
	/* Frees what check() added to options; NULL when it adds nothing. */
	void (*release)(cg_driver_options_t *options);
} cg_driver_t;

/* The compile-time table of drivers, NULL-terminated (drivers/registry.c). */
extern const cg_driver_t *const cg_drivers[];

/* The driver called name, or NULL. */
const cg_driver_t *cg_driver_find(const char *name);

/* Parses d's keys of sensor (at JSON pointer pointer) by its table, then
 * runs its check(). Every problem is one line in diag. Returns 0 with
 * *options, which open() takes and cg_driver_options_free() frees;
 * CG_EINVAL or CG_ENOMEM with *options NULL. */
int cg_driver_options(const cg_driver_t *d, const cJSON *sensor, const char *pointer,
                      const cg_driver_env_t *env, cg_diag_t *diag, cg_driver_options_t **options);

/* Frees options of d; accepts NULL for either. */
void cg_driver_options_free(const cg_driver_t *d, cg_driver_options_t *options);

/* The file name a driver's problem lines carry: the config's path, or "config". */
const char *cg_driver_env_file(const cg_driver_env_t *env);

#endif
