/* citygate-sim: one vendor-frame sensor (PMS5003, SDS011, A02YYUW) on its own pseudo-terminal. */
#ifndef SIM_SERIAL_H
#define SIM_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim_serial sim_serial_t;

/* Creates a serial endpoint whose pty will be reachable as link (a symlink,
 * made when it is opened), or by the pty's own name when link is NULL. link
 * is borrowed and must outlive the endpoint. Returns 0 or CG_ENOMEM. */
int sim_serial_new(const char *link, sim_serial_t **out);

/*
 * Sets the device from "TYPE[:OPTION[,OPTION]...]": TYPE is pms5003, sds011
 * or a02yyuw; options are noise=P and badsum=P (percent of frames preceded
 * by noise bytes, or sent with a wrong checksum), silent, after=S and
 * until=S (the window in which those faults apply, seconds since ready),
 * reboot=S (pms5003, sds011: power cycles every S seconds, coming back in
 * the streaming mode) and period=S (a02yyuw: a car arrives or leaves every
 * S seconds, default 30). Returns 0, or CG_EINVAL with the reason in err.
 */
int sim_serial_set_device(sim_serial_t *s, const char *spec, char *err, size_t err_size);

/* True once a device has been set. */
bool sim_serial_has_device(const sim_serial_t *s);

/* True when type (a driver's name) is a device the simulator plays, so
 * that --device type works. */
bool sim_serial_knows(const char *type);

/* Opens the pty in raw mode and makes the symlink with make_link(link,
 * target) (the simulator's own, which replaces only an older symlink).
 * Returns 0 or a CG_E* code, having logged why. */
int sim_serial_open(sim_serial_t *s, int (*make_link)(const char *link, const char *target));

/* The name clients open (the link, else the pty) and the pty itself. */
const char *sim_serial_name(const sim_serial_t *s);
const char *sim_serial_pts(const sim_serial_t *s);

/* Starts the device's thread: it answers commands and streams frames until
 * wake_fd becomes readable. start_ms is the monotonic time the simulator
 * became ready; seed makes its values and faults reproducible. Returns 0 or
 * CG_EIO. */
int sim_serial_start(sim_serial_t *s, int wake_fd, int64_t start_ms, uint64_t seed);

/* Waits for a started thread to end and logs what the device did. */
void sim_serial_join(sim_serial_t *s);

/* Closes the pty, removes the symlink if it still points at it, and frees
 * s; accepts NULL. */
void sim_serial_free(sim_serial_t *s);

#endif
