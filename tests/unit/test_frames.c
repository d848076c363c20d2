/* Tests of the frame parsers and the serial frame reader, with frames from the datasheets. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/error.h"
#include "drivers/a02yyuw/a02yyuw.h"
#include "drivers/pms5003/pms5003.h"
#include "drivers/sds011/sds011.h"
#include "drivers/serial/serial_frame.h"
#include "drivers/template/template.h"

/* ---- frames, byte by byte from the datasheet layouts ---- */

/* PMS5003: 42 4D, length 28, 13 words; the checksum 0x02B7 is the sum of
 * the 30 bytes before it, worked out by hand and checked by pms_sum(). */
static const uint8_t pms_frame[32] = {
    0x42, 0x4D, 0x00, 0x1C,             /* start, length 28 */
    0x00, 0x05, 0x00, 0x07, 0x00, 0x09, /* PM1, PM2.5, PM10 at CF=1 */
    0x00, 0x04, 0x00, 0x06, 0x00, 0x08, /* PM1, PM2.5, PM10 atmospheric */
    0x03, 0x20, 0x00, 0xF0, 0x00, 0x32, /* > 0.3, 0.5, 1.0 um: 800, 240, 50 */
    0x00, 0x06, 0x00, 0x02, 0x00, 0x01, /* > 2.5, 5.0, 10 um: 6, 2, 1 */
    0x97, 0x00,                         /* reserved: version, error code */
    0x02, 0xB7,                         /* checksum */
};

/* The PMS5003's 8-byte answer to a mode command: a frame, but not a data frame. */
static const uint8_t pms_ack[8] = {0x42, 0x4D, 0x00, 0x04, 0xE1, 0x00, 0x01, 0x74};

/* SDS011, the datasheet's own example: PM2.5 0x04D4 = 123.6, PM10 0x0A3A = 261.8 ug/m3. */
static const uint8_t sds_frame[10] = {0xAA, 0xC0, 0xD4, 0x04, 0x3A, 0x0A, 0xA1, 0x60, 0x1D, 0xAB};

/* SDS011's answer to a setting (report mode query, device A160). */
static const uint8_t sds_reply[10] = {0xAA, 0xC5, 0x02, 0x01, 0x01, 0x00, 0xA1, 0x60, 0x05, 0xAB};

/* A02YYUW: 0x07A1 = 1953 mm, SUM = (FF + 07 + A1) & FF = A7. */
static const uint8_t a02_frame[4] = {0xFF, 0x07, 0xA1, 0xA7};

/* The template's XX answer: address 1, PM2.5 123 (12.3), PM10 456 (45.6). */
static const uint8_t xx_frame[8] = {0x5A, 0x05, 0x01, 0x00, 0x7B, 0x01, 0xC8, 0xA4};

static unsigned pms_sum(const uint8_t *b)
{
	unsigned s = 0;

	for (int i = 0; i < 30; i++)
		s += b[i];
	return s & 0xFFFF;
}

static void test_checksums_of_fixtures(void **state)
{
	unsigned s = 0;

	assert_int_equal(pms_sum(pms_frame), pms_frame[30] << 8 | pms_frame[31]);
	for (int i = 2; i <= 7; i++)
		s += sds_frame[i];
	assert_int_equal(s & 0xFF, sds_frame[8]);
	assert_int_equal((0xFF + a02_frame[1] + a02_frame[2]) & 0xFF, a02_frame[3]);
	s = 0;
	for (int i = 0; i < 7; i++)
		s += xx_frame[i];
	assert_int_equal(s & 0xFF, xx_frame[7]);
}

/* ---- the parsers ---- */

static void test_pms5003_good(void **state)
{
	cg_pms5003_frame_t f;
	size_t n = 0;

	assert_int_equal(cg_pms5003_parse(pms_frame, sizeof(pms_frame), &n, &f), 0);
	assert_int_equal(n, 32);
	assert_int_equal(f.pm1_cf1, 5);
	assert_int_equal(f.pm25_cf1, 7);
	assert_int_equal(f.pm10_cf1, 9);
	assert_int_equal(f.pm1, 4);
	assert_int_equal(f.pm25, 6);
	assert_int_equal(f.pm10, 8);
	assert_int_equal(f.particles[0], 800);
	assert_int_equal(f.particles[1], 240);
	assert_int_equal(f.particles[2], 50);
	assert_int_equal(f.particles[3], 6);
	assert_int_equal(f.particles[4], 2);
	assert_int_equal(f.particles[5], 1);
	assert_int_equal(f.reserved, 0x9700);
}

static void test_pms5003_prefixes_wait(void **state)
{
	cg_pms5003_frame_t f;
	size_t n;

	for (size_t len = 0; len < sizeof(pms_frame); len++)
		assert_int_equal(cg_pms5003_parse(pms_frame, len, &n, &f), CG_EAGAIN);
}

static void test_pms5003_bad(void **state)
{
	uint8_t b[32];
	cg_pms5003_frame_t f;
	size_t n;

	memcpy(b, pms_frame, sizeof(b));
	b[31] ^= 0x01;
	assert_int_equal(cg_pms5003_parse(b, sizeof(b), &n, &f), CG_ECRC);
	assert_int_equal(n, 32);

	memcpy(b, pms_frame, sizeof(b));
	b[14] ^= 0x40; /* a data bit flipped on the line */
	assert_int_equal(cg_pms5003_parse(b, sizeof(b), &n, &f), CG_ECRC);

	memcpy(b, pms_frame, sizeof(b));
	b[3] = 0x1D; /* length 29 */
	assert_int_equal(cg_pms5003_parse(b, sizeof(b), &n, &f), CG_EFRAME);
	assert_int_equal(cg_pms5003_parse(b, 4, &n, &f), CG_EFRAME);

	b[0] = 0x41;
	assert_int_equal(cg_pms5003_parse(b, 1, &n, &f), CG_EFRAME);
	memcpy(b, pms_frame, sizeof(b));
	b[1] = 0x4E;
	assert_int_equal(cg_pms5003_parse(b, 2, &n, &f), CG_EFRAME);

	assert_int_equal(cg_pms5003_parse(pms_ack, sizeof(pms_ack), &n, &f), CG_EFRAME);
}

static void test_sds011(void **state)
{
	uint8_t b[10];
	cg_sds011_frame_t f;
	size_t n = 0;

	assert_int_equal(cg_sds011_parse(sds_frame, sizeof(sds_frame), &n, &f), 0);
	assert_int_equal(n, 10);
	assert_int_equal(f.pm25_raw, 1236);
	assert_int_equal(f.pm10_raw, 2618);
	assert_int_equal(f.device_id, 0xA160);
	for (size_t len = 0; len < sizeof(sds_frame); len++)
		assert_int_equal(cg_sds011_parse(sds_frame, len, &n, &f), CG_EAGAIN);

	memcpy(b, sds_frame, sizeof(b));
	b[8]++;
	assert_int_equal(cg_sds011_parse(b, sizeof(b), &n, &f), CG_ECRC);
	memcpy(b, sds_frame, sizeof(b));
	b[2]++;
	assert_int_equal(cg_sds011_parse(b, sizeof(b), &n, &f), CG_ECRC);
	memcpy(b, sds_frame, sizeof(b));
	b[9] = 0xAC; /* the tail */
	assert_int_equal(cg_sds011_parse(b, sizeof(b), &n, &f), CG_EFRAME);
	assert_int_equal(cg_sds011_parse(sds_reply, sizeof(sds_reply), &n, &f), CG_EFRAME);
	assert_int_equal(cg_sds011_parse(sds_reply, 2, &n, &f), CG_EFRAME);
	b[0] = 0xAB;
	assert_int_equal(cg_sds011_parse(b, 1, &n, &f), CG_EFRAME);
}

static void test_a02yyuw(void **state)
{
	uint8_t b[4];
	cg_a02yyuw_frame_t f;
	size_t n = 0;

	assert_int_equal(cg_a02yyuw_parse(a02_frame, sizeof(a02_frame), &n, &f), 0);
	assert_int_equal(n, 4);
	assert_int_equal(f.distance_mm, 1953);
	for (size_t len = 0; len < sizeof(a02_frame); len++)
		assert_int_equal(cg_a02yyuw_parse(a02_frame, len, &n, &f), CG_EAGAIN);
	memcpy(b, a02_frame, sizeof(b));
	b[2] = 0xA2;
	assert_int_equal(cg_a02yyuw_parse(b, sizeof(b), &n, &f), CG_ECRC);
	b[0] = 0xFE;
	assert_int_equal(cg_a02yyuw_parse(b, sizeof(b), &n, &f), CG_EFRAME);

	/* The sum wraps: FF 01 FF -> 0x1FF -> FF. */
	memcpy(b, (uint8_t[]){0xFF, 0x01, 0xFF, 0xFF}, 4);
	assert_int_equal(cg_a02yyuw_parse(b, sizeof(b), &n, &f), 0);
	assert_int_equal(f.distance_mm, 511);
}

static void test_template(void **state)
{
	uint8_t b[8];
	cg_template_frame_t f;
	size_t n = 0;

	assert_int_equal(cg_template_parse(xx_frame, sizeof(xx_frame), &n, &f), 0);
	assert_int_equal(n, 8);
	assert_int_equal(f.address, 1);
	assert_int_equal(f.pm25_raw, 123);
	assert_int_equal(f.pm10_raw, 456);
	for (size_t len = 0; len < sizeof(xx_frame); len++)
		assert_int_equal(cg_template_parse(xx_frame, len, &n, &f), CG_EAGAIN);
	memcpy(b, xx_frame, sizeof(b));
	b[7]++;
	assert_int_equal(cg_template_parse(b, sizeof(b), &n, &f), CG_ECRC);
	b[1] = 0x06;
	assert_int_equal(cg_template_parse(b, sizeof(b), &n, &f), CG_EFRAME);
}

/* ---- the scanner: resync on noise, partial and corrupt frames ---- */

/* Appends n bytes to a buffer at *len. */
static void put(uint8_t *buf, size_t *len, const uint8_t *bytes, size_t n)
{
	memcpy(buf + *len, bytes, n);
	*len += n;
}

static void test_scan_noise_before_and_between(void **state)
{
	static const uint8_t noise[] = {0x00, 0x42, 0x13, 0xFF, 0x4D, 0x42};
	uint8_t buf[128];
	size_t len = 0, start, n;
	cg_pms5003_frame_t f;
	cg_frame_counts_t c = {0};

	put(buf, &len, noise, sizeof(noise));
	put(buf, &len, pms_frame, sizeof(pms_frame));
	put(buf, &len, noise, sizeof(noise));
	put(buf, &len, pms_frame, sizeof(pms_frame));

	assert_int_equal(cg_frame_scan(buf, len, cg_pms5003_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, sizeof(noise));
	assert_int_equal(n, 32);
	assert_int_equal(f.pm25, 6);
	assert_int_equal(c.dropped_bytes, sizeof(noise));
	assert_int_equal(c.bad_checksums, 0);

	/* The rest of the buffer: noise again, then the second frame. */
	memset(&f, 0, sizeof(f));
	size_t next = start + n;
	assert_int_equal(
	    cg_frame_scan(buf + next, len - next, cg_pms5003_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, sizeof(noise));
	assert_int_equal(f.pm25, 6);
	assert_int_equal(c.dropped_bytes, 2 * sizeof(noise));
}

static void test_scan_split_frame(void **state)
{
	uint8_t buf[64];
	size_t len = 0, start, n;
	cg_sds011_frame_t f;
	cg_frame_counts_t c = {0};

	put(buf, &len, (const uint8_t[]){0x01, 0x02}, 2);
	put(buf, &len, sds_frame, 4); /* the first read ends mid-frame */
	assert_int_equal(cg_frame_scan(buf, len, cg_sds011_parse, &f, &start, &n, &c), CG_EAGAIN);
	assert_int_equal(start, 2); /* keep the frame's beginning, drop the noise */
	assert_int_equal(c.dropped_bytes, 2);

	memmove(buf, buf + start, len - start);
	len -= start;
	put(buf, &len, sds_frame + 4, sizeof(sds_frame) - 4); /* the second read */
	assert_int_equal(cg_frame_scan(buf, len, cg_sds011_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, 0);
	assert_int_equal(f.pm25_raw, 1236);
	assert_int_equal(c.dropped_bytes, 2);
}

static void test_scan_bad_checksum_then_good(void **state)
{
	uint8_t buf[64];
	uint8_t bad[32];
	size_t len = 0, start, n;
	cg_pms5003_frame_t f;
	cg_frame_counts_t c = {0};

	memcpy(bad, pms_frame, sizeof(bad));
	bad[20] ^= 0x08;
	put(buf, &len, bad, sizeof(bad));
	put(buf, &len, pms_frame, sizeof(pms_frame));
	assert_int_equal(cg_frame_scan(buf, len, cg_pms5003_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, 32);
	assert_int_equal(c.dropped_bytes, 32);
	assert_int_equal(c.bad_checksums, 1);
}

static void test_scan_truncated_then_good(void **state)
{
	uint8_t buf[64];
	size_t len = 0, start, n;
	cg_a02yyuw_frame_t f;
	cg_frame_counts_t c = {0};

	/* A frame cut after two bytes runs into the next one: its checksum
	 * fails (counted once), and the scan finds the next frame. */
	put(buf, &len, a02_frame, 2);
	put(buf, &len, a02_frame, sizeof(a02_frame));
	assert_int_equal(cg_frame_scan(buf, len, cg_a02yyuw_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, 2);
	assert_int_equal(f.distance_mm, 1953);
	assert_int_equal(c.dropped_bytes, 2);
	assert_int_equal(c.bad_checksums, 1);

	/* A truncated frame at the end waits for more. */
	len = 0;
	put(buf, &len, (const uint8_t[]){0x10, 0x20}, 2);
	put(buf, &len, a02_frame, 3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(cg_frame_scan(buf, len, cg_a02yyuw_parse, &f, &start, &n, &c), CG_EAGAIN);
	assert_int_equal(start, 2);
	assert_int_equal(c.dropped_bytes, 2);
}

static void test_scan_wrong_length_and_ack(void **state)
{
	uint8_t buf[64], bad[32];
	size_t len = 0, start, n;
	cg_pms5003_frame_t f;
	cg_frame_counts_t c = {0};

	/* The mode command's answer and a wrong length field are skipped as noise. */
	memcpy(bad, pms_frame, sizeof(bad));
	bad[3] = 0x14;
	put(buf, &len, pms_ack, sizeof(pms_ack));
	put(buf, &len, bad, 6);
	put(buf, &len, pms_frame, sizeof(pms_frame));
	assert_int_equal(cg_frame_scan(buf, len, cg_pms5003_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, 14);
	assert_int_equal(c.bad_checksums, 0);
	assert_int_equal(c.dropped_bytes, 14);
}

static void test_scan_repeated_start_counts_once(void **state)
{
	/* FF FF 07 A1 (a corrupt frame whose second byte is another start byte)
	 * then a good frame: the overlapping bad candidates count once. */
	uint8_t buf[16];
	size_t len = 0, start, n;
	cg_a02yyuw_frame_t f;
	cg_frame_counts_t c = {0};

	put(buf, &len, (const uint8_t[]){0xFF, 0xFF, 0x07, 0x00}, 4);
	put(buf, &len, a02_frame, sizeof(a02_frame));
	assert_int_equal(cg_frame_scan(buf, len, cg_a02yyuw_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, 4);
	assert_int_equal(c.bad_checksums, 1);
}

/* A toy variable-length protocol for the scanner alone: `7E N payload
 * SUM`, with 4 * N payload bytes (so that a frame can be longer than the
 * reader's buffer) and SUM = low byte of the sum of the payload. */
static int toy_parse(const uint8_t *buf, size_t len, size_t *frame_len, void *frame)
{
	unsigned sum = 0;

	*frame_len = 0;
	if (len >= 1 && buf[0] != 0x7E)
		return CG_EFRAME;
	if (len < 2)
		return CG_EAGAIN;
	*frame_len = 4 * (size_t)buf[1] + 3;
	if (len < *frame_len)
		return CG_EAGAIN;
	for (size_t i = 0; i < 4 * (size_t)buf[1]; i++)
		sum += buf[2 + i];
	if ((sum & 0xFF) != buf[*frame_len - 1])
		return CG_ECRC;
	*(uint8_t *)frame = buf[1] ? buf[2] : 0;
	return 0;
}

static void test_scan_long_claim_does_not_hide_frame(void **state)
{
	/* A noise 7E FF claims a 1023-byte frame; the complete good frame
	 * right behind it is found all the same. */
	static const uint8_t bytes[] = {0x7E, 0xFF, 0x7E, 0x01, 0x33, 0x00, 0x00, 0x00, 0x33};
	size_t start, n;
	uint8_t f = 0;
	cg_frame_counts_t c = {0};

	assert_int_equal(cg_frame_scan(bytes, sizeof(bytes), toy_parse, &f, &start, &n, &c), 0);
	assert_int_equal(start, 2);
	assert_int_equal(n, 7);
	assert_int_equal(f, 0x33);
	assert_int_equal(c.dropped_bytes, 2);

	/* Without the good frame the claim is kept, waiting for its bytes. */
	assert_int_equal(cg_frame_scan(bytes, 4, toy_parse, &f, &start, &n, &c), CG_EAGAIN);
	assert_int_equal(start, 0);
}

static void test_read_claim_beyond_buffer(void **state)
{
	/* A claim longer than the reader's buffer cannot complete: its start
	 * byte is dropped once the buffer is full, and the frame after it found. */
	int p[2];
	uint8_t noise[CG_SERIAL_FRAME_MAX + 8];
	uint8_t f = 0;
	cg_frame_counts_t c;

	memset(noise, 0x00, sizeof(noise));
	noise[0] = 0x7E;
	noise[1] = 0xFF;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], noise, sizeof(noise)), sizeof(noise));
	assert_int_equal(write(p[1], "\x7E\x01\x44\x00\x00\x00\x44", 7), 7);
	assert_int_equal(cg_serial_read_frame(p[0], 500, toy_parse, &f, &c), 0);
	assert_int_equal(f, 0x44);
	assert_int_equal(c.dropped_bytes, sizeof(noise));
	close(p[0]);
	close(p[1]);
}

static void test_scan_empty_and_pure_noise(void **state)
{
	uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	size_t start = 99, n;
	cg_sds011_frame_t f;
	cg_frame_counts_t c = {0};

	assert_int_equal(cg_frame_scan(buf, 0, cg_sds011_parse, &f, &start, &n, &c), CG_EAGAIN);
	assert_int_equal(start, 0);
	assert_int_equal(cg_frame_scan(buf, sizeof(buf), cg_sds011_parse, &f, &start, &n, &c),
	                 CG_EAGAIN);
	assert_int_equal(start, sizeof(buf));
	assert_int_equal(c.dropped_bytes, sizeof(buf));
}

/* ---- the reader over a pipe: timing, split reads, errors ---- */

typedef struct writer {
	int fd;
	const uint8_t *a, *b;
	size_t na, nb;
	int delay_ms;
	bool close_after;
	pthread_t thread;
} writer_t;

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Writes a, waits, writes b: the reader sees two reads. */
static void *writer_main(void *arg)
{
	writer_t *w = arg;

	if (w->na)
		assert_true(write(w->fd, w->a, w->na) == (ssize_t)w->na);
	sleep_ms(w->delay_ms);
	if (w->nb)
		assert_true(write(w->fd, w->b, w->nb) == (ssize_t)w->nb);
	if (w->close_after)
		close(w->fd);
	return NULL;
}

static void test_read_split_across_two_reads(void **state)
{
	int p[2];
	uint8_t first[8];
	writer_t w;
	cg_pms5003_frame_t f;
	cg_frame_counts_t c;

	assert_int_equal(pipe(p), 0);
	first[0] = 0x17; /* noise */
	memcpy(first + 1, pms_frame, 7);
	w = (writer_t){
	    .fd = p[1], .a = first, .na = 8, .b = pms_frame + 7, .nb = 25, .delay_ms = 60};
	assert_int_equal(pthread_create(&w.thread, NULL, writer_main, &w), 0);
	assert_int_equal(cg_serial_read_frame(p[0], 500, cg_pms5003_parse, &f, &c), 0);
	pthread_join(w.thread, NULL);
	assert_int_equal(f.pm10, 8);
	assert_int_equal(c.dropped_bytes, 1);
	assert_int_equal(c.bad_checksums, 0);
	close(p[0]);
	close(p[1]);
}

static void test_read_timeout_when_silent(void **state)
{
	int p[2];
	cg_a02yyuw_frame_t f;
	cg_frame_counts_t c;
	int64_t t0;

	assert_int_equal(pipe(p), 0);
	t0 = cg_mono_ms();
	assert_int_equal(cg_serial_read_frame(p[0], 150, cg_a02yyuw_parse, &f, &c), CG_ETIMEDOUT);
	assert_true(cg_mono_ms() - t0 >= 140);
	assert_true(cg_mono_ms() - t0 < 1000);
	assert_int_equal(c.dropped_bytes, 0);
	close(p[0]);
	close(p[1]);
}

static void test_read_only_bad_checksums(void **state)
{
	int p[2];
	uint8_t bad[10];
	cg_sds011_frame_t f;
	cg_frame_counts_t c;

	assert_int_equal(pipe(p), 0);
	memcpy(bad, sds_frame, sizeof(bad));
	bad[8] = 0x00;
	for (int i = 0; i < 3; i++)
		assert_int_equal(write(p[1], bad, sizeof(bad)), sizeof(bad));
	assert_int_equal(cg_serial_read_frame(p[0], 100, cg_sds011_parse, &f, &c), CG_ECRC);
	assert_int_equal(c.bad_checksums, 3);
	assert_int_equal(c.dropped_bytes, 30);
	close(p[0]);
	close(p[1]);
}

static void test_read_only_noise_or_cut_frame(void **state)
{
	int p[2];
	cg_pms5003_frame_t f;
	cg_frame_counts_t c;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], pms_frame, 20), 20);
	assert_int_equal(cg_serial_read_frame(p[0], 100, cg_pms5003_parse, &f, &c), CG_EFRAME);
	assert_int_equal(c.dropped_bytes, 20);
	assert_int_equal(c.bad_checksums, 0);
	close(p[0]);
	close(p[1]);
}

static void test_read_bad_then_good(void **state)
{
	int p[2];
	uint8_t bad[4] = {0xFF, 0x07, 0xA1, 0xA8};
	cg_a02yyuw_frame_t f;
	cg_frame_counts_t c;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], bad, 4), 4);
	assert_int_equal(write(p[1], "\x01\x02", 2), 2);
	assert_int_equal(write(p[1], a02_frame, 4), 4);
	assert_int_equal(cg_serial_read_frame(p[0], 200, cg_a02yyuw_parse, &f, &c), 0);
	assert_int_equal(f.distance_mm, 1953);
	assert_int_equal(c.bad_checksums, 1);
	assert_int_equal(c.dropped_bytes, 6);
	close(p[0]);
	close(p[1]);
}

static void test_read_noise_flood_keeps_going(void **state)
{
	/* More noise than the reader's buffer holds, then a frame. */
	int p[2];
	uint8_t noise[3 * CG_SERIAL_FRAME_MAX];
	cg_sds011_frame_t f;
	cg_frame_counts_t c;

	memset(noise, 0x55, sizeof(noise));
	noise[100] = 0xAA; /* a false start */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], noise, sizeof(noise)), sizeof(noise));
	assert_int_equal(write(p[1], sds_frame, sizeof(sds_frame)), sizeof(sds_frame));
	assert_int_equal(cg_serial_read_frame(p[0], 500, cg_sds011_parse, &f, &c), 0);
	assert_int_equal(c.dropped_bytes, sizeof(noise));
	assert_int_equal(f.pm10_raw, 2618);
	close(p[0]);
	close(p[1]);
}

static void test_read_hangup_and_bad_fd(void **state)
{
	int p[2];
	cg_pms5003_frame_t f;
	cg_frame_counts_t c;
	writer_t w;

	/* The writer goes away mid-frame: end of file is a gone device. */
	assert_int_equal(pipe(p), 0);
	w = (writer_t){.fd = p[1], .a = pms_frame, .na = 10, .delay_ms = 30, .close_after = true};
	assert_int_equal(pthread_create(&w.thread, NULL, writer_main, &w), 0);
	assert_int_equal(cg_serial_read_frame(p[0], 1000, cg_pms5003_parse, &f, &c), CG_EIO);
	pthread_join(w.thread, NULL);
	close(p[0]);

	/* A closed descriptor. */
	assert_int_equal(cg_serial_read_frame(p[0], 100, cg_pms5003_parse, &f, &c), CG_EIO);
	assert_int_equal(cg_serial_write(p[0], pms_frame, 1, 100), CG_EIO);
	assert_int_equal(cg_serial_flush(p[0]), CG_EIO);
}

static void test_pending_frames(void **state)
{
	int p[2];
	cg_pms5003_frame_t f;
	size_t frames = 99;
	int64_t t0;

	assert_int_equal(pipe(p), 0);
	t0 = cg_mono_ms();
	assert_int_equal(cg_serial_pending_frames(p[0], cg_pms5003_parse, &f, &frames), 0);
	assert_int_equal(frames, 0);
	assert_true(cg_mono_ms() - t0 < 50); /* never waits */

	assert_int_equal(write(p[1], pms_ack, sizeof(pms_ack)), sizeof(pms_ack));
	assert_int_equal(cg_serial_pending_frames(p[0], cg_pms5003_parse, &f, &frames), 0);
	assert_int_equal(frames, 0);

	assert_int_equal(write(p[1], "\x42", 1), 1);
	assert_int_equal(write(p[1], pms_frame, sizeof(pms_frame)), sizeof(pms_frame));
	assert_int_equal(cg_serial_pending_frames(p[0], cg_pms5003_parse, &f, &frames), 0);
	assert_int_equal(frames, 1);

	for (int i = 0; i < 3; i++) {
		assert_int_equal(write(p[1], pms_frame, sizeof(pms_frame)), sizeof(pms_frame));
		assert_int_equal(write(p[1], "\x00", 1), 1);
	}
	assert_int_equal(cg_serial_pending_frames(p[0], cg_pms5003_parse, &f, &frames), 0);
	assert_int_equal(frames, 3);

	/* The writer gone: end of file is a gone device. */
	close(p[1]);
	assert_int_equal(cg_serial_pending_frames(p[0], cg_pms5003_parse, &f, &frames), CG_EIO);
	close(p[0]);
}

static void test_write_and_flush_on_pipe(void **state)
{
	int p[2];
	uint8_t got[7];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(cg_serial_flush(p[0]), 0); /* not a tty: nothing to do */
	assert_int_equal(cg_serial_write(p[1], pms_ack, 7, 100), 0);
	assert_int_equal(read(p[0], got, 7), 7);
	assert_memory_equal(got, pms_ack, 7);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checksums_of_fixtures),
	    cmocka_unit_test(test_pms5003_good),
	    cmocka_unit_test(test_pms5003_prefixes_wait),
	    cmocka_unit_test(test_pms5003_bad),
	    cmocka_unit_test(test_sds011),
	    cmocka_unit_test(test_a02yyuw),
	    cmocka_unit_test(test_template),
	    cmocka_unit_test(test_scan_noise_before_and_between),
	    cmocka_unit_test(test_scan_split_frame),
	    cmocka_unit_test(test_scan_bad_checksum_then_good),
	    cmocka_unit_test(test_scan_truncated_then_good),
	    cmocka_unit_test(test_scan_wrong_length_and_ack),
	    cmocka_unit_test(test_scan_repeated_start_counts_once),
	    cmocka_unit_test(test_scan_long_claim_does_not_hide_frame),
	    cmocka_unit_test(test_scan_empty_and_pure_noise),
	    cmocka_unit_test(test_read_claim_beyond_buffer),
	    cmocka_unit_test(test_read_split_across_two_reads),
	    cmocka_unit_test(test_read_timeout_when_silent),
	    cmocka_unit_test(test_read_only_bad_checksums),
	    cmocka_unit_test(test_read_only_noise_or_cut_frame),
	    cmocka_unit_test(test_read_bad_then_good),
	    cmocka_unit_test(test_read_noise_flood_keeps_going),
	    cmocka_unit_test(test_read_hangup_and_bad_fd),
	    cmocka_unit_test(test_pending_frames),
	    cmocka_unit_test(test_write_and_flush_on_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
