/* citygate --scan: finds who answers on a Modbus line, at which line settings, and which
 * shipped profile fits each device; prints a config that passes --check. */
#ifndef CG_SCAN_H
#define CG_SCAN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cg_scan_opts {
	const char *target;         /* a serial device, or HOST:PORT for Modbus TCP */
	int unit_lo, unit_hi;       /* unit ids to probe, default 1-247 */
	const long *bauds;          /* line speeds to try (serial only) */
	size_t n_bauds;
	const char *const *framings; /* "8N1", "8E1", ... to try (serial only) */
	size_t n_framings;
	bool all_settings;               /* go on past the first setting where any unit answered */
	int timeout_ms;                  /* per probe */
	const char *const *profile_dirs; /* NULL-terminated, searched in order */
	size_t n_user_dirs;              /* the first ones, given with --profile-dir */
} cg_scan_opts_t;

/* Probes every unit id at one line setting after the other with one read
 * (function 03, register 0; an exception answer counts as present), and
 * stops after the first setting where any unit answered, since the devices
 * of an RS-485 line share one setting; with all_settings it tries every
 * setting, to find the odd device of a mixed line. It then reads each
 * shipped profile's points from every device found and ranks the profiles
 * whose points all answer: fewest values outside the profile's ranges, then
 * most tables read (coils, discrete inputs, holding, input registers), most
 * registers answered, the deepest address reached. Progress goes
 * to stderr, the config (buses, sensors) to stdout. It only ever sends read
 * requests. Stops early, printing what it found, when *stop is set (SIGINT).
 * Returns 0 when it found at least one device, 1 when none (or stopped),
 * 2 for a target it cannot open. */
int cg_scan_run(const cg_scan_opts_t *o, volatile sig_atomic_t *stop);

#endif
