/* The config file: JSON checked by one key table per object; the tables also word each problem. */
#include "gateway/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/build_config.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/jsonfile.h"
#include "base/keys.h"
#include "base/secret.h"
#include "uplink/mqtt_text.h"
#include "uplink/publisher.h"

/* Enums are stored through int pointers by the generic walker. */
_Static_assert(sizeof(cg_format_t) == sizeof(int), "cg_format_t must be int-sized");
_Static_assert(sizeof(cg_bus_type_t) == sizeof(int), "cg_bus_type_t must be int-sized");

#define CG_PTR_MAX  512
#define CG_MSG_MAX  256
#define CG_COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* The largest integer a JSON number (a double) holds exactly: the bound of 64-bit fields. */
#define CG_JSON_INT_MAX 9007199254740991.0
/* A config file larger than this is certainly a mistake (a log or a database). */
#define CG_CONFIG_MAX_BYTES (16 * 1024 * 1024)
/* The longest secret read from a password file, newline included. */
#define CG_SECRET_MAX 4096
/* The longest mqtt.username accepted. */
#define CG_USERNAME_MAX 256

/* ---- enums and sets shared by the tables and the name functions ---- */

static const char *const cg_format_names[] = {"native", "ngsi-ld", "senml", NULL};
static const char *const cg_sync_names[] = {"normal", "full", NULL};
/* In the order of cg_clock_policy_t. */
static const char *const cg_clock_names[] = {"trust", "ntp", NULL};
static const char *const cg_version_names[] = {"auto", "5", "3.1.1", NULL};
static const int cg_version_values[] = {CG_MQTT_AUTO, CG_MQTT_5, CG_MQTT_311};
/* The largest 32-bit MQTT interval (session and message expiry). */
#define CG_MQTT_INTERVAL_MAX 4294967295.0
static const char *const cg_parity_names[] = {"N", "E", "O", NULL};
static const int cg_parity_values[] = {'N', 'E', 'O'};
static const char *const cg_bus_type_names[] = {"modbus-rtu", "modbus-tcp", "serial",
                                                "modbus-rtu-tcp", NULL};
static const int cg_bus_type_values[] = {CG_BUS_MODBUS_RTU, CG_BUS_MODBUS_TCP, CG_BUS_SERIAL,
                                         CG_BUS_MODBUS_RTU_TCP};
static const int cg_bauds[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200};
static const int cg_data_bits[] = {7, 8};
static const int cg_stop_bits[] = {1, 2};

/* URI schemes Paho accepts for a broker, and whether each is TLS. */
static const struct {
	const char *prefix;
	bool tls;
} cg_uri_schemes[] = {
    {"tcp://", false},
    {"mqtt://", false},
    {"ssl://", true},
    {"mqtts://", true},
};

/* ---- string rules ---- */

/* Ids become MQTT topic levels and reading fields (CG_ID_MAX), so they are
 * short and free of '/', '+', '#' and spaces. */
static const char *cg_check_id(const char *s)
{
	static const char msg[] = "must be 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
	size_t n = strlen(s);

	if (n < 1 || n > CG_ID_MAX - 1)
		return msg;
	for (const char *c = s; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return msg;
	}
	return NULL;
}

/* The scheme of a broker URI, or -1 when it has none Paho would accept. */
static int cg_uri_scheme(const char *uri)
{
	for (size_t i = 0; i < CG_COUNT(cg_uri_schemes); i++) {
		size_t n = strlen(cg_uri_schemes[i].prefix);
		if (strncmp(uri, cg_uri_schemes[i].prefix, n) == 0)
			return (int)i;
	}
	return -1;
}

/* A broker URI: a known scheme, then a host with no spaces. */
static const char *cg_check_uri(const char *s)
{
	int i = cg_uri_scheme(s);
	const char *host;

	if (i < 0)
		return "must start with tcp://, mqtt://, ssl:// or mqtts://";
	host = s + strlen(cg_uri_schemes[i].prefix);
	if (!*host || *host == ':' || *host == '/' || strpbrk(host, " \t\r\n"))
		return "must name a host after the scheme, e.g. tcp://broker:1883";
	return NULL;
}

/* A topic prefix is published under, so it holds no wildcard and no empty
 * level, and joins the rest of the topic with exactly one '/'. */
static const char *cg_check_topic(const char *s)
{
	if (!*s)
		return "must not be empty";
	if (strpbrk(s, "+#"))
		return "must not contain '+' or '#'";
	if (s[0] == '/' || s[strlen(s) - 1] == '/')
		return "must not start or end with '/'";
	if (strstr(s, "//"))
		return "must not contain an empty level (\"//\")";
	return NULL;
}

/* The MQTT rules for the strings the client sends (mqtt_text.h): a broker refuses what
 * breaks them, or drops the connection, so --check refuses them first. */
static const char *cg_check_mqtt_text(const char *s)
{
	static char msg[96];
	const char *why = cg_mqtt_text_problem(s, strlen(s));

	if (!why)
		return NULL;
	snprintf(msg, sizeof(msg), "must be UTF-8 without control characters (it %s)", why);
	return msg;
}

/* A topic prefix must also make topics a broker takes: MQTT text, no leading '$'
 * ($SYS/... is the broker's), and short enough that the longest topic any sensor can
 * produce fits the gateway's topic buffers (CG_TOPIC_PREFIX_MAX). */
static const char *cg_check_topic_prefix(const char *s)
{
	static char msg[96];
	const char *why = cg_check_topic(s);

	if (why)
		return why;
	if (strlen(s) > CG_TOPIC_PREFIX_MAX) {
		snprintf(msg, sizeof(msg),
		         "must be at most %d bytes, so that every sensor's topic fits",
		         CG_TOPIC_PREFIX_MAX);
		return msg;
	}
	if (s[0] == '$')
		return "must not start with '$' (brokers keep $SYS/... to themselves)";
	return cg_check_mqtt_text(s);
}

/* A user name: an MQTT string of reasonable length. */
static const char *cg_check_username(const char *s)
{
	if (strlen(s) > CG_USERNAME_MAX)
		return "must be at most 256 bytes";
	return cg_check_mqtt_text(s);
}

/* ---- tables ---- */

static void cg_each_profile_dir(cg_walk_t *w, const cJSON *array, const char *pointer);
static void cg_each_bus(cg_walk_t *w, const cJSON *array, const char *pointer);
static void cg_each_sensor(cg_walk_t *w, const cJSON *array, const char *pointer);
static void cg_each_lot(cg_walk_t *w, const cJSON *array, const char *pointer);
static void cg_check_change(cg_walk_t *w, const cJSON *obj, void *base);
static void cg_ngsi_ld_attrs(cg_walk_t *w, const cJSON *obj, const char *ptr, char **out);
static void cg_check_gateway(cg_walk_t *w, const cJSON *gateway, void *base);
static void cg_check_mqtt(cg_walk_t *w, const cJSON *mqtt, void *base);
static void cg_check_batch(cg_walk_t *w, const cJSON *batch, void *base);

#define CG_CFG(f)       offsetof(cg_config_t, f)
#define CG_MQTT(f)      offsetof(cg_mqtt_config_t, f)
#define CG_STORE(f)     offsetof(cg_store_config_t, f)
#define CG_BUS(f)       offsetof(cg_bus_config_t, f)
#define CG_SENSOR(f)    offsetof(cg_sensor_config_t, f)
#define CG_LOT(f)       offsetof(cg_lot_config_t, f)
#define CG_SERIAL_BUSES (CG_BUS_MODBUS_RTU | CG_BUS_SERIAL)
#define CG_TCP_BUSES    (CG_BUS_MODBUS_TCP | CG_BUS_MODBUS_RTU_TCP)

/* One row per key reads as a table; the formatter would put every field of a
 * row on its own line. */
/* clang-format off */
static const cg_key_t cg_location_keys[] = {
	{.name = "lat", .type = CG_J_NUMBER, .flags = CG_K_REQUIRED, .field = CG_F_DOUBLE,
	 .offset = CG_CFG(lat), .min = -90, .max = 90},
	{.name = "lon", .type = CG_J_NUMBER, .flags = CG_K_REQUIRED, .field = CG_F_DOUBLE,
	 .offset = CG_CFG(lon), .min = -180, .max = 180},
	{.name = NULL},
};

/* Offsets relative to cg_config_t, like the location's. */
static const cg_key_t cg_gateway_keys[] = {
	{.name = "id", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_CFG(gateway_id), .check = cg_check_id},
	{.name = "location", .type = CG_J_OBJECT, .offset = 0, .sub = cg_location_keys},
	{.name = "health_interval_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_CFG(health_interval_s), .min = 1, .max = 86400, .def = 60},
	{.name = "clock", .type = CG_J_STRING, .field = CG_F_INT, .offset = CG_CFG(clock_policy),
	 .names = cg_clock_names, .def = CG_CLOCK_POLICY_TRUST},
	{.name = NULL},
};

static const cg_key_t cg_tls_keys[] = {
	{.name = "ca_file", .type = CG_J_STRING, .flags = CG_K_PATH | CG_K_READABLE,
	 .field = CG_F_STR, .offset = CG_MQTT(ca_file), .min = 1},
	{.name = "cert_file", .type = CG_J_STRING, .flags = CG_K_PATH | CG_K_READABLE,
	 .field = CG_F_STR, .offset = CG_MQTT(cert_file), .min = 1},
	{.name = "key_file", .type = CG_J_STRING, .flags = CG_K_PATH | CG_K_READABLE,
	 .field = CG_F_STR, .offset = CG_MQTT(key_file), .min = 1},
	{.name = NULL},
};

/* Offsets relative to cg_mqtt_config_t, like the mqtt keys'. */
static const cg_key_t cg_expiry_keys[] = {
	{.name = "air-quality", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_MQTT(expiry_air_quality_s), .min = 0, .max = CG_MQTT_INTERVAL_MAX, .def = 0},
	{.name = "parking", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_MQTT(expiry_parking_s), .min = 0, .max = CG_MQTT_INTERVAL_MAX, .def = 0},
	{.name = "traffic", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_MQTT(expiry_traffic_s), .min = 0, .max = CG_MQTT_INTERVAL_MAX, .def = 0},
	{.name = "weather", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_MQTT(expiry_weather_s), .min = 0, .max = CG_MQTT_INTERVAL_MAX, .def = 0},
	{.name = NULL},
};

/* Offsets relative to cg_mqtt_config_t too. A batch's bytes are bounded by
 * the largest MQTT packet (256 MiB) here, and by the broker's Maximum Packet
 * Size when it connects (gateway/sender.c). */
static const cg_key_t cg_batch_keys[] = {
	{.name = "max_readings", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_MQTT(batch_max_readings), .min = 1, .max = 1000, .def = 100},
	{.name = "max_bytes", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_MQTT(batch_max_bytes), .min = 1024, .max = 268435455, .def = 65536},
	{.name = "max_latency_ms", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_MQTT(batch_max_latency_ms), .min = 0, .max = 3600000, .def = 1000},
	{.name = NULL},
};

static const cg_key_t cg_mqtt_keys[] = {
	{.name = "uri", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_MQTT(uri), .check = cg_check_uri},
	{.name = "topic_prefix", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_MQTT(topic_prefix), .check = cg_check_topic_prefix},
	{.name = "qos", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_MQTT(qos), .min = 0, .max = 1, .def = 1},
	{.name = "format", .type = CG_J_STRING, .field = CG_F_INT,
	 .offset = CG_MQTT(format), .names = cg_format_names, .def = CG_FORMAT_NATIVE},
	{.name = "client_id", .type = CG_J_STRING, .field = CG_F_STR,
	 .offset = CG_MQTT(client_id), .min = 1, .max = 64, .check = cg_check_mqtt_text},
	{.name = "username", .type = CG_J_STRING, .field = CG_F_STR,
	 .offset = CG_MQTT(username), .min = 1, .check = cg_check_username},
	{.name = "password_file", .type = CG_J_STRING, .flags = CG_K_PATH, .field = CG_F_STR,
	 .offset = CG_MQTT(password_file), .min = 1},
	{.name = "tls", .type = CG_J_OBJECT, .offset = 0, .sub = cg_tls_keys},
	{.name = "inflight", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_MQTT(inflight), .min = 1, .max = 65535, .def = 64},
	{.name = "keepalive_s", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_MQTT(keepalive_s), .min = 5, .max = 3600, .def = 30},
	{.name = "reconnect_min_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_MQTT(reconnect_min_s), .min = 0.1, .max = 3600, .def = 1},
	{.name = "reconnect_max_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_MQTT(reconnect_max_s), .min = 0.1, .max = 86400, .def = 60},
	{.name = "replay_rate", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_MQTT(replay_rate), .min = 0, .max = 1000000, .def = 0},
	{.name = "version", .type = CG_J_STRING, .field = CG_F_INT, .offset = CG_MQTT(version),
	 .names = cg_version_names, .values = cg_version_values, .def = CG_MQTT_AUTO},
	{.name = "session_expiry_s", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_MQTT(session_expiry_s), .min = 0, .max = CG_MQTT_INTERVAL_MAX, .def = 0},
	{.name = "message_expiry_s", .type = CG_J_OBJECT, .offset = 0, .sub = cg_expiry_keys},
	{.name = "batch", .type = CG_J_OBJECT, .offset = 0, .sub = cg_batch_keys,
	 .post = cg_check_batch},
	{.name = NULL},
};

static const cg_key_t cg_store_keys[] = {
	{.name = "path", .type = CG_J_STRING, .flags = CG_K_REQUIRED | CG_K_PATH, .field = CG_F_STR,
	 .offset = CG_STORE(path), .min = 1},
	{.name = "max_rows", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_STORE(max_rows), .min = 0, .max = CG_JSON_INT_MAX, .def = 1000000},
	{.name = "max_bytes", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_STORE(max_bytes), .min = 0, .max = CG_JSON_INT_MAX, .def = 268435456},
	{.name = "max_age_s", .type = CG_J_INTEGER, .field = CG_F_INT64,
	 .offset = CG_STORE(max_age_s), .min = 0, .max = CG_JSON_INT_MAX, .def = 604800},
	{.name = "sync", .type = CG_J_STRING, .field = CG_F_BOOL,
	 .offset = CG_STORE(sync_full), .names = cg_sync_names, .def = 0},
	{.name = "batch_ms", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_STORE(batch_ms), .min = 1, .max = 10000, .def = 100},
	{.name = NULL},
};

static const cg_key_t cg_bus_keys[] = {
	{.name = "id", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_BUS(id), .check = cg_check_id},
	{.name = "type", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_INT,
	 .offset = CG_BUS(line.type), .names = cg_bus_type_names, .values = cg_bus_type_values},
	{.name = "device", .type = CG_J_STRING, .flags = CG_K_REQUIRED | CG_K_PATH, .field = CG_F_STR,
	 .offset = CG_BUS(line.device), .min = 1, .variants = CG_SERIAL_BUSES},
	{.name = "baud", .type = CG_J_INTEGER, .field = CG_F_INT, .offset = CG_BUS(line.baud),
	 .values = cg_bauds, .n_values = CG_COUNT(cg_bauds), .def = 9600,
	 .variants = CG_SERIAL_BUSES},
	{.name = "parity", .type = CG_J_STRING, .field = CG_F_CHAR, .offset = CG_BUS(line.parity),
	 .names = cg_parity_names, .values = cg_parity_values, .def = 'N',
	 .variants = CG_SERIAL_BUSES},
	{.name = "data_bits", .type = CG_J_INTEGER, .field = CG_F_INT, .offset = CG_BUS(line.data_bits),
	 .values = cg_data_bits, .n_values = CG_COUNT(cg_data_bits), .def = 8,
	 .variants = CG_SERIAL_BUSES},
	{.name = "stop_bits", .type = CG_J_INTEGER, .field = CG_F_INT, .offset = CG_BUS(line.stop_bits),
	 .values = cg_stop_bits, .n_values = CG_COUNT(cg_stop_bits), .def = 1,
	 .variants = CG_SERIAL_BUSES},
	{.name = "rs485", .type = CG_J_BOOL, .field = CG_F_BOOL, .offset = CG_BUS(line.rs485),
	 .def = 0, .variants = CG_BUS_MODBUS_RTU},
	{.name = "host", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_BUS(line.host), .min = 1, .variants = CG_TCP_BUSES},
	{.name = "port", .type = CG_J_INTEGER, .field = CG_F_INT, .offset = CG_BUS(line.port),
	 .min = 1, .max = 65535, .def = 502, .variants = CG_TCP_BUSES},
	{.name = "timeout_ms", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_BUS(line.timeout_ms), .min = 10, .max = 60000, .def = 500},
	{.name = "gap_ms", .type = CG_J_INTEGER, .field = CG_F_INT,
	 .offset = CG_BUS(line.gap_ms), .min = 0, .max = 10000, .def = 0},
	{.name = "backoff_max_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_BUS(backoff_max_s), .min = 1, .max = 3600, .def = 60},
	{.name = NULL},
};

/* Offsets relative to cg_sensor_config_t. */
static const cg_key_t cg_change_keys[] = {
	{.name = "deadband", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_SENSOR(deadband), .min = 0, .max = 1e12, .def = 0},
	{.name = "max_silence_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_SENSOR(max_silence_s), .min = 1, .max = 86400, .def = 300},
	{.name = NULL},
};

/* The keys every sensor has; the rest belong to its driver. */
static const cg_key_t cg_sensor_keys[] = {
	{.name = "id", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_SENSOR(id), .check = cg_check_id},
	{.name = "bus", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_SENSOR(bus), .min = 1},
	{.name = "driver", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_SENSOR(driver_name), .min = 1},
	{.name = "interval_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_SENSOR(interval_s), .min = 0.05, .max = 86400, .def = 10},
	{.name = "format", .type = CG_J_STRING, .field = CG_F_INT,
	 .offset = CG_SENSOR(format), .names = cg_format_names, .def = -1},
	{.name = "aligned", .type = CG_J_BOOL, .field = CG_F_BOOL,
	 .offset = CG_SENSOR(aligned), .def = 0},
	{.name = "report_on_change", .type = CG_J_OBJECT, .offset = 0, .sub = cg_change_keys,
	 .post = cg_check_change},
	/* Members checked by cg_ngsi_ld_attrs. */
	{.name = "ngsi_ld", .type = CG_J_OBJECT},
	{.name = NULL},
};

static const cg_key_t cg_lot_keys[] = {
	{.name = "id", .type = CG_J_STRING, .flags = CG_K_REQUIRED, .field = CG_F_STR,
	 .offset = CG_LOT(id), .check = cg_check_id},
	/* The bays are checked against the sensors by cg_each_lot. */
	{.name = "bays", .type = CG_J_ARRAY, .flags = CG_K_REQUIRED},
	{.name = "max_interval_s", .type = CG_J_NUMBER, .field = CG_F_DOUBLE,
	 .offset = CG_LOT(max_interval_s), .min = 1, .max = 86400, .def = 60},
	/* Members checked by cg_ngsi_ld_attrs. */
	{.name = "ngsi_ld", .type = CG_J_OBJECT},
	{.name = NULL},
};

/* One element of profile_dirs. */
static const cg_key_t cg_profile_dir_key = {
	.name = "", .type = CG_J_STRING, .flags = CG_K_PATH, .min = 1};

static const cg_key_t cg_root_keys[] = {
	{.name = "gateway", .type = CG_J_OBJECT, .flags = CG_K_REQUIRED, .offset = 0,
	 .sub = cg_gateway_keys, .post = cg_check_gateway},
	{.name = "mqtt", .type = CG_J_OBJECT, .flags = CG_K_REQUIRED, .offset = CG_CFG(mqtt),
	 .sub = cg_mqtt_keys, .post = cg_check_mqtt},
	{.name = "store", .type = CG_J_OBJECT, .flags = CG_K_REQUIRED, .offset = CG_CFG(store),
	 .sub = cg_store_keys},
	/* Before sensors: their drivers look profiles up in these folders. */
	{.name = "profile_dirs", .type = CG_J_ARRAY, .each = cg_each_profile_dir},
	/* Before sensors: sensors name a bus. */
	{.name = "buses", .type = CG_J_ARRAY, .flags = CG_K_REQUIRED, .each = cg_each_bus},
	{.name = "sensors", .type = CG_J_ARRAY, .flags = CG_K_REQUIRED, .each = cg_each_sensor},
	/* After sensors: lots name them. */
	{.name = "lots", .type = CG_J_ARRAY, .each = cg_each_lot},
	{.name = NULL},
};
/* clang-format on */

/* ---- helpers ---- */

/* The config a walk is building. */
static cg_config_t *cfg_of(cg_walk_t *w)
{
	return w->user;
}

static char *cg_strdup(cg_walk_t *w, const char *s)
{
	char *c = strdup(s);

	if (!c)
		w->nomem = true;
	return c;
}

/* Whether obj has a member called name (cJSON_HasObjectItem ignores case). */
static bool cg_has(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name) != NULL;
}

/* Allocates one zeroed struct of size bytes per member of array, their
 * number in *n. NULL when there is nothing to parse: no array (its absence
 * is the walk's to report), an empty one (a problem when empty_msg says so),
 * or no memory. */
static void *cg_array_alloc(cg_walk_t *w, const cJSON *array, const char *pointer,
                            const char *empty_msg, size_t size, size_t *n)
{
	size_t count = array ? (size_t)cJSON_GetArraySize(array) : 0;
	void *items;

	if (count == 0) {
		if (array && empty_msg)
			cg_walk_problem(w, pointer, "%s", empty_msg);
		return NULL;
	}
	items = calloc(count, size);
	if (!items)
		w->nomem = true;
	else
		*n = count;
	return items;
}

/* A serial server's port takes one client at a time, like the line behind
 * it: two modbus-rtu-tcp buses on one host:port would take turns throwing
 * each other off. */
static void cg_check_serial_servers(cg_walk_t *w, const char *pointer, const cg_config_t *cfg)
{
	char ptr[CG_PTR_MAX], key_ptr[CG_PTR_MAX];

	for (size_t i = 0; i < cfg->n_buses; i++) {
		const cg_bus_line_t *a = &cfg->buses[i].line;

		for (size_t j = 0; a->type == CG_BUS_MODBUS_RTU_TCP && a->host && j < i; j++) {
			const cg_bus_line_t *b = &cfg->buses[j].line;

			if (b->type != CG_BUS_MODBUS_RTU_TCP || !b->host || strcmp(a->host, b->host) ||
			    a->port != b->port)
				continue;
			cg_pointer_index(ptr, sizeof(ptr), pointer, i);
			cg_pointer_key(key_ptr, sizeof(key_ptr), ptr, "port");
			cg_walk_problem(w, key_ptr, "%s:%d is already used by %s/%zu; a serial "
			                "server's port is one line", a->host, a->port, pointer, j);
			break;
		}
	}
}

/* Reports each of the n structs from first (stride bytes apart) whose string
 * at offset, the member key, an earlier one has: a duplicate id, or (unique
 * ids) a "value ... already used by" the earlier one. */
static void cg_check_unique(cg_walk_t *w, const char *pointer, const void *first, size_t n,
                            size_t stride, size_t offset, const char *key)
{
	char ptr[CG_PTR_MAX], key_ptr[CG_PTR_MAX];
	bool is_id = strcmp(key, "id") == 0;

	for (size_t i = 0; i < n; i++) {
		const char *v = *(char *const *)((const char *)first + i * stride + offset);

		for (size_t j = 0; v && j < i; j++) {
			const char *u = *(char *const *)((const char *)first + j * stride + offset);

			if (!u || strcmp(u, v) != 0)
				continue;
			cg_pointer_index(ptr, sizeof(ptr), pointer, i);
			cg_pointer_key(key_ptr, sizeof(key_ptr), ptr, key);
			if (is_id)
				cg_walk_problem(w, key_ptr, "duplicate id \"%s\" (first at %s/%zu)",
				                v, pointer, j);
			else
				cg_walk_problem(w, key_ptr, "\"%s\" is already used by %s/%zu", v,
				                pointer, j);
			break;
		}
	}
}

/* ---- arrays ---- */

/* Builds cfg->profile_dirs: the file's folders (relative ones resolved
 * against the config's folder), then the installed and the source-tree
 * folders. array is NULL when the key is absent or not an array. */
static void cg_each_profile_dir(cg_walk_t *w, const cJSON *array, const char *pointer)
{
	size_t n = array ? (size_t)cJSON_GetArraySize(array) : 0, k = 0, i = 0;
	char **dirs = calloc(n + 3, sizeof(*dirs));
	char ptr[CG_PTR_MAX];
	char msg[CG_MSG_MAX];
	const cJSON *e;

	if (!dirs) {
		w->nomem = true;
		return;
	}
	cfg_of(w)->profile_dirs = dirs;
	cJSON_ArrayForEach(e, array)
	{
		cg_pointer_index(ptr, sizeof(ptr), pointer, i++);
		if (cg_key_problem(&cg_profile_dir_key, e, msg, sizeof(msg))) {
			cg_walk_problem(w, ptr, "%s", msg);
			continue;
		}
		if ((dirs[k] = cg_path_resolve(w->file, e->valuestring)))
			k++;
		else
			w->nomem = true;
	}
	if (!(dirs[k++] = cg_strdup(w, CG_PROFILE_DIR_INSTALLED)))
		return;
	dirs[k] = cg_strdup(w, CG_PROFILE_DIR_SOURCE);
}

/* The bus type an object names, or 0 when its "type" is absent or invalid
 * (that problem is reported by the walk). */
static unsigned cg_bus_type_of(const cJSON *bus)
{
	const cg_key_t *k = cg_key_find(cg_bus_keys, "type");
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(bus, "type");
	char msg[CG_MSG_MAX];

	if (!item || cg_key_problem(k, item, msg, sizeof(msg)))
		return 0;
	return (unsigned)cg_key_value(k, item);
}

/* Parses the buses array: each bus by the bus table under its own type, then
 * ids unique and no serial device used by two buses (two workers on one
 * half-duplex line would talk over each other). */
static void cg_each_bus(cg_walk_t *w, const cJSON *array, const char *pointer)
{
	cg_config_t *cfg = cfg_of(w);
	char ptr[CG_PTR_MAX], label[32];
	const cJSON *e;
	size_t i = 0;

	cfg->buses = cg_array_alloc(w, array, pointer, "must contain at least one bus",
	                            sizeof(*cfg->buses), &cfg->n_buses);
	if (!cfg->buses)
		return;
	cJSON_ArrayForEach(e, array)
	{
		cg_keys_scope_t scope = {.variant = cg_bus_type_of(e), .variant_label = label};

		snprintf(label, sizeof(label), "%s bus", cg_bus_type_name(scope.variant));
		cg_pointer_index(ptr, sizeof(ptr), pointer, i);
		cg_keys_walk(w, e, ptr, cg_bus_keys, &cfg->buses[i], &scope, NULL);
		i++;
	}
	cg_check_unique(w, pointer, cfg->buses, cfg->n_buses, sizeof(*cfg->buses), CG_BUS(id),
	                "id");
	cg_check_unique(w, pointer, cfg->buses, cfg->n_buses, sizeof(*cfg->buses),
	                CG_BUS(line.device), "device");
	cg_check_serial_servers(w, pointer, cfg);
}

/* The bus called id, or -1. */
static long cg_bus_find(const cg_config_t *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_buses; i++)
		if (cfg->buses[i].id && strcmp(cfg->buses[i].id, id) == 0)
			return (long)i;
	return -1;
}

/* Writes the names of the registered drivers, comma-separated. */
static void cg_driver_list(char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; cg_drivers[i] && o < size; i++)
		o +=
		    (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", cg_drivers[i]->name);
}

/* Parses one sensor object at index i: its common keys by the sensor table,
 * its driver and bus resolved and matched, then the keys the driver owns by
 * the driver's table and check(), into the options its open() will take. */
static void cg_sensor(cg_walk_t *w, const cJSON *e, size_t i, const char *ptr)
{
	cg_config_t *cfg = cfg_of(w);
	cg_sensor_config_t *s = &cfg->sensors[i];
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "driver");
	const cg_driver_t *driver = NULL;
	static const char *const no_dirs[] = {NULL};
	/* Without a known driver nobody can tell which other keys are right. */
	cg_keys_scope_t scope = {.others = true};
	cg_driver_env_t env;
	char key_ptr[CG_PTR_MAX];
	char names[CG_MSG_MAX];
	long bus;
	int rc;

	if (cJSON_IsString(d) && d->valuestring)
		driver = cg_driver_find(d->valuestring);
	if (driver)
		scope = (cg_keys_scope_t){.also = driver->keys};
	cg_keys_walk(w, e, ptr, cg_sensor_keys, s, &scope, NULL);
	if (!(s->pointer = cg_strdup(w, ptr)))
		w->nomem = true;
	s->driver = driver;
	cg_ngsi_ld_attrs(w, e, ptr, &s->ngsi_attrs);

	if (s->driver_name && !driver) {
		cg_pointer_key(key_ptr, sizeof(key_ptr), ptr, "driver");
		cg_driver_list(names, sizeof(names));
		cg_walk_problem(w, key_ptr, "no driver \"%s\" (drivers: %s)", s->driver_name,
		                names);
	}
	/* No buses parsed means that problem is reported already; don't repeat
	 * it for every sensor. */
	bus = s->bus && cfg->n_buses > 0 ? cg_bus_find(cfg, s->bus) : 0;
	if (bus < 0) {
		cg_pointer_key(key_ptr, sizeof(key_ptr), ptr, "bus");
		cg_walk_problem(w, key_ptr, "no bus \"%s\"", s->bus);
	} else if (s->bus && cfg->n_buses > 0) {
		s->bus_index = (size_t)bus;
		if (driver && cfg->buses[bus].line.type && !(driver->bus_types & cfg->buses[bus].line.type)) {
			cg_pointer_key(key_ptr, sizeof(key_ptr), ptr, "driver");
			cg_walk_problem(w, key_ptr, "driver \"%s\" does not work on a %s bus",
			                driver->name, cg_bus_type_name(cfg->buses[bus].line.type));
		}
	}
	if (driver) {
		env.config_path = w->file;
		env.profile_dirs =
		    cfg->profile_dirs ? (const char *const *)cfg->profile_dirs : no_dirs;
		env.bus_type = bus >= 0 && s->bus && cfg->n_buses > 0 ? cfg->buses[bus].line.type : 0;
		/* Every format gets the same units, so that changing mqtt.format
		 * never makes a valid config invalid. */
		env.unit_ok = cg_senml_unit_ok;
		env.units_hint = cg_units_hint();
		rc = cg_driver_options(driver, e, ptr, &env, w->diag, &s->options);
		if (rc == CG_ENOMEM)
			w->nomem = true;
		else if (rc != 0)
			w->errors++;
	}
}

/* Parses the sensors array, then checks that sensor ids are unique. */
static void cg_each_sensor(cg_walk_t *w, const cJSON *array, const char *pointer)
{
	cg_config_t *cfg = cfg_of(w);
	char ptr[CG_PTR_MAX];
	const cJSON *e;
	size_t i = 0;

	cfg->sensors = cg_array_alloc(w, array, pointer, "must contain at least one sensor",
	                              sizeof(*cfg->sensors), &cfg->n_sensors);
	if (!cfg->sensors)
		return;
	cJSON_ArrayForEach(e, array)
	{
		cg_pointer_index(ptr, sizeof(ptr), pointer, i);
		cfg->sensors[i].format = -1;
		if (!cJSON_IsObject(e))
			cg_walk_problem(w, ptr, "must be an object");
		else
			cg_sensor(w, e, i, ptr);
		i++;
	}
	cg_check_unique(w, pointer, cfg->sensors, cfg->n_sensors, sizeof(*cfg->sensors),
	                CG_SENSOR(id), "id");
}

/* The index of the sensor called id, or -1. */
static long cg_sensor_find(const cg_config_t *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_sensors; i++)
		if (cfg->sensors[i].id && strcmp(cfg->sensors[i].id, id) == 0)
			return (long)i;
	return -1;
}

/* Checks the members of obj's "ngsi_ld" object (the NGSI-LD attributes the
 * config gives a sensor's or lot's entities) and, when all are valid, renders
 * them into *out for the encoder; *out stays NULL without any. ptr is obj's
 * pointer. A non-object "ngsi_ld" was reported by the walk. */
static void cg_ngsi_ld_attrs(cg_walk_t *w, const cJSON *obj, const char *ptr, char **out)
{
	const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "ngsi_ld");
	char attrs_ptr[CG_PTR_MAX], attr_ptr[CG_PTR_MAX];
	unsigned errors = w->errors;
	const cJSON *a;
	const char *why;

	if (!cJSON_IsObject(attrs))
		return;
	cg_pointer_key(attrs_ptr, sizeof(attrs_ptr), ptr, "ngsi_ld");
	cJSON_ArrayForEach(a, attrs)
	{
		bool repeated = false;

		for (const cJSON *o = attrs->child; o != a && !repeated; o = o->next)
			repeated = strcmp(o->string, a->string) == 0;
		cg_pointer_key(attr_ptr, sizeof(attr_ptr), attrs_ptr, a->string);
		if (repeated)
			cg_walk_problem(w, attr_ptr, "duplicate key");
		else if ((why = cg_ngsi_attr_problem(a->string, a)))
			cg_walk_problem(w, attr_ptr, "%s", why);
	}
	if (w->errors == errors && cg_ngsi_attrs_render(attrs, out) < 0)
		w->nomem = true;
}

/* Parses one lot: its keys by table, then its bays: each the id of a sensor,
 * named once. A lot id shares the parking topics with sensor ids, so it must
 * differ from them. */
static void cg_lot(cg_walk_t *w, const cJSON *e, cg_lot_config_t *lot, const char *ptr)
{
	const cJSON *bays = cJSON_GetObjectItemCaseSensitive(e, "bays");
	char bays_ptr[CG_PTR_MAX], bay_ptr[CG_PTR_MAX], key_ptr[CG_PTR_MAX];
	const cJSON *b;
	size_t i = 0;

	cg_keys_walk(w, e, ptr, cg_lot_keys, lot, NULL, NULL);
	cg_ngsi_ld_attrs(w, e, ptr, &lot->ngsi_attrs);
	if (lot->id && cg_sensor_find(cfg_of(w), lot->id) >= 0) {
		cg_pointer_key(key_ptr, sizeof(key_ptr), ptr, "id");
		cg_walk_problem(w, key_ptr, "\"%s\" is a sensor id; a lot needs its own", lot->id);
	}
	if (!cJSON_IsArray(bays))
		return;
	cg_pointer_key(bays_ptr, sizeof(bays_ptr), ptr, "bays");
	if (cJSON_GetArraySize(bays) == 0) {
		cg_walk_problem(w, bays_ptr, "must name at least one bay");
		return;
	}
	lot->bays = calloc((size_t)cJSON_GetArraySize(bays), sizeof(*lot->bays));
	if (!lot->bays) {
		w->nomem = true;
		return;
	}
	cJSON_ArrayForEach(b, bays)
	{
		cg_pointer_index(bay_ptr, sizeof(bay_ptr), bays_ptr, i++);
		if (!cJSON_IsString(b)) {
			cg_walk_problem(w, bay_ptr, "must be a sensor id");
			continue;
		}
		if (cfg_of(w)->n_sensors && cg_sensor_find(cfg_of(w), b->valuestring) < 0) {
			cg_walk_problem(w, bay_ptr, "no sensor \"%s\"", b->valuestring);
			continue;
		}
		for (size_t j = 0; j < lot->n_bays; j++) {
			if (strcmp(lot->bays[j], b->valuestring) == 0) {
				cg_walk_problem(w, bay_ptr, "bay \"%s\" named twice",
				                b->valuestring);
				goto next;
			}
		}
		if (!(lot->bays[lot->n_bays] = cg_strdup(w, b->valuestring)))
			return;
		lot->n_bays++;
next:;
	}
}

/* Parses the lots array, then checks that lot ids are unique. */
static void cg_each_lot(cg_walk_t *w, const cJSON *array, const char *pointer)
{
	cg_config_t *cfg = cfg_of(w);
	char ptr[CG_PTR_MAX];
	const cJSON *e;
	size_t i = 0;

	cfg->lots = cg_array_alloc(w, array, pointer, NULL, sizeof(*cfg->lots), &cfg->n_lots);
	if (!cfg->lots)
		return;
	cJSON_ArrayForEach(e, array)
	{
		cg_pointer_index(ptr, sizeof(ptr), pointer, i);
		if (!cJSON_IsObject(e))
			cg_walk_problem(w, ptr, "must be an object");
		else
			cg_lot(w, e, &cfg->lots[i], ptr);
		i++;
	}
	cg_check_unique(w, pointer, cfg->lots, cfg->n_lots, sizeof(*cfg->lots), CG_LOT(id), "id");
}

/* ---- checks across keys ---- */

/* A report_on_change object given is a report_on_change used. */
static void cg_check_change(cg_walk_t *w, const cJSON *obj, void *base)
{
	((cg_sensor_config_t *)base)->report_on_change = true;
}

/* The gateway rule no single key states: a location given is a location used. */
static void cg_check_gateway(cg_walk_t *w, const cJSON *gateway, void *base)
{
	((cg_config_t *)base)->has_location = cg_has(gateway, "location");
}

/* The MQTT rules no single key states: client_id defaults to the gateway id,
 * TLS settings only with a TLS uri (never a silent fall-back to plain text),
 * a certificate with its key, reconnect bounds in order, and a password file
 * that is private and readable. The secret itself is read only to check it,
 * then wiped; it never reaches the struct or a message. */
static void cg_check_mqtt(cg_walk_t *w, const cJSON *mqtt, void *base)
{
	cg_mqtt_config_t *m = (cg_mqtt_config_t *)base;
	const cJSON *tls = cJSON_GetObjectItemCaseSensitive(mqtt, "tls");
	char *secret = NULL;
	int scheme, rc;

	if (!cg_has(mqtt, "client_id") && cfg_of(w)->gateway_id)
		m->client_id = cg_strdup(w, cfg_of(w)->gateway_id);

	scheme = m->uri ? cg_uri_scheme(m->uri) : -1;
	if (cJSON_IsObject(tls) && scheme >= 0 && !cg_uri_schemes[scheme].tls)
		cg_walk_problem(w, "/mqtt/tls",
		                "not allowed with a plain-text %s uri; use ssl:// or mqtts://",
		                cg_uri_schemes[scheme].prefix);
	if (cJSON_IsObject(tls)) {
		bool cert = cg_has(tls, "cert_file");
		bool key = cg_has(tls, "key_file");
		if (cert && !key)
			cg_walk_problem(w, "/mqtt/tls/cert_file", "needs key_file too");
		else if (key && !cert)
			cg_walk_problem(w, "/mqtt/tls/key_file", "needs cert_file too");
	}

	if (cg_keys_usable(mqtt, cg_mqtt_keys, "reconnect_min_s") &&
	    cg_keys_usable(mqtt, cg_mqtt_keys, "reconnect_max_s") &&
	    m->reconnect_max_s < m->reconnect_min_s) {
		cg_walk_problem(w, "/mqtt/reconnect_max_s", "must be at least reconnect_min_s (%g)",
		                m->reconnect_min_s);
	}

	if (!m->password_file)
		return;
	/* MQTT 3.1.1 has no password without a user name. */
	if (!cg_has(mqtt, "username"))
		cg_walk_problem(w, "/mqtt/password_file", "needs username");
	rc = cg_config_read_secret(m->password_file, &secret);
	if (rc == CG_EPERM)
		cg_walk_problem(w, "/mqtt/password_file",
		                "must not be readable by group or others (chmod 600)");
	else if (rc == CG_ENOMEM)
		w->nomem = true;
	else if (rc != 0)
		cg_walk_problem(w, "/mqtt/password_file", "cannot be read");
	cg_secret_free(secret);
}

/* mqtt.batch is there: readings go out in batches, within its bounds (the
 * walker checked them and filled in the defaults). */
static void cg_check_batch(cg_walk_t *w, const cJSON *batch, void *base)
{
	(void)w;
	(void)batch;
	((cg_mqtt_config_t *)base)->batch = true;
}

/* ---- public functions ---- */

const char *cg_bus_type_name(cg_bus_type_t t)
{
	for (size_t i = 0; i < CG_COUNT(cg_bus_type_values); i++)
		if (cg_bus_type_values[i] == (int)t)
			return cg_bus_type_names[i];
	return "unknown";
}

cg_driver_env_t cg_config_driver_env(const cg_config_t *cfg)
{
	cg_driver_env_t env = {
	    .config_path = cfg->path,
	    .profile_dirs = (const char *const *)cfg->profile_dirs,
	};
	return env;
}

/* A string holding "\u0000" reaches the code cut short at the NUL, silently: a topic
 * prefix, id or user name would not be the one written. No key may hold one, so the
 * text is searched for it rather than every string. */
static void cg_check_nul_escapes(cg_walk_t *w, const char *text, size_t len)
{
	char where[64];
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		if (text[i] == '"') {
			in_string = !in_string;
		} else if (in_string && text[i] == '\\' && i + 1 < len) {
			if (text[i + 1] == 'u' && i + 5 < len &&
			    strncmp(text + i + 2, "0000", 4) == 0) {
				cg_json_position(text, i, where, sizeof(where));
				cg_walk_problem(w, where,
				                "a string holds \\u0000 (NUL), which would cut it short");
			}
			i++; /* the escaped character */
		}
	}
}

int cg_config_parse(const char *text, size_t len, const char *path, cg_config_t **out,
                    cg_diag_t *diag)
{
	cg_walk_t w = {.file = path, .diag = diag};
	cg_config_t *cfg;
	cJSON *root;
	int rc;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return CG_ENOMEM;
	w.user = cfg;
	cfg->path = cg_strdup(&w, path);
	root = cg_json_parse(text, len, path, diag);
	if (root) {
		cg_check_nul_escapes(&w, text, len);
		cg_keys_walk(&w, root, "", cg_root_keys, cfg, NULL, NULL);
	} else {
		w.errors++;
	}
	cJSON_Delete(root);
	if (w.nomem) {
		cg_diag_add(diag, path, "", "out of memory");
		rc = CG_ENOMEM;
	} else if (w.errors) {
		rc = CG_EINVAL;
	} else {
		*out = cfg;
		return 0;
	}
	cg_config_free(cfg);
	return rc;
}

int cg_config_load(const char *path, cg_config_t **out, cg_diag_t *diag)
{
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	rc = cg_file_read(path, CG_CONFIG_MAX_BYTES, &text, &len);
	if (rc) {
		cg_diag_add(diag, path, "", "cannot read: %s", strerror(errno));
		return rc;
	}
	rc = cg_config_parse(text, len, path, out, diag);
	free(text);
	return rc;
}

int cg_config_read_secret(const char *path, char **out)
{
	char buf[CG_SECRET_MAX];
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return CG_ENOENT;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = CG_ENOENT;
		goto cleanup_fd;
	}
	if (st.st_mode & 077) {
		rc = CG_EPERM;
		goto cleanup_fd;
	}
	/* Only the first line counts; stop reading once it is in. */
	while (n < sizeof(buf) - 1 && !memchr(buf, '\n', n)) {
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = CG_ENOENT;
			goto cleanup_buf;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	rc = cg_secret_dup(buf, out);

cleanup_buf:
	explicit_bzero(buf, sizeof(buf));
cleanup_fd:
	close(fd);
	return rc;
}

void cg_config_free(cg_config_t *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->gateway_id);
	free(cfg->mqtt.uri);
	free(cfg->mqtt.topic_prefix);
	free(cfg->mqtt.client_id);
	free(cfg->mqtt.username);
	free(cfg->mqtt.password_file);
	free(cfg->mqtt.ca_file);
	free(cfg->mqtt.cert_file);
	free(cfg->mqtt.key_file);
	free(cfg->store.path);
	for (size_t i = 0; cfg->profile_dirs && cfg->profile_dirs[i]; i++)
		free(cfg->profile_dirs[i]);
	free(cfg->profile_dirs);
	for (size_t i = 0; i < cfg->n_buses; i++) {
		free(cfg->buses[i].id);
		free(cfg->buses[i].line.device);
		free(cfg->buses[i].line.host);
	}
	free(cfg->buses);
	for (size_t i = 0; i < cfg->n_sensors; i++) {
		free(cfg->sensors[i].id);
		free(cfg->sensors[i].bus);
		free(cfg->sensors[i].driver_name);
		cg_driver_options_free(cfg->sensors[i].driver, cfg->sensors[i].options);
		free(cfg->sensors[i].pointer);
		free(cfg->sensors[i].ngsi_attrs);
	}
	free(cfg->sensors);
	for (size_t i = 0; i < cfg->n_lots; i++) {
		free(cfg->lots[i].id);
		for (size_t j = 0; j < cfg->lots[i].n_bays; j++)
			free(cfg->lots[i].bays[j]);
		free(cfg->lots[i].bays);
		free(cfg->lots[i].ngsi_attrs);
	}
	free(cfg->lots);
	free(cfg);
}
