/* A sensor's availability as a payload: the native state object, or an NGSI-LD Device. */
#include <stdlib.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "uplink/encode_impl.h"

/* The native object, keys in this order: gateway, sensor, state, reason, since,
 * last_ts (null before the first good reading), so that a consumer that only wants the
 * state need not know the rest. */
static void put_native(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_state_msg_t *s)
{
	char ts[32];

	cg_buf_puts(b, "{\"gateway\":");
	cg_buf_json_string(b, ctx->gateway_id);
	cg_buf_puts(b, ",\"sensor\":");
	cg_buf_json_string(b, s->sensor);
	cg_buf_puts(b, ",\"state\":");
	cg_buf_json_string(b, s->state);
	cg_buf_puts(b, ",\"reason\":");
	cg_buf_json_string(b, s->reason);
	cg_rfc3339(s->since_ms, ts, sizeof(ts));
	cg_buf_printf(b, ",\"since\":\"%s\",\"last_ts\":", ts);
	if (s->last_ts_ms) {
		cg_rfc3339(s->last_ts_ms, ts, sizeof(ts));
		cg_buf_printf(b, "\"%s\"}", ts);
	} else {
		cg_buf_puts(b, "null}");
	}
}

/* A Smart Data Models Device entity: deviceState (observedAt: when it took the state),
 * dateLastValueReported (left out before the first good reading: NGSI-LD has no null),
 * citygate's stateReason, and the Device, citygate and core contexts. The id names the
 * gateway and the sensor as the readings' entities do, with type Device. */
static void put_device(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_state_msg_t *s)
{
	char ts[32];

	cg_buf_puts(b, "{\"id\":\"urn:ngsi-ld:Device:");
	cg_ngsi_put_urn_part(b, ctx->gateway_id);
	cg_buf_puts(b, ":");
	cg_ngsi_put_urn_part(b, s->sensor);
	cg_buf_puts(b, "\",\"type\":\"Device\",\"deviceState\":{\"type\":\"Property\",\"value\":");
	cg_buf_json_string(b, s->state);
	cg_rfc3339(s->since_ms, ts, sizeof(ts));
	cg_buf_printf(b, ",\"observedAt\":\"%s\"}", ts);
	if (s->last_ts_ms) {
		cg_rfc3339(s->last_ts_ms, ts, sizeof(ts));
		cg_buf_printf(b,
		              ",\"dateLastValueReported\":{\"type\":\"Property\",\"value\":"
		              "{\"@type\":\"DateTime\",\"@value\":\"%s\"}}",
		              ts);
	}
	cg_buf_puts(b, ",\"stateReason\":{\"type\":\"Property\",\"value\":");
	cg_buf_json_string(b, s->reason);
	cg_buf_printf(b, "},\"@context\":[\"%s\",\"%s\",\"%s\"]}", CG_SDM_CONTEXT_DEVICE,
	              CG_CITYGATE_CONTEXT, CG_NGSI_CORE_CONTEXT);
}

int cg_encode_state(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_state_msg_t *s, char **out,
                    size_t *len)
{
	cg_buf_t b = {0};

	*out = NULL;
	*len = 0;
	if (f == CG_FORMAT_NGSI_LD)
		put_device(&b, ctx, s);
	else
		put_native(&b, ctx, s);
	if (cg_buf_failed(&b)) {
		cg_buf_free(&b);
		return CG_ENOMEM;
	}
	*out = cg_buf_take(&b, len);
	return CG_OK;
}
