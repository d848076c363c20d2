/* The serial devices the driver tests play on a pty's master side: one table row per device. */
#include "serial_device.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

/* Frames built here from the datasheet layouts, independently of the drivers. */

static void put16be(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t pms_frame(uint8_t *out, uint16_t pm25)
{
	unsigned sum = 0;

	memset(out, 0, 32);
	out[0] = 0x42;
	out[1] = 0x4D;
	put16be(out + 2, 28);
	/* CF=1 words deliberately differ from the atmospheric ones. */
	put16be(out + 4, pm25 + 100u - 2u);
	put16be(out + 6, pm25 + 100u);
	put16be(out + 8, pm25 + 100u + 3u);
	put16be(out + 10, pm25 - 2u);
	put16be(out + 12, pm25);
	put16be(out + 14, pm25 + 3u);
	for (unsigned i = 0; i < 6; i++)
		put16be(out + 16 + 2 * i, 1000u - 100u * i);
	for (int i = 0; i < 30; i++)
		sum += out[i];
	put16be(out + 30, sum);
	return 32;
}

static size_t sds_frame(uint8_t *out, uint16_t pm25_raw)
{
	uint16_t pm10_raw = (uint16_t)(pm25_raw * 2);
	unsigned sum = 0;

	out[0] = 0xAA;
	out[1] = 0xC0;
	out[2] = (uint8_t)pm25_raw;
	out[3] = (uint8_t)(pm25_raw >> 8);
	out[4] = (uint8_t)pm10_raw;
	out[5] = (uint8_t)(pm10_raw >> 8);
	out[6] = 0xA1;
	out[7] = 0x60;
	for (int i = 2; i <= 7; i++)
		sum += out[i];
	out[8] = (uint8_t)sum;
	out[9] = 0xAB;
	return 10;
}

static size_t a02_frame(uint8_t *out, uint16_t mm)
{
	out[0] = 0xFF;
	out[1] = (uint8_t)(mm >> 8);
	out[2] = (uint8_t)mm;
	out[3] = (uint8_t)(0xFF + out[1] + out[2]);
	return 4;
}

static void dev_write(device_t *d, const uint8_t *b, size_t n)
{
	if (write(d->master, b, n) != (ssize_t)n)
		fprintf(stderr, "device: short write\n");
}

void device_send_frame(device_t *d)
{
	static const uint8_t noise[] = {0x00, 0x13, 0x7F, 0x42, 0xAA};
	uint8_t f[DEVICE_FRAME_MAX];
	uint16_t v = d->alternate && d->sent % 2 ? d->alternate : d->value;
	size_t n = d->type->frame(f, v), sum = n - 1 - d->type->sum_from_end;

	d->sent++;
	if (d->noise || d->only_bad) {
		f[sum] ^= 0x5A;
		dev_write(d, noise, sizeof(noise));
		dev_write(d, f, n);
		dev_write(d, noise, 3);
		if (d->only_bad)
			return;
		f[sum] ^= 0x5A;
	}
	dev_write(d, f, n);
}

/* Handles one complete PMS5003 command. */
static void pms_command(device_t *d, const uint8_t *c)
{
	static const uint8_t ack[8] = {0x42, 0x4D, 0x00, 0x04, 0xE1, 0x00, 0x01, 0x74};
	unsigned sum = 0;

	for (int i = 0; i < 5; i++)
		sum += c[i];
	if ((c[5] << 8 | c[6]) != (int)sum) {
		d->bad_commands++;
		return;
	}
	if (c[2] == 0xE1 && c[4] == 0) {
		d->mode_commands++;
		d->active = false;
		dev_write(d, ack, sizeof(ack)); /* answered like a PMS7003 does */
	} else if (c[2] == 0xE4 && c[4] == 1) {
		d->wake_commands++;
	} else if (c[2] == 0xE2 && !d->active) {
		d->reads++;
		device_send_frame(d);
	}
}

/* Handles one complete SDS011 command. */
static void sds_command(device_t *d, const uint8_t *c)
{
	uint8_t reply[10] = {0xAA, 0xC5, c[2], c[3], c[4], 0x00, 0xA1, 0x60, 0x00, 0xAB};
	unsigned sum = 0;

	for (int i = 2; i <= 16; i++)
		sum += c[i];
	if ((sum & 0xFF) != c[17] || c[18] != 0xAB || c[15] != 0xFF || c[16] != 0xFF) {
		d->bad_commands++;
		return;
	}
	for (int i = 2; i <= 7; i++)
		reply[8] = (uint8_t)(reply[8] + reply[i]);
	if (c[2] == 0x02 && c[3] == 1 && c[4] == 1) {
		d->mode_commands++;
		d->active = false;
		dev_write(d, reply, sizeof(reply));
	} else if (c[2] == 0x06 && c[3] == 1 && c[4] == 1) {
		d->wake_commands++;
		dev_write(d, reply, sizeof(reply));
	} else if (c[2] == 0x04) {
		d->reads++;
		device_send_frame(d);
	}
}

static const device_type_t device_types[] = {
    {.name = "pms5003",
     .frame = pms_frame,
     .sum_from_end = 1,
     .command = pms_command,
     .command_len = 7,
     .command_start = {0x42, 0x4D},
     .streams_at_power_on = true,
     .period_ms = 150,
     .value = 25},
    {.name = "sds011",
     .frame = sds_frame,
     .sum_from_end = 1,
     .command = sds_command,
     .command_len = 19,
     .command_start = {0xAA, 0xB4},
     .streams_at_power_on = true,
     .period_ms = 150,
     .value = 25},
    {.name = "a02yyuw",
     .frame = a02_frame,
     .sum_from_end = 0,
     .streams_at_power_on = true,
     .period_ms = 30,
     .value = 2000},
};

const device_type_t *device_type_find(const char *name)
{
	for (size_t i = 0; i < sizeof(device_types) / sizeof(device_types[0]); i++)
		if (strcmp(device_types[i].name, name) == 0)
			return &device_types[i];
	return NULL;
}

/* Takes every complete command out of in[0, *n); skips bytes that start none. */
static void dev_commands(device_t *d, uint8_t *in, size_t *n)
{
	const device_type_t *t = d->type;
	size_t i = 0;

	while (i < *n) {
		if (in[i] != t->command_start[0] ||
		    (i + 1 < *n && in[i + 1] != t->command_start[1])) {
			i++;
			continue;
		}
		if (*n - i < t->command_len)
			break;
		if (d->n_log < DEVICE_LOG_MAX)
			memcpy(d->log[d->n_log++], in + i, t->command_len);
		if (!d->silent)
			t->command(d, in + i);
		i += t->command_len;
	}
	memmove(in, in + i, *n - i);
	*n -= i;
}

static void *device_main(void *arg)
{
	device_t *d = arg;
	uint8_t in[512];
	size_t n_in = 0;
	int64_t next_stream = cg_mono_ms();

	for (;;) {
		struct pollfd p = {.fd = d->master, .events = POLLIN};
		bool streams;

		pthread_mutex_lock(&d->lock);
		if (d->stop) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		pthread_mutex_unlock(&d->lock);
		if (poll(&p, 1, 5) > 0 && (p.revents & POLLIN)) {
			ssize_t k = read(d->master, in + n_in, sizeof(in) - n_in);

			if (k > 0) {
				n_in += (size_t)k;
				pthread_mutex_lock(&d->lock);
				if (d->type->command)
					dev_commands(d, in, &n_in);
				else
					n_in =
					    0; /* e.g. the A02YYUW's RX pin only selects a mode */
				pthread_mutex_unlock(&d->lock);
			}
		}
		pthread_mutex_lock(&d->lock);
		streams = !d->silent && d->active;
		if (streams && cg_mono_ms() >= next_stream) {
			device_send_frame(d);
			next_stream = cg_mono_ms() + d->period_ms;
		}
		pthread_mutex_unlock(&d->lock);
	}
	return NULL;
}

int device_start(device_t *d, const device_type_t *type, int master)
{
	d->type = type;
	d->master = master;
	d->period_ms = type->period_ms;
	d->value = type->value;
	d->active = type->streams_at_power_on;
	pthread_mutex_init(&d->lock, NULL);
	return pthread_create(&d->thread, NULL, device_main, d);
}

void device_stop(device_t *d)
{
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
}
