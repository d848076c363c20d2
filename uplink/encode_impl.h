/* Private entry points of the NGSI-LD and SenML encoders, shared by encode.c and their tests. */
#ifndef CG_ENCODE_IMPL_H
#define CG_ENCODE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/reading.h"
#include "uplink/encode.h"

/* The Smart Data Models context of each entity type's domain, citygate's own
 * context (schemas/citygate-context.jsonld: the terms the models lack), and
 * the NGSI-LD core context; every entity's "@context" is
 * [domain, citygate, core]. */
#define CG_CITYGATE_CONTEXT "https://citygate.example/schemas/citygate-context.jsonld"
#define CG_NGSI_CORE_CONTEXT "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
#define CG_SDM_CONTEXT_ENVIRONMENT                                                                 \
	"https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"        \
	"context.jsonld"
#define CG_SDM_CONTEXT_PARKING                                                                     \
	"https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/"            \
	"context.jsonld"
#define CG_SDM_CONTEXT_TRANSPORTATION                                                              \
	"https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/"     \
	"context.jsonld"
#define CG_SDM_CONTEXT_WEATHER                                                                     \
	"https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/"            \
	"context.jsonld"
#define CG_SDM_CONTEXT_DEVICE                                                                      \
	"https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/"             \
	"context.jsonld"

/* Appends s percent-encoded so that only RFC 3986 unreserved characters stay as they
 * are, for one part of an NGSI-LD entity id (a URN whose parts ':' separates). */
void cg_ngsi_put_urn_part(cg_buf_t *b, const char *s);

/* Appends v's exact integer (cg_value_t.exact) in decimal and returns true;
 * false, appending nothing, for any other value. Every format prints exact
 * integers with it, so that no digit is lost to a double. */
bool cg_encode_put_exact(cg_buf_t *b, const cg_value_t *v);

/* The lane a reading is about: its "laneId" value when that is an integer
 * from 1 up (the bus worker's lane split puts one first in every lane
 * reading), else 0. Both NGSI-LD and SenML add it to the reading's identity
 * (entity id, base name), so that the lanes of one sensor, which share a
 * topic and a ts, are separate entities and records. */
int cg_encode_lane(const cg_reading_t *r);

/* Appends r to b as one NGSI-LD normalized entity (see docs/topics.md). seq < 0
 * leaves the seq Property out. Returns CG_OK, or CG_EINVAL for a kind that no
 * Smart Data Model here covers; b may then hold a partial entity. */
int cg_encode_ngsi(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq);

/* Appends r to b as one SenML (RFC 8428) JSON pack. seq < 0 leaves the seq
 * record out. Always returns CG_OK; kept int for symmetry with cg_encode_ngsi. */
int cg_encode_senml(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq);

/* Appends epoch milliseconds as SenML's epoch seconds, the fraction's trailing zeros
 * trimmed: 1795606800123 -> 1795606800.123, 1795606800000 -> 1795606800. */
void cg_senml_put_seconds(cg_buf_t *b, int64_t ms);

/* The Smart Data Models entity type for a reading: "AirQualityObserved",
 * "ParkingSpot" (a parking reading with a "status" value), "OffStreetParking"
 * (any other parking reading), "TrafficFlowObserved", "WeatherObserved"; NULL
 * for other kinds. */
const char *cg_ngsi_entity_type(const cg_reading_t *r);

/* The UN/CEFACT common code for a SenML unit symbol ("ug/m3" -> "GQ"), or
 * NULL when the unit has none here. */
const char *cg_ngsi_unit_code(const char *senml_unit);

#endif
