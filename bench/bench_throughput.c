/* Durable throughput: readings from cg_gateway_submit to PUBACK, against a plain Paho QoS 1 loop.
 */
#include <MQTTAsync.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "bench_common.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "store/outbox.h"
#include "uplink/encode.h"
#include "uplink/publisher.h"

/* A run that makes no progress for this long has failed (a broker gone, a bug). */
#define STALL_S 30.0
/* A loopback port nothing listens on (discard), for the one bus a config needs. */
#define CLOSED_PORT 9

/* ---- The limit: a plain Paho MQTTAsync QoS 1 publish loop with a window ---- */

typedef struct limit_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inflight;
	long acked;
	long failed;
	long mark_lo, mark_hi;  /* the steady part: from this many acknowledged... */
	double t_lo, t_hi;      /* ...to that many, and when each was reached */
	int connect_rc; /* 0 while connecting, 1 connected, -1 failed */
} limit_state_t;

static void limit_connected(void *ctx, MQTTAsync_successData *resp)
{
	limit_state_t *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->connect_rc = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void limit_connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	limit_state_t *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->connect_rc = -1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* One PUBACK (or failure) frees one place in the window. */
static void limit_settle(limit_state_t *s, bool ok)
{
	pthread_mutex_lock(&s->lock);
	s->inflight--;
	if (ok)
		s->acked++;
	else
		s->failed++;
	if (s->acked == s->mark_lo)
		s->t_lo = bench_now_s();
	if (s->acked == s->mark_hi)
		s->t_hi = bench_now_s();
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void limit_sent(void *ctx, MQTTAsync_successData *resp)
{
	limit_settle(ctx, true);
}

static void limit_send_failed(void *ctx, MQTTAsync_failureData *resp)
{
	limit_settle(ctx, false);
}

static int limit_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

/* The steady part of a run: from the 10 % mark to the 90 % mark of n.
 * Connecting, the first commit and the last batch of deletes happen once
 * per run, not per reading; leaving them out of both sides compares rates. */
static long mark_lo(long n)
{
	return n / 10;
}

static long mark_hi(long n)
{
	return n - n / 10;
}

/*
 * Publishes n copies of the payload the gateway would make, QoS 1, keeping
 * at most window messages unacknowledged, as fast as PUBACKs come back: the
 * most any publisher with this window can get from this broker. Returns 0,
 * the rate over the whole run and over its steady part, or -1.
 */
static int run_limit(const char *uri, long n, int window, bool batch, double *rate,
                     double *steady, size_t *payload_len)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	limit_state_t s = {.connect_rc = 0, .mark_lo = mark_lo(n), .mark_hi = mark_hi(n)};
	cg_encode_ctx_t ectx = {.gateway_id = BENCH_GATEWAY_ID};
	MQTTAsync client;
	cg_reading_t r;
	char topic[256], *payload = NULL;
	size_t len = 0;
	double t0, t1;
	int rc = -1;

	bench_reading(&r);
	cg_topic_reading(topic, sizeof(topic), BENCH_PREFIX, BENCH_GATEWAY_ID,
	                 cg_kind_name(r.kind), r.sensor);
	/* The payload of a mid-run reading, seq of six digits like the gateway's. */
	if (cg_encode(CG_FORMAT_NATIVE, &ectx, &r, 123456, &payload, &len) < 0)
		return -1;
	*payload_len = len;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	/* The same Paho set-up as the gateway's (its trace at errors only):
	 * the limit is the most any Paho client gets from this broker. */
	cg_publisher_init_paho();
	co.MQTTVersion = MQTTVERSION_3_1_1;
	/* Paho refuses sends beyond 100 queued ones unless told otherwise. */
	co.maxBufferedMessages = window;
	if (MQTTAsync_createWithOptions(&client, uri, "bench-limit", MQTTCLIENT_PERSISTENCE_NONE,
	                                NULL, &co) != MQTTASYNC_SUCCESS)
		goto free_payload;
	MQTTAsync_setCallbacks(client, &s, NULL, limit_message, NULL);
	c.cleansession = 1;
	c.keepAliveInterval = 30;
	c.onSuccess = limit_connected;
	c.onFailure = limit_connect_failed;
	c.context = &s;
	if (MQTTAsync_connect(client, &c) != MQTTASYNC_SUCCESS)
		goto destroy;
	pthread_mutex_lock(&s.lock);
	while (s.connect_rc == 0)
		pthread_cond_wait(&s.cond, &s.lock);
	pthread_mutex_unlock(&s.lock);
	if (s.connect_rc < 0) {
		cg_log(CG_LOG_ERR, "bench: cannot connect to %s", uri);
		goto destroy;
	}
	/* The same set-up for Paho's send thread as the gateway's, when asked
	 * for: the plain loop with what citygate adds to Paho. */
	if (batch && cg_publisher_batch_sender() <= 0) {
		cg_log(CG_LOG_ERR, "bench: no Paho send thread to set as SCHED_BATCH");
		goto disconnect;
	}

	t0 = bench_now_s();
	for (long sent = 0; sent < n; sent++) {
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

		pthread_mutex_lock(&s.lock);
		while (s.inflight >= window)
			pthread_cond_wait(&s.cond, &s.lock);
		s.inflight++;
		pthread_mutex_unlock(&s.lock);
		ro.onSuccess = limit_sent;
		ro.onFailure = limit_send_failed;
		ro.context = &s;
		if (MQTTAsync_send(client, topic, (int)len, payload, 1, 0, &ro) !=
		    MQTTASYNC_SUCCESS) {
			cg_log(CG_LOG_ERR, "bench: Paho refused a send");
			goto disconnect;
		}
	}
	pthread_mutex_lock(&s.lock);
	while (s.acked + s.failed < n)
		pthread_cond_wait(&s.cond, &s.lock);
	pthread_mutex_unlock(&s.lock);
	t1 = bench_now_s();
	*rate = (double)s.acked / (t1 - t0);
	*steady = (double)(s.mark_hi - s.mark_lo) / (s.t_hi - s.t_lo);
	rc = s.failed ? -1 : 0;

disconnect:
	d.timeout = 1000;
	MQTTAsync_disconnect(client, &d);
	bench_sleep_ms(50);
destroy:
	MQTTAsync_destroy(&client);
free_payload:
	free(payload);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return rc;
}

/* ---- The gateway: readings submitted by producer threads, delivered through the outbox ---- */

typedef struct producer {
	pthread_t thread;
	cg_gateway_t *g;
	long quota;  /* readings this producer submits */
	double rate; /* its share of the offered rate, readings/s */
	double t0;   /* common start, monotonic seconds */
} producer_t;

/* Submits the producer's quota at its rate, in small bursts once a
 * millisecond, so that the offered load is steady and the gateway's queue
 * (bounded) never overflows as an unpaced burst would make it. */
static void *produce(void *arg)
{
	producer_t *p = arg;
	cg_reading_t r;
	long done = 0;

	bench_reading(&r);
	while (done < p->quota) {
		long target = (long)((bench_now_s() - p->t0) * p->rate) + 1;

		if (target > p->quota)
			target = p->quota;
		for (; done < target; done++) {
			r.ts_ms = cg_now_ms();
			cg_gateway_submit(p->g, &r, -1);
		}
		bench_sleep_ms(1);
	}
	return NULL;
}

typedef struct runner {
	pthread_t thread;
	cg_gateway_t *g;
	cg_signals_t sig;
	int rc;
} runner_t;

static void *run_gateway_thread(void *arg)
{
	runner_t *rn = arg;

	rn->rc = cg_gateway_run(rn->g, &rn->sig);
	return NULL;
}

/* The watcher's query: the outbox's next seq, and the first_seq (NULL when empty) and
 * gone bits of its first row, which holds the oldest reading. Each a seek by primary
 * key, so it costs the same with a million readings as with none (a join here cost
 * the process three times as much as these three lookups, callgrind). */
static const char watch_sql[] = "SELECT (SELECT value FROM meta WHERE key = 'next_seq'),"
                                " (SELECT first_seq FROM batches ORDER BY first_seq LIMIT 1),"
                                " (SELECT gone FROM batches ORDER BY first_seq LIMIT 1)";

/* Runs the watcher's query, prepared once so that watching every 5 ms costs the
 * machine little beside the gateway it measures. Returns 0 or -1. */
static int watch_outbox(sqlite3_stmt *st, int64_t *next_seq, int64_t *oldest_seq, bool *empty)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*next_seq = sqlite3_column_int64(st, 0);
		*empty = sqlite3_column_type(st, 1) == SQLITE_NULL;
		/* The outbox's first row holds the oldest reading: its first one not gone. */
		*oldest_seq = sqlite3_column_int64(st, 1) +
		              __builtin_ctzll(~(uint64_t)sqlite3_column_int64(st, 2) | 1ULL << 63);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/*
 * Runs a gateway from a config (one bus to a closed port, so it polls
 * nothing) and feeds it n readings from producers at the offered rate. The
 * time runs from the first submission until the outbox is empty with every
 * reading stored: each was committed, published with QoS 1, acknowledged
 * and deleted. Returns 0, the rate over the whole run and over its steady
 * part (readings delivered, that is deleted after their PUBACK, from the
 * 10 % to the 90 % mark); *stored says how many readings made it into the
 * store (fewer than n only if the gateway dropped some).
 */
static int run_gateway(const char *uri, long n, int window, const char *dir, double offered,
                       int n_producers, double *rate, double *steady, long *stored)
{
	/* store.batch_ms, the config's default unless BENCH_BATCH_MS says otherwise. */
	const char *batch_env = getenv("BENCH_BATCH_MS");
	int batch_ms = batch_env ? atoi(batch_env) : 100;
	char path[PATH_MAX], db_path[PATH_MAX + 16], text[PATH_MAX + 8192];
	cg_diag_t diag = {0};
	cg_config_t *cfg = NULL;
	producer_t prod[16];
	runner_t rn = {0};
	sqlite3 *db = NULL;
	sqlite3_stmt *watch = NULL;
	int64_t next_seq = 1, oldest = 0, last_seq = 0, last_oldest = 0;
	bool empty = false;
	double t0, t_end, last_progress, t_lo = 0, t_hi = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/bench-gateway.json", dir);
	snprintf(db_path, sizeof(db_path), "%s/outbox.db", dir);
	snprintf(text, sizeof(text),
	         "{\"gateway\": {\"id\": \"%s\", \"health_interval_s\": 3600},"
	         " \"mqtt\": {\"uri\": \"%s\", \"topic_prefix\": \"%s\", \"inflight\": %d,"
	         "  \"reconnect_min_s\": 0.1, \"reconnect_max_s\": 0.5},"
	         " \"store\": {\"path\": \"%s\", \"sync\": \"normal\", \"batch_ms\": %d},"
	         " \"buses\": [{\"id\": \"lan\", \"type\": \"modbus-tcp\", \"host\": \"127.0.0.1\","
	         "  \"port\": %d}],"
	         " \"sensors\": [{\"id\": \"%s\", \"bus\": \"lan\", \"driver\": \"modbus\","
	         "  \"profile\": \"aqt530\", \"unit_id\": 1, \"interval_s\": 3600}]}",
	         BENCH_GATEWAY_ID, uri, BENCH_PREFIX, window, db_path, batch_ms, CLOSED_PORT,
	         BENCH_SENSOR_ID);
	rc = cg_config_parse(text, strlen(text), path, &cfg, &diag);
	for (size_t i = 0; i < diag.n; i++)
		cg_log(CG_LOG_ERR, "%s", diag.lines[i]);
	cg_diag_free(&diag);
	if (rc < 0)
		return -1;
	if (cg_gateway_new(cfg, &rn.g) < 0)
		return -1;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		cg_log(CG_LOG_ERR, "bench: cannot open %s", db_path);
		rc = -1;
		goto free_gateway;
	}
	sqlite3_busy_timeout(db, 1000);
	if (sqlite3_prepare_v2(db, watch_sql, -1, &watch, NULL) != SQLITE_OK ||
	    pthread_create(&rn.thread, NULL, run_gateway_thread, &rn) != 0) {
		rc = -1;
		goto close_db;
	}
	/* Let it connect: a loopback CONNECT takes a few milliseconds. */
	bench_sleep_ms(500);

	if (n_producers < 1)
		n_producers = 1;
	if (n_producers > 16)
		n_producers = 16;
	t0 = bench_now_s();
	for (int i = 0; i < n_producers; i++) {
		prod[i] = (producer_t){.g = rn.g,
		                       .quota = n / n_producers + (i < n % n_producers),
		                       .rate = offered / n_producers,
		                       .t0 = t0};
		pthread_create(&prod[i].thread, NULL, produce, &prod[i]);
	}
	last_progress = t0;
	rc = 0;
	for (;;) {
		double now;

		bench_sleep_ms(5);
		now = bench_now_s();
		if (watch_outbox(watch, &next_seq, &oldest, &empty) == 0) {
			/* Progress is a reading stored or one delivered. */
			if (next_seq != last_seq || oldest != last_oldest)
				last_progress = now;
			/* Rows are deleted oldest first (acknowledgements come in
			 * order), so the rows before the oldest have been delivered. */
			int64_t delivered = empty ? next_seq - 1 : oldest - 1;
			if (!t_lo && delivered >= mark_lo(n))
				t_lo = now;
			if (!t_hi && delivered >= mark_hi(n))
				t_hi = now;
			last_seq = next_seq;
			last_oldest = oldest;
			if (next_seq - 1 >= n && empty)
				break;
		}
		if (now - last_progress > STALL_S) {
			cg_log(CG_LOG_ERR, "bench: no progress for %.0f s (next seq %lld)", STALL_S,
			       (long long)next_seq);
			rc = -1;
			break;
		}
		/* Readings dropped by the gateway never arrive: stop when the
		 * producers are done and the store is empty and idle. */
		if (empty && now - t0 > (double)n / offered + 2.0 && now - last_progress > 1.0)
			break;
	}
	t_end = bench_now_s();
	for (int i = 0; i < n_producers; i++)
		pthread_join(prod[i].thread, NULL);
	*stored = (long)(next_seq - 1);
	*rate = (double)*stored / (t_end - t0);
	*steady = t_hi > t_lo ? (double)(mark_hi(n) - mark_lo(n)) / (t_hi - t_lo) : 0;
	rn.sig.stop = 1;
	pthread_join(rn.thread, NULL);
close_db:
	sqlite3_finalize(watch);
	sqlite3_close(db);
free_gateway:
	cg_gateway_free(rn.g);
	return rc;
}

static void usage(void)
{
	cg_err("usage: bench_throughput limit URI N WINDOW [batch]\n"
	       "       bench_throughput gateway URI N WINDOW DIR OFFERED_RATE [PRODUCERS]\n"
	       "prints one line of key=value results");
}

int main(int argc, char **argv)
{
	double rate = 0, steady = 0;
	long n;
	int window;

	cg_log_set_level(CG_LOG_WARNING);
	if (argc < 5) {
		usage();
		return 2;
	}
	n = atol(argv[3]);
	window = atoi(argv[4]);
	if (n <= 0 || window <= 0) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "limit") == 0) {
		size_t len = 0;
		bool batch = argc > 5 && strcmp(argv[5], "batch") == 0;

		if (argc > 5 && !batch) {
			usage();
			return 2;
		}
		if (run_limit(argv[2], n, window, batch, &rate, &steady, &len) < 0)
			return 1;
		bench_result("mode=limit n=%ld window=%d payload=%zu rate=%.1f steady=%.1f", n,
		             window, len, rate, steady);
		return 0;
	}
	if (strcmp(argv[1], "gateway") == 0 && argc >= 7) {
		long stored = 0;
		int producers = argc > 7 ? atoi(argv[7]) : 2;

		if (run_gateway(argv[2], n, window, argv[5], atof(argv[6]), producers, &rate,
		                &steady, &stored) < 0)
			return 1;
		bench_result("mode=gateway n=%ld window=%d stored=%ld lost=%ld rate=%.1f steady=%.1f",
		             n, window, stored, n - stored, rate, steady);
		return 0;
	}
	usage();
	return 2;
}
