/* Encoders: a reading to a payload in the configured format, and its topic. */
#include "uplink/encode.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "uplink/encode_impl.h"

static const char *const format_names[] = {
	[CG_FORMAT_NATIVE] = "native",
	[CG_FORMAT_NGSI_LD] = "ngsi-ld",
	[CG_FORMAT_SENML] = "senml",
};

const char *cg_format_name(cg_format_t f)
{
	if ((unsigned)f < sizeof(format_names) / sizeof(format_names[0]))
		return format_names[f];
	return "unknown";
}

int cg_format_from_name(const char *s)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
		if (strcmp(format_names[i], s) == 0)
			return (int)i;
	return -1;
}

/*
 * The native encoder runs once per reading on the gateway's main loop, which
 * also feeds the MQTT window: the helpers below write the same bytes as
 * cg_buf_json_number() and cg_rfc3339() without going through printf for
 * numbers and timestamps. Values they do not cover (numbers outside 1e-4 to
 * 1e15, years outside 0-9999) go to the general functions.
 */

/* Appends -magnitude (when negative) or magnitude in decimal: every integer
 * from -2^64 + 1 to 2^64 - 1. */
static void put_magnitude(cg_buf_t *b, bool negative, uint64_t u)
{
	char d[24];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (negative)
		d[--i] = '-';
	cg_buf_append(b, d + i, sizeof(d) - i);
}

/* Appends v in decimal. */
static void put_int(cg_buf_t *b, int64_t v)
{
	put_magnitude(b, v < 0, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

bool cg_encode_put_exact(cg_buf_t *b, const cg_value_t *v)
{
	if (v->type != CG_VALUE_NUMBER || !v->exact)
		return false;
	put_magnitude(b, v->negative && v->magnitude, v->magnitude);
	return true;
}

/*
 * Appends a fraction as printf's "%.15g" writes it, for 1e-4 <= |v| < 1e15,
 * where %g uses fixed notation; returns false for anything else. %g rounds v
 * to 15 significant digits, q = v * 10^(14 - X) with X the decimal exponent
 * of the rounded value, then drops trailing zeros. q is computed exactly:
 * v = m * 2^e with a 53-bit m, so m * 10^k fits in 128 bits, and the shift
 * by -e rounds half to even on the exact value as glibc does. X starts from
 * log10() and is corrected until q has 15 digits.
 */
static bool put_fraction(cg_buf_t *b, double v)
{
	static const uint64_t pow10[19] = {
		1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
		100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL,
		1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
		1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL,
		1000000000000000000ULL,
	};
	double a = fabs(v);
	int e, x;
	uint64_t m;

	if (!(a >= 1e-4 && a < 1e15))
		return false;
	m = (uint64_t)ldexp(frexp(a, &e), 53);
	e -= 53;
	if (e >= 0 || e <= -120)
		return false;
	x = (int)floor(log10(a));
	for (int tries = 0; tries < 4; tries++) {
		int k = 14 - x, s = -e;
		unsigned __int128 p, q, rest, half;
		uint64_t q64;
		char d[40];
		size_t n = 0, end;

		if (k < 0 || k > 18)
			return false;
		p = (unsigned __int128)m * pow10[k];
		q = p >> s;
		rest = p & (((unsigned __int128)1 << s) - 1);
		half = (unsigned __int128)1 << (s - 1);
		if (rest > half || (rest == half && (q & 1)))
			q++;
		if (q >= pow10[15]) {
			x++;
			continue;
		}
		if (q < pow10[14]) {
			x--;
			continue;
		}
		if (x < -4 || x >= 15)
			return false;
		if (v < 0)
			d[n++] = '-';
		if (x < 0) {
			d[n++] = '0';
			d[n++] = '.';
			for (int i = 0; i < -x - 1; i++)
				d[n++] = '0';
		}
		/* q < 10^15 now: 64-bit arithmetic, not the 128-bit division
		 * calls that cost most of a number. */
		q64 = (uint64_t)q;
		for (int i = 14; i >= 0; i--) {
			d[n + (size_t)i] = (char)('0' + (int)(q64 % 10));
			q64 /= 10;
		}
		if (x >= 0) {
			/* Room for the point after the integer part's x + 1 digits. */
			memmove(d + n + x + 2, d + n + x + 1, (size_t)(14 - x));
			d[n + (size_t)x + 1] = '.';
			n += 16;
		} else {
			n += 15;
		}
		end = n;
		while (d[end - 1] == '0')
			end--;
		if (d[end - 1] == '.')
			end--;
		cg_buf_append(b, d, end);
		return true;
	}
	return false;
}

/*
 * Appends v as printf's "%.15g" writes it when v is the double nearest to
 * i / 10^k for an integer |i| < 10^15 and k from 1 to 6, with |v| >= 1e-4
 * (12.3, 0.05, 1013.25: what sensors report, after a profile's scale), and
 * returns true; false otherwise, for put_fraction(). Such a v is within
 * half an ulp (2^-53 relative) of i / 10^k, which has at most 15
 * significant digits, while 15-digit neighbours are at least 10^-15 apart
 * relative: rounding v to 15 digits gives i / 10^k exactly, and its digits
 * are i's with the point k places from the right. Trying k from 1 up finds
 * the shortest such i, so no trailing zeros are left to drop. A number
 * costs about 210 instructions this way, 650 through put_fraction().
 */
static bool put_short_decimal(cg_buf_t *b, double v)
{
	static const double scale[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};

	if (!(fabs(v) >= 1e-4))
		return false;
	for (int k = 1; k <= 6; k++) {
		double t = v * scale[k];
		char d[24];
		size_t n = sizeof(d);
		long long i;
		uint64_t u;

		if (!(fabs(t) < 1e15))
			return false;
		i = llround(t);
		if ((double)i / scale[k] != v)
			continue;
		u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
		for (int j = 0; j < k; j++) {
			d[--n] = (char)('0' + (int)(u % 10));
			u /= 10;
		}
		d[--n] = '.';
		do {
			d[--n] = (char)('0' + (int)(u % 10));
			u /= 10;
		} while (u);
		if (i < 0)
			d[--n] = '-';
		cg_buf_append(b, d + n, sizeof(d) - n);
		return true;
	}
	return false;
}

/* Appends a JSON number as cg_buf_json_number() does: integers below 10^15
 * (where "%.0f" prints the integer itself, "-0" for negative zero) and
 * fractions in fixed notation directly, everything else through it. */
static void put_number(cg_buf_t *b, double v)
{
	if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) {
		if (v == 0 && signbit(v))
			cg_buf_append(b, "-0", 2);
		else
			put_int(b, (int64_t)v);
		return;
	}
	if (isfinite(v) && (put_short_decimal(b, v) || put_fraction(b, v)))
		return;
	cg_buf_json_number(b, v);
}

/* Writes n digits of v, zero-padded, at p. */
static void digits(char *p, int v, int n)
{
	while (n-- > 0) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* The date of the last day put_time() wrote, per thread: gmtime_r() (430
 * of the 4,770 instructions a reading took to encode, and a lock in glibc's
 * time zone code) runs once a day, and the time of day is plain arithmetic
 * on the seconds. */
static _Thread_local struct {
	int64_t day; /* days since the epoch; -1: none yet */
	char date[11]; /* YYYY-MM-DD */
} last_day = {.day = -1};

/* Appends the RFC 3339 time of ms as cg_rfc3339() writes it. */
static void put_time(cg_buf_t *b, int64_t ms)
{
	int64_t secs = ms / 1000, day = secs / 86400;
	int sod = (int)(secs % 86400);
	char t[32];

	if (ms < 0) {
		cg_rfc3339(ms, t, sizeof(t));
		cg_buf_puts(b, t);
		return;
	}
	if (day != last_day.day) {
		time_t start = (time_t)(day * 86400);
		struct tm tm;

		if (!gmtime_r(&start, &tm) || tm.tm_year > 9999 - 1900) {
			cg_rfc3339(ms, t, sizeof(t));
			cg_buf_puts(b, t);
			return;
		}
		memcpy(last_day.date, "0000-00-00", 10);
		digits(last_day.date, tm.tm_year + 1900, 4);
		digits(last_day.date + 5, tm.tm_mon + 1, 2);
		digits(last_day.date + 8, tm.tm_mday, 2);
		last_day.day = day;
	}
	/* YYYY-MM-DDTHH:MM:SS.mmmZ */
	memcpy(t, last_day.date, 10);
	memcpy(t + 10, "T00:00:00.000Z", 14);
	digits(t + 11, sod / 3600, 2);
	digits(t + 14, sod / 60 % 60, 2);
	digits(t + 17, sod % 60, 2);
	digits(t + 20, (int)(ms % 1000), 3);
	cg_buf_append(b, t, 24);
}

int cg_encode_lane(const cg_reading_t *r)
{
	const cg_value_t *v = cg_reading_find(r, "laneId");

	if (!v || v->type != CG_VALUE_NUMBER || !(v->number >= 1 && v->number <= 1e6) ||
	    v->number != floor(v->number))
		return 0;
	return (int)v->number;
}

/* Appends one value of a reading as a JSON value. */
static void put_value(cg_buf_t *b, const cg_value_t *v)
{
	switch (v->type) {
	case CG_VALUE_NUMBER:
		if (!cg_encode_put_exact(b, v))
			put_number(b, v->number);
		break;
	case CG_VALUE_BOOL: cg_buf_puts(b, v->boolean ? "true" : "false"); break;
	case CG_VALUE_STRING: cg_buf_json_string(b, v->string); break;
	}
}

/* The native format (docs/topics.md): gateway, sensor, kind, seq, ts, clock (only
 * when flagged), interval_s for interval measures, values, units (only values that
 * have one), quality. Key order is fixed so payloads are easy to diff. */
static void encode_native(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r,
			  int64_t seq)
{
	bool first = true;

	cg_buf_puts(b, "{\"gateway\":");
	cg_buf_json_string(b, ctx->gateway_id);
	cg_buf_puts(b, ",\"sensor\":");
	cg_buf_json_string(b, r->sensor);
	cg_buf_puts(b, ",\"kind\":");
	cg_buf_json_string(b, cg_kind_name(r->kind));
	if (seq >= 0) {
		cg_buf_puts(b, ",\"seq\":");
		put_int(b, seq);
	}
	cg_buf_puts(b, ",\"ts\":\"");
	put_time(b, r->ts_ms);
	cg_buf_puts(b, "\"");
	if (cg_ts_clock_name(r->ts_clock)) {
		cg_buf_puts(b, ",\"clock\":\"");
		cg_buf_puts(b, cg_ts_clock_name(r->ts_clock));
		cg_buf_puts(b, "\"");
	}
	if (r->interval_s > 0) {
		cg_buf_puts(b, ",\"interval_s\":");
		put_number(b, r->interval_s);
	}
	cg_buf_puts(b, ",\"values\":{");
	for (size_t i = 0; i < r->n_values; i++) {
		if (i)
			cg_buf_puts(b, ",");
		cg_buf_json_string(b, r->values[i].name);
		cg_buf_puts(b, ":");
		put_value(b, &r->values[i]);
	}
	cg_buf_puts(b, "},\"units\":{");
	for (size_t i = 0; i < r->n_values; i++) {
		if (!r->values[i].unit[0])
			continue;
		if (!first)
			cg_buf_puts(b, ",");
		first = false;
		cg_buf_json_string(b, r->values[i].name);
		cg_buf_puts(b, ":");
		cg_buf_json_string(b, r->values[i].unit);
	}
	cg_buf_puts(b, "},\"quality\":");
	cg_buf_json_string(b, cg_quality_name(r->quality));
	cg_buf_puts(b, "}");
}

int cg_encode(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq,
	      char **out, size_t *len)
{
	cg_buf_t b = { 0 };
	int rc = CG_OK;

	/* Only the names of the tables go out: a value outside the enums is a bug. */
	if (!cg_kind_name(r->kind) || !cg_quality_name(r->quality))
		return CG_EINVAL;
	switch (f) {
	case CG_FORMAT_NATIVE: encode_native(&b, ctx, r, seq); break;
	case CG_FORMAT_NGSI_LD: rc = cg_encode_ngsi(&b, ctx, r, seq); break;
	case CG_FORMAT_SENML: rc = cg_encode_senml(&b, ctx, r, seq); break;
	default: return CG_EINVAL;
	}
	if (rc == CG_OK && cg_buf_failed(&b))
		rc = CG_ENOMEM;
	if (rc < 0) {
		cg_buf_free(&b);
		return rc;
	}
	*out = cg_buf_take(&b, len);
	return CG_OK;
}

/* Writes the n (>= 1) parts into buf joined by '/'; CG_ERANGE if they do not fit.
 * Every reading needs its topic: snprintf took 1,500 instructions for it, this
 * takes about 200 (callgrind, bench_throughput). */
static int join_topic(char *buf, size_t size, const char *const *parts, size_t n)
{
	size_t used = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(parts[i]);

		if (used + len + (i > 0) >= size)
			return CG_ERANGE;
		if (i > 0)
			buf[used++] = '/';
		memcpy(buf + used, parts[i], len);
		used += len;
	}
	buf[used] = '\0';
	return CG_OK;
}

int cg_topic_reading(char *buf, size_t size, const char *prefix, const char *gateway,
		     const char *kind, const char *sensor)
{
	const char *parts[] = {prefix, gateway, kind, sensor};

	return join_topic(buf, size, parts, 4);
}

int cg_topic_gateway(char *buf, size_t size, const char *prefix, const char *gateway,
		     const char *leaf)
{
	const char *parts[] = {prefix, gateway, leaf};

	return join_topic(buf, size, parts, 3);
}

int cg_topic_sensor_state(char *buf, size_t size, const char *prefix, const char *gateway,
                          const char *sensor)
{
	const char *parts[] = {prefix, gateway, "sensor", sensor, "state"};

	return join_topic(buf, size, parts, 5);
}

const char *cg_encode_content_type(const char *payload, size_t len)
{
	static const char ngsi[] = "{\"id\":\"urn:ngsi-ld:";

	/* A batch of NGSI-LD entities is an array of them (uplink/batch.h). */
	if (len > sizeof(ngsi) - 1 && payload[0] == '[' &&
	    memcmp(payload + 1, ngsi, sizeof(ngsi) - 1) == 0)
		return "application/ld+json";
	if (len > 0 && payload[0] == '[')
		return "application/senml+json";
	if (len >= sizeof(ngsi) - 1 && memcmp(payload, ngsi, sizeof(ngsi) - 1) == 0)
		return "application/ld+json";
	return "application/json";
}
