/* The publisher: Paho MQTTAsync (MQTT 5 or 3.1.1), our own jittered reconnect, a status topic. */
#ifndef CG_PUBLISHER_H
#define CG_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cg_publisher cg_publisher_t;

/* mqtt.version: the protocol asked for. AUTO is MQTT 5, and 3.1.1 only when
 * the broker answers the MQTT 5 CONNECT with "unacceptable protocol version". */
typedef enum cg_mqtt_version {
	CG_MQTT_AUTO = 0,
	CG_MQTT_311 = 4, /* the protocol level on the wire */
	CG_MQTT_5 = 5,
} cg_mqtt_version_t;

/* The reason code citygate gives a reading it did not send because it is
 * larger than the broker's Maximum Packet Size (the code a broker would
 * have answered with, MQTT 5 "Packet too large"). */
#define CG_MQTT_RC_PACKET_TOO_LARGE 0x95
/* ... and one the MQTT client itself refused for its topic (MQTT 5 "Topic
 * Name invalid", what a broker would have answered). */
#define CG_MQTT_RC_TOPIC_INVALID 0x90

typedef struct cg_publisher_opts {
	const char *uri; /* tcp://, ssl://, mqtt://, mqtts:// */
	const char *client_id;
	const char *username; /* NULL: none */
	const char *password; /* NULL: none; copied out of core dumps, wiped on free, never logged */
	const char *ca_file, *cert_file, *key_file; /* NULL: not set */
	int keepalive_s;
	int max_inflight;  /* the owner's window: readings sent and not yet acknowledged */
	size_t max_queued; /* messages cg_publisher_queue() may hold beyond the window */
	size_t ack_batch;  /* acknowledgements that wake the owner (0: 1); see notify */
	double reconnect_min_s, reconnect_max_s;
	/* A cg_mqtt_version_t, and the MQTT 5 session expiry (0: the
	 * session ends with the connection; otherwise every connect asks
	 * for it back). */
	int version;
	uint32_t session_expiry_s;
	const char *status_topic;    /* retained online/offline; the Last Will goes here */
	const char *offline_payload; /* the Last Will, and what a clean stop publishes */
	/* Called from Paho's thread so the owner's loop wakes up: at a
	 * connection change, the first failure, ack_batch acknowledgements
	 * waiting, the last message in flight acknowledged, or the queue below
	 * half of max_queued. Must only signal. */
	void (*notify)(void *ctx);
	void *notify_ctx;
} cg_publisher_opts_t;

/* A reading that will not be taken as it is: the broker answered the
 * PUBLISH with a reason code >= 0x80 (MQTT 5); or, with local set, citygate
 * never sent it, because it is larger than the broker's Maximum Packet Size
 * (reason CG_MQTT_RC_PACKET_TOO_LARGE) or because the MQTT client refused it
 * outright (client_code, Paho's code: a topic that is not valid UTF-8...;
 * reason CG_MQTT_RC_TOPIC_INVALID). Not delivered, and sending it again as
 * it is would only be refused again. */
typedef struct cg_publisher_refusal {
	int64_t seq;
	int reason; /* an MQTT 5 reason code, 0x80 to 0xff */
	bool local;
	int client_code; /* Paho's code when the client refused it, else 0 */
} cg_publisher_refusal_t;

/* Events since the last call to cg_publisher_take(); arrays owned by the publisher. */
typedef struct cg_publisher_events {
	int64_t *acked; /* seqs the broker acknowledged (QoS 1) or that were written (QoS 0) */
	size_t n_acked;
	int64_t *failed; /* seqs whose send failed; they must be sent again */
	size_t n_failed;
	cg_publisher_refusal_t *refused; /* seqs refused for good, in the order refused */
	size_t n_refused;
	uint64_t generation; /* increments on every new connection: resend from the oldest row */
	bool connected;
	size_t n_batches; /* batches (cg_publisher_queue_batch) acknowledged, their seqs in acked */
} cg_publisher_events_t;

/* Sets Paho up for this process (no OpenSSL initialisation of its own, its
 * trace at errors only); cg_publisher_new() calls it. Anything else that
 * makes Paho clients in the process (the benchmark's plain loop) calls it
 * too, so that every client runs with the same Paho. */
void cg_publisher_init_paho(void);

/*
 * Sets Paho's send thread to SCHED_BATCH, so that it no longer preempts the
 * thread that wakes it; returns how many threads were set: 0 when Paho's
 * threads are not running (or run under another name), -errno when the
 * system refused (a seccomp filter without sched_setscheduler).
 * cg_publisher_tick() calls it once per connection; the benchmark's plain
 * loop calls it when asked to.
 *
 * Why: every MQTTAsync_send wakes Paho's send thread. Sent from the PUBACK
 * callback, it runs in Paho's receive thread, which holds Paho's lock
 * there: the woken send thread preempted it, blocked at once on that lock,
 * and was woken again when the lock was free. Switching in and out of those
 * futex waits took 8 % of the process's CPU in a drain (perf, pinned). As
 * SCHED_BATCH the send thread waits for the receive thread to go to sleep
 * or use up its slice, then writes everything queued by then. Nothing
 * waits on it for long: a slice is a few milliseconds, and the window and
 * the keepalive are counted in seconds.
 */
int cg_publisher_batch_sender(void);

/* Creates the client (persistence NONE); copies every string of opts. */
int cg_publisher_new(const cg_publisher_opts_t *opts, cg_publisher_t **out);

/* Drives connecting: starts a connect attempt when disconnected and the
 * reconnect schedule (backoff.h) says so. Call it from the owner's loop, never from a
 * callback. */
void cg_publisher_tick(cg_publisher_t *p, int64_t now_mono_ms);

/* Sends one message (status and health: content type application/json);
 * seq comes back in an event. CG_ESTATE when not connected, CG_EMQTT when
 * Paho refuses, CG_ERANGE when it is larger than the broker takes. Paho
 * copies the payload. */
int cg_publisher_send(cg_publisher_t *p, int64_t seq, const char *topic, const void *payload,
                      size_t len, int qos, bool retained);

/* Queues one message (a reading of the owner's, seq >= 0) and takes
 * ownership of topic and payload, which must come from malloc. On MQTT 5 it
 * carries the payload's content type, the payload format indicator (UTF-8),
 * seq as the user property "seq" and, when expiry_s > 0, that message
 * expiry interval. One larger than the broker's Maximum Packet Size is not
 * sent but reported refused (local). It goes out
 * as soon as the window has room, in the order queued, sent either from
 * this call or from Paho's thread when an acknowledgement frees a place;
 * its seq then comes back in an event like a sent one. CG_ESTATE when not
 * connected, CG_EAGAIN when window and queue are full (ownership stays with
 * the caller). A lost connection drops the queue without reporting it. */
int cg_publisher_queue(cg_publisher_t *p, int64_t seq, char *topic, char *payload, size_t len,
                       int qos, uint32_t expiry_s);

/* Queues one message holding the n readings seqs (a batch, uplink/batch.h),
 * as cg_publisher_queue() does one: it takes one place in the window, carries
 * the user property "seqs" ("first-last") instead of "seq", and when it ends
 * every one of its seqs comes back in an event as acked, failed or refused,
 * as it would alone. seqs is copied; topic and payload are taken on success.
 * CG_ESTATE, CG_EAGAIN as cg_publisher_queue(); CG_EINVAL for n = 0,
 * CG_ENOMEM. */
int cg_publisher_queue_batch(cg_publisher_t *p, const int64_t *seqs, size_t n, char *topic,
                             char *payload, size_t len, int qos, uint32_t expiry_s);

/* Drops every queued message not yet sent, without reporting their seqs:
 * the owner is about to send again from an older row. */
void cg_publisher_discard(cg_publisher_t *p);

/* How many more readings cg_publisher_queue() accepts now: the free part of
 * the window plus the queue's. */
size_t cg_publisher_room(cg_publisher_t *p);

/* Moves the pending events into ev (valid until the next call). */
void cg_publisher_take(cg_publisher_t *p, cg_publisher_events_t *ev);

/* Publishes offline (or, when NULL, the Last Will's payload) as the
 * retained status, waits up to timeout_ms for outstanding acknowledgements,
 * and disconnects. */
void cg_publisher_stop(cg_publisher_t *p, const char *offline, int timeout_ms);


/* Reconnections since start, for health. */
uint64_t cg_publisher_reconnects(const cg_publisher_t *p);

/* The protocol of the current (or last) connection: CG_MQTT_5, CG_MQTT_311,
 * or CG_MQTT_AUTO before the first. */
int cg_publisher_version(const cg_publisher_t *p);

/* The broker's Maximum Packet Size from its CONNACK; 0 when it gave none. */
uint32_t cg_publisher_max_packet(const cg_publisher_t *p);

/* The name of an MQTT 5 reason code ("Not authorized"); never NULL. */
const char *cg_publisher_reason_name(int reason);

/* Why r was refused, in words: Paho's words for a refusal of the client's
 * own, else the reason code's name. Never NULL. */
const char *cg_publisher_refusal_text(const cg_publisher_refusal_t *r);

/* Destroys the client; accepts NULL. Not from a callback. */
void cg_publisher_free(cg_publisher_t *p);

#endif
