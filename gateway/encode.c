/* Encoders: a reading to a payload in the configured format, and its topic. */
#include "encode.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "encode_impl.h"
#include "error.h"

static const char *const format_names[] = {
	[CG_FORMAT_NATIVE] = "native",
	[CG_FORMAT_NGSI_LD] = "ngsi-ld",
	[CG_FORMAT_SENML] = "senml",
};

const char *cg_format_name(cg_format_t f)
{
	if ((unsigned)f < sizeof(format_names) / sizeof(format_names[0]))
		return format_names[f];
	return "unknown";
}

int cg_format_from_name(const char *s)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
		if (strcmp(format_names[i], s) == 0)
			return (int)i;
	return -1;
}

/* Appends one value of a reading as a JSON value. */
static void put_value(cg_buf_t *b, const cg_value_t *v)
{
	switch (v->type) {
	case CG_VALUE_NUMBER: cg_buf_json_number(b, v->number); break;
	case CG_VALUE_BOOL: cg_buf_puts(b, v->boolean ? "true" : "false"); break;
	case CG_VALUE_STRING: cg_buf_json_string(b, v->string); break;
	}
}

/* The native format of DESIGN.md: gateway, sensor, kind, seq, ts, values,
 * units (only values that have one), quality, and interval_s for interval
 * measures. Key order is fixed so payloads are easy to diff. */
static void encode_native(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r,
			  int64_t seq)
{
	char ts[32];
	bool first = true;

	cg_rfc3339(r->ts_ms, ts, sizeof(ts));
	cg_buf_puts(b, "{\"gateway\":");
	cg_buf_json_string(b, ctx->gateway_id);
	cg_buf_puts(b, ",\"sensor\":");
	cg_buf_json_string(b, r->sensor);
	cg_buf_puts(b, ",\"kind\":");
	cg_buf_json_string(b, r->kind);
	if (seq >= 0)
		cg_buf_printf(b, ",\"seq\":%lld", (long long)seq);
	cg_buf_printf(b, ",\"ts\":\"%s\"", ts);
	if (r->interval_s > 0) {
		cg_buf_puts(b, ",\"interval_s\":");
		cg_buf_json_number(b, r->interval_s);
	}
	cg_buf_puts(b, ",\"values\":{");
	for (size_t i = 0; i < r->n_values; i++) {
		if (i)
			cg_buf_puts(b, ",");
		cg_buf_json_string(b, r->values[i].name);
		cg_buf_puts(b, ":");
		put_value(b, &r->values[i]);
	}
	cg_buf_puts(b, "},\"units\":{");
	for (size_t i = 0; i < r->n_values; i++) {
		if (!r->values[i].unit[0])
			continue;
		if (!first)
			cg_buf_puts(b, ",");
		first = false;
		cg_buf_json_string(b, r->values[i].name);
		cg_buf_puts(b, ":");
		cg_buf_json_string(b, r->values[i].unit);
	}
	cg_buf_puts(b, "},\"quality\":");
	cg_buf_json_string(b, r->quality);
	cg_buf_puts(b, "}");
}

int cg_encode(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq,
	      char **out, size_t *len)
{
	cg_buf_t b = { 0 };
	int rc = CG_OK;

	switch (f) {
	case CG_FORMAT_NATIVE: encode_native(&b, ctx, r, seq); break;
	case CG_FORMAT_NGSI_LD: rc = cg_encode_ngsi(&b, ctx, r, seq); break;
	case CG_FORMAT_SENML: rc = cg_encode_senml(&b, ctx, r, seq); break;
	default: return CG_EINVAL;
	}
	if (rc == CG_OK && cg_buf_failed(&b))
		rc = CG_ENOMEM;
	if (rc < 0) {
		cg_buf_free(&b);
		return rc;
	}
	*out = cg_buf_take(&b, len);
	return CG_OK;
}

int cg_topic_reading(char *buf, size_t size, const char *prefix, const char *gateway,
		     const char *kind, const char *sensor)
{
	int n = snprintf(buf, size, "%s/%s/%s/%s", prefix, gateway, kind, sensor);

	return (n < 0 || (size_t)n >= size) ? CG_ERANGE : CG_OK;
}

int cg_topic_gateway(char *buf, size_t size, const char *prefix, const char *gateway,
		     const char *leaf)
{
	int n = snprintf(buf, size, "%s/%s/%s", prefix, gateway, leaf);

	return (n < 0 || (size_t)n >= size) ? CG_ERANGE : CG_OK;
}
