/* SenML (RFC 8428) packs for readings: one record per value, base name and time on the first. */
#include "uplink/encode_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

/*
 * Units. A pack carries only RFC 8428's own units (its SenML Units registry,
 * less those it marks not recommended), so that it needs no base version:
 * RFC 8798's secondary units (ug/m3, hPa, km/h, ppm) would need the bver of
 * RFC 9100, which RFC 8428 receivers refuse, and ppb is in no registry. A
 * value in another unit is converted to the RFC 8428 unit of the same
 * quantity; mole fractions (ppm, ppb) and percentages become the ratio "/".
 */
static const char *const rfc8428_units[] = {
    "m",   "kg",    "s",   "A",   "K",   "cd",  "mol",  "Hz",    "rad",   "sr",   "N",    "Pa",
    "J",   "W",     "C",   "V",   "F",   "Ohm", "S",    "Wb",    "T",     "H",    "Cel",  "lm",
    "lx",  "Bq",    "Gy",  "Sv",  "kat", "m2",  "m3",   "m/s",   "m/s2",  "m3/s", "W/m2", "cd/m2",
    "bit", "bit/s", "lat", "lon", "pH",  "dB",  "dBW",  "count", "/",     "%RH",  "%EL",  "EL",
    "1/s", "S/m",   "B",   "VA",  "VAs", "var", "vars", "J/m",   "kg/m3",
};

/* Degrees of angle have no RFC 8428 unit: they go out in rad. */
#define PI 3.14159265358979323846

/* value_in_to = value * mul / div; powers of ten as divisors keep the result
 * the double nearest to the exact one (12.3 ug/m3 is 1.23e-08 kg/m3). */
static const struct {
	const char *from, *to;
	double mul, div;
} senml_conversions[] = {
    {"ug/m3", "kg/m3", 1, 1e9}, {"mg/m3", "kg/m3", 1, 1e6}, {"ppm", "/", 1, 1e6},
    {"ppb", "/", 1, 1e9},       {"%", "/", 1, 100},         {"hPa", "Pa", 100, 1},
    {"kPa", "Pa", 1000, 1},     {"km/h", "m/s", 1, 3.6},    {"mm", "m", 1, 1000},
    {"cm", "m", 1, 100},        {"km", "m", 1000, 1},       {"ms", "s", 1, 1000},
    {"min", "s", 60, 1},        {"h", "s", 3600, 1},        {"g", "kg", 1, 1000},
    {"mV", "V", 1, 1000},       {"mA", "A", 1, 1000},       {"kW", "W", 1000, 1},
    {"Wh", "J", 3600, 1},       {"kWh", "J", 3.6e6, 1},     {"l", "m3", 1, 1000},
    {"deg", "rad", PI, 180},
};

/* The conversion of unit, or -1 when it needs none or has none. */
static int conversion_of(const char *unit)
{
	for (size_t i = 0; i < sizeof(senml_conversions) / sizeof(senml_conversions[0]); i++)
		if (strcmp(senml_conversions[i].from, unit) == 0)
			return (int)i;
	return -1;
}

static bool is_rfc8428_unit(const char *unit)
{
	for (size_t i = 0; i < sizeof(rfc8428_units) / sizeof(rfc8428_units[0]); i++)
		if (strcmp(rfc8428_units[i], unit) == 0)
			return true;
	return false;
}

bool cg_senml_unit_ok(const char *unit)
{
	return is_rfc8428_unit(unit) || conversion_of(unit) >= 0;
}

const char *cg_units_hint(void)
{
	static char hint[1024];
	size_t o;

	if (hint[0])
		return hint;
	o = (size_t)snprintf(hint, sizeof(hint), "one of RFC 8428's units (");
	for (size_t i = 0; i < sizeof(rfc8428_units) / sizeof(rfc8428_units[0]) && o < sizeof(hint); i++)
		o += (size_t)snprintf(hint + o, sizeof(hint) - o, "%s%s", i ? " " : "", rfc8428_units[i]);
	if (o < sizeof(hint))
		o += (size_t)snprintf(hint + o, sizeof(hint) - o, "), or one converted to them (");
	for (size_t i = 0; i < sizeof(senml_conversions) / sizeof(senml_conversions[0]) && o < sizeof(hint); i++)
		o += (size_t)snprintf(hint + o, sizeof(hint) - o, "%s%s", i ? " " : "", senml_conversions[i].from);
	if (o < sizeof(hint))
		snprintf(hint + o, sizeof(hint) - o, ")");
	return hint;
}

/* Record names the pack writes itself; a reading value with one of these
 * names is left out rather than made ambiguous. */
static const char *const reserved_names[] = {"seq", "quality", "interval_s", "clock"};

static bool is_reserved(const char *name)
{
	for (size_t i = 0; i < sizeof(reserved_names) / sizeof(reserved_names[0]); i++)
		if (strcmp(reserved_names[i], name) == 0)
			return true;
	return false;
}

/* Appends epoch milliseconds as epoch seconds, with the fraction's trailing
 * zeros trimmed: 1795606800123 -> 1795606800.123, 1795606800500 -> 1795606800.5,
 * 1795606800000 -> 1795606800. Integer arithmetic, so no rounding error. */
void cg_senml_put_seconds(cg_buf_t *b, int64_t ms)
{
	unsigned long long abs_ms = ms < 0 ? 0ULL - (unsigned long long)ms : (unsigned long long)ms;
	unsigned frac = (unsigned)(abs_ms % 1000);
	char digits[4];
	int n = 3;

	cg_buf_printf(b, "%s%llu", ms < 0 ? "-" : "", abs_ms / 1000);
	if (!frac)
		return;
	digits[0] = (char)('0' + frac / 100);
	digits[1] = (char)('0' + frac / 10 % 10);
	digits[2] = (char)('0' + frac % 10);
	while (digits[n - 1] == '0')
		n--;
	digits[n] = '\0';
	cg_buf_printf(b, ".%s", digits);
}

/* Opens a record: the first one ("[{") also carries the base name
 * "urn:dev:{gateway}:{sensor}:" ("urn:dev:{gateway}:{sensor}:lane{N}:" for a
 * lane reading) and the base time, so that bn + n names each
 * quantity and bt is the time of measurement of all of them. */
static void open_record(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r, bool *first)
{
	cg_buf_t bn = {0};

	if (!*first) {
		cg_buf_puts(b, ",{");
		return;
	}
	*first = false;
	cg_buf_printf(&bn, "urn:dev:%s:%s:", ctx->gateway_id, r->sensor);
	if (cg_encode_lane(r))
		cg_buf_printf(&bn, "lane%d:", cg_encode_lane(r));
	if (cg_buf_failed(&bn)) {
		b->failed = true;
		cg_buf_free(&bn);
		return;
	}
	cg_buf_puts(b, "[{\"bn\":");
	cg_buf_json_string(b, bn.data);
	cg_buf_puts(b, ",\"bt\":");
	cg_senml_put_seconds(b, r->ts_ms);
	cg_buf_puts(b, ",");
	cg_buf_free(&bn);
}

/* Writes the values in reading order (numbers as v, in an RFC 8428 unit,
 * converted when the reading's unit is not one; booleans as vb, strings as vs;
 * a number that is not finite is left out, since v must be a number), then
 * interval_s for interval measures (when finite), seq when seq >= 0, the
 * clock flag when the ts is not from a trusted clock, and quality. */
int cg_encode_senml(cg_buf_t *b, const cg_encode_ctx_t *ctx, const cg_reading_t *r, int64_t seq)
{
	bool first = true;

	for (size_t i = 0; i < r->n_values; i++) {
		const cg_value_t *v = &r->values[i];
		int conv;

		if (is_reserved(v->name))
			continue;
		if (v->type == CG_VALUE_NUMBER && !isfinite(v->number))
			continue;
		open_record(b, ctx, r, &first);
		conv = v->unit[0] ? conversion_of(v->unit) : -1;
		cg_buf_puts(b, "\"n\":");
		cg_buf_json_string(b, v->name);
		if (v->unit[0]) {
			cg_buf_puts(b, ",\"u\":");
			cg_buf_json_string(b, conv >= 0 ? senml_conversions[conv].to : v->unit);
		}
		switch (v->type) {
		case CG_VALUE_NUMBER:
			cg_buf_puts(b, ",\"v\":");
			if (conv >= 0)
				cg_buf_json_number(b, v->number * senml_conversions[conv].mul /
				                          senml_conversions[conv].div);
			else if (!cg_encode_put_exact(b, v))
				cg_buf_json_number(b, v->number);
			break;
		case CG_VALUE_BOOL:
			cg_buf_puts(b, v->boolean ? ",\"vb\":true" : ",\"vb\":false");
			break;
		case CG_VALUE_STRING:
			cg_buf_puts(b, ",\"vs\":");
			cg_buf_json_string(b, v->string);
			break;
		}
		cg_buf_puts(b, "}");
	}
	if (r->interval_s > 0 && isfinite(r->interval_s)) {
		open_record(b, ctx, r, &first);
		cg_buf_puts(b, "\"n\":\"interval_s\",\"u\":\"s\",\"v\":");
		cg_buf_json_number(b, r->interval_s);
		cg_buf_puts(b, "}");
	}
	if (seq >= 0) {
		open_record(b, ctx, r, &first);
		cg_buf_printf(b, "\"n\":\"seq\",\"v\":%lld}", (long long)seq);
	}
	if (cg_ts_clock_name(r->ts_clock)) {
		open_record(b, ctx, r, &first);
		cg_buf_printf(b, "\"n\":\"clock\",\"vs\":\"%s\"}", cg_ts_clock_name(r->ts_clock));
	}
	open_record(b, ctx, r, &first);
	cg_buf_puts(b, "\"n\":\"quality\",\"vs\":");
	cg_buf_json_string(b, cg_quality_name(r->quality));
	cg_buf_puts(b, "}]");
	return CG_OK;
}
