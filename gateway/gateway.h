/* The daemon's lifecycle and main loop: readings in, outbox, publisher out. */
#ifndef CG_GATEWAY_H
#define CG_GATEWAY_H

#include <signal.h>

#include "gateway/config.h"

/* Flags that main's signal handlers set; the loop reads them. */
typedef struct cg_signals {
	volatile sig_atomic_t stop;
	volatile sig_atomic_t reload;
} cg_signals_t;

typedef struct cg_gateway cg_gateway_t;

/* Creates a gateway on cfg, which it takes over (freed with the gateway, or
 * on failure): opens the outbox and creates the MQTT client. A negative
 * CG_E* code when it cannot (the reason is logged). */
int cg_gateway_new(cg_config_t *cfg, cg_gateway_t **out);

/* Runs until sig->stop is set: starts one worker per bus, moves readings
 * through the outbox to the broker, re-reads the config when sig->reload is
 * set, then stops cleanly (stop polling, commit, publish what can go within
 * a grace period, publish the offline status). */
int cg_gateway_run(cg_gateway_t *g, cg_signals_t *sig);

/* Hands a reading to the gateway as a bus worker does; thread safe. format
 * is a cg_format_t or -1 for the configured one. For benchmarks and tools
 * that produce readings themselves. */
void cg_gateway_submit(cg_gateway_t *g, const cg_reading_t *r, int format);

/* Frees the gateway and its config; accepts NULL. */
void cg_gateway_free(cg_gateway_t *g);

#endif
