/* Bus workers: one thread per bus polls its sensors in turn on their schedules. */
#include "gateway/bus.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "drivers/transport.h"
#include "gateway/lot.h"
#include "gateway/poll.h"

/* This many failed polls in a row are an outage, not noise: a parking bay
 * is then reported with status "unknown", and the fault is logged even if
 * another was logged less than a minute ago. */
#define PERSISTENT_AFTER 3
/* The shortest time between two logged fault streaks of one sensor. */
#define FAULT_LOG_EVERY_MS 60000

typedef struct bus_sensor {
	const cg_sensor_config_t *cfg;
	void *state;             /* the driver's; NULL if open() failed */
	double next_due_ms;      /* monotonic */
	int64_t due_wall_ms;     /* aligned sensors: the wall-clock boundary of the next poll */
	int last_error;          /* of the current failure streak */
	int64_t logged_ms;       /* monotonic time of the last fault logged, 0: never */
	unsigned unlogged;       /* failure streaks since then that were not logged */
	bool streak_logged;      /* the current streak was logged (so its end is too) */
	cg_bay_t bay;            /* whether it is a parking bay (gateway/lot.h) */
	cg_reading_t *last_sent; /* report_on_change: the last reading handed on */
	int64_t last_sent_ms;    /* monotonic */
	cg_sensor_stats_t st;    /* under the bus lock */
} bus_sensor_t;

struct cg_bus {
	const cg_config_t *cfg;
	const cg_bus_config_t *bc;
	cg_driver_env_t env;
	cg_reading_sink_t sink;
	cg_outcome_sink_t outcome;
	void *sink_ctx;
	bus_sensor_t *sensors;
	size_t n_sensors;
	cg_poll_t *poll; /* what the last poll yielded */
	cg_transport_t t;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* stop flag and stats */
	pthread_cond_t cond;
	bool stop;
	bool open;
	uint64_t requests;
	uint64_t noise_bytes, bad_frames;
	uint64_t open_failures;
};

/* Waits until the monotonic time until_ms or a stop request; true if stopping. */
static bool wait_until(cg_bus_t *b, double until_ms)
{
	struct timespec ts;
	bool stop;
	int64_t wait_ms = (int64_t)ceil(until_ms) - cg_mono_ms();

	pthread_mutex_lock(&b->lock);
	if (!b->stop && wait_ms > 0) {
		/* The condition variable runs on CLOCK_MONOTONIC (see start). */
		ts = cg_mono_deadline(wait_ms);
		while (!b->stop && pthread_cond_timedwait(&b->cond, &b->lock, &ts) != ETIMEDOUT)
			;
	}
	stop = b->stop;
	pthread_mutex_unlock(&b->lock);
	return stop;
}

/* Counts one failed poll in the sensor's stats by its kind. */
static void count_error(cg_sensor_stats_t *st, int rc)
{
	switch (rc) {
	case CG_ETIMEDOUT: st->timeouts++; break;
	case CG_ECRC: st->crc_errors++; break;
	case CG_EEXCEPTION: st->exceptions++; break;
	case CG_EFRAME: st->frame_errors++; break;
	default: st->io_errors++; break;
	}
}

/* Schedules an aligned sensor's next poll at the next wall-clock multiple of
 * its interval (a 60 s interval polls at :00), converted to the monotonic
 * clock the worker sleeps on. */
static void schedule_aligned(bus_sensor_t *s, double now_mono)
{
	int64_t interval = (int64_t)(s->cfg->interval_s * 1000.0);
	int64_t wall = cg_now_ms();

	if (interval < 1)
		interval = 1;
	s->due_wall_ms = (wall / interval + 1) * interval;
	s->next_due_ms = now_mono + (double)(s->due_wall_ms - wall);
}

/* The end of the interval an aligned sensor's interval measure is stamped with: the
 * boundary reckoned on the wall clock before the worker slept, or, if the wall clock
 * stepped meanwhile, the poll's due time on the clock as it now reads (advance() then
 * puts the next poll back on the grid of that clock). */
static int64_t due_wall(const bus_sensor_t *s)
{
	int64_t due;

	if (!s->cfg->aligned)
		return s->due_wall_ms;
	due = cg_now_ms() - (cg_mono_ms() - (int64_t)s->next_due_ms);
	return llabs(due - s->due_wall_ms) > 1000 ? due : s->due_wall_ms;
}

/* Moves a sensor's next poll to the next slot of its schedule after now, so
 * a late poll does not shift its phase or cause a burst of catch-up polls. */
static void advance(bus_sensor_t *s, double now)
{
	double interval = s->cfg->interval_s * 1000.0;

	if (s->cfg->aligned) {
		schedule_aligned(s, now);
		return;
	}

	s->next_due_ms += interval;
	if (s->next_due_ms <= now)
		s->next_due_ms += ceil((now - s->next_due_ms) / interval) * interval;
	if (s->next_due_ms <= now)
		s->next_due_ms += interval;
}

/* Hands on the n readings of lanes, what whole was split into, unless
 * report-on-change holds whole back. */
static void hand_on(cg_bus_t *b, bus_sensor_t *s, const cg_reading_t *r, const cg_reading_t *lanes,
                    size_t n, int64_t now_mono)
{
	if (s->last_sent) {
		if (s->last_sent_ms &&
		    now_mono - s->last_sent_ms < s->cfg->max_silence_s * 1000.0 &&
		    !cg_reading_differs(s->last_sent, r, s->cfg->deadband))
			return;
		*s->last_sent = *r;
		s->last_sent_ms = now_mono;
	}
	for (size_t i = 0; i < n; i++)
		b->sink(b->sink_ctx, &lanes[i], s->cfg->format);
}

/* Reports what a poll came to: answered (quality of its reading, -1 when it had none
 * to report yet) or failed with error. */
static void report(cg_bus_t *b, const bus_sensor_t *s, bool answered, int quality, int64_t ts_ms,
                   int error)
{
	cg_poll_outcome_t o = {
	    .answered = answered, .quality = quality, .ts_ms = ts_ms, .error = error};

	if (!b->outcome)
		return;
	snprintf(o.sensor, sizeof(o.sensor), "%s", s->cfg->id);
	b->outcome(b->sink_ctx, &o);
}

/* Records a failed poll: logs the first failure of a streak (and a change of
 * kind), then backs the sensor off: the delay doubles from the sensor's
 * interval up to the bus's backoff_max_s, so a silent sensor costs the bus
 * one timeout per attempt, ever more rarely. */
static void poll_failed(cg_bus_t *b, bus_sensor_t *s, int rc, double now)
{
	double interval = s->cfg->interval_s;
	double backoff;
	uint32_t failing;
	bool persistent;
	cg_reading_t r;
	char cause[256];

	pthread_mutex_lock(&b->lock);
	count_error(&s->st, rc);
	failing = ++s->st.failing;
	backoff = interval * pow(2.0, failing > 20 ? 20 : (double)failing - 1);
	if (backoff > b->bc->backoff_max_s)
		backoff = b->bc->backoff_max_s;
	if (backoff < interval)
		backoff = interval;
	s->st.backoff_s = failing > 1 ? backoff : 0;
	pthread_mutex_unlock(&b->lock);
	/* A flaky line fails a poll now and then: log a new streak at most
	 * once a minute and count the rest into the next line; but a streak
	 * that goes on (a sensor that died) is always logged. */
	persistent = !s->streak_logged && failing == PERSISTENT_AFTER;
	snprintf(cause, sizeof(cause), "%s%s%s", cg_strerror(rc), b->t.why[0] ? ": " : "",
	         b->t.why);
	if (failing == 1 || rc != s->last_error || persistent) {
		if (persistent || !s->logged_ms ||
		    now - (double)s->logged_ms >= FAULT_LOG_EVERY_MS) {
			if (s->unlogged)
				cg_log(
				    CG_LOG_WARNING,
				    "sensor %s on bus %s: %s; retrying with back-off (up to %.0f "
				    "s); %u more short faults since the last report",
				    s->cfg->id, b->bc->id, cause, b->bc->backoff_max_s,
				    s->unlogged);
			else
				cg_log(CG_LOG_WARNING,
				       "sensor %s on bus %s: %s; retrying with back-off (up to "
				       "%.0f s)",
				       s->cfg->id, b->bc->id, cause, b->bc->backoff_max_s);
			s->logged_ms = (int64_t)now;
			s->unlogged = 0;
			s->streak_logged = true;
		} else if (failing == 1) {
			s->unlogged++;
			s->streak_logged = false;
		}
	}
	s->last_error = rc;
	if (failing == PERSISTENT_AFTER && cg_bay_lost(&s->bay, s->cfg->id, cg_now_ms(), &r))
		hand_on(b, s, &r, &r, 1, (int64_t)now);
	report(b, s, false, -1, 0, rc);
	if (failing == 1)
		advance(s, now);
	else
		s->next_due_ms = now + backoff * 1000.0;
}

/* Opens the driver's state of a sensor whose open() failed before, on the
 * sensor's own back-off like a failed poll: a sensor is never given up. */
static int reopen_sensor(cg_bus_t *b, bus_sensor_t *s)
{
	int rc = s->cfg->driver->open(s->cfg->options, &b->env, &s->state);

	if (rc == CG_OK)
		cg_log(CG_LOG_INFO, "sensor %s: driver %s opened it after %u failed attempts",
		       s->cfg->id, s->cfg->driver->name, s->st.failing + 1);
	return rc;
}

/* Polls one sensor and hands its readings on. */
static void poll_sensor(cg_bus_t *b, bus_sensor_t *s)
{
	cg_poll_t *p = b->poll;
	uint64_t before = b->t.requests, noise = b->t.noise_bytes, bad = b->t.bad_frames;
	double now;
	uint32_t failed_polls;
	int rc;

	b->t.why[0] = '\0';
	rc = s->state ? CG_OK : reopen_sensor(b, s);
	if (rc < 0) {
		poll_failed(b, s, rc, (double)cg_mono_ms());
		return;
	}
	rc = cg_poll_sensor(s->cfg, s->state, &b->t, due_wall(s), p);
	now = (double)cg_mono_ms();
	/* The sensor answered; it only has nothing to report yet. */
	if (rc == CG_EAGAIN)
		rc = CG_OK;
	pthread_mutex_lock(&b->lock);
	b->requests += b->t.requests - before;
	b->noise_bytes += b->t.noise_bytes - noise;
	b->bad_frames += b->t.bad_frames - bad;
	s->st.polls++;
	pthread_mutex_unlock(&b->lock);
	if (rc < 0) {
		poll_failed(b, s, rc, now);
		/* An I/O error means the port or connection itself is gone (a USB
		 * adapter unplugged, a TCP peer closed): reopen before the next poll. */
		if (rc == CG_EIO) {
			cg_transport_close(&b->t);
			pthread_mutex_lock(&b->lock);
			b->open = false;
			pthread_mutex_unlock(&b->lock);
		}
		return;
	}
	if (p->n) {
		cg_bay_seen(&s->bay, &p->whole);
		hand_on(b, s, &p->whole, p->lanes, p->n, (int64_t)now);
	}
	/* Also when report_on_change held the reading back: the sensor answered. */
	report(b, s, true, p->n ? (int)p->whole.quality : -1, p->n ? p->whole.ts_ms : 0, 0);
	pthread_mutex_lock(&b->lock);
	s->st.ok++;
	s->st.last_success_ms = p->whole.ts_ms;
	failed_polls = s->st.failing;
	s->st.failing = 0;
	s->st.backoff_s = 0;
	pthread_mutex_unlock(&b->lock);
	if (failed_polls && s->streak_logged)
		cg_log(CG_LOG_INFO,
		       "sensor %s on bus %s: answering again after %u failed polls (%s)",
		       s->cfg->id, b->bc->id, failed_polls, cg_strerror(s->last_error));
	s->last_error = 0;
	advance(s, now);
}

/* Opens the transport, logging the first failure and the recovery only. */
static bool ensure_open(cg_bus_t *b)
{
	int rc;

	if (cg_transport_is_open(&b->t))
		return true;
	rc = cg_transport_open(b->bc->id, &b->bc->line, &b->t);
	pthread_mutex_lock(&b->lock);
	if (rc < 0)
		b->open_failures++;
	b->open = rc == 0;
	pthread_mutex_unlock(&b->lock);
	if (rc < 0) {
		if (b->open_failures == 1)
			cg_log(CG_LOG_ERR, "bus %s: cannot open %s: %s; retrying", b->bc->id,
			       cg_bus_line_name(&b->bc->line), strerror(errno));
		return false;
	}
	if (b->open_failures) {
		cg_log(CG_LOG_INFO, "bus %s: open again after %llu failed attempts", b->bc->id,
		       (unsigned long long)b->open_failures);
		pthread_mutex_lock(&b->lock);
		b->open_failures = 0;
		pthread_mutex_unlock(&b->lock);
	}
	return true;
}

/* The worker: half duplex by construction, since one thread does every
 * request on its bus, one after the other. */
static void *bus_main(void *arg)
{
	cg_bus_t *b = arg;
	double reopen_backoff = 500;

	for (;;) {
		bus_sensor_t *next = NULL;

		if (!ensure_open(b)) {
			if (wait_until(b, (double)cg_mono_ms() + reopen_backoff))
				break;
			reopen_backoff = fmin(reopen_backoff * 2, b->bc->backoff_max_s * 1000.0);
			continue;
		}
		reopen_backoff = 500;
		for (size_t i = 0; i < b->n_sensors; i++)
			if (!next || b->sensors[i].next_due_ms < next->next_due_ms)
				next = &b->sensors[i];
		if (!next) {
			if (wait_until(b, (double)cg_mono_ms() + 3600000.0))
				break;
			continue;
		}
		if (wait_until(b, next->next_due_ms))
			break;
		poll_sensor(b, next);
	}
	cg_transport_close(&b->t);
	return NULL;
}

int cg_bus_start(const cg_config_t *cfg, size_t bus_index, cg_reading_sink_t sink,
                 cg_outcome_sink_t outcome, void *ctx, cg_bus_t **out)
{
	pthread_condattr_t ca;
	cg_bus_t *b;
	double now = (double)cg_mono_ms();
	size_t n_mine = 0;
	int rc;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return CG_ENOMEM;
	b->cfg = cfg;
	b->bc = &cfg->buses[bus_index];
	b->env = cg_config_driver_env(cfg);
	b->sink = sink;
	b->outcome = outcome;
	b->sink_ctx = ctx;
	b->t.fd = -1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* Room for this bus's sensors only: sized for the whole config, ten
	 * buses of 200 sensors held 430 KB for 200 entries. */
	for (size_t i = 0; i < cfg->n_sensors; i++)
		n_mine += cfg->sensors[i].bus_index == bus_index;
	b->sensors = calloc(n_mine ? n_mine : 1, sizeof(*b->sensors));
	b->poll = malloc(sizeof(*b->poll));
	if (!b->sensors || !b->poll) {
		rc = CG_ENOMEM;
		goto free_bus;
	}
	for (size_t i = 0; i < cfg->n_sensors; i++) {
		const cg_sensor_config_t *sc = &cfg->sensors[i];
		bus_sensor_t *s;

		if (sc->bus_index != bus_index)
			continue;
		s = &b->sensors[b->n_sensors];
		s->cfg = sc;
		snprintf(s->st.id, sizeof(s->st.id), "%s", sc->id);
		rc = sc->driver->open(sc->options, &b->env, &s->state);
		if (rc < 0)
			cg_log(CG_LOG_ERR,
			       "sensor %s: driver %s cannot open it: %s; retrying with back-off",
			       sc->id, sc->driver->name, cg_strerror(rc));
		cg_bay_init(&s->bay, cfg, sc->id);
		if (sc->report_on_change && !(s->last_sent = calloc(1, sizeof(*s->last_sent)))) {
			rc = CG_ENOMEM;
			b->n_sensors++;
			goto free_bus;
		}
		/* On a line, spread the first polls so sensors with equal intervals
		 * do not queue up behind each other at every tick. Over Modbus TCP
		 * a request costs a round trip, not the line's time: sensors with
		 * equal intervals are polled back to back, one wake-up of the worker
		 * for all of them, since waking a thread costs more CPU than the
		 * poll it starts (docs/benchmarks.md, section 3); it is the buses
		 * that are spread, so that their bursts do not meet. */
		s->next_due_ms =
		    now + 20.0 * (double)(b->bc->line.type == CG_BUS_MODBUS_TCP ? bus_index
		                                                                 : b->n_sensors);
		if (sc->aligned)
			schedule_aligned(s, now);
		b->n_sensors++;
	}
	rc = pthread_create(&b->thread, NULL, bus_main, b);
	if (rc != 0) {
		rc = CG_ENOMEM;
		goto free_bus;
	}
	b->started = true;
	*out = b;
	return CG_OK;

free_bus:
	cg_bus_stop(b);
	return rc;
}

void cg_bus_request_stop(cg_bus_t *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

int cg_bus_wait(cg_bus_t *b, int64_t timeout_ms)
{
	struct timespec until;

	if (!b || !b->started)
		return CG_OK;
	until = cg_mono_deadline(timeout_ms);
	if (pthread_clockjoin_np(b->thread, NULL, CLOCK_MONOTONIC, &until) != 0)
		return CG_ETIMEDOUT;
	b->started = false;
	return CG_OK;
}

void cg_bus_stop(cg_bus_t *b)
{
	if (!b)
		return;
	cg_bus_request_stop(b);
	if (b->started)
		pthread_join(b->thread, NULL);
	for (size_t i = 0; i < b->n_sensors; i++) {
		b->sensors[i].cfg->driver->close(b->sensors[i].state);
		free(b->sensors[i].last_sent);
	}
	cg_transport_close(&b->t);
	free(b->sensors);
	free(b->poll);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

int cg_bus_stats(cg_bus_t *b, cg_bus_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	st->sensors = calloc(b->n_sensors ? b->n_sensors : 1, sizeof(*st->sensors));
	if (!st->sensors)
		return CG_ENOMEM;
	snprintf(st->id, sizeof(st->id), "%s", b->bc->id);
	pthread_mutex_lock(&b->lock);
	st->open = b->open;
	st->requests = b->requests;
	st->noise_bytes = b->noise_bytes;
	st->bad_frames = b->bad_frames;
	st->open_failures = b->open_failures;
	st->n_sensors = b->n_sensors;
	for (size_t i = 0; i < b->n_sensors; i++)
		st->sensors[i] = b->sensors[i].st;
	pthread_mutex_unlock(&b->lock);
	return CG_OK;
}
