/* The reconnect schedule: when to try the broker again after an attempt or a
 * connection ended. Pure (no clock, no I/O), so that a fleet can be simulated. */
#ifndef CG_BACKOFF_H
#define CG_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

/*
 * An outage starts when an attempt or a connection ends while none was up. Its time is
 * cut into windows that double from min_s up to max_s: [0, min), [min, 3 min),
 * [3 min, 7 min), ... each window one attempt, at the same fraction (the phase, drawn
 * once per outage) of every window. Across a fleet the phases are uniform, so when the
 * broker comes back in window k, the gateways connect at N/len(k) per second for the
 * rest of that window and at half that rate in the next: the peak rate is at most
 * twice the mean over the whole return. Once the windows reach max_s, each gateway
 * tries once per max_s and the fleet's attempts are spread evenly.
 */
typedef struct cg_backoff {
	double min_s, max_s;
	uint64_t rng;       /* splitmix64 state */
	bool in_outage;     /* an outage started and no connection has been up since */
	int64_t start_ms;   /* when the outage started */
	double phase;       /* [0, 1): where in each window this outage's attempts fall */
	double win_start_s; /* the window of the next attempt, from start_ms */
	double win_len_s;
} cg_backoff_t;

/* A schedule for windows from min_s to max_s (0 < min_s <= max_s). The seed sets the
 * phases: gateways of a fleet must be given different seeds. */
void cg_backoff_init(cg_backoff_t *b, double min_s, double max_s, uint64_t seed);

/* A connection is up: the next end starts a new outage, with a new phase. */
void cg_backoff_reset(cg_backoff_t *b);

/* An attempt or a connection ended at now_ms: returns the time (same clock) of the
 * next attempt, never before now_ms. Windows whose attempt is already past (an
 * attempt that took longer than the rest of its window) are skipped. */
int64_t cg_backoff_next(cg_backoff_t *b, int64_t now_ms);

#endif
