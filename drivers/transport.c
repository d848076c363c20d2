/* A bus's transport: opening and closing its line, pacing, and serial requests. */
#include "drivers/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"

static speed_t baud_speed(int baud)
{
	switch (baud) {
	case 1200: return B1200;
	case 2400: return B2400;
	case 4800: return B4800;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 115200: return B115200;
	default: return B9600;
	}
}

/* Opens a plain UART in raw mode with the bus's line settings; reads block
 * for at most a tenth of a second so a driver can keep its own deadline. */
static int open_serial(const cg_bus_line_t *bc, cg_transport_t *t)
{
	struct termios tio;
	int fd = open(bc->device, O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return CG_EIO;
	if (tcgetattr(fd, &tio) < 0)
		goto close_fd;
	cfmakeraw(&tio);
	cfsetispeed(&tio, baud_speed(bc->baud));
	cfsetospeed(&tio, baud_speed(bc->baud));
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB);
	tio.c_cflag |= (bc->data_bits == 7 ? CS7 : CS8) | CLOCAL | CREAD;
	if (bc->parity == 'E')
		tio.c_cflag |= PARENB;
	else if (bc->parity == 'O')
		tio.c_cflag |= PARENB | PARODD;
	if (bc->stop_bits == 2)
		tio.c_cflag |= CSTOPB;
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 1;
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		goto close_fd;
	tcflush(fd, TCIOFLUSH);
	t->fd = fd;
	return CG_OK;

close_fd:
	close(fd);
	return CG_EIO;
}

modbus_t *cg_modbus_new_tcp(const char *host, int port)
{
	char service[8];

	snprintf(service, sizeof(service), "%d", port);
	return modbus_new_tcp_pi(host, service);
}

static void set_timeout(modbus_t *mb, int timeout_ms)
{
	modbus_set_response_timeout(mb, (uint32_t)(timeout_ms / 1000),
	                            (uint32_t)(timeout_ms % 1000) * 1000);
}

/* RTU over TCP with libmodbus's own RTU framing (CRC, the response lengths
 * of each function) on a socket: a Modbus TCP context makes the connection,
 * then an RTU context takes its socket. The RTU context's line settings are
 * never used: the serial server keeps those of its RS-485 port. */
static modbus_t *connect_rtu_over_tcp(const cg_bus_line_t *bc)
{
	modbus_t *tcp = cg_modbus_new_tcp(bc->host, bc->port), *rtu = NULL;

	if (!tcp)
		return NULL;
	set_timeout(tcp, bc->timeout_ms);
	if (modbus_connect(tcp) == 0 && (rtu = modbus_new_rtu(bc->host, 9600, 'N', 8, 1))) {
		modbus_set_socket(rtu, modbus_get_socket(tcp));
		modbus_set_socket(tcp, -1);
	}
	modbus_close(tcp);
	modbus_free(tcp);
	return rtu;
}

/* Creates and connects a libmodbus context for an RTU, TCP or RTU-over-TCP bus. */
static int open_modbus(const char *bus_id, const cg_bus_line_t *bc, cg_transport_t *t)
{
	modbus_t *mb;

	if (bc->type == CG_BUS_MODBUS_RTU_TCP) {
		if (!(mb = connect_rtu_over_tcp(bc)))
			return CG_EIO;
		set_timeout(mb, bc->timeout_ms);
		t->mb = mb;
		return CG_OK;
	}
	if (bc->type == CG_BUS_MODBUS_RTU)
		mb = modbus_new_rtu(bc->device, bc->baud, bc->parity, bc->data_bits, bc->stop_bits);
	else
		mb = cg_modbus_new_tcp(bc->host, bc->port);
	if (!mb)
		return errno == ENOMEM ? CG_ENOMEM : CG_EIO;
	set_timeout(mb, bc->timeout_ms);
	/* A byte timeout as long as the response timeout would let a slow
	 * device hold the bus twice; keep libmodbus's default between bytes. */
	if (modbus_connect(mb) < 0) {
		modbus_free(mb);
		return CG_EIO;
	}
	if (bc->type == CG_BUS_MODBUS_RTU && bc->rs485 &&
	    modbus_rtu_set_serial_mode(mb, MODBUS_RTU_RS485) < 0)
		cg_log(CG_LOG_WARNING, "bus %s: cannot switch %s to RS-485 mode: %s", bus_id,
		       bc->device, modbus_strerror(errno));
	t->mb = mb;
	return CG_OK;
}

int cg_transport_open(const char *bus_id, const cg_bus_line_t *bc, cg_transport_t *t)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->type = bc->type;
	t->timeout_ms = bc->timeout_ms;
	t->gap_ms = bc->gap_ms;
	if (bc->type == CG_BUS_SERIAL)
		return open_serial(bc, t);
	return open_modbus(bus_id, bc, t);
}

const char *cg_bus_line_name(const cg_bus_line_t *line)
{
	return line->type & (CG_BUS_MODBUS_TCP | CG_BUS_MODBUS_RTU_TCP) ? line->host : line->device;
}

int cg_transport_flush(cg_transport_t *t)
{
	char junk[256];
	int fd;

	if (!t->mb)
		return CG_OK;
	fd = modbus_get_socket(t->mb);
	if (t->type != CG_BUS_MODBUS_RTU_TCP)
		modbus_flush(t->mb);
	else
		while (fd >= 0 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
	/* A TCP peer that closed stays readable (end of file) for ever. */
	if (t->type != CG_BUS_MODBUS_RTU && fd >= 0 && recv(fd, junk, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		return CG_EIO;
	return CG_OK;
}

void cg_transport_close(cg_transport_t *t)
{
	if (t->mb && t->type == CG_BUS_MODBUS_RTU_TCP) {
		/* The RTU backend would restore terminal settings on a socket. */
		close(modbus_get_socket(t->mb));
		modbus_set_socket(t->mb, -1);
	}
	if (t->mb) {
		modbus_close(t->mb);
		modbus_free(t->mb);
		t->mb = NULL;
	}
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
}

bool cg_transport_is_open(const cg_transport_t *t)
{
	return t->mb != NULL || t->fd >= 0;
}

void cg_transport_pace(cg_transport_t *t)
{
	if (t->last_io_ms && t->gap_ms > 0) {
		int64_t wait = t->last_io_ms + t->gap_ms - cg_mono_ms();
		if (wait > 0)
			cg_sleep_ms(wait);
	}
	t->requests++;
}

void cg_transport_done(cg_transport_t *t)
{
	t->last_io_ms = cg_mono_ms();
}

int cg_transport_request(cg_transport_t *t, const uint8_t *cmd, size_t len, cg_frame_parse_fn parse,
                         void *frame, const char *driver, const char *sensor)
{
	cg_frame_counts_t counts = {0};
	int rc;

	if (t->fd < 0)
		return CG_EINVAL;
	cg_transport_pace(t);
	rc = cg_serial_flush(t->fd);
	if (rc == 0 && len > 0)
		rc = cg_serial_write(t->fd, cmd, len, t->timeout_ms);
	if (rc == 0 && parse)
		rc = cg_serial_read_frame(t->fd, t->timeout_ms, parse, frame, &counts);
	cg_transport_done(t);
	t->noise_bytes += counts.dropped_bytes;
	t->bad_frames += counts.bad_checksums;
	if (counts.dropped_bytes || counts.bad_checksums)
		cg_log(CG_LOG_DEBUG, "%s %s: skipped %zu bytes, %zu bad checksums: %s", driver,
		       sensor, counts.dropped_bytes, counts.bad_checksums, cg_strerror(rc));
	return rc;
}
