/* Opening and closing a bus's transport: a libmodbus context or a serial fd. */
#ifndef CG_TRANSPORT_H
#define CG_TRANSPORT_H

#include "config.h"
#include "driver.h"

/* Opens the transport of bus bc into t (RTU: the serial port with its line
 * settings; TCP: a connection; serial: the UART in raw mode). CG_EIO when
 * the device or host cannot be reached now (the bus worker retries),
 * CG_ENOMEM. On failure t is closed. */
int cg_transport_open(const cg_bus_config_t *bc, cg_transport_t *t);

/* Closes t and marks it closed; safe on a closed transport. */
void cg_transport_close(cg_transport_t *t);

/* True while t is open. */
bool cg_transport_is_open(const cg_transport_t *t);

#endif
