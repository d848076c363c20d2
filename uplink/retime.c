/* Correcting the times of a payload encoded while the wall clock was not trusted. */
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "uplink/encode.h"
#include "uplink/encode_impl.h"

/*
 * The payloads are the encoders' own, so a time is found by the key before it: the
 * pattern `"key":"` cannot occur inside a JSON string, where every quote is escaped.
 * The flag is found the same way, as each encoder writes it; in the native format a
 * value may itself be named "clock", so there only the flag right after ts counts.
 */

/* Keys followed by an RFC 3339 time in quotes (native, NGSI-LD). */
static const char *const time_keys[] = {"\"ts\":\"", "\"@value\":\"", "\"observedAt\":\""};
#define SENML_BT "\"bt\":"

/* The flag as each format writes it, unsynced and corrected. */
static const char *const flag_unsynced[] = {
	",\"clock\":\"unsynced\"",
	",\"clock\":{\"type\":\"Property\",\"value\":\"unsynced\"}",
	"{\"n\":\"clock\",\"vs\":\"unsynced\"}",
};
static const char *const flag_corrected[] = {
	",\"clock\":\"corrected\"",
	",\"clock\":{\"type\":\"Property\",\"value\":\"corrected\"}",
	"{\"n\":\"clock\",\"vs\":\"corrected\"}",
};
#define N_FLAGS (sizeof(flag_unsynced) / sizeof(flag_unsynced[0]))
#define RFC3339_LEN 24

static bool starts(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

/* Reads SenML's bt (epoch seconds, up to three decimals, as cg_senml_put_seconds()
 * writes them) at p into *ms; returns the characters read, 0 if none. */
static size_t read_seconds(const char *p, const char *end, int64_t *ms)
{
	const char *q = p;
	int64_t secs = 0, frac = 0;
	int places = 0;
	bool neg = q < end && *q == '-';

	if (neg)
		q++;
	if (q == end || *q < '0' || *q > '9')
		return 0;
	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		if (secs > INT64_MAX / 10000)
			return 0;
		secs = secs * 10 + (*q - '0');
	}
	if (q < end && *q == '.') {
		for (q++; q < end && *q >= '0' && *q <= '9'; q++, places++)
			if (places < 3)
				frac = frac * 10 + (*q - '0');
		if (places == 0 || places > 3)
			return 0;
		for (; places < 3; places++)
			frac *= 10;
	}
	*ms = (secs * 1000 + frac) * (neg ? -1 : 1);
	return (size_t)(q - p);
}

/* Reads the time at p, after a time key (RFC 3339 and its closing quote) or after
 * SENML_BT (a number); returns the characters it spans, 0 when it is not one. */
static size_t read_time(const char *p, const char *end, bool senml, int64_t *ms)
{
	if (senml)
		return read_seconds(p, end, ms);
	if (end - p < RFC3339_LEN + 1 || p[RFC3339_LEN] != '"' || !cg_rfc3339_parse(p, ms))
		return 0;
	return RFC3339_LEN;
}

/* The key at p that a time follows, or NULL; *senml tells which kind of time. */
static const char *time_key_at(const char *p, const char *end, bool *senml)
{
	*senml = false;
	for (size_t k = 0; k < sizeof(time_keys) / sizeof(time_keys[0]); k++)
		if (starts(p, end, time_keys[k]))
			return time_keys[k];
	if (starts(p, end, SENML_BT)) {
		*senml = true;
		return SENML_BT;
	}
	return NULL;
}

/* Whether the flag f sits at p where it counts: anywhere in NGSI-LD and SenML, right
 * after the ts in the native format (after_ts). */
static bool flag_at(const char *p, const char *end, size_t f, bool after_ts)
{
	return (f != 0 || after_ts) && starts(p, end, flag_unsynced[f]);
}

int cg_encode_retime(const char *in, size_t len, int64_t delta_ms, char **out, size_t *out_len)
{
	const char *p = in, *end = in + len;
	cg_buf_t b = {0};
	bool flagged = false, after_ts = false, nomem;

	while (p < end) {
		bool senml, now_after_ts = false;
		const char *key = time_key_at(p, end, &senml);
		size_t f;

		for (f = 0; f < N_FLAGS && !flag_at(p, end, f, after_ts); f++)
			;
		if (f < N_FLAGS) {
			cg_buf_puts(&b, flag_corrected[f]);
			p += strlen(flag_unsynced[f]);
			flagged = true;
		} else if (key) {
			int64_t ms;
			size_t n = read_time(p + strlen(key), end, senml, &ms);
			char t[32];

			if (n == 0)
				goto fail;
			cg_buf_puts(&b, key);
			if (senml) {
				cg_senml_put_seconds(&b, ms + delta_ms);
			} else {
				cg_rfc3339(ms + delta_ms, t, sizeof(t));
				cg_buf_puts(&b, t);
			}
			p += strlen(key) + n;
			/* The native flag follows ts's closing quote. */
			now_after_ts = key == time_keys[0];
			if (now_after_ts && p < end && *p == '"') {
				cg_buf_append(&b, p, 1);
				p++;
			}
		} else {
			cg_buf_append(&b, p, 1);
			p++;
		}
		after_ts = now_after_ts;
	}
	if (!flagged || cg_buf_failed(&b))
		goto fail;
	*out = cg_buf_take(&b, out_len);
	return CG_OK;

fail:
	nomem = cg_buf_failed(&b);
	cg_buf_free(&b);
	return nomem ? CG_ENOMEM : CG_EINVAL;
}

int cg_encode_payload_ts(const char *in, size_t len, int64_t *ts_ms, cg_ts_clock_t *clock)
{
	const char *p = in, *end = in + len;
	bool found = false, after_ts = false;

	*clock = CG_TS_SYNCED;
	for (; p < end; p++) {
		bool senml, now_after_ts = false;
		const char *key = time_key_at(p, end, &senml);

		for (size_t f = 0; f < N_FLAGS; f++) {
			if (flag_at(p, end, f, after_ts))
				*clock = CG_TS_UNSYNCED;
			if ((f != 0 || after_ts) && starts(p, end, flag_corrected[f]))
				*clock = CG_TS_CORRECTED;
		}
		/* The first time is the reading's ts in every format (dateObserved in NGSI-LD). */
		if (key && !found) {
			size_t n = read_time(p + strlen(key), end, senml, ts_ms);

			if (n == 0)
				return CG_EINVAL;
			found = true;
			p += strlen(key) + n;
			now_after_ts = key == time_keys[0];
		}
		after_ts = now_after_ts;
	}
	return found ? CG_OK : CG_EINVAL;
}
