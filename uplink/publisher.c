/* The publisher: Paho MQTTAsync (MQTT 5 or 3.1.1), our own jittered reconnect, a status topic. */
#include "uplink/publisher.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/secret.h"
#include "uplink/backoff.h"
#include "uplink/encode.h"
#include "uplink/paho.h"

/* Each message in flight has a slot, passed to Paho as the callback context,
 * that says which seq it carries. Paho calls back with its own lock held, so
 * we must never hold our lock while calling into Paho: setting the seq before
 * the send (in a slot only we hand out) avoids both the race and the
 * deadlock. */
typedef struct pub_slot {
	struct cg_publisher *p;
	int64_t seq;
	bool used;
	bool v5;             /* the connection it goes on speaks MQTT 5 */
	uint32_t max_packet; /* that connection's Maximum Packet Size, 0: none */
	/* A batch (cg_publisher_queue_batch): the seqs of its readings, from
	 * malloc, each reported as seq is for one; NULL for one reading. */
	int64_t *seqs;
	size_t n_seqs;
} pub_slot_t;

/* Slots kept free beyond the readings' window for status and health. */
#define STATUS_RESERVE 8

/* A message handed over with cg_publisher_queue(), waiting for a slot; the
 * publisher owns its strings. */
typedef struct pub_msg {
	int64_t seq;
	char *topic;
	char *payload;
	size_t len;
	int qos;
	uint32_t expiry_s;
	int64_t *seqs; /* a batch's, as in pub_slot_t; NULL for one reading */
	size_t n_seqs;
} pub_msg_t;

typedef struct seq_list {
	int64_t *v;
	size_t n, cap;
} seq_list_t;

typedef struct refusal_list {
	cg_publisher_refusal_t *v;
	size_t n, cap;
} refusal_list_t;

struct cg_publisher {
	const cg_paho_t *paho; /* the Paho that made client */
	MQTTAsync client;
	char *uri, *client_id, *username, *password;
	char *ca_file, *cert_file, *key_file;
	char *status_topic, *offline_payload;
	int keepalive_s;
	int max_inflight;
	int version_cfg; /* mqtt.version as configured */
	uint32_t session_expiry_s;
	void (*notify)(void *ctx);
	void *notify_ctx;

	/* Shared with Paho's callback thread, under lock. */
	pthread_mutex_t lock;
	pub_slot_t *slots;
	size_t n_slots;
	size_t *free_slots; /* a stack of free slot indices */
	size_t n_free;
	seq_list_t acked, failed; /* filled by callbacks */
	refusal_list_t refused, out_refused;
	pub_msg_t *queue; /* a ring of messages waiting for a slot */
	/* A ring of q_cap, grown on demand up to q_max: a live box queues a
	 * second's readings, a backlog's drain up to the whole send-ahead. */
	size_t q_cap, q_max, q_head, q_len;
	size_t max_queued;                /* the owner's send-ahead beyond the window */
	size_t ack_batch;                 /* acknowledgements that wake the owner */
	bool pumping;                     /* one thread sends from the queue at a time */
	seq_list_t out_acked, out_failed; /* handed to the owner by cg_publisher_take */
	bool connected;
	bool connecting;
	bool ever_connected;
	int version;           /* the protocol the client speaks now: CG_MQTT_5 or CG_MQTT_311 */
	int connected_version; /* that of the last connection, for health; 0 before */
	bool fall_back;        /* the broker refused MQTT 5: recreate the client for 3.1.1 */
	uint32_t max_packet;   /* the broker's Maximum Packet Size, 0: none given */
	size_t reserve;        /* slots the readings may not use: status, health, Receive Maximum */
	int status_refused;    /* the last reason a status or health message was refused */
	uint64_t generation;
	uint64_t reconnects;
	size_t batches_acked; /* batches acknowledged since the last cg_publisher_take */
	int last_failure;    /* last connect failure code, to log each kind once */
	char tls_error[128]; /* OpenSSL's reason for the last failed handshake */

	/* The owner's thread only. */
	bool attempting;             /* a connect was started and has not been waited for */
	uint64_t batched_generation; /* the connection Paho's send thread was last set for */
	bool batch_told;             /* a failure to set it was logged */
	int64_t next_attempt_ms;
	cg_backoff_t backoff;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Appends v; on memory failure the event is lost, which only costs a
 * duplicate later (an unacknowledged row is sent again after a reconnect). */
static void seq_push(seq_list_t *l, int64_t v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		int64_t *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = v;
}

/* Appends a refusal; on memory failure it is lost, which costs a resend
 * (and a second refusal) after the next reconnect, never a false delivery. */
static void refusal_push(refusal_list_t *l, int64_t seq, int reason, bool local,
                         int client_code)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		cg_publisher_refusal_t *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = (cg_publisher_refusal_t){
	    .seq = seq, .reason = reason, .local = local, .client_code = client_code};
}

static void wake(cg_publisher_t *p)
{
	if (p->notify)
		p->notify(p->notify_ctx);
}

/* Frees every queued message; the caller holds the lock. Their seqs are
 * not reported: the owner sends again from its oldest unacknowledged row
 * after a reconnect or a failure, which is when queues are dropped. */
static void queue_clear(cg_publisher_t *p)
{
	for (; p->q_len > 0; p->q_len--) {
		pub_msg_t *m = &p->queue[p->q_head];
		free(m->topic);
		free(m->payload);
		free(m->seqs);
		p->q_head = (p->q_head + 1) % p->q_cap;
	}
}

/* Readings the broker's Receive Maximum leaves for the window: two places
 * are kept for the status and health messages, which count too. */
static size_t window_for(const cg_publisher_t *p, int receive_max)
{
	size_t w = (size_t)(p->max_inflight > 0 ? p->max_inflight : 1);

	if (receive_max > 0) {
		size_t broker = receive_max > 2 ? (size_t)receive_max - 2 : 1;
		if (broker < w)
			w = broker;
	}
	return w;
}

/* Marks the client connected once per connection, with what its CONNACK
 * said: the broker's Maximum Packet Size and Receive Maximum (0: none), and
 * whether it kept the session. */
static void mark_connected(cg_publisher_t *p, uint32_t max_packet, int receive_max,
                           bool session_present)
{
	size_t window = window_for(p, receive_max);
	char limits[96] = "";
	bool changed = false;
	int version;

	pthread_mutex_lock(&p->lock);
	p->connecting = false;
	if (!p->connected) {
		p->connected = true;
		p->generation++;
		/* Slots still in use from the last connection are not taken
		 * back: Paho calls back for every message it was given. Those
		 * in flight were failed when the session was cleaned (on the
		 * loss, or at this CONNACK); those it had queued and not yet
		 * written go out on this connection and are acknowledged here.
		 * Taken back and given to another reading, such a slot was
		 * acknowledged for that reading when the old message's PUBACK
		 * came: counted as delivered before it was. */
		if (p->ever_connected)
			p->reconnects++;
		p->ever_connected = true;
		p->last_failure = 0;
		p->max_packet = p->version == CG_MQTT_5 ? max_packet : 0;
		p->reserve = p->n_slots - window;
		p->connected_version = p->version;
		changed = true;
	}
	version = p->version;
	pthread_mutex_unlock(&p->lock);
	if (!changed)
		return;
	if (max_packet)
		snprintf(limits, sizeof(limits), "; packets of %u bytes at most",
		         (unsigned)max_packet);
	if (receive_max)
		snprintf(limits + strlen(limits), sizeof(limits) - strlen(limits), "; %d in flight",
		         receive_max);
	cg_log(CG_LOG_INFO, "mqtt: connected to %s as %s (MQTT %s%s%s; window %zu)", p->uri,
	       p->client_id, version == CG_MQTT_5 ? "5" : "3.1.1",
	       session_present ? "; session kept" : "", limits, window);
	wake(p);
}

static void on_connect_success(void *ctx, MQTTAsync_successData *resp)
{
	mark_connected(ctx, 0, 0, false);
}

/* MQTT 5: the CONNACK's properties say what the broker takes. */
static void on_connect_success5(void *ctx, MQTTAsync_successData5 *resp)
{
	uint32_t max_packet = 0;
	int receive_max = 0;
	bool session_present = resp && resp->alt.connect.sessionPresent;

	if (resp) {
		const cg_paho_t *ph = ((cg_publisher_t *)ctx)->paho;

		if (ph->hasProperty(&resp->properties, MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE))
			max_packet = (uint32_t)ph->getNumericValue(
			    &resp->properties, MQTTPROPERTY_CODE_MAXIMUM_PACKET_SIZE);
		if (ph->hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
			receive_max = ph->getNumericValue(&resp->properties,
			                                  MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	}
	mark_connected(ctx, max_packet, receive_max, session_present);
}

/* Explains a connect failure: an MQTT 5 CONNACK reason code (>= 0x80) by its
 * name, a CONNACK return code 1-5 of MQTT 3.1.1, otherwise Paho's own
 * negative codes. */
static const char *connect_failure_text(int code, int reason)
{
	if (reason >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		return cg_publisher_reason_name(reason);
	switch (code) {
	case 1: return "broker refused the protocol version";
	case 2: return "broker refused the client id";
	case 3: return "broker unavailable";
	case 4: return "broker refused the user name or password";
	case 5: return "broker refused: not authorised";
	default: return "cannot connect (network, TLS or broker down)";
	}
}

/* A connect attempt failed: logs each kind of failure once (a broker that
 * stays away would otherwise log every attempt). With mqtt.version auto, a
 * broker that answers the MQTT 5 CONNECT with "unacceptable protocol
 * version" (3.1.1's return code 1, or MQTT 5's 0x84) gets MQTT 3.1.1 from
 * the next attempt on, said once as a warning. */
static void connect_failed(cg_publisher_t *p, int code, int reason, const char *message)
{
	char tls[sizeof(p->tls_error)];
	int kind = reason >= MQTTREASONCODE_UNSPECIFIED_ERROR ? reason : code;
	bool first, fall_back;

	pthread_mutex_lock(&p->lock);
	p->connecting = false;
	first = p->last_failure != kind;
	p->last_failure = kind;
	fall_back =
	    p->version_cfg == CG_MQTT_AUTO && p->version == CG_MQTT_5 && !p->fall_back &&
	    (code == 1 || reason == 1 || reason == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION);
	if (fall_back)
		p->fall_back = true;
	snprintf(tls, sizeof(tls), "%s", p->tls_error);
	p->tls_error[0] = '\0';
	pthread_mutex_unlock(&p->lock);
	if (fall_back)
		cg_log(CG_LOG_WARNING,
		       "mqtt: %s does not speak MQTT 5 (\"unacceptable protocol version\"); "
		       "using MQTT 3.1.1, on which the broker cannot say when it refuses a "
		       "reading (an ACL, a size limit): such readings are counted as delivered",
		       p->uri);
	else if (first && tls[0])
		cg_log(CG_LOG_WARNING,
		       "mqtt: %s: TLS handshake failed: %s (code %d); retrying with "
		       "back-off, over TLS only",
		       p->uri, tls, code);
	else if (first && reason >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		cg_log(CG_LOG_WARNING,
		       "mqtt: %s: broker refused the connection: %s (reason 0x%02x%s%s); retrying "
		       "with back-off",
		       p->uri, connect_failure_text(code, reason), reason, message ? ", " : "",
		       message ? message : "");
	else if (first)
		cg_log(CG_LOG_WARNING, "mqtt: %s: %s (code %d%s%s); retrying with back-off", p->uri,
		       connect_failure_text(code, reason), code, message ? ", " : "",
		       message ? message : "");
	wake(p);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *resp)
{
	connect_failed(ctx, resp ? resp->code : -1, 0, resp ? resp->message : NULL);
}

/* Paho 1.3.12 reports a CONNACK's reason code in code, leaving reasonCode 0. */
static void on_connect_failure5(void *ctx, MQTTAsync_failureData5 *resp)
{
	int code = resp ? resp->code : -1;
	int reason = resp ? (int)resp->reasonCode : 0;

	if (reason < MQTTREASONCODE_UNSPECIFIED_ERROR && code >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		reason = code;
	connect_failed(ctx, code, reason, resp ? resp->message : NULL);
}

/* The connection is gone (lost, or closed by the broker's DISCONNECT):
 * what was queued is dropped, the owner resends from its outbox. */
static void lose_connection(cg_publisher_t *p, const char *cause)
{
	bool was;

	pthread_mutex_lock(&p->lock);
	was = p->connected;
	p->connected = false;
	queue_clear(p);
	pthread_mutex_unlock(&p->lock);
	if (was)
		cg_log(CG_LOG_WARNING,
		       "mqtt: connection to %s lost%s%s; unacknowledged readings stay in the "
		       "outbox",
		       p->uri, cause ? ": " : "", cause ? cause : "");
	wake(p);
}

static void on_connection_lost(void *ctx, char *cause)
{
	lose_connection(ctx, cause);
}

/* MQTT 5: the broker closed the connection with a DISCONNECT; its reason
 * is logged by name (server shutting down, packet too large, not
 * authorised, session taken over ...), whichever of this and the lost
 * connection Paho reports first. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes reason)
{
	cg_publisher_t *p = ctx;

	cg_log(CG_LOG_WARNING, "mqtt: %s sent DISCONNECT: %s (reason 0x%02x)", p->uri,
	       cg_publisher_reason_name((int)reason), (unsigned)reason);
	lose_connection(p, NULL);
}

/* Returns a slot to the free stack; the caller holds the lock. */
static void slot_release(cg_publisher_t *p, pub_slot_t *s)
{
	s->used = false;
	p->free_slots[p->n_free++] = (size_t)(s - p->slots);
}

static void on_send_success(void *ctx, MQTTAsync_successData *resp);
static void on_send_failure(void *ctx, MQTTAsync_failureData *resp);
static void on_send_success5(void *ctx, MQTTAsync_successData5 *resp);
static void on_send_failure5(void *ctx, MQTTAsync_failureData5 *resp);

/* Takes a free slot for seq on the current connection; the caller holds
 * the lock and has checked that one is free. */
static pub_slot_t *slot_take(cg_publisher_t *p, int64_t seq)
{
	pub_slot_t *s = &p->slots[p->free_slots[--p->n_free]];

	s->seq = seq;
	s->seqs = NULL;
	s->n_seqs = 0;
	s->used = true;
	s->v5 = p->version == CG_MQTT_5;
	s->max_packet = p->max_packet;
	return s;
}

/* paho_send()'s code for a message larger than the broker takes (Paho's own are <= 0). */
#define SEND_TOO_LARGE 1

/* Bytes of n as an MQTT variable byte integer. */
static size_t varint_len(size_t n)
{
	size_t k = 1;

	for (; n >= 128; n /= 128)
		k++;
	return k;
}

/* The size of a PUBLISH on the wire, which is what the broker's Maximum
 * Packet Size limits: fixed header, topic, packet id (QoS > 0), the
 * properties with their length (MQTT 5) and the payload. */
static size_t publish_size(size_t topic_len, size_t len, int qos, bool v5, size_t props_len)
{
	size_t rest = 2 + topic_len + (qos > 0 ? 2 : 0) + len;

	if (v5)
		rest += varint_len(props_len) + props_len;
	return 1 + varint_len(rest) + rest;
}

/* Adds the MQTT 5 properties a platform reads to props: the payload format
 * indicator (UTF-8: every payload is JSON), the content type, seq as the
 * user property "seq" (seq >= 0) and the message expiry (expiry_s > 0).
 * Paho copies the strings. MQTTASYNC_FAILURE when out of memory. */
static int add_props(const cg_paho_t *ph, MQTTProperties *props, const char *payload, size_t len,
                     int64_t seq, uint32_t expiry_s)
{
	const char *type = cg_encode_content_type(payload, len);
	char seq_text[24];
	MQTTProperty pr = {.identifier = MQTTPROPERTY_CODE_PAYLOAD_FORMAT_INDICATOR};
	int rc;

	pr.value.byte = 1;
	rc = ph->propertiesAdd(props, &pr);
	pr = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE};
	pr.value.data.data = (char *)type;
	pr.value.data.len = (int)strlen(type);
	rc |= ph->propertiesAdd(props, &pr);
	if (seq >= 0) {
		pr = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_USER_PROPERTY};
		pr.value.data.data = "seq";
		pr.value.data.len = 3;
		pr.value.value.len = snprintf(seq_text, sizeof(seq_text), "%lld", (long long)seq);
		pr.value.value.data = seq_text;
		rc |= ph->propertiesAdd(props, &pr);
	}
	if (expiry_s > 0) {
		pr = (MQTTProperty){.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL};
		pr.value.integer4 = expiry_s;
		rc |= ph->propertiesAdd(props, &pr);
	}
	return rc ? MQTTASYNC_FAILURE : MQTTASYNC_SUCCESS;
}

/* Adds a batch's user property "seqs", "first-last": the lowest and highest of
 * its seqs, so that a platform can tell the readings a batch holds without
 * parsing it. MQTTASYNC_FAILURE when out of memory. */
static int add_seqs_prop(const cg_paho_t *ph, MQTTProperties *props, const int64_t *seqs,
                         size_t n)
{
	MQTTProperty pr = {.identifier = MQTTPROPERTY_CODE_USER_PROPERTY};
	int64_t lo = seqs[0], hi = seqs[0];
	char text[48];

	for (size_t i = 1; i < n; i++) {
		if (seqs[i] < lo)
			lo = seqs[i];
		if (seqs[i] > hi)
			hi = seqs[i];
	}
	pr.value.data.data = "seqs";
	pr.value.data.len = 4;
	pr.value.value.len =
	    snprintf(text, sizeof(text), "%lld-%lld", (long long)lo, (long long)hi);
	pr.value.value.data = text;
	return ph->propertiesAdd(props, &pr) ? MQTTASYNC_FAILURE : MQTTASYNC_SUCCESS;
}

/* Hands one message in slot s to Paho, which copies it, with the MQTT 5
 * properties when the connection speaks MQTT 5. A message larger than the
 * broker's Maximum Packet Size is not handed over (SEND_TOO_LARGE): the
 * broker would close the connection, and the message would come back
 * after every reconnect. On any refusal the slot is freed again. Returns
 * Paho's code or SEND_TOO_LARGE. Called without our lock. */
static int paho_send(cg_publisher_t *p, pub_slot_t *s, const char *topic, const void *payload,
                     size_t len, int qos, bool retained, uint32_t expiry_s)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc = MQTTASYNC_SUCCESS;

	ro.context = s;
	if (s->v5) {
		ro.onSuccess5 = on_send_success5;
		ro.onFailure5 = on_send_failure5;
		rc = add_props(p->paho, &ro.properties, payload, len, s->n_seqs ? -1 : s->seq,
		               expiry_s);
		if (rc == MQTTASYNC_SUCCESS && s->n_seqs)
			rc = add_seqs_prop(p->paho, &ro.properties, s->seqs, s->n_seqs);
	} else {
		ro.onSuccess = on_send_success;
		ro.onFailure = on_send_failure;
	}
	if (rc == MQTTASYNC_SUCCESS && s->max_packet &&
	    publish_size(strlen(topic), len, qos, s->v5, (size_t)ro.properties.length) >
	        s->max_packet)
		rc = SEND_TOO_LARGE;
	if (rc == MQTTASYNC_SUCCESS)
		rc = p->paho->send(p->client, topic, (int)len, payload, qos, retained, &ro);
	p->paho->propertiesFree(&ro.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		pthread_mutex_lock(&p->lock);
		if (s->used)
			slot_release(p, s);
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

/* Whether Paho refused a message for what it is (a topic that is not valid
 * UTF-8, a missing one, a bad QoS), not for the connection's state. */
static bool refused_for_good(int rc)
{
	return rc == MQTTASYNC_BAD_UTF8_STRING || rc == MQTTASYNC_NULL_PARAMETER ||
	       rc == MQTTASYNC_BAD_STRUCTURE || rc == MQTTASYNC_BAD_QOS;
}

/*
 * Sends queued messages, oldest first, while the readings' window has room.
 * Paho's receive thread does it when an acknowledgement frees a slot, so
 * that the window is refilled the moment a PUBACK arrives rather than when
 * the owner's loop next wakes up; being the thread that reads the PUBACKs,
 * it can only fill the slots free at that moment. The owner's thread pumps
 * when it queues, but only into the slots free when it starts, and only
 * when at least half the window is free: while the window stays full, the
 * acknowledgements come thick and fast and the receive thread sends; had
 * the owner sent too, the two would contend for Paho's lock, which the
 * receive thread takes back again and again (measured: the owner's loop
 * stalled for 20 to 280 ms at a time, committing nothing). With less than
 * half free something is in flight, so an acknowledgement will come and
 * pump; with a slow uplink and light traffic the window is mostly free and
 * a reading goes at once rather than a round trip later. The owner goes
 * round again only if nothing is in flight any more, since then no
 * acknowledgement will come.
 *
 * One thread pumps at a time, so messages leave in the order queued; a
 * thread that finds another pumping leaves the work to it. Our lock is
 * never held while calling Paho (which calls back with its own lock held).
 * A message Paho refuses is reported as failed, so the owner sends it
 * again; one that sending again cannot cure (larger than the broker takes,
 * or refused by the client for what it is: an invalid topic) is reported
 * refused. Returns true when the owner should be woken: a refusal, or the
 * queue running below half, time to queue more.
 */
static bool pump(cg_publisher_t *p, bool owner)
{
	size_t low = p->max_queued / 2;
	size_t half_free;
	bool wake_owner = false, again;

	pthread_mutex_lock(&p->lock);
	half_free = p->reserve + (p->n_slots - p->reserve + 1) / 2;
	if (p->pumping || (owner && p->n_free < half_free)) {
		pthread_mutex_unlock(&p->lock);
		return false;
	}
	p->pumping = true;
	do {
		size_t budget = owner ? p->n_free : SIZE_MAX;

		while (budget-- > 0 && p->connected && p->q_len > 0 && p->n_free > p->reserve) {
			pub_msg_t m = p->queue[p->q_head];
			pub_slot_t *s = slot_take(p, m.seq);
			int rc;

			/* The slot reports the batch's seqs from now on; should Paho
			 * refuse it, they are reported from m below and freed here. */
			s->seqs = m.seqs;
			s->n_seqs = m.n_seqs;
			p->q_head = (p->q_head + 1) % p->q_cap;
			if (p->q_len-- == low)
				wake_owner = true;
			pthread_mutex_unlock(&p->lock);
			rc = paho_send(p, s, m.topic, m.payload, m.len, m.qos, false, m.expiry_s);
			free(m.topic);
			free(m.payload);
			pthread_mutex_lock(&p->lock);
			for (size_t i = 0; i < (m.seqs ? m.n_seqs : 1) && rc != MQTTASYNC_SUCCESS;
			     i++) {
				int64_t seq = m.seqs ? m.seqs[i] : m.seq;

				if (rc == SEND_TOO_LARGE)
					refusal_push(&p->refused, seq, CG_MQTT_RC_PACKET_TOO_LARGE,
					             true, 0);
				else if (refused_for_good(rc))
					refusal_push(&p->refused, seq, CG_MQTT_RC_TOPIC_INVALID,
					             true, rc);
				else
					seq_push(&p->failed, seq);
				wake_owner = true;
			}
			if (rc != MQTTASYNC_SUCCESS) {
				/* The slot went back free still pointing at them. */
				if (s->seqs == m.seqs)
					s->seqs = NULL;
				free(m.seqs);
			}
		}
		again = owner && p->connected && p->q_len > 0 && p->n_free == p->n_slots;
	} while (again);
	p->pumping = false;
	pthread_mutex_unlock(&p->lock);
	return wake_owner;
}

/* How a message in flight ended. */
enum { SENT_OK, SENT_FAILED, SENT_REFUSED };

/*
 * Reports the slot's seq as acked, failed or refused (with reason), frees
 * the slot and sends the next queued message into it; a slot already
 * taken back is ignored. Status messages carry seq -1 and are not
 * reported; a refused one is logged, once per reason in a row. The owner
 * takes events in batches, so it is woken only when it has something to
 * do: the first failure or refusal, ack_batch acknowledgements waiting
 * (deletes are batched anyway), the last message in flight acknowledged
 * (a quiet moment: nothing more will come to wake it), or the queue
 * running low. Waking it for every PUBACK would cost a futex call and a
 * context switch per reading.
 */
static void settle(pub_slot_t *s, int outcome, int reason)
{
	cg_publisher_t *p = s->p;
	bool wake_owner = false, queued, log_status = false;

	pthread_mutex_lock(&p->lock);
	if (s->used && s->seqs) {
		/* A batch: every reading in it ends as the message did. */
		for (size_t i = 0; i < s->n_seqs; i++) {
			if (outcome == SENT_OK)
				seq_push(&p->acked, s->seqs[i]);
			else if (outcome == SENT_REFUSED)
				refusal_push(&p->refused, s->seqs[i], reason, false, 0);
			else
				seq_push(&p->failed, s->seqs[i]);
		}
		if (outcome == SENT_OK)
			p->batches_acked++;
		wake_owner = outcome != SENT_OK || p->acked.n >= p->ack_batch;
		free(s->seqs);
		s->seqs = NULL;
		slot_release(p, s);
		if (p->n_free == p->n_slots && p->q_len == 0)
			wake_owner = true;
	} else if (s->used) {
		if (s->seq >= 0 && outcome == SENT_OK) {
			seq_push(&p->acked, s->seq);
			wake_owner = p->acked.n == p->ack_batch;
		} else if (s->seq >= 0 && outcome == SENT_REFUSED) {
			refusal_push(&p->refused, s->seq, reason, false, 0);
			wake_owner = p->refused.n == 1;
		} else if (s->seq >= 0) {
			seq_push(&p->failed, s->seq);
			wake_owner = p->failed.n == 1;
		} else if (outcome == SENT_REFUSED && p->status_refused != reason) {
			p->status_refused = reason;
			log_status = true;
		}
		slot_release(p, s);
		if (p->n_free == p->n_slots && p->q_len == 0 &&
		    p->acked.n + p->failed.n + p->refused.n > 0)
			wake_owner = true;
	}
	queued = p->q_len > 0;
	pthread_mutex_unlock(&p->lock);
	if (log_status)
		cg_log(CG_LOG_WARNING,
		       "mqtt: the broker refused a status or health message (%s): %s (reason "
		       "0x%02x)",
		       p->status_topic, cg_publisher_reason_name(reason), (unsigned)reason);
	if (queued && pump(p, false))
		wake_owner = true;
	if (wake_owner)
		wake(p);
}

static void on_send_success(void *ctx, MQTTAsync_successData *resp)
{
	settle(ctx, SENT_OK, 0);
}

static void on_send_failure(void *ctx, MQTTAsync_failureData *resp)
{
	settle(ctx, SENT_FAILED, 0);
}

/* MQTT 5: a PUBACK reason code >= 0x80 (not authorised, topic name invalid,
 * quota exceeded, payload format invalid ...) is a refusal, whichever of
 * the two callbacks Paho reports it with. */
static void on_send_success5(void *ctx, MQTTAsync_successData5 *resp)
{
	int reason = resp ? (int)resp->reasonCode : 0;

	settle(ctx, reason >= MQTTREASONCODE_UNSPECIFIED_ERROR ? SENT_REFUSED : SENT_OK, reason);
}

static void on_send_failure5(void *ctx, MQTTAsync_failureData5 *resp)
{
	int reason = resp ? (int)resp->reasonCode : 0;

	settle(ctx, reason >= MQTTREASONCODE_UNSPECIFIED_ERROR ? SENT_REFUSED : SENT_FAILED,
	       reason);
}

/* citygate subscribes to nothing; Paho still wants a message callback. */
static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	cg_publisher_t *p = ctx;

	p->paho->freeMessage(&msg);
	p->paho->free(topic);
	return 1;
}

/* Paho understands tcp:// and ssl://; accept the mqtt:// and mqtts:// spellings too. */
static char *paho_uri(const char *uri)
{
	const char *rest;
	char *out;

	if (strncmp(uri, "mqtts://", 8) == 0)
		rest = uri + 8;
	else if (strncmp(uri, "mqtt://", 7) == 0)
		rest = uri + 7;
	else
		return strdup(uri);
	out = malloc(strlen(rest) + 7);
	if (out) {
		strcpy(out, uri[4] == 's' ? "ssl://" : "tcp://");
		strcat(out, rest);
	}
	return out;
}

void cg_publisher_init_paho(void)
{
	char err[256];

	/* Set up as the publisher's (uplink/paho.c): for a program that links
	 * Paho itself, the Paho it linked. */
	if (!cg_paho_load(false, err, sizeof(err)))
		cg_log(CG_LOG_ERR, "mqtt: %s", err);
}

/* The name Paho (1.3) gives the thread that writes its packets. */
#define PAHO_SEND_THREAD "MQTTAsync_send"

int cg_publisher_batch_sender(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0, err = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		struct sched_param sp = {.sched_priority = 0};
		char path[64], comm[32] = "";
		pid_t tid = (pid_t)atoi(e->d_name);
		FILE *f;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		if (strcmp(comm, PAHO_SEND_THREAD) != 0)
			continue;
		if (sched_setscheduler(tid, SCHED_BATCH, &sp) == 0)
			n++;
		else
			err = errno;
	}
	closedir(d);
	return n > 0 || !err ? n : -err;
}

/* Creates Paho's client for p->version (a client made for 3.1.1 cannot
 * speak MQTT 5) and sets its callbacks. */
static int client_create(cg_publisher_t *p)
{
	MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
	int rc;

	/* The outbox is the store of undelivered data: Paho keeps nothing on
	 * disk and refuses sends while disconnected, so every reading is either
	 * acknowledged or still a row to resend. */
	copts.sendWhileDisconnected = 0;
	/* Paho refuses a send while more than maxBufferedMessages (default
	 * 100) publishes wait in its queue, connected or not: with a window
	 * above 100 a burst of sends would be refused and retried. Every slot
	 * may be queued at once. */
	copts.maxBufferedMessages = (int)p->n_slots;
	copts.MQTTVersion = p->version == CG_MQTT_5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	rc = p->paho->createWithOptions(&p->client, p->uri, p->client_id,
	                                MQTTCLIENT_PERSISTENCE_NONE, NULL, &copts);
	if (rc != MQTTASYNC_SUCCESS) {
		cg_log(CG_LOG_ERR, "mqtt: cannot create a client for %s (Paho code %d)", p->uri,
		       rc);
		p->client = NULL;
		return CG_EMQTT;
	}
	if (p->paho->setCallbacks(p->client, p, on_connection_lost, on_message, NULL) !=
	        MQTTASYNC_SUCCESS ||
	    (p->version == CG_MQTT_5 &&
	     p->paho->setDisconnected(p->client, p, on_disconnected) != MQTTASYNC_SUCCESS))
		return CG_EMQTT;
	return CG_OK;
}

int cg_publisher_new(const cg_publisher_opts_t *o, cg_publisher_t **out)
{
	cg_publisher_t *p;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return CG_ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->uri = paho_uri(o->uri);
	if (p->uri) {
		char err[256];

		/* The TLS library only for a TLS broker: a plain-text box never
		 * maps libssl and libcrypto. */
		p->paho = cg_paho_load(strncmp(p->uri, "ssl://", 6) == 0, err, sizeof(err));
		if (!p->paho) {
			cg_log(CG_LOG_ERR, "mqtt: %s", err);
			rc = CG_EMQTT;
			goto free_p;
		}
	}
	p->client_id = strdup(o->client_id);
	p->username = dup_or_null(o->username);
	/* Kept for every connect: in pages left out of core dumps, wiped on free. */
	if (cg_secret_dup(o->password, &p->password) != CG_OK)
		p->password = NULL;
	p->ca_file = dup_or_null(o->ca_file);
	p->cert_file = dup_or_null(o->cert_file);
	p->key_file = dup_or_null(o->key_file);
	p->status_topic = strdup(o->status_topic);
	p->offline_payload = strdup(o->offline_payload);
	/* Room for the window plus the status and health messages. */
	p->n_slots = (size_t)(o->max_inflight > 0 ? o->max_inflight : 1) + STATUS_RESERVE;
	p->slots = calloc(p->n_slots, sizeof(*p->slots));
	p->max_queued = o->max_queued;
	p->ack_batch = o->ack_batch > 0 ? o->ack_batch : 1;
	/* Whatever cg_publisher_room() allows fits in the ring at its largest. */
	p->q_max = p->n_slots + p->max_queued;
	p->q_cap = p->n_slots < p->q_max ? p->n_slots : p->q_max;
	p->queue = malloc(p->q_cap * sizeof(*p->queue));
	p->free_slots = calloc(p->n_slots, sizeof(*p->free_slots));
	if (!p->uri || !p->client_id || !p->status_topic || !p->offline_payload || !p->slots ||
	    !p->free_slots || !p->queue || (o->username && !p->username) ||
	    (o->password && !p->password)) {
		rc = CG_ENOMEM;
		goto free_p;
	}
	for (size_t i = 0; i < p->n_slots; i++) {
		p->slots[i].p = p;
		p->free_slots[p->n_free++] = p->n_slots - 1 - i;
	}
	p->keepalive_s = o->keepalive_s;
	p->notify = o->notify;
	p->notify_ctx = o->notify_ctx;
	/* The pid apart from the time: a fleet started by one script starts in the same
	 * millisecond, and must not share its phases. */
	cg_backoff_init(&p->backoff, o->reconnect_min_s, o->reconnect_max_s,
	                (uint64_t)cg_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)p);

	p->reserve = STATUS_RESERVE;
	p->max_inflight = o->max_inflight;
	p->version_cfg = o->version;
	p->version = o->version == CG_MQTT_311 ? CG_MQTT_311 : CG_MQTT_5;
	p->session_expiry_s = o->session_expiry_s;
	rc = client_create(p);
	if (rc < 0)
		goto free_p;
	*out = p;
	return CG_OK;

free_p:
	cg_publisher_free(p);
	return rc;
}

/* Keeps OpenSSL's reason for a failed handshake (unknown CA, host name
 * mismatch, no client certificate), which Paho's failure code does not say,
 * for the connect failure's log line. OpenSSL writes
 * "thread:error:code:library:function:reason:file:line:"; the reason is
 * the sixth field. */
static int on_tls_error(const char *str, size_t len, void *ctx)
{
	cg_publisher_t *p = ctx;
	const char *field = str, *end = str + len, *stop;

	for (int i = 0; i < 5 && field < end; i++) {
		const char *colon = memchr(field, ':', (size_t)(end - field));
		field = colon ? colon + 1 : end;
	}
	if (field >= end)
		field = str;
	stop = memchr(field, ':', (size_t)(end - field));
	if (!stop)
		stop = end;
	pthread_mutex_lock(&p->lock);
	snprintf(p->tls_error, sizeof(p->tls_error), "%.*s", (int)(stop - field), field);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Starts one connect attempt. The Last Will makes the broker publish the
 * retained offline status if we vanish without a clean stop. TLS always
 * verifies the server certificate and host name; a TLS failure is retried
 * over TLS only. On MQTT 5 the session outlives the connection by
 * session_expiry_s, and the Will says it is JSON. */
static void start_connect(cg_publisher_t *p)
{
	MQTTAsync_connectOptions c5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer, will_props = MQTTProperties_initializer;
	int rc;

	if (p->version == CG_MQTT_5) {
		MQTTProperty pr = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};

		c = c5;
		/* With a session expiry every connect asks for the session back,
		 * so a short outage keeps it: Paho then sends what was in flight
		 * again and calls back as usual (mark_connected). Unacknowledged
		 * readings go again from the outbox either way. */
		c.cleanstart = p->session_expiry_s == 0;
		c.onSuccess5 = on_connect_success5;
		c.onFailure5 = on_connect_failure5;
		pr.value.integer4 = p->session_expiry_s;
		if (p->session_expiry_s > 0)
			p->paho->propertiesAdd(&props, &pr);
		c.connectProperties = &props;
		add_props(p->paho, &will_props, p->offline_payload, strlen(p->offline_payload), -1,
		          0);
		c.willProperties = &will_props;
	} else {
		/* Without a version Paho retries a refused 3.1.1 connect as 3.1:
		 * two connections per attempt. */
		c.MQTTVersion = MQTTVERSION_3_1_1;
		c.cleansession = 1;
		c.onSuccess = on_connect_success;
		c.onFailure = on_connect_failure;
	}
	c.keepAliveInterval = p->keepalive_s;
	c.automaticReconnect = 0;
	c.connectTimeout = 10;
	c.context = p;
	c.username = p->username;
	c.password = p->password;
	will.topicName = p->status_topic;
	will.message = p->offline_payload;
	will.retained = 1;
	will.qos = 1;
	c.will = &will;
	if (strncmp(p->uri, "ssl://", 6) == 0) {
		ssl.trustStore = p->ca_file;
		ssl.keyStore = p->cert_file;
		ssl.privateKey = p->key_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		ssl.ssl_error_cb = on_tls_error;
		ssl.ssl_error_context = p;
		c.ssl = &ssl;
	}
	pthread_mutex_lock(&p->lock);
	p->connecting = true;
	pthread_mutex_unlock(&p->lock);
	rc = p->paho->connect(p->client, &c);
	p->paho->propertiesFree(&props);
	p->paho->propertiesFree(&will_props);
	if (rc != MQTTASYNC_SUCCESS) {
		pthread_mutex_lock(&p->lock);
		p->connecting = false;
		pthread_mutex_unlock(&p->lock);
		cg_log(CG_LOG_WARNING, "mqtt: connect to %s not started (Paho code %d)", p->uri,
		       rc);
	}
}

/* The broker refused MQTT 5: a new client for 3.1.1, connecting at once
 * (the refusal was an answer, not an outage). */
static void fall_back(cg_publisher_t *p)
{
	p->paho->destroy(&p->client);
	pthread_mutex_lock(&p->lock);
	p->version = CG_MQTT_311;
	pthread_mutex_unlock(&p->lock);
	if (client_create(p) == CG_OK)
		start_connect(p);
	p->attempting = true;
}

void cg_publisher_tick(cg_publisher_t *p, int64_t now)
{
	bool idle, connected, to_311;
	uint64_t generation;

	pthread_mutex_lock(&p->lock);
	connected = p->connected;
	idle = !connected && !p->connecting;
	to_311 = p->fall_back && p->version == CG_MQTT_5;
	if (connected)
		cg_backoff_reset(&p->backoff);
	generation = p->generation;
	pthread_mutex_unlock(&p->lock);
	if (connected && generation != p->batched_generation) {
		/* Paho starts its threads for a connection: once per connection is enough.
		 * Without it citygate works the same, a little slower: said once. */
		int n = cg_publisher_batch_sender();

		p->batched_generation = generation;
		if (n <= 0 && !p->batch_told) {
			p->batch_told = true;
			cg_log(CG_LOG_INFO,
			       "mqtt: Paho's send thread (%s) not set to SCHED_BATCH: %s",
			       PAHO_SEND_THREAD, n < 0 ? strerror(-n) : "no such thread");
		}
	}
	if (!idle)
		return;
	if (to_311) {
		fall_back(p);
		return;
	}
	if (p->attempting) {
		/* The attempt (or the connection) just ended: the schedule spreads a
		 * city's gateways after a broker restart (backoff.h). */
		p->attempting = false;
		p->next_attempt_ms = cg_backoff_next(&p->backoff, now);
		return;
	}
	if (now < p->next_attempt_ms)
		return;
	start_connect(p);
	p->attempting = true;
}

int cg_publisher_send(cg_publisher_t *p, int64_t seq, const char *topic, const void *payload,
                      size_t len, int qos, bool retained)
{
	pub_slot_t *s;
	int rc;

	pthread_mutex_lock(&p->lock);
	if (!p->connected) {
		pthread_mutex_unlock(&p->lock);
		return CG_ESTATE;
	}
	if (p->n_free == 0) {
		pthread_mutex_unlock(&p->lock);
		return CG_EAGAIN;
	}
	s = slot_take(p, seq);
	pthread_mutex_unlock(&p->lock);
	rc = paho_send(p, s, topic, payload, len, qos, retained, 0);
	if (rc == MQTTASYNC_DISCONNECTED)
		return CG_ESTATE;
	if (rc == SEND_TOO_LARGE)
		return CG_ERANGE;
	return rc == MQTTASYNC_SUCCESS ? CG_OK : CG_EMQTT;
}

/* Room for the owner's readings: the free part of the window plus the
 * send-ahead queue, less what is queued. The lock is held. */
static size_t room_locked(const cg_publisher_t *p)
{
	size_t window = p->n_free > p->reserve ? p->n_free - p->reserve : 0;
	size_t total = window + p->max_queued;

	return total > p->q_len ? total - p->q_len : 0;
}

/* Appends m to the queue, growing the ring (doubled, up to q_max) when it
 * is full; false when it cannot take m now. The lock is held. */
static bool queue_push(cg_publisher_t *p, const pub_msg_t *m)
{
	if (p->q_len == p->q_cap) {
		size_t cap = p->q_cap * 2 < p->q_max ? p->q_cap * 2 : p->q_max;
		pub_msg_t *ring;

		if (cap == p->q_cap || !(ring = malloc(cap * sizeof(*ring))))
			return false;
		/* In order from the head, so that the grown ring starts at 0. */
		for (size_t i = 0; i < p->q_len; i++)
			ring[i] = p->queue[(p->q_head + i) % p->q_cap];
		free(p->queue);
		p->queue = ring;
		p->q_cap = cap;
		p->q_head = 0;
	}
	p->queue[(p->q_head + p->q_len++) % p->q_cap] = *m;
	return true;
}

int cg_publisher_queue(cg_publisher_t *p, int64_t seq, char *topic, char *payload, size_t len,
                       int qos, uint32_t expiry_s)
{
	pthread_mutex_lock(&p->lock);
	if (!p->connected) {
		pthread_mutex_unlock(&p->lock);
		return CG_ESTATE;
	}
	if (room_locked(p) == 0 || !queue_push(p, &(pub_msg_t){.seq = seq,
	                                                       .topic = topic,
	                                                       .payload = payload,
	                                                       .len = len,
	                                                       .qos = qos,
	                                                       .expiry_s = expiry_s})) {
		pthread_mutex_unlock(&p->lock);
		return CG_EAGAIN;
	}
	pthread_mutex_unlock(&p->lock);
	if (pump(p, true))
		wake(p);
	return CG_OK;
}

int cg_publisher_queue_batch(cg_publisher_t *p, const int64_t *seqs, size_t n, char *topic,
                             char *payload, size_t len, int qos, uint32_t expiry_s)
{
	int64_t *copy;

	if (n == 0)
		return CG_EINVAL;
	copy = malloc(n * sizeof(*copy));
	if (!copy)
		return CG_ENOMEM;
	memcpy(copy, seqs, n * sizeof(*copy));
	pthread_mutex_lock(&p->lock);
	if (!p->connected || room_locked(p) == 0 ||
	    !queue_push(p, &(pub_msg_t){.seq = seqs[0],
	                                .topic = topic,
	                                .payload = payload,
	                                .len = len,
	                                .qos = qos,
	                                .expiry_s = expiry_s,
	                                .seqs = copy,
	                                .n_seqs = n})) {
		int rc = p->connected ? CG_EAGAIN : CG_ESTATE;

		pthread_mutex_unlock(&p->lock);
		free(copy);
		return rc;
	}
	pthread_mutex_unlock(&p->lock);
	if (pump(p, true))
		wake(p);
	return CG_OK;
}

void cg_publisher_discard(cg_publisher_t *p)
{
	pthread_mutex_lock(&p->lock);
	queue_clear(p);
	pthread_mutex_unlock(&p->lock);
}

size_t cg_publisher_room(cg_publisher_t *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = room_locked(p);
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Makes the filled list the one handed out, and the one handed out last time the
 * (emptied) list to fill, without copying; the caller holds the lock. */
static void hand_out(seq_list_t *filled, seq_list_t *out)
{
	seq_list_t t = *out;

	*out = *filled;
	*filled = t;
	filled->n = 0;
}

void cg_publisher_take(cg_publisher_t *p, cg_publisher_events_t *ev)
{
	refusal_list_t r;

	pthread_mutex_lock(&p->lock);
	/* Swap the filled lists with the ones handed out last time. */
	hand_out(&p->acked, &p->out_acked);
	hand_out(&p->failed, &p->out_failed);
	r = p->out_refused;
	p->out_refused = p->refused;
	p->refused = r;
	p->refused.n = 0;
	ev->generation = p->generation;
	ev->connected = p->connected;
	ev->n_batches = p->batches_acked;
	p->batches_acked = 0;
	pthread_mutex_unlock(&p->lock);
	ev->acked = p->out_acked.v;
	ev->n_acked = p->out_acked.n;
	ev->failed = p->out_failed.v;
	ev->n_failed = p->out_failed.n;
	ev->refused = p->out_refused.v;
	ev->n_refused = p->out_refused.n;
}

uint64_t cg_publisher_reconnects(const cg_publisher_t *p)
{
	uint64_t n;

	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	n = p->reconnects;
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	return n;
}

int cg_publisher_version(const cg_publisher_t *p)
{
	int v;

	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	v = p->connected_version;
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	return v;
}

uint32_t cg_publisher_max_packet(const cg_publisher_t *p)
{
	uint32_t n;

	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	n = p->max_packet;
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	return n;
}

/* The Paho to name codes with: whichever is loaded (a publisher has made
 * one), else the plain one. */
static const cg_paho_t *any_paho(void)
{
	const cg_paho_t *ph = cg_paho_loaded();
	char err[256];

	return ph ? ph : cg_paho_load(false, err, sizeof(err));
}

const char *cg_publisher_reason_name(int reason)
{
	const cg_paho_t *ph = any_paho();
	const char *s = ph ? ph->reasonCodeToString((enum MQTTReasonCodes)reason) : NULL;

	return s ? s : "unknown reason";
}

const char *cg_publisher_refusal_text(const cg_publisher_refusal_t *r)
{
	const cg_paho_t *ph = any_paho();

	if (!r->client_code)
		return cg_publisher_reason_name(r->reason);
	return ph ? ph->strerror(r->client_code) : "a Paho error";
}

/* Counts messages still waiting for an acknowledgement. */
static size_t outstanding(cg_publisher_t *p)
{
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	n = p->n_slots - p->n_free;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void cg_publisher_stop(cg_publisher_t *p, const char *offline, int timeout_ms)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	int64_t deadline = cg_mono_ms() + timeout_ms;
	bool connected;

	pthread_mutex_lock(&p->lock);
	queue_clear(p);
	connected = p->connected;
	pthread_mutex_unlock(&p->lock);
	if (!connected)
		return;
	/* The clean-stop status replaces the retained online one; the Last
	 * Will is not sent on a clean disconnect. */
	if (!offline)
		offline = p->offline_payload;
	cg_publisher_send(p, -1, p->status_topic, offline, strlen(offline), 1, true);
	while (outstanding(p) > 0 && cg_mono_ms() < deadline)
		cg_sleep_ms(10);
	d.timeout = 1000;
	p->paho->disconnect(p->client, &d);
	/* Let the DISCONNECT leave before the client is destroyed. */
	for (int i = 0; i < 50 && p->paho->isConnected(p->client); i++)
		cg_sleep_ms(10);
	pthread_mutex_lock(&p->lock);
	p->connected = false;
	pthread_mutex_unlock(&p->lock);
}

void cg_publisher_free(cg_publisher_t *p)
{
	if (!p)
		return;
	if (p->client)
		p->paho->destroy(&p->client);
	free(p->uri);
	free(p->client_id);
	free(p->username);
	cg_secret_free(p->password);
	free(p->ca_file);
	free(p->cert_file);
	free(p->key_file);
	free(p->status_topic);
	free(p->offline_payload);
	if (p->queue)
		queue_clear(p);
	free(p->queue);
	for (size_t i = 0; p->slots && i < p->n_slots; i++)
		free(p->slots[i].seqs);
	free(p->slots);
	free(p->free_slots);
	free(p->acked.v);
	free(p->failed.v);
	free(p->out_acked.v);
	free(p->out_failed.v);
	free(p->refused.v);
	free(p->out_refused.v);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
