/* Encoders: a reading to a payload in the configured format, and its topic. */
#ifndef CG_ENCODE_H
#define CG_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/reading.h"

typedef enum cg_format {
	CG_FORMAT_NATIVE,
	CG_FORMAT_NGSI_LD,
	CG_FORMAT_SENML,
} cg_format_t;

/* What an encoder needs besides the reading: the gateway's identity. */
typedef struct cg_encode_ctx {
	const char *gateway_id;
	bool has_location;
	double lat, lon;
} cg_encode_ctx_t;

/* Encodes r as format f. seq < 0 leaves seq out (--once has none). *out is a
 * NUL-terminated string the caller frees, *len its length. CG_ENOMEM, or
 * CG_EINVAL for an unknown format or a kind or quality outside their enums. */
int cg_encode(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq,
              char **out, size_t *len);

/* Corrects a stored payload whose ts was flagged "unsynced": every time in it (native
 * ts; NGSI-LD dateObserved, dateObservedFrom/To, observedAt; SenML bt) moves by
 * delta_ms and the flag becomes "corrected"; nothing else changes, byte for byte.
 * *out is a new NUL-terminated payload the caller frees. CG_EINVAL when the payload
 * has no "unsynced" flag or a time in it cannot be read (it is then left as it is). */
int cg_encode_retime(const char *in, size_t len, int64_t delta_ms, char **out, size_t *out_len);

/* The ts of a payload in any of the three formats, and its clock flag. CG_EINVAL when
 * there is none to be read. */
int cg_encode_payload_ts(const char *in, size_t len, int64_t *ts_ms, cg_ts_clock_t *clock);

/* Writes "{prefix}/{gateway}/{kind}/{sensor}" into buf; CG_ERANGE if it does not fit. */
int cg_topic_reading(char *buf, size_t size, const char *prefix, const char *gateway,
                     const char *kind, const char *sensor);
/* Writes "{prefix}/{gateway}/{leaf}" ("status", "health"); CG_ERANGE if it does not fit. */
int cg_topic_gateway(char *buf, size_t size, const char *prefix, const char *gateway,
                     const char *leaf);

/* The MQTT 5 content type of a payload an encoder made, told by its first
 * bytes as docs/topics.md says a consumer can: "application/senml+json"
 * for a SenML array, "application/ld+json" for an NGSI-LD entity,
 * "application/json" for the rest (native readings, status, health). */
const char *cg_encode_content_type(const char *payload, size_t len);

/* Whether a SenML pack can carry a value in unit: an RFC 8428 unit as it is,
 * or one of the units the SenML encoder converts to one (docs/topics.md). */
bool cg_senml_unit_ok(const char *unit);

/* Format names as in the config ("native", "ngsi-ld", "senml"), and back (-1 when unknown). */
const char *cg_format_name(cg_format_t f);
int cg_format_from_name(const char *s);

#endif
