/* Readings in: bus workers hand them over under lock; the main loop takes
 * them in one swap and stages them. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/gateway_private.h"

void gw_wake(void *ctx)
{
	gw_t *g = ctx;

	pthread_mutex_lock(&g->lock);
	g->woken = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void cg_gateway_submit(cg_gateway_t *g, const cg_reading_t *r, int format)
{
	pthread_mutex_lock(&g->lock);
	if (g->n_queue == g->cap_queue && g->cap_queue < QUEUE_MAX) {
		size_t cap = g->cap_queue ? g->cap_queue * 2 : 64;
		queued_t *q = realloc(g->queue, cap * sizeof(*q));
		if (q) {
			g->queue = q;
			g->cap_queue = cap;
		}
	}
	if (g->n_queue < g->cap_queue) {
		queued_t *q = &g->queue[g->n_queue++];
		/* The values in use only: a whole reading is about 3 KB, mostly
		 * room for values few sensors have. */
		size_t n = r->n_values;

		if (n > CG_READING_MAX_VALUES)
			n = CG_READING_MAX_VALUES;
		memcpy(&q->r, r, offsetof(cg_reading_t, values) + n * sizeof(r->values[0]));
		q->r.n_values = n;
		q->format = format;
		g->made++;
	} else {
		g->queue_dropped++;
	}
	g->woken = true;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* The bus workers' sink. */
void gw_sink(void *ctx, const cg_reading_t *r, int format)
{
	cg_gateway_submit(ctx, r, format);
}

/* Waits for a wake-up or until timeout_ms has passed. */
void gw_wait_for_work(gw_t *g, int64_t timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (!g->woken && !g->sig->stop &&
	       pthread_cond_timedwait(&g->cond, &g->lock, &ts) != ETIMEDOUT)
		;
	g->woken = false;
	pthread_mutex_unlock(&g->lock);
}

/* Encodes the queued readings into pending rows. */
void gw_take_readings(gw_t *g)
{
	queued_t *t;
	size_t n, c;

	pthread_mutex_lock(&g->lock);
	t = g->queue;
	g->queue = g->work;
	g->work = t;
	n = g->n_queue;
	g->n_queue = 0;
	c = g->cap_queue;
	g->cap_queue = g->cap_work;
	g->cap_work = c;
	pthread_mutex_unlock(&g->lock);

	for (size_t i = 0; i < n; i++)
		gw_stage_with_lots(g, &g->work[i].r, g->work[i].format);
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
