/* Sensor availability: each sensor's online / offline / degraded state, decided by the
 * main loop from the outcomes of polls and a timer, and published retained on its state
 * topic (docs/topics.md, "Sensor state"). Owned and called by the main loop only. */
#ifndef CG_AVAIL_H
#define CG_AVAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/bus.h"
#include "gateway/config.h"
#include "uplink/encode.h"
#include "uplink/publisher.h"

typedef enum cg_avail_state {
	CG_AVAIL_UNKNOWN, /* not polled yet and not silent for long: nothing published */
	CG_AVAIL_ONLINE,
	CG_AVAIL_DEGRADED,
	CG_AVAIL_OFFLINE,
} cg_avail_state_t;

typedef struct cg_avail cg_avail_t;

/* How long a sensor may go without answering before it is offline: three of its
 * intervals and one request timeout of its bus, so that a poll late by a timeout, or
 * two failed polls, is not yet an outage. */
double cg_avail_deadline_s(const cg_config_t *cfg, const cg_sensor_config_t *sc);

/* Builds the table of cfg's sensors, all unknown and watched from now_mono_ms. With
 * old (the table of the config a reload replaces), a sensor that remains keeps its
 * state and the time it last answered; one that is gone, or whose topic changed, has
 * its old topic cleared (an empty retained message) by the next cg_avail_publish().
 * old is left as it was: the caller frees it. CG_ENOMEM, or CG_ERANGE when a topic
 * does not fit. */
int cg_avail_new(const cg_config_t *cfg, const cg_avail_t *old, int64_t now_mono_ms,
                 cg_avail_t **out);

/* Takes one poll's outcome: an answer makes the sensor online (a reading of quality
 * ok, or none yet) or degraded (any other quality, named in the reason); a failure
 * changes nothing but the error an offline reason names. Outcomes of sensors not in
 * the table (a reload removed them) are ignored. now_wall_ms stamps a change. */
void cg_avail_outcome(cg_avail_t *a, const cg_poll_outcome_t *o, int64_t now_mono_ms,
                      int64_t now_wall_ms);

/* The timer: a sensor that has not answered for its deadline (cg_avail_deadline_s)
 * goes offline, whether its polls failed or none finished (a stuck bus). The main loop
 * calls it every turn (100 ms apart at most, half of store.batch_ms while rows wait for
 * their commit), which is the timer's resolution. */
void cg_avail_tick(cg_avail_t *a, int64_t now_mono_ms, int64_t now_wall_ms);

/* A new connection: every known state goes again, so that the broker's retained
 * messages hold them all whatever happened while the link was down. */
void cg_avail_resend_all(cg_avail_t *a);

/* Publishes what changed since the last call (only each sensor's latest state) and the
 * clears of removed sensors, retained at QoS 1, in the sensor's format (NGSI-LD: a
 * Device entity; native and SenML: the native object). What the publisher does not
 * take now (not connected, no free slot) stays due for the next call. */
void cg_avail_publish(cg_avail_t *a, cg_publisher_t *pub, const cg_encode_ctx_t *ectx);

/* One sensor's state as it would be published; CG_AVAIL_UNKNOWN with *msg untouched
 * when the sensor is unknown or not in the table. msg's strings point into a. */
cg_avail_state_t cg_avail_get(const cg_avail_t *a, const char *sensor, cg_state_msg_t *msg);

/* Messages waiting for cg_avail_publish(): states and clears. */
size_t cg_avail_due(const cg_avail_t *a);

/* Accepts NULL. */
void cg_avail_free(cg_avail_t *a);

#endif
