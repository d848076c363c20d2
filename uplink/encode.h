/* Encoders: a reading to a payload in the configured format, and its topic. */
#ifndef CG_ENCODE_H
#define CG_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/reading.h"

typedef enum cg_format {
	CG_FORMAT_NATIVE,
	CG_FORMAT_NGSI_LD,
	CG_FORMAT_SENML,
} cg_format_t;

/* What an encoder needs besides the reading: the gateway's identity, and
 * for NGSI-LD the attributes the config gives the reading's entity. */
typedef struct cg_encode_ctx {
	const char *gateway_id;
	bool has_location;
	double lat, lon;
	const char *ngsi_attrs; /* NULL, or what cg_ngsi_attrs_render() made */
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
/* Writes "{prefix}/{gateway}/sensor/{sensor}/state"; CG_ERANGE if it does not fit. Four
 * levels after the prefix, so that "{prefix}/+/+/+" still matches readings only. */
int cg_topic_sensor_state(char *buf, size_t size, const char *prefix, const char *gateway,
                          const char *sensor);

/* A sensor's availability as its retained state topic carries it (gateway/avail.c
 * decides it; docs/topics.md, "Sensor state"). */
typedef struct cg_state_msg {
	const char *sensor;
	const char *state;  /* "online", "offline" or "degraded" */
	const char *reason; /* in words, for an operator */
	int64_t since_ms;   /* epoch ms the sensor took this state */
	int64_t last_ts_ms; /* ts of its last reading of quality ok; 0: none yet */
} cg_state_msg_t;

/* Encodes a sensor's state: an NGSI-LD Device entity for CG_FORMAT_NGSI_LD, the native
 * object (schemas/sensor-state.schema.json) for the others, since SenML has no record
 * for a state. *out is a NUL-terminated string the caller frees, *len its length;
 * CG_ENOMEM. */
int cg_encode_state(cg_format_t f, const cg_encode_ctx_t *ctx, const cg_state_msg_t *s, char **out,
                    size_t *len);

/* The MQTT 5 content type of a payload an encoder made, told by its first
 * bytes as docs/topics.md says a consumer can: "application/senml+json"
 * for a SenML array, "application/ld+json" for an NGSI-LD entity or an
 * array of them (a batch),
 * "application/json" for the rest (native readings, status, health). */
const char *cg_encode_content_type(const char *payload, size_t len);

/* Why name and value cannot be an NGSI-LD attribute given by the config
 * (a sensor's or lot's "ngsi_ld" object), or NULL when they can: the name is
 * a plain term (a letter, then letters, digits, '_') that the entity does not
 * write itself; a name "ref" + capital letter (refParkingSite, refDevice) is
 * a Relationship whose value is a URI; any other is a Property whose value
 * is a string, number, boolean or an array of them. */
const char *cg_ngsi_attr_problem(const char *name, const cJSON *value);

/* Renders an "ngsi_ld" object whose members cg_ngsi_attr_problem() accepted
 * as the text cg_encode_ctx_t.ngsi_attrs holds: one ,"name":{...} per
 * member. *out is NULL for an empty object; CG_ENOMEM. */
int cg_ngsi_attrs_render(const cJSON *obj, char **out);

/* Whether the payload formats can carry a value in unit: an RFC 8428 unit as
 * it is, or one of the units the SenML encoder converts to one (native and
 * NGSI-LD carry them as they are; docs/topics.md). */
bool cg_senml_unit_ok(const char *unit);

/* Those units in words, for --check: "Cel, %RH, ... (RFC 8428), or ug/m3,
 * ... (converted for SenML)". A static string. */
const char *cg_units_hint(void);

/* Format names as in the config ("native", "ngsi-ld", "senml"), and back (-1 when unknown). */
const char *cg_format_name(cg_format_t f);
int cg_format_from_name(const char *s);

#endif
