/* Unit tests of sensor availability: the rules that make a sensor online, degraded or
 * offline, and what a reload keeps and clears. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "gateway/avail.h"

#define WALL 1795606800000LL /* any epoch ms: the tests only compare */

static char *ids[] = {"aq-1", "aq-2", "aq-3"};

typedef struct fixture {
	cg_bus_config_t bus;
	cg_sensor_config_t sensors[3];
	cg_config_t cfg;
} fixture_t;

/* A config of n sensors (ids[0..n-1]), interval 1 s, on one bus with a 200 ms timeout. */
static void make(fixture_t *f, size_t n, const char *prefix)
{
	memset(f, 0, sizeof(*f));
	f->bus.id = "lan";
	f->bus.line.timeout_ms = 200;
	for (size_t i = 0; i < n; i++) {
		f->sensors[i].id = ids[i];
		f->sensors[i].interval_s = 1;
		f->sensors[i].format = -1;
	}
	f->cfg.gateway_id = "gw-1";
	f->cfg.mqtt.topic_prefix = (char *)prefix;
	f->cfg.mqtt.format = CG_FORMAT_NATIVE;
	f->cfg.buses = &f->bus;
	f->cfg.n_buses = 1;
	f->cfg.sensors = f->sensors;
	f->cfg.n_sensors = n;
}

static cg_poll_outcome_t answered(const char *id, int quality, int64_t ts)
{
	cg_poll_outcome_t o = {.answered = true, .quality = quality, .ts_ms = ts};

	snprintf(o.sensor, sizeof(o.sensor), "%s", id);
	return o;
}

static cg_poll_outcome_t failed(const char *id, int error)
{
	cg_poll_outcome_t o = {.answered = false, .quality = -1, .error = error};

	snprintf(o.sensor, sizeof(o.sensor), "%s", id);
	return o;
}

static cg_avail_state_t state(const cg_avail_t *a, const char *id, cg_state_msg_t *m)
{
	memset(m, 0, sizeof(*m));
	return cg_avail_get(a, id, m);
}

/* Offline exactly past 3 x interval + timeout without an answer, whether no poll ended
 * (a stuck bus) or polls failed; failures before the deadline change nothing. */
static void test_offline_deadline(void **unused)
{
	fixture_t f;
	cg_avail_t *a;
	cg_state_msg_t m;
	cg_poll_outcome_t o;

	(void)unused;
	make(&f, 2, "city");
	assert_true(cg_avail_deadline_s(&f.cfg, &f.sensors[0]) == 3.2);
	assert_int_equal(cg_avail_new(&f.cfg, NULL, 1000, &a), CG_OK);
	/* Nothing is known before the first poll or the deadline. */
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_UNKNOWN);
	assert_int_equal(cg_avail_due(a), 0);

	o = answered("aq-2", CG_QUALITY_OK, WALL);
	cg_avail_outcome(a, &o, 1500, WALL + 500);
	o = failed("aq-2", CG_ETIMEDOUT);
	cg_avail_outcome(a, &o, 2500, WALL + 1500);
	assert_int_equal(state(a, "aq-2", &m), CG_AVAIL_ONLINE);

	cg_avail_tick(a, 1000 + 3200, WALL + 3200);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_UNKNOWN);
	cg_avail_tick(a, 1000 + 3201, WALL + 3201);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_OFFLINE);
	assert_non_null(strstr(m.reason, "no poll finished"));
	assert_int_equal(m.since_ms, WALL + 3201);
	assert_int_equal(m.last_ts_ms, 0);
	/* aq-2 answered at 1500: its deadline is 4700. */
	assert_int_equal(state(a, "aq-2", &m), CG_AVAIL_ONLINE);
	cg_avail_tick(a, 4701, WALL + 3701);
	assert_int_equal(state(a, "aq-2", &m), CG_AVAIL_OFFLINE);
	assert_non_null(strstr(m.reason, cg_strerror(CG_ETIMEDOUT)));
	assert_int_equal(m.last_ts_ms, WALL);
	/* Another tick is no new state. */
	cg_avail_tick(a, 9000, WALL + 8000);
	assert_int_equal(state(a, "aq-2", &m), CG_AVAIL_OFFLINE);
	assert_int_equal(m.since_ms, WALL + 3701);

	/* Online again at the first good poll. */
	o = answered("aq-2", CG_QUALITY_OK, WALL + 9000);
	cg_avail_outcome(a, &o, 10000, WALL + 9000);
	assert_int_equal(state(a, "aq-2", &m), CG_AVAIL_ONLINE);
	assert_string_equal(m.reason, "answering");
	assert_int_equal(m.last_ts_ms, WALL + 9000);
	assert_int_equal(m.since_ms, WALL + 9000);
	cg_avail_free(a);
}

/* Degraded while the readings' quality is not ok, named in the reason; last_ts is the
 * last ok reading's; an answer without a reading keeps a degraded sensor degraded and
 * makes an offline one online. */
static void test_degraded(void **unused)
{
	fixture_t f;
	cg_avail_t *a;
	cg_state_msg_t m;
	cg_poll_outcome_t o;

	(void)unused;
	make(&f, 1, "city");
	assert_int_equal(cg_avail_new(&f.cfg, NULL, 0, &a), CG_OK);
	o = answered("aq-1", CG_QUALITY_OK, WALL);
	cg_avail_outcome(a, &o, 100, WALL);
	o = answered("aq-1", CG_QUALITY_OUT_OF_RANGE, WALL + 1000);
	cg_avail_outcome(a, &o, 1100, WALL + 1000);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_DEGRADED);
	assert_string_equal(m.reason, "quality out-of-range");
	assert_string_equal(m.state, "degraded");
	assert_int_equal(m.last_ts_ms, WALL);
	o = answered("aq-1", CG_QUALITY_COUNTER_RESET, WALL + 2000);
	cg_avail_outcome(a, &o, 2100, WALL + 2000);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_DEGRADED);
	assert_string_equal(m.reason, "quality counter-reset");
	assert_int_equal(m.since_ms, WALL + 2000);
	o = answered("aq-1", -1, 0);
	cg_avail_outcome(a, &o, 3100, WALL + 3000);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_DEGRADED);
	/* A degraded sensor that answers is not offline. */
	cg_avail_tick(a, 3100 + 3200, WALL + 6200);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_DEGRADED);
	o = answered("aq-1", CG_QUALITY_OK, WALL + 4000);
	cg_avail_outcome(a, &o, 4100, WALL + 4000);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_ONLINE);
	assert_int_equal(m.last_ts_ms, WALL + 4000);

	cg_avail_tick(a, 4100 + 3201, WALL + 7301);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_OFFLINE);
	o = answered("aq-1", -1, 0);
	cg_avail_outcome(a, &o, 8000, WALL + 8000);
	assert_int_equal(state(a, "aq-1", &m), CG_AVAIL_ONLINE);
	cg_avail_free(a);
}

/* A reload keeps the state of the sensors that remain (and their deadline runs from
 * their last answer), clears the topics of those removed, and starts new ones unknown;
 * a new topic prefix clears every old topic and publishes the states anew. */
static void test_reload(void **unused)
{
	fixture_t f, g, h;
	cg_avail_t *a, *b, *c;
	cg_state_msg_t m;
	cg_poll_outcome_t o;

	(void)unused;
	make(&f, 2, "city");
	assert_int_equal(cg_avail_new(&f.cfg, NULL, 0, &a), CG_OK);
	o = answered("aq-1", CG_QUALITY_OK, WALL);
	cg_avail_outcome(a, &o, 100, WALL);
	o = answered("aq-2", CG_QUALITY_WARMING_UP, WALL);
	cg_avail_outcome(a, &o, 100, WALL);
	assert_int_equal(cg_avail_due(a), 2);

	/* aq-2 removed, aq-3 added (ids[0] and ids[2]). */
	make(&g, 3, "city");
	g.sensors[1] = g.sensors[2];
	g.cfg.n_sensors = 2;
	assert_int_equal(cg_avail_new(&g.cfg, a, 2000, &b), CG_OK);
	assert_int_equal(state(b, "aq-1", &m), CG_AVAIL_ONLINE);
	assert_int_equal(m.since_ms, WALL);
	assert_int_equal(state(b, "aq-2", &m), CG_AVAIL_UNKNOWN);
	assert_int_equal(state(b, "aq-3", &m), CG_AVAIL_UNKNOWN);
	/* aq-1's state (still due: never published) and aq-2's clear. */
	assert_int_equal(cg_avail_due(b), 2);
	o = answered("aq-2", CG_QUALITY_OK, WALL);
	cg_avail_outcome(b, &o, 2100, WALL + 2100); /* a late outcome of a removed sensor */
	assert_int_equal(state(b, "aq-2", &m), CG_AVAIL_UNKNOWN);
	/* aq-1 last answered at 100, aq-3 is watched from the reload at 2000. */
	cg_avail_tick(b, 3301, WALL + 3301);
	assert_int_equal(state(b, "aq-1", &m), CG_AVAIL_OFFLINE);
	assert_int_equal(state(b, "aq-3", &m), CG_AVAIL_UNKNOWN);
	cg_avail_tick(b, 5201, WALL + 5201);
	assert_int_equal(state(b, "aq-3", &m), CG_AVAIL_OFFLINE);

	/* A new prefix: both old topics are cleared, both states due on the new ones. */
	make(&h, 3, "town");
	h.sensors[1] = h.sensors[2];
	h.cfg.n_sensors = 2;
	assert_int_equal(cg_avail_new(&h.cfg, b, 6000, &c), CG_OK);
	assert_int_equal(cg_avail_due(c), 1 + 2 + 2);
	assert_int_equal(state(c, "aq-3", &m), CG_AVAIL_OFFLINE);
	cg_avail_resend_all(c);
	assert_int_equal(cg_avail_due(c), 5);
	cg_avail_free(a);
	cg_avail_free(b);
	cg_avail_free(c);
}

/* The payloads: native with last_ts null before a good reading; NGSI-LD a Device. */
static void test_payloads(void **unused)
{
	cg_encode_ctx_t ctx = {.gateway_id = "gw 1"};
	cg_state_msg_t m = {.sensor = "aq:1",
	                    .state = "offline",
	                    .reason = "no \"answer\"",
	                    .since_ms = 1795606800123LL,
	                    .last_ts_ms = 0};
	char *p;
	size_t len;

	(void)unused;
	assert_int_equal(cg_encode_state(CG_FORMAT_SENML, &ctx, &m, &p, &len), CG_OK);
	assert_string_equal(p, "{\"gateway\":\"gw 1\",\"sensor\":\"aq:1\",\"state\":\"offline\","
	                       "\"reason\":\"no \\\"answer\\\"\",\"since\":\"2026-11-25T"
	                       "11:40:00.123Z\",\"last_ts\":null}");
	assert_int_equal(len, strlen(p));
	free(p);
	m.last_ts_ms = 1795606800000LL;
	assert_int_equal(cg_encode_state(CG_FORMAT_NGSI_LD, &ctx, &m, &p, &len), CG_OK);
	assert_non_null(strstr(p,
	                       "{\"id\":\"urn:ngsi-ld:Device:gw%201:aq%3A1\",\"type\":\"Device\","
	                       "\"deviceState\":{\"type\":\"Property\",\"value\":\"offline\","
	                       "\"observedAt\":\"2026-11-25T11:40:00.123Z\"},"
	                       "\"dateLastValueReported\":{\"type\":\"Property\",\"value\":"
	                       "{\"@type\":\"DateTime\",\"@value\":\"2026-11-25T11:40:00.000Z\"}},"
	                       "\"stateReason\":{\"type\":\"Property\","));
	assert_string_equal(cg_encode_content_type(p, len), "application/ld+json");
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_offline_deadline),
	    cmocka_unit_test(test_degraded),
	    cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_payloads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
