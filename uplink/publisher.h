/* The publisher: Paho MQTTAsync with our own jittered reconnect and a status topic. */
#ifndef CG_PUBLISHER_H
#define CG_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cg_publisher cg_publisher_t;

typedef struct cg_publisher_opts {
	const char *uri; /* tcp://, ssl://, mqtt://, mqtts:// */
	const char *client_id;
	const char *username; /* NULL: none */
	const char *password; /* NULL: none; copied out of core dumps, wiped on free, never logged */
	const char *ca_file, *cert_file, *key_file; /* NULL: not set */
	int keepalive_s;
	int max_inflight; /* the owner's window: readings sent and not yet acknowledged */
	size_t max_queued; /* messages cg_publisher_queue() may hold beyond the window */
	size_t ack_batch;  /* acknowledgements that wake the owner (0: 1); see notify */
	double reconnect_min_s, reconnect_max_s;
	const char *status_topic;    /* retained online/offline; the Last Will goes here */
	const char *offline_payload; /* the Last Will, and what a clean stop publishes */
	/* Called from Paho's thread so the owner's loop wakes up: at a
	 * connection change, the first failure, ack_batch acknowledgements
	 * waiting, the last message in flight acknowledged, or the queue below
	 * half of max_queued. Must only signal. */
	void (*notify)(void *ctx);
	void *notify_ctx;
} cg_publisher_opts_t;

/* Events since the last call to cg_publisher_take(); arrays owned by the publisher. */
typedef struct cg_publisher_events {
	int64_t *acked; /* seqs the broker acknowledged (QoS 1) or that were written (QoS 0) */
	size_t n_acked;
	int64_t *failed; /* seqs whose send failed; they must be sent again */
	size_t n_failed;
	/* seqs the client refused outright (an invalid topic): sending them again as they
	 * are would fail again, so the owner sets them aside. refused_codes holds Paho's
	 * code for each (cg_publisher_refusal_text). */
	int64_t *refused;
	int64_t *refused_codes;
	size_t n_refused;
	uint64_t generation; /* increments on every new connection: resend from the oldest row */
	bool connected;
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
 * jittered back-off has passed. Call it from the owner's loop, never from a
 * callback. */
void cg_publisher_tick(cg_publisher_t *p, int64_t now_mono_ms);

/* Sends one message; seq comes back in an event. CG_ESTATE when not
 * connected, CG_EMQTT when Paho refuses. Paho copies the payload. */
int cg_publisher_send(cg_publisher_t *p, int64_t seq, const char *topic, const void *payload,
                      size_t len, int qos, bool retained);

/* Queues one message (a reading of the owner's, seq >= 0) and takes
 * ownership of topic and payload, which must come from malloc. It goes out
 * as soon as the window has room, in the order queued, sent either from
 * this call or from Paho's thread when an acknowledgement frees a place;
 * its seq then comes back in an event like a sent one. CG_ESTATE when not
 * connected, CG_EAGAIN when window and queue are full (ownership stays with
 * the caller). A lost connection drops the queue without reporting it. */
int cg_publisher_queue(cg_publisher_t *p, int64_t seq, char *topic, char *payload, size_t len,
                       int qos);

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

/* What a code of refused_codes means, in words. */
const char *cg_publisher_refusal_text(int64_t code);

/* Reconnections since start, for health. */
uint64_t cg_publisher_reconnects(const cg_publisher_t *p);

/* Destroys the client; accepts NULL. Not from a callback. */
void cg_publisher_free(cg_publisher_t *p);

#endif
