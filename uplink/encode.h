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

/* Format names as in the config ("native", "ngsi-ld", "senml"), and back (-1 when unknown). */
const char *cg_format_name(cg_format_t f);
int cg_format_from_name(const char *s);

#endif
