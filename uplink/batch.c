/* Batches: many encoded readings of one format in one MQTT payload (docs/topics.md, "Batches"). */
#include "uplink/batch.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/error.h"

/* Deeper than any payload an encoder makes (native values are flat). */
#define JSON_DEPTH_MAX 16

/* A layout: a kind with its value names and units, as the payload writes it:
 * {"kind":K,"names":[...],"units":[...]}. Two readings share one when that
 * text is the same. */
typedef struct layout {
	char *text;
	size_t len;
} layout_t;

/* The readings of one sensor with one layout, each {"seq":..}, joined by ','. */
typedef struct group {
	char *sensor; /* the JSON string as the reading wrote it, quotes included */
	size_t sensor_len;
	size_t layout;
	cg_buf_t readings;
	size_t size; /* bytes of the whole {"sensor":...} object */
} group_t;

/* What the last add changed, so that it can be taken back (cg_batch_add with CG_ERANGE). */
typedef struct undo {
	size_t n_layouts, n_groups;
	size_t group;        /* the group it went into */
	size_t readings_len; /* that group's readings before */
	size_t group_size;
	size_t size;
	size_t body_len; /* senml, ngsi-ld */
} undo_t;

struct cg_batch {
	cg_format_t format;
	char *gateway; /* as a JSON string */
	int64_t *seqs;
	size_t n, cap;
	size_t size; /* the payload's length so far */
	/* native */
	layout_t *layouts;
	size_t n_layouts, cap_layouts;
	group_t *groups;
	size_t n_groups, cap_groups;
	/* senml, ngsi-ld: the members so far, joined by ',' */
	cg_buf_t body;
};

/* The native envelope's fixed parts. */
static const char env_open[] = "{\"gateway\":";
static const char env_layouts[] = ",\"layouts\":[";
static const char env_sensors[] = "],\"sensors\":[";
static const char env_close[] = "]}";
#define LIT(s) (sizeof(s) - 1)

int cg_batch_new(cg_format_t f, const char *gateway_id, cg_batch_t **out)
{
	cg_batch_t *b = calloc(1, sizeof(*b));
	cg_buf_t gw = {0};

	*out = NULL;
	if (!b)
		return CG_ENOMEM;
	cg_buf_json_string(&gw, gateway_id);
	if (cg_buf_failed(&gw)) {
		free(b);
		cg_buf_free(&gw);
		return CG_ENOMEM;
	}
	b->format = f;
	b->gateway = cg_buf_take(&gw, NULL);
	cg_batch_reset(b);
	*out = b;
	return CG_OK;
}

void cg_batch_reset(cg_batch_t *b)
{
	for (size_t i = 0; i < b->n_layouts; i++)
		free(b->layouts[i].text);
	for (size_t i = 0; i < b->n_groups; i++) {
		free(b->groups[i].sensor);
		cg_buf_free(&b->groups[i].readings);
	}
	b->n_layouts = 0;
	b->n_groups = 0;
	b->n = 0;
	b->body.len = 0;
	b->body.failed = false;
	if (b->format == CG_FORMAT_NATIVE)
		b->size = LIT(env_open) + strlen(b->gateway) + LIT(env_layouts) + LIT(env_sensors) +
		          LIT(env_close);
	else
		b->size = 2; /* [] */
}

void cg_batch_free(cg_batch_t *b)
{
	if (!b)
		return;
	cg_batch_reset(b);
	free(b->layouts);
	free(b->groups);
	cg_buf_free(&b->body);
	free(b->seqs);
	free(b->gateway);
	free(b);
}

int cg_batch_format_of(const char *payload, size_t len)
{
	static const char ngsi[] = "{\"id\":\"urn:ngsi-ld:";

	if (len >= LIT(ngsi) && memcmp(payload, ngsi, LIT(ngsi)) == 0)
		return CG_FORMAT_NGSI_LD;
	if (len > 0 && payload[0] == '{')
		return CG_FORMAT_NATIVE;
	if (len > 0 && payload[0] == '[')
		return CG_FORMAT_SENML;
	return -1;
}

size_t cg_batch_count(const cg_batch_t *b)
{
	return b->n;
}

const int64_t *cg_batch_seqs(const cg_batch_t *b)
{
	return b->seqs;
}

size_t cg_batch_len(const cg_batch_t *b)
{
	return b->size;
}

/*
 * A JSON scanner over a payload read back from the disk: it checks the
 * syntax (so that a damaged payload is set aside rather than breaking the
 * batch it would be copied into) and returns the spans of values, which are
 * copied byte for byte: no number goes through a double.
 */
static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p at '"': the end of the string, or NULL. */
static const char *scan_string(const char *p, const char *e)
{
	for (p++; p < e; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (++p >= e)
			return NULL;
		if (*p == 'u') {
			for (int i = 0; i < 4; i++)
				if (++p >= e || !is_hex(*p))
					return NULL;
		} else if (!strchr("\"\\/bfnrt", *p)) {
			return NULL;
		}
	}
	return NULL;
}

static const char *scan_value(const char *p, const char *e, int depth);

/* p at '{' or '[': the end of the object or array, or NULL. */
static const char *scan_container(const char *p, const char *e, int depth)
{
	char close = *p == '{' ? '}' : ']';
	bool object = *p == '{';

	if (depth > JSON_DEPTH_MAX)
		return NULL;
	p = skip_ws(p + 1, e);
	if (p < e && *p == close)
		return p + 1;
	while (p < e) {
		if (object) {
			if (*p != '"' || !(p = scan_string(p, e)))
				return NULL;
			p = skip_ws(p, e);
			if (p >= e || *p != ':')
				return NULL;
			p = skip_ws(p + 1, e);
		}
		if (!(p = scan_value(p, e, depth + 1)))
			return NULL;
		p = skip_ws(p, e);
		if (p < e && *p == close)
			return p + 1;
		if (p >= e || *p != ',')
			return NULL;
		p = skip_ws(p + 1, e);
	}
	return NULL;
}

static const char *scan_literal(const char *p, const char *e, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(e - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* p at a value (no white space first): its end, or NULL. */
static const char *scan_value(const char *p, const char *e, int depth)
{
	const char *start = p;
	bool digit = false;

	if (p >= e)
		return NULL;
	switch (*p) {
	case '"': return scan_string(p, e);
	case '{':
	case '[': return scan_container(p, e, depth);
	case 't': return scan_literal(p, e, "true");
	case 'f': return scan_literal(p, e, "false");
	case 'n': return scan_literal(p, e, "null");
	default: break;
	}
	for (; p < e && strchr("-+.eE0123456789", *p); p++)
		digit |= *p >= '0' && *p <= '9';
	return digit && (*start == '-' || (*start >= '0' && *start <= '9')) ? p : NULL;
}

/* Whether payload is exactly one JSON value opening with open. */
static bool one_value(const char *payload, size_t len, char open)
{
	const char *e = payload + len, *end;

	if (len == 0 || payload[0] != open)
		return false;
	end = scan_value(payload, e, 0);
	return end && skip_ws(end, e) == e;
}

/* A span of a payload. */
typedef struct span {
	const char *p;
	size_t n;
} span_t;

/* Steps through the members of an object: *p at '{' first, then where the last call
 * left it. Returns 1 with key (quotes included) and value, 0 at the end, -1 on bad
 * syntax. */
static int next_member(const char **p, const char *e, bool *first, span_t *key, span_t *val)
{
	const char *q = skip_ws(*p + (*first ? 1 : 0), e), *end;

	if (q < e && *q == '}' && *first) {
		*p = q + 1;
		return 0;
	}
	if (!*first) {
		if (q < e && *q == '}') {
			*p = q + 1;
			return 0;
		}
		if (q >= e || *q != ',')
			return -1;
		q = skip_ws(q + 1, e);
	}
	*first = false;
	if (q >= e || *q != '"' || !(end = scan_string(q, e)))
		return -1;
	*key = (span_t){q, (size_t)(end - q)};
	q = skip_ws(end, e);
	if (q >= e || *q != ':')
		return -1;
	q = skip_ws(q + 1, e);
	if (!(end = scan_value(q, e, 1)))
		return -1;
	*val = (span_t){q, (size_t)(end - q)};
	*p = end;
	return 1;
}

static bool key_is(span_t k, const char *name)
{
	size_t n = strlen(name);

	return k.n == n + 2 && memcmp(k.p + 1, name, n) == 0;
}

static bool spans_equal(span_t a, span_t b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* The native reading's fields this builder takes. */
typedef struct native {
	span_t sensor, kind, seq, ts, clock, interval, quality, values, units;
} native_t;

/* Reads a native payload's top-level members; false when it is not one. */
static bool parse_native(const char *payload, size_t len, native_t *r)
{
	const char *p = payload, *e = payload + len;
	bool first = true;
	span_t k, v;
	int rc;

	*r = (native_t){0};
	if (!one_value(payload, len, '{'))
		return false;
	while ((rc = next_member(&p, e, &first, &k, &v)) == 1) {
		if (key_is(k, "sensor") && v.p[0] == '"')
			r->sensor = v;
		else if (key_is(k, "kind") && v.p[0] == '"')
			r->kind = v;
		else if (key_is(k, "seq") && v.p[0] != '"')
			r->seq = v;
		else if (key_is(k, "ts") && v.p[0] == '"')
			r->ts = v;
		else if (key_is(k, "clock") && v.p[0] == '"')
			r->clock = v;
		else if (key_is(k, "interval_s"))
			r->interval = v;
		else if (key_is(k, "quality") && v.p[0] == '"')
			r->quality = v;
		else if (key_is(k, "values") && v.p[0] == '{')
			r->values = v;
		else if (key_is(k, "units") && v.p[0] == '{')
			r->units = v;
	}
	return rc == 0 && r->sensor.p && r->kind.p && r->seq.p && r->ts.p && r->quality.p &&
	       r->values.p && r->units.p;
}

/* Whether the span is seq in decimal. */
static bool seq_is(span_t s, int64_t seq)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%lld", (long long)seq);

	return n > 0 && s.n == (size_t)n && memcmp(s.p, text, s.n) == 0;
}

/* The unit the units object gives name (a JSON string), or a null span. */
static span_t unit_of(span_t units, span_t name)
{
	const char *p = units.p, *e = units.p + units.n;
	bool first = true;
	span_t k, v;

	while (next_member(&p, e, &first, &k, &v) == 1)
		if (spans_equal(k, name))
			return v;
	return (span_t){0};
}

/* Renders a native reading's layout and its entry in a group; false on a
 * payload whose values or units are not what the encoder writes. */
static bool render_native(const native_t *r, cg_buf_t *layout, cg_buf_t *entry)
{
	const char *p = r->values.p, *e = r->values.p + r->values.n;
	bool first = true;
	span_t k, v;
	size_t i = 0;
	int rc;

	cg_buf_puts(layout, "{\"kind\":");
	cg_buf_append(layout, r->kind.p, r->kind.n);
	cg_buf_puts(layout, ",\"names\":[");
	cg_buf_puts(entry, "{\"seq\":");
	cg_buf_append(entry, r->seq.p, r->seq.n);
	cg_buf_puts(entry, ",\"ts\":");
	cg_buf_append(entry, r->ts.p, r->ts.n);
	if (r->interval.p) {
		cg_buf_puts(entry, ",\"interval_s\":");
		cg_buf_append(entry, r->interval.p, r->interval.n);
	}
	cg_buf_puts(entry, ",\"values\":[");
	while ((rc = next_member(&p, e, &first, &k, &v)) == 1) {
		if (i++) {
			cg_buf_puts(layout, ",");
			cg_buf_puts(entry, ",");
		}
		cg_buf_append(layout, k.p, k.n);
		cg_buf_append(entry, v.p, v.n);
	}
	if (rc < 0)
		return false;
	cg_buf_puts(layout, "],\"units\":[");
	p = r->values.p;
	first = true;
	i = 0;
	while (next_member(&p, e, &first, &k, &v) == 1) {
		span_t u = unit_of(r->units, k);

		if (i++)
			cg_buf_puts(layout, ",");
		if (u.p && u.p[0] == '"')
			cg_buf_append(layout, u.p, u.n);
		else
			cg_buf_puts(layout, "null");
	}
	cg_buf_puts(layout, "]}");
	cg_buf_puts(entry, "]");
	/* "ok" is what almost every reading says: only the others are written. */
	if (!(r->quality.n == 4 && memcmp(r->quality.p, "\"ok\"", 4) == 0)) {
		cg_buf_puts(entry, ",\"quality\":");
		cg_buf_append(entry, r->quality.p, r->quality.n);
	}
	if (r->clock.p) {
		cg_buf_puts(entry, ",\"clock\":");
		cg_buf_append(entry, r->clock.p, r->clock.n);
	}
	cg_buf_puts(entry, "}");
	return true;
}

/* Digits of a non-negative integer. */
static size_t digits_of(size_t v)
{
	size_t n = 1;

	for (; v >= 10; v /= 10)
		n++;
	return n;
}

/* Bytes of a group's object: {"sensor":S,"layout":L,"readings":[...]}. */
static size_t group_size(const group_t *g)
{
	return LIT("{\"sensor\":") + g->sensor_len + LIT(",\"layout\":") + digits_of(g->layout) +
	       LIT(",\"readings\":[") + g->readings.len + LIT("]}");
}

/* Finds or adds the layout with text lt; *added says whether it is new. */
static int find_layout(cg_batch_t *b, const cg_buf_t *lt, size_t *index, bool *added)
{
	*added = false;
	for (size_t i = 0; i < b->n_layouts; i++) {
		if (b->layouts[i].len == lt->len &&
		    memcmp(b->layouts[i].text, lt->data, lt->len) == 0) {
			*index = i;
			return CG_OK;
		}
	}
	if (b->n_layouts == b->cap_layouts) {
		size_t cap = b->cap_layouts ? b->cap_layouts * 2 : 8;
		layout_t *nl = realloc(b->layouts, cap * sizeof(*nl));
		if (!nl)
			return CG_ENOMEM;
		b->layouts = nl;
		b->cap_layouts = cap;
	}
	b->layouts[b->n_layouts].text = malloc(lt->len + 1);
	if (!b->layouts[b->n_layouts].text)
		return CG_ENOMEM;
	memcpy(b->layouts[b->n_layouts].text, lt->data, lt->len + 1);
	b->layouts[b->n_layouts].len = lt->len;
	*index = b->n_layouts++;
	*added = true;
	b->size += lt->len + (*index > 0);
	return CG_OK;
}

/* Finds or adds the group of sensor with layout; *added says whether it is new. */
static int find_group(cg_batch_t *b, span_t sensor, size_t layout, size_t *index, bool *added)
{
	group_t *g;

	*added = false;
	for (size_t i = 0; i < b->n_groups; i++) {
		g = &b->groups[i];
		if (g->layout == layout && g->sensor_len == sensor.n &&
		    memcmp(g->sensor, sensor.p, sensor.n) == 0) {
			*index = i;
			return CG_OK;
		}
	}
	if (b->n_groups == b->cap_groups) {
		size_t cap = b->cap_groups ? b->cap_groups * 2 : 16;
		group_t *ng = realloc(b->groups, cap * sizeof(*ng));
		if (!ng)
			return CG_ENOMEM;
		b->groups = ng;
		b->cap_groups = cap;
	}
	g = &b->groups[b->n_groups];
	*g = (group_t){.sensor = malloc(sensor.n + 1), .sensor_len = sensor.n, .layout = layout};
	if (!g->sensor)
		return CG_ENOMEM;
	memcpy(g->sensor, sensor.p, sensor.n);
	g->sensor[sensor.n] = '\0';
	g->size = group_size(g);
	*index = b->n_groups++;
	*added = true;
	b->size += g->size + (*index > 0);
	return CG_OK;
}

/* Takes the last add back as u recorded it. */
static void undo(cg_batch_t *b, const undo_t *u)
{
	if (b->format != CG_FORMAT_NATIVE) {
		b->body.len = u->body_len;
		if (b->body.data)
			b->body.data[b->body.len] = '\0';
	} else {
		while (b->n_groups > u->n_groups) {
			group_t *g = &b->groups[--b->n_groups];
			free(g->sensor);
			cg_buf_free(&g->readings);
		}
		while (b->n_layouts > u->n_layouts)
			free(b->layouts[--b->n_layouts].text);
		if (u->group < b->n_groups) {
			group_t *g = &b->groups[u->group];
			g->readings.len = u->readings_len;
			if (g->readings.data)
				g->readings.data[g->readings.len] = '\0';
			g->size = u->group_size;
		}
	}
	b->size = u->size;
}

/* Adds a native reading; CG_EINVAL for a payload that is not one with this seq. */
static int add_native(cg_batch_t *b, int64_t seq, const char *payload, size_t len, undo_t *u)
{
	native_t r;
	cg_buf_t lt = {0}, entry = {0};
	size_t li, gi;
	bool added;
	int rc = CG_EINVAL;
	group_t *g;

	if (!parse_native(payload, len, &r) || !seq_is(r.seq, seq) ||
	    !render_native(&r, &lt, &entry))
		goto out;
	rc = CG_ENOMEM;
	if (cg_buf_failed(&lt) || cg_buf_failed(&entry))
		goto out;
	rc = find_layout(b, &lt, &li, &added);
	if (rc == CG_OK)
		rc = find_group(b, r.sensor, li, &gi, &added);
	if (rc < 0)
		goto out;
	g = &b->groups[gi];
	if (!added) {
		u->group = gi;
		u->readings_len = g->readings.len;
		u->group_size = g->size;
	}
	if (g->readings.len)
		cg_buf_puts(&g->readings, ",");
	cg_buf_append(&g->readings, entry.data, entry.len);
	if (cg_buf_failed(&g->readings)) {
		g->readings.failed = false;
		rc = CG_ENOMEM;
		goto out;
	}
	b->size -= g->size;
	g->size = group_size(g);
	b->size += g->size;
out:
	cg_buf_free(&lt);
	cg_buf_free(&entry);
	return rc;
}

/* Adds a SenML pack's records, or an NGSI-LD entity, as they are. */
static int add_member(cg_batch_t *b, const char *payload, size_t len)
{
	bool senml = b->format == CG_FORMAT_SENML;

	if (!one_value(payload, len, senml ? '[' : '{') ||
	    (senml && (len <= 2 || payload[len - 1] != ']')))
		return CG_EINVAL;
	if (senml) {
		payload++;
		len -= 2; /* the pack's brackets: its records join the batch's */
	}
	if (b->body.len)
		cg_buf_puts(&b->body, ",");
	cg_buf_append(&b->body, payload, len);
	if (cg_buf_failed(&b->body)) {
		b->body.failed = false;
		return CG_ENOMEM;
	}
	b->size = 2 + b->body.len;
	return CG_OK;
}

int cg_batch_add(cg_batch_t *b, int64_t seq, const char *payload, size_t len, size_t max_bytes)
{
	undo_t u = {.n_layouts = b->n_layouts,
	            .n_groups = b->n_groups,
	            .group = SIZE_MAX,
	            .size = b->size,
	            .body_len = b->body.len};
	int rc;

	if (b->format == CG_FORMAT_SENML && cg_batch_format_of(payload, len) != CG_FORMAT_SENML)
		return CG_EINVAL;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		int64_t *ns = realloc(b->seqs, cap * sizeof(*ns));
		if (!ns)
			return CG_ENOMEM;
		b->seqs = ns;
		b->cap = cap;
	}
	if (b->format == CG_FORMAT_NATIVE)
		rc = add_native(b, seq, payload, len, &u);
	else if (b->format == CG_FORMAT_NGSI_LD &&
	         cg_batch_format_of(payload, len) != CG_FORMAT_NGSI_LD)
		rc = CG_EINVAL;
	else
		rc = add_member(b, payload, len);
	if (rc == CG_OK && b->n > 0 && b->size > max_bytes)
		rc = CG_ERANGE;
	if (rc < 0) {
		undo(b, &u);
		return rc;
	}
	b->seqs[b->n++] = seq;
	return CG_OK;
}

int cg_batch_take(cg_batch_t *b, char **out, size_t *len)
{
	cg_buf_t o = {0};

	if (b->n == 0)
		return CG_EINVAL;
	if (b->format == CG_FORMAT_NATIVE) {
		cg_buf_puts(&o, env_open);
		cg_buf_puts(&o, b->gateway);
		cg_buf_puts(&o, env_layouts);
		for (size_t i = 0; i < b->n_layouts; i++) {
			if (i)
				cg_buf_puts(&o, ",");
			cg_buf_append(&o, b->layouts[i].text, b->layouts[i].len);
		}
		cg_buf_puts(&o, env_sensors);
		for (size_t i = 0; i < b->n_groups; i++) {
			const group_t *g = &b->groups[i];

			cg_buf_printf(&o, "%s{\"sensor\":", i ? "," : "");
			cg_buf_append(&o, g->sensor, g->sensor_len);
			cg_buf_printf(&o, ",\"layout\":%zu,\"readings\":[", g->layout);
			cg_buf_append(&o, g->readings.data, g->readings.len);
			cg_buf_puts(&o, "]}");
		}
		cg_buf_puts(&o, env_close);
	} else {
		cg_buf_puts(&o, "[");
		cg_buf_append(&o, b->body.data, b->body.len);
		cg_buf_puts(&o, "]");
	}
	if (cg_buf_failed(&o)) {
		cg_buf_free(&o);
		return CG_ENOMEM;
	}
	*out = cg_buf_take(&o, len);
	cg_batch_reset(b);
	return CG_OK;
}

int cg_topic_batch(char *buf, size_t size, const char *prefix, const char *gateway)
{
	return cg_topic_gateway(buf, size, prefix, gateway, "batch");
}
