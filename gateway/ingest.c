/* Readings in: bus workers hand them over under lock, with the outcome of every
 * poll; the main loop takes them in one swap, stages the readings and gives the
 * outcomes to the sensor availability (gateway/avail.c). One queue for both, so
 * that the main loop sees a poll's readings and its outcome in the order made. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "gateway/gateway_private.h"

void gw_wake(void *ctx)
{
	gw_t *g = ctx;

	pthread_mutex_lock(&g->lock);
	g->woken = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* A queued entry: this header, then either a reading up to its last value in
 * use (a whole cg_reading_t is about 3 KB, mostly room for values few
 * sensors have) or a poll's outcome, padded so that the next header is aligned. */
typedef struct entry {
	size_t size;  /* of the whole entry, header and padding included */
	int format;   /* a reading's */
	bool outcome; /* a cg_poll_outcome_t follows, not a reading */
} entry_t;

#define ENTRY_ALIGN _Alignof(max_align_t)
_Static_assert(sizeof(entry_t) % _Alignof(cg_reading_t) == 0, "a reading follows its header");
_Static_assert(sizeof(entry_t) % _Alignof(cg_poll_outcome_t) == 0, "an outcome follows its header");

static size_t entry_size(const cg_reading_t *r)
{
	size_t n =
	    sizeof(entry_t) + offsetof(cg_reading_t, values) + r->n_values * sizeof(r->values[0]);

	return (n + ENTRY_ALIGN - 1) / ENTRY_ALIGN * ENTRY_ALIGN;
}

/* Makes room for size more bytes in the queue, doubling up to
 * QUEUE_MAX_BYTES; false when the bound (or memory) does not allow it. */
static bool queue_reserve(gw_t *g, size_t size)
{
	size_t cap = g->queue_cap ? g->queue_cap : QUEUE_START_BYTES;
	unsigned char *q;

	if (g->queue_len + size <= g->queue_cap)
		return true;
	if (g->queue_len + size > QUEUE_MAX_BYTES)
		return false;
	while (cap < g->queue_len + size)
		cap *= 2;
	if (cap > QUEUE_MAX_BYTES)
		cap = QUEUE_MAX_BYTES;
	q = realloc(g->queue, cap);
	if (!q)
		return false;
	g->queue = q;
	g->queue_cap = cap;
	return true;
}

/* Whether the queue holds what the loop must take now: the readings it waits
 * for (wake_at, set by gw_wait_for_work()), or a burst before the queue has to
 * grow. Under the gateway's lock. */
static bool loop_must_take(const gw_t *g)
{
	return g->queued >= g->wake_at || g->queue_len >= QUEUE_WAKE_BYTES;
}

void cg_gateway_submit(cg_gateway_t *g, const cg_reading_t *r, int format)
{
	size_t size = entry_size(r);

	pthread_mutex_lock(&g->lock);
	if (queue_reserve(g, size)) {
		entry_t *e = (entry_t *)(g->queue + g->queue_len);

		e->size = size;
		e->format = format;
		e->outcome = false;
		memcpy(e + 1, r,
		       offsetof(cg_reading_t, values) + r->n_values * sizeof(r->values[0]));
		g->queue_len += size;
		g->made++;
	} else {
		g->queue_dropped++;
	}
	/* Only the reading the loop waits for wakes it: a poll's own cost is
	 * small next to waking a thread, and readings that find rows already
	 * waiting for their commit would find the loop with nothing to do;
	 * and a burst, before the queue has to grow. */
	g->queued++;
	if (loop_must_take(g) && !g->woken) {
		g->woken = true;
		pthread_cond_signal(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
}

/* The bus workers' sink. */
void gw_sink(void *ctx, const cg_reading_t *r, int format)
{
	cg_gateway_submit(ctx, r, format);
}

/* The bus workers' outcome sink: queued like a reading, behind the poll's readings.
 * Past QUEUE_MAX_BYTES it is dropped uncounted: the main loop is stuck, and its
 * timer judges the sensor when it runs again. It does not wake the loop: every poll
 * has an outcome, and the loop takes them on its next turn anyway (within
 * loop_wait_ms(), 100 ms at most by default), which a state change can wait for. */
void gw_outcome_sink(void *ctx, const cg_poll_outcome_t *o)
{
	gw_t *g = ctx;
	size_t size = (sizeof(entry_t) + sizeof(*o) + ENTRY_ALIGN - 1) / ENTRY_ALIGN * ENTRY_ALIGN;

	pthread_mutex_lock(&g->lock);
	if (queue_reserve(g, size)) {
		entry_t *e = (entry_t *)(g->queue + g->queue_len);

		e->size = size;
		e->format = -1;
		e->outcome = true;
		memcpy(e + 1, o, sizeof(*o));
		g->queue_len += size;
	}
	pthread_mutex_unlock(&g->lock);
}

/* Waits for a wake-up or until timeout_ms has passed. */
void gw_wait_for_work(gw_t *g, int64_t timeout_ms)
{
	struct timespec ts = cg_mono_deadline(timeout_ms);

	/* A stop request does not end the wait: the main loop's waits are short
	 * (100 ms at most), and the stop sequence waits here for acks. */
	pthread_mutex_lock(&g->lock);
	/* Readings are committed a batch at a time (gw_store_pending): by
	 * PUT_BATCH rows or after batch_ms, and the loop's wait is timed to the
	 * second while rows are pending. So a reading must wake the loop only
	 * when nothing is pending (the first starts the batch's clock) or when it
	 * completes a batch; with 200 sensors at 1 Hz that is a few wake-ups a
	 * second instead of 200. */
	g->wake_at = g->n_pending == 0          ? 1
	             : g->n_pending < PUT_BATCH ? PUT_BATCH - g->n_pending
	                                        : 1;
	if (loop_must_take(g))
		g->woken = true;
	while (!g->woken && pthread_cond_timedwait(&g->cond, &g->lock, &ts) != ETIMEDOUT)
		;
	g->woken = false;
	pthread_mutex_unlock(&g->lock);
}

/* Encodes the queued readings into pending rows: swaps the queue with the
 * loop's own buffer under the lock, then stages outside it. A buffer that a
 * burst made large is given back once the burst is over. */
void gw_take_readings(gw_t *g)
{
	unsigned char *t;
	size_t len, cap;
	cg_reading_t *r = &g->scratch;

	pthread_mutex_lock(&g->lock);
	t = g->queue;
	g->queue = g->work;
	g->work = t;
	len = g->queue_len;
	g->queue_len = 0;
	g->queued = 0;
	cap = g->queue_cap;
	g->queue_cap = g->work_cap;
	g->work_cap = cap;
	pthread_mutex_unlock(&g->lock);

	for (size_t at = 0; at < len;) {
		const entry_t *e = (const entry_t *)(g->work + at);
		const cg_reading_t *q = (const cg_reading_t *)(e + 1);

		if (e->outcome) {
			if (g->avail)
				cg_avail_outcome(g->avail, (const cg_poll_outcome_t *)(e + 1),
				                 cg_mono_ms(), cg_now_ms());
			at += e->size;
			continue;
		}
		memcpy(r, q, offsetof(cg_reading_t, values) + q->n_values * sizeof(q->values[0]));
		gw_stage_with_lots(g, r, e->format);
		at += e->size;
	}
	if (g->work_cap > 256 * 1024 && len < g->work_cap / 8) {
		free(g->work);
		g->work = NULL;
		g->work_cap = 0;
	}
	/* While the disk is full, memory holds what the store cannot; beyond a
	 * bound the oldest go, as the outbox's own limits would do. */
	if (g->n_pending > PENDING_MAX) {
		size_t drop = g->n_pending - PENDING_MAX;
		for (size_t i = 0; i < drop; i++)
			gw_free_row(&g->pending[i]);
		memmove(g->pending, g->pending + drop, PENDING_MAX * sizeof(*g->pending));
		g->n_pending = PENDING_MAX;
		g->pending_dropped += drop;
	}
}
