/* Tests of the encoders: native, NGSI-LD and SenML payloads against hand-checked output. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/reading.h"
#include "uplink/encode.h"
#include "uplink/encode_impl.h"

/* 2026-11-25T11:40:00Z is 1795606800 s after the epoch. */
#define T0_MS INT64_C(1795606800000)

#define ENV_CTX                                                                                    \
	"\"https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"      \
	"context.jsonld\""
#define PARK_CTX                                                                                   \
	"\"https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/"          \
	"context.jsonld\""
#define TRAF_CTX                                                                                   \
	"\"https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"   \
	"context.jsonld\""
#define WX_CTX                                                                                     \
	"\"https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/"          \
	"context.jsonld\""
#define CORE_CTX                                                                                   \
	"\"https://citygate.example/schemas/citygate-context.jsonld\","                            \
	"\"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld\""
#define LOCATION                                                                                   \
	"\"location\":{\"type\":\"GeoProperty\",\"value\":{\"type\":\"Point\","                    \
	"\"coordinates\":[128.8761,37.7519]}}"
#define DATETIME(name, ts)                                                                         \
	"\"" name "\":{\"type\":\"Property\",\"value\":{\"@type\":\"DateTime\",\"@value\":\"" ts   \
	"\"}}"
/* A measure Property with observedAt and unitCode, and one without unitCode. */
#define MEASURE(name, value, ts, code)                                                             \
	"\"" name "\":{\"type\":\"Property\",\"value\":" value ",\"observedAt\":\"" ts             \
	"\",\"unitCode\":\"" code "\"}"
#define PLAIN(name, value, ts)                                                                     \
	"\"" name "\":{\"type\":\"Property\",\"value\":" value ",\"observedAt\":\"" ts "\"}"

static const cg_encode_ctx_t ctx_loc = {
    .gateway_id = "gw-gn-0001",
    .has_location = true,
    .lat = 37.7519,
    .lon = 128.8761,
};
static const cg_encode_ctx_t ctx_noloc = {.gateway_id = "gw-gn-0001"};

/* The four readings of the tests, one per kind and parking variant. */
static void make_air_quality(cg_reading_t *r)
{
	cg_reading_init(r);
	strcpy(r->sensor, "aq-001");
	r->kind = CG_KIND_AIR_QUALITY;
	r->ts_ms = T0_MS + 123;
	assert_int_equal(cg_reading_add_number(r, "pm25", 12.3, "ug/m3"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "pm10", 20, "ug/m3"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "no2", 41.5, "ppb"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "temperature", 21.75, "Cel"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "relativeHumidity", 55.5, "%RH"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "pressure", 1013.2, "hPa"), CG_OK);
}

static void make_parking_bay(cg_reading_t *r)
{
	cg_reading_init(r);
	strcpy(r->sensor, "pk-bay-07");
	r->kind = CG_KIND_PARKING;
	r->ts_ms = T0_MS + 5000;
	assert_int_equal(cg_reading_add_string(r, "status", "occupied"), CG_OK);
}

static void make_parking_lot(cg_reading_t *r)
{
	cg_reading_init(r);
	strcpy(r->sensor, "lot-north");
	r->kind = CG_KIND_PARKING;
	r->quality = CG_QUALITY_STALE;
	r->ts_ms = T0_MS + 10500;
	assert_int_equal(cg_reading_add_number(r, "availableSpotNumber", 37, "count"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "occupiedSpotNumber", 83, "count"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "totalSpotNumber", 120, "count"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "occupancy", 0.692, "/"), CG_OK);
}

static void make_traffic(cg_reading_t *r)
{
	cg_reading_init(r);
	strcpy(r->sensor, "tl-01");
	r->kind = CG_KIND_TRAFFIC;
	r->ts_ms = T0_MS + 300000;
	r->interval_s = 300;
	assert_int_equal(cg_reading_add_number(r, "laneId", 1, NULL), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "intensity", 42, "count"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "occupancy", 0.18, "/"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "averageVehicleSpeed", 47.5, "km/h"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "averageVehicleLength", 4.6, "m"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "averageHeadwayTime", 6.9, "s"), CG_OK);
	assert_int_equal(cg_reading_add_bool(r, "congested", false), CG_OK);
}

static void make_weather(cg_reading_t *r)
{
	cg_reading_init(r);
	strcpy(r->sensor, "ws-001");
	r->kind = CG_KIND_WEATHER;
	r->ts_ms = T0_MS + 123;
	assert_int_equal(cg_reading_add_number(r, "windSpeed", 3.5, "m/s"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "windDirection", 270, "deg"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "temperature", 8.25, "Cel"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "relativeHumidity", 81.5, "%RH"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "atmosphericPressure", 1012.5, "hPa"), CG_OK);
	assert_int_equal(cg_reading_add_number(r, "precipitationTotal", 2.5, "mm"), CG_OK);
}

/* Writes a payload to CG_BINARY_DIR/encode-samples/NAME.json, where
 * scripts/validate-schema-examples.sh --samples validates it against the
 * schema named by NAME's part before "--". A failure to write is not a test
 * failure: the samples are a by-product. */
static void save_sample(const char *name, const char *payload)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/encode-samples", CG_BINARY_DIR);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/encode-samples/%s.json", CG_BINARY_DIR, name);
	f = fopen(path, "w");
	if (!f)
		return;
	fputs(payload, f);
	fputc('\n', f);
	fclose(f);
}

/* Encodes r, checks the result is valid JSON of the same length as reported,
 * and returns the text (the caller frees it). */
static char *encode_ok(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_reading_t *r,
                       int64_t seq)
{
	char *out = NULL;
	size_t len = 0;
	cJSON *json;

	assert_int_equal(cg_encode(f, ctx, r, seq, &out, &len), CG_OK);
	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	json = cJSON_Parse(out);
	if (!json)
		fail_msg("not valid JSON: %s", out);
	cJSON_Delete(json);
	return out;
}

/* Encodes r as f, compares with expect, and saves it as a sample. */
static void check_encoding(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_reading_t *r,
                           int64_t seq, const char *expect, const char *sample)
{
	char *out = encode_ok(f, ctx, r, seq);

	assert_string_equal(out, expect);
	save_sample(sample, out);
	free(out);
}

/* A weather station: WeatherObserved in its own context; wind direction in
 * degrees (NGSI-LD unitCode DD), which SenML only has as rad; a total since
 * power-up in citygate's own term, converted like any mm. */
static void test_weather(void **state)
{
	cg_reading_t r;

	(void)state;
	make_weather(&r);
	// clang-format off
	check_encoding(CG_FORMAT_NATIVE, &ctx_noloc, &r, 2210,
		       "{\"gateway\":\"gw-gn-0001\",\"sensor\":\"ws-001\",\"kind\":\"weather\","
		       "\"seq\":2210,\"ts\":\"2026-11-25T11:40:00.123Z\",\"values\":{\"windSpeed\":3.5,"
		       "\"windDirection\":270,\"temperature\":8.25,\"relativeHumidity\":81.5,"
		       "\"atmosphericPressure\":1012.5,\"precipitationTotal\":2.5},\"units\":{"
		       "\"windSpeed\":\"m/s\",\"windDirection\":\"deg\",\"temperature\":\"Cel\","
		       "\"relativeHumidity\":\"%RH\",\"atmosphericPressure\":\"hPa\","
		       "\"precipitationTotal\":\"mm\"},\"quality\":\"ok\"}",
		       "reading-weather--ws-001");
	check_encoding(CG_FORMAT_NGSI_LD, &ctx_noloc, &r, 2210,
		       "{\"id\":\"urn:ngsi-ld:WeatherObserved:gw-gn-0001:ws-001\","
		       "\"type\":\"WeatherObserved\","
		       DATETIME("dateObserved", "2026-11-25T11:40:00.123Z") ","
		       MEASURE("windSpeed", "3.5", "2026-11-25T11:40:00.123Z", "MTS") ","
		       MEASURE("windDirection", "270", "2026-11-25T11:40:00.123Z", "DD") ","
		       MEASURE("temperature", "8.25", "2026-11-25T11:40:00.123Z", "CEL") ","
		       MEASURE("relativeHumidity", "0.815", "2026-11-25T11:40:00.123Z", "C62") ","
		       MEASURE("atmosphericPressure", "1012.5", "2026-11-25T11:40:00.123Z", "A97") ","
		       MEASURE("precipitationTotal", "2.5", "2026-11-25T11:40:00.123Z", "MMT") ","
		       "\"dataQuality\":{\"type\":\"Property\",\"value\":\"ok\"},"
		       "\"seq\":{\"type\":\"Property\",\"value\":2210},"
		       "\"@context\":[" WX_CTX "," CORE_CTX "]}",
		       "reading-ngsi-ld--ws-001");
	/* 270 degrees is 3 pi / 2 rad. */
	check_encoding(CG_FORMAT_SENML, &ctx_noloc, &r, 2210,
		       "[{\"bn\":\"urn:dev:gw-gn-0001:ws-001:\",\"bt\":1795606800.123,"
		       "\"n\":\"windSpeed\",\"u\":\"m/s\",\"v\":3.5},"
		       "{\"n\":\"windDirection\",\"u\":\"rad\",\"v\":4.71238898038469},"
		       "{\"n\":\"temperature\",\"u\":\"Cel\",\"v\":8.25},"
		       "{\"n\":\"relativeHumidity\",\"u\":\"%RH\",\"v\":81.5},"
		       "{\"n\":\"atmosphericPressure\",\"u\":\"Pa\",\"v\":101250},"
		       "{\"n\":\"precipitationTotal\",\"u\":\"m\",\"v\":0.0025},"
		       "{\"n\":\"seq\",\"v\":2210},"
		       "{\"n\":\"quality\",\"vs\":\"ok\"}]",
		       "senml--ws-001");
	// clang-format on
}

static void test_air_quality(void **state)
{
	cg_reading_t r;

	make_air_quality(&r);
	/* The expected payloads are laid out by hand, one part per line. */
	// clang-format off
	check_encoding(CG_FORMAT_NATIVE, &ctx_loc, &r, 1042,
		       "{\"gateway\":\"gw-gn-0001\",\"sensor\":\"aq-001\",\"kind\":\"air-quality\","
		       "\"seq\":1042,\"ts\":\"2026-11-25T11:40:00.123Z\",\"values\":{\"pm25\":12.3,"
		       "\"pm10\":20,\"no2\":41.5,\"temperature\":21.75,\"relativeHumidity\":55.5,"
		       "\"pressure\":1013.2},\"units\":{\"pm25\":\"ug/m3\",\"pm10\":\"ug/m3\","
		       "\"no2\":\"ppb\",\"temperature\":\"Cel\",\"relativeHumidity\":\"%RH\","
		       "\"pressure\":\"hPa\"},\"quality\":\"ok\"}",
		       "reading-air-quality--aq-001");
	check_encoding(CG_FORMAT_NGSI_LD, &ctx_loc, &r, 1042,
		       "{\"id\":\"urn:ngsi-ld:AirQualityObserved:gw-gn-0001:aq-001\","
		       "\"type\":\"AirQualityObserved\","
		       DATETIME("dateObserved", "2026-11-25T11:40:00.123Z") ","
		       LOCATION ","
		       MEASURE("pm25", "12.3", "2026-11-25T11:40:00.123Z", "GQ") ","
		       MEASURE("pm10", "20", "2026-11-25T11:40:00.123Z", "GQ") ","
		       MEASURE("no2", "41.5", "2026-11-25T11:40:00.123Z", "61") ","
		       MEASURE("temperature", "21.75", "2026-11-25T11:40:00.123Z", "CEL") ","
		       MEASURE("relativeHumidity", "0.555", "2026-11-25T11:40:00.123Z", "C62") ","
		       MEASURE("pressure", "1013.2", "2026-11-25T11:40:00.123Z", "A97") ","
		       "\"dataQuality\":{\"type\":\"Property\",\"value\":\"ok\"},"
		       "\"seq\":{\"type\":\"Property\",\"value\":1042},"
		       "\"@context\":[" ENV_CTX "," CORE_CTX "]}",
		       "reading-ngsi-ld--aq-001");
	check_encoding(CG_FORMAT_SENML, &ctx_loc, &r, 1042,
		       "[{\"bn\":\"urn:dev:gw-gn-0001:aq-001:\",\"bt\":1795606800.123,"
		       "\"n\":\"pm25\",\"u\":\"kg/m3\",\"v\":1.23e-08},"
		       "{\"n\":\"pm10\",\"u\":\"kg/m3\",\"v\":2e-08},"
		       "{\"n\":\"no2\",\"u\":\"/\",\"v\":4.15e-08},"
		       "{\"n\":\"temperature\",\"u\":\"Cel\",\"v\":21.75},"
		       "{\"n\":\"relativeHumidity\",\"u\":\"%RH\",\"v\":55.5},"
		       "{\"n\":\"pressure\",\"u\":\"Pa\",\"v\":101320},"
		       "{\"n\":\"seq\",\"v\":1042},"
		       "{\"n\":\"quality\",\"vs\":\"ok\"}]",
		       "senml--aq-001");
	// clang-format on
}

static void test_parking_bay(void **state)
{
	cg_reading_t r;

	make_parking_bay(&r);
	/* The expected payloads are laid out by hand, one part per line. */
	// clang-format off
	check_encoding(CG_FORMAT_NATIVE, &ctx_loc, &r, 1043,
		       "{\"gateway\":\"gw-gn-0001\",\"sensor\":\"pk-bay-07\",\"kind\":\"parking\","
		       "\"seq\":1043,\"ts\":\"2026-11-25T11:40:05.000Z\","
		       "\"values\":{\"status\":\"occupied\"},\"units\":{},\"quality\":\"ok\"}",
		       "reading-parking--pk-bay-07");
	check_encoding(CG_FORMAT_NGSI_LD, &ctx_loc, &r, 1043,
		       "{\"id\":\"urn:ngsi-ld:ParkingSpot:gw-gn-0001:pk-bay-07\","
		       "\"type\":\"ParkingSpot\","
		       LOCATION ","
		       PLAIN("status", "\"occupied\"", "2026-11-25T11:40:05.000Z") ","
		       "\"dataQuality\":{\"type\":\"Property\",\"value\":\"ok\"},"
		       "\"seq\":{\"type\":\"Property\",\"value\":1043},"
		       "\"@context\":[" PARK_CTX "," CORE_CTX "]}",
		       "reading-ngsi-ld--pk-bay-07");
	check_encoding(CG_FORMAT_SENML, &ctx_loc, &r, 1043,
		       "[{\"bn\":\"urn:dev:gw-gn-0001:pk-bay-07:\",\"bt\":1795606805,"
		       "\"n\":\"status\",\"vs\":\"occupied\"},"
		       "{\"n\":\"seq\",\"v\":1043},"
		       "{\"n\":\"quality\",\"vs\":\"ok\"}]",
		       "senml--pk-bay-07");
	// clang-format on
}

static void test_parking_lot(void **state)
{
	cg_reading_t r;

	make_parking_lot(&r);
	/* The expected payloads are laid out by hand, one part per line. */
	// clang-format off
	check_encoding(CG_FORMAT_NATIVE, &ctx_noloc, &r, 1044,
		       "{\"gateway\":\"gw-gn-0001\",\"sensor\":\"lot-north\",\"kind\":\"parking\","
		       "\"seq\":1044,\"ts\":\"2026-11-25T11:40:10.500Z\",\"values\":{"
		       "\"availableSpotNumber\":37,\"occupiedSpotNumber\":83,\"totalSpotNumber\":120,"
		       "\"occupancy\":0.692},\"units\":{\"availableSpotNumber\":\"count\","
		       "\"occupiedSpotNumber\":\"count\",\"totalSpotNumber\":\"count\","
		       "\"occupancy\":\"/\"},\"quality\":\"stale\"}",
		       "reading-parking--lot-north");
	// clang-format on
	/* No location in the context: no location attribute. */
	// clang-format off
	check_encoding(CG_FORMAT_NGSI_LD, &ctx_noloc, &r, 1044,
		       "{\"id\":\"urn:ngsi-ld:OffStreetParking:gw-gn-0001:lot-north\","
		       "\"type\":\"OffStreetParking\","
		       DATETIME("observationDateTime", "2026-11-25T11:40:10.500Z") ","
		       MEASURE("availableSpotNumber", "37", "2026-11-25T11:40:10.500Z", "C62") ","
		       MEASURE("occupiedSpotNumber", "83", "2026-11-25T11:40:10.500Z", "C62") ","
		       MEASURE("totalSpotNumber", "120", "2026-11-25T11:40:10.500Z", "C62") ","
		       MEASURE("occupancy", "0.692", "2026-11-25T11:40:10.500Z", "C62") ","
		       "\"dataQuality\":{\"type\":\"Property\",\"value\":\"stale\"},"
		       "\"seq\":{\"type\":\"Property\",\"value\":1044},"
		       "\"@context\":[" PARK_CTX "," CORE_CTX "]}",
		       "reading-ngsi-ld--lot-north");
	check_encoding(CG_FORMAT_SENML, &ctx_noloc, &r, 1044,
		       "[{\"bn\":\"urn:dev:gw-gn-0001:lot-north:\",\"bt\":1795606810.5,"
		       "\"n\":\"availableSpotNumber\",\"u\":\"count\",\"v\":37},"
		       "{\"n\":\"occupiedSpotNumber\",\"u\":\"count\",\"v\":83},"
		       "{\"n\":\"totalSpotNumber\",\"u\":\"count\",\"v\":120},"
		       "{\"n\":\"occupancy\",\"u\":\"/\",\"v\":0.692},"
		       "{\"n\":\"seq\",\"v\":1044},"
		       "{\"n\":\"quality\",\"vs\":\"stale\"}]",
		       "senml--lot-north");
	// clang-format on
}

static void test_traffic(void **state)
{
	cg_reading_t r;

	make_traffic(&r);
	/* The expected payloads are laid out by hand, one part per line. */
	// clang-format off
	check_encoding(CG_FORMAT_NATIVE, &ctx_loc, &r, 1045,
		       "{\"gateway\":\"gw-gn-0001\",\"sensor\":\"tl-01\",\"kind\":\"traffic\","
		       "\"seq\":1045,\"ts\":\"2026-11-25T11:45:00.000Z\",\"interval_s\":300,"
		       "\"values\":{\"laneId\":1,\"intensity\":42,\"occupancy\":0.18,"
		       "\"averageVehicleSpeed\":47.5,\"averageVehicleLength\":4.6,"
		       "\"averageHeadwayTime\":6.9,\"congested\":false},"
		       "\"units\":{\"intensity\":\"count\",\"occupancy\":\"/\","
		       "\"averageVehicleSpeed\":\"km/h\",\"averageVehicleLength\":\"m\","
		       "\"averageHeadwayTime\":\"s\"},\"quality\":\"ok\"}",
		       "reading-traffic--tl-01");
	check_encoding(CG_FORMAT_NGSI_LD, &ctx_loc, &r, 1045,
		       "{\"id\":\"urn:ngsi-ld:TrafficFlowObserved:gw-gn-0001:tl-01:lane1\","
		       "\"type\":\"TrafficFlowObserved\","
		       DATETIME("dateObserved", "2026-11-25T11:45:00.000Z") ","
		       DATETIME("dateObservedFrom", "2026-11-25T11:40:00.000Z") ","
		       DATETIME("dateObservedTo", "2026-11-25T11:45:00.000Z") ","
		       LOCATION ","
		       PLAIN("laneId", "1", "2026-11-25T11:45:00.000Z") ","
		       MEASURE("intensity", "42", "2026-11-25T11:45:00.000Z", "C62") ","
		       MEASURE("occupancy", "0.18", "2026-11-25T11:45:00.000Z", "C62") ","
		       MEASURE("averageVehicleSpeed", "47.5", "2026-11-25T11:45:00.000Z", "KMH") ","
		       MEASURE("averageVehicleLength", "4.6", "2026-11-25T11:45:00.000Z", "MTR") ","
		       MEASURE("averageHeadwayTime", "6.9", "2026-11-25T11:45:00.000Z", "SEC") ","
		       PLAIN("congested", "false", "2026-11-25T11:45:00.000Z") ","
		       "\"dataQuality\":{\"type\":\"Property\",\"value\":\"ok\"},"
		       "\"seq\":{\"type\":\"Property\",\"value\":1045},"
		       "\"@context\":[" TRAF_CTX "," CORE_CTX "]}",
		       "reading-ngsi-ld--tl-01");
	check_encoding(CG_FORMAT_SENML, &ctx_loc, &r, 1045,
		       "[{\"bn\":\"urn:dev:gw-gn-0001:tl-01:lane1:\",\"bt\":1795607100,"
		       "\"n\":\"laneId\",\"v\":1},"
		       "{\"n\":\"intensity\",\"u\":\"count\",\"v\":42},"
		       "{\"n\":\"occupancy\",\"u\":\"/\",\"v\":0.18},"
		       "{\"n\":\"averageVehicleSpeed\",\"u\":\"m/s\",\"v\":13.1944444444444},"
		       "{\"n\":\"averageVehicleLength\",\"u\":\"m\",\"v\":4.6},"
		       "{\"n\":\"averageHeadwayTime\",\"u\":\"s\",\"v\":6.9},"
		       "{\"n\":\"congested\",\"vb\":false},"
		       "{\"n\":\"interval_s\",\"u\":\"s\",\"v\":300},"
		       "{\"n\":\"seq\",\"v\":1045},"
		       "{\"n\":\"quality\",\"vs\":\"ok\"}]",
		       "senml--tl-01");
	// clang-format on
}

/* Returns the string member key of the first element of the JSON in out
 * (an object's own key for NGSI-LD, the first record's for SenML), copied
 * into buf. */
static const char *first_string(const char *out, const char *key, char *buf, size_t size)
{
	cJSON *json = cJSON_Parse(out);
	const cJSON *o = cJSON_IsArray(json) ? cJSON_GetArrayItem(json, 0) : json;

	assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(o, key)));
	snprintf(buf, size, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, key)));
	cJSON_Delete(json);
	return buf;
}

/* A two-lane sensor's poll, split as the bus worker splits it, gives two
 * readings on one topic with one ts: each must be its own NGSI-LD entity
 * (id) and SenML record set (bn), and carry its laneId once. */
static void test_lanes_have_own_identity(void **state)
{
	static const char *const ids[] = {"urn:ngsi-ld:TrafficFlowObserved:gw-gn-0001:tl-02:lane1",
	                                  "urn:ngsi-ld:TrafficFlowObserved:gw-gn-0001:tl-02:lane2"};
	static const char *const bns[] = {"urn:dev:gw-gn-0001:tl-02:lane1:",
	                                  "urn:dev:gw-gn-0001:tl-02:lane2:"};
	cg_reading_t in, lanes[4];
	char buf[128];
	size_t n;

	cg_reading_init(&in);
	strcpy(in.sensor, "tl-02");
	in.kind = CG_KIND_TRAFFIC;
	in.ts_ms = T0_MS;
	in.interval_s = 60;
	for (int lane = 1; lane <= 2; lane++) {
		cg_reading_set_lane(&in, lane);
		assert_int_equal(cg_reading_add_number(&in, "intensity", 10 * lane, "count"),
		                 CG_OK);
	}
	n = cg_reading_split_lanes(&in, lanes, 4);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		char *out;
		cJSON *json;

		assert_int_equal(cg_encode_lane(&lanes[i]), (int)i + 1);
		out = encode_ok(CG_FORMAT_NGSI_LD, &ctx_noloc, &lanes[i], 1);
		assert_string_equal(first_string(out, "id", buf, sizeof(buf)), ids[i]);
		free(out);
		out = encode_ok(CG_FORMAT_SENML, &ctx_noloc, &lanes[i], 1);
		assert_string_equal(first_string(out, "bn", buf, sizeof(buf)), bns[i]);
		free(out);
		/* Native: the topic's sensor, and the lane in values.laneId. */
		out = encode_ok(CG_FORMAT_NATIVE, &ctx_noloc, &lanes[i], 1);
		json = cJSON_Parse(out);
		assert_int_equal(
		    cJSON_GetObjectItem(cJSON_GetObjectItem(json, "values"), "laneId")->valueint,
		    (int)i + 1);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(json, "sensor")),
		                    "tl-02");
		cJSON_Delete(json);
		free(out);
	}

	/* A laneId that is no lane number adds nothing to the identity. */
	cg_reading_init(&in);
	strcpy(in.sensor, "tl-03");
	in.kind = CG_KIND_TRAFFIC;
	assert_int_equal(cg_reading_add_number(&in, "laneId", 1.5, NULL), CG_OK);
	assert_int_equal(cg_encode_lane(&in), 0);
	in.values[0].number = 0;
	assert_int_equal(cg_encode_lane(&in), 0);
	in.values[0].number = NAN;
	assert_int_equal(cg_encode_lane(&in), 0);
	cg_reading_init(&in);
	assert_int_equal(cg_reading_add_string(&in, "laneId", "1"), CG_OK);
	assert_int_equal(cg_encode_lane(&in), 0);
}

/* Parses an NGSI-LD encoding of r; the caller deletes the result. */
static cJSON *ngsi_json(const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq)
{
	char *out = encode_ok(CG_FORMAT_NGSI_LD, ctx, r, seq);
	cJSON *json = cJSON_Parse(out);

	free(out);
	assert_non_null(json);
	return json;
}

/* Fails unless attr is a Property whose value is a DateTime. */
static void assert_datetime_property(const cJSON *entity, const char *attr)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(entity, attr);
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(a, "value");

	if (!a)
		fail_msg("attribute %s missing", attr);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "type")), "Property");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(value, "@type")), "DateTime");
	assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(value, "@value")));
}

/* Checks the attributes every entity has (time_attr: the model's attribute
 * for the time of measurement, NULL for none), and that each other attribute
 * is a Property, GeoProperty, Relationship or the @context. */
static void assert_entity_common(const cJSON *e, const char *type, const char *id,
                                 const char *context, const char *time_attr)
{
	const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(e, "@context");
	const cJSON *a;

	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "id")), id);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "type")), type);
	assert_true(cJSON_IsArray(ctx));
	assert_int_equal(cJSON_GetArraySize(ctx), 3);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(ctx, 0)), context);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(ctx, 1)), CG_CITYGATE_CONTEXT);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(ctx, 2)), CG_NGSI_CORE_CONTEXT);
	if (time_attr)
		assert_datetime_property(e, time_attr);
	/* Parking has its own time attributes, not dateObserved. */
	if (!time_attr || strcmp(time_attr, "dateObserved") != 0)
		assert_null(cJSON_GetObjectItemCaseSensitive(e, "dateObserved"));
	cJSON_ArrayForEach(a, e)
	{
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(a, "type"));

		if (strcmp(a->string, "id") == 0 || strcmp(a->string, "type") == 0 ||
		    strcmp(a->string, "@context") == 0)
			continue;
		if (t && strcmp(t, "Relationship") == 0) {
			if (!cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "object")))
				fail_msg("relationship %s has no object", a->string);
			continue;
		}
		if (!t || (strcmp(t, "Property") != 0 && strcmp(t, "GeoProperty") != 0))
			fail_msg("attribute %s is neither a Property nor a GeoProperty", a->string);
		if (!cJSON_GetObjectItemCaseSensitive(a, "value"))
			fail_msg("attribute %s has no value", a->string);
	}
}

/* Fails unless the entity has a GeoJSON Point location [lon, lat]. */
static void assert_location(const cJSON *e)
{
	const cJSON *loc = cJSON_GetObjectItemCaseSensitive(e, "location");
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(loc, "value");
	const cJSON *coords = cJSON_GetObjectItemCaseSensitive(value, "coordinates");

	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(loc, "type")), "GeoProperty");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(value, "type")), "Point");
	assert_int_equal(cJSON_GetArraySize(coords), 2);
	assert_true(cJSON_GetArrayItem(coords, 0)->valuedouble == 128.8761);
	assert_true(cJSON_GetArrayItem(coords, 1)->valuedouble == 37.7519);
}

/* Each kind's entity carries what its Smart Data Model requires (or what
 * the gateway can know of it: category and refParkingSite come from the
 * config, see test_ngsi_config_attributes). */
static void test_ngsi_required_attributes(void **state)
{
	cg_reading_t r;
	cJSON *e;
	const cJSON *a;
	const char *status;

	make_air_quality(&r);
	e = ngsi_json(&ctx_loc, &r, 1);
	assert_entity_common(e, "AirQualityObserved",
	                     "urn:ngsi-ld:AirQualityObserved:gw-gn-0001:aq-001",
	                     CG_SDM_CONTEXT_ENVIRONMENT, "dateObserved");
	assert_location(e);
	a = cJSON_GetObjectItemCaseSensitive(e, "pm25");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "observedAt")),
	                    "2026-11-25T11:40:00.123Z");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "unitCode")), "GQ");
	cJSON_Delete(e);

	make_parking_bay(&r);
	e = ngsi_json(&ctx_loc, &r, 2);
	assert_entity_common(e, "ParkingSpot", "urn:ngsi-ld:ParkingSpot:gw-gn-0001:pk-bay-07",
	                     CG_SDM_CONTEXT_PARKING, NULL);
	assert_location(e);
	status = cJSON_GetStringValue(
	    cJSON_GetObjectItem(cJSON_GetObjectItemCaseSensitive(e, "status"), "value"));
	assert_non_null(status);
	assert_true(strcmp(status, "free") == 0 || strcmp(status, "occupied") == 0 ||
	            strcmp(status, "closed") == 0 || strcmp(status, "unknown") == 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
	                        cJSON_GetObjectItemCaseSensitive(e, "status"), "observedAt")),
	                    "2026-11-25T11:40:05.000Z");
	cJSON_Delete(e);

	make_parking_lot(&r);
	e = ngsi_json(&ctx_loc, &r, 3);
	assert_entity_common(e, "OffStreetParking",
	                     "urn:ngsi-ld:OffStreetParking:gw-gn-0001:lot-north",
	                     CG_SDM_CONTEXT_PARKING, "observationDateTime");
	assert_location(e);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "availableSpotNumber"));
	assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "totalSpotNumber"));
	cJSON_Delete(e);

	make_traffic(&r);
	e = ngsi_json(&ctx_loc, &r, 4);
	assert_entity_common(e, "TrafficFlowObserved",
	                     "urn:ngsi-ld:TrafficFlowObserved:gw-gn-0001:tl-01:lane1",
	                     CG_SDM_CONTEXT_TRANSPORTATION, "dateObserved");
	assert_location(e);
	assert_datetime_property(e, "dateObservedFrom");
	assert_datetime_property(e, "dateObservedTo");
	cJSON_Delete(e);
}

/* Attributes from the config's "ngsi_ld" object: a ref... name is a
 * Relationship to the URI given, any other a Property; a reading value of the
 * same name is left out rather than written twice. */
static void test_ngsi_config_attributes(void **state)
{
	cJSON *cfg =
	    cJSON_Parse("{\"category\":[\"offStreet\"],"
	                "\"refParkingSite\":\"urn:ngsi-ld:OffStreetParking:gw-gn-0001:lot-north\","
	                "\"status\":\"closed\"}");
	cg_encode_ctx_t ctx = ctx_loc;
	char *attrs = NULL;
	cg_reading_t r;
	cJSON *e;
	const cJSON *a;

	assert_non_null(cfg);
	assert_int_equal(cg_ngsi_attrs_render(cfg, &attrs), CG_OK);
	assert_string_equal(attrs,
	                    ",\"category\":{\"type\":\"Property\",\"value\":[\"offStreet\"]},"
	                    "\"refParkingSite\":{\"type\":\"Relationship\",\"object\":"
	                    "\"urn:ngsi-ld:OffStreetParking:gw-gn-0001:lot-north\"},"
	                    "\"status\":{\"type\":\"Property\",\"value\":\"closed\"}");
	ctx.ngsi_attrs = attrs;
	make_parking_bay(&r);
	e = ngsi_json(&ctx, &r, 2);
	assert_entity_common(e, "ParkingSpot", "urn:ngsi-ld:ParkingSpot:gw-gn-0001:pk-bay-07",
	                     CG_SDM_CONTEXT_PARKING, NULL);
	a = cJSON_GetObjectItemCaseSensitive(e, "refParkingSite");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "type")), "Relationship");
	a = cJSON_GetObjectItemCaseSensitive(e, "category");
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "value"), 0)),
	    "offStreet");
	/* The config's status wins over the reading's: one key, not two. */
	a = cJSON_GetObjectItemCaseSensitive(e, "status");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "value")), "closed");
	cJSON_Delete(e);
	{
		char *out = encode_ok(CG_FORMAT_NGSI_LD, &ctx, &r, 2);
		const char *first = strstr(out, "\"status\":");

		assert_non_null(first);
		assert_null(strstr(first + 1, "\"status\":"));
		free(out);
	}
	free(attrs);

	/* What the config may not give. */
	assert_null(cg_ngsi_attr_problem("category", cJSON_GetObjectItem(cfg, "category")));
	assert_null(
	    cg_ngsi_attr_problem("refParkingSite", cJSON_GetObjectItem(cfg, "refParkingSite")));
	assert_non_null(cg_ngsi_attr_problem("refDevice", cJSON_GetObjectItem(cfg, "category")));
	assert_non_null(cg_ngsi_attr_problem("refDevice", cJSON_GetObjectItem(cfg, "status")));
	assert_non_null(cg_ngsi_attr_problem("seq", cJSON_GetObjectItem(cfg, "status")));
	assert_non_null(cg_ngsi_attr_problem("location", cJSON_GetObjectItem(cfg, "status")));
	assert_non_null(cg_ngsi_attr_problem("my attr", cJSON_GetObjectItem(cfg, "status")));
	assert_non_null(cg_ngsi_attr_problem("", cJSON_GetObjectItem(cfg, "status")));
	cJSON_Delete(cfg);
	cfg = cJSON_Parse("{\"o\":{\"a\":1},\"n\":null,\"e\":[],\"x\":[1,{}]}");
	for (a = cfg->child; a; a = a->next)
		assert_non_null(cg_ngsi_attr_problem(a->string, a));
	cJSON_Delete(cfg);
	cfg = cJSON_Parse("{}");
	assert_int_equal(cg_ngsi_attrs_render(cfg, &attrs), CG_OK);
	assert_null(attrs);
	cJSON_Delete(cfg);
}

/* An instant traffic measure (interval_s 0) has no dateObservedFrom/To. */
static void test_ngsi_no_interval(void **state)
{
	cg_reading_t r;
	cJSON *e;

	make_traffic(&r);
	r.interval_s = 0;
	e = ngsi_json(&ctx_loc, &r, 1);
	assert_null(cJSON_GetObjectItemCaseSensitive(e, "dateObservedFrom"));
	assert_null(cJSON_GetObjectItemCaseSensitive(e, "dateObservedTo"));
	cJSON_Delete(e);
}

/* Relative humidity and occupancy reported in percent become fractions 0-1
 * with unitCode C62; those already fractions ("/") stay as they are. */
static void test_ngsi_fractions(void **state)
{
	cg_reading_t r;
	cJSON *e;
	const cJSON *a;

	cg_reading_init(&r);
	strcpy(r.sensor, "tl-02");
	r.kind = CG_KIND_TRAFFIC;
	r.ts_ms = T0_MS;
	assert_int_equal(cg_reading_add_number(&r, "occupancy", 18, "%"), CG_OK);
	e = ngsi_json(&ctx_noloc, &r, 1);
	a = cJSON_GetObjectItemCaseSensitive(e, "occupancy");
	assert_true(cJSON_GetObjectItem(a, "value")->valuedouble == 0.18);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "unitCode")), "C62");
	cJSON_Delete(e);

	cg_reading_init(&r);
	strcpy(r.sensor, "aq-002");
	r.kind = CG_KIND_AIR_QUALITY;
	r.ts_ms = T0_MS;
	assert_int_equal(cg_reading_add_number(&r, "relativeHumidity", 0.4, "/"), CG_OK);
	assert_int_equal(cg_reading_add_number(&r, "temperature", 40, "%"), CG_OK);
	e = ngsi_json(&ctx_noloc, &r, 1);
	a = cJSON_GetObjectItemCaseSensitive(e, "relativeHumidity");
	assert_true(cJSON_GetObjectItem(a, "value")->valuedouble == 0.4);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "unitCode")), "C62");
	/* Only the fraction quantities are converted. */
	a = cJSON_GetObjectItemCaseSensitive(e, "temperature");
	assert_true(cJSON_GetObjectItem(a, "value")->valuedouble == 40);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(a, "unitCode")), "P1");
	cJSON_Delete(e);
}

/* seq < 0 (--once) leaves seq out of every format; the samples are checked
 * against reading-once.schema.json. */
static void test_seq_absent(void **state)
{
	void (*makers[])(cg_reading_t *) = {make_air_quality, make_parking_bay, make_parking_lot,
	                                    make_traffic, make_weather};
	static const char *const names[] = {"aq-001", "pk-bay-07", "lot-north", "tl-01", "ws-001"};

	for (size_t i = 0; i < sizeof(makers) / sizeof(makers[0]); i++) {
		cg_reading_t r;
		char *out;
		cJSON *json;
		const cJSON *rec;
		char sample[64];

		makers[i](&r);
		out = encode_ok(CG_FORMAT_NATIVE, &ctx_loc, &r, -1);
		json = cJSON_Parse(out);
		assert_null(cJSON_GetObjectItemCaseSensitive(json, "seq"));
		assert_non_null(cJSON_GetObjectItemCaseSensitive(json, "ts"));
		snprintf(sample, sizeof(sample), "reading-once--%s-native", names[i]);
		save_sample(sample, out);
		cJSON_Delete(json);
		free(out);

		out = encode_ok(CG_FORMAT_NGSI_LD, &ctx_loc, &r, -1);
		json = cJSON_Parse(out);
		assert_null(cJSON_GetObjectItemCaseSensitive(json, "seq"));
		snprintf(sample, sizeof(sample), "reading-once--%s-ngsi-ld", names[i]);
		save_sample(sample, out);
		cJSON_Delete(json);
		free(out);

		out = encode_ok(CG_FORMAT_SENML, &ctx_loc, &r, -1);
		json = cJSON_Parse(out);
		cJSON_ArrayForEach(rec, json)
		{
			const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "n"));

			assert_non_null(n);
			assert_string_not_equal(n, "seq");
		}
		snprintf(sample, sizeof(sample), "reading-once--%s-senml", names[i]);
		save_sample(sample, out);
		cJSON_Delete(json);
		free(out);
	}
}

/* seq 0 is still a seq (only negative means none), and large values print exactly. */
static void test_seq_values(void **state)
{
	cg_reading_t r;
	char *out;

	make_parking_bay(&r);
	out = encode_ok(CG_FORMAT_NATIVE, &ctx_loc, &r, 0);
	assert_non_null(strstr(out, ",\"seq\":0,"));
	free(out);
	out = encode_ok(CG_FORMAT_NGSI_LD, &ctx_loc, &r, INT64_C(9007199254740991));
	assert_non_null(strstr(out, "\"seq\":{\"type\":\"Property\",\"value\":9007199254740991}"));
	free(out);
	out = encode_ok(CG_FORMAT_SENML, &ctx_loc, &r, INT64_C(9007199254740991));
	assert_non_null(strstr(out, "{\"n\":\"seq\",\"v\":9007199254740991}"));
	free(out);
}

/* A sensor id with quotes, a backslash, a tab, a slash and UTF-8: escaped in
 * JSON strings, percent-encoded in the NGSI-LD URN, and every output parses
 * back to the original id. */
static void test_odd_ids(void **state)
{
	static const char odd[] = "aq \"7\"\\\t\xc3\xbc/x";
	cg_reading_t r;
	char *out;
	cJSON *json;

	make_air_quality(&r);
	strcpy(r.sensor, odd);

	out = encode_ok(CG_FORMAT_NATIVE, &ctx_loc, &r, 1);
	assert_non_null(strstr(out, "\"sensor\":\"aq \\\"7\\\"\\\\\\u0009\xc3\xbc/x\""));
	json = cJSON_Parse(out);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(json, "sensor")), odd);
	cJSON_Delete(json);
	free(out);

	out = encode_ok(CG_FORMAT_NGSI_LD, &ctx_loc, &r, 1);
	json = cJSON_Parse(out);
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetObjectItem(json, "id")),
	    "urn:ngsi-ld:AirQualityObserved:gw-gn-0001:aq%20%227%22%5C%09%C3%BC%2Fx");
	cJSON_Delete(json);
	free(out);

	out = encode_ok(CG_FORMAT_SENML, &ctx_loc, &r, 1);
	assert_non_null(
	    strstr(out, "\"bn\":\"urn:dev:gw-gn-0001:aq \\\"7\\\"\\\\\\u0009\xc3\xbc/x:\""));
	json = cJSON_Parse(out);
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(json, 0), "bn")),
	    "urn:dev:gw-gn-0001:aq \"7\"\\\t\xc3\xbc/x:");
	cJSON_Delete(json);
	free(out);

	/* A gateway id with a colon must not add a part to the URN. */
	{
		const cg_encode_ctx_t colon = {.gateway_id = "gw:1"};

		out = encode_ok(CG_FORMAT_NGSI_LD, &colon, &r, 1);
		assert_non_null(
		    strstr(out, "\"id\":\"urn:ngsi-ld:AirQualityObserved:gw%3A1:aq%20"));
		free(out);
	}
}

/* A number that is not finite is null in the native format (JSON has no NaN)
 * and left out of NGSI-LD (which forbids null values) and SenML (where v must
 * be a number). */
static void test_non_finite(void **state)
{
	cg_reading_t r;
	char *out;
	cJSON *json;
	const cJSON *rec;

	cg_reading_init(&r);
	strcpy(r.sensor, "aq-003");
	r.kind = CG_KIND_AIR_QUALITY;
	r.ts_ms = T0_MS;
	assert_int_equal(cg_reading_add_number(&r, "pm25", NAN, "ug/m3"), CG_OK);
	assert_int_equal(cg_reading_add_number(&r, "pm10", INFINITY, "ug/m3"), CG_OK);
	assert_int_equal(cg_reading_add_number(&r, "temperature", 20, "Cel"), CG_OK);

	out = encode_ok(CG_FORMAT_NATIVE, &ctx_noloc, &r, 5);
	assert_non_null(strstr(out, "\"values\":{\"pm25\":null,\"pm10\":null,\"temperature\":20}"));
	json = cJSON_Parse(out);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "values"), "pm25")));
	cJSON_Delete(json);
	save_sample("reading-air-quality--nan", out);
	free(out);

	out = encode_ok(CG_FORMAT_NGSI_LD, &ctx_noloc, &r, 5);
	json = cJSON_Parse(out);
	assert_null(cJSON_GetObjectItemCaseSensitive(json, "pm25"));
	assert_null(cJSON_GetObjectItemCaseSensitive(json, "pm10"));
	assert_non_null(cJSON_GetObjectItemCaseSensitive(json, "temperature"));
	cJSON_Delete(json);
	free(out);

	out = encode_ok(CG_FORMAT_SENML, &ctx_noloc, &r, 5);
	assert_string_equal(out, "[{\"bn\":\"urn:dev:gw-gn-0001:aq-003:\",\"bt\":1795606800,"
	                         "\"n\":\"temperature\",\"u\":\"Cel\",\"v\":20},"
	                         "{\"n\":\"seq\",\"v\":5},{\"n\":\"quality\",\"vs\":\"ok\"}]");
	json = cJSON_Parse(out);
	cJSON_ArrayForEach(rec, json)
	{
		assert_false(cJSON_IsNull(cJSON_GetObjectItem(rec, "v")));
	}
	cJSON_Delete(json);
	free(out);
}

/* Integers read exactly from 64-bit registers keep every digit in every
 * format; a double would print 18446744073709551616 and -9.2233720368547758e+18. */
static void test_exact_integers(void **state)
{
	static const cg_format_t formats[] = {CG_FORMAT_NATIVE, CG_FORMAT_NGSI_LD, CG_FORMAT_SENML};
	cg_reading_t r;

	cg_reading_init(&r);
	strcpy(r.sensor, "tc-1");
	r.kind = CG_KIND_TRAFFIC;
	r.ts_ms = T0_MS;
	assert_int_equal(cg_reading_add_uint(&r, "intensity", UINT64_MAX, "count"), CG_OK);
	assert_int_equal(cg_reading_add_int(&r, "occupancy", INT64_MIN, NULL), CG_OK);
	assert_int_equal(cg_reading_add_int(&r, "averageVehicleLength", 0, "m"), CG_OK);
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		char *out = encode_ok(formats[i], &ctx_noloc, &r, 7);

		if (!strstr(out, "18446744073709551615") || !strstr(out, "-9223372036854775808"))
			fail_msg("format %zu lost digits: %s", i, out);
		free(out);
	}
}

/* An interval that is not finite is left out of NGSI-LD and SenML, and an
 * absurdly long one still encodes (without overflow, which UBSan would catch). */
static void test_odd_intervals(void **state)
{
	cg_reading_t r;
	char *out;
	cJSON *e;

	make_traffic(&r);
	r.interval_s = INFINITY;
	e = ngsi_json(&ctx_noloc, &r, 1);
	assert_null(cJSON_GetObjectItemCaseSensitive(e, "dateObservedFrom"));
	cJSON_Delete(e);
	out = encode_ok(CG_FORMAT_SENML, &ctx_noloc, &r, 1);
	assert_null(strstr(out, "interval_s"));
	free(out);

	r.interval_s = 1e300;
	e = ngsi_json(&ctx_noloc, &r, 1);
	assert_datetime_property(e, "dateObservedFrom");
	cJSON_Delete(e);
}

/* A reading with no values still makes a pack: the base fields go on the
 * first record there is, here quality. */
static void test_senml_no_values(void **state)
{
	cg_reading_t r;
	char *out;

	cg_reading_init(&r);
	strcpy(r.sensor, "aq-004");
	r.kind = CG_KIND_AIR_QUALITY;
	r.quality = CG_QUALITY_WARMING_UP;
	r.ts_ms = T0_MS + 7;
	out = encode_ok(CG_FORMAT_SENML, &ctx_noloc, &r, -1);
	assert_string_equal(out, "[{\"bn\":\"urn:dev:gw-gn-0001:aq-004:\",\"bt\":1795606800.007,"
	                         "\"n\":\"quality\",\"vs\":\"warming-up\"}]");
	free(out);
}

/* Values named like attributes or records the encoders write themselves are
 * left out instead of producing duplicate keys or names. */
static void test_reserved_names(void **state)
{
	cg_reading_t r;
	char *out;
	cJSON *json;

	cg_reading_init(&r);
	strcpy(r.sensor, "aq-005");
	r.kind = CG_KIND_AIR_QUALITY;
	r.ts_ms = T0_MS;
	assert_int_equal(cg_reading_add_string(&r, "type", "bogus"), CG_OK);
	assert_int_equal(cg_reading_add_number(&r, "seq", 99, NULL), CG_OK);
	assert_int_equal(cg_reading_add_number(&r, "pm25", 1, "ug/m3"), CG_OK);

	out = encode_ok(CG_FORMAT_NGSI_LD, &ctx_noloc, &r, 7);
	assert_null(strstr(out, "bogus"));
	json = cJSON_Parse(out);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(json, "type")),
	                    "AirQualityObserved");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "seq"), "value")->valueint,
	                 7);
	cJSON_Delete(json);
	free(out);

	out = encode_ok(CG_FORMAT_SENML, &ctx_noloc, &r, 7);
	assert_null(strstr(out, "99"));
	assert_non_null(strstr(out, "{\"n\":\"seq\",\"v\":7}"));
	free(out);
}

/* Every kind has its Smart Data Model for NGSI-LD. A kind or quality
 * outside the enums has no name to go out: every format refuses it. */
static void test_unknown_kind(void **state)
{
	const cg_format_t formats[] = {CG_FORMAT_NATIVE, CG_FORMAT_NGSI_LD, CG_FORMAT_SENML};
	cg_reading_t r;
	char *out = NULL;
	size_t len = 0;

	cg_reading_init(&r);
	strcpy(r.sensor, "nz-001");
	r.ts_ms = T0_MS;
	assert_int_equal(cg_reading_add_number(&r, "LAeq", 55.1, "dB"), CG_OK);
	for (int k = 0; k < CG_N_KINDS; k++) {
		r.kind = (cg_kind_t)k;
		assert_non_null(cg_ngsi_entity_type(&r));
	}
	r.kind = CG_N_KINDS;
	assert_null(cg_ngsi_entity_type(&r));
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		r.kind = CG_N_KINDS;
		r.quality = CG_QUALITY_OK;
		assert_int_equal(cg_encode(formats[i], &ctx_noloc, &r, 1, &out, &len), CG_EINVAL);
		assert_null(out);
		r.kind = CG_KIND_AIR_QUALITY;
		r.quality = CG_N_QUALITIES;
		assert_int_equal(cg_encode(formats[i], &ctx_noloc, &r, 1, &out, &len), CG_EINVAL);
		assert_null(out);
	}
	r.quality = CG_QUALITY_OK;
	assert_int_equal(cg_encode((cg_format_t)42, &ctx_noloc, &r, 1, &out, &len), CG_EINVAL);
}

static void test_unit_codes(void **state)
{
	assert_string_equal(cg_ngsi_unit_code("ug/m3"), "GQ");
	assert_string_equal(cg_ngsi_unit_code("Cel"), "CEL");
	assert_string_equal(cg_ngsi_unit_code("ppb"), "61");
	assert_string_equal(cg_ngsi_unit_code("ppm"), "59");
	assert_string_equal(cg_ngsi_unit_code("hPa"), "A97");
	assert_string_equal(cg_ngsi_unit_code("%RH"), "P1");
	assert_string_equal(cg_ngsi_unit_code("km/h"), "KMH");
	assert_string_equal(cg_ngsi_unit_code("m"), "MTR");
	assert_string_equal(cg_ngsi_unit_code("s"), "SEC");
	assert_string_equal(cg_ngsi_unit_code("count"), "C62");
	assert_string_equal(cg_ngsi_unit_code("/"), "C62");
	assert_null(cg_ngsi_unit_code("furlong"));
	assert_null(cg_ngsi_unit_code(""));
}

/* SenML packs carry RFC 8428 units only, so that they need no bver: secondary
 * units (RFC 8798) and ppb, which no registry has, are converted; a unit that
 * can be neither carried nor converted is refused (config check). */
static void test_senml_units(void **state)
{
	static const struct {
		const char *unit, *senml;
		double in, out;
	} cases[] = {
	    {"ug/m3", "kg/m3", 12.3, 12.3e-9},
	    {"ppm", "/", 400, 400e-6},
	    {"ppb", "/", 41.5, 41.5e-9},
	    {"hPa", "Pa", 1013.25, 101325},
	    {"km/h", "m/s", 36, 10},
	    {"%", "/", 18, 0.18},
	    {"mm", "m", 1500, 1.5},
	    {"Cel", "Cel", 21.5, 21.5},
	    {"%RH", "%RH", 55, 55},
	    {"count", "count", 7, 7},
	    {"/", "/", 0.5, 0.5},
	    {"m", "m", 2, 2},
	    {"s", "s", 6.9, 6.9},
	    {"kg/m3", "kg/m3", 1e-8, 1e-8},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cg_reading_t r;
		char *out;
		cJSON *json;
		const cJSON *rec;

		assert_true(cg_senml_unit_ok(cases[i].unit));
		cg_reading_init(&r);
		strcpy(r.sensor, "u-1");
		r.kind = CG_KIND_AIR_QUALITY;
		assert_int_equal(cg_reading_add_number(&r, "x", cases[i].in, cases[i].unit), CG_OK);
		out = encode_ok(CG_FORMAT_SENML, &ctx_noloc, &r, -1);
		json = cJSON_Parse(out);
		rec = cJSON_GetArrayItem(json, 0);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(rec, "u")),
		                    cases[i].senml);
		if (fabs(cJSON_GetObjectItem(rec, "v")->valuedouble - cases[i].out) >
		    1e-12 * fabs(cases[i].out))
			fail_msg("%s: %.17g, expected %.17g", cases[i].unit,
			         cJSON_GetObjectItem(rec, "v")->valuedouble, cases[i].out);
		/* Only the unit changes: no base version, no other field. */
		assert_null(cJSON_GetObjectItem(rec, "bver"));
		cJSON_Delete(json);
		free(out);
	}
	assert_false(cg_senml_unit_ok("furlong"));
	assert_false(cg_senml_unit_ok("ppt"));
	assert_false(cg_senml_unit_ok(""));
}

/* A xorshift step: the same pseudo-random sequence on every run. */
static uint64_t next_random(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* Encodes a reading with the one value v and checks that the native encoder
 * wrote v as printf's "%.15g" does. */
static void assert_number_as_printf(double v)
{
	cg_reading_t r;
	char want[64], *out, *at;
	size_t n;

	cg_reading_init(&r);
	strcpy(r.sensor, "n");
	r.kind = CG_KIND_AIR_QUALITY;
	assert_int_equal(cg_reading_add_number(&r, "v", v, NULL), CG_OK);
	out = encode_ok(CG_FORMAT_NATIVE, &ctx_loc, &r, 1);
	at = strstr(out, "\"v\":");
	assert_non_null(at);
	at += 4;
	n = strcspn(at, ",}");
	snprintf(want, sizeof(want), "%.15g", v);
	if (strlen(want) != n || memcmp(at, want, n) != 0)
		fail_msg("%.17g: wrote %.*s, printf %s", v, (int)n, at, want);
	free(out);
}

/* Numbers in the native format are written without printf, and must read as
 * printf's "%.15g" would write them (docs/topics.md): compared here for
 * pseudo-random doubles of every magnitude the fast path takes, both signs,
 * and the edges of its range. */
static void test_numbers_as_printf(void **state)
{
	static const double edges[] = {1e-4,
	                               0.1,
	                               0.3,
	                               2.5,
	                               12.3,
	                               999999999999999.0,
	                               1e15 - 0.5,
	                               123456789012345.6,
	                               0.000123456789012345};
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 20000 + (int)(sizeof(edges) / sizeof(edges[0])); i++) {
		double v;

		if (i < (int)(sizeof(edges) / sizeof(edges[0]))) {
			v = edges[i];
		} else {
			x = next_random(x);
			/* Up to 53 random bits scaled to about 2^-15 .. 2^49. */
			v = ldexp((double)(x >> 11), (int)(x % 64) - 67);
			if (x & 1024)
				v = -v;
		}
		assert_number_as_printf(v);
	}
}

/* Short decimals, i / 10^k as sensors report them, take a path of their own
 * in the native encoder: it must still write what "%.15g" writes, for
 * 20,000 of them with 1 to 15 digits and 1 to 6 decimals, either sign, and
 * at the edges (1e-4, where %g turns to exponents below it, 15 digits, a
 * decimal whose double is not the nearest to a shorter one). */
static void test_short_decimals_as_printf(void **state)
{
	static const double edges[] = {0.0001, 0.00011, 0.00009999, 0.1, 0.05, 1013.25,
	                               -0.5, 99999999.999999, 12345678.901234,
	                               123456789.012345, 0.3 + 0.6, 1e-5 * 3};
	const int n_edges = (int)(sizeof(edges) / sizeof(edges[0]));
	uint64_t x = 0x853c49e6748fea9bULL;

	for (int i = 0; i < n_edges + 20000; i++) {
		double v;

		if (i < n_edges) {
			v = edges[i];
		} else {
			int digits, k;
			int64_t m = 1;

			x = next_random(x);
			digits = 1 + (int)(x % 15);
			k = 1 + (int)((x >> 8) % 6);
			for (int d = 0; d < digits; d++)
				m *= 10;
			v = (double)(int64_t)((x >> 16) % (uint64_t)m);
			/* One division gives the double nearest to the decimal;
			 * k of them, often a neighbour of it. */
			if (x & (1u << 13)) {
				v /= pow(10, k);
			} else {
				for (int d = 0; d < k; d++)
					v /= 10;
			}
			if (x & (1u << 12))
				v = -v;
		}
		assert_number_as_printf(v);
	}
}

/* The native encoder writes "ts" without printf and with the date kept from
 * the day before: it must equal cg_rfc3339() for times around day, month,
 * leap-day, century and 9999 boundaries, for 20,000 pseudo-random times up
 * to 9999-12-31 in no order (each a new day for the cache), and for runs of
 * times within one day. Years past 9999 and times before 1970 go through
 * cg_rfc3339() itself. */
static void test_times_as_rfc3339(void **state)
{
	static const int64_t edges[] = {0, 999, 86399999, 86400000, 951782400000 - 1,
	                                951782400000, 951868800000, 4107542399999,
	                                4107542400000, 253402300799999, 253402300800000,
	                                -1, -86400001};
	const int n_edges = (int)(sizeof(edges) / sizeof(edges[0]));
	uint64_t x = 0x2545f4914f6cdd1dULL;
	int64_t ms = 0;
	cg_reading_t r;

	for (int i = 0; i < n_edges + 20000 + 2000; i++) {
		char want[64], *out, *at;

		if (i < n_edges) {
			ms = edges[i];
		} else {
			x = next_random(x);
			if (i < n_edges + 20000)
				ms = (int64_t)(x % 253402300800000ULL);
			else
				ms += (int64_t)(x % 60000); /* runs within a day, across midnights */
		}
		cg_reading_init(&r);
		strcpy(r.sensor, "t");
		r.kind = CG_KIND_AIR_QUALITY;
		r.ts_ms = ms;
		out = encode_ok(CG_FORMAT_NATIVE, &ctx_loc, &r, 1);
		at = strstr(out, "\"ts\":\"");
		assert_non_null(at);
		at += 6;
		cg_rfc3339(ms, want, sizeof(want));
		if (strncmp(at, want, strlen(want)) != 0 || at[strlen(want)] != '"')
			fail_msg("%lld: wrote %.30s, cg_rfc3339 %s", (long long)ms, at, want);
		free(out);
	}
}

/* Times before 1970 are written floored, as valid RFC 3339, and read back. */
static void test_times_before_1970(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
	    {-1, "1969-12-31T23:59:59.999Z"},
	    {-1000, "1969-12-31T23:59:59.000Z"},
	    {-1001, "1969-12-31T23:59:58.999Z"},
	    {-86400001, "1969-12-30T23:59:59.999Z"},
	    {0, "1970-01-01T00:00:00.000Z"},
	    {T0_MS + 123, "2026-11-25T11:40:00.123Z"},
	};
	char buf[32];
	int64_t back;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cg_rfc3339(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
		assert_true(cg_rfc3339_parse(buf, &back));
		assert_int_equal(back, cases[i].ms);
	}
	assert_false(cg_rfc3339_parse("2026-13-25T11:40:00.123Z", &back));
	assert_false(cg_rfc3339_parse("2026-11-25T11:40:00.123+", &back));
}

/* The clock flag in each format: after ts (native), after dataQuality (NGSI-LD),
 * before quality (SenML); absent for a synced reading. */
static void test_clock_flag(void **state)
{
	static const char *const want[] = {
	    [CG_FORMAT_NATIVE] = "\"ts\":\"2026-11-25T11:40:00.123Z\",\"clock\":\"unsynced\",\"values\"",
	    [CG_FORMAT_NGSI_LD] = "\"dataQuality\":{\"type\":\"Property\",\"value\":\"ok\"},"
	                          "\"clock\":{\"type\":\"Property\",\"value\":\"unsynced\"},\"seq\"",
	    [CG_FORMAT_SENML] = "{\"n\":\"seq\",\"v\":7},{\"n\":\"clock\",\"vs\":\"unsynced\"},"
	                        "{\"n\":\"quality\",\"vs\":\"ok\"}]",
	};
	cg_reading_t r;

	(void)state;
	make_air_quality(&r);
	for (int f = CG_FORMAT_NATIVE; f <= CG_FORMAT_SENML; f++) {
		char *out = encode_ok((cg_format_t)f, &ctx_loc, &r, 7);

		assert_null(strstr(out, "clock"));
		free(out);
	}
	r.ts_clock = CG_TS_UNSYNCED;
	for (int f = CG_FORMAT_NATIVE; f <= CG_FORMAT_SENML; f++) {
		char *out = encode_ok((cg_format_t)f, &ctx_loc, &r, 7);
		char name[64];

		if (!strstr(out, want[f]))
			fail_msg("%s: no %s in %s", cg_format_name((cg_format_t)f), want[f], out);
		snprintf(name, sizeof(name), "%s--clock-unsynced",
		         f == CG_FORMAT_NATIVE ? "reading-air-quality"
		         : f == CG_FORMAT_NGSI_LD ? "reading-ngsi-ld" : "senml");
		save_sample(name, out);
		free(out);
	}
}

/* Correcting a stored payload gives exactly the bytes the encoder writes for the
 * corrected reading, in every format and for every kind (NGSI-LD's interval and
 * observedAt times included), and reads its ts and flag back. A payload without the
 * flag, or with a native value named "clock", is not taken for a flagged one. */
static void test_retime(void **state)
{
	static void (*const make[])(cg_reading_t *) = {
	    make_air_quality, make_parking_bay, make_parking_lot, make_traffic, make_weather};
	static const int64_t deltas[] = {T0_MS - 1000, 1, -999, 3600000, 0};
	cg_reading_t r, fixed;

	(void)state;
	for (size_t k = 0; k < sizeof(make) / sizeof(make[0]); k++) {
		for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++) {
			for (int f = CG_FORMAT_NATIVE; f <= CG_FORMAT_SENML; f++) {
				char *stored, *want, *got = NULL;
				size_t len;
				int64_t ts;
				cg_ts_clock_t flag;

				make[k](&r);
				r.ts_ms -= deltas[d];
				r.ts_clock = CG_TS_UNSYNCED;
				fixed = r;
				fixed.ts_ms += deltas[d];
				fixed.ts_clock = CG_TS_CORRECTED;
				stored = encode_ok((cg_format_t)f, &ctx_loc, &r, 41);
				want = encode_ok((cg_format_t)f, &ctx_loc, &fixed, 41);
				assert_int_equal(cg_encode_payload_ts(stored, strlen(stored), &ts,
				                                      &flag),
				                 CG_OK);
				assert_int_equal(ts, r.ts_ms);
				assert_int_equal(flag, CG_TS_UNSYNCED);
				assert_int_equal(cg_encode_retime(stored, strlen(stored), deltas[d],
				                                  &got, &len),
				                 CG_OK);
				assert_string_equal(got, want);
				assert_int_equal(len, strlen(want));
				assert_int_equal(cg_encode_payload_ts(got, len, &ts, &flag), CG_OK);
				assert_int_equal(ts, fixed.ts_ms);
				assert_int_equal(flag, CG_TS_CORRECTED);
				/* Corrected once: there is no flag left to correct. */
				free(stored);
				stored = got;
				got = NULL;
				assert_int_equal(cg_encode_retime(stored, len, 5, &got, &len),
				                 CG_EINVAL);
				assert_null(got);
				free(stored);
				free(want);
			}
		}
	}
	/* A synced native reading with a string value "clock": "unsynced". */
	make_parking_bay(&r);
	assert_int_equal(cg_reading_add_string(&r, "clock", "unsynced"), CG_OK);
	{
		char *stored = encode_ok(CG_FORMAT_NATIVE, &ctx_loc, &r, 3), *got = NULL;
		size_t len;
		int64_t ts;
		cg_ts_clock_t flag;

		assert_non_null(strstr(stored, "\"clock\":\"unsynced\""));
		assert_int_equal(cg_encode_retime(stored, strlen(stored), 5, &got, &len),
		                 CG_EINVAL);
		assert_int_equal(cg_encode_payload_ts(stored, strlen(stored), &ts, &flag), CG_OK);
		assert_int_equal(flag, CG_TS_SYNCED);
		free(stored);
	}
}

/* JSON strings are sized before they are written: escapes of every width, an
 * empty string, and appends after them land exactly. */
static void test_json_string(void **state)
{
	cg_buf_t b = {0};

	cg_buf_json_string(&b, "");
	cg_buf_json_string(&b, "\x01\x1f\"\\\x7f/\xc3\xbc");
	cg_buf_append(&b, "!", 1);
	assert_false(cg_buf_failed(&b));
	assert_string_equal(b.data, "\"\"\"\\u0001\\u001f\\\"\\\\\x7f/\xc3\xbc\"!");
	assert_int_equal(b.len, strlen(b.data));
	cg_buf_free(&b);
}

static void test_format_names(void **state)
{
	assert_string_equal(cg_format_name(CG_FORMAT_NATIVE), "native");
	assert_string_equal(cg_format_name(CG_FORMAT_NGSI_LD), "ngsi-ld");
	assert_string_equal(cg_format_name(CG_FORMAT_SENML), "senml");
	assert_int_equal(cg_format_from_name("ngsi-ld"), CG_FORMAT_NGSI_LD);
	assert_int_equal(cg_format_from_name("senml"), CG_FORMAT_SENML);
	assert_int_equal(cg_format_from_name("xml"), -1);
}

/* The MQTT 5 content type of what each encoder makes, for every kind, told
 * by the first bytes; status and health are plain JSON. */
static void test_content_types(void **state)
{
	static const char *const want[] = {"application/json", "application/ld+json",
	                                   "application/senml+json"};
	void (*makers[])(cg_reading_t *) = {make_air_quality, make_parking_bay, make_parking_lot,
	                                    make_traffic, make_weather};
	const char status[] = "{\"gateway\":\"gw-1\",\"state\":\"online\"}";

	for (size_t m = 0; m < sizeof(makers) / sizeof(makers[0]); m++) {
		for (int f = CG_FORMAT_NATIVE; f <= CG_FORMAT_SENML; f++) {
			cg_reading_t r;
			char *out;

			makers[m](&r);
			out = encode_ok((cg_format_t)f, &ctx_loc, &r, 7);
			assert_string_equal(cg_encode_content_type(out, strlen(out)), want[f]);
			free(out);
		}
	}
	assert_string_equal(cg_encode_content_type(status, strlen(status)), "application/json");
	assert_string_equal(cg_encode_content_type("", 0), "application/json");
	/* An NGSI-LD prefix cut short is not taken for one. */
	assert_string_equal(cg_encode_content_type("{\"id\":\"urn:ngsi", 14), "application/json");
}

static void test_topics(void **state)
{
	char buf[64];

	assert_int_equal(cg_topic_reading(buf, sizeof(buf), "city/gangneung", "gw-gn-0001",
	                                  "parking", "lot-north"),
	                 CG_OK);
	assert_string_equal(buf, "city/gangneung/gw-gn-0001/parking/lot-north");
	assert_int_equal(
	    cg_topic_gateway(buf, sizeof(buf), "city/gangneung", "gw-gn-0001", "status"), CG_OK);
	assert_string_equal(buf, "city/gangneung/gw-gn-0001/status");
	assert_int_equal(cg_topic_gateway(buf, 10, "city/gangneung", "gw-gn-0001", "health"),
	                 CG_ERANGE);
	/* "a/b/c/d" and its NUL take 8 bytes exactly: 7 is one short. */
	assert_int_equal(cg_topic_reading(buf, 8, "a", "b", "c", "d"), CG_OK);
	assert_string_equal(buf, "a/b/c/d");
	assert_int_equal(cg_topic_reading(buf, 7, "a", "b", "c", "d"), CG_ERANGE);
	assert_int_equal(cg_topic_reading(buf, 0, "", "", "", ""), CG_ERANGE);
	assert_int_equal(cg_topic_reading(buf, 4, "", "", "", ""), CG_OK);
	assert_string_equal(buf, "///");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_air_quality),
	    cmocka_unit_test(test_parking_bay),
	    cmocka_unit_test(test_parking_lot),
	    cmocka_unit_test(test_traffic),
	    cmocka_unit_test(test_weather),
	    cmocka_unit_test(test_lanes_have_own_identity),
	    cmocka_unit_test(test_ngsi_required_attributes),
	    cmocka_unit_test(test_ngsi_config_attributes),
	    cmocka_unit_test(test_ngsi_no_interval),
	    cmocka_unit_test(test_ngsi_fractions),
	    cmocka_unit_test(test_seq_absent),
	    cmocka_unit_test(test_seq_values),
	    cmocka_unit_test(test_odd_ids),
	    cmocka_unit_test(test_non_finite),
	    cmocka_unit_test(test_exact_integers),
	    cmocka_unit_test(test_odd_intervals),
	    cmocka_unit_test(test_senml_no_values),
	    cmocka_unit_test(test_reserved_names),
	    cmocka_unit_test(test_unknown_kind),
	    cmocka_unit_test(test_unit_codes),
	    cmocka_unit_test(test_senml_units),
	    cmocka_unit_test(test_numbers_as_printf),
	    cmocka_unit_test(test_short_decimals_as_printf),
	    cmocka_unit_test(test_times_as_rfc3339),
	    cmocka_unit_test(test_times_before_1970),
	    cmocka_unit_test(test_clock_flag),
	    cmocka_unit_test(test_retime),
	    cmocka_unit_test(test_json_string),
	    cmocka_unit_test(test_format_names),
	    cmocka_unit_test(test_content_types),
	    cmocka_unit_test(test_topics),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
