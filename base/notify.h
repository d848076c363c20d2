/* The systemd notification protocol (sd_notify(3)), without libsystemd. */
#ifndef CG_NOTIFY_H
#define CG_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Sends one notification ("READY=1", "WATCHDOG=1\nSTATUS=...") as a datagram
 * to the socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
 * namespace). Does nothing, successfully, when the variable is not set (not
 * started by systemd). Returns 0 or CG_EIO. */
int cg_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether systemd's watchdog is on for this process: $WATCHDOG_USEC set,
 * and $WATCHDOG_PID unset or this process's pid; *usec is the period. */
bool cg_watchdog_enabled(uint64_t *usec);

#endif
