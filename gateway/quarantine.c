/* Readings the broker will never take as they are, moved to the outbox's quarantine so
 * that the ones behind them go on, and the operator's retry and drop carried out. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "gateway/gateway_private.h"
#include "uplink/mqtt_text.h"

/* Moves reading seq to quarantine with reason. Logged, when log is set (the caller
 * may log it its own way), at most once a second, with a count of the lines held back:
 * a store of readings with one bad topic would otherwise log a line per reading. A seq
 * no longer held (acknowledged meanwhile) is ignored. Returns whether it moved. */
bool gw_quarantine(gw_t *g, int64_t seq, const char *reason, bool log)
{
	int rc = cg_outbox_quarantine(g->ob, seq, reason, cg_now_ms());
	unsigned long held;

	if (rc == CG_ENOENT)
		return false;
	if (rc < 0) {
		/* It stays in the outbox and is sent again after the next rewind. */
		if (cg_log_allow(&g->quarantine_log, cg_mono_ms(), &held))
			cg_log(CG_LOG_ERR, "outbox: cannot move seq %lld to quarantine: %s",
			       (long long)seq, cg_strerror(rc));
		return false;
	}
	if (!log || !cg_log_allow(&g->quarantine_log, cg_mono_ms(), &held))
		return true;
	if (held)
		cg_log(CG_LOG_WARNING,
		       "outbox: seq %lld moved to quarantine: %s (and %lu more since the last such"
		       " line; citygate --quarantine list)",
		       (long long)seq, reason, held);
	else
		cg_log(CG_LOG_WARNING,
		       "outbox: seq %lld moved to quarantine: %s (citygate --quarantine list)",
		       (long long)seq, reason);
	return true;
}

/* Checks a row's topic before it goes to the publisher, the way a broker would: one it
 * would refuse, or drop the connection over, goes to quarantine instead. Returns true
 * when the row went there. A topic made by this build never fails; one stored by an
 * older config, or damaged on disk, can. */
bool gw_quarantine_bad_topic(gw_t *g, const cg_outbox_row_t *row)
{
	const char *why = cg_mqtt_topic_problem(row->topic, strlen(row->topic));
	char reason[128];

	if (!why)
		return false;
	snprintf(reason, sizeof(reason), "invalid topic: it %s", why);
	gw_quarantine(g, row->seq, reason, true);
	return true;
}

/* Carries out the operator's retry and drop marks (citygate --quarantine), once a
 * second; readings put back are older than what was sent, so sending starts again
 * from the oldest unacknowledged row. */
void gw_quarantine_chores(gw_t *g, int64_t now_mono_ms)
{
	int64_t lowest;

	if (now_mono_ms < g->next_quarantine_ms)
		return;
	g->next_quarantine_ms = now_mono_ms + 1000;
	if (cg_outbox_quarantine_apply(g->ob, &lowest, NULL, NULL) == 0 && lowest < INT64_MAX)
		gw_rewind_cursors(g);
}
