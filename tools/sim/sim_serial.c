/* citygate-sim: one vendor-frame sensor (PMS5003, SDS011, A02YYUW) on its own pseudo-terminal. */
#include "tools/sim/sim_serial.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "tools/sim/sim_slave.h"

#define SER_RX_SIZE     256
#define SER_MAX_WAIT_MS 50 /* longest sleep, so reboots and streams keep time */
#define SER_FRAME_MAX   64 /* the longest data frame a device sends */

/*
 * What a device is, one row per type; adding a device to the simulator is
 * a frame builder, a command handler if it takes commands, and a row here.
 */
typedef struct ser_device {
	const char *name; /* as in --device, the same as the driver's */
	/* Builds the data frame the device sends at now into f (at most
	 * SER_FRAME_MAX bytes); returns its length. */
	size_t (*frame)(sim_serial_t *s, int64_t now, uint8_t *f);
	size_t sum_from_end; /* the checksum byte's place from the end, for badsum */
	/* Handles one command of command_len bytes that starts with
	 * command_start; NULL for a device that takes none. */
	void (*command)(sim_serial_t *s, const uint8_t *c, int64_t now);
	size_t command_len;
	uint8_t command_start[2];
	bool streams_at_power_on; /* sends frames on its own until told otherwise */
	int stream_ms;            /* how often it sends on its own */
	bool reboot_option;       /* reboot=S: it has a mode that a power cycle resets */
	bool period_option;       /* period=S: it sees a car come and go */
} ser_device_t;

/* The devices' frame builders and command handlers, defined below. */
static size_t ser_pms_frame(sim_serial_t *s, int64_t now, uint8_t *f);
static size_t ser_sds_frame(sim_serial_t *s, int64_t now, uint8_t *f);
static size_t ser_a02_frame(sim_serial_t *s, int64_t now, uint8_t *f);
static void ser_pms_command(sim_serial_t *s, const uint8_t *c, int64_t now);
static void ser_sds_command(sim_serial_t *s, const uint8_t *c, int64_t now);

static const ser_device_t ser_devices[] = {
    {.name = "pms5003",
     .frame = ser_pms_frame,
     .sum_from_end = 0,
     .command = ser_pms_command,
     .command_len = 7,
     .command_start = {0x42, 0x4D},
     .streams_at_power_on = true,
     .stream_ms = 1000,
     .reboot_option = true},
    {.name = "sds011",
     .frame = ser_sds_frame,
     .sum_from_end = 1, /* AB follows it */
     .command = ser_sds_command,
     .command_len = 19,
     .command_start = {0xAA, 0xB4},
     .streams_at_power_on = true,
     .stream_ms = 1000,
     .reboot_option = true},
    {.name = "a02yyuw",
     .frame = ser_a02_frame,
     .sum_from_end = 0,
     .streams_at_power_on = true,
     .stream_ms = 100,
     .period_option = true},
};

#define SER_N_DEVICES (sizeof(ser_devices) / sizeof(ser_devices[0]))

struct sim_serial {
	const char *link;
	bool link_made;
	char pts[64];
	char name[PATH_MAX + 16];
	int master, slave_fd;

	const ser_device_t *dev; /* NULL until set */
	double noise_pct, badsum_pct;
	bool silent;
	double after_s, until_s;
	double reboot_s; /* 0: never */
	double period_s; /* a02yyuw: between a car arriving and leaving */

	/* The device, touched by its thread only. */
	uint64_t rng;
	int64_t start_ms;
	bool streaming; /* sends frames on its own (PMS5003 active mode, SDS011 active reporting) */
	bool asleep;
	int64_t next_stream_ms;
	int64_t next_reboot_ms;
	uint8_t rx[SER_RX_SIZE];
	size_t rx_len;

	int wake_fd;
	pthread_t thread;
	bool running;

	/* Counted for the log line on exit. */
	uint64_t commands, bad_commands, frames, bad_frames, noise_bytes, dropped, reboots;
};

int sim_serial_new(const char *link, sim_serial_t **out)
{
	sim_serial_t *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return CG_ENOMEM;
	s->link = link;
	s->master = s->slave_fd = -1;
	s->until_s = INFINITY;
	s->period_s = 30;
	*out = s;
	return 0;
}

/* Parses a percentage or a number of seconds from "KEY=VALUE"'s value. */
static bool ser_number(const char *text, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!text || !text[0])
		return false;
	errno = 0;
	v = strtod(text, &end);
	if (errno || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

int sim_serial_set_device(sim_serial_t *s, const char *spec, char *err, size_t err_size)
{
	const char *colon = strchr(spec, ':');
	size_t type_len = colon ? (size_t)(colon - spec) : strlen(spec);
	char opts[256];
	char *save = NULL;
	char names[128] = "";

	s->dev = NULL;
	for (size_t i = 0; i < SER_N_DEVICES; i++) {
		if (strlen(ser_devices[i].name) == type_len &&
		    strncmp(spec, ser_devices[i].name, type_len) == 0)
			s->dev = &ser_devices[i];
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		         i ? ", " : "", ser_devices[i].name);
	}
	if (!s->dev) {
		snprintf(err, err_size, "unknown device \"%.*s\" (%s)", (int)type_len, spec, names);
		return CG_EINVAL;
	}
	snprintf(opts, sizeof(opts), "%s", colon ? colon + 1 : "");
	for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(o, '=');
		const char *value = eq ? eq + 1 : NULL;
		bool ok;

		if (eq)
			*eq = '\0';
		if (strcmp(o, "noise") == 0) {
			ok = ser_number(value, 0, 100, &s->noise_pct);
		} else if (strcmp(o, "badsum") == 0) {
			ok = ser_number(value, 0, 100, &s->badsum_pct);
		} else if (strcmp(o, "silent") == 0) {
			s->silent = true;
			ok = !value;
		} else if (strcmp(o, "after") == 0) {
			ok = ser_number(value, 0, 1e9, &s->after_s);
		} else if (strcmp(o, "until") == 0) {
			ok = ser_number(value, 0, 1e9, &s->until_s);
		} else if (strcmp(o, "reboot") == 0 && s->dev->reboot_option) {
			ok = ser_number(value, 1, 1e9, &s->reboot_s);
		} else if (strcmp(o, "period") == 0 && s->dev->period_option) {
			ok = ser_number(value, 1, 1e9, &s->period_s);
		} else {
			snprintf(err, err_size, "unknown option \"%s\" for %s", o, s->dev->name);
			s->dev = NULL;
			return CG_EINVAL;
		}
		if (!ok) {
			snprintf(err, err_size, "bad value for %s%s%s", o, value ? "=" : "",
			         value ? value : "");
			s->dev = NULL;
			return CG_EINVAL;
		}
	}
	if (s->until_s <= s->after_s) {
		snprintf(err, err_size, "until must be later than after");
		s->dev = NULL;
		return CG_EINVAL;
	}
	return 0;
}

bool sim_serial_has_device(const sim_serial_t *s)
{
	return s->dev != NULL;
}

bool sim_serial_knows(const char *type)
{
	for (size_t i = 0; i < SER_N_DEVICES; i++)
		if (strcmp(ser_devices[i].name, type) == 0)
			return true;
	return false;
}

const char *sim_serial_name(const sim_serial_t *s)
{
	return s->link ? s->link : s->pts;
}

const char *sim_serial_pts(const sim_serial_t *s)
{
	return s->pts;
}

int sim_serial_open(sim_serial_t *s, int (*make_link)(const char *link, const char *target))
{
	struct termios tio;

	if (openpty(&s->master, &s->slave_fd, NULL, NULL, NULL) != 0) {
		cg_log(CG_LOG_ERR, "sim: openpty: %s", strerror(errno));
		return CG_EIO;
	}
	if (ptsname_r(s->master, s->pts, sizeof(s->pts)) != 0) {
		cg_log(CG_LOG_ERR, "sim: ptsname: %s", strerror(errno));
		return CG_EIO;
	}
	/* Raw, above all without echo; the slave side stays open here so that
	 * the line stays up while no client has it open. */
	if (tcgetattr(s->slave_fd, &tio) != 0) {
		cg_log(CG_LOG_ERR, "sim: tcgetattr %s: %s", s->pts, strerror(errno));
		return CG_EIO;
	}
	cfmakeraw(&tio);
	cfsetspeed(&tio, B9600);
	if (tcsetattr(s->slave_fd, TCSANOW, &tio) != 0) {
		cg_log(CG_LOG_ERR, "sim: tcsetattr %s: %s", s->pts, strerror(errno));
		return CG_EIO;
	}
	fcntl(s->master, F_SETFD, FD_CLOEXEC);
	fcntl(s->slave_fd, F_SETFD, FD_CLOEXEC);
	/* Non-blocking: a client that does not read fills the pty, and then
	 * frames are lost as on a real line instead of stalling the device. */
	if (fcntl(s->master, F_SETFL, fcntl(s->master, F_GETFL) | O_NONBLOCK) != 0) {
		cg_log(CG_LOG_ERR, "sim: fcntl: %s", strerror(errno));
		return CG_EIO;
	}
	if (s->link) {
		if (make_link(s->link, s->pts))
			return CG_EIO;
		s->link_made = true;
	}
	snprintf(s->name, sizeof(s->name), "serial %s (%s)", sim_serial_name(s), s->dev->name);
	cg_log(CG_LOG_INFO, "sim: %s%s%s", s->name, s->link ? " -> " : "", s->link ? s->pts : "");
	return 0;
}

/* ---- the device ---- */

static double ser_random_unit(sim_serial_t *s)
{
	return (double)(sim_random_next(&s->rng) >> 11) * 0x1.0p-53;
}

static bool ser_chance(sim_serial_t *s, double pct)
{
	return pct > 0 && ser_random_unit(s) * 100.0 < pct;
}

static double ser_elapsed_s(const sim_serial_t *s, int64_t now)
{
	return (double)(now - s->start_ms) / 1000.0;
}

/* True when the faults apply at now. */
static bool ser_in_window(const sim_serial_t *s, int64_t now)
{
	double t = ser_elapsed_s(s, now);

	return t >= s->after_s && t < s->until_s;
}

/* Writes bytes to the pty; what does not fit is lost, as on a line whose
 * reader is away. */
static void ser_write(sim_serial_t *s, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(s->master, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->dropped++;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* A PM2.5 level in ug/m3 that drifts over minutes, with a little jitter. */
static double ser_pm25(sim_serial_t *s, int64_t now)
{
	double t = ser_elapsed_s(s, now);

	return 14.0 + 8.0 * sin(t / 120.0) + 2.0 * ser_random_unit(s);
}

static void put16be(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The PMS5003's data frame at now: 42 4D, length 28, 13 words (CF=1 and
 * atmospheric PM, six particle counts per 0.1 L, reserved), sum of the 30
 * bytes. */
static size_t ser_pms_frame(sim_serial_t *s, int64_t now, uint8_t *f)
{
	static const double per_ug[6] = {90, 27, 5, 0.6, 0.2, 0.05};
	double pm25 = ser_pm25(s, now);
	unsigned pm[3] = {(unsigned)lround(pm25 * 0.7), (unsigned)lround(pm25),
	                  (unsigned)lround(pm25 * 1.4)};
	unsigned sum = 0;

	f[0] = 0x42;
	f[1] = 0x4D;
	put16be(f + 2, 28);
	for (int i = 0; i < 3; i++) {
		put16be(f + 4 + 2 * i, pm[i]);
		put16be(f + 10 + 2 * i, pm[i]);
	}
	for (int i = 0; i < 6; i++)
		put16be(f + 16 + 2 * i, (unsigned)lround(pm25 * per_ug[i]));
	put16be(f + 28, 0x9700);
	for (int i = 0; i < 30; i++)
		sum += f[i];
	put16be(f + 30, sum);
	return 32;
}

/* The SDS011's data frame at now: AA C0, PM2.5 and PM10 in 0.1 ug/m3
 * little endian, id, sum of bytes 2-7, AB. */
static size_t ser_sds_frame(sim_serial_t *s, int64_t now, uint8_t *f)
{
	double pm25 = ser_pm25(s, now);
	unsigned pm25_raw = (unsigned)lround(pm25 * 10);
	unsigned pm10_raw = (unsigned)lround(pm25 * 16);
	unsigned sum = 0;

	f[0] = 0xAA;
	f[1] = 0xC0;
	f[2] = (uint8_t)pm25_raw;
	f[3] = (uint8_t)(pm25_raw >> 8);
	f[4] = (uint8_t)pm10_raw;
	f[5] = (uint8_t)(pm10_raw >> 8);
	f[6] = 0xA1;
	f[7] = 0x60;
	for (int i = 2; i <= 7; i++)
		sum += f[i];
	f[8] = (uint8_t)sum;
	f[9] = 0xAB;
	return 10;
}

/* The A02YYUW's frame at now: FF H L SUM, a car (about 0.9 m below the
 * sensor) for every other period, the empty bay's floor (about 2.6 m)
 * otherwise. */
static size_t ser_a02_frame(sim_serial_t *s, int64_t now, uint8_t *f)
{
	bool car = fmod(ser_elapsed_s(s, now), 2 * s->period_s) >= s->period_s;
	unsigned mm = (unsigned)lround((car ? 900 : 2600) + 40 * ser_random_unit(s) - 20);

	f[0] = 0xFF;
	f[1] = (uint8_t)(mm >> 8);
	f[2] = (uint8_t)mm;
	f[3] = (uint8_t)(0xFF + f[1] + f[2]);
	return 4;
}

/* Sends one data frame, with the faults that apply now: noise bytes before
 * it (never the frame's start byte, so that noise cannot forge a frame the
 * checksum would then have to catch), or a wrong checksum. */
static void ser_send_frame(sim_serial_t *s, int64_t now)
{
	uint8_t f[SER_FRAME_MAX], noise[8];
	size_t n = s->dev->frame(s, now, f);
	bool faults = ser_in_window(s, now);

	if (faults && ser_chance(s, s->noise_pct)) {
		size_t k = 1 + (size_t)(sim_random_next(&s->rng) % sizeof(noise));

		for (size_t i = 0; i < k; i++) {
			noise[i] = (uint8_t)sim_random_next(&s->rng);
			if (noise[i] == f[0])
				noise[i] ^= 0x01;
		}
		ser_write(s, noise, k);
		s->noise_bytes += k;
	}
	if (faults && ser_chance(s, s->badsum_pct)) {
		f[n - 1 - s->dev->sum_from_end] ^= 0x5A;
		s->bad_frames++;
	}
	ser_write(s, f, n);
	s->frames++;
}

/* Handles one PMS5003 command `42 4D CMD DH DL sumH sumL`. */
static void ser_pms_command(sim_serial_t *s, const uint8_t *c, int64_t now)
{
	unsigned sum = 0;

	for (int i = 0; i < 5; i++)
		sum += c[i];
	if ((unsigned)(c[5] << 8 | c[6]) != sum) {
		s->bad_commands++;
		return;
	}
	s->commands++;
	if (c[2] == 0xE4) {
		s->asleep = c[4] == 0;
		return;
	}
	if (s->asleep)
		return;
	if (c[2] == 0xE1) {
		/* Answered like a PMS7003: 42 4D 00 04 E1 MODE sum. */
		uint8_t ack[8] = {0x42, 0x4D, 0x00, 0x04, 0xE1, c[4] ? 0x01 : 0x00};

		s->streaming = c[4] != 0;
		sum = 0;
		for (int i = 0; i < 6; i++)
			sum += ack[i];
		put16be(ack + 6, sum);
		ser_write(s, ack, sizeof(ack));
	} else if (c[2] == 0xE2 && !s->streaming) {
		ser_send_frame(s, now);
	}
}

/* Handles one SDS011 command: `AA B4`, data 1-15, sum of the data, `AB`. */
static void ser_sds_command(sim_serial_t *s, const uint8_t *c, int64_t now)
{
	uint8_t reply[10] = {0xAA, 0xC5, c[2], c[3], c[4], 0x00, 0xA1, 0x60, 0x00, 0xAB};
	unsigned sum = 0;

	for (int i = 2; i <= 16; i++)
		sum += c[i];
	if ((sum & 0xFF) != c[17] || c[18] != 0xAB) {
		s->bad_commands++;
		return;
	}
	/* Commands to another device id are not for this one. */
	if (!((c[15] == 0xFF && c[16] == 0xFF) || (c[15] == 0xA1 && c[16] == 0x60)))
		return;
	s->commands++;
	if (c[2] == 0x06) {
		if (c[3] == 1)
			s->asleep = c[4] == 0;
		reply[4] = s->asleep ? 0 : 1;
	} else if (s->asleep) {
		return; /* asleep, it hears only the work command */
	} else if (c[2] == 0x02) {
		if (c[3] == 1)
			s->streaming = c[4] == 0;
		reply[4] = s->streaming ? 0 : 1;
	} else if (c[2] == 0x04) {
		ser_send_frame(s, now);
		return;
	} else {
		return; /* the other settings are not simulated */
	}
	for (int i = 2; i <= 7; i++)
		reply[8] = (uint8_t)(reply[8] + reply[i]);
	ser_write(s, reply, sizeof(reply));
}

/* Takes the complete commands out of the receive buffer, skipping bytes
 * that start none. A device without commands drops its input. */
static void ser_commands(sim_serial_t *s, int64_t now)
{
	const ser_device_t *d = s->dev;
	size_t i = 0;

	if (!d->command) {
		s->rx_len = 0;
		return;
	}
	while (i < s->rx_len) {
		if (s->rx[i] != d->command_start[0] ||
		    (i + 1 < s->rx_len && s->rx[i + 1] != d->command_start[1])) {
			i++;
			continue;
		}
		if (s->rx_len - i < d->command_len)
			break;
		d->command(s, s->rx + i, now);
		i += d->command_len;
	}
	memmove(s->rx, s->rx + i, s->rx_len - i);
	s->rx_len -= i;
}

/* Powers the device on, in its default mode. */
static void ser_power_on(sim_serial_t *s, int64_t now)
{
	s->streaming = s->dev->streams_at_power_on;
	s->asleep = false;
	s->rx_len = 0;
	s->next_stream_ms = now + s->dev->stream_ms;
	s->next_reboot_ms = s->reboot_s > 0 ? now + (int64_t)(s->reboot_s * 1000) : INT64_MAX;
}

/* The device's thread: reads commands, answers them, streams when it does,
 * reboots on schedule; a silent device reads and drops everything. */
static void *ser_main(void *arg)
{
	sim_serial_t *s = arg;

	ser_power_on(s, s->start_ms);
	for (;;) {
		struct pollfd fds[2] = {{.fd = s->wake_fd, .events = POLLIN},
		                        {.fd = s->master, .events = POLLIN}};
		int64_t now = cg_mono_ms(), wait = SER_MAX_WAIT_MS;
		bool silent;
		ssize_t n;

		if (s->next_stream_ms - now < wait)
			wait = s->next_stream_ms > now ? s->next_stream_ms - now : 0;
		if (poll(fds, 2, (int)wait) < 0 && errno != EINTR) {
			cg_log(CG_LOG_ERR, "sim: %s: poll: %s", s->name, strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		now = cg_mono_ms();
		silent = s->silent && ser_in_window(s, now);
		if (now >= s->next_reboot_ms) {
			cg_log(CG_LOG_INFO, "sim: %s: power cycle", s->name);
			s->reboots++;
			ser_power_on(s, now);
		}
		if (fds[1].revents & POLLIN) {
			if (s->rx_len == sizeof(s->rx))
				s->rx_len = 0; /* full of noise */
			n = read(s->master, s->rx + s->rx_len, sizeof(s->rx) - s->rx_len);
			if (n > 0) {
				s->rx_len += (size_t)n;
				if (silent)
					s->rx_len = 0;
				else
					ser_commands(s, now);
			}
		}
		if (now >= s->next_stream_ms) {
			if (s->streaming && !s->asleep && !silent)
				ser_send_frame(s, now);
			s->next_stream_ms = now + s->dev->stream_ms;
		}
	}
	return NULL;
}

int sim_serial_start(sim_serial_t *s, int wake_fd, int64_t start_ms, uint64_t seed)
{
	s->wake_fd = wake_fd;
	s->start_ms = start_ms;
	s->rng = seed;
	if (pthread_create(&s->thread, NULL, ser_main, s) != 0) {
		cg_log(CG_LOG_ERR, "sim: cannot start a thread for %s", s->name);
		return CG_EIO;
	}
	s->running = true;
	return 0;
}

void sim_serial_join(sim_serial_t *s)
{
	if (!s->running)
		return;
	pthread_join(s->thread, NULL);
	s->running = false;
	cg_log(CG_LOG_INFO,
	       "sim: %s: %" PRIu64 " commands (%" PRIu64 " bad), %" PRIu64 " frames (%" PRIu64
	       " with a bad checksum), %" PRIu64 " noise bytes, %" PRIu64 " writes lost, %" PRIu64
	       " power cycles",
	       s->name, s->commands, s->bad_commands, s->frames, s->bad_frames, s->noise_bytes,
	       s->dropped, s->reboots);
}

void sim_serial_free(sim_serial_t *s)
{
	char target[sizeof(s->pts)];
	ssize_t n;

	if (!s)
		return;
	if (s->link_made) {
		n = readlink(s->link, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = '\0';
			if (strcmp(target, s->pts) == 0 && unlink(s->link) != 0)
				cg_log(CG_LOG_WARNING, "sim: cannot remove %s: %s", s->link,
				       strerror(errno));
		}
	}
	if (s->master >= 0)
		close(s->master);
	if (s->slave_fd >= 0)
		close(s->slave_fd);
	free(s);
}
