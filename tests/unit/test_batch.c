/* Tests of batches: payloads built from encoded readings, their exact size, their bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "base/error.h"
#include "base/reading.h"
#include "uplink/batch.h"
#include "uplink/encode.h"

/* 2026-11-25T11:40:00Z */
#define T0_MS INT64_C(1795606800000)

static const cg_encode_ctx_t ctx = {.gateway_id = "gw-1"};

/* An air-quality reading of sensor with pm25 = v, and a 64-bit counter kept exact. */
static void air(cg_reading_t *r, const char *sensor, double v, int64_t ts_ms)
{
	cg_reading_init(r);
	snprintf(r->sensor, sizeof(r->sensor), "%s", sensor);
	r->kind = CG_KIND_AIR_QUALITY;
	r->ts_ms = ts_ms;
	assert_int_equal(cg_reading_add_number(r, "pm25", v, "ug/m3"), CG_OK);
	assert_int_equal(cg_reading_add_uint(r, "count", UINT64_C(18446744073709551615), NULL),
	                 CG_OK);
}

/* Encodes r with seq and adds it to b; returns what cg_batch_add said. */
static int add(cg_batch_t *b, cg_format_t f, const cg_reading_t *r, int64_t seq, size_t max)
{
	char *p;
	size_t len;
	int rc;

	assert_int_equal(cg_encode(f, &ctx, r, seq, &p, &len), CG_OK);
	assert_int_equal(cg_batch_format_of(p, len), (int)f);
	rc = cg_batch_add(b, seq, p, len, max);
	free(p);
	return rc;
}

/* Takes the payload and checks that its length is what cg_batch_len() said. */
static char *take(cg_batch_t *b)
{
	size_t want = cg_batch_len(b), len;
	char *out;

	assert_int_equal(cg_batch_take(b, &out, &len), CG_OK);
	assert_int_equal(len, want);
	assert_int_equal(strlen(out), len);
	assert_int_equal(cg_batch_count(b), 0);
	return out;
}

/* Native: units once per layout, each reading with its own seq and ts, values
 * byte for byte (the 64-bit counter keeps every digit), quality only when not
 * ok, the clock flag kept, a sensor's readings under one entry. */
static void test_native_envelope(void **state)
{
	cg_reading_t r;
	cg_batch_t *b;
	char *out;

	(void)state;
	assert_int_equal(cg_batch_new(CG_FORMAT_NATIVE, "gw-1", &b), CG_OK);
	air(&r, "aq-1", 12.5, T0_MS);
	assert_int_equal(add(b, CG_FORMAT_NATIVE, &r, 7, 65536), CG_OK);
	air(&r, "aq-2", 3, T0_MS + 1);
	r.quality = CG_QUALITY_WARMING_UP;
	assert_int_equal(add(b, CG_FORMAT_NATIVE, &r, 8, 65536), CG_OK);
	air(&r, "aq-1", 13, T0_MS + 1000);
	r.ts_clock = CG_TS_UNSYNCED;
	assert_int_equal(add(b, CG_FORMAT_NATIVE, &r, 9, 65536), CG_OK);
	assert_int_equal(cg_batch_count(b), 3);
	assert_int_equal(cg_batch_seqs(b)[0], 7);
	assert_int_equal(cg_batch_seqs(b)[2], 9);
	out = take(b);
	assert_string_equal(
	    out, "{\"gateway\":\"gw-1\",\"layouts\":[{\"kind\":\"air-quality\",\"names\":[\"pm25\","
	         "\"count\"],\"units\":[\"ug/m3\",null]}],\"sensors\":[{\"sensor\":\"aq-1\","
	         "\"layout\":0,\"readings\":[{\"seq\":7,\"ts\":\"2026-11-25T11:40:00.000Z\","
	         "\"values\":[12.5,18446744073709551615]},{\"seq\":9,\"ts\":"
	         "\"2026-11-25T11:40:01.000Z\",\"values\":[13,18446744073709551615],\"clock\":"
	         "\"unsynced\"}]},{\"sensor\":\"aq-2\",\"layout\":0,\"readings\":[{\"seq\":8,"
	         "\"ts\":\"2026-11-25T11:40:00.001Z\",\"values\":[3,18446744073709551615],"
	         "\"quality\":\"warming-up\"}]}]}");
	free(out);
	cg_batch_free(b);
}

/* Readings of one sensor with other names get a layout of their own, and an
 * interval measure keeps its interval_s. */
static void test_native_layouts(void **state)
{
	cg_reading_t r;
	cg_batch_t *b;
	cJSON *j;
	char *out;

	(void)state;
	assert_int_equal(cg_batch_new(CG_FORMAT_NATIVE, "gw-1", &b), CG_OK);
	air(&r, "s", 1, T0_MS);
	assert_int_equal(add(b, CG_FORMAT_NATIVE, &r, 1, 65536), CG_OK);
	cg_reading_init(&r);
	snprintf(r.sensor, sizeof(r.sensor), "s");
	r.kind = CG_KIND_TRAFFIC;
	r.ts_ms = T0_MS;
	r.interval_s = 60;
	assert_int_equal(cg_reading_add_int(&r, "intensity", 42, "count"), CG_OK);
	assert_int_equal(add(b, CG_FORMAT_NATIVE, &r, 2, 65536), CG_OK);
	out = take(b);
	j = cJSON_Parse(out);
	assert_non_null(j);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "layouts")), 2);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sensors")), 2);
	assert_non_null(strstr(out, "{\"seq\":2,\"ts\":\"2026-11-25T11:40:00.000Z\","
	                            "\"interval_s\":60,\"values\":[42]}"));
	assert_non_null(strstr(out, "{\"kind\":\"traffic\",\"names\":[\"intensity\"],"
	                            "\"units\":[\"count\"]}"));
	cJSON_Delete(j);
	free(out);
	cg_batch_free(b);
}

/* SenML: one pack of every reading's records, each reading's first record
 * with its own bn and bt. NGSI-LD: an array of the entities as they are. */
static void test_senml_ngsi(void **state)
{
	cg_reading_t r;
	cg_batch_t *b;
	char *one, *out;
	size_t len;

	(void)state;
	assert_int_equal(cg_batch_new(CG_FORMAT_SENML, "gw-1", &b), CG_OK);
	air(&r, "aq-1", 1, T0_MS);
	assert_int_equal(cg_encode(CG_FORMAT_SENML, &ctx, &r, 5, &one, &len), CG_OK);
	assert_int_equal(cg_batch_add(b, 5, one, len, 65536), CG_OK);
	assert_int_equal(cg_batch_add(b, 6, one, len, 65536), CG_OK);
	out = take(b);
	assert_int_equal(strlen(out), 2 * len - 1);
	assert_memory_equal(out, one, len - 1);
	assert_int_equal(out[len - 1], ',');
	assert_memory_equal(out + len, one + 1, len - 1);
	free(out);
	free(one);
	cg_batch_free(b);

	assert_int_equal(cg_batch_new(CG_FORMAT_NGSI_LD, "gw-1", &b), CG_OK);
	assert_int_equal(cg_encode(CG_FORMAT_NGSI_LD, &ctx, &r, 5, &one, &len), CG_OK);
	assert_int_equal(cg_batch_format_of(one, len), CG_FORMAT_NGSI_LD);
	assert_int_equal(cg_batch_add(b, 5, one, len, 65536), CG_OK);
	assert_int_equal(cg_batch_add(b, 6, one, len, 65536), CG_OK);
	out = take(b);
	assert_int_equal(out[0], '[');
	assert_memory_equal(out + 1, one, len);
	assert_memory_equal(out + len + 2, one, len);
	assert_string_equal(cg_encode_content_type(out, strlen(out)), "application/ld+json");
	free(out);
	free(one);
	cg_batch_free(b);
}

/* The byte bound: a reading that would take the batch past max_bytes is
 * refused with the batch as it was, byte for byte; one alone larger than the
 * bound still goes into an empty batch. */
static void test_max_bytes(void **state)
{
	cg_format_t formats[] = {CG_FORMAT_NATIVE, CG_FORMAT_SENML, CG_FORMAT_NGSI_LD};

	(void)state;
	for (size_t f = 0; f < 3; f++) {
		cg_reading_t r;
		cg_batch_t *b;
		size_t before, n = 0, max = 4096;
		int64_t seq = 1;
		char *a, *c;
		int rc;

		assert_int_equal(cg_batch_new(formats[f], "gw-1", &b), CG_OK);
		/* Sensors of their own, so that a native reading may add a group. */
		do {
			char id[24];

			snprintf(id, sizeof(id), "s%lld", (long long)seq);
			air(&r, id, (double)seq, T0_MS + seq);
			before = cg_batch_len(b);
			rc = add(b, formats[f], &r, seq++, max);
			n += rc == CG_OK;
		} while (rc == CG_OK);
		assert_int_equal(rc, CG_ERANGE);
		assert_true(n >= 2);
		assert_int_equal(cg_batch_count(b), n);
		assert_int_equal(cg_batch_len(b), before);
		assert_true(before <= max);
		/* What was refused left nothing behind: the same as a batch built without it. */
		a = take(b);
		for (int64_t s = 1; s <= (int64_t)n; s++) {
			char id[24];

			snprintf(id, sizeof(id), "s%lld", (long long)s);
			air(&r, id, (double)s, T0_MS + s);
			assert_int_equal(add(b, formats[f], &r, s, SIZE_MAX), CG_OK);
		}
		c = take(b);
		assert_string_equal(a, c);
		free(a);
		free(c);
		/* Alone larger than the bound: taken, the caller sends it alone. */
		assert_int_equal(add(b, formats[f], &r, seq, 10), CG_OK);
		assert_int_equal(add(b, formats[f], &r, seq + 1, 10), CG_ERANGE);
		assert_int_equal(cg_batch_count(b), 1);
		cg_batch_free(b);
	}
}

/* Damaged payloads are refused (CG_EINVAL) and leave the batch as it was: a
 * payload cut short, one of another format, a native one whose seq is not the
 * row's, a byte that breaks a string. */
static void test_damaged(void **state)
{
	cg_reading_t r;
	cg_batch_t *b;
	char *p, *out, *good;
	size_t len;

	(void)state;
	air(&r, "aq-1", 1, T0_MS);
	for (int f = 0; f < 3; f++) {
		assert_int_equal(cg_batch_new((cg_format_t)f, "gw-1", &b), CG_OK);
		assert_int_equal(add(b, (cg_format_t)f, &r, 1, 65536), CG_OK);
		good = take(b);
		assert_int_equal(add(b, (cg_format_t)f, &r, 1, 65536), CG_OK);
		assert_int_equal(cg_encode((cg_format_t)f, &ctx, &r, 2, &p, &len), CG_OK);
		assert_int_equal(cg_batch_add(b, 2, p, len - 5, 65536), CG_EINVAL);
		p[len / 2] = '\x01';
		assert_int_equal(cg_batch_add(b, 2, p, len, 65536), CG_EINVAL);
		free(p);
		assert_int_equal(cg_encode((cg_format_t)((f + 1) % 3), &ctx, &r, 2, &p, &len),
		                 CG_OK);
		assert_int_equal(cg_batch_add(b, 2, p, len, 65536), CG_EINVAL);
		free(p);
		assert_int_equal(cg_batch_count(b), 1);
		out = take(b);
		assert_string_equal(out, good);
		free(out);
		free(good);
		cg_batch_free(b);
	}
	assert_int_equal(cg_batch_new(CG_FORMAT_NATIVE, "gw-1", &b), CG_OK);
	assert_int_equal(cg_encode(CG_FORMAT_NATIVE, &ctx, &r, 3, &p, &len), CG_OK);
	assert_int_equal(cg_batch_add(b, 4, p, len, 65536), CG_EINVAL);
	free(p);
	cg_batch_free(b);
}

/* A hundred readings of a few sensors take far fewer bytes batched than alone
 * (the units, names, kind, gateway and sensor are not repeated). */
static void test_native_compact(void **state)
{
	cg_reading_t r;
	cg_batch_t *b;
	size_t singles = 0;

	(void)state;
	assert_int_equal(cg_batch_new(CG_FORMAT_NATIVE, "gw-1", &b), CG_OK);
	for (int64_t s = 1; s <= 100; s++) {
		char *p;
		size_t len;

		air(&r, s % 2 ? "aq-1" : "aq-2", (double)s / 10, T0_MS + s * 1000);
		assert_int_equal(cg_encode(CG_FORMAT_NATIVE, &ctx, &r, s, &p, &len), CG_OK);
		singles += len;
		assert_int_equal(cg_batch_add(b, s, p, len, SIZE_MAX), CG_OK);
		free(p);
	}
	assert_true(cg_batch_len(b) * 2 < singles);
	cg_batch_free(b);
}

static void test_topic(void **state)
{
	char buf[32];

	(void)state;
	assert_int_equal(cg_topic_batch(buf, sizeof(buf), "city/gn", "gw-1"), CG_OK);
	assert_string_equal(buf, "city/gn/gw-1/batch");
	assert_int_equal(cg_topic_batch(buf, 8, "city/gn", "gw-1"), CG_ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_native_envelope), cmocka_unit_test(test_native_layouts),
	    cmocka_unit_test(test_senml_ngsi),      cmocka_unit_test(test_max_bytes),
	    cmocka_unit_test(test_damaged),         cmocka_unit_test(test_native_compact),
	    cmocka_unit_test(test_topic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
