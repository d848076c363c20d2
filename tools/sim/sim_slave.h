/* citygate-sim: one simulated Modbus slave (register tables, changing values, faults). */
#ifndef SIM_SLAVE_H
#define SIM_SLAVE_H

#include <modbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/modbus/profile.h"

/* At most this many force= items per slave. */
#define SIM_FORCE_MAX 8

/* A point's raw value held at value while the fault window is open. */
typedef struct sim_force {
	char point[CG_NAME_MAX]; /* the profile point's name */
	double value;            /* its raw value, before scale and offset */
} sim_force_t;

/* The faults of one slave, parsed from "silent,exception=4,crc,slow=MS,
 * flaky=P,after=S,until=S,restart=S,force=POINT:VALUE". A request is faulted when
 * the time since start lies in [after_s, until_s) and a draw with probability
 * flaky_pct percent succeeds; a faulted request then gets every fault that is
 * set. A forced point holds its value throughout the window, whatever the
 * draw: it is the device's state, not a request's fate. */
typedef struct sim_fault {
	bool silent;      /* never answers */
	int exception;    /* answers with this exception code, 0 for none */
	bool crc;         /* corrupts the answer: bad CRC on RTU, bad byte count on TCP */
	int slow_ms;      /* answers this much later, 0 for at once */
	double flaky_pct; /* probability in percent that a request is faulted */
	double after_s;   /* window start, seconds since the simulator was ready */
	double until_s;   /* window end; INFINITY for none */
	double restart_s; /* the device restarts every this many seconds: its
			     counters start again from 0; 0 for never */
	sim_force_t force[SIM_FORCE_MAX];
	size_t n_force;
} sim_fault_t;

/* What to do with one request, as decided by sim_slave_decide(). */
typedef struct sim_action {
	bool silent;
	int exception; /* 0 for a normal answer */
	bool corrupt;
	int delay_ms;
} sim_action_t;

/* Counters for the log line written on exit. */
typedef struct sim_stats {
	uint64_t requests;   /* requests addressed to this slave */
	uint64_t answered;   /* answers written, corrupted ones included */
	uint64_t silenced;   /* requests left unanswered by the silent fault */
	uint64_t exceptions; /* exception answers from the exception fault */
	uint64_t corrupted;  /* answers corrupted by the crc fault */
	uint64_t delayed;    /* answers delayed by the slow fault */
} sim_stats_t;

typedef struct sim_slave sim_slave_t;

/* Parses a fault list (the part after the second colon of --slave) into f.
 * An empty or NULL spec gives no fault. Returns 0, or CG_EINVAL with a reason
 * written to err. */
int sim_fault_parse(const char *spec, sim_fault_t *f, char *err, size_t err_size);

/* Checks the force= items of f against profile: each names a point of it,
 * with a value its registers can hold. Returns 0, or CG_EINVAL with a reason
 * written to err. */
int sim_fault_check(const sim_fault_t *f, const cg_profile_t *profile, char *err, size_t err_size);

/* Builds a slave with unit id unit from profile, whose ownership passes to
 * the slave on success (the caller keeps it on failure). fault may be NULL.
 * seed makes its values reproducible. Returns 0, CG_ENOMEM, or CG_EINVAL
 * when a point does not fit in a Modbus table or a force= item does not fit
 * the profile (sim_fault_check() says why). */
int sim_slave_new(int unit, cg_profile_t *profile, const sim_fault_t *fault, uint64_t seed,
                  sim_slave_t **out);

/* Frees the slave, its profile and its tables; accepts NULL. */
void sim_slave_free(sim_slave_t *s);

int sim_slave_unit(const sim_slave_t *s);
const char *sim_slave_profile_name(const sim_slave_t *s);
/* The register tables, for modbus_reply(); owned by the slave. */
modbus_mapping_t *sim_slave_mapping(sim_slave_t *s);
sim_stats_t *sim_slave_stats(sim_slave_t *s);

/* Moves every point's value to time t (seconds since start) and writes it
 * into the tables; a forced point gets its forced value while t is within
 * the fault window. Call it about once a second. */
void sim_slave_update(sim_slave_t *s, double t);

/* Decides, for one request arriving at time t, which faults apply, and counts
 * the request. A request that is not a read (FC 01-04) gets exception 01 when
 * no fault answers it otherwise: the simulated sensors are read-only. */
sim_action_t sim_slave_decide(sim_slave_t *s, double t, uint8_t function);

/* Builds the response PDU (function code and data) to the request PDU req of
 * len bytes: the exception answer when exception is non-zero, else the read
 * from the tables, or the matching exception (illegal function, address or
 * value) as libmodbus's modbus_reply() would give. rsp must hold
 * MODBUS_MAX_PDU_LENGTH bytes. Returns the response's length. */
size_t sim_slave_reply_pdu(const sim_slave_t *s, const uint8_t *req, size_t len, int exception,
                           uint8_t *rsp);

/* True for the read function codes 01-04, the only ones the slaves serve. */
bool sim_function_is_read(uint8_t function);

/* The Modbus RTU CRC-16 of n bytes (init 0xFFFF, reflected polynomial 0xA001);
 * it goes on the wire low byte first. */
uint16_t sim_crc16(const uint8_t *p, size_t n);

/* One step of a splitmix64 generator: the per-slave random source. */
uint64_t sim_random_next(uint64_t *state);

#endif
