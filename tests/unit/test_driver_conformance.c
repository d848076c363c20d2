/* Conformance of every driver: ops, lifecycle, config checks, parsers, noise, files it needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/reading.h"
#include "drivers/a02yyuw/a02yyuw.h"
#include "drivers/driver.h"
#include "drivers/modbus/decode.h"
#include "drivers/pms5003/pms5003.h"
#include "drivers/sds011/sds011.h"
#include "drivers/serial/serial_frame.h"
#include "drivers/template/template.h"
#include "serial_device.h"
#include "tools/sim/sim_serial.h"

extern const cg_driver_t cg_template_driver;

/* Drivers that are built but not registered, tested all the same. */
static const cg_driver_t *const extra_drivers[] = {&cg_template_driver, NULL};

#define FUZZ_ITERATIONS 100000
#define FUZZ_SEED       0x5EED1234u

/*
 * The noise test: 60 s of random bytes at 9600 baud (10 bits a byte), fed
 * to every serial driver in NOISE_SEGMENTS parts. With this seed the noise
 * holds 4 frames the A02YYUW parser accepts, one of them with a distance in
 * the sensor's range (quality ok): a driver that trusts one frame publishes
 * them (see docs/reliability.md).
 */
#define NOISE_BYTES    57600
#define NOISE_SEGMENTS 6
#define NOISE_SEED     322u
#define NOISE_RSS_KB   64 /* the most RSS may grow from the first part to the last */

/*
 * What the test needs to know of each driver, keyed by its name. A driver
 * registered in drivers/registry.c without a row here fails the test: add
 * one with a sensor object its check() accepts, one object per way of
 * getting each of its keys wrong, and its frame parser (or, for a driver
 * whose framing is a library's, a function that feeds its own decoding
 * random bytes).
 */
typedef struct sample {
	const char *driver;
	const char *good;
	const char *const *bad; /* NULL-terminated */
	cg_frame_parse_fn parse;
	size_t frame_size; /* of the parser's decoded frame struct */
	const uint8_t *valid_frame;
	size_t valid_len;
	void (*feed)(const uint8_t *bytes, size_t len);
} sample_t;

/* ---- per-driver samples ---- */

static const char *const modbus_bad[] = {
    "{\"id\":\"s\",\"driver\":\"modbus\"}",
    "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"\"}",
    "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"no-such-profile\"}",
    "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"aqt530\",\"unit_id\":256}",
    "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"aqt530\",\"unit_id\":1.5}",
    "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"aqt530\",\"merge\":\"yes\"}",
    "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"aqt530\",\"merge_gap\":101}",
    NULL,
};

static const char *const pms5003_bad[] = {
    "{\"id\":\"s\",\"driver\":\"pms5003\",\"warmup_s\":-1}",
    "{\"id\":\"s\",\"driver\":\"pms5003\",\"warmup_s\":601}",
    "{\"id\":\"s\",\"driver\":\"pms5003\",\"warmup_s\":\"30\"}",
    "{\"id\":\"s\",\"driver\":\"pms5003\",\"warmup_s\":2.5}",
    NULL,
};

static const char *const sds011_bad[] = {
    "{\"id\":\"s\",\"driver\":\"sds011\",\"warmup_s\":-1}",
    "{\"id\":\"s\",\"driver\":\"sds011\",\"warmup_s\":true}",
    NULL,
};

static const char *const a02yyuw_bad[] = {
    "{\"id\":\"s\",\"driver\":\"a02yyuw\",\"occupied_below_mm\":10}",
    "{\"id\":\"s\",\"driver\":\"a02yyuw\",\"occupied_below_mm\":\"1500\"}",
    "{\"id\":\"s\",\"driver\":\"a02yyuw\",\"hysteresis_mm\":-5}",
    "{\"id\":\"s\",\"driver\":\"a02yyuw\",\"hysteresis_mm\":2001}",
    "{\"id\":\"s\",\"driver\":\"a02yyuw\",\"occupied_below_mm\":100,\"hysteresis_mm\":200}",
    NULL,
};

static const char *const template_bad[] = {
    "{\"id\":\"s\",\"driver\":\"template\",\"address\":256}",
    "{\"id\":\"s\",\"driver\":\"template\",\"address\":\"1\"}",
    NULL,
};

static const uint8_t pms5003_valid[32] = {
    0x42, 0x4D, 0x00, 0x1C, 0x00, 0x05, 0x00, 0x07, 0x00, 0x09, 0x00, 0x04, 0x00, 0x06, 0x00, 0x08,
    0x03, 0x20, 0x00, 0xF0, 0x00, 0x32, 0x00, 0x06, 0x00, 0x02, 0x00, 0x01, 0x97, 0x00, 0x02, 0xB7};
static const uint8_t sds011_valid[10] = {0xAA, 0xC0, 0xD4, 0x04, 0x3A,
                                         0x0A, 0xA1, 0x60, 0x1D, 0xAB};
static const uint8_t a02yyuw_valid[4] = {0xFF, 0x07, 0xA1, 0xA7};
static const uint8_t template_valid[8] = {0x5A, 0x05, 0x01, 0x00, 0x7B, 0x01, 0xC8, 0xA4};

/* The Modbus driver's framing is libmodbus's; what is ours is the register
 * decoding, so random registers go through every type and word order. */
static void modbus_feed(const uint8_t *bytes, size_t len)
{
	uint16_t regs[4] = {0};
	double raw;

	for (size_t i = 0; i < 4 && 2 * i + 1 < len; i++)
		regs[i] = (uint16_t)(bytes[2 * i] << 8 | bytes[2 * i + 1]);
	for (int t = CG_TYPE_U16; t <= CG_TYPE_F64; t++)
		for (int o = CG_ORDER_ABCD; o <= CG_ORDER_DCBA; o++)
			assert_int_equal(
			    cg_decode_registers(regs, (cg_type_t)t, (cg_order_t)o, &raw), 0);
	assert_int_not_equal(cg_decode_registers(regs, CG_TYPE_BOOL, CG_ORDER_ABCD, &raw), 0);
}

static const sample_t samples[] = {
    {.driver = "modbus",
     .good = "{\"id\":\"s\",\"driver\":\"modbus\",\"profile\":\"aqt530\",\"unit_id\":3}",
     .bad = modbus_bad,
     .feed = modbus_feed},
    {.driver = "pms5003",
     .good = "{\"id\":\"s\",\"driver\":\"pms5003\",\"warmup_s\":0}",
     .bad = pms5003_bad,
     .parse = cg_pms5003_parse,
     .frame_size = sizeof(cg_pms5003_frame_t),
     .valid_frame = pms5003_valid,
     .valid_len = sizeof(pms5003_valid)},
    {.driver = "sds011",
     .good = "{\"id\":\"s\",\"driver\":\"sds011\"}",
     .bad = sds011_bad,
     .parse = cg_sds011_parse,
     .frame_size = sizeof(cg_sds011_frame_t),
     .valid_frame = sds011_valid,
     .valid_len = sizeof(sds011_valid)},
    {.driver = "a02yyuw",
     .good = "{\"id\":\"s\",\"driver\":\"a02yyuw\",\"occupied_below_mm\":1200,\"hysteresis_mm\":0}",
     .bad = a02yyuw_bad,
     .parse = cg_a02yyuw_parse,
     .frame_size = sizeof(cg_a02yyuw_frame_t),
     .valid_frame = a02yyuw_valid,
     .valid_len = sizeof(a02yyuw_valid)},
    {.driver = "template",
     .good = "{\"id\":\"s\",\"driver\":\"template\",\"address\":7}",
     .bad = template_bad,
     .parse = cg_template_parse,
     .frame_size = sizeof(cg_template_frame_t),
     .valid_frame = template_valid,
     .valid_len = sizeof(template_valid)},
};

#define N_SAMPLES (sizeof(samples) / sizeof(samples[0]))

/* The keys the config owns for every sensor; a driver must not claim them. */
static const char *const common_keys[] = {"id", "bus", "driver", "interval_s", "format", NULL};

static const char *const profile_dirs[] = {CG_SOURCE_DIR "/drivers/profiles", NULL};
static const cg_driver_env_t env = {.config_path = "conformance.json",
                                    .profile_dirs = profile_dirs};

/* ---- helpers ---- */

/* Calls fn for every registered driver, then every extra one. */
static void each_driver(void (*fn)(const cg_driver_t *d))
{
	for (size_t i = 0; cg_drivers[i]; i++)
		fn(cg_drivers[i]);
	for (size_t i = 0; extra_drivers[i]; i++)
		fn(extra_drivers[i]);
}

static const sample_t *sample_for(const char *name)
{
	for (size_t i = 0; i < N_SAMPLES; i++)
		if (strcmp(samples[i].driver, name) == 0)
			return &samples[i];
	return NULL;
}

static const sample_t *require_sample(const cg_driver_t *d)
{
	const sample_t *s = sample_for(d->name);

	if (!s)
		fail_msg("driver \"%s\" has no conformance samples: add a row for it to samples[] "
		         "in tests/unit/test_driver_conformance.c",
		         d->name);
	return s;
}

/* A small deterministic generator, so that a failure repeats on every machine. */
static uint32_t next_random(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* ---- the checks, one function per behaviour, run for every driver ---- */

static void has_samples(const cg_driver_t *d)
{
	require_sample(d);
}

static void ops_present(const cg_driver_t *d)
{
	size_t n = 0;

	assert_non_null(d->name);
	assert_true(d->name[0] != '\0');
	assert_non_null(d->open);
	assert_non_null(d->poll);
	assert_non_null(d->close);
	assert_int_not_equal(d->bus_types, 0);
	assert_int_equal(
	    d->bus_types & ~(unsigned)(CG_BUS_MODBUS_RTU | CG_BUS_MODBUS_TCP | CG_BUS_SERIAL |
	                                CG_BUS_MODBUS_RTU_TCP),
	    0);
	assert_non_null(d->keys);
	for (n = 0; n < 64 && d->keys[n].name; n++) {
		const cg_key_t *k = &d->keys[n];

		assert_true(k->name[0] != '\0');
		/* Every value lands inside the options struct. */
		assert_true(k->field == CG_F_NONE || k->offset < d->options_size);
		for (size_t j = 0; j < n; j++)
			if (strcmp(d->keys[j].name, k->name) == 0)
				fail_msg("driver %s lists key %s twice", d->name, k->name);
		for (size_t j = 0; common_keys[j]; j++)
			if (strcmp(common_keys[j], k->name) == 0)
				fail_msg("driver %s claims the common key %s", d->name, k->name);
	}
	if (n == 64)
		fail_msg("driver %s: keys not NULL-terminated (or more than 63)", d->name);
}

static void poll_before_open(const cg_driver_t *d)
{
	cg_transport_t t = {.type = CG_BUS_SERIAL, .fd = -1, .timeout_ms = 10};
	cg_reading_t r;

	cg_reading_init(&r);
	assert_int_equal(d->poll(NULL, &t, &r), CG_ESTATE);
	assert_int_equal(d->poll(NULL, NULL, &r), CG_ESTATE);
	assert_int_equal(r.n_values, 0);
	assert_string_equal(cg_quality_name(r.quality), "ok");
}

static void close_twice(const cg_driver_t *d)
{
	const sample_t *s = require_sample(d);
	cJSON *sensor = cJSON_Parse(s->good);
	cg_diag_t diag = {0};
	cg_driver_options_t *options = NULL;
	void *state = NULL;

	d->close(NULL);
	d->close(NULL);
	assert_non_null(sensor);
	assert_int_equal(cg_driver_options(d, sensor, "/sensors/7", &env, &diag, &options), 0);
	assert_int_equal(d->open(options, &env, &state), 0);
	assert_non_null(state);
	d->close(state);
	d->close(NULL);
	cg_driver_options_free(d, options);
	cg_driver_options_free(d, NULL);
	cJSON_Delete(sensor);
}

static void good_config_accepted(const cg_driver_t *d)
{
	const sample_t *s = require_sample(d);
	cJSON *sensor = cJSON_Parse(s->good);
	cg_diag_t diag = {0};
	cg_driver_options_t *options = NULL;

	assert_non_null(sensor);
	assert_int_equal(cg_driver_options(d, sensor, "/sensors/7", &env, &diag, &options), 0);
	for (size_t i = 0; i < diag.n; i++)
		fail_msg("driver %s: good sample refused: %s", d->name, diag.lines[i]);
	assert_non_null(options);
	cg_driver_options_free(d, options);
	cg_diag_free(&diag);
	cJSON_Delete(sensor);
}

static void bad_configs_refused(const cg_driver_t *d)
{
	const sample_t *s = require_sample(d);

	assert_non_null(s->bad);
	for (size_t i = 0; s->bad[i]; i++) {
		cJSON *sensor = cJSON_Parse(s->bad[i]);
		cg_diag_t diag = {0};
		cg_driver_options_t *options = (cg_driver_options_t *)&diag;

		assert_non_null(sensor);
		if (cg_driver_options(d, sensor, "/sensors/7", &env, &diag, &options) == 0)
			fail_msg("driver %s accepted %s", d->name, s->bad[i]);
		if (diag.n == 0)
			fail_msg("driver %s refused %s without saying why", d->name, s->bad[i]);
		for (size_t j = 0; j < diag.n; j++)
			if (!strstr(diag.lines[j], "/sensors/7"))
				fail_msg("driver %s: \"%s\" lacks the sensor's pointer", d->name,
				         diag.lines[j]);
		/* Nothing refused ever reaches open(). */
		assert_null(options);
		cg_diag_free(&diag);
		cJSON_Delete(sensor);
	}
	/* Every key the driver owns has at least one bad sample. */
	for (size_t k = 0; d->keys[k].name; k++) {
		char quoted[64];
		bool covered = false;

		snprintf(quoted, sizeof(quoted), "\"%s\"", d->keys[k].name);
		for (size_t i = 0; s->bad[i] && !covered; i++)
			covered = strstr(s->bad[i], quoted) != NULL;
		if (!covered)
			fail_msg("driver %s: no bad sample for key %s", d->name, d->keys[k].name);
	}
}

/* Checks one parser answer against the cg_frame_parse_fn contract. */
static void check_answer(const char *name, int rc, size_t len, size_t frame_len)
{
	if (rc != 0 && rc != CG_EAGAIN && rc != CG_EFRAME && rc != CG_ECRC)
		fail_msg("%s parser returned %d", name, rc);
	if (rc == 0 && (frame_len == 0 || frame_len > len))
		fail_msg("%s parser: good frame of %zu bytes in %zu", name, frame_len, len);
	if (rc == CG_ECRC && (frame_len == 0 || frame_len > len))
		fail_msg("%s parser: bad frame of %zu bytes in %zu", name, frame_len, len);
}

static void random_bytes_never_crash(const cg_driver_t *d)
{
	const sample_t *s = require_sample(d);
	uint32_t x = FUZZ_SEED;
	uint8_t buf[600];
	void *frame;
	size_t len, n, start, frame_len;
	int rc;

	if (!s->parse && !s->feed)
		fail_msg("driver %s: its sample names neither a parser nor a feed", d->name);
	/* The decoded frame is sized exactly, so ASan sees a write past it. */
	frame = malloc(s->frame_size ? s->frame_size : 1);
	assert_non_null(frame);
	for (long it = 0; it < FUZZ_ITERATIONS; it++) {
		uint32_t mode = next_random(&x) % 4;

		len = mode == 3 ? next_random(&x) % sizeof(buf) : next_random(&x) % 48;
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)next_random(&x);
		/* Half of the inputs start from a valid frame with a few bytes
		 * changed, to reach past the start-byte checks. */
		if (s->valid_frame && mode < 2) {
			len = s->valid_len + next_random(&x) % 8;
			memcpy(buf, s->valid_frame, s->valid_len);
			for (int k = 0; k < 1 + (int)(mode); k++)
				buf[next_random(&x) % len] = (uint8_t)next_random(&x);
			if (next_random(&x) % 4 == 0)
				len = next_random(&x) % (len + 1);
		}
		if (s->feed) {
			s->feed(buf, len);
			continue;
		}
		n = 0;
		rc = s->parse(buf, len, &n, frame);
		check_answer(d->name, rc, len, n);
		rc = cg_frame_scan(buf, len, s->parse, frame, &start, &frame_len, NULL);
		if (rc == 0 && (start + frame_len > len || frame_len == 0))
			fail_msg("%s: scan found %zu+%zu in %zu", d->name, start, frame_len, len);
		if (rc != 0 && (rc != CG_EAGAIN || start > len))
			fail_msg("%s: scan returned %d, start %zu of %zu", d->name, rc, start, len);
	}
	/* The valid frame itself parses. */
	if (s->parse) {
		assert_int_equal(s->parse(s->valid_frame, s->valid_len, &n, frame), 0);
		assert_int_equal(n, s->valid_len);
	}
	free(frame);
}

/*
 * Counts the good frames parse finds in buf[0, len), as a reader that keeps
 * scanning after each one would: how many frames the noise forges for a
 * driver that trusts a single frame.
 */
static size_t forged_frames(const uint8_t *buf, size_t len, cg_frame_parse_fn parse, void *frame)
{
	size_t n = 0, off = 0, start, frame_len;

	while (off < len &&
	       cg_frame_scan(buf + off, len - off, parse, frame, &start, &frame_len, NULL) == 0) {
		n++;
		off += start + frame_len;
	}
	return n;
}

/* The anonymous resident memory of this process (heap, stacks), in KiB:
 * what a leak grows. Pages of code first run late are file-backed and left
 * out, so that they do not pass for growth. */
static long rss_kb(void)
{
	long pages = 0, resident = 0, shared = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld %ld %ld", &pages, &resident, &shared), 3);
	fclose(f);
	return (resident - shared) * (sysconf(_SC_PAGESIZE) / 1024);
}

/* CPU time this thread has used, in nanoseconds (not wall time). */
static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The median of three CPU times. */
static double median3(const int64_t *v)
{
	int64_t a = v[0], b = v[1], c = v[2];

	if ((a <= b && b <= c) || (c <= b && b <= a))
		return (double)b;
	if ((b <= a && a <= c) || (c <= a && a <= b))
		return (double)a;
	return (double)c;
}

/* Frames the noise forges, summed over the serial drivers, so that the
 * test can tell when its seed proves nothing. */
static size_t noise_forged_total;

/*
 * Feeds the noise to one serial driver through its real poll(), over a
 * socketpair standing in for the UART (a socket has no input queue to
 * flush, so every byte goes through the driver's read path), as fast as it
 * reads: the driver polls until each part is written and a poll sees
 * nothing at all. Checks that no poll publishes a reading, and that RSS and
 * CPU per byte stay flat from the first half to the second.
 */
static void noise_never_publishes(const cg_driver_t *d)
{
	const sample_t *s = require_sample(d);
	const size_t part = NOISE_BYTES / NOISE_SEGMENTS;
	cg_transport_t t = {.type = CG_BUS_SERIAL, .timeout_ms = 50};
	uint8_t *noise, sink[256];
	int64_t cpu[NOISE_SEGMENTS]; /* of each part; NOISE_SEGMENTS >= 6 */
	size_t polls = 0, published = 0, ok = 0, forged = 0;
	long rss_first = 0, rss_last = 0;
	double half1, half2;
	cJSON *sensor;
	cg_driver_options_t *options = NULL;
	cg_diag_t diag = {0};
	void *state = NULL, *frame;
	uint32_t x = NOISE_SEED;
	int sv[2], rc, queued = 0;

	if (!(d->bus_types & CG_BUS_SERIAL))
		return;
	noise = malloc(NOISE_BYTES);
	frame = malloc(s->frame_size ? s->frame_size : 1);
	assert_non_null(noise);
	assert_non_null(frame);
	for (size_t i = 0; i < NOISE_BYTES; i++)
		noise[i] = (uint8_t)next_random(&x);
	if (s->parse)
		forged = forged_frames(noise, NOISE_BYTES, s->parse, frame);
	noise_forged_total += forged;

	sensor = cJSON_Parse(s->good);
	assert_non_null(sensor);
	assert_int_equal(cg_driver_options(d, sensor, "/sensors/7", &env, &diag, &options), 0);
	assert_int_equal(d->open(options, &env, &state), 0);
	cJSON_Delete(sensor);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t.fd = sv[0];
	for (int seg = 0; seg < NOISE_SEGMENTS; seg++) {
		int64_t cpu0 = thread_cpu_ns();
		size_t off = 0;

		do {
			cg_reading_t r;

			/* Writes what the socket takes, never blocking: the driver
			 * reads it at its own pace. */
			while (off < part) {
				ssize_t n =
				    send(sv[1], noise + seg * part + off, part - off, MSG_DONTWAIT);

				if (n <= 0)
					break;
				off += (size_t)n;
			}
			cg_reading_init(&r);
			snprintf(r.sensor, sizeof(r.sensor), "noise");
			rc = d->poll(state, &t, &r);
			polls++;
			if (rc == 0) {
				published++;
				ok += r.quality == CG_QUALITY_OK;
			}
			/* The commands the driver sent are read and dropped. */
			while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
				;
			if (polls > 100000)
				fail_msg("driver %s: polls never end on noise", d->name);
		} while (off < part || rc != CG_ETIMEDOUT);
		cpu[seg] = thread_cpu_ns() - cpu0;
		assert_int_equal(ioctl(sv[0], FIONREAD, &queued), 0);
		assert_int_equal(queued, 0);
		if (seg == 0)
			rss_first = rss_kb();
		rss_last = rss_kb();
	}
	half1 = median3(cpu) / (double)part;
	half2 = median3(cpu + NOISE_SEGMENTS - 3) / (double)part;
	print_message("noise %s: %d bytes, %zu frames its parser accepts, %zu polls, %zu readings "
	              "(%zu ok), RSS %ld -> %ld KiB, CPU %.1f then %.1f ns/byte\n",
	              d->name, NOISE_BYTES, forged, polls, published, ok, rss_first, rss_last,
	              half1, half2);
	if (published)
		fail_msg("driver %s published %zu readings (%zu ok) from %d random bytes", d->name,
		         published, ok, NOISE_BYTES);
	if (rss_last - rss_first > NOISE_RSS_KB)
		fail_msg("driver %s: RSS grew from %ld to %ld KiB on noise", d->name, rss_first,
		         rss_last);
	/* Against the same run's first half, not a clock: a reader whose cost
	 * grows with the bytes it has seen shows here. Medians of three parts,
	 * so that one part slowed by the machine's load does not count. */
	if (half2 > 3 * half1)
		fail_msg("driver %s: CPU per byte grew from %.1f to %.1f ns", d->name, half1,
		         half2);
	close(sv[0]);
	close(sv[1]);
	d->close(state);
	cg_driver_options_free(d, options);
	free(frame);
	free(noise);
}

/* ---- every file a serial driver touches (docs/drivers.md lists them) ---- */

/* Whether the file at path (from the source root) contains needle; a
 * missing file contains nothing. */
static bool source_contains(const char *path, const char *needle)
{
	char full[512];
	FILE *f;
	char *text;
	long size;
	bool found;

	snprintf(full, sizeof(full), "%s/%s", CG_SOURCE_DIR, path);
	f = fopen(full, "rb");
	if (!f)
		return false;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	text = calloc(1, (size_t)size + 1);
	assert_non_null(text);
	found = fread(text, 1, (size_t)size, f) == (size_t)size && strstr(text, needle);
	fclose(f);
	free(text);
	return found;
}

/* Whether the folder at path (from the source root) holds a file. */
static bool folder_has_file(const char *path)
{
	char full[512];
	struct dirent *e;
	bool found = false;
	DIR *dir;

	snprintf(full, sizeof(full), "%s/%s", CG_SOURCE_DIR, path);
	dir = opendir(full);
	if (!dir)
		return false;
	while (!found && (e = readdir(dir)))
		found = e->d_name[0] != '.';
	closedir(dir);
	return found;
}

/* Files found missing for the driver being checked. */
static size_t files_missing;

/* Reports that file lacks what the driver needs there, and why. */
static void missing(const cg_driver_t *d, const char *file, const char *what)
{
	print_error("driver %s: %s: %s\n", d->name, file, what);
	files_missing++;
}

/*
 * Checks that a registered serial driver has everything docs/drivers.md
 * says a new one needs, each file named when something is missing. What
 * is linked (the simulator's and the test harness's devices) is asked;
 * the rest is looked for in the source tree.
 */
static void serial_driver_everywhere(const cg_driver_t *d)
{
	const char *n = d->name;
	char path[256], needle[256];

	if (!(d->bus_types & CG_BUS_SERIAL))
		return;
	snprintf(path, sizeof(path), "drivers/%s/%s.h", n, n);
	if (!source_contains(path, "_parse("))
		missing(d, path, "no header declaring the frame parser cg_NAME_parse()");
	snprintf(needle, sizeof(needle), "%s/%s.c", n, n);
	if (!source_contains("drivers/CMakeLists.txt", needle))
		missing(d, "drivers/CMakeLists.txt", "its .c is not in cg_drivers");
	snprintf(needle, sizeof(needle), "cg_%s_parse", n);
	if (!source_contains("tests/unit/test_frames.c", needle))
		missing(d, "tests/unit/test_frames.c", "no frame tests of its parser");
	if (!device_type_find(n))
		missing(d, "tests/unit/serial_device.c", "no row in device_types[]");
	snprintf(needle, sizeof(needle), "fixture_new(\"%s\"", n);
	if (!source_contains("tests/unit/test_serial_drivers.c", needle))
		missing(d, "tests/unit/test_serial_drivers.c", "no end-to-end test over a pty");
	snprintf(path, sizeof(path), "tests/fuzz/fuzz_%s.c", n);
	if (!source_contains(path, "LLVMFuzzerTestOneInput"))
		missing(d, path, "no fuzz target (copy fuzz_pms5003.c)");
	snprintf(path, sizeof(path), "tests/fuzz/corpus/%s", n);
	if (!folder_has_file(path))
		missing(d, path, "no seed corpus of valid frames");
	snprintf(needle, sizeof(needle), "cg_fuzz_target(%s ", n);
	if (!source_contains("tests/CMakeLists.txt", needle))
		missing(d, "tests/CMakeLists.txt", "no cg_fuzz_target() line");
	if (!sim_serial_knows(n))
		missing(d, "tools/sim/sim_serial.c",
		        "no row in ser_devices[] (citygate-sim --device)");
	snprintf(needle, sizeof(needle), "### `%s`", n);
	if (!source_contains("docs/drivers.md", needle))
		missing(d, "docs/drivers.md", "no reference section (### `NAME`)");
	for (size_t k = 0; d->keys[k].name; k++) {
		snprintf(needle, sizeof(needle), "\"%s\"", d->keys[k].name);
		if (!source_contains("schemas/config.schema.json", needle))
			missing(d, "schemas/config.schema.json",
			        "a key of the driver is not described");
	}
}

/* ---- cmocka wrappers ---- */

static void test_every_driver_has_samples(void **state)
{
	each_driver(has_samples);
}

static void test_ops_present_names_unique(void **state)
{
	each_driver(ops_present);
	for (size_t i = 0; cg_drivers[i]; i++) {
		for (size_t j = 0; j < i; j++)
			if (strcmp(cg_drivers[i]->name, cg_drivers[j]->name) == 0)
				fail_msg("two drivers are called %s", cg_drivers[i]->name);
		for (size_t j = 0; extra_drivers[j]; j++)
			assert_string_not_equal(cg_drivers[i]->name, extra_drivers[j]->name);
		assert_ptr_equal(cg_driver_find(cg_drivers[i]->name), cg_drivers[i]);
	}
	assert_null(cg_driver_find("template"));
	assert_null(cg_driver_find(""));
}

static void test_poll_before_open(void **state)
{
	each_driver(poll_before_open);
}

static void test_close_twice(void **state)
{
	each_driver(close_twice);
}

static void test_good_config_accepted(void **state)
{
	each_driver(good_config_accepted);
}

static void test_bad_configs_refused(void **state)
{
	each_driver(bad_configs_refused);
}

static void test_random_bytes_never_crash(void **state)
{
	each_driver(random_bytes_never_crash);
}

static void test_serial_drivers_everywhere(void **state)
{
	files_missing = 0;
	for (size_t i = 0; cg_drivers[i]; i++)
		serial_driver_everywhere(cg_drivers[i]);
	if (files_missing)
		fail_msg(
		    "%zu files lack a serial driver (listed above; docs/drivers.md, \"Adding a "
		    "serial-frame sensor in C\", says what goes in each)",
		    files_missing);
}

static void test_noise_never_publishes(void **state)
{
	noise_forged_total = 0;
	each_driver(noise_never_publishes);
	/* Noise that forges no frame at all would prove nothing. */
	if (noise_forged_total == 0)
		fail_msg(
		    "the noise of NOISE_SEED forges no frame for any driver: pick another seed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_driver_has_samples),
	    cmocka_unit_test(test_ops_present_names_unique),
	    cmocka_unit_test(test_poll_before_open),
	    cmocka_unit_test(test_close_twice),
	    cmocka_unit_test(test_good_config_accepted),
	    cmocka_unit_test(test_bad_configs_refused),
	    cmocka_unit_test(test_random_bytes_never_crash),
	    cmocka_unit_test(test_noise_never_publishes),
	    cmocka_unit_test(test_serial_drivers_everywhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
