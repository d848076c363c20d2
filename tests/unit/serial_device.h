/* The serial devices the driver tests play on a pty's master side: one table row per device. */
#ifndef TEST_SERIAL_DEVICE_H
#define TEST_SERIAL_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVICE_LOG_MAX     64
#define DEVICE_COMMAND_MAX 19 /* the longest command a device takes */
#define DEVICE_FRAME_MAX   64 /* the longest data frame a device sends */

typedef struct device device_t;

/*
 * What a device is: one row of device_types[] (serial_device.c) per serial
 * driver, named as the driver. Its frames are built from the datasheet,
 * independently of the driver.
 */
typedef struct device_type {
	const char *name;
	/* Builds the data frame carrying value into out; returns its length. */
	size_t (*frame)(uint8_t *out, uint16_t value);
	size_t sum_from_end; /* where the checksum byte is, counted back from the last byte */
	/* Handles one command of command_len bytes starting with command_start,
	 * under the device's lock; NULL for a device that takes none (its
	 * input is dropped). */
	void (*command)(device_t *d, const uint8_t *c);
	size_t command_len;
	uint8_t command_start[2];
	bool streams_at_power_on; /* sends frames on its own until told otherwise */
	int period_ms;            /* between frames it sends on its own */
	uint16_t value;           /* what it measures at first */
} device_type_t;

/* One device on the master side of a pty, run by a thread. */
struct device {
	const device_type_t *type;
	int master;
	pthread_t thread;
	pthread_mutex_t lock;
	/* Set by the test, under lock. */
	bool stop;
	bool silent;        /* answers and streams nothing (powered off) */
	bool active;        /* sends frames on its own, as after power-up */
	bool noise;         /* noise bytes and a bad-checksum frame before every good frame */
	bool only_bad;      /* every frame it sends has a bad checksum */
	uint16_t value;     /* PMS5003 PM2.5 (ug/m3), SDS011 PM2.5 (0.1 ug/m3), A02YYUW mm */
	uint16_t alternate; /* when not 0, every other frame carries this value instead */
	int period_ms;      /* between frames it sends on its own */
	/* Seen by the device, under lock. */
	int mode_commands; /* passive (PMS5003) or query-mode (SDS011) */
	int wake_commands; /* wake (PMS5003) or work (SDS011) */
	int reads;         /* read or query commands answered */
	int bad_commands;  /* commands with a wrong checksum or layout */
	uint8_t log[DEVICE_LOG_MAX][DEVICE_COMMAND_MAX]; /* the commands received, in order */
	int n_log;
	unsigned sent; /* data frames sent, for alternate */
};

/* The row called name (a driver's name), or NULL. */
const device_type_t *device_type_find(const char *name);

/* Sets d up as a device of type on master, at its power-on defaults, and
 * starts its thread. Returns 0 or an errno value. */
int device_start(device_t *d, const device_type_t *type, int master);

/* Stops d's thread and waits for it; the master stays open. */
void device_stop(device_t *d);

/* Sends one data frame the way the test asked (see device_t). Called under
 * the lock. */
void device_send_frame(device_t *d);

#endif
