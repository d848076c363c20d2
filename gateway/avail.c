/* Sensor availability (gateway/avail.h): the rules, the table and its publishing. */
#include "gateway/avail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "base/reading.h"
#include "uplink/mqtt_text.h"

typedef struct avail_sensor {
	char id[CG_ID_MAX];
	char *topic;         /* its own copy: most topics are far shorter than CG_TOPIC_SIZE */
	int format;          /* the cg_format_t its readings are published in */
	int64_t deadline_ms; /* cg_avail_deadline_s */
	cg_avail_state_t state;
	char *reason;       /* from malloc, e.g. "answering"; NULL: none */
	int64_t since_ms;   /* epoch ms of the last change of state */
	int64_t last_ts_ms; /* ts of the last reading of quality ok; 0: none */
	int64_t heard_ms;   /* monotonic: the last answer, or when the watch began */
	int last_error;     /* of the last failed poll since the last answer; 0: none */
	bool due;           /* to be published */
} avail_sensor_t;

struct cg_avail {
	avail_sensor_t *s;
	size_t n;
	char (*clears)[CG_TOPIC_SIZE]; /* topics of removed sensors, to be emptied */
	size_t n_clears;
};

double cg_avail_deadline_s(const cg_config_t *cfg, const cg_sensor_config_t *sc)
{
	return 3.0 * sc->interval_s + cfg->buses[sc->bus_index].line.timeout_ms / 1000.0;
}

static avail_sensor_t *find(const cg_avail_t *a, const char *id)
{
	for (size_t i = 0; a && i < a->n; i++)
		if (strcmp(a->s[i].id, id) == 0)
			return &a->s[i];
	return NULL;
}

static bool is_sensor_topic(const cg_avail_t *a, const char *topic)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->s[i].topic, topic) == 0)
			return true;
	return false;
}

/* Adds topic to the clears unless a sensor of the new table publishes there. */
static void add_clear(cg_avail_t *a, const char *topic)
{
	if (is_sensor_topic(a, topic))
		return;
	snprintf(a->clears[a->n_clears++], CG_TOPIC_SIZE, "%s", topic);
}

int cg_avail_new(const cg_config_t *cfg, const cg_avail_t *old, int64_t now_mono_ms,
                 cg_avail_t **out)
{
	size_t max_clears = old ? old->n + old->n_clears : 0;
	cg_avail_t *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return CG_ENOMEM;
	a->s = calloc(cfg->n_sensors ? cfg->n_sensors : 1, sizeof(*a->s));
	a->clears = calloc(max_clears ? max_clears : 1, sizeof(*a->clears));
	if (!a->s || !a->clears) {
		cg_avail_free(a);
		return CG_ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_sensors; i++) {
		const cg_sensor_config_t *sc = &cfg->sensors[i];
		avail_sensor_t *s = &a->s[a->n++];
		const avail_sensor_t *was = find(old, sc->id);
		int format = sc->format >= 0 ? sc->format : (int)cfg->mqtt.format;
		char topic[CG_TOPIC_SIZE];

		if (cg_topic_sensor_state(topic, sizeof(topic), cfg->mqtt.topic_prefix,
		                          cfg->gateway_id, sc->id) < 0) {
			cg_avail_free(a);
			return CG_ERANGE;
		}
		if (was) {
			*s = *was;
			s->reason = was->reason ? strdup(was->reason) : NULL;
			/* A topic that moved (a new prefix or gateway id) or a new format is
			 * published anew. */
			s->due = s->due || strcmp(topic, was->topic) != 0 || format != was->format;
		} else {
			snprintf(s->id, sizeof(s->id), "%s", sc->id);
			s->heard_ms = now_mono_ms;
		}
		s->topic = strdup(topic);
		if (!s->topic) {
			cg_avail_free(a);
			return CG_ENOMEM;
		}
		s->format = format;
		s->deadline_ms = (int64_t)(cg_avail_deadline_s(cfg, sc) * 1000.0 + 0.5);
	}
	for (size_t i = 0; old && i < old->n_clears; i++)
		add_clear(a, old->clears[i]);
	for (size_t i = 0; old && i < old->n; i++)
		add_clear(a, old->s[i].topic);
	*out = a;
	return CG_OK;
}

/* Moves s to state with reason, stamped now_wall_ms, and makes it due; a sensor
 * already in that state with that reason is left alone (no new message). */
static void set_state(avail_sensor_t *s, cg_avail_state_t state, const char *reason,
                      int64_t now_wall_ms)
{
	if (s->state == state && strcmp(s->reason ? s->reason : "", reason) == 0)
		return;
	if (state == CG_AVAIL_OFFLINE || s->state == CG_AVAIL_OFFLINE)
		cg_log(state == CG_AVAIL_OFFLINE ? CG_LOG_WARNING : CG_LOG_INFO,
		       "sensor %s: %s (%s)", s->id, state == CG_AVAIL_OFFLINE ? "offline" : "back",
		       reason);
	s->state = state;
	free(s->reason);
	s->reason = reason[0] ? strdup(reason) : NULL;
	s->since_ms = now_wall_ms;
	s->due = true;
}

void cg_avail_outcome(cg_avail_t *a, const cg_poll_outcome_t *o, int64_t now_mono_ms,
                      int64_t now_wall_ms)
{
	avail_sensor_t *s = find(a, o->sensor);
	char reason[64];

	if (!s)
		return;
	if (!o->answered) {
		s->last_error = o->error;
		return;
	}
	s->heard_ms = now_mono_ms;
	s->last_error = 0;
	if (o->quality < 0) {
		/* Answered with nothing to report yet: alive, and a degraded sensor's
		 * quality is not known to be better. */
		if (s->state != CG_AVAIL_DEGRADED)
			set_state(s, CG_AVAIL_ONLINE, "answering", now_wall_ms);
		return;
	}
	if (o->quality == CG_QUALITY_OK) {
		s->last_ts_ms = o->ts_ms;
		set_state(s, CG_AVAIL_ONLINE, "answering", now_wall_ms);
		return;
	}
	snprintf(reason, sizeof(reason), "quality %s",
	         cg_quality_name((cg_quality_t)o->quality)
	             ? cg_quality_name((cg_quality_t)o->quality)
	             : "unknown");
	set_state(s, CG_AVAIL_DEGRADED, reason, now_wall_ms);
}

void cg_avail_tick(cg_avail_t *a, int64_t now_mono_ms, int64_t now_wall_ms)
{
	for (size_t i = 0; i < a->n; i++) {
		avail_sensor_t *s = &a->s[i];
		char reason[192];

		if (s->state == CG_AVAIL_OFFLINE || now_mono_ms - s->heard_ms <= s->deadline_ms)
			continue;
		/* A stuck bus finishes no poll at all: say so rather than name an error. */
		if (s->last_error)
			snprintf(reason, sizeof(reason),
			         "no answer for 3 x interval + timeout (%.1f s); last poll: %s",
			         (double)s->deadline_ms / 1000.0, cg_strerror(s->last_error));
		else
			snprintf(reason, sizeof(reason),
			         "no answer for 3 x interval + timeout (%.1f s); no poll finished",
			         (double)s->deadline_ms / 1000.0);
		set_state(s, CG_AVAIL_OFFLINE, reason, now_wall_ms);
	}
}

void cg_avail_resend_all(cg_avail_t *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->s[i].state != CG_AVAIL_UNKNOWN)
			a->s[i].due = true;
}

static const char *state_name(cg_avail_state_t st)
{
	switch (st) {
	case CG_AVAIL_ONLINE: return "online";
	case CG_AVAIL_DEGRADED: return "degraded";
	case CG_AVAIL_OFFLINE: return "offline";
	default: return NULL;
	}
}

static void fill_msg(const avail_sensor_t *s, cg_state_msg_t *msg)
{
	msg->sensor = s->id;
	msg->state = state_name(s->state);
	msg->reason = s->reason ? s->reason : "";
	msg->since_ms = s->since_ms;
	msg->last_ts_ms = s->last_ts_ms;
}

/* Hands one retained QoS 1 message to the publisher; false when it did not take it
 * now (it stays due). One it can never take (too large for the broker, refused by
 * Paho) is dropped with a log line rather than retried for ever. */
static bool send_retained(cg_publisher_t *pub, const char *topic, const char *payload, size_t len)
{
	int rc = cg_publisher_send(pub, -1, topic, payload, len, 1, true);

	if (rc == CG_ESTATE || rc == CG_EAGAIN)
		return false;
	if (rc < 0)
		cg_log(CG_LOG_WARNING, "mqtt: sensor state on %s not sent: %s", topic,
		       cg_strerror(rc));
	return true;
}

void cg_avail_publish(cg_avail_t *a, cg_publisher_t *pub, const cg_encode_ctx_t *ectx)
{
	size_t kept = 0;

	for (size_t i = 0; i < a->n_clears; i++) {
		/* An empty retained message removes the retained one (MQTT 3.3.1.3). */
		if (send_retained(pub, a->clears[i], "", 0))
			continue;
		memmove(a->clears[kept++], a->clears[i], CG_TOPIC_SIZE);
	}
	a->n_clears = kept;
	for (size_t i = 0; i < a->n; i++) {
		avail_sensor_t *s = &a->s[i];
		cg_state_msg_t msg;
		char *payload;
		size_t len;

		if (!s->due || s->state == CG_AVAIL_UNKNOWN)
			continue;
		fill_msg(s, &msg);
		if (cg_encode_state((cg_format_t)s->format, ectx, &msg, &payload, &len) < 0)
			return;
		s->due = !send_retained(pub, s->topic, payload, len);
		free(payload);
		if (s->due)
			return;
	}
}

cg_avail_state_t cg_avail_get(const cg_avail_t *a, const char *sensor, cg_state_msg_t *msg)
{
	const avail_sensor_t *s = find(a, sensor);

	if (!s || s->state == CG_AVAIL_UNKNOWN)
		return CG_AVAIL_UNKNOWN;
	fill_msg(s, msg);
	return s->state;
}

size_t cg_avail_due(const cg_avail_t *a)
{
	size_t n = a->n_clears;

	for (size_t i = 0; i < a->n; i++)
		n += a->s[i].due && a->s[i].state != CG_AVAIL_UNKNOWN;
	return n;
}

void cg_avail_free(cg_avail_t *a)
{
	if (!a)
		return;
	for (size_t i = 0; a->s && i < a->n; i++) {
		free(a->s[i].topic);
		free(a->s[i].reason);
	}
	free(a->s);
	free(a->clears);
	free(a);
}
