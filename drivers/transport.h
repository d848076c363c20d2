/* A bus's transport: its line settings, the open libmodbus context or serial fd,
 * the pacing of requests on it, and the one way serial drivers make a request. */
#ifndef CG_TRANSPORT_H
#define CG_TRANSPORT_H

#include <modbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/serial/serial_frame.h"

/* Bus types, as flags so that a driver can name every type it works on. */
typedef enum cg_bus_type {
	CG_BUS_MODBUS_RTU = 1,
	CG_BUS_MODBUS_TCP = 2,
	CG_BUS_SERIAL = 4,
	/* RTU frames (CRC, no MBAP header) over TCP to an Ethernet serial
	 * server's port: one request at a time, as on the line behind it. */
	CG_BUS_MODBUS_RTU_TCP = 8,
} cg_bus_type_t;

/* The open transport of one bus, owned by its bus worker and lent to a
 * driver's poll(). Exactly one of mb (Modbus buses) and fd (serial) is set. */
typedef struct cg_transport {
	cg_bus_type_t type;
	modbus_t *mb;
	int fd;
	int timeout_ms;       /* per request */
	int gap_ms;           /* silence kept between two requests on this bus */
	int64_t last_io_ms;   /* monotonic time the last request ended */
	uint64_t requests;    /* requests sent on this bus, for health */
	uint64_t noise_bytes; /* serial: bytes skipped looking for a frame (cg_transport_request) */
	uint64_t bad_frames;  /* serial: whole frames that failed their checksum (the same) */
	/* What the last failed request said, for the log and --once: the
	 * request and the device's or library's words ("unit 1 holding 500+1:
	 * Illegal data address (exception 2)"). A driver sets it when a
	 * request fails; cg_poll_sensor() clears it before each poll. */
	char why[160];
} cg_transport_t;

/* A bus's line settings: what opening its transport needs. */
typedef struct cg_bus_line {
	cg_bus_type_t type;
	char *device;   /* modbus-rtu, serial */
	int baud;       /* default 9600 */
	char parity;    /* 'N', 'E', 'O'; default 'N' */
	int data_bits;  /* default 8 */
	int stop_bits;  /* default 1 */
	bool rs485;     /* set MODBUS_RTU_RS485 mode; default false */
	char *host;     /* modbus-tcp, modbus-rtu-tcp */
	int port;       /* default 502 */
	int timeout_ms; /* per request, default 500 */
	int gap_ms;     /* silence between requests, default 0 (RTU keeps 3.5 chars anyway) */
} cg_bus_line_t;

/* Opens the transport of bus bus_id (named in log lines) with line into t
 * (RTU: the serial port with its line settings; TCP: a connection; serial:
 * the UART in raw mode). CG_EIO when
 * the device or host cannot be reached now (the bus worker retries),
 * CG_ENOMEM. On failure t is closed. */
int cg_transport_open(const char *bus_id, const cg_bus_line_t *line, cg_transport_t *t);

/* A libmodbus TCP context for host (a name, an IPv4 or an IPv6 address) and
 * port, not yet connected; NULL with errno set. */
modbus_t *cg_modbus_new_tcp(const char *host, int port);

/* What the line opens, for log lines: the TCP host or the device path. */
const char *cg_bus_line_name(const cg_bus_line_t *line);

/* Drops whatever the device sent that nobody asked for any more (a late
 * answer after a timeout), so that it cannot pass for the next answer:
 * libmodbus's flush empties a serial port or a Modbus TCP socket, but not
 * the socket of RTU over TCP, which this reads dry. CG_EIO when a TCP peer
 * has closed the connection, else CG_OK. */
int cg_transport_flush(cg_transport_t *t);

/* Closes t and marks it closed; safe on a closed transport. */
void cg_transport_close(cg_transport_t *t);

/* True while t is open. */
bool cg_transport_is_open(const cg_transport_t *t);

/* Waits until the bus's gap since the last request has passed and counts a
 * request; drivers call it before every request they send. */
void cg_transport_pace(cg_transport_t *t);
/* Records that a request just ended, for the next gap. */
void cg_transport_done(cg_transport_t *t);

/*
 * One request on a serial bus, made the way every serial-frame driver makes
 * it: waits for the bus's gap and counts the request (cg_transport_pace),
 * discards stale input (a late answer to an earlier request must not be
 * taken for this one's), writes cmd[0, len) (nothing when len is 0: a
 * sensor that streams on its own), then, unless parse is NULL (a command
 * whose answer is not read), reads the first good frame within the bus's
 * timeout_ms into *frame (serial/serial_frame.h), and records the request's
 * end (cg_transport_done). The noise bytes and bad frames the read skipped
 * are added to t's counters on every path, a failed read too, and logged at
 * debug level as "DRIVER SENSOR: skipped ...". Returns 0, or CG_EINVAL
 * without a serial fd, or the error of the flush, write or read:
 * CG_ETIMEDOUT, CG_ECRC, CG_EFRAME, CG_EIO.
 */
int cg_transport_request(cg_transport_t *t, const uint8_t *cmd, size_t len, cg_frame_parse_fn parse,
                         void *frame, const char *driver, const char *sensor);

#endif
