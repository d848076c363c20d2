/* The wall clock as the daemon sees it: whether it is trusted, the readings made while
 * it is not (flagged, and corrected before they are published once it is), and the
 * store's own clock, which never jumps. */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "gateway/gateway_private.h"

/* A reading whose wall-minus-boot offset differs from the clock's by more than this was
 * made before the wall clock stepped; less is the drift of NTP slewing. */
#define STEP_MS 500

/*
 * Design (docs/reliability.md, "Clock"). Every reading carries its ts and the same
 * instant on CLOCK_BOOTTIME (cg_reading_stamp). Staging compares the two with the
 * clock's present offset: a reading made before a step to a trusted clock is corrected
 * there and then; one staged while the clock is not trusted is encoded with the flag
 * "unsynced" and its seq is added to a segment, a run of consecutive seqs made with one
 * offset. When the clock becomes trusted, each open segment is resolved once: its rows
 * move by the difference of the offsets, except rows already handed to the publisher
 * (they were published flagged, and a published ts never changes). The stored payloads
 * are not rewritten: gw_clock_fix_row() corrects a row each time it is handed to the
 * publisher, the same way every time, so a replay sends the same bytes. The hot path
 * pays one comparison of offsets per reading and, per row sent, one range check
 * against the segments. Segments live in memory: a reading made before a restart keeps
 * its flag.
 */

/* The segment holding seq, or NULL. Segments are in seq order and do not overlap. */
static const clock_segment_t *find_segment(const struct gw_clock *c, int64_t seq)
{
	size_t lo = 0, hi = c->n_segs;

	if (c->n_segs == 0 || seq < c->segs[0].first_seq || seq > c->segs[c->n_segs - 1].last_seq)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->segs[mid].last_seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n_segs && c->segs[lo].first_seq <= seq ? &c->segs[lo] : NULL;
}

/* Fixes each open segment's correction now that the clock is trusted: its ts move by
 * the offset now minus the offset they were made with, from the first seq not yet
 * handed to the publisher on. */
static void resolve(struct gw_clock *c)
{
	for (size_t i = 0; i < c->n_segs; i++) {
		clock_segment_t *s = &c->segs[i];

		if (s->resolved)
			continue;
		s->resolved = true;
		s->delta_ms = c->offset_ms - s->offset_ms;
		s->correct_from = c->sent_max + 1 > s->first_seq ? c->sent_max + 1 : s->first_seq;
		if (s->last_seq >= s->correct_from)
			c->corrected += (uint64_t)(s->last_seq - s->correct_from + 1);
	}
}

/* Judges the wall clock again (base/clock.h says how) and notes its offset from the
 * boot clock. A change of state is logged; becoming trusted resolves the segments. */
void gw_clock_judge(gw_t *g)
{
	struct gw_clock *c = &g->clock;
	int64_t wall = cg_now_ms();
	cg_clock_state_t st = cg_clock_judge((cg_clock_policy_t)g->cfg->clock_policy, wall,
	                                     c->newest_ts);
	bool was_trusted = c->judged && cg_clock_trusted(c->state);
	uint64_t corrected = c->corrected;
	char ts[32];

	c->offset_ms = wall - cg_boot_ms();
	if (c->judged && st == c->state)
		return;
	cg_rfc3339(wall, ts, sizeof(ts));
	if (cg_clock_trusted(st)) {
		if (!was_trusted)
			resolve(c);
		cg_log(CG_LOG_INFO,
		       "clock: the wall clock reads %s, trusted (%s, gateway.clock %s)%s", ts,
		       cg_clock_state_name(st),
		       cg_clock_policy_name((cg_clock_policy_t)g->cfg->clock_policy),
		       c->judged ? "" : "; readings are stamped with it");
		if (c->corrected > corrected)
			cg_log(CG_LOG_INFO,
			       "clock: %llu readings made before get their ts corrected before "
			       "they are published",
			       (unsigned long long)(c->corrected - corrected));
	} else {
		cg_log(CG_LOG_WARNING,
		       "clock: the wall clock reads %s, not trusted (%s, gateway.clock %s); "
		       "readings are flagged \"clock\":\"unsynced\" until it is",
		       ts, cg_clock_state_name(st),
		       cg_clock_policy_name((cg_clock_policy_t)g->cfg->clock_policy));
	}
	c->state = st;
	c->judged = true;
}

/* Called when the outbox has been opened (at start and by a reload): the store's clock
 * continues from the newest row it holds (so ages never go negative; time the gateway
 * was off is not counted), and the newest trusted ts is that of the last row held. */
void gw_clock_open(gw_t *g)
{
	struct gw_clock *c = &g->clock;
	cg_outbox_stats_t os = {0};
	cg_outbox_row_t *rows = NULL;
	size_t n = 0;
	int64_t boot = cg_boot_ms();

	cg_outbox_stats(g->ob, &os);
	if (os.newest_ms - boot > c->store_base)
		c->store_base = os.newest_ms - boot;
	if (os.rows > 0 &&
	    cg_outbox_fetch(g->ob, os.next_seq - 65, 0, 64, &rows, &n) == 0 && n > 0) {
		int64_t ts;
		cg_ts_clock_t flag;

		if (cg_encode_payload_ts(rows[n - 1].payload, rows[n - 1].len, &ts, &flag) == 0 &&
		    flag != CG_TS_UNSYNCED && ts > c->newest_ts)
			c->newest_ts = ts;
	}
	cg_outbox_rows_free(rows, n);
	gw_clock_judge(g);
}

int64_t gw_store_now(const gw_t *g)
{
	return g->clock.store_base + cg_boot_ms();
}

/* Decides the ts and flag of a reading about to be staged: r itself when it was made
 * with the trusted clock as it is; otherwise a copy in *copy, corrected (made before a
 * step to a trusted clock) or flagged "unsynced". */
const cg_reading_t *gw_clock_check(gw_t *g, const cg_reading_t *r, cg_reading_t *copy)
{
	struct gw_clock *c = &g->clock;
	int64_t off = r->boot_ms ? r->ts_ms - r->boot_ms : c->offset_ms;

	if (!cg_clock_trusted(c->state) || llabs(off - c->offset_ms) > STEP_MS)
		gw_clock_judge(g);
	if (r->boot_ms == 0)
		off = c->offset_ms;
	if (cg_clock_trusted(c->state) && llabs(off - c->offset_ms) <= STEP_MS) {
		if (r->ts_ms > c->newest_ts)
			c->newest_ts = r->ts_ms;
		return r;
	}
	/* Only the values in use: a whole reading is about 3 KB. */
	memcpy(copy, r, offsetof(cg_reading_t, values) + r->n_values * sizeof(r->values[0]));
	if (cg_clock_trusted(c->state)) {
		copy->ts_ms = r->boot_ms + c->offset_ms;
		copy->ts_clock = CG_TS_CORRECTED;
		c->corrected++;
		if (copy->ts_ms > c->newest_ts)
			c->newest_ts = copy->ts_ms;
	} else {
		copy->ts_clock = CG_TS_UNSYNCED;
	}
	return copy;
}

/* Notes a reading staged with seq: one flagged "unsynced" joins the last segment when
 * it follows it with the same offset, or starts one. Past CLOCK_SEGMENTS_MAX (a clock
 * stepped that often while untrusted) a reading just keeps its flag. */
void gw_clock_staged(gw_t *g, const cg_reading_t *r, int64_t seq)
{
	struct gw_clock *c = &g->clock;
	int64_t off = r->boot_ms ? r->ts_ms - r->boot_ms : c->offset_ms;
	clock_segment_t *s = c->n_segs ? &c->segs[c->n_segs - 1] : NULL;

	if (r->ts_clock != CG_TS_UNSYNCED)
		return;
	c->flagged++;
	if (s && !s->resolved && s->last_seq == seq - 1 && llabs(off - s->offset_ms) <= STEP_MS) {
		s->last_seq = seq;
		return;
	}
	if (c->n_segs == CLOCK_SEGMENTS_MAX)
		return;
	if (c->n_segs == c->cap_segs) {
		size_t cap = c->cap_segs ? c->cap_segs * 2 : 8;
		clock_segment_t *p = realloc(c->segs, cap * sizeof(*p));

		if (!p)
			return;
		c->segs = p;
		c->cap_segs = cap;
	}
	c->segs[c->n_segs++] = (clock_segment_t){
	    .first_seq = seq, .last_seq = seq, .offset_ms = off};
}

/* Corrects a row about to be handed to the publisher if its segment is resolved and it
 * was not handed over before that; the same row always gets the same bytes. */
void gw_clock_fix_row(gw_t *g, cg_outbox_row_t *row)
{
	const clock_segment_t *s = find_segment(&g->clock, row->seq);
	char *payload;
	size_t len;

	if (!s || !s->resolved || row->seq < s->correct_from)
		return;
	if (cg_encode_retime(row->payload, row->len, s->delta_ms, &payload, &len) < 0)
		return;
	free(row->payload);
	row->payload = payload;
	row->len = len;
}

/* Notes a row handed to the publisher: a segment resolved later leaves it as sent. */
void gw_clock_sent(gw_t *g, int64_t seq)
{
	if (seq > g->clock.sent_max)
		g->clock.sent_max = seq;
}

/* Appends the health message's "clock" object. */
void gw_clock_health(const gw_t *g, cg_buf_t *b)
{
	const struct gw_clock *c = &g->clock;

	cg_buf_printf(b,
	              ",\"clock\":{\"policy\":\"%s\",\"state\":\"%s\",\"trusted\":%s,"
	              "\"readings_flagged\":%llu,\"readings_corrected\":%llu}",
	              cg_clock_policy_name((cg_clock_policy_t)g->cfg->clock_policy),
	              cg_clock_state_name(c->state), cg_clock_trusted(c->state) ? "true" : "false",
	              (unsigned long long)c->flagged, (unsigned long long)c->corrected);
}

void gw_clock_free(gw_t *g)
{
	free(g->clock.segs);
	g->clock.segs = NULL;
	g->clock.n_segs = g->clock.cap_segs = 0;
}
