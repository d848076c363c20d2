/* The daemon's lifecycle and main loop: readings in, outbox, publisher out. */
#ifndef CG_GATEWAY_H
#define CG_GATEWAY_H

#include <signal.h>

#include "config.h"

/* Flags that main's signal handlers set; the loop reads them. */
typedef struct cg_signals {
	volatile sig_atomic_t stop;
	volatile sig_atomic_t reload;
} cg_signals_t;

/* Runs the gateway on cfg until sig->stop is set: starts the outbox, the
 * publisher and one worker per bus, moves readings through them, then stops
 * cleanly (stop polling, publish what can go within a grace period, commit,
 * publish the offline status). Returns 0, or a negative CG_E* code when it
 * could not start (the reason is logged). */
int cg_gateway_run(const cg_config_t *cfg, cg_signals_t *sig);

#endif
