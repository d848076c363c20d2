/* NGSI-LD normalized entities for readings, following the FIWARE Smart Data Models. */
#include "uplink/encode_impl.h"

#include <math.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"

/* SenML unit symbols and their UN/CEFACT common codes (Recommendation 20),
 * which NGSI-LD's unitCode expects. A unit missing here gets no unitCode:
 * better none than a wrong one. */
static const struct {
	const char *senml;
	const char *cefact;
} unit_codes[] = {
    {"ug/m3", "GQ"},  /* microgram per cubic metre */
    {"mg/m3", "GP"},  /* milligram per cubic metre */
    {"ppm", "59"},    /* part per million */
    {"ppb", "61"},    /* part per billion */
    {"Cel", "CEL"},   /* degree Celsius */
    {"K", "KEL"},     /* kelvin */
    {"%RH", "P1"},    /* percent (when not turned into a fraction) */
    {"%", "P1"},      /* percent */
    {"/", "C62"},     /* one: a dimensionless ratio */
    {"count", "C62"}, /* one: a number of things */
    {"hPa", "A97"},   /* hectopascal */
    {"Pa", "PAL"},    /* pascal */
    {"kPa", "KPA"},   /* kilopascal */
    {"km/h", "KMH"},  /* kilometre per hour */
    {"m/s", "MTS"},   /* metre per second */
    {"m", "MTR"},     /* metre */
    {"mm", "MMT"},    /* millimetre */
    {"s", "SEC"},     /* second */
    {"min", "MIN"},   /* minute */
    {"h", "HUR"},     /* hour */
    {"lx", "LUX"},    /* lux */
    {"dB", "2N"},     /* decibel */
    {"V", "VLT"},     /* volt */
    {"A", "AMP"},     /* ampere */
    {"W", "WTT"},     /* watt */
    {"Hz", "HTZ"},    /* hertz */
    {"deg", "DD"},    /* degree of angle */
};

/* Attribute names the entity writes itself. A reading value with one of these
 * names is left out rather than written as a second, conflicting key. */
static const char *const reserved_names[] = {
    "id",
    "type",
    "@context",
    "location",
    "dateObserved",
    "dateObservedFrom",
    "dateObservedTo",
    "observationDateTime",
    "dataQuality",
    "clock",
    "seq",
};

/* Quantities that the Smart Data Models express as a fraction 0-1, while a
 * sensor may report them in percent. */
static const char *const fraction_names[] = {"relativeHumidity", "occupancy"};

static bool in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

#define IN_LIST(list, s) in_list((list), sizeof(list) / sizeof((list)[0]), (s))

const char *cg_ngsi_unit_code(const char *senml_unit)
{
	for (size_t i = 0; i < sizeof(unit_codes) / sizeof(unit_codes[0]); i++)
		if (strcmp(unit_codes[i].senml, senml_unit) == 0)
			return unit_codes[i].cefact;
	return NULL;
}

const char *cg_ngsi_entity_type(const cg_reading_t *r)
{
	switch (r->kind) {
	case CG_KIND_AIR_QUALITY: return "AirQualityObserved";
	case CG_KIND_PARKING:
		return cg_reading_find(r, "status") ? "ParkingSpot" : "OffStreetParking";
	case CG_KIND_TRAFFIC: return "TrafficFlowObserved";
	case CG_KIND_WEATHER: return "WeatherObserved";
	default: return NULL;
	}
}

/* The attribute that carries the time of measurement in the entity type's
 * model: dateObserved in the Environment and Transportation models,
 * observationDateTime for OffStreetParking; none for ParkingSpot, whose
 * model puts the time on status (its observedAt). */
static const char *time_attribute(const char *type)
{
	if (strcmp(type, "OffStreetParking") == 0)
		return "observationDateTime";
	if (strcmp(type, "ParkingSpot") == 0)
		return NULL;
	return "dateObserved";
}

/* Whether name is a plain term: a letter, then letters, digits and '_'. */
static bool plain_term(const char *name)
{
	if (!((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z')))
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

/* Whether an attribute called name is a Relationship: "ref" + capital letter,
 * the Smart Data Models' naming of references to other entities. */
static bool is_relationship(const char *name)
{
	return strncmp(name, "ref", 3) == 0 && name[3] >= 'A' && name[3] <= 'Z';
}

/* Whether s is an absolute URI: a scheme (a letter, then letters, digits,
 * '+', '-', '.'), ':', then at least one character and no spaces. */
static bool is_uri(const char *s)
{
	const char *c = s;

	if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z')))
		return false;
	while ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
	       *c == '+' || *c == '-' || *c == '.')
		c++;
	if (*c != ':' || !c[1])
		return false;
	for (c++; *c; c++)
		if ((unsigned char)*c <= ' ')
			return false;
	return true;
}

/* Whether v is a string, number or boolean. */
static bool is_scalar(const cJSON *v)
{
	return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v);
}

const char *cg_ngsi_attr_problem(const char *name, const cJSON *value)
{
	const cJSON *e;

	if (!plain_term(name))
		return "must be a plain term: a letter, then letters, digits or _";
	if (IN_LIST(reserved_names, name))
		return "is an attribute the entity writes itself";
	if (is_relationship(name))
		return cJSON_IsString(value) && is_uri(value->valuestring)
		           ? NULL
		           : "a Relationship (ref...): must be the URI of the entity it refers to, "
		             "e.g. \"urn:ngsi-ld:OffStreetParking:gw-1:lot-1\"";
	if (is_scalar(value))
		return NULL;
	if (!cJSON_IsArray(value) || !value->child)
		return "a Property: must be a string, number, boolean or a non-empty array of them";
	cJSON_ArrayForEach(e, value)
	{
		if (!is_scalar(e))
			return "a Property: must be a string, number, boolean or a non-empty array "
			       "of them";
	}
	return NULL;
}

int cg_ngsi_attrs_render(const cJSON *obj, char **out)
{
	cg_buf_t b = {0};
	const cJSON *a;
	size_t len;

	*out = NULL;
	cJSON_ArrayForEach(a, obj)
	{
		char *value = cJSON_PrintUnformatted(a);

		if (!value) {
			cg_buf_free(&b);
			return CG_ENOMEM;
		}
		cg_buf_puts(&b, ",");
		cg_buf_json_string(&b, a->string);
		cg_buf_printf(&b,
		              is_relationship(a->string)
		                  ? ":{\"type\":\"Relationship\",\"object\":%s}"
		                  : ":{\"type\":\"Property\",\"value\":%s}",
		              value);
		cJSON_free(value);
	}
	if (cg_buf_failed(&b)) {
		cg_buf_free(&b);
		return CG_ENOMEM;
	}
	if (b.data)
		*out = cg_buf_take(&b, &len);
	return CG_OK;
}

/* Whether the config's attributes (rendered, see cg_ngsi_attrs_render())
 * include one called name: a reading value of that name is then left out
 * rather than written as a second key. ,"name":{ only occurs where a member
 * starts: values hold no objects, and a '"' inside a string is escaped. */
static bool attr_given(const char *attrs, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = attrs; p && (p = strstr(p, name)); p += n)
		if (p >= attrs + 2 && p[-2] == ',' && p[-1] == '"' &&
		    strncmp(p + n, "\":{", 3) == 0)
			return true;
	return false;
}

/* The Smart Data Models context of an entity type's domain. */
static const char *domain_context(const char *type)
{
	if (strcmp(type, "AirQualityObserved") == 0)
		return CG_SDM_CONTEXT_ENVIRONMENT;
	if (strcmp(type, "TrafficFlowObserved") == 0)
		return CG_SDM_CONTEXT_TRANSPORTATION;
	if (strcmp(type, "WeatherObserved") == 0)
		return CG_SDM_CONTEXT_WEATHER;
	return CG_SDM_CONTEXT_PARKING;
}

/* Ids are free text in the config, but an entity id must be a valid URI, and
 * ':' must keep separating the URN's parts. */
void cg_ngsi_put_urn_part(cg_buf_t *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		             (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
		             *p == '~';
		char esc[3] = {'%', hex[*p >> 4], hex[*p & 0xf]};

		if (plain)
			cg_buf_append(b, (const char *)p, 1);
		else
			cg_buf_append(b, esc, 3);
	}
}

/* Appends ,"name":{"type":"Property","value":{"@type":"DateTime","@value":TS}}. */
static void put_datetime(cg_buf_t *b, const char *name, int64_t ms)
{
	char ts[32];

	cg_rfc3339(ms, ts, sizeof(ts));
	cg_buf_printf(b,
	              ",\"%s\":{\"type\":\"Property\",\"value\":{\"@type\":\"DateTime\","
	              "\"@value\":\"%s\"}}",
	              name, ts);
}

/* Appends one measure as a Property with observedAt and, for numbers with a
 * known unit, unitCode. Fractions reported in percent are divided by 100.
 * Non-finite numbers are left out by the caller: NGSI-LD forbids null values. */
static void put_measure(cg_buf_t *b, const cg_value_t *v, const char *observed_at)
{
	double number = v->number;
	const char *code = v->unit[0] ? cg_ngsi_unit_code(v->unit) : NULL;
	bool converted = false;

	if (v->type == CG_VALUE_NUMBER && IN_LIST(fraction_names, v->name) &&
	    (strcmp(v->unit, "%") == 0 || strcmp(v->unit, "%RH") == 0)) {
		number /= 100.0;
		code = "C62";
		converted = true;
	}
	cg_buf_puts(b, ",");
	cg_buf_json_string(b, v->name);
	cg_buf_puts(b, ":{\"type\":\"Property\",\"value\":");
	switch (v->type) {
	case CG_VALUE_NUMBER:
		if (converted || !cg_encode_put_exact(b, v))
			cg_buf_json_number(b, number);
		break;
	case CG_VALUE_BOOL: cg_buf_puts(b, v->boolean ? "true" : "false"); break;
	case CG_VALUE_STRING: cg_buf_json_string(b, v->string); break;
	}
	cg_buf_printf(b, ",\"observedAt\":\"%s\"", observed_at);
	if (code && v->type == CG_VALUE_NUMBER)
		cg_buf_printf(b, ",\"unitCode\":\"%s\"", code);
	cg_buf_puts(b, "}");
}

/* Writes the entity in a fixed key order: id ("...:{gateway}:{sensor}", plus
 * ":lane{N}" for a lane reading), type, the model's time attribute (see
 * time_attribute()), the interval (dateObservedFrom, dateObservedTo) when the
 * reading covers one and the model has them, location, the config's
 * attributes, the measures in reading order, dataQuality, clock (when
 * flagged), seq, @context. */
int cg_encode_ngsi(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq)
{
	const char *type = cg_ngsi_entity_type(r);
	const char *time_attr;
	char ts[32];

	if (!type)
		return CG_EINVAL;
	cg_rfc3339(r->ts_ms, ts, sizeof(ts));

	cg_buf_printf(b, "{\"id\":\"urn:ngsi-ld:%s:", type);
	cg_ngsi_put_urn_part(b, ctx->gateway_id);
	cg_buf_puts(b, ":");
	cg_ngsi_put_urn_part(b, r->sensor);
	if (cg_encode_lane(r))
		cg_buf_printf(b, ":lane%d", cg_encode_lane(r));
	cg_buf_printf(b, "\",\"type\":\"%s\"", type);
	time_attr = time_attribute(type);
	if (time_attr)
		put_datetime(b, time_attr, r->ts_ms);
	if (time_attr && strcmp(time_attr, "dateObserved") == 0 && r->interval_s > 0 &&
	    isfinite(r->interval_s)) {
		/* Rounded to the millisecond (interval_s > 0, so adding 0.5 rounds),
		 * and bounded so that the conversion cannot overflow. */
		double span_ms = r->interval_s * 1000.0 + 0.5;
		int64_t from_ms = r->ts_ms - (int64_t)(span_ms < 9e15 ? span_ms : 9e15);

		put_datetime(b, "dateObservedFrom", from_ms);
		put_datetime(b, "dateObservedTo", r->ts_ms);
	}
	if (ctx->has_location) {
		/* GeoJSON orders coordinates longitude first. */
		cg_buf_puts(b,
		            ",\"location\":{\"type\":\"GeoProperty\",\"value\":{\"type\":\"Point\","
		            "\"coordinates\":[");
		cg_buf_json_number(b, ctx->lon);
		cg_buf_puts(b, ",");
		cg_buf_json_number(b, ctx->lat);
		cg_buf_puts(b, "]}}");
	}
	if (ctx->ngsi_attrs)
		cg_buf_puts(b, ctx->ngsi_attrs);
	for (size_t i = 0; i < r->n_values; i++) {
		const cg_value_t *v = &r->values[i];

		if (IN_LIST(reserved_names, v->name) || attr_given(ctx->ngsi_attrs, v->name))
			continue;
		if (v->type == CG_VALUE_NUMBER && !isfinite(v->number))
			continue;
		put_measure(b, v, ts);
	}
	cg_buf_puts(b, ",\"dataQuality\":{\"type\":\"Property\",\"value\":");
	cg_buf_json_string(b, cg_quality_name(r->quality));
	cg_buf_puts(b, "}");
	if (cg_ts_clock_name(r->ts_clock))
		cg_buf_printf(b, ",\"clock\":{\"type\":\"Property\",\"value\":\"%s\"}",
		              cg_ts_clock_name(r->ts_clock));
	if (seq >= 0)
		cg_buf_printf(b, ",\"seq\":{\"type\":\"Property\",\"value\":%lld}", (long long)seq);
	cg_buf_printf(b, ",\"@context\":[\"%s\",\"%s\",\"%s\"]}", domain_context(type),
	              CG_CITYGATE_CONTEXT, CG_NGSI_CORE_CONTEXT);
	return CG_OK;
}
