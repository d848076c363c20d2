/* Sensors polled in a query mode they forget on a power cycle: mode, restart detection, warm-up. */
#include "drivers/serial/query_mode.h"

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"

int cg_query_prepare(cg_query_mode_t *q, cg_transport_t *t, cg_frame_parse_fn parse, void *frame,
                     const char *name, const char *sensor, int (*set_mode)(cg_transport_t *t))
{
	size_t unasked = 0;
	int rc;

	if (q->mode_set) {
		rc = cg_serial_pending_frames(t->fd, parse, frame, &unasked);
		if (rc)
			return rc;
		/* One frame may be a late answer; two or more mean streaming. */
		if (unasked >= 2) {
			cg_log(CG_LOG_INFO,
			       "%s %s: sensor sends frames unasked (power cycled?): setting its "
			       "mode again",
			       name, sensor);
			q->mode_set = false;
			q->awake = false;
		}
	}
	if (!q->mode_set) {
		rc = set_mode(t);
		if (rc)
			return rc;
		if (!q->awake)
			q->woke_ms = cg_mono_ms();
		q->awake = true;
		q->mode_set = true;
	}
	return 0;
}

void cg_query_failed(cg_query_mode_t *q, int rc)
{
	q->mode_set = false;
	if (rc == CG_ETIMEDOUT || rc == CG_EIO)
		q->awake = false;
}

bool cg_query_warming(const cg_query_mode_t *q)
{
	return cg_mono_ms() - q->woke_ms < q->warmup_ms;
}
