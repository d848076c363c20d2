/* The reconnect schedule: doubling windows, one attempt per window at a phase drawn
 * per outage (see backoff.h for why it spreads a fleet). */
#include <math.h>

#include "uplink/backoff.h"

/* splitmix64: small, seedable, and good enough that consecutive seeds (a fleet numbered
 * 1..N) give unrelated phases. */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

void cg_backoff_init(cg_backoff_t *b, double min_s, double max_s, uint64_t seed)
{
	b->min_s = min_s;
	b->max_s = max_s < min_s ? min_s : max_s;
	b->rng = seed;
	cg_backoff_reset(b);
}

void cg_backoff_reset(cg_backoff_t *b)
{
	b->in_outage = false;
	b->start_ms = 0;
	b->phase = 0;
	b->win_start_s = 0;
	b->win_len_s = b->min_s;
}

static int64_t attempt_ms(const cg_backoff_t *b)
{
	return b->start_ms + (int64_t)llround((b->win_start_s + b->phase * b->win_len_s) * 1000.0);
}

static void advance(cg_backoff_t *b, double windows)
{
	b->win_start_s += windows * b->win_len_s;
	if (b->win_len_s < b->max_s) {
		b->win_len_s *= 2;
		if (b->win_len_s > b->max_s)
			b->win_len_s = b->max_s;
	}
}

int64_t cg_backoff_next(cg_backoff_t *b, int64_t now_ms)
{
	int64_t t;

	if (!b->in_outage) {
		b->in_outage = true;
		b->start_ms = now_ms;
		b->phase = (double)(next_u64(&b->rng) >> 11) * 0x1.0p-53;
		b->win_start_s = 0;
		b->win_len_s = b->min_s;
	}
	/* Doubling windows past: a step each (at most log2(max/min) of them). */
	while ((t = attempt_ms(b)) < now_ms && b->win_len_s < b->max_s)
		advance(b, 1);
	if (t < now_ms) {
		/* Capped windows all past (a long attempt, a suspend): jump over them at
		 * once rather than one by one. */
		double behind = (double)(now_ms - t) / 1000.0;

		advance(b, ceil(behind / b->win_len_s));
		t = attempt_ms(b);
		if (t < now_ms) /* rounding */
			t = now_ms;
	}
	advance(b, 1);
	return t;
}
