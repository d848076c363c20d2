/* Unit tests of the config parser: values, defaults, and the exact problem line of each mistake. */
/* nftw() for removing the temporary folder. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/build_config.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/secret.h"
#include "gateway/config.h"
#include "uplink/publisher.h"

/* A value for edit() that removes the key instead of setting it. */
#define DEL "\x01"

static char tmpdir[] = "/tmp/cg-test-config-XXXXXX";
/* The profile every sensor names: the shipped "aqt530", or a file of our own
 * when the source tree does not have it. */
static char profile_ref[4096];

/* A minimal valid config, in single quotes (see cfgtext()). */
static const char base_config[] =
    "{\n"
    "  'gateway': { 'id': 'gw-1' },\n"
    "  'mqtt': { 'uri': 'tcp://127.0.0.1:1883', 'topic_prefix': 'city/test' },\n"
    "  'store': { 'path': 'outbox.db' },\n"
    "  'buses': [\n"
    "    { 'id': 'rs485-1', 'type': 'modbus-rtu', 'device': '/dev/ttyUSB0' },\n"
    "    { 'id': 'lan', 'type': 'modbus-tcp', 'host': '192.0.2.10' },\n"
    "    { 'id': 'uart-1', 'type': 'serial', 'device': '/dev/ttyS1' }\n"
    "  ],\n"
    "  'sensors': [\n"
    "    { 'id': 'aq-001', 'bus': 'rs485-1', 'driver': 'modbus', 'profile': '@P' }\n"
    "  ]\n"
    "}\n";

/* Returns s with every ' turned into " and every @P into the profile
 * reference, so that test configs read as JSON without escapes. The caller
 * frees it. */
static char *cfgtext(const char *s)
{
	size_t cap = strlen(s) * 2 + strlen(profile_ref) * 8 + 1, o = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	for (const char *c = s; *c; c++) {
		if (c[0] == '@' && c[1] == 'P') {
			size_t n = strlen(profile_ref);
			assert_true(o + n < cap);
			memcpy(out + o, profile_ref, n);
			o += n;
			c++;
		} else {
			assert_true(o + 1 < cap);
			out[o++] = *c == '\'' ? '"' : *c;
		}
	}
	out[o] = '\0';
	return out;
}

/* Sets (or with DEL removes) the member at a simple JSON pointer
 * ("/buses/0/baud") of root; value is JSON text in single quotes. */
static void set_at(cJSON *root, const char *pointer, const char *value)
{
	char path[256], *save = NULL, *tok, *next;
	cJSON *node = root, *v;

	snprintf(path, sizeof(path), "%s", pointer + 1);
	tok = strtok_r(path, "/", &save);
	while ((next = strtok_r(NULL, "/", &save))) {
		node = cJSON_IsArray(node) ? cJSON_GetArrayItem(node, atoi(tok))
		                           : cJSON_GetObjectItemCaseSensitive(node, tok);
		assert_non_null(node);
		tok = next;
	}
	if (strcmp(value, DEL) == 0) {
		if (cJSON_IsArray(node))
			cJSON_DeleteItemFromArray(node, atoi(tok));
		else
			cJSON_DeleteItemFromObjectCaseSensitive(node, tok);
		return;
	}
	char *text = cfgtext(value);
	v = cJSON_Parse(text);
	free(text);
	assert_non_null(v);
	if (cJSON_IsArray(node)) {
		if (atoi(tok) >= cJSON_GetArraySize(node))
			cJSON_AddItemToArray(node, v);
		else
			cJSON_ReplaceItemInArray(node, atoi(tok), v);
	} else if (cJSON_GetObjectItemCaseSensitive(node, tok)) {
		cJSON_ReplaceItemInObjectCaseSensitive(node, tok, v);
	} else {
		cJSON_AddItemToObject(node, tok, v);
	}
}

/* The base config with edits applied: pairs of pointer and value, ending
 * with NULL. The caller frees the text. */
static char *edit(const char *first, ...)
{
	char *text = cfgtext(base_config);
	cJSON *root = cJSON_Parse(text);
	const char *ptr, *value;
	va_list ap;

	free(text);
	assert_non_null(root);
	va_start(ap, first);
	for (ptr = first; ptr; ptr = va_arg(ap, const char *)) {
		value = va_arg(ap, const char *);
		set_at(root, ptr, value);
	}
	va_end(ap);
	text = cJSON_Print(root);
	cJSON_Delete(root);
	return text;
}

static void print_lines(const cg_diag_t *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_message("  diag: %s\n", d->lines[i]);
}

static bool has_line(const cg_diag_t *d, const char *line)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->lines[i], line) == 0)
			return true;
	return false;
}

/* Parses text as "cfg.json" and asserts that it is refused with exactly the
 * lines given (NULL-terminated; in any order). */
static void expect_problems_v(const char *path, const char *text, va_list ap)
{
	cg_diag_t d = {0};
	cg_config_t *cfg = (cg_config_t *)1;
	const char *line;
	size_t n = 0;
	int rc;

	rc = cg_config_parse(text, strlen(text), path, &cfg, &d);
	if (rc != CG_EINVAL)
		print_lines(&d);
	assert_int_equal(rc, CG_EINVAL);
	assert_null(cfg);
	while ((line = va_arg(ap, const char *))) {
		if (!has_line(&d, line)) {
			print_message("missing: %s\n", line);
			print_lines(&d);
		}
		assert_true(has_line(&d, line));
		n++;
	}
	if (d.n != n)
		print_lines(&d);
	assert_int_equal(d.n, n);
	cg_diag_free(&d);
}

static void expect_problems(const char *text, ...)
{
	va_list ap;

	va_start(ap, text);
	expect_problems_v("cfg.json", text, ap);
	va_end(ap);
}

/* The base config with one edit must give exactly one line. */
static void expect_edit(const char *pointer, const char *value, const char *line)
{
	char *text = edit(pointer, value, NULL);

	expect_problems(text, line, NULL);
	free(text);
}

/* Parses text as "cfg.json" and asserts that it is accepted. */
static cg_config_t *expect_valid_at(const char *path, const char *text)
{
	cg_diag_t d = {0};
	cg_config_t *cfg = NULL;
	int rc = cg_config_parse(text, strlen(text), path, &cfg, &d);

	if (rc != 0 || d.n)
		print_lines(&d);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(cfg);
	cg_diag_free(&d);
	return cfg;
}

static cg_config_t *expect_valid(const char *text)
{
	return expect_valid_at("cfg.json", text);
}

static void write_file(const char *name, const char *text, mode_t mode)
{
	FILE *f = fopen(name, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(name, mode), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	char shipped[4096];

	if (!mkdtemp(tmpdir) || chdir(tmpdir) != 0)
		return -1;
	snprintf(shipped, sizeof(shipped), "%s/drivers/profiles/aqt530.json", CG_SOURCE_DIR);
	if (access(shipped, R_OK) == 0) {
		snprintf(profile_ref, sizeof(profile_ref), "aqt530");
	} else {
		FILE *f = fopen("prof.json", "w");
		if (!f)
			return -1;
		fputs(
		    "{ \"name\": \"prof\", \"kind\": \"air-quality\", \"points\": [ { \"name\": "
		    "\"pm25\", \"table\": \"input\", \"address\": 8, \"type\": \"i16\", \"scale\": "
		    "0.1, \"unit\": \"ug/m3\" } ] }\n",
		    f);
		fclose(f);
		snprintf(profile_ref, sizeof(profile_ref), "%s/prof.json", tmpdir);
	}
	return 0;
}

static int group_teardown(void **state)
{
	if (chdir("/") != 0)
		return -1;
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- valid configs ---- */

static void test_defaults(void **state)
{
	char *text = cfgtext(base_config);
	cg_config_t *cfg = expect_valid(text);

	assert_string_equal(cfg->path, "cfg.json");
	assert_string_equal(cfg->gateway_id, "gw-1");
	assert_false(cfg->has_location);
	assert_true(cfg->health_interval_s == 60);
	assert_int_equal(cfg->clock_policy, CG_CLOCK_POLICY_TRUST);

	assert_string_equal(cfg->mqtt.uri, "tcp://127.0.0.1:1883");
	assert_string_equal(cfg->mqtt.topic_prefix, "city/test");
	assert_string_equal(cfg->mqtt.client_id, "gw-1");
	assert_null(cfg->mqtt.username);
	assert_null(cfg->mqtt.password_file);
	assert_int_equal(cfg->mqtt.qos, 1);
	assert_int_equal(cfg->mqtt.format, CG_FORMAT_NATIVE);
	assert_null(cfg->mqtt.ca_file);
	assert_null(cfg->mqtt.cert_file);
	assert_null(cfg->mqtt.key_file);
	assert_int_equal(cfg->mqtt.inflight, 64);
	assert_int_equal(cfg->mqtt.keepalive_s, 30);
	assert_true(cfg->mqtt.reconnect_min_s == 1);
	assert_true(cfg->mqtt.reconnect_max_s == 60);

	assert_string_equal(cfg->store.path, "outbox.db");
	assert_int_equal(cfg->store.max_rows, 1000000);
	assert_int_equal(cfg->store.max_bytes, 268435456);
	assert_int_equal(cfg->store.max_age_s, 604800);
	assert_false(cfg->store.sync_full);
	assert_int_equal(cfg->store.batch_ms, 100);

	assert_non_null(cfg->profile_dirs);
	assert_string_equal(cfg->profile_dirs[0], CG_PROFILE_DIR_INSTALLED);
	assert_string_equal(cfg->profile_dirs[1], CG_PROFILE_DIR_SOURCE);
	assert_null(cfg->profile_dirs[2]);

	assert_int_equal(cfg->n_buses, 3);
	for (size_t i = 0; i < cfg->n_buses; i++) {
		const cg_bus_config_t *b = &cfg->buses[i];
		assert_int_equal(b->line.timeout_ms, 500);
		assert_int_equal(b->line.gap_ms, 0);
		assert_true(b->backoff_max_s == 60);
	}
	assert_string_equal(cfg->buses[0].id, "rs485-1");
	assert_int_equal(cfg->buses[0].line.type, CG_BUS_MODBUS_RTU);
	assert_string_equal(cfg->buses[0].line.device, "/dev/ttyUSB0");
	assert_null(cfg->buses[0].line.host);
	assert_int_equal(cfg->buses[0].line.baud, 9600);
	assert_int_equal(cfg->buses[0].line.parity, 'N');
	assert_int_equal(cfg->buses[0].line.data_bits, 8);
	assert_int_equal(cfg->buses[0].line.stop_bits, 1);
	assert_false(cfg->buses[0].line.rs485);
	assert_int_equal(cfg->buses[1].line.type, CG_BUS_MODBUS_TCP);
	assert_string_equal(cfg->buses[1].line.host, "192.0.2.10");
	assert_null(cfg->buses[1].line.device);
	assert_int_equal(cfg->buses[1].line.port, 502);
	assert_int_equal(cfg->buses[2].line.type, CG_BUS_SERIAL);
	assert_int_equal(cfg->buses[2].line.baud, 9600);
	assert_int_equal(cfg->buses[2].line.parity, 'N');

	assert_int_equal(cfg->n_sensors, 1);
	assert_string_equal(cfg->sensors[0].id, "aq-001");
	assert_string_equal(cfg->sensors[0].bus, "rs485-1");
	assert_string_equal(cfg->sensors[0].driver_name, "modbus");
	assert_ptr_equal(cfg->sensors[0].driver, cg_driver_find("modbus"));
	assert_int_equal(cfg->sensors[0].bus_index, 0);
	assert_true(cfg->sensors[0].interval_s == 10);
	assert_int_equal(cfg->sensors[0].format, -1);
	assert_string_equal(cfg->sensors[0].pointer, "/sensors/0");

	cg_driver_env_t env = cg_config_driver_env(cfg);
	assert_string_equal(env.config_path, "cfg.json");
	assert_ptr_equal(env.profile_dirs, cfg->profile_dirs);

	cg_config_free(cfg);
	free(text);
}

static const char full_config[] =
    "{\n"
    "  'gateway': { 'id': 'gw-gn-0001', 'location': { 'lat': 37.7519, 'lon': 128.8761 },\n"
    "               'health_interval_s': 30.5, 'clock': 'ntp' },\n"
    "  'mqtt': { 'uri': 'ssl://broker.example:8883', 'topic_prefix': 'city/gangneung',\n"
    "            'qos': 0, 'format': 'senml', 'client_id': 'client-7', 'username': 'gw',\n"
    "            'password_file': 'pass.txt',\n"
    "            'tls': { 'ca_file': 'ca.pem', 'cert_file': 'cert.pem', 'key_file': 'key.pem' },\n"
    "            'inflight': 10, 'keepalive_s': 45, 'reconnect_min_s': 0.5,\n"
    "            'reconnect_max_s': 120 },\n"
    "  'store': { 'path': '/var/lib/citygate/outbox.db', 'max_rows': 0, 'max_bytes': 1048576,\n"
    "             'max_age_s': 3600, 'sync': 'full', 'batch_ms': 250 },\n"
    "  'profile_dirs': [ 'profiles', '/opt/citygate/profiles' ],\n"
    "  'buses': [\n"
    "    { 'id': 'rs485-1', 'type': 'modbus-rtu', 'device': '/dev/ttyUSB0', 'baud': 19200,\n"
    "      'parity': 'E', 'data_bits': 7, 'stop_bits': 2, 'rs485': true, 'timeout_ms': 300,\n"
    "      'gap_ms': 20, 'backoff_max_s': 120.5 },\n"
    "    { 'id': 'lan', 'type': 'modbus-tcp', 'host': '192.0.2.10', 'port': 1502,\n"
    "      'timeout_ms': 1000 },\n"
    "    { 'id': 'uart-1', 'type': 'serial', 'device': '/dev/ttyS1', 'baud': 115200,\n"
    "      'parity': 'O', 'data_bits': 8, 'stop_bits': 1 }\n"
    "  ],\n"
    "  'sensors': [\n"
    "    { 'id': 'aq-001', 'bus': 'rs485-1', 'driver': 'modbus', 'profile': '@P',\n"
    "      'unit_id': 7, 'merge': false, 'merge_gap': 4, 'interval_s': 2.5,\n"
    "      'format': 'ngsi-ld' },\n"
    "    { 'id': 'aq-002', 'bus': 'lan', 'driver': 'modbus', 'profile': '@P', 'unit_id': 1,\n"
    "      'interval_s': 0.05, 'format': 'native' }\n"
    "  ]\n"
    "}\n";

static void test_full(void **state)
{
	char *text = cfgtext(full_config);
	cg_config_t *cfg;

	write_file("pass.txt", "hunter2-secret\n", 0600);
	write_file("ca.pem", "ca\n", 0644);
	write_file("cert.pem", "cert\n", 0644);
	write_file("key.pem", "key\n", 0600);
	cfg = expect_valid(text);

	assert_string_equal(cfg->gateway_id, "gw-gn-0001");
	assert_true(cfg->has_location);
	assert_true(cfg->lat == 37.7519);
	assert_true(cfg->lon == 128.8761);
	assert_true(cfg->health_interval_s == 30.5);
	assert_int_equal(cfg->clock_policy, CG_CLOCK_POLICY_NTP);

	assert_string_equal(cfg->mqtt.uri, "ssl://broker.example:8883");
	assert_string_equal(cfg->mqtt.topic_prefix, "city/gangneung");
	assert_int_equal(cfg->mqtt.qos, 0);
	assert_int_equal(cfg->mqtt.format, CG_FORMAT_SENML);
	assert_string_equal(cfg->mqtt.client_id, "client-7");
	assert_string_equal(cfg->mqtt.username, "gw");
	assert_string_equal(cfg->mqtt.password_file, "pass.txt");
	assert_string_equal(cfg->mqtt.ca_file, "ca.pem");
	assert_string_equal(cfg->mqtt.cert_file, "cert.pem");
	assert_string_equal(cfg->mqtt.key_file, "key.pem");
	assert_int_equal(cfg->mqtt.inflight, 10);
	assert_int_equal(cfg->mqtt.keepalive_s, 45);
	assert_true(cfg->mqtt.reconnect_min_s == 0.5);
	assert_true(cfg->mqtt.reconnect_max_s == 120);

	assert_string_equal(cfg->store.path, "/var/lib/citygate/outbox.db");
	assert_int_equal(cfg->store.max_rows, 0);
	assert_int_equal(cfg->store.max_bytes, 1048576);
	assert_int_equal(cfg->store.max_age_s, 3600);
	assert_true(cfg->store.sync_full);
	assert_int_equal(cfg->store.batch_ms, 250);

	assert_string_equal(cfg->profile_dirs[0], "profiles");
	assert_string_equal(cfg->profile_dirs[1], "/opt/citygate/profiles");
	assert_string_equal(cfg->profile_dirs[2], CG_PROFILE_DIR_INSTALLED);
	assert_string_equal(cfg->profile_dirs[3], CG_PROFILE_DIR_SOURCE);
	assert_null(cfg->profile_dirs[4]);

	const cg_bus_config_t *b = cfg->buses;
	assert_int_equal(cfg->n_buses, 3);
	assert_int_equal(b[0].line.baud, 19200);
	assert_int_equal(b[0].line.parity, 'E');
	assert_int_equal(b[0].line.data_bits, 7);
	assert_int_equal(b[0].line.stop_bits, 2);
	assert_true(b[0].line.rs485);
	assert_int_equal(b[0].line.timeout_ms, 300);
	assert_int_equal(b[0].line.gap_ms, 20);
	assert_true(b[0].backoff_max_s == 120.5);
	assert_string_equal(b[1].line.host, "192.0.2.10");
	assert_int_equal(b[1].line.port, 1502);
	assert_int_equal(b[1].line.timeout_ms, 1000);
	assert_int_equal(b[2].line.baud, 115200);
	assert_int_equal(b[2].line.parity, 'O');

	const cg_sensor_config_t *s = cfg->sensors;
	assert_int_equal(cfg->n_sensors, 2);
	assert_true(s[0].interval_s == 2.5);
	assert_int_equal(s[0].format, CG_FORMAT_NGSI_LD);
	assert_int_equal(s[0].bus_index, 0);
	assert_non_null(s[0].options); /* unit_id and merge, the driver's own (test_modbus) */
	assert_string_equal(s[1].id, "aq-002");
	assert_int_equal(s[1].bus_index, 1);
	assert_true(s[1].interval_s == 0.05);
	assert_int_equal(s[1].format, CG_FORMAT_NATIVE);
	assert_string_equal(s[1].pointer, "/sensors/1");

	cg_config_free(cfg);
	free(text);
}

/* The example in schemas/config.schema.json is a config the parser accepts,
 * and the schema's defaults are the parser's. */
/* mqtt.batch: absent, one reading per message; present, its defaults and bounds,
 * refusals named by file and JSON pointer. */
static void test_batch_keys(void **state)
{
	char *text = cfgtext(base_config);
	cg_config_t *cfg = expect_valid(text);

	assert_false(cfg->mqtt.batch);
	cg_config_free(cfg);
	free(text);

	text = edit("/mqtt/batch", "{}", NULL);
	cfg = expect_valid(text);
	assert_true(cfg->mqtt.batch);
	assert_int_equal(cfg->mqtt.batch_max_readings, 100);
	assert_int_equal(cfg->mqtt.batch_max_bytes, 65536);
	assert_int_equal(cfg->mqtt.batch_max_latency_ms, 1000);
	cg_config_free(cfg);
	free(text);

	text = edit("/mqtt/batch", "{'max_readings': 1000, 'max_bytes': 1024, 'max_latency_ms': 0}",
	            NULL);
	cfg = expect_valid(text);
	assert_int_equal(cfg->mqtt.batch_max_readings, 1000);
	assert_int_equal(cfg->mqtt.batch_max_bytes, 1024);
	assert_int_equal(cfg->mqtt.batch_max_latency_ms, 0);
	cg_config_free(cfg);
	free(text);

	expect_edit("/mqtt/batch", "{'max_readings': 1001}",
	            "cfg.json: /mqtt/batch/max_readings: must be an integer from 1 to 1000");
	expect_edit("/mqtt/batch", "{'max_bytes': 1023}",
	            "cfg.json: /mqtt/batch/max_bytes: must be an integer from 1024 to 268435455");
	expect_edit("/mqtt/batch", "{'max_latency_ms': -1}",
	            "cfg.json: /mqtt/batch/max_latency_ms: must be an integer from 0 to 3600000");
	expect_edit("/mqtt/batch", "{'size': 5}", "cfg.json: /mqtt/batch/size: unknown key");
	expect_edit("/mqtt/batch", "true", "cfg.json: /mqtt/batch: must be an object");
}

static void test_schema(void **state)
{
	char path[4096];
	FILE *f;
	long n;
	char *buf;
	cJSON *schema, *example;
	cg_config_t *cfg;

	snprintf(path, sizeof(path), "%s/schemas/config.schema.json", CG_SOURCE_DIR);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	schema = cJSON_Parse(buf);
	free(buf);
	assert_non_null(schema);
	assert_string_equal(cJSON_GetObjectItem(schema, "$schema")->valuestring,
	                    "https://json-schema.org/draft/2020-12/schema");
	assert_string_equal(cJSON_GetObjectItem(schema, "$id")->valuestring,
	                    "https://citygate.example/schemas/config.schema.json");

	example = cJSON_GetArrayItem(cJSON_GetObjectItem(schema, "examples"), 0);
	assert_non_null(example);
	buf = cJSON_Print(example);
	cfg = expect_valid(buf);
	free(buf);
	cg_config_free(cfg);

	/* Defaults of a minimal config, against the schema's "default"s. */
	buf = cfgtext(base_config);
	cfg = expect_valid(buf);
	free(buf);
	const cJSON *props = cJSON_GetObjectItem(schema, "properties");
	const cJSON *defs = cJSON_GetObjectItem(schema, "$defs");
	const struct {
		const cJSON *obj;
		const char *key;
		double value;
	} nums[] = {
	    {cJSON_GetObjectItem(defs, "gateway"), "health_interval_s", cfg->health_interval_s},
	    {cJSON_GetObjectItem(defs, "mqtt"), "qos", cfg->mqtt.qos},
	    {cJSON_GetObjectItem(defs, "mqtt"), "inflight", cfg->mqtt.inflight},
	    {cJSON_GetObjectItem(defs, "mqtt"), "keepalive_s", cfg->mqtt.keepalive_s},
	    {cJSON_GetObjectItem(defs, "mqtt"), "reconnect_min_s", cfg->mqtt.reconnect_min_s},
	    {cJSON_GetObjectItem(defs, "mqtt"), "reconnect_max_s", cfg->mqtt.reconnect_max_s},
	    {cJSON_GetObjectItem(defs, "store"), "max_rows", (double)cfg->store.max_rows},
	    {cJSON_GetObjectItem(defs, "store"), "max_bytes", (double)cfg->store.max_bytes},
	    {cJSON_GetObjectItem(defs, "store"), "max_age_s", (double)cfg->store.max_age_s},
	    {cJSON_GetObjectItem(defs, "store"), "batch_ms", cfg->store.batch_ms},
	    {cJSON_GetObjectItem(defs, "bus"), "baud", cfg->buses[0].line.baud},
	    {cJSON_GetObjectItem(defs, "bus"), "data_bits", cfg->buses[0].line.data_bits},
	    {cJSON_GetObjectItem(defs, "bus"), "stop_bits", cfg->buses[0].line.stop_bits},
	    {cJSON_GetObjectItem(defs, "bus"), "port", cfg->buses[1].line.port},
	    {cJSON_GetObjectItem(defs, "bus"), "timeout_ms", cfg->buses[0].line.timeout_ms},
	    {cJSON_GetObjectItem(defs, "bus"), "gap_ms", cfg->buses[0].line.gap_ms},
	    {cJSON_GetObjectItem(defs, "bus"), "backoff_max_s", cfg->buses[0].backoff_max_s},
	    {cJSON_GetObjectItem(defs, "sensor"), "interval_s", cfg->sensors[0].interval_s},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		const cJSON *p = cJSON_GetObjectItem(cJSON_GetObjectItem(nums[i].obj, "properties"),
		                                     nums[i].key);
		const cJSON *d = cJSON_GetObjectItem(p, "default");
		if (!cJSON_IsNumber(d))
			print_message("no numeric default for %s\n", nums[i].key);
		assert_true(cJSON_IsNumber(d));
		if (d->valuedouble != nums[i].value)
			print_message("%s: schema %g, parser %g\n", nums[i].key, d->valuedouble,
			              nums[i].value);
		assert_true(d->valuedouble == nums[i].value);
	}
	const struct {
		const cJSON *obj;
		const char *key;
		const char *value;
	} strs[] = {
	    {cJSON_GetObjectItem(defs, "mqtt"), "format", cg_format_name(cfg->mqtt.format)},
	    {cJSON_GetObjectItem(defs, "store"), "sync", cfg->store.sync_full ? "full" : "normal"},
	    {cJSON_GetObjectItem(defs, "gateway"), "clock",
	     cg_clock_policy_name((cg_clock_policy_t)cfg->clock_policy)},
	    {cJSON_GetObjectItem(defs, "bus"), "parity", "N"},
	};
	assert_int_equal(cfg->buses[0].line.parity, 'N');
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const cJSON *p = cJSON_GetObjectItem(cJSON_GetObjectItem(strs[i].obj, "properties"),
		                                     strs[i].key);
		assert_string_equal(cJSON_GetObjectItem(p, "default")->valuestring, strs[i].value);
	}
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(defs, "bus"), "properties"),
	                        "rs485"),
	    "default")));
	assert_non_null(props);
	cg_config_free(cfg);
	cJSON_Delete(schema);
}

/* ---- one mistake, one line ---- */

static void test_type_mismatch(void **state)
{
	expect_edit("/mqtt/qos", "'1'", "cfg.json: /mqtt/qos: must be an integer from 0 to 1");
	expect_edit("/mqtt/inflight", "1.5",
	            "cfg.json: /mqtt/inflight: must be an integer from 1 to 65535");
	expect_edit("/gateway/id", "5", "cfg.json: /gateway/id: must be a string");
	expect_edit("/buses/0/rs485", "'yes'", "cfg.json: /buses/0/rs485: must be true or false");
	expect_edit("/store", "'outbox.db'", "cfg.json: /store: must be an object");
	expect_edit("/gateway/location", "[1, 2]",
	            "cfg.json: /gateway/location: must be an object");
	expect_edit("/mqtt/tls", "true", "cfg.json: /mqtt/tls: must be an object");
	expect_edit("/sensors/0/interval_s", "null",
	            "cfg.json: /sensors/0/interval_s: must be a number from 0.05 to 86400");
	expect_edit("/buses/0/baud", "'9600'",
	            "cfg.json: /buses/0/baud: must be one of 1200, 2400, 4800, 9600, 19200, 38400, "
	            "57600, 115200");
	expect_edit("/profile_dirs", "'profiles'", "cfg.json: /profile_dirs: must be an array");
	expect_edit("/profile_dirs", "[ 'a', 3 ]", "cfg.json: /profile_dirs/1: must be a string");
	expect_edit("/profile_dirs", "[ '' ]", "cfg.json: /profile_dirs/0: must not be empty");
	expect_edit("/buses/1", "'lan'", "cfg.json: /buses/1: must be an object");
}

static void test_out_of_bounds(void **state)
{
	expect_edit("/mqtt/qos", "2", "cfg.json: /mqtt/qos: must be an integer from 0 to 1");
	expect_edit("/mqtt/keepalive_s", "4",
	            "cfg.json: /mqtt/keepalive_s: must be an integer from 5 to 3600");
	expect_edit("/mqtt/reconnect_min_s", "0.05",
	            "cfg.json: /mqtt/reconnect_min_s: must be a number from 0.1 to 3600");
	expect_edit("/sensors/0/interval_s", "0.01",
	            "cfg.json: /sensors/0/interval_s: must be a number from 0.05 to 86400");
	expect_edit("/sensors/0/interval_s", "86401",
	            "cfg.json: /sensors/0/interval_s: must be a number from 0.05 to 86400");
	expect_edit("/gateway/location", "{ 'lat': 91, 'lon': 0 }",
	            "cfg.json: /gateway/location/lat: must be a number from -90 to 90");
	expect_edit("/gateway/location", "{ 'lat': 0, 'lon': -180.5 }",
	            "cfg.json: /gateway/location/lon: must be a number from -180 to 180");
	expect_edit("/gateway/clock", "'gps'",
	            "cfg.json: /gateway/clock: must be one of \"trust\", \"ntp\"");
	expect_edit("/gateway/health_interval_s", "0.5",
	            "cfg.json: /gateway/health_interval_s: must be a number from 1 to 86400");
	expect_edit("/store/max_rows", "-1",
	            "cfg.json: /store/max_rows: must be an integer from 0 to 9007199254740991");
	expect_edit("/store/max_bytes", "1e300",
	            "cfg.json: /store/max_bytes: must be an integer from 0 to 9007199254740991");
	expect_edit("/store/batch_ms", "0",
	            "cfg.json: /store/batch_ms: must be an integer from 1 to 10000");
	expect_edit("/buses/1/port", "70000",
	            "cfg.json: /buses/1/port: must be an integer from 1 to 65535");
	expect_edit("/buses/0/timeout_ms", "5",
	            "cfg.json: /buses/0/timeout_ms: must be an integer from 10 to 60000");
	expect_edit("/buses/0/gap_ms", "10001",
	            "cfg.json: /buses/0/gap_ms: must be an integer from 0 to 10000");
	expect_edit("/buses/0/backoff_max_s", "0.5",
	            "cfg.json: /buses/0/backoff_max_s: must be a number from 1 to 3600");
	expect_edit("/mqtt/client_id", "''",
	            "cfg.json: /mqtt/client_id: must be 1 to 64 characters");
	expect_edit("/mqtt/client_id",
	            "'0123456789012345678901234567890123456789012345678901234567890123456789'",
	            "cfg.json: /mqtt/client_id: must be 1 to 64 characters");
	expect_edit("/store/path", "''", "cfg.json: /store/path: must not be empty");
}

static void test_enums(void **state)
{
	expect_edit("/buses/0/baud", "9601",
	            "cfg.json: /buses/0/baud: must be one of 1200, 2400, 4800, 9600, 19200, 38400, "
	            "57600, 115200");
	expect_edit("/buses/2/data_bits", "6", "cfg.json: /buses/2/data_bits: must be one of 7, 8");
	expect_edit("/buses/0/stop_bits", "1.5",
	            "cfg.json: /buses/0/stop_bits: must be one of 1, 2");
	expect_edit("/buses/0/parity", "'X'",
	            "cfg.json: /buses/0/parity: must be one of \"N\", \"E\", \"O\"");
	expect_edit("/buses/0/parity", "'n'",
	            "cfg.json: /buses/0/parity: must be one of \"N\", \"E\", \"O\"");
	expect_edit("/mqtt/format", "'xml'",
	            "cfg.json: /mqtt/format: must be one of \"native\", \"ngsi-ld\", \"senml\"");
	expect_edit(
	    "/sensors/0/format", "'json'",
	    "cfg.json: /sensors/0/format: must be one of \"native\", \"ngsi-ld\", \"senml\"");
	expect_edit("/store/sync", "'fast'",
	            "cfg.json: /store/sync: must be one of \"normal\", \"full\"");
	/* With its type unknown, a bus's other keys are neither required nor refused. */
	expect_edit("/buses/2/type", "'can'",
	            "cfg.json: /buses/2/type: must be one of \"modbus-rtu\", \"modbus-tcp\", "
	            "\"serial\", "
	            "\"modbus-rtu-tcp\"");
}

/* mqtt.version, session and message expiry: defaults, each value, the refusals. */
static void test_mqtt5_keys(void **state)
{
	char *text = cfgtext(base_config);
	cg_config_t *cfg = expect_valid(text);

	assert_int_equal(cfg->mqtt.version, CG_MQTT_AUTO);
	assert_int_equal(cfg->mqtt.session_expiry_s, 0);
	assert_int_equal(cfg->mqtt.expiry_air_quality_s, 0);
	assert_int_equal(cfg->mqtt.expiry_parking_s, 0);
	assert_int_equal(cfg->mqtt.expiry_traffic_s, 0);
	assert_int_equal(cfg->mqtt.expiry_weather_s, 0);
	cg_config_free(cfg);
	free(text);

	text = edit("/mqtt/version", "'3.1.1'", "/mqtt/session_expiry_s", "4294967295",
	            "/mqtt/message_expiry_s", "{'parking': 60, 'traffic': 900, 'weather': 1800}",
	            NULL);
	cfg = expect_valid(text);
	assert_int_equal(cfg->mqtt.version, CG_MQTT_311);
	assert_int_equal(cfg->mqtt.session_expiry_s, 4294967295LL);
	assert_int_equal(cfg->mqtt.expiry_air_quality_s, 0);
	assert_int_equal(cfg->mqtt.expiry_parking_s, 60);
	assert_int_equal(cfg->mqtt.expiry_traffic_s, 900);
	assert_int_equal(cfg->mqtt.expiry_weather_s, 1800);
	cg_config_free(cfg);
	free(text);

	text = edit("/mqtt/version", "'5'", NULL);
	cfg = expect_valid(text);
	assert_int_equal(cfg->mqtt.version, CG_MQTT_5);
	cg_config_free(cfg);
	free(text);

	expect_edit("/mqtt/version", "'4'",
	            "cfg.json: /mqtt/version: must be one of \"auto\", \"5\", \"3.1.1\"");
	expect_edit("/mqtt/version", "5",
	            "cfg.json: /mqtt/version: must be one of \"auto\", \"5\", \"3.1.1\"");
	expect_edit("/mqtt/session_expiry_s", "4294967296",
	            "cfg.json: /mqtt/session_expiry_s: must be an integer from 0 to 4294967295");
	expect_edit("/mqtt/message_expiry_s", "{'air-quality': -1}",
	            "cfg.json: /mqtt/message_expiry_s/air-quality: must be an integer from 0 to "
	            "4294967295");
}

static void test_strings(void **state)
{
	static const char id_rule[] =
	    "must be 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
	char line[256];

	snprintf(line, sizeof(line), "cfg.json: /gateway/id: %s", id_rule);
	expect_edit("/gateway/id", "'gw 1'", line);
	expect_edit("/gateway/id", "''", line);
	expect_edit("/gateway/id",
	            "'0123456789012345678901234567890123456789012345678901234567890123'", line);
	snprintf(line, sizeof(line), "cfg.json: /buses/1/id: %s", id_rule);
	expect_edit("/buses/1/id", "'lan/2'", line);
	snprintf(line, sizeof(line), "cfg.json: /sensors/0/id: %s", id_rule);
	expect_edit("/sensors/0/id", "'aq+1'", line);

	expect_edit("/mqtt/uri", "'http://broker:1883'",
	            "cfg.json: /mqtt/uri: must start with tcp://, mqtt://, ssl:// or mqtts://");
	expect_edit(
	    "/mqtt/uri", "'tcp://'",
	    "cfg.json: /mqtt/uri: must name a host after the scheme, e.g. tcp://broker:1883");
	expect_edit("/mqtt/topic_prefix", "''", "cfg.json: /mqtt/topic_prefix: must not be empty");
	expect_edit("/mqtt/topic_prefix", "'city/+'",
	            "cfg.json: /mqtt/topic_prefix: must not contain '+' or '#'");
	expect_edit("/mqtt/topic_prefix", "'city/#'",
	            "cfg.json: /mqtt/topic_prefix: must not contain '+' or '#'");
	expect_edit("/mqtt/topic_prefix", "'/city'",
	            "cfg.json: /mqtt/topic_prefix: must not start or end with '/'");
	expect_edit("/mqtt/topic_prefix", "'city/'",
	            "cfg.json: /mqtt/topic_prefix: must not start or end with '/'");
	expect_edit("/mqtt/topic_prefix", "'city//x'",
	            "cfg.json: /mqtt/topic_prefix: must not contain an empty level (\"//\")");

	/* Every accepted scheme, and a single-level prefix. */
	const char *ok[] = {"'mqtt://b:1883'", "'ssl://b:8883'", "'mqtts://b'", "'tcp://b'"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *text = edit("/mqtt/uri", ok[i], "/mqtt/topic_prefix", "'city'", NULL);
		cg_config_free(expect_valid(text));
		free(text);
	}
}

/* What a broker refuses, --check refuses: MQTT text (UTF-8, no control characters) in
 * topic_prefix, client_id and username, no '$' prefix, a prefix short enough for the
 * longest topic, a bounded user name, and no \u0000 anywhere. */
static void test_mqtt_strings(void **state)
{
	static const char ctl[] = "must be UTF-8 without control characters (it holds a control "
	                          "character)";
	char line[256], value[600], *text, *nul;
	cg_diag_t d = {0};
	cg_config_t *cfg = NULL;

	value[0] = '\'';
	memset(value + 1, 'a', 368);
	strcpy(value + 369, "'");
	expect_edit("/mqtt/topic_prefix", value,
	            "cfg.json: /mqtt/topic_prefix: must be at most 367 bytes, so that every "
	            "sensor's topic fits");
	strcpy(value + 368, "'");
	text = edit("/mqtt/topic_prefix", value, NULL);
	cg_config_free(expect_valid(text));
	free(text);
	text = edit("/mqtt/topic_prefix",
	            "'st\xc3\xa4"
	            "dte/gangneung'",
	            NULL);
	cg_config_free(expect_valid(text));
	free(text);

	expect_edit("/mqtt/topic_prefix", "'$SYS/city'",
	            "cfg.json: /mqtt/topic_prefix: must not start with '$' (brokers keep "
	            "$SYS/... to themselves)");
	snprintf(line, sizeof(line), "cfg.json: /mqtt/topic_prefix: %s", ctl);
	expect_edit("/mqtt/topic_prefix", "'city/\\u0001x'", line);
	expect_edit("/mqtt/topic_prefix", "'city/\\u0085x'", line);
	expect_edit("/mqtt/topic_prefix", "'city/\xff'",
	            "cfg.json: /mqtt/topic_prefix: must be UTF-8 without control characters (it "
	            "is not valid UTF-8)");
	expect_edit("/mqtt/topic_prefix", "'city/\xc0\xaf'",
	            "cfg.json: /mqtt/topic_prefix: must be UTF-8 without control characters (it "
	            "is not valid UTF-8)");
	snprintf(line, sizeof(line), "cfg.json: /mqtt/client_id: %s", ctl);
	expect_edit("/mqtt/client_id", "'gw\\u0007'", line);
	snprintf(line, sizeof(line), "cfg.json: /mqtt/username: %s", ctl);
	expect_edit("/mqtt/username", "'us\\u001ber'", line);
	value[0] = '\'';
	memset(value + 1, 'u', 257);
	strcpy(value + 258, "'");
	expect_edit("/mqtt/username", value, "cfg.json: /mqtt/username: must be at most 256 bytes");

	/* A NUL would cut the prefix short without a word: found in the text. */
	nul = edit("/mqtt/topic_prefix", "'city/test'", NULL);
	text = malloc(strlen(nul) + 7);
	assert_non_null(text);
	strcpy(text, nul);
	free(nul);
	nul = strstr(text, "city/test");
	assert_non_null(nul);
	memmove(nul + 13, nul + 7, strlen(nul + 7) + 1);
	memcpy(nul + 7, "\\u0000", 6);
	assert_int_equal(cg_config_parse(text, strlen(text), "cfg.json", &cfg, &d), CG_EINVAL);
	assert_null(cfg);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.lines[0], "a string holds \\u0000 (NUL)"));
	cg_diag_free(&d);
	free(text);
}

static void test_unknown_keys(void **state)
{
	expect_edit("/colour", "'red'", "cfg.json: /colour: unknown key");
	expect_edit("/gateway/colour", "'red'", "cfg.json: /gateway/colour: unknown key");
	expect_edit("/gateway/location", "{ 'lat': 1, 'lon': 2, 'alt': 3 }",
	            "cfg.json: /gateway/location/alt: unknown key");
	expect_edit("/mqtt/colour", "'red'", "cfg.json: /mqtt/colour: unknown key");
	expect_edit("/store/colour", "'red'", "cfg.json: /store/colour: unknown key");
	expect_edit("/buses/1/colour", "'red'", "cfg.json: /buses/1/colour: unknown key");
	expect_edit("/sensors/0/colour", "'red'", "cfg.json: /sensors/0/colour: unknown key");
	/* A key name that needs escaping in a JSON pointer. */
	expect_edit("/sensors/0/a~b", "1", "cfg.json: /sensors/0/a~0b: unknown key");

	char *text = edit("/mqtt/uri", "'ssl://b:8883'", "/mqtt/tls", "{ 'colour': 'red' }", NULL);
	expect_problems(text, "cfg.json: /mqtt/tls/colour: unknown key", NULL);
	free(text);

	/* Two members of one name: which one counts would be a guess. */
	text = cfgtext("{ 'gateway': { 'id': 'gw-1', 'id': 'gw-2' } }");
	expect_problems(text, "cfg.json: /gateway/id: duplicate key", "cfg.json: /mqtt: required key missing",
	                "cfg.json: /store: required key missing", "cfg.json: /buses: required key missing",
	                "cfg.json: /sensors: required key missing", NULL);
	free(text);
}

static void test_bus_type_keys(void **state)
{
	expect_edit("/buses/1/baud", "9600",
	            "cfg.json: /buses/1/baud: not valid for a modbus-tcp bus");
	expect_edit("/buses/1/device", "'/dev/ttyUSB1'",
	            "cfg.json: /buses/1/device: not valid for a modbus-tcp bus");
	expect_edit("/buses/0/host", "'h'",
	            "cfg.json: /buses/0/host: not valid for a modbus-rtu bus");
	expect_edit("/buses/0/port", "502",
	            "cfg.json: /buses/0/port: not valid for a modbus-rtu bus");
	expect_edit("/buses/2/rs485", "true",
	            "cfg.json: /buses/2/rs485: not valid for a serial bus");

	/* The same keys on the bus types they belong to. */
	char *text =
	    edit("/buses/2/parity", "'E'", "/buses/0/rs485", "true", "/buses/1/port", "1502", NULL);
	cg_config_free(expect_valid(text));
	free(text);
}

static void test_required(void **state)
{
	expect_edit("/gateway/id", DEL, "cfg.json: /gateway/id: required key missing");
	expect_edit("/gateway", DEL, "cfg.json: /gateway: required key missing");
	expect_edit("/gateway/location", "{ 'lat': 1 }",
	            "cfg.json: /gateway/location/lon: required key missing");
	expect_edit("/mqtt/uri", DEL, "cfg.json: /mqtt/uri: required key missing");
	expect_edit("/mqtt/topic_prefix", DEL, "cfg.json: /mqtt/topic_prefix: required key missing");
	expect_edit("/store/path", DEL, "cfg.json: /store/path: required key missing");
	expect_edit("/buses/0/device", DEL, "cfg.json: /buses/0/device: required key missing");
	expect_edit("/buses/1/host", DEL, "cfg.json: /buses/1/host: required key missing");
	expect_edit("/buses/0/type", DEL, "cfg.json: /buses/0/type: required key missing");
	expect_edit("/sensors/0/bus", DEL, "cfg.json: /sensors/0/bus: required key missing");
	expect_edit("/sensors/0/id", DEL, "cfg.json: /sensors/0/id: required key missing");
	expect_edit("/sensors/0/driver", DEL, "cfg.json: /sensors/0/driver: required key missing");
	expect_edit("/sensors", "[]", "cfg.json: /sensors: must contain at least one sensor");

	/* Without buses, sensors are not told again that their bus is missing. */
	expect_edit("/buses", DEL, "cfg.json: /buses: required key missing");
	expect_edit("/buses", "[]", "cfg.json: /buses: must contain at least one bus");
}

static void test_duplicates(void **state)
{
	char *text =
	    edit("/buses/1", "{ 'id': 'rs485-1', 'type': 'modbus-tcp', 'host': 'h' }", NULL);
	expect_problems(text, "cfg.json: /buses/1/id: duplicate id \"rs485-1\" (first at /buses/0)",
	                NULL);
	free(text);

	text = edit("/buses/2/device", "'/dev/ttyUSB0'", NULL);
	expect_problems(
	    text, "cfg.json: /buses/2/device: \"/dev/ttyUSB0\" is already used by /buses/0", NULL);
	free(text);

	text = edit("/sensors/1",
	            "{ 'id': 'aq-002', 'bus': 'lan', 'driver': 'modbus', 'profile': '@P' }",
	            "/sensors/2",
	            "{ 'id': 'aq-001', 'bus': 'lan', 'driver': 'modbus', 'profile': '@P' }", NULL);
	expect_problems(
	    text, "cfg.json: /sensors/2/id: duplicate id \"aq-001\" (first at /sensors/0)", NULL);
	free(text);
}

static void test_references(void **state)
{
	char line[512];
	size_t o;

	expect_edit("/sensors/0/bus", "'rs485-9'", "cfg.json: /sensors/0/bus: no bus \"rs485-9\"");

	/* An unknown driver: its keys cannot be judged, so only the name is reported. */
	o = (size_t)snprintf(line, sizeof(line),
	                     "cfg.json: /sensors/0/driver: no driver \"nosuch\" (drivers: ");
	for (size_t i = 0; cg_drivers[i]; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s", i ? ", " : "",
		                      cg_drivers[i]->name);
	snprintf(line + o, sizeof(line) - o, ")");
	expect_edit("/sensors/0/driver", "'nosuch'", line);

	expect_edit("/sensors/0/bus", "'uart-1'",
	            "cfg.json: /sensors/0/driver: driver \"modbus\" does not work on a serial bus");
	/* The modbus driver works on both Modbus bus types. */
	char *text = edit("/sensors/0/bus", "'lan'", NULL);
	cg_config_t *cfg = expect_valid(text);
	assert_int_equal(cfg->sensors[0].bus_index, 1);
	cg_config_free(cfg);
	free(text);
}

/* Lots, aligned polling and report on change. */
static void test_lots_and_sensor_options(void **state)
{
	cg_config_t *cfg;
	char *text = edit("/sensors/1",
	                  "{ 'id': 'bay-1', 'bus': 'rs485-1', 'driver': 'modbus', 'profile': '@P',"
	                  "  'unit_id': 2, 'aligned': true,"
	                  "  'report_on_change': { 'deadband': 0.5 } }",
	                  "/lots", "[ { 'id': 'lot-1', 'bays': [ 'aq-001', 'bay-1' ] } ]", NULL);

	cfg = expect_valid(text);
	free(text);
	assert_false(cfg->sensors[0].aligned);
	assert_false(cfg->sensors[0].report_on_change);
	assert_true(cfg->sensors[1].aligned);
	assert_true(cfg->sensors[1].report_on_change);
	assert_true(cfg->sensors[1].deadband == 0.5);
	assert_true(cfg->sensors[1].max_silence_s == 300);
	assert_int_equal(cfg->n_lots, 1);
	assert_string_equal(cfg->lots[0].id, "lot-1");
	assert_int_equal(cfg->lots[0].n_bays, 2);
	assert_string_equal(cfg->lots[0].bays[1], "bay-1");
	assert_true(cfg->lots[0].max_interval_s == 60);
	cg_config_free(cfg);

	expect_edit("/lots", "[ { 'id': 'lot-1', 'bays': [ 'nope' ] } ]",
	            "cfg.json: /lots/0/bays/0: no sensor \"nope\"");
	expect_edit("/lots", "[ { 'id': 'lot-1', 'bays': [ 'aq-001', 'aq-001' ] } ]",
	            "cfg.json: /lots/0/bays/1: bay \"aq-001\" named twice");
	expect_edit("/lots", "[ { 'id': 'aq-001', 'bays': [ 'aq-001' ] } ]",
	            "cfg.json: /lots/0/id: \"aq-001\" is a sensor id; a lot needs its own");
	expect_edit("/lots", "[ { 'id': 'lot-1' } ]", "cfg.json: /lots/0/bays: required key missing");
	expect_edit("/lots", "[ { 'id': 'lot-1', 'bays': [] } ]",
	            "cfg.json: /lots/0/bays: must name at least one bay");
	expect_edit("/lots",
	            "[ { 'id': 'l', 'bays': [ 'aq-001' ] }, { 'id': 'l', 'bays': [ 'aq-001' ] } ]",
	            "cfg.json: /lots/1/id: duplicate id \"l\" (first at /lots/0)");
	expect_edit("/lots", "[ { 'id': 'l', 'bays': [ 'aq-001' ], 'max_interval_s': 0 } ]",
	            "cfg.json: /lots/0/max_interval_s: must be a number from 1 to 86400");
	expect_edit("/sensors/0/aligned", "1", "cfg.json: /sensors/0/aligned: must be true or false");
	expect_edit("/sensors/0/report_on_change", "{ 'deadband': -1 }",
	            "cfg.json: /sensors/0/report_on_change/deadband: must be a number from 0 to "
	            "1000000000000");
	expect_edit("/sensors/0/report_on_change", "{ 'every': 3 }",
	            "cfg.json: /sensors/0/report_on_change/every: unknown key");
}

/* The driver's own keys are judged by the driver's check(), under the
 * sensor's pointer; the exact words are the driver's. */
/* A sensor's and a lot's "ngsi_ld" attributes: rendered for the encoder when
 * valid, each problem reported at its own member. */
static void test_ngsi_ld_attributes(void **state)
{
	cg_config_t *cfg;
	char *text =
	    edit("/sensors/0/ngsi_ld",
	         "{ 'category': [ 'onStreet' ], 'refParkingSite': 'urn:ngsi-ld:X:1' }", "/lots",
	         "[ { 'id': 'lot-1', 'bays': [ 'aq-001' ], 'ngsi_ld': { 'n': 3 } } ]", NULL);

	cfg = expect_valid(text);
	free(text);
	assert_string_equal(cfg->sensors[0].ngsi_attrs,
	                    ",\"category\":{\"type\":\"Property\",\"value\":[\"onStreet\"]},"
	                    "\"refParkingSite\":{\"type\":\"Relationship\",\"object\":"
	                    "\"urn:ngsi-ld:X:1\"}");
	assert_string_equal(cfg->lots[0].ngsi_attrs, ",\"n\":{\"type\":\"Property\",\"value\":3}");
	cg_config_free(cfg);
	text = cfgtext(base_config);
	cfg = expect_valid(text);
	free(text);
	assert_null(cfg->sensors[0].ngsi_attrs);
	cg_config_free(cfg);

	expect_edit("/sensors/0/ngsi_ld", "[ 1 ]",
	            "cfg.json: /sensors/0/ngsi_ld: must be an object");
	expect_edit("/sensors/0/ngsi_ld", "{ 'refDevice': 'not a uri' }",
	            "cfg.json: /sensors/0/ngsi_ld/refDevice: a Relationship (ref...): must be the "
	            "URI of the entity it refers to, e.g. "
	            "\"urn:ngsi-ld:OffStreetParking:gw-1:lot-1\"");
	expect_edit("/sensors/0/ngsi_ld", "{ 'seq': 1 }",
	            "cfg.json: /sensors/0/ngsi_ld/seq: is an attribute the entity writes itself");
	expect_edit("/sensors/0/ngsi_ld", "{ 'a b': 1 }",
	            "cfg.json: /sensors/0/ngsi_ld/a b: must be a plain term: a letter, then "
	            "letters, digits or _");
	expect_edit("/sensors/0/ngsi_ld", "{ 'x': { 'y': 1 } }",
	            "cfg.json: /sensors/0/ngsi_ld/x: a Property: must be a string, number, boolean "
	            "or a non-empty array of them");
	expect_edit("/lots", "[ { 'id': 'l', 'bays': [ 'aq-001' ], 'ngsi_ld': { 'x': null } } ]",
	            "cfg.json: /lots/0/ngsi_ld/x: a Property: must be a string, number, boolean "
	            "or a non-empty array of them");
}

static void test_driver_keys(void **state)
{
	const char *cases[][3] = {
	    {"/sensors/0/unit_id", "300", "cfg.json: /sensors/0/unit_id: "},
	    {"/sensors/0/merge", "'yes'", "cfg.json: /sensors/0/merge: "},
	    {"/sensors/0/profile", "'no-such-profile'", "cfg.json: /sensors/0/profile: "},
	    {"/sensors/0/profile", DEL, "cfg.json: /sensors/0/profile: "},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = edit(cases[i][0], cases[i][1], NULL);
		cg_diag_t d = {0};
		cg_config_t *cfg = NULL;

		assert_int_equal(cg_config_parse(text, strlen(text), "cfg.json", &cfg, &d),
		                 CG_EINVAL);
		assert_null(cfg);
		if (d.n != 1 || strncmp(d.lines[0], cases[i][2], strlen(cases[i][2])) != 0)
			print_lines(&d);
		assert_int_equal(d.n, 1);
		assert_true(strncmp(d.lines[0], cases[i][2], strlen(cases[i][2])) == 0);
		cg_diag_free(&d);
		free(text);
	}
}

static void test_tls(void **state)
{
	char *text;

	expect_edit("/mqtt/tls", "{}",
	            "cfg.json: /mqtt/tls: not allowed with a plain-text tcp:// uri; use ssl:// or "
	            "mqtts://");
	text = edit("/mqtt/uri", "'mqtt://b:1883'", "/mqtt/tls", "{}", NULL);
	expect_problems(
	    text,
	    "cfg.json: /mqtt/tls: not allowed with a plain-text mqtt:// uri; use ssl:// "
	    "or mqtts://",
	    NULL);
	free(text);

	/* TLS without a tls object (the system's CAs), and with an empty one. */
	text = edit("/mqtt/uri", "'mqtts://b:8883'", NULL);
	cg_config_free(expect_valid(text));
	free(text);
	text = edit("/mqtt/uri", "'ssl://b:8883'", "/mqtt/tls", "{}", NULL);
	cg_config_free(expect_valid(text));
	free(text);

	write_file("cert.pem", "cert\n", 0644);
	write_file("key.pem", "key\n", 0600);
	text =
	    edit("/mqtt/uri", "'ssl://b:8883'", "/mqtt/tls", "{ 'cert_file': 'cert.pem' }", NULL);
	expect_problems(text, "cfg.json: /mqtt/tls/cert_file: needs key_file too", NULL);
	free(text);
	text = edit("/mqtt/uri", "'ssl://b:8883'", "/mqtt/tls", "{ 'key_file': 'key.pem' }", NULL);
	expect_problems(text, "cfg.json: /mqtt/tls/key_file: needs cert_file too", NULL);
	free(text);
	text =
	    edit("/mqtt/uri", "'ssl://b:8883'", "/mqtt/tls", "{ 'ca_file': 'missing.pem' }", NULL);
	expect_problems(
	    text, "cfg.json: /mqtt/tls/ca_file: cannot be read: No such file or directory", NULL);
	free(text);
	text = edit("/mqtt/uri", "'ssl://b:8883'", "/mqtt/tls", "{ 'ca_file': '.' }", NULL);
	expect_problems(text, "cfg.json: /mqtt/tls/ca_file: is not a regular file", NULL);
	free(text);
}

static void test_reconnect_order(void **state)
{
	char *text = edit("/mqtt/reconnect_min_s", "30", "/mqtt/reconnect_max_s", "10", NULL);
	expect_problems(
	    text, "cfg.json: /mqtt/reconnect_max_s: must be at least reconnect_min_s (30)", NULL);
	free(text);
	/* Beyond its own bounds: one line, not a second one about the order. */
	text = edit("/mqtt/reconnect_min_s", "30", "/mqtt/reconnect_max_s", "'x'", NULL);
	expect_problems(text, "cfg.json: /mqtt/reconnect_max_s: must be a number from 0.1 to 86400",
	                NULL);
	free(text);
	text = edit("/mqtt/reconnect_min_s", "2.5", "/mqtt/reconnect_max_s", "2.5", NULL);
	cg_config_free(expect_valid(text));
	free(text);
}

static void test_malformed(void **state)
{
	expect_problems("{\n  \"gateway\": 1,\n}", "cfg.json: line 3 column 1: malformed JSON",
	                NULL);
	expect_problems("{\n\t\"a\": tru\n}", "cfg.json: line 2 column 7: malformed JSON", NULL);
	expect_problems("{\"a\": 1} x", "cfg.json: line 1 column 10: malformed JSON", NULL);
	expect_problems("{} {}", "cfg.json: line 1 column 4: malformed JSON", NULL);
	/* Columns count characters, as profiles' do: "été" is 3, not 5 bytes. */
	expect_problems("{\"name\": \"\xc3\xa9t\xc3\xa9\", ]",
	                "cfg.json: line 1 column 17: malformed JSON", NULL);
	expect_problems("", "cfg.json: : the file is empty", NULL);
	expect_problems(" \n\t\n", "cfg.json: : the file is empty", NULL);
	expect_problems("[1]", "cfg.json: : must be an object", NULL);
	expect_problems("\"gateway\"", "cfg.json: : must be an object", NULL);

	/* A NUL inside the text is not the end of it. */
	cg_diag_t d = {0};
	cg_config_t *cfg = NULL;
	assert_int_equal(cg_config_parse("{}\0{}", 5, "cfg.json", &cfg, &d), CG_EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "cfg.json: line 1 column 3: malformed JSON");
	cg_diag_free(&d);
}

static void test_all_collected(void **state)
{
	char *text = edit("/gateway/id", DEL, "/mqtt/qos", "2", "/mqtt/tls", "{}", "/store/colour",
	                  "1", "/buses/0/baud", "9601", "/buses/1/baud", "9600", "/sensors/0/bus",
	                  "'rs485-9'", "/sensors/1", "{ 'id': 'x', 'bus': 'lan' }", NULL);

	expect_problems(
	    text, "cfg.json: /gateway/id: required key missing",
	    "cfg.json: /mqtt/qos: must be an integer from 0 to 1",
	    "cfg.json: /mqtt/tls: not allowed with a plain-text tcp:// uri; use ssl:// or mqtts://",
	    "cfg.json: /store/colour: unknown key",
	    "cfg.json: /buses/0/baud: must be one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
	    "115200",
	    "cfg.json: /buses/1/baud: not valid for a modbus-tcp bus",
	    "cfg.json: /sensors/0/bus: no bus \"rs485-9\"", "cfg.json: /sensors/1/driver: required key missing",
	    NULL);
	free(text);
}

static bool any_line_has(const cg_diag_t *d, const char *s)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->lines[i], s))
			return true;
	return false;
}

static void test_password_file(void **state)
{
	static const char secret[] = "hunter2-secret";
	cg_diag_t d = {0};
	cg_config_t *cfg = NULL;
	char *text;

	write_file("open.pass", "hunter2-secret\n", 0644);
	text = edit("/mqtt/username", "'gw'", "/mqtt/password_file", "'open.pass'", NULL);
	assert_int_equal(cg_config_parse(text, strlen(text), "cfg.json", &cfg, &d), CG_EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "cfg.json: /mqtt/password_file: must not be readable by "
	                                "group or others (chmod 600)");
	assert_false(any_line_has(&d, secret));
	cg_diag_free(&d);
	free(text);

	write_file("group.pass", "hunter2-secret\n", 0620);
	text = edit("/mqtt/username", "'gw'", "/mqtt/password_file", "'group.pass'", NULL);
	expect_problems(text,
	                "cfg.json: /mqtt/password_file: must not be readable by group or others "
	                "(chmod 600)",
	                NULL);
	free(text);

	write_file("private.pass", "hunter2-secret\n", 0600);
	text = edit("/mqtt/username", "'gw'", "/mqtt/password_file", "'private.pass'", NULL);
	cfg = expect_valid(text);
	assert_string_equal(cfg->mqtt.password_file, "private.pass");
	assert_string_equal(cfg->mqtt.username, "gw");
	cg_config_free(cfg);
	free(text);

	text = edit("/mqtt/username", "'gw'", "/mqtt/password_file", "'missing.pass'", NULL);
	expect_problems(text, "cfg.json: /mqtt/password_file: cannot be read", NULL);
	free(text);

	/* A password without a user name cannot be sent in MQTT 3.1.1. */
	text = edit("/mqtt/password_file", "'private.pass'", NULL);
	cfg = NULL;
	assert_int_equal(cg_config_parse(text, strlen(text), "cfg.json", &cfg, &d), CG_EINVAL);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "cfg.json: /mqtt/password_file: needs username");
	assert_false(any_line_has(&d, secret));
	cg_diag_free(&d);
	free(text);
}

static void test_read_secret(void **state)
{
	char *s = NULL;

	write_file("s1", "line-one\nline-two\n", 0600);
	assert_int_equal(cg_config_read_secret("s1", &s), 0);
	assert_string_equal(s, "line-one");
	cg_secret_free(s);

	write_file("s2", "crlf\r\n", 0400);
	assert_int_equal(cg_config_read_secret("s2", &s), 0);
	assert_string_equal(s, "crlf");
	cg_secret_free(s);

	write_file("s3", "no-newline", 0600);
	assert_int_equal(cg_config_read_secret("s3", &s), 0);
	assert_string_equal(s, "no-newline");
	cg_secret_free(s);

	write_file("s4", "", 0600);
	assert_int_equal(cg_config_read_secret("s4", &s), 0);
	assert_string_equal(s, "");
	cg_secret_free(s);

	write_file("s5", "x\n", 0640);
	assert_int_equal(cg_config_read_secret("s5", &s), CG_EPERM);
	assert_null(s);
	write_file("s6", "x\n", 0604);
	assert_int_equal(cg_config_read_secret("s6", &s), CG_EPERM);
	assert_null(s);
	assert_int_equal(cg_config_read_secret("no-such-file", &s), CG_ENOENT);
	assert_null(s);
	assert_int_equal(cg_config_read_secret(".", &s), CG_ENOENT);
	assert_null(s);
}

static void test_profile_dirs(void **state)
{
	char *text = edit("/profile_dirs", "[ 'profiles', '/opt/p', '../q' ]", NULL);
	cg_config_t *cfg = expect_valid_at("/etc/citygate/cfg.json", text);

	assert_string_equal(cfg->profile_dirs[0], "/etc/citygate/profiles");
	assert_string_equal(cfg->profile_dirs[1], "/opt/p");
	assert_string_equal(cfg->profile_dirs[2], "/etc/citygate/../q");
	assert_string_equal(cfg->profile_dirs[3], CG_PROFILE_DIR_INSTALLED);
	assert_string_equal(cfg->profile_dirs[4], CG_PROFILE_DIR_SOURCE);
	assert_null(cfg->profile_dirs[5]);
	/* Other relative paths mean "next to the config file" too. */
	assert_string_equal(cfg->store.path, "/etc/citygate/outbox.db");
	cg_config_free(cfg);
	free(text);

	/* The drivers search them: a profile only in our own folder is found
	 * through profile_dirs, and not without it. */
	assert_int_equal(mkdir("profiles", 0755), 0);
	write_file("profiles/mine.json",
	           "{ \"name\": \"mine\", \"kind\": \"parking\", \"points\": [ { \"name\": "
	           "\"status\", \"table\": \"holding\", \"address\": 1, \"type\": \"u16\" } ] }\n",
	           0644);
	text = edit("/profile_dirs", "[ 'profiles' ]", "/sensors/0/profile", "'mine'", NULL);
	cfg = expect_valid(text);
	assert_string_equal(cfg->profile_dirs[0], "profiles");
	cg_config_free(cfg);
	free(text);

	text = edit("/sensors/0/profile", "'mine'", NULL);
	cg_diag_t d = {0};
	assert_int_equal(cg_config_parse(text, strlen(text), "cfg.json", &cfg, &d), CG_EINVAL);
	assert_int_equal(d.n, 1);
	assert_true(strncmp(d.lines[0], "cfg.json: /sensors/0/profile: ", 30) == 0);
	cg_diag_free(&d);
	free(text);
}

static void test_load(void **state)
{
	cg_diag_t d = {0};
	cg_config_t *cfg = (cg_config_t *)1;
	char path[4096];
	char *text;

	assert_int_equal(cg_config_load("no-such.json", &cfg, &d), CG_ENOENT);
	assert_null(cfg);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "no-such.json: : cannot read: No such file or directory");
	cg_diag_free(&d);

	assert_int_equal(cg_config_load(".", &cfg, &d), CG_ENOENT);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], ".: : cannot read: Is a directory");
	cg_diag_free(&d);

	/* Loaded by an absolute path, relative paths land next to the file. */
	assert_int_equal(mkdir("etc", 0755), 0);
	text = edit("/mqtt/username", "'gw'", "/mqtt/password_file", "'mqtt.pass'", NULL);
	write_file("etc/citygate.json", text, 0644);
	write_file("etc/mqtt.pass", "pw\n", 0600);
	free(text);
	snprintf(path, sizeof(path), "%s/etc/citygate.json", tmpdir);
	assert_int_equal(cg_config_load(path, &cfg, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(cfg->path, path);
	snprintf(path, sizeof(path), "%s/etc/outbox.db", tmpdir);
	assert_string_equal(cfg->store.path, path);
	snprintf(path, sizeof(path), "%s/etc/mqtt.pass", tmpdir);
	assert_string_equal(cfg->mqtt.password_file, path);
	cg_config_free(cfg);

	cg_config_free(NULL);
}

static void test_names(void **state)
{
	assert_string_equal(cg_bus_type_name(CG_BUS_MODBUS_RTU), "modbus-rtu");
	assert_string_equal(cg_bus_type_name(CG_BUS_MODBUS_TCP), "modbus-tcp");
	assert_string_equal(cg_bus_type_name(CG_BUS_SERIAL), "serial");
	assert_string_equal(cg_bus_type_name((cg_bus_type_t)3), "unknown");
	/* The parser's format names are the encoder's. */
	const char *formats[] = {"native", "ngsi-ld", "senml"};
	for (int f = 0; f < 3; f++) {
		char value[32];
		snprintf(value, sizeof(value), "'%s'", formats[f]);
		char *text = edit("/mqtt/format", value, NULL);
		cg_config_t *cfg = expect_valid(text);
		assert_string_equal(cg_format_name(cfg->mqtt.format), formats[f]);
		cg_config_free(cfg);
		free(text);
	}
}

/* The fixtures for the --check integration test give these lines, with the
 * file name as given on the command line. */
static void test_fixtures(void **state)
{
	static const char *const bad_syntax[] = {
	    "line 6 column 71: malformed JSON",
	    NULL,
	};
	static const char *const bad_values[] = {
	    "/gateway/id: must be 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
	    "/mqtt/topic_prefix: must not start or end with '/'",
	    "/mqtt/qos: must be an integer from 0 to 1",
	    "/store/path: required key missing",
	    "/store/max_rows: must be an integer from 0 to 9007199254740991",
	    "/buses/0/baud: must be one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200",
	    "/buses/0/parity: must be one of \"N\", \"E\", \"O\"",
	    "/buses/1/baud: not valid for a modbus-tcp bus",
	    "/sensors/0/colour: unknown key",
	    "/sensors/0/interval_s: must be a number from 0.05 to 86400",
	    NULL,
	};
	static const char *const bad_refs[] = {
	    "/mqtt/tls/ca_file: cannot be read: No such file or directory",
	    "/mqtt/tls: not allowed with a plain-text tcp:// uri; use ssl:// or mqtts://",
	    "/buses/2/id: duplicate id \"rs485-1\" (first at /buses/0)",
	    "/sensors/1/driver: driver \"modbus\" does not work on a serial bus",
	    "/sensors/2/bus: no bus \"rs485-9\"",
	    "/sensors/3/id: duplicate id \"aq-001\" (first at /sensors/0)",
	    NULL,
	};
	static const struct {
		const char *name;
		const char *const *lines;
	} fixtures[] = {
	    {"bad-syntax.json", bad_syntax},
	    {"bad-values.json", bad_values},
	    {"bad-refs.json", bad_refs},
	};

	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		char path[4096], line[5200];
		cg_diag_t d = {0};
		cg_config_t *cfg = NULL;
		size_t n;

		snprintf(path, sizeof(path), "%s/tests/fixtures/config/%s", CG_SOURCE_DIR,
		         fixtures[i].name);
		assert_int_equal(cg_config_load(path, &cfg, &d), CG_EINVAL);
		assert_null(cfg);
		for (n = 0; fixtures[i].lines[n]; n++) {
			snprintf(line, sizeof(line), "%s: %s", path, fixtures[i].lines[n]);
			if (n >= d.n || strcmp(d.lines[n], line) != 0) {
				print_message("expected: %s\n", line);
				print_lines(&d);
			}
			assert_true(n < d.n);
			assert_string_equal(d.lines[n], line);
		}
		assert_int_equal(d.n, n);
		cg_diag_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_schema),
	    cmocka_unit_test(test_type_mismatch),
	    cmocka_unit_test(test_out_of_bounds),
	    cmocka_unit_test(test_enums),
	    cmocka_unit_test(test_mqtt5_keys),
	    cmocka_unit_test(test_batch_keys),
	    cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_mqtt_strings),
	    cmocka_unit_test(test_unknown_keys),
	    cmocka_unit_test(test_bus_type_keys),
	    cmocka_unit_test(test_required),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_references),
	    cmocka_unit_test(test_lots_and_sensor_options),
	    cmocka_unit_test(test_driver_keys),
	    cmocka_unit_test(test_ngsi_ld_attributes),
	    cmocka_unit_test(test_tls),
	    cmocka_unit_test(test_reconnect_order),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_all_collected),
	    cmocka_unit_test(test_password_file),
	    cmocka_unit_test(test_read_secret),
	    cmocka_unit_test(test_profile_dirs),
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_fixtures),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
