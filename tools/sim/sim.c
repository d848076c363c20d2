/* citygate-sim: simulated Modbus RTU (pseudo-terminal) and TCP (loopback) sensors. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "base/build_config.h"
#include "base/clock.h"
#include "base/diag.h"
#include "base/error.h"
#include "base/log.h"
#include "tools/sim/sim_serial.h"
#include "tools/sim/sim_slave.h"

#define SIM_TICK_MS     1000 /* values move about once a second */
#define SIM_MAX_CLIENTS 16   /* TCP connections served at once per endpoint */
#define SIM_MAX_PENDING 64   /* delayed answers waiting per endpoint */
#define SIM_RX_SIZE     512  /* RTU receive buffer: room for two longest frames */
#define SIM_RTU_MIN     4    /* shortest RTU frame: unit, function, CRC */

/* Exit codes: usage errors are 2 as for citygate; a set-up failure is 1. */
enum { SIM_EXIT_OK = 0, SIM_EXIT_FAIL = 1, SIM_EXIT_USAGE = 2 };

/* The only global: set by the signal handler, read by the main thread. */
static volatile sig_atomic_t sim_stop;

/* SIM_RTU_TCP: RTU frames (unit, PDU, CRC) over a TCP stream, as an Ethernet
 * serial server passes them between its RS-485 port and a client. */
typedef enum sim_kind { SIM_RTU, SIM_TCP, SIM_RTU_TCP } sim_kind_t;

/* An answer waiting for its time: on RTU the finished frame, on TCP either
 * the finished bytes (raw) or the query for libmodbus to answer. */
typedef struct sim_pending {
	int fd;
	sim_slave_t *slave;
	sim_action_t action;
	bool raw;
	uint8_t data[MODBUS_MAX_ADU_LENGTH];
	size_t len;
	int64_t due_ms;
} sim_pending_t;

/* One RTU line or TCP endpoint and its slaves, served by one thread. */
typedef struct sim_endpoint {
	sim_kind_t kind;
	char name[PATH_MAX + 16]; /* for log lines */
	const char **specs;       /* --slave arguments, until the slaves are built */
	size_t n_specs;
	sim_slave_t *slaves[256]; /* by unit id */
	int64_t start_ms;         /* monotonic time the simulator became ready */
	int wake_fd;              /* readable when the simulator stops */
	pthread_t thread;
	bool running;
	sim_pending_t pending[SIM_MAX_PENDING];
	size_t n_pending;
	uint64_t dropped; /* answers lost to a full queue or line */

	/* RTU */
	const char *link; /* the symlink asked for, or NULL */
	bool link_made;
	char pts[64]; /* the pty's slave side, which clients open */
	int master, slave_fd;
	int inotify_fd; /* tells when a client closes the pty, or -1 */
	long baud;      /* 0: no pacing, and any line speed is understood */
	char framing[4]; /* "8E1": data bits, parity, stop bits; "" with baud 0 */
	uint64_t misframed; /* bytes sent at another speed or framing than the line's */
	int gap_ms;     /* silence that ends a frame */
	uint8_t rx[SIM_RX_SIZE];
	size_t rx_len;
	int64_t rx_last_ms;
	uint64_t garbage; /* bytes dropped while resynchronising */

	/* TCP, and RTU over TCP (one client at a time, like a serial server's port) */
	int rtu_client; /* RTU over TCP: the connected client, or -1 */
	int port;
	modbus_t *ctx;
	int listen_fd;
	int clients[SIM_MAX_CLIENTS];
	size_t n_clients;
} sim_endpoint_t;

typedef struct sim {
	const char **dirs; /* NULL-terminated profile folders */
	size_t n_dirs;
	uint64_t seed;
	int status_fd;
	sim_endpoint_t **eps;
	size_t n_eps;
	sim_serial_t **serials; /* --serial endpoints, each with its own device */
	size_t n_serials;
} sim_t;

static void sim_on_signal(int sig)
{
	(void)sig;
	sim_stop = 1;
}

static void sim_usage(void)
{
	cg_err("usage: citygate-sim [--profile-dir DIR]... [--seed N] [--status-fd FD] [-v]\n"
	       "                    ENDPOINT [--slave UNIT:PROFILE[:FAULT[,FAULT]...]]... ...\n"
	       "endpoints:\n"
	       "  --rtu [LINK] [--baud B [--framing DPS]]\n"
	       "                           Modbus RTU on a new pseudo-terminal; LINK becomes a\n"
	       "                           symlink to it; --baud runs the line at B baud\n"
	       "                           (answers paced) and framing DPS (8N1 unless given,\n"
	       "                           e.g. 8E1): a request sent at another speed or\n"
	       "                           stop bits is garbage to the slaves, as on a real\n"
	       "                           line (a pty cannot show parity or data bits)\n"
	       "  --tcp PORT               Modbus TCP on 127.0.0.1:PORT (0 picks a free port)\n"
	       "  --rtu-tcp PORT           Modbus RTU frames over TCP on 127.0.0.1:PORT, as an\n"
	       "                           Ethernet serial server carries them (one client)\n"
	       "  --serial [LINK] --device TYPE[:OPTION[,OPTION]...]\n"
	       "                           a vendor-frame sensor on a new pseudo-terminal:\n"
	       "                           pms5003, sds011 or a02yyuw; options noise=P badsum=P\n"
	       "                           silent after=S until=S, reboot=S (pms5003, sds011),\n"
	       "                           period=S (a02yyuw)\n"
	       "  --slave UNIT:PROFILE...  a slave on the endpoint before it; PROFILE is a name\n"
	       "                           looked up in the profile folders, or a .json path\n"
	       "faults (each may be combined):\n"
	       "  silent  exception[=N]  crc  slow=MS  flaky=P  after=S  until=S\n"
	       "  restart=S (counters start again from 0 every S seconds)\n"
	       "  force=POINT:VALUE (the point's raw value, e.g. 0x4, within after/until)\n"
	       "prints \"rtu LINK_OR_PTS PTS\", \"serial LINK_OR_PTS PTS\" or\n"
	       "\"tcp 127.0.0.1 PORT\" (\"rtu-tcp ...\") per endpoint, then \"ready\"; runs until "
	       "SIGTERM\n"
	       "or SIGINT.");
}

/* Writes one line of status output: to stdout through the log module, or to
 * the descriptor given with --status-fd. */
static void sim_status(const sim_t *sim, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sim_status(const sim_t *sim, const char *fmt, ...)
{
	char line[PATH_MAX + 128];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (sim->status_fd == STDOUT_FILENO) {
		cg_out(line);
		return;
	}
	len = strlen(line);
	line[len++] = '\n';
	for (size_t off = 0; off < len;) {
		ssize_t n = write(sim->status_fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cg_log(CG_LOG_ERR, "sim: cannot write status to fd %d: %s", sim->status_fd,
			       strerror(errno));
			return;
		}
		off += (size_t)n;
	}
}

/* Parses a decimal integer in [lo, hi]. */
static bool sim_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (!s || !s[0])
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static sim_endpoint_t *sim_endpoint_new(sim_t *sim, sim_kind_t kind)
{
	sim_endpoint_t *ep = calloc(1, sizeof(*ep));
	sim_endpoint_t **eps;

	if (!ep)
		return NULL;
	eps = realloc(sim->eps, (sim->n_eps + 1) * sizeof(*eps));
	if (!eps) {
		free(ep);
		return NULL;
	}
	sim->eps = eps;
	sim->eps[sim->n_eps++] = ep;
	ep->kind = kind;
	ep->master = ep->slave_fd = ep->listen_fd = ep->inotify_fd = ep->rtu_client = -1;
	ep->wake_fd = -1;
	return ep;
}

/* Parses the command line into sim. Returns 0, SIM_EXIT_USAGE after telling
 * the user what is wrong, or -1 when --help or --version was answered. */
static int sim_parse_args(sim_t *sim, int argc, char **argv)
{
	sim_endpoint_t *ep = NULL;
	sim_serial_t *ser = NULL;
	const char **dirs;
	long v;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *arg = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			sim_usage();
			return -1;
		} else if (strcmp(opt, "--version") == 0) {
			cg_out("citygate-sim " CG_VERSION);
			return -1;
		} else if (strcmp(opt, "-v") == 0 || strcmp(opt, "--verbose") == 0) {
			cg_log_set_level(CG_LOG_DEBUG);
		} else if (strcmp(opt, "--profile-dir") == 0 && arg) {
			dirs = realloc(sim->dirs, (sim->n_dirs + 2) * sizeof(*dirs));
			if (!dirs)
				goto nomem;
			sim->dirs = dirs;
			sim->dirs[sim->n_dirs++] = arg;
			sim->dirs[sim->n_dirs] = NULL;
			i++;
		} else if (strcmp(opt, "--seed") == 0 && arg) {
			char *end;

			errno = 0;
			sim->seed = strtoull(arg, &end, 0);
			if (errno || *end || !arg[0] || arg[0] == '-') {
				cg_err("citygate-sim: --seed: \"%s\" is not a number", arg);
				return SIM_EXIT_USAGE;
			}
			i++;
		} else if (strcmp(opt, "--status-fd") == 0 && arg) {
			if (!sim_parse_long(arg, 0, INT_MAX, &v) || fcntl((int)v, F_GETFD) < 0) {
				cg_err(
				    "citygate-sim: --status-fd: \"%s\" is not an open descriptor",
				    arg);
				return SIM_EXIT_USAGE;
			}
			sim->status_fd = (int)v;
			i++;
		} else if (strcmp(opt, "--rtu") == 0 || strncmp(opt, "--rtu=", 6) == 0) {
			ep = sim_endpoint_new(sim, SIM_RTU);
			if (!ep)
				goto nomem;
			ser = NULL;
			if (opt[5] == '=')
				ep->link = opt + 6;
			else if (arg && arg[0] != '-')
				ep->link = argv[++i];
			if (ep->link && !ep->link[0]) {
				cg_err("citygate-sim: --rtu: empty link name");
				return SIM_EXIT_USAGE;
			}
		} else if (strcmp(opt, "--baud") == 0 && arg) {
			if (!ep || ep->kind != SIM_RTU) {
				cg_err("citygate-sim: --baud belongs after an --rtu");
				return SIM_EXIT_USAGE;
			}
			if (!sim_parse_long(arg, 50, 4000000, &ep->baud)) {
				cg_err("citygate-sim: --baud: \"%s\" is not a rate in 50-4000000",
				       arg);
				return SIM_EXIT_USAGE;
			}
			i++;
		} else if (strcmp(opt, "--framing") == 0 && arg) {
			if (!ep || ep->kind != SIM_RTU) {
				cg_err("citygate-sim: --framing belongs after an --rtu");
				return SIM_EXIT_USAGE;
			}
			if (strlen(arg) != 3 || (arg[0] != '7' && arg[0] != '8') ||
			    !strchr("NEO", arg[1]) || (arg[2] != '1' && arg[2] != '2')) {
				cg_err("citygate-sim: --framing: \"%s\" is not like 8N1, 8E1, 7O2", arg);
				return SIM_EXIT_USAGE;
			}
			memcpy(ep->framing, arg, 4);
			i++;
		} else if (strcmp(opt, "--tcp") == 0 && arg) {
			if (!sim_parse_long(arg, 0, 65535, &v)) {
				cg_err("citygate-sim: --tcp: \"%s\" is not a port in 0-65535", arg);
				return SIM_EXIT_USAGE;
			}
			ep = sim_endpoint_new(sim, SIM_TCP);
			if (!ep)
				goto nomem;
			ser = NULL;
			ep->port = (int)v;
			i++;
		} else if (strcmp(opt, "--rtu-tcp") == 0 && arg) {
			if (!sim_parse_long(arg, 0, 65535, &v)) {
				cg_err("citygate-sim: --rtu-tcp: \"%s\" is not a port in 0-65535", arg);
				return SIM_EXIT_USAGE;
			}
			ep = sim_endpoint_new(sim, SIM_RTU_TCP);
			if (!ep)
				goto nomem;
			ser = NULL;
			ep->port = (int)v;
			i++;
		} else if (strcmp(opt, "--serial") == 0 || strncmp(opt, "--serial=", 9) == 0) {
			const char *link = opt[8] == '=' ? opt + 9 : NULL;
			sim_serial_t **serials;

			if (!link && arg && arg[0] != '-')
				link = argv[++i];
			if (link && !link[0]) {
				cg_err("citygate-sim: --serial: empty link name");
				return SIM_EXIT_USAGE;
			}
			serials = realloc(sim->serials, (sim->n_serials + 1) * sizeof(*serials));
			if (!serials)
				goto nomem;
			sim->serials = serials;
			if (sim_serial_new(link, &ser))
				goto nomem;
			sim->serials[sim->n_serials++] = ser;
			ep = NULL;
		} else if (strcmp(opt, "--device") == 0 && arg) {
			char err[256];

			if (!ser || sim_serial_has_device(ser)) {
				cg_err("citygate-sim: --device %s: one after each --serial", arg);
				return SIM_EXIT_USAGE;
			}
			if (sim_serial_set_device(ser, arg, err, sizeof(err))) {
				cg_err("citygate-sim: --device %s: %s", arg, err);
				return SIM_EXIT_USAGE;
			}
			i++;
		} else if (strcmp(opt, "--slave") == 0 && arg) {
			const char **specs;

			if (!ep) {
				cg_err("citygate-sim: --slave %s comes before any --rtu or --tcp",
				       arg);
				return SIM_EXIT_USAGE;
			}
			specs = realloc(ep->specs, (ep->n_specs + 1) * sizeof(*specs));
			if (!specs)
				goto nomem;
			ep->specs = specs;
			ep->specs[ep->n_specs++] = arg;
			i++;
		} else {
			cg_err("citygate-sim: %s: unknown option or missing argument", opt);
			sim_usage();
			return SIM_EXIT_USAGE;
		}
	}
	if (!sim->n_eps && !sim->n_serials) {
		cg_err("citygate-sim: give at least one --rtu, --tcp or --serial endpoint");
		sim_usage();
		return SIM_EXIT_USAGE;
	}
	for (size_t s = 0; s < sim->n_serials; s++) {
		if (!sim_serial_has_device(sim->serials[s])) {
			cg_err("citygate-sim: --serial %s needs a --device",
			       sim_serial_name(sim->serials[s]));
			return SIM_EXIT_USAGE;
		}
	}
	return 0;
nomem:
	cg_err("citygate-sim: out of memory");
	return SIM_EXIT_FAIL;
}

/* Builds the slaves of every endpoint from their --slave arguments
 * "UNIT:PROFILE[:FAULTS]". Returns 0, SIM_EXIT_USAGE for a malformed
 * argument, or SIM_EXIT_FAIL when a profile cannot be loaded. */
static int sim_build_slaves(sim_t *sim)
{
	for (size_t e = 0; e < sim->n_eps; e++) {
		sim_endpoint_t *ep = sim->eps[e];
		/* Unit 0 is the broadcast address on a serial line, but on TCP
		 * many devices answer to it (or to 255) as "this device". */
		long min_unit = ep->kind == SIM_TCP ? 0 : 1;
		long max_unit = ep->kind == SIM_TCP ? 255 : 247;

		for (size_t i = 0; i < ep->n_specs; i++) {
			const char *spec = ep->specs[i];
			const char *colon = strchr(spec, ':');
			const char *faults;
			char unit_text[8], ref[PATH_MAX], err[256];
			cg_profile_t *profile = NULL;
			cg_diag_t diag = {0};
			sim_fault_t fault;
			uint64_t seed;
			long unit;
			int rc;

			if (!colon || (size_t)(colon - spec) >= sizeof(unit_text)) {
				cg_err("citygate-sim: --slave %s: expected UNIT:PROFILE[:FAULTS]",
				       spec);
				return SIM_EXIT_USAGE;
			}
			memcpy(unit_text, spec, (size_t)(colon - spec));
			unit_text[colon - spec] = '\0';
			if (!sim_parse_long(unit_text, min_unit, max_unit, &unit)) {
				cg_err("citygate-sim: --slave %s: unit id must be %ld-%ld on %s",
				       spec, min_unit, max_unit,
				       ep->kind == SIM_TCP ? "TCP" : "RTU");
				return SIM_EXIT_USAGE;
			}
			if (ep->slaves[unit]) {
				cg_err("citygate-sim: --slave %s: unit %ld is already on this "
				       "endpoint",
				       spec, unit);
				return SIM_EXIT_USAGE;
			}
			faults = strchr(colon + 1, ':');
			snprintf(ref, sizeof(ref), "%.*s",
			         (int)(faults ? (size_t)(faults - colon - 1) : strlen(colon + 1)),
			         colon + 1);
			if (!ref[0]) {
				cg_err("citygate-sim: --slave %s: no profile", spec);
				return SIM_EXIT_USAGE;
			}
			rc = sim_fault_parse(faults ? faults + 1 : NULL, &fault, err, sizeof(err));
			if (rc == CG_ENOMEM)
				return SIM_EXIT_FAIL;
			if (rc) {
				cg_err("citygate-sim: --slave %s: %s", spec, err);
				return SIM_EXIT_USAGE;
			}
			rc = cg_profile_load(ref, NULL, sim->dirs, &profile, &diag);
			for (size_t d = 0; d < diag.n; d++)
				cg_log(CG_LOG_ERR, "sim: %s", diag.lines[d]);
			cg_diag_free(&diag);
			if (rc) {
				cg_log(CG_LOG_ERR, "sim: --slave %s: %s", spec, cg_strerror(rc));
				return SIM_EXIT_FAIL;
			}
			if (sim_fault_check(&fault, profile, err, sizeof(err))) {
				cg_err("citygate-sim: --slave %s: %s", spec, err);
				cg_profile_free(profile);
				return SIM_EXIT_USAGE;
			}
			/* Each slave gets its own reproducible stream from the seed. */
			seed = sim->seed ^ ((uint64_t)(e + 1) << 40) ^ ((uint64_t)unit << 16);
			sim_random_next(&seed);
			rc = sim_slave_new((int)unit, profile, &fault, seed, &ep->slaves[unit]);
			if (rc) {
				cg_log(CG_LOG_ERR, "sim: --slave %s: %s", spec,
				       rc == CG_EINVAL ? "a point lies beyond the Modbus tables"
				                       : cg_strerror(rc));
				cg_profile_free(profile);
				return SIM_EXIT_FAIL;
			}
		}
	}
	return 0;
}

/* Makes link a symlink to target, replacing an older symlink but never
 * another kind of file. */
static int sim_make_link(const char *link, const char *target)
{
	struct stat st;

	if (lstat(link, &st) == 0) {
		if (!S_ISLNK(st.st_mode)) {
			cg_log(CG_LOG_ERR, "sim: %s exists and is not a symlink; not replacing it",
			       link);
			return CG_EINVAL;
		}
		if (unlink(link) != 0) {
			cg_log(CG_LOG_ERR, "sim: cannot remove the old %s: %s", link,
			       strerror(errno));
			return CG_EIO;
		}
	}
	if (symlink(target, link) != 0) {
		cg_log(CG_LOG_ERR, "sim: cannot create symlink %s: %s", link, strerror(errno));
		return CG_EIO;
	}
	return 0;
}

/* The speed_t of a baud rate when termios has one; else B9600, since a pty
 * ignores the speed and pacing uses ep->baud itself. */
static speed_t sim_speed(long baud)
{
	static const struct {
		long baud;
		speed_t speed;
	} speeds[] = {
	    {1200, B1200},     {2400, B2400},     {4800, B4800},     {9600, B9600},
	    {19200, B19200},   {38400, B38400},   {57600, B57600},   {115200, B115200},
	    {230400, B230400}, {460800, B460800}, {921600, B921600},
	};

	for (size_t i = 0; i < sizeof(speeds) / sizeof(speeds[0]); i++)
		if (speeds[i].baud == baud)
			return speeds[i].speed;
	return B9600;
}

/* Opens the pty of an RTU line in raw mode and keeps its slave side open so
 * that the line stays up between clients. */
static int sim_rtu_open(sim_endpoint_t *ep)
{
	struct termios tio;

	if (openpty(&ep->master, &ep->slave_fd, NULL, NULL, NULL) != 0) {
		cg_log(CG_LOG_ERR, "sim: openpty: %s", strerror(errno));
		return CG_EIO;
	}
	if (ptsname_r(ep->master, ep->pts, sizeof(ep->pts)) != 0) {
		cg_log(CG_LOG_ERR, "sim: ptsname: %s", strerror(errno));
		return CG_EIO;
	}
	/* Raw mode matters most for echo: an echoing line would feed every
	 * answer back to the simulator as if it were a request. */
	if (tcgetattr(ep->slave_fd, &tio) != 0) {
		cg_log(CG_LOG_ERR, "sim: tcgetattr %s: %s", ep->pts, strerror(errno));
		return CG_EIO;
	}
	cfmakeraw(&tio);
	cfsetspeed(&tio, sim_speed(ep->baud ? ep->baud : 9600));
	if (tcsetattr(ep->slave_fd, TCSANOW, &tio) != 0) {
		cg_log(CG_LOG_ERR, "sim: tcsetattr %s: %s", ep->pts, strerror(errno));
		return CG_EIO;
	}
	fcntl(ep->master, F_SETFD, FD_CLOEXEC);
	fcntl(ep->slave_fd, F_SETFD, FD_CLOEXEC);
	if (fcntl(ep->master, F_SETFL, fcntl(ep->master, F_GETFL) | O_NONBLOCK) != 0) {
		cg_log(CG_LOG_ERR, "sim: fcntl: %s", strerror(errno));
		return CG_EIO;
	}
	/* 3.5 character times of 11 bits, at least 2 ms (the standard's 1.75 ms
	 * above 19200 baud, rounded up); without --baud the pty is instant and a
	 * generous 20 ms only matters for clients that write a frame piecemeal. */
	ep->gap_ms = ep->baud ? (int)ceil(3.5 * 11 * 1000 / (double)ep->baud) : 20;
	if (ep->gap_ms < 2)
		ep->gap_ms = 2;
	/* A pty keeps what was written to it while no client had it open,
	 * where a closed serial port would have lost it: a late answer would
	 * then greet the next client. Watching for a client's close lets the
	 * line drop such bytes as a real port does. */
	ep->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ep->inotify_fd < 0 ||
	    inotify_add_watch(ep->inotify_fd, ep->pts, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) < 0) {
		cg_log(CG_LOG_WARNING,
		       "sim: inotify on %s: %s; late answers may reach the next client", ep->pts,
		       strerror(errno));
		if (ep->inotify_fd >= 0)
			close(ep->inotify_fd);
		ep->inotify_fd = -1;
	}
	if (ep->link) {
		if (sim_make_link(ep->link, ep->pts))
			return CG_EIO;
		ep->link_made = true;
	}
	snprintf(ep->name, sizeof(ep->name), "rtu %s", ep->link ? ep->link : ep->pts);
	return 0;
}

/* Listens on 127.0.0.1:port (a free port when 0) through libmodbus. */
static int sim_tcp_open(sim_endpoint_t *ep)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);

	ep->ctx = modbus_new_tcp("127.0.0.1", ep->port);
	if (!ep->ctx) {
		cg_log(CG_LOG_ERR, "sim: modbus_new_tcp: %s", modbus_strerror(errno));
		return CG_ENOMEM;
	}
	ep->listen_fd = modbus_tcp_listen(ep->ctx, SIM_MAX_CLIENTS);
	if (ep->listen_fd < 0) {
		cg_log(CG_LOG_ERR, "sim: cannot listen on 127.0.0.1:%d: %s", ep->port,
		       modbus_strerror(errno));
		return CG_EIO;
	}
	fcntl(ep->listen_fd, F_SETFD, FD_CLOEXEC);
	if (getsockname(ep->listen_fd, (struct sockaddr *)&addr, &len) != 0) {
		cg_log(CG_LOG_ERR, "sim: getsockname: %s", strerror(errno));
		return CG_EIO;
	}
	ep->port = ntohs(addr.sin_port);
	snprintf(ep->name, sizeof(ep->name), "%s 127.0.0.1:%d",
	         ep->kind == SIM_RTU_TCP ? "rtu-tcp" : "tcp", ep->port);
	/* RTU over TCP has no silence to end a frame: the length rules do. */
	ep->gap_ms = 20;
	return 0;
}

/* Closes an endpoint's descriptors and removes its symlink if it still points
 * at this simulator's pty. Safe on a half-opened endpoint. */
static void sim_endpoint_close(sim_endpoint_t *ep)
{
	char target[sizeof(ep->pts)];
	ssize_t n;

	if (ep->link_made) {
		n = readlink(ep->link, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = '\0';
			if (strcmp(target, ep->pts) == 0 && unlink(ep->link) != 0)
				cg_log(CG_LOG_WARNING, "sim: cannot remove %s: %s", ep->link,
				       strerror(errno));
		}
		ep->link_made = false;
	}
	for (size_t i = 0; i < ep->n_clients; i++)
		close(ep->clients[i]);
	ep->n_clients = 0;
	if (ep->rtu_client >= 0)
		close(ep->rtu_client);
	ep->rtu_client = -1;
	if (ep->ctx) {
		/* libmodbus's socket is one of the clients closed above. */
		modbus_set_socket(ep->ctx, -1);
		modbus_free(ep->ctx);
		ep->ctx = NULL;
	}
	if (ep->listen_fd >= 0)
		close(ep->listen_fd);
	if (ep->master >= 0)
		close(ep->master);
	if (ep->slave_fd >= 0)
		close(ep->slave_fd);
	if (ep->inotify_fd >= 0)
		close(ep->inotify_fd);
	ep->listen_fd = ep->master = ep->slave_fd = ep->inotify_fd = -1;
}

static void sim_endpoint_free(sim_endpoint_t *ep)
{
	if (!ep)
		return;
	sim_endpoint_close(ep);
	for (size_t u = 0; u < 256; u++)
		sim_slave_free(ep->slaves[u]);
	free(ep->specs);
	free(ep);
}

static double sim_elapsed_s(const sim_endpoint_t *ep, int64_t now)
{
	return (double)(now - ep->start_ms) / 1000.0;
}

/* Writes len bytes to a non-blocking pty or a socket. A pty whose client
 * does not read fills up; the answer is then dropped as a real line would
 * lose it, rather than stalling every other slave. */
static bool sim_write_all(sim_endpoint_t *ep, int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n =
		    ep->kind == SIM_RTU ? write(fd, p, len) : send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cg_log(CG_LOG_DEBUG, "sim: %s: answer dropped: %s", ep->name,
			       n < 0 ? strerror(errno) : "short write");
			ep->dropped++;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Sends one answer now. */
static void sim_fire(sim_endpoint_t *ep, sim_pending_t *p)
{
	sim_stats_t *st = sim_slave_stats(p->slave);
	int rc;

	if (p->raw) {
		if (sim_write_all(ep, p->fd, p->data, p->len))
			st->answered++;
		return;
	}
	/* A TCP query that libmodbus answers from the slave's tables. */
	modbus_set_socket(ep->ctx, p->fd);
	modbus_set_slave(ep->ctx, sim_slave_unit(p->slave));
	if (p->action.exception)
		rc = modbus_reply_exception(ep->ctx, p->data, (unsigned)p->action.exception);
	else
		rc = modbus_reply(ep->ctx, p->data, (int)p->len, sim_slave_mapping(p->slave));
	if (rc < 0) {
		cg_log(CG_LOG_DEBUG, "sim: %s: reply failed: %s", ep->name, modbus_strerror(errno));
		ep->dropped++;
		return;
	}
	st->answered++;
}

/* Sends p when it is due now, else queues it. */
static void sim_send_at(sim_endpoint_t *ep, sim_pending_t *p, int64_t now)
{
	if (p->due_ms <= now) {
		sim_fire(ep, p);
		return;
	}
	if (ep->n_pending == SIM_MAX_PENDING) {
		cg_log(CG_LOG_DEBUG, "sim: %s: too many delayed answers; one dropped", ep->name);
		ep->dropped++;
		return;
	}
	ep->pending[ep->n_pending++] = *p;
}

/* Sends every queued answer that is due, in order of due time. */
static void sim_run_pending(sim_endpoint_t *ep, int64_t now)
{
	for (;;) {
		size_t best = SIZE_MAX;

		for (size_t i = 0; i < ep->n_pending; i++)
			if (ep->pending[i].due_ms <= now &&
			    (best == SIZE_MAX || ep->pending[i].due_ms < ep->pending[best].due_ms))
				best = i;
		if (best == SIZE_MAX)
			return;
		sim_pending_t p = ep->pending[best];

		ep->pending[best] = ep->pending[--ep->n_pending];
		sim_fire(ep, &p);
	}
}

/* The length of the RTU request that starts at b (n bytes so far): 0 when
 * more bytes are needed to know it, -1 for a function code whose request
 * length is unknown. */
static long sim_rtu_request_length(const uint8_t *b, size_t n)
{
	if (n < 2)
		return 0;
	switch (b[1]) {
	case 0x01:
	case 0x02:
	case 0x03:
	case 0x04:
	case 0x05:
	case 0x06: return 8;
	case 0x07:
	case 0x0B:
	case 0x0C:
	case 0x11: return 4;
	case 0x0F:
	case 0x10: return n < 7 ? 0 : 9 + (long)b[6];
	case 0x16: return 10;
	case 0x17: return n < 11 ? 0 : 13 + (long)b[10];
	default: return -1;
	}
}

static bool sim_rtu_crc_ok(const uint8_t *f, size_t len)
{
	uint16_t crc = sim_crc16(f, len - 2);

	return f[len - 2] == (crc & 0xFF) && f[len - 1] == (crc >> 8);
}

/* Answers one RTU frame with a good CRC: broadcasts and units that are not
 * on the line get no answer, as on a real bus. */
static void sim_rtu_frame(sim_endpoint_t *ep, const uint8_t *f, size_t len, int64_t now)
{
	sim_pending_t p = {.fd = ep->kind == SIM_RTU ? ep->master : ep->rtu_client, .raw = true};
	uint16_t crc;

	if (f[0] == MODBUS_BROADCAST_ADDRESS) {
		cg_log(CG_LOG_DEBUG, "sim: %s: broadcast FC %u ignored", ep->name, f[1]);
		return;
	}
	p.slave = ep->slaves[f[0]];
	if (!p.slave) {
		cg_log(CG_LOG_DEBUG, "sim: %s: no unit %u", ep->name, f[0]);
		return;
	}
	p.action = sim_slave_decide(p.slave, sim_elapsed_s(ep, now), f[1]);
	cg_log(CG_LOG_DEBUG, "sim: %s: unit %u FC %u%s%s", ep->name, f[0], f[1],
	       p.action.silent ? " (silent)" : "", p.action.corrupt ? " (bad CRC)" : "");
	if (p.action.silent)
		return;
	p.data[0] = f[0];
	p.len = 1 + sim_slave_reply_pdu(p.slave, f + 1, len - 3, p.action.exception, p.data + 1);
	crc = sim_crc16(p.data, p.len);
	if (p.action.corrupt)
		crc ^= 0xFFFF;
	p.data[p.len++] = (uint8_t)(crc & 0xFF);
	p.data[p.len++] = (uint8_t)(crc >> 8);
	p.due_ms = now + p.action.delay_ms;
	if (ep->baud) {
		/* The request and the answer on the wire, 11 bits a character,
		 * plus the two 3.5-character silences around them. */
		double chars = (double)(len + p.len) + 7;

		p.due_ms += (int64_t)ceil(chars * 11 * 1000 / (double)ep->baud);
	}
	sim_send_at(ep, &p, now);
}

/* Drops n bytes from the front of the receive buffer. */
static void sim_rtu_consume(sim_endpoint_t *ep, size_t n)
{
	memmove(ep->rx, ep->rx + n, ep->rx_len - n);
	ep->rx_len -= n;
}

/* Cuts frames out of the receive buffer. A frame is recognised by the
 * length its function code implies and a good CRC; on a mismatch one byte
 * is dropped and the search goes on, which resynchronises after noise. With
 * silence set (the line has been quiet for 3.5 characters) nothing more can
 * come for what is buffered, so incomplete data is given up as noise. */
static void sim_rtu_scan(sim_endpoint_t *ep, bool silence, int64_t now)
{
	while (ep->rx_len >= SIM_RTU_MIN) {
		long need = sim_rtu_request_length(ep->rx, ep->rx_len);

		if (need < 0) {
			/* An unknown function: the frame is whatever came
			 * before the silence, if its CRC says so. */
			if (!silence)
				return;
			if (sim_rtu_crc_ok(ep->rx, ep->rx_len)) {
				sim_rtu_frame(ep, ep->rx, ep->rx_len, now);
				ep->rx_len = 0;
				return;
			}
		} else if (need == 0 || (size_t)need > ep->rx_len) {
			if (!silence)
				return;
		} else if (sim_rtu_crc_ok(ep->rx, (size_t)need)) {
			sim_rtu_frame(ep, ep->rx, (size_t)need, now);
			sim_rtu_consume(ep, (size_t)need);
			continue;
		}
		ep->garbage++;
		sim_rtu_consume(ep, 1);
	}
	if (silence && ep->rx_len) {
		ep->garbage += ep->rx_len;
		ep->rx_len = 0;
	}
}

/* Whether the client set the line as this endpoint runs it: a pty carries
 * bytes whatever its settings, so the settings the client gave the pty are
 * compared with --baud and --framing, and a mismatch is what a real line
 * would make of it (framing errors, garbage). Linux's pty driver keeps the
 * speed and the stop bits but forces 8 data bits without parity, so those
 * two cannot be compared here. Without --baud, anything goes. */
static bool sim_line_matches(const sim_endpoint_t *ep)
{
	const char *f = ep->framing[0] ? ep->framing : "8N1";
	struct termios tio;
	tcflag_t c;

	if (!ep->baud)
		return true;
	if (tcgetattr(ep->slave_fd, &tio) != 0)
		return true;
	c = tio.c_cflag;
	return cfgetospeed(&tio) == sim_speed(ep->baud) && !(c & CSTOPB) == (f[2] == '1');
}

/* Reads what the pty has and answers the complete frames in it. */
static void sim_rtu_read(sim_endpoint_t *ep, int64_t now)
{
	ssize_t n;

	if (ep->rx_len && now - ep->rx_last_ms >= ep->gap_ms)
		sim_rtu_scan(ep, true, now);
	if (ep->rx_len == sizeof(ep->rx)) {
		/* Full of bytes that hold no frame: noise, drop it all. */
		ep->garbage += ep->rx_len;
		ep->rx_len = 0;
	}
	n = read(ep->master, ep->rx + ep->rx_len, sizeof(ep->rx) - ep->rx_len);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			cg_log(CG_LOG_WARNING, "sim: %s: read: %s", ep->name, strerror(errno));
		return;
	}
	if (n > 0 && !sim_line_matches(ep)) {
		ep->misframed += (uint64_t)n;
		return;
	}
	ep->rx_len += (size_t)n;
	ep->rx_last_ms = now;
	sim_rtu_scan(ep, false, now);
}

/* Handles a client closing the pty: what it has not read, and the answers
 * still to come for it, are lost as on a closed serial port. */
static void sim_rtu_closed(sim_endpoint_t *ep)
{
	char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool closed = false;

	while (read(ep->inotify_fd, events, sizeof(events)) > 0)
		closed = true;
	if (!closed)
		return;
	tcflush(ep->slave_fd, TCIFLUSH);
	if (ep->n_pending)
		cg_log(CG_LOG_DEBUG, "sim: %s: client closed; %zu late answers dropped", ep->name,
		       ep->n_pending);
	ep->n_pending = 0;
	ep->rx_len = 0;
}

/* RTU over TCP: a new client takes the line over from the one before, as
 * on a serial server's port; what was pending for the old one is lost. */
static void sim_rtu_tcp_accept(sim_endpoint_t *ep)
{
	int fd = accept4(ep->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		cg_log(CG_LOG_WARNING, "sim: %s: accept: %s", ep->name, strerror(errno));
		return;
	}
	if (ep->rtu_client >= 0)
		close(ep->rtu_client);
	ep->rtu_client = fd;
	ep->n_pending = 0;
	ep->rx_len = 0;
	cg_log(CG_LOG_DEBUG, "sim: %s: client connected", ep->name);
}

/* RTU over TCP: reads what the client sent and answers the whole frames in
 * it, as the pty line does; a closed client frees the port. */
static void sim_rtu_tcp_read(sim_endpoint_t *ep, int64_t now)
{
	ssize_t n;

	if (ep->rx_len == sizeof(ep->rx)) {
		ep->garbage += ep->rx_len;
		ep->rx_len = 0;
	}
	n = recv(ep->rtu_client, ep->rx + ep->rx_len, sizeof(ep->rx) - ep->rx_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(ep->rtu_client);
		ep->rtu_client = -1;
		ep->n_pending = 0;
		ep->rx_len = 0;
		cg_log(CG_LOG_DEBUG, "sim: %s: client closed", ep->name);
		return;
	}
	if (n < 0)
		return;
	ep->rx_len += (size_t)n;
	ep->rx_last_ms = now;
	sim_rtu_scan(ep, false, now);
}

/* Forgets a TCP client: closes it and drops its delayed answers. */
static void sim_tcp_drop_client(sim_endpoint_t *ep, size_t index)
{
	int fd = ep->clients[index];

	for (size_t i = 0; i < ep->n_pending;) {
		if (ep->pending[i].fd == fd)
			ep->pending[i] = ep->pending[--ep->n_pending];
		else
			i++;
	}
	close(fd);
	ep->clients[index] = ep->clients[--ep->n_clients];
	cg_log(CG_LOG_DEBUG, "sim: %s: client closed", ep->name);
}

/* Accepts a TCP client, or turns it away when SIM_MAX_CLIENTS are served. */
static void sim_tcp_accept(sim_endpoint_t *ep)
{
	int fd = modbus_tcp_accept(ep->ctx, &ep->listen_fd);

	if (fd < 0) {
		cg_log(CG_LOG_WARNING, "sim: %s: accept: %s", ep->name, modbus_strerror(errno));
		return;
	}
	if (ep->n_clients == SIM_MAX_CLIENTS) {
		cg_log(CG_LOG_WARNING, "sim: %s: more than %d clients; one refused", ep->name,
		       SIM_MAX_CLIENTS);
		close(fd);
		return;
	}
	ep->clients[ep->n_clients++] = fd;
	cg_log(CG_LOG_DEBUG, "sim: %s: client connected", ep->name);
}

/* Builds the bytes of a TCP answer that libmodbus cannot give: a corrupted
 * one (a byte count that does not match the request, with a consistent MBAP
 * length so that the stream stays in step; for an exception, a transaction
 * id that matches no request), or an exception code libmodbus refuses. */
static void sim_tcp_raw(sim_pending_t *p, const uint8_t *q, size_t len)
{
	uint8_t pdu[MODBUS_MAX_PDU_LENGTH];
	size_t n = sim_slave_reply_pdu(p->slave, q + 7, len - 7, p->action.exception, pdu);

	memcpy(p->data, q, 4); /* transaction and protocol ids */
	if (p->action.corrupt) {
		if (pdu[0] & 0x80) {
			p->data[0] ^= 0x80;
		} else {
			size_t unit = pdu[0] <= MODBUS_FC_READ_DISCRETE_INPUTS ? 1 : 2;

			pdu[1] = (uint8_t)(pdu[1] - unit);
			n -= unit;
		}
	}
	p->data[4] = (uint8_t)((n + 1) >> 8);
	p->data[5] = (uint8_t)(n + 1);
	p->data[6] = q[6];
	memcpy(p->data + 7, pdu, n);
	p->len = 7 + n;
	p->raw = true;
}

/* Receives one query from a TCP client and answers it. Returns -1 when the
 * client is gone or sent something that is not Modbus TCP. */
static int sim_tcp_receive(sim_endpoint_t *ep, int fd, int64_t now)
{
	uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
	sim_pending_t p = {.fd = fd};
	int len;

	modbus_set_socket(ep->ctx, fd);
	len = modbus_receive(ep->ctx, q);
	if (len < 0)
		return -1;
	if (len < 8)
		return 0;
	p.slave = ep->slaves[q[6]];
	if (!p.slave) {
		cg_log(CG_LOG_DEBUG, "sim: %s: no unit %u", ep->name, q[6]);
		return 0;
	}
	p.action = sim_slave_decide(p.slave, sim_elapsed_s(ep, now), q[7]);
	cg_log(CG_LOG_DEBUG, "sim: %s: unit %u FC %u%s%s", ep->name, q[6], q[7],
	       p.action.silent ? " (silent)" : "", p.action.corrupt ? " (corrupted)" : "");
	if (p.action.silent)
		return 0;
	if (p.action.corrupt || p.action.exception >= MODBUS_EXCEPTION_MAX) {
		sim_tcp_raw(&p, q, (size_t)len);
	} else {
		memcpy(p.data, q, (size_t)len);
		p.len = (size_t)len;
	}
	p.due_ms = now + p.action.delay_ms;
	sim_send_at(ep, &p, now);
	return 0;
}

/* Moves every slave's values on. */
static void sim_endpoint_update(sim_endpoint_t *ep, int64_t now)
{
	for (size_t u = 0; u < 256; u++)
		if (ep->slaves[u])
			sim_slave_update(ep->slaves[u], sim_elapsed_s(ep, now));
}

/* The thread of one endpoint: waits for requests, the next value update and
 * the next delayed answer, until the wake descriptor becomes readable. */
static void *sim_endpoint_main(void *arg)
{
	sim_endpoint_t *ep = arg;
	int64_t next_tick = ep->start_ms + SIM_TICK_MS;

	for (;;) {
		struct pollfd fds[3 + SIM_MAX_CLIENTS];
		int clients[SIM_MAX_CLIENTS];
		size_t n_clients = ep->n_clients;
		int64_t now = cg_mono_ms(), deadline;
		nfds_t n = 0;
		int rc;

		if (now >= next_tick) {
			sim_endpoint_update(ep, now);
			next_tick += SIM_TICK_MS;
			if (next_tick <= now)
				next_tick = now + SIM_TICK_MS;
		}
		sim_run_pending(ep, now);
		deadline = next_tick;
		for (size_t i = 0; i < ep->n_pending; i++)
			if (ep->pending[i].due_ms < deadline)
				deadline = ep->pending[i].due_ms;
		if (ep->kind != SIM_TCP && ep->rx_len && ep->rx_last_ms + ep->gap_ms < deadline)
			deadline = ep->rx_last_ms + ep->gap_ms;

		fds[n++] = (struct pollfd){.fd = ep->wake_fd, .events = POLLIN};
		if (ep->kind == SIM_RTU) {
			fds[n++] = (struct pollfd){.fd = ep->master, .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = ep->inotify_fd, .events = POLLIN};
		} else if (ep->kind == SIM_RTU_TCP) {
			fds[n++] = (struct pollfd){.fd = ep->listen_fd, .events = POLLIN};
			fds[n++] = (struct pollfd){.fd = ep->rtu_client, .events = POLLIN};
		} else {
			fds[n++] = (struct pollfd){.fd = ep->listen_fd, .events = POLLIN};
			memcpy(clients, ep->clients, n_clients * sizeof(int));
			for (size_t i = 0; i < n_clients; i++)
				fds[n++] = (struct pollfd){.fd = clients[i], .events = POLLIN};
		}
		rc = poll(fds, n, deadline > now ? (int)(deadline - now) : 0);
		if (rc < 0 && errno != EINTR) {
			cg_log(CG_LOG_ERR, "sim: %s: poll: %s", ep->name, strerror(errno));
			break;
		}
		if (rc < 0)
			continue;
		if (fds[0].revents)
			break;
		now = cg_mono_ms();
		if (ep->kind == SIM_RTU) {
			/* A close seen before the bytes that follow it, so that a
			 * new client's request is never dropped with the old. */
			if (fds[2].revents & POLLIN)
				sim_rtu_closed(ep);
			if (fds[1].revents & POLLIN)
				sim_rtu_read(ep, now);
			else if (ep->rx_len && now - ep->rx_last_ms >= ep->gap_ms)
				sim_rtu_scan(ep, true, now);
			continue;
		}
		if (ep->kind == SIM_RTU_TCP) {
			if (fds[2].revents)
				sim_rtu_tcp_read(ep, now);
			else if (ep->rx_len && now - ep->rx_last_ms >= ep->gap_ms)
				sim_rtu_scan(ep, true, now);
			if (fds[1].revents & POLLIN)
				sim_rtu_tcp_accept(ep);
			continue;
		}
		for (size_t i = 0; i < n_clients; i++) {
			if (!fds[2 + i].revents)
				continue;
			if (sim_tcp_receive(ep, clients[i], now) == 0)
				continue;
			for (size_t k = 0; k < ep->n_clients; k++) {
				if (ep->clients[k] == clients[i]) {
					sim_tcp_drop_client(ep, k);
					break;
				}
			}
		}
		if (fds[1].revents & POLLIN)
			sim_tcp_accept(ep);
	}
	return NULL;
}

/* Logs what each slave did, for the operator of a test or demo. */
static void sim_log_stats(const sim_t *sim)
{
	for (size_t e = 0; e < sim->n_eps; e++) {
		sim_endpoint_t *ep = sim->eps[e];

		for (size_t u = 0; u < 256; u++) {
			sim_slave_t *s = ep->slaves[u];
			const sim_stats_t *st;

			if (!s)
				continue;
			st = sim_slave_stats(s);
			cg_log(CG_LOG_INFO,
			       "sim: %s unit %zu (%s): %" PRIu64 " requests, %" PRIu64
			       " answered; faults: %" PRIu64 " silent, %" PRIu64
			       " exception, %" PRIu64 " corrupted, %" PRIu64 " slow",
			       ep->name, u, sim_slave_profile_name(s), st->requests, st->answered,
			       st->silenced, st->exceptions, st->corrupted, st->delayed);
		}
		if (ep->garbage || ep->dropped || ep->misframed)
			cg_log(CG_LOG_INFO,
			       "sim: %s: %" PRIu64 " noise bytes, %" PRIu64 " answers dropped, %" PRIu64
			       " bytes at other line settings",
			       ep->name, ep->garbage, ep->dropped, ep->misframed);
	}
}

/* Opens every endpoint, prints its status line and fills its tables with
 * the values at time 0. */
static int sim_open_endpoints(sim_t *sim)
{
	for (size_t e = 0; e < sim->n_eps; e++) {
		sim_endpoint_t *ep = sim->eps[e];
		size_t n = 0;

		if (ep->kind == SIM_RTU ? sim_rtu_open(ep) : sim_tcp_open(ep))
			return SIM_EXIT_FAIL;
		for (size_t u = 0; u < 256; u++) {
			if (ep->slaves[u]) {
				sim_slave_update(ep->slaves[u], 0);
				n++;
			}
		}
		if (ep->kind == SIM_RTU)
			sim_status(sim, "rtu %s %s", ep->link ? ep->link : ep->pts, ep->pts);
		else
			sim_status(sim, "%s 127.0.0.1 %d", ep->kind == SIM_RTU_TCP ? "rtu-tcp" : "tcp",
			           ep->port);
		cg_log(CG_LOG_INFO, "sim: %s%s%s: %zu slave%s", ep->name, ep->link ? " -> " : "",
		       ep->link ? ep->pts : "", n, n == 1 ? "" : "s");
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const default_dirs[] = {CG_PROFILE_DIR_SOURCE, CG_PROFILE_DIR_INSTALLED};
	sim_t sim = {.status_fd = STDOUT_FILENO};
	struct sigaction sa = {.sa_handler = sim_on_signal};
	sigset_t block, old;
	int wake[2] = {-1, -1};
	int64_t start;
	int rc;

	sim.seed = (uint64_t)cg_now_ms() ^ ((uint64_t)getpid() << 32);
	rc = sim_parse_args(&sim, argc, argv);
	if (rc)
		goto out_endpoints;
	for (size_t i = 0; i < sizeof(default_dirs) / sizeof(default_dirs[0]); i++) {
		const char **dirs = realloc(sim.dirs, (sim.n_dirs + 2) * sizeof(*dirs));

		if (!dirs) {
			rc = SIM_EXIT_FAIL;
			goto out_endpoints;
		}
		sim.dirs = dirs;
		sim.dirs[sim.n_dirs++] = default_dirs[i];
		sim.dirs[sim.n_dirs] = NULL;
	}

	/* The handlers only set a flag; the signals stay blocked except while
	 * the main thread waits in sigsuspend(), so the endpoint threads never
	 * take them. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	rc = sim_build_slaves(&sim);
	if (rc)
		goto out_endpoints;
	cg_log(CG_LOG_INFO, "sim: seed %" PRIu64, sim.seed);
	rc = sim_open_endpoints(&sim);
	if (rc)
		goto out_endpoints;
	for (size_t s = 0; s < sim.n_serials; s++) {
		if (sim_serial_open(sim.serials[s], sim_make_link)) {
			rc = SIM_EXIT_FAIL;
			goto out_endpoints;
		}
		sim_status(&sim, "serial %s %s", sim_serial_name(sim.serials[s]),
		           sim_serial_pts(sim.serials[s]));
	}
	if (pipe2(wake, O_CLOEXEC) != 0) {
		cg_log(CG_LOG_ERR, "sim: pipe: %s", strerror(errno));
		rc = SIM_EXIT_FAIL;
		goto out_endpoints;
	}
	start = cg_mono_ms();
	for (size_t e = 0; e < sim.n_eps; e++) {
		sim_endpoint_t *ep = sim.eps[e];

		ep->start_ms = start;
		ep->wake_fd = wake[0];
		if (pthread_create(&ep->thread, NULL, sim_endpoint_main, ep) != 0) {
			cg_log(CG_LOG_ERR, "sim: cannot start a thread for %s", ep->name);
			rc = SIM_EXIT_FAIL;
			goto out_threads;
		}
		ep->running = true;
	}
	for (size_t s = 0; s < sim.n_serials; s++) {
		/* Each device gets its own reproducible stream from the seed. */
		uint64_t seed = sim.seed ^ ((uint64_t)(s + 1) << 48);

		sim_random_next(&seed);
		if (sim_serial_start(sim.serials[s], wake[0], start, seed)) {
			rc = SIM_EXIT_FAIL;
			goto out_threads;
		}
	}
	sim_status(&sim, "ready");
	while (!sim_stop)
		sigsuspend(&old);
	cg_log(CG_LOG_INFO, "sim: stopping");

out_threads:
	/* One byte makes the pipe readable for every thread at once. */
	if (write(wake[1], "", 1) != 1)
		cg_log(CG_LOG_ERR, "sim: cannot wake the endpoint threads: %s", strerror(errno));
	for (size_t e = 0; e < sim.n_eps; e++)
		if (sim.eps[e]->running)
			pthread_join(sim.eps[e]->thread, NULL);
	for (size_t s = 0; s < sim.n_serials; s++)
		sim_serial_join(sim.serials[s]);
	sim_log_stats(&sim);
	close(wake[0]);
	close(wake[1]);
out_endpoints:
	for (size_t e = 0; e < sim.n_eps; e++)
		sim_endpoint_free(sim.eps[e]);
	free(sim.eps);
	for (size_t s = 0; s < sim.n_serials; s++)
		sim_serial_free(sim.serials[s]);
	free(sim.serials);
	free(sim.dirs);
	return rc < 0 ? SIM_EXIT_OK : rc;
}
